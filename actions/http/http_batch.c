/*
 * http_batch.c -- the pure half of the HTTP action: checking a substituted request, cutting a
 * lane's batch into requests, building each request's body, and format().
 *
 * A lane hands deliver() up to maxBatchSize queued messages. Without batching each message is
 * one POST of the rule's output. With AWS's batchConfig the batch is cut into runs of
 * *consecutive* messages that would go to the same place -- equal substituted URL and headers,
 * and (AWS's default, unless batchAcrossTopics) the same topic -- and each run is one POST whose
 * body is the JSON array of the outputs, no bigger than maxBatchSizeBytes. Runs are never
 * formed across a message that goes elsewhere: regrouping non-adjacent messages would reorder a
 * topic's messages, and the pipeline's retry contract ("nothing after batch[*ndone] was
 * delivered") counts in queue order.
 *
 * Every substituted URL is parsed with libcurl's own URL parser (CURLU), and the same parsed
 * handle is what deliver() sends (CURLOPT_CURLU): the host checked against the allow-list is the
 * host connected to, with no second parser that could read "http://a@b/" differently.
 * Header keys and values are checked for CR/LF so a substituted value cannot inject headers.
 * A host that is a link-local or metadata address literal is refused here; a name that
 * resolves to one is refused where curl connects (http.c, open_socket), so a DNS answer that
 * changes between the check and the connection changes nothing.
 */
#include "http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* {====== checks */

static int is_tchar(unsigned char c) {
    /* RFC 9110 token characters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

const char *act_http__bad_key(const char *k, size_t n) {
    if (n == 0)
        return "is empty";
    if (n > ACT_HTTP_MAX_KEY)
        return "is longer than 256 bytes";
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)k[i]))
            return "is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)";
    /* the request's framing is libcurl's to write: a second Content-Length or a
     * Transfer-Encoding from a template would desynchronize the connection */
    if ((n == 14 && !strncasecmp(k, "content-length", n)) ||
        (n == 17 && !strncasecmp(k, "transfer-encoding", n)))
        return "is set by sluice itself and cannot be overridden";
    return NULL;
}

/* host without IPv6 brackets and trailing dot, into out */
static void norm_host(const char *s, size_t n, char *out, size_t cap) {
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int act_http__host_allowed(const char *list, const char *host) {
    if (!list || !*list)
        return 1;
    char want[256];
    norm_host(host, strlen(host), want, sizeof want);
    const char *p = list;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        const char *s = p;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        char have[256];
        norm_host(s, n, have, sizeof have);
        if (have[0] && !strcasecmp(have, want))
            return 1;
        if (!q)
            break;
        p = q + 1;
    }
    return 0;
}

/* {====== addresses no action may reach */

static int v4_refused(const unsigned char *a, const char **what) {
    if (a[0] == 169 && a[1] == 254)
        *what = "link-local (169.254.0.0/16, cloud metadata services)";
    else if (a[0] == 100 && a[1] == 100 && a[2] == 100 && a[3] == 200)
        *what = "a cloud metadata address";
    else
        return 0;
    return 1;
}

int act_http__addr_refused(const act_http *h, const struct sockaddr *sa, char *why, size_t cap) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char aws6[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0,
                                           0,    0, 0,    0,    0, 0, 0x02, 0x54};
    const char *what = NULL;
    char text[INET6_ADDRSTRLEN] = "";
    if (h && h->allow_link_local)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (!v4_refused((const unsigned char *)&in->sin_addr, &what))
            return 0;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
            what = "link-local (fe80::/10)";
        else if (!memcmp(b, aws6, 16))
            what = "a cloud metadata address";
        else if ((!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12)) && v4_refused(b + 12, &what))
            ;
        else
            return 0;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    } else {
        return 0;
    }
    snprintf(why, cap, "%s, which is %s: refused unless actions.http.allowLinkLocal is set",
             text, what);
    return 1;
}

int act_http__host_refused(const act_http *h, const char *host, char *why, size_t cap) {
    char lit[INET6_ADDRSTRLEN + 8];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    size_t zone = strcspn(host, "%"); /* fe80::1%25eth0: the zone is not part of the address */
    if (zone < n)
        n = zone;
    if (n >= sizeof lit)
        return 0;
    memcpy(lit, host, n);
    lit[n] = '\0';
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, lit, &in.sin_addr) == 1)
        return act_http__addr_refused(h, (struct sockaddr *)&in, why, cap);
    if (inet_pton(AF_INET6, lit, &in6.sin6_addr) == 1)
        return act_http__addr_refused(h, (struct sockaddr *)&in6, why, cap);
    return 0;
}

/* }====== */

int act_http__check_url(const act_http *h, const char *url, size_t len, CURLU **out, char *err,
                        size_t cap) {
    int rc = -1;
    char *scheme = NULL, *host = NULL;
    CURLU *u = NULL;
    if (len == 0) {
        snprintf(err, cap, "the URL is empty after substitution");
        goto out;
    }
    if (strlen(url) != len) {
        snprintf(err, cap, "the URL '%.200s' contains a NUL byte after substitution", url);
        goto out;
    }
    if (!(u = curl_url())) {
        snprintf(err, cap, "out of memory");
        goto out;
    }
    /* without CURLU_NON_SUPPORT_SCHEME / CURLU_GUESS_SCHEME: a scheme is required */
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        snprintf(err, cap, "the URL '%.200s' is not valid: %s", url, curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        snprintf(err, cap, "the URL '%.200s' must start with http:// or https://", url);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        snprintf(err, cap, "the URL '%.200s' has no host", url);
        goto out;
    }
    char why[256];
    if (act_http__host_refused(h, host, why, sizeof why)) {
        snprintf(err, cap, "host %s", why);
        goto out;
    }
    if (!act_http__host_allowed(h->allowed, host)) {
        snprintf(err, cap, "host '%.200s' is not in the allowed hosts (actions.http.allowedHosts)",
                 host);
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    if (rc == 0 && out)
        *out = u;
    else
        curl_url_cleanup(u);
    return rc;
}

int act_http__check(const act_http *h, const act_msg *m, CURLU **u, char *err, size_t cap) {
    for (size_t i = 0; i < h->nheaders; i++) {
        size_t kk = 1 + 2 * i, kv = kk + 1;
        const char *why = act_http__bad_key(m->fields[kk], m->field_lens[kk]);
        if (why) {
            snprintf(err, cap, "header key '%.100s' %s", m->fields[kk], why);
            return -1;
        }
        const char *v = m->fields[kv];
        size_t vn = m->field_lens[kv];
        if (vn > ACT_HTTP_MAX_VALUE) {
            snprintf(err, cap, "header '%s' is longer than %d bytes after substitution",
                     m->fields[kk], ACT_HTTP_MAX_VALUE);
            return -1;
        }
        if (strlen(v) != vn || strpbrk(v, "\r\n")) {
            snprintf(err, cap, "header '%s' contains CR, LF or NUL after substitution",
                     m->fields[kk]);
            return -1;
        }
    }
    if (u)
        *u = NULL;
    return act_http__check_url(h, m->fields[0], m->field_lens[0], u, err, cap);
}

int act_http__has_ctype(const act_http *h, const act_msg *m) {
    for (size_t i = 0; i < h->nheaders; i++)
        if (m->field_lens[1 + 2 * i] == 12 && !strcasecmp(m->fields[1 + 2 * i], "content-type"))
            return 1;
    return 0;
}

/* }====== */

/* {====== grouping and bodies */

static int same_target(const act_http *h, const act_msg *a, const act_msg *b) {
    for (size_t k = 0; k < h->ntpl; k++)
        if (a->field_lens[k] != b->field_lens[k] ||
            memcmp(a->fields[k], b->fields[k], a->field_lens[k]))
            return 0;
    if (h->across_topics)
        return 1;
    if (!a->in || !b->in)
        return a->in == b->in;
    return a->in->topic_len == b->in->topic_len &&
           !memcmp(a->in->topic, b->in->topic, a->in->topic_len);
}

/* bytes m's payload takes as an element of a batch body */
static size_t elem_len(const act_msg *m) {
    if (act_json_valid(m->payload, m->payload_len))
        return m->payload_len;
    size_t n = 0;
    act_buf_put_json_string(NULL, m->payload, m->payload_len, &n);
    return n;
}

size_t act_http__group(const act_http *h, const act_msg *const *batch, size_t n, size_t i) {
    if (!h->batching || i + 1 >= n)
        return i + 1;
    size_t maxn = h->base.max_batch ? h->base.max_batch : 1;
    size_t maxb = h->base.max_batch_bytes;
    size_t bytes = 2 + elem_len(batch[i]); /* "[" first "]" */
    size_t j = i + 1;
    while (j < n && j - i < maxn && same_target(h, batch[i], batch[j])) {
        size_t add = 1 + elem_len(batch[j]); /* "," next */
        if (maxb && bytes + add > maxb)
            break;
        bytes += add;
        j++;
    }
    return j;
}

int act_http__body(const act_http *h, const act_msg *const *batch, size_t n, act_buf *out) {
    if (!h->batching)
        return act_buf_put(out, batch[0]->payload, batch[0]->payload_len);
    if (act_buf_put(out, "[", 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const act_msg *m = batch[i];
        if (i && act_buf_put(out, ",", 1))
            return -1;
        int rc = act_json_valid(m->payload, m->payload_len)
                     ? act_buf_put(out, m->payload, m->payload_len)
                     : act_buf_put_json_string(out, m->payload, m->payload_len, NULL);
        if (rc)
            return -1;
    }
    return act_buf_put(out, "]", 1);
}

/* }====== */

int act_http__format(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out) {
    act_http *h = (act_http *)self;
    for (size_t i = 0, j; i < n; i = j) {
        j = act_http__group(h, batch, n, i);
        const act_msg *m = batch[i];
        char err[512];
        if (act_http__check(h, m, NULL, err, sizeof err) != 0) {
            out->len = 0;
            act_buf_puts(out, err);
            return -1;
        }
        if (act_buf_printf(out, "POST %s\n", m->fields[0]) ||
            (!act_http__has_ctype(h, m) && act_buf_puts(out, "Content-Type: application/json\n")))
            return -1;
        for (size_t k = 0; k < h->nheaders; k++)
            if (act_buf_printf(out, "%s: %s\n", m->fields[1 + 2 * k], m->fields[2 + 2 * k]))
                return -1;
        if (act_buf_put(out, "\n", 1) || act_http__body(h, batch + i, j - i, out) ||
            act_buf_put(out, "\n", 1))
            return -1;
    }
    return 0;
}

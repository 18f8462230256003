/*
 * http.c -- AWS's HTTP action: POST the rule's output to a URL with libcurl.
 *
 *   {"http": {"url": "https://hooks.example/in/${topic(2)}", "confirmationUrl": "...",
 *             "headers": [{"key": "x-src", "value": "${clientid()}"}],
 *             "enableBatching": true,
 *             "batchConfig": {"maxBatchOpenMs": 20, "maxBatchSize": 10,
 *                             "maxBatchSizeBytes": 5120, "batchAcrossTopics": false}}}
 *
 * The URL and every header key and value are substitution templates. open() checks what is
 * literal (scheme, host against the service's allow-list, header names); the rest is checked
 * per message after substitution (http_batch.c), and a message that fails a check fails
 * permanently without any I/O. Where sluice may be aimed: a host that comes from a template
 * needs actions.http.allowedHosts (else a device picks the destination), and link-local and
 * metadata addresses (169.254.0.0/16, fe80::/10, ...) are refused unless
 * actions.http.allowLinkLocal: as URL literals at open() or per message, and for names at
 * connect time, on the address curl is about to connect to (open_socket), so a DNS answer
 * cannot lead elsewhere than what was checked. Environment proxies are not used for the same
 * reason. "auth" (SigV4 signing with an IAM role) is refused: there is no
 * AWS credential chain here, and silently sending unsigned requests would be worse.
 * confirmationUrl is accepted for AWS compatibility and unused (no destination confirmation).
 *
 * Each of the 4 lanes owns one curl easy handle, created on first use and reused, so its
 * connection stays open (HTTP keep-alive) across requests; libcurl's blocking easy interface is
 * enough because a lane is a thread of its own. The multi interface was rejected: it would
 * need an event loop per instance to win nothing a lane thread does not already give.
 * Outcome: 2xx delivered; 429, 5xx, timeouts and network errors are transient (the pipeline
 * retries); other statuses (3xx are not followed, 4xx) and TLS verification failures are
 * permanent, reported with the status and the start of the response body.
 */
#include "http_int.h"

#include <ctype.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define ERR(e, ...) eng_error_set(e, 400, "InvalidRequestException", "http action: " __VA_ARGS__)

/* {====== open */

/* The literal text of template t before its first `${` (`$$` read as `$`) into out[0..cap);
 * 1 when that is the whole template. */
static int literal_prefix(const char *t, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; t[i] && k + 1 < cap; i++) {
        if (t[i] == '$' && t[i + 1] == '$') {
            out[k++] = '$';
            i++;
        } else if (t[i] == '$' && t[i + 1] == '{') {
            out[k] = '\0';
            return 0;
        } else {
            out[k++] = t[i];
        }
    }
    out[k] = '\0';
    return 1;
}

/* A URL whose host (or scheme, port or user info) comes from a substitution: a device's
 * payload could aim it anywhere, so it needs an allow-list to be checked against per
 * message. */
static int templated_host(const act_http *h, eng_error *e) {
    if (h->allowed[0])
        return 0;
    return ERR(e, "\"url\" takes its host from a substitution template, so the hosts it may "
                  "reach must be listed in actions.http.allowedHosts (none are)");
}

/* Checks the parts of the URL template that cannot change with the message: the scheme
 * when it is literal, and the host (allow-list, link-local) when the whole authority is
 * literal; a host that can change needs an allow-list. */
static int check_url_template(const act_http *h, const char *t, eng_error *e) {
    char pre[ACT_HTTP_MAX_URL + 1];
    int whole = literal_prefix(t, pre, sizeof pre);
    size_t i = 0;
    while (isalnum((unsigned char)pre[i]) || pre[i] == '+' || pre[i] == '-' || pre[i] == '.')
        i++;
    if (pre[i] == '\0' && !whole)
        return templated_host(h, e); /* the scheme comes from a substitution */
    if (pre[i] != ':' || !((i == 4 && !strncasecmp(pre, "http", 4)) ||
                           (i == 5 && !strncasecmp(pre, "https", 5))))
        return ERR(e, "\"url\" must start with http:// or https://");
    if (strncmp(pre + i, "://", 3)) {
        if (whole || strlen(pre + i) >= 3)
            return ERR(e, "\"url\" must start with http:// or https://");
        return templated_host(h, e);
    }
    const char *auth = pre + i + 3;
    size_t alen = strcspn(auth, "/?#");
    if (auth[alen] == '\0' && !whole)
        return templated_host(h, e); /* the host, its port or user info is substituted */
    char url[ACT_HTTP_MAX_URL + 16], err[512];
    if (whole)
        snprintf(url, sizeof url, "%s", pre);
    else
        snprintf(url, sizeof url, "%.*s/", (int)(auth + alen - pre), pre);
    if (act_http__check_url(h, url, strlen(url), NULL, err, sizeof err) != 0)
        return ERR(e, "\"url\": %s", err);
    return 0;
}

typedef struct http_batch_opts {
    int open_ms, size, bytes, across;
} http_batch_opts;

typedef struct http_opts {
    const char *url;
    act_kv headers[ACT_HTTP_MAX_HEADERS];
    size_t nheaders;
    int batching;               /* -1: not said */
    http_batch_opts bc;
} http_opts;

static const act_option header_options[] = {
    {.key = "key", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(act_kv, key),
     .min = 1, .max = ACT_HTTP_MAX_KEY, .help = "the header's name"},
    {.key = "value", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(act_kv, value),
     .max = ACT_HTTP_MAX_VALUE, .help = "its value"},
    {0},
};

/* AWS's valid ranges (API reference, BatchConfig) */
#define BC(field) offsetof(http_batch_opts, field)
static const act_option batch_options[] = {
    {.key = "maxBatchOpenMs", .type = ACT_OPT_INT, .offset = BC(open_ms), .min = 5, .max = 200,
     .def = ACT_HTTP_BATCH_OPEN_MS, .help = "how long a batch may wait to fill"},
    {.key = "maxBatchSize", .type = ACT_OPT_INT, .offset = BC(size), .min = 2, .max = 10,
     .def = ACT_HTTP_BATCH_SIZE, .help = "most messages per request"},
    {.key = "maxBatchSizeBytes", .type = ACT_OPT_INT, .offset = BC(bytes), .min = 100,
     .max = 131072, .def = ACT_HTTP_BATCH_BYTES, .help = "most body bytes per request"},
    {.key = "batchAcrossTopics", .type = ACT_OPT_BOOL, .offset = BC(across), .def = 0,
     .help = "batch messages of different topics together"},
    {0},
};
#undef BC

static const act_option http_options[] = {
    {.key = "url", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(http_opts, url),
     .min = 1, .max = ACT_HTTP_MAX_URL,
     .help = "http:// or https:// URL; a host from a template must be in "
             "actions.http.allowedHosts"},
    {.key = "confirmationUrl", .type = ACT_OPT_IGNORED, .max = ACT_HTTP_MAX_URL,
     .help = "AWS's destination confirmation; accepted and not used"},
    {.key = "headers", .type = ACT_OPT_LIST, .offset = offsetof(http_opts, headers),
     .max = ACT_HTTP_MAX_HEADERS, .sub = header_options, .elem_size = sizeof(act_kv),
     .count_offset = offsetof(http_opts, nheaders), .help = "request headers, {key, value} pairs"},
    {.key = "enableBatching", .type = ACT_OPT_BOOL, .offset = offsetof(http_opts, batching),
     .def = -1, .help = "POST JSON arrays of outputs (default: true when batchConfig is given)"},
    {.key = "batchConfig", .type = ACT_OPT_OBJECT, .offset = offsetof(http_opts, bc),
     .sub = batch_options, .help = "AWS's BatchConfig"},
    {.key = "auth", .type = ACT_OPT_REFUSED,
     .help = "SigV4 request signing needs AWS credentials; pass credentials in \"headers\""},
    {0},
};

static int check_headers(act_http *h, const http_opts *o, eng_error *e) {
    for (size_t i = 0; i < o->nheaders; i++) {
        const char *k = o->headers[i].key, *v = o->headers[i].value;
        if (!strstr(k, "${")) {
            /* a literal key: its final text is known now (only $$ can still change) */
            char lit[ACT_HTTP_MAX_KEY + 1];
            literal_prefix(k, lit, sizeof lit);
            const char *why = act_http__bad_key(lit, strlen(lit));
            if (why)
                return ERR(e, "\"headers[%zu].key\" \"%s\" %s", i, k, why);
        }
        if (!strstr(v, "${") && strpbrk(v, "\r\n"))
            return ERR(e, "\"headers[%zu].value\" contains CR or LF", i);
        if (!(h->tpl[h->ntpl++] = strdup(k)) || !(h->tpl[h->ntpl++] = strdup(v)))
            return eng_error_set(e, 500, "InternalException", "out of memory");
        h->nheaders++;
    }
    return 0;
}

static void http_close(act_instance *self);

static int http_open(const act_config *cfg, act_instance **out, eng_error *e) {
    http_opts o = {0};
    act_http *h = NULL;
    if (act_options_parse("http", http_options, cfg->params, &o, e))
        return -1;
    if (!(h = calloc(1, sizeof *h)) || !(h->tpl = calloc(1 + 2 * o.nheaders, sizeof *h->tpl)) ||
        !(h->tpl[h->ntpl++] = strdup(o.url)) ||
        !(h->allowed = strdup(cfg->host->http_allowed_hosts))) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto fail;
    }
    h->timeout_ms = cfg->host->http_timeout_ms;
    h->connect_timeout_ms = cfg->host->http_connect_timeout_ms;
    h->allow_link_local = cfg->host->http_allow_link_local;
    h->base.lanes = ACT_HTTP_LANES;
    snprintf(h->base.resource, sizeof h->base.resource, "%s", o.url);
    if (check_url_template(h, o.url, e) != 0 || check_headers(h, &o, e) != 0)
        goto fail;
    /* batching is on when asked for, or when a batchConfig is given without saying; an
     * explicit "enableBatching": false wins over a batchConfig */
    int has_bc = cJSON_GetObjectItemCaseSensitive(cfg->params, "batchConfig") != NULL;
    h->batching = o.batching >= 0 ? o.batching : has_bc;
    h->across_topics = o.bc.across;
    if (h->batching) {
        h->base.max_batch = (size_t)o.bc.size;
        h->base.max_batch_bytes = (size_t)o.bc.bytes;
        h->base.max_batch_open_ms = o.bc.open_ms;
    }
    *out = &h->base;
    return 0;
fail:
    http_close(h ? &h->base : NULL);
    return -1;
}

static size_t http_templates(act_instance *self, const char *const **tpl) {
    act_http *h = (act_http *)self;
    *tpl = (const char *const *)h->tpl;
    return h->ntpl;
}

/* }====== */

/* {====== deliver */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not safe to race with other libcurl calls: once, from the first lane
 * that needs a handle (open() stays free of it so rule validation never touches TLS). */
static void init_curl(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* keeps the start of the response body for failure messages, discards the rest */
static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    act_http_lane *l = ud;
    size_t n = size * nmemb, room = ACT_HTTP_SNIPPET - l->resp_len;
    size_t c = n < room ? n : room;
    memcpy(l->resp + l->resp_len, p, c);
    l->resp_len += c;
    return n;
}

/* Every connection curl opens goes through here, with the address it is about to connect to
 * (after name resolution, and for each address it tries): a link-local or metadata address
 * is refused even when an allowed name resolves to it (DNS rebinding). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
    act_http_lane *l = ud;
    if (act_http__addr_refused(l->owner, &a->addr, l->refused, sizeof l->refused))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

CURL *act_http__lane_handle(act_http *h, int lane) {
    act_http_lane *l = &h->lanes[lane >= 0 && lane < ACT_HTTP_LANES ? lane : 0];
    if (l->h)
        return l->h;
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return NULL;
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    /* lanes are threads: no SIGALRM-based resolver timeouts */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, l);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, l->errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sluice");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    /* connect where the checks looked: straight to the destination, never through a proxy
     * from the environment (which would resolve and connect on our behalf) */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, l);
    l->owner = h;
    l->h = c;
    return c;
}

static struct curl_slist *build_headers(const act_http *h, const act_msg *m) {
    struct curl_slist *list = NULL, *t;
    /* "Expect:" stops libcurl's 100-continue round trip on large bodies */
    if (!(list = curl_slist_append(NULL, "Expect:")))
        return NULL;
    if (!act_http__has_ctype(h, m)) {
        if (!(t = curl_slist_append(list, "Content-Type: application/json")))
            goto oom;
        list = t;
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        char line[ACT_HTTP_MAX_KEY + ACT_HTTP_MAX_VALUE + 4];
        const char *key = m->fields[1 + 2 * i], *val = m->fields[2 + 2 * i];
        /* libcurl reads "Key:" as "remove Key"; "Key;" is how an empty value is sent */
        if (val[0])
            snprintf(line, sizeof line, "%s: %s", key, val);
        else
            snprintf(line, sizeof line, "%s;", key);
        if (!(t = curl_slist_append(list, line)))
            goto oom;
        list = t;
    }
    return list;
oom:
    curl_slist_free_all(list);
    return NULL;
}

static act_result classify_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return ACT_FAIL; /* the same request would fail the same way every time */
    default:
        return ACT_RETRY; /* connect, resolve, send/recv, timeout, TLS handshake, OOM */
    }
}

/* The response snippet as one printable line. */
static void snippet(act_http_lane *l, char *out, size_t cap) {
    size_t n = l->resp_len < cap - 1 ? l->resp_len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)l->resp[i];
        out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* One POST of batch[0..n) (one group) to the checked URL u. */
static act_result send_group(act_http *h, act_http_lane *l, const act_msg *const *batch,
                             size_t n, CURLU *u, char *err, size_t cap) {
    const act_msg *m = batch[0];
    act_result res = ACT_RETRY;
    struct curl_slist *hdrs = NULL;
    CURL *c = act_http__lane_handle(h, (int)(l - h->lanes));
    if (!c) {
        snprintf(err, cap, "cannot initialize libcurl");
        goto out;
    }
    l->body.len = 0;
    if (act_http__body(h, batch, n, &l->body) != 0 || !(hdrs = build_headers(h, m))) {
        snprintf(err, cap, "out of memory building the request to %.300s", m->fields[0]);
        goto out;
    }
    l->resp_len = 0;
    l->errbuf[0] = '\0';
    l->refused[0] = '\0';
    curl_easy_setopt(c, CURLOPT_CURLU, u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, l->body.p);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)l->body.len);
    CURLcode rc = curl_easy_perform(c);
    /* the handle outlives u and hdrs: drop its pointers to them */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_CURLU, NULL);
    if (rc != CURLE_OK && l->refused[0]) {
        snprintf(err, cap, "POST %.300s refused: it resolves to %s", m->fields[0], l->refused);
        res = ACT_FAIL; /* where a name leads is the operator's to change, not a retry's */
        goto out;
    }
    if (rc != CURLE_OK) {
        snprintf(err, cap, "POST %.300s failed: %s", m->fields[0],
                 l->errbuf[0] ? l->errbuf : curl_easy_strerror(rc));
        res = classify_curl(rc);
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        res = ACT_OK;
        goto out;
    }
    char body[ACT_HTTP_SNIPPET + 1];
    snippet(l, body, sizeof body);
    snprintf(err, cap, "HTTP %ld from %.300s%s%s%s", status, m->fields[0],
             status >= 300 && status < 400 ? " (redirects are not followed)" : "",
             body[0] ? ": " : "", body);
    res = status == 429 || status >= 500 ? ACT_RETRY : ACT_FAIL;
out:
    curl_slist_free_all(hdrs);
    return res;
}

static act_result http_deliver(act_instance *self, int lane, const act_msg *const *batch,
                               size_t n, size_t *ndone, char *err, size_t cap) {
    act_http *h = (act_http *)self;
    act_http_lane *l = &h->lanes[lane >= 0 && lane < ACT_HTTP_LANES ? lane : 0];
    *ndone = 0;
    for (size_t i = 0, j; i < n; i = j) {
        j = act_http__group(h, batch, n, i);
        CURLU *u = NULL;
        if (act_http__check(h, batch[i], &u, err, cap) != 0)
            return ACT_FAIL; /* checked before any I/O: nothing of this group went out */
        act_result r = send_group(h, l, batch + i, j - i, u, err, cap);
        curl_url_cleanup(u);
        if (r != ACT_OK)
            return r; /* the group fails at its first message; nothing after it was sent */
        *ndone = j;
    }
    return ACT_OK;
}

/* }====== */

static void http_close(act_instance *self) {
    act_http *h = (act_http *)self;
    if (!h)
        return;
    for (int i = 0; i < ACT_HTTP_LANES; i++) {
        if (h->lanes[i].h)
            curl_easy_cleanup(h->lanes[i].h);
        act_buf_deinit(&h->lanes[i].body);
    }
    for (size_t i = 0; h->tpl && i < h->ntpl; i++)
        free(h->tpl[i]);
    free(h->tpl);
    free(h->allowed);
    free(h);
}

const act_vtable act_http_vtable = {
    .version = ACT_VTABLE_VERSION,
    .name = "http",
    .aws_name = "HttpAction",
    .open = http_open,
    .templates = http_templates,
    .deliver = http_deliver,
    .format = act_http__format,
    .close = http_close,
    .description = "AWS's HTTP action: POST each output to a URL (libcurl)",
    .options = http_options,
};

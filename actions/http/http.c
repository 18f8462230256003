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
 * permanently without any I/O. "auth" (SigV4 signing with an IAM role) is refused: there is no
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Checks the parts of the URL template that cannot change with the message: the scheme
 * when it is literal, and the host (allow-list) when the whole authority is literal. */
static int check_url_template(const act_http *h, const char *t, eng_error *e) {
    char pre[ACT_HTTP_MAX_URL + 1];
    int whole = literal_prefix(t, pre, sizeof pre);
    size_t i = 0;
    while (isalnum((unsigned char)pre[i]) || pre[i] == '+' || pre[i] == '-' || pre[i] == '.')
        i++;
    if (pre[i] == '\0' && !whole)
        return 0; /* the scheme comes from a substitution: checked per message */
    if (pre[i] != ':' || !((i == 4 && !strncasecmp(pre, "http", 4)) ||
                           (i == 5 && !strncasecmp(pre, "https", 5))))
        return ERR(e, "\"url\" must start with http:// or https://");
    if (strncmp(pre + i, "://", 3)) {
        if (whole || strlen(pre + i) >= 3)
            return ERR(e, "\"url\" must start with http:// or https://");
        return 0;
    }
    const char *auth = pre + i + 3;
    size_t alen = strcspn(auth, "/?#");
    if (auth[alen] == '\0' && !whole)
        return 0; /* the host (or its port, or user info) comes from a substitution */
    char url[ACT_HTTP_MAX_URL + 16], err[512];
    if (whole)
        snprintf(url, sizeof url, "%s", pre);
    else
        snprintf(url, sizeof url, "%.*s/", (int)(auth + alen - pre), pre);
    if (act_http__check_url(h, url, strlen(url), NULL, err, sizeof err) != 0)
        return ERR(e, "\"url\": %s", err);
    return 0;
}

static char *dup_tpl(const cJSON *v) { return strdup(v->valuestring); }

static int parse_headers(act_http *h, const cJSON *hs, eng_error *e) {
    if (!cJSON_IsArray(hs))
        return ERR(e, "\"headers\" must be an array of {\"key\", \"value\"} objects");
    int n = cJSON_GetArraySize(hs);
    if (n > ACT_HTTP_MAX_HEADERS)
        return ERR(e, "at most %d headers are allowed (got %d)", ACT_HTTP_MAX_HEADERS, n);
    const cJSON *x;
    cJSON_ArrayForEach(x, hs) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(x, "key");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "value");
        if (!cJSON_IsObject(x) || !cJSON_IsString(k) || !cJSON_IsString(v))
            return ERR(e, "each header must be an object with string \"key\" and \"value\"");
        const cJSON *f;
        cJSON_ArrayForEach(f, x) {
            if (strcmp(f->string, "key") && strcmp(f->string, "value"))
                return ERR(e, "unknown header parameter \"%s\"", f->string);
        }
        size_t kn = strlen(k->valuestring);
        if (kn == 0 || kn > ACT_HTTP_MAX_KEY)
            return ERR(e, "header keys must be 1 to %d bytes long", ACT_HTTP_MAX_KEY);
        if (strlen(v->valuestring) > ACT_HTTP_MAX_VALUE)
            return ERR(e, "header values must be at most %d bytes long", ACT_HTTP_MAX_VALUE);
        if (!strstr(k->valuestring, "${")) {
            /* a literal key: its final text is known now (only $$ can still change) */
            char lit[ACT_HTTP_MAX_KEY + 1];
            literal_prefix(k->valuestring, lit, sizeof lit);
            const char *why = act_http__bad_key(lit, strlen(lit));
            if (why)
                return ERR(e, "header key \"%s\" %s", k->valuestring, why);
        }
        if (!strstr(v->valuestring, "${") && strpbrk(v->valuestring, "\r\n"))
            return ERR(e, "header \"%s\": the value contains CR or LF", k->valuestring);
        if (!(h->tpl[h->ntpl++] = dup_tpl(k)) || !(h->tpl[h->ntpl++] = dup_tpl(v)))
            return eng_error_set(e, 500, "InternalException", "out of memory");
        h->nheaders++;
    }
    return 0;
}

/* An integer member of batchConfig in [lo, hi], or def when absent. */
static int get_int(const cJSON *o, const char *name, int lo, int hi, int def, int *out,
                   eng_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return ERR(e, "\"batchConfig.%s\" must be an integer from %d to %d", name, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int parse_batching(act_http *h, const cJSON *params, eng_error *e) {
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(params, "enableBatching");
    const cJSON *bc = cJSON_GetObjectItemCaseSensitive(params, "batchConfig");
    if (en && !cJSON_IsBool(en))
        return ERR(e, "\"enableBatching\" must be true or false");
    if (bc && !cJSON_IsObject(bc))
        return ERR(e, "\"batchConfig\" must be an object");
    int open_ms = ACT_HTTP_BATCH_OPEN_MS, size = ACT_HTTP_BATCH_SIZE, bytes = ACT_HTTP_BATCH_BYTES;
    if (bc) {
        const cJSON *k;
        cJSON_ArrayForEach(k, bc) {
            if (strcmp(k->string, "maxBatchOpenMs") && strcmp(k->string, "maxBatchSize") &&
                strcmp(k->string, "maxBatchSizeBytes") && strcmp(k->string, "batchAcrossTopics"))
                return ERR(e, "unknown batchConfig parameter \"%s\"", k->string);
        }
        /* AWS's valid ranges (API reference, BatchConfig) */
        if (get_int(bc, "maxBatchOpenMs", 5, 200, ACT_HTTP_BATCH_OPEN_MS, &open_ms, e) ||
            get_int(bc, "maxBatchSize", 2, 10, ACT_HTTP_BATCH_SIZE, &size, e) ||
            get_int(bc, "maxBatchSizeBytes", 100, 131072, ACT_HTTP_BATCH_BYTES, &bytes, e))
            return -1;
        const cJSON *across = cJSON_GetObjectItemCaseSensitive(bc, "batchAcrossTopics");
        if (across && !cJSON_IsBool(across))
            return ERR(e, "\"batchConfig.batchAcrossTopics\" must be true or false");
        h->across_topics = cJSON_IsTrue(across);
    }
    /* batching is on when asked for, or when a batchConfig is given without saying; an
     * explicit "enableBatching": false wins over a batchConfig */
    h->batching = en ? cJSON_IsTrue(en) : bc != NULL;
    if (h->batching) {
        h->base.max_batch = (size_t)size;
        h->base.max_batch_bytes = (size_t)bytes;
        h->base.max_batch_open_ms = open_ms;
    }
    return 0;
}

static void http_close(act_instance *self);

static int http_open(const act_config *cfg, act_instance **out, eng_error *e) {
    const cJSON *p = cfg->params, *k;
    act_http *h = NULL;
    if (!cJSON_IsObject(p))
        return ERR(e, "parameters must be an object");
    cJSON_ArrayForEach(k, p) {
        if (!strcmp(k->string, "auth"))
            return ERR(e, "\"auth\" (SigV4 request signing) is not supported; pass credentials "
                          "in \"headers\" instead");
        if (strcmp(k->string, "url") && strcmp(k->string, "confirmationUrl") &&
            strcmp(k->string, "headers") && strcmp(k->string, "enableBatching") &&
            strcmp(k->string, "batchConfig"))
            return ERR(e, "unknown parameter \"%s\"", k->string);
    }
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(p, "url");
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(p, "confirmationUrl");
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(p, "headers");
    if (!cJSON_IsString(url) || !url->valuestring[0])
        return ERR(e, "\"url\" is required");
    if (strlen(url->valuestring) > ACT_HTTP_MAX_URL)
        return ERR(e, "\"url\" is longer than %d bytes", ACT_HTTP_MAX_URL);
    if (conf && !cJSON_IsString(conf))
        return ERR(e, "\"confirmationUrl\" must be a string");
    size_t nh = cJSON_IsArray(hs) ? (size_t)cJSON_GetArraySize(hs) : 0;
    if (!(h = calloc(1, sizeof *h)) ||
        !(h->tpl = calloc(1 + 2 * (nh < ACT_HTTP_MAX_HEADERS ? nh : ACT_HTTP_MAX_HEADERS),
                          sizeof *h->tpl)) ||
        !(h->tpl[h->ntpl++] = dup_tpl(url)) ||
        !(h->allowed = strdup(cfg->host->http_allowed_hosts))) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto fail;
    }
    h->timeout_ms = cfg->host->http_timeout_ms;
    h->connect_timeout_ms = cfg->host->http_connect_timeout_ms;
    h->base.lanes = ACT_HTTP_LANES;
    snprintf(h->base.resource, sizeof h->base.resource, "%s", url->valuestring);
    if (check_url_template(h, url->valuestring, e) != 0 ||
        (hs && parse_headers(h, hs, e) != 0) || parse_batching(h, p, e) != 0)
        goto fail;
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

static CURL *lane_handle(act_http *h, act_http_lane *l) {
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
    CURL *c = lane_handle(h, l);
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
    curl_easy_setopt(c, CURLOPT_CURLU, u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, l->body.p);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)l->body.len);
    CURLcode rc = curl_easy_perform(c);
    /* the handle outlives u and hdrs: drop its pointers to them */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_CURLU, NULL);
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
};

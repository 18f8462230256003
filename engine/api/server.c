/*
 * server.c -- the REST API on libmicrohttpd: the only file that knows it.
 *
 * Each connection gets its own thread (MHD_USE_THREAD_PER_CONNECTION), so a request that
 * waits (a publish waiting for room in a full worker queue) holds only its own connection:
 * /healthz and the admin API keep answering. What bounds the threads is the connection limit,
 * in all (http.maxConnections) and per client address (http.maxConnectionsPerClient, so one
 * client cannot take them all), and the idle timeout (http.timeoutSeconds) that frees a
 * connection a slow client holds. A fixed pool was the alternative rejected: two publishes
 * waiting on a saturated engine stalled everything behind them.
 *
 * A request is converted to an eng_api_request in two steps (api.h). The raw request target
 * comes from the URI log callback, before libmicrohttpd unescapes it, because a SigV4
 * signature covers the path and query exactly as sent. On the first call (headers complete)
 * the router admits or refuses; a refusal is queued at once, which makes libmicrohttpd skip
 * the body and close the connection, and it is sent before any "100 Continue". An admitted
 * request's body is buffered up to the route's limit: a Content-Length over it was refused
 * already, and a chunked body that grows past it closes the connection.
 */
#include "api_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct eng_admin {
    struct MHD_Daemon *d;
    eng_api *api;
};

/* One request on a connection (libmicrohttpd's per-request context). */
typedef struct conn {
    char *target; /* the raw request target, split at '?' into path and query */
    eng_api_header *headers;
    size_t nheaders;
    char client[INET6_ADDRSTRLEN + 2];
    eng_api_request rq;
    char *body;
    size_t len, cap, limit;
    int started;
} conn;

/* {====== listen address */

int eng_api_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *err,
                       size_t cap) {
    char host[128];
    const char *colon = strrchr(addr, ':');
    memset(ss, 0, sizeof *ss);
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        snprintf(err, cap, "http address '%s' is not host:port", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535) {
        snprintf(err, cap, "http address '%s': the port must be from 1 to 65535", addr);
        return -1;
    }
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) {
            snprintf(err, cap, "http address '%s': '%s' is not an IPv6 address", addr, host + 1);
            return -1;
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof *s4;
    if (!strcmp(host, "") || !strcmp(host, "0.0.0.0"))
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
        snprintf(err, cap, "http address '%s': '%s' is not an IPv4 address, 'localhost' or an "
                 "IPv6 address in brackets ([::1]:8088)", addr, host);
        return -1;
    }
    return 0;
}

int eng_api_addr_is_loopback(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family != AF_INET6)
        return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

int eng_api_check_exposure(const eng_config *cfg, char *err, size_t cap) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (eng_api_parse_addr(cfg->http_addr, &ss, &len, err, cap))
        return -1;
    if (eng_auth_enabled(cfg) || eng_api_addr_is_loopback(&ss))
        return 0;
    if (cfg->insecure_no_auth) {
        eng_log(ENG_LOG_WARN, "http.insecure",
                "serving the REST API on %s without authentication (SLUICE_INSECURE_NO_AUTH): "
                "whoever reaches the port can change rules and publish", cfg->http_addr);
        return 0;
    }
    snprintf(err, cap,
             "refusing to serve the REST API on %s without credentials: whoever reaches the port "
             "could change rules and publish. Configure a credential (SLUICE_ACCESS_KEY_ID and "
             "SLUICE_SECRET_ACCESS_KEY, or auth.credentials in the config file; the AWS CLI "
             "then signs with the same pair from `aws configure`) or a token "
             "(SLUICE_ADMIN_TOKEN, or auth.tokens), or listen on loopback "
             "(SLUICE_HTTP_ADDR=127.0.0.1:8088), or, knowingly, set SLUICE_INSECURE_NO_AUTH=1",
             cfg->http_addr);
    return -1;
}

/* }====== */

/* {====== libmicrohttpd callbacks */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc) {
    conn *k = calloc(1, sizeof *k);
    if (k)
        k->target = strdup(uri ? uri : "");
    return k;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (*(size_t *)cls)++;
    return MHD_YES;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value) {
    conn *k = cls;
    k->headers[k->nheaders].name = key;
    k->headers[k->nheaders++].value = value ? value : "";
    return MHD_YES;
}

static enum MHD_Result send_response(struct MHD_Connection *mc, eng_api_response *rs) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        rs->body_len, rs->body ? rs->body : (void *)"", MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc = MHD_NO;
    if (r) {
        if (rs->content_type)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
        if (rs->error_type)
            MHD_add_response_header(r, "x-amzn-ErrorType", rs->error_type);
        for (size_t i = 0; i < rs->nheaders; i++)
            MHD_add_response_header(r, rs->headers[i].name, rs->headers[i].value);
        if (rs->close)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
        rc = MHD_queue_response(mc, (unsigned)rs->status, r);
        MHD_destroy_response(r);
    }
    eng_api_response_deinit(rs);
    return rc;
}

/* First call: the request line and headers are in. */
static enum MHD_Result start(eng_admin *a, struct MHD_Connection *mc, conn *k,
                             const char *method) {
    size_t n = 0;
    MHD_get_connection_values(mc, MHD_HEADER_KIND, count_header, &n);
    k->headers = calloc(n ? n : 1, sizeof *k->headers);
    if (!k->headers)
        return MHD_NO;
    MHD_get_connection_values(mc, MHD_HEADER_KIND, add_header, k);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, k->client,
                  sizeof k->client);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, k->client,
                  sizeof k->client);
    char *q = strchr(k->target, '?');
    if (q)
        *q++ = '\0';
    k->rq = (eng_api_request){.method = method, .path = k->target, .query = q ? q : "",
                              .headers = k->headers, .nheaders = k->nheaders,
                              .client = k->client, .now = (int64_t)time(NULL)};
    eng_api_response rs = {0};
    if (eng_api_admit(a->api, &k->rq, &rs))
        return send_response(mc, &rs);
    k->limit = eng_api_body_limit(&k->rq);
    return MHD_YES;
}

static enum MHD_Result append(conn *k, const char *data, size_t n) {
    if (n > k->limit - k->len) {
        eng_log(ENG_LOG_INFO, "http.refused", "%s %.200s from %s: a chunked body over %zu bytes; "
                "connection closed", k->rq.method, k->rq.path, k->client, k->limit);
        return MHD_NO;
    }
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap : 4096;
        while (cap < k->len + n)
            cap *= 2;
        char *b = realloc(k->body, cap);
        if (!b)
            return MHD_NO;
        k->body = b;
        k->cap = cap;
    }
    memcpy(k->body + k->len, data, n);
    k->len += n;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    eng_admin *a = cls;
    conn *k = *con_cls;
    if (!k || !k->target)
        return MHD_NO;
    if (!k->started) {
        k->started = 1;
        return start(a, mc, k, method);
    }
    if (*upload_size) {
        enum MHD_Result rc = append(k, upload, *upload_size);
        *upload_size = 0;
        return rc;
    }
    k->rq.body = k->body;
    k->rq.body_len = k->len;
    eng_api_response rs = {0};
    eng_api_dispatch(a->api, &k->rq, &rs);
    return send_response(mc, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    conn *k = *con_cls;
    if (k) {
        free(k->target);
        free(k->headers);
        free(k->body);
        free(k);
    }
    *con_cls = NULL;
}

/* libmicrohttpd's own messages (a client over the connection limit, a malformed request). */
static void on_log(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    eng_log(ENG_LOG_INFO, "http.server", "%s", msg);
}

/* }====== */

eng_admin *eng_admin_start(eng_env *env, eng_error *e) {
    const eng_config *cfg = env->cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    char err[400];
    if (eng_api_parse_addr(cfg->http_addr, &ss, &len, err, sizeof err)) {
        eng_error_set(e, 500, "InternalException", "%s", err);
        return NULL;
    }
    eng_admin *a = calloc(1, sizeof *a);
    if (!a) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    a->api = eng_api_new(env, e);
    if (!a->api) {
        free(a);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    a->d = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_per_client,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_timeout_s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, a, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
        MHD_OPTION_END);
    if (!a->d) {
        eng_error_set(e, 500, "InternalException", "cannot listen on %s", cfg->http_addr);
        eng_api_free(a->api);
        free(a);
        return NULL;
    }
    return a;
}

void eng_admin_stop(eng_admin *a) {
    if (!a)
        return;
    MHD_stop_daemon(a->d);
    eng_api_free(a->api);
    free(a);
}

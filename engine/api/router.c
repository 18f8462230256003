/*
 * router.c -- from an eng_api_request to an eng_api_response: the route table (routes.c)
 * matched against the raw path, authentication (auth.c) in its two steps, body limits, and
 * the decoding a handler needs.
 *
 * Matching works on the path as sent, segment by segment, so a percent-encoded '/' inside a
 * rule name or topic never splits a segment: the AWS CLI sends the topic "a/b" as
 * /topics/a%2Fb, and /topics/{topic+} (greedy, AWS's notation) also takes curl's /topics/a/b.
 * One trailing '/' is ignored. Parameters are percent-decoded only after a match, strictly
 * (a bad escape or an encoded NUL is a 400); query values leniently, as libmicrohttpd did (a
 * '%' that starts no escape stays a '%'; '+' stays '+', which ListTopicRules' topic filter
 * needs). sigv4.c canonicalizes the query with the same two helpers.
 *
 * A path that matches no route, or a route but not its method, still needs a caller of any
 * role before it is told 404 or 405, so the API cannot be mapped without credentials. Every
 * refusal is logged (event http.refused) with the client, the route and the caller's key id
 * or token number; never a secret, a token or a signature.
 */
#include "api_int.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SMALL_BODY 4096 /* what a route without a body still accepts ("{}" and the like) */

struct eng_api {
    eng_env *env;
    const eng_config *cfg;
};

eng_api *eng_api_new(eng_env *env, eng_error *e) {
    eng_api *api = calloc(1, sizeof *api);
    if (!api) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    api->env = env;
    api->cfg = env->cfg;
    return api;
}

void eng_api_free(eng_api *api) { free(api); }

/* {====== responses */

void eng_api_response_deinit(eng_api_response *rs) {
    free(rs->body);
    rs->body = NULL;
    rs->body_len = 0;
}

void eng_api__reply(eng_api_response *rs, int status, const char *ctype, const char *body,
                    size_t len) {
    eng_api_response_deinit(rs);
    rs->status = status;
    rs->content_type = ctype;
    rs->error_type = NULL;
    rs->body = malloc(len + 1);
    if (!rs->body) {
        rs->status = 500;
        return;
    }
    memcpy(rs->body, body, len);
    rs->body[len] = '\0';
    rs->body_len = len;
}

void eng_api__json(eng_api_response *rs, int status, const char *json) {
    eng_api__reply(rs, status, "application/json", json, strlen(json));
}

void eng_api__json_take(eng_api_response *rs, int status, char *json) {
    if (!json) {
        eng_api__fail(rs, 500, "InternalException", "out of memory");
        return;
    }
    eng_api_response_deinit(rs);
    rs->status = status;
    rs->content_type = "application/json";
    rs->error_type = NULL;
    rs->body = json;
    rs->body_len = strlen(json);
}

void eng_api__error(eng_api_response *rs, const eng_error *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", e->message);
    if (e->has_diag) {
        cJSON_AddStringToObject(o, "code", sql_status_name(e->diag.code));
        cJSON_AddNumberToObject(o, "line", e->diag.line);
        cJSON_AddNumberToObject(o, "column", e->diag.col);
        cJSON_AddNumberToObject(o, "offset", e->diag.offset);
        cJSON_AddNumberToObject(o, "length", e->diag.len);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    eng_api__reply(rs, e->status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    rs->error_type = e->type;
    free(s);
}

void eng_api__fail(eng_api_response *rs, int status, const char *type, const char *fmt, ...) {
    eng_error e;
    memset(&e, 0, sizeof e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    e.status = status;
    e.type = type;
    eng_api__error(rs, &e);
}

/* }====== */

/* {====== matching */

const char *eng_api__header(const eng_api_request *rq, const char *name) {
    for (size_t i = 0; i < rq->nheaders; i++)
        if (rq->headers[i].name && !strcasecmp(rq->headers[i].name, name))
            return rq->headers[i].value ? rq->headers[i].value : "";
    return NULL;
}

typedef struct span {
    const char *p;
    size_t n;
} span;

/* Matches path[0..n) against pattern; the raw text of each parameter goes to par. */
static int match(const char *pattern, const char *path, size_t n, span *par, size_t *npar) {
    const char *p = pattern, *s = path, *end = path + n;
    *npar = 0;
    while (*p) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            int greedy = close[-1] == '+';
            const char *e = greedy ? end : memchr(s, '/', (size_t)(end - s));
            e = e ? e : end;
            if (e == s || *npar == ENG_API_MAX_PARAMS)
                return 0;
            par[*npar].p = s;
            par[(*npar)++].n = (size_t)(e - s);
            s = e;
            p = close + 1;
        } else {
            if (s == end || *s != *p)
                return 0;
            s++;
            p++;
        }
    }
    return s == end;
}

/* The route for rq; NULL with *path_known set when the path matches a route of another
 * method. */
static const eng_route *find(const eng_api_request *rq, span *par, size_t *npar,
                             int *path_known) {
    size_t n = strlen(rq->path);
    if (n > 1 && rq->path[n - 1] == '/')
        n--;
    *path_known = 0;
    for (const eng_route *r = eng_api_routes; r->method; r++) {
        if (!match(r->pattern, rq->path, n, par, npar))
            continue;
        if (!strcmp(r->method, rq->method))
            return r;
        *path_known = 1;
    }
    return NULL;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t eng_api__unescape(const char *s, size_t n, char *out, int strict) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (s[i] == '%' && hi >= 0 && lo >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '%' && strict) {
            return (size_t)-1;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

int eng_api__query_next(const char **q, const char **k, size_t *kl, const char **v,
                        size_t *vl) {
    const char *p = *q;
    while (*p == '&')
        p++;
    if (!*p) {
        *q = p;
        return 0;
    }
    size_t len = strcspn(p, "&");
    const char *eq = memchr(p, '=', len);
    *k = p;
    *kl = eq ? (size_t)(eq - p) : len;
    *v = eq ? eq + 1 : p + len;
    *vl = eq ? len - *kl - 1 : 0;
    *q = p + len;
    return 1;
}

/* s[0..n) decoded into a new C string; NULL on OOM, or (strict) with *bad set when s holds a
 * malformed escape or an encoded NUL. */
static char *decode(const char *s, size_t n, int strict, int *bad) {
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t len = eng_api__unescape(s, n, out, strict);
    if (len == (size_t)-1 || (strict && memchr(out, '\0', len))) {
        *bad = 1;
        free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
}

/* }====== */

/* {====== the two steps */

static void refuse(eng_api_request *rq, eng_api_response *rs, int code, const char *msg) {
    eng_auth_count_refusal(code);
    eng_api__fail(rs, eng_auth_status(code), eng_auth_type(code), "%s", msg);
    if (code == ENG_AUTH_E_TOKEN) {
        rs->headers[0].name = "WWW-Authenticate";
        rs->headers[0].value = "Bearer realm=\"sluice\"";
        rs->nheaders = 1;
    }
    eng_log(ENG_LOG_INFO, "http.refused", "%s %.200s from %s (%s): %s: %s", rq->method,
            rq->path, rq->client ? rq->client : "?", rq->who.who, eng_auth_type(code), msg);
}

static int need_of(const eng_route *r) { return r ? r->need : ENG_NEED_ANY; }

int eng_api_admit(eng_api *api, eng_api_request *rq, eng_api_response *rs) {
    rq->admitted = 0;
    rq->route = NULL;
    if (!rq->method || !rq->path || rq->path[0] != '/') {
        eng_api__fail(rs, 400, "InvalidRequestException", "the request path must start with /");
        rs->close = 1;
        return 1;
    }
    span par[ENG_API_MAX_PARAMS];
    size_t npar;
    int path_known;
    rq->route = find(rq, par, &npar, &path_known);
    char msg[512];
    int rc = eng_auth_begin(api->cfg, rq, need_of(rq->route), msg, sizeof msg);
    if (rc) {
        refuse(rq, rs, rc, msg);
        rs->close = 1;
        return 1;
    }
    if (!rq->route) {
        if (path_known)
            eng_api__fail(rs, 405, "InvalidRequestException", "%s is not allowed on this path",
                          rq->method);
        else
            eng_api__fail(rs, 404, "ResourceNotFoundException", "no such route: %s %.200s",
                          rq->method, rq->path);
        rs->close = 1;
        return 1;
    }
    const char *cl = eng_api__header(rq, "Content-Length");
    size_t limit = eng_api_body_limit(rq);
    if (cl && strtoull(cl, NULL, 10) > limit) {
        eng_api__fail(rs, 413, "RequestEntityTooLargeException",
                      "the request body is larger than %zu bytes, the limit of this call", limit);
        rs->close = 1;
        return 1;
    }
    rq->admitted = 1;
    return 0;
}

size_t eng_api_body_limit(const eng_api_request *rq) {
    return rq->route && rq->route->max_body ? rq->route->max_body : SMALL_BODY;
}

/* The decoded query. -1 on OOM. */
static int parse_query(eng_api_call *c, const char *q) {
    if (!q || !*q)
        return 0;
    c->args = calloc(strlen(q) / 2 + 1, sizeof *c->args); /* a pair takes at least "k&" */
    if (!c->args)
        return -1;
    const char *k, *v;
    size_t kl, vl;
    while (eng_api__query_next(&q, &k, &kl, &v, &vl)) {
        int bad = 0;
        eng_api_arg *a = &c->args[c->nargs++];
        a->key = decode(k, kl, 0, &bad);
        a->value = decode(v, vl, 0, &bad);
        if (!a->key || !a->value)
            return -1;
    }
    return 0;
}

const char *eng_api__arg(const eng_api_call *c, const char *key) {
    for (size_t i = 0; i < c->nargs; i++)
        if (!strcmp(c->args[i].key, key))
            return c->args[i].value;
    return NULL;
}

static void call_deinit(eng_api_call *c) {
    for (size_t i = 0; i < c->nparam; i++)
        free(c->param[i]);
    for (size_t i = 0; i < c->nargs; i++) {
        free(c->args[i].key);
        free(c->args[i].value);
    }
    free(c->args);
}

void eng_api_dispatch(eng_api *api, eng_api_request *rq, eng_api_response *rs) {
    if (!rq->admitted || !rq->route) {
        eng_api__fail(rs, 500, "InternalException", "request dispatched before it was admitted");
        return;
    }
    const eng_route *r = rq->route;
    size_t limit = eng_api_body_limit(rq);
    if (rq->body_len > limit) {
        eng_api__fail(rs, 413, "RequestEntityTooLargeException",
                      "the request body is larger than %zu bytes, the limit of this call", limit);
        return;
    }
    char msg[512];
    int rc = eng_auth_finish(api->cfg, rq, r->need, msg, sizeof msg);
    if (rc) {
        refuse(rq, rs, rc, msg);
        return;
    }
    eng_api_call c = {.env = api->env, .rq = rq};
    span par[ENG_API_MAX_PARAMS];
    size_t npar;
    size_t n = strlen(rq->path);
    if (n > 1 && rq->path[n - 1] == '/')
        n--;
    match(r->pattern, rq->path, n, par, &npar);
    for (size_t i = 0; i < npar; i++) {
        int bad = 0;
        c.param[c.nparam] = decode(par[i].p, par[i].n, 1, &bad);
        if (!c.param[c.nparam]) {
            if (bad)
                eng_api__fail(rs, 400, "InvalidRequestException",
                              "the path holds a malformed percent-encoding");
            else
                eng_api__fail(rs, 500, "InternalException", "out of memory");
            goto out;
        }
        c.nparam++;
    }
    if (parse_query(&c, rq->query)) {
        eng_api__fail(rs, 500, "InternalException", "out of memory");
        goto out;
    }
    r->handler(&c, rs);
out:
    call_deinit(&c);
}

void eng_api_handle(eng_api *api, eng_api_request *rq, eng_api_response *rs) {
    if (eng_api_admit(api, rq, rs) == 0)
        eng_api_dispatch(api, rq, rs);
}

/* }====== */

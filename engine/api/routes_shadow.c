/*
 * routes_shadow.c -- AWS IoT's device shadow data plane (iot-data), as botocore sends it:
 *
 *   GET    /things/{thingName}/shadow?name=        GetThingShadow      (reader)
 *   POST   /things/{thingName}/shadow?name=        UpdateThingShadow   (publisher; raw body)
 *   DELETE /things/{thingName}/shadow?name=        DeleteThingShadow   (publisher)
 *   GET    /api/things/shadow/ListNamedShadowsForThing/{thingName}?nextToken=&pageSize=
 *
 * The router has percent-decoded the path (the CLI sends my%3AThing); the query values are
 * decoded here with their length, so an encoded NUL in ?name= is a name with a NUL in it (which
 * the service refuses) rather than a shorter, valid one. The shadow service (engine/shadow/)
 * does everything else, AWS's validation included, and its reply is sent as it is: status,
 * x-amzn-ErrorType, and the document or {"message"}, the shapes botocore turns into the modeled
 * exceptions (ResourceNotFoundException, ConflictException, ...). A successful update or delete
 * also publishes the same /accepted, /delta and /documents messages as an MQTT request
 * (engine/shadow/runtime.c).
 *
 * An update blocks its caller until the store has made it durable (one group-committed fsync):
 * that holds this connection's own thread only (server.c runs a thread per connection), so the
 * other connections and the health checks go on. Concurrent REST updates are what the store's
 * group commit batches.
 */
#include "api_int.h"

#include <string.h>

#include "../shadow/shadow.h"

#define KEY_MAX 16   /* the longest query key of these routes, decoded ("nextToken") */
#define VALUE_MAX 160 /* the longest value buffer a caller passes (cap) */

/* A query value decoded into buf (cap <= VALUE_MAX bytes), with its length: NULL when key is
 * absent, and *bad set when the value cannot be a valid one anyway (longer than cap - 1 once
 * decoded, or holding a NUL byte). The raw query, not c->args: those are NUL-terminated. */
static const char *query_value(const eng_api_call *c, const char *key, char *buf, size_t cap,
                               size_t *len, int *bad) {
    const char *q = c->rq->query ? c->rq->query : "", *k, *v;
    size_t kl, vl, klen = strlen(key);
    char kraw[3 * KEY_MAX], raw[3 * VALUE_MAX];
    *bad = 0;
    *len = 0;
    while (eng_api__query_next(&q, &k, &kl, &v, &vl)) {
        if (kl > sizeof kraw || eng_api__unescape(k, kl, kraw, 0) != klen ||
            memcmp(kraw, key, klen))
            continue;
        buf[0] = '\0';
        if (vl > 3 * (cap - 1)) { /* a decoded value is at least a third of its raw length */
            *bad = 1;
            return buf;
        }
        size_t n = eng_api__unescape(v, vl, raw, 0);
        if (n > cap - 1 || memchr(raw, '\0', n)) {
            *bad = 1;
            return buf;
        }
        memcpy(buf, raw, n);
        buf[n] = '\0';
        *len = n;
        return buf;
    }
    return NULL;
}

/* The service, or 503 when shadows are off (shadows.enabled / SLUICE_SHADOWS=off). */
static eng_shadows *service(eng_api_call *c, eng_api_response *rs) {
    if (c->env->shadows)
        return c->env->shadows;
    eng_api__fail(rs, 503, "ServiceUnavailableException",
                  "the device shadow service is off on this server (shadows.enabled is false or "
                  "SLUICE_SHADOWS=off)");
    return NULL;
}

/* The service's reply as the HTTP response (the body is taken). */
static void answer(eng_api_response *rs, eng_shadow_reply *r) {
    if (!r->body) {
        eng_api__fail(rs, r->status ? r->status : 500, "InternalFailureException",
                      "Internal service failure");
        return;
    }
    eng_api__json_take(rs, r->status, r->body);
    rs->error_type = r->error_type;
    r->body = NULL;
}

/* GET, POST and DELETE /things/{thingName}/shadow?name= */
static void shadow_op(eng_api_call *c, eng_api_response *rs, eng_shadow_op op) {
    char name[ENG_SHADOW_NAME_MAX + 2];
    size_t name_len = 0;
    int bad;
    const char *shadow = query_value(c, "name", name, sizeof name, &name_len, &bad);
    if (shadow && (bad || name_len == 0)) {
        /* an empty ?name= (botocore refuses one), or a name no decoding makes valid */
        eng_api__fail(rs, 400, "InvalidRequestException",
                      "Invalid shadow name: expected 1 to 64 characters of [$a-zA-Z0-9:_-]");
        return;
    }
    eng_shadows *sh = service(c, rs); /* after the query: the router fuzzer runs without one */
    if (!sh)
        return;
    const char *thing = c->param[0];
    eng_shadow_req req = {.op = op,
                          .transport = ENG_SHADOW_REST,
                          .thing = thing,
                          .thing_len = strlen(thing),
                          .shadow = shadow,
                          .shadow_len = name_len,
                          .payload = op == ENG_SHADOW_UPDATE ? c->rq->body : NULL,
                          .payload_len = op == ENG_SHADOW_UPDATE ? c->rq->body_len : 0};
    eng_shadow_reply r = {0};
    eng_shadows_rest(sh, &req, &r);
    answer(rs, &r);
    eng_shadow_reply_deinit(&r);
}

void eng_api__shadow_get(eng_api_call *c, eng_api_response *rs) {
    shadow_op(c, rs, ENG_SHADOW_GET);
}

void eng_api__shadow_update(eng_api_call *c, eng_api_response *rs) {
    shadow_op(c, rs, ENG_SHADOW_UPDATE);
}

void eng_api__shadow_delete(eng_api_call *c, eng_api_response *rs) {
    shadow_op(c, rs, ENG_SHADOW_DELETE);
}

void eng_api__shadow_list(eng_api_call *c, eng_api_response *rs) {
    char token[2 * ENG_SHADOW_NAME_MAX + 2], size[8];
    size_t tl, sl;
    int bad_token, bad_size;
    const char *next = query_value(c, "nextToken", token, sizeof token, &tl, &bad_token);
    const char *page = query_value(c, "pageSize", size, sizeof size, &sl, &bad_size);
    if (bad_token) /* too long or with a NUL: no token we gave out */
        next = "-";
    if (bad_size)
        page = "-";
    eng_shadows *sh = service(c, rs);
    if (!sh)
        return;
    const char *thing = c->param[0];
    eng_shadow_reply r = {0};
    eng_shadow_list(eng_shadows_service(sh), thing, strlen(thing), next, page, &r);
    answer(rs, &r);
    eng_shadow_reply_deinit(&r);
}

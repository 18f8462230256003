/*
 * func_context.c -- builtins that read the message's context rather than its payload
 * (checklist §15 "Message context", plus the MQTT 5 property functions).
 *
 * Everything comes from the sql_ctx: ctx->msg (client id, principal, account, trace id,
 * protocol, MQTT 5 properties), ctx->topic (already without any Basic Ingest prefix),
 * ctx->now_ms (timestamp(), frozen per message) and ctx->version. None of these functions is
 * deterministic, so the compiler never folds them. Strings borrowed from the message are
 * returned without copying: a value never outlives the evaluation it was made in.
 *
 * get_user_properties' result shape is not documented (checklist §15: UNCONFIRMED). We return
 * Arrays, which keep both order and repeated keys (MQTT 5 allows a key several times):
 *   get_user_properties('k') -> ["v1", "v2"]        (Undefined when k is absent)
 *   get_user_properties()    -> [{"k": "v1"}, {"k": "v2"}, {"j": "w"}]
 * Rejected: one object {k: v}, which would have to drop or merge repeated keys.
 *
 * newuuid() draws its 122 random bits from getrandom(), buffered per thread so that a message
 * costs at most one syscall per 16 UUIDs; or, when the message carries a seed (sql.h), derives
 * them with HMAC-SHA256 from the seed, the call site and how often that site already ran in
 * this run of the VM, so that a replay gets the same UUIDs. Rejected: a counter over all the
 * newuuid() calls of an evaluation, which would hand out different UUIDs when the engine
 * renders the templates in another order or renders one twice.
 */
#include "sql_int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* {====== helpers */

static int cstr(const char *s, sql_value *out) {
    *out = s ? sql__str(s, (uint32_t)strlen(s)) : SQL_UNDEF;
    return 0;
}

static int is_mqtt(const sql_ctx *ctx) {
    return ctx->msg && ctx->msg->protocol == SQL_PROTO_MQTT;
}

/* }====== */

/* {====== topic, ids, clock, version */

/* topic(): the whole topic; topic(n): its n-th level, 1-based. A non-Int n, n < 1 or n past
 * the last level gives Undefined. Empty levels count ("a//b": topic(2) = ""). */
static int fn_topic(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    if (!ctx->topic || argc > 1)
        return 0;
    if (argc == 0) {
        *out = sql__str(ctx->topic, (uint32_t)ctx->topic_len);
        return 0;
    }
    int64_t k;
    if (argv[0].t != SQL_T_INT || sql__num_to_i64(&argv[0], SQL_ROUND_TRUNC, &k) < 0 || k < 1)
        return 0;
    const char *t = ctx->topic, *end = t + ctx->topic_len;
    for (int64_t level = 1;; level++) {
        const char *slash = memchr(t, '/', (size_t)(end - t));
        const char *e = slash ? slash : end;
        if (level == k) {
            *out = sql__str(t, (uint32_t)(e - t));
            return 0;
        }
        if (!slash)
            return 0;
        t = slash + 1;
    }
}

static int fn_clientid(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    if (is_mqtt(ctx) && ctx->msg->clientid)
        return cstr(ctx->msg->clientid, out);
    *out = sql__str("n/a", 3);
    return 0;
}

static int fn_principal(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return cstr(ctx->msg ? ctx->msg->principal : NULL, out);
}

static int fn_accountid(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return cstr(ctx->msg ? ctx->msg->accountid : NULL, out);
}

/* traceid(): only MQTT messages carry a trace id. */
static int fn_traceid(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return cstr(is_mqtt(ctx) ? ctx->msg->traceid : NULL, out);
}

static int fn_timestamp(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    int64_t ms = ctx->now_ms;
    if (ms == 0) {
        /* The VM freezes now_ms per message; a bare ctx (tests, constant contexts) reads the
         * clock so that timestamp() is never the epoch. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    *out = sql__int(ms);
    return 0;
}

static int fn_sql_version(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return cstr(sql_version_name(ctx->version), out);
}

static _Thread_local unsigned char rnd[256];
static _Thread_local size_t rnd_pos = sizeof rnd;

/* The seed of the message, or NULL when it has none (all zero). */
static const uint8_t *uuid_seed(const sql_ctx *ctx) {
    static const uint8_t zero[16];
    if (!ctx->msg || !ctx->uses || !memcmp(ctx->msg->uuid_seed, zero, sizeof zero))
        return NULL;
    return ctx->msg->uuid_seed;
}

/* The 16 bytes of the n-th use of call site `site` under `seed` (sql.h, uuid_seed). */
static int derive(const uint8_t *seed, uint32_t site, uint32_t n, unsigned char u[16]) {
    unsigned char msg[15] = "newuuid", md[EVP_MAX_MD_SIZE];
    for (int i = 0; i < 4; i++) {
        msg[7 + i] = (unsigned char)(site >> (8 * i));
        msg[11 + i] = (unsigned char)(n >> (8 * i));
    }
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), seed, 16, msg, sizeof msg, md, &mdlen) || mdlen < 16)
        return -1;
    memcpy(u, md, 16);
    return 0;
}

/* newuuid(): a version 4 (RFC 4122 variant) UUID in lower case: random, or derived from the
 * message's seed. */
static int fn_newuuid(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    unsigned char u[16];
    const uint8_t *seed = uuid_seed(ctx);
    if (seed) {
        sql_site_use *use = &ctx->uses[ctx->site];
        if (use->run != ctx->run)
            *use = (sql_site_use){ctx->run, 0};
        if (derive(seed, ctx->site, use->n++, u) != 0)
            return sql_ctx_error(ctx, SQL_E_RUNTIME, "newuuid: HMAC-SHA256 failed");
    } else {
        if (rnd_pos + 16 > sizeof rnd) {
            if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
                return sql_ctx_error(ctx, SQL_E_RUNTIME, "newuuid: no random source");
            rnd_pos = 0;
        }
        memcpy(u, rnd + rnd_pos, 16);
        rnd_pos += 16;
    }
    u[6] = (unsigned char)((u[6] & 0x0F) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3F) | 0x80);
    char *p = sql__alloc(ctx, 36);
    if (!p)
        return ctx->err;
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            p[o++] = '-';
        p[o++] = hex[u[i] >> 4];
        p[o++] = hex[u[i] & 15];
    }
    *out = sql__str(p, 36);
    out->f = SQL_F_JSAFE;
    return 0;
}

/* }====== */

/* {====== MQTT 5 properties */


static int name_is(const sql_value *v, const char *s) {
    size_t n = strlen(s);
    return v->n == n && memcmp(v->u.s, s, n) == 0;
}

/* get_mqtt_property(name): 'content_type', 'response_topic' (Strings), 'format_indicator'
 * ("UNSPECIFIED_BYTES" / "UTF8_DATA", the republish action's MqttHeaders enum),
 * 'correlation_data' (base64, as MqttHeaders carries it) or 'message_expiry' (Int seconds).
 * An absent property or an unknown name gives Undefined. */
static int fn_get_mqtt_property(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    const sql_mqtt_props *p = ctx->msg ? ctx->msg->props : NULL;
    if (argc != 1 || argv[0].t != SQL_T_STR || !p)
        return 0;
    const sql_value *k = &argv[0];
    if (name_is(k, "content_type"))
        return cstr(p->content_type, out);
    if (name_is(k, "response_topic"))
        return cstr(p->response_topic, out);
    if (name_is(k, "format_indicator")) {
        if (p->format_indicator == 0)
            *out = sql__str("UNSPECIFIED_BYTES", 17);
        else if (p->format_indicator == 1)
            *out = sql__str("UTF8_DATA", 9);
        return 0;
    }
    if (name_is(k, "correlation_data"))
        return p->correlation_data ? sql__base64_encode(ctx, p->correlation_data, p->correlation_len, out)
                                   : 0;
    if (name_is(k, "message_expiry") && p->message_expiry >= 0)
        *out = sql__int(p->message_expiry);
    return 0;
}

/* get_user_properties([key]): see the shapes in the file comment. No properties (or none with
 * that key) gives Undefined. */
static int fn_get_user_properties(sql_ctx *ctx, int argc, const sql_value *argv,
                                  sql_value *out) {
    *out = SQL_UNDEF;
    const sql_mqtt_props *p = ctx->msg ? ctx->msg->props : NULL;
    if (argc > 1 || (argc == 1 && argv[0].t != SQL_T_STR) || !p || p->nuser == 0)
        return 0;
    sql_value *a = sql__alloc(ctx, p->nuser * sizeof *a);
    if (!a)
        return ctx->err;
    size_t k = 0;
    for (size_t i = 0; i < p->nuser; i++) {
        const sql_user_prop *u = &p->user[i];
        if (!u->key || !u->value)
            continue;
        size_t kn = strlen(u->key);
        sql_value v = sql__str(u->value, (uint32_t)strlen(u->value));
        if (argc == 1) {
            if (kn == argv[0].n && memcmp(u->key, argv[0].u.s, kn) == 0)
                a[k++] = v;
            continue;
        }
        sql_member *m = sql__alloc(ctx, sizeof *m);
        if (!m)
            return ctx->err;
        *m = (sql_member){.k = u->key, .klen = (uint32_t)kn, .v = v};
        a[k++] = (sql_value){.t = SQL_T_OBJ, .n = 1, .u.o = m};
    }
    if (k)
        *out = (sql_value){.t = SQL_T_ARR, .n = (uint32_t)k, .u.a = a};
    return 0;
}

/* }====== */

const sql_func sql__func_context[] = {
    {"topic", 0, 1, 0, fn_topic},
    {"clientid", 0, 0, 0, fn_clientid},
    {"principal", 0, 0, 0, fn_principal},
    {"accountid", 0, 0, 0, fn_accountid},
    {"traceid", 0, 0, 0, fn_traceid},
    {"newuuid", 0, 0, 0, fn_newuuid},
    {"timestamp", 0, 0, 0, fn_timestamp},
    {"sql_version", 0, 0, 0, fn_sql_version},
    {"get_mqtt_property", 1, 1, 0, fn_get_mqtt_property},
    {"get_user_properties", 0, 1, 0, fn_get_user_properties},
    {0},
};

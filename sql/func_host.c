/*
 * func_host.c -- builtins that read the host's state through the sql_host callbacks of the
 * message (sql.h): get_thing_shadow(), which in AWS calls the Device Shadow service and in
 * sluice reads the engine's own shadow store.
 *
 *   get_thing_shadow(thingName, shadowName, roleArn)   a named shadow
 *   get_thing_shadow(thingName, roleArn)               the classic shadow
 *
 * The result is the document GetThingShadow returns, as a value (`.state.reported.x` works on
 * it). The arguments follow AWS's rules for function arguments: each is converted to a String
 * (Int 7 is "7"; Null, Undefined, raw bytes give Undefined), and a name that is not a valid
 * AWS thing or shadow name ([a-zA-Z0-9:_-]{1,128}, [$a-zA-Z0-9:_-]{1,64}) gives Undefined, as a
 * shadow that does not exist does, or a message without a host. roleArn must be a String too;
 * sluice has no IAM roles, so its value is not otherwise used.
 *
 * The host copies the document into a buffer the evaluation owns (the arena), snprintf style,
 * so nothing the host owns is borrowed past the call; the JSON is then parsed once, with the
 * usual depth bound. Not deterministic: never constant-folded.
 */
#include "sql_int.h"

#include <string.h>

#define MAX_THING 128
#define MAX_SHADOW 64
#define FIRST_BUF 4096 /* most documents fit; a larger one costs a second call */

/* Converts v to a String naming a thing (shadow == 0) or a shadow (shadow == 1) into
 * out[0..max] (NUL-terminated). 0, or -1 when v is not such a name. */
static int name_arg(sql_ctx *ctx, const sql_value *v, int shadow, char *out, size_t max) {
    const char *s;
    size_t n;
    if (sql__to_str(ctx, v, &s, &n) != 0 || n == 0 || n > max)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '_' || c == '-' || (shadow && c == '$')))
            return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int fn_get_thing_shadow(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    char thing[MAX_THING + 1], shadow[MAX_SHADOW + 1];
    const char *s;
    size_t n;
    *out = SQL_UNDEF;
    if (argc < 2 || argc > 3 || name_arg(ctx, &argv[0], 0, thing, MAX_THING) != 0 ||
        (argc == 3 && name_arg(ctx, &argv[1], 1, shadow, MAX_SHADOW) != 0) ||
        sql__to_str(ctx, &argv[argc - 1], &s, &n) != 0)
        return ctx->err;
    const sql_host *h = ctx->msg ? ctx->msg->host : NULL;
    if (!h || !h->get_shadow)
        return 0;
    size_t cap = FIRST_BUF;
    for (int attempt = 0; attempt < 3; attempt++) {
        char *buf = sql__alloc(ctx, cap);
        if (!buf)
            return ctx->err;
        long len = h->get_shadow(h->ud, thing, argc == 3 ? shadow : NULL, buf, cap);
        if (len == SQL_HOST_NOT_FOUND)
            return 0;
        if (len < 0)
            return sql_ctx_error(ctx, SQL_E_RUNTIME,
                                 "get_thing_shadow: the shadow store could not be read");
        if ((size_t)len > cap) { /* too small: again with the size it asked for */
            cap = (size_t)len;
            continue;
        }
        int rc = sql__json_parse(ctx, buf, (size_t)len, out);
        if (rc == 0 && out->t == SQL_T_OBJ)
            return 0;
        *out = SQL_UNDEF;
        if (rc != 0 && rc != -1) /* out of memory: the parser raised it */
            return rc;
        return sql_ctx_error(ctx, SQL_E_RUNTIME,
                             "get_thing_shadow: the shadow store returned a document that is "
                             "not a JSON object");
    }
    /* the document grew between calls, again and again */
    return sql_ctx_error(ctx, SQL_E_RUNTIME, "get_thing_shadow: the shadow document keeps "
                                             "changing size");
}

const sql_func sql__func_host[] = {
    {"get_thing_shadow", 2, 3, SQL_FN_V2016, fn_get_thing_shadow},
    {0},
};

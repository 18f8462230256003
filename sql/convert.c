/*
 * convert.c -- AWS IoT SQL's implicit conversions and cast().
 *
 * Two tables on AWS's data-types page govern every conversion: the implicit one (what an
 * operator or function does with an argument of the wrong type) and the cast() one. They
 * differ in small ways that users trip over, so each rule below names its column:
 *   implicit: String -> Decimal only for ^-?\d+(\.\d+)?((?i)E-?\d+)?$, Null -> Null,
 *             Boolean -> Undefined, Array/Object -> JSON text for String;
 *   cast:     Boolean -> 1/0, Decimal -> Int rounds toward zero ("rounded down" read as
 *             Java's RoundingMode.DOWN), Null -> Undefined.
 * No conversion ever produces an Array, Object, Null or Undefined from another type.
 */
#include "sql_int.h"

#include <string.h>
#include <strings.h>

int sql__to_str(sql_ctx *ctx, const sql_value *v, const char **s, size_t *n) {
    switch (v->t) {
    case SQL_T_STR:
        *s = v->u.s;
        *n = v->n;
        return 0;
    case SQL_T_BOOL:
        *s = v->u.b ? "true" : "false";
        *n = v->u.b ? 4 : 5;
        return 0;
    case SQL_T_INT:
    case SQL_T_DEC: {
        char *b = sql__alloc(ctx, SQL_NUM_BUFSZ);
        if (!b)
            return -1;
        *n = sql__num_format(v, b);
        *s = b;
        return 0;
    }
    case SQL_T_ARR:
    case SQL_T_OBJ: {
        /* a private buffer: callers (concat, upper, ...) may be using ctx->scratch */
        sql_buf sb;
        sql__buf_init(&sb);
        int rc = sql__json_write(&sb, v) != 0 || sb.oom ? -1 : 0;
        char *b = rc ? NULL : sql__arena_strdup(&ctx->arena, sb.p ? sb.p : "", sb.len);
        *n = sb.len;
        sql__buf_free(&sb);
        if (!b) {
            if (!rc)
                sql_ctx_error(ctx, SQL_E_NOMEM, "out of memory");
            return -1;
        }
        *s = b;
        return 0;
    }
    default:
        return -1;
    }
}

sql_value sql__to_num(sql_ctx *ctx, const sql_value *v) {
    switch (v->t) {
    case SQL_T_INT:
    case SQL_T_DEC:
    case SQL_T_NULL:
        return *v;
    case SQL_T_STR: {
        sql_value r;
        if (sql__num_from_str(ctx, v->u.s, v->n, &r) != 0)
            return SQL_UNDEF;
        return r;
    }
    default:
        return SQL_UNDEF;
    }
}

static int ieq(const char *s, size_t n, const char *w) {
    size_t k = strlen(w);
    return n == k && strncasecmp(s, w, k) == 0;
}

sql_value sql__to_bool(sql_ctx *ctx, const sql_value *v) {
    if (v->t == SQL_T_BOOL)
        return *v;
    if (v->t == SQL_T_STR) {
        if (ieq(v->u.s, v->n, "true"))
            return sql__bool(1);
        if (ieq(v->u.s, v->n, "false"))
            return sql__bool(0);
    }
    return SQL_UNDEF;
}

sql_value sql__cast(sql_ctx *ctx, const sql_value *v, int type) {
    switch (type) {
    case SQL_CAST_STRING: {
        if (v->t == SQL_T_NULL)
            return SQL_UNDEF;
        const char *s;
        size_t n;
        if (sql__to_str(ctx, v, &s, &n) != 0)
            return SQL_UNDEF;
        return sql__str(s, (uint32_t)n);
    }
    case SQL_CAST_INT:
        switch (v->t) {
        case SQL_T_INT: return *v;
        case SQL_T_DEC: return sql__num_to_int(ctx, v, SQL_ROUND_TRUNC);
        case SQL_T_BOOL: return sql__int(v->u.b);
        case SQL_T_STR: {
            sql_value d;
            if (sql__num_from_str(ctx, v->u.s, v->n, &d) != 0)
                return SQL_UNDEF;
            return sql__num_to_int(ctx, &d, SQL_ROUND_TRUNC);
        }
        default: return SQL_UNDEF;
        }
    case SQL_CAST_DECIMAL:
        switch (v->t) {
        case SQL_T_INT: return sql__num_norm(ctx, sql__num_to_dec(ctx, v));
        case SQL_T_DEC: return sql__num_norm(ctx, *v);
        case SQL_T_BOOL:
            return sql__num_norm(ctx, (sql_value){.t = SQL_T_DEC, .e = -1, .u.i = v->u.b ? 10 : 0});
        case SQL_T_STR: {
            sql_value d;
            if (sql__num_from_str(ctx, v->u.s, v->n, &d) != 0)
                return SQL_UNDEF;
            return d;
        }
        default: return SQL_UNDEF;
        }
    case SQL_CAST_DOUBLE: {
        sql_value d = sql__cast(ctx, v, SQL_CAST_DECIMAL);
        if (!sql__is_num(&d))
            return d;
        return sql__num_from_double(ctx, sql__num_to_double(&d));
    }
    case SQL_CAST_BOOL:
        switch (v->t) {
        case SQL_T_BOOL: return *v;
        case SQL_T_INT:
        case SQL_T_DEC: return sql__bool(sql__num_sign(v) != 0);
        case SQL_T_STR: return sql__to_bool(ctx, v);
        default: return SQL_UNDEF;
        }
    default:
        return SQL_UNDEF;
    }
}

int sql__cast_type(const char *name, size_t n, int *v2016) {
    static const struct {
        const char *name;
        int type, v2016;
    } types[] = {
        {"string", SQL_CAST_STRING, 0}, {"nvarchar", SQL_CAST_STRING, 0},
        {"text", SQL_CAST_STRING, 0},   {"ntext", SQL_CAST_STRING, 0},
        {"varchar", SQL_CAST_STRING, 0}, {"int", SQL_CAST_INT, 0},
        {"integer", SQL_CAST_INT, 0},   {"double", SQL_CAST_DOUBLE, 0},
        {"decimal", SQL_CAST_DECIMAL, 1}, {"bool", SQL_CAST_BOOL, 1},
        {"boolean", SQL_CAST_BOOL, 1},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (ieq(name, n, types[i].name)) {
            *v2016 = types[i].v2016;
            return types[i].type;
        }
    }
    *v2016 = 0;
    return -1;
}

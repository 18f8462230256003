/*
 * ops.c -- AWS IoT SQL's operators, table by table (DG iot-sql-operators).
 *
 * The tables are followed literally, including their surprises: `=` never converts ('1' = 1
 * is false) while `<` always converts to Decimal ('10' > 9 is true, 'abc' < 'abd' is
 * Undefined); `+` concatenates as soon as either side is a String and never parses numbers;
 * AND/OR accept the strings "true"/"false" and give Undefined for anything else. One
 * deliberate addition to the AND/OR tables: a side that decides the result wins over an
 * Undefined other side (`true OR missing` is true, `false AND missing` false), which AWS users
 * rely on (`isNull(previous) OR previous.x <> current.x`); `0 OR true` stays Undefined. See
 * sql/README.md for this and the other points AWS leaves open (NULL = NULL, division by zero).
 */
#include "sql_int.h"

#include <string.h>

const sql_value *sql__obj_get(const sql_value *obj, const char *k, size_t klen) {
    const sql_member *m = obj->u.o;
    for (uint32_t i = 0; i < obj->n; i++)
        if (m[i].klen == klen && memcmp(m[i].k, k, klen) == 0)
            return &m[i].v;
    return NULL;
}

/* Recursion: once per level of nesting, below SQL_MAX_VALUE_DEPTH (see json_write.c); deeper
 * values, which the compile-time limits rule out, compare as Undefined. */
#define TOO_DEEP (-2)

static int equal(const sql_value *a, const sql_value *b, int depth) {
    if (a->t == SQL_T_UNDEF || b->t == SQL_T_UNDEF)
        return -1;
    if (sql__is_num(a) && sql__is_num(b))
        return sql__num_cmp(a, b) == 0;
    if (a->t != b->t)
        return 0;
    switch (a->t) {
    case SQL_T_NULL: return 1;
    case SQL_T_BOOL: return a->u.b == b->u.b;
    case SQL_T_STR:
    case SQL_T_BIN: return a->n == b->n && (a->n == 0 || memcmp(a->u.s, b->u.s, a->n) == 0);
    case SQL_T_ARR:
        if (a->n != b->n)
            return 0;
        if (depth >= SQL_MAX_VALUE_DEPTH)
            return TOO_DEEP;
        for (uint32_t i = 0; i < a->n; i++) {
            int eq = equal(&a->u.a[i], &b->u.a[i], depth + 1);
            if (eq != 1)
                return eq == TOO_DEEP ? eq : 0;
        }
        return 1;
    case SQL_T_OBJ:
        if (a->n != b->n)
            return 0;
        if (depth >= SQL_MAX_VALUE_DEPTH)
            return TOO_DEEP;
        for (uint32_t i = 0; i < a->n; i++) {
            const sql_value *w = sql__obj_get(b, a->u.o[i].k, a->u.o[i].klen);
            int eq = w ? equal(&a->u.o[i].v, w, depth + 1) : 0;
            if (eq != 1)
                return eq == TOO_DEEP ? eq : 0;
        }
        return 1;
    default: return 0;
    }
}

int sql__equal(const sql_value *a, const sql_value *b) {
    int eq = equal(a, b, 0);
    return eq == TOO_DEEP ? -1 : eq;
}

/* String/Int/Decimal operands converted to numbers for - * / % and comparisons; Undefined
 * when either is another type or a string that does not convert. */
static int numeric(sql_ctx *ctx, const sql_value *a, const sql_value *b, sql_value *x,
                   sql_value *y) {
    if (!(sql__is_num(a) || a->t == SQL_T_STR) || !(sql__is_num(b) || b->t == SQL_T_STR))
        return -1;
    *x = sql__to_num(ctx, a);
    *y = sql__to_num(ctx, b);
    return sql__is_num(x) && sql__is_num(y) ? 0 : -1;
}

static sql_value concat(sql_ctx *ctx, const sql_value *a, const sql_value *b) {
    const char *s1, *s2;
    size_t n1, n2;
    if (sql__to_str(ctx, a, &s1, &n1) != 0 || sql__to_str(ctx, b, &s2, &n2) != 0)
        return SQL_UNDEF;
    char *r = sql__alloc(ctx, n1 + n2 + 1);
    if (!r)
        return SQL_UNDEF;
    memcpy(r, s1, n1);
    memcpy(r + n1, s2, n2);
    return sql__str(r, (uint32_t)(n1 + n2));
}

/* AND/OR. Both sides Boolean (or "true"/"false"): the usual logic. One side Undefined and the
 * other the value that decides alone (false for AND, true for OR, in either order): that value.
 * Anything else: Undefined. */
static sql_value logic(sql_ctx *ctx, int op, const sql_value *a, const sql_value *b) {
    sql_value x = sql__to_bool(ctx, a), y = sql__to_bool(ctx, b);
    int decides = op == SQL_BIN_OR; /* the value that decides alone */
    if (x.t == SQL_T_BOOL && y.t == SQL_T_BOOL)
        return sql__bool(op == SQL_BIN_AND ? (x.u.b && y.u.b) : (x.u.b || y.u.b));
    if ((x.t == SQL_T_BOOL && x.u.b == decides && b->t == SQL_T_UNDEF) ||
        (y.t == SQL_T_BOOL && y.u.b == decides && a->t == SQL_T_UNDEF))
        return sql__bool(decides);
    return SQL_UNDEF;
}

sql_value sql__op_binary(sql_ctx *ctx, int op, const sql_value *a, const sql_value *b) {
    sql_value x, y, r;
    switch (op) {
    case SQL_BIN_ADD:
        if (a->t == SQL_T_STR || b->t == SQL_T_STR)
            return concat(ctx, a, b);
        if (!sql__is_num(a) || !sql__is_num(b))
            return SQL_UNDEF;
        sql__num_arith(ctx, SQL_NUM_ADD, a, b, &r);
        return r;
    case SQL_BIN_SUB:
    case SQL_BIN_MUL:
    case SQL_BIN_DIV:
    case SQL_BIN_MOD: {
        if (numeric(ctx, a, b, &x, &y))
            return SQL_UNDEF;
        /* a numeric string makes the operation Decimal (AWS: String/Int/Decimal -> Decimal) */
        if ((a->t == SQL_T_STR || b->t == SQL_T_STR) && x.t == SQL_T_INT && y.t == SQL_T_INT)
            x = sql__num_to_dec(ctx, &x);
        static const int nums[] = {[SQL_BIN_SUB] = SQL_NUM_SUB, [SQL_BIN_MUL] = SQL_NUM_MUL,
                                   [SQL_BIN_DIV] = SQL_NUM_DIV, [SQL_BIN_MOD] = SQL_NUM_MOD};
        sql__num_arith(ctx, nums[op], &x, &y, &r);
        return r;
    }
    case SQL_BIN_EQ:
    case SQL_BIN_NE: {
        int eq = sql__equal(a, b);
        if (eq < 0)
            return SQL_UNDEF;
        return sql__bool(op == SQL_BIN_EQ ? eq : !eq);
    }
    case SQL_BIN_LT:
    case SQL_BIN_LE:
    case SQL_BIN_GT:
    case SQL_BIN_GE: {
        if (numeric(ctx, a, b, &x, &y))
            return SQL_UNDEF;
        int c = sql__num_cmp(&x, &y);
        return sql__bool(op == SQL_BIN_LT   ? c < 0
                         : op == SQL_BIN_LE ? c <= 0
                         : op == SQL_BIN_GT ? c > 0
                                            : c >= 0);
    }
    case SQL_BIN_AND:
    case SQL_BIN_OR:
        return logic(ctx, op, a, b);
    default:
        return SQL_UNDEF;
    }
}

sql_value sql__op_not(sql_ctx *ctx, const sql_value *a) {
    sql_value x = sql__to_bool(ctx, a);
    return x.t == SQL_T_BOOL ? sql__bool(!x.u.b) : SQL_UNDEF;
}

sql_value sql__op_neg(sql_ctx *ctx, const sql_value *a) {
    if (sql__is_num(a))
        return sql__num_neg(ctx, a);
    if (a->t == SQL_T_STR) {
        sql_value x = sql__to_num(ctx, a);
        if (!sql__is_num(&x))
            return SQL_UNDEF;
        if (x.t == SQL_T_INT)
            x = sql__num_to_dec(ctx, &x);
        return sql__num_norm(ctx, sql__num_neg(ctx, &x));
    }
    return SQL_UNDEF;
}

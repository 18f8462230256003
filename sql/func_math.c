/*
 * func_math.c -- math and bitwise builtins (checklist §15 "Math", "Bitwise").
 *
 * Every function first maps its arguments through AWS's implicit String -> Decimal conversion
 * (sql__to_num); Boolean, Array, Object, Null and Undefined arguments give Undefined. Then:
 *
 *   - exact functions (abs, ceil, floor, round, sign, trunc, mod, bit*) stay in the decimal
 *     number model of num.c, so abs(-12345678901234567890.5) loses nothing;
 *   - transcendental functions (trig, exp, ln, log, power, sqrt) go through C doubles, as AWS
 *     documents ("Decimal arguments are rounded to double precision"), and come back through
 *     sql__num_from_double (Java's shortest round-trip digits). NaN and infinities, i.e.
 *     imaginary or unbounded results such as acos(2), sqrt(-1), ln(0), give Undefined.
 *
 * rand() uses a per-thread xoshiro256** generator seeded once from getrandom(): the VM must not
 * take a lock or a syscall per call. Rejected: drand48/random (shared hidden state, not
 * thread-safe by contract) and a per-call getrandom() (a syscall per message).
 *
 * Bitwise functions work on int64: an operand that does not fit after truncation toward zero
 * gives Undefined (AWS's Int is 34 digits; Java's long bit ops are 64-bit). bitnot is the
 * two's-complement NOT, bitnot(13) = -14; the doc's "2" is a 4-bit answer (an erratum).
 */
#include "sql_int.h"

#include <math.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* {====== argument helpers */

/* Implicit numeric conversion for a math argument: 0 and *n set (INT or DEC), or -1. */
static int numarg(sql_ctx *ctx, const sql_value *v, sql_value *n) {
    if (v->t == SQL_T_INT || v->t == SQL_T_DEC) {
        *n = *v;
        return 0;
    }
    if (v->t != SQL_T_STR)
        return -1;
    *n = sql__to_num(ctx, v);
    return sql__is_num(n) ? 0 : -1;
}

static int dblarg(sql_ctx *ctx, const sql_value *v, double *d) {
    sql_value n;
    if (numarg(ctx, v, &n) < 0)
        return -1;
    *d = sql__num_to_double(&n);
    return 0;
}

/* Operand of a bitwise function: truncated toward zero into an int64. */
static int bitarg(sql_ctx *ctx, const sql_value *v, int64_t *i) {
    sql_value n;
    if (numarg(ctx, v, &n) < 0)
        return -1;
    return sql__num_to_i64(&n, SQL_ROUND_TRUNC, i);
}

/* }====== */

/* {====== double-valued functions */

typedef double (*d1fn)(double);

static int apply1(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, d1fn f) {
    double x;
    *out = SQL_UNDEF;
    if (argc != 1 || dblarg(ctx, &argv[0], &x) < 0)
        return 0;
    *out = sql__num_from_double(ctx, f(x));
    return 0;
}

#define D1(name, cfn)                                                                              \
    static int fn_##name(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {          \
        return apply1(ctx, argc, argv, out, cfn);                                                  \
    }
D1(acos, acos)
D1(asin, asin)
D1(atan, atan)
D1(cos, cos)
D1(cosh, cosh)
D1(exp, exp)
D1(ln, log)
D1(log, log10)
D1(sin, sin)
D1(sinh, sinh)
D1(sqrt, sqrt)
D1(tan, tan)
D1(tanh, tanh)
#undef D1

static int fn_atan2(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    double y, x;
    *out = SQL_UNDEF;
    if (argc != 2 || dblarg(ctx, &argv[0], &y) < 0 || dblarg(ctx, &argv[1], &x) < 0)
        return 0;
    *out = sql__num_from_double(ctx, atan2(y, x));
    return 0;
}

static int fn_power(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    double a, b;
    *out = SQL_UNDEF;
    if (argc != 2 || dblarg(ctx, &argv[0], &a) < 0 || dblarg(ctx, &argv[1], &b) < 0)
        return 0;
    *out = sql__num_from_double(ctx, pow(a, b));
    return 0;
}

/* xoshiro256** (Blackman & Vigna), per thread; state 0 means "not seeded yet". */
static _Thread_local uint64_t rng[4];

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
    if ((rng[0] | rng[1] | rng[2] | rng[3]) == 0) {
        if (getrandom(rng, sizeof rng, 0) != (ssize_t)sizeof rng) {
            /* No entropy source (very old kernel, seccomp): fall back to the clock; rand()
             * only promises uniformity, not unpredictability. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u;
            rng[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
        }
        rng[3] |= 1; /* never all zero */
    }
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

static int fn_rand(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    /* 53 random bits scaled into [0, 1): every result is exactly representable. */
    double d = (double)(rng_next() >> 11) * 0x1.0p-53;
    *out = argc == 0 ? sql__num_from_double(ctx, d) : SQL_UNDEF;
    return 0;
}

/* }====== */

/* {====== exact functions */

static int fn_abs(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    sql_value n;
    *out = SQL_UNDEF;
    if (argc != 1 || numarg(ctx, &argv[0], &n) < 0)
        return 0;
    *out = sql__num_sign(&n) < 0 ? sql__num_neg(ctx, &n) : n;
    return 0;
}

static int to_int(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, int mode) {
    sql_value n;
    *out = SQL_UNDEF;
    if (argc != 1 || numarg(ctx, &argv[0], &n) < 0)
        return 0;
    *out = n.t == SQL_T_INT ? n : sql__num_to_int(ctx, &n, mode);
    return 0;
}

static int fn_ceil(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return to_int(ctx, argc, argv, out, SQL_ROUND_CEIL);
}

static int fn_floor(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return to_int(ctx, argc, argv, out, SQL_ROUND_FLOOR);
}

/* The doc table says "rounded down" but every example rounds half away from zero. */
static int fn_round(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return to_int(ctx, argc, argv, out, SQL_ROUND_HALF_UP);
}

static int fn_sign(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    sql_value n;
    *out = SQL_UNDEF;
    if (argc != 1 || numarg(ctx, &argv[0], &n) < 0)
        return 0;
    *out = sql__int(sql__num_sign(&n));
    return 0;
}

/* trunc(x, n): n below 0 counts as 0 and above 34 as 34; an INT x is returned as is. */
static int fn_trunc(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    sql_value x, n;
    int64_t places;
    *out = SQL_UNDEF;
    if (argc != 2 || numarg(ctx, &argv[0], &x) < 0 || numarg(ctx, &argv[1], &n) < 0)
        return 0;
    if (sql__num_to_i64(&n, SQL_ROUND_TRUNC, &places) < 0)
        places = sql__num_sign(&n) < 0 ? 0 : 34; /* beyond int64: clamp by sign */
    if (places < 0)
        places = 0;
    if (places > 34)
        places = 34;
    *out = x.t == SQL_T_INT ? x : sql__num_trunc_places(ctx, &x, (int)places);
    return 0;
}

/* mod and remainder are documented as the % operator, conversions included. */
static int fn_mod(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = argc == 2 ? sql__op_binary(ctx, SQL_BIN_MOD, &argv[0], &argv[1]) : SQL_UNDEF;
    return 0;
}

/* True for what nanvl treats as "not a number": Undefined, Null, and the string "NaN" (our
 * number model has no NaN, so Java's Double NaN can only reach us spelled as text). */
static int nanlike(const sql_value *v) {
    if (v->t == SQL_T_UNDEF || v->t == SQL_T_NULL)
        return 1;
    return v->t == SQL_T_STR && v->n == 3 && memcmp(v->u.s, "NaN", 3) == 0;
}

static int fn_nanvl(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = argc == 2 ? (nanlike(&argv[0]) ? argv[1] : argv[0]) : SQL_UNDEF;
    return 0;
}

/* }====== */

/* {====== bitwise */

enum { B_AND, B_OR, B_XOR };

static int bit2(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, int op) {
    int64_t a, b;
    *out = SQL_UNDEF;
    if (argc != 2 || bitarg(ctx, &argv[0], &a) < 0 || bitarg(ctx, &argv[1], &b) < 0)
        return 0;
    *out = sql__int(op == B_AND ? (a & b) : op == B_OR ? (a | b) : (a ^ b));
    return 0;
}

static int fn_bitand(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return bit2(ctx, argc, argv, out, B_AND);
}

static int fn_bitor(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return bit2(ctx, argc, argv, out, B_OR);
}

static int fn_bitxor(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return bit2(ctx, argc, argv, out, B_XOR);
}

static int fn_bitnot(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    int64_t a;
    *out = SQL_UNDEF;
    if (argc != 1 || bitarg(ctx, &argv[0], &a) < 0)
        return 0;
    *out = sql__int(~a);
    return 0;
}

/* }====== */

#define DET SQL_FN_DETERMINISTIC

const sql_func sql__func_math[] = {
    {"abs", 1, 1, DET, fn_abs},
    {"acos", 1, 1, DET, fn_acos},
    {"asin", 1, 1, DET, fn_asin},
    {"atan", 1, 1, DET, fn_atan},
    {"atan2", 2, 2, DET, fn_atan2},
    {"ceil", 1, 1, DET, fn_ceil},
    {"cos", 1, 1, DET, fn_cos},
    {"cosh", 1, 1, DET, fn_cosh},
    {"exp", 1, 1, DET, fn_exp},
    {"floor", 1, 1, DET, fn_floor},
    {"ln", 1, 1, DET, fn_ln},
    {"log", 1, 1, DET, fn_log},
    {"mod", 2, 2, DET, fn_mod},
    {"remainder", 2, 2, DET, fn_mod},
    {"nanvl", 2, 2, DET, fn_nanvl},
    {"power", 2, 2, DET, fn_power},
    {"rand", 0, 0, 0, fn_rand},
    {"round", 1, 1, DET, fn_round},
    {"sign", 1, 1, DET, fn_sign},
    {"sin", 1, 1, DET, fn_sin},
    {"sinh", 1, 1, DET, fn_sinh},
    {"sqrt", 1, 1, DET, fn_sqrt},
    {"tan", 1, 1, DET, fn_tan},
    {"tanh", 1, 1, DET, fn_tanh},
    {"trunc", 2, 2, DET, fn_trunc},
    {"bitand", 2, 2, DET, fn_bitand},
    {"bitor", 2, 2, DET, fn_bitor},
    {"bitxor", 2, 2, DET, fn_bitxor},
    {"bitnot", 1, 1, DET, fn_bitnot},
    {0},
};

/*
 * func_string.c -- string builtins (checklist §15 "Strings").
 *
 * Arguments go through the standard String conversion (sql__to_str: numbers formatted, booleans
 * "true"/"false", arrays and objects as compact JSON); Null, Undefined and raw payload bytes give
 * Undefined. Numeric arguments (chr, lpad/rpad counts, substring indexes) go through the
 * String -> Decimal conversion and are then rounded as each function's table says.
 *
 * Strings are UTF-8 byte ranges. "Characters" (length, indexof, substring) are Unicode code
 * points, counted as the bytes that are not UTF-8 continuation bytes, so malformed input still
 * gets a consistent answer instead of an error. Rejected: Java's UTF-16 code units (which AWS's
 * JVM probably uses, making length("😀") = 2): the checklist asks for characters, and code
 * points never split a character in two.
 *
 * lower/upper map ASCII plus the Latin-1, Latin Extended-A, Greek and Cyrillic letters whose
 * case pair has the same UTF-8 length, so results are built in one pass into a buffer of the
 * input's size. Rejected: towlower()/towupper(), which depend on the process locale (a global
 * that an embedding application owns), and full Unicode special casing (ß -> SS), which needs
 * tables for little benefit in device telemetry.
 *
 * Results live in the evaluation arena; a function whose result equals its input (trim of an
 * untrimmed string) returns a slice of the input without copying.
 */
#include "sql_int.h"

#include <string.h>

/* {====== helpers */

/* Standard String conversion of an argument: 0 with s/n set, or -1 (Undefined). */
static int strarg(sql_ctx *ctx, const sql_value *v, const char **s, size_t *n) {
    if (v->t == SQL_T_NULL || v->t == SQL_T_UNDEF || v->t == SQL_T_BIN)
        return -1;
    return sql__to_str(ctx, v, s, n) < 0 ? -1 : 0;
}

/* Numeric argument rounded by `mode` into an int64 clamped to [lo, hi]. -1 when the argument
 * is not numeric after conversion. Values beyond int64 clamp by their sign. */
static int intarg(sql_ctx *ctx, const sql_value *v, int mode, int64_t lo, int64_t hi,
                  int64_t *out) {
    sql_value n = (v->t == SQL_T_INT || v->t == SQL_T_DEC) ? *v : SQL_UNDEF;
    if (v->t == SQL_T_STR)
        n = sql__to_num(ctx, v);
    if (!sql__is_num(&n))
        return -1;
    int64_t i;
    if (sql__num_to_i64(&n, mode, &i) < 0)
        i = sql__num_sign(&n) < 0 ? lo : hi;
    *out = i < lo ? lo : i > hi ? hi : i;
    return 0;
}

static int iscont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Number of code points in s[0..n). */
static size_t nchars(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += !iscont((unsigned char)s[i]);
    return k;
}

/* Byte offset of code point number `ci` (ci <= nchars; ci == nchars gives n). */
static size_t byteoff(const char *s, size_t n, size_t ci) {
    size_t i = 0;
    while (i < n) {
        if (!iscont((unsigned char)s[i])) {
            if (ci == 0)
                return i;
            ci--;
        }
        i++;
    }
    return n;
}

static int setstr(sql_ctx *ctx, const char *s, size_t n, sql_value *out) {
    if (n > UINT32_MAX)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "string result too long");
    *out = sql__str(s, (uint32_t)n);
    return 0;
}

/* }====== */

/* {====== chr, length, numbytes, indexof, startswith, endswith */

/* chr(n): the ASCII character with code n rounded down, as AWS's table says ("the ASCII
 * character that corresponds to the given Int"); anything outside 0..127 gives Undefined. */
static int fn_chr(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    int64_t cp;
    *out = SQL_UNDEF;
    if (argc != 1 || (argv[0].t != SQL_T_INT && argv[0].t != SQL_T_DEC &&
                      argv[0].t != SQL_T_STR))
        return 0;
    if (intarg(ctx, &argv[0], SQL_ROUND_FLOOR, -1, 128, &cp) < 0 || cp < 0 || cp > 127)
        return 0;
    char *p = sql__alloc(ctx, 1);
    if (!p)
        return ctx->err;
    *p = (char)cp;
    return setstr(ctx, p, 1, out);
}

static int fn_length(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s;
    size_t n;
    *out = SQL_UNDEF;
    if (argc == 1 && strarg(ctx, &argv[0], &s, &n) == 0)
        *out = sql__int((int64_t)nchars(s, n));
    return 0;
}

static int fn_numbytes(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s;
    size_t n;
    *out = SQL_UNDEF;
    if (argc == 1 && strarg(ctx, &argv[0], &s, &n) == 0)
        *out = sql__int((int64_t)n);
    return 0;
}

/* First byte offset of needle in hay at or after `from`, or -1. */
static ptrdiff_t find(const char *h, size_t hn, const char *nd, size_t nn, size_t from) {
    if (nn == 0)
        return from <= hn ? (ptrdiff_t)from : -1;
    for (size_t i = from; i + nn <= hn; i++) {
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0)
            return (ptrdiff_t)i;
    }
    return -1;
}

/* indexof takes strings only: the doc stresses "not arrays", and a number searched for in a
 * number has no documented meaning, so anything but two Strings gives Undefined. */
static int fn_indexof(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    if (argc != 2 || argv[0].t != SQL_T_STR || argv[1].t != SQL_T_STR)
        return 0;
    ptrdiff_t at = find(argv[0].u.s, argv[0].n, argv[1].u.s, argv[1].n, 0);
    *out = sql__int(at < 0 ? -1 : (int64_t)nchars(argv[0].u.s, (size_t)at));
    return 0;
}

static int fn_startswith(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s, *x;
    size_t n, xn;
    *out = SQL_UNDEF;
    if (argc != 2 || strarg(ctx, &argv[0], &s, &n) < 0 || strarg(ctx, &argv[1], &x, &xn) < 0)
        return 0;
    *out = sql__bool(xn <= n && memcmp(s, x, xn) == 0);
    return 0;
}

static int fn_endswith(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s, *x;
    size_t n, xn;
    *out = SQL_UNDEF;
    if (argc != 2 || strarg(ctx, &argv[0], &s, &n) < 0 || strarg(ctx, &argv[1], &x, &xn) < 0)
        return 0;
    *out = sql__bool(xn <= n && memcmp(s + n - xn, x, xn) == 0);
    return 0;
}

/* }====== */

/* {====== lower, upper */

/* Case partner of a two-byte code point (U+0080..U+07FF) with the same encoded length, or cp
 * itself. `up` selects the direction. */
static uint32_t case2(uint32_t cp, int up) {
    /* Ranges where upper and lower case differ by a fixed offset: [lo, hi] are the upper-case
     * letters, `d` the distance to their lower-case partners. */
    static const struct {
        uint16_t lo, hi, d;
    } ranges[] = {
        {0x00C0, 0x00DE, 0x20}, /* Latin-1 À..Þ (0xD7 × excluded below) */
        {0x0391, 0x03AB, 0x20}, /* Greek Α..Ϋ (0x3A2 unassigned) */
        {0x0410, 0x042F, 0x20}, /* Cyrillic А..Я */
        {0x0400, 0x040F, 0x50}, /* Cyrillic Ѐ..Џ */
    };
    if (cp == 0x00D7 || cp == 0x00F7 || cp == 0x03A2 || cp == 0x03C2)
        return cp;
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        uint32_t lo = ranges[i].lo, hi = ranges[i].hi, d = ranges[i].d;
        if (!up && cp >= lo && cp <= hi)
            return cp + d;
        if (up && cp >= lo + d && cp <= hi + d)
            return cp - d;
    }
    /* Latin Extended-A: pairs (upper, upper+1), upper even or odd by block. */
    int even_upper = (cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) ||
                     (cp >= 0x14A && cp <= 0x177);
    int odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (even_upper || odd_upper) {
        int is_upper = (int)(cp & 1) == (odd_upper ? 1 : 0);
        if (up && !is_upper)
            return cp - 1;
        if (!up && is_upper)
            return cp + 1;
        return cp;
    }
    if (up && cp == 0x00FF)
        return 0x0178; /* ÿ -> Ÿ: the one Latin-1 pair across blocks (both two bytes) */
    if (!up && cp == 0x0178)
        return 0x00FF;
    return cp;
}

static int recase(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, int up) {
    const char *s;
    size_t n;
    *out = SQL_UNDEF;
    if (argc != 1 || strarg(ctx, &argv[0], &s, &n) < 0)
        return 0;
    char *p = sql__alloc(ctx, n ? n : 1);
    if (!p)
        return ctx->err;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            p[i++] = (char)(up ? (c >= 'a' && c <= 'z' ? c - 32 : c)
                               : (c >= 'A' && c <= 'Z' ? c + 32 : c));
            continue;
        }
        if ((c & 0xE0) == 0xC0 && i + 1 < n && iscont((unsigned char)s[i + 1])) {
            uint32_t cp = ((uint32_t)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            sql__utf8_put(p + i, case2(cp, up));
            i += 2;
            continue;
        }
        p[i] = s[i];
        i++;
    }
    return setstr(ctx, p, n, out);
}

static int fn_lower(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return recase(ctx, argc, argv, out, 0);
}

static int fn_upper(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return recase(ctx, argc, argv, out, 1);
}

/* }====== */

/* {====== lpad, rpad, trims */

/* lpad/rpad ADD n spaces (not "pad to width n"); n is clamped to [0, 1000] and a Decimal n is
 * rounded down. */
static int pad(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, int left) {
    const char *s;
    size_t n;
    int64_t k;
    *out = SQL_UNDEF;
    if (argc != 2 || strarg(ctx, &argv[0], &s, &n) < 0)
        return 0;
    if (intarg(ctx, &argv[1], SQL_ROUND_FLOOR, 0, 1000, &k) < 0)
        return 0;
    char *p = sql__alloc(ctx, n + (size_t)k + 1);
    if (!p)
        return ctx->err;
    memset(left ? p : p + n, ' ', (size_t)k);
    memcpy(left ? p + k : p, s, n);
    return setstr(ctx, p, n + (size_t)k, out);
}

static int fn_lpad(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return pad(ctx, argc, argv, out, 1);
}

static int fn_rpad(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return pad(ctx, argc, argv, out, 0);
}

enum { T_LEFT = 1, T_RIGHT = 2 };

static int isblank_(char c) { return c == ' ' || c == '\t'; }

static int trim(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, int sides) {
    const char *s;
    size_t n;
    *out = SQL_UNDEF;
    if (argc != 1 || strarg(ctx, &argv[0], &s, &n) < 0)
        return 0;
    size_t b = 0, e = n;
    if (sides & T_LEFT)
        while (b < e && isblank_(s[b]))
            b++;
    if (sides & T_RIGHT)
        while (e > b && isblank_(s[e - 1]))
            e--;
    return setstr(ctx, s + b, e - b, out);
}

static int fn_ltrim(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return trim(ctx, argc, argv, out, T_LEFT);
}

static int fn_rtrim(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return trim(ctx, argc, argv, out, T_RIGHT);
}

static int fn_trim(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    return trim(ctx, argc, argv, out, T_LEFT | T_RIGHT);
}

/* }====== */

/* {====== replace, substring */

/* replace(s, a, b): every occurrence of a replaced by b, scanning left to right without
 * overlap. An empty `a` inserts b before every character and at the end, as Java's
 * String.replace does. */
static int fn_replace(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s, *a, *b;
    size_t n, an, bn;
    *out = SQL_UNDEF;
    if (argc != 3 || strarg(ctx, &argv[0], &s, &n) < 0 || strarg(ctx, &argv[1], &a, &an) < 0 ||
        strarg(ctx, &argv[2], &b, &bn) < 0)
        return 0;
    sql_buf *w = &ctx->scratch;
    sql__buf_reset(w);
    if (an == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!iscont((unsigned char)s[i]))
                sql__buf_put(w, b, bn);
            sql__buf_putc(w, s[i]);
        }
        sql__buf_put(w, b, bn);
    } else {
        size_t i = 0;
        ptrdiff_t at;
        while ((at = find(s, n, a, an, i)) >= 0) {
            sql__buf_put(w, s + i, (size_t)at - i);
            sql__buf_put(w, b, bn);
            i = (size_t)at + an;
        }
        sql__buf_put(w, s + i, n - i);
    }
    if (w->oom)
        return sql_ctx_error(ctx, SQL_E_NOMEM, "replace: out of memory");
    char *p = sql__arena_strdup(&ctx->arena, w->p ? w->p : "", w->len);
    if (!p)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "replace: result exceeds the evaluation memory");
    return setstr(ctx, p, w->len, out);
}

/* substring(s, i[, j]): code points [i, j) of s, indexes truncated toward zero and clamped to
 * [0, length]; i >= j gives "". */
static int fn_substring(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s;
    size_t n;
    int64_t i, j;
    *out = SQL_UNDEF;
    if (argc < 2 || argc > 3 || strarg(ctx, &argv[0], &s, &n) < 0)
        return 0;
    int64_t len = (int64_t)nchars(s, n);
    if (intarg(ctx, &argv[1], SQL_ROUND_TRUNC, 0, len, &i) < 0)
        return 0;
    j = len;
    if (argc == 3 && intarg(ctx, &argv[2], SQL_ROUND_TRUNC, 0, len, &j) < 0)
        return 0;
    if (i >= j)
        return setstr(ctx, "", 0, out);
    size_t b = byteoff(s, n, (size_t)i);
    size_t e = b + byteoff(s + b, n - b, (size_t)(j - i));
    return setstr(ctx, s + b, e - b, out);
}

/* }====== */

#define DET SQL_FN_DETERMINISTIC

const sql_func sql__func_string[] = {
    {"chr", 1, 1, DET, fn_chr},
    {"endswith", 2, 2, DET, fn_endswith},
    {"indexof", 2, 2, DET | SQL_FN_V2016, fn_indexof},
    {"length", 1, 1, DET | SQL_FN_V2016, fn_length},
    {"lower", 1, 1, DET, fn_lower},
    {"lpad", 2, 2, DET, fn_lpad},
    {"ltrim", 1, 1, DET, fn_ltrim},
    {"numbytes", 1, 1, DET | SQL_FN_V2016, fn_numbytes},
    {"replace", 3, 3, DET, fn_replace},
    {"rpad", 2, 2, DET, fn_rpad},
    {"rtrim", 1, 1, DET, fn_rtrim},
    {"startswith", 2, 2, DET, fn_startswith},
    {"substring", 2, 3, DET, fn_substring},
    {"trim", 1, 1, DET, fn_trim},
    {"upper", 1, 1, DET, fn_upper},
    {0},
};

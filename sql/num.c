/*
 * num.c -- AWS IoT SQL's Int and Decimal: parsing, printing, exact decimal arithmetic.
 *
 * A number is a decimal coefficient and exponent (value = c * 10^e). The small form keeps an
 * int64 coefficient and an int16 exponent inside the 16-byte sql_value, so the common payload
 * numbers (temperatures, counters) never allocate and compare with one integer comparison when
 * their exponents agree. Larger coefficients use the big form: a signed __int128 coefficient
 * (up to 38 digits, enough for AWS's 34-digit Int) and an int32 exponent, in the arena.
 *
 * Arithmetic is decimal128-like, as AWS's 34-digit Decimal: exact results are exact
 * (0.1 + 0.2 = 0.3); results with more than 34 significant digits are rounded half-even.
 * Intermediate results use an unsigned 256-bit integer (77 digits), which holds any product
 * of two 38-digit coefficients and any dividend scaled for a 35-digit quotient, so no
 * arbitrary-precision library is needed (Debian 12 has no libmpdec-dev). Exponents follow
 * Java's BigDecimal, which AWS's engine evidently uses: a sum keeps the smaller exponent, a
 * product adds them, a quotient is exact at the preferred exponent e_a - e_b when it can be,
 * and printing matches BigDecimal.toString(). Rejected alternative: binary doubles, which
 * print 0.1 + 0.2 as 0.30000000000000004.
 *
 * SQL 2016-03-23 processes whole-valued Decimals as Int (AWS data-types page): sql__num_norm()
 * applies that wherever a Decimal is produced, when the context's version says so.
 */
#include "sql_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREC 34      /* significant digits of a Decimal */
#define INT_DIGITS 38 /* an Int's coefficient fits __int128 up to 38 digits */

typedef unsigned __int128 u128;
typedef __int128 i128;

static const int64_t p10_64[19] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL, 100000000LL,
    1000000000LL, 10000000000LL, 100000000000LL, 1000000000000LL, 10000000000000LL,
    100000000000000LL, 1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
    1000000000000000000LL};

/* {====== 256-bit unsigned arithmetic for intermediates */

typedef struct u256 {
    u128 hi, lo;
} u256;

static u128 pow10_128(int k) {
    static u128 t[39];
    static int init;
    if (!init) {
        t[0] = 1;
        for (int i = 1; i < 39; i++)
            t[i] = t[i - 1] * 10;
        init = 1;
    }
    return t[k];
}

static u256 u256_from(u128 x) { return (u256){0, x}; }
static int u256_is_zero(u256 a) { return a.hi == 0 && a.lo == 0; }

static int u256_cmp(u256 a, u256 b) {
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}

static u256 u256_add(u256 a, u256 b) {
    u256 r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo);
    return r;
}

static u256 u256_sub(u256 a, u256 b) { /* a >= b */
    u256 r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo);
    return r;
}

/* Full 128 x 128 -> 256 product. */
static u256 u256_mul128(u128 a, u128 b) {
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64), b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
    u128 p00 = (u128)a0 * b0, p01 = (u128)a0 * b1, p10 = (u128)a1 * b0, p11 = (u128)a1 * b1;
    u128 mid = (p00 >> 64) + (uint64_t)p01 + (uint64_t)p10;
    u256 r;
    r.lo = (p00 & UINT64_MAX) | (mid << 64);
    r.hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    return r;
}

/* a * m for m < 2^64; the caller guarantees no overflow. */
static u256 u256_mul64(u256 a, uint64_t m) {
    u256 lo = u256_mul128(a.lo, m);
    lo.hi += a.hi * m;
    return lo;
}

/* a * 10^k, k <= 76, no overflow assumed. */
static u256 u256_scale(u256 a, int k) {
    while (k >= 19) {
        a = u256_mul64(a, 10000000000000000000ull);
        k -= 19;
    }
    if (k > 0)
        a = u256_mul64(a, (uint64_t)pow10_128(k));
    return a;
}

/* a / d with remainder, d < 2^64. */
static u256 u256_divmod64(u256 a, uint64_t d, uint64_t *rem) {
    uint64_t limbs[4] = {(uint64_t)(a.hi >> 64), (uint64_t)a.hi, (uint64_t)(a.lo >> 64),
                         (uint64_t)a.lo};
    u128 r = 0;
    for (int i = 0; i < 4; i++) {
        u128 cur = (r << 64) | limbs[i];
        limbs[i] = (uint64_t)(cur / d);
        r = cur % d;
    }
    *rem = (uint64_t)r;
    return (u256){((u128)limbs[0] << 64) | limbs[1], ((u128)limbs[2] << 64) | limbs[3]};
}

/* a / d with remainder, 0 < d < 2^127 (bitwise long division: slow path only). */
static u256 u256_divmod128(u256 a, u128 d, u128 *rem) {
    if (a.hi == 0) {
        *rem = a.lo % d;
        return u256_from(a.lo / d);
    }
    u256 q = {0, 0};
    u128 r = 0;
    for (int i = 255; i >= 0; i--) {
        u128 bit = i >= 128 ? (a.hi >> (i - 128)) & 1 : (a.lo >> i) & 1;
        r = (r << 1) | bit;
        if (r >= d) {
            r -= d;
            if (i >= 128)
                q.hi |= (u128)1 << (i - 128);
            else
                q.lo |= (u128)1 << i;
        }
    }
    *rem = r;
    return q;
}

static int digits128(u128 x) {
    int n = 1;
    while (n < 39 && x >= pow10_128(n))
        n++;
    return n;
}

static int digits256(u256 a) {
    if (a.hi == 0)
        return digits128(a.lo);
    int n = 0;
    uint64_t rem;
    while (a.hi != 0) {
        a = u256_divmod64(a, 10000000000000000000ull, &rem);
        n += 19;
    }
    return n + digits128(a.lo);
}

/* }====== */

/* {====== the working form: sign, magnitude, exponent */

typedef struct dec {
    int neg;
    u256 m;
    int64_t e;
} dec;

static dec to_dec(const sql_value *v) {
    dec d;
    i128 c;
    if (v->f & SQL_F_BIG) {
        c = v->u.big->coef;
        d.e = v->u.big->exp;
    } else {
        c = v->u.i;
        d.e = v->e;
    }
    d.neg = c < 0;
    d.m = u256_from(c < 0 ? (u128)(-c) : (u128)c);
    return d;
}

/* Drops `k` digits of d.m with half-even rounding. */
static void drop_digits(dec *d, int k) {
    if (k <= 0)
        return;
    int sticky = 0;
    uint64_t rem;
    int left = k - 1; /* digits below the rounding digit */
    while (left > 0) {
        int chunk = left > 19 ? 19 : left;
        d->m = u256_divmod64(d->m, (uint64_t)pow10_128(chunk), &rem);
        sticky |= rem != 0;
        left -= chunk;
    }
    d->m = u256_divmod64(d->m, 10, &rem);
    int up = rem > 5 || (rem == 5 && (sticky || (d->m.lo & 1)));
    if (up)
        d->m = u256_add(d->m, u256_from(1));
    d->e += k;
}

/* Rounds to `prec` significant digits. */
static void round_to(dec *d, int prec) {
    int nd = digits256(d->m);
    if (nd <= prec)
        return;
    drop_digits(d, nd - prec);
    if (digits256(d->m) > prec) { /* 999..9 rounded up to 1000..0 */
        uint64_t rem;
        d->m = u256_divmod64(d->m, 10, &rem);
        d->e++;
    }
}

static sql_value make(sql_ctx *ctx, int type, dec d) {
    if (u256_is_zero(d.m))
        d.neg = 0;
    if (type == SQL_T_INT && d.e != 0) { /* bring an INT to exponent 0 (callers keep it whole) */
        if (d.e > 0 && digits256(d.m) + d.e <= INT_DIGITS)
            d.m = u256_scale(d.m, (int)d.e);
        d.e = 0;
    }
    if (d.m.hi == 0 && d.m.lo <= (u128)INT64_MAX && d.e >= INT16_MIN && d.e <= INT16_MAX) {
        int64_t c = (int64_t)d.m.lo;
        return (sql_value){.t = (uint8_t)type, .e = (int16_t)d.e, .u.i = d.neg ? -c : c};
    }
    if (d.m.hi != 0 || d.m.lo > pow10_128(INT_DIGITS) - 1) {
        if (type == SQL_T_INT) { /* more than 38 digits: no longer an Int */
            type = SQL_T_DEC;
        }
        round_to(&d, PREC);
    }
    if (d.e > INT32_MAX || d.e < INT32_MIN)
        return SQL_UNDEF;
    sql_big *b = sql__alloc(ctx, sizeof *b);
    if (!b)
        return SQL_UNDEF;
    b->coef = d.neg ? -(i128)d.m.lo : (i128)d.m.lo;
    b->exp = (int32_t)d.e;
    return (sql_value){.t = (uint8_t)type, .f = SQL_F_BIG, .u.big = b};
}

/* A Decimal result: rounded to 34 digits, then the version's whole-number rule. */
static sql_value make_dec(sql_ctx *ctx, dec d) {
    round_to(&d, PREC);
    return sql__num_norm(ctx, make(ctx, SQL_T_DEC, d));
}

static int is_whole_dec(dec d) {
    if (d.e >= 0 || u256_is_zero(d.m))
        return 1;
    if (-d.e > 76)
        return 0;
    int nd = digits256(d.m);
    if (nd <= -d.e)
        return 0;
    u256 m = d.m;
    for (int64_t k = -d.e; k > 0;) {
        int chunk = k > 19 ? 19 : (int)k;
        uint64_t rem;
        m = u256_divmod64(m, (uint64_t)pow10_128(chunk), &rem);
        if (rem)
            return 0;
        k -= chunk;
    }
    return 1;
}

int sql__num_is_whole(const sql_value *v) {
    if (v->t == SQL_T_INT)
        return 1;
    if (!(v->f & SQL_F_BIG)) {
        if (v->e >= 0)
            return 1;
        if (v->e < -18)
            return v->u.i == 0;
        return v->u.i % p10_64[-v->e] == 0;
    }
    return is_whole_dec(to_dec(v));
}

sql_value sql__num_norm(sql_ctx *ctx, sql_value v) {
    if (v.t != SQL_T_DEC || ctx->version < SQL_V2016_03_23)
        return v;
    if (!(v.f & SQL_F_BIG)) {
        if (v.e == 0) {
            v.t = SQL_T_INT;
            return v;
        }
        if (v.e < 0 && v.e >= -18) {
            int64_t p = p10_64[-v.e];
            if (v.u.i % p == 0)
                return sql__int(v.u.i / p);
            return v;
        }
    }
    dec d = to_dec(&v);
    if (!is_whole_dec(d))
        return v;
    if (u256_is_zero(d.m)) /* 0E-999999999: no digits to divide away (found by fuzz_json:
                              the loop below ran 50 million times for it) */
        return sql__int(0);
    if (d.e < 0) {
        uint64_t rem;
        for (int64_t k = -d.e; k > 0;) {
            int chunk = k > 19 ? 19 : (int)k;
            d.m = u256_divmod64(d.m, (uint64_t)pow10_128(chunk), &rem);
            k -= chunk;
        }
        d.e = 0;
    }
    if (digits256(d.m) + d.e > INT_DIGITS) /* too large for an Int: stays Decimal */
        return v;
    return make(ctx, SQL_T_INT, d);
}

/* }====== */

/* {====== parsing and printing */

int sql__num_parse(sql_ctx *ctx, const char *s, size_t n, sql_value *out) {
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= n || s[i] < '0' || s[i] > '9')
        return -1;
    /* fast path: up to 18 digits, optional fraction, no exponent */
    int64_t c = 0;
    int nd = 0, frac = 0, is_dec = 0, sticky = 0, lost = 0;
    u256 m = {0, 0};
    int big = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (!big && nd < 18) {
            c = c * 10 + (s[i] - '0');
        } else {
            if (!big) {
                m = u256_from((u128)c);
                big = 1;
            }
            if (nd < 76)
                m = u256_add(u256_mul64(m, 10), u256_from((u128)(s[i] - '0')));
            else {
                sticky |= s[i] != '0';
                lost++;
            }
        }
        if (nd || s[i] != '0' || big)
            nd++;
    }
    if (i < n && s[i] == '.') {
        is_dec = 1;
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return -1;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (!big && nd < 18) {
                c = c * 10 + (s[i] - '0');
                frac++;
            } else {
                if (!big) {
                    m = u256_from((u128)c);
                    big = 1;
                }
                if (nd < 76) {
                    m = u256_add(u256_mul64(m, 10), u256_from((u128)(s[i] - '0')));
                    frac++;
                } else {
                    sticky |= s[i] != '0';
                }
            }
            if (nd || s[i] != '0' || big)
                nd++;
        }
    }
    int64_t exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        is_dec = 1;
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= n || s[i] < '0' || s[i] > '9')
            return -1;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            exp = exp * 10 + (s[i] - '0');
            if (exp > 2000000000) /* far past the range checked below (found by fuzz_json:
                                     digits beyond the 9th were dropped, 1E99999999901
                                     read as 1E999999999) */
                return -1;
        }
        if (eneg)
            exp = -exp;
    }
    if (i != n)
        return -1;
    int64_t e = exp - frac + lost;
    if (e > 1000000000 || e < -1000000000)
        return -1;
    if (!big && !is_dec) {
        *out = sql__int(neg ? -c : c);
        return 0;
    }
    if (!big && e >= INT16_MIN && e <= INT16_MAX && !sticky) {
        sql_value v = {.t = SQL_T_DEC, .e = (int16_t)e, .u.i = neg ? -c : c};
        /* "57.3": a nonzero last digit cannot be whole, so skip the division in norm */
        if (exp == 0 && frac > 0 && s[n - 1] != '0') {
            *out = v;
            return 0;
        }
        *out = sql__num_norm(ctx, v);
        return 0;
    }
    dec d = {neg, big ? m : u256_from((u128)c), e};
    if (sticky) /* digits beyond 76: fold them into rounding as a trailing nonzero digit */
        d.m = u256_add(u256_mul64(d.m, 10), u256_from(1)), d.e--;
    if (!is_dec && !sticky && digits256(d.m) <= INT_DIGITS) {
        *out = make(ctx, SQL_T_INT, d);
        return 0;
    }
    *out = make_dec(ctx, d);
    return out->t == SQL_T_UNDEF && !ctx->err ? -1 : 0;
}

int sql__num_from_str(sql_ctx *ctx, const char *s, size_t n, sql_value *out) {
    /* ^-?\d+(\.\d+)?((?i)E-?\d+)?$ : no '+' anywhere, digits on both sides of the point */
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    size_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d0)
        return -1;
    if (i < n && s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f0)
            return -1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && s[i] == '-')
            i++;
        size_t e0 = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == e0)
            return -1;
    }
    if (i != n)
        return -1;
    sql_value v;
    if (sql__num_parse(ctx, s, n, &v) != 0)
        return -1;
    if (v.t == SQL_T_INT) /* a converted string is a Decimal (then the version's rule) */
        v = sql__num_norm(ctx, sql__num_to_dec(ctx, &v));
    *out = v;
    return 0;
}

/* Writes the decimal digits of x (no sign) into buf, returns their count. */
static int utoa128(u128 x, char *buf) {
    char tmp[40];
    int n = 0;
    if (x <= UINT64_MAX) { /* 64-bit division is several times cheaper */
        uint64_t y = (uint64_t)x;
        do {
            tmp[n++] = (char)('0' + (int)(y % 10));
            y /= 10;
        } while (y);
        for (int i = 0; i < n; i++)
            buf[i] = tmp[n - 1 - i];
        return n;
    }
    do {
        tmp[n++] = (char)('0' + (int)(x % 10));
        x /= 10;
    } while (x);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

size_t sql__num_format(const sql_value *v, char *buf) {
    i128 c;
    int64_t e;
    if (v->f & SQL_F_BIG) {
        c = v->u.big->coef;
        e = v->u.big->exp;
    } else {
        c = v->u.i;
        e = v->e;
    }
    char *p = buf;
    if (c < 0)
        *p++ = '-';
    u128 m = c < 0 ? (u128)(-c) : (u128)c;
    if (v->t == SQL_T_INT || e == 0) {
        p += utoa128(m, p);
        if (v->t == SQL_T_INT && e > 0) /* not produced by num.c; print the value anyway */
            for (int64_t k = 0; k < e && p - buf < SQL_NUM_BUFSZ - 2; k++)
                *p++ = '0';
        return (size_t)(p - buf);
    }
    char d[40];
    int nd = utoa128(m, d);
    int64_t adj = nd - 1 + e;
    if (e <= 0 && adj >= -6) { /* plain notation, as BigDecimal.toString() */
        int64_t point = nd + e; /* digits before the point */
        if (point > 0) {
            memcpy(p, d, (size_t)point);
            p += point;
            *p++ = '.';
            memcpy(p, d + point, (size_t)(nd - point));
            p += nd - point;
        } else {
            *p++ = '0';
            *p++ = '.';
            for (int64_t k = 0; k < -point; k++)
                *p++ = '0';
            memcpy(p, d, (size_t)nd);
            p += nd;
        }
        return (size_t)(p - buf);
    }
    *p++ = d[0];
    if (nd > 1) {
        *p++ = '.';
        memcpy(p, d + 1, (size_t)(nd - 1));
        p += nd - 1;
    }
    p += snprintf(p, 24, "E%s%lld", adj >= 0 ? "+" : "", (long long)adj);
    return (size_t)(p - buf);
}

/* }====== */

/* {====== comparison */

static int cmp_dec(dec a, dec b) {
    int za = u256_is_zero(a.m), zb = u256_is_zero(b.m);
    if (za || zb) {
        if (za && zb)
            return 0;
        if (za)
            return b.neg ? 1 : -1;
        return a.neg ? -1 : 1;
    }
    if (a.neg != b.neg)
        return a.neg ? -1 : 1;
    int sign = a.neg ? -1 : 1;
    int64_t adja = digits256(a.m) - 1 + a.e, adjb = digits256(b.m) - 1 + b.e;
    if (adja != adjb)
        return adja < adjb ? -sign : sign;
    /* same magnitude order: the exponents differ by less than 77 digits */
    if (a.e > b.e)
        a.m = u256_scale(a.m, (int)(a.e - b.e));
    else if (b.e > a.e)
        b.m = u256_scale(b.m, (int)(b.e - a.e));
    return sign * u256_cmp(a.m, b.m);
}

int sql__num_cmp(const sql_value *a, const sql_value *b) {
    if (!((a->f | b->f) & SQL_F_BIG)) {
        if (a->e == b->e)
            return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
        int d = a->e - b->e;
        if (d > 0 && d <= 18) {
            i128 x = (i128)a->u.i * p10_64[d];
            return x < b->u.i ? -1 : x > b->u.i;
        }
        if (d < 0 && d >= -18) {
            i128 y = (i128)b->u.i * p10_64[-d];
            return a->u.i < y ? -1 : a->u.i > y;
        }
    }
    return cmp_dec(to_dec(a), to_dec(b));
}

int sql__num_sign(const sql_value *v) {
    if (v->f & SQL_F_BIG)
        return v->u.big->coef < 0 ? -1 : v->u.big->coef > 0;
    return v->u.i < 0 ? -1 : v->u.i > 0;
}

/* }====== */

/* {====== arithmetic */

/* Aligns two decimals to one exponent for addition. When the gap is too wide for 256 bits,
 * the smaller operand cannot affect more than the rounding digit, so it is replaced by a
 * tiny value of the same sign that still breaks ties the right way. */
static void align(dec *a, dec *b) {
    dec *hi = a->e >= b->e ? a : b, *lo = a->e >= b->e ? b : a;
    if (u256_is_zero(hi->m)) {
        hi->e = lo->e;
        return;
    }
    if (u256_is_zero(lo->m)) {
        lo->e = hi->e;
        return;
    }
    int64_t gap = hi->e - lo->e;
    int dh = digits256(hi->m);
    if (dh + gap > 75) {
        /* scale hi to 40 digits and collapse lo into one unit below them */
        int up = 40 - dh;
        if (up > 0)
            hi->m = u256_scale(hi->m, up);
        hi->e -= up;
        int dl = digits256(lo->m);
        if (lo->e + dl > hi->e) { /* lo still reaches into hi's digits: keep its top part */
            int keep = (int)(lo->e + dl - hi->e);
            dec t = *lo;
            drop_digits(&t, dl - keep); /* rounding here is fine: 40 > 34 + guard digits */
            lo->m = t.m;
            lo->e = t.e;
        } else {
            lo->m = u256_from(1);
            lo->e = hi->e - 1;
            hi->m = u256_scale(hi->m, 1);
            hi->e -= 1;
        }
        if (lo->e > hi->e) {
            lo->m = u256_scale(lo->m, (int)(lo->e - hi->e));
            lo->e = hi->e;
        }
        return;
    }
    hi->m = u256_scale(hi->m, (int)gap);
    hi->e = lo->e;
}

static dec add_dec(dec a, dec b, int sub) {
    if (sub)
        b.neg = !b.neg;
    align(&a, &b);
    dec r = {0, {0, 0}, a.e};
    if (a.neg == b.neg) {
        r.m = u256_add(a.m, b.m);
        r.neg = a.neg;
    } else if (u256_cmp(a.m, b.m) >= 0) {
        r.m = u256_sub(a.m, b.m);
        r.neg = a.neg;
    } else {
        r.m = u256_sub(b.m, a.m);
        r.neg = b.neg;
    }
    return r;
}

static dec mul_dec(dec a, dec b) {
    /* both magnitudes fit 128 bits (<= 38 digits) */
    dec r = {a.neg != b.neg, u256_mul128(a.m.lo, b.m.lo), a.e + b.e};
    return r;
}

/* a / b, b != 0: exact at the preferred exponent when possible, else 34 digits. */
static dec div_dec(dec a, dec b) {
    int64_t ideal = a.e - b.e;
    dec r = {a.neg != b.neg, {0, 0}, ideal};
    if (u256_is_zero(a.m))
        return r;
    int na = digits256(a.m), nb = digits256(b.m);
    int s = PREC + 1 + nb - na;
    if (s < 0)
        s = 0;
    u256 num = u256_scale(a.m, s);
    u128 rem;
    r.m = u256_divmod128(num, b.m.lo, &rem);
    r.e = a.e - b.e - s;
    if (rem != 0) {
        /* inexact: keep a guard digit with a sticky bit, then round */
        r.m = u256_add(u256_mul64(r.m, 10), u256_from(1));
        r.e--;
        round_to(&r, PREC);
        return r;
    }
    round_to(&r, PREC);
    while (r.e < ideal) { /* strip trailing zeros down to the preferred exponent */
        uint64_t d;
        u256 q = u256_divmod64(r.m, 10, &d);
        if (d)
            break;
        r.m = q;
        r.e++;
    }
    return r;
}

/* Truncating integer division of a by b (both whole, exponent 0). */
static int idiv(dec a, dec b, dec *q, dec *rm) {
    u128 rem;
    q->m = u256_divmod128(a.m, b.m.lo, &rem);
    q->neg = a.neg != b.neg;
    q->e = 0;
    rm->m = u256_from(rem);
    rm->neg = a.neg;
    rm->e = 0;
    return 0;
}

/* a % b for decimals: a - b * trunc(a / b), the sign of a. */
static int mod_dec(dec a, dec b, dec *r) {
    int64_t e = a.e < b.e ? a.e : b.e;
    int64_t ga = a.e - e, gb = b.e - e;
    if (digits256(a.m) + ga > 76 || digits256(b.m) + gb > 38)
        return -1;
    a.m = u256_scale(a.m, (int)ga);
    b.m = u256_scale(b.m, (int)gb);
    u128 rem;
    u256_divmod128(a.m, b.m.lo, &rem);
    r->m = u256_from(rem);
    r->neg = a.neg;
    r->e = e;
    return 0;
}

int sql__num_arith(sql_ctx *ctx, int op, const sql_value *a, const sql_value *b, sql_value *out) {
    int ints = a->t == SQL_T_INT && b->t == SQL_T_INT;
    if (ints && !((a->f | b->f) & SQL_F_BIG)) {
        int64_t x = a->u.i, y = b->u.i, r;
        switch (op) {
        case SQL_NUM_ADD:
            if (!__builtin_add_overflow(x, y, &r))
                return *out = sql__int(r), 0;
            break;
        case SQL_NUM_SUB:
            if (!__builtin_sub_overflow(x, y, &r))
                return *out = sql__int(r), 0;
            break;
        case SQL_NUM_MUL:
            if (!__builtin_mul_overflow(x, y, &r))
                return *out = sql__int(r), 0;
            break;
        case SQL_NUM_DIV:
        case SQL_NUM_MOD:
            if (y == 0)
                return *out = SQL_UNDEF, 0;
            if (!(x == INT64_MIN && y == -1))
                return *out = sql__int(op == SQL_NUM_DIV ? x / y : x % y), 0;
            break;
        }
    } else if (!ints && a->t == SQL_T_DEC && b->t == SQL_T_DEC && !((a->f | b->f) & SQL_F_BIG) &&
               a->e == b->e && (op == SQL_NUM_ADD || op == SQL_NUM_SUB)) {
        int64_t r;
        if (!(op == SQL_NUM_ADD ? __builtin_add_overflow(a->u.i, b->u.i, &r)
                                : __builtin_sub_overflow(a->u.i, b->u.i, &r))) {
            *out = sql__num_norm(ctx, (sql_value){.t = SQL_T_DEC, .e = a->e, .u.i = r});
            return 0;
        }
    }
    dec x = to_dec(a), y = to_dec(b), r;
    switch (op) {
    case SQL_NUM_ADD:
    case SQL_NUM_SUB:
        r = add_dec(x, y, op == SQL_NUM_SUB);
        break;
    case SQL_NUM_MUL:
        r = mul_dec(x, y);
        break;
    case SQL_NUM_DIV:
        if (u256_is_zero(y.m))
            return *out = SQL_UNDEF, 0;
        if (ints) {
            dec rm;
            idiv(x, y, &r, &rm);
            break;
        }
        r = div_dec(x, y);
        break;
    default:
        if (u256_is_zero(y.m))
            return *out = SQL_UNDEF, 0;
        if (ints) {
            dec q;
            idiv(x, y, &q, &r);
            break;
        }
        if (mod_dec(x, y, &r))
            return *out = SQL_UNDEF, 0;
        break;
    }
    if (ints && digits256(r.m) <= INT_DIGITS) {
        *out = make(ctx, SQL_T_INT, r);
        return 0;
    }
    *out = make_dec(ctx, r);
    return 0;
}

sql_value sql__num_neg(sql_ctx *ctx, const sql_value *a) {
    if (!(a->f & SQL_F_BIG) && a->u.i != INT64_MIN) {
        sql_value r = *a;
        r.u.i = -r.u.i;
        return r;
    }
    dec d = to_dec(a);
    d.neg = !d.neg;
    return make(ctx, a->t, d);
}

/* }====== */

/* {====== conversions */

double sql__num_to_double(const sql_value *v) {
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (!(v->f & SQL_F_BIG) && v->u.i > -(1LL << 53) && v->u.i < (1LL << 53)) {
        /* exact coefficient and exact power of ten: one correctly rounded operation */
        if (v->e == 0)
            return (double)v->u.i;
        if (v->e < 0 && v->e >= -22)
            return (double)v->u.i / p10[-v->e];
        if (v->e > 0 && v->e <= 22)
            return (double)v->u.i * p10[v->e];
    }
    char buf[SQL_NUM_BUFSZ + 1];
    size_t n = sql__num_format(v, buf);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

sql_value sql__num_from_double(sql_ctx *ctx, double x) {
    if (!isfinite(x))
        return SQL_UNDEF;
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) { /* the shortest digits that round-trip */
        snprintf(buf, sizeof buf, "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    /* buf: [-]d.ddddde[+-]xx */
    char digits[24];
    int nd = 0, neg = buf[0] == '-';
    const char *p = buf + neg;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int e10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int64_t c = 0;
    for (int i = 0; i < nd; i++)
        c = c * 10 + (digits[i] - '0');
    int64_t e = e10 - (nd - 1);
    if (c == 0)
        e = 0;
    sql_value v = {.t = SQL_T_DEC, .u.i = neg ? -c : c};
    if (e >= 0 && (c == 0 || e + nd <= 7)) {
        /* a whole double below 10^7 prints as "32.0" (Java's Double.toString) */
        for (int64_t k = 0; k < e; k++)
            c *= 10;
        v.u.i = (neg ? -c : c) * 10;
        v.e = -1;
    } else if (e >= INT16_MIN && e <= INT16_MAX) {
        v.e = (int16_t)e;
    } else {
        dec d = {neg, u256_from((u128)c), e};
        v = make(ctx, SQL_T_DEC, d);
    }
    return sql__num_norm(ctx, v);
}

/* Divides |d| down to exponent 0, rounding by mode; the sign is d's. */
static void to_whole(dec *d, int mode) {
    if (d->e >= 0)
        return;
    int64_t k = -d->e;
    int nd = digits256(d->m);
    int nonzero_frac, up = 0;
    if (k > nd) { /* |d| < 1 */
        nonzero_frac = !u256_is_zero(d->m);
        int half_or_more = 0;
        if (k == nd) {
            /* not reached: k > nd */
        }
        d->m = u256_from(0);
        d->e = 0;
        if (mode == SQL_ROUND_FLOOR)
            up = d->neg && nonzero_frac;
        else if (mode == SQL_ROUND_CEIL)
            up = !d->neg && nonzero_frac;
        else
            up = half_or_more;
        if (up)
            d->m = u256_from(1);
        return;
    }
    /* split into q = |d| / 10^k and the fraction's first digit and sticky */
    int sticky = 0;
    uint64_t rem;
    int64_t left = k - 1;
    u256 m = d->m;
    while (left > 0) {
        int chunk = left > 19 ? 19 : (int)left;
        m = u256_divmod64(m, (uint64_t)pow10_128(chunk), &rem);
        sticky |= rem != 0;
        left -= chunk;
    }
    m = u256_divmod64(m, 10, &rem);
    nonzero_frac = rem != 0 || sticky;
    switch (mode) {
    case SQL_ROUND_HALF_UP: up = rem >= 5; break;
    case SQL_ROUND_FLOOR: up = d->neg && nonzero_frac; break;
    case SQL_ROUND_CEIL: up = !d->neg && nonzero_frac; break;
    default: up = 0; break;
    }
    if (up)
        m = u256_add(m, u256_from(1));
    d->m = m;
    d->e = 0;
}

sql_value sql__num_to_int(sql_ctx *ctx, const sql_value *v, int mode) {
    if (v->t == SQL_T_INT)
        return *v;
    if (!(v->f & SQL_F_BIG) && v->e < 0 && v->e >= -18) {
        int64_t p = p10_64[-v->e], q = v->u.i / p, r = v->u.i % p;
        switch (mode) {
        case SQL_ROUND_HALF_UP:
            if (r != 0 && (r < 0 ? -r : r) * 2 >= p)
                q += v->u.i < 0 ? -1 : 1;
            break;
        case SQL_ROUND_FLOOR:
            if (r < 0)
                q--;
            break;
        case SQL_ROUND_CEIL:
            if (r > 0)
                q++;
            break;
        default: break;
        }
        return sql__int(q);
    }
    dec d = to_dec(v);
    if (d.e > 0 && digits256(d.m) + d.e > INT_DIGITS)
        return SQL_UNDEF;
    if (d.e > 0) {
        d.m = u256_scale(d.m, (int)d.e);
        d.e = 0;
    }
    to_whole(&d, mode);
    if (digits256(d.m) > INT_DIGITS)
        return SQL_UNDEF;
    return make(ctx, SQL_T_INT, d);
}

sql_value sql__num_to_dec(sql_ctx *ctx, const sql_value *v) {
    sql_value r = *v;
    r.t = SQL_T_DEC;
    return r;
}

int sql__num_to_i64(const sql_value *v, int mode, int64_t *out) {
    if (v->t != SQL_T_INT && v->t != SQL_T_DEC)
        return -1;
    if (!(v->f & SQL_F_BIG) && v->e == 0) {
        *out = v->u.i;
        return 0;
    }
    sql_ctx tmp;
    memset(&tmp, 0, sizeof tmp);
    sql__arena_init(&tmp.arena, 4096);
    sql_value r = sql__num_to_int(&tmp, v, mode);
    int rc = -1;
    if (r.t == SQL_T_INT && !(r.f & SQL_F_BIG)) {
        *out = r.u.i;
        rc = 0;
    }
    sql__arena_deinit(&tmp.arena);
    return rc;
}

sql_value sql__num_trunc_places(sql_ctx *ctx, const sql_value *v, int places) {
    if (v->t == SQL_T_INT)
        return *v;
    if (places < 0)
        places = 0;
    if (places > 34)
        places = 34;
    dec d = to_dec(v);
    if (d.e < -places) {
        int64_t k = -places - d.e; /* digits to drop toward zero */
        int nd = digits256(d.m);
        if (k >= nd) {
            d.m = u256_from(0);
        } else {
            uint64_t rem;
            for (int64_t left = k; left > 0;) {
                int chunk = left > 19 ? 19 : (int)left;
                d.m = u256_divmod64(d.m, (uint64_t)pow10_128(chunk), &rem);
                left -= chunk;
            }
        }
        d.e = -places;
    }
    while (d.e < 0 && !u256_is_zero(d.m)) { /* AWS: trailing zeros are stripped */
        uint64_t rem;
        u256 q = u256_divmod64(d.m, 10, &rem);
        if (rem)
            break;
        d.m = q;
        d.e++;
    }
    if (u256_is_zero(d.m))
        d.e = 0;
    return sql__num_norm(ctx, make(ctx, SQL_T_DEC, d));
}

/* }====== */

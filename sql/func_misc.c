/*
 * func_misc.c -- type tests, get, concat, transform, encode/decode and hashes (checklist §15
 * "Conversion and type tests", "Collections and encoding", "Hashes").
 *
 * All of these build their results in the evaluation arena. Arrays and objects are immutable
 * values, so concat and transform copy member *descriptors* (16-byte values, key pointers)
 * rather than deep-copying: a merged object shares its strings with its inputs.
 *
 * decode(v, 'base64') mirrors java.util.Base64.getDecoder(): the standard alphabet, '='
 * padding optional but only at the end, no whitespace; anything else is "cannot be decoded"
 * and gives NULL as documented. The decoded bytes are parsed as JSON when they are JSON (so
 * decode(x, 'base64').temperature works); otherwise they become a String, with invalid UTF-8
 * sequences replaced by U+FFFD as Java's new String(bytes, UTF_8) does, so the String always
 * serializes as valid JSON.
 *
 * Hashes use OpenSSL's one-shot EVP_Digest, except MD2, which OpenSSL 3 no longer ships; it
 * is implemented here from RFC 1319 (with the RFC's published checksum erratum applied). The
 * digest input is the standard String conversion of the argument (md5(5) = md5("5")).
 * Rejected: linking OpenSSL's legacy provider for MD2 (it must be loaded process-wide and is
 * often not installed).
 */
#include "sql_int.h"

#include <openssl/evp.h>
#include <string.h>

/* {====== helpers */

static int strarg(sql_ctx *ctx, const sql_value *v, const char **s, size_t *n) {
    if (v->t == SQL_T_NULL || v->t == SQL_T_UNDEF || v->t == SQL_T_BIN)
        return -1;
    return sql__to_str(ctx, v, s, n) < 0 ? -1 : 0;
}

static int is_lit(const sql_value *v, const char *s) {
    size_t n = strlen(s);
    return v->t == SQL_T_STR && v->n == n && memcmp(v->u.s, s, n) == 0;
}

/* Implicit Int conversion of an index (§7): Int as is, Decimal rounded to nearest, String
 * parsed as Decimal then truncated. 0 with *i set, or -1 (also when beyond int64). */
static int idxarg(sql_ctx *ctx, const sql_value *v, int64_t *i) {
    switch (v->t) {
    case SQL_T_INT:
    case SQL_T_DEC:
        return sql__num_to_i64(v, SQL_ROUND_HALF_UP, i);
    case SQL_T_STR: {
        sql_value n = sql__to_num(ctx, v);
        return sql__is_num(&n) ? sql__num_to_i64(&n, SQL_ROUND_TRUNC, i) : -1;
    }
    default:
        return -1;
    }
}

static char *dupbytes(sql_ctx *ctx, const char *s, size_t n) {
    char *p = sql__alloc(ctx, n ? n : 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

/* }====== */

/* {====== type tests */

static int fn_isnull(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = argc == 1 ? sql__bool(argv[0].t == SQL_T_NULL) : SQL_UNDEF;
    return 0;
}

static int fn_isundefined(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = argc == 1 ? sql__bool(argv[0].t == SQL_T_UNDEF) : SQL_UNDEF;
    return 0;
}

/* }====== */

/* {====== get, concat */

/* get(c, k): Array element or String character k (0-based; the 2022 doc's get("abc", 1) = "a"
 * contradicts its own 0-based rule and the 2019 doc, see sql/README.md), or Object member k
 * (k must be a String: no conversion). Anything out of range or missing is Undefined. */
static int fn_get(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const sql_value *c = &argv[0], *k = &argv[1];
    int64_t i;
    *out = SQL_UNDEF;
    if (argc != 2)
        return 0;
    if (c->t == SQL_T_OBJ) {
        const sql_value *m = k->t == SQL_T_STR ? sql__obj_get(c, k->u.s, k->n) : NULL;
        if (m)
            *out = *m;
        return 0;
    }
    if ((c->t != SQL_T_ARR && c->t != SQL_T_STR) || idxarg(ctx, k, &i) < 0 || i < 0)
        return 0;
    if (c->t == SQL_T_ARR) {
        if (i < (int64_t)c->n)
            *out = c->u.a[i];
        return 0;
    }
    /* String: walk to the i-th code point. */
    const char *s = c->u.s;
    size_t n = c->n, b = 0;
    for (int64_t ci = 0; b < n; ci++) {
        size_t e = b + 1;
        while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80)
            e++;
        if (ci == i) {
            *out = sql__str(s + b, (uint32_t)(e - b));
            return 0;
        }
        b = e;
    }
    return 0;
}

/* concat(...): with any Array argument, one array (Array arguments spliced in, others added
 * as elements); else the String conversions joined. A Null or Undefined argument, or no
 * argument at all, gives Undefined. concat(1) is "1" per the doc example. */
static int fn_concat(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    int arrays = 0;
    size_t total = 0;
    *out = SQL_UNDEF;
    if (argc <= 0)
        return 0;
    for (int i = 0; i < argc; i++) {
        if (argv[i].t == SQL_T_NULL || argv[i].t == SQL_T_UNDEF || argv[i].t == SQL_T_BIN)
            return 0;
        arrays |= argv[i].t == SQL_T_ARR;
        total += argv[i].t == SQL_T_ARR ? argv[i].n : 1;
    }
    if (arrays) {
        if (total > UINT32_MAX)
            return sql_ctx_error(ctx, SQL_E_LIMIT, "concat: array too long");
        sql_value *a = sql__alloc(ctx, (total ? total : 1) * sizeof *a);
        if (!a)
            return ctx->err;
        size_t k = 0;
        for (int i = 0; i < argc; i++) {
            if (argv[i].t == SQL_T_ARR) {
                if (argv[i].n)
                    memcpy(a + k, argv[i].u.a, argv[i].n * sizeof *a);
                k += argv[i].n;
            } else {
                a[k++] = argv[i];
            }
        }
        *out = (sql_value){.t = SQL_T_ARR, .n = (uint32_t)total, .u.a = a};
        return 0;
    }
    sql_buf *w = &ctx->scratch;
    sql__buf_reset(w);
    for (int i = 0; i < argc; i++) {
        const char *s;
        size_t n;
        if (strarg(ctx, &argv[i], &s, &n) < 0)
            return ctx->err;
        sql__buf_put(w, s, n);
    }
    if (w->oom)
        return sql_ctx_error(ctx, SQL_E_NOMEM, "concat: out of memory");
    if (w->len > UINT32_MAX)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "concat: string too long");
    char *p = dupbytes(ctx, w->p, w->len);
    if (!p)
        return ctx->err;
    *out = sql__str(p, (uint32_t)w->len);
    return 0;
}

/* }====== */

/* {====== transform */

#define TRANSFORM_MAX (128u * 1024u)

/* One element of enrichArray: el's members first, then obj's members whose key el lacks. */
static int enrich(sql_ctx *ctx, const sql_value *el, const sql_value *obj, sql_value *out) {
    size_t cap = (size_t)el->n + obj->n;
    sql_member *m = sql__alloc(ctx, (cap ? cap : 1) * sizeof *m);
    if (!m)
        return ctx->err;
    size_t k = 0;
    for (uint32_t i = 0; i < el->n; i++)
        m[k++] = el->u.o[i];
    for (uint32_t i = 0; i < obj->n; i++) {
        const sql_member *om = &obj->u.o[i];
        if (!sql__obj_get(el, om->k, om->klen))
            m[k++] = *om;
    }
    *out = (sql_value){.t = SQL_T_OBJ, .n = (uint32_t)k, .u.o = m};
    return 0;
}

/* transform('enrichArray', obj, arr): every Object element of arr enriched with obj's members.
 * Elements that are not Objects are kept as they are (AWS does not document them; dropping
 * them would silently lose data). Results over 128 KiB of JSON give Undefined, as the
 * documented output limit. */
static int fn_transform(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    if (argc != 3 || !is_lit(&argv[0], "enrichArray") || argv[1].t != SQL_T_OBJ ||
        argv[2].t != SQL_T_ARR)
        return 0;
    const sql_value *arr = &argv[2];
    sql_value *a = sql__alloc(ctx, (arr->n ? arr->n : 1) * sizeof *a);
    if (!a)
        return ctx->err;
    for (uint32_t i = 0; i < arr->n; i++) {
        if (arr->u.a[i].t != SQL_T_OBJ) {
            a[i] = arr->u.a[i];
            continue;
        }
        int rc = enrich(ctx, &arr->u.a[i], &argv[1], &a[i]);
        if (rc)
            return rc;
    }
    sql_value res = {.t = SQL_T_ARR, .n = arr->n, .u.a = a};
    sql_buf *w = &ctx->scratch;
    sql__buf_reset(w);
    sql__json_write(w, &res);
    if (w->oom)
        return sql_ctx_error(ctx, SQL_E_NOMEM, "transform: out of memory");
    if (w->len <= TRANSFORM_MAX)
        *out = res;
    return 0;
}

/* }====== */

/* {====== encode, decode */

/* encode(v, 'base64'): v's String conversion, or with `*` the raw payload bytes (BIN). */
static int fn_encode(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s;
    size_t n;
    *out = SQL_UNDEF;
    if (argc != 2 || !is_lit(&argv[1], "base64"))
        return 0;
    if (argv[0].t == SQL_T_BIN) {
        s = argv[0].u.s;
        n = argv[0].n;
    } else if (strarg(ctx, &argv[0], &s, &n) < 0) {
        return 0;
    }
    return sql__base64_encode(ctx, s, n, out);
}


/* Length of the valid UTF-8 sequence at s[i], or 0 when it is malformed (overlong, surrogate,
 * beyond U+10FFFF, truncated). */
static size_t utf8_ok(const unsigned char *s, size_t n, size_t i) {
    unsigned char c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        k = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        k = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (i + k > n)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[i + j] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

/* Bytes -> String value, malformed UTF-8 replaced by U+FFFD (one per bad byte). */
static int bytes_to_str(sql_ctx *ctx, const unsigned char *s, size_t n, sql_value *out) {
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_ok(s, n, i);
        bad += !k;
        i += k ? k : 1;
    }
    if (!bad) {
        *out = sql__str((const char *)s, (uint32_t)n);
        return 0;
    }
    char *p = sql__alloc(ctx, n + 2 * bad);
    if (!p)
        return ctx->err;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_ok(s, n, i);
        if (k) {
            memcpy(p + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(p + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    *out = sql__str(p, (uint32_t)o);
    return 0;
}

/* decode(s, 'base64'): the decoded JSON value, or a String of the decoded text; NULL when s
 * is not base64. */
static int fn_decode(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    if (argc != 2 || !is_lit(&argv[1], "base64") || argv[0].t != SQL_T_STR)
        return 0;
    unsigned char *p = sql__alloc(ctx, (size_t)argv[0].n / 4 * 3 + 3);
    if (!p)
        return ctx->err;
    long len = sql_base64_decode(argv[0].u.s, argv[0].n, p);
    if (len < 0) {
        *out = SQL_NULLV;
        return 0;
    }
    sql_value v;
    int rc = sql__json_parse(ctx, (const char *)p, (size_t)len, &v);
    if (rc == 0) {
        *out = v;
        return 0;
    }
    if (rc != -1)
        return rc; /* out of memory or a limit: the ctx error is raised */
    return bytes_to_str(ctx, p, (size_t)len, out);
}

/* }====== */

/* {====== hashes */

/* MD2, RFC 1319. S is the RFC's permutation of 0..255 built from the digits of pi. */
static const unsigned char md2_s[256] = {
    41,  46,  67,  201, 162, 216, 124, 1,   61,  54,  84,  161, 236, 240, 6,   19,  98,  167,
    5,   243, 192, 199, 115, 140, 152, 147, 43,  217, 188, 76,  130, 202, 30,  155, 87,  60,
    253, 212, 224, 22,  103, 66,  111, 24,  138, 23,  229, 18,  190, 78,  196, 214, 218, 158,
    222, 73,  160, 251, 245, 142, 187, 47,  238, 122, 169, 104, 121, 145, 21,  178, 7,   63,
    148, 194, 16,  137, 11,  34,  95,  33,  128, 127, 93,  154, 90,  144, 50,  39,  53,  62,
    204, 231, 191, 247, 151, 3,   255, 25,  48,  179, 72,  165, 181, 209, 215, 94,  146, 42,
    172, 86,  170, 198, 79,  184, 56,  210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116,
    4,   241, 69,  157, 112, 89,  100, 113, 135, 32,  134, 91,  207, 101, 230, 45,  168, 2,
    27,  96,  37,  173, 174, 176, 185, 246, 28,  70,  97,  105, 52,  64,  126, 15,  85,  71,
    163, 35,  221, 81,  175, 58,  195, 92,  249, 206, 186, 197, 234, 38,  44,  83,  13,  110,
    133, 40,  132, 9,   211, 223, 205, 244, 65,  129, 77,  82,  106, 220, 55,  200, 108, 193,
    171, 250, 36,  225, 123, 8,   12,  189, 177, 74,  120, 136, 149, 139, 227, 99,  232, 109,
    233, 203, 213, 254, 59,  0,   29,  57,  242, 239, 183, 14,  102, 88,  208, 228, 166, 119,
    114, 248, 235, 117, 75,  10,  49,  68,  80,  180, 143, 237, 31,  26,  219, 153, 141, 51,
    159, 17,  131, 20,
};

typedef struct md2 {
    unsigned char x[48], c[16];
    unsigned char l;
} md2;

static void md2_block(md2 *h, const unsigned char *b) {
    for (int j = 0; j < 16; j++) {
        h->x[16 + j] = b[j];
        h->x[32 + j] = (unsigned char)(b[j] ^ h->x[j]);
        /* RFC erratum: the checksum byte is XORed with S[...], not overwritten by it. */
        h->c[j] ^= md2_s[b[j] ^ h->l];
        h->l = h->c[j];
    }
    unsigned t = 0;
    for (unsigned j = 0; j < 18; j++) {
        for (int k = 0; k < 48; k++)
            t = h->x[k] ^= md2_s[t];
        t = (t + j) & 0xFF;
    }
}

static void md2_digest(const unsigned char *s, size_t n, unsigned char out[16]) {
    md2 h;
    unsigned char last[16];
    memset(&h, 0, sizeof h);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        md2_block(&h, s + i);
    size_t r = n - i, pad = 16 - r;
    memcpy(last, s + i, r);
    memset(last + r, (int)pad, pad);
    md2_block(&h, last);
    memcpy(last, h.c, 16); /* the checksum block; md2_block updates h.c, so copy it first */
    md2_block(&h, last);
    memcpy(out, h.x, 16);
}

enum { H_MD2, H_MD5, H_SHA1, H_SHA224, H_SHA256, H_SHA384, H_SHA512 };

static int hash(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out, int alg) {
    const char *s;
    size_t n;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 16;
    *out = SQL_UNDEF;
    if (argc != 1 || strarg(ctx, &argv[0], &s, &n) < 0)
        return 0;
    if (alg == H_MD2) {
        md2_digest((const unsigned char *)s, n, md);
    } else {
        const EVP_MD *t = alg == H_MD5      ? EVP_md5()
                          : alg == H_SHA1   ? EVP_sha1()
                          : alg == H_SHA224 ? EVP_sha224()
                          : alg == H_SHA256 ? EVP_sha256()
                          : alg == H_SHA384 ? EVP_sha384()
                                            : EVP_sha512();
        if (!EVP_Digest(s, n, md, &len, t, NULL))
            return sql_ctx_error(ctx, SQL_E_RUNTIME, "hash: digest failed");
    }
    char *p = sql__alloc(ctx, 2 * (size_t)len);
    if (!p)
        return ctx->err;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; i++) {
        p[2 * i] = hex[md[i] >> 4];
        p[2 * i + 1] = hex[md[i] & 15];
    }
    *out = sql__str(p, 2 * len);
    out->f = SQL_F_JSAFE;
    return 0;
}

#define HASH(name, alg)                                                                            \
    static int fn_##name(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {          \
        return hash(ctx, argc, argv, out, alg);                                                    \
    }
HASH(md2, H_MD2)
HASH(md5, H_MD5)
HASH(sha1, H_SHA1)
HASH(sha224, H_SHA224)
HASH(sha256, H_SHA256)
HASH(sha384, H_SHA384)
HASH(sha512, H_SHA512)
#undef HASH

/* }====== */

#define DET SQL_FN_DETERMINISTIC

const sql_func sql__func_misc[] = {
    {"isnull", 1, 1, DET, fn_isnull},
    {"isundefined", 1, 1, DET | SQL_FN_V2016, fn_isundefined},
    {"get", 2, 2, DET, fn_get},
    {"concat", 0, -1, DET, fn_concat},
    {"transform", 3, 3, DET | SQL_FN_V2016, fn_transform},
    {"encode", 2, 2, DET | SQL_FN_V2016 | SQL_FN_LIT2 | SQL_FN_STAR, fn_encode},
    {"decode", 2, 2, DET | SQL_FN_V2016 | SQL_FN_LIT2, fn_decode},
    {"md2", 1, 1, DET, fn_md2},
    {"md5", 1, 1, DET, fn_md5},
    {"sha1", 1, 1, DET, fn_sha1},
    {"sha224", 1, 1, DET, fn_sha224},
    {"sha256", 1, 1, DET, fn_sha256},
    {"sha384", 1, 1, DET, fn_sha384},
    {"sha512", 1, 1, DET, fn_sha512},
    {0},
};

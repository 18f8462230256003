/*
 * json.c -- the JSON tree shadow documents are made of: a strict RFC 8259 parser, a compact
 * writer, lookup and equality.
 *
 * Why not cJSON: cJSON turns every number into a double, so a reported 12345678901234567890
 * would come back as 1.2345678901234567e+19 and 1.10 as 1.1. Here a number keeps the text it
 * was written with, and numbers are compared exactly by their decimal value (sign, significant
 * digits, exponent), never through a double. Strings are decoded once (a string without
 * escapes points into the input, zero copy) and re-escaped minimally on output, as AWS's
 * serializer does (", \ and control characters; everything else as raw UTF-8).
 *
 * Nodes live in an arena: one operation parses, merges and writes, then frees everything at
 * once. Objects keep their members in order (AWS echoes request order); duplicate keys are an
 * error (ENG_SJ_EDUP, see README.md). Lookups in objects of more than SMALL members go
 * through a sorted index built on first use, so merging or comparing objects costs
 * O(n log n) even for a hostile payload of many thousands of members; the index holds member
 * positions, so a merge may replace a member in place or blank it without invalidating it.
 * Nesting is bounded by the caller's max_depth (the recursion depth), so no input can
 * exhaust the stack.
 */
#include "shadow_int.h"

#include <stdlib.h>
#include <string.h>

/* {====== arena */

struct eng_sarena_chunk {
    eng_sarena_chunk *next;
    max_align_t align[]; /* the chunk's space */
};

#define CHUNK 16384

void *eng__sarena_alloc(eng_sarena *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (n > a->left) {
        size_t size = n > CHUNK / 2 ? n : CHUNK;
        eng_sarena_chunk *c = malloc(sizeof *c + size);
        if (!c)
            return NULL;
        if (n > CHUNK / 2 && a->head) {
            /* a big block gets its own chunk behind the head, keeping the head's free space */
            c->next = a->head->next;
            a->head->next = c;
            return c->align;
        }
        c->next = a->head;
        a->head = c;
        a->p = (char *)c->align;
        a->left = size;
    }
    void *r = a->p;
    a->p += n;
    a->left -= n;
    return r;
}

void eng__sarena_deinit(eng_sarena *a) {
    eng_sarena_chunk *c = a->head;
    while (c) {
        eng_sarena_chunk *next = c->next;
        free(c);
        c = next;
    }
    memset(a, 0, sizeof *a);
}

/* }====== */

/* {====== output buffer */

static int reserve(eng_sbuf *b, size_t n) {
    if (b->oom)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        b->cap = 0; /* so that no later append takes the fast path */
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void eng__sbuf_add(eng_sbuf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap && reserve(b, n)) /* after an OOM, cap is 0 */
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void eng__sbuf_lit(eng_sbuf *b, const char *s) { eng__sbuf_add(b, s, strlen(s)); }

void eng__sbuf_i64(eng_sbuf *b, int64_t v) {
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    eng__sbuf_add(b, p, (size_t)(e - p));
}

void eng__sbuf_jstr(eng_sbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (reserve(b, n + 2))
        return;
    b->p[b->len++] = '"';
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        eng__sbuf_add(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t en = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            en = 6;
        }
        eng__sbuf_add(b, esc, en);
    }
    eng__sbuf_add(b, s + run, n - run);
    eng__sbuf_add(b, "\"", 1);
}

char *eng__sbuf_take(eng_sbuf *b, size_t *len) {
    if (!b->oom && !b->p)
        reserve(b, 0);
    char *p = b->oom ? NULL : b->p;
    if (p)
        p[b->len] = '\0';
    if (len)
        *len = p ? b->len : 0;
    if (!p)
        free(b->p);
    memset(b, 0, sizeof *b);
    return p;
}

void eng__sbuf_deinit(eng_sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* }====== */

/* {====== UTF-8 */

int eng__utf8_valid(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p, *e = s + n;
    while (s < e) {
        unsigned c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else
            return 0;
        if ((size_t)(e - s) <= k)
            return 0;
        if (s[1] < lo || s[1] > hi)
            return 0;
        for (size_t i = 2; i <= k; i++)
            if ((s[i] & 0xC0) != 0x80)
                return 0;
        s += k + 1;
    }
    return 1;
}

/* }====== */

/* {====== parser */

typedef struct parser {
    eng_sarena *a;
    const char *p, *end;
    int depth, max_depth;
    eng_sjson **stk;          /* children of the containers being read */
    size_t nstk, capstk;
    char *dup;
    size_t dupcap;
} parser;

static int push(parser *r, eng_sjson *v) {
    if (r->nstk == r->capstk) {
        size_t cap = r->capstk ? r->capstk * 2 : 64;
        eng_sjson **s = realloc(r->stk, cap * sizeof *s);
        if (!s)
            return ENG_SJ_ENOMEM;
        r->stk = s;
        r->capstk = cap;
    }
    r->stk[r->nstk++] = v;
    return ENG_SJ_OK;
}

static void ws(parser *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

eng_sjson *eng__sjson_new(eng_sarena *a, int type) {
    eng_sjson *v = eng__sarena_alloc(a, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->type = (uint8_t)type;
    }
    return v;
}

static int hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* string -> '"' chars '"'. The decoded bytes go to *s / *n. */
static int string(parser *r, const char **s, uint32_t *n) {
    const char *start = ++r->p; /* after the quote */
    int escaped = 0;
    for (;;) {
        if (r->p >= r->end)
            return ENG_SJ_ESYNTAX;
        unsigned char c = (unsigned char)*r->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return ENG_SJ_ESYNTAX;
        if (c == '\\') {
            escaped = 1;
            if (++r->p >= r->end)
                return ENG_SJ_ESYNTAX;
        }
        r->p++;
    }
    const char *stop = r->p++;
    if ((size_t)(stop - start) > UINT32_MAX)
        return ENG_SJ_ESYNTAX;
    if (!escaped) {
        *s = start;
        *n = (uint32_t)(stop - start);
        return ENG_SJ_OK;
    }
    /* Decoding never grows the text: \uXXXX (6 bytes) is at most 3 bytes of UTF-8, and a
     * surrogate pair (12 bytes) 4. */
    char *o = eng__sarena_alloc(r->a, (size_t)(stop - start) + 1);
    if (!o)
        return ENG_SJ_ENOMEM;
    size_t k = 0;
    for (const char *q = start; q < stop;) {
        char c = *q++;
        if (c != '\\') {
            o[k++] = c;
            continue;
        }
        c = *q++;
        switch (c) {
        case '"': case '\\': case '/': o[k++] = c; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (stop - q < 4 || hex4(q, &cp))
                return ENG_SJ_ESYNTAX;
            q += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return ENG_SJ_ESYNTAX; /* a lone low surrogate is not text */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (stop - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return ENG_SJ_ESYNTAX;
                q += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            k += utf8_put(o + k, cp);
            break;
        }
        default:
            return ENG_SJ_ESYNTAX;
        }
    }
    o[k] = '\0';
    *s = o;
    *n = (uint32_t)k;
    return ENG_SJ_OK;
}

static int digits(parser *r) {
    const char *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > s ? 0 : ENG_SJ_ESYNTAX;
}

/* number -> '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int number(parser *r, eng_sjson *v) {
    const char *s = r->p;
    if (*r->p == '-')
        r->p++;
    if (r->p >= r->end)
        return ENG_SJ_ESYNTAX;
    if (*r->p == '0')
        r->p++;
    else if (digits(r))
        return ENG_SJ_ESYNTAX;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (digits(r))
            return ENG_SJ_ESYNTAX;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (digits(r))
            return ENG_SJ_ESYNTAX;
    }
    if ((size_t)(r->p - s) > UINT32_MAX)
        return ENG_SJ_ESYNTAX;
    v->s = s;
    v->n = (uint32_t)(r->p - s);
    return ENG_SJ_OK;
}

static int literal(parser *r, const char *word, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return ENG_SJ_ESYNTAX;
    r->p += n;
    return ENG_SJ_OK;
}

static int keycmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

struct eng_sjson_ix {
    const char *k;
    uint32_t kn, pos;
};

#define SMALL 8 /* objects up to this size are searched by a scan */

static int ixcmp(const void *x, const void *y) {
    const eng_sjson_ix *a = x, *b = y;
    return keycmp(a->k, a->kn, b->k, b->kn);
}

/* Builds obj's index (members sorted by key). -1 on OOM. */
static int build_index(eng_sarena *a, eng_sjson *obj) {
    eng_sjson_ix *ix = eng__sarena_alloc(a, (size_t)obj->n * sizeof *ix);
    if (!ix)
        return -1;
    size_t k = 0;
    for (uint32_t i = 0; i < obj->n; i++)
        if (obj->items[i])
            ix[k++] = (eng_sjson_ix){.k = obj->items[i]->key, .kn = obj->items[i]->klen, .pos = i};
    for (; k < obj->n; k++) /* blanked members sort last and never match */
        ix[k] = (eng_sjson_ix){.k = NULL, .kn = UINT32_MAX, .pos = UINT32_MAX};
    qsort(ix, obj->n, sizeof *ix, ixcmp);
    obj->ix = ix;
    return 0;
}

static void copy_key(parser *r, const char *k, size_t kn) {
    if (!r->dup || !r->dupcap)
        return;
    size_t m = kn < r->dupcap - 1 ? kn : r->dupcap - 1;
    memcpy(r->dup, k, m);
    r->dup[m] = '\0';
}

/* Rejects an object with two members of one key (see the file comment). */
static int check_unique(parser *r, eng_sjson *obj) {
    if (obj->n <= SMALL) {
        for (uint32_t i = 0; i < obj->n; i++)
            for (uint32_t j = i + 1; j < obj->n; j++)
                if (!keycmp(obj->items[i]->key, obj->items[i]->klen, obj->items[j]->key,
                            obj->items[j]->klen)) {
                    copy_key(r, obj->items[i]->key, obj->items[i]->klen);
                    return ENG_SJ_EDUP;
                }
        return ENG_SJ_OK;
    }
    if (build_index(r->a, obj))
        return ENG_SJ_ENOMEM;
    for (uint32_t i = 1; i < obj->n; i++)
        if (!ixcmp(&obj->ix[i - 1], &obj->ix[i])) {
            copy_key(r, obj->ix[i].k, obj->ix[i].kn);
            return ENG_SJ_EDUP;
        }
    return ENG_SJ_OK;
}

/* Moves the children pushed since base into v's items. */
static int close_container(parser *r, eng_sjson *v, size_t base) {
    size_t n = r->nstk - base;
    if (n > UINT32_MAX)
        return ENG_SJ_ESYNTAX;
    v->n = (uint32_t)n;
    if (n) {
        v->items = eng__sarena_alloc(r->a, n * sizeof *v->items);
        if (!v->items)
            return ENG_SJ_ENOMEM;
        memcpy(v->items, r->stk + base, n * sizeof *v->items);
    }
    r->nstk = base;
    return ENG_SJ_OK;
}

static int value(parser *r, eng_sjson **out);

/* object -> '{' (string ':' value (',' string ':' value)*)? '}' */
static int object(parser *r, eng_sjson *v) {
    size_t base = r->nstk;
    int rc;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return ENG_SJ_OK;
    }
    for (;;) {
        ws(r);
        if (r->p >= r->end || *r->p != '"')
            return ENG_SJ_ESYNTAX;
        const char *k;
        uint32_t kn;
        if ((rc = string(r, &k, &kn)))
            return rc;
        ws(r);
        if (r->p >= r->end || *r->p != ':')
            return ENG_SJ_ESYNTAX;
        r->p++;
        eng_sjson *m;
        if ((rc = value(r, &m)))
            return rc;
        m->key = k;
        m->klen = kn;
        if ((rc = push(r, m)))
            return rc;
        ws(r);
        if (r->p >= r->end)
            return ENG_SJ_ESYNTAX;
        if (*r->p == '}') {
            r->p++;
            break;
        }
        if (*r->p != ',')
            return ENG_SJ_ESYNTAX;
        r->p++;
    }
    if ((rc = close_container(r, v, base)))
        return rc;
    return check_unique(r, v);
}

/* array -> '[' (value (',' value)*)? ']' */
static int array(parser *r, eng_sjson *v) {
    size_t base = r->nstk;
    int rc;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return ENG_SJ_OK;
    }
    for (;;) {
        eng_sjson *e;
        if ((rc = value(r, &e)) || (rc = push(r, e)))
            return rc;
        ws(r);
        if (r->p >= r->end)
            return ENG_SJ_ESYNTAX;
        if (*r->p == ']') {
            r->p++;
            break;
        }
        if (*r->p != ',')
            return ENG_SJ_ESYNTAX;
        r->p++;
    }
    return close_container(r, v, base);
}

/* value -> object | array | string | number | true | false | null */
static int value(parser *r, eng_sjson **out) {
    ws(r);
    if (r->p >= r->end)
        return ENG_SJ_ESYNTAX;
    char c = *r->p;
    int type = c == '{'   ? ENG_SJ_OBJ
               : c == '[' ? ENG_SJ_ARR
               : c == '"' ? ENG_SJ_STR
               : c == 't' ? ENG_SJ_TRUE
               : c == 'f' ? ENG_SJ_FALSE
               : c == 'n' ? ENG_SJ_NULL
                          : ENG_SJ_NUM;
    eng_sjson *v = eng__sjson_new(r->a, type);
    if (!v)
        return ENG_SJ_ENOMEM;
    *out = v;
    int rc;
    switch (type) {
    case ENG_SJ_OBJ:
    case ENG_SJ_ARR:
        if (++r->depth > r->max_depth)
            return ENG_SJ_EDEPTH;
        rc = type == ENG_SJ_OBJ ? object(r, v) : array(r, v);
        r->depth--;
        return rc;
    case ENG_SJ_STR: return string(r, &v->s, &v->n);
    case ENG_SJ_TRUE: return literal(r, "true", 4);
    case ENG_SJ_FALSE: return literal(r, "false", 5);
    case ENG_SJ_NULL: return literal(r, "null", 4);
    default:
        if (c != '-' && (c < '0' || c > '9'))
            return ENG_SJ_ESYNTAX;
        return number(r, v);
    }
}

int eng__sjson_parse(eng_sarena *a, const char *p, size_t n, int max_depth, eng_sjson **out,
                     char *dup, size_t dupcap) {
    parser r = {.a = a, .p = p, .end = p + n, .max_depth = max_depth, .dup = dup,
                .dupcap = dupcap};
    eng_sjson *v = NULL;
    int rc = value(&r, &v);
    if (!rc) {
        ws(&r);
        if (r.p != r.end)
            rc = ENG_SJ_ESYNTAX;
    }
    free(r.stk);
    if (!rc)
        *out = v;
    return rc;
}

/* }====== */

/* {====== lookup and equality */

long eng__sjson_find(eng_sarena *a, eng_sjson *obj, const char *k, size_t kn) {
    if (obj->n > SMALL && !obj->ix)
        build_index(a, obj); /* on OOM: the scan below */
    if (!obj->ix) {
        for (uint32_t i = 0; i < obj->n; i++) {
            eng_sjson *m = obj->items[i];
            if (m && m->klen == kn && !memcmp(m->key, k, kn))
                return (long)i;
        }
        return -1;
    }
    size_t lo = 0, hi = obj->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const eng_sjson_ix *e = &obj->ix[mid];
        int c = e->k ? keycmp(e->k, e->kn, k, kn) : 1;
        if (c == 0)
            return obj->items[e->pos] ? (long)e->pos : -1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

eng_sjson *eng__sjson_get(eng_sarena *a, eng_sjson *obj, const char *k) {
    if (!obj || obj->type != ENG_SJ_OBJ)
        return NULL;
    long i = eng__sjson_find(a, obj, k, strlen(k));
    return i < 0 ? NULL : obj->items[i];
}

/* A number as sign, significant digits (no leading or trailing zeros) and the power of ten of
 * the last of them: value = (-1)^neg * digits * 10^exp. Zero has no digits. */
typedef struct decnum {
    int neg;
    const char *d1, *d2;      /* integer part: d1[0..n1), then the fraction d2[0..n2) */
    size_t n1, n2;
    long long exp;            /* saturated (only absurd exponents saturate) */
} decnum;

static void dec_parse(const char *s, size_t n, decnum *d) {
    const char *e = s + n, *p = s;
    memset(d, 0, sizeof *d);
    if (p < e && *p == '-') {
        d->neg = 1;
        p++;
    }
    const char *i0 = p;
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    const char *i1 = p, *f0 = p, *f1 = p;
    if (p < e && *p == '.') {
        f0 = ++p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        f1 = p;
    }
    long long ex = 0;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        for (; p < e; p++)
            ex = ex < 100000000000000000LL ? ex * 10 + (*p - '0') : ex;
        if (eneg)
            ex = -ex;
    }
    ex -= (long long)(f1 - f0);
    /* strip leading zeros (across the decimal point) */
    while (i0 < i1 && *i0 == '0')
        i0++;
    if (i0 == i1)
        while (f0 < f1 && *f0 == '0')
            f0++;
    /* strip trailing zeros (across the decimal point) */
    while (f1 > f0 && f1[-1] == '0') {
        f1--;
        ex++;
    }
    if (f1 == f0)
        while (i1 > i0 && i1[-1] == '0') {
            i1--;
            ex++;
        }
    d->d1 = i0;
    d->n1 = (size_t)(i1 - i0);
    d->d2 = f0;
    d->n2 = (size_t)(f1 - f0);
    d->exp = ex;
    if (d->n1 + d->n2 == 0) { /* zero: -0 == 0 */
        d->neg = 0;
        d->exp = 0;
    }
}

static char dec_digit(const decnum *d, size_t i) {
    return i < d->n1 ? d->d1[i] : d->d2[i - d->n1];
}

int eng__sjson_num_equal(const char *x, size_t xn, const char *y, size_t yn) {
    decnum a, b;
    dec_parse(x, xn, &a);
    dec_parse(y, yn, &b);
    size_t n = a.n1 + a.n2;
    if (a.neg != b.neg || a.exp != b.exp || n != b.n1 + b.n2)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (dec_digit(&a, i) != dec_digit(&b, i))
            return 0;
    return 1;
}

static size_t live_members(const eng_sjson *obj) {
    size_t n = 0;
    for (uint32_t i = 0; i < obj->n; i++)
        n += obj->items[i] != NULL;
    return n;
}

int eng__sjson_equal(eng_sarena *a, eng_sjson *x, eng_sjson *y) {
    if (x->type != y->type)
        return 0;
    switch (x->type) {
    case ENG_SJ_NUM: return eng__sjson_num_equal(x->s, x->n, y->s, y->n);
    case ENG_SJ_STR: return x->n == y->n && !memcmp(x->s, y->s, x->n);
    case ENG_SJ_ARR:
        if (x->n != y->n)
            return 0;
        for (uint32_t i = 0; i < x->n; i++)
            if (!eng__sjson_equal(a, x->items[i], y->items[i]))
                return 0;
        return 1;
    case ENG_SJ_OBJ:
        if (live_members(x) != live_members(y))
            return 0;
        for (uint32_t i = 0; i < x->n; i++) {
            eng_sjson *m = x->items[i];
            if (!m)
                continue;
            long j = eng__sjson_find(a, y, m->key, m->klen);
            if (j < 0 || !eng__sjson_equal(a, m, y->items[j]))
                return 0;
        }
        return 1;
    default: return 1; /* null, true, false */
    }
}

/* }====== */

/* {====== writer */

void eng__sjson_write_tree(eng_sbuf *b, const eng_sjson *v, eng_sjson_leaf_fn leaf, void *ud) {
    if (v->type != ENG_SJ_OBJ && v->type != ENG_SJ_ARR) {
        leaf(b, v, ud);
        return;
    }
    int obj = v->type == ENG_SJ_OBJ, first = 1;
    eng__sbuf_add(b, obj ? "{" : "[", 1);
    for (uint32_t i = 0; i < v->n; i++) {
        const eng_sjson *m = v->items[i];
        if (!m)
            continue; /* a member a merge blanked */
        if (!first)
            eng__sbuf_add(b, ",", 1);
        first = 0;
        if (obj) {
            eng__sbuf_jstr(b, m->key, m->klen);
            eng__sbuf_add(b, ":", 1);
        }
        eng__sjson_write_tree(b, m, leaf, ud);
    }
    eng__sbuf_add(b, obj ? "}" : "]", 1);
}

static void write_scalar(eng_sbuf *b, const eng_sjson *v, void *ud) {
    (void)ud;
    switch (v->type) {
    case ENG_SJ_NULL: eng__sbuf_add(b, "null", 4); return;
    case ENG_SJ_TRUE: eng__sbuf_add(b, "true", 4); return;
    case ENG_SJ_FALSE: eng__sbuf_add(b, "false", 5); return;
    case ENG_SJ_NUM: eng__sbuf_add(b, v->s, v->n); return;
    default: eng__sbuf_jstr(b, v->s, v->n); return;
    }
}

void eng__sjson_write(eng_sbuf *b, const eng_sjson *v) {
    eng__sjson_write_tree(b, v, write_scalar, NULL);
}

/* }====== */

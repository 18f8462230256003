/*
 * json_read.c -- the JSON reader: a full parser, and the lazy single-pass scanner that
 * evaluation uses on payloads.
 *
 * sql__json_scan() reads a payload once, from the front, guided by the program's path trie
 * (compile.c): at each object level it compares member names with the trie's children,
 * materializes only the values the rule reads (through the full parser), descends only where
 * the trie goes deeper, skips everything else with a cheap structural skip that builds
 * nothing, and returns as soon as the last needed value has been read. A rule that reads one
 * key near the front of a 10 KB payload therefore costs about what it costs on 100 bytes.
 * Rejected alternative: parse the whole payload into a tree first (cJSON), which costs
 * ~580 ns for a 100-byte message before any rule logic runs.
 *
 * Values are built in the evaluation arena. Strings without escapes are not copied: they point
 * into the payload and carry SQL_F_JSAFE so the writer can copy them verbatim. Containers are
 * collected on a reusable stack (ctx->jstack) and copied out exactly sized when they close.
 * Duplicate keys: the first occurrence wins (the scanner may stop before a later one).
 * The parser is strict RFC 8259; the skip is structural only (see sql/README.md).
 */
#include "sql_int.h"

#include <string.h>

typedef struct jr {
    sql_ctx *ctx;
    const char *p, *end;
    int depth;
    int64_t remaining; /* scan: slots still to find under the root */
    unsigned char *seen; /* scan, per trie node: 1 matched (first occurrence wins), 2 settled */
    const uint8_t *need; /* scan: SQL_NEED_* per node, or NULL (see sql_pathset) */
} jr;

#define NOT_JSON (-1)
#define DONE 1 /* scan: every slot found, stop reading */

static inline void ws(jr *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int stack_push(jr *r, const void *item, size_t size) {
    sql_buf *b = &r->ctx->jstack;
    if (sql__buf_reserve(b, size) != 0)
        return sql_ctx_error(r->ctx, SQL_E_NOMEM, "out of memory");
    memcpy(b->p + b->len, item, size);
    b->len += size;
    return 0;
}

/* {====== strings */

/* Decodes the escaped string body s[0..n) into the arena. */
static int unescape(jr *r, const char *s, size_t n, const char **out, uint32_t *outn) {
    char *o = sql__alloc(r->ctx, n + 1);
    if (!o)
        return r->ctx->err;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i++];
        if (c != '\\') {
            o[k++] = c;
            continue;
        }
        c = s[i++];
        switch (c) {
        case '"': case '\\': case '/': o[k++] = c; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (sql__hex4(s + i, s + n, &cp))
                return NOT_JSON;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' &&
                    !sql__hex4(s + i + 2, s + n, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    cp = 0xFFFD; /* lone high surrogate */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            k += sql__utf8_put(o + k, cp);
            break;
        }
        default:
            return NOT_JSON;
        }
    }
    o[k] = '\0';
    *out = o;
    *outn = (uint32_t)k;
    return 0;
}

/* string -> '"' chars '"'. *jsafe = 1 when the bytes were used as they are. */
static int string(jr *r, const char **s, uint32_t *n, int *jsafe) {
    const char *start = ++r->p, *q = start, *end = r->end;
    int esc = 0;
    for (;;) {
        while (q < end && (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\')
            q++;
        if (q >= end)
            return NOT_JSON;
        if (*q == '"')
            break;
        if (*q == '\\') {
            esc = 1;
            q += 2;
            continue;
        }
        return NOT_JSON; /* a raw control character */
    }
    r->p = q + 1;
    if (q - start > (ptrdiff_t)UINT32_MAX)
        return NOT_JSON;
    if (!esc) {
        *s = start;
        *n = (uint32_t)(q - start);
        *jsafe = 1;
        return 0;
    }
    *jsafe = 0;
    return unescape(r, start, (size_t)(q - start), s, n);
}

/* }====== */

/* {====== values */

static int value(jr *r, sql_value *out);

static int number(jr *r, sql_value *out) {
    const char *s = r->p, *q = s, *end = r->end;
    if (q < end && *q == '-')
        q++;
    if (q >= end)
        return NOT_JSON;
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    } else {
        return NOT_JSON;
    }
    int simple = 1;
    if (q < end && *q == '.') {
        simple = 0;
        q++;
        if (q >= end || *q < '0' || *q > '9')
            return NOT_JSON;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        simple = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || *q < '0' || *q > '9')
            return NOT_JSON;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    r->p = q;
    if (simple && q - s <= 18) { /* the common integer, without a call */
        const char *d = s + (*s == '-');
        int64_t v = 0;
        for (; d < q; d++)
            v = v * 10 + (*d - '0');
        *out = sql__int(*s == '-' ? -v : v);
        return 0;
    }
    if (sql__num_parse(r->ctx, s, (size_t)(q - s), out) != 0)
        return r->ctx->err ? r->ctx->err : NOT_JSON;
    return 0;
}

static int literal(jr *r, const char *word, size_t n, sql_value v, sql_value *out) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return NOT_JSON;
    r->p += n;
    *out = v;
    return 0;
}

static uint32_t hash_key(const char *s, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Copies the members collected since `base` into the arena, dropping later duplicates. */
static int close_object(jr *r, size_t base, sql_value *out) {
    sql_buf *b = &r->ctx->jstack;
    size_t n = (b->len - base) / sizeof(sql_member);
    sql_member *src = (sql_member *)(void *)(b->p + base);
    sql_member *dst = n ? sql__alloc(r->ctx, sizeof(sql_member) * n) : NULL;
    if (n && !dst)
        return r->ctx->err;
    size_t k = 0;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) {
            size_t j;
            for (j = 0; j < k; j++)
                if (dst[j].klen == src[i].klen && memcmp(dst[j].k, src[i].k, src[i].klen) == 0)
                    break;
            if (j == k)
                dst[k++] = src[i];
        }
    } else {
        size_t cap = 32;
        while (cap < n * 2)
            cap *= 2;
        int32_t *tab = sql__alloc(r->ctx, sizeof(int32_t) * cap);
        if (!tab)
            return r->ctx->err;
        memset(tab, 0xff, sizeof(int32_t) * cap);
        for (size_t i = 0; i < n; i++) {
            uint32_t h = hash_key(src[i].k, src[i].klen);
            size_t at = h & (cap - 1);
            int dup = 0;
            while (tab[at] >= 0) {
                const sql_member *m = &dst[tab[at]];
                if (m->klen == src[i].klen && memcmp(m->k, src[i].k, m->klen) == 0) {
                    dup = 1;
                    break;
                }
                at = (at + 1) & (cap - 1);
            }
            if (!dup) {
                tab[at] = (int32_t)k;
                dst[k++] = src[i];
            }
        }
    }
    b->len = base;
    *out = (sql_value){.t = SQL_T_OBJ, .n = (uint32_t)k, .u.o = dst};
    return 0;
}

/* object -> '{' [ string ':' value { ',' string ':' value } ] '}' */
static int object(jr *r, sql_value *out) {
    size_t base = r->ctx->jstack.len;
    int rc;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        *out = (sql_value){.t = SQL_T_OBJ};
        return 0;
    }
    for (;;) {
        sql_member m;
        int jsafe;
        ws(r);
        if (r->p >= r->end || *r->p != '"')
            return NOT_JSON;
        if ((rc = string(r, &m.k, &m.klen, &jsafe)))
            return rc;
        m.kflags = jsafe ? SQL_F_JSAFE : 0;
        ws(r);
        if (r->p >= r->end || *r->p != ':')
            return NOT_JSON;
        r->p++;
        if ((rc = value(r, &m.v)))
            return rc;
        if ((rc = stack_push(r, &m, sizeof m)))
            return rc;
        ws(r);
        if (r->p >= r->end)
            return NOT_JSON;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p == '}') {
            r->p++;
            return close_object(r, base, out);
        }
        return NOT_JSON;
    }
}

/* array -> '[' [ value { ',' value } ] ']' */
static int array(jr *r, sql_value *out) {
    size_t base = r->ctx->jstack.len;
    int rc;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        *out = (sql_value){.t = SQL_T_ARR};
        return 0;
    }
    for (;;) {
        sql_value v;
        if ((rc = value(r, &v)))
            return rc;
        if ((rc = stack_push(r, &v, sizeof v)))
            return rc;
        ws(r);
        if (r->p >= r->end)
            return NOT_JSON;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p != ']')
            return NOT_JSON;
        r->p++;
        sql_buf *b = &r->ctx->jstack;
        size_t n = (b->len - base) / sizeof(sql_value);
        sql_value *dst = sql__alloc(r->ctx, sizeof(sql_value) * n);
        if (!dst)
            return r->ctx->err;
        memcpy(dst, b->p + base, sizeof(sql_value) * n);
        b->len = base;
        *out = (sql_value){.t = SQL_T_ARR, .n = (uint32_t)n, .u.a = dst};
        return 0;
    }
}

/* value -> object | array | string | number | true | false | null */
static int value(jr *r, sql_value *out) {
    ws(r);
    if (r->p >= r->end)
        return NOT_JSON;
    switch (*r->p) {
    case '{':
    case '[': {
        if (++r->depth > SQL_JSON_MAX_DEPTH)
            return NOT_JSON;
        int rc = *r->p == '{' ? object(r, out) : array(r, out);
        r->depth--;
        return rc;
    }
    case '"': {
        const char *s;
        uint32_t n;
        int jsafe, rc = string(r, &s, &n, &jsafe);
        if (rc)
            return rc;
        *out = (sql_value){.t = SQL_T_STR, .f = jsafe ? SQL_F_JSAFE : 0, .n = n, .u.s = s};
        return 0;
    }
    case 't': return literal(r, "true", 4, sql__bool(1), out);
    case 'f': return literal(r, "false", 5, sql__bool(0), out);
    case 'n': return literal(r, "null", 4, SQL_NULLV, out);
    default: return number(r, out);
    }
}

int sql__json_parse(sql_ctx *ctx, const char *p, size_t n, sql_value *out) {
    jr r = {.ctx = ctx, .p = p, .end = p + n};
    size_t base = ctx->jstack.len;
    int rc = value(&r, out);
    ctx->jstack.len = base;
    if (rc)
        return rc;
    ws(&r);
    return r.p == r.end ? 0 : NOT_JSON;
}

/* }====== */

/* {====== lazy scan */

/* Skips one value without building it. Structural checks only. */
static int skip(jr *r) {
    ws(r);
    if (r->p >= r->end)
        return NOT_JSON;
    char c = *r->p;
    if (c == '"') {
        const char *q = r->p + 1;
        for (;;) {
            const char *qq = memchr(q, '"', (size_t)(r->end - q));
            if (!qq)
                return NOT_JSON;
            const char *b = qq; /* an odd run of backslashes escapes the quote */
            while (b > q && b[-1] == '\\')
                b--;
            if (((qq - b) & 1) == 0) {
                r->p = qq + 1;
                return 0;
            }
            q = qq + 1;
        }
    }
    if (c == '{' || c == '[') {
        int depth = 0;
        const char *q = r->p;
        while (q < r->end) {
            char d = *q;
            if (d == '"') {
                r->p = q;
                int rc = skip(r);
                if (rc)
                    return rc;
                q = r->p;
                continue;
            }
            if (d == '{' || d == '[') {
                /* the same absolute bound as value(): whether a payload is JSON must not
                   depend on which of its members a rule reads */
                if (r->depth + ++depth > SQL_JSON_MAX_DEPTH)
                    return NOT_JSON;
            } else if (d == '}' || d == ']') {
                if (--depth == 0) {
                    r->p = q + 1;
                    return 0;
                }
            }
            q++;
        }
        return NOT_JSON;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *q = r->p + 1;
        while (q < r->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                              *q == '+' || *q == '-'))
            q++;
        r->p = q;
        return 0;
    }
    if (c == 't')
        return literal(r, "true", 4, SQL_UNDEF, &(sql_value){0});
    if (c == 'f')
        return literal(r, "false", 5, SQL_UNDEF, &(sql_value){0});
    if (c == 'n')
        return literal(r, "null", 4, SQL_UNDEF, &(sql_value){0});
    return NOT_JSON;
}

static int scan_object(jr *r, const sql_path_node *nodes, int nd, sql_value *slots);

/* The child of nd named k, or -1. */
static int child(const sql_path_node *nodes, int nd, const char *k, uint32_t n) {
    for (int c = nodes[nd].child; c >= 0; c = nodes[c].next)
        if (nodes[c].klen == n && memcmp(nodes[c].key, k, n) == 0)
            return c;
    return -1;
}

/* The node's action in this scan: read whole, look into, or skip. */
static inline int node_act(const jr *r, const sql_path_node *nodes, int c) {
    return r->need ? r->need[c] : nodes[c].slot >= 0 ? SQL_NEED_VALUE : SQL_NEED_DESCEND;
}

/* Trie node nd was looked into and its value is over (an object that ended, or not an object
 * at all): the slots under it that were not found are Undefined for good, since a later
 * duplicate key does not count. Marks them settled (seen 2) and returns how many there were,
 * so that the reader stops as soon as nothing is left to find -- the same point whether a
 * program scans alone or in a shared scan where another program reads nd whole. */
static int64_t settle(jr *r, const sql_path_node *nodes, int nd) {
    int64_t n = 0;
    for (int c = nodes[nd].child; c >= 0; c = nodes[c].next) {
        int act = node_act(r, nodes, c);
        if (act == SQL_NEED_SKIP || r->seen[c] == 2)
            continue;
        if (act == SQL_NEED_DESCEND)
            n += settle(r, nodes, c);
        else
            n += !r->seen[c];
        r->seen[c] = 2;
    }
    return n;
}

/* Reads the members of the object at r->p, filling the slots under trie node nd. Returns 0
 * at the end of the object, DONE when the last slot under the root was found (the reader
 * stops there), or an error. */
static int scan_object(jr *r, const sql_path_node *nodes, int nd, sql_value *slots) {
    int rc;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        ws(r);
        if (r->p >= r->end || *r->p != '"')
            return NOT_JSON;
        const char *k;
        uint32_t kn;
        int jsafe;
        if ((rc = string(r, &k, &kn, &jsafe)))
            return rc;
        ws(r);
        if (r->p >= r->end || *r->p != ':')
            return NOT_JSON;
        r->p++;
        ws(r);
        int c = child(nodes, nd, k, kn);
        if (c >= 0 && r->seen[c])
            c = -1; /* a duplicate key: the first occurrence won */
        int act = c < 0 ? SQL_NEED_SKIP : node_act(r, nodes, c);
        if (act == SQL_NEED_SKIP) {
            if ((rc = skip(r)))
                return rc;
        } else if (act == SQL_NEED_VALUE) {
            r->seen[c] = 1;
            if ((rc = value(r, &slots[nodes[c].slot])))
                return rc;
            if (--r->remaining == 0)
                return DONE;
        } else {
            r->seen[c] = 1;
            if (r->p < r->end && *r->p == '{') {
                if (++r->depth > SQL_JSON_MAX_DEPTH)
                    return NOT_JSON;
                rc = scan_object(r, nodes, c, slots);
                r->depth--;
                if (rc)
                    return rc;
            } else if ((rc = skip(r))) {
                return rc;
            }
            r->remaining -= settle(r, nodes, c);
            r->seen[c] = 2;
            if (r->remaining == 0)
                return DONE;
        }
        ws(r);
        if (r->p >= r->end)
            return NOT_JSON;
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p == '}') {
            r->p++;
            return 0;
        }
        return NOT_JSON;
    }
}

int sql__json_scan(sql_ctx *ctx, const char *p, size_t n, const sql_pathset *ps,
                   sql_value *slots) {
    const sql_path_node *nodes = ps->nodes;
    if (ps->nnodes == 0)
        return 0;
    if (ps->need ? ps->need[0] == SQL_NEED_VALUE : nodes[0].slot >= 0)
        return sql__json_parse(ctx, p, n, &slots[nodes[0].slot]);
    jr r = {.ctx = ctx, .p = p, .end = p + n, .remaining = ps->nslots, .need = ps->need};
    r.seen = sql__alloc(ctx, ps->nnodes);
    if (!r.seen)
        return ctx->err;
    memset(r.seen, 0, ps->nnodes);
    size_t base = ctx->jstack.len;
    int rc;
    ws(&r);
    if (r.p < r.end && *r.p == '{' && r.remaining > 0) {
        r.depth = 1;
        rc = scan_object(&r, nodes, 0, slots);
    } else {
        rc = skip(&r); /* not an object, or nothing to find: only tell JSON from not */
    }
    ctx->jstack.len = base;
    if (rc == DONE)
        return 0;
    if (rc)
        return rc;
    ws(&r);
    return r.p == r.end ? 0 : NOT_JSON;
}

/* }====== */

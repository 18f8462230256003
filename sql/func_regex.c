/*
 * func_regex.c -- regexp_matches, regexp_replace, regexp_substr through PCRE2.
 *
 * AWS runs these on the JVM, so the dialect is java.util.regex: PCRE2 is compiled with
 * PCRE2_UTF (patterns and subjects are UTF-8 code points) and PCRE2_NEWLINE_ANY (Java's `.` and
 * `$` know \r, \r\n, \u0085, \u2028 and \u2029 as line terminators), without PCRE2_UCP (Java's
 * \w, \d and \b are ASCII unless (?U) is given). The replacement string follows Matcher's
 * syntax, implemented here rather than with pcre2_substitute, whose `$` syntax differs: `$n`
 * takes digits greedily while the number stays a valid group, `${name}` names a group, a
 * backslash quotes the next character; a bad reference makes the call Undefined.
 *
 * Patterns that are literals in the rule are compiled once by the compiler
 * (sql__regex_compile) and reach the function in ctx->aux; other patterns are compiled per
 * call and freed. Matching runs under a match context with a match limit and a depth limit, so
 * a catastrophic pattern such as (a+)+$ fails the evaluation with SQL_E_LIMIT in milliseconds
 * instead of stalling a worker: a rule author's pattern must not be a denial of service.
 * Rejected: the PCRE2 JIT (its limits differ and it ignores the depth limit) and POSIX
 * <regex.h> (no lazy quantifiers or lookaround, no match limits).
 *
 * Iteration over matches follows Matcher.find(): after an empty match the next search starts
 * one character later, so regexp_replace("abc", "b*", "-") is "-a--c-" as in Java.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "sql_int.h"

#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#define MATCH_LIMIT 1000000u
#define DEPTH_LIMIT 10000u

/* {====== compile and scratch */

/* Compiles pattern pat[0..n) with the Java-like options. On error returns NULL and writes a
 * message ("regex error at offset K: ...") into msg (NUL-terminated, truncated to msgcap).
 * The result is freed with sql__regex_free(). Thread: any. */
void *sql__regex_compile(const char *pat, size_t n, char *msg, size_t msgcap) {
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        if (msgcap)
            snprintf(msg, msgcap, "out of memory");
        return NULL;
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_ANY);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF, &errcode, &erroff, cc);
    pcre2_compile_context_free(cc);
    if (!re && msgcap) {
        PCRE2_UCHAR buf[160];
        if (pcre2_get_error_message(errcode, buf, sizeof buf) < 0)
            snprintf((char *)buf, sizeof buf, "error %d", errcode);
        snprintf(msg, msgcap, "regex error at offset %zu: %s", (size_t)erroff, (char *)buf);
    }
    return re;
}

/* Frees a pattern from sql__regex_compile(); NULL is a no-op. Thread: any. */
void sql__regex_free(void *code) { pcre2_code_free(code); }

/* Frees ctx's match data and match context (created lazily by the regexp_ functions).
 * Thread: owner of ctx. */
void sql__regex_ctx_free(sql_ctx *ctx) {
    pcre2_match_data_free(ctx->regex_md);
    pcre2_match_context_free(ctx->regex_mctx);
    ctx->regex_md = NULL;
    ctx->regex_mctx = NULL;
}

/* One call's regex state: the code (borrowed from ctx->aux or owned) and the ctx scratch. */
typedef struct rx {
    pcre2_code *re;
    int owned;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    uint32_t ngroups;
    const char *fname;
} rx;

/* Sets up *r for pattern argument `pv`. Returns 1 when ready, 0 when the pattern is invalid
 * or not a string (the call gives Undefined), or a negative SQL_E_* code. */
static int rx_open(sql_ctx *ctx, const sql_value *pv, const char *fname, rx *r) {
    memset(r, 0, sizeof *r);
    r->fname = fname;
    if (ctx->aux) {
        r->re = (pcre2_code *)ctx->aux;
    } else {
        const char *p;
        size_t n;
        if (pv->t == SQL_T_NULL || pv->t == SQL_T_UNDEF || pv->t == SQL_T_BIN ||
            sql__to_str(ctx, pv, &p, &n) < 0)
            return 0;
        r->re = sql__regex_compile(p, n, NULL, 0);
        if (!r->re)
            return 0;
        r->owned = 1;
    }
    if (!ctx->regex_mctx) {
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        if (!mc)
            goto oom;
        pcre2_set_match_limit(mc, MATCH_LIMIT);
        pcre2_set_depth_limit(mc, DEPTH_LIMIT);
        ctx->regex_mctx = mc;
    }
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &r->ngroups);
    /* Reuse the ctx's match data while it has room for every group of this pattern. */
    if (!ctx->regex_md || pcre2_get_ovector_count(ctx->regex_md) < r->ngroups + 1) {
        pcre2_match_data *md = pcre2_match_data_create(r->ngroups + 1 < 16 ? 16
                                                                            : r->ngroups + 1,
                                                       NULL);
        if (!md)
            goto oom;
        pcre2_match_data_free(ctx->regex_md);
        ctx->regex_md = md;
    }
    r->md = ctx->regex_md;
    r->mc = ctx->regex_mctx;
    return 1;
oom:
    if (r->owned)
        pcre2_code_free(r->re);
    r->re = NULL;
    return sql_ctx_error(ctx, SQL_E_NOMEM, "%s: out of memory", fname);
}

static void rx_close(rx *r) {
    if (r->owned)
        pcre2_code_free(r->re);
    r->re = NULL;
}

/* Searches s[0..n) from byte `from`. Returns 1 (match; ovector in r->md), 0 (none), or a
 * negative SQL_E_* after raising the ctx error (limits, invalid UTF-8 is "no match"). */
static int rx_find(sql_ctx *ctx, rx *r, const char *s, size_t n, size_t from) {
    int rc = pcre2_match(r->re, (PCRE2_SPTR)s, n, from, 0, r->md, r->mc);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL)
        return 0;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "%s: pattern exceeded the backtracking limit",
                             r->fname);
    if (rc == PCRE2_ERROR_NOMEMORY)
        return sql_ctx_error(ctx, SQL_E_NOMEM, "%s: out of memory", r->fname);
    /* Malformed UTF-8 in the subject: Java would have decoded it to U+FFFD and found nothing
     * special there; we report no match rather than failing the rule. */
    return 0;
}

/* Subject argument: converted to String; Null/Undefined give Undefined (-1). */
static int subject(sql_ctx *ctx, const sql_value *v, const char **s, size_t *n) {
    if (v->t == SQL_T_NULL || v->t == SQL_T_UNDEF || v->t == SQL_T_BIN)
        return -1;
    return sql__to_str(ctx, v, s, n) < 0 ? -1 : 0;
}

/* Byte length of the UTF-8 character starting at s[i] (1 for a stray byte). */
static size_t charlen(const char *s, size_t n, size_t i) {
    size_t k = 1;
    while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80)
        k++;
    return k;
}

/* }====== */

/* {====== regexp_matches, regexp_substr */

/* regexp_matches(s, re): true when s CONTAINS a match (Matcher.find, not matches()). */
static int fn_regexp_matches(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s;
    size_t n;
    rx r;
    *out = SQL_UNDEF;
    if (argc != 2 || subject(ctx, &argv[0], &s, &n) < 0)
        return 0;
    int rc = rx_open(ctx, &argv[1], "regexp_matches", &r);
    if (rc <= 0)
        return rc;
    rc = rx_find(ctx, &r, s, n, 0);
    rx_close(&r);
    if (rc < 0)
        return rc;
    *out = sql__bool(rc);
    return 0;
}

/* regexp_substr(s, re): the text of the first match; no match gives Undefined (Java's
 * group() would throw, which AWS reports as an Undefined result). */
static int fn_regexp_substr(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s;
    size_t n;
    rx r;
    *out = SQL_UNDEF;
    if (argc != 2 || subject(ctx, &argv[0], &s, &n) < 0)
        return 0;
    int rc = rx_open(ctx, &argv[1], "regexp_substr", &r);
    if (rc <= 0)
        return rc;
    rc = rx_find(ctx, &r, s, n, 0);
    if (rc == 1) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r.md);
        *out = sql__str(s + ov[0], (uint32_t)(ov[1] - ov[0]));
    }
    rx_close(&r);
    return rc < 0 ? rc : 0;
}

/* }====== */

/* {====== regexp_replace */

/* Appends the expansion of replacement rep[0..rn) for the current match. Returns 0, or -1 for
 * an invalid replacement (Java throws IllegalArgumentException / IndexOutOfBounds). */
static int expand(rx *r, const char *s, const char *rep, size_t rn, sql_buf *w) {
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    for (size_t i = 0; i < rn;) {
        char c = rep[i];
        if (c == '\\') {
            if (i + 1 >= rn)
                return -1; /* trailing backslash */
            sql__buf_putc(w, rep[i + 1]);
            i += 2;
            continue;
        }
        if (c != '$') {
            sql__buf_putc(w, c);
            i++;
            continue;
        }
        if (++i >= rn)
            return -1; /* "$" at the end */
        uint32_t g;
        if (rep[i] == '{') {
            size_t e = i + 1;
            while (e < rn && rep[e] != '}')
                e++;
            if (e >= rn || e == i + 1 || e - i - 1 > 64)
                return -1;
            char name[65];
            memcpy(name, rep + i + 1, e - i - 1);
            name[e - i - 1] = 0;
            int k = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)name);
            if (k < 0)
                return -1;
            g = (uint32_t)k;
            i = e + 1;
        } else if (rep[i] >= '0' && rep[i] <= '9') {
            /* Java: the first digit always counts; later digits only while the number stays a
             * valid group index. */
            g = (uint32_t)(rep[i++] - '0');
            while (i < rn && rep[i] >= '0' && rep[i] <= '9') {
                uint32_t ng = g * 10 + (uint32_t)(rep[i] - '0');
                if (ng > r->ngroups)
                    break;
                g = ng;
                i++;
            }
            if (g > r->ngroups)
                return -1;
        } else {
            return -1;
        }
        if (ov[2 * g] != PCRE2_UNSET)
            sql__buf_put(w, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    }
    return 0;
}

static int fn_regexp_replace(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    const char *s, *rep;
    size_t n, rn;
    rx r;
    *out = SQL_UNDEF;
    if (argc != 3 || subject(ctx, &argv[0], &s, &n) < 0 || subject(ctx, &argv[2], &rep, &rn) < 0)
        return 0;
    int rc = rx_open(ctx, &argv[1], "regexp_replace", &r);
    if (rc <= 0)
        return rc;
    sql_buf *w = &ctx->scratch;
    sql__buf_reset(w);
    size_t copied = 0, from = 0;
    int bad = 0;
    while (from <= n && (rc = rx_find(ctx, &r, s, n, from)) == 1) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r.md);
        size_t b = ov[0], e = ov[1];
        sql__buf_put(w, s + copied, b - copied);
        if (expand(&r, s, rep, rn, w) < 0) {
            bad = 1;
            break;
        }
        copied = e;
        /* Matcher.find(): after an empty match, resume one character further on. */
        from = e > b ? e : e + (e < n ? charlen(s, n, e) : 1);
    }
    rx_close(&r);
    if (rc < 0)
        return rc;
    if (bad)
        return 0;
    sql__buf_put(w, s + copied, n - copied);
    if (w->oom)
        return sql_ctx_error(ctx, SQL_E_NOMEM, "regexp_replace: out of memory");
    if (w->len > UINT32_MAX)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "regexp_replace: result too long");
    char *p = sql__arena_strdup(&ctx->arena, w->p ? w->p : "", w->len);
    if (!p)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "regexp_replace: result exceeds the memory limit");
    *out = sql__str(p, (uint32_t)w->len);
    return 0;
}

/* }====== */

#define RX (SQL_FN_DETERMINISTIC | SQL_FN_REGEX)

const sql_func sql__func_regex[] = {
    {"regexp_matches", 2, 2, RX, fn_regexp_matches},
    {"regexp_replace", 3, 3, RX, fn_regexp_replace},
    {"regexp_substr", 2, 2, RX, fn_regexp_substr},
    {0},
};

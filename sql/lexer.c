/*
 * lexer.c -- tokens of AWS IoT SQL, with byte spans.
 *
 * The lexer is pulled by the parser one token at a time and never allocates: a token is a
 * kind and an (offset, length) span into the statement (SQLite's tokenizer). Keywords are not
 * token kinds: they are identifiers that the parser recognises case-insensitively where the
 * grammar expects them, so `value` or `from` can still name a member after a dot. String
 * tokens keep their quotes; sql__lex_string() decodes them on demand.
 *
 * Decisions where AWS is silent (sql/README.md): single and double quotes both delimit
 * strings; backslash escapes are JSON's plus \' ; a doubled quote stands for itself; numbers
 * follow JSON's grammar without a sign; comments (-- and slash-star) are an error, as AWS's
 * reference says AWS IoT SQL has none.
 */
#include "sql_int.h"

#include <stdio.h>
#include <string.h>

void sql__lex_init(sql_lexer *lx, const char *src, size_t n, sql_diag *diag) {
    lx->src = src;
    lx->n = n;
    lx->pos = 0;
    lx->limit = 0;
    lx->diag = diag;
}

static int is_ident_start(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(int c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

static sql_token tok(sql_lexer *lx, sql_tok_kind k, size_t start) {
    return (sql_token){k, (uint32_t)start, (uint32_t)(lx->pos - start)};
}

static sql_token lex_error(sql_lexer *lx, size_t off, size_t len, const char *msg) {
    sql__diag_set(lx->diag, SQL_E_SYNTAX, lx->src, lx->n, (uint32_t)off, (uint32_t)len, "%s",
                  msg);
    return (sql_token){SQL_TK_ERROR, (uint32_t)off, (uint32_t)len};
}

/* number -> digits [ '.' digits ] [ (e|E) [+|-] digits ] */
static sql_token lex_number(sql_lexer *lx) {
    const char *s = lx->src;
    size_t start = lx->pos, n = lx->n;
    while (lx->pos < n && is_digit(s[lx->pos]))
        lx->pos++;
    if (lx->pos < n && s[lx->pos] == '.') {
        lx->pos++;
        if (lx->pos >= n || !is_digit(s[lx->pos]))
            return lex_error(lx, start, lx->pos - start,
                             "malformed number: a digit must follow the decimal point");
        while (lx->pos < n && is_digit(s[lx->pos]))
            lx->pos++;
    }
    if (lx->pos < n && (s[lx->pos] == 'e' || s[lx->pos] == 'E')) {
        size_t save = lx->pos;
        lx->pos++;
        if (lx->pos < n && (s[lx->pos] == '+' || s[lx->pos] == '-'))
            lx->pos++;
        if (lx->pos >= n || !is_digit(s[lx->pos])) {
            lx->pos = save + 1;
            return lex_error(lx, start, lx->pos - start, "malformed number exponent");
        }
        while (lx->pos < n && is_digit(s[lx->pos]))
            lx->pos++;
    }
    if (lx->pos < n && (is_ident_start(s[lx->pos]) || s[lx->pos] == '.')) {
        size_t e = lx->pos;
        while (e < n && (is_ident(s[e]) || s[e] == '.'))
            e++;
        return lex_error(lx, start, e - start, "malformed number");
    }
    return tok(lx, SQL_TK_NUMBER, start);
}

static sql_token lex_string(sql_lexer *lx) {
    const char *s = lx->src;
    size_t start = lx->pos, n = lx->n;
    char q = s[lx->pos++];
    while (lx->pos < n) {
        char c = s[lx->pos];
        if (c == '\\') {
            lx->pos += 2;
            continue;
        }
        if (c == q) {
            if (lx->pos + 1 < n && s[lx->pos + 1] == q) { /* doubled quote */
                lx->pos += 2;
                continue;
            }
            lx->pos++;
            return tok(lx, SQL_TK_STRING, start);
        }
        lx->pos++;
    }
    return lex_error(lx, start, 1, "unterminated string literal");
}

static sql_token lex(sql_lexer *lx) {
    const char *s = lx->src;
    size_t n = lx->n;
    while (lx->pos < n && (s[lx->pos] == ' ' || s[lx->pos] == '\t' || s[lx->pos] == '\n' ||
                           s[lx->pos] == '\r' || s[lx->pos] == '\f'))
        lx->pos++;
    if (lx->pos >= n)
        return (sql_token){SQL_TK_EOF, (uint32_t)n, 0};
    size_t start = lx->pos;
    unsigned char c = (unsigned char)s[start];
    if (is_ident_start(c)) {
        while (lx->pos < n && is_ident(s[lx->pos]))
            lx->pos++;
        return tok(lx, SQL_TK_IDENT, start);
    }
    if (is_digit(c))
        return lex_number(lx);
    if (c == '\'' || c == '"')
        return lex_string(lx);
    if (c == '@') {
        lx->pos++;
        while (lx->pos < n && is_ident(s[lx->pos]))
            lx->pos++;
        if (lx->pos == start + 1)
            return lex_error(lx, start, 1, "expected a variable name after '@'");
        return tok(lx, SQL_TK_VAR, start);
    }
    if ((c == '-' && start + 1 < n && s[start + 1] == '-') ||
        (c == '/' && start + 1 < n && s[start + 1] == '*'))
        return lex_error(lx, start, 2, "comments are not supported in AWS IoT SQL");
    lx->pos++;
    switch (c) {
    case '<':
        if (lx->pos < n && (s[lx->pos] == '=' || s[lx->pos] == '>'))
            lx->pos++;
        return tok(lx, SQL_TK_PUNCT, start);
    case '>':
        if (lx->pos < n && s[lx->pos] == '=')
            lx->pos++;
        return tok(lx, SQL_TK_PUNCT, start);
    case '!':
        if (lx->pos < n && s[lx->pos] == '=') {
            lx->pos++;
            return tok(lx, SQL_TK_PUNCT, start);
        }
        return lex_error(lx, start, 1, "unexpected character '!'");
    case '(': case ')': case '[': case ']': case '{': case '}': case ',': case '.': case ':':
    case '*': case '+': case '-': case '/': case '%': case '=': case '#': case '$':
        return tok(lx, SQL_TK_PUNCT, start);
    default: {
        char msg[64];
        if (c >= 0x20 && c < 0x7f)
            snprintf(msg, sizeof msg, "unexpected character '%c'", c);
        else
            snprintf(msg, sizeof msg, "unexpected byte 0x%02x", c);
        return lex_error(lx, start, 1, msg);
    }
    }
}

sql_token sql__lex_next(sql_lexer *lx) {
    sql_token t = lex(lx);
    /* AWS limits a rule to 256 KiB of text: the error points where the text passes the limit,
       so an earlier error (in the text) still wins */
    if (lx->limit && lx->pos > lx->limit && t.kind != SQL_TK_ERROR) {
        sql__diag_set(lx->diag, SQL_E_LIMIT, lx->src, lx->n, (uint32_t)lx->limit, 1,
                      "statement is longer than %zu bytes", lx->limit);
        return (sql_token){SQL_TK_ERROR, (uint32_t)lx->limit, 1};
    }
    return t;
}

int sql__lex_string(sql_arena *a, const char *src, const sql_token *t, const char **s,
                    size_t *n) {
    const char *p = src + t->off + 1, *end = src + t->off + t->len - 1;
    char q = src[t->off];
    char *o = sql__arena_alloc(a, (size_t)(end - p) + 1);
    if (!o)
        return SQL_E_NOMEM;
    size_t k = 0;
    while (p < end) {
        char c = *p++;
        if (c == q && p < end && *p == q) {
            o[k++] = q;
            p++;
            continue;
        }
        if (c != '\\') {
            o[k++] = c;
            continue;
        }
        if (p >= end)
            return SQL_E_SYNTAX;
        c = *p++;
        switch (c) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case '/': case '\\': case '\'': case '"': o[k++] = c; break;
        case 'u': {
            uint32_t cp;
            if (sql__hex4(p, end, &cp))
                return SQL_E_SYNTAX;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                    !sql__hex4(p + 2, end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            k += sql__utf8_put(o + k, cp);
            break;
        }
        default: return SQL_E_SYNTAX;
        }
    }
    o[k] = '\0';
    *s = o;
    *n = k;
    return SQL_OK;
}

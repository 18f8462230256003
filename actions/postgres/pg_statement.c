/*
 * pg_statement.c -- the postgres action's statement: `${expr}` templates become bound
 * parameters.
 *
 *   INSERT INTO t(dev, temp) VALUES (${deviceId}, ${get(x, '}')})
 *   -> sql "INSERT INTO t(dev, temp) VALUES ($1, $2)", templates "${deviceId}", "${get(x, '}')}"
 *
 * One pass over the text with a small state machine for PostgreSQL's lexical structure
 * outside the templates: '...' strings (E'...' with backslash escapes), "..." identifiers,
 * $tag$...$tag$ dollar quoting, -- and nested slash-star comments. Text outside templates is
 * copied byte for byte (`$$` stays `$$`: in PostgreSQL it opens a dollar-quoted string). Inside
 * a template the end is the `}` that balances the opening brace, skipping '...' and "..."
 * strings with the SQL lexer's escapes (backslash, doubled quote), so the split agrees with
 * the one the rule compiler makes when it compiles each "${expr}".
 *
 * A `${` inside a quoted string or comment is refused: `'${x}'` would become the literal
 * '$1', never a parameter, and PQprepare would fail on every message. Splicing values into
 * the text (AWS's substitution semantics) was rejected: it is SQL injection by construction;
 * a bound parameter is stored exactly as sent whatever it contains.
 */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_CODE, S_QUOTE, S_ESTRING, S_IDENT, S_LINE_COMMENT, S_BLOCK_COMMENT, S_DOLLAR };

static int is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (unsigned char)c >= 0x80;
}

static int is_ident(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* The offset of the '}' closing an expression that starts at `from`, or -1. */
static long expr_end(const char *s, size_t from) {
    int depth = 0;
    size_t i = from;
    while (s[i]) {
        char c = s[i];
        if (c == '\'' || c == '"') {
            i++;
            for (;;) {
                if (!s[i])
                    return -1;
                if (s[i] == '\\' && s[i + 1]) {
                    i += 2;
                } else if (s[i] == c && s[i + 1] == c) {
                    i += 2;
                } else if (s[i] == c) {
                    i++;
                    break;
                } else {
                    i++;
                }
            }
            continue;
        }
        if (c == '{') {
            depth++;
        } else if (c == '}') {
            if (depth == 0)
                return (long)i;
            depth--;
        }
        i++;
    }
    return -1;
}

/* The length of a dollar-quote tag ($$ or $name$) starting at s[i], or 0. */
static size_t dollar_tag(const char *s, size_t i) {
    size_t j = i + 1;
    if (s[j] == '$')
        return 2;
    if (!is_ident_start(s[j]))
        return 0;  /* $1 is a positional parameter, ${ a template */
    while (is_ident(s[j]))
        j++;
    return s[j] == '$' ? j - i + 1 : 0;
}

static const char *state_name(int st) {
    switch (st) {
    case S_QUOTE: case S_ESTRING: return "a quoted SQL string";
    case S_IDENT: return "a quoted SQL identifier";
    case S_DOLLAR: return "a dollar-quoted SQL string";
    default: return "an SQL comment";
    }
}

/* Moves i past one byte (or token) of text in state *st; returns the new offset. */
static size_t step(const char *s, size_t i, int *st, int *depth, size_t *tag, size_t *taglen) {
    char c = s[i];
    switch (*st) {
    case S_CODE:
        if (c == '\'') {
            /* E'...' takes backslash escapes; only when the E is a token of its own */
            int e = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
                    (i < 2 || !is_ident(s[i - 2]));
            *st = e ? S_ESTRING : S_QUOTE;
        } else if (c == '"') {
            *st = S_IDENT;
        } else if (c == '-' && s[i + 1] == '-') {
            *st = S_LINE_COMMENT;
            return i + 2;
        } else if (c == '/' && s[i + 1] == '*') {
            *st = S_BLOCK_COMMENT;
            *depth = 1;
            return i + 2;
        } else if (c == '$' && (i == 0 || !(is_ident(s[i - 1]) || s[i - 1] == '$'))) {
            size_t n = dollar_tag(s, i);
            if (n) {
                *st = S_DOLLAR;
                *tag = i;
                *taglen = n;
                return i + n;
            }
        }
        return i + 1;
    case S_QUOTE:
    case S_IDENT: {
        char q = *st == S_QUOTE ? '\'' : '"';
        if (c == q && s[i + 1] == q)
            return i + 2;
        if (c == q)
            *st = S_CODE;
        return i + 1;
    }
    case S_ESTRING:
        if (c == '\\' && s[i + 1])
            return i + 2;
        if (c == '\'' && s[i + 1] == '\'')
            return i + 2;
        if (c == '\'')
            *st = S_CODE;
        return i + 1;
    case S_LINE_COMMENT:
        if (c == '\n')
            *st = S_CODE;
        return i + 1;
    case S_BLOCK_COMMENT:
        if (c == '/' && s[i + 1] == '*') {
            ++*depth;
            return i + 2;
        }
        if (c == '*' && s[i + 1] == '/') {
            if (--*depth == 0)
                *st = S_CODE;
            return i + 2;
        }
        return i + 1;
    default: /* S_DOLLAR */
        if (c == '$' && !strncmp(s + i, s + *tag, *taglen)) {
            *st = S_CODE;
            return i + *taglen;
        }
        return i + 1;
    }
}

int act_pg__stmt_parse(const char *text, act_pg_stmt *st, char *err, size_t cap) {
    memset(st, 0, sizeof *st);
    size_t n = strlen(text), i = 0, k = 0, tag = 0, taglen = 0;
    int state = S_CODE, depth = 0, rc = -1;
    size_t blank = strspn(text, " \t\r\n\f");
    if (blank == n) {
        snprintf(err, cap, "\"statement\" is empty");
        return -1;
    }
    /* each "${...}" (4+ bytes) becomes "$N" (at most 3 bytes): the text never grows */
    char *sql = malloc(n + 1);
    if (!sql) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    while (i < n) {
        if (!(text[i] == '$' && text[i + 1] == '{')) {
            size_t next = step(text, i, &state, &depth, &tag, &taglen);
            memcpy(sql + k, text + i, next - i);
            k += next - i;
            i = next;
            continue;
        }
        if (state != S_CODE) {
            snprintf(err, cap, "\"statement\": the ${...} at offset %zu is inside %s; write it "
                     "bare: each ${...} is bound as a parameter", i, state_name(state));
            goto out;
        }
        long close = expr_end(text, i + 2);
        if (close < 0) {
            snprintf(err, cap, "\"statement\": '${' at offset %zu is not closed by a matching "
                     "'}'", i);
            goto out;
        }
        size_t elen = (size_t)close - (i + 2);
        if (strspn(text + i + 2, " \t\r\n\f") >= elen) {
            snprintf(err, cap, "\"statement\": empty substitution '${}' at offset %zu", i);
            goto out;
        }
        if (st->nparams == ACT_PG_MAX_PARAMS) {
            snprintf(err, cap, "\"statement\" has more than %d ${...} parameters",
                     ACT_PG_MAX_PARAMS);
            goto out;
        }
        char *t = malloc(elen + 4);
        if (!t) {
            snprintf(err, cap, "out of memory");
            goto out;
        }
        memcpy(t, text + i, elen + 3);
        t[elen + 3] = '\0';
        st->tpl[st->nparams++] = t;
        k += (size_t)sprintf(sql + k, "$%zu", st->nparams);
        i = (size_t)close + 1;
    }
    sql[k] = '\0';
    st->sql = sql;
    sql = NULL;
    rc = 0;
out:
    free(sql);
    if (rc)
        act_pg__stmt_deinit(st);
    return rc;
}

void act_pg__stmt_deinit(act_pg_stmt *st) {
    free(st->sql);
    for (size_t i = 0; i < st->nparams; i++)
        free(st->tpl[i]);
    memset(st, 0, sizeof *st);
}

/* Appends s as a JSON string literal. */
static int put_json_string(act_buf *out, const char *s) {
    if (act_buf_put(out, "\"", 1))
        return -1;
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (act_buf_put(out, run, (size_t)(s - run)))
            return -1;
        run = s + 1;
        int rc;
        switch (c) {
        case '"': rc = act_buf_puts(out, "\\\""); break;
        case '\\': rc = act_buf_puts(out, "\\\\"); break;
        case '\n': rc = act_buf_puts(out, "\\n"); break;
        case '\r': rc = act_buf_puts(out, "\\r"); break;
        case '\t': rc = act_buf_puts(out, "\\t"); break;
        default: rc = act_buf_printf(out, "\\u%04x", c); break;
        }
        if (rc)
            return -1;
    }
    if (act_buf_put(out, run, (size_t)(s - run)) || act_buf_put(out, "\"", 1))
        return -1;
    return 0;
}

int act_pg__format_line(const act_pg_stmt *st, const char *const *fields,
                        const unsigned char *nulls, act_buf *out) {
    if (act_buf_puts(out, "{\"sql\": ") || put_json_string(out, st->sql) ||
        act_buf_puts(out, ", \"params\": ["))
        return -1;
    for (size_t k = 0; k < st->nparams; k++) {
        if (k && act_buf_puts(out, ", "))
            return -1;
        int rc = nulls && nulls[k] ? act_buf_puts(out, "null") : put_json_string(out, fields[k]);
        if (rc)
            return -1;
    }
    return act_buf_puts(out, "]}\n");
}

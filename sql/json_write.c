/*
 * json_write.c -- compact JSON output in AWS's key order.
 *
 * One recursive pass appends to a growable buffer: no spaces, object keys in the order the
 * value holds them, Undefined members and elements left out (AWS omits Undefined keys), and
 * numbers printed by num.c. Strings that came unescaped from a payload (SQL_F_JSAFE) are
 * copied with one memcpy; others are escaped minimally (quote, backslash and control
 * characters), so non-ASCII text passes through as UTF-8.
 */
#include "sql_int.h"

#include <string.h>

static const char hex[] = "0123456789abcdef";

void sql__json_write_str(sql_buf *b, const char *s, size_t n) {
    if (sql__buf_reserve(b, n + 2) != 0)
        return;
    b->p[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sql__buf_put(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t k = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            sql__buf_put(b, esc, 2);
            esc[0] = '0';
            esc[1] = '0';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            k = 4;
            break;
        }
        sql__buf_put(b, esc, k);
    }
    sql__buf_put(b, s + run, n - run);
    sql__buf_putc(b, '"');
}

static void put_str(sql_buf *b, const char *s, size_t n, int jsafe) {
    if (!jsafe) {
        sql__json_write_str(b, s, n);
        return;
    }
    if (sql__buf_reserve(b, n + 2) != 0)
        return;
    b->p[b->len++] = '"';
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '"';
}

/* Recursion: once per level of v's nesting, which the compile-time limits keep below
 * SQL_MAX_VALUE_DEPTH; the check here makes the writer safe whatever hands it a value. */
static int write(sql_buf *b, const sql_value *v, int depth) {
    switch (v->t) {
    case SQL_T_UNDEF:
        return 0;
    case SQL_T_NULL:
        sql__buf_put(b, "null", 4);
        return 0;
    case SQL_T_BOOL:
        if (v->u.b)
            sql__buf_put(b, "true", 4);
        else
            sql__buf_put(b, "false", 5);
        return 0;
    case SQL_T_INT:
    case SQL_T_DEC:
        if (sql__buf_reserve(b, SQL_NUM_BUFSZ) != 0)
            return -1;
        b->len += sql__num_format(v, b->p + b->len);
        return 0;
    case SQL_T_STR:
        put_str(b, v->u.s, v->n, v->f & SQL_F_JSAFE);
        return 0;
    case SQL_T_ARR: {
        if (depth >= SQL_MAX_VALUE_DEPTH)
            return SQL_E_LIMIT;
        sql__buf_putc(b, '[');
        int first = 1;
        for (uint32_t i = 0; i < v->n; i++) {
            if (v->u.a[i].t == SQL_T_UNDEF)
                continue;
            if (!first)
                sql__buf_putc(b, ',');
            first = 0;
            int rc = write(b, &v->u.a[i], depth + 1);
            if (rc)
                return rc;
        }
        sql__buf_putc(b, ']');
        return 0;
    }
    case SQL_T_OBJ: {
        if (depth >= SQL_MAX_VALUE_DEPTH)
            return SQL_E_LIMIT;
        sql__buf_putc(b, '{');
        int first = 1;
        for (uint32_t i = 0; i < v->n; i++) {
            const sql_member *m = &v->u.o[i];
            if (m->v.t == SQL_T_UNDEF)
                continue;
            if (!first)
                sql__buf_putc(b, ',');
            first = 0;
            put_str(b, m->k, m->klen, m->kflags & SQL_F_JSAFE);
            sql__buf_putc(b, ':');
            int rc = write(b, &m->v, depth + 1);
            if (rc)
                return rc;
        }
        sql__buf_putc(b, '}');
        return 0;
    }
    default:
        return -1;
    }
}

int sql__json_write(sql_buf *b, const sql_value *v) { return write(b, v, 0); }

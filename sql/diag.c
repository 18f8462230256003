/*
 * diag.c -- compile diagnostics: first error wins, positions derived lazily, caret rendering.
 *
 * The lexer and parser record only a byte span (SQLite's errByteOffset); line and column are
 * computed once, when the error is final (jq's locfile). Columns count characters, not bytes:
 * UTF-8 continuation bytes do not advance the column, so the caret lines up under non-ASCII
 * text in a terminal.
 */
#include "sql_int.h"

#include <stdio.h>
#include <string.h>

int sql__diag_set(sql_diag *d, int code, const char *text, size_t n, uint32_t off, uint32_t len,
                  const char *fmt, ...) {
    if (d->code != 0)
        return d->code;
    d->code = code;
    d->offset = off > n ? (uint32_t)n : off;
    d->len = len;
    d->line = d->col = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    sql__diag_locate(d, text, n);
    return code;
}

void sql__diag_locate(sql_diag *d, const char *text, size_t n) {
    uint32_t line = 1, col = 1;
    size_t end = d->offset < n ? d->offset : n;
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    d->line = line;
    d->col = col;
}

#define WINDOW 60 /* bytes shown on each side of the error in a long line */

size_t sql_diag_format(const sql_diag *d, const char *text, size_t n, char *buf, size_t cap) {
    sql_buf b;
    sql__buf_init(&b);
    if (d->line)
        sql__buf_printf(&b, "error: line %u, column %u: %s\n", d->line, d->col, d->msg);
    else
        sql__buf_printf(&b, "error: %s\n", d->msg);
    if (d->line && text) {
        size_t off = d->offset < n ? d->offset : n;
        size_t ls = off, le = off;
        while (ls > 0 && text[ls - 1] != '\n')
            ls--;
        while (le < n && text[le] != '\n')
            le++;
        /* a long line (a generated rule can be one 256 KiB line) shows a window around the
           error, cut at character boundaries and marked with "..." */
        int cut_left = off - ls > WINDOW, cut_right = le - off > WINDOW + d->len;
        if (cut_left)
            for (ls = off - WINDOW; ls < off && ((unsigned char)text[ls] & 0xC0) == 0x80;)
                ls++;
        if (cut_right)
            for (le = off + d->len + WINDOW; le < n && ((unsigned char)text[le] & 0xC0) == 0x80;)
                le++;
        if (cut_left)
            sql__buf_put(&b, "...", 3);
        sql__buf_put(&b, text + ls, le - ls);
        if (cut_right)
            sql__buf_put(&b, "...", 3);
        sql__buf_putc(&b, '\n');
        if (cut_left)
            sql__buf_put(&b, "   ", 3);
        for (size_t i = ls; i < off; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c == '\t')
                sql__buf_putc(&b, '\t');
            else if ((c & 0xC0) != 0x80)
                sql__buf_putc(&b, ' ');
        }
        sql__buf_putc(&b, '^');
        size_t span_end = off + d->len < le ? off + d->len : le;
        for (size_t i = off + 1; i < span_end; i++)
            if (((unsigned char)text[i] & 0xC0) != 0x80)
                sql__buf_putc(&b, '~');
        sql__buf_putc(&b, '\n');
    }
    size_t want = b.len;
    if (cap) {
        size_t k = want < cap - 1 ? want : cap - 1;
        if (k)
            memcpy(buf, b.p, k);
        buf[k] = '\0';
    }
    sql__buf_free(&b);
    return want;
}

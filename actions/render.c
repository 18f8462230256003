/*
 * render.c -- substituted templates for one action and one fired message, and the small
 * growable buffer actions format into.
 *
 * Workers render an action's templates right after the rule fired, before the message is
 * queued, because rendering needs the sql_exec that just ran the rule. The failure path renders
 * the error action's templates the same way, on a lane thread with its own sql_exec. All the
 * strings go into one buffer that is reused from message to message, so a steady stream
 * allocates nothing here; the pointers are fixed up after the buffer stops moving.
 */
#include "action.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int act_buf_put(act_buf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 256;
        while (c < b->len + n + 1)
            c *= 2;
        char *p = realloc(b->p, c);
        if (!p)
            return -1;
        b->p = p;
        b->cap = c;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int act_buf_puts(act_buf *b, const char *s) { return act_buf_put(b, s, strlen(s)); }

int act_buf_printf(act_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof tmp)
        return act_buf_put(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = act_buf_put(b, big, (size_t)n);
    free(big);
    return rc;
}

void act_buf_deinit(act_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int put(act_fields *fs, const char *s, size_t n) {
    if (fs->buflen + n + 1 > fs->bufcap) {
        size_t c = fs->bufcap ? fs->bufcap * 2 : 1024;
        while (c < fs->buflen + n + 1)
            c *= 2;
        char *p = realloc(fs->buf, c);
        if (!p)
            return -1;
        fs->buf = p;
        fs->bufcap = c;
    }
    memcpy(fs->buf + fs->buflen, s, n);
    fs->buflen += n;
    fs->buf[fs->buflen++] = '\0';
    return 0;
}

int act_render(sql_exec *x, uint32_t base, uint32_t n, int wants_nulls, act_fields *fs,
               char *err, size_t cap) {
    size_t offs[ACT_MAX_FIELDS];
    fs->n = 0;
    fs->buflen = 0;
    if (n > ACT_MAX_FIELDS) {
        snprintf(err, cap, "too many substitution templates");
        return -1;
    }
    for (uint32_t k = 0; k < n; k++) {
        sql_output o;
        if (sql_exec_template(x, base + k, &o) != SQL_OK) {
            snprintf(err, cap, "substitution failed: %s", sql_exec_errmsg(x));
            return -1;
        }
        offs[k] = fs->buflen;
        fs->len[k] = o.len;
        fs->null[k] = 0;
        if (put(fs, o.data, o.len)) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        if (wants_nulls) {
            /* a bound parameter: only a template that is one ${expr} can be NULL */
            sql_output v;
            int is_null = 0;
            if (sql_exec_template_expr(x, base + k, 0, &v, &is_null) == SQL_OK && is_null)
                fs->null[k] = 1;
        }
    }
    for (uint32_t k = 0; k < n; k++)
        fs->f[k] = fs->buf + offs[k];
    fs->n = n;
    return 0;
}

void act_fields_deinit(act_fields *fs) {
    free(fs->buf);
    fs->buf = NULL;
    fs->buflen = fs->bufcap = 0;
    fs->n = 0;
}

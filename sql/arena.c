/*
 * arena.c -- the per-evaluation bump allocator and the growable byte buffer.
 *
 * Every value built while evaluating one message (decoded strings, arrays, objects, big
 * numbers) comes from the sql_exec's arena; sql_exec_run() rewinds it before the next message,
 * so the message path frees nothing piecemeal. The first chunk is kept across resets, so a
 * steady stream of similar messages allocates nothing from the system after warm-up. A limit
 * caps what one evaluation may take (a hostile payload or rule cannot exhaust memory); going
 * past it is SQL_E_LIMIT, not a crash. Rejected alternative: malloc/free per value (Fluent
 * Bit's stream processor), which costs a call pair per node on the hot path.
 */
#include "sql_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sql_arena_chunk {
    sql_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    _Alignas(16) char data[];
};

#define ARENA_FIRST_CHUNK (16u * 1024u)

void sql__arena_init(sql_arena *a, size_t limit) {
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

void sql__arena_deinit(sql_arena *a) {
    sql_arena_chunk *c = a->first;
    while (c) {
        sql_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    memset(a, 0, sizeof *a);
}

void sql__arena_reset(sql_arena *a) {
    if (!a->first)
        return;
    sql_arena_chunk *c = a->first->next;
    while (c) {
        sql_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->first->next = NULL;
    a->head = a->first;
    a->p = a->first->data;
    a->end = a->first->data + a->first->size;
    a->used = 0;
}

void *sql__arena_alloc(sql_arena *a, size_t n) {
    n = (n + 15u) & ~(size_t)15u;
    if (n == 0)
        n = 16;
    if (a->limit && a->used + n > a->limit)
        return NULL;
    if ((size_t)(a->end - a->p) < n) {
        size_t size = a->first ? a->head->size * 2 : (a->chunk ? a->chunk : ARENA_FIRST_CHUNK);
        if (size < n)
            size = n;
        sql_arena_chunk *c = malloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->next = NULL;
        c->size = size;
        if (a->head)
            a->head->next = c;
        else
            a->first = c;
        a->head = c;
        a->p = c->data;
        a->end = c->data + size;
    }
    void *r = a->p;
    a->p += n;
    a->used += n;
    return r;
}

char *sql__arena_strdup(sql_arena *a, const char *s, size_t n) {
    char *r = sql__arena_alloc(a, n + 1);
    if (r) {
        if (n)
            memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

int sql__grow(void **p, uint32_t *cap, uint32_t need, size_t elt) {
    if (need <= *cap)
        return 0;
    uint32_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elt);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

void sql__buf_init(sql_buf *b) { memset(b, 0, sizeof *b); }

void sql__buf_free(sql_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int sql__buf_grow(sql_buf *b, size_t extra) {
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sql__buf_printf(sql_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k < sizeof tmp) {
        sql__buf_put(b, tmp, (size_t)k);
        return;
    }
    if (sql__buf_reserve(b, (size_t)k) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

int sql_ctx_error(sql_ctx *ctx, int code, const char *fmt, ...) {
    if (ctx->err)
        return ctx->err;
    ctx->err = code ? code : SQL_E_RUNTIME;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    return ctx->err;
}

void *sql__alloc(sql_ctx *ctx, size_t n) {
    void *p = sql__arena_alloc(&ctx->arena, n);
    if (!p) {
        if (ctx->arena.limit && ctx->arena.used + n > ctx->arena.limit)
            sql_ctx_error(ctx, SQL_E_LIMIT, "evaluation needs more than %zu bytes of memory",
                          ctx->arena.limit);
        else
            sql_ctx_error(ctx, SQL_E_NOMEM, "out of memory");
    }
    return p;
}

const char *sql_status_name(int code) {
    switch (code) {
    case SQL_OK: return "OK";
#define X(name, msg) case SQL_##name: return #name;
    SQL_STATUS_MAP(X)
#undef X
    default: return "UNKNOWN";
    }
}

const char *sql_status_message(int code) {
    switch (code) {
    case SQL_OK: return "ok";
#define X(name, msg) case SQL_##name: return msg;
    SQL_STATUS_MAP(X)
#undef X
    default: return "unknown status";
    }
}

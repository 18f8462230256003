/*
 * text.c -- byte-level text helpers shared by the lexer, the JSON reader and the builtins:
 * UTF-8 encoding of a code point, JSON/SQL \uXXXX digits, and base64 (also public in sql.h,
 * for the engine and the actions: one implementation of java.util.Base64's basic codec).
 */
#include "sql_int.h"

#include <stddef.h>

size_t sql__utf8_put(char *o, uint32_t cp) {
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

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sql__hex4(const char *p, const char *end, uint32_t *out) {
    if (end - p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + (uint32_t)h;
    }
    *out = v;
    return 0;
}

size_t sql_base64_encode(const void *data, size_t n, char *p) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t x = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        p[o++] = tab[x >> 18];
        p[o++] = tab[(x >> 12) & 63];
        p[o++] = tab[(x >> 6) & 63];
        p[o++] = tab[x & 63];
    }
    if (i < n) {
        uint32_t x = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        p[o++] = tab[x >> 18];
        p[o++] = tab[(x >> 12) & 63];
        p[o++] = i + 1 < n ? tab[(x >> 6) & 63] : '=';
        p[o++] = '=';
    }
    p[o] = '\0';
    return o;
}

int sql__base64_encode(sql_ctx *ctx, const void *data, size_t n, sql_value *out) {
    size_t on = (n + 2) / 3 * 4;
    if (on > UINT32_MAX)
        return sql_ctx_error(ctx, SQL_E_LIMIT, "base64 result too long");
    char *p = sql__alloc(ctx, on + 1);
    if (!p)
        return ctx->err;
    size_t o = sql_base64_encode(data, n, p);
    *out = (sql_value){.t = SQL_T_STR, .f = SQL_F_JSAFE, .n = (uint32_t)o, .u.s = p};
    return 0;
}

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

long sql_base64_decode(const char *s, size_t n, unsigned char *p) {
    size_t o = 0, q = 0;
    uint32_t acc = 0;
    size_t i = 0;
    for (; i < n && s[i] != '='; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        if (++q == 4) {
            p[o++] = (unsigned char)(acc >> 16);
            p[o++] = (unsigned char)(acc >> 8);
            p[o++] = (unsigned char)acc;
            q = 0;
            acc = 0;
        }
    }
    if (q == 1)
        return -1; /* six bits cannot end a byte */
    size_t pad = n - i;
    /* Padding, when present, must complete the last quantum exactly. */
    if (pad && (pad != 4 - q || q == 0))
        return -1;
    for (; i < n; i++) {
        if (s[i] != '=')
            return -1;
    }
    if (q == 2) {
        p[o++] = (unsigned char)(acc >> 4);
    } else if (q == 3) {
        p[o++] = (unsigned char)(acc >> 10);
        p[o++] = (unsigned char)(acc >> 2);
    }
    return (long)o;
}


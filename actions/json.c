/*
 * json.c -- the JSON the actions write themselves: whether an output is one JSON value, whether
 * bytes are UTF-8 text, and bytes as a JSON string.
 *
 * The validator is RFC 8259's grammar walked with an explicit stack and no allocation, so the
 * file and HTTP actions can ask it of every message; outputs nested deeper than
 * ACT_JSON_MAX_DEPTH count as not JSON (they are then written as a string, never dropped).
 * Rejected: cJSON_Parse for the question, which builds and frees a whole tree per message and
 * accepts a few things JSON does not ("01", a trailing comma is not one of them).
 */
#include "action.h"

#include <string.h>

#define ACT_JSON_MAX_DEPTH 512

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The index after the string that opens at s[i] ('"'), or 0. */
static size_t string_end(const char *s, size_t n, size_t i) {
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (++i >= n)
            return 0;
        if (s[i] == 'u') {
            if (i + 4 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) ||
                !is_hex(s[i + 4]))
                return 0;
            i += 4;
        } else if (!s[i] || !strchr("\"\\/bfnrt", s[i])) {
            return 0;
        }
    }
    return 0;
}

/* number -> '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? ([eE] [+-]? [0-9]+)?; the end, or 0 */
static size_t number_end(const char *s, size_t n, size_t i) {
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && is_digit(s[i]))
        while (i < n && is_digit(s[i]))
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i;
}

/* A scalar at s[i]: its end, or 0. */
static size_t scalar_end(const char *s, size_t n, size_t i) {
    static const char *const words[] = {"true", "false", "null"};
    if (s[i] == '"')
        return string_end(s, n, i);
    if (s[i] == '-' || is_digit(s[i]))
        return number_end(s, n, i);
    for (size_t w = 0; w < 3; w++) {
        size_t l = strlen(words[w]);
        if (n - i >= l && !memcmp(s + i, words[w], l))
            return i + l;
    }
    return 0;
}

int act_json_valid(const char *s, size_t n) {
    char stack[ACT_JSON_MAX_DEPTH];    /* the open '{' and '[' */
    size_t depth = 0, i = skip_ws(s, n, 0);
    enum { VALUE, AFTER, KEY } want = VALUE;
    for (;;) {
        if (want == KEY) {           /* a member's name and colon, then its value */
            if (i >= n || s[i] != '"' || !(i = string_end(s, n, i)))
                return 0;
            i = skip_ws(s, n, i);
            if (i >= n || s[i] != ':')
                return 0;
            i = skip_ws(s, n, i + 1);
            want = VALUE;
        }
        if (want == VALUE) {
            if (i >= n)
                return 0;
            if (s[i] == '{' || s[i] == '[') {
                if (depth == sizeof stack)
                    return 0;
                char open = s[i];
                stack[depth++] = open;
                i = skip_ws(s, n, i + 1);
                if (i < n && s[i] == (open == '{' ? '}' : ']')) {
                    depth--;
                    i++;
                    want = AFTER;
                } else {
                    want = open == '{' ? KEY : VALUE;
                }
                continue;
            }
            if (!(i = scalar_end(s, n, i)))
                return 0;
            want = AFTER;
        }
        i = skip_ws(s, n, i);        /* AFTER: the end, a comma or a closing bracket */
        if (depth == 0)
            return i == n;
        if (i >= n)
            return 0;
        char close = stack[depth - 1] == '{' ? '}' : ']';
        if (s[i] == ',') {
            i = skip_ws(s, n, i + 1);
            want = close == '}' ? KEY : VALUE;
        } else if (s[i] == close) {
            depth--;
            i++;
        } else {
            return 0;
        }
    }
}

int act_utf8_valid(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        /* overlong forms, UTF-16 surrogates and code points past U+10FFFF */
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += k + 1;
    }
    return 1;
}

int act_buf_put_json_string(act_buf *out, const char *p, size_t n, size_t *len) {
    static const char hex[] = "0123456789abcdef";
    size_t total = 2;
    if (out && act_buf_put(out, "\"", 1))
        return -1;
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        char esc[6];
        size_t en = 2;
        const char *named = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (named) {
            memcpy(esc, named, 2);
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            en = 6;
        }
        total += run + en;
        if (out && (act_buf_put(out, p + i - run, run) || act_buf_put(out, esc, en)))
            return -1;
        run = 0;
    }
    total += run;
    if (out && (act_buf_put(out, p + n - run, run) || act_buf_put(out, "\"", 1)))
        return -1;
    if (len)
        *len = total;
    return 0;
}

/*
 * topic.c -- the shadow's MQTT topics and its names.
 *
 * Request topics (what clients publish, and what the MQTT input subscribes to):
 *
 *     $aws/things/{thing}/shadow/{update|get|delete}                   classic shadow
 *     $aws/things/{thing}/shadow/name/{shadow}/{update|get|delete}     named shadow
 *
 * Answers go to the request topic plus /accepted or /rejected, and an update's also to
 * /update/delta and /update/documents. Examples the parser must get right:
 *
 *     request:      $aws/things/lamp/shadow/update, $aws/things/lamp/shadow/name/cfg/get
 *     not requests: $aws/things/lamp/shadow/update/accepted (an answer),
 *                   $aws/things/lamp/shadow/name/update (6 levels: no shadow name),
 *                   $aws/things//shadow/get (empty thing), $aws/things/lamp/shadow/name//get,
 *                   $aws/things/lamp/shadow/list, $AWS/things/lamp/shadow/get (topics are
 *                   case-sensitive), aws/things/lamp/shadow/get
 *
 * The parser checks only the shape (non-empty levels); the names' patterns are checked when
 * the request is handled, so a bad name is answered on /rejected with a 400 rather than
 * silently ignored. Names: thing 1..128 of [a-zA-Z0-9:_-], shadow 1..64 of [$a-zA-Z0-9:_-]
 * (botocore's model of the iot-data API).
 */
#include "shadow_int.h"

#include <string.h>

const char *const eng_shadow_request_filters[] = {
    "$aws/things/+/shadow/update",
    "$aws/things/+/shadow/get",
    "$aws/things/+/shadow/delete",
    "$aws/things/+/shadow/name/+/update",
    "$aws/things/+/shadow/name/+/get",
    "$aws/things/+/shadow/name/+/delete",
    NULL,
};

static const char *const op_names[] = {
    [ENG_SHADOW_GET] = "get",
    [ENG_SHADOW_UPDATE] = "update",
    [ENG_SHADOW_DELETE] = "delete",
};

static int name_chars(const char *s, size_t n, size_t max, int dollar) {
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '_' || c == '-' || (dollar && c == '$')))
            return 0;
    }
    return 1;
}

int eng__shadow_thing_valid(const char *name, size_t n) {
    return name_chars(name, n, ENG_SHADOW_THING_MAX, 0);
}

int eng__shadow_name_valid(const char *name, size_t n) {
    return name_chars(name, n, ENG_SHADOW_NAME_MAX, 1);
}

/* Splits t into at most max levels; returns the count, or max + 1 when there are more. */
static size_t levels(const char *t, size_t n, const char **lv, size_t *ln, size_t max) {
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && t[i] != '/')
            continue;
        if (k == max)
            return max + 1;
        lv[k] = t + start;
        ln[k++] = i - start;
        start = i + 1;
    }
    return k;
}

static int is(const char *s, size_t n, const char *word) {
    return n == strlen(word) && !memcmp(s, word, n);
}

int eng_shadow_topic_parse(const char *t, size_t n, eng_shadow_topic *out) {
    /* every message the workers see asks this: most are not under $aws/things/ at all */
    if (n < 12 || memcmp(t, "$aws/things/", 12))
        return 0;
    const char *lv[7];
    size_t ln[7];
    size_t k = levels(t, n, lv, ln, 7);
    if ((k != 5 && k != 7) || !is(lv[0], ln[0], "$aws") || !is(lv[1], ln[1], "things") ||
        ln[2] == 0 || !is(lv[3], ln[3], "shadow"))
        return 0;
    if (k == 7 && (!is(lv[4], ln[4], "name") || ln[5] == 0))
        return 0;
    const char *op = lv[k - 1];
    size_t opn = ln[k - 1];
    int o;
    for (o = 0; o < 3; o++)
        if (is(op, opn, op_names[o]))
            break;
    if (o == 3)
        return 0;
    *out = (eng_shadow_topic){
        .op = (eng_shadow_op)o,
        .thing = lv[2],
        .thing_len = ln[2],
        .shadow = k == 7 ? lv[5] : NULL,
        .shadow_len = k == 7 ? ln[5] : 0,
    };
    return 1;
}

void eng__shadow_topic_build(eng_sbuf *b, const char *thing, size_t thing_len, const char *shadow,
                             size_t shadow_len, eng_shadow_op op, const char *suffix) {
    eng__sbuf_lit(b, "$aws/things/");
    eng__sbuf_add(b, thing, thing_len);
    eng__sbuf_lit(b, "/shadow/");
    if (shadow && shadow_len) {
        eng__sbuf_lit(b, "name/");
        eng__sbuf_add(b, shadow, shadow_len);
        eng__sbuf_lit(b, "/");
    }
    eng__sbuf_lit(b, op_names[op]);
    if (suffix) {
        eng__sbuf_lit(b, "/");
        eng__sbuf_lit(b, suffix);
    }
}

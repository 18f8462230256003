/*
 * fuzz_topic_filter.c -- sql_topic_filter_check() and sql_topic_matches() (sql/topic.c)
 * against a reference written here the plain way: split filter and topic into levels, then
 * compare level by level.
 *
 * Input layout: byte 0 is the filter's length (capped at the rest), then the filter, then the
 * topic. Both may hold any byte, NUL included. Checked on every input:
 *   - the library accepts a filter exactly when the reference does (non-empty, at most 256
 *     bytes, no NUL, '+' and '#' alone in their level, '#' only last, at most 8 levels);
 *   - for a valid filter, the library matches the topic exactly when the reference does (MQTT
 *     3.1.1 section 4.7: '+' one level, '#' this level and all below including the parent,
 *     a leading wildcard never matches a topic that starts with '$');
 *   - a filter without wildcards matches exactly the topic equal to it;
 *   - matching with an invalid filter does not crash (its answer is not specified).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

#define MAX_LEVELS 8
#define MAX_FILTER 256

typedef struct level {
    const char *s;
    size_t n;
} level;

/* Splits s[0..n) at every '/' into lv (at most cap levels); returns the count (may exceed cap,
 * then only cap are stored). */
static size_t split(const char *s, size_t n, level *lv, size_t cap) {
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/')
            continue;
        if (k < cap)
            lv[k] = (level){s + start, i - start};
        k++;
        start = i + 1;
    }
    return k;
}

static int is(const level *l, char c) { return l->n == 1 && l->s[0] == c; }

static int ref_valid(const char *f, size_t n) {
    if (n == 0 || n > MAX_FILTER || memchr(f, '\0', n))
        return 0;
    level lv[MAX_FILTER + 1];
    size_t k = split(f, n, lv, MAX_FILTER + 1);
    if (k > MAX_LEVELS)
        return 0;
    for (size_t i = 0; i < k; i++) {
        if ((memchr(lv[i].s, '+', lv[i].n) || memchr(lv[i].s, '#', lv[i].n)) && lv[i].n != 1)
            return 0;
        if (is(&lv[i], '#') && i + 1 != k)
            return 0;
    }
    return 1;
}

static int ref_match(const char *f, size_t fn, const char *t, size_t tn) {
    level fl[MAX_LEVELS], *tl = malloc(sizeof(level) * (tn + 1));
    if (!tl)
        abort();
    size_t nf = split(f, fn, fl, MAX_LEVELS), nt = split(t, tn, tl, tn + 1);
    int m;
    if (tn > 0 && t[0] == '$' && (is(&fl[0], '+') || is(&fl[0], '#'))) {
        m = 0;
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        if (is(&fl[i], '#')) { /* this level and everything below, or nothing */
            m = 1;
            goto out;
        }
        if (i >= nt || (!is(&fl[i], '+') &&
                        (fl[i].n != tl[i].n || memcmp(fl[i].s, tl[i].s, fl[i].n) != 0))) {
            m = 0;
            goto out;
        }
    }
    m = nf == nt;
out:
    free(tl);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    size_t fn = data[0];
    if (fn > size - 1)
        fn = size - 1;
    const char *f = (const char *)data + 1, *t = f + fn;
    size_t tn = size - 1 - fn;
    char msg[160];
    int valid = sql_topic_filter_check(f, fn, msg, sizeof msg) == SQL_OK;
    if (valid != ref_valid(f, fn))
        abort();
    int m = sql_topic_matches(f, fn, t, tn);
    if (!valid)
        return 0;
    if (m != ref_match(f, fn, t, tn))
        abort();
    if (!memchr(f, '+', fn) && !memchr(f, '#', fn) &&
        m != (fn == tn && memcmp(f, t, fn) == 0))
        abort();
    return 0;
}

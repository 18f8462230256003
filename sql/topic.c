/*
 * topic.c -- MQTT topic filters: validation with AWS's limits, and matching.
 *
 * Matching walks filter and topic level by level without splitting or allocating. Rules
 * (MQTT 3.1.1 section 4.7, AWS IoT's topic page):
 *   valid filters:     "a/b", "a/+/c", "+", "#", "a/#", "+/+", "$aws/things/+/shadow/update"
 *   invalid filters:   "a/#/b" ('#' not last), "a/b#" and "a+/b" (wildcard not alone in its
 *                      level), "" (empty), more than 8 levels, more than 256 bytes
 *   valid, no match:   "+/x" on "$SYS/x" (a leading wildcard never matches a '$' topic),
 *                      "a/+" on "a/b/c", "a/b" on "a/B" (case-sensitive)
 *   matching:          "a/#" matches "a", "a/" and "a/b/c" (the parent level too, as the
 *                      broker delivers it); "a/+" matches "a/" (an empty level)
 * AWS's topics page claims "sensor/#" does not receive "sensor"; the broker sluice subscribes
 * through does deliver it, so sluice follows the MQTT specification (sql/README.md).
 */
#include "sql_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_LEVELS 8
#define MAX_FILTER_BYTES 256

int sql_topic_filter_check(const char *f, size_t n, char *msg, size_t cap) {
    if (n == 0) {
        snprintf(msg, cap, "topic filter is empty");
        return SQL_E_SEMANTIC;
    }
    if (n > MAX_FILTER_BYTES) {
        snprintf(msg, cap, "topic filter is longer than %d bytes", MAX_FILTER_BYTES);
        return SQL_E_SEMANTIC;
    }
    size_t levels = 1, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && f[i] == '\0') {
            snprintf(msg, cap, "topic filter contains a NUL byte");
            return SQL_E_SEMANTIC;
        }
        if (i < n && f[i] != '/')
            continue;
        size_t len = i - start;
        const char *lv = f + start;
        for (size_t j = 0; j < len; j++) {
            if ((lv[j] == '+' || lv[j] == '#') && len != 1) {
                snprintf(msg, cap, "'%c' must be the only character in its topic level", lv[j]);
                return SQL_E_SEMANTIC;
            }
        }
        if (len == 1 && lv[0] == '#' && i != n) {
            snprintf(msg, cap, "'#' must be the last level of a topic filter");
            return SQL_E_SEMANTIC;
        }
        if (i < n)
            levels++;
        start = i + 1;
    }
    if (levels > MAX_LEVELS) {
        snprintf(msg, cap, "topic filter has %zu levels; AWS IoT allows at most %d", levels,
                 MAX_LEVELS);
        return SQL_E_SEMANTIC;
    }
    return SQL_OK;
}

int sql_topic_matches(const char *f, size_t fl, const char *t, size_t tl) {
    if (tl > 0 && t[0] == '$' && fl > 0 && (f[0] == '+' || f[0] == '#'))
        return 0;
    size_t i = 0, j = 0;
    int tmore = 1; /* the topic has a level starting at j */
    for (;;) {
        size_t fe = i;
        while (fe < fl && f[fe] != '/')
            fe++;
        if (fe - i == 1 && f[i] == '#') /* this level and everything below, or nothing */
            return 1;
        if (!tmore)
            return 0;
        size_t te = j;
        while (te < tl && t[te] != '/')
            te++;
        if (!(fe - i == 1 && f[i] == '+') &&
            (fe - i != te - j || memcmp(f + i, t + j, fe - i) != 0))
            return 0;
        int fmore = fe < fl, tm = te < tl;
        if (!fmore)
            return !tm;
        i = fe + 1;
        if (tm)
            j = te + 1;
        else
            tmore = 0;
    }
}

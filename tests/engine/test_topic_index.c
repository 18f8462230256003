/* test_topic_index.c -- the rule topic index (engine/topic_index.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "sql.h"
#ifdef HAVE_LIBMOSQUITTO
#include <mosquitto.h>
#endif

static int has(const uint32_t *ids, size_t n, uint32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

Test(topic_index, plus_matches_exactly_one_level) {
    eng_topic_index *ix = eng_topic_index_new();
    cr_assert_eq(eng_topic_index_add(ix, "a/+/c", 5, 1), 0);
    uint32_t ids[8];
    cr_expect_eq(eng_topic_index_match(ix, "a/b/c", 5, ids, 8), 1);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(eng_topic_index_match(ix, "a/b/x/c", 7, ids, 8), 0);
    cr_expect_eq(eng_topic_index_match(ix, "a/c", 3, ids, 8), 0);
    eng_topic_index_free(ix);
}

Test(topic_index, hash_matches_parent_and_descendants_but_not_dollar) {
    eng_topic_index *ix = eng_topic_index_new();
    eng_topic_index_add(ix, "a/#", 3, 1);
    eng_topic_index_add(ix, "#", 1, 2);
    eng_topic_index_add(ix, "+/x", 3, 3);
    eng_topic_index_add(ix, "$SYS/#", 6, 4);
    uint32_t ids[8];
    size_t n = eng_topic_index_match(ix, "a", 1, ids, 8);
    cr_expect(n == 2 && has(ids, n, 1) && has(ids, n, 2));
    n = eng_topic_index_match(ix, "a/b/c", 5, ids, 8);
    cr_expect(n == 2 && has(ids, n, 1) && has(ids, n, 2));
    n = eng_topic_index_match(ix, "$SYS/x", 6, ids, 8);
    cr_expect(n == 1 && ids[0] == 4, "got %zu", n);
    n = eng_topic_index_match(ix, "q/x", 3, ids, 8);
    cr_expect(n == 2 && has(ids, n, 2) && has(ids, n, 3));
    eng_topic_index_free(ix);
}

Test(topic_index, many_rules_on_one_filter_and_overflowing_cap) {
    eng_topic_index *ix = eng_topic_index_new();
    for (uint32_t i = 0; i < 100; i++)
        eng_topic_index_add(ix, "s/+/t", 5, i);
    uint32_t ids[10];
    cr_expect_eq(eng_topic_index_match(ix, "s/d/t", 5, ids, 10), 100);
    eng_topic_index_free(ix);
}

/* Random filters and topics over a small alphabet, so that matches are frequent. */
static void rand_levels(char *buf, size_t cap, int wild, unsigned *seed) {
    static const char *words[] = {"a", "b", "c", "$SYS", "", "dev-1"};
    int levels = 1 + rand_r(seed) % 5;
    size_t len = 0;
    for (int l = 0; l < levels; l++) {
        const char *w;
        int r = rand_r(seed) % 10;
        if (wild && r == 0)
            w = "+";
        else if (wild && r == 1 && l == levels - 1)
            w = "#";
        else
            w = words[rand_r(seed) % (l == 0 ? 6 : 5)];
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", l ? "/" : "", w);
    }
}

Test(topic_index, agrees_with_sql_topic_matches_and_libmosquitto) {
    enum { NF = 400, NT = 2000 };
    static char filters[NF][64];
    unsigned seed = 12345;
    eng_topic_index *ix = eng_topic_index_new();
    int nf = 0;
    for (int i = 0; i < NF; i++) {
        rand_levels(filters[nf], 64, 1, &seed);
        char msg[128];
        if (sql_topic_filter_check(filters[nf], strlen(filters[nf]), msg, sizeof msg) != SQL_OK)
            continue;
        cr_assert_eq(eng_topic_index_add(ix, filters[nf], strlen(filters[nf]), (uint32_t)nf), 0);
        nf++;
    }
    uint32_t *ids = malloc(sizeof(uint32_t) * NF);
    for (int t = 0; t < NT; t++) {
        char topic[64];
        rand_levels(topic, sizeof topic, 0, &seed);
        size_t tl = strlen(topic);
        if (tl == 0) /* MQTT topics are at least one byte long */
            continue;
        size_t n = eng_topic_index_match(ix, topic, tl, ids, NF);
        size_t want = 0;
        for (int f = 0; f < nf; f++) {
            int m = sql_topic_matches(filters[f], strlen(filters[f]), topic, tl);
#ifdef HAVE_LIBMOSQUITTO
            bool r = false;
            cr_assert_eq(mosquitto_topic_matches_sub(filters[f], topic, &r), MOSQ_ERR_SUCCESS);
            cr_expect_eq(m, (int)r, "sql_topic_matches('%s', '%s') = %d, libmosquitto says %d",
                         filters[f], topic, m, (int)r);
#endif
            want += (size_t)m;
            if (m)
                cr_expect(has(ids, n, (uint32_t)f), "index misses '%s' for '%s'", filters[f],
                          topic);
        }
        cr_expect_eq(n, want, "topic '%s': index %zu, scan %zu", topic, n, want);
    }
    free(ids);
    eng_topic_index_free(ix);
}

/* test_prefix.c -- the finished prefix of a partition's records (engine/ingest/prefix.c): what
 * the Kafka source may commit, whatever order records finish in. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* Pushes n records at offsets offs[0..n) and returns their indexes in ix. */
static void push_all(eng_prefix *t, const int64_t *offs, size_t n, uint64_t *ix) {
    for (size_t i = 0; i < n; i++) {
        ix[i] = eng__prefix_push(t, offs[i], 0);
        cr_assert_neq(ix[i], UINT64_MAX);
    }
}

Test(prefix, nothing_finished_commits_nothing) {
    eng_prefix t;
    cr_assert_eq(eng__prefix_init(&t, 16), 0);
    uint64_t ix[3];
    push_all(&t, (int64_t[]){0, 1, 2}, 3, ix);
    cr_expect_eq(t.next, -1);
    cr_expect_eq(t.inflight, 3);
    eng__prefix_deinit(&t);
}

Test(prefix, moves_only_over_a_run_finished_from_the_first_record) {
    eng_prefix t;
    cr_assert_eq(eng__prefix_init(&t, 16), 0);
    uint64_t ix[4];
    push_all(&t, (int64_t[]){10, 11, 12, 13}, 4, ix);
    eng__prefix_done(&t, ix[1], 0);
    eng__prefix_done(&t, ix[3], 0);
    cr_expect_eq(t.next, -1, "the first record is not finished");
    eng__prefix_done(&t, ix[0], 0);
    cr_expect_eq(t.next, 12, "10 and 11 finished: 12 is the next to read");
    eng__prefix_done(&t, ix[2], 0);
    cr_expect_eq(t.next, 14);
    cr_expect_eq(t.inflight, 0);
    cr_expect_eq(t.tail - t.head, 0);
    eng__prefix_deinit(&t);
}

Test(prefix, offset_gaps_are_not_waited_for) {
    /* transaction markers and compaction leave offsets that no record has */
    eng_prefix t;
    cr_assert_eq(eng__prefix_init(&t, 16), 0);
    uint64_t ix[3];
    push_all(&t, (int64_t[]){5, 9, 10}, 3, ix);
    eng__prefix_done(&t, ix[0], 0);
    cr_expect_eq(t.next, 6);
    eng__prefix_done(&t, ix[2], 0);
    eng__prefix_done(&t, ix[1], 0);
    cr_expect_eq(t.next, 11);
    eng__prefix_deinit(&t);
}

Test(prefix, a_kept_record_stops_the_prefix_for_good) {
    eng_prefix t;
    cr_assert_eq(eng__prefix_init(&t, 16), 0);
    uint64_t ix[4];
    push_all(&t, (int64_t[]){0, 1, 2, 3}, 4, ix);
    eng__prefix_done(&t, ix[0], 0);
    eng__prefix_done(&t, ix[2], 0);
    eng__prefix_done(&t, ix[1], 1); /* e.g. the dead-letter store refused it */
    eng__prefix_done(&t, ix[3], 0);
    cr_expect_eq(t.next, 1, "nothing at or after the kept record may be committed");
    cr_expect_eq(t.kept, 1);
    cr_expect_eq(t.inflight, 0);
    cr_expect_eq(t.tail - t.head, 3, "the kept record and what follows stay unstored");
    for (int64_t o = 4; o < 8; o++)
        eng__prefix_done(&t, eng__prefix_push(&t, o, 0), 0);
    cr_expect_eq(t.next, 1);
    eng__prefix_deinit(&t);
}

Test(prefix, a_record_pushed_kept_stops_the_prefix_before_it) {
    /* a record that could not even be made a message (OOM) */
    eng_prefix t;
    cr_assert_eq(eng__prefix_init(&t, 16), 0);
    uint64_t a = eng__prefix_push(&t, 0, 0);
    eng__prefix_push(&t, 1, 1);
    uint64_t c = eng__prefix_push(&t, 2, 0);
    cr_expect_eq(t.inflight, 2);
    eng__prefix_done(&t, c, 0);
    eng__prefix_done(&t, a, 0);
    cr_expect_eq(t.next, 1);
    eng__prefix_deinit(&t);
}

Test(prefix, the_ring_grows_across_its_wrap_point_keeping_each_record) {
    eng_prefix t;
    cr_assert_eq(eng__prefix_init(&t, 64), 0);
    cr_assert_eq(t.mask, 63);
    /* move the head to the middle of the ring, so that growing has to unwrap */
    for (int64_t o = 0; o < 40; o++)
        eng__prefix_done(&t, eng__prefix_push(&t, o, 0), 0);
    cr_expect_eq(t.next, 40);
    enum { N = 1000 };
    uint64_t *ix = malloc(N * sizeof *ix);
    for (size_t i = 0; i < N; i++)
        ix[i] = eng__prefix_push(&t, 40 + 2 * (int64_t)i, 0); /* every other offset */
    cr_expect_geq(t.mask + 1, N);
    for (size_t i = N; i-- > 1;) /* last to first: nothing moves until the first */
        eng__prefix_done(&t, ix[i], 0);
    cr_expect_eq(t.next, 40);
    eng__prefix_done(&t, ix[0], 0);
    cr_expect_eq(t.next, 40 + 2 * (N - 1) + 1);
    free(ix);
    eng__prefix_deinit(&t);
}

Test(prefix, random_completion_orders_match_a_model) {
    /* what may be committed is always one past the end of the longest finished run */
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        eng_prefix t;
        cr_assert_eq(eng__prefix_init(&t, 1 + rand_r(&seed) % 300), 0);
        size_t n = 1 + rand_r(&seed) % 500, nk = 0;
        int64_t *off = malloc(n * sizeof *off);
        uint64_t *ix = malloc(n * sizeof *ix);
        char *fin = calloc(n, 1), *kept = calloc(n, 1);
        size_t *order = malloc(n * sizeof *order);
        int64_t o = rand_r(&seed) % 1000;
        for (size_t i = 0; i < n; i++) {
            o += 1 + (rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 5 : 0);
            off[i] = o;
            ix[i] = eng__prefix_push(&t, o, 0);
            order[i] = i;
        }
        for (size_t i = n; i > 1; i--) { /* a random completion order */
            size_t j = rand_r(&seed) % i, x = order[i - 1];
            order[i - 1] = order[j];
            order[j] = x;
        }
        for (size_t s = 0; s < n; s++) {
            size_t i = order[s];
            int k = rand_r(&seed) % 50 == 0;
            fin[i] = 1;
            kept[i] = (char)k;
            nk += (size_t)k;
            eng__prefix_done(&t, ix[i], k);
            size_t run = 0;
            while (run < n && fin[run] && !kept[run])
                run++;
            cr_assert_eq(t.next, run ? off[run - 1] + 1 : -1, "round %d step %zu", round, s);
        }
        cr_expect_eq(t.inflight, 0);
        cr_expect_eq(t.kept, nk);
        free(off);
        free(ix);
        free(fin);
        free(kept);
        free(order);
        eng__prefix_deinit(&t);
    }
}

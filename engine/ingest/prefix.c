/*
 * prefix.c -- the finished prefix of a partition's records, for a source whose journal is
 * elsewhere and whose position is an offset (the Kafka source).
 *
 * Records are pushed in the order the partition gives them and finish in any order (actions
 * run in parallel and retry). What may be committed is one past the last record of the longest
 * run of finished records from the start: never more, so that a restart or a new owner reads
 * again everything that is not finished. A ring holds, per record, its offset and a state
 * byte; a record's index in the ring (not its offset, since offsets have gaps: transaction
 * markers, compacted records) is what its message carries. A record finished without a durable
 * outcome (kept) never counts as finished: the prefix stops before it for good, and the
 * source's bound on unstored records then pauses the partition until a rebalance or a restart
 * delivers it again.
 *
 *     push 10 11 14 15      done(1) done(3)      done(0)          done(2, kept)
 *     next = -1             next = -1            next = 12        next = 12 (stays)
 *
 * Rejected: a bitmap over offsets (like the ingest journal's over sequence numbers), which
 * would have to fill the gaps, and a sorted set of finished offsets (a search per record).
 */
#include "../engine_int.h"

#include <stdlib.h>

enum { ST_FLIGHT = 0, ST_DONE = 1, ST_KEPT = 2 };

int eng__prefix_init(eng_prefix *t, size_t cap_hint) {
    size_t cap = 64;
    while (cap < cap_hint && cap < 4096)
        cap *= 2;
    *t = (eng_prefix){.mask = cap - 1, .next = -1};
    t->off = malloc(cap * sizeof *t->off);
    t->st = malloc(cap);
    if (!t->off || !t->st) {
        eng__prefix_deinit(t);
        return -1;
    }
    return 0;
}

void eng__prefix_deinit(eng_prefix *t) {
    free(t->off);
    free(t->st);
    t->off = NULL;
    t->st = NULL;
}

/* Doubles the ring, keeping each record at its index modulo the new size. */
static int grow(eng_prefix *t) {
    uint64_t cap = (t->mask + 1) * 2, mask = cap - 1;
    int64_t *off = malloc(cap * sizeof *off);
    uint8_t *st = malloc(cap);
    if (!off || !st) {
        free(off);
        free(st);
        return -1;
    }
    for (uint64_t i = t->head; i < t->tail; i++) {
        off[i & mask] = t->off[i & t->mask];
        st[i & mask] = t->st[i & t->mask];
    }
    free(t->off);
    free(t->st);
    t->off = off;
    t->st = st;
    t->mask = mask;
    return 0;
}

uint64_t eng__prefix_push(eng_prefix *t, int64_t offset, int kept) {
    if (t->tail - t->head > t->mask && grow(t) != 0) {
        t->stuck = 1; /* the record is not even listed: nothing after it may be committed */
        return UINT64_MAX;
    }
    uint64_t i = t->tail++;
    t->off[i & t->mask] = offset;
    t->st[i & t->mask] = kept ? ST_KEPT : ST_FLIGHT;
    if (kept)
        t->kept++;
    else
        t->inflight++;
    return i;
}

void eng__prefix_done(eng_prefix *t, uint64_t i, int kept) {
    t->st[i & t->mask] = kept ? ST_KEPT : ST_DONE;
    t->kept += kept != 0;
    t->inflight--;
    if (i != t->head)
        return; /* something before it is unfinished: the prefix cannot move */
    while (!t->stuck && t->head < t->tail && t->st[t->head & t->mask] == ST_DONE) {
        t->next = t->off[t->head & t->mask] + 1;
        t->head++;
    }
}

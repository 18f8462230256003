/*
 * test_journal.c -- the ingest journal: what is committed comes back after a restart exactly as
 * it was received, what is retired does not, damage costs only the damaged records, a full
 * journal says so, and a journal that cannot write refuses commits and recovers.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

static char dir[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/sluice-journal-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void rm_rf(const char *d) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

static void teardown(void) { rm_rf(dir); }

TestSuite(journal, .init = setup, .fini = teardown);

static eng_journal *open_j(const char *d, long long max) {
    eng_journal_opts o = {.mode = ENG_JOURNAL_BATCH, .max_bytes = max, .instance = 42};
    eng_error e;
    eng_journal *j = eng_journal_open(d, &o, &e);
    cr_assert(j, "open: %s", e.message);
    return j;
}

/* A message with everything a replay must reproduce. */
static eng_msg *sample(int i) {
    char topic[64], payload[128], ck[32], cv[32];
    snprintf(topic, sizeof topic, "dev/%d/t", i % 7);
    snprintf(payload, sizeof payload, "{\"seq\":%d,\"v\":\"%0*d\"}", i, i % 50, 0);
    snprintf(ck, sizeof ck, "k%d", i);
    snprintf(cv, sizeof cv, "v%d", i);
    sql_user_prop user[2] = {{"principal", "cert-1"}, {ck, cv}};
    sql_mqtt_props p = {.content_type = "application/json",
                        .response_topic = i % 2 ? "reply/x" : NULL,
                        .correlation_data = "\x01\x02\x00\x03",
                        .correlation_len = 4,
                        .format_indicator = 1,
                        .message_expiry = i % 3 ? 60 : -1,
                        .user = user,
                        .nuser = 2};
    eng_msg *m = eng_msg_new(topic, strlen(topic), payload, strlen(payload), &p,
                             i % 4 ? "client-a" : NULL, ENG_SRC_MQTT);
    cr_assert(m);
    m->qos = 1;
    m->hops = i % 3;
    m->received_ms = 1700000000000LL + i;
    return m;
}

/* An independent copy of journaled message i (same content, seq and derived ids), owned by
 * the test: the journal is not its origin. */
static eng_msg *clone(const eng_msg *orig, int i) {
    eng_msg *c = sample(i);
    c->seq = orig->seq;
    c->uuid_seed = orig->uuid_seed;
    memcpy(c->traceid, orig->traceid, sizeof c->traceid);
    return c;
}

/* Appends and commits messages [from, to); returns their seqs in seqs[]. The messages are
 * kept (not retired) until the caller frees them. */
static void append_n(eng_journal *j, eng_msg **keep, int from, int to) {
    for (int i = from; i < to; i++) {
        eng_msg *m = sample(i);
        cr_assert_eq(eng_journal_append(j, m), 0);
        cr_assert_eq(eng_journal_commit(j, m->seq), 0);
        keep[i] = m;
    }
}

typedef struct got {
    eng_msg *m[4096];
    int n;
} got;

static int collect(void *ud, eng_msg *m) {
    got *g = ud;
    cr_assert_lt(g->n, 4096);
    g->m[g->n++] = m;
    return 0;
}

static void assert_same(const eng_msg *a, const eng_msg *b) {
    cr_assert_str_eq(a->topic, b->topic);
    cr_assert_eq(a->payload_len, b->payload_len);
    cr_assert(!memcmp(a->payload, b->payload, a->payload_len));
    cr_assert_eq(!!a->clientid, !!b->clientid);
    if (a->clientid)
        cr_assert_str_eq(a->clientid, b->clientid);
    cr_assert_eq(a->qos, b->qos);
    cr_assert_eq(a->hops, b->hops);
    cr_assert_eq(a->received_ms, b->received_ms);
    cr_assert_str_eq(a->traceid, b->traceid);
    cr_assert_eq(a->uuid_seed, b->uuid_seed);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_str_eq(a->props.content_type, b->props.content_type);
    cr_assert_eq(!!a->props.response_topic, !!b->props.response_topic);
    cr_assert_eq(a->props.correlation_len, b->props.correlation_len);
    cr_assert(!memcmp(a->props.correlation_data, b->props.correlation_data,
                      a->props.correlation_len));
    cr_assert_eq(a->props.format_indicator, b->props.format_indicator);
    cr_assert_eq(a->props.message_expiry, b->props.message_expiry);
    cr_assert_eq(a->props.nuser, b->props.nuser);
    for (size_t k = 0; k < a->props.nuser; k++) {
        cr_assert_str_eq(a->props.user[k].key, b->props.user[k].key);
        cr_assert_str_eq(a->props.user[k].value, b->props.user[k].value);
    }
    cr_assert_str_eq(b->principal, "cert-1");
}

/* Frees messages without retiring them (as a crash would leave them). */
static void forget(eng_msg **v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i]) {
            atomic_store(&v[i]->keep, 1);
            eng_msg_free(v[i]);
            v[i] = NULL;
        }
}

static void free_got(got *g) {
    for (int i = 0; i < g->n; i++)
        eng_msg_free(g->m[i]);
    g->n = 0;
}

Test(journal, committed_messages_come_back_exactly_as_received) {
    eng_journal *j = open_j(dir, 0);
    eng_msg *v[200] = {0};
    append_n(j, v, 0, 200);
    eng_msg *copy[200];
    for (int i = 0; i < 200; i++)
        copy[i] = clone(v[i], i);
    forget(v, 200);
    eng_journal_close(j);
    j = open_j(dir, 0);
    cr_assert_eq(eng_journal_pending_replay(j), 200);
    static got g;
    cr_assert_eq(eng_journal_replay(j, collect, &g), 0);
    cr_assert_eq(g.n, 200);
    for (int i = 0; i < 200; i++)
        assert_same(copy[i], g.m[i]);
    for (int i = 0; i < 200; i++) {
        eng_msg_free(copy[i]);
    }
    free_got(&g); /* retires them all */
    eng_journal_close(j);
    j = open_j(dir, 0);
    cr_assert_eq(eng_journal_pending_replay(j), 0);
    eng_journal_close(j);
}

Test(journal, retired_messages_are_not_replayed_and_order_is_kept) {
    eng_journal *j = open_j(dir, 0);
    eng_msg *v[300] = {0};
    append_n(j, v, 0, 300);
    uint64_t seq[300];
    for (int i = 0; i < 300; i++)
        seq[i] = v[i]->seq;
    for (int i = 0; i < 300; i++) /* retire two thirds, out of order */
        if (i % 3) {
            eng_msg_free(v[i]);
            v[i] = NULL;
        }
    usleep(50 * 1000); /* let the ticker write DONE records */
    forget(v, 300);
    eng_journal_close(j);
    j = open_j(dir, 0);
    static got g;
    eng_journal_replay(j, collect, &g);
    cr_assert_eq(g.n, 100);
    for (int k = 0; k < 100; k++)
        cr_assert_eq(g.m[k]->seq, seq[3 * k], "replay %d: seq %llu", k,
                     (unsigned long long)g.m[k]->seq);
    free_got(&g);
    eng_journal_close(j);
}

Test(journal, done_pairs_become_the_replays_skip_list) {
    eng_journal *j = open_j(dir, 0);
    eng_msg *v[3] = {0};
    append_n(j, v, 0, 3);
    eng_journal_pair_done(j, v[1], "rule_a", 7, 0);
    eng_journal_pair_done(j, v[1], "rule_b", 2, 1);
    usleep(50 * 1000);
    forget(v, 3);
    eng_journal_close(j);
    j = open_j(dir, 0);
    static got g;
    eng_journal_replay(j, collect, &g);
    cr_assert_eq(g.n, 3);
    cr_assert_eq(g.m[0]->nskip, 0);
    cr_assert_eq(g.m[1]->nskip, 2);
    cr_assert(eng_msg_done_before(g.m[1], "rule_a", 7, 0));
    cr_assert(eng_msg_done_before(g.m[1], "rule_b", 2, 1));
    cr_assert(!eng_msg_done_before(g.m[1], "rule_a", 8, 0)); /* another revision */
    cr_assert(!eng_msg_done_before(g.m[1], "rule_a", 7, 1));
    free_got(&g);
    eng_journal_close(j);
}

/* The one segment file in d/journal (the test writes less than a segment). */
static void seg_file(const char *d, char *out, size_t cap) {
    char jd[300];
    snprintf(jd, sizeof jd, "%s/journal", d);
    DIR *dd = opendir(jd);
    cr_assert(dd);
    struct dirent *de;
    out[0] = '\0';
    off_t best = -1;
    while ((de = readdir(dd)))
        if (strstr(de->d_name, ".seg")) {
            char p[600];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", jd, de->d_name);
            if (stat(p, &st) == 0 && st.st_size > best) {
                best = st.st_size;
                snprintf(out, cap, "%s", p);
            }
        }
    closedir(dd);
    cr_assert(out[0]);
}

/* Where the records of a segment file end: segments are zero-filled ahead of use, so that is
 * after the last nonzero byte, not the file's size. */
static off_t data_end(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    off_t end = 0, pos = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        pos++;
        if (c)
            end = pos;
    }
    fclose(f);
    return end;
}

/* A torn write at `at`: everything from there to `end` never reached the disk (zeros, as the
 * preallocated file held before), or, with truncate, the file ends there. */
static void tear(const char *path, off_t at, off_t end, int truncate_it) {
    if (truncate_it) {
        cr_assert_eq(truncate(path, at), 0);
        return;
    }
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    static const char zeros[4096];
    for (off_t o = at; o < end;) {
        size_t n = end - o < (off_t)sizeof zeros ? (size_t)(end - o) : sizeof zeros;
        cr_assert_eq(pwrite(fd, zeros, n, o), (ssize_t)n);
        o += (off_t)n;
    }
    close(fd);
}

static void copy_dir(const char *from, const char *to) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
    cr_assert_eq(system(cmd), 0);
}

/* Replays d and returns how many messages came back, checking each against the originals by
 * seq and that they come in seq order. */
static int replay_count(const char *d, eng_msg **orig, int n) {
    eng_journal *j = open_j(d, 0);
    static got g;
    g.n = 0;
    eng_journal_replay(j, collect, &g);
    uint64_t last = 0;
    for (int i = 0; i < g.n; i++) {
        cr_assert_gt(g.m[i]->seq, last);
        last = g.m[i]->seq;
        int found = 0;
        for (int k = 0; k < n; k++)
            if (orig[k]->seq == g.m[i]->seq) {
                assert_same(orig[k], g.m[i]);
                found = 1;
            }
        cr_assert(found, "replayed a message that was never written");
    }
    int c = g.n;
    for (int i = 0; i < g.n; i++) /* keep them: the copy is thrown away anyway */
        atomic_store(&g.m[i]->keep, 1);
    free_got(&g);
    eng_journal_close(j);
    return c;
}

/* Waits (up to 30 s, for a loaded machine) until the journal's background thread has made
 * the first segment ready, zero-filled to 1 MiB, so that the records go to a preallocated
 * file. Returns how many segment files there are. */
static int wait_first_segment(const char *d) {
    char jd[600];
    snprintf(jd, sizeof jd, "%s/journal", d);
    for (int tries = 0; tries < 3000; tries++) {
        int nseg = 0, ready = 0;
        DIR *dd = opendir(jd);
        struct dirent *de;
        while (dd && (de = readdir(dd)))
            if (strstr(de->d_name, ".seg")) {
                char p[900];
                struct stat st;
                snprintf(p, sizeof p, "%s/%s", jd, de->d_name);
                nseg++;
                ready |= stat(p, &st) == 0 && st.st_size == 1 << 20;
            }
        if (dd)
            closedir(dd);
        if (ready) {
            usleep(20 * 1000); /* the fill is synced before the file is handed over */
            return nseg;
        }
        usleep(10 * 1000);
    }
    cr_assert_fail("the journal made no segment ready in 30 s");
    return 0;
}

Test(journal, a_torn_tail_at_every_byte_keeps_every_complete_record) {
    eng_journal *j = open_j(dir, 0);
    cr_assert_eq(wait_first_segment(dir), 1);
    eng_msg *v[40] = {0};
    append_n(j, v, 0, 40);
    eng_msg *copy[40];
    for (int i = 0; i < 40; i++)
        copy[i] = clone(v[i], i);
    forget(v, 40);
    eng_journal_close(j);
    char seg[600];
    seg_file(dir, seg, sizeof seg);
    off_t end = data_end(seg);
    cr_assert_gt(end, 400);
    struct stat st;
    cr_assert_eq(stat(seg, &st), 0);
    cr_assert_eq(st.st_size, 1 << 20, "the segment was not preallocated (%lld bytes)",
                 (long long)st.st_size);
    /* the last three records span roughly the last 3/40 of the data; tear at every byte of
     * the last 400 (more than three records), as zeros and as a truncated file */
    char work[300];
    snprintf(work, sizeof work, "%s-work", dir);
    for (int trunc = 0; trunc < 2; trunc++) {
        int prev = 40;
        for (off_t cut = end; cut >= end - 400; cut--) {
            copy_dir(dir, work);
            char wseg[700];
            snprintf(wseg, sizeof wseg, "%s/journal/%s", work, strrchr(seg, '/') + 1);
            tear(wseg, cut, end, trunc);
            int n = replay_count(work, copy, 40);
            /* a tear can only lose the records it reaches: monotone, never more than ~5 */
            cr_assert_leq(n, prev);
            cr_assert_geq(n, 34, "tear at %lld (%s, data end %lld) lost %d records",
                          (long long)cut, trunc ? "truncated" : "zeroed", (long long)end,
                          40 - n);
            if (cut == end)
                cr_assert_eq(n, 40);
            prev = n;
        }
    }
    rm_rf(work);
    for (int i = 0; i < 40; i++) {
        eng_msg_free(copy[i]);
    }
}

Test(journal, a_flipped_bit_costs_at_most_the_damaged_record) {
    eng_journal *j = open_j(dir, 0);
    cr_assert_eq(wait_first_segment(dir), 1);
    eng_msg *v[60] = {0};
    append_n(j, v, 0, 60);
    eng_msg *copy[60];
    for (int i = 0; i < 60; i++)
        copy[i] = clone(v[i], i);
    forget(v, 60);
    eng_journal_close(j);
    char seg[600];
    seg_file(dir, seg, sizeof seg);
    off_t end = data_end(seg);
    char work[300];
    snprintf(work, sizeof work, "%s-work", dir);
    srand(7);
    for (int t = 0; t < 120; t++) {
        copy_dir(dir, work);
        char wseg[700];
        snprintf(wseg, sizeof wseg, "%s/journal/%s", work, strrchr(seg, '/') + 1);
        int fd = open(wseg, O_RDWR);
        cr_assert(fd >= 0);
        off_t at = t < 8 ? t : rand() % end; /* headers of the first record too */
        unsigned char b;
        cr_assert_eq(pread(fd, &b, 1, at), 1);
        b ^= (unsigned char)(1u << (rand() % 8));
        cr_assert_eq(pwrite(fd, &b, 1, at), 1);
        close(fd);
        int n = replay_count(work, copy, 60);
        cr_assert_geq(n, 59, "a bit flip at %lld lost %d records", (long long)at, 60 - n);
    }
    rm_rf(work);
    for (int i = 0; i < 60; i++) {
        eng_msg_free(copy[i]);
    }
}

Test(journal, full_until_finished_segments_are_dropped) {
    eng_journal *j = open_j(dir, 64 * 1024); /* segments of 64 KiB */
    static eng_msg *v[4000];
    int n = 0;
    while (!eng_journal_full(j) && n < 4000) {
        append_n(j, v, n, n + 1);
        n++;
    }
    cr_assert(eng_journal_full(j), "never full after %d messages", n);
    for (int i = 0; i < n; i++)
        eng_msg_free(v[i]); /* finished */
    for (int t = 0; t < 200 && eng_journal_full(j); t++)
        usleep(10 * 1000);
    cr_assert(!eng_journal_full(j), "still full once every message is finished");
    eng_journal_stats st;
    eng_journal_stats_get(j, &st);
    cr_assert_eq(st.unfinished, 0);
    eng_journal_close(j);
}

Test(journal, a_journal_that_cannot_write_refuses_commits_and_recovers) {
    signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG instead */
    eng_journal *j = open_j(dir, 0);
    eng_msg *v[2000] = {0};
    append_n(j, v, 0, 10);
    struct rlimit rl = {.rlim_cur = 8192, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    int failed_at = -1;
    for (int i = 10; i < 2000; i++) {
        eng_msg *m = sample(i);
        cr_assert_eq(eng_journal_append(j, m), 0);
        if (eng_journal_commit(j, m->seq) != 0) {
            failed_at = i;
            eng_msg_free(m); /* never acknowledged: the broker would send it again */
            break;
        }
        v[i] = m;
    }
    cr_assert_geq(failed_at, 10, "commits never failed past the file size limit");
    cr_assert(eng_journal_failed(j));
    rl.rlim_cur = RLIM_INFINITY;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    for (int t = 0; t < 300 && eng_journal_failed(j); t++)
        usleep(10 * 1000);
    cr_assert(!eng_journal_failed(j), "the journal did not recover once it could write");
    eng_msg *after = sample(5000);
    cr_assert_eq(eng_journal_append(j, after), 0);
    cr_assert_eq(eng_journal_commit(j, after->seq), 0);
    uint64_t after_seq = after->seq;
    forget(&after, 1);
    eng_msg *copy[2000];
    int nc = 0;
    for (int i = 0; i < failed_at; i++)
        copy[nc] = clone(v[i], i), nc++;
    forget(v, failed_at);
    eng_journal_close(j);
    /* every committed message and the one after recovery come back; the refused one does not */
    j = open_j(dir, 0);
    static got g;
    eng_journal_replay(j, collect, &g);
    cr_assert_eq(g.n, failed_at + 1);
    for (int i = 0; i < failed_at; i++)
        assert_same(copy[i], g.m[i]);
    cr_assert_eq(g.m[failed_at]->seq, after_seq);
    free_got(&g);
    for (int i = 0; i < nc; i++) {
        eng_msg_free(copy[i]);
    }
    eng_journal_close(j);
}

Test(journal, kept_messages_stay_for_the_next_start) {
    eng_journal *j = open_j(dir, 0);
    eng_msg *v[5] = {0};
    append_n(j, v, 0, 5);
    atomic_store(&v[2]->keep, 1); /* e.g. a dead letter the store refused */
    for (int i = 0; i < 5; i++)
        eng_msg_free(v[i]);
    usleep(50 * 1000);
    eng_journal_close(j);
    j = open_j(dir, 0);
    static got g;
    eng_journal_replay(j, collect, &g);
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.m[0]->topic, "dev/2/t");
    free_got(&g);
    eng_journal_close(j);
}

Test(journal, unfinished_messages_of_recovered_segments_survive_later_rollovers) {
    /* small segments: the first generation spans several, and the second rolls over more */
    eng_journal *j = open_j(dir, 512 * 1024);
    static eng_msg *v[3000];
    append_n(j, v, 0, 1000);
    forget(v, 1000); /* a crash: nothing finished */
    eng_journal_close(j);
    j = open_j(dir, 512 * 1024);
    cr_assert_eq(eng_journal_pending_replay(j), 1000);
    /* killed again before the replay got anywhere; meanwhile new traffic fills segments and
     * the background thread drops the finished ones */
    append_n(j, v, 1000, 3000);
    for (int i = 1000; i < 3000; i++) {
        eng_msg_free(v[i]);
        v[i] = NULL;
    }
    usleep(200 * 1000);
    eng_journal_close(j);
    j = open_j(dir, 512 * 1024);
    static got g;
    eng_journal_replay(j, collect, &g);
    cr_assert_eq(g.n, 1000, "%d of the 1000 unfinished messages survived", g.n);
    free_got(&g);
    eng_journal_close(j);
}

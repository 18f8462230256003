/*
 * test_dlq.c -- the dead-letter store: durability across reopen, resolve and purge, the size
 * bound, torn writes, pagination and concurrent appends.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "action.h"
#include "test_host.h"

static char dir[64];
static eng_host host;
static eng_error err; /* what a failed call says (the file store fails only on OOM) */

static int rm(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }

static void setup(void) {
    host = act_test_host();
    snprintf(dir, sizeof dir, "/tmp/sluice-dlq-XXXXXX");
    cr_assert(mkdtemp(dir));
}
static void teardown(void) { nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS); }

static act_dlq *open_store(long long max_bytes) {
    eng_error e;
    act_dlq *d = act_dlq_open(dir, max_bytes, 3600, &host, &e);
    cr_assert(d, "%s", e.message);
    return d;
}

static uint64_t add(act_dlq *d, const char *rule, const char *topic, const char *payload) {
    eng_msg *m = act_test_msg(topic, payload, NULL, ENG_SRC_HTTP);
    const char *errs[] = {"boom"};
    int64_t at[] = {(int64_t)time(NULL) * 1000};
    act_fields fs = {.n = 1, .f = {"field-0"}, .len = {7}};
    act_dlq_record r = {.rule = rule, .rule_revision = 1, .action_index = 0, .action = "http",
                        .in = m, .output = payload, .output_len = strlen(payload),
                        .fields = &fs, .errors = errs, .error_at = at, .nerrors = 1,
                        .attempts = 1};
    uint64_t id = 0;
    cr_assert_eq(act_dlq_append(d, &r, &id), 0);
    eng_msg_free(m);
    return id;
}

static int count(act_dlq *d, const char *rule) {
    char *s = act_dlq_list_json(d, rule, 0, 1000, 0, &err);
    cJSON *o = cJSON_Parse(s);
    free(s);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, "records"));
    cJSON_Delete(o);
    return n;
}

TestSuite(dlq, .init = setup, .fini = teardown);

Test(dlq, records_survive_reopen_and_resolved_ones_stay_gone) {
    act_dlq *d = open_store(1 << 20);
    uint64_t a = add(d, "r1", "t/1", "one");
    uint64_t b = add(d, "r1", "t/2", "two");
    add(d, "r2", "t/3", "three");
    cr_assert(a && b && b > a);
    cr_assert_eq(act_dlq_resolve(d, a), 0);
    act_dlq_close(d);
    d = open_store(1 << 20);
    cr_expect_eq(count(d, NULL), 2);
    cr_expect_eq(count(d, "r1"), 1);
    uint64_t c = add(d, "r1", "t/4", "four");
    cr_expect(c > b, "ids keep increasing after a restart");
    act_dlq_close(d);
}

Test(dlq, purge_by_rule_and_all) {
    act_dlq *d = open_store(1 << 20);
    for (int i = 0; i < 5; i++)
        add(d, "r1", "t", "x");
    add(d, "r2", "t", "y");
    cr_expect_eq(act_dlq_purge(d, "r1", &err), 5);
    cr_expect_eq(count(d, NULL), 1);
    act_dlq_close(d);
    d = open_store(1 << 20);
    cr_expect_eq(count(d, NULL), 1, "the purge is durable");
    cr_expect_eq(act_dlq_purge(d, NULL, &err), 1);
    cr_expect_eq(count(d, NULL), 0);
    act_dlq_close(d);
}

Test(dlq, the_size_bound_evicts_oldest_and_counts_them) {
    act_dlq *d = open_store(8192);
    for (int i = 0; i < 200; i++)
        add(d, "r1", "t/evict", "some payload that takes room");
    act_dlq_stats st;
    act_dlq_stats_get(d, &st);
    cr_expect(st.bytes <= 8192 + 4096, "bytes %llu", (unsigned long long)st.bytes);
    cr_expect(st.evicted > 0);
    cr_expect_eq(st.records + st.evicted, 200);
    cr_expect_eq((uint64_t)count(d, NULL), st.records);
    act_dlq_close(d);
}

Test(dlq, the_age_bound_evicts_old_records) {
    eng_error e;
    act_dlq *d = act_dlq_open(dir, 1 << 20, 1, &host, &e);
    cr_assert(d);
    add(d, "r1", "t", "old");
    usleep(1100 * 1000);
    act_dlq_expire(d);
    act_dlq_stats st;
    act_dlq_stats_get(d, &st);
    cr_expect_eq(st.records, 0);
    cr_expect_eq(st.evicted, 1);
    add(d, "r1", "t", "new");
    cr_expect_eq(count(d, NULL), 1, "appending after an eviction starts a new segment");
    act_dlq_close(d);
}

Test(dlq, a_torn_last_line_is_cut_at_start) {
    act_dlq *d = open_store(1 << 20);
    add(d, "r1", "t", "whole");
    act_dlq_close(d);
    char path[200];
    snprintf(path, sizeof path, "%s/deadletter/seg-%016x.jsonl", dir, 1);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "{\"id\":\"9\",\"ru", 13), 13);
    close(fd);
    d = open_store(1 << 20);
    cr_expect_eq(count(d, NULL), 1);
    add(d, "r1", "t", "after");
    act_dlq_close(d);
    d = open_store(1 << 20);
    cr_expect_eq(count(d, NULL), 2, "the record after the cut is readable");
    act_dlq_close(d);
}

Test(dlq, list_pages_with_next_token) {
    act_dlq *d = open_store(1 << 20);
    for (int i = 0; i < 7; i++)
        add(d, "r1", "t", "x");
    char *s = act_dlq_list_json(d, NULL, 0, 5, 0, &err);
    cJSON *o = cJSON_Parse(s);
    free(s);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "records")), 5);
    const char *tok = cJSON_GetObjectItem(o, "nextToken")->valuestring;
    s = act_dlq_list_json(d, NULL, 0, 5, strtoull(tok, NULL, 10), &err);
    cJSON *o2 = cJSON_Parse(s);
    free(s);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o2, "records")), 2);
    cr_expect_null(cJSON_GetObjectItem(o2, "nextToken"));
    cJSON_Delete(o);
    cJSON_Delete(o2);
    act_dlq_close(d);
}

static act_dlq *shared;
static void *appender(void *arg) {
    for (int i = 0; i < 100; i++)
        add(shared, "r1", "t/c", "concurrent");
    return NULL;
}

Test(dlq, concurrent_appends_are_all_stored_with_distinct_ids) {
    shared = open_store(1 << 24);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, appender, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int n1 = count(shared, NULL);
    cr_expect_eq(n1, 400, "%d", n1);
    act_dlq_close(shared);
    shared = open_store(1 << 24);
    cr_expect_eq(count(shared, NULL), 400);
    act_dlq_close(shared);
}

/* Dead letters carry message payloads: only the service's user may read them, whatever the
 * umask (0 here, so the mode is the store's own choice). */
Test(dlq, segments_are_created_0600_in_a_0700_directory) {
    mode_t old = umask(0);
    act_dlq *d = open_store(1 << 20);
    add(d, "r1", "t", "secret");
    act_dlq_close(d);
    umask(old);
    char path[128];
    snprintf(path, sizeof path, "%s/deadletter", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "directory mode %o", st.st_mode & 0777);
    DIR *dd = opendir(path);
    cr_assert(dd);
    struct dirent *de;
    int segments = 0;
    while ((de = readdir(dd))) {
        if (strncmp(de->d_name, "seg-", 4))
            continue;
        char seg[512];
        snprintf(seg, sizeof seg, "%s/%s", path, de->d_name);
        cr_assert_eq(stat(seg, &st), 0);
        cr_expect_eq(st.st_mode & 0777, 0600, "%s mode %o", de->d_name, st.st_mode & 0777);
        segments++;
    }
    closedir(dd);
    cr_expect_geq(segments, 1);
}

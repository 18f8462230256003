/*
 * test_store.c -- the SQLite shadow store (engine/shadow/store_sqlite.c) and the service's
 * concurrency over it: persistence across close and reopen, compare-and-set, racing updaters
 * on one shadow (in one service, and in two services sharing the file as a fleet would), many
 * shadows in parallel, reads right after acknowledgements, acknowledged updates surviving a
 * kill -9, list paging, and clear errors for files that cannot serve.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shadow_test.h"

static shd_fixture fx;

static void setup(void) {
    memset(&fx, 0, sizeof fx);
    shd_open(&fx, 1);
}
static void teardown(void) { shd_close(&fx, 1); }

TestSuite(shadow_store, .init = setup, .fini = teardown);

/* The version in a reply body ("version":N). */
static long long version_of(const char *body) {
    const char *v = strstr(body, "\"version\":");
    cr_assert_not_null(v, "%s", body);
    return strtoll(v + 10, NULL, 10);
}

static int update(eng_shadow *svc, const char *thing, const char *shadow, const char *payload,
                  long long *version) {
    eng_shadow_req r = {.op = ENG_SHADOW_UPDATE, .transport = ENG_SHADOW_REST, .thing = thing,
                        .thing_len = strlen(thing), .shadow = shadow,
                        .shadow_len = shadow ? strlen(shadow) : 0, .payload = payload,
                        .payload_len = strlen(payload)};
    eng_shadow_reply out;
    int st = eng_shadow_handle(svc, &r, &out);
    if (st == 200 && version)
        *version = version_of(out.body);
    eng_shadow_reply_deinit(&out);
    return st;
}

/* GET body (caller frees) or NULL on 404. */
static char *get(eng_shadow *svc, const char *thing, const char *shadow) {
    char *doc = NULL;
    int rc = eng_shadow_get_document(svc, thing, shadow, &doc, NULL);
    cr_assert_neq(rc, -1);
    return doc;
}

Test(shadow_store, file_mode_and_persistence_across_reopen) {
    long long v;
    cr_assert_eq(update(fx.svc, "t1", NULL, "{\"state\":{\"reported\":{\"n\":12345678901234567890,"
                                            "\"f\":1.10}}}", &v),
                 200);
    cr_assert_eq(update(fx.svc, "t1", "cfg", "{\"state\":{\"desired\":{\"x\":[1,{\"y\":\"z\"}]}}}",
                        &v),
                 200);
    cr_assert_eq(update(fx.svc, "t1", "cfg", "{\"state\":{\"desired\":{\"w\":true}}}", &v), 200);
    cr_assert_eq(update(fx.svc, "t2", NULL, "{\"state\":{}}", &v), 200);
    eng_shadow_reply out;
    eng_shadow_req del = {.op = ENG_SHADOW_DELETE, .transport = ENG_SHADOW_REST, .thing = "t2",
                          .thing_len = 2};
    cr_assert_eq(eng_shadow_handle(fx.svc, &del, &out), 200);
    eng_shadow_reply_deinit(&out);
    /* the database and its WAL are the owner's only */
    char path[128];
    struct stat sb;
    snprintf(path, sizeof path, "%s/shadows.db", fx.dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600, "%o", sb.st_mode & 0777);
    snprintf(path, sizeof path, "%s/shadows.db-wal", fx.dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600, "%o", sb.st_mode & 0777);
    char *before1 = get(fx.svc, "t1", NULL), *before2 = get(fx.svc, "t1", "cfg");
    shd_close(&fx, 0);
    shd_open(&fx, 1);
    char *after1 = get(fx.svc, "t1", NULL), *after2 = get(fx.svc, "t1", "cfg");
    cr_assert_not_null(after1);
    cr_assert_not_null(after2);
    cr_expect_str_eq(after1, before1);
    cr_expect_str_eq(after2, before2);
    cr_expect(strstr(after1, "\"n\":12345678901234567890,\"f\":1.10") != NULL, "%s", after1);
    cr_expect(strstr(after2, "\"version\":2,") != NULL, "%s", after2);
    /* the deleted shadow stays deleted, and its version carries on */
    cr_expect_null(get(fx.svc, "t2", NULL));
    cr_assert_eq(update(fx.svc, "t2", NULL, "{\"state\":{}}", &v), 200);
    cr_expect_eq(v, 2);
    free(before1);
    free(before2);
    free(after1);
    free(after2);
}

Test(shadow_store, compare_and_set_on_the_record_revision) {
    eng_error e;
    eng_shadow_store *st = eng_shadow_sqlite_open(fx.dir, NULL, &e);
    cr_assert_not_null(st, "%s", e.message);
    eng_shadow_record rec = {
        .version = 1, .updated_at = 10, .doc = "{\"state\":{}}", .doc_len = 12};
    eng_shadow_record got;
    cr_expect_eq(st->vt->get(st, "k", "", &got, &e), ENG_SHADOW_NOT_FOUND);
    cr_expect_eq(st->vt->put(st, "k", "", 5, &rec, &e), ENG_SHADOW_CONFLICT); /* no record */
    cr_assert_eq(st->vt->put(st, "k", "", 0, &rec, &e), 0, "%s", e.message);
    cr_expect_eq(st->vt->put(st, "k", "", 0, &rec, &e), ENG_SHADOW_CONFLICT); /* exists now */
    cr_assert_eq(st->vt->get(st, "k", "", &got, &e), 0);
    uint64_t rev = got.rev;
    cr_expect_eq(got.version, 1);
    cr_expect_str_eq(got.doc, "{\"state\":{}}");
    eng_shadow_record_deinit(&got);
    /* a tombstone is a record too: same version, no document */
    eng_shadow_record tomb = {.version = 1, .updated_at = 11};
    cr_assert_eq(st->vt->put(st, "k", "", rev, &tomb, &e), 0);
    cr_expect_eq(st->vt->put(st, "k", "", rev, &rec, &e), ENG_SHADOW_CONFLICT); /* stale rev */
    cr_assert_eq(st->vt->get(st, "k", "", &got, &e), 0);
    cr_expect_gt(got.rev, rev);
    cr_expect_null(got.doc);
    cr_expect_eq(got.updated_at, 11);
    eng_shadow_record_deinit(&got);
    /* purge forgets tombstones deleted before the bound, not documents */
    cr_assert_eq(st->vt->put(st, "live", "", 0, &rec, &e), 0);
    cr_assert_eq(st->vt->purge(st, 11, &e), 0);
    cr_expect_eq(st->vt->get(st, "k", "", &got, &e), 0);
    eng_shadow_record_deinit(&got);
    cr_assert_eq(st->vt->purge(st, 12, &e), 0);
    cr_expect_eq(st->vt->get(st, "k", "", &got, &e), ENG_SHADOW_NOT_FOUND);
    cr_expect_eq(st->vt->get(st, "live", "", &got, &e), 0);
    eng_shadow_record_deinit(&got);
    st->vt->close(st);
}

Test(shadow_store, the_wal_is_checkpointed_and_stays_bounded) {
    /* Checkpoints run on their own thread; without them the WAL would grow by a page or more
     * per commit, without end (10 000 commits: 40 MB and more). */
    shd_close(&fx, 0);
    shd_open(&fx, 0);
    for (int i = 0; i < 10000; i++) {
        char thing[16], p[64];
        snprintf(thing, sizeof thing, "w%d", i % 50);
        snprintf(p, sizeof p, "{\"state\":{\"reported\":{\"i\":%d}}}", i);
        cr_assert_eq(update(fx.svc, thing, NULL, p, NULL), 200);
    }
    char db[128], wal[128];
    snprintf(db, sizeof db, "%s/shadows.db", fx.dir);
    snprintf(wal, sizeof wal, "%s/shadows.db-wal", fx.dir);
    struct stat sdb, swal;
    for (int tries = 0; tries < 100; tries++) { /* the checkpointer may still be copying */
        cr_assert_eq(stat(db, &sdb), 0);
        if (sdb.st_size > 4096)
            break;
        usleep(50000);
    }
    cr_assert_eq(stat(wal, &swal), 0);
    cr_expect_gt(sdb.st_size, 4096, "no checkpoint reached the database");
    cr_expect_lt(swal.st_size, 16 << 20, "WAL of %lld bytes", (long long)swal.st_size);
}

/* {====== racing updaters */

typedef struct racer {
    eng_shadow *svc;
    const char *thing, *shadow, *key;
    int n;
    long long *versions;      /* the version each accepted update got */
    int failures;
} racer;

static void *race(void *arg) {
    racer *r = arg;
    for (int i = 0; i < r->n; i++) {
        char p[96];
        snprintf(p, sizeof p, "{\"state\":{\"reported\":{\"%s\":%d}}}", r->key, i + 1);
        if (update(r->svc, r->thing, r->shadow, p, &r->versions[i]) != 200)
            r->failures++;
    }
    return NULL;
}

/* Two updaters, 1000 updates each, on one shadow: every update is accepted with a version of
 * its own (1..2000, none twice: a lost update would reuse one), and both last values stay. */
static void race_two(eng_shadow *a, eng_shadow *b) {
    enum { N = 1000 };
    long long va[N], vb[N];
    racer r[2] = {{.svc = a, .thing = "hot", .shadow = "s", .key = "a", .n = N, .versions = va},
                  {.svc = b, .thing = "hot", .shadow = "s", .key = "b", .n = N, .versions = vb}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, race, &r[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(r[0].failures + r[1].failures, 0);
    static char seen[2 * N + 1];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        long long v[2] = {va[i], vb[i]};
        for (int k = 0; k < 2; k++) {
            cr_assert(v[k] >= 1 && v[k] <= 2 * N, "version %lld", v[k]);
            cr_assert(!seen[v[k]], "version %lld given twice: a lost update", v[k]);
            seen[v[k]] = 1;
        }
        if (i)
            cr_assert_gt(va[i], va[i - 1]);
    }
    char *doc = get(a, "hot", "s");
    cJSON *j = cJSON_Parse(doc);
    cr_expect_eq(cJSON_GetObjectItem(j, "version")->valueint, 2 * N);
    cJSON *rep = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "state"), "reported");
    cr_expect_eq(cJSON_GetObjectItem(rep, "a")->valueint, N);
    cr_expect_eq(cJSON_GetObjectItem(rep, "b")->valueint, N);
    cJSON_Delete(j);
    free(doc);
}

Test(shadow_store, two_threads_race_on_one_shadow) { race_two(fx.svc, fx.svc); }

Test(shadow_store, two_services_sharing_the_file_race_on_one_shadow) {
    /* as two instances of a fleet would: each its own store and locks, only the
     * compare-and-set between them */
    shd_fixture other = {.now = fx.now};
    memcpy(other.dir, fx.dir, sizeof fx.dir);
    shd_open(&other, 1);
    race_two(fx.svc, other.svc);
    shd_close(&other, 0);
}

Test(shadow_store, many_shadows_in_parallel) {
    enum { T = 8, N = 100 };
    static long long versions[T][N];
    racer r[T];
    pthread_t t[T];
    char things[T][16];
    for (int i = 0; i < T; i++) {
        snprintf(things[i], sizeof things[i], "dev%d", i);
        r[i] = (racer){.svc = fx.svc, .thing = things[i], .shadow = i % 2 ? "n" : NULL,
                       .key = "v", .n = N, .versions = versions[i]};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < T; i++) {
        cr_expect_eq(r[i].failures, 0);
        for (int k = 0; k < N; k++)
            cr_expect_eq(versions[i][k], k + 1, "%s: update %d got version %lld", things[i], k,
                         versions[i][k]);
        char *doc = get(fx.svc, things[i], r[i].shadow);
        cr_expect(strstr(doc, "\"reported\":{\"v\":100}") != NULL, "%s", doc);
        free(doc);
    }
}

typedef struct reader_arg {
    eng_shadow *svc;
    int id, n, stale;
} reader_arg;

static void *write_then_read(void *arg) {
    reader_arg *ra = arg;
    char thing[16];
    snprintf(thing, sizeof thing, "rr%d", ra->id);
    for (int i = 1; i <= ra->n; i++) {
        char p[64], want[32];
        snprintf(p, sizeof p, "{\"state\":{\"reported\":{\"i\":%d}}}", i);
        if (update(ra->svc, thing, NULL, p, NULL) != 200) {
            ra->stale++;
            continue;
        }
        char *doc = NULL;
        eng_shadow_get_document(ra->svc, thing, NULL, &doc, NULL);
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        if (!doc || !strstr(doc, want))
            ra->stale++;
        free(doc);
    }
    return NULL;
}

Test(shadow_store, a_read_after_the_acknowledgement_sees_the_update) {
    enum { T = 6 }; /* more threads than read connections: the pool is shared */
    reader_arg ra[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        ra[i] = (reader_arg){.svc = fx.svc, .id = i, .n = 100};
        pthread_create(&t[i], NULL, write_then_read, &ra[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(ra[i].stale, 0, "thread %d read %d stale documents", i, ra[i].stale);
    }
}

/* }====== */

Test(shadow_store, acknowledged_updates_survive_kill_9) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    shd_close(&fx, 0); /* the child opens its own */
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        shd_open(&fx, 1);
        for (long long i = 1;; i++) {
            char p[64];
            long long v;
            snprintf(p, sizeof p, "{\"state\":{\"reported\":{\"i\":%lld}}}", i);
            if (update(fx.svc, "k9", NULL, p, &v) != 200)
                _exit(3);
            if (write(fds[1], &v, sizeof v) != sizeof v) /* acknowledged */
                _exit(4);
        }
    }
    close(fds[1]);
    long long acked = 0, v;
    while (acked < 300 && read(fds[0], &v, sizeof v) == sizeof v)
        acked = v;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    while (read(fds[0], &v, sizeof v) == sizeof v) /* acks sent before the kill */
        acked = v;
    close(fds[0]);
    cr_assert(WIFSIGNALED(status), "the writer ended by itself: %d", status);
    cr_assert_geq(acked, 300);
    shd_open(&fx, 1);
    char *doc = get(fx.svc, "k9", NULL);
    cr_assert_not_null(doc);
    cJSON *j = cJSON_Parse(doc);
    long long stored = (long long)cJSON_GetObjectItem(j, "version")->valuedouble;
    cr_expect_geq(stored, acked, "acknowledged version %lld, stored %lld", acked, stored);
    cJSON_Delete(j);
    free(doc);
}

/* {====== list */

static int list(const char *thing, const char *token, const char *size, eng_shadow_reply *out) {
    eng_shadow_reply_deinit(out);
    return eng_shadow_list(fx.svc, thing, strlen(thing), token, size, out);
}

static cJSON *results(eng_shadow_reply *out, char *token, size_t cap) {
    cJSON *j = cJSON_Parse(out->body);
    cr_assert_not_null(j, "%s", out->body);
    cJSON *t = cJSON_GetObjectItem(j, "nextToken");
    token[0] = '\0';
    if (t)
        snprintf(token, cap, "%s", t->valuestring);
    cr_expect_not_null(cJSON_GetObjectItem(j, "timestamp"));
    return j;
}

Test(shadow_store, list_named_shadows_pages_through_names) {
    shd_close(&fx, 0);
    shd_open(&fx, 0); /* 60 creates: no need to fsync each */
    long long v;
    for (int i = 0; i < 60; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%02d", 59 - i);
        cr_assert_eq(update(fx.svc, "lister", name, "{\"state\":{}}", &v), 200);
    }
    cr_assert_eq(update(fx.svc, "lister", NULL, "{\"state\":{}}", &v), 200); /* classic */
    cr_assert_eq(update(fx.svc, "lister", "$gone", "{\"state\":{}}", &v), 200);
    eng_shadow_req del = {.op = ENG_SHADOW_DELETE, .transport = ENG_SHADOW_REST, .thing = "lister",
                          .thing_len = 6, .shadow = "$gone", .shadow_len = 5};
    eng_shadow_reply out = {0};
    cr_assert_eq(eng_shadow_handle(fx.svc, &del, &out), 200);
    cr_assert_eq(update(fx.svc, "other", "z", "{\"state\":{}}", &v), 200);
    /* default page: 25, in byte order, the classic and deleted shadows left out */
    char token[200];
    cr_assert_eq(list("lister", NULL, NULL, &out), 200, "%s", out.body);
    cr_expect_eq(out.nmsgs, 0);
    int seen = 0;
    for (int page = 0;; page++) {
        cJSON *j = results(&out, token, sizeof token);
        cJSON *r = cJSON_GetObjectItem(j, "results");
        int n = cJSON_GetArraySize(r);
        cr_expect_eq(n, page < 2 ? 25 : 10, "page %d", page);
        for (int i = 0; i < n; i++) {
            char want[16];
            snprintf(want, sizeof want, "s%02d", seen++);
            cr_expect_str_eq(cJSON_GetArrayItem(r, i)->valuestring, want);
        }
        cJSON_Delete(j);
        if (!token[0])
            break;
        cr_assert_lt(page, 3);
        cr_assert_eq(list("lister", token, NULL, &out), 200, "%s", out.body);
    }
    cr_expect_eq(seen, 60);
    /* pageSize, and a page that ends exactly at the last name has no nextToken */
    cr_assert_eq(list("lister", NULL, "100", &out), 200);
    cJSON *j = results(&out, token, sizeof token);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")), 60);
    cr_expect_str_eq(token, "");
    cJSON_Delete(j);
    cr_assert_eq(list("lister", NULL, "60", &out), 200);
    j = results(&out, token, sizeof token);
    cr_expect_str_eq(token, "");
    cJSON_Delete(j);
    cr_assert_eq(list("lister", NULL, "1", &out), 200);
    cr_expect(strstr(out.body, "{\"results\":[\"s00\"],\"nextToken\":\"") == out.body, "%s",
              out.body);
    /* a thing without named shadows, or without any shadow: an empty list */
    cr_assert_eq(list("nobody", NULL, NULL, &out), 200);
    cr_expect(!strncmp(out.body, "{\"results\":[],\"timestamp\":", 26), "%s", out.body);
    /* bad input */
    static const struct {
        const char *thing, *token, *size, *msg;
    } bad[] = {
        {"lister", NULL, "0", "Invalid pageSize: expected an integer from 1 to 100"},
        {"lister", NULL, "101", "Invalid pageSize: expected an integer from 1 to 100"},
        {"lister", NULL, "abc", "Invalid pageSize: expected an integer from 1 to 100"},
        {"lister", NULL, "", "Invalid pageSize: expected an integer from 1 to 100"},
        {"lister", NULL, "-5", "Invalid pageSize: expected an integer from 1 to 100"},
        {"lister", "zz", NULL, "Invalid nextToken"},
        {"lister", "7", NULL, "Invalid nextToken"},
        {"lister", "2f", NULL, "Invalid nextToken"}, /* "/" is no shadow name */
        {"a b", NULL, NULL, "Invalid thing name: expected 1 to 128 characters of [a-zA-Z0-9:_-]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(list(bad[i].thing, bad[i].token, bad[i].size, &out), 400);
        cr_expect_str_eq(out.error_type, "InvalidRequestException");
        char body[160];
        snprintf(body, sizeof body, "{\"message\":\"%s\"}", bad[i].msg);
        cr_expect_str_eq(out.body, body);
    }
    eng_shadow_reply_deinit(&out);
}

/* }====== */

Test(shadow_store, a_database_locked_by_someone_else_is_a_503) {
    /* another process holds the write lock past the busy timeout (5 s) */
    long long v;
    cr_assert_eq(update(fx.svc, "locked", NULL, "{\"state\":{\"reported\":{\"a\":1}}}", &v), 200);
    char path[128];
    snprintf(path, sizeof path, "%s/shadows.db", fx.dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    eng_shadow_req r = {.op = ENG_SHADOW_UPDATE, .transport = ENG_SHADOW_MQTT, .thing = "locked",
                        .thing_len = 6, .payload = "{\"state\":{\"reported\":{\"a\":2}}}",
                        .payload_len = 30};
    eng_shadow_reply out;
    cr_expect_eq(eng_shadow_handle(fx.svc, &r, &out), 503);
    cr_expect_str_eq(out.error_type, "ServiceUnavailableException");
    cr_expect_str_eq(out.body, "{\"message\":\"Service unavailable\"}");
    cr_assert_eq(out.nmsgs, 1);
    cr_expect_str_eq(out.msgs[0].topic, "$aws/things/locked/shadow/update/rejected");
    eng_shadow_reply_deinit(&out);
    /* reads go on meanwhile, and see the last acknowledged state */
    char *doc = get(fx.svc, "locked", NULL);
    cr_expect(strstr(doc, "\"reported\":{\"a\":1}") != NULL, "%s", doc);
    free(doc);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    cr_assert_eq(update(fx.svc, "locked", NULL, "{\"state\":{\"reported\":{\"a\":2}}}", &v), 200);
    cr_expect_eq(v, 2);
}

/* {====== files that cannot serve */

static void expect_open_fails(const char *dir, const char *what) {
    eng_error e;
    eng_shadow_store *st = eng_shadow_sqlite_open(dir, NULL, &e);
    cr_expect_null(st, "%s: opened", what);
    if (st) {
        st->vt->close(st);
        return;
    }
    cr_expect(strstr(e.message, dir) != NULL, "%s: no path in '%s'", what, e.message);
    cr_log_info("%s: %s", what, e.message);
}

Test(shadow_store, files_that_cannot_serve_give_clear_errors) {
    shd_close(&fx, 0);
    char path[128], msg[256];
    /* not a database */
    snprintf(path, sizeof path, "%s/shadows.db", fx.dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", f);
    fclose(f);
    snprintf(msg, sizeof msg, "%s-wal", path);
    remove(msg);
    expect_open_fails(fx.dir, "garbage file");
    {
        eng_error e;
        cr_assert_null(eng_shadow_sqlite_open(fx.dir, NULL, &e));
        cr_expect(strstr(e.message, "file is not a database") != NULL, "%s", e.message);
    }
    /* a database of something else */
    remove(path);
    {
        sqlite3 *db;
        cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
        cr_assert_eq(sqlite3_exec(db, "CREATE TABLE shadows(a INTEGER PRIMARY KEY, b TEXT)", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
        sqlite3_close(db);
        eng_error e;
        cr_assert_null(eng_shadow_sqlite_open(fx.dir, NULL, &e));
        cr_expect(strstr(e.message, "unexpected database schema") != NULL, "%s", e.message);
    }
    /* the database path is a directory */
    remove(path);
    cr_assert_eq(mkdir(path, 0700), 0);
    expect_open_fails(fx.dir, "directory in place of the file");
    rmdir(path);
    /* the data dir is a file */
    char file_dir[160];
    snprintf(file_dir, sizeof file_dir, "%s/plain", fx.dir);
    f = fopen(file_dir, "w");
    fclose(f);
    expect_open_fails(file_dir, "data dir is a file");
    /* a read-only data dir (root ignores permissions, so only as another user) */
    if (geteuid() != 0) {
        char ro[160];
        snprintf(ro, sizeof ro, "%s/ro", fx.dir);
        mkdir(ro, 0500);
        expect_open_fails(ro, "read-only data dir");
    }
    /* a store that works again once the file is fine */
    shd_open(&fx, 1);
}

/* }====== */

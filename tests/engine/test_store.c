/*
 * test_store.c -- the store interface (engine/store/store.h) against the backend that
 * SLUICE_TEST_STORE_URL names: unset, the data dir (rules in files, shadows in SQLite, dead
 * letters in segment files); postgresql://..., that server. ctest runs this file twice:
 * engine_test_store (the data dir) and engine_test_store_pg, under tests/engine/with_pg.py,
 * which starts a private PostgreSQL cluster. Each test gets an empty database of its own.
 *
 * "Two instances" are two of everything over one store: two connection pools, two rule stores,
 * two registries, two shadow services, two dead-letter stores, exactly what two processes of
 * a fleet hold, so the only thing between them is the database. Tests that need other
 * instances' changes to exist (changes(), sync, reconcile, claims across instances) skip on
 * the data dir, which one instance owns.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../actions/action.h"
#include "engine_int.h"
#include "shadow/shadow.h"
#include "store/store.h"

static char dir[64];
static char url[1024];      /* this test's database; "" for the data dir */
static char dbname[64];
static const char *server;  /* SLUICE_TEST_STORE_URL */

/* {====== fixture: a database (or data dir) per test */

static void admin_sql(const char *sql) {
    /* the server's maintenance database, for CREATE / DROP DATABASE */
    PGconn *c = PQconnectdb(server);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static void setup(void) {
    eng_log_set_level(ENG_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/sluice-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    server = getenv("SLUICE_TEST_STORE_URL");
    url[0] = '\0';
    if (!server || !*server)
        return;
    snprintf(dbname, sizeof dbname, "t_%d_%ld", (int)getpid(), (long)random());
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    admin_sql(sql);
    /* the server's URL names its maintenance database last: swap it for ours */
    snprintf(url, sizeof url, "%s", server);
    char *slash = strrchr(url, '/');
    cr_assert(slash && slash > url + 12, "SLUICE_TEST_STORE_URL must end in /<database>");
    snprintf(slash + 1, sizeof url - (size_t)(slash + 1 - url), "%s", dbname);
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    if (url[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", dbname);
        admin_sql(sql);
    }
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

/* One instance: its config, its store and everything opened over it. */
typedef struct inst {
    eng_config cfg;
    eng_env env;
    eng_store *st;
} inst;

static void inst_open(inst *in, const char *name) {
    memset(in, 0, sizeof *in);
    eng_config_defaults(&in->cfg);
    snprintf(in->cfg.data_dir, sizeof in->cfg.data_dir, "%s/%s", dir, name);
    snprintf(in->cfg.store_url, sizeof in->cfg.store_url, "%s", url);
    snprintf(in->cfg.mqtt_client_id, sizeof in->cfg.mqtt_client_id, "%s", name);
    snprintf(in->cfg.instance_id, sizeof in->cfg.instance_id, "instance-%s", name);
    char err[256];
    cr_assert_eq(eng_instance_load(&in->cfg, err, sizeof err), 0, "%s", err);
    in->env.cfg = &in->cfg;
    eng_error e;
    in->st = eng_store_open(&in->cfg, &e);
    cr_assert_not_null(in->st, "%s", e.message);
    in->env.store = in->st;
    in->env.rules_store = eng_store_rules(in->st);
}

static void inst_close(inst *in) {
    eng_registry_free(in->env.registry);
    eng_store_close(in->st);
}

static int shared(void) { return url[0] != '\0'; }

/* Skips a test that needs a shared store; the fixture's directory goes first (a skipped test
 * does not run .fini). */
static void need_shared(const char *why) {
    if (shared())
        return;
    teardown();
    cr_skip_test("%s", why);
}

/* Two instances with a registry each. */
static void two_registries(inst *a, inst *b) {
    inst_open(a, "a");
    inst_open(b, "b");
    a->env.registry = eng_registry_new(1, &a->cfg, &a->env);
    b->env.registry = eng_registry_new(1, &b->cfg, &b->env);
    cr_assert(a->env.registry && b->env.registry);
}

static const char *payload(const char *filter, int v) {
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0],
             "{\"sql\":\"SELECT %d AS v FROM '%s'\",\"awsIotSqlVersion\":\"2016-03-23\","
             "\"actions\":[]}",
             v, filter);
    return b;
}

/* }====== */

/* {====== rules */

Test(store, rules_exist_once_and_replace_checks_the_revision) {
    inst a;
    inst_open(&a, "a");
    eng_rule_store *rs = a.env.rules_store;
    eng_rule_row row, got;
    eng_error e;
    cr_assert_eq(rs->vt->create(rs, "r1", payload("a/#", 1), &row, &e), 0, "%s", e.message);
    cr_expect_eq(row.revision, 0);
    uint64_t s1 = row.seq;
    cr_expect_eq(rs->vt->create(rs, "r1", payload("a/#", 2), &row, &e), -1);
    cr_expect_eq(e.status, 409);
    cr_expect_str_eq(e.type, "ResourceAlreadyExistsException");
    cr_assert_eq(rs->vt->replace(rs, "r1", payload("b/#", 3), ENG_RULE_ANY_REVISION, &row, &e),
                 0, "%s", e.message);
    cr_expect_eq(row.revision, 1);
    cr_expect_gt(row.seq, s1, "every change gets a greater number");
    cr_expect_eq(rs->vt->replace(rs, "r1", payload("c/#", 4), 0, &row, &e), -1);
    cr_expect_eq(e.status, 409);
    cr_expect_str_eq(e.type, "ConflictingResourceUpdateException");
    cr_assert_eq(rs->vt->replace(rs, "r1", payload("c/#", 5), 1, &row, &e), 0, "%s", e.message);
    cr_assert_eq(rs->vt->get(rs, "r1", &got, &e), 0, "%s", e.message);
    cr_expect_eq(got.revision, 2);
    cr_expect(strstr(got.payload_json, "SELECT 5"), "%s", got.payload_json);
    eng_rule_row_deinit(&got);
    cr_expect_eq(rs->vt->replace(rs, "nope", payload("a", 1), ENG_RULE_ANY_REVISION, &row, &e),
                 -1);
    cr_expect_eq(e.status, 404);
    cr_assert_eq(rs->vt->remove(rs, "r1", &row, &e), 0, "%s", e.message);
    cr_expect_eq(rs->vt->remove(rs, "r1", &row, &e), -1);
    cr_expect_eq(e.status, 404);
    cr_expect_eq(rs->vt->get(rs, "r1", &got, &e), -1);
    cr_expect_eq(e.status, 404);
    cr_assert_eq(rs->vt->create(rs, "r1", payload("a/#", 6), &row, &e), 0, "%s", e.message);
    /* a shared store keeps the deleted rule's revisions: dead letters and journal records of
     * the old rule never match the new one */
    cr_expect_eq(row.revision, shared() ? 3 : 0);
    inst_close(&a);
}

typedef struct rows {
    char names[16][129];
    uint64_t seq[16];
    int deleted[16];
    int n;
} rows;

static int collect(void *ud, const eng_rule_row *row, eng_error *e) {
    rows *r = ud;
    cr_assert_lt(r->n, 16);
    snprintf(r->names[r->n], sizeof r->names[0], "%s", row->name);
    r->seq[r->n] = row->seq;
    r->deleted[r->n++] = row->payload_json == NULL;
    return 0;
}

Test(store, load_lists_every_rule_in_name_order) {
    inst a;
    inst_open(&a, "a");
    eng_rule_store *rs = a.env.rules_store;
    eng_error e;
    const char *names[] = {"zeta", "Alpha", "mid_1", "mid_0"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(rs->vt->create(rs, names[i], payload("t", i), NULL, &e), 0, "%s",
                     e.message);
    cr_assert_eq(rs->vt->remove(rs, "mid_1", NULL, &e), 0);
    rows r = {0};
    uint64_t upto = 0;
    cr_assert_eq(rs->vt->load(rs, collect, &r, &upto, &e), 0, "%s", e.message);
    cr_assert_eq(r.n, 3);
    /* byte order, whatever the database's collation */
    cr_expect_str_eq(r.names[0], "Alpha");
    cr_expect_str_eq(r.names[1], "mid_0");
    cr_expect_str_eq(r.names[2], "zeta");
    for (int i = 0; i < 3; i++)
        cr_expect_leq(r.seq[i], upto);
    inst_close(&a);
}

Test(store, changes_lists_another_instances_changes_in_order_deletions_included) {
    need_shared("the data dir has one writer: no changes to learn of");
    inst a, b;
    inst_open(&a, "a");
    inst_open(&b, "b");
    eng_rule_store *ra = a.env.rules_store, *rb = b.env.rules_store;
    eng_error e;
    rows before = {0};
    uint64_t upto;
    cr_assert_eq(rb->vt->load(rb, collect, &before, &upto, &e), 0);
    cr_assert_eq(ra->vt->create(ra, "one", payload("t", 1), NULL, &e), 0);
    cr_assert_eq(ra->vt->create(ra, "two", payload("t", 2), NULL, &e), 0);
    cr_assert_eq(ra->vt->replace(ra, "one", payload("t", 3), ENG_RULE_ANY_REVISION, NULL, &e),
                 0);
    cr_assert_eq(ra->vt->remove(ra, "two", NULL, &e), 0);
    rows r = {0};
    cr_assert_eq(rb->vt->changes(rb, upto, collect, &r, &e), 0, "%s", e.message);
    cr_assert_eq(r.n, 2, "one row per rule, at its newest change");
    cr_expect_str_eq(r.names[0], "one");
    cr_expect_str_eq(r.names[1], "two");
    cr_expect(!r.deleted[0] && r.deleted[1]);
    cr_expect_lt(r.seq[0], r.seq[1]);
    inst_close(&a);
    inst_close(&b);
}

/* The rule registered under name in reg's current snapshot, or NULL; *sql its SQL. */
static int enabled_in_snapshot(eng_registry *reg, const char *name) {
    const eng_snapshot *s = eng_registry_acquire(reg, 0);
    int found = 0;
    for (uint32_t i = 0; i < s->nrules; i++)
        found |= !strcmp(s->rules[i]->name, name);
    eng_registry_release(reg, 0);
    return found;
}

static eng_rule *compile(inst *in, const char *name, const char *json) {
    eng_error e;
    eng_rule *r = eng_rule_new(name, json, strlen(json), &in->env, &e);
    cr_assert_not_null(r, "%s", e.message);
    return r;
}

Test(store, a_registry_applies_another_instances_changes) {
    need_shared("the data dir has one writer");
    inst a, b;
    two_registries(&a, &b);
    eng_error e;
    cr_assert_eq(eng_registry_load(b.env.registry, &e), 0, "%s", e.message);
    cr_assert_eq(eng_registry_create(a.env.registry, compile(&a, "r", payload("x/#", 1)), &e), 0,
                 "%s", e.message);
    cr_expect_null(eng_registry_get(b.env.registry, "r"), "not before b syncs");
    cr_assert_eq(eng_registry_sync(b.env.registry, &e), 0, "%s", e.message);
    eng_rule *r = eng_registry_get(b.env.registry, "r");
    cr_assert_not_null(r);
    cr_expect(strstr(r->sql, "SELECT 1"));
    eng_rule_release(r);
    cr_expect(enabled_in_snapshot(b.env.registry, "r"));
    /* b's own view is checked by the store: creating what a created is a 409 */
    cr_expect_eq(eng_registry_create(b.env.registry, compile(&b, "r", payload("x/#", 9)), &e),
                 -1);
    cr_expect_eq(e.status, 409);
    cr_assert_eq(eng_registry_replace(a.env.registry, compile(&a, "r", payload("y/#", 2)), &e),
                 0);
    cr_assert_eq(eng_registry_set_enabled(a.env.registry, "r", 0, &e), 0, "%s", e.message);
    cr_assert_eq(eng_registry_sync(b.env.registry, &e), 0);
    r = eng_registry_get(b.env.registry, "r");
    cr_assert_not_null(r);
    cr_expect(strstr(r->sql, "SELECT 2"), "%s", r->sql);
    cr_expect(r->disabled);
    cr_expect_eq(r->revision, 2);
    eng_rule_release(r);
    cr_expect(!enabled_in_snapshot(b.env.registry, "r"), "a disabled rule leaves the snapshot");
    /* b enables it; a learns of it */
    cr_assert_eq(eng_registry_set_enabled(b.env.registry, "r", 1, &e), 0, "%s", e.message);
    cr_assert_eq(eng_registry_sync(a.env.registry, &e), 0);
    cr_expect(enabled_in_snapshot(a.env.registry, "r"));
    cr_assert_eq(eng_registry_delete(a.env.registry, "r", &e), 0);
    cr_assert_eq(eng_registry_sync(b.env.registry, &e), 0);
    cr_expect_null(eng_registry_get(b.env.registry, "r"));
    cr_expect_eq(eng_registry_sync(b.env.registry, &e), 0, "a second sync changes nothing");
    inst_close(&a);
    inst_close(&b);
}

Test(store, reconcile_deletes_what_the_store_forgot) {
    need_shared("the data dir has one writer");
    inst a, b;
    two_registries(&a, &b);
    eng_error e;
    cr_assert_eq(eng_registry_create(a.env.registry, compile(&a, "gone", payload("g", 1)), &e),
                 0);
    cr_assert_eq(eng_registry_create(a.env.registry, compile(&a, "kept", payload("k", 1)), &e),
                 0);
    cr_assert_eq(eng_registry_load(b.env.registry, &e), 0);
    eng_rule *had = eng_registry_get(b.env.registry, "gone");
    cr_assert_not_null(had);
    eng_rule_release(had);
    /* b is away: a deletes, and the tombstone is purged before b is back */
    cr_assert_eq(eng_registry_delete(a.env.registry, "gone", &e), 0);
    cr_assert_eq(eng_rule_store_pg_purge(eng_store_pg(a.st), -1, &e), 0, "%s", e.message);
    cr_assert_eq(eng_registry_sync(b.env.registry, &e), 0);
    eng_rule *r = eng_registry_get(b.env.registry, "gone");
    cr_expect_not_null(r, "changes() cannot report a forgotten deletion");
    eng_rule_release(r);
    cr_assert_eq(eng_registry_reconcile(b.env.registry, &e), 0, "%s", e.message);
    cr_expect_null(eng_registry_get(b.env.registry, "gone"));
    r = eng_registry_get(b.env.registry, "kept");
    cr_expect_not_null(r);
    eng_rule_release(r);
    inst_close(&a);
    inst_close(&b);
}

/* }====== */

/* {====== shadows: two instances updating one shadow */

static eng_shadow *shadow_service(inst *in) {
    eng_error e;
    eng_pg *pg = eng_store_pg(in->st);
    eng_shadow_store *st = pg ? eng_shadow_pg_open(pg, &e)
                              : eng_shadow_sqlite_open(in->cfg.data_dir, NULL, &e);
    cr_assert_not_null(st, "%s", e.message);
    eng_shadow *s = eng_shadow_new(st, NULL);
    cr_assert_not_null(s);
    return s;
}

typedef struct racer {
    eng_shadow *svc;
    const char *key;
    int n;
    long long *versions;
    int failures;
} racer;

static void *race(void *arg) {
    racer *r = arg;
    for (int i = 0; i < r->n; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"state\":{\"reported\":{\"%s\":%d}}}", r->key, i + 1);
        for (;;) {
            eng_shadow_req q = {.op = ENG_SHADOW_UPDATE, .transport = ENG_SHADOW_REST,
                                .thing = "hot", .thing_len = 3, .payload = body,
                                .payload_len = strlen(body)};
            eng_shadow_reply out;
            int st = eng_shadow_handle(r->svc, &q, &out);
            if (st == 200) {
                const char *v = strstr(out.body, "\"version\":");
                r->versions[i] = v ? strtoll(v + 10, NULL, 10) : -1;
            }
            eng_shadow_reply_deinit(&out);
            if (st == 200)
                break;
            if (st != 503) { /* too many lost compare-and-sets in a row: try again */
                r->failures++;
                break;
            }
        }
    }
    return NULL;
}

Test(store, two_instances_updating_one_shadow_lose_no_update) {
    inst a, b;
    inst_open(&a, "a");
    inst_open(&b, shared() ? "b" : "a"); /* SQLite: one data dir, two stores on its file */
    eng_shadow *sa = shadow_service(&a), *sb = shadow_service(&b);
    enum { N = 300 };
    static long long va[N], vb[N];
    racer r[2] = {{sa, "a", N, va, 0}, {sb, "b", N, vb, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, race, &r[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(r[0].failures + r[1].failures, 0);
    static char seen[2 * N + 1];
    for (int i = 0; i < N; i++) {
        long long v[2] = {va[i], vb[i]};
        for (int k = 0; k < 2; k++) {
            cr_assert(v[k] >= 1 && v[k] <= 2 * N, "version %lld", v[k]);
            cr_assert(!seen[v[k]], "version %lld given twice: a lost update", v[k]);
            seen[v[k]] = 1;
        }
    }
    char *doc = NULL;
    cr_assert_eq(eng_shadow_get_document(sb, "hot", NULL, &doc, NULL), 1);
    cr_expect(strstr(doc, "\"version\":600"), "%s", doc);
    cr_expect(strstr(doc, "\"a\":300") && strstr(doc, "\"b\":300"), "%s", doc);
    free(doc);
    eng_shadow_free(sa);
    eng_shadow_free(sb);
    inst_close(&a);
    inst_close(&b);
}

Test(store, shadow_list_and_tombstones) {
    inst a;
    inst_open(&a, "a");
    eng_shadow *s = shadow_service(&a);
    const char *names[] = {"b", "a", "C", "c"};
    for (int i = 0; i < 4; i++) {
        eng_shadow_req q = {.op = ENG_SHADOW_UPDATE, .transport = ENG_SHADOW_REST,
                            .thing = "dev", .thing_len = 3, .shadow = names[i],
                            .shadow_len = 1, .payload = "{\"state\":{}}", .payload_len = 12};
        eng_shadow_reply out;
        cr_assert_eq(eng_shadow_handle(s, &q, &out), 200);
        eng_shadow_reply_deinit(&out);
    }
    eng_shadow_req del = {.op = ENG_SHADOW_DELETE, .transport = ENG_SHADOW_REST, .thing = "dev",
                          .thing_len = 3, .shadow = "c", .shadow_len = 1};
    eng_shadow_reply out;
    cr_assert_eq(eng_shadow_handle(s, &del, &out), 200);
    eng_shadow_reply_deinit(&out);
    cr_assert_eq(eng_shadow_list(s, "dev", 3, NULL, "2", &out), 200);
    /* byte order: "C" before "a"; the deleted "c" is not listed */
    cr_expect(strstr(out.body, "\"results\":[\"C\",\"a\"]"), "%s", out.body);
    cr_expect(strstr(out.body, "nextToken"), "%s", out.body);
    eng_shadow_reply_deinit(&out);
    /* a new "c" continues from the deleted one's version */
    eng_shadow_req up = {.op = ENG_SHADOW_UPDATE, .transport = ENG_SHADOW_REST, .thing = "dev",
                         .thing_len = 3, .shadow = "c", .shadow_len = 1,
                         .payload = "{\"state\":{}}", .payload_len = 12};
    cr_assert_eq(eng_shadow_handle(s, &up, &out), 200);
    cr_expect(strstr(out.body, "\"version\":2"), "%s", out.body);
    eng_shadow_reply_deinit(&out);
    eng_shadow_free(s);
    inst_close(&a);
}

/* }====== */

/* {====== dead letters */

static act_dlq *dlq_open(inst *in) {
    eng_error e;
    eng_pg *pg = eng_store_pg(in->st);
    act_dlq *d = pg ? eng_dlq_pg_open(pg, in->cfg.instance_id, 1 << 30, 3600,
                                      eng_env_host(&in->env), &e)
                    : act_dlq_open(in->cfg.data_dir, 1 << 30, 3600, eng_env_host(&in->env), &e);
    cr_assert_not_null(d, "%s", e.message);
    return d;
}

static act_dlq_record record(eng_msg *m, const char *rule) {
    static const char *errs[] = {"boom"};
    static int64_t at[1];
    at[0] = (int64_t)time(NULL) * 1000;
    static act_fields fs = {.n = 1, .f = {"f0"}, .len = {2}};
    return (act_dlq_record){.rule = rule, .rule_revision = 4, .action_index = 0,
                            .action = "http", .in = m, .output = "{\"o\":1}", .output_len = 7,
                            .fields = &fs, .errors = errs, .error_at = at, .nerrors = 1,
                            .attempts = 3};
}

static int records(act_dlq *d, const char *rule) {
    eng_error e;
    char *s = act_dlq_list_json(d, rule, 0, 1000, 0, &e);
    cr_assert_not_null(s, "%s", e.message);
    cJSON *o = cJSON_Parse(s);
    free(s);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, "records"));
    cJSON_Delete(o);
    return n;
}

typedef struct async_done {
    pthread_mutex_t mu;
    int n, failed;
    uint64_t ids[64];
    inst *check;              /* the row must be visible to another connection by now */
} async_done;

static void on_done(void *ud, int rc, uint64_t id) {
    async_done *a = ud;
    if (rc == 0 && a->check && eng_store_pg(a->check->st)) {
        /* committed means another connection sees the row */
        eng_error e;
        PGconn *c = eng_pg_take(eng_store_pg(a->check->st), &e);
        char ids[24], sql[128];
        snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
        snprintf(sql, sizeof sql, "SELECT 1 FROM sluice_dead_letters WHERE id = %s", ids);
        PGresult *r = PQexec(c, sql);
        if (PQntuples(r) != 1)
            rc = -2;
        PQclear(r);
        eng_pg_give(eng_store_pg(a->check->st), c);
    }
    pthread_mutex_lock(&a->mu);
    if (rc)
        a->failed++;
    else
        a->ids[a->n] = id;
    a->n++;
    pthread_mutex_unlock(&a->mu);
}

Test(store, dead_letters_append_list_resolve_purge) {
    inst a, b;
    inst_open(&a, "a");
    inst_open(&b, "b");
    act_dlq *da = dlq_open(&a);
    eng_msg *m = eng_msg_new("t/1", 3, "{\"x\":1}", 7, NULL, "cli", ENG_SRC_MQTT);
    act_dlq_record r1 = record(m, "r1");
    uint64_t id = 0;
    cr_assert_eq(act_dlq_append(da, &r1, &id), 0);
    cr_assert_gt(id, 0);
    async_done ad = {.mu = PTHREAD_MUTEX_INITIALIZER, .check = &b};
    act_dlq_record r2 = record(m, "r2");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(act_dlq_append_async(da, &r2, on_done, &ad), 0);
    for (int i = 0; i < 500 && ad.n < 20; i++)
        usleep(10000);
    cr_assert_eq(ad.n, 20);
    cr_expect_eq(ad.failed, 0, "a completion ran before its row was committed");
    cr_expect_eq(records(da, NULL), 21);
    cr_expect_eq(records(da, "r1"), 1);
    /* the list shows the message, not what a re-drive resends */
    eng_error e;
    char *s = act_dlq_list_json(da, "r1", 0, 10, 0, &e);
    cJSON *o = cJSON_Parse(s);
    const cJSON *rec = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "records"), 0);
    cr_expect_str_eq(cJSON_GetObjectItem(rec, "topic")->valuestring, "t/1");
    cr_expect_null(cJSON_GetObjectItem(rec, "fields"));
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%llu", (unsigned long long)id);
    cr_expect_str_eq(cJSON_GetObjectItem(rec, "id")->valuestring, idtxt);
    cJSON_Delete(o);
    free(s);
    if (shared()) { /* another instance lists and purges the same records */
        act_dlq *db = dlq_open(&b);
        cr_expect_eq(records(db, NULL), 21);
        cr_assert_eq(act_dlq_resolve(db, id), 0);
        cr_expect_eq(records(da, "r1"), 0);
        cr_expect_eq(act_dlq_purge(db, "r2", &e), 20);
        act_dlq_close(db);
    } else {
        cr_assert_eq(act_dlq_resolve(da, id), 0);
        cr_expect_eq(act_dlq_purge(da, "r2", &e), 20);
    }
    cr_expect_eq(records(da, NULL), 0);
    eng_msg_free(m);
    act_dlq_close(da);
    inst_close(&a);
    inst_close(&b);
}

typedef struct claimer {
    act_dlq *d;
    int n;
    uint64_t ids[600];
} claimer;

static int claimed(void *ud, uint64_t id, const cJSON *rec) {
    claimer *c = ud;
    cr_assert_lt(c->n, 600);
    cr_assert_not_null(cJSON_GetObjectItem(rec, "fields"), "a re-drive gets the whole record");
    c->ids[c->n++] = id;
    usleep(200); /* a re-drive takes its time: let the other one run meanwhile */
    return 0;
}

static void *claim_all(void *arg) {
    claimer *c = arg;
    eng_error e;
    cr_assert_eq(act_dlq_foreach(c->d, "r", NULL, 0, claimed, c, &e), 0, "%s", e.message);
    return NULL;
}

Test(store, two_re_drives_at_once_claim_each_record_once) {
    inst a, b;
    inst_open(&a, "a");
    inst_open(&b, "b");
    act_dlq *da = dlq_open(&a);
    /* the data dir: two re-drives on one instance; a shared store: one on each */
    act_dlq *db = shared() ? dlq_open(&b) : da;
    eng_msg *m = eng_msg_new("t", 1, "{}", 2, NULL, NULL, ENG_SRC_MQTT);
    act_dlq_record r = record(m, "r");
    enum { N = 600 };
    for (int i = 0; i < N; i++)
        cr_assert_eq(act_dlq_append(i % 2 ? da : db, &r, NULL), 0);
    static claimer ca, cb;
    ca = (claimer){.d = da};
    cb = (claimer){.d = db};
    pthread_t t[2];
    pthread_create(&t[0], NULL, claim_all, &ca);
    pthread_create(&t[1], NULL, claim_all, &cb);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    cr_expect_eq(ca.n + cb.n, N, "%d + %d", ca.n, cb.n);
    for (int i = 0; i < ca.n; i++)
        for (int k = 0; k < cb.n; k++)
            cr_assert_neq(ca.ids[i], cb.ids[k], "record %llu handed to both",
                          (unsigned long long)ca.ids[i]);
    /* claimed records stay listed until resolved, and a third re-drive gets none of them */
    cr_expect_eq(records(da, NULL), N);
    claimer cc = {.d = da};
    claim_all(&cc);
    cr_expect_eq(cc.n, 0);
    /* a released record is free again; a resolved one is gone */
    claimer *some = ca.n ? &ca : &cb;
    act_dlq_release(some->d, some->ids[0]); /* the claim is its claimer's to end */
    cr_assert_eq(act_dlq_resolve(da, some->ids[some->n - 1]), 0);
    claim_all(&cc);
    cr_expect_eq(cc.n, 1);
    cr_expect_eq(records(da, NULL), N - 1);
    eng_msg_free(m);
    if (db != da)
        act_dlq_close(db);
    act_dlq_close(da);
    inst_close(&a);
    inst_close(&b);
}

/* }====== */

/* {====== instances and errors */

Test(store, instances_register_and_list_with_their_health) {
    inst a;
    inst_open(&a, "a");
    a.env.started_at = 1700000000000;
    eng_error e;
    memset(&e, 0, sizeof e);
    if (shared())
        cr_assert_eq(eng_instance_beat(eng_store_pg(a.st), &a.env, 0, &e), 0, "%s", e.message);
    char *s = eng_instances_json(&a.env, &e);
    cr_assert_not_null(s, "%s", e.message);
    cJSON *o = cJSON_Parse(s);
    const cJSON *me = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "instances"), 0);
    cr_assert_not_null(me, "%s", s);
    cr_expect_str_eq(cJSON_GetObjectItem(me, "instanceId")->valuestring, a.cfg.instance_id);
    cr_expect_str_eq(cJSON_GetObjectItem(me, "clientId")->valuestring, "a");
    cr_expect_str_eq(cJSON_GetObjectItem(me, "status")->valuestring, "up");
    cr_expect_str_eq(cJSON_GetObjectItem(me, "health")->valuestring, "healthy");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(me, "self")));
    cJSON_Delete(o);
    free(s);
    if (shared()) {
        cr_assert_eq(eng_instance_beat(eng_store_pg(a.st), &a.env, 1, &e), 0);
        s = eng_instances_json(&a.env, &e);
        cr_expect(strstr(s, "\"status\":\"stopped\""), "%s", s);
        free(s);
    }
    inst_close(&a);
}

Test(store, an_unreachable_database_is_a_503_that_names_no_password) {
    need_shared("the data dir is always there");
    eng_config cfg;
    eng_config_defaults(&cfg);
    /* a port nobody listens on: the password must not show in the error */
    snprintf(cfg.store_url, sizeof cfg.store_url,
             "postgresql://sluice:hunter2secret@127.0.0.1:1/sluice");
    eng_error e;
    eng_store *st = eng_store_open(&cfg, &e);
    cr_assert_null(st);
    cr_expect_eq(e.status, 503);
    cr_expect_str_eq(e.type, "ServiceUnavailableException");
    cr_expect_null(strstr(e.message, "hunter2secret"), "%s", e.message);
    cr_expect(strstr(e.message, "postgresql://sluice@127.0.0.1:1/sluice"), "%s", e.message);
}

typedef struct opener {
    eng_config cfg;
    eng_store *st;
    eng_error e;
} opener;

static void *open_store(void *arg) {
    opener *o = arg;
    o->st = eng_store_open(&o->cfg, &o->e);
    return NULL;
}

Test(store, migrations_run_once_from_instances_starting_together) {
    need_shared("no schema in the data dir");
    /* four instances start at once on an empty database: one migrates, the others wait for
     * its lock and find nothing left to do (a second run would fail on a table that exists) */
    static opener o[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        eng_config_defaults(&o[i].cfg);
        snprintf(o[i].cfg.store_url, sizeof o[i].cfg.store_url, "%s", url);
        pthread_create(&t[i], NULL, open_store, &o[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        cr_expect_not_null(o[i].st, "instance %d: %s", i, o[i].e.message);
    eng_error e;
    PGconn *c = eng_pg_take(eng_store_pg(o[0].st), &e);
    PGresult *r = PQexec(c, "SELECT count(*), max(version) FROM sluice_schema_migrations");
    cr_expect_eq(atoi(PQgetvalue(r, 0, 0)), eng_pg_schema_version());
    cr_expect_eq(atoi(PQgetvalue(r, 0, 1)), eng_pg_schema_version());
    PQclear(r);
    eng_pg_give(eng_store_pg(o[0].st), c);
    for (int i = 0; i < 4; i++)
        eng_store_close(o[i].st);
}

/* }====== */

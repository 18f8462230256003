/*
 * test_registry.c -- the rule registry: create/replace/delete/enable semantics, persistence
 * and a corrupt store. Swaps under concurrent readers: stress_registry.c (also run under TSan).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

static eng_config cfg;
static eng_env env;
static char dir[64];

static void setup(void) {
    eng_config_defaults(&cfg);
    snprintf(dir, sizeof dir, "/tmp/sluice-reg-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    eng_log_set_level(ENG_LOG_ERROR);
    env.cfg = &cfg;
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(registry, .init = setup, .fini = teardown);

static eng_rule *mk(const char *name, const char *filter, int version) {
    char json[256];
    snprintf(json, sizeof json,
             "{\"sql\":\"SELECT %d AS v FROM '%s'\",\"awsIotSqlVersion\":\"2016-03-23\","
             "\"actions\":[]}",
             version, filter);
    eng_error e;
    eng_rule *r = eng_rule_new(name, json, strlen(json), &env, &e);
    cr_assert_not_null(r, "%s", e.message);
    return r;
}

Test(registry, create_replace_delete_and_errors) {
    eng_registry *reg = eng_registry_new(2, &cfg, &env);
    eng_error e;
    cr_assert_eq(eng_registry_create(reg, mk("a", "x/#", 1), &e), 0, "%s", e.message);
    cr_expect_eq(eng_registry_create(reg, mk("a", "x/#", 2), &e), -1);
    cr_expect_eq(e.status, 409);
    cr_expect_eq(eng_registry_replace(reg, mk("b", "x/#", 1), &e), -1);
    cr_expect_eq(e.status, 404);
    cr_assert_eq(eng_registry_replace(reg, mk("a", "y/+", 2), &e), 0);
    const eng_snapshot *s = eng_registry_acquire(reg, 0);
    uint32_t ids[4];
    cr_expect_eq(eng_topic_index_match(s->index, "y/z", 3, ids, 4), 1);
    cr_expect_eq(eng_topic_index_match(s->index, "x/z", 3, ids, 4), 0);
    eng_registry_release(reg, 0);
    cr_assert_eq(eng_registry_set_enabled(reg, "a", 0, &e), 0, "%s", e.message);
    s = eng_registry_acquire(reg, 0);
    cr_expect_eq(s->nrules, 0, "a disabled rule is not in the snapshot");
    eng_registry_release(reg, 0);
    cr_assert_eq(eng_registry_delete(reg, "a", &e), 0);
    cr_expect_eq(eng_registry_delete(reg, "a", &e), -1);
    cr_expect_eq(e.status, 404);
    eng_registry_free(reg);
}

Test(registry, rules_persist_and_reload) {
    eng_registry *reg = eng_registry_new(1, &cfg, &env);
    eng_error e;
    cr_assert_eq(eng_registry_create(reg, mk("one", "a/b", 1), &e), 0);
    cr_assert_eq(eng_registry_create(reg, mk("two", "c/#", 2), &e), 0);
    eng_registry_free(reg);
    reg = eng_registry_new(1, &cfg, &env);
    cr_assert_eq(eng_registry_load(reg, &e), 0, "%s", e.message);
    size_t n;
    eng_rule **v = eng_registry_list(reg, &n);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(v[0]->name, "one");
    cr_expect_str_eq(v[1]->name, "two");
    for (size_t i = 0; i < n; i++)
        eng_rule_release(v[i]);
    free(v);
    eng_registry_free(reg);
    char path[128];
    snprintf(path, sizeof path, "%s/rules/one.json", dir);
    FILE *f = fopen(path, "w");
    fputs("[garbage", f);
    fclose(f);
    reg = eng_registry_new(1, &cfg, &env);
    cr_expect_eq(eng_registry_load(reg, &e), -1);
    cr_expect(strstr(e.message, "corrupt") != NULL, "%s", e.message);
    eng_registry_free(reg);
}

/* Rule files can hold credentials (a PostgreSQL conninfo, Kafka SASL properties): only the
 * service's user may read them. */
Test(registry, rule_files_are_private_to_the_service_user) {
    eng_registry *reg = eng_registry_new(1, &cfg, &env);
    eng_error e;
    mode_t old = umask(0); /* even with a permissive umask */
    cr_assert_eq(eng_registry_create(reg, mk("secret", "a/b", 1), &e), 0, "%s", e.message);
    umask(old);
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/rules/secret.json", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    snprintf(path, sizeof path, "%s/rules", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
    eng_registry_free(reg);
}

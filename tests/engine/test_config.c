/*
 * test_config.c -- the configuration's authentication and front-door keys (engine/config.c):
 * auth.credentials, auth.tokens, auth.metricsPublic, adminToken, http.*, and their
 * environment variables, and the store (store, SLUICE_STORE_URL). A secret never appears in an
 * error message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"

static eng_config cfg;
static char path[64];

static const char *const vars[] = {"SLUICE_ADMIN_TOKEN", "SLUICE_ACCESS_KEY_ID",
                                   "SLUICE_SECRET_ACCESS_KEY", "SLUICE_INSECURE_NO_AUTH",
                                   "SLUICE_STORE_URL"};

static void setup(void) {
    eng_config_defaults(&cfg);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    snprintf(path, sizeof path, "/tmp/sluice-cfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
}

static void teardown(void) { unlink(path); }

TestSuite(config, .init = setup, .fini = teardown);

static int load(const char *json, char *err, size_t cap) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(json, f);
    fclose(f);
    return eng_config_load_file(&cfg, path, err, cap);
}

Test(config, front_door_defaults) {
    cr_expect_eq(cfg.http_max_connections, 256);
    cr_expect_eq(cfg.http_max_per_client, 64);
    cr_expect_eq(cfg.http_timeout_s, 30);
    cr_expect_eq(cfg.ncredentials + cfg.ntokens, 0, "no credentials by default");
    cr_expect_not(cfg.metrics_public);
    cr_expect_not(cfg.insecure_no_auth);
}

Test(config, auth_and_http_sections) {
    char err[512] = "";
    int rc = load("{\"http\": {\"addr\": \"[::1]:9000\", \"maxConnections\": 10,"
                  " \"maxConnectionsPerClient\": 3, \"timeoutSeconds\": 5},"
                  " \"auth\": {\"credentials\": ["
                  "   {\"accessKeyId\": \"AKIDA\", \"secretAccessKey\": \"s3cr3t/+=\","
                  "    \"role\": \"admin\"},"
                  "   {\"accessKeyId\": \"AKIDR\", \"secretAccessKey\": \"r\", \"role\": \"reader\"}],"
                  "  \"tokens\": [{\"token\": \"prom-token\", \"role\": \"reader\"}],"
                  "  \"metricsPublic\": true},"
                  " \"adminToken\": \"legacy-token\"}",
                  err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cfg.http_addr, "[::1]:9000");
    cr_expect_eq(cfg.http_max_connections, 10);
    cr_expect_eq(cfg.http_max_per_client, 3);
    cr_expect_eq(cfg.http_timeout_s, 5);
    cr_assert_eq(cfg.ncredentials, 2);
    cr_expect_str_eq(cfg.credentials[0].access_key_id, "AKIDA");
    cr_expect_str_eq(cfg.credentials[0].secret, "s3cr3t/+=");
    cr_expect_eq(cfg.credentials[0].role, ENG_ROLE_ADMIN);
    cr_expect_eq(cfg.credentials[1].role, ENG_ROLE_READER);
    cr_assert_eq(cfg.ntokens, 2);
    cr_expect_eq(cfg.tokens[0].role, ENG_ROLE_READER);
    cr_expect_str_eq(cfg.tokens[1].token, "legacy-token");
    cr_expect_eq(cfg.tokens[1].role, ENG_ROLE_ADMIN, "adminToken is an admin token");
    cr_expect(cfg.metrics_public);
}

Test(config, bad_auth_entries_are_errors_that_keep_secrets_out) {
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{\"auth\": {\"credentials\": [{\"accessKeyId\": \"A\", \"secretAccessKey\": "
         "\"TOPSECRET\"}]}}", "role"},
        {"{\"auth\": {\"credentials\": [{\"accessKeyId\": \"A\", \"secretAccessKey\": "
         "\"TOPSECRET\", \"role\": \"root\"}]}}", "reader, publisher or admin"},
        {"{\"auth\": {\"credentials\": [{\"accessKeyId\": \"A/B\", \"secretAccessKey\": "
         "\"TOPSECRET\", \"role\": \"admin\"}]}}", "access key id"},
        {"{\"auth\": {\"credentials\": [{\"accessKeyId\": \"A\", \"secretAccessKey\": "
         "\"TOP SECRET\", \"role\": \"admin\"}]}}", "secret access key of A"},
        {"{\"auth\": {\"credentials\": [{\"accessKeyId\": \"A\", \"secretAccessKey\": "
         "\"TOPSECRET\", \"role\": \"admin\", \"x\": 1}]}}", "auth.credentials[].x"},
        {"{\"auth\": {\"credentials\": [{\"accessKeyId\": \"A\", \"role\": \"admin\"}]}}",
         "secretAccessKey"},
        {"{\"auth\": {\"credentials\": {\"accessKeyId\": \"A\"}}}", "array"},
        {"{\"auth\": {\"tokens\": [{\"token\": \"TOPSECRET\", \"role\": \"god\"}]}}", "role"},
        {"{\"auth\": {\"tokens\": [{\"token\": \"\", \"role\": \"admin\"}]}}", "token"},
        {"{\"auth\": {\"metricsPublic\": 1}}", "true or false"},
        {"{\"auth\": {\"credential\": []}}", "auth.credential"},
        {"{\"http\": {\"port\": 1}}", "http.port"},
        {"{\"http\": {\"maxConnections\": 0}}", "http.maxConnections"},
        {"{\"adminToken\": 5}", "adminToken"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup();
        char err[512] = "";
        cr_expect_eq(load(bad[i].json, err, sizeof err), -1, "accepted %s", bad[i].json);
        cr_expect(strstr(err, bad[i].says), "'%s' does not say %s", err, bad[i].says);
        cr_expect_null(strstr(err, "SECRET"), "a secret in: %s", err);
        teardown();
    }
}

Test(config, an_entry_for_the_same_key_replaces_it_and_the_count_is_bounded) {
    char json[16384] = "{\"auth\": {\"credentials\": [", err[512] = "";
    for (int i = 0; i <= ENG_AUTH_MAX; i++)
        snprintf(json + strlen(json), sizeof json - strlen(json),
                 "%s{\"accessKeyId\": \"K%d\", \"secretAccessKey\": \"s\", \"role\": \"admin\"}",
                 i ? "," : "", i);
    strcat(json, "]}}");
    cr_expect_eq(load(json, err, sizeof err), -1);
    cr_expect(strstr(err, "at most"), "%s", err);
    setup();
    cr_expect_eq(load("{\"auth\": {\"credentials\": ["
                      "{\"accessKeyId\": \"K\", \"secretAccessKey\": \"one\", \"role\": \"admin\"},"
                      "{\"accessKeyId\": \"K\", \"secretAccessKey\": \"two\", \"role\": \"reader\"}"
                      "]}}",
                      err, sizeof err),
                 0, "%s", err);
    cr_expect_eq(cfg.ncredentials, 1);
    cr_expect_str_eq(cfg.credentials[0].secret, "two");
    cr_expect_eq(cfg.credentials[0].role, ENG_ROLE_READER);
}

Test(config, environment) {
    char err[512] = "";
    setenv("SLUICE_ACCESS_KEY_ID", "AKIDENV", 1);
    cr_expect_eq(eng_config_apply_env(&cfg, err, sizeof err), -1, "a key id without a secret");
    cr_expect(strstr(err, "SLUICE_SECRET_ACCESS_KEY"), "%s", err);
    setenv("SLUICE_SECRET_ACCESS_KEY", "env-secret", 1);
    setenv("SLUICE_ADMIN_TOKEN", "env-token", 1);
    setenv("SLUICE_INSECURE_NO_AUTH", "1", 1);
    cr_assert_eq(eng_config_apply_env(&cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg.ncredentials, 1);
    cr_expect_str_eq(cfg.credentials[0].access_key_id, "AKIDENV");
    cr_expect_str_eq(cfg.credentials[0].secret, "env-secret");
    cr_expect_eq(cfg.credentials[0].role, ENG_ROLE_ADMIN);
    cr_assert_eq(cfg.ntokens, 1);
    cr_expect_eq(cfg.tokens[0].role, ENG_ROLE_ADMIN);
    cr_expect(cfg.insecure_no_auth);
    setenv("SLUICE_INSECURE_NO_AUTH", "maybe", 1);
    cr_expect_eq(eng_config_apply_env(&cfg, err, sizeof err), -1);
    setenv("SLUICE_INSECURE_NO_AUTH", "0", 1);
    setenv("SLUICE_SECRET_ACCESS_KEY", "bad secret", 1);
    cr_expect_eq(eng_config_apply_env(&cfg, err, sizeof err), -1);
    cr_expect_null(strstr(err, "bad secret"), "%s", err);
}

Test(config, roles_by_name) {
    cr_expect_eq(eng_role_parse("reader"), ENG_ROLE_READER);
    cr_expect_eq(eng_role_parse("publisher"), ENG_ROLE_PUBLISHER);
    cr_expect_eq(eng_role_parse("admin"), ENG_ROLE_ADMIN);
    cr_expect_eq(eng_role_parse("Admin"), -1);
    cr_expect_eq(eng_role_parse(""), -1);
    cr_expect_str_eq(eng_role_name(ENG_ROLE_PUBLISHER), "publisher");
    cr_expect_str_eq(eng_role_name(99), "none");
}

Test(config, the_example_config_loads_and_sets_what_it_shows) {
    eng_config c;
    eng_config_defaults(&c);
    char err[512] = "";
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/examples/sluice.json", SLUICE_SOURCE_DIR);
    cr_assert_eq(eng_config_load_file(&c, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.journal_mode, ENG_JOURNAL_BATCH);
    cr_assert_eq(c.mqtt_receive_maximum, 512);
    cr_assert_eq(c.mqtt_session_expiry, 86400);
    cr_assert_eq(c.mqtt_keepalive, 120);
    cr_assert_eq(c.journal_max_bytes, 1073741824LL);
    cr_assert(c.shadows_enabled);
    cr_assert(c.dlq_eval_errors);
}

Test(config, journal_and_shadow_keys_are_checked) {
    eng_config c;
    eng_config_defaults(&c);
    char err[512];
    static const char *bad[] = {
        "{\"ingest\": {\"journal\": \"sometimes\"}}",
        "{\"ingest\": {\"journalMaxBytes\": 10}}",
        "{\"ingest\": {\"typo\": 1}}",
        "{\"mqtt\": {\"receiveMaximum\": 0}}",
        "{\"shadows\": {\"enabled\": \"yes\"}}",
        "{\"deadLetter\": {\"evalErrors\": 1}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[] = "/tmp/sluice-config-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
        close(fd);
        cr_assert_eq(eng_config_load_file(&c, path, err, sizeof err), -1, "%s accepted", bad[i]);
        unlink(path);
    }
    setenv("SLUICE_JOURNAL", "interval", 1);
    setenv("SLUICE_SHADOWS", "off", 1);
    cr_assert_eq(eng_config_apply_env(&c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.journal_mode, ENG_JOURNAL_INTERVAL);
    cr_assert(!c.shadows_enabled);
    setenv("SLUICE_JOURNAL", "fast", 1);
    cr_assert_eq(eng_config_apply_env(&c, err, sizeof err), -1);
    unsetenv("SLUICE_JOURNAL");
    unsetenv("SLUICE_SHADOWS");
}

Test(config, the_store_is_the_data_dir_or_a_postgresql_url_never_quoted_back) {
    char err[256];
    cr_expect_str_eq(cfg.store_url, "", "the data dir by default");
    cr_assert_eq(load("{\"store\": \"postgresql://u:pw@db:5432/sluice\"}", err, sizeof err), 0,
                 "%s", err);
    cr_expect_str_eq(cfg.store_url, "postgresql://u:pw@db:5432/sluice");
    cr_assert_eq(load("{\"store\": \"dataDir\"}", err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.store_url, "");
    cr_expect_eq(load("{\"store\": \"mysql://u:topsecret@db/x\"}", err, sizeof err), -1);
    cr_expect_null(strstr(err, "topsecret"), "%s", err);
    cr_expect(strstr(err, "postgresql://"), "%s", err);
    cr_expect_eq(load("{\"store\": 5}", err, sizeof err), -1);
    setenv("SLUICE_STORE_URL", "postgres://u:envsecret@db/sluice", 1);
    cr_assert_eq(eng_config_apply_env(&cfg, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg.store_url, "postgres://u:envsecret@db/sluice");
    setenv("SLUICE_STORE_URL", "file:///var/lib/envsecret", 1);
    cr_expect_eq(eng_config_apply_env(&cfg, err, sizeof err), -1);
    cr_expect_null(strstr(err, "envsecret"), "%s", err);
    cr_expect(strstr(err, "SLUICE_STORE_URL"), "%s", err);
}

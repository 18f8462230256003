/* test_rule.c -- validation of AWS's topicRulePayload (engine/rule.c): limits and error types. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "action.h"
#include "engine_int.h"

static eng_config cfg;
static eng_env env;

static void setup(void) {
    eng_config_defaults(&cfg);
    env.cfg = &cfg;
    eng_log_set_level(ENG_LOG_ERROR);
}
TestSuite(rule, .init = setup);

static eng_error try(const char *name, const char *json) {
    eng_error e;
    eng_rule *r = eng_rule_new(name, json, strlen(json), &env, &e);
    if (r) {
        eng_rule_release(r);
        memset(&e, 0, sizeof e);
    }
    return e;
}

Test(rule, valid_payload_is_accepted_with_aws_defaults) {
    const char *j = "{\"sql\":\"SELECT 10.0 AS n FROM 'a/+'\",\"actions\":[{\"republish\":"
                    "{\"topic\":\"out/${topic(2)}\",\"qos\":1,\"roleArn\":\"arn:x\"}}],"
                    "\"errorAction\":{\"republish\":{\"topic\":\"errors\"}}}";
    eng_error e;
    eng_rule *r = eng_rule_new("ok_1", j, strlen(j), &env, &e);
    cr_assert_not_null(r, "%s", e.message);
    cr_expect_eq(r->version, SQL_V2015_10_08, "no awsIotSqlVersion: 2015-10-08, as AWS's API");
    cr_expect_eq(r->nactions, 1);
    cr_expect_not_null(r->error_action.vt);
    cr_expect_str_eq(sql_program_topic_filter(r->prog), "a/+");
    char *d = eng_rule_describe(r, &cfg);
    cr_expect(strstr(d, "\"ruleArn\":\"arn:aws:iot:local:000000000000:rule/ok_1\"") != NULL, "%s",
              d);
    free(d);
    eng_rule_release(r);
}

Test(rule, invalid_payloads_name_their_problem) {
    static const struct {
        const char *name, *json, *type, *msg;
        int status;
    } t[] = {
        {"bad-name", "{\"sql\":\"SELECT * FROM 't'\"}", "InvalidRequestException", "rule name", 400},
        {"", "{\"sql\":\"SELECT * FROM 't'\"}", "InvalidRequestException", "rule name", 400},
        {"x", "[1]", "InvalidRequestException", "not a JSON object", 400},
        {"x", "{}", "InvalidRequestException", "\"sql\" is required", 400},
        {"x", "{\"sql\":\"SELECT FROM\"}", "SqlParseException", "line 1", 400},
        {"x", "{\"sql\":\"SELECT * FROM 't'\",\"awsIotSqlVersion\":\"2020-01-01\"}",
         "InvalidRequestException", "awsIotSqlVersion", 400},
        {"x", "{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"lambda\":{}}]}",
         "InvalidRequestException", "unknown action type 'lambda'", 400},
        {"x", "{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"republish\":{}}]}",
         "InvalidRequestException", "\"topic\" is required", 400},
        {"x", "{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"republish\":{\"topic\":\"o\","
              "\"qos\":2}}]}",
         "InvalidRequestException", "qos", 400},
        {"x", "{\"sql\":\"SELECT * FROM 'a/#'\",\"actions\":[{\"republish\":{\"topic\":\"a/b\"}}]}",
         "InvalidRequestException", "trigger itself", 400},
        {"x", "{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"republish\":{\"topic\":\"o/${\"}}]}",
         "InvalidRequestException", "substitution template", 400},
        {"x", "{\"sql\":\"SELECT * FROM 't'\",\"ruleDisabled\":\"no\"}", "InvalidRequestException",
         "ruleDisabled", 400},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        eng_error e = try(t[i].name, t[i].json);
        cr_expect_eq(e.status, t[i].status, "%s: status %d", t[i].json, e.status);
        cr_expect(e.type && !strcmp(e.type, t[i].type), "%s: type %s", t[i].json,
                  e.type ? e.type : "(none)");
        cr_expect(strstr(e.message, t[i].msg) != NULL, "%s: message '%s' lacks '%s'", t[i].json,
                  e.message, t[i].msg);
    }
}

Test(rule, limits_of_actions_and_size) {
    char j[4096];
    size_t n = (size_t)snprintf(j, sizeof j, "{\"sql\":\"SELECT * FROM 't'\",\"actions\":[");
    for (int i = 0; i < 11; i++)
        n += (size_t)snprintf(j + n, sizeof j - n, "%s{\"republish\":{\"topic\":\"o\"}}",
                              i ? "," : "");
    snprintf(j + n, sizeof j - n, "]}");
    eng_error e = try("many", j);
    cr_expect_eq(e.status, 400);
    cr_expect(strstr(e.message, "at most 10") != NULL, "%s", e.message);
    size_t big = 300 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    e = try("huge", huge);
    cr_expect_eq(e.status, 413);
    free(huge);
}

/* cJSON keeps duplicate keys and its lookups see the first one only; a rule with a duplicate
 * anywhere is refused, naming the key and where it is. */
Test(rule, duplicate_keys_at_any_depth_are_refused) {
    static const struct {
        const char *json, *msg;
    } t[] = {
        {"{\"sql\":\"SELECT * FROM 't'\",\"sql\":\"SELECT * FROM 'u'\"}",
         "duplicate key \"sql\" in the rule payload"},
        {"{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"republish\":{\"topic\":\"o\"},"
         "\"republish\":{\"topic\":\"p\"}}]}",
         "duplicate key \"republish\" in actions[0]"},
        {"{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"file\":{\"path\":\"a\"}},"
         "{\"republish\":{\"topic\":\"o\",\"qos\":0,\"topic\":\"p\"}}]}",
         "duplicate key \"topic\" in actions[1].republish"},
        {"{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"republish\":{\"topic\":\"o\",\"headers\":"
         "{\"userProperties\":[{\"key\":\"a\",\"value\":\"b\"},{\"key\":\"a\",\"value\":\"b\","
         "\"key\":\"c\"}]}}}]}",
         "duplicate key \"key\" in actions[0].republish.headers.userProperties[1]"},
        {"{\"sql\":\"SELECT * FROM 't'\",\"errorAction\":{\"kafka\":{\"topic\":\"t\","
         "\"clientProperties\":{\"bootstrap.servers\":\"h:1\",\"bootstrap.servers\":\"i:1\"}}}}",
         "duplicate key \"bootstrap.servers\" in errorAction.kafka.clientProperties"},
        {"{\"sql\":\"SELECT * FROM 't'\",\"description\":\"d\",\"ruleDisabled\":false,"
         "\"awsIotSqlVersion\":\"2016-03-23\",\"ruleDisabled\":true}",
         "duplicate key \"ruleDisabled\" in the rule payload"},
        /* the same key spelled with an escape is the same key */
        {"{\"sql\":\"SELECT * FROM 't'\",\"actions\":[{\"republish\":{\"topic\":\"o\","
         "\"\\u0074opic\":\"p\"}}]}",
         "duplicate key \"topic\" in actions[0].republish"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        eng_error e = try("dup", t[i].json);
        cr_expect_eq(e.status, 400, "%s", t[i].json);
        cr_expect(e.type && !strcmp(e.type, "InvalidRequestException"), "%s", t[i].json);
        cr_expect(strstr(e.message, t[i].msg) != NULL, "message '%s' lacks '%s'", e.message,
                  t[i].msg);
    }
}

/* The segfault of issue 8: 38 duplicate "contentType" headers in one republish action. */
Test(rule, forty_duplicate_headers_are_refused_without_a_crash) {
    char j[4096];
    size_t n = (size_t)snprintf(j, sizeof j, "{\"sql\":\"SELECT * FROM 't'\",\"actions\":["
                                             "{\"republish\":{\"topic\":\"o\",\"headers\":{");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(j + n, sizeof j - n, "%s\"contentType\":\"text/plain\"",
                              i ? "," : "");
    snprintf(j + n, sizeof j - n, "}}}]}");
    eng_error e = try("dup_headers", j);
    cr_expect_eq(e.status, 400);
    cr_expect(strstr(e.message, "duplicate key \"contentType\" in actions[0].republish.headers"),
              "%s", e.message);
}

Test(rule, unknown_payload_keys_and_template_limits) {
    eng_error e = try("x", "{\"sql\":\"SELECT * FROM 't'\",\"ruleName\":\"x\"}");
    cr_expect_eq(e.status, 400);
    cr_expect(strstr(e.message, "unknown key \"ruleName\" in the rule payload"), "%s", e.message);
    /* 10 actions of 201 templates each: more than a rule may carry */
    char *j = malloc(64 * 1024);
    size_t n = (size_t)sprintf(j, "{\"sql\":\"SELECT * FROM 't'\",\"actions\":[");
    for (int a = 0; a < 10; a++) {
        n += (size_t)sprintf(j + n, "%s{\"http\":{\"url\":\"http://h/\",\"headers\":[",
                             a ? "," : "");
        for (int h = 0; h < 100; h++)
            n += (size_t)sprintf(j + n, "%s{\"key\":\"k%d\",\"value\":\"v\"}", h ? "," : "", h);
        n += (size_t)sprintf(j + n, "]}}");
    }
    sprintf(j + n, "]}");
    e = try("templates", j);
    free(j);
#ifdef SLUICE_WITH_ACTION_HTTP
    cr_expect_eq(e.status, 400);
    cr_expect(strstr(e.message, "too many substitution templates: the http action has 201 "
                                "(at most 256 per action, 1024 per rule)"),
              "%s", e.message);
#endif
}

/* The fuzzer's seeds (tests/fuzz/corpus/fuzz_rule_payload) are one valid rule per action type,
 * under the environment the fuzzer sets up (offline, a certificate directory with ca.pem): if
 * a seed stopped being valid the fuzzer would start from refusals only. */
Test(rule, the_fuzz_seeds_are_valid_rules_of_every_action_type) {
    char dir[512], tmp[] = "/tmp/sluice-seeds-XXXXXX", certs[64], ca[80];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    *strrchr(dir, '/') = '\0';
    strcat(dir, "/../fuzz/corpus/fuzz_rule_payload");
    cr_assert(mkdtemp(tmp));
    snprintf(certs, sizeof certs, "%s/certs", tmp);
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    cr_assert_eq(mkdir(certs, 0700), 0);
    fclose(fopen(ca, "w"));
    eng_config c;
    eng_config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "%s", tmp);
    snprintf(c.cert_dir, sizeof c.cert_dir, "%s", certs);
    snprintf(c.http_allowed_hosts, sizeof c.http_allowed_hosts, "hooks.example,127.0.0.1");
    eng_env offline = {.cfg = &c, .offline = 1};
    static const char *const seeds[] = {"republish", "file", "kafka", "postgres", "http"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s.json", dir, seeds[i]);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char body[8192];
        size_t n = fread(body, 1, sizeof body - 1, f);
        fclose(f);
        body[n] = '\0';
        eng_error e;
        eng_rule *r = eng_rule_new(seeds[i], body, n, &offline, &e);
        cr_expect_not_null(r, "%s: %s", seeds[i], e.message);
        if (!r)
            continue;
        int found = 0;
        for (size_t a = 0; a < r->nactions; a++)
            found |= !strcmp(r->actions[a].vt->name, seeds[i]);
        cr_expect(found, "%s.json has no %s action", seeds[i], seeds[i]);
        eng_rule_release(r);
    }
    char refused[600];
    snprintf(refused, sizeof refused, "%s/refused.json", dir);
    cr_expect_eq(access(refused, R_OK), 0);
    unlink(ca);
    rmdir(certs);
    rmdir(tmp);
}

/*
 * test_router.c -- the REST API without sockets (engine/api/router.c and the routes): a real
 * registry, workers and dead-letter store in a temporary data dir, no broker. Authentication
 * on and off, the two steps (a refusal is final on the headers alone), body limits, decoding
 * of the raw path and query, AWS's error shapes, and that a refused request changes nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../../actions/action.h"
#include "api_test.h"

static eng_config cfg;
static eng_env env;
static eng_api *api;
static char dir[64];

#define RULE "{\"sql\": \"SELECT * FROM 'a/b'\", \"awsIotSqlVersion\": \"2016-03-23\", " \
             "\"actions\": []}"

static void start(int with_auth) {
    eng_config_defaults(&cfg);
    eng_log_set_level(ENG_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/sluice-api-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    cfg.workers = 1;
    if (with_auth) {
        static const struct {
            const char *id, *secret;
            int role;
        } creds[] = {{"AKIDADMIN", "admin-secret", ENG_ROLE_ADMIN},
                     {"AKIDPUB", "publisher-secret", ENG_ROLE_PUBLISHER},
                     {"AKIDREAD", "reader-secret", ENG_ROLE_READER}};
        for (size_t i = 0; i < 3; i++) {
            eng_credential *c = &cfg.credentials[cfg.ncredentials++];
            snprintf(c->access_key_id, sizeof c->access_key_id, "%s", creds[i].id);
            snprintf(c->secret, sizeof c->secret, "%s", creds[i].secret);
            c->role = creds[i].role;
        }
        snprintf(cfg.tokens[0].token, sizeof cfg.tokens[0].token, "reader-token");
        cfg.tokens[0].role = ENG_ROLE_READER;
        cfg.ntokens = 1;
    }
    env = (eng_env){.cfg = &cfg};
    eng_error e;
    env.dlq = act_dlq_open(cfg.data_dir, cfg.dlq_max_bytes, cfg.dlq_max_age_s,
                           eng_env_host(&env), &e);
    cr_assert_not_null(env.dlq, "%s", e.message);
    env.registry = eng_registry_new(cfg.workers, &cfg, &env);
    env.workers = eng_workers_new(&cfg, env.registry, &env);
    env.mqtt = eng_mqtt_new(&env); /* never started: no broker */
    api = eng_api_new(&env, &e);
    cr_assert_not_null(api);
}

static void stop(void) {
    eng_api_free(api);
    eng_workers_stop(env.workers);
    eng_registry_free(env.registry);
    eng_mqtt_free(env.mqtt);
    eng_workers_free(env.workers);
    act_dlq_close(env.dlq);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void open_api(void) { start(0); }
static void signed_api(void) { start(1); }

/* Both steps on t; *admitted tells whether the first let it through. */
static eng_api_response call(test_req *t, int *admitted) {
    eng_api_response rs = {0};
    int refused = eng_api_admit(api, &t->rq, &rs);
    if (admitted)
        *admitted = !refused;
    if (!refused)
        eng_api_dispatch(api, &t->rq, &rs);
    return rs;
}

static eng_api_response simple(const char *method, const char *path, const char *query,
                               const char *body) {
    test_req t;
    test_req_init(&t, method, path, query, body);
    return call(&t, NULL);
}

static void expect(eng_api_response *rs, int status, const char *type) {
    cr_expect_eq(rs->status, status, "status %d, body %.*s", rs->status, (int)rs->body_len,
                 rs->body ? rs->body : "");
    if (type)
        cr_expect_str_eq(rs->error_type ? rs->error_type : "(none)", type);
    else
        cr_expect_null(rs->error_type);
    eng_api_response_deinit(rs);
}

static size_t nrules(void) {
    size_t n;
    eng_rule **v = eng_registry_list(env.registry, &n);
    for (size_t i = 0; i < n; i++)
        eng_rule_release(v[i]);
    free(v);
    return n;
}

TestSuite(router_open, .init = open_api, .fini = stop);
TestSuite(router_signed, .init = signed_api, .fini = stop);

Test(router_open, health_and_readiness_without_a_broker) {
    eng_api_response rs = simple("GET", "/healthz", NULL, NULL);
    cr_expect_str_eq(rs.body, "ok\n");
    expect(&rs, 200, NULL);
    rs = simple("GET", "/readyz", NULL, NULL);
    expect(&rs, 503, NULL);
}

Test(router_open, rule_lifecycle_with_encoded_names) {
    eng_api_response rs = simple("POST", "/rules/r_1", NULL, RULE);
    expect(&rs, 200, NULL);
    rs = simple("GET", "/rules/r%5F1", NULL, NULL); /* %5F is '_' */
    cr_expect(rs.body && strstr(rs.body, "\"ruleName\":\"r_1\""), "%s", rs.body);
    expect(&rs, 200, NULL);
    rs = simple("GET", "/rules/r_1/", NULL, NULL); /* one trailing slash is ignored */
    expect(&rs, 200, NULL);
    rs = simple("POST", "/rules/r_1", NULL, RULE);
    expect(&rs, 409, "ResourceAlreadyExistsException");
    rs = simple("POST", "/rules/r_1/disable", NULL, NULL);
    expect(&rs, 200, NULL);
    rs = simple("GET", "/rules", "ruleDisabled=true&maxResults=5", NULL);
    cr_expect(rs.body && strstr(rs.body, "r_1"), "%s", rs.body);
    expect(&rs, 200, NULL);
    rs = simple("GET", "/rules", "topic=a%2Fb", NULL);
    cr_expect(rs.body && strstr(rs.body, "r_1"), "%s", rs.body);
    expect(&rs, 200, NULL);
    rs = simple("GET", "/rules", "maxResults=0", NULL);
    expect(&rs, 400, "InvalidRequestException");
    rs = simple("PATCH", "/rules/r_1", NULL, "{\"sql\": \"SELECT\"}");
    expect(&rs, 400, "SqlParseException");
    rs = simple("DELETE", "/rules/r_1", NULL, NULL);
    expect(&rs, 200, NULL);
    rs = simple("DELETE", "/rules/r_1", NULL, NULL);
    expect(&rs, 404, "ResourceNotFoundException");
}

Test(router_open, a_path_parameter_must_decode) {
    static const char *const bad[] = {"/rules/r%zz", "/rules/r%2", "/rules/r%00x", "/rules/%"};
    for (size_t i = 0; i < 4; i++) {
        eng_api_response rs = simple("GET", bad[i], NULL, NULL);
        expect(&rs, 400, "InvalidRequestException");
    }
    /* an encoded '/' stays inside its segment: a name the registry refuses */
    eng_api_response rs = simple("POST", "/rules/a%2Fb", NULL, RULE);
    expect(&rs, 400, "InvalidRequestException");
    cr_expect_eq(nrules(), 0);
}

Test(router_open, unknown_routes_and_methods) {
    eng_api_response rs = simple("GET", "/nope", NULL, NULL);
    expect(&rs, 404, "ResourceNotFoundException");
    rs = simple("PUT", "/deadletter", NULL, NULL);
    expect(&rs, 405, "InvalidRequestException");
    rs = simple("GET", "/topics/a", NULL, NULL);
    expect(&rs, 405, "InvalidRequestException");
    rs = simple("GET", "rules", NULL, NULL);
    expect(&rs, 400, "InvalidRequestException");
}

Test(router_open, a_content_length_over_the_limit_is_refused_on_the_headers) {
    test_req t;
    test_req_init(&t, "POST", "/topics/a", NULL, NULL);
    test_req_header(&t, "Content-Length", "10485760");
    int admitted;
    eng_api_response rs = call(&t, &admitted);
    cr_expect_not(admitted);
    cr_expect(rs.close);
    expect(&rs, 413, "RequestEntityTooLargeException");
    test_req_init(&t, "POST", "/topics/a", NULL, NULL);
    test_req_header(&t, "Content-Length", "131072"); /* 128 KiB: the limit itself */
    rs = (eng_api_response){0};
    cr_expect_eq(eng_api_admit(api, &t.rq, &rs), 0);
    cr_expect_eq(eng_api_body_limit(&t.rq), SQL_MAX_PAYLOAD);
    eng_api_response_deinit(&rs);
    /* a body that grew past the limit anyway (chunked: no Content-Length) */
    static char big[300 * 1024];
    memset(big, 'x', sizeof big - 1);
    test_req_init(&t, "POST", "/rules/huge", NULL, NULL);
    rs = (eng_api_response){0};
    cr_expect_eq(eng_api_admit(api, &t.rq, &rs), 0);
    t.rq.body = big;
    t.rq.body_len = sizeof big - 1;
    eng_api_dispatch(api, &t.rq, &rs);
    expect(&rs, 413, "RequestEntityTooLargeException");
    cr_expect_eq(nrules(), 0);
}

Test(router_open, publish_takes_encoded_and_raw_topics) {
    uint64_t before = atomic_load(&eng_metrics_global.messages_in[ENG_SRC_HTTP]);
    eng_api_response rs = simple("POST", "/topics/a%2Fb%20c", "qos=1", "{\"x\":1}");
    expect(&rs, 200, NULL);
    rs = simple("POST", "/topics/a/b", NULL, "{}");
    expect(&rs, 200, NULL);
    cr_expect_eq(atomic_load(&eng_metrics_global.messages_in[ENG_SRC_HTTP]), before + 2);
    rs = simple("POST", "/topics/a%2F%2B", NULL, "{}");
    expect(&rs, 400, "InvalidRequestException");
    rs = simple("POST", "/topics/a", "qos=2", "{}");
    expect(&rs, 400, "InvalidRequestException");
}

Test(router_open, metrics_and_dead_letters) {
    eng_api_response rs = simple("GET", "/metrics", NULL, NULL);
    cr_expect(rs.body && strstr(rs.body, "sluice_messages_in_total"), "metrics");
    cr_expect_str_eq(rs.content_type, "text/plain; version=0.0.4");
    expect(&rs, 200, NULL);
    rs = simple("GET", "/deadletter", "limit=5&rule=x", NULL);
    expect(&rs, 200, NULL);
    rs = simple("GET", "/deadletter", "limit=0", NULL);
    expect(&rs, 400, "InvalidRequestException");
    rs = simple("DELETE", "/deadletter", NULL, NULL);
    cr_expect(rs.body && strstr(rs.body, "\"purged\":0"), "%s", rs.body);
    expect(&rs, 200, NULL);
    rs = simple("POST", "/deadletter/redrive", NULL, "[]");
    expect(&rs, 400, "InvalidRequestException");
}

/* {====== authentication on */

static eng_api_response as(const char *key, const char *secret, const char *method,
                           const char *path, const char *query, const char *body, int *admitted) {
    test_req t;
    test_req_init(&t, method, path, query, body);
    test_req_sign(&t, key, secret, !strncmp(path, "/topics/", 8) ? "iotdata" : "iot",
                  t.rq.now);
    return call(&t, admitted);
}

Test(router_signed, no_credentials_is_refused_on_the_headers_and_changes_nothing) {
    int admitted;
    test_req t;
    test_req_init(&t, "POST", "/rules/r1", NULL, RULE);
    eng_api_response rs = call(&t, &admitted);
    cr_expect_not(admitted);
    cr_expect(rs.close);
    expect(&rs, 403, "MissingAuthenticationTokenException");
    cr_expect_eq(nrules(), 0);
    /* an unknown route is not told apart from a known one without credentials */
    rs = simple("GET", "/no/such/route", NULL, NULL);
    expect(&rs, 403, "MissingAuthenticationTokenException");
    rs = simple("GET", "/healthz", NULL, NULL);
    expect(&rs, 200, NULL);
}

Test(router_signed, roles) {
    int admitted;
    eng_api_response rs =
        as("AKIDPUB", "publisher-secret", "POST", "/rules/r1", NULL, RULE, &admitted);
    cr_expect(admitted, "a signature is checked with the body");
    expect(&rs, 403, "AccessDeniedException");
    cr_expect_eq(nrules(), 0, "a refused create creates nothing");
    rs = as("AKIDADMIN", "admin-secret", "POST", "/rules/r1", NULL, RULE, NULL);
    expect(&rs, 200, NULL);
    rs = as("AKIDREAD", "reader-secret", "GET", "/rules/r1", NULL, NULL, NULL);
    expect(&rs, 200, NULL);
    rs = as("AKIDREAD", "reader-secret", "GET", "/metrics", NULL, NULL, NULL);
    expect(&rs, 200, NULL);
    rs = as("AKIDREAD", "reader-secret", "POST", "/topics/a%2Fb", NULL, "{}", NULL);
    expect(&rs, 403, "AccessDeniedException");
    rs = as("AKIDREAD", "reader-secret", "DELETE", "/rules/r1", NULL, NULL, NULL);
    expect(&rs, 403, "AccessDeniedException");
    cr_expect_eq(nrules(), 1, "a refused delete deletes nothing");
    rs = as("AKIDPUB", "publisher-secret", "POST", "/topics/a%2Fb", "qos=1", "{}", NULL);
    expect(&rs, 200, NULL);
    rs = as("AKIDPUB", "publisher-secret", "GET", "/rules", NULL, NULL, NULL);
    expect(&rs, 403, "AccessDeniedException");
    rs = as("AKIDREAD", "reader-secret", "GET", "/no/such/route", NULL, NULL, NULL);
    expect(&rs, 404, "ResourceNotFoundException");
}

Test(router_signed, refusals_by_kind) {
    int admitted;
    eng_api_response rs =
        as("AKIDNOBODY", "admin-secret", "POST", "/rules/r1", NULL, RULE, &admitted);
    cr_expect_not(admitted);
    expect(&rs, 403, "UnrecognizedClientException");
    rs = as("AKIDADMIN", "wrong-secret", "POST", "/rules/r1", NULL, RULE, &admitted);
    expect(&rs, 403, "InvalidSignatureException");
    cr_expect_eq(nrules(), 0);
    test_req t;
    test_req_init(&t, "POST", "/rules/r1", NULL, RULE);
    test_req_sign(&t, "AKIDADMIN", "admin-secret", "iot", t.rq.now - 3600);
    rs = call(&t, &admitted);
    cr_expect_not(admitted);
    cr_expect(rs.body && strstr(rs.body, "Signature expired"), "%s", rs.body);
    expect(&rs, 403, "InvalidSignatureException");
    /* signed, then the body changed on the way */
    test_req_init(&t, "POST", "/rules/r1", NULL, RULE);
    test_req_sign(&t, "AKIDADMIN", "admin-secret", "iot", t.rq.now);
    t.rq.body = "{\"sql\": \"SELECT * FROM '#'\", \"actions\": []}";
    t.rq.body_len = strlen(t.rq.body);
    rs = call(&t, &admitted);
    expect(&rs, 403, "InvalidSignatureException");
    cr_expect_eq(nrules(), 0);
}

Test(router_signed, bearer_tokens) {
    test_req t;
    test_req_init(&t, "GET", "/rules", NULL, NULL);
    test_req_header(&t, "Authorization", "Bearer reader-token");
    eng_api_response rs = call(&t, NULL);
    expect(&rs, 200, NULL);
    test_req_init(&t, "GET", "/rules", NULL, NULL);
    test_req_header(&t, "Authorization", "Bearer wrong");
    rs = call(&t, NULL);
    cr_expect_eq(rs.nheaders, 1);
    cr_expect_str_eq(rs.headers[0].name, "WWW-Authenticate");
    expect(&rs, 401, "UnauthorizedException");
    test_req_init(&t, "POST", "/topics/a", NULL, NULL);
    test_req_header(&t, "Authorization", "Bearer reader-token");
    test_req_header(&t, "Content-Length", "10");
    int admitted;
    rs = call(&t, &admitted);
    cr_expect_not(admitted, "a token's role is settled on the headers");
    expect(&rs, 403, "AccessDeniedException");
}

/* }====== */

Test(router_signed, refusals_are_counted_for_metrics) {
    eng_api_response rs = simple("GET", "/rules", NULL, NULL);
    expect(&rs, 403, "MissingAuthenticationTokenException");
    rs = as("AKIDNOBODY", "x", "GET", "/rules", NULL, NULL, NULL);
    expect(&rs, 403, "UnrecognizedClientException");
    rs = as("AKIDREAD", "reader-secret", "GET", "/metrics", NULL, NULL, NULL);
    cr_expect(rs.body && strstr(rs.body, "sluice_http_refused_total{reason=\"missing\"} 1\n") &&
                  strstr(rs.body, "sluice_http_refused_total{reason=\"unknown_key\"} 1\n") &&
                  strstr(rs.body, "sluice_http_refused_total{reason=\"denied\"} 0\n"),
              "%s", rs.body);
    expect(&rs, 200, NULL);
}

/*
 * fuzz_rest_router.c -- the REST router (engine/api/) on arbitrary requests: method, raw path,
 * raw query, headers and body, with authentication off and on, signed or not. Behind it runs
 * the real thing: a rule registry, a worker, the dead-letter store, all in a temporary data
 * dir; the MQTT connections are made but never started, so no broker is needed and nothing
 * leaves the process. The fuzz build links an engine with only the republish and file actions
 * (tests/fuzz/CMakeLists.txt): a rule the fuzzer invents can make no network connection.
 *
 * Input layout:
 *   byte 0       flags: bit 0 authentication on; bit 1 sign the request (SigV4, as the AWS
 *                CLI does) with the credential bits 2-3 pick (admin, publisher, reader, an
 *                unknown key); bit 4 add a Bearer token instead (the reader's, or a wrong one
 *                with bit 5); bits 6-7 move the signing time (now, 899 s back, 901 s back, 901
 *                s ahead)
 *   then lines   method \n raw path \n raw query \n header lines "Name:value" \n (empty line)
 *   then         the body, to the end
 * Every response must carry a status from 100 to 599, and a JSON error its x-amzn-ErrorType.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../actions/action.h"
#include "../engine/api/api_test.h"

#define NOW 1700000000LL

static eng_config cfg_open, cfg_auth;
static eng_env env_open, env_auth;
static eng_api *api_open, *api_auth;
static char dir[64];
static unsigned long runs;

static const struct {
    const char *id, *secret;
} keys[] = {{"AKIDADMIN", "admin-secret"},
            {"AKIDPUB", "publisher-secret"},
            {"AKIDREAD", "reader-secret"},
            {"AKIDNOBODY", "nobody-secret"}};

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_rest_router: could not remove %s\n", dir);
}

static void setup(void) {
    eng_log_set_level(ENG_LOG_ERROR + 1); /* quiet: the fuzzer logs refusals by the million */
    snprintf(dir, sizeof dir, "/tmp/sluice-fuzz-router-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    eng_config_defaults(&cfg_open);
    snprintf(cfg_open.data_dir, sizeof cfg_open.data_dir, "%s", dir);
    cfg_open.workers = 1;
    /* never connected; a persistent session needs a client id (serve derives one) */
    snprintf(cfg_open.mqtt_client_id, sizeof cfg_open.mqtt_client_id, "sluice-fuzz");
    cfg_open.queue_depth = 64;
    cfg_open.action_queue_depth = 64;
    cfg_open.retry_attempts = 1;
    cfg_auth = cfg_open;
    static const int roles[] = {ENG_ROLE_ADMIN, ENG_ROLE_PUBLISHER, ENG_ROLE_READER};
    for (size_t i = 0; i < 3; i++) {
        eng_credential *c = &cfg_auth.credentials[cfg_auth.ncredentials++];
        snprintf(c->access_key_id, sizeof c->access_key_id, "%s", keys[i].id);
        snprintf(c->secret, sizeof c->secret, "%s", keys[i].secret);
        c->role = roles[i];
    }
    snprintf(cfg_auth.tokens[0].token, sizeof cfg_auth.tokens[0].token, "reader-token");
    cfg_auth.tokens[0].role = ENG_ROLE_READER;
    cfg_auth.ntokens = 1;
    env_open.cfg = &cfg_open;
    env_open.offline = 1; /* actions validate but never create a client that could connect */
    eng_error e;
    env_open.dlq = act_dlq_open(dir, cfg_open.dlq_max_bytes, cfg_open.dlq_max_age_s,
                                eng_env_host(&env_open), &e);
    env_open.registry = eng_registry_new(cfg_open.workers, &cfg_open, &env_open);
    env_open.workers = eng_workers_new(&cfg_open, env_open.registry, &env_open);
    env_open.mqtt = eng_mqtt_new(&env_open);
    if (!env_open.dlq || !env_open.registry || !env_open.workers || !env_open.mqtt) {
        fprintf(stderr, "fuzz_rest_router: setup failed (dlq %p: %s, registry %p, workers %p, "
                "mqtt %p)\n", (void *)env_open.dlq, env_open.dlq ? "" : e.message,
                (void *)env_open.registry, (void *)env_open.workers, (void *)env_open.mqtt);
        abort();
    }
    env_auth = env_open;
    env_auth.cfg = &cfg_auth;
    api_open = eng_api_new(&env_open, &e);
    api_auth = eng_api_new(&env_auth, &e);
    if (!api_open || !api_auth)
        abort();
}

/* Rules the fuzzer created stay in the registry (and on disk): drop them now and then so
 * memory and the data dir stay bounded. */
static void forget_rules(void) {
    size_t n;
    eng_rule **v = eng_registry_list(env_open.registry, &n);
    for (size_t i = 0; v && i < n; i++) {
        eng_error e;
        eng_registry_delete(env_open.registry, v[i]->name, &e);
        eng_rule_release(v[i]);
    }
    free(v);
    eng_registry_reclaim(env_open.registry);
}

/* The next '\n'-terminated line of text[*at..n), NUL-terminated in place; NULL at the end. */
static char *line(char *text, size_t n, size_t *at) {
    if (*at >= n)
        return NULL;
    char *s = text + *at, *nl = memchr(s, '\n', n - *at);
    if (!nl) {
        *at = n;
        return s; /* text[n] is a NUL */
    }
    *nl = '\0';
    *at = (size_t)(nl - text) + 1;
    return s;
}

static void check(const eng_api_response *rs) {
    if (rs->status < 100 || rs->status > 599)
        abort();
    if (rs->status >= 400 && rs->content_type && !strcmp(rs->content_type, "application/json") &&
        !rs->error_type)
        abort();
    if (rs->body_len && !rs->body)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready++)
        setup();
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    size_t n = size - 1;
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, data + 1, n);
    text[n] = '\0';
    size_t at = 0;
    const char *method = line(text, n, &at), *path = line(text, n, &at);
    const char *query = line(text, n, &at);
    test_req t;
    memset(&t, 0, sizeof t);
    char *h;
    while ((h = line(text, n, &at)) && *h && t.rq.nheaders < TEST_MAX_HEADERS - 2) {
        char *colon = strchr(h, ':');
        if (colon)
            *colon = '\0';
        test_req_header(&t, h, colon ? colon + 1 : "");
    }
    t.rq.method = method ? method : "GET";
    t.rq.path = path ? path : "/";
    t.rq.query = query ? query : "";
    t.rq.headers = t.h;
    t.rq.body = at < n ? text + at : NULL;
    t.rq.body_len = at < n ? n - at : 0;
    t.rq.client = "fuzz";
    t.rq.now = NOW;
    static const int64_t skew[] = {0, -899, -901, 901};
    if (flags & 2)
        test_req_sign(&t, keys[(flags >> 2) & 3].id, keys[(flags >> 2) & 3].secret,
                      (flags & 1) && !strncmp(t.rq.path, "/topics/", 8) ? "iotdata" : "iot",
                      NOW + skew[flags >> 6]);
    else if (flags & 16)
        test_req_header(&t, "Authorization", flags & 32 ? "Bearer wrong" : "Bearer reader-token");
    eng_api_response rs = {0};
    eng_api_handle(flags & 1 ? api_auth : api_open, &t.rq, &rs);
    check(&rs);
    eng_api_response_deinit(&rs);
    free(text);
    if (++runs % 256 == 0)
        forget_rules();
    return 0;
}

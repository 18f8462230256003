/*
 * test_kafka.c -- the Kafka action without an external cluster: open() validation against
 * librdkafka's configuration and sluice's allow-list (what a rule may make librdkafka do),
 * templates and format(), producer sharing, and deliveries to librdkafka's mock cluster
 * (rdkafka_mock.h, in this process, on 127.0.0.1) and to a closed port.
 */
#include <criterion/criterion.h>

#include "action_test.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "action.h"
#include "kafka/kafka_int.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h (kafka_int.h) */

extern const act_vtable act_kafka_vtable;

/* {====== helpers */

/* Nothing listens on port 1: a producer pointed there connects in the background and fails. */
#define NOWHERE "\"clientProperties\": {\"bootstrap.servers\": \"127.0.0.1:1\"}"

/* A one-broker mock cluster in this process (each test runs in its own process), started on
 * first use. Rules may not start one themselves (test.mock.* is refused): it listens. */
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;

static const char *mock_bootstraps(void) {
    if (!mock) {
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
        mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
        cr_assert_not_null(mock_rk, "%s", err);
        mock = rd_kafka_mock_cluster_new(mock_rk, 1);
        cr_assert_not_null(mock);
    }
    return rd_kafka_mock_cluster_bootstraps(mock);
}

static void mock_stop(void) {
    if (mock)
        rd_kafka_mock_cluster_destroy(mock);
    if (mock_rk)
        rd_kafka_destroy(mock_rk);
    mock = NULL;
    mock_rk = NULL;
}

TestSuite(kafka, .fini = mock_stop);

static act_instance *open_json(const char *json, eng_error *e) {
    return act_test_open(&act_kafka_vtable, NULL, json, e);
}

static act_instance *open_ok(const char *json) {
    eng_error e;
    act_instance *inst = open_json(json, &e);
    cr_assert_not_null(inst, "open failed for %s: %s", json, e.message);
    return inst;
}

/* open_ok() of the JSON fmt formats; "%s" in it is the mock cluster's bootstrap servers. */
static act_instance *open_mock(const char *fmt) {
    char json[2048];
    snprintf(json, sizeof json, fmt, mock_bootstraps());
    return open_ok(json);
}

#define MOCK "\"clientProperties\": {\"bootstrap.servers\": \"%s\""

static void open_fails(const char *json, const char *needle) {
    eng_error e;
    act_instance *inst = open_json(json, &e);
    cr_assert_null(inst, "accepted: %s", json);
    cr_assert_eq(e.status, 400);
    cr_assert_str_eq(e.type, "InvalidRequestException");
    cr_assert(strstr(e.message, needle), "error for %s is \"%s\", expected \"%s\"", json,
              e.message, needle);
}

/* A message whose templates substituted to fields[0..n); nulls may be NULL (none null). */
typedef struct msg {
    act_msg m;
    const char *f[8];
    size_t len[8];
    unsigned char null[8];
} msg;

static void msg_init(msg *x, const char *payload, const char *const *fields, size_t n,
                     const unsigned char *nulls) {
    memset(x, 0, sizeof *x);
    for (size_t i = 0; i < n; i++) {
        x->f[i] = fields[i];
        x->len[i] = strlen(fields[i]);
        x->null[i] = nulls ? nulls[i] : 0;
    }
    x->m.rule_name = "r";
    x->m.payload = payload;
    x->m.payload_len = strlen(payload);
    x->m.fields = x->f;
    x->m.field_lens = x->len;
    x->m.field_null = x->null;
}

static char *format1(act_instance *inst, const act_msg *m, int *rc) {
    act_buf b = {0};
    const act_msg *batch[] = {m};
    *rc = act_kafka_vtable.format(inst, batch, 1, &b);
    return b.p;
}

/* }====== */

/* {====== open() */

Test(kafka, open_requires_a_topic) {
    open_fails("{" NOWHERE "}", "\"topic\" is required");
    open_fails("{\"topic\": \"\", " NOWHERE "}", "\"topic\" must not be empty");
    open_fails("{\"topic\": 7, " NOWHERE "}", "\"topic\" must be a string");
}

Test(kafka, open_requires_bootstrap_servers) {
    open_fails("{\"topic\": \"t\"}", "\"clientProperties\" is required");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"acks\": \"all\"}}",
               "\"bootstrap.servers\" is required");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"\"}}",
               "\"bootstrap.servers\" is required");
    open_fails("{\"topic\": \"t\", \"clientProperties\": \"127.0.0.1:9092\"}",
               "\"clientProperties\" must be an object");
}

Test(kafka, open_rejects_a_property_not_on_the_allow_list_naming_it) {
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"linger.msec\": \"5\"}}",
               "clientProperties \"linger.msec\" is not one a rule may set");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"dr_msg_cb\": \"x\"}}",
               "clientProperties \"dr_msg_cb\" is not one a rule may set");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"offset.store.path\": \"/tmp/x\"}}",
               "clientProperties \"offset.store.path\" is not one a rule may set");
}

Test(kafka, open_rejects_a_value_librdkafka_refuses_quoting_librdkafka) {
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"acks\": \"sometimes\"}}",
               "clientProperties \"acks\" refused by librdkafka: Invalid value for "
               "configuration property \"request.required.acks\"");
}

Test(kafka, open_reports_conflicts_librdkafka_finds_when_creating_the_producer) {
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"acks\": \"1\", \"enable.idempotence\": \"true\"}}",
               "librdkafka refused clientProperties: `acks` must be set to `all`");
    cr_assert_eq(act_kafka__producer_count(), 0);
}

Test(kafka, weaker_acks_without_idempotence_setting_turn_the_default_idempotence_off) {
    act_instance *a = open_ok("{\"topic\": \"t\", \"clientProperties\": "
                              "{\"bootstrap.servers\": \"127.0.0.1:1\", \"acks\": 1}}");
    act_kafka_vtable.close(a);
}

Test(kafka, open_refuses_properties_that_load_code_or_run_commands) {
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"sasl.kerberos.kinit.cmd\": \"touch /tmp/pwned\"}}",
               "\"sasl.kerberos.kinit.cmd\" is not allowed: librdkafka pastes it into a shell "
               "command (kinit) that it runs");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"plugin.library.paths\": \"/tmp/x.so\"}}",
               "\"plugin.library.paths\" is not allowed");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"transactional.id\": \"x\"}}",
               "\"transactional.id\" is not allowed");
}

Test(kafka, open_rejects_unknown_parameters_and_bad_headers) {
    open_fails("{\"topic\": \"t\", \"qos\": 1, " NOWHERE "}", "unknown parameter \"qos\"");
    open_fails("{\"topic\": \"t\", \"headers\": {\"k\": \"v\"}, " NOWHERE "}",
               "\"headers\" must be an array");
    open_fails("{\"topic\": \"t\", \"headers\": [{\"key\": \"k\"}], " NOWHERE "}",
               "\"headers[0].value\" is required");
    open_fails("{\"topic\": \"t\", \"headers\": [{\"key\": \"k\", \"value\": \"v\", "
               "\"x\": 1}], " NOWHERE "}",
               "unknown parameter \"headers[0].x\"");
    open_fails("{\"topic\": \"t\", \"key\": 5, " NOWHERE "}", "\"key\" must be a string");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"h:1\", "
               "\"acks\": [1]}}",
               "\"clientProperties.acks\" must be a string, a number or a boolean");
    cr_assert_eq(act_kafka__producer_count(), 0);
}

Test(kafka, open_sets_one_lane_large_batches_and_the_topic_as_resource) {
    act_instance *a = open_ok("{\"destinationArn\": \"arn:aws:iot:us-east-1:1:ruledestination/"
                              "vpc/x\", \"topic\": \"telemetry-${topic(2)}\", " NOWHERE "}");
    cr_assert_eq(a->lanes, 1);
    cr_assert_geq(a->max_batch, 1000);
    cr_assert_str_eq(a->resource, "telemetry-${topic(2)}");
    act_kafka_vtable.close(a);
}

Test(kafka, templates_are_topic_key_partition_then_header_pairs) {
    act_instance *a = open_ok("{\"topic\": \"t-${topic(2)}\", \"key\": \"${deviceId}\", "
                              "\"partition\": \"${p}\", \"headers\": [{\"key\": \"src\", "
                              "\"value\": \"${topic()}\"}, {\"key\": \"${h}\", \"value\": "
                              "\"x\"}], " NOWHERE "}");
    const char *const *tpl;
    size_t n = act_kafka_vtable.templates(a, &tpl);
    const char *want[] = {"t-${topic(2)}", "${deviceId}", "${p}", "src", "${topic()}",
                          "${h}", "x"};
    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(tpl[i], want[i]);
    act_kafka_vtable.close(a);
}

/* }====== */

/* {====== the action boundary: what a rule can make librdkafka do
 *
 * Each hole is shown first against librdkafka itself (a control: the attack works on the
 * library as installed, so a test that sees no marker is not vacuous), then refused by sluice
 * with nothing run: the marker file a loaded library or a run command would leave never
 * appears. */

static char marker[64];

static void marker_init(void) {
    snprintf(marker, sizeof marker, "/tmp/sluice-marker-XXXXXX");
    int fd = mkstemp(marker);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(marker);
    setenv("SLUICE_MARKER_FILE", marker, 1);
}

static int marker_exists(void) {
    struct stat st;
    int there = stat(marker, &st) == 0;
    unlink(marker);
    return there;
}

/* rd_kafka_new() straight on librdkafka with the name/value pairs (NULL-terminated); waits up
 * to 5 s for the marker (librdkafka runs kinit on its own thread). */
static void raw_librdkafka(const char *const *kv) {
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
    for (size_t i = 0; kv[i]; i += 2)
        cr_assert_eq(rd_kafka_conf_set(c, kv[i], kv[i + 1], err, sizeof err), RD_KAFKA_CONF_OK,
                     "%s: %s", kv[i], err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    struct stat st;
    for (int i = 0; rk && i < 500 && stat(marker, &st) != 0; i++)
        usleep(10000);
    if (rk)
        rd_kafka_destroy(rk);
    else
        rd_kafka_conf_destroy(c);
}

Test(kafka, ssl_providers_cannot_load_a_library) {
    marker_init();
    /* control: the marker library marks when loaded, and librdkafka loads what it is given */
    void *h = dlopen(SLUICE_TEST_MARKER_SO, RTLD_NOW);
    cr_assert_not_null(h, "%s", dlerror());
    dlclose(h);
    cr_assert(marker_exists(), "the marker library did not mark");
    const char *attack[] = {"bootstrap.servers", "127.0.0.1:1", "security.protocol", "ssl",
                            "ssl.providers", SLUICE_TEST_MARKER_SO, NULL};
    raw_librdkafka(attack);
    cr_assert(marker_exists(), "control: librdkafka did not load ssl.providers");

    char json[1024];
    snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
             "\"127.0.0.1:1\", \"security.protocol\": \"ssl\", \"ssl.providers\": \"%s\"}}",
             SLUICE_TEST_MARKER_SO);
    open_fails(json, "clientProperties \"ssl.providers\" is not allowed: it makes OpenSSL load "
                     "a shared library into the service");
    cr_assert_not(marker_exists(), "the rule was refused, but the library was loaded");
    snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
             "\"127.0.0.1:1\", \"security.protocol\": \"ssl\", \"ssl.engine.location\": \"%s\"}}",
             SLUICE_TEST_MARKER_SO);
    open_fails(json, "\"ssl.engine.location\" is not allowed");
    snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
             "\"127.0.0.1:1\", \"plugin.library.paths\": \"%s\"}}", SLUICE_TEST_MARKER_SO);
    open_fails(json, "\"plugin.library.paths\" is not allowed");
    cr_assert_not(marker_exists());
}

/* librdkafka 2.0.2 runs its kinit command, with sasl.kerberos.principal and keytab pasted in,
 * through the shell when a GSSAPI producer starts. */
Test(kafka, the_kinit_command_never_runs) {
    marker_init();
    char principal[200];
    snprintf(principal, sizeof principal, "x; : > %s; :", marker);
    /* control: the principal is run as a command (the kinit it is pasted into need not exist) */
    const char *inject[] = {"bootstrap.servers", "127.0.0.1:1", "security.protocol",
                            "sasl_plaintext", "sasl.kerberos.keytab", "/nonexistent",
                            "sasl.kerberos.principal", principal, NULL};
    raw_librdkafka(inject);
    cr_assert(marker_exists(), "control: the principal was not run as a command");

    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"127.0.0.1:1\", "
               "\"security.protocol\": \"sasl_plaintext\"}}",
               "\"security.protocol\" sasl_plaintext needs \"sasl.mechanism\"");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"127.0.0.1:1\", "
               "\"security.protocol\": \"SASL_SSL\"}}",
               "needs \"sasl.mechanism\"");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"127.0.0.1:1\", "
               "\"security.protocol\": \"sasl_plaintext\", \"sasl.mechanism\": \"GSSAPI\"}}",
               "\"sasl.mechanism\" must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"127.0.0.1:1\", "
               "\"security.protocol\": \"sasl_plaintext\", \"sasl.mechanisms\": \"OAUTHBEARER\"}}",
               "\"sasl.mechanisms\" must be PLAIN");
    char json[1024];
    snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
             "\"127.0.0.1:1\", \"security.protocol\": \"sasl_plaintext\", \"sasl.mechanism\": "
             "\"PLAIN\", \"sasl.kerberos.principal\": \"%s\"}}", principal);
    open_fails(json, "\"sasl.kerberos.principal\" is not allowed");
    snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
             "\"127.0.0.1:1\", \"security.protocol\": \"sasl_plaintext\", \"sasl.mechanism\": "
             "\"PLAIN\", \"sasl.kerberos.kinit.cmd\": \": > %s\"}}", marker);
    open_fails(json, "\"sasl.kerberos.kinit.cmd\" is not allowed");
    usleep(200 * 1000);
    cr_assert_not(marker_exists(), "kinit ran for a refused rule");
    /* name and password mechanisms run nothing */
    act_instance *a = open_ok("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
                              "\"127.0.0.1:1\", \"security.protocol\": \"sasl_plaintext\", "
                              "\"sasl.mechanism\": \"SCRAM-SHA-256\", \"sasl.username\": \"u\", "
                              "\"sasl.password\": \"p\"}}");
    act_kafka_vtable.close(a);
    cr_assert_not(marker_exists(), "kinit ran for a SCRAM producer");
}

Test(kafka, properties_that_listen_fetch_log_or_break_delivery_are_refused) {
    static const struct {
        const char *prop, *value, *msg;
    } t[] = {
        {"test.mock.num.brokers", "3", "the mock cluster listens on network ports"},
        {"sasl.oauthbearer.token.endpoint.url", "http://169.254.169.254/", "fetch URLs"},
        {"sasl.oauthbearer.method", "oidc", "fetch URLs"},
        {"enable.sasl.oauthbearer.unsecure.jwt", "true", "OAUTHBEARER is not supported"},
        {"debug", "all", "debug logs carry credentials"},
        {"log_level", "7", "the service's logging"},
        {"log.queue", "true", "the service's logging"},
        {"delivery.report.only.error", "true", "delivery report of every message"},
        {"ssl.engine.id", "dynamic", "engine"},
        {"interceptors", "x", "loads code"},
        {"statistics.interval.ms", "10", "is not one a rule may set"},
        {"internal.termination.signal", "9", "is not one a rule may set"},
        {"ssl.ca.certificate.stores", "Root", "is not one a rule may set"},
        {"queued.min.messages", "10", "a consumer's setting"},
        {"fetch.wait.max.ms", "1", "a consumer's setting"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": "
                 "{\"bootstrap.servers\": \"127.0.0.1:1\", \"%s\": \"%s\"}}", t[i].prop,
                 t[i].value);
        open_fails(json, t[i].msg);
    }
    cr_assert_eq(act_kafka__producer_count(), 0);
}

/* Files only beneath actions.kafka.certDir, judged by where they really lead. */
Test(kafka, file_properties_only_beneath_the_certificate_directory) {
    act_test_certs c;
    cr_assert_eq(act_test_certs_make(&c), 0);
    static eng_host h;
    h = act_test_host();
    h.cert_dir = c.certs;
    static const struct {
        const char *value; /* %s: the base directory */
        const char *msg;   /* NULL: accepted */
    } t[] = {
        {"%s/certs/ca.pem", NULL},
        {"ca.pem", NULL},
        {"probe", NULL},
        {"%s/certs/../certs/ca.pem", NULL},
        {"%s/secret.pem", "is not beneath the certificate directory"},
        {"%s/certs/../secret.pem", "is not beneath the certificate directory"},
        {"../secret.pem", "is not beneath the certificate directory"},
        {"link.pem", "is not beneath the certificate directory"},
        {"/etc/passwd", "is not beneath the certificate directory"},
        {"missing.pem", "cannot be resolved: No such file or directory"},
    };
    const char *props[] = {"ssl.ca.location", "ssl.certificate.location", "ssl.key.location",
                           "ssl.crl.location", "ssl.keystore.location"};
    for (size_t p = 0; p < sizeof props / sizeof props[0]; p++) {
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            if (!strcmp(t[i].value, "probe") && strcmp(props[p], "ssl.ca.location"))
                continue;
            char value[256], json[512];
            snprintf(value, sizeof value, t[i].value, c.base);
            snprintf(json, sizeof json, "{\"topic\": \"t\", \"clientProperties\": "
                     "{\"bootstrap.servers\": \"127.0.0.1:1\", \"ssl.keystore.password\": \"x\", "
                     "\"%s\": \"%s\"}}", props[p], value);
            eng_error e;
            act_instance *a = act_test_open(&act_kafka_vtable, &h, json, &e);
            if (!t[i].msg) {
                cr_expect_not_null(a, "%s = %s refused: %s", props[p], value, e.message);
                if (a)
                    act_kafka_vtable.close(a);
            } else {
                cr_expect_null(a, "%s = %s accepted", props[p], value);
                cr_expect(a || strstr(e.message, t[i].msg), "%s = %s: %s", props[p], value,
                          e.message);
                if (a)
                    act_kafka_vtable.close(a);
            }
        }
    }
    /* without a certificate directory, no file at all */
    open_fails("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": \"127.0.0.1:1\", "
               "\"ssl.ca.location\": \"/etc/ssl/certs\"}}",
               "no certificate directory is configured (actions.kafka.certDir)");
    act_test_certs_remove(&c);
}

Test(kafka, an_offline_host_validates_without_creating_a_producer) {
    static eng_host h;
    h = act_test_host();
    h.offline = 1;
    eng_error e;
    act_instance *a = act_test_open(&act_kafka_vtable, &h, "{\"topic\": \"t\", "
                                    "\"clientProperties\": {\"bootstrap.servers\": \"h:1\"}}",
                                    &e);
    cr_assert_not_null(a, "%s", e.message);
    cr_assert_eq(act_kafka__producer_count(), 0, "an offline producer is never registered");
    a->vt = &act_kafka_vtable;
    act_kafka_vtable.close(a);
    cr_assert_null(act_test_open(&act_kafka_vtable, &h, "{\"topic\": \"t\", \"clientProperties\": "
                                 "{\"bootstrap.servers\": \"h:1\", \"debug\": \"all\"}}", &e));
}

/* }====== */

/* {====== format() */

Test(kafka, format_renders_one_json_line_per_record_with_substituted_templates) {
    act_instance *a = open_ok("{\"topic\": \"tele-${topic(2)}\", \"key\": \"${deviceId}\", "
                              "\"headers\": [{\"key\": \"site\", \"value\": \"${topic(2)}\"}, "
                              "{\"key\": \"q\", \"value\": \"a\\\"b\"}], " NOWHERE "}");
    const char *f1[] = {"tele-s1", "dev-1", "site", "s1", "q", "a\"b"};
    const char *f2[] = {"tele-s2", "dev-2", "site", "s2", "q", "a\"b"};
    msg m1, m2;
    msg_init(&m1, "{\"seq\":1,\"t\":\"x\\ny\"}", f1, 6, NULL);
    msg_init(&m2, "{\"seq\":2}", f2, 6, NULL);
    const act_msg *batch[] = {&m1.m, &m2.m};
    act_buf b = {0};
    cr_assert_eq(act_kafka_vtable.format(a, batch, 2, &b), 0, "%s", b.p);
    cr_assert_str_eq(b.p,
                     "{\"topic\":\"tele-s1\",\"partition\":null,\"key\":\"dev-1\",\"headers\":["
                     "{\"key\":\"site\",\"value\":\"s1\"},{\"key\":\"q\",\"value\":\"a\\\"b\"}],"
                     "\"value\":\"{\\\"seq\\\":1,\\\"t\\\":\\\"x\\\\ny\\\"}\"}\n"
                     "{\"topic\":\"tele-s2\",\"partition\":null,\"key\":\"dev-2\",\"headers\":["
                     "{\"key\":\"site\",\"value\":\"s2\"},{\"key\":\"q\",\"value\":\"a\\\"b\"}],"
                     "\"value\":\"{\\\"seq\\\":2}\"}\n");
    act_buf_deinit(&b);
    act_kafka_vtable.close(a);
}

Test(kafka, format_shows_null_key_and_header_values_and_an_explicit_partition) {
    act_instance *a = open_ok("{\"topic\": \"t\", \"key\": \"${k}\", \"partition\": \"${p}\", "
                              "\"headers\": [{\"key\": \"h\", \"value\": \"${v}\"}], "
                              NOWHERE "}");
    const char *f[] = {"t", "", "3", "h", ""};
    const unsigned char nulls[] = {0, 1, 0, 0, 1};
    msg m;
    msg_init(&m, "raw\x01", f, 5, nulls);
    int rc;
    char *s = format1(a, &m.m, &rc);
    cr_assert_eq(rc, 0, "%s", s);
    cr_assert_str_eq(s, "{\"topic\":\"t\",\"partition\":3,\"key\":null,\"headers\":[{\"key\":"
                        "\"h\",\"value\":null}],\"value\":\"raw\\u0001\"}\n");
    free(s);
    /* An empty (not null) key is a key: it hashes to a fixed partition. */
    const unsigned char none[] = {0, 0, 0, 0, 0};
    msg_init(&m, "{}", f, 5, none);
    s = format1(a, &m.m, &rc);
    cr_assert(strstr(s, "\"key\":\"\","), "%s", s);
    free(s);
    act_kafka_vtable.close(a);
}

Test(kafka, format_refuses_a_non_integer_partition_and_a_bad_topic_name) {
    act_instance *a = open_ok("{\"topic\": \"${t}\", \"partition\": \"${p}\", " NOWHERE "}");
    const char *bad_part[] = {"t", "2.5"};
    const char *neg_part[] = {"t", "-1"};
    const char *bad_topic[] = {"has space", "1"};
    const char *empty_part[] = {"t", ""};
    msg m;
    int rc;
    char *s;
    msg_init(&m, "{}", bad_part, 2, NULL);
    s = format1(a, &m.m, &rc);
    cr_assert_eq(rc, -1);
    cr_assert_str_eq(s, "kafka partition '2.5' is not a non-negative integer");
    free(s);
    msg_init(&m, "{}", neg_part, 2, NULL);
    s = format1(a, &m.m, &rc);
    cr_assert_eq(rc, -1);
    free(s);
    msg_init(&m, "{}", bad_topic, 2, NULL);
    s = format1(a, &m.m, &rc);
    cr_assert_eq(rc, -1);
    cr_assert(strstr(s, "kafka topic 'has space' is not a valid topic name"), "%s", s);
    free(s);
    msg_init(&m, "{}", empty_part, 2, NULL);
    s = format1(a, &m.m, &rc);
    cr_assert_eq(rc, 0, "%s", s);
    cr_assert(strstr(s, "\"partition\":null"), "%s", s);
    free(s);
    act_kafka_vtable.close(a);
}

/* }====== */

/* {====== producer sharing */

Test(kafka, instances_with_the_same_properties_share_one_producer) {
    cr_assert_eq(act_kafka__producer_count(), 0);
    act_instance *a = open_ok("{\"topic\": \"a\", \"clientProperties\": {\"bootstrap.servers\": "
                              "\"127.0.0.1:1\", \"linger.ms\": \"7\"}}");
    /* Same set in another order, and a number for a string: the same canonical set. */
    act_instance *b = open_ok("{\"topic\": \"b\", \"key\": \"k\", \"clientProperties\": "
                              "{\"linger.ms\": 7, \"bootstrap.servers\": \"127.0.0.1:1\"}}");
    cr_assert_eq(act_kafka__producer_count(), 1);
    act_instance *c = open_ok("{\"topic\": \"a\", \"clientProperties\": {\"bootstrap.servers\": "
                              "\"127.0.0.1:1\", \"linger.ms\": \"8\"}}");
    cr_assert_eq(act_kafka__producer_count(), 2);
    act_kafka_vtable.close(a);
    cr_assert_eq(act_kafka__producer_count(), 2, "b still holds the shared producer");
    act_kafka_vtable.close(b);
    cr_assert_eq(act_kafka__producer_count(), 1);
    act_kafka_vtable.close(c);
    cr_assert_eq(act_kafka__producer_count(), 0);
}

/* }====== */

/* {====== deliver() */

Test(kafka, deliver_writes_a_batch_to_the_mock_cluster) {
    act_instance *a = open_mock("{\"topic\": \"${t}\", \"key\": \"${k}\", \"headers\": "
                                "[{\"key\": \"h\", \"value\": \"v\"}], " MOCK "}}");
    const char *f[] = {"unit", "dev-1", "h", "v"};
    msg m[50];
    const act_msg *batch[50];
    for (int i = 0; i < 50; i++) {
        msg_init(&m[i], "{\"n\":1}", f, 4, NULL);
        batch[i] = &m[i].m;
    }
    size_t ndone = 99;
    char err[512] = "";
    act_result r = act_kafka_vtable.deliver(a, 0, batch, 50, &ndone, err, sizeof err);
    cr_assert_eq(r, ACT_OK, "%s", err);
    cr_assert_eq(ndone, 50);
    act_kafka_vtable.close(a);
}

Test(kafka, deliver_stops_at_the_first_message_that_cannot_be_sent) {
    act_instance *a = open_mock("{\"topic\": \"${t}\", \"partition\": \"${p}\", " MOCK "}}");
    const char *ok[] = {"unit", ""};
    const char *bad[] = {"unit", "one"};
    msg m[3];
    msg_init(&m[0], "{}", ok, 2, NULL);
    msg_init(&m[1], "{}", bad, 2, NULL);
    msg_init(&m[2], "{}", ok, 2, NULL);
    const act_msg *batch[] = {&m[0].m, &m[1].m, &m[2].m};
    size_t ndone = 99;
    char err[512] = "";
    act_result r = act_kafka_vtable.deliver(a, 0, batch, 3, &ndone, err, sizeof err);
    cr_assert_eq(r, ACT_FAIL);
    cr_assert_eq(ndone, 1);
    cr_assert_str_eq(err, "kafka partition 'one' is not a non-negative integer");
    act_kafka_vtable.close(a);
}

Test(kafka, deliver_fails_a_record_larger_than_message_max_bytes) {
    act_instance *a = open_mock("{\"topic\": \"unit\", " MOCK ", \"message.max.bytes\": "
                                "\"1000\"}}");
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    const char *f[] = {"unit"};
    msg m[2];
    msg_init(&m[0], "{}", f, 1, NULL);
    msg_init(&m[1], big, f, 1, NULL);
    const act_msg *batch[] = {&m[0].m, &m[1].m};
    size_t ndone = 99;
    char err[512] = "";
    act_result r = act_kafka_vtable.deliver(a, 0, batch, 2, &ndone, err, sizeof err);
    cr_assert_eq(r, ACT_FAIL, "%s", err);
    cr_assert_eq(ndone, 1);
    cr_assert(strstr(err, "kafka topic 'unit': ") && strstr(err, "MSG_SIZE_TOO_LARGE"), "%s",
              err);
    act_kafka_vtable.close(a);
}

Test(kafka, deliver_fails_a_partition_the_topic_does_not_have) {
    act_instance *a = open_mock("{\"topic\": \"unit\", \"partition\": \"${p}\", " MOCK "}}");
    const char *f0[] = {"unit", "0"};
    const char *f99[] = {"unit", "99"};
    msg m[2];
    msg_init(&m[0], "{}", f0, 2, NULL);
    msg_init(&m[1], "{}", f99, 2, NULL);
    const act_msg *batch[] = {&m[0].m, &m[1].m};
    size_t ndone = 99;
    char err[512] = "";
    act_result r = act_kafka_vtable.deliver(a, 0, batch, 2, &ndone, err, sizeof err);
    cr_assert_eq(r, ACT_FAIL, "%s", err);
    cr_assert_eq(ndone, 1);
    cr_assert(strstr(err, "UNKNOWN_PARTITION"), "%s", err);
    act_kafka_vtable.close(a);
}

Test(kafka, deliver_to_an_unreachable_cluster_is_a_retry_after_the_message_timeout) {
    act_instance *a = open_ok("{\"topic\": \"t\", \"clientProperties\": {\"bootstrap.servers\": "
                              "\"127.0.0.1:1\", \"message.timeout.ms\": \"300\"}}");
    const char *f[] = {"t"};
    msg m;
    msg_init(&m, "{}", f, 1, NULL);
    const act_msg *batch[] = {&m.m};
    size_t ndone = 99;
    char err[512] = "";
    act_result r = act_kafka_vtable.deliver(a, 0, batch, 1, &ndone, err, sizeof err);
    cr_assert_eq(r, ACT_RETRY, "%s", err);
    cr_assert_eq(ndone, 0);
    cr_assert(strstr(err, "_MSG_TIMED_OUT"), "%s", err);
    act_kafka_vtable.close(a);
}

/* }====== */

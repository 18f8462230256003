/*
 * test_postgres.c -- the postgres action without a server: statement parsing into bound
 * parameters, open() validation, format(), SQLSTATE classification, and one delivery to a
 * closed port (a transient failure).
 */
#include <criterion/criterion.h>

#include "action_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "action.h"
#include "postgres/pg_int.h"

extern const act_vtable act_postgres_vtable;

/* {====== helpers */

static act_pg_stmt parse_ok(const char *text) {
    act_pg_stmt st;
    char err[400] = "";
    int rc = act_pg__stmt_parse(text, &st, err, sizeof err);
    cr_assert_eq(rc, 0, "parse of %s failed: %s", text, err);
    return st;
}

static void parse_fails(const char *text, const char *needle) {
    act_pg_stmt st;
    char err[400] = "";
    cr_assert_eq(act_pg__stmt_parse(text, &st, err, sizeof err), -1, "accepted: %s", text);
    cr_assert(strstr(err, needle), "error for %s is \"%s\", expected \"%s\"", text, err, needle);
    cr_assert_null(st.sql);
    cr_assert_eq(st.nparams, 0);
}

static act_instance *open_json(const char *json, eng_error *e) {
    return act_test_open(&act_postgres_vtable, NULL, json, e);
}

static void open_fails(const char *json, const char *needle) {
    eng_error e;
    act_instance *inst = open_json(json, &e);
    cr_assert_null(inst, "accepted: %s", json);
    cr_assert_eq(e.status, 400);
    cr_assert_str_eq(e.type, "InvalidRequestException");
    cr_assert(strstr(e.message, needle), "message \"%s\" lacks \"%s\"", e.message, needle);
}

/* }====== */

/* {====== statement parsing */

Test(postgres, templates_become_numbered_parameters) {
    act_pg_stmt st = parse_ok("INSERT INTO t(dev, temp) VALUES (${deviceId}, ${temperature})");
    cr_assert_str_eq(st.sql, "INSERT INTO t(dev, temp) VALUES ($1, $2)");
    cr_assert_eq(st.nparams, 2);
    cr_assert_str_eq(st.tpl[0], "${deviceId}");
    cr_assert_str_eq(st.tpl[1], "${temperature}");
    act_pg__stmt_deinit(&st);
}

Test(postgres, nested_braces_and_quotes_stay_inside_one_expression) {
    act_pg_stmt st = parse_ok("SELECT ${get(x, '}')}, ${ {'a': {'b': 1}}.a.b }, "
                              "${concat('it''s {', \"}\")}, ${'a\\'}'}");
    cr_assert_str_eq(st.sql, "SELECT $1, $2, $3, $4");
    cr_assert_eq(st.nparams, 4);
    cr_assert_str_eq(st.tpl[0], "${get(x, '}')}");
    cr_assert_str_eq(st.tpl[1], "${ {'a': {'b': 1}}.a.b }");
    cr_assert_str_eq(st.tpl[2], "${concat('it''s {', \"}\")}");
    cr_assert_str_eq(st.tpl[3], "${'a\\'}'}");
    act_pg__stmt_deinit(&st);
}

Test(postgres, text_outside_templates_is_copied_unchanged) {
    const char *cases[][2] = {
        {"INSERT INTO t VALUES (${a}, $$it's$$, $tag$a$$b$tag$, 'q''s', \"Col\"\"x\")",
         "INSERT INTO t VALUES ($1, $$it's$$, $tag$a$$b$tag$, 'q''s', \"Col\"\"x\")"},
        {"UPDATE t SET a = a$b + 1 WHERE k = ${k} -- done\n",
         "UPDATE t SET a = a$b + 1 WHERE k = $1 -- done\n"},
        {"SELECT E'it\\'s ' || ${a} /* c /* nested */ c */, $1",
         "SELECT E'it\\'s ' || $1 /* c /* nested */ c */, $1"},
        {"SELECT 1", "SELECT 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        act_pg_stmt st = parse_ok(cases[i][0]);
        cr_expect_str_eq(st.sql, cases[i][1]);
        act_pg__stmt_deinit(&st);
    }
}

Test(postgres, templates_inside_sql_quotes_or_comments_are_refused) {
    parse_fails("INSERT INTO t VALUES ('${a}')", "inside a quoted SQL string");
    parse_fails("INSERT INTO t VALUES (E'\\'${a}')", "inside a quoted SQL string");
    parse_fails("INSERT INTO \"${t}\" VALUES (1)", "inside a quoted SQL identifier");
    parse_fails("INSERT INTO t VALUES ($$${a}$$)", "inside a dollar-quoted SQL string");
    parse_fails("INSERT INTO t VALUES ($q$ $$ ${a}$q$)", "inside a dollar-quoted SQL string");
    parse_fails("INSERT INTO t VALUES (1) -- ${a}", "inside an SQL comment");
    parse_fails("INSERT INTO t /* /* */ ${a} */ VALUES (1)", "inside an SQL comment");
}

Test(postgres, bad_statements_are_refused) {
    parse_fails("", "empty");
    parse_fails("  \n\t", "empty");
    parse_fails("INSERT INTO t VALUES (${a)", "not closed");
    parse_fails("INSERT INTO t VALUES (${get(a, '}))", "not closed");
    parse_fails("INSERT INTO t VALUES (${})", "empty substitution");
    parse_fails("INSERT INTO t VALUES (${  })", "empty substitution");
}

Test(postgres, at_most_256_parameters) {
    char text[4096] = "SELECT ";
    for (int i = 0; i < 256; i++)
        sprintf(text + strlen(text), "%s${a%d}", i ? ", " : "", i);
    act_pg_stmt st = parse_ok(text);
    cr_assert_eq(st.nparams, 256);
    cr_assert(strstr(st.sql, ", $256") != NULL && !strstr(st.sql, "$257"));
    cr_assert_str_eq(st.tpl[255], "${a255}");
    act_pg__stmt_deinit(&st);
    strcat(text, ", ${a256}");
    parse_fails(text, "more than 256");
}

/* }====== */

/* {====== open() */

Test(postgres, open_sets_lanes_batch_nulls_and_a_password_free_resource) {
    eng_error e;
    act_instance *inst = open_json(
        "{\"conninfo\": \"postgresql://iot:s3cret@db.example:5433/telemetry?sslmode=disable\","
        " \"statement\": \"INSERT INTO t VALUES (${a}, ${b})\"}", &e);
    cr_assert_not_null(inst, "%s", e.message);
    cr_assert_eq(inst->lanes, 2);
    cr_assert_eq(inst->max_batch, 1000);
    cr_assert_eq(inst->wants_nulls, 1);
    cr_assert_str_eq(inst->resource, "postgresql://iot@db.example:5433/telemetry");
    cr_assert_null(strstr(inst->resource, "s3cret"));
    const char *const *tpl;
    cr_assert_eq(act_postgres_vtable.templates(inst, &tpl), 2);
    cr_assert_str_eq(tpl[0], "${a}");
    cr_assert_str_eq(tpl[1], "${b}");
    act_postgres_vtable.close(inst);

    inst = open_json("{\"conninfo\": \"host=127.0.0.1 port=5999 dbname=d user=u password=pw\","
                     " \"statement\": \"SELECT 1\", \"poolSize\": 16, \"batchSize\": 1}", &e);
    cr_assert_not_null(inst, "%s", e.message);
    cr_assert_eq(inst->lanes, 16);
    cr_assert_eq(inst->max_batch, 1);
    cr_assert_str_eq(inst->resource, "postgresql://u@127.0.0.1:5999/d");
    cr_assert_eq(act_postgres_vtable.templates(inst, &tpl), 0);
    act_postgres_vtable.close(inst);
}

Test(postgres, open_rejects_bad_parameters) {
    const char *stmt = "\"statement\": \"INSERT INTO t VALUES (${a})\"";
    char j[512];
    open_fails("{\"statement\": \"SELECT 1\"}", "\"conninfo\" is required");
    open_fails("{\"conninfo\": \"\", \"statement\": \"SELECT 1\"}", "\"conninfo\" must not be empty");
    open_fails("{\"conninfo\": \"host=127.0.0.1 dbname=x\"}", "\"statement\" is required");
    open_fails("{\"conninfo\": \"host=127.0.0.1 dbname=x\", \"statement\": \"\"}", "empty");
    snprintf(j, sizeof j, "{\"conninfo\": \"host=127.0.0.1 dbname=x\", %s, \"table\": \"t\"}", stmt);
    open_fails(j, "unknown parameter \"table\"");
    snprintf(j, sizeof j, "{\"conninfo\": \"host='unterminated\", %s}", stmt);
    open_fails(j, "does not parse");
    snprintf(j, sizeof j, "{\"conninfo\": \"nosuchkey=1\", %s}", stmt);
    open_fails(j, "does not parse");
    const char *pools[] = {"0", "17", "\"2\"", "1.5"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(j, sizeof j, "{\"conninfo\": \"host=127.0.0.1 dbname=x\", %s, \"poolSize\": %s}", stmt,
                 pools[i]);
        open_fails(j, "\"poolSize\" must be an integer from 1 to 16");
    }
    snprintf(j, sizeof j, "{\"conninfo\": \"host=127.0.0.1 dbname=x\", %s, \"batchSize\": 0}", stmt);
    open_fails(j, "\"batchSize\" must be an integer");
    snprintf(j, sizeof j, "{\"conninfo\": \"host=127.0.0.1 dbname=x\", \"statement\": \"SELECT '${a}'\"}");
    open_fails(j, "inside a quoted SQL string");
}

/* }====== */

/* {====== the conninfo boundary: what a rule may make libpq read or log in as */

static eng_host pg_host;

/* act_pg__conninfo() under pg_host; NULL when accepted, else the message. */
static const char *conninfo_error(const char *conninfo, act_pg_params *p) {
    static char err[600];
    if (act_pg__conninfo(conninfo, &pg_host, p, err, sizeof err) == 0)
        return NULL;
    return err;
}

static void conninfo_refused(const char *conninfo, const char *needle) {
    act_pg_params p;
    const char *err = conninfo_error(conninfo, &p);
    cr_assert_not_null(err, "accepted: %s", conninfo);
    cr_assert(strstr(err, needle), "%s: \"%s\" lacks \"%s\"", conninfo, err, needle);
    cr_assert_eq(p.n, 0);
}

static const char *param(const act_pg_params *p, const char *key) {
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->keys[i], key))
            return p->vals[i];
    return NULL;
}

Test(postgres, file_parameters_only_beneath_the_certificate_directory) {
    act_test_certs c;
    cr_assert_eq(act_test_certs_make(&c), 0);
    pg_host = act_test_host();
    const char *params[] = {"sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir",
                            "passfile"};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        char ci[512];
        /* no certificate directory: no file at all */
        snprintf(ci, sizeof ci, "host=127.0.0.1 %s=%s", params[i], c.inside);
        conninfo_refused(ci, "no certificate directory is configured");
        pg_host.cert_dir = c.certs;
        act_pg_params p;
        const char *err = conninfo_error(ci, &p);
        cr_assert_null(err, "%s: %s", ci, err);
        cr_expect_str_eq(param(&p, params[i]), c.inside);
        act_pg__params_deinit(&p);
        snprintf(ci, sizeof ci, "host=127.0.0.1 %s=ca.pem", params[i]);
        cr_assert_null(conninfo_error(ci, &p), "relative to the certificate directory");
        cr_expect_str_eq(param(&p, params[i]), c.inside, "handed to libpq resolved");
        act_pg__params_deinit(&p);
        snprintf(ci, sizeof ci, "host=127.0.0.1 %s=%s", params[i], c.outside);
        conninfo_refused(ci, "is not beneath the certificate directory");
        snprintf(ci, sizeof ci, "host=127.0.0.1 %s=../secret.pem", params[i]);
        conninfo_refused(ci, "is not beneath the certificate directory");
        snprintf(ci, sizeof ci, "host=127.0.0.1 %s=link.pem", params[i]);
        conninfo_refused(ci, "is not beneath the certificate directory");
        snprintf(ci, sizeof ci, "postgresql://u@127.0.0.1/d?%s=/etc/passwd", params[i]);
        conninfo_refused(ci, "is not beneath the certificate directory");
        pg_host.cert_dir = "";
    }
    act_test_certs_remove(&c);
}

/* Files not given are set to a name that cannot exist: libpq never falls back to the service
 * user's ~/.pgpass or ~/.postgresql/ client certificate. */
Test(postgres, absent_files_never_fall_back_to_the_service_users_home) {
    pg_host = act_test_host();
    act_pg_params p;
    const char *err = conninfo_error("postgresql://u@db.example:5433/d?sslmode=require", &p);
    cr_assert_null(err, "%s", err);
    const char *files[] = {"passfile", "sslcert", "sslkey", "sslrootcert", "sslcrl",
                           "sslcrldir"};
    for (size_t i = 0; i < 6; i++)
        cr_expect_str_eq(param(&p, files[i]), "/dev/null/sluice-none", "%s", files[i]);
    cr_expect_str_eq(param(&p, "gssencmode"), "disable");
    cr_expect_str_eq(param(&p, "host"), "db.example");
    cr_expect_str_eq(param(&p, "port"), "5433");
    cr_expect_str_eq(param(&p, "sslmode"), "require");
    cr_expect_str_eq(param(&p, "connect_timeout"), "10");
    cr_expect_null(p.keys[p.n], "NULL-terminated for PQconnectdbParams");
    act_pg__params_deinit(&p);
}

Test(postgres, sockets_services_kerberos_and_unknown_keywords_are_refused) {
    pg_host = act_test_host();
    conninfo_refused("dbname=x", "needs \"host\"");
    conninfo_refused("host=/var/run/postgresql dbname=x", "names a Unix socket");
    conninfo_refused("host=@sluice dbname=x", "names a Unix socket");
    conninfo_refused("host=a.example,/tmp dbname=x", "names a Unix socket");
    conninfo_refused("host=a.example,,b.example dbname=x", "names a Unix socket");
    conninfo_refused("postgresql:///d?host=/tmp", "names a Unix socket");
    conninfo_refused("host=127.0.0.1 service=prod", "\"service\" is not allowed");
    conninfo_refused("host=127.0.0.1 krbsrvname=postgres", "\"krbsrvname\" is not allowed");
    conninfo_refused("host=127.0.0.1 gsslib=gssapi", "\"gsslib\" is not allowed");
    conninfo_refused("host=127.0.0.1 gssencmode=prefer", "\"gssencmode\" must be disable");
    conninfo_refused("host=127.0.0.1 nosuchkey=1", "does not parse");
    act_pg_params p;
    cr_assert_null(conninfo_error("hostaddr=127.0.0.1 gssencmode=disable", &p));
    act_pg__params_deinit(&p);
}

/* libpq would send the service's PGPASSWORD (or a PGSERVICE password) to the rule's server. */
Test(postgres, the_services_password_is_never_lent_to_a_rule) {
    pg_host = act_test_host();
    setenv("PGPASSWORD", "the-service-secret", 1);
    conninfo_refused("host=attacker.example user=postgres", "PGPASSWORD or PGSERVICE");
    act_pg_params p;
    cr_assert_null(conninfo_error("host=db.example user=u password=own", &p));
    act_pg__params_deinit(&p);
    unsetenv("PGPASSWORD");
    setenv("PGSERVICE", "prod", 1);
    conninfo_refused("host=attacker.example", "PGPASSWORD or PGSERVICE");
    unsetenv("PGSERVICE");
    cr_assert_null(conninfo_error("host=db.example user=u", &p), "no password, none to lend");
    act_pg__params_deinit(&p);
}

Test(postgres, open_refuses_a_conninfo_that_reaches_past_the_boundary) {
    open_fails("{\"conninfo\": \"host=127.0.0.1 sslkey=/etc/ssl/private/ssl-cert-snakeoil.key\", "
               "\"statement\": \"SELECT 1\"}",
               "postgres action: conninfo \"sslkey\": no certificate directory is configured");
    open_fails("{\"conninfo\": \"dbname=x\", \"statement\": \"SELECT 1\"}",
               "postgres action: conninfo needs \"host\"");
}

/* }====== */

/* {====== format() */

Test(postgres, format_binds_nulls_and_keeps_injection_text_as_a_parameter) {
    eng_error e;
    act_instance *inst = open_json(
        "{\"conninfo\": \"host=127.0.0.1 dbname=x\", \"statement\": "
        "\"INSERT INTO t(dev, temp, note) VALUES (${deviceId}, ${temperature}, ${note})\"}", &e);
    cr_assert_not_null(inst, "%s", e.message);
    const char *f1[] = {"x'); DROP TABLE t;--", "21.5", "say \"hi\"\n\\"};
    size_t l1[] = {strlen(f1[0]), strlen(f1[1]), strlen(f1[2])};
    unsigned char n1[] = {0, 0, 0};
    const char *f2[] = {"dev-2", "", ""};
    size_t l2[] = {5, 0, 0};
    unsigned char n2[] = {0, 1, 1};
    act_msg m1 = {.rule_name = "r", .payload = "{}", .payload_len = 2, .fields = f1,
                  .field_lens = l1, .field_null = n1};
    act_msg m2 = {.rule_name = "r", .payload = "{}", .payload_len = 2, .fields = f2,
                  .field_lens = l2, .field_null = n2};
    const act_msg *batch[] = {&m1, &m2};
    act_buf out = {0};
    cr_assert_eq(act_postgres_vtable.format(inst, batch, 2, &out), 0);
    cr_assert_str_eq(out.p,
        "{\"sql\": \"INSERT INTO t(dev, temp, note) VALUES ($1, $2, $3)\", \"params\": "
        "[\"x'); DROP TABLE t;--\", \"21.5\", \"say \\\"hi\\\"\\n\\\\\"]}\n"
        "{\"sql\": \"INSERT INTO t(dev, temp, note) VALUES ($1, $2, $3)\", \"params\": "
        "[\"dev-2\", null, null]}\n");
    /* an empty string is a value, not NULL */
    n2[1] = 0;
    act_buf_deinit(&out);
    memset(&out, 0, sizeof out);
    cr_assert_eq(act_postgres_vtable.format(inst, batch + 1, 1, &out), 0);
    cr_assert(strstr(out.p, "[\"dev-2\", \"\", null]"), "%s", out.p);
    act_buf_deinit(&out);
    act_postgres_vtable.close(inst);
}

Test(postgres, format_escapes_control_bytes_and_keeps_utf8) {
    act_pg_stmt st = parse_ok("SELECT ${a}");
    const char *f[] = {"\x01tab\there \xc3\xa9"};
    act_buf out = {0};
    cr_assert_eq(act_pg__format_line(&st, f, NULL, &out), 0);
    cr_assert_str_eq(out.p, "{\"sql\": \"SELECT $1\", \"params\": [\"\\u0001tab\\there "
                            "\xc3\xa9\"]}\n");
    act_buf_deinit(&out);
    act_pg__stmt_deinit(&st);
}

/* }====== */

/* {====== delivery outcomes */

Test(postgres, sqlstates_are_classified_retry_or_fail) {
    struct { const char *state; act_pg_errkind kind; } t[] = {
        {NULL, ACT_PG_ERR_CONN},        {"", ACT_PG_ERR_CONN},
        {"08006", ACT_PG_ERR_CONN},     {"08001", ACT_PG_ERR_CONN},
        {"57P01", ACT_PG_ERR_CONN},     {"57P02", ACT_PG_ERR_CONN},
        {"57P03", ACT_PG_ERR_CONN},     {"40001", ACT_PG_ERR_TRANSIENT},
        {"40P01", ACT_PG_ERR_TRANSIENT}, {"53100", ACT_PG_ERR_TRANSIENT},
        {"53300", ACT_PG_ERR_TRANSIENT}, {"23505", ACT_PG_ERR_PERMANENT},
        {"23502", ACT_PG_ERR_PERMANENT}, {"22P02", ACT_PG_ERR_PERMANENT},
        {"42P01", ACT_PG_ERR_PERMANENT}, {"57014", ACT_PG_ERR_TRANSIENT},
        {"55P03", ACT_PG_ERR_TRANSIENT}, {"42601", ACT_PG_ERR_PERMANENT},
        {"40002", ACT_PG_ERR_PERMANENT},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_expect_eq(act_pg__classify(t[i].state), t[i].kind, "SQLSTATE %s",
                     t[i].state ? t[i].state : "NULL");
}

Test(postgres, a_refused_connection_is_a_retry_with_nothing_delivered) {
    /* a port nobody listens on: bind, read the number, close */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);
    close(s);
    char j[256];
    snprintf(j, sizeof j, "{\"conninfo\": \"postgresql://u:pw@127.0.0.1:%d/d\", "
                          "\"statement\": \"INSERT INTO t VALUES (${a})\"}", port);
    eng_error e;
    act_instance *inst = open_json(j, &e);
    cr_assert_not_null(inst, "%s", e.message);
    const char *f[] = {"1"};
    size_t l[] = {1};
    unsigned char nul[] = {0};
    act_msg m = {.rule_name = "r", .payload = "{}", .payload_len = 2, .fields = f,
                 .field_lens = l, .field_null = nul};
    const act_msg *batch[] = {&m, &m};
    size_t ndone = 99;
    char err[512] = "";
    for (int lane = 0; lane < 2; lane++) {
        cr_assert_eq(act_postgres_vtable.deliver(inst, lane, batch, 2, &ndone, err, sizeof err),
                     ACT_RETRY);
        cr_assert_eq(ndone, 0);
        cr_assert(strstr(err, "connection failed"), "%s", err);
        cr_assert_null(strchr(err, '\n'), "%s", err);
    }
    act_postgres_vtable.close(inst);
}

/* }====== */

/* test_vm.c -- compiler and VM behaviour through the public API (compile.c, vm.c, exec.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

static sql_exec *x;

static void setup(void) { x = sql_exec_new(); }
static void teardown(void) { sql_exec_free(x); }

TestSuite(vm, .init = setup, .fini = teardown);

/* Compiles sql (version v, templates tpl[0..ntpl)), runs it on topic/payload; returns the rc
 * and copies the output into out. */
static int run_full(const char *sql, sql_version v, const char *topic, const char *payload,
                    const char **tpl, size_t ntpl, char *out, size_t cap, sql_program **keep) {
    sql_compile_opts o = {.version = v, .templates = tpl, .ntemplates = ntpl};
    sql_program *p = NULL;
    sql_diag d;
    int rc = sql_compile(sql, strlen(sql), &o, &p, &d);
    cr_assert_eq(rc, SQL_OK, "compile '%s': %s", sql, d.msg);
    sql_message m = {.topic = topic, .topic_len = strlen(topic), .payload = payload,
                     .payload_len = strlen(payload), .timestamp_ms = 1481825251155};
    sql_output res;
    rc = sql_exec_run(x, p, &m, &res);
    out[0] = '\0';
    if (rc == SQL_FIRED) {
        cr_assert_lt(res.len, cap);
        memcpy(out, res.data, res.len);
        out[res.len] = '\0';
    }
    if (keep)
        *keep = p;
    else
        sql_program_free(p);
    return rc;
}

static void expect_out(const char *sql, const char *payload, const char *want) {
    char out[4096];
    int rc = run_full(sql, SQL_V2016_03_23, "t", payload, NULL, 0, out, sizeof out, NULL);
    cr_assert_eq(rc, SQL_FIRED, "'%s' did not fire (rc %d)", sql, rc);
    cr_expect_str_eq(out, want, "'%s' on %s", sql, payload);
}

static void expect_nofire(const char *sql, const char *payload) {
    char out[4096];
    int rc = run_full(sql, SQL_V2016_03_23, "t", payload, NULL, 0, out, sizeof out, NULL);
    cr_expect_eq(rc, SQL_NOT_FIRED, "'%s' on %s: rc %d out %s", sql, payload, rc, out);
}

static void expect_compile_error(const char *sql, sql_version v, const char *msgpart) {
    sql_compile_opts o = {.version = v};
    sql_program *p = NULL;
    sql_diag d;
    int rc = sql_compile(sql, strlen(sql), &o, &p, &d);
    cr_expect_neq(rc, SQL_OK, "'%s' compiled", sql);
    cr_expect_null(p);
    if (rc != SQL_OK)
        cr_expect(strstr(d.msg, msgpart) != NULL, "'%s': message '%s' lacks '%s'", sql, d.msg,
                  msgpart);
    sql_program_free(p);
}

Test(vm, seed_rule_fires_and_projects_in_order) {
    expect_out("SELECT temperature, humidity, deviceId FROM 't' WHERE temperature > 50.0",
               "{\"deviceId\":\"d1\",\"humidity\":40,\"temperature\":51.5,\"x\":[1,2]}",
               "{\"temperature\":51.5,\"humidity\":40,\"deviceId\":\"d1\"}");
    expect_nofire("SELECT temperature FROM 't' WHERE temperature > 50.0",
                  "{\"temperature\":50}");
    expect_nofire("SELECT temperature FROM 't' WHERE temperature > 50.0", "{\"humidity\":1}");
}

Test(vm, topic_filter_decides_before_payload) {
    char out[256];
    int rc = run_full("SELECT * FROM 'sensors/+/telemetry'", SQL_V2016_03_23, "sensors/a/other",
                      "{}", NULL, 0, out, sizeof out, NULL);
    cr_expect_eq(rc, SQL_NOT_FIRED);
    rc = run_full("SELECT * FROM 'sensors/+/telemetry'", SQL_V2016_03_23, "sensors/a/telemetry",
                  "{\"a\":1}", NULL, 0, out, sizeof out, NULL);
    cr_expect_eq(rc, SQL_FIRED);
    cr_expect_str_eq(out, "{\"a\":1}");
}

Test(vm, nested_paths_share_one_scan) {
    expect_out("SELECT a.b.c AS x, a.b AS y, a.d AS z FROM 't'",
               "{\"a\":{\"b\":{\"c\":1},\"d\":2}}", "{\"x\":1,\"y\":{\"c\":1},\"z\":2}");
    expect_out("SELECT *, a.b AS y FROM 't'", "{\"a\":{\"b\":3}}", "{\"a\":{\"b\":3},\"y\":3}");
}

Test(vm, star_with_items_replaces_existing_keys_in_place) {
    expect_out("SELECT *, 15 AS speed, 'blue' AS color FROM 't'",
               "{\"color\":\"red\",\"temperature\":50}",
               "{\"color\":\"blue\",\"temperature\":50,\"speed\":15}");
}

Test(vm, undefined_items_are_omitted) {
    expect_out("SELECT a, missing, b FROM 't'", "{\"a\":1,\"b\":null}", "{\"a\":1,\"b\":null}");
    expect_out("SELECT missing FROM 't'", "{}", "{}");
}

Test(vm, case_subject_undefined_ignores_else) {
    expect_out("SELECT CASE c WHEN 1 THEN 'one' ELSE 'other' END AS r FROM 't'", "{}", "{}");
    expect_out("SELECT CASE c WHEN 1 THEN 'one' ELSE 'other' END AS r FROM 't'", "{\"c\":2}",
               "{\"r\":\"other\"}");
    expect_out("SELECT CASE c WHEN 1 THEN 'one' WHEN 2 THEN 'two' END AS r FROM 't'",
               "{\"c\":2}", "{\"r\":\"two\"}");
    expect_out("SELECT CASE WHEN c > 1 THEN 'big' ELSE 'small' END AS r FROM 't'", "{\"c\":2}",
               "{\"r\":\"big\"}");
}

Test(vm, nested_select_over_array_and_object) {
    const char *p = "{\"e\":[{\"n\":\"temperature\",\"v\":22.5},{\"n\":\"light\",\"v\":135}],"
                    "\"o\":{\"a\":1,\"c\":[1,2]}}";
    expect_out("SELECT (SELECT v FROM e WHERE n = 'temperature') AS t FROM 't'", p,
               "{\"t\":[{\"v\":22.5}]}");
    expect_out("SELECT (SELECT VALUE n FROM e) AS names FROM 't'", p,
               "{\"names\":[\"temperature\",\"light\"]}");
    expect_out("SELECT (SELECT a FROM o) AS x, (SELECT VALUE c FROM o) AS y FROM 't'", p,
               "{\"x\":{\"a\":1},\"y\":[1,2]}");
    expect_out("SELECT (SELECT v FROM e WHERE n = 'none') AS t FROM 't'", p, "{\"t\":[]}");
    expect_out("SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v AS t FROM 't'", p,
               "{\"t\":22.5}");
}

Test(vm, set_variables_feed_where_select_and_templates) {
    const char *tpl[] = {"out/${@dev}/${topic(1)}", "${missing}|${@t * 2}"};
    char out[256];
    sql_program *p;
    int rc = run_full("SET @dev = deviceId, @t = temp + 1 SELECT @t AS t FROM 'a/#' WHERE @t > 2",
                      SQL_V2016_03_23, "a/b", "{\"deviceId\":\"d7\",\"temp\":2}", tpl, 2, out,
                      sizeof out, &p);
    cr_assert_eq(rc, SQL_FIRED);
    cr_expect_str_eq(out, "{\"t\":3}");
    sql_output o;
    cr_assert_eq(sql_exec_template(x, 0, &o), SQL_OK);
    cr_expect_eq(o.len, strlen("out/d7/a"));
    cr_expect(memcmp(o.data, "out/d7/a", o.len) == 0);
    cr_assert_eq(sql_exec_template(x, 1, &o), SQL_OK);
    cr_expect(o.len == 2 && memcmp(o.data, "|6", 2) == 0, "got %.*s", (int)o.len, o.data);
    int is_null = 0;
    cr_assert_eq(sql_program_template_nexprs(p, 1), 2);
    cr_assert_eq(sql_exec_template_expr(x, 1, 0, &o, &is_null), SQL_OK);
    cr_expect(is_null);
    cr_assert_eq(sql_exec_template_expr(x, 1, 1, &o, &is_null), SQL_OK);
    cr_expect(!is_null && o.len == 1 && o.data[0] == '6');
    sql_program_free(p);
}

Test(vm, templates_do_not_see_aliases) {
    const char *tpl[] = {"out/${c}"};
    char out[256];
    sql_program *p;
    int rc = run_full("SELECT color AS c FROM 't'", SQL_V2016_03_23, "t", "{\"color\":\"red\"}",
                      tpl, 1, out, sizeof out, &p);
    cr_assert_eq(rc, SQL_FIRED);
    sql_output o;
    cr_assert_eq(sql_exec_template(x, 0, &o), SQL_OK);
    cr_expect(o.len == 4 && memcmp(o.data, "out/", 4) == 0);
    sql_program_free(p);
}

Test(vm, binary_payload_passes_through_select_star) {
    sql_program *p;
    sql_diag d;
    const char *sql = "SELECT * FROM 't'";
    cr_assert_eq(sql_compile(sql, strlen(sql), NULL, &p, &d), SQL_OK);
    const unsigned char bin[] = {0, 1, 2, 0xff};
    sql_message m = {.topic = "t", .topic_len = 1, .payload = bin, .payload_len = 4};
    sql_output o;
    cr_assert_eq(sql_exec_run(x, p, &m, &o), SQL_FIRED);
    cr_expect(o.is_binary);
    cr_expect(o.len == 4 && memcmp(o.data, bin, 4) == 0);
    sql_program_free(p);
}

Test(vm, basic_ingest_strips_prefix_and_ignores_from) {
    sql_program *p;
    sql_diag d;
    const char *sql = "SELECT topic() AS t, topic(3) AS t3 FROM 'Buildings/#'";
    cr_assert_eq(sql_compile(sql, strlen(sql), NULL, &p, &d), SQL_OK);
    const char *topic = "$aws/rules/BM/Buildings/B5/Floor2/Room201";
    sql_message m = {.topic = topic, .topic_len = strlen(topic), .payload = "{}",
                     .payload_len = 2, .rule_name = "BM"};
    sql_output o;
    cr_assert_eq(sql_exec_run(x, p, &m, &o), SQL_FIRED);
    cr_expect(o.len == strlen("{\"t\":\"Buildings/B5/Floor2/Room201\",\"t3\":\"Floor2\"}"));
    m.rule_name = "Other";
    cr_expect_eq(sql_exec_run(x, p, &m, &o), SQL_NOT_FIRED);
    sql_program_free(p);
}

Test(vm, payload_over_128k_is_rejected) {
    sql_program *p;
    sql_diag d;
    const char *sql = "SELECT a FROM 't'";
    cr_assert_eq(sql_compile(sql, strlen(sql), NULL, &p, &d), SQL_OK);
    size_t n = SQL_MAX_PAYLOAD + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    sql_message m = {.topic = "t", .topic_len = 1, .payload = big, .payload_len = n};
    sql_output o;
    cr_expect_eq(sql_exec_run(x, p, &m, &o), SQL_E_LIMIT);
    cr_expect(strstr(sql_exec_errmsg(x), "limit") != NULL);
    free(big);
    sql_program_free(p);
}

Test(vm, one_exec_serves_many_programs) {
    const char *rules[] = {"SELECT a FROM 't'", "SELECT a, b, c, d, e, f FROM 't' WHERE a = 1",
                           "SELECT VALUE [a, b] FROM 't'"};
    const char *want[] = {"{\"a\":1}", "{\"a\":1,\"b\":2}", "[1,2]"};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            char out[256];
            cr_assert_eq(run_full(rules[i], SQL_V2016_03_23, "t", "{\"a\":1,\"b\":2}", NULL, 0,
                                  out, sizeof out, NULL),
                         SQL_FIRED);
            cr_expect_str_eq(out, want[i]);
        }
    }
}

Test(vm, compile_errors_name_the_problem) {
    expect_compile_error("SELECT nosuchfn(a) FROM 't'", SQL_V2016_03_23, "nosuchfn");
    expect_compile_error("SELECT aws_lambda('arn', *) FROM 't'", SQL_V2016_03_23, "aws_lambda");
    expect_compile_error("SELECT get_dynamodb('t','k',1,'r') FROM 't'", SQL_V2016_03_23,
                         "get_dynamodb");
    expect_compile_error("SELECT @nope AS x FROM 't'", SQL_V2016_03_23, "@nope");
    expect_compile_error("SELECT * FROM 'a/#/b'", SQL_V2016_03_23, "#");
    expect_compile_error("SELECT encode(a, b) FROM 't'", SQL_V2016_03_23, "literal");
    expect_compile_error("SELECT encode(a, 'base64') FROM 't'", SQL_V2015_10_08, "2016-03-23");
}

Test(vm, wrong_arity_is_undefined_not_an_error) {
    expect_out("SELECT upper() AS a, upper('a', 'b') AS b, 1 AS c FROM 't'", "{}", "{\"c\":1}");
}

Test(vm, explain_lists_paths_and_code) {
    const char *sql = "SELECT a.b AS x FROM 't' WHERE c > 1";
    sql_program *p;
    sql_diag d;
    cr_assert_eq(sql_compile(sql, strlen(sql), NULL, &p, &d), SQL_OK);
    char *s = sql_program_explain(p);
    cr_assert_not_null(s);
    cr_expect(strstr(s, "a.b") != NULL, "%s", s);
    cr_expect(strstr(s, "SLOT") != NULL, "%s", s);
    cr_expect(strstr(s, "JMPIFNOT") != NULL, "%s", s);
    free(s);
    sql_program_free(p);
}

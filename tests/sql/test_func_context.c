/*
 * test_func_context.c -- topic, clientid, principal, accountid, traceid, newuuid, timestamp,
 * sql_version, get_mqtt_property and get_user_properties, read from a filled sql_message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sql_int.h"

#include "func_harness.h"

static sql_message msg;

static void use_topic(const char *t) {
    c.topic = t;
    c.topic_len = strlen(t);
}

static void ctx_setup(void) {
    setup();
    memset(&msg, 0, sizeof msg);
    msg.protocol = SQL_PROTO_MQTT;
    c.msg = &msg;
    use_topic("things/myThings/thingOne");
}

TestSuite(func_context, .init = ctx_setup, .fini = teardown);

Test(func_context, topic_whole_and_levels) {
    static const fcase t[] = {
        {"topic", {NULL}, "\"things/myThings/thingOne\""},
        {"topic", {"1"}, "\"things\""},
        {"topic", {"2"}, "\"myThings\""},
        {"topic", {"3"}, "\"thingOne\""},
        {"topic", {"4"}, UNDEF_OUT},
        {"topic", {"0"}, UNDEF_OUT},
        {"topic", {"-1"}, UNDEF_OUT},
        {"topic", {"\"1\""}, UNDEF_OUT},
        {"topic", {"1.5"}, UNDEF_OUT},
        {"topic", {"null"}, UNDEF_OUT},
    };
    RUN(t);
    use_topic("foo/bar/baz");
    static const fcase u[] = {
        {"topic", {"1"}, "\"foo\""},
        {"topic", {"2"}, "\"bar\""},
        {"topic", {"3"}, "\"baz\""},
    };
    RUN(u);
    use_topic("a//b/");
    static const fcase v[] = {
        {"topic", {"2"}, "\"\""},
        {"topic", {"3"}, "\"b\""},
        {"topic", {"4"}, "\"\""},
        {"topic", {"5"}, UNDEF_OUT},
    };
    RUN(v);
}

Test(func_context, clientid_is_na_unless_mqtt) {
    msg.clientid = "123456789012";
    sql_value r = call("clientid", 0, NULL);
    cr_expect_str_eq(render(&r), "\"123456789012\"");
    msg.protocol = SQL_PROTO_HTTP;
    r = call("clientid", 0, NULL);
    cr_expect_str_eq(render(&r), "\"n/a\"");
    msg.protocol = SQL_PROTO_MQTT;
    msg.clientid = NULL;
    r = call("clientid", 0, NULL);
    cr_expect_str_eq(render(&r), "\"n/a\"");
}

Test(func_context, identities_or_undefined) {
    msg.principal = "ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373";
    msg.accountid = "123456789012";
    sql_value r = call("principal", 0, NULL);
    cr_expect_str_eq(render(&r),
                     "\"ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373\"");
    r = call("accountid", 0, NULL);
    cr_expect_str_eq(render(&r), "\"123456789012\"");
    msg.principal = msg.accountid = NULL;
    cr_expect_eq(call("principal", 0, NULL).t, SQL_T_UNDEF);
    cr_expect_eq(call("accountid", 0, NULL).t, SQL_T_UNDEF);
}

Test(func_context, traceid_only_over_mqtt) {
    msg.traceid = "b4ac4a4e-2c19-4b41-a2c4-0a0a3b7fd4e5";
    sql_value r = call("traceid", 0, NULL);
    cr_expect_str_eq(render(&r), "\"b4ac4a4e-2c19-4b41-a2c4-0a0a3b7fd4e5\"");
    msg.protocol = SQL_PROTO_HTTP;
    cr_expect_eq(call("traceid", 0, NULL).t, SQL_T_UNDEF);
    msg.protocol = SQL_PROTO_MQTT;
    msg.traceid = NULL;
    cr_expect_eq(call("traceid", 0, NULL).t, SQL_T_UNDEF);
}

Test(func_context, newuuid_is_random_v4_lowercase) {
    char prev[37] = "";
    for (int i = 0; i < 40; i++) {
        sql_value r = call("newuuid", 0, NULL);
        cr_assert_eq(r.t, SQL_T_STR);
        cr_assert_eq(r.n, 36);
        for (int k = 0; k < 36; k++) {
            char ch = r.u.s[k];
            if (k == 8 || k == 13 || k == 18 || k == 23)
                cr_assert_eq(ch, '-');
            else
                cr_assert((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'), "char %c", ch);
        }
        cr_expect_eq(r.u.s[14], '4', "version nibble");
        cr_expect(strchr("89ab", r.u.s[19]) != NULL, "variant nibble %c", r.u.s[19]);
        cr_expect(memcmp(prev, r.u.s, 36) != 0, "two equal UUIDs");
        memcpy(prev, r.u.s, 36);
    }
}

Test(func_context, timestamp_is_the_frozen_clock) {
    c.now_ms = 1481825251155;
    sql_value r = call("timestamp", 0, NULL);
    cr_expect_str_eq(render(&r), "1481825251155");
    c.now_ms = 0;
    r = call("timestamp", 0, NULL);
    cr_assert_eq(r.t, SQL_T_INT);
    cr_expect_gt(r.u.i, 1000000000000);
}

Test(func_context, sql_version_names_the_rule_version) {
    sql_value r = call("sql_version", 0, NULL);
    cr_expect_str_eq(render(&r), "\"2016-03-23\"");
    c.version = SQL_V2015_10_08;
    r = call("sql_version", 0, NULL);
    cr_expect_str_eq(render(&r), "\"2015-10-08\"");
}

Test(func_context, mqtt_properties) {
    static const sql_user_prop up[] = {{"k", "v1"}, {"j", "w"}, {"k", "v2"}};
    sql_mqtt_props p = {
        .content_type = "application/json",
        .response_topic = "reply/1",
        .correlation_data = "\x01\x02\xff",
        .correlation_len = 3,
        .format_indicator = 1,
        .message_expiry = 60,
        .user = up,
        .nuser = 3,
    };
    msg.props = &p;
    static const fcase t[] = {
        {"get_mqtt_property", {"\"content_type\""}, "\"application/json\""},
        {"get_mqtt_property", {"\"response_topic\""}, "\"reply/1\""},
        {"get_mqtt_property", {"\"correlation_data\""}, "\"AQL/\""},
        {"get_mqtt_property", {"\"format_indicator\""}, "\"UTF8_DATA\""},
        {"get_mqtt_property", {"\"message_expiry\""}, "60"},
        {"get_mqtt_property", {"\"nope\""}, UNDEF_OUT},
        {"get_mqtt_property", {"1"}, UNDEF_OUT},
        {"get_user_properties", {"\"k\""}, "[\"v1\",\"v2\"]"},
        {"get_user_properties", {"\"j\""}, "[\"w\"]"},
        {"get_user_properties", {"\"x\""}, UNDEF_OUT},
        {"get_user_properties", {NULL}, "[{\"k\":\"v1\"},{\"j\":\"w\"},{\"k\":\"v2\"}]"},
        {"get_user_properties", {"null"}, UNDEF_OUT},
    };
    RUN(t);
    p.format_indicator = 0;
    sql_value a = sql__str("format_indicator", 16);
    sql_value r = call("get_mqtt_property", 1, &a);
    cr_expect_str_eq(render(&r), "\"UNSPECIFIED_BYTES\"");
}

Test(func_context, absent_mqtt_properties_are_undefined) {
    sql_mqtt_props p = {.format_indicator = -1, .message_expiry = -1};
    msg.props = &p;
    static const fcase t[] = {
        {"get_mqtt_property", {"\"content_type\""}, UNDEF_OUT},
        {"get_mqtt_property", {"\"response_topic\""}, UNDEF_OUT},
        {"get_mqtt_property", {"\"correlation_data\""}, UNDEF_OUT},
        {"get_mqtt_property", {"\"format_indicator\""}, UNDEF_OUT},
        {"get_mqtt_property", {"\"message_expiry\""}, UNDEF_OUT},
        {"get_user_properties", {NULL}, UNDEF_OUT},
    };
    RUN(t);
    msg.props = NULL;
    RUN(t);
}

Test(func_context, no_context_function_is_constant_folded) {
    static const char *fns[] = {"topic", "clientid", "principal", "accountid", "traceid",
                                "newuuid", "timestamp", "sql_version", "get_mqtt_property",
                                "get_user_properties"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        const sql_func *f = sql__func_lookup(fns[i], strlen(fns[i]));
        cr_assert(f, "%s registered", fns[i]);
        cr_expect_eq(f->flags & SQL_FN_DETERMINISTIC, 0u, "%s", fns[i]);
    }
}

/* {====== replayable newuuid() (sql_message.uuid_seed) */

/* One evaluation of rule + templates on a fresh sql_exec, as a replay would: the output, then
 * each template rendered `renders` times in the order given, joined by '|'. */
static void evaluate(const sql_program *p, const uint8_t seed[16], const size_t *order,
                     size_t norder, char *buf, size_t cap) {
    sql_exec *x = sql_exec_new();
    cr_assert_not_null(x);
    sql_message m = {.topic = "t", .topic_len = 1, .payload = "{\"arr\":[1,2,3]}",
                     .payload_len = 15};
    if (seed)
        memcpy(m.uuid_seed, seed, 16);
    sql_output o;
    cr_assert_eq(sql_exec_run(x, p, &m, &o), SQL_FIRED, "%s", sql_exec_errmsg(x));
    size_t k = (size_t)snprintf(buf, cap, "%.*s", (int)o.len, o.data);
    for (size_t i = 0; i < norder; i++) {
        cr_assert_eq(sql_exec_template(x, order[i], &o), SQL_OK);
        k += (size_t)snprintf(buf + k, cap - k, "|%zu:%.*s", order[i], (int)o.len, o.data);
    }
    sql_exec_free(x);
}

static sql_program *uuid_rule(void) {
    static const char *const tpl[] = {"${newuuid()}", "a/${newuuid()}/${newuuid()}"};
    const char *sql = "SELECT newuuid() AS a, newuuid() AS b, "
                      "(SELECT VALUE newuuid() FROM arr) AS c FROM 't' WHERE newuuid() <> ''";
    sql_compile_opts o = {.version = SQL_V2016_03_23, .templates = tpl, .ntemplates = 2};
    sql_program *p;
    sql_diag d;
    cr_assert_eq(sql_compile(sql, strlen(sql), &o, &p, &d), SQL_OK, "%s", d.msg);
    return p;
}

/* The UUIDs in s, in order of appearance (at most max). */
static size_t uuids(const char *s, char (*out)[37], size_t max) {
    size_t n = 0;
    for (const char *q = s; *q && n < max; q++) {
        if (strlen(q) >= 36 && q[8] == '-' && q[13] == '-' && q[18] == '-' && q[23] == '-' &&
            q[14] == '4' && strchr("89ab", q[19])) {
            memcpy(out[n], q, 36);
            out[n++][36] = '\0';
            q += 35;
        }
    }
    return n;
}

static const uint8_t seed1[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

Test(func_context, newuuid_with_a_seed_replays_the_same_uuids) {
    sql_program *p = uuid_rule();
    static const size_t order[] = {0, 1};
    char first[2048], replay[2048];
    evaluate(p, seed1, order, 2, first, sizeof first);
    evaluate(p, seed1, order, 2, replay, sizeof replay);
    cr_expect_str_eq(replay, first, "a replay gives the same output and templates");
    /* a, b, the three elements of c, template 0, the two of template 1: all different */
    char u[16][37];
    size_t n = uuids(first, u, 16);
    cr_assert_eq(n, 8, "%s", first);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_expect_str_neq(u[i], u[j], "UUIDs %zu and %zu of %s", i, j, first);
    sql_program_free(p);
}

Test(func_context, newuuid_does_not_depend_on_template_order_or_renders) {
    sql_program *p = uuid_rule();
    static const size_t once[] = {0, 1}, other[] = {1, 0, 1, 0};
    char a[2048], b[2048];
    evaluate(p, seed1, once, 2, a, sizeof a);
    evaluate(p, seed1, other, 4, b, sizeof b);
    /* same statement output; each template gives the same text however often and in whatever
       order it is rendered */
    char ua[16][37], ub[16][37];
    cr_assert_eq(uuids(a, ua, 16), 8);
    cr_assert_eq(uuids(b, ub, 16), 5 + 3 * 2);
    for (int i = 0; i < 5; i++)
        cr_expect_str_eq(ub[i], ua[i], "statement UUID %d", i);
    cr_expect_str_eq(ub[5], ua[6], "template 1, first");      /* b renders 1, 0, 1, 0 */
    cr_expect_str_eq(ub[6], ua[7], "template 1, second");
    cr_expect_str_eq(ub[7], ua[5], "template 0");
    cr_expect_str_eq(ub[8], ua[6], "template 1 again");
    cr_expect_str_eq(ub[9], ua[7], "template 1 again, second");
    cr_expect_str_eq(ub[10], ua[5], "template 0 again");
    sql_program_free(p);
}

Test(func_context, newuuid_seeds_are_independent_and_zero_is_random) {
    sql_program *p = uuid_rule();
    static const size_t order[] = {0, 1};
    uint8_t seed2[16];
    memcpy(seed2, seed1, 16);
    seed2[15] ^= 1;
    char a[2048], b[2048], r1[2048], r2[2048];
    evaluate(p, seed1, order, 2, a, sizeof a);
    evaluate(p, seed2, order, 2, b, sizeof b);
    evaluate(p, NULL, order, 2, r1, sizeof r1);
    evaluate(p, NULL, order, 2, r2, sizeof r2);
    char ua[16][37], ub[16][37], u1[16][37], u2[16][37];
    cr_assert_eq(uuids(a, ua, 16), 8);
    cr_assert_eq(uuids(b, ub, 16), 8);
    cr_assert_eq(uuids(r1, u1, 16), 8);
    cr_assert_eq(uuids(r2, u2, 16), 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            cr_expect_str_neq(ua[i], ub[j], "a seed one bit away shares UUIDs");
            cr_expect_str_neq(u1[i], u2[j], "zero seed: random UUIDs each time");
            cr_expect_str_neq(ua[i], u1[j]);
        }
    sql_program_free(p);
}

Test(func_context, newuuid_derivation_is_pinned) {
    /* HMAC-SHA256(key = seed, "newuuid" || site || n), computed with Python's hmac module;
       a change here would give replays after an upgrade different UUIDs */
    const char *sql = "SELECT newuuid() AS a, (SELECT VALUE newuuid() FROM arr) AS c FROM 't'";
    sql_compile_opts o = {.version = SQL_V2016_03_23};
    sql_program *p;
    sql_diag d;
    cr_assert_eq(sql_compile(sql, strlen(sql), &o, &p, &d), SQL_OK);
    char out[1024];
    evaluate(p, seed1, NULL, 0, out, sizeof out);
    cr_expect_str_eq(out, "{\"a\":\"547c1bd1-132a-4ed7-86e3-ec124aa4f8ef\",\"c\":["
                          "\"4a0c8fb7-5719-43ab-ad05-ca7daee2f5a6\","
                          "\"5ba53c27-b517-4c84-a2a0-bbd2677b111b\","
                          "\"efb75a0c-d85e-470d-9375-b701162c58b0\"]}");
    sql_program_free(p);
}

/* }====== */

/*
 * test_func_context.c -- topic, clientid, principal, accountid, traceid, newuuid, timestamp,
 * sql_version, get_mqtt_property and get_user_properties, read from a filled sql_message.
 */
#include <criterion/criterion.h>
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

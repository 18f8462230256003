/*
 * test_func_context.c -- topic, clientid, principal, accountid, traceid, newuuid, timestamp,
 * sql_version, get_mqtt_property and get_user_properties, read from a filled sql_message.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sql_int.h"

/* Tables leave the trailing version field out: 0 means 2016-03-23. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* {====== harness: call a builtin by name with JSON-text arguments, compare JSON output */

#define UNDEF_ARG "<undef>"
#define UNDEF_OUT "<undef>"

static sql_ctx c;

static void setup(void) {
    memset(&c, 0, sizeof c);
    sql__arena_init(&c.arena, 1 << 20);
    c.version = SQL_V2016_03_23;
    sql__buf_init(&c.scratch);
}

static void teardown(void) {
    sql__regex_ctx_free(&c);
    sql__arena_deinit(&c.arena);
    sql__buf_free(&c.scratch);
}

/* Parses one argument: "<undef>" is Undefined, anything else JSON text. */
static sql_value arg(const char *json) {
    sql_value v = SQL_UNDEF;
    if (strcmp(json, UNDEF_ARG) == 0)
        return v;
    int rc = sql__json_parse(&c, json, strlen(json), &v);
    cr_assert_eq(rc, 0, "bad test argument %s", json);
    return v;
}

/* Calls fn(args...) and returns the result; asserts the call did not fail. */
static sql_value call(const char *fn, int argc, const sql_value *argv) {
    const sql_func *f = sql__func_lookup(fn, strlen(fn));
    cr_assert(f, "unknown function %s", fn);
    sql_value out = {.t = 0xEE};
    int rc = f->fn(&c, argc, argv, &out);
    cr_assert_eq(rc, 0, "%s failed: %s", fn, c.errmsg);
    cr_assert_neq(out.t, 0xEE, "%s did not set its result", fn);
    return out;
}

/* The JSON text of v, or "<undef>". Valid until the next call. */
static const char *render(const sql_value *v) {
    static sql_buf b;
    if (v->t == SQL_T_UNDEF)
        return UNDEF_OUT;
    sql__buf_reset(&b);
    sql__json_write(&b, v);
    sql__buf_putc(&b, 0);
    return b.p;
}

typedef struct fcase {
    const char *fn;
    const char *args[4]; /* JSON texts, NULL-terminated */
    const char *want;    /* JSON text of the result, or "<undef>" */
    sql_version version; /* 0: 2016-03-23 */
} fcase;

static void run_cases(const fcase *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        sql_value argv[4];
        int argc = 0;
        c.version = t[i].version ? t[i].version : SQL_V2016_03_23;
        while (argc < 4 && t[i].args[argc]) {
            argv[argc] = arg(t[i].args[argc]);
            argc++;
        }
        sql_value out = call(t[i].fn, argc, argv);
        const char *got = render(&out);
        cr_expect_str_eq(got, t[i].want, "%s(%s%s%s%s%s%s%s) = %s, want %s", t[i].fn,
                         argc > 0 ? t[i].args[0] : "", argc > 1 ? ", " : "",
                         argc > 1 ? t[i].args[1] : "", argc > 2 ? ", " : "",
                         argc > 2 ? t[i].args[2] : "", argc > 3 ? ", " : "",
                         argc > 3 ? t[i].args[3] : "", got, t[i].want);
    }
}

#define RUN(table) run_cases(table, sizeof table / sizeof table[0])

/* }====== */

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

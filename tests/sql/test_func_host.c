/*
 * test_func_host.c -- get_thing_shadow() through the host callback of sql.h (func_host.c): a
 * shadow store held by the test, the document as a value, Undefined for missing shadows and
 * bad arguments, and failures of the store as evaluation errors.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sql.h"

#define ROLE "'arn:aws:iam::123456789012:role/AllowsThingShadowAccess'"

typedef struct shadow {
    const char *thing, *name; /* name NULL: classic */
    const char *doc;
} shadow;

typedef struct store {
    const shadow *shadows;
    size_t n;
    int calls;
    char last_thing[200], last_name[100]; /* what the last call asked for ("-" for NULL) */
    long force;  /* != 0: returned instead of looking up */
    long grow;   /* > 0: every call claims this many more bytes than the last */
} store;

static long get_shadow(void *ud, const char *thing, const char *name, char *buf, size_t cap) {
    store *st = ud;
    st->calls++;
    snprintf(st->last_thing, sizeof st->last_thing, "%s", thing);
    snprintf(st->last_name, sizeof st->last_name, "%s", name ? name : "-");
    if (st->force)
        return st->force;
    if (st->grow)
        return (long)cap + st->grow;
    for (size_t i = 0; i < st->n; i++) {
        const shadow *s = &st->shadows[i];
        if (strcmp(s->thing, thing) != 0 || (s->name == NULL) != (name == NULL) ||
            (name && strcmp(s->name, name) != 0))
            continue;
        size_t len = strlen(s->doc);
        if (len <= cap)
            memcpy(buf, s->doc, len);
        return (long)len;
    }
    return SQL_HOST_NOT_FOUND;
}

static const shadow shadows[] = {
    {"MyThing", NULL,
     "{\"state\":{\"reported\":{\"alarm\":\"ON\",\"temp\":21}},\"metadata\":{\"reported\":"
     "{\"alarm\":{\"timestamp\":1700000000}}},\"version\":4,\"timestamp\":1700000100}"},
    {"MyThing", "MyThingShadow",
     "{\"state\":{\"desired\":{\"mode\":\"eco\"},\"reported\":{\"alarm\":\"OFF\"}},\"metadata\":"
     "{},\"version\":9,\"timestamp\":1700000200}"},
    {"7", "$cfg", "{\"state\":{},\"version\":1,\"timestamp\":1}"},
};

static store st;
static sql_host host = {.ud = &st, .get_shadow = get_shadow};
static char out[1 << 16];

static void init(void) {
    memset(&st, 0, sizeof st);
    st.shadows = shadows;
    st.n = sizeof shadows / sizeof shadows[0];
}

TestSuite(func_host, .init = init);

/* Compiles and runs sql on payload `payload` and topic `topic` with host h; returns the status
 * and leaves the output (or the error message) in out. */
static int eval_with(const sql_host *h, const char *sql, const char *topic, const char *payload,
                     sql_version v) {
    sql_compile_opts o = {.version = v};
    sql_program *p = NULL;
    sql_diag d;
    int rc = sql_compile(sql, strlen(sql), &o, &p, &d);
    if (rc != SQL_OK) {
        snprintf(out, sizeof out, "%s", d.msg);
        return rc;
    }
    sql_exec *x = sql_exec_new();
    cr_assert_not_null(x);
    sql_message m = {.topic = topic, .topic_len = strlen(topic), .payload = payload,
                     .payload_len = strlen(payload), .timestamp_ms = 1, .host = h};
    sql_output o2;
    rc = sql_exec_run(x, p, &m, &o2);
    if (rc == SQL_FIRED)
        snprintf(out, sizeof out, "%.*s", (int)o2.len, o2.data);
    else
        snprintf(out, sizeof out, "%s", sql_exec_errmsg(x));
    sql_exec_free(x);
    sql_program_free(p);
    return rc;
}

static int eval(const char *sql) {
    return eval_with(&host, sql, "things/MyThing/telemetry", "{\"n\":\"MyThing\"}",
                     SQL_V2016_03_23);
}

static void expect_out(const char *sql, const char *want) {
    int rc = eval(sql);
    cr_expect_eq(rc, SQL_FIRED, "%s: rc %d (%s)", sql, rc, out);
    cr_expect_str_eq(out, want, "%s", sql);
}

Test(func_host, classic_and_named_shadows_are_the_stored_documents) {
    expect_out("SELECT get_thing_shadow('MyThing', " ROLE ") AS s FROM '#'",
               "{\"s\":{\"state\":{\"reported\":{\"alarm\":\"ON\",\"temp\":21}},\"metadata\":{"
               "\"reported\":{\"alarm\":{\"timestamp\":1700000000}}},\"version\":4,\"timestamp\":"
               "1700000100}}");
    cr_expect_str_eq(st.last_thing, "MyThing");
    cr_expect_str_eq(st.last_name, "-", "the classic form asks for the unnamed shadow");
    expect_out("SELECT get_thing_shadow('MyThing', 'MyThingShadow', " ROLE
               ").state.desired.mode AS m FROM '#'",
               "{\"m\":\"eco\"}");
    cr_expect_str_eq(st.last_name, "MyThingShadow");
    /* AWS's examples: the thing from the topic or the payload, in WHERE */
    expect_out("SELECT n FROM '#' WHERE get_thing_shadow(topic(2), " ROLE
               ").state.reported.alarm = 'ON'",
               "{\"n\":\"MyThing\"}");
    int rc = eval("SELECT n FROM '#' WHERE get_thing_shadow(n, 'MyThingShadow', " ROLE
                  ").state.reported.alarm = 'ON'");
    cr_expect_eq(rc, SQL_NOT_FIRED);
    /* names are converted to String by AWS's rules: Int 7 is the thing "7"; '$' may start a
       shadow name */
    expect_out("SELECT get_thing_shadow(7, '$cfg', " ROLE ").version AS v FROM '#'",
               "{\"v\":1}");
}

Test(func_host, missing_shadows_and_bad_arguments_are_undefined) {
    static const char *const undefined[] = {
        "get_thing_shadow('Other', " ROLE ")",            /* no such thing */
        "get_thing_shadow('MyThing', 'nope', " ROLE ")",  /* no such named shadow */
        "get_thing_shadow(missing, " ROLE ")",            /* Undefined thing */
        "get_thing_shadow(NULL, " ROLE ")",               /* Null thing */
        "get_thing_shadow('MyThing', NULL)",              /* Null roleArn */
        "get_thing_shadow('MyThing', missing)",           /* Undefined roleArn */
        "get_thing_shadow('MyThing', NULL, " ROLE ")",    /* Null shadow name */
        "get_thing_shadow('My Thing', " ROLE ")",         /* not a thing name */
        "get_thing_shadow('a/b', " ROLE ")",
        "get_thing_shadow('$aws', " ROLE ")",             /* '$' only in shadow names */
        "get_thing_shadow('', " ROLE ")",
        "get_thing_shadow(1.5, " ROLE ")",                /* "1.5" is not a name */
        "get_thing_shadow(['MyThing'], " ROLE ")",        /* '["MyThing"]' is not a name */
        "get_thing_shadow('MyThing', 'a.b', " ROLE ")",
        "get_thing_shadow('MyThing')",                    /* wrong number of arguments */
        "get_thing_shadow('MyThing', 'MyThingShadow', " ROLE ", 1)",
    };
    for (size_t i = 0; i < sizeof undefined / sizeof undefined[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT %s AS s, 1 AS k FROM '#'", undefined[i]);
        st.calls = 0;
        expect_out(sql, "{\"k\":1}");
        /* only the first two reach the store: bad arguments never do */
        cr_expect_eq(st.calls, i < 2 ? 1 : 0, "%s: %d calls", undefined[i], st.calls);
    }
    char sql[512], name[200];
    memset(name, 'a', 129);
    name[129] = '\0';
    snprintf(sql, sizeof sql, "SELECT get_thing_shadow('%s', " ROLE ") AS s FROM '#'", name);
    expect_out(sql, "{}");
    name[128] = '\0'; /* 128 characters is a valid thing name: asked, and not found */
    snprintf(sql, sizeof sql, "SELECT get_thing_shadow('%s', " ROLE ") AS s FROM '#'", name);
    st.calls = 0;
    expect_out(sql, "{}");
    cr_expect_eq(st.calls, 1);
}

Test(func_host, without_a_host_the_function_is_undefined) {
    const char *sql = "SELECT get_thing_shadow('MyThing', " ROLE ") AS s, 1 AS k FROM '#'";
    cr_expect_eq(eval_with(NULL, sql, "t", "{}", SQL_V2016_03_23), SQL_FIRED);
    cr_expect_str_eq(out, "{\"k\":1}");
    sql_host none = {.ud = &st};
    cr_expect_eq(eval_with(&none, sql, "t", "{}", SQL_V2016_03_23), SQL_FIRED);
    cr_expect_str_eq(out, "{\"k\":1}");
    cr_expect_eq(st.calls, 0);
}

Test(func_host, large_documents_take_a_second_call) {
    static char doc[20000];
    int n = snprintf(doc, sizeof doc, "{\"state\":{\"reported\":{\"blob\":\"");
    memset(doc + n, 'x', 15000);
    snprintf(doc + n + 15000, sizeof doc - (size_t)n - 15000, "\"}},\"version\":2}");
    shadow big[] = {{"Big", NULL, doc}};
    st.shadows = big;
    st.n = 1;
    expect_out("SELECT length(get_thing_shadow('Big', " ROLE ").state.reported.blob) AS l, "
               "get_thing_shadow('Big', " ROLE ").version AS v FROM '#'",
               "{\"l\":15000,\"v\":2}");
    cr_expect_eq(st.calls, 4, "two calls per document over the first buffer");
}

Test(func_host, store_failures_fail_the_evaluation) {
    st.force = SQL_HOST_ERROR;
    cr_expect_eq(eval("SELECT get_thing_shadow('MyThing', " ROLE ") AS s FROM '#'"),
                 SQL_E_RUNTIME);
    cr_expect(strstr(out, "could not be read") != NULL, "%s", out);
    st.force = 0;
    st.grow = 100;
    st.calls = 0;
    cr_expect_eq(eval("SELECT get_thing_shadow('MyThing', " ROLE ") AS s FROM '#'"),
                 SQL_E_RUNTIME);
    cr_expect(strstr(out, "keeps changing size") != NULL, "%s", out);
    cr_expect_eq(st.calls, 3);
    st.grow = 0;
    shadow bad[] = {{"A", NULL, "{\"state\":"}, {"B", NULL, "[1]"}};
    st.shadows = bad;
    st.n = 2;
    cr_expect_eq(eval("SELECT get_thing_shadow('A', " ROLE ") AS s FROM '#'"), SQL_E_RUNTIME);
    cr_expect(strstr(out, "not a JSON object") != NULL, "%s", out);
    cr_expect_eq(eval("SELECT get_thing_shadow('B', " ROLE ") AS s FROM '#'"), SQL_E_RUNTIME);
}

Test(func_host, needs_sql_2016_and_works_in_templates) {
    cr_expect_eq(eval_with(&host, "SELECT get_thing_shadow('MyThing', " ROLE ") AS s FROM '#'",
                           "t", "{}", SQL_V2015_10_08),
                 SQL_E_VERSION);
    cr_expect(strstr(out, "2016-03-23") != NULL, "%s", out);
    const char *tpl[] = {"alarm/${get_thing_shadow(topic(2), " ROLE ").state.reported.alarm}"};
    sql_compile_opts o = {.version = SQL_V2016_03_23, .templates = tpl, .ntemplates = 1};
    sql_program *p;
    sql_diag d;
    const char *sql = "SELECT * FROM 'things/+/telemetry'";
    cr_assert_eq(sql_compile(sql, strlen(sql), &o, &p, &d), SQL_OK, "%s", d.msg);
    sql_exec *x = sql_exec_new();
    sql_message m = {.topic = "things/MyThing/telemetry", .topic_len = 24, .payload = "{}",
                     .payload_len = 2, .host = &host};
    sql_output r;
    cr_assert_eq(sql_exec_run(x, p, &m, &r), SQL_FIRED);
    cr_assert_eq(sql_exec_template(x, 0, &r), SQL_OK);
    cr_expect(r.len == 8 && !memcmp(r.data, "alarm/ON", 8), "%.*s", (int)r.len, r.data);
    sql_exec_free(x);
    sql_program_free(p);
}

/*
 * test_limits.c -- the limits that keep every recursion in sql/ bounded (issue 8): rules built
 * to overflow the stack fail to compile with a positioned SQL_E_LIMIT diagnostic (the REST API
 * turns it into a SqlParseException with line and column), the deepest rules the limits allow
 * compile and run within the stack sql/README.md promises, and deeply nested payloads are read
 * without recursing past SQL_JSON_MAX_DEPTH.
 *
 * Run under ASan as well (ctest does): its frames are larger, so it is the strict case.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_int.h"

/* {====== building rules */

typedef struct text {
    char *p;
    size_t n, cap;
} text;

static void put(text *t, const char *s) {
    size_t k = strlen(s);
    if (t->n + k + 1 > t->cap) {
        t->cap = (t->n + k + 1) * 2;
        t->p = realloc(t->p, t->cap);
        cr_assert_not_null(t->p);
    }
    memcpy(t->p + t->n, s, k + 1);
    t->n += k;
}

static void rep(text *t, const char *s, size_t times) {
    for (size_t i = 0; i < times; i++)
        put(t, s);
}

/* "SELECT <pre * n><mid><post * n> AS x FROM 't'" */
static char *nested(const char *pre, const char *mid, const char *post, size_t n) {
    text t = {0};
    put(&t, "SELECT ");
    rep(&t, pre, n);
    put(&t, mid);
    rep(&t, post, n);
    put(&t, " AS x FROM 't'");
    return t.p;
}

static int compile(const char *sql, sql_program **p, sql_diag *d) {
    sql_compile_opts o = {.version = SQL_V2016_03_23};
    *p = NULL;
    return sql_compile(sql, strlen(sql), &o, p, d);
}

/* Compiles sql, expects SQL_E_LIMIT at (line, col) with `what` in the message. */
static void expect_limit(const char *sql, uint32_t line, uint32_t col, const char *what) {
    sql_program *p;
    sql_diag d;
    int rc = compile(sql, &p, &d);
    cr_expect_eq(rc, SQL_E_LIMIT, "%.60s...: rc %d (%s)", sql, rc, d.msg);
    cr_expect_eq(d.line, line, "%.60s...: line %u, want %u", sql, d.line, line);
    cr_expect_eq(d.col, col, "%.60s...: column %u, want %u (%s)", sql, d.col, col, d.msg);
    cr_expect(strstr(d.msg, what) != NULL, "%s", d.msg);
    sql_program_free(p);
}

/* Runs p on payload: SQL_FIRED with its output in buf (truncated to cap), SQL_NOT_FIRED, or an
 * error. No Criterion assertion: it also runs on the small-stack thread below. */
static int run_into(const sql_program *p, const char *payload, char *buf, size_t cap) {
    sql_exec *x = sql_exec_new();
    if (!x)
        return SQL_E_NOMEM;
    sql_message m = {.topic = "t", .topic_len = 1, .payload = payload,
                     .payload_len = strlen(payload), .timestamp_ms = 1};
    sql_output o;
    int rc = sql_exec_run(x, p, &m, &o);
    if (rc == SQL_FIRED) {
        size_t k = o.len < cap - 1 ? o.len : cap - 1;
        memcpy(buf, o.data, k);
        buf[k] = '\0';
    }
    sql_exec_free(x);
    return rc;
}

/* Runs p on payload; returns its output text (static buffer), or NULL when it did not fire. */
static const char *run(const sql_program *p, const char *payload) {
    static char buf[SQL_MAX_PAYLOAD + 1];
    int rc = run_into(p, payload, buf, sizeof buf);
    cr_assert(rc == SQL_FIRED || rc == SQL_NOT_FIRED, "run: %d", rc);
    return rc == SQL_FIRED ? buf : NULL;
}

/* }====== */

/* {====== rules built to overflow the stack */

#define COL0 8 /* column of the first character after "SELECT " */

Test(limits, megabyte_operator_chain_fails_at_the_operator_that_crosses) {
    /* 1 MB of a+a+...: a left-deep tree the parser builds in a loop; the 1000th '+' makes it
       1001 levels high */
    char *sql = nested("", "a", "+a", 512 * 1024);
    cr_assert_gt(strlen(sql), 1000000);
    expect_limit(sql, 1, COL0 + 1 + 2 * 999, "nested too deeply");
    /* the caret diagnostic shows a window of the megabyte line, the caret under the '+' */
    sql_program *p;
    sql_diag d;
    cr_assert_eq(compile(sql, &p, &d), SQL_E_LIMIT);
    char buf[1024];
    size_t len = sql_diag_format(&d, sql, strlen(sql), buf, sizeof buf);
    cr_expect_lt(len, 300, "%s", buf);
    char *l2 = strchr(buf, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    cr_expect(strncmp(l2, "...", 3) == 0, "%s", buf);
    cr_expect(strncmp(strchr(l2, '\n') - 3, "...", 3) == 0, "%s", buf);
    size_t caret = (size_t)(strchr(l3, '^') - l3);
    cr_expect_eq(l2[caret], '+', "%s", buf);
    cr_expect_eq(caret, 3 + 60);
    free(sql);
    /* the same over many lines: the position is the operator's line and column */
    text t = {0};
    put(&t, "SELECT a");
    for (int i = 0; i < 200000; i++)
        put(&t, i % 10 == 9 ? "\n + a" : " + a");
    put(&t, " FROM 't'");
    /* the 1000th '+' starts line 101 (a line break before every 10th) */
    expect_limit(t.p, 101, 2, "nested too deeply");
    free(t.p);
}

Test(limits, every_chained_operator_counts) {
    static const char *const ops[] = {"+", "-", "*", "/", "%", "=", "<>", "<", ">=", "AND",
                                      "OR"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char sep[16];
        snprintf(sep, sizeof sep, " %s a", ops[i]);
        char *sql = nested("", "a", sep, 5000);
        /* the 1000th operator, after "a" and 999 times " op a" */
        expect_limit(sql, 1, COL0 + 1 + 999 * (uint32_t)strlen(sep) + 1, "nested too deeply");
        free(sql);
    }
}

/* A construct nested far past the limit: the error is at column `col` of line 1. */
typedef struct toodeep {
    const char *pre, *mid, *post;
    size_t n;
    uint32_t col;
} toodeep;

static const toodeep toodeep_cases[] = {
    /* the 1001st '(' opens the 1001st level of subexpressions */
    {"(", "a", ")", 100000, COL0 + 1000},
    {"- ", "a", "", 100000, COL0 + 2 * 1000},
    {"NOT ", "a", "", 100000, COL0 + 4 * 1000},
    {"abs(", "a", ")", 100000, COL0 + 4 * 1000},
    /* the arguments and parts of the 1000th call or CASE are the 1001st level: the first one
       crosses */
    {"concat(1, ", "a", ")", 50000, COL0 + 10 * 999 + 7},
    {"cast(", "a", " AS String)", 50000, COL0 + 5 * 1000},
    {"CASE WHEN a THEN ", "1", " END", 50000, COL0 + 17 * 999 + 10},
    {"CASE a WHEN 1 THEN 2 ELSE ", "3", " END", 50000, COL0 + 26 * 999 + 5},
    {"[", "a", "]", 100000, COL0 + 1000},
    {"{'k': ", "a", "}", 100000, COL0 + 6 * 1000},
    /* a nested SELECT counts two levels: the 501st '(' is the 1001st */
    {"(SELECT ", "a", " FROM e)", 20000, COL0 + 8 * 500},
    /* member and index chains are left-deep: the 1000th name or '[' makes 1001 levels */
    {"", "a", ".b", 100000, COL0 + 1 + 2 * 999 + 1},
    {"", "a", "[0]", 100000, COL0 + 1 + 3 * 999},
    {"", "a", "['k']", 100000, COL0 + 1 + 5 * 999},
};

Test(limits, deep_nesting_of_every_construct) {
    for (size_t i = 0; i < sizeof toodeep_cases / sizeof toodeep_cases[0]; i++) {
        const toodeep *c = &toodeep_cases[i];
        char *sql = nested(c->pre, c->mid, c->post, c->n);
        expect_limit(sql, 1, c->col, "nested too deeply");
        free(sql);
    }
}

Test(limits, set_variables_carry_their_depth) {
    /* @b holds a value 900 arrays deep around @a's 900: the depth of the value, not of the
       text, is what the writer recurses over */
    text t = {0};
    put(&t, "SET @a = ");
    rep(&t, "[", 900);
    put(&t, "1");
    rep(&t, "]", 900);
    put(&t, ", @b = ");
    rep(&t, "[", 200);
    size_t at = t.n;
    put(&t, "@a");
    rep(&t, "]", 200);
    put(&t, " SELECT @b AS x FROM 't'");
    /* @a is 901 levels high and stands for a value as deep: 902 with its own node, 1000 inside
       98 brackets; the 99th bracket around it is one too many */
    sql_program *p;
    sql_diag d;
    cr_expect_eq(compile(t.p, &p, &d), SQL_E_LIMIT, "%s", d.msg);
    cr_expect_eq(d.offset, at - 99, "offset %u, want %zu", d.offset, at - 99);
    free(t.p);
}

Test(limits, templates_are_bounded_too) {
    text t = {0};
    put(&t, "out/${a");
    rep(&t, "+a", 512 * 1024);
    put(&t, "}");
    const char *tpl[] = {t.p};
    sql_compile_opts o = {.version = SQL_V2016_03_23, .templates = tpl, .ntemplates = 1};
    sql_program *p = NULL;
    sql_diag d;
    const char *sql = "SELECT * FROM 't'";
    cr_expect_eq(sql_compile(sql, strlen(sql), &o, &p, &d), SQL_E_LIMIT, "%s", d.msg);
    cr_expect_eq(d.where, 0);
    cr_expect_eq(d.line, 1);
    cr_expect_eq(d.col, 7 + 1 + 2 * 999, "column %u", d.col);
    free(t.p);
    /* a SET variable's depth counts in the templates that use it */
    t = (text){0};
    put(&t, "${");
    rep(&t, "[", 500);
    put(&t, "@v");
    rep(&t, "]", 500);
    put(&t, "}");
    tpl[0] = t.p;
    text s = {0};
    put(&s, "SET @v = ");
    rep(&s, "[", 600);
    put(&s, "1");
    rep(&s, "]", 600);
    put(&s, " SELECT * FROM 't'");
    memset(&d, 0, sizeof d);
    cr_expect_eq(sql_compile(s.p, s.n, &o, &p, &d), SQL_E_LIMIT, "%s", d.msg);
    cr_expect_eq(d.where, 0);
    /* @v: 602 levels; the 399th bracket around it (the 102nd from the left) is too many */
    cr_expect_eq(d.offset, 2 + 101, "offset %u", d.offset);
    free(t.p);
    free(s.p);
}

Test(limits, statement_longer_than_256k_fails_where_it_passes_the_limit) {
    text t = {0};
    put(&t, "SELECT a AS x");
    while (t.n < 300 * 1024)
        put(&t, ",\n a AS x");
    put(&t, " FROM 't'");
    sql_program *p;
    sql_diag d;
    cr_expect_eq(compile(t.p, &p, &d), SQL_E_LIMIT);
    cr_expect_eq(d.offset, SQL_MAX_STATEMENT);
    cr_expect(strstr(d.msg, "longer than 262144 bytes") != NULL, "%s", d.msg);
    /* every line holds 9 bytes ",\n a AS x" after the first 13 */
    cr_expect_eq(d.line, 1 + (SQL_MAX_STATEMENT - 13 + 8) / 9, "line %u", d.line);
    cr_expect_gt(d.col, 0);
    free(t.p);
    /* exactly 256 KiB is allowed, trailing spaces included */
    t = (text){0};
    put(&t, "SELECT a FROM 't'");
    while (t.n < SQL_MAX_STATEMENT)
        put(&t, " ");
    cr_expect_eq(compile(t.p, &p, &d), SQL_OK, "%s", d.msg);
    sql_program_free(p);
    put(&t, " ");
    cr_expect_eq(compile(t.p, &p, &d), SQL_E_LIMIT);
    free(t.p);
}

/* }====== */

/* {====== the deepest rules the limits allow */

/* Each case: the deepest form of one construct that compiles, run on a payload; `n` is the
 * repetition count at the limit, and n + 1 must fail. */
typedef struct deep {
    const char *pre, *mid, *post;
    size_t n;
    const char *payload, *want;
} deep;

static const deep deepest[] = {
    {"(", "a", ")", 999, "{\"a\":1}", "{\"x\":1}"},
    {"", "a", "+a", 999, "{\"a\":1}", "{\"x\":1000}"},
    {"", "1", "+1", 999, "{}", "{\"x\":1000}"}, /* folded at compile time */
    {"- ", "a", "", 999, "{\"a\":1}", "{\"x\":-1}"},
    {"NOT ", "a", "", 999, "{\"a\":true}", "{\"x\":false}"},
    {"abs(", "a", ")", 999, "{\"a\":-1}", "{\"x\":1}"},
    {"abs(", "-1", ")", 998, "{}", "{\"x\":1}"},
    {"CASE WHEN a THEN ", "a", " END", 999, "{\"a\":true}", "{\"x\":true}"},
    {"[", "a", "]", 999, "{\"a\":1}", NULL}, /* output checked by shape */
    {"{'k': ", "a", "}", 999, "{\"a\":1}", NULL},
    {"(SELECT VALUE ", "v", " FROM a)", 499, "{\"a\":[{\"v\":1}]}", "{\"x\":[]}"},
    {"", "a", ".b", 999, "{\"a\":{\"b\":{}}}", "{}"},
    {"", "a", "[0]", 999, "{\"a\":[[1]]}", "{}"},
};

static char *deep_rule(const deep *c, size_t n) { return nested(c->pre, c->mid, c->post, n); }

Test(limits, deepest_allowed_rules_compile_and_run) {
    for (size_t i = 0; i < sizeof deepest / sizeof deepest[0]; i++) {
        const deep *c = &deepest[i];
        char *sql = deep_rule(c, c->n);
        sql_program *p;
        sql_diag d;
        cr_assert_eq(compile(sql, &p, &d), SQL_OK, "%s%s%s x %zu: %s", c->pre, c->mid, c->post,
                     c->n, d.msg);
        const char *out = run(p, c->payload);
        cr_assert_not_null(out, "%s%s%s x %zu did not fire", c->pre, c->mid, c->post, c->n);
        if (c->want)
            cr_expect_str_eq(out, c->want, "%s%s%s x %zu", c->pre, c->mid, c->post, c->n);
        else
            cr_expect(strlen(out) > c->n, "%s%s%s x %zu: %.80s", c->pre, c->mid, c->post, c->n,
                      out);
        sql_program_free(p);
        free(sql);
        sql = deep_rule(c, c->n + 1);
        cr_expect_eq(compile(sql, &p, &d), SQL_E_LIMIT, "%s%s%s x %zu", c->pre, c->mid, c->post,
                     c->n + 1);
        free(sql);
    }
}

/* }====== */

/* {====== payloads */

/* "[[[...]]]" n deep, optionally inside {"a": ..., "b": 1}. */
static char *deep_json(size_t n, int wrapped) {
    text t = {0};
    if (wrapped)
        put(&t, "{\"a\":");
    rep(&t, "[", n);
    rep(&t, "]", n);
    if (wrapped)
        put(&t, ",\"b\":1}");
    return t.p;
}

Test(limits, deeply_nested_payload_is_not_read_past_the_json_depth) {
    sql_program *star, *b, *dec;
    sql_diag d;
    cr_assert_eq(compile("SELECT * FROM 't'", &star, &d), SQL_OK);
    cr_assert_eq(compile("SELECT b FROM 't'", &b, &d), SQL_OK);
    cr_assert_eq(compile("SELECT decode(encode(*, 'base64'), 'base64') AS d FROM 't'", &dec, &d),
                 SQL_OK);
    /* 128 KiB of brackets, 64 Ki deep: not JSON as far as sql/ reads it, so `*` is the bytes */
    char *j = deep_json(64 * 1024, 0);
    cr_assert_eq(strlen(j), SQL_MAX_PAYLOAD);
    const char *out = run(star, j);
    cr_assert_not_null(out);
    cr_expect(strcmp(out, j) == 0, "SELECT * gives the bytes back");
    /* decode() of bytes that are not JSON (to sql/) gives them as a String */
    cr_expect(strncmp(run(dec, j), "{\"d\":\"[[[[", 10) == 0);
    free(j);
    /* the skip of an unread member has the same bound: b is found up to the limit only */
    j = deep_json(SQL_JSON_MAX_DEPTH - 1, 1);
    cr_expect_str_eq(run(b, j), "{\"b\":1}");
    free(j);
    j = deep_json(SQL_JSON_MAX_DEPTH, 1);
    cr_expect_str_eq(run(b, j), "{}");
    free(j);
    /* a member chain into a 20 000 deep object */
    text t = {0};
    rep(&t, "{\"a\":", 20000);
    put(&t, "1");
    rep(&t, "}", 20000);
    sql_program *aaa;
    cr_assert_eq(compile("SELECT a.a.a AS x FROM 't'", &aaa, &d), SQL_OK);
    cr_expect_str_eq(run(aaa, t.p), "{}");
    free(t.p);
    sql_program_free(aaa);
    sql_program_free(star);
    sql_program_free(b);
    sql_program_free(dec);
}

Test(limits, writer_and_equality_refuse_values_deeper_than_the_bound) {
    /* values this deep cannot come from a rule (the compile-time limits keep them shallower);
       built by hand, they are refused instead of recursed into */
    size_t n = SQL_MAX_VALUE_DEPTH + 1;
    sql_value *v = calloc(n + 1, sizeof *v);
    cr_assert_not_null(v);
    v[n] = sql__int(1);
    for (size_t i = n; i-- > 0;)
        v[i] = (sql_value){.t = SQL_T_ARR, .n = 1, .u.a = &v[i + 1]};
    sql_buf b;
    sql__buf_init(&b);
    cr_expect_eq(sql__json_write(&b, &v[0]), SQL_E_LIMIT);
    cr_expect_eq(sql__equal(&v[0], &v[0]), -1);
    sql__buf_reset(&b);
    cr_expect_eq(sql__json_write(&b, &v[1]), 0, "exactly SQL_MAX_VALUE_DEPTH levels are written");
    cr_expect_eq(sql__equal(&v[1], &v[1]), 1);
    sql__buf_free(&b);
    free(v);
}

/* }====== */

/* {====== the stack the limits need */

/* What sql/README.md promises ("Limits"): compiling any statement within the limits needs less
 * than COMPILE_STACK bytes of stack, and evaluating any compiled rule on any payload less than
 * EVAL_STACK. ASan's frames are larger, and the Debug build's unoptimized ones larger still. */
#if defined(__SANITIZE_ADDRESS__)
#define COMPILE_STACK (1536u * 1024u)
#define EVAL_STACK (256u * 1024u)
#else
#define COMPILE_STACK (320u * 1024u)
#define EVAL_STACK (128u * 1024u)
#endif
#define MEASURE_STACK (8u * 1024u * 1024u)

typedef struct job {
    const char *sql, *payload;
    sql_program *prog; /* compile: the result; run: the program */
    int rc;
} job;

static void *compile_main(void *arg) {
    job *j = arg;
    sql_diag d;
    j->rc = compile(j->sql, &j->prog, &d);
    return NULL;
}

static void *run_main(void *arg) {
    static char out[SQL_MAX_PAYLOAD];
    job *j = arg;
    j->rc = run_into(j->prog, j->payload, out, sizeof out);
    return NULL;
}

#define PAINT 0xA5

/* Runs fn(j) on a thread with a painted stack of MEASURE_STACK bytes and returns how much of
 * it the call used. */
static size_t stack_used(void *(*fn)(void *), job *j) {
    unsigned char *stack = NULL;
    cr_assert_eq(posix_memalign((void **)&stack, 4096, MEASURE_STACK), 0);
    memset(stack, PAINT, MEASURE_STACK);
    pthread_attr_t a;
    pthread_attr_init(&a);
    cr_assert_eq(pthread_attr_setstack(&a, stack, MEASURE_STACK), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, &a, fn, j), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&a);
    size_t untouched = 0;
    while (untouched < MEASURE_STACK && stack[untouched] == PAINT)
        untouched++;
    free(stack);
    return MEASURE_STACK - untouched;
}

/* Measures compiling and running one rule; the maxima go to *cmax and *rmax. */
static void measure(const char *what, const char *sql, const char *payload, int want_rc,
                    size_t *cmax, size_t *rmax) {
    job j = {.sql = sql, .payload = payload};
    size_t c = stack_used(compile_main, &j);
    cr_assert_eq(j.rc, want_rc, "%s: compile gave %d", what, j.rc);
    size_t r = 0;
    if (j.prog) {
        r = stack_used(run_main, &j);
        cr_assert_eq(j.rc, SQL_FIRED, "%s: run gave %d", what, j.rc);
        sql_program_free(j.prog);
    }
    cr_log_info("%-40s compile %7zu B, run %6zu B", what, c, r);
    *cmax = c > *cmax ? c : *cmax;
    *rmax = r > *rmax ? r : *rmax;
}

Test(limits, deepest_rules_fit_the_documented_stack, .timeout = 120) {
    size_t cmax = 0, rmax = 0;
    char what[64];
    for (size_t i = 0; i < sizeof deepest / sizeof deepest[0]; i++) {
        const deep *c = &deepest[i];
        char *sql = deep_rule(c, c->n);
        snprintf(what, sizeof what, "%s%s%s x %zu", c->pre, c->mid, c->post, c->n);
        measure(what, sql, c->payload, SQL_OK, &cmax, &rmax);
        free(sql);
        sql = deep_rule(c, c->n * 100);
        snprintf(what, sizeof what, "%s%s%s x %zu", c->pre, c->mid, c->post, c->n * 100);
        measure(what, sql, c->payload, SQL_E_LIMIT, &cmax, &rmax);
        free(sql);
    }
    /* the deepest values: [[...[a]...]] = [[...[a]...]] with `a` 255 deep is compared 754
       levels down, and 998 arrays around it are written 1253 levels deep */
    text t = {0};
    put(&t, "SELECT ");
    for (int k = 0; k < 2; k++) {
        rep(&t, "[", 499);
        put(&t, "a");
        rep(&t, "]", 499);
        put(&t, k ? " AS eq, " : " = ");
    }
    rep(&t, "[", 998);
    put(&t, "a");
    rep(&t, "]", 998);
    put(&t, " AS v FROM 't'");
    char *payload = deep_json(SQL_JSON_MAX_DEPTH - 1, 1);
    measure("deepest values", t.p, payload, SQL_OK, &cmax, &rmax);
    free(t.p);
    free(payload);
    cr_log_info("most stack used: compile %zu of %u B, run %zu of %u B", cmax, COMPILE_STACK,
                rmax, EVAL_STACK);
    cr_expect_lt(cmax, COMPILE_STACK);
    cr_expect_lt(rmax, EVAL_STACK);
}

/* }====== */

/*
 * func_harness.h -- the shared harness of the builtin tests (test_func_*.c): call a builtin by
 * name with JSON-text arguments and compare the JSON text of its result. Each test file
 * includes it once; the state is file-local.
 */
#ifndef SLUICE_TEST_FUNC_HARNESS_H
#define SLUICE_TEST_FUNC_HARNESS_H

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

#endif

/*
 * test_golden.c -- runs the SQL golden files in tests/sql/golden (*.test) (format in the README
 * there): each block is a rule, a message and the expected output, non-firing or diagnostic,
 * so new coverage needs no C. One parameterized test per block; a failure names file and line.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "golden.h"

typedef struct param {
    int index;
} param;

ParameterizedTestParameters(golden, block) {
    size_t n;
    block *v = load(&n);
    param *ps = cr_malloc(sizeof(param) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        ps[i].index = (int)i;
    free_blocks(v, n);
    return cr_make_param_array(param, ps, n);
}

ParameterizedTest(param *pa, golden, block) {
    size_t n;
    block *v = load(&n);
    cr_assert_lt((size_t)pa->index, n);
    block *b = &v[pa->index];
    const char *where = b->file;
    int line = b->line;
    sql_compile_opts o = {.version = b->version, .templates = (const char *const *)b->templates,
                          .ntemplates = (size_t)b->ntemplates};
    sql_program *p = NULL;
    sql_diag d;
    int rc = sql_compile(b->sql, strlen(b->sql), &o, &p, &d);
    if (b->kind == EXPECT_FAIL) {
        cr_assert_neq(rc, SQL_OK, "%s:%d: expected a compile error", where, line);
        char msg[4096];
        const char *text = d.where >= 0 ? b->templates[d.where] : b->sql;
        sql_diag_format(&d, text, strlen(text), msg, sizeof msg);
        msg[strcspn(msg, "\0")] = '\0';
        size_t ml = strlen(msg);
        if (ml && msg[ml - 1] == '\n')
            msg[ml - 1] = '\0';
        cr_expect_str_eq(msg, b->expect ? b->expect : "",
                         "%s:%d: diagnostic differs:\n--- got\n%s\n--- want\n%s", where, line, msg,
                         b->expect ? b->expect : "");
        free_blocks(v, n);
        return;
    }
    cr_assert_eq(rc, SQL_OK, "%s:%d: compile failed: line %u col %u: %s", where, line, d.line,
                 d.col, d.msg);
    unsigned char bin[8192];
    char cbuf[7][256];
    sql_message m = block_message(b, bin, cbuf);
    sql_exec *x = sql_exec_new();
    sql_output out;
    rc = sql_exec_run(x, p, &m, &out);
    if (b->kind == EXPECT_NOFIRE) {
        cr_expect_eq(rc, SQL_NOT_FIRED, "%s:%d: expected no firing, got rc %d (%.*s)", where,
                     line, rc, rc == SQL_FIRED ? (int)out.len : 0, rc == SQL_FIRED ? out.data : "");
    } else {
        cr_assert_eq(rc, SQL_FIRED, "%s:%d: expected the rule to fire, rc %d %s", where, line, rc,
                     sql_exec_errmsg(x));
        char *got = malloc(out.len + 1);
        memcpy(got, out.data, out.len);
        got[out.len] = '\0';
        if (b->kind == EXPECT_B64) {
            unsigned char want[8192];
            size_t wl = b64dec(b->expect, want);
            cr_expect(wl == out.len && memcmp(want, out.data, wl) == 0, "%s:%d: bytes differ",
                      where, line);
        } else {
            /* first line: the output; then one line per template */
            char empty[1] = "";
            char *exp = b->expect ? b->expect : empty;
            char *nl = strchr(exp, '\n');
            if (nl)
                *nl = '\0';
            cr_expect_str_eq(got, exp, "%s:%d: output differs:\n  got  %s\n  want %s", where, line, got, exp);
            char *rest = nl ? nl + 1 : NULL;
            for (int t = 0; t < b->ntemplates; t++) {
                char *tl = rest ? rest : (char *)"";
                char *tn = rest ? strchr(rest, '\n') : NULL;
                if (tn)
                    *tn = '\0';
                cr_assert_eq(sql_exec_template(x, (size_t)t, &out), SQL_OK, "%s:%d", where, line);
                char tbuf[4096];
                snprintf(tbuf, sizeof tbuf, "%.*s", (int)out.len, out.data);
                cr_expect_str_eq(tbuf, tl, "%s:%d: template %d differs", where, line, t + 1);
                rest = tn ? tn + 1 : NULL;
            }
        }
        free(got);
    }
    sql_exec_free(x);
    sql_program_free(p);
    free_blocks(v, n);
}

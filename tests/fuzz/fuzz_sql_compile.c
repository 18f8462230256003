/*
 * fuzz_sql_compile.c -- arbitrary bytes as a rule and as a template: compile under both SQL
 * versions, disassemble, free. Finds crashes, leaks and unbounded recursion in the lexer,
 * parser, compiler and constant folder (which runs builtins at compile time).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    for (int v = SQL_V2015_10_08; v <= SQL_V2016_03_23; v++) {
        sql_compile_opts o = {.version = (sql_version)v};
        sql_program *p = NULL;
        sql_diag d;
        if (sql_compile(text, size, &o, &p, &d) == SQL_OK) {
            char *s = sql_program_explain(p);
            free(s);
            sql_program_free(p);
        } else {
            char buf[512];
            sql_diag_format(&d, text, size, buf, sizeof buf);
        }
    }
    /* the same bytes as a substitution template of a fixed rule */
    const char *rule = "SET @v = a SELECT * FROM '#'";
    const char *tpl[1] = {text};
    size_t tlen[1] = {size};
    sql_compile_opts o = {.version = SQL_V2016_03_23, .templates = tpl, .template_lens = tlen,
                          .ntemplates = 1};
    sql_program *p = NULL;
    sql_diag d;
    if (sql_compile(rule, strlen(rule), &o, &p, &d) == SQL_OK)
        sql_program_free(p);
    return 0;
}

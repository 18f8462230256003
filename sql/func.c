/*
 * func.c -- the builtin function registry.
 *
 * Each family lives in its own func_*.c and exports a {0}-terminated table (SQLite's
 * aBuiltinFunc, Lua's luaL_Reg). This file chains the tables for a case-insensitive lookup by
 * name; AWS IoT's function names are case-insensitive in practice (its docs write `Round`,
 * `Ltrim`, `Regexp_matches`). Lookups happen at compile time only, so a linear scan over ~90
 * names is fine; the VM calls through the resolved pointer.
 *
 * The functions that call AWS services are registered with SQL_FN_AWS so that the compiler
 * can reject them with an error that names them, instead of "unknown function". The one AWS
 * service sluice provides itself, the device shadows, is read through the host (func_host.c).
 */
#include "sql_int.h"

#include <string.h>
#include <strings.h>

static int fn_aws(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = SQL_UNDEF;
    return 0;
}

const sql_func sql__func_aws[] = {
    {"aws_lambda", 0, -1, SQL_FN_AWS, fn_aws},
    {"get_dynamodb", 0, -1, SQL_FN_AWS, fn_aws},
    {"get_secret", 0, -1, SQL_FN_AWS, fn_aws},
    {"machinelearning_predict", 0, -1, SQL_FN_AWS, fn_aws},
    {"get_registry_data", 0, -1, SQL_FN_AWS, fn_aws},
    {0},
};

static const sql_func *const tables[] = {
    sql__func_math, sql__func_string, sql__func_regex,  sql__func_misc,
    sql__func_context, sql__func_time, sql__func_host, sql__func_aws,
};

const sql_func *sql__func_lookup(const char *name, size_t n) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        for (const sql_func *f = tables[t]; f->name; f++) {
            if (strlen(f->name) == n && strncasecmp(f->name, name, n) == 0)
                return f;
        }
    }
    return NULL;
}

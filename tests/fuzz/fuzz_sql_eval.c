/*
 * fuzz_sql_eval.c -- evaluation on arbitrary payloads.
 *
 * Input layout: byte 0 picks what runs; if its top bit is set, the bytes up to the first NUL
 * are a rule of the fuzzer's own (compiled and run), otherwise a fixed rule set chosen to
 * cover the lazy JSON reader (paths, nested objects, *), the builtins and nested SELECT.
 * The rest is the payload. Templates run after every fired evaluation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

static const char *const rules[] = {
    "SELECT * FROM '#'",
    "SELECT a, b.c, d[0], e.f.g AS x FROM '#' WHERE a > 1 OR b.c = 'x'",
    "SELECT *, upper(s) AS u, length(s) AS l, s + 1 AS c, n * 1.5 AS m FROM '#'",
    "SELECT VALUE (SELECT v FROM e WHERE n = 'temperature') FROM '#'",
    "SELECT regexp_replace(s, '(a|b)+', '$1') AS r, regexp_matches(s, t) AS m FROM '#'",
    "SELECT decode(encode(*, 'base64'), 'base64') AS d, md5(s) AS h FROM '#'",
    "SELECT CASE k WHEN 1 THEN 'one' WHEN 'x' THEN 2 ELSE [k, k] END AS c, get(arr, i) AS g FROM '#'",
    "SELECT transform('enrichArray', o, arr) AS t, concat(arr, s) AS c FROM '#'",
    "SELECT cast(s AS Decimal) AS d, cast(n AS String) AS s2, trunc(n, i) AS t, n / i AS q, "
    "n % i AS r FROM '#'",
    "SET @x = n * 2 SELECT @x AS x, parse_time('yyyy-MM-dd HH:mm:ss z', n, s) AS p, "
    "time_to_epoch(s, 'yyyy-MM-dd') AS e FROM '#'",
};
#define NRULES (sizeof rules / sizeof rules[0])

static sql_program *progs[NRULES];
static sql_exec *x;

static void setup(void) {
    static const char *const tpl[] = {"out/${topic(1)}/${a}", "${s}-${n + 1}"};
    for (size_t i = 0; i < NRULES; i++) {
        sql_compile_opts o = {.version = SQL_V2016_03_23, .templates = tpl, .ntemplates = 2};
        sql_diag d;
        if (sql_compile(rules[i], strlen(rules[i]), &o, &progs[i], &d) != SQL_OK)
            abort(); /* a fixed rule must compile */
    }
    x = sql_exec_new();
}

static void run(const sql_program *p, const uint8_t *payload, size_t n) {
    sql_message m = {.topic = "t/a/b", .topic_len = 5, .payload = payload, .payload_len = n,
                     .timestamp_ms = 1481825251155};
    sql_output o;
    if (sql_exec_run(x, p, &m, &o) != SQL_FIRED)
        return;
    for (size_t t = 0; t < sql_program_ntemplates(p); t++)
        sql_exec_template(x, t, &o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!x)
        setup();
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    data++, size--;
    if (sel & 0x80) {
        const uint8_t *nul = memchr(data, 0, size);
        if (!nul)
            return 0;
        size_t sl = (size_t)(nul - data);
        sql_program *p = NULL;
        sql_diag d;
        sql_compile_opts o = {.version = (sel & 1) ? SQL_V2015_10_08 : SQL_V2016_03_23};
        if (sql_compile((const char *)data, sl, &o, &p, &d) == SQL_OK) {
            run(p, nul + 1, size - sl - 1);
            sql_program_free(p);
        }
        return 0;
    }
    run(progs[sel % NRULES], data, size);
    return 0;
}

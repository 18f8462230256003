/*
 * bench_many_rules.c -- `bench_many_rules`: many rules on one message stream, on one core,
 * with and without the shared payload scan (sql_scanset, sql/scan.c).
 *
 * 300 rules all match the telemetry topic, a mix of what rules on one stream look like:
 * projections of a few fields, WHERE comparisons on different fields with different
 * thresholds, nested attributes, and some functions (upper, round, concat, CASE, topic(n),
 * timestamp()). Messages of about 250 bytes are generated before timing into a pool the timed
 * loop cycles through. Each message is evaluated against every rule, output serialization
 * included, two ways:
 *
 *   alone   sql_exec_run_matched() per rule: each rule scans the payload itself
 *   shared  sql_exec_scan_begin() once per message, then sql_exec_run_scan() per rule
 *
 * and prints, per way, rule evaluations per second, ns per rule evaluation and messages per
 * second:
 *
 *     <way> <rules> <payload bytes> <rule evals/s> <ns/rule eval> <msgs/s>
 *
 * usage: bench_many_rules [--messages N] [--quick] [--rules N] [--way alone|shared]
 *        (default 20 000 messages x 300 rules, both ways; --quick: 2 000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sql.h"

#define POOL 512
#define MAX_RULES 1000

/* Rule k of the mix: the shape cycles through the list, the fields and constants vary. */
static void rule(int k, char *buf, size_t cap) {
    static const char *const num[] = {"temperature", "humidity", "pressure", "battery", "rssi"};
    static const char *const str[] = {"deviceId", "status", "meta.site.id", "meta.fw.version"};
    const char *f = num[k % 5], *g = num[(k / 5) % 5], *s = str[k % 4];
    int t = 10 + (k * 37) % 80; /* thresholds spread over the values' ranges */
    switch (k % 10) {
    case 0: snprintf(buf, cap, "SELECT %s, %s FROM 'sensors/+/telemetry'", s, f); break;
    case 1:
        snprintf(buf, cap, "SELECT deviceId, %s FROM 'sensors/+/telemetry' WHERE %s > %d", f, f,
                 t);
        break;
    case 2:
        snprintf(buf, cap, "SELECT %s AS v, %s AS w FROM 'sensors/+/telemetry' WHERE %s < %d.5",
                 f, g, g, t);
        break;
    case 3:
        snprintf(buf, cap, "SELECT deviceId FROM 'sensors/+/telemetry' WHERE status = '%s'",
                 (const char *[]){"ok", "warn", "fail"}[k % 3]);
        break;
    case 4:
        snprintf(buf, cap, "SELECT upper(deviceId) AS dev, round(%s) AS r "
                           "FROM 'sensors/+/telemetry' WHERE %s >= %d", f, f, t);
        break;
    case 5:
        snprintf(buf, cap, "SELECT meta.site.id AS site, %s FROM 'sensors/+/telemetry' "
                           "WHERE meta.site.id = 'site-%d'", f, k % 17);
        break;
    case 6:
        snprintf(buf, cap, "SELECT topic(2) AS dev, %s, timestamp() AS ts "
                           "FROM 'sensors/+/telemetry' WHERE %s > %d AND status <> 'fail'",
                 f, f, t);
        break;
    case 7:
        snprintf(buf, cap, "SELECT deviceId, CASE status WHEN 'ok' THEN 0 WHEN 'warn' THEN 1 "
                           "ELSE 2 END AS level FROM 'sensors/+/telemetry' WHERE %s > %d", g, t);
        break;
    case 8:
        snprintf(buf, cap, "SELECT concat(deviceId, '/', %s) AS key, %s - %d AS delta "
                           "FROM 'sensors/+/telemetry'", s, f, t);
        break;
    default:
        snprintf(buf, cap, "SELECT %s, %s, %s FROM 'sensors/+/telemetry' "
                           "WHERE %s > %d OR %s < %d", s, f, g, f, t + 5, g, t - 5);
        break;
    }
}

/* One telemetry message (about 250 bytes). */
static size_t gen(char *buf, size_t cap, int dev) {
    static const char *status[] = {"ok", "warn", "fail"};
    return (size_t)snprintf(
        buf, cap,
        "{\"deviceId\":\"dev-%d\",\"ts\":%llu,\"temperature\":%.1f,\"humidity\":%.1f,"
        "\"pressure\":%.1f,\"battery\":%d,\"rssi\":%d,\"status\":\"%s\","
        "\"meta\":{\"site\":{\"id\":\"site-%d\"},\"fw\":{\"version\":\"1.%d.%d\"}},"
        "\"tags\":[\"a\",\"b\"]}",
        dev, 1700000000000ull + (unsigned long long)dev, (double)(next_rand() % 1000) / 10.0,
        (double)(next_rand() % 1000) / 10.0, (double)(next_rand() % 1000) / 10.0,
        (int)(next_rand() % 100), -(int)(next_rand() % 100), status[next_rand() % 3], dev % 17,
        dev % 5, dev % 11);
}

typedef struct stream {
    char *pool;
    size_t cap, *len, avg;
    char topic[POOL][48];
    size_t topic_len[POOL];
} stream;

/* Runs every rule on `messages` messages of s, alone or through the shared scan; returns the
 * seconds taken and counts fired rules in *fired. */
static double run(int shared, long messages, sql_exec *x, sql_program **progs, int nrules,
                  const sql_scanset *set, const uint32_t *ids, const stream *s, long *fired) {
    double t0 = now_s();
    for (long k = 0; k < messages; k++) {
        int i = (int)(k % POOL);
        sql_message m = {.topic = s->topic[i], .topic_len = s->topic_len[i],
                         .payload = s->pool + (size_t)i * s->cap, .payload_len = s->len[i],
                         .timestamp_ms = 1700000000000};
        if (shared && sql_exec_scan_begin(x, set, &m, ids, (size_t)nrules) != SQL_OK)
            exit(1);
        for (int r = 0; r < nrules; r++) {
            sql_output o;
            int rc = shared ? sql_exec_run_scan(x, (uint32_t)r, &m, &o)
                            : sql_exec_run_matched(x, progs[r], &m, &o);
            if (rc == SQL_FIRED)
                (*fired)++;
            else if (rc < 0) {
                fprintf(stderr, "rule %d: %s\n", r, sql_exec_errmsg(x));
                exit(1);
            }
        }
    }
    return now_s() - t0;
}

int main(int argc, char **argv) {
    long messages = 20000;
    int nrules = 300;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            messages = 2000;
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc)
            messages = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rules") && i + 1 < argc)
            nrules = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--way") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_many_rules [--messages N] [--quick] [--rules N] "
                            "[--way alone|shared]\n");
            return 64;
        }
    }
    if (nrules < 1 || nrules > MAX_RULES) {
        fprintf(stderr, "bench_many_rules: --rules must be 1..%d\n", MAX_RULES);
        return 64;
    }
    machine_line("bench_many_rules",
                 "way rules payload_bytes rule_evals_per_s ns_per_rule_eval msgs_per_s");
    static sql_program *progs[MAX_RULES];
    static uint32_t ids[MAX_RULES];
    for (int r = 0; r < nrules; r++) {
        char sql[512];
        rule(r, sql, sizeof sql);
        sql_compile_opts o = {.version = SQL_V2016_03_23};
        sql_diag d;
        if (sql_compile(sql, strlen(sql), &o, &progs[r], &d) != SQL_OK) {
            fprintf(stderr, "rule %d: %s: %s\n", r, sql, d.msg);
            return 1;
        }
        ids[r] = (uint32_t)r;
    }
    sql_scanset *set = sql_scanset_new((const sql_program *const *)progs, (size_t)nrules);
    static stream s;
    s.cap = 512;
    s.pool = malloc(s.cap * POOL);
    s.len = malloc(sizeof *s.len * POOL);
    sql_exec *x = sql_exec_new();
    if (!set || !s.pool || !s.len || !x)
        return 1;
    size_t total = 0;
    for (int i = 0; i < POOL; i++) {
        s.len[i] = gen(s.pool + (size_t)i * s.cap, s.cap, i * 7919 % 100000);
        total += s.len[i];
        s.topic_len[i] = (size_t)snprintf(s.topic[i], sizeof s.topic[i],
                                          "sensors/dev-%d/telemetry", i * 7919 % 100000);
    }
    s.avg = total / POOL;
    static const char *const way[] = {"alone", "shared"};
    for (int w = 0; w < 2; w++) {
        if (only && strcmp(only, way[w]) != 0)
            continue;
        long fired = 0;
        run(w, messages / 10 + 1, x, progs, nrules, set, ids, &s, &fired); /* warm up */
        fired = 0;
        double dt = run(w, messages, x, progs, nrules, set, ids, &s, &fired);
        double evals = (double)messages * nrules;
        printf("%s %d %zu %.0f %.1f %.0f\n", way[w], nrules, s.avg, evals / dt, dt * 1e9 / evals,
               (double)messages / dt);
        fprintf(stderr, "#   %s: %.1f%% of rule evaluations fired; %zu merged paths\n", way[w],
                100.0 * (double)fired / evals, sql_scanset_nodes(set));
    }
    sql_exec_free(x);
    sql_scanset_free(set);
    for (int r = 0; r < nrules; r++)
        sql_program_free(progs[r]);
    free(s.pool);
    free(s.len);
    return 0;
}

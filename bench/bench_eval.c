/*
 * bench_eval.c -- `eval_bench`: single-thread, in-process evaluation throughput.
 *
 * Generates telemetry messages of about 100 B, 1 KB and 10 KB (about half of them with
 * temperature above 50, so half fire), compiles each benchmark rule once, and times
 * sql_exec_run() over N messages per case, output serialization included (that is what an
 * action would send). Payloads are generated before timing into a pool of distinct messages
 * that the timed loop cycles through. Prints one line per case:
 *
 *     <case> <payload bytes> <msgs/s> <ns/msg>
 *
 * usage: eval_bench [--messages N] [--quick] [--case NAME] [--size BYTES]
 *        (default 1 000 000 messages; --quick: 100 000; --case/--size: run only those)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sql.h"

#define POOL 1024

typedef struct bench_case {
    const char *name, *sql;
} bench_case;

static const bench_case cases[] = {
    {"seed", "SELECT temperature, humidity, deviceId FROM 'sensors/+/telemetry' "
             "WHERE temperature > 50.0"},
    {"nested", "SELECT meta.site.id AS site, meta.fw.version AS fw, temperature "
               "FROM 'sensors/+/telemetry' WHERE temperature > 50.0"},
    {"regexp", "SELECT deviceId, temperature FROM 'sensors/+/telemetry' "
               "WHERE regexp_matches(deviceId, '^dev-[0-9]+7$')"},
    {"case", "SELECT deviceId, CASE status WHEN 'ok' THEN 0 WHEN 'warn' THEN 1 ELSE 2 END AS "
             "level FROM 'sensors/+/telemetry' WHERE temperature > 50.0"},
    {"star_fn", "SELECT *, upper(deviceId) AS dev, timestamp() AS ts "
                "FROM 'sensors/+/telemetry' WHERE temperature > 50.0"},
};

/* One telemetry message of about `target` bytes: device fields first, then padding that
 * real devices send (a readings array and a log of short strings). */
static size_t gen(char *buf, size_t cap, size_t target, int dev) {
    static const char *status[] = {"ok", "warn", "fail"};
    double t = (double)(next_rand() % 1000) / 10.0; /* 0..99.9: half above 50 */
    size_t n = (size_t)snprintf(buf, cap,
                                "{\"deviceId\":\"dev-%d\",\"temperature\":%.1f,\"humidity\":%.1f,"
                                "\"status\":\"%s\",\"meta\":{\"site\":{\"id\":\"site-%d\"},"
                                "\"fw\":{\"version\":\"1.%d.%d\"}}",
                                dev, t, (double)(next_rand() % 1000) / 10.0,
                                status[next_rand() % 3], dev % 17, dev % 5, dev % 11);
    if (n + 40 < target) {
        n += (size_t)snprintf(buf + n, cap - n, ",\"readings\":[");
        int first = 1;
        while (n + 30 < target * 6 / 10) {
            n += (size_t)snprintf(buf + n, cap - n, "%s%.2f", first ? "" : ",",
                                  (double)(next_rand() % 100000) / 100.0);
            first = 0;
        }
        n += (size_t)snprintf(buf + n, cap - n, "],\"log\":[");
        first = 1;
        while (n + 40 < target) {
            n += (size_t)snprintf(buf + n, cap - n, "%s\"evt-%u ok\"", first ? "" : ",",
                                  (unsigned)(next_rand() % 100000));
            first = 0;
        }
        n += (size_t)snprintf(buf + n, cap - n, "]");
    }
    n += (size_t)snprintf(buf + n, cap - n, "}");
    return n;
}

int main(int argc, char **argv) {
    long messages = 1000000;
    const char *only = NULL;
    size_t only_size = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            messages = 100000;
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc)
            messages = atol(argv[++i]);
        else if (!strcmp(argv[i], "--case") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            only_size = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: eval_bench [--messages N] [--quick] [--case NAME] "
                            "[--size BYTES]\n");
            return 64;
        }
    }
    machine_line("eval_bench", "case payload_bytes msgs_per_s ns_per_msg");
    static const size_t sizes[] = {100, 1024, 10240};
    char topic[64];
    sql_exec *x = sql_exec_new();
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        if (only_size && sizes[s] != only_size)
            continue;
        size_t cap = sizes[s] * 2 + 512;
        char *pool = malloc(cap * POOL);
        size_t *len = malloc(sizeof(size_t) * POOL);
        if (!pool || !len || !x)
            return 1;
        size_t total = 0;
        for (int i = 0; i < POOL; i++) {
            len[i] = gen(pool + (size_t)i * cap, cap, sizes[s], i * 7919 % 100000);
            total += len[i];
        }
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            if (only && strcmp(only, cases[c].name) != 0)
                continue;
            sql_program *p;
            sql_diag d;
            if (sql_compile(cases[c].sql, strlen(cases[c].sql), NULL, &p, &d) != SQL_OK) {
                fprintf(stderr, "%s: %s\n", cases[c].name, d.msg);
                return 1;
            }
            long fired = 0;
            size_t outbytes = 0;
            for (long k = 0; k < messages / 10; k++) { /* warm caches and the arena */
                int i = (int)(k % POOL);
                int tl = snprintf(topic, sizeof topic, "sensors/dev-%d/telemetry", i);
                sql_message m = {.topic = topic, .topic_len = (size_t)tl,
                                 .payload = pool + (size_t)i * cap, .payload_len = len[i]};
                sql_output o;
                sql_exec_run(x, p, &m, &o);
            }
            double t0 = now_s();
            for (long k = 0; k < messages; k++) {
                int i = (int)(k % POOL);
                int tl = snprintf(topic, sizeof topic, "sensors/dev-%d/telemetry", i);
                sql_message m = {.topic = topic, .topic_len = (size_t)tl,
                                 .payload = pool + (size_t)i * cap, .payload_len = len[i],
                                 .timestamp_ms = 1700000000000};
                sql_output o;
                int rc = sql_exec_run(x, p, &m, &o);
                if (rc == SQL_FIRED) {
                    fired++;
                    outbytes += o.len;
                } else if (rc < 0) {
                    fprintf(stderr, "%s: %s\n", cases[c].name, sql_exec_errmsg(x));
                    return 1;
                }
            }
            double dt = now_s() - t0;
            printf("%s %zu %.0f %.0f\n", cases[c].name, total / POOL, (double)messages / dt,
                   dt * 1e9 / (double)messages);
            fprintf(stderr, "#   %s: fired %.1f%%, %.0f output bytes/msg\n", cases[c].name,
                    100.0 * (double)fired / (double)messages,
                    fired ? (double)outbytes / (double)fired : 0.0);
            sql_program_free(p);
        }
        free(pool);
        free(len);
    }
    sql_exec_free(x);
    return 0;
}

/*
 * bench_topic.c -- `topic_bench`: cost of matching a topic against 1 k, 10 k and 100 k rule
 * filters in the engine's topic index, and the memory of 10 k compiled rules.
 *
 * Filters mix the shapes real fleets use: exact device topics, per-site '+' filters, '#'
 * subtrees and a few fleet-wide filters. Each line: <rules> <ns per match> <matches per topic>.
 * The last line loads 10 000 simple rules through the same path the REST API uses (validate,
 * compile with templates, registry snapshot) and prints the resident memory they add.
 *
 * usage: topic_bench [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_int.h"

static unsigned long long rng = 88172645463325252ull;
static unsigned next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)rng;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    static const int counts[] = {1000, 10000, 100000};
    printf("# topic_bench: rules ns_per_match matches_per_topic\n");
    for (int c = 0; c < 3; c++) {
        int n = counts[c];
        int sites = n / 100 > 0 ? n / 100 : 1;
        eng_topic_index *ix = eng_topic_index_new();
        char f[128];
        for (int i = 0; i < n; i++) {
            int kind = (int)(next() % 10), site = (int)(next() % (unsigned)sites);
            int dev = (int)(next() % 1000);
            if (kind < 6)
                snprintf(f, sizeof f, "sensors/site-%d/dev-%d/telemetry", site, dev);
            else if (kind < 8)
                snprintf(f, sizeof f, "sensors/site-%d/+/telemetry", site);
            else if (kind < 9)
                snprintf(f, sizeof f, "sensors/site-%d/#", site);
            else
                snprintf(f, sizeof f, "fleet/+/dev-%d/status", dev);
            eng_topic_index_add(ix, f, strlen(f), (uint32_t)i);
        }
        enum { NT = 4096 };
        static char topics[NT][64];
        static size_t lens[NT];
        for (int i = 0; i < NT; i++)
            lens[i] = (size_t)snprintf(topics[i], sizeof topics[i],
                                       "sensors/site-%u/dev-%u/telemetry", next() % (unsigned)sites,
                                       next() % 1000);
        uint32_t ids[4096];
        long iters = quick ? 200000 : 2000000, total = 0;
        for (long k = 0; k < iters / 10; k++) /* warm-up */
            total += (long)eng_topic_index_match(ix, topics[k % NT], lens[k % NT], ids, 4096);
        total = 0;
        double t0 = now();
        for (long k = 0; k < iters; k++)
            total += (long)eng_topic_index_match(ix, topics[k % NT], lens[k % NT], ids, 4096);
        double dt = now() - t0;
        printf("%d %.0f %.2f\n", n, dt * 1e9 / (double)iters, (double)total / (double)iters);
        eng_topic_index_free(ix);
    }

    /* memory of 10 000 compiled rules */
    static eng_config cfg;
    static eng_env env;
    eng_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "/tmp/topic_bench_rules");
    env.cfg = &cfg;
    eng_log_set_level(ENG_LOG_ERROR);
    eng_rule **rules = calloc(10000, sizeof *rules);
    long before = rss_kb();
    for (int i = 0; i < 10000; i++) {
        char json[512], name[32];
        snprintf(name, sizeof name, "rule_%d", i);
        snprintf(json, sizeof json,
                 "{\"sql\":\"SELECT temperature, humidity, deviceId FROM "
                 "'sensors/site-%d/+/telemetry' WHERE temperature > %d.5\","
                 "\"awsIotSqlVersion\":\"2016-03-23\",\"actions\":[]}",
                 i, i % 100);
        eng_error e;
        rules[i] = eng_rule_new(name, json, strlen(json), &env, &e);
        if (!rules[i]) {
            fprintf(stderr, "%s\n", e.message);
            return 1;
        }
    }
    eng_topic_index *ix = eng_topic_index_new();
    for (int i = 0; i < 10000; i++) {
        const char *flt = sql_program_topic_filter(rules[i]->prog);
        eng_topic_index_add(ix, flt, strlen(flt), (uint32_t)i);
    }
    long after = rss_kb();
    printf("# 10000 compiled rules + index: %.1f MB resident (process total %.1f MB)\n",
           (double)(after - before) / 1024.0, (double)after / 1024.0);
    eng_topic_index_free(ix);
    for (int i = 0; i < 10000; i++)
        eng_rule_release(rules[i]);
    free(rules);
    return 0;
}

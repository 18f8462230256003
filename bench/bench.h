/*
 * bench.h -- what the micro-benchmarks share: a fixed pseudo-random sequence (the same
 * messages every run), a monotonic clock, and the header line that says which machine the
 * figures come from.
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints "# <name>: 1 thread; machine: <cores> cores, <CPU model>" and "# <columns>". */
static void machine_line(const char *name, const char *columns) {
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    printf("# %s: 1 thread; machine: %ld cores, %s\n", name, sysconf(_SC_NPROCESSORS_ONLN),
           model);
    printf("# %s\n", columns);
}

#endif

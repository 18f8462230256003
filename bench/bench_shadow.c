/*
 * bench_shadow.c -- durable shadow updates per second, and their latency, with N concurrent
 * updaters on distinct shadows.
 *
 *   bench_shadow [--updaters N] [--seconds S] [--layer service|store] [--dir DIR] [--no-sync]
 *                [--fields F] [--json]
 *
 * Each updater thread owns one shadow (thing bench-<i>) and updates it in a closed loop for S
 * seconds. --layer service (the default) goes through eng_shadow_handle() as a REST update
 * would: validation, the read of the stored shadow, the merge, the delta, the durable write
 * and the three MQTT messages. --layer store measures the store alone: a compare-and-set put of
 * a ready document per call. Every acknowledged update is on disk (synchronous=FULL, one fsync
 * per group commit) unless --no-sync. The store lives in DIR (default: a new directory under
 * /tmp; it must be on the disk being measured, not a tmpfs) and is removed afterwards.
 *
 * Before the run the benchmark times 200 fdatasync calls of a 4 KiB write in the same
 * directory, the floor a one-fsync-per-update design would sit on. Output: one line per run,
 * or a JSON object with --json: updates/s, latency p50 / p99 / max in microseconds, and the
 * fdatasync figure. A failed update makes the exit status 1.
 */
#define _GNU_SOURCE
#include "shadow.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct updater {
    int id;
    eng_shadow *svc;
    eng_shadow_store *store;
    int fields;
    double until;
    double *lat;              /* seconds per acknowledged update */
    size_t n, cap;
    int failed;
} updater;

static pthread_barrier_t go; /* the updaters start together */

static void record(updater *u, double dt) {
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 4096;
        u->lat = realloc(u->lat, u->cap * sizeof *u->lat);
        if (!u->lat)
            abort();
    }
    u->lat[u->n++] = dt;
}

/* {"state":{"reported":{"seq":i,"f1":...,"fF":...}}} */
static size_t payload(char *p, size_t cap, long i, int fields) {
    size_t k = (size_t)snprintf(p, cap, "{\"state\":{\"reported\":{\"seq\":%ld", i);
    for (int f = 1; f < fields && k < cap; f++)
        k += (size_t)snprintf(p + k, cap - k, ",\"f%d\":%ld.%d", f, i % 1000, f);
    k += (size_t)snprintf(p + k, cap - k, "}}}");
    return k;
}

static void *run_service(void *arg) {
    updater *u = arg;
    char thing[32], p[4096];
    snprintf(thing, sizeof thing, "bench-%d", u->id);
    pthread_barrier_wait(&go);
    for (long i = 0; mono_s() < u->until; i++) {
        size_t n = payload(p, sizeof p, i, u->fields);
        eng_shadow_req r = {.op = ENG_SHADOW_UPDATE, .transport = ENG_SHADOW_REST, .thing = thing,
                            .thing_len = strlen(thing), .payload = p, .payload_len = n};
        eng_shadow_reply out;
        double t0 = mono_s();
        int st = eng_shadow_handle(u->svc, &r, &out);
        double dt = mono_s() - t0;
        if (st != 200) {
            fprintf(stderr, "update failed: %d %s\n", st, out.body);
            u->failed = 1;
        }
        eng_shadow_reply_deinit(&out);
        if (st != 200)
            break;
        record(u, dt);
    }
    return NULL;
}

static void *run_store(void *arg) {
    updater *u = arg;
    char thing[32], p[4096];
    snprintf(thing, sizeof thing, "bench-%d", u->id);
    uint64_t rev = 0;
    pthread_barrier_wait(&go);
    for (long i = 0; mono_s() < u->until; i++) {
        size_t n = payload(p, sizeof p, i, u->fields);
        eng_shadow_record rec = {.version = i + 1, .updated_at = time(NULL), .doc = p,
                                 .doc_len = n};
        eng_error e;
        double t0 = mono_s();
        int rc = u->store->vt->put(u->store, thing, "", rev, &rec, &e);
        double dt = mono_s() - t0;
        if (rc) {
            fprintf(stderr, "put failed: %d %s\n", rc, rc == -1 ? e.message : "conflict");
            u->failed = 1;
            break;
        }
        rev++; /* each put of a key adds one to its revision */
        record(u, dt);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median cost of fdatasync after a 4 KiB write in dir, in seconds. */
static double fdatasync_cost(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    static char block[4096];
    double t[200];
    for (int i = 0; i < 200; i++) {
        double t0 = mono_s();
        if (pwrite(fd, block, sizeof block, (off_t)(i % 16) * 4096) < 0 || fdatasync(fd) != 0) {
            close(fd);
            return -1;
        }
        t[i] = mono_s() - t0;
    }
    close(fd);
    unlink(path);
    qsort(t, 200, sizeof t[0], cmp_double);
    return t[100];
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_shadow [--updaters N] [--seconds S] [--layer service|store]\n"
               "                    [--dir DIR] [--no-sync] [--fields F] [--json]\n");
}

int main(int argc, char **argv) {
    int nup = 64, fields = 4, no_sync = 0, json = 0, store_layer = 0;
    double seconds = 5;
    const char *dir_arg = NULL;
    static const struct option opts[] = {
        {"updaters", required_argument, 0, 'n'}, {"seconds", required_argument, 0, 's'},
        {"layer", required_argument, 0, 'l'},    {"dir", required_argument, 0, 'd'},
        {"no-sync", no_argument, 0, 'y'},        {"fields", required_argument, 0, 'f'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': nup = atoi(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'l':
            if (strcmp(optarg, "service") && strcmp(optarg, "store")) {
                usage(stderr);
                return 64;
            }
            store_layer = !strcmp(optarg, "store");
            break;
        case 'd': dir_arg = optarg; break;
        case 'y': no_sync = 1; break;
        case 'f': fields = atoi(optarg); break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (nup < 1 || seconds <= 0 || fields < 1 || fields > 100) {
        usage(stderr);
        return 64;
    }
    eng_log_set_level(ENG_LOG_ERROR);
    char dir[512];
    if (dir_arg)
        snprintf(dir, sizeof dir, "%s/bench-shadow-XXXXXX", dir_arg);
    else
        snprintf(dir, sizeof dir, "/tmp/bench-shadow-XXXXXX");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    double fsync_s = fdatasync_cost(dir);
    eng_error e;
    eng_shadow_sqlite_opts so = {.no_sync = no_sync, .read_conns = 8};
    eng_shadow_store *store = eng_shadow_sqlite_open(dir, &so, &e);
    if (!store) {
        fprintf(stderr, "%s\n", e.message);
        return 1;
    }
    eng_shadow *svc = store_layer ? NULL : eng_shadow_new(store, NULL);
    updater *u = calloc((size_t)nup, sizeof *u);
    pthread_t *t = calloc((size_t)nup, sizeof *t);
    pthread_barrier_init(&go, NULL, (unsigned)nup + 1);
    for (int i = 0; i < nup; i++) {
        u[i] = (updater){.id = i, .svc = svc, .store = store, .fields = fields};
        pthread_create(&t[i], NULL, store_layer ? run_store : run_service, &u[i]);
    }
    double start = mono_s();
    for (int i = 0; i < nup; i++)
        u[i].until = start + seconds;
    pthread_barrier_wait(&go);
    size_t total = 0;
    int failed = 0;
    for (int i = 0; i < nup; i++) {
        pthread_join(t[i], NULL);
        total += u[i].n;
        failed |= u[i].failed;
    }
    double elapsed = mono_s() - start;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nup; i++) {
        memcpy(all + k, u[i].lat, u[i].n * sizeof *all);
        k += u[i].n;
        free(u[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_double);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[total * 99 / 100] : 0,
           max = total ? all[total - 1] : 0;
    if (svc)
        eng_shadow_free(svc);
    else
        store->vt->close(store);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    const char *layer = store_layer ? "store" : "service";
    if (json)
        printf("{\"layer\":\"%s\",\"updaters\":%d,\"fields\":%d,\"sync\":%s,\"updates\":%zu,"
               "\"seconds\":%.2f,\"updates_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
               "\"max_us\":%.0f,\"fdatasync_us\":%.0f}\n",
               layer, nup, fields, no_sync ? "false" : "true", total, elapsed, total / elapsed,
               p50 * 1e6, p99 * 1e6, max * 1e6, fsync_s * 1e6);
    else
        printf("%s updaters=%d fields=%d sync=%s: %zu updates in %.2f s = %.0f updates/s, "
               "latency p50 %.0f us p99 %.0f us max %.0f us (fdatasync alone: %.0f us)\n",
               layer, nup, fields, no_sync ? "off" : "on", total, elapsed, total / elapsed,
               p50 * 1e6, p99 * 1e6, max * 1e6, fsync_s * 1e6);
    free(all);
    free(u);
    free(t);
    return failed ? 1 : 0;
}

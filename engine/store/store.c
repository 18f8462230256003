/*
 * store.c -- the service's store: opening the backend the config names, and the watcher that
 * keeps this instance in step with the fleet.
 *
 * The data dir needs nothing more: this instance alone writes it. With PostgreSQL, open
 * connects (an unreachable database at start is an error: without its rules the instance would
 * drop what it should handle), migrates the schema and opens the rule store. The watcher is
 * one thread with one connection of its own, outside the pool:
 *
 *   - LISTEN sluice_rules: each notification (another instance changed a rule) makes it apply
 *     the store's new changes (eng_registry_sync), which takes milliseconds;
 *   - every ENG_STORE_RECONCILE_MS it asks for changes anyway, so a notification lost with a
 *     connection costs a few seconds at most;
 *   - after every (re)connect it compares all rules (eng_registry_reconcile), since deletions
 *     older than the tombstones kept may have been missed while it was away;
 *   - every ENG_STORE_HEARTBEAT_MS it registers the instance (eng_instance_beat), and now and
 *     then forgets old tombstones and instances gone for a week.
 *
 * While the database is away the watcher retries every second (the next attempt fails fast
 * when the server refuses connections); nothing else waits for it. The message path keeps the
 * rules it has; admin writes fail with 503; when the database returns, the reconnect's
 * reconcile brings the rules up to date.
 */
#include "store.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_SIZE 8                  /* connections per instance, besides the watcher's own */
#define PURGE_MS (10 * 60 * 1000)    /* tombstones and vanished instances */
#define TOMBSTONE_S 3600             /* a deleted rule's row is kept this long */
#define INSTANCE_GONE_S (7 * 24 * 3600)

struct eng_store {
    const eng_config *cfg;
    eng_pg *pg;               /* NULL: the data dir */
    eng_rule_store *rules;
    char where[600];
    eng_env *env;
    pthread_t watcher;
    int started;
    _Atomic int stop;
    _Atomic int connected;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

eng_store *eng_store_open(const eng_config *cfg, eng_error *e) {
    eng_store *st = calloc(1, sizeof *st);
    if (!st) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    st->cfg = cfg;
    atomic_init(&st->connected, 1);
    if (!cfg->store_url[0]) {
        snprintf(st->where, sizeof st->where, "dataDir %s", cfg->data_dir);
        if (!(st->rules = eng_rule_store_dir_open(cfg->data_dir, e)))
            goto fail;
        return st;
    }
    char app[64];
    snprintf(app, sizeof app, "sluice %.40s", cfg->mqtt_client_id);
    if (!(st->pg = eng_pg_open(cfg->store_url, app, POOL_SIZE, e)))
        goto fail;
    snprintf(st->where, sizeof st->where, "%s", eng_pg_where(st->pg));
    if (eng_pg_migrate(st->pg, e) || !(st->rules = eng_rule_store_pg_open(st->pg, e)))
        goto fail;
    return st;
fail:
    eng_store_close(st);
    return NULL;
}

eng_rule_store *eng_store_rules(eng_store *st) { return st->rules; }
eng_pg *eng_store_pg(eng_store *st) { return st->pg; }
const char *eng_store_where(const eng_store *st) { return st->where; }
int eng_store_connected(const eng_store *st) { return atomic_load(&st->connected); }

/* {====== the watcher */

/* Connects and LISTENs; NULL while the database is away (logged once per outage). */
static PGconn *listen_conn(eng_store *st, int *logged) {
    eng_error e;
    memset(&e, 0, sizeof e);
    PGconn *c = eng_pg_connect(st->pg, &e);
    PGresult *r = c ? eng_pg_exec(st->pg, c, "LISTEN sluice_rules", 0, NULL, PGRES_COMMAND_OK,
                                  "listening for rule changes", &e)
                    : NULL;
    if (r) {
        PQclear(r);
        return c;
    }
    PQfinish(c);
    if (!*logged)
        eng_log(ENG_LOG_WARN, "store.unavailable", "%s (the message path keeps its rules; "
                "admin changes get 503 until it is back)", e.message);
    *logged = 1;
    return NULL;
}

/* Waits up to ms for a notification (or the stop flag). 1: notified; 0: timeout; -1: the
 * connection broke. */
static int wait_notify(eng_store *st, PGconn *c, int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        int notified = 0;
        PGnotify *n;
        while ((n = PQnotifies(c))) {
            notified = 1;
            PQfreemem(n);
        }
        if (notified)
            return 1;
        int left = (int)(end - now_ms());
        if (left <= 0 || atomic_load(&st->stop))
            return 0;
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        /* short slices: the stop flag is seen within 200 ms */
        int rc = poll(&p, 1, left < 200 ? left : 200);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0 && (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK))
            return -1;
    }
}

static void beat(eng_store *st, int stopped) {
    eng_error e;
    memset(&e, 0, sizeof e);
    if (eng_instance_beat(st->pg, st->env, stopped, &e))
        eng_log(ENG_LOG_DEBUG, "store.heartbeat_failed", "%s", e.message);
}

static void purge(eng_store *st) {
    eng_error e;
    memset(&e, 0, sizeof e);
    if (eng_rule_store_pg_purge(st->pg, TOMBSTONE_S, &e) ||
        eng_instance_purge(st->pg, INSTANCE_GONE_S, &e))
        eng_log(ENG_LOG_DEBUG, "store.purge_failed", "%s", e.message);
}

static void *watch_main(void *arg) {
    eng_store *st = arg;
    PGconn *c = NULL;
    int logged = 0;
    int64_t next_sync = 0, next_beat = 0, next_purge = now_ms() + PURGE_MS;
    while (!atomic_load(&st->stop)) {
        if (!c) {
            if (!(c = listen_conn(st, &logged))) {
                atomic_store(&st->connected, 0);
                for (int i = 0; i < 5 && !atomic_load(&st->stop); i++) {
                    struct timespec ts = {0, 200 * 1000 * 1000};
                    nanosleep(&ts, NULL);
                }
                continue;
            }
            /* listening from now on: whatever changed before is in the reconcile */
            eng_error e;
            memset(&e, 0, sizeof e);
            if (eng_registry_reconcile(st->env->registry, &e)) {
                eng_log(ENG_LOG_WARN, "store.reconcile_failed", "%s", e.message);
                PQfinish(c);
                c = NULL;
                continue;
            }
            if (logged)
                eng_log(ENG_LOG_INFO, "store.available", "shared store %s is back; rules "
                        "reconciled", eng_pg_where(st->pg));
            logged = 0;
            atomic_store(&st->connected, 1);
            next_sync = now_ms() + ENG_STORE_RECONCILE_MS;
            next_beat = 0;
        }
        int64_t t = now_ms();
        if (t >= next_beat) {
            beat(st, 0);
            next_beat = t + ENG_STORE_HEARTBEAT_MS;
        }
        if (t >= next_purge) {
            purge(st);
            next_purge = t + PURGE_MS;
        }
        int64_t wake = next_beat < next_sync ? next_beat : next_sync;
        int w = wait_notify(st, c, (int)(wake > t ? wake - t : 0));
        if (w < 0) {
            eng_log(ENG_LOG_WARN, "store.disconnected", "lost the connection to the shared "
                    "store %s: %s", eng_pg_where(st->pg), PQerrorMessage(c));
            PQfinish(c);
            c = NULL;
            logged = 1;
            atomic_store(&st->connected, 0);
            continue;
        }
        if (w == 1 || now_ms() >= next_sync) {
            eng_error e;
            memset(&e, 0, sizeof e);
            if (eng_registry_sync(st->env->registry, &e))
                eng_log(ENG_LOG_WARN, "store.sync_failed", "%s", e.message);
            next_sync = now_ms() + ENG_STORE_RECONCILE_MS;
        }
    }
    PQfinish(c);
    return NULL;
}

int eng_store_start(eng_store *st, eng_env *env, eng_error *e) {
    st->env = env;
    if (!st->pg)
        return 0;
    if (pthread_create(&st->watcher, NULL, watch_main, st) != 0)
        return eng_error_set(e, 500, "InternalException", "cannot start the store's watcher");
    st->started = 1;
    return 0;
}

void eng_store_stop(eng_store *st) {
    if (!st || !st->started)
        return;
    atomic_store(&st->stop, 1);
    pthread_join(st->watcher, NULL);
    st->started = 0;
    beat(st, 1); /* GET /cluster/instances shows it stopped rather than stale */
}

/* }====== */

void eng_store_close(eng_store *st) {
    if (!st)
        return;
    eng_store_stop(st);
    if (st->rules)
        st->rules->vt->close(st->rules);
    eng_pg_close(st->pg);
    free(st);
}

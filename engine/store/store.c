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
 *
 * The '$' lease. A broker may not deliver a '$' topic ($aws/things/.../shadow/update, a rule
 * FROM '$aws/...') to a shared subscription (Mosquitto never does: mqtt.c), so those topics
 * cannot be split between the instances of a $share group, and subscribing every instance to
 * them would handle each message once per instance. Instead one instance of the group holds
 * the lease, a PostgreSQL advisory lock (keyed by the group) on the watcher's connection, and
 * alone subscribes to the '$' filters (serve.c). The others try for it every LEASE_MS and when
 * the holder announces it is leaving (NOTIFY sluice_lease); a holder killed loses the lock with
 * its connection. A holder that stops cleanly hands over: it releases the lock, waits until
 * another instance has it and its subscriptions are acknowledged, and only then unsubscribes,
 * so no '$' message finds nobody subscribed (a few may reach both: at least once). Until a
 * handover is confirmed it stays subscribed, its persistent session keeping what arrives. An
 * instance that lost its connection keeps acting as holder until it reconnects and learns
 * whether it still is: while the database is away nobody else can take the lease.
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
#define LEASE_MS 1000                /* how often a non-holder tries for the '$' lease */
#define READY_MS 3000                /* a new holder waits this long for its SUBACKs */

enum { NOTE_RULES = 1, NOTE_RELEASED = 2, NOTE_TAKEN = 4 };

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
    /* the '$' lease */
    int lease_wanted;         /* a shared store and a shared-subscription group */
    char lease_key[24];       /* the advisory lock's key, from the group */
    _Atomic int holder;
    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    int handoff_ms;           /* guarded by hmu: > 0, a handover is asked for */
    int handoff_result;       /* guarded by hmu: -1 pending; 0 nobody took it; 1 taken */
    int leaving;              /* watcher only: never take the lease again */
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
    pthread_mutex_init(&st->hmu, NULL);
    pthread_cond_init(&st->hcv, NULL);
    st->lease_wanted = cfg->store_url[0] && cfg->mqtt_shared_group[0];
    atomic_init(&st->holder, st->lease_wanted ? -1 : 1); /* -1: not known yet */
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the group, as a positive bigint */
    for (const char *p = "sluice-lease:"; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = cfg->mqtt_shared_group; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(st->lease_key, sizeof st->lease_key, "%lld", (long long)(h >> 1));
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
int eng_store_holds_dollar(const eng_store *st) { return !st ? 1 : atomic_load(&st->holder); }

/* {====== the watcher */

/* Connects and LISTENs; NULL while the database is away (logged once per outage). */
static PGconn *listen_conn(eng_store *st, int *logged) {
    eng_error e;
    memset(&e, 0, sizeof e);
    PGconn *c = eng_pg_connect(st->pg, &e);
    PGresult *r = c ? eng_pg_exec(st->pg, c, "LISTEN sluice_rules; LISTEN sluice_lease", 0, NULL,
                                  PGRES_COMMAND_OK, "listening for rule changes", &e)
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

/* Waits up to ms for a notification (or the stop flag, or a handover asked for). The NOTE_*
 * bits of what came; 0: timeout; -1: the connection broke. */
static int wait_notify(eng_store *st, PGconn *c, int ms) {
    int64_t end = now_ms() + ms;
    for (;;) {
        int notified = 0;
        PGnotify *n;
        while ((n = PQnotifies(c))) {
            /* a lease's notes name its key: other groups on the store have leases of their own */
            const char *key = n->extra ? strchr(n->extra, ':') : NULL;
            int mine = key && !strcmp(key + 1, st->lease_key);
            if (!strcmp(n->relname, "sluice_rules"))
                notified |= NOTE_RULES;
            else if (mine && !strncmp(n->extra, "released:", 9))
                notified |= NOTE_RELEASED;
            else if (mine && !strncmp(n->extra, "taken:", 6))
                notified |= NOTE_TAKEN;
            PQfreemem(n);
        }
        if (notified)
            return notified;
        pthread_mutex_lock(&st->hmu);
        int asked = st->handoff_ms > 0;
        pthread_mutex_unlock(&st->hmu);
        int left = (int)(end - now_ms());
        if (left <= 0 || atomic_load(&st->stop) || asked)
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

/* Runs a one-row query on the watcher's connection: its first value is 't'? -1 on failure. */
static int ask(eng_store *st, PGconn *c, const char *sql) {
    eng_error e;
    const char *params[] = {st->lease_key};
    PGresult *r = eng_pg_exec(st->pg, c, sql, 1, params, PGRES_TUPLES_OK, "the lease", &e);
    int v = r && PQntuples(r) == 1 ? !strcmp(PQgetvalue(r, 0, 0), "t") : -1;
    PQclear(r);
    return v;
}

/* NOTIFY sluice_lease, '<what>:<key>'. */
static void note(eng_store *st, PGconn *c, const char *what) {
    char payload[64];
    snprintf(payload, sizeof payload, "%s:%s", what, st->lease_key);
    const char *params[] = {payload};
    eng_error e;
    PQclear(eng_pg_exec(st->pg, c, "SELECT pg_notify('sluice_lease', $1)", 1, params,
                        PGRES_TUPLES_OK, "the lease", &e));
}

/* Became holder: take the '$' filters, wait for their SUBACKs, tell a leaving holder. */
static void took_lease(eng_store *st, PGconn *c) {
    atomic_store(&st->holder, 1);
    eng_log(ENG_LOG_INFO, "store.lease", "this instance takes the '$' topics of group %s "
            "(shadow requests, rules on $aws/...)", st->cfg->mqtt_shared_group);
    eng_registry_refilter(st->env->registry);
    int64_t end = now_ms() + READY_MS;
    while (st->env->mqtt && !eng_mqtt_dollar_ready(st->env->mqtt) && now_ms() < end &&
           !atomic_load(&st->stop)) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    note(st, c, "taken");
}

static void lost_lease(eng_store *st) {
    atomic_store(&st->holder, 0);
    eng_log(ENG_LOG_DEBUG, "store.lease", "another instance has the '$' topics of group %s",
            st->cfg->mqtt_shared_group);
    eng_registry_refilter(st->env->registry);
}

/* The handover asked for by eng_store_handoff(): 1 when another instance took the lease. */
static int hand_over(eng_store *st, PGconn *c, int ms) {
    st->leaving = 1;
    if (atomic_load(&st->holder) != 1 || !c)
        return 0;
    if (ask(st, c, "SELECT pg_advisory_unlock($1::bigint)") != 1)
        return 0;
    note(st, c, "released");
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        int w = wait_notify(st, c, (int)(end - now_ms()));
        if (w < 0)
            return 0;
        if (w & NOTE_TAKEN) {
            atomic_store(&st->holder, 0);
            eng_log(ENG_LOG_INFO, "store.lease", "the '$' topics of group %s handed over",
                    st->cfg->mqtt_shared_group);
            return 1;
        }
    }
    eng_log(ENG_LOG_INFO, "store.lease", "no instance took the '$' topics of group %s: this "
            "one stays subscribed, its session keeps what arrives", st->cfg->mqtt_shared_group);
    return 0;
}

static void *watch_main(void *arg) {
    eng_store *st = arg;
    PGconn *c = NULL;
    int logged = 0;
    int64_t next_sync = 0, next_beat = 0, next_lease = 0, next_purge = now_ms() + PURGE_MS;
    while (!atomic_load(&st->stop)) {
        if (!c) {
            pthread_mutex_lock(&st->hmu);
            if (st->handoff_ms > 0) { /* nobody can take it while the database is away */
                st->leaving = 1;
                st->handoff_ms = 0;
                st->handoff_result = 0;
                pthread_cond_broadcast(&st->hcv);
            }
            pthread_mutex_unlock(&st->hmu);
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
            /* a holder before the outage: is it still? (the server may have restarted) */
            if (st->lease_wanted && atomic_load(&st->holder) == 1 && !st->leaving &&
                ask(st, c, "SELECT pg_try_advisory_lock($1::bigint)") == 0)
                lost_lease(st);
            next_lease = 0;
        }
        pthread_mutex_lock(&st->hmu);
        int handoff = st->handoff_ms;
        st->handoff_ms = 0; /* asked: wait_notify no longer returns early for it */
        pthread_mutex_unlock(&st->hmu);
        if (handoff > 0) {
            int taken = hand_over(st, c, handoff);
            pthread_mutex_lock(&st->hmu);
            st->handoff_result = taken;
            pthread_cond_broadcast(&st->hcv);
            pthread_mutex_unlock(&st->hmu);
        }
        int64_t t = now_ms();
        if (st->lease_wanted && !st->leaving && atomic_load(&st->holder) != 1 &&
            t >= next_lease) {
            int got = ask(st, c, "SELECT pg_try_advisory_lock($1::bigint)");
            if (got == 1)
                took_lease(st, c);
            else if (got == 0 && atomic_load(&st->holder) == -1)
                lost_lease(st); /* decided: another instance has it */
            next_lease = t + LEASE_MS;
        }
        if (t >= next_beat) {
            beat(st, 0);
            next_beat = t + ENG_STORE_HEARTBEAT_MS;
        }
        if (t >= next_purge) {
            purge(st);
            next_purge = t + PURGE_MS;
        }
        int64_t wake = next_beat < next_sync ? next_beat : next_sync;
        if (st->lease_wanted && atomic_load(&st->holder) != 1 && next_lease < wake)
            wake = next_lease;
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
        if (w > 0 && (w & NOTE_RELEASED))
            next_lease = 0; /* the holder is leaving: try now */
        if ((w > 0 && (w & NOTE_RULES)) || now_ms() >= next_sync) {
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

int eng_store_handoff(eng_store *st, int ms) {
    if (!st || !st->started || !st->lease_wanted)
        return 0;
    pthread_mutex_lock(&st->hmu);
    st->handoff_result = -1;
    st->handoff_ms = ms;
    while (st->handoff_result < 0)
        pthread_cond_wait(&st->hcv, &st->hmu);
    int taken = st->handoff_result;
    pthread_mutex_unlock(&st->hmu);
    return taken;
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
    pthread_mutex_destroy(&st->hmu);
    pthread_cond_destroy(&st->hcv);
    free(st);
}

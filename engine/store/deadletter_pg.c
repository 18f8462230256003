/*
 * deadletter_pg.c -- the fleet's dead letters: table sluice_dead_letters in the shared
 * PostgreSQL, behind the act_dlq_* API (actions/action.h) that the pipelines, GET /deadletter
 * and the re-drive use unchanged.
 *
 * A row is one record: its rule and last failure time (to filter on), its size (for the
 * bound), the instance that wrote it, and the record itself as act_dlq_record_json() makes it
 * (without "id": the row's id is the record's, added when it is read, fleet-wide unique).
 *
 * Writes: one thread with a connection of its own takes everything queued and inserts it in
 * one transaction sent as a libpq pipeline (BEGIN, the INSERTs, COMMIT: one round trip), so a
 * dead sink dead-lettering thousands of messages costs a few commits, and no worker or lane
 * ever waits for the database. An asynchronous append's completion runs on that thread once
 * the COMMIT succeeded, never before: until then the message stays in the ingest journal. While
 * the database is unreachable the writer keeps the queue and retries every second; an
 * asynchronous record waits (the queue is bounded: past PENDING_MAX appenders wait, which stops
 * the sources, as a full disk would), a synchronous one gives up after SYNC_WAIT_MS. At close
 * whatever cannot be written fails (its messages stay in the journal for the next start).
 * Should the connection break after the COMMIT was sent, the writer cannot know whether it
 * committed and writes the batch again: a record may then be stored twice, never lost.
 *
 * Re-drive claims: act_dlq_foreach() marks the rows it hands out (claimed_by, claimed_at) in one
 * UPDATE whose subquery locks with FOR UPDATE SKIP LOCKED and whose outer condition is checked
 * again on the locked row, so two instances re-driving at once split the records and never
 * both get one. A claim ends with the row's deletion (delivered, or superseded by a new dead
 * letter), with act_dlq_release(), or after ACT_DLQ_CLAIM_MS (a claimer killed meanwhile).
 *
 * Bounds, every HOUSEKEEPING_MS on each instance (harmless when several do it): rows older
 * than max_age_s go, then the oldest rows past max_bytes in all; the same pass counts what the
 * table holds for /metrics.
 */
#include "store.h"

#include "../../actions/action.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PENDING_MAX 65536      /* queued records before appenders wait */
#define BATCH_MAX 1000         /* records per transaction */
#define SYNC_WAIT_MS 5000      /* a synchronous append gives up after this while unreachable */
#define HOUSEKEEPING_MS 10000
#define CLAIM_BATCH 100        /* rows claimed per statement: two re-drives at once split */

typedef struct pend pend;
struct pend {
    pend *next;
    char *rule;
    int64_t at;               /* last failure, ms */
    char *record;             /* JSON text */
    int64_t deadline;         /* monotonic ms; 0: wait as long as it takes */
    act_dlq_done_fn done;     /* asynchronous; else a waiter: */
    void *ud;
    int settled, rc;          /* the writer's alone until complete() */
    int finished;             /* guarded by mu: a synchronous waiter may take it back */
    uint64_t id;
};

typedef struct pg_dlq {
    act_dlq base;
    eng_pg *pg;
    const eng_host *host;
    char instance[64];
    long long max_bytes, max_age_s;
    pthread_mutex_t mu;
    pthread_cond_t work, room, finished;
    pend *head, *tail;        /* guarded by mu */
    size_t npend;             /* guarded by mu: queued or being written */
    int stop;                 /* guarded by mu */
    int housekeep;            /* guarded by mu: act_dlq_expire() asked */
    pthread_t writer;
    int writer_started;
    uint64_t records, bytes;  /* guarded by mu: the last count */
    _Atomic uint64_t appended, evicted, resolved, write_errors;
} pg_dlq;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {====== the writer */

/* Inserts batch[0..n) in one transaction (a pipeline: one round trip), setting each id.
 * 0; -1 with e set (e->status 503: the database is unreachable, try again). */
static int insert_batch(pg_dlq *d, PGconn *c, pend **batch, size_t n, eng_error *e) {
    if (!PQenterPipelineMode(c))
        return eng_pg_error(d->pg, c, NULL, "writing dead letters", e);
    int sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; sent && i < n; i++) {
        char at[24], bytes[24];
        snprintf(at, sizeof at, "%" PRId64, batch[i]->at);
        snprintf(bytes, sizeof bytes, "%zu", strlen(batch[i]->record));
        const char *params[] = {batch[i]->rule, at, bytes, d->instance, batch[i]->record};
        sent = PQsendQueryParams(c, "INSERT INTO sluice_dead_letters(rule, at, bytes, instance,"
                                 " record) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                                 5, NULL, params, NULL, NULL, 0);
    }
    sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
           PQpipelineSync(c);
    int rc = sent ? 0 : eng_pg_error(d->pg, c, NULL, "writing dead letters", e);
    /* one result (then NULL) per query sent, then the sync; after an error the rest are
     * PGRES_PIPELINE_ABORTED */
    for (size_t q = 0; sent && q < n + 2; q++) {
        PGresult *r = PQgetResult(c);
        if (!r) {
            rc = eng_pg_error(d->pg, c, NULL, "writing dead letters", e);
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        int ok = q == 0 || q == n + 1 ? st == PGRES_COMMAND_OK : st == PGRES_TUPLES_OK;
        if (ok && q > 0 && q <= n)
            batch[q - 1]->id = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        if (!ok && rc == 0)
            rc = eng_pg_error(d->pg, c, st == PGRES_PIPELINE_ABORTED ? NULL : r,
                              "writing dead letters", e);
        PQclear(r);
        while ((r = PQgetResult(c))) /* the NULL that ends this query's results */
            PQclear(r);
    }
    PGresult *r;
    while (sent && (r = PQgetResult(c))) { /* PGRES_PIPELINE_SYNC */
        int sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    if (!PQexitPipelineMode(c) && rc == 0)
        rc = eng_pg_error(d->pg, c, NULL, "writing dead letters", e);
    /* a failed statement leaves the transaction block open (aborted): end it */
    if (rc && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

/* Tells batch[i]'s appender how it went, for those settled (rc, id in place): an
 * asynchronous one's completion runs here; a synchronous waiter is woken and frees its own. */
static void complete(pg_dlq *d, pend **batch, size_t n) {
    size_t done = 0, nsync = 0;
    pend *sync[BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        pend *p = batch[i];
        if (!p->settled)
            continue;
        done++;
        atomic_fetch_add(p->rc == 0 ? &d->appended : &d->write_errors, 1);
        free(p->rule);
        free(p->record);
        p->rule = p->record = NULL;
        if (!p->done) {
            sync[nsync++] = p;
            continue;
        }
        p->done(p->ud, p->rc, p->id);
        free(p);
    }
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < nsync; i++)
        sync[i]->finished = 1;
    d->npend -= done;
    pthread_cond_broadcast(&d->finished);
    pthread_cond_broadcast(&d->room);
    pthread_mutex_unlock(&d->mu);
}

/* Rows past the bounds go; then the count for /metrics. */
static void housekeeping(pg_dlq *d) {
    eng_error e;
    memset(&e, 0, sizeof e);
    PGconn *c = eng_pg_take(d->pg, &e);
    if (!c)
        return;
    char old[24], max[24];
    snprintf(old, sizeof old, "%" PRId64, wall_ms() - (int64_t)d->max_age_s * 1000);
    snprintf(max, sizeof max, "%lld", d->max_bytes);
    const char *p1[] = {old}, *p2[] = {max};
    PGresult *r = eng_pg_exec(d->pg, c, "DELETE FROM sluice_dead_letters WHERE at < $1", 1, p1,
                              PGRES_COMMAND_OK, "evicting old dead letters", &e);
    uint64_t gone = r ? strtoull(PQcmdTuples(r), NULL, 10) : 0;
    PQclear(r);
    /* the newest rows that fit in max_bytes stay */
    r = eng_pg_exec(d->pg, c,
                    "DELETE FROM sluice_dead_letters WHERE id <= (SELECT id FROM (SELECT id,"
                    " sum(bytes) OVER (ORDER BY id DESC) AS total FROM sluice_dead_letters) t"
                    " WHERE total > $1::bigint ORDER BY id DESC LIMIT 1)",
                    1, p2, PGRES_COMMAND_OK, "evicting dead letters past the bound", &e);
    gone += r ? strtoull(PQcmdTuples(r), NULL, 10) : 0;
    PQclear(r);
    r = eng_pg_exec(d->pg, c, "SELECT count(*), coalesce(sum(bytes), 0) FROM "
                    "sluice_dead_letters", 0, NULL, PGRES_TUPLES_OK, "counting dead letters", &e);
    eng_pg_give(d->pg, c);
    if (gone) {
        atomic_fetch_add(&d->evicted, gone);
        act_log(d->host, ENG_LOG_WARN, "deadletter.evicted",
                "%" PRIu64 " dead letters evicted (older than %llds or past %lld bytes in all)",
                gone, d->max_age_s, d->max_bytes);
    }
    if (r) {
        pthread_mutex_lock(&d->mu);
        d->records = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        d->bytes = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        pthread_mutex_unlock(&d->mu);
        PQclear(r);
    }
}

static void *writer_main(void *arg) {
    pg_dlq *d = arg;
    PGconn *c = NULL;
    pend *batch[BATCH_MAX], *kept[BATCH_MAX];
    int64_t next_housekeeping = 0, retry_at = 0;
    int logged = 0;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        int64_t now = mono_ms();
        if (now >= next_housekeeping || d->housekeep) {
            d->housekeep = 0;
            pthread_mutex_unlock(&d->mu);
            housekeeping(d);
            pthread_mutex_lock(&d->mu);
            next_housekeeping = mono_ms() + HOUSEKEEPING_MS;
            continue;
        }
        if (!d->head || (now < retry_at && !d->stop)) {
            if (d->stop && !d->head)
                break;
            int64_t until = d->head ? retry_at : next_housekeeping;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ms = until - now;
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&d->work, &d->mu, &ts);
            continue;
        }
        size_t n = 0;
        while (d->head && n < BATCH_MAX) {
            batch[n++] = d->head;
            d->head = d->head->next;
        }
        if (!d->head)
            d->tail = NULL;
        int stopping = d->stop;
        pthread_mutex_unlock(&d->mu);
        eng_error e;
        memset(&e, 0, sizeof e);
        if (!c)
            c = eng_pg_connect(d->pg, &e);
        int rc = c ? insert_batch(d, c, batch, n, &e) : -1;
        int unreachable = rc && e.status == 503;
        if (rc && (!c || PQstatus(c) != CONNECTION_OK)) {
            PQfinish(c);
            c = NULL;
        }
        now = mono_ms();
        size_t keep = 0;
        for (size_t i = 0; i < n; i++) {
            pend *p = batch[i];
            /* unreachable: try again later, unless stopping or past its patience */
            if (unreachable && !stopping && (!p->deadline || now < p->deadline))
                kept[keep++] = p;
            else {
                p->settled = 1;
                p->rc = rc;
            }
        }
        if (rc && (!unreachable || !logged))
            act_log(d->host, ENG_LOG_ERROR, "deadletter.write_failed", "%s%s", e.message,
                    keep ? " (kept; retrying every second)" : "");
        logged = unreachable && keep;
        if (rc == 0 && logged) {
            act_log(d->host, ENG_LOG_INFO, "deadletter.store_back", "dead letters are written "
                    "to the shared store again");
            logged = 0;
        }
        complete(d, batch, n); /* the settled ones */
        pthread_mutex_lock(&d->mu);
        if (keep) { /* back at the head, in order */
            for (size_t i = keep; i-- > 0;) {
                kept[i]->next = d->head;
                d->head = kept[i];
                if (!d->tail)
                    d->tail = kept[i];
            }
            retry_at = mono_ms() + 1000;
        }
    }
    pthread_mutex_unlock(&d->mu);
    PQfinish(c);
    return NULL;
}

/* }====== */

/* {====== the API */

static int pg_append(act_dlq *self, const act_dlq_record *r, uint64_t *id_out,
                     act_dlq_done_fn done, void *ud) {
    pg_dlq *d = (pg_dlq *)self;
    cJSON *o = act_dlq_record_json(r, 0);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "lastFailureAt");
    pend *p = calloc(1, sizeof *p);
    if (p) {
        p->record = o ? cJSON_PrintUnformatted(o) : NULL;
        p->rule = strdup(r->rule);
        p->at = cJSON_IsNumber(at) ? eng_json_i64(at->valuedouble, wall_ms()) : wall_ms();
        p->done = done;
        p->ud = ud;
        p->deadline = done ? 0 : mono_ms() + SYNC_WAIT_MS;
    }
    cJSON_Delete(o);
    if (!p || !p->record || !p->rule) {
        if (p) {
            free(p->record);
            free(p->rule);
            free(p);
        }
        atomic_fetch_add(&d->write_errors, 1);
        return -1;
    }
    pthread_mutex_lock(&d->mu);
    while (d->npend >= PENDING_MAX && !d->stop)
        pthread_cond_wait(&d->room, &d->mu);
    if (d->stop) {
        pthread_mutex_unlock(&d->mu);
        free(p->record);
        free(p->rule);
        free(p);
        return -1;
    }
    if (d->tail)
        d->tail->next = p;
    else
        d->head = p;
    d->tail = p;
    d->npend++;
    pthread_cond_signal(&d->work);
    if (done) {
        pthread_mutex_unlock(&d->mu);
        return 0;
    }
    while (!p->finished)
        pthread_cond_wait(&d->finished, &d->mu);
    pthread_mutex_unlock(&d->mu);
    int rc = p->rc;
    if (rc == 0 && id_out)
        *id_out = p->id;
    free(p);
    return rc;
}

/* Runs one statement on a pool connection. The result (PQclear it), or NULL with e set. */
static PGresult *run(pg_dlq *d, const char *sql, int n, const char *const *params,
                     ExecStatusType ok, const char *what, eng_error *e) {
    PGconn *c = eng_pg_take(d->pg, e);
    if (!c)
        return NULL;
    PGresult *r = eng_pg_exec(d->pg, c, sql, n, params, ok, what, e);
    eng_pg_give(d->pg, c);
    return r;
}

static int pg_resolve(act_dlq *self, uint64_t id) {
    pg_dlq *d = (pg_dlq *)self;
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRIu64, id);
    const char *params[] = {ids};
    eng_error e;
    memset(&e, 0, sizeof e);
    PGresult *r = run(d, "DELETE FROM sluice_dead_letters WHERE id = $1", 1, params,
                      PGRES_COMMAND_OK, "resolving a dead letter", &e);
    if (!r) {
        act_log(d->host, ENG_LOG_WARN, "deadletter.resolve_failed", "dead letter %" PRIu64
                " was delivered but stays listed (a later re-drive may send it again): %s",
                id, e.message);
        return -1;
    }
    if (strcmp(PQcmdTuples(r), "0"))
        atomic_fetch_add(&d->resolved, 1);
    PQclear(r);
    return 0;
}

static void pg_release(act_dlq *self, uint64_t id) {
    pg_dlq *d = (pg_dlq *)self;
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRIu64, id);
    const char *params[] = {ids, d->instance};
    eng_error e;
    memset(&e, 0, sizeof e);
    /* a release that fails leaves the claim to expire (ACT_DLQ_CLAIM_MS) */
    PQclear(run(d, "UPDATE sluice_dead_letters SET claimed_by = NULL, claimed_at = NULL"
                " WHERE id = $1 AND claimed_by = $2", 2, params, PGRES_COMMAND_OK,
                "releasing a dead letter", &e));
}

/* Row i (id, instance, record) as the record object with its id; NULL if it does not parse. */
static cJSON *row_record(const PGresult *r, int i) {
    cJSON *o = cJSON_Parse(PQgetvalue(r, i, 2));
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", PQgetvalue(r, i, 0));
    cJSON_AddStringToObject(o, "instanceId", PQgetvalue(r, i, 1));
    return o;
}

static char *pg_list_json(act_dlq *self, const char *rule, int64_t since_ms, size_t limit,
                          uint64_t after, eng_error *e) {
    pg_dlq *d = (pg_dlq *)self;
    char since[24], aft[24], lim[24];
    snprintf(since, sizeof since, "%" PRId64, since_ms);
    snprintf(aft, sizeof aft, "%" PRIu64, after);
    snprintf(lim, sizeof lim, "%zu", limit + 1); /* one more: is there a next page? */
    const char *params[] = {rule, since, aft, lim};
    PGresult *r = run(d, "SELECT id, instance, record FROM sluice_dead_letters"
                      " WHERE ($1::text IS NULL OR rule = $1) AND at >= $2::bigint"
                      " AND id > $3::bigint ORDER BY id LIMIT $4::bigint",
                      4, params, PGRES_TUPLES_OK, "listing dead letters", e);
    if (!r)
        return NULL;
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "records");
    int n = PQntuples(r);
    for (int i = 0; i < n && (size_t)i < limit; i++) {
        cJSON *o = row_record(r, i);
        if (!o)
            continue;
        /* the stored "output" and "fields" are for re-driving; the list shows the message */
        cJSON_DeleteItemFromObjectCaseSensitive(o, "fields");
        cJSON_AddItemToArray(arr, o);
    }
    if ((size_t)n > limit)
        cJSON_AddStringToObject(out, "nextToken", PQgetvalue(r, (int)limit - 1, 0));
    PQclear(r);
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (!s)
        eng_error_set(e, 500, "InternalException", "out of memory");
    return s;
}

static int by_id(const void *a, const void *b) {
    uint64_t x = strtoull(cJSON_GetObjectItemCaseSensitive(*(cJSON *const *)a, "id")->valuestring,
                          NULL, 10);
    uint64_t y = strtoull(cJSON_GetObjectItemCaseSensitive(*(cJSON *const *)b, "id")->valuestring,
                          NULL, 10);
    return x < y ? -1 : x > y;
}

/* ids as a PostgreSQL array literal, "{1,2,3}" (malloc'd), or NULL for none. */
static char *id_array(const uint64_t *ids, size_t n) {
    if (!n)
        return NULL;
    char *s = malloc(n * 21 + 3), *p = s;
    if (!s)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%" PRIu64, i ? "," : "", ids[i]);
    *p++ = '}';
    *p = '\0';
    return s;
}

static int pg_claim(act_dlq *self, const char *rule, const uint64_t *ids, size_t nids,
                    act_dlq_each_fn fn, void *ud, eng_error *e) {
    pg_dlq *d = (pg_dlq *)self;
    char *arr = id_array(ids, nids);
    if (nids && !arr)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    uint64_t after = 0;
    int rc = 0;
    for (;;) {
        char now[24], lease[24], aft[24], lim[24];
        snprintf(now, sizeof now, "%" PRId64, wall_ms());
        snprintf(lease, sizeof lease, "%" PRId64, wall_ms() - ACT_DLQ_CLAIM_MS);
        snprintf(aft, sizeof aft, "%" PRIu64, after);
        snprintf(lim, sizeof lim, "%d", CLAIM_BATCH);
        const char *params[] = {d->instance, now, rule, arr, lease, aft, lim};
        /* the subquery skips rows another claim has locked; the outer condition, checked again
         * on the locked row, refuses one claimed meanwhile */
        PGresult *r = run(d,
                          "UPDATE sluice_dead_letters SET claimed_by = $1, claimed_at = $2"
                          " WHERE (claimed_at IS NULL OR claimed_at < $5::bigint) AND id IN ("
                          "SELECT id FROM sluice_dead_letters"
                          " WHERE ($3::text IS NULL OR rule = $3)"
                          " AND ($4::bigint[] IS NULL OR id = ANY($4::bigint[]))"
                          " AND (claimed_at IS NULL OR claimed_at < $5::bigint)"
                          " AND id > $6::bigint ORDER BY id LIMIT $7::bigint"
                          " FOR UPDATE SKIP LOCKED) RETURNING id, instance, record",
                          7, params, PGRES_TUPLES_OK, "claiming dead letters", e);
        if (!r) {
            rc = -1;
            break;
        }
        int n = PQntuples(r);
        cJSON **recs = calloc((size_t)n + 1, sizeof *recs);
        size_t k = 0;
        for (int i = 0; recs && i < n; i++) {
            cJSON *o = row_record(r, i);
            uint64_t id = strtoull(PQgetvalue(r, i, 0), NULL, 10);
            if (id > after)
                after = id;
            if (o)
                recs[k++] = o;
            else
                pg_release(self, id);
        }
        PQclear(r);
        if (!recs) {
            rc = eng_error_set(e, 500, "InternalException", "out of memory");
            break;
        }
        qsort(recs, k, sizeof *recs, by_id);
        for (size_t i = 0; i < k; i++) {
            uint64_t id = strtoull(cJSON_GetObjectItemCaseSensitive(recs[i], "id")->valuestring,
                                   NULL, 10);
            if (rc == 0 && fn(ud, id, recs[i]) != 0)
                rc = eng_error_set(e, 500, "InternalException", "re-drive failed");
            if (rc) /* not handed to fn: nobody else ends its claim */
                pg_release(self, id);
            cJSON_Delete(recs[i]);
        }
        free(recs);
        if (rc || n < CLAIM_BATCH)
            break;
    }
    free(arr);
    return rc;
}

/* The writer enforces the bounds every HOUSEKEEPING_MS by itself, on its own thread, so the
 * service's once-a-second call has nothing to add: the database is never reached from the
 * main thread. */
static void pg_expire(act_dlq *self) {}

static long pg_purge(act_dlq *self, const char *rule, eng_error *e) {
    pg_dlq *d = (pg_dlq *)self;
    const char *params[] = {rule};
    PGresult *r = run(d, "DELETE FROM sluice_dead_letters WHERE ($1::text IS NULL OR rule = $1)",
                      1, params, PGRES_COMMAND_OK, "purging dead letters", e);
    if (!r)
        return -1;
    long n = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    atomic_fetch_add(&d->resolved, (uint64_t)n);
    pthread_mutex_lock(&d->mu);
    d->housekeep = 1; /* recount */
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void pg_stats(act_dlq *self, act_dlq_stats *out) {
    pg_dlq *d = (pg_dlq *)self;
    pthread_mutex_lock(&d->mu);
    *out = (act_dlq_stats){d->records, d->bytes, atomic_load(&d->appended),
                           atomic_load(&d->evicted), atomic_load(&d->resolved),
                           atomic_load(&d->write_errors)};
    pthread_mutex_unlock(&d->mu);
}

static void pg_close(act_dlq *self) {
    pg_dlq *d = (pg_dlq *)self;
    if (d->writer_started) { /* writes what is queued (or fails it), then stops */
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_broadcast(&d->work);
        pthread_cond_broadcast(&d->room);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->writer, NULL);
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->room);
    pthread_cond_destroy(&d->finished);
    free(d);
}

static const act_dlq_vt pg_vt = {
    .version = 1,
    .name = "postgresql",
    .append = pg_append,
    .resolve = pg_resolve,
    .release = pg_release,
    .list_json = pg_list_json,
    .claim = pg_claim,
    .expire = pg_expire,
    .purge = pg_purge,
    .stats = pg_stats,
    .close = pg_close,
};

/* }====== */

act_dlq *eng_dlq_pg_open(eng_pg *pg, const char *instance, long long max_bytes,
                         long long max_age_s, const eng_host *host, eng_error *e) {
    pg_dlq *d = calloc(1, sizeof *d);
    if (!d) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    d->base.vt = &pg_vt;
    d->pg = pg;
    d->host = host;
    snprintf(d->instance, sizeof d->instance, "%s", instance);
    d->max_bytes = max_bytes;
    d->max_age_s = max_age_s;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->room, NULL);
    pthread_cond_init(&d->finished, NULL);
    if (pthread_create(&d->writer, NULL, writer_main, d) != 0) {
        eng_error_set(e, 500, "InternalException", "cannot start the dead-letter writer");
        pg_close(&d->base);
        return NULL;
    }
    d->writer_started = 1;
    return &d->base;
}

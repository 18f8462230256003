/*
 * kafka_source.c -- the Kafka source: consume topics in a consumer group, at least once.
 *
 * Kafka is the journal here; nothing is copied to disk. A record becomes an eng_msg whose
 * origin is its partition's tracker (kpart). When the last reference to the message is released
 * -- every action delivered it, handed it to the error action or dead-lettered it -- done()
 * marks it finished and advances the partition's finished prefix. The poll thread gives
 * prefix + 1 to rd_kafka_offsets_store() (enable.auto.offset.store=false) and librdkafka's
 * auto-commit sends it every commitIntervalMs. A committed offset never passes a record that
 * is not finished, so a crash, a kill -9 or a rebalance costs duplicates (what came after the
 * last commit), never a loss.
 *
 * Tracking: per assignment of a partition, an eng_prefix (prefix.c) under the partition's own
 * mutex; a message's tag is its record's index there. A message released with `keep` set (an
 * outcome that could not be made durable) stops the prefix: nothing after it is stored, so it
 * comes back after a restart or a rebalance. done() runs on whichever thread releases last and
 * costs O(1) plus the records the prefix advances over.
 *
 * Back-pressure: a partition with maxInFlightPerPartition records received but not yet stored
 * is paused (rd_kafka_pause_partitions: fetching stops and its prefetched records are dropped,
 * to be fetched again) and resumed at half that. The source as a whole stops when a worker
 * queue reaches its bound, or when maxInFlight records in all are unfinished (by default half
 * an action lane's bound: an action queue that overflows sends messages down the failure path,
 * which a source that can wait must not cause). It first waits up to STALL_MS for that to
 * clear without polling, because a pause throws the prefetch away and a short stall costs
 * less; past that it pauses every partition and keeps polling (max.poll.interval.ms,
 * rebalances) until the workers have room and half the records in flight have finished.
 *
 * Rebalances (cooperative-sticky by default, with incremental assign and unassign; range and
 * roundrobin use the eager calls): on revocation the poll thread hands over what it has
 * polled, waits up to drainMs for the revoked partitions' records in flight, commits their
 * finished prefixes synchronously and unassigns them. What is still unfinished then is
 * redelivered to the next owner (duplicates); its late completions reach the detached tracker,
 * which the last one frees. A lost assignment (the session expired) commits nothing: the group
 * has already given those partitions to another member. Stopping is a revocation of
 * everything (rd_kafka_consumer_close() calls the same callback).
 *
 * Order: a partition's records reach the workers in offset order and a worker keeps the order
 * per rule topic, so a partition's records on one rule topic are processed in order.
 *
 * Rejected: a local journal for Kafka input (the member taking a partition over could not
 * replay it); rd_kafka_offsets_store() or a commit from done() (a librdkafka lock or a request
 * per record, from any thread; the poll thread stores every STORE_MS instead).
 */
#include "../engine_int.h"

#ifdef SLUICE_WITH_ACTION_KAFKA

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "../../actions/action.h"

#define BATCH_MAX 1024     /* records handed to the workers at once */
#define STORE_MS 10        /* how often finished prefixes are stored and pauses reviewed */
#define STALL_MS 500       /* the source is full: wait this long before pausing everything */
#define CLIENTID_MAX 1024  /* longer clientid headers are ignored */
#define COMMIT_TRIES 3     /* synchronous commits at revocation */

enum { PAUSE_OWN = 1, PAUSE_ALL = 2 }; /* kpart.paused bits: its own bound; the source's */

typedef struct kpart kpart;

/* One assignment of one partition. */
struct kpart {
    eng_origin origin;       /* {on_done, this}: the origin of its records */
    _Atomic uint64_t *total; /* the source's count of records in flight */
    char *topic;
    int32_t partition;
    pthread_mutex_t mu;
    pthread_cond_t idle;     /* broadcast when pf.inflight drops to 0 while draining */
    eng_prefix pf;           /* guarded by mu */
    int draining, detached;  /* guarded by mu */
    /* written by the poll thread only */
    int64_t stored;          /* last offset given to rd_kafka_offsets_store(); -1: none */
    _Atomic int paused;      /* PAUSE_* bits */
    _Atomic uint64_t records;
};

struct eng_kafka {
    const eng_config *cfg;
    const eng_host *host; /* certDir for file-naming clientProperties */
    eng_workers *ws;
    rd_kafka_t *rk;
    size_t max_in_flight, max_total;
    _Atomic uint64_t inflight; /* records in flight, all partitions */
    pthread_t th;
    int started;
    _Atomic int stop;
    pthread_mutex_t amu;     /* the table: written by the poll thread under amu, read by metrics */
    kpart **parts;
    size_t nparts, pcap;
    /* the poll thread's own */
    kpart *last;             /* the partition of the previous record */
    eng_msg *chead, *ctail;  /* polled, not yet handed to the workers */
    size_t cn;
    int sat;                 /* every partition paused: the workers were saturated ... */
    int hold;                /* ... or max_total records were in flight */
    int64_t last_maint_ms, warn_ms;
    _Atomic uint64_t st_commits, st_commit_errors, st_pauses, st_rebalances, st_lost,
        st_drain_timeouts, st_bad_headers;
};

static void maintain(eng_kafka *k, int force);

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 at most once a second: warnings about bad input would otherwise flood the log. */
static int warn_now(eng_kafka *k) {
    int64_t now = mono_ms();
    if (now - k->warn_ms < 1000)
        return 0;
    k->warn_ms = now;
    return 1;
}

/* {====== partition tracking */

static kpart *kpart_new(const char *topic, int32_t partition, size_t cap_hint) {
    kpart *kp = calloc(1, sizeof *kp);
    if (!kp || !(kp->topic = strdup(topic)) || eng__prefix_init(&kp->pf, cap_hint) != 0) {
        if (kp)
            free(kp->topic);
        free(kp);
        return NULL;
    }
    kp->partition = partition;
    kp->stored = -1;
    pthread_mutex_init(&kp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&kp->idle, &ca);
    pthread_condattr_destroy(&ca);
    return kp;
}

static void kpart_free(kpart *kp) {
    pthread_mutex_destroy(&kp->mu);
    pthread_cond_destroy(&kp->idle);
    eng__prefix_deinit(&kp->pf);
    free(kp->topic);
    free(kp);
}

/* The origin's done(): the last reference to one of kp's records was released. */
static void on_done(void *ud, eng_msg *m) {
    kpart *kp = ud;
    int keep = atomic_load_explicit(&m->keep, memory_order_acquire);
    pthread_mutex_lock(&kp->mu);
    eng__prefix_done(&kp->pf, m->tag, keep);
    int idle = kp->pf.inflight == 0;
    if (idle && kp->draining)
        pthread_cond_broadcast(&kp->idle);
    int last = idle && kp->detached;
    pthread_mutex_unlock(&kp->mu);
    atomic_fetch_sub_explicit(kp->total, 1, memory_order_relaxed);
    if (keep)
        eng_log(ENG_LOG_WARN, "kafka.kept", "%s [%d]: a record on %s was not finished durably: "
                "its offset is not committed, it is read again after a restart or rebalance",
                kp->topic, (int)kp->partition, m->topic);
    if (last)
        kpart_free(kp);
}

/* The tracker of (topic, partition), or NULL when it is not assigned. Poll thread. */
static kpart *find_part(eng_kafka *k, const char *topic, int32_t partition) {
    kpart *kp = k->last;
    if (kp && kp->partition == partition && !strcmp(kp->topic, topic))
        return kp;
    for (size_t i = 0; i < k->nparts; i++) {
        kp = k->parts[i];
        if (kp->partition == partition && !strcmp(kp->topic, topic))
            return k->last = kp;
    }
    return NULL;
}

/* Leaves kp to its records in flight: the last one frees it. */
static void detach(kpart *kp) {
    pthread_mutex_lock(&kp->mu);
    kp->detached = 1;
    int now = kp->pf.inflight == 0;
    pthread_mutex_unlock(&kp->mu);
    if (now)
        kpart_free(kp);
}

/* Removes kp from the table. Poll thread. */
static void table_remove(eng_kafka *k, kpart *kp) {
    pthread_mutex_lock(&k->amu);
    for (size_t i = 0; i < k->nparts; i++)
        if (k->parts[i] == kp) {
            k->parts[i] = k->parts[--k->nparts];
            break;
        }
    pthread_mutex_unlock(&k->amu);
    if (k->last == kp)
        k->last = NULL;
}

/* }====== */

/* {====== records */

/* A topic header value usable as an MQTT topic name: 1-65535 bytes, no NUL, no wildcard. */
static int topic_ok(const char *t, size_t n) {
    return n >= 1 && n <= 65535 && !memchr(t, '\0', n) && !memchr(t, '+', n) &&
           !memchr(t, '#', n);
}

/* The message for record r: the rule topic from the topic header (else the Kafka topic), the
 * client id from the client id header, the value as payload. NULL on OOM. */
static eng_msg *record_msg(eng_kafka *k, const rd_kafka_message_t *r, const char *ktopic) {
    const char *topic = ktopic;
    size_t tlen = strlen(ktopic);
    char cid[CLIENTID_MAX + 1];
    const char *clientid = NULL;
    rd_kafka_headers_t *h;
    if (rd_kafka_message_headers(r, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const void *v;
        size_t n;
        if (rd_kafka_header_get_last(h, k->cfg->kafka_topic_header, &v, &n) ==
                RD_KAFKA_RESP_ERR_NO_ERROR && v) {
            if (topic_ok(v, n)) {
                topic = v;
                tlen = n;
            } else {
                atomic_fetch_add_explicit(&k->st_bad_headers, 1, memory_order_relaxed);
                if (warn_now(k))
                    eng_log(ENG_LOG_WARN, "kafka.bad_header", "%s [%d] offset %lld: header %s "
                            "is not a topic name (empty, a NUL, + or #, or over 65535 bytes): "
                            "the record goes by its Kafka topic", ktopic, (int)r->partition,
                            (long long)r->offset, k->cfg->kafka_topic_header);
            }
        }
        if (rd_kafka_header_get_last(h, k->cfg->kafka_clientid_header, &v, &n) ==
                RD_KAFKA_RESP_ERR_NO_ERROR && v) {
            if (n <= CLIENTID_MAX && !memchr(v, '\0', n)) {
                memcpy(cid, v, n);
                cid[n] = '\0';
                clientid = cid;
            } else {
                atomic_fetch_add_explicit(&k->st_bad_headers, 1, memory_order_relaxed);
            }
        }
    }
    eng_msg *m = eng_msg_new(topic, tlen, r->payload ? r->payload : "", r->payload ? r->len : 0,
                             NULL, clientid, ENG_SRC_KAFKA);
    if (m) {
        m->qos = 1;
        eng_msg_set_record(m, ktopic, r->partition, r->offset);
    }
    return m;
}

static void set_paused(eng_kafka *k, kpart *kp, int paused) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, kp->topic, kp->partition);
    if (paused)
        rd_kafka_pause_partitions(k->rk, l);
    else
        rd_kafka_resume_partitions(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Tracks record r and adds its message to the chain for the workers. Poll thread. */
static void take_record(eng_kafka *k, const rd_kafka_message_t *r) {
    const char *ktopic = rd_kafka_topic_name(r->rkt);
    kpart *kp = find_part(k, ktopic, r->partition);
    if (!kp)
        return; /* not assigned (any more): nothing is stored for it, its owner reads it */
    eng_msg *m = record_msg(k, r, ktopic);
    pthread_mutex_lock(&kp->mu);
    /* a message that cannot be built is kept: the prefix stops before it */
    uint64_t i = eng__prefix_push(&kp->pf, r->offset, m == NULL);
    int full = kp->pf.tail - kp->pf.head >= k->max_in_flight || kp->pf.stuck;
    pthread_mutex_unlock(&kp->mu);
    if (!m || i == UINT64_MAX) {
        eng_log(ENG_LOG_ERROR, "kafka.oom", "%s [%d] offset %lld: out of memory: the record "
                "is read again after a restart or rebalance", ktopic, (int)r->partition,
                (long long)r->offset);
        eng_msg_free(m);
    } else {
        m->origin = &kp->origin;
        m->tag = i;
        if (k->ctail)
            k->ctail->next = m;
        else
            k->chead = m;
        k->ctail = m;
        k->cn++;
        atomic_fetch_add_explicit(&kp->records, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&k->inflight, 1, memory_order_relaxed);
    }
    int p = atomic_load(&kp->paused);
    if (full && !(p & PAUSE_OWN)) {
        atomic_store(&kp->paused, p | PAUSE_OWN);
        atomic_fetch_add_explicit(&k->st_pauses, 1, memory_order_relaxed);
        if (!p)
            set_paused(k, kp, 1);
    }
}

/* }====== */

/* {====== storing offsets, pausing, resuming */

static int over_total(eng_kafka *k) {
    return atomic_load_explicit(&k->inflight, memory_order_relaxed) >= k->max_total;
}

/* The source is full (saturated workers, max_total records in flight): waits up to STALL_MS
 * for room, then pauses every partition. Poll thread. */
static void stall(eng_kafka *k) {
    int64_t end = mono_ms() + STALL_MS;
    for (;;) {
        int sat = eng_workers_saturated(k->ws), over = over_total(k);
        if (!sat && !over)
            return;
        if (mono_ms() >= end || atomic_load(&k->stop)) {
            k->sat = sat;
            k->hold = over;
            maintain(k, 1);
            return;
        }
        if (sat) {
            eng_workers_wait_room(k->ws, 5);
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Hands the chain to the workers; with wait, a full source stalls (stall()). Poll thread. */
static void flush(eng_kafka *k, int wait) {
    if (k->chead) {
        eng_msg *list = k->chead;
        k->chead = k->ctail = NULL;
        k->cn = 0;
        eng_workers_submit_batch_take(k->ws, list);
    }
    if (wait && !k->sat && !k->hold && (eng_workers_saturated(k->ws) || over_total(k)))
        stall(k);
}

static void list_add(rd_kafka_topic_partition_list_t **l, const kpart *kp, int64_t offset) {
    if (!*l)
        *l = rd_kafka_topic_partition_list_new(8);
    rd_kafka_topic_partition_list_add(*l, kp->topic, kp->partition)->offset = offset;
}

/* Stores the finished prefixes that moved, and pauses or resumes partitions as their own
 * bound and the workers' saturation say. At most every STORE_MS unless forced. Poll thread. */
static void maintain(eng_kafka *k, int force) {
    int64_t now = mono_ms();
    if (!force && now - k->last_maint_ms < STORE_MS)
        return;
    k->last_maint_ms = now;
    if (k->sat && !eng_workers_saturated(k->ws))
        k->sat = 0;
    if (k->hold && atomic_load_explicit(&k->inflight, memory_order_relaxed) <= k->max_total / 2)
        k->hold = 0;
    rd_kafka_topic_partition_list_t *store = NULL, *pause = NULL, *resume = NULL;
    for (size_t i = 0; i < k->nparts; i++) {
        kpart *kp = k->parts[i];
        pthread_mutex_lock(&kp->mu);
        int64_t next = kp->pf.next;
        uint64_t unstored = kp->pf.tail - kp->pf.head;
        int stuck = kp->pf.stuck;
        pthread_mutex_unlock(&kp->mu);
        if (next > kp->stored) {
            list_add(&store, kp, next);
            kp->stored = next;
        }
        int p = atomic_load(&kp->paused), want = p & PAUSE_OWN;
        if (unstored >= k->max_in_flight || stuck)
            want |= PAUSE_OWN;
        else if (unstored <= k->max_in_flight / 2)
            want &= ~PAUSE_OWN;
        if (k->sat || k->hold)
            want |= PAUSE_ALL;
        if (want & ~p)
            atomic_fetch_add_explicit(&k->st_pauses, 1, memory_order_relaxed);
        if (!p && want)
            list_add(&pause, kp, RD_KAFKA_OFFSET_INVALID);
        else if (p && !want)
            list_add(&resume, kp, RD_KAFKA_OFFSET_INVALID);
        atomic_store(&kp->paused, want);
    }
    if (store) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->rk, store);
        if (err && err != RD_KAFKA_RESP_ERR__STATE && warn_now(k))
            eng_log(ENG_LOG_WARN, "kafka.store", "storing offsets: %s", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(store);
    }
    if (pause) {
        rd_kafka_pause_partitions(k->rk, pause);
        rd_kafka_topic_partition_list_destroy(pause);
    }
    if (resume) {
        rd_kafka_resume_partitions(k->rk, resume);
        rd_kafka_topic_partition_list_destroy(resume);
    }
}

/* }====== */

/* {====== rebalances and commits */

/* Commits offs synchronously, retrying a failure COMMIT_TRIES times within the deadline. */
static void commit_sync(eng_kafka *k, rd_kafka_topic_partition_list_t *offs, int64_t deadline) {
    for (int t = 1;; t++) {
        rd_kafka_resp_err_t err = rd_kafka_commit(k->rk, offs, 0);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
            return;
        int again = t < COMMIT_TRIES && mono_ms() + 100 * t < deadline;
        eng_log(ENG_LOG_WARN, "kafka.commit", "committing %d revoked partitions: %s%s",
                offs->cnt, rd_kafka_err2str(err),
                again ? "; retrying" : "; their next owner reads again from the last commit");
        if (!again)
            return;
        struct timespec ts = {0, 100000000L * t};
        nanosleep(&ts, NULL);
    }
}

/* Revokes the partitions in parts: waits up to drainMs for their records in flight, commits
 * their finished prefixes (unless the assignment was lost) and detaches their trackers.
 * Poll thread, inside the rebalance callback. */
static void revoke(eng_kafka *k, const rd_kafka_topic_partition_list_t *parts, int lost) {
    kpart **v = calloc((size_t)parts->cnt + 1, sizeof *v);
    size_t n = 0;
    for (int i = 0; i < parts->cnt; i++) {
        kpart *kp = find_part(k, parts->elems[i].topic, parts->elems[i].partition);
        if (kp) {
            table_remove(k, kp);
            if (v)
                v[n++] = kp;
            else /* out of memory: no drain and no commit, the next owner reads it again */
                detach(kp);
        }
    }
    if (!v) {
        eng_log(ENG_LOG_ERROR, "kafka.oom", "out of memory revoking partitions: nothing "
                "committed");
        return;
    }
    int64_t deadline = mono_ms() + k->cfg->kafka_drain_ms;
    struct timespec dl = {.tv_sec = deadline / 1000, .tv_nsec = deadline % 1000 * 1000000L};
    rd_kafka_topic_partition_list_t *offs = NULL, *resume = NULL;
    uint64_t left = 0;
    for (size_t i = 0; i < n; i++) {
        kpart *kp = v[i];
        pthread_mutex_lock(&kp->mu);
        kp->draining = 1;
        while (kp->pf.inflight && pthread_cond_timedwait(&kp->idle, &kp->mu, &dl) != ETIMEDOUT)
            ;
        left += kp->pf.inflight;
        if (kp->pf.next >= 0)
            list_add(&offs, kp, kp->pf.next);
        pthread_mutex_unlock(&kp->mu);
        /* a paused partition would stay paused in librdkafka when it comes back */
        if (atomic_load(&kp->paused))
            list_add(&resume, kp, RD_KAFKA_OFFSET_INVALID);
    }
    if (left) {
        atomic_fetch_add(&k->st_drain_timeouts, 1);
        eng_log(ENG_LOG_WARN, "kafka.drain", "%llu records of %zu revoked partitions still in "
                "flight after %d ms: their next owner processes them again",
                (unsigned long long)left, n, k->cfg->kafka_drain_ms);
    }
    if (offs && !lost)
        commit_sync(k, offs, deadline);
    if (resume) {
        rd_kafka_resume_partitions(k->rk, resume);
        rd_kafka_topic_partition_list_destroy(resume);
    }
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    for (size_t i = 0; i < n; i++)
        detach(v[i]);
    free(v);
}

/* Starts tracking the partitions in parts (that are not tracked yet). Poll thread. */
static void assign(eng_kafka *k, const rd_kafka_topic_partition_list_t *parts) {
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (find_part(k, p->topic, p->partition))
            continue;
        kpart *kp = kpart_new(p->topic, p->partition, k->max_in_flight);
        pthread_mutex_lock(&k->amu);
        if (kp && k->nparts == k->pcap) {
            size_t cap = k->pcap ? k->pcap * 2 : 16;
            kpart **nv = realloc(k->parts, cap * sizeof *nv);
            if (nv) {
                k->parts = nv;
                k->pcap = cap;
            }
        }
        int ok = kp && k->nparts < k->pcap;
        if (ok) {
            kp->origin = (eng_origin){on_done, kp};
            kp->total = &k->inflight;
            k->parts[k->nparts++] = kp;
        }
        pthread_mutex_unlock(&k->amu);
        if (!ok) { /* its records are skipped, uncommitted: the group gives them out again */
            if (kp)
                kpart_free(kp);
            eng_log(ENG_LOG_ERROR, "kafka.oom", "%s [%d]: out of memory: not read", p->topic,
                    (int)p->partition);
        }
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    eng_kafka *k = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk);
    int coop = proto && !strcmp(proto, "COOPERATIVE");
    atomic_fetch_add(&k->st_rebalances, 1);
    flush(k, 0); /* what was polled is tracked: the workers must have it for a drain */
    rd_kafka_error_t *error = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(k, parts);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            err = rd_kafka_assign(rk, parts);
        eng_log(ENG_LOG_INFO, "kafka.assigned", "%d partitions assigned, %zu in all", parts->cnt,
                k->nparts);
    } else {
        int lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
        if (lost)
            atomic_fetch_add(&k->st_lost, 1);
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            eng_log(ENG_LOG_ERROR, "kafka.rebalance", "rebalance error: %s",
                    rd_kafka_err2str(err));
        revoke(k, parts, lost);
        if (coop && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            err = rd_kafka_assign(rk, NULL);
        eng_log(ENG_LOG_INFO, "kafka.revoked", "%d partitions revoked%s, %zu left", parts->cnt,
                lost ? " (assignment lost: nothing committed)" : "", k->nparts);
    }
    if (error) {
        eng_log(ENG_LOG_ERROR, "kafka.rebalance", "incremental assignment: %s",
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/* Results of auto-commits and of the commits at revocation (served by consumer_poll). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offs, void *opaque) {
    eng_kafka *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return; /* nothing new to commit */
    for (int i = 0; !err && offs && i < offs->cnt; i++)
        err = offs->elems[i].err;
    if (!err) {
        atomic_fetch_add_explicit(&k->st_commits, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&k->st_commit_errors, 1, memory_order_relaxed);
    if (warn_now(k))
        eng_log(ENG_LOG_WARN, "kafka.commit", "offset commit failed: %s (the next commit "
                "carries the same offsets)", rd_kafka_err2str(err));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    eng_log(err == RD_KAFKA_RESP_ERR__FATAL ? ENG_LOG_ERROR : ENG_LOG_WARN, "kafka.error",
            "%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name((rd_kafka_resp_err_t)err),
            reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (!strcmp(fac, "FAIL")) /* a failed connection: on_error() reports it */
        return;
    eng_log(level <= 3 ? ENG_LOG_ERROR : level == 4 ? ENG_LOG_WARN
            : level <= 6 ? ENG_LOG_INFO : ENG_LOG_DEBUG,
            "kafka.log", "%s: %s: %s", rk ? rd_kafka_name(rk) : "rdkafka", fac, buf);
}

/* }====== */

static void *poll_main(void *arg) {
    eng_kafka *k = arg;
    while (!atomic_load(&k->stop)) {
        maintain(k, 0);
        if (k->sat)
            eng_workers_wait_room(k->ws, 10);
        /* paused: poll briefly, so that resuming follows the drain closely */
        rd_kafka_message_t *r = rd_kafka_consumer_poll(k->rk, k->sat ? 0 : k->hold ? 10 : 100);
        while (r) {
            if (!r->err)
                take_record(k, r);
            else if (r->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && warn_now(k))
                eng_log(ENG_LOG_WARN, "kafka.consume", "%s [%d]: %s",
                        r->rkt ? rd_kafka_topic_name(r->rkt) : "-", (int)r->partition,
                        rd_kafka_message_errstr(r));
            rd_kafka_message_destroy(r);
            if (k->cn >= BATCH_MAX || over_total(k) || atomic_load(&k->stop))
                break;
            r = rd_kafka_consumer_poll(k->rk, 0);
        }
        flush(k, 1);
    }
    flush(k, 0);
    maintain(k, 1);
    /* leaving the group revokes everything through on_rebalance: drain, commit, unassign */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(k->rk);
    if (err)
        eng_log(ENG_LOG_WARN, "kafka.close", "leaving the group: %s", rd_kafka_err2str(err));
    return NULL;
}

/* {====== configuration */

/* Consumer properties sluice sets itself, from its own keys. */
static const struct {
    const char *name, *why;
} owned[] = {
    {"group.id", "use sources.kafka.groupId (SLUICE_KAFKA_GROUP_ID)"},
    {"enable.auto.commit", "sluice stores offsets once records are processed (at-least-once)"},
    {"auto.commit.enable", "sluice stores offsets once records are processed (at-least-once)"},
    {"enable.auto.offset.store", "sluice stores offsets once records are processed"},
    {"offset.store.method", "sluice stores offsets in the group, once records are processed"},
    {"auto.commit.interval.ms", "use sources.kafka.commitIntervalMs"},
    {"auto.offset.reset", "use sources.kafka.autoOffsetReset"},
    {"session.timeout.ms", "use sources.kafka.sessionTimeoutMs"},
    {"heartbeat.interval.ms", "sluice derives it from sources.kafka.sessionTimeoutMs"},
    {"partition.assignment.strategy", "use sources.kafka.assignmentStrategy"},
    {"group.instance.id", "static membership is not supported (instances sharing a "
                          "configuration would fence each other)"},
};

/* The consumer's configuration: clientProperties through the Kafka action's check, then
 * sluice's own settings. NULL with e set. */
static rd_kafka_conf_t *build_conf(eng_kafka *k, eng_error *e) {
    const eng_config *cfg = k->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cJSON *props = cfg->kafka_props[0] ? cJSON_Parse(cfg->kafka_props) : cJSON_CreateObject();
    if (!conf || !cJSON_IsObject(props)) {
        eng_error_set(e, 500, "InternalException", "sources.kafka: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(props, owned[i].name)) {
            eng_error_set(e, 400, "InvalidRequestException",
                          "sources.kafka: clientProperties \"%s\" is set by sluice: %s",
                          owned[i].name, owned[i].why);
            goto fail;
        }
    if (cfg->kafka_bootstrap[0]) {
        cJSON_DeleteItemFromObjectCaseSensitive(props, "bootstrap.servers");
        if (!cJSON_AddStringToObject(props, "bootstrap.servers", cfg->kafka_bootstrap)) {
            eng_error_set(e, 500, "InternalException", "sources.kafka: out of memory");
            goto fail;
        }
    }
    if (act_kafka_props_check(props, k->host, conf, e) != 0) {
        static const char pre[] = "kafka action: ";
        if (!strncmp(e->message, pre, sizeof pre - 1)) {
            char msg[sizeof e->message];
            snprintf(msg, sizeof msg, "sources.kafka: %s", e->message + sizeof pre - 1);
            memcpy(e->message, msg, sizeof msg);
        }
        goto fail;
    }
    if (!cfg->kafka_group_id[0]) {
        eng_error_set(e, 400, "InvalidRequestException", "sources.kafka: groupId is empty");
        goto fail;
    }
    char commit[16], session[16], heartbeat[16];
    snprintf(commit, sizeof commit, "%d", cfg->kafka_commit_interval_ms);
    snprintf(session, sizeof session, "%d", cfg->kafka_session_timeout_ms);
    /* the usual third of the session, capped at librdkafka's default */
    int hb = cfg->kafka_session_timeout_ms / 3;
    snprintf(heartbeat, sizeof heartbeat, "%d", hb < 3000 ? hb : 3000);
    const struct {
        const char *name, *value;
        int apply;
    } set[] = {
        {"group.id", cfg->kafka_group_id, 1},
        {"enable.auto.commit", "true", 1},
        {"enable.auto.offset.store", "false", 1},
        {"auto.commit.interval.ms", commit, 1},
        {"auto.offset.reset", cfg->kafka_offset_reset, 1},
        {"session.timeout.ms", session, 1},
        {"heartbeat.interval.ms", heartbeat, 1},
        {"partition.assignment.strategy", cfg->kafka_assignment, 1},
        {"client.id", "sluice", !cJSON_GetObjectItemCaseSensitive(props, "client.id")},
        /* librdkafka before 2.3.0 stops fetching for a fixed second once its prefetch queue
         * holds queued.min.messages (fetch.queue.backoff.ms came later): with the default
         * 100 000 the queue ran dry in half that time at 200 k records/s and the source sat
         * idle. queued.max.messages.kbytes (64 MB) still bounds the memory. */
        {"queued.min.messages", "1000000",
         !cJSON_GetObjectItemCaseSensitive(props, "queued.min.messages")},
    };
    char errstr[512];
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (set[i].apply && rd_kafka_conf_set(conf, set[i].name, set[i].value, errstr,
                                              sizeof errstr) != RD_KAFKA_CONF_OK) {
            eng_error_set(e, 400, "InvalidRequestException", "sources.kafka: %s=%s: %s",
                          set[i].name, set[i].value, errstr);
            goto fail;
        }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, k);
    cJSON_Delete(props);
    return conf;
fail:
    cJSON_Delete(props);
    if (conf)
        rd_kafka_conf_destroy(conf);
    return NULL;
}

/* }====== */

eng_kafka *eng_kafka_new(const eng_config *cfg, const eng_host *host, eng_workers *ws,
                         eng_error *e) {
    eng_kafka *k = calloc(1, sizeof *k);
    if (!k) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    k->cfg = cfg;
    k->host = host;
    k->ws = ws;
    k->max_in_flight = (size_t)(cfg->kafka_max_in_flight > 0 ? cfg->kafka_max_in_flight : 1);
    k->max_total = cfg->kafka_max_in_flight_total > 0 ? (size_t)cfg->kafka_max_in_flight_total
                   : cfg->action_queue_depth > 1      ? (size_t)cfg->action_queue_depth / 2
                                                      : 1;
    k->warn_ms = -1000;
    pthread_mutex_init(&k->amu, NULL);
    char errstr[512];
    rd_kafka_conf_t *conf = build_conf(k, e);
    if (!conf)
        goto fail;
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!k->rk) {
        rd_kafka_conf_destroy(conf); /* rd_kafka_new() takes it only when it succeeds */
        eng_error_set(e, 400, "InvalidRequestException", "sources.kafka: librdkafka refused "
                      "the consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(k->rk); /* errors, logs and commit results come with the poll */
    return k;
fail:
    eng_kafka_free(k);
    return NULL;
}

int eng_kafka_start(eng_kafka *k) {
    if (!k)
        return 0;
    const char *csv = k->cfg->kafka_topics;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(8);
    for (const char *t = csv; *t;) {
        size_t n = strcspn(t, ",");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)n, t);
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
        t += n + (t[n] == ',');
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(k->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        eng_log(ENG_LOG_ERROR, "kafka.subscribe", "subscribing to %s: %s", csv,
                rd_kafka_err2str(err));
        return -1;
    }
    if (pthread_create(&k->th, NULL, poll_main, k) != 0)
        return -1;
    k->started = 1;
    eng_log(ENG_LOG_INFO, "kafka.started", "consuming %s in group %s (%s)", csv,
            k->cfg->kafka_group_id, k->cfg->kafka_assignment);
    return 0;
}

void eng_kafka_stop(eng_kafka *k) {
    if (!k || !k->started)
        return;
    atomic_store(&k->stop, 1);
    pthread_join(k->th, NULL);
    k->started = 0;
}

void eng_kafka_free(eng_kafka *k) {
    if (!k)
        return;
    eng_kafka_stop(k);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    /* the workers and the pipelines are gone: no record is in flight any more */
    for (size_t i = 0; i < k->nparts; i++)
        kpart_free(k->parts[i]);
    free(k->parts);
    pthread_mutex_destroy(&k->amu);
    free(k);
}

void eng_kafka_metrics(eng_kafka *k, FILE *f) {
    uint64_t paused = 0, kept = 0;
    pthread_mutex_lock(&k->amu);
    fprintf(f, "# HELP sluice_kafka_in_flight Records received and not finished, per partition.\n"
               "# TYPE sluice_kafka_in_flight gauge\n");
    for (size_t i = 0; i < k->nparts; i++) {
        kpart *kp = k->parts[i];
        pthread_mutex_lock(&kp->mu);
        uint64_t n = kp->pf.inflight;
        kept += kp->pf.kept;
        pthread_mutex_unlock(&kp->mu);
        fprintf(f, "sluice_kafka_in_flight{topic=\"%s\",partition=\"%d\"} %llu\n", kp->topic,
                (int)kp->partition, (unsigned long long)n);
    }
    fprintf(f, "# HELP sluice_kafka_unstored Records received whose offset is not stored yet "
               "(paused at sources.kafka.maxInFlightPerPartition).\n"
               "# TYPE sluice_kafka_unstored gauge\n");
    for (size_t i = 0; i < k->nparts; i++) {
        kpart *kp = k->parts[i];
        pthread_mutex_lock(&kp->mu);
        uint64_t n = kp->pf.tail - kp->pf.head;
        pthread_mutex_unlock(&kp->mu);
        fprintf(f, "sluice_kafka_unstored{topic=\"%s\",partition=\"%d\"} %llu\n", kp->topic,
                (int)kp->partition, (unsigned long long)n);
    }
    fprintf(f, "# HELP sluice_kafka_paused 1 while the partition is paused (back-pressure).\n"
               "# TYPE sluice_kafka_paused gauge\n");
    for (size_t i = 0; i < k->nparts; i++) {
        int p = atomic_load(&k->parts[i]->paused) != 0;
        paused += (uint64_t)p;
        fprintf(f, "sluice_kafka_paused{topic=\"%s\",partition=\"%d\"} %d\n", k->parts[i]->topic,
                (int)k->parts[i]->partition, p);
    }
    fprintf(f, "# HELP sluice_kafka_records_total Records received since the partition was "
               "assigned.\n# TYPE sluice_kafka_records_total counter\n");
    for (size_t i = 0; i < k->nparts; i++)
        fprintf(f, "sluice_kafka_records_total{topic=\"%s\",partition=\"%d\"} %llu\n",
                k->parts[i]->topic, (int)k->parts[i]->partition,
                (unsigned long long)atomic_load(&k->parts[i]->records));
    size_t nparts = k->nparts;
    pthread_mutex_unlock(&k->amu);
    fprintf(f, "# HELP sluice_kafka_in_flight_records Records received and not finished, all "
               "partitions (every one is paused at sources.kafka.maxInFlight).\n"
               "# TYPE sluice_kafka_in_flight_records gauge\nsluice_kafka_in_flight_records %llu\n",
            (unsigned long long)atomic_load(&k->inflight));
    fprintf(f, "# TYPE sluice_kafka_partitions gauge\nsluice_kafka_partitions %zu\n"
               "# TYPE sluice_kafka_paused_partitions gauge\nsluice_kafka_paused_partitions %llu\n"
               "# HELP sluice_kafka_kept_records Records finished without a durable outcome: "
               "their partition's offset stays before them.\n"
               "# TYPE sluice_kafka_kept_records gauge\nsluice_kafka_kept_records %llu\n",
            nparts, (unsigned long long)paused, (unsigned long long)kept);
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"sluice_kafka_commits_total", "Offset commits that succeeded.",
         offsetof(eng_kafka, st_commits)},
        {"sluice_kafka_commit_errors_total", "Offset commits that failed (retried by the next).",
         offsetof(eng_kafka, st_commit_errors)},
        {"sluice_kafka_pauses_total", "Times a partition was paused.",
         offsetof(eng_kafka, st_pauses)},
        {"sluice_kafka_rebalances_total", "Assignments and revocations.",
         offsetof(eng_kafka, st_rebalances)},
        {"sluice_kafka_lost_assignments_total", "Revocations without a commit (session lost).",
         offsetof(eng_kafka, st_lost)},
        {"sluice_kafka_drain_timeouts_total",
         "Revocations that left records in flight (they are read again).",
         offsetof(eng_kafka, st_drain_timeouts)},
        {"sluice_kafka_bad_headers_total", "Topic or client id headers that were unusable.",
         offsetof(eng_kafka, st_bad_headers)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
                counters[i].help, counters[i].name, counters[i].name,
                (unsigned long long)atomic_load(
                    (const _Atomic uint64_t *)((const char *)k + counters[i].off)));
}

#else /* built without librdkafka */

eng_kafka *eng_kafka_new(const eng_config *cfg, const eng_host *host, eng_workers *ws,
                         eng_error *e) {
    eng_error_set(e, 500, "InternalException", "sources.kafka: this sluice was built without "
                  "librdkafka (WITH_ACTION_KAFKA=OFF)");
    return NULL;
}

int eng_kafka_start(eng_kafka *k) { return k ? -1 : 0; }
void eng_kafka_stop(eng_kafka *k) {}
void eng_kafka_free(eng_kafka *k) {}
void eng_kafka_metrics(eng_kafka *k, FILE *f) {}

#endif

/*
 * pipeline.c -- the delivery pipeline of one action instance: bounded lanes, batching, retries
 * with exponential backoff and full jitter, and the failure path that never drops a message.
 *
 * An instance has `lanes` FIFO queues, each drained by one thread. A message goes to lane
 * hash(topic) % lanes, so messages on one topic reach the sink in the order the rule fired on
 * them, retries included: a lane retries the head of its batch (sleeping between attempts)
 * before it delivers anything behind it. A slow or dead sink therefore blocks only its own
 * lanes; once a lane's queue is full, further messages take the failure path at once instead of
 * slowing the workers (the rule: no action slows other actions beyond its queue bound).
 *
 * The failure path of a message, after its last attempt or on overflow:
 *   primary action -> the rule's errorAction receives AWS's error document (a new message in
 *   the error action's own pipeline, which owns the failed original until it is delivered);
 *   errorAction failed, or none, or a re-driven dead letter failed again -> one durable record
 *   in the dead-letter store. Only a store that cannot write (disk full) loses a message, and
 *   that is counted (sluice_dropped_total{reason="deadletter_write"}) and logged.
 *
 * Rejected: one delivery thread pool shared by all actions (simpler, fewer threads), because a
 * dead sink's retries would then occupy threads other actions need, which is the coupling this
 * design exists to prevent. Lanes are cheap: most actions have one or a few.
 */
#include "action.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ERRORS 32 /* errors kept per message: the first 16 and the latest 16 */

typedef struct item item;
struct item {
    item *next;
    eng_msg *in;         /* retained */
    item *origin;        /* error-document items: the failed original (owned) */
    act_pipe *pipe;      /* the pipe delivering it */
    uint64_t redrive_id; /* nonzero: a dead-letter record being re-sent */
    uint64_t enq_ns, first_try_ns;
    int attempts;
    size_t nerrs;
    char *errs[MAX_ERRORS];
    int64_t errs_at[MAX_ERRORS];
    act_msg m;           /* what deliver() sees; points into this allocation */
    size_t nfields;
    size_t bytes;
};

typedef struct lane {
    pthread_mutex_t busy;  /* held while delivering: by the lane thread or an inline submitter */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t room; /* the lane dropped below its bound (submitters wait for it) */
    item *head, *tail;   /* guarded by mu */
    size_t len;          /* guarded by mu */
    int stop;            /* guarded by mu */
    _Atomic size_t inflight;
    pthread_t th;
    int started;
    act_pipe *p;
    int id;
    uint64_t seed;
    int sink_down;       /* stopping and the sink failed: the rest goes to the failure path */
    int failing;         /* guarded by mu: the head is being retried (the sink fails) */
    int saturating;      /* guarded by mu: counted in nsaturated */
} lane;

/* Lanes that are at least half full while their sink is healthy (delivering, only slower than
 * the input): the sources stop reading until they drain (act_pipes_saturated()). A lane whose
 * sink is failing is not counted: a dead sink must not stall every other rule, so its overflow
 * takes the failure path instead (isolation), as AWS's rules engine does. */
static _Atomic int nsaturated;

int act_pipes_saturated(void) { return atomic_load_explicit(&nsaturated, memory_order_relaxed) > 0; }

struct act_pipe {
    act_instance *inst;  /* NULL once closed */
    const act_vtable *vt;
    char resource[256];  /* failedResource */
    act_owner o;
    char rule_name[129];
    act_retry_policy retry;
    size_t cap;          /* per lane */
    size_t nfields;      /* the instance's template count */
    int nlanes;
    lane *lanes;
    int closed;
    int inst_inline_held; /* the instance's holds_until_acked */
    _Atomic int dl_pending; /* dead letters of this pipe's messages not yet durable */
    act_pipe_stats stats;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static lane *lane_of(act_pipe *p, const eng_msg *in) {
    return &p->lanes[eng_topic_hash(in->topic, in->topic_len) % (uint32_t)p->nlanes];
}

/* Recounts l in nsaturated. Called with l->mu held after len, failing or stop changed. */
static void update_saturation(lane *l) {
    int want = l->len >= l->p->cap / 2 && l->len > 0 && !l->failing && !l->stop;
    if (want != l->saturating) {
        l->saturating = want;
        atomic_fetch_add_explicit(&nsaturated, want ? 1 : -1, memory_order_relaxed);
    }
}

/* Marks l's sink failing (its head is retried) or healthy again. */
static void set_failing(lane *l, int failing) {
    if (l->failing == failing) /* only the delivering thread writes it */
        return;
    pthread_mutex_lock(&l->mu);
    l->failing = failing;
    update_saturation(l);
    if (failing) /* those waiting for room take the failure path now */
        pthread_cond_broadcast(&l->room);
    pthread_mutex_unlock(&l->mu);
}

/* The absolute CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(int ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    long ns = dl.tv_nsec + (long)(ms % 1000) * 1000000L;
    dl.tv_sec += ms / 1000 + ns / 1000000000L;
    dl.tv_nsec = ns % 1000000000L;
    return dl;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int act_retry_delay_ms(const act_retry_policy *p, int k, uint64_t *seed) {
    long long cap = p->base_ms;
    for (int i = 1; i < k && cap < p->max_ms; i++)
        cap *= 2;
    if (cap > p->max_ms)
        cap = p->max_ms;
    if (cap <= 0)
        return 0;
    return (int)(xorshift(seed) % (uint64_t)(cap + 1)); /* full jitter: uniform in [0, cap] */
}

/* {====== items */

/* One allocation: the item, then field pointers, lengths and null flags, then the payload and
 * the field texts. */
static item *item_new(act_pipe *p, eng_msg *in, const char *payload, size_t plen,
                      const act_fields *fs) {
    size_t nf = fs ? fs->n : 0;
    size_t text = plen + 1;
    for (size_t k = 0; k < nf; k++)
        text += fs->len[k] + 1;
    size_t sz = sizeof(item) + nf * (sizeof(char *) + sizeof(size_t) + 1) + text;
    item *it = calloc(1, sz);
    if (!it)
        return NULL;
    const char **f = (const char **)(it + 1);
    size_t *lens = (size_t *)(f + nf);
    unsigned char *nulls = (unsigned char *)(lens + nf);
    char *t = (char *)(nulls + nf);
    memcpy(t, payload, plen);
    t[plen] = '\0';
    it->m.payload = t;
    it->m.payload_len = plen;
    t += plen + 1;
    for (size_t k = 0; k < nf; k++) {
        memcpy(t, fs->f[k], fs->len[k]);
        t[fs->len[k]] = '\0';
        f[k] = t;
        lens[k] = fs->len[k];
        nulls[k] = fs->null[k];
        t += fs->len[k] + 1;
    }
    it->m.fields = f;
    it->m.field_lens = lens;
    it->m.field_null = nulls;
    it->nfields = nf;
    it->m.rule_name = p->rule_name;
    it->in = eng_msg_retain(in);
    it->m.in = it->in;
    it->pipe = p;
    it->bytes = plen;
    it->enq_ns = now_ns();
    return it;
}

static void item_free(item *it) {
    if (!it)
        return;
    item_free(it->origin);
    for (size_t i = 0; i < it->nerrs; i++)
        free(it->errs[i]);
    eng_msg_free(it->in);
    free(it);
}

/* Keeps the first half and the latest half of MAX_ERRORS. */
static void item_error(item *it, const char *prefix, const char *msg) {
    char buf[600];
    snprintf(buf, sizeof buf, "%s%s", prefix, msg && *msg ? msg : "unknown error");
    char *s = strdup(buf);
    if (!s)
        return;
    if (it->nerrs == MAX_ERRORS) {
        free(it->errs[MAX_ERRORS / 2]);
        memmove(&it->errs[MAX_ERRORS / 2], &it->errs[MAX_ERRORS / 2 + 1],
                (MAX_ERRORS / 2 - 1) * sizeof it->errs[0]);
        memmove(&it->errs_at[MAX_ERRORS / 2], &it->errs_at[MAX_ERRORS / 2 + 1],
                (MAX_ERRORS / 2 - 1) * sizeof it->errs_at[0]);
        it->nerrs--;
    }
    it->errs[it->nerrs] = s;
    it->errs_at[it->nerrs++] = wall_ms();
}

/* }====== */

/* This (rule, action) pair is done with journaled message in: when the message still has
 * other work pending, the journal records the pair so that a replay after a crash skips it.
 * (With one reference left -- ours -- its release retires the whole message anyway.) An
 * action that reports its own completion later (republish, on the broker's PUBACK) keeps the
 * message referenced until then, so a replay repeats it rather than skip it. */
static void pair_done(act_pipe *p, const eng_msg *in) {
    const eng_host *h = p->o.host;
    if (!h || !h->pair_done || !in->seq || p->inst_inline_held ||
        atomic_load_explicit(&in->refs, memory_order_relaxed) <= 1)
        return;
    h->pair_done(h->ud, in, p->rule_name, p->o.rule_revision ? *p->o.rule_revision : 0,
                 p->o.index);
}

/* {====== the failure path */

static void fail_item(act_pipe *p, item *it);

static pthread_once_t exec_once = PTHREAD_ONCE_INIT;
static pthread_key_t exec_key;

static void exec_free(void *x) { sql_exec_free(x); }
static void exec_key_init(void) { pthread_key_create(&exec_key, exec_free); }

/* A per-thread sql_exec for rendering the error action's templates on the failure path (the
 * thread may be a worker in the middle of its own evaluation, so it cannot be the worker's). */
static sql_exec *fail_exec(void) {
    pthread_once(&exec_once, exec_key_init);
    sql_exec *x = pthread_getspecific(exec_key);
    if (!x && (x = sql_exec_new()))
        pthread_setspecific(exec_key, x);
    return x;
}

/* AWS's error-action document for the failed item (malloc'd). */
static char *error_document(act_pipe *p, const item *it) {
    const eng_msg *m = it->in;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "ruleName", p->rule_name);
    cJSON_AddStringToObject(d, "topic", m->topic);
    cJSON_AddStringToObject(d, "cloudwatchTraceId", m->traceid);
    cJSON_AddStringToObject(d, "clientId", m->clientid ? m->clientid : "n/a");
    char *b64 = malloc((m->payload_len + 2) / 3 * 4 + 1);
    if (b64) {
        sql_base64_encode(m->payload, m->payload_len, b64);
        cJSON_AddStringToObject(d, "base64OriginalPayload", b64);
        free(b64);
    }
    cJSON *fails = cJSON_AddArrayToObject(d, "failures");
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "failedAction", p->vt->aws_name);
    cJSON_AddStringToObject(f, "failedResource", p->resource);
    cJSON_AddStringToObject(f, "errorMessage", it->nerrs ? it->errs[it->nerrs - 1] : "failed");
    cJSON_AddItemToArray(fails, f);
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    return s;
}

/* A dead letter on its way to the store: the items stay alive (and keep their message in the
 * journal) until the record is durable. */
typedef struct dl_job {
    act_pipe *home;      /* the failed action's pipe; act_pipe_free() waits for its jobs */
    act_pipe *via;       /* the pipe whose failure wrote it (the error action's, or home) */
    item *orig, *also;
    char *last_error;
} dl_job;

static void dead_letter_done(void *ud, int rc, uint64_t id) {
    dl_job *j = ud;
    act_pipe *home = j->home;
    if (rc != 0) {
        /* not stored: the journal keeps the message and replays it at the next start; without
         * a journal it is lost, which is counted and logged */
        atomic_store(&j->orig->in->keep, 1);
        act_count(home->o.host, ENG_COUNT_DROP_DLQ_WRITE, 1);
        act_log(home->o.host, ENG_LOG_ERROR, "deadletter.write_failed",
                "rule %s, %s action, topic %s: the dead-letter store refused the message%s",
                home->rule_name, home->vt->name, j->orig->in->topic,
                j->orig->in->seq ? " (it stays in the journal)" : ": message lost");
    } else {
        pair_done(home, j->orig->in);
        act_log(home->o.host, ENG_LOG_WARN, "deadletter.stored",
                "rule %s, %s action, topic %s: dead letter %llu: %s", home->rule_name,
                home->vt->name, j->orig->in->topic, (unsigned long long)id,
                j->last_error ? j->last_error : "");
        if (j->orig->redrive_id)
            act_dlq_resolve(home->o.dlq, j->orig->redrive_id); /* superseded by the new one */
    }
    item_free(j->orig);
    item_free(j->also);
    free(j->last_error);
    act_pipe *via = j->via;
    free(j);
    if (via != home)
        atomic_fetch_sub(&via->dl_pending, 1);
    atomic_fetch_sub(&home->dl_pending, 1);
}

/* Writes the dead-letter record of `orig` (the failed primary message), adding the errors of
 * `also` (its error-document item, when the error action failed too). Takes both items: they
 * are released once the record is durable, on the store's writer thread, so no worker or lane
 * ever waits for the store's fdatasync. */
static void dead_letter_take(act_pipe *p, item *orig, item *also) {
    const char *errs[2 * MAX_ERRORS];
    int64_t at[2 * MAX_ERRORS];
    size_t n = 0;
    for (size_t i = 0; i < orig->nerrs; i++, n++) {
        errs[n] = orig->errs[i];
        at[n] = orig->errs_at[i];
    }
    for (size_t i = 0; also && i < also->nerrs; i++, n++) {
        errs[n] = also->errs[i];
        at[n] = also->errs_at[i];
    }
    act_fields fs = {.n = orig->nfields};
    for (size_t k = 0; k < orig->nfields && k < ACT_MAX_FIELDS; k++) {
        fs.f[k] = orig->m.fields[k];
        fs.len[k] = orig->m.field_lens[k];
        fs.null[k] = orig->m.field_null[k];
    }
    act_pipe *home = orig->pipe;
    act_dlq_record r = {.rule = home->rule_name,
                        .rule_revision = home->o.rule_revision ? *home->o.rule_revision : 0,
                        .action_index = home->o.index,
                        .action = home->vt->name,
                        .in = orig->in,
                        .output = orig->m.payload,
                        .output_len = orig->m.payload_len,
                        .fields = &fs,
                        .errors = errs,
                        .error_at = at,
                        .nerrors = n,
                        .attempts = orig->attempts + (also ? also->attempts : 0)};
    dl_job *j = malloc(sizeof *j);
    if (j) {
        *j = (dl_job){home, p, orig, also, n ? strdup(errs[n - 1]) : NULL};
        atomic_fetch_add(&home->dl_pending, 1);
        if (p != home)
            atomic_fetch_add(&p->dl_pending, 1);
    }
    if (!j || !p->o.dlq || act_dlq_append_async(p->o.dlq, &r, dead_letter_done, j) != 0) {
        if (j) {
            free(j->last_error);
            free(j);
            if (p != home)
                atomic_fetch_sub(&p->dl_pending, 1);
            atomic_fetch_sub(&home->dl_pending, 1);
        }
        atomic_store(&orig->in->keep, 1);
        act_count(p->o.host, ENG_COUNT_DROP_DLQ_WRITE, 1);
        act_log(p->o.host, ENG_LOG_ERROR, "deadletter.write_failed",
                "rule %s, %s action, topic %s: the dead-letter store refused the message%s",
                home->rule_name, home->vt->name, orig->in->topic,
                orig->in->seq ? " (it stays in the journal)" : ": message lost");
        item_free(orig);
        item_free(also);
    }
}

static int queue_item(act_pipe *p, item *it);

/* Hands the failed item to the rule's error action as AWS's error document. 0 when queued
 * there (the error item now owns it), -1 when that was impossible. */
static int to_error_action(act_pipe *p, item *it) {
    act_pipe *ep = p->o.error_pipe;
    char *doc = error_document(p, it);
    if (!doc)
        return -1;
    act_fields fs = {0};
    sql_exec *x = p->o.err_ntpl ? fail_exec() : NULL;
    int ok = 1;
    if (p->o.err_ntpl) {
        /* the error action's templates see the original message, as AWS's do */
        sql_message sm;
        sql_output out;
        char err[256];
        eng_msg_sql(it->in, p->rule_name, p->o.host ? p->o.host->account_id : NULL, &sm);
        sm.host = p->o.host ? p->o.host->sql : NULL;
        ok = x && sql_exec_run_matched(x, p->o.prog, &sm, &out) == SQL_FIRED &&
             act_render(x, p->o.err_tpl_base, p->o.err_ntpl, p->o.err_wants_nulls, &fs, err,
                        sizeof err) == 0;
        if (!ok) { /* the rule no longer fires on it (e.g. rand()): empty substitutions */
            fs.n = p->o.err_ntpl;
            for (size_t k = 0; k < fs.n; k++) {
                fs.f[k] = "";
                fs.len[k] = 0;
                fs.null[k] = 1;
            }
        }
    }
    item *e = item_new(ep, it->in, doc, strlen(doc), &fs);
    free(doc);
    act_fields_deinit(&fs);
    if (!e)
        return -1;
    e->origin = it;
    if (queue_item(ep, e) != 0) {
        item_error(e, "errorAction: ", "queue full");
        e->origin = NULL;
        item_error(it, "errorAction: ", "queue full");
        item_free(e);
        return -1;
    }
    return 0;
}

static void fail_item(act_pipe *p, item *it) {
    atomic_fetch_add_explicit(&p->stats.failed, 1, memory_order_relaxed);
    if (it->origin) { /* the error action failed: the original goes to the dead letters */
        item *orig = it->origin;
        it->origin = NULL;
        for (size_t i = 0; i < it->nerrs; i++) {
            char *s = it->errs[i];
            size_t n = strlen(s) + 14;
            char *t = malloc(n);
            if (t) {
                snprintf(t, n, "errorAction: %s", s);
                free(s);
                it->errs[i] = t;
            }
        }
        dead_letter_take(p, orig, it);
        return;
    }
    act_log(p->o.host, ENG_LOG_WARN, "action.failed", "rule %s, %s action, topic %s: %s", p->rule_name,
            p->vt->name, it->in->topic, it->nerrs ? it->errs[it->nerrs - 1] : "");
    if (!it->redrive_id && p->o.error_pipe && to_error_action(p, it) == 0)
        return;
    dead_letter_take(p, it, NULL);
}

/* }====== */

/* {====== lanes */

static void *lane_main(void *arg);

/* Lane threads start with their first message: most rules of a large rule set are quiet, and
 * a thread per lane of 10 000 idle rules would cost memory for nothing. Called with l->mu. */
static int start_lane(lane *l) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 1u << 20); /* client libraries need some; 8 MiB is waste */
    int rc = pthread_create(&l->th, &a, lane_main, l);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        act_log(l->p->o.host, ENG_LOG_ERROR, "action.thread",
                "cannot start a delivery thread: %s",
                strerror(rc));
        return -1;
    }
    l->started = 1;
    return 0;
}

#define ROOM_WAIT_MS 10000 /* how long a full lane with a healthy sink may hold a submitter */

/* 0 when queued, -1 when the lane is full or stopped. A full lane whose sink is healthy (only
 * slower than the input) makes the submitter wait for room: back-pressure, passed on to the
 * worker and from there to the input, rather than dead letters for a sink that works. A lane
 * whose sink fails does not hold anyone: its overflow takes the failure path at once, so a
 * dead sink cannot stall the other rules. */
static int queue_item(act_pipe *p, item *it) {
    lane *l = lane_of(p, it->in);
    pthread_mutex_lock(&l->mu);
    if (l->len >= p->cap && !l->stop && !l->failing) {
        struct timespec dl = deadline_in(ROOM_WAIT_MS);
        while (l->len >= p->cap && !l->stop && !l->failing)
            if (pthread_cond_timedwait(&l->room, &l->mu, &dl) != 0)
                break;
    }
    if (l->len >= p->cap || l->stop || (!l->started && start_lane(l) != 0)) {
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    it->next = NULL;
    it->pipe = p;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    /* only an empty lane can have a sleeping thread (a batch-filling wait also wakes on
     * every arrival, which is what lets it stop early at max_batch) */
    if (l->len++ == 0 || p->inst->max_batch_open_ms > 0)
        pthread_cond_signal(&l->cv);
    update_saturation(l);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void observe(act_pipe *p, uint64_t ns);

/* The inline fast path (deliver_inline): when the lane has nothing queued and nobody is
 * delivering on it, the submitter delivers itself, so order holds. 1 when it handled the
 * message (delivered, or failed/queued for retry), 0 when the caller must queue it. */
static int try_inline(act_pipe *p, eng_msg *in, const char *payload, size_t plen,
                      const act_fields *fs) {
    lane *l = lane_of(p, in);
    if (pthread_mutex_trylock(&l->busy) != 0)
        return 0;
    /* idle: nothing queued, and no batch taken by the lane thread and not yet delivered (it
     * dequeues under mu before it takes busy, so without the inflight check a newer message
     * could overtake the batch it holds) */
    pthread_mutex_lock(&l->mu);
    int idle = l->len == 0 && !l->stop &&
               atomic_load_explicit(&l->inflight, memory_order_relaxed) == 0;
    pthread_mutex_unlock(&l->mu);
    if (!idle) {
        pthread_mutex_unlock(&l->busy);
        return 0;
    }
    act_msg m = {.rule_name = p->rule_name, .payload = payload, .payload_len = plen,
                 .fields = fs ? fs->f : NULL, .field_lens = fs ? fs->len : NULL,
                 .field_null = fs ? fs->null : NULL, .in = in};
    const act_msg *mp = &m;
    size_t done = 0;
    char err[512] = "";
    uint64_t t0 = now_ns();
    act_result r = p->inst->vt->deliver(p->inst, l->id, &mp, 1, &done, err, sizeof err);
    atomic_fetch_add_explicit(&p->stats.batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->stats.batch_msgs, 1, memory_order_relaxed);
    if (r == ACT_OK) {
        pthread_mutex_unlock(&l->busy);
        pair_done(p, in);
        atomic_fetch_add_explicit(&p->stats.delivered, 1, memory_order_relaxed);
        observe(p, now_ns() - t0);
        return 1;
    }
    item *it = item_new(p, in, payload, plen, fs);
    if (!it) {
        pthread_mutex_unlock(&l->busy);
        return 0; /* the queueing path reports the OOM */
    }
    it->attempts = 1;
    it->first_try_ns = t0;
    item_error(it, "", err);
    if (r == ACT_FAIL) {
        pthread_mutex_unlock(&l->busy);
        fail_item(p, it);
        return 1;
    }
    /* transient: the lane retries it, ahead of anything queued since (we hold busy) */
    pthread_mutex_lock(&l->mu);
    if (l->stop || (!l->started && start_lane(l) != 0)) {
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_unlock(&l->busy);
        fail_item(p, it);
        return 1;
    }
    it->next = l->head;
    l->head = it;
    if (!l->tail)
        l->tail = it;
    l->len++;
    update_saturation(l);
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->busy);
    return 1;
}

int act_pipe_submit(act_pipe *p, eng_msg *in, const char *payload, size_t plen,
                    const act_fields *fs, uint64_t redrive_id) {
    if (p->inst->deliver_inline && !redrive_id && try_inline(p, in, payload, plen, fs))
        return 0;
    item *it = item_new(p, in, payload, plen, fs);
    if (!it) {
        act_count(p->o.host, ENG_COUNT_DROP_DLQ_WRITE, 1);
        act_log(p->o.host, ENG_LOG_ERROR, "action.oom", "rule %s, %s action, topic %s: out of memory",
                p->rule_name, p->vt->name, in->topic);
        return 1;
    }
    it->redrive_id = redrive_id;
    if (queue_item(p, it) == 0)
        return 0;
    atomic_fetch_add_explicit(&p->stats.overflow, 1, memory_order_relaxed);
    item_error(it, "", "the action's queue is full (the sink is not keeping up)");
    fail_item(p, it);
    return 1;
}

void act_pipe_reject(act_pipe *p, eng_msg *in, const char *payload, size_t plen,
                     const char *err) {
    /* the fields are empty strings: the dead-letter record and error action need no more */
    act_fields fs = {.n = p->nfields};
    for (size_t k = 0; k < fs.n; k++) {
        fs.f[k] = "";
        fs.len[k] = 0;
        fs.null[k] = 1;
    }
    item *it = item_new(p, in, payload, plen, &fs);
    if (!it) {
        act_count(p->o.host, ENG_COUNT_DROP_DLQ_WRITE, 1);
        act_log(p->o.host, ENG_LOG_ERROR, "action.oom", "rule %s, %s action, topic %s: out of memory",
                p->rule_name, p->vt->name, in->topic);
        return;
    }
    it->attempts = 1;
    item_error(it, "", err);
    fail_item(p, it);
}

static void observe(act_pipe *p, uint64_t ns) {
    uint64_t us = ns / 1000;
    int b = 0;
    while (b < ACT_LAT_BUCKETS && us >= (1ull << b))
        b++;
    atomic_fetch_add_explicit(&p->stats.latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->stats.latency_sum_ns, ns, memory_order_relaxed);
}

static void delivered(act_pipe *p, item *it, uint64_t t) {
    atomic_fetch_add_explicit(&p->stats.delivered, 1, memory_order_relaxed);
    if (it->origin) /* an error document delivered: the failed action's pair is done */
        pair_done(it->origin->pipe, it->origin->in);
    else
        pair_done(p, it->in);
    observe(p, t - it->enq_ns);
    if (it->redrive_id && p->o.dlq)
        act_dlq_resolve(p->o.dlq, it->redrive_id);
    if (it->origin && it->origin->redrive_id && p->o.dlq)
        act_dlq_resolve(p->o.dlq, it->origin->redrive_id);
    item_free(it);
}

/* Sleeps ms unless the lane is told to stop; returns 1 when stopping. */
static int backoff(lane *l, int ms) {
    struct timespec dl = deadline_in(ms);
    pthread_mutex_lock(&l->mu);
    while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &dl) == 0)
        ;
    int stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

static int stopping(lane *l) {
    pthread_mutex_lock(&l->mu);
    int s = l->stop;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Delivers batch[0..n) in order, retrying the head of what is left. */
/* Shutting down while the sink fails: a journaled message is left in the journal, to be
 * replayed (and this pair retried) at the next start, instead of taking the failure path now;
 * only a message no journal holds goes to the error action or the dead letters. */
static void defer_or_fail(act_pipe *p, item *it) {
    eng_msg *in = it->origin ? it->origin->in : it->in;
    if (!in->seq || !in->origin) {
        fail_item(p, it);
        return;
    }
    atomic_store(&in->keep, 1);
    atomic_fetch_add_explicit(&p->stats.deferred, 1, memory_order_relaxed);
    item_free(it);
}

static void deliver_batch(lane *l, item **batch, size_t n, const act_msg **msgs) {
    act_pipe *p = l->p;
    atomic_fetch_add_explicit(&p->stats.batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->stats.batch_msgs, n, memory_order_relaxed);
    size_t off = 0;
    while (off < n) {
        if (l->sink_down) { /* shutting down with a dead sink: no more attempts */
            item_error(batch[off], "", "not delivered before shutdown (the sink was failing)");
            defer_or_fail(p, batch[off++]);
            continue;
        }
        size_t rest = n - off;
        for (size_t i = 0; i < rest; i++)
            msgs[i] = &batch[off + i]->m;
        size_t done = 0;
        char err[512] = "";
        uint64_t t0 = now_ns();
        if (!batch[off]->first_try_ns)
            batch[off]->first_try_ns = t0;
        act_result r = p->inst->vt->deliver(p->inst, l->id, msgs, rest, &done, err, sizeof err);
        uint64_t t1 = now_ns();
        if (r == ACT_OK || done > rest)
            done = rest;
        for (size_t i = 0; i < done; i++)
            delivered(p, batch[off + i], t1);
        off += done;
        if (done)
            set_failing(l, 0);
        if (r == ACT_OK || off == n)
            continue;
        item *it = batch[off];
        if (!it->first_try_ns) /* not the head of the call: its first try was this one */
            it->first_try_ns = t0;
        it->attempts++;
        item_error(it, "", err);
        if (r == ACT_FAIL) {
            fail_item(p, it);
            off++;
            continue;
        }
        int stop = stopping(l);
        if (stop || it->attempts >= p->retry.attempts ||
            (t1 - it->first_try_ns) / 1000000u >= (uint64_t)p->retry.total_ms) {
            if (stop)
                l->sink_down = 1;
            if (stop)
                defer_or_fail(p, it);
            else
                fail_item(p, it);
            off++;
            continue;
        }
        atomic_fetch_add_explicit(&p->stats.retries, 1, memory_order_relaxed);
        /* a sink that keeps failing (a few attempts, or a second) stops counting as
         * back-pressure: its overflow takes the failure path so the others go on; a blip
         * (a reconnect) just slows the input */
        if (it->attempts >= 3 || (t1 - it->first_try_ns) / 1000000u >= 1000)
            set_failing(l, 1);
        /* told to stop while sleeping: the next attempt is the last one (see above) */
        backoff(l, act_retry_delay_ms(&p->retry, it->attempts, &l->seed));
    }
}

static void *lane_main(void *arg) {
    lane *l = arg;
    act_pipe *p = l->p;
    size_t maxb = p->inst->max_batch ? p->inst->max_batch : 1;
    size_t maxbytes = p->inst->max_batch_bytes ? p->inst->max_batch_bytes : (size_t)-1;
    item **batch = malloc(maxb * sizeof *batch);
    const act_msg **msgs = malloc(maxb * sizeof *msgs);
    if (!batch || !msgs) {
        act_log(p->o.host, ENG_LOG_ERROR, "action.oom", "cannot start a delivery lane");
        maxb = 0;
    }
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (l->len == 0 && !l->stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->len == 0) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        if (p->inst->max_batch_open_ms > 0 && l->len < maxb && !l->stop) {
            /* AWS's maxBatchOpenMs: wait for the batch to fill, at most this long */
            struct timespec dl = deadline_in(p->inst->max_batch_open_ms);
            while (l->len < maxb && !l->stop &&
                   pthread_cond_timedwait(&l->cv, &l->mu, &dl) == 0)
                ;
        }
        size_t n = 0, bytes = 0;
        while (l->head && n < maxb && (n == 0 || bytes + l->head->bytes <= maxbytes)) {
            item *it = l->head;
            l->head = it->next;
            if (!l->head)
                l->tail = NULL;
            l->len--;
            bytes += it->bytes;
            batch[n++] = it;
        }
        update_saturation(l);
        if (n)
            pthread_cond_broadcast(&l->room);
        atomic_store_explicit(&l->inflight, n, memory_order_relaxed);
        pthread_mutex_unlock(&l->mu);
        if (maxb == 0) { /* no memory for a batch: everything takes the failure path */
            pthread_mutex_lock(&l->mu);
            item *it = l->head;
            l->head = l->tail = NULL;
            l->len = 0;
            pthread_mutex_unlock(&l->mu);
            while (it) {
                item *next = it->next;
                item_error(it, "", "out of memory");
                fail_item(p, it);
                it = next;
            }
            continue;
        }
        pthread_mutex_lock(&l->busy);
        deliver_batch(l, batch, n, msgs);
        pthread_mutex_unlock(&l->busy);
        atomic_store_explicit(&l->inflight, 0, memory_order_relaxed);
    }
    free(batch);
    free(msgs);
    return NULL;
}

/* }====== */

act_pipe *act_pipe_new_take(act_instance *inst, const act_owner *o, eng_error *e) {
    act_pipe *p = calloc(1, sizeof *p);
    if (!p) {
        inst->vt->close(inst);
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    p->inst = inst;
    p->vt = inst->vt;
    p->inst_inline_held = inst->holds_until_acked;
    snprintf(p->resource, sizeof p->resource, "%s", inst->resource[0] ? inst->resource
                                                                      : inst->vt->name);
    const char *const *tpl;
    p->nfields = inst->vt->templates(inst, &tpl);
    p->o = *o;
    snprintf(p->rule_name, sizeof p->rule_name, "%s", o->rule_name ? o->rule_name : "");
    p->o.rule_name = p->rule_name;
    const eng_host *h = o->host;
    p->retry = (act_retry_policy){h ? h->retry_attempts : 8, h ? h->retry_base_ms : 100,
                                  h ? h->retry_max_ms : 10000, h ? h->retry_total_ms : 60000};
    p->cap = h && h->queue_depth > 0 ? (size_t)h->queue_depth : 10000;
    p->nlanes = inst->lanes > 0 ? inst->lanes : 1;
    p->lanes = calloc((size_t)p->nlanes, sizeof *p->lanes);
    if (!p->lanes)
        goto fail;
    for (int i = 0; i < p->nlanes; i++) {
        lane *l = &p->lanes[i];
        pthread_mutex_init(&l->mu, NULL);
        pthread_mutex_init(&l->busy, NULL);
        pthread_cond_init(&l->cv, NULL);
        pthread_cond_init(&l->room, NULL);
        l->p = p;
        l->id = i;
        l->seed = now_ns() ^ ((uint64_t)(uintptr_t)l << 16) ^ (uint64_t)i;
    }
    return p;
fail:
    eng_error_set(e, 500, "InternalException", "cannot start the action's delivery threads");
    act_pipe_close(p);
    act_pipe_free(p);
    return NULL;
}

size_t act_pipe_depth(act_pipe *p) {
    size_t n = 0;
    for (int i = 0; i < p->nlanes; i++) {
        pthread_mutex_lock(&p->lanes[i].mu);
        n += p->lanes[i].len;
        pthread_mutex_unlock(&p->lanes[i].mu);
        n += atomic_load_explicit(&p->lanes[i].inflight, memory_order_relaxed);
    }
    return n;
}

const act_pipe_stats *act_pipe_stats_of(const act_pipe *p) { return &p->stats; }
act_instance *act_pipe_instance(act_pipe *p) { return p->inst; }

/* Waits until the dead letters of p's messages are durable (they point at p). */
static void wait_dead_letters(act_pipe *p) {
    while (atomic_load(&p->dl_pending) > 0) {
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
}

void act_pipe_close(act_pipe *p) {
    if (!p || p->closed)
        return;
    p->closed = 1;
    for (int i = 0; p->lanes && i < p->nlanes; i++) {
        pthread_mutex_lock(&p->lanes[i].mu);
        p->lanes[i].stop = 1;
        update_saturation(&p->lanes[i]);
        pthread_cond_broadcast(&p->lanes[i].cv);
        pthread_cond_broadcast(&p->lanes[i].room);
        pthread_mutex_unlock(&p->lanes[i].mu);
    }
    for (int i = 0; p->lanes && i < p->nlanes; i++) {
        pthread_mutex_lock(&p->lanes[i].mu);
        int started = p->lanes[i].started;
        pthread_mutex_unlock(&p->lanes[i].mu);
        if (started)
            pthread_join(p->lanes[i].th, NULL);
    }
    /* lanes that never started (start-up failure) still own their queues */
    for (int i = 0; p->lanes && i < p->nlanes; i++) {
        item *it = p->lanes[i].head;
        p->lanes[i].head = p->lanes[i].tail = NULL;
        while (it) {
            item *next = it->next;
            item_error(it, "", "the action was closed before delivery");
            fail_item(p, it);
            it = next;
        }
    }
    wait_dead_letters(p);
    if (p->inst) {
        p->inst->vt->close(p->inst);
        p->inst = NULL;
    }
}

void act_pipe_free(act_pipe *p) {
    if (!p)
        return;
    act_pipe_close(p);
    wait_dead_letters(p); /* the error action's failures may have added some since */
    for (int i = 0; p->lanes && i < p->nlanes; i++) {
        pthread_mutex_destroy(&p->lanes[i].mu);
        pthread_mutex_destroy(&p->lanes[i].busy);
        pthread_cond_destroy(&p->lanes[i].cv);
        pthread_cond_destroy(&p->lanes[i].room);
    }
    free(p->lanes);
    free(p);
}

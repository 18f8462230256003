/*
 * worker.c -- the evaluator pool: N threads, one queue each.
 *
 * A message goes to worker hash(topic) mod N, so messages on one topic are evaluated and
 * delivered in the order they arrived. Submitting never blocks: a source hands over what it
 * has already made durable (journaled, or still in Kafka) and is told when the target queue
 * has reached its bound, and then stops reading (the MQTT input stops reading its socket, the
 * Kafka source pauses its partitions) until eng_workers_saturated() clears. Blocking inside the
 * source, as an earlier version did, would also have stopped the MQTT connection's PUBACKs and
 * keepalive. A queue is a linked list through eng_msg.next; a source hands over a whole batch
 * with one lock per worker, and a worker takes its whole queue with one lock.
 *
 * Per message, a worker takes the registry's current snapshot (lock-free), matches the topic
 * in the snapshot's index, runs each matching rule with its own sql_exec, and hands the output
 * of each fired rule to the rule's actions with their substitution templates. An action that
 * fails after its retries sends AWS's error document to the rule's error action.
 */
#include "engine_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../actions/action.h"

typedef struct wqueue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    eng_msg *head, *tail; /* guarded by mu; linked through eng_msg.next */
    size_t len;           /* guarded by mu */
    _Atomic size_t held;  /* taken by the worker and not yet processed (for metrics) */
    int stop;             /* guarded by mu */
    int full;             /* guarded by mu: len reached the bound (counted in nfull) */
} wqueue;

struct eng_workers {
    int n;
    wqueue *q;
    pthread_t *th;
    eng_registry *reg;
    eng_env *env;
    const eng_config *cfg;
    size_t bound;          /* per queue: at or above it, sources stop reading */
    _Atomic int nfull;     /* queues at or above the bound */
    pthread_mutex_t room_mu;
    pthread_cond_t room;   /* broadcast when a full queue drains below its bound */
};

typedef struct wctx {
    eng_workers *ws;
    int id;
} wctx;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Appends the chain first..last (n messages, all for queue q) under one lock. Returns 1 when
 * the queue is now at or above its bound, -1 when it is stopped (the chain is not queued). */
static int enqueue(eng_workers *ws, wqueue *q, eng_msg *first, eng_msg *last, size_t n) {
    pthread_mutex_lock(&q->mu);
    if (q->stop) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    last->next = NULL;
    if (q->tail)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    /* only an empty queue can have a sleeping worker: skip the futex call otherwise */
    if (q->len == 0)
        pthread_cond_signal(&q->nonempty);
    q->len += n;
    if (!q->full && q->len >= ws->bound) {
        q->full = 1;
        atomic_fetch_add(&ws->nfull, 1);
    }
    int full = q->full;
    pthread_mutex_unlock(&q->mu);
    return full;
}

int eng_workers_submit_take(eng_workers *ws, eng_msg *m) {
    wqueue *q = &ws->q[eng_topic_hash(m->topic, m->topic_len) % (uint32_t)ws->n];
    int source = m->source; /* m belongs to the worker once it is queued */
    int rc = enqueue(ws, q, m, m, 1);
    if (rc >= 0)
        atomic_fetch_add_explicit(&eng_metrics_global.messages_in[source], 1,
                                  memory_order_relaxed);
    return rc;
}

int eng_workers_submit_batch_take(eng_workers *ws, eng_msg *list) {
    /* split the chain per worker, keeping arrival order within each, then one lock each */
    enum { MAXW = 64 };
    eng_msg *first[MAXW] = {0}, *last[MAXW] = {0};
    size_t cnt[MAXW] = {0};
    uint64_t in[ENG_SRC_COUNT_] = {0};
    int nw = ws->n < MAXW ? ws->n : MAXW, full = 0;
    for (eng_msg *m = list, *nx; m; m = nx) {
        nx = m->next;
        int w = (int)(eng_topic_hash(m->topic, m->topic_len) % (uint32_t)ws->n);
        if (w >= nw) { /* more workers than the local table: queue it alone */
            full |= eng_workers_submit_take(ws, m) != 0;
            continue;
        }
        in[m->source]++;
        m->next = NULL;
        if (last[w])
            last[w]->next = m;
        else
            first[w] = m;
        last[w] = m;
        cnt[w]++;
    }
    for (int w = 0; w < nw; w++) {
        if (!cnt[w])
            continue;
        int rc = enqueue(ws, &ws->q[w], first[w], last[w], cnt[w]);
        if (rc < 0) { /* stopped: nobody will process them; a journal keeps them */
            for (eng_msg *m = first[w], *nx; m; m = nx) {
                nx = m->next;
                in[m->source]--;
                atomic_store(&m->keep, 1);
                eng_msg_free(m);
            }
        }
        full |= rc != 0;
    }
    for (int s = 0; s < ENG_SRC_COUNT_; s++)
        if (in[s])
            atomic_fetch_add_explicit(&eng_metrics_global.messages_in[s], in[s],
                                      memory_order_relaxed);
    return full ? 1 : 0;
}

int eng_workers_saturated(eng_workers *ws) {
    return atomic_load(&ws->nfull) > 0 || act_pipes_saturated();
}

int eng_workers_wait_room(eng_workers *ws, int timeout_ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    long ns = dl.tv_nsec + (long)(timeout_ms % 1000) * 1000000L;
    dl.tv_sec += timeout_ms / 1000 + ns / 1000000000L;
    dl.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&ws->room_mu);
    while (atomic_load(&ws->nfull) > 0)
        if (pthread_cond_timedwait(&ws->room, &ws->room_mu, &dl) != 0)
            break;
    pthread_mutex_unlock(&ws->room_mu);
    /* lanes draining below half do not signal: look again every few milliseconds */
    while (act_pipes_saturated()) {
        struct timespec now, nap = {0, 2000000};
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > dl.tv_sec || (now.tv_sec == dl.tv_sec && now.tv_nsec >= dl.tv_nsec))
            break;
        nanosleep(&nap, NULL);
    }
    return eng_workers_saturated(ws) ? -1 : 0;
}

/* {====== hand-off to the actions */

/* How a rule runs on a message: alone with its FROM check (Basic Ingest), alone without it
 * (its topic already matched), or on the message's shared scan (id: its place in the
 * snapshot, which is its place in the scan set). */
enum { RUN_ALONE, RUN_MATCHED, RUN_SCAN };

/* Renders each action's templates and queues the output in the action's pipeline, which
 * delivers, retries and takes the failure path (actions/pipeline.c). A rule's actions never
 * run on the worker, so a slow sink cannot slow the evaluation of other messages. */
static void run_rule(sql_exec *x, eng_rule *r, eng_msg *m, int how, uint32_t id, act_fields *fs,
                     eng_env *env) {
    const eng_config *cfg = env->cfg;
    sql_message sm;
    eng_msg_sql(m, r->name, cfg->account_id, &sm);
    sm.host = env->sqlhost.get_shadow ? &env->sqlhost : NULL;
    atomic_fetch_add_explicit(&r->matched, 1, memory_order_relaxed);
    uint64_t t0 = now_ns();
    sql_output out;
    int rc = how == RUN_SCAN      ? sql_exec_run_scan(x, id, &sm, &out)
             : how == RUN_MATCHED ? sql_exec_run_matched(x, r->prog, &sm, &out)
                                  : sql_exec_run(x, r->prog, &sm, &out);
    eng_metrics_observe_eval(now_ns() - t0);
    if (rc == SQL_NOT_FIRED)
        return;
    if (rc != SQL_FIRED) {
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        eng_log(ENG_LOG_WARN, "rule.eval_error", "rule %s on topic %s: %s", r->name, m->topic,
                sql_exec_errmsg(x));
        /* AWS drops such a message; sluice keeps it, with the error, unless told not to */
        if (cfg->dlq_eval_errors)
            eng_ingest_deadletter(env, m, r, "evaluation", sql_exec_errmsg(x), 0);
        return;
    }
    atomic_fetch_add_explicit(&r->fired, 1, memory_order_relaxed);
    /* the output must survive template evaluation: copy it once */
    char stackbuf[4096];
    char *payload = out.len <= sizeof stackbuf ? stackbuf : malloc(out.len);
    if (!payload) {
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        eng_log(ENG_LOG_ERROR, "rule.oom", "rule %s on topic %s: out of memory", r->name,
                m->topic);
        atomic_store(&m->keep, 1); /* not processed: replayed at the next start */
        return;
    }
    memcpy(payload, out.data, out.len);
    size_t plen = out.len;
    for (size_t i = 0; i < r->nactions; i++) {
        eng_action *a = &r->actions[i];
        if (m->nskip && eng_msg_done_before(m, r->name, r->revision, (int)i))
            continue; /* a replay: this pair delivered the message before the crash */
        char err[512] = "";
        if (act_render(x, a->tpl_base, a->ntpl, a->inst->wants_nulls, fs, err, sizeof err)) {
            /* a template that cannot be evaluated is a failure of this action for this
             * message: it goes down the failure path with the error */
            act_pipe_reject(a->pipe, m, payload, plen, err);
            continue;
        }
        act_pipe_submit(a->pipe, m, payload, plen, fs, 0); /* the pipeline counts outcomes */
    }
    if (payload != stackbuf)
        free(payload);
}

static void process(wctx *w, sql_exec *x, eng_msg *m, act_fields *fb) {
    eng_registry *reg = w->ws->reg;
    eng_env *env = w->ws->env;
    eng_shadows *sh = env ? env->shadows : NULL;
    if (sh && eng_shadows_is_request(m))
        eng_shadows_submit(sh, m); /* answered by the shadow threads; the rules still run */
    const eng_snapshot *s = eng_registry_acquire(reg, w->id);
    static const char ingest[] = "$aws/rules/";
    if (m->topic_len > sizeof ingest - 1 && !memcmp(m->topic, ingest, sizeof ingest - 1)) {
        /* Basic Ingest: the rule named in the topic, whatever its FROM */
        const char *name = m->topic + sizeof ingest - 1;
        size_t nl = strcspn(name, "/");
        for (uint32_t i = 0; i < s->nrules; i++)
            if (strlen(s->rules[i]->name) == nl && !memcmp(s->rules[i]->name, name, nl))
                run_rule(x, s->rules[i], m, RUN_ALONE, 0, fb, env);
    } else {
        uint32_t small[64], *ids = small;
        size_t n = eng_topic_index_match(s->index, m->topic, m->topic_len, ids, 64);
        if (n > 64) {
            ids = malloc(n * sizeof *ids);
            if (ids) {
                n = eng_topic_index_match(s->index, m->topic, m->topic_len, ids, n);
            } else { /* cannot even list its rules: replayed at the next start */
                atomic_store(&m->keep, 1);
                n = 0;
            }
        }
        /* one payload scan for all the rules that matched (DESIGN: the payload is parsed at
         * most once per message); alone when there is no scan plan or it cannot start */
        int how = RUN_MATCHED;
        if (n > 1 && s->scanset) {
            sql_message base;
            eng_msg_sql(m, NULL, env->cfg->account_id, &base);
            if (sql_exec_scan_begin(x, s->scanset, &base, ids, n) == SQL_OK)
                how = RUN_SCAN;
        }
        for (size_t i = 0; i < n; i++)
            run_rule(x, s->rules[ids[i]], m, how, ids[i], fb, env);
        if (ids && ids != small)
            free(ids);
    }
    eng_registry_release(reg, w->id);
}

/* }====== */

static void *worker_main(void *arg) {
    wctx *w = arg;
    eng_workers *ws = w->ws;
    wqueue *q = &ws->q[w->id];
    sql_exec *x = sql_exec_new();
    act_fields fb = {0};
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->len == 0 && !q->stop)
            pthread_cond_wait(&q->nonempty, &q->mu);
        if (q->len == 0) { /* stopped and drained */
            pthread_mutex_unlock(&q->mu);
            break;
        }
        /* take the whole queue at once: one lock round per burst, not per message */
        eng_msg *list = q->head;
        atomic_store_explicit(&q->held, q->len, memory_order_relaxed);
        q->head = q->tail = NULL;
        q->len = 0;
        int was_full = q->full;
        q->full = 0;
        pthread_mutex_unlock(&q->mu);
        if (was_full) {
            atomic_fetch_sub(&ws->nfull, 1);
            pthread_mutex_lock(&ws->room_mu);
            pthread_cond_broadcast(&ws->room);
            pthread_mutex_unlock(&ws->room_mu);
        }
        for (eng_msg *m = list, *nx; m; m = nx) {
            nx = m->next;
            m->next = NULL;
            if (x)
                process(w, x, m, &fb);
            eng_msg_free(m);
            atomic_fetch_sub_explicit(&q->held, 1, memory_order_relaxed);
        }
    }
    act_fields_deinit(&fb);
    sql_exec_free(x);
    free(w);
    return NULL;
}

eng_workers *eng_workers_new(const eng_config *cfg, eng_registry *reg, eng_env *env) {
    eng_workers *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->n = cfg->workers;
    ws->reg = reg;
    ws->env = env;
    ws->cfg = cfg;
    ws->bound = cfg->queue_depth > 0 ? (size_t)cfg->queue_depth : 1;
    pthread_mutex_init(&ws->room_mu, NULL);
    pthread_cond_init(&ws->room, NULL);
    ws->q = calloc((size_t)ws->n, sizeof *ws->q);
    ws->th = calloc((size_t)ws->n, sizeof *ws->th);
    if (!ws->q || !ws->th)
        goto fail;
    for (int i = 0; i < ws->n; i++) {
        pthread_mutex_init(&ws->q[i].mu, NULL);
        pthread_cond_init(&ws->q[i].nonempty, NULL);
    }
    for (int i = 0; i < ws->n; i++) {
        wctx *w = malloc(sizeof *w);
        if (!w)
            goto fail;
        w->ws = ws;
        w->id = i;
        if (pthread_create(&ws->th[i], NULL, worker_main, w) != 0) {
            free(w);
            goto fail;
        }
    }
    return ws;
fail:
    eng_log(ENG_LOG_ERROR, "workers.start", "cannot start %d workers", ws->n);
    return NULL;
}

size_t eng_workers_depth(eng_workers *ws, int w) {
    pthread_mutex_lock(&ws->q[w].mu);
    size_t n = ws->q[w].len;
    pthread_mutex_unlock(&ws->q[w].mu);
    return n + atomic_load_explicit(&ws->q[w].held, memory_order_relaxed);
}

int eng_workers_count(const eng_workers *ws) { return ws->n; }

void eng_workers_stop(eng_workers *ws) {
    for (int i = 0; i < ws->n; i++) {
        pthread_mutex_lock(&ws->q[i].mu);
        ws->q[i].stop = 1;
        pthread_cond_broadcast(&ws->q[i].nonempty);
        pthread_mutex_unlock(&ws->q[i].mu);
    }
    for (int i = 0; i < ws->n; i++)
        pthread_join(ws->th[i], NULL);
}

void eng_workers_free(eng_workers *ws) {
    if (!ws)
        return;
    for (int i = 0; i < ws->n; i++) {
        wqueue *q = &ws->q[i];
        for (eng_msg *m = q->head, *nx; m; m = nx) { /* never processed: kept for replay */
            nx = m->next;
            atomic_store(&m->keep, 1);
            eng_msg_free(m);
        }
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->nonempty);
    }
    pthread_mutex_destroy(&ws->room_mu);
    pthread_cond_destroy(&ws->room);
    free(ws->q);
    free(ws->th);
    free(ws);
}

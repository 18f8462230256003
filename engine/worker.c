/*
 * worker.c -- the evaluator pool: N threads, one bounded queue each.
 *
 * A message goes to worker hash(topic) mod N, so messages on one topic are evaluated and
 * delivered in the order they arrived. When that queue is full the submitter waits: the MQTT
 * input loop blocks inside its message callback, which stops it reading from the socket, so
 * back-pressure reaches the broker instead of memory growing or messages being dropped.
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
    pthread_cond_t nonempty, nonfull;
    eng_msg **ring; /* guarded by mu */
    size_t cap, head, len;
    int stop;
} wqueue;

struct eng_workers {
    int n;
    wqueue *q;
    pthread_t *th;
    eng_registry *reg;
    eng_env *env;
    const eng_config *cfg;
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

int eng_workers_submit_take(eng_workers *ws, eng_msg *m, int block_ms) {
    wqueue *q = &ws->q[eng_topic_hash(m->topic, m->topic_len) % (uint32_t)ws->n];
    struct timespec dl;
    if (block_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += block_ms / 1000;
        dl.tv_nsec += (long)(block_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&q->mu);
    while (q->len == q->cap && !q->stop) {
        if (block_ms < 0)
            pthread_cond_wait(&q->nonfull, &q->mu);
        else if (pthread_cond_timedwait(&q->nonfull, &q->mu, &dl) != 0)
            break;
    }
    if (q->len == q->cap || q->stop) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    int source = m->source; /* m belongs to the worker once it is queued */
    q->ring[(q->head + q->len) % q->cap] = m;
    /* only an empty queue can have a sleeping worker: skip the futex call otherwise */
    if (q->len++ == 0)
        pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
    atomic_fetch_add_explicit(&eng_metrics_global.messages_in[source], 1, memory_order_relaxed);
    return 0;
}

/* {====== hand-off to the actions */

/* Renders each action's templates and queues the output in the action's pipeline, which
 * delivers, retries and takes the failure path (actions/pipeline.c). A rule's actions never
 * run on the worker, so a slow sink cannot slow the evaluation of other messages. */
static void run_rule(sql_exec *x, eng_rule *r, eng_msg *m, int matched, act_fields *fs,
                     const eng_config *cfg) {
    sql_message sm;
    eng_msg_sql(m, r->name, cfg->account_id, &sm);
    atomic_fetch_add_explicit(&r->matched, 1, memory_order_relaxed);
    uint64_t t0 = now_ns();
    sql_output out;
    int rc = matched ? sql_exec_run_matched(x, r->prog, &sm, &out)
                     : sql_exec_run(x, r->prog, &sm, &out);
    eng_metrics_observe_eval(now_ns() - t0);
    if (rc == SQL_NOT_FIRED)
        return;
    if (rc != SQL_FIRED) {
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        eng_log(ENG_LOG_WARN, "rule.eval_error", "rule %s on topic %s: %s", r->name, m->topic,
                sql_exec_errmsg(x));
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
        return;
    }
    memcpy(payload, out.data, out.len);
    size_t plen = out.len;
    for (size_t i = 0; i < r->nactions; i++) {
        eng_action *a = &r->actions[i];
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
    const eng_snapshot *s = eng_registry_acquire(reg, w->id);
    static const char ingest[] = "$aws/rules/";
    if (m->topic_len > sizeof ingest - 1 && !memcmp(m->topic, ingest, sizeof ingest - 1)) {
        /* Basic Ingest: the rule named in the topic, whatever its FROM */
        const char *name = m->topic + sizeof ingest - 1;
        size_t nl = strcspn(name, "/");
        for (uint32_t i = 0; i < s->nrules; i++)
            if (strlen(s->rules[i]->name) == nl && !memcmp(s->rules[i]->name, name, nl))
                run_rule(x, s->rules[i], m, 0, fb, w->ws->cfg);
    } else {
        uint32_t small[64], *ids = small;
        size_t n = eng_topic_index_match(s->index, m->topic, m->topic_len, ids, 64);
        if (n > 64) {
            ids = malloc(n * sizeof *ids);
            if (ids)
                n = eng_topic_index_match(s->index, m->topic, m->topic_len, ids, n);
            else
                n = 0;
        }
        for (size_t i = 0; i < n; i++)
            run_rule(x, s->rules[ids[i]], m, 1, fb, w->ws->cfg);
        if (ids != small)
            free(ids);
    }
    eng_registry_release(reg, w->id);
}

/* }====== */

static void *worker_main(void *arg) {
    wctx *w = arg;
    wqueue *q = &w->ws->q[w->id];
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
        eng_msg *m = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        /* only a full queue can have a waiting submitter */
        if (q->len-- == q->cap)
            pthread_cond_broadcast(&q->nonfull);
        pthread_mutex_unlock(&q->mu);
        if (x)
            process(w, x, m, &fb);
        eng_msg_free(m);
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
    ws->q = calloc((size_t)ws->n, sizeof *ws->q);
    ws->th = calloc((size_t)ws->n, sizeof *ws->th);
    if (!ws->q || !ws->th)
        goto fail;
    for (int i = 0; i < ws->n; i++) {
        wqueue *q = &ws->q[i];
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->nonempty, NULL);
        pthread_cond_init(&q->nonfull, NULL);
        q->cap = (size_t)cfg->queue_depth;
        q->ring = calloc(q->cap, sizeof *q->ring);
        if (!q->ring)
            goto fail;
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
    return n;
}

int eng_workers_count(const eng_workers *ws) { return ws->n; }

void eng_workers_stop(eng_workers *ws) {
    for (int i = 0; i < ws->n; i++) {
        pthread_mutex_lock(&ws->q[i].mu);
        ws->q[i].stop = 1;
        pthread_cond_broadcast(&ws->q[i].nonempty);
        pthread_cond_broadcast(&ws->q[i].nonfull);
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
        for (size_t k = 0; k < q->len; k++)
            eng_msg_free(q->ring[(q->head + k) % q->cap]);
        free(q->ring);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->nonempty);
        pthread_cond_destroy(&q->nonfull);
    }
    free(ws->q);
    free(ws->th);
    free(ws);
}

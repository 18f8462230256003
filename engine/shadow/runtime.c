/*
 * runtime.c -- the shadow service inside `sluice serve`: where requests come from and where
 * answers go.
 *
 * MQTT requests ($aws/things/{thing}/shadow[/name/{shadow}]/{update,get,delete}) arrive through
 * the durable input like any message (journaled before their PUBACK). A worker that sees one
 * hands it to this runtime and goes on with the rules: an update blocks until it is on disk
 * (about one fsync), which must not hold up a rule evaluator, and the store's group commit gets
 * its throughput from many concurrent updates. So the runtime has its own threads, each with a
 * FIFO queue; a request goes to thread hash(thing, shadow), which keeps the requests of one
 * shadow in arrival order while different shadows proceed in parallel.
 *
 * The answers (/accepted, /rejected, /delta, /documents) are published QoS 1 through the
 * output connection; the request stays in the journal until the broker has acknowledged every
 * answer, so a crash in between replays the request (an update without a version is then
 * applied twice: at-least-once, like everything else in sluice). The answers reach the rules
 * the way AWS's do: through the broker, once, to the rules whose filters match them. Without
 * MQTT (a Kafka-only deployment) REST updates feed their messages to the rules directly.
 *
 * REST requests (the iot-data API) call eng_shadows_rest() on the API's threads, which blocks
 * like any request handler, and publish the same messages; the call returns once the broker
 * acknowledged them (up to REST_ANSWER_WAIT_MS), so a 200 means stored and announced.
 */
#include "shadow.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 16       /* concurrent writers: enough for the group commit to pay off */
#define QUEUE_MAX 4096   /* per thread; a full queue makes the submitting worker wait */

typedef struct job {
    struct job *next;
    eng_msg *m;          /* retained */
} job;

typedef struct sthread {
    pthread_mutex_t mu;
    pthread_cond_t cv, room;
    job *head, *tail;    /* guarded by mu */
    size_t len;
    int stop;
    pthread_t th;
    int started;
    struct eng_shadows *sh;
} sthread;

struct eng_shadows {
    eng_env *env;
    eng_shadow *svc;
    sthread t[THREADS];
    _Atomic uint64_t requests, rejected, publish_failed;
};

/* Several answers of one request: the request is released once all are acknowledged. A REST
 * request's caller waits for that too (wait_answers), so its 200 means the update is stored
 * and announced: should sluice die in between, the caller gets no answer and retries, as it
 * would after any lost response. Owned by the answers and, for REST, by the waiter: the last
 * one out frees it. */
typedef struct pending {
    _Atomic int left;
    _Atomic int failed;
    _Atomic int refs;
    eng_msg *m;          /* retained; NULL for a REST request */
    eng_shadows *sh;
    int rest;            /* a waiter: mu, cv and done below are set up */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;            /* every answer acknowledged or failed; mu */
} pending;

#define REST_ANSWER_WAIT_MS 5000 /* then the 200 goes anyway: the answers wait in the queue */

static void unref(pending *p) {
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    if (p->rest) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    free(p);
}

static void answer_done(void *ud, int ok, const char *err) {
    pending *p = ud;
    if (!ok) {
        atomic_store(&p->failed, 1);
        atomic_fetch_add(&p->sh->publish_failed, 1);
        eng_log(ENG_LOG_WARN, "shadow.publish_failed", "a shadow answer was not acknowledged: %s",
                err ? err : "unknown");
    }
    if (atomic_fetch_sub(&p->left, 1) != 1)
        return;
    if (p->m) {
        if (atomic_load(&p->failed))
            atomic_store(&p->m->keep, 1); /* replayed at the next start */
        eng_msg_free(p->m);
    }
    if (p->rest) {
        pthread_mutex_lock(&p->mu);
        p->done = 1;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    unref(p);
}

/* Publishes reply's messages (or, without MQTT, feeds them to the rules). in: the request's
 * message, released once everything is acknowledged (NULL for REST). For REST (rest 1) with a
 * broker, returns what to wait_answers() for; else NULL. */
static pending *publish_answers(eng_shadows *sh, eng_shadow_reply *r, eng_msg *in, int rest) {
    eng_env *env = sh->env;
    if (!r->nmsgs) {
        eng_msg_free(in);
        return NULL;
    }
    int broker = env->mqtt && !eng_mqtt_offline(env->mqtt);
    pending *p = broker ? calloc(1, sizeof *p) : NULL;
    if (broker && !p) {
        if (in)
            atomic_store(&in->keep, 1);
        eng_msg_free(in);
        return NULL;
    }
    if (p) {
        atomic_init(&p->left, (int)r->nmsgs + 1);
        atomic_init(&p->failed, 0);
        atomic_init(&p->refs, rest ? 2 : 1);
        p->m = in;
        p->sh = sh;
        if ((p->rest = rest)) {
            pthread_mutex_init(&p->mu, NULL);
            pthread_cond_init(&p->cv, NULL);
        }
    }
    for (size_t i = 0; i < r->nmsgs; i++) {
        const eng_shadow_msg *msg = &r->msgs[i];
        if (!broker) {
            eng_msg *m = eng_msg_new(msg->topic, strlen(msg->topic), msg->payload,
                                     msg->payload_len, NULL, NULL, ENG_SRC_HTTP);
            if (!m || eng_ingest_submit_take(env, m) != 0)
                eng_log(ENG_LOG_WARN, "shadow.feed_failed", "a shadow message on %s did not "
                        "reach the rules", msg->topic);
            continue;
        }
        if (eng_mqtt_publish(env->mqtt, msg->topic, msg->payload, msg->payload_len, 1, NULL, 0,
                             answer_done, p) != 0)
            answer_done(p, 0, "the output connection refused the message");
    }
    if (!p) {
        eng_msg_free(in);
        return NULL;
    }
    pending *wait = rest ? p : NULL; /* its own reference keeps it alive past the last answer */
    answer_done(p, 1, NULL); /* the +1 above: nothing completes before all are sent */
    return wait;
}

/* Waits until the broker acknowledged every answer of a REST request, up to
 * REST_ANSWER_WAIT_MS (a broker that is away: they stay queued and go out once it is back). */
static void wait_answers(pending *p) {
    if (!p)
        return;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += REST_ANSWER_WAIT_MS / 1000;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (!p->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    int done = p->done;
    pthread_mutex_unlock(&p->mu);
    if (!done)
        eng_log(ENG_LOG_WARN, "shadow.answers_pending", "a REST shadow request's MQTT messages "
                "were not acknowledged within %d ms (is the broker reachable?): answering now; "
                "they stay queued", REST_ANSWER_WAIT_MS);
    unref(p);
}

static void handle_mqtt(eng_shadows *sh, eng_msg *m) {
    eng_shadow_topic t;
    if (!eng_shadow_topic_parse(m->topic, m->topic_len, &t)) {
        eng_msg_free(m);
        return;
    }
    eng_shadow_req req = {.op = t.op,
                          .transport = ENG_SHADOW_MQTT,
                          .thing = t.thing,
                          .thing_len = t.thing_len,
                          .shadow = t.shadow,
                          .shadow_len = t.shadow_len,
                          .payload = m->payload,
                          .payload_len = m->payload_len};
    eng_shadow_reply r = {0};
    int status = eng_shadow_handle(sh->svc, &req, &r);
    atomic_fetch_add(&sh->requests, 1);
    if (status != 200)
        atomic_fetch_add(&sh->rejected, 1);
    if (status >= 500 && status != 503) {
        /* the store failed: nothing was answered durably; replay it at the next start */
        eng_log(ENG_LOG_ERROR, "shadow.store_failed", "shadow request on %s: %s", m->topic,
                r.body ? r.body : "");
    }
    publish_answers(sh, &r, m, 0);
    eng_shadow_reply_deinit(&r);
}

static void *thread_main(void *arg) {
    sthread *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (!t->head && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        job *j = t->head;
        if (!j) {
            pthread_mutex_unlock(&t->mu);
            break;
        }
        t->head = j->next;
        if (!t->head)
            t->tail = NULL;
        if (t->len-- == QUEUE_MAX)
            pthread_cond_broadcast(&t->room);
        pthread_mutex_unlock(&t->mu);
        handle_mqtt(t->sh, j->m);
        free(j);
    }
    return NULL;
}

/* hash of the thing and shadow part of a request topic, so one shadow keeps to one thread */
static uint32_t shadow_hash(const eng_msg *m) {
    eng_shadow_topic t;
    if (!eng_shadow_topic_parse(m->topic, m->topic_len, &t))
        return 0;
    uint32_t h = eng_topic_hash(t.thing, t.thing_len);
    return t.shadow ? h ^ (eng_topic_hash(t.shadow, t.shadow_len) * 31u) : h;
}

int eng_shadows_is_request(const eng_msg *m) {
    eng_shadow_topic t;
    return eng_shadow_topic_parse(m->topic, m->topic_len, &t);
}

void eng_shadows_submit(eng_shadows *sh, eng_msg *m) {
    job *j = malloc(sizeof *j);
    if (!j) {
        atomic_store(&m->keep, 1); /* unanswered: replayed at the next start */
        return;
    }
    j->next = NULL;
    j->m = eng_msg_retain(m);
    sthread *t = &sh->t[shadow_hash(m) % THREADS];
    pthread_mutex_lock(&t->mu);
    while (t->len >= QUEUE_MAX && !t->stop) /* bounded: the worker waits, the input pauses */
        pthread_cond_wait(&t->room, &t->mu);
    if (t->stop) {
        pthread_mutex_unlock(&t->mu);
        atomic_store(&m->keep, 1);
        eng_msg_free(m);
        free(j);
        return;
    }
    if (t->tail)
        t->tail->next = j;
    else
        t->head = j;
    t->tail = j;
    if (t->len++ == 0)
        pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

int eng_shadows_rest(eng_shadows *sh, const eng_shadow_req *req, eng_shadow_reply *out) {
    int status = eng_shadow_handle(sh->svc, req, out);
    atomic_fetch_add(&sh->requests, 1);
    if (status != 200)
        atomic_fetch_add(&sh->rejected, 1);
    wait_answers(publish_answers(sh, out, NULL, 1));
    return status;
}

eng_shadow *eng_shadows_service(eng_shadows *sh) { return sh->svc; }

/* get_thing_shadow() for the rules: the stored document, in the buffer the SQL library gives. */
static long sql_get_shadow(void *ud, const char *thing, const char *shadow, char *buf,
                           size_t cap) {
    eng_shadows *sh = ud;
    char *json = NULL;
    size_t len = 0;
    int rc = eng_shadow_get_document(sh->svc, thing, shadow, &json, &len);
    if (rc < 0)
        return SQL_HOST_ERROR;
    if (rc == 0)
        return SQL_HOST_NOT_FOUND;
    if (len <= cap)
        memcpy(buf, json, len);
    free(json);
    return (long)len;
}

sql_host eng_shadows_sql_host(eng_shadows *sh) {
    return (sql_host){.ud = sh, .get_shadow = sql_get_shadow};
}

void eng_shadows_stats(eng_shadows *sh, uint64_t *requests, uint64_t *rejected,
                       uint64_t *publish_failed) {
    *requests = atomic_load(&sh->requests);
    *rejected = atomic_load(&sh->rejected);
    *publish_failed = atomic_load(&sh->publish_failed);
}

eng_shadows *eng_shadows_start(eng_env *env, eng_error *e) {
    eng_shadows *sh = calloc(1, sizeof *sh);
    if (!sh) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    sh->env = env;
    /* a fleet's instances share the shadows: its store is the database (store/store.h) */
    eng_pg *pg = env->store ? eng_store_pg(env->store) : NULL;
    eng_shadow_store *st = pg ? eng_shadow_pg_open(pg, e)
                              : eng_shadow_sqlite_open(env->cfg->data_dir, NULL, e);
    if (!st || !(sh->svc = eng_shadow_new(st, NULL))) {
        if (st && !sh->svc)
            eng_error_set(e, 500, "InternalException", "out of memory");
        free(sh);
        return NULL;
    }
    for (int i = 0; i < THREADS; i++) {
        sthread *t = &sh->t[i];
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        pthread_cond_init(&t->room, NULL);
        t->sh = sh;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 1u << 20);
        t->started = pthread_create(&t->th, &a, thread_main, t) == 0;
        pthread_attr_destroy(&a);
        if (!t->started) {
            eng_error_set(e, 500, "InternalException", "cannot start the shadow threads");
            eng_shadows_stop(sh);
            return NULL;
        }
    }
    return sh;
}

void eng_shadows_stop(eng_shadows *sh) {
    if (!sh)
        return;
    for (int i = 0; i < THREADS; i++) {
        sthread *t = &sh->t[i];
        if (!t->sh)
            continue;
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_cond_broadcast(&t->cv);
        pthread_cond_broadcast(&t->room);
        pthread_mutex_unlock(&t->mu);
        if (t->started)
            pthread_join(t->th, NULL); /* drains its queue first */
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        pthread_cond_destroy(&t->room);
    }
    eng_shadow_free(sh->svc);
    free(sh);
}

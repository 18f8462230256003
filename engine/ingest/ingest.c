/*
 * ingest.c -- the way into the engine for messages that are not read by a source loop of its
 * own (an HTTP publish, the shadow service's events) and for the journal's replay at start.
 *
 * A submitted message is journaled and committed first (group commit with the MQTT input and
 * every other submitter), so a request answered 200 survives a crash like an acknowledged MQTT
 * message; then it joins the workers' queues. Replay feeds the journal's unfinished messages
 * to the workers in their original order before any source starts, waiting for room rather
 * than piling the whole backlog into memory.
 */
#include "../engine_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../actions/action.h"

int eng_ingest_submit_take(eng_env *env, eng_msg *m) {
    if (env->journal) {
        if (eng_journal_append(env->journal, m) != 0 ||
            eng_journal_commit(env->journal, m->seq) != 0) {
            eng_msg_free(m);
            return -1;
        }
    }
    if (eng_workers_submit_take(env->workers, m) < 0) {
        atomic_store(&m->keep, 1); /* stopping: it stays in the journal for the next start */
        eng_msg_free(m);
        return -1;
    }
    return 0;
}

typedef struct replay_ctx {
    eng_env *env;
    const _Atomic int *stop;
} replay_ctx;

static int replay_one(void *ud, eng_msg *m) {
    replay_ctx *r = ud;
    eng_env *env = r->env;
    while (eng_workers_saturated(env->workers) && !(r->stop && atomic_load(r->stop)))
        eng_workers_wait_room(env->workers, 100);
    if ((r->stop && atomic_load(r->stop)) || eng_workers_submit_take(env->workers, m) < 0) {
        atomic_store(&m->keep, 1);
        eng_msg_free(m);
        return -1;
    }
    return 0;
}

int eng_ingest_replay(eng_env *env, const _Atomic int *stop) {
    if (!env->journal || !eng_journal_pending_replay(env->journal))
        return 0;
    replay_ctx r = {env, stop};
    return eng_journal_replay(env->journal, replay_one, &r);
}

/* {====== dead letters that no action wrote */

static void deadletter_done(void *ud, int rc, uint64_t id) {
    eng_msg *m = ud;
    if (rc != 0) {
        atomic_store(&m->keep, 1); /* the journal keeps it for the next start */
        atomic_fetch_add(&eng_metrics_global.dropped[ENG_DROP_DLQ_WRITE], m->seq ? 0 : 1);
        eng_log(ENG_LOG_ERROR, "deadletter.write_failed", "message on %s: the dead-letter "
                "store refused it%s", m->topic, m->seq ? " (it stays in the journal)" : "");
    }
    eng_msg_free(m);
}

int eng_ingest_deadletter(eng_env *env, eng_msg *m, const eng_rule *r, const char *kind,
                          const char *error, int wait) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    const char *errs[1] = {error};
    act_dlq_record rec = {.rule = r ? r->name : "",
                          .rule_revision = r ? r->revision : 0,
                          .action_index = -2, /* not an action: the rule, or the ingest */
                          .action = kind,
                          .in = m,
                          .output = "",
                          .errors = errs,
                          .error_at = &now,
                          .nerrors = 1,
                          .attempts = 1};
    if (!env->dlq)
        return -1;
    if (wait)
        return act_dlq_append(env->dlq, &rec, NULL);
    eng_msg_retain(m);
    if (act_dlq_append_async(env->dlq, &rec, deadletter_done, m) != 0) {
        atomic_store(&m->keep, 1);
        eng_msg_free(m);
        return -1;
    }
    return 0;
}

/* }====== */

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

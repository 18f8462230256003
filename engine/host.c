/*
 * host.c -- the engine's side of the host interface (engine.h): what a rule's actions may use.
 *
 * Actions get publish (the output MQTT connection), count (a fixed set of metrics), log, and
 * the configuration values they act on, never the environment itself, so nothing an action
 * does can reach the registry, the workers or the REST API. One host per environment, filled
 * on first use (tests build an environment from a config alone); the callbacks read env when
 * they run, so a host filled before the MQTT connection exists publishes once it does.
 */
#include "engine_int.h"

static int host_publish(void *ud, const char *topic, const void *payload, size_t len, int qos,
                        const sql_mqtt_props *props, int hops, eng_publish_done_fn done,
                        void *dud) {
    eng_env *env = ud;
    if (!env->mqtt)
        return -1;
    return eng_mqtt_publish(env->mqtt, topic, payload, len, qos, props, hops, done, dud);
}

static void host_pair_done(void *ud, const eng_msg *m, const char *rule, uint64_t revision,
                           int action) {
    eng_env *env = ud;
    if (env->journal)
        eng_journal_pair_done(env->journal, m, rule, revision, action);
}

static void host_count(void *ud, eng_counter c, uint64_t n) {
    eng_metrics *m = &eng_metrics_global;
    _Atomic uint64_t *const map[ENG_COUNT_N_] = {
        [ENG_COUNT_REPUBLISH_OK] = &m->republish_ok,
        [ENG_COUNT_REPUBLISH_FAILED] = &m->republish_failed,
        [ENG_COUNT_DROP_LOOP] = &m->dropped[ENG_DROP_LOOP],
        [ENG_COUNT_DROP_DLQ_WRITE] = &m->dropped[ENG_DROP_DLQ_WRITE],
    };
    if ((unsigned)c < ENG_COUNT_N_)
        atomic_fetch_add_explicit(map[c], n, memory_order_relaxed);
}

static void host_log(void *ud, int level, const char *event, const char *msg) {
    eng_log(level, event, "%s", msg);
}

static void fill(eng_host *h, eng_env *env) {
    const eng_config *c = env->cfg;
    *h = (eng_host){
        .version = ENG_HOST_VERSION,
        .ud = env,
        .data_dir = c->data_dir,
        .account_id = c->account_id,
        .queue_depth = c->action_queue_depth,
        .retry_attempts = c->retry_attempts,
        .retry_base_ms = c->retry_base_ms,
        .retry_max_ms = c->retry_max_ms,
        .retry_total_ms = c->retry_total_ms,
        .republish_max_hops = c->republish_max_hops,
        .file_base_dir = c->file_base_dir,
        .cert_dir = c->cert_dir,
        .http_allowed_hosts = c->http_allowed_hosts,
        .http_timeout_ms = c->http_timeout_ms,
        .http_connect_timeout_ms = c->http_connect_timeout_ms,
        .http_allow_link_local = c->http_allow_link_local,
        .offline = env->offline,
        .publish = host_publish,
        .count = host_count,
        .log = host_log,
        .pair_done = host_pair_done,
        .sql = env->sqlhost.get_shadow ? &env->sqlhost : NULL,
    };
}

const eng_host *eng_env_host(eng_env *env) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    if (env->host.version == 0)
        fill(&env->host, env);
    pthread_mutex_unlock(&mu);
    return &env->host;
}

/*
 * serve.c -- `sluice serve`: configuration and the data dir's identity, then the store (the
 * data dir, or the fleet's PostgreSQL: connected and migrated), the dead-letter store in it,
 * the registry (rules loaded from the store), the ingest journal, the workers, the MQTT output
 * connection, the replay of what the journal kept from before the last stop, the MQTT input,
 * the Kafka source (when sources.kafka names topics), the REST API, and the store's watcher
 * (other instances' rule changes, this instance's heartbeat); then wait for SIGTERM or SIGINT.
 * The replay runs before the input connects, so replayed messages are processed ahead of
 * anything new on their topic.
 *
 * Shutdown drains instead of dropping: stop reading MQTT (the PUBACKs of what was journaled go
 * out), stop the Kafka source (it waits for its records in flight, commits their offsets and
 * leaves the group), stop the REST API (no new publishes), let the workers finish every queued
 * message, then drain every action pipeline (what cannot be delivered goes to the dead-letter
 * store), let the output connection send what is queued, close the journal (whatever is still
 * unfinished is replayed at the next start), and exit 0. Signals are blocked in every thread
 * and taken by the main thread with sigtimedwait(), which also gives it a once-a-second tick
 * to free old rule snapshots.
 */
#include "engine_int.h"
#include "shadow/shadow.h"
#include "store/store.h"

#include "../actions/action.h"
#include "api/api.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The rules' FROM filters, and the shadow service's request topics when it is on. Topics that
 * start with '$' go to the instance holding the fleet's lease only (store/store.c: a broker may
 * never deliver them to a shared subscription); the others unsubscribe them, their persistent
 * sessions included. */
static void filters_changed(void *ud, const char *const *filters, size_t n) {
    eng_env *env = ud;
    size_t k = 0;
    while (env->shadows && eng_shadow_request_filters[k])
        k++;
    const char **take = malloc((n + k + 1) * sizeof *take);
    const char **drop = malloc((n + k + 1) * sizeof *drop);
    if (!take || !drop) {
        free(take);
        free(drop);
        eng_log(ENG_LOG_ERROR, "mqtt.subscribe", "out of memory updating subscriptions");
        return;
    }
    int dollar = eng_store_holds_dollar(env->store);
    size_t nt = 0, nd = 0;
    for (size_t i = 0; i < n + k; i++) {
        const char *f = i < n ? filters[i] : eng_shadow_request_filters[i - n];
        if (f[0] != '$' || dollar == 1)
            take[nt++] = f;
        else if (dollar == 0)
            drop[nd++] = f;
    }
    eng_mqtt_set_filters(env->mqtt, take, nt);
    eng_mqtt_forget_filters(env->mqtt, drop, nd);
    free(take);
    free(drop);
}

static int replay(void *ud, const _Atomic int *stop) { return eng_ingest_replay(ud, stop); }

int eng_serve_main(int argc, char **argv) {
    const char *config = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "usage: sluice serve [--config FILE]\n");
            return 64;
        }
    }
    static eng_config cfg;
    char err[512];
    eng_config_defaults(&cfg);
    if ((config && eng_config_load_file(&cfg, config, err, sizeof err)) ||
        eng_config_apply_env(&cfg, err, sizeof err)) {
        fprintf(stderr, "sluice serve: %s\n", err);
        return 64;
    }
    eng_log_set_level(cfg.log_level);
    /* the secure default: nothing is opened before it passes */
    if (eng_api_check_exposure(&cfg, err, sizeof err)) {
        fprintf(stderr, "sluice serve: %s\n", err);
        return 64;
    }
    if (eng_instance_load(&cfg, err, sizeof err) != 0) {
        eng_log(ENG_LOG_ERROR, "serve.instance", "%s", err);
        fprintf(stderr, "sluice serve: %s\n", err);
        return 1;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread started below */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is a write error (EFBIG) we handle, not death */

    static eng_env env;
    env.cfg = &cfg;
    struct timespec started;
    clock_gettime(CLOCK_REALTIME, &started);
    env.started_at = (int64_t)started.tv_sec * 1000 + started.tv_nsec / 1000000;
    int rc = 1;
    eng_error e;
    memset(&e, 0, sizeof e);
    eng_admin *admin = NULL;
    /* first: rules, shadows and dead letters live in it */
    if (!(env.store = eng_store_open(&cfg, &e))) {
        eng_log(ENG_LOG_ERROR, "store.open", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
    }
    env.rules_store = eng_store_rules(env.store);
    eng_pg *pg = eng_store_pg(env.store);
    env.dlq = pg ? eng_dlq_pg_open(pg, cfg.instance_id, cfg.dlq_max_bytes, cfg.dlq_max_age_s,
                                   eng_env_host(&env), &e)
                 : act_dlq_open(cfg.data_dir, cfg.dlq_max_bytes, cfg.dlq_max_age_s,
                                eng_env_host(&env), &e);
    if (!env.dlq) {
        eng_log(ENG_LOG_ERROR, "deadletter.open", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
    }
    /* before the rules: their action pipelines record progress in it */
    if (cfg.journal_mode != ENG_JOURNAL_OFF) {
        eng_journal_opts jo = {.mode = cfg.journal_mode,
                               .interval_ms = cfg.journal_interval_ms,
                               .max_bytes = cfg.journal_max_bytes,
                               .instance = cfg.instance_hash};
        env.journal = eng_journal_open(cfg.data_dir, &jo, &e);
        if (!env.journal) {
            eng_log(ENG_LOG_ERROR, "journal.open", "%s", e.message);
            fprintf(stderr, "sluice serve: %s\n", e.message);
            goto out;
        }
    }
    if (eng_rule_closer_start() != 0)
        goto out;
    /* before the rules too: get_thing_shadow() in their templates reads it */
    if (cfg.shadows_enabled) {
        if (!(env.shadows = eng_shadows_start(&env, &e))) {
            eng_log(ENG_LOG_ERROR, "shadow.open", "%s", e.message);
            fprintf(stderr, "sluice serve: %s\n", e.message);
            goto out;
        }
        env.sqlhost = eng_shadows_sql_host(env.shadows);
    }
    env.registry = eng_registry_new(cfg.workers, &cfg, &env);
    if (!env.registry)
        goto out;
    if (eng_registry_load(env.registry, &e) != 0 ||
        (pg && eng_store_import_dir_rules(&env, &e) != 0)) {
        eng_log(ENG_LOG_ERROR, "store.load", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
    }
    size_t nrules;
    eng_rule **all = eng_registry_list(env.registry, &nrules);
    for (size_t i = 0; all && i < nrules; i++)
        eng_rule_release(all[i]);
    free(all);
    env.workers = eng_workers_new(&cfg, env.registry, &env);
    if (!env.workers)
        goto out;
    env.mqtt = eng_mqtt_new(&env);
    if (!env.mqtt)
        goto out;
    if (cfg.kafka_topics[0] &&
        !(env.kafka = eng_kafka_new(&cfg, eng_env_host(&env), env.workers, &e))) {
        eng_log(ENG_LOG_ERROR, "kafka.config", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
    }
    eng_registry_on_filters(env.registry, filters_changed, &env);
    if (eng_mqtt_start(env.mqtt) != 0)
        goto out;
    /* other instances' rule changes from now on (the registry and the filters are set up) */
    if (eng_store_start(env.store, &env, &e) != 0) {
        eng_log(ENG_LOG_ERROR, "store.watch", "%s", e.message);
        goto out;
    }
    admin = eng_admin_start(&env, &e);
    if (!admin) {
        eng_log(ENG_LOG_ERROR, "http.listen", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
    }
    /* the input thread replays what the journal kept before it connects, so the main thread
     * stays free for signals and the API answers meanwhile */
    if (eng_mqtt_start_input(env.mqtt, replay, &env) != 0 || eng_kafka_start(env.kafka) != 0)
        goto out;
    eng_log(ENG_LOG_INFO, "serve.started",
            "sluice serving on http://%s, broker %s (client id %s), %d workers, %zu rules from "
            "%s, journal %s", cfg.http_addr, cfg.mqtt_url, cfg.mqtt_client_id, cfg.workers,
            nrules, eng_store_where(env.store),
            cfg.journal_mode == ENG_JOURNAL_BATCH      ? "batch"
            : cfg.journal_mode == ENG_JOURNAL_INTERVAL ? "interval"
                                                       : "off (a crash loses what is in memory)");
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            eng_log(ENG_LOG_INFO, "serve.stopping", "signal %d: draining", sig);
            break;
        }
        eng_registry_reclaim(env.registry);
        act_dlq_expire(env.dlq);
    }
    /* the '$' topics: to another instance before this one stops taking them */
    if (eng_store_handoff(env.store, 3000) > 0)
        eng_registry_refilter(env.registry);
    eng_mqtt_stop_input(env.mqtt);
    eng_kafka_stop(env.kafka);
    eng_admin_stop(admin);
    admin = NULL;
    eng_workers_stop(env.workers);
    eng_shadows_stop(env.shadows); /* answers what the workers handed over */
    env.shadows = NULL;
    rc = 0;
out:
    eng_admin_stop(admin);
    eng_store_stop(env.store); /* the watcher applies changes through the registry */
    eng_kafka_stop(env.kafka);
    if (env.workers && rc != 0)
        eng_workers_stop(env.workers);
    eng_shadows_stop(env.shadows);
    /* freeing the rules drains every action pipeline; republish still needs the broker
     * connection then, and failures still need the dead-letter store */
    eng_registry_free(env.registry);
    eng_rule_closer_stop(); /* every rule's pipelines drained, with the broker still there */
    eng_mqtt_free(env.mqtt);
    eng_workers_free(env.workers);
    eng_kafka_free(env.kafka); /* after every record it handed out was released */
    eng_journal_close(env.journal);
    act_dlq_close(env.dlq);
    eng_store_close(env.store); /* last: the dead letters and shadows used its connections */
    if (rc == 0)
        eng_log(ENG_LOG_INFO, "serve.stopped", "all queued messages processed");
    return rc;
}

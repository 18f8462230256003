/*
 * serve.c -- `sluice serve`: configuration and the data dir's identity, then the registry
 * (rules loaded from the store), the ingest journal, the workers, the MQTT output connection,
 * the replay of what the journal kept from before the last stop, the MQTT input, the Kafka
 * source (when sources.kafka names topics), and the REST API; then wait for SIGTERM or SIGINT.
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

#include "../actions/action.h"
#include "api/api.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The rules' FROM filters, and the shadow service's request topics when it is on. */
static void filters_changed(void *ud, const char *const *filters, size_t n) {
    eng_env *env = ud;
    if (!env->shadows) {
        eng_mqtt_set_filters(env->mqtt, filters, n);
        return;
    }
    size_t k = 0;
    while (eng_shadow_request_filters[k])
        k++;
    const char **all = malloc((n + k) * sizeof *all);
    if (!all) {
        eng_mqtt_set_filters(env->mqtt, filters, n);
        return;
    }
    memcpy(all, filters, n * sizeof *all);
    memcpy(all + n, eng_shadow_request_filters, k * sizeof *all);
    eng_mqtt_set_filters(env->mqtt, all, n + k);
    free(all);
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
    int rc = 1;
    eng_error e;
    memset(&e, 0, sizeof e);
    eng_admin *admin = NULL;
    env.dlq = act_dlq_open(cfg.data_dir, cfg.dlq_max_bytes, cfg.dlq_max_age_s,
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
    if (eng_registry_load(env.registry, &e) != 0) {
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
            nrules, cfg.data_dir,
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
    if (rc == 0)
        eng_log(ENG_LOG_INFO, "serve.stopped", "all queued messages processed");
    return rc;
}

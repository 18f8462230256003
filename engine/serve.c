/*
 * serve.c -- `sluice serve`: configuration, then the registry (rules loaded from the store),
 * the workers, the MQTT connections and the REST API, then wait for SIGTERM or SIGINT.
 *
 * Shutdown drains instead of dropping: stop reading MQTT, stop the REST API (no new
 * publishes), let the workers finish every queued message, then drain every action pipeline
 * (what cannot be delivered goes to the dead-letter store), let the output connection send
 * what is queued, and exit 0. Signals are blocked in every thread and taken by the main
 * thread with sigtimedwait(), which also gives it a once-a-second tick to free old rule
 * snapshots.
 */
#include "engine_int.h"

#include "../actions/action.h"
#include "api/api.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void filters_changed(void *ud, const char *const *filters, size_t n) {
    eng_mqtt_set_filters(ud, filters, n);
}

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

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread started below */
    signal(SIGPIPE, SIG_IGN);

    static eng_env env;
    env.cfg = &cfg;
    int rc = 1;
    eng_error e;
    memset(&e, 0, sizeof e);
    eng_admin *admin = NULL;
    env.dlq = act_dlq_open(cfg.data_dir, cfg.dlq_max_bytes, cfg.dlq_max_age_s, &e);
    if (!env.dlq) {
        eng_log(ENG_LOG_ERROR, "deadletter.open", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
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
    env.mqtt = eng_mqtt_new(&cfg, env.workers);
    if (!env.mqtt)
        goto out;
    eng_registry_on_filters(env.registry, filters_changed, env.mqtt);
    if (eng_mqtt_start(env.mqtt) != 0)
        goto out;
    admin = eng_admin_start(&env, &e);
    if (!admin) {
        eng_log(ENG_LOG_ERROR, "http.listen", "%s", e.message);
        fprintf(stderr, "sluice serve: %s\n", e.message);
        goto out;
    }
    eng_log(ENG_LOG_INFO, "serve.started",
            "sluice serving on http://%s, broker %s, %d workers, %zu rules from %s",
            cfg.http_addr, cfg.mqtt_url, cfg.workers, nrules, cfg.data_dir);
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
    eng_admin_stop(admin);
    admin = NULL;
    eng_workers_stop(env.workers);
    rc = 0;
out:
    eng_admin_stop(admin);
    if (env.workers && rc != 0)
        eng_workers_stop(env.workers);
    /* freeing the rules drains every action pipeline; republish still needs the broker
     * connection then, and failures still need the dead-letter store */
    eng_registry_free(env.registry);
    eng_mqtt_free(env.mqtt);
    eng_workers_free(env.workers);
    act_dlq_close(env.dlq);
    if (rc == 0)
        eng_log(ENG_LOG_INFO, "serve.stopped", "all queued messages processed");
    return rc;
}

/*
 * routes_ops.c -- what operators and orchestrators call: GET /healthz (the process answers),
 * GET /readyz (the broker connection is up), GET /metrics (Prometheus text format: messages
 * in and dropped, worker queues, evaluation latency, per-rule and per-action counters, the
 * dead-letter store).
 */
#include "api_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actions/action.h"
#include "../store/store.h"

void eng_api__health(eng_api_call *c, eng_api_response *rs) {
    eng_api__reply(rs, 200, "text/plain", "ok\n", 3);
}

void eng_api__ready(eng_api_call *c, eng_api_response *rs) {
    if (c->env->mqtt && eng_mqtt_connected(c->env->mqtt))
        eng_api__reply(rs, 200, "text/plain", "ready\n", 6);
    else
        eng_api__reply(rs, 503, "text/plain", "broker not connected\n", 21);
}

/* One series per action of each rule: {rule, action (type), index ("error" for the error
 * action)}. */
static void put_action_metrics(FILE *f, eng_rule **v, size_t n) {
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } counters[] = {
        {"sluice_action_delivered_total", "counter", "Messages the action delivered.",
         offsetof(act_pipe_stats, delivered)},
        {"sluice_action_failed_total", "counter",
         "Messages that took the failure path (error action or dead letters).",
         offsetof(act_pipe_stats, failed)},
        {"sluice_action_retries_total", "counter", "Delivery attempts retried.",
         offsetof(act_pipe_stats, retries)},
        {"sluice_action_overflow_total", "counter",
         "Messages that found the action's queue full (they took the failure path).",
         offsetof(act_pipe_stats, overflow)},
        {"sluice_action_batches_total", "counter", "Calls to the sink.",
         offsetof(act_pipe_stats, batches)},
        {"sluice_action_batch_messages_total", "counter",
         "Messages in those calls (divided by batches: the mean batch size).",
         offsetof(act_pipe_stats, batch_msgs)},
        {"sluice_action_deferred_total", "counter",
         "Messages left in the journal at a shutdown while the sink failed (retried at the "
         "next start).",
         offsetof(act_pipe_stats, deferred)},
    };
    /* every action of every rule, with its labels, once */
    size_t na = 0;
    for (size_t i = 0; v && i < n; i++)
        na += v[i]->nactions + 1;
    struct series {
        const act_pipe_stats *st;
        act_pipe *pipe;
        char lbl[300];
    } *s = calloc(na ? na : 1, sizeof *s);
    if (!s)
        return;
    na = 0;
    for (size_t i = 0; v && i < n; i++)
        for (size_t k = 0; k <= v[i]->nactions; k++) {
            eng_action *a = k < v[i]->nactions ? &v[i]->actions[k] : &v[i]->error_action;
            if (!a->pipe)
                continue;
            char idx[24];
            snprintf(idx, sizeof idx, k < v[i]->nactions ? "%zu" : "error", k);
            snprintf(s[na].lbl, sizeof s[na].lbl, "rule=\"%s\",action=\"%s\",index=\"%s\"",
                     v[i]->name, a->vt->name, idx);
            s[na].pipe = a->pipe;
            s[na++].st = act_pipe_stats_of(a->pipe);
        }
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", counters[c].name, counters[c].help,
                counters[c].name, counters[c].type);
        for (size_t i = 0; i < na; i++) {
            const _Atomic uint64_t *x =
                (const _Atomic uint64_t *)((const char *)s[i].st + counters[c].off);
            fprintf(f, "%s{%s} %llu\n", counters[c].name, s[i].lbl,
                    (unsigned long long)atomic_load(x));
        }
    }
    fprintf(f, "# HELP sluice_action_queue_depth Messages queued or in delivery.\n"
               "# TYPE sluice_action_queue_depth gauge\n");
    for (size_t i = 0; i < na; i++)
        fprintf(f, "sluice_action_queue_depth{%s} %zu\n", s[i].lbl, act_pipe_depth(s[i].pipe));
    fprintf(f, "# HELP sluice_action_delivery_seconds From queueing to delivery.\n"
               "# TYPE sluice_action_delivery_seconds histogram\n");
    for (size_t i = 0; i < na; i++) {
        uint64_t cum = 0;
        for (int b = 0; b < ACT_LAT_BUCKETS; b++) {
            cum += atomic_load(&s[i].st->latency[b]);
            fprintf(f, "sluice_action_delivery_seconds_bucket{%s,le=\"%g\"} %llu\n", s[i].lbl,
                    (double)(1u << b) / 1e6, (unsigned long long)cum);
        }
        cum += atomic_load(&s[i].st->latency[ACT_LAT_BUCKETS]);
        fprintf(f, "sluice_action_delivery_seconds_bucket{%s,le=\"+Inf\"} %llu\n"
                   "sluice_action_delivery_seconds_sum{%s} %.9f\n"
                   "sluice_action_delivery_seconds_count{%s} %llu\n",
                s[i].lbl, (unsigned long long)cum, s[i].lbl,
                (double)atomic_load(&s[i].st->latency_sum_ns) / 1e9, s[i].lbl,
                (unsigned long long)cum);
    }
    free(s);
}

/* The ingest journal, the subscriptions and the shadow service. */
static void put_ingest_metrics(FILE *f, eng_env *env) {
    if (env->journal) {
        eng_journal_stats js;
        eng_journal_stats_get(env->journal, &js);
        fprintf(f, "# HELP sluice_journal_unfinished Journaled messages some action is not done "
                   "with (0 once everything is delivered).\n"
                   "# TYPE sluice_journal_unfinished gauge\nsluice_journal_unfinished %llu\n"
                   "# TYPE sluice_journal_bytes gauge\nsluice_journal_bytes %llu\n"
                   "# TYPE sluice_journal_max_bytes gauge\nsluice_journal_max_bytes %llu\n"
                   "# TYPE sluice_journal_segments gauge\nsluice_journal_segments %llu\n"
                   "# TYPE sluice_journal_appended_total counter\n"
                   "sluice_journal_appended_total %llu\n"
                   "# TYPE sluice_journal_syncs_total counter\nsluice_journal_syncs_total %llu\n"
                   "# TYPE sluice_journal_replayed_total counter\n"
                   "sluice_journal_replayed_total %llu\n"
                   "# HELP sluice_journal_damaged_total Damaged places skipped at recovery.\n"
                   "# TYPE sluice_journal_damaged_total counter\n"
                   "sluice_journal_damaged_total %llu\n"
                   "# TYPE sluice_journal_write_errors_total counter\n"
                   "sluice_journal_write_errors_total %llu\n"
                   "# HELP sluice_journal_failed 1 while the journal cannot write (input "
                   "paused).\n# TYPE sluice_journal_failed gauge\nsluice_journal_failed %d\n",
                (unsigned long long)js.unfinished, (unsigned long long)js.live_bytes,
                (unsigned long long)js.max_bytes, (unsigned long long)js.segments,
                (unsigned long long)js.appended, (unsigned long long)js.syncs,
                (unsigned long long)js.replayed, (unsigned long long)js.corrupt,
                (unsigned long long)js.write_errors, js.failed);
    }
    if (env->mqtt)
        fprintf(f, "# HELP sluice_subscriptions_refused_total SUBACKs that refused a rule's "
                   "topic filter.\n# TYPE sluice_subscriptions_refused_total counter\n"
                   "sluice_subscriptions_refused_total %llu\n",
                (unsigned long long)eng_mqtt_refused(env->mqtt));
    if (env->mqtt)
        fprintf(f, "# HELP sluice_unsubscribes_pending Topic filters no rule wants that the "
                   "broker has not yet confirmed unsubscribed.\n"
                   "# TYPE sluice_unsubscribes_pending gauge\nsluice_unsubscribes_pending %zu\n",
                eng_mqtt_unsubscribes_pending(env->mqtt));
    if (env->shadows) {
        uint64_t rq, rj, pf;
        eng_shadows_stats(env->shadows, &rq, &rj, &pf);
        fprintf(f, "# HELP sluice_shadow_requests_total Shadow get/update/delete requests "
                   "(MQTT and REST).\n# TYPE sluice_shadow_requests_total counter\n"
                   "sluice_shadow_requests_total %llu\n"
                   "# TYPE sluice_shadow_rejected_total counter\n"
                   "sluice_shadow_rejected_total %llu\n"
                   "# HELP sluice_shadow_publish_failed_total Shadow answers the broker did not "
                   "acknowledge.\n# TYPE sluice_shadow_publish_failed_total counter\n"
                   "sluice_shadow_publish_failed_total %llu\n",
                (unsigned long long)rq, (unsigned long long)rj, (unsigned long long)pf);
    }
}

void eng_api__metrics(eng_api_call *c, eng_api_response *rs) {
    eng_env *env = c->env;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        eng_api__fail(rs, 500, "InternalException", "out of memory");
        return;
    }
    eng_metrics *m = &eng_metrics_global;
    fprintf(f, "# HELP sluice_messages_in_total Messages received, by source.\n"
               "# TYPE sluice_messages_in_total counter\n"
               "sluice_messages_in_total{source=\"mqtt\"} %llu\n"
               "sluice_messages_in_total{source=\"http\"} %llu\n"
               "sluice_messages_in_total{source=\"kafka\"} %llu\n",
            (unsigned long long)atomic_load(&m->messages_in[ENG_SRC_MQTT]),
            (unsigned long long)atomic_load(&m->messages_in[ENG_SRC_HTTP]),
            (unsigned long long)atomic_load(&m->messages_in[ENG_SRC_KAFKA]));
    if (env->kafka)
        eng_kafka_metrics(env->kafka, f);
    static const char *const reasons[] = {"queue_full", "republish_loop", "too_large",
                                          "deadletter_write"}; /* ORDER ENG_DROP_* */
    _Static_assert(sizeof reasons / sizeof reasons[0] == ENG_DROP_COUNT_, "reasons");
    fprintf(f, "# HELP sluice_dropped_total Messages not processed, by reason.\n"
               "# TYPE sluice_dropped_total counter\n");
    for (int i = 0; i < ENG_DROP_COUNT_; i++)
        fprintf(f, "sluice_dropped_total{reason=\"%s\"} %llu\n", reasons[i],
                (unsigned long long)atomic_load(&m->dropped[i]));
    if (env->store) /* the shared store (store/store.h) */
        fprintf(f, "# HELP sluice_store_connected 1 while the store can be reached.\n"
                   "# TYPE sluice_store_connected gauge\nsluice_store_connected %d\n"
                   "# HELP sluice_store_lease 1 when this instance takes the '$' topics of its "
                   "group (shadow requests, rules on $aws/...), 0 when another does, -1 not "
                   "known yet.\n# TYPE sluice_store_lease gauge\nsluice_store_lease %d\n",
                eng_store_connected(env->store), eng_store_holds_dollar(env->store));
    fprintf(f, "# HELP sluice_republish_total Republished messages, by result.\n"
               "# TYPE sluice_republish_total counter\n"
               "sluice_republish_total{result=\"ok\"} %llu\n"
               "sluice_republish_total{result=\"failed\"} %llu\n",
            (unsigned long long)atomic_load(&m->republish_ok),
            (unsigned long long)atomic_load(&m->republish_failed));
    fprintf(f, "# HELP sluice_queue_depth Messages waiting, per worker.\n"
               "# TYPE sluice_queue_depth gauge\n");
    for (int w = 0; w < eng_workers_count(env->workers); w++)
        fprintf(f, "sluice_queue_depth{worker=\"%d\"} %zu\n", w, eng_workers_depth(env->workers, w));
    fprintf(f, "# HELP sluice_eval_latency_seconds Time to evaluate one rule on one message.\n"
               "# TYPE sluice_eval_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < ENG_LAT_BUCKETS; b++) {
        cum += atomic_load(&m->eval_latency[b]);
        fprintf(f, "sluice_eval_latency_seconds_bucket{le=\"%g\"} %llu\n", (double)(1u << b) / 1e6,
                (unsigned long long)cum);
    }
    cum += atomic_load(&m->eval_latency[ENG_LAT_BUCKETS]);
    fprintf(f, "sluice_eval_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
               "sluice_eval_latency_seconds_sum %.9f\n"
               "sluice_eval_latency_seconds_count %llu\n",
            (unsigned long long)cum, (double)atomic_load(&m->eval_latency_sum_ns) / 1e9,
            (unsigned long long)atomic_load(&m->eval_latency_count));
    size_t n;
    eng_rule **v = eng_registry_list(env->registry, &n);
    fprintf(f, "# HELP sluice_rule_matched_total Messages whose topic matched the rule.\n"
               "# TYPE sluice_rule_matched_total counter\n");
    for (size_t i = 0; v && i < n; i++)
        fprintf(f, "sluice_rule_matched_total{rule=\"%s\"} %llu\n", v[i]->name,
                (unsigned long long)atomic_load(&v[i]->matched));
    fprintf(f, "# TYPE sluice_rule_fired_total counter\n");
    for (size_t i = 0; v && i < n; i++)
        fprintf(f, "sluice_rule_fired_total{rule=\"%s\"} %llu\n", v[i]->name,
                (unsigned long long)atomic_load(&v[i]->fired));
    fprintf(f, "# TYPE sluice_rule_errors_total counter\n");
    for (size_t i = 0; v && i < n; i++)
        fprintf(f, "sluice_rule_errors_total{rule=\"%s\"} %llu\n", v[i]->name,
                (unsigned long long)atomic_load(&v[i]->errors));
    put_action_metrics(f, v, n);
    fprintf(f, "# HELP sluice_http_refused_total REST requests refused by authentication, by "
               "reason.\n# TYPE sluice_http_refused_total counter\n");
    for (int code = ENG_AUTH_E_MISSING; code > -ENG_AUTH_COUNT_; code--)
        fprintf(f, "sluice_http_refused_total{reason=\"%s\"} %llu\n", eng_auth_label(code),
                (unsigned long long)eng_auth_refused(code));
    act_dlq_stats ds = {0};
    if (env->dlq)
        act_dlq_stats_get(env->dlq, &ds);
    fprintf(f, "# HELP sluice_deadletter_records Dead letters in the store.\n"
               "# TYPE sluice_deadletter_records gauge\n"
               "sluice_deadletter_records %llu\n"
               "# TYPE sluice_deadletter_bytes gauge\n"
               "sluice_deadletter_bytes %llu\n"
               "# TYPE sluice_deadletter_appended_total counter\n"
               "sluice_deadletter_appended_total %llu\n"
               "# HELP sluice_deadletter_evicted_total Dead letters evicted by the size or age "
               "bound.\n"
               "# TYPE sluice_deadletter_evicted_total counter\n"
               "sluice_deadletter_evicted_total %llu\n"
               "# TYPE sluice_deadletter_resolved_total counter\n"
               "sluice_deadletter_resolved_total %llu\n"
               "# TYPE sluice_deadletter_write_errors_total counter\n"
               "sluice_deadletter_write_errors_total %llu\n",
            (unsigned long long)ds.records, (unsigned long long)ds.bytes,
            (unsigned long long)ds.appended, (unsigned long long)ds.evicted,
            (unsigned long long)ds.resolved, (unsigned long long)ds.write_errors);
    put_ingest_metrics(f, c->env);
    for (size_t i = 0; v && i < n; i++)
        eng_rule_release(v[i]);
    free(v);
    if (fclose(f) != 0) {
        free(buf);
        eng_api__fail(rs, 500, "InternalException", "out of memory");
        return;
    }
    eng_api_response_deinit(rs);
    rs->status = 200;
    rs->content_type = "text/plain; version=0.0.4";
    rs->body = buf;
    rs->body_len = len;
}


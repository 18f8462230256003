/*
 * admin.c -- the REST API (libmicrohttpd): AWS IoT's topic-rule API, the iot-data Publish
 * call, metrics and health.
 *
 *   POST   /rules/{name}            CreateTopicRule (body: topicRulePayload)
 *   GET    /rules/{name}            GetTopicRule
 *   GET    /rules?topic=&maxResults=&nextToken=&ruleDisabled=      ListTopicRules
 *   PATCH  /rules/{name}            ReplaceTopicRule
 *   DELETE /rules/{name}            DeleteTopicRule
 *   POST   /rules/{name}/enable     EnableTopicRule       POST /rules/{name}/disable
 *   POST   /topics/{topic}?qos=     Publish (the topic arrives percent-encoded)
 *   GET    /deadletter?rule=&since=&limit=&nextToken=     list dead letters (extension)
 *   POST   /deadletter/redrive      body {"rule"} or {"ids"}: re-send through the failed action
 *   DELETE /deadletter?rule=        purge
 *   GET    /metrics  /healthz  /readyz
 *
 * Errors have AWS's shape (status, x-amzn-ErrorType header, {"message"}), which is what the AWS
 * CLI and SDKs parse; SqlParseException also carries line, column, offset and length. With an
 * admin token configured, every call but the health checks needs "Authorization: Bearer
 * <token>", compared in constant time. Request bodies are bounded (256 KiB for rules, 128 KiB
 * for a publish) before they are buffered.
 */
#include "engine_int.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../actions/action.h"

#define MAX_BODY (256u * 1024u)

struct eng_admin {
    struct MHD_Daemon *d;
    eng_env *env;
};

typedef struct req {
    char *body;
    size_t len, cap;
    int too_large;
} req;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                             const char *body, size_t len, const char *errtype) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (errtype)
        MHD_add_response_header(r, "x-amzn-ErrorType", errtype);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, const char *json) {
    return reply(c, status, "application/json", json, strlen(json), NULL);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, const eng_error *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", e->message);
    if (e->has_diag) {
        cJSON_AddStringToObject(o, "code", sql_status_name(e->diag.code));
        cJSON_AddNumberToObject(o, "line", e->diag.line);
        cJSON_AddNumberToObject(o, "column", e->diag.col);
        cJSON_AddNumberToObject(o, "offset", e->diag.offset);
        cJSON_AddNumberToObject(o, "length", e->diag.len);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    enum MHD_Result rc = reply(c, (unsigned)e->status, "application/json", s ? s : "{}",
                               s ? strlen(s) : 2, e->type);
    free(s);
    return rc;
}

static enum MHD_Result fail(struct MHD_Connection *c, int status, const char *type,
                            const char *msg) {
    eng_error e;
    memset(&e, 0, sizeof e);
    eng_error_set(&e, status, type, "%s", msg);
    return reply_error(c, &e);
}

static int token_ok(const eng_config *cfg, struct MHD_Connection *c) {
    if (!cfg->admin_token[0])
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *got = h + 7, *want = cfg->admin_token;
    size_t gl = strlen(got), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++) /* constant time in the token's length */
        diff |= (unsigned char)(want[i] ^ (i < gl ? got[i] : 0));
    return diff == 0;
}

/* {====== rules */

static enum MHD_Result get_rule(eng_env *env, struct MHD_Connection *c, const char *name) {
    eng_rule *r = eng_registry_get(env->registry, name);
    if (!r) {
        char msg[200];
        snprintf(msg, sizeof msg, "rule %.128s does not exist", name);
        return fail(c, 404, "ResourceNotFoundException", msg);
    }
    char *s = eng_rule_describe(r, env->cfg);
    eng_rule_release(r);
    enum MHD_Result rc = s ? reply_json(c, 200, s) : fail(c, 500, "InternalException", "oom");
    free(s);
    return rc;
}

static enum MHD_Result list_rules(eng_env *env, struct MHD_Connection *c) {
    const char *topic = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "topic");
    const char *maxs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "maxResults");
    const char *next = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "nextToken");
    const char *dis = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ruleDisabled");
    long max = maxs ? strtol(maxs, NULL, 10) : 1000;
    if (max < 1 || max > 10000)
        return fail(c, 400, "InvalidRequestException", "maxResults must be from 1 to 10000");
    size_t n;
    eng_rule **v = eng_registry_list(env->registry, &n);
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "rules");
    long count = 0;
    const char *last = NULL;
    for (size_t i = 0; v && i < n; i++) {
        eng_rule *r = v[i];
        const char *f = sql_program_topic_filter(r->prog);
        if (next && strcmp(r->name, next) <= 0)
            continue; /* the token is the last name of the previous page */
        if (topic && strcmp(f, topic) != 0)
            continue;
        if (dis && (!strcmp(dis, "true")) != r->disabled)
            continue;
        if (count == max) {
            cJSON_AddStringToObject(out, "nextToken", last);
            break;
        }
        char arn[256];
        snprintf(arn, sizeof arn, "arn:aws:iot:%s:%s:rule/%s", env->cfg->region,
                 env->cfg->account_id, r->name);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ruleArn", arn);
        cJSON_AddStringToObject(o, "ruleName", r->name);
        cJSON_AddStringToObject(o, "topicPattern", f);
        cJSON_AddNumberToObject(o, "createdAt", (double)r->created_at);
        cJSON_AddBoolToObject(o, "ruleDisabled", r->disabled);
        cJSON_AddItemToArray(arr, o);
        last = r->name;
        count++;
    }
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    for (size_t i = 0; v && i < n; i++)
        eng_rule_release(v[i]);
    free(v);
    enum MHD_Result rc = reply_json(c, 200, s ? s : "{\"rules\":[]}");
    free(s);
    return rc;
}

static enum MHD_Result put_rule(eng_env *env, struct MHD_Connection *c, const char *name,
                                req *q, int replace) {
    eng_error e;
    eng_rule *r = eng_rule_new(name, q->body ? q->body : "", q->len, env, &e);
    if (!r)
        return reply_error(c, &e);
    int rc = replace ? eng_registry_replace(env->registry, r, &e)
                     : eng_registry_create(env->registry, r, &e);
    if (rc)
        return reply_error(c, &e);
    eng_log(ENG_LOG_INFO, replace ? "rule.replaced" : "rule.created", "rule %s", name);
    return reply_json(c, 200, "{}");
}

/* }====== */

/* {====== metrics */

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

static enum MHD_Result deadletter(eng_env *env, struct MHD_Connection *c, const char *url,
                                  const char *method, req *q) {
    if (!env->dlq)
        return fail(c, 503, "ServiceUnavailableException", "no dead-letter store");
    const char *rule = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "rule");
    if (!strcmp(url, "/deadletter/redrive")) {
        if (strcmp(method, "POST"))
            return fail(c, 405, "InvalidRequestException", "use POST");
        eng_error e;
        memset(&e, 0, sizeof e);
        char *s = eng_redrive(env, q->body, q->len, &e);
        if (!s)
            return reply_error(c, &e);
        enum MHD_Result rc = reply_json(c, 200, s);
        free(s);
        return rc;
    }
    if (strcmp(url, "/deadletter") && strcmp(url, "/deadletter/"))
        return fail(c, 404, "ResourceNotFoundException", "no such route");
    if (!strcmp(method, "DELETE")) {
        long n = act_dlq_purge(env->dlq, rule && *rule ? rule : NULL);
        char s[64];
        snprintf(s, sizeof s, "{\"purged\":%ld}", n);
        eng_log(ENG_LOG_INFO, "deadletter.purged", "%ld dead letters purged%s%s", n,
                rule ? " of rule " : "", rule ? rule : "");
        return reply_json(c, 200, s);
    }
    if (strcmp(method, "GET"))
        return fail(c, 405, "InvalidRequestException", "method not allowed");
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *next = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "nextToken");
    char *end;
    long long sms = since ? strtoll(since, &end, 10) : 0;
    if (since && (*end || sms < 0))
        return fail(c, 400, "InvalidRequestException",
                    "since must be a time in milliseconds since the epoch");
    long limit = lim ? strtol(lim, &end, 10) : 100;
    if (lim && (*end || limit < 1 || limit > 1000))
        return fail(c, 400, "InvalidRequestException", "limit must be from 1 to 1000");
    unsigned long long after = next ? strtoull(next, NULL, 10) : 0;
    char *s = act_dlq_list_json(env->dlq, rule && *rule ? rule : NULL, sms, (size_t)limit, after);
    enum MHD_Result rc = s ? reply_json(c, 200, s) : fail(c, 500, "InternalException", "oom");
    free(s);
    return rc;
}

static void put_metrics(eng_env *env, char **out, size_t *outlen) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        *out = NULL;
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
    for (size_t i = 0; v && i < n; i++)
        eng_rule_release(v[i]);
    free(v);
    fclose(f);
    *out = buf;
    *outlen = len;
}

/* }====== */

static enum MHD_Result publish(eng_env *env, struct MHD_Connection *c, const char *topic,
                               req *q) {
    if (!*topic || strchr(topic, '+') || strchr(topic, '#'))
        return fail(c, 400, "InvalidRequestException", "invalid topic");
    if (q->len > SQL_MAX_PAYLOAD)
        return fail(c, 413, "RequestEntityTooLargeException", "payload is larger than 128 KB");
    const char *qs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "qos");
    if (qs && strcmp(qs, "0") && strcmp(qs, "1"))
        return fail(c, 400, "InvalidRequestException", "qos must be 0 or 1");
    eng_msg *m = eng_msg_new(topic, strlen(topic), q->body ? q->body : "", q->len, NULL, NULL,
                             ENG_SRC_HTTP);
    if (!m)
        return fail(c, 500, "InternalException", "out of memory");
    m->qos = qs ? atoi(qs) : 0;
    /* a saturated engine answers 503 before taking the message, rather than queue without
     * bound; once taken, it is journaled before the 200 */
    if (eng_workers_saturated(env->workers) && eng_workers_wait_room(env->workers, 5000) != 0) {
        eng_msg_free(m);
        return fail(c, 503, "ServiceUnavailableException", "the engine is saturated; retry");
    }
    if (eng_ingest_submit_take(env, m) != 0)
        return fail(c, 503, "ServiceUnavailableException",
                    "the ingest journal cannot write; retry");
    return reply_json(c, 200, "{}");
}

static enum MHD_Result route(eng_env *env, struct MHD_Connection *c, const char *url,
                             const char *method, req *q) {
    if (!strcmp(url, "/healthz"))
        return reply(c, 200, "text/plain", "ok\n", 3, NULL);
    if (!strcmp(url, "/readyz")) {
        int ok = env->mqtt && eng_mqtt_connected(env->mqtt);
        return ok ? reply(c, 200, "text/plain", "ready\n", 6, NULL)
                  : reply(c, 503, "text/plain", "broker not connected\n", 21, NULL);
    }
    if (!token_ok(env->cfg, c))
        return fail(c, 401, "UnauthorizedException", "a valid bearer token is required");
    if (q->too_large)
        return fail(c, 413, "RequestEntityTooLargeException", "request body is too large");
    if (!strcmp(url, "/metrics") && !strcmp(method, "GET")) {
        char *s;
        size_t n;
        put_metrics(env, &s, &n);
        enum MHD_Result rc = s ? reply(c, 200, "text/plain; version=0.0.4", s, n, NULL)
                               : fail(c, 500, "InternalException", "oom");
        free(s);
        return rc;
    }
    if (!strncmp(url, "/topics/", 8)) {
        if (strcmp(method, "POST"))
            return fail(c, 405, "InvalidRequestException", "use POST to publish");
        return publish(env, c, url + 8, q);
    }
    if (!strcmp(url, "/rules") || !strcmp(url, "/rules/")) {
        if (strcmp(method, "GET"))
            return fail(c, 405, "InvalidRequestException", "method not allowed");
        return list_rules(env, c);
    }
    if (!strncmp(url, "/rules/", 7)) {
        char name[200];
        const char *rest = url + 7;
        size_t nl = strcspn(rest, "/");
        if (nl >= sizeof name)
            return fail(c, 400, "InvalidRequestException", "rule name is too long");
        memcpy(name, rest, nl);
        name[nl] = '\0';
        const char *sub = rest + nl;
        eng_error e;
        memset(&e, 0, sizeof e);
        if (!strcmp(sub, "/enable") || !strcmp(sub, "/disable")) {
            if (strcmp(method, "POST"))
                return fail(c, 405, "InvalidRequestException", "use POST");
            int en = !strcmp(sub, "/enable");
            if (eng_registry_set_enabled(env->registry, name, en, &e))
                return reply_error(c, &e);
            eng_log(ENG_LOG_INFO, en ? "rule.enabled" : "rule.disabled", "rule %s", name);
            return reply_json(c, 200, "{}");
        }
        if (*sub && strcmp(sub, "/"))
            return fail(c, 404, "ResourceNotFoundException", "no such route");
        if (!strcmp(method, "GET"))
            return get_rule(env, c, name);
        if (!strcmp(method, "POST"))
            return put_rule(env, c, name, q, 0);
        if (!strcmp(method, "PATCH") || !strcmp(method, "PUT"))
            return put_rule(env, c, name, q, 1);
        if (!strcmp(method, "DELETE")) {
            if (eng_registry_delete(env->registry, name, &e))
                return reply_error(c, &e);
            eng_log(ENG_LOG_INFO, "rule.deleted", "rule %s", name);
            return reply_json(c, 200, "{}");
        }
        return fail(c, 405, "InvalidRequestException", "method not allowed");
    }
    if (!strncmp(url, "/deadletter", 11))
        return deadletter(env, c, url, method, q);
    return fail(c, 404, "ResourceNotFoundException", "no such route");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    eng_env *env = cls;
    req *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*upload_size) {
        if (q->len + *upload_size > MAX_BODY) {
            q->too_large = 1;
        } else {
            if (q->len + *upload_size + 1 > q->cap) {
                size_t cap = q->cap ? q->cap : 4096;
                while (cap < q->len + *upload_size + 1)
                    cap *= 2;
                char *b = realloc(q->body, cap);
                if (!b)
                    return MHD_NO;
                q->body = b;
                q->cap = cap;
            }
            memcpy(q->body + q->len, upload, *upload_size);
            q->len += *upload_size;
            q->body[q->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(env, c, url, method, q);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    req *q = *con_cls;
    if (q) {
        free(q->body);
        free(q);
    }
    *con_cls = NULL;
}

eng_admin *eng_admin_start(eng_env *env, eng_error *e) {
    char host[128];
    snprintf(host, sizeof host, "%s", env->cfg->http_addr);
    char *colon = strrchr(host, ':');
    if (!colon) {
        eng_error_set(e, 500, "InternalException", "http address '%s' is not host:port", host);
        return NULL;
    }
    *colon = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!strcmp(host, "") || !strcmp(host, "0.0.0.0"))
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        eng_error_set(e, 500, "InternalException", "http address '%s' is not an IPv4 address",
                      host);
        return NULL;
    }
    eng_admin *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->env = env;
    a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port,
                            NULL, NULL, handler, env, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_THREAD_POOL_SIZE, 2, MHD_OPTION_NOTIFY_COMPLETED,
                            completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!a->d) {
        eng_error_set(e, 500, "InternalException", "cannot listen on %s",
                      env->cfg->http_addr);
        free(a);
        return NULL;
    }
    return a;
}

void eng_admin_stop(eng_admin *a) {
    if (!a)
        return;
    MHD_stop_daemon(a->d);
    free(a);
}

/*
 * dlq.c -- the dead-letter store's API (actions/action.h): the calls every backend answers the
 * same way, and the stored form of a record, which both backends share so that a dead letter
 * reads the same wherever it was written.
 *
 * The backends: dlq_file.c (segment files in the data dir, the default) and the fleet's
 * PostgreSQL table (engine/store/deadletter_pg.c, which the engine opens when `store` names a
 * database). Each embeds struct act_dlq first and answers through its vtable.
 */
#include "../action.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *b64(const void *p, size_t n) {
    char *s = malloc((n + 2) / 3 * 4 + 1);
    if (s)
        sql_base64_encode(p, n, s);
    return s;
}

cJSON *act_dlq_record_json(const act_dlq_record *r, uint64_t id) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t first = r->nerrors ? r->error_at[0] : (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t last = r->nerrors ? r->error_at[r->nerrors - 1] : first;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (id) {
        char ids[24];
        snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
        cJSON_AddStringToObject(o, "id", ids);
    }
    cJSON_AddStringToObject(o, "rule", r->rule);
    cJSON_AddNumberToObject(o, "ruleRevision", (double)r->rule_revision);
    cJSON_AddStringToObject(o, "action", r->action);
    cJSON_AddNumberToObject(o, "actionIndex", r->action_index);
    cJSON_AddStringToObject(o, "topic", r->in->topic);
    char *pl = b64(r->in->payload, r->in->payload_len);
    char *out = b64(r->output, r->output_len);
    cJSON_AddStringToObject(o, "payload", pl ? pl : "");
    if (r->in->clientid)
        cJSON_AddStringToObject(o, "clientId", r->in->clientid);
    cJSON_AddNumberToObject(o, "qos", r->in->qos);
    cJSON_AddStringToObject(o, "source", r->in->source == ENG_SRC_HTTP ? "http" : "mqtt");
    cJSON_AddNumberToObject(o, "receivedAt", (double)r->in->received_ms);
    cJSON_AddStringToObject(o, "traceId", r->in->traceid);
    cJSON_AddStringToObject(o, "output", out ? out : "");
    int oom = !pl || !out;
    free(pl);
    free(out);
    cJSON *fa = cJSON_AddArrayToObject(o, "fields");
    for (size_t k = 0; r->fields && k < r->fields->n; k++)
        cJSON_AddItemToArray(fa, r->fields->null[k] ? cJSON_CreateNull()
                                                    : cJSON_CreateString(r->fields->f[k]));
    cJSON *ea = cJSON_AddArrayToObject(o, "errors");
    for (size_t i = 0; i < r->nerrors; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "at", (double)r->error_at[i]);
        cJSON_AddStringToObject(e, "message", r->errors[i]);
        cJSON_AddItemToArray(ea, e);
    }
    cJSON_AddNumberToObject(o, "attempts", r->attempts);
    cJSON_AddNumberToObject(o, "firstFailureAt", (double)first);
    if (!cJSON_AddNumberToObject(o, "lastFailureAt", (double)last) || oom) {
        cJSON_Delete(o); /* cJSON's adds fail only on OOM: one check at the end */
        return NULL;
    }
    return o;
}

int act_dlq_append(act_dlq *d, const act_dlq_record *r, uint64_t *id_out) {
    return d->vt->append(d, r, id_out, NULL, NULL);
}

int act_dlq_append_async(act_dlq *d, const act_dlq_record *r, act_dlq_done_fn done, void *ud) {
    return d->vt->append(d, r, NULL, done, ud);
}

int act_dlq_resolve(act_dlq *d, uint64_t id) { return d->vt->resolve(d, id); }

void act_dlq_release(act_dlq *d, uint64_t id) { d->vt->release(d, id); }

char *act_dlq_list_json(act_dlq *d, const char *rule, int64_t since_ms, size_t limit,
                        uint64_t after, eng_error *e) {
    return d->vt->list_json(d, rule, since_ms, limit, after, e);
}

int act_dlq_foreach(act_dlq *d, const char *rule, const uint64_t *ids, size_t nids,
                    act_dlq_each_fn fn, void *ud, eng_error *e) {
    return d->vt->claim(d, rule, ids, nids, fn, ud, e);
}

void act_dlq_expire(act_dlq *d) { d->vt->expire(d); }

long act_dlq_purge(act_dlq *d, const char *rule, eng_error *e) {
    return d->vt->purge(d, rule, e);
}

void act_dlq_stats_get(act_dlq *d, act_dlq_stats *out) { d->vt->stats(d, out); }

void act_dlq_close(act_dlq *d) {
    if (d)
        d->vt->close(d);
}

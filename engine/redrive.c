/*
 * redrive.c -- POST /deadletter/redrive: send dead letters through their rule's failed action
 * again.
 *
 * A record names its rule, the rule's revision, and the failed action's index and type. When
 * the rule is still at that revision, the stored output and substituted templates are sent
 * as they were (what failed is exactly what is retried). When the rule was replaced since, its
 * current SQL and templates are evaluated on the stored original message, so the retry uses the
 * rule as it is now; a rule that no longer fires on the message, or no longer has an action of
 * that type at that index, leaves the record in the store and says why. A re-sent record is
 * resolved (removed from the store) only once the action delivered it; if it fails again it
 * becomes a new record with the new errors, so re-driving never loses a message. A record of a
 * rule's evaluation error runs the rule as it is now and hands the output to all its actions
 * (whose own failure path covers them from then on); a record refused before any rule (a
 * payload over the limit) cannot be re-driven.
 *
 * Each record is claimed as it is handed out (act_dlq_foreach), so two re-drives at once --
 * on one instance, or on two instances sharing a store -- never both send one record: the
 * second skips what the first holds. A claim ends when the record is resolved (delivered, or
 * superseded by its new dead letter) or, for a record skipped here, released at once.
 */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../actions/action.h"

typedef struct redrive {
    eng_env *env;
    sql_exec *x;
    act_fields fs;
    long redriven;
    cJSON *skipped;
} redrive;

/* Leaves record id in the store (its claim released) and says why. */
static void skip(redrive *rd, uint64_t id, const char *why) {
    act_dlq_release(rd->env->dlq, id);
    cJSON *o = cJSON_CreateObject();
    char ids[24];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    cJSON_AddStringToObject(o, "id", ids);
    cJSON_AddStringToObject(o, "reason", why);
    cJSON_AddItemToArray(rd->skipped, o);
}

static const char *str(const cJSON *rec, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *rec, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* base64 text -> malloc'd bytes; NULL on bad input. */
static unsigned char *unb64(const char *s, size_t *n) {
    size_t len = strlen(s);
    unsigned char *out = malloc(len / 4 * 3 + 3);
    if (!out)
        return NULL;
    long got = sql_base64_decode(s, len, out);
    if (got < 0) {
        free(out);
        return NULL;
    }
    *n = (size_t)got;
    return out;
}

/* The stored fields, when they fit the action as it is now. */
static int stored_fields(const cJSON *rec, const eng_action *a, act_fields *fs) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(rec, "fields");
    if (!cJSON_IsArray(arr) || (uint32_t)cJSON_GetArraySize(arr) != a->ntpl)
        return -1;
    fs->n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (fs->n >= ACT_MAX_FIELDS)
            return -1;
        fs->f[fs->n] = cJSON_IsString(v) ? v->valuestring : "";
        fs->len[fs->n] = strlen(fs->f[fs->n]);
        fs->null[fs->n] = !cJSON_IsString(v);
        fs->n++;
    }
    return 0;
}

/* A message whose rule failed to evaluate (a dead letter of kind "evaluation"): the rule as it
 * is now runs on it again; when it fires, every action gets the output (each action's own
 * failure path takes over from there) and the record is resolved. */
static int whole_rule(redrive *rd, uint64_t id, const cJSON *rec, const char *rule,
                      const char *topic, const char *payload) {
    eng_rule *r = eng_registry_get(rd->env->registry, rule);
    if (!r) {
        skip(rd, id, "the rule no longer exists");
        return 0;
    }
    size_t plen = 0;
    unsigned char *pl = unb64(payload, &plen);
    const char *source = str(rec, "source");
    eng_msg *m = pl ? eng_msg_new(topic, strlen(topic), pl, plen, NULL, str(rec, "clientId"),
                                  source && !strcmp(source, "http") ? ENG_SRC_HTTP
                                                                    : ENG_SRC_MQTT)
                    : NULL;
    sql_message sm;
    sql_output o;
    char err[256], why[300];
    int rc = SQL_E_NOMEM;
    if (m) {
        m->qos = (int)num(rec, "qos") == 1;
        eng_msg_sql(m, r->name, rd->env->cfg->account_id, &sm);
        sm.host = rd->env->sqlhost.get_shadow ? &rd->env->sqlhost : NULL;
        rc = rd->x ? sql_exec_run(rd->x, r->prog, &sm, &o) : SQL_E_NOMEM;
    }
    if (rc != SQL_FIRED) {
        snprintf(why, sizeof why, "%s", !m ? "the stored payload cannot be read"
                                    : rc == SQL_NOT_FIRED
                                        ? "the rule as it is now does not fire on the message"
                                        : "the rule as it is now still fails on the message");
        skip(rd, id, why);
        goto out;
    }
    char *copy = malloc(o.len ? o.len : 1);
    if (!copy) {
        skip(rd, id, "out of memory");
        goto out;
    }
    memcpy(copy, o.data, o.len);
    size_t olen = o.len;
    for (size_t i = 0; i < r->nactions; i++) {
        const eng_action *a = &r->actions[i];
        if (act_render(rd->x, a->tpl_base, a->ntpl, a->inst->wants_nulls, &rd->fs, err,
                       sizeof err) != 0)
            act_pipe_reject(a->pipe, m, copy, olen, err);
        else
            act_pipe_submit(a->pipe, m, copy, olen, &rd->fs, 0);
    }
    free(copy);
    act_dlq_resolve(rd->env->dlq, id);
    rd->redriven++;
out:
    eng_msg_free(m);
    free(pl);
    eng_rule_release(r);
    return 0;
}

static int one(void *ud, uint64_t id, const cJSON *rec) {
    redrive *rd = ud;
    const char *rule = str(rec, "rule"), *type = str(rec, "action"), *topic = str(rec, "topic");
    const char *payload = str(rec, "payload"), *output = str(rec, "output");
    int index = (int)num(rec, "actionIndex");
    if (index == -2 && type && !strcmp(type, "evaluation") && rule && topic && payload)
        return whole_rule(rd, id, rec, rule, topic, payload);
    if (index == -2 && type && !strcmp(type, "ingest")) {
        skip(rd, id, "refused before any rule (its payload is over the size limit): it cannot "
             "be processed");
        return 0;
    }
    if (!rule || !type || !topic || !payload || !output || index < 0) {
        skip(rd, id, "the record is incomplete");
        return 0;
    }
    eng_rule *r = eng_registry_get(rd->env->registry, rule);
    if (!r) {
        skip(rd, id, "the rule no longer exists");
        return 0;
    }
    size_t plen = 0, olen = 0;
    unsigned char *pl = unb64(payload, &plen), *out = NULL;
    eng_msg *m = NULL;
    const char *clientid = str(rec, "clientId");
    const char *source = str(rec, "source");
    if ((size_t)index >= r->nactions || strcmp(r->actions[index].vt->name, type)) {
        char why[200];
        snprintf(why, sizeof why, "the rule no longer has a %s action at index %d", type, index);
        skip(rd, id, why);
        goto out;
    }
    if (!pl || !(m = eng_msg_new(topic, strlen(topic), pl, plen, NULL, clientid,
                                 source && !strcmp(source, "http") ? ENG_SRC_HTTP
                                                                   : ENG_SRC_MQTT))) {
        skip(rd, id, "the stored payload cannot be read");
        goto out;
    }
    m->qos = (int)num(rec, "qos") == 1;
    const eng_action *a = &r->actions[index];
    act_fields fixed = {0};
    if ((uint64_t)num(rec, "ruleRevision") == r->revision && stored_fields(rec, a, &fixed) == 0 &&
        (out = unb64(output, &olen))) {
        act_pipe_submit(a->pipe, m, (const char *)out, olen, &fixed, id);
        rd->redriven++;
        goto out;
    }
    /* the rule changed since: evaluate it as it is now */
    sql_message sm;
    sql_output o;
    char err[256];
    eng_msg_sql(m, r->name, rd->env->cfg->account_id, &sm);
    int rc = rd->x ? sql_exec_run(rd->x, r->prog, &sm, &o) : SQL_E_NOMEM;
    if (rc != SQL_FIRED) {
        skip(rd, id, rc == SQL_NOT_FIRED ? "the rule as it is now does not fire on the message"
                                         : "the rule as it is now fails on the message");
        goto out;
    }
    char *copy = malloc(o.len ? o.len : 1);
    if (!copy) {
        skip(rd, id, "out of memory");
        goto out;
    }
    memcpy(copy, o.data, o.len);
    olen = o.len;
    if (act_render(rd->x, a->tpl_base, a->ntpl, a->inst->wants_nulls, &rd->fs, err,
                   sizeof err) != 0) {
        skip(rd, id, err);
        free(copy);
        goto out;
    }
    act_pipe_submit(a->pipe, m, copy, olen, &rd->fs, id);
    free(copy);
    rd->redriven++;
out:
    eng_msg_free(m);
    free(pl);
    free(out);
    eng_rule_release(r);
    return 0;
}

char *eng_redrive(eng_env *env, const char *body, size_t n, eng_error *e) {
    cJSON *req = cJSON_ParseWithLength(body ? body : "", n);
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(req, "rule");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(req, "ids");
    uint64_t *idv = NULL;
    size_t nids = 0;
    char *res = NULL;
    redrive rd = {.env = env, .skipped = cJSON_CreateArray()};
    if (!cJSON_IsObject(req) || (rule && !cJSON_IsString(rule)) || (ids && !cJSON_IsArray(ids)) ||
        (!rule && !ids)) {
        eng_error_set(e, 400, "InvalidRequestException",
                      "the body must be {\"rule\": \"<name>\"} or {\"ids\": [\"<id>\", ...]}");
        goto out;
    }
    if (ids) {
        idv = calloc((size_t)cJSON_GetArraySize(ids) + 1, sizeof *idv);
        const cJSON *v;
        cJSON_ArrayForEach(v, ids) {
            if (cJSON_IsString(v))
                idv[nids++] = strtoull(v->valuestring, NULL, 10);
            else if (cJSON_IsNumber(v) && v->valuedouble >= 1)
                idv[nids++] = (uint64_t)v->valuedouble;
            else {
                eng_error_set(e, 400, "InvalidRequestException", "ids must be record ids");
                goto out;
            }
        }
        if (!nids) {
            eng_error_set(e, 400, "InvalidRequestException", "ids is empty");
            goto out;
        }
    }
    rd.x = sql_exec_new();
    if (act_dlq_foreach(env->dlq, rule ? rule->valuestring : NULL, idv, nids, one, &rd, e) &&
        !rd.redriven && !cJSON_GetArraySize(rd.skipped))
        goto out; /* nothing happened: the store's error is the answer (503 when away) */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "redriven", (double)rd.redriven);
    cJSON_AddItemToObject(o, "skipped", rd.skipped);
    rd.skipped = NULL;
    res = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!res)
        eng_error_set(e, 500, "InternalException", "out of memory");
    if (rd.redriven)
        eng_log(ENG_LOG_INFO, "deadletter.redrive", "%ld dead letters re-sent", rd.redriven);
out:
    cJSON_Delete(rd.skipped);
    cJSON_Delete(req);
    free(idv);
    sql_exec_free(rd.x);
    act_fields_deinit(&rd.fs);
    return res;
}

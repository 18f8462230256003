/*
 * rule.c -- a topic rule: AWS's topicRulePayload validated, its SQL compiled together with
 * every action's substitution templates, and its actions opened.
 *
 * A rule is immutable once built and reference counted: consecutive registry snapshots share
 * the rules that did not change, and a worker may still run a rule after it was replaced; the
 * last release closes its actions. Validation follows AWS's API limits (rule name, 10 actions,
 * 256 KiB) and answers with AWS's error types, so the AWS CLI shows familiar messages.
 */
#include "engine_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../actions/action.h"

#define MAX_ACTIONS 10
#define MAX_RULE_BYTES (256u * 1024u)
#define MAX_TEMPLATES 1024 /* per rule; each action has at most ACT_MAX_FIELDS */
#define MAX_PATH 256

static const char *const payload_keys[] = {"sql",          "description", "actions",
                                           "errorAction",  "ruleDisabled", "awsIotSqlVersion"};

static int valid_name(const char *name) {
    size_t n = strlen(name);
    if (n < 1 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses a key given twice in any object of j (path: where j is, for the message). cJSON keeps
 * every member of the text, duplicates included, but its lookups find the first: a check made
 * on one copy while another is used is how a duplicate slips past validation, so none pass. */
static int check_duplicates(const cJSON *j, char *path, size_t len, eng_error *e) {
    if (cJSON_IsObject(j) && j->child && j->child->next) {
        size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
        const char **keys = malloc(n * sizeof *keys);
        if (!keys)
            return eng_error_set(e, 500, "InternalException", "out of memory");
        for (const cJSON *c = j->child; c; c = c->next)
            keys[i++] = c->string;
        qsort(keys, n, sizeof *keys, cmp_str);
        for (i = 1; i < n && strcmp(keys[i - 1], keys[i]); i++) {
        }
        if (i < n)
            eng_error_set(e, 400, "InvalidRequestException",
                          "duplicate key \"%.100s\" in %s (keys must be unique)", keys[i],
                          len ? path : "the rule payload");
        free(keys);
        if (i < n)
            return -1;
    }
    size_t k = 0;
    for (const cJSON *c = j->child; c && (cJSON_IsObject(j) || cJSON_IsArray(j)); c = c->next) {
        int w = cJSON_IsObject(j) ? snprintf(path + len, MAX_PATH - len, "%s%.64s",
                                             len ? "." : "", c->string)
                                  : snprintf(path + len, MAX_PATH - len, "[%zu]", k++);
        size_t nl = w > 0 && len + (size_t)w < MAX_PATH ? len + (size_t)w : len;
        if (check_duplicates(c, path, nl, e))
            return -1;
        path[len] = '\0';
    }
    return 0;
}

/* The payload's own keys: AWS's topicRulePayload and nothing else. */
static int check_payload_keys(const cJSON *root, eng_error *e) {
    const size_t n = sizeof payload_keys / sizeof payload_keys[0];
    for (const cJSON *c = root->child; c; c = c->next) {
        size_t i = 0;
        while (i < n && strcmp(c->string, payload_keys[i]))
            i++;
        if (i == n)
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "unknown key \"%.100s\" in the rule payload (known: sql, "
                                 "description, actions, errorAction, ruleDisabled, "
                                 "awsIotSqlVersion)",
                                 c->string);
    }
    return 0;
}

/* Opens one action object {"<type>": {params}}. */
static int open_action(const cJSON *obj, const char *rule, eng_env *env, eng_action *out,
                       eng_error *e) {
    if (!cJSON_IsObject(obj) || cJSON_GetArraySize(obj) != 1)
        return eng_error_set(e, 400, "InvalidRequestException",
                             "each action must be an object with exactly one action type");
    const cJSON *params = obj->child;
    const act_vtable *vt = act_lookup(params->string);
    if (!vt)
        return eng_error_set(e, 400, "InvalidRequestException",
                             "unknown action type '%s' (sluice supports: %s)",
                             params->string, act_names());
    if (!cJSON_IsObject(params))
        return eng_error_set(e, 400, "InvalidRequestException",
                             "action '%s' must be an object", params->string);
    act_config cfg = {.params = params, .rule_name = rule, .host = eng_env_host(env)};
    act_instance *inst = NULL;
    if (vt->open(&cfg, &inst, e) != 0)
        return -1;
    inst->vt = vt;
    out->vt = vt;
    out->inst = inst;
    return 0;
}

/* Drains and stops the action's pipeline (which closes the instance). */
static void close_action(eng_action *a) {
    if (a->pipe)
        act_pipe_close(a->pipe);
    else if (a->vt && a->inst)
        a->vt->close(a->inst);
    a->inst = NULL;
}

static void free_action(eng_action *a) {
    act_pipe_free(a->pipe);
    a->pipe = NULL;
    a->vt = NULL;
}

/* Starts the pipelines: the error action's first, since every other one hands it failures. */
static int start_pipes(eng_rule *r, eng_env *env, eng_error *e) {
    eng_action *ea = &r->error_action;
    act_owner o = {.rule_name = r->name,
                   .rule_revision = &r->revision,
                   .index = -1,
                   .prog = r->prog,
                   .dlq = env->dlq,
                   .host = eng_env_host(env)};
    if (ea->vt) {
        act_instance *inst = ea->inst;
        ea->inst = NULL;
        if (!(ea->pipe = act_pipe_new_take(inst, &o, e)))
            return -1;
        ea->inst = inst;
        o.error_pipe = ea->pipe;
        o.err_tpl_base = ea->tpl_base;
        o.err_ntpl = ea->ntpl;
        o.err_wants_nulls = inst->wants_nulls;
    }
    for (size_t i = 0; i < r->nactions; i++) {
        eng_action *a = &r->actions[i];
        act_instance *inst = a->inst;
        o.index = (int)i;
        a->inst = NULL;
        if (!(a->pipe = act_pipe_new_take(inst, &o, e))) {
            for (size_t j = i + 1; j < r->nactions; j++) /* not yet owned by a pipe */
                close_action(&r->actions[j]);
            return -1;
        }
        a->inst = inst;
    }
    return 0;
}

/* Rejects a republish whose literal topic matches the rule's own FROM filter: decidable
 * only when the topic has no substitution. */
static int loop_check(const eng_action *a, const char *filter, eng_error *e) {
    if (strcmp(a->vt->name, "republish") != 0 || !*filter)
        return 0;
    const char *const *tpl;
    a->vt->templates(a->inst, &tpl); /* the topic is republish's first template */
    const char *t = tpl[0];
    if (strstr(t, "${") || strstr(t, "$$"))
        return 0;
    if (sql_topic_matches(filter, strlen(filter), t, strlen(t)))
        return eng_error_set(e, 400, "InvalidRequestException",
                             "republish topic '%s' matches the rule's own topic filter '%s': "
                             "the rule would trigger itself",
                             t, filter);
    return 0;
}

eng_rule *eng_rule_new(const char *name, const char *json, size_t n, eng_env *env,
                       eng_error *e) {
    memset(e, 0, sizeof *e);
    if (!valid_name(name)) {
        eng_error_set(e, 400, "InvalidRequestException",
                      "rule name must match ^[a-zA-Z0-9_]{1,128}$");
        return NULL;
    }
    if (n > MAX_RULE_BYTES) {
        eng_error_set(e, 413, "InvalidRequestException", "rule is larger than 256 KB");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(json, n);
    eng_rule *r = calloc(1, sizeof *r);
    const char *tpls[MAX_TEMPLATES];
    size_t ntpl = 0;
    if (!r) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto fail;
    }
    atomic_init(&r->refs, 1);
    snprintf(r->name, sizeof r->name, "%s", name);
    if (!root || !cJSON_IsObject(root)) {
        eng_error_set(e, 400, "InvalidRequestException", "the body is not a JSON object");
        goto fail;
    }
    char path[MAX_PATH] = "";
    if (check_duplicates(root, path, 0, e) || check_payload_keys(root, e))
        goto fail;
    const cJSON *sql = cJSON_GetObjectItemCaseSensitive(root, "sql");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "description");
    const cJSON *acts = cJSON_GetObjectItemCaseSensitive(root, "actions");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "errorAction");
    const cJSON *dis = cJSON_GetObjectItemCaseSensitive(root, "ruleDisabled");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "awsIotSqlVersion");
    if (!cJSON_IsString(sql) || !sql->valuestring[0]) {
        eng_error_set(e, 400, "InvalidRequestException", "\"sql\" is required");
        goto fail;
    }
    if (desc && !cJSON_IsString(desc) && !cJSON_IsNull(desc)) {
        eng_error_set(e, 400, "InvalidRequestException", "\"description\" must be a string");
        goto fail;
    }
    if (dis && !cJSON_IsBool(dis)) {
        eng_error_set(e, 400, "InvalidRequestException", "\"ruleDisabled\" must be a boolean");
        goto fail;
    }
    r->version = SQL_V2015_10_08; /* AWS's API default when awsIotSqlVersion is absent */
    if (ver && !cJSON_IsNull(ver) &&
        (!cJSON_IsString(ver) || sql_version_parse(ver->valuestring, &r->version) != SQL_OK)) {
        eng_error_set(e, 400, "InvalidRequestException",
                      "\"awsIotSqlVersion\" must be 2015-10-08, 2016-03-23 or beta");
        goto fail;
    }
    if (acts && !cJSON_IsArray(acts)) {
        eng_error_set(e, 400, "InvalidRequestException", "\"actions\" must be an array");
        goto fail;
    }
    int na = acts ? cJSON_GetArraySize(acts) : 0;
    if (na > MAX_ACTIONS) {
        eng_error_set(e, 400, "InvalidRequestException",
                      "a rule has at most %d actions (this one has %d)", MAX_ACTIONS, na);
        goto fail;
    }
    r->sql = strdup(sql->valuestring);
    r->description = strdup(cJSON_IsString(desc) ? desc->valuestring : "");
    r->disabled = cJSON_IsTrue(dis);
    r->actions = calloc((size_t)na + 1, sizeof *r->actions);
    if (!r->sql || !r->description || !r->actions) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto fail;
    }
    for (int i = 0; i < na; i++) {
        if (open_action(cJSON_GetArrayItem(acts, i), name, env, &r->actions[i], e))
            goto fail;
        r->nactions++;
    }
    if (err && !cJSON_IsNull(err) && open_action(err, name, env, &r->error_action, e))
        goto fail;
    /* every action's templates, compiled with the SQL: one payload scan serves all */
    for (size_t i = 0; i <= r->nactions; i++) {
        eng_action *a = i < r->nactions ? &r->actions[i] : &r->error_action;
        if (!a->vt)
            continue;
        const char *const *t;
        size_t k = a->vt->templates(a->inst, &t);
        if (k > ACT_MAX_FIELDS || ntpl + k > MAX_TEMPLATES) {
            eng_error_set(e, 400, "InvalidRequestException",
                          "too many substitution templates: the %s action has %zu (at most %d "
                          "per action, %d per rule)",
                          a->vt->name, k, ACT_MAX_FIELDS, MAX_TEMPLATES);
            goto fail;
        }
        a->tpl_base = (uint32_t)ntpl;
        a->ntpl = (uint32_t)k;
        for (size_t j = 0; j < k; j++)
            tpls[ntpl++] = t[j];
    }
    sql_compile_opts opts = {.version = r->version, .templates = tpls, .ntemplates = ntpl};
    sql_diag d;
    if (sql_compile(r->sql, strlen(r->sql), &opts, &r->prog, &d) != SQL_OK) {
        if (d.where >= 0)
            eng_error_set(e, 400, "InvalidRequestException",
                          "substitution template '%s': line %u, column %u: %s", tpls[d.where],
                          d.line, d.col, d.msg);
        else
            eng_error_set(e, 400, "SqlParseException", "line %u, column %u: %s", d.line, d.col,
                          d.msg);
        e->diag = d;
        e->has_diag = d.where < 0;
        goto fail;
    }
    const char *filter = sql_program_topic_filter(r->prog);
    for (size_t i = 0; i < r->nactions; i++)
        if (loop_check(&r->actions[i], filter, e))
            goto fail;
    if (start_pipes(r, env, e))
        goto fail;
    char *norm = cJSON_PrintUnformatted(root);
    r->payload_json = norm;
    r->created_at = (int64_t)time(NULL);
    cJSON_Delete(root);
    return r;
fail:
    cJSON_Delete(root);
    eng_rule_release(r);
    return NULL;
}

eng_rule *eng_rule_retain(eng_rule *r) {
    atomic_fetch_add(&r->refs, 1);
    return r;
}

/* {====== closing released rules off the caller's thread */

/* Closing a rule drains its action pipelines, which can take as long as a dead sink's retry
 * budget. The last release often happens under the registry's lock (a snapshot reclaimed
 * after a replace or delete), so in the service a closer thread does it: a dead sink never
 * freezes the admin API. Without the closer (unit tests, tools) the release closes inline. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    eng_rule **q;      /* guarded by mu */
    size_t n, cap;
    int started, stop;
    pthread_t th;
} closer = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void rule_close(eng_rule *r);

static void *closer_main(void *arg) {
    pthread_mutex_lock(&closer.mu);
    for (;;) {
        while (!closer.n && !closer.stop)
            pthread_cond_wait(&closer.cv, &closer.mu);
        if (!closer.n)
            break;
        eng_rule *r = closer.q[--closer.n];
        pthread_mutex_unlock(&closer.mu);
        rule_close(r);
        pthread_mutex_lock(&closer.mu);
    }
    pthread_mutex_unlock(&closer.mu);
    return NULL;
}

int eng_rule_closer_start(void) {
    pthread_mutex_lock(&closer.mu);
    int rc = 0;
    if (!closer.started) {
        closer.stop = 0;
        rc = pthread_create(&closer.th, NULL, closer_main, NULL) == 0 ? 0 : -1;
        closer.started = rc == 0;
    }
    pthread_mutex_unlock(&closer.mu);
    return rc;
}

void eng_rule_closer_stop(void) {
    pthread_mutex_lock(&closer.mu);
    if (!closer.started) {
        pthread_mutex_unlock(&closer.mu);
        return;
    }
    closer.stop = 1;
    pthread_cond_broadcast(&closer.cv);
    pthread_mutex_unlock(&closer.mu);
    pthread_join(closer.th, NULL);
    pthread_mutex_lock(&closer.mu);
    closer.started = 0;
    free(closer.q);
    closer.q = NULL;
    closer.n = closer.cap = 0;
    pthread_mutex_unlock(&closer.mu);
}

/* }====== */

void eng_rule_release(eng_rule *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    pthread_mutex_lock(&closer.mu);
    if (closer.started && !closer.stop) {
        if (closer.n == closer.cap) {
            size_t cap = closer.cap ? closer.cap * 2 : 16;
            eng_rule **v = realloc(closer.q, cap * sizeof *v);
            if (v) {
                closer.q = v;
                closer.cap = cap;
            }
        }
        if (closer.n < closer.cap) {
            closer.q[closer.n++] = r;
            pthread_cond_signal(&closer.cv);
            pthread_mutex_unlock(&closer.mu);
            return;
        }
    }
    pthread_mutex_unlock(&closer.mu);
    rule_close(r);
}

static void rule_close(eng_rule *r) {
    /* drain the actions first: their failures still go to the error action */
    for (size_t i = 0; i < r->nactions; i++)
        close_action(&r->actions[i]);
    close_action(&r->error_action);
    for (size_t i = 0; i < r->nactions; i++)
        free_action(&r->actions[i]);
    free_action(&r->error_action);
    sql_program_free(r->prog);
    free(r->actions);
    free(r->sql);
    free(r->description);
    free(r->payload_json);
    free(r);
}

char *eng_rule_describe(const eng_rule *r, const eng_config *cfg) {
    cJSON *payload = cJSON_Parse(r->payload_json);
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddStringToObject(rule, "ruleName", r->name);
    cJSON_AddStringToObject(rule, "sql", r->sql);
    cJSON_AddStringToObject(rule, "description", r->description);
    cJSON_AddNumberToObject(rule, "createdAt", (double)r->created_at);
    cJSON *acts = payload ? cJSON_DetachItemFromObjectCaseSensitive(payload, "actions") : NULL;
    cJSON_AddItemToObject(rule, "actions", acts ? acts : cJSON_CreateArray());
    cJSON_AddBoolToObject(rule, "ruleDisabled", r->disabled);
    cJSON_AddStringToObject(rule, "awsIotSqlVersion", sql_version_name(r->version));
    cJSON *err = payload ? cJSON_DetachItemFromObjectCaseSensitive(payload, "errorAction") : NULL;
    if (err && !cJSON_IsNull(err))
        cJSON_AddItemToObject(rule, "errorAction", err);
    else
        cJSON_Delete(err);
    char arn[256];
    snprintf(arn, sizeof arn, "arn:aws:iot:%s:%s:rule/%s", cfg->region, cfg->account_id,
             r->name);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "ruleArn", arn);
    cJSON_AddItemToObject(out, "rule", rule);
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    cJSON_Delete(payload);
    return s;
}

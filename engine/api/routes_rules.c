/*
 * routes_rules.c -- AWS IoT's topic-rule calls:
 *
 *   GET    /rules?topic=&maxResults=&nextToken=&ruleDisabled=   ListTopicRules
 *   GET    /rules/{ruleName}            GetTopicRule
 *   POST   /rules/{ruleName}            CreateTopicRule (body: topicRulePayload)
 *   PATCH  /rules/{ruleName}            ReplaceTopicRule (PUT too)
 *   DELETE /rules/{ruleName}            DeleteTopicRule
 *   POST   /rules/{ruleName}/enable     EnableTopicRule; /disable: DisableTopicRule
 *
 * The registry validates names and payloads and persists every change before it is seen;
 * these handlers translate between it and AWS's JSON and error shapes. ListTopicRules pages
 * by name: nextToken is the last name of the previous page.
 */
#include "api_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void not_found(eng_api_response *rs, const char *name) {
    eng_api__fail(rs, 404, "ResourceNotFoundException", "rule %.128s does not exist", name);
}

void eng_api__rule_get(eng_api_call *c, eng_api_response *rs) {
    eng_rule *r = eng_registry_get(c->env->registry, c->param[0]);
    if (!r) {
        not_found(rs, c->param[0]);
        return;
    }
    char *s = eng_rule_describe(r, c->env->cfg);
    /* an extension AWS has no need of: what the broker answered to the rule's subscription
     * (a refused filter would otherwise mean a rule that silently never fires) */
    const char *f = sql_program_topic_filter(r->prog);
    eng_rule_release(r);
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    free(s);
    if (o && *f && c->env->mqtt && !eng_mqtt_offline(c->env->mqtt)) {
        int code = eng_mqtt_filter_status(c->env->mqtt, f);
        cJSON *sub = cJSON_AddObjectToObject(o, "subscription");
        cJSON_AddStringToObject(sub, "filter", f);
        cJSON_AddStringToObject(sub, "status", code < 0      ? "pending"
                                               : code >= 0x80 ? "refused"
                                               : code == 0    ? "downgraded"
                                                              : "granted");
        if (code >= 0)
            cJSON_AddNumberToObject(sub, code >= 0x80 ? "reasonCode" : "qos", code);
    }
    char *out = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!out) {
        eng_api__fail(rs, 500, "InternalException", "out of memory");
        return;
    }
    eng_api__json_take(rs, 200, out);
}

void eng_api__rule_list(eng_api_call *c, eng_api_response *rs) {
    const char *topic = eng_api__arg(c, "topic");
    const char *maxs = eng_api__arg(c, "maxResults");
    const char *next = eng_api__arg(c, "nextToken");
    const char *dis = eng_api__arg(c, "ruleDisabled");
    char *end = NULL;
    long max = maxs ? strtol(maxs, &end, 10) : 1000;
    if ((maxs && *end) || max < 1 || max > 10000) {
        eng_api__fail(rs, 400, "InvalidRequestException", "maxResults must be from 1 to 10000");
        return;
    }
    const eng_config *cfg = c->env->cfg;
    size_t n;
    eng_rule **v = eng_registry_list(c->env->registry, &n);
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "rules");
    long count = 0;
    const char *last = NULL;
    for (size_t i = 0; v && i < n; i++) {
        eng_rule *r = v[i];
        const char *f = sql_program_topic_filter(r->prog);
        if (next && strcmp(r->name, next) <= 0)
            continue;
        if (topic && strcmp(f, topic) != 0)
            continue;
        if (dis && (!strcmp(dis, "true")) != r->disabled)
            continue;
        if (count == max) {
            cJSON_AddStringToObject(out, "nextToken", last);
            break;
        }
        char arn[256];
        snprintf(arn, sizeof arn, "arn:aws:iot:%s:%s:rule/%s", cfg->region, cfg->account_id,
                 r->name);
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
    eng_api__json_take(rs, 200, s);
}

static void put_rule(eng_api_call *c, eng_api_response *rs, int replace) {
    eng_error e;
    memset(&e, 0, sizeof e);
    const char *name = c->param[0];
    const eng_api_request *rq = c->rq;
    eng_rule *r = eng_rule_new(name, rq->body ? rq->body : "", rq->body_len, c->env, &e);
    if (!r) {
        eng_api__error(rs, &e);
        return;
    }
    int rc = replace ? eng_registry_replace(c->env->registry, r, &e)
                     : eng_registry_create(c->env->registry, r, &e);
    if (rc) {
        eng_api__error(rs, &e);
        return;
    }
    eng_log(ENG_LOG_INFO, replace ? "rule.replaced" : "rule.created", "rule %s (%s)", name,
            rq->who.who);
    eng_api__json(rs, 200, "{}");
}

void eng_api__rule_create(eng_api_call *c, eng_api_response *rs) { put_rule(c, rs, 0); }
void eng_api__rule_replace(eng_api_call *c, eng_api_response *rs) { put_rule(c, rs, 1); }

void eng_api__rule_delete(eng_api_call *c, eng_api_response *rs) {
    eng_error e;
    memset(&e, 0, sizeof e);
    if (eng_registry_delete(c->env->registry, c->param[0], &e)) {
        eng_api__error(rs, &e);
        return;
    }
    eng_log(ENG_LOG_INFO, "rule.deleted", "rule %s (%s)", c->param[0], c->rq->who.who);
    eng_api__json(rs, 200, "{}");
}

static void set_enabled(eng_api_call *c, eng_api_response *rs, int enabled) {
    eng_error e;
    memset(&e, 0, sizeof e);
    if (eng_registry_set_enabled(c->env->registry, c->param[0], enabled, &e)) {
        eng_api__error(rs, &e);
        return;
    }
    eng_log(ENG_LOG_INFO, enabled ? "rule.enabled" : "rule.disabled", "rule %s (%s)",
            c->param[0], c->rq->who.who);
    eng_api__json(rs, 200, "{}");
}

void eng_api__rule_enable(eng_api_call *c, eng_api_response *rs) { set_enabled(c, rs, 1); }
void eng_api__rule_disable(eng_api_call *c, eng_api_response *rs) { set_enabled(c, rs, 0); }

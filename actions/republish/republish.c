/*
 * republish.c -- AWS's republish action: publish the rule's output to an MQTT topic through
 * the service's output connection.
 *
 *   {"republish": {"topic": "alerts/${deviceId}", "qos": 1}}
 *
 * The topic is a substitution template (AWS writes a leading `$` as `$$`). Loop protection:
 * every republished message carries the user property "sluice-hops" (the incoming hop count
 * plus one); a message that arrives with the configured maximum is not republished again but
 * fails with a clear error (counted, and routed to the error action), so a rule whose output
 * feeds itself stops instead of flooding the broker. Rules whose literal topic matches their
 * own FROM filter are refused when they are created (rule.c).
 */
#include "../action.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct republish {
    act_instance base;
    eng_env *env;
    char *topic; /* template */
    int qos;
} republish;

static int rp_open(const act_config *cfg, act_instance **out, eng_error *e) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg->params, "topic");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg->params, "qos");
    if (!cJSON_IsString(t) || !t->valuestring[0])
        return eng_error_set(e, 400, "InvalidRequestException",
                             "republish action: \"topic\" is required");
    int qos = 0;
    if (q) {
        if (!cJSON_IsNumber(q) || (q->valuedouble != 0 && q->valuedouble != 1))
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "republish action: \"qos\" must be 0 or 1");
        qos = (int)q->valuedouble;
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, cfg->params) {
        if (strcmp(k->string, "topic") && strcmp(k->string, "qos") &&
            strcmp(k->string, "headers") && strcmp(k->string, "roleArn"))
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "republish action: unknown parameter \"%s\"", k->string);
    }
    republish *r = calloc(1, sizeof *r);
    if (!r || !(r->topic = strdup(t->valuestring))) {
        free(r);
        return eng_error_set(e, 500, "InternalException", "out of memory");
    }
    r->env = cfg->env;
    r->qos = qos;
    *out = &r->base;
    return 0;
}

static size_t rp_templates(act_instance *self, const char *const **tpl) {
    republish *r = (republish *)self;
    *tpl = (const char *const *)&r->topic;
    return 1;
}

static act_result rp_deliver(act_instance *self, const act_msg *m, char *err, size_t cap) {
    republish *r = (republish *)self;
    int hops = m->in ? m->in->hops : 0;
    if (hops >= r->env->cfg->republish_max_hops) {
        atomic_fetch_add(&eng_metrics_global.dropped[ENG_DROP_LOOP], 1);
        snprintf(err, cap, "republish loop: the message has already been republished %d times",
                 hops);
        return ACT_FAIL;
    }
    if (m->field_lens[0] == 0) {
        snprintf(err, cap, "republish topic is empty after substitution");
        return ACT_FAIL;
    }
    char topic[1024];
    if (m->field_lens[0] >= sizeof topic) {
        snprintf(err, cap, "republish topic is longer than %zu bytes", sizeof topic - 1);
        return ACT_FAIL;
    }
    memcpy(topic, m->fields[0], m->field_lens[0]);
    topic[m->field_lens[0]] = '\0';
    if (strchr(topic, '+') || strchr(topic, '#')) {
        snprintf(err, cap, "republish topic '%s' contains a wildcard", topic);
        return ACT_FAIL;
    }
    if (eng_mqtt_publish(r->env->mqtt, topic, m->payload, m->payload_len, r->qos, NULL,
                         hops + 1) != 0) {
        snprintf(err, cap, "MQTT publish to '%s' failed (not connected)", topic);
        atomic_fetch_add(&eng_metrics_global.republish_failed, 1);
        return ACT_RETRY;
    }
    atomic_fetch_add(&eng_metrics_global.republish_ok, 1);
    return ACT_OK;
}

static void rp_close(act_instance *self) {
    republish *r = (republish *)self;
    if (!r)
        return;
    free(r->topic);
    free(r);
}

const act_vtable act_republish_vtable = {
    .version = ACT_VTABLE_VERSION,
    .name = "republish",
    .aws_name = "RepublishAction",
    .open = rp_open,
    .templates = rp_templates,
    .deliver = rp_deliver,
    .close = rp_close,
};

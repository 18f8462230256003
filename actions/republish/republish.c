/*
 * republish.c -- AWS's republish action: publish the rule's output to an MQTT topic through
 * the service's output connection.
 *
 *   {"republish": {"topic": "alerts/${deviceId}", "qos": 1,
 *                  "headers": {"contentType": "application/json", "responseTopic": "...",
 *                              "correlationData": "<base64>", "messageExpiry": "3600",
 *                              "payloadFormatIndicator": "UTF8_DATA",
 *                              "userProperties": [{"key": "k", "value": "${v}"}]}}}
 *
 * The headers are AWS's MqttHeaders: they become MQTT 5 properties of the republished message,
 * and like the topic every value is a substitution template.
 * The topic is a substitution template (AWS writes a leading `$` as `$$`). Loop protection:
 * every republished message carries the user property "sluice-hops" (the incoming hop count
 * plus one); a message that arrives with the configured maximum is not republished again but
 * fails with a clear error (counted, and routed to the error action), so a rule whose output
 * feeds itself stops instead of flooding the broker. Rules whose literal topic matches their
 * own FROM filter are refused when they are created (rule.c).
 */
#include "../action.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_USER_PROPS 16

typedef struct republish {
    act_instance base;
    const eng_host *host;
    int qos;
    int format;      /* -1: not set; 0 UNSPECIFIED_BYTES; 1 UTF8_DATA */
    /* templates, in this order: topic, then the headers that are set (see slot_*) */
    char *tpl[4 + 1 + 2 * MAX_USER_PROPS];
    size_t ntpl;
    int slot_ctype, slot_resp, slot_corr, slot_expiry; /* index into tpl, or -1 */
    int nuser;       /* user properties: key at tpl[user0 + 2i], value at +1 */
    int user0;
} republish;

static int add_tpl(republish *r, const cJSON *v, const char *what, eng_error *e) {
    if (!cJSON_IsString(v))
        return eng_error_set(e, 400, "InvalidRequestException",
                             "republish action: headers.%s must be a string", what);
    if (!(r->tpl[r->ntpl] = strdup(v->valuestring)))
        return eng_error_set(e, 500, "InternalException", "out of memory");
    return (int)r->ntpl++;
}

static int parse_headers(republish *r, const cJSON *h, eng_error *e) {
    const cJSON *k;
    cJSON_ArrayForEach(k, h) {
        const char *n = k->string;
        int slot;
        if (!strcmp(n, "contentType")) {
            if ((slot = add_tpl(r, k, n, e)) < 0)
                return -1;
            r->slot_ctype = slot;
        } else if (!strcmp(n, "responseTopic")) {
            if ((slot = add_tpl(r, k, n, e)) < 0)
                return -1;
            r->slot_resp = slot;
        } else if (!strcmp(n, "correlationData")) {
            if ((slot = add_tpl(r, k, n, e)) < 0)
                return -1;
            r->slot_corr = slot;
        } else if (!strcmp(n, "messageExpiry")) {
            if ((slot = add_tpl(r, k, n, e)) < 0)
                return -1;
            r->slot_expiry = slot;
        } else if (!strcmp(n, "payloadFormatIndicator")) {
            if (!cJSON_IsString(k) || (strcmp(k->valuestring, "UNSPECIFIED_BYTES") &&
                                       strcmp(k->valuestring, "UTF8_DATA")))
                return eng_error_set(e, 400, "InvalidRequestException",
                                     "republish action: headers.payloadFormatIndicator must be "
                                     "UNSPECIFIED_BYTES or UTF8_DATA");
            r->format = !strcmp(k->valuestring, "UTF8_DATA");
        } else if (!strcmp(n, "userProperties")) {
            if (!cJSON_IsArray(k) || cJSON_GetArraySize(k) > MAX_USER_PROPS)
                return eng_error_set(e, 400, "InvalidRequestException",
                                     "republish action: headers.userProperties must be an array "
                                     "of at most %d {key, value} objects", MAX_USER_PROPS);
            r->user0 = (int)r->ntpl;
            const cJSON *u;
            cJSON_ArrayForEach(u, k) {
                if (add_tpl(r, cJSON_GetObjectItemCaseSensitive(u, "key"), "userProperties.key",
                            e) < 0 ||
                    add_tpl(r, cJSON_GetObjectItemCaseSensitive(u, "value"),
                            "userProperties.value", e) < 0)
                    return -1;
                r->nuser++;
            }
        } else {
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "republish action: unknown header \"%s\"", n);
        }
    }
    return 0;
}

static void rp_close(act_instance *self);

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
    if (!r || !(r->tpl[0] = strdup(t->valuestring))) {
        free(r);
        return eng_error_set(e, 500, "InternalException", "out of memory");
    }
    r->ntpl = 1;
    r->host = cfg->host;
    r->qos = qos;
    r->format = -1;
    r->slot_ctype = r->slot_resp = r->slot_corr = r->slot_expiry = -1;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cfg->params, "headers");
    if (h && (!cJSON_IsObject(h) || parse_headers(r, h, e) != 0)) {
        if (!cJSON_IsObject(h))
            eng_error_set(e, 400, "InvalidRequestException",
                          "republish action: \"headers\" must be an object");
        rp_close(&r->base);
        return -1;
    }
    r->base.lanes = 1;
    r->base.max_batch = 256;
    r->base.deliver_inline = 1; /* the host's publish only queues in libmosquitto */
    snprintf(r->base.resource, sizeof r->base.resource, "%s", t->valuestring);
    *out = &r->base;
    return 0;
}

static size_t rp_templates(act_instance *self, const char *const **tpl) {
    republish *r = (republish *)self;
    *tpl = (const char *const *)r->tpl;
    return r->ntpl;
}

/* The topic of m, checked: 0, or -1 with a message in err. */
static int rp_topic(const act_msg *m, char *topic, size_t tcap, char *err, size_t cap) {
    if (m->field_lens[0] == 0) {
        snprintf(err, cap, "republish topic is empty after substitution");
        return -1;
    }
    if (m->field_lens[0] >= tcap) {
        snprintf(err, cap, "republish topic is longer than %zu bytes", tcap - 1);
        return -1;
    }
    memcpy(topic, m->fields[0], m->field_lens[0]);
    topic[m->field_lens[0]] = '\0';
    if (strchr(topic, '+') || strchr(topic, '#')) {
        snprintf(err, cap, "republish topic '%s' contains a wildcard", topic);
        return -1;
    }
    return 0;
}

static act_result rp_deliver_one(republish *r, const act_msg *m, char *err, size_t cap) {
    int hops = m->in ? m->in->hops : 0;
    if (hops >= r->host->republish_max_hops) {
        act_count(r->host, ENG_COUNT_DROP_LOOP, 1);
        snprintf(err, cap, "republish loop: the message has already been republished %d times",
                 hops);
        return ACT_FAIL;
    }
    char topic[1024];
    if (rp_topic(m, topic, sizeof topic, err, cap))
        return ACT_FAIL;
    sql_mqtt_props props = {.format_indicator = r->format, .message_expiry = -1};
    sql_user_prop user[MAX_USER_PROPS];
    char corr[1024];
    if (r->slot_ctype >= 0)
        props.content_type = m->fields[r->slot_ctype];
    if (r->slot_resp >= 0)
        props.response_topic = m->fields[r->slot_resp];
    if (r->slot_expiry >= 0) {
        char *end;
        long long v = strtoll(m->fields[r->slot_expiry], &end, 10);
        if (*end || v < 0 || v > UINT32_MAX) {
            snprintf(err, cap, "headers.messageExpiry '%s' is not a number of seconds",
                     m->fields[r->slot_expiry]);
            return ACT_FAIL;
        }
        props.message_expiry = v;
    }
    if (r->slot_corr >= 0) {
        size_t n = m->field_lens[r->slot_corr];
        if (n * 3 / 4 + 3 > sizeof corr) {
            snprintf(err, cap, "headers.correlationData is too long");
            return ACT_FAIL;
        }
        long len = sql_base64_decode(m->fields[r->slot_corr], n, (unsigned char *)corr);
        if (len < 0) {
            snprintf(err, cap, "headers.correlationData is not base64");
            return ACT_FAIL;
        }
        props.correlation_len = (size_t)len;
        props.correlation_data = corr;
    }
    for (int i = 0; i < r->nuser; i++)
        user[i] = (sql_user_prop){m->fields[r->user0 + 2 * i], m->fields[r->user0 + 2 * i + 1]};
    props.user = user;
    props.nuser = (size_t)r->nuser;
    if (!r->host->publish || r->host->publish(r->host->ud, topic, m->payload, m->payload_len,
                                              r->qos, &props, hops + 1) != 0) {
        snprintf(err, cap, "MQTT publish to '%s' failed (not connected)", topic);
        act_count(r->host, ENG_COUNT_REPUBLISH_FAILED, 1);
        return ACT_RETRY;
    }
    act_count(r->host, ENG_COUNT_REPUBLISH_OK, 1);
    return ACT_OK;
}

/* Publishing only queues the message in libmosquitto's output connection, so a batch is a
 * loop; a lost connection is transient (the output connection reconnects). */
static act_result rp_deliver(act_instance *self, int lane, const act_msg *const *batch,
                             size_t n, size_t *ndone, char *err, size_t cap) {
    republish *r = (republish *)self;
    for (*ndone = 0; *ndone < n; ++*ndone) {
        act_result res = rp_deliver_one(r, batch[*ndone], err, cap);
        if (res != ACT_OK)
            return res;
    }
    return ACT_OK;
}

static int rp_format(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out) {
    republish *r = (republish *)self;
    for (size_t i = 0; i < n; i++) {
        const act_msg *m = batch[i];
        char topic[1024], err[256];
        if (rp_topic(m, topic, sizeof topic, err, sizeof err)) {
            act_buf_puts(out, err);
            return -1;
        }
        act_buf_printf(out, "PUBLISH %s qos=%d\n", topic, r->qos);
        if (r->slot_ctype >= 0)
            act_buf_printf(out, "content-type: %s\n", m->fields[r->slot_ctype]);
        if (r->slot_resp >= 0)
            act_buf_printf(out, "response-topic: %s\n", m->fields[r->slot_resp]);
        for (int k = 0; k < r->nuser; k++)
            act_buf_printf(out, "user-property: %s=%s\n", m->fields[r->user0 + 2 * k],
                           m->fields[r->user0 + 2 * k + 1]);
        if (act_buf_puts(out, "\n") || act_buf_put(out, m->payload, m->payload_len) ||
            act_buf_puts(out, "\n"))
            return -1;
    }
    return 0;
}

static void rp_close(act_instance *self) {
    republish *r = (republish *)self;
    if (!r)
        return;
    for (size_t i = 0; i < r->ntpl; i++)
        free(r->tpl[i]);
    free(r);
}

const act_vtable act_republish_vtable = {
    .version = ACT_VTABLE_VERSION,
    .name = "republish",
    .aws_name = "RepublishAction",
    .open = rp_open,
    .templates = rp_templates,
    .deliver = rp_deliver,
    .format = rp_format,
    .close = rp_close,
};

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

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_USER_PROPS 16
#define MAX_TOPIC 1024   /* template text; the substituted topic is bounded in rp_topic() */
#define MAX_HEADER 8192

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

/* {====== options */

typedef struct rp_headers {
    const char *content_type, *response_topic, *correlation_data, *message_expiry;
    int format;
    act_kv user[MAX_USER_PROPS];
    size_t nuser;
} rp_headers;

typedef struct rp_opts {
    const char *topic;
    int qos;
    rp_headers h;
} rp_opts;

static const char *const formats[] = {"UNSPECIFIED_BYTES", "UTF8_DATA", NULL};

#define HDR(field) offsetof(rp_headers, field)
static const act_option header_options[] = {
    {.key = "contentType", .type = ACT_OPT_TEMPLATE, .offset = HDR(content_type),
     .max = MAX_HEADER, .help = "MQTT 5 content type"},
    {.key = "responseTopic", .type = ACT_OPT_TEMPLATE, .offset = HDR(response_topic),
     .max = MAX_HEADER, .help = "MQTT 5 response topic"},
    {.key = "correlationData", .type = ACT_OPT_TEMPLATE, .offset = HDR(correlation_data),
     .max = MAX_HEADER, .help = "MQTT 5 correlation data, base64-encoded"},
    {.key = "messageExpiry", .type = ACT_OPT_TEMPLATE, .offset = HDR(message_expiry),
     .max = 64, .help = "MQTT 5 message expiry interval, in seconds"},
    {.key = "payloadFormatIndicator", .type = ACT_OPT_ENUM, .offset = HDR(format), .def = -1,
     .choices = formats, .help = "MQTT 5 payload format indicator"},
    {.key = "userProperties", .type = ACT_OPT_LIST, .offset = HDR(user), .max = MAX_USER_PROPS,
     .sub = act_kv_options, .elem_size = sizeof(act_kv), .count_offset = HDR(nuser),
     .help = "MQTT 5 user properties, {key, value} pairs"},
    {0},
};
#undef HDR

static const act_option rp_options[] = {
    {.key = "topic", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(rp_opts, topic),
     .min = 1, .max = MAX_TOPIC,
     .help = "the MQTT topic to publish to (a leading $ is written $$)"},
    {.key = "qos", .type = ACT_OPT_INT, .offset = offsetof(rp_opts, qos), .min = 0, .max = 1,
     .def = 0, .help = "MQTT quality of service"},
    {.key = "headers", .type = ACT_OPT_OBJECT, .offset = offsetof(rp_opts, h),
     .sub = header_options, .help = "AWS's MqttHeaders: MQTT 5 properties of the message"},
    {.key = "roleArn", .type = ACT_OPT_IGNORED, .max = 2048,
     .help = "AWS IAM role; accepted and not used"},
    {0},
};

/* }====== */

/* Copies template text into the next slot; its index, or -1 on OOM. */
static int add_tpl(republish *r, const char *t, eng_error *e) {
    if (!(r->tpl[r->ntpl] = strdup(t)))
        return eng_error_set(e, 500, "InternalException", "out of memory");
    return (int)r->ntpl++;
}

/* The slot of an optional header template, -1 when absent; -2 on OOM. */
static int opt_tpl(republish *r, const char *t, eng_error *e) {
    if (!t)
        return -1;
    int slot = add_tpl(r, t, e);
    return slot < 0 ? -2 : slot;
}

static void rp_close(act_instance *self);

static int rp_open(const act_config *cfg, act_instance **out, eng_error *e) {
    rp_opts o = {0};
    if (act_options_parse("republish", rp_options, cfg->params, &o, e))
        return -1;
    republish *r = calloc(1, sizeof *r);
    if (!r)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    r->host = cfg->host;
    r->qos = o.qos;
    r->format = o.h.format;
    if (add_tpl(r, o.topic, e) < 0 || (r->slot_ctype = opt_tpl(r, o.h.content_type, e)) == -2 ||
        (r->slot_resp = opt_tpl(r, o.h.response_topic, e)) == -2 ||
        (r->slot_corr = opt_tpl(r, o.h.correlation_data, e)) == -2 ||
        (r->slot_expiry = opt_tpl(r, o.h.message_expiry, e)) == -2)
        goto fail;
    r->user0 = (int)r->ntpl;
    for (size_t i = 0; i < o.h.nuser; i++, r->nuser++)
        if (add_tpl(r, o.h.user[i].key, e) < 0 || add_tpl(r, o.h.user[i].value, e) < 0)
            goto fail;
    r->base.lanes = 1;
    r->base.max_batch = 256;
    r->base.deliver_inline = 1; /* the host's publish only queues in libmosquitto */
    r->base.holds_until_acked = 1; /* rp_acked() releases journaled messages */
    snprintf(r->base.resource, sizeof r->base.resource, "%s", o.topic);
    *out = &r->base;
    return 0;
fail:
    rp_close(&r->base);
    return -1;
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

/* The broker's answer to a republished copy of a journaled message: acknowledged, the journal
 * may retire the message (once its other actions are done too); refused or never answered
 * (sluice stopped first), it stays in the journal and is replayed at the next start. */
typedef struct rp_ack {
    const eng_host *host; /* outlives every message */
    eng_msg *in;          /* retained until the answer */
} rp_ack;

static void rp_acked(void *ud, int ok, const char *err) {
    rp_ack *a = ud;
    if (!ok) {
        atomic_store(&a->in->keep, 1);
        act_count(a->host, ENG_COUNT_REPUBLISH_FAILED, 1);
        act_log(a->host, ENG_LOG_WARN, "republish.unacknowledged",
                "republish of a message on %s: %s; it stays in the journal", a->in->topic,
                err ? err : "no acknowledgement");
    }
    eng_msg_free(a->in);
    free(a);
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
    /* a journaled message stays in the journal until the broker acknowledged its copy */
    rp_ack *held = NULL;
    if (m->in && m->in->origin) {
        if (!(held = malloc(sizeof *held))) {
            snprintf(err, cap, "out of memory");
            return ACT_RETRY;
        }
        *held = (rp_ack){r->host, eng_msg_retain((eng_msg *)m->in)};
    }
    if (!r->host->publish ||
        r->host->publish(r->host->ud, topic, m->payload, m->payload_len, r->qos, &props,
                         hops + 1, held ? rp_acked : NULL, held) != 0) {
        if (held) {
            eng_msg_free(held->in);
            free(held);
        }
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
    .description = "AWS's republish action: publish to an MQTT topic through sluice's output "
                   "connection",
    .options = rp_options,
};

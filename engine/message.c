/*
 * message.c -- incoming messages (one allocation each, everything copied in) and the
 * REST API's error values.
 */
#include "engine_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

eng_msg *eng_msg_new(const char *topic, size_t topic_len, const void *payload, size_t len,
                     const sql_mqtt_props *props, const char *clientid, int source) {
    size_t extra = topic_len + 1 + len + 1 + slen(clientid);
    size_t nuser = props ? props->nuser : 0;
    if (props) {
        extra += slen(props->content_type) + slen(props->response_topic) +
                 props->correlation_len + 1;
        for (size_t i = 0; i < nuser; i++)
            extra += slen(props->user[i].key) + slen(props->user[i].value);
    }
    eng_msg *m = calloc(1, sizeof *m + sizeof(sql_user_prop) * nuser + extra);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->user = (sql_user_prop *)(m + 1);
    char *p = (char *)(m->user + nuser);
#define COPY(dst, src, n)                                                                          \
    do {                                                                                           \
        memcpy(p, (src), (n));                                                                     \
        p[(n)] = '\0';                                                                             \
        (dst) = p;                                                                                 \
        p += (n) + 1;                                                                              \
    } while (0)
    COPY(m->topic, topic, topic_len);
    m->topic_len = topic_len;
    char *pl;
    COPY(pl, payload, len);
    m->payload = pl;
    m->payload_len = len;
    if (clientid)
        COPY(m->clientid, clientid, strlen(clientid));
    m->source = source;
    m->props.format_indicator = -1;
    m->props.message_expiry = -1;
    if (props) {
        const char *s;
        if (props->content_type) {
            COPY(s, props->content_type, strlen(props->content_type));
            m->props.content_type = s;
        }
        if (props->response_topic) {
            COPY(s, props->response_topic, strlen(props->response_topic));
            m->props.response_topic = s;
        }
        if (props->correlation_data) {
            COPY(s, props->correlation_data, props->correlation_len);
            m->props.correlation_data = s;
            m->props.correlation_len = props->correlation_len;
        }
        m->props.format_indicator = props->format_indicator;
        m->props.message_expiry = props->message_expiry;
        for (size_t i = 0; i < nuser; i++) {
            COPY(m->user[i].key, props->user[i].key, strlen(props->user[i].key));
            COPY(m->user[i].value, props->user[i].value, strlen(props->user[i].value));
        }
        m->props.user = m->user;
        m->props.nuser = nuser;
    }
#undef COPY
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->received_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return m;
}

eng_msg *eng_msg_retain(eng_msg *m) {
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void eng_msg_free(eng_msg *m) {
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

void eng_msg_sql(const eng_msg *m, const char *rule_name, const char *accountid,
                 sql_message *out) {
    *out = (sql_message){.topic = m->topic,
                         .topic_len = m->topic_len,
                         .payload = m->payload,
                         .payload_len = m->payload_len,
                         .clientid = m->clientid,
                         .accountid = accountid,
                         .protocol = m->source == ENG_SRC_HTTP ? SQL_PROTO_HTTP : SQL_PROTO_MQTT,
                         .rule_name = rule_name,
                         .props = &m->props};
}

int eng_error_set(eng_error *e, int status, const char *type, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

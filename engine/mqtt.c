/*
 * mqtt.c -- the MQTT side of the service (libmosquitto): one connection that subscribes and
 * feeds the workers, one that publishes the actions' output.
 *
 * Each connection has its own thread running libmosquitto's manual loop, and reconnects after
 * a failure with exponential backoff and full jitter, capped at 30 s. The input connection
 * subscribes (QoS 1) to exactly the FROM filters of the enabled rules, deduplicated and kept
 * sorted so that a rule change subscribes or unsubscribes only what changed, with the
 * optional $share/<group>/ prefix so several instances split the traffic; the set is kept and
 * re-subscribed after every reconnect. Its message callback hands each message to the workers
 * and blocks while the target queue is full: the loop then stops reading the socket, which is
 * the back-pressure the design asks for. Two connections rather than one keep the output
 * flowing while the input is blocked.
 *
 * A subscriber is not told who published a message, so clientid() and principal() read the
 * MQTT 5 user properties "clientid" and "principal" when the publisher (or a broker plugin)
 * sets them; otherwise clientid() is "n/a" and principal() is Undefined (sql/README.md).
 */
#include "engine_int.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    struct mosquitto *mosq;
    pthread_t th;
    int started;
    _Atomic int connected;
    const char *role; /* "input" / "output" */
} conn;

struct eng_mqtt {
    const eng_config *cfg;
    eng_workers *ws;
    char host[256];
    int port, tls;
    conn in, out;
    _Atomic int stop_in, stop_all;
    pthread_mutex_t mu; /* guards filters */
    char **filters;
    size_t nfilters;
};

static int parse_url(eng_mqtt *mq, const char *url) {
    const char *p;
    if (!strncmp(url, "mqtt://", 7)) {
        p = url + 7;
        mq->port = 1883;
    } else if (!strncmp(url, "mqtts://", 8)) {
        p = url + 8;
        mq->port = 8883;
        mq->tls = 1;
    } else {
        return -1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof mq->host)
        return -1;
    memcpy(mq->host, p, hl);
    mq->host[hl] = '\0';
    if (p[hl] == ':') {
        char *end;
        long port = strtol(p + hl + 1, &end, 10);
        if (port < 1 || port > 65535 || (*end && *end != '/'))
            return -1;
        mq->port = (int)port;
    }
    return 0;
}

static void sub_name(const eng_mqtt *mq, const char *f, char *out, size_t cap);

static void subscribe_all(eng_mqtt *mq) {
    pthread_mutex_lock(&mq->mu);
    for (size_t i = 0; i < mq->nfilters; i++) {
        char sub[600];
        sub_name(mq, mq->filters[i], sub, sizeof sub);
        int rc = mosquitto_subscribe(mq->in.mosq, NULL, sub, 1);
        if (rc != MOSQ_ERR_SUCCESS)
            eng_log(ENG_LOG_WARN, "mqtt.subscribe", "subscribe %s: %s", sub,
                    mosquitto_strerror(rc));
    }
    pthread_mutex_unlock(&mq->mu);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags,
                       const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    conn *c = mosq == mq->in.mosq ? &mq->in : &mq->out;
    if (rc != 0) {
        eng_log(ENG_LOG_WARN, "mqtt.connect", "%s connection refused: %s", c->role,
                mosquitto_connack_string(rc));
        return;
    }
    atomic_store(&c->connected, 1);
    eng_log(ENG_LOG_INFO, "mqtt.connected", "%s connection up (%s:%d)", c->role, mq->host,
            mq->port);
    if (c == &mq->in)
        subscribe_all(mq);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc,
                          const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    conn *c = mosq == mq->in.mosq ? &mq->in : &mq->out;
    atomic_store(&c->connected, 0);
    if (!atomic_load(&mq->stop_all))
        eng_log(ENG_LOG_WARN, "mqtt.disconnected", "%s connection lost: %s", c->role,
                mosquitto_strerror(rc));
}

/* The MQTT 5 properties of an incoming message, as sql_mqtt_props (strings borrowed from
 * libmosquitto for the duration of the callback: eng_msg_new copies them). */
typedef struct propbuf {
    sql_mqtt_props p;
    sql_user_prop user[32];
    char *owned[70];
    int nowned;
    int hops;
    char *clientid, *principal;
} propbuf;

static void read_props(const mosquitto_property *props, propbuf *b) {
    memset(b, 0, sizeof *b);
    b->p.format_indicator = -1;
    b->p.message_expiry = -1;
    for (const mosquitto_property *pr = props; pr; pr = mosquitto_property_next(pr)) {
        int id = mosquitto_property_identifier(pr);
        char *s = NULL, *k = NULL, *v = NULL;
        void *bin = NULL;
        uint16_t blen = 0;
        uint8_t byte;
        uint32_t u32;
        switch (id) {
        case MQTT_PROP_CONTENT_TYPE:
            if (mosquitto_property_read_string(pr, id, &s, false))
                b->p.content_type = b->owned[b->nowned++] = s;
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            if (mosquitto_property_read_string(pr, id, &s, false))
                b->p.response_topic = b->owned[b->nowned++] = s;
            break;
        case MQTT_PROP_CORRELATION_DATA:
            if (mosquitto_property_read_binary(pr, id, &bin, &blen, false)) {
                b->p.correlation_data = b->owned[b->nowned++] = bin;
                b->p.correlation_len = blen;
            }
            break;
        case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
            if (mosquitto_property_read_byte(pr, id, &byte, false))
                b->p.format_indicator = byte;
            break;
        case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
            if (mosquitto_property_read_int32(pr, id, &u32, false))
                b->p.message_expiry = u32;
            break;
        case MQTT_PROP_USER_PROPERTY:
            if (!mosquitto_property_read_string_pair(pr, id, &k, &v, false))
                break;
            if (b->nowned + 2 > 70 || b->p.nuser >= 32) {
                free(k);
                free(v);
                break;
            }
            b->owned[b->nowned++] = k;
            b->owned[b->nowned++] = v;
            if (!strcmp(k, "sluice-hops"))
                b->hops = atoi(v);
            else if (!strcmp(k, "clientid"))
                b->clientid = v;
            else if (!strcmp(k, "principal"))
                b->principal = v;
            b->user[b->p.nuser++] = (sql_user_prop){k, v};
            break;
        default:
            break;
        }
    }
    b->p.user = b->user;
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    propbuf pb;
    read_props(props, &pb);
    if ((size_t)msg->payloadlen > SQL_MAX_PAYLOAD) {
        atomic_fetch_add(&eng_metrics_global.dropped[ENG_DROP_TOO_LARGE], 1);
        eng_log(ENG_LOG_WARN, "mqtt.too_large", "message on %s has %d bytes (limit %u)",
                msg->topic, msg->payloadlen, SQL_MAX_PAYLOAD);
    } else {
        eng_msg *m = eng_msg_new(msg->topic, strlen(msg->topic), msg->payload,
                                 (size_t)msg->payloadlen, &pb.p, pb.clientid, ENG_SRC_MQTT);
        if (m) {
            m->qos = msg->qos;
            m->hops = pb.hops;
            /* blocks while the worker's queue is full: the read loop stops (back-pressure) */
            if (eng_workers_submit_take(mq->ws, m, -1) != 0)
                eng_msg_free(m);
        }
    }
    for (int i = 0; i < pb.nowned; i++)
        free(pb.owned[i]);
}

static int backoff_ms(int attempt) {
    /* exponential backoff with full jitter, capped at 30 s */
    long cap = 500L << (attempt < 6 ? attempt : 6);
    if (cap > 30000)
        cap = 30000;
    return (int)(random() % (cap + 1));
}

typedef struct loop_arg {
    eng_mqtt *mq;
    conn *c;
} loop_arg;

static void *loop_main(void *arg) {
    eng_mqtt *mq = ((loop_arg *)arg)->mq;
    conn *c = ((loop_arg *)arg)->c;
    free(arg);
    int attempt = 0, up = 0;
    while (!atomic_load(&mq->stop_all) && !(c == &mq->in && atomic_load(&mq->stop_in))) {
        if (!up) {
            int rc = attempt == 0 ? mosquitto_connect_bind_v5(c->mosq, mq->host, mq->port,
                                                               mq->cfg->mqtt_keepalive, NULL,
                                                               NULL)
                                  : mosquitto_reconnect(c->mosq);
            if (rc != MOSQ_ERR_SUCCESS) {
                int ms = backoff_ms(attempt++);
                eng_log(ENG_LOG_WARN, "mqtt.connect", "%s connection to %s:%d failed (%s); "
                        "retrying in %d ms", c->role, mq->host, mq->port,
                        mosquitto_strerror(rc), ms);
                for (int t = 0; t < ms / 50 && !atomic_load(&mq->stop_all); t++)
                    usleep(50000);
                continue;
            }
            up = 1;
        }
        int rc = mosquitto_loop(c->mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS && !atomic_load(&mq->stop_all)) {
            up = 0;
            atomic_store(&c->connected, 0);
            if (attempt == 0)
                attempt = 1;
            int ms = backoff_ms(attempt++);
            for (int t = 0; t < ms / 50 && !atomic_load(&mq->stop_all); t++)
                usleep(50000);
        } else if (rc == MOSQ_ERR_SUCCESS && atomic_load(&c->connected)) {
            attempt = 1; /* a later failure starts the backoff again from the bottom */
        }
    }
    if (c == &mq->out) { /* let queued QoS 1 output go out before disconnecting */
        for (int i = 0; i < 20 && mosquitto_want_write(c->mosq); i++)
            mosquitto_loop(c->mosq, 50, 1);
    }
    mosquitto_disconnect(c->mosq);
    return NULL;
}

static int conn_init(eng_mqtt *mq, conn *c, const char *role, const char *suffix) {
    char id[200];
    snprintf(id, sizeof id, "%s-%s", mq->cfg->mqtt_client_id, suffix);
    c->role = role;
    c->mosq = mosquitto_new(id, true, mq);
    if (!c->mosq)
        return -1;
    mosquitto_threaded_set(c->mosq, true);
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         mq->cfg->mqtt_version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    if (mq->cfg->mqtt_username[0])
        mosquitto_username_pw_set(c->mosq, mq->cfg->mqtt_username,
                                  mq->cfg->mqtt_password[0] ? mq->cfg->mqtt_password : NULL);
    if (mq->tls) {
        const eng_config *cf = mq->cfg;
        int rc = mosquitto_tls_set(c->mosq, cf->mqtt_ca_file[0] ? cf->mqtt_ca_file : NULL,
                                   cf->mqtt_ca_file[0] ? NULL : "/etc/ssl/certs",
                                   cf->mqtt_cert_file[0] ? cf->mqtt_cert_file : NULL,
                                   cf->mqtt_key_file[0] ? cf->mqtt_key_file : NULL, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            eng_log(ENG_LOG_ERROR, "mqtt.tls", "TLS setup: %s", mosquitto_strerror(rc));
            return -1;
        }
    }
    mosquitto_connect_v5_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect);
    if (c == &mq->in)
        mosquitto_message_v5_callback_set(c->mosq, on_message);
    return 0;
}

eng_mqtt *eng_mqtt_new(const eng_config *cfg, eng_workers *ws) {
    static int lib;
    if (!lib++)
        mosquitto_lib_init();
    eng_mqtt *mq = calloc(1, sizeof *mq);
    if (!mq)
        return NULL;
    mq->cfg = cfg;
    mq->ws = ws;
    pthread_mutex_init(&mq->mu, NULL);
    if (parse_url(mq, cfg->mqtt_url) != 0) {
        eng_log(ENG_LOG_ERROR, "mqtt.url", "bad MQTT URL '%s' (mqtt://host:port or "
                "mqtts://host:port)", cfg->mqtt_url);
        free(mq);
        return NULL;
    }
    if (conn_init(mq, &mq->in, "input", "in") || conn_init(mq, &mq->out, "output", "out")) {
        eng_mqtt_free(mq);
        return NULL;
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    return mq;
}

static int start_conn(eng_mqtt *mq, conn *c) {
    loop_arg *arg = malloc(sizeof *arg);
    if (!arg)
        return -1;
    arg->mq = mq;
    arg->c = c;
    if (pthread_create(&c->th, NULL, loop_main, arg) != 0) {
        free(arg);
        return -1;
    }
    c->started = 1;
    return 0;
}

int eng_mqtt_start(eng_mqtt *mq) {
    if (start_conn(mq, &mq->out) || start_conn(mq, &mq->in))
        return -1;
    return 0;
}

static void sub_name(const eng_mqtt *mq, const char *f, char *out, size_t cap) {
    if (mq->cfg->mqtt_shared_group[0])
        snprintf(out, cap, "$share/%s/%s", mq->cfg->mqtt_shared_group, f);
    else
        snprintf(out, cap, "%s", f);
}

void eng_mqtt_set_filters(eng_mqtt *mq, const char *const *filters, size_t n) {
    /* both lists are sorted: one merge pass finds what to add and what to drop, so a rule
       change costs one SUBSCRIBE or UNSUBSCRIBE, not one per rule */
    pthread_mutex_lock(&mq->mu);
    int up = atomic_load(&mq->in.connected);
    size_t i = 0, j = 0;
    char sub[600];
    while (i < mq->nfilters || j < n) {
        int c = i == mq->nfilters ? 1 : j == n ? -1 : strcmp(mq->filters[i], filters[j]);
        if (c < 0) {
            sub_name(mq, mq->filters[i], sub, sizeof sub);
            if (up)
                mosquitto_unsubscribe(mq->in.mosq, NULL, sub);
            i++;
        } else if (c > 0) {
            sub_name(mq, filters[j], sub, sizeof sub);
            if (up && mosquitto_subscribe(mq->in.mosq, NULL, sub, 1) != MOSQ_ERR_SUCCESS)
                eng_log(ENG_LOG_WARN, "mqtt.subscribe", "subscribe %s failed", sub);
            j++;
        } else {
            i++, j++;
        }
    }
    char **nf = calloc(n + 1, sizeof *nf);
    size_t k = 0;
    for (size_t t = 0; nf && t < n; t++)
        if ((nf[k] = strdup(filters[t])))
            k++;
    for (size_t t = 0; t < mq->nfilters; t++)
        free(mq->filters[t]);
    free(mq->filters);
    mq->filters = nf;
    mq->nfilters = nf ? k : 0;
    pthread_mutex_unlock(&mq->mu);
}

int eng_mqtt_publish(eng_mqtt *mq, const char *topic, const void *payload, size_t len, int qos,
                     const sql_mqtt_props *props, int hops) {
    if (!atomic_load(&mq->out.connected))
        return -1;
    mosquitto_property *pr = NULL;
    if (mq->cfg->mqtt_version == 5) { /* MQTT 3.1.1 has no properties: they are dropped */
        char h[16];
        snprintf(h, sizeof h, "%d", hops);
        mosquitto_property_add_string_pair(&pr, MQTT_PROP_USER_PROPERTY, "sluice-hops", h);
        if (props && props->content_type && props->content_type[0])
            mosquitto_property_add_string(&pr, MQTT_PROP_CONTENT_TYPE, props->content_type);
        if (props && props->response_topic && props->response_topic[0])
            mosquitto_property_add_string(&pr, MQTT_PROP_RESPONSE_TOPIC, props->response_topic);
        if (props && props->correlation_data)
            mosquitto_property_add_binary(&pr, MQTT_PROP_CORRELATION_DATA, props->correlation_data,
                                          (uint16_t)props->correlation_len);
        if (props && props->format_indicator >= 0)
            mosquitto_property_add_byte(&pr, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR,
                                        (uint8_t)props->format_indicator);
        if (props && props->message_expiry >= 0)
            mosquitto_property_add_int32(&pr, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                         (uint32_t)props->message_expiry);
        for (size_t i = 0; props && i < props->nuser; i++)
            mosquitto_property_add_string_pair(&pr, MQTT_PROP_USER_PROPERTY, props->user[i].key,
                                               props->user[i].value);
    }
    int rc = mosquitto_publish_v5(mq->out.mosq, NULL, topic, (int)len, payload, qos, false, pr);
    mosquitto_property_free_all(&pr);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

int eng_mqtt_connected(const eng_mqtt *mq) {
    return atomic_load(&mq->in.connected) && atomic_load(&mq->out.connected);
}

void eng_mqtt_stop_input(eng_mqtt *mq) {
    atomic_store(&mq->stop_in, 1);
    if (mq->in.started) {
        pthread_join(mq->in.th, NULL);
        mq->in.started = 0;
    }
}

void eng_mqtt_free(eng_mqtt *mq) {
    if (!mq)
        return;
    atomic_store(&mq->stop_all, 1);
    atomic_store(&mq->stop_in, 1);
    if (mq->in.started)
        pthread_join(mq->in.th, NULL);
    if (mq->out.started)
        pthread_join(mq->out.th, NULL);
    if (mq->in.mosq)
        mosquitto_destroy(mq->in.mosq);
    if (mq->out.mosq)
        mosquitto_destroy(mq->out.mosq);
    for (size_t i = 0; i < mq->nfilters; i++)
        free(mq->filters[i]);
    free(mq->filters);
    pthread_mutex_destroy(&mq->mu);
    free(mq);
    mosquitto_lib_cleanup(); /* frees OpenSSL's global state too (one eng_mqtt per process) */
}

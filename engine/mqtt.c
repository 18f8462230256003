/*
 * mqtt.c -- the MQTT side of the service (libmosquitto): the two connections' setup, the
 * output connection that publishes the actions' output, and the input's subscription set.
 * The input connection's read loop, which journals every message before it acknowledges it,
 * is ingest/mqtt_source.c.
 *
 * Two connections rather than one: the output keeps flowing while the input has stopped
 * reading (back-pressure), and the input's outgoing queue then holds only its PUBACKs, whose
 * release the input loop controls. Both reconnect after a failure with exponential backoff and
 * full jitter, capped at 30 s.
 *
 * The input connection is a persistent session (clean start off, MQTT 5 session expiry) under
 * a client id that stays the same across restarts of one data dir, so the broker keeps what
 * arrives while sluice is down. It subscribes (QoS 1) to exactly the FROM filters of the
 * enabled rules, deduplicated and kept sorted so that a rule change subscribes or unsubscribes
 * only what changed, with the optional $share/<group>/ prefix so several instances split the
 * traffic; every SUBACK is checked, and a refused filter is logged, counted and reported.
 * A filter that starts with '$' ($aws/things/+/shadow/update, a rule FROM '$aws/...') never
 * gets the prefix: Mosquitto files "$share/g/$aws/x" under a first level "" and looks up a
 * "$aws/x" publish under "$aws", so such a shared subscription never receives anything
 * (src/topic_tok.c, sub__topic_tokenise; 2.0.11 to 2.0.20). In a fleet one instance at a time
 * takes those topics instead (the store's lease, serve.c). Filters the input must not keep
 * (eng_mqtt_forget_filters, and every filter no rule wants any more) are unsubscribed at once
 * and again at every connect until the broker's UNSUBACK confirms it: a resumed persistent
 * session still holds what an earlier run subscribed, and an UNSUBSCRIBE lost with a
 * connection changed nothing.
 *
 * Publishing: eng_mqtt_publish() queues in libmosquitto; with a completion, the completion runs
 * when the broker acknowledged the message (QoS 1 PUBACK; QoS 0 once written), found by packet
 * id in a table of 65536 slots. The publisher holds the table's lock across the publish call
 * and its registration, so the acknowledgement (handled under the same lock on the output
 * thread) cannot overtake it; libmosquitto takes none of our locks, so the order is safe.
 * libmosquitto re-sends unacknowledged QoS 1 messages after a reconnect, so a completion is
 * final: acknowledged, or refused by the broker with a reason code.
 *
 * A subscriber is not told who published a message, so clientid() and principal() read the
 * MQTT 5 user properties "clientid" and "principal" when the publisher (or a broker plugin)
 * sets them; otherwise clientid() is "n/a" and principal() is Undefined (sql/README.md).
 */
#include "mqtt_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A publish in libmosquitto's hands, indexed by packet id: every QoS 1 publish has one, so
 * npend counts what libmosquitto holds, and a completion is found by the id. */
typedef struct eng_mqtt_pending {
    eng_mqtt_done_fn fn; /* NULL: nobody to tell */
    void *ud;
    int used;
} eng_mqtt_pending;

static int parse_url(eng_mqtt *mq, const char *url) {
    const char *p;
    if (!strcmp(url, "none")) {
        mq->input_off = 1;
        return 0;
    }
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

void eng__mqtt_sub_name(const eng_mqtt *mq, const char *f, char *out, size_t cap) {
    if (mq->cfg->mqtt_shared_group[0] && f[0] != '$')
        snprintf(out, cap, "$share/%s/%s", mq->cfg->mqtt_shared_group, f);
    else
        snprintf(out, cap, "%s", f);
}

/* Sends SUBSCRIBE for subs[i] (mu held). */
static void subscribe_one(eng_mqtt *mq, size_t i) {
    char sub[600];
    eng__mqtt_sub_name(mq, mq->subs[i].filter, sub, sizeof sub);
    int mid = 0;
    mq->subs[i].code = -1;
    int rc = mosquitto_subscribe(mq->in.mosq, &mid, sub, 1);
    mq->subs[i].mid = rc == MOSQ_ERR_SUCCESS ? mid : 0;
    if (rc != MOSQ_ERR_SUCCESS)
        eng_log(ENG_LOG_WARN, "mqtt.subscribe", "subscribe %s: %s", sub, mosquitto_strerror(rc));
}

static void unsubscribe(eng_mqtt *mq, struct eng_mqtt_drop *d) {
    char sub[600];
    eng__mqtt_sub_name(mq, d->filter, sub, sizeof sub);
    int mid = 0;
    d->mid = mosquitto_unsubscribe(mq->in.mosq, &mid, sub) == MOSQ_ERR_SUCCESS ? mid : 0;
}

/* Adds f to the filters to unsubscribe, and unsubscribes it now when the input is up (mu
 * held). */
static void forget(eng_mqtt *mq, const char *f, int up) {
    size_t i = 0;
    while (i < mq->ndrop && strcmp(mq->drop[i].filter, f))
        i++;
    if (i == mq->ndrop) {
        struct eng_mqtt_drop *v = realloc(mq->drop, (mq->ndrop + 1) * sizeof *v);
        if (!v)
            return;
        mq->drop = v;
        if (!(v[i].filter = strdup(f)))
            return;
        v[i].mid = 0;
        mq->ndrop++;
    }
    if (up)
        unsubscribe(mq, &mq->drop[i]);
}

static void drop_at(eng_mqtt *mq, size_t i) {
    free(mq->drop[i].filter);
    mq->drop[i] = mq->drop[--mq->ndrop];
}

/* Removes f from them: it is wanted again (mu held). */
static void unforget(eng_mqtt *mq, const char *f) {
    for (size_t i = 0; i < mq->ndrop; i++)
        if (!strcmp(mq->drop[i].filter, f)) {
            drop_at(mq, i);
            return;
        }
}

/* The broker's UNSUBACK: the session no longer holds that filter. */
static void on_unsubscribe(struct mosquitto *mosq, void *ud, int mid,
                           const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    pthread_mutex_lock(&mq->mu);
    for (size_t i = 0; i < mq->ndrop; i++)
        if (mq->drop[i].mid == mid) {
            drop_at(mq, i);
            break;
        }
    pthread_mutex_unlock(&mq->mu);
}

void eng__mqtt_subscribe_all(eng_mqtt *mq) {
    pthread_mutex_lock(&mq->mu);
    for (size_t i = 0; i < mq->ndrop; i++)
        unsubscribe(mq, &mq->drop[i]);
    for (size_t i = 0; i < mq->nsubs; i++)
        subscribe_one(mq, i);
    pthread_mutex_unlock(&mq->mu);
}

void eng__mqtt_on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted,
                            const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    pthread_mutex_lock(&mq->mu);
    for (size_t i = 0; i < mq->nsubs; i++) {
        if (mq->subs[i].mid != mid)
            continue;
        int code = n > 0 ? granted[0] : 0x80;
        mq->subs[i].code = code;
        if (code >= 0x80) {
            atomic_fetch_add(&mq->refused, 1);
            eng_log(ENG_LOG_ERROR, "mqtt.subscription_refused",
                    "the broker refused the subscription to '%s' (SUBACK reason code 0x%02x): "
                    "rules on it receive nothing", mq->subs[i].filter, code);
        } else if (code == 0) {
            eng_log(ENG_LOG_WARN, "mqtt.subscription_downgraded",
                    "the broker granted the subscription to '%s' at QoS 0 only: its messages "
                    "are not acknowledged, so the broker does not keep them across a restart "
                    "(check the broker's max_qos)", mq->subs[i].filter);
        }
        break;
    }
    pthread_mutex_unlock(&mq->mu);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags,
                       const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    eng_mqtt_conn *c = mosq == mq->in.mosq ? &mq->in : &mq->out;
    if (rc != 0) {
        eng_log(ENG_LOG_WARN, "mqtt.connect", "%s connection refused: %s", c->role,
                mosquitto_connack_string(rc));
        return;
    }
    atomic_store(&c->connected, 1);
    eng_log(ENG_LOG_INFO, "mqtt.connected", "%s connection up (%s:%d)%s", c->role, mq->host,
            mq->port, c == &mq->in && (flags & 1) ? ", session resumed" : "");
    if (c == &mq->in)
        eng__mqtt_subscribe_all(mq);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc,
                          const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    eng_mqtt_conn *c = mosq == mq->in.mosq ? &mq->in : &mq->out;
    atomic_store(&c->connected, 0);
    if (!atomic_load(&mq->stop_all))
        eng_log(ENG_LOG_WARN, "mqtt.disconnected", "%s connection lost: %s", c->role,
                mosquitto_strerror(rc));
}

/* {====== incoming messages */

eng_msg *eng__mqtt_msg_new(const struct mosquitto_message *msg, const mosquitto_property *props) {
    sql_mqtt_props p = {.format_indicator = -1, .message_expiry = -1};
    sql_user_prop user[32];
    char *owned[70];
    int nowned = 0, hops = 0;
    const char *clientid = NULL;
    for (const mosquitto_property *pr = props; pr; pr = mosquitto_property_next(pr)) {
        int id = mosquitto_property_identifier(pr);
        char *s = NULL, *k = NULL, *v = NULL;
        void *bin = NULL;
        uint16_t blen = 0;
        uint8_t byte;
        uint32_t u32;
        switch (id) {
        case MQTT_PROP_CONTENT_TYPE:
            if (!p.content_type && mosquitto_property_read_string(pr, id, &s, false))
                p.content_type = owned[nowned++] = s;
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            if (!p.response_topic && mosquitto_property_read_string(pr, id, &s, false))
                p.response_topic = owned[nowned++] = s;
            break;
        case MQTT_PROP_CORRELATION_DATA:
            if (!p.correlation_data && mosquitto_property_read_binary(pr, id, &bin, &blen, false)) {
                p.correlation_data = owned[nowned++] = bin;
                p.correlation_len = blen;
            }
            break;
        case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
            if (mosquitto_property_read_byte(pr, id, &byte, false))
                p.format_indicator = byte;
            break;
        case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
            if (mosquitto_property_read_int32(pr, id, &u32, false))
                p.message_expiry = u32;
            break;
        case MQTT_PROP_USER_PROPERTY:
            if (!mosquitto_property_read_string_pair(pr, id, &k, &v, false))
                break;
            if (nowned + 2 > 70 || p.nuser >= 32) { /* a bounded copy: the first 32 */
                free(k);
                free(v);
                break;
            }
            owned[nowned++] = k;
            owned[nowned++] = v;
            if (!strcmp(k, "sluice-hops"))
                hops = atoi(v);
            else if (!strcmp(k, "clientid"))
                clientid = v;
            user[p.nuser++] = (sql_user_prop){k, v};
            break;
        default:
            break;
        }
    }
    p.user = user;
    const char *topic = msg->topic ? msg->topic : "";
    eng_msg *m = eng_msg_new(topic, strlen(topic), msg->payload,
                             msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, &p, clientid,
                             ENG_SRC_MQTT);
    if (m) {
        m->qos = msg->qos;
        m->hops = hops;
    }
    for (int i = 0; i < nowned; i++)
        free(owned[i]);
    return m;
}

/* }====== */

/* {====== connections */

int eng__mqtt_backoff_ms(int attempt) {
    long cap = 500L << (attempt < 6 ? attempt : 6);
    if (cap > 30000)
        cap = 30000;
    return (int)(random() % (cap + 1));
}

void eng__mqtt_nap(eng_mqtt *mq, int ms) {
    for (int t = 0; t < ms / 20 && !atomic_load(&mq->stop_all); t++)
        usleep(20000);
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid, int reason,
                       const mosquitto_property *props);

int eng__mqtt_conn_init(eng_mqtt *mq, eng_mqtt_conn *c, const char *role, const char *id,
                        int clean) {
    const eng_config *cf = mq->cfg;
    c->role = role;
    c->mosq = mosquitto_new(id, clean, mq);
    if (!c->mosq)
        return -1;
    mosquitto_threaded_set(c->mosq, true);
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         cf->mqtt_version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    if (c == &mq->in && cf->mqtt_version == 5)
        mosquitto_int_option(c->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, cf->mqtt_receive_maximum);
    if (cf->mqtt_username[0])
        mosquitto_username_pw_set(c->mosq, cf->mqtt_username,
                                  cf->mqtt_password[0] ? cf->mqtt_password : NULL);
    if (mq->tls) {
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
    if (c == &mq->in) {
        mosquitto_message_v5_callback_set(c->mosq, eng__mqtt_on_message);
        mosquitto_subscribe_v5_callback_set(c->mosq, eng__mqtt_on_subscribe);
        mosquitto_unsubscribe_v5_callback_set(c->mosq, on_unsubscribe);
    } else {
        mosquitto_publish_v5_callback_set(c->mosq, on_publish);
    }
    return 0;
}

static void *out_main(void *arg) {
    eng_mqtt *mq = arg;
    eng_mqtt_conn *c = &mq->out;
    int attempt = 0, up = 0;
    while (!atomic_load(&mq->stop_all)) {
        if (!up) {
            int rc = attempt == 0 ? mosquitto_connect_bind_v5(c->mosq, mq->host, mq->port,
                                                               mq->cfg->mqtt_keepalive, NULL,
                                                               NULL)
                                  : mosquitto_reconnect(c->mosq);
            if (rc != MOSQ_ERR_SUCCESS) {
                int ms = eng__mqtt_backoff_ms(attempt++);
                eng_log(ENG_LOG_WARN, "mqtt.connect", "%s connection to %s:%d failed (%s); "
                        "retrying in %d ms", c->role, mq->host, mq->port,
                        mosquitto_strerror(rc), ms);
                eng__mqtt_nap(mq, ms);
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
            eng__mqtt_nap(mq, eng__mqtt_backoff_ms(attempt++));
        } else if (rc == MOSQ_ERR_SUCCESS && atomic_load(&c->connected)) {
            attempt = 1; /* a later failure starts the backoff again from the bottom */
        }
    }
    /* let queued output go out, and its acknowledgements come back, before disconnecting
     * (bounded: what is still unacknowledged then stays in the journal for the next start) */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&mq->pmu);
        size_t waiting = mq->npend;
        pthread_mutex_unlock(&mq->pmu);
        if (!waiting && !mosquitto_want_write(c->mosq))
            break;
        if (mosquitto_loop(c->mosq, 50, 1) != MOSQ_ERR_SUCCESS)
            break;
    }
    mosquitto_disconnect(c->mosq);
    mosquitto_loop(c->mosq, 50, 1);
    return NULL;
}

/* }====== */

eng_mqtt *eng_mqtt_new(eng_env *env) {
    const eng_config *cfg = env->cfg;
    static int lib;
    if (!lib++)
        mosquitto_lib_init();
    eng_mqtt *mq = calloc(1, sizeof *mq);
    if (!mq)
        return NULL;
    mq->cfg = cfg;
    mq->env = env;
    mq->ws = env->workers;
    mq->journal = env->journal;
    pthread_mutex_init(&mq->mu, NULL);
    pthread_mutex_init(&mq->pmu, NULL);
    pthread_cond_init(&mq->acked, NULL);
    if (parse_url(mq, cfg->mqtt_url) != 0) {
        eng_log(ENG_LOG_ERROR, "mqtt.url", "bad MQTT URL '%s' (mqtt://host:port, "
                "mqtts://host:port, or none)", cfg->mqtt_url);
        eng_mqtt_free(mq);
        return NULL;
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    if (mq->input_off)
        return mq;
    char out[200];
    snprintf(out, sizeof out, "%s-out", cfg->mqtt_client_id);
    /* the input is a persistent session: the broker keeps what arrives while sluice is down */
    if (eng__mqtt_conn_init(mq, &mq->in, "input", cfg->mqtt_client_id, 0) ||
        eng__mqtt_conn_init(mq, &mq->out, "output", out, 1)) {
        eng_log(ENG_LOG_ERROR, "mqtt.init", "MQTT client for '%s' not created (%s)",
                cfg->mqtt_client_id, cfg->mqtt_client_id[0] ? strerror(errno)
                                                            : "a persistent session needs a "
                                                              "client id");
        eng_mqtt_free(mq);
        return NULL;
    }
    return mq;
}

int eng_mqtt_start(eng_mqtt *mq) {
    if (mq->input_off)
        return 0;
    if (pthread_create(&mq->out.th, NULL, out_main, mq) != 0)
        return -1;
    mq->out.started = 1;
    return 0;
}

int eng_mqtt_start_input(eng_mqtt *mq, int (*before)(void *ud, const _Atomic int *stop),
                         void *ud) {
    if (mq->input_off)
        return before ? (before(ud, NULL), 0) : 0;
    mq->before = before;
    mq->before_ud = ud;
    if (pthread_create(&mq->in.th, NULL, eng__mqtt_in_main, mq) != 0)
        return -1;
    mq->in.started = 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void eng_mqtt_set_filters(eng_mqtt *mq, const char *const *filters, size_t n) {
    if (mq->input_off)
        return;
    /* both lists are sorted: one merge pass finds what to add and what to drop, so a rule
       change costs one SUBSCRIBE or UNSUBSCRIBE, not one per rule */
    const char **want = malloc((n ? n : 1) * sizeof *want);
    eng_mqtt_sub *nv = calloc(n ? n : 1, sizeof *nv);
    if (!want || !nv) {
        free(want);
        free(nv);
        eng_log(ENG_LOG_ERROR, "mqtt.subscribe", "out of memory updating subscriptions");
        return;
    }
    memcpy(want, filters, n * sizeof *want);
    qsort(want, n, sizeof *want, cmp_str);
    pthread_mutex_lock(&mq->mu);
    int up = atomic_load(&mq->in.connected);
    size_t i = 0, j = 0, k = 0;
    for (size_t t = 0; t < n; t++)
        unforget(mq, want[t]);
    while (i < mq->nsubs || j < n) {
        int c = i == mq->nsubs ? 1 : j == n ? -1 : strcmp(mq->subs[i].filter, want[j]);
        if (c < 0) { /* no longer wanted */
            /* the session keeps it until the broker acknowledges an UNSUBSCRIBE: now, and
             * again at every connect until then */
            forget(mq, mq->subs[i].filter, up);
            free(mq->subs[i].filter);
            i++;
        } else if (c > 0) { /* new */
            if (j && !strcmp(want[j], want[j - 1])) {
                j++;
                continue;
            }
            nv[k] = (eng_mqtt_sub){.filter = strdup(want[j]), .code = -1};
            if (!nv[k].filter) {
                j++;
                continue;
            }
            j++;
            k++;
        } else {
            nv[k++] = mq->subs[i++];
            j++;
        }
    }
    free(mq->subs);
    mq->subs = nv;
    mq->nsubs = k;
    if (up)
        for (size_t t = 0; t < k; t++)
            if (nv[t].code == -1 && nv[t].mid == 0)
                subscribe_one(mq, t);
    pthread_mutex_unlock(&mq->mu);
    free(want);
}

void eng_mqtt_forget_filters(eng_mqtt *mq, const char *const *filters, size_t n) {
    if (mq->input_off)
        return;
    pthread_mutex_lock(&mq->mu);
    int up = atomic_load(&mq->in.connected);
    for (size_t t = 0; t < n; t++) {
        int wanted = 0;
        for (size_t i = 0; i < mq->nsubs && !wanted; i++)
            wanted = !strcmp(mq->subs[i].filter, filters[t]);
        if (wanted)
            continue;
        forget(mq, filters[t], up);
    }
    pthread_mutex_unlock(&mq->mu);
}

int eng_mqtt_dollar_ready(eng_mqtt *mq) {
    int ready = 1;
    pthread_mutex_lock(&mq->mu);
    for (size_t i = 0; i < mq->nsubs; i++)
        if (mq->subs[i].filter[0] == '$' && mq->subs[i].code < 0)
            ready = 0;
    pthread_mutex_unlock(&mq->mu);
    return ready || mq->input_off;
}

int eng_mqtt_filter_status(eng_mqtt *mq, const char *filter) {
    int code = -1;
    pthread_mutex_lock(&mq->mu);
    for (size_t i = 0; i < mq->nsubs; i++)
        if (!strcmp(mq->subs[i].filter, filter)) {
            code = mq->subs[i].code;
            break;
        }
    pthread_mutex_unlock(&mq->mu);
    return code;
}

uint64_t eng_mqtt_refused(eng_mqtt *mq) { return atomic_load(&mq->refused); }

size_t eng_mqtt_unsubscribes_pending(eng_mqtt *mq) {
    pthread_mutex_lock(&mq->mu);
    size_t n = mq->ndrop;
    pthread_mutex_unlock(&mq->mu);
    return n;
}

/* {====== publishing */

static void on_publish(struct mosquitto *mosq, void *ud, int mid, int reason,
                       const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    if (mid < 0 || mid > 65535)
        return;
    pthread_mutex_lock(&mq->pmu);
    eng_mqtt_pending p = mq->pend ? mq->pend[mid] : (eng_mqtt_pending){0};
    if (p.used) {
        mq->pend[mid] = (eng_mqtt_pending){0};
        if (mq->npend-- == (size_t)mq->cfg->action_queue_depth)
            pthread_cond_broadcast(&mq->acked);
    }
    pthread_mutex_unlock(&mq->pmu);
    if (p.fn)
        p.fn(p.ud, reason < 0x80, reason < 0x80 ? NULL : mosquitto_reason_string(reason));
}

/* Whether libmosquitto may take one more QoS 1 message (pmu held): it holds at most an action
 * queue's worth. When it is full -- the broker slower than the input, or the output connection
 * (re)connecting -- waits up to a second for acknowledgements to make room: that is
 * back-pressure, which the caller passes on by taking longer, rather than a failure that would
 * send messages down the failure path. */
static int room_for(eng_mqtt *mq) {
    size_t cap = (size_t)mq->cfg->action_queue_depth;
    if (mq->npend < cap)
        return 1;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 1;
    while (mq->npend >= cap && !atomic_load(&mq->stop_all))
        if (pthread_cond_timedwait(&mq->acked, &mq->pmu, &dl) != 0)
            break;
    return mq->npend < cap;
}

int eng_mqtt_publish(eng_mqtt *mq, const char *topic, const void *payload, size_t len, int qos,
                     const sql_mqtt_props *props, int hops, eng_mqtt_done_fn done, void *ud) {
    if (mq->input_off)
        return -1;
    /* QoS 0 needs the connection now; libmosquitto queues QoS 1 while it reconnects and
     * sends it once it is back, up to an action queue's worth (below), so a republish does
     * not fail, retry and overflow over a short outage */
    if (qos == 0 && !atomic_load(&mq->out.connected))
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
    int mid = 0, rc;
    eng_mqtt_pending old = {0};
    pthread_mutex_lock(&mq->pmu);
    if (!mq->pend)
        mq->pend = calloc(65536, sizeof *mq->pend);
    if (!mq->pend) {
        rc = MOSQ_ERR_NOMEM;
    } else if (qos > 0 && !room_for(mq)) {
        rc = MOSQ_ERR_NOMEM; /* libmosquitto holds an action queue's worth: retry later */
    } else {
        rc = mosquitto_publish_v5(mq->out.mosq, &mid, topic, (int)len, payload, qos, false, pr);
        /* a QoS 1 message libmosquitto could not send now (not connected) is queued all the
         * same, and goes out after the reconnect: it is in its hands, so count it as queued
         * (reporting a failure would make the caller send a second copy) */
        if (qos > 0 && rc == MOSQ_ERR_NO_CONN)
            rc = MOSQ_ERR_SUCCESS;
        if (rc == MOSQ_ERR_SUCCESS && qos > 0) {
            eng_mqtt_pending *p = &mq->pend[mid & 0xffff];
            if (p->used) /* 65536 publishes later the id came round while this one waits */
                old = *p;
            else
                mq->npend++;
            *p = (eng_mqtt_pending){.fn = done, .ud = ud, .used = 1};
        }
    }
    pthread_mutex_unlock(&mq->pmu);
    if (old.fn) /* its acknowledgement can no longer be told apart: not acknowledged */
        old.fn(old.ud, 0, "its packet id was reused before the broker acknowledged it");
    if (rc == MOSQ_ERR_SUCCESS && qos == 0 && done)
        done(ud, 1, NULL); /* QoS 0: handed to the connection is all there is */
    mosquitto_property_free_all(&pr);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

/* }====== */

int eng_mqtt_offline(const eng_mqtt *mq) { return mq->input_off; }

int eng_mqtt_connected(const eng_mqtt *mq) {
    if (mq->input_off)
        return 1;
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
    /* completions that never came: the broker never acknowledged those messages, so their
     * owners must not count them as delivered */
    for (size_t mid = 0; mq->pend && mid < 65536; mid++)
        if (mq->pend[mid].used && mq->pend[mid].fn)
            mq->pend[mid].fn(mq->pend[mid].ud, 0, "sluice stopped before the broker "
                                                  "acknowledged the message");
    free(mq->pend);
    if (mq->in.mosq)
        mosquitto_destroy(mq->in.mosq);
    if (mq->out.mosq)
        mosquitto_destroy(mq->out.mosq);
    for (size_t i = 0; i < mq->nsubs; i++)
        free(mq->subs[i].filter);
    free(mq->subs);
    for (size_t i = 0; i < mq->ndrop; i++)
        free(mq->drop[i].filter);
    free(mq->drop);
    pthread_mutex_destroy(&mq->mu);
    pthread_mutex_destroy(&mq->pmu);
    pthread_cond_destroy(&mq->acked);
    free(mq);
    mosquitto_lib_cleanup(); /* frees OpenSSL's global state too (one eng_mqtt per process) */
}

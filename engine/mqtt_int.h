/*
 * mqtt_int.h -- shared by the two halves of the MQTT side: mqtt.c (the connections, the output
 * connection and publishing) and ingest/mqtt_source.c (the input connection's read loop, which
 * journals before it acknowledges). Private to those two files.
 */
#ifndef SLUICE_MQTT_INT_H
#define SLUICE_MQTT_INT_H

#include "engine_int.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>

typedef struct eng_mqtt_conn {
    struct mosquitto *mosq;
    pthread_t th;
    int started;
    _Atomic int connected;
    const char *role;      /* "input" / "output" */
} eng_mqtt_conn;

/* One subscription of the input connection and what the broker answered. */
typedef struct eng_mqtt_sub {
    char *filter;          /* as the rules give it (without the $share prefix) */
    int mid;               /* of its last SUBSCRIBE; 0: none sent */
    int code;              /* -1 pending; 0..2 granted QoS; >= 0x80 refused (SUBACK code) */
} eng_mqtt_sub;

struct eng_mqtt {
    const eng_config *cfg;
    eng_env *env;          /* the dead-letter store for what the input refuses */
    eng_workers *ws;
    eng_journal *journal;  /* NULL: ingest.journal=off, messages are acknowledged on receipt */
    char host[256];
    int port, tls;
    int input_off;         /* SLUICE_MQTT_URL=none: no connection at all */
    eng_mqtt_conn in, out;
    _Atomic int stop_in, stop_all;
    int (*before)(void *ud, const _Atomic int *stop); /* run by the input before connecting */
    void *before_ud;
    pthread_mutex_t mu;    /* guards subs */
    eng_mqtt_sub *subs;    /* sorted by filter */
    size_t nsubs;
    /* filters the session may still hold but no rule wants: unsubscribed at once when
     * connected and again at every connect, until the broker's UNSUBACK (mid) says the session
     * holds them no more; mu */
    struct eng_mqtt_drop {
        char *filter;
        int mid;           /* of the UNSUBSCRIBE in flight; 0: none */
    } *drop;
    size_t ndrop;
    _Atomic uint64_t refused; /* SUBACKs that refused a filter */
    /* the input loop's current read batch (input thread only) */
    eng_msg *bhead, *btail;
    size_t bn;
    uint64_t blast;        /* seq of the last message journaled in it */
    int bfail;             /* a message of the batch could not be journaled */
    /* publish completions of the output connection */
    pthread_mutex_t pmu;
    pthread_cond_t acked;  /* an acknowledgement made room (npend fell below the bound) */
    struct eng_mqtt_pending *pend; /* open-addressed by mid */
    size_t npend_cap, npend;
};

/* A libmosquitto client for conn c of mq, configured from cfg (protocol, credentials, TLS) in
 * threaded mode, with clean start/session `clean`. -1 on failure. Thread: main. */
int eng__mqtt_conn_init(eng_mqtt *mq, eng_mqtt_conn *c, const char *role, const char *id,
                        int clean);
/* Exponential backoff with full jitter for reconnect attempt k, capped at 30 s. */
int eng__mqtt_backoff_ms(int attempt);
/* Sleeps ms, waking early when the service stops. */
void eng__mqtt_nap(eng_mqtt *mq, int ms);
/* The message of an incoming PUBLISH (MQTT 5 properties included: clientid, principal and
 * sluice-hops come from user properties). NULL on OOM. Thread: input. */
eng_msg *eng__mqtt_msg_new(const struct mosquitto_message *msg, const mosquitto_property *props);
/* The subscription name of filter f ($share/<group>/f when a shared group is configured). */
void eng__mqtt_sub_name(const eng_mqtt *mq, const char *f, char *out, size_t cap);
/* Sends SUBSCRIBE for every filter (after a connect). Thread: input. */
void eng__mqtt_subscribe_all(eng_mqtt *mq);
/* The input connection's loop (ingest/mqtt_source.c). */
void *eng__mqtt_in_main(void *arg);
/* libmosquitto callbacks of the input connection (ingest/mqtt_source.c). */
void eng__mqtt_on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                          const mosquitto_property *props);
void eng__mqtt_on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted,
                            const mosquitto_property *props);

#endif

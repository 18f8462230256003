/*
 * engine.h -- the engine's public face: the one engine header actions/ includes (DESIGN.md,
 * "Layout"; STYLE.md 3.2). Dependencies run actions -> engine.h -> sql.h, and never from
 * actions/ into the engine's code: the actions library links sluice_sql and its client
 * libraries only, so an action can touch nothing of the service but what is declared here.
 *
 * What lives here is either plain data with inline code (an error value, the incoming
 * message, its reference count, the topic hash) or the host interface, eng_host: the narrow
 * set of services and settings the engine lends to actions -- publish over MQTT, count a
 * metric, log a line, and the configuration values actions need. Rejected: handing actions
 * the engine's whole environment (registry, workers, admin), which let any action reach
 * anything and made actions/ and engine/ depend on each other.
 *
 * Ownership: eng_error and eng_host are plain structs owned by whoever declares them; an
 * eng_msg is reference counted (eng_msg_retain / eng_msg_free). A host and every string it
 * points to outlive everything opened with it.
 * Thread: everything here may be called from any thread; the host's callbacks are safe to call
 * concurrently.
 */
#ifndef SLUICE_ENGINE_H
#define SLUICE_ENGINE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

/* {====== errors returned to the REST API (AWS's error shapes) */

typedef struct eng_error {
    int status;        /* HTTP status: 400, 401, 404, 409, 413, 500, 503 */
    const char *type;  /* x-amzn-ErrorType: "SqlParseException", "InvalidRequestException",
                          "ResourceAlreadyExistsException", "ResourceNotFoundException",
                          "UnauthorizedException", "InternalException", "ServiceUnavailableException" */
    char message[512];
    sql_diag diag;     /* SqlParseException: code, offset, len, line, column */
    int has_diag;
} eng_error;

/* Fills e and returns -1. Thread: any. */
static inline int eng_error_set(eng_error *e, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int eng_error_set(eng_error *e, int status, const char *type, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* }====== */

/* {====== incoming messages */

enum { ENG_SRC_MQTT, ENG_SRC_HTTP, ENG_SRC_KAFKA, ENG_SRC_COUNT_ };

typedef struct eng_msg eng_msg;

/* Who is told when every rule's every action is done with a message, i.e. when its last
 * reference is released: the ingest journal retires the entry, the Kafka source stores the
 * offset. done() runs on whichever thread releases last and must not block for long. */
typedef struct eng_origin {
    void (*done)(void *ud, eng_msg *m);
    void *ud;
} eng_origin;

/* A (rule, action) pair a journaled message was already delivered to before a crash: replay
 * skips it. */
typedef struct eng_done_pair {
    char *rule;
    uint64_t revision;
    int action;           /* index in the rule's actions */
} eng_done_pair;

struct eng_msg {
    _Atomic int refs;     /* a worker and every action queue holding it */
    char *topic;          /* NUL-terminated */
    size_t topic_len;
    void *payload;
    size_t payload_len;
    char *clientid;       /* NULL when unknown (see sql/README.md: what clientid() returns) */
    char *principal;      /* MQTT 5 user property "principal"; NULL when absent */
    int source;           /* ENG_SRC_* */
    int qos;
    int hops;             /* republish hop count carried in the "sluice-hops" user property */
    int64_t received_ms;
    char traceid[37];     /* this message's trace id (a UUID): traceid() for MQTT messages,
                             cloudwatchTraceId in the error document, kept in dead letters */
    sql_mqtt_props props; /* MQTT 5 properties; strings owned by the message */
    sql_user_prop *user;  /* owned copy of props.user */
    /* durability (engine/ingest/) */
    eng_msg *next;        /* link in a worker queue or a source's batch (owned by that list) */
    uint64_t seq;         /* journal sequence number; 0: not journaled */
    uint64_t uuid_seed;   /* nonzero: newuuid() is derived from it and the rule (replays give
                             the same UUIDs); 0: random */
    uint64_t tag;         /* the origin's own (a Kafka partition's offset, ...) */
    const eng_origin *origin; /* NULL: nobody to tell */
    _Atomic int keep;     /* set when an outcome could not be made durable (a dead letter the
                             store refused, a shutdown before the sink took it): the origin
                             must not retire the message; it is replayed at the next start */
    eng_done_pair *skip;  /* replay: pairs already done (owned) */
    size_t nskip;
};

/* Reference counting: action queues keep the incoming message for the failure path (AWS's
 * error document carries the original payload), and an action that waits for its sink's
 * acknowledgement keeps it until then. A message is one allocation (engine_int.h's
 * eng_msg_new); the last eng_msg_free() tells the origin and frees it; NULL is a no-op.
 * Thread: any. */
static inline eng_msg *eng_msg_retain(eng_msg *m) {
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

static inline void eng_msg_free(eng_msg *m) {
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (m->origin)
        m->origin->done(m->origin->ud, m);
    for (size_t i = 0; i < m->nskip; i++)
        free(m->skip[i].rule);
    free(m->skip);
    free(m);
}

/* FNV-1a of a topic: picks the worker, and the lane of each action, that a topic goes to (so
 * one topic keeps its order end to end). Thread: any. */
/* A JSON number (cJSON's valuedouble) as an int64: the number when it is a whole one within
 * +-2^53 (where a double is exact), else fallback -- never a cast out of range (undefined
 * behaviour) on a number from a file or a request. Thread: any. */
static inline int64_t eng_json_i64(double d, int64_t fallback) {
    return d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d
               ? (int64_t)d
               : fallback;
}

static inline uint32_t eng_topic_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The SQL library's view of m, for rule rule_name (strings borrowed from m). timestamp() is
 * the time m was received and newuuid() is seeded from m's seed and the rule, so that a replay
 * of a journaled message reproduces both. Thread: any. */
static inline void eng_msg_sql(const eng_msg *m, const char *rule_name, const char *accountid,
                               sql_message *out) {
    /* traceid() is Undefined for messages that did not come over MQTT; Kafka records count as
     * MQTT (they carry bridged MQTT traffic: topic and client id from their headers) */
    int traced = m->source == ENG_SRC_MQTT || m->source == ENG_SRC_KAFKA;
    *out = (sql_message){.topic = m->topic,
                         .topic_len = m->topic_len,
                         .payload = m->payload,
                         .payload_len = m->payload_len,
                         .clientid = m->clientid,
                         .principal = m->principal,
                         .accountid = accountid,
                         /* traceid() is Undefined for messages that did not come over MQTT */
                         .traceid = traced ? m->traceid : NULL,
                         .protocol = m->source == ENG_SRC_HTTP ? SQL_PROTO_HTTP : SQL_PROTO_MQTT,
                         .rule_name = rule_name,
                         .timestamp_ms = m->received_ms,
                         .props = &m->props};
    if (m->uuid_seed) { /* 0: random UUIDs */
        uint64_t h = 1469598103934665603ull ^ m->uuid_seed, g = m->uuid_seed * 0x9e3779b97f4a7c15ull;
        for (const char *p = rule_name ? rule_name : ""; *p; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
            g = (g ^ h) * 0xff51afd7ed558ccdull;
        }
        h |= 1; /* never all zero */
        memcpy(out->uuid_seed, &h, 8);
        memcpy(out->uuid_seed + 8, &g, 8);
    }
}

/* }====== */

/* {====== the host interface: what the engine lends to actions */

enum { ENG_LOG_DEBUG, ENG_LOG_INFO, ENG_LOG_WARN, ENG_LOG_ERROR };

/* The counters an action may bump (they appear in /metrics). ORDER: host.c's map. */
typedef enum eng_counter {
    ENG_COUNT_REPUBLISH_OK,
    ENG_COUNT_REPUBLISH_FAILED,
    ENG_COUNT_DROP_LOOP,       /* a republish refused by the hop bound */
    ENG_COUNT_DROP_DLQ_WRITE,  /* a failed message the dead-letter store refused: lost */
    ENG_COUNT_N_
} eng_counter;

/* Called once the sink acknowledged a publish (ok 1), or refused it, or the service stopped
 * first (ok 0, err says which). */
typedef void (*eng_publish_done_fn)(void *ud, int ok, const char *err);

/* Version 2 added publish completions and pair_done (the durability issue). */
#define ENG_HOST_VERSION 2

/* Settings are read-only for the host's life. A NULL callback is a service the host does not
 * offer (unit tests): publish then fails, count and log do nothing. */
typedef struct eng_host {
    int version;                     /* ENG_HOST_VERSION */
    void *ud;                        /* the engine's; passed back to every callback */

    /* settings (strings never NULL; "" when unset) */
    const char *data_dir;            /* the service's data dir (its stores) */
    const char *account_id;          /* accountid() */
    int queue_depth;                 /* messages per delivery lane */
    int retry_attempts, retry_base_ms, retry_max_ms, retry_total_ms;
    int republish_max_hops;          /* loop protection bound */
    const char *file_base_dir;       /* actions.file.baseDir; "": <data_dir>/out */
    const char *cert_dir;            /* actions.kafka.certDir; "": no file may be named */
    const char *http_allowed_hosts;  /* comma-separated; "": any literal host */
    int http_timeout_ms, http_connect_timeout_ms;
    int http_allow_link_local;       /* actions.http.allowLinkLocal */
    int offline;                     /* 1: open() validates but creates no client that could
                                        connect anywhere (fuzzing) */

    /* services; Thread: any */
    /* Publishes through the output MQTT connection; hops goes out as the user property
     * "sluice-hops". 0 when queued, -1 when not connected (or no MQTT). With done, done(dud,
     * ...) runs exactly once after a 0, when the broker acknowledged (or refused) it. */
    int (*publish)(void *ud, const char *topic, const void *payload, size_t len, int qos,
                   const sql_mqtt_props *props, int hops, eng_publish_done_fn done, void *dud);
    void (*count)(void *ud, eng_counter c, uint64_t n);
    /* One log line (ENG_LOG_*), msg already formatted. */
    void (*log)(void *ud, int level, const char *event, const char *msg);
    /* version 1 ends here */
    /* Records that action `action` of rule (rule, revision) is done with journaled message m
     * while m still has other work pending, so that a replay after a crash skips that pair.
     * NULL: no journal. */
    void (*pair_done)(void *ud, const eng_msg *m, const char *rule, uint64_t revision,
                      int action);
    /* What SQL evaluations get as sql_message.host (get_thing_shadow() reads the shadow
     * store through it); NULL: none. */
    const sql_host *sql;
    /* version 2 ends here; append only and bump the version */
} eng_host;

/* }====== */

#endif

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

enum { ENG_SRC_MQTT, ENG_SRC_HTTP, ENG_SRC_COUNT_ };

typedef struct eng_msg {
    _Atomic int refs;     /* a worker and every action queue holding it */
    char *topic;          /* NUL-terminated */
    size_t topic_len;
    void *payload;
    size_t payload_len;
    char *clientid;       /* NULL when unknown (see sql/README.md: what clientid() returns) */
    int source;           /* ENG_SRC_* */
    int qos;
    int hops;             /* republish hop count carried in the "sluice-hops" user property */
    int64_t received_ms;
    char traceid[37];     /* this message's trace id (a UUID): traceid() for MQTT messages,
                             cloudwatchTraceId in the error document, kept in dead letters */
    sql_mqtt_props props; /* MQTT 5 properties; strings owned by the message */
    sql_user_prop *user;  /* owned copy of props.user */
} eng_msg;

/* Reference counting: action queues keep the incoming message for the failure path (AWS's
 * error document carries the original payload). A message is one allocation (engine_int.h's
 * eng_msg_new), so the last eng_msg_free() frees it; NULL is a no-op. Thread: any. */
static inline eng_msg *eng_msg_retain(eng_msg *m) {
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

static inline void eng_msg_free(eng_msg *m) {
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

/* FNV-1a of a topic: picks the worker, and the lane of each action, that a topic goes to (so
 * one topic keeps its order end to end). Thread: any. */
static inline uint32_t eng_topic_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The SQL library's view of m, for rule rule_name (strings borrowed from m). Thread: any. */
static inline void eng_msg_sql(const eng_msg *m, const char *rule_name, const char *accountid,
                               sql_message *out) {
    *out = (sql_message){.topic = m->topic,
                         .topic_len = m->topic_len,
                         .payload = m->payload,
                         .payload_len = m->payload_len,
                         .clientid = m->clientid,
                         .accountid = accountid,
                         /* traceid() is Undefined for messages that did not come over MQTT */
                         .traceid = m->source == ENG_SRC_MQTT ? m->traceid : NULL,
                         .protocol = m->source == ENG_SRC_HTTP ? SQL_PROTO_HTTP : SQL_PROTO_MQTT,
                         .rule_name = rule_name,
                         .props = &m->props};
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

#define ENG_HOST_VERSION 1

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
     * "sluice-hops". 0, or -1 when not connected (or no MQTT). */
    int (*publish)(void *ud, const char *topic, const void *payload, size_t len, int qos,
                   const sql_mqtt_props *props, int hops);
    void (*count)(void *ud, eng_counter c, uint64_t n);
    /* One log line (ENG_LOG_*), msg already formatted. */
    void (*log)(void *ud, int level, const char *event, const char *msg);
    /* version 1 ends here; append only and bump the version */
} eng_host;

/* }====== */

#endif

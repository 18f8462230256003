/*
 * engine_int.h -- private header of engine/: the pieces the service is wired from.
 *
 * Threads (STYLE.md 3.8): `admin` is the REST API (libmicrohttpd's threads; admin calls are
 * serialized by the registry's mutex), `loop` is the MQTT input loop, `worker` is one of the
 * evaluator threads, `any` means pure or internally locked.
 *
 * Data flow: source (MQTT loop thread, or an HTTP publish request) -> eng_dispatch_submit()
 * picks worker hash(topic) mod N (per-topic order) and blocks while that worker's bounded
 * queue is full (back-pressure: the MQTT loop stops reading) -> the worker takes the current
 * rule snapshot (hazard pointer, no lock), matches the topic in the snapshot's index, runs each
 * matching rule's program with its own sql_exec, and hands fired outputs to the rule's actions.
 *
 * Ownership: functions borrow their arguments unless the name says _take. _new/_free pair up;
 * eng_rule is reference counted (_retain/_release) because consecutive snapshots share the
 * rules that did not change.
 */
#ifndef SLUICE_ENGINE_INT_H
#define SLUICE_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sql.h"

/* {====== topic index (topic_index.c) */

typedef struct eng_topic_index eng_topic_index;

/* A new, empty index. NULL on OOM. Thread: any. */
eng_topic_index *eng_topic_index_new(void);
void eng_topic_index_free(eng_topic_index *ix);

/* Adds rule `id` under topic filter f[0..n) (validated by the caller with
 * sql_topic_filter_check). Returns 0 or -1 on OOM. Thread: the builder, before sharing. */
int eng_topic_index_add(eng_topic_index *ix, const char *f, size_t n, uint32_t id);

/* Writes the ids of the rules whose filter matches topic t[0..n) into ids[0..cap) and returns
 * how many match (which may exceed cap: the caller then retries with more room). Cost depends
 * on the topic's depth and the matches, not on the number of rules. Thread: any, concurrently. */
size_t eng_topic_index_match(const eng_topic_index *ix, const char *t, size_t n, uint32_t *ids,
                             size_t cap);

/* Number of nodes (for metrics and tests). */
size_t eng_topic_index_nodes(const eng_topic_index *ix);

/* }====== */

/* {====== logging (log.c): JSON lines on stderr */

enum { ENG_LOG_DEBUG, ENG_LOG_INFO, ENG_LOG_WARN, ENG_LOG_ERROR };

/* "debug"/"info"/"warn"/"error" -> ENG_LOG_*, -1 otherwise. Thread: any. */
int eng_log_level_parse(const char *s);
void eng_log_set_level(int level);
/* One line: {"ts":"2026-11-22T14:00:00.123Z","level":"info","event":EVENT,"msg":MSG}, where MSG
 * is the printf-formatted text, JSON-escaped. Thread: any (one write(2) per line). */
void eng_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* }====== */

/* {====== configuration (config.c) */

/* Roles of a credential or token (DESIGN.md): reader calls the GET routes and reads /metrics,
 * publisher publishes (and updates shadows), admin may call everything. 0 is no role. */
enum { ENG_ROLE_NONE, ENG_ROLE_READER, ENG_ROLE_PUBLISHER, ENG_ROLE_ADMIN };
#define ENG_AUTH_MAX 32 /* credentials, and tokens, a config may hold */

/* An AWS SigV4 credential: the pair `aws configure` takes. */
typedef struct eng_credential {
    char access_key_id[129]; /* [A-Za-z0-9._-], unique */
    char secret[129];        /* never logged */
    int role;                /* ENG_ROLE_* */
} eng_credential;

/* A Bearer token (curl, Prometheus). */
typedef struct eng_token {
    char token[257];         /* never logged */
    int role;
} eng_token;

/* "reader", "publisher", "admin" -> ENG_ROLE_*, -1 otherwise; and back. Thread: any. */
int eng_role_parse(const char *s);
const char *eng_role_name(int role);

typedef struct eng_config {
    char mqtt_url[512];       /* mqtt://host:port or mqtts://host:port; default mqtt://127.0.0.1:1883 */
    char mqtt_client_id[128]; /* default "sluice-<hostname>-<pid>" */
    char mqtt_username[256], mqtt_password[256];
    char mqtt_ca_file[512], mqtt_cert_file[512], mqtt_key_file[512];
    int mqtt_version;         /* 311 or 5 (default 5) */
    char mqtt_shared_group[128]; /* non-empty: subscribe as $share/<group>/<filter> */
    int mqtt_keepalive;       /* seconds, default 30 */
    char http_addr[128];      /* host:port, default 127.0.0.1:8088 */
    char data_dir[512];       /* default ./data */
    int workers;              /* default: number of online CPUs */
    int queue_depth;          /* per worker, default 4096 */
    int log_level;            /* ENG_LOG_*, default info */
    int republish_max_hops;   /* loop protection bound, default 8 */
    char account_id[32];      /* accountid() and rule ARNs, default "000000000000" */
    char region[32];          /* for ARNs, default "local" */
    /* actions (see actions/action.h) */
    int action_queue_depth;   /* messages per delivery lane, default 10000 */
    int retry_attempts, retry_base_ms, retry_max_ms, retry_total_ms; /* 8, 100, 10000, 60000 */
    char http_allowed_hosts[1024]; /* comma-separated host names; empty: any host */
    int http_timeout_ms;      /* whole request, default 3000 (AWS's HTTP action timeout) */
    int http_connect_timeout_ms; /* default 3000 */
    long long dlq_max_bytes;  /* dead-letter store bound, default 1 GiB */
    long long dlq_max_age_s;  /* records older than this are evicted, default 7 days */
    /* the REST front door (engine/api/) */
    int http_max_connections;  /* open connections in all, default 256 */
    int http_max_per_client;   /* open connections from one client address, default 64 */
    int http_timeout_s;        /* an idle connection is closed after this, default 30 */
    eng_credential credentials[ENG_AUTH_MAX];
    size_t ncredentials;
    eng_token tokens[ENG_AUTH_MAX];
    size_t ntokens;
    int metrics_public;        /* GET /metrics without credentials */
    int insecure_no_auth;      /* SLUICE_INSECURE_NO_AUTH=1: no credentials, off loopback */
} eng_config;

/* Defaults of DESIGN.md. Thread: any. */
void eng_config_defaults(eng_config *c);
/* Overlays a JSON config file (keys: "mqtt": {"url", "clientId", "username", "password",
 * "caFile", "certFile", "keyFile", "version", "sharedGroup", "keepalive"}, "http": {"addr",
 * "maxConnections", "maxConnectionsPerClient", "timeoutSeconds"}, "auth": {"credentials":
 * [{"accessKeyId", "secretAccessKey", "role"}], "tokens": [{"token", "role"}],
 * "metricsPublic"}, "dataDir", "workers", "queueDepth", "adminToken" (an admin token),
 * "logLevel", "republishMaxHops",
 * "accountId", "region", "actions": {"queueDepth", "retry": {"attempts", "baseMs", "maxMs",
 * "totalMs"}, "http": {"allowedHosts": [...], "timeoutMs", "connectTimeoutMs"}},
 * "deadLetter": {"maxBytes", "maxAgeSeconds"}). Unknown keys are an error (typos must not pass silently). Returns 0
 * or -1 with a message in err. */
int eng_config_load_file(eng_config *c, const char *path, char *err, size_t cap);
/* Overlays SLUICE_MQTT_URL, SLUICE_HTTP_ADDR, SLUICE_DATA_DIR, SLUICE_WORKERS,
 * SLUICE_ADMIN_TOKEN (adds an admin token), SLUICE_ACCESS_KEY_ID with SLUICE_SECRET_ACCESS_KEY
 * (adds an admin credential), SLUICE_INSECURE_NO_AUTH, SLUICE_LOG_LEVEL (and
 * SLUICE_MQTT_USERNAME, SLUICE_MQTT_PASSWORD,
 * SLUICE_MQTT_CLIENT_ID, SLUICE_MQTT_SHARED_GROUP, SLUICE_MQTT_CA_FILE, SLUICE_MQTT_CERT_FILE,
 * SLUICE_MQTT_KEY_FILE, SLUICE_MQTT_VERSION). Returns 0 or -1 with a message in err. */
int eng_config_apply_env(eng_config *c, char *err, size_t cap);

/* }====== */

/* {====== metrics (metrics.c): counters read by GET /metrics */

enum { ENG_SRC_MQTT, ENG_SRC_HTTP, ENG_SRC_COUNT_ };
/* ENG_DROP_DLQ_WRITE: a message that failed and could not be written to the dead-letter store
 * either (disk full): the one way a message can be lost, so it is counted and logged. */
enum { ENG_DROP_QUEUE_FULL, ENG_DROP_LOOP, ENG_DROP_TOO_LARGE, ENG_DROP_DLQ_WRITE,
       ENG_DROP_COUNT_ };
#define ENG_LAT_BUCKETS 16 /* evaluation latency histogram: 1 us .. 32 ms, powers of two */

typedef struct eng_metrics {
    _Atomic uint64_t messages_in[ENG_SRC_COUNT_];
    _Atomic uint64_t dropped[ENG_DROP_COUNT_];
    _Atomic uint64_t eval_latency[ENG_LAT_BUCKETS + 1]; /* +Inf last */
    _Atomic uint64_t eval_latency_sum_ns, eval_latency_count;
    _Atomic uint64_t republish_ok, republish_failed;
} eng_metrics;

extern eng_metrics eng_metrics_global;

/* Records one evaluation's latency. Thread: any. */
void eng_metrics_observe_eval(uint64_t ns);

/* }====== */

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
int eng_error_set(eng_error *e, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* }====== */

/* {====== incoming messages */

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

/* Copies everything into one new message with one reference; NULL on OOM. Thread: any. */
eng_msg *eng_msg_new(const char *topic, size_t topic_len, const void *payload, size_t len,
                     const sql_mqtt_props *props, const char *clientid, int source);
/* Reference counting: action queues keep the incoming message for the failure path (AWS's
 * error document carries the original payload). eng_msg_free() drops one reference and frees
 * at the last; NULL is a no-op. Thread: any. */
eng_msg *eng_msg_retain(eng_msg *m);
void eng_msg_free(eng_msg *m);
/* FNV-1a of a topic: picks the worker, and the lane of each action, that a topic goes to (so
 * one topic keeps its order end to end). Thread: any. */
uint32_t eng_topic_hash(const char *topic, size_t n);
/* The SQL library's view of m, for rule rule_name (strings borrowed from m). Thread: any. */
void eng_msg_sql(const eng_msg *m, const char *rule_name, const char *accountid,
                 sql_message *out);

/* }====== */

/* {====== rules (rule.c) */

typedef struct act_instance act_instance;
typedef struct act_vtable act_vtable;
typedef struct eng_env eng_env; /* services actions may use (engine.c) */

typedef struct act_pipe act_pipe;

typedef struct eng_action {
    const act_vtable *vt;
    act_instance *inst;      /* owned by pipe once the pipe exists */
    act_pipe *pipe;          /* the action's delivery pipeline (actions/pipeline.c) */
    uint32_t tpl_base, ntpl; /* the action's templates inside the rule's program */
} eng_action;

typedef struct eng_rule {
    _Atomic int refs;
    char name[129];
    char *payload_json;   /* the topicRulePayload as given, normalized (compact JSON) */
    char *sql;
    char *description;
    int disabled;
    sql_version version;  /* awsIotSqlVersion; absent: 2015-10-08, as AWS's API */
    int64_t created_at;   /* seconds since the epoch */
    uint64_t revision;    /* increases on every replace (dead letters record it) */
    sql_program *prog;    /* SQL + every action's templates */
    eng_action *actions;
    size_t nactions;
    eng_action error_action; /* vt == NULL: none */
    _Atomic uint64_t matched, fired, errors; /* per action: each pipeline's stats */
} eng_rule;

/* Validates a topicRulePayload (AWS's limits: 1-10 actions, known action types, rule name
 * ^[a-zA-Z0-9_]{1,128}$, whole rule <= 256 KiB), compiles its SQL with every action's templates,
 * and opens its actions. Returns a rule with one reference, or NULL with e set
 * (SqlParseException with line/column for SQL errors). Thread: admin. */
eng_rule *eng_rule_new(const char *name, const char *json, size_t n, eng_env *env,
                       eng_error *e);
eng_rule *eng_rule_retain(eng_rule *r);
void eng_rule_release(eng_rule *r); /* closes actions and frees at the last reference */
/* The GetTopicRule "rule" object as compact JSON (malloc'd). Thread: any. */
char *eng_rule_describe(const eng_rule *r, const eng_config *cfg);

/* }====== */

/* {====== rule registry (rule_registry.c) and store (rule_store.c) */

/* An immutable view of the enabled rules: workers read it without locks. */
typedef struct eng_snapshot {
    uint64_t gen;
    eng_rule **rules;       /* enabled rules, retained; index ids point into this array */
    uint32_t nrules;
    eng_topic_index *index;
} eng_snapshot;

typedef struct eng_registry eng_registry;

/* Called (on the admin thread, registry lock held) after each published change with the
 * deduplicated FROM filters of the enabled rules, so the MQTT source can resubscribe;
 * eng_registry_on_filters() also calls it once at once with the current rules. */
typedef void (*eng_filters_fn)(void *ud, const char *const *filters, size_t n);

eng_registry *eng_registry_new(int nworkers, const eng_config *cfg, eng_env *env);
void eng_registry_free(eng_registry *reg);
void eng_registry_on_filters(eng_registry *reg, eng_filters_fn fn, void *ud);

/* Admin operations. Each one builds the new rule set, persists the change (a
 * failed write changes nothing), publishes a new snapshot with one atomic pointer swap, and
 * frees old snapshots once no worker holds them. Return 0 or -1 with e set. Thread: admin
 * (internally serialized by the registry mutex). */
int eng_registry_create(eng_registry *reg, eng_rule *rule_take, eng_error *e);  /* 409 if exists */
int eng_registry_replace(eng_registry *reg, eng_rule *rule_take, eng_error *e); /* 404 if absent */
int eng_registry_delete(eng_registry *reg, const char *name, eng_error *e);
int eng_registry_set_enabled(eng_registry *reg, const char *name, int enabled, eng_error *e);
/* A retained rule by name, or NULL. */
eng_rule *eng_registry_get(eng_registry *reg, const char *name);
/* All rules sorted by name, retained; caller releases each and frees the array. */
eng_rule **eng_registry_list(eng_registry *reg, size_t *n);
/* Loads the store at start (corrupt file: -1 with e set; start-up must stop). */
int eng_registry_load(eng_registry *reg, eng_error *e);

/* Worker side: the current snapshot, protected by worker w's hazard pointer until the next
 * acquire or release. Lock-free. Thread: worker w. */
const eng_snapshot *eng_registry_acquire(eng_registry *reg, int w);
void eng_registry_release(eng_registry *reg, int w);
/* Frees retired snapshots no worker holds any more (also done by every admin change).
 * Thread: any. */
void eng_registry_reclaim(eng_registry *reg);

/* The store: <data_dir>/rules/<name>.json, each written atomically (temp file, fsync, rename,
 * fsync of the directory). Thread: admin. */
int eng_store_put(const char *data_dir, const eng_rule *r, eng_error *e);
int eng_store_delete(const char *data_dir, const char *name, eng_error *e);
/* Calls fn(ud, name, payload_json, created_at, revision, e) per stored rule, in name order. A
 * missing directory is an empty store; an unreadable or corrupt file is an error. */
int eng_store_load(const char *data_dir,
                   int (*fn)(void *ud, const char *name, const char *payload_json,
                             int64_t created_at, uint64_t revision, eng_error *e),
                   void *ud, eng_error *e);

/* }====== */

/* {====== workers (worker.c) */

typedef struct eng_workers eng_workers;

eng_workers *eng_workers_new(const eng_config *cfg, eng_registry *reg, eng_env *env);
/* Hands m to worker hash(topic) mod N; waits up to block_ms for room in its bounded queue
 * (-1: forever; this is the back-pressure that stops the MQTT read loop). Returns 0, or -1
 * when the queue stayed full (the caller counts and reports it). Thread: any. */
int eng_workers_submit_take(eng_workers *ws, eng_msg *m, int block_ms);
/* Queue depths for /metrics. */
size_t eng_workers_depth(eng_workers *ws, int w);
int eng_workers_count(const eng_workers *ws);
/* Stops accepting, lets the queues drain, joins the threads. Thread: main. */
void eng_workers_stop(eng_workers *ws);
void eng_workers_free(eng_workers *ws);

/* }====== */

/* {====== MQTT (mqtt.c): the input subscription and the output connection */

typedef struct eng_mqtt eng_mqtt;

eng_mqtt *eng_mqtt_new(const eng_config *cfg, eng_workers *ws);
/* Connects (with exponential backoff and full jitter capped at 30 s on failure) and runs the
 * input loop in its own thread. Thread: main. */
int eng_mqtt_start(eng_mqtt *mq);
/* Subscribes to exactly these filters (QoS 1; $share/<group>/ prefix when configured),
 * unsubscribing from the ones no longer needed; remembered for resubscription after a
 * reconnect. Thread: any. */
void eng_mqtt_set_filters(eng_mqtt *mq, const char *const *filters, size_t n);
/* Publishes through the output connection. hops is sent as the user property "sluice-hops".
 * Returns 0 or -1 (not connected, or libmosquitto refused). Thread: any. */
int eng_mqtt_publish(eng_mqtt *mq, const char *topic, const void *payload, size_t len, int qos,
                     const sql_mqtt_props *props, int hops);
int eng_mqtt_connected(const eng_mqtt *mq);
/* Stops reading (first step of shutdown). */
void eng_mqtt_stop_input(eng_mqtt *mq);
void eng_mqtt_free(eng_mqtt *mq);

/* }====== */

/* {====== services shared with actions, and the REST API (api/) */

typedef struct act_dlq act_dlq;

struct eng_env {
    const eng_config *cfg;
    act_dlq *dlq;           /* the dead-letter store (actions/dlq) */
    eng_mqtt *mqtt;
    eng_workers *workers;
    eng_registry *registry;
};

typedef struct eng_admin eng_admin;
/* Serves the REST API of DESIGN.md on cfg->http_addr (api/server.c); the secure default is
 * checked before, by eng_api_check_exposure() (api/api.h). Thread: main. */
eng_admin *eng_admin_start(eng_env *env, eng_error *e);
void eng_admin_stop(eng_admin *a);

/* POST /deadletter/redrive: body {"rule": name} or {"ids": [...]}; returns the response JSON
 * {"redriven": N, "skipped": [{"id", "reason"}]} (malloc'd) or NULL with e set (redrive.c).
 * Thread: admin. */
char *eng_redrive(eng_env *env, const char *body, size_t n, eng_error *e);

/* `sluice serve`: wires everything and runs until SIGTERM/SIGINT. Returns the exit code. */
int eng_serve_main(int argc, char **argv);

/* }====== */

#endif

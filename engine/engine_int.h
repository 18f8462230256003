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
#include <stdio.h>

#include "engine.h"
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
    char mqtt_client_id[128]; /* the input's (persistent session); the output adds "-out".
                                 Default "sluice-<first 12 hex digits of the instance id>" */
    char mqtt_username[256], mqtt_password[256];
    char mqtt_ca_file[512], mqtt_cert_file[512], mqtt_key_file[512];
    int mqtt_version;         /* 311 or 5 (default 5) */
    char mqtt_shared_group[128]; /* non-empty: subscribe as $share/<group>/<filter> */
    int mqtt_keepalive;       /* seconds, default 120 (mqtt.keepAliveSeconds) */
    int mqtt_session_expiry;  /* MQTT 5 session expiry of the input, seconds, default 86400 */
    int mqtt_receive_maximum; /* MQTT 5 Receive Maximum of the input, default 512 */
    int journal_mode;         /* ENG_JOURNAL_*, default batch (ingest.journal, SLUICE_JOURNAL) */
    int journal_interval_ms;  /* mode interval: fdatasync period, default 100 */
    long long journal_max_bytes; /* default 1 GiB: full means back-pressure, never a drop */
    char instance_id[40];     /* this data dir's identity (<data_dir>/instance-id, a UUID) */
    uint64_t instance_hash;   /* of instance_id */
    int dlq_eval_errors;      /* a rule's evaluation error dead-letters the message (default 1) */
    int shadows_enabled;      /* the device shadow service (default 1; SLUICE_SHADOWS=off) */
    char http_addr[128];      /* host:port, default 127.0.0.1:8088 */
    char data_dir[512];       /* default ./data */
    char store_url[1024];     /* store / SLUICE_STORE_URL: empty (the data dir, default) or
                                 postgresql://... shared by a fleet; never logged (it may hold
                                 a password) */
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
    int http_allow_link_local; /* actions.http.allowLinkLocal: 169.254/16, fe80::/10 (default 0) */
    char file_base_dir[512];  /* actions.file.baseDir; empty: <data_dir>/out */
    char cert_dir[512];       /* actions.kafka.certDir: where file-naming Kafka and PostgreSQL
                                 settings may point; empty: nowhere */
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
    /* the Kafka source (sources.kafka; ingest/kafka_source.c): on when kafka_topics is set */
    char kafka_topics[2048];  /* comma-separated names (or ^regex patterns) */
    char kafka_group_id[256]; /* default "sluice" */
    char kafka_bootstrap[1024]; /* SLUICE_KAFKA_BOOTSTRAP_SERVERS: overrides the property */
    char kafka_props[16384];  /* clientProperties as compact JSON text; "" none */
    char kafka_topic_header[256];    /* default "mqtt_topic" */
    char kafka_clientid_header[256]; /* default "clientid" */
    char kafka_offset_reset[16];     /* "earliest" (default) or "latest" */
    char kafka_assignment[32];       /* "cooperative-sticky" (default), "range", "roundrobin" */
    int kafka_max_in_flight;  /* per partition: received and not yet stored, default 10000 */
    int kafka_max_in_flight_total; /* all partitions: received and not finished; 0 (default):
                                      half of action_queue_depth, so that the source alone never
                                      overflows an action's lane */
    int kafka_commit_interval_ms;    /* auto-commit of the stored offsets, default 1000 */
    int kafka_session_timeout_ms;    /* default 45000 */
    int kafka_drain_ms;       /* revocation and stop: wait for in-flight records, default 10000 */
} eng_config;

/* Defaults of DESIGN.md. Thread: any. */
void eng_config_defaults(eng_config *c);
/* Overlays a JSON config file (keys: "store" (a postgresql:// URL, or "" / "dataDir"), "mqtt": {"url", "clientId", "username", "password",
 * "caFile", "certFile", "keyFile", "version", "sharedGroup", "keepalive"}, "http": {"addr",
 * "maxConnections", "maxConnectionsPerClient", "timeoutSeconds"}, "auth": {"credentials":
 * [{"accessKeyId", "secretAccessKey", "role"}], "tokens": [{"token", "role"}],
 * "metricsPublic"}, "dataDir", "workers", "queueDepth", "adminToken" (an admin token),
 * "logLevel", "republishMaxHops",
 * "accountId", "region", "actions": {"queueDepth", "retry": {"attempts", "baseMs", "maxMs",
 * "totalMs"}, "http": {"allowedHosts": [...], "timeoutMs", "connectTimeoutMs",
 * "allowLinkLocal"}, "file": {"baseDir"}, "kafka": {"certDir"}},
 * "deadLetter": {"maxBytes", "maxAgeSeconds"}, "sources": {"kafka": {"topics": [...],
 * "groupId", "clientProperties": {...}, "topicHeader", "clientIdHeader", "autoOffsetReset",
 * "assignmentStrategy", "maxInFlightPerPartition", "maxInFlight", "commitIntervalMs",
 * "sessionTimeoutMs", "drainMs"}}). Unknown keys are an error (typos must not pass silently).
 * Returns 0 or -1 with a message in err. */
int eng_config_load_file(eng_config *c, const char *path, char *err, size_t cap);
/* Overlays SLUICE_STORE_URL, SLUICE_MQTT_URL, SLUICE_HTTP_ADDR, SLUICE_DATA_DIR, SLUICE_WORKERS,
 * SLUICE_ADMIN_TOKEN (adds an admin token), SLUICE_ACCESS_KEY_ID with SLUICE_SECRET_ACCESS_KEY
 * (adds an admin credential), SLUICE_INSECURE_NO_AUTH, SLUICE_LOG_LEVEL (and
 * SLUICE_MQTT_USERNAME, SLUICE_MQTT_PASSWORD,
 * SLUICE_MQTT_CLIENT_ID, SLUICE_MQTT_SHARED_GROUP, SLUICE_MQTT_CA_FILE, SLUICE_MQTT_CERT_FILE,
 * SLUICE_MQTT_KEY_FILE, SLUICE_MQTT_VERSION, SLUICE_KAFKA_BOOTSTRAP_SERVERS,
 * SLUICE_KAFKA_GROUP_ID, SLUICE_KAFKA_TOPICS). Returns 0 or -1 with a message in err. */
int eng_config_apply_env(eng_config *c, char *err, size_t cap);

/* Reads <data_dir>/instance-id, creating it (and the data dir) at the first start: sets
 * c->instance_id and c->instance_hash, and the MQTT client id when none is configured.
 * Returns 0 or -1 with a message in err. Thread: main. */
int eng_instance_load(eng_config *c, char *err, size_t cap);

/* }====== */

/* {====== the fleet (instance.c): instances sharing a store */

typedef struct eng_env eng_env;
typedef struct eng_pg eng_pg;

/* What is wrong with this instance, for the fleet's list: "healthy", or a short list of
 * problems ("broker disconnected; journal failing: No space left on device; shared store
 * unreachable"). Thread: any. */
void eng_instance_health(eng_env *env, char *out, size_t cap);
/* Registers this instance in the shared store, or refreshes its row: last seen now (the
 * database's clock, so instances' clocks do not matter), client id, version, HTTP address,
 * host name, health; stopped marks a clean shutdown. 0, or -1 with e set. Thread: the store's
 * watcher (and main at shutdown). */
int eng_instance_beat(eng_pg *pg, eng_env *env, int stopped, eng_error *e);
/* Forgets instances not seen for max_age_s. 0, or -1 with e set. */
int eng_instance_purge(eng_pg *pg, int64_t max_age_s, eng_error *e);
/* GET /cluster/instances: {"instances": [{"instanceId", "clientId", "version", "httpAddr",
 * "host", "startedAt", "lastSeen" (ms since the epoch), "secondsSinceSeen", "health",
 * "status": "up" | "stale" | "stopped", "self"}]}, malloc'd. With the data dir, this instance
 * alone. NULL with e set (503 when the shared store cannot be reached). Thread: admin. */
char *eng_instances_json(eng_env *env, eng_error *e);

/* }====== */

/* {====== metrics (metrics.c): counters read by GET /metrics */

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

/* {====== incoming messages (the type and its reference count: engine.h) */

/* Copies everything into one new message with one reference; NULL on OOM. Thread: any. */
eng_msg *eng_msg_new(const char *topic, size_t topic_len, const void *payload, size_t len,
                     const sql_mqtt_props *props, const char *clientid, int source);
/* Sets m's journal sequence number and derives what a replay must reproduce from it and the
 * instance id: the trace id and the newuuid() seed. Thread: owner of m. */
void eng_msg_set_seq(eng_msg *m, uint64_t seq, uint64_t instance);
/* The same for a Kafka record, from (topic, partition, offset): a record delivered again gives
 * the same trace id and newuuid() seed, whichever instance reads it. Thread: owner of m. */
void eng_msg_set_record(eng_msg *m, const char *topic, int32_t partition, int64_t offset);
/* 1 when (rule, revision, action) is in m's replay skip list. Thread: any. */
int eng_msg_done_before(const eng_msg *m, const char *rule, uint64_t revision, int action);

/* }====== */

/* {====== the ingest journal (ingest/journal.c) */

/* CRC-32C of data[0..n), chained: eng_crc32c(eng_crc32c(0, a), b) is the CRC of a then b.
 * Thread: any. */
uint32_t eng_crc32c(uint32_t crc, const void *data, size_t n);

enum { ENG_JOURNAL_BATCH, ENG_JOURNAL_INTERVAL, ENG_JOURNAL_OFF };

typedef struct eng_journal eng_journal;

typedef struct eng_journal_opts {
    int mode;               /* ENG_JOURNAL_BATCH (fdatasync before commit returns) or
                               ENG_JOURNAL_INTERVAL (write before, fdatasync every
                               interval_ms) */
    int interval_ms;
    long long max_bytes;    /* live segments at or above it: eng_journal_full() */
    uint64_t instance;      /* this instance's id, hashed: trace ids and newuuid() seeds */
} eng_journal_opts;

/* Opens <data_dir>/journal, recovering what is there: a torn tail is cut, damaged records
 * are skipped, and the unfinished messages are kept for eng_journal_replay(). NULL with e set
 * when the directory cannot be used. Thread: main. */
eng_journal *eng_journal_open(const char *data_dir, const eng_journal_opts *o, eng_error *e);
/* Writes what is pending and closes. Messages still unfinished are replayed at the next
 * start. Thread: main, after every source and worker stopped. */
void eng_journal_close(eng_journal *j);

/* Appends m (not yet durable), giving it the next sequence number (eng_msg_set_seq) and
 * making the journal its origin, so that its last release retires it. 0, or -1 on OOM.
 * Thread: any. */
int eng_journal_append(eng_journal *j, eng_msg *m);
/* Returns once every message appended up to seq is durable (group commit: concurrent callers
 * share one write and one fdatasync). -1 when the write failed: those messages are not in
 * the journal, and must not be acknowledged. Thread: any. */
int eng_journal_commit(eng_journal *j, uint64_t seq);
/* errno of the last failed write while the journal cannot write; 0 when healthy. Retried
 * once a second. Thread: any. */
int eng_journal_failed(eng_journal *j);
/* 1 when the live segments reach the bound: sources stop reading. Thread: any. */
int eng_journal_full(eng_journal *j);
/* Records that (rule, revision, action) is done with m while m still has other work pending,
 * so a replay skips that pair. Thread: any. */
void eng_journal_pair_done(eng_journal *j, const eng_msg *m, const char *rule,
                           uint64_t revision, int action);
/* Calls fn with each unfinished message found at open, in sequence order, rebuilt as it was
 * first received (topic, payload, properties, time, trace id), with its skip list. fn takes
 * the message. Returns fn's first nonzero result, or 0. Once only. Thread: main. */
int eng_journal_replay(eng_journal *j, int (*fn)(void *ud, eng_msg *m), void *ud);
size_t eng_journal_pending_replay(const eng_journal *j);

typedef struct eng_journal_stats {
    uint64_t appended, commits, syncs, retired, write_errors, corrupt, replayed, bytes;
    uint64_t live_bytes, max_bytes, segments, unfinished;
    int failed;
} eng_journal_stats;
void eng_journal_stats_get(eng_journal *j, eng_journal_stats *out);

/* }====== */

/* {====== rules (rule.c) */

typedef struct act_instance act_instance;
typedef struct act_vtable act_vtable;
typedef struct eng_env eng_env; /* the service's parts (below) */

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
    uint64_t seq;         /* the store's number of the change that made this version (0: not
                             stored yet) */
    sql_program *prog;    /* SQL + every action's templates */
    eng_action *actions;
    size_t nactions;
    eng_action error_action; /* vt == NULL: none */
    _Atomic uint64_t matched, fired, errors; /* per action: each pipeline's stats */
} eng_rule;

/* Validates a topicRulePayload (AWS's limits: 1-10 actions, known action types, rule name
 * ^[a-zA-Z0-9_]{1,128}$, whole rule <= 256 KiB; no key outside AWS's payload and no key twice
 * in any object), compiles its SQL with every action's templates, and opens its actions with
 * eng_env_host(env) (offline when env->offline). Returns a rule with one reference, or NULL with e set
 * (SqlParseException with line/column for SQL errors). Thread: admin. */
eng_rule *eng_rule_new(const char *name, const char *json, size_t n, eng_env *env,
                       eng_error *e);
eng_rule *eng_rule_retain(eng_rule *r);
void eng_rule_release(eng_rule *r); /* closes actions and frees at the last reference */
/* In the service, closing (draining a rule's pipelines, which a dead sink can make slow) runs
 * on a closer thread, so that no release -- some happen under the registry's lock -- waits on
 * a sink. _stop() closes what is queued and joins. Without a started closer a release closes
 * inline. Thread: main. */
int eng_rule_closer_start(void);
void eng_rule_closer_stop(void);
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
    sql_scanset *scanset;   /* the rules' payload paths merged (program k: rules[k]), so a
                               message is scanned once for all its rules; NULL: each alone */
} eng_snapshot;

typedef struct eng_registry eng_registry;

/* Called (on the admin thread, registry lock held) after each published change with the
 * deduplicated FROM filters of the enabled rules, so the MQTT source can resubscribe;
 * eng_registry_on_filters() also calls it once at once with the current rules. */
typedef void (*eng_filters_fn)(void *ud, const char *const *filters, size_t n);

eng_registry *eng_registry_new(int nworkers, const eng_config *cfg, eng_env *env);
void eng_registry_free(eng_registry *reg);
void eng_registry_on_filters(eng_registry *reg, eng_filters_fn fn, void *ud);

/* Admin operations. Each one writes the change to the store (a failed write changes nothing;
 * an unreachable shared store is a 503), builds the new rule set, publishes a new snapshot with
 * one atomic pointer swap, and frees old snapshots once no worker holds them. On a shared store
 * the store decides whether the rule exists (another instance may have created or deleted it a
 * moment ago). Return 0 or -1 with e set. Thread: admin (changes are serialized inside; reads
 * never wait for the store). */
int eng_registry_create(eng_registry *reg, eng_rule *rule_take, eng_error *e);  /* 409 if exists */
int eng_registry_replace(eng_registry *reg, eng_rule *rule_take, eng_error *e); /* 404 if absent */
int eng_registry_delete(eng_registry *reg, const char *name, eng_error *e);
int eng_registry_set_enabled(eng_registry *reg, const char *name, int enabled, eng_error *e);
/* A retained rule by name, or NULL. */
eng_rule *eng_registry_get(eng_registry *reg, const char *name);
/* All rules sorted by name, retained; caller releases each and frees the array. */
eng_rule **eng_registry_list(eng_registry *reg, size_t *n);
/* Loads the store at start (corrupt file: -1 with e set; start-up must stop). The store is
 * env->rules_store, or <dataDir>/rules when env has none (store/store.h). */
int eng_registry_load(eng_registry *reg, eng_error *e);
/* Applies the changes the store reports after the newest one applied: other instances'
 * creates, replaces, deletes, enables and disables, in the store's order, as one new snapshot.
 * A change the registry has already (its own, or one seen before) is skipped; a rule that does
 * not compile here is logged and its previous version kept. 0, or -1 with e set (the store
 * could not be read: nothing changed). A no-op for a store only this instance writes.
 * Thread: any (the store's watcher, admin calls); serialized with every other change. */
int eng_registry_sync(eng_registry *reg, eng_error *e);
/* Calls the filters callback again with the current rules (the set of topics this instance
 * takes changed: the store's '$' lease). Thread: any. */
void eng_registry_refilter(eng_registry *reg);
/* Compares every rule with the store: loads what is newer there and deletes what it no longer
 * has (after a reconnect, when deletions may have been forgotten by the store). Thread: any. */
int eng_registry_reconcile(eng_registry *reg, eng_error *e);

/* Worker side: the current snapshot, protected by worker w's hazard pointer until the next
 * acquire or release. Lock-free. Thread: worker w. */
const eng_snapshot *eng_registry_acquire(eng_registry *reg, int w);
void eng_registry_release(eng_registry *reg, int w);
/* Frees retired snapshots no worker holds any more (also done by every admin change).
 * Thread: any. */
void eng_registry_reclaim(eng_registry *reg);

/* }====== */

/* {====== workers (worker.c) */

typedef struct eng_workers eng_workers;

eng_workers *eng_workers_new(const eng_config *cfg, eng_registry *reg, eng_env *env);
/* Hands m to worker hash(topic) mod N. Never blocks: returns 1 when that worker's queue is now
 * at or above its bound (cfg->queue_depth; the source should stop reading until
 * eng_workers_saturated() clears), 0 when below, -1 when the workers are stopped (m was not
 * taken). Thread: any. */
int eng_workers_submit_take(eng_workers *ws, eng_msg *m);
/* The same for a chain of messages linked through eng_msg.next, with one lock per worker;
 * order within the chain is kept per worker. Returns 1 when some queue is at its bound.
 * Messages that find the workers stopped are released. Thread: any. */
int eng_workers_submit_batch_take(eng_workers *ws, eng_msg *list);
/* 1 while some worker queue is at or above its bound, or some action lane is half full with
 * a healthy sink (act_pipes_saturated()): sources stop reading. Thread: any. */
int eng_workers_saturated(eng_workers *ws);
/* Waits up to timeout_ms until no queue is at its bound: 0, or -1 on timeout. Thread: any. */
int eng_workers_wait_room(eng_workers *ws, int timeout_ms);
/* Queue depths for /metrics. */
size_t eng_workers_depth(eng_workers *ws, int w);
int eng_workers_count(const eng_workers *ws);
/* Stops accepting, lets the queues drain, joins the threads. Thread: main. */
void eng_workers_stop(eng_workers *ws);
void eng_workers_free(eng_workers *ws);

/* }====== */

/* {====== the Kafka source (ingest/kafka_source.c, ingest/prefix.c) */

/* The finished prefix of one partition's records: records are pushed in partition order and
 * finish in any order; `next` is one past the last record of the longest run of finished
 * records from the first, the offset that may be committed. Not locked: the caller
 * serializes. */
typedef struct eng_prefix {
    int64_t *off;        /* ring: each record's offset ... */
    uint8_t *st;         /* ... and state */
    uint64_t mask;       /* ring capacity - 1 (a power of two) */
    uint64_t head, tail; /* ring indexes: [head, tail) pushed and not behind the prefix */
    uint64_t inflight;   /* pushed, not done */
    uint64_t kept;       /* finished without a durable outcome: the prefix stops at the first */
    int64_t next;        /* the offset that may be committed; -1: none yet */
    int stuck;           /* a push failed (OOM): next never moves again */
} eng_prefix;

/* An empty prefix with room for cap_hint records before it grows. 0, or -1 on OOM.
 * Thread: any (push and done under the lock that guards the prefix). */
int eng__prefix_init(eng_prefix *t, size_t cap_hint);
void eng__prefix_deinit(eng_prefix *t);
/* Lists the partition's next record, at offset (kept: a record that could not even be
 * processed, so that the prefix stops before it). Returns its index, which its message
 * carries to eng__prefix_done(), or UINT64_MAX on OOM (the prefix is then stuck). */
uint64_t eng__prefix_push(eng_prefix *t, int64_t offset, int kept);
/* Record i is finished; kept: without a durable outcome. */
void eng__prefix_done(eng_prefix *t, uint64_t i, int kept);

typedef struct eng_kafka eng_kafka;

/* A consumer in group cfg->kafka_group_id for cfg->kafka_topics, feeding ws; Kafka is its
 * journal: a record's offset is stored for commit only once every record before it in its
 * partition is finished (eng_msg.origin). NULL with e set on a configuration librdkafka or
 * sluice refuses (clientProperties are checked like the Kafka action's), or when sluice was
 * built without librdkafka. Thread: main. */
eng_kafka *eng_kafka_new(const eng_config *cfg, const eng_host *host, eng_workers *ws,
                         eng_error *e);
/* Joins the group and starts reading, in its own thread. 0 or -1. Thread: main. */
int eng_kafka_start(eng_kafka *k);
/* Stops reading, waits (up to cfg->kafka_drain_ms) for the records in flight, commits their
 * offsets synchronously and leaves the group. Call before the workers stop. NULL: no-op.
 * Thread: main. */
void eng_kafka_stop(eng_kafka *k);
/* Frees; after the workers and every action pipeline, since a record still in flight tells
 * its partition when it is done. NULL: no-op. Thread: main. */
void eng_kafka_free(eng_kafka *k);
/* The source's lines of GET /metrics (Prometheus text). Thread: any. */
void eng_kafka_metrics(eng_kafka *k, FILE *f);

/* }====== */

/* {====== MQTT (mqtt.c): the input subscription and the output connection */

typedef struct eng_mqtt eng_mqtt;

/* The MQTT side of env (its config, workers, journal and dead-letter store): a
 * persistent-session input that journals what it reads before it acknowledges it (no journal:
 * ingest.journal=off), and an output connection. With
 * cfg->mqtt_url "none" there is no connection at all (a Kafka-only deployment). NULL on a bad
 * URL or OOM. Thread: main. */
eng_mqtt *eng_mqtt_new(eng_env *env);
/* Connects the output connection (with exponential backoff and full jitter capped at 30 s on
 * failure) and runs its loop in its own thread; eng_mqtt_start_input() does the same for the
 * input, once the journal's replay is under way. Thread: main. */
int eng_mqtt_start(eng_mqtt *mq);
/* before(ud, stop) runs on the input thread before it first connects (the journal's replay);
 * stop is set when the service stops meanwhile. Without MQTT (url "none") it runs at once on
 * the caller's thread. */
int eng_mqtt_start_input(eng_mqtt *mq, int (*before)(void *ud, const _Atomic int *stop),
                         void *ud);
/* Subscribes to exactly these filters (QoS 1; $share/<group>/ prefix when configured, except
 * for filters that start with '$'),
 * unsubscribing from the ones no longer needed; remembered for resubscription after a
 * reconnect. Thread: any. */
void eng_mqtt_set_filters(eng_mqtt *mq, const char *const *filters, size_t n);
/* Unsubscribes these filters, now and at every later connect until they are wanted again: a
 * resumed persistent session keeps what an earlier run subscribed. Thread: any. */
void eng_mqtt_forget_filters(eng_mqtt *mq, const char *const *filters, size_t n);
/* 1 once the broker answered the subscription of every wanted filter that starts with '$'
 * (those are never shared: see mqtt.c). Thread: any. */
int eng_mqtt_dollar_ready(eng_mqtt *mq);
/* What the broker answered to the subscription of filter: -1 pending or unknown, 0..2 the
 * granted QoS, >= 0x80 the SUBACK reason code that refused it. Thread: any. */
int eng_mqtt_filter_status(eng_mqtt *mq, const char *filter);
/* SUBACKs that refused a filter since start (for /metrics). Thread: any. */
uint64_t eng_mqtt_refused(eng_mqtt *mq);
/* Filters no rule wants that the broker has not yet confirmed unsubscribed (for /metrics).
 * Thread: any. */
size_t eng_mqtt_unsubscribes_pending(eng_mqtt *mq);
/* Called once the broker acknowledged a publish (ok 1), or refused it with a reason, or
 * sluice stopped first (ok 0, err says which). Runs on the output connection's thread. */
typedef void (*eng_mqtt_done_fn)(void *ud, int ok, const char *err);
/* Publishes through the output connection. hops is sent as the user property "sluice-hops".
 * Returns 0 when queued, -1 (not connected, or libmosquitto refused). With done, done(ud, ...)
 * runs exactly once after a 0 return, when the outcome is known. Thread: any. */
int eng_mqtt_publish(eng_mqtt *mq, const char *topic, const void *payload, size_t len, int qos,
                     const sql_mqtt_props *props, int hops, eng_mqtt_done_fn done, void *ud);
int eng_mqtt_connected(const eng_mqtt *mq);
/* 1 when there is no MQTT at all (url "none"). Thread: any. */
int eng_mqtt_offline(const eng_mqtt *mq);
/* Stops reading (first step of shutdown): the PUBACKs of what was journaled go out, and the
 * input disconnects, keeping its session. */
void eng_mqtt_stop_input(eng_mqtt *mq);
void eng_mqtt_free(eng_mqtt *mq);

/* }====== */

/* {====== the service's parts, what they lend actions (host.c), and the REST API (api/) */

typedef struct act_dlq act_dlq;

typedef struct eng_shadows eng_shadows;
typedef struct eng_store eng_store;
typedef struct eng_rule_store eng_rule_store;

struct eng_env {
    const eng_config *cfg;
    eng_store *store;       /* where shared state lives (store/store.h); NULL in unit tests */
    int64_t started_at;     /* ms since the epoch: when this instance started */
    eng_rule_store *rules_store; /* the registry's store; NULL: <dataDir>/rules */
    eng_shadows *shadows;   /* the device shadow service (engine/shadow/runtime.c); NULL: off */
    sql_host sqlhost;       /* what rule evaluations read through (get_thing_shadow()); set
                               before the rules are loaded, zero when shadows are off */
    eng_journal *journal;   /* NULL: ingest.journal=off */
    act_dlq *dlq;           /* the dead-letter store (actions/dlq) */
    eng_mqtt *mqtt;
    eng_kafka *kafka;       /* NULL: no Kafka source */
    eng_workers *workers;
    eng_registry *registry;
    int offline;            /* actions validate but never connect (the rule fuzzer) */
    eng_host host;          /* what actions may use: see eng_env_host() */
};

/* The host interface env lends to actions (engine.h): env's action settings, and callbacks
 * that publish through env->mqtt, count in the metrics and log. Filled from env->cfg (and
 * env->offline) on the first call; env and env->cfg must outlive everything opened with it.
 * Thread: any. */
const eng_host *eng_env_host(eng_env *env);

typedef struct eng_admin eng_admin;
/* Serves the REST API of DESIGN.md on cfg->http_addr (api/server.c); the secure default is
 * checked before, by eng_api_check_exposure() (api/api.h). Thread: main. */
eng_admin *eng_admin_start(eng_env *env, eng_error *e);
void eng_admin_stop(eng_admin *a);

/* POST /deadletter/redrive: body {"rule": name} or {"ids": [...]}; returns the response JSON
 * {"redriven": N, "skipped": [{"id", "reason"}]} (malloc'd) or NULL with e set (redrive.c).
 * Thread: admin. */
char *eng_redrive(eng_env *env, const char *body, size_t n, eng_error *e);

/* Takes m from a request (an HTTP publish, the shadow service's own events): journals and
 * commits it when the journal is on, then queues it for the workers. 0; -1 when the journal
 * cannot write (m is released; the caller answers 503). Thread: any (may wait for a commit). */
int eng_ingest_submit_take(eng_env *env, eng_msg *m);
/* Writes a dead letter for m that no action received: the error of rule r's evaluation
 * (kind "evaluation"; r NULL and kind "ingest": refused before any rule, e.g. a payload over the
 * size limit). With wait, returns once the record is durable: 0, or -1 (nothing stored). Without,
 * it is written by the store's thread: m is retained until then, and if the store refuses it, m
 * stays in the journal (eng_msg.keep) for the next start; returns 0, or -1 when it could not be
 * queued (m then also stays). Thread: any. */
int eng_ingest_deadletter(eng_env *env, eng_msg *m, const eng_rule *r, const char *kind,
                          const char *error, int wait);

/* Replays what the journal kept from before the last stop, in order, waiting for room in the
 * workers as needed, before any source reads. Once *stop is set (may be NULL) the rest stays in
 * the journal for the next start, and -1 is returned. Thread: the MQTT input, before it
 * connects (or main, without MQTT). */
int eng_ingest_replay(eng_env *env, const _Atomic int *stop);

/* {====== the device shadow service in the service (shadow/runtime.c; the rest: shadow.h) */

/* Opens the shadow store (the shared PostgreSQL when env->store has one, else
 * <data_dir>/shadows.db) and starts the shadow threads. NULL with e set. Thread: main. */
eng_shadows *eng_shadows_start(eng_env *env, eng_error *e);
/* Answers what is queued, then stops. After the workers stopped. Thread: main. */
void eng_shadows_stop(eng_shadows *sh);
/* 1 when m is a shadow request ($aws/things/{thing}/shadow[/name/{shadow}]/{update,get,
 * delete}). Thread: any. */
int eng_shadows_is_request(const eng_msg *m);
/* Queues request m (retained) for the shadow thread of its shadow; waits while that queue is
 * full. Thread: worker. */
void eng_shadows_submit(eng_shadows *sh, eng_msg *m);
/* Counters for /metrics. Thread: any. */
void eng_shadows_stats(eng_shadows *sh, uint64_t *requests, uint64_t *rejected,
                       uint64_t *publish_failed);
/* The sql_host whose get_shadow reads sh's store: env->sqlhost. Thread: main. */
sql_host eng_shadows_sql_host(eng_shadows *sh);

/* }====== */

/* `sluice serve`: wires everything and runs until SIGTERM/SIGINT. Returns the exit code. */
int eng_serve_main(int argc, char **argv);

/* }====== */

#endif

/*
 * action.h -- the one interface every rule action plugs in through (STYLE.md 3.7), and the
 * delivery pipeline that feeds it.
 *
 * An action type is a vtable. The engine opens one instance per action of a rule (on the admin
 * thread, when the rule is created) and asks it which substitution templates it needs (they are
 * compiled into the rule's program next to its SQL). Each instance then gets a pipeline
 * (pipeline.c): `lanes` bounded FIFO queues, each drained by its own delivery thread. A worker
 * that fires the rule substitutes the templates and submits the output to the pipeline, which
 * picks lane hash(topic) % lanes (per-topic order), gathers up to `max_batch` messages and calls
 * deliver() on that lane's thread. deliver() says how many messages went out and what happened
 * to the next one: ACT_OK (all delivered), ACT_RETRY (transient: the pipeline backs off with
 * full jitter and calls again from that message, so order holds across retries) or ACT_FAIL
 * (permanent: that message takes the failure path -- the rule's error action, else the
 * dead-letter store). Nothing is dropped silently: a full queue also sends the overflow down the
 * failure path, and every outcome is counted.
 *
 * The engine is reached only through engine/engine.h: the incoming message, and the host
 * interface (eng_host: publish, count, log, the settings actions need) each instance gets in
 * act_config. What an action may touch is declared by its option table and checked in open():
 * see README.md, "What a rule may make sluice do".
 *
 * Ownership: act_config, act_msg and everything they point to are borrowed for the call.
 * An instance belongs to its rule and is closed after its pipeline has drained.
 * Thread: open/templates/close on the admin thread (close may also run on whichever thread
 * releases the rule last); deliver() on the lane's delivery thread, concurrently for different
 * lanes but never twice at once for the same lane, so per-lane state needs no lock;
 * format() is pure and may run anywhere.
 */
#ifndef SLUICE_ACTION_H
#define SLUICE_ACTION_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../engine/engine.h"

typedef struct act_instance act_instance;
typedef struct act_vtable act_vtable;

/* Version 2 replaced v1's one-message deliver() by the batched, lane-aware one and added
 * format(); v1 never left the tree (actions are compiled in), so nothing depended on it.
 * Version 3 appended description and options. */
#define ACT_VTABLE_VERSION 3

typedef enum act_result { ACT_OK = 0, ACT_RETRY = 1, ACT_FAIL = 2 } act_result;

typedef struct act_config {
    const cJSON *params;   /* the action's object, e.g. {"topic": "...", "qos": 1} */
    const char *rule_name;
    const eng_host *host;  /* what the instance may use; outlives the instance */
} act_config;

/* One message as an action sees it. */
typedef struct act_msg {
    const char *rule_name;
    const char *payload;        /* the rule's output (JSON text, or raw bytes) */
    size_t payload_len;
    const char *const *fields;  /* the instance's templates substituted, in templates() order;
                                   each NUL-terminated */
    const size_t *field_lens;
    const unsigned char *field_null; /* with wants_nulls: 1 when template k is one `${expr}`
                                        whose value is Null or Undefined; else all 0 */
    const eng_msg *in;          /* the incoming message (topic, original payload, hops...) */
} act_msg;

/* {====== option tables (options.c)
 *
 * Each action declares its parameters as a table (Fluent Bit's config_map): key, type,
 * whether it is required, default, limits and help. One parser validates a parameters object
 * against the table and fills the action's own options struct through offsetof targets; the
 * same table is the JSON schema GET /actions/{type}/schema returns. Unknown and duplicate keys
 * are refused, and every error is an InvalidRequestException naming the field by its path
 * ("kafka action: \"headers[2].key\" must be a string"). Strings the parser stores are
 * borrowed from the parsed JSON: open() copies what the instance keeps. */

typedef enum act_opt_type {
    ACT_OPT_STRING,    /* const char *: literal text; length in [min, max] (max 0: any) */
    ACT_OPT_TEMPLATE,  /* const char *: a substitution template, `${expr}` allowed; length
                          as STRING */
    ACT_OPT_INT,       /* int: an integral number in [min, max] */
    ACT_OPT_BOOL,      /* int: 0 or 1; def -1 leaves -1 when absent */
    ACT_OPT_ENUM,      /* int: index into choices; def -1 leaves -1 when absent */
    ACT_OPT_OBJECT,    /* a nested table, parsed into the struct at offset */
    ACT_OPT_LIST,      /* an array of at most max objects of table sub, element i parsed into
                          the struct at offset + i * elem_size; the count (size_t) goes to
                          count_offset */
    ACT_OPT_MAP,       /* const cJSON *: an object of at most max string, number or boolean
                          values, each at most 16 KiB (the action checks the names) */
    ACT_OPT_IGNORED,   /* a string accepted for AWS compatibility and not used */
    ACT_OPT_REFUSED    /* a key AWS knows that sluice refuses; help says why */
} act_opt_type;

typedef struct act_option act_option;
struct act_option {
    const char *key;             /* NULL ends the table */
    act_opt_type type;
    int required;
    size_t offset;               /* offsetof() the target in the options struct */
    long long min, max;          /* see act_opt_type */
    long long def;               /* INT, BOOL, ENUM: the value when absent */
    const char *def_str;         /* STRING, TEMPLATE: the value when absent (may be NULL) */
    const char *const *choices;  /* ENUM: NULL-terminated */
    const act_option *sub;       /* OBJECT, LIST: the members */
    size_t elem_size;            /* LIST */
    size_t count_offset;         /* LIST */
    const char *help;
};

/* The usual list element: a {"key": ..., "value": ...} pair of templates, and its table
 * (key: 1 to 1024 bytes, value: at most 8192). */
typedef struct act_kv {
    const char *key, *value;
} act_kv;
extern const act_option act_kv_options[];

#define ACT_MAP_MAX_VALUE 16384

/* Validates params against table t and fills *out (zeroed by the caller) with the values and
 * the defaults. action names the type in messages. Returns 0, or -1 with e set (400,
 * InvalidRequestException). Thread: any. */
int act_options_parse(const char *action, const act_option *t, const cJSON *params, void *out,
                      eng_error *e);

/* The JSON schema of one action type: {"type", "awsName", "description", "options": [...]}
 * (malloc'd), or NULL when no type has that name (or out of memory). With type NULL, every
 * compiled-in type: {"actions": [...]}. Thread: any. */
char *act_schema_json(const char *type);

/* }====== */

/* A growable byte buffer for format(). */
typedef struct act_buf {
    char *p;
    size_t len, cap;
} act_buf;

/* {====== JSON the actions write (json.c); Thread: any */

/* 1 when p[0..n) is exactly one JSON value (RFC 8259), whitespace around it allowed; nesting
 * deeper than 512 counts as not JSON. No allocation. */
int act_json_valid(const char *p, size_t n);
/* 1 when p[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
int act_utf8_valid(const char *p, size_t n);
/* Appends p[0..n) as a JSON string (quotes, backslashes and control characters escaped; other
 * bytes as they are) to out, or with out NULL only counts; *len (may be NULL) gets its length.
 * 0, or -1 on OOM. */
int act_buf_put_json_string(act_buf *out, const char *p, size_t n, size_t *len);

/* }====== */

/* Appends n bytes (keeps a NUL after them); 0 or -1 on OOM. Thread: any. */
int act_buf_put(act_buf *b, const void *s, size_t n);
int act_buf_puts(act_buf *b, const char *s);
int act_buf_printf(act_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void act_buf_deinit(act_buf *b);

/* The base every instance embeds first. open() fills the public part; zero means the
 * default written next to each field. */
struct act_instance {
    const act_vtable *vt;      /* set by the engine */
    /* public: how the pipeline feeds this instance (set by open) */
    int lanes;                 /* delivery threads / FIFO queues (default 1) */
    size_t max_batch;          /* most messages per deliver() (default 1: no batching) */
    size_t max_batch_bytes;    /* most payload bytes per deliver() (default: no limit) */
    int max_batch_open_ms;     /* how long a lane waits for a batch to fill (default 0:
                                  deliver what is queued now) */
    int wants_nulls;           /* fill act_msg.field_null (costs one more evaluation per
                                  single-expression template) */
    int deliver_inline;        /* deliver() never blocks (it only queues, as republish does
                                  into libmosquitto): the submitting worker may call it itself
                                  when the lane is idle, saving a thread hand-off per message */
    char resource[256];        /* failedResource in AWS's error document: the topic, URL,
                                  table... (default: the action type's name) */
    int holds_until_acked;     /* deliver() keeps a reference to a journaled message until the
                                  sink acknowledged it (republish: the broker's PUBACK), so
                                  returning ACT_OK does not mean the pair is done */
};

struct act_vtable {
    int version;             /* ACT_VTABLE_VERSION */
    const char *name;        /* the AWS JSON key: "republish", "kafka", ... */
    const char *aws_name;    /* failedAction in AWS's error document: "RepublishAction" */
    /* Validates cfg->params (unknown keys are an InvalidRequestException naming them) and
     * creates the instance; -1 with e set on error. No I/O that can block for long: connect
     * lazily in deliver(). Thread: admin. */
    int (*open)(const act_config *cfg, act_instance **out, eng_error *e);
    /* The templates this instance needs per message (borrowed from the instance). */
    size_t (*templates)(act_instance *self, const char *const **tpl);
    /* Delivers batch[0..n) in order on lane `lane` (0 <= lane < self->lanes). Sets *ndone to
     * the number of leading messages delivered. Returns ACT_OK when *ndone == n; otherwise the
     * outcome of batch[*ndone] (ACT_RETRY or ACT_FAIL), with a message in err[0..cap), and
     * nothing after batch[*ndone] may have been delivered. */
    act_result (*deliver)(act_instance *self, int lane, const act_msg *const *batch, size_t n,
                          size_t *ndone, char *err, size_t cap);
    /* What deliver() would send for batch[0..n), rendered as text for tests (an HTTP request,
     * a Kafka record, SQL with its parameters, a JSON line). Pure: no I/O. 0 or -1 with a
     * message in out. */
    int (*format)(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out);
    void (*close)(act_instance *self);
    /* version 2 ends here */
    const char *description;  /* one line for GET /actions: "Apache Kafka producer" */
    const act_option *options;/* the parameters open() takes ({0}-terminated): validation
                                 and GET /actions/{type}/schema */
    /* version 3 ends here; append only and bump the version */
};

/* One log line through h's log callback (nothing when h or the callback is NULL).
 * Thread: any. */
void act_log(const eng_host *h, int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds n to counter c through h (nothing when h or the callback is NULL). Thread: any. */
void act_count(const eng_host *h, eng_counter c, uint64_t n);

/* The compiled-in action types (actions/registry.c, from actions/actions.def). */
const act_vtable *act_lookup(const char *name);
/* The i-th compiled-in type (0-based), or NULL past the last. Thread: any. */
const act_vtable *act_nth(size_t i);
/* "republish, kafka, ..." for error messages (static). */
const char *act_names(void);

/* {====== paths (paths.c): where a rule may point sluice */

/* Resolves path (a relative one against dir) following every symlink and "..", and checks the
 * result is dir itself or beneath it (dir resolved too). 0 with the resolved path in
 * out[0..cap); or -1 with why[0..wcap) saying what is wrong (to follow the setting's name).
 * An empty dir allows nothing. Thread: any. */
int act_path_beneath(const char *dir, const char *path, char *out, size_t cap, char *why,
                     size_t wcap);

/* path made absolute (against the working directory), "." and ".." applied, and the symlinks
 * of its longest existing prefix resolved; the rest stays as written. 0, or -1 when it does
 * not fit out[0..cap) or nothing of it resolves. Thread: any. */
int act_path_absolute(const char *path, char *out, size_t cap);
/* 1 when the absolute path is dir or beneath it (both as act_path_absolute() writes them).
 * Thread: any. */
int act_path_within(const char *path, const char *dir);

/* }====== */

/* {====== retry policy (pipeline.c) */

/* Exponential backoff with full jitter: before retry k (1-based) the lane sleeps a uniform
 * random time in [0, min(max_ms, base_ms * 2^(k-1))]; a message is given up (failure path)
 * after `attempts` tries or once `total_ms` have passed since its first try. */
typedef struct act_retry_policy {
    int attempts;   /* default 8 */
    int base_ms;    /* default 100 */
    int max_ms;     /* default 10000 */
    int total_ms;   /* default 60000 */
} act_retry_policy;

/* The sleep before retry k (1-based) of policy p, drawn from *seed. Thread: any. */
int act_retry_delay_ms(const act_retry_policy *p, int k, uint64_t *seed);

/* }====== */

/* {====== rendering (render.c): substituted templates, shared by workers and the failure path */

/* The substituted templates of one action for one fired message. The strings live in the
 * buffer and stay valid until the next act_render() on it. */
#define ACT_MAX_FIELDS 256 /* templates per action (rule.c refuses more): HTTP's 100 headers */

typedef struct act_fields {
    const char *f[ACT_MAX_FIELDS];
    size_t len[ACT_MAX_FIELDS];
    unsigned char null[ACT_MAX_FIELDS];
    size_t n;
    char *buf;
    size_t buflen, bufcap;
} act_fields;

/* After a fired sql_exec_run*() on x: substitutes templates [base, base + n) into *fs (null
 * flags too when wants_nulls). Returns 0, or -1 with a message in err. Thread: owner of x. */
int act_render(sql_exec *x, uint32_t base, uint32_t n, int wants_nulls, act_fields *fs,
               char *err, size_t cap);
void act_fields_deinit(act_fields *fs);

/* }====== */

/* {====== delivery pipeline (pipeline.c) */

typedef struct act_pipe act_pipe;
typedef struct act_dlq act_dlq;

/* Who a pipeline delivers for: its rule and place in it, for the failure path and metrics. */
typedef struct act_owner {
    const char *rule_name;          /* copied */
    const uint64_t *rule_revision;  /* the rule's (set before the rule is published) */
    int index;                      /* position in the rule's actions; -1: the error action */
    act_pipe *error_pipe;           /* the rule's error action (outlives this pipe), or NULL */
    const sql_program *prog;        /* the rule's program (outlives this pipe): the failure
                                       path re-renders the error action's templates with it */
    uint32_t err_tpl_base, err_ntpl;/* the error action's templates inside prog */
    int err_wants_nulls;
    act_dlq *dlq;                   /* the dead-letter store (outlives every pipe) */
    const eng_host *host;           /* queue depth, retry policy, logs (outlives this pipe) */
} act_owner;

/* Delivery counters of one pipeline, for /metrics. */
#define ACT_LAT_BUCKETS 18          /* delivery latency: 1 us .. 131 ms, powers of two, +Inf */
typedef struct act_pipe_stats {
    _Atomic uint64_t delivered, failed, retries, overflow, batches, batch_msgs;
    _Atomic uint64_t deferred;      /* left in the journal at shutdown (sink failing) */
    _Atomic uint64_t latency[ACT_LAT_BUCKETS + 1];
    _Atomic uint64_t latency_sum_ns;
} act_pipe_stats;

/* Starts inst's lanes (inst->lanes threads, each with a queue of cfg->action_queue_depth
 * messages). Takes ownership of inst: act_pipe_close() closes it. NULL with e set on failure
 * (inst is then closed too). Thread: admin. */
act_pipe *act_pipe_new_take(act_instance *inst, const act_owner *o, eng_error *e);

/* Queues one fired message for delivery: copies payload and fields into one allocation and
 * retains `in`. When the lane's queue is full the message takes the failure path at once
 * (counted as overflow); it is never dropped. redrive_id: nonzero when a dead-letter record is
 * being re-sent (the record is resolved once delivered). Returns 0 when queued, 1 when it went
 * down the failure path instead. Thread: any. */
int act_pipe_submit(act_pipe *p, eng_msg *in, const char *payload, size_t plen,
                    const act_fields *fs, uint64_t redrive_id);

/* Sends a message that cannot be delivered at all (its templates failed to evaluate) down the
 * failure path with error err, as if its last attempt had failed. Thread: any. */
void act_pipe_reject(act_pipe *p, eng_msg *in, const char *payload, size_t plen,
                     const char *err);

/* 1 while some lane of some pipeline is at least half full with a healthy (delivering) sink:
 * the sources stop reading until it drains. Lanes whose sink is failing do not count (their
 * overflow takes the failure path). Thread: any. */
int act_pipes_saturated(void);

/* Messages queued or in delivery, over all lanes. Thread: any. */
size_t act_pipe_depth(act_pipe *p);
const act_pipe_stats *act_pipe_stats_of(const act_pipe *p);
act_instance *act_pipe_instance(act_pipe *p);

/* Stops accepting, delivers what is queued (once a lane is stopping, a failed message is not
 * retried at length: it goes down the failure path), joins the lanes and closes the instance.
 * The pipe itself stays valid (stats, and as another pipe's error_pipe) until act_pipe_free().
 * A rule closes its actions first and its error action last, then frees them all.
 * NULL is a no-op. Thread: admin or main. */
void act_pipe_close(act_pipe *p);
void act_pipe_free(act_pipe *p);

/* }====== */

/* {====== dead-letter store (dlq/dlq.c) */

/* One dead letter: what act_dlq_append() writes. Strings borrowed. */
typedef struct act_dlq_record {
    const char *rule;
    uint64_t rule_revision;
    int action_index;                /* the failed action's place in the rule */
    const char *action;              /* its type: "http" */
    const eng_msg *in;               /* topic, payload, clientid, qos, received_ms */
    const char *output;              /* the rule's output sent to the action */
    size_t output_len;
    const act_fields *fields;        /* its substituted templates */
    const char *const *errors;       /* every attempt's error, oldest first */
    const int64_t *error_at;         /* ms since the epoch, per error */
    size_t nerrors;
    int attempts;
} act_dlq_record;

typedef struct act_dlq_stats {
    uint64_t records, bytes, appended, evicted, resolved, write_errors;
} act_dlq_stats;
/* Called once an asynchronous append is durable (rc 0, with the record's id) or failed (rc -1).
 * Runs on the store's writer thread, without the store's lock. */
typedef void (*act_dlq_done_fn)(void *ud, int rc, uint64_t id);

/* The store's two backends: the data dir's segment files (dlq/dlq_file.c, one instance) and
 * the fleet's PostgreSQL (engine/store/deadletter_pg.c). The act_dlq_* calls below are the
 * same for both (dlq/dlq.c dispatches); a backend embeds struct act_dlq first. */
typedef int (*act_dlq_each_fn)(void *ud, uint64_t id, const cJSON *rec);
typedef struct act_dlq_vt {
    int version;                     /* 1 */
    const char *name;                /* "dataDir", "postgresql" */
    int (*append)(act_dlq *d, const act_dlq_record *r, uint64_t *id_out, act_dlq_done_fn done,
                  void *ud);
    int (*resolve)(act_dlq *d, uint64_t id);
    void (*release)(act_dlq *d, uint64_t id);
    char *(*list_json)(act_dlq *d, const char *rule, int64_t since_ms, size_t limit,
                       uint64_t after, eng_error *e);
    int (*claim)(act_dlq *d, const char *rule, const uint64_t *ids, size_t nids,
                 act_dlq_each_fn fn, void *ud, eng_error *e);
    void (*expire)(act_dlq *d);
    long (*purge)(act_dlq *d, const char *rule, eng_error *e);
    void (*stats)(act_dlq *d, act_dlq_stats *out);
    void (*close)(act_dlq *d);
    /* version 1 ends here; append only and bump version */
} act_dlq_vt;
struct act_dlq {
    const act_dlq_vt *vt;
};

/* A re-drive's claim on a record lasts this long: past it, a claim whose holder never resolved
 * nor released it (killed in the middle) no longer keeps other re-drives away. */
#define ACT_DLQ_CLAIM_MS (10 * 60 * 1000)

/* r as a JSON object: the stored form of a dead letter (what GET /deadletter lists, plus the
 * rule's output and the action's substituted templates, which a re-drive sends again). id 0
 * leaves "id" out (a backend that numbers records itself adds it when reading). NULL on OOM.
 * Thread: any. */
cJSON *act_dlq_record_json(const act_dlq_record *r, uint64_t id);

/* Opens (creating) <data_dir>/deadletter, loading the records already there. Bounded by
 * max_bytes and max_age_s: the oldest records are evicted (and counted) past either. NULL with
 * e set on failure. host (borrowed, outlives the store) takes its logs. Thread: main. */
act_dlq *act_dlq_open(const char *data_dir, long long max_bytes, long long max_age_s,
                      const eng_host *host, eng_error *e);
/* Writes what is queued (running the completions), then closes. NULL is a no-op. */
void act_dlq_close(act_dlq *d);

/* Appends r durably (written and fdatasync'ed, or committed, before it returns; concurrent
 * appends share one sync or transaction). Sets *id_out (may be NULL). 0, or -1 when the store
 * refused (counted; logged). Thread: any. */
int act_dlq_append(act_dlq *d, const act_dlq_record *r, uint64_t *id_out);
/* Queues r (serialized now: its strings are borrowed only for the call) and returns at once;
 * done(ud, ...) follows, only once the record is durable (or has failed for good). Waits only
 * while the store's queue is full. 0, or -1 when r could not even be queued (done is then not
 * called). Thread: any. */
int act_dlq_append_async(act_dlq *d, const act_dlq_record *r, act_dlq_done_fn done, void *ud);

/* Marks record id as delivered or purged (a durable tombstone, or the row deleted). 0, or -1
 * when the store could not record it (the record stays; a later re-drive may send it again).
 * Thread: any. */
int act_dlq_resolve(act_dlq *d, uint64_t id);
/* Ends a re-drive's claim on id without resolving it (the record stays for a later one).
 * Thread: any. */
void act_dlq_release(act_dlq *d, uint64_t id);

/* The records matching rule (NULL: any) and since (ms; 0: any), oldest first, at most limit,
 * starting after id `after` (0: from the start), as the JSON body of GET /deadletter
 * (malloc'd). NULL with e set (503 when the store cannot be reached). Thread: any. */
char *act_dlq_list_json(act_dlq *d, const char *rule, int64_t since_ms, size_t limit,
                        uint64_t after, eng_error *e);

/* For a re-drive: claims each live record matching rule (NULL: any) or one of ids (n > 0) that
 * no other re-drive holds (here or, with a shared store, on any instance), and calls fn with
 * it, oldest first, parsed back (cJSON, borrowed for the call). A claim keeps every other
 * claim away until the record is resolved (delivered, or superseded by a new dead letter),
 * released (act_dlq_release), or ACT_DLQ_CLAIM_MS passes: fn must see to one of the first two.
 * 0, or -1 with e set (fn's nonzero result, or the store). Thread: any. */
int act_dlq_foreach(act_dlq *d, const char *rule, const uint64_t *ids, size_t nids,
                    act_dlq_each_fn fn, void *ud, eng_error *e);

/* Evicts what is past the bounds now (the service calls it once a second). Thread: any. */
void act_dlq_expire(act_dlq *d);

/* Purges the records of rule (NULL: all). Returns how many, or -1 with e set. Thread: any. */
long act_dlq_purge(act_dlq *d, const char *rule, eng_error *e);

/* records and bytes: what the store holds (a shared store: the whole fleet's, as of the last
 * count, every few seconds); the rest: this instance's counts since start. */
void act_dlq_stats_get(act_dlq *d, act_dlq_stats *out);

/* }====== */

/* {====== Kafka clientProperties (kafka/kafka_conf.c), also used by the Kafka source */

struct rd_kafka_conf_s;
/* Checks a "clientProperties" object as the Kafka action does (what sluice refuses, value
 * types and lengths, bootstrap.servers present, files only beneath host's certDir; consumer
 * settings allowed too, as this is for the Kafka source) and, with
 * conf, sets each property on it (a property librdkafka refuses is an error naming it). 0, or
 * -1 with e set; messages start with "kafka action: ". Thread: any. */
int act_kafka_props_check(const cJSON *props, const eng_host *host, struct rd_kafka_conf_s *conf,
                          eng_error *e);

/* }====== */

#endif

/*
 * sql.h -- the whole public API of sluice's AWS IoT SQL library.
 *
 * The library compiles one AWS IoT SQL statement (plus the `${...}` substitution templates of the
 * rule's actions) into an immutable sql_program, and evaluates that program against messages.
 * It does no I/O apart from reading the system time-zone database on first use of a named zone,
 * and starts no threads.
 *
 * Ownership: arguments are borrowed. sql_compile() and sql_exec_new() results belong to the
 * caller, who frees them with sql_program_free() / sql_exec_free(). Output buffers returned by
 * sql_exec_* point into the sql_exec and stay valid until the next call on that sql_exec.
 *
 * Thread contract: a compiled sql_program is read-only after sql_compile() returns and may be
 * shared by any number of threads; so is a sql_scanset once built. An sql_exec is scratch state
 * for one thread at a time (one per worker); it may be used with any number of programs. The
 * host callbacks a message carries (sql_host) are called on the thread evaluating it.
 *
 * Limits (sql/README.md, "Limits"): statements of at most 256 KiB, expressions at most 1000
 * levels deep (a compile error past either, with line and column), payloads read to at most
 * 256 levels of nesting; within them, compiling needs less than 320 KiB of stack and evaluating
 * less than 128 KiB (release build).
 */
#ifndef SLUICE_SQL_H
#define SLUICE_SQL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* {====== status codes */

/* X(name, message). 0 is OK; errors are negative so functions can return counts or errors. */
#define SQL_STATUS_MAP(X)                                                                          \
    X(E_SYNTAX, "syntax error")                                                                    \
    X(E_SEMANTIC, "invalid statement")                                                             \
    X(E_UNSUPPORTED, "unsupported function")                                                       \
    X(E_VERSION, "not available in this SQL version")                                              \
    X(E_LIMIT, "limit exceeded")                                                                   \
    X(E_NOMEM, "out of memory")                                                                    \
    X(E_RUNTIME, "evaluation error")                                                               \
    X(E_ARG, "invalid argument")

enum {
    SQL_OK = 0,
    SQL_NOT_FIRED = 0, /* sql_exec_run(): topic did not match or WHERE was not true */
    SQL_FIRED = 1,     /* sql_exec_run(): rule fired, output is set */
    SQL_E_BASE_ = -100,
#define SQL_ENUM_(name, msg) SQL_##name,
    SQL_STATUS_MAP(SQL_ENUM_)
#undef SQL_ENUM_
    SQL_E_END_
};

/* Name ("E_SYNTAX") and message of a status code. Thread: any. */
const char *sql_status_name(int code);
const char *sql_status_message(int code);

/* }====== */

/* {====== diagnostics */

/* A compile error. Byte span into the rule text (or template text, see `where`), derived
 * 1-based line and column, and a message in the near-token form ("expected FROM near 'FORM'"). */
typedef struct sql_diag {
    int code;             /* SQL_E_* */
    uint32_t offset, len; /* byte span in the text that failed */
    uint32_t line, col;   /* 1-based; 0 when no position applies */
    int where;            /* -1: the SQL statement; k >= 0: template k */
    char msg[200];
} sql_diag;

/* Render `d` as "error: line L, column C: msg\n<source line>\n<caret underline>\n" into buf
 * (always NUL-terminated, truncated to cap). `text` is the text the diagnostic points into.
 * Returns the length it wanted to write. Thread: any. */
size_t sql_diag_format(const sql_diag *d, const char *text, size_t n, char *buf, size_t cap);

/* }====== */

/* {====== compile */

typedef enum sql_version {
    SQL_V2015_10_08 = 1,
    SQL_V2016_03_23 = 2,
} sql_version;

/* Parses "2015-10-08" / "2016-03-23" ("beta" is taken as 2016-03-23). Returns SQL_E_ARG for
 * anything else. Thread: any. */
int sql_version_parse(const char *s, sql_version *out);
const char *sql_version_name(sql_version v);

typedef struct sql_compile_opts {
    sql_version version;             /* 0 means SQL_V2016_03_23 */
    const char *const *templates;    /* substitution templates, compiled with the rule */
    const size_t *template_lens;      /* NULL: templates are NUL-terminated */
    size_t ntemplates;
} sql_compile_opts;

typedef struct sql_program sql_program;

/* Compiles the statement text[0..n) and the templates of `opts` into a program.
 * On success returns SQL_OK and sets *out (caller frees with sql_program_free()).
 * On failure returns SQL_E_* and fills *diag (first error wins); *out is NULL.
 * Thread: any. */
int sql_compile(const char *text, size_t n, const sql_compile_opts *opts, sql_program **out,
                sql_diag *diag);

/* Frees a program; NULL is a no-op. No sql_exec may be running it. Thread: any. */
void sql_program_free(sql_program *p);

/* The FROM topic filter (NUL-terminated; "" for a rule without FROM), borrowed from p. */
const char *sql_program_topic_filter(const sql_program *p);
sql_version sql_program_version(const sql_program *p);
size_t sql_program_ntemplates(const sql_program *p);
/* Number of `${...}` expressions in template t (for bound-parameter use). */
size_t sql_program_template_nexprs(const sql_program *p, size_t t);

/* Human-readable disassembly (constants, path table, bytecode). Returns a malloc'd
 * NUL-terminated string the caller frees, or NULL on OOM. Thread: any. */
char *sql_program_explain(const sql_program *p);

/* }====== */

/* {====== messages and evaluation */

enum { SQL_PROTO_MQTT = 0, SQL_PROTO_HTTP = 1 };

typedef struct sql_user_prop {
    const char *key, *value; /* NUL-terminated UTF-8 */
} sql_user_prop;

/* MQTT 5 publish properties of a message (all optional). */
typedef struct sql_mqtt_props {
    const char *content_type;     /* NULL: absent */
    const char *response_topic;   /* NULL: absent */
    const void *correlation_data; /* bytes; NULL: absent */
    size_t correlation_len;
    int format_indicator;         /* -1: absent; 0 UNSPECIFIED_BYTES; 1 UTF8_DATA */
    int64_t message_expiry;       /* -1: absent; seconds */
    const sql_user_prop *user;    /* user properties, in order (keys may repeat) */
    size_t nuser;
} sql_mqtt_props;

/* What the host (the engine) lends the library for the functions that read its state. Every
 * callback may be NULL; `ud` is passed back unchanged. Callbacks run on the evaluating thread,
 * possibly on several threads at once (so they must be thread-safe), and must not call
 * sql_exec_* on the sql_exec that is evaluating. Fields are only ever appended. */
typedef struct sql_host {
    void *ud;
    /* get_thing_shadow(): writes the stored document of shadow `shadow` of thing `thing` (both
     * NUL-terminated and valid AWS names; shadow is NULL for the classic, unnamed shadow) into
     * buf[0..cap) as JSON text in the shape GetThingShadow returns ({"state": {...},
     * "metadata": {...}, "version": N, "timestamp": T}), and returns its length. Like snprintf,
     * a length over cap means "call me again with a buffer that large" (nothing need be
     * written then). Returns SQL_HOST_NOT_FOUND when there is no such shadow (the function is
     * then Undefined), or SQL_HOST_ERROR when the store cannot answer (the evaluation fails with
     * SQL_E_RUNTIME, so the message is not processed as if the shadow did not exist). */
    long (*get_shadow)(void *ud, const char *thing, const char *shadow, char *buf, size_t cap);
} sql_host;

enum { SQL_HOST_NOT_FOUND = -1, SQL_HOST_ERROR = -2 };

/* One incoming message and what it carries besides its payload. Every pointer is borrowed for
 * the duration of the sql_exec_* calls that use it. NULL strings mean "not known". */
typedef struct sql_message {
    const char *topic;
    size_t topic_len;
    const void *payload;
    size_t payload_len;
    const char *clientid;   /* MQTT client id; clientid() gives "n/a" when not MQTT */
    const char *principal;
    const char *accountid;
    const char *traceid;
    const char *rule_name;  /* Basic Ingest: the rule invoked through $aws/rules/<name>/... */
    int protocol;           /* SQL_PROTO_* */
    int64_t timestamp_ms;   /* timestamp(): 0 means "read the clock" */
    const sql_mqtt_props *props; /* NULL: none */
    const sql_host *host;   /* NULL: none (get_thing_shadow() is then Undefined) */
    /* newuuid(): all zero means random UUIDs, as AWS's. Otherwise every newuuid() is derived
     * from this seed, so that a replayed message gets the UUIDs of its first attempt: the
     * n-th evaluation (n = 0, 1, ...) of call site s (its index in the program) during one run
     * of the statement or of one template expression gives the version-4 UUID made of the
     * first 16 bytes of HMAC-SHA256(key = seed, "newuuid" || s || n), s and n as 32-bit little
     * endian. Same seed, same UUIDs, whatever order templates are rendered in and however often;
     * different seeds, independent UUIDs. The engine derives the seed from (instance id,
     * message sequence number, rule name). */
    uint8_t uuid_seed[16];
} sql_message;

/* An evaluation result: JSON text (is_binary == 0) or raw bytes (is_binary == 1). Points into
 * the sql_exec; valid until its next use. */
typedef struct sql_output {
    const char *data;
    size_t len;
    int is_binary;
} sql_output;

typedef struct sql_exec sql_exec;

/* Per-thread scratch state. NULL on OOM. Thread: any (the result is then used by one thread). */
sql_exec *sql_exec_new(void);
void sql_exec_free(sql_exec *x);

/* Runs program p on message m. Returns SQL_FIRED and sets *out when the topic matches the FROM
 * filter and WHERE is true; SQL_NOT_FIRED when not; SQL_E_RUNTIME / SQL_E_NOMEM / SQL_E_LIMIT on
 * an evaluation failure (message in sql_exec_errmsg()). Payloads over SQL_MAX_PAYLOAD bytes give
 * SQL_E_LIMIT. Thread: the thread that owns x. */
int sql_exec_run(sql_exec *x, const sql_program *p, const sql_message *m, sql_output *out);

/* Like sql_exec_run() but skips the FROM check (the caller already matched the topic, as the
 * engine's topic index does). */
int sql_exec_run_matched(sql_exec *x, const sql_program *p, const sql_message *m,
                         sql_output *out);

/* After sql_exec_run() returned SQL_FIRED on (x, p, m): substitutes template t into *out
 * (text; an Undefined `${...}` gives ""). Thread: owner of x. */
int sql_exec_template(sql_exec *x, size_t t, sql_output *out);

/* After a fired run: evaluates the k-th `${...}` of template t alone. Sets *out to its text
 * form and *is_null to 1 when the value is Null or Undefined (for bound parameters). */
int sql_exec_template_expr(sql_exec *x, size_t t, size_t k, sql_output *out, int *is_null);

/* {====== one payload scan shared by many programs */

/* The payload paths of many programs merged into one plan, so that a message is read once for
 * all the programs that run on it (typically: every rule of a rule snapshot, built once per
 * rule change). Immutable once built: shared by any number of threads and sql_execs. The
 * programs are borrowed and must outlive the set. */
typedef struct sql_scanset sql_scanset;

/* Merges progs[0..n) (program k of the set is progs[k]). NULL on OOM. Thread: any. */
sql_scanset *sql_scanset_new(const sql_program *const *progs, size_t n);
/* Frees s; NULL is a no-op. No sql_exec may still be in a scan begun with it. Thread: any. */
void sql_scanset_free(sql_scanset *s);
/* Number of nodes of the merged plans (the paths of all the programs, each once). */
size_t sql_scanset_nodes(const sql_scanset *s);

/* Begins message m on x for the programs ids[0..nids) of s (the rules its topic matched):
 * the first of them that reads the payload scans it once for all of them, only as far as
 * they need it, and the others take their values from that scan. Returns SQL_OK, SQL_E_ARG
 * (an id out of range) or SQL_E_NOMEM. The payload stays borrowed until the next begin.
 * Thread: owner of x. */
int sql_exec_scan_begin(sql_exec *x, const sql_scanset *s, const sql_message *m,
                        const uint32_t *ids, size_t nids);

/* Runs program k of the set (one of the ids given to the begin) on the current message, as
 * sql_exec_run_matched(x, progs[k], m, out) would, with the same results and errors. m may
 * differ from the begin's message in everything but the payload (same pointer and length):
 * rule_name and uuid_seed are per rule. A message whose m->timestamp_ms is 0 gets the clock
 * read at the begin, one timestamp() for all its rules. Templates then run as after
 * sql_exec_run(). Returns SQL_E_ARG when no scan was begun or k or the payload differ.
 * Thread: owner of x. */
int sql_exec_run_scan(sql_exec *x, uint32_t k, const sql_message *m, sql_output *out);

/* }====== */

/* Message of the last evaluation error on x ("" if none). Thread: owner of x. */
const char *sql_exec_errmsg(const sql_exec *x);

#define SQL_MAX_PAYLOAD (128u * 1024u)

/* }====== */

/* {====== base64 (java.util.Base64's basic codec, as AWS's encode/decode use it) */

/* Writes the base64 text of data[0..n) and a NUL into out (room for (n + 2) / 3 * 4 + 1 bytes);
 * returns its length. Thread: any. */
size_t sql_base64_encode(const void *data, size_t n, char *out);
/* Decodes s[0..n) into out (room for n * 3 / 4 + 3 bytes). Padding is optional, whitespace is
 * not allowed. Returns the byte count, or -1 when s is not base64. Thread: any. */
long sql_base64_decode(const char *s, size_t n, unsigned char *out);

/* }====== */

/* {====== topic filters (MQTT rules, shared with the engine's topic index) */

/* Validates an MQTT topic filter with AWS's limits (at most 8 levels, 256 bytes, '+' and '#'
 * alone in their level, '#' last). Returns SQL_OK or SQL_E_SEMANTIC with a message in msg. */
int sql_topic_filter_check(const char *filter, size_t n, char *msg, size_t msgcap);

/* 1 if topic matches filter, by MQTT 3.1.1 section 4.7: a wildcard in the first level does not
 * match a topic starting with '$', and "a/#" matches "a", "a/" and "a/b" (the broker delivers
 * "a" to an "a/#" subscriber, so the engine must agree with it; see sql/README.md). */
int sql_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

/* }====== */

#ifdef __cplusplus
}
#endif
#endif

/*
 * shadow.h -- public face of engine/shadow/: AWS IoT's Device Shadow service, without a
 * transport of its own.
 *
 * The service keeps one JSON document per (thing, shadow) -- the classic shadow has no shadow
 * name -- with `desired` and `reported` state, per-field metadata, a version for optimistic
 * locking, and answers get / update / delete / list exactly as AWS IoT Core does
 * (/work/shared/notes/shadows.md is the specification; engine/shadow/README.md records the
 * choices made where AWS is silent). A caller hands a request in (from the MQTT input: the
 * topic parsed by eng_shadow_topic_parse(); or from the REST data plane) and gets back both
 * answers at once: the REST answer (status, x-amzn-ErrorType, body) and the MQTT messages AWS
 * publishes for it, in AWS's order. The caller publishes those messages (and feeds them to the
 * rules engine); the service itself never talks to a broker or a socket.
 *
 * Storage sits behind eng_shadow_store, a small vtable (get, compare-and-set, list, purge);
 * eng_shadow_sqlite_open() is the embedded implementation (<dataDir>/shadows.db),
 * eng_shadow_pg_open() the one a fleet shares (PostgreSQL).
 *
 * Ownership: arguments are borrowed; an eng_shadow_reply is filled by the service and released
 * with eng_shadow_reply_deinit(). Threads: every eng_shadow_* function may be called from any
 * thread, concurrently; updates to one shadow are serialized inside the service, different
 * shadows proceed in parallel. An update or delete returns only after the store has made it
 * durable, and a get that starts after that sees it.
 */
#ifndef SLUICE_ENGINE_SHADOW_H
#define SLUICE_ENGINE_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#include "engine_int.h"

/* {====== limits (AWS's, see README.md) */

#define ENG_SHADOW_THING_MAX 128      /* thing name: 1..128 of [a-zA-Z0-9:_-] */
#define ENG_SHADOW_NAME_MAX 64        /* shadow name: 1..64 of [$a-zA-Z0-9:_-] */
#define ENG_SHADOW_TOKEN_MAX 64       /* clientToken bytes */
#define ENG_SHADOW_DEPTH_MAX 6        /* levels of nesting in desired / reported */
#define ENG_SHADOW_STATE_MAX 8192     /* bytes of desired + reported after the merge */
#define ENG_SHADOW_PAYLOAD_MAX 131072 /* request bytes (AWS's MQTT message limit) */
#define ENG_SHADOW_PAGE_DEFAULT 25    /* ListNamedShadowsForThing without pageSize */
#define ENG_SHADOW_PAGE_MAX 100
#define ENG_SHADOW_TOMBSTONE_S (48 * 3600) /* a deleted shadow's version is remembered 48 h */

/* }====== */

/* {====== requests and replies */

typedef enum eng_shadow_op {
    ENG_SHADOW_GET,
    ENG_SHADOW_UPDATE,
    ENG_SHADOW_DELETE,
} eng_shadow_op;

/* Where a request came from: it decides what is answered and published. An MQTT request is
 * answered on its /accepted (and /delta, /documents) or /rejected topics; a REST request is
 * answered by the reply's status and body, and its successful updates and deletes publish
 * the same /accepted, /delta and /documents messages (REST errors publish nothing, and a REST
 * get publishes nothing). */
typedef enum eng_shadow_transport {
    ENG_SHADOW_MQTT,
    ENG_SHADOW_REST,
} eng_shadow_transport;

typedef struct eng_shadow_req {
    eng_shadow_op op;
    eng_shadow_transport transport;
    const char *thing;        /* not NUL-terminated: thing_len bytes */
    size_t thing_len;
    const char *shadow;       /* NULL or shadow_len == 0: the classic shadow */
    size_t shadow_len;
    const void *payload;      /* update: the request document; get / delete over MQTT: empty or
                                 {"clientToken": ...}; may be NULL when payload_len is 0 */
    size_t payload_len;
} eng_shadow_req;

/* One message to publish. */
typedef struct eng_shadow_msg {
    char *topic;              /* NUL-terminated */
    char *payload;            /* payload_len bytes of compact JSON, NUL-terminated */
    size_t payload_len;
} eng_shadow_msg;

#define ENG_SHADOW_MSGS_MAX 3 /* update: accepted, delta, documents */

typedef struct eng_shadow_reply {
    int status;               /* HTTP status: 200, or 400/404/409/413/415/500/503 */
    const char *error_type;   /* x-amzn-ErrorType (static string), NULL on 200 */
    char *body;               /* REST body: the document, or {"message":"..."}; NUL-terminated;
                                 NULL only for a 500 when memory ran out */
    size_t body_len;
    eng_shadow_msg msgs[ENG_SHADOW_MSGS_MAX]; /* to publish, in this order */
    size_t nmsgs;
} eng_shadow_reply;

/* Releases what a reply holds and zeroes it (a zeroed reply is a no-op). Thread: any. */
void eng_shadow_reply_deinit(eng_shadow_reply *r);

/* }====== */

/* {====== MQTT topics */

/* The six request filters the MQTT input subscribes to: classic and named shadows' update,
 * get and delete. NULL-terminated. */
extern const char *const eng_shadow_request_filters[];

typedef struct eng_shadow_topic {
    eng_shadow_op op;
    const char *thing;        /* points into the parsed topic */
    size_t thing_len;
    const char *shadow;       /* NULL for the classic shadow */
    size_t shadow_len;
} eng_shadow_topic;

/* Is topic t[0..n) a shadow request topic,
 *     $aws/things/{thing}/shadow/{update|get|delete}
 *     $aws/things/{thing}/shadow/name/{shadow}/{update|get|delete}
 * ? Returns 1 and fills out (pointing into t), or 0 for any other topic (the /accepted,
 * /rejected, /delta and /documents topics the service publishes are not requests). Names are
 * not validated here: a request with a bad name is answered with a 400 on its /rejected topic.
 * Thread: any (pure). */
int eng_shadow_topic_parse(const char *t, size_t n, eng_shadow_topic *out);

/* }====== */

/* {====== the store interface */

/* A stored shadow, as the store keeps it. doc is the document the service wrote (compact JSON
 * {"state":{...},"metadata":{...}}); NULL for a tombstone: a deleted shadow whose version is
 * kept so that a new shadow of the same name continues from it. */
typedef struct eng_shadow_record {
    uint64_t rev;             /* the store's change counter for this key (compare-and-set) */
    int64_t version;          /* the shadow's version (tombstone: the last version) */
    int64_t updated_at;       /* epoch seconds of the last change (tombstone: the deletion) */
    char *doc;                /* malloc'd, NUL-terminated; NULL for a tombstone */
    size_t doc_len;
} eng_shadow_record;

typedef struct eng_shadow_names {
    char **names;             /* malloc'd, each malloc'd */
    size_t n;
    int more;                 /* 1: names after the last one exist */
} eng_shadow_names;

/* Store results: 0 OK, and these (negative, like every error in sluice). */
#define ENG_SHADOW_NOT_FOUND (-2) /* get: no record at all */
#define ENG_SHADOW_CONFLICT (-3)  /* put: the record's rev was not expect_rev */
/* -1: the store failed; e is set (500 InternalFailureException, or 503 when it is shut down) */

typedef struct eng_shadow_store eng_shadow_store;

/* Keys are (thing, shadow): NUL-terminated, validated names; shadow is "" for the classic
 * shadow. Every method may be called from any thread, concurrently. */
typedef struct eng_shadow_store_vt {
    int version;              /* 1 */
    const char *name;         /* "sqlite" */
    /* The record of (thing, shadow) into *out (caller frees out->doc), NOT_FOUND, or -1. */
    int (*get)(eng_shadow_store *self, const char *thing, const char *shadow,
               eng_shadow_record *out, eng_error *e);
    /* Writes rec (doc, or a tombstone when rec->doc is NULL) as the new record of (thing,
     * shadow) if the current record's rev is expect_rev (0: no record exists); the new rev is
     * greater. Returns 0 once the write is durable, CONFLICT, or -1. rec->rev is ignored. */
    int (*put)(eng_shadow_store *self, const char *thing, const char *shadow, uint64_t expect_rev,
               const eng_shadow_record *rec, eng_error *e);
    /* The named shadows (not the classic one, not tombstones) of thing whose name sorts after
     * `after` ("" for the first page), in byte order, at most limit of them. */
    int (*list)(eng_shadow_store *self, const char *thing, const char *after, size_t limit,
                eng_shadow_names *out, eng_error *e);
    /* Forgets tombstones deleted before `before` (epoch seconds). */
    int (*purge)(eng_shadow_store *self, int64_t before, eng_error *e);
    void (*close)(eng_shadow_store *self);
    /* version 1 ends here; append only and bump version */
} eng_shadow_store_vt;

struct eng_shadow_store {
    const eng_shadow_store_vt *vt;
};

/* Frees what a record / a name list holds (zeroes it). Thread: any. */
void eng_shadow_record_deinit(eng_shadow_record *r);
void eng_shadow_names_deinit(eng_shadow_names *n);

typedef struct eng_shadow_sqlite_opts {
    int no_sync;              /* 1: commit without fsync (fuzzing and throwaway stores only:
                                 an acknowledged update may then be lost in a crash) */
    int read_conns;           /* read connections kept open; 0: 4 */
} eng_shadow_sqlite_opts;

/* Opens (creating if needed) <data_dir>/shadows.db: mode 0600, WAL, synchronous=FULL, and a
 * writer thread that group-commits every put waiting at the time (one fsync per batch).
 * o may be NULL. Returns the store, or NULL with e set (an unreadable, unwritable or corrupt
 * file names the path and SQLite's reason). Thread: any. */
eng_shadow_store *eng_shadow_sqlite_open(const char *data_dir, const eng_shadow_sqlite_opts *o,
                                         eng_error *e);

/* The fleet's store: table sluice_shadows in the shared PostgreSQL (store_pg.c), each put one
 * compare-and-set statement. pg (store/store.h) is borrowed and outlives the store. NULL with e
 * set on OOM. Thread: any. */
eng_shadow_store *eng_shadow_pg_open(eng_pg *pg, eng_error *e);

/* }====== */

/* {====== the service */

typedef struct eng_shadow eng_shadow;

typedef struct eng_shadow_opts {
    int64_t (*clock)(void *ud); /* epoch seconds; NULL: time(NULL) */
    void *clock_ud;
} eng_shadow_opts;

/* A service over store (taken: closed by eng_shadow_free). o may be NULL. NULL on OOM (the
 * store is closed then too). Thread: any. */
eng_shadow *eng_shadow_new(eng_shadow_store *store_take, const eng_shadow_opts *o);
void eng_shadow_free(eng_shadow *s);

/* Runs one get / update / delete and fills out (which the caller releases with
 * eng_shadow_reply_deinit). Every outcome, AWS's errors included, is described by out; the
 * return value is out->status. Thread: any. */
int eng_shadow_handle(eng_shadow *s, const eng_shadow_req *req, eng_shadow_reply *out);

/* ListNamedShadowsForThing: GET /api/things/shadow/ListNamedShadowsForThing/{thing}. The query
 * values are passed as received (percent-decoded, NUL-terminated; NULL when absent) and
 * validated here: pageSize 1..100 (default 25), nextToken as returned by a previous page.
 * Body: {"results":[...],"nextToken":"..."?,"timestamp":N}. Publishes nothing. Thread: any. */
int eng_shadow_list(eng_shadow *s, const char *thing, size_t thing_len, const char *next_token,
                    const char *page_size, eng_shadow_reply *out);

/* For the rules engine's get_thing_shadow(thing[, shadow]): the stored document exactly as
 * GetThingShadow returns it (*json malloc'd, NUL-terminated). Returns 1 found, 0 no such
 * shadow (or an invalid name), -1 when the store failed (logged). shadow NULL or "" is the
 * classic shadow. Thread: any. */
int eng_shadow_get_document(eng_shadow *s, const char *thing, const char *shadow, char **json,
                            size_t *len);

/* }====== */

/* {====== the service inside `sluice serve` (runtime.c; the rest of it: engine_int.h) */

/* A REST request (the iot-data API): runs it like eng_shadow_handle() and publishes the
 * reply's messages as an MQTT request's are (or, without MQTT, feeds them to the rules); counts
 * it in /metrics. Blocks until an update or delete is durable. out as for eng_shadow_handle().
 * Thread: any (the API's connection threads). */
int eng_shadows_rest(eng_shadows *sh, const eng_shadow_req *req, eng_shadow_reply *out);
/* The service sh runs (for eng_shadow_list() and the like). Thread: any. */
eng_shadow *eng_shadows_service(eng_shadows *sh);

/* }====== */

#endif

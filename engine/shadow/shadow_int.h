/*
 * shadow_int.h -- private header of engine/shadow/: the JSON tree the documents are made of
 * (json.c), the document logic (document.c), names and topics (topic.c).
 *
 * Everything a single operation builds lives in one arena (eng_sarena) and is freed at once
 * when the operation ends: a request, the stored document it merges into, the delta and the
 * responses cost no per-node free.
 *
 * Thread: every function here touches no global state; those given an arena, a buffer or a
 * tree are called by the thread that owns them (the operation's, never shared), the others
 * (names, topics, UTF-8, number equality, eng__shadow_error) from any thread.
 */
#ifndef SLUICE_ENGINE_SHADOW_INT_H
#define SLUICE_ENGINE_SHADOW_INT_H

#include <stddef.h>
#include <stdint.h>

#include "shadow.h"

/* {====== arena and output buffer (json.c) */

typedef struct eng_sarena_chunk eng_sarena_chunk;
typedef struct eng_sarena {
    eng_sarena_chunk *head;
    char *p;                  /* free space of the head chunk */
    size_t left;
} eng_sarena;

/* n bytes aligned for any object, or NULL on OOM. Thread: the arena's owner. */
void *eng__sarena_alloc(eng_sarena *a, size_t n);
void eng__sarena_deinit(eng_sarena *a);

/* A growing text buffer. Appends never fail: an allocation failure sets oom, later appends do
 * nothing, and eng__sbuf_take() returns NULL. */
typedef struct eng_sbuf {
    char *p;
    size_t len, cap;
    int oom;
} eng_sbuf;

void eng__sbuf_add(eng_sbuf *b, const void *s, size_t n);
void eng__sbuf_lit(eng_sbuf *b, const char *s);              /* NUL-terminated text */
void eng__sbuf_i64(eng_sbuf *b, int64_t v);
void eng__sbuf_jstr(eng_sbuf *b, const char *s, size_t n);   /* a JSON string, quoted */
/* The text (NUL-terminated, malloc'd, *len bytes) and an empty buffer; NULL after an OOM. */
char *eng__sbuf_take(eng_sbuf *b, size_t *len);
void eng__sbuf_deinit(eng_sbuf *b);

/* }====== */

/* {====== JSON tree (json.c)
 *
 * Numbers keep the text they were written with (12345678901234567890 and 1.10 come back as
 * sent); strings and keys are decoded UTF-8 with explicit lengths (they may hold NUL). A node
 * that is a member of an object carries its key. Scalars carry the metadata timestamp of the
 * field they hold. */

enum {
    ENG_SJ_NULL,
    ENG_SJ_FALSE,
    ENG_SJ_TRUE,
    ENG_SJ_NUM,
    ENG_SJ_STR,
    ENG_SJ_ARR,
    ENG_SJ_OBJ,
};

typedef struct eng_sjson_ix eng_sjson_ix; /* an object's members sorted by key */
typedef struct eng_sjson eng_sjson;
struct eng_sjson {
    uint8_t type;             /* ENG_SJ_* */
    uint32_t n;               /* NUM / STR: bytes; ARR / OBJ: items */
    uint32_t klen;
    const char *key;          /* as a member of an object: its key (decoded) */
    const char *s;            /* NUM: the literal text; STR: the decoded bytes */
    eng_sjson **items;        /* ARR / OBJ: elements or members (an OBJ item may be NULL while
                                 a merge edits it) */
    eng_sjson_ix *ix;         /* OBJ of more than a few members: the lookup index, or NULL */
    int64_t ts;               /* scalar in a shadow's state: its metadata timestamp */
};

enum {
    ENG_SJ_OK = 0,
    ENG_SJ_ESYNTAX = -1,      /* not RFC 8259 JSON (or a \u escape of a lone surrogate) */
    ENG_SJ_EDEPTH = -2,       /* nested deeper than max_depth */
    ENG_SJ_EDUP = -3,         /* an object has two members with the same key */
    ENG_SJ_ENOMEM = -4,
};

/* Parses p[0..n) (valid UTF-8, checked by the caller) into a tree in a. Strings without
 * escapes and number texts point into p, which must outlive the tree. On ENG_SJ_EDUP the
 * duplicated key is copied into dup[0..dupcap) (NUL-terminated, cut if needed). Returns
 * ENG_SJ_OK with *out set, or an ENG_SJ_E* code. Thread: the arena's owner. */
int eng__sjson_parse(eng_sarena *a, const char *p, size_t n, int max_depth, eng_sjson **out,
                     char *dup, size_t dupcap);
/* 1 when p[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF), else 0. Thread: any. */
int eng__utf8_valid(const char *p, size_t n);

/* A new node of type t (zeroed), or NULL on OOM. */
eng_sjson *eng__sjson_new(eng_sarena *a, int type);
/* The index of obj's member with key k[0..kn), or -1. Builds obj's lookup index in a the first
 * time a large object is searched (falls back to a scan on OOM). */
long eng__sjson_find(eng_sarena *a, eng_sjson *obj, const char *k, size_t kn);
/* The member with key k (NUL-terminated) or NULL. */
eng_sjson *eng__sjson_get(eng_sarena *a, eng_sjson *obj, const char *k);
/* JSON equality: objects regardless of member order, arrays element by element, numbers by
 * value (1, 1.0 and 10e-1 are equal; compared exactly, never through a double). */
int eng__sjson_equal(eng_sarena *a, eng_sjson *x, eng_sjson *y);
/* Numeric equality of two RFC 8259 number texts. Thread: any. */
int eng__sjson_num_equal(const char *x, size_t xn, const char *y, size_t yn);
/* Compact JSON of v (members in their order, numbers as written). */
void eng__sjson_write(eng_sbuf *b, const eng_sjson *v);
/* The same walk with every scalar written by leaf(b, scalar, ud): how metadata, a tree of
 * {"timestamp":T} in the shape of the state, is written. */
typedef void (*eng_sjson_leaf_fn)(eng_sbuf *b, const eng_sjson *leaf, void *ud);
void eng__sjson_write_tree(eng_sbuf *b, const eng_sjson *v, eng_sjson_leaf_fn leaf, void *ud);

/* }====== */

/* {====== names and topics (topic.c) */

/* 1 when name[0..n) is a valid thing name (1..128 of [a-zA-Z0-9:_-]) / shadow name (1..64 of
 * [$a-zA-Z0-9:_-]). Thread: any. */
int eng__shadow_thing_valid(const char *name, size_t n);
int eng__shadow_name_valid(const char *name, size_t n);
/* Appends "$aws/things/<thing>/shadow[/name/<shadow>]/<op>[/<suffix>]" to b (no shadow
 * when shadow_len is 0; no suffix when suffix is NULL). */
void eng__shadow_topic_build(eng_sbuf *b, const char *thing, size_t thing_len, const char *shadow,
                             size_t shadow_len, eng_shadow_op op, const char *suffix);

/* }====== */

/* {====== shadow documents (document.c) */

/* A shadow in memory: desired and reported are objects, or NULL when absent; their scalars
 * carry their metadata timestamps. */
typedef struct eng_shadow_doc {
    eng_sjson *desired, *reported;
} eng_shadow_doc;

/* A validated update request. */
typedef struct eng_shadow_update {
    eng_sjson *state;         /* the request's "state": an object, or NULL for "state": null */
    eng_sjson *desired;       /* state.desired: an object, an ENG_SJ_NULL node, or NULL (absent) */
    eng_sjson *reported;
    int has_version;
    int64_t version;
} eng_shadow_update;

/* The clientToken of a request: echoed in every answer once the request is known to carry a
 * valid one. */
typedef struct eng_shadow_token {
    const char *s;            /* NULL: none */
    size_t n;
} eng_shadow_token;

/* Checks an update request in AWS's order up to the version comparison (size, UTF-8, JSON,
 * clientToken, state, its nodes and types, version, nesting, nulls in arrays). Returns 0 with u
 * and tok filled, or -1 with e set (tok is filled whenever the token was valid). */
int eng__shadow_update_parse(eng_sarena *a, const void *p, size_t n, eng_shadow_update *u,
                             eng_shadow_token *tok, eng_error *e);
/* The clientToken of a get / delete request payload (AWS ignores the rest of it): 0 with tok
 * filled (none when the payload is empty or not a JSON object), or -1 with e set when the
 * object's clientToken is not a string of at most 64 bytes. */
int eng__shadow_token_parse(eng_sarena *a, const void *p, size_t n, eng_shadow_token *tok,
                            eng_error *e);

/* Loads a stored document ({"state":{...},"metadata":{...}}, as eng__shadow_write_stored()
 * wrote it) into d. text must outlive d. Returns 0, or -1 when the text is not such a
 * document (e set to a 500). */
int eng__shadow_doc_load(eng_sarena *a, const char *text, size_t n, eng_shadow_doc *d,
                         eng_error *e);
/* Applies u to d (AWS's merge: null deletes a key, "desired": null deletes the section,
 * "state": null clears both, objects merge, anything else replaces), stamping the fields the
 * request names with now. Returns 0 or -1 on OOM. */
int eng__shadow_doc_apply(eng_sarena *a, eng_shadow_doc *d, const eng_shadow_update *u,
                          int64_t now);
/* The delta of d: the desired fields that reported lacks or holds a different value for
 * (recursively into objects, arrays compared whole); NULL when there is none. The tree shares
 * d's nodes (so its scalars carry the desired metadata). *oom is set on OOM. */
eng_sjson *eng__shadow_delta(eng_sarena *a, const eng_shadow_doc *d, int *oom);
/* Bytes of the state that count toward the 8 KB limit: the compact JSON of desired plus that
 * of reported. */
size_t eng__shadow_state_size(const eng_shadow_doc *d);

/* The documents (compact JSON, AWS's key order), appended to b: */
/* stored:    {"state":{"desired"?,"reported"?},"metadata":{"desired"?,"reported"?}} */
void eng__shadow_write_stored(eng_sbuf *b, const eng_shadow_doc *d);
/* get accepted: {"state":{desired?,reported?,delta?},"metadata":{...},"version","timestamp"
 * [,"clientToken"]} */
void eng__shadow_write_get(eng_sbuf *b, const eng_shadow_doc *d, const eng_sjson *delta,
                           int64_t version, int64_t ts, const eng_shadow_token *tok);
/* update accepted: {"state":<request state>,"metadata":<its metadata>,"version","timestamp"
 * [,"clientToken"]} */
void eng__shadow_write_accepted(eng_sbuf *b, const eng_shadow_update *u, int64_t version,
                                int64_t ts, const eng_shadow_token *tok);
/* delta: {"version","timestamp","state":<delta>,"metadata":<desired metadata of the delta>
 * [,"clientToken"]} */
void eng__shadow_write_delta(eng_sbuf *b, const eng_sjson *delta, int64_t version, int64_t ts,
                             const eng_shadow_token *tok);
/* documents: {"previous":<snapshot or null>,"current":<snapshot>,"timestamp"[,"clientToken"]},
 * where a snapshot is a stored document (as eng__shadow_write_stored() wrote it) with its
 * version added: {"state":...,"metadata":...,"version":N}. prev NULL: the update created the
 * shadow. */
void eng__shadow_write_documents(eng_sbuf *b, const char *prev, size_t prev_len,
                                 int64_t prev_version, const char *cur, size_t cur_len,
                                 int64_t cur_version, int64_t ts, const eng_shadow_token *tok);
/* delete accepted: {"version","timestamp"[,"clientToken"]} */
void eng__shadow_write_deleted(eng_sbuf *b, int64_t version, int64_t ts,
                               const eng_shadow_token *tok);
/* MQTT error document: {"code","message"[,"clientToken"]} */
void eng__shadow_write_error(eng_sbuf *b, int code, const char *message,
                             const eng_shadow_token *tok);

/* AWS's error shapes: X(kind, HTTP status, x-amzn-ErrorType). */
#define ENG_SHADOW_ERROR_MAP(X)                                                                    \
    X(INVALID, 400, "InvalidRequestException")                                                     \
    X(NOT_FOUND, 404, "ResourceNotFoundException")                                                 \
    X(CONFLICT, 409, "ConflictException")                                                          \
    X(TOO_LARGE, 413, "RequestEntityTooLargeException")                                            \
    X(ENCODING, 415, "UnsupportedDocumentEncodingException")                                       \
    X(INTERNAL, 500, "InternalFailureException")                                                   \
    X(UNAVAILABLE, 503, "ServiceUnavailableException")

typedef enum eng_shadow_err {
#define X(kind, status, type) ENG_SHADOW_ERR_##kind,
    ENG_SHADOW_ERROR_MAP(X)
#undef X
} eng_shadow_err;

/* Fills e with kind's status and type and the formatted message; returns -1 (so that a check
 * can `return eng__shadow_error(...)`). Thread: any. */
int eng__shadow_error(eng_error *e, eng_shadow_err kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ENG_SHADOW_MSG_TOO_LARGE "The payload exceeds the maximum size allowed"
#define ENG_SHADOW_MSG_INTERNAL "Internal service failure"

/* }====== */

#endif

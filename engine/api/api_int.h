/*
 * api_int.h -- private header of engine/api/: what its files share. The folder's public face
 * is api.h.
 *
 * Authentication statuses come from one X-macro (STYLE.md 3.4): each has AWS's HTTP status,
 * x-amzn-ErrorType and default message, the shapes the AWS CLI and SDKs parse. 0 is OK and
 * errors are negative.
 */
#ifndef SLUICE_API_INT_H
#define SLUICE_API_INT_H

#include <stdarg.h>

#include "api.h"

/* {====== authentication statuses */

/*  X(name,          status, x-amzn-ErrorType, default message, metrics label) */
#define ENG_AUTH_STATUS_MAP(X)                                                                  \
    X(OK,            200, NULL, "", "ok")                                                       \
    X(E_MISSING,     403, "MissingAuthenticationTokenException", "Missing Authentication Token",\
      "missing")                                                                                \
    X(E_INCOMPLETE,  403, "IncompleteSignatureException",                                       \
      "the Authorization header is not a well-formed AWS Signature Version 4 header",           \
      "malformed")                                                                              \
    X(E_UNKNOWN_KEY, 403, "UnrecognizedClientException",                                        \
      "The security token included in the request is invalid.", "unknown_key")                 \
    X(E_SIGNATURE,   403, "InvalidSignatureException",                                          \
      "The request signature we calculated does not match the signature you provided. Check "   \
      "your AWS Secret Access Key and signing method. Consult the service documentation for "   \
      "details.", "bad_signature")                                                              \
    X(E_EXPIRED,     403, "InvalidSignatureException", "Signature expired", "expired")          \
    X(E_TOKEN,       401, "UnauthorizedException", "a valid bearer token is required",          \
      "bad_token")                                                                              \
    X(E_DENIED,      403, "AccessDeniedException", "not authorized to perform this call",       \
      "denied")

enum {
#define X(name, status, type, msg, label) ENG_AUTH_I_##name,
    ENG_AUTH_STATUS_MAP(X)
#undef X
    ENG_AUTH_COUNT_
};
enum {
#define X(name, status, type, msg, label) ENG_AUTH_##name = -ENG_AUTH_I_##name,
    ENG_AUTH_STATUS_MAP(X)
#undef X
};

/* The HTTP status, error type, default message and metrics label of an ENG_AUTH_* code.
 * Thread: any. */
int eng_auth_status(int code);
const char *eng_auth_type(int code);
const char *eng_auth_message(int code);
const char *eng_auth_label(int code);
/* Requests refused with code since start (GET /metrics). Thread: any. */
uint64_t eng_auth_refused(int code);
void eng_auth_count_refusal(int code);

/* }====== */

/* {====== AWS Signature Version 4 (sigv4.c): the mechanism; auth.c holds the policy */

#define ENG_SIGV4_SKEW_S 900 /* a signature's date may be this far from now, either way */

typedef struct eng_sigv4 {
    char key_id[129];
    char scope_date[9];        /* YYYYMMDD of the credential scope */
    char region[64];
    char service[64];
    char signed_headers[1024]; /* "host;x-amz-date", as sent */
    char signature[65];        /* 64 lowercase hex digits */
    char amz_date[17];         /* X-Amz-Date: YYYYMMDDTHHMMSSZ */
} eng_sigv4;

/* Parses rq's "Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
 * and its X-Amz-Date header into s. ENG_AUTH_OK, or ENG_AUTH_E_INCOMPLETE with a message in
 * msg. Thread: any. */
int eng_sigv4_parse(const eng_api_request *rq, eng_sigv4 *s, char *msg, size_t cap);
/* The date rules: the scope's date is X-Amz-Date's, and X-Amz-Date is within
 * ENG_SIGV4_SKEW_S of now. ENG_AUTH_OK, E_SIGNATURE or E_EXPIRED (AWS's messages).
 * Thread: any. */
int eng_sigv4_check_date(const eng_sigv4 *s, int64_t now, char *msg, size_t cap);
/* The canonical request of rq for these signed headers and payload hash (hex): method, the
 * path as sent with dot segments and empty segments removed, then URI-encoded again (what
 * botocore and AWS do for every service but S3), the query sorted with each name and value
 * encoded, the signed headers trimmed and joined. malloc'd; NULL on OOM. Thread: any. */
char *eng_sigv4_canonical_request(const eng_api_request *rq, const char *signed_headers,
                                  const char *payload_hash);
/* hex(SHA-256(data)) into out[65]. Thread: any. */
void eng_sigv4_sha256_hex(const void *data, size_t n, char out[65]);
/* The signature (hex, out[65]) of a canonical request under s's date and scope. */
void eng_sigv4_sign(const char *secret, const eng_sigv4 *s, const char *creq, char out[65]);
/* Checks rq's body against X-Amz-Content-Sha256 when sent, rebuilds the canonical request and
 * compares signatures in constant time. ENG_AUTH_OK, E_SIGNATURE (msg set) or E_INCOMPLETE
 * (an unsigned or streaming payload). Thread: any. */
int eng_sigv4_verify(const eng_api_request *rq, const eng_sigv4 *s, const char *secret,
                     char *msg, size_t cap);

/* }====== */

/* {====== who may call what (auth.c) */

/* What a route requires. ANY: an authenticated caller of any role (unknown routes, so that
 * nobody probes the API without credentials). METRICS: READ, or OPEN with auth.metricsPublic. */
enum { ENG_NEED_OPEN, ENG_NEED_ANY, ENG_NEED_READ, ENG_NEED_PUBLISH, ENG_NEED_ADMIN,
       ENG_NEED_METRICS };

/* 1 when role may call a route that needs `need`. Thread: any. */
int eng_auth_allows(int role, int need);
/* 1 when any credential or token is configured. */
int eng_auth_enabled(const eng_config *cfg);
/* First step, headers only: no credentials, an unknown key, a malformed or out-of-date
 * signature and a wrong token are refused here; a Bearer token's role is checked here too.
 * A SigV4 request sets rq->sigv4_pending. ENG_AUTH_* with msg set. Thread: any. */
int eng_auth_begin(const eng_config *cfg, eng_api_request *rq, int need, char *msg,
                   size_t cap);
/* Second step, with the body: the signature, then the role. Thread: any. */
int eng_auth_finish(const eng_config *cfg, eng_api_request *rq, int need, char *msg,
                    size_t cap);

/* }====== */

/* {====== routes (routes.c: the table; routes_*.c: the handlers) */

#define ENG_API_MAX_PARAMS 4

typedef struct eng_api_arg {
    char *key, *value; /* decoded */
} eng_api_arg;

/* What a handler sees. */
typedef struct eng_api_call {
    eng_env *env;
    const eng_api_request *rq;
    char *param[ENG_API_MAX_PARAMS]; /* decoded path parameters, in the pattern's order */
    size_t nparam;
    eng_api_arg *args;               /* decoded query */
    size_t nargs;
} eng_api_call;

typedef void (*eng_api_handler)(eng_api_call *c, eng_api_response *rs);

struct eng_route {
    const char *method;
    const char *pattern; /* "/rules/{ruleName}": {x} is one segment; {x+} the rest of the path */
    int need;            /* ENG_NEED_* */
    size_t max_body;     /* bytes */
    eng_api_handler handler;
};

/* The table, ended by an entry with a NULL method. */
extern const eng_route eng_api_routes[];

/* Percent-decodes s[0..n) into out (room for n bytes) and returns the decoded length, which
 * may hold NUL bytes. A '%' that starts no valid escape is kept as it is, or, when strict,
 * makes it return (size_t)-1. '+' stays '+'. Thread: any. */
size_t eng_api__unescape(const char *s, size_t n, char *out, int strict);
/* The next pair of a raw query string ("k=v&k2=v2"), skipping empty ones: key and value spans
 * (a pair without '=' has an empty value). Advances *q; returns 0 when there is none left.
 * Thread: any. */
int eng_api__query_next(const char **q, const char **k, size_t *kl, const char **v, size_t *vl);

/* The first value of query parameter key, decoded, or NULL. Thread: any. */
const char *eng_api__arg(const eng_api_call *c, const char *key);
/* The first header called name (any case), or NULL. Thread: any. */
const char *eng_api__header(const eng_api_request *rq, const char *name);

/* Responses. Each replaces what rs held. The body is copied unless the name says _take.
 * Thread: any. */
void eng_api__reply(eng_api_response *rs, int status, const char *ctype, const char *body,
                    size_t len);
void eng_api__json(eng_api_response *rs, int status, const char *json);
/* json: malloc'd, taken; NULL answers 500 (out of memory). */
void eng_api__json_take(eng_api_response *rs, int status, char *json);
void eng_api__fail(eng_api_response *rs, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An eng_error: AWS's shape, with line, column, offset and length for SqlParseException. */
void eng_api__error(eng_api_response *rs, const eng_error *e);

/* The handlers, by file: each reads c (decoded parameters, query, body) and fills rs. Thread:
 * any (a connection's own thread; the registry serializes changes). */
void eng_api__health(eng_api_call *c, eng_api_response *rs);      /* routes_ops.c */
void eng_api__ready(eng_api_call *c, eng_api_response *rs);
void eng_api__metrics(eng_api_call *c, eng_api_response *rs);
void eng_api__publish(eng_api_call *c, eng_api_response *rs);     /* routes_publish.c */
void eng_api__rule_list(eng_api_call *c, eng_api_response *rs);   /* routes_rules.c */
void eng_api__rule_get(eng_api_call *c, eng_api_response *rs);
void eng_api__rule_create(eng_api_call *c, eng_api_response *rs);
void eng_api__rule_replace(eng_api_call *c, eng_api_response *rs);
void eng_api__rule_delete(eng_api_call *c, eng_api_response *rs);
void eng_api__rule_enable(eng_api_call *c, eng_api_response *rs);
void eng_api__rule_disable(eng_api_call *c, eng_api_response *rs);
void eng_api__dlq_list(eng_api_call *c, eng_api_response *rs);    /* routes_deadletter.c */
void eng_api__dlq_redrive(eng_api_call *c, eng_api_response *rs);
void eng_api__dlq_purge(eng_api_call *c, eng_api_response *rs);
void eng_api__actions(eng_api_call *c, eng_api_response *rs);      /* routes_actions.c */
void eng_api__shadow_get(eng_api_call *c, eng_api_response *rs);   /* routes_shadow.c */
void eng_api__shadow_update(eng_api_call *c, eng_api_response *rs);
void eng_api__shadow_delete(eng_api_call *c, eng_api_response *rs);
void eng_api__shadow_list(eng_api_call *c, eng_api_response *rs);
void eng_api__cluster_instances(eng_api_call *c, eng_api_response *rs); /* routes_cluster.c */

/* }====== */

#endif

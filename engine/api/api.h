/*
 * api.h -- the REST front door (engine/api/): public face of the folder, for serve.c, the
 * tests and the fuzzer.
 *
 * Three layers, each in its own files:
 *   server.c   libmicrohttpd: listen address (IPv4, IPv6), connection limits, a thread per
 *              connection, body buffering; converts a connection to an eng_api_request and an
 *              eng_api_response back. Nothing else knows libmicrohttpd.
 *   router.c   the route table (method, path pattern, required permission, body limit,
 *              handler), path and query decoding, and the two steps below.
 *   auth.c     who is calling (SigV4 credential, Bearer token, or nobody) and what that role
 *              may do; sigv4.c is AWS Signature Version 4 itself.
 * The handlers live in routes_*.c.
 *
 * A request is answered in two steps, so that a refusal never reads the body:
 *   eng_api_admit()     with the request line and headers only: finds the route,
 *                       authenticates (a missing credential, an unknown key or a wrong token
 *                       end here), checks Content-Length against the route's limit.
 *   eng_api_dispatch()  with the body: checks a SigV4 signature (it covers the body's
 *                       SHA-256), then the role, then runs the handler.
 * eng_api_handle() does both, for callers that hold the whole request (tests, the fuzzer).
 *
 * Ownership: every pointer in an eng_api_request is borrowed from the caller for the duration
 * of the calls. An eng_api_response owns its body; eng_api_response_deinit() frees it.
 * Thread: an eng_api is read-only after eng_api_new() and serves any number of threads.
 */
#ifndef SLUICE_API_H
#define SLUICE_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../engine_int.h"

typedef struct eng_api eng_api;
typedef struct eng_route eng_route;

typedef struct eng_api_header {
    const char *name;  /* as received (any case) */
    const char *value; /* as received (surrounding spaces allowed) */
} eng_api_header;

/* Who made a request, once authenticated (auth.c). */
typedef struct eng_principal {
    int role;          /* ENG_ROLE_*; ENG_ROLE_ADMIN when authentication is off */
    char who[160];     /* for messages and logs: "access key AKID...", "token 2", "anonymous" */
} eng_principal;

typedef struct eng_api_request {
    /* public: set by the caller; all borrowed, NUL-terminated */
    const char *method;             /* "GET", "POST", ... */
    const char *path;               /* raw, as sent: percent-encoded, without the query */
    const char *query;              /* raw, after '?' ("" or NULL when there is none) */
    const eng_api_header *headers;  /* as received, repeated names kept, in order */
    size_t nheaders;
    const char *body;               /* body_len bytes (not NUL-terminated); NULL when empty */
    size_t body_len;
    const char *client;             /* the client's address, for logs */
    int64_t now;                    /* seconds since the epoch: the clock SigV4 dates are
                                       checked against */
    /* private: set by eng_api_admit() */
    const eng_route *route;
    int admitted;                   /* eng_api_admit() let it through */
    int sigv4_pending;              /* the signature is checked with the body */
    size_t cred;                    /* with sigv4_pending: the credential's index */
    eng_principal who;
} eng_api_request;

#define ENG_API_MAX_HEADERS 8

typedef struct eng_api_response {
    int status;
    const char *content_type;  /* static */
    const char *error_type;    /* x-amzn-ErrorType, static; NULL on success */
    char *body;                /* owned (malloc'd) */
    size_t body_len;
    int close;                 /* close the connection after it (the body was not read) */
    struct {
        const char *name, *value; /* static strings */
    } headers[ENG_API_MAX_HEADERS];
    size_t nheaders;
} eng_api_response;

/* A router over env's services and env->cfg's credentials and tokens (both borrowed; they
 * must outlive it). NULL with e set on OOM. Thread: main. */
eng_api *eng_api_new(eng_env *env, eng_error *e);
void eng_api_free(eng_api *api); /* NULL is a no-op */

/* First step (headers only). Returns 1 when rs holds the final response (refused, or no
 * such route): send it without reading the body. Returns 0 when the body is to be read, at
 * most eng_api_body_limit(rq) bytes, and handed to eng_api_dispatch(). Thread: any. */
int eng_api_admit(eng_api *api, eng_api_request *rq, eng_api_response *rs);
/* The most body bytes the admitted route takes. Thread: any. */
size_t eng_api_body_limit(const eng_api_request *rq);
/* Second step, with rq->body set: fills rs. Thread: any. */
void eng_api_dispatch(eng_api *api, eng_api_request *rq, eng_api_response *rs);
/* Both steps on a complete request. Thread: any. */
void eng_api_handle(eng_api *api, eng_api_request *rq, eng_api_response *rs);

/* Frees the body rs owns (rs can be filled again). Thread: any. */
void eng_api_response_deinit(eng_api_response *rs);

/* Parses a listen address: "host:port", "[v6]:port", "localhost:port", ":port" (every IPv4
 * address). Returns 0 and fills ss, or -1 with a message in err. Thread: any. */
int eng_api_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *err,
                       size_t cap);
/* 1 when ss is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). Thread: any. */
int eng_api_addr_is_loopback(const struct sockaddr_storage *ss);
/* The secure default: with no credential and no token configured, the REST API may listen
 * only on loopback, unless cfg->insecure_no_auth. Returns 0, or -1 with a message that says
 * how to configure credentials. Thread: any. */
int eng_api_check_exposure(const eng_config *cfg, char *err, size_t cap);

#endif

/*
 * auth.c -- who is calling, and what that role may do.
 *
 * With no credential and no token configured, authentication is off: every caller is admin
 * (serve.c allows that only on a loopback address, or with SLUICE_INSECURE_NO_AUTH=1). With
 * any configured, every route but the open ones (health checks, and /metrics with
 * auth.metricsPublic) needs one of
 *
 *   Authorization: AWS4-HMAC-SHA256 Credential=<key id>/...   (the AWS CLI, boto3, SDKs)
 *   Authorization: Bearer <token>                             (curl, Prometheus)
 *
 * and the caller's role must allow the route: reader the GET routes and /metrics, publisher
 * the publish call, admin everything. A request without credentials gets AWS's 403
 * MissingAuthenticationTokenException, or, when only tokens are configured, the Bearer
 * scheme's 401 UnauthorizedException (what curl and Prometheus users expect).
 *
 * The checks are split so that the body of a refused request is never read: begin() runs on
 * the headers and refuses a missing credential, an unknown access key, a malformed or
 * out-of-date signature, a wrong token and a token whose role does not allow the route;
 * finish() runs once the body is in, because a SigV4 signature covers the body's SHA-256,
 * and then checks the role. Tokens are compared as SHA-256 digests with CRYPTO_memcmp against
 * every configured token, so neither the time taken nor an early exit tells how much of a
 * guess was right; access key ids are public and are looked up plainly. The services a
 * signature may be scoped to are the signing names the AWS CLI uses for these routes: "iot"
 * and "execute-api" (the control plane, newer and older models), "iotdata" (iot-data). Any
 * region is accepted: sluice has one, and users pick any name in `aws configure`.
 */
#include "api_int.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    int status;
    const char *type, *message, *label;
} statuses[] = {
#define X(name, status, type, msg, label) {status, type, msg, label},
    ENG_AUTH_STATUS_MAP(X)
#undef X
};

static _Atomic uint64_t refused[ENG_AUTH_COUNT_];

static int index_of(int code) { return code <= 0 && -code < ENG_AUTH_COUNT_ ? -code : 0; }
int eng_auth_status(int code) { return statuses[index_of(code)].status; }
const char *eng_auth_type(int code) { return statuses[index_of(code)].type; }
const char *eng_auth_message(int code) { return statuses[index_of(code)].message; }
const char *eng_auth_label(int code) { return statuses[index_of(code)].label; }
uint64_t eng_auth_refused(int code) { return atomic_load(&refused[index_of(code)]); }
void eng_auth_count_refusal(int code) { atomic_fetch_add(&refused[index_of(code)], 1); }

static const char *const services[] = {"iot", "execute-api", "iotdata"};

int eng_auth_allows(int role, int need) {
    switch (need) {
    case ENG_NEED_OPEN:
    case ENG_NEED_ANY:
        return 1;
    case ENG_NEED_READ:
    case ENG_NEED_METRICS:
        return role == ENG_ROLE_READER || role == ENG_ROLE_ADMIN;
    case ENG_NEED_PUBLISH:
        return role == ENG_ROLE_PUBLISHER || role == ENG_ROLE_ADMIN;
    default:
        return role == ENG_ROLE_ADMIN;
    }
}

int eng_auth_enabled(const eng_config *cfg) { return cfg->ncredentials || cfg->ntokens; }

static int fail(int code, char *msg, size_t cap) {
    snprintf(msg, cap, "%s", eng_auth_message(code));
    return code;
}

static int deny(const eng_api_request *rq, char *msg, size_t cap) {
    snprintf(msg, cap, "%s (role %s) is not authorized to perform %s %s", rq->who.who,
             eng_role_name(rq->who.role), rq->method,
             rq->route ? rq->route->pattern : "on this path");
    return ENG_AUTH_E_DENIED;
}

/* The role of the configured token equal to got, or 0; *which is its index. */
static int token_role(const eng_config *cfg, const char *got, size_t *which) {
    unsigned char g[SHA256_DIGEST_LENGTH], w[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)got, strlen(got), g);
    int role = 0;
    for (size_t i = 0; i < cfg->ntokens; i++) { /* no early exit */
        SHA256((const unsigned char *)cfg->tokens[i].token, strlen(cfg->tokens[i].token), w);
        int same = CRYPTO_memcmp(g, w, sizeof g) == 0;
        role = same ? cfg->tokens[i].role : role;
        *which = same ? i : *which;
    }
    return role;
}

static int bearer(const eng_config *cfg, eng_api_request *rq, const char *token, int need,
                  char *msg, size_t cap) {
    while (*token == ' ')
        token++;
    size_t which = 0;
    int role = cfg->ntokens ? token_role(cfg, token, &which) : 0;
    if (!role)
        return fail(ENG_AUTH_E_TOKEN, msg, cap);
    rq->who.role = role;
    snprintf(rq->who.who, sizeof rq->who.who, "token %zu", which + 1);
    return eng_auth_allows(role, need) ? ENG_AUTH_OK : deny(rq, msg, cap);
}

static int sigv4_begin(const eng_config *cfg, eng_api_request *rq, char *msg, size_t cap) {
    eng_sigv4 s;
    int rc = eng_sigv4_parse(rq, &s, msg, cap);
    if (rc)
        return rc;
    snprintf(rq->who.who, sizeof rq->who.who, "access key %s", s.key_id); /* ids are public */
    size_t i = 0;
    while (i < cfg->ncredentials && strcmp(cfg->credentials[i].access_key_id, s.key_id))
        i++;
    if (i == cfg->ncredentials)
        return fail(ENG_AUTH_E_UNKNOWN_KEY, msg, cap);
    int known = 0;
    for (size_t k = 0; k < sizeof services / sizeof services[0]; k++)
        known |= !strcmp(s.service, services[k]);
    if (!known) {
        snprintf(msg, cap, "Credential should be scoped to correct service: 'iot', "
                 "'execute-api' or 'iotdata', not '%s'.", s.service);
        return ENG_AUTH_E_SIGNATURE;
    }
    rc = eng_sigv4_check_date(&s, rq->now, msg, cap);
    if (rc)
        return rc;
    rq->cred = i;
    rq->sigv4_pending = 1;
    rq->who.role = cfg->credentials[i].role;
    return ENG_AUTH_OK;
}

int eng_auth_begin(const eng_config *cfg, eng_api_request *rq, int need, char *msg,
                   size_t cap) {
    rq->sigv4_pending = 0;
    rq->who.role = ENG_ROLE_NONE;
    snprintf(rq->who.who, sizeof rq->who.who, "anonymous");
    if (need == ENG_NEED_METRICS && cfg->metrics_public)
        need = ENG_NEED_OPEN;
    if (!eng_auth_enabled(cfg)) {
        rq->who.role = ENG_ROLE_ADMIN;
        return ENG_AUTH_OK;
    }
    if (need == ENG_NEED_OPEN)
        return ENG_AUTH_OK;
    const char *h = eng_api__header(rq, "Authorization");
    if (!h && !cfg->ncredentials) /* tokens only: the Bearer scheme's answer */
        return fail(ENG_AUTH_E_TOKEN, msg, cap);
    if (!h) {
        if (rq->query && strstr(rq->query, "X-Amz-Signature=")) {
            snprintf(msg, cap, "presigned URLs are not supported: sign the Authorization "
                     "header");
            return ENG_AUTH_E_MISSING;
        }
        return fail(ENG_AUTH_E_MISSING, msg, cap);
    }
    while (*h == ' ' || *h == '\t')
        h++;
    if (!strncasecmp(h, "Bearer ", 7))
        return bearer(cfg, rq, h + 7, need, msg, cap);
    if (!strncmp(h, "AWS4-HMAC-SHA256", 16))
        return sigv4_begin(cfg, rq, msg, cap);
    snprintf(msg, cap, "unsupported Authorization scheme: use AWS Signature Version 4 "
             "(AWS4-HMAC-SHA256) or a Bearer token");
    return ENG_AUTH_E_INCOMPLETE;
}

int eng_auth_finish(const eng_config *cfg, eng_api_request *rq, int need, char *msg,
                    size_t cap) {
    if (!rq->sigv4_pending)
        return ENG_AUTH_OK; /* off, open, or a token already checked */
    eng_sigv4 s;
    int rc = eng_sigv4_parse(rq, &s, msg, cap);
    if (!rc)
        rc = eng_sigv4_verify(rq, &s, cfg->credentials[rq->cred].secret, msg, cap);
    if (rc)
        return rc;
    rq->sigv4_pending = 0;
    return eng_auth_allows(rq->who.role, need) ? ENG_AUTH_OK : deny(rq, msg, cap);
}

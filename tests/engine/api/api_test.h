/*
 * api_test.h -- what the REST API's tests and its fuzzer share: building an eng_api_request
 * from pieces and signing it the way the AWS CLI does (SignedHeaders=host;x-amz-date). The
 * signer uses sigv4.c's canonical request and key derivation, which test_sigv4.c checks
 * against AWS's test suite and botocore.
 */
#ifndef SLUICE_API_TEST_H
#define SLUICE_API_TEST_H

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"

#define TEST_MAX_HEADERS 24

typedef struct test_req {
    eng_api_request rq;
    eng_api_header h[TEST_MAX_HEADERS];
    char date[17], auth[600], length[24];
} test_req;

/* A request with a Host header and, when body is not NULL, a Content-Length. All borrowed. */
static inline void test_req_init(test_req *t, const char *method, const char *path,
                                 const char *query, const char *body) {
    memset(t, 0, sizeof *t);
    t->rq.method = method;
    t->rq.path = path;
    t->rq.query = query ? query : "";
    t->rq.headers = t->h;
    t->rq.body = body;
    t->rq.body_len = body ? strlen(body) : 0;
    t->rq.client = "test";
    t->rq.now = (int64_t)time(NULL);
    t->h[t->rq.nheaders++] = (eng_api_header){"Host", "127.0.0.1:8088"};
    if (body) {
        snprintf(t->length, sizeof t->length, "%zu", t->rq.body_len);
        t->h[t->rq.nheaders++] = (eng_api_header){"Content-Length", t->length};
    }
}

static inline void test_req_header(test_req *t, const char *name, const char *value) {
    if (t->rq.nheaders < TEST_MAX_HEADERS)
        t->h[t->rq.nheaders++] = (eng_api_header){name, value};
}

/* Signs t as of `when` with key/secret for service (region us-east-1), as the AWS CLI does. */
static inline void test_req_sign(test_req *t, const char *key, const char *secret,
                                 const char *service, int64_t when) {
    time_t tt = (time_t)when;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(t->date, sizeof t->date, "%Y%m%dT%H%M%SZ", &tm);
    test_req_header(t, "X-Amz-Date", t->date);
    eng_sigv4 s = {0};
    snprintf(s.amz_date, sizeof s.amz_date, "%s", t->date);
    snprintf(s.scope_date, sizeof s.scope_date, "%.8s", t->date);
    snprintf(s.region, sizeof s.region, "us-east-1");
    snprintf(s.service, sizeof s.service, "%s", service);
    char hash[65], sig[65];
    eng_sigv4_sha256_hex(t->rq.body, t->rq.body_len, hash);
    char *creq = eng_sigv4_canonical_request(&t->rq, "host;x-amz-date", hash);
    eng_sigv4_sign(secret, &s, creq ? creq : "", sig);
    free(creq);
    snprintf(t->auth, sizeof t->auth,
             "AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/%s/aws4_request, "
             "SignedHeaders=host;x-amz-date, Signature=%s",
             key, s.scope_date, service, sig);
    test_req_header(t, "Authorization", t->auth);
}

#endif

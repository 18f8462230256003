/*
 * test_auth.c -- who may call what (engine/api/auth.c): the refusals of the first step (no
 * credentials, an unknown key, a malformed or out-of-date signature, a wrong token, a token
 * whose role does not fit) happen before the body is read; a signature and its role are
 * checked with the body. Roles: reader, publisher, admin. Authentication off: all admin.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "api_test.h"

static eng_config cfg;

static void add_cred(const char *id, const char *secret, int role) {
    eng_credential *c = &cfg.credentials[cfg.ncredentials++];
    snprintf(c->access_key_id, sizeof c->access_key_id, "%s", id);
    snprintf(c->secret, sizeof c->secret, "%s", secret);
    c->role = role;
}

static void add_token(const char *token, int role) {
    snprintf(cfg.tokens[cfg.ntokens].token, sizeof cfg.tokens[0].token, "%s", token);
    cfg.tokens[cfg.ntokens++].role = role;
}

static void setup(void) {
    eng_config_defaults(&cfg);
    eng_log_set_level(ENG_LOG_ERROR);
    add_cred("AKIDADMIN", "admin-secret-0123456789", ENG_ROLE_ADMIN);
    add_cred("AKIDPUB", "publisher-secret-0123456789", ENG_ROLE_PUBLISHER);
    add_cred("AKIDREAD", "reader-secret-0123456789", ENG_ROLE_READER);
    add_token("token-admin-0123456789", ENG_ROLE_ADMIN);
    add_token("token-reader-0123456789", ENG_ROLE_READER);
}

TestSuite(auth, .init = setup);

/* Both steps; *stage is 1 when the first refused (the body would not have been read). */
static int run(test_req *t, int need, int *stage, char *msg, size_t cap) {
    int rc = eng_auth_begin(&cfg, &t->rq, need, msg, cap);
    *stage = 1;
    if (rc)
        return rc;
    *stage = 2;
    return eng_auth_finish(&cfg, &t->rq, need, msg, cap);
}

Test(auth, no_credentials_are_refused_before_the_body) {
    test_req t;
    test_req_init(&t, "POST", "/rules/r", NULL, "{\"sql\": \"...\"}");
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_E_MISSING);
    cr_expect_eq(stage, 1);
    cr_expect_eq(eng_auth_status(ENG_AUTH_E_MISSING), 403);
    cr_expect_str_eq(eng_auth_type(ENG_AUTH_E_MISSING), "MissingAuthenticationTokenException");
    /* an unknown route still needs someone */
    cr_expect_eq(run(&t, ENG_NEED_ANY, &stage, msg, sizeof msg), ENG_AUTH_E_MISSING);
}

Test(auth, with_tokens_only_no_credentials_is_the_bearer_401) {
    cfg.ncredentials = 0;
    test_req t;
    test_req_init(&t, "GET", "/rules", NULL, NULL);
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_READ, &stage, msg, sizeof msg), ENG_AUTH_E_TOKEN);
    cr_expect_eq(eng_auth_status(ENG_AUTH_E_TOKEN), 401);
    cr_expect_str_eq(eng_auth_type(ENG_AUTH_E_TOKEN), "UnauthorizedException");
}

Test(auth, unknown_access_key_is_refused_before_the_body) {
    test_req t;
    test_req_init(&t, "POST", "/rules/r", NULL, "{}");
    test_req_sign(&t, "AKIDNOBODY", "admin-secret-0123456789", "iot", t.rq.now);
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_E_UNKNOWN_KEY);
    cr_expect_eq(stage, 1);
    cr_expect_str_eq(eng_auth_type(ENG_AUTH_E_UNKNOWN_KEY), "UnrecognizedClientException");
}

Test(auth, a_signature_is_checked_with_the_body) {
    test_req t;
    test_req_init(&t, "POST", "/rules/r", NULL, "{}");
    test_req_sign(&t, "AKIDADMIN", "admin-secret-0123456789", "iot", t.rq.now);
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_OK, "%s", msg);
    cr_expect_eq(t.rq.who.role, ENG_ROLE_ADMIN);
    cr_expect_str_eq(t.rq.who.who, "access key AKIDADMIN");
    t.rq.body = "{ }"; /* same length, other bytes */
    cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_E_SIGNATURE);
    cr_expect_eq(stage, 2);
}

Test(auth, a_wrong_secret_is_an_invalid_signature) {
    test_req t;
    test_req_init(&t, "GET", "/rules", "maxResults=5&topic=a%2Fb", NULL);
    test_req_sign(&t, "AKIDREAD", "reader-secret-012345678X", "execute-api", t.rq.now);
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_READ, &stage, msg, sizeof msg), ENG_AUTH_E_SIGNATURE);
    cr_expect_str_eq(eng_auth_type(ENG_AUTH_E_SIGNATURE), "InvalidSignatureException");
}

Test(auth, the_cli_services_are_accepted_and_others_are_not) {
    static const char *const ok[] = {"iot", "execute-api", "iotdata"};
    static const char *const bad[] = {"s3", "sts", "iot-data-x"};
    char msg[300];
    int stage;
    for (size_t i = 0; i < 3; i++) {
        test_req t;
        test_req_init(&t, "GET", "/rules", NULL, NULL);
        test_req_sign(&t, "AKIDREAD", "reader-secret-0123456789", ok[i], t.rq.now);
        cr_expect_eq(run(&t, ENG_NEED_READ, &stage, msg, sizeof msg), ENG_AUTH_OK, "%s: %s",
                     ok[i], msg);
        test_req_init(&t, "GET", "/rules", NULL, NULL);
        test_req_sign(&t, "AKIDREAD", "reader-secret-0123456789", bad[i], t.rq.now);
        cr_expect_eq(run(&t, ENG_NEED_READ, &stage, msg, sizeof msg), ENG_AUTH_E_SIGNATURE,
                     "%s", bad[i]);
        cr_expect_eq(stage, 1);
    }
}

Test(auth, an_old_or_future_signature_is_refused_before_the_body) {
    char msg[300];
    int stage;
    for (int sign = -1; sign <= 1; sign += 2) {
        test_req t;
        test_req_init(&t, "POST", "/topics/a", NULL, "x");
        test_req_sign(&t, "AKIDPUB", "publisher-secret-0123456789", "iotdata",
                      t.rq.now + sign * (ENG_SIGV4_SKEW_S + 1));
        cr_expect_eq(run(&t, ENG_NEED_PUBLISH, &stage, msg, sizeof msg), ENG_AUTH_E_EXPIRED);
        cr_expect_eq(stage, 1);
        cr_expect(strstr(msg, sign < 0 ? "Signature expired" : "Signature not yet current"),
                  "%s", msg);
        test_req_init(&t, "POST", "/topics/a", NULL, "x");
        test_req_sign(&t, "AKIDPUB", "publisher-secret-0123456789", "iotdata",
                      t.rq.now + sign * (ENG_SIGV4_SKEW_S - 1));
        cr_expect_eq(run(&t, ENG_NEED_PUBLISH, &stage, msg, sizeof msg), ENG_AUTH_OK, "%s",
                     msg);
    }
}

Test(auth, malformed_authorization_is_refused_before_the_body) {
    static const char *const bad[] = {
        "AWS4-HMAC-SHA256 Credential=AKIDADMIN/20150830/us-east-1/iot/aws4_request",
        "Basic YWRtaW46YWRtaW4=", "Digest x", "AWS AKIDADMIN:c2lnbmF0dXJl", "garbage"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_req t;
        test_req_init(&t, "POST", "/rules/r", NULL, "{}");
        test_req_header(&t, "Authorization", bad[i]);
        char msg[300];
        int stage;
        cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_E_INCOMPLETE,
                     "%s", bad[i]);
        cr_expect_eq(stage, 1);
    }
}

Test(auth, roles_allow_their_routes_and_no_others) {
    static const struct {
        int role, need, ok;
    } m[] = {
        {ENG_ROLE_READER, ENG_NEED_READ, 1},       {ENG_ROLE_READER, ENG_NEED_METRICS, 1},
        {ENG_ROLE_READER, ENG_NEED_PUBLISH, 0},    {ENG_ROLE_READER, ENG_NEED_ADMIN, 0},
        {ENG_ROLE_PUBLISHER, ENG_NEED_PUBLISH, 1}, {ENG_ROLE_PUBLISHER, ENG_NEED_READ, 0},
        {ENG_ROLE_PUBLISHER, ENG_NEED_METRICS, 0}, {ENG_ROLE_PUBLISHER, ENG_NEED_ADMIN, 0},
        {ENG_ROLE_ADMIN, ENG_NEED_READ, 1},        {ENG_ROLE_ADMIN, ENG_NEED_PUBLISH, 1},
        {ENG_ROLE_ADMIN, ENG_NEED_ADMIN, 1},       {ENG_ROLE_ADMIN, ENG_NEED_METRICS, 1},
        {ENG_ROLE_READER, ENG_NEED_ANY, 1},        {ENG_ROLE_PUBLISHER, ENG_NEED_ANY, 1},
        {ENG_ROLE_NONE, ENG_NEED_READ, 0},         {ENG_ROLE_NONE, ENG_NEED_OPEN, 1},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        cr_expect_eq(eng_auth_allows(m[i].role, m[i].need), m[i].ok, "role %d need %d",
                     m[i].role, m[i].need);
}

Test(auth, a_signed_caller_without_the_role_is_denied_after_the_signature) {
    test_req t;
    test_req_init(&t, "POST", "/rules/r", NULL, "{}");
    test_req_sign(&t, "AKIDPUB", "publisher-secret-0123456789", "iot", t.rq.now);
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_E_DENIED);
    cr_expect_eq(stage, 2);
    cr_expect(strstr(msg, "access key AKIDPUB (role publisher)"), "%s", msg);
    cr_expect_str_eq(eng_auth_type(ENG_AUTH_E_DENIED), "AccessDeniedException");
}

Test(auth, tokens) {
    char msg[300];
    int stage;
    static const struct {
        const char *header;
        int need, want;
    } cases[] = {
        {"Bearer token-admin-0123456789", ENG_NEED_ADMIN, ENG_AUTH_OK},
        {"bearer token-admin-0123456789", ENG_NEED_ADMIN, ENG_AUTH_OK},
        {"Bearer token-reader-0123456789", ENG_NEED_READ, ENG_AUTH_OK},
        {"Bearer token-reader-0123456789", ENG_NEED_PUBLISH, ENG_AUTH_E_DENIED},
        {"Bearer token-reader-012345678", ENG_NEED_READ, ENG_AUTH_E_TOKEN},
        {"Bearer token-reader-01234567890", ENG_NEED_READ, ENG_AUTH_E_TOKEN},
        {"Bearer ", ENG_NEED_READ, ENG_AUTH_E_TOKEN},
        {"Bearer token-admin-0123456789x", ENG_NEED_ADMIN, ENG_AUTH_E_TOKEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_req t;
        test_req_init(&t, "POST", "/topics/a", NULL, "x");
        test_req_header(&t, "Authorization", cases[i].header);
        cr_expect_eq(run(&t, cases[i].need, &stage, msg, sizeof msg), cases[i].want, "%s: %s",
                     cases[i].header, msg);
        cr_expect_eq(stage, cases[i].want ? 1 : 2, "a token is settled on the headers");
    }
}

Test(auth, open_routes_and_public_metrics) {
    test_req t;
    test_req_init(&t, "GET", "/healthz", NULL, NULL);
    test_req_header(&t, "Authorization", "Bearer wrong");
    char msg[300];
    int stage;
    cr_expect_eq(run(&t, ENG_NEED_OPEN, &stage, msg, sizeof msg), ENG_AUTH_OK);
    test_req_init(&t, "GET", "/metrics", NULL, NULL);
    cr_expect_eq(run(&t, ENG_NEED_METRICS, &stage, msg, sizeof msg), ENG_AUTH_E_MISSING);
    cfg.metrics_public = 1;
    cr_expect_eq(run(&t, ENG_NEED_METRICS, &stage, msg, sizeof msg), ENG_AUTH_OK);
}

Test(auth, off_when_nothing_is_configured) {
    cfg.ncredentials = cfg.ntokens = 0;
    cr_expect_not(eng_auth_enabled(&cfg));
    static const char *const headers[] = {NULL, "garbage", "Bearer x",
                                          "AWS4-HMAC-SHA256 Credential=x"};
    for (size_t i = 0; i < 4; i++) {
        test_req t;
        test_req_init(&t, "POST", "/rules/r", NULL, "{}");
        if (headers[i])
            test_req_header(&t, "Authorization", headers[i]);
        char msg[300];
        int stage;
        cr_expect_eq(run(&t, ENG_NEED_ADMIN, &stage, msg, sizeof msg), ENG_AUTH_OK);
        cr_expect_eq(t.rq.who.role, ENG_ROLE_ADMIN);
    }
}

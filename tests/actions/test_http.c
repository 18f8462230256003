/*
 * test_http.c -- the HTTP action without the service: open() validation (scheme, allow-list,
 * header limits, unknown keys, auth, batchConfig), format() of single and batched requests,
 * per-message checks of the substituted URL and headers, and deliver() against a small
 * in-process HTTP/1.1 server (status classification, keep-alive, partial batches) and a closed
 * port.
 */
#include <criterion/criterion.h>

#include "action_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "action.h"
#include "http/http_int.h"

extern const act_vtable act_http_vtable;

/* {====== helpers */

static int timeout_ms = 2000; /* http_timeout_ms of the instances a test opens */
static int link_local_ok;     /* http_allow_link_local of the instances a test opens */

/* The instance copies what it needs from the host at open(), so one host serves them all. */
static act_instance *open_with(const char *json, const char *allowed, eng_error *e) {
    static char hosts[1024];
    static eng_host h;
    snprintf(hosts, sizeof hosts, "%s", allowed);
    h = act_test_host();
    h.http_allowed_hosts = hosts;
    h.http_timeout_ms = timeout_ms;
    h.http_connect_timeout_ms = 1000;
    h.http_allow_link_local = link_local_ok;
    return act_test_open(&act_http_vtable, &h, json, e);
}

static act_instance *open_ok(const char *json, const char *allowed) {
    eng_error e;
    act_instance *inst = open_with(json, allowed, &e);
    cr_assert_not_null(inst, "rejected %s: %s", json, e.message);
    return inst;
}

static void open_fails(const char *json, const char *allowed, const char *needle) {
    eng_error e;
    act_instance *inst = open_with(json, allowed, &e);
    cr_assert_null(inst, "accepted: %s", json);
    cr_assert_eq(e.status, 400);
    cr_assert_str_eq(e.type, "InvalidRequestException");
    cr_assert(strstr(e.message, needle), "message \"%s\" lacks \"%s\"", e.message, needle);
}

/* A message as the pipeline hands it over: the substituted templates in fields. */
typedef struct tmsg {
    eng_msg in;
    act_msg m;
    const char *f[16];
    size_t fl[16];
} tmsg;

static void mk(tmsg *t, const char *topic, const char *payload, size_t nf,
               const char *const *fields) {
    memset(t, 0, sizeof *t);
    t->in.topic = (char *)topic;
    t->in.topic_len = strlen(topic);
    t->in.payload = (void *)payload;
    t->in.payload_len = strlen(payload);
    for (size_t i = 0; i < nf; i++) {
        t->f[i] = fields[i];
        t->fl[i] = strlen(fields[i]);
    }
    t->m = (act_msg){.rule_name = "r", .payload = payload, .payload_len = strlen(payload),
                     .fields = t->f, .field_lens = t->fl, .in = &t->in};
}

static char *format_all(act_instance *inst, tmsg *ts, size_t n, int *rc) {
    const act_msg *b[16];
    for (size_t i = 0; i < n; i++)
        b[i] = &ts[i].m;
    act_buf out = {0};
    *rc = act_http_vtable.format(inst, b, n, &out);
    return out.p ? out.p : strdup("");
}

static void expect_format(act_instance *inst, tmsg *ts, size_t n, const char *want) {
    int rc;
    char *got = format_all(inst, ts, n, &rc);
    cr_assert_eq(rc, 0, "format failed: %s", got);
    cr_assert_str_eq(got, want);
    free(got);
}

static void expect_format_error(act_instance *inst, tmsg *ts, size_t n, const char *needle) {
    int rc;
    char *got = format_all(inst, ts, n, &rc);
    cr_assert_eq(rc, -1, "format accepted: %s", got);
    cr_assert(strstr(got, needle), "error \"%s\" lacks \"%s\"", got, needle);
    free(got);
}

static act_result deliver_all(act_instance *inst, tmsg *ts, size_t n, size_t *ndone, char *err,
                              size_t cap) {
    const act_msg *b[16];
    for (size_t i = 0; i < n; i++)
        b[i] = &ts[i].m;
    err[0] = '\0';
    return act_http_vtable.deliver(inst, 0, b, n, ndone, err, cap);
}

/* }====== */

/* {====== a one-connection-at-a-time HTTP/1.1 server with scripted statuses */

typedef struct srv {
    int fd, port;
    pthread_t th;
    int status[16], nstatus;   /* request k gets status[min(k, nstatus - 1)] */
    atomic_int nreq, nconn;
    char reqs[8][2048];        /* the first 8 requests as received (head and body) */
} srv;

static int read_request(int c, char *buf, size_t cap, size_t *len) {
    size_t n = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        if (n + 1 >= cap)
            return -1;
        ssize_t r = recv(c, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
    }
    size_t head = (size_t)(end - buf) + 4, clen = 0;
    for (char *p = buf; p < end; p++)
        if (!strncasecmp(p, "\r\ncontent-length:", 17))
            clen = strtoul(p + 17, NULL, 10);
    while (n < head + clen) {
        if (n + 1 >= cap)
            return -1;
        ssize_t r = recv(c, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
    }
    *len = n;
    return 0;
}

static void *serve(void *arg) {
    srv *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        atomic_fetch_add(&s->nconn, 1);
        char buf[8192];
        size_t len;
        for (;;) {
            buf[0] = '\0';
            if (read_request(c, buf, sizeof buf, &len) != 0)
                break;
            int k = atomic_fetch_add(&s->nreq, 1);
            if (k < 8)
                snprintf(s->reqs[k], sizeof s->reqs[k], "%s", buf);
            int st = s->status[k < s->nstatus ? k : s->nstatus - 1];
            char body[64], resp[256];
            /* a 204 has no body, whatever Content-Length says */
            int bn = st == 204 ? 0 : snprintf(body, sizeof body, "hook says %d\nbye", st);
            body[bn] = '\0';
            int rn = snprintf(resp, sizeof resp,
                              "HTTP/1.1 %d X\r\n%s%d\r\n\r\n%s", st,
                              st == 204 ? "X-Length: " : "Content-Length: ", bn, body);
            if (send(c, resp, (size_t)rn, MSG_NOSIGNAL) != rn)
                break;
        }
        close(c);
    }
}

static void srv_start(srv *s, const int *status, int n) {
    memset(s, 0, sizeof *s);
    memcpy(s->status, status, sizeof(int) * (size_t)n);
    s->nstatus = n;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->fd, 8), 0);
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, serve, s);
}

/* call after closing the instance (which closes its connection) */
static void srv_stop(srv *s) {
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
}

/* }====== */

/* {====== open(): validation */

Test(http, minimal_url_opens_with_four_lanes_and_the_url_as_resource) {
    act_instance *inst = open_ok("{\"url\": \"http://127.0.0.1:9000/hook/${topic(2)}\"}", "");
    cr_assert_eq(inst->lanes, 4);
    cr_assert_leq(inst->max_batch, 1);
    cr_assert_str_eq(inst->resource, "http://127.0.0.1:9000/hook/${topic(2)}");
    const char *const *tpl;
    cr_assert_eq(act_http_vtable.templates(inst, &tpl), 1);
    cr_assert_str_eq(tpl[0], "http://127.0.0.1:9000/hook/${topic(2)}");
    act_http_vtable.close(inst);
}

Test(http, literal_scheme_must_be_http_or_https) {
    open_fails("{\"url\": \"ftp://h.example/x\"}", "", "http:// or https://");
    open_fails("{\"url\": \"file:///etc/passwd\"}", "", "http:// or https://");
    open_fails("{\"url\": \"h.example/x\"}", "", "http:// or https://");
    open_fails("{\"url\": \"ftp://h.example/${topic()}\"}", "", "http:// or https://");
    open_fails("{\"url\": \"http:/h.example/x\"}", "", "http:// or https://");
    act_http_vtable.close(open_ok("{\"url\": \"HTTPS://h.example/${topic()}\"}", ""));
    act_http_vtable.close(open_ok("{\"url\": \"${proto}://h.example/x\"}", "h.example"));
}

Test(http, scheme_from_a_substitution_is_checked_per_message) {
    act_instance *inst = open_ok("{\"url\": \"${proto}://h.example/x\"}", "h.example");
    tmsg t;
    mk(&t, "a/b", "{}", 1, (const char *[]){"ftp://h.example/x"});
    expect_format_error(inst, &t, 1, "http:// or https://");
    char err[256];
    size_t done = 7;
    cr_assert_eq(deliver_all(inst, &t, 1, &done, err, sizeof err), ACT_FAIL);
    cr_assert_eq(done, 0);
    cr_assert(strstr(err, "http:// or https://"), "%s", err);
    act_http_vtable.close(inst);
}

Test(http, literal_host_outside_the_allow_list_is_refused_at_open) {
    open_fails("{\"url\": \"https://evil.example/in/${topic()}\"}", "hooks.example, 127.0.0.1",
               "evil.example");
    open_fails("{\"url\": \"https://evil.example:8443\"}", "hooks.example", "evil.example");
    open_fails("{\"url\": \"http://hooks.example@evil.example/x\"}", "hooks.example",
               "evil.example");
    act_http_vtable.close(
        open_ok("{\"url\": \"https://HOOKS.example:8443/in?x=${a}\"}", "hooks.example,127.0.0.1"));
    act_http_vtable.close(
        open_ok("{\"url\": \"http://127.0.0.1:9/x\"}", " hooks.example , 127.0.0.1"));
    act_http_vtable.close(open_ok("{\"url\": \"http://[::1]:9/x\"}", "::1"));
    /* the empty list allows any host */
    act_http_vtable.close(open_ok("{\"url\": \"https://evil.example/in\"}", ""));
}

Test(http, substituted_host_is_checked_against_the_allow_list) {
    act_instance *inst = open_ok("{\"url\": \"http://${host}/in\"}", "hooks.example");
    tmsg t[2];
    mk(&t[0], "a/b", "{}", 1, (const char *[]){"http://hooks.example/in"});
    mk(&t[1], "a/b", "{}", 1, (const char *[]){"http://evil.example/in"});
    expect_format(inst, &t[0], 1, "POST http://hooks.example/in\n"
                                  "Content-Type: application/json\n\n{}\n");
    expect_format_error(inst, &t[1], 1, "host 'evil.example' is not in the allowed hosts");
    char err[256];
    size_t done = 7;
    cr_assert_eq(deliver_all(inst, &t[1], 1, &done, err, sizeof err), ACT_FAIL);
    cr_assert_eq(done, 0);
    cr_assert(strstr(err, "evil.example"), "%s", err);
    act_http_vtable.close(inst);
}

/* A device must not be able to aim sluice anywhere: a host that comes from a template is only
 * accepted with an allow-list to check it against. */
Test(http, a_templated_host_needs_an_allow_list) {
    static const char *const urls[] = {"http://${host}/in", "${proto}://hooks.example/in",
                                       "http://${user}@hooks.example/in",
                                       "http://hooks.example:${port}/in", "http${s}://h/in",
                                       "https://${topic(2)}.hooks.example/in"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"url\": \"%s\"}", urls[i]);
        open_fails(json, "", "takes its host from a substitution template, so the hosts it may "
                             "reach must be listed in actions.http.allowedHosts");
        act_http_vtable.close(open_ok(json, "hooks.example"));
    }
    /* a literal host with a templated path needs none */
    act_http_vtable.close(open_ok("{\"url\": \"http://hooks.example/${topic()}\"}", ""));
}

/* Link-local and metadata addresses, literal in the URL: refused at open, whatever the
 * allow-list says, unless actions.http.allowLinkLocal. */
Test(http, link_local_and_metadata_literals_are_refused) {
    static const char *const urls[] = {
        "http://169.254.169.254/latest/meta-data/", "http://169.254.0.1:8080/",
        "http://[fe80::1]/",                        "http://[FE80::abcd]:80/x",
        "http://[febf::1]/",                        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",             "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",                  "http://2852039166/",
        "http://0xa9.0xfe.0xa9.0xfe/",              "http://169.254.169.254/${topic()}",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"url\": \"%s\"}", urls[i]);
        open_fails(json, "", "refused unless actions.http.allowLinkLocal is set");
        open_fails(json, "169.254.169.254,fe80::1,2852039166", "actions.http.allowLinkLocal");
        link_local_ok = 1;
        act_http_vtable.close(open_ok(json, ""));
        link_local_ok = 0;
    }
    /* next to them, but not them */
    act_http_vtable.close(open_ok("{\"url\": \"http://169.253.1.1/\"}", ""));
    act_http_vtable.close(open_ok("{\"url\": \"http://[fec0::1]/\"}", ""));
    act_http_vtable.close(open_ok("{\"url\": \"http://100.100.100.201/\"}", ""));
}

/* A templated host that becomes a link-local address: the message fails before any I/O, even
 * when the allow-list names that address. */
Test(http, a_templated_host_that_is_link_local_fails_the_message) {
    act_instance *inst = open_ok("{\"url\": \"http://${h}/x\"}", "hooks.example,169.254.169.254");
    tmsg t;
    mk(&t, "a/b", "{}", 1, (const char *[]){"http://169.254.169.254/x"});
    expect_format_error(inst, &t, 1, "host 169.254.169.254, which is link-local");
    char err[256];
    size_t done = 7;
    cr_assert_eq(deliver_all(inst, &t, 1, &done, err, sizeof err), ACT_FAIL);
    cr_assert_eq(done, 0);
    cr_assert(strstr(err, "link-local"), "%s", err);
    act_http_vtable.close(inst);
}

Test(http, user_info_from_a_substitution_cannot_smuggle_another_host) {
    act_instance *inst = open_ok("{\"url\": \"http://${u}/in\"}", "hooks.example");
    tmsg t;
    mk(&t, "a/b", "{}", 1, (const char *[]){"http://hooks.example@evil.example/in"});
    expect_format_error(inst, &t, 1, "'evil.example'");
    act_http_vtable.close(inst);
}

Test(http, header_count_and_key_length_are_limited) {
    char json[16384];
    size_t n = (size_t)snprintf(json, sizeof json,
                                "{\"url\": \"http://h.example/\", \"headers\": [");
    for (int i = 0; i < 101; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"key\": \"k%d\", \"value\": \"v\"}",
                              i ? "," : "", i);
    snprintf(json + n, sizeof json - n, "]}");
    open_fails(json, "", "\"headers\" has at most 100 items (101 given)");
    /* exactly 100 is fine: cut the last one */
    char *last = strrchr(json, '{');
    snprintf(last - 1, 4, "]}");
    act_instance *inst = open_ok(json, "");
    const char *const *tpl;
    cr_assert_eq(act_http_vtable.templates(inst, &tpl), 201);
    cr_assert_str_eq(tpl[199], "k99");
    act_http_vtable.close(inst);

    char key[300];
    memset(key, 'k', 257);
    key[257] = '\0';
    snprintf(json, sizeof json, "{\"url\": \"http://h/\", \"headers\": [{\"key\": \"%s\", "
                                "\"value\": \"v\"}]}", key);
    open_fails(json, "", "\"headers[0].key\" is longer than 256 bytes");
    key[256] = '\0';
    snprintf(json, sizeof json, "{\"url\": \"http://h/\", \"headers\": [{\"key\": \"%s\", "
                                "\"value\": \"v\"}]}", key);
    act_http_vtable.close(open_ok(json, ""));
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"\", \"value\": \"v\"}]}", "",
               "\"headers[0].key\" must not be empty");
}

Test(http, literal_header_keys_must_be_tokens_and_not_framing_headers) {
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"x y\", \"value\": \"v\"}]}", "",
               "not an HTTP header name");
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"Content-Length\", "
               "\"value\": \"9\"}]}", "", "cannot be overridden");
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"x\", "
               "\"value\": \"a\\r\\nb: c\"}]}", "", "CR or LF");
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"x\"}]}", "",
               "\"headers[0].value\" is required");
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"a\", \"value\": \"b\"}, "
               "{\"key\": \"x\", \"value\": 5}]}", "", "\"headers[1].value\" must be a string");
    open_fails("{\"url\": \"http://h/\", \"headers\": {\"x\": \"y\"}}", "", "must be an array");
}

Test(http, unknown_keys_are_refused_by_name) {
    open_fails("{\"url\": \"http://h/\", \"method\": \"PUT\"}", "", "unknown parameter \"method\"");
    open_fails("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"a\", \"value\": \"b\", "
               "\"name\": \"c\"}]}", "", "unknown parameter \"headers[0].name\" (known: key, value)");
    open_fails("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchSize\": 5, \"size\": 1}}",
               "", "unknown parameter \"batchConfig.size\"");
}

Test(http, sigv4_auth_is_refused_with_a_clear_error) {
    open_fails("{\"url\": \"https://h.example/\", \"auth\": {\"sigv4\": {\"signingRegion\": "
               "\"us-east-1\", \"serviceName\": \"execute-api\", \"roleArn\": \"arn:x\"}}}",
               "", "SigV4");
}

Test(http, url_is_required_and_at_most_2_kib) {
    open_fails("{\"headers\": []}", "", "\"url\" is required");
    open_fails("{\"url\": 7}", "", "\"url\" must be a string");
    open_fails("{\"url\": \"\"}", "", "\"url\" must not be empty");
    char json[4096], path[2100];
    memset(path, 'p', sizeof path);
    path[2048 - strlen("http://h/")] = '\0';
    snprintf(json, sizeof json, "{\"url\": \"http://h/%s\"}", path);
    act_http_vtable.close(open_ok(json, ""));
    snprintf(json, sizeof json, "{\"url\": \"http://h/%sp\"}", path);
    open_fails(json, "", "longer than 2048 bytes");
}

Test(http, confirmation_url_is_accepted_and_unused) {
    act_http_vtable.close(open_ok("{\"url\": \"https://h.example/in\", \"confirmationUrl\": "
                                  "\"https://h.example\"}", ""));
    open_fails("{\"url\": \"https://h.example/in\", \"confirmationUrl\": 1}", "",
               "confirmationUrl");
}

Test(http, batching_uses_aws_defaults_and_ranges) {
    act_instance *inst = open_ok("{\"url\": \"http://h/\", \"enableBatching\": true}", "");
    cr_assert_eq(inst->max_batch, 10);
    cr_assert_eq(inst->max_batch_bytes, 5120);
    cr_assert_eq(inst->max_batch_open_ms, 20);
    act_http_vtable.close(inst);
    inst = open_ok("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchOpenMs\": 50, "
                   "\"maxBatchSize\": 3, \"maxBatchSizeBytes\": 1000}}", "");
    cr_assert_eq(inst->max_batch, 3);
    cr_assert_eq(inst->max_batch_bytes, 1000);
    cr_assert_eq(inst->max_batch_open_ms, 50);
    act_http_vtable.close(inst);
    inst = open_ok("{\"url\": \"http://h/\", \"enableBatching\": false, "
                   "\"batchConfig\": {\"maxBatchSize\": 3}}", "");
    cr_assert_leq(inst->max_batch, 1, "an explicit enableBatching false wins");
    act_http_vtable.close(inst);
    open_fails("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchSize\": 11}}", "",
               "maxBatchSize\" must be an integer from 2 to 10");
    open_fails("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchOpenMs\": 4}}", "",
               "from 5 to 200");
    open_fails("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchSizeBytes\": 131073}}", "",
               "from 100 to 131072");
    open_fails("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchSize\": 2.5}}", "",
               "integer");
    open_fails("{\"url\": \"http://h/\", \"enableBatching\": \"yes\"}", "", "true or false");
}

/* }====== */

/* {====== format() */

static const char *HOOK = "{\"url\": \"http://127.0.0.1:9000/hook/${topic(2)}\", "
                          "\"headers\": [{\"key\": \"x-src\", \"value\": \"${clientid()}\"}]}";

Test(http, format_renders_one_post_per_message) {
    act_instance *inst = open_ok(HOOK, "");
    tmsg t[2];
    mk(&t[0], "s/d1", "{\"t\":1}", 3,
       (const char *[]){"http://127.0.0.1:9000/hook/d1", "x-src", "c1"});
    mk(&t[1], "s/d2", "{\"t\":2}", 3,
       (const char *[]){"http://127.0.0.1:9000/hook/d2", "x-src", "c2"});
    expect_format(inst, t, 2,
                  "POST http://127.0.0.1:9000/hook/d1\nContent-Type: application/json\n"
                  "x-src: c1\n\n{\"t\":1}\n"
                  "POST http://127.0.0.1:9000/hook/d2\nContent-Type: application/json\n"
                  "x-src: c2\n\n{\"t\":2}\n");
    act_http_vtable.close(inst);
}

Test(http, a_content_type_header_replaces_the_default) {
    act_instance *inst = open_ok("{\"url\": \"http://h/x\", \"headers\": [{\"key\": "
                                 "\"content-type\", \"value\": \"text/plain\"}]}", "");
    tmsg t;
    mk(&t, "a", "hello", 3, (const char *[]){"http://h/x", "content-type", "text/plain"});
    expect_format(inst, &t, 1, "POST http://h/x\ncontent-type: text/plain\n\nhello\n");
    act_http_vtable.close(inst);
}

Test(http, batch_body_is_a_json_array) {
    act_instance *inst = open_ok("{\"url\": \"http://h/in\", \"enableBatching\": true}", "");
    tmsg t[3];
    mk(&t[0], "s/1", "{\"a\":1}", 1, (const char *[]){"http://h/in"});
    mk(&t[1], "s/1", "[2]", 1, (const char *[]){"http://h/in"});
    mk(&t[2], "s/1", "{\"a\":3}", 1, (const char *[]){"http://h/in"});
    expect_format(inst, t, 3, "POST http://h/in\nContent-Type: application/json\n\n"
                              "[{\"a\":1},[2],{\"a\":3}]\n");
    /* one message with batching on is still an array */
    expect_format(inst, t, 1, "POST http://h/in\nContent-Type: application/json\n\n"
                              "[{\"a\":1}]\n");
    act_http_vtable.close(inst);
}

Test(http, batches_group_consecutive_messages_with_the_same_url) {
    act_instance *inst = open_ok("{\"url\": \"http://h/${k}\", \"batchConfig\": {}}", "");
    tmsg t[4];
    mk(&t[0], "s/1", "1", 1, (const char *[]){"http://h/a"});
    mk(&t[1], "s/1", "2", 1, (const char *[]){"http://h/a"});
    mk(&t[2], "s/1", "3", 1, (const char *[]){"http://h/b"});
    mk(&t[3], "s/1", "4", 1, (const char *[]){"http://h/a"});
    expect_format(inst, t, 4,
                  "POST http://h/a\nContent-Type: application/json\n\n[1,2]\n"
                  "POST http://h/b\nContent-Type: application/json\n\n[3]\n"
                  "POST http://h/a\nContent-Type: application/json\n\n[4]\n");
    act_http_vtable.close(inst);
}

Test(http, batches_split_on_headers_and_topics_unless_across_topics) {
    const char *cfgs[2] = {
        "{\"url\": \"http://h/\", \"headers\": [{\"key\": \"x\", \"value\": \"${v}\"}], "
        "\"batchConfig\": {}}",
        "{\"url\": \"http://h/\", \"headers\": [{\"key\": \"x\", \"value\": \"${v}\"}], "
        "\"batchConfig\": {\"batchAcrossTopics\": true}}"};
    const char *want[2] = {"POST http://h/\nContent-Type: application/json\nx: 1\n\n[1]\n"
                           "POST http://h/\nContent-Type: application/json\nx: 1\n\n[2]\n"
                           "POST http://h/\nContent-Type: application/json\nx: 2\n\n[3]\n",
                           "POST http://h/\nContent-Type: application/json\nx: 1\n\n[1,2]\n"
                           "POST http://h/\nContent-Type: application/json\nx: 2\n\n[3]\n"};
    for (int c = 0; c < 2; c++) {
        act_instance *inst = open_ok(cfgs[c], "");
        tmsg t[3];
        mk(&t[0], "s/1", "1", 3, (const char *[]){"http://h/", "x", "1"});
        mk(&t[1], "s/2", "2", 3, (const char *[]){"http://h/", "x", "1"});
        mk(&t[2], "s/2", "3", 3, (const char *[]){"http://h/", "x", "2"});
        expect_format(inst, t, 3, want[c]);
        act_http_vtable.close(inst);
    }
}

Test(http, batches_respect_max_batch_size_and_bytes) {
    act_instance *inst = open_ok("{\"url\": \"http://h/\", \"batchConfig\": "
                                 "{\"maxBatchSize\": 2}}", "");
    tmsg t[5];
    for (int i = 0; i < 5; i++)
        mk(&t[i], "s", i == 4 ? "\"x\"" : "10", 1, (const char *[]){"http://h/"});
    expect_format(inst, t, 5,
                  "POST http://h/\nContent-Type: application/json\n\n[10,10]\n"
                  "POST http://h/\nContent-Type: application/json\n\n[10,10]\n"
                  "POST http://h/\nContent-Type: application/json\n\n[\"x\"]\n");
    act_http_vtable.close(inst);

    /* 100 bytes: a body is "[" + elements joined by "," + "]" */
    inst = open_ok("{\"url\": \"http://h/\", \"batchConfig\": {\"maxBatchSizeBytes\": 100}}", "");
    char p40[41], big[150];
    memset(p40, '1', 40);
    p40[40] = '\0';
    memset(big, '2', 149);
    big[149] = '\0';
    mk(&t[0], "s", p40, 1, (const char *[]){"http://h/"});
    mk(&t[1], "s", p40, 1, (const char *[]){"http://h/"});
    mk(&t[2], "s", p40, 1, (const char *[]){"http://h/"});
    mk(&t[3], "s", big, 1, (const char *[]){"http://h/"});
    int rc;
    char *got = format_all(inst, t, 4, &rc);
    cr_assert_eq(rc, 0);
    char want[1024];
    snprintf(want, sizeof want,
             "POST http://h/\nContent-Type: application/json\n\n[%s,%s]\n"
             "POST http://h/\nContent-Type: application/json\n\n[%s]\n"
             "POST http://h/\nContent-Type: application/json\n\n[%s]\n",
             p40, p40, p40, big);
    cr_assert_str_eq(got, want, "83 bytes fit, 124 do not; an oversized message goes alone");
    free(got);
    act_http_vtable.close(inst);
}

Test(http, a_payload_that_is_not_json_becomes_a_json_string_in_a_batch) {
    act_instance *inst = open_ok("{\"url\": \"http://h/\", \"enableBatching\": true}", "");
    tmsg t[2];
    mk(&t[0], "s", "plain \"text\"\n", 1, (const char *[]){"http://h/"});
    mk(&t[1], "s", "{\"ok\": true} ", 1, (const char *[]){"http://h/"});
    expect_format(inst, t, 2, "POST http://h/\nContent-Type: application/json\n\n"
                              "[\"plain \\\"text\\\"\\n\",{\"ok\": true} ]\n");
    act_http_vtable.close(inst);
}

Test(http, substituted_header_with_crlf_or_bad_key_fails_the_message) {
    act_instance *inst = open_ok("{\"url\": \"http://h/\", \"headers\": [{\"key\": \"${k}\", "
                                 "\"value\": \"${v}\"}]}", "");
    tmsg t;
    mk(&t, "s", "{}", 3, (const char *[]){"http://h/", "x", "a\r\nInjected: 1"});
    expect_format_error(inst, &t, 1, "CR, LF or NUL");
    char err[256];
    size_t done = 9;
    cr_assert_eq(deliver_all(inst, &t, 1, &done, err, sizeof err), ACT_FAIL);
    cr_assert_eq(done, 0);
    mk(&t, "s", "{}", 3, (const char *[]){"http://h/", "", "v"});
    expect_format_error(inst, &t, 1, "is empty");
    mk(&t, "s", "{}", 3, (const char *[]){"http://h/", "transfer-encoding", "chunked"});
    expect_format_error(inst, &t, 1, "cannot be overridden");
    act_http_vtable.close(inst);
}

/* }====== */

/* {====== deliver() */

static char *hook_url(char *buf, size_t cap, int port, const char *path) {
    snprintf(buf, cap, "http://127.0.0.1:%d%s", port, path);
    return buf;
}

Test(http, statuses_are_classified_and_the_connection_is_reused) {
    srv s;
    srv_start(&s, (int[]){200, 204, 503, 429, 404, 302}, 6);
    act_instance *inst = open_ok("{\"url\": \"http://127.0.0.1/${p}\", \"headers\": "
                                 "[{\"key\": \"x-src\", \"value\": \"${c}\"}]}", "127.0.0.1");
    char url[128], err[512];
    hook_url(url, sizeof url, s.port, "/hook/d1");
    tmsg t;
    mk(&t, "s/d1", "{\"t\":1}", 3, (const char *[]){url, "x-src", "dev-1"});
    act_result want[6] = {ACT_OK, ACT_OK, ACT_RETRY, ACT_RETRY, ACT_FAIL, ACT_FAIL};
    for (int i = 0; i < 6; i++) {
        size_t done = 9;
        act_result r = deliver_all(inst, &t, 1, &done, err, sizeof err);
        cr_assert_eq(r, want[i], "request %d: %d (%s)", i, r, err);
        cr_assert_eq(done, r == ACT_OK ? 1u : 0u);
        if (r != ACT_OK) {
            char status[256];
            snprintf(status, sizeof status, "HTTP %d from %s%s: hook says %d bye", s.status[i],
                     url, s.status[i] == 302 ? " (redirects are not followed)" : "",
                     s.status[i]);
            cr_assert(strstr(err, status), "error \"%s\" lacks \"%s\"", err, status);
        }
    }
    act_http_vtable.close(inst);
    srv_stop(&s);
    cr_assert_eq(atomic_load(&s.nreq), 6);
    cr_assert_eq(atomic_load(&s.nconn), 1, "keep-alive: one connection for every request");
    cr_assert(strstr(s.reqs[0], "POST /hook/d1 HTTP/1.1\r\n"), "%s", s.reqs[0]);
    cr_assert(strstr(s.reqs[0], "\r\nContent-Type: application/json\r\n"), "%s", s.reqs[0]);
    cr_assert(strstr(s.reqs[0], "\r\nx-src: dev-1\r\n"), "%s", s.reqs[0]);
    cr_assert(strstr(s.reqs[0], "\r\n\r\n{\"t\":1}"), "%s", s.reqs[0]);
}

Test(http, a_failed_request_stops_the_batch_at_its_first_message) {
    srv s;
    srv_start(&s, (int[]){200, 500, 200}, 3);
    act_instance *inst = open_ok("{\"url\": \"http://127.0.0.1/${p}\", \"batchConfig\": "
                                 "{\"maxBatchSize\": 2}}", "");
    char u1[128], u2[128], err[512];
    hook_url(u1, sizeof u1, s.port, "/a");
    hook_url(u2, sizeof u2, s.port, "/b");
    tmsg t[5];
    mk(&t[0], "s", "1", 1, (const char *[]){u1});
    mk(&t[1], "s", "2", 1, (const char *[]){u1});
    mk(&t[2], "s", "3", 1, (const char *[]){u2});
    mk(&t[3], "s", "4", 1, (const char *[]){u2});
    mk(&t[4], "s", "5", 1, (const char *[]){u1});
    size_t done = 0;
    act_result r = deliver_all(inst, t, 5, &done, err, sizeof err);
    cr_assert_eq(r, ACT_RETRY, "%s", err);
    cr_assert_eq(done, 2, "the first group went out, the second failed at its first message");
    /* the pipeline retries from batch[done] */
    r = deliver_all(inst, t + 2, 3, &done, err, sizeof err);
    cr_assert_eq(r, ACT_OK, "%s", err);
    cr_assert_eq(done, 3);
    act_http_vtable.close(inst);
    srv_stop(&s);
    cr_assert_eq(atomic_load(&s.nreq), 4, "nothing after the failed group was sent");
    cr_assert(strstr(s.reqs[0], "\r\n\r\n[1,2]"), "%s", s.reqs[0]);
    cr_assert(strstr(s.reqs[1], "POST /b ") && strstr(s.reqs[1], "\r\n\r\n[3,4]"), "%s",
              s.reqs[1]);
    cr_assert(strstr(s.reqs[2], "\r\n\r\n[3,4]"), "%s", s.reqs[2]);
    cr_assert(strstr(s.reqs[3], "POST /a ") && strstr(s.reqs[3], "\r\n\r\n[5]"), "%s",
              s.reqs[3]);
}

/* DNS rebinding: an allowed name that resolves to a link-local address at connect time is
 * refused where curl connects, for the address curl would actually connect to. The resolver's
 * answers come from CURLOPT_RESOLVE, which fills curl's own DNS cache as a DNS reply would. */
static act_result deliver_resolved(const char *resolve, int port, char *err, size_t cap) {
    act_instance *inst = open_ok("{\"url\": \"http://rebind.test/${p}\"}", "rebind.test");
    CURL *c = act_http__lane_handle((act_http *)inst, 0);
    cr_assert_not_null(c);
    struct curl_slist *r = curl_slist_append(NULL, resolve);
    curl_easy_setopt(c, CURLOPT_RESOLVE, r);
    char url[128];
    snprintf(url, sizeof url, "http://rebind.test:%d/x", port);
    tmsg t;
    mk(&t, "s", "{}", 1, (const char *[]){url});
    size_t done = 9;
    act_result res = deliver_all(inst, &t, 1, &done, err, cap);
    cr_assert_eq(done, res == ACT_OK ? 1u : 0u);
    act_http_vtable.close(inst);
    curl_slist_free_all(r);
    return res;
}

Test(http, a_name_that_resolves_to_a_refused_address_is_refused_at_connect_time) {
    srv s;
    srv_start(&s, (int[]){200}, 1);
    char resolve[128], err[512];
    /* control: resolved to the local server, the request goes out */
    snprintf(resolve, sizeof resolve, "rebind.test:%d:127.0.0.1", s.port);
    cr_assert_eq(deliver_resolved(resolve, s.port, err, sizeof err), ACT_OK, "%s", err);
    static const char *const refused[] = {"169.254.169.254", "[fe80::1]",
                                          "[::ffff:169.254.169.254]", "[fd00:ec2::254]"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(resolve, sizeof resolve, "rebind.test:%d:%s", s.port, refused[i]);
        cr_assert_eq(deliver_resolved(resolve, s.port, err, sizeof err), ACT_FAIL, "%s: %s",
                     refused[i], err);
        cr_assert(strstr(err, "refused: it resolves to ") &&
                      strstr(err, "refused unless actions.http.allowLinkLocal is set"),
                  "%s", err);
    }
    /* several answers: the refused one is skipped, the good one used */
    snprintf(resolve, sizeof resolve, "rebind.test:%d:169.254.169.254,127.0.0.1", s.port);
    cr_assert_eq(deliver_resolved(resolve, s.port, err, sizeof err), ACT_OK, "%s", err);
    srv_stop(&s);
    cr_assert_eq(atomic_load(&s.nreq), 2, "only the two local answers reached the server");
}

Test(http, a_closed_port_is_a_transient_failure) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    close(fd); /* nothing listens there now */
    act_instance *inst = open_ok("{\"url\": \"http://127.0.0.1/${p}\"}", "");
    char url[128], err[512];
    hook_url(url, sizeof url, port, "/x");
    tmsg t;
    mk(&t, "s", "{}", 1, (const char *[]){url});
    size_t done = 9;
    cr_assert_eq(deliver_all(inst, &t, 1, &done, err, sizeof err), ACT_RETRY, "%s", err);
    cr_assert_eq(done, 0);
    cr_assert(strstr(err, "POST http://127.0.0.1:") && strstr(err, "failed"), "%s", err);
    act_http_vtable.close(inst);
}

Test(http, a_server_that_never_answers_times_out_as_a_transient_failure) {
    /* a listening socket that never accepts: the kernel completes the handshake and takes the
     * request, and nothing ever answers */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    timeout_ms = 300;
    act_instance *inst = open_ok("{\"url\": \"http://127.0.0.1/${p}\"}", "");
    char url[128], err[512];
    hook_url(url, sizeof url, ntohs(a.sin_port), "/slow");
    tmsg t;
    mk(&t, "s", "{}", 1, (const char *[]){url});
    size_t done = 9;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(deliver_all(inst, &t, 1, &done, err, sizeof err), ACT_RETRY, "%s", err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_eq(done, 0);
    cr_assert(strstr(err, "imeout") || strstr(err, "timed out"), "%s", err);
    cr_assert(s >= 0.25 && s < 2.0, "took %.3f s with a 300 ms timeout", s);
    act_http_vtable.close(inst);
    close(fd);
}

/* }====== */

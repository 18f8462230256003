/*
 * test_pipeline.c -- the delivery pipeline: retries and their order, the failure path to the
 * error action and the dead-letter store, overflow, batching, and the retry delay.
 *
 * The sink is a scripted in-process action (the pipeline's contract is the vtable, so a test
 * vtable exercises exactly what a real action sees); the real sinks have their own tests.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "action.h"
#include "test_host.h"

/* {====== a scripted sink */

typedef struct probe {
    act_instance base;
    pthread_mutex_t mu;
    act_result script[64]; /* outcome of call k; past the script: ACT_OK */
    int nscript, calls;
    char got[4096][32];    /* delivered payloads, in order */
    int ngot;
    size_t max_seen_batch;
    int block_ms;          /* each call sleeps this long */
} probe;

static act_result pr_deliver(act_instance *self, int lane, const act_msg *const *b, size_t n,
                             size_t *ndone, char *err, size_t cap) {
    probe *p = (probe *)self;
    if (p->block_ms)
        usleep((useconds_t)p->block_ms * 1000);
    pthread_mutex_lock(&p->mu);
    int k = p->calls++;
    act_result r = k < p->nscript ? p->script[k] : ACT_OK;
    if (n > p->max_seen_batch)
        p->max_seen_batch = n;
    *ndone = 0;
    if (r == ACT_OK) {
        for (size_t i = 0; i < n && p->ngot < 4096; i++)
            snprintf(p->got[p->ngot++], 32, "%.*s", (int)b[i]->payload_len, b[i]->payload);
        *ndone = n;
    } else {
        snprintf(err, cap, "scripted %s on call %d", r == ACT_RETRY ? "retry" : "failure", k);
    }
    pthread_mutex_unlock(&p->mu);
    return r;
}

static size_t pr_templates(act_instance *self, const char *const **t) {
    *t = NULL;
    return 0;
}
static int pr_format(act_instance *s, const act_msg *const *b, size_t n, act_buf *o) { return 0; }
static void pr_close(act_instance *self) {} /* the test owns the probe */

static const act_vtable probe_vt = {.version = ACT_VTABLE_VERSION,
                                    .name = "probe",
                                    .aws_name = "ProbeAction",
                                    .deliver = pr_deliver,
                                    .templates = pr_templates,
                                    .format = pr_format,
                                    .close = pr_close};

static void probe_init(probe *p, size_t max_batch) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->base.vt = &probe_vt;
    p->base.lanes = 1;
    p->base.max_batch = max_batch;
    snprintf(p->base.resource, sizeof p->base.resource, "probe-resource");
}

/* }====== */

static eng_host host; /* the pipelines' host: its retry policy and queue depth */
static act_dlq *dlq;
static char dir[64];
static uint64_t revision = 3;

static int rm(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }

static void setup(void) {
    host = act_test_host();
    host.retry_attempts = 5;
    host.retry_base_ms = 1;
    host.retry_max_ms = 4;
    snprintf(dir, sizeof dir, "/tmp/sluice-pipe-XXXXXX");
    cr_assert(mkdtemp(dir));
    eng_error e;
    dlq = act_dlq_open(dir, 1 << 20, 3600, &host, &e);
    cr_assert(dlq, "%s", e.message);
}

static void teardown(void) {
    act_dlq_close(dlq);
    nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
}

static act_pipe *pipe_for(probe *p, act_pipe *error_pipe) {
    act_owner o = {.rule_name = "r1", .rule_revision = &revision, .index = 0,
                   .error_pipe = error_pipe, .dlq = dlq, .host = &host};
    eng_error e;
    act_pipe *pp = act_pipe_new_take(&p->base, &o, &e);
    cr_assert(pp, "%s", e.message);
    return pp;
}

/* The rule's error action, which pipe_for()'s pipes hand their failures to. */
static act_pipe *error_pipe_for(probe *p) {
    act_owner o = {.rule_name = "r1", .rule_revision = &revision, .index = -1, .dlq = dlq,
                   .host = &host};
    eng_error e;
    act_pipe *pp = act_pipe_new_take(&p->base, &o, &e);
    cr_assert(pp, "%s", e.message);
    return pp;
}

static void submit(act_pipe *pp, const char *topic, const char *payload) {
    eng_msg *m = act_test_msg(topic, payload, "dev-1", ENG_SRC_MQTT);
    act_pipe_submit(pp, m, payload, strlen(payload), NULL, 0);
    eng_msg_free(m);
}

static void wait_done(act_pipe *pp, uint64_t n) {
    const act_pipe_stats *st = act_pipe_stats_of(pp);
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(&st->delivered) + atomic_load(&st->failed) >= n)
            return;
        usleep(1000);
    }
    cr_assert_fail("timed out waiting for %llu outcomes", (unsigned long long)n);
}

static cJSON *dead_letters(void) {
    eng_error e;
    char *s = act_dlq_list_json(dlq, NULL, 0, 1000, 0, &e);
    cr_assert(s, "%s", e.message);
    cJSON *o = cJSON_Parse(s);
    free(s);
    return o;
}

TestSuite(pipeline, .init = setup, .fini = teardown);

Test(pipeline, transient_failures_are_retried_until_delivered) {
    probe p;
    probe_init(&p, 1);
    p.script[0] = p.script[1] = p.script[2] = ACT_RETRY;
    p.nscript = 3;
    act_pipe *pp = pipe_for(&p, NULL);
    submit(pp, "t/1", "m1");
    wait_done(pp, 1);
    const act_pipe_stats *st = act_pipe_stats_of(pp);
    cr_expect_eq(atomic_load(&st->delivered), 1);
    cr_expect_eq(atomic_load(&st->retries), 3);
    cr_expect_eq(p.ngot, 1);
    act_pipe_free(pp);
}

Test(pipeline, order_per_topic_holds_across_retries) {
    probe p;
    probe_init(&p, 4);
    for (int i = 0; i < 4; i++)
        p.script[2 + i] = ACT_RETRY; /* calls 2..5 fail transiently (5 attempts allowed) */
    p.nscript = 6;
    act_pipe *pp = pipe_for(&p, NULL);
    char buf[16];
    for (int i = 0; i < 200; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        submit(pp, "t/order", buf);
    }
    wait_done(pp, 200);
    cr_assert_eq(p.ngot, 200);
    for (int i = 0; i < 200; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        cr_expect_str_eq(p.got[i], buf, "position %d", i);
    }
    act_pipe_free(pp);
}

Test(pipeline, a_permanent_failure_without_error_action_becomes_a_dead_letter) {
    probe p;
    probe_init(&p, 1);
    p.script[0] = ACT_FAIL;
    p.nscript = 1;
    act_pipe *pp = pipe_for(&p, NULL);
    submit(pp, "t/dl", "{\"v\":1}");
    wait_done(pp, 1);
    act_pipe_free(pp); /* also waits for the record to be written */
    cJSON *l = dead_letters();
    cJSON *recs = cJSON_GetObjectItem(l, "records");
    cr_assert_eq(cJSON_GetArraySize(recs), 1);
    cJSON *r = cJSON_GetArrayItem(recs, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(r, "rule")->valuestring, "r1");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "action")->valuestring, "probe");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "topic")->valuestring, "t/dl");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "clientId")->valuestring, "dev-1");
    cr_expect_eq(cJSON_GetObjectItem(r, "ruleRevision")->valuedouble, 3);
    cr_expect_str_eq(cJSON_GetObjectItem(r, "payload")->valuestring, "eyJ2IjoxfQ==");
    cJSON *errs = cJSON_GetObjectItem(r, "errors");
    cr_assert_eq(cJSON_GetArraySize(errs), 1);
    cr_expect(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(errs, 0), "message")->valuestring,
                     "scripted failure"));
    cJSON_Delete(l);
}

Test(pipeline, exhausted_retries_record_every_attempt) {
    probe p;
    probe_init(&p, 1);
    for (int i = 0; i < 64; i++)
        p.script[i] = ACT_RETRY;
    p.nscript = 64;
    act_pipe *pp = pipe_for(&p, NULL);
    submit(pp, "t/x", "m");
    wait_done(pp, 1);
    act_pipe_free(pp);
    cr_expect_eq(p.calls, host.retry_attempts);
    cJSON *l = dead_letters();
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(l, "records"), 0);
    cr_assert(r);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "errors")), host.retry_attempts);
    cr_expect_eq(cJSON_GetObjectItem(r, "attempts")->valuedouble, host.retry_attempts);
    cr_expect(cJSON_GetObjectItem(r, "firstFailureAt")->valuedouble <=
              cJSON_GetObjectItem(r, "lastFailureAt")->valuedouble);
    cJSON_Delete(l);
}

Test(pipeline, the_error_action_receives_aws_error_document) {
    probe main_sink, err_sink;
    probe_init(&main_sink, 1);
    probe_init(&err_sink, 1);
    main_sink.script[0] = ACT_FAIL;
    main_sink.nscript = 1;
    act_pipe *ep = error_pipe_for(&err_sink);
    act_pipe *pp = pipe_for(&main_sink, ep);
    submit(pp, "a/b", "{\"x\":2}");
    wait_done(pp, 1);
    act_pipe_close(pp);
    wait_done(ep, 1);
    act_pipe_close(ep);
    cr_assert_eq(err_sink.ngot, 1);
    cr_assert_eq(main_sink.ngot, 0);
    act_pipe_free(pp);
    act_pipe_free(ep);
    /* the probe keeps 31 bytes: check the dead-letter store instead for the full text */
    cJSON *l = dead_letters();
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(l, "records")), 0);
    cJSON_Delete(l);
}

static char last_doc[2048];
static act_result doc_deliver(act_instance *self, int lane, const act_msg *const *b, size_t n,
                              size_t *ndone, char *err, size_t cap) {
    snprintf(last_doc, sizeof last_doc, "%.*s", (int)b[0]->payload_len, b[0]->payload);
    *ndone = n;
    return ACT_OK;
}

Test(pipeline, error_document_has_aws_fields) {
    probe main_sink, err_sink;
    probe_init(&main_sink, 1);
    probe_init(&err_sink, 1);
    act_vtable vt = probe_vt;
    vt.deliver = doc_deliver;
    err_sink.base.vt = &vt;
    main_sink.script[0] = ACT_FAIL;
    main_sink.nscript = 1;
    act_pipe *ep = error_pipe_for(&err_sink);
    act_pipe *pp = pipe_for(&main_sink, ep);
    submit(pp, "a/b", "{\"x\":2}");
    wait_done(pp, 1);
    act_pipe_close(pp);
    wait_done(ep, 1);
    act_pipe_close(ep); /* as a rule does: close every pipe, then free them */
    act_pipe_free(pp);
    act_pipe_free(ep);
    cJSON *d = cJSON_Parse(last_doc);
    cr_assert(d, "%s", last_doc);
    cr_expect_str_eq(cJSON_GetObjectItem(d, "ruleName")->valuestring, "r1");
    cr_expect_str_eq(cJSON_GetObjectItem(d, "topic")->valuestring, "a/b");
    cr_expect_str_eq(cJSON_GetObjectItem(d, "clientId")->valuestring, "dev-1");
    cr_expect_str_eq(cJSON_GetObjectItem(d, "base64OriginalPayload")->valuestring,
                     "eyJ4IjoyfQ==");
    cr_expect(cJSON_IsString(cJSON_GetObjectItem(d, "cloudwatchTraceId")));
    cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "failures"), 0);
    cr_assert(f);
    cr_expect_str_eq(cJSON_GetObjectItem(f, "failedAction")->valuestring, "ProbeAction");
    cr_expect_str_eq(cJSON_GetObjectItem(f, "failedResource")->valuestring, "probe-resource");
    cr_expect(strstr(cJSON_GetObjectItem(f, "errorMessage")->valuestring, "scripted failure"));
    cJSON_Delete(d);
}

Test(pipeline, a_failing_error_action_sends_the_original_to_the_dead_letters) {
    probe main_sink, err_sink;
    probe_init(&main_sink, 1);
    probe_init(&err_sink, 1);
    main_sink.script[0] = ACT_FAIL;
    main_sink.nscript = 1;
    err_sink.script[0] = ACT_FAIL;
    err_sink.nscript = 1;
    act_pipe *ep = error_pipe_for(&err_sink);
    act_pipe *pp = pipe_for(&main_sink, ep);
    submit(pp, "a/b", "orig");
    wait_done(pp, 1);
    act_pipe_close(pp);
    wait_done(ep, 1);
    act_pipe_close(ep); /* as a rule does: close every pipe, then free them */
    act_pipe_free(pp);
    act_pipe_free(ep);
    cJSON *l = dead_letters();
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(l, "records"), 0);
    cr_assert(r);
    cr_expect_str_eq(cJSON_GetObjectItem(r, "action")->valuestring, "probe");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "payload")->valuestring, "b3JpZw==");
    cJSON *errs = cJSON_GetObjectItem(r, "errors");
    cr_assert_eq(cJSON_GetArraySize(errs), 2);
    cr_expect(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(errs, 1), "message")->valuestring,
                     "errorAction: "));
    cJSON_Delete(l);
}

Test(pipeline, a_full_queue_with_a_healthy_sink_holds_the_submitter_instead) {
    /* a slow sink that delivers: back-pressure, nothing goes down the failure path */
    host.queue_depth = 2;
    probe p;
    probe_init(&p, 1);
    p.block_ms = 20;
    act_pipe *pp = pipe_for(&p, NULL);
    for (int i = 0; i < 10; i++)
        submit(pp, "t/full", "x");
    wait_done(pp, 10);
    act_pipe_free(pp);
    cJSON *l = dead_letters();
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(l, "records")), 0);
    cr_expect_eq(p.ngot, 10, "every message delivered, in the end");
    cJSON_Delete(l);
}

Test(pipeline, a_full_queue_with_a_failing_sink_sends_the_overflow_down_the_failure_path) {
    /* a sink that keeps failing: its overflow does not hold the submitter (isolation) */
    host.queue_depth = 2;
    probe p;
    probe_init(&p, 1);
    p.block_ms = 5;
    for (int i = 0; i < 64; i++)
        p.script[i] = ACT_RETRY;
    p.nscript = 64;
    act_pipe *pp = pipe_for(&p, NULL);
    submit(pp, "t/full", "first");
    for (int t = 0; t < 400 && atomic_load(&act_pipe_stats_of(pp)->retries) < 4; t++)
        usleep(5 * 1000); /* the head keeps failing: the lane counts as failing */
    for (int i = 0; i < 10; i++)
        submit(pp, "t/full", "x");
    wait_done(pp, 11);
    act_pipe_free(pp);
    uint64_t delivered = (uint64_t)p.ngot;
    cJSON *l = dead_letters();
    int dead = cJSON_GetArraySize(cJSON_GetObjectItem(l, "records"));
    cr_expect(dead >= 1, "some messages overflowed");
    cr_expect_eq(delivered + (uint64_t)dead, 11, "every message delivered or dead");
    cJSON_Delete(l);
}

Test(pipeline, batches_never_exceed_max_batch) {
    probe p;
    probe_init(&p, 8);
    p.block_ms = 2;
    act_pipe *pp = pipe_for(&p, NULL);
    for (int i = 0; i < 100; i++)
        submit(pp, "t/b", "x");
    wait_done(pp, 100);
    act_pipe_free(pp);
    cr_expect_eq(p.ngot, 100);
    cr_expect(p.max_seen_batch <= 8 && p.max_seen_batch > 1, "max batch %zu",
              p.max_seen_batch);
}

Test(pipeline, close_delivers_what_is_queued) {
    probe p;
    probe_init(&p, 1);
    act_pipe *pp = pipe_for(&p, NULL);
    for (int i = 0; i < 50; i++)
        submit(pp, "t/c", "x");
    act_pipe_free(pp);
    cr_expect_eq(p.ngot, 50);
}

Test(retry, delay_is_full_jitter_under_the_exponential_cap) {
    act_retry_policy rp = {.attempts = 10, .base_ms = 100, .max_ms = 1000, .total_ms = 60000};
    uint64_t seed = 42;
    for (int k = 1; k <= 8; k++) {
        long cap = 100L << (k - 1);
        if (cap > 1000)
            cap = 1000;
        int lo = 1 << 30, hi = 0;
        for (int i = 0; i < 2000; i++) {
            int d = act_retry_delay_ms(&rp, k, &seed);
            cr_assert(d >= 0 && d <= cap, "retry %d: %d ms over cap %ld", k, d, cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        cr_expect(lo < cap / 10 && hi > cap * 9 / 10, "retry %d spread %d..%d", k, lo, hi);
    }
}

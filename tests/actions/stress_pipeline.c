/*
 * stress_pipeline.c -- the delivery pipeline under concurrency, without Criterion so that it
 * also runs under ThreadSanitizer (Criterion's arena cannot start under TSan).
 *
 * Four submitters (the workers' role) push 20 000 messages on 16 topics into a two-lane action
 * whose sink, at random, delivers, fails transiently or fails permanently, and whose error
 * action fails now and then too. At the end every message must be accounted for exactly once:
 * delivered by the action, delivered to the error action, or a dead letter; and on each topic
 * the messages the action delivered must be in submission order. The whole run is done twice:
 * with lane threads only, and with deliver_inline (submitters deliver themselves when the lane
 * is idle, as republish does), where a lane thread holding a batch it has dequeued must not be
 * overtaken. Exit 0 or 1.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "action.h"
#include "test_host.h"

#define SUBMITTERS 4
#define PER 5000
#define TOPICS 16

typedef struct sink {
    act_instance base;
    pthread_mutex_t mu;
    uint64_t seed;
    int fail_pct, retry_pct;
    long delivered;
    int last_seq[SUBMITTERS][TOPICS]; /* order check, per submitter and topic */
    int order_errors;
} sink;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static act_result sk_deliver(act_instance *self, int lane, const act_msg *const *b, size_t n,
                             size_t *ndone, char *err, size_t cap) {
    sink *k = (sink *)self;
    pthread_mutex_lock(&k->mu);
    act_result r = ACT_OK;
    for (*ndone = 0; *ndone < n; ++*ndone) {
        int roll = (int)(rnd(&k->seed) % 100);
        if (roll < k->fail_pct) {
            r = ACT_FAIL;
            break;
        }
        if (roll < k->fail_pct + k->retry_pct) {
            r = ACT_RETRY;
            break;
        }
        int sub, topic, seq;
        if (sscanf(b[*ndone]->payload, "%d %d %d", &sub, &topic, &seq) == 3) {
            if (seq <= k->last_seq[sub][topic])
                k->order_errors++;
            k->last_seq[sub][topic] = seq;
        }
        k->delivered++;
    }
    pthread_mutex_unlock(&k->mu);
    if (r != ACT_OK)
        snprintf(err, cap, "random %s", r == ACT_FAIL ? "failure" : "retry");
    return r;
}

static size_t sk_templates(act_instance *self, const char *const **t) {
    *t = NULL;
    return 0;
}
static int sk_format(act_instance *s, const act_msg *const *b, size_t n, act_buf *o) { return 0; }
static void sk_close(act_instance *self) {}

static const act_vtable sink_vt = {.version = ACT_VTABLE_VERSION, .name = "sink",
                                   .aws_name = "SinkAction", .deliver = sk_deliver,
                                   .templates = sk_templates, .format = sk_format,
                                   .close = sk_close};

static act_pipe *pipe_main;

static void *submitter(void *arg) {
    int id = (int)(intptr_t)arg;
    char topic[32], payload[64];
    for (int i = 0; i < PER; i++) {
        int t = i % TOPICS;
        snprintf(topic, sizeof topic, "dev/%d/t", t);
        snprintf(payload, sizeof payload, "%d %d %d", id, t, i);
        eng_msg *m = act_test_msg(topic, payload, NULL, ENG_SRC_MQTT);
        act_pipe_submit(pipe_main, m, payload, strlen(payload), NULL, 0);
        eng_msg_free(m);
    }
    return NULL;
}

static int rm(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }

static int run(int inline_mode) {
    char dir[] = "/tmp/sluice-stress-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    eng_host host = act_test_host();
    host.retry_attempts = 3;
    host.retry_base_ms = 0;
    host.retry_max_ms = 1;
    host.queue_depth = 64; /* small: overflow happens too */
    eng_error e;
    act_dlq *dlq = act_dlq_open(dir, 1 << 28, 3600, &host, &e);
    sink s_main = {.base = {.lanes = 2, .max_batch = 16}, .seed = 88172645463325252ull,
                   .fail_pct = 2, .retry_pct = 10};
    sink s_err = {.base = {.lanes = 1, .max_batch = 8}, .seed = 1234567, .fail_pct = 20};
    memset(s_main.last_seq, -1, sizeof s_main.last_seq);
    s_main.base.deliver_inline = inline_mode;
    pthread_mutex_init(&s_main.mu, NULL);
    pthread_mutex_init(&s_err.mu, NULL);
    s_main.base.vt = s_err.base.vt = &sink_vt;
    uint64_t rev = 1;
    act_owner eo = {.rule_name = "stress", .rule_revision = &rev, .index = -1, .dlq = dlq,
                    .host = &host};
    act_pipe *pipe_err = act_pipe_new_take(&s_err.base, &eo, &e);
    act_owner mo = eo;
    mo.index = 0;
    mo.error_pipe = pipe_err;
    pipe_main = act_pipe_new_take(&s_main.base, &mo, &e);
    if (!dlq || !pipe_err || !pipe_main) {
        fprintf(stderr, "setup failed: %s\n", e.message);
        return 1;
    }
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_create(&th[i], NULL, submitter, (void *)(intptr_t)i);
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(th[i], NULL);
    act_pipe_close(pipe_main); /* as a rule closes: actions, then the error action */
    act_pipe_close(pipe_err);
    const act_pipe_stats *st = act_pipe_stats_of(pipe_main);
    act_dlq_stats ds;
    act_dlq_stats_get(dlq, &ds);
    long total = (long)SUBMITTERS * PER;
    long accounted = s_main.delivered + s_err.delivered + (long)ds.records;
    printf("%s: submitted %ld: delivered %ld, to the error action %ld, dead letters %llu "
           "(overflow %llu, retries %llu); order errors %d\n",
           inline_mode ? "inline" : "lanes", total, s_main.delivered, s_err.delivered, (unsigned long long)ds.records,
           (unsigned long long)atomic_load(&st->overflow),
           (unsigned long long)atomic_load(&st->retries), s_main.order_errors);
    int ok = accounted == total && s_main.order_errors == 0 && ds.write_errors == 0 &&
             atomic_load(&act_test_counts[ENG_COUNT_DROP_DLQ_WRITE]) == 0;
    act_pipe_free(pipe_main);
    act_pipe_free(pipe_err);
    act_dlq_close(dlq);
    nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
    return ok;
}

int main(void) {
    int passed = run(0) + run(1);
    printf("%d passed, %d failed\n", passed, 2 - passed);
    return passed == 2 ? 0 : 1;
}

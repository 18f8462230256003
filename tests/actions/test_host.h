/*
 * test_host.h -- what the action tests stand in for the engine with: a host interface
 * (engine/engine.h) with the service's default settings, whose counters the tests can read,
 * and incoming messages. The action tests link the actions library and sluice_sql only, never
 * the engine: that they build is the proof that actions/ does not depend on engine/.
 * Plain C (no Criterion), so the stress program can use it too.
 */
#ifndef SLUICE_TEST_HOST_H
#define SLUICE_TEST_HOST_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "action.h"

/* What the host's count callback has counted, per eng_counter. */
static _Atomic uint64_t act_test_counts[ENG_COUNT_N_];

static inline void act_test_count(void *ud, eng_counter c, uint64_t n) {
    if ((unsigned)c < ENG_COUNT_N_)
        atomic_fetch_add(&act_test_counts[c], n);
}

/* Log lines go to stderr only when SLUICE_TEST_LOG is set (a failing test is then readable). */
static inline void act_test_log(void *ud, int level, const char *event, const char *msg) {
    if (getenv("SLUICE_TEST_LOG"))
        fprintf(stderr, "[%d] %s: %s\n", level, event, msg);
}

/* The service's defaults (DESIGN.md, engine/config.c): no MQTT connection, no data dir. */
static inline eng_host act_test_host(void) {
    return (eng_host){
        .version = ENG_HOST_VERSION,
        .data_dir = "",
        .account_id = "000000000000",
        .queue_depth = 10000,
        .retry_attempts = 8,
        .retry_base_ms = 100,
        .retry_max_ms = 10000,
        .retry_total_ms = 60000,
        .republish_max_hops = 8,
        .file_base_dir = "",
        .cert_dir = "",
        .http_allowed_hosts = "",
        .http_timeout_ms = 3000,
        .http_connect_timeout_ms = 3000,
        .count = act_test_count,
        .log = act_test_log,
    };
}

/* An incoming message as the engine makes one (one allocation, so eng_msg_free() frees it),
 * without MQTT properties. */
static inline eng_msg *act_test_msg(const char *topic, const char *payload, const char *clientid,
                                    int source) {
    static _Atomic unsigned seq;
    size_t tl = strlen(topic), pl = strlen(payload), cl = clientid ? strlen(clientid) + 1 : 0;
    eng_msg *m = calloc(1, sizeof *m + tl + 1 + pl + 1 + cl);
    if (!m)
        abort();
    atomic_init(&m->refs, 1);
    char *p = (char *)(m + 1);
    m->topic = memcpy(p, topic, tl + 1);
    m->topic_len = tl;
    m->payload = memcpy(p + tl + 1, payload, pl + 1);
    m->payload_len = pl;
    if (clientid)
        m->clientid = memcpy(p + tl + 1 + pl + 1, clientid, cl);
    m->source = source;
    m->props.format_indicator = -1;
    m->props.message_expiry = -1;
    m->received_ms = 1700000000000LL;
    snprintf(m->traceid, sizeof m->traceid, "00000000-0000-4000-8000-%012u",
             atomic_fetch_add(&seq, 1));
    return m;
}

/* A certificate directory to test the file checks against, beneath a new temporary dir:
 *   base/certs/ca.pem        a file inside
 *   base/secret.pem          a file outside
 *   base/certs/link.pem      a symlink inside pointing to the file outside */
typedef struct act_test_certs {
    char base[64], certs[96], inside[128], outside[128], link[128];
} act_test_certs;

static inline int act_test_certs_make(act_test_certs *c) {
    snprintf(c->base, sizeof c->base, "/tmp/sluice-certs-XXXXXX");
    if (!mkdtemp(c->base))
        return -1;
    snprintf(c->certs, sizeof c->certs, "%s/certs", c->base);
    snprintf(c->inside, sizeof c->inside, "%s/ca.pem", c->certs);
    snprintf(c->outside, sizeof c->outside, "%s/secret.pem", c->base);
    snprintf(c->link, sizeof c->link, "%s/link.pem", c->certs);
    FILE *a, *b;
    if (mkdir(c->certs, 0700) || !(a = fopen(c->inside, "w")))
        return -1;
    fclose(a);
    if (!(b = fopen(c->outside, "w")))
        return -1;
    fclose(b);
    return symlink(c->outside, c->link);
}

static inline void act_test_certs_remove(act_test_certs *c) {
    unlink(c->link);
    unlink(c->inside);
    unlink(c->outside);
    rmdir(c->certs);
    rmdir(c->base);
}

#endif

/*
 * shadow_test.h -- shared by the shadow unit tests: a service over a real SQLite store in a
 * fresh temporary directory, with the clock under the test's control, and helpers that run one
 * request and look at its reply.
 */
#ifndef SLUICE_SHADOW_TEST_H
#define SLUICE_SHADOW_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadow_int.h"

typedef struct shd_fixture {
    char dir[64];
    eng_shadow *svc;
    int64_t now;              /* the service's clock */
} shd_fixture;

static int64_t shd_clock(void *ud) { return ((shd_fixture *)ud)->now; }

static inline void shd_rmdir(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Opens a store in a new temporary directory (durable = fsync on every commit). */
static inline void shd_open(shd_fixture *f, int durable) {
    eng_log_set_level(ENG_LOG_ERROR);
    if (!f->dir[0]) {
        snprintf(f->dir, sizeof f->dir, "/tmp/sluice-shadow-XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
    }
    if (!f->now)
        f->now = 1700000000;
    eng_error e;
    eng_shadow_sqlite_opts so = {.no_sync = !durable};
    eng_shadow_store *st = eng_shadow_sqlite_open(f->dir, &so, &e);
    cr_assert_not_null(st, "%s", e.message);
    eng_shadow_opts o = {.clock = shd_clock, .clock_ud = f};
    f->svc = eng_shadow_new(st, &o);
    cr_assert_not_null(f->svc);
}

static inline void shd_close(shd_fixture *f, int remove) {
    eng_shadow_free(f->svc);
    f->svc = NULL;
    if (remove)
        shd_rmdir(f->dir);
}

/* Runs one request on thing `thing` (shadow NULL: classic). payload NULL: none. */
static inline int shd_do(shd_fixture *f, eng_shadow_op op, eng_shadow_transport tr,
                         const char *thing, const char *shadow, const char *payload,
                         eng_shadow_reply *out) {
    eng_shadow_req r = {.op = op, .transport = tr, .thing = thing, .thing_len = strlen(thing),
                        .shadow = shadow, .shadow_len = shadow ? strlen(shadow) : 0,
                        .payload = payload, .payload_len = payload ? strlen(payload) : 0};
    return eng_shadow_handle(f->svc, &r, out);
}

/* The payload of the reply's message on a topic ending with suffix, or NULL. */
static inline const char *shd_msg(const eng_shadow_reply *r, const char *suffix) {
    size_t sn = strlen(suffix);
    for (size_t i = 0; i < r->nmsgs; i++) {
        size_t tn = strlen(r->msgs[i].topic);
        if (tn >= sn && !strcmp(r->msgs[i].topic + tn - sn, suffix))
            return r->msgs[i].payload;
    }
    return NULL;
}

#endif

/*
 * fuzz_shadow_update.c -- the shadow service's update path (validation, merge, delta, metadata,
 * the response documents) and its get and delete, on fuzzed documents, over a real SQLite store
 * in a temporary directory (without fsync: durability is not what is fuzzed here).
 *
 * Input: requests separated by the byte 0xFF (never part of UTF-8 text). The first byte of a
 * request picks what runs, the rest is its payload:
 *     bits 0-1  0 update, 1 get, 2 delete, 3 update
 *     bit  2    over MQTT (else REST)
 *     bits 3-4  the classic shadow, named shadow "a", named shadow "b", or the invalid "x/y"
 *     bit  5    the clock moves 49 hours first (a deleted shadow's version is forgotten)
 * Every input starts from no shadow at all: its shadows are deleted and their tombstones
 * purged afterwards.
 *
 * Beyond "no crash, no leak", each answer is checked: a known status (never a 500), a body and
 * messages that are JSON (read by cJSON, an independent parser), MQTT answers on the request's
 * own /accepted or /rejected topic, an accepted update's messages in AWS's order, and a get right
 * after it that returns the same state and version, within 8 KB.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow_int.h"

static eng_shadow *svc;
static eng_shadow_store *store;
static int64_t now = 1700000000;

static int64_t fuzz_clock(void *ud) {
    (void)ud;
    return now;
}

static char dir[] = "/tmp/fuzz-shadow-XXXXXX";

static void cleanup(void) {
    eng_shadow_free(svc);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void setup(void) {
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    eng_log_set_level(ENG_LOG_ERROR);
    eng_error e;
    eng_shadow_sqlite_opts so = {.no_sync = 1};
    store = eng_shadow_sqlite_open(dir, &so, &e);
    if (!store) {
        fprintf(stderr, "%s\n", e.message);
        abort();
    }
    eng_shadow_opts o = {.clock = fuzz_clock};
    svc = eng_shadow_new(store, &o);
}

static cJSON *json_or_die(const char *s, size_t n) {
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (!j) {
        fprintf(stderr, "not JSON: %.*s\n", (int)n, s);
        abort();
    }
    return j;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static eng_sjson *member(eng_sarena *a, eng_sjson *v, const char *k) {
    return v ? eng__sjson_get(a, v, k) : NULL;
}

/* The compact text of v ("" for NULL), for byte comparisons. */
static char *text(const eng_sjson *v) {
    eng_sbuf b = {0};
    if (v)
        eng__sjson_write(&b, v);
    else
        eng__sbuf_lit(&b, "");
    char *t = eng__sbuf_take(&b, NULL);
    if (!t)
        abort();
    return t;
}

static void same(const eng_sjson *x, const eng_sjson *y) {
    char *a = text(x), *b = text(y);
    if (strcmp(a, b)) {
        fprintf(stderr, "differ:\n%s\n%s\n", a, b);
        abort();
    }
    free(a);
    free(b);
}

/* Our own tree of a document (numbers compared exactly: cJSON's doubles cannot tell 1E+400
 * from 1E+401). */
static eng_sjson *tree(eng_sarena *a, const char *s, size_t n) {
    eng_sjson *root;
    if (eng__sjson_parse(a, s, n, 64, &root, NULL, 0) != ENG_SJ_OK)
        abort();
    return root;
}

static void check_update(const eng_shadow_req *req, const eng_shadow_reply *r) {
    if (r->status != 200)
        return;
    /* accepted, [delta,] documents */
    if (r->nmsgs < 2 || !ends_with(r->msgs[0].topic, "/update/accepted") ||
        !ends_with(r->msgs[r->nmsgs - 1].topic, "/update/documents") ||
        (r->nmsgs == 3 && !ends_with(r->msgs[1].topic, "/update/delta")))
        abort();
    eng_sarena a = {0};
    eng_sjson *acc = tree(&a, r->msgs[0].payload, r->msgs[0].payload_len);
    eng_sjson *docs = tree(&a, r->msgs[r->nmsgs - 1].payload, r->msgs[r->nmsgs - 1].payload_len);
    eng_sjson *cur = member(&a, docs, "current");
    same(member(&a, acc, "version"), member(&a, cur, "version"));
    /* a get right after sees this update: same version, state and metadata */
    eng_shadow_req g = *req;
    g.op = ENG_SHADOW_GET;
    g.transport = ENG_SHADOW_REST;
    g.payload = NULL;
    g.payload_len = 0;
    eng_shadow_reply gr;
    if (eng_shadow_handle(svc, &g, &gr) != 200)
        abort();
    eng_sjson *got = tree(&a, gr.body, gr.body_len);
    same(member(&a, got, "version"), member(&a, cur, "version"));
    static const char *const sec[2] = {"desired", "reported"};
    for (int i = 0; i < 2; i++) {
        same(member(&a, member(&a, got, "state"), sec[i]),
             member(&a, member(&a, cur, "state"), sec[i]));
        same(member(&a, member(&a, got, "metadata"), sec[i]),
             member(&a, member(&a, cur, "metadata"), sec[i]));
    }
    /* the delta: only desired's keys, and every desired key reported lacks */
    eng_sjson *des = member(&a, member(&a, got, "state"), "desired");
    eng_sjson *rep = member(&a, member(&a, got, "state"), "reported");
    eng_sjson *delta = member(&a, member(&a, got, "state"), "delta");
    for (uint32_t i = 0; delta && i < delta->n; i++)
        if (!des || eng__sjson_find(&a, des, delta->items[i]->key, delta->items[i]->klen) < 0)
            abort();
    for (uint32_t i = 0; des && i < des->n; i++) {
        eng_sjson *k = des->items[i];
        if ((!rep || eng__sjson_find(&a, rep, k->key, k->klen) < 0) &&
            (!delta || eng__sjson_find(&a, delta, k->key, k->klen) < 0))
            abort();
    }
    /* the 8 KB limit, measured the way the service measures it */
    eng_shadow_doc doc = {.desired = des, .reported = rep};
    if (eng__shadow_state_size(&doc) > ENG_SHADOW_STATE_MAX)
        abort();
    eng__sarena_deinit(&a);
    eng_shadow_reply_deinit(&gr);
}

static void check(const eng_shadow_req *req, const eng_shadow_reply *r) {
    switch (r->status) {
    case 200: case 400: case 404: case 409: case 413: case 415: break;
    default:
        fprintf(stderr, "status %d: %s\n", r->status, r->body);
        abort();
    }
    if (!r->body || (r->status != 200) != (r->error_type != NULL))
        abort();
    cJSON_Delete(json_or_die(r->body, r->body_len));
    for (size_t i = 0; i < r->nmsgs; i++) {
        cJSON_Delete(json_or_die(r->msgs[i].payload, r->msgs[i].payload_len));
        if (strncmp(r->msgs[i].topic, "$aws/things/fuzz/shadow/", 24) != 0)
            abort();
    }
    if (req->transport == ENG_SHADOW_MQTT) {
        if (r->nmsgs == 0 ||
            !ends_with(r->msgs[0].topic, r->status == 200 ? "/accepted" : "/rejected"))
            abort();
    } else if (r->status != 200 && r->nmsgs != 0) {
        abort(); /* REST errors publish nothing */
    }
    if (req->op == ENG_SHADOW_UPDATE)
        check_update(req, r);
}

static const char *const shadows[4] = {NULL, "a", "b", "x/y"};

static void run(const uint8_t *p, size_t n) {
    if (n == 0)
        return;
    uint8_t sel = p[0];
    if (sel & 0x20)
        now += 49 * 3600;
    const char *shadow = shadows[(sel >> 3) & 3];
    eng_shadow_req req = {
        .op = (sel & 3) == 1   ? ENG_SHADOW_GET
              : (sel & 3) == 2 ? ENG_SHADOW_DELETE
                               : ENG_SHADOW_UPDATE,
        .transport = sel & 4 ? ENG_SHADOW_MQTT : ENG_SHADOW_REST,
        .thing = "fuzz",
        .thing_len = 4,
        .shadow = shadow,
        .shadow_len = shadow ? strlen(shadow) : 0,
        .payload = p + 1,
        .payload_len = n - 1,
    };
    eng_shadow_reply r;
    eng_shadow_handle(svc, &req, &r);
    check(&req, &r);
    eng_shadow_reply_deinit(&r);
    now++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!svc)
        setup();
    const uint8_t *end = data + size;
    while (data < end) {
        const uint8_t *sep = memchr(data, 0xFF, (size_t)(end - data));
        const uint8_t *stop = sep ? sep : end;
        run(data, (size_t)(stop - data));
        data = sep ? sep + 1 : end;
    }
    /* start the next input from nothing */
    for (int i = 0; i < 3; i++) {
        eng_shadow_req del = {.op = ENG_SHADOW_DELETE, .transport = ENG_SHADOW_REST,
                              .thing = "fuzz", .thing_len = 4, .shadow = shadows[i],
                              .shadow_len = shadows[i] ? 1 : 0};
        eng_shadow_reply r;
        eng_shadow_handle(svc, &del, &r);
        eng_shadow_reply_deinit(&r);
    }
    eng_error e;
    if (store->vt->purge(store, INT64_MAX, &e))
        abort();
    return 0;
}

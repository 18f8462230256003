/*
 * stress_shadow.c -- the shadow service under concurrency, as a plain program so that it also
 * runs under ThreadSanitizer (Criterion cannot start there): two services sharing one store
 * file (as two instances of a fleet), updaters racing on one shadow through both, others on
 * shadows of their own, and readers, listers and a deleter alongside.
 *
 * Checked: every update is accepted, the versions given out on the hot shadow are exactly
 * 1..N with none twice (a lost update would reuse one), every get and list answers 200 or 404,
 * and the hot shadow ends with each updater's last value. Exit status 0 or 1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

enum { UPDATERS = 6, PER_UPDATER = 150, OWN = 2, READERS = 2 };

static eng_shadow *svc[2];
static atomic_int failures, running;
static long long versions[UPDATERS][PER_UPDATER];

static int call(eng_shadow *s, eng_shadow_op op, const char *thing, const char *shadow,
                const char *payload, long long *version) {
    eng_shadow_req r = {.op = op, .transport = ENG_SHADOW_MQTT, .thing = thing,
                        .thing_len = strlen(thing), .shadow = shadow,
                        .shadow_len = shadow ? strlen(shadow) : 0, .payload = payload,
                        .payload_len = payload ? strlen(payload) : 0};
    eng_shadow_reply out;
    int st = eng_shadow_handle(s, &r, &out);
    if (st == 200 && version) {
        const char *v = strstr(out.body, "\"version\":");
        *version = v ? strtoll(v + 10, NULL, 10) : -1;
    }
    eng_shadow_reply_deinit(&out);
    return st;
}

static void *hot(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < PER_UPDATER; i++) {
        char p[96];
        snprintf(p, sizeof p, "{\"state\":{\"reported\":{\"u%d\":%d}},\"clientToken\":\"c%d\"}", id,
                 i + 1, id);
        if (call(svc[id % 2], ENG_SHADOW_UPDATE, "hot", "s", p, &versions[id][i]) != 200)
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

static void *own(void *arg) {
    int id = (int)(intptr_t)arg;
    char thing[16];
    snprintf(thing, sizeof thing, "own%d", id);
    for (int i = 0; i < PER_UPDATER; i++) {
        long long v;
        if (call(svc[id % 2], ENG_SHADOW_UPDATE, thing, NULL,
                 "{\"state\":{\"desired\":{\"x\":[1,2]},\"reported\":{\"x\":[1]}}}", &v) != 200 ||
            v != i + 1)
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

static void *churn(void *arg) {
    (void)arg;
    while (atomic_load(&running)) {
        int st =
            call(svc[1], ENG_SHADOW_UPDATE, "churn", "c", "{\"state\":{\"reported\":{}}}", NULL);
        int dt = call(svc[0], ENG_SHADOW_DELETE, "churn", "c", NULL, NULL);
        if (st != 200 || (dt != 200 && dt != 404))
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

static void *reader(void *arg) {
    int id = (int)(intptr_t)arg;
    while (atomic_load(&running)) {
        int st = call(svc[id % 2], ENG_SHADOW_GET, "hot", "s", "{\"clientToken\":\"r\"}", NULL);
        eng_shadow_reply out;
        int ls = eng_shadow_list(svc[id % 2], "churn", 5, NULL, "1", &out);
        eng_shadow_reply_deinit(&out);
        if ((st != 200 && st != 404) || ls != 200)
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

int main(void) {
    char dir[] = "/tmp/stress-shadow-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    eng_log_set_level(ENG_LOG_ERROR);
    for (int i = 0; i < 2; i++) {
        eng_error e;
        eng_shadow_store *st = eng_shadow_sqlite_open(dir, NULL, &e);
        if (!st) {
            fprintf(stderr, "%s\n", e.message);
            return 1;
        }
        svc[i] = eng_shadow_new(st, NULL);
    }
    atomic_store(&running, 1);
    pthread_t t[UPDATERS + OWN + 1 + READERS];
    int n = 0;
    for (int i = 0; i < UPDATERS; i++)
        pthread_create(&t[n++], NULL, hot, (void *)(intptr_t)i);
    for (int i = 0; i < OWN; i++)
        pthread_create(&t[n++], NULL, own, (void *)(intptr_t)i);
    pthread_t bg[1 + READERS];
    pthread_create(&bg[0], NULL, churn, NULL);
    for (int i = 0; i < READERS; i++)
        pthread_create(&bg[1 + i], NULL, reader, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    atomic_store(&running, 0);
    for (int i = 0; i < 1 + READERS; i++)
        pthread_join(bg[i], NULL);
    /* the hot shadow: versions 1..N, each once, in order per updater */
    static char seen[UPDATERS * PER_UPDATER + 1];
    int bad = 0;
    for (int u = 0; u < UPDATERS; u++)
        for (int i = 0; i < PER_UPDATER; i++) {
            long long v = versions[u][i];
            if (v < 1 || v > UPDATERS * PER_UPDATER || seen[v] || (i && v <= versions[u][i - 1]))
                bad++;
            else
                seen[v] = 1;
        }
    char *doc = NULL;
    if (eng_shadow_get_document(svc[0], "hot", "s", &doc, NULL) != 1)
        bad++;
    for (int u = 0; doc && u < UPDATERS; u++) {
        char want[32];
        snprintf(want, sizeof want, "\"u%d\":%d", u, PER_UPDATER);
        if (!strstr(doc, want))
            bad++;
    }
    free(doc);
    eng_shadow_free(svc[0]);
    eng_shadow_free(svc[1]);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    int f = atomic_load(&failures);
    printf("stress_shadow: %d failed calls, %d bad versions or values\n", f, bad);
    return f || bad ? 1 : 0;
}

/*
 * stress_registry.c -- rule replacement under concurrent readers, as a plain program so that
 * ThreadSanitizer can run it (Criterion's process arena does not start under TSan). Readers
 * evaluate every rule of each snapshot they take; the writer replaces the whole rule set 300
 * times. Exit 0 when no reader ever saw rules of two generations in one snapshot.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"

static eng_config cfg;
static eng_env env;
static atomic_int stop, mixed;
static eng_registry *reg;

static eng_rule *mk(const char *name, int version) {
    char json[256];
    snprintf(json, sizeof json,
             "{\"sql\":\"SELECT %d AS v FROM 't/+'\",\"awsIotSqlVersion\":\"2016-03-23\","
             "\"actions\":[]}",
             version);
    eng_error e;
    eng_rule *r = eng_rule_new(name, json, strlen(json), &env, &e);
    if (!r) {
        fprintf(stderr, "rule: %s\n", e.message);
        exit(1);
    }
    return r;
}

static void *reader(void *arg) {
    int w = (int)(intptr_t)arg;
    sql_exec *x = sql_exec_new();
    while (!atomic_load(&stop)) {
        const eng_snapshot *s = eng_registry_acquire(reg, w);
        char first[32] = "";
        for (uint32_t i = 0; i < s->nrules; i++) {
            sql_message m = {.topic = "t/1", .topic_len = 3, .payload = "{}", .payload_len = 2};
            sql_output o;
            if (sql_exec_run(x, s->rules[i]->prog, &m, &o) != SQL_FIRED)
                continue;
            char got[32];
            snprintf(got, sizeof got, "%.*s", (int)o.len, o.data);
            if (!first[0])
                snprintf(first, sizeof first, "%s", got);
            else if (strcmp(first, got) != 0)
                atomic_store(&mixed, 1);
        }
        eng_registry_release(reg, w);
    }
    sql_exec_free(x);
    return NULL;
}

int main(void) {
    char dir[] = "/tmp/sluice-stress-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    eng_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    eng_log_set_level(ENG_LOG_ERROR);
    env.cfg = &cfg;
    enum { READERS = 3 };
    reg = eng_registry_new(READERS, &cfg, &env);
    eng_error e;
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, (void *)(intptr_t)i);
    static const char *names[] = {"r0", "r1", "r2", "r3"};
    for (int round = 1; round <= 300; round++) {
        for (int k = 0; k < 4 && round > 1; k++)
            if (eng_registry_delete(reg, names[k], &e))
                return fprintf(stderr, "delete: %s\n", e.message), 1;
        for (int k = 0; k < 4; k++)
            if (eng_registry_create(reg, mk(names[k], round), &e))
                return fprintf(stderr, "create: %s\n", e.message), 1;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    eng_registry_free(reg);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    if (atomic_load(&mixed)) {
        fprintf(stderr, "a reader saw two generations of rules in one snapshot\n");
        return 1;
    }
    printf("1 passed, 0 failed\n");
    return 0;
}

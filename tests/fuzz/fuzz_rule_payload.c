/*
 * fuzz_rule_payload.c -- arbitrary bytes as the body of POST /rules/{name}: the whole of rule
 * creation (eng_rule_new: the payload's JSON, duplicate and unknown keys, the SQL and every
 * template compiled, and each action type's open() with its option table and boundary checks:
 * Kafka's allow-list and certificate directory, the file action's base directory, the
 * PostgreSQL conninfo, the HTTP URL), then GetTopicRule's description and the release.
 *
 * The environment is offline: actions validate but create nothing that could connect (no Kafka
 * producer; HTTP, PostgreSQL and file actions only touch the network or the disk when they
 * deliver, and nothing is delivered here), so an input can only find crashes, leaks and
 * unbounded work in validation. The directories the checks compare against are real: a base
 * directory and a certificate directory holding one file (ca.pem), created once per process.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

static eng_config cfg;
static eng_env env;
static char tmp[64];

static int rm(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }

static void cleanup(void) { nftw(tmp, rm, 8, FTW_DEPTH | FTW_PHYS); }

static void setup(void) {
    eng_config_defaults(&cfg);
    snprintf(tmp, sizeof tmp, "/tmp/sluice-fuzz-rule-XXXXXX");
    if (!mkdtemp(tmp))
        abort();
    atexit(cleanup);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", tmp);
    snprintf(cfg.cert_dir, sizeof cfg.cert_dir, "%s/certs", tmp);
    snprintf(cfg.http_allowed_hosts, sizeof cfg.http_allowed_hosts, "hooks.example,127.0.0.1");
    mkdir(cfg.data_dir, 0700);
    mkdir(cfg.cert_dir, 0700);
    char ca[600];
    snprintf(ca, sizeof ca, "%s/ca.pem", cfg.cert_dir);
    FILE *f = fopen(ca, "w");
    if (f)
        fclose(f);
    env.cfg = &cfg;
    env.offline = 1;
    eng_log_set_level(ENG_LOG_ERROR + 1); /* quiet: an input may be refused millions of times */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!env.cfg)
        setup();
    eng_error e;
    eng_rule *r = eng_rule_new("fuzz", (const char *)data, size, &env, &e);
    if (r) {
        free(eng_rule_describe(r, &cfg));
        eng_rule_release(r);
    } else if (!e.type || !e.message[0] || e.status < 400) {
        fprintf(stderr, "fuzz_rule_payload: a refusal without a reason: %d %s \"%s\"\n",
                e.status, e.type ? e.type : "(no type)", e.message);
        abort(); /* a refusal always says what and why */
    }
    return 0;
}

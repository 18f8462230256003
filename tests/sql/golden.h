/*
 * golden.h -- the reader of the SQL golden files (tests/sql/golden, *.test; format in the README
 * there), shared by test_golden.c, which checks each block's expectation, and test_scan.c,
 * which runs the same rules and payloads through the shared scan. State is file-local.
 */
#ifndef SLUICE_TEST_GOLDEN_H
#define SLUICE_TEST_GOLDEN_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/sql/golden"
#endif

typedef struct block {
    char file[256];
    int line;
    char *sql, *payload, *expect, *context, *topic, *binary;
    char *templates[8];
    int ntemplates;
    sql_version version;
    enum { EXPECT_OUT, EXPECT_NOFIRE, EXPECT_FAIL, EXPECT_B64 } kind;
} block;

static char *append(char *s, const char *line) {
    size_t a = s ? strlen(s) : 0, b = strlen(line);
    char *r = realloc(s, a + b + 2);
    if (a) {
        r[a] = '\n';
        memcpy(r + a + 1, line, b + 1);
    } else {
        memcpy(r, line, b + 1);
    }
    return r;
}

static const char *golden_dir(void) {
    const char *d = getenv("SLUICE_TEST_DATA");
    static char buf[512];
    if (d) {
        snprintf(buf, sizeof buf, "%s/sql/golden", d);
        return buf;
    }
    return GOLDEN_DIR;
}

/* Parses every *.test file into blocks (sorted by file name). */
static block *load(size_t *nout) {
    const char *dir = golden_dir();
    struct dirent **names;
    int nf = scandir(dir, &names, NULL, alphasort);
    block *v = NULL;
    size_t n = 0, cap = 0;
    for (int f = 0; f < nf; f++) {
        char nm[256];
        snprintf(nm, sizeof nm, "%s", names[f]->d_name);
        size_t l = strlen(nm);
        if (l < 6 || strcmp(nm + l - 5, ".test") != 0) {
            free(names[f]);
            continue;
        }
        char path[768];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        FILE *fp = fopen(path, "r");
        free(names[f]);
        if (!fp)
            continue;
        char line[8192];
        int lineno = 0;
        block cur;
        int in = 0;
        enum { SQL, PAYLOAD, EXPECT } section = SQL;
        memset(&cur, 0, sizeof cur);
        for (;;) {
            char *got = fgets(line, sizeof line, fp);
            if (got) {
                lineno++;
                line[strcspn(line, "\n")] = '\0';
            }
            if (!got || line[0] == '\0') { /* a blank line ends a block */
                if (in && cur.sql) {
                    if (n == cap) {
                        cap = cap ? cap * 2 : 64;
                        v = realloc(v, cap * sizeof *v);
                    }
                    v[n++] = cur;
                }
                memset(&cur, 0, sizeof cur);
                in = 0;
                section = SQL;
                if (!got)
                    break;
                continue;
            }
            if (!in) {
                in = 1;
                snprintf(cur.file, sizeof cur.file, "%s", nm);
                cur.line = lineno;
                cur.version = SQL_V2016_03_23;
            }
            if (line[0] == '#' && section == SQL && !cur.sql)
                continue;
            if (!strncmp(line, "%%VERSION ", 10)) {
                sql_version_parse(line + 10, &cur.version);
            } else if (!strncmp(line, "%%TOPIC ", 8)) {
                cur.topic = strdup(line + 8);
            } else if (!strncmp(line, "%%CONTEXT ", 10)) {
                cur.context = strdup(line + 10);
            } else if (!strncmp(line, "%%TEMPLATE ", 11) && cur.ntemplates < 8) {
                cur.templates[cur.ntemplates++] = strdup(line + 11);
            } else if (!strncmp(line, "%%BINARY ", 9)) {
                cur.binary = strdup(line + 9);
            } else if (!strcmp(line, "%%PAYLOAD")) {
                section = PAYLOAD;
            } else if (!strcmp(line, "%%EXPECT")) {
                section = EXPECT;
                cur.kind = EXPECT_OUT;
            } else if (!strncmp(line, "%%EXPECT_BASE64", 15)) {
                section = EXPECT;
                cur.kind = EXPECT_B64;
                cur.expect = strdup(line[15] == ' ' ? line + 16 : "");
            } else if (!strcmp(line, "%%NOFIRE")) {
                cur.kind = EXPECT_NOFIRE;
            } else if (!strcmp(line, "%%FAIL")) {
                section = EXPECT;
                cur.kind = EXPECT_FAIL;
            } else if (section == SQL) {
                cur.sql = append(cur.sql, line);
            } else if (section == PAYLOAD) {
                cur.payload = append(cur.payload, line);
            } else {
                cur.expect = append(cur.expect, line);
            }
        }
        fclose(fp);
    }
    free(names);
    *nout = n;
    return v;
}

static size_t b64dec(const char *s, unsigned char *out) {
    long n = sql_base64_decode(s, strlen(s), out);
    cr_assert_geq(n, 0, "bad base64 in a golden file: %s", s);
    return (size_t)n;
}

/* A minimal reader for %%CONTEXT: "key": "string" and "timestamp": number. */
static const char *ctx_str(const char *ctx, const char *key, char *buf, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = ctx ? strstr(ctx, pat) : NULL;
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), '"');
    if (!p)
        return NULL;
    size_t i = 0;
    for (p++; *p && *p != '"' && i + 1 < cap; p++)
        buf[i++] = *p;
    buf[i] = '\0';
    return buf;
}

static void free_blocks(block *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].sql);
        free(v[i].payload);
        free(v[i].expect);
        free(v[i].context);
        free(v[i].topic);
        free(v[i].binary);
        for (int t = 0; t < v[i].ntemplates; t++)
            free(v[i].templates[t]);
    }
    free(v);
}

/* The message of block b: topic, payload (bin holds a binary one), context. Strings point
 * into b and into cbuf. */
static sql_message block_message(const block *b, unsigned char *bin, char (*cbuf)[256]) {
    const char *topic = b->topic ? b->topic : "t";
    sql_message m = {.topic = topic, .topic_len = strlen(topic)};
    if (b->binary) {
        m.payload = bin;
        m.payload_len = b64dec(b->binary, bin);
    } else {
        m.payload = b->payload ? b->payload : "";
        m.payload_len = b->payload ? strlen(b->payload) : 0;
    }
    m.clientid = ctx_str(b->context, "clientid", cbuf[0], 256);
    m.principal = ctx_str(b->context, "principal", cbuf[1], 256);
    m.accountid = ctx_str(b->context, "accountid", cbuf[2], 256);
    m.traceid = ctx_str(b->context, "traceid", cbuf[3], 256);
    m.rule_name = ctx_str(b->context, "rule_name", cbuf[4], 256);
    const char *proto = ctx_str(b->context, "protocol", cbuf[5], 256);
    m.protocol = proto && !strcmp(proto, "http") ? SQL_PROTO_HTTP : SQL_PROTO_MQTT;
    const char *ts = b->context ? strstr(b->context, "\"timestamp\"") : NULL;
    m.timestamp_ms = ts ? atoll(strchr(ts, ':') + 1) : 1481825251155;
    return m;
}

#endif

/*
 * fuzz_json.c -- the JSON reader and writer of sql/ (json_read.c, json_write.c) against each
 * other and against cJSON.
 *
 * Input layout: byte 0 says how many of the next bytes describe payload paths (k % 32); each
 * such byte picks a key ("abcd"[b & 3]) and, with bit 2 set, ends the path after it. The paths
 * become a rule (SELECT a.b AS k0, c AS k1, ... FROM '#'), whose compiled path trie drives the
 * lazy scan. The rest of the input is the payload. Checked on every input:
 *   - a payload the full parser accepts is written, the text is valid JSON to cJSON, and
 *     parsing and writing it again gives the same bytes (the writer round-trips);
 *   - the lazy scan agrees with the full parser: when the whole payload parses, the scan
 *     succeeds and every slot holds what walking the parsed value along its path finds (first
 *     occurrence of a key wins in both); when the scan says "not JSON", so does the parser;
 *   - every scanned value writes as valid JSON;
 *   - the shared scan (sql/scan.c) gives each rule what it gets alone: the path bytes split
 *     into up to four rules (bit 3 of a byte ends a rule after its path; in a rule's first
 *     byte, bit 4 makes it a 2015-10-08 rule and bit 5 adds `*`), merged into one scanset, and
 *     each is run through it and on its own: same status, output and error.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_int.h"

static sql_ctx ctx;
static sql_buf w1, w2;

static void setup(void) {
    sql__arena_init(&ctx.arena, 64u << 20);
    ctx.version = SQL_V2016_03_23;
    sql__buf_init(&ctx.scratch);
    sql__buf_init(&ctx.jstack);
    sql__buf_init(&w1);
    sql__buf_init(&w2);
}

/* v's JSON text in b (reset first); aborts unless cJSON accepts it. */
static void write_valid(sql_buf *b, const sql_value *v) {
    sql__buf_reset(b);
    if (v->t == SQL_T_UNDEF)
        return;
    if (sql__json_write(b, v) != 0 || b->oom)
        abort();
    cJSON *c = cJSON_ParseWithLength(b->p, b->len);
    if (!c) {
        fprintf(stderr, "writer produced invalid JSON: %.*s\n", (int)b->len, b->p);
        abort();
    }
    cJSON_Delete(c);
}

/* Builds the rule of the path bytes and compiles it; NULL when there are no paths. */
static sql_program *paths_rule(const uint8_t *d, size_t n, sql_version v, int star) {
    char sql[2048];
    size_t k = (size_t)snprintf(sql, sizeof sql, "SELECT %s", star ? "*, " : "");
    int item = 0, open = 0;
    for (size_t i = 0; i < n; i++) {
        if (!open)
            k += (size_t)snprintf(sql + k, sizeof sql - k, "%s", item ? ", " : "");
        k += (size_t)snprintf(sql + k, sizeof sql - k, "%s%c", open ? "." : "", "abcd"[d[i] & 3]);
        open = 1;
        if ((d[i] & 4) || i + 1 == n) {
            k += (size_t)snprintf(sql + k, sizeof sql - k, " AS k%d", item++);
            open = 0;
        }
    }
    if (!item)
        return NULL;
    snprintf(sql + k, sizeof sql - k, " FROM '#'");
    sql_compile_opts o = {.version = v};
    sql_program *p = NULL;
    sql_diag diag;
    if (sql_compile(sql, strlen(sql), &o, &p, &diag) != SQL_OK)
        abort(); /* the rules built here are always valid */
    return p;
}

/* Checks slot values of the subtree at node nd against `full` walked along the same keys. */
static void check_slots(const sql_program *p, int nd, const sql_value *full,
                        const sql_value *slots) {
    for (int c = p->paths[nd].child; c >= 0; c = p->paths[c].next) {
        const sql_path_node *pn = &p->paths[c];
        const sql_value *v = full && full->t == SQL_T_OBJ ? sql__obj_get(full, pn->key, pn->klen)
                                                          : NULL;
        if (pn->slot < 0) {
            check_slots(p, c, v, slots);
            continue;
        }
        sql_value want = v ? *v : SQL_UNDEF;
        write_valid(&w1, &slots[pn->slot]);
        write_valid(&w2, &want);
        if (slots[pn->slot].t != want.t || w1.len != w2.len || memcmp(w1.p, w2.p, w1.len)) {
            fprintf(stderr, "scan and parse disagree on '%.*s': %.*s vs %.*s\n", (int)pn->klen,
                    pn->key, (int)w1.len, w1.p, (int)w2.len, w2.p);
            abort();
        }
    }
}

/* Runs the rules of the path bytes through one shared scan and each alone; aborts on any
 * difference. */
static void check_shared(const uint8_t *d, size_t n, const char *payload, size_t plen) {
    static sql_exec *xs, *xa;
    if (!xs && (!(xs = sql_exec_new()) || !(xa = sql_exec_new())))
        abort();
    sql_program *progs[4];
    uint32_t ids[4];
    size_t np = 0, start = 0;
    for (size_t i = 0; i < n && np < 4; i++) {
        if (!(d[i] & 8) && i + 1 < n)
            continue;
        sql_version v = (d[start] & 16) ? SQL_V2015_10_08 : SQL_V2016_03_23;
        progs[np] = paths_rule(d + start, i + 1 - start, v, (d[start] & 32) != 0);
        ids[np] = (uint32_t)np;
        np++;
        start = i + 1;
    }
    sql_scanset *set = sql_scanset_new((const sql_program *const *)progs, np);
    sql_message m = {.topic = "t", .topic_len = 1, .payload = payload, .payload_len = plen,
                     .timestamp_ms = 1};
    if (!set || sql_exec_scan_begin(xs, set, &m, ids, np) != SQL_OK)
        abort();
    for (size_t i = 0; i < np; i++) {
        sql_output a, b;
        int ra = sql_exec_run_matched(xa, progs[i], &m, &a);
        int rb = sql_exec_run_scan(xs, ids[i], &m, &b);
        if (ra != rb || strcmp(sql_exec_errmsg(xa), sql_exec_errmsg(xs)) != 0 ||
            (ra == SQL_FIRED && (a.len != b.len || a.is_binary != b.is_binary ||
                                 memcmp(a.data, b.data, a.len) != 0))) {
            fprintf(stderr, "rule %zu: alone %d %.*s, shared %d %.*s\n", i, ra,
                    ra == SQL_FIRED ? (int)a.len : 0, ra == SQL_FIRED ? a.data : "", rb,
                    rb == SQL_FIRED ? (int)b.len : 0, rb == SQL_FIRED ? b.data : "");
            abort();
        }
    }
    sql_scanset_free(set);
    for (size_t i = 0; i < np; i++)
        sql_program_free(progs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ctx.arena.limit)
        setup();
    if (size == 0)
        return 0;
    size_t np = data[0] % 32;
    if (np > size - 1)
        np = size - 1;
    const char *payload = (const char *)data + 1 + np;
    size_t plen = size - 1 - np;
    sql__arena_reset(&ctx.arena);
    ctx.err = 0;

    /* the full parser and the writer */
    sql_value full = SQL_UNDEF;
    int rc_full = sql__json_parse(&ctx, payload, plen, &full);
    if (rc_full != 0 && rc_full != -1)
        return 0; /* a resource limit: nothing to compare */
    if (rc_full == 0) {
        write_valid(&w1, &full);
        sql_value again;
        if (sql__json_parse(&ctx, w1.p, w1.len, &again) != 0)
            abort();
        write_valid(&w2, &again);
        if (w1.len != w2.len || memcmp(w1.p, w2.p, w1.len) != 0)
            abort();
    }

    /* the lazy scan with the fuzzed paths */
    sql_program *p = paths_rule(data + 1, np, SQL_V2016_03_23, 0);
    if (!p)
        return 0;
    sql_value *slots = sql__arena_alloc(&ctx.arena, sizeof(sql_value) * (p->nslots + 1));
    if (!slots)
        abort();
    for (uint32_t i = 0; i < p->nslots; i++)
        slots[i] = SQL_UNDEF;
    const sql_pathset ps = {p->paths, p->npaths, p->nslots, NULL};
    int rc_scan = sql__json_scan(&ctx, payload, plen, &ps, slots);
    if (rc_scan == -1 && rc_full == 0) {
        fprintf(stderr, "the scan rejects a payload the parser accepts\n");
        abort();
    }
    if (rc_full == 0 && rc_scan != 0)
        abort();
    if (rc_scan == 0) {
        if (rc_full == 0)
            check_slots(p, 0, &full, slots);
        for (uint32_t i = 0; i < p->nslots; i++)
            write_valid(&w1, &slots[i]);
    }
    sql_program_free(p);
    if (plen <= SQL_MAX_PAYLOAD)
        check_shared(data + 1, np, payload, plen);
    return 0;
}

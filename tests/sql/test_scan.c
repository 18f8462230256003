/*
 * test_scan.c -- one payload scan shared by many programs (scan.c, sql.h "one payload scan
 * shared by many programs") gives every program exactly what it gets on its own.
 *
 * The differential test takes every rule of the golden corpus (tests/sql/golden), merges them
 * into one sql_scanset, and runs random subsets of them, in random order, over the golden
 * payloads, random payloads built from the keys those payloads use, and broken ones (cut short,
 * a byte changed, not JSON at all): each rule through the shared scan and alone, comparing the
 * status, the output, the error message and every template. The other tests pin the cases the
 * design turns on: payloads broken after what one rule reads, paths that are prefixes of other
 * rules' paths, rules of both SQL versions, templates that read paths the statement does not.
 */
#include <criterion/criterion.h>

#include "golden.h"
#include "sql_int.h"

/* {====== running a program alone and through the shared scan */

typedef struct result {
    int rc;
    char out[4096];
    char tpl[8][512];
} result;

/* Records status, output (or error message) and templates of the last run on x. */
static void record(sql_exec *x, const sql_program *p, int rc, const sql_output *o, result *r) {
    memset(r, 0, sizeof *r);
    r->rc = rc;
    if (rc == SQL_FIRED)
        snprintf(r->out, sizeof r->out, "%d:%.*s", o->is_binary, (int)o->len, o->data);
    else
        snprintf(r->out, sizeof r->out, "%s", rc == SQL_NOT_FIRED ? "" : sql_exec_errmsg(x));
    for (size_t t = 0; t < 8; t++) {
        sql_output to;
        if (rc == SQL_FIRED && t < sql_program_ntemplates(p)) {
            int trc = sql_exec_template(x, t, &to);
            snprintf(r->tpl[t], sizeof r->tpl[t], "%d:%.*s", trc, trc ? 0 : (int)to.len,
                     trc ? "" : to.data);
        } else {
            r->tpl[t][0] = '\0';
        }
    }
}

static void solo(sql_exec *x, const sql_program *p, const sql_message *m, result *r) {
    sql_output o;
    record(x, p, sql_exec_run_matched(x, p, m, &o), &o, r);
}

static void shared(sql_exec *x, uint32_t k, const sql_program *p, const sql_message *m,
                   result *r) {
    sql_output o;
    record(x, p, sql_exec_run_scan(x, k, m, &o), &o, r);
}

static void expect_same(const result *a, const result *b, const char *what) {
    cr_expect_eq(a->rc, b->rc, "%s: status %d alone, %d shared (%s | %s)", what, a->rc, b->rc,
                 a->out, b->out);
    cr_expect_str_eq(a->out, b->out, "%s", what);
    for (int t = 0; t < 8; t++)
        cr_expect_str_eq(a->tpl[t], b->tpl[t], "%s: template %d", what, t);
}

/* }====== */

/* {====== payloads */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

typedef struct keys {
    char k[512][32];
    size_t n;
} keys;

/* Collects the object keys of v (short ones, without duplicates). */
static void collect_keys(const sql_value *v, keys *ks, int depth) {
    if (depth > 8)
        return;
    if (v->t == SQL_T_ARR)
        for (uint32_t i = 0; i < v->n; i++)
            collect_keys(&v->u.a[i], ks, depth + 1);
    if (v->t != SQL_T_OBJ)
        return;
    for (uint32_t i = 0; i < v->n; i++) {
        const sql_member *m = &v->u.o[i];
        size_t j;
        for (j = 0; j < ks->n; j++)
            if (strlen(ks->k[j]) == m->klen && !memcmp(ks->k[j], m->k, m->klen))
                break;
        if (j == ks->n && ks->n < 512 && m->klen < 32 && (m->kflags & SQL_F_JSAFE)) {
            memcpy(ks->k[ks->n], m->k, m->klen);
            ks->k[ks->n++][m->klen] = '\0';
        }
        collect_keys(&m->v, ks, depth + 1);
    }
}

static void put(char *b, size_t cap, size_t *n, const char *s) {
    size_t k = strlen(s);
    if (*n + k < cap) {
        memcpy(b + *n, s, k);
        *n += k;
        b[*n] = '\0';
    }
}

/* A random JSON value using the keys, nested at most `depth` more levels. */
static void random_value(const keys *ks, char *b, size_t cap, size_t *n, int depth) {
    static const char *const scalars[] = {"1", "-7", "10.0", "0.5", "1e3", "\"x\"", "\"10\"",
                                          "\"true\"", "true", "false", "null", "\"\"",
                                          "\"a\\\"b\\u00e9\"", "12345678901234567890123",
                                          "\"hello world\""};
    uint32_t pick = rnd(depth > 0 ? 10 : 6);
    if (pick < 6) {
        put(b, cap, n, scalars[rnd(sizeof scalars / sizeof scalars[0])]);
    } else if (pick < 8) {
        put(b, cap, n, "[");
        for (uint32_t i = 0, len = rnd(4); i < len; i++) {
            if (i)
                put(b, cap, n, ",");
            random_value(ks, b, cap, n, depth - 1);
        }
        put(b, cap, n, "]");
    } else {
        put(b, cap, n, "{");
        for (uint32_t i = 0, len = 1 + rnd(6); i < len; i++) {
            if (i)
                put(b, cap, n, ",");
            put(b, cap, n, "\"");
            put(b, cap, n, ks->k[rnd((uint32_t)ks->n)]);
            put(b, cap, n, "\":");
            random_value(ks, b, cap, n, depth - 1);
        }
        put(b, cap, n, "}");
    }
}

/* }====== */

/* {====== the differential test over the golden corpus */

typedef struct corpus {
    block *blocks;
    size_t nblocks;
    sql_program **progs;   /* the rules that compile, and whose results are deterministic */
    size_t *block_of;      /* progs[i] comes from blocks[block_of[i]] */
    size_t nprogs;
    sql_scanset *set;
} corpus;

/* Whether p gives the same results twice on m (rand() does not). */
static int deterministic(sql_exec *x, const sql_program *p, const sql_message *m) {
    result a, b;
    solo(x, p, m, &a);
    solo(x, p, m, &b);
    return a.rc == b.rc && !strcmp(a.out, b.out) && !memcmp(a.tpl, b.tpl, sizeof a.tpl);
}

static void load_corpus(corpus *c, sql_exec *x) {
    c->blocks = load(&c->nblocks);
    cr_assert_gt(c->nblocks, 100);
    c->progs = calloc(c->nblocks, sizeof *c->progs);
    c->block_of = calloc(c->nblocks, sizeof *c->block_of);
    for (size_t i = 0; i < c->nblocks; i++) {
        block *b = &c->blocks[i];
        sql_compile_opts o = {.version = b->version,
                              .templates = (const char *const *)b->templates,
                              .ntemplates = (size_t)b->ntemplates};
        sql_program *p;
        sql_diag d;
        if (sql_compile(b->sql, strlen(b->sql), &o, &p, &d) != SQL_OK)
            continue;
        unsigned char bin[8192];
        char cbuf[7][256];
        sql_message m = block_message(b, bin, cbuf);
        m.uuid_seed[0] = 1; /* newuuid() deterministic in both runs */
        if (!deterministic(x, p, &m)) {
            sql_program_free(p);
            continue;
        }
        c->block_of[c->nprogs] = i;
        c->progs[c->nprogs++] = p;
    }
    cr_assert_gt(c->nprogs, 100, "only %zu golden rules usable", c->nprogs);
    c->set = sql_scanset_new((const sql_program *const *)c->progs, c->nprogs);
    cr_assert_not_null(c->set);
}

static void free_corpus(corpus *c) {
    sql_scanset_free(c->set);
    for (size_t i = 0; i < c->nprogs; i++)
        sql_program_free(c->progs[i]);
    free(c->progs);
    free(c->block_of);
    free_blocks(c->blocks, c->nblocks);
}

/* Runs a random subset of the corpus's programs on payload p[0..n) both ways; m gives the
 * rest of the message. Returns how many runs were compared. */
static size_t compare_on(corpus *c, sql_exec *xs, sql_exec *xa, sql_message m, const char *p,
                         size_t n, const char *what) {
    uint32_t ids[512];
    size_t nids = 1 + rnd((uint32_t)(c->nprogs < 512 ? c->nprogs : 512));
    for (size_t i = 0; i < nids; i++)
        ids[i] = rnd((uint32_t)c->nprogs); /* repeats are fine: a rule may run twice */
    m.payload = p;
    m.payload_len = n;
    cr_assert_eq(sql_exec_scan_begin(xs, c->set, &m, ids, nids), SQL_OK);
    for (size_t i = 0; i < nids; i++) {
        const sql_program *prog = c->progs[ids[i]];
        const block *b = &c->blocks[c->block_of[ids[i]]];
        char msgwhat[600];
        snprintf(msgwhat, sizeof msgwhat, "%s:%d on %s payload %.80s", b->file, b->line, what,
                 n ? p : "(empty)");
        result alone, together;
        m.uuid_seed[1] = (uint8_t)ids[i]; /* per rule, as the engine's */
        shared(xs, ids[i], prog, &m, &together);
        solo(xa, prog, &m, &alone);
        expect_same(&alone, &together, msgwhat);
    }
    return nids;
}

Test(scan, shared_scan_matches_each_rule_alone_on_the_golden_corpus, .timeout = 300) {
    sql_exec *xs = sql_exec_new(), *xa = sql_exec_new();
    corpus c = {0};
    load_corpus(&c, xa);
    keys ks = {0};
    sql_ctx ctx = {0};
    sql__arena_init(&ctx.arena, 0);
    ctx.version = SQL_V2016_03_23;
    for (size_t i = 0; i < c.nblocks; i++) {
        const char *p = c.blocks[i].payload;
        sql_value v;
        if (p && sql__json_parse(&ctx, p, strlen(p), &v) == 0)
            collect_keys(&v, &ks, 0);
    }
    cr_assert_gt(ks.n, 20);
    sql_message m = {.topic = "sensors/a/b", .topic_len = 11, .timestamp_ms = 1481825251155,
                     .clientid = "c1", .protocol = SQL_PROTO_MQTT};
    size_t runs = 0;
    static char buf[1 << 15];
    for (size_t i = 0; i < c.nblocks; i++) { /* the golden payloads, whole and broken */
        const char *p = c.blocks[i].payload;
        if (!p)
            continue;
        size_t n = strlen(p);
        runs += compare_on(&c, xs, xa, m, p, n, "golden");
        snprintf(buf, sizeof buf, "%s", p);
        size_t cut = n ? rnd((uint32_t)n) : 0;
        runs += compare_on(&c, xs, xa, m, buf, cut, "cut");
        if (n) {
            buf[rnd((uint32_t)n)] = "\"{}[],:x0\\"[rnd(10)];
            runs += compare_on(&c, xs, xa, m, buf, n, "changed");
        }
    }
    for (int i = 0; i < 400; i++) { /* random payloads over the corpus's keys */
        size_t n = 0;
        buf[0] = '\0';
        if (i % 2) { /* an object at the top, as most payloads */
            put(buf, sizeof buf, &n, "{");
            for (uint32_t j = 0, len = 1 + rnd(12); j < len; j++) {
                put(buf, sizeof buf, &n, j ? ",\"" : "\"");
                put(buf, sizeof buf, &n, ks.k[rnd((uint32_t)ks.n)]);
                put(buf, sizeof buf, &n, "\":");
                random_value(&ks, buf, sizeof buf, &n, 3);
            }
            put(buf, sizeof buf, &n, "}");
        } else {
            random_value(&ks, buf, sizeof buf, &n, 4);
        }
        runs += compare_on(&c, xs, xa, m, buf, n, "random");
        if (n > 2)
            runs += compare_on(&c, xs, xa, m, buf, n - 1 - rnd((uint32_t)n / 2), "random cut");
    }
    runs += compare_on(&c, xs, xa, m, "", 0, "empty");
    runs += compare_on(&c, xs, xa, m, "\x01\x02\xff", 3, "binary");
    cr_log_info("%zu golden rules, %zu merged nodes, %zu runs compared", c.nprogs,
                sql_scanset_nodes(c.set), runs);
    sql__arena_deinit(&ctx.arena);
    sql__buf_free(&ctx.jstack);
    free_corpus(&c);
    sql_exec_free(xs);
    sql_exec_free(xa);
}

/* }====== */

/* {====== the cases the design turns on */

typedef struct fixture {
    sql_program *p[8];
    size_t n;
    sql_scanset *set;
    sql_exec *xs, *xa;
} fixture;

static void build(fixture *f, const char *const *sqls, const sql_version *versions,
                  const char *const *tpl, size_t n) {
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        sql_compile_opts o = {.version = versions ? versions[i] : SQL_V2016_03_23,
                              .templates = tpl, .ntemplates = tpl ? 1 : 0};
        sql_diag d;
        cr_assert_eq(sql_compile(sqls[i], strlen(sqls[i]), &o, &f->p[i], &d), SQL_OK, "%s: %s",
                     sqls[i], d.msg);
    }
    f->n = n;
    f->set = sql_scanset_new((const sql_program *const *)f->p, n);
    f->xs = sql_exec_new();
    f->xa = sql_exec_new();
}

static void unbuild(fixture *f) {
    for (size_t i = 0; i < f->n; i++)
        sql_program_free(f->p[i]);
    sql_scanset_free(f->set);
    sql_exec_free(f->xs);
    sql_exec_free(f->xa);
}

/* Runs every program of f on payload both ways, expecting the same, and want[i] from program i
 * (its output; "-": not fired). */
static void expect_outputs(fixture *f, const char *payload, const char *const *want) {
    sql_message m = {.topic = "t", .topic_len = 1, .payload = payload,
                     .payload_len = strlen(payload), .timestamp_ms = 1};
    uint32_t ids[8];
    for (size_t i = 0; i < f->n; i++)
        ids[i] = (uint32_t)i;
    cr_assert_eq(sql_exec_scan_begin(f->xs, f->set, &m, ids, f->n), SQL_OK);
    for (size_t i = 0; i < f->n; i++) {
        result a, s;
        shared(f->xs, (uint32_t)i, f->p[i], &m, &s);
        solo(f->xa, f->p[i], &m, &a);
        expect_same(&a, &s, payload);
        if (!strcmp(want[i], "-")) {
            cr_expect_eq(s.rc, SQL_NOT_FIRED, "rule %zu on %s", i, payload);
            continue;
        }
        char w[600];
        snprintf(w, sizeof w, "0:%s", want[i]);
        cr_expect_str_eq(s.out, w, "rule %zu on %s", i, payload);
    }
}

Test(scan, a_payload_broken_after_what_a_rule_reads_is_json_to_that_rule) {
    static const char *const sqls[] = {"SELECT a FROM 't'", "SELECT b FROM 't'"};
    fixture f;
    build(&f, sqls, NULL, NULL, 2);
    /* the shared scan reads up to b and fails; `a` alone stopped before the damage */
    expect_outputs(&f, "{\"a\":1,\"b\":", (const char *const[]){"{\"a\":1}", "{}"});
    /* a raw control character in a string: the parser (reading a) rejects it, the skip
       (b's scan passing over a) does not */
    expect_outputs(&f, "{\"a\":\"x\001y\",\"b\":2}", (const char *const[]){"{}", "{\"b\":2}"});
    /* and a good payload afterwards is shared again */
    expect_outputs(&f, "{\"b\":3,\"a\":4}", (const char *const[]){"{\"a\":4}", "{\"b\":3}"});
    unbuild(&f);
}

/* Found by fuzz_json: a rule looking below `a` kept reading after `a` turned out to be a
 * number (its paths there could never be found), ran into damage and saw no JSON, while in a
 * shared scan another rule read `a` whole and the scan stopped before the damage. A value
 * that is over settles every path below it, alone or shared. */
Test(scan, a_path_below_a_value_that_is_over_is_settled_alone_and_shared) {
    static const char *const sqls[] = {"SELECT a AS k0 FROM 't'",
                                       "SELECT b.c AS k0, a.x.y AS k1, b AS k2 FROM 't'",
                                       "SELECT a.x AS k1 FROM 't'"};
    fixture f;
    build(&f, sqls, NULL, NULL, 3);
    expect_outputs(&f, "{\"a\":1,\"b\":\"x\":3}",
                   (const char *const[]){"{\"k0\":1}", "{\"k2\":\"x\"}", "{}"});
    /* an object that ended settles what it did not hold; a later duplicate does not count */
    expect_outputs(&f, "{\"a\":{\"z\":1},\"b\":2,\"a\":{\"x\":{\"y\":3}} broken",
                   (const char *const[]){"{\"k0\":{\"z\":1}}", "{\"k2\":2}", "{}"});
    unbuild(&f);
}

Test(scan, paths_under_other_rules_paths_read_from_their_values) {
    static const char *const sqls[] = {
        "SELECT a.b.c AS x FROM 't'", "SELECT a AS y FROM 't'", "SELECT a.b AS z FROM 't'",
        "SELECT a.d AS w, a.b.c AS v FROM 't'", "SELECT * FROM 't' WHERE a.d = 2"};
    fixture f;
    build(&f, sqls, NULL, NULL, 5);
    /* the first "a" wins for every rule, read whole once for y and walked for the others */
    const char *payload = "{\"a\":{\"b\":{\"c\":1},\"d\":2},\"a\":{\"b\":5}}";
    expect_outputs(&f, payload,
                   (const char *const[]){"{\"x\":1}", "{\"y\":{\"b\":{\"c\":1},\"d\":2}}",
                                         "{\"z\":{\"c\":1}}", "{\"w\":2,\"v\":1}",
                                         "{\"a\":{\"b\":{\"c\":1},\"d\":2}}"});
    /* "a" is not an object: every path below it is Undefined */
    expect_outputs(&f, "{\"a\":[1]}",
                   (const char *const[]){"{}", "{\"y\":[1]}", "{}", "{}", "-"});
    cr_expect_eq(sql_scanset_nodes(f.set), 4, "a, a.b, a.b.c and a.d, each once");
    unbuild(&f);
}

Test(scan, each_sql_version_reads_numbers_its_way) {
    static const char *const sqls[] = {"SELECT n, m.k FROM 't'", "SELECT n, m.k FROM 't'"};
    static const sql_version vs[] = {SQL_V2015_10_08, SQL_V2016_03_23};
    fixture f;
    build(&f, sqls, vs, NULL, 2);
    expect_outputs(&f, "{\"n\":10.0,\"m\":{\"k\":2.50}}",
                   (const char *const[]){"{\"n\":10.0,\"k\":2.50}", "{\"n\":10,\"k\":2.50}"});
    unbuild(&f);
}

Test(scan, templates_read_paths_the_statement_does_not) {
    static const char *const sqls[] = {"SELECT a FROM 't'", "SELECT topic() AS t FROM 't'"};
    static const char *const tpl[] = {"${b.c}/${a}"};
    fixture f;
    build(&f, sqls, NULL, tpl, 2);
    const char *payload = "{\"a\":1,\"b\":{\"c\":\"z\"}}";
    expect_outputs(&f, payload, (const char *const[]){"{\"a\":1}", "{\"t\":\"t\"}"});
    sql_message m = {.topic = "t", .topic_len = 1, .payload = payload,
                     .payload_len = strlen(payload), .timestamp_ms = 1};
    uint32_t one = 1;
    /* the second rule reads nothing in its statement; its template reads b.c and a */
    cr_assert_eq(sql_exec_scan_begin(f.xs, f.set, &m, &one, 1), SQL_OK);
    sql_output o;
    cr_assert_eq(sql_exec_run_scan(f.xs, 1, &m, &o), SQL_FIRED);
    cr_assert_eq(sql_exec_template(f.xs, 0, &o), SQL_OK);
    cr_expect(o.len == 3 && !memcmp(o.data, "z/1", 3), "%.*s", (int)o.len, o.data);
    unbuild(&f);
}

Test(scan, misuse_is_an_error_and_solo_runs_still_work) {
    static const char *const sqls[] = {"SELECT a FROM 't'", "SELECT b FROM 't'"};
    fixture f;
    build(&f, sqls, NULL, NULL, 2);
    const char *payload = "{\"a\":1,\"b\":2}";
    sql_message m = {.topic = "t", .topic_len = 1, .payload = payload,
                     .payload_len = strlen(payload), .timestamp_ms = 1};
    sql_output o;
    cr_expect_eq(sql_exec_run_scan(f.xs, 0, &m, &o), SQL_E_ARG, "no scan begun");
    uint32_t bad = 2, zero = 0;
    cr_expect_eq(sql_exec_scan_begin(f.xs, f.set, &m, &bad, 1), SQL_E_ARG);
    cr_assert_eq(sql_exec_scan_begin(f.xs, f.set, &m, &zero, 1), SQL_OK);
    cr_expect_eq(sql_exec_run_scan(f.xs, 1, &m, &o), SQL_E_ARG, "not one of the begun ids");
    cr_expect_eq(sql_exec_run_scan(f.xs, 7, &m, &o), SQL_E_ARG, "not in the set");
    char copy[32];
    snprintf(copy, sizeof copy, "%s", payload);
    sql_message other = m;
    other.payload = copy;
    cr_expect_eq(sql_exec_run_scan(f.xs, 0, &other, &o), SQL_E_ARG, "another payload");
    /* a run of its own in between does not disturb the shared scan */
    cr_assert_eq(sql_exec_run(f.xs, f.p[1], &m, &o), SQL_FIRED);
    cr_expect(o.len == 7 && !memcmp(o.data, "{\"b\":2}", 7));
    cr_assert_eq(sql_exec_run_scan(f.xs, 0, &m, &o), SQL_FIRED);
    cr_expect(o.len == 7 && !memcmp(o.data, "{\"a\":1}", 7));
    unbuild(&f);
}

/* }====== */

/*
 * scan.c -- one payload scan shared by many programs (sql_scanset, sql_exec_scan_begin,
 * sql_exec_run_scan).
 *
 * On its own, each program reads the payload with its own lazy scan (json_read.c), guided by
 * its own path trie; 300 rules on one topic read each message 300 times. A sql_scanset merges
 * the tries of many programs into one trie per SQL version (numbers are read by the version's
 * rules, so each version has its own scan), and records for every program where its slots sit
 * in it. Per message, the engine names the programs that run (the rules its topic matched);
 * the first of them that needs the payload activates the merged trie for all of them (a node
 * is read whole when one of those programs reads it whole, looked into when one reads below
 * it, skipped otherwise) and runs one scan; every program then takes its slot values from it,
 * walking down from a value an ancestor path already read when there is one.
 *
 * Results are those of each program alone. A scan that succeeds examined everything each
 * program's own scan would have examined, at least as strictly (where one program skips a
 * member structurally, the shared scan may read it in full), so each program's own scan would
 * also have succeeded, with the same values: first occurrences of keys win in both. A shared
 * scan that fails (the payload is not JSON as far as it was read, or a limit) decides nothing:
 * a program's own scan might have stopped before the damage. Then every program of that
 * message scans alone, exactly as sql_exec_run_matched() would. Rejected: stopping the shared
 * scan at each program's own last value, which needs the scan to follow every program's
 * strictness at once for a case (broken payloads) that is rare.
 *
 * A scanset is immutable once built and shared by all threads; everything per message lives
 * in the sql_exec (sql_shared in sql_int.h), including the values the scan read, in an arena
 * of their own that outlives the runs of the programs.
 */
#include "sql_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PLANS 2 /* one per SQL version */

typedef struct scan_slot {
    uint32_t slot; /* the program's slot */
    uint32_t node; /* its node in the merged trie */
} scan_slot;

typedef struct scan_prog {
    const sql_program *p;
    uint32_t plan;
    uint32_t nslots;
    scan_slot *slots;
} scan_prog;

typedef struct scan_plan {
    sql_path_node *nodes; /* the merged trie; a node's slot is its own index */
    uint32_t nnodes, cap;
} scan_plan;

struct sql_scanset {
    scan_prog *progs;
    uint32_t nprogs;
    scan_plan plan[MAX_PLANS];
    sql_arena arena; /* keys and slot maps */
};

/* {====== building */

/* The child of merged node `at` named key, created if missing; -1 on OOM. */
static int32_t merged_child(sql_scanset *s, scan_plan *pl, int32_t at, const char *key,
                            uint32_t klen) {
    int32_t c = pl->nodes[at].child, last = -1;
    for (; c >= 0; last = c, c = pl->nodes[c].next)
        if (pl->nodes[c].klen == klen && memcmp(pl->nodes[c].key, key, klen) == 0)
            return c;
    char *k = sql__arena_strdup(&s->arena, key, klen);
    if (!k || sql__grow((void **)&pl->nodes, &pl->cap, pl->nnodes + 1, sizeof *pl->nodes))
        return -1;
    c = (int32_t)pl->nnodes++;
    pl->nodes[c] = (sql_path_node){.key = k, .klen = klen, .slot = c, .child = -1, .next = -1,
                                   .parent = at};
    if (last >= 0)
        pl->nodes[last].next = c;
    else
        pl->nodes[at].child = c;
    return c;
}

/* Adds the subtree of program node `nd` (merged node `at`) to the plan and records its slots.
 * Recursion: once per level of the program's trie, at most MAX_PATH (32) deep. */
static int merge(sql_scanset *s, scan_plan *pl, scan_prog *sp, int nd, int32_t at) {
    const sql_path_node *pn = &sp->p->paths[nd];
    if (pn->slot >= 0) {
        sp->slots[sp->nslots++] = (scan_slot){(uint32_t)pn->slot, (uint32_t)at};
        return 0;
    }
    for (int c = pn->child; c >= 0; c = sp->p->paths[c].next) {
        const sql_path_node *cn = &sp->p->paths[c];
        int32_t m = merged_child(s, pl, at, cn->key, cn->klen);
        if (m < 0 || merge(s, pl, sp, c, m) != 0)
            return -1;
    }
    return 0;
}

sql_scanset *sql_scanset_new(const sql_program *const *progs, size_t n) {
    sql_scanset *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    sql__arena_init(&s->arena, 0);
    s->progs = calloc(n ? n : 1, sizeof *s->progs);
    if (!s->progs)
        goto fail;
    s->nprogs = (uint32_t)n;
    for (int v = 0; v < MAX_PLANS; v++) {
        scan_plan *pl = &s->plan[v];
        if (sql__grow((void **)&pl->nodes, &pl->cap, 1, sizeof *pl->nodes))
            goto fail;
        pl->nodes[0] = (sql_path_node){.slot = 0, .child = -1, .next = -1, .parent = -1};
        pl->nnodes = 1;
    }
    for (size_t i = 0; i < n; i++) {
        scan_prog *sp = &s->progs[i];
        sp->p = progs[i];
        sp->plan = progs[i]->version == SQL_V2015_10_08 ? 0 : 1;
        sp->slots = sql__arena_alloc(&s->arena, sizeof *sp->slots * (progs[i]->nslots + 1));
        if (!sp->slots)
            goto fail;
        if (progs[i]->npaths && merge(s, &s->plan[sp->plan], sp, 0, 0) != 0)
            goto fail;
    }
    return s;
fail:
    sql_scanset_free(s);
    return NULL;
}

void sql_scanset_free(sql_scanset *s) {
    if (!s)
        return;
    for (int v = 0; v < MAX_PLANS; v++)
        free(s->plan[v].nodes);
    free(s->progs);
    sql__arena_deinit(&s->arena);
    free(s);
}

size_t sql_scanset_nodes(const sql_scanset *s) {
    size_t n = 0;
    for (int v = 0; v < MAX_PLANS; v++)
        n += s->plan[v].nnodes - 1;
    return n;
}

/* }====== */

/* {====== per message */

/* Reallocates *pp to `size` bytes: 0, or -1 with *pp unchanged. */
static int resize(void *pp, size_t size) {
    void **p = pp, *q = realloc(*p, size);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

int sql_exec_scan_begin(sql_exec *x, const sql_scanset *s, const sql_message *m,
                        const uint32_t *ids, size_t nids) {
    sql_shared *sh = &x->sh;
    sh->set = NULL;
    for (uint32_t i = 0; i < sh->nactive; i++) /* the previous message's */
        sh->on[sh->active[i]] = 0;
    sh->nactive = 0;
    for (size_t i = 0; i < nids; i++)
        if (ids[i] >= s->nprogs)
            return SQL_E_ARG;
    uint32_t oncap = sh->capon;
    if (sql__grow((void **)&sh->active, &sh->capactive, (uint32_t)nids, sizeof *sh->active) ||
        sql__grow((void **)&sh->on, &sh->capon, s->nprogs, 1))
        return SQL_E_NOMEM;
    memset(sh->on + oncap, 0, sh->capon - oncap);
    for (int v = 0; v < MAX_PLANS; v++) {
        sql_shared_plan *sp = &sh->plan[v];
        uint32_t need = s->plan[v].nnodes;
        if (need > sp->cap) {
            if (resize(&sp->need, need) || resize(&sp->vals, sizeof *sp->vals * need) ||
                resize(&sp->marked, sizeof *sp->marked * need) ||
                resize(&sp->top, sizeof *sp->top * need))
                return SQL_E_NOMEM;
            memset(sp->need + sp->cap, SQL_NEED_SKIP, need - sp->cap);
            sp->cap = need;
        }
        sp->state = 0;
    }
    memcpy(sh->active, ids, sizeof *ids * nids);
    sh->nactive = (uint32_t)nids;
    for (size_t i = 0; i < nids; i++)
        sh->on[ids[i]] = 1;
    sh->payload = m->payload;
    sh->payload_len = m->payload_len;
    sh->now_ms = m->timestamp_ms;
    if (!sh->now_ms) { /* one clock reading for every rule of the message */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sh->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    if (!sh->arena.limit)
        sql__arena_init(&sh->arena, x->ctx.arena.limit);
    sql__arena_reset(&sh->arena);
    sh->set = s;
    return SQL_OK;
}

int sql_exec_run_scan(sql_exec *x, uint32_t k, const sql_message *m, sql_output *out) {
    const sql_shared *sh = &x->sh;
    if (!sh->set || k >= sh->set->nprogs || !sh->on[k] || m->payload != sh->payload ||
        m->payload_len != sh->payload_len)
        return SQL_E_ARG;
    return sql__exec_run(x, sh->set->progs[k].p, m, (int32_t)k, out);
}

/* Marks merged node nd VALUE and its ancestors DESCEND (those not marked yet). */
static void mark(sql_shared_plan *sp, const scan_plan *pl, uint32_t nd) {
    if (sp->need[nd] == SQL_NEED_VALUE)
        return;
    if (sp->need[nd] == SQL_NEED_SKIP)
        sp->marked[sp->nmarked++] = nd;
    sp->need[nd] = SQL_NEED_VALUE;
    for (int32_t a = pl->nodes[nd].parent; a >= 0 && sp->need[a] == SQL_NEED_SKIP;
         a = pl->nodes[a].parent) {
        sp->need[a] = SQL_NEED_DESCEND;
        sp->marked[sp->nmarked++] = (uint32_t)a;
    }
}

/* The topmost VALUE node on the path from the root to nd: the one the scan read. */
static uint32_t read_at(const sql_shared_plan *sp, const scan_plan *pl, uint32_t nd) {
    uint32_t top = nd;
    for (int32_t a = pl->nodes[nd].parent; a >= 0; a = pl->nodes[a].parent)
        if (sp->need[a] == SQL_NEED_VALUE)
            top = (uint32_t)a;
    return top;
}

/* Activates plan v for the active programs and runs the shared scan. */
static void shared_scan(sql_exec *x, int v) {
    sql_shared *sh = &x->sh;
    sql_shared_plan *sp = &sh->plan[v];
    const scan_plan *pl = &sh->set->plan[v];
    for (uint32_t i = 0; i < sp->nmarked; i++)
        sp->need[sp->marked[i]] = SQL_NEED_SKIP;
    sp->nmarked = 0;
    for (uint32_t i = 0; i < sh->nactive; i++) {
        const scan_prog *p = &sh->set->progs[sh->active[i]];
        if (p->plan == (uint32_t)v)
            for (uint32_t j = 0; j < p->nslots; j++)
                mark(sp, pl, p->slots[j].node);
    }
    uint32_t nread = 0;
    for (uint32_t i = 0; i < sp->nmarked; i++) {
        uint32_t nd = sp->marked[i];
        if (sp->need[nd] != SQL_NEED_VALUE)
            continue;
        sp->top[nd] = read_at(sp, pl, nd);
        if (sp->top[nd] == nd) {
            sp->vals[nd] = SQL_UNDEF;
            nread++;
        }
    }
    /* the values go to the shared arena, which outlives the programs' runs */
    sql_ctx *ctx = &x->ctx;
    sql_arena own = ctx->arena;
    ctx->arena = sh->arena;
    const sql_pathset ps = {pl->nodes, pl->nnodes, nread, sp->need};
    int rc = sql__json_scan(ctx, sh->payload, sh->payload_len, &ps, sp->vals);
    sh->arena = ctx->arena;
    ctx->arena = own;
    sp->state = rc == 0 ? 1 : -1;
    if (rc != 0) { /* decided by each program's own scan instead */
        ctx->err = 0;
        ctx->errmsg[0] = '\0';
    }
}

int sql__shared_fill(sql_exec *x) {
    sql_shared *sh = &x->sh;
    const scan_prog *p = &sh->set->progs[sh->k];
    int v = (int)p->plan;
    sql_shared_plan *sp = &sh->plan[v];
    if (sp->state == 0)
        shared_scan(x, v);
    if (sp->state < 0)
        return -1;
    const scan_plan *pl = &sh->set->plan[v];
    for (uint32_t j = 0; j < p->nslots; j++) { /* every slot of the program is listed once */
        uint32_t nd = p->slots[j].node, top = sp->top[nd];
        if (top == nd) {
            x->slots[p->slots[j].slot] = sp->vals[nd];
            continue;
        }
        uint32_t path[34], depth = 0; /* the nodes below `top` down to nd */
        for (uint32_t a = nd; a != top; a = (uint32_t)pl->nodes[a].parent)
            path[depth++] = a;
        sql_value v = sp->vals[top];
        while (depth-- > 0 && v.t != SQL_T_UNDEF) {
            const sql_path_node *pn = &pl->nodes[path[depth]];
            const sql_value *m = v.t == SQL_T_OBJ ? sql__obj_get(&v, pn->key, pn->klen) : NULL;
            v = m ? *m : SQL_UNDEF;
        }
        x->slots[p->slots[j].slot] = v;
    }
    return 0;
}

void sql__shared_deinit(sql_shared *sh) {
    free(sh->on);
    for (int v = 0; v < MAX_PLANS; v++) {
        free(sh->plan[v].need);
        free(sh->plan[v].vals);
        free(sh->plan[v].marked);
        free(sh->plan[v].top);
    }
    free(sh->active);
    sql__arena_deinit(&sh->arena);
}

/* }====== */

/*
 * compile.c -- AST to bytecode.
 *
 * Two passes over the statement and its templates. Pass 1 (collect) finds every payload path
 * the program reads (`a`, `a.b.c`, `*`) and builds the path trie that lets the JSON reader
 * materialize only those values in one lazy pass (json_read.c); a path that has a shorter
 * requested prefix gets no slot of its own and is read from the prefix's value with GETF at run
 * time. Pass 2 (emit) generates register code, Lua style: each expression is compiled into a
 * target register, temporaries are taken from a stack of registers and released in LIFO order.
 * SET variables live in reserved registers 0..nvars-1 that no other code reuses, so templates,
 * which run after the main entry on the same registers, still see them.
 *
 * Constant expressions (literals, operators over literals, deterministic builtins over
 * constants, array and object literals of constants) are folded at compile time by calling the
 * same operator and builtin code the VM calls, so folding can never disagree with evaluation.
 * Literal regexp patterns are compiled once here and handed to the builtin through its call
 * site. Everything the program keeps lives in the program's arena.
 *
 * Rejected alternative: a tree-walking evaluator (Fluent Bit's stream processor), which
 * re-dispatches on node kinds and allocates per node on every message.
 */
#include "sql_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PATH 32

/* The functions that recurse over expressions keep their frames small (their stack use is
 * SQL_MAX_DEPTH times their frame, see sql/README.md "Limits"): bulky or rare work goes into
 * helpers the compiler must not inline into them. */
#define NOINLINE __attribute__((noinline))

typedef struct cnode { /* path trie node during compilation */
    const char *key;
    uint32_t klen;
    int want; /* some expression reads this node's whole value */
    int32_t slot, child, next;
} cnode;

typedef struct fstate {
    sql_ctx cctx; /* arena: the AST and scratch, freed after compilation */
    sql_arena *keep; /* the program's own arena: what the program keeps */
    sql_program *p;
    const char *text; /* text being compiled (statement or a template) */
    size_t n;
    sql_diag *d;
    int where; /* diag `where` for the text */
    sql_insn *code;
    uint32_t ncode, capcode;
    sql_value *k;
    uint32_t nk, capk;
    sql_callsite *calls;
    uint32_t ncalls, capcalls;
    cnode *nodes;
    uint32_t nnodes, capnodes;
    int nextreg, maxreg;
    sql_name vars[16];
    int nvars;
    int row; /* register of the current nested-SELECT element, -1 at top level */
    int err;
} fstate;

/* {====== small growable arrays */

static int fail(fstate *fs, int code, uint32_t off, uint32_t len, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(fstate *fs, int code, uint32_t off, uint32_t len, const char *fmt, ...) {
    if (fs->err)
        return fs->err;
    fs->err = code;
    if (fs->d->code == 0) {
        va_list ap;
        va_start(ap, fmt);
        char msg[200];
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        sql__diag_set(fs->d, code, fs->text, fs->n, off, len, "%s", msg);
        fs->d->where = fs->where;
    }
    return code;
}

static int nomem(fstate *fs) { return fail(fs, SQL_E_NOMEM, 0, 0, "out of memory"); }

static int emit(fstate *fs, uint8_t op, int a, int b, int c) {
    if (sql__grow((void **)&fs->code, &fs->capcode, fs->ncode + 1, sizeof(sql_insn)))
        return nomem(fs), -1;
    sql_insn *i = &fs->code[fs->ncode];
    memset(i, 0, sizeof *i);
    i->op = op;
    i->a = (uint16_t)a;
    i->b = (uint16_t)b;
    i->c = (uint16_t)c;
    return (int)fs->ncode++;
}

static int emitbx(fstate *fs, uint8_t op, int a, uint32_t bx) {
    int pc = emit(fs, op, a, 0, 0);
    if (pc >= 0)
        fs->code[pc].bx = bx;
    return pc;
}

/* Emits a jump with an unresolved target; returns its pc for patch(). */
static int emitjump(fstate *fs, uint8_t op, int a) { return emit(fs, op, a, 0, 0); }

/* Points the jump at pc `from` to the next instruction to be emitted. */
static void patch(fstate *fs, int from) {
    if (from >= 0)
        fs->code[from].j = (int32_t)fs->ncode - (from + 1);
}

static void patchto(fstate *fs, int from, int to) {
    if (from >= 0)
        fs->code[from].j = to - (from + 1);
}

/* A copy of v whose memory belongs to the program (constants outlive the AST). */
static sql_value keep_value(fstate *fs, sql_value v) {
    sql_arena *a = fs->keep;
    switch (v.t) {
    case SQL_T_STR: {
        char *c = sql__arena_strdup(a, v.u.s, v.n);
        if (!c)
            return nomem(fs), SQL_UNDEF;
        v.u.s = c;
        return v;
    }
    case SQL_T_INT:
    case SQL_T_DEC:
        if (v.f & SQL_F_BIG) {
            sql_big *b = sql__arena_alloc(a, sizeof *b);
            if (!b)
                return nomem(fs), SQL_UNDEF;
            *b = *v.u.big;
            v.u.big = b;
        }
        return v;
    case SQL_T_ARR: {
        sql_value *e = sql__arena_alloc(a, sizeof(sql_value) * (v.n + 1));
        if (!e)
            return nomem(fs), SQL_UNDEF;
        for (uint32_t i = 0; i < v.n; i++)
            e[i] = keep_value(fs, v.u.a[i]);
        v.u.a = e;
        v.e = 0;
        return v;
    }
    case SQL_T_OBJ: {
        sql_member *m = sql__arena_alloc(a, sizeof(sql_member) * (v.n + 1));
        if (!m)
            return nomem(fs), SQL_UNDEF;
        for (uint32_t i = 0; i < v.n; i++) {
            m[i] = v.u.o[i];
            m[i].k = sql__arena_strdup(a, v.u.o[i].k, v.u.o[i].klen);
            m[i].v = keep_value(fs, v.u.o[i].v);
        }
        v.u.o = m;
        v.e = 0;
        return v;
    }
    default:
        return v;
    }
}

static int addk(fstate *fs, sql_value v) {
    v = keep_value(fs, v);
    if (sql__grow((void **)&fs->k, &fs->capk, fs->nk + 1, sizeof(sql_value)))
        return nomem(fs), 0;
    fs->k[fs->nk] = v;
    return (int)fs->nk++;
}

/* A string constant (deduplicated: keys repeat across items and templates). */
static int addks(fstate *fs, const char *s, uint32_t n) {
    for (uint32_t i = 0; i < fs->nk; i++) {
        if (fs->k[i].t == SQL_T_STR && fs->k[i].n == n && memcmp(fs->k[i].u.s, s, n) == 0)
            return (int)i;
    }
    char *c = sql__arena_strdup(fs->keep, s, n);
    if (!c)
        return nomem(fs), 0;
    return addk(fs, sql__str(c, n));
}

static int allocreg(fstate *fs, int n) {
    int r = fs->nextreg;
    fs->nextreg += n;
    if (fs->nextreg > fs->maxreg)
        fs->maxreg = fs->nextreg;
    if (fs->nextreg > 60000)
        fail(fs, SQL_E_LIMIT, 0, 0, "statement needs too many registers");
    return r;
}

/* }====== */

/* {====== pass 1: payload paths */

static int newnode(fstate *fs, const char *key, uint32_t klen) {
    if (sql__grow((void **)&fs->nodes, &fs->capnodes, fs->nnodes + 1, sizeof(cnode)))
        return nomem(fs), -1;
    cnode *c = &fs->nodes[fs->nnodes];
    c->key = key;
    c->klen = klen;
    c->want = 0;
    c->slot = -1;
    c->child = -1;
    c->next = -1;
    return (int)fs->nnodes++;
}

/* If e is a payload path at top level (FIELD, or a MEMBER chain on a FIELD), stores its names
 * root-first and returns their count; else 0. */
static int path_of(fstate *fs, const sql_node *e, sql_name *names) {
    if (fs->row >= 0)
        return 0;
    int n = 1; /* the FIELD at the root of the chain */
    const sql_node *x = e;
    while (x->kind == SQL_N_MEMBER) {
        if (++n > MAX_PATH) /* deeper chains read their prefix path, then use GETF */
            return 0;
        x = x->kids[0];
    }
    if (x->kind != SQL_N_FIELD)
        return 0;
    int i = n - 1;
    for (x = e; x->kind == SQL_N_MEMBER; x = x->kids[0])
        names[i--] = x->name;
    names[0] = x->name;
    return n;
}

/* Finds or creates the trie node of names[0..n); n == 0 is the root. */
static int path_node(fstate *fs, const sql_name *names, int n) {
    int cur = 0;
    for (int i = 0; i < n; i++) {
        int c = fs->nodes[cur].child, prev = -1;
        while (c >= 0 && !(fs->nodes[c].klen == names[i].n &&
                           memcmp(fs->nodes[c].key, names[i].s, names[i].n) == 0)) {
            prev = c;
            c = fs->nodes[c].next;
        }
        if (c < 0) {
            c = newnode(fs, names[i].s, names[i].n);
            if (c < 0)
                return -1;
            if (prev >= 0)
                fs->nodes[prev].next = c;
            else
                fs->nodes[cur].child = c;
        }
        cur = c;
    }
    return cur;
}

static void collect(fstate *fs, const sql_node *e);

static void collect_select(fstate *fs, const sql_select *s) {
    /* the FROM expression is read in the enclosing scope; items and WHERE see the element */
    collect(fs, s->from_expr);
    int row = fs->row;
    fs->row = 1;
    for (uint32_t i = 0; i < s->nitems; i++)
        if (s->items[i].expr)
            collect(fs, s->items[i].expr);
    if (s->where)
        collect(fs, s->where);
    fs->row = row;
}

/* Marks e's path in the trie when e is a payload path; 1 if it was one. Kept out of collect()
 * so that the name buffer is not part of every recursive frame. */
static NOINLINE int collect_path(fstate *fs, const sql_node *e) {
    sql_name names[MAX_PATH];
    int n = path_of(fs, e, names);
    if (n <= 0)
        return 0;
    int nd = path_node(fs, names, n);
    if (nd >= 0)
        fs->nodes[nd].want = 1;
    return 1;
}

/* Recursion: once per level of e's tree, which the parser bounds by SQL_MAX_DEPTH. */
static void collect(fstate *fs, const sql_node *e) {
    if (!e || fs->err)
        return;
    if ((e->kind == SQL_N_FIELD || e->kind == SQL_N_MEMBER) && collect_path(fs, e))
        return;
    if (e->kind == SQL_N_STAR) {
        if (fs->row < 0)
            fs->nodes[0].want = 1;
        return;
    }
    if (e->kind == SQL_N_SELECT) {
        collect_select(fs, e->sel);
        return;
    }
    for (uint32_t i = 0; i < e->nkids; i++)
        collect(fs, e->kids[i]);
}

/* Gives a slot to every wanted node that has no wanted ancestor. */
static void assign_slots(fstate *fs, int nd, int covered) {
    for (; nd >= 0; nd = fs->nodes[nd].next) {
        cnode *c = &fs->nodes[nd];
        int cov = covered;
        if (c->want && !covered) {
            c->slot = (int32_t)fs->p->nslots++;
            cov = 1;
        }
        assign_slots(fs, c->child, cov);
    }
}

static uint32_t count_slots(const sql_path_node *pn, int nd) {
    uint32_t n = pn[nd].slot >= 0 ? 1 : 0;
    if (pn[nd].slot >= 0)
        return n;
    for (int c = pn[nd].child; c >= 0; c = pn[c].next)
        n += count_slots(pn, c);
    return n;
}

/* Copies the trie into the program, dropping the subtrees under slot nodes (the reader
 * materializes those whole). */
static int freeze_paths(fstate *fs) {
    sql_program *p = fs->p;
    fs->nodes[0].slot = fs->nodes[0].want ? 0 : -1;
    if (fs->nodes[0].want) {
        p->nslots = 1;
    } else {
        assign_slots(fs, fs->nodes[0].child, 0);
    }
    p->root_slot = fs->nodes[0].slot;
    p->paths = sql__arena_alloc(fs->keep, sizeof(sql_path_node) * fs->nnodes);
    if (!p->paths)
        return nomem(fs);
    /* breadth order is not needed; indexes are kept as they are */
    for (uint32_t i = 0; i < fs->nnodes; i++) {
        cnode *c = &fs->nodes[i];
        sql_path_node *pn = &p->paths[i];
        pn->key = c->key ? sql__arena_strdup(fs->keep, c->key, c->klen) : NULL;
        pn->klen = c->klen;
        pn->slot = c->slot;
        pn->child = c->slot >= 0 ? -1 : c->child;
        pn->next = c->next;
        pn->parent = -1;
    }
    for (uint32_t i = 0; i < fs->nnodes; i++)
        for (int32_t c = p->paths[i].child; c >= 0; c = p->paths[c].next)
            p->paths[c].parent = (int32_t)i;
    for (uint32_t i = 0; i < fs->nnodes; i++)
        p->paths[i].nslots = count_slots(p->paths, (int)i);
    p->npaths = fs->nnodes;
    return 0;
}

/* }====== */

/* {====== constant folding */

static int fn_cast(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out) {
    *out = sql__cast(ctx, &argv[0], (int)(intptr_t)ctx->aux);
    return 0;
}

static const sql_func cast_func = {"cast", 1, 1, SQL_FN_DETERMINISTIC, fn_cast};

static const sql_func *resolve_call(fstate *fs, const sql_node *e);

static int konst(fstate *fs, const sql_node *e, sql_value *out);

/* konst() of a call: a deterministic builtin over constant arguments runs now. Its own
 * function so that the argument array is not part of every recursive konst() frame. */
static NOINLINE int konst_call(fstate *fs, const sql_node *e, sql_value *out) {
    sql_ctx *c = &fs->cctx;
    const sql_func *f = resolve_call(fs, e);
    if (!f || !(f->flags & SQL_FN_DETERMINISTIC) || (f->flags & SQL_FN_REGEX))
        return 0;
    if ((int)e->nkids < f->min_args || (f->max_args >= 0 && (int)e->nkids > f->max_args)) {
        *out = SQL_UNDEF;
        return 1;
    }
    /* in the arena, not on the stack: calls nest, and this frame is paid at every level */
    sql_value *argv = sql__arena_alloc(&c->arena, sizeof(sql_value) * (e->nkids + 1));
    if (!argv)
        return 0;
    for (uint32_t i = 0; i < e->nkids; i++)
        if (e->kids[i]->kind == SQL_N_STAR || !konst(fs, e->kids[i], &argv[i]))
            return 0;
    c->aux = NULL;
    f->fn(c, (int)e->nkids, argv, out);
    return 1;
}

/* konst() of an array or object literal: constant when every element is. */
static NOINLINE int konst_literal(fstate *fs, const sql_node *e, sql_value *out) {
    sql_ctx *c = &fs->cctx;
    if (e->kind == SQL_N_ARRAY) {
        sql_value *vs = sql__arena_alloc(&c->arena, sizeof(sql_value) * (e->nkids + 1));
        if (!vs)
            return 0;
        uint32_t n = 0;
        for (uint32_t i = 0; i < e->nkids; i++) {
            if (!konst(fs, e->kids[i], &vs[n]))
                return 0;
            if (vs[n].t != SQL_T_UNDEF)
                n++;
        }
        *out = (sql_value){.t = SQL_T_ARR, .n = n, .u.a = vs};
        return 1;
    }
    sql_member *ms = sql__arena_alloc(&c->arena, sizeof(sql_member) * (e->nkids + 1));
    if (!ms)
        return 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->nkids; i++) {
        sql_value v;
        if (!konst(fs, e->kids[i], &v))
            return 0;
        if (v.t == SQL_T_UNDEF)
            continue;
        uint32_t j;
        for (j = 0; j < n; j++)
            if (ms[j].klen == e->keys[i].n && !memcmp(ms[j].k, e->keys[i].s, e->keys[i].n))
                break;
        ms[j].k = e->keys[i].s;
        ms[j].klen = e->keys[i].n;
        ms[j].kflags = 0;
        ms[j].v = v;
        if (j == n)
            n++;
    }
    *out = (sql_value){.t = SQL_T_OBJ, .n = n, .u.o = ms};
    return 1;
}

/* 1 and *out set when e is a constant expression; 0 otherwise. Recursion: once per level of
 * e's tree (bounded by SQL_MAX_DEPTH). */
static int konst(fstate *fs, const sql_node *e, sql_value *out) {
    sql_ctx *c = &fs->cctx;
    if (fs->err || (e->flags & SQL_NF_VARIANT))
        return 0;
    sql_value a, b;
    int ok;
    switch (e->kind) {
    case SQL_N_LIT:
        *out = e->v;
        return 1;
    case SQL_N_UNARY:
        if ((ok = konst(fs, e->kids[0], &a)))
            *out = e->op == SQL_U_NOT ? sql__op_not(c, &a) : sql__op_neg(c, &a);
        break;
    case SQL_N_BINARY:
        if ((ok = konst(fs, e->kids[0], &a) && konst(fs, e->kids[1], &b)))
            *out = sql__op_binary(c, e->op, &a, &b);
        break;
    case SQL_N_CAST:
        if ((ok = konst(fs, e->kids[0], &a)))
            *out = sql__cast(c, &a, e->op);
        break;
    case SQL_N_ARRAY:
    case SQL_N_OBJECT:
        ok = konst_literal(fs, e, out);
        break;
    case SQL_N_CALL:
        ok = konst_call(fs, e, out);
        break;
    default:
        ok = 0;
        break;
    }
    if (ok && c->err) { /* folding failed (e.g. a limit): leave it to run time */
        c->err = 0;
        c->errmsg[0] = '\0';
        ok = 0;
    }
    /* expr() asks again at every level of a tree: remember the answer, so that a chain of n
       operators costs n steps, not n * n (the tree is the compiler's own scratch) */
    if (!ok)
        ((sql_node *)e)->flags |= SQL_NF_VARIANT;
    return ok;
}

/* }====== */

/* {====== pass 2: expressions */

static int expr(fstate *fs, const sql_node *e, int target);

static int find_var(fstate *fs, sql_name name) {
    for (int i = 0; i < fs->nvars; i++)
        if (fs->vars[i].n == name.n && memcmp(fs->vars[i].s, name.s, name.n) == 0)
            return i;
    return -1;
}

static const sql_func *resolve_call(fstate *fs, const sql_node *e) {
    const sql_func *f = sql__func_lookup(e->name.s, e->name.n);
    if (!f) {
        fail(fs, SQL_E_SEMANTIC, e->off, e->name.n, "unknown function '%.*s'", (int)e->name.n,
             e->name.s);
        return NULL;
    }
    if (f->flags & SQL_FN_AWS) {
        fail(fs, SQL_E_UNSUPPORTED, e->off, e->name.n,
             "function '%s' calls an AWS service and is not available in sluice", f->name);
        return NULL;
    }
    if ((f->flags & SQL_FN_V2016) && fs->p->version < SQL_V2016_03_23) {
        fail(fs, SQL_E_VERSION, e->off, e->name.n,
             "function '%s' needs SQL version 2016-03-23 (this rule uses 2015-10-08)", f->name);
        return NULL;
    }
    return f;
}

static int add_call(fstate *fs, const sql_func *f, void *aux, const sql_node *e) {
    if (sql__grow((void **)&fs->calls, &fs->capcalls, fs->ncalls + 1, sizeof(sql_callsite)))
        return nomem(fs), 0;
    fs->calls[fs->ncalls] = (sql_callsite){f, aux, e->off, e->len};
    return (int)fs->ncalls++;
}

/* A literal regexp pattern compiled once, or NULL when the pattern is not constant. An invalid
 * literal pattern is Undefined at run time, as AWS documents: the builtin recompiles it and
 * fails the same way. */
static NOINLINE void *literal_regex(fstate *fs, const sql_node *pat) {
    sql_value k;
    char msg[160];
    if (!konst(fs, pat, &k) || k.t != SQL_T_STR)
        return NULL;
    return sql__regex_compile(k.u.s, k.n, msg, sizeof msg);
}

static NOINLINE int call(fstate *fs, const sql_node *e, int target) {
    const sql_func *f = resolve_call(fs, e);
    if (!f)
        return fs->err;
    int argc = (int)e->nkids;
    if (argc < f->min_args || (f->max_args >= 0 && argc > f->max_args)) {
        /* AWS: a wrong number of arguments gives Undefined, not an error */
        emit(fs, SQL_OP_LOADUNDEF, target, 0, 0);
        return fs->err;
    }
    void *aux = NULL;
    if (f->flags & SQL_FN_LIT2) {
        sql_value k;
        if (argc < 2 || !konst(fs, e->kids[1], &k) || k.t != SQL_T_STR)
            return fail(fs, SQL_E_SEMANTIC, argc >= 2 ? e->kids[1]->off : e->off,
                        argc >= 2 ? e->kids[1]->len : e->len,
                        "the second argument of %s() must be a string literal", f->name);
    }
    if ((f->flags & SQL_FN_REGEX) && argc >= 2)
        aux = literal_regex(fs, e->kids[1]);
    int ci = add_call(fs, f, aux, e);
    int save = fs->nextreg;
    int base = allocreg(fs, argc + 1);
    for (int i = 0; i < argc; i++) {
        const sql_node *a = e->kids[i];
        if (a->kind == SQL_N_STAR) {
            if (fs->row >= 0)
                emit(fs, SQL_OP_MOVE, base + 1 + i, fs->row, 0);
            else
                emit(fs, (f->flags & SQL_FN_STAR) ? SQL_OP_RAW : SQL_OP_PAYLOAD, base + 1 + i, 0,
                     0);
        } else if (expr(fs, a, base + 1 + i)) {
            return fs->err;
        }
    }
    emit(fs, SQL_OP_CALL, base, ci, argc);
    if (target != base)
        emit(fs, SQL_OP_MOVE, target, base, 0);
    fs->nextreg = save;
    return fs->err;
}

static NOINLINE int cast_expr(fstate *fs, const sql_node *e, int target) {
    int ci = add_call(fs, &cast_func, (void *)(intptr_t)e->op, e);
    int save = fs->nextreg;
    int base = allocreg(fs, 2);
    if (expr(fs, e->kids[0], base + 1))
        return fs->err;
    emit(fs, SQL_OP_CALL, base, ci, 1);
    emit(fs, SQL_OP_MOVE, target, base, 0);
    fs->nextreg = save;
    return fs->err;
}

/* An array or object literal that is not constant: built element by element. */
static NOINLINE int literal(fstate *fs, const sql_node *e, int target) {
    int save = fs->nextreg;
    int arr = e->kind == SQL_N_ARRAY;
    emit(fs, arr ? SQL_OP_NEWARR : SQL_OP_NEWOBJ, target, 0, (int)e->nkids);
    int t = allocreg(fs, 1);
    for (uint32_t i = 0; i < e->nkids; i++) {
        if (expr(fs, e->kids[i], t))
            return fs->err;
        if (arr)
            emit(fs, SQL_OP_APPEND, target, t, 0);
        else
            emit(fs, SQL_OP_SETKEY, target, t, addks(fs, e->keys[i].s, e->keys[i].n));
    }
    fs->nextreg = save;
    return fs->err;
}

static NOINLINE int case_expr(fstate *fs, const sql_node *e, int target) {
    int save = fs->nextreg;
    int has_else = (e->flags & SQL_NF_ELSE) != 0;
    uint32_t npairs = (e->nkids - 1 - (uint32_t)has_else) / 2;
    int subj = -1, jundef = -1;
    if (e->kids[0]) {
        subj = allocreg(fs, 1);
        if (expr(fs, e->kids[0], subj))
            return fs->err;
        /* AWS: an Undefined subject makes the whole CASE Undefined, ELSE included */
        jundef = emitjump(fs, SQL_OP_JMPIFUNDEF, subj);
    }
    int t = allocreg(fs, 1);
    int *ends = calloc(npairs + 1, sizeof(int));
    if (!ends)
        return nomem(fs);
    for (uint32_t i = 0; i < npairs; i++) {
        const sql_node *w = e->kids[1 + 2 * i], *th = e->kids[2 + 2 * i];
        if (expr(fs, w, t))
            break;
        if (subj >= 0)
            emit(fs, SQL_OP_EQ, t, subj, t);
        int jn = emitjump(fs, SQL_OP_JMPIFNOT, t);
        if (expr(fs, th, target))
            break;
        ends[i] = emitjump(fs, SQL_OP_JMP, 0);
        patch(fs, jn);
    }
    if (!fs->err) {
        if (has_else)
            expr(fs, e->kids[e->nkids - 1], target);
        else
            emit(fs, SQL_OP_LOADUNDEF, target, 0, 0);
        int jend = emitjump(fs, SQL_OP_JMP, 0);
        if (jundef >= 0) {
            patch(fs, jundef);
            emit(fs, SQL_OP_LOADUNDEF, target, 0, 0);
        }
        patch(fs, jend);
        for (uint32_t i = 0; i < npairs; i++)
            patch(fs, ends[i]);
    }
    free(ends);
    fs->nextreg = save;
    return fs->err;
}

/* The output key of an unaliased SELECT item: the attribute or function name; `_<n>` for
 * other expressions (n = 1-based item position). */
static sql_name item_key(fstate *fs, const sql_item *it, uint32_t pos) {
    if (it->alias.n)
        return it->alias;
    const sql_node *e = it->expr;
    switch (e->kind) {
    case SQL_N_FIELD:
    case SQL_N_MEMBER:
    case SQL_N_VAR:
    case SQL_N_CALL:
        return e->name;
    case SQL_N_CAST:
        return (sql_name){"cast", 4};
    default: {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "_%u", pos + 1);
        char *s = sql__arena_strdup(&fs->cctx.arena, buf, (size_t)n);
        return (sql_name){s ? s : "_", s ? (uint32_t)n : 1};
    }
    }
}

/* Compiles the item list of a SELECT into an object (or the VALUE expression) in `target`.
 * row >= 0: inside a nested SELECT, `*` is the element in r[row]. */
static int items(fstate *fs, const sql_select *s, int target, int row) {
    if (s->value)
        return expr(fs, s->items[0].expr, target);
    int has_star = 0;
    for (uint32_t i = 0; i < s->nitems; i++)
        has_star |= s->items[i].expr == NULL;
    if (has_star && s->nitems == 1) { /* SELECT *: the payload (or element) as it is */
        if (row >= 0)
            emit(fs, SQL_OP_MOVE, target, row, 0);
        else
            emit(fs, SQL_OP_PAYLOAD, target, 0, 0);
        return fs->err;
    }
    emit(fs, SQL_OP_NEWOBJ, target, has_star && row < 0, (int)s->nitems);
    int save = fs->nextreg;
    int t = allocreg(fs, 1);
    for (uint32_t i = 0; i < s->nitems && !fs->err; i++) {
        const sql_item *it = &s->items[i];
        if (!it->expr) {
            if (row >= 0)
                emit(fs, SQL_OP_MERGE, target, row, 0);
            else {
                emit(fs, SQL_OP_PAYLOAD, t, 0, 0);
                emit(fs, SQL_OP_MERGE, target, t, 0);
            }
            continue;
        }
        if (expr(fs, it->expr, t))
            break;
        sql_name key = item_key(fs, it, i);
        emit(fs, SQL_OP_SETKEY, target, t, addks(fs, key.s, key.n));
    }
    fs->nextreg = save;
    return fs->err;
}

/* (SELECT [VALUE] items FROM expr [WHERE cond]) over the elements of an array; over an object
 * it runs once and gives a single result instead of an array (AWS's transform examples). */
static NOINLINE int nested_select(fstate *fs, const sql_select *s, int target) {
    int save = fs->nextreg;
    int it = allocreg(fs, 3); /* it: source, it+1: position, it+2: element */
    int res = allocreg(fs, 1);
    if (expr(fs, s->from_expr, it))
        return fs->err;
    emit(fs, SQL_OP_ITERINIT, it, it, res);
    int loop = (int)fs->ncode;
    int jdone = emitjump(fs, SQL_OP_ITERNEXT, it);
    int outer = fs->row;
    fs->row = it + 2;
    int t = allocreg(fs, 1);
    int jskip = -1;
    if (s->where) {
        if (expr(fs, s->where, t))
            return fs->err;
        jskip = emitjump(fs, SQL_OP_JMPIFNOT, t);
    }
    if (items(fs, s, t, it + 2))
        return fs->err;
    emit(fs, SQL_OP_APPEND, res, t, 0);
    int jback = emitjump(fs, SQL_OP_JMP, 0);
    patchto(fs, jback, loop);
    patchto(fs, jskip, loop);
    patch(fs, jdone);
    fs->row = outer;
    emit(fs, SQL_OP_ITEREND, target, it, res);
    fs->nextreg = save;
    return fs->err;
}

/* Compiles e into `target` when it is a payload path (`a`, `a.b.c` at top level): the slot of
 * the shortest prefix the trie has a slot for, then GETF down the rest. Returns 1 if e was a
 * path. Kept out of expr() so that the name buffer is not part of every recursive frame. */
static NOINLINE int read_path(fstate *fs, const sql_node *e, int target) {
    sql_name names[MAX_PATH];
    int np = path_of(fs, e, names);
    if (np <= 0)
        return 0;
    int cur = 0, i = 0;
    for (; i < np; i++) {
        int c = fs->nodes[cur].child;
        while (c >= 0 && !(fs->nodes[c].klen == names[i].n &&
                           memcmp(fs->nodes[c].key, names[i].s, names[i].n) == 0))
            c = fs->nodes[c].next;
        if (c < 0)
            break;
        cur = c;
        if (fs->nodes[cur].slot >= 0) {
            i++;
            break;
        }
    }
    if (fs->nodes[cur].slot < 0) /* only `*` covers it: read from the whole payload */
        i = 0, cur = 0;
    if (cur == 0)
        emit(fs, SQL_OP_PAYLOAD, target, 0, 0);
    else
        emitbx(fs, SQL_OP_SLOT, target, (uint32_t)fs->nodes[cur].slot);
    for (; i < np; i++)
        emit(fs, SQL_OP_GETF, target, target, addks(fs, names[i].s, names[i].n));
    return 1;
}

/* Compiles e into a LOADK when it is a constant expression; 1 if it was. */
static NOINLINE int fold(fstate *fs, const sql_node *e, int target) {
    sql_value kv;
    if (!konst(fs, e, &kv))
        return 0;
    emitbx(fs, SQL_OP_LOADK, target, (uint32_t)addk(fs, kv));
    return 1;
}

/* Recursion: once per level of e's tree (bounded by SQL_MAX_DEPTH); the constructs with more
 * state (calls, CASE, nested SELECT, literals) have their own NOINLINE functions, so that a
 * chain of operators recurses through expr()'s small frame alone. */
static int expr(fstate *fs, const sql_node *e, int target) {
    if (fs->err)
        return fs->err;
    if (e->kind != SQL_N_LIT && e->kind != SQL_N_FIELD && fold(fs, e, target))
        return fs->err;
    if (fs->err)
        return fs->err;
    if ((e->kind == SQL_N_FIELD || e->kind == SQL_N_MEMBER) && read_path(fs, e, target))
        return fs->err;
    switch (e->kind) {
    case SQL_N_LIT:
        emitbx(fs, SQL_OP_LOADK, target, (uint32_t)addk(fs, e->v));
        break;
    case SQL_N_FIELD: /* inside a nested SELECT: an attribute of the element */
        emit(fs, SQL_OP_GETF, target, fs->row, addks(fs, e->name.s, e->name.n));
        break;
    case SQL_N_VAR: {
        int v = find_var(fs, e->name);
        if (v < 0)
            return fail(fs, SQL_E_SEMANTIC, e->off, e->len, "variable '@%.*s' is not defined",
                        (int)e->name.n, e->name.s);
        emit(fs, SQL_OP_MOVE, target, v, 0);
        break;
    }
    case SQL_N_STAR:
        if (fs->row >= 0)
            emit(fs, SQL_OP_MOVE, target, fs->row, 0);
        else
            emit(fs, SQL_OP_PAYLOAD, target, 0, 0);
        break;
    case SQL_N_MEMBER:
        if (expr(fs, e->kids[0], target))
            return fs->err;
        emit(fs, SQL_OP_GETF, target, target, addks(fs, e->name.s, e->name.n));
        break;
    case SQL_N_INDEX: {
        int save = fs->nextreg;
        if (expr(fs, e->kids[0], target))
            return fs->err;
        int t = allocreg(fs, 1);
        if (expr(fs, e->kids[1], t))
            return fs->err;
        emit(fs, SQL_OP_GETI, target, target, t);
        fs->nextreg = save;
        break;
    }
    case SQL_N_UNARY:
        if (expr(fs, e->kids[0], target))
            return fs->err;
        emit(fs, e->op == SQL_U_NOT ? SQL_OP_NOT : SQL_OP_NEG, target, target, 0);
        break;
    case SQL_N_BINARY: {
        int save = fs->nextreg;
        if (expr(fs, e->kids[0], target))
            return fs->err;
        int t = allocreg(fs, 1);
        if (expr(fs, e->kids[1], t))
            return fs->err;
        emit(fs, (uint8_t)(SQL_OP_ADD + e->op), target, target, t); /* see vm.c */
        fs->nextreg = save;
        break;
    }
    case SQL_N_CALL:
        return call(fs, e, target);
    case SQL_N_CAST:
        return cast_expr(fs, e, target);
    case SQL_N_CASE:
        return case_expr(fs, e, target);
    case SQL_N_ARRAY:
    case SQL_N_OBJECT:
        return literal(fs, e, target);
    case SQL_N_SELECT:
        return nested_select(fs, e->sel, target);
    default:
        return fail(fs, SQL_E_SEMANTIC, e->off, e->len, "unsupported expression");
    }
    return fs->err;
}

/* }====== */

/* {====== statements and templates */

static int statement(fstate *fs, const sql_stmt *st) {
    const sql_select *s = st->sel;
    fs->p->main_entry = fs->ncode;
    for (uint32_t i = 0; i < st->nsets; i++) {
        if (expr(fs, st->sets[i].expr, (int)i))
            return fs->err;
    }
    fs->nextreg = fs->nvars;
    int jnofire = -1;
    if (s->where) {
        int w = allocreg(fs, 1);
        if (expr(fs, s->where, w))
            return fs->err;
        jnofire = emitjump(fs, SQL_OP_JMPIFNOT, w);
        fs->nextreg = fs->nvars;
    }
    int out = allocreg(fs, 1);
    if (items(fs, s, out, -1))
        return fs->err;
    emit(fs, SQL_OP_RET, out, 0, 0);
    if (jnofire >= 0) {
        patch(fs, jnofire);
        emit(fs, SQL_OP_NOFIRE, 0, 0, 0);
    }
    return fs->err;
}

static int template_code(fstate *fs, sql_tpl_ast *ta, sql_tpl *t) {
    t->parts = sql__arena_alloc(fs->keep, sizeof(sql_tpl_part) * (ta->nsegs + 1));
    t->expr_parts = sql__arena_alloc(fs->keep, sizeof(int32_t) * (ta->nsegs + 1));
    if (!t->parts || !t->expr_parts)
        return nomem(fs);
    t->nparts = ta->nsegs;
    t->nexprs = 0;
    for (uint32_t i = 0; i < ta->nsegs; i++) {
        sql_tpl_part *pt = &t->parts[i];
        if (!ta->segs[i].expr) {
            pt->text = sql__arena_strdup(fs->keep, ta->segs[i].text.s, ta->segs[i].text.n);
            pt->len = ta->segs[i].text.n;
            if (!pt->text)
                return nomem(fs);
            pt->entry = -1;
            continue;
        }
        pt->text = NULL;
        pt->len = 0;
        pt->entry = (int32_t)fs->ncode;
        fs->nextreg = fs->nvars;
        int r = allocreg(fs, 1);
        if (expr(fs, ta->segs[i].expr, r))
            return fs->err;
        emit(fs, SQL_OP_RET, r, 0, 0);
        t->expr_parts[t->nexprs++] = (int32_t)i;
    }
    return fs->err;
}

static int check_sets(fstate *fs, const sql_stmt *st) {
    for (uint32_t i = 0; i < st->nsets; i++) {
        if (fs->nvars >= (int)(sizeof fs->vars / sizeof fs->vars[0]))
            return fail(fs, SQL_E_LIMIT, st->sets[i].off, st->sets[i].len, "too many variables");
        /* variables become visible in order: SET @b = @a + 1 may use an earlier @a */
        fs->vars[fs->nvars++] = st->sets[i].name;
    }
    return 0;
}

static void *copy_out(fstate *fs, const void *src, size_t n) {
    void *d = sql__arena_alloc(fs->keep, n ? n : 1);
    if (d && n)
        memcpy(d, src, n);
    return d;
}

int sql_compile(const char *text, size_t n, const sql_compile_opts *opts, sql_program **out,
                sql_diag *diag) {
    sql_diag dummy;
    if (!diag)
        diag = &dummy;
    memset(diag, 0, sizeof *diag);
    diag->where = -1;
    *out = NULL;
    sql_program *p = calloc(1, sizeof *p);
    if (!p) {
        diag->code = SQL_E_NOMEM;
        snprintf(diag->msg, sizeof diag->msg, "out of memory");
        return SQL_E_NOMEM;
    }
    fstate fs;
    memset(&fs, 0, sizeof fs);
    fs.p = p;
    fs.d = diag;
    fs.where = -1;
    fs.row = -1;
    p->version = opts && opts->version ? opts->version : SQL_V2016_03_23;
    p->root_slot = -1;
    sql__arena_init(&fs.cctx.arena, 0);
    fs.cctx.arena.chunk = 4096;
    sql__arena_init(&p->arena, 0);
    p->arena.chunk = 512; /* programs are small, and 10 k rules must fit in little memory */
    fs.keep = &p->arena;
    fs.cctx.version = p->version;
    sql__buf_init(&fs.cctx.scratch);
    int rc = 0;
    size_t ntpl = opts ? opts->ntemplates : 0;
    sql_tpl_ast **tasts = calloc(ntpl + 1, sizeof *tasts);
    const char **ttexts = calloc(ntpl + 1, sizeof *ttexts);
    size_t *tlens = calloc(ntpl + 1, sizeof *tlens);
    if (!tasts || !ttexts || !tlens) {
        rc = nomem(&fs);
        goto out;
    }
    char *src = sql__arena_strdup(&fs.cctx.arena, text, n); /* AST spans point into it */
    if (!src) {
        rc = nomem(&fs);
        goto out;
    }
    fs.text = src;
    fs.n = n;
    sql_stmt *st = NULL;
    rc = sql__parse(&fs.cctx, src, n, &st, diag);
    if (rc)
        goto out;
    const sql_select *s = st->sel;
    p->filter = sql__arena_strdup(fs.keep, s->from.s ? s->from.s : "", s->from.n);
    p->filter_len = s->from.n;
    if (s->from.n || s->from_off) {
        char msg[160];
        if (sql_topic_filter_check(s->from.s, s->from.n, msg, sizeof msg) != SQL_OK) {
            rc = fail(&fs, SQL_E_SEMANTIC, s->from_off, s->from_len, "%s", msg);
            goto out;
        }
    }
    for (size_t i = 0; i < ntpl; i++) {
        size_t tl = opts->template_lens ? opts->template_lens[i] : strlen(opts->templates[i]);
        ttexts[i] = sql__arena_strdup(&fs.cctx.arena, opts->templates[i], tl);
        tlens[i] = tl;
        if (!ttexts[i]) {
            rc = nomem(&fs);
            goto out;
        }
        rc = sql__parse_template(&fs.cctx, ttexts[i], tl, st, &tasts[i], diag);
        if (rc) {
            diag->where = (int)i;
            goto out;
        }
    }
    if ((rc = check_sets(&fs, st)))
        goto out;
    /* pass 1 */
    if (newnode(&fs, NULL, 0) < 0) {
        rc = fs.err;
        goto out;
    }
    for (uint32_t i = 0; i < st->nsets; i++)
        collect(&fs, st->sets[i].expr);
    if (s->where)
        collect(&fs, s->where);
    for (uint32_t i = 0; i < s->nitems; i++) {
        if (s->items[i].expr)
            collect(&fs, s->items[i].expr);
        else
            fs.nodes[0].want = 1;
    }
    for (size_t i = 0; i < ntpl; i++)
        for (uint32_t j = 0; j < tasts[i]->nsegs; j++)
            collect(&fs, tasts[i]->segs[j].expr);
    if (fs.err || (rc = freeze_paths(&fs))) {
        rc = fs.err ? fs.err : rc;
        goto out;
    }
    /* pass 2: the statement, then each template against the same registers */
    fs.nextreg = fs.maxreg = fs.nvars;
    if ((rc = statement(&fs, st)))
        goto out;
    p->ntpls = (uint32_t)ntpl;
    p->tpls = sql__arena_alloc(fs.keep, sizeof(sql_tpl) * (ntpl + 1));
    if (!p->tpls) {
        rc = nomem(&fs);
        goto out;
    }
    for (size_t i = 0; i < ntpl; i++) {
        fs.text = ttexts[i];
        fs.n = tlens[i];
        fs.where = (int)i;
        if ((rc = template_code(&fs, tasts[i], &p->tpls[i])))
            goto out;
    }
    p->code = copy_out(&fs, fs.code, sizeof(sql_insn) * fs.ncode);
    p->ncode = fs.ncode;
    p->k = copy_out(&fs, fs.k, sizeof(sql_value) * fs.nk);
    p->nk = fs.nk;
    p->calls = copy_out(&fs, fs.calls, sizeof(sql_callsite) * fs.ncalls);
    p->ncalls = fs.ncalls;
    p->nregs = (uint32_t)fs.maxreg + 1;
    if (!p->code || !p->k || !p->calls)
        rc = nomem(&fs);
out:
    free(tasts);
    free(ttexts);
    free(tlens);
    if (!rc && fs.err)
        rc = fs.err;
    if (rc) {
        /* regexes compiled for call sites not yet copied into p */
        for (uint32_t i = 0; i < fs.ncalls; i++)
            if (fs.calls[i].aux && (fs.calls[i].f->flags & SQL_FN_REGEX))
                sql__regex_free(fs.calls[i].aux);
        p->ncalls = 0;
        if (diag->code == 0) {
            diag->code = rc;
            snprintf(diag->msg, sizeof diag->msg, "%s", sql_status_message(rc));
        }
    }
    free(fs.code);
    free(fs.k);
    free(fs.calls);
    free(fs.nodes);
    sql__buf_free(&fs.cctx.scratch);
    sql__buf_free(&fs.cctx.jstack);
    sql__arena_deinit(&fs.cctx.arena); /* the AST and the statement text go */
    if (rc) {
        sql_program_free(p);
        return rc;
    }
    *out = p;
    return SQL_OK;
}

void sql_program_free(sql_program *p) {
    if (!p)
        return;
    for (uint32_t i = 0; i < p->ncalls; i++)
        if (p->calls[i].aux && (p->calls[i].f->flags & SQL_FN_REGEX))
            sql__regex_free(p->calls[i].aux);
    sql__arena_deinit(&p->arena);
    free(p);
}

/* }====== */

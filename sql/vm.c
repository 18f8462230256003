/*
 * vm.c -- the register VM that runs compiled rules.
 *
 * One loop dispatches 8-byte instructions (see sql_insn in sql_int.h) over a register file of
 * sql_values owned by the sql_exec: a switch by default, computed goto when built with
 * SQL_VM_COMPUTED_GOTO (Lua's vmcase / ljumptab.h). Operators call the shared AWS type tables
 * in ops.c, with inline fast paths for the cases that dominate real rules (comparing two
 * numbers of the same shape, as in `WHERE temperature > 50.0`). Payload values arrive through
 * SLOT, which runs the lazy JSON scan the first time any slot is read, so a rule whose WHERE
 * fails on topic() never touches the payload.
 *
 * Objects and arrays under construction (SELECT output, literals, nested SELECT results) are
 * built in place in the arena: NEWOBJ/NEWARR reserve room, SETKEY/APPEND/MERGE fill it and grow
 * it by doubling when needed; the capacity is kept in the value's `e` field until the VM hands
 * the value on, and nothing reads `e` of a container.
 */
#include "sql_int.h"

#include <string.h>

const sql_opinfo sql__opinfo[SQL_OP_COUNT_] = {
#define OUT_A 0x01u
#define IN_A 0x02u
#define IN_B 0x04u
#define IN_C 0x08u
#define KC 0x10u
#define JUMP 0x20u
#define OP(name, fmt, flags, syn) [SQL_OP_##name] = {#name, #fmt, syn, flags},
#include "opcodes.def"
#undef OP
};
_Static_assert(SQL_OP_COUNT_ == 37, "opcodes.def changed: update the disassembler if needed");
/* ADD..OR follow the order of SQL_BIN_*, so an operator's opcode is SQL_OP_ADD + its SQL_BIN_. */
_Static_assert(SQL_OP_OR - SQL_OP_ADD == SQL_BIN_OR && SQL_OP_GE - SQL_OP_ADD == SQL_BIN_GE &&
                   SQL_OP_EQ - SQL_OP_ADD == SQL_BIN_EQ && SQL_OP_MOD - SQL_OP_ADD == SQL_BIN_MOD,
               "opcodes.def and SQL_BIN_* disagree");

/* Makes sure the payload has been scanned for the program's paths. */
static int scan(sql_exec *x, const sql_program *p) {
    if (x->scanned)
        return 0;
    x->scanned = 1;
    if (x->sh.k >= 0 && sql__shared_fill(x) == 0) { /* read once for many programs */
        x->is_json = 1;
        return 0;
    }
    for (uint32_t i = 0; i < p->nslots; i++)
        x->slots[i] = SQL_UNDEF;
    const sql_message *m = x->ctx.msg;
    const sql_pathset ps = {p->paths, p->npaths, p->nslots, NULL};
    int rc = m->payload_len ? sql__json_scan(&x->ctx, m->payload, m->payload_len, &ps, x->slots)
                            : -1;
    if (rc == 0) {
        x->is_json = 1;
        return 0;
    }
    if (rc != -1)
        return rc;
    /* not JSON: every path is Undefined and `*` is the raw bytes */
    x->is_json = 0;
    for (uint32_t i = 0; i < p->nslots; i++)
        x->slots[i] = SQL_UNDEF;
    if (p->root_slot >= 0)
        x->slots[p->root_slot] = (sql_value){
            .t = SQL_T_BIN, .n = (uint32_t)m->payload_len, .u.s = m->payload};
    return 0;
}

/* Makes room for `need` elements (elt bytes each) in the array or object v under
 * construction, doubling its capacity (kept in v->e) as needed. */
static int grow(sql_ctx *ctx, sql_value *v, uint32_t need, size_t elt) {
    uint32_t cap = (uint16_t)v->e;
    if (need <= cap)
        return 0;
    uint32_t nc = cap ? cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    if (nc > 65535)
        nc = need > 65535 ? need : 65535;
    void *p = sql__alloc(ctx, elt * nc);
    if (!p)
        return -1;
    if (v->n)
        memcpy(p, v->t == SQL_T_OBJ ? (const void *)v->u.o : (const void *)v->u.a, elt * v->n);
    if (v->t == SQL_T_OBJ)
        v->u.o = p;
    else
        v->u.a = p;
    v->e = (int16_t)(uint16_t)(nc > 65535 ? 65535 : nc);
    return 0;
}

static int grow_obj(sql_ctx *ctx, sql_value *o, uint32_t need) {
    return grow(ctx, o, need, sizeof(sql_member));
}

static int grow_arr(sql_ctx *ctx, sql_value *a, uint32_t need) {
    return grow(ctx, a, need, sizeof(sql_value));
}

/* obj[k] = v, replacing an existing key in place (its position is kept). */
static int setkey(sql_ctx *ctx, sql_value *o, const char *k, uint32_t klen, uint32_t kflags,
                  const sql_value *v) {
    sql_member *ms = (sql_member *)o->u.o;
    for (uint32_t i = 0; i < o->n; i++) {
        if (ms[i].klen == klen && memcmp(ms[i].k, k, klen) == 0) {
            ms[i].v = *v;
            return 0;
        }
    }
    if (grow_obj(ctx, o, o->n + 1))
        return -1;
    ms = (sql_member *)o->u.o;
    ms[o->n] = (sql_member){k, klen, kflags, *v};
    o->n++;
    return 0;
}

static int merge(sql_ctx *ctx, sql_value *o, const sql_value *src) {
    if (src->t != SQL_T_OBJ || src->n == 0) /* an empty object may have no member array */
        return 0;
    if (o->n == 0) { /* the common `SELECT *, f() AS x`: payload keys are already unique */
        if (grow_obj(ctx, o, src->n))
            return -1;
        memcpy((sql_member *)o->u.o, src->u.o, sizeof(sql_member) * src->n);
        o->n = src->n;
        return 0;
    }
    for (uint32_t i = 0; i < src->n; i++) {
        const sql_member *m = &src->u.o[i];
        if (setkey(ctx, o, m->k, m->klen, m->kflags, &m->v))
            return -1;
    }
    return 0;
}

static sql_value index_of(sql_ctx *ctx, const sql_value *c, const sql_value *i) {
    if (c->t == SQL_T_ARR) {
        int64_t k;
        if (i->t != SQL_T_INT || sql__num_to_i64(i, SQL_ROUND_TRUNC, &k) != 0)
            return SQL_UNDEF;
        if (k < 0 || (uint64_t)k >= c->n)
            return SQL_UNDEF;
        return c->u.a[k];
    }
    if (c->t == SQL_T_OBJ && i->t == SQL_T_STR) {
        const sql_value *v = sql__obj_get(c, i->u.s, i->n);
        return v ? *v : SQL_UNDEF;
    }
    return SQL_UNDEF;
}

/* Inline fast path for comparisons of two INTs or two small DECs with one exponent. Returns
 * 1 and sets *r when it applies. */
static inline int fastcmp(int op, const sql_value *a, const sql_value *b, sql_value *r) {
    if (a->t != b->t || (a->t != SQL_T_INT && a->t != SQL_T_DEC) || ((a->f | b->f) & SQL_F_BIG) ||
        a->e != b->e)
        return 0;
    int64_t x = a->u.i, y = b->u.i;
    int v;
    switch (op) {
    case SQL_OP_LT: v = x < y; break;
    case SQL_OP_LE: v = x <= y; break;
    case SQL_OP_GT: v = x > y; break;
    case SQL_OP_GE: v = x >= y; break;
    case SQL_OP_EQ: v = x == y; break;
    default: v = x != y; break;
    }
    *r = sql__bool(v);
    return 1;
}

#if defined(SQL_VM_COMPUTED_GOTO)
#define VM_DISPATCH                                                                        \
    i = pc++;                                                                              \
    goto *(i->op < SQL_OP_COUNT_ ? jump[i->op] : &&L_default);
#define VM_CASE(name) L_##name:
#define VM_NEXT VM_DISPATCH
#define VM_DEFAULT L_default:
#else
#define VM_DISPATCH switch ((i = pc++)->op)
#define VM_CASE(name) case SQL_OP_##name:
#define VM_NEXT continue
#define VM_DEFAULT default:
#endif

int sql__vm_run(sql_exec *x, const sql_program *p, uint32_t entry, sql_value *result) {
    sql_ctx *ctx = &x->ctx;
    sql_value *r = x->regs;
    const sql_value *K = p->k;
    const sql_insn *pc = p->code + entry, *i;
    int rc;
    ctx->run++; /* call sites count their uses per run (newuuid() with a seed) */
#if defined(SQL_VM_COMPUTED_GOTO)
    static const void *const jump[SQL_OP_COUNT_] = {
#define OP(name, fmt, flags, syn) [SQL_OP_##name] = &&L_##name,
#include "opcodes.def"
#undef OP
    };
    VM_DISPATCH;
#else
    for (;;) {
        VM_DISPATCH {
#endif
    /* Opcode: LOADK a bx -- load constant K[bx]. */
    VM_CASE(LOADK) {
        r[i->a] = K[i->bx];
        VM_NEXT;
    }
    /* Opcode: LOADUNDEF a -- r[a] = Undefined. */
    VM_CASE(LOADUNDEF) {
        r[i->a] = SQL_UNDEF;
        VM_NEXT;
    }
    /* Opcode: MOVE a b -- copy a register. */
    VM_CASE(MOVE) {
        r[i->a] = r[i->b];
        VM_NEXT;
    }
    /* Opcode: SLOT a bx -- the value of payload path slot bx (first use scans the payload). */
    VM_CASE(SLOT) {
        if (!x->scanned && (rc = scan(x, p)) != 0)
            goto vm_error;
        r[i->a] = x->slots[i->bx];
        VM_NEXT;
    }
    /* Opcode: PAYLOAD a -- the whole payload: parsed JSON, or raw bytes when not JSON. */
    VM_CASE(PAYLOAD) {
        if (!x->scanned && (rc = scan(x, p)) != 0)
            goto vm_error;
        r[i->a] = p->root_slot >= 0 ? x->slots[p->root_slot] : SQL_UNDEF;
        VM_NEXT;
    }
    /* Opcode: RAW a -- the exact payload bytes, JSON or not (encode(*, 'base64')). */
    VM_CASE(RAW) {
        const sql_message *m = ctx->msg;
        r[i->a] = (sql_value){.t = SQL_T_BIN, .n = (uint32_t)m->payload_len, .u.s = m->payload};
        VM_NEXT;
    }
    /* Opcode: GETF a b c -- member K[c] of object r[b]; Undefined when absent or not an object. */
    VM_CASE(GETF) {
        const sql_value *o = &r[i->b];
        const sql_value *v =
            o->t == SQL_T_OBJ ? sql__obj_get(o, K[i->c].u.s, K[i->c].n) : NULL;
        r[i->a] = v ? *v : SQL_UNDEF;
        VM_NEXT;
    }
    /* Opcode: GETI a b c -- r[b][r[c]]: 0-based array element, or object member by string. */
    VM_CASE(GETI) {
        r[i->a] = index_of(ctx, &r[i->b], &r[i->c]);
        VM_NEXT;
    }
    /* Opcode: ADD a b c -- r[b] + r[c]; two small Ints add inline, the rest by ops.c. */
    VM_CASE(ADD) {
        int64_t sum;
        if (r[i->b].t == SQL_T_INT && r[i->c].t == SQL_T_INT &&
            !((r[i->b].f | r[i->c].f) & SQL_F_BIG) &&
            !__builtin_add_overflow(r[i->b].u.i, r[i->c].u.i, &sum)) {
            r[i->a] = sql__int(sum);
            VM_NEXT;
        }
        r[i->a] = sql__op_binary(ctx, SQL_BIN_ADD, &r[i->b], &r[i->c]);
        if (ctx->err)
            goto vm_ctx_error;
        VM_NEXT;
    }
    /* Opcode: SUB..MOD, AND, OR a b c -- AWS's operator tables (ops.c). Both sides of AND/OR
     * are evaluated; `false AND missing` is false by the value table, not by skipping. */
    VM_CASE(SUB)
    VM_CASE(MUL)
    VM_CASE(DIV)
    VM_CASE(MOD)
    VM_CASE(AND)
    VM_CASE(OR) {
        r[i->a] = sql__op_binary(ctx, i->op - SQL_OP_ADD, &r[i->b], &r[i->c]);
        if (ctx->err)
            goto vm_ctx_error;
        VM_NEXT;
    }
    /* Opcode: EQ..GE a b c -- comparisons; numbers of one shape take the inline path. */
    VM_CASE(EQ)
    VM_CASE(NE)
    VM_CASE(LT)
    VM_CASE(LE)
    VM_CASE(GT)
    VM_CASE(GE) {
        if (!fastcmp(i->op, &r[i->b], &r[i->c], &r[i->a]))
            r[i->a] = sql__op_binary(ctx, i->op - SQL_OP_ADD, &r[i->b], &r[i->c]);
        VM_NEXT;
    }
    VM_CASE(NOT) {
        r[i->a] = sql__op_not(ctx, &r[i->b]);
        VM_NEXT;
    }
    VM_CASE(NEG) {
        r[i->a] = sql__op_neg(ctx, &r[i->b]);
        if (ctx->err)
            goto vm_ctx_error;
        VM_NEXT;
    }
    /* Opcode: CALL a b c -- builtin F[b] on the c arguments in r[a+1..]; result in r[a]. */
    VM_CASE(CALL) {
        const sql_callsite *cs = &p->calls[i->b];
        sql_value out = SQL_UNDEF;
        ctx->aux = cs->aux;
        ctx->site = i->b;
        cs->f->fn(ctx, i->c, &r[i->a + 1], &out);
        ctx->aux = NULL;
        if (ctx->err)
            goto vm_ctx_error;
        r[i->a] = out;
        VM_NEXT;
    }
    /* Opcode: JMP j -- unconditional jump. */
    VM_CASE(JMP) {
        pc += i->j;
        VM_NEXT;
    }
    /* Opcode: JMPIFNOT a j -- jump unless r[a] is Boolean true (WHERE, CASE WHEN). */
    VM_CASE(JMPIFNOT) {
        if (!(r[i->a].t == SQL_T_BOOL && r[i->a].u.b))
            pc += i->j;
        VM_NEXT;
    }
    /* Opcode: JMPIFUNDEF a j -- jump when r[a] is Undefined (CASE subject). */
    VM_CASE(JMPIFUNDEF) {
        if (r[i->a].t == SQL_T_UNDEF)
            pc += i->j;
        VM_NEXT;
    }
    /* Opcode: NEWOBJ a b c -- empty object with room for c members, plus the payload's when b. */
    VM_CASE(NEWOBJ) {
        uint32_t cap = i->c;
        if (i->b) {
            if (!x->scanned && (rc = scan(x, p)) != 0)
                goto vm_error;
            if (p->root_slot >= 0 && x->slots[p->root_slot].t == SQL_T_OBJ)
                cap += x->slots[p->root_slot].n;
        }
        sql_value o = {.t = SQL_T_OBJ};
        if (cap && grow_obj(ctx, &o, cap))
            goto vm_ctx_error;
        r[i->a] = o;
        VM_NEXT;
    }
    /* Opcode: SETKEY a b c -- r[a].K[c] = r[b]; an Undefined value adds nothing. */
    VM_CASE(SETKEY) {
        if (r[i->b].t != SQL_T_UNDEF &&
            setkey(ctx, &r[i->a], K[i->c].u.s, K[i->c].n, 0, &r[i->b]))
            goto vm_ctx_error;
        VM_NEXT;
    }
    /* Opcode: MERGE a b -- copy the members of object r[b] into r[a] (SELECT *, x). */
    VM_CASE(MERGE) {
        if (merge(ctx, &r[i->a], &r[i->b]))
            goto vm_ctx_error;
        VM_NEXT;
    }
    /* Opcode: NEWARR a c -- empty array with room for c elements. */
    VM_CASE(NEWARR) {
        sql_value a = {.t = SQL_T_ARR};
        if (i->c && grow_arr(ctx, &a, i->c))
            goto vm_ctx_error;
        r[i->a] = a;
        VM_NEXT;
    }
    /* Opcode: APPEND a b -- append r[b] to array r[a] unless it is Undefined. */
    VM_CASE(APPEND) {
        sql_value *a = &r[i->a];
        if (r[i->b].t != SQL_T_UNDEF) {
            if (grow_arr(ctx, a, a->n + 1))
                goto vm_ctx_error;
            ((sql_value *)a->u.a)[a->n++] = r[i->b];
        }
        VM_NEXT;
    }
    /* Opcode: ITERINIT a b c -- start iterating r[b] (array: its elements; object: itself
     * once); r[a+1] holds the position and the mode; r[c] = [] sized for the results. */
    VM_CASE(ITERINIT) {
        sql_value src = r[i->b];
        uint32_t mode = src.t == SQL_T_ARR ? 1 : src.t == SQL_T_OBJ ? 2 : 0;
        r[i->a] = src;
        r[i->a + 1] = (sql_value){.t = SQL_T_INT, .n = mode, .u.i = 0};
        sql_value res = {.t = SQL_T_ARR};
        uint32_t cap = mode == 1 ? src.n : 1;
        if (cap && grow_arr(ctx, &res, cap))
            goto vm_ctx_error;
        r[i->c] = res;
        VM_NEXT;
    }
    /* Opcode: ITERNEXT a j -- r[a+2] = next element; jump when done. */
    VM_CASE(ITERNEXT) {
        sql_value *st = &r[i->a + 1];
        int64_t k = st->u.i;
        if (st->n == 1 && k < (int64_t)r[i->a].n) {
            r[i->a + 2] = r[i->a].u.a[k];
            st->u.i = k + 1;
        } else if (st->n == 2 && k == 0) {
            r[i->a + 2] = r[i->a];
            st->u.i = 1;
        } else {
            pc += i->j;
        }
        VM_NEXT;
    }
    /* Opcode: ITEREND a b c -- the nested SELECT's value: the array r[c], or over an object its
     * single result, or Undefined when the source was neither. */
    VM_CASE(ITEREND) {
        uint32_t mode = r[i->b + 1].n;
        sql_value res = r[i->c];
        res.e = 0;
        if (mode == 1)
            r[i->a] = res;
        else if (mode == 2 && res.n)
            r[i->a] = res.u.a[0];
        else
            r[i->a] = SQL_UNDEF;
        VM_NEXT;
    }
    /* Opcode: RET a -- the rule fires with output r[a]. */
    VM_CASE(RET) {
        *result = r[i->a];
        return SQL_FIRED;
    }
    /* Opcode: NOFIRE -- WHERE was not true. */
    VM_CASE(NOFIRE) {
        return SQL_NOT_FIRED;
    }
    VM_DEFAULT {
        sql_ctx_error(ctx, SQL_E_RUNTIME, "bad opcode %u", (unsigned)i->op);
        goto vm_ctx_error;
    }
#if !defined(SQL_VM_COMPUTED_GOTO)
        }
    }
#endif
vm_ctx_error:
    rc = ctx->err ? ctx->err : SQL_E_RUNTIME;
vm_error:
    if (!ctx->err)
        sql_ctx_error(ctx, rc, "%s", sql_status_message(rc));
    return rc;
}

/*
 * exec.c -- running programs on messages: the public sql_exec API, templates, and the
 * disassembler.
 *
 * An sql_exec holds everything one thread needs to evaluate any program: the arena (rewound
 * per message), the register file and payload slots (grown to the largest program seen), and
 * the output buffers. sql_exec_run() sets up the message view (the topic as topic() sees it,
 * the frozen clock), runs the main entry, and serializes the result once into `out`.
 * Templates run afterwards on the same registers, so they see the SET variables and the same
 * scanned payload without reading it again.
 */
#include "sql_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Per-evaluation memory cap: generous for a 128 KB payload, bounded for hostile rules. */
#define EXEC_ARENA_LIMIT (64u * 1024u * 1024u)

int sql_version_parse(const char *s, sql_version *out) {
    if (!s)
        return SQL_E_ARG;
    if (!strcmp(s, "2016-03-23") || !strcmp(s, "beta")) {
        *out = SQL_V2016_03_23;
        return SQL_OK;
    }
    if (!strcmp(s, "2015-10-08")) {
        *out = SQL_V2015_10_08;
        return SQL_OK;
    }
    return SQL_E_ARG;
}

const char *sql_version_name(sql_version v) {
    return v == SQL_V2015_10_08 ? "2015-10-08" : "2016-03-23";
}

const char *sql_program_topic_filter(const sql_program *p) { return p->filter; }
sql_version sql_program_version(const sql_program *p) { return p->version; }
size_t sql_program_ntemplates(const sql_program *p) { return p->ntpls; }

size_t sql_program_template_nexprs(const sql_program *p, size_t t) {
    return t < p->ntpls ? p->tpls[t].nexprs : 0;
}

sql_exec *sql_exec_new(void) {
    sql_exec *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    sql__arena_init(&x->ctx.arena, EXEC_ARENA_LIMIT);
    sql__buf_init(&x->ctx.scratch);
    sql__buf_init(&x->out);
    sql__buf_init(&x->tout);
    x->sh.k = -1;
    return x;
}

void sql_exec_free(sql_exec *x) {
    if (!x)
        return;
    sql__regex_ctx_free(&x->ctx);
    sql__arena_deinit(&x->ctx.arena);
    sql__buf_free(&x->ctx.scratch);
    sql__buf_free(&x->ctx.jstack);
    sql__buf_free(&x->out);
    sql__buf_free(&x->tout);
    free(x->regs);
    free(x->slots);
    free(x->uses);
    sql__shared_deinit(&x->sh);
    free(x);
}

const char *sql_exec_errmsg(const sql_exec *x) { return x->ctx.errmsg; }

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int reserve(sql_exec *x, const sql_program *p) {
    if (p->nregs > x->nregs) {
        sql_value *r = realloc(x->regs, sizeof(sql_value) * p->nregs);
        if (!r)
            return -1;
        x->regs = r;
        x->nregs = p->nregs;
    }
    if (p->nslots > x->nslots) {
        sql_value *s = realloc(x->slots, sizeof(sql_value) * p->nslots);
        if (!s)
            return -1;
        x->slots = s;
        x->nslots = p->nslots;
    }
    if (p->ncalls > x->nuses) {
        sql_site_use *u = realloc(x->uses, sizeof(sql_site_use) * p->ncalls);
        if (!u)
            return -1;
        /* a new entry's run 0 is never current: sql__vm_run() counts runs from 1 */
        memset(u + x->nuses, 0, sizeof(sql_site_use) * (p->ncalls - x->nuses));
        x->uses = u;
        x->nuses = p->ncalls;
        x->ctx.uses = u;
    }
    return 0;
}

/* Basic Ingest: a message published to $aws/rules/<rule_name>/<rest> reaches rule <rule_name>
 * directly, and topic() sees only <rest>. Returns 1 when m is such a message for its rule. */
static int basic_ingest(const sql_message *m, const char **topic, size_t *len) {
    static const char pfx[] = "$aws/rules/";
    size_t np = sizeof pfx - 1;
    if (!m->rule_name || m->topic_len < np || memcmp(m->topic, pfx, np) != 0)
        return 0;
    size_t rn = strlen(m->rule_name);
    if (m->topic_len < np + rn || memcmp(m->topic + np, m->rule_name, rn) != 0)
        return 0;
    size_t rest = np + rn;
    if (m->topic_len == rest) {
        *topic = m->topic + rest;
        *len = 0;
        return 1;
    }
    if (m->topic[rest] != '/')
        return 0;
    *topic = m->topic + rest + 1;
    *len = m->topic_len - rest - 1;
    return 1;
}

/* Sets x up to run p on m; k >= 0: p is program k of the shared scan begun on x. */
static int start(sql_exec *x, const sql_program *p, const sql_message *m, int32_t k) {
    sql_ctx *c = &x->ctx;
    sql__arena_reset(&c->arena);
    c->err = 0;
    c->errmsg[0] = '\0';
    c->version = p->version;
    c->prog = p;
    c->msg = m;
    c->aux = NULL;
    c->now_ms = m->timestamp_ms ? m->timestamp_ms : k >= 0 ? x->sh.now_ms : now_ms();
    x->sh.k = k;
    if (!basic_ingest(m, &c->topic, &c->topic_len)) {
        c->topic = m->topic;
        c->topic_len = m->topic_len;
    }
    x->prog = p;
    x->scanned = 0;
    x->is_json = 0;
    x->fired = 0;
    if (reserve(x, p))
        return sql_ctx_error(c, SQL_E_NOMEM, "out of memory");
    if (m->payload_len > SQL_MAX_PAYLOAD)
        return sql_ctx_error(c, SQL_E_LIMIT, "payload of %zu bytes exceeds the %u byte limit",
                             m->payload_len, SQL_MAX_PAYLOAD);
    return 0;
}

/* A value too deep to serialize (the compile-time limits keep values shallower; see
 * SQL_MAX_VALUE_DEPTH). */
static int too_deep(sql_exec *x) {
    return sql_ctx_error(&x->ctx, SQL_E_LIMIT, "a value is nested more than %d levels deep",
                         SQL_MAX_VALUE_DEPTH);
}

int sql__exec_run(sql_exec *x, const sql_program *p, const sql_message *m, int32_t k,
                  sql_output *out) {
    int rc = start(x, p, m, k);
    if (rc)
        return rc;
    sql_value v;
    rc = sql__vm_run(x, p, p->main_entry, &v);
    if (rc != SQL_FIRED)
        return rc;
    x->fired = 1;
    sql__buf_reset(&x->out);
    out->is_binary = 0;
    if (v.t == SQL_T_BIN) {
        sql__buf_put(&x->out, v.u.s, v.n);
        out->is_binary = 1;
    } else if (v.t != SQL_T_UNDEF && sql__json_write(&x->out, &v) == SQL_E_LIMIT) {
        return too_deep(x);
    }
    if (x->out.oom)
        return sql_ctx_error(&x->ctx, SQL_E_NOMEM, "out of memory");
    out->data = x->out.p ? x->out.p : "";
    out->len = x->out.len;
    return SQL_FIRED;
}

int sql_exec_run_matched(sql_exec *x, const sql_program *p, const sql_message *m,
                         sql_output *out) {
    return sql__exec_run(x, p, m, -1, out);
}

int sql_exec_run(sql_exec *x, const sql_program *p, const sql_message *m, sql_output *out) {
    const char *t;
    size_t tl;
    if (!basic_ingest(m, &t, &tl) &&
        !sql_topic_matches(p->filter, p->filter_len, m->topic, m->topic_len)) {
        x->fired = 0;
        return SQL_NOT_FIRED;
    }
    return sql_exec_run_matched(x, p, m, out);
}

/* Appends the text form of a template value: strings bare, Undefined as nothing, other
 * values as their JSON text. Returns 0 or SQL_E_LIMIT. */
static int put_text(sql_buf *b, const sql_value *v) {
    switch (v->t) {
    case SQL_T_UNDEF: return 0;
    case SQL_T_STR:
    case SQL_T_BIN: sql__buf_put(b, v->u.s, v->n); return 0;
    default: return sql__json_write(b, v) == SQL_E_LIMIT ? SQL_E_LIMIT : 0;
    }
}

static int run_expr(sql_exec *x, int32_t entry, sql_value *v) {
    int rc = sql__vm_run(x, x->prog, (uint32_t)entry, v);
    return rc == SQL_FIRED ? 0 : rc;
}

int sql_exec_template(sql_exec *x, size_t t, sql_output *out) {
    if (!x->fired || !x->prog || t >= x->prog->ntpls)
        return SQL_E_ARG;
    const sql_tpl *tp = &x->prog->tpls[t];
    sql__buf_reset(&x->tout);
    for (uint32_t i = 0; i < tp->nparts; i++) {
        const sql_tpl_part *pt = &tp->parts[i];
        if (pt->entry < 0) {
            sql__buf_put(&x->tout, pt->text, pt->len);
            continue;
        }
        sql_value v;
        int rc = run_expr(x, pt->entry, &v);
        if (rc)
            return rc;
        if (put_text(&x->tout, &v))
            return too_deep(x);
    }
    if (x->tout.oom)
        return sql_ctx_error(&x->ctx, SQL_E_NOMEM, "out of memory");
    out->data = x->tout.p ? x->tout.p : "";
    out->len = x->tout.len;
    out->is_binary = 0;
    return SQL_OK;
}

int sql_exec_template_expr(sql_exec *x, size_t t, size_t k, sql_output *out, int *is_null) {
    if (!x->fired || !x->prog || t >= x->prog->ntpls || k >= x->prog->tpls[t].nexprs)
        return SQL_E_ARG;
    const sql_tpl *tp = &x->prog->tpls[t];
    sql_value v;
    int rc = run_expr(x, tp->parts[tp->expr_parts[k]].entry, &v);
    if (rc)
        return rc;
    sql__buf_reset(&x->tout);
    *is_null = v.t == SQL_T_UNDEF || v.t == SQL_T_NULL;
    if (!*is_null && put_text(&x->tout, &v))
        return too_deep(x);
    out->data = x->tout.p ? x->tout.p : "";
    out->len = x->tout.len;
    out->is_binary = v.t == SQL_T_BIN;
    return SQL_OK;
}

/* {====== disassembler */

static void put_value(sql_buf *b, const sql_value *v) {
    switch (v->t) {
    case SQL_T_UNDEF: sql__buf_printf(b, "undefined"); break;
    case SQL_T_BIN: sql__buf_printf(b, "<%u bytes>", v->n); break;
    case SQL_T_INT:
    case SQL_T_DEC:
        sql__buf_printf(b, "%s ", v->t == SQL_T_INT ? "Int" : "Decimal");
        sql__json_write(b, v);
        break;
    default: sql__json_write(b, v); break;
    }
}

static void put_path(sql_buf *b, const sql_program *p, int nd, const char *prefix) {
    for (; nd >= 0; nd = p->paths[nd].next) {
        const sql_path_node *pn = &p->paths[nd];
        char name[300];
        snprintf(name, sizeof name, "%s%s%.*s", prefix, *prefix ? "." : "", (int)pn->klen,
                 pn->key);
        if (pn->slot >= 0)
            sql__buf_printf(b, "  slot[%d] = %s\n", pn->slot, name);
        put_path(b, p, pn->child, name);
    }
}

char *sql_program_explain(const sql_program *p) {
    sql_buf b;
    sql__buf_init(&b);
    sql__buf_printf(&b, "sql version %s\nfrom '%s'\n", sql_version_name(p->version), p->filter);
    sql__buf_printf(&b, "registers %u, payload slots %u\n", p->nregs, p->nslots);
    if (p->nslots) {
        sql__buf_printf(&b, "payload paths:\n");
        if (p->root_slot >= 0)
            sql__buf_printf(&b, "  slot[%d] = * (whole payload)\n", p->root_slot);
        else
            put_path(&b, p, p->paths[0].child, "");
    }
    if (p->nk) {
        sql__buf_printf(&b, "constants:\n");
        for (uint32_t i = 0; i < p->nk; i++) {
            sql__buf_printf(&b, "  K[%u] = ", i);
            put_value(&b, &p->k[i]);
            sql__buf_putc(&b, '\n');
        }
    }
    if (p->ncalls) {
        sql__buf_printf(&b, "functions:\n");
        for (uint32_t i = 0; i < p->ncalls; i++)
            sql__buf_printf(&b, "  F[%u] = %s%s\n", i, p->calls[i].f->name,
                            p->calls[i].aux ? " (precompiled)" : "");
    }
    sql__buf_printf(&b, "code:\n");
    for (uint32_t pc = 0; pc < p->ncode; pc++) {
        const sql_insn *in = &p->code[pc];
        const sql_opinfo *oi = &sql__opinfo[in->op];
        if (pc == p->main_entry)
            sql__buf_printf(&b, "main:\n");
        for (uint32_t t = 0; t < p->ntpls; t++)
            for (uint32_t k = 0; k < p->tpls[t].nparts; k++)
                if (p->tpls[t].parts[k].entry == (int32_t)pc)
                    sql__buf_printf(&b, "template %u, part %u:\n", t, k);
        sql__buf_printf(&b, "  %4u  %-10s ", pc, oi->name);
        char ops[64];
        if (!strcmp(oi->fmt, "ABx"))
            snprintf(ops, sizeof ops, "%u %u", in->a, in->bx);
        else if (!strcmp(oi->fmt, "AJ"))
            snprintf(ops, sizeof ops, "%u -> %d", in->a, (int)pc + 1 + in->j);
        else if (!strcmp(oi->fmt, "J"))
            snprintf(ops, sizeof ops, "-> %d", (int)pc + 1 + in->j);
        else
            snprintf(ops, sizeof ops, "%u %u %u", in->a, in->b, in->c);
        sql__buf_printf(&b, "%-16s ; %s\n", ops, oi->synopsis);
    }
    if (sql__buf_reserve(&b, 1) != 0) {
        sql__buf_free(&b);
        return NULL;
    }
    b.p[b.len] = '\0';
    return b.p;
}

/* }====== */

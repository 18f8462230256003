/*
 * parser.c -- recursive-descent parser for AWS IoT SQL and substitution templates.
 *
 * One function per production, each headed by its production (Lua's lparser.c); the whole
 * grammar is in sql/README.md. The parser pulls tokens from lexer.c, builds an AST with byte
 * spans in the compile arena, and stops at the first error, whose span and near-token message
 * go into the sql_diag (SQLite keeps the first error too). Version rules that are syntax
 * (object and array literals, nested SELECT, the 2016-only cast types) are checked here, so
 * the error points at the construct.
 *
 * Expressions are parsed by precedence climbing (Lua's subexpr), one call per nesting level
 * instead of one per precedence level, so nested parentheses cost three stack frames each.
 * Precedence, lowest first: OR, AND, NOT, comparisons, + -, * / %, unary -, postfix . [].
 * AWS does not document it; this is standard SQL's order.
 *
 * Depth: every construct that nests (parentheses, calls, CASE, literals, nested SELECT, unary
 * operators, index brackets) passes through subexpr(), whose counter bounds the parser's own
 * recursion by SQL_MAX_DEPTH; and every node records the height of its tree, checked against
 * the same limit when the node is built, so a left-deep chain `a+a+...+a` (which the parser
 * builds in a loop, but the compiler walks recursively) fails at the operator that makes it
 * too deep. Either way the error is an SQL_E_LIMIT diagnostic at the construct that crossed
 * the limit, never a stack overflow.
 */
#include "sql_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_VARS 10
#define MAX_VAR_NAME 64

typedef struct P {
    sql_ctx *c;
    const char *src;
    size_t n;
    sql_lexer lx;
    sql_token tok;  /* current */
    sql_token prev; /* last consumed */
    sql_diag *d;
    int depth;      /* subexpr() calls in progress */
    int err;
    uint32_t nvars; /* SET variables parsed so far, with their expressions' heights */
    struct {
        sql_name name;
        uint32_t height;
    } vars[MAX_VARS];
} P;

/* {====== helpers */

static int perr(P *p, int code, uint32_t off, uint32_t len, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int perr(P *p, int code, uint32_t off, uint32_t len, const char *fmt, ...) {
    if (p->err)
        return p->err;
    p->err = code;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sql__diag_set(p->d, code, p->src, p->n, off, len, "%s", msg);
    return code;
}

static void next(P *p) {
    p->prev = p->tok;
    p->tok = sql__lex_next(&p->lx);
    if (p->tok.kind == SQL_TK_ERROR && !p->err)
        p->err = p->d->code ? p->d->code : SQL_E_SYNTAX;
}

static int is_kw(const P *p, const char *kw) {
    size_t n = strlen(kw);
    return p->tok.kind == SQL_TK_IDENT && p->tok.len == n &&
           strncasecmp(p->src + p->tok.off, kw, n) == 0;
}

static int is_punct(const P *p, const char *s) {
    size_t n = strlen(s);
    return p->tok.kind == SQL_TK_PUNCT && p->tok.len == n &&
           memcmp(p->src + p->tok.off, s, n) == 0;
}

static int accept_kw(P *p, const char *kw) {
    if (!is_kw(p, kw))
        return 0;
    next(p);
    return 1;
}

static int accept_punct(P *p, const char *s) {
    if (!is_punct(p, s))
        return 0;
    next(p);
    return 1;
}

/* "expected WHAT near 'tok'" or "unexpected end of statement, expected WHAT". */
static int expected(P *p, const char *what) {
    if (p->err)
        return p->err;
    if (p->tok.kind == SQL_TK_EOF)
        return perr(p, SQL_E_SYNTAX, p->tok.off, 0, "unexpected end of statement, expected %s",
                    what);
    int len = p->tok.len > 40 ? 40 : (int)p->tok.len;
    return perr(p, SQL_E_SYNTAX, p->tok.off, p->tok.len, "expected %s near '%.*s'", what, len,
                p->src + p->tok.off);
}

static int expect_kw(P *p, const char *kw) {
    if (accept_kw(p, kw))
        return 0;
    return expected(p, kw);
}

static int expect_punct(P *p, const char *s) {
    if (accept_punct(p, s))
        return 0;
    char what[8];
    snprintf(what, sizeof what, "'%s'", s);
    return expected(p, what);
}

static void *node_alloc(P *p, size_t n) {
    void *r = sql__arena_alloc(&p->c->arena, n);
    if (!r)
        perr(p, SQL_E_NOMEM, 0, 0, "out of memory");
    else
        memset(r, 0, n);
    return r;
}

static sql_node *mknode(P *p, int kind, uint32_t off) {
    sql_node *e = node_alloc(p, sizeof *e);
    if (e) {
        e->kind = (uint8_t)kind;
        e->off = off;
        e->height = 1;
    }
    return e;
}

static int too_deep(P *p, uint32_t off, uint32_t len) {
    return perr(p, SQL_E_LIMIT, off, len, "expression is nested too deeply (more than %d levels)",
                SQL_MAX_DEPTH);
}

static uint32_t height_of(const sql_node *e) { return e ? e->height : 0; }

/* Sets e's height from its children, and fails when it passes SQL_MAX_DEPTH: the error points
 * at [off, off + len), the operator or name that adds e's level. Returns e, or NULL. */
static sql_node *grown(P *p, sql_node *e, uint32_t off, uint32_t len) {
    if (!e)
        return NULL;
    uint32_t h = 0;
    for (uint32_t i = 0; i < e->nkids; i++)
        if (height_of(e->kids[i]) > h)
            h = e->kids[i]->height;
    if (e->sel) { /* items and WHERE see the elements of FROM; the result is [{...}, ...] */
        const sql_select *s = e->sel;
        h = height_of(s->from_expr) > height_of(s->where) ? height_of(s->from_expr)
                                                           : height_of(s->where);
        for (uint32_t i = 0; i < s->nitems; i++)
            if (height_of(s->items[i].expr) > h)
                h = s->items[i].expr->height;
        h++;
    }
    e->height = h + 1;
    if (e->height > SQL_MAX_DEPTH) {
        too_deep(p, off, len);
        return NULL;
    }
    return e;
}

static void finish(P *p, sql_node *e) {
    if (e)
        e->len = p->prev.off + p->prev.len - e->off;
}

/* Room for element n of an arena-backed list v of capacity *cap (doubling). Lists live in the
 * arena rather than in stack buffers because their parse functions recurse: every byte of
 * their frames is paid once per nesting level. Returns the (possibly moved) list, or NULL. */
static void *list_room(P *p, void *v, uint32_t n, uint32_t *cap, size_t elt) {
    if (n < *cap)
        return v;
    uint32_t nc = *cap ? *cap * 2 : 4;
    void *nv = node_alloc(p, elt * nc);
    if (nv && n)
        memcpy(nv, v, elt * n);
    if (nv)
        *cap = nc;
    return nv;
}

/* A growable list of node pointers. */
typedef struct nlist {
    sql_node **v;
    uint32_t n, cap;
} nlist;

static void nl_init(nlist *l) {
    l->v = NULL;
    l->n = l->cap = 0;
}

static int nl_push(P *p, nlist *l, sql_node *e) {
    sql_node **v = list_room(p, l->v, l->n, &l->cap, sizeof *v);
    if (!v)
        return -1;
    l->v = v;
    l->v[l->n++] = e;
    return 0;
}

static sql_node **nl_done(P *p, nlist *l) {
    return l->v ? l->v : node_alloc(p, sizeof(sql_node *));
}

static sql_name tokname(const P *p, const sql_token *t) {
    return (sql_name){p->src + t->off, t->len};
}

static int need_2016(P *p, uint32_t off, uint32_t len, const char *what) {
    if (p->c->version >= SQL_V2016_03_23)
        return 0;
    return perr(p, SQL_E_VERSION, off, len,
                "%s need SQL version 2016-03-23 (this rule uses 2015-10-08)", what);
}

/* Words that cannot be attribute names where an expression starts. */
static int reserved(const P *p) {
    static const char *const kws[] = {"select", "from", "where", "as",  "set", "when",
                                      "then",   "else", "end",   "and", "or"};
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (is_kw(p, kws[i]))
            return 1;
    return 0;
}

/* }====== */

/* {====== expressions */

static sql_node *expr(P *p);
static sql_select *select_core(P *p, int nested);

/* args -> [ arg { ',' arg } ] ; arg -> '*' | expr */
static int call_args(P *p, sql_node *call) {
    nlist l;
    nl_init(&l);
    if (!is_punct(p, ")")) {
        do {
            sql_node *a;
            if (is_punct(p, "*")) {
                a = mknode(p, SQL_N_STAR, p->tok.off);
                next(p);
                finish(p, a);
            } else {
                a = expr(p);
            }
            if (!a || nl_push(p, &l, a))
                return -1;
        } while (accept_punct(p, ","));
    }
    if (expect_punct(p, ")"))
        return -1;
    call->kids = nl_done(p, &l);
    call->nkids = l.n;
    return 0;
}

/* cast -> CAST '(' expr AS typename ')' */
static sql_node *cast_expr(P *p, uint32_t off) {
    sql_node *e = mknode(p, SQL_N_CAST, off);
    if (!e || expect_punct(p, "("))
        return NULL;
    sql_node *v = expr(p);
    if (!v || expect_kw(p, "AS"))
        return NULL;
    if (p->tok.kind != SQL_TK_IDENT) {
        expected(p, "a type name");
        return NULL;
    }
    int v2016 = 0;
    int ty = sql__cast_type(p->src + p->tok.off, p->tok.len, &v2016);
    if (ty < 0) {
        perr(p, SQL_E_SYNTAX, p->tok.off, p->tok.len, "unknown type '%.*s' in cast",
             (int)p->tok.len, p->src + p->tok.off);
        return NULL;
    }
    if (v2016 && need_2016(p, p->tok.off, p->tok.len, "cast types Decimal, Bool and Boolean"))
        return NULL;
    e->name = tokname(p, &p->tok);
    e->op = (uint8_t)ty;
    next(p);
    if (expect_punct(p, ")"))
        return NULL;
    e->kids = node_alloc(p, sizeof(sql_node *));
    if (!e->kids)
        return NULL;
    e->kids[0] = v;
    e->nkids = 1;
    finish(p, e);
    return grown(p, e, off, 4);
}

/* case -> CASE [expr] WHEN expr THEN expr { WHEN expr THEN expr } [ELSE expr] END */
static sql_node *case_expr(P *p, uint32_t off) {
    sql_node *e = mknode(p, SQL_N_CASE, off);
    nlist l;
    nl_init(&l);
    if (!e)
        return NULL;
    sql_node *subject = NULL;
    if (!is_kw(p, "WHEN")) {
        subject = expr(p);
        if (!subject)
            return NULL;
    }
    if (nl_push(p, &l, subject))
        return NULL;
    if (!is_kw(p, "WHEN")) {
        expected(p, "WHEN");
        return NULL;
    }
    while (accept_kw(p, "WHEN")) {
        sql_node *w = expr(p);
        if (!w || expect_kw(p, "THEN"))
            return NULL;
        sql_node *t = expr(p);
        if (!t || nl_push(p, &l, w) || nl_push(p, &l, t))
            return NULL;
    }
    if (accept_kw(p, "ELSE")) {
        sql_node *el = expr(p);
        if (!el || nl_push(p, &l, el))
            return NULL;
        e->flags |= SQL_NF_ELSE;
    }
    if (expect_kw(p, "END"))
        return NULL;
    e->kids = nl_done(p, &l);
    e->nkids = l.n;
    finish(p, e);
    return grown(p, e, off, 4);
}

/* array -> '[' [ expr { ',' expr } ] ']' */
static sql_node *array_lit(P *p, uint32_t off) {
    sql_node *e = mknode(p, SQL_N_ARRAY, off);
    nlist l;
    nl_init(&l);
    if (!e || need_2016(p, off, 1, "array literals"))
        return NULL;
    if (!is_punct(p, "]")) {
        do {
            sql_node *x = expr(p);
            if (!x || nl_push(p, &l, x))
                return NULL;
        } while (accept_punct(p, ","));
    }
    if (expect_punct(p, "]"))
        return NULL;
    e->kids = nl_done(p, &l);
    e->nkids = l.n;
    finish(p, e);
    return grown(p, e, off, 1);
}

/* object -> '{' [ key ':' expr { ',' key ':' expr } ] '}' ; key -> string | identifier */
static sql_node *object_lit(P *p, uint32_t off) {
    sql_node *e = mknode(p, SQL_N_OBJECT, off);
    nlist l;
    nl_init(&l);
    if (!e || need_2016(p, off, 1, "object literals"))
        return NULL;
    sql_name *keys = NULL;
    uint32_t kcap = 0;
    if (!is_punct(p, "}")) {
        do {
            sql_name k;
            if (p->tok.kind == SQL_TK_STRING) {
                const char *s;
                size_t n;
                if (sql__lex_string(&p->c->arena, p->src, &p->tok, &s, &n)) {
                    perr(p, SQL_E_SYNTAX, p->tok.off, p->tok.len, "bad escape in string");
                    return NULL;
                }
                k = (sql_name){s, (uint32_t)n};
            } else if (p->tok.kind == SQL_TK_IDENT) {
                k = tokname(p, &p->tok);
            } else {
                expected(p, "an object key");
                return NULL;
            }
            if (l.n >= 256) {
                perr(p, SQL_E_LIMIT, p->tok.off, p->tok.len, "object literal has too many keys");
                return NULL;
            }
            if (!(keys = list_room(p, keys, l.n, &kcap, sizeof *keys)))
                return NULL;
            keys[l.n] = k;
            next(p);
            if (expect_punct(p, ":"))
                return NULL;
            sql_node *v = expr(p);
            if (!v || nl_push(p, &l, v))
                return NULL;
        } while (accept_punct(p, ","));
    }
    if (expect_punct(p, "}"))
        return NULL;
    e->kids = nl_done(p, &l);
    e->nkids = l.n;
    e->keys = keys ? keys : node_alloc(p, sizeof(sql_name));
    if (!e->keys)
        return NULL;
    finish(p, e);
    return grown(p, e, off, 1);
}

/* primary -> number | string | TRUE | FALSE | NULL | @var | name [ '(' args ')' ] | cast
 *          | case | '(' expr ')' | '(' select ')' | array | object */
static sql_node *primary(P *p) {
    sql_token t = p->tok;
    sql_node *e;
    switch (t.kind) {
    case SQL_TK_NUMBER:
        e = mknode(p, SQL_N_LIT, t.off);
        if (!e)
            return NULL;
        if (sql__num_parse(p->c, p->src + t.off, t.len, &e->v) != 0) {
            perr(p, SQL_E_SYNTAX, t.off, t.len, "number '%.*s' is out of range", (int)t.len,
                 p->src + t.off);
            return NULL;
        }
        next(p);
        finish(p, e);
        return e;
    case SQL_TK_STRING: {
        e = mknode(p, SQL_N_LIT, t.off);
        const char *s;
        size_t n;
        if (!e)
            return NULL;
        if (sql__lex_string(&p->c->arena, p->src, &t, &s, &n)) {
            perr(p, SQL_E_SYNTAX, t.off, t.len, "bad escape sequence in string literal");
            return NULL;
        }
        e->v = sql__str(s, (uint32_t)n);
        next(p);
        finish(p, e);
        return e;
    }
    case SQL_TK_VAR:
        e = mknode(p, SQL_N_VAR, t.off);
        if (!e)
            return NULL;
        e->name = (sql_name){p->src + t.off + 1, t.len - 1};
        /* the variable stands for its value, as deep as the SET expression that made it */
        for (uint32_t i = 0; i < p->nvars; i++)
            if (p->vars[i].name.n == e->name.n && !memcmp(p->vars[i].name.s, e->name.s, e->name.n))
                e->height = 1 + p->vars[i].height;
        if (e->height > SQL_MAX_DEPTH) {
            too_deep(p, t.off, t.len);
            return NULL;
        }
        next(p);
        finish(p, e);
        return e;
    case SQL_TK_IDENT:
        if (is_kw(p, "TRUE") || is_kw(p, "FALSE") || is_kw(p, "NULL")) {
            e = mknode(p, SQL_N_LIT, t.off);
            if (!e)
                return NULL;
            e->v = is_kw(p, "NULL") ? SQL_NULLV : sql__bool(is_kw(p, "TRUE"));
            next(p);
            finish(p, e);
            return e;
        }
        if (is_kw(p, "CASE")) {
            next(p);
            return case_expr(p, t.off);
        }
        if (reserved(p)) {
            expected(p, "an expression");
            return NULL;
        }
        next(p);
        if (is_punct(p, "(")) {
            if (t.len == 4 && strncasecmp(p->src + t.off, "cast", 4) == 0)
                return cast_expr(p, t.off);
            next(p);
            e = mknode(p, SQL_N_CALL, t.off);
            if (!e)
                return NULL;
            e->name = tokname(p, &t);
            if (call_args(p, e))
                return NULL;
            finish(p, e);
            return grown(p, e, t.off, t.len);
        }
        e = mknode(p, SQL_N_FIELD, t.off);
        if (!e)
            return NULL;
        e->name = tokname(p, &t);
        finish(p, e);
        return e;
    case SQL_TK_PUNCT:
        if (is_punct(p, "(")) {
            next(p);
            if (is_kw(p, "SELECT")) {
                if (need_2016(p, p->tok.off, p->tok.len, "nested SELECT queries"))
                    return NULL;
                e = mknode(p, SQL_N_SELECT, t.off);
                if (!e)
                    return NULL;
                /* a nested SELECT is two levels deep (see grown()), and its parse functions
                   nest twice as many frames as a parenthesis */
                if (++p->depth > SQL_MAX_DEPTH) {
                    too_deep(p, p->tok.off, p->tok.len);
                    return NULL;
                }
                e->sel = select_core(p, 1);
                p->depth--;
                if (!e->sel || expect_punct(p, ")"))
                    return NULL;
                finish(p, e);
                return grown(p, e, t.off, 1);
            }
            e = expr(p);
            if (!e || expect_punct(p, ")"))
                return NULL;
            e->flags |= SQL_NF_PAREN;
            return e;
        }
        if (is_punct(p, "[")) {
            next(p);
            return array_lit(p, t.off);
        }
        if (is_punct(p, "{")) {
            next(p);
            return object_lit(p, t.off);
        }
        break;
    default:
        break;
    }
    expected(p, "an expression");
    return NULL;
}

/* postfix -> primary { '.' name | '[' expr ']' } */
static sql_node *postfix(P *p) {
    sql_node *e = primary(p);
    while (e && !p->err) {
        sql_token t = p->tok;
        if (accept_punct(p, ".")) {
            if (p->tok.kind != SQL_TK_IDENT) {
                expected(p, "an attribute name after '.'");
                return NULL;
            }
            sql_node *m = mknode(p, SQL_N_MEMBER, e->off);
            sql_node **k = node_alloc(p, sizeof(sql_node *));
            if (!m || !k)
                return NULL;
            t = p->tok;
            m->name = tokname(p, &t);
            k[0] = e;
            m->kids = k;
            m->nkids = 1;
            next(p);
            finish(p, m);
            e = grown(p, m, t.off, t.len);
        } else if (accept_punct(p, "[")) {
            sql_node *i = expr(p);
            if (!i || expect_punct(p, "]"))
                return NULL;
            sql_node *x = mknode(p, SQL_N_INDEX, e->off);
            sql_node **k = node_alloc(p, sizeof(sql_node *) * 2);
            if (!x || !k)
                return NULL;
            k[0] = e;
            k[1] = i;
            x->kids = k;
            x->nkids = 2;
            finish(p, x);
            e = grown(p, x, t.off, 1);
        } else {
            break;
        }
    }
    return p->err ? NULL : e;
}

/* A node with kids a (and b, if not NULL), at the operator token t. */
static sql_node *opnode(P *p, int kind, int op, const sql_token *t, sql_node *a, sql_node *b) {
    sql_node *e = mknode(p, kind, kind == SQL_N_UNARY ? t->off : a->off);
    sql_node **k = node_alloc(p, sizeof(sql_node *) * 2);
    if (!e || !k)
        return NULL;
    e->op = (uint8_t)op;
    k[0] = a;
    k[1] = b;
    e->kids = k;
    e->nkids = b ? 2 : 1;
    finish(p, e);
    return grown(p, e, t->off, t->len);
}

/* Precedences, lowest first. NOT binds looser than comparisons (NOT a = b is NOT (a = b)) and
 * unary minus tighter than * (-a * b is (-a) * b). */
enum { PREC_NONE, PREC_OR, PREC_AND, PREC_NOT, PREC_CMP, PREC_ADD, PREC_MUL, PREC_NEG };

/* The binary operator at the current token: its SQL_BIN_* (precedence in *prec), or -1. */
static int binop(const P *p, int *prec) {
    static const struct {
        const char *s;
        int op, prec;
    } ops[] = {
        {"=", SQL_BIN_EQ, PREC_CMP},   {"<>", SQL_BIN_NE, PREC_CMP},  {"!=", SQL_BIN_NE, PREC_CMP},
        {"<", SQL_BIN_LT, PREC_CMP},   {"<=", SQL_BIN_LE, PREC_CMP},  {">", SQL_BIN_GT, PREC_CMP},
        {">=", SQL_BIN_GE, PREC_CMP},  {"+", SQL_BIN_ADD, PREC_ADD},  {"-", SQL_BIN_SUB, PREC_ADD},
        {"*", SQL_BIN_MUL, PREC_MUL},  {"/", SQL_BIN_DIV, PREC_MUL},  {"%", SQL_BIN_MOD, PREC_MUL},
    };
    if (p->tok.kind == SQL_TK_IDENT) {
        *prec = is_kw(p, "OR") ? PREC_OR : is_kw(p, "AND") ? PREC_AND : PREC_NONE;
        return *prec == PREC_OR ? SQL_BIN_OR : *prec == PREC_AND ? SQL_BIN_AND : -1;
    }
    for (size_t i = 0; p->tok.kind == SQL_TK_PUNCT && i < sizeof ops / sizeof ops[0]; i++) {
        if (is_punct(p, ops[i].s)) {
            *prec = ops[i].prec;
            return ops[i].op;
        }
    }
    return -1;
}

/* subexpr -> ( NOT subexpr | '-' subexpr | postfix ) { binop subexpr }
 * Parses an expression whose binary operators bind tighter than `limit`; NOT is an operator
 * only where the grammar allows it (not after a comparison: `a = NOT b` stays an error). */
static sql_node *subexpr(P *p, int limit) {
    sql_token t = p->tok;
    if (++p->depth > SQL_MAX_DEPTH) {
        too_deep(p, t.off, t.len);
        return NULL;
    }
    sql_node *e;
    if (limit <= PREC_NOT && is_kw(p, "NOT")) {
        next(p);
        sql_node *a = subexpr(p, PREC_NOT);
        e = a ? opnode(p, SQL_N_UNARY, SQL_U_NOT, &t, a, NULL) : NULL;
    } else if (is_punct(p, "-")) {
        next(p);
        sql_node *a = subexpr(p, PREC_NEG);
        e = a ? opnode(p, SQL_N_UNARY, SQL_U_NEG, &t, a, NULL) : NULL;
    } else {
        e = postfix(p);
    }
    int op, prec;
    while (e && !p->err && (op = binop(p, &prec)) >= 0 && prec > limit) {
        sql_token o = p->tok;
        next(p);
        sql_node *b = subexpr(p, prec);
        e = b ? opnode(p, SQL_N_BINARY, op, &o, e, b) : NULL;
    }
    p->depth--;
    return p->err ? NULL : e;
}

/* expr -> subexpr with every operator */
static sql_node *expr(P *p) { return subexpr(p, PREC_NONE); }

/* }====== */

/* {====== statements */

/* alias -> name { '.' name } | string   (a dotted alias is kept verbatim as the key) */
static int alias(P *p, sql_item *it) {
    if (p->tok.kind == SQL_TK_STRING) {
        const char *s;
        size_t n;
        if (sql__lex_string(&p->c->arena, p->src, &p->tok, &s, &n))
            return perr(p, SQL_E_SYNTAX, p->tok.off, p->tok.len, "bad escape in alias");
        it->alias = (sql_name){s, (uint32_t)n};
        next(p);
        return 0;
    }
    if (p->tok.kind != SQL_TK_IDENT || is_kw(p, "FROM") || is_kw(p, "WHERE"))
        return expected(p, "an alias after AS");
    uint32_t off = p->tok.off, end = p->tok.off + p->tok.len;
    next(p);
    while (is_punct(p, ".") && p->tok.off == end) {
        next(p);
        if (p->tok.kind != SQL_TK_IDENT || p->tok.off != end + 1)
            return expected(p, "a name after '.' in the alias");
        end = p->tok.off + p->tok.len;
        next(p);
    }
    it->alias = (sql_name){p->src + off, end - off};
    return 0;
}

/* items -> item { ',' item } [ ',' ] ; item -> '*' | expr [ AS alias ] */
static int items(P *p, sql_select *s) {
    sql_item *v = NULL;
    uint32_t n = 0, cap = 0;
    for (;;) {
        if (!(v = list_room(p, v, n, &cap, sizeof *v)))
            return p->err;
        sql_item *it = &v[n];
        memset(it, 0, sizeof *it);
        it->off = p->tok.off;
        if (is_punct(p, "*") && !s->value) {
            next(p);
        } else {
            it->expr = expr(p);
            if (!it->expr)
                return p->err;
            if (accept_kw(p, "AS") && alias(p, it))
                return p->err;
        }
        it->len = p->prev.off + p->prev.len - it->off;
        n++;
        if (!accept_punct(p, ","))
            break;
        /* AWS's own DynamoDB tutorial leaves a comma before FROM */
        if (is_kw(p, "FROM") || is_kw(p, "WHERE") || p->tok.kind == SQL_TK_EOF ||
            is_punct(p, ")"))
            break;
    }
    if (s->value && n > 1)
        return perr(p, SQL_E_SYNTAX, v[1].off, v[1].len,
                    "SELECT VALUE takes exactly one expression");
    s->items = v;
    s->nitems = n;
    return 0;
}

/* filter -> string | unquoted-filter-with-a-wildcard */
static int from_filter(P *p, sql_select *s) {
    if (p->tok.kind == SQL_TK_STRING) {
        const char *f;
        size_t n;
        if (sql__lex_string(&p->c->arena, p->src, &p->tok, &f, &n))
            return perr(p, SQL_E_SYNTAX, p->tok.off, p->tok.len, "bad escape in topic filter");
        s->from = (sql_name){f, (uint32_t)n};
        s->from_off = p->tok.off;
        s->from_len = p->tok.len;
        next(p);
        return 0;
    }
    /* AWS's FROM page requires quotes, but its JSON page prints `FROM topic/#`: an unquoted
       filter is read as the run of tokens with no space between them, and is accepted only
       when it has a wildcard level (sql/README.md). */
    if (p->tok.kind != SQL_TK_IDENT && p->tok.kind != SQL_TK_PUNCT &&
        p->tok.kind != SQL_TK_NUMBER)
        return expected(p, "a quoted topic filter");
    uint32_t off = p->tok.off, end = off;
    while ((p->tok.kind == SQL_TK_IDENT || p->tok.kind == SQL_TK_NUMBER ||
            (p->tok.kind == SQL_TK_PUNCT &&
             (is_punct(p, "/") || is_punct(p, "+") || is_punct(p, "#") || is_punct(p, "-") ||
              is_punct(p, "$")))) &&
           p->tok.off == end) {
        if (p->tok.kind == SQL_TK_IDENT && end != off && is_kw(p, "WHERE"))
            break;
        end = p->tok.off + p->tok.len;
        next(p);
        if (p->err)
            return p->err;
    }
    const char *f = p->src + off;
    size_t n = end - off;
    int wild = 0;
    for (size_t i = 0; i < n; i++)
        wild |= (f[i] == '+' || f[i] == '#') && (i == 0 || f[i - 1] == '/') &&
                (i + 1 == n || f[i + 1] == '/');
    if (n == 0 || !wild)
        return perr(p, SQL_E_SYNTAX, off, n ? (uint32_t)n : p->tok.len,
                    "the topic filter after FROM must be quoted, e.g. FROM '%.*s'",
                    n ? (int)(n > 60 ? 60 : n) : 5, n ? f : "topic");
    s->from = (sql_name){f, (uint32_t)n};
    s->from_off = off;
    s->from_len = (uint32_t)n;
    return 0;
}

/* select -> SELECT [VALUE] items [FROM filter] [WHERE expr]            (top level)
 * nested -> SELECT [VALUE] items FROM expr [WHERE expr]                (inside parentheses) */
static sql_select *select_core(P *p, int nested) {
    sql_select *s = node_alloc(p, sizeof *s);
    if (!s)
        return NULL;
    s->off = p->tok.off;
    if (expect_kw(p, "SELECT"))
        return NULL;
    if (accept_kw(p, "VALUE"))
        s->value = 1;
    if (items(p, s))
        return NULL;
    if (nested) {
        if (expect_kw(p, "FROM"))
            return NULL;
        s->from_expr = expr(p);
        if (!s->from_expr)
            return NULL;
    } else if (accept_kw(p, "FROM")) {
        if (from_filter(p, s))
            return NULL;
    }
    if (accept_kw(p, "WHERE")) {
        s->where = expr(p);
        if (!s->where)
            return NULL;
    }
    s->len = p->prev.off + p->prev.len - s->off;
    return s;
}

/* sets -> SET var '=' expr { ',' var '=' expr } */
static int sets(P *p, sql_stmt *st) {
    sql_set buf[MAX_VARS];
    uint32_t n = 0;
    do {
        if (p->tok.kind != SQL_TK_VAR)
            return expected(p, "a variable (@name)");
        sql_token v = p->tok;
        sql_name name = {p->src + v.off + 1, v.len - 1};
        if (name.n > MAX_VAR_NAME)
            return perr(p, SQL_E_LIMIT, v.off, v.len,
                        "variable names have at most %d characters", MAX_VAR_NAME);
        for (uint32_t i = 0; i < n; i++)
            if (buf[i].name.n == name.n && memcmp(buf[i].name.s, name.s, name.n) == 0)
                return perr(p, SQL_E_SEMANTIC, v.off, v.len,
                            "variable '@%.*s' is assigned twice; variables are immutable",
                            (int)name.n, name.s);
        if (n == MAX_VARS)
            return perr(p, SQL_E_LIMIT, v.off, v.len, "at most %d variables per statement",
                        MAX_VARS);
        next(p);
        if (expect_punct(p, "="))
            return p->err;
        sql_node *e = expr(p);
        if (!e)
            return p->err;
        buf[n] = (sql_set){name, e, v.off, p->prev.off + p->prev.len - v.off};
        n++;
        p->vars[p->nvars].name = name;
        p->vars[p->nvars++].height = e->height;
    } while (accept_punct(p, ","));
    st->sets = node_alloc(p, sizeof(sql_set) * n);
    if (!st->sets)
        return p->err;
    memcpy(st->sets, buf, sizeof(sql_set) * n);
    st->nsets = n;
    return 0;
}

/* Starts parsing text[from..to) (a statement, or one `${...}` of a template); text past
 * `limit` bytes is an error (0: no limit). */
static void start(P *p, sql_ctx *c, const char *text, size_t n, size_t from, size_t to,
                  size_t limit, sql_diag *d) {
    memset(p, 0, sizeof *p);
    p->c = c;
    p->src = text;
    p->n = n;
    p->d = d;
    sql__lex_init(&p->lx, text, to, d);
    p->lx.pos = from;
    p->lx.limit = limit;
    next(p);
}

/* statement -> [sets] select EOF */
int sql__parse(sql_ctx *c, const char *text, size_t n, sql_stmt **out, sql_diag *d) {
    P p;
    *out = NULL;
    start(&p, c, text, n, 0, n, SQL_MAX_STATEMENT, d);
    sql_stmt *st = node_alloc(&p, sizeof *st);
    if (st && accept_kw(&p, "SET"))
        sets(&p, st);
    if (st && !p.err) {
        if (is_kw(&p, "SET"))
            perr(&p, SQL_E_SYNTAX, p.tok.off, p.tok.len, "SET may appear only once");
        else
            st->sel = select_core(&p, 0);
    }
    if (!p.err && p.tok.kind != SQL_TK_EOF) {
        if (is_kw(&p, "SET"))
            perr(&p, SQL_E_SYNTAX, p.tok.off, p.tok.len, "SET must come before SELECT");
        else if (p.tok.kind == SQL_TK_IDENT && st->sel && !st->sel->from_off)
            expected(&p, "FROM"); /* the usual slip: a misspelled FROM */
        else
            expected(&p, "end of statement");
    }
    if (p.err) {
        sql__diag_locate(d, text, n);
        return p.err;
    }
    *out = st;
    return SQL_OK;
}

/* }====== */

/* {====== templates */

/* Finds the '}' closing the `${` whose expression starts at `from`, by lexing (braces inside
 * strings and object literals are fine). Returns its offset, or -1. */
static long closing_brace(const char *text, size_t n, size_t from, sql_diag *d) {
    sql_lexer lx;
    sql__lex_init(&lx, text, n, d);
    lx.pos = from;
    int depth = 0;
    for (;;) {
        sql_token t = sql__lex_next(&lx);
        if (t.kind == SQL_TK_EOF || t.kind == SQL_TK_ERROR)
            return -1;
        if (t.kind != SQL_TK_PUNCT || t.len != 1)
            continue;
        if (text[t.off] == '{')
            depth++;
        else if (text[t.off] == '}' && depth-- == 0)
            return (long)t.off;
    }
}

int sql__parse_template(sql_ctx *c, const char *text, size_t n, const sql_stmt *st,
                        sql_tpl_ast **out, sql_diag *d) {
    *out = NULL;
    sql_tpl_seg *segs = sql__arena_alloc(&c->arena, sizeof(sql_tpl_seg) * (n + 1));
    char *lit = sql__arena_alloc(&c->arena, n + 1);
    sql_tpl_ast *ta = sql__arena_alloc(&c->arena, sizeof *ta);
    if (!segs || !lit || !ta)
        return SQL_E_NOMEM;
    uint32_t nseg = 0;
    size_t i = 0, litstart = 0, k = 0;
    while (i < n) {
        if (text[i] == '$' && i + 1 < n && text[i + 1] == '$') {
            lit[k++] = '$';
            i += 2;
            continue;
        }
        if (!(text[i] == '$' && i + 1 < n && text[i + 1] == '{')) {
            lit[k++] = text[i++];
            continue;
        }
        if (k > litstart) {
            segs[nseg++] = (sql_tpl_seg){{lit + litstart, (uint32_t)(k - litstart)}, NULL};
            litstart = k;
        }
        sql_diag scratch;
        memset(&scratch, 0, sizeof scratch);
        long close = closing_brace(text, n, i + 2, &scratch);
        if (close < 0) {
            sql__diag_set(d, SQL_E_SYNTAX, text, n, (uint32_t)i, 2,
                          "'${' is not closed by a matching '}'");
            sql__diag_locate(d, text, n);
            return SQL_E_SYNTAX;
        }
        P p;
        start(&p, c, text, n, i + 2, (size_t)close, 0, d);
        for (uint32_t v = 0; st && v < st->nsets && v < MAX_VARS; v++) {
            p.vars[v].name = st->sets[v].name;
            p.vars[v].height = st->sets[v].expr->height;
            p.nvars = v + 1;
        }
        if (p.tok.kind == SQL_TK_EOF) {
            perr(&p, SQL_E_SYNTAX, (uint32_t)i, (uint32_t)(close - (long)i + 1),
                 "empty substitution '${}'");
        } else {
            sql_node *e = expr(&p);
            if (e && !p.err && p.tok.kind != SQL_TK_EOF)
                expected(&p, "'}'");
            if (!p.err)
                segs[nseg++] = (sql_tpl_seg){{NULL, 0}, e};
        }
        if (p.err) {
            sql__diag_locate(d, text, n);
            return p.err;
        }
        i = (size_t)close + 1;
    }
    if (k > litstart)
        segs[nseg++] = (sql_tpl_seg){{lit + litstart, (uint32_t)(k - litstart)}, NULL};
    ta->segs = segs;
    ta->nsegs = nseg;
    *out = ta;
    return SQL_OK;
}

/* }====== */

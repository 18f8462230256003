/*
 * sql_int.h -- private header of sql/: the value model, the per-evaluation arena, and the
 * contracts between lexer, parser, compiler, VM, number model, JSON reader/writer and builtins.
 * Nothing outside sql/ includes it (tests of sql/ do).
 *
 * Values. sql_value is a 16-byte tagged struct passed by value (jq's jv). Values are immutable.
 * Their memory is one of: the program's constant pool (lives as long as the program), the
 * message payload (strings without escapes point straight into it: SQLite's MEM_Ephem), or the
 * sql_exec's arena, which is reset before each message. So no value needs reference counting or
 * freeing on the message path; anything that must outlive a message is serialized (JSON text)
 * by the caller. This replaces STYLE.md's OWNED/refcount flag: within one evaluation nothing is
 * ever freed early, and an arena reset is one pointer store.
 *
 * Numbers. INT and DEC are separate types as in AWS. Both use a decimal coefficient and
 * exponent: small form (coefficient in u.i, exponent in e; INT always has e == 0) for the common
 * case, and a big form (SQL_F_BIG: u.big points to a 34-digit __int128 coefficient and an int32
 * exponent) when the coefficient does not fit int64. Decimal arithmetic is decimal128-like:
 * 34 significant digits, round half even. Doubles produced by math functions are converted to
 * the shortest decimal that round-trips (Java's Double.toString digits).
 *
 * Thread: everything here follows sql.h: programs are shared read-only; a sql_ctx belongs to
 * one thread.
 */
#ifndef SLUICE_SQL_INT_H
#define SLUICE_SQL_INT_H

#include "sql.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* {====== limits */

/* Every recursion in sql/ is bounded by one of these (sql/README.md, "Limits", gives the
 * reasoning and the stack they need):
 *   - the parser and the compiler recurse over expressions: SQL_MAX_DEPTH bounds both the
 *     nesting the parser descends into and the height of every expression tree it builds
 *     (a left-deep chain a+b+c counts one level per operator);
 *   - the JSON reader recurses over the payload's nesting: SQL_JSON_MAX_DEPTH;
 *   - the writer and deep equality recurse over values, which the two bounds above keep under
 *     SQL_MAX_VALUE_DEPTH (checked again where they recurse). */
#define SQL_MAX_STATEMENT (256u * 1024u) /* bytes of SQL text, as AWS's rule size limit */
#define SQL_MAX_DEPTH 1000
#define SQL_JSON_MAX_DEPTH 256
#define SQL_MAX_VALUE_DEPTH (SQL_MAX_DEPTH + SQL_JSON_MAX_DEPTH + 8)

/* }====== */

/* {====== values */

typedef enum sql_type {
    SQL_T_UNDEF = 0, /* not a value: missing key, failed conversion; omitted from objects */
    SQL_T_NULL,
    SQL_T_BOOL,
    SQL_T_INT,
    SQL_T_DEC,
    SQL_T_STR, /* UTF-8 bytes, u.s / n; not NUL-terminated */
    SQL_T_ARR, /* u.a[0..n) */
    SQL_T_OBJ, /* u.o[0..n), keys unique, in insertion order */
    SQL_T_BIN, /* raw non-JSON payload bytes, u.s / n; only `*` produces it */
} sql_type;

/* flags */
#define SQL_F_BIG 0x01u  /* INT/DEC: u.big holds the number (coefficient does not fit int64) */
#define SQL_F_JSAFE 0x02u /* STR: bytes need no JSON escaping (came unescaped from a payload) */

typedef struct sql_value sql_value;
typedef struct sql_member sql_member;
typedef struct sql_big sql_big;

struct sql_value {
    uint8_t t;  /* sql_type */
    uint8_t f;  /* SQL_F_* */
    int16_t e;  /* DEC small form: exponent (value = u.i * 10^e); 0 otherwise */
    uint32_t n; /* STR/BIN: byte length; ARR/OBJ: element count */
    union {
        int64_t i;           /* INT/DEC small coefficient */
        int b;               /* BOOL */
        const char *s;       /* STR/BIN */
        const sql_value *a;  /* ARR */
        const sql_member *o; /* OBJ */
        const sql_big *big;  /* INT/DEC with SQL_F_BIG */
    } u;
};
_Static_assert(sizeof(sql_value) == 16, "sql_value is 16 bytes");

struct sql_member {
    const char *k; /* key bytes (UTF-8), not NUL-terminated */
    uint32_t klen;
    uint32_t kflags; /* SQL_F_JSAFE when the key needs no escaping */
    sql_value v;
};

struct sql_big {
    __int128 coef; /* |coef| < 10^34 after rounding (INT may use up to 10^38 - 1) */
    int32_t exp;   /* INT: 0 */
};

#define SQL_UNDEF ((sql_value){.t = SQL_T_UNDEF})
#define SQL_NULLV ((sql_value){.t = SQL_T_NULL})

static inline sql_value sql__bool(int b) { return (sql_value){.t = SQL_T_BOOL, .u.b = !!b}; }
static inline sql_value sql__int(int64_t i) { return (sql_value){.t = SQL_T_INT, .u.i = i}; }
static inline sql_value sql__str(const char *s, uint32_t n) {
    return (sql_value){.t = SQL_T_STR, .n = n, .u.s = s};
}
static inline int sql__is_num(const sql_value *v) { return v->t == SQL_T_INT || v->t == SQL_T_DEC; }

/* }====== */

/* {====== arena and buffers */

typedef struct sql_arena_chunk sql_arena_chunk;
typedef struct sql_arena {
    sql_arena_chunk *head; /* current chunk */
    sql_arena_chunk *first;
    char *p, *end;         /* free space in head */
    size_t limit, used;    /* bytes allowed per evaluation (SQL_E_LIMIT past it), bytes taken */
    size_t chunk;          /* size of the first chunk (0: 16 KiB); later chunks double */
} sql_arena;

void sql__arena_init(sql_arena *a, size_t limit);
void sql__arena_deinit(sql_arena *a);
/* Frees all but the first chunk and rewinds. */
void sql__arena_reset(sql_arena *a);
/* 16-byte aligned; NULL when over the limit or out of memory. */
void *sql__arena_alloc(sql_arena *a, size_t n);
char *sql__arena_strdup(sql_arena *a, const char *s, size_t n);

/* Makes the heap array *p of *cap elements of elt bytes hold at least `need` (doubling, from
 * 16). 0, or -1 with *p unchanged. */
int sql__grow(void **p, uint32_t *cap, uint32_t need, size_t elt);

/* Growable byte buffer. Heap-backed (sql__buf_*); `oom` sticks once an append failed. */
typedef struct sql_buf {
    char *p;
    size_t len, cap;
    int oom;
} sql_buf;

void sql__buf_init(sql_buf *b);
void sql__buf_free(sql_buf *b);
static inline void sql__buf_reset(sql_buf *b) { b->len = 0; b->oom = 0; }
/* The slow path of sql__buf_reserve(): grows the buffer. */
int sql__buf_grow(sql_buf *b, size_t extra);
/* Room for `extra` more bytes and a NUL: 0, or -1 (sets oom). Inline: the writer calls it for
 * every token of every output. */
static inline int sql__buf_reserve(sql_buf *b, size_t extra) {
    return !b->oom && b->len + extra + 1 <= b->cap ? 0 : sql__buf_grow(b, extra);
}
static inline void sql__buf_put(sql_buf *b, const void *s, size_t n) {
    if (n && sql__buf_reserve(b, n) == 0) {
        __builtin_memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}
static inline void sql__buf_putc(sql_buf *b, char c) {
    if (sql__buf_reserve(b, 1) == 0)
        b->p[b->len++] = c;
}
void sql__buf_printf(sql_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* }====== */

/* {====== evaluation context (what builtins see) */

typedef struct sql_ctx sql_ctx;

/* How often a call site ran during run `run` of the VM (newuuid()'s replayable sequence). */
typedef struct sql_site_use {
    uint64_t run;
    uint32_t n;
} sql_site_use;

/* Per-thread evaluation state, embedded in sql_exec. Builtins read the message through it and
 * allocate results from its arena. */
struct sql_ctx {
    sql_arena arena;
    sql_version version;
    const struct sql_program *prog;
    const sql_message *msg;
    const char *topic; /* topic as topic() sees it (Basic Ingest prefix removed) */
    size_t topic_len;
    int64_t now_ms;    /* timestamp(): frozen per message */
    const void *aux;   /* per-call-site data of the builtin being called (e.g. a compiled
                          literal regex), NULL if none */
    uint32_t site;     /* index of the call site being called (sql_program.calls) */
    uint64_t run;      /* number of the current sql__vm_run() on this ctx (never 0 there) */
    sql_site_use *uses; /* per call site: how often it ran in the current run (NULL: none) */
    void *regex_md;    /* pcre2_match_data, created on first regexp use */
    void *regex_mctx;  /* pcre2_match_context with match/depth limits */
    sql_buf scratch;   /* builtins may use it between their own calls, never across */
    sql_buf jstack;    /* the JSON reader's stack of open containers */
    int err;           /* SQL_E_* once a runtime error was raised; the VM then stops */
    char errmsg[256];
};

/* Raises a runtime error (first wins): the evaluation fails with SQL_E_RUNTIME (or `code`).
 * Builtins return the value of this call. Thread: owner. */
int sql_ctx_error(sql_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Arena allocation that raises SQL_E_LIMIT / SQL_E_NOMEM on failure (returns NULL then). */
void *sql__alloc(sql_ctx *ctx, size_t n);

/* }====== */

/* {====== numbers (num.c) */

/* Parses a JSON/SQL number token (JSON grammar: -?int frac? exp?) into INT (no '.' and no
 * exponent, up to 38 digits) or DEC (else; rounded to 34 significant digits). Under
 * SQL_V2016_03_23 a whole-valued DEC becomes INT (AWS: "processed as Int"). Returns 0, or -1
 * when the text is not a number (or its exponent is out of range). */
int sql__num_parse(sql_ctx *ctx, const char *s, size_t n, sql_value *out);

/* AWS's String -> Decimal conversion: ^-?\d+(\.\d+)?((?i)E-?\d+)?$ else -1 (Undefined). */
int sql__num_from_str(sql_ctx *ctx, const char *s, size_t n, sql_value *out);

/* Formats a number as AWS prints it (INT: digits; DEC: plain notation, with scientific
 * notation "1.5E+40" only when the exponent is large). buf must hold SQL_NUM_BUFSZ bytes.
 * Returns the length (no NUL written beyond it is promised). */
#define SQL_NUM_BUFSZ 64
size_t sql__num_format(const sql_value *v, char *buf);

/* Arithmetic by AWS's rules for numeric operands (both INT or DEC): INT op INT -> INT (division
 * truncates toward zero, % takes the sign of the dividend), else DEC (34 digits, half even).
 * Division or modulo by zero gives Undefined. Results are normalized for ctx->version. */
enum { SQL_NUM_ADD, SQL_NUM_SUB, SQL_NUM_MUL, SQL_NUM_DIV, SQL_NUM_MOD };
int sql__num_arith(sql_ctx *ctx, int op, const sql_value *a, const sql_value *b, sql_value *out);
sql_value sql__num_neg(sql_ctx *ctx, const sql_value *a);
/* -1, 0, 1 comparing numeric values exactly (1 == 1.0). */
int sql__num_cmp(const sql_value *a, const sql_value *b);
/* From a C double: the shortest round-trip decimal (Double.toString digits); a whole double
 * keeps one fractional zero under 2015-10-08 ("32.0") and becomes INT under 2016-03-23.
 * NaN and infinities give Undefined. */
sql_value sql__num_from_double(sql_ctx *ctx, double d);
double sql__num_to_double(const sql_value *v);
/* INT conversions. mode: SQL_ROUND_HALF_UP (nearest, ties away from zero), SQL_ROUND_FLOOR,
 * SQL_ROUND_TRUNC, SQL_ROUND_CEIL. Returns INT (big when needed). */
enum { SQL_ROUND_HALF_UP, SQL_ROUND_FLOOR, SQL_ROUND_TRUNC, SQL_ROUND_CEIL };
sql_value sql__num_to_int(sql_ctx *ctx, const sql_value *v, int mode);
/* INT -> DEC with the same value (exponent 0). */
sql_value sql__num_to_dec(sql_ctx *ctx, const sql_value *v);
/* int64 view: 0 and *out set when v is numeric and fits after rounding by `mode`; else -1. */
int sql__num_to_i64(const sql_value *v, int mode, int64_t *out);
/* Applies the 2016-03-23 whole-number rule (DEC with integral value -> INT) when ctx says so. */
sql_value sql__num_norm(sql_ctx *ctx, sql_value v);
/* trunc(x, places) and round helpers used by builtins. */
sql_value sql__num_trunc_places(sql_ctx *ctx, const sql_value *v, int places);
int sql__num_sign(const sql_value *v);
int sql__num_is_whole(const sql_value *v);

/* }====== */

/* {====== conversions and operators (convert.c, ops.c): AWS's type tables */

/* To String (implicit): INT/DEC formatted, BOOL "true"/"false", STR itself, ARR/OBJ compact
 * JSON text, NULL/UNDEF/BIN -> -1 (Undefined). Result may point into v or the arena. */
int sql__to_str(sql_ctx *ctx, const sql_value *v, const char **s, size_t *n);
/* To Decimal (implicit): INT/DEC -> the number (INT stays INT: callers that need DEC say so),
 * STR -> sql__num_from_str, NULL -> NULL, else Undefined. */
sql_value sql__to_num(sql_ctx *ctx, const sql_value *v);
/* To Boolean (implicit): BOOL, STR "true"/"false" case-insensitive; else Undefined. */
sql_value sql__to_bool(sql_ctx *ctx, const sql_value *v);
/* cast(v AS type). type: one of the SQL_CAST_* below. */
enum { SQL_CAST_STRING, SQL_CAST_INT, SQL_CAST_DECIMAL, SQL_CAST_DOUBLE, SQL_CAST_BOOL };
sql_value sql__cast(sql_ctx *ctx, const sql_value *v, int type);
/* Looks up a cast type keyword (case-insensitive: String Nvarchar Text Ntext varchar Int Integer
 * Double Decimal Bool Boolean). Returns SQL_CAST_* or -1; *v2016 = 1 for 2016-only names. */
int sql__cast_type(const char *name, size_t n, int *v2016);

/* Binary/unary operators with AWS's tables (DG iot-sql-operators). */
enum {
    SQL_BIN_ADD, SQL_BIN_SUB, SQL_BIN_MUL, SQL_BIN_DIV, SQL_BIN_MOD,
    SQL_BIN_EQ, SQL_BIN_NE, SQL_BIN_LT, SQL_BIN_LE, SQL_BIN_GT, SQL_BIN_GE,
    SQL_BIN_AND, SQL_BIN_OR,
};
sql_value sql__op_binary(sql_ctx *ctx, int op, const sql_value *a, const sql_value *b);
sql_value sql__op_not(sql_ctx *ctx, const sql_value *a);
sql_value sql__op_neg(sql_ctx *ctx, const sql_value *a);
/* Deep equality by the `=` table: 1 equal, 0 not equal, -1 Undefined involved. */
int sql__equal(const sql_value *a, const sql_value *b);
/* Object member lookup (exact key bytes); NULL when absent. */
const sql_value *sql__obj_get(const sql_value *obj, const char *k, size_t klen);

/* }====== */

/* {====== JSON (json_read.c, json_write.c) */

/* Parses the whole text p[0..n) (surrounding whitespace allowed) into *out, strings and
 * containers in ctx's arena (unescaped strings point into p: p must outlive the evaluation).
 * Numbers through sql__num_parse (so the version's whole-number rule applies). Duplicate
 * object keys: the first occurrence wins. Returns 0, -1 if p is not exactly one JSON value,
 * or SQL_E_NOMEM/SQL_E_LIMIT (ctx error raised). Nesting deeper than SQL_JSON_MAX_DEPTH is
 * not read (-1: the text is then treated as not JSON). */
int sql__json_parse(sql_ctx *ctx, const char *p, size_t n, sql_value *out);

/* The paths a program reads from the payload, as a trie over member names. Node 0 is the
 * root (the payload itself). A node with slot >= 0 needs its whole value materialized into
 * slots[slot] (its children are then ignored); other nodes only lead to deeper nodes. */
typedef struct sql_path_node {
    const char *key; /* member name (node 0: NULL) */
    uint32_t klen;
    int32_t slot;    /* -1: interior only */
    int32_t child;   /* first child node, -1 none */
    int32_t next;    /* next sibling, -1 none */
    uint32_t nslots; /* slots in this node's subtree (for early exit) */
    int32_t parent;  /* -1 for the root (used by the merged tries of scan.c) */
} sql_path_node;

/* What the scan does at a trie node: skip its value, look inside it for deeper nodes, or read
 * its whole value into its slot. */
enum { SQL_NEED_SKIP = 0, SQL_NEED_DESCEND = 1, SQL_NEED_VALUE = 2 };

typedef struct sql_pathset {
    const sql_path_node *nodes;
    uint32_t nnodes;
    uint32_t nslots;     /* slots the scan fills (VALUE nodes without a VALUE ancestor) */
    const uint8_t *need; /* per node SQL_NEED_*; NULL: a program's trie, where a node with a
                            slot is VALUE and the others DESCEND */
} sql_pathset;

/* One lazy pass over the payload: fills slots[0..nslots) (preset to Undefined by the caller)
 * with the values of the needed paths, skipping everything else without building it, and
 * stops as soon as every slot under the root has been found. Returns 0, -1 when the payload
 * is not JSON as far as it was read (callers then treat it as binary), or an SQL_E_* code. */
int sql__json_scan(sql_ctx *ctx, const char *p, size_t n, const sql_pathset *ps,
                   sql_value *slots);

/* Appends v as compact JSON (no spaces; object keys in order; Undefined members omitted;
 * numbers by sql__num_format). A top-level Undefined appends nothing, BIN appends nothing and
 * returns -1. Returns 0, -1, or SQL_E_LIMIT for a value nested deeper than
 * SQL_MAX_VALUE_DEPTH (which the compile-time limits rule out). */
int sql__json_write(sql_buf *b, const sql_value *v);
/* Appends s as a JSON string literal with quotes. */
void sql__json_write_str(sql_buf *b, const char *s, size_t n);

/* }====== */

/* {====== lexer and parser (lexer.c, parser.c): AST with byte spans */

typedef enum sql_tok_kind {
    SQL_TK_EOF = 0,
    SQL_TK_IDENT,   /* name (keywords are recognised by the parser, case-insensitively) */
    SQL_TK_VAR,     /* @name (text includes the '@') */
    SQL_TK_NUMBER,  /* JSON number grammar, no sign */
    SQL_TK_STRING,  /* '...' or "..." (text is the raw token with quotes) */
    SQL_TK_PUNCT,   /* ( ) [ ] { } , . : * + - / % = <> != < <= > >= # */
    SQL_TK_ERROR,   /* lexical error; the lexer has filled the diag */
} sql_tok_kind;

typedef struct sql_token {
    sql_tok_kind kind;
    uint32_t off, len; /* byte span in the source text */
} sql_token;

typedef struct sql_lexer {
    const char *src;
    size_t n, pos;
    size_t limit; /* text past this offset is an error (statement length); 0: none */
    sql_diag *diag;
} sql_lexer;

void sql__lex_init(sql_lexer *lx, const char *src, size_t n, sql_diag *diag);
/* Next token; SQL_TK_ERROR after setting *diag (comments are an error: AWS IoT SQL has none). */
sql_token sql__lex_next(sql_lexer *lx);
/* Decodes a string token's contents (quotes removed, escapes applied) into the arena. */
int sql__lex_string(sql_arena *a, const char *src, const sql_token *t, const char **s, size_t *n);

/* Sets *d (first error wins: a diag whose code is already nonzero is left alone). Line and
 * column are derived by sql__diag_locate(). Returns code. */
int sql__diag_set(sql_diag *d, int code, const char *text, size_t n, uint32_t off, uint32_t len,
                  const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void sql__diag_locate(sql_diag *d, const char *text, size_t n);

typedef enum sql_node_kind {
    SQL_N_LIT,    /* v: number, string, bool or null literal */
    SQL_N_FIELD,  /* name: a payload attribute (in a nested SELECT: an element attribute) */
    SQL_N_VAR,    /* name (without '@'): a SET variable */
    SQL_N_STAR,   /* `*` used as an expression (function argument): the whole payload */
    SQL_N_MEMBER, /* kids[0].name */
    SQL_N_INDEX,  /* kids[0][kids[1]] */
    SQL_N_UNARY,  /* op: SQL_U_NOT or SQL_U_NEG; kids[0] */
    SQL_N_BINARY, /* op: SQL_BIN_*; kids[0], kids[1] */
    SQL_N_CALL,   /* name(kids...) ; name as written */
    SQL_N_CAST,   /* cast(kids[0] AS <type>): op = SQL_CAST_*, name = the type as written */
    SQL_N_CASE,   /* kids[0] = subject (NULL: searched CASE WHEN cond), then WHEN/THEN pairs,
                     then the ELSE expression when flags & SQL_NF_ELSE */
    SQL_N_ARRAY,  /* [kids...] */
    SQL_N_OBJECT, /* {keys[i]: kids[i]} */
    SQL_N_SELECT, /* nested (SELECT ...): sel */
} sql_node_kind;

enum { SQL_U_NOT, SQL_U_NEG };
#define SQL_NF_ELSE 0x01u
#define SQL_NF_PAREN 0x02u /* expression was parenthesized */
#define SQL_NF_VARIANT 0x04u /* compile.c: not a constant expression (konst()'s memo) */

typedef struct sql_node sql_node;
typedef struct sql_select sql_select;

typedef struct sql_name {
    const char *s; /* bytes (point into the source or the compile arena) */
    uint32_t n;
} sql_name;

struct sql_node {
    uint8_t kind;   /* sql_node_kind */
    uint8_t op;
    uint16_t flags; /* SQL_NF_* */
    uint32_t off, len; /* byte span of the whole expression in the source */
    uint32_t height;   /* levels from here to the deepest leaf, at most SQL_MAX_DEPTH; a
                          variable counts the height of its SET expression, and a nested
                          SELECT two levels (its array of objects) */
    sql_name name;
    sql_value v;       /* SQL_N_LIT */
    sql_node **kids;
    uint32_t nkids;
    sql_name *keys;    /* SQL_N_OBJECT: nkids keys */
    sql_select *sel;   /* SQL_N_SELECT */
};

typedef struct sql_item {
    sql_node *expr; /* NULL for `*` */
    sql_name alias; /* n == 0: no AS */
    uint32_t off, len;
} sql_item;

struct sql_select {
    int value;             /* SELECT VALUE */
    sql_item *items;
    uint32_t nitems;
    sql_name from;         /* top level: the topic filter text (quotes removed); may be empty */
    uint32_t from_off, from_len;
    sql_node *from_expr;   /* nested SELECT: the expression iterated over */
    sql_node *where;       /* NULL: none */
    uint32_t off, len;
};

typedef struct sql_set {
    sql_name name; /* without '@' */
    sql_node *expr;
    uint32_t off, len;
} sql_set;

typedef struct sql_stmt {
    sql_set *sets;
    uint32_t nsets;
    sql_select *sel;
} sql_stmt;

/* Parses a whole statement: [SET @v = e {, @v = e}] SELECT [VALUE] items FROM 'filter'
 * [WHERE e]. Nodes live in `a`. Literal numbers are parsed with sql__num_parse() using a ctx
 * whose version is `v`. Returns SQL_OK or an SQL_E_* with *d filled (line/col located). */
int sql__parse(sql_ctx *cctx, const char *text, size_t n, sql_stmt **out, sql_diag *d);

/* A substitution template: literal text pieces and `${expr}` expressions, alternating.
 * "$$" outside `${...}` stands for a literal '$' (AWS: "$$aws/things/..." republishes to
 * "$aws/things/..."). */
typedef struct sql_tpl_seg {
    sql_name text;  /* literal text (already unescaped), when expr == NULL */
    sql_node *expr; /* a `${...}` expression */
} sql_tpl_seg;

typedef struct sql_tpl_ast {
    sql_tpl_seg *segs;
    uint32_t nsegs;
} sql_tpl_ast;

/* Parses template text[0..n). `st` is the rule's statement (its SET variables' heights count
 * in the expressions' depth), or NULL. */
int sql__parse_template(sql_ctx *cctx, const char *text, size_t n, const sql_stmt *st,
                        sql_tpl_ast **out, sql_diag *d);

/* }====== */

/* {====== text helpers (text.c) */

/* Writes code point cp as UTF-8 (1..4 bytes) at o; returns the byte count. */
size_t sql__utf8_put(char *o, uint32_t cp);
/* Reads four hex digits at p (not past end) into *out; 0 or -1. */
int sql__hex4(const char *p, const char *end, uint32_t *out);
/* *out = the base64 text of data[0..n) (a JSON-safe String in the arena). 0 or an error. */
int sql__base64_encode(sql_ctx *ctx, const void *data, size_t n, sql_value *out);

/* }====== */

/* {====== builtins (func_*.c, registered in func.c) */

typedef int (*sql_fn)(sql_ctx *ctx, int argc, const sql_value *argv, sql_value *out);

#define SQL_FN_DETERMINISTIC 0x01u /* same args -> same result: constant-folded at compile time */
#define SQL_FN_V2016 0x02u         /* only under 2016-03-23 (compile error under 2015-10-08) */
#define SQL_FN_AWS 0x04u           /* calls an AWS service: compile error naming it */
#define SQL_FN_LIT2 0x08u          /* the 2nd argument must be a string literal (encode/decode) */
#define SQL_FN_REGEX 0x10u         /* 2nd argument is a regex; literal patterns precompiled */
#define SQL_FN_STAR 0x20u          /* accepts `*` (the raw payload) as its first argument */

typedef struct sql_func {
    const char *name; /* lower case; lookup is case-insensitive */
    int min_args, max_args; /* -1 max: variadic. Wrong arity gives Undefined at run time. */
    unsigned flags;
    sql_fn fn;
} sql_func;

/* Case-insensitive lookup in the builtin table; NULL when unknown. Thread: any. */
const sql_func *sql__func_lookup(const char *name, size_t n);

/* Each func_*.c exports its table, {0}-terminated; func.c chains them. */
extern const sql_func sql__func_math[];    /* func_math.c: math, bitwise */
extern const sql_func sql__func_string[];  /* func_string.c: string functions */
extern const sql_func sql__func_regex[];   /* func_regex.c: regexp_* (PCRE2) */
extern const sql_func sql__func_misc[];    /* func_misc.c: cast helpers, type tests, get,
                                              concat, transform, encode/decode, hashes, nanvl */
extern const sql_func sql__func_context[]; /* func_context.c: topic, clientid, timestamp, ... */
extern const sql_func sql__func_time[];    /* func_time.c: parse_time, time_to_epoch */
extern const sql_func sql__func_host[];    /* func_host.c: get_thing_shadow (sql_host) */
extern const sql_func sql__func_aws[];     /* func.c: the AWS-service functions (compile error) */

/* Regex support for the compiler: compiles a literal pattern once (NULL + msg on error). The
 * result is freed with sql__regex_free(). Thread: any. */
void *sql__regex_compile(const char *pat, size_t n, char *msg, size_t msgcap);
void sql__regex_free(void *code);
/* Releases per-thread regex scratch in ctx (match data, match context). */
void sql__regex_ctx_free(sql_ctx *ctx);

/* }====== */

/* {====== time zones (tz.c): the system zoneinfo database, for parse_time/time_to_epoch */

typedef struct sql_tz sql_tz;

/* A zone by id ("UTC", "America/Belize", "Etc/GMT+6", or a fixed offset such as "+01:00").
 * Loaded from /usr/share/zoneinfo (TZDIR overrides) on first use and cached for the life of
 * the process (the one file access sql/ makes). NULL when unknown. Thread: any (locked). */
const sql_tz *sql__tz_get(const char *name, size_t n);
/* UTC offset, abbreviation ("CST") and DST flag in force at utc_s (seconds since epoch). */
int sql__tz_at(const sql_tz *z, int64_t utc_s, int32_t *offset_s, const char **abbr, int *isdst);
/* The UTC instant of local time local_s in zone z (earlier offset on overlaps; gaps shifted
 * forward, as java.time does). */
int64_t sql__tz_local_to_utc(const sql_tz *z, int64_t local_s);
/* The zone's id as given to sql__tz_get(). */
const char *sql__tz_name(const sql_tz *z);
/* Days since 1970-01-01 of a proleptic Gregorian date. Thread: any. */
int64_t sql__days_from_civil(int64_t y, int m, int d);

/* }====== */

/* {====== programs and the VM (compile.c, vm.c, exec.c) */

/* Instruction word (8 bytes):
 *
 *   0      8       16              32              48             63
 *   +------+-------+---------------+---------------+---------------+
 *   |  op  | flags |       a       |       b       |       c       |
 *   +------+-------+---------------+---------------+---------------+
 *                                  |        bx / j (32 bits)       |
 *
 * Registers and constant indexes are 16-bit; jumps are signed 32-bit offsets relative to the
 * next instruction. Wider than Lua's 32-bit word: rules are small, and the extra width removes
 * every "too many constants/registers" case from the compiler. */
typedef struct sql_insn {
    uint8_t op;
    uint8_t flags;
    uint16_t a;
    union {
        struct {
            uint16_t b, c;
        };
        uint32_t bx;
        int32_t j;
    };
} sql_insn;
_Static_assert(sizeof(sql_insn) == 8, "sql_insn is 8 bytes");

enum sql_opcode {
#define OP(name, fmt, flags, syn) SQL_OP_##name,
#include "opcodes.def"
#undef OP
    SQL_OP_COUNT_
};

typedef struct sql_callsite {
    const sql_func *f;
    void *aux; /* compiled literal regex, or NULL */
    uint32_t off, len; /* span of the call, for explain */
} sql_callsite;

typedef struct sql_tpl_part {
    const char *text; /* literal text when entry < 0 */
    uint32_t len;
    int32_t entry;    /* code entry of a `${...}` expression, or -1 */
} sql_tpl_part;

typedef struct sql_tpl {
    sql_tpl_part *parts;
    uint32_t nparts;
    uint32_t nexprs;
    int32_t *expr_parts; /* k-th expression -> index into parts */
} sql_tpl;

struct sql_program {
    sql_version version;
    char *filter;         /* FROM topic filter, NUL-terminated ("" if none) */
    size_t filter_len;
    sql_insn *code;
    uint32_t ncode;
    uint32_t main_entry;
    sql_value *k;         /* constants */
    uint32_t nk;
    sql_callsite *calls;
    uint32_t ncalls;
    sql_path_node *paths; /* payload path trie (sql_pathset) */
    uint32_t npaths, nslots;
    int32_t root_slot;    /* slot of the whole payload, -1 if unused */
    uint32_t nregs;
    sql_tpl *tpls;
    uint32_t ntpls;
    sql_arena arena;      /* everything above lives here (the AST does not survive compile) */
};

/* The disassembler's view of an opcode. */
typedef struct sql_opinfo {
    const char *name, *fmt, *synopsis;
    unsigned flags;
} sql_opinfo;
extern const sql_opinfo sql__opinfo[SQL_OP_COUNT_];

/* One plan of a sql_scanset (scan.c) as one sql_exec uses it for the current message. */
typedef struct sql_shared_plan {
    uint8_t *need;     /* per merged node: SQL_NEED_* for the active programs */
    sql_value *vals;   /* per merged node: what the shared scan read */
    uint32_t *top;     /* per VALUE node: the topmost VALUE node above it or itself, which
                          the scan read (the value is walked down from there) */
    uint32_t *marked;  /* nodes whose need is not SKIP (to clear them next time) */
    uint32_t nmarked, cap;
    int state;         /* 0: not scanned yet; 1: scanned; -1: failed, programs scan alone */
} sql_shared_plan;

/* A scan shared by the programs of a sql_scanset for one message (sql_exec_scan_begin). */
typedef struct sql_shared {
    const struct sql_scanset *set; /* NULL: none begun */
    const void *payload;   /* the message's payload, which every run must share */
    size_t payload_len;
    int64_t now_ms;        /* timestamp() of runs whose message does not fix it */
    uint32_t *active;      /* programs of the set that run on this message */
    uint32_t nactive, capactive;
    uint8_t *on;           /* per program of the set: 1 when active */
    uint32_t capon;
    sql_shared_plan plan[2]; /* per SQL version */
    sql_arena arena;       /* the values read by the shared scans */
    int32_t k;             /* the set's program being run; -1: a run of its own */
} sql_shared;

/* sql_exec_run_matched(), as program k of the shared scan begun on x (k < 0: on its own). */
int sql__exec_run(sql_exec *x, const sql_program *p, const sql_message *m, int32_t k,
                  sql_output *out);

/* Fills the slots of x->prog from the shared scan of the current message (scanning it on the
 * first call). Returns 0, or -1 when the shared scan could not read the payload (the program
 * then scans it alone, so that its results are the ones it gets on its own). scan.c. */
int sql__shared_fill(sql_exec *x);
void sql__shared_deinit(sql_shared *sh);

/* Per-thread execution state (the public sql_exec). */
struct sql_exec {
    sql_ctx ctx;
    sql_value *regs;
    uint32_t nregs;
    sql_value *slots;
    uint32_t nslots;
    sql_site_use *uses; /* one per call site of the largest program seen (ctx.uses) */
    uint32_t nuses;
    sql_shared sh;     /* a scan shared by many programs (scan.c) */
    int scanned;   /* payload scanned for the current (program, message) */
    int is_json;   /* after the scan: 1 JSON, 0 not JSON */
    sql_buf out;   /* serialized output of the last fired run */
    sql_buf tout;  /* text of the last template */
    const sql_program *prog; /* of the last run (templates use it) */
    int fired;
};

/* Runs the code from `entry` until RET/NOFIRE. Returns SQL_FIRED with *result set, SQL_NOT_FIRED,
 * or an SQL_E_* (ctx error set). Thread: owner of x. */
int sql__vm_run(sql_exec *x, const sql_program *p, uint32_t entry, sql_value *result);

/* }====== */

#endif

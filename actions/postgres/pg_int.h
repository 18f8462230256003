/*
 * pg_int.h -- private to actions/postgres: the parsed statement (pg_statement.c) and the pure
 * helpers of the delivery code (postgres.c) that the unit tests exercise without a server.
 *
 * Ownership: an act_pg_stmt owns its strings; act_pg__stmt_deinit() frees them.
 * Thread: every function here is pure and may run on any thread.
 */
#ifndef SLUICE_ACT_PG_INT_H
#define SLUICE_ACT_PG_INT_H

#include <stddef.h>

#include "../action.h"

/* At most this many `${...}` per statement: the engine substitutes at most ACT_MAX_FIELDS
 * templates per action. */
#define ACT_PG_MAX_PARAMS ACT_MAX_FIELDS

/* A statement with every `${expr}` replaced by `$1`, `$2`, ... in order of appearance. */
typedef struct act_pg_stmt {
    char *sql;                      /* the text for PQprepare */
    char *tpl[ACT_PG_MAX_PARAMS];   /* "${expr}" of parameter k+1, as written */
    size_t nparams;
} act_pg_stmt;

/* Parses text into *st (zeroed first). A `${` starts an expression that ends at the matching
 * `}` (braces nest; quotes '...' and "..." inside the expression are skipped, as the SQL lexer
 * does); everything else is copied unchanged, including `$$`. Refuses an empty statement, an
 * unclosed or empty `${}`, more than ACT_PG_MAX_PARAMS parameters, and a `${` inside a quoted
 * SQL string, identifier, dollar-quoted string or comment (there `$n` would not be a
 * parameter). Returns 0, or -1 with a message in err[0..cap) (st is then empty). */
int act_pg__stmt_parse(const char *text, act_pg_stmt *st, char *err, size_t cap);
void act_pg__stmt_deinit(act_pg_stmt *st);

/* Appends one line for a message: {"sql": "<st->sql>", "params": ["v", null, ...]}, where
 * param k is fields[k], or null when nulls && nulls[k]. Returns 0, or -1 on OOM. */
int act_pg__format_line(const act_pg_stmt *st, const char *const *fields,
                        const unsigned char *nulls, act_buf *out);

/* What an error with this SQLSTATE means for delivery (NULL or "" for a client-side error
 * without one: the connection broke). */
typedef enum act_pg_errkind {
    ACT_PG_ERR_CONN,      /* 08xxx, 57P01-57P03, no SQLSTATE: retry on a new connection */
    ACT_PG_ERR_TRANSIENT, /* 40001, 40P01, 53xxx, and 57014 / 55P03 (statement or lock
                             timeout, cancel): retry on the same connection */
    ACT_PG_ERR_PERMANENT  /* 22xxx, 23xxx and everything else: the message fails */
} act_pg_errkind;

act_pg_errkind act_pg__classify(const char *sqlstate);

/* The connection parameters sluice passes to PQconnectdbParams() (expand_dbname 0): the
 * conninfo's keywords, checked, then sluice's defaults. NULL-terminated arrays; values owned. */
#define ACT_PG_MAX_KEYS 64
typedef struct act_pg_params {
    const char *keys[ACT_PG_MAX_KEYS];
    char *vals[ACT_PG_MAX_KEYS];
    size_t n;
} act_pg_params;

/* Checks what conninfo may make libpq do (pg_conninfo.c: keywords on an allow-list, files only
 * beneath h's certificate directory, a TCP host, no ambient credentials) and fills *p. 0, or -1
 * with the reason in err[0..cap) (p is then empty). Reads the environment and resolves file
 * names; no connection. */
int act_pg__conninfo(const char *conninfo, const eng_host *h, act_pg_params *p, char *err,
                     size_t cap);
void act_pg__params_deinit(act_pg_params *p);

/* Writes conninfo without its password as postgresql://user@host:port/dbname into
 * out[0..cap). Returns 0, or -1 with libpq's message in err when conninfo does not parse. */
int act_pg__resource(const char *conninfo, char *out, size_t cap, char *err, size_t errcap);

#endif

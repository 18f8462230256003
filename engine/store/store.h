/*
 * store.h -- header of engine/store/: where the state a fleet shares lives. Two backends: the
 * data dir (the default; one instance, files written atomically) and PostgreSQL (`store` /
 * SLUICE_STORE_URL = postgresql://...; every instance of a fleet on one database).
 *
 * What lives where:
 *
 *     state                 data dir                         PostgreSQL
 *     rules (+ revisions)   <dataDir>/rules/<name>.json      sluice_rules (tombstones for deletes)
 *     device shadows        <dataDir>/shadows.db (SQLite)    sluice_shadows (shadow/store_pg.c)
 *     dead letters          <dataDir>/deadletter/ (dlq.c)    sluice_dead_letters
 *     instances             (itself only)                    sluice_instances (heartbeats)
 *     ingest journal        <dataDir>/journal/               <dataDir>/journal/ (always local)
 *
 * The rules sit behind eng_rule_store, a small vtable both backends implement; the registry
 * (rule_registry.c) is its only user. A change gets a sequence number from the store (`seq`),
 * greater for every later change of any rule, so an instance can apply other instances'
 * changes in order and skip what it already has. PostgreSQL hands the numbers out under one row
 * lock, so they are assigned in commit order and "everything after seq N" never misses a change
 * committed late (see rules_pg.c). Every change notifies `sluice_rules` (LISTEN/NOTIFY); the
 * watcher thread (store.c) applies changes within milliseconds of a notification, and asks for
 * changes every few seconds anyway (a lost notification heals), and compares everything after
 * a reconnect.
 *
 * Errors: a store that cannot be reached (connection refused, broken, timed out) is a 503
 * ServiceUnavailableException; anything else the database refuses is a 500. The store URL's
 * password never appears in a log line or an error message (eng_pg_where()).
 *
 * Thread: everything here may be called from any thread unless its header says otherwise.
 */
#ifndef SLUICE_ENGINE_STORE_H
#define SLUICE_ENGINE_STORE_H

#include <libpq-fe.h>
#include <stdint.h>

#include "engine_int.h"

/* {====== PostgreSQL connections (pg.c) */

typedef struct eng_pg eng_pg;

/* A pool of at most max_conns connections to url (postgresql://... or key=value conninfo).
 * The URL's own settings are kept; sluice adds what it leaves out: connect_timeout 5,
 * application_name "sluice <instance>", TCP keepalives, tcp_user_timeout 15 s (a dead peer is
 * noticed in seconds, not hours). Connects once to check the URL and the server. NULL with e set
 * (503 when the server cannot be reached, 400 when the URL does not parse). */
eng_pg *eng_pg_open(const char *url, const char *app_name, int max_conns, eng_error *e);
void eng_pg_close(eng_pg *pg);
/* "postgresql://user@host:port/dbname": where the store is, without its password. */
const char *eng_pg_where(const eng_pg *pg);

/* A connection of the pool, connected and idle (a connection the server closed meanwhile is
 * replaced first); waits while all are in use. NULL with e set (503) when the server cannot
 * be reached. Give it back with eng_pg_give(). */
PGconn *eng_pg_take(eng_pg *pg, eng_error *e);
/* Returns c to the pool; a broken connection is closed instead. */
void eng_pg_give(eng_pg *pg, PGconn *c);
/* A connection of its own (LISTEN, the dead-letter writer), outside the pool: PQfinish() it.
 * NULL with e set. */
PGconn *eng_pg_connect(eng_pg *pg, eng_error *e);

/* Runs sql with text parameters params[0..n) (NULL is SQL NULL; n 0: sql may hold several
 * statements, and the last one's result counts). Returns the result when its
 * status is `ok` (PGRES_COMMAND_OK or PGRES_TUPLES_OK), else NULL with e set through
 * eng_pg_error(). The caller PQclear()s the result. */
PGresult *eng_pg_exec(eng_pg *pg, PGconn *c, const char *sql, int n, const char *const *params,
                      ExecStatusType ok, const char *what, eng_error *e);
/* e from a failed result (r may be NULL: the connection's error): 503 ServiceUnavailable when
 * the connection is gone or the server is shutting down or refusing connections, 500
 * InternalException otherwise; the message names what failed and where. Returns -1. */
int eng_pg_error(eng_pg *pg, PGconn *c, const PGresult *r, const char *what, eng_error *e);
/* 1 when the error in r / on c means the database is unreachable (see eng_pg_error). */
int eng_pg_unreachable(PGconn *c, const PGresult *r);

/* Writes url without its password as postgresql://user@host:port/dbname into out. 0, or -1
 * when the URL does not parse (out then says so). Thread: any. */
int eng_pg_redact(const char *url, char *out, size_t cap);

/* Creates or brings the schema up to date: the numbered migrations of migrate.c not yet in
 * sluice_schema_migrations, each in its own transaction, under an advisory lock, so instances
 * starting together migrate once. A database migrated by a newer sluice is accepted (migrations
 * only add; README.md, "Upgrading a fleet") and logged. 0, or -1 with e set. Thread: main. */
int eng_pg_migrate(eng_pg *pg, eng_error *e);
/* The newest migration this build knows. */
int eng_pg_schema_version(void);

/* }====== */

/* {====== the rule store */

/* One rule as stored, or one change of it. */
typedef struct eng_rule_row {
    char name[129];
    char *payload_json;      /* the topicRulePayload (malloc'd); NULL: the rule was deleted */
    int64_t created_at;      /* seconds since the epoch */
    uint64_t revision;       /* 0 at creation, +1 for every replace (a re-creation continues) */
    uint64_t seq;            /* the store's change number: greater for every later change */
} eng_rule_row;

void eng_rule_row_deinit(eng_rule_row *r);

/* Called per row; a nonzero result stops the walk and is returned. */
typedef int (*eng_rule_row_fn)(void *ud, const eng_rule_row *row, eng_error *e);

#define ENG_RULE_ANY_REVISION UINT64_MAX

typedef struct eng_rule_store eng_rule_store;

typedef struct eng_rule_store_vt {
    int version;             /* 1 */
    const char *name;        /* "dataDir", "postgresql" */
    /* 1 when other instances change the store too: the store, not the local registry, decides
     * whether a rule exists, and changes() reports theirs. */
    int shared;
    /* Every rule, in name order; *upto: the seq of the newest change they include (changes()
     * after it are newer). A corrupt record is an error. */
    int (*load)(eng_rule_store *self, eng_rule_row_fn fn, void *ud, uint64_t *upto,
                eng_error *e);
    /* Every change with seq > after, in seq order, deletions included. NULL: none (a store
     * that only this instance writes). */
    int (*changes)(eng_rule_store *self, uint64_t after, eng_rule_row_fn fn, void *ud,
                   eng_error *e);
    /* The rule called name into *out (caller deinits), or -1 with e 404. */
    int (*get)(eng_rule_store *self, const char *name, eng_rule_row *out, eng_error *e);
    /* Stores a new rule (409 ResourceAlreadyExistsException if one of that name exists), a
     * new revision of one (404 if absent; 409 ConflictingResourceUpdateException when
     * expect_revision is not ENG_RULE_ANY_REVISION and the rule is at another revision), or
     * deletes one (404). Durable when it returns 0; *out (may be NULL) gets the name,
     * revision, created_at and seq the store gave the change (payload_json stays NULL). */
    int (*create)(eng_rule_store *self, const char *name, const char *payload_json,
                  eng_rule_row *out, eng_error *e);
    int (*replace)(eng_rule_store *self, const char *name, const char *payload_json,
                   uint64_t expect_revision, eng_rule_row *out, eng_error *e);
    int (*remove)(eng_rule_store *self, const char *name, eng_rule_row *out, eng_error *e);
    void (*close)(eng_rule_store *self);
    /* version 1 ends here; append only and bump version */
} eng_rule_store_vt;

struct eng_rule_store {
    const eng_rule_store_vt *vt;
};

/* <data_dir>/rules/<name>.json, one file per rule written atomically (rules_dir.c). Only this
 * instance writes it: the registry serializes the writes. NULL with e set on OOM. */
eng_rule_store *eng_rule_store_dir_open(const char *data_dir, eng_error *e);
/* The sluice_rules table (rules_pg.c); pg is borrowed and outlives the store. */
eng_rule_store *eng_rule_store_pg_open(eng_pg *pg, eng_error *e);
/* Forgets deletions older than max_age_s (the watcher, now and then). 0 or -1. */
int eng_rule_store_pg_purge(eng_pg *pg, int64_t max_age_s, eng_error *e);

/* Moves the rules of <data_dir>/rules/ (an instance that ran on the data dir) into the shared
 * store through env->registry, then renames the directory rules.imported (import.c). A name
 * the store holds already keeps the store's rule. 0 (also when there is nothing to import), or
 * -1 with e set: a rule that does not compile or a store that refuses; the directory stays.
 * Thread: main, after eng_registry_load(). */
int eng_store_import_dir_rules(eng_env *env, eng_error *e);

/* }====== */

/* {====== the dead-letter store in PostgreSQL (deadletter_pg.c; the API: actions/action.h) */

/* The act_dlq of the fleet: table sluice_dead_letters, written by a thread of its own in group
 * commits (an asynchronous append completes once its transaction committed), bounded like the
 * data-dir store (max_bytes, max_age_s, fleet-wide). instance (borrowed) marks the records this
 * instance writes and its re-drive claims. pg and host are borrowed and outlive the store.
 * NULL with e set. */
act_dlq *eng_dlq_pg_open(eng_pg *pg, const char *instance, long long max_bytes,
                         long long max_age_s, const eng_host *host, eng_error *e);

/* }====== */

/* {====== the service's store (store.c) */

typedef struct eng_store eng_store;

/* The store cfg names: cfg->store_url empty, the data dir; else PostgreSQL, connected and
 * migrated. NULL with e set (a database that cannot be reached at start is an error: an
 * instance without its rules would drop what it should handle). Thread: main. */
eng_store *eng_store_open(const eng_config *cfg, eng_error *e);
/* The rule store (borrowed; lives as long as st). */
eng_rule_store *eng_store_rules(eng_store *st);
/* The database, or NULL for the data dir. */
eng_pg *eng_store_pg(eng_store *st);
/* "dataDir <path>" or the database's eng_pg_where(). */
const char *eng_store_where(const eng_store *st);
/* Starts the watcher (PostgreSQL only; a no-op for the data dir): one thread that LISTENs for
 * rule changes and applies them through env->registry (eng_registry_sync), asks for changes
 * every ENG_STORE_RECONCILE_MS anyway, compares everything after each reconnect
 * (eng_registry_reconcile), and registers this instance with a heartbeat every
 * ENG_STORE_HEARTBEAT_MS (eng_instance_beat). env outlives the watcher. Thread: main. */
int eng_store_start(eng_store *st, eng_env *env, eng_error *e);
/* Stops the watcher and marks this instance stopped. Thread: main. */
void eng_store_stop(eng_store *st);
void eng_store_close(eng_store *st);
/* 1 while the watcher's connection to the database is up (always 1 for the data dir). */
int eng_store_connected(const eng_store *st);
/* 1 when this instance takes the MQTT topics that start with '$' (shadow requests, rules on
 * $aws/...): it holds its shared-subscription group's lease (store.c), or there is no fleet
 * (no shared store, no shared group, or st NULL); 0 when another instance does; -1 while it is
 * not known yet (at start: leave the session's subscriptions as they are). */
int eng_store_holds_dollar(const eng_store *st);
/* At a clean stop: hands the lease to another instance, waiting up to ms until one has it and
 * its subscriptions are acknowledged. 1 then (the caller may drop its '$' subscriptions), 0
 * when nobody took it or this instance did not hold it (keep them: the session holds what
 * arrives). Thread: main, before the input stops. */
int eng_store_handoff(eng_store *st, int ms);

#define ENG_STORE_RECONCILE_MS 5000
#define ENG_STORE_HEARTBEAT_MS 3000
#define ENG_STORE_STALE_S 15           /* an instance not seen for this long is "stale" */

/* }====== */

#endif

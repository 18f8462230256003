/*
 * migrate.c -- the shared store's schema, as numbered migrations that sluice applies itself.
 *
 * sluice_schema_migrations records each migration applied (version, when, what). At start an
 * instance takes a session advisory lock (one key for sluice), applies in order each migration
 * newer than the newest recorded, each in its own transaction together with its record, and
 * releases the lock. Instances that start together queue on the lock; the first migrates and
 * the others find nothing left to do. A crash in the middle leaves the migrations before it
 * applied and the one it was in rolled back, so the next start continues from there.
 *
 * Migrations only ever add (tables, columns with defaults, indexes), so the instances of the
 * previous release keep working against a schema the next release migrated: that is what lets
 * a fleet upgrade one instance at a time. An instance that finds a newer schema than it knows
 * therefore starts, and says so. Rejected: running migrations outside sluice (a separate tool
 * or step), which makes every deployment learn an extra order of operations.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pg_advisory_lock's key: "sluice" in ASCII, so other applications' keys do not collide */
#define LOCK_KEY "126943580414309"

static const struct {
    int version;
    const char *what;
    const char *sql;
} migrations[] = {
    {1, "rules, shadows, dead letters, instances",
     /* seq of a rule change: taken from sluice_counters under its row lock, so the numbers are
      * handed out in commit order (rules_pg.c) */
     "CREATE TABLE sluice_counters(name text PRIMARY KEY, value bigint NOT NULL);"
     "INSERT INTO sluice_counters VALUES ('rules', 0);"
     /* payload NULL: a deleted rule, kept a while so other instances learn of the delete,
      * and so a re-created rule continues its revisions */
     "CREATE TABLE sluice_rules("
     " name text PRIMARY KEY,"
     " revision bigint NOT NULL,"
     " created_at bigint NOT NULL,"
     " payload text,"
     " seq bigint NOT NULL,"
     " changed_at timestamptz NOT NULL DEFAULT now());"
     "CREATE INDEX sluice_rules_seq ON sluice_rules(seq);"
     /* the shadow store (shadow/store_pg.c): doc NULL is a tombstone */
     "CREATE TABLE sluice_shadows("
     " thing text NOT NULL,"
     " shadow text NOT NULL,"
     " rev bigint NOT NULL,"
     " version bigint NOT NULL,"
     " updated_at bigint NOT NULL,"
     " doc text,"
     " PRIMARY KEY(thing, shadow));"
     "CREATE INDEX sluice_shadows_tombstones ON sluice_shadows(updated_at) WHERE doc IS NULL;"
     /* dead letters of the whole fleet (deadletter_pg.c); claimed_*: a re-drive in progress */
     "CREATE TABLE sluice_dead_letters("
     " id bigserial PRIMARY KEY,"
     " rule text NOT NULL,"
     " at bigint NOT NULL,"
     " bytes integer NOT NULL,"
     " instance text NOT NULL,"
     " record text NOT NULL,"
     " claimed_by text,"
     " claimed_at bigint);"
     "CREATE INDEX sluice_dead_letters_rule ON sluice_dead_letters(rule, id);"
     "CREATE INDEX sluice_dead_letters_at ON sluice_dead_letters(at);"
     /* the fleet (instance.c) */
     "CREATE TABLE sluice_instances("
     " id text PRIMARY KEY,"
     " client_id text NOT NULL,"
     " version text NOT NULL,"
     " http_addr text NOT NULL,"
     " host text NOT NULL,"
     " started_at timestamptz NOT NULL,"
     " last_seen timestamptz NOT NULL,"
     " health text NOT NULL,"
     " stopped boolean NOT NULL DEFAULT false);"},
};

#define NMIGRATIONS (sizeof migrations / sizeof migrations[0])

int eng_pg_schema_version(void) { return migrations[NMIGRATIONS - 1].version; }

static int run(eng_pg *pg, PGconn *c, const char *sql, const char *what, eng_error *e) {
    PGresult *r = eng_pg_exec(pg, c, sql, 0, NULL, PGRES_COMMAND_OK, what, e);
    PQclear(r);
    return r ? 0 : -1;
}

/* The newest migration recorded, or -1 with e set. */
static int current(eng_pg *pg, PGconn *c, eng_error *e) {
    PGresult *r = eng_pg_exec(pg, c, "SELECT coalesce(max(version), 0) FROM "
                              "sluice_schema_migrations", 0, NULL, PGRES_TUPLES_OK,
                              "reading the schema version", e);
    int v = r ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

static int apply(eng_pg *pg, PGconn *c, size_t i, eng_error *e) {
    char ver[16];
    snprintf(ver, sizeof ver, "%d", migrations[i].version);
    const char *params[] = {ver, migrations[i].what};
    if (run(pg, c, "BEGIN", "a migration", e))
        return -1;
    PGresult *r = NULL;
    if (run(pg, c, migrations[i].sql, migrations[i].what, e) ||
        !(r = eng_pg_exec(pg, c, "INSERT INTO sluice_schema_migrations(version, description) "
                          "VALUES ($1, $2)", 2, params, PGRES_COMMAND_OK,
                          "recording a migration", e)) ||
        run(pg, c, "COMMIT", "a migration", e)) {
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    eng_log(ENG_LOG_INFO, "store.migrated", "shared store %s: schema version %d (%s)",
            eng_pg_where(pg), migrations[i].version, migrations[i].what);
    return 0;
}

int eng_pg_migrate(eng_pg *pg, eng_error *e) {
    PGconn *c = eng_pg_take(pg, e);
    if (!c)
        return -1;
    int rc = -1, locked = 0;
    /* the lock waits for an instance migrating now; a statement timeout would end the wait
     * early, so none is set on this connection */
    if (run(pg, c, "SET lock_timeout = 0", "a migration", e))
        goto out;
    PGresult *r = eng_pg_exec(pg, c, "SELECT pg_advisory_lock(" LOCK_KEY ")", 0, NULL,
                              PGRES_TUPLES_OK, "taking the migration lock", e);
    if (!r)
        goto out;
    PQclear(r);
    locked = 1;
    if (run(pg, c, "CREATE TABLE IF NOT EXISTS sluice_schema_migrations("
                   " version integer PRIMARY KEY,"
                   " description text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
            "creating sluice_schema_migrations", e))
        goto out;
    int have = current(pg, c, e);
    if (have < 0)
        goto out;
    for (size_t i = 0; i < NMIGRATIONS; i++)
        if (migrations[i].version > have && apply(pg, c, i, e))
            goto out;
    if (have > eng_pg_schema_version())
        eng_log(ENG_LOG_WARN, "store.newer_schema",
                "shared store %s has schema version %d, newer than this sluice's %d: a newer "
                "release migrated it (migrations only add, so this instance runs); upgrade it "
                "soon", eng_pg_where(pg), have, eng_pg_schema_version());
    rc = 0;
out:
    if (locked)
        PQclear(PQexec(c, "SELECT pg_advisory_unlock(" LOCK_KEY ")"));
    eng_pg_give(pg, c);
    return rc;
}

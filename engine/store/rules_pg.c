/*
 * rules_pg.c -- the rules of a fleet in PostgreSQL: table sluice_rules (migrate.c).
 *
 * Every change is one statement, so one transaction and one round trip:
 *
 *     WITH c AS (UPDATE sluice_counters SET value = value + 1 WHERE name = 'rules'
 *                RETURNING value)
 *     <insert | update> ... seq = c.value ... RETURNING ..., pg_notify('sluice_rules', seq)
 *
 * The counter row's lock is held until the statement commits, so two changes never hold the
 * same number and numbers are handed out in commit order: a reader that sees change N has seen
 * every change before it, and "changes after N" (changes()) misses nothing. Rejected: a
 * sequence (nextval), whose numbers are taken at call time, so a change committed after a later
 * number was read would be skipped for good. Rule changes are admin calls, a few per second at
 * most, so serializing them costs nothing that matters. The notification goes out at commit.
 *
 * A delete keeps the row with payload NULL (a tombstone): other instances learn of it from
 * changes(), and a rule created again under the name continues its revisions, so dead letters
 * and journal records of the old rule never match the new one. Tombstones are purged after a
 * while (eng_rule_store_pg_purge); an instance that was away longer compares everything when
 * it reconnects. Whether a rule exists is decided here, in the statement: the local registry
 * may not have seen another instance's change yet.
 */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pg_store {
    eng_rule_store base;
    eng_pg *pg;
} pg_store;

#define NEXT_SEQ                                                                              \
    "WITH c AS (UPDATE sluice_counters SET value = value + 1 WHERE name = 'rules' "           \
    "RETURNING value) "

static const char SQL_CREATE[] =
    NEXT_SEQ
    "INSERT INTO sluice_rules AS r(name, revision, created_at, payload, seq) "
    "SELECT $1::text, 0, $3::bigint, $2::text, c.value FROM c "
    "ON CONFLICT (name) DO UPDATE SET revision = r.revision + 1, created_at = EXCLUDED.created_at,"
    " payload = EXCLUDED.payload, seq = EXCLUDED.seq, changed_at = now() "
    "WHERE r.payload IS NULL "
    "RETURNING r.revision, r.created_at, r.seq, pg_notify('sluice_rules', r.seq::text)";

static const char SQL_REPLACE[] =
    NEXT_SEQ
    "UPDATE sluice_rules AS r SET revision = r.revision + 1, payload = $2, seq = c.value,"
    " changed_at = now() FROM c "
    "WHERE r.name = $1 AND r.payload IS NOT NULL AND ($3::bigint IS NULL OR r.revision = $3) "
    "RETURNING r.revision, r.created_at, r.seq, pg_notify('sluice_rules', r.seq::text)";

static const char SQL_REMOVE[] =
    NEXT_SEQ
    "UPDATE sluice_rules AS r SET payload = NULL, seq = c.value, changed_at = now() FROM c "
    "WHERE r.name = $1 AND r.payload IS NOT NULL "
    "RETURNING r.revision, r.created_at, r.seq, pg_notify('sluice_rules', r.seq::text)";

static const char SQL_COLUMNS[] = "SELECT name, payload, created_at, revision, seq FROM sluice_rules ";

static uint64_t u64(const PGresult *r, int row, int col) {
    return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

/* Row i of a SELECT of SQL_COLUMNS, borrowing the payload from r. */
static void row_of(const PGresult *r, int i, eng_rule_row *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, i, 0));
    out->payload_json = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
    out->created_at = strtoll(PQgetvalue(r, i, 2), NULL, 10);
    out->revision = u64(r, i, 3);
    out->seq = u64(r, i, 4);
}

/* Runs a SELECT of SQL_COLUMNS and calls fn per row (payload borrowed for the call). */
static int walk(pg_store *st, PGconn *c, const char *sql, int n, const char *const *params,
                eng_rule_row_fn fn, void *ud, eng_error *e) {
    PGresult *r = eng_pg_exec(st->pg, c, sql, n, params, PGRES_TUPLES_OK, "reading rules", e);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && !rc; i++) {
        eng_rule_row row;
        row_of(r, i, &row);
        rc = fn(ud, &row, e);
    }
    PQclear(r);
    return rc;
}

static int pg_load(eng_rule_store *self, eng_rule_row_fn fn, void *ud, uint64_t *upto,
                   eng_error *e) {
    pg_store *st = (pg_store *)self;
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    /* the counter first: every change numbered up to it has committed, so the rules read next
     * include them; anything newer is applied again by changes(), which is harmless */
    PGresult *r = eng_pg_exec(st->pg, c, "SELECT value FROM sluice_counters WHERE name = "
                              "'rules'", 0, NULL, PGRES_TUPLES_OK, "reading rules", e);
    int rc = -1;
    if (r && PQntuples(r) == 1) {
        *upto = u64(r, 0, 0);
        char sql[200];
        snprintf(sql, sizeof sql, "%sWHERE payload IS NOT NULL ORDER BY name", SQL_COLUMNS);
        rc = walk(st, c, sql, 0, NULL, fn, ud, e);
    } else if (r) {
        eng_error_set(e, 500, "InternalException", "the shared store %s has no rule counter",
                      eng_pg_where(st->pg));
    }
    PQclear(r);
    eng_pg_give(st->pg, c);
    return rc;
}

static int pg_changes(eng_rule_store *self, uint64_t after, eng_rule_row_fn fn, void *ud,
                      eng_error *e) {
    pg_store *st = (pg_store *)self;
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    char a[24], sql[200];
    snprintf(a, sizeof a, "%" PRIu64, after);
    snprintf(sql, sizeof sql, "%sWHERE seq > $1 ORDER BY seq", SQL_COLUMNS);
    const char *params[] = {a};
    int rc = walk(st, c, sql, 1, params, fn, ud, e);
    eng_pg_give(st->pg, c);
    return rc;
}

typedef struct got {
    eng_rule_row *out;
    int found;
} got;

static int copy_row(void *ud, const eng_rule_row *row, eng_error *e) {
    got *g = ud;
    *g->out = *row;
    g->out->payload_json = row->payload_json ? strdup(row->payload_json) : NULL;
    g->found = 1;
    return row->payload_json && !g->out->payload_json
               ? eng_error_set(e, 500, "InternalException", "out of memory")
               : 0;
}

static int pg_get(eng_rule_store *self, const char *name, eng_rule_row *out, eng_error *e) {
    pg_store *st = (pg_store *)self;
    memset(out, 0, sizeof *out);
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    char sql[200];
    snprintf(sql, sizeof sql, "%sWHERE name = $1 AND payload IS NOT NULL", SQL_COLUMNS);
    const char *params[] = {name};
    got g = {out, 0};
    int rc = walk(st, c, sql, 1, params, copy_row, &g, e);
    eng_pg_give(st->pg, c);
    if (rc == 0 && !g.found)
        rc = eng_error_set(e, 404, "ResourceNotFoundException", "rule %s does not exist", name);
    return rc;
}

/* Runs one of the change statements. 0 with *out filled, 1 when it changed nothing (the
 * caller says why), -1 with e set. */
static int change(pg_store *st, const char *sql, int n, const char *const *params,
                  const char *name, eng_rule_row *out, eng_error *e) {
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    PGresult *r = eng_pg_exec(st->pg, c, sql, n, params, PGRES_TUPLES_OK, "writing a rule", e);
    eng_pg_give(st->pg, c);
    if (!r)
        return -1;
    int rc = PQntuples(r) == 1 ? 0 : 1;
    if (rc == 0 && out) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->revision = u64(r, 0, 0);
        out->created_at = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        out->seq = u64(r, 0, 2);
    }
    PQclear(r);
    return rc;
}

static int pg_create(eng_rule_store *self, const char *name, const char *payload_json,
                     eng_rule_row *out, eng_error *e) {
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    const char *params[] = {name, payload_json, now};
    int rc = change((pg_store *)self, SQL_CREATE, 3, params, name, out, e);
    if (rc == 1)
        rc = eng_error_set(e, 409, "ResourceAlreadyExistsException", "rule %s already exists",
                           name);
    return rc;
}

static int pg_replace(eng_rule_store *self, const char *name, const char *payload_json,
                      uint64_t expect_revision, eng_rule_row *out, eng_error *e) {
    char rev[24];
    snprintf(rev, sizeof rev, "%" PRIu64, expect_revision);
    const char *params[] = {name, payload_json,
                            expect_revision == ENG_RULE_ANY_REVISION ? NULL : rev};
    int rc = change((pg_store *)self, SQL_REPLACE, 3, params, name, out, e);
    if (rc != 1)
        return rc;
    /* nothing changed: no such rule, or another revision than expected */
    eng_rule_row cur;
    if (pg_get(self, name, &cur, e))
        return -1;
    eng_rule_row_deinit(&cur);
    return eng_error_set(e, 409, "ConflictingResourceUpdateException",
                         "rule %s changed meanwhile (revision %" PRIu64 ", expected %" PRIu64
                         ")", name, cur.revision, expect_revision);
}

static int pg_remove(eng_rule_store *self, const char *name, eng_rule_row *out,
                     eng_error *e) {
    const char *params[] = {name};
    int rc = change((pg_store *)self, SQL_REMOVE, 1, params, name, out, e);
    if (rc == 1)
        rc = eng_error_set(e, 404, "ResourceNotFoundException", "rule %s does not exist", name);
    return rc;
}

static void pg_close(eng_rule_store *self) { free(self); }

static const eng_rule_store_vt pg_vt = {
    .version = 1,
    .name = "postgresql",
    .shared = 1,
    .load = pg_load,
    .changes = pg_changes,
    .get = pg_get,
    .create = pg_create,
    .replace = pg_replace,
    .remove = pg_remove,
    .close = pg_close,
};

eng_rule_store *eng_rule_store_pg_open(eng_pg *pg, eng_error *e) {
    pg_store *st = calloc(1, sizeof *st);
    if (!st) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    st->base.vt = &pg_vt;
    st->pg = pg;
    return &st->base;
}

int eng_rule_store_pg_purge(eng_pg *pg, int64_t max_age_s, eng_error *e) {
    PGconn *c = eng_pg_take(pg, e);
    if (!c)
        return -1;
    char age[24];
    snprintf(age, sizeof age, "%lld", (long long)max_age_s);
    const char *params[] = {age};
    PGresult *r = eng_pg_exec(pg, c, "DELETE FROM sluice_rules WHERE payload IS NULL AND "
                              "changed_at < now() - make_interval(secs => $1::bigint)", 1,
                              params, PGRES_COMMAND_OK, "purging deleted rules", e);
    eng_pg_give(pg, c);
    PQclear(r);
    return r ? 0 : -1;
}

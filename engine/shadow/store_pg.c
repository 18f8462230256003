/*
 * store_pg.c -- the shadow store of a fleet: table sluice_shadows in the shared PostgreSQL
 * (created by store/migrate.c), the same rows the SQLite store keeps:
 *
 *     sluice_shadows(thing, shadow, rev, version, updated_at, doc)   -- doc NULL: a tombstone
 *
 * Every put is one statement, hence one transaction, and carries its own compare-and-set: an
 * INSERT ... ON CONFLICT DO NOTHING for a new key, an UPDATE ... WHERE rev = expected for an
 * existing one. Two instances that read the same rev and both write get one success and one
 * CONFLICT, decided by the row lock in the database, never by either instance's memory; the
 * service (service.c) then reads again and retries. That is what makes updates of one shadow
 * through different instances serialize without a lost update. Rejected: SELECT ... FOR UPDATE
 * around the service's read-modify-write, which holds a row lock across a round trip per
 * update and gains nothing the compare-and-set does not give.
 *
 * Durability is PostgreSQL's: a put returns once its commit is durable (synchronous_commit as
 * the server has it), and the server's group commit batches concurrent commits, so this store
 * needs no writer thread of its own. Connections come from the store's pool (store/pg.c): an
 * unreachable database is a 503, which the service answers as ServiceUnavailable.
 */
#include "shadow_int.h"
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pg_store {
    eng_shadow_store base;
    eng_pg *pg;
} pg_store;

static int pg_get(eng_shadow_store *self, const char *thing, const char *shadow,
                  eng_shadow_record *out, eng_error *e) {
    pg_store *st = (pg_store *)self;
    memset(out, 0, sizeof *out);
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    const char *params[] = {thing, shadow};
    PGresult *r = eng_pg_exec(st->pg, c,
                              "SELECT rev, version, updated_at, doc FROM sluice_shadows"
                              " WHERE thing = $1 AND shadow = $2",
                              2, params, PGRES_TUPLES_OK, "reading a shadow", e);
    eng_pg_give(st->pg, c);
    if (!r)
        return -1;
    int rc = ENG_SHADOW_NOT_FOUND;
    if (PQntuples(r) == 1) {
        rc = 0;
        out->rev = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        out->version = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        out->updated_at = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        if (!PQgetisnull(r, 0, 3)) {
            size_t n = (size_t)PQgetlength(r, 0, 3);
            if ((out->doc = malloc(n + 1))) {
                memcpy(out->doc, PQgetvalue(r, 0, 3), n);
                out->doc[n] = '\0';
                out->doc_len = n;
            } else {
                rc = eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
            }
        }
    }
    PQclear(r);
    return rc;
}

static int pg_put(eng_shadow_store *self, const char *thing, const char *shadow,
                  uint64_t expect_rev, const eng_shadow_record *rec, eng_error *e) {
    pg_store *st = (pg_store *)self;
    char version[24], at[24], rev[24];
    snprintf(version, sizeof version, "%" PRId64, rec->version);
    snprintf(at, sizeof at, "%" PRId64, rec->updated_at);
    snprintf(rev, sizeof rev, "%" PRIu64, expect_rev);
    const char *params[] = {thing, shadow, version, at, rec->doc, rev};
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    PGresult *r = eng_pg_exec(
        st->pg, c,
        expect_rev ? "UPDATE sluice_shadows SET rev = rev + 1, version = $3, updated_at = $4,"
                     " doc = $5 WHERE thing = $1 AND shadow = $2 AND rev = $6"
                   : "INSERT INTO sluice_shadows(thing, shadow, rev, version, updated_at, doc)"
                     " VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (thing, shadow) DO NOTHING",
        expect_rev ? 6 : 5, params, PGRES_COMMAND_OK, "writing a shadow", e);
    eng_pg_give(st->pg, c);
    if (!r)
        return -1;
    int rc = !strcmp(PQcmdTuples(r), "1") ? 0 : ENG_SHADOW_CONFLICT;
    PQclear(r);
    return rc;
}

static int pg_list(eng_shadow_store *self, const char *thing, const char *after, size_t limit,
                   eng_shadow_names *out, eng_error *e) {
    pg_store *st = (pg_store *)self;
    memset(out, 0, sizeof *out);
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit + 1); /* one more tells whether there is more */
    const char *params[] = {thing, after, lim};
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    /* COLLATE "C": byte order, as the SQLite store and nextToken expect */
    PGresult *r = eng_pg_exec(st->pg, c,
                              "SELECT shadow FROM sluice_shadows WHERE thing = $1 AND shadow"
                              " COLLATE \"C\" > $2 AND shadow <> '' AND doc IS NOT NULL"
                              " ORDER BY shadow COLLATE \"C\" LIMIT $3::bigint",
                              3, params, PGRES_TUPLES_OK, "listing shadows", e);
    eng_pg_give(st->pg, c);
    if (!r)
        return -1;
    int rc = 0, n = PQntuples(r);
    out->names = calloc(limit + 1, sizeof *out->names);
    for (int i = 0; out->names && i < n; i++) {
        if (out->n == limit) {
            out->more = 1;
            break;
        }
        if (!(out->names[out->n] = strdup(PQgetvalue(r, i, 0))))
            break;
        out->n++;
    }
    if (!out->names || (out->n < limit && out->n < (size_t)n)) {
        eng_shadow_names_deinit(out);
        rc = eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
    }
    PQclear(r);
    return rc;
}

static int pg_purge(eng_shadow_store *self, int64_t before, eng_error *e) {
    pg_store *st = (pg_store *)self;
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, before);
    const char *params[] = {b};
    PGconn *c = eng_pg_take(st->pg, e);
    if (!c)
        return -1;
    PGresult *r = eng_pg_exec(st->pg, c,
                              "DELETE FROM sluice_shadows WHERE doc IS NULL AND updated_at < $1",
                              1, params, PGRES_COMMAND_OK, "purging shadow tombstones", e);
    eng_pg_give(st->pg, c);
    PQclear(r);
    return r ? 0 : -1;
}

static void pg_close(eng_shadow_store *self) { free(self); }

static const eng_shadow_store_vt pg_vt = {
    .version = 1,
    .name = "postgresql",
    .get = pg_get,
    .put = pg_put,
    .list = pg_list,
    .purge = pg_purge,
    .close = pg_close,
};

eng_shadow_store *eng_shadow_pg_open(eng_pg *pg, eng_error *e) {
    pg_store *st = calloc(1, sizeof *st);
    if (!st) {
        eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    st->base.vt = &pg_vt;
    st->pg = pg;
    return &st->base;
}

/*
 * store_sqlite.c -- the embedded shadow store: <dataDir>/shadows.db, SQLite in WAL mode.
 *
 *     shadows(thing, shadow, rev, version, updated_at, doc)   -- doc NULL: a tombstone
 *
 * Durability with group commit: every write goes through one writer thread that owns the only
 * write connection. Callers queue their put and wait; the writer takes everything queued, runs
 * it in one transaction (each put is a compare-and-set on rev: an INSERT ... ON CONFLICT DO
 * NOTHING for a new key, an UPDATE ... WHERE rev = ? otherwise, so a lost race is a CONFLICT
 * for that put alone, not a failed batch) and commits with synchronous=FULL, which in WAL mode
 * fsyncs the log once for the whole batch. Only then are the waiters told, each on its own
 * semaphore (a broadcast woke every waiter of every later batch too: measured, it halved the
 * throughput), so a put returns after its write is on disk, and while one batch syncs the next
 * one fills: throughput grows with the number of concurrent writers instead of being one fsync
 * per update. A failed batch (disk full, I/O error) is rolled back and fails every put in it.
 *
 * Reads use a small pool of read connections: WAL readers never wait for the writer, and a
 * SELECT that starts after a commit sees it, so a get after an acknowledged update sees the
 * update. Rejected alternatives: a connection per call (an open costs more than the update),
 * one shared connection behind a mutex (serializes every reader behind the writer's fsync),
 * and synchronous=NORMAL (WAL without an fsync per commit: an acknowledged update could be
 * lost in a power failure).
 *
 * Checkpoints stay SQLite's automatic ones, run by the writer inside the commit that takes the
 * WAL past 1000 pages, which keeps the WAL near 4 MB. Rejected: a background checkpointer
 * thread. Under a steady stream of commits its PASSIVE checkpoint never reaches the end of the
 * WAL, SQLite starts the WAL over only after one that has, and the writer's own catch-up
 * checkpoint then fails with SQLITE_BUSY while the background one holds the checkpoint lock:
 * measured, the WAL grew to 40 MB in 10 000 commits (tests/shadow/test_store.c pins the bound).
 *
 * The file is created 0600 before SQLite opens it, so the -wal and -shm files SQLite creates
 * next to it get the same mode. A file that is not a database, a path that cannot be opened
 * and a schema that does not match all fail the open with the path and SQLite's reason.
 */
#include "shadow_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

typedef struct put_req put_req;
struct put_req {
    put_req *next;
    int purge;                /* 1: forget tombstones older than `before` */
    const char *thing, *shadow;
    uint64_t expect;
    const eng_shadow_record *rec;
    int64_t before;
    int rc;                   /* 0, ENG_SHADOW_CONFLICT, or -1 with *e set */
    eng_error *e;
    sem_t done;               /* posted once the batch is durable: each waiter is woken alone */
};

typedef struct reader reader;
struct reader {
    reader *next;
    sqlite3 *db;
    sqlite3_stmt *get, *list;
};

typedef struct sq_store {
    eng_shadow_store base;
    char path[1024];
    int no_sync;
    /* the writer: the only write connection, used by the writer thread alone */
    sqlite3 *wdb;
    sqlite3_stmt *ins, *upd, *purge;
    pthread_t writer;
    int writer_started;
    pthread_mutex_t mu;
    pthread_cond_t work;
    put_req *head, *tail;     /* guarded by mu */
    int stop;                 /* guarded by mu */
    /* the read connections */
    pthread_mutex_t rmu;
    pthread_cond_t rfree;
    reader *idle;             /* guarded by rmu */
    int nreaders, max_readers; /* guarded by rmu */
} sq_store;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS shadows("
    " thing TEXT NOT NULL,"
    " shadow TEXT NOT NULL," /* '' for the classic shadow */
    " rev INTEGER NOT NULL,"
    " version INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " doc TEXT,"
    " PRIMARY KEY(thing, shadow)) WITHOUT ROWID;"
    /* purge finds old tombstones without scanning every shadow, while the writer waits */
    "CREATE INDEX IF NOT EXISTS shadows_tombstones ON shadows(updated_at) WHERE doc IS NULL";

/* {====== errors */

static int sq_error(sq_store *st, sqlite3 *db, eng_error *e, const char *what) {
    int code = db ? sqlite3_errcode(db) : SQLITE_ERROR;
    int busy = code == SQLITE_BUSY || code == SQLITE_LOCKED;
    return eng__shadow_error(e, busy ? ENG_SHADOW_ERR_UNAVAILABLE : ENG_SHADOW_ERR_INTERNAL,
                             "shadow store %s: %s: %s", st->path, what,
                             db ? sqlite3_errmsg(db) : "out of memory");
}

/* }====== */

/* {====== opening */

static int exec(sq_store *st, sqlite3 *db, const char *sql, const char *what, eng_error *e) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "shadow store %s: %s: %s", st->path, what,
                      msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

static int prepare(sq_store *st, sqlite3 *db, const char *sql, sqlite3_stmt **out, eng_error *e) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) == SQLITE_OK)
        return 0;
    return sq_error(st, db, e, "unexpected database schema");
}

static int open_db(sq_store *st, sqlite3 **db, int readonly, eng_error *e) {
    if (sqlite3_open_v2(st->path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sq_error(st, *db, e, "cannot open");
        sqlite3_close_v2(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
    return readonly ? exec(st, *db, "PRAGMA query_only=1", "cannot configure", e) : 0;
}

/* Creates the file with mode 0600 (or makes an existing one 0600), so that SQLite, which
 * gives its -wal and -shm files the database's mode, never makes a readable copy. */
static int create_file(sq_store *st, const char *data_dir, eng_error *e) {
    if (mkdir(data_dir, 0750) != 0 && errno != EEXIST)
        return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "cannot create %s: %s", data_dir,
                                 strerror(errno));
    int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "shadow store %s: %s", st->path,
                                 strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "shadow store %s: not a regular file",
                               st->path);
    else if ((sb.st_mode & 0777) != 0600 && fchmod(fd, 0600) != 0)
        rc = eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "shadow store %s: chmod: %s", st->path,
                               strerror(errno));
    close(fd);
    if (rc || sb.st_size != 0)
        return rc;
    /* a new file: make its directory entry durable too */
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int open_writer(sq_store *st, eng_error *e) {
    if (open_db(st, &st->wdb, 0, e))
        return -1;
    /* journal_mode answers with the mode in force: a file that is not a database fails here */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->wdb, "PRAGMA journal_mode=WAL", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        sq_error(st, st->wdb, e, "cannot use");
        sqlite3_finalize(q);
        return -1;
    }
    int wal = !sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    if (!wal)
        return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL,
                                 "shadow store %s: cannot switch to WAL mode", st->path);
    if (exec(st, st->wdb, st->no_sync ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL",
             "cannot configure", e) ||
        exec(st, st->wdb, SCHEMA, "unexpected database schema", e))
        return -1;
    return prepare(st, st->wdb,
                   "INSERT INTO shadows(thing, shadow, rev, version, updated_at, doc)"
                   " VALUES(?1, ?2, 1, ?3, ?4, ?5) ON CONFLICT(thing, shadow) DO NOTHING",
                   &st->ins, e) ||
                   prepare(st, st->wdb,
                           "UPDATE shadows SET rev = rev + 1, version = ?3, updated_at = ?4,"
                           " doc = ?5 WHERE thing = ?1 AND shadow = ?2 AND rev = ?6",
                           &st->upd, e) ||
                   prepare(st, st->wdb,
                           "DELETE FROM shadows WHERE doc IS NULL AND updated_at < ?1",
                           &st->purge, e)
               ? -1
               : 0;
}

/* }====== */

/* {====== the writer */

/* One put inside the open transaction: 0, CONFLICT, or -1 (the batch fails). */
static int apply_put(sq_store *st, put_req *r) {
    sqlite3_stmt *s;
    if (r->purge) {
        s = st->purge;
        sqlite3_bind_int64(s, 1, r->before);
    } else {
        s = r->expect ? st->upd : st->ins;
        sqlite3_bind_text(s, 1, r->thing, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, r->shadow, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, r->rec->version);
        sqlite3_bind_int64(s, 4, r->rec->updated_at);
        if (r->rec->doc)
            sqlite3_bind_text(s, 5, r->rec->doc, (int)r->rec->doc_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 5);
        if (r->expect)
            sqlite3_bind_int64(s, 6, (sqlite3_int64)r->expect);
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return -1;
    return r->purge || sqlite3_changes(st->wdb) == 1 ? 0 : ENG_SHADOW_CONFLICT;
}

static void run_batch(sq_store *st, put_req *batch) {
    const char *what = "begin";
    int failed = sqlite3_exec(st->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK;
    for (put_req *r = batch; r && !failed; r = r->next) {
        r->rc = apply_put(st, r);
        if (r->rc == -1) {
            failed = 1;
            what = "write";
        }
    }
    if (!failed && sqlite3_exec(st->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        failed = 1;
        what = "commit";
    }
    if (!failed)
        return;
    eng_error err;
    sq_error(st, st->wdb, &err, what);
    if (!sqlite3_get_autocommit(st->wdb))
        sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
    for (put_req *r = batch; r; r = r->next) {
        r->rc = -1;
        *r->e = err;
    }
}

static void *writer_main(void *arg) {
    sq_store *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->head && !st->stop)
            pthread_cond_wait(&st->work, &st->mu);
        if (!st->head)
            break;
        put_req *batch = st->head;
        st->head = st->tail = NULL;
        pthread_mutex_unlock(&st->mu);
        run_batch(st, batch);
        for (put_req *r = batch, *next; r; r = next) {
            next = r->next; /* r belongs to its waiter once posted */
            sem_post(&r->done);
        }
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Queues r for the writer and waits for its batch to be durable. */
static int submit(sq_store *st, put_req *r, eng_error *e) {
    r->e = e;
    pthread_mutex_lock(&st->mu);
    if (st->stop) {
        pthread_mutex_unlock(&st->mu);
        return eng__shadow_error(e, ENG_SHADOW_ERR_UNAVAILABLE, "shadow store is closed");
    }
    sem_init(&r->done, 0, 0);
    if (st->tail)
        st->tail->next = r;
    else
        st->head = r;
    st->tail = r;
    pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->mu);
    while (sem_wait(&r->done) != 0)
        ; /* EINTR */
    sem_destroy(&r->done);
    return r->rc;
}

static int sq_put(eng_shadow_store *self, const char *thing, const char *shadow,
                  uint64_t expect_rev, const eng_shadow_record *rec, eng_error *e) {
    put_req r = {.thing = thing, .shadow = shadow, .expect = expect_rev, .rec = rec};
    return submit((sq_store *)self, &r, e);
}

static int sq_purge(eng_shadow_store *self, int64_t before, eng_error *e) {
    put_req r = {.purge = 1, .before = before};
    return submit((sq_store *)self, &r, e);
}

/* }====== */

/* {====== readers */

static void reader_free(reader *r) {
    sqlite3_finalize(r->get);
    sqlite3_finalize(r->list);
    sqlite3_close_v2(r->db);
    free(r);
}

static reader *reader_take(sq_store *st, eng_error *e) {
    pthread_mutex_lock(&st->rmu);
    while (!st->idle && st->nreaders >= st->max_readers)
        pthread_cond_wait(&st->rfree, &st->rmu);
    reader *r = st->idle;
    if (r) {
        st->idle = r->next;
        pthread_mutex_unlock(&st->rmu);
        return r;
    }
    st->nreaders++; /* this slot is ours while the connection opens */
    pthread_mutex_unlock(&st->rmu);
    r = calloc(1, sizeof *r);
    if (!r)
        eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
    else if (open_db(st, &r->db, 1, e) ||
             prepare(st, r->db,
                     "SELECT rev, version, updated_at, doc FROM shadows"
                     " WHERE thing = ?1 AND shadow = ?2",
                     &r->get, e) ||
             prepare(st, r->db,
                     "SELECT shadow FROM shadows WHERE thing = ?1 AND shadow > ?2"
                     " AND doc IS NOT NULL ORDER BY shadow LIMIT ?3",
                     &r->list, e)) {
        reader_free(r);
        r = NULL;
    }
    if (!r) {
        pthread_mutex_lock(&st->rmu);
        st->nreaders--;
        pthread_cond_signal(&st->rfree);
        pthread_mutex_unlock(&st->rmu);
    }
    return r;
}

static void reader_give(sq_store *st, reader *r) {
    pthread_mutex_lock(&st->rmu);
    r->next = st->idle;
    st->idle = r;
    pthread_cond_signal(&st->rfree);
    pthread_mutex_unlock(&st->rmu);
}

static int sq_get(eng_shadow_store *self, const char *thing, const char *shadow,
                  eng_shadow_record *out, eng_error *e) {
    sq_store *st = (sq_store *)self;
    memset(out, 0, sizeof *out);
    reader *r = reader_take(st, e);
    if (!r)
        return -1;
    sqlite3_stmt *s = r->get;
    sqlite3_bind_text(s, 1, thing, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, shadow, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->rev = (uint64_t)sqlite3_column_int64(s, 0);
        out->version = sqlite3_column_int64(s, 1);
        out->updated_at = sqlite3_column_int64(s, 2);
        if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
            const unsigned char *doc = sqlite3_column_text(s, 3);
            size_t n = (size_t)sqlite3_column_bytes(s, 3);
            if (doc && (out->doc = malloc(n + 1))) {
                memcpy(out->doc, doc, n);
                out->doc[n] = '\0';
                out->doc_len = n;
            } else {
                rc = SQLITE_NOMEM;
            }
        }
    }
    int result = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ENG_SHADOW_NOT_FOUND : -1;
    if (result == -1) {
        sq_error(st, rc == SQLITE_NOMEM ? NULL : r->db, e, "read");
        eng_shadow_record_deinit(out);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    reader_give(st, r);
    return result;
}

static int sq_list(eng_shadow_store *self, const char *thing, const char *after, size_t limit,
                   eng_shadow_names *out, eng_error *e) {
    sq_store *st = (sq_store *)self;
    memset(out, 0, sizeof *out);
    reader *r = reader_take(st, e);
    if (!r)
        return -1;
    sqlite3_stmt *s = r->list;
    sqlite3_bind_text(s, 1, thing, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)limit + 1); /* one more tells whether there is more */
    int rc, result = 0;
    out->names = calloc(limit + 1, sizeof *out->names);
    if (!out->names)
        rc = SQLITE_NOMEM;
    else
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (out->n == limit) {
                out->more = 1;
                continue;
            }
            const char *name = (const char *)sqlite3_column_text(s, 0);
            if (!name || !(out->names[out->n] = strdup(name))) {
                rc = SQLITE_NOMEM;
                break;
            }
            out->n++;
        }
    if (rc != SQLITE_DONE) {
        result = sq_error(st, rc == SQLITE_NOMEM ? NULL : r->db, e, "list");
        eng_shadow_names_deinit(out);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    reader_give(st, r);
    return result;
}

/* }====== */

/* {====== lifecycle */

static void sq_close(eng_shadow_store *self) {
    sq_store *st = (sq_store *)self;
    pthread_mutex_lock(&st->mu);
    st->stop = 1;
    pthread_cond_signal(&st->work);
    pthread_mutex_unlock(&st->mu);
    if (st->writer_started)
        pthread_join(st->writer, NULL);
    /* every reader is idle once no call is running (the contract of close) */
    for (reader *r = st->idle, *next; r; r = next) {
        next = r->next;
        reader_free(r);
    }
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->upd);
    sqlite3_finalize(st->purge);
    sqlite3_close_v2(st->wdb); /* the last connection: checkpoints what is left, drops the WAL */
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->work);
    pthread_mutex_destroy(&st->rmu);
    pthread_cond_destroy(&st->rfree);
    free(st);
}

static const eng_shadow_store_vt sqlite_vt = {
    .version = 1,
    .name = "sqlite",
    .get = sq_get,
    .put = sq_put,
    .list = sq_list,
    .purge = sq_purge,
    .close = sq_close,
};

eng_shadow_store *eng_shadow_sqlite_open(const char *data_dir, const eng_shadow_sqlite_opts *o,
                                         eng_error *e) {
    sq_store *st = calloc(1, sizeof *st);
    if (!st) {
        eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    st->base.vt = &sqlite_vt;
    st->no_sync = o ? o->no_sync : 0;
    st->max_readers = o && o->read_conns > 0 ? o->read_conns : 4;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->work, NULL);
    pthread_mutex_init(&st->rmu, NULL);
    pthread_cond_init(&st->rfree, NULL);
    if ((size_t)snprintf(st->path, sizeof st->path, "%s/shadows.db", data_dir) >=
        sizeof st->path) {
        eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "data dir path too long");
        goto fail;
    }
    if (create_file(st, data_dir, e) || open_writer(st, e))
        goto fail;
    /* one reader now, so that a database another process cannot share fails here */
    reader *r = reader_take(st, e);
    if (!r)
        goto fail;
    reader_give(st, r);
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
        eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "cannot start the shadow store's writer");
        goto fail;
    }
    st->writer_started = 1;
    return &st->base;
fail:
    sq_close(&st->base);
    return NULL;
}

/* }====== */

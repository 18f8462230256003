/*
 * postgres.c -- the PostgreSQL action (an extension to AWS's actions): each message runs one
 * prepared statement whose `${expr}` templates are bound parameters (pg_statement.c).
 *
 *   {"postgres": {"conninfo": "postgresql://sluice@127.0.0.1:5432/iot",
 *                 "statement": "INSERT INTO t(dev, temp) VALUES (${deviceId}, ${temperature})",
 *                 "poolSize": 2, "batchSize": 1000}}
 *
 * Each delivery lane owns one connection (poolSize lanes: a small pool), opened lazily on the
 * lane's thread and kept; the statement is prepared once per connection. A batch is one
 * transaction sent in libpq's pipeline mode -- [Parse,] BEGIN, N x Bind/Execute, COMMIT, Sync --
 * so a batch costs one round trip instead of N. The socket is non-blocking and every wait is a
 * poll() bounded by IO_TIMEOUT_MS; past it the batch is cancelled (not just abandoned: see
 * cancel()) and retried, so a stuck server never holds a lane. Results are read back in the
 * order sent: the batch counts as delivered as soon as the COMMIT's result says COMMIT, even
 * if the connection dies right after.
 *
 * Errors are classified by SQLSTATE (act_pg__classify): connection loss, 08xxx and 57P01-03
 * retry on a fresh connection; 40001, 40P01, 53xxx and the timeouts 57014 / 55P03 retry on the
 * same one; anything else is the message's fault. When row k fails for good the transaction has rolled back, so rows
 * [0, k) are re-run in a new transaction and deliver() reports k delivered and row k failed:
 * only the bad row takes the failure path. An error at COMMIT (a deferred constraint) names no
 * row, so the batch is then replayed one row per transaction to find it.
 *
 * Rejected: one connection shared by all lanes behind a lock (lanes would serialise on it);
 * per-row autocommit (one round trip and one WAL flush per message: ~50x slower here); COPY
 * (faster still, but it cannot run an arbitrary statement and one bad row fails the whole
 * COPY with no way to tell which without re-sending it row by row anyway).
 * Exactly once holds across server restarts and fast shutdowns (a transaction either commits
 * and says so before the backend exits, or rolls back); a crash after the commit record is
 * durable but before its result is sent gives at-least-once, as with any client.
 */
#include "pg_int.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define PG_MAX_LANES 16
#define PG_DEFAULT_LANES 2
#define PG_DEFAULT_BATCH 1000
#define PG_MAX_BATCH 100000
#ifndef IO_TIMEOUT_MS
#define IO_TIMEOUT_MS 30000    /* one pipeline's whole exchange with the server */
#endif
#define CANCEL_GRACE_MS 5000   /* after a cancel request, for the server to say what it did */
#define STMT_NAME "sluice"
#define NO_ROW SIZE_MAX        /* a failure not tied to one row (COMMIT) */

typedef struct pg_lane {
    PGconn *conn;      /* NULL: connect on the next delivery */
    int prepared;      /* STMT_NAME exists on conn */
} pg_lane;

typedef struct act_pg {
    act_instance base;
    act_pg_params params;    /* what each lane connects with (pg_conninfo.c) */
    act_pg_stmt st;
    pg_lane lane[PG_MAX_LANES];  /* lane i is touched only by delivery thread i */
} act_pg;

/* {====== pure helpers */

/* Thread: any. */
act_pg_errkind act_pg__classify(const char *s) {
    if (!s || !*s)
        return ACT_PG_ERR_CONN;
    if (!strncmp(s, "08", 2) || !strcmp(s, "57P01") || !strcmp(s, "57P02") ||
        !strcmp(s, "57P03"))
        return ACT_PG_ERR_CONN;
    if (!strcmp(s, "40001") || !strcmp(s, "40P01") || !strncmp(s, "53", 2) ||
        !strcmp(s, "57014") || !strcmp(s, "55P03"))
        return ACT_PG_ERR_TRANSIENT;
    return ACT_PG_ERR_PERMANENT;
}

/* Thread: any. */
int act_pg__resource(const char *conninfo, char *out, size_t cap, char *err, size_t errcap) {
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        size_t n = snprintf(err, errcap, "%s", perr ? perr : "out of memory");
        while (n > 0 && n < errcap && err[n - 1] == '\n')
            err[--n] = '\0';
        PQfreemem(perr);
        return -1;
    }
    const char *user = "", *host = "", *port = "", *db = "";
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (!strcmp(o->keyword, "user"))
            user = o->val;
        else if (!strcmp(o->keyword, "host"))
            host = o->val;
        else if (!strcmp(o->keyword, "hostaddr") && !*host)
            host = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
        else if (!strcmp(o->keyword, "dbname"))
            db = o->val;
    }
    snprintf(out, cap, "postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "", host,
             *port ? ":" : "", port, db);
    PQconninfoFree(opts);
    return 0;
}

/* }====== */

/* {====== talking to the server */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drop(pg_lane *l) {
    PQfinish(l->conn);
    l->conn = NULL;
    l->prepared = 0;
}

/* libpq's message for conn, on one line. */
static void conn_error(PGconn *c, const char *what, char *err, size_t cap) {
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    size_t k = (size_t)snprintf(err, cap, "PostgreSQL %s: ", what);
    if (!*m)
        m = "connection lost";
    /* libpq's messages span lines ("...\n\tIs the server running..."): fold them */
    for (int space = 0; *m && k + 1 < cap; m++) {
        if (*m == '\n' || *m == '\t' || *m == ' ') {
            space = 1;
            continue;
        }
        if (space && k + 2 < cap)
            err[k++] = ' ';
        space = 0;
        err[k++] = *m;
    }
    if (k < cap)
        err[k] = '\0';
}

static int ensure_conn(act_pg *p, pg_lane *l, char *err, size_t cap) {
    if (l->conn && PQstatus(l->conn) == CONNECTION_OK)
        return 0;
    drop(l);
    l->conn = PQconnectdbParams(p->params.keys, (const char *const *)p->params.vals, 0);
    if (!l->conn || PQstatus(l->conn) != CONNECTION_OK || PQsetnonblocking(l->conn, 1) != 0) {
        conn_error(l->conn, "connection failed", err, cap);
        drop(l);
        return -1;
    }
    return 0;
}

/* One exchange with the server, bounded in time. */
typedef struct pg_io {
    PGconn *c;
    int64_t deadline;
    int cancelled;     /* the deadline passed and a cancel request went out */
} pg_io;

/* Asks the server to cancel what it is running. Dropping the connection instead would not
 * stop it: a backend waiting on a lock would go on, once it gets the lock, to run the
 * pipelined COMMIT it has already read, and the retry would then store the batch twice. The
 * cancel makes the running statement fail, so the rest of the pipeline is skipped. */
static void cancel(pg_io *io) {
    char buf[256];
    PGcancel *pc = PQgetCancel(io->c);
    if (pc) {
        PQcancel(pc, buf, sizeof buf);
        PQfreeCancel(pc);
    }
    io->cancelled = 1;
    io->deadline = now_ms() + CANCEL_GRACE_MS;
}

/* The next result of the exchange. NULL is the end of a command's results, or, with *lost
 * set, a broken connection or no answer in time. Flushes pending output while waiting and
 * reads input whenever it comes, so neither side blocks on a full socket buffer. */
static PGresult *next_result(pg_io *io, int *lost) {
    PGconn *c = io->c;
    *lost = 0;
    for (;;) {
        int f = PQflush(c);
        if (f < 0)
            break;
        if (!PQisBusy(c))
            return PQgetResult(c);
        if (PQstatus(c) == CONNECTION_BAD)
            break;
        int64_t left = io->deadline - now_ms();
        if (left <= 0 && !io->cancelled) {
            cancel(io);
            continue;
        }
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN | (f ? POLLOUT : 0)};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(c)) {
            /* results read before the connection broke are still there */
            if (!PQisBusy(c))
                return PQgetResult(c);
            break;
        }
    }
    *lost = 1;
    return NULL;
}

/* What one pipeline did. */
typedef struct run_out {
    int committed;
    int lost;                 /* the exchange did not finish: the connection is unusable */
    PGresult *fail;           /* the first error result (owned), or NULL */
    size_t fail_row;          /* batch index of fail, or NO_ROW */
} run_out;

static void note_error(run_out *o, PGresult *r, size_t row) {
    if (o->fail) {
        PQclear(r);
        return;
    }
    o->fail = r;
    o->fail_row = row;
}

/* Reads the results of ncmd commands (cmd 0 is the Parse when `prepare`, then BEGIN, rows
 * from..to-1, COMMIT) and the Sync. */
static void read_results(pg_lane *l, pg_io *io, int prepare, size_t from, size_t to,
                         run_out *o) {
    size_t ncmd = (size_t)prepare + 1 + (to - from) + 1;
    for (size_t k = 0; k < ncmd; k++) {
        PGresult *r = next_result(io, &o->lost);
        if (!r) {
            o->lost = 1;  /* a command without a result: the exchange is out of step */
            return;
        }
        ExecStatusType s = PQresultStatus(r);
        size_t row = (size_t)prepare + 1 <= k && k < ncmd - 1 ? from + k - prepare - 1 : NO_ROW;
        int is_commit = k == ncmd - 1;
        if (s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR) {
            note_error(o, r, k == ncmd - 1 ? NO_ROW : row == NO_ROW ? from : row);
        } else {
            if (prepare && k == 0 && s == PGRES_COMMAND_OK)
                l->prepared = 1;
            if (is_commit && s == PGRES_COMMAND_OK && !strcmp(PQcmdStatus(r), "COMMIT"))
                o->committed = 1;
            PQclear(r);
        }
        /* each command's results end with a NULL */
        if ((r = next_result(io, &o->lost)) || o->lost) {
            PQclear(r);
            o->lost = 1;
            return;
        }
    }
    PGresult *r = next_result(io, &o->lost);
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
        o->lost = 1;
    PQclear(r);
}

/* Ends the exchange: leaves pipeline mode and rolls back a transaction the error left open.
 * Returns -1 when the connection must be dropped. */
static int settle(pg_lane *l, pg_io *io) {
    if (!PQexitPipelineMode(l->conn))
        return -1;
    if (PQtransactionStatus(l->conn) == PQTRANS_IDLE)
        return 0;
    if (!PQsendQueryParams(l->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0))
        return -1;
    int lost, ok = 0;
    PGresult *r;
    while ((r = next_result(io, &lost))) {
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    return lost || !ok || PQtransactionStatus(l->conn) != PQTRANS_IDLE ? -1 : 0;
}

/* One error result, on one line: "PostgreSQL error 23502: null value in column ...". */
static void result_error(const PGresult *r, char *err, size_t cap) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!msg)
        msg = PQresultErrorMessage(r);
    size_t n = (size_t)snprintf(err, cap, "PostgreSQL error %s: %s", state ? state : "(none)",
                                msg);
    if (n >= cap)
        n = cap - 1;
    while (n > 0 && err[n - 1] == '\n')
        err[--n] = '\0';
}

/* Delivers batch[from..to) as one transaction. ACT_OK when it committed; ACT_RETRY; or
 * ACT_FAIL with the failing row in *bad (NO_ROW when the COMMIT failed). */
static act_result run(act_pg *p, pg_lane *l, const act_msg *const *batch, size_t from,
                      size_t to, size_t *bad, char *err, size_t cap) {
    if (ensure_conn(p, l, err, cap))
        return ACT_RETRY;
    PGconn *c = l->conn;
    pg_io io = {.c = c, .deadline = now_ms() + IO_TIMEOUT_MS};
    int prepare = !l->prepared;
    run_out o = {.fail_row = NO_ROW};
    const char *vals[ACT_PG_MAX_PARAMS];
    int sent = PQenterPipelineMode(c);
    if (sent && prepare)
        sent = PQsendPrepare(c, STMT_NAME, p->st.sql, (int)p->st.nparams, NULL);
    if (sent)
        sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = from; sent && i < to; i++) {
        const act_msg *m = batch[i];
        for (size_t k = 0; k < p->st.nparams; k++)
            vals[k] = m->field_null && m->field_null[k] ? NULL : m->fields[k];
        sent = PQsendQueryPrepared(c, STMT_NAME, (int)p->st.nparams, vals, NULL, NULL, 0);
    }
    if (sent)
        sent = PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    if (sent)
        sent = PQpipelineSync(c);
    if (!sent) {
        conn_error(c, "send failed", err, cap);
        drop(l);
        return ACT_RETRY;
    }
    read_results(l, &io, prepare, from, to, &o);
    if (o.lost || settle(l, &io))
        o.lost = 1;
    act_result res;
    const char *state = o.fail ? PQresultErrorField(o.fail, PG_DIAG_SQLSTATE) : NULL;
    if (o.committed) {
        res = ACT_OK;
    } else if (io.cancelled && (!o.fail || act_pg__classify(state) != ACT_PG_ERR_PERMANENT)) {
        snprintf(err, cap, "PostgreSQL: no answer within %d ms (the batch was cancelled)",
                 IO_TIMEOUT_MS);
        res = ACT_RETRY;
    } else if (o.fail) {
        result_error(o.fail, err, cap);
        act_pg_errkind kind = act_pg__classify(state);
        if (kind == ACT_PG_ERR_CONN)
            o.lost = 1;
        res = kind == ACT_PG_ERR_PERMANENT ? ACT_FAIL : ACT_RETRY;
        *bad = o.fail_row;
    } else {
        if (o.lost)
            conn_error(c, "connection lost", err, cap);
        else
            snprintf(err, cap, "PostgreSQL: the transaction did not commit");
        res = ACT_RETRY;
    }
    PQclear(o.fail);
    if (o.lost)
        drop(l);
    return res;
}

/* After a failure at COMMIT: one transaction per row, so the failing row is known. */
static act_result one_by_one(act_pg *p, pg_lane *l, const act_msg *const *batch, size_t lim,
                             size_t *ndone, char *err, size_t cap) {
    size_t bad;
    for (size_t i = 0; i < lim; i++) {
        act_result r = run(p, l, batch, i, i + 1, &bad, err, cap);
        if (r != ACT_OK) {
            *ndone = i;
            return r;
        }
    }
    *ndone = lim;
    return ACT_OK;
}

/* }====== */

/* {====== the vtable */

static void pg_close(act_instance *self);

typedef struct pg_opts {
    const char *conninfo, *statement;
    int pool, batch;
} pg_opts;

static const act_option pg_options[] = {
    {.key = "conninfo", .type = ACT_OPT_STRING, .required = 1,
     .offset = offsetof(pg_opts, conninfo), .min = 1, .max = 4096,
     .help = "a libpq connection string or postgresql:// URI with a TCP host; files (sslkey, "
             "sslcert, sslrootcert, sslcrl, passfile) only beneath actions.kafka.certDir"},
    {.key = "statement", .type = ACT_OPT_TEMPLATE, .required = 1,
     .offset = offsetof(pg_opts, statement), .min = 1, .max = 65536,
     .help = "the SQL statement run per message; each ${expr} is a bound parameter"},
    {.key = "poolSize", .type = ACT_OPT_INT, .offset = offsetof(pg_opts, pool), .min = 1,
     .max = PG_MAX_LANES, .def = PG_DEFAULT_LANES,
     .help = "connections (each a delivery lane; a topic stays on one)"},
    {.key = "batchSize", .type = ACT_OPT_INT, .offset = offsetof(pg_opts, batch), .min = 1,
     .max = PG_MAX_BATCH, .def = PG_DEFAULT_BATCH, .help = "most rows per transaction"},
    {0},
};

static int pg_open(const act_config *cfg, act_instance **out, eng_error *e) {
    pg_opts o = {0};
    char msg[400];
    if (act_options_parse("postgres", pg_options, cfg->params, &o, e))
        return -1;
    act_pg *p = calloc(1, sizeof *p);
    if (!p)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    if (act_pg__conninfo(o.conninfo, cfg->host, &p->params, msg, sizeof msg) ||
        act_pg__resource(o.conninfo, p->base.resource, sizeof p->base.resource, msg,
                         sizeof msg)) {
        pg_close(&p->base);
        return eng_error_set(e, 400, "InvalidRequestException", "postgres action: %s", msg);
    }
    if (act_pg__stmt_parse(o.statement, &p->st, msg, sizeof msg)) {
        pg_close(&p->base);
        return eng_error_set(e, 400, "InvalidRequestException", "postgres action: %s", msg);
    }
    p->base.lanes = o.pool;
    p->base.max_batch = (size_t)o.batch;
    p->base.wants_nulls = 1;
    *out = &p->base;
    return 0;
}

static size_t pg_templates(act_instance *self, const char *const **tpl) {
    act_pg *p = (act_pg *)self;
    *tpl = (const char *const *)p->st.tpl;
    return p->st.nparams;
}

static act_result pg_deliver(act_instance *self, int lane, const act_msg *const *batch,
                             size_t n, size_t *ndone, char *err, size_t cap) {
    act_pg *p = (act_pg *)self;
    pg_lane *l = &p->lane[lane];
    char rowerr[512] = "";
    size_t lim = n, bad = NO_ROW;
    *ndone = 0;
    /* lim only shrinks: each permanent failure at row k re-runs the rows before it */
    while (lim > 0) {
        act_result r = run(p, l, batch, 0, lim, &bad, err, cap);
        if (r == ACT_RETRY)
            return ACT_RETRY;
        if (r == ACT_FAIL && bad == NO_ROW) {
            r = one_by_one(p, l, batch, lim, ndone, err, cap);
            if (r != ACT_OK)
                return r;
            break;
        }
        if (r == ACT_OK) {
            *ndone = lim;
            break;
        }
        snprintf(rowerr, sizeof rowerr, "%s", err);
        lim = bad;
    }
    if (*ndone == n)
        return ACT_OK;
    snprintf(err, cap, "%s", rowerr);
    return ACT_FAIL;
}

static int pg_format(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out) {
    act_pg *p = (act_pg *)self;
    for (size_t i = 0; i < n; i++)
        if (act_pg__format_line(&p->st, batch[i]->fields, batch[i]->field_null, out)) {
            act_buf_deinit(out);
            act_buf_puts(out, "out of memory");
            return -1;
        }
    return 0;
}

static void pg_close(act_instance *self) {
    act_pg *p = (act_pg *)self;
    if (!p)
        return;
    for (int i = 0; i < PG_MAX_LANES; i++)
        drop(&p->lane[i]);
    act_pg__stmt_deinit(&p->st);
    act_pg__params_deinit(&p->params);
    free(p);
}

const act_vtable act_postgres_vtable = {
    .version = ACT_VTABLE_VERSION,
    .name = "postgres",
    .aws_name = "PostgresAction",
    .open = pg_open,
    .templates = pg_templates,
    .deliver = pg_deliver,
    .format = pg_format,
    .close = pg_close,
    .description = "run a prepared statement per message, values bound as parameters, batched "
                   "in transactions (an extension)",
    .options = pg_options,
};

/* }====== */

/*
 * pg.c -- connections to the shared store's PostgreSQL: a small pool, the connection settings
 * sluice adds, and what a failure means for the caller.
 *
 * The pool holds at most max_conns connections, opened on demand and kept. A connection is
 * checked when it is taken: PQconsumeInput() reads what the server sent while it sat idle, so
 * the termination notice a server sends to its clients when it shuts down marks the connection
 * bad, and it is replaced before a statement is sent on it. A statement on a connection that
 * broke while it ran fails; the connection is dropped when given back, and the caller's error is
 * a 503. Writes are never retried here: after a broken connection nobody knows whether the
 * server committed, so the client (who gets the 503) decides.
 *
 * Settings: the URL is parsed with PQconninfoParse() and passed, keyword by keyword, to
 * PQconnectdbParams() with sluice's defaults for what it leaves out (a connect timeout, TCP
 * keepalives and a user timeout, so an unreachable server fails a call in seconds), and
 * application_name, which shows the instance in pg_stat_activity. Rejected: appending the
 * defaults to the URL's text, which mixes two syntaxes and would override what the user set.
 *
 * The password: eng_pg_where() is the URL as postgresql://user@host:port/dbname, the only form
 * that appears in logs and error messages; libpq's own messages name host and port, never the
 * password.
 */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 64

struct eng_pg {
    char where[512];
    const char *keys[MAX_KEYS + 1];
    char *vals[MAX_KEYS + 1];
    pthread_mutex_t mu;
    pthread_cond_t freed;
    PGconn **idle;            /* guarded by mu */
    int nidle, nopen, max;    /* guarded by mu */
};

/* {====== settings */

static const struct {
    const char *key, *val;
} defaults[] = {
    {"connect_timeout", "5"},      {"keepalives", "1"},         {"keepalives_idle", "10"},
    {"keepalives_interval", "3"},  {"keepalives_count", "3"},   {"tcp_user_timeout", "15000"},
};

int eng_pg_redact(const char *url, char *out, size_t cap) {
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(url, &err);
    if (!o) {
        snprintf(out, cap, "(a store URL that does not parse)");
        PQfreemem(err);
        return -1;
    }
    const char *user = "", *host = "", *port = "", *db = "";
    for (PQconninfoOption *p = o; p->keyword; p++) {
        if (!p->val)
            continue;
        if (!strcmp(p->keyword, "user"))
            user = p->val;
        else if (!strcmp(p->keyword, "host") || (!*host && !strcmp(p->keyword, "hostaddr")))
            host = p->val;
        else if (!strcmp(p->keyword, "port"))
            port = p->val;
        else if (!strcmp(p->keyword, "dbname"))
            db = p->val;
    }
    snprintf(out, cap, "postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "", host,
             *port ? ":" : "", port, db);
    PQconninfoFree(o);
    return 0;
}

static int parse(eng_pg *pg, const char *url, const char *app, eng_error *e) {
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(url, &err);
    if (!o) {
        /* libpq's message may quote the URL: say what is wrong without it */
        PQfreemem(err);
        return eng_error_set(e, 400, "InvalidRequestException",
                             "the store URL is not a PostgreSQL URL or conninfo "
                             "(postgresql://user:password@host:port/dbname)");
    }
    size_t n = 0;
    int rc = 0;
    for (PQconninfoOption *p = o; p->keyword && !rc; p++) {
        if (!p->val || !*p->val)
            continue;
        if (n == MAX_KEYS || !(pg->keys[n] = strdup(p->keyword)) ||
            !(pg->vals[n] = strdup(p->val)))
            rc = eng_error_set(e, 500, "InternalException", "out of memory");
        n++;
    }
    PQconninfoFree(o);
    /* the defaults for what the URL leaves out */
    for (size_t d = 0; !rc && d <= sizeof defaults / sizeof defaults[0]; d++) {
        const char *k = d < sizeof defaults / sizeof defaults[0] ? defaults[d].key
                                                                  : "application_name";
        const char *v = d < sizeof defaults / sizeof defaults[0] ? defaults[d].val : app;
        int set = 0;
        for (size_t i = 0; i < n; i++)
            set |= pg->keys[i] && !strcmp(pg->keys[i], k);
        if (set)
            continue;
        if (n == MAX_KEYS || !(pg->keys[n] = strdup(k)) || !(pg->vals[n] = strdup(v)))
            rc = eng_error_set(e, 500, "InternalException", "out of memory");
        n++;
    }
    return rc;
}

/* }====== */

/* {====== errors */

int eng_pg_unreachable(PGconn *c, const PGresult *r) {
    if (!c || PQstatus(c) != CONNECTION_OK)
        return 1;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st) /* no SQLSTATE: libpq's own error, the connection broke */
        return r == NULL || PQresultStatus(r) == PGRES_FATAL_ERROR;
    /* 08: connection exceptions; 57P01-57P03: admin shutdown, crash shutdown, cannot connect
     * now (starting up or shutting down); 53300: too many connections */
    return !strncmp(st, "08", 2) || !strcmp(st, "57P01") || !strcmp(st, "57P02") ||
           !strcmp(st, "57P03") || !strcmp(st, "53300");
}

int eng_pg_error(eng_pg *pg, PGconn *c, const PGresult *r, const char *what, eng_error *e) {
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg)
        msg = c ? PQerrorMessage(c) : "no connection";
    char clean[300];
    snprintf(clean, sizeof clean, "%s", msg);
    clean[strcspn(clean, "\n")] = '\0';
    if (eng_pg_unreachable(c, r))
        return eng_error_set(e, 503, "ServiceUnavailableException",
                             "the shared store %s is unavailable (%s: %s); try again",
                             pg->where, what, clean);
    return eng_error_set(e, 500, "InternalException", "the shared store %s: %s: %s", pg->where,
                         what, clean);
}

PGresult *eng_pg_exec(eng_pg *pg, PGconn *c, const char *sql, int n, const char *const *params,
                      ExecStatusType ok, const char *what, eng_error *e) {
    /* without parameters, the simple protocol: a migration is several statements */
    PGresult *r = n ? PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
    if (r && PQresultStatus(r) == ok)
        return r;
    eng_pg_error(pg, c, r, what, e);
    PQclear(r);
    return NULL;
}

/* }====== */

/* {====== connections */

/* libpq prints notices (and the FATAL a server sends its clients at shutdown) on stderr by
 * default; sluice's logs are JSON lines */
static void notice(void *ud, const char *msg) {
    char clean[300];
    snprintf(clean, sizeof clean, "%s", msg);
    clean[strcspn(clean, "\n")] = '\0';
    eng_log(ENG_LOG_DEBUG, "store.notice", "%s: %s", ((eng_pg *)ud)->where, clean);
}

PGconn *eng_pg_connect(eng_pg *pg, eng_error *e) {
    PGconn *c = PQconnectdbParams(pg->keys, (const char *const *)pg->vals, 0);
    if (c)
        PQsetNoticeProcessor(c, notice, pg);
    if (c && PQstatus(c) == CONNECTION_OK)
        return c;
    char msg[300];
    snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
    msg[strcspn(msg, "\n")] = '\0';
    /* a refused password is the operator's to fix, not a passing outage */
    int auth = strstr(msg, "authentication") != NULL || strstr(msg, "password") != NULL;
    eng_error_set(e, 503, "ServiceUnavailableException",
                  "the shared store %s is unavailable%s: %s", pg->where,
                  auth ? " (check the user and password of the store URL)" : "", msg);
    PQfinish(c);
    return NULL;
}

PGconn *eng_pg_take(eng_pg *pg, eng_error *e) {
    pthread_mutex_lock(&pg->mu);
    for (;;) {
        while (pg->nidle) {
            PGconn *c = pg->idle[--pg->nidle];
            /* reads what the server sent meanwhile: a shutdown notice makes it bad */
            if (PQconsumeInput(c) && PQstatus(c) == CONNECTION_OK && !PQisBusy(c)) {
                pthread_mutex_unlock(&pg->mu);
                return c;
            }
            PQfinish(c);
            pg->nopen--;
        }
        if (pg->nopen < pg->max)
            break;
        pthread_cond_wait(&pg->freed, &pg->mu);
    }
    pg->nopen++; /* this slot is ours while we connect */
    pthread_mutex_unlock(&pg->mu);
    PGconn *c = eng_pg_connect(pg, e);
    if (!c) {
        pthread_mutex_lock(&pg->mu);
        pg->nopen--;
        pthread_cond_signal(&pg->freed);
        pthread_mutex_unlock(&pg->mu);
    }
    return c;
}

void eng_pg_give(eng_pg *pg, PGconn *c) {
    if (!c)
        return;
    pthread_mutex_lock(&pg->mu);
    /* a connection left inside a transaction (a failed COMMIT) or broken is not reused */
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
        pg->idle[pg->nidle++] = c;
    } else {
        PQfinish(c);
        pg->nopen--;
    }
    pthread_cond_signal(&pg->freed);
    pthread_mutex_unlock(&pg->mu);
}

const char *eng_pg_where(const eng_pg *pg) { return pg->where; }

eng_pg *eng_pg_open(const char *url, const char *app_name, int max_conns, eng_error *e) {
    eng_pg *pg = calloc(1, sizeof *pg);
    if (!pg) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    pthread_mutex_init(&pg->mu, NULL);
    pthread_cond_init(&pg->freed, NULL);
    pg->max = max_conns > 0 ? max_conns : 1;
    eng_pg_redact(url, pg->where, sizeof pg->where);
    pg->idle = calloc((size_t)pg->max, sizeof *pg->idle);
    if (!pg->idle) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto fail;
    }
    if (parse(pg, url, app_name, e))
        goto fail;
    PGconn *c = eng_pg_take(pg, e);
    if (!c)
        goto fail;
    eng_pg_give(pg, c);
    return pg;
fail:
    eng_pg_close(pg);
    return NULL;
}

void eng_pg_close(eng_pg *pg) {
    if (!pg)
        return;
    for (int i = 0; i < pg->nidle; i++)
        PQfinish(pg->idle[i]);
    for (size_t i = 0; i <= MAX_KEYS; i++) {
        free((char *)pg->keys[i]);
        free(pg->vals[i]);
    }
    free(pg->idle);
    pthread_mutex_destroy(&pg->mu);
    pthread_cond_destroy(&pg->freed);
    free(pg);
}

/* }====== */

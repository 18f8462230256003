/*
 * pg_conninfo.c -- what a rule's conninfo may make libpq do, and the connection parameters
 * sluice actually passes.
 *
 * A conninfo reaches further than a server address. libpq reads files it names (sslcert,
 * sslkey, sslrootcert, sslcrl, sslcrldir, passfile), and when a setting is absent it falls back
 * to files and variables of the user sluice runs as: ~/.pgpass (a stored password for any host
 * a rule names), ~/.postgresql/postgresql.crt and .key (the service's own client certificate),
 * PGPASSWORD, and a service file through `service` or PGSERVICE (settings, credentials
 * included, the rule's author was never given). An empty or absent host means the default
 * Unix socket, where peer authentication logs in as the service's own OS user, as does a host
 * that is a socket directory (/...) or an abstract socket (@...).
 *
 * So: the conninfo is parsed (PQconninfoParse, which applies no defaults) and every keyword
 * checked against an allow-list. Files are accepted only beneath the certificate directory
 * (paths.c) and passed resolved; the ones not given are set to a name that cannot exist, so
 * the home-directory defaults are never read. `service`, Kerberos settings (krbsrvname,
 * gsslib: the service's Kerberos credentials) and GSS encryption are refused, and a host is
 * required, naming a TCP host or address. A conninfo without a password is refused while
 * PGPASSWORD or PGSERVICE is set in the service's environment, since libpq would then send
 * that password to the rule's server. What libpq connects with is exactly this checked list
 * (PQconnectdbParams without expand_dbname): no second parser sees the rule's text.
 * Left as it is: libpq 15 has no switch to refuse GSS authentication when a server asks for it
 * (PostgreSQL 16's require_auth), so a server that asks gets the service's Kerberos ticket if
 * it has one; sluice's own deployment has none by default.
 */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* A file name that cannot exist (a directory entry under /dev/null): libpq treats it as "no
 * such file" and falls back to nothing. */
#define NO_FILE "/dev/null/sluice-none"

enum { K_DATA, K_FILE, K_HOST, K_GSSENC };

static const struct {
    const char *name;
    int kind;
} allowed[] = {
    {"host", K_HOST}, {"hostaddr", K_HOST}, {"port", K_DATA}, {"dbname", K_DATA},
    {"user", K_DATA}, {"password", K_DATA}, {"connect_timeout", K_DATA},
    {"client_encoding", K_DATA}, {"options", K_DATA}, {"application_name", K_DATA},
    {"fallback_application_name", K_DATA}, {"keepalives", K_DATA},
    {"keepalives_idle", K_DATA}, {"keepalives_interval", K_DATA},
    {"keepalives_count", K_DATA}, {"tcp_user_timeout", K_DATA}, {"sslmode", K_DATA},
    {"requiressl", K_DATA}, {"sslcompression", K_DATA}, {"sslpassword", K_DATA},
    {"sslsni", K_DATA}, {"ssl_min_protocol_version", K_DATA},
    {"ssl_max_protocol_version", K_DATA}, {"channel_binding", K_DATA},
    {"target_session_attrs", K_DATA}, {"load_balance_hosts", K_DATA},
    {"requirepeer", K_DATA}, {"replication", K_DATA}, {"gssencmode", K_GSSENC},
    {"passfile", K_FILE}, {"sslcert", K_FILE}, {"sslkey", K_FILE}, {"sslrootcert", K_FILE},
    {"sslcrl", K_FILE}, {"sslcrldir", K_FILE},
};

/* Why the best-known others are refused. */
static const struct {
    const char *name, *why;
} refused[] = {
    {"service", "it reads settings, credentials included, from the service file of the user "
                "sluice runs as"},
    {"krbsrvname", "Kerberos would authenticate with the service's own credentials"},
    {"gsslib", "Kerberos would authenticate with the service's own credentials"},
    {"gssdelegation", "Kerberos would authenticate with the service's own credentials"},
};

/* The files libpq would otherwise look for in the service user's home directory. */
static const char *const files[] = {"passfile", "sslcert", "sslkey", "sslrootcert", "sslcrl",
                                    "sslcrldir"};

static int add(act_pg_params *p, const char *key, const char *val) {
    if (p->n + 1 >= ACT_PG_MAX_KEYS)
        return -1;
    p->keys[p->n] = key;
    if (!(p->vals[p->n] = strdup(val)))
        return -1;
    p->n++;
    p->keys[p->n] = NULL;
    p->vals[p->n] = NULL;
    return 0;
}

static const char *value_of(const act_pg_params *p, const char *key) {
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->keys[i], key))
            return p->vals[i];
    return NULL;
}

/* 1 when one element of a comma-separated host list names a Unix socket (or is empty: the
 * default socket). */
static int socket_host(const char *list) {
    for (const char *h = list;;) {
        size_t n = strcspn(h, ",");
        if (n == 0 || h[0] == '/' || h[0] == '@')
            return 1;
        if (!h[n])
            return 0;
        h += n + 1;
    }
}

/* One given keyword; 0, or -1 with err. */
static int check_one(act_pg_params *p, const eng_host *h, const char *k, const char *v,
                     char *err, size_t cap) {
    size_t i = 0, n = sizeof allowed / sizeof allowed[0];
    while (i < n && strcmp(allowed[i].name, k))
        i++;
    if (i == n) {
        for (size_t r = 0; r < sizeof refused / sizeof refused[0]; r++)
            if (!strcmp(refused[r].name, k)) {
                snprintf(err, cap, "conninfo \"%s\" is not allowed: %s", k, refused[r].why);
                return -1;
            }
        snprintf(err, cap, "conninfo \"%s\" is not one a rule may set", k);
        return -1;
    }
    char resolved[4096];
    switch (allowed[i].kind) {
    case K_HOST:
        if (socket_host(v)) {
            snprintf(err, cap, "conninfo \"%s\" '%.200s' names a Unix socket (or is empty): "
                     "only TCP hosts, where the server cannot take sluice's own OS user for "
                     "the login",
                     k, v);
            return -1;
        }
        break;
    case K_GSSENC:
        if (strcmp(v, "disable")) {
            snprintf(err, cap, "conninfo \"gssencmode\" must be disable (GSS would use the "
                     "service's own Kerberos credentials)");
            return -1;
        }
        break;
    case K_FILE: {
        char why[600];
        if (act_path_beneath(h ? h->cert_dir : "", v, resolved, sizeof resolved, why,
                             sizeof why)) {
            snprintf(err, cap, "conninfo \"%s\": %s", k, why);
            return -1;
        }
        v = resolved;
        break;
    }
    default:
        break;
    }
    if (add(p, allowed[i].name, v)) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    return 0;
}

int act_pg__conninfo(const char *conninfo, const eng_host *h, act_pg_params *p, char *err,
                     size_t cap) {
    memset(p, 0, sizeof *p);
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        size_t n = (size_t)snprintf(err, cap, "\"conninfo\" does not parse: %s",
                                    perr ? perr : "out of memory");
        while (n > 0 && n < cap && err[n - 1] == '\n')
            err[--n] = '\0';
        PQfreemem(perr);
        return -1;
    }
    int rc = -1;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && check_one(p, h, o->keyword, o->val, err, cap))
            goto out;
    if (!value_of(p, "host") && !value_of(p, "hostaddr")) {
        snprintf(err, cap, "conninfo needs \"host\" (a TCP host name or address): without one "
                 "libpq connects to the local Unix socket as sluice's own OS user");
        goto out;
    }
    const char *pw = value_of(p, "password");
    if ((!pw || !*pw) && !value_of(p, "passfile") &&
        ((getenv("PGPASSWORD") && *getenv("PGPASSWORD")) ||
         (getenv("PGSERVICE") && *getenv("PGSERVICE")))) {
        snprintf(err, cap, "conninfo has no \"password\", and the service's environment sets "
                 "PGPASSWORD or PGSERVICE, whose password libpq would send to this server: "
                 "give the password in the conninfo");
        goto out;
    }
    /* sluice's defaults, when the conninfo does not set them */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!value_of(p, files[i]) && add(p, files[i], NO_FILE))
            goto oom;
    if ((!value_of(p, "gssencmode") && add(p, "gssencmode", "disable")) ||
        (!value_of(p, "connect_timeout") && add(p, "connect_timeout", "10")) ||
        (!value_of(p, "application_name") && add(p, "application_name", "sluice")))
        goto oom;
    rc = 0;
    goto out;
oom:
    snprintf(err, cap, "out of memory");
out:
    PQconninfoFree(opts);
    if (rc)
        act_pg__params_deinit(p);
    return rc;
}

void act_pg__params_deinit(act_pg_params *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->vals[i]);
    memset(p, 0, sizeof *p);
}

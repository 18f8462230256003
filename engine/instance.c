/*
 * instance.c -- the identity of a data dir: a UUID kept in <data_dir>/instance-id, and the
 * fleet of instances that share a store.
 *
 * The id is created at the first start and read at every later one, so it survives restarts
 * and upgrades but not a new data dir. The MQTT input's client id derives from it by default (a
 * persistent session needs the same id after a restart), and so do the trace ids and
 * newuuid() seeds the journal gives messages (a replay must reproduce them), and a fleet lists
 * its instances by it.
 *
 * The fleet: with a shared store every instance keeps a row in sluice_instances, refreshed by
 * the store's watcher every few seconds (eng_instance_beat) with the database's clock, so
 * "last seen" compares times from one clock. GET /cluster/instances reads the table from any
 * instance: "up" when seen within ENG_STORE_STALE_S, "stopped" after a clean shutdown, "stale"
 * otherwise (killed, partitioned, or gone for good; rows not seen for a week are forgotten).
 */
#include "engine_int.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0-dev"
#endif

static int valid_uuid(const char *s) {
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return 0;
    }
    return 1;
}

int eng_instance_load(eng_config *c, char *err, size_t cap) {
    char path[600];
    snprintf(path, sizeof path, "%s/instance-id", c->data_dir);
    if (mkdir(c->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, cap, "cannot create the data dir %s: %s", c->data_dir, strerror(errno));
        return -1;
    }
    char id[64] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(id, sizeof id, f))
            id[0] = '\0';
        fclose(f);
        id[strcspn(id, "\r\n")] = '\0';
        if (!valid_uuid(id)) {
            snprintf(err, cap, "%s does not hold an instance id (a UUID); restore it, or remove "
                     "it to give this data dir a new identity", path);
            return -1;
        }
    } else if (errno == ENOENT) {
        unsigned char b[16];
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
            snprintf(err, cap, "no randomness for an instance id");
            return -1;
        }
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        char *p = id;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                *p++ = '-';
            p += sprintf(p, "%02x", b[i]);
        }
        char tmp[640];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dprintf(fd, "%s\n", id) < 0 || fsync(fd) != 0 || close(fd) != 0 ||
            rename(tmp, path) != 0) {
            snprintf(err, cap, "cannot write %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        int dfd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    } else {
        snprintf(err, cap, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    memcpy(c->instance_id, id, 37); /* valid_uuid(): 36 characters and the NUL */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    c->instance_hash = h;
    if (!c->mqtt_client_id[0]) {
        char hex[13];
        int k = 0;
        for (const char *p = id; *p && k < 12; p++)
            if (*p != '-')
                hex[k++] = *p;
        hex[k] = '\0';
        snprintf(c->mqtt_client_id, sizeof c->mqtt_client_id, "sluice-%s", hex);
    }
    return 0;
}

/* {====== the fleet */

void eng_instance_health(eng_env *env, char *out, size_t cap) {
    char journal[160] = "";
    int jerr = env->journal ? eng_journal_failed(env->journal) : 0;
    if (jerr)
        snprintf(journal, sizeof journal, "journal failing: %s", strerror(jerr));
    const char *problems[] = {
        env->mqtt && !eng_mqtt_offline(env->mqtt) && !eng_mqtt_connected(env->mqtt)
            ? "broker disconnected"
            : "",
        journal,
        env->store && !eng_store_connected(env->store) ? "shared store unreachable" : "",
    };
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof problems / sizeof problems[0] && n < cap; i++)
        if (*problems[i])
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "; " : "", problems[i]);
    if (!n)
        snprintf(out, cap, "healthy");
}

int eng_instance_beat(eng_pg *pg, eng_env *env, int stopped, eng_error *e) {
    const eng_config *cfg = env->cfg;
    char health[512], host[256] = "", started[24];
    eng_instance_health(env, health, sizeof health);
    if (stopped)
        snprintf(health, sizeof health, "stopped");
    gethostname(host, sizeof host - 1);
    snprintf(started, sizeof started, "%lld", (long long)env->started_at);
    const char *params[] = {cfg->instance_id, cfg->mqtt_client_id, SLUICE_VERSION,
                            cfg->http_addr, host, started, health, stopped ? "t" : "f"};
    PGconn *c = eng_pg_take(pg, e);
    if (!c)
        return -1;
    PGresult *r = eng_pg_exec(
        pg, c,
        "INSERT INTO sluice_instances AS i(id, client_id, version, http_addr, host, started_at,"
        " last_seen, health, stopped) VALUES ($1, $2, $3, $4, $5,"
        " to_timestamp($6::bigint / 1000.0), now(), $7, $8) "
        "ON CONFLICT (id) DO UPDATE SET client_id = EXCLUDED.client_id, version ="
        " EXCLUDED.version, http_addr = EXCLUDED.http_addr, host = EXCLUDED.host, started_at ="
        " EXCLUDED.started_at, last_seen = now(), health = EXCLUDED.health, stopped ="
        " EXCLUDED.stopped",
        8, params, PGRES_COMMAND_OK, "registering this instance", e);
    eng_pg_give(pg, c);
    PQclear(r);
    return r ? 0 : -1;
}

int eng_instance_purge(eng_pg *pg, int64_t max_age_s, eng_error *e) {
    char age[24];
    snprintf(age, sizeof age, "%lld", (long long)max_age_s);
    const char *params[] = {age};
    PGconn *c = eng_pg_take(pg, e);
    if (!c)
        return -1;
    PGresult *r = eng_pg_exec(pg, c, "DELETE FROM sluice_instances WHERE last_seen < now() -"
                              " make_interval(secs => $1::bigint)", 1, params,
                              PGRES_COMMAND_OK, "forgetting old instances", e);
    eng_pg_give(pg, c);
    PQclear(r);
    return r ? 0 : -1;
}

static cJSON *instance_json(const char *id, const char *client, const char *version,
                            const char *addr, const char *host, double started, double seen,
                            double ago, const char *health, const char *status, int self) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "instanceId", id);
    cJSON_AddStringToObject(o, "clientId", client);
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddStringToObject(o, "httpAddr", addr);
    cJSON_AddStringToObject(o, "host", host);
    cJSON_AddNumberToObject(o, "startedAt", started);
    cJSON_AddNumberToObject(o, "lastSeen", seen);
    cJSON_AddNumberToObject(o, "secondsSinceSeen", ago);
    cJSON_AddStringToObject(o, "health", health);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddBoolToObject(o, "self", self);
    return o;
}

char *eng_instances_json(eng_env *env, eng_error *e) {
    const eng_config *cfg = env->cfg;
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "instances");
    eng_pg *pg = env->store ? eng_store_pg(env->store) : NULL;
    char *s = NULL;
    int failed = 1;
    if (!pg) { /* the data dir: this instance alone, seen now */
        char health[512], host[256] = "";
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        eng_instance_health(env, health, sizeof health);
        gethostname(host, sizeof host - 1);
        cJSON_AddItemToArray(arr, instance_json(cfg->instance_id, cfg->mqtt_client_id,
                                                SLUICE_VERSION, cfg->http_addr, host,
                                                (double)env->started_at,
                                                (double)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                                                0, health, "up", 1));
        failed = 0;
        goto out;
    }
    PGconn *c = eng_pg_take(pg, e);
    if (!c)
        goto out;
    char stale[24];
    snprintf(stale, sizeof stale, "%d", ENG_STORE_STALE_S);
    const char *params[] = {stale};
    PGresult *r = eng_pg_exec(
        pg, c,
        "SELECT id, client_id, version, http_addr, host,"
        " (extract(epoch FROM started_at) * 1000)::bigint,"
        " (extract(epoch FROM last_seen) * 1000)::bigint,"
        " round(extract(epoch FROM now() - last_seen)::numeric, 3), health,"
        " CASE WHEN stopped THEN 'stopped'"
        "  WHEN last_seen > now() - make_interval(secs => $1::bigint) THEN 'up'"
        "  ELSE 'stale' END "
        "FROM sluice_instances ORDER BY id",
        1, params, PGRES_TUPLES_OK, "listing the instances", e);
    eng_pg_give(pg, c);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        cJSON_AddItemToArray(
            arr, instance_json(id, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                               strtod(PQgetvalue(r, i, 5), NULL),
                               strtod(PQgetvalue(r, i, 6), NULL),
                               strtod(PQgetvalue(r, i, 7), NULL), PQgetvalue(r, i, 8),
                               PQgetvalue(r, i, 9), !strcmp(id, cfg->instance_id)));
    }
    PQclear(r);
    failed = 0;
out:
    if (!failed) {
        s = cJSON_PrintUnformatted(out);
        if (!s)
            eng_error_set(e, 500, "InternalException", "out of memory");
    }
    cJSON_Delete(out);
    return s;
}

/* }====== */

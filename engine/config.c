/*
 * config.c -- the service configuration: DESIGN.md's defaults, a JSON file, then the
 * environment, each overriding the one before. Unknown keys in the file are an error, so a
 * typo never silently leaves a default in place. Secrets (secret access keys, tokens,
 * passwords) never appear in an error message: the message names the key instead.
 */
#include "engine_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void eng_config_defaults(eng_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->mqtt_url, sizeof c->mqtt_url, "mqtt://127.0.0.1:1883");
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    (void)host; /* the client id defaults to one derived from the data dir's instance id */
    c->mqtt_version = 5;
    c->mqtt_keepalive = 120;
    c->mqtt_session_expiry = 86400;
    c->mqtt_receive_maximum = 512;
    c->journal_mode = ENG_JOURNAL_BATCH;
    c->journal_interval_ms = 100;
    c->journal_max_bytes = 1024LL * 1024 * 1024;
    c->dlq_eval_errors = 1;
    c->shadows_enabled = 1;
    snprintf(c->http_addr, sizeof c->http_addr, "127.0.0.1:8088");
    snprintf(c->data_dir, sizeof c->data_dir, "./data");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = n > 0 ? (int)n : 1;
    c->queue_depth = 4096;
    c->log_level = ENG_LOG_INFO;
    c->republish_max_hops = 8;
    snprintf(c->account_id, sizeof c->account_id, "000000000000");
    snprintf(c->region, sizeof c->region, "local");
    c->action_queue_depth = 10000;
    c->retry_attempts = 8;
    c->retry_base_ms = 100;
    c->retry_max_ms = 10000;
    c->retry_total_ms = 60000;
    c->http_timeout_ms = 3000;
    c->http_connect_timeout_ms = 3000;
    c->dlq_max_bytes = 1024LL * 1024 * 1024;
    c->dlq_max_age_s = 7LL * 24 * 3600;
    c->http_max_connections = 256;
    c->http_max_per_client = 64;
    c->http_timeout_s = 30;
    snprintf(c->kafka_group_id, sizeof c->kafka_group_id, "sluice");
    snprintf(c->kafka_topic_header, sizeof c->kafka_topic_header, "mqtt_topic");
    snprintf(c->kafka_clientid_header, sizeof c->kafka_clientid_header, "clientid");
    snprintf(c->kafka_offset_reset, sizeof c->kafka_offset_reset, "earliest");
    snprintf(c->kafka_assignment, sizeof c->kafka_assignment, "cooperative-sticky");
    c->kafka_max_in_flight = 10000;
    c->kafka_commit_interval_ms = 1000;
    c->kafka_session_timeout_ms = 45000;
    c->kafka_drain_ms = 10000;
}

static const char *const role_names[] = {"", "reader", "publisher", "admin"}; /* ORDER ENG_ROLE */

int eng_role_parse(const char *s) {
    for (int r = ENG_ROLE_READER; r <= ENG_ROLE_ADMIN; r++)
        if (!strcmp(s, role_names[r]))
            return r;
    return -1;
}

const char *eng_role_name(int role) {
    return role >= ENG_ROLE_READER && role <= ENG_ROLE_ADMIN ? role_names[role] : "none";
}

static int set_str(char *dst, size_t cap, const cJSON *v, const char *key, char *err,
                   size_t ecap) {
    if (!cJSON_IsString(v)) {
        snprintf(err, ecap, "config: \"%s\" must be a string", key);
        return -1;
    }
    if (strlen(v->valuestring) >= cap) {
        snprintf(err, ecap, "config: \"%s\" is too long", key);
        return -1;
    }
    snprintf(dst, cap, "%s", v->valuestring);
    return 0;
}

static int set_int(int *dst, const cJSON *v, const char *key, int min, int max, char *err,
                   size_t ecap) {
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max ||
        v->valuedouble != (int)v->valuedouble) {
        snprintf(err, ecap, "config: \"%s\" must be an integer from %d to %d", key, min, max);
        return -1;
    }
    *dst = (int)v->valuedouble;
    return 0;
}

static int set_bool(int *dst, const cJSON *v, const char *key, char *err, size_t ecap) {
    if (!cJSON_IsBool(v)) {
        snprintf(err, ecap, "config: \"%s\" must be true or false", key);
        return -1;
    }
    *dst = cJSON_IsTrue(v);
    return 0;
}

/* "postgresql://..." (or "postgres://..."): the shared store; "" or "dataDir": the data dir.
 * The value is never quoted back: it may hold a password. */
static int store_url(eng_config *c, const char *s, const char *key, char *err, size_t cap) {
    if (!*s || !strcmp(s, "dataDir")) {
        c->store_url[0] = '\0';
        return 0;
    }
    if (strncmp(s, "postgresql://", 13) && strncmp(s, "postgres://", 11)) {
        snprintf(err, cap, "%s must be a postgresql:// URL (a shared store) or \"dataDir\"", key);
        return -1;
    }
    if (strlen(s) >= sizeof c->store_url) {
        snprintf(err, cap, "%s is too long", key);
        return -1;
    }
    snprintf(c->store_url, sizeof c->store_url, "%s", s);
    return 0;
}

static int set_store(eng_config *c, const cJSON *v, const char *key, char *err, size_t cap) {
    if (!cJSON_IsString(v)) {
        snprintf(err, cap, "config: \"%s\" must be a string", key);
        return -1;
    }
    return store_url(c, v->valuestring, "config: store", err, cap);
}

static int mqtt_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "url"))
            rc = set_str(c->mqtt_url, sizeof c->mqtt_url, v, "mqtt.url", err, cap);
        else if (!strcmp(k, "clientId"))
            rc = set_str(c->mqtt_client_id, sizeof c->mqtt_client_id, v, k, err, cap);
        else if (!strcmp(k, "username"))
            rc = set_str(c->mqtt_username, sizeof c->mqtt_username, v, k, err, cap);
        else if (!strcmp(k, "password"))
            rc = set_str(c->mqtt_password, sizeof c->mqtt_password, v, k, err, cap);
        else if (!strcmp(k, "caFile"))
            rc = set_str(c->mqtt_ca_file, sizeof c->mqtt_ca_file, v, k, err, cap);
        else if (!strcmp(k, "certFile"))
            rc = set_str(c->mqtt_cert_file, sizeof c->mqtt_cert_file, v, k, err, cap);
        else if (!strcmp(k, "keyFile"))
            rc = set_str(c->mqtt_key_file, sizeof c->mqtt_key_file, v, k, err, cap);
        else if (!strcmp(k, "sharedGroup"))
            rc = set_str(c->mqtt_shared_group, sizeof c->mqtt_shared_group, v, k, err, cap);
        else if (!strcmp(k, "version"))
            rc = set_int(&c->mqtt_version, v, k, 3, 5, err, cap);
        else if (!strcmp(k, "keepalive") || !strcmp(k, "keepAliveSeconds"))
            rc = set_int(&c->mqtt_keepalive, v, k, 5, 3600, err, cap);
        else if (!strcmp(k, "sessionExpirySeconds"))
            rc = set_int(&c->mqtt_session_expiry, v, k, 0, 2147483647, err, cap);
        else if (!strcmp(k, "receiveMaximum"))
            rc = set_int(&c->mqtt_receive_maximum, v, k, 1, 65535, err, cap);
        else {
            snprintf(err, cap, "config: unknown key \"mqtt.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (c->mqtt_version == 4 || c->mqtt_version == 3)
        c->mqtt_version = 311;
    return 0;
}

static int set_ll(long long *dst, const cJSON *v, const char *key, long long min, char *err,
                  size_t ecap) {
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > 9.0e15 ||
        v->valuedouble != (double)(long long)v->valuedouble) {
        snprintf(err, ecap, "config: \"%s\" must be an integer of at least %lld", key, min);
        return -1;
    }
    *dst = (long long)v->valuedouble;
    return 0;
}

static int retry_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "attempts"))
            rc = set_int(&c->retry_attempts, v, "actions.retry.attempts", 1, 1000, err, cap);
        else if (!strcmp(k, "baseMs"))
            rc = set_int(&c->retry_base_ms, v, "actions.retry.baseMs", 0, 3600000, err, cap);
        else if (!strcmp(k, "maxMs"))
            rc = set_int(&c->retry_max_ms, v, "actions.retry.maxMs", 0, 3600000, err, cap);
        else if (!strcmp(k, "totalMs"))
            rc = set_int(&c->retry_total_ms, v, "actions.retry.totalMs", 0, 86400000, err, cap);
        else {
            snprintf(err, cap, "config: unknown key \"actions.retry.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* "allowedHosts": ["a.example", "127.0.0.1"] -> "a.example,127.0.0.1" */
static int hosts_list(eng_config *c, const cJSON *v, char *err, size_t cap) {
    if (!cJSON_IsArray(v)) {
        snprintf(err, cap, "config: \"actions.http.allowedHosts\" must be an array of strings");
        return -1;
    }
    size_t len = 0;
    c->http_allowed_hosts[0] = '\0';
    const cJSON *h;
    cJSON_ArrayForEach(h, v) {
        if (!cJSON_IsString(h) || !h->valuestring[0] || strchr(h->valuestring, ',')) {
            snprintf(err, cap, "config: \"actions.http.allowedHosts\" must hold host names");
            return -1;
        }
        int n = snprintf(c->http_allowed_hosts + len, sizeof c->http_allowed_hosts - len, "%s%s",
                         len ? "," : "", h->valuestring);
        if (n < 0 || (size_t)n >= sizeof c->http_allowed_hosts - len) {
            snprintf(err, cap, "config: \"actions.http.allowedHosts\" is too long");
            return -1;
        }
        len += (size_t)n;
    }
    return 0;
}

static int http_action_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "allowedHosts"))
            rc = hosts_list(c, v, err, cap);
        else if (!strcmp(k, "timeoutMs"))
            rc = set_int(&c->http_timeout_ms, v, "actions.http.timeoutMs", 1, 600000, err, cap);
        else if (!strcmp(k, "connectTimeoutMs"))
            rc = set_int(&c->http_connect_timeout_ms, v, "actions.http.connectTimeoutMs", 1,
                         600000, err, cap);
        else if (!strcmp(k, "allowLinkLocal"))
            rc = set_bool(&c->http_allow_link_local, v, "actions.http.allowLinkLocal", err,
                          cap);
        else {
            snprintf(err, cap, "config: unknown key \"actions.http.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* A section {"<key>": "/absolute/dir"} of one directory (actions.file, actions.kafka). */
static int one_path(char *dst, size_t cap, const cJSON *m, const char *key, const char *section,
                    char *err, size_t ecap) {
    char full[128];
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        snprintf(full, sizeof full, "%s.%s", section, v->string);
        if (strcmp(v->string, key)) {
            snprintf(err, ecap, "config: unknown key \"%s\"", full);
            return -1;
        }
        if (set_str(dst, cap, v, full, err, ecap))
            return -1;
        if (dst[0] != '/') {
            snprintf(err, ecap, "config: \"%s\" must be an absolute directory path", full);
            return -1;
        }
    }
    return 0;
}

static int actions_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "queueDepth"))
            rc = set_int(&c->action_queue_depth, v, "actions.queueDepth", 1, 1 << 24, err, cap);
        else if (!strcmp(k, "retry") && cJSON_IsObject(v))
            rc = retry_section(c, v, err, cap);
        else if (!strcmp(k, "http") && cJSON_IsObject(v))
            rc = http_action_section(c, v, err, cap);
        else if (!strcmp(k, "file") && cJSON_IsObject(v))
            rc = one_path(c->file_base_dir, sizeof c->file_base_dir, v, "baseDir",
                          "actions.file", err, cap);
        else if (!strcmp(k, "kafka") && cJSON_IsObject(v))
            rc = one_path(c->cert_dir, sizeof c->cert_dir, v, "certDir", "actions.kafka", err,
                          cap);
        else {
            snprintf(err, cap, "config: unknown key \"actions.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* "batch" | "interval" | "off" -> ENG_JOURNAL_*, -1 otherwise. */
static int journal_mode(const char *s) {
    return !strcmp(s, "batch") ? ENG_JOURNAL_BATCH
           : !strcmp(s, "interval") ? ENG_JOURNAL_INTERVAL
           : !strcmp(s, "off") ? ENG_JOURNAL_OFF
                               : -1;
}

static int ingest_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc = 0;
        if (!strcmp(k, "journal")) {
            int mode = cJSON_IsString(v) ? journal_mode(v->valuestring) : -1;
            if (mode < 0) {
                snprintf(err, cap, "config: \"ingest.journal\" must be batch, interval or off");
                return -1;
            }
            c->journal_mode = mode;
        } else if (!strcmp(k, "journalIntervalMs"))
            rc = set_int(&c->journal_interval_ms, v, "ingest.journalIntervalMs", 1, 60000, err,
                         cap);
        else if (!strcmp(k, "journalMaxBytes"))
            rc = set_ll(&c->journal_max_bytes, v, "ingest.journalMaxBytes", 65536, err, cap);
        else {
            snprintf(err, cap, "config: unknown key \"ingest.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

static int deadletter_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "maxBytes"))
            rc = set_ll(&c->dlq_max_bytes, v, "deadLetter.maxBytes", 4096, err, cap);
        else if (!strcmp(k, "maxAgeSeconds"))
            rc = set_ll(&c->dlq_max_age_s, v, "deadLetter.maxAgeSeconds", 1, err, cap);
        else if (!strcmp(k, "evalErrors")) {
            if (!cJSON_IsBool(v)) {
                snprintf(err, cap, "config: \"deadLetter.evalErrors\" must be true or false");
                return -1;
            }
            c->dlq_eval_errors = cJSON_IsTrue(v);
            rc = 0;
        }
        else {
            snprintf(err, cap, "config: unknown key \"deadLetter.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

static int http_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "addr"))
            rc = set_str(c->http_addr, sizeof c->http_addr, v, "http.addr", err, cap);
        else if (!strcmp(k, "maxConnections"))
            rc = set_int(&c->http_max_connections, v, "http.maxConnections", 1, 100000, err,
                         cap);
        else if (!strcmp(k, "maxConnectionsPerClient"))
            rc = set_int(&c->http_max_per_client, v, "http.maxConnectionsPerClient", 1, 100000,
                         err, cap);
        else if (!strcmp(k, "timeoutSeconds"))
            rc = set_int(&c->http_timeout_s, v, "http.timeoutSeconds", 1, 3600, err, cap);
        else {
            snprintf(err, cap, "config: unknown key \"http.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* An access key id goes into the Credential= part of an Authorization header, so it may not
 * hold the characters that delimit it there. */
static int key_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof ((eng_credential *)0)->access_key_id)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
            return 0;
    return 1;
}

/* A secret or a token: printable ASCII without spaces (it travels in a header or is typed
 * into `aws configure`), bounded. */
static int secret_ok(const char *s, size_t cap) {
    size_t n = strlen(s);
    if (n == 0 || n >= cap)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~')
            return 0;
    return 1;
}

/* Adds the credential, or replaces the secret and role of the one with the same key id (the
 * environment overrides the file). */
static int add_credential(eng_config *c, const char *id, const char *secret, int role,
                          const char *where, char *err, size_t cap) {
    if (!key_id_ok(id)) {
        snprintf(err, cap, "%s: an access key id is 1 to 128 letters, digits, '.', '_' or '-'",
                 where);
        return -1;
    }
    if (!secret_ok(secret, sizeof c->credentials[0].secret)) {
        snprintf(err, cap, "%s: the secret access key of %s must be 1 to 128 printable "
                 "characters without spaces", where, id);
        return -1;
    }
    size_t i = 0;
    while (i < c->ncredentials && strcmp(c->credentials[i].access_key_id, id))
        i++;
    if (i == ENG_AUTH_MAX) {
        snprintf(err, cap, "%s: at most %d credentials", where, ENG_AUTH_MAX);
        return -1;
    }
    eng_credential *cr = &c->credentials[i];
    snprintf(cr->access_key_id, sizeof cr->access_key_id, "%s", id);
    snprintf(cr->secret, sizeof cr->secret, "%s", secret);
    cr->role = role;
    if (i == c->ncredentials)
        c->ncredentials++;
    return 0;
}

/* Adds the token, or gives an equal one the new role. */
static int add_token(eng_config *c, const char *token, int role, const char *where, char *err,
                     size_t cap) {
    if (!secret_ok(token, sizeof c->tokens[0].token)) {
        snprintf(err, cap, "%s: a token must be 1 to 256 printable characters without spaces",
                 where);
        return -1;
    }
    size_t i = 0;
    while (i < c->ntokens && strcmp(c->tokens[i].token, token))
        i++;
    if (i == ENG_AUTH_MAX) {
        snprintf(err, cap, "%s: at most %d tokens", where, ENG_AUTH_MAX);
        return -1;
    }
    snprintf(c->tokens[i].token, sizeof c->tokens[i].token, "%s", token);
    c->tokens[i].role = role;
    if (i == c->ntokens)
        c->ntokens++;
    return 0;
}

/* The members of one auth.credentials or auth.tokens entry: exactly the keys named. */
static const char *member(const cJSON *o, const char *key, const char *where, char *err,
                          size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        snprintf(err, cap, "config: each of %s needs \"%s\" (a string)", where, key);
        return NULL;
    }
    return v->valuestring;
}

static int entry_role(const cJSON *o, const char *where, const char *const *keys, char *err,
                      size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, o) {
        int known = 0;
        for (const char *const *k = keys; *k; k++)
            known |= !strcmp(v->string, *k);
        if (!known) {
            snprintf(err, cap, "config: unknown key \"%s[].%s\"", where, v->string);
            return -1;
        }
    }
    const char *r = member(o, "role", where, err, cap);
    int role = r ? eng_role_parse(r) : -1;
    if (r && role < 0)
        snprintf(err, cap, "config: the role in %s must be reader, publisher or admin", where);
    return role;
}

static int auth_list(eng_config *c, const cJSON *arr, int tokens, char *err, size_t cap) {
    const char *where = tokens ? "auth.tokens" : "auth.credentials";
    static const char *const ckeys[] = {"accessKeyId", "secretAccessKey", "role", NULL};
    static const char *const tkeys[] = {"token", "role", NULL};
    if (!cJSON_IsArray(arr)) {
        snprintf(err, cap, "config: \"%s\" must be an array of objects", where);
        return -1;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        if (!cJSON_IsObject(o)) {
            snprintf(err, cap, "config: \"%s\" must be an array of objects", where);
            return -1;
        }
        int role = entry_role(o, where, tokens ? tkeys : ckeys, err, cap);
        if (role < 0)
            return -1;
        if (tokens) {
            const char *t = member(o, "token", where, err, cap);
            if (!t || add_token(c, t, role, "config: auth.tokens", err, cap))
                return -1;
            continue;
        }
        const char *id = member(o, "accessKeyId", where, err, cap);
        const char *secret = id ? member(o, "secretAccessKey", where, err, cap) : NULL;
        if (!secret || add_credential(c, id, secret, role, "config: auth.credentials", err, cap))
            return -1;
    }
    return 0;
}

static int auth_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc = 0;
        if (!strcmp(k, "credentials"))
            rc = auth_list(c, v, 0, err, cap);
        else if (!strcmp(k, "tokens"))
            rc = auth_list(c, v, 1, err, cap);
        else if (!strcmp(k, "metricsPublic")) {
            if (!cJSON_IsBool(v)) {
                snprintf(err, cap, "config: \"auth.metricsPublic\" must be true or false");
                return -1;
            }
            c->metrics_public = cJSON_IsTrue(v);
        } else {
            snprintf(err, cap, "config: unknown key \"auth.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* One Kafka topic name as Kafka allows it (1-249 of [a-zA-Z0-9._-]), or a librdkafka
 * subscription pattern: "^" and a regular expression without a comma. */
static int kafka_topic_ok(const char *t, size_t n) {
    if (n >= 2 && t[0] == '^')
        return memchr(t, ',', n) == NULL;
    if (n < 1 || n > 249)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!t[i] || !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                             t[i]))
            return 0;
    return 1;
}

/* Sets c->kafka_topics from a comma-separated list, checking each name. */
static int kafka_topics_csv(eng_config *c, const char *csv, const char *key, char *err,
                            size_t cap) {
    size_t len = strlen(csv);
    for (const char *t = csv; t <= csv + len;) {
        size_t n = strcspn(t, ",");
        if (!kafka_topic_ok(t, n)) {
            snprintf(err, cap, "config: \"%s\": \"%.*s\" is not a Kafka topic name (1 to 249 "
                     "of a-z A-Z 0-9 . _ -) or a ^pattern", key, (int)(n > 300 ? 300 : n), t);
            return -1;
        }
        t += n + 1;
    }
    if (len >= sizeof c->kafka_topics) {
        snprintf(err, cap, "config: \"%s\" is too long", key);
        return -1;
    }
    snprintf(c->kafka_topics, sizeof c->kafka_topics, "%s", csv);
    return 0;
}

/* "topics": ["a", "b"] -> "a,b" */
static int kafka_topics_list(eng_config *c, const cJSON *v, char *err, size_t cap) {
    char csv[sizeof c->kafka_topics];
    size_t len = 0;
    const cJSON *t;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
        snprintf(err, cap, "config: \"sources.kafka.topics\" must be a non-empty array of "
                 "strings");
        return -1;
    }
    cJSON_ArrayForEach(t, v) {
        if (!cJSON_IsString(t) || strchr(t->valuestring, ',')) {
            snprintf(err, cap, "config: \"sources.kafka.topics\" must hold topic names");
            return -1;
        }
        int n = snprintf(csv + len, sizeof csv - len, "%s%s", len ? "," : "", t->valuestring);
        if (n < 0 || (size_t)n >= sizeof csv - len) {
            snprintf(err, cap, "config: \"sources.kafka.topics\" is too long");
            return -1;
        }
        len += (size_t)n;
    }
    return kafka_topics_csv(c, csv, "sources.kafka.topics", err, cap);
}

/* One of the strings in `allowed` (NULL-terminated) into dst. */
static int set_enum(char *dst, size_t dcap, const cJSON *v, const char *key,
                    const char *const *allowed, char *err, size_t cap) {
    for (size_t i = 0; cJSON_IsString(v) && allowed[i]; i++)
        if (!strcmp(v->valuestring, allowed[i])) {
            snprintf(dst, dcap, "%s", allowed[i]);
            return 0;
        }
    int n = snprintf(err, cap, "config: \"%s\" must be one of:", key);
    for (size_t i = 0; allowed[i] && n > 0 && (size_t)n < cap; i++)
        n += snprintf(err + n, cap - (size_t)n, " %s", allowed[i]);
    return -1;
}

static int kafka_source_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    static const char *const resets[] = {"earliest", "latest", NULL};
    static const char *const strategies[] = {"cooperative-sticky", "range", "roundrobin", NULL};
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        const char *k = v->string;
        int rc;
        if (!strcmp(k, "topics"))
            rc = kafka_topics_list(c, v, err, cap);
        else if (!strcmp(k, "groupId"))
            rc = set_str(c->kafka_group_id, sizeof c->kafka_group_id, v, "sources.kafka.groupId",
                         err, cap);
        else if (!strcmp(k, "topicHeader"))
            rc = set_str(c->kafka_topic_header, sizeof c->kafka_topic_header, v,
                         "sources.kafka.topicHeader", err, cap);
        else if (!strcmp(k, "clientIdHeader"))
            rc = set_str(c->kafka_clientid_header, sizeof c->kafka_clientid_header, v,
                         "sources.kafka.clientIdHeader", err, cap);
        else if (!strcmp(k, "clientProperties")) {
            /* checked when the source starts, through the Kafka action's check */
            char *text = cJSON_IsObject(v) ? cJSON_PrintUnformatted(v) : NULL;
            rc = -1;
            if (!cJSON_IsObject(v))
                snprintf(err, cap, "config: \"sources.kafka.clientProperties\" must be an "
                         "object");
            else if (!text || strlen(text) >= sizeof c->kafka_props)
                snprintf(err, cap, "config: \"sources.kafka.clientProperties\" is too long");
            else
                rc = snprintf(c->kafka_props, sizeof c->kafka_props, "%s", text) < 0;
            cJSON_free(text);
        } else if (!strcmp(k, "autoOffsetReset"))
            rc = set_enum(c->kafka_offset_reset, sizeof c->kafka_offset_reset, v,
                          "sources.kafka.autoOffsetReset", resets, err, cap);
        else if (!strcmp(k, "assignmentStrategy"))
            rc = set_enum(c->kafka_assignment, sizeof c->kafka_assignment, v,
                          "sources.kafka.assignmentStrategy", strategies, err, cap);
        else if (!strcmp(k, "maxInFlightPerPartition"))
            rc = set_int(&c->kafka_max_in_flight, v, "sources.kafka.maxInFlightPerPartition", 1,
                         1 << 24, err, cap);
        else if (!strcmp(k, "maxInFlight"))
            rc = set_int(&c->kafka_max_in_flight_total, v, "sources.kafka.maxInFlight", 1,
                         1 << 24, err, cap);
        else if (!strcmp(k, "commitIntervalMs"))
            rc = set_int(&c->kafka_commit_interval_ms, v, "sources.kafka.commitIntervalMs", 10,
                         3600000, err, cap);
        else if (!strcmp(k, "sessionTimeoutMs"))
            rc = set_int(&c->kafka_session_timeout_ms, v, "sources.kafka.sessionTimeoutMs", 1000,
                         3600000, err, cap);
        else if (!strcmp(k, "drainMs"))
            rc = set_int(&c->kafka_drain_ms, v, "sources.kafka.drainMs", 0, 3600000, err, cap);
        else {
            snprintf(err, cap, "config: unknown key \"sources.kafka.%s\"", k);
            return -1;
        }
        if (rc)
            return -1;
    }
    return 0;
}

static int sources_section(eng_config *c, const cJSON *m, char *err, size_t cap) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        if (strcmp(v->string, "kafka") || !cJSON_IsObject(v)) {
            snprintf(err, cap, "config: unknown key \"sources.%s\"", v->string);
            return -1;
        }
        if (kafka_source_section(c, v, err, cap))
            return -1;
    }
    return 0;
}

int eng_config_load_file(eng_config *c, const char *path, char *err, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "config: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, cap, "config: %s is not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    int rc = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, root) {
        const char *k = v->string;
        if (!strcmp(k, "mqtt") && cJSON_IsObject(v))
            rc = mqtt_section(c, v, err, cap);
        else if (!strcmp(k, "http") && cJSON_IsObject(v))
            rc = http_section(c, v, err, cap);
        else if (!strcmp(k, "auth") && cJSON_IsObject(v))
            rc = auth_section(c, v, err, cap);
        else if (!strcmp(k, "dataDir"))
            rc = set_str(c->data_dir, sizeof c->data_dir, v, k, err, cap);
        else if (!strcmp(k, "workers"))
            rc = set_int(&c->workers, v, k, 1, 256, err, cap);
        else if (!strcmp(k, "queueDepth"))
            rc = set_int(&c->queue_depth, v, k, 1, 1 << 20, err, cap);
        else if (!strcmp(k, "adminToken")) { /* the key before auth.tokens: an admin token */
            char token[sizeof c->tokens[0].token];
            rc = set_str(token, sizeof token, v, k, err, cap) ||
                         add_token(c, token, ENG_ROLE_ADMIN, "config: adminToken", err, cap)
                     ? -1
                     : 0;
        } else if (!strcmp(k, "logLevel")) {
            int l = cJSON_IsString(v) ? eng_log_level_parse(v->valuestring) : -1;
            if (l < 0) {
                snprintf(err, cap, "config: logLevel must be debug, info, warn or error");
                rc = -1;
            } else {
                c->log_level = l;
            }
        } else if (!strcmp(k, "republishMaxHops"))
            rc = set_int(&c->republish_max_hops, v, k, 1, 1000, err, cap);
        else if (!strcmp(k, "accountId"))
            rc = set_str(c->account_id, sizeof c->account_id, v, k, err, cap);
        else if (!strcmp(k, "region"))
            rc = set_str(c->region, sizeof c->region, v, k, err, cap);
        else if (!strcmp(k, "actions") && cJSON_IsObject(v))
            rc = actions_section(c, v, err, cap);
        else if (!strcmp(k, "deadLetter") && cJSON_IsObject(v))
            rc = deadletter_section(c, v, err, cap);
        else if (!strcmp(k, "ingest") && cJSON_IsObject(v))
            rc = ingest_section(c, v, err, cap);
        else if (!strcmp(k, "store"))
            rc = set_store(c, v, "store", err, cap);
        else if (!strcmp(k, "shadows") && cJSON_IsObject(v)) {
            const cJSON *en = cJSON_GetObjectItemCaseSensitive(v, "enabled");
            if (cJSON_GetArraySize(v) != (en ? 1 : 0) || (en && !cJSON_IsBool(en))) {
                snprintf(err, cap, "config: \"shadows\" takes one key, \"enabled\" (true or "
                         "false)");
                rc = -1;
            } else if (en) {
                c->shadows_enabled = cJSON_IsTrue(en);
            }
        } else if (!strcmp(k, "sources") && cJSON_IsObject(v))
            rc = sources_section(c, v, err, cap);
        else {
            snprintf(err, cap, "config: unknown key \"%s\"", k);
            rc = -1;
        }
        if (rc)
            break;
    }
    cJSON_Delete(root);
    return rc;
}

static int env_str(const char *name, char *dst, size_t cap, char *err, size_t ecap) {
    const char *v = getenv(name);
    if (!v)
        return 0;
    if (strlen(v) >= cap) {
        snprintf(err, ecap, "%s is too long", name);
        return -1;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

/* SLUICE_ADMIN_TOKEN, SLUICE_ACCESS_KEY_ID + SLUICE_SECRET_ACCESS_KEY, SLUICE_INSECURE_NO_AUTH */
static int auth_env(eng_config *c, char *err, size_t cap) {
    const char *t = getenv("SLUICE_ADMIN_TOKEN");
    if (t && *t && add_token(c, t, ENG_ROLE_ADMIN, "SLUICE_ADMIN_TOKEN", err, cap))
        return -1;
    const char *id = getenv("SLUICE_ACCESS_KEY_ID"), *secret = getenv("SLUICE_SECRET_ACCESS_KEY");
    if ((id && *id) != (secret && *secret)) {
        snprintf(err, cap, "SLUICE_ACCESS_KEY_ID and SLUICE_SECRET_ACCESS_KEY go together: set "
                 "both (one admin credential) or neither");
        return -1;
    }
    if (id && *id && add_credential(c, id, secret, ENG_ROLE_ADMIN, "SLUICE_ACCESS_KEY_ID", err,
                                    cap))
        return -1;
    const char *in = getenv("SLUICE_INSECURE_NO_AUTH");
    if (in) {
        if (!strcmp(in, "1") || !strcasecmp(in, "true") || !strcasecmp(in, "yes"))
            c->insecure_no_auth = 1;
        else if (!*in || !strcmp(in, "0") || !strcasecmp(in, "false") || !strcasecmp(in, "no"))
            c->insecure_no_auth = 0;
        else {
            snprintf(err, cap, "SLUICE_INSECURE_NO_AUTH must be 1 or 0");
            return -1;
        }
    }
    return 0;
}

int eng_config_apply_env(eng_config *c, char *err, size_t cap) {
    if (env_str("SLUICE_MQTT_URL", c->mqtt_url, sizeof c->mqtt_url, err, cap) ||
        env_str("SLUICE_HTTP_ADDR", c->http_addr, sizeof c->http_addr, err, cap) ||
        env_str("SLUICE_DATA_DIR", c->data_dir, sizeof c->data_dir, err, cap) ||
        env_str("SLUICE_MQTT_USERNAME", c->mqtt_username, sizeof c->mqtt_username, err, cap) ||
        env_str("SLUICE_MQTT_PASSWORD", c->mqtt_password, sizeof c->mqtt_password, err, cap) ||
        env_str("SLUICE_MQTT_CLIENT_ID", c->mqtt_client_id, sizeof c->mqtt_client_id, err, cap) ||
        env_str("SLUICE_MQTT_SHARED_GROUP", c->mqtt_shared_group, sizeof c->mqtt_shared_group,
                err, cap) ||
        env_str("SLUICE_MQTT_CA_FILE", c->mqtt_ca_file, sizeof c->mqtt_ca_file, err, cap) ||
        env_str("SLUICE_MQTT_CERT_FILE", c->mqtt_cert_file, sizeof c->mqtt_cert_file, err, cap) ||
        env_str("SLUICE_MQTT_KEY_FILE", c->mqtt_key_file, sizeof c->mqtt_key_file, err, cap) ||
        env_str("SLUICE_HTTP_ALLOWED_HOSTS", c->http_allowed_hosts,
                sizeof c->http_allowed_hosts, err, cap) ||
        env_str("SLUICE_KAFKA_BOOTSTRAP_SERVERS", c->kafka_bootstrap, sizeof c->kafka_bootstrap,
                err, cap) ||
        env_str("SLUICE_KAFKA_GROUP_ID", c->kafka_group_id, sizeof c->kafka_group_id, err, cap))
        return -1;
    const char *kt = getenv("SLUICE_KAFKA_TOPICS");
    if (kt && !*kt)
        c->kafka_topics[0] = '\0'; /* set but empty: no Kafka source */
    else if (kt && kafka_topics_csv(c, kt, "SLUICE_KAFKA_TOPICS", err, cap))
        return -1;
    const char *su = getenv("SLUICE_STORE_URL");
    if (su && store_url(c, su, "SLUICE_STORE_URL", err, cap))
        return -1;
    const char *w = getenv("SLUICE_WORKERS");
    if (w) {
        char *end;
        long n = strtol(w, &end, 10);
        if (*end || n < 1 || n > 256) {
            snprintf(err, cap, "SLUICE_WORKERS must be an integer from 1 to 256");
            return -1;
        }
        c->workers = (int)n;
    }
    const char *l = getenv("SLUICE_LOG_LEVEL");
    if (l) {
        int lv = eng_log_level_parse(l);
        if (lv < 0) {
            snprintf(err, cap, "SLUICE_LOG_LEVEL must be debug, info, warn or error");
            return -1;
        }
        c->log_level = lv;
    }
    const char *sh = getenv("SLUICE_SHADOWS");
    if (sh) {
        if (!strcmp(sh, "off") || !strcmp(sh, "0") || !strcmp(sh, "false"))
            c->shadows_enabled = 0;
        else if (!strcmp(sh, "on") || !strcmp(sh, "1") || !strcmp(sh, "true"))
            c->shadows_enabled = 1;
        else {
            snprintf(err, cap, "SLUICE_SHADOWS must be on or off");
            return -1;
        }
    }
    const char *jm = getenv("SLUICE_JOURNAL");
    if (jm) {
        int mode = journal_mode(jm);
        if (mode < 0) {
            snprintf(err, cap, "SLUICE_JOURNAL must be batch, interval or off");
            return -1;
        }
        c->journal_mode = mode;
    }
    if (auth_env(c, err, cap))
        return -1;
    const char *v = getenv("SLUICE_MQTT_VERSION");
    if (v) {
        if (!strcmp(v, "5"))
            c->mqtt_version = 5;
        else if (!strcmp(v, "3.1.1") || !strcmp(v, "311") || !strcmp(v, "4"))
            c->mqtt_version = 311;
        else {
            snprintf(err, cap, "SLUICE_MQTT_VERSION must be 5 or 3.1.1");
            return -1;
        }
    }
    return 0;
}

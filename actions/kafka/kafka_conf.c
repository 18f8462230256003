/*
 * kafka_conf.c -- clientProperties validation and the registry of shared Kafka producers.
 *
 * A librdkafka producer is heavy (a thread per broker, its own buffers and connections) and
 * thread-safe, so every Kafka action with the same clientProperties shares one: the registry
 * below maps the canonical form of the properties (the user's name/value pairs sorted by name,
 * before sluice's defaults) to a reference-counted producer, under one mutex. Ten rules
 * writing to one cluster hold ten references to one producer; replacing a rule opens the new
 * instance before the old one closes, so the producer (and its connections) survive the
 * replacement.
 *
 * A rule author is a REST caller and must get nothing from the properties but a producer: only
 * the properties on the allow-list below pass (what each refused one would do is written
 * there), file names only beneath the certificate directory (paths.c), and only SASL
 * mechanisms that need no command or URL. Each one then goes through rd_kafka_conf_set();
 * whatever librdkafka refuses is an InvalidRequestException naming the property and quoting
 * librdkafka. Defaults sluice adds when the user did not set them:
 * enable.idempotence=true (unless acks asks for less than all, which idempotence cannot honour),
 * message.timeout.ms=30000 (bounds a delivery round), client.id=sluice, linger.ms=1 (the
 * pipeline batches already).
 *
 * The producer is created in open() -- rd_kafka_new() does not block (it connects in its own
 * threads; with an offline host, as under the fuzzer, it is not created at all) -- so
 * configuration errors that librdkafka only finds at creation (acks vs
 * idempotence, unreadable certificates) reach the rule's author instead of failing every
 * message. One poll thread per producer serves delivery reports (act_kafka__on_delivery) and
 * error events (logged). Rejected alternative: polling from the delivery lanes; a lane that is
 * idle would then leave another lane's reports unserved.
 */
#include "kafka_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PROPS ACT_KAFKA_MAX_PROPS

struct act_kafka_producer {
    char *key;                  /* canonical properties; registry lookup key */
    int refs;                   /* guarded by reg_mu */
    act_kafka_producer *next;   /* guarded by reg_mu */
    pthread_rwlock_t lock;      /* read: a produce round; write: replacing rk */
    rd_kafka_t *rk;             /* guarded by lock */
    rd_kafka_conf_t *conf;      /* pristine copy, for a replacement after a fatal error */
    const eng_host *host;       /* logs (also the librdkafka opaque) */
    int offline;                /* the host is offline: never started, not in the registry */
    pthread_t poller;
    atomic_int stop;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static act_kafka_producer *reg_head; /* guarded by reg_mu */

typedef struct prop {
    const char *name;
    char *value;                /* owned */
} prop;

/* {====== what a rule may set
 *
 * An allow-list, not a deny-list: librdkafka 2.0.2 has properties that load code
 * (ssl.providers and ssl.engine.location through OpenSSL, plugin.library.paths), run a shell
 * command (sasl.kerberos.kinit.cmd, and with it every sasl.kerberos.* that is pasted into the
 * command; GSSAPI is even the default sasl.mechanism, so sasl_* without a mechanism would run
 * kinit), fetch URLs (sasl.oauthbearer.token.endpoint.url), open listening sockets
 * (test.mock.num.brokers), write secrets to the log (debug), or break the delivery contract
 * (delivery.report.only.error leaves deliver() waiting for reports that never come). A new
 * librdkafka can add more; only what is listed here, all of it data, is passed on. */

/* P_CONSUMER: a consumer's setting, data too, allowed in the Kafka source's configuration
 * (sources.kafka.clientProperties, the operator's file) and refused in a rule. */
enum { P_DATA, P_FILE, P_MECHANISM, P_CONSUMER };

static const struct {
    const char *name;
    int kind;
} allowed[] = {
    /* brokers and connections */
    {"bootstrap.servers", P_DATA}, {"metadata.broker.list", P_DATA}, {"client.id", P_DATA},
    {"client.rack", P_DATA}, {"broker.address.family", P_DATA}, {"broker.address.ttl", P_DATA},
    {"socket.timeout.ms", P_DATA}, {"socket.keepalive.enable", P_DATA},
    {"socket.nagle.disable", P_DATA}, {"socket.send.buffer.bytes", P_DATA},
    {"socket.receive.buffer.bytes", P_DATA}, {"socket.connection.setup.timeout.ms", P_DATA},
    {"socket.max.fails", P_DATA}, {"connections.max.idle.ms", P_DATA},
    {"reconnect.backoff.ms", P_DATA}, {"reconnect.backoff.max.ms", P_DATA},
    {"max.in.flight.requests.per.connection", P_DATA}, {"max.in.flight", P_DATA},
    {"metadata.max.age.ms", P_DATA}, {"topic.metadata.refresh.interval.ms", P_DATA},
    {"topic.metadata.refresh.fast.interval.ms", P_DATA},
    {"topic.metadata.refresh.sparse", P_DATA}, {"topic.metadata.propagation.max.ms", P_DATA},
    {"api.version.request", P_DATA}, {"api.version.request.timeout.ms", P_DATA},
    {"api.version.fallback.ms", P_DATA}, {"broker.version.fallback", P_DATA},
    {"message.max.bytes", P_DATA}, {"message.copy.max.bytes", P_DATA},
    {"receive.message.max.bytes", P_DATA}, {"allow.auto.create.topics", P_DATA},
    /* producing */
    {"acks", P_DATA}, {"request.required.acks", P_DATA}, {"request.timeout.ms", P_DATA},
    {"message.timeout.ms", P_DATA}, {"delivery.timeout.ms", P_DATA},
    {"enable.idempotence", P_DATA}, {"enable.gapless.guarantee", P_DATA},
    {"queue.buffering.max.messages", P_DATA}, {"queue.buffering.max.kbytes", P_DATA},
    {"queue.buffering.max.ms", P_DATA}, {"linger.ms", P_DATA},
    {"message.send.max.retries", P_DATA}, {"retries", P_DATA}, {"retry.backoff.ms", P_DATA},
    {"retry.backoff.max.ms", P_DATA}, {"queue.buffering.backpressure.threshold", P_DATA},
    {"compression.codec", P_DATA}, {"compression.type", P_DATA},
    {"compression.level", P_DATA}, {"batch.num.messages", P_DATA}, {"batch.size", P_DATA},
    {"sticky.partitioning.linger.ms", P_DATA}, {"partitioner", P_DATA},
    /* security: values, inline PEM, and files beneath the certificate directory */
    {"security.protocol", P_DATA}, {"sasl.mechanism", P_MECHANISM},
    {"sasl.mechanisms", P_MECHANISM}, {"sasl.username", P_DATA}, {"sasl.password", P_DATA},
    {"ssl.cipher.suites", P_DATA}, {"ssl.curves.list", P_DATA}, {"ssl.sigalgs.list", P_DATA},
    {"ssl.key.password", P_DATA}, {"ssl.key.pem", P_DATA}, {"ssl.certificate.pem", P_DATA},
    {"ssl.ca.pem", P_DATA}, {"ssl.keystore.password", P_DATA},
    {"enable.ssl.certificate.verification", P_DATA},
    {"ssl.endpoint.identification.algorithm", P_DATA},
    {"ssl.key.location", P_FILE}, {"ssl.certificate.location", P_FILE},
    {"ssl.ca.location", P_FILE}, {"ssl.crl.location", P_FILE},
    {"ssl.keystore.location", P_FILE},
    /* consuming (the Kafka source only) */
    {"fetch.wait.max.ms", P_CONSUMER}, {"fetch.min.bytes", P_CONSUMER},
    {"fetch.max.bytes", P_CONSUMER}, {"max.partition.fetch.bytes", P_CONSUMER},
    {"fetch.message.max.bytes", P_CONSUMER}, {"fetch.error.backoff.ms", P_CONSUMER},
    {"queued.min.messages", P_CONSUMER}, {"queued.max.messages.kbytes", P_CONSUMER},
    {"max.poll.interval.ms", P_CONSUMER}, {"isolation.level", P_CONSUMER},
    {"check.crcs", P_CONSUMER}, {"coordinator.query.interval.ms", P_CONSUMER},
};

/* Why the best-known dangerous properties are refused (prefix match when it ends in '.'). */
static const struct {
    const char *name, *why;
} refused[] = {
    {"ssl.providers", "it makes OpenSSL load a shared library into the service"},
    {"ssl.engine.", "it makes OpenSSL load an engine (a shared library) into the service"},
    {"plugin.library.paths", "it loads shared libraries into the service"},
    {"interceptors", "it loads code into the service"},
    {"sasl.kerberos.", "librdkafka pastes it into a shell command (kinit) that it runs"},
    {"sasl.oauthbearer.", "the OAUTHBEARER token callbacks fetch URLs or run code"},
    {"enable.sasl.oauthbearer.unsecure.jwt", "OAUTHBEARER is not supported"},
    {"test.", "test settings (the mock cluster listens on network ports)"},
    {"debug", "debug logs carry credentials and message contents"},
    {"log", "the service's logging is not a rule's to change"},
    {"transactional.id", "the Kafka action does not produce in transactions"},
    {"delivery.report.only.error", "sluice waits for the delivery report of every message"},
};

/* The mechanisms that authenticate with a name and a password only (GSSAPI runs kinit,
 * OAUTHBEARER fetches tokens). */
static const char *const mechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};

#define KFAIL(e, ...)                                                                          \
    eng_error_set(e, 400, "InvalidRequestException", "kafka action: " __VA_ARGS__)

/* Checks one property (name, text value) against the lists; a file's value becomes its
 * resolved name. 0, or -1 with e set. */
static int check_prop(const eng_host *host, int consumer, const char *name, char **value,
                      eng_error *e) {
    size_t i = 0, n = sizeof allowed / sizeof allowed[0];
    while (i < n && strcmp(allowed[i].name, name))
        i++;
    if (i < n && allowed[i].kind == P_CONSUMER && !consumer)
        return KFAIL(e, "clientProperties \"%.100s\" is a consumer's setting: a rule's Kafka "
                        "action produces", name);
    if (i == n) {
        for (size_t r = 0; r < sizeof refused / sizeof refused[0]; r++) {
            size_t rl = strlen(refused[r].name);
            int prefix = refused[r].name[rl - 1] == '.';
            if (prefix ? !strncmp(name, refused[r].name, rl)
                       : !strcmp(name, refused[r].name) ||
                             (!strncmp(name, refused[r].name, rl) && name[rl] == '.') ||
                             (!strncmp(name, refused[r].name, rl) && name[rl] == '_'))
                return KFAIL(e, "clientProperties \"%.100s\" is not allowed: %s", name,
                             refused[r].why);
        }
        return KFAIL(e, "clientProperties \"%.100s\" is not one a rule may set (allowed: "
                        "connection, producer and TLS/SASL settings that are data; see the "
                        "README)", name);
    }
    if (allowed[i].kind == P_MECHANISM) {
        for (size_t m = 0; m < sizeof mechanisms / sizeof mechanisms[0]; m++)
            if (!strcmp(*value, mechanisms[m]))
                return 0;
        return KFAIL(e, "clientProperties \"%s\" must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 "
                        "(GSSAPI runs a kinit command, OAUTHBEARER fetches tokens)", name);
    }
    if (allowed[i].kind == P_FILE && strcmp(*value, "probe")) {
        char resolved[4096], why[600];
        if (act_path_beneath(host ? host->cert_dir : "", *value, resolved, sizeof resolved, why,
                             sizeof why))
            return KFAIL(e, "clientProperties \"%s\": %s", name, why);
        char *dup = strdup(resolved);
        if (!dup)
            return eng_error_set(e, 500, "InternalException", "out of memory");
        free(*value);
        *value = dup;
    }
    return 0;
}

/* }====== */

static int cmp_prop(const void *a, const void *b) {
    return strcmp(((const prop *)a)->name, ((const prop *)b)->name);
}

static const prop *find(const prop *v, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    return NULL;
}

/* The text librdkafka is given for one JSON value (malloc'd), or NULL with e set. */
static char *prop_text(const cJSON *it, eng_error *e) {
    char num[64];
    const char *s = num;
    /* INT64_MIN: not a whole number within +-2^53 */
    int64_t whole = cJSON_IsNumber(it) ? eng_json_i64(it->valuedouble, INT64_MIN) : INT64_MIN;
    if (cJSON_IsString(it))
        s = it->valuestring;
    else if (cJSON_IsBool(it))
        s = cJSON_IsTrue(it) ? "true" : "false";
    else if (whole != INT64_MIN)
        snprintf(num, sizeof num, "%lld", (long long)whole);
    else if (cJSON_IsNumber(it))
        snprintf(num, sizeof num, "%.17g", it->valuedouble);
    else {
        KFAIL(e, "clientProperties \"%.100s\" must be a string", it->string);
        return NULL;
    }
    char *d = strdup(s);
    if (!d)
        eng_error_set(e, 500, "InternalException", "out of memory");
    return d;
}

/* Reads the clientProperties object into v[0..*n) (values owned), sorted by name. On an error
 * *n still counts the values to free. */
static int collect(const cJSON *props, const eng_host *host, int consumer, prop *v, size_t *n,
                   eng_error *e) {
    *n = 0;
    if (!cJSON_IsObject(props))
        return KFAIL(e, "\"clientProperties\" must be an object");
    const cJSON *it;
    cJSON_ArrayForEach(it, props) {
        if (*n == MAX_PROPS)
            return KFAIL(e, "more than %d clientProperties", MAX_PROPS);
        if (find(v, *n, it->string))
            return KFAIL(e, "clientProperties \"%.100s\" is given twice", it->string);
        v[*n].name = it->string;
        if (!(v[*n].value = prop_text(it, e)))
            return -1;
        ++*n;
        if (check_prop(host, consumer, it->string, &v[*n - 1].value, e))
            return -1;
    }
    const prop *bs = find(v, *n, "bootstrap.servers");
    if (!bs || !bs->value[0])
        return KFAIL(e, "clientProperties \"bootstrap.servers\" is required");
    const prop *sp = find(v, *n, "security.protocol");
    if (sp && !strncasecmp(sp->value, "sasl_", 5) && !find(v, *n, "sasl.mechanism") &&
        !find(v, *n, "sasl.mechanisms"))
        return KFAIL(e, "clientProperties \"security.protocol\" %s needs \"sasl.mechanism\" "
                        "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512): librdkafka's default, GSSAPI, "
                        "runs a kinit command",
                     sp->value);
    qsort(v, *n, sizeof v[0], cmp_prop);
    return 0;
}

static void props_free(prop *v, size_t n) {
    for (size_t i = 0; v && i < n; i++)
        free(v[i].value);
    free(v);
}

/* The registry key: each pair as <len>:<name><len>:<value>, so that no two different sets
 * (whatever bytes their strings hold) share a key. */
static char *canonical(const prop *v, size_t n) {
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i].name) + strlen(v[i].value) + 2 * 22;
    char *s = malloc(len), *w = s;
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, "%zu:%s%zu:%s", strlen(v[i].name), v[i].name, strlen(v[i].value),
                     v[i].value);
    *w = '\0';
    return s;
}

/* {====== librdkafka callbacks */

/* The producer's opaque is the host its logs go to. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    const eng_host *host = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
        act_log(host, ENG_LOG_ERROR, "kafka_fatal", "%s: %s: %s", rd_kafka_name(rk),
                rd_kafka_err2name(orig), buf);
        return;
    }
    act_log(host, ENG_LOG_WARN, "kafka_error", "%s: %s: %s", rd_kafka_name(rk),
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* FAIL lines (a broker connection failed) reach on_error() too: log them once. */
    if (!strcmp(fac, "FAIL"))
        return;
    int l = level <= 3 ? ENG_LOG_ERROR : level == 4 ? ENG_LOG_WARN
          : level <= 6 ? ENG_LOG_INFO : ENG_LOG_DEBUG;
    act_log(rk ? rd_kafka_opaque(rk) : NULL, l, "kafka_log", "%s: %s: %s",
            rk ? rd_kafka_name(rk) : "rdkafka", fac, buf);
}

/* }====== */

/* Sets v[0..n) on conf. 0, or -1 with e set naming the property librdkafka refused. */
static int set_props(rd_kafka_conf_t *conf, const prop *v, size_t n, eng_error *e) {
    char errstr[512];
    for (size_t i = 0; i < n; i++)
        if (rd_kafka_conf_set(conf, v[i].name, v[i].value, errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "kafka action: clientProperties \"%s\" refused by librdkafka: "
                                 "%s", v[i].name, errstr);
    return 0;
}

int act_kafka_props_check(const cJSON *props, const eng_host *host, rd_kafka_conf_t *conf,
                          eng_error *e) {
    size_t n = 0;
    prop *v = calloc(MAX_PROPS, sizeof *v);
    int rc = v ? collect(props, host, 1, v, &n, e)
               : eng_error_set(e, 500, "InternalException", "out of memory");
    if (rc == 0 && conf)
        rc = set_props(conf, v, n, e);
    props_free(v, n);
    return rc;
}

/* Builds the librdkafka configuration: the user's properties, then sluice's defaults and
 * callbacks. NULL with e set. */
static rd_kafka_conf_t *build_conf(const prop *v, size_t n, const eng_host *host,
                                   int *msg_timeout_ms, eng_error *e) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    if (set_props(conf, v, n, e) != 0)
        goto fail;
    /* acks and message.timeout.ms have aliases; either spelling counts as "set by the user". */
    const prop *acks = find(v, n, "acks");
    if (!acks)
        acks = find(v, n, "request.required.acks");
    int strong_acks = !acks || !strcmp(acks->value, "all") || !strcmp(acks->value, "-1");
    const prop *tmo = find(v, n, "message.timeout.ms");
    if (!tmo)
        tmo = find(v, n, "delivery.timeout.ms");
    struct {
        const char *name, *value;
        int apply;
    } defaults[] = {
        {"enable.idempotence", "true", !find(v, n, "enable.idempotence") && strong_acks},
        {"message.timeout.ms", "30000", !tmo},
        {"client.id", "sluice", !find(v, n, "client.id")},
        /* the pipeline already hands over whole batches and waits for their reports, so
         * librdkafka's own 5 ms linger would only add idle time to every round */
        {"linger.ms", "1", !find(v, n, "linger.ms") && !find(v, n, "queue.buffering.max.ms")},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (defaults[i].apply && rd_kafka_conf_set(conf, defaults[i].name, defaults[i].value,
                                                   errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            eng_error_set(e, 500, "InternalException", "kafka action: default %s: %s",
                          defaults[i].name, errstr);
            goto fail;
        }
    }
    *msg_timeout_ms = tmo ? atoi(tmo->value) : ACT_KAFKA_DEFAULT_MSG_TIMEOUT_MS;
    rd_kafka_conf_set_dr_msg_cb(conf, act_kafka__on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, (void *)host);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void *poll_main(void *arg) {
    act_kafka_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

/* Creates p->rk from a copy of p->conf and starts its poll thread. 0, or -1 with e set. */
static int start(act_kafka_producer *p, eng_error *e) {
    char errstr[512];
    rd_kafka_conf_t *c = rd_kafka_conf_dup(p->conf);
    if (!c)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
    if (!p->rk) {
        rd_kafka_conf_destroy(c); /* rd_kafka_new() takes the conf only when it succeeds */
        return eng_error_set(e, 400, "InvalidRequestException",
                             "kafka action: librdkafka refused clientProperties: %s", errstr);
    }
    atomic_store(&p->stop, 0);
    if (pthread_create(&p->poller, NULL, poll_main, p) != 0) {
        rd_kafka_destroy(p->rk);
        p->rk = NULL;
        return eng_error_set(e, 500, "InternalException", "kafka action: no poll thread");
    }
    return 0;
}

/* Stops the poll thread, flushes for at most 5 s and destroys p->rk. Every deliver() waits for
 * all of its reports, so nothing of an instance's is outstanding here; the flush only covers
 * reports queued but not yet served. */
static void stop(act_kafka_producer *p) {
    if (!p->rk)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->poller, NULL);
    rd_kafka_flush(p->rk, 5000);
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
}

static void producer_free(act_kafka_producer *p) {
    stop(p);
    if (p->conf)
        rd_kafka_conf_destroy(p->conf);
    pthread_rwlock_destroy(&p->lock);
    free(p->key);
    free(p);
}

act_kafka_producer *act_kafka__producer_acquire(const cJSON *props, const eng_host *host,
                                                int *msg_timeout_ms, eng_error *e) {
    prop *v = calloc(MAX_PROPS, sizeof *v);
    act_kafka_producer *p = NULL;
    char *key = NULL;
    size_t n = 0;
    int locked = 0;
    if (!v) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    if (collect(props, host, 0, v, &n, e) != 0)
        goto out;
    if (!(key = canonical(v, n))) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    /* The conf is built (and validated) before the lookup so that *msg_timeout_ms is set for a
     * shared producer too; it is cheap next to creating a producer. */
    rd_kafka_conf_t *conf = build_conf(v, n, host, msg_timeout_ms, e);
    if (!conf)
        goto out;
    /* offline: validated, and nothing may connect anywhere: no producer is started or shared */
    int offline = host && host->offline;
    if (!offline) {
        pthread_mutex_lock(&reg_mu);
        locked = 1;
        for (p = reg_head; p; p = p->next)
            if (!strcmp(p->key, key))
                break;
        if (p) {
            p->refs++;
            rd_kafka_conf_destroy(conf);
            goto out;
        }
    }
    if (!(p = calloc(1, sizeof *p))) {
        rd_kafka_conf_destroy(conf);
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    pthread_rwlock_init(&p->lock, NULL);
    p->conf = conf;
    p->host = host;
    p->key = key;
    p->offline = offline;
    key = NULL;
    if (offline) {
        p->refs = 1;
        goto out;
    }
    if (start(p, e) != 0) {
        producer_free(p);
        p = NULL;
        goto out;
    }
    p->refs = 1;
    p->next = reg_head;
    reg_head = p;
out:
    if (locked)
        pthread_mutex_unlock(&reg_mu);
    free(key);
    props_free(v, n);
    return p;
}

void act_kafka__producer_release(act_kafka_producer *p) {
    if (!p)
        return;
    if (p->offline) {
        producer_free(p);
        return;
    }
    pthread_mutex_lock(&reg_mu);
    int last = --p->refs == 0;
    if (last) {
        act_kafka_producer **pp = &reg_head;
        while (*pp != p)
            pp = &(*pp)->next;
        *pp = p->next;
    }
    pthread_mutex_unlock(&reg_mu);
    /* Outside the registry lock: the bounded flush must not hold up other rules' opens. */
    if (last)
        producer_free(p);
}

rd_kafka_t *act_kafka__producer_begin(act_kafka_producer *p) {
    pthread_rwlock_rdlock(&p->lock);
    return p->rk;
}

void act_kafka__producer_end(act_kafka_producer *p) { pthread_rwlock_unlock(&p->lock); }

void act_kafka__producer_recover(act_kafka_producer *p, rd_kafka_t *rk) {
    eng_error e;
    pthread_rwlock_wrlock(&p->lock);
    if (p->rk == rk && !p->offline) {
        act_log(p->host, ENG_LOG_WARN, "kafka_recover",
                "%s: replacing the producer after a fatal error", rk ? rd_kafka_name(rk) : "");
        stop(p);
        if (start(p, &e) != 0)
            act_log(p->host, ENG_LOG_ERROR, "kafka_recover", "%s", e.message);
    }
    pthread_rwlock_unlock(&p->lock);
}

size_t act_kafka__producer_count(void) {
    size_t n = 0;
    pthread_mutex_lock(&reg_mu);
    for (act_kafka_producer *p = reg_head; p; p = p->next)
        n++;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

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
 * Each property goes through rd_kafka_conf_set(); whatever librdkafka refuses is an
 * InvalidRequestException naming the property and quoting librdkafka. Three properties are
 * refused by sluice because a rule author (a REST caller) must not get code execution through
 * them: plugin.library.paths and ssl.engine.location load shared libraries,
 * sasl.kerberos.kinit.cmd runs a shell command. transactional.id is refused because the action
 * produces outside transactions. Defaults sluice adds when the user did not set them:
 * enable.idempotence=true (unless acks asks for less than all, which idempotence cannot honour),
 * message.timeout.ms=30000 (bounds a delivery round), client.id=sluice, linger.ms=1 (the
 * pipeline batches already).
 *
 * The producer is created in open() -- rd_kafka_new() does not block (it connects in its own
 * threads) -- so configuration errors that librdkafka only finds at creation (acks vs
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

#define MAX_PROPS 128

struct act_kafka_producer {
    char *key;                  /* canonical properties; registry lookup key */
    int refs;                   /* guarded by reg_mu */
    act_kafka_producer *next;   /* guarded by reg_mu */
    pthread_rwlock_t lock;      /* read: a produce round; write: replacing rk */
    rd_kafka_t *rk;             /* guarded by lock */
    rd_kafka_conf_t *conf;      /* pristine copy, for a replacement after a fatal error */
    pthread_t poller;
    atomic_int stop;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static act_kafka_producer *reg_head; /* guarded by reg_mu */

typedef struct prop {
    const char *name;
    char value[512];
} prop;

static const struct {
    const char *name, *why;
} refused[] = {
    {"plugin.library.paths", "it loads shared libraries into the service"},
    {"ssl.engine.location", "it loads a shared library into the service"},
    {"sasl.kerberos.kinit.cmd", "it runs a shell command"},
    {"transactional.id", "the Kafka action does not produce in transactions"},
};

static int cmp_prop(const void *a, const void *b) {
    return strcmp(((const prop *)a)->name, ((const prop *)b)->name);
}

static const prop *find(const prop *v, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    return NULL;
}

/* Reads the clientProperties object into v[0..*n), sorted by name. */
static int collect(const cJSON *props, prop *v, size_t *n, eng_error *e) {
    if (!cJSON_IsObject(props))
        return eng_error_set(e, 400, "InvalidRequestException",
                             "kafka action: \"clientProperties\" must be an object");
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, props) {
        if (k == MAX_PROPS)
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "kafka action: more than %d clientProperties", MAX_PROPS);
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
            if (!strcmp(it->string, refused[i].name))
                return eng_error_set(e, 400, "InvalidRequestException",
                                     "kafka action: clientProperties \"%s\" is not allowed: %s",
                                     it->string, refused[i].why);
        if (find(v, k, it->string))
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "kafka action: clientProperties \"%s\" is given twice",
                                 it->string);
        v[k].name = it->string;
        int len;
        if (cJSON_IsString(it))
            len = snprintf(v[k].value, sizeof v[k].value, "%s", it->valuestring);
        else if (cJSON_IsBool(it))
            len = snprintf(v[k].value, sizeof v[k].value, "%s",
                           cJSON_IsTrue(it) ? "true" : "false");
        else if (cJSON_IsNumber(it) && it->valuedouble == (double)(long long)it->valuedouble)
            len = snprintf(v[k].value, sizeof v[k].value, "%lld", (long long)it->valuedouble);
        else if (cJSON_IsNumber(it))
            len = snprintf(v[k].value, sizeof v[k].value, "%.17g", it->valuedouble);
        else
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "kafka action: clientProperties \"%s\" must be a string",
                                 it->string);
        if (len < 0 || (size_t)len >= sizeof v[k].value)
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "kafka action: clientProperties \"%s\" is longer than %zu bytes",
                                 it->string, sizeof v[k].value - 1);
        k++;
    }
    const prop *bs = find(v, k, "bootstrap.servers");
    if (!bs || !bs->value[0])
        return eng_error_set(e, 400, "InvalidRequestException",
                             "kafka action: clientProperties \"bootstrap.servers\" is required");
    qsort(v, k, sizeof v[0], cmp_prop);
    *n = k;
    return 0;
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

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
        eng_log(ENG_LOG_ERROR, "kafka_fatal", "%s: %s: %s", rd_kafka_name(rk),
                rd_kafka_err2name(orig), buf);
        return;
    }
    eng_log(ENG_LOG_WARN, "kafka_error", "%s: %s: %s", rd_kafka_name(rk),
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* FAIL lines (a broker connection failed) reach on_error() too: log them once. */
    if (!strcmp(fac, "FAIL"))
        return;
    int l = level <= 3 ? ENG_LOG_ERROR : level == 4 ? ENG_LOG_WARN
          : level <= 6 ? ENG_LOG_INFO : ENG_LOG_DEBUG;
    eng_log(l, "kafka_log", "%s: %s: %s", rk ? rd_kafka_name(rk) : "rdkafka", fac, buf);
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

int act_kafka_props_check(const cJSON *props, rd_kafka_conf_t *conf, eng_error *e) {
    size_t n = 0;
    prop *v = calloc(MAX_PROPS, sizeof *v);
    int rc = v ? collect(props, v, &n, e) : eng_error_set(e, 500, "InternalException", "oom");
    if (rc == 0 && conf)
        rc = set_props(conf, v, n, e);
    free(v);
    return rc;
}

/* Builds the librdkafka configuration: the user's properties, then sluice's defaults and
 * callbacks. NULL with e set. */
static rd_kafka_conf_t *build_conf(const prop *v, size_t n, int *msg_timeout_ms, eng_error *e) {
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

act_kafka_producer *act_kafka__producer_acquire(const cJSON *props, int *msg_timeout_ms,
                                                eng_error *e) {
    prop *v = calloc(MAX_PROPS, sizeof *v);
    act_kafka_producer *p = NULL;
    char *key = NULL;
    size_t n = 0;
    int locked = 0;
    if (!v) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    if (collect(props, v, &n, e) != 0)
        goto out;
    if (!(key = canonical(v, n))) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    /* The conf is built (and validated) before the lookup so that *msg_timeout_ms is set for a
     * shared producer too; it is cheap next to creating a producer. */
    rd_kafka_conf_t *conf = build_conf(v, n, msg_timeout_ms, e);
    if (!conf)
        goto out;
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
    if (!(p = calloc(1, sizeof *p))) {
        rd_kafka_conf_destroy(conf);
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    pthread_rwlock_init(&p->lock, NULL);
    p->conf = conf;
    p->key = key;
    key = NULL;
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
    free(v);
    return p;
}

void act_kafka__producer_release(act_kafka_producer *p) {
    if (!p)
        return;
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
    if (p->rk == rk) {
        eng_log(ENG_LOG_WARN, "kafka_recover", "%s: replacing the producer after a fatal error",
                rd_kafka_name(rk));
        stop(p);
        if (start(p, &e) != 0)
            eng_log(ENG_LOG_ERROR, "kafka_recover", "%s", e.message);
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

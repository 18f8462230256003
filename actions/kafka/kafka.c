/*
 * kafka.c -- AWS's Kafka action: produce the rule's output as one Kafka record per message.
 *
 *   {"kafka": {"destinationArn": "...", "topic": "telemetry-${topic(2)}", "key": "${deviceId}",
 *              "partition": "${part}", "clientProperties": {"bootstrap.servers": "h:9092",
 *              "acks": "all", ...}, "headers": [{"key": "src", "value": "${topic()}"}]}}
 *
 * topic, key, partition and every header key and value are substitution templates. The
 * record's value is the rule's output. destinationArn (AWS's VPC destination) is accepted and
 * ignored. clientProperties pass sluice's allow-list (kafka_conf.c: nothing that loads code,
 * runs a command or names a file outside actions.kafka.certDir) on their way to librdkafka;
 * the producer they describe is shared with every other Kafka action that names the same set.
 *
 * Delivery is one round per batch: every message of the batch is handed to rd_kafka_producev()
 * with a per-message slot as its opaque, then the lane waits on a condition variable until the
 * poll thread has served the delivery report of each one. The batch's outcome is read off the
 * slots in batch order, so the first failed message gives *ndone and the result: transport,
 * timeout and leadership errors retry, while a record the cluster will never accept (too large,
 * invalid, not authorized, topic that does not exist) fails. A full librdkafka queue is waited
 * out, not reported. With one lane and batches of up to 10000 messages, one round trip covers a
 * whole backlog, and the idempotent producer (sluice's default) keeps each partition in order
 * and free of duplicates from librdkafka's own retries.
 * One limit of batching over partitions: when message i fails, messages after it that went to
 * other partitions may already be written, and the pipeline's retry from i writes them again
 * (at-least-once). Rejected alternative: one message per round trip, exact but ~1000x slower.
 */
#include "kafka_int.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEADERS 16
#define MAX_BATCH 10000
#define MAX_BATCH_BYTES (16u << 20) /* bounds the copy librdkafka holds per round */

typedef struct round round;

/* One message of a round: the message's opaque in librdkafka. */
typedef struct kslot {
    round *r;
    rd_kafka_resp_err_t err;   /* written by the poll thread before r->pending drops */
} kslot;

/* One deliver() call's wait for its delivery reports. */
struct round {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;            /* guarded by mu */
};

typedef struct kafka {
    act_instance base;
    act_kafka_producer *prod;
    int msg_timeout_ms;
    /* templates, in this order: topic, key (when given), partition (when given), then each
     * header's key and value */
    char *tpl[3 + 2 * MAX_HEADERS];
    size_t ntpl;
    int slot_key, slot_part;   /* index into tpl, or -1 */
    int hdr0, nhdr;
    kslot *slots;              /* lane 0's slots (there is one lane) */
    size_t nslots;
} kafka;

/* A message resolved to what librdkafka is given. */
typedef struct record {
    const char *topic;
    int32_t partition;         /* RD_KAFKA_PARTITION_UA: the partitioner picks from the key */
    const char *key;           /* NULL: no key */
    size_t klen;
} record;

/* {====== resolving a message */

/* Kafka's topic names: 1-249 of [a-zA-Z0-9._-], not "." or "..". The broker would refuse the
 * others only after a metadata round trip; refusing them here gives the error at once. */
static int topic_ok(const char *t, size_t n) {
    if (n == 0 || n > 249 || !strcmp(t, ".") || !strcmp(t, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int is_null(const act_msg *m, int slot) { return m->field_null && m->field_null[slot]; }

static int resolve(const kafka *k, const act_msg *m, record *r, char *err, size_t cap) {
    r->topic = m->fields[0];
    if (!topic_ok(m->fields[0], m->field_lens[0])) {
        snprintf(err, cap, "kafka topic '%.*s' is not a valid topic name (1-249 of "
                 "[a-zA-Z0-9._-])", (int)(m->field_lens[0] > 300 ? 300 : m->field_lens[0]),
                 m->fields[0]);
        return -1;
    }
    r->partition = RD_KAFKA_PARTITION_UA;
    if (k->slot_part >= 0 && !is_null(m, k->slot_part) && m->field_lens[k->slot_part] > 0) {
        const char *s = m->fields[k->slot_part];
        long long v = 0;
        size_t i = 0, n = m->field_lens[k->slot_part];
        while (i < n && s[i] >= '0' && s[i] <= '9' && v <= INT32_MAX)
            v = v * 10 + (s[i++] - '0');
        if (i < n || v > INT32_MAX) {
            snprintf(err, cap, "kafka partition '%.*s' is not a non-negative integer",
                     (int)(n > 64 ? 64 : n), s);
            return -1;
        }
        r->partition = (int32_t)v;
    }
    r->key = NULL;
    r->klen = 0;
    if (k->slot_key >= 0 && !is_null(m, k->slot_key)) {
        r->key = m->fields[k->slot_key];
        r->klen = m->field_lens[k->slot_key];
    }
    return 0;
}

/* }====== */

/* {====== delivery */

/* The cluster will never take this record as it is: retrying cannot help. Everything else
 * (transport, timeouts, leader changes, missing replicas, throttling, a fatal idempotence
 * error that recover() cures by replacing the producer) is worth a retry. */
static act_result classify(rd_kafka_resp_err_t err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:          /* after topic.metadata.propagation.max.ms */
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:   /* reported once librdkafka gave up */
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__KEY_SERIALIZATION:
    case RD_KAFKA_RESP_ERR__VALUE_SERIALIZATION:
        return ACT_FAIL;
    default:
        return ACT_RETRY;
    }
}

static void describe(char *err, size_t cap, const char *topic, rd_kafka_resp_err_t e) {
    snprintf(err, cap, "kafka topic '%s': %s (%s)", topic, rd_kafka_err2str(e),
             rd_kafka_err2name(e));
}

void act_kafka__on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    kslot *s = m->_private;
    if (!s)
        return;
    round *r = s->r;
    s->err = m->err;
    pthread_mutex_lock(&r->mu);
    /* Signal before unlocking: once pending reaches 0 and mu is free, deliver() may return
     * and r (on its stack) is gone. */
    if (--r->pending == 0)
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Hands one message to librdkafka; a full queue is waited out for up to the message timeout
 * (by then librdkafka has expired queued messages, making room, or the cluster is gone). */
static rd_kafka_resp_err_t produce(kafka *k, rd_kafka_t *rk, const act_msg *m, const record *rec,
                                   kslot *slot) {
    rd_kafka_headers_t *h = NULL;
    if (k->nhdr > 0) {
        h = rd_kafka_headers_new((size_t)k->nhdr);
        for (int i = 0; i < k->nhdr; i++) {
            int ks = k->hdr0 + 2 * i, vs = ks + 1;
            const char *v = is_null(m, vs) ? NULL : m->fields[vs];
            rd_kafka_header_add(h, m->fields[ks], (ssize_t)m->field_lens[ks], v,
                                v ? (ssize_t)m->field_lens[vs] : 0);
        }
    }
    pthread_mutex_lock(&slot->r->mu);
    slot->r->pending++;
    pthread_mutex_unlock(&slot->r->mu);
    int limit = (k->msg_timeout_ms > 0 ? k->msg_timeout_ms : 60000) + 1000, waited = 0;
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(rec->topic),
                                RD_KAFKA_V_PARTITION(rec->partition),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE((void *)m->payload, m->payload_len),
                                RD_KAFKA_V_KEY(rec->key, rec->klen), RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || waited >= limit)
            break;
        sleep_ms(5);
        waited += 5;
    }
    if (err) {
        /* Not queued: no report will come, and the headers are still ours. */
        pthread_mutex_lock(&slot->r->mu);
        slot->r->pending--;
        pthread_mutex_unlock(&slot->r->mu);
        if (h)
            rd_kafka_headers_destroy(h);
    }
    return err;
}

static act_result kf_deliver(act_instance *self, int lane, const act_msg *const *batch, size_t n,
                             size_t *ndone, char *err, size_t cap) {
    kafka *k = (kafka *)self;
    act_result res = ACT_OK;
    char stop_err[512] = "";
    size_t stop = n;
    act_result stop_res = ACT_OK;
    *ndone = 0;
    if (n > k->nslots) {
        kslot *s = realloc(k->slots, n * sizeof *s);
        if (!s) {
            snprintf(err, cap, "kafka: out of memory");
            return ACT_RETRY;
        }
        k->slots = s;
        k->nslots = n;
    }
    round r = {.pending = 0};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    rd_kafka_t *rk = act_kafka__producer_begin(k->prod);
    if (!rk) { /* an earlier recovery failed to build a new producer: try again */
        act_kafka__producer_end(k->prod);
        act_kafka__producer_recover(k->prod, NULL);
        snprintf(err, cap, "kafka: no producer (see the kafka_recover log)");
        res = ACT_RETRY;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        record rec;
        if (resolve(k, batch[i], &rec, stop_err, sizeof stop_err) != 0) {
            stop = i;
            stop_res = ACT_FAIL;
            break;
        }
        k->slots[i] = (kslot){.r = &r, .err = RD_KAFKA_RESP_ERR_NO_ERROR};
        rd_kafka_resp_err_t e = produce(k, rk, batch[i], &rec, &k->slots[i]);
        if (e) {
            stop = i;
            stop_res = classify(e);
            describe(stop_err, sizeof stop_err, rec.topic, e);
            break;
        }
    }
    /* Unbounded on purpose: librdkafka reports every queued message within message.timeout.ms
     * (as an error when it expires), and the slots must outlive the last report. */
    pthread_mutex_lock(&r.mu);
    while (r.pending > 0)
        pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    char why[256];
    int fatal = rd_kafka_fatal_error(rk, why, sizeof why) != RD_KAFKA_RESP_ERR_NO_ERROR;
    act_kafka__producer_end(k->prod);
    if (fatal)
        act_kafka__producer_recover(k->prod, rk);
    for (size_t i = 0; i < stop; i++) {
        if (k->slots[i].err) {
            *ndone = i;
            if (fatal) /* the producer was replaced: the next attempt has a fresh one */
                snprintf(err, cap, "kafka: fatal producer error (the producer was replaced): %s",
                         why);
            else
                describe(err, cap, batch[i]->fields[0], k->slots[i].err);
            res = fatal ? ACT_RETRY : classify(k->slots[i].err);
            goto out;
        }
    }
    *ndone = stop;
    if (stop < n) {
        snprintf(err, cap, "%s", stop_err);
        res = stop_res;
    }
out:
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return res;
}

/* }====== */

/* {====== format */

/* s[0..n) as a JSON string, or null for NULL. */
static int put_json(act_buf *b, const char *s, size_t n) {
    return s ? act_buf_put_json_string(b, s, n, NULL) : act_buf_puts(b, "null");
}

/* One JSON line per record: {"topic","partition" (null: the partitioner's choice),"key"
 * (null: none),"headers":[{"key","value"}],"value"}; the value is the payload as a string. */
static int format_one(const kafka *k, const act_msg *m, act_buf *out) {
    record rec;
    char err[512];
    if (resolve(k, m, &rec, err, sizeof err) != 0) {
        out->len = 0;
        act_buf_puts(out, err);
        return -1;
    }
    int rc = act_buf_puts(out, "{\"topic\":") | put_json(out, rec.topic, m->field_lens[0]);
    rc |= rec.partition == RD_KAFKA_PARTITION_UA ? act_buf_puts(out, ",\"partition\":null")
                                                 : act_buf_printf(out, ",\"partition\":%d",
                                                                  (int)rec.partition);
    rc |= act_buf_puts(out, ",\"key\":") | put_json(out, rec.key, rec.klen);
    rc |= act_buf_puts(out, ",\"headers\":[");
    for (int i = 0; i < k->nhdr; i++) {
        int ks = k->hdr0 + 2 * i, vs = ks + 1;
        rc |= act_buf_puts(out, i ? ",{\"key\":" : "{\"key\":");
        rc |= put_json(out, m->fields[ks], m->field_lens[ks]);
        rc |= act_buf_puts(out, ",\"value\":");
        rc |= put_json(out, is_null(m, vs) ? NULL : m->fields[vs], m->field_lens[vs]);
        rc |= act_buf_puts(out, "}");
    }
    rc |= act_buf_puts(out, "],\"value\":") | put_json(out, m->payload, m->payload_len);
    rc |= act_buf_puts(out, "}\n");
    return rc ? -1 : 0;
}

static int kf_format(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out) {
    for (size_t i = 0; i < n; i++)
        if (format_one((kafka *)self, batch[i], out) != 0)
            return -1;
    return 0;
}

/* }====== */

/* {====== configuration */

typedef struct kf_opts {
    const char *topic, *key, *partition;
    act_kv headers[MAX_HEADERS];
    size_t nheaders;
    const cJSON *props;
} kf_opts;

static const act_option kf_options[] = {
    {.key = "destinationArn", .type = ACT_OPT_IGNORED, .max = 2048,
     .help = "AWS's VPC destination; accepted and not used"},
    {.key = "topic", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(kf_opts, topic),
     .min = 1, .max = 1024, .help = "the Kafka topic"},
    {.key = "key", .type = ACT_OPT_TEMPLATE, .offset = offsetof(kf_opts, key), .max = 8192,
     .help = "the record key (a Null result sends no key)"},
    {.key = "partition", .type = ACT_OPT_TEMPLATE, .offset = offsetof(kf_opts, partition),
     .max = 1024, .help = "the partition, a non-negative integer (absent: from the key)"},
    {.key = "headers", .type = ACT_OPT_LIST, .offset = offsetof(kf_opts, headers),
     .max = MAX_HEADERS, .sub = act_kv_options, .elem_size = sizeof(act_kv),
     .count_offset = offsetof(kf_opts, nheaders), .help = "record headers, {key, value} pairs (a Null value is sent as null)"},
    {.key = "clientProperties", .type = ACT_OPT_MAP, .required = 1,
     .offset = offsetof(kf_opts, props), .max = ACT_KAFKA_MAX_PROPS,
     .help = "librdkafka producer properties; bootstrap.servers is required, and only the "
             "properties sluice allows (see the README) may be set"},
    {0},
};

/* Copies template text into the next slot; its index, or -1 on OOM. */
static int add_tpl(kafka *k, const char *t, eng_error *e) {
    if (!(k->tpl[k->ntpl] = strdup(t)))
        return eng_error_set(e, 500, "InternalException", "out of memory");
    return (int)k->ntpl++;
}

static void kf_close(act_instance *self);

static int kf_open(const act_config *cfg, act_instance **out, eng_error *e) {
    kf_opts o = {0};
    if (act_options_parse("kafka", kf_options, cfg->params, &o, e))
        return -1;
    kafka *k = calloc(1, sizeof *k);
    if (!k)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    k->slot_key = k->slot_part = -1;
    if (add_tpl(k, o.topic, e) < 0 || (o.key && (k->slot_key = add_tpl(k, o.key, e)) < 0) ||
        (o.partition && (k->slot_part = add_tpl(k, o.partition, e)) < 0))
        goto fail;
    k->hdr0 = (int)k->ntpl;
    for (size_t i = 0; i < o.nheaders; i++, k->nhdr++)
        if (add_tpl(k, o.headers[i].key, e) < 0 || add_tpl(k, o.headers[i].value, e) < 0)
            goto fail;
    /* Last: a producer is only created for an otherwise valid action. */
    if (!(k->prod = act_kafka__producer_acquire(o.props, cfg->host, &k->msg_timeout_ms, e)))
        goto fail;
    k->base.lanes = 1;
    k->base.max_batch = MAX_BATCH;
    k->base.max_batch_bytes = MAX_BATCH_BYTES;
    k->base.wants_nulls = 1; /* a Null key is no key; a Null header value is a null value */
    snprintf(k->base.resource, sizeof k->base.resource, "%s", o.topic);
    *out = &k->base;
    return 0;
fail:
    kf_close(&k->base);
    return -1;
}

static size_t kf_templates(act_instance *self, const char *const **tpl) {
    kafka *k = (kafka *)self;
    *tpl = (const char *const *)k->tpl;
    return k->ntpl;
}

/* deliver() has waited for every report of its rounds, so this instance has nothing in flight;
 * the producer's last reference flushes whatever the registry still holds (kafka_conf.c). */
static void kf_close(act_instance *self) {
    kafka *k = (kafka *)self;
    if (!k)
        return;
    act_kafka__producer_release(k->prod);
    for (size_t i = 0; i < k->ntpl; i++)
        free(k->tpl[i]);
    free(k->slots);
    free(k);
}

/* }====== */

const act_vtable act_kafka_vtable = {
    .version = ACT_VTABLE_VERSION,
    .name = "kafka",
    .aws_name = "KafkaAction",
    .open = kf_open,
    .templates = kf_templates,
    .deliver = kf_deliver,
    .format = kf_format,
    .close = kf_close,
    .description = "AWS's Kafka action: produce each output as a Kafka record (librdkafka)",
    .options = kf_options,
};

/*
 * message.c -- incoming messages (one allocation each, everything copied in; their reference
 * count and the REST API's error values are inline in engine.h).
 */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

/* A version-4-shaped UUID from a per-process random base and a counter: unique per message
 * within the process and across restarts (the base is random), and cheap enough for the
 * message path (no random syscall or snprintf per message). */
static _Atomic uint64_t trace_counter;
static uint64_t base_hi, base_lo;
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_seed(void) {
    uint64_t b[2];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) { /* no entropy source: time and pid */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        b[0] = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
        b[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ b[0];
    }
    base_hi = b[0];
    base_lo = b[1];
}

/* A version-4 UUID's text from 128 bits. */
static void uuid_text(uint64_t hi, uint64_t lo, char out[37]) {
    hi = (hi & ~0xf000ull) | 0x4000ull;                           /* version 4 */
    lo = (lo & ~(3ull << 62)) | (2ull << 62);                     /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

static void make_traceid(char out[37]) {
    pthread_once(&trace_once, trace_seed);
    uint64_t n = atomic_fetch_add_explicit(&trace_counter, 1, memory_order_relaxed);
    uuid_text(base_hi, base_lo ^ (n * 0x9e3779b97f4a7c15ull), out);
}

/* splitmix64's finalizer: a bijective mix of 64 bits. */
static uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The trace id and newuuid() seed of a message whose identity is the 64 bits a (salt: a
 * second input to the seed). */
static void set_identity(eng_msg *m, uint64_t a, uint64_t salt) {
    uint64_t b = mix64(a ^ 0x9e3779b97f4a7c15ull);
    uuid_text(a, b, m->traceid);
    m->uuid_seed = mix64(b + salt) | 1; /* never 0, which means "random" */
}

void eng_msg_set_seq(eng_msg *m, uint64_t seq, uint64_t instance) {
    m->seq = seq;
    set_identity(m, mix64(instance ^ mix64(seq)), seq);
}

void eng_msg_set_record(eng_msg *m, const char *topic, int32_t partition, int64_t offset) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits, of the Kafka topic name */
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    set_identity(m, mix64(mix64(h ^ (uint32_t)partition) ^ (uint64_t)offset), (uint64_t)offset);
}

int eng_msg_done_before(const eng_msg *m, const char *rule, uint64_t revision, int action) {
    for (size_t i = 0; i < m->nskip; i++)
        if (m->skip[i].revision == revision && m->skip[i].action == action &&
            !strcmp(m->skip[i].rule, rule))
            return 1;
    return 0;
}

eng_msg *eng_msg_new(const char *topic, size_t topic_len, const void *payload, size_t len,
                     const sql_mqtt_props *props, const char *clientid, int source) {
    size_t extra = topic_len + 1 + len + 1 + slen(clientid);
    size_t nuser = props ? props->nuser : 0;
    if (props) {
        extra += slen(props->content_type) + slen(props->response_topic) +
                 props->correlation_len + 1;
        for (size_t i = 0; i < nuser; i++)
            extra += slen(props->user[i].key) + slen(props->user[i].value);
    }
    eng_msg *m = calloc(1, sizeof *m + sizeof(sql_user_prop) * nuser + extra);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->user = (sql_user_prop *)(m + 1);
    char *p = (char *)(m->user + nuser);
#define COPY(dst, src, n)                                                                          \
    do {                                                                                           \
        if ((n) > 0) /* an empty MQTT payload comes as NULL */                                     \
            memcpy(p, (src), (n));                                                                 \
        p[(n)] = '\0';                                                                             \
        (dst) = p;                                                                                 \
        p += (n) + 1;                                                                              \
    } while (0)
    COPY(m->topic, topic, topic_len);
    m->topic_len = topic_len;
    char *pl;
    COPY(pl, payload, len);
    m->payload = pl;
    m->payload_len = len;
    if (clientid)
        COPY(m->clientid, clientid, strlen(clientid));
    m->source = source;
    m->props.format_indicator = -1;
    m->props.message_expiry = -1;
    if (props) {
        const char *s;
        if (props->content_type) {
            COPY(s, props->content_type, strlen(props->content_type));
            m->props.content_type = s;
        }
        if (props->response_topic) {
            COPY(s, props->response_topic, strlen(props->response_topic));
            m->props.response_topic = s;
        }
        if (props->correlation_data) {
            COPY(s, props->correlation_data, props->correlation_len);
            m->props.correlation_data = s;
            m->props.correlation_len = props->correlation_len;
        }
        m->props.format_indicator = props->format_indicator;
        m->props.message_expiry = props->message_expiry;
        for (size_t i = 0; i < nuser; i++) {
            COPY(m->user[i].key, props->user[i].key, strlen(props->user[i].key));
            COPY(m->user[i].value, props->user[i].value, strlen(props->user[i].value));
        }
        m->props.user = m->user;
        m->props.nuser = nuser;
        for (size_t i = nuser; i-- > 0;) /* the last one, as get_mqtt_property reads it */
            if (!strcmp(m->user[i].key, "principal")) {
                m->principal = (char *)m->user[i].value;
                break;
            }
    }
#undef COPY
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->received_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    make_traceid(m->traceid);
    return m;
}

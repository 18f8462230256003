/*
 * kafka_mock.c -- a Kafka cluster for the integration tests: librdkafka's mock cluster
 * (rdkafka_mock.h, the real Kafka protocol over TCP on 127.0.0.1), driven over stdin.
 *
 *   usage: kafka_mock [brokers]        (default 3 brokers, ids 1..N)
 *
 * The first line on stdout is the bootstrap servers list. Then one command per stdin line,
 * each answered by one JSON line (consume: one line per record, then the done line):
 *
 *   create <topic> <partitions>          {"ok":true}
 *   down <broker_id> / up <broker_id>    {"ok":true}   (down: connections closed and refused)
 *   leader <topic> <partition> <broker>  {"ok":true}
 *   consume <topic> <count> <timeout_ms> {"topic","partition","offset","key","headers":
 *                                         [{"key","value"}],"value"} per record, from the
 *                                         beginning of every partition, then {"done":N}; it
 *                                         stops after count records (0: at the end of every
 *                                         partition) or after timeout_ms
 *   produce <json>                       {"ok":true,"produced":N} once every record is
 *                                         acknowledged; json is {"topic": T, "records":
 *                                         [{"partition": P (absent: by key), "key": K|null,
 *                                         "value": V|null, "headers": [{"key","value"}]}]}
 *                                         (one idempotent producer: per-partition order holds)
 *   errors <api> <code>[,<code>...]      {"ok":true}: the next requests of that API (Produce,
 *                                         Fetch, Metadata, OffsetCommit, OffsetFetch,
 *                                         FindCoordinator, JoinGroup, Heartbeat, LeaveGroup,
 *                                         SyncGroup) fail with these Kafka error codes, one
 *                                         each, in order (rd_kafka_mock_push_request_errors)
 *   committed <group> <topic>            {"committed":{"<partition>":offset}} (-1001: none)
 *   offsets <topic>                      {"low":{"<partition>":o},"high":{...}} watermarks
 *   quit
 *
 * The brokers' sockets get TCP_NODELAY, as a real Kafka broker's do (librdkafka's mock leaves
 * it off, and its small responses then wait ~40 ms for delayed ACKs: a stall no real cluster
 * has). It exits on quit or when stdin closes. The mock cluster lives inside a dummy producer
 * handle; each consume uses a fresh consumer with a manual assignment (no group), so runs
 * are independent and see duplicates as distinct offsets.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static const char *bootstraps;
static rd_kafka_t *producer; /* created by the first produce */

/* librdkafka's mock brokers call accept(); this definition in the executable interposes on
 * libc's and sets TCP_NODELAY on every accepted connection. */
int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real)
        real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int c = real(fd, addr, len), one = 1;
    if (c >= 0)
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (level <= 3)
        fprintf(stderr, "kafka_mock: %s: %s\n", fac, buf);
}

static void reply(rd_kafka_resp_err_t err) {
    if (err)
        printf("{\"error\":\"%s\"}\n", rd_kafka_err2str(err));
    else
        printf("{\"ok\":true}\n");
}

static cJSON *str_or_null(const void *p, size_t n) {
    if (!p)
        return cJSON_CreateNull();
    char *s = strndup(p, n);
    cJSON *j = cJSON_CreateString(s ? s : "");
    free(s);
    return j;
}

static void print_record(const rd_kafka_message_t *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", rd_kafka_topic_name(m->rkt));
    cJSON_AddNumberToObject(o, "partition", m->partition);
    cJSON_AddNumberToObject(o, "offset", (double)m->offset);
    cJSON_AddItemToObject(o, "key", str_or_null(m->key, m->key_len));
    cJSON *hs = cJSON_AddArrayToObject(o, "headers");
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *v;
        size_t vlen;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &vlen) == 0; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "key", name);
            cJSON_AddItemToObject(e, "value", str_or_null(v, vlen));
            cJSON_AddItemToArray(hs, e);
        }
    }
    cJSON_AddItemToObject(o, "value", str_or_null(m->payload ? m->payload : "", m->len));
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
}

static void consume(const char *topic, long count, int timeout_ms) {
    char errstr[512];
    long got = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "group.id", "kafka-mock", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof errstr)) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        printf("{\"done\":0,\"error\":\"config\"}\n");
        return;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        printf("{\"done\":0,\"error\":\"consumer\"}\n");
        return;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    int nparts = 0;
    if (!err && md->topic_cnt == 1 && !md->topics[0].err)
        nparts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (nparts == 0) {
        printf("{\"done\":0,\"error\":\"no such topic\"}\n");
        rd_kafka_destroy(rk);
        return;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    char *eof = calloc((size_t)nparts, 1);
    int neof = 0;
    long long deadline = now_ms() + timeout_ms;
    while ((count == 0 || got < count) && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && m->partition < nparts && !eof[m->partition]) {
                eof[m->partition] = 1;
                neof++;
            }
        } else if (m->err) {
            fprintf(stderr, "kafka_mock: consume: %s\n", rd_kafka_message_errstr(m));
        } else {
            print_record(m);
            got++;
            if (m->partition >= 0 && m->partition < nparts && eof[m->partition]) {
                eof[m->partition] = 0;
                neof--;
            }
        }
        rd_kafka_message_destroy(m);
        if (count == 0 && neof == nparts)
            break;
    }
    free(eof);
    printf("{\"done\":%ld}\n", got);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void on_produced(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    if (m->err) {
        long *failed = m->_private;
        (*failed)++;
        fprintf(stderr, "kafka_mock: produce: %s\n", rd_kafka_err2str(m->err));
    }
}

/* A client of the mock cluster: a consumer (group may be NULL) or the producer. */
static rd_kafka_t *client(rd_kafka_type_t type, const char *group) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr) ||
        (group && rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr)) ||
        (type == RD_KAFKA_PRODUCER &&
         (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) ||
          rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr)))) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(conf, on_produced);
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int partitions_of(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = 0;
    if (!rd_kafka_metadata(rk, 0, rkt, &md, 5000) && md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static const char *str_of(const cJSON *o, const char *k, size_t *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) {
        *n = 0;
        return NULL;
    }
    *n = strlen(v->valuestring);
    return v->valuestring;
}

static void produce(const char *json) {
    cJSON *req = cJSON_Parse(json);
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive(req, "topic");
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(req, "records");
    if (!cJSON_IsString(topic) || !cJSON_IsArray(recs)) {
        printf("{\"error\":\"produce: want {topic, records}\"}\n");
        cJSON_Delete(req);
        return;
    }
    if (!producer) {
        producer = client(RD_KAFKA_PRODUCER, NULL);
        if (!producer) {
            printf("{\"error\":\"no producer\"}\n");
            cJSON_Delete(req);
            return;
        }
    }
    long n = 0, failed = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, recs) {
        size_t kl, vl;
        const char *key = str_of(r, "key", &kl), *val = str_of(r, "value", &vl);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "partition");
        rd_kafka_headers_t *hs = rd_kafka_headers_new(4);
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(r, "headers")) {
            size_t hk, hv;
            const char *name = str_of(h, "key", &hk), *v = str_of(h, "value", &hv);
            if (name)
                rd_kafka_header_add(hs, name, (ssize_t)hk, v, v ? (ssize_t)hv : 0);
        }
        rd_kafka_resp_err_t err;
        do {
            err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(topic->valuestring),
                RD_KAFKA_V_PARTITION(cJSON_IsNumber(p) ? (int32_t)p->valuedouble
                                                       : RD_KAFKA_PARTITION_UA),
                RD_KAFKA_V_KEY(key, kl), RD_KAFKA_V_VALUE((void *)val, vl),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hs),
                RD_KAFKA_V_OPAQUE(&failed), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(producer, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err) { /* producev() takes the headers only when it succeeds */
            rd_kafka_headers_destroy(hs);
            failed++;
        }
        n++;
    }
    rd_kafka_flush(producer, 60000);
    rd_kafka_poll(producer, 0);
    if (failed)
        printf("{\"error\":\"%ld of %ld records not produced\"}\n", failed, n);
    else
        printf("{\"ok\":true,\"produced\":%ld}\n", n);
    cJSON_Delete(req);
}

static void push_errors(rd_kafka_mock_cluster_t *mc, const char *api, const char *codes) {
    static const struct {
        const char *name;
        int16_t key;
    } apis[] = {{"Produce", 0},        {"Fetch", 1},         {"Metadata", 3},
                {"OffsetCommit", 8},   {"OffsetFetch", 9},   {"FindCoordinator", 10},
                {"JoinGroup", 11},     {"Heartbeat", 12},    {"LeaveGroup", 13},
                {"SyncGroup", 14}};
    int16_t key = -1;
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        if (!strcmp(apis[i].name, api))
            key = apis[i].key;
    rd_kafka_resp_err_t errs[64];
    size_t n = 0;
    for (const char *c = codes; *c && n < 64;) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c)
            break;
        errs[n++] = (rd_kafka_resp_err_t)v;
        c = *end == ',' ? end + 1 : end;
    }
    if (key < 0 || n == 0) {
        printf("{\"error\":\"errors <api> <code>[,<code>...]\"}\n");
        return;
    }
    rd_kafka_mock_push_request_errors_array(mc, key, n, errs);
    reply(RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void committed(const char *group, const char *topic) {
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, group);
    int nparts = rk ? partitions_of(rk, topic) : 0;
    if (!nparts) {
        printf("{\"error\":\"no such topic\"}\n");
        if (rk)
            rd_kafka_destroy(rk);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 10000);
    if (err) {
        printf("{\"error\":\"%s\"}\n", rd_kafka_err2str(err));
    } else {
        cJSON *o = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o, "committed");
        for (int i = 0; i < l->cnt; i++) {
            char k[16];
            snprintf(k, sizeof k, "%d", l->elems[i].partition);
            cJSON_AddNumberToObject(c, k, (double)l->elems[i].offset);
        }
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static void watermarks(const char *topic) {
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, NULL);
    int nparts = rk ? partitions_of(rk, topic) : 0;
    cJSON *o = cJSON_CreateObject(), *lo = cJSON_AddObjectToObject(o, "low"),
          *hi = cJSON_AddObjectToObject(o, "high");
    rd_kafka_resp_err_t err = nparts ? 0 : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    for (int p = 0; p < nparts && !err; p++) {
        int64_t l, h;
        err = rd_kafka_query_watermark_offsets(rk, topic, p, &l, &h, 10000);
        char k[16];
        snprintf(k, sizeof k, "%d", p);
        cJSON_AddNumberToObject(lo, k, (double)l);
        cJSON_AddNumberToObject(hi, k, (double)h);
    }
    if (err) {
        printf("{\"error\":\"%s\"}\n", rd_kafka_err2str(err));
    } else {
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
    }
    cJSON_Delete(o);
    if (rk)
        rd_kafka_destroy(rk);
}

int main(int argc, char **argv) {
    int nbrokers = argc > 1 ? atoi(argv[1]) : 3;
    char errstr[512], *line = NULL;
    size_t linecap = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    printf("%s\n", bootstraps);
    fflush(stdout);
    while (getline(&line, &linecap, stdin) > 0) {
        char cmd[32] = "", a[256] = "", b[256] = "";
        long n1 = 0, n2 = 0;
        int nf = sscanf(line, "%31s %255s %ld %ld", cmd, a, &n1, &n2);
        if (nf >= 1 && !strcmp(cmd, "produce")) {
            produce(line + strlen("produce"));
            fflush(stdout);
            continue;
        }
        if (nf >= 2 && sscanf(line, "%*s %*s %255s", b) != 1)
            b[0] = '\0';
        if (nf <= 0)
            continue;
        if (!strcmp(cmd, "quit"))
            break;
        else if (!strcmp(cmd, "down") && nf >= 2)
            reply(rd_kafka_mock_broker_set_down(mc, atoi(a)));
        else if (!strcmp(cmd, "up") && nf >= 2)
            reply(rd_kafka_mock_broker_set_up(mc, atoi(a)));
        else if (!strcmp(cmd, "create") && nf >= 3)
            reply(rd_kafka_mock_topic_create(mc, a, (int)n1, nbrokers < 3 ? nbrokers : 3));
        else if (!strcmp(cmd, "leader") && nf >= 4)
            reply(rd_kafka_mock_partition_set_leader(mc, a, (int32_t)n1, (int32_t)n2));
        else if (!strcmp(cmd, "consume") && nf >= 4)
            consume(a, n1, (int)n2);
        else if (!strcmp(cmd, "errors") && b[0])
            push_errors(mc, a, b);
        else if (!strcmp(cmd, "committed") && b[0])
            committed(a, b);
        else if (!strcmp(cmd, "offsets") && nf >= 2)
            watermarks(a);
        else
            printf("{\"error\":\"bad command\"}\n");
        fflush(stdout);
    }
    free(line);
    if (producer)
        rd_kafka_destroy(producer);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

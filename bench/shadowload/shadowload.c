/*
 * shadowload.c -- `sluice-shadowload`: durable device-shadow updates per second through a
 * running `sluice serve`, over MQTT (through the broker) or over the REST data plane, with the
 * latency of each update from its send to its answer.
 *
 *   sluice-shadowload --mode mqtt --port BROKER_PORT [--devices N] [--connections C] ...
 *   sluice-shadowload --mode rest --port HTTP_PORT [--clients N] ...
 *
 * mqtt: N devices (things <prefix>-<i>, classic shadows) spread over C MQTT connections; each
 *   device has one update in flight at a time: it publishes $aws/things/<thing>/shadow/update
 *   at QoS 1 and publishes its next update when its /update/accepted arrives (each connection
 *   subscribes to its own devices' /accepted and /rejected topics, so no answer is delivered
 *   twice). The latency is publish to /accepted. sluice journals the request (fdatasync)
 *   before its PUBACK and commits the update (fsync) before publishing /accepted, so every
 *   counted update is durable.
 * rest: N clients, each a thread with one keep-alive HTTP/1.1 connection updating its own
 *   thing with POST /things/<thing>/shadow in a closed loop; the latency is the request's round
 *   trip. The REST answer is sent once the update is durable.
 *
 * The update reports a sequence number and three fields ({"state":{"reported":{"seq":N,...}}}),
 * so sluice publishes /accepted and /documents (no desired state: no /delta). Updates answered
 * during the first --warmup seconds are not counted; the run lasts --seconds more; then every
 * device stops after its answer. Output: one line, or one JSON object with --json: updates,
 * updates/s, latency p50 / p99 / p99.9 / max in ms, rejected / failed requests, and the CPU
 * seconds the load generator itself used while measuring (it shares the machine). The exit status
 * is 1 when any update was rejected or failed, or nothing was measured.
 *
 * A plain socket client rather than libcurl for REST: the benchmark measures sluice, and one
 * write plus one read per request is all keep-alive needs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *usage_text =
    "usage: sluice-shadowload --mode mqtt|rest --port P [options]\n"
    "  --host H          broker (mqtt) or sluice's REST API (rest) address (127.0.0.1)\n"
    "  --devices N       mqtt: devices, one update in flight each (1000)\n"
    "  --connections C   mqtt: MQTT connections the devices share (8)\n"
    "  --clients N       rest: concurrent keep-alive clients (64)\n"
    "  --seconds S       measured time (10)\n"
    "  --warmup W        seconds before measuring (2)\n"
    "  --prefix P        thing name prefix (bench)\n"
    "  --json            print the summary as JSON\n";

/* {====== shared state */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds this process has used (all threads) */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* 0 warming up, 1 measuring, 2 stopping: devices send no next update */
static _Atomic int phase;
static _Atomic uint64_t rejected, failed;

/* Latency samples (seconds) of one thread that appends alone. */
typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static void sample_add(samples *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char payload_fmt[] =
    "{\"state\":{\"reported\":{\"seq\":%llu,\"temperature\":%d.%d,\"fw\":\"1.4.2\","
    "\"online\":true}}}";

static int payload(char *buf, size_t cap, unsigned long long seq) {
    return snprintf(buf, cap, payload_fmt, seq, 15 + (int)(seq % 20), (int)(seq % 10));
}

/* }====== */

/* {====== MQTT devices */

typedef struct device {
    unsigned long long seq;
    double sent;
} device;

typedef struct conn {
    struct mosquitto *m;
    int first, step, n; /* its devices: first, first + step, ... (n of them) */
    samples lat;
    _Atomic int subacks;
    _Atomic int connected;
} conn;

static device *devs;
static const char *prefix = "bench";

static void send_update(conn *c, int d) {
    char topic[160], body[256];
    snprintf(topic, sizeof topic, "$aws/things/%s-%d/shadow/update", prefix, d);
    int n = payload(body, sizeof body, ++devs[d].seq);
    devs[d].sent = now_s();
    if (mosquitto_publish(c->m, NULL, topic, n, body, 1, false) != MOSQ_ERR_SUCCESS)
        atomic_fetch_add(&failed, 1);
}

/* "$aws/things/<prefix>-<d>/shadow/update/<answer>": d, and whether it was accepted */
static int parse_answer(const char *topic, int *accepted) {
    const char *p = strstr(topic, "/things/");
    if (!p)
        return -1;
    p += 8 + strlen(prefix) + 1;
    int d = atoi(p);
    const char *last = strrchr(topic, '/');
    *accepted = last && !strcmp(last, "/accepted");
    return d;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg) {
    conn *c = ud;
    int accepted, d = parse_answer(msg->topic, &accepted);
    if (d < 0)
        return;
    double t = now_s();
    if (!accepted)
        atomic_fetch_add(&rejected, 1);
    int ph = atomic_load(&phase);
    if (ph == 1)
        sample_add(&c->lat, t - devs[d].sent);
    if (ph < 2)
        send_update(c, d);
    else
        devs[d].sent = 0; /* done */
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted) {
    conn *c = ud;
    atomic_fetch_add(&c->subacks, 1);
}

static void on_connect(struct mosquitto *m, void *ud, int rc) {
    conn *c = ud;
    atomic_store(&c->connected, rc == 0 ? 1 : -1);
}

static conn *mqtt_conns;
static int mqtt_nconn;

/* Connects, subscribes and sends each device's first update; the answer callbacks send the
 * rest. */
static int mqtt_start(const char *host, int port, int ndev, int nconn) {
    devs = calloc((size_t)ndev, sizeof *devs);
    conn *cs = mqtt_conns = calloc((size_t)nconn, sizeof *cs);
    mqtt_nconn = nconn;
    if (!devs || !cs)
        return -1;
    mosquitto_lib_init();
    for (int k = 0; k < nconn; k++) {
        conn *c = &cs[k];
        c->first = k;
        c->step = nconn;
        c->n = (ndev - k + nconn - 1) / nconn;
        c->m = mosquitto_new(NULL, true, c);
        mosquitto_int_option(c->m, MOSQ_OPT_SEND_MAXIMUM, 65535);
        mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_connect_callback_set(c->m, on_connect);
        mosquitto_message_callback_set(c->m, on_message);
        mosquitto_subscribe_callback_set(c->m, on_subscribe);
        if (mosquitto_connect(c->m, host, port, 60) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "sluice-shadowload: cannot connect to %s:%d\n", host, port);
            return -1;
        }
        mosquitto_loop_start(c->m);
    }
    for (int k = 0; k < nconn; k++) {
        while (!atomic_load(&cs[k].connected))
            usleep(1000);
        if (atomic_load(&cs[k].connected) < 0)
            return -1;
        for (int d = cs[k].first; d < ndev; d += cs[k].step) {
            char t[160];
            snprintf(t, sizeof t, "$aws/things/%s-%d/shadow/update/accepted", prefix, d);
            mosquitto_subscribe(cs[k].m, NULL, t, 1);
            snprintf(t, sizeof t, "$aws/things/%s-%d/shadow/update/rejected", prefix, d);
            mosquitto_subscribe(cs[k].m, NULL, t, 1);
        }
    }
    for (int k = 0; k < nconn; k++)
        while (atomic_load(&cs[k].subacks) < 2 * cs[k].n)
            usleep(1000);
    /* each device's first update; later ones go out from the answer callbacks */
    for (int k = 0; k < nconn; k++)
        for (int d = cs[k].first; d < ndev; d += cs[k].step)
            send_update(&cs[k], d);
    return 0;
}

static void mqtt_finish(int ndev, samples *all) {
    /* wait up to 10 s for the updates in flight, then gather */
    double end = now_s() + 10;
    for (int d = 0; d < ndev && now_s() < end; d++)
        while (devs[d].sent != 0 && now_s() < end)
            usleep(1000);
    for (int k = 0; k < mqtt_nconn; k++) {
        conn *c = &mqtt_conns[k];
        mosquitto_disconnect(c->m);
        mosquitto_loop_stop(c->m, false);
        for (size_t i = 0; i < c->lat.n; i++)
            sample_add(all, c->lat.v[i]);
        free(c->lat.v);
        mosquitto_destroy(c->m);
    }
    mosquitto_lib_cleanup();
}

/* }====== */

/* {====== REST clients */

typedef struct client {
    pthread_t th;
    int i;
    struct sockaddr_in addr;
    samples lat;
} client;

static int connect_to(const struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)a, sizeof *a)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one response: its status, or -1 when the connection broke. */
static int read_response(int fd, char *buf, size_t cap) {
    size_t n = 0;
    char *end;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")))
            break;
        if (n == cap - 1)
            return -1;
    }
    int status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
    size_t have = n - (size_t)(end + 4 - buf);
    while (have < body) {
        ssize_t r = read(fd, buf, cap - 1 < body - have ? cap - 1 : body - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return status;
}

static void *client_main(void *arg) {
    client *c = arg;
    char req[768], body[256], resp[8192];
    int fd = connect_to(&c->addr);
    unsigned long long seq = 0;
    while (fd >= 0 && atomic_load(&phase) < 2) {
        int bl = payload(body, sizeof body, ++seq);
        int n = snprintf(req, sizeof req,
                         "POST /things/%s-r%d/shadow HTTP/1.1\r\nHost: sluice\r\n"
                         "Content-Length: %d\r\n\r\n%s", prefix, c->i, bl, body);
        double t0 = now_s();
        if (write(fd, req, (size_t)n) != n) {
            atomic_fetch_add(&failed, 1);
            break;
        }
        int status = read_response(fd, resp, sizeof resp);
        if (status < 0) {
            atomic_fetch_add(&failed, 1);
            close(fd);
            fd = connect_to(&c->addr); /* the server closed it (timeout, error): go on */
            continue;
        }
        if (status != 200)
            atomic_fetch_add(&rejected, 1);
        if (atomic_load(&phase) == 1)
            sample_add(&c->lat, now_s() - t0);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* }====== */

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *mode = NULL;
    int port = 0, ndev = 1000, nconn = 8, nclients = 64, json = 0;
    double seconds = 10, warmup = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!v || !strcmp(a, "--help")) {
            fputs(usage_text, stderr);
            return 64;
        }
        i++;
        if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--devices")) ndev = atoi(v);
        else if (!strcmp(a, "--connections")) nconn = atoi(v);
        else if (!strcmp(a, "--clients")) nclients = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--prefix")) prefix = v;
        else {
            fputs(usage_text, stderr);
            return 64;
        }
    }
    int mqtt = mode && !strcmp(mode, "mqtt"), rest = mode && !strcmp(mode, "rest");
    if ((!mqtt && !rest) || port <= 0 || ndev < 1 || nconn < 1 || nclients < 1 ||
        seconds <= 0) {
        fputs(usage_text, stderr);
        return 64;
    }
    samples all = {0};
    client *cl = NULL;
    if (mqtt) {
        if (nconn > ndev)
            nconn = ndev;
        if (mqtt_start(host, port, ndev, nconn))
            return 1;
    } else {
        cl = calloc((size_t)nclients, sizeof *cl);
        for (int i = 0; cl && i < nclients; i++) {
            cl[i].i = i;
            cl[i].addr.sin_family = AF_INET;
            cl[i].addr.sin_port = htons((uint16_t)port);
            if (inet_pton(AF_INET, host, &cl[i].addr.sin_addr) != 1) {
                fprintf(stderr, "sluice-shadowload: --host must be an IPv4 address\n");
                return 64;
            }
            pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
        }
    }
    usleep((useconds_t)(warmup * 1e6));
    atomic_store(&phase, 1);
    double t0 = now_s(), c0 = cpu_s();
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&phase, 2);
    double elapsed = now_s() - t0, cpu = cpu_s() - c0;
    if (mqtt) {
        mqtt_finish(ndev, &all);
    } else {
        for (int i = 0; i < nclients; i++) {
            pthread_join(cl[i].th, NULL);
            for (size_t k = 0; k < cl[i].lat.n; k++)
                sample_add(&all, cl[i].lat.v[k]);
            free(cl[i].lat.v);
        }
        free(cl);
    }
    qsort(all.v, all.n, sizeof *all.v, cmp_double);
    double p50 = 0, p99 = 0, p999 = 0, max = 0;
    if (all.n) {
        p50 = all.v[all.n / 2] * 1e3;
        p99 = all.v[(size_t)((double)all.n * 0.99)] * 1e3;
        p999 = all.v[(size_t)((double)all.n * 0.999)] * 1e3;
        max = all.v[all.n - 1] * 1e3;
    }
    double rate = (double)all.n / elapsed;
    unsigned long long rj = atomic_load(&rejected), fl = atomic_load(&failed);
    int concurrency = mqtt ? ndev : nclients;
    if (json)
        printf("{\"mode\":\"%s\",\"concurrency\":%d,\"updates\":%zu,\"rate\":%.0f,"
               "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
               "\"rejected\":%llu,\"failed\":%llu,\"cpu_s\":%.2f}\n",
               mode, concurrency, all.n, rate, p50, p99, p999, max, rj, fl, cpu);
    else
        printf("%s %d: %zu updates in %.1f s, %.0f updates/s, p50 %.3f ms, p99 %.3f ms, "
               "p99.9 %.3f ms, max %.3f ms, rejected %llu, failed %llu, own CPU %.2f s\n",
               mode, concurrency, all.n, elapsed, rate, p50, p99, p999, max, rj, fl, cpu);
    free(all.v);
    return rj || fl || !all.n ? 1 : 0;
}

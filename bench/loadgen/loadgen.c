/*
 * loadgen.c -- `sluice-loadgen`: an MQTT load generator that measures end-to-end latency.
 *
 * Publishes messages from K simulated devices (topic and payload templates), as fast as
 * possible or paced to a target rate with a token bucket, for a count or a duration, while a
 * second connection subscribes to the output filter and reads the send timestamp that the
 * generator wrote into each payload ("ts" by default: nanoseconds on CLOCK_REALTIME, so it
 * survives a trip through a rule that selects it). Latencies go into a log-linear histogram
 * (no per-sample allocation). A progress line per second on stderr; a summary at the end, as
 * text or as one JSON object (--json).
 *
 * Templates: ${device} (dev-<n>), ${seq}, ${ts} (ns), ${rand:A:B} (uniform, one decimal).
 */
#include <mosquitto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *usage_text =
    "usage: sluice-loadgen [options]\n"
    "  --host H --port P      broker (127.0.0.1:1883)\n"
    "  --devices K            simulated devices (100)\n"
    "  --rate R               messages/s in total; 0 = as fast as possible (0)\n"
    "  --count N | --duration S   how much to send (N = 100000)\n"
    "  --qos Q                publish and subscribe QoS (0)\n"
    "  --window W             QoS 1: at most W publishes awaiting their PUBACK (1000; 0 = no\n"
    "                         bound, which makes libmosquitto's per-PUBACK search of its\n"
    "                         outgoing list the generator's own bottleneck)\n"
    "  --topic T              topic template (sensors/${device}/telemetry)\n"
    "  --payload P            payload template\n"
    "      ({\"deviceId\":\"${device}\",\"temperature\":${rand:0:100},\"humidity\":${rand:0:100},"
    "\"ts\":${ts}})\n"
    "  --sub F                output filter to measure (none: no latency)\n"
    "  --latency-field F      payload field holding the send time in ns (ts)\n"
    "  --timeout S            wait for outputs after sending (5)\n"
    "  --json                 print the summary as JSON\n";

/* {====== latency histogram: 64 sub-buckets per power of two, from 1 us to ~1 h */
#define SUB 64
#define POW 32
static _Atomic uint64_t hist[POW * SUB];
static _Atomic uint64_t received, sent, acked;
static double t_first_rx, t_last_rx;

static void hist_add(uint64_t ns) {
    uint64_t us = ns / 1000;
    if (us < 1)
        us = 1;
    int p = 63 - __builtin_clzll(us);
    if (p >= POW)
        p = POW - 1;
    uint64_t base = 1ull << p;
    int s = p >= 6 ? (int)((us - base) >> (p - 6)) : (int)((us - base) << (6 - p));
    if (s >= SUB)
        s = SUB - 1;
    atomic_fetch_add(&hist[p * SUB + s], 1);
}

static double hist_pct(double q) {
    uint64_t total = 0;
    for (int i = 0; i < POW * SUB; i++)
        total += atomic_load(&hist[i]);
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;
    for (int i = 0; i < POW * SUB; i++) {
        acc += atomic_load(&hist[i]);
        if (acc > want || acc == total) {
            int p = i / SUB, s = i % SUB;
            double base = (double)(1ull << p);
            return (base + base * (s + 0.5) / SUB) / 1000.0; /* ms */
        }
    }
    return 0;
}
/* }====== */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *lat_field = "ts";
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static void on_publish(struct mosquitto *m, void *ud, int mid) {
    (void)m, (void)ud, (void)mid;
    atomic_fetch_add(&acked, 1);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg) {
    uint64_t t = wall_ns();
    double mt = now();
    if (atomic_fetch_add(&received, 1) == 0)
        t_first_rx = mt;
    t_last_rx = mt;
    char key[80];
    snprintf(key, sizeof key, "\"%s\":", lat_field);
    const char *p = msg->payloadlen > 0 ? memmem(msg->payload, (size_t)msg->payloadlen, key,
                                                 strlen(key))
                                        : NULL;
    if (p) {
        uint64_t sent_ns = strtoull(p + strlen(key), NULL, 10);
        if (sent_ns && t > sent_ns)
            hist_add(t - sent_ns);
    }
}

/* Expands a template for device d, message seq. */
static size_t expand(const char *tpl, int d, uint64_t seq, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = tpl; *p && n + 40 < cap;) {
        if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p, '}');
            if (!e)
                break;
            size_t l = (size_t)(e - p - 2);
            const char *k = p + 2;
            if (l == 6 && !strncmp(k, "device", 6))
                n += (size_t)snprintf(out + n, cap - n, "dev-%d", d);
            else if (l == 3 && !strncmp(k, "seq", 3))
                n += (size_t)snprintf(out + n, cap - n, "%llu", (unsigned long long)seq);
            else if (l == 2 && !strncmp(k, "ts", 2))
                n += (size_t)snprintf(out + n, cap - n, "%llu", (unsigned long long)wall_ns());
            else if (l > 5 && !strncmp(k, "rand:", 5)) {
                double a = atof(k + 5), b = atof(strchr(k + 5, ':') ? strchr(k + 5, ':') + 1 : "1");
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                n += (size_t)snprintf(out + n, cap - n, "%.1f",
                                      a + (b - a) * (double)(rng % 1000000) / 1e6);
            }
            p = e + 1;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return n;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *topic = "sensors/${device}/telemetry", *sub = NULL;
    const char *payload = "{\"deviceId\":\"${device}\",\"temperature\":${rand:0:100},"
                          "\"humidity\":${rand:0:100},\"ts\":${ts}}";
    int port = 1883, devices = 100, qos = 0, json = 0;
    double rate = 0, duration = 0, timeout = 5;
    long count = 100000, window = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!v || !strncmp(a, "--help", 6)) {
            fputs(usage_text, stderr);
            return 64;
        }
        i++;
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--devices")) devices = atoi(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--count")) count = atol(v), duration = 0;
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--qos")) qos = atoi(v);
        else if (!strcmp(a, "--window")) window = atol(v);
        else if (!strcmp(a, "--topic")) topic = v;
        else if (!strcmp(a, "--payload")) payload = v;
        else if (!strcmp(a, "--sub")) sub = v;
        else if (!strcmp(a, "--latency-field")) lat_field = v;
        else if (!strcmp(a, "--timeout")) timeout = atof(v);
        else {
            fputs(usage_text, stderr);
            return 64;
        }
    }
    if (devices < 1 || (qos != 0 && qos != 1) || window < 0) {
        fputs(usage_text, stderr);
        return 64;
    }
    mosquitto_lib_init();
    struct mosquitto *pubc = mosquitto_new(NULL, true, NULL), *subc = NULL;
    mosquitto_int_option(pubc, MOSQ_OPT_SEND_MAXIMUM, 65535);
    mosquitto_publish_callback_set(pubc, on_publish);
    if (mosquitto_connect(pubc, host, port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sluice-loadgen: cannot connect to %s:%d\n", host, port);
        return 1;
    }
    mosquitto_loop_start(pubc);
    if (sub) {
        subc = mosquitto_new(NULL, true, NULL);
        mosquitto_message_callback_set(subc, on_message);
        if (mosquitto_connect(subc, host, port, 60) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "sluice-loadgen: cannot connect to %s:%d\n", host, port);
            return 1;
        }
        mosquitto_subscribe(subc, NULL, sub, qos);
        mosquitto_loop_start(subc);
        usleep(300000);
    }
    char t[512], p[8192];
    double t0 = now(), next_report = t0 + 1, tokens = 0, last = t0;
    uint64_t seq = 0, last_sent = 0, last_rx = 0;
    for (;;) {
        double tn = now();
        if (duration > 0 ? tn - t0 >= duration : (long)seq >= count)
            break;
        if (qos == 1 && window > 0 && seq - atomic_load(&acked) >= (uint64_t)window) {
            usleep(50); /* the broker has not acknowledged enough yet */
            continue;
        }
        if (rate > 0) {
            tokens += (tn - last) * rate;
            last = tn;
            if (tokens > rate / 10 + 1)
                tokens = rate / 10 + 1; /* at most 100 ms of burst */
            if (tokens < 1) {
                usleep(200);
                continue;
            }
            tokens -= 1;
        }
        int d = (int)(seq % (uint64_t)devices);
        expand(topic, d, seq, t, sizeof t);
        size_t pl = expand(payload, d, seq, p, sizeof p);
        int rc;
        while ((rc = mosquitto_publish(pubc, NULL, t, (int)pl, p, qos, false)) ==
               MOSQ_ERR_OVERSIZE_PACKET)
            usleep(100);
        if (rc != MOSQ_ERR_SUCCESS) {
            usleep(1000);
            continue;
        }
        seq++;
        atomic_store(&sent, seq);
        if (tn >= next_report) {
            uint64_t rx = atomic_load(&received);
            fprintf(stderr, "[%4.0fs] sent %llu (%llu/s), received %llu (%llu/s)\n", tn - t0,
                    (unsigned long long)seq, (unsigned long long)(seq - last_sent),
                    (unsigned long long)rx, (unsigned long long)(rx - last_rx));
            last_sent = seq;
            last_rx = rx;
            next_report += 1;
        }
    }
    double send_time = now() - t0;
    double wait_end = now() + timeout;
    while (sub && atomic_load(&received) < seq && now() < wait_end)
        usleep(10000);
    /* the broker may still be draining: allow a little while after the last arrival */
    mosquitto_loop_stop(pubc, true);
    if (subc)
        mosquitto_loop_stop(subc, true);
    uint64_t rx = atomic_load(&received);
    double rx_time = rx > 1 ? t_last_rx - t0 : 0;
    if (json) {
        printf("{\"sent\":%llu,\"received\":%llu,\"send_rate\":%.0f,\"receive_rate\":%.0f,"
               "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f}\n",
               (unsigned long long)seq, (unsigned long long)rx, seq / send_time,
               rx_time > 0 ? rx / rx_time : 0, hist_pct(0.5), hist_pct(0.9), hist_pct(0.99),
               hist_pct(0.999));
    } else {
        printf("sent %llu in %.2fs (%.0f msgs/s)\n", (unsigned long long)seq, send_time,
               seq / send_time);
        if (sub)
            printf("received %llu (%.0f msgs/s); latency ms p50 %.3f p90 %.3f p99 %.3f "
                   "p99.9 %.3f\n",
                   (unsigned long long)rx, rx_time > 0 ? rx / rx_time : 0, hist_pct(0.5),
                   hist_pct(0.9), hist_pct(0.99), hist_pct(0.999));
    }
    mosquitto_destroy(pubc);
    if (subc)
        mosquitto_destroy(subc);
    mosquitto_lib_cleanup();
    return 0;
}

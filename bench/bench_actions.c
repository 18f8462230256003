/*
 * bench_actions.c -- throughput and CPU cost of one action through the real delivery pipeline.
 *
 *   bench_actions --action '{"kafka": {...}}' --count N [--topics K] [--payload-bytes B]
 *                 [--window W] [--rate R] [--warmup N] [--json]
 *
 * The action is opened exactly as a rule opens it (act_lookup, open() with the service's
 * default configuration), wrapped in its pipeline (act_pipe_new_take) with a dead-letter store
 * in a temporary directory, and fed N messages through act_pipe_submit(), as a worker would
 * after firing the rule -- without MQTT and without SQL in the way, so the figures are the
 * action's and the pipeline's alone. Messages cycle over K topics sensors/dev-<k>/telemetry
 * (the pipeline picks the lane by topic, so K spreads the load over the lanes); their payload
 * is telemetry JSON padded to B bytes. The templates the action asks for are filled by
 * substituting each `${expr}` with a plausible value (a device id, a number, the topic or a
 * segment of it), since no SQL runs here.
 *
 * The clock runs from the first submit until every message is delivered or failed; CPU is
 * getrusage(RUSAGE_SELF) over the same span, so it counts the submitting thread, the lanes and
 * the client library's threads (but not the server, which actions.sh measures). Messages are
 * prebuilt (1024 variants) so the submitter costs what a worker's hand-off costs. The queue
 * depth is raised to hold the whole run, so nothing overflows; by default the submitter keeps
 * at most --window messages outstanding (closed loop: steady state, with the pipeline's memory
 * reused instead of a whole run's worth of fresh pages), --window 0 floods without a bound, and
 * --rate paces the submitter (open loop), which makes the latency histogram a delivery
 * latency rather than time spent queued. Any message that failed, or any not delivered, makes
 * the exit status 1, with the first dead letter's error on stderr.
 */
#define _GNU_SOURCE
#include "action.h"
#include "engine_int.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_actions --action '<action JSON object>' --count N [--topics K]\n"
               "                     [--payload-bytes B] [--window W] [--rate MSGS_PER_S]\n"
               "                     [--warmup N] [--json]\n"
               "  --window W: at most W messages queued or in delivery (0: no bound; default\n"
               "              max(20000, 4 x lanes x max batch))\n"
               "  --warmup N: deliver N messages before the clock starts (connections,\n"
               "              metadata, prepared statements), reported apart\n"
               "  e.g. --action '{\"file\": {\"path\": \"/tmp/out.jsonl\"}}' --count 100000\n");
}

/* {====== template values */

/* What one message looks like to the template filler. */
typedef struct sample {
    const char *topic;
    const char *device;
    long long seq;
    double temperature, humidity;
    long long ts;
} sample;

/* The end of the expression opening at s (just after "${"): the '}' that balances it,
 * skipping quoted strings; NULL when unterminated. */
static const char *expr_end(const char *s) {
    int depth = 0;
    for (; *s; s++) {
        if (*s == '\'' || *s == '"') {
            char q = *s++;
            while (*s && *s != q)
                s += s[0] == '\\' && s[1] ? 2 : 1;
            if (!*s)
                return NULL;
        } else if (*s == '{') {
            depth++;
        } else if (*s == '}') {
            if (depth-- == 0)
                return s;
        }
    }
    return NULL;
}

static int has_word(const char *e, size_t n, const char *w) {
    size_t wn = strlen(w);
    for (size_t i = 0; i + wn <= n; i++)
        if (!strncasecmp(e + i, w, wn))
            return 1;
    return 0;
}

/* Appends to out the value a rule would give expression e[0..n) on message s. */
static int expr_value(const char *e, size_t n, const sample *s, act_buf *out) {
    const char *p = e;
    while (p < e + n && (*p == ' ' || *p == '\t'))
        p++;
    if (!strncasecmp(p, "topic(", 6)) {
        int k = atoi(p + 6);
        if (k <= 0)
            return act_buf_puts(out, s->topic);
        const char *t = s->topic;
        for (int i = 1; i < k && t; i++)
            t = strchr(t, '/') ? strchr(t, '/') + 1 : NULL;
        if (!t)
            return 0; /* past the last level: Undefined, substituted as "" */
        const char *slash = strchr(t, '/');
        return act_buf_put(out, t, slash ? (size_t)(slash - t) : strlen(t));
    }
    size_t pn = n - (size_t)(p - e);
    while (pn && (p[pn - 1] == ' ' || p[pn - 1] == '\t'))
        pn--;
    if (has_word(p, pn, "clientid"))
        return act_buf_puts(out, "bench-client");
    if (has_word(p, pn, "timestamp") || (pn == 2 && !strncmp(p, "ts", 2)))
        return act_buf_printf(out, "%lld", s->ts);
    if (has_word(p, pn, "newuuid"))
        return act_buf_printf(out, "00000000-0000-4000-8000-%012llx", s->seq);
    if (has_word(p, pn, "temp"))
        return act_buf_printf(out, "%.1f", s->temperature);
    if (has_word(p, pn, "hum"))
        return act_buf_printf(out, "%.1f", s->humidity);
    if (has_word(p, pn, "seq"))
        return act_buf_printf(out, "%lld", s->seq);
    return act_buf_puts(out, s->device); /* deviceId and anything else: a device id */
}

/* Substitutes template t for message s into out (cleared first). */
static int fill_template(const char *t, const sample *s, act_buf *out) {
    out->len = 0;
    if (act_buf_put(out, "", 0) != 0)
        return -1;
    while (*t) {
        if (t[0] == '$' && t[1] == '$') { /* $$ is a literal $ */
            if (act_buf_put(out, "$", 1) != 0)
                return -1;
            t += 2;
        } else if (t[0] == '$' && t[1] == '{') {
            const char *end = expr_end(t + 2);
            if (!end)
                return -1;
            if (expr_value(t + 2, (size_t)(end - t - 2), s, out) != 0)
                return -1;
            t = end + 1;
        } else {
            const char *next = t + 1;
            while (*next && *next != '$')
                next++;
            if (act_buf_put(out, t, (size_t)(next - t)) != 0)
                return -1;
            t = next;
        }
    }
    return 0;
}

/* One prebuilt message. */
typedef struct variant {
    char topic[64];
    size_t topic_len;
    act_buf payload;
    act_buf *vals;     /* the substituted templates */
    act_fields fs;     /* points into vals */
    long long received_ms;
} variant;

/* }====== */

/* A copy of the pipeline's counters. */
typedef struct snap {
    uint64_t delivered, failed, retries, overflow, batches, batch_msgs;
    uint64_t latency[ACT_LAT_BUCKETS + 1], latency_sum_ns;
} snap;

static void take(const act_pipe_stats *st, snap *s) {
    s->delivered = atomic_load(&st->delivered);
    s->failed = atomic_load(&st->failed);
    s->retries = atomic_load(&st->retries);
    s->overflow = atomic_load(&st->overflow);
    s->batches = atomic_load(&st->batches);
    s->batch_msgs = atomic_load(&st->batch_msgs);
    for (int b = 0; b <= ACT_LAT_BUCKETS; b++)
        s->latency[b] = atomic_load(&st->latency[b]);
    s->latency_sum_ns = atomic_load(&st->latency_sum_ns);
}

static uint64_t settled(const act_pipe_stats *st) {
    return atomic_load_explicit(&st->delivered, memory_order_relaxed) +
           atomic_load_explicit(&st->failed, memory_order_relaxed);
}

/* Submits n messages (cycling over vars) and waits until all of them are delivered or
 * failed; done0 is the pipeline's settled count before. window > 0: at most that many
 * outstanding; rate > 0: message i leaves at start + i / rate. -1 on OOM. */
static int run(act_pipe *pipe, const variant *vars, size_t nvar, long long n, long long window,
               double rate, uint64_t done0) {
    const act_pipe_stats *st = act_pipe_stats_of(pipe);
    const double t0 = mono_s();
    for (long long i = 0; i < n; i++) {
        const variant *x = &vars[(size_t)i % nvar];
        while (window > 0 && i - (long long)(settled(st) - done0) >= window) {
            struct timespec d = {0, 50000};
            nanosleep(&d, NULL);
        }
        eng_msg *m = eng_msg_new(x->topic, x->topic_len, x->payload.p, x->payload.len, NULL,
                                 "bench-client", ENG_SRC_MQTT);
        if (!m)
            return -1;
        m->received_ms = x->received_ms;
        act_pipe_submit(pipe, m, x->payload.p, x->payload.len, &x->fs, 0); /* overflow: counted */
        eng_msg_free(m);
        if (rate > 0) {
            double due = t0 + (double)(i + 1) / rate, now = mono_s();
            if (due > now) {
                double w = due - now;
                struct timespec d = {(time_t)w, (long)((w - (double)(time_t)w) * 1e9)};
                nanosleep(&d, NULL);
            }
        }
    }
    uint64_t last = 0;
    double last_change = mono_s();
    for (;;) {
        uint64_t done = settled(st) - done0;
        if (done >= (uint64_t)n)
            break;
        double now = mono_s();
        if (done != last) {
            last = done;
            last_change = now;
        } else if (now - last_change > 120) {
            fprintf(stderr, "bench_actions: no progress for 120 s (%llu of %lld done)\n",
                    (unsigned long long)done, n);
            break;
        }
        struct timespec d = {0, 500000}; /* 0.5 ms: negligible CPU, fine enough resolution */
        nanosleep(&d, NULL);
    }
    return 0;
}

/* The upper bound (us) of latency bucket b; 0 for +Inf. */
static double bucket_le_us(int b) { return b < ACT_LAT_BUCKETS ? (double)(1ull << b) : 0; }

/* The bucket holding quantile q of the histogram, as its upper bound in us (-1: +Inf). */
static double quantile_us(const uint64_t *h, uint64_t total, double q) {
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.5), acc = 0;
    if (want == 0)
        want = 1;
    for (int b = 0; b <= ACT_LAT_BUCKETS; b++) {
        acc += h[b];
        if (acc >= want)
            return b < ACT_LAT_BUCKETS ? bucket_le_us(b) : -1;
    }
    return -1;
}

static void fmt_lat(char *out, size_t cap, double us) {
    if (us < 0)
        snprintf(out, cap, "> %.0f ms", bucket_le_us(ACT_LAT_BUCKETS - 1) / 1000);
    else if (us >= 1000)
        snprintf(out, cap, "<= %.1f ms", us / 1000);
    else
        snprintf(out, cap, "<= %.0f us", us);
}

/* Prints the first dead letter (the reason of the first failure) on stderr. */
static void show_first_failure(act_dlq *dlq) {
    eng_error e;
    char *j = act_dlq_list_json(dlq, NULL, 0, 1, 0, &e);
    if (!j)
        return;
    cJSON *doc = cJSON_Parse(j);
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(doc, "records");
    const cJSON *r0 = cJSON_GetArrayItem(recs, 0);
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(r0, "errors");
    const cJSON *last = cJSON_GetArrayItem(errs, cJSON_GetArraySize(errs) - 1);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(last, "message");
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(r0, "attempts");
    if (cJSON_IsString(msg))
        fprintf(stderr, "bench_actions: first failure (after %d attempts): %s\n",
                cJSON_IsNumber(att) ? att->valueint : 0, msg->valuestring);
    cJSON_Delete(doc);
    free(j);
}

static int rm_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int main(int argc, char **argv) {
    const char *action_json = NULL;
    long long count = 0, window = -1, warmup = 0;
    int ntopics = 100, payload_bytes = 0, as_json = 0;
    double rate = 0;
    static const struct option opts[] = {
        {"action", required_argument, 0, 'a'},  {"count", required_argument, 0, 'n'},
        {"topics", required_argument, 0, 't'},  {"payload-bytes", required_argument, 0, 'b'},
        {"rate", required_argument, 0, 'r'},    {"window", required_argument, 0, 'w'},
        {"warmup", required_argument, 0, 'u'},  {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': action_json = optarg; break;
        case 'n': count = atoll(optarg); break;
        case 't': ntopics = atoi(optarg); break;
        case 'b': payload_bytes = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'w': window = atoll(optarg); break;
        case 'u': warmup = atoll(optarg); break;
        case 'j': as_json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (!action_json || count <= 0 || ntopics <= 0 || payload_bytes < 0 || optind != argc) {
        usage(stderr);
        return 64;
    }

    int rc = 1;
    cJSON *spec = NULL;
    act_dlq *dlq = NULL;
    act_pipe *pipe = NULL;
    act_instance *inst = NULL;
    variant *vars = NULL;
    size_t nvar = 0, payload_len_sum = 0;
    char *padding = NULL;
    size_t ntpl = 0;
    char tmp[] = "/tmp/bench_actions.XXXXXX";
    int have_tmp = 0;
    eng_error e = {0};
    eng_config cfg;
    eng_config_defaults(&cfg);
    eng_log_set_level(ENG_LOG_ERROR); /* one "action.failed" line per message would drown us */

    /* one lane may receive the whole run (a single topic, or a one-lane action) */
    cfg.action_queue_depth = count > 0x7fffffff ? 0x7fffffff : (int)count;

    spec = cJSON_Parse(action_json);
    if (!cJSON_IsObject(spec) || !spec->child || spec->child->next || !spec->child->string) {
        fprintf(stderr, "bench_actions: --action must be one JSON object {\"<type>\": {...}}\n");
        goto out;
    }
    const char *type = spec->child->string;
    const act_vtable *vt = act_lookup(type);
    if (!vt) {
        fprintf(stderr, "bench_actions: unknown action type \"%s\" (known: %s)\n", type,
                act_names());
        goto out;
    }
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "bench_actions: mkdtemp: %s\n", strerror(errno));
        goto out;
    }
    have_tmp = 1;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", tmp);
    /* a file action writes beneath /tmp (actions.sh's work dir is there) */
    snprintf(cfg.file_base_dir, sizeof cfg.file_base_dir, "/tmp");
    eng_env env = {.cfg = &cfg};
    if (!(dlq = act_dlq_open(tmp, cfg.dlq_max_bytes, cfg.dlq_max_age_s, eng_env_host(&env),
                             &e))) {
        fprintf(stderr, "bench_actions: dead-letter store: %s\n", e.message);
        goto out;
    }
    env.dlq = dlq;
    act_config ac = {.params = spec->child, .rule_name = "bench", .host = eng_env_host(&env)};
    if (vt->open(&ac, &inst, &e) != 0) {
        fprintf(stderr, "bench_actions: %s: %s: %s\n", type, e.type ? e.type : "error",
                e.message);
        goto out;
    }
    inst->vt = vt; /* the engine sets it (rule.c) */
    const char *const *tpl = NULL;
    ntpl = vt->templates(inst, &tpl);
    if (ntpl > ACT_MAX_FIELDS) {
        fprintf(stderr, "bench_actions: %zu templates (at most %d)\n", ntpl, ACT_MAX_FIELDS);
        vt->close(inst);
        goto out;
    }
    int lanes = inst->lanes > 0 ? inst->lanes : 1;
    size_t max_batch = inst->max_batch ? inst->max_batch : 1;
    uint64_t revision = 1;
    act_owner owner = {.rule_name = "bench", .rule_revision = &revision, .index = 0,
                       .dlq = dlq, .host = eng_env_host(&env)};
    if (!(pipe = act_pipe_new_take(inst, &owner, &e))) { /* closes inst on failure */
        fprintf(stderr, "bench_actions: pipeline: %s\n", e.message);
        goto out;
    }

    /* The messages: nvar prebuilt variants (topic, payload, substituted templates), so the
     * timed loop costs what a worker's hand-off costs and not our formatting. */
    nvar = (size_t)ntopics > 1024 ? (size_t)ntopics : 1024;
    if ((long long)nvar > count)
        nvar = (size_t)count;
    if (!(vars = calloc(nvar, sizeof *vars)) ||
        !(padding = malloc((size_t)payload_bytes + 1)))
        goto oom;
    memset(padding, 'x', (size_t)payload_bytes);
    for (size_t v = 0; v < nvar; v++) {
        variant *x = &vars[v];
        long long k = (long long)(v % (size_t)ntopics);
        char device[32];
        snprintf(device, sizeof device, "dev-%06lld", k);
        x->topic_len = (size_t)snprintf(x->topic, sizeof x->topic, "sensors/%s/telemetry",
                                        device);
        sample sm = {.topic = x->topic, .device = device, .seq = (long long)v,
                     .temperature = (double)((v * 37) % 1000) / 10.0,
                     .humidity = (double)((v * 53) % 1000) / 10.0,
                     .ts = 1795000000000LL + (long long)v};
        act_buf *pl = &x->payload;
        if (act_buf_printf(pl, "{\"deviceId\":\"%s\",\"seq\":%lld,\"temperature\":%.1f,"
                           "\"humidity\":%.1f,\"ts\":%lld", device, sm.seq, sm.temperature,
                           sm.humidity, sm.ts) != 0)
            goto oom;
        if ((size_t)payload_bytes > pl->len + 10) {
            size_t pad = (size_t)payload_bytes - pl->len - 10;
            if (act_buf_puts(pl, ",\"pad\":\"") != 0 || act_buf_put(pl, padding, pad) != 0 ||
                act_buf_puts(pl, "\"") != 0)
                goto oom;
        }
        if (act_buf_puts(pl, "}") != 0)
            goto oom;
        x->fs.n = ntpl;
        if (ntpl && !(x->vals = calloc(ntpl, sizeof *x->vals)))
            goto oom;
        for (size_t j = 0; j < ntpl; j++) {
            if (fill_template(tpl[j], &sm, &x->vals[j]) != 0) {
                fprintf(stderr, "bench_actions: cannot fill template \"%s\"\n", tpl[j]);
                goto out_close;
            }
            x->fs.f[j] = x->vals[j].p;
            x->fs.len[j] = x->vals[j].len;
        }
        x->received_ms = sm.ts;
        payload_len_sum += pl->len;
    }
    if (window < 0) /* default: enough for every lane to have a few batches queued */
        window = 4LL * (long long)max_batch * lanes > 20000 ? 4LL * (long long)max_batch * lanes
                                                           : 20000;
    const act_pipe_stats *st = act_pipe_stats_of(pipe);
    double warmup_s = 0;
    if (warmup > 0) { /* connections, metadata, prepared statements: not the steady state */
        double w0 = mono_s();
        if (run(pipe, vars, nvar, warmup, window, 0, 0) != 0)
            goto oom;
        warmup_s = mono_s() - w0;
    }
    snap s0, s1;
    take(st, &s0);
    const double t0 = mono_s(), c0 = cpu_s();
    if (run(pipe, vars, nvar, count, window, rate, s0.delivered + s0.failed) != 0)
        goto oom;
    const double t1 = mono_s(), c1 = cpu_s();
    take(st, &s1);

    uint64_t delivered = s1.delivered - s0.delivered, failed = s1.failed - s0.failed;
    uint64_t retries = s1.retries - s0.retries, overflow = s1.overflow - s0.overflow;
    uint64_t batches = s1.batches - s0.batches, batch_msgs = s1.batch_msgs - s0.batch_msgs;
    uint64_t hist[ACT_LAT_BUCKETS + 1], nlat = 0;
    for (int b = 0; b <= ACT_LAT_BUCKETS; b++)
        nlat += hist[b] = s1.latency[b] - s0.latency[b];
    double lat_mean_us = nlat ? (double)(s1.latency_sum_ns - s0.latency_sum_ns) / 1e3 /
                                    (double)nlat : 0;
    double p50 = quantile_us(hist, nlat, 0.50), p90 = quantile_us(hist, nlat, 0.90),
           p99 = quantile_us(hist, nlat, 0.99), p999 = quantile_us(hist, nlat, 0.999);
    double secs = t1 - t0, cpu = c1 - c0;
    double rate_out = secs > 0 ? (double)delivered / secs : 0;
    double cpu_us = (double)count > 0 ? cpu * 1e6 / (double)count : 0;
    double mean_payload = nvar ? (double)payload_len_sum / (double)nvar : 0;
    double mean_batch = batches ? (double)batch_msgs / (double)batches : 0;

    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "action", type);
        cJSON_AddNumberToObject(o, "messages", (double)count);
        cJSON_AddNumberToObject(o, "payload_bytes", (double)mean_payload);
        cJSON_AddNumberToObject(o, "window", (double)window);
        cJSON_AddNumberToObject(o, "warmup_messages", (double)warmup);
        cJSON_AddNumberToObject(o, "warmup_seconds", warmup_s);
        cJSON_AddNumberToObject(o, "topics", ntopics);
        cJSON_AddNumberToObject(o, "lanes", lanes);
        cJSON_AddNumberToObject(o, "max_batch", (double)max_batch);
        cJSON_AddNumberToObject(o, "rate", rate);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "msgs_per_s", rate_out);
        cJSON_AddNumberToObject(o, "cpu_seconds", cpu);
        cJSON_AddNumberToObject(o, "cpu_us_per_msg", cpu_us);
        cJSON_AddNumberToObject(o, "delivered", (double)delivered);
        cJSON_AddNumberToObject(o, "failed", (double)failed);
        cJSON_AddNumberToObject(o, "retries", (double)retries);
        cJSON_AddNumberToObject(o, "overflow", (double)overflow);
        cJSON_AddNumberToObject(o, "batches", (double)batches);
        cJSON_AddNumberToObject(o, "mean_batch", mean_batch);
        cJSON_AddNumberToObject(o, "latency_mean_us", lat_mean_us);
        /* bucket upper bounds in us; null: beyond the histogram's last bound */
        const char *names[] = {"latency_p50_le_us", "latency_p90_le_us", "latency_p99_le_us",
                               "latency_p999_le_us"};
        double qs[] = {p50, p90, p99, p999};
        for (int i = 0; i < 4; i++) {
            if (qs[i] < 0)
                cJSON_AddNullToObject(o, names[i]);
            else
                cJSON_AddNumberToObject(o, names[i], qs[i]);
        }
        char *s = cJSON_PrintUnformatted(o);
        puts(s ? s : "{}");
        free(s);
        cJSON_Delete(o);
    } else {
        char l50[32] = "n/a", l90[32] = "n/a", l99[32] = "n/a", l999[32] = "n/a";
        if (nlat) {
            fmt_lat(l50, sizeof l50, p50);
            fmt_lat(l90, sizeof l90, p90);
            fmt_lat(l99, sizeof l99, p99);
            fmt_lat(l999, sizeof l999, p999);
        }
        printf("action          %s (%d lanes, batches of up to %zu)\n", type, lanes, max_batch);
        printf("messages        %lld (%d topics, %.0f-byte payloads, ", count, ntopics,
               mean_payload);
        if (rate > 0)
            printf("paced at %.0f/s", rate);
        else
            printf("flood");
        if (window > 0)
            printf(", at most %lld outstanding)\n", window);
        else
            printf(", unbounded)\n");
        printf("seconds         %.3f", secs);
        if (warmup > 0)
            printf(" (after a warm-up of %lld messages in %.3f s)", warmup, warmup_s);
        printf("\n");
        printf("msgs/s          %.0f\n", rate_out);
        printf("CPU seconds     %.3f (user+sys of this process)\n", cpu);
        printf("CPU per msg     %.2f us\n", cpu_us);
        printf("delivered       %llu\n", (unsigned long long)delivered);
        printf("failed          %llu (retries %llu, overflow %llu)\n", (unsigned long long)failed,
               (unsigned long long)retries, (unsigned long long)overflow);
        printf("mean batch      %.1f (%llu batches)\n", mean_batch, (unsigned long long)batches);
        printf("latency         mean %.0f us, p50 %s, p90 %s, p99 %s, p99.9 %s "
               "(submit to delivered%s)\n", lat_mean_us, l50, l90, l99, l999,
               rate > 0 ? "" : ", time queued included");
    }
    fflush(stdout);
    if (failed || delivered != (uint64_t)count) {
        fprintf(stderr, "bench_actions: FAILED: %llu of %lld messages delivered, %llu failed\n",
                (unsigned long long)delivered, count, (unsigned long long)failed);
        show_first_failure(dlq);
        rc = 1;
    } else {
        rc = 0;
    }
    goto out_close;
oom:
    fprintf(stderr, "bench_actions: out of memory\n");
out_close:
    act_pipe_close(pipe);
    act_pipe_free(pipe);
    pipe = NULL;
out:
    act_pipe_free(pipe);
    for (size_t v = 0; vars && v < nvar; v++) {
        for (size_t j = 0; vars[v].vals && j < ntpl; j++)
            act_buf_deinit(&vars[v].vals[j]);
        free(vars[v].vals);
        act_buf_deinit(&vars[v].payload);
    }
    free(vars);
    free(padding);
    act_dlq_close(dlq);
    if (have_tmp)
        rm_tree(tmp);
    cJSON_Delete(spec);
    return rc;
}

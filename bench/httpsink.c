/*
 * httpsink.c -- a fast HTTP/1.1 keep-alive sink for the HTTP action's benchmark.
 *
 *   httpsink PORT IDLE_SECONDS [--threads N] [--per-connection]
 *
 * Listens on 127.0.0.1:PORT (0: any free port) with libmicrohttpd, reads the body of every
 * request, answers 200 "ok" (one shared response, so an answer costs no allocation) and keeps
 * the connection open. It counts requests, body bytes and messages: a body that is a JSON array
 * (the HTTP action's batches) counts one message per top-level element, any other body one.
 * The first stdout line is the port; on SIGTERM/SIGINT, or after IDLE_SECONDS without a
 * request (so a forgotten sink stops by itself), it prints one JSON line with its counts and
 * its own CPU time, and exits.
 *
 * Threads: by default an epoll loop on N threads (default 1: the benchmark machine has two
 * cores and the client needs the other); --per-connection uses a thread per connection
 * instead. Rejected: a hand-written epoll server (faster still, but libmicrohttpd is what the
 * service itself speaks HTTP with, and it parses requests properly).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <microhttpd.h>

static atomic_ullong requests, posts, bytes, messages;
static atomic_llong last_ms;
static volatile sig_atomic_t stop;
static struct MHD_Response *ok;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig) { stop = sig; }

/* Per-request state: the array scanner's position, kept across body chunks. */
typedef struct req {
    int started;  /* saw the first non-space byte */
    int array;    /* the body is a JSON array */
    int depth;    /* nesting inside the top-level array */
    int in_str, esc;
    int pending;  /* the current element has content */
    unsigned long long elems;
} req;

static void scan(req *r, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!r->started) {
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                continue;
            r->started = 1;
            r->array = c == '[';
            if (r->array)
                continue;
        }
        if (!r->array)
            return;
        if (r->in_str) {
            if (r->esc)
                r->esc = 0;
            else if (c == '\\')
                r->esc = 1;
            else if (c == '"')
                r->in_str = 0;
            continue;
        }
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '"') {
            r->in_str = 1;
            r->pending = 1;
        } else if (c == '{' || c == '[') {
            r->depth++;
            r->pending = 1;
        } else if ((c == '}' || c == ']') && r->depth > 0) {
            r->depth--;
        } else if (c == ']' || (c == ',' && r->depth == 0)) { /* end of an element */
            if (r->pending)
                r->elems++;
            r->pending = 0;
        } else {
            r->pending = 1;
        }
    }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **con_cls) {
    req *r = *con_cls;
    if (!r) { /* first call: headers only */
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *con_cls = r;
        return MHD_YES;
    }
    if (*size) {
        atomic_fetch_add_explicit(&bytes, *size, memory_order_relaxed);
        scan(r, data, *size);
        *size = 0;
        return MHD_YES;
    }
    atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
    if (!strcmp(method, "POST")) {
        atomic_fetch_add_explicit(&posts, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&messages, r->array ? r->elems : 1, memory_order_relaxed);
    }
    atomic_store_explicit(&last_ms, now_ms(), memory_order_relaxed);
    return MHD_queue_response(c, MHD_HTTP_OK, ok);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    free(*con_cls);
    *con_cls = NULL;
}

static atomic_uint connections;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&connections, 1);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: httpsink PORT IDLE_SECONDS [--threads N] [--per-connection]\n");
        return 64;
    }
    int port = atoi(argv[1]);
    double idle_s = atof(argv[2]);
    unsigned threads = 1;
    int per_conn = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--per-connection"))
            per_conn = 1;
        else {
            fprintf(stderr, "httpsink: unknown argument %s\n", argv[i]);
            return 64;
        }
    }
    if (port < 0 || port > 65535 || idle_s <= 0 || threads < 1) {
        fprintf(stderr, "httpsink: bad PORT or IDLE_SECONDS\n");
        return 64;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static const char body[] = "ok";
    ok = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!ok)
        return 1;
    MHD_add_response_header(ok, "Content-Type", "text/plain");

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    flags |= per_conn ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL : MHD_USE_EPOLL;
    struct MHD_Daemon *d;
    if (per_conn || threads == 1) /* libmicrohttpd warns about a pool of one */
        d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                             MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0, MHD_OPTION_END);
    else
        d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                             MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                             MHD_OPTION_THREAD_POOL_SIZE, threads,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "httpsink: cannot listen on 127.0.0.1:%d\n", port);
        MHD_destroy_response(ok);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);

    atomic_store(&last_ms, now_ms());
    const char *why = "idle";
    while (!stop) {
        if (now_ms() - atomic_load(&last_ms) > (long long)(idle_s * 1000))
            break;
        usleep(100 * 1000);
    }
    if (stop)
        why = stop == SIGTERM ? "SIGTERM" : "SIGINT";
    MHD_stop_daemon(d);
    MHD_destroy_response(ok);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("{\"exit\":\"%s\",\"connections\":%u,\"requests\":%llu,\"posts\":%llu,"
           "\"messages\":%llu,\"body_bytes\":%llu,\"cpu_seconds\":%.3f}\n",
           why, atomic_load(&connections), (unsigned long long)atomic_load(&requests),
           (unsigned long long)atomic_load(&posts), (unsigned long long)atomic_load(&messages),
           (unsigned long long)atomic_load(&bytes), cpu);
    return 0;
}

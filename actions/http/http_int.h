/*
 * http_int.h -- private header of the HTTP action: the instance, and the pure request-building
 * half (http_batch.c) that deliver() and format() share, so what the unit tests read from
 * format() is byte for byte what goes on the wire.
 *
 * Ownership: everything here borrows its arguments; act_http__check() hands back a CURLU the
 * caller frees with curl_url_cleanup().
 * Thread: any (no shared mutable state), except that an act_http's lanes belong to their
 * delivery threads (http.c).
 */
#ifndef SLUICE_ACT_HTTP_INT_H
#define SLUICE_ACT_HTTP_INT_H

#include <curl/curl.h>

#include "../action.h"

/* AWS's HttpAction limits (the URL bound is ours: 2 KiB, as AWS's 2000 characters). */
#define ACT_HTTP_LANES 4
#define ACT_HTTP_MAX_URL 2048
#define ACT_HTTP_MAX_HEADERS 100
#define ACT_HTTP_MAX_KEY 256
#define ACT_HTTP_MAX_VALUE 8192
#define ACT_HTTP_SNIPPET 200     /* response body bytes quoted in a failure message */

/* AWS's batchConfig defaults and valid ranges (API reference, BatchConfig; developer guide,
 * "Batching HTTP action messages"). */
#define ACT_HTTP_BATCH_OPEN_MS 20
#define ACT_HTTP_BATCH_SIZE 10
#define ACT_HTTP_BATCH_BYTES 5120

typedef struct act_http act_http;

typedef struct act_http_lane {
    CURL *h;                       /* created on first use, reused: keeps the connection */
    const act_http *owner;
    char refused[160];             /* set when open_socket() refused the address to connect to */
    act_buf body;                  /* the request body, reused from request to request */
    char resp[ACT_HTTP_SNIPPET + 1];
    size_t resp_len;
    char errbuf[CURL_ERROR_SIZE];
} act_http_lane;

struct act_http {
    act_instance base;
    char **tpl;                    /* tpl[0] the URL, then key, value for each header */
    size_t ntpl, nheaders;
    int batching;                  /* batchConfig in force: bodies are JSON arrays */
    int across_topics;             /* batchConfig.batchAcrossTopics */
    char *allowed;                 /* copy of the service's allow-list ("" = any host) */
    long timeout_ms, connect_timeout_ms;
    int allow_link_local;          /* actions.http.allowLinkLocal */
    act_http_lane lanes[ACT_HTTP_LANES];
};

/* 1 when host (as libcurl's URL parser returns it: IPv6 in brackets) is in the comma-separated
 * allow-list (case-insensitive; an empty list allows every host). Thread: any. */
int act_http__host_allowed(const char *list, const char *host);

/* 1 when sa (AF_INET or AF_INET6) is an address no HTTP action may connect to unless the
 * service allows link-local ones (h->allow_link_local): 169.254.0.0/16 and fe80::/10 (link-local,
 * where cloud metadata services live), the metadata addresses fd00:ec2::254 (AWS) and
 * 100.100.100.200 (Alibaba), and any of them as an IPv4-mapped or NAT64 (64:ff9b::/96) IPv6
 * address. why[0..cap) then says which. Thread: any. */
int act_http__addr_refused(const act_http *h, const struct sockaddr *sa, char *why, size_t cap);

/* The same for a host as libcurl's URL parser returns it, when it is an IP literal (names:
 * 0, they are checked at connect time). Thread: any. */
int act_http__host_refused(const act_http *h, const char *host, char *why, size_t cap);

/* Lane lane's curl handle, created and configured on first use (the address check above
 * included). NULL when libcurl cannot start. Thread: the lane's. */
CURL *act_http__lane_handle(act_http *h, int lane);

/* Checks message m's substituted URL (http/https, parses, host allowed) and headers (keys are
 * non-empty tokens of at most ACT_HTTP_MAX_KEY bytes and do not set the framing headers;
 * values hold no CR, LF or NUL). Returns 0 and, when u is not NULL, the parsed URL in *u
 * (the caller frees it); or -1 with a message in err. Thread: any. */
int act_http__check(const act_http *h, const act_msg *m, CURLU **u, char *err, size_t cap);

/* The URL part of act_http__check(), for url[0..len) (NUL-terminated). Thread: any. */
int act_http__check_url(const act_http *h, const char *url, size_t len, CURLU **u, char *err,
                        size_t cap);

/* Checks a header key that must go out as it is: a token, not a framing header. NULL when it
 * is fine, else what is wrong (static text). Thread: any. */
const char *act_http__bad_key(const char *k, size_t n);

/* The end (exclusive) of the request that starts at batch[i]: without batching i + 1; with
 * batching the longest run of consecutive messages with the same URL, headers (and topic,
 * unless batchAcrossTopics) whose body fits max_batch and max_batch_bytes (a first message
 * that alone is bigger still goes, by itself). Thread: any. */
size_t act_http__group(const act_http *h, const act_msg *const *batch, size_t n, size_t i);

/* Appends the body of one request for batch[0..n) to out: the payload as it is, or with
 * batching a JSON array of the payloads (a payload that is not JSON becomes a JSON string).
 * 0 or -1 on OOM. Thread: any. */
int act_http__body(const act_http *h, const act_msg *const *batch, size_t n, act_buf *out);

/* 1 when the message's headers set Content-Type themselves (then ours is not added).
 * Thread: any. */
int act_http__has_ctype(const act_http *h, const act_msg *m);

/* The format() method: each request as "POST <url>\n<header>: <value>\n...\n\n<body>\n",
 * the requests of batch[0..n) one after the other, grouped as deliver() groups them. 0, or -1
 * with the message's check error (or "out of memory") as the whole of out. Thread: any. */
int act_http__format(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out);

#endif

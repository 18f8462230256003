/*
 * sigv4.c -- AWS Signature Version 4, the verifying side: what the AWS CLI, boto3 and every
 * AWS SDK put in "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iot/
 * aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>".
 *
 * The server rebuilds the client's canonical request from the request as it arrived,
 *
 *     METHOD \n canonical path \n canonical query \n canonical headers \n signed headers \n
 *     hex(SHA-256(body))
 *
 * signs it with a key derived from the secret (HMAC-SHA256 chained over date, region, service
 * and "aws4_request") and compares the two signatures in constant time. Only the raw request
 * will do: the path and query as sent, before any unescaping, because that is what the client
 * hashed. The path is canonicalized the way botocore and AWS do it for every service but S3:
 * empty and "." segments dropped, ".." applied, and then every byte that is not unreserved
 * percent-encoded *again*, so the topic "a/b", sent as /topics/a%2Fb, is signed as
 * /topics/a%252Fb. Each query name and value is decoded and re-encoded (a no-op on what SDKs
 * send, which is already strictly encoded) and the pairs are sorted. Signed headers are
 * trimmed, inner runs of spaces collapsed, repeated headers joined with commas.
 *
 * This file is the mechanism and knows no credentials: auth.c decides which keys, services
 * and roles are accepted. AWS's published test suite (aws-sig-v4-test-suite) checks it in
 * tests/engine/api/test_sigv4.c. Rejected: accepting a presigned query string or an
 * UNSIGNED-PAYLOAD; neither is what the CLI or an SDK sends to these routes, and each would be
 * a second, less-tested way in.
 */
#include "api_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void hex(const unsigned char *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void eng_sigv4_sha256_hex(const void *data, size_t n, char out[65]) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data ? data : (const void *)"", n, d);
    hex(d, sizeof d, out);
}

/* Percent-encodes every byte of s[0..n) that is not unreserved (uppercase hex). */
static void put_encoded(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c))
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

/* {====== canonical request */

/* The path as sent, with empty and "." segments dropped and ".." applied (botocore's
 * remove_dot_segments), each segment encoded again. Returns -1 on OOM. */
static int canonical_path(FILE *f, const char *path) {
    size_t n = strlen(path), nseg = 0;
    struct seg {
        const char *p;
        size_t n;
    } *segs = malloc((n / 2 + 2) * sizeof *segs); /* a segment takes at least "/x" */
    if (!segs)
        return -1;
    for (const char *p = path; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && !memcmp(p, "..", 2)) {
            if (nseg)
                nseg--;
        } else if (len && !(len == 1 && *p == '.')) {
            segs[nseg].p = p;
            segs[nseg++].n = len;
        }
        p += len + (e ? 1 : 0);
    }
    fputc('/', f);
    for (size_t i = 0; i < nseg; i++) {
        if (i)
            fputc('/', f);
        put_encoded(f, segs[i].p, segs[i].n);
    }
    if (nseg && n && path[n - 1] == '/')
        fputc('/', f);
    free(segs);
    return 0;
}

/* One query name or value: decoded, then strictly encoded (malloc'd). */
static char *query_component(const char *s, size_t n) {
    char *raw = malloc(n + 1), *out = malloc(n * 3 + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    size_t len = eng_api__unescape(s, n, raw, 0), o = 0;
    for (size_t i = 0; i < len; i++) {
        static const char digits[] = "0123456789ABCDEF";
        unsigned char c = (unsigned char)raw[i];
        if (unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        }
    }
    out[o] = '\0';
    free(raw);
    return out;
}

typedef struct qpair {
    char *k, *v;
} qpair;

static int by_key_then_value(const void *a, const void *b) {
    const qpair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static int canonical_query(FILE *f, const char *q) {
    if (!q || !*q)
        return 0;
    qpair *v = calloc(strlen(q) / 2 + 1, sizeof *v); /* a pair takes at least "k&" */
    if (!v)
        return -1;
    int rc = 0;
    size_t np = 0, kl, vl;
    const char *k, *val;
    while (!rc && eng_api__query_next(&q, &k, &kl, &val, &vl)) {
        v[np].k = query_component(k, kl);
        v[np].v = query_component(val, vl);
        rc = v[np].k && v[np].v ? 0 : -1;
        np++;
    }
    if (!rc) {
        qsort(v, np, sizeof *v, by_key_then_value);
        for (size_t i = 0; i < np; i++)
            fprintf(f, "%s%s=%s", i ? "&" : "", v[i].k, v[i].v);
    }
    for (size_t i = 0; i < np; i++) {
        free(v[i].k);
        free(v[i].v);
    }
    free(v);
    return rc;
}

/* A header value trimmed, with inner runs of spaces and tabs collapsed to one space. */
static void put_trimmed(FILE *f, const char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    int space = 0;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t') {
            space = 1;
            continue;
        }
        if (space)
            fputc(' ', f);
        space = 0;
        fputc(*s, f);
    }
}

/* "name:value1,value2\n" for each signed header, in the order SignedHeaders names them. */
static void canonical_headers(FILE *f, const eng_api_request *rq, const char *signed_headers) {
    for (const char *p = signed_headers; *p;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        fprintf(f, "%.*s:", (int)len, p);
        int first = 1;
        for (size_t i = 0; i < rq->nheaders; i++) {
            const char *name = rq->headers[i].name;
            if (strlen(name) != len || strncasecmp(name, p, len))
                continue;
            if (!first)
                fputc(',', f);
            first = 0;
            put_trimmed(f, rq->headers[i].value ? rq->headers[i].value : "");
        }
        fputc('\n', f);
        p += len + (e ? 1 : 0);
    }
}

char *eng_sigv4_canonical_request(const eng_api_request *rq, const char *signed_headers,
                                  const char *payload_hash) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "%s\n", rq->method);
    int rc = canonical_path(f, rq->path ? rq->path : "");
    fputc('\n', f);
    rc |= canonical_query(f, rq->query);
    fputc('\n', f);
    canonical_headers(f, rq, signed_headers);
    fprintf(f, "\n%s\n%s", signed_headers, payload_hash);
    if (fclose(f) != 0 || rc) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* }====== */

/* {====== signing */

void eng_sigv4_sign(const char *secret, const eng_sigv4 *s, const char *creq, char out[65]) {
    char key[4 + 129], hash[65], sts[400];
    unsigned char k[EVP_MAX_MD_SIZE];
    unsigned int kl;
    snprintf(key, sizeof key, "AWS4%s", secret);
    eng_sigv4_sha256_hex(creq, strlen(creq), hash);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", s->amz_date,
             s->scope_date, s->region, s->service, hash);
    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
    const char *chain[] = {s->scope_date, s->region, s->service, "aws4_request", sts};
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)chain[0], strlen(chain[0]),
         k, &kl);
    for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++)
        HMAC(EVP_sha256(), k, (int)kl, (const unsigned char *)chain[i], strlen(chain[i]), k, &kl);
    hex(k, kl, out);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(k, sizeof k);
}

/* }====== */

/* {====== the Authorization header */

static int bad(char *msg, size_t cap, const char *text) {
    snprintf(msg, cap, "%s", text);
    return ENG_AUTH_E_INCOMPLETE;
}

/* Copies s[0..n) into dst[cap] when it fits and every byte is allowed by ok(). */
static int take(char *dst, size_t cap, const char *s, size_t n, int (*ok)(unsigned char)) {
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)s[i]))
            return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int key_char(unsigned char c) { return c > ' ' && c < 127 && c != '/' && c != ','; }
static int digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int scope_char(unsigned char c) { return unreserved(c); }
static int hex_lower(unsigned char c) { return digit(c) || (c >= 'a' && c <= 'f'); }
/* A signed header name: a lowercase HTTP token, or ';' between names. */
static int header_list_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || digit(c) || (c && strchr("!#$%&'*+-.^_`|~;", c));
}

/* Credential=<key id>/<YYYYMMDD>/<region>/<service>/aws4_request */
static int parse_credential(eng_sigv4 *s, const char *v, size_t n, char *msg, size_t cap) {
    const char *part[5];
    size_t len[5], k = 0;
    for (const char *p = v, *end = v + n; k < 5; k++) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        part[k] = p;
        len[k] = e ? (size_t)(e - p) : (size_t)(end - p);
        if (!e) {
            k++;
            break;
        }
        p = e + 1;
    }
    if (k != 5 || part[4] + len[4] != v + n)
        return bad(msg, cap, "Credential must be <access key id>/<date>/<region>/<service>/"
                             "aws4_request");
    if (take(s->key_id, sizeof s->key_id, part[0], len[0], key_char))
        return bad(msg, cap, "Credential has no valid access key id");
    if (len[1] != 8 || take(s->scope_date, sizeof s->scope_date, part[1], len[1], digit))
        return bad(msg, cap, "Credential should be scoped to a valid date (YYYYMMDD)");
    if (take(s->region, sizeof s->region, part[2], len[2], scope_char))
        return bad(msg, cap, "Credential should be scoped to a valid region");
    if (take(s->service, sizeof s->service, part[3], len[3], scope_char))
        return bad(msg, cap, "Credential should be scoped to a valid service");
    if (len[4] != 12 || memcmp(part[4], "aws4_request", 12))
        return bad(msg, cap, "Credential should be scoped with a valid terminator: "
                             "'aws4_request'");
    return ENG_AUTH_OK;
}

static int parse_signed_headers(eng_sigv4 *s, const char *v, size_t n, char *msg, size_t cap) {
    if (take(s->signed_headers, sizeof s->signed_headers, v, n, header_list_char))
        return bad(msg, cap, "SignedHeaders must be lowercase header names separated by ';'");
    int host = 0;
    for (const char *p = s->signed_headers;; p++) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!len)
            return bad(msg, cap, "SignedHeaders has an empty header name");
        host |= len == 4 && !memcmp(p, "host", 4);
        if (!e)
            break;
        p = e;
    }
    if (!host)
        return bad(msg, cap, "'Host' must be a 'SignedHeader' in the AWS Authorization.");
    return ENG_AUTH_OK;
}

/* The n decimal digits at s (already checked to be digits). */
static int num(const char *s, int n) {
    int v = 0;
    while (n--)
        v = v * 10 + (*s++ - '0');
    return v;
}

/* YYYYMMDDTHHMMSSZ -> seconds since the epoch, or -1. */
static int64_t amz_time(const char *d) {
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return -1;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !digit((unsigned char)d[i]))
            return -1;
    struct tm tm = {.tm_year = num(d, 4) - 1900, .tm_mon = num(d + 4, 2) - 1,
                    .tm_mday = num(d + 6, 2), .tm_hour = num(d + 9, 2),
                    .tm_min = num(d + 11, 2), .tm_sec = num(d + 13, 2)};
    struct tm check = tm;
    time_t t = timegm(&check);
    /* timegm normalizes 20150230 to March 2: a date that changed was not a date */
    if (t == (time_t)-1 || check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon ||
        check.tm_hour != tm.tm_hour || check.tm_min != tm.tm_min || check.tm_sec != tm.tm_sec)
        return -1;
    return (int64_t)t;
}

int eng_sigv4_parse(const eng_api_request *rq, eng_sigv4 *s, char *msg, size_t cap) {
    memset(s, 0, sizeof *s);
    const char *h = eng_api__header(rq, "Authorization");
    if (!h)
        return bad(msg, cap, "no Authorization header");
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncmp(h, "AWS4-HMAC-SHA256", 16) || (h[16] != ' ' && h[16] != '\t'))
        return bad(msg, cap, "the Authorization header must start with 'AWS4-HMAC-SHA256 '");
    int seen[3] = {0, 0, 0}; /* ORDER names */
    static const char *const names[] = {"Credential", "SignedHeaders", "Signature"};
    for (const char *p = h + 17;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        const char *eq = memchr(p, '=', len);
        int k = -1;
        for (int i = 0; eq && i < 3; i++)
            if ((size_t)(eq - p) == strlen(names[i]) && !memcmp(p, names[i], (size_t)(eq - p)))
                k = i;
        if (k < 0 || seen[k]++)
            return bad(msg, cap, "the Authorization header must hold Credential=, "
                                 "SignedHeaders= and Signature=, each once, separated by "
                                 "commas");
        const char *v = eq + 1;
        size_t vl = len - (size_t)(v - p);
        int rc = ENG_AUTH_OK;
        if (k == 0)
            rc = parse_credential(s, v, vl, msg, cap);
        else if (k == 1)
            rc = parse_signed_headers(s, v, vl, msg, cap);
        else if (vl != 64 || take(s->signature, sizeof s->signature, v, vl, hex_lower))
            rc = bad(msg, cap, "Signature must be 64 lowercase hexadecimal digits");
        if (rc)
            return rc;
        if (!e)
            break;
        p = e + 1;
    }
    for (int i = 0; i < 3; i++)
        if (!seen[i]) {
            snprintf(msg, cap, "Authorization header requires '%s' parameter.", names[i]);
            return ENG_AUTH_E_INCOMPLETE;
        }
    const char *date = eng_api__header(rq, "X-Amz-Date");
    if (!date)
        return bad(msg, cap, "Authorization header requires existence of a 'X-Amz-Date' "
                             "header.");
    while (*date == ' ')
        date++;
    size_t dl = strlen(date);
    while (dl && date[dl - 1] == ' ')
        dl--;
    if (dl != 16)
        return bad(msg, cap, "X-Amz-Date must be a date in the form YYYYMMDDTHHMMSSZ");
    memcpy(s->amz_date, date, 16);
    s->amz_date[16] = '\0';
    if (amz_time(s->amz_date) < 0)
        return bad(msg, cap, "X-Amz-Date must be a date in the form YYYYMMDDTHHMMSSZ");
    return ENG_AUTH_OK;
}

static void fmt_time(int64_t t, char out[17]) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

int eng_sigv4_check_date(const eng_sigv4 *s, int64_t now, char *msg, size_t cap) {
    if (strncmp(s->scope_date, s->amz_date, 8)) {
        snprintf(msg, cap, "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                 "version of date from HTTP: '%s' != '%.8s', from '%s'.", s->scope_date,
                 s->amz_date, s->amz_date);
        return ENG_AUTH_E_SIGNATURE;
    }
    int64_t t = amz_time(s->amz_date);
    char bound[17], nows[17];
    fmt_time(now, nows);
    if (t < now - ENG_SIGV4_SKEW_S) {
        fmt_time(now - ENG_SIGV4_SKEW_S, bound);
        snprintf(msg, cap, "Signature expired: %s is now earlier than %s (%s - 15 min.)",
                 s->amz_date, bound, nows);
        return ENG_AUTH_E_EXPIRED;
    }
    if (t > now + ENG_SIGV4_SKEW_S) {
        fmt_time(now + ENG_SIGV4_SKEW_S, bound);
        snprintf(msg, cap, "Signature not yet current: %s is still later than %s (%s + 15 "
                 "min.)", s->amz_date, bound, nows);
        return ENG_AUTH_E_EXPIRED;
    }
    return ENG_AUTH_OK;
}

/* }====== */

int eng_sigv4_verify(const eng_api_request *rq, const eng_sigv4 *s, const char *secret,
                     char *msg, size_t cap) {
    char hash[65], want[65];
    eng_sigv4_sha256_hex(rq->body, rq->body_len, hash);
    const char *declared = eng_api__header(rq, "X-Amz-Content-Sha256");
    if (declared && (!strcmp(declared, "UNSIGNED-PAYLOAD") ||
                     !strncmp(declared, "STREAMING-", 10)))
        return bad(msg, cap, "the payload must be signed (X-Amz-Content-Sha256: the body's "
                             "SHA-256, not UNSIGNED-PAYLOAD or a streaming payload)");
    if (declared && strcmp(declared, hash)) {
        snprintf(msg, cap, "The provided 'x-amz-content-sha256' header does not match what was "
                 "computed.");
        return ENG_AUTH_E_SIGNATURE;
    }
    char *creq = eng_sigv4_canonical_request(rq, s->signed_headers, hash);
    if (!creq) {
        snprintf(msg, cap, "out of memory");
        return ENG_AUTH_E_SIGNATURE;
    }
    eng_sigv4_sign(secret, s, creq, want);
    free(creq);
    int same = CRYPTO_memcmp(want, s->signature, 64) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (same)
        return ENG_AUTH_OK;
    snprintf(msg, cap, "%s", eng_auth_message(ENG_AUTH_E_SIGNATURE));
    return ENG_AUTH_E_SIGNATURE;
}

/*
 * dlq_file.c -- the dead-letter store in the data dir (one instance; a fleet's is in the shared
 * PostgreSQL, engine/store/deadletter_pg.c; dlq.c is the API both sit behind). Durable,
 * bounded, listable and re-drivable.
 *
 * Layout: <data_dir>/deadletter/seg-<16 hex digits>.jsonl, append-only segment files of JSON
 * lines. A record line holds everything needed to list it and to send it again (rule, rule
 * revision, action index and type, topic, original payload, client id, the rule's output and
 * the action's substituted templates, every attempt's error with its time); a tombstone line
 * {"resolved": "<id>"} marks a record delivered by a re-drive or purged. Ids increase; an
 * in-memory index (id -> segment, offset, length, rule, time) is rebuilt from the files at
 * start, so the store survives restarts. A torn last line (crash in mid-write) is cut off.
 *
 * Durability: a line counts as stored once it is written and fdatasync'ed. One writer thread
 * does every write: it takes everything queued, writes it and syncs once (group commit), so a
 * dead sink dead-lettering thousands of messages costs a few syncs, not thousands, and an
 * asynchronous append (act_dlq_append_async, what the pipelines use) never makes its caller --
 * a worker or a delivery lane -- wait for a disk: its completion runs on the writer once the
 * line is durable. act_dlq_append() waits for that instead. The queue is bounded; past it,
 * appenders wait (back-pressure rather than unbounded memory).
 *
 * Bounds: past max_bytes the oldest segment is deleted, and so is any segment whose newest
 * record is older than max_age (checked on every append and once a second by the service);
 * evicted live records are counted. Segments roll over at
 * a quarter of max_bytes (at most 64 MiB), so eviction frees space in reasonable steps.
 * Re-drive claims (a record handed to a re-drive is skipped by another one until it is
 * resolved or released) are kept in the index only: they matter while this process runs.
 * Rejected: SQLite or one file per record: a database for an append-mostly log is more than we
 * need, and a file per record costs an fsync of the directory per dead letter.
 */
#include "../action.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct entry {
    uint64_t id;
    uint64_t seg;      /* segment sequence number */
    uint64_t off;
    uint32_t len;
    int live;
    int64_t at;        /* last failure, ms */
    int64_t claimed_until; /* a re-drive holds it until then (ms; 0: nobody); not persisted */
    char *rule;
} entry;

typedef struct segment {
    uint64_t seq;
    int fd;            /* O_RDWR|O_APPEND */
    uint64_t bytes;
    int64_t newest_ms;
} segment;

typedef struct pending {
    char *line;        /* with its newline */
    size_t len;
    entry e;           /* a record (e.rule set) or, with tomb, nothing to index */
    int tomb;
    int *res;          /* a synchronous waiter's result */
    act_dlq_done_fn done; /* an asynchronous append's completion (called without mu) */
    void *ud;
} pending;

/* A completion to call once the lock is dropped. */
typedef struct completion {
    act_dlq_done_fn done;
    void *ud;
    int rc;
    uint64_t id;
} completion;

typedef struct file_dlq {
    act_dlq base;      /* first: the front (dlq.c) calls through base.vt */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char dir[600];
    long long max_bytes, max_age_s;
    uint64_t seg_max;
    segment *segs;     /* oldest first; the last is the one appended to */
    size_t nsegs;
    entry *ents;       /* id order */
    size_t nents, cap;
    uint64_t next_id;
    pending *pend;     /* guarded by mu; written by the current flusher */
    size_t npend, pendcap;
    uint64_t seq_queued, seq_synced;
    int flushing;
    int write_failing;  /* the last flush failed: it is retried once a second */
    /* the writer thread: every flush happens there, so no append's caller (a worker, a lane)
     * ever waits for an fdatasync unless it asked to */
    pthread_t writer;
    int writer_started, stop;
    pthread_cond_t work, room;
    completion *done;  /* filled by flush_pending, drained by the writer without mu */
    size_t ndone, donecap;
    uint64_t live, total_bytes;
    uint64_t appended, evicted, resolved, write_errors;
    const eng_host *host; /* logs */
} file_dlq;

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seg_path(const file_dlq *d, uint64_t seq, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/seg-%016llx.jsonl", d->dir, (unsigned long long)seq);
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static segment *seg_add(file_dlq *d, uint64_t seq) {
    segment *s = realloc(d->segs, (d->nsegs + 1) * sizeof *s);
    if (!s)
        return NULL;
    d->segs = s;
    char path[700];
    seg_path(d, seq, path, sizeof path);
    /* dead letters carry message payloads: the service's user alone reads them */
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    struct stat st;
    fstat(fd, &st);
    s = &d->segs[d->nsegs++];
    *s = (segment){.seq = seq, .fd = fd, .bytes = (uint64_t)st.st_size, .newest_ms = 0};
    return s;
}

static entry *find(file_dlq *d, uint64_t id) {
    size_t lo = 0, hi = d->nents;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->ents[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->nents && d->ents[lo].id == id ? &d->ents[lo] : NULL;
}

static int index_add(file_dlq *d, const entry *e) {
    if (d->nents == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 256;
        entry *n = realloc(d->ents, c * sizeof *n);
        if (!n)
            return -1;
        d->ents = n;
        d->cap = c;
    }
    d->ents[d->nents++] = *e;
    d->live++;
    return 0;
}

/* Deletes the oldest segment and the index entries in it. */
static void evict_oldest(file_dlq *d) {
    segment *s = &d->segs[0];
    char path[700];
    seg_path(d, s->seq, path, sizeof path);
    close(s->fd);
    unlink(path);
    d->total_bytes -= s->bytes;
    size_t k = 0;
    while (k < d->nents && d->ents[k].seg <= s->seq) {
        if (d->ents[k].live) {
            d->live--;
            d->evicted++;
        }
        free(d->ents[k].rule);
        k++;
    }
    memmove(d->ents, d->ents + k, (d->nents - k) * sizeof *d->ents);
    d->nents -= k;
    memmove(d->segs, d->segs + 1, (d->nsegs - 1) * sizeof *d->segs);
    d->nsegs--;
}

/* Size: the oldest segments go, never the one being appended to. Age: a segment goes once its
 * newest record is too old, the current one too (the next append starts a new one). */
static void enforce_bounds(file_dlq *d) {
    int64_t old = wall_ms() - d->max_age_s * 1000;
    for (;;) {
        if (d->nsegs > 1 && d->total_bytes > (uint64_t)d->max_bytes)
            evict_oldest(d);
        else if (d->nsegs > 0 && d->segs[0].newest_ms && d->segs[0].newest_ms < old)
            evict_oldest(d);
        else
            break;
    }
}

static void file_expire(act_dlq *self) {
    file_dlq *d = (file_dlq *)self;
    pthread_mutex_lock(&d->mu);
    while (d->flushing)
        pthread_cond_wait(&d->cv, &d->mu);
    enforce_bounds(d);
    pthread_mutex_unlock(&d->mu);
}

/* {====== group commit */

/* Puts a batch that could not be written back in front of what was queued since (mu held),
 * keeping the order. 0, or -1 on OOM. */
static int requeue(file_dlq *d, pending *batch, size_t n) {
    pending *v = malloc((n + d->npend + 16) * sizeof *v);
    if (!v)
        return -1;
    memcpy(v, batch, n * sizeof *v);
    if (d->npend)
        memcpy(v + n, d->pend, d->npend * sizeof *v);
    free(d->pend);
    free(batch);
    d->pend = v;
    d->npend += n;
    d->pendcap = d->npend + 16;
    return 0;
}

/* Writes every pending line to the current segment and syncs it once. Called with mu held by
 * the one flusher; drops mu around the I/O. */
static void flush_pending(file_dlq *d) {
    pending *batch = d->pend;
    size_t n = d->npend;
    uint64_t upto = d->seq_queued;
    d->pend = NULL;
    d->npend = d->pendcap = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += batch[i].len;
    segment *s = d->nsegs ? &d->segs[d->nsegs - 1] : NULL;
    if (!s || (s->bytes && s->bytes + total > d->seg_max)) {
        s = seg_add(d, s ? s->seq + 1 : 1);
        if (s)
            fsync_dir(d->dir);
    }
    uint64_t base = s ? s->bytes : 0;
    int fd = s ? s->fd : -1;
    pthread_mutex_unlock(&d->mu);
    int rc = fd < 0 ? -1 : 0;
    char *buf = rc == 0 ? malloc(total ? total : 1) : NULL;
    if (!buf)
        rc = -1;
    if (rc == 0) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(buf + o, batch[i].line, batch[i].len);
            o += batch[i].len;
        }
        ssize_t w = write(fd, buf, total);
        if (w != (ssize_t)total || fdatasync(fd) != 0) {
            rc = -1;
            if (w > 0 && ftruncate(fd, (off_t)base) != 0) /* never leave a torn record */
                rc = -1;
        }
    }
    free(buf);
    pthread_mutex_lock(&d->mu);
    if (rc != 0 && !d->stop && requeue(d, batch, n) == 0) {
        /* the disk refused (full, say): nothing is lost or failed yet; the writer tries again
         * in a second, and appenders wait while the queue is full */
        if (!d->write_failing)
            act_log(d->host, ENG_LOG_ERROR, "deadletter.write_failed",
                    "the dead-letter store cannot write (%s): retrying every second",
                    strerror(errno ? errno : EIO));
        d->write_failing = 1;
        d->write_errors++;
        d->flushing = 0;
        pthread_cond_broadcast(&d->cv);
        return;
    }
    if (rc == 0 && d->write_failing) {
        act_log(d->host, ENG_LOG_INFO, "deadletter.recovered", "the dead-letter store writes again");
        d->write_failing = 0;
    }
    uint64_t off = base;
    int64_t now = wall_ms();
    for (size_t i = 0; i < n; i++) {
        pending *p = &batch[i];
        if (rc == 0) {
            if (p->tomb) {
                d->resolved++;
            } else {
                p->e.seg = s->seq;
                p->e.off = off;
                p->e.len = (uint32_t)p->len;
                if (index_add(d, &p->e) == 0)
                    p->e.rule = NULL; /* the index owns it */
                d->appended++;
            }
            off += p->len;
        } else {
            d->write_errors++;
            if (p->tomb) { /* the record stays live: it was not resolved durably */
                entry *e = find(d, p->e.id);
                if (e && !e->live) {
                    e->live = 1;
                    d->live++;
                }
            }
        }
        if (p->res)
            *p->res = rc;
        if (p->done) {
            if (d->ndone == d->donecap) {
                size_t c = d->donecap ? d->donecap * 2 : 64;
                completion *v = realloc(d->done, c * sizeof *v);
                if (v) {
                    d->done = v;
                    d->donecap = c;
                }
            }
            if (d->ndone < d->donecap) /* else the caller is never told: see the writer */
                d->done[d->ndone++] = (completion){p->done, p->ud, rc, p->e.id};
        }
        free(p->line);
        free(p->e.rule);
    }
    free(batch);
    if (rc == 0) {
        s->bytes = off;
        s->newest_ms = now;
        d->total_bytes += off - base;
        enforce_bounds(d);
    }
    d->seq_synced = upto;
    d->flushing = 0;
    pthread_cond_broadcast(&d->cv);
}

#define PENDING_MAX 65536 /* queued appends before appenders wait: bounded memory */

/* Queues a line (taking it). With done, returns at once and done(ud, rc, id) runs on the writer
 * thread once the line is durable (or failed); without, waits for that. Called with mu held. */
static int queue_line(file_dlq *d, char *line_take, const entry *e, int tomb, act_dlq_done_fn done,
                      void *ud) {
    int res = -1;
    while (d->npend >= PENDING_MAX && !d->stop)
        pthread_cond_wait(&d->room, &d->mu);
    if (d->npend == d->pendcap) {
        size_t c = d->pendcap ? d->pendcap * 2 : 16;
        pending *p = realloc(d->pend, c * sizeof *p);
        if (!p) {
            free(line_take);
            if (e)
                free(e->rule);
            return -1;
        }
        d->pend = p;
        d->pendcap = c;
    }
    pending *p = &d->pend[d->npend++];
    *p = (pending){.line = line_take, .len = strlen(line_take), .tomb = tomb,
                   .res = done ? NULL : &res, .done = done, .ud = ud};
    if (e)
        p->e = *e;
    uint64_t mine = ++d->seq_queued;
    pthread_cond_signal(&d->work);
    if (done)
        return 0;
    while (d->seq_synced < mine)
        pthread_cond_wait(&d->cv, &d->mu);
    return res;
}

/* The writer: flushes whatever is queued (group commit), then runs the completions. */
static void *writer_main(void *arg) {
    file_dlq *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->npend && !d->stop)
            pthread_cond_wait(&d->work, &d->mu);
        if (!d->npend)
            break;
        d->flushing = 1;
        flush_pending(d);
        pthread_cond_broadcast(&d->room);
        if (d->write_failing && !d->stop) { /* wait a second (or for the stop) and retry */
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += 1;
            pthread_cond_timedwait(&d->work, &d->mu, &dl);
            continue;
        }
        completion *c = d->done;
        size_t n = d->ndone;
        d->done = NULL;
        d->ndone = d->donecap = 0;
        pthread_mutex_unlock(&d->mu);
        for (size_t i = 0; i < n; i++)
            c[i].done(c[i].ud, c[i].rc, c[i].id);
        free(c);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* }====== */

/* The record as one line: act_dlq_record_json() with its id, then a newline. */
static char *record_line(const act_dlq_record *r, uint64_t id, int64_t *last) {
    cJSON *o = act_dlq_record_json(r, id);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "lastFailureAt");
    *last = cJSON_IsNumber(at) ? eng_json_i64(at->valuedouble, wall_ms()) : wall_ms();
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

static int file_append(act_dlq *self, const act_dlq_record *r, uint64_t *id_out,
                       act_dlq_done_fn done, void *ud) {
    file_dlq *d = (file_dlq *)self;
    int64_t last = 0;
    /* the id is taken and the line queued under one lock hold, so the files and the index
     * stay in id order (the index is searched by id; loading relies on the order) */
    pthread_mutex_lock(&d->mu);
    uint64_t id = d->next_id++;
    char *line = record_line(r, id, &last);
    entry e = {.id = id, .live = 1, .at = last, .rule = strdup(r->rule)};
    int rc = -1;
    if (!line || !e.rule) {
        free(line);
        free(e.rule);
        d->write_errors++;
    } else {
        rc = queue_line(d, line, &e, 0, done, ud);
    }
    pthread_mutex_unlock(&d->mu);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

/* Called with mu held. */
static int resolve_locked(file_dlq *d, uint64_t id) {
    entry *e = find(d, id);
    if (!e || !e->live)
        return 0;
    e->live = 0;
    d->live--;
    char line[64];
    snprintf(line, sizeof line, "{\"resolved\":\"%llu\"}\n", (unsigned long long)id);
    char *l = strdup(line);
    if (!l) {
        e->live = 1;
        d->live++;
        return -1;
    }
    entry t = {.id = id};
    return queue_line(d, l, &t, 1, NULL, NULL);
}

static int file_resolve(act_dlq *self, uint64_t id) {
    file_dlq *d = (file_dlq *)self;
    pthread_mutex_lock(&d->mu);
    int rc = resolve_locked(d, id);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static void file_release(act_dlq *self, uint64_t id) {
    file_dlq *d = (file_dlq *)self;
    pthread_mutex_lock(&d->mu);
    entry *e = find(d, id);
    if (e)
        e->claimed_until = 0;
    pthread_mutex_unlock(&d->mu);
}

/* {====== reading */

static cJSON *read_entry(file_dlq *d, const entry *e) {
    segment *s = NULL;
    for (size_t i = 0; i < d->nsegs; i++)
        if (d->segs[i].seq == e->seg)
            s = &d->segs[i];
    if (!s)
        return NULL;
    char *buf = malloc(e->len + 1);
    if (!buf)
        return NULL;
    cJSON *o = NULL;
    if (pread(s->fd, buf, e->len, (off_t)e->off) == (ssize_t)e->len) {
        buf[e->len] = '\0';
        o = cJSON_Parse(buf);
    }
    free(buf);
    return o;
}

static int matches(const entry *e, const char *rule, int64_t since, uint64_t after,
                   const uint64_t *ids, size_t nids) {
    if (!e->live || e->id <= after || e->at < since || (rule && strcmp(rule, e->rule)))
        return 0;
    if (!nids)
        return 1;
    for (size_t i = 0; i < nids; i++)
        if (ids[i] == e->id)
            return 1;
    return 0;
}

static char *file_list_json(act_dlq *self, const char *rule, int64_t since_ms, size_t limit,
                            uint64_t after, eng_error *err) {
    file_dlq *d = (file_dlq *)self;
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "records");
    pthread_mutex_lock(&d->mu);
    size_t n = 0;
    uint64_t last = 0;
    int more = 0;
    for (size_t i = 0; i < d->nents; i++) {
        entry *e = &d->ents[i];
        if (!matches(e, rule, since_ms, after, NULL, 0))
            continue;
        if (n == limit) {
            more = 1;
            break;
        }
        cJSON *o = read_entry(d, e);
        if (!o)
            continue;
        /* the stored "output" and "fields" are for re-driving; the list shows the message */
        cJSON_DeleteItemFromObjectCaseSensitive(o, "fields");
        cJSON_AddItemToArray(arr, o);
        last = e->id;
        n++;
    }
    pthread_mutex_unlock(&d->mu);
    if (more) {
        char tok[24];
        snprintf(tok, sizeof tok, "%llu", (unsigned long long)last);
        cJSON_AddStringToObject(out, "nextToken", tok);
    }
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (!s)
        eng_error_set(err, 500, "InternalException", "out of memory");
    return s;
}

static int file_claim(act_dlq *self, const char *rule, const uint64_t *ids, size_t nids,
                      act_dlq_each_fn fn, void *ud, eng_error *err) {
    file_dlq *d = (file_dlq *)self;
    /* claim and collect under the lock, call back without it: fn re-sends, which may resolve
     * records */
    int64_t now = wall_ms();
    pthread_mutex_lock(&d->mu);
    size_t n = 0, cap = 0;
    cJSON **recs = NULL;
    uint64_t *rids = NULL;
    int rc = 0;
    for (size_t i = 0; i < d->nents; i++) {
        entry *e = &d->ents[i];
        if (!matches(e, rule, 0, 0, ids, nids) || e->claimed_until > now)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            cJSON **r2 = realloc(recs, cap * sizeof *r2);
            uint64_t *i2 = r2 ? realloc(rids, cap * sizeof *i2) : NULL;
            if (r2)
                recs = r2;
            if (!r2 || !i2) {
                rc = -1;
                break;
            }
            rids = i2;
        }
        cJSON *o = read_entry(d, e);
        if (o) {
            e->claimed_until = now + ACT_DLQ_CLAIM_MS;
            recs[n] = o;
            rids[n++] = e->id;
        }
    }
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && fn(ud, rids[i], recs[i]) != 0)
            rc = -1;
        if (rc) /* not handed to fn: nobody else will end its claim */
            file_release(self, rids[i]);
        cJSON_Delete(recs[i]);
    }
    free(recs);
    free(rids);
    if (rc)
        eng_error_set(err, 500, "InternalException", "re-drive failed (out of memory)");
    return rc;
}

static long file_purge(act_dlq *self, const char *rule, eng_error *err) {
    file_dlq *d = (file_dlq *)self;
    long n = 0;
    pthread_mutex_lock(&d->mu);
    while (d->flushing) /* let the flusher finish with the current segment */
        pthread_cond_wait(&d->cv, &d->mu);
    if (!rule) {
        n = (long)d->live;
        uint64_t evicted = d->evicted; /* purged, not evicted */
        while (d->nsegs > 1)
            evict_oldest(d);
        d->evicted = evicted;
        if (d->nsegs == 1) { /* the current segment: empty it in place */
            segment *s = &d->segs[0];
            if (ftruncate(s->fd, 0) == 0 && fdatasync(s->fd) == 0) {
                d->total_bytes -= s->bytes;
                s->bytes = 0;
                for (size_t i = 0; i < d->nents; i++)
                    free(d->ents[i].rule);
                d->nents = 0;
                d->live = 0;
            }
        }
        d->resolved += (uint64_t)n;
        pthread_mutex_unlock(&d->mu);
        return n;
    }
    /* one line of tombstones for all of them, so one sync */
    act_buf b = {0};
    for (size_t i = 0; i < d->nents; i++) {
        entry *e = &d->ents[i];
        if (!e->live || strcmp(e->rule, rule))
            continue;
        if (act_buf_printf(&b, "{\"resolved\":\"%llu\"}\n", (unsigned long long)e->id))
            break;
        e->live = 0;
        d->live--;
        n++;
    }
    if (n) {
        entry t = {.id = 0};
        if (queue_line(d, b.p, &t, 1, NULL, NULL) == 0)
            d->resolved += (uint64_t)n - 1; /* the flush counted one */
        b.p = NULL;
    }
    act_buf_deinit(&b);
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void file_stats(act_dlq *self, act_dlq_stats *out) {
    file_dlq *d = (file_dlq *)self;
    pthread_mutex_lock(&d->mu);
    *out = (act_dlq_stats){d->live, d->total_bytes, d->appended, d->evicted, d->resolved,
                           d->write_errors};
    pthread_mutex_unlock(&d->mu);
}

/* }====== */

/* {====== loading */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads one segment into the index; cuts a torn last line. */
static int load_segment(file_dlq *d, uint64_t seq, eng_error *e) {
    segment *s = seg_add(d, seq);
    if (!s)
        return eng_error_set(e, 500, "InternalException", "dead-letter store: cannot open "
                             "segment %llx: %s", (unsigned long long)seq, strerror(errno));
    char *buf = malloc(s->bytes + 1);
    if (!buf)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    ssize_t got = pread(s->fd, buf, s->bytes, 0);
    if (got != (ssize_t)s->bytes) {
        free(buf);
        return eng_error_set(e, 500, "InternalException", "dead-letter store: cannot read "
                             "segment %llx", (unsigned long long)seq);
    }
    buf[s->bytes] = '\0';
    uint64_t off = 0;
    while (off < s->bytes) {
        char *nl = memchr(buf + off, '\n', s->bytes - off);
        if (!nl) { /* torn write: drop the partial line */
            act_log(d->host, ENG_LOG_WARN, "deadletter.torn",
                    "segment %llx: cutting %llu bytes of a partial record",
                    (unsigned long long)seq, (unsigned long long)(s->bytes - off));
            if (ftruncate(s->fd, (off_t)off) != 0)
                break;
            s->bytes = off;
            break;
        }
        size_t len = (size_t)(nl - (buf + off)) + 1;
        *nl = '\0';
        cJSON *o = cJSON_Parse(buf + off);
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "resolved");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *rule = cJSON_GetObjectItemCaseSensitive(o, "rule");
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "lastFailureAt");
        if (cJSON_IsString(res)) {
            entry *x = find(d, strtoull(res->valuestring, NULL, 10));
            if (x && x->live) {
                x->live = 0;
                d->live--;
            }
        } else if (cJSON_IsString(id) && cJSON_IsString(rule)) {
            entry en = {.id = strtoull(id->valuestring, NULL, 10),
                        .seg = seq,
                        .off = off,
                        .len = (uint32_t)len,
                        .live = 1,
                        .at = cJSON_IsNumber(at) ? eng_json_i64(at->valuedouble, 0) : 0,
                        .rule = strdup(rule->valuestring)};
            if (en.rule && (en.id > (d->nents ? d->ents[d->nents - 1].id : 0)) &&
                index_add(d, &en) == 0) {
                if (en.id >= d->next_id)
                    d->next_id = en.id + 1;
                if (en.at > s->newest_ms)
                    s->newest_ms = en.at;
            } else {
                free(en.rule);
            }
        } else {
            act_log(d->host, ENG_LOG_WARN, "deadletter.corrupt",
                    "segment %llx offset %llu: skipping an unreadable line",
                    (unsigned long long)seq, (unsigned long long)off);
        }
        cJSON_Delete(o);
        off += len;
    }
    free(buf);
    d->total_bytes += s->bytes;
    return 0;
}

static void file_close(act_dlq *self) {
    file_dlq *d = (file_dlq *)self;
    if (d->writer_started) { /* writes what is queued, runs its completions, then stops */
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_broadcast(&d->work);
        pthread_cond_broadcast(&d->room);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->writer, NULL);
    }
    for (size_t i = 0; i < d->nsegs; i++)
        close(d->segs[i].fd);
    for (size_t i = 0; i < d->nents; i++)
        free(d->ents[i].rule);
    free(d->segs);
    free(d->ents);
    free(d->done);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->room);
    free(d);
}

static const act_dlq_vt file_vt = {
    .version = 1,
    .name = "dataDir",
    .append = file_append,
    .resolve = file_resolve,
    .release = file_release,
    .list_json = file_list_json,
    .claim = file_claim,
    .expire = file_expire,
    .purge = file_purge,
    .stats = file_stats,
    .close = file_close,
};

act_dlq *act_dlq_open(const char *data_dir, long long max_bytes, long long max_age_s,
                      const eng_host *host, eng_error *e) {
    file_dlq *d = calloc(1, sizeof *d);
    uint64_t *seqs = NULL;
    size_t nseq = 0, cap = 0;
    DIR *dir = NULL;
    if (!d) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    d->base.vt = &file_vt;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->room, NULL);
    d->host = host;
    d->max_bytes = max_bytes;
    d->max_age_s = max_age_s;
    d->seg_max = (uint64_t)max_bytes / 4;
    if (d->seg_max > 64ull << 20)
        d->seg_max = 64ull << 20;
    if (d->seg_max < 1024)
        d->seg_max = 1024;
    d->next_id = 1;
    mkdir(data_dir, 0750);
    snprintf(d->dir, sizeof d->dir, "%s/deadletter", data_dir);
    if (mkdir(d->dir, 0700) != 0 && errno != EEXIST) {
        eng_error_set(e, 500, "InternalException", "cannot create %s: %s", d->dir,
                      strerror(errno));
        goto fail;
    }
    if (!(dir = opendir(d->dir))) {
        eng_error_set(e, 500, "InternalException", "cannot read %s: %s", d->dir,
                      strerror(errno));
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        unsigned long long seq;
        char tail[16];
        if (sscanf(de->d_name, "seg-%16llx.%15s", &seq, tail) != 2 || strcmp(tail, "jsonl"))
            continue;
        if (nseq == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *n = realloc(seqs, cap * sizeof *n);
            if (!n)
                goto fail;
            seqs = n;
        }
        seqs[nseq++] = seq;
    }
    closedir(dir);
    dir = NULL;
    if (nseq)
        qsort(seqs, nseq, sizeof *seqs, cmp_u64);
    for (size_t i = 0; i < nseq; i++)
        if (load_segment(d, seqs[i], e) != 0)
            goto fail;
    free(seqs);
    enforce_bounds(d);
    if (pthread_create(&d->writer, NULL, writer_main, d) != 0) {
        eng_error_set(e, 500, "InternalException", "cannot start the dead-letter writer");
        file_close(&d->base);
        return NULL;
    }
    d->writer_started = 1;
    return &d->base;
fail:
    if (dir)
        closedir(dir);
    free(seqs);
    file_close(&d->base);
    return NULL;
}

/* }====== */

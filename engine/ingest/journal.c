/*
 * journal.c -- the ingest journal: every message a source acknowledges is on disk first, and
 * stays there until every matching rule's every action is done with it.
 *
 * Layout: <data_dir>/journal/<16 hex digits>.seg, append-only segment files numbered in
 * order. A segment is a sequence of records, each 8-byte aligned:
 *
 *     u32 len | u32 crc32c(segment number, len, body) | body[len] | zero padding to 8
 *
 * and body[0] is the record type:
 *     MSG   a message: seq, receive time, qos, source, hops, topic, client id, payload, MQTT 5
 *           properties -- everything a replay needs to rebuild it
 *     DONE  ranges of seqs whose every (rule, action) is finished
 *     PAIR  one (seq, rule, revision, action) finished while the message still had others
 *           pending, so a replay skips that pair
 *     CKPT  the low-water mark: every seq below it is finished
 * Seeding the checksum with the segment number means a record copied into the wrong file can
 * never pass as valid.
 *
 * Writing (group commit): sources append records to an in-memory buffer; a commit makes the
 * buffer durable. The first committer to find no flush in progress becomes the leader: it
 * takes the whole buffer, writes it with one pwrite and (mode batch) one fdatasync, and wakes
 * the others, so N concurrent appends cost one sync. The MQTT source appends a whole read
 * batch (up to Receive Maximum messages) and commits once, before the PUBACKs leave.
 *
 * Retiring: the journal is the origin of every message it holds (eng_msg.origin): when the last
 * reference to a message is released (every action delivered it, handed it to the error action,
 * or dead-lettered it), retire() sets its bit in a sliding bitmap and advances the low-water
 * mark. A background thread writes DONE/PAIR/CKPT records every few milliseconds without a sync
 * of their own (losing them in a power cut only means a duplicate on replay), and deletes the
 * oldest segments once every message in them is below the low-water mark.
 *
 * Segments are made ahead of need by the background thread, zero-filled (so a commit's
 * fdatasync writes only data, never the inode), and a zero header is where a segment's records
 * end. Recovery: every segment is scanned; a record that fails its checksum is skipped and the
 * scan resynchronizes at the next 8-byte position holding a valid record, so one flipped bit
 * costs one record, and a torn tail is ignored. Recovered segments are only read from then on
 * (writing starts in a fresh one). Messages at or above the low-water mark without a DONE are
 * replayed in seq order, with their PAIRs as a skip list.
 *
 * Bound: when the live segments hold max_bytes, full() says so and sources stop reading; the
 * journal never drops anything itself.
 *
 * Rejected: SQLite as the journal (a B-tree and its own WAL for what is an append-only log,
 * and no way to batch our fdatasync with the PUBACK flush); recycled segments (they leave stale
 * records after the write position, which makes recovery guess); fallocate'd segments (on ext4
 * the first write into an unwritten extent still costs a metadata update per sync: measured
 * 140-330 us against ~125 us for zero-filled and ~190 us for appends here).
 */
#include "../engine_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { REC_MSG = 1, REC_DONE = 2, REC_PAIR = 3, REC_CKPT = 4 };
#define REC_MAX (SQL_MAX_PAYLOAD + 256u * 1024u) /* a message with its properties, at most */
#define TICK_MS 5

typedef struct jbuf {
    unsigned char *p;
    size_t len, cap;
} jbuf;

typedef struct jseg {
    uint64_t no;
    int fd;
    uint64_t bytes;
    uint64_t cap;      /* roll over past this many bytes */
    uint64_t max_seq;  /* highest MSG seq in it; 0: none */
} jseg;

typedef struct jpair {
    uint64_t seq, revision;
    int action;
    char *rule;
} jpair;

/* A message recovery found unfinished. */
typedef struct jpend {
    uint64_t seq;
    uint64_t segno;    /* the segment holding it */
    uint64_t off;      /* of the body */
    uint32_t len;
} jpend;

struct eng_journal {
    char dir[600];
    int mode;                  /* ENG_JOURNAL_* */
    int interval_ms;
    uint64_t max_bytes, seg_bytes; /* seg_bytes: the largest segment */
    uint64_t grow;             /* the size of the next segment: segments start small and double
                                  up to seg_bytes, so a quiet instance never writes big files */
    char gate[256];            /* SLUICE_TEST_COMMIT_GATE: commits wait while it exists */
    uint64_t instance;
    eng_origin origin;

    /* writing: guarded by wmu */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    jbuf buf, spare;           /* appended, not yet written / the leader's */
    uint64_t next_seq;
    uint64_t buf_seq;          /* highest MSG seq appended to buf */
    uint64_t done_seq;         /* every MSG seq <= this is committed (per mode) */
    uint64_t fail_lo, fail_hi; /* MSG seqs of the last failed write */
    int flushing;
    int err;                   /* errno of the last failed write; 0 when healthy */
    int dirty;                 /* written since the last fdatasync */
    int64_t last_sync_ms;
    jseg *segs;                /* oldest first; the last one is written to */
    size_t nsegs;
    jseg next;                 /* a zero-filled segment made ahead by the ticker (fd -1: none) */
    int making_next;           /* the ticker is filling one */
    int force_roll;            /* the last segment was recovered: start a fresh one */
    uint64_t live_bytes;
    uint64_t next_segno;

    /* retiring: guarded by dmu */
    pthread_mutex_t dmu;
    uint64_t lwm;              /* every seq below is finished */
    uint64_t base;             /* seq of bit 0 of bits[0] (a multiple of 64) */
    uint64_t *bits;
    size_t nwords;
    uint64_t *retired;         /* since the last flush, unsorted */
    size_t nretired, retcap;
    jpair *pairs;
    size_t npairs, paircap;
    uint64_t ckpt_lwm;

    /* replay: what recovery found unfinished, and their done pairs (seq order) */
    jpend *pend;
    size_t npend;
    jpair *rpairs;
    size_t nrpairs;
    int replay_fds_open;

    pthread_t ticker;
    int ticker_started;
    _Atomic int stop;

    _Atomic uint64_t st_appended, st_commits, st_syncs, st_retired, st_write_errors,
        st_corrupt, st_replayed, st_bytes;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {====== encoding */

static int buf_room(jbuf *b, size_t n) {
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + n)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put(unsigned char **w, const void *s, size_t n) {
    memcpy(*w, s, n);
    *w += n;
}
#define PUT(w, v)                                                                                  \
    do {                                                                                           \
        __typeof__(v) v_ = (v);                                                                    \
        put((w), &v_, sizeof v_);                                                                  \
    } while (0)

static uint32_t rec_crc(uint64_t segno, uint32_t len, const unsigned char *body) {
    unsigned char h[12];
    memcpy(h, &segno, 8);
    memcpy(h + 8, &len, 4);
    return eng_crc32c(eng_crc32c(0, h, sizeof h), body, len);
}

static size_t padded(size_t n) { return (8 + n + 7) & ~(size_t)7; }

/* Reserves a record of body length n at the end of b; returns its body. The checksum is
 * filled in when the leader knows the segment (seal()). */
static unsigned char *rec_begin(jbuf *b, size_t n) {
    if (buf_room(b, padded(n)))
        return NULL;
    unsigned char *h = b->p + b->len;
    memset(h, 0, padded(n));
    uint32_t len = (uint32_t)n;
    memcpy(h, &len, 4);
    b->len += padded(n);
    return h + 8;
}

/* Fills in the checksums of every record in b[0..len) for segment segno. */
static void seal(unsigned char *p, size_t len, uint64_t segno) {
    for (size_t off = 0; off < len;) {
        uint32_t n;
        memcpy(&n, p + off, 4);
        uint32_t c = rec_crc(segno, n, p + off + 8);
        memcpy(p + off + 4, &c, 4);
        off += padded(n);
    }
}

/* MQTT 5 properties as (kind, len, bytes) entries. ORDER: decoded by props_decode. */
enum { P_CT = 1, P_RT, P_CORR, P_PFI, P_EXP, P_UKEY, P_UVAL };

static size_t props_size(const sql_mqtt_props *p) {
    size_t n = 0;
    if (p->content_type)
        n += 5 + strlen(p->content_type);
    if (p->response_topic)
        n += 5 + strlen(p->response_topic);
    if (p->correlation_data)
        n += 5 + p->correlation_len;
    if (p->format_indicator >= 0)
        n += 5 + 1;
    if (p->message_expiry >= 0)
        n += 5 + 8;
    for (size_t i = 0; i < p->nuser; i++)
        n += 10 + strlen(p->user[i].key) + strlen(p->user[i].value);
    return n;
}

static void prop_put(unsigned char **w, int kind, const void *s, size_t n) {
    uint8_t k = (uint8_t)kind;
    uint32_t l = (uint32_t)n;
    PUT(w, k);
    PUT(w, l);
    put(w, s, n);
}

static void props_encode(unsigned char **w, const sql_mqtt_props *p) {
    if (p->content_type)
        prop_put(w, P_CT, p->content_type, strlen(p->content_type));
    if (p->response_topic)
        prop_put(w, P_RT, p->response_topic, strlen(p->response_topic));
    if (p->correlation_data)
        prop_put(w, P_CORR, p->correlation_data, p->correlation_len);
    if (p->format_indicator >= 0) {
        uint8_t f = (uint8_t)p->format_indicator;
        prop_put(w, P_PFI, &f, 1);
    }
    if (p->message_expiry >= 0)
        prop_put(w, P_EXP, &p->message_expiry, 8);
    for (size_t i = 0; i < p->nuser; i++) {
        prop_put(w, P_UKEY, p->user[i].key, strlen(p->user[i].key));
        prop_put(w, P_UVAL, p->user[i].value, strlen(p->user[i].value));
    }
}

/* The fixed part of a MSG body. */
typedef struct __attribute__((packed)) msg_head {
    uint8_t type, qos, source, pad;
    int32_t hops;
    uint64_t seq;
    int64_t received_ms;
    uint32_t topic_len, clientid_len, payload_len, props_len; /* clientid_len ~0u: none */
} msg_head;

/* }====== */

/* {====== segments */

static void seg_path(const eng_journal *j, uint64_t no, char *out, size_t cap) {
    snprintf(out, cap, "%s/%016llx.seg", j->dir, (unsigned long long)no);
}

/* Opens a new segment for writing. Called by the leader (wmu not held) or at open. */
/* Creates segment file number no; with prealloc, fills it with zeros first (and syncs), so
 * that later fdatasyncs only write data: an append that grows the file also makes every
 * fdatasync write the inode (or commit the filesystem's journal), a second disk round trip
 * per commit (measured: ~190 us against ~125 us per write+fdatasync here). A zero header marks
 * where a segment's records end. */
static int seg_create(eng_journal *j, uint64_t no, uint64_t cap, int prealloc, jseg *out) {
    char path[700];
    seg_path(j, no, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (prealloc) {
        static const char zeros[1 << 16];
        for (uint64_t off = 0; off < cap; off += sizeof zeros) {
            size_t n = cap - off < sizeof zeros ? (size_t)(cap - off) : sizeof zeros;
            if (pwrite(fd, zeros, n, (off_t)off) != (ssize_t)n) {
                int e = errno;
                close(fd);
                unlink(path);
                errno = e ? e : ENOSPC;
                return -1;
            }
        }
        if (fdatasync(fd) != 0) {
            int e = errno;
            close(fd);
            unlink(path);
            errno = e;
            return -1;
        }
    }
    /* the new name must survive a crash before the first record in it is synced */
    int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    *out = (jseg){.no = no, .fd = fd, .cap = cap};
    return 0;
}

/* The size of the next segment (wmu held). */
static uint64_t next_cap(eng_journal *j) {
    uint64_t c = j->grow;
    if (j->grow < j->seg_bytes)
        j->grow = j->grow * 2 < j->seg_bytes ? j->grow * 2 : j->seg_bytes;
    return c;
}

/* Closes and removes a segment that was never written. */
static void discard_seg(eng_journal *j, jseg *g) {
    char path[700];
    seg_path(j, g->no, path, sizeof path);
    close(g->fd);
    unlink(path);
    g->fd = -1;
}

/* A segment for the leader that found none ready: a plain file that grows as it is written
 * (no zero-filling on the commit path). */
static int seg_new(eng_journal *j, jseg *out) {
    pthread_mutex_lock(&j->wmu);
    uint64_t no = j->next_segno++, cap = next_cap(j);
    pthread_mutex_unlock(&j->wmu);
    return seg_create(j, no, cap, 0, out);
}

/* The ticker: once the current segment is half full, makes the next one ready, zero-filled. */
static void prepare_next(eng_journal *j) {
    pthread_mutex_lock(&j->wmu);
    jseg *cur = j->nsegs ? &j->segs[j->nsegs - 1] : NULL;
    int want = j->next.fd < 0 && !j->making_next && !j->err &&
               (!cur || cur->bytes >= cur->cap / 2 || j->force_roll);
    uint64_t no = want ? j->next_segno++ : 0, cap = want ? next_cap(j) : 0;
    if (want)
        j->making_next = 1;
    pthread_mutex_unlock(&j->wmu);
    if (!want)
        return;
    jseg s;
    int rc = seg_create(j, no, cap, 1, &s);
    pthread_mutex_lock(&j->wmu);
    j->making_next = 0;
    int stale = rc == 0 && j->nsegs && j->segs[j->nsegs - 1].no > s.no;
    if (rc == 0 && !stale)
        j->next = s;
    pthread_mutex_unlock(&j->wmu);
    if (stale)
        discard_seg(j, &s);
}

static void seg_drop(eng_journal *j, size_t i) {
    char path[700];
    seg_path(j, j->segs[i].no, path, sizeof path);
    if (j->segs[i].fd >= 0)
        close(j->segs[i].fd);
    unlink(path);
    j->live_bytes -= j->segs[i].bytes;
    memmove(&j->segs[i], &j->segs[i + 1], (j->nsegs - i - 1) * sizeof *j->segs);
    j->nsegs--;
}

/* }====== */

/* {====== writing */

static void record_pending_done(eng_journal *j);

/* One flush as the leader: takes the buffer, writes (and syncs when want_sync), and publishes
 * the outcome. Called and returns with wmu held. */
static void flush_locked(eng_journal *j, int want_sync) {
    jbuf b = j->buf;
    j->buf = j->spare;
    j->buf.len = 0;
    j->spare = (jbuf){0};
    uint64_t upto = j->buf_seq, lo = j->done_seq + 1;
    j->flushing = 1;
    int had_err = j->err;
    jseg *cur = j->nsegs ? &j->segs[j->nsegs - 1] : NULL;
    int sync_old = j->dirty && cur && cur->bytes >= cur->cap;
    /* roll over when the segment is full; after a failed write start a fresh file rather
     * than trust the old one's pages (a failed fdatasync may have dropped them), unless the
     * old one is still empty */
    int roll = !cur || cur->fd < 0 || cur->bytes >= cur->cap || (had_err && cur->bytes) ||
               j->force_roll;
    jseg fresh = {.fd = -1};
    if (roll && b.len && j->next.fd >= 0 && !had_err) { /* the one the ticker made ready */
        fresh = j->next;
        j->next = (jseg){.fd = -1};
        if (cur && fresh.no < cur->no) { /* made before a newer fallback: order is by number */
            discard_seg(j, &fresh);
            fresh = (jseg){.fd = -1};
        }
    }
    pthread_mutex_unlock(&j->wmu);

    int err = 0, synced = 0;
    uint64_t seg_max = 0;
    /* tests/integration/test_puback_order.py holds commits back with this file to prove that
     * no PUBACK leaves before its message is committed */
    while (j->gate[0] && access(j->gate, F_OK) == 0)
        usleep(1000);
    if (b.len) {
        if (roll) {
            if (sync_old && fdatasync(cur->fd) != 0)
                err = errno;
            if (!err && fresh.fd < 0 && seg_new(j, &fresh) != 0)
                err = errno;
        } else if (had_err && ftruncate(cur->fd, (off_t)cur->bytes) != 0) {
            err = errno; /* drop what a failed write may have left behind */
        }
        if (!err) {
            jseg *s = fresh.fd >= 0 ? &fresh : cur;
            seal(b.p, b.len, s->no);
            size_t done = 0;
            while (done < b.len) {
                ssize_t w = pwrite(s->fd, b.p + done, b.len - done, (off_t)(s->bytes + done));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    err = w < 0 ? errno : EIO;
                    break;
                }
                done += (size_t)w;
            }
            if (!err && want_sync) {
                if (fdatasync(s->fd) != 0)
                    err = errno;
                else
                    synced = 1;
            }
            if (!err) {
                /* the highest MSG seq written: scan the record types we just sealed */
                for (size_t off = 0; off < b.len;) {
                    uint32_t n;
                    memcpy(&n, b.p + off, 4);
                    if (b.p[off + 8] == REC_MSG) {
                        uint64_t seq;
                        memcpy(&seq, b.p + off + 8 + offsetof(msg_head, seq), 8);
                        seg_max = seq;
                    }
                    off += padded(n);
                }
            }
        }
    }

    pthread_mutex_lock(&j->wmu);
    if (fresh.fd >= 0) {
        jseg *v = realloc(j->segs, (j->nsegs + 1) * sizeof *j->segs);
        if (v) {
            j->segs = v;
            j->segs[j->nsegs++] = fresh;
            j->force_roll = 0;
        } else {
            close(fresh.fd);
            err = err ? err : ENOMEM;
        }
    }
    if (b.len && !err) {
        jseg *s = &j->segs[j->nsegs - 1];
        s->bytes += b.len;
        j->live_bytes += b.len;
        if (seg_max)
            s->max_seq = seg_max;
        atomic_fetch_add_explicit(&j->st_bytes, b.len, memory_order_relaxed);
        j->dirty = !synced;
        if (synced) {
            j->dirty = 0;
            j->last_sync_ms = wall_ms();
            atomic_fetch_add_explicit(&j->st_syncs, 1, memory_order_relaxed);
        }
    }
    if (err) {
        if (!j->err)
            eng_log(ENG_LOG_ERROR, "journal.write_failed",
                    "the ingest journal cannot write (%s): sluice stops acknowledging and "
                    "reading until it can", strerror(err));
        j->err = err;
        j->fail_lo = lo;
        j->fail_hi = upto;
        atomic_fetch_add_explicit(&j->st_write_errors, 1, memory_order_relaxed);
    } else if (b.len) {
        if (j->err)
            eng_log(ENG_LOG_INFO, "journal.recovered", "the ingest journal writes again");
        j->err = 0;
    }
    if (upto > j->done_seq)
        j->done_seq = upto;
    b.len = 0;
    if (!j->spare.p)
        j->spare = b;
    else
        free(b.p);
    j->flushing = 0;
    atomic_fetch_add_explicit(&j->st_commits, 1, memory_order_relaxed);
    pthread_cond_broadcast(&j->wcv);
}

int eng_journal_append(eng_journal *j, eng_msg *m) {
    size_t plen = props_size(&m->props);
    size_t clen = m->clientid ? strlen(m->clientid) : 0;
    size_t n = sizeof(msg_head) + m->topic_len + clen + m->payload_len + plen;
    pthread_mutex_lock(&j->wmu);
    unsigned char *w = rec_begin(&j->buf, n);
    if (!w) {
        pthread_mutex_unlock(&j->wmu);
        return -1;
    }
    uint64_t seq = j->next_seq++;
    msg_head h = {.type = REC_MSG,
                  .qos = (uint8_t)m->qos,
                  .source = (uint8_t)m->source,
                  .hops = m->hops,
                  .seq = seq,
                  .received_ms = m->received_ms,
                  .topic_len = (uint32_t)m->topic_len,
                  .clientid_len = m->clientid ? (uint32_t)clen : ~0u,
                  .payload_len = (uint32_t)m->payload_len,
                  .props_len = (uint32_t)plen};
    put(&w, &h, sizeof h);
    put(&w, m->topic, m->topic_len);
    put(&w, m->clientid ? m->clientid : "", clen);
    put(&w, m->payload, m->payload_len);
    props_encode(&w, &m->props);
    j->buf_seq = seq;
    pthread_mutex_unlock(&j->wmu);
    eng_msg_set_seq(m, seq, j->instance);
    m->origin = &j->origin;
    atomic_fetch_add_explicit(&j->st_appended, 1, memory_order_relaxed);
    return 0;
}

int eng_journal_commit(eng_journal *j, uint64_t seq) {
    if (j->mode == ENG_JOURNAL_OFF)
        return 0;
    pthread_mutex_lock(&j->wmu);
    while (j->done_seq < seq) {
        if (j->flushing) {
            pthread_cond_wait(&j->wcv, &j->wmu);
            continue;
        }
        flush_locked(j, j->mode == ENG_JOURNAL_BATCH);
    }
    int rc = seq >= j->fail_lo && seq <= j->fail_hi ? -1 : 0;
    pthread_mutex_unlock(&j->wmu);
    return rc;
}

int eng_journal_failed(eng_journal *j) {
    pthread_mutex_lock(&j->wmu);
    int e = j->err;
    pthread_mutex_unlock(&j->wmu);
    return e;
}

int eng_journal_full(eng_journal *j) {
    pthread_mutex_lock(&j->wmu);
    int full = j->live_bytes + j->buf.len >= j->max_bytes;
    pthread_mutex_unlock(&j->wmu);
    return full;
}

/* }====== */

/* {====== retiring */

/* Sets bit seq (dmu held). Grows or slides the bitmap as needed. */
static int bit_set(eng_journal *j, uint64_t seq) {
    if (seq < j->lwm)
        return 0;
    size_t w = (size_t)((seq - j->base) / 64);
    if (w >= j->nwords) {
        size_t nw = j->nwords ? j->nwords : 64;
        while (nw <= w)
            nw *= 2;
        uint64_t *v = realloc(j->bits, nw * sizeof *v);
        if (!v)
            return -1;
        memset(v + j->nwords, 0, (nw - j->nwords) * sizeof *v);
        j->bits = v;
        j->nwords = nw;
    }
    j->bits[w] |= 1ull << ((seq - j->base) % 64);
    /* advance the low-water mark over finished seqs */
    while (1) {
        size_t lw = (size_t)((j->lwm - j->base) / 64);
        if (lw >= j->nwords)
            break;
        uint64_t word = j->bits[lw] >> ((j->lwm - j->base) % 64);
        if (!(word & 1))
            break;
        if (word == ~0ull >> ((j->lwm - j->base) % 64))
            j->lwm = j->base + (uint64_t)(lw + 1) * 64;
        else
            j->lwm += (uint64_t)__builtin_ctzll(~word);
    }
    /* drop whole finished words from the front once they are half the bitmap */
    size_t drop = (size_t)((j->lwm - j->base) / 64);
    if (drop && drop >= j->nwords / 2) {
        memmove(j->bits, j->bits + drop, (j->nwords - drop) * sizeof *j->bits);
        memset(j->bits + j->nwords - drop, 0, drop * sizeof *j->bits);
        j->base += (uint64_t)drop * 64;
    }
    return 0;
}

static void retire(void *ud, eng_msg *m) {
    eng_journal *j = ud;
    if (atomic_load_explicit(&m->keep, memory_order_acquire)) {
        /* an outcome that could not be made durable: leave the entry for the next start */
        eng_log(ENG_LOG_WARN, "journal.kept", "message %llu on %s stays in the journal: it "
                "will be replayed at the next start", (unsigned long long)m->seq, m->topic);
        return;
    }
    pthread_mutex_lock(&j->dmu);
    bit_set(j, m->seq);
    if (j->nretired == j->retcap) {
        size_t cap = j->retcap ? j->retcap * 2 : 1024;
        uint64_t *v = realloc(j->retired, cap * sizeof *v);
        if (v) {
            j->retired = v;
            j->retcap = cap;
        }
    }
    if (j->nretired < j->retcap) /* else the CKPT covers it once the lwm passes */
        j->retired[j->nretired++] = m->seq;
    pthread_mutex_unlock(&j->dmu);
    atomic_fetch_add_explicit(&j->st_retired, 1, memory_order_relaxed);
}

static int bit_get(const eng_journal *j, uint64_t seq) {
    if (seq < j->lwm)
        return 1;
    size_t w = (size_t)((seq - j->base) / 64);
    return w < j->nwords && (j->bits[w] >> ((seq - j->base) % 64) & 1);
}

void eng_journal_pair_done(eng_journal *j, const eng_msg *m, const char *rule,
                           uint64_t revision, int action) {
    if (!m->seq || m->origin != &j->origin)
        return;
    char *r = strdup(rule);
    if (!r)
        return;
    pthread_mutex_lock(&j->dmu);
    if (j->npairs == j->paircap) {
        size_t cap = j->paircap ? j->paircap * 2 : 256;
        jpair *v = realloc(j->pairs, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&j->dmu);
            free(r);
            return;
        }
        j->pairs = v;
        j->paircap = cap;
    }
    j->pairs[j->npairs++] = (jpair){m->seq, revision, action, r};
    pthread_mutex_unlock(&j->dmu);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Moves what was retired since the last call into DONE, PAIR and CKPT records in the write
 * buffer. Pairs whose message has retired meanwhile are dropped: DONE covers them. */
static void record_pending_done(eng_journal *j) {
    pthread_mutex_lock(&j->dmu);
    uint64_t *ret = j->retired;
    size_t nret = j->nretired;
    j->retired = NULL;
    j->nretired = j->retcap = 0;
    jpair *pairs = j->pairs;
    size_t np = j->npairs;
    j->pairs = NULL;
    j->npairs = j->paircap = 0;
    size_t keep = 0;
    for (size_t i = 0; i < np; i++) {
        if (bit_get(j, pairs[i].seq))
            free(pairs[i].rule);
        else
            pairs[keep++] = pairs[i];
    }
    np = keep;
    uint64_t lwm = j->lwm;
    int ckpt = lwm != j->ckpt_lwm;
    j->ckpt_lwm = lwm;
    pthread_mutex_unlock(&j->dmu);

    /* DONE: sorted, coalesced ranges above the low-water mark (the CKPT covers the rest) */
    if (nret)
        qsort(ret, nret, sizeof *ret, cmp_u64);
    size_t nr = 0;
    uint64_t (*ranges)[2] = nret ? malloc(nret * sizeof *ranges) : NULL;
    for (size_t i = 0; ranges && i < nret; i++) {
        if (ret[i] < lwm)
            continue;
        if (nr && ranges[nr - 1][0] + ranges[nr - 1][1] == ret[i])
            ranges[nr - 1][1]++;
        else {
            ranges[nr][0] = ret[i];
            ranges[nr++][1] = 1;
        }
    }
    free(ret);
    pthread_mutex_lock(&j->wmu);
    for (size_t i = 0; i < nr;) {
        size_t k = nr - i < 4096 ? nr - i : 4096;
        unsigned char *w = rec_begin(&j->buf, 1 + 3 + 4 + k * 16);
        if (!w)
            break;
        *w = REC_DONE;
        w += 4;
        PUT(&w, (uint32_t)k);
        for (size_t t = 0; t < k; t++) {
            PUT(&w, ranges[i + t][0]);
            PUT(&w, ranges[i + t][1]);
        }
        i += k;
    }
    for (size_t i = 0; i < np; i++) {
        size_t rl = strlen(pairs[i].rule);
        unsigned char *w = rec_begin(&j->buf, 8 + 8 + 8 + 4 + rl);
        if (w) {
            *w = REC_PAIR;
            w += 8;
            PUT(&w, pairs[i].seq);
            PUT(&w, pairs[i].revision);
            PUT(&w, (int32_t)pairs[i].action);
            put(&w, pairs[i].rule, rl);
        }
        free(pairs[i].rule);
    }
    if (ckpt) {
        unsigned char *w = rec_begin(&j->buf, 8 + 8);
        if (w) {
            *w = REC_CKPT;
            w += 8;
            PUT(&w, lwm);
        }
    }
    pthread_mutex_unlock(&j->wmu);
    free(ranges);
    free(pairs);
}

/* Deletes the oldest segments whose every message is finished (never the one written to). */
static void drop_finished(eng_journal *j) {
    pthread_mutex_lock(&j->dmu);
    uint64_t lwm = j->lwm;
    pthread_mutex_unlock(&j->dmu);
    pthread_mutex_lock(&j->wmu);
    while (!j->flushing && j->nsegs > 1 && j->segs[0].max_seq < lwm)
        seg_drop(j, 0);
    pthread_mutex_unlock(&j->wmu);
}

static void *ticker_main(void *arg) {
    eng_journal *j = arg;
    while (!atomic_load(&j->stop)) {
        prepare_next(j); /* first: the flush below may need it */
        struct timespec ts = {0, TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        record_pending_done(j);
        pthread_mutex_lock(&j->wmu);
        int64_t now = wall_ms();
        int want_sync = j->mode == ENG_JOURNAL_INTERVAL && (j->dirty || j->buf.len) &&
                        now - j->last_sync_ms >= j->interval_ms;
        /* after a failed write, try again once a second with whatever is pending (even just
         * a checkpoint): success clears the error and the sources resume */
        int retry = j->err && now - j->last_sync_ms >= 1000;
        if (retry && !j->buf.len) {
            unsigned char *w = rec_begin(&j->buf, 16);
            if (w) {
                *w = REC_CKPT;
                w += 8;
                PUT(&w, j->ckpt_lwm);
            }
            j->last_sync_ms = now;
        }
        if (!j->flushing && (j->buf.len || want_sync) && (!j->err || retry))
            flush_locked(j, want_sync || retry);
        pthread_mutex_unlock(&j->wmu);
        drop_finished(j);
    }
    return NULL;
}

/* }====== */

/* {====== recovery */

typedef struct scan {
    eng_journal *j;
    jpend *msgs;               /* every MSG found, seq order */
    size_t nmsgs, msgcap;
    uint64_t (*done)[2];
    size_t ndone, donecap;
    jpair *pairs;
    size_t npairs, paircap;
    uint64_t lwm, max_seq;
} scan;

#define GROW(v, n, cap)                                                                            \
    ((n) < (cap) ? 0                                                                               \
                 : ((cap) = (cap) ? (cap) * 2 : 1024,                                              \
                    ((v) = realloc((v), (cap) * sizeof *(v))) ? 0 : -1))

/* Checks a record at off; returns its body length or -1. */
static long rec_check(const unsigned char *p, size_t size, size_t off, uint64_t segno) {
    if (off + 8 > size)
        return -1;
    uint32_t n, c;
    memcpy(&n, p + off, 4);
    memcpy(&c, p + off + 4, 4);
    if (n == 0 || n > REC_MAX || off + padded(n) > size)
        return -1;
    if (p[off + 8] < REC_MSG || p[off + 8] > REC_CKPT)
        return -1;
    return rec_crc(segno, n, p + off + 8) == c ? (long)n : -1;
}

static int scan_record(scan *s, uint64_t segno, const unsigned char *b, size_t n, uint64_t off) {
    switch (b[0]) {
    case REC_MSG: {
        msg_head h;
        if (n < sizeof h)
            return 0;
        memcpy(&h, b, sizeof h);
        if (GROW(s->msgs, s->nmsgs, s->msgcap))
            return -1;
        s->msgs[s->nmsgs++] = (jpend){h.seq, segno, off, (uint32_t)n};
        if (h.seq > s->max_seq)
            s->max_seq = h.seq;
        return 0;
    }
    case REC_DONE: {
        uint32_t k;
        if (n < 8)
            return 0;
        memcpy(&k, b + 4, 4);
        if (8 + (size_t)k * 16 > n)
            return 0;
        for (uint32_t i = 0; i < k; i++) {
            if (GROW(s->done, s->ndone, s->donecap))
                return -1;
            memcpy(s->done[s->ndone], b + 8 + i * 16, 16);
            s->ndone++;
        }
        return 0;
    }
    case REC_PAIR: {
        if (n < 28)
            return 0;
        jpair p;
        int32_t a;
        memcpy(&p.seq, b + 8, 8);
        memcpy(&p.revision, b + 16, 8);
        memcpy(&a, b + 24, 4);
        p.action = a;
        p.rule = strndup((const char *)b + 28, n - 28);
        if (!p.rule || GROW(s->pairs, s->npairs, s->paircap)) {
            free(p.rule);
            return -1;
        }
        s->pairs[s->npairs++] = p;
        return 0;
    }
    case REC_CKPT:
        if (n >= 16) {
            uint64_t l;
            memcpy(&l, b + 8, 8);
            if (l > s->lwm)
                s->lwm = l;
        }
        return 0;
    }
    return 0;
}

/* Scans one segment file; cuts a torn tail. */
static int scan_segment(scan *s, jseg *seg) {
    struct stat st;
    if (fstat(seg->fd, &st) != 0)
        return -1;
    size_t size = (size_t)st.st_size;
    if (size == 0)
        return 0;
    unsigned char *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, seg->fd, 0);
    if (p == MAP_FAILED)
        return -1;
    size_t off = 0, good_end = 0;
    uint64_t bad = 0;
    while (off + 8 <= size) {
        uint32_t z[2];
        memcpy(z, p + off, 8);
        if (!z[0] && !z[1])
            break; /* the records end here (a zero-filled or never written rest) */
        long n = rec_check(p, size, off, seg->no);
        if (n < 0) {
            /* damaged: resynchronize at the next 8-byte position holding a valid record
             * (through zeros too: a damaged record's payload may hold some) */
            size_t t = off + 8;
            while (t + 8 <= size && rec_check(p, size, t, seg->no) < 0)
                t += 8;
            bad++;
            if (t + 8 > size)
                break; /* nothing valid after it: a torn tail */
            off = t;
            continue;
        }
        if (scan_record(s, seg->no, p + off + 8, (size_t)n, off + 8) != 0) {
            munmap(p, size);
            return -1;
        }
        if (p[off + 8] == REC_MSG) { /* the segment may go only once all of these are done */
            uint64_t q;
            memcpy(&q, p + off + 8 + offsetof(msg_head, seq), 8);
            if (q > seg->max_seq)
                seg->max_seq = q;
        }
        off += padded((size_t)n);
        good_end = off;
    }
    munmap(p, size);
    /* nothing is cut: a recovered segment is never written again (force_roll), and its
     * damage is skipped the same way at every start until the segment is finished */
    if (bad) {
        eng_log(ENG_LOG_WARN, "journal.damaged", "segment %016llx: %llu damaged places skipped "
                "(a torn write, or flipped bits)", (unsigned long long)seg->no,
                (unsigned long long)bad);
        atomic_fetch_add(&s->j->st_corrupt, bad);
    }
    seg->bytes = good_end;
    return 0;
}

static int cmp_range(const void *a, const void *b) { return cmp_u64(a, b); }
static int cmp_pend(const void *a, const void *b) { return cmp_u64(a, b); }
static int cmp_pair(const void *a, const void *b) { return cmp_u64(a, b); }

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads the segments, finds what is unfinished, and sets up the bitmap. */
static int recover(eng_journal *j, eng_error *e) {
    DIR *d = opendir(j->dir);
    if (!d)
        return eng_error_set(e, 500, "InternalException", "cannot open %s: %s", j->dir,
                             strerror(errno));
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l != 20 || strcmp(de->d_name + 16, ".seg") ||
            strspn(de->d_name, "0123456789abcdef") != 16)
            continue;
        if (GROW(names, nn, cap) || !(names[nn] = strdup(de->d_name))) {
            closedir(d);
            return eng_error_set(e, 500, "InternalException", "out of memory");
        }
        nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_name);
    scan s = {.j = j};
    int rc = 0;
    j->segs = calloc(nn + 1, sizeof *j->segs);
    if (!j->segs)
        rc = eng_error_set(e, 500, "InternalException", "out of memory");
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", j->dir, names[i]);
        jseg *g = &j->segs[j->nsegs];
        *g = (jseg){.no = strtoull(names[i], NULL, 16), .fd = open(path, O_RDWR | O_CLOEXEC)};
        if (g->fd < 0 || scan_segment(&s, g) != 0) {
            rc = eng_error_set(e, 500, "InternalException", "cannot read journal segment %s: %s",
                               path, strerror(errno));
            if (g->fd >= 0)
                close(g->fd);
            break;
        }
        j->live_bytes += g->bytes;
        j->next_segno = g->no + 1;
        j->nsegs++;
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc)
        goto out;
    /* every seq up to the highest one seen is accounted for; what follows starts after it */
    uint64_t lwm = s.lwm ? s.lwm : 1;
    j->next_seq = (s.max_seq >= lwm ? s.max_seq : lwm - 1) + 1;
    if (s.ndone)
        qsort(s.done, s.ndone, sizeof *s.done, cmp_range);
    if (s.nmsgs)
        qsort(s.msgs, s.nmsgs, sizeof *s.msgs, cmp_pend);
    if (s.npairs)
        qsort(s.pairs, s.npairs, sizeof *s.pairs, cmp_pair);
    /* pending = MSG records at or above lwm that no DONE range covers */
    size_t di = 0, np = 0;
    for (size_t i = 0; i < s.nmsgs; i++) {
        uint64_t q = s.msgs[i].seq;
        if (q < lwm || (i && q == s.msgs[i - 1].seq))
            continue;
        while (di < s.ndone && s.done[di][0] + s.done[di][1] <= q)
            di++;
        if (di < s.ndone && s.done[di][0] <= q)
            continue;
        s.msgs[np++] = s.msgs[i];
    }
    /* the bitmap: everything in [lwm, next_seq) is finished except the pending ones */
    j->lwm = j->base = lwm & ~63ull;
    j->ckpt_lwm = 0;
    uint64_t q = j->lwm;
    for (size_t i = 0; i <= np && rc == 0; i++) {
        uint64_t until = i < np ? s.msgs[i].seq : j->next_seq;
        for (; q < until; q++)
            if (bit_set(j, q) != 0) {
                rc = eng_error_set(e, 500, "InternalException", "out of memory");
                break;
            }
        q = until + 1;
    }
    j->pend = s.msgs;
    j->npend = np;
    s.msgs = NULL;
    /* hand the pairs of pending messages to replay; the rest are finished */
    j->rpairs = s.pairs;
    j->nrpairs = s.npairs;
    s.pairs = NULL;
    s.npairs = 0;
    if (np)
        eng_log(ENG_LOG_INFO, "journal.recovered",
                "%zu unfinished messages to replay (seq %llu..%llu)", np,
                (unsigned long long)j->pend[0].seq, (unsigned long long)j->pend[np - 1].seq);
out:
    free(s.msgs);
    free(s.done);
    for (size_t i = 0; i < s.npairs; i++)
        free(s.pairs[i].rule);
    free(s.pairs);
    return rc;
}

/* Decodes one pending MSG record into a new message. */
static eng_msg *decode(eng_journal *j, const unsigned char *b, size_t n) {
    msg_head h;
    if (n < sizeof h)
        return NULL;
    memcpy(&h, b, sizeof h);
    size_t clen = h.clientid_len == ~0u ? 0 : h.clientid_len;
    if ((uint64_t)sizeof h + h.topic_len + clen + h.payload_len + h.props_len > n)
        return NULL;
    const unsigned char *p = b + sizeof h;
    const char *topic = (const char *)p;
    p += h.topic_len;
    char *clientid = h.clientid_len == ~0u ? NULL : strndup((const char *)p, clen);
    p += clen;
    const void *payload = p;
    p += h.payload_len;
    const unsigned char *pe = p + h.props_len;
    sql_mqtt_props props = {.format_indicator = -1, .message_expiry = -1};
    sql_user_prop user[64];
    char *owned[130];
    int nowned = 0, ok = 1;
    while (ok && p + 5 <= pe) {
        uint8_t k = p[0];
        uint32_t l;
        memcpy(&l, p + 1, 4);
        p += 5;
        if (l > (size_t)(pe - p)) {
            ok = 0;
            break;
        }
        char *v = NULL;
        if (k != P_PFI && k != P_EXP) {
            if (nowned == 130 || !(v = malloc(l + 1))) {
                ok = 0;
                break;
            }
            memcpy(v, p, l);
            v[l] = '\0';
            owned[nowned++] = v;
        }
        switch (k) {
        case P_CT:
            props.content_type = v;
            break;
        case P_RT:
            props.response_topic = v;
            break;
        case P_CORR:
            props.correlation_data = v;
            props.correlation_len = l;
            break;
        case P_PFI:
            props.format_indicator = l == 1 ? p[0] : -1;
            break;
        case P_EXP:
            if (l == 8)
                memcpy(&props.message_expiry, p, 8);
            break;
        case P_UKEY:
            if (props.nuser < 64)
                user[props.nuser].key = v;
            break;
        case P_UVAL:
            if (props.nuser < 64)
                user[props.nuser++].value = v;
            break;
        }
        p += l;
    }
    props.user = user;
    eng_msg *m = ok ? eng_msg_new(topic, h.topic_len, payload, h.payload_len, &props, clientid,
                                  h.source)
                    : NULL;
    for (int i = 0; i < nowned; i++)
        free(owned[i]);
    free(clientid);
    if (!m)
        return NULL;
    m->qos = h.qos;
    m->hops = h.hops;
    m->received_ms = h.received_ms;
    eng_msg_set_seq(m, h.seq, j->instance);
    m->origin = &j->origin;
    return m;
}

int eng_journal_replay(eng_journal *j, int (*fn)(void *ud, eng_msg *m), void *ud) {
    size_t pi = 0, count = 0;
    unsigned char *b = NULL;
    size_t bcap = 0;
    int rc = 0;
    for (size_t i = 0; i < j->npend && rc == 0; i++) {
        const jpend *pe = &j->pend[i];
        if (pe->len > bcap) {
            unsigned char *nb = realloc(b, pe->len);
            if (!nb) {
                rc = -1;
                break;
            }
            b = nb;
            bcap = pe->len;
        }
        jseg *g = NULL;
        pthread_mutex_lock(&j->wmu);
        for (size_t k = 0; k < j->nsegs; k++)
            if (j->segs[k].no == pe->segno)
                g = &j->segs[k];
        int fd = g ? g->fd : -1;
        pthread_mutex_unlock(&j->wmu);
        eng_msg *m = fd >= 0 && pread(fd, b, pe->len, (off_t)pe->off) == (ssize_t)pe->len
                         ? decode(j, b, pe->len)
                         : NULL;
        if (!m) {
            /* cannot rebuild it: retire it so the journal does not wait on it forever */
            eng_log(ENG_LOG_ERROR, "journal.replay_failed", "message %llu cannot be read back",
                    (unsigned long long)pe->seq);
            eng_msg fake = {.seq = pe->seq};
            retire(j, &fake);
            continue;
        }
        while (pi < j->nrpairs && j->rpairs[pi].seq < pe->seq)
            pi++;
        size_t first = pi, k = 0;
        while (pi < j->nrpairs && j->rpairs[pi].seq == pe->seq)
            pi++;
        if (pi > first && (m->skip = calloc(pi - first, sizeof *m->skip))) {
            for (size_t t = first; t < pi; t++) {
                m->skip[k] = (eng_done_pair){j->rpairs[t].rule, j->rpairs[t].revision,
                                             j->rpairs[t].action};
                j->rpairs[t].rule = NULL; /* moved */
                k++;
            }
            m->nskip = k;
        }
        count++;
        atomic_fetch_add_explicit(&j->st_replayed, 1, memory_order_relaxed);
        rc = fn(ud, m);
    }
    free(b);
    /* the pending list and the recovered pairs are spent */
    for (size_t t = 0; t < j->nrpairs; t++)
        free(j->rpairs[t].rule);
    free(j->rpairs);
    j->rpairs = NULL;
    j->nrpairs = 0;
    free(j->pend);
    j->pend = NULL;
    j->npend = 0;
    if (count)
        eng_log(ENG_LOG_INFO, "journal.replayed", "%zu messages replayed", count);
    return rc;
}

size_t eng_journal_pending_replay(const eng_journal *j) { return j->npend; }

/* }====== */

eng_journal *eng_journal_open(const char *data_dir, const eng_journal_opts *o, eng_error *e) {
    eng_journal *j = calloc(1, sizeof *j);
    if (!j) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    snprintf(j->dir, sizeof j->dir, "%s/journal", data_dir);
    j->mode = o->mode;
    j->interval_ms = o->interval_ms > 0 ? o->interval_ms : 100;
    j->max_bytes = o->max_bytes > 0 ? (uint64_t)o->max_bytes : 1ull << 30;
    /* segments of at most 64 MiB and at least 64 KiB, eight or more to the bound, so deleting
     * finished ones frees space in useful steps */
    j->seg_bytes = j->max_bytes / 8;
    if (j->seg_bytes > 64ull << 20)
        j->seg_bytes = 64ull << 20;
    if (j->seg_bytes < 64ull << 10)
        j->seg_bytes = 64ull << 10;
    j->grow = j->seg_bytes < (1ull << 20) ? j->seg_bytes : 1ull << 20;
    j->instance = o->instance;
    const char *gate = getenv("SLUICE_TEST_COMMIT_GATE");
    if (gate && strlen(gate) < sizeof j->gate)
        snprintf(j->gate, sizeof j->gate, "%s", gate);
    j->origin = (eng_origin){retire, j};
    j->next = (jseg){.fd = -1};
    j->done_seq = 0;
    pthread_mutex_init(&j->wmu, NULL);
    pthread_cond_init(&j->wcv, NULL);
    pthread_mutex_init(&j->dmu, NULL);
    j->last_sync_ms = wall_ms();
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        eng_error_set(e, 500, "InternalException", "cannot create %s: %s", data_dir,
                      strerror(errno));
        goto fail;
    }
    if (mkdir(j->dir, 0700) != 0 && errno != EEXIST) {
        eng_error_set(e, 500, "InternalException", "cannot create %s: %s", j->dir,
                      strerror(errno));
        goto fail;
    }
    if (recover(j, e) != 0)
        goto fail;
    j->force_roll = j->nsegs > 0; /* recovered segments are only read from now on */
    j->done_seq = j->next_seq - 1;
    if (pthread_create(&j->ticker, NULL, ticker_main, j) != 0) {
        eng_error_set(e, 500, "InternalException", "cannot start the journal thread");
        goto fail;
    }
    j->ticker_started = 1;
    return j;
fail:
    eng_journal_close(j);
    return NULL;
}

void eng_journal_close(eng_journal *j) {
    if (!j)
        return;
    atomic_store(&j->stop, 1);
    if (j->ticker_started)
        pthread_join(j->ticker, NULL);
    /* what finished last goes down too, so the next start replays as little as possible */
    record_pending_done(j);
    pthread_mutex_lock(&j->wmu);
    if (j->buf.len && !j->flushing)
        flush_locked(j, 1);
    else if (j->dirty && j->nsegs)
        fdatasync(j->segs[j->nsegs - 1].fd);
    pthread_mutex_unlock(&j->wmu);
    drop_finished(j);
    if (j->next.fd >= 0)
        discard_seg(j, &j->next);
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].fd >= 0)
            close(j->segs[i].fd);
    free(j->segs);
    free(j->buf.p);
    free(j->spare.p);
    free(j->bits);
    free(j->retired);
    for (size_t i = 0; i < j->npairs; i++)
        free(j->pairs[i].rule);
    free(j->pairs);
    for (size_t i = 0; i < j->nrpairs; i++)
        free(j->rpairs[i].rule);
    free(j->rpairs);
    free(j->pend);
    pthread_mutex_destroy(&j->wmu);
    pthread_cond_destroy(&j->wcv);
    pthread_mutex_destroy(&j->dmu);
    free(j);
}

void eng_journal_stats_get(eng_journal *j, eng_journal_stats *out) {
    pthread_mutex_lock(&j->dmu);
    uint64_t lwm = j->lwm;
    pthread_mutex_unlock(&j->dmu);
    pthread_mutex_lock(&j->wmu);
    out->live_bytes = j->live_bytes;
    out->segments = j->nsegs;
    out->unfinished = j->next_seq > lwm ? j->next_seq - lwm : 0;
    out->failed = j->err != 0;
    pthread_mutex_unlock(&j->wmu);
    out->appended = atomic_load(&j->st_appended);
    out->commits = atomic_load(&j->st_commits);
    out->syncs = atomic_load(&j->st_syncs);
    out->retired = atomic_load(&j->st_retired);
    out->write_errors = atomic_load(&j->st_write_errors);
    out->corrupt = atomic_load(&j->st_corrupt);
    out->replayed = atomic_load(&j->st_replayed);
    out->bytes = atomic_load(&j->st_bytes);
    out->max_bytes = j->max_bytes;
}

/*
 * file.c -- the file action (an extension): append each output as one JSON line to a file.
 *
 *   {"file": {"path": "telemetry/out.jsonl", "fsync": "batch" | "interval" | "none",
 *             "fsyncIntervalMs": 1000}}
 *
 * Where: the path names a file beneath the base directory (actions.file.baseDir, default
 * <dataDir>/out), relative to it or absolute beneath it; ".." is refused, and so is any place
 * inside the data dir's own stores (rules, dead letters, journal, shadows: everything there but
 * out/) or the certificate directory. The file is opened beneath the base with no symlink
 * followed and no way out: openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or where
 * that is refused (kernel before 5.6, a seccomp filter) a walk that opens one component at a
 * time with O_NOFOLLOW relative to the last one, which checks the same thing with no window
 * between check and use. Directories are not created (a missing one is a transient error),
 * except the base directory itself. The opened file must be a regular file with a single link
 * (a hard link could be a file outside the base, a FIFO would block the lane).
 *
 * What: one JSON line per output (act_file__line): the output when it is JSON, else a JSON
 * string or {"base64": ...}. Raw bytes never reach the file, so a rule cannot write a crontab
 * line, a shell script or a shared library.
 *
 * One lane, so lines keep the order the rule fired in; a batch is one writev(2) of up to 1024
 * lines, then (fsync "batch", the default) one fdatasync before the batch counts as delivered.
 * "interval" syncs at most every fsyncIntervalMs (a crash may lose that much), "none" leaves it
 * to the kernel. The file is opened lazily with O_APPEND and reopened after an error, so a
 * rotated-away or deleted file is recreated. A short write is finished before anything else
 * is written, so a line is never interleaved or torn by our own writes.
 * Errors: a full or failing disk (ENOSPC, EIO, EDQUOT...) and a missing directory are
 * transient; a path that cannot be opened for lack of permission, because it is a directory,
 * a symlink or not a regular file, is permanent.
 */
#define _GNU_SOURCE /* O_PATH */
#include "file_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { SYNC_BATCH, SYNC_INTERVAL, SYNC_NONE };
#define FILE_MAX_BATCH 1024
#define FILE_MODE 0640

typedef struct file_action {
    act_instance base;
    char *dir;           /* the base directory, absolute and resolved */
    char *rel;           /* the file beneath it: no "..", ".", empty component or symlink */
    char *path;          /* dir/rel, for messages */
    int sync;
    int interval_ms;
    int fd;              /* lane 0's; -1 until opened */
    uint64_t last_sync_ns;
    int dirty;
    act_buf scratch;     /* lines that are not the output as it is */
} file_action;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* {====== where: the path checked at open(), the file opened beneath the base */

#define FERR(e, ...) eng_error_set(e, 400, "InvalidRequestException", "file action: " __VA_ARGS__)

/* rel checked and normalized into out: components joined by single slashes, "." dropped. */
static int clean_rel(const char *rel, char *out, size_t cap, eng_error *e) {
    size_t len = 0;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && !memcmp(p, "..", 2))
            return FERR(e, "\"path\" may not contain \"..\"");
        if (n && !(n == 1 && *p == '.')) {
            if (len + n + 2 > cap)
                return FERR(e, "\"path\" is too long");
            if (len)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p += n;
        while (*p == '/')
            p++;
    }
    out[len] = '\0';
    if (!len)
        return FERR(e, "\"path\" names the base directory itself, not a file in it");
    if (rel[strlen(rel) - 1] == '/')
        return FERR(e, "\"path\" names a directory, not a file");
    return 0;
}

/* Fills f->dir, f->rel and f->path from the rule's path and the host's directories. */
static int place(file_action *f, const eng_host *h, const char *path, eng_error *e) {
    char base[PATH_MAX], lexbase[PATH_MAX + 2], rel[PATH_MAX + 2], target[2 * PATH_MAX + 2];
    const char *cfg = h->file_base_dir;
    if (!cfg[0]) { /* the default: <dataDir>/out */
        if (!h->data_dir[0])
            return FERR(e, "no base directory is configured (actions.file.baseDir)");
        snprintf(lexbase, sizeof lexbase, "%s/out", h->data_dir);
        cfg = lexbase;
    }
    if (act_path_absolute(cfg, base, sizeof base))
        return FERR(e, "the base directory %s cannot be resolved", cfg);
    if (strstr(path, "${"))
        return FERR(e, "\"path\" cannot contain substitution templates");
    const char *r = path;
    if (path[0] == '/') {
        /* an absolute path names the same file when it lies beneath the base as configured
         * or as resolved; ".." is refused before anything is normalized */
        char lexpath[PATH_MAX];
        if (clean_rel(path + 1, lexpath, sizeof lexpath, e))
            return -1;
        snprintf(rel, sizeof rel, "/%s", lexpath);
        size_t bl = 0;
        char plain[PATH_MAX];
        if (act_path_within(rel, base)) {
            bl = strlen(base);
        } else if (cfg[0] == '/' && !clean_rel(cfg + 1, plain, sizeof plain, e)) {
            snprintf(lexbase, sizeof lexbase, "/%s", plain); /* the base as configured */
            if (act_path_within(rel, lexbase))
                bl = strlen(lexbase);
        }
        if (!bl)
            return FERR(e, "\"path\" %.300s is not beneath the base directory %s "
                           "(actions.file.baseDir); give a path relative to it",
                        path, base);
        r = rel + bl;
        while (*r == '/')
            r++;
    }
    char clean[PATH_MAX];
    if (clean_rel(r, clean, sizeof clean, e))
        return -1;
    snprintf(target, sizeof target, "%s%s%s", base, strcmp(base, "/") ? "/" : "", clean);
    if (strlen(target) >= PATH_MAX)
        return FERR(e, "\"path\" is too long");
    /* the data dir's own stores and the certificate directory are never written */
    char dd[PATH_MAX], out[PATH_MAX + 4], cd[PATH_MAX];
    if (h->data_dir[0] && !act_path_absolute(h->data_dir, dd, sizeof dd)) {
        snprintf(out, sizeof out, "%s/out", dd);
        if (act_path_within(target, dd) && !act_path_within(target, out))
            return FERR(e, "\"path\" %.300s is inside the data directory %s, where only out/ "
                           "may be written (its stores are sluice's own)",
                        target, dd);
    }
    if (h->cert_dir[0] && !act_path_absolute(h->cert_dir, cd, sizeof cd) &&
        act_path_within(target, cd))
        return FERR(e, "\"path\" %.300s is inside the certificate directory %s", target, cd);
    if (!(f->dir = strdup(base)) || !(f->rel = strdup(clean)) || !(f->path = strdup(target)))
        return eng_error_set(e, 500, "InternalException", "out of memory");
    return 0;
}

#define OPEN_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)

static int open_openat2(int dirfd, const char *rel) {
    struct open_how how = {.flags = OPEN_FLAGS,
                           .mode = FILE_MODE,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
}

/* One component at a time, each opened relative to the last with O_NOFOLLOW: a symlink
 * anywhere fails with ELOOP (or ENOTDIR), and rel has no "..", so the walk cannot leave dirfd. */
static int open_walk(int dirfd, const char *rel) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", rel);
    int dir = dirfd, fd = -1;
    char *comp = buf, *slash;
    while ((slash = strchr(comp, '/'))) {
        *slash = '\0';
        int next = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int en = errno;
        if (dir != dirfd)
            close(dir);
        if (next < 0) {
            errno = en;
            return -1;
        }
        dir = next;
        comp = slash + 1;
    }
    fd = openat(dir, comp, OPEN_FLAGS, FILE_MODE);
    int en = errno;
    if (dir != dirfd)
        close(dir);
    errno = en;
    return fd;
}

int act_file__open_beneath(const char *base, const char *rel, int how) {
    int dirfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno == ENOENT && mkdir(base, 0750) == 0)
        dirfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -1;
    int fd = -1;
    if (how != ACT_FILE_OPEN_WALK) {
        fd = open_openat2(dirfd, rel);
        /* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that does not know it */
        if (fd < 0 && how == ACT_FILE_OPEN_AUTO && (errno == ENOSYS || errno == EPERM))
            how = ACT_FILE_OPEN_WALK;
    }
    if (how == ACT_FILE_OPEN_WALK)
        fd = open_walk(dirfd, rel);
    int en = errno;
    close(dirfd);
    if (fd < 0) {
        errno = en;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1 ||
        fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) != 0) {
        en = !S_ISREG(st.st_mode) ? EINVAL : st.st_nlink > 1 ? EMLINK : errno;
        close(fd);
        errno = en;
        return -1;
    }
    return fd;
}

/* }====== */

/* {====== what: one JSON line per output */

int act_file__line(act_buf *b, const char *p, size_t n) {
    if (act_json_valid(p, n)) {
        size_t start = b->len;
        if (act_buf_put(b, p, n))
            return -1;
        for (size_t i = start; i < b->len; i++)
            if (b->p[i] == '\n' || b->p[i] == '\r')
                b->p[i] = ' ';
    } else if (act_utf8_valid(p, n)) {
        if (act_buf_put_json_string(b, p, n, NULL))
            return -1;
    } else {
        char *enc = malloc((n + 2) / 3 * 4 + 1);
        if (!enc)
            return -1;
        size_t el = sql_base64_encode(p, n, enc);
        int rc = act_buf_puts(b, "{\"base64\":\"") || act_buf_put(b, enc, el) ||
                 act_buf_puts(b, "\"}");
        free(enc);
        if (rc)
            return -1;
    }
    return act_buf_put(b, "\n", 1);
}

/* 1 when the output is its own line: JSON with no raw line break (the common case, written
 * from the message itself with no copy). */
static int as_is(const act_msg *m) {
    return !memchr(m->payload, '\n', m->payload_len) &&
           !memchr(m->payload, '\r', m->payload_len) &&
           act_json_valid(m->payload, m->payload_len);
}

/* }====== */

typedef struct fa_opts {
    const char *path;
    int sync;
    int interval_ms;
} fa_opts;

static const char *const sync_modes[] = {"batch", "interval", "none", NULL}; /* ORDER SYNC_ */

static const act_option fa_options[] = {
    {.key = "path", .type = ACT_OPT_STRING, .required = 1, .offset = offsetof(fa_opts, path),
     .min = 1, .max = 1024,
     .help = "the file to append to, relative to actions.file.baseDir (default <dataDir>/out) "
             "or absolute beneath it; no \"..\" and no symlinks"},
    {.key = "fsync", .type = ACT_OPT_ENUM, .offset = offsetof(fa_opts, sync), .def = SYNC_BATCH,
     .choices = sync_modes,
     .help = "batch: fdatasync before a batch counts as delivered; interval: at most every "
             "fsyncIntervalMs; none: leave it to the kernel"},
    {.key = "fsyncIntervalMs", .type = ACT_OPT_INT, .offset = offsetof(fa_opts, interval_ms),
     .min = 1, .max = 3600000, .def = 1000, .help = "with fsync interval"},
    {0},
};

static void fa_close(act_instance *self);

static int fa_open(const act_config *cfg, act_instance **out, eng_error *e) {
    fa_opts o = {0};
    if (act_options_parse("file", fa_options, cfg->params, &o, e))
        return -1;
    file_action *f = calloc(1, sizeof *f);
    if (!f)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    f->fd = -1;
    if (place(f, cfg->host, o.path, e)) {
        fa_close(&f->base);
        return -1;
    }
    f->sync = o.sync;
    f->interval_ms = o.interval_ms;
    f->base.lanes = 1;
    f->base.max_batch = FILE_MAX_BATCH;
    snprintf(f->base.resource, sizeof f->base.resource, "%s", f->path);
    *out = &f->base;
    return 0;
}

static size_t fa_templates(act_instance *self, const char *const **tpl) {
    *tpl = NULL;
    return 0;
}

static act_result classify(int err) {
    return err == EACCES || err == EPERM || err == EISDIR || err == ENOTDIR || err == EROFS ||
                   err == ENAMETOOLONG || err == ELOOP || err == EXDEV || err == ENXIO ||
                   err == EINVAL || err == EMLINK
               ? ACT_FAIL
               : ACT_RETRY;
}

static const char *open_error(int en) {
    switch (en) {
    case ELOOP:
    case EXDEV:
        return "a symbolic link on the way (none is followed beneath the base directory)";
    case ENXIO:
    case EINVAL:
        return "not a regular file";
    case EMLINK:
        return "the file has other hard links (one could be outside the base directory)";
    default:
        return strerror(en);
    }
}

static void reset(file_action *f) {
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static act_result fa_deliver(act_instance *self, int lane, const act_msg *const *batch,
                             size_t n, size_t *ndone, char *err, size_t cap) {
    file_action *f = (file_action *)self;
    *ndone = 0;
    if (f->fd < 0) {
        f->fd = act_file__open_beneath(f->dir, f->rel, ACT_FILE_OPEN_AUTO);
        if (f->fd < 0) {
            int en = errno;
            snprintf(err, cap, "cannot open %s: %s", f->path, open_error(en));
            return classify(en);
        }
    }
    struct iovec iov[2 * FILE_MAX_BATCH];
    size_t off[FILE_MAX_BATCH], line_len[FILE_MAX_BATCH];
    size_t niov = 0, total = 0;
    if (n > FILE_MAX_BATCH)
        n = FILE_MAX_BATCH;
    /* lines that are not the output as it is go to scratch first; their iovecs are set once
     * scratch has stopped moving */
    f->scratch.len = 0;
    for (size_t i = 0; i < n; i++) {
        const act_msg *m = batch[i];
        if (as_is(m)) {
            off[i] = SIZE_MAX;
            line_len[i] = m->payload_len + 1;
            continue;
        }
        off[i] = f->scratch.len;
        if (act_file__line(&f->scratch, m->payload, m->payload_len)) {
            snprintf(err, cap, "out of memory");
            return ACT_RETRY;
        }
        line_len[i] = f->scratch.len - off[i];
    }
    for (size_t i = 0; i < n; i++) {
        if (off[i] == SIZE_MAX) {
            iov[niov++] = (struct iovec){(void *)batch[i]->payload, batch[i]->payload_len};
            iov[niov++] = (struct iovec){(void *)"\n", 1};
        } else {
            iov[niov++] = (struct iovec){f->scratch.p + off[i], line_len[i]};
        }
        total += line_len[i];
    }
    size_t written = 0, first = 0;
    while (written < total) {
        ssize_t w = writev(f->fd, iov + first, (int)(niov - first > 1024 ? 1024 : niov - first));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int en = errno;
            snprintf(err, cap, "write to %s failed: %s", f->path, strerror(en));
            if (written == 0) {
                reset(f);
                return classify(en);
            }
            /* part of a line is out: finish it on the next call would interleave nothing, but
             * the file now holds a torn line; fsync what is whole and report the rest */
            reset(f);
            break;
        }
        written += (size_t)w;
        while (first < niov && (size_t)w >= iov[first].iov_len) {
            w -= (ssize_t)iov[first].iov_len;
            first++;
        }
        if (first < niov) {
            iov[first].iov_base = (char *)iov[first].iov_base + w;
            iov[first].iov_len -= (size_t)w;
        }
    }
    f->dirty = 1;
    uint64_t now = mono_ns();
    int want = f->sync == SYNC_BATCH ||
               (f->sync == SYNC_INTERVAL &&
                now - f->last_sync_ns >= (uint64_t)f->interval_ms * 1000000u);
    if (want && f->fd >= 0) {
        if (fdatasync(f->fd) != 0) {
            int en = errno;
            snprintf(err, cap, "fdatasync of %s failed: %s", f->path, strerror(en));
            reset(f);
            return ACT_RETRY; /* the lines may not be durable: deliver them again */
        }
        f->last_sync_ns = now;
        f->dirty = 0;
    }
    /* count the whole lines written */
    size_t done = 0, acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += line_len[i];
        if (acc > written)
            break;
        done++;
    }
    *ndone = done;
    if (done == n)
        return ACT_OK;
    return ACT_RETRY;
}

static int fa_format(act_instance *self, const act_msg *const *batch, size_t n, act_buf *out) {
    for (size_t i = 0; i < n; i++)
        if (act_file__line(out, batch[i]->payload, batch[i]->payload_len))
            return -1;
    return 0;
}

static void fa_close(act_instance *self) {
    file_action *f = (file_action *)self;
    if (!f)
        return;
    if (f->fd >= 0) {
        if (f->dirty)
            fdatasync(f->fd);
        close(f->fd);
    }
    act_buf_deinit(&f->scratch);
    free(f->dir);
    free(f->rel);
    free(f->path);
    free(f);
}

const act_vtable act_file_vtable = {
    .version = ACT_VTABLE_VERSION,
    .name = "file",
    .aws_name = "FileAction",
    .open = fa_open,
    .templates = fa_templates,
    .deliver = fa_deliver,
    .format = fa_format,
    .close = fa_close,
    .description = "append each output as one JSON line to a file (an extension)",
    .options = fa_options,
};

/*
 * file.c -- the file action (an extension): append each output as one line to a file.
 *
 *   {"file": {"path": "/var/lib/sluice/out.jsonl", "fsync": "batch" | "interval" | "none",
 *             "fsyncIntervalMs": 1000}}
 *
 * One lane, so lines keep the order the rule fired in; a batch is one writev(2) of up to 1024
 * lines, then (fsync "batch", the default) one fdatasync before the batch counts as delivered.
 * "interval" syncs at most every fsyncIntervalMs (a crash may lose that much), "none" leaves it
 * to the kernel. The file is opened lazily with O_APPEND and reopened after an error, so a
 * rotated-away or deleted file is recreated. A short write is finished before anything else
 * is written, so a line is never interleaved or torn by our own writes.
 * Errors: a full or failing disk (ENOSPC, EIO, EDQUOT...) is transient; a path that cannot be
 * opened for lack of permission or because it is a directory is permanent.
 */
#include "../action.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { SYNC_BATCH, SYNC_INTERVAL, SYNC_NONE };
#define FILE_MAX_BATCH 1024

typedef struct file_action {
    act_instance base;
    char *path;
    int sync;
    int interval_ms;
    int fd;              /* lane 0's; -1 until opened */
    uint64_t last_sync_ns;
    int dirty;
} file_action;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct fa_opts {
    const char *path;
    int sync;
    int interval_ms;
} fa_opts;

static const char *const sync_modes[] = {"batch", "interval", "none", NULL}; /* ORDER SYNC_ */

static const act_option fa_options[] = {
    {.key = "path", .type = ACT_OPT_STRING, .required = 1, .offset = offsetof(fa_opts, path),
     .min = 1, .max = 1024, .help = "the file to append to"},
    {.key = "fsync", .type = ACT_OPT_ENUM, .offset = offsetof(fa_opts, sync), .def = SYNC_BATCH,
     .choices = sync_modes,
     .help = "batch: fdatasync before a batch counts as delivered; interval: at most every "
             "fsyncIntervalMs; none: leave it to the kernel"},
    {.key = "fsyncIntervalMs", .type = ACT_OPT_INT, .offset = offsetof(fa_opts, interval_ms),
     .min = 1, .max = 3600000, .def = 1000, .help = "with fsync interval"},
    {0},
};

static int fa_open(const act_config *cfg, act_instance **out, eng_error *e) {
    fa_opts o = {0};
    if (act_options_parse("file", fa_options, cfg->params, &o, e))
        return -1;
    if (o.path[0] != '/')
        return eng_error_set(e, 400, "InvalidRequestException",
                             "file action: \"path\" must be an absolute file path");
    if (strstr(o.path, "${"))
        return eng_error_set(e, 400, "InvalidRequestException",
                             "file action: \"path\" cannot contain substitution templates");
    file_action *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(o.path))) {
        free(f);
        return eng_error_set(e, 500, "InternalException", "out of memory");
    }
    f->sync = o.sync;
    f->interval_ms = o.interval_ms;
    f->fd = -1;
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
                   err == ENAMETOOLONG || err == ELOOP
               ? ACT_FAIL
               : ACT_RETRY;
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
        f->fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (f->fd < 0) {
            int en = errno;
            snprintf(err, cap, "cannot open %s: %s", f->path, strerror(en));
            return classify(en);
        }
    }
    struct iovec iov[2 * FILE_MAX_BATCH];
    size_t niov = 0, total = 0;
    if (n > FILE_MAX_BATCH)
        n = FILE_MAX_BATCH;
    for (size_t i = 0; i < n; i++) {
        iov[niov++] = (struct iovec){(void *)batch[i]->payload, batch[i]->payload_len};
        iov[niov++] = (struct iovec){(void *)"\n", 1};
        total += batch[i]->payload_len + 1;
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
        acc += batch[i]->payload_len + 1;
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
        if (act_buf_put(out, batch[i]->payload, batch[i]->payload_len) ||
            act_buf_put(out, "\n", 1))
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

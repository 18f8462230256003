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

static int fa_open(const act_config *cfg, act_instance **out, eng_error *e) {
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(cfg->params, "path");
    const cJSON *sync = cJSON_GetObjectItemCaseSensitive(cfg->params, "fsync");
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(cfg->params, "fsyncIntervalMs");
    const cJSON *k;
    cJSON_ArrayForEach(k, cfg->params) {
        if (strcmp(k->string, "path") && strcmp(k->string, "fsync") &&
            strcmp(k->string, "fsyncIntervalMs"))
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "file action: unknown parameter \"%s\"", k->string);
    }
    if (!cJSON_IsString(path) || path->valuestring[0] != '/')
        return eng_error_set(e, 400, "InvalidRequestException",
                             "file action: \"path\" must be an absolute file path");
    if (strstr(path->valuestring, "${"))
        return eng_error_set(e, 400, "InvalidRequestException",
                             "file action: \"path\" cannot contain substitution templates");
    int mode = SYNC_BATCH;
    if (sync) {
        if (!cJSON_IsString(sync) ||
            (strcmp(sync->valuestring, "batch") && strcmp(sync->valuestring, "interval") &&
             strcmp(sync->valuestring, "none")))
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "file action: \"fsync\" must be batch, interval or none");
        mode = !strcmp(sync->valuestring, "batch")      ? SYNC_BATCH
               : !strcmp(sync->valuestring, "interval") ? SYNC_INTERVAL
                                                        : SYNC_NONE;
    }
    int interval = 1000;
    if (iv) {
        if (!cJSON_IsNumber(iv) || iv->valuedouble < 1 || iv->valuedouble > 3600000)
            return eng_error_set(e, 400, "InvalidRequestException",
                                 "file action: \"fsyncIntervalMs\" must be from 1 to 3600000");
        interval = (int)iv->valuedouble;
    }
    file_action *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path->valuestring))) {
        free(f);
        return eng_error_set(e, 500, "InternalException", "out of memory");
    }
    f->sync = mode;
    f->interval_ms = interval;
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
};

/*
 * rules_dir.c -- the rules on disk: one JSON file per rule, <data_dir>/rules/<name>.json,
 *
 *   {"ruleName": "...", "createdAt": 1700000000, "revision": 3, "topicRulePayload": {...}}
 *
 * A change writes the rule's file atomically: a temporary file in the same directory, fsync,
 * rename over the old file, fsync of the directory; a crash leaves the old file or the new one.
 * One file per rule rather than one file for all keeps a change O(1): rewriting a single file
 * of 10 000 rules on every create made loading a large rule set quadratic (measured: 6 600
 * creates in two minutes). At start-up a missing directory is an empty store; a file that
 * cannot be read or parsed is an error that stops start-up (silently starting without a rule
 * would drop the messages the user expects it to handle).
 *
 * Only this instance writes the directory, and the registry serializes its writes, so the
 * files are the truth: a rule exists when its file does, and a replace reads the revision from
 * it. The change numbers (seq) are a counter in memory: nobody else changes the store, so
 * nothing needs them to survive a restart.
 */
#include "store.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct dir_store {
    eng_rule_store base;
    char dir[600];            /* <data_dir>/rules */
    _Atomic uint64_t seq;
} dir_store;

static int mkdirs(const char *dir) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static int sync_dir(const char *dir, eng_error *e) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return eng_error_set(e, 500, "InternalException", "cannot open %s: %s", dir,
                             strerror(errno));
    int rc = fsync(dfd);
    close(dfd);
    return rc ? eng_error_set(e, 500, "InternalException", "cannot sync %s: %s", dir,
                              strerror(errno))
              : 0;
}

static int write_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes text to dir/name atomically: a temporary file, fsync, rename, fsync of dir. */
static int atomic_write(const char *dir, const char *name, const char *text, eng_error *e) {
    char path[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", dir, name, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return eng_error_set(e, 500, "InternalException", "cannot write %s: %s", tmp,
                             strerror(errno));
    if (write_all(fd, text, strlen(text)) || write_all(fd, "\n", 1) || fsync(fd)) {
        eng_error_set(e, 500, "InternalException", "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        eng_error_set(e, 500, "InternalException", "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return sync_dir(dir, e);
}

static void file_path(const dir_store *st, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.json", st->dir, name);
}

/* Reads one rule file into *row (payload included). A file that is not a sluice rule is an
 * error naming it; ENOENT is a 404. */
static int read_file(const char *path, eng_rule_row *row, eng_error *e) {
    memset(row, 0, sizeof *row);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? eng_error_set(e, 404, "ResourceNotFoundException",
                                               "rule does not exist")
                               : eng_error_set(e, 500, "InternalException",
                                               "cannot read %s: %s", path, strerror(errno));
    char *buf = malloc(300 * 1024);
    size_t len = buf ? fread(buf, 1, 300 * 1024, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr) {
        free(buf);
        return eng_error_set(e, 500, "InternalException", "cannot read %s", path);
    }
    cJSON *r = cJSON_ParseWithLength(buf, len);
    free(buf);
    const cJSON *name = r ? cJSON_GetObjectItemCaseSensitive(r, "ruleName") : NULL;
    const cJSON *at = r ? cJSON_GetObjectItemCaseSensitive(r, "createdAt") : NULL;
    const cJSON *rev = r ? cJSON_GetObjectItemCaseSensitive(r, "revision") : NULL;
    const cJSON *payload = r ? cJSON_GetObjectItemCaseSensitive(r, "topicRulePayload") : NULL;
    if (!cJSON_IsString(name) || !cJSON_IsObject(payload) ||
        strlen(name->valuestring) >= sizeof row->name) {
        cJSON_Delete(r);
        return eng_error_set(e, 500, "InternalException",
                             "%s is corrupt (not a sluice rule); refusing to start without the "
                             "rule it should hold",
                             path);
    }
    snprintf(row->name, sizeof row->name, "%s", name->valuestring);
    row->created_at = cJSON_IsNumber(at) ? eng_json_i64(at->valuedouble, 0) : 0;
    row->revision =
        cJSON_IsNumber(rev) && rev->valuedouble >= 0 ? (uint64_t)rev->valuedouble : 0;
    row->payload_json = cJSON_PrintUnformatted(payload);
    cJSON_Delete(r);
    return row->payload_json ? 0 : eng_error_set(e, 500, "InternalException", "out of memory");
}

/* Writes the rule's file; fills *out. */
static int put(dir_store *st, const char *name, const char *payload_json, int64_t created_at,
               uint64_t revision, eng_rule_row *out, eng_error *e) {
    if (mkdirs(st->dir) != 0)
        return eng_error_set(e, 500, "InternalException", "cannot create %s: %s", st->dir,
                             strerror(errno));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ruleName", name);
    cJSON_AddNumberToObject(o, "createdAt", (double)created_at);
    cJSON_AddNumberToObject(o, "revision", (double)revision); /* dead letters refer to it */
    cJSON_AddItemToObject(o, "topicRulePayload", cJSON_Parse(payload_json));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    char file[160];
    snprintf(file, sizeof file, "%s.json", name);
    int rc = atomic_write(st->dir, file, text, e);
    free(text);
    if (rc == 0 && out) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->created_at = created_at;
        out->revision = revision;
        out->seq = atomic_fetch_add(&st->seq, 1) + 1;
    }
    return rc;
}

static int dir_get(eng_rule_store *self, const char *name, eng_rule_row *out, eng_error *e) {
    char path[800];
    file_path((dir_store *)self, name, path, sizeof path);
    if (read_file(path, out, e) == 0)
        return 0;
    if (e->status == 404)
        eng_error_set(e, 404, "ResourceNotFoundException", "rule %s does not exist", name);
    return -1;
}

static int dir_create(eng_rule_store *self, const char *name, const char *payload_json,
                      eng_rule_row *out, eng_error *e) {
    dir_store *st = (dir_store *)self;
    char path[800];
    file_path(st, name, path, sizeof path);
    if (access(path, F_OK) == 0)
        return eng_error_set(e, 409, "ResourceAlreadyExistsException",
                             "rule %s already exists", name);
    return put(st, name, payload_json, (int64_t)time(NULL), 0, out, e);
}

static int dir_replace(eng_rule_store *self, const char *name, const char *payload_json,
                       uint64_t expect_revision, eng_rule_row *out, eng_error *e) {
    dir_store *st = (dir_store *)self;
    eng_rule_row cur;
    if (dir_get(self, name, &cur, e))
        return -1;
    eng_rule_row_deinit(&cur);
    if (expect_revision != ENG_RULE_ANY_REVISION && cur.revision != expect_revision)
        return eng_error_set(e, 409, "ConflictingResourceUpdateException",
                             "rule %s changed meanwhile (revision %llu, expected %llu)", name,
                             (unsigned long long)cur.revision,
                             (unsigned long long)expect_revision);
    return put(st, name, payload_json, cur.created_at, cur.revision + 1, out, e);
}

static int dir_remove(eng_rule_store *self, const char *name, eng_rule_row *out,
                      eng_error *e) {
    dir_store *st = (dir_store *)self;
    char path[800];
    file_path(st, name, path, sizeof path);
    if (unlink(path) != 0)
        return errno == ENOENT ? eng_error_set(e, 404, "ResourceNotFoundException",
                                               "rule %s does not exist", name)
                               : eng_error_set(e, 500, "InternalException",
                                               "cannot delete %s: %s", path, strerror(errno));
    if (sync_dir(st->dir, e))
        return -1;
    if (out) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->seq = atomic_fetch_add(&st->seq, 1) + 1;
    }
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int dir_load(eng_rule_store *self, eng_rule_row_fn fn, void *ud, uint64_t *upto,
                    eng_error *e) {
    dir_store *st = (dir_store *)self;
    struct dirent **ents;
    int n = scandir(st->dir, &ents, NULL, by_name);
    *upto = atomic_load(&st->seq);
    if (n < 0) {
        if (errno == ENOENT)
            return 0; /* a new data dir: no rules yet */
        return eng_error_set(e, 500, "InternalException", "cannot read %s: %s", st->dir,
                             strerror(errno));
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        size_t l = strlen(nm);
        if (!rc && nm[0] != '.' && l > 5 && !strcmp(nm + l - 5, ".json")) {
            char path[900];
            snprintf(path, sizeof path, "%s/%s", st->dir, nm);
            eng_rule_row row;
            if ((rc = read_file(path, &row, e)) == 0) {
                row.seq = atomic_fetch_add(&st->seq, 1) + 1;
                eng_error sub = {0};
                if ((rc = fn(ud, &row, &sub)) != 0)
                    eng_error_set(e, 500, "InternalException", "%s: rule %s cannot be loaded: "
                                  "%s", path, row.name, sub.message);
                eng_rule_row_deinit(&row);
            }
        }
        free(ents[i]);
    }
    free(ents);
    *upto = atomic_load(&st->seq);
    return rc;
}

static void dir_close(eng_rule_store *self) { free(self); }

static const eng_rule_store_vt dir_vt = {
    .version = 1,
    .name = "dataDir",
    .shared = 0,
    .load = dir_load,
    .changes = NULL,
    .get = dir_get,
    .create = dir_create,
    .replace = dir_replace,
    .remove = dir_remove,
    .close = dir_close,
};

eng_rule_store *eng_rule_store_dir_open(const char *data_dir, eng_error *e) {
    dir_store *st = calloc(1, sizeof *st);
    if (!st) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        return NULL;
    }
    st->base.vt = &dir_vt;
    snprintf(st->dir, sizeof st->dir, "%s/rules", data_dir);
    return &st->base;
}

void eng_rule_row_deinit(eng_rule_row *r) {
    if (!r)
        return;
    free(r->payload_json);
    r->payload_json = NULL;
}

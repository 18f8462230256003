/*
 * rule_store.c -- the rules on disk: <data_dir>/rules.json.
 *
 *   {"version": 1, "rules": [{"ruleName": "...", "createdAt": 1700000000,
 *                             "topicRulePayload": {...}}, ...]}
 *
 * Every change rewrites the whole file atomically: write a temporary file in the same
 * directory, fsync it, rename it over rules.json, fsync the directory. A crash leaves either
 * the old file or the new one. At start-up a missing file is an empty store; a file that
 * cannot be read or parsed is an error that stops start-up (silently starting with no rules
 * would drop every message the user expects to be handled).
 */
#include "engine_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdirs(const char *dir) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
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

int eng_store_save(const char *data_dir, eng_rule *const *rules, size_t n, eng_error *e) {
    if (mkdirs(data_dir) != 0)
        return eng_error_set(e, 500, "InternalException", "cannot create data dir %s: %s",
                             data_dir, strerror(errno));
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON *arr = cJSON_AddArrayToObject(root, "rules");
    for (size_t i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "ruleName", rules[i]->name);
        cJSON_AddNumberToObject(r, "createdAt", (double)rules[i]->created_at);
        cJSON_AddItemToObject(r, "topicRulePayload", cJSON_Parse(rules[i]->payload_json));
        cJSON_AddItemToArray(arr, r);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    char path[600], tmp[640];
    snprintf(path, sizeof path, "%s/rules.json", data_dir);
    snprintf(tmp, sizeof tmp, "%s/.rules.json.%d.tmp", data_dir, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = -1;
    if (fd < 0) {
        eng_error_set(e, 500, "InternalException", "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, text, strlen(text)) || write_all(fd, "\n", 1) || fsync(fd)) {
        eng_error_set(e, 500, "InternalException", "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        eng_error_set(e, 500, "InternalException", "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    free(text);
    return rc;
}

int eng_store_load(const char *data_dir,
                   int (*fn)(void *ud, const char *name, const char *payload_json,
                             int64_t created_at, eng_error *e),
                   void *ud, eng_error *e) {
    char path[600];
    snprintf(path, sizeof path, "%s/rules.json", data_dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return eng_error_set(e, 500, "InternalException", "cannot read %s: %s", path,
                             strerror(errno));
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr) {
        free(buf);
        return eng_error_set(e, 500, "InternalException", "cannot read %s", path);
    }
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "rules") : NULL;
    if (!root || !cJSON_IsArray(arr)) {
        cJSON_Delete(root);
        return eng_error_set(e, 500, "InternalException",
                             "%s is corrupt (not a sluice rule store); refusing to start "
                             "without the rules it should hold",
                             path);
    }
    int rc = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, arr) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "ruleName");
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(r, "createdAt");
        const cJSON *payload = cJSON_GetObjectItemCaseSensitive(r, "topicRulePayload");
        if (!cJSON_IsString(name) || !cJSON_IsObject(payload)) {
            rc = eng_error_set(e, 500, "InternalException", "%s is corrupt: a rule entry lacks "
                               "ruleName or topicRulePayload", path);
            break;
        }
        char *json = cJSON_PrintUnformatted(payload);
        eng_error sub;
        memset(&sub, 0, sizeof sub);
        int frc = json ? fn(ud, name->valuestring, json,
                            cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0, &sub)
                       : -1;
        free(json);
        if (frc) {
            rc = eng_error_set(e, 500, "InternalException", "%s: rule %s cannot be loaded: %s",
                               path, name->valuestring, sub.message);
            break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

/*
 * paths.c -- file names a rule may give, checked against the directory sluice lets it use.
 *
 * Settings that make a client library read a file (Kafka's ssl.*.location, PostgreSQL's
 * sslkey, passfile...) are accepted only for files beneath the certificate directory
 * (actions.kafka.certDir). The check resolves both the directory and the file with
 * realpath(3), so a symlink or a ".." is judged by where it really leads, and the library is
 * handed the resolved name, never the one the rule wrote. What remains possible is a race with
 * whoever can change the certificate directory between the check and the library's open: that
 * directory is the operator's, and nothing a rule does writes into it (the file action refuses
 * it).
 *
 * The file action's base directory and the service's own directories are compared as absolute
 * paths with the symlinks of their existing part resolved (act_path_absolute), so a data dir
 * configured as "./data" and a base dir that reaches it through a symlink are still the same
 * place.
 */
#include "action.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int act_path_beneath(const char *dir, const char *path, char *out, size_t cap, char *why,
                     size_t wcap) {
    char *rdir = NULL, *rpath = NULL, joined[PATH_MAX];
    int rc = -1;
    if (!dir || !*dir) {
        snprintf(why, wcap, "no certificate directory is configured (actions.kafka.certDir), "
                            "so no file may be named");
        goto out;
    }
    if (!*path) {
        snprintf(why, wcap, "is empty");
        goto out;
    }
    if (!(rdir = realpath(dir, NULL))) {
        snprintf(why, wcap, "the certificate directory %s cannot be resolved: %s", dir,
                 strerror(errno));
        goto out;
    }
    int n = path[0] == '/' ? snprintf(joined, sizeof joined, "%s", path)
                           : snprintf(joined, sizeof joined, "%s/%s", rdir, path);
    if (n < 0 || (size_t)n >= sizeof joined) {
        snprintf(why, wcap, "is too long");
        goto out;
    }
    if (!(rpath = realpath(joined, NULL))) {
        snprintf(why, wcap, "'%.200s' cannot be resolved: %s", path, strerror(errno));
        goto out;
    }
    size_t dl = strlen(rdir);
    int beneath = !strncmp(rpath, rdir, dl) && (rpath[dl] == '/' || rpath[dl] == '\0' ||
                                                  (dl == 1 && rdir[0] == '/'));
    if (!beneath) {
        snprintf(why, wcap, "'%.200s' is not beneath the certificate directory %s "
                 "(actions.kafka.certDir)", path, rdir);
        goto out;
    }
    if (strlen(rpath) >= cap) {
        snprintf(why, wcap, "is too long");
        goto out;
    }
    memcpy(out, rpath, strlen(rpath) + 1);
    rc = 0;
out:
    free(rdir);
    free(rpath);
    return rc;
}

/* Appends the components of p to out[0..*len) ("." and empty ones dropped, ".." pops one). */
static int push_components(char *out, size_t *len, size_t cap, const char *p) {
    while (*p) {
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || n == 0) {
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (*len > 0 && out[*len - 1] != '/')
                (*len)--;
            if (*len > 0)
                (*len)--;
        } else {
            if (*len + 1 + n >= cap)
                return -1;
            out[(*len)++] = '/';
            memcpy(out + *len, p, n);
            *len += n;
        }
        p += n;
        while (*p == '/')
            p++;
    }
    out[*len] = '\0';
    return 0;
}

int act_path_absolute(const char *path, char *out, size_t cap) {
    char lex[PATH_MAX], cwd[PATH_MAX];
    size_t len = 0;
    if (path[0] != '/') {
        if (!getcwd(cwd, sizeof cwd) || push_components(lex, &len, sizeof lex, cwd))
            return -1;
    }
    if (push_components(lex, &len, sizeof lex, path))
        return -1;
    if (len == 0)
        lex[len++] = '/', lex[len] = '\0';
    /* resolve the longest prefix that exists, keep the rest as written */
    size_t cut = len;
    for (;;) {
        char save = lex[cut];
        lex[cut] = '\0';
        char *r = realpath(cut ? lex : "/", NULL);
        lex[cut] = save;
        if (r) {
            int n = snprintf(out, cap, "%s%s", strcmp(r, "/") || cut == len ? r : "",
                             lex + cut);
            free(r);
            return n < 0 || (size_t)n >= cap ? -1 : 0;
        }
        if (cut == 0)
            return -1;
        while (cut > 0 && lex[cut - 1] != '/')
            cut--;
        if (cut > 0)
            cut--;
    }
}

int act_path_within(const char *path, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

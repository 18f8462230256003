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
 */
#include "action.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

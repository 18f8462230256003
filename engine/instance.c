/*
 * instance.c -- the identity of a data dir: a UUID kept in <data_dir>/instance-id.
 *
 * It is created at the first start and read at every later one, so it survives restarts and
 * upgrades but not a new data dir. The MQTT input's client id derives from it by default (a
 * persistent session needs the same id after a restart), and so do the trace ids and
 * newuuid() seeds the journal gives messages (a replay must reproduce them), and a fleet lists
 * its instances by it.
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int valid_uuid(const char *s) {
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return 0;
    }
    return 1;
}

int eng_instance_load(eng_config *c, char *err, size_t cap) {
    char path[600];
    snprintf(path, sizeof path, "%s/instance-id", c->data_dir);
    if (mkdir(c->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, cap, "cannot create the data dir %s: %s", c->data_dir, strerror(errno));
        return -1;
    }
    char id[64] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(id, sizeof id, f))
            id[0] = '\0';
        fclose(f);
        id[strcspn(id, "\r\n")] = '\0';
        if (!valid_uuid(id)) {
            snprintf(err, cap, "%s does not hold an instance id (a UUID); restore it, or remove "
                     "it to give this data dir a new identity", path);
            return -1;
        }
    } else if (errno == ENOENT) {
        unsigned char b[16];
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
            snprintf(err, cap, "no randomness for an instance id");
            return -1;
        }
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        char *p = id;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                *p++ = '-';
            p += sprintf(p, "%02x", b[i]);
        }
        char tmp[640];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dprintf(fd, "%s\n", id) < 0 || fsync(fd) != 0 || close(fd) != 0 ||
            rename(tmp, path) != 0) {
            snprintf(err, cap, "cannot write %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        int dfd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    } else {
        snprintf(err, cap, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    memcpy(c->instance_id, id, 37); /* valid_uuid(): 36 characters and the NUL */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    c->instance_hash = h;
    if (!c->mqtt_client_id[0]) {
        char hex[13];
        int k = 0;
        for (const char *p = id; *p && k < 12; p++)
            if (*p != '-')
                hex[k++] = *p;
        hex[k] = '\0';
        snprintf(c->mqtt_client_id, sizeof c->mqtt_client_id, "sluice-%s", hex);
    }
    return 0;
}

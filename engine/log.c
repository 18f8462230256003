/*
 * log.c -- JSON-line logs on stderr.
 *
 * One line per event, {"ts","level","event","msg"}, written with a single write(2) so lines
 * from different threads never interleave. The level is a global read without a lock (a
 * plain int set once at start-up).
 */
#include "engine_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int log_level = ENG_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

int eng_log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, names[i]))
            return i;
    if (!strcasecmp(s, "warning"))
        return ENG_LOG_WARN;
    return -1;
}

void eng_log_set_level(int level) { log_level = level; }

void eng_log(int level, const char *event, const char *fmt, ...) {
    if (level < log_level)
        return;
    char msg[1024], line[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                     "\"event\":\"%s\",\"msg\":\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], event);
    for (const char *p = msg; *p && n < (int)sizeof line - 8; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else if (c < 0x20) {
            n += snprintf(line + n, sizeof line - (size_t)n, "\\u%04x", c);
        } else {
            line[n++] = (char)c;
        }
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "\"}\n");
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
}

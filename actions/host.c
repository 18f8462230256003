/*
 * host.c -- the host interface (engine/engine.h) as actions use it: a printf-style log line
 * and a counter, each a no-op when the host does not offer the service (unit tests).
 */
#include "action.h"

#include <stdarg.h>
#include <stdio.h>

void act_log(const eng_host *h, int level, const char *event, const char *fmt, ...) {
    if (!h || !h->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->log(h->ud, level, event, msg);
}

void act_count(const eng_host *h, eng_counter c, uint64_t n) {
    if (h && h->count)
        h->count(h->ud, c, n);
}

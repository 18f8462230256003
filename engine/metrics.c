/*
 * metrics.c -- process-wide counters behind GET /metrics. Everything is a relaxed atomic:
 * counters are read for monitoring, never to make decisions.
 */
#include "engine_int.h"

eng_metrics eng_metrics_global;

void eng_metrics_observe_eval(uint64_t ns) {
    uint64_t us = ns / 1000;
    int b = 0;
    while (b < ENG_LAT_BUCKETS && us >= (1ull << b))
        b++;
    atomic_fetch_add_explicit(&eng_metrics_global.eval_latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&eng_metrics_global.eval_latency_sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&eng_metrics_global.eval_latency_count, 1, memory_order_relaxed);
}

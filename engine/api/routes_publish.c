/*
 * routes_publish.c -- iot-data's Publish: POST /topics/{topic}?qos=0|1, the body is the
 * payload. The message enters the engine like one from the broker (source "http").
 *
 * The message is journaled and committed before the 200, like an MQTT message before its
 * PUBACK. When the engine is saturated the call waits up to PUBLISH_WAIT_MS for room and then
 * answers 503 without taking the message: that is the back-pressure an HTTP publisher gets. The wait holds only this
 * request's connection thread (server.c runs a thread per connection), so a saturated engine
 * slows its publishers and nobody else: the health checks and the admin API still answer.
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#define PUBLISH_WAIT_MS 5000

void eng_api__publish(eng_api_call *c, eng_api_response *rs) {
    const char *topic = c->param[0];
    const eng_api_request *rq = c->rq;
    if (!*topic || strchr(topic, '+') || strchr(topic, '#')) {
        eng_api__fail(rs, 400, "InvalidRequestException",
                      "invalid topic: a topic to publish to has no wildcards");
        return;
    }
    const char *qs = eng_api__arg(c, "qos");
    if (qs && strcmp(qs, "0") && strcmp(qs, "1")) {
        eng_api__fail(rs, 400, "InvalidRequestException", "qos must be 0 or 1");
        return;
    }
    eng_msg *m = eng_msg_new(topic, strlen(topic), rq->body ? rq->body : "", rq->body_len, NULL,
                             NULL, ENG_SRC_HTTP);
    if (!m) {
        eng_api__fail(rs, 500, "InternalException", "out of memory");
        return;
    }
    m->qos = qs ? atoi(qs) : 0;
    /* a saturated engine answers 503 before taking the message, rather than queue without
     * bound; once taken, it is journaled (committed) before the 200 */
    if (eng_workers_saturated(c->env->workers) &&
        eng_workers_wait_room(c->env->workers, PUBLISH_WAIT_MS) != 0) {
        eng_msg_free(m);
        atomic_fetch_add(&eng_metrics_global.dropped[ENG_DROP_QUEUE_FULL], 1);
        eng_api__fail(rs, 503, "ServiceUnavailableException", "the engine is saturated; retry");
        return;
    }
    if (eng_ingest_submit_take(c->env, m) != 0) {
        eng_api__fail(rs, 503, "ServiceUnavailableException",
                      "the ingest journal cannot write; retry");
        return;
    }
    eng_api__json(rs, 200, "{}");
}

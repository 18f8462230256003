/*
 * kafka_int.h -- private header of the Kafka action: the shared-producer registry
 * (kafka_conf.c) as kafka.c and the unit tests see it.
 *
 * A producer is keyed by its canonical clientProperties (the user's properties sorted by name,
 * before sluice's defaults are applied) and shared, reference counted, by every action instance
 * with the same set. Each producer has one poll thread that serves delivery reports and error
 * events; delivery reports are handed to act_kafka__on_delivery() (kafka.c).
 *
 * Ownership: act_kafka__producer_acquire() returns a reference the caller gives back with
 * act_kafka__producer_release(). The rd_kafka_t returned by _begin() is borrowed until _end().
 * Thread: any (the registry and each producer are internally locked).
 */
#ifndef SLUICE_ACT_KAFKA_INT_H
#define SLUICE_ACT_KAFKA_INT_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "../action.h"

typedef struct act_kafka_producer act_kafka_producer;

/* Most clientProperties an action may set. */
#define ACT_KAFKA_MAX_PROPS 64

/* The message.timeout.ms sluice sets when the user does not: bounds how long deliver() waits
 * for one batch's delivery reports. */
#define ACT_KAFKA_DEFAULT_MSG_TIMEOUT_MS 30000

/* Validates props (the "clientProperties" object: string, number or boolean values) against
 * librdkafka, then returns the registry's producer for that set, creating it (rd_kafka_new
 * and its poll thread; brokers are connected in the background, nothing blocks) when no
 * instance uses it yet. NULL with e set (InvalidRequestException naming the property and
 * quoting librdkafka) on a refused property, a missing bootstrap.servers or a producer
 * librdkafka will not create. *msg_timeout_ms receives the effective message.timeout.ms.
 * Thread: admin. */
act_kafka_producer *act_kafka__producer_acquire(const cJSON *props, const eng_host *host,
                                                int *msg_timeout_ms, eng_error *e);

/* Drops one reference; the last one flushes (bounded), stops the poll thread and destroys the
 * producer. NULL is a no-op. Thread: admin, or whoever closes the instance last. */
void act_kafka__producer_release(act_kafka_producer *p);

/* The producer handle for one produce-and-wait round; the producer cannot be replaced (after a
 * fatal error) between _begin() and _end(). Thread: any (a shared read lock). */
rd_kafka_t *act_kafka__producer_begin(act_kafka_producer *p);
void act_kafka__producer_end(act_kafka_producer *p);

/* After a round that saw a fatal error on rk (rd_kafka_fatal_error: the idempotent producer can
 * no longer guarantee ordering), replaces the producer by a fresh one built from the same
 * configuration, unless another caller already did. Called outside _begin()/_end().
 * Thread: any (takes the producer's write lock). */
void act_kafka__producer_recover(act_kafka_producer *p, rd_kafka_t *rk);

/* Producers alive in the registry (for tests). Thread: any. */
size_t act_kafka__producer_count(void);

/* The delivery-report callback every producer is configured with (kafka.c). Thread: the
 * producer's poll thread. */
void act_kafka__on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

#endif

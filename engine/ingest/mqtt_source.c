/*
 * mqtt_source.c -- the MQTT input: read a batch, journal it, then let the PUBACKs go.
 *
 * libmosquitto queues the PUBACK of a QoS 1 message before it calls on_message, and has no
 * manual acknowledgement. In threaded mode with the application driving the socket, though,
 * queued packets leave the process only when the application calls mosquitto_loop_write()
 * (lib/packet_mosq.c packet__queue writes directly only in unthreaded mode; pinned by
 * tests/integration/test_puback_order.py, so a libmosquitto upgrade that changes it fails the
 * suite). This loop owns the input socket and keeps one invariant:
 *
 *     no mosquitto_loop_write() between a mosquitto_loop_read() and the journal commit of
 *     every message that read returned.
 *
 * One round: poll the socket; read up to Receive Maximum messages (on_message appends each to
 * the journal buffer, no I/O); commit the journal once for the whole batch (group commit: one
 * write and, in mode batch, one fdatasync); let the PUBACKs go (loop_write); hand the batch to
 * the workers (one lock per worker). The broker never has more than Receive Maximum
 * unacknowledged messages in flight, so the batch size and the memory held are bounded.
 *
 * Back-pressure without losing the connection: when a worker queue is at its bound or the
 * journal is full, the loop stops reading but keeps writing (PUBACKs of what is committed,
 * PINGREQ) and calls loop_misc, so the broker sees a live client; once per quarter keepalive
 * it reads anyway (at most Receive Maximum messages, journaled like any others), which takes
 * in the PINGRESP that libmosquitto's own keepalive check needs. A stall therefore admits a
 * trickle of Receive Maximum messages per quarter keepalive, and never a disconnect.
 *
 * A journal that cannot write (disk full): the batch is not acknowledged -- the socket is shut
 * down at once, so the queued PUBACKs are discarded with it (a reconnect empties
 * libmosquitto's queue) -- and the loop stays away until the journal writes again, then
 * reconnects; the broker re-sends what was not acknowledged.
 *
 * With ingest.journal=off messages are acknowledged on receipt, as a plain subscriber does
 * (documented: a crash loses what is in memory).
 */
#include "../mqtt_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void eng__mqtt_on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                          const mosquitto_property *props) {
    eng_mqtt *mq = ud;
    eng_msg *m = eng__mqtt_msg_new(msg, props);
    if (m && m->payload_len > SQL_MAX_PAYLOAD) {
        /* no rule may read it (AWS's limit); it goes to the dead letters, durably, before its
         * PUBACK can leave: if the store refuses, the batch is not acknowledged */
        char why[128];
        snprintf(why, sizeof why, "the payload has %zu bytes; AWS IoT's limit is %u",
                 m->payload_len, SQL_MAX_PAYLOAD);
        atomic_fetch_add(&eng_metrics_global.dropped[ENG_DROP_TOO_LARGE], 1);
        eng_log(ENG_LOG_WARN, "mqtt.too_large", "message on %s: %s", m->topic, why);
        if (eng_ingest_deadletter(mq->env, m, NULL, "ingest", why, 1) != 0)
            mq->bfail = 1;
        eng_msg_free(m);
        return;
    }
    if (!m) {
        /* cannot even hold it: the batch is not acknowledged, the broker sends it again */
        mq->bfail = 1;
        eng_log(ENG_LOG_ERROR, "mqtt.oom", "out of memory receiving a message on %s",
                msg->topic);
        return;
    }
    if (mq->journal) {
        if (eng_journal_append(mq->journal, m) != 0) {
            mq->bfail = 1;
            eng_msg_free(m);
            return;
        }
        mq->blast = m->seq;
    }
    if (mq->btail)
        mq->btail->next = m;
    else
        mq->bhead = m;
    mq->btail = m;
    mq->bn++;
}

/* 1 when TLS holds decrypted input that poll() cannot see. */
static int tls_pending(struct mosquitto *mosq) {
    SSL *ssl = mosquitto_ssl_get(mosq);
    return ssl && SSL_pending(ssl) > 0;
}

/* 1 when more input can be read without blocking: the socket, or TLS's own buffer. */
static int readable(struct mosquitto *mosq, int fd) {
    if (tls_pending(mosq))
        return 1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* Releases the batch without processing it (it was not acknowledged). */
static void drop_batch(eng_mqtt *mq) {
    for (eng_msg *m = mq->bhead, *nx; m; m = nx) {
        nx = m->next;
        eng_msg_free(m);
    }
    mq->bhead = mq->btail = NULL;
    mq->bn = 0;
    mq->bfail = 0;
}

/* Commits the batch read so far. 0: it may be acknowledged; -1: it must not be. */
static int commit_batch(eng_mqtt *mq) {
    if (mq->bfail)
        return -1;
    if (mq->journal && mq->bn && eng_journal_commit(mq->journal, mq->blast) != 0)
        return -1;
    return 0;
}

/* Hands the committed batch to the workers. */
static void dispatch_batch(eng_mqtt *mq) {
    if (mq->bhead)
        eng_workers_submit_batch_take(mq->ws, mq->bhead);
    mq->bhead = mq->btail = NULL;
    mq->bn = 0;
}

/* Connects (first attempt) or reconnects, with the persistent-session properties. */
static int connect_in(eng_mqtt *mq, int first) {
    eng_mqtt_conn *c = &mq->in;
    int rc;
    if (mq->cfg->mqtt_version == 5) {
        mosquitto_property *pr = NULL;
        mosquitto_property_add_int32(&pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     (uint32_t)mq->cfg->mqtt_session_expiry);
        rc = mosquitto_connect_bind_v5(c->mosq, mq->host, mq->port, mq->cfg->mqtt_keepalive,
                                       NULL, pr);
        mosquitto_property_free_all(&pr);
    } else {
        rc = first ? mosquitto_connect(c->mosq, mq->host, mq->port, mq->cfg->mqtt_keepalive)
                   : mosquitto_reconnect(c->mosq);
    }
    return rc;
}

/* Leaves the session in place without losing a PUBACK: flush the PUBACKs of what was
 * committed, then half-close (FIN after them) and read until the broker closes its side,
 * discarding what it still sent (unacknowledged, so it comes again with the session). Closing
 * with unread input instead would make the kernel send RST, and a broker that sees RST may
 * drop the PUBACKs still in its receive buffer: those messages would then come back as
 * duplicates. (mosquitto_disconnect() closes the socket as soon as its DISCONNECT is written,
 * with exactly that effect.) */
static void leave(eng_mqtt *mq) {
    eng_mqtt_conn *c = &mq->in;
    int fd = mosquitto_socket(c->mosq);
    if (fd < 0)
        return;
    int64_t end = mono_ms() + 2000;
    while (mosquitto_want_write(c->mosq) && mono_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 50);
        if (mosquitto_loop_write(c->mosq, 1) != MOSQ_ERR_SUCCESS)
            return;
    }
    if (mq->tls) { /* a TLS stream cannot be half-closed: say goodbye properly */
        mosquitto_disconnect(c->mosq);
        mosquitto_loop_write(c->mosq, 1);
        return;
    }
    shutdown(fd, SHUT_WR);
    char buf[16384];
    while (mono_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            break;
    }
}

void *eng__mqtt_in_main(void *arg) {
    eng_mqtt *mq = arg;
    eng_mqtt_conn *c = &mq->in;
    const int rm = mq->cfg->mqtt_version == 5 ? mq->cfg->mqtt_receive_maximum : 1000;
    const int64_t trickle_ms = (int64_t)mq->cfg->mqtt_keepalive * 1000 / 4;
    int attempt = 0, up = 0, stalled_logged = 0;
    int64_t last_misc = 0, last_read = mono_ms();
    if (mq->before && mq->before(mq->before_ud, &mq->stop_in) != 0 && atomic_load(&mq->stop_in))
        return NULL; /* stopped during the replay: the rest stays in the journal */
    while (!atomic_load(&mq->stop_all) && !atomic_load(&mq->stop_in)) {
        if (mq->journal && eng_journal_failed(mq->journal)) {
            /* nothing can be acknowledged: stay away until the journal writes again */
            if (up) {
                up = 0;
                atomic_store(&c->connected, 0);
            }
            eng__mqtt_nap(mq, 100);
            continue;
        }
        if (!up) {
            int rc = connect_in(mq, attempt == 0);
            if (rc != MOSQ_ERR_SUCCESS) {
                int ms = eng__mqtt_backoff_ms(attempt++);
                eng_log(ENG_LOG_WARN, "mqtt.connect", "input connection to %s:%d failed (%s); "
                        "retrying in %d ms", mq->host, mq->port, mosquitto_strerror(rc), ms);
                eng__mqtt_nap(mq, ms);
                continue;
            }
            up = 1;
            if (attempt == 0)
                attempt = 1;
        }
        int fd = mosquitto_socket(c->mosq);
        int64_t now = mono_ms();
        int stalled = eng_workers_saturated(mq->ws) || (mq->journal && eng_journal_full(mq->journal));
        int may_read = !stalled || now - last_read >= trickle_ms;
        if (stalled && !stalled_logged) {
            eng_log(ENG_LOG_INFO, "mqtt.backpressure", "%s: input paused",
                    eng_workers_saturated(mq->ws) ? "workers are busy" : "the journal is full");
            stalled_logged = 1;
        } else if (!stalled && stalled_logged) {
            eng_log(ENG_LOG_INFO, "mqtt.backpressure", "input resumed");
            stalled_logged = 0;
        }
        int rc = MOSQ_ERR_SUCCESS;
        if (fd >= 0) {
            struct pollfd p = {.fd = fd,
                               .events = (short)((may_read ? POLLIN : 0) |
                                                 (mosquitto_want_write(c->mosq) ? POLLOUT : 0))};
            int ready = may_read && tls_pending(c->mosq);
            if (!ready && poll(&p, 1, stalled ? 5 : 100) > 0 && p.revents)
                ready = may_read && (p.revents & (POLLIN | POLLHUP | POLLERR));
            if (ready) {
                /* read a batch: until Receive Maximum messages or nothing more to read */
                do {
                    rc = mosquitto_loop_read(c->mosq, 1);
                } while (rc == MOSQ_ERR_SUCCESS && mq->bn < (size_t)rm && readable(c->mosq, fd));
                last_read = mono_ms();
                if (mq->bn || mq->bfail) {
                    if (commit_batch(mq) != 0) {
                        /* not durable: shut the socket so the queued PUBACKs die with it */
                        shutdown(fd, SHUT_RDWR);
                        drop_batch(mq);
                        rc = MOSQ_ERR_CONN_LOST;
                    }
                }
            }
            if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(c->mosq))
                rc = mosquitto_loop_write(c->mosq, 1); /* the batch's PUBACKs leave now */
            if (mq->bhead)
                dispatch_batch(mq);
            if (rc == MOSQ_ERR_SUCCESS && now - last_misc >= 1000) {
                rc = mosquitto_loop_misc(c->mosq);
                last_misc = now;
            }
        } else {
            rc = MOSQ_ERR_NO_CONN;
        }
        if (rc != MOSQ_ERR_SUCCESS && !atomic_load(&mq->stop_all)) {
            if (mq->bhead) /* read but never committed: the broker sends them again */
                drop_batch(mq);
            up = 0;
            atomic_store(&c->connected, 0);
            eng__mqtt_nap(mq, eng__mqtt_backoff_ms(attempt++));
        } else if (atomic_load(&c->connected)) {
            attempt = 1; /* a later failure starts the backoff again from the bottom */
        }
    }
    drop_batch(mq);
    if (up)
        leave(mq);
    atomic_store(&c->connected, 0);
    return NULL;
}

/*
 * service.c -- the shadow operations: get, update, delete, list, and get_thing_shadow()'s
 * read, over any eng_shadow_store.
 *
 * An update is a read-modify-write: read the record, check the request's version, merge,
 * check the size, and write the new record with the store's compare-and-set on the record's
 * revision. Inside one process the read-modify-write of a shadow runs under one of STRIPES
 * mutexes chosen by hashing (thing, shadow), so two clients racing on one shadow queue up
 * instead of losing an update, while other shadows go on in parallel (two shadows share a
 * stripe with probability 1/STRIPES). Across processes sharing a store (a fleet on one
 * PostgreSQL), the compare-and-set catches the race and the update is redone on the new
 * record; a request that named a version then gets its 409, as it should. The mutex is held
 * through the durable write: the next update of that shadow must see this one (rejected
 * alternative: a lock-free retry loop, which under contention burns a store round trip and
 * often an fsync per lost race).
 *
 * Versions: a shadow's first version is 1, each accepted update adds 1; a delete keeps the
 * version in a tombstone, so a shadow re-created within 48 hours continues from it, and after
 * 48 hours starts again at 1 (README.md, "Versions"). Messages are built after the write is
 * durable and published by the caller in AWS's order: /update/accepted, /update/delta (when
 * the resulting shadow has a delta), /update/documents.
 */
#include "shadow_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STRIPES 1024
#define CAS_RETRIES 64     /* lost compare-and-sets (other processes) before giving up: 503 */
#define PURGE_EVERY_S 3600 /* tombstones older than 48 h are forgotten about once an hour */

struct eng_shadow {
    eng_shadow_store *store;
    int64_t (*clock)(void *ud);
    void *clock_ud;
    _Atomic int64_t next_purge;
    pthread_mutex_t stripes[STRIPES];
};

/* {====== lifecycle */

static int64_t now_of(eng_shadow *s) {
    return s->clock ? s->clock(s->clock_ud) : (int64_t)time(NULL);
}

eng_shadow *eng_shadow_new(eng_shadow_store *store_take, const eng_shadow_opts *o) {
    eng_shadow *s = calloc(1, sizeof *s);
    if (!s) {
        if (store_take)
            store_take->vt->close(store_take);
        return NULL;
    }
    s->store = store_take;
    if (o) {
        s->clock = o->clock;
        s->clock_ud = o->clock_ud;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&s->stripes[i], NULL);
    return s;
}

void eng_shadow_free(eng_shadow *s) {
    if (!s)
        return;
    if (s->store)
        s->store->vt->close(s->store);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&s->stripes[i]);
    free(s);
}

void eng_shadow_record_deinit(eng_shadow_record *r) {
    free(r->doc);
    memset(r, 0, sizeof *r);
}

void eng_shadow_names_deinit(eng_shadow_names *n) {
    for (size_t i = 0; i < n->n; i++)
        free(n->names[i]);
    free(n->names);
    memset(n, 0, sizeof *n);
}

void eng_shadow_reply_deinit(eng_shadow_reply *r) {
    free(r->body);
    for (size_t i = 0; i < r->nmsgs; i++) {
        free(r->msgs[i].topic);
        free(r->msgs[i].payload);
    }
    memset(r, 0, sizeof *r);
}

/* Forgets old tombstones, at most once per PURGE_EVERY_S, on the thread that notices. */
static void maybe_purge(eng_shadow *s, int64_t now) {
    int64_t due = atomic_load(&s->next_purge);
    if (now < due || !atomic_compare_exchange_strong(&s->next_purge, &due, now + PURGE_EVERY_S))
        return;
    eng_error e;
    if (s->store->vt->purge(s->store, now - ENG_SHADOW_TOMBSTONE_S, &e))
        eng_log(ENG_LOG_WARN, "shadow_purge", "forgetting old deleted shadows failed: %s",
                e.message);
}

/* }====== */

/* {====== replies */

/* A request's names, validated and NUL-terminated. */
typedef struct names {
    char thing[ENG_SHADOW_THING_MAX + 1];
    char shadow[ENG_SHADOW_NAME_MAX + 1]; /* "" for the classic shadow */
} names;

typedef struct op_ctx {
    eng_shadow *s;
    const eng_shadow_req *req;
    eng_shadow_reply *out;
    eng_sarena a;
    eng_shadow_token tok;
    names nm;
} op_ctx;

static int oom_reply(eng_shadow_reply *out) {
    eng_shadow_reply_deinit(out);
    eng_error e;
    eng__shadow_error(&e, ENG_SHADOW_ERR_INTERNAL, ENG_SHADOW_MSG_INTERNAL);
    out->status = e.status;
    out->error_type = e.type;
    out->body = strdup("{\"message\":\"" ENG_SHADOW_MSG_INTERNAL "\"}"); /* NULL if OOM again */
    out->body_len = out->body ? strlen(out->body) : 0;
    return e.status;
}

/* Adds a message: topic = the request's topic + suffix. */
static int add_msg(op_ctx *c, eng_shadow_op op, const char *suffix, const char *payload,
                   size_t n) {
    eng_sbuf t = {0}, p = {0};
    const eng_shadow_req *r = c->req;
    eng__shadow_topic_build(&t, r->thing, r->thing_len, r->shadow, r->shadow ? r->shadow_len : 0,
                            op, suffix);
    eng__sbuf_add(&p, payload, n);
    eng_shadow_msg *m = &c->out->msgs[c->out->nmsgs];
    m->topic = eng__sbuf_take(&t, NULL);
    m->payload = eng__sbuf_take(&p, &m->payload_len);
    if (!m->topic || !m->payload) {
        free(m->topic);
        free(m->payload);
        m->topic = m->payload = NULL;
        return -1;
    }
    c->out->nmsgs++;
    return 0;
}

/* The answer to a failed request: the REST status, type and {"message"} body, and for an MQTT
 * request the error document on <request topic>/rejected. */
static int fail(op_ctx *c, const eng_error *e) {
    eng_shadow_reply *out = c->out;
    eng_shadow_reply_deinit(out);
    out->status = e->status;
    out->error_type = e->type;
    eng_sbuf b = {0};
    eng__sbuf_lit(&b, "{\"message\":");
    eng__sbuf_jstr(&b, e->message, strlen(e->message));
    eng__sbuf_add(&b, "}", 1);
    out->body = eng__sbuf_take(&b, &out->body_len);
    if (!out->body)
        return oom_reply(out);
    if (c->req->transport == ENG_SHADOW_MQTT) {
        eng__shadow_write_error(&b, e->status, e->message, &c->tok);
        int rc = b.oom ? -1 : add_msg(c, c->req->op, "rejected", b.p, b.len);
        eng__sbuf_deinit(&b);
        if (rc)
            return oom_reply(out);
    }
    return out->status;
}

/* A store failure: logged with its detail (which names files), answered with AWS's bare 500,
 * or 503 when the store is busy or closed. */
static int store_failed(op_ctx *c, eng_error *e) {
    eng_log(ENG_LOG_ERROR, "shadow_store", "%s/%s: %s", c->nm.thing,
            c->nm.shadow[0] ? c->nm.shadow : "(classic)", e->message);
    if (e->status == 503)
        eng__shadow_error(e, ENG_SHADOW_ERR_UNAVAILABLE, "Service unavailable");
    else
        eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, ENG_SHADOW_MSG_INTERNAL);
    return fail(c, e);
}

static int not_found(op_ctx *c) {
    eng_error e;
    eng__shadow_error(&e, ENG_SHADOW_ERR_NOT_FOUND, "No shadow exists with name: '%s'",
                      c->nm.shadow[0] ? c->nm.shadow : c->nm.thing);
    return fail(c, &e);
}

/* The successful answer: status 200, body = payload, and for MQTT (and for REST updates and
 * deletes) the message on <op>/accepted. */
static int accept(op_ctx *c, eng_sbuf *payload, int publish) {
    if (payload->oom)
        return oom_reply(c->out);
    c->out->status = 200;
    if (publish && add_msg(c, c->req->op, "accepted", payload->p, payload->len))
        return oom_reply(c->out);
    c->out->body = eng__sbuf_take(payload, &c->out->body_len);
    return c->out->body ? 200 : oom_reply(c->out);
}

/* }====== */

/* {====== reading the stored shadow */

typedef struct current {
    eng_shadow_record rec;
    int found;                /* a record exists (rec.rev is the compare-and-set base) */
    int live;                 /* it holds a document */
    int64_t version;          /* the version the next update follows: the document's, a recent
                                 tombstone's, or 0 */
    eng_shadow_doc doc;
    const char *text;         /* the stored document (in the arena), NULL unless live */
    size_t text_len;
} current;

static int read_current(op_ctx *c, current *cur, int64_t now, eng_error *e) {
    eng_shadow_store *st = c->s->store;
    memset(cur, 0, sizeof *cur);
    int rc = st->vt->get(st, c->nm.thing, c->nm.shadow, &cur->rec, e);
    if (rc == ENG_SHADOW_NOT_FOUND)
        return 0;
    if (rc)
        return -1;
    cur->found = 1;
    if (cur->rec.doc) {
        /* the tree points into its text: the text lives in the arena, as long as the tree */
        char *text = eng__sarena_alloc(&c->a, cur->rec.doc_len + 1);
        if (!text)
            return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
        memcpy(text, cur->rec.doc, cur->rec.doc_len + 1);
        cur->live = 1;
        cur->version = cur->rec.version;
        cur->text = text;
        cur->text_len = cur->rec.doc_len;
        return eng__shadow_doc_load(&c->a, text, cur->rec.doc_len, &cur->doc, e);
    }
    /* a tombstone: its version carries over for 48 hours */
    cur->version = now - cur->rec.updated_at < ENG_SHADOW_TOMBSTONE_S ? cur->rec.version : 0;
    return 0;
}

static pthread_mutex_t *stripe(eng_shadow *s, const names *nm) {
    uint32_t h = eng_topic_hash(nm->thing, strlen(nm->thing));
    h = (h ^ eng_topic_hash(nm->shadow, strlen(nm->shadow))) * 16777619u;
    return &s->stripes[h % STRIPES];
}

/* }====== */

/* {====== get */

static int do_get(op_ctx *c) {
    eng_error e;
    current cur;
    int64_t now = now_of(c->s);
    int rc;
    if (read_current(c, &cur, now, &e)) {
        rc = store_failed(c, &e);
        goto out;
    }
    if (!cur.live) {
        rc = not_found(c);
        goto out;
    }
    int oom;
    eng_sjson *delta = eng__shadow_delta(&c->a, &cur.doc, &oom);
    eng_sbuf b = {0};
    int mqtt = c->req->transport == ENG_SHADOW_MQTT;
    eng__shadow_write_get(&b, &cur.doc, delta, cur.rec.version, now, mqtt ? &c->tok : NULL);
    if (oom)
        b.oom = 1;
    rc = accept(c, &b, mqtt);
    eng__sbuf_deinit(&b);
out:
    eng_shadow_record_deinit(&cur.rec);
    return rc;
}

/* }====== */

/* {====== update */

/* CAS_RETRIES compare-and-sets lost in a row to other processes sharing the store. */
static int too_busy(op_ctx *c) {
    eng_error e;
    eng__shadow_error(&e, ENG_SHADOW_ERR_UNAVAILABLE, "Too many concurrent updates");
    return fail(c, &e);
}

typedef struct update_result {
    int64_t version, now;
    eng_shadow_doc doc;       /* the shadow after the update */
    char *stored;             /* its stored document (malloc'd) */
    size_t stored_len;
    const char *prev;         /* the stored document before (arena), NULL when the update
                                 created the shadow */
    size_t prev_len;
    int64_t prev_version;
} update_result;

/* One attempt of the read-modify-write. Returns 0 (written), ENG_SHADOW_CONFLICT (another
 * writer won: try again), or -1 with e set. Runs under the shadow's stripe. */
static int try_update(op_ctx *c, const eng_shadow_update *u, update_result *res, eng_error *e) {
    current cur;
    eng_sbuf b = {0};
    int rc = -1;
    res->now = now_of(c->s);
    if (read_current(c, &cur, res->now, e))
        goto out;
    if (u->has_version && u->version != cur.version) {
        eng__shadow_error(e, ENG_SHADOW_ERR_CONFLICT, "Version conflict");
        goto out;
    }
    res->version = cur.version + 1;
    res->prev = cur.text;
    res->prev_len = cur.text_len;
    res->prev_version = cur.version;
    res->doc = cur.doc;
    if (eng__shadow_doc_apply(&c->a, &res->doc, u, res->now))
        goto nomem;
    if (eng__shadow_state_size(&res->doc) > ENG_SHADOW_STATE_MAX) {
        eng__shadow_error(e, ENG_SHADOW_ERR_TOO_LARGE, ENG_SHADOW_MSG_TOO_LARGE);
        goto out;
    }
    eng__shadow_write_stored(&b, &res->doc);
    if (b.oom)
        goto nomem;
    eng_shadow_record rec = {.version = res->version, .updated_at = res->now, .doc = b.p,
                             .doc_len = b.len};
    rc = c->s->store->vt->put(c->s->store, c->nm.thing, c->nm.shadow,
                              cur.found ? cur.rec.rev : 0, &rec, e);
    if (rc == 0) {
        free(res->stored);
        res->stored = eng__sbuf_take(&b, &res->stored_len); /* b.oom is 0: cannot fail */
    }
    goto out;
nomem:
    eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "out of memory");
out:
    eng__sbuf_deinit(&b);
    eng_shadow_record_deinit(&cur.rec);
    return rc;
}

/* The messages of an accepted update, in AWS's order, and the REST body. */
static int updated(op_ctx *c, const eng_shadow_update *u, update_result *res) {
    eng_sbuf acc = {0}, b = {0};
    int rc, oom;
    eng__shadow_write_accepted(&acc, u, res->version, res->now, &c->tok);
    if (acc.oom || add_msg(c, ENG_SHADOW_UPDATE, "accepted", acc.p, acc.len))
        goto nomem;
    eng_sjson *delta = eng__shadow_delta(&c->a, &res->doc, &oom);
    if (oom)
        goto nomem;
    if (delta) {
        eng__shadow_write_delta(&b, delta, res->version, res->now, &c->tok);
        if (b.oom || add_msg(c, ENG_SHADOW_UPDATE, "delta", b.p, b.len))
            goto nomem;
        b.len = 0;
    }
    eng__shadow_write_documents(&b, res->prev, res->prev_len, res->prev_version, res->stored,
                                res->stored_len, res->version, res->now, &c->tok);
    if (b.oom || add_msg(c, ENG_SHADOW_UPDATE, "documents", b.p, b.len))
        goto nomem;
    c->out->status = 200;
    c->out->body = eng__sbuf_take(&acc, &c->out->body_len);
    rc = c->out->body ? 200 : oom_reply(c->out);
    goto out;
nomem:
    rc = oom_reply(c->out);
out:
    eng__sbuf_deinit(&acc);
    eng__sbuf_deinit(&b);
    return rc;
}

static int do_update(op_ctx *c) {
    eng_error e;
    eng_shadow_update u;
    update_result res = {0};
    int rc = -1;
    if (eng__shadow_update_parse(&c->a, c->req->payload, c->req->payload_len, &u, &c->tok, &e))
        return fail(c, &e);
    pthread_mutex_t *mu = stripe(c->s, &c->nm);
    pthread_mutex_lock(mu);
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++)
        if ((rc = try_update(c, &u, &res, &e)) != ENG_SHADOW_CONFLICT)
            break;
    pthread_mutex_unlock(mu);
    if (rc == 0)
        rc = updated(c, &u, &res);
    else if (rc == ENG_SHADOW_CONFLICT)
        rc = too_busy(c);
    else if (e.status >= 500)
        rc = store_failed(c, &e);
    else
        rc = fail(c, &e);
    free(res.stored);
    return rc;
}

/* }====== */

/* {====== delete */

static int do_delete(op_ctx *c) {
    eng_error e;
    current cur = {0};
    int rc = -1;
    int64_t now = 0, version = 0;
    pthread_mutex_t *mu = stripe(c->s, &c->nm);
    pthread_mutex_lock(mu);
    for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
        eng_shadow_record_deinit(&cur.rec);
        now = now_of(c->s);
        if (read_current(c, &cur, now, &e)) {
            rc = -1;
            break;
        }
        if (!cur.live) {
            rc = ENG_SHADOW_NOT_FOUND;
            break;
        }
        /* The tombstone keeps the version: the answer carries it unchanged (AWS's delete
         * after version 9 answers "version":9) and the next update makes it 10. */
        version = cur.rec.version;
        eng_shadow_record tomb = {.version = version, .updated_at = now};
        if ((rc = c->s->store->vt->put(c->s->store, c->nm.thing, c->nm.shadow, cur.rec.rev, &tomb,
                                       &e)) != ENG_SHADOW_CONFLICT)
            break;
    }
    pthread_mutex_unlock(mu);
    eng_shadow_record_deinit(&cur.rec);
    if (rc == ENG_SHADOW_NOT_FOUND)
        return not_found(c);
    if (rc == ENG_SHADOW_CONFLICT)
        return too_busy(c);
    if (rc)
        return store_failed(c, &e);
    eng_sbuf b = {0};
    eng__shadow_write_deleted(&b, version, now, &c->tok);
    rc = accept(c, &b, 1);
    eng__sbuf_deinit(&b);
    return rc;
}

/* }====== */

/* {====== entry points */

static const char THING_RULE[] = "expected 1 to 128 characters of [a-zA-Z0-9:_-]";
static const char SHADOW_RULE[] = "expected 1 to 64 characters of [$a-zA-Z0-9:_-]";

/* Validates and copies the request's names. */
static int take_names(op_ctx *c, eng_error *e) {
    const eng_shadow_req *r = c->req;
    if (!r->thing || !eng__shadow_thing_valid(r->thing, r->thing_len))
        return eng__shadow_error(e, ENG_SHADOW_ERR_INVALID, "Invalid thing name: %s", THING_RULE);
    memcpy(c->nm.thing, r->thing, r->thing_len);
    c->nm.thing[r->thing_len] = '\0';
    c->nm.shadow[0] = '\0';
    if (r->shadow && r->shadow_len) {
        if (!eng__shadow_name_valid(r->shadow, r->shadow_len))
            return eng__shadow_error(e, ENG_SHADOW_ERR_INVALID, "Invalid shadow name: %s",
                                     SHADOW_RULE);
        memcpy(c->nm.shadow, r->shadow, r->shadow_len);
        c->nm.shadow[r->shadow_len] = '\0';
    }
    return 0;
}

int eng_shadow_handle(eng_shadow *s, const eng_shadow_req *req, eng_shadow_reply *out) {
    op_ctx c = {.s = s, .req = req, .out = out};
    eng_error e;
    int rc;
    memset(out, 0, sizeof *out);
    if (take_names(&c, &e)) {
        rc = fail(&c, &e);
        goto out;
    }
    maybe_purge(s, now_of(s));
    if (req->op == ENG_SHADOW_UPDATE) {
        rc = do_update(&c);
        goto out;
    }
    /* get and delete: over MQTT the payload may carry a clientToken; REST has no payload */
    if (req->transport == ENG_SHADOW_MQTT &&
        eng__shadow_token_parse(&c.a, req->payload, req->payload_len, &c.tok, &e)) {
        rc = fail(&c, &e);
        goto out;
    }
    rc = req->op == ENG_SHADOW_GET ? do_get(&c) : do_delete(&c);
out:
    eng__sarena_deinit(&c.a);
    return rc;
}

/* nextToken: the hex of the last name of the previous page (names sort bytewise, so the next
 * page is simply the names after it, whatever was added or deleted in between). */
static int decode_token(const char *t, char *name) {
    size_t n = strlen(t);
    if (n == 0 || n % 2 || n / 2 > ENG_SHADOW_NAME_MAX)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char h = t[2 * i + (size_t)k];
            v <<= 4;
            if (h >= '0' && h <= '9')
                v |= (unsigned)(h - '0');
            else if (h >= 'a' && h <= 'f')
                v |= (unsigned)(h - 'a' + 10);
            else
                return -1;
        }
        name[i] = (char)v;
    }
    name[n / 2] = '\0';
    return eng__shadow_name_valid(name, n / 2) ? 0 : -1;
}

static void encode_token(eng_sbuf *b, const char *name) {
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char h[2] = {hex[*p >> 4], hex[*p & 15]};
        eng__sbuf_add(b, h, 2);
    }
}

static int parse_page_size(const char *p, size_t *out) {
    if (!p) {
        *out = ENG_SHADOW_PAGE_DEFAULT;
        return 0;
    }
    size_t v = 0, n = strlen(p);
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (size_t)(p[i] - '0');
    }
    if (v < 1 || v > ENG_SHADOW_PAGE_MAX)
        return -1;
    *out = v;
    return 0;
}

int eng_shadow_list(eng_shadow *s, const char *thing, size_t thing_len, const char *next_token,
                    const char *page_size, eng_shadow_reply *out) {
    eng_shadow_req req = {.op = ENG_SHADOW_GET, .transport = ENG_SHADOW_REST, .thing = thing,
                          .thing_len = thing_len};
    op_ctx c = {.s = s, .req = &req, .out = out};
    eng_error e;
    eng_shadow_names names = {0};
    char after[ENG_SHADOW_NAME_MAX + 1] = "";
    size_t limit;
    int rc;
    memset(out, 0, sizeof *out);
    if (take_names(&c, &e))
        return fail(&c, &e);
    if (parse_page_size(page_size, &limit)) {
        eng__shadow_error(&e, ENG_SHADOW_ERR_INVALID,
                          "Invalid pageSize: expected an integer from 1 to %d",
                          ENG_SHADOW_PAGE_MAX);
        return fail(&c, &e);
    }
    if (next_token && *next_token && decode_token(next_token, after)) {
        eng__shadow_error(&e, ENG_SHADOW_ERR_INVALID, "Invalid nextToken");
        return fail(&c, &e);
    }
    if (s->store->vt->list(s->store, c.nm.thing, after, limit, &names, &e))
        return store_failed(&c, &e);
    eng_sbuf b = {0};
    eng__sbuf_lit(&b, "{\"results\":[");
    for (size_t i = 0; i < names.n; i++) {
        if (i)
            eng__sbuf_add(&b, ",", 1);
        eng__sbuf_jstr(&b, names.names[i], strlen(names.names[i]));
    }
    eng__sbuf_add(&b, "]", 1);
    if (names.more && names.n) {
        eng__sbuf_lit(&b, ",\"nextToken\":\"");
        encode_token(&b, names.names[names.n - 1]);
        eng__sbuf_add(&b, "\"", 1);
    }
    eng__sbuf_lit(&b, ",\"timestamp\":");
    eng__sbuf_i64(&b, now_of(s));
    eng__sbuf_add(&b, "}", 1);
    eng_shadow_names_deinit(&names);
    rc = accept(&c, &b, 0);
    eng__sbuf_deinit(&b);
    return rc;
}

int eng_shadow_get_document(eng_shadow *s, const char *thing, const char *shadow, char **json,
                            size_t *len) {
    eng_shadow_req req = {.op = ENG_SHADOW_GET, .transport = ENG_SHADOW_REST, .thing = thing,
                          .thing_len = thing ? strlen(thing) : 0, .shadow = shadow,
                          .shadow_len = shadow ? strlen(shadow) : 0};
    eng_shadow_reply r;
    int status = eng_shadow_handle(s, &req, &r);
    *json = NULL;
    if (len)
        *len = 0;
    if (status == 200) {
        *json = r.body;
        if (len)
            *len = r.body_len;
        r.body = NULL;
    }
    eng_shadow_reply_deinit(&r);
    return status == 200 ? 1 : status == 404 || status == 400 ? 0 : -1;
}

/* }====== */

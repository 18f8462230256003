/*
 * document.c -- the Device Shadow document logic: request validation with AWS's errors, the
 * merge, the delta, metadata, and every document AWS sends, byte for byte (compact JSON, AWS's
 * key order). No I/O and no locks: service.c runs it between a store read and a store write.
 *
 * A shadow in memory is two JSON trees, desired and reported, whose scalars carry their
 * metadata timestamps; metadata is never stored as a second tree to keep in step, it is
 * derived when written: an object's metadata is an object of its members' metadata, an
 * array's an array of its elements', a scalar's {"timestamp":T}. A merge stamps exactly the
 * nodes the request names, so untouched fields keep their timestamps (AWS; moto re-stamps
 * everything), and a type change replaces the whole subtree and its metadata. The stored form
 * is the familiar {"state":{...},"metadata":{...}} and is re-joined on load.
 *
 * Validation runs in the order recorded in README.md (size, UTF-8, JSON, clientToken, state,
 * invalid nodes, section types, version, nesting, nulls in arrays); the version comparison and
 * the post-merge size limit are the service's, as they need the stored shadow.
 */
#include "shadow_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PARSE_DEPTH 64 /* any deeper request is refused before its nesting is counted */

/* {====== errors */

static const struct {
    int status;
    const char *type;
} shapes[] = {
#define X(kind, status, type) [ENG_SHADOW_ERR_##kind] = {status, type},
    ENG_SHADOW_ERROR_MAP(X)
#undef X
};

int eng__shadow_error(eng_error *e, eng_shadow_err kind, const char *fmt, ...) {
    va_list ap;
    e->status = shapes[kind].status;
    e->type = shapes[kind].type;
    e->has_diag = 0;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* }====== */

/* {====== validation */

static int invalid(eng_error *e, const char *msg) {
    return eng__shadow_error(e, ENG_SHADOW_ERR_INVALID, "%s", msg);
}

/* Parses a request payload that must be JSON. */
static int parse_payload(eng_sarena *a, const void *p, size_t n, eng_sjson **root, eng_error *e) {
    if (n > ENG_SHADOW_PAYLOAD_MAX)
        return eng__shadow_error(e, ENG_SHADOW_ERR_TOO_LARGE, ENG_SHADOW_MSG_TOO_LARGE);
    if (!eng__utf8_valid(p, n))
        return eng__shadow_error(e, ENG_SHADOW_ERR_ENCODING,
                                 "Unsupported documented encoding; supported encoding is UTF-8");
    char dup[80];
    switch (eng__sjson_parse(a, p, n, PARSE_DEPTH, root, dup, sizeof dup)) {
    case ENG_SJ_OK: break;
    case ENG_SJ_EDEPTH:
        return invalid(e, "JSON contains too many levels of nesting; maximum is 6");
    case ENG_SJ_EDUP:
        return eng__shadow_error(e, ENG_SHADOW_ERR_INVALID, "Invalid JSON: duplicate key '%s'",
                                 dup);
    case ENG_SJ_ENOMEM:
        return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, ENG_SHADOW_MSG_INTERNAL);
    default: return invalid(e, "Invalid JSON");
    }
    if ((*root)->type != ENG_SJ_OBJ)
        return invalid(e, "Invalid JSON");
    return 0;
}

/* clientToken: absent or null -> none; otherwise a string of at most 64 bytes. */
static int token(eng_sarena *a, eng_sjson *root, eng_shadow_token *tok, eng_error *e) {
    eng_sjson *t = eng__sjson_get(a, root, "clientToken");
    if (!t || t->type == ENG_SJ_NULL)
        return 0;
    if (t->type != ENG_SJ_STR || t->n > ENG_SHADOW_TOKEN_MAX)
        return invalid(e, "Invalid clientToken");
    tok->s = t->s;
    tok->n = t->n;
    return 0;
}

/* version: absent or null -> none; otherwise an integer literal 0..2^63-1. */
static int version(eng_sarena *a, eng_sjson *root, eng_shadow_update *u, eng_error *e) {
    eng_sjson *v = eng__sjson_get(a, root, "version");
    if (!v || v->type == ENG_SJ_NULL)
        return 0;
    if (v->type != ENG_SJ_NUM)
        return invalid(e, "Invalid version");
    int64_t x = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        char c = v->s[i];
        if (c < '0' || c > '9' || x > (INT64_MAX - (c - '0')) / 10)
            return invalid(e, "Invalid version"); /* sign, fraction, exponent or overflow */
        x = x * 10 + (c - '0');
    }
    u->has_version = 1;
    u->version = x;
    return 0;
}

/* AWS's nesting rule (as Greengrass's ShadowManager counts it): desired / reported is level 1
 * and no non-empty object or array may sit at a level above 6; scalars and empty containers
 * do not count. So reported.a.b.c.d.e.f = 1 passes (object e at level 6) and
 * reported.a.b.c.d.e.f.g = 1 does not (object f at level 7). */
static int too_deep(const eng_sjson *v, int level) {
    if ((v->type != ENG_SJ_OBJ && v->type != ENG_SJ_ARR) || v->n == 0)
        return 0;
    if (level > ENG_SHADOW_DEPTH_MAX)
        return 1;
    for (uint32_t i = 0; i < v->n; i++)
        if (too_deep(v->items[i], level + 1))
            return 1;
    return 0;
}

/* 1 when a null sits anywhere beneath an array ("colors":[null,"RED"] is rejected by AWS; a
 * null inside an object inside an array would be stored as a null, which a shadow never
 * holds, so it is refused too). */
static int null_in_array(const eng_sjson *v, int in_array) {
    if (v->type == ENG_SJ_NULL)
        return in_array;
    if (v->type != ENG_SJ_OBJ && v->type != ENG_SJ_ARR)
        return 0;
    for (uint32_t i = 0; i < v->n; i++)
        if (null_in_array(v->items[i], in_array || v->type == ENG_SJ_ARR))
            return 1;
    return 0;
}

int eng__shadow_update_parse(eng_sarena *a, const void *p, size_t n, eng_shadow_update *u,
                             eng_shadow_token *tok, eng_error *e) {
    eng_sjson *root;
    memset(u, 0, sizeof *u);
    memset(tok, 0, sizeof *tok);
    if (parse_payload(a, p, n, &root, e) || token(a, root, tok, e))
        return -1;
    eng_sjson *state = eng__sjson_get(a, root, "state");
    if (!state)
        return invalid(e, "Missing required node: state");
    if (state->type == ENG_SJ_NULL)
        return version(a, root, u, e);
    if (state->type != ENG_SJ_OBJ)
        return invalid(e, "State node must be an object");
    u->state = state;
    for (uint32_t i = 0; i < state->n; i++) {
        eng_sjson *m = state->items[i];
        int is_desired = m->klen == 7 && !memcmp(m->key, "desired", 7);
        int is_reported = m->klen == 8 && !memcmp(m->key, "reported", 8);
        if (!is_desired && !is_reported) {
            char k[80];
            size_t kn = m->klen < sizeof k - 1 ? m->klen : sizeof k - 1;
            memcpy(k, m->key, kn);
            k[kn] = '\0';
            return eng__shadow_error(e, ENG_SHADOW_ERR_INVALID,
                                     "State contains an invalid node: '%s'", k);
        }
        if (is_desired)
            u->desired = m;
        else
            u->reported = m;
    }
    if (u->desired && u->desired->type != ENG_SJ_OBJ && u->desired->type != ENG_SJ_NULL)
        return invalid(e, "Desired node must be an object");
    if (u->reported && u->reported->type != ENG_SJ_OBJ && u->reported->type != ENG_SJ_NULL)
        return invalid(e, "Reported node must be an object");
    if (version(a, root, u, e))
        return -1;
    if ((u->desired && too_deep(u->desired, 1)) || (u->reported && too_deep(u->reported, 1)))
        return invalid(e, "JSON contains too many levels of nesting; maximum is 6");
    if ((u->desired && null_in_array(u->desired, 0)) ||
        (u->reported && null_in_array(u->reported, 0)))
        return invalid(e, "Invalid JSON: arrays may not contain null");
    return 0;
}

int eng__shadow_token_parse(eng_sarena *a, const void *p, size_t n, eng_shadow_token *tok,
                            eng_error *e) {
    memset(tok, 0, sizeof *tok);
    eng_sjson *root;
    /* AWS ignores the content of a get or delete request: only a readable clientToken is
     * used, and a payload that is not a JSON object is simply no token. */
    if (n == 0 || n > ENG_SHADOW_PAYLOAD_MAX || !eng__utf8_valid(p, n) ||
        eng__sjson_parse(a, p, n, PARSE_DEPTH, &root, NULL, 0) != ENG_SJ_OK ||
        root->type != ENG_SJ_OBJ)
        return 0;
    return token(a, root, tok, e);
}

/* }====== */

/* {====== loading a stored document */

static int64_t timestamp_of(eng_sarena *a, eng_sjson *meta) {
    eng_sjson *t = eng__sjson_get(a, meta, "timestamp");
    if (!t || t->type != ENG_SJ_NUM)
        return 0;
    int64_t x = 0;
    for (uint32_t i = 0; i < t->n && t->s[i] >= '0' && t->s[i] <= '9' && x < INT64_MAX / 10; i++)
        x = x * 10 + (t->s[i] - '0');
    return x;
}

/* Gives v's scalars the timestamps of meta, the metadata tree at the same path. */
static void attach(eng_sarena *a, eng_sjson *v, eng_sjson *meta) {
    if (v->type == ENG_SJ_OBJ) {
        for (uint32_t i = 0; i < v->n; i++) {
            eng_sjson *m = v->items[i];
            eng_sjson *mm = NULL;
            if (meta && meta->type == ENG_SJ_OBJ) {
                long j = eng__sjson_find(a, meta, m->key, m->klen);
                mm = j < 0 ? NULL : meta->items[j];
            }
            attach(a, m, mm);
        }
    } else if (v->type == ENG_SJ_ARR) {
        for (uint32_t i = 0; i < v->n; i++)
            attach(a, v->items[i],
                   meta && meta->type == ENG_SJ_ARR && i < meta->n ? meta->items[i] : NULL);
    } else {
        v->ts = meta ? timestamp_of(a, meta) : 0;
    }
}

int eng__shadow_doc_load(eng_sarena *a, const char *text, size_t n, eng_shadow_doc *d,
                         eng_error *e) {
    eng_sjson *root = NULL;
    memset(d, 0, sizeof *d);
    if (eng__sjson_parse(a, text, n, PARSE_DEPTH, &root, NULL, 0) != ENG_SJ_OK ||
        root->type != ENG_SJ_OBJ)
        return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "stored shadow is not JSON");
    eng_sjson *state = eng__sjson_get(a, root, "state");
    eng_sjson *meta = eng__sjson_get(a, root, "metadata");
    if (!state || state->type != ENG_SJ_OBJ)
        return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "stored shadow has no state");
    eng_sjson *sec[2] = {eng__sjson_get(a, state, "desired"), eng__sjson_get(a, state, "reported")};
    static const char *const names[2] = {"desired", "reported"};
    for (int i = 0; i < 2; i++) {
        if (!sec[i])
            continue;
        if (sec[i]->type != ENG_SJ_OBJ)
            return eng__shadow_error(e, ENG_SHADOW_ERR_INTERNAL, "stored shadow: bad %s", names[i]);
        attach(a, sec[i], eng__sjson_get(a, meta, names[i]));
    }
    d->desired = sec[0];
    d->reported = sec[1];
    return 0;
}

/* }====== */

/* {====== merge */

static void stamp(eng_sjson *v, int64_t now) {
    if (v->type == ENG_SJ_OBJ || v->type == ENG_SJ_ARR) {
        for (uint32_t i = 0; i < v->n; i++)
            if (v->items[i])
                stamp(v->items[i], now);
    } else {
        v->ts = now;
    }
}

#define OOM ((eng_sjson *)1) /* without_nulls: out of memory */

/* The patch object v as a value to store: its nulls removed at every level, stamped. An
 * object that held only nulls (at any depth) becomes nothing (NULL), while a literal {} stays
 * {} (Greengrass's createMergeTree; AWS keeps empty objects). */
static eng_sjson *without_nulls(eng_sarena *a, eng_sjson *v, int64_t now) {
    eng_sjson *out = eng__sjson_new(a, ENG_SJ_OBJ);
    if (!out)
        return OOM;
    out->key = v->key;
    out->klen = v->klen;
    if (v->n && !(out->items = eng__sarena_alloc(a, v->n * sizeof *out->items)))
        return OOM;
    int had_null = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        eng_sjson *m = v->items[i];
        if (m->type == ENG_SJ_NULL) {
            had_null = 1;
            continue;
        }
        if (m->type == ENG_SJ_OBJ) {
            m = without_nulls(a, m, now);
            if (m == OOM)
                return OOM;
            if (!m) {
                had_null = 1;
                continue;
            }
        } else {
            stamp(m, now);
        }
        out->items[out->n++] = m;
    }
    return had_null && out->n == 0 ? NULL : out;
}

/* Rebuilds obj's members: the live ones in place, then the added ones. */
static int compact(eng_sarena *a, eng_sjson *obj, eng_sjson **added, uint32_t nadded) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < obj->n; i++)
        n += obj->items[i] != NULL;
    eng_sjson **items = n + nadded ? eng__sarena_alloc(a, (n + nadded) * sizeof *items) : NULL;
    if (n + nadded && !items)
        return -1;
    uint32_t k = 0;
    for (uint32_t i = 0; i < obj->n; i++)
        if (obj->items[i])
            items[k++] = obj->items[i];
    for (uint32_t i = 0; i < nadded; i++)
        items[k++] = added[i];
    obj->items = items;
    obj->n = k;
    obj->ix = NULL;
    return 0;
}

/* merge(dst, patch): null deletes, object into object recurses, anything else replaces. */
static int merge(eng_sarena *a, eng_sjson *dst, eng_sjson *patch, int64_t now) {
    eng_sjson **added = patch->n ? eng__sarena_alloc(a, patch->n * sizeof *added) : NULL;
    uint32_t nadded = 0;
    if (patch->n && !added)
        return -1;
    for (uint32_t i = 0; i < patch->n; i++) {
        eng_sjson *m = patch->items[i];
        long j = eng__sjson_find(a, dst, m->key, m->klen);
        eng_sjson *cur = j < 0 ? NULL : dst->items[j];
        if (m->type == ENG_SJ_NULL) {
            if (cur)
                dst->items[j] = NULL;
            continue;
        }
        if (m->type == ENG_SJ_OBJ && cur && cur->type == ENG_SJ_OBJ) {
            if (merge(a, cur, m, now))
                return -1;
            continue;
        }
        eng_sjson *v = m;
        if (m->type == ENG_SJ_OBJ) {
            v = without_nulls(a, m, now);
            if (v == OOM)
                return -1;
        } else {
            stamp(m, now);
        }
        if (cur)
            dst->items[j] = v; /* NULL when v was all nulls: the key goes */
        else if (v)
            added[nadded++] = v;
    }
    /* Patch keys are unique (the parser refuses duplicates), so nothing added above could
     * have been looked up again before this point. */
    return compact(a, dst, added, nadded);
}

static int apply_section(eng_sarena *a, eng_sjson **sec, eng_sjson *patch, int64_t now) {
    if (!patch)
        return 0;
    if (patch->type == ENG_SJ_NULL) {
        *sec = NULL;
        return 0;
    }
    if (!*sec) {
        *sec = eng__sjson_new(a, ENG_SJ_OBJ);
        if (!*sec)
            return -1;
    }
    if (merge(a, *sec, patch, now))
        return -1;
    if ((*sec)->n == 0)
        *sec = NULL; /* a section that becomes empty disappears */
    return 0;
}

int eng__shadow_doc_apply(eng_sarena *a, eng_shadow_doc *d, const eng_shadow_update *u,
                          int64_t now) {
    if (!u->state) {
        d->desired = d->reported = NULL;
        return 0;
    }
    if (apply_section(a, &d->desired, u->desired, now) ||
        apply_section(a, &d->reported, u->reported, now))
        return -1;
    return 0;
}

/* }====== */

/* {====== delta */

/* The members of D that R lacks or holds differently; NULL when none (OOM on failure). */
static eng_sjson *delta_obj(eng_sarena *a, eng_sjson *D, eng_sjson *R) {
    eng_sjson *out = eng__sjson_new(a, ENG_SJ_OBJ);
    if (!out || (D->n && !(out->items = eng__sarena_alloc(a, D->n * sizeof *out->items))))
        return OOM;
    out->key = D->key;
    out->klen = D->klen;
    for (uint32_t i = 0; i < D->n; i++) {
        eng_sjson *dv = D->items[i];
        long j = eng__sjson_find(a, R, dv->key, dv->klen);
        if (j < 0) {
            out->items[out->n++] = dv;
            continue;
        }
        eng_sjson *rv = R->items[j];
        if (dv->type == ENG_SJ_OBJ && rv->type == ENG_SJ_OBJ) {
            eng_sjson *s = delta_obj(a, dv, rv);
            if (s == OOM)
                return OOM;
            if (s)
                out->items[out->n++] = s;
        } else if (!eng__sjson_equal(a, dv, rv)) {
            out->items[out->n++] = dv;
        }
    }
    return out->n ? out : NULL;
}

eng_sjson *eng__shadow_delta(eng_sarena *a, const eng_shadow_doc *d, int *oom) {
    *oom = 0;
    if (!d->desired)
        return NULL;
    if (!d->reported)
        return d->desired;
    eng_sjson *r = delta_obj(a, d->desired, d->reported);
    if (r == OOM) {
        *oom = 1;
        return NULL;
    }
    return r;
}

size_t eng__shadow_state_size(const eng_shadow_doc *d) {
    eng_sbuf b = {0};
    if (d->desired)
        eng__sjson_write(&b, d->desired);
    if (d->reported)
        eng__sjson_write(&b, d->reported);
    size_t n = b.oom ? SIZE_MAX : b.len;
    eng__sbuf_deinit(&b);
    return n;
}

/* }====== */

/* {====== documents */

static void write_stamp(eng_sbuf *b, const eng_sjson *leaf, void *ud) {
    eng__sbuf_lit(b, "{\"timestamp\":");
    eng__sbuf_i64(b, ud ? *(const int64_t *)ud : leaf->ts);
    eng__sbuf_add(b, "}", 1);
}

/* Metadata of v: its own timestamps, or *ts for every field when ts is not NULL (a request's
 * metadata: every field it names, nulls included, at the time of the update). */
static void write_meta(eng_sbuf *b, const eng_sjson *v, const int64_t *ts) {
    eng__sjson_write_tree(b, v, write_stamp, (void *)ts);
}

/* "key":<v> members of an object, for the sections present. */
static void write_sections(eng_sbuf *b, const eng_sjson *const *v, const char *const *names,
                           int n, int meta) {
    int first = 1;
    eng__sbuf_add(b, "{", 1);
    for (int i = 0; i < n; i++) {
        if (!v[i])
            continue;
        if (!first)
            eng__sbuf_add(b, ",", 1);
        first = 0;
        eng__sbuf_jstr(b, names[i], strlen(names[i]));
        eng__sbuf_add(b, ":", 1);
        if (meta)
            write_meta(b, v[i], NULL);
        else
            eng__sjson_write(b, v[i]);
    }
    eng__sbuf_add(b, "}", 1);
}

/* "state":{desired?,reported?[,delta?]},"metadata":{desired?,reported?} */
static void write_state_meta(eng_sbuf *b, const eng_shadow_doc *d, const eng_sjson *delta) {
    static const char *const names[3] = {"desired", "reported", "delta"};
    const eng_sjson *v[3] = {d->desired, d->reported, delta};
    eng__sbuf_lit(b, "\"state\":");
    write_sections(b, v, names, 3, 0);
    eng__sbuf_lit(b, ",\"metadata\":");
    write_sections(b, v, names, 2, 1);
}

static void write_version_ts(eng_sbuf *b, int64_t version, int64_t ts) {
    eng__sbuf_lit(b, "\"version\":");
    eng__sbuf_i64(b, version);
    eng__sbuf_lit(b, ",\"timestamp\":");
    eng__sbuf_i64(b, ts);
}

static void write_token_close(eng_sbuf *b, const eng_shadow_token *tok) {
    if (tok && tok->s) {
        eng__sbuf_lit(b, ",\"clientToken\":");
        eng__sbuf_jstr(b, tok->s, tok->n);
    }
    eng__sbuf_add(b, "}", 1);
}

void eng__shadow_write_stored(eng_sbuf *b, const eng_shadow_doc *d) {
    eng__sbuf_add(b, "{", 1);
    write_state_meta(b, d, NULL);
    eng__sbuf_add(b, "}", 1);
}

void eng__shadow_write_get(eng_sbuf *b, const eng_shadow_doc *d, const eng_sjson *delta,
                           int64_t version, int64_t ts, const eng_shadow_token *tok) {
    eng__sbuf_add(b, "{", 1);
    write_state_meta(b, d, delta);
    eng__sbuf_add(b, ",", 1);
    write_version_ts(b, version, ts);
    write_token_close(b, tok);
}

void eng__shadow_write_accepted(eng_sbuf *b, const eng_shadow_update *u, int64_t version,
                                int64_t ts, const eng_shadow_token *tok) {
    eng__sbuf_lit(b, "{\"state\":");
    if (u->state) {
        eng__sjson_write(b, u->state);
        eng__sbuf_lit(b, ",\"metadata\":");
        write_meta(b, u->state, &ts);
    } else {
        eng__sbuf_lit(b, "null,\"metadata\":{\"timestamp\":");
        eng__sbuf_i64(b, ts);
        eng__sbuf_add(b, "}", 1);
    }
    eng__sbuf_add(b, ",", 1);
    write_version_ts(b, version, ts);
    write_token_close(b, tok);
}

void eng__shadow_write_delta(eng_sbuf *b, const eng_sjson *delta, int64_t version, int64_t ts,
                             const eng_shadow_token *tok) {
    eng__sbuf_add(b, "{", 1);
    write_version_ts(b, version, ts);
    eng__sbuf_lit(b, ",\"state\":");
    eng__sjson_write(b, delta);
    eng__sbuf_lit(b, ",\"metadata\":");
    write_meta(b, delta, NULL);
    write_token_close(b, tok);
}

/* A documents snapshot: the stored document (a JSON object: eng__shadow_doc_load() read it)
 * with the version added before its closing brace. */
static void write_snapshot(eng_sbuf *b, const char *stored, size_t n, int64_t version) {
    while (n && stored[n - 1] != '}') /* whitespace after it, from another writer */
        n--;
    eng__sbuf_add(b, stored, n ? n - 1 : 0);
    eng__sbuf_lit(b, ",\"version\":");
    eng__sbuf_i64(b, version);
    eng__sbuf_add(b, "}", 1);
}

void eng__shadow_write_documents(eng_sbuf *b, const char *prev, size_t prev_len,
                                 int64_t prev_version, const char *cur, size_t cur_len,
                                 int64_t cur_version, int64_t ts, const eng_shadow_token *tok) {
    eng__sbuf_lit(b, "{\"previous\":");
    if (prev)
        write_snapshot(b, prev, prev_len, prev_version);
    else
        eng__sbuf_lit(b, "null");
    eng__sbuf_lit(b, ",\"current\":");
    write_snapshot(b, cur, cur_len, cur_version);
    eng__sbuf_lit(b, ",\"timestamp\":");
    eng__sbuf_i64(b, ts);
    write_token_close(b, tok);
}

void eng__shadow_write_deleted(eng_sbuf *b, int64_t version, int64_t ts,
                               const eng_shadow_token *tok) {
    eng__sbuf_add(b, "{", 1);
    write_version_ts(b, version, ts);
    write_token_close(b, tok);
}

void eng__shadow_write_error(eng_sbuf *b, int code, const char *message,
                             const eng_shadow_token *tok) {
    eng__sbuf_lit(b, "{\"code\":");
    eng__sbuf_i64(b, code);
    eng__sbuf_lit(b, ",\"message\":");
    eng__sbuf_jstr(b, message, strlen(message));
    write_token_close(b, tok);
}

/* }====== */

/*
 * rule_registry.c -- the rules, and the immutable snapshots workers evaluate.
 *
 * A change (create, replace, delete, enable, disable) is written to the store first (a failed
 * write changes nothing), then applied: a new rule list, a new snapshot (the enabled rules and
 * a fresh topic index), published with one atomic pointer swap. Every change carries the
 * store's change number (seq); applying skips a change older than what the registry holds, so
 * the same change arriving twice, or late, does nothing. Changes other instances made to a
 * shared store arrive the same way: eng_registry_sync() asks the store for the changes after
 * the newest one applied, compiles them and applies them as one batch (one snapshot), and
 * eng_registry_reconcile() compares everything (after a reconnect). An admin call on a shared
 * store writes, then syncs: its own change is applied in order with any others that came
 * before it, so two instances never apply one pair of changes in different orders. The rule
 * the admin call compiled is used for its own change rather than compiled again.
 *
 * Two locks: sync_mu serializes applying (and, for the data dir, which nobody else writes,
 * the write before it); it is held across store I/O and rule compilation, but never by a
 * worker or a reader. mu guards the rule list and the swap and is held only for that: GET
 * calls never wait for a disk or a database. Workers never lock: before each message a worker loads the current snapshot and publishes it in its
 * hazard slot (then re-checks that it is still current, the classic hazard-pointer handshake),
 * so a snapshot is freed only when no hazard slot names it. A message is evaluated entirely
 * against one snapshot, so across a swap it sees either the old rules or the new ones, never a
 * mix, and is never evaluated twice. Rules are reference counted and shared by consecutive
 * snapshots. Rejected alternative: a reader-writer lock, which puts a shared cache line
 * write on every message of every worker.
 */
#include "engine_int.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct eng_registry {
    pthread_mutex_t mu;
    eng_rule **rules; /* all rules, sorted by name; guarded by mu */
    size_t n, cap;    /* guarded by mu */
    _Atomic(eng_snapshot *) current;
    _Atomic(eng_snapshot *) *hazard; /* one per worker */
    int nworkers;
    eng_snapshot **retired; /* guarded by mu */
    size_t nretired, capretired;
    uint64_t gen; /* guarded by mu */
    pthread_mutex_t sync_mu; /* held by whoever changes the list (who also takes mu to swap) */
    eng_rule_store *store;
    int own_store;           /* opened here (no env->rules_store): closed by _free */
    uint64_t applied;        /* guarded by sync_mu: the newest change applied */
    const eng_config *cfg;
    eng_env *env;
    eng_filters_fn on_filters;
    void *ud;
};

static void snapshot_free(eng_snapshot *s) {
    if (!s)
        return;
    sql_scanset_free(s->scanset); /* before the rules: it borrows their programs */
    for (uint32_t i = 0; i < s->nrules; i++)
        eng_rule_release(s->rules[i]);
    free(s->rules);
    eng_topic_index_free(s->index);
    free(s);
}

/* The enabled rules of list[0..n) and their topic index. */
static eng_snapshot *snapshot_build(eng_rule *const *list, size_t n, uint64_t gen) {
    eng_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->gen = gen;
    s->rules = calloc(n + 1, sizeof *s->rules);
    s->index = eng_topic_index_new();
    if (!s->rules || !s->index) {
        snapshot_free(s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        eng_rule *r = list[i];
        if (r->disabled)
            continue;
        const char *f = sql_program_topic_filter(r->prog);
        if (eng_topic_index_add(s->index, f, strlen(f), s->nrules) != 0) {
            snapshot_free(s);
            return NULL;
        }
        s->rules[s->nrules++] = eng_rule_retain(r);
    }
    if (s->nrules) {
        const sql_program **progs = malloc(s->nrules * sizeof *progs);
        for (uint32_t i = 0; progs && i < s->nrules; i++)
            progs[i] = s->rules[i]->prog;
        /* without it (OOM) every rule scans alone: slower, not wrong */
        s->scanset = progs ? sql_scanset_new(progs, s->nrules) : NULL;
        free(progs);
    }
    return s;
}

eng_registry *eng_registry_new(int nworkers, const eng_config *cfg, eng_env *env) {
    eng_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    pthread_mutex_init(&reg->mu, NULL);
    pthread_mutex_init(&reg->sync_mu, NULL);
    reg->nworkers = nworkers;
    reg->cfg = cfg;
    reg->env = env;
    reg->store = env->rules_store;
    if (!reg->store) {
        eng_error e;
        reg->store = eng_rule_store_dir_open(cfg->data_dir, &e);
        reg->own_store = 1;
    }
    reg->hazard = calloc((size_t)nworkers + 1, sizeof *reg->hazard);
    eng_snapshot *s = snapshot_build(NULL, 0, 0);
    if (!reg->hazard || !s || !reg->store) {
        snapshot_free(s);
        if (reg->own_store && reg->store)
            reg->store->vt->close(reg->store);
        free(reg->hazard);
        free(reg);
        return NULL;
    }
    atomic_init(&reg->current, s);
    return reg;
}

void eng_registry_free(eng_registry *reg) {
    if (!reg)
        return;
    snapshot_free(atomic_load(&reg->current));
    for (size_t i = 0; i < reg->nretired; i++)
        snapshot_free(reg->retired[i]);
    for (size_t i = 0; i < reg->n; i++)
        eng_rule_release(reg->rules[i]);
    free(reg->retired);
    free(reg->rules);
    free((void *)reg->hazard);
    if (reg->own_store)
        reg->store->vt->close(reg->store);
    pthread_mutex_destroy(&reg->mu);
    pthread_mutex_destroy(&reg->sync_mu);
    free(reg);
}

static void notify_filters(eng_registry *reg, const eng_snapshot *s);

void eng_registry_on_filters(eng_registry *reg, eng_filters_fn fn, void *ud) {
    pthread_mutex_lock(&reg->mu);
    reg->on_filters = fn;
    reg->ud = ud;
    notify_filters(reg, atomic_load(&reg->current)); /* the rules loaded so far */
    pthread_mutex_unlock(&reg->mu);
}

void eng_registry_refilter(eng_registry *reg) {
    pthread_mutex_lock(&reg->mu);
    notify_filters(reg, atomic_load(&reg->current));
    pthread_mutex_unlock(&reg->mu);
}

const eng_snapshot *eng_registry_acquire(eng_registry *reg, int w) {
    for (;;) {
        eng_snapshot *s = atomic_load(&reg->current);
        atomic_store(&reg->hazard[w], s);
        if (atomic_load(&reg->current) == s)
            return s;
    }
}

void eng_registry_release(eng_registry *reg, int w) { atomic_store(&reg->hazard[w], NULL); }

/* Frees retired snapshots that no worker holds. Caller holds reg->mu. */
static void reclaim(eng_registry *reg) {
    size_t k = 0;
    for (size_t i = 0; i < reg->nretired; i++) {
        eng_snapshot *s = reg->retired[i];
        int held = 0;
        for (int w = 0; w < reg->nworkers && !held; w++)
            held = atomic_load(&reg->hazard[w]) == s;
        if (held)
            reg->retired[k++] = s;
        else
            snapshot_free(s);
    }
    reg->nretired = k;
}

void eng_registry_reclaim(eng_registry *reg) {
    pthread_mutex_lock(&reg->mu);
    reclaim(reg);
    pthread_mutex_unlock(&reg->mu);
}

static int cmpstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void notify_filters(eng_registry *reg, const eng_snapshot *s) {
    if (!reg->on_filters)
        return;
    const char **fs = calloc(s->nrules + 1, sizeof *fs);
    if (!fs)
        return;
    size_t n = 0;
    for (uint32_t i = 0; i < s->nrules; i++) {
        const char *f = sql_program_topic_filter(s->rules[i]->prog);
        if (*f) /* an empty filter: Basic Ingest only, nothing to subscribe to */
            fs[n++] = f;
    }
    qsort(fs, n, sizeof *fs, cmpstr); /* sorted and unique: O(n log n) per change */
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(fs[u - 1], fs[i]) != 0)
            fs[u++] = fs[i];
    reg->on_filters(reg->ud, fs, u);
    free(fs);
}

/* Publishes the snapshot of list. Takes ownership of list (an array of retained rules) on
 * success; on failure the caller keeps it. Caller holds reg->mu. */
static int commit(eng_registry *reg, eng_rule **list, size_t n, eng_error *e) {
    eng_snapshot *s = snapshot_build(list, n, reg->gen + 1);
    if (!s)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    if (reg->nretired == reg->capretired) {
        size_t c = reg->capretired ? reg->capretired * 2 : 8;
        eng_snapshot **v = realloc(reg->retired, c * sizeof *v);
        if (!v) {
            snapshot_free(s);
            return eng_error_set(e, 500, "InternalException", "out of memory");
        }
        reg->retired = v;
        reg->capretired = c;
    }
    reg->gen++;
    eng_snapshot *old = atomic_exchange(&reg->current, s);
    reg->retired[reg->nretired++] = old;
    for (size_t i = 0; i < reg->n; i++)
        eng_rule_release(reg->rules[i]);
    free(reg->rules);
    reg->rules = list;
    reg->n = n;
    reg->cap = n;
    reclaim(reg);
    notify_filters(reg, s);
    return 0;
}

/* Where name is in v[0..n) (sorted by name), or -(insertion point) - 1. */
static long search(eng_rule *const *v, size_t n, const char *name) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v[mid]->name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static long find(eng_registry *reg, const char *name) { return search(reg->rules, reg->n, name); }

static void drop(eng_rule **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        eng_rule_release(v[i]);
    free(v);
}

/* {====== applying changes */

/* One change to apply: the rule's new version (retained), or its deletion (rule NULL). */
typedef struct change {
    char name[129];
    uint64_t seq;
    eng_rule *rule;
} change;

typedef struct batch {
    eng_registry *reg;
    change *v;
    size_t n, cap;
    int strict;            /* a stored rule that does not compile is an error (else: logged) */
    int log;               /* log each change applied (other instances' changes) but: */
    uint64_t own_seq;      /* the change of the admin call that applies this batch */
    eng_rule *hint;        /* compiled already: the rule of the change numbered hint->seq */
    uint64_t max_seq;
    int want_seen;         /* reconcile: collect the names of every live rule the store holds */
    char **seen;
    size_t nseen, capseen;
} batch;

static void batch_deinit(batch *b) {
    for (size_t i = 0; i < b->n; i++)
        eng_rule_release(b->v[i].rule);
    free(b->v);
    for (size_t i = 0; i < b->nseen; i++)
        free(b->seen[i]);
    free(b->seen);
}

static int push(batch *b, const char *name, uint64_t seq, eng_rule *rule_take, eng_error *e) {
    if (b->n == b->cap) {
        size_t c = b->cap ? b->cap * 2 : 16;
        change *v = realloc(b->v, c * sizeof *v);
        if (!v) {
            eng_rule_release(rule_take);
            return eng_error_set(e, 500, "InternalException", "out of memory");
        }
        b->v = v;
        b->cap = c;
    }
    change *c = &b->v[b->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->seq = seq;
    c->rule = rule_take;
    return 0;
}

/* A row from the store: compiled (or the hint) and queued, unless the registry has it
 * already. Runs under sync_mu, which lets it read reg->rules without mu (only sync_mu's holder
 * changes the list). */
static int collect(void *ud, const eng_rule_row *row, eng_error *e) {
    batch *b = ud;
    eng_registry *reg = b->reg;
    if (row->seq > b->max_seq)
        b->max_seq = row->seq;
    if (b->want_seen && row->payload_json) {
        if (b->nseen == b->capseen) {
            size_t c = b->capseen ? b->capseen * 2 : 64;
            char **v = realloc(b->seen, c * sizeof *v);
            if (!v)
                return eng_error_set(e, 500, "InternalException", "out of memory");
            b->seen = v;
            b->capseen = c;
        }
        if (!(b->seen[b->nseen] = strdup(row->name)))
            return eng_error_set(e, 500, "InternalException", "out of memory");
        b->nseen++;
    }
    long at = find(reg, row->name);
    if (at >= 0 ? reg->rules[at]->seq >= row->seq : !row->payload_json)
        return 0; /* had it already, or the deletion of a rule never seen here */
    if (!row->payload_json)
        return push(b, row->name, row->seq, NULL, e);
    eng_rule *r;
    if (b->hint && b->hint->seq == row->seq && !strcmp(b->hint->name, row->name)) {
        r = eng_rule_retain(b->hint);
    } else {
        eng_error sub;
        memset(&sub, 0, sizeof sub);
        r = eng_rule_new(row->name, row->payload_json, strlen(row->payload_json), reg->env,
                         &sub);
        if (!r) {
            if (b->strict)
                return eng_error_set(e, 500, "InternalException", "%s", sub.message);
            /* another release wrote it, or this instance lacks what it needs (a certificate,
             * an allowed host): keep what runs here and say so */
            eng_log(ENG_LOG_ERROR, "rule.sync_failed",
                    "rule %s revision %llu from the store cannot run on this instance (the "
                    "previous version, if any, stays): %s",
                    row->name, (unsigned long long)row->revision, sub.message);
            return 0;
        }
        r->created_at = row->created_at;
        r->revision = row->revision;
        r->seq = row->seq;
    }
    return push(b, row->name, row->seq, r, e);
}

/* Applies b's changes, in order, to the rule list and publishes one snapshot. A change older
 * than the rule held is dropped. Caller holds sync_mu. */
static int apply(eng_registry *reg, batch *b, eng_error *e) {
    if (!b->n)
        return 0;
    eng_rule **v = calloc(reg->n + b->n + 1, sizeof *v);
    if (!v)
        return eng_error_set(e, 500, "InternalException", "out of memory");
    size_t n = reg->n;
    for (size_t i = 0; i < n; i++)
        v[i] = eng_rule_retain(reg->rules[i]);
    for (size_t i = 0; i < b->n; i++) {
        change *c = &b->v[i];
        long at = search(v, n, c->name);
        if (at >= 0 && v[at]->seq >= c->seq)
            continue; /* c->rule is released with the batch */
        if (b->log && c->seq != b->own_seq)
            eng_log(ENG_LOG_INFO, c->rule ? "rule.synced" : "rule.sync_deleted",
                    "rule %s %s (change %llu of the shared store)", c->name,
                    c->rule ? "updated" : "deleted", (unsigned long long)c->seq);
        if (at >= 0) {
            eng_rule_release(v[at]);
            if (c->rule)
                v[at] = c->rule;
            else
                memmove(v + at, v + at + 1, (--n - (size_t)at) * sizeof *v);
        } else if (c->rule) {
            size_t ins = (size_t)(-at - 1);
            memmove(v + ins + 1, v + ins, (n - ins) * sizeof *v);
            v[ins] = c->rule;
            n++;
        }
        c->rule = NULL; /* the list has it */
    }
    pthread_mutex_lock(&reg->mu);
    int rc = commit(reg, v, n, e);
    pthread_mutex_unlock(&reg->mu);
    if (rc)
        drop(v, n);
    return rc;
}

/* The store's changes after the newest applied, applied; hint: see batch. Caller holds
 * sync_mu. */
static int sync_locked(eng_registry *reg, eng_rule *hint, uint64_t own_seq, eng_error *e) {
    if (!reg->store->vt->changes)
        return 0;
    batch b = {.reg = reg, .log = 1, .own_seq = own_seq, .hint = hint,
               .max_seq = reg->applied};
    int rc = reg->store->vt->changes(reg->store, reg->applied, collect, &b, e);
    if (rc == 0 && (rc = apply(reg, &b, e)) == 0)
        reg->applied = b.max_seq;
    batch_deinit(&b);
    return rc;
}

int eng_registry_sync(eng_registry *reg, eng_error *e) {
    pthread_mutex_lock(&reg->sync_mu);
    int rc = sync_locked(reg, NULL, 0, e);
    pthread_mutex_unlock(&reg->sync_mu);
    return rc;
}

/* Loads every rule the store holds; with reconcile, the rules held here that the store no
 * longer has are deleted (unless changed after what the load saw). */
static int load(eng_registry *reg, int reconcile, eng_error *e) {
    pthread_mutex_lock(&reg->sync_mu);
    batch b = {.reg = reg, .strict = !reg->store->vt->shared, .log = reconcile,
               .max_seq = reg->applied, .want_seen = reconcile};
    uint64_t upto = 0;
    int rc = reg->store->vt->load(reg->store, collect, &b, &upto, e);
    if (rc == 0 && reconcile) {
        /* a rule held here that the store no longer has was deleted by a change numbered up
         * to `upto` (one after it shows in changes()); its tombstone may be purged by now */
        if (b.nseen)
            qsort(b.seen, b.nseen, sizeof *b.seen, cmpstr);
        for (size_t i = 0; i < reg->n && rc == 0; i++) {
            const eng_rule *r = reg->rules[i];
            const char *key = r->name;
            if (r->seq < upto &&
                !(b.nseen && bsearch(&key, b.seen, b.nseen, sizeof *b.seen, cmpstr)))
                rc = push(&b, r->name, upto, NULL, e);
        }
    }
    if (rc == 0 && (rc = apply(reg, &b, e)) == 0) {
        if (upto > reg->applied)
            reg->applied = upto;
        if (b.max_seq > reg->applied)
            reg->applied = b.max_seq;
    }
    batch_deinit(&b);
    pthread_mutex_unlock(&reg->sync_mu);
    return rc;
}

int eng_registry_load(eng_registry *reg, eng_error *e) { return load(reg, 0, e); }

int eng_registry_reconcile(eng_registry *reg, eng_error *e) { return load(reg, 1, e); }

/* }====== */

/* {====== admin operations */

enum { OP_CREATE, OP_REPLACE, OP_REMOVE };

/* Writes one change to the store and applies it. rule_take (NULL for OP_REMOVE) is the
 * compiled new version: it gets the revision, creation time and seq the store gave the change.
 * A local store is written under sync_mu (the registry is its only writer); a shared one
 * decides by itself, and the change is then applied together with any others before it. */
static int change_rule(eng_registry *reg, int op, const char *name, eng_rule *rule_take,
                       uint64_t expect, eng_error *e) {
    eng_rule_store *st = reg->store;
    int shared = st->vt->shared;
    eng_rule_row row;
    memset(&row, 0, sizeof row);
    if (!shared)
        pthread_mutex_lock(&reg->sync_mu);
    int rc = op == OP_CREATE    ? st->vt->create(st, name, rule_take->payload_json, &row, e)
             : op == OP_REPLACE ? st->vt->replace(st, name, rule_take->payload_json, expect,
                                                  &row, e)
                                : st->vt->remove(st, name, &row, e);
    if (rc == 0 && rule_take) {
        rule_take->revision = row.revision;
        rule_take->created_at = row.created_at;
        rule_take->seq = row.seq;
    }
    if (rc == 0 && shared) {
        pthread_mutex_lock(&reg->sync_mu);
        eng_error sub;
        memset(&sub, 0, sizeof sub);
        /* the change is durable: if it cannot be read back now, the watcher applies it */
        if (sync_locked(reg, rule_take, row.seq, &sub))
            eng_log(ENG_LOG_WARN, "rule.sync_failed", "rule %s was stored but not applied yet "
                    "(the store's watcher will): %s", name, sub.message);
        pthread_mutex_unlock(&reg->sync_mu);
    } else if (rc == 0) {
        batch b = {.reg = reg};
        if ((rc = push(&b, name, row.seq, rule_take ? eng_rule_retain(rule_take) : NULL,
                       e)) == 0 &&
            (rc = apply(reg, &b, e)) == 0)
            reg->applied = row.seq;
        batch_deinit(&b);
    }
    if (!shared)
        pthread_mutex_unlock(&reg->sync_mu);
    eng_rule_release(rule_take);
    return rc;
}

int eng_registry_create(eng_registry *reg, eng_rule *rule_take, eng_error *e) {
    return change_rule(reg, OP_CREATE, rule_take->name, rule_take, 0, e);
}

int eng_registry_replace(eng_registry *reg, eng_rule *rule_take, eng_error *e) {
    return change_rule(reg, OP_REPLACE, rule_take->name, rule_take, ENG_RULE_ANY_REVISION, e);
}

int eng_registry_delete(eng_registry *reg, const char *name, eng_error *e) {
    return change_rule(reg, OP_REMOVE, name, NULL, 0, e);
}

#define ENABLE_ATTEMPTS 5 /* read-modify-write races with other instances' changes */

int eng_registry_set_enabled(eng_registry *reg, const char *name, int enabled, eng_error *e) {
    int rc = -1;
    for (int attempt = 0; attempt < ENABLE_ATTEMPTS; attempt++) {
        eng_rule_row cur;
        if (reg->store->vt->get(reg->store, name, &cur, e))
            return -1;
        /* rules are immutable: rebuild it with the flag flipped in its payload */
        cJSON *p = cJSON_Parse(cur.payload_json);
        char *edited = NULL;
        if (p) {
            cJSON_DeleteItemFromObjectCaseSensitive(p, "ruleDisabled");
            cJSON_AddBoolToObject(p, "ruleDisabled", !enabled);
            edited = cJSON_PrintUnformatted(p);
            cJSON_Delete(p);
        }
        eng_rule_row_deinit(&cur);
        if (!edited)
            return eng_error_set(e, 500, "InternalException", "out of memory");
        eng_rule *r = eng_rule_new(name, edited, strlen(edited), reg->env, e);
        free(edited);
        if (!r)
            return -1;
        rc = change_rule(reg, OP_REPLACE, name, r, cur.revision, e);
        if (rc == 0 || e->status != 409)
            break; /* a 409 here: changed meanwhile; read it again */
    }
    return rc;
}

eng_rule *eng_registry_get(eng_registry *reg, const char *name) {
    pthread_mutex_lock(&reg->mu);
    long at = find(reg, name);
    eng_rule *r = at >= 0 ? eng_rule_retain(reg->rules[at]) : NULL;
    pthread_mutex_unlock(&reg->mu);
    return r;
}

eng_rule **eng_registry_list(eng_registry *reg, size_t *n) {
    pthread_mutex_lock(&reg->mu);
    eng_rule **v = calloc(reg->n + 1, sizeof *v);
    *n = 0;
    if (v) {
        for (size_t i = 0; i < reg->n; i++)
            v[i] = eng_rule_retain(reg->rules[i]);
        *n = reg->n;
    }
    pthread_mutex_unlock(&reg->mu);
    return v;
}


/*
 * rule_registry.c -- the rules, and the immutable snapshots workers evaluate.
 *
 * Admin operations (create, replace, delete, enable, disable) run under one mutex: they build
 * the new rule list, persist it (a failed write changes nothing), build a new snapshot (the
 * enabled rules and a fresh topic index) and publish it with one atomic pointer swap. Workers
 * never lock: before each message a worker loads the current snapshot and publishes it in its
 * hazard slot (then re-checks that it is still current, the classic hazard-pointer handshake),
 * so a snapshot is freed only when no hazard slot names it. A message is evaluated entirely
 * against one snapshot, so across a swap it sees either the old rules or the new ones, never a
 * mix, and is never evaluated twice. Rules are reference counted and shared by consecutive
 * snapshots. Rejected alternative: a reader-writer lock, which puts a shared cache line
 * write on every message of every worker.
 */
#include "engine_int.h"

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
    reg->nworkers = nworkers;
    reg->cfg = cfg;
    reg->env = env;
    reg->hazard = calloc((size_t)nworkers + 1, sizeof *reg->hazard);
    eng_snapshot *s = snapshot_build(NULL, 0, 0);
    if (!reg->hazard || !s) {
        snapshot_free(s);
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
    pthread_mutex_destroy(&reg->mu);
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

/* Persists the change (the rule written, or the name deleted; neither while loading), then
 * publishes the snapshot of list. Takes ownership of list (an array of retained rules) on
 * success; on failure the caller keeps it. Caller holds reg->mu. */
static int commit(eng_registry *reg, eng_rule **list, size_t n, const eng_rule *written,
                  const char *deleted, eng_error *e) {
    if (written && eng_store_put(reg->cfg->data_dir, written, e) != 0)
        return -1;
    if (deleted && eng_store_delete(reg->cfg->data_dir, deleted, e) != 0)
        return -1;
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

static long find(eng_registry *reg, const char *name) {
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(reg->rules[mid]->name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

/* A retained copy of the current list with `r` put at `at` (insert, or replace when
 * replace is set) or the entry at `at` removed (r == NULL). */
static eng_rule **edit(eng_registry *reg, long at, eng_rule *r, int replace, size_t *n) {
    size_t m = reg->n + (r && !replace ? 1 : 0) - (!r ? 1 : 0);
    eng_rule **v = calloc(m + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i <= reg->n; i++) {
        if ((long)i == at && r)
            v[k++] = eng_rule_retain(r);
        if (i == reg->n)
            break;
        if ((long)i == at && (replace || !r))
            continue;
        v[k++] = eng_rule_retain(reg->rules[i]);
    }
    *n = k;
    return v;
}

static void drop(eng_rule **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        eng_rule_release(v[i]);
    free(v);
}

static int put(eng_registry *reg, eng_rule *rule, int mode, int persist, eng_error *e) {
    /* mode: 0 create (409 if it exists), 1 replace (404 if absent) */
    pthread_mutex_lock(&reg->mu);
    long at = find(reg, rule->name);
    int rc = -1;
    if (mode == 0 && at >= 0) {
        eng_error_set(e, 409, "ResourceAlreadyExistsException", "rule %s already exists",
                      rule->name);
        goto out;
    }
    if (mode == 1 && at < 0) {
        eng_error_set(e, 404, "ResourceNotFoundException", "rule %s does not exist", rule->name);
        goto out;
    }
    if (mode == 1) {
        rule->created_at = reg->rules[at]->created_at;
        rule->revision = reg->rules[at]->revision + 1;
    }
    size_t n;
    eng_rule **v = edit(reg, at >= 0 ? at : -at - 1, rule, mode == 1, &n);
    if (!v) {
        eng_error_set(e, 500, "InternalException", "out of memory");
        goto out;
    }
    if ((rc = commit(reg, v, n, persist ? rule : NULL, NULL, e)) != 0)
        drop(v, n);
out:
    pthread_mutex_unlock(&reg->mu);
    eng_rule_release(rule);
    return rc;
}

int eng_registry_create(eng_registry *reg, eng_rule *rule_take, eng_error *e) {
    return put(reg, rule_take, 0, 1, e);
}

int eng_registry_replace(eng_registry *reg, eng_rule *rule_take, eng_error *e) {
    return put(reg, rule_take, 1, 1, e);
}

int eng_registry_delete(eng_registry *reg, const char *name, eng_error *e) {
    pthread_mutex_lock(&reg->mu);
    long at = find(reg, name);
    int rc = -1;
    if (at < 0) {
        eng_error_set(e, 404, "ResourceNotFoundException", "rule %s does not exist", name);
    } else {
        size_t n;
        eng_rule **v = edit(reg, at, NULL, 0, &n);
        if (!v)
            eng_error_set(e, 500, "InternalException", "out of memory");
        else if ((rc = commit(reg, v, n, NULL, name, e)) != 0)
            drop(v, n);
    }
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

int eng_registry_set_enabled(eng_registry *reg, const char *name, int enabled, eng_error *e) {
    eng_rule *cur = eng_registry_get(reg, name);
    if (!cur)
        return eng_error_set(e, 404, "ResourceNotFoundException", "rule %s does not exist", name);
    /* rules are immutable: rebuild it with the flag flipped in its payload */
    cJSON *p = cJSON_Parse(cur->payload_json);
    char *edited = NULL;
    int rc = -1;
    if (p) {
        cJSON_DeleteItemFromObjectCaseSensitive(p, "ruleDisabled");
        cJSON_AddBoolToObject(p, "ruleDisabled", !enabled);
        edited = cJSON_PrintUnformatted(p);
        cJSON_Delete(p);
    }
    if (!edited) {
        eng_rule_release(cur);
        return eng_error_set(e, 500, "InternalException", "out of memory");
    }
    eng_rule *r = eng_rule_new(name, edited, strlen(edited), reg->env, e);
    free(edited);
    if (r) {
        r->created_at = cur->created_at;
        rc = eng_registry_replace(reg, r, e);
    }
    eng_rule_release(cur);
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

static int load_one(void *ud, const char *name, const char *json, int64_t created_at,
                    uint64_t revision, eng_error *e) {
    eng_registry *reg = ud;
    eng_rule *r = eng_rule_new(name, json, strlen(json), reg->env, e);
    if (!r)
        return -1;
    r->created_at = created_at;
    r->revision = revision;
    return put(reg, r, 0, 0, e);
}

int eng_registry_load(eng_registry *reg, eng_error *e) {
    return eng_store_load(reg->cfg->data_dir, load_one, reg, e);
}

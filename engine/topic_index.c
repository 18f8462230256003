/*
 * topic_index.c -- one trie over topic levels shared by all rules.
 *
 * Each node is a topic level. A node keeps its exact-name children in a small open-addressing
 * hash table, a separate '+' child, the rules whose filter ends at the node, and the rules whose
 * filter continues with '#' (kept on the node itself: "a/#" lives on the node for "a"). Matching
 * walks the topic's levels once, following at each node the exact child and the '+' child and
 * collecting the '#' rules on the way, so its cost is set by the topic's depth and the number of
 * matches, never by the number of rules. Rejected alternative: testing each rule's filter in turn
 * (linear in the rule count: 100 k rules would cost milliseconds per message).
 *
 *   valid filters:     "a/b", "a/+/c", "+", "#", "a/#", "$aws/things/+/shadow/update"
 *   invalid filters:   "a/#/b", "a/b#", "a+/b" (rejected by sql_topic_filter_check before)
 *   valid, no match:   "+/x" and "#" on "$SYS/x" (a first-level wildcard never matches a topic
 *                      starting with '$'), "a/+" on "a/b/c", "a/b" on "A/b"
 *   matches:           "a/#" on "a" (MQTT 3.1.1: '#' also matches the parent level)
 *
 * The index is built by the admin thread into a fresh object and is read-only afterwards, so
 * workers share it without locks (the rule registry swaps whole snapshots).
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct ids {
    uint32_t *v;
    uint32_t n, cap;
} ids;

typedef struct slot {
    uint32_t hash;
    int32_t node; /* -1: empty */
} slot;

typedef struct node {
    char *name; /* level text (NUL-terminated copy) */
    uint32_t len;
    int32_t plus;  /* '+' child, -1 none */
    slot *tab;     /* exact-name children */
    uint32_t nchild, tabcap;
    ids here;      /* filters that end at this node */
    ids hash;      /* filters "<this node>/#" */
} node;

struct eng_topic_index {
    node *nodes;
    uint32_t n, cap;
};

static uint32_t fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int ids_push(ids *a, uint32_t id) {
    if (a->n == a->cap) {
        uint32_t c = a->cap ? a->cap * 2 : 2;
        uint32_t *v = realloc(a->v, sizeof *v * c);
        if (!v)
            return -1;
        a->v = v;
        a->cap = c;
    }
    a->v[a->n++] = id;
    return 0;
}

static int32_t new_node(eng_topic_index *ix, const char *name, size_t len) {
    if (ix->n == ix->cap) {
        uint32_t c = ix->cap ? ix->cap * 2 : 64;
        node *v = realloc(ix->nodes, sizeof *v * c);
        if (!v)
            return -1;
        ix->nodes = v;
        ix->cap = c;
    }
    node *nd = &ix->nodes[ix->n];
    memset(nd, 0, sizeof *nd);
    nd->plus = -1;
    nd->name = malloc(len + 1);
    if (!nd->name)
        return -1;
    memcpy(nd->name, name, len);
    nd->name[len] = '\0';
    nd->len = (uint32_t)len;
    return (int32_t)ix->n++;
}

eng_topic_index *eng_topic_index_new(void) {
    eng_topic_index *ix = calloc(1, sizeof *ix);
    if (ix && new_node(ix, "", 0) < 0) {
        eng_topic_index_free(ix);
        return NULL;
    }
    return ix;
}

void eng_topic_index_free(eng_topic_index *ix) {
    if (!ix)
        return;
    for (uint32_t i = 0; i < ix->n; i++) {
        free(ix->nodes[i].name);
        free(ix->nodes[i].tab);
        free(ix->nodes[i].here.v);
        free(ix->nodes[i].hash.v);
    }
    free(ix->nodes);
    free(ix);
}

size_t eng_topic_index_nodes(const eng_topic_index *ix) { return ix->n; }

static int32_t find_child(const eng_topic_index *ix, const node *nd, const char *s, size_t n,
                          uint32_t h) {
    if (!nd->tabcap)
        return -1;
    uint32_t mask = nd->tabcap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        const slot *sl = &nd->tab[i];
        if (sl->node < 0)
            return -1;
        if (sl->hash == h) {
            const node *c = &ix->nodes[sl->node];
            if (c->len == n && memcmp(c->name, s, n) == 0)
                return sl->node;
        }
    }
}

static int tab_insert(slot *tab, uint32_t cap, uint32_t h, int32_t child) {
    uint32_t mask = cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        if (tab[i].node < 0) {
            tab[i].hash = h;
            tab[i].node = child;
            return 0;
        }
    }
}

/* Adds an exact child; keeps the table at most half full. */
static int32_t add_child(eng_topic_index *ix, int32_t parent, const char *s, size_t n,
                         uint32_t h) {
    int32_t c = new_node(ix, s, n);
    if (c < 0)
        return -1;
    node *nd = &ix->nodes[parent]; /* after new_node: the array may have moved */
    if ((nd->nchild + 1) * 2 > nd->tabcap) {
        uint32_t cap = nd->tabcap ? nd->tabcap * 2 : 4;
        slot *tab = malloc(sizeof *tab * cap);
        if (!tab)
            return -1;
        for (uint32_t i = 0; i < cap; i++)
            tab[i].node = -1;
        for (uint32_t i = 0; i < nd->tabcap; i++)
            if (nd->tab[i].node >= 0)
                tab_insert(tab, cap, nd->tab[i].hash, nd->tab[i].node);
        free(nd->tab);
        nd->tab = tab;
        nd->tabcap = cap;
    }
    tab_insert(nd->tab, nd->tabcap, h, c);
    nd->nchild++;
    return c;
}

int eng_topic_index_add(eng_topic_index *ix, const char *f, size_t n, uint32_t id) {
    int32_t cur = 0;
    size_t i = 0;
    for (;;) {
        size_t e = i;
        while (e < n && f[e] != '/')
            e++;
        size_t len = e - i;
        if (len == 1 && f[i] == '#')
            return ids_push(&ix->nodes[cur].hash, id);
        int32_t next;
        if (len == 1 && f[i] == '+') {
            next = ix->nodes[cur].plus;
            if (next < 0) {
                next = new_node(ix, "+", 1);
                if (next < 0)
                    return -1;
                ix->nodes[cur].plus = next;
            }
        } else {
            uint32_t h = fnv(f + i, len);
            next = find_child(ix, &ix->nodes[cur], f + i, len, h);
            if (next < 0 && (next = add_child(ix, cur, f + i, len, h)) < 0)
                return -1;
        }
        cur = next;
        if (e >= n)
            return ids_push(&ix->nodes[cur].here, id);
        i = e + 1;
    }
}

typedef struct matcher {
    const eng_topic_index *ix;
    const char *t;
    size_t n;
    uint32_t *out;
    size_t cap, count;
} matcher;

static void emit(matcher *m, const ids *a) {
    for (uint32_t k = 0; k < a->n; k++) {
        if (m->count < m->cap)
            m->out[m->count] = a->v[k];
        m->count++;
    }
}

/* Matches the topic from the level starting at i (i == n + 1: no level left) at node nd. */
static void walk(matcher *m, int32_t nd, size_t i, int first) {
    const node *x = &m->ix->nodes[nd];
    int dollar = first && m->n > 0 && m->t[0] == '$';
    if (!dollar)
        emit(m, &x->hash); /* "<x>/#" matches this level, everything below, and x itself */
    if (i > m->n) {
        emit(m, &x->here);
        return;
    }
    size_t e = i;
    while (e < m->n && m->t[e] != '/')
        e++;
    size_t next = e < m->n ? e + 1 : m->n + 1;
    int32_t c = find_child(m->ix, x, m->t + i, e - i, fnv(m->t + i, e - i));
    if (c >= 0)
        walk(m, c, next, 0);
    if (x->plus >= 0 && !dollar)
        walk(m, x->plus, next, 0);
}

size_t eng_topic_index_match(const eng_topic_index *ix, const char *t, size_t n, uint32_t *ids,
                             size_t cap) {
    matcher m = {ix, t, n, ids, cap, 0};
    walk(&m, 0, 0, 1);
    return m.count;
}

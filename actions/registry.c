/*
 * registry.c -- the table of compiled-in action types, expanded from actions.def (Fluent
 * Bit's REGISTER_OUT_PLUGIN, as an X-macro). v1 has no dlopen: actions are compiled in.
 */
#include "action.h"

#include <string.h>

#define ACTION(name) extern const act_vtable act_##name##_vtable;
#include "actions.def"
#undef ACTION

static const act_vtable *const table[] = {
#define ACTION(name) &act_##name##_vtable,
#include "actions.def"
#undef ACTION
};

const act_vtable *act_lookup(const char *name) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i]->name, name))
            return table[i];
    return NULL;
}

const act_vtable *act_nth(size_t i) {
    return i < sizeof table / sizeof table[0] ? table[i] : NULL;
}

const char *act_names(void) {
    static const char names[] =
#define ACTION(name) ", " #name
#include "actions.def"
#undef ACTION
        ;
    return names + 2;
}

/*
 * action.h -- the one interface every rule action plugs in through (STYLE.md 3.7).
 *
 * An action type is a vtable. The engine opens one instance per action of a rule (on the admin
 * thread, when the rule is created), asks it which substitution templates it needs (they are
 * compiled into the rule's program next to its SQL), and calls deliver() on a worker thread
 * for every message the rule fires on, with the rule's output and the substituted templates.
 * deliver() returns ACT_OK, ACT_RETRY (transient: try again later) or ACT_FAIL (permanent:
 * the failure path takes over); it never drops a message silently.
 *
 * Ownership: act_msg and act_config are borrowed for the call. An instance belongs to its rule
 * and is closed when the rule's last reference goes.
 * Thread: open/close on the admin thread; deliver/format on workers, concurrently for different
 * messages, so an instance must be internally synchronized.
 */
#ifndef SLUICE_ACTION_H
#define SLUICE_ACTION_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine_int.h"

#define ACT_VTABLE_VERSION 1

typedef enum act_result { ACT_OK = 0, ACT_RETRY = 1, ACT_FAIL = 2 } act_result;

typedef struct act_config {
    const cJSON *params;   /* the action's object, e.g. {"topic": "...", "qos": 1} */
    const char *rule_name;
    eng_env *env;
} act_config;

typedef struct act_msg {
    const char *rule_name;
    const char *payload;   /* the rule's output */
    size_t payload_len;
    const char *const *fields; /* the instance's templates, substituted, in templates() order */
    const size_t *field_lens;
    const eng_msg *in;     /* the incoming message */
} act_msg;

struct act_instance {
    const act_vtable *vt;
};

struct act_vtable {
    int version;             /* ACT_VTABLE_VERSION */
    const char *name;        /* the AWS JSON key: "republish", "kafka", ... */
    const char *aws_name;    /* failedAction in AWS's error document: "RepublishAction" */
    int (*open)(const act_config *cfg, act_instance **out, eng_error *e);
    /* The templates this instance needs per message (borrowed from the instance). */
    size_t (*templates)(act_instance *self, const char *const **tpl);
    act_result (*deliver)(act_instance *self, const act_msg *m, char *err, size_t cap);
    void (*close)(act_instance *self);
    /* version 1 ends here; append only and bump the version */
};

/* The compiled-in action types (actions/registry.c, from actions/actions.def). */
const act_vtable *act_lookup(const char *name);

#endif

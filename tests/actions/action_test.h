/*
 * action_test.h -- shared by the action unit tests: opening an action from a JSON text, the
 * way rule.c does, against a given service configuration.
 */
#ifndef SLUICE_ACTION_TEST_H
#define SLUICE_ACTION_TEST_H

#include <criterion/criterion.h>
#include <string.h>

#include "action.h"

/* Opens vt with the params in json under cfg (NULL: the defaults). Returns the instance, or
 * NULL with e set when open() refused (it must then have created nothing). */
static inline act_instance *act_test_open(const act_vtable *vt, const eng_config *cfg,
                                          const char *json, eng_error *e) {
    eng_config defaults;
    if (!cfg) {
        eng_config_defaults(&defaults);
        cfg = &defaults;
    }
    eng_env env = {.cfg = cfg};
    cJSON *params = cJSON_Parse(json);
    cr_assert_not_null(params, "bad test JSON: %s", json);
    act_config ac = {.params = params, .rule_name = "r", .env = &env};
    act_instance *inst = NULL;
    memset(e, 0, sizeof *e);
    int rc = vt->open(&ac, &inst, e);
    cJSON_Delete(params);
    if (rc != 0) {
        cr_assert_null(inst);
        return NULL;
    }
    inst->vt = vt;
    return inst;
}

#endif

/*
 * action_test.h -- shared by the action unit tests: opening an action from a JSON text, the
 * way rule.c does, against a given host (test_host.h).
 */
#ifndef SLUICE_ACTION_TEST_H
#define SLUICE_ACTION_TEST_H

#include <criterion/criterion.h>
#include <string.h>

#include "action.h"
#include "test_host.h"

/* Opens vt with the params in json under host h (NULL: the defaults; a host must outlive the
 * instance, so the defaults are a static). Returns the instance, or NULL with e set when
 * open() refused (it must then have created nothing). */
static inline act_instance *act_test_open(const act_vtable *vt, const eng_host *h,
                                          const char *json, eng_error *e) {
    static eng_host defaults;
    if (!h) {
        defaults = act_test_host();
        h = &defaults;
    }
    cJSON *params = cJSON_Parse(json);
    cr_assert_not_null(params, "bad test JSON: %s", json);
    act_config ac = {.params = params, .rule_name = "r", .host = h};
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

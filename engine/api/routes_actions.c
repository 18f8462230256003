/*
 * routes_actions.c -- the action types sluice knows and the options each takes:
 * GET /actions (every type's option table) and GET /actions/{type}/schema (one), as JSON from
 * the same tables that validate a rule's actions (actions/options.c), for users and consoles.
 */
#include "api_int.h"

#include <stdlib.h>

#include "../../actions/action.h"

void eng_api__actions(eng_api_call *c, eng_api_response *rs) {
    const char *type = c->nparam ? c->param[0] : NULL;
    char *js = act_schema_json(type);
    if (!js) {
        eng_api__fail(rs, 404, "ResourceNotFoundException", "no action type '%s'",
                      type ? type : "");
        return;
    }
    eng_api__json_take(rs, 200, js);
}

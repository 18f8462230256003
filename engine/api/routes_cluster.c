/*
 * routes_cluster.c -- the fleet (an extension):
 *
 *   GET /cluster/instances    the instances sharing this one's store, with their last
 *                             heartbeat, version and health (instance.c)
 *
 * Any instance answers the same: the list is read from the shared store. With the data dir
 * there is no fleet, and the list holds this instance alone. While the shared store cannot be
 * reached the answer is a 503: this instance cannot tell who else is alive.
 */
#include "api_int.h"

#include <string.h>

void eng_api__cluster_instances(eng_api_call *c, eng_api_response *rs) {
    eng_error e;
    memset(&e, 0, sizeof e);
    char *s = eng_instances_json(c->env, &e);
    if (!s) {
        eng_api__error(rs, &e);
        return;
    }
    eng_api__json_take(rs, 200, s);
}

/*
 * routes.c -- the REST API's route table (DESIGN.md): one entry per call. A new route is one
 * entry here and its handler in the routes_*.c file of its area.
 *
 * need is what the caller's role must allow (api_int.h): OPEN for the health checks, READ for
 * the GET routes, PUBLISH for the data plane's writes, ADMIN for the rest. max_body bounds the
 * body before it is buffered (0: a small default for calls without one); a Content-Length
 * above it is refused with 413 before any of the body is read.
 */
#include "api_int.h"

#include "../shadow/shadow.h"

#define RULE_BODY (256u * 1024u) /* AWS's limit on a topicRulePayload */
#define REDRIVE_BODY (64u * 1024u)

const eng_route eng_api_routes[] = {
    {.method = "GET", .pattern = "/healthz", .need = ENG_NEED_OPEN,
     .handler = eng_api__health},
    {.method = "GET", .pattern = "/readyz", .need = ENG_NEED_OPEN, .handler = eng_api__ready},
    {.method = "GET", .pattern = "/metrics", .need = ENG_NEED_METRICS,
     .handler = eng_api__metrics},
    /* iot-data Publish; the topic arrives percent-encoded (a%2Fb) from SDKs, raw from curl */
    {.method = "POST", .pattern = "/topics/{topic+}", .need = ENG_NEED_PUBLISH,
     .max_body = SQL_MAX_PAYLOAD, .handler = eng_api__publish},
    {.method = "GET", .pattern = "/rules", .need = ENG_NEED_READ,
     .handler = eng_api__rule_list},
    {.method = "GET", .pattern = "/rules/{ruleName}", .need = ENG_NEED_READ,
     .handler = eng_api__rule_get},
    {.method = "POST", .pattern = "/rules/{ruleName}", .need = ENG_NEED_ADMIN,
     .max_body = RULE_BODY, .handler = eng_api__rule_create},
    {.method = "PATCH", .pattern = "/rules/{ruleName}", .need = ENG_NEED_ADMIN,
     .max_body = RULE_BODY, .handler = eng_api__rule_replace},
    {.method = "PUT", .pattern = "/rules/{ruleName}", .need = ENG_NEED_ADMIN,
     .max_body = RULE_BODY, .handler = eng_api__rule_replace},
    {.method = "DELETE", .pattern = "/rules/{ruleName}", .need = ENG_NEED_ADMIN,
     .handler = eng_api__rule_delete},
    {.method = "POST", .pattern = "/rules/{ruleName}/enable", .need = ENG_NEED_ADMIN,
     .handler = eng_api__rule_enable},
    {.method = "POST", .pattern = "/rules/{ruleName}/disable", .need = ENG_NEED_ADMIN,
     .handler = eng_api__rule_disable},
    {.method = "GET", .pattern = "/deadletter", .need = ENG_NEED_READ,
     .handler = eng_api__dlq_list},
    {.method = "POST", .pattern = "/deadletter/redrive", .need = ENG_NEED_ADMIN,
     .max_body = REDRIVE_BODY, .handler = eng_api__dlq_redrive},
    {.method = "DELETE", .pattern = "/deadletter", .need = ENG_NEED_ADMIN,
     .handler = eng_api__dlq_purge},
    {.method = "GET", .pattern = "/cluster/instances", .need = ENG_NEED_READ,
     .handler = eng_api__cluster_instances},
    {.method = "GET", .pattern = "/actions", .need = ENG_NEED_READ,
     .handler = eng_api__actions},
    {.method = "GET", .pattern = "/actions/{type}/schema", .need = ENG_NEED_READ,
     .handler = eng_api__actions},
    /* iot-data's device shadows (routes_shadow.c): GET reads, POST and DELETE change */
    {.method = "GET", .pattern = "/things/{thingName}/shadow", .need = ENG_NEED_READ,
     .handler = eng_api__shadow_get},
    {.method = "POST", .pattern = "/things/{thingName}/shadow", .need = ENG_NEED_PUBLISH,
     .max_body = ENG_SHADOW_PAYLOAD_MAX, .handler = eng_api__shadow_update},
    {.method = "DELETE", .pattern = "/things/{thingName}/shadow", .need = ENG_NEED_PUBLISH,
     .handler = eng_api__shadow_delete},
    {.method = "GET", .pattern = "/api/things/shadow/ListNamedShadowsForThing/{thingName}",
     .need = ENG_NEED_READ, .handler = eng_api__shadow_list},
    {.method = NULL},
};

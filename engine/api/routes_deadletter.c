/*
 * routes_deadletter.c -- the dead-letter store over REST (an extension; actions/dlq holds the
 * store, redrive.c the re-sending):
 *
 *   GET    /deadletter?rule=&since=&limit=&nextToken=   list, oldest first, paged by id
 *   POST   /deadletter/redrive     body {"rule"} or {"ids"}: re-send through the failed action
 *   DELETE /deadletter?rule=       purge (all, or one rule's)
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actions/action.h"

static int have_store(eng_api_call *c, eng_api_response *rs) {
    if (c->env->dlq)
        return 1;
    eng_api__fail(rs, 503, "ServiceUnavailableException", "no dead-letter store");
    return 0;
}

/* ?rule=: one rule's records; absent or empty: all */
static const char *rule_arg(eng_api_call *c) {
    const char *rule = eng_api__arg(c, "rule");
    return rule && *rule ? rule : NULL;
}

void eng_api__dlq_list(eng_api_call *c, eng_api_response *rs) {
    if (!have_store(c, rs))
        return;
    const char *since = eng_api__arg(c, "since");
    const char *lim = eng_api__arg(c, "limit");
    const char *next = eng_api__arg(c, "nextToken");
    char *end;
    long long sms = since ? strtoll(since, &end, 10) : 0;
    if (since && (*end || sms < 0)) {
        eng_api__fail(rs, 400, "InvalidRequestException",
                      "since must be a time in milliseconds since the epoch");
        return;
    }
    long limit = lim ? strtol(lim, &end, 10) : 100;
    if (lim && (*end || limit < 1 || limit > 1000)) {
        eng_api__fail(rs, 400, "InvalidRequestException", "limit must be from 1 to 1000");
        return;
    }
    unsigned long long after = next ? strtoull(next, NULL, 10) : 0;
    eng_error e;
    memset(&e, 0, sizeof e);
    char *s = act_dlq_list_json(c->env->dlq, rule_arg(c), sms, (size_t)limit, after, &e);
    if (!s) {
        eng_api__error(rs, &e);
        return;
    }
    eng_api__json_take(rs, 200, s);
}

void eng_api__dlq_redrive(eng_api_call *c, eng_api_response *rs) {
    if (!have_store(c, rs))
        return;
    eng_error e;
    memset(&e, 0, sizeof e);
    char *s = eng_redrive(c->env, c->rq->body, c->rq->body_len, &e);
    if (!s) {
        eng_api__error(rs, &e);
        return;
    }
    eng_api__json_take(rs, 200, s);
}

void eng_api__dlq_purge(eng_api_call *c, eng_api_response *rs) {
    if (!have_store(c, rs))
        return;
    const char *rule = rule_arg(c);
    eng_error e;
    memset(&e, 0, sizeof e);
    long n = act_dlq_purge(c->env->dlq, rule, &e);
    if (n < 0) {
        eng_api__error(rs, &e);
        return;
    }
    char s[64];
    snprintf(s, sizeof s, "{\"purged\":%ld}", n);
    eng_log(ENG_LOG_INFO, "deadletter.purged", "%ld dead letters purged%s%s (%s)", n,
            rule ? " of rule " : "", rule ? rule : "", c->rq->who.who);
    eng_api__json(rs, 200, s);
}

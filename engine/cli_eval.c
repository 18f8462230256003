/*
 * cli_eval.c -- `sluice eval` and `sluice explain`: one rule, one message, from the shell.
 *
 * The contract (DESIGN.md, "Command line") is what tests, the conformance checker and users
 * script against: fired -> exit 0 with the output (compact JSON or the raw bytes) and one line
 * per --template; not fired -> exit 1 and no output; compile error -> the caret diagnostic on
 * stderr and exit 2; an evaluation error (a resource limit) -> exit 3; bad usage -> exit 64.
 *
 * `sluice eval` has no shadow store; `--context` may bring the shadows a rule reads with
 * get_thing_shadow(): "shadows": [{"thingName": T, "shadowName": S (absent: classic),
 * "document": {...}}], served to the library through its sql_host callback.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEMPLATES 64

static int usage_eval(const char *why) {
    if (why)
        fprintf(stderr, "sluice eval: %s\n", why);
    fputs("usage: sluice eval --sql SQL --topic TOPIC (--payload JSON | --payload-file FILE "
          "[--binary])\n"
          "                   [--sql-version 2016-03-23|2015-10-08] [--context JSON] "
          "[--template TEXT]...\n"
          "exit status: 0 fired (output on stdout), 1 not fired, 2 compile error, "
          "3 evaluation error, 64 usage\n",
          stderr);
    return CLI_USAGE;
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0)
            break;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

/* The shadows of --context, and the sql_host that serves them to get_thing_shadow(). */
typedef struct eval_shadows {
    cJSON *list; /* borrowed from the --context document */
    sql_host host;
} eval_shadows;

static long get_shadow(void *ud, const char *thing, const char *shadow, char *buf, size_t cap) {
    const eval_shadows *es = ud;
    const cJSON *e;
    cJSON_ArrayForEach(e, es->list) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "thingName");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "shadowName");
        if (strcmp(t->valuestring, thing) != 0 || !n != !shadow ||
            (n && strcmp(n->valuestring, shadow) != 0))
            continue;
        char *doc = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "document"));
        if (!doc)
            return SQL_HOST_ERROR;
        size_t len = strlen(doc);
        if (len <= cap)
            memcpy(buf, doc, len);
        free(doc);
        return (long)len;
    }
    return SQL_HOST_NOT_FOUND;
}

/* Checks --context's "shadows" and points the message's host at them. 0, or -1. */
static int parse_shadows(cJSON *list, sql_message *m, eval_shadows *es, char *err, size_t cap) {
    const cJSON *e;
    if (!cJSON_IsArray(list)) {
        snprintf(err, cap, "--context: \"shadows\" must be an array");
        return -1;
    }
    cJSON_ArrayForEach(e, list) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "thingName");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "shadowName");
        if (!cJSON_IsString(t) || (n && !cJSON_IsString(n)) ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, "document"))) {
            snprintf(err, cap, "--context: each shadow needs \"thingName\", \"document\" (an "
                               "object) and an optional \"shadowName\"");
            return -1;
        }
    }
    es->list = list;
    es->host = (sql_host){.ud = es, .get_shadow = get_shadow};
    m->host = &es->host;
    return 0;
}

/* Fills the message's context from --context JSON. Returns 0, or -1 with a message. */
static int parse_context(const char *json, sql_message *m, eval_shadows *es, cJSON **keep,
                         char *err, size_t cap) {
    cJSON *c = cJSON_Parse(json);
    if (!c || !cJSON_IsObject(c)) {
        snprintf(err, cap, "--context is not a JSON object");
        cJSON_Delete(c);
        return -1;
    }
    *keep = c;
    static const char *const strs[] = {"clientid", "principal", "accountid", "traceid",
                                       "rule_name", "protocol"};
    const char **dst[] = {&m->clientid, &m->principal, &m->accountid, &m->traceid, &m->rule_name,
                          NULL};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(c, strs[i]);
        if (!v)
            continue;
        if (!cJSON_IsString(v)) {
            snprintf(err, cap, "--context: \"%s\" must be a string", strs[i]);
            return -1;
        }
        if (dst[i]) {
            *dst[i] = v->valuestring;
        } else if (!strcmp(v->valuestring, "mqtt")) {
            m->protocol = SQL_PROTO_MQTT;
        } else if (!strcmp(v->valuestring, "http")) {
            m->protocol = SQL_PROTO_HTTP;
        } else {
            snprintf(err, cap, "--context: protocol must be \"mqtt\" or \"http\"");
            return -1;
        }
    }
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(c, "timestamp");
    if (ts) {
        if (!cJSON_IsNumber(ts) || !(ts->valuedouble >= 1 && ts->valuedouble <= 9.0e15)) {
            snprintf(err, cap, "--context: \"timestamp\" must be a number of ms from 1 to 9e15");
            return -1;
        }
        m->timestamp_ms = (int64_t)ts->valuedouble;
    }
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(c, "shadows");
    if (sh && parse_shadows(sh, m, es, err, cap))
        return -1;
    return 0;
}

int cli_eval(int argc, char **argv) {
    const char *sql = NULL, *topic = NULL, *payload = NULL, *pfile = NULL, *context = NULL;
    const char *version = "2016-03-23";
    const char *templates[MAX_TEMPLATES];
    size_t ntpl = 0;
    int binary = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--binary")) {
            binary = 1;
        } else if (!has) {
            return usage_eval("missing value after an option");
        } else if (!strcmp(a, "--sql")) {
            sql = argv[++i];
        } else if (!strcmp(a, "--topic")) {
            topic = argv[++i];
        } else if (!strcmp(a, "--payload")) {
            payload = argv[++i];
        } else if (!strcmp(a, "--payload-file")) {
            pfile = argv[++i];
        } else if (!strcmp(a, "--sql-version")) {
            version = argv[++i];
        } else if (!strcmp(a, "--context")) {
            context = argv[++i];
        } else if (!strcmp(a, "--template")) {
            if (ntpl == MAX_TEMPLATES)
                return usage_eval("too many --template options");
            templates[ntpl++] = argv[++i];
        } else {
            fprintf(stderr, "sluice eval: unknown option %s\n", a);
            return usage_eval(NULL);
        }
    }
    if (!sql || !topic)
        return usage_eval("--sql and --topic are required");
    if (!!payload == !!pfile)
        return usage_eval("give exactly one of --payload and --payload-file");
    if (binary && !pfile)
        return usage_eval("--binary goes with --payload-file");
    sql_version v;
    if (sql_version_parse(version, &v) != SQL_OK)
        return usage_eval("--sql-version must be 2016-03-23 or 2015-10-08");

    int rc = CLI_USAGE;
    char *filebuf = NULL;
    cJSON *ctxjson = NULL;
    eval_shadows shadows = {0};
    sql_program *prog = NULL;
    sql_exec *x = NULL;
    sql_message m = {.topic = topic, .topic_len = strlen(topic), .protocol = SQL_PROTO_MQTT};
    if (pfile) {
        size_t n = 0;
        filebuf = read_file(pfile, &n);
        if (!filebuf) {
            fprintf(stderr, "sluice eval: cannot read %s: %s\n", pfile, strerror(errno));
            goto out;
        }
        m.payload = filebuf;
        m.payload_len = n;
    } else {
        m.payload = payload;
        m.payload_len = strlen(payload);
    }
    char err[256];
    if (context && parse_context(context, &m, &shadows, &ctxjson, err, sizeof err)) {
        usage_eval(err);
        goto out;
    }
    sql_compile_opts opts = {.version = v, .templates = templates, .ntemplates = ntpl};
    sql_diag d;
    if (sql_compile(sql, strlen(sql), &opts, &prog, &d) != SQL_OK) {
        const char *text = d.where >= 0 ? templates[d.where] : sql;
        char msg[4096];
        sql_diag_format(&d, text, strlen(text), msg, sizeof msg);
        if (d.where >= 0)
            fprintf(stderr, "in template %d: ", d.where + 1);
        fputs(msg, stderr);
        rc = CLI_COMPILE_ERROR;
        goto out;
    }
    x = sql_exec_new();
    if (!x) {
        fputs("sluice eval: out of memory\n", stderr);
        rc = CLI_RUNTIME_ERROR;
        goto out;
    }
    sql_output o;
    int r = sql_exec_run(x, prog, &m, &o);
    if (r == SQL_NOT_FIRED) {
        rc = CLI_NOT_FIRED;
        goto out;
    }
    if (r != SQL_FIRED) {
        fprintf(stderr, "error: %s\n", sql_exec_errmsg(x));
        rc = CLI_RUNTIME_ERROR;
        goto out;
    }
    fwrite(o.data, 1, o.len, stdout);
    fputc('\n', stdout);
    for (size_t t = 0; t < ntpl; t++) {
        if (sql_exec_template(x, t, &o) != SQL_OK) {
            fprintf(stderr, "error: template %zu: %s\n", t + 1, sql_exec_errmsg(x));
            rc = CLI_RUNTIME_ERROR;
            goto out;
        }
        fwrite(o.data, 1, o.len, stdout);
        fputc('\n', stdout);
    }
    rc = CLI_FIRED;
out:
    fflush(stdout);
    sql_exec_free(x);
    sql_program_free(prog);
    cJSON_Delete(ctxjson);
    free(filebuf);
    return rc;
}

int cli_explain(int argc, char **argv) {
    const char *sql = NULL, *version = "2016-03-23";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--sql") && i + 1 < argc)
            sql = argv[++i];
        else if (!strcmp(argv[i], "--sql-version") && i + 1 < argc)
            version = argv[++i];
        else
            sql = NULL, i = argc;
    }
    sql_version v;
    if (!sql || sql_version_parse(version, &v) != SQL_OK) {
        fputs("usage: sluice explain --sql SQL [--sql-version 2016-03-23|2015-10-08]\n", stderr);
        return CLI_USAGE;
    }
    sql_compile_opts opts = {.version = v};
    sql_program *p;
    sql_diag d;
    if (sql_compile(sql, strlen(sql), &opts, &p, &d) != SQL_OK) {
        char msg[4096];
        sql_diag_format(&d, sql, strlen(sql), msg, sizeof msg);
        fputs(msg, stderr);
        return CLI_COMPILE_ERROR;
    }
    char *s = sql_program_explain(p);
    sql_program_free(p);
    if (!s) {
        fputs("sluice explain: out of memory\n", stderr);
        return CLI_RUNTIME_ERROR;
    }
    fputs(s, stdout);
    free(s);
    return 0;
}

/*
 * test_options.c -- the option-table parser (actions/options.c): types, required keys,
 * defaults, limits, unknown and duplicate keys, messages that name the field by its path; and
 * the JSON schemas GET /actions serves from the same tables.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "action_test.h"

/* {====== a table with every type */

typedef struct item {
    const char *name;
    int n;
} item;

typedef struct inner {
    int x;
    const char *y;
} inner;

typedef struct opts {
    const char *s, *t;
    int i, b, b3, en, en3;
    inner obj;
    item list[3];
    size_t nlist;
    const cJSON *map;
} opts;

static const act_option item_options[] = {
    {.key = "name", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(item, name),
     .min = 1, .max = 8, .help = "h"},
    {.key = "n", .type = ACT_OPT_INT, .offset = offsetof(item, n), .min = 0, .max = 9, .def = 7,
     .help = "h"},
    {0},
};

static const act_option inner_options[] = {
    {.key = "x", .type = ACT_OPT_INT, .offset = offsetof(inner, x), .min = -5, .max = 5,
     .def = -2, .help = "h"},
    {.key = "y", .type = ACT_OPT_STRING, .offset = offsetof(inner, y), .def_str = "why",
     .help = "h"},
    {0},
};

static const char *const colours[] = {"red", "green", "blue", NULL};

static const act_option table[] = {
    {.key = "s", .type = ACT_OPT_STRING, .required = 1, .offset = offsetof(opts, s), .min = 2,
     .max = 5, .help = "a string"},
    {.key = "t", .type = ACT_OPT_TEMPLATE, .offset = offsetof(opts, t), .def_str = "${x}",
     .help = "a template"},
    {.key = "i", .type = ACT_OPT_INT, .offset = offsetof(opts, i), .min = 1, .max = 100,
     .def = 42, .help = "an int"},
    {.key = "b", .type = ACT_OPT_BOOL, .offset = offsetof(opts, b), .def = 1, .help = "a bool"},
    {.key = "b3", .type = ACT_OPT_BOOL, .offset = offsetof(opts, b3), .def = -1, .help = "h"},
    {.key = "en", .type = ACT_OPT_ENUM, .offset = offsetof(opts, en), .def = 2,
     .choices = colours, .help = "an enum"},
    {.key = "en3", .type = ACT_OPT_ENUM, .offset = offsetof(opts, en3), .def = -1,
     .choices = colours, .help = "h"},
    {.key = "obj", .type = ACT_OPT_OBJECT, .offset = offsetof(opts, obj), .sub = inner_options,
     .help = "an object"},
    {.key = "list", .type = ACT_OPT_LIST, .offset = offsetof(opts, list), .max = 3,
     .sub = item_options, .elem_size = sizeof(item), .count_offset = offsetof(opts, nlist),
     .help = "a list"},
    {.key = "map", .type = ACT_OPT_MAP, .offset = offsetof(opts, map), .max = 2, .help = "h"},
    {.key = "arn", .type = ACT_OPT_IGNORED, .max = 10, .help = "ignored"},
    {.key = "auth", .type = ACT_OPT_REFUSED, .help = "nobody signs here"},
    {0},
};

static cJSON *doc;

static int parse(const char *json, opts *o, eng_error *e) {
    cJSON_Delete(doc);
    doc = cJSON_Parse(json);
    cr_assert_not_null(doc, "bad test JSON: %s", json);
    memset(o, 0, sizeof *o);
    memset(e, 0, sizeof *e);
    return act_options_parse("probe", table, doc, o, e);
}

static void fini(void) {
    cJSON_Delete(doc);
    doc = NULL;
}

TestSuite(options, .fini = fini);

/* The message is exactly `probe action: <want>`, with AWS's error shape. */
static void refused(const char *json, const char *want) {
    opts o;
    eng_error e;
    cr_assert_eq(parse(json, &o, &e), -1, "accepted: %s", json);
    cr_assert_eq(e.status, 400);
    cr_assert_str_eq(e.type, "InvalidRequestException");
    char full[600];
    snprintf(full, sizeof full, "probe action: %s", want);
    cr_assert_str_eq(e.message, full, "for %s", json);
}

/* }====== */

Test(options, absent_keys_take_their_defaults) {
    opts o;
    eng_error e;
    cr_assert_eq(parse("{\"s\": \"abc\"}", &o, &e), 0, "%s", e.message);
    cr_expect_str_eq(o.s, "abc");
    cr_expect_str_eq(o.t, "${x}");
    cr_expect_eq(o.i, 42);
    cr_expect_eq(o.b, 1);
    cr_expect_eq(o.b3, -1, "def -1: absent stays -1");
    cr_expect_eq(o.en, 2);
    cr_expect_eq(o.en3, -1);
    cr_expect_eq(o.obj.x, -2, "an absent object's members get their defaults");
    cr_expect_str_eq(o.obj.y, "why");
    cr_expect_eq(o.nlist, 0);
    cr_expect_null(o.map);
}

Test(options, present_keys_are_stored_with_their_types) {
    opts o;
    eng_error e;
    const char *j = "{\"s\": \"hello\", \"t\": \"a${b}\", \"i\": 1, \"b\": false, \"b3\": true, "
                    "\"en\": \"red\", \"en3\": \"blue\", \"obj\": {\"x\": 5}, "
                    "\"list\": [{\"name\": \"a\"}, {\"name\": \"b\", \"n\": 0}], "
                    "\"map\": {\"k\": 1, \"l\": \"v\"}, \"arn\": \"arn:x\"}";
    cr_assert_eq(parse(j, &o, &e), 0, "%s", e.message);
    cr_expect_str_eq(o.s, "hello");
    cr_expect_str_eq(o.t, "a${b}");
    cr_expect_eq(o.i, 1);
    cr_expect_eq(o.b, 0);
    cr_expect_eq(o.b3, 1);
    cr_expect_eq(o.en, 0);
    cr_expect_eq(o.en3, 2);
    cr_expect_eq(o.obj.x, 5);
    cr_expect_str_eq(o.obj.y, "why");
    cr_assert_eq(o.nlist, 2);
    cr_expect_str_eq(o.list[0].name, "a");
    cr_expect_eq(o.list[0].n, 7);
    cr_expect_str_eq(o.list[1].name, "b");
    cr_expect_eq(o.list[1].n, 0);
    cr_expect_eq(cJSON_GetArraySize(o.map), 2);
}

Test(options, required_keys_and_wrong_types_name_the_field) {
    refused("{}", "\"s\" is required");
    refused("[]", "parameters must be an object");
    refused("{\"s\": 5}", "\"s\" must be a string");
    refused("{\"s\": \"ab\", \"t\": null}", "\"t\" must be a string");
    refused("{\"s\": \"ab\", \"i\": \"3\"}", "\"i\" must be an integer from 1 to 100");
    refused("{\"s\": \"ab\", \"i\": 1.5}", "\"i\" must be an integer from 1 to 100");
    refused("{\"s\": \"ab\", \"b\": 1}", "\"b\" must be true or false");
    refused("{\"s\": \"ab\", \"en\": \"pink\"}", "\"en\" must be one of red, green, blue");
    refused("{\"s\": \"ab\", \"en\": 0}", "\"en\" must be one of red, green, blue");
    refused("{\"s\": \"ab\", \"obj\": []}", "\"obj\" must be an object");
    refused("{\"s\": \"ab\", \"obj\": {\"x\": \"1\"}}", "\"obj.x\" must be an integer from -5 to 5");
    refused("{\"s\": \"ab\", \"list\": {}}", "\"list\" must be an array of objects");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"a\"}, 3]}", "\"list[1]\" must be an object");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"a\"}, {\"n\": 1}]}",
            "\"list[1].name\" is required");
    refused("{\"s\": \"ab\", \"map\": [1]}", "\"map\" must be an object");
    refused("{\"s\": \"ab\", \"map\": {\"k\": [1]}}",
            "\"map.k\" must be a string, a number or a boolean");
    refused("{\"s\": \"ab\", \"map\": {\"k\": null}}",
            "\"map.k\" must be a string, a number or a boolean");
    refused("{\"s\": \"ab\", \"arn\": 5}", "\"arn\" must be a string");
}

Test(options, limits_are_enforced) {
    refused("{\"s\": \"a\"}", "\"s\" must be at least 2 bytes long");
    refused("{\"s\": \"abcdef\"}", "\"s\" is longer than 5 bytes (6)");
    refused("{\"s\": \"ab\", \"i\": 0}", "\"i\" must be an integer from 1 to 100");
    refused("{\"s\": \"ab\", \"i\": 101}", "\"i\" must be an integer from 1 to 100");
    refused("{\"s\": \"ab\", \"i\": 1e300}", "\"i\" must be an integer from 1 to 100");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"\"}]}", "\"list[0].name\" must not be empty");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"123456789\"}]}",
            "\"list[0].name\" is longer than 8 bytes (9)");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"a\"}, {\"name\": \"a\"}, {\"name\": \"a\"}, "
            "{\"name\": \"a\"}]}",
            "\"list\" has at most 3 items (4 given)");
    refused("{\"s\": \"ab\", \"map\": {\"a\": 1, \"b\": 2, \"c\": 3}}",
            "\"map\" has at most 2 entries (3 given)");
    refused("{\"s\": \"ab\", \"arn\": \"12345678901\"}", "\"arn\" is longer than 10 bytes (11)");
    char big[ACT_MAP_MAX_VALUE + 64];
    snprintf(big, sizeof big, "{\"s\": \"ab\", \"map\": {\"k\": \"%0*d\"}}", ACT_MAP_MAX_VALUE + 1,
             0);
    char want[64];
    snprintf(want, sizeof want, "\"map.k\" is longer than %d bytes", ACT_MAP_MAX_VALUE);
    refused(big, want);
}

Test(options, unknown_refused_and_duplicate_keys_are_errors) {
    refused("{\"s\": \"ab\", \"colour\": 1}",
            "unknown parameter \"colour\" (known: s, t, i, b, b3, en, en3, obj, list, map, arn)");
    refused("{\"s\": \"ab\", \"obj\": {\"z\": 1}}", "unknown parameter \"obj.z\" (known: x, y)");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"a\", \"nm\": 1}]}",
            "unknown parameter \"list[0].nm\" (known: name, n)");
    refused("{\"s\": \"ab\", \"auth\": {}}", "\"auth\" is not supported: nobody signs here");
    refused("{\"s\": \"ab\", \"s\": \"cd\"}", "\"s\" is given twice");
    refused("{\"s\": \"ab\", \"obj\": {\"x\": 1, \"x\": 2}}", "\"obj.x\" is given twice");
    refused("{\"s\": \"ab\", \"list\": [{\"name\": \"a\", \"name\": \"b\"}]}",
            "\"list[0].name\" is given twice");
    refused("{\"s\": \"ab\", \"map\": {\"k\": 1, \"k\": 2}}", "\"map.k\" is given twice");
}

/* The hole of issue 8: 38 duplicate "contentType" headers overflowed republish's fixed
 * template array. Every action refuses a duplicate key, whatever the count. */
Test(options, every_action_refuses_many_duplicate_keys_without_crashing) {
    static const struct {
        const char *type, *head, *dup, *tail, *want;
    } t[] = {
        {"republish", "{\"topic\": \"t\", \"headers\": {", "\"contentType\": \"a\"", "}}",
         "\"headers.contentType\" is given twice"},
        {"republish", "{\"topic\": \"t\", \"headers\": {\"userProperties\": [{\"key\": \"k\", ",
         "\"value\": \"v\"", "}]}}", "\"headers.userProperties[0].value\" is given twice"},
        {"file", "{", "\"path\": \"out.jsonl\"", "}", "\"path\" is given twice"},
#ifdef SLUICE_WITH_ACTION_HTTP
        {"http", "{\"url\": \"http://h/\", \"headers\": [{\"key\": \"k\", ", "\"value\": \"v\"",
         "}]}", "\"headers[0].value\" is given twice"},
#endif
#ifdef SLUICE_WITH_ACTION_KAFKA
        {"kafka", "{\"topic\": \"t\", \"clientProperties\": {",
         "\"bootstrap.servers\": \"127.0.0.1:1\"", "}}",
         "\"clientProperties.bootstrap.servers\" is given twice"},
#endif
#ifdef SLUICE_WITH_ACTION_POSTGRES
        {"postgres", "{\"conninfo\": \"host=127.0.0.1\", ", "\"statement\": \"SELECT 1\"", "}",
         "\"statement\" is given twice"},
#endif
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char json[8192];
        size_t k = (size_t)snprintf(json, sizeof json, "%s", t[i].head);
        for (int d = 0; d < 40; d++)
            k += (size_t)snprintf(json + k, sizeof json - k, "%s%s", d ? ", " : "", t[i].dup);
        snprintf(json + k, sizeof json - k, "%s", t[i].tail);
        eng_error e;
        act_instance *inst = act_test_open(act_lookup(t[i].type), NULL, json, &e);
        cr_expect_null(inst, "%s accepted 40 duplicates", t[i].type);
        char want[256];
        snprintf(want, sizeof want, "%s action: %s", t[i].type, t[i].want);
        cr_expect_str_eq(e.message, want);
    }
}

/* {====== schema */

static cJSON *schema(const char *type) {
    char *s = act_schema_json(type);
    cr_assert_not_null(s, "no schema for %s", type ? type : "(all)");
    cJSON *j = cJSON_Parse(s);
    free(s);
    cr_assert_not_null(j);
    return j;
}

static const cJSON *option(const cJSON *opts, const char *key) {
    const cJSON *o;
    cJSON_ArrayForEach(o, opts) {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "key")), key))
            return o;
    }
    cr_assert_fail("no option %s", key);
    return NULL;
}

Test(options, schema_of_one_type_is_its_table) {
    cJSON *j = schema("republish");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type")), "republish");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "awsName")), "RepublishAction");
    cr_expect(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(j, "description"))) > 10);
    const cJSON *opts = cJSON_GetObjectItem(j, "options");
    const cJSON *topic = option(opts, "topic");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(topic, "type")), "template");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(topic, "required")));
    cr_expect_eq(cJSON_GetObjectItem(topic, "minLength")->valueint, 1);
    const cJSON *qos = option(opts, "qos");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(qos, "type")), "integer");
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(qos, "required")));
    cr_expect_eq(cJSON_GetObjectItem(qos, "default")->valueint, 0);
    cr_expect_eq(cJSON_GetObjectItem(qos, "minimum")->valueint, 0);
    cr_expect_eq(cJSON_GetObjectItem(qos, "maximum")->valueint, 1);
    const cJSON *h = option(opts, "headers");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(h, "type")), "object");
    const cJSON *hopts = cJSON_GetObjectItem(h, "options");
    const cJSON *pfi = option(hopts, "payloadFormatIndicator");
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(pfi, "choices")), 2);
    cr_expect_null(cJSON_GetObjectItem(pfi, "default"), "no default: not sent");
    const cJSON *up = option(hopts, "userProperties");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(up, "type")), "array");
    cr_expect_eq(cJSON_GetObjectItem(up, "maxItems")->valueint, 16);
    option(cJSON_GetObjectItem(up, "options"), "value");
    cJSON_Delete(j);
    cr_expect_null(act_schema_json("lambda"));
}

/* Every compiled-in type is listed, and each of its options is well formed: a known type,
 * help text, a default inside its limits, and ranges that make sense. */
static void check_table(const char *type, const act_option *t) {
    for (; t->key; t++) {
        cr_expect(t->help && *t->help, "%s.%s has no help", type, t->key);
        cr_expect(t->type >= ACT_OPT_STRING && t->type <= ACT_OPT_REFUSED, "%s.%s type", type,
                  t->key);
        if (t->type == ACT_OPT_INT) {
            cr_expect(t->min <= t->max, "%s.%s range", type, t->key);
            cr_expect(t->required || (t->def >= t->min && t->def <= t->max),
                      "%s.%s default %lld outside %lld..%lld", type, t->key, t->def, t->min,
                      t->max);
        }
        if (t->type == ACT_OPT_ENUM) {
            int n = 0;
            while (t->choices[n])
                n++;
            cr_expect(t->def >= -1 && t->def < n, "%s.%s default", type, t->key);
        }
        if (t->type == ACT_OPT_LIST || t->type == ACT_OPT_MAP)
            cr_expect(t->max > 0, "%s.%s has no item limit", type, t->key);
        if (t->type == ACT_OPT_STRING || t->type == ACT_OPT_TEMPLATE ||
            t->type == ACT_OPT_IGNORED)
            cr_expect(t->max > 0, "%s.%s has no length limit", type, t->key);
        if (t->type == ACT_OPT_OBJECT || t->type == ACT_OPT_LIST)
            check_table(type, t->sub);
    }
}

Test(options, every_type_is_listed_with_a_well_formed_table) {
    cJSON *j = schema(NULL);
    const cJSON *arr = cJSON_GetObjectItem(j, "actions"), *a;
    size_t n = 0;
    cJSON_ArrayForEach(a, arr) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(a, "type"));
        const act_vtable *vt = act_lookup(type);
        cr_assert_not_null(vt, "listed %s is not a type", type);
        cr_expect_eq(vt, act_nth(n), "listed in registry order");
        cr_expect_eq(vt->version, ACT_VTABLE_VERSION);
        cr_expect_not_null(vt->options, "%s has no option table", type);
        check_table(type, vt->options);
        size_t nopt = 0;
        while (vt->options[nopt].key)
            nopt++;
        cr_expect_eq((size_t)cJSON_GetArraySize(cJSON_GetObjectItem(a, "options")), nopt);
        n++;
    }
    cr_expect_null(act_nth(n), "every type is listed");
    cr_expect_geq(n, 2, "republish and file are always built");
    cJSON_Delete(j);
}

/* }====== */

/*
 * options.c -- one parser for every action's parameters, driven by the action's option table
 * (action.h, act_option), and the same tables rendered as JSON schemas for GET /actions.
 *
 * A parameters object is checked member by member: each key must be in the table (else
 * "unknown parameter", listing the known ones), may appear once (cJSON keeps duplicate keys and
 * its lookups see only the first: a check or a copy made on the first while code reads the
 * last, or a fixed array sized for the table and filled per member, is how duplicates bite),
 * and must have the declared type and limits. Then every absent key gets its default or, when
 * required, an error. Nested objects and lists of objects recurse with the path grown
 * ("headers.userProperties[3].key") so the message names the exact field.
 *
 * Rejected: a parser per action (what each open() did before): five slightly different sets of
 * messages, unknown keys checked in one and not in another, and no schema to show users.
 */
#include "action.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATH 256
#define MAX_TABLE 64 /* members per table: seen[] below */

static int fail(eng_error *e, const char *action, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(eng_error *e, const char *action, const char *path, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (path && *path)
        return eng_error_set(e, 400, "InvalidRequestException", "%s action: \"%s\" %s", action,
                             path, what);
    return eng_error_set(e, 400, "InvalidRequestException", "%s action: %s", action, what);
}

static void *at(void *base, size_t off) { return (char *)base + off; }

/* The path of a member ("headers.contentType") or of a list item ("headers[3]") for messages,
 * into out[0..MAX_PATH): prefix, sep, then tail, cut at the end (the message still names where
 * the path starts). out must not overlap prefix. */
static void join_path(char *out, const char *prefix, const char *sep, const char *tail) {
    size_t n = 0;
    const char *parts[3] = {prefix, *prefix ? sep : "", tail};
    for (int p = 0; p < 3; p++) {
        size_t l = strlen(parts[p]);
        if (l > MAX_PATH - 1 - n)
            l = MAX_PATH - 1 - n;
        memcpy(out + n, parts[p], l);
        n += l;
    }
    out[n] = '\0';
}

static void member_path(char *out, const char *prefix, const char *key) {
    join_path(out, prefix, ".", key);
}

static void item_path(char *out, const char *prefix, size_t i) {
    char idx[32];
    sprintf(idx, "[%zu]", i);
    join_path(out, prefix, "", idx);
}

static int is_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
           v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9.0e15;
}

/* "a, b, c" of the table's keys into out. */
static void key_list(const act_option *t, char *out, size_t cap) {
    size_t k = 0;
    out[0] = '\0';
    for (; t->key && k < cap; t++)
        if (t->type != ACT_OPT_REFUSED)
            k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? ", " : "", t->key);
}

static int parse_table(const char *action, const act_option *t, const cJSON *obj, void *out,
                       const char *prefix, eng_error *e);

static int parse_string(const char *action, const act_option *o, const cJSON *v,
                        const char *path, void *out, eng_error *e) {
    if (!cJSON_IsString(v))
        return fail(e, action, path, "must be a string");
    size_t n = strlen(v->valuestring);
    if ((long long)n < o->min)
        return o->min == 1 ? fail(e, action, path, "must not be empty")
                           : fail(e, action, path, "must be at least %lld bytes long", o->min);
    if (o->max && (long long)n > o->max)
        return fail(e, action, path, "is longer than %lld bytes (%zu)", o->max, n);
    if (o->type != ACT_OPT_IGNORED)
        *(const char **)at(out, o->offset) = v->valuestring;
    return 0;
}

static int parse_list(const char *action, const act_option *o, const cJSON *v,
                      const char *path, void *out, eng_error *e) {
    if (!cJSON_IsArray(v))
        return fail(e, action, path, "must be an array of objects");
    int n = cJSON_GetArraySize(v);
    if (n > o->max)
        return fail(e, action, path, "has at most %lld items (%d given)", o->max, n);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        char sub[MAX_PATH];
        item_path(sub, path, i);
        if (!cJSON_IsObject(it))
            return fail(e, action, sub, "must be an object");
        if (parse_table(action, o->sub, it, at(out, o->offset + i * o->elem_size), sub, e))
            return -1;
        i++;
    }
    *(size_t *)at(out, o->count_offset) = i;
    return 0;
}

static int parse_map(const char *action, const act_option *o, const cJSON *v, const char *path,
                     void *out, eng_error *e) {
    if (!cJSON_IsObject(v))
        return fail(e, action, path, "must be an object");
    int n = cJSON_GetArraySize(v);
    if (n > o->max)
        return fail(e, action, path, "has at most %lld entries (%d given)", o->max, n);
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        char sub[MAX_PATH];
        member_path(sub, path, it->string);
        for (const cJSON *p = v->child; p != it; p = p->next)
            if (!strcmp(p->string, it->string))
                return fail(e, action, sub, "is given twice");
        if (!cJSON_IsString(it) && !cJSON_IsNumber(it) && !cJSON_IsBool(it))
            return fail(e, action, sub, "must be a string, a number or a boolean");
        if (cJSON_IsString(it) && strlen(it->valuestring) > ACT_MAP_MAX_VALUE)
            return fail(e, action, sub, "is longer than %d bytes", ACT_MAP_MAX_VALUE);
    }
    *(const cJSON **)at(out, o->offset) = v;
    return 0;
}

/* One present member v of option o. */
static int parse_one(const char *action, const act_option *o, const cJSON *v, const char *path,
                     void *out, eng_error *e) {
    switch (o->type) {
    case ACT_OPT_STRING:
    case ACT_OPT_TEMPLATE:
    case ACT_OPT_IGNORED:
        return parse_string(action, o, v, path, out, e);
    case ACT_OPT_INT:
        if (!is_integer(v) || v->valuedouble < (double)o->min || v->valuedouble > (double)o->max)
            return fail(e, action, path, "must be an integer from %lld to %lld", o->min, o->max);
        *(int *)at(out, o->offset) = (int)v->valuedouble;
        return 0;
    case ACT_OPT_BOOL:
        if (!cJSON_IsBool(v))
            return fail(e, action, path, "must be true or false");
        *(int *)at(out, o->offset) = cJSON_IsTrue(v);
        return 0;
    case ACT_OPT_ENUM:
        for (int i = 0; cJSON_IsString(v) && o->choices[i]; i++)
            if (!strcmp(v->valuestring, o->choices[i])) {
                *(int *)at(out, o->offset) = i;
                return 0;
            }
        char list[256];
        size_t k = 0;
        for (int i = 0; o->choices[i] && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "",
                                  o->choices[i]);
        return fail(e, action, path, "must be one of %s", list);
    case ACT_OPT_OBJECT:
        if (!cJSON_IsObject(v))
            return fail(e, action, path, "must be an object");
        return parse_table(action, o->sub, v, at(out, o->offset), path, e);
    case ACT_OPT_LIST:
        return parse_list(action, o, v, path, out, e);
    case ACT_OPT_MAP:
        return parse_map(action, o, v, path, out, e);
    case ACT_OPT_REFUSED:
        return fail(e, action, path, "is not supported: %s", o->help);
    }
    return fail(e, action, path, "has an unknown type");
}

/* The value of an absent option. */
static int absent(const char *action, const act_option *o, const char *path, void *out,
                  eng_error *e) {
    if (o->required)
        return fail(e, action, path, "is required");
    switch (o->type) {
    case ACT_OPT_STRING:
    case ACT_OPT_TEMPLATE:
        *(const char **)at(out, o->offset) = o->def_str;
        break;
    case ACT_OPT_INT:
    case ACT_OPT_BOOL:
    case ACT_OPT_ENUM:
        *(int *)at(out, o->offset) = (int)o->def;
        break;
    case ACT_OPT_OBJECT: /* its members' defaults, as if it were {} */
        return parse_table(action, o->sub, NULL, at(out, o->offset), path, e);
    default:
        break;
    }
    return 0;
}

static int parse_table(const char *action, const act_option *t, const cJSON *obj, void *out,
                       const char *prefix, eng_error *e) {
    unsigned char seen[MAX_TABLE] = {0};
    const cJSON *v;
    char path[MAX_PATH];
    cJSON_ArrayForEach(v, obj) {
        size_t i = 0;
        while (t[i].key && strcmp(t[i].key, v->string))
            i++;
        if (i >= MAX_TABLE)
            return fail(e, action, NULL, "option table too long (internal error)");
        member_path(path, prefix, v->string);
        if (!t[i].key) {
            char keys[512];
            key_list(t, keys, sizeof keys);
            return fail(e, action, NULL, "unknown parameter \"%s\" (known: %s)", path, keys);
        }
        if (seen[i])
            return fail(e, action, path, "is given twice");
        seen[i] = 1;
        if (parse_one(action, &t[i], v, path, out, e))
            return -1;
    }
    for (size_t i = 0; t[i].key; i++) {
        if (seen[i])
            continue;
        member_path(path, prefix, t[i].key);
        if (absent(action, &t[i], path, out, e))
            return -1;
    }
    return 0;
}

int act_options_parse(const char *action, const act_option *t, const cJSON *params, void *out,
                      eng_error *e) {
    if (!cJSON_IsObject(params))
        return fail(e, action, NULL, "parameters must be an object");
    return parse_table(action, t, params, out, "", e);
}

const act_option act_kv_options[] = {
    {.key = "key", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(act_kv, key),
     .min = 1, .max = 1024, .help = "the name"},
    {.key = "value", .type = ACT_OPT_TEMPLATE, .required = 1, .offset = offsetof(act_kv, value),
     .max = 8192, .help = "its value"},
    {0},
};

/* {====== schema */

static const char *const type_names[] = {
    [ACT_OPT_STRING] = "string",   [ACT_OPT_TEMPLATE] = "template", [ACT_OPT_INT] = "integer",
    [ACT_OPT_BOOL] = "boolean",    [ACT_OPT_ENUM] = "enum",         [ACT_OPT_OBJECT] = "object",
    [ACT_OPT_LIST] = "array",      [ACT_OPT_MAP] = "map",           [ACT_OPT_IGNORED] = "string",
    [ACT_OPT_REFUSED] = "refused",
};

static cJSON *table_json(const act_option *t) {
    cJSON *arr = cJSON_CreateArray();
    for (; arr && t->key; t++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "key", t->key);
        cJSON_AddStringToObject(o, "type", type_names[t->type]);
        cJSON_AddBoolToObject(o, "required", t->required);
        switch (t->type) {
        case ACT_OPT_STRING:
        case ACT_OPT_TEMPLATE:
            if (t->def_str)
                cJSON_AddStringToObject(o, "default", t->def_str);
            if (t->min)
                cJSON_AddNumberToObject(o, "minLength", (double)t->min);
            if (t->max)
                cJSON_AddNumberToObject(o, "maxLength", (double)t->max);
            break;
        case ACT_OPT_INT:
            if (!t->required)
                cJSON_AddNumberToObject(o, "default", (double)t->def);
            cJSON_AddNumberToObject(o, "minimum", (double)t->min);
            cJSON_AddNumberToObject(o, "maximum", (double)t->max);
            break;
        case ACT_OPT_BOOL:
            if (t->def >= 0)
                cJSON_AddBoolToObject(o, "default", t->def);
            break;
        case ACT_OPT_ENUM: {
            cJSON *c = cJSON_AddArrayToObject(o, "choices");
            for (int i = 0; c && t->choices[i]; i++)
                cJSON_AddItemToArray(c, cJSON_CreateString(t->choices[i]));
            if (t->def >= 0)
                cJSON_AddStringToObject(o, "default", t->choices[t->def]);
            break;
        }
        case ACT_OPT_LIST:
        case ACT_OPT_MAP:
            cJSON_AddNumberToObject(o, "maxItems", (double)t->max);
            break;
        default:
            break;
        }
        if (t->type == ACT_OPT_OBJECT || t->type == ACT_OPT_LIST)
            cJSON_AddItemToObject(o, "options", table_json(t->sub));
        cJSON_AddStringToObject(o, "help", t->help ? t->help : "");
    }
    return arr;
}

static cJSON *type_json(const act_vtable *vt) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", vt->name);
    cJSON_AddStringToObject(o, "awsName", vt->aws_name);
    cJSON_AddStringToObject(o, "description", vt->description ? vt->description : "");
    cJSON_AddItemToObject(o, "options", table_json(vt->options));
    return o;
}

char *act_schema_json(const char *type) {
    cJSON *root;
    if (type) {
        const act_vtable *vt = act_lookup(type);
        if (!vt)
            return NULL;
        root = type_json(vt);
    } else {
        root = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(root, "actions");
        for (size_t i = 0; arr; i++) {
            const act_vtable *vt = act_nth(i);
            if (!vt)
                break;
            cJSON_AddItemToArray(arr, type_json(vt));
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* }====== */

/* test_json.c -- the JSON reader (full and lazy) and writer (json_read.c, json_write.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sql_int.h"

static sql_ctx c;

static void setup(void) {
    memset(&c, 0, sizeof c);
    sql__arena_init(&c.arena, 1 << 24);
    c.version = SQL_V2016_03_23;
}
static void teardown(void) {
    sql__arena_deinit(&c.arena);
    sql__buf_free(&c.jstack);
}
TestSuite(json, .init = setup, .fini = teardown);

static const char *write(const sql_value *v) {
    static sql_buf b;
    sql__buf_reset(&b);
    sql__json_write(&b, v);
    sql__buf_putc(&b, '\0');
    return b.p;
}

static const char *roundtrip(const char *in) {
    sql_value v;
    if (sql__json_parse(&c, in, strlen(in), &v) != 0)
        return "<not json>";
    return write(&v);
}

Test(json, round_trips_compactly_in_key_order) {
    static const char *const t[][2] = {
        {"{ \"b\" : 1 , \"a\" : [ true , false , null ] }", "{\"b\":1,\"a\":[true,false,null]}"},
        {"\"caf\\u00e9 \\ud83d\\ude00\"", "\"café 😀\""},
        {"\"a\\\"b\\\\c\\/d\\n\\u0001\"", "\"a\\\"b\\\\c/d\\n\\u0001\""},
        {"\"\\udc00x\"", "\"\xef\xbf\xbdx\""},
        {"[1.50, -0, 1e2, 10.0]", "[1.50,0,100,10]"},
        {"{\"a\":1,\"a\":2,\"b\":3}", "{\"a\":1,\"b\":3}"},
        {"  {}  ", "{}"},
        {"[]", "[]"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_expect_str_eq(roundtrip(t[i][0]), t[i][1], "%s", t[i][0]);
}

Test(json, rejects_what_rfc8259_rejects) {
    const char *bad[] = {"",       "{",          "[1,]",      "{\"a\":1,}", "// x\n1",
                         "01",     "-",          "1.",        "tru",        "\"a\nb\"",
                         "\"abc",  "{\"a\" 1}",  "[1] [2]",   "{a:1}",      "'x'",
                         "NaN",    "\"\\x\"",    "[1 2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_str_eq(roundtrip(bad[i]), "<not json>", "'%s'", bad[i]);
}

Test(json, depth_is_limited) {
    char deep[1200];
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    sql_value v;
    cr_expect_neq(sql__json_parse(&c, deep, 1200, &v), 0);
    cr_expect_eq(sql__json_parse(&c, deep + 400, 400, &v), 0); /* 200 deep is fine */
}

Test(json, large_objects_drop_later_duplicates) {
    char buf[8192];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\"k%d\":%d,", i % 50, i);
    buf[n - 1] = '}';
    sql_value v;
    cr_assert_eq(sql__json_parse(&c, buf, n, &v), 0);
    cr_expect_eq(v.n, 50);
    cr_expect_eq(sql__obj_get(&v, "k7", 2)->u.i, 7);
}

/* A trie: root -> a (interior) -> b (slot 0); root -> c (slot 1); root -> "q\"k" (slot 2). */
static const sql_path_node trie[] = {
    {NULL, 0, -1, 1, -1, 3, -1},
    {"a", 1, -1, 2, 3, 1, 0},
    {"b", 1, 0, -1, -1, 1, 1},
    {"c", 1, 1, -1, 4, 1, 0},
    {"q\"k", 3, 2, -1, -1, 1, 0},
};
static const sql_pathset ps = {trie, 5, 3, NULL};

static int scan(const char *p, sql_value *slots) {
    for (int i = 0; i < 3; i++)
        slots[i] = SQL_UNDEF;
    return sql__json_scan(&c, p, strlen(p), &ps, slots);
}

Test(json, scan_materializes_only_the_needed_paths) {
    sql_value s[3];
    cr_assert_eq(scan("{\"x\":[1,{\"y\":\"}\"}],\"a\":{\"z\":1,\"b\":{\"d\":[2]}},\"c\":\"v\","
                      "\"q\\\"k\":3}",
                      s),
                 0);
    cr_expect_str_eq(write(&s[0]), "{\"d\":[2]}");
    cr_expect_str_eq(write(&s[1]), "\"v\"");
    cr_expect_str_eq(write(&s[2]), "3");
}

Test(json, scan_leaves_missing_paths_undefined) {
    sql_value s[3];
    cr_assert_eq(scan("{\"a\":5,\"c\":null}", s), 0);
    cr_expect_eq(s[0].t, SQL_T_UNDEF); /* a is not an object */
    cr_expect_eq(s[1].t, SQL_T_NULL);
    cr_expect_eq(s[2].t, SQL_T_UNDEF);
}

Test(json, scan_stops_after_the_last_needed_key) {
    sql_value s[3];
    cr_expect_eq(scan("{\"c\":1,\"a\":{\"b\":2},\"q\\\"k\":3, garbage", s), 0);
    cr_expect_eq(s[0].u.i, 2);
    cr_expect_neq(scan("{\"c\":1, garbage", s), 0, "damage before a needed key is seen");
}

Test(json, scan_keeps_the_first_duplicate) {
    sql_value s[3];
    cr_assert_eq(scan("{\"c\":1,\"c\":2}", s), 0);
    cr_expect_eq(s[1].u.i, 1);
}

Test(json, scan_of_non_objects_tells_json_from_not) {
    sql_value s[3];
    cr_expect_eq(scan("[1,2,3]", s), 0);
    cr_expect_eq(scan("80", s), 0);
    cr_expect_eq(s[1].t, SQL_T_UNDEF);
    cr_expect_neq(scan("\x01\x02", s), 0);
}

Test(json, scan_root_slot_parses_everything) {
    static const sql_path_node root[] = {{NULL, 0, 0, -1, -1, 1, -1}};
    static const sql_pathset rps = {root, 1, 1, NULL};
    sql_value s = SQL_UNDEF;
    cr_assert_eq(sql__json_scan(&c, "{\"a\":[1]}", 9, &rps, &s), 0);
    cr_expect_str_eq(write(&s), "{\"a\":[1]}");
    cr_expect_neq(sql__json_scan(&c, "{\"a\":[1]} x", 11, &rps, &s), 0);
}

Test(json, undefined_members_are_omitted_and_strings_escaped) {
    sql_member m[3] = {{"a", 1, SQL_F_JSAFE, SQL_UNDEF},
                       {"b\n", 2, 0, {.t = SQL_T_STR, .n = 3, .u.s = "x\"\t"}},
                       {"c", 1, SQL_F_JSAFE, SQL_NULLV}};
    sql_value o = {.t = SQL_T_OBJ, .n = 3, .u.o = m};
    cr_expect_str_eq(write(&o), "{\"b\\n\":\"x\\\"\\t\",\"c\":null}");
    sql_value u = SQL_UNDEF;
    cr_expect_str_eq(write(&u), "");
}

Test(json, lazy_scan_cost_does_not_grow_with_payload_size) {
    static char big[12000];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"c\":1,\"pad\":[");
    while (n < 10000)
        n += (size_t)snprintf(big + n, sizeof big - n, "123.45,");
    big[n - 1] = ']';
    big[n++] = '}';
    const char *small = "{\"c\":1,\"pad\":[1,2,3]}";
    static const sql_path_node one[] = {{NULL, 0, -1, 1, -1, 1, -1}, {"c", 1, 0, -1, -1, 1, 0}};
    static const sql_pathset ops = {one, 2, 1, NULL};
    for (int pass = 0; pass < 2; pass++) {
        const char *p = pass ? big : small;
        size_t len = pass ? n : strlen(small);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 10000; i++) {
            sql_value s = SQL_UNDEF;
            sql__arena_reset(&c.arena);
            cr_assert_eq(sql__json_scan(&c, p, len, &ops, &s), 0);
            cr_assert_eq(s.u.i, 1);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                    10000;
        cr_log_info("scan of a %zu-byte payload for one early key: %.0f ns", len, ns);
    }
}

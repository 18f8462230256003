/* test_json.c -- the shadow's JSON tree (engine/shadow/json.c): strict parsing, number and
 * string fidelity, exact numeric equality, UTF-8, duplicate keys, nesting bounds. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadow_int.h"

/* Parses text and writes it back compactly; returns the parse code. */
static int roundtrip(const char *text, char *out, size_t cap) {
    eng_sarena a = {0};
    eng_sjson *v;
    int rc = eng__sjson_parse(&a, text, strlen(text), 64, &v, NULL, 0);
    out[0] = '\0';
    if (rc == ENG_SJ_OK) {
        eng_sbuf b = {0};
        eng__sjson_write(&b, v);
        size_t n;
        char *s = eng__sbuf_take(&b, &n);
        cr_assert_not_null(s);
        snprintf(out, cap, "%s", s);
        free(s);
    }
    eng__sarena_deinit(&a);
    return rc;
}

Test(shadow_json, numbers_and_strings_come_back_as_sent) {
    static const struct {
        const char *in, *out;
    } t[] = {
        {"12345678901234567890", "12345678901234567890"},
        {"1.10", "1.10"},
        {"-0", "-0"},
        {"1E+400", "1E+400"},
        {"[0.1e-7, 100, -12.500]", "[0.1e-7,100,-12.500]"},
        {" { \"a\" : [ true , false , null ] } ", "{\"a\":[true,false,null]}"},
        /* escapes are decoded and re-escaped minimally: \/ and \u00e9 become raw */
        {"\"a\\/b\\u00e9\\n\\t\\\"\\\\\\u0001\"", "\"a/b\xc3\xa9\\n\\t\\\"\\\\\\u0001\""},
        {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
        {"\"\xe2\x82\xac\"", "\"\xe2\x82\xac\""},
        {"{\"k\\u0000\":1}", "{\"k\\u0000\":1}"},
        {"{}", "{}"},
        {"[]", "[]"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[256];
        cr_expect_eq(roundtrip(t[i].in, out, sizeof out), ENG_SJ_OK, "%s", t[i].in);
        cr_expect_str_eq(out, t[i].out, "%s", t[i].in);
    }
}

Test(shadow_json, invalid_json_is_refused) {
    static const char *const bad[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\"}", "{a:1}", "'a'", "01", "1.", ".5",
        "1e", "+1", "-", "--1", "0x10", "NaN", "Infinity", "tru", "nul", "True", "[1 2]",
        "{\"a\":1 \"b\":2}", "\"abc", "\"a\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"",
        "\"\\ud800\\u0041\"", "\"tab\there\"", "1 2", "{} x", "[", "\"\x01\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[64];
        cr_expect_eq(roundtrip(bad[i], out, sizeof out), ENG_SJ_ESYNTAX, "accepted: %s", bad[i]);
    }
}

Test(shadow_json, duplicate_keys_are_refused_and_named) {
    static const struct {
        const char *in, *key;
    } t[] = {
        {"{\"a\":1,\"a\":2}", "a"},
        {"{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", "b"},
        /* two spellings of one key */
        {"{\"\\u0061\":1,\"a\":2}", "a"},
        /* a large object: the sorted index finds it */
        {"{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
         "\"k9\":9,\"k3\":10}",
         "k3"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        eng_sarena a = {0};
        eng_sjson *v;
        char dup[16];
        cr_expect_eq(eng__sjson_parse(&a, t[i].in, strlen(t[i].in), 64, &v, dup, sizeof dup),
                     ENG_SJ_EDUP, "%s", t[i].in);
        cr_expect_str_eq(dup, t[i].key);
        eng__sarena_deinit(&a);
    }
}

Test(shadow_json, nesting_is_bounded_without_recursing_past_the_bound) {
    /* 100 000 levels: a parser that recursed per level without a bound would overflow */
    size_t n = 100000;
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    eng_sarena a = {0};
    eng_sjson *v;
    cr_expect_eq(eng__sjson_parse(&a, s, 2 * n, 64, &v, NULL, 0), ENG_SJ_EDEPTH);
    cr_expect_eq(eng__sjson_parse(&a, s + n - 64, 128, 64, &v, NULL, 0), ENG_SJ_OK);
    cr_expect_eq(eng__sjson_parse(&a, s + n - 65, 130, 64, &v, NULL, 0), ENG_SJ_EDEPTH);
    eng__sarena_deinit(&a);
    free(s);
}

Test(shadow_json, numbers_compare_exactly_by_value) {
    static const struct {
        const char *x, *y;
        int eq;
    } t[] = {
        {"1", "1", 1},
        {"1", "1.0", 1},
        {"1", "10e-1", 1},
        {"100", "1e2", 1},
        {"100", "1E+2", 1},
        {"0", "-0", 1},
        {"0.0", "0e10", 1},
        {"-1.50", "-15e-1", 1},
        {"0.001", "1e-3", 1},
        {"12345678901234567890", "12345678901234567890.0", 1},
        /* doubles would call these equal */
        {"12345678901234567890", "12345678901234567891", 0},
        {"0.1", "0.10000000000000000001", 0},
        {"9007199254740993", "9007199254740992", 0},
        {"1", "-1", 0},
        {"1", "2", 0},
        {"10", "1", 0},
        {"1e2", "1e3", 0},
        {"0.5", "5", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cr_expect_eq(eng__sjson_num_equal(t[i].x, strlen(t[i].x), t[i].y, strlen(t[i].y)),
                     t[i].eq, "%s vs %s", t[i].x, t[i].y);
        cr_expect_eq(eng__sjson_num_equal(t[i].y, strlen(t[i].y), t[i].x, strlen(t[i].x)),
                     t[i].eq, "%s vs %s", t[i].y, t[i].x);
    }
}

Test(shadow_json, equality_ignores_member_order_but_not_array_order) {
    static const struct {
        const char *x, *y;
        int eq;
    } t[] = {
        {"{\"a\":1,\"b\":[1,{\"c\":2,\"d\":3}]}", "{\"b\":[1.0,{\"d\":3,\"c\":2}],\"a\":1}", 1},
        {"[1,2]", "[2,1]", 0},
        {"{\"a\":1}", "{\"a\":1,\"b\":2}", 0},
        {"{\"a\":null}", "{\"a\":false}", 0},
        {"\"1\"", "1", 0},
        {"\"a\\u0000b\"", "\"a\\u0000c\"", 0},
        {"{}", "[]", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        eng_sarena a = {0};
        eng_sjson *x, *y;
        cr_assert_eq(eng__sjson_parse(&a, t[i].x, strlen(t[i].x), 64, &x, NULL, 0), 0);
        cr_assert_eq(eng__sjson_parse(&a, t[i].y, strlen(t[i].y), 64, &y, NULL, 0), 0);
        cr_expect_eq(eng__sjson_equal(&a, x, y), t[i].eq, "%s vs %s", t[i].x, t[i].y);
        eng__sarena_deinit(&a);
    }
}

Test(shadow_json, utf8_validation) {
    static const struct {
        const char *s;
        int ok;
    } t[] = {
        {"plain", 1},
        {"\xc3\xa9", 1},
        {"\xe2\x82\xac", 1},
        {"\xf0\x9f\x98\x80", 1},
        {"\xf4\x8f\xbf\xbf", 1},  /* U+10FFFF */
        {"\xc3", 0},              /* truncated */
        {"\xc0\xaf", 0},          /* overlong '/' */
        {"\xe0\x80\xaf", 0},      /* overlong */
        {"\xed\xa0\x80", 0},      /* surrogate */
        {"\xf4\x90\x80\x80", 0},  /* above U+10FFFF */
        {"\xff", 0},
        {"\x80", 0},
        {"a\xe2\x82", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_expect_eq(eng__utf8_valid(t[i].s, strlen(t[i].s)), t[i].ok, "case %zu", i);
}

Test(shadow_json, lookup_in_large_objects) {
    eng_sbuf b = {0};
    eng__sbuf_lit(&b, "{");
    for (int i = 0; i < 1000; i++) {
        char m[32];
        snprintf(m, sizeof m, "%s\"k%d\":%d", i ? "," : "", i, i);
        eng__sbuf_lit(&b, m);
    }
    eng__sbuf_lit(&b, "}");
    eng_sarena a = {0};
    eng_sjson *v;
    cr_assert_eq(eng__sjson_parse(&a, b.p, b.len, 64, &v, NULL, 0), ENG_SJ_OK);
    for (int i = 0; i < 1000; i += 37) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        eng_sjson *m = eng__sjson_get(&a, v, k);
        cr_assert_not_null(m, "%s", k);
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        cr_expect_eq(m->n, strlen(num));
        cr_expect(!memcmp(m->s, num, m->n));
    }
    cr_expect_null(eng__sjson_get(&a, v, "k1000"));
    cr_expect_null(eng__sjson_get(&a, v, "k"));
    eng__sarena_deinit(&a);
    eng__sbuf_deinit(&b);
}

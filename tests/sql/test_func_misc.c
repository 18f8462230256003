/*
 * test_func_misc.c -- isNull/isUndefined, get, concat, transform, encode/decode and the hash
 * functions: the doc examples of checklist §15, the fn-* conformance cases, and the edge cases
 * (Null/Undefined arguments, bad base64, non-object array elements, the 128 KiB limit).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sql_int.h"

#include "func_harness.h"

TestSuite(func_misc, .init = setup, .fini = teardown);

Test(func_misc, type_tests) {
    static const fcase t[] = {
        {"isnull", {"5"}, "false"},
        {"isnull", {"null"}, "true"},
        {"isnull", {UNDEF_ARG}, "false"},
        {"isundefined", {"5"}, "false"},
        {"isundefined", {"null"}, "false"},
        {"isundefined", {UNDEF_ARG}, "true"},
        {"isUndefined", {"[]"}, "false"},
    };
    RUN(t);
}

Test(func_misc, get_indexes_from_zero) {
    static const fcase t[] = {
        {"get", {"[\"a\",\"b\",\"c\"]", "1"}, "\"b\""},
        {"get", {"{\"a\":\"b\"}", "\"a\""}, "\"b\""},
        /* 0-based, as the table says (the 2022 doc's "a" is an erratum). */
        {"get", {"\"abc\"", "1"}, "\"b\""},
        {"get", {"\"héllo\"", "1"}, "\"é\""},
        {"get", {"[1,2]", "5"}, UNDEF_OUT},
        {"get", {"[1,2]", "-1"}, UNDEF_OUT},
        {"get", {"\"abc\"", "3"}, UNDEF_OUT},
        {"get", {"[1,2,3]", "\"1\""}, "2"},
        {"get", {"[1,2,3]", "\"1.9\""}, "2"},
        {"get", {"[1,2,3]", "1.6"}, "3"},
        {"get", {"[1,2,3]", "null"}, UNDEF_OUT},
        {"get", {"[1,2,3]", "true"}, UNDEF_OUT},
        {"get", {"{\"1\":\"x\"}", "1"}, UNDEF_OUT},
        {"get", {"{\"a\":1}", "\"b\""}, UNDEF_OUT},
        {"get", {"{\"a\":null}", "\"a\""}, "null"},
        {"get", {"5", "0"}, UNDEF_OUT},
        {"get", {"null", "0"}, UNDEF_OUT},
        {"get", {"[[1,2]]", "0"}, "[1,2]"},
    };
    RUN(t);
}

Test(func_misc, concat_doc_examples) {
    static const fcase t[] = {
        {"concat", {"1"}, "\"1\""},
        {"concat", {"[1,2,3]", "4"}, "[1,2,3,4]"},
        {"concat", {"[1,2,3]", "\"hello\""}, "[1,2,3,\"hello\"]"},
        {"concat", {"[1,2,3]", "\"hello\"", "[4,5,6]"}, "[1,2,3,\"hello\",4,5,6]"},
        {"concat", {"\"con\"", "\"cat\""}, "\"concat\""},
        {"concat", {"1", "\"hello\""}, "\"1hello\""},
        {"concat", {"\"he\"", "\"is\"", "\"man\""}, "\"heisman\""},
    };
    RUN(t);
    cr_expect_eq(call("concat", 0, NULL).t, SQL_T_UNDEF, "concat() is Undefined");
}

Test(func_misc, concat_edges) {
    static const fcase t[] = {
        {"concat", {"[1]"}, "[1]"},
        {"concat", {"[[1]]", "[2]"}, "[[1],2]"},
        {"concat", {"[]", "[]"}, "[]"},
        {"concat", {"{\"a\":1}", "\"x\""}, "\"{\\\"a\\\":1}x\""},
        {"concat", {"true", "1.5"}, "\"true1.5\""},
        {"concat", {"{\"a\":1}", "[2]"}, "[{\"a\":1},2]"},
        {"concat", {"\"a\"", "null"}, UNDEF_OUT},
        {"concat", {"[1]", UNDEF_ARG}, UNDEF_OUT},
        {"concat", {"null"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_misc, transform_enriches_array_objects) {
    static const fcase t[] = {
        {"transform",
         {"\"enrichArray\"", "{\"data1\":1,\"data2\":2}", "[{\"a\":3},{\"b\":4},{\"c\":5}]"},
         "[{\"a\":3,\"data1\":1,\"data2\":2},{\"b\":4,\"data1\":1,\"data2\":2},"
         "{\"c\":5,\"data1\":1,\"data2\":2}]"},
        {"transform",
         {"\"enrichArray\"", "{\"a\":\"first attribute\",\"b\":\"second attribute\"}",
          "[{\"x\":{\"someInt\":5},\"y\":true},{\"x\":{\"someInt\":10},\"y\":false}]"},
         "[{\"x\":{\"someInt\":5},\"y\":true,\"a\":\"first attribute\",\"b\":\"second attribute\"},"
         "{\"x\":{\"someInt\":10},\"y\":false,\"a\":\"first attribute\","
         "\"b\":\"second attribute\"}]"},
        /* Element keys win over the object's. */
        {"transform", {"\"enrichArray\"", "{\"k\":1,\"z\":2}", "[{\"k\":9}]"},
         "[{\"k\":9,\"z\":2}]"},
        /* Non-object elements pass through unchanged. */
        {"transform", {"\"enrichArray\"", "{\"k\":1}", "[1,{\"a\":1},\"s\"]"},
         "[1,{\"a\":1,\"k\":1},\"s\"]"},
        {"transform", {"\"enrichArray\"", "{}", "[]"}, "[]"},
        {"transform", {"\"other\"", "{\"k\":1}", "[{\"a\":1}]"}, UNDEF_OUT},
        {"transform", {"\"enricharray\"", "{\"k\":1}", "[{\"a\":1}]"}, UNDEF_OUT},
        {"transform", {"\"enrichArray\"", "[1]", "[{\"a\":1}]"}, UNDEF_OUT},
        {"transform", {"\"enrichArray\"", "{\"k\":1}", "{\"a\":1}"}, UNDEF_OUT},
        {"transform", {"\"enrichArray\"", "null", "[{\"a\":1}]"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_misc, transform_over_128k_is_undefined) {
    static char big[1001];
    memset(big, 'x', 1000);
    sql_member m = {.k = "pad", .klen = 3, .v = sql__str(big, 1000)};
    sql_value obj = {.t = SQL_T_OBJ, .n = 1, .u.o = &m};
    static sql_value els[200];
    static sql_member em[200];
    for (int i = 0; i < 200; i++) {
        em[i] = (sql_member){.k = "i", .klen = 1, .v = sql__int(i)};
        els[i] = (sql_value){.t = SQL_T_OBJ, .n = 1, .u.o = &em[i]};
    }
    sql_value a[3] = {sql__str("enrichArray", 11), obj, {.t = SQL_T_ARR, .n = 200, .u.a = els}};
    cr_expect_eq(call("transform", 3, a).t, SQL_T_UNDEF, "~200 KB result must be Undefined");
    a[2].n = 100; /* ~100 KB fits */
    cr_expect_eq(call("transform", 3, a).t, SQL_T_ARR);
}

Test(func_misc, encode_base64) {
    static const fcase t[] = {
        {"encode", {"\"hello\"", "\"base64\""}, "\"aGVsbG8=\""},
        {"encode", {"\"ab\"", "\"base64\""}, "\"YWI=\""},
        {"encode", {"\"abc\"", "\"base64\""}, "\"YWJj\""},
        {"encode", {"\"\"", "\"base64\""}, "\"\""},
        {"encode", {"5", "\"base64\""}, "\"NQ==\""},
        {"encode", {"{\"a\":1}", "\"base64\""}, "\"eyJhIjoxfQ==\""},
        {"encode", {"\"x\"", "\"hex\""}, UNDEF_OUT},
        {"encode", {"\"x\"", "\"BASE64\""}, UNDEF_OUT},
        {"encode", {"null", "\"base64\""}, UNDEF_OUT},
        {"encode", {UNDEF_ARG, "\"base64\""}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_misc, encode_star_uses_raw_payload_bytes) {
    sql_value a[2] = {{.t = SQL_T_BIN, .n = 4, .u.s = "\xff\x00{\x80"}, sql__str("base64", 6)};
    sql_value r = call("encode", 2, a);
    cr_expect_str_eq(render(&r), "\"/wB7gA==\"");
}

Test(func_misc, decode_base64) {
    static const fcase t[] = {
        {"decode", {"\"aGVsbG8=\"", "\"base64\""}, "\"hello\""},
        {"decode", {"\"aGVsbG8\"", "\"base64\""}, "\"hello\""},
        {"decode", {"\"ODA=\"", "\"base64\""}, "80"},
        {"decode", {"\"WzEsMl0=\"", "\"base64\""}, "[1,2]"},
        {"decode", {"\"\"", "\"base64\""}, "\"\""},
        {"decode", {"\"/w==\"", "\"base64\""}, "\"\xef\xbf\xbd\""},
        {"decode", {"\"!!!!\"", "\"base64\""}, "null"},
        {"decode", {"\"aGVsbG8==\"", "\"base64\""}, "null"},
        {"decode", {"\"a\"", "\"base64\""}, "null"},
        {"decode", {"\"aGVs bG8=\"", "\"base64\""}, "null"},
        {"decode", {"\"aG=VsbG8\"", "\"base64\""}, "null"},
        {"decode", {"\"YWJj=\"", "\"base64\""}, "null"},
        {"decode", {"5", "\"base64\""}, UNDEF_OUT},
        {"decode", {"null", "\"base64\""}, UNDEF_OUT},
        {"decode", {"\"aGk=\"", "\"hex\""}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_misc, decode_json_is_addressable) {
    sql_value a[2] = {arg("\"eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg==\""), sql__str("base64", 6)};
    sql_value r = call("decode", 2, a);
    cr_assert_eq(r.t, SQL_T_OBJ);
    const sql_value *temp = sql__obj_get(&r, "temperature", 11);
    cr_assert(temp);
    cr_expect_str_eq(render(temp), "33");
}

Test(func_misc, encode_decode_round_trip) {
    static const char *texts[] = {"", "a", "ab", "abc", "abcd", "héllo wörld", "{\"k\":[1,2]}"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        sql_value a[2] = {sql__str(texts[i], (uint32_t)strlen(texts[i])), sql__str("base64", 6)};
        a[0] = call("encode", 2, a);
        sql_value r = call("decode", 2, a);
        if (r.t == SQL_T_STR) {
            cr_expect_eq(r.n, strlen(texts[i]));
            cr_expect(memcmp(r.u.s, texts[i], r.n) == 0, "round trip of %s", texts[i]);
        } else {
            cr_expect_eq(r.t, SQL_T_OBJ, "%s decodes as JSON", texts[i]);
        }
    }
}

Test(func_misc, hashes_are_lowercase_hex) {
    static const fcase t[] = {
        {"md2", {"\"hello\""}, "\"a9046c73e00331af68917d3804f70655\""},
        {"md2", {"\"\""}, "\"8350e5a3e24c153df2275c9f80692773\""},
        {"md2", {"\"abcdefghijklmnop\""}, "\"7f17759865db3f1cd4f77daa7b203a72\""},
        {"md2",
         {"\"1234567890123456789012345678901234567890123456789012345678901234567890123456789"
          "0\""},
         "\"d5976f79d83d3a0dc9806c3c66f3efd8\""},
        {"md5", {"\"hello\""}, "\"5d41402abc4b2a76b9719d911017c592\""},
        {"md5", {"\"iot123\""}, "\"e37f81fb397e595c4aeb5645b8cbbbd1\""},
        {"md5", {"5"}, "\"e4da3b7fbbce2345d7772b0674a318d5\""},
        {"md5", {"[1,2]"}, "\"f79408e5ca998cd53faf44af31e6eb45\""},
        {"sha1", {"\"hello\""}, "\"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d\""},
        {"sha224", {"\"hello\""}, "\"ea09ae9cc6768c50fcee903ed054556e5bfc8347907f12598aa24193\""},
        {"sha256",
         {"\"hello\""},
         "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\""},
        {"sha384",
         {"\"hello\""},
         "\"59e1748777448c69de6b800d7a33bbfb9ff1b463e44354c3553bcdb9c666fa90125a3c79f90397bdf5f"
         "6a13de828684f\""},
        {"sha512",
         {"\"hello\""},
         "\"9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7a"
         "cc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043\""},
        {"md5", {"null"}, UNDEF_OUT},
        {"sha256", {UNDEF_ARG}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_misc, flags) {
    const sql_func *f = sql__func_lookup("encode", 6);
    cr_assert(f);
    cr_expect_eq(f->flags & (SQL_FN_V2016 | SQL_FN_LIT2 | SQL_FN_STAR),
                 SQL_FN_V2016 | SQL_FN_LIT2 | SQL_FN_STAR);
    f = sql__func_lookup("decode", 6);
    cr_assert(f);
    cr_expect_eq(f->flags & (SQL_FN_V2016 | SQL_FN_LIT2 | SQL_FN_STAR),
                 SQL_FN_V2016 | SQL_FN_LIT2);
    f = sql__func_lookup("isUndefined", 11);
    cr_assert(f);
    cr_expect(f->flags & SQL_FN_V2016);
    f = sql__func_lookup("transform", 9);
    cr_assert(f);
    cr_expect(f->flags & SQL_FN_V2016);
    f = sql__func_lookup("md5", 3);
    cr_assert(f);
    cr_expect_eq(f->flags, SQL_FN_DETERMINISTIC);
}

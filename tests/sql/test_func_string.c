/*
 * test_func_string.c -- string builtins: every doc example of checklist §15 "Strings" (the
 * regexp_* ones live in test_func_regex.c), the fn-* conformance cases of that area, and the
 * conversion edge cases (Null/Undefined give Undefined, other types converted to String).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sql_int.h"

#include "func_harness.h"

TestSuite(func_string, .init = setup, .fini = teardown);

Test(func_string, chr_makes_one_ascii_character) {
    static const fcase t[] = {
        {"chr", {"65"}, "\"A\""},
        {"chr", {"49"}, "\"1\""},
        {"chr", {"65.9"}, "\"A\""},
        {"chr", {"\"66\""}, "\"B\""},
        {"chr", {"0"}, "\"\\u0000\""},
        {"chr", {"127"}, "\"\x7f\""}, /* DEL needs no escape in JSON */
        {"chr", {"127.99"}, "\"\x7f\""},
        /* not ASCII codes: Undefined, as AWS's table says */
        {"chr", {"128"}, UNDEF_OUT},
        {"chr", {"233"}, UNDEF_OUT},
        {"chr", {"300"}, UNDEF_OUT},
        {"chr", {"8364"}, UNDEF_OUT},
        {"chr", {"-1"}, UNDEF_OUT},
        {"chr", {"-0.5"}, UNDEF_OUT},
        {"chr", {"1114112"}, UNDEF_OUT},
        {"chr", {"1e40"}, UNDEF_OUT},
        {"chr", {"true"}, UNDEF_OUT},
        {"chr", {"null"}, UNDEF_OUT},
        {"chr", {"\"x\""}, UNDEF_OUT},
        {"chr", {"[65]"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, startswith_endswith_convert_and_reject_missing) {
    static const fcase t[] = {
        {"endswith", {"\"cat\"", "\"at\""}, "true"},
        {"endswith", {"123", "3"}, "true"},
        {"endswith", {"\"at\"", "\"cat\""}, "false"},
        {"startswith", {"\"ranger\"", "\"ran\""}, "true"},
        {"startswith", {"\"ranger\"", "\"anger\""}, "false"},
        {"startswith", {"true", "\"tr\""}, "true"},
        {"startswith", {"\"abc\"", "\"\""}, "true"},
        {"startswith", {UNDEF_ARG, "\"ran\""}, UNDEF_OUT},
        {"startswith", {"\"ranger\"", "null"}, UNDEF_OUT},
        {"endswith", {"null", "\"a\""}, UNDEF_OUT},
        {"endswith", {"\"a\"", UNDEF_ARG}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, indexof_counts_characters_from_zero) {
    static const fcase t[] = {
        {"indexof", {"\"abcd\"", "\"bc\""}, "1"},
        {"indexof", {"\"abcd\"", "\"x\""}, "-1"},
        {"indexof", {"\"héllo\"", "\"l\""}, "2"},
        {"indexof", {"\"abc\"", "\"\""}, "0"},
        {"indexof", {"\"abab\"", "\"ab\""}, "0"},
        {"indexof", {"[\"a\"]", "\"a\""}, UNDEF_OUT},
        {"indexof", {"null", "\"a\""}, UNDEF_OUT},
        {"indexof", {"\"a\"", UNDEF_ARG}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, length_and_numbytes) {
    static const fcase t[] = {
        {"length", {"\"hi\""}, "2"},
        {"length", {"false"}, "5"},
        {"length", {"\"€uro\""}, "4"},
        {"length", {"\"😀\""}, "1"},
        {"length", {"\"\""}, "0"},
        {"length", {"123"}, "3"},
        {"length", {"[\"a\"]"}, "5"},
        {"length", {"null"}, UNDEF_OUT},
        {"length", {UNDEF_ARG}, UNDEF_OUT},
        {"numbytes", {"\"€\""}, "3"},
        {"numbytes", {"\"abc\""}, "3"},
        {"numbytes", {"12"}, "2"},
        {"numbytes", {"null"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, lower_upper_convert_and_map_letters) {
    static const fcase t[] = {
        {"lower", {"\"HELLO\""}, "\"hello\""},
        {"upper", {"\"hello\""}, "\"HELLO\""},
        {"lower", {"[\"HELLO\"]"}, "\"[\\\"hello\\\"]\""},
        {"upper", {"[\"hello\"]"}, "\"[\\\"HELLO\\\"]\""},
        {"upper", {"true"}, "\"TRUE\""},
        {"lower", {"1.5"}, "\"1.5\""},
        {"lower", {"\"ÀÉÎ Ø×\""}, "\"àéî ø×\""},
        {"upper", {"\"àéî ø÷ÿ\""}, "\"ÀÉÎ Ø÷Ÿ\""},
        {"upper", {"\"straße\""}, "\"STRAßE\""},
        {"lower", {"\"ΑΒΓ\""}, "\"αβγ\""},
        {"upper", {"\"привет\""}, "\"ПРИВЕТ\""},
        {"lower", {"\"ŁÓDŹ\""}, "\"łódź\""},
        {"upper", {"\"€x\""}, "\"€X\""},
        {"lower", {"null"}, UNDEF_OUT},
        {"upper", {UNDEF_ARG}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, pads_add_n_spaces) {
    static const fcase t[] = {
        {"lpad", {"\"hello\"", "2"}, "\"  hello\""},
        {"lpad", {"1", "3"}, "\"   1\""},
        {"rpad", {"\"hello\"", "2"}, "\"hello  \""},
        {"rpad", {"1", "3"}, "\"1   \""},
        {"lpad", {"\"a\"", "-5"}, "\"a\""},
        {"lpad", {"\"a\"", "2.9"}, "\"  a\""},
        {"rpad", {"\"a\"", "\"2\""}, "\"a  \""},
        {"lpad", {"\"a\"", "true"}, UNDEF_OUT},
        {"lpad", {"\"a\"", "\"x\""}, UNDEF_OUT},
        {"lpad", {"\"a\"", "null"}, UNDEF_OUT},
        {"rpad", {"null", "2"}, UNDEF_OUT},
        {"rpad", {UNDEF_ARG, "2"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, pad_count_is_clamped_to_1000) {
    sql_value a[2] = {sql__str("a", 1), sql__int(2000)};
    sql_value r = call("lpad", 2, a);
    cr_assert_eq(r.t, SQL_T_STR);
    cr_expect_eq(r.n, 1001);
    cr_expect_eq(r.u.s[999], ' ');
    cr_expect_eq(r.u.s[1000], 'a');
    sql_value l = call("length", 1, &r);
    cr_expect_str_eq(render(&l), "1001");
    a[1] = sql__int(INT64_MIN);
    r = call("rpad", 2, a);
    cr_expect_str_eq(render(&r), "\"a\"");
}

Test(func_string, trims_strip_spaces_and_tabs_only) {
    static const fcase t[] = {
        {"rtrim", {"\" h i \""}, "\" h i\""},
        {"trim", {"\" hi \""}, "\"hi\""},
        /* The doc's Ltrim(" h i ") = "hi " is an erratum: the definition gives "h i ". */
        {"ltrim", {"\" h i \""}, "\"h i \""},
        {"trim", {"\"\\t x \\t\""}, "\"x\""},
        {"trim", {"\"   \""}, "\"\""},
        {"trim", {"5"}, "\"5\""},
        {"trim", {"null"}, UNDEF_OUT},
        {"ltrim", {UNDEF_ARG}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, trim_keeps_newlines) {
    sql_value a = sql__str("\n x \r", 5);
    sql_value r = call("trim", 1, &a);
    cr_assert_eq(r.t, SQL_T_STR);
    cr_expect_eq(r.n, 5, "newline and carriage return are not blanks");
}

Test(func_string, replace_is_literal_and_replaces_all) {
    static const fcase t[] = {
        {"replace", {"\"abcdabcd\"", "\"b\"", "\"x\""}, "\"axcdaxcd\""},
        {"replace", {"\"abcd\"", "\"bc\"", "\"x\""}, "\"axd\""},
        {"replace", {"\"aaa\"", "\"aa\"", "\"b\""}, "\"ba\""},
        {"replace", {"\"a.c\"", "\".\"", "\"$1\""}, "\"a$1c\""},
        {"replace", {"\"abc\"", "\"\"", "\"-\""}, "\"-a-b-c-\""},
        {"replace", {"\"héé\"", "\"é\"", "\"e\""}, "\"hee\""},
        {"replace", {"123", "2", "9"}, "\"193\""},
        {"replace", {"null", "\"a\"", "\"b\""}, UNDEF_OUT},
        {"replace", {"\"a\"", UNDEF_ARG, "\"b\""}, UNDEF_OUT},
        {"replace", {"\"a\"", "\"a\"", "null"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_string, substring_doc_examples) {
    static const fcase t[] = {
        {"substring", {"\"012345\"", "0"}, "\"012345\""},
        {"substring", {"\"012345\"", "2"}, "\"2345\""},
        {"substring", {"\"012345\"", "2.745"}, "\"2345\""},
        {"substring", {"123", "2"}, "\"3\""},
        {"substring", {"\"012345\"", "-1"}, "\"012345\""},
        {"substring", {"true", "1.2"}, "\"rue\""},
        {"substring", {"false", "-2.411E247"}, "\"false\""},
        {"substring", {"\"012345\"", "1", "3"}, "\"12\""},
        {"substring", {"\"012345\"", "-50", "50"}, "\"012345\""},
        {"substring", {"\"012345\"", "3", "1"}, "\"\""},
    };
    RUN(t);
}

Test(func_string, substring_edges) {
    static const fcase t[] = {
        {"substring", {"\"héllo\"", "1", "2"}, "\"é\""},
        {"substring", {"\"héllo\"", "2"}, "\"llo\""},
        {"substring", {"\"abc\"", "\"1\""}, "\"bc\""},
        {"substring", {"\"abc\"", "3"}, "\"\""},
        {"substring", {"\"abc\"", "1", "1"}, "\"\""},
        {"substring", {"\"abc\"", "0", "2.9"}, "\"ab\""},
        {"substring", {"\"abc\"", "null"}, UNDEF_OUT},
        {"substring", {"\"abc\"", "1", "\"x\""}, UNDEF_OUT},
        {"substring", {"\"abc\"", "true"}, UNDEF_OUT},
        {"substring", {"null", "1"}, UNDEF_OUT},
        {"substring", {"[1,2]", "1", "4"}, "\"1,2\""},
    };
    RUN(t);
}

Test(func_string, wrong_arity_is_undefined) {
    sql_value a[4] = {sql__str("abc", 3), sql__int(1), sql__int(2), sql__int(3)};
    cr_expect_eq(call("substring", 1, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("substring", 4, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("lower", 0, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("replace", 2, a).t, SQL_T_UNDEF);
}

Test(func_string, version_flags) {
    static const char *v2016[] = {"indexof", "length", "numbytes"};
    for (size_t i = 0; i < 3; i++) {
        const sql_func *f = sql__func_lookup(v2016[i], strlen(v2016[i]));
        cr_assert(f);
        cr_expect(f->flags & SQL_FN_V2016, "%s is 2016-03-23 only", v2016[i]);
    }
    const sql_func *f = sql__func_lookup("LTRIM", 5);
    cr_assert(f);
    cr_expect_eq(f->flags & SQL_FN_V2016, 0u);
    cr_expect(f->flags & SQL_FN_DETERMINISTIC);
}

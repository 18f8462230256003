/*
 * test_func_regex.c -- regexp_matches / regexp_replace / regexp_substr: the doc examples, the
 * Java dialect points (find semantics, $n and ${name} replacement, empty matches), argument
 * conversion, precompiled patterns through ctx->aux, and the backtracking limit.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "sql_int.h"

#include "func_harness.h"

TestSuite(func_regex, .init = setup, .fini = teardown);

Test(func_regex, doc_examples) {
    static const fcase t[] = {
        {"regexp_matches", {"\"aaaa\"", "\"a{2,}\""}, "true"},
        {"regexp_matches", {"\"aaaa\"", "\"b\""}, "false"},
        {"regexp_matches", {"\"xaay\"", "\"a{2}\""}, "true"},
        {"regexp_replace", {"\"abcd\"", "\"b(.*)d\"", "\"$1\""}, "\"ac\""},
        {"regexp_substr", {"\"hihihello\"", "\"hi\""}, "\"hi\""},
        {"regexp_substr", {"\"hihihello\"", "\"(hi)*\""}, "\"hihi\""},
    };
    RUN(t);
}

Test(func_regex, matches_finds_anywhere_with_java_syntax) {
    static const fcase t[] = {
        {"regexp_matches", {"\"Hello\"", "\"(?i)^hello$\""}, "true"},
        {"regexp_matches", {"\"Hello\"", "\"^hello$\""}, "false"},
        {"regexp_matches", {"\"a1\"", "\"\\\\d\""}, "true"},
        {"regexp_matches", {"\"é\"", "\"^.$\""}, "true"},
        {"regexp_matches", {"\"é\"", "\"\\\\w\""}, "false"},
        {"regexp_matches", {"\"ab\\r\\ncd\"", "\"b.c\""}, "false"},
        {"regexp_matches", {"\"\"", "\"^$\""}, "true"},
        {"regexp_matches", {"123", "\"^12\""}, "true"},
        {"regexp_matches", {"true", "\"ru\""}, "true"},
        {"regexp_matches", {"[1,2]", "\"^\\\\[1,2\\\\]$\""}, "true"},
    };
    RUN(t);
}

Test(func_regex, missing_subject_or_bad_pattern_is_undefined) {
    static const fcase t[] = {
        {"regexp_matches", {"null", "\"a\""}, UNDEF_OUT},
        {"regexp_matches", {UNDEF_ARG, "\"a\""}, UNDEF_OUT},
        {"regexp_matches", {"\"a\"", "\"(\""}, UNDEF_OUT},
        {"regexp_matches", {"\"a\"", "\"[a\""}, UNDEF_OUT},
        {"regexp_matches", {"\"a\"", "null"}, UNDEF_OUT},
        {"regexp_substr", {"null", "\"a\""}, UNDEF_OUT},
        {"regexp_substr", {"\"a\"", "\"*\""}, UNDEF_OUT},
        {"regexp_replace", {"null", "\"a\"", "\"b\""}, UNDEF_OUT},
        {"regexp_replace", {"\"a\"", "\"a\"", UNDEF_ARG}, UNDEF_OUT},
        {"regexp_replace", {"\"a\"", "\"a)\"", "\"b\""}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_regex, substr_returns_first_match_or_undefined) {
    static const fcase t[] = {
        {"regexp_substr", {"\"abc123def456\"", "\"[0-9]+\""}, "\"123\""},
        {"regexp_substr", {"\"abc\"", "\"[0-9]+\""}, UNDEF_OUT},
        {"regexp_substr", {"\"abc\"", "\"x*\""}, "\"\""},
        {"regexp_substr", {"\"héllo\"", "\"é.\""}, "\"él\""},
        {"regexp_substr", {"12345", "\"3.\""}, "\"34\""},
    };
    RUN(t);
}

Test(func_regex, replace_uses_java_replacement_syntax) {
    static const fcase t[] = {
        {"regexp_replace", {"\"abcabc\"", "\"b\"", "\"X\""}, "\"aXcaXc\""},
        {"regexp_replace", {"\"2024-05-06\"", "\"(\\\\d+)-(\\\\d+)-(\\\\d+)\"", "\"$3/$2/$1\""},
         "\"06/05/2024\""},
        {"regexp_replace", {"\"ab\"", "\"(?<x>a)\"", "\"[${x}]\""}, "\"[a]b\""},
        {"regexp_replace", {"\"ab\"", "\"a\"", "\"\\\\$1\""}, "\"$1b\""},
        {"regexp_replace", {"\"ab\"", "\"a\"", "\"\\\\\\\\\""}, "\"\\\\b\""},
        {"regexp_replace", {"\"ab\"", "\"(a)\"", "\"$10\""}, "\"a0b\""},
        {"regexp_replace", {"\"ab\"", "\"(a)|(x)\"", "\"<$2>\""}, "\"<>b\""},
        {"regexp_replace", {"\"ab\"", "\"(a)\"", "\"$2\""}, UNDEF_OUT},
        {"regexp_replace", {"\"ab\"", "\"(a)\"", "\"${nope}\""}, UNDEF_OUT},
        {"regexp_replace", {"\"ab\"", "\"(a)\"", "\"$\""}, UNDEF_OUT},
        {"regexp_replace", {"\"ab\"", "\"(a)\"", "\"x\\\\\""}, UNDEF_OUT},
        {"regexp_replace", {"\"ab\"", "\"z\"", "\"$9\""}, "\"ab\""},
        {"regexp_replace", {"\"a.b\"", "\"\\\\.\"", "\"$0$0\""}, "\"a..b\""},
        {"regexp_replace", {"123", "\"2\"", "7"}, "\"173\""},
    };
    RUN(t);
}

Test(func_regex, replace_handles_empty_matches_like_java) {
    static const fcase t[] = {
        {"regexp_replace", {"\"abc\"", "\"x*\"", "\"-\""}, "\"-a-b-c-\""},
        {"regexp_replace", {"\"abc\"", "\"b*\"", "\"-\""}, "\"-a--c-\""},
        {"regexp_replace", {"\"\"", "\"x*\"", "\"-\""}, "\"-\""},
        {"regexp_replace", {"\"éé\"", "\"\"", "\"|\""}, "\"|é|é|\""},
        {"regexp_replace", {"\"a b\"", "\"\\\\s*\"", "\"\""}, "\"ab\""},
    };
    RUN(t);
}

Test(func_regex, precompiled_pattern_comes_through_aux) {
    char msg[128];
    void *re = sql__regex_compile("b+", 2, msg, sizeof msg);
    cr_assert(re, "%s", msg);
    c.aux = re;
    /* The argument text is ignored when the compiler supplied the compiled literal. */
    sql_value a[3] = {sql__str("abbbc", 5), sql__str("ignored", 7), sql__str("-", 1)};
    sql_value r = call("regexp_replace", 3, a);
    cr_expect_str_eq(render(&r), "\"a-c\"");
    r = call("regexp_substr", 2, a);
    cr_expect_str_eq(render(&r), "\"bbb\"");
    c.aux = NULL;
    sql__regex_free(re);
    sql__regex_free(NULL);
}

Test(func_regex, compile_reports_errors) {
    char msg[128] = "";
    void *re = sql__regex_compile("a(b", 3, msg, sizeof msg);
    cr_expect_null(re);
    cr_expect(strstr(msg, "offset 3") != NULL, "message: %s", msg);
}

Test(func_regex, many_groups_grow_the_match_data) {
    /* 20 groups: more than the initial ovector. */
    const char *pat = "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)(m)(n)(o)(p)(q)(r)(s)(t)";
    sql_value a[3] = {sql__str("abcdefghijklmnopqrst", 20), sql__str(pat, (uint32_t)strlen(pat)),
                      sql__str("$20$1", 5)};
    sql_value r = call("regexp_replace", 3, a);
    cr_expect_str_eq(render(&r), "\"ta\"");
}

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Calls fn and returns its status code (the limit raises a ctx error instead of a value). */
static int call_rc(const char *fn, int argc, const sql_value *argv, sql_value *out) {
    const sql_func *f = sql__func_lookup(fn, strlen(fn));
    cr_assert(f);
    return f->fn(&c, argc, argv, out);
}

Test(func_regex, catastrophic_backtracking_fails_fast) {
    char subj[64];
    memset(subj, 'a', 30);
    subj[30] = 'b';
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sql_value out = SQL_UNDEF;
    sql_value a[2] = {sql__str(subj, 31), sql__str("(a+)+$", 6)};
    int rc = call_rc("regexp_matches", 2, a, &out);
    /* PCRE2 may prove the failure by itself; if it backtracks, the limit must stop it. */
    if (rc == 0)
        cr_expect_str_eq(render(&out), "false");
    else
        cr_expect_eq(rc, SQL_E_LIMIT);
    cr_expect_lt(ms_since(&t0), 500.0, "regexp_matches took %.0f ms", ms_since(&t0));

    /* An alternation PCRE2 cannot optimise away: 2^30 paths before failing at 'c'. */
    memset(&c.err, 0, sizeof c.err);
    c.errmsg[0] = 0;
    memset(subj, 'a', 30);
    subj[30] = 'c';
    subj[31] = 'b';
    sql_value b[2] = {sql__str(subj, 32), sql__str("^(a|a)*b", 8)};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = call_rc("regexp_matches", 2, b, &out);
    cr_expect_eq(rc, SQL_E_LIMIT);
    cr_expect_eq(c.err, SQL_E_LIMIT);
    cr_expect(strstr(c.errmsg, "backtracking limit") != NULL, "errmsg: %s", c.errmsg);
    cr_expect_lt(ms_since(&t0), 500.0, "limit reached after %.0f ms", ms_since(&t0));
}

Test(func_regex, limit_applies_to_replace_and_substr) {
    char subj[40];
    memset(subj, 'a', 30);
    subj[30] = 'c';
    subj[31] = 'b';
    sql_value out;
    sql_value a[3] = {sql__str(subj, 32), sql__str("^(a|a)*b", 8), sql__str("x", 1)};
    cr_expect_eq(call_rc("regexp_replace", 3, a, &out), SQL_E_LIMIT);
    c.err = 0;
    cr_expect_eq(call_rc("regexp_substr", 2, a, &out), SQL_E_LIMIT);
}

Test(func_regex, flags) {
    static const char *fns[] = {"regexp_matches", "regexp_replace", "regexp_substr"};
    for (size_t i = 0; i < 3; i++) {
        const sql_func *f = sql__func_lookup(fns[i], strlen(fns[i]));
        cr_assert(f);
        cr_expect(f->flags & SQL_FN_REGEX);
        cr_expect(f->flags & SQL_FN_DETERMINISTIC);
    }
}

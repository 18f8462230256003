/*
 * test_func_math.c -- math and bitwise builtins: every doc example of checklist §15 (Math,
 * Bitwise), the fn-* conformance cases of that area, and the argument-type tables (String
 * converted, Boolean/Array/Object/Null/Undefined give Undefined).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "sql_int.h"

#include "func_harness.h"

#define V1 SQL_V2015_10_08

TestSuite(func_math, .init = setup, .fini = teardown);

Test(func_math, doc_examples_of_exact_functions) {
    static const fcase t[] = {
        {"abs", {"-5"}, "5"},
        {"ceil", {"1.2"}, "2"},
        {"ceil", {"-1.2"}, "-1"},
        {"floor", {"1.2"}, "1"},
        {"floor", {"-1.2"}, "-2"},
        {"mod", {"8", "3"}, "2"},
        {"remainder", {"8", "3"}, "2"},
        {"nanvl", {"8", "3"}, "8"},
        {"round", {"1.2"}, "1"},
        {"round", {"1.5"}, "2"},
        {"round", {"1.7"}, "2"},
        {"round", {"-1.1"}, "-1"},
        {"round", {"-1.5"}, "-2"},
        {"sign", {"-7"}, "-1"},
        {"sign", {"0"}, "0"},
        {"sign", {"13"}, "1"},
        {"trunc", {"2.3", "0"}, "2"},
        {"trunc", {"2.3123", "2"}, "2.31"},
        {"trunc", {"2.888", "2"}, "2.88"},
        {"trunc", {"2.00", "5"}, "2"},
    };
    RUN(t);
}

Test(func_math, doc_examples_of_double_functions) {
    static const fcase t[] = {
        {"acos", {"0"}, "1.5707963267948966"},
        {"asin", {"0"}, "0.0", V1},
        {"asin", {"0"}, "0"},
        {"atan", {"0"}, "0.0", V1},
        {"atan2", {"1", "0"}, "1.5707963267948966"},
        {"cos", {"0"}, "1"},
        {"cosh", {"2.3"}, "5.037220649268761"},
        {"sin", {"0"}, "0.0", V1},
        {"sinh", {"2.3"}, "4.936961805545957"},
        {"tan", {"3"}, "-0.1425465430742778"},
        {"tanh", {"2.3"}, "0.9800963962661914"},
        {"exp", {"1"}, "2.718281828459045"},
        {"ln", {"2.718281828459045"}, "1"},
        {"log", {"100"}, "2.0", V1},
        {"log", {"100"}, "2"},
        {"power", {"2", "5"}, "32.0", V1},
        {"power", {"2", "5"}, "32"},
        {"sqrt", {"9"}, "3.0", V1},
        {"sqrt", {"9"}, "3"},
    };
    RUN(t);
}

Test(func_math, imaginary_and_infinite_results_are_undefined) {
    static const fcase t[] = {
        {"acos", {"2"}, UNDEF_OUT},
        {"asin", {"-1.5"}, UNDEF_OUT},
        {"sqrt", {"-1"}, UNDEF_OUT},
        {"ln", {"0"}, UNDEF_OUT},
        {"ln", {"-1"}, UNDEF_OUT},
        {"log", {"0"}, UNDEF_OUT},
        {"power", {"-1", "0.5"}, UNDEF_OUT},
        {"exp", {"1000"}, UNDEF_OUT},
        {"cosh", {"1000"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_math, strings_convert_by_the_decimal_regex) {
    static const fcase t[] = {
        {"abs", {"\"-2.5\""}, "2.5"},
        {"atan2", {"\"1\"", "\"0\""}, "1.5707963267948966"},
        {"power", {"\"2\"", "\"0.5\""}, "1.4142135623730951"},
        {"ceil", {"\"1.5\""}, "2"},
        {"floor", {"\"-0.5\""}, "-1"},
        {"sign", {"\"-7.5\""}, "-1"},
        {"mod", {"\"8.5\"", "3"}, "2.5"},
        {"sqrt", {"\"1e2\""}, "10"},
        {"abs", {"\"+5\""}, UNDEF_OUT},
        {"abs", {"\".5\""}, UNDEF_OUT},
        {"abs", {"\"5.\""}, UNDEF_OUT},
        {"abs", {"\" 5\""}, UNDEF_OUT},
        {"cos", {"\"zero\""}, UNDEF_OUT},
        {"round", {"\"1.5\""}, "2"},
        {"trunc", {"\"2.567\"", "\"1\""}, "2.5"},
    };
    RUN(t);
}

Test(func_math, non_numeric_types_are_undefined) {
    static const char *bad[] = {"true", "null", "[1]", "{\"a\":1}", UNDEF_ARG};
    static const char *fns[] = {"abs", "acos", "ceil", "floor", "round", "sign", "sqrt",
                                "exp", "ln", "log", "sin", "bitnot"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            sql_value a = arg(bad[j]);
            sql_value out = call(fns[i], 1, &a);
            cr_expect_eq(out.t, SQL_T_UNDEF, "%s(%s) should be Undefined", fns[i], bad[j]);
        }
    }
    static const fcase t[] = {
        {"atan2", {"null", "1"}, UNDEF_OUT},
        {"power", {"2", "true"}, UNDEF_OUT},
        {"trunc", {"2.5", "null"}, UNDEF_OUT},
        {"trunc", {"[2.5]", "1"}, UNDEF_OUT},
        {"mod", {"true", "3"}, UNDEF_OUT},
        {"bitand", {"13", "null"}, UNDEF_OUT},
        {"bitor", {"\"x\"", "1"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_math, exact_functions_keep_int_and_decimal) {
    static const fcase t[] = {
        {"abs", {"-1.5"}, "1.5"},
        {"abs", {"7"}, "7"},
        {"abs", {"-12345678901234567890"}, "12345678901234567890"},
        {"abs", {"-0.5"}, "0.5"},
        {"ceil", {"5"}, "5"},
        {"floor", {"-5"}, "-5"},
        {"round", {"2.5"}, "3"},
        {"round", {"-2.5"}, "-3"},
        {"round", {"-0.4"}, "0"},
        {"sign", {"-0.001"}, "-1"},
        {"sign", {"0.0"}, "0"},
    };
    RUN(t);
}

Test(func_math, trunc_clamps_places_and_keeps_ints) {
    static const fcase t[] = {
        {"trunc", {"2.3", "-1"}, "2"},
        {"trunc", {"-2.78", "1"}, "-2.7"},
        {"trunc", {"5", "2"}, "5"},
        {"trunc", {"1.23456", "100"}, "1.23456"},
        {"trunc", {"1.23456", "1E40"}, "1.23456"},
        {"trunc", {"1.23456", "-1E40"}, "1"},
        {"trunc", {"1.29", "1.9"}, "1.2"},
    };
    RUN(t);
}

Test(func_math, mod_is_the_percent_operator) {
    static const fcase t[] = {
        {"mod", {"-8", "3"}, "-2"},
        {"mod", {"8", "-3"}, "2"},
        {"mod", {"8", "0"}, UNDEF_OUT},
        {"remainder", {"7.5", "2"}, "1.5"},
    };
    RUN(t);
}

Test(func_math, nanvl_replaces_only_missing_values) {
    static const fcase t[] = {
        {"nanvl", {UNDEF_ARG, "3"}, "3"},
        {"nanvl", {"null", "3"}, "3"},
        {"nanvl", {"\"NaN\"", "3"}, "3"},
        {"nanvl", {"\"x\"", "3"}, "\"x\""},
        {"nanvl", {"false", "3"}, "false"},
        {"nanvl", {"[1]", "3"}, "[1]"},
        {"nanvl", {"0", "3"}, "0"},
        {"nanvl", {UNDEF_ARG, UNDEF_ARG}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_math, bitwise_truncates_to_int) {
    static const fcase t[] = {
        {"bitand", {"13", "5"}, "5"},
        {"bitand", {"13.9", "5"}, "5"},
        {"bitor", {"8", "5"}, "13"},
        {"bitxor", {"13", "5"}, "8"},
        {"bitnot", {"13"}, "-14"},
        {"bitnot", {"-1"}, "0"},
        {"bitand", {"\"13\"", "\"5.7\""}, "5"},
        {"bitand", {"-13.9", "-1"}, "-13"},
        {"bitor", {"-1", "0"}, "-1"},
        {"bitxor", {"9223372036854775807", "-1"}, "-9223372036854775808"},
        {"bitand", {"99999999999999999999", "1"}, UNDEF_OUT},
    };
    RUN(t);
}

Test(func_math, wrong_arity_is_undefined) {
    sql_value a[3] = {sql__int(1), sql__int(2), sql__int(3)};
    cr_expect_eq(call("abs", 0, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("abs", 2, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("power", 1, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("trunc", 3, a).t, SQL_T_UNDEF);
    cr_expect_eq(call("rand", 1, a).t, SQL_T_UNDEF);
}

Test(func_math, rand_is_uniform_in_unit_interval) {
    double sum = 0, prev = -1;
    int distinct = 0;
    for (int i = 0; i < 2000; i++) {
        sql_value r = call("rand", 0, NULL);
        cr_assert(r.t == SQL_T_DEC || r.t == SQL_T_INT, "rand() type %d", r.t);
        double d = sql__num_to_double(&r);
        cr_assert(d >= 0.0 && d < 1.0, "rand() = %g", d);
        distinct += d != prev;
        prev = d;
        sum += d;
    }
    cr_expect_gt(distinct, 1990);
    cr_expect(sum / 2000 > 0.45 && sum / 2000 < 0.55, "mean %g", sum / 2000);
}

Test(func_math, names_are_case_insensitive_and_flags_set) {
    const sql_func *f = sql__func_lookup("Round", 5);
    cr_assert(f);
    cr_expect(f->flags & SQL_FN_DETERMINISTIC);
    f = sql__func_lookup("RAND", 4);
    cr_assert(f);
    cr_expect_eq(f->flags & SQL_FN_DETERMINISTIC, 0u, "rand() must not be constant-folded");
}

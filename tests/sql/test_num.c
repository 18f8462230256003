/* test_num.c -- Int and Decimal: parsing, printing, exact arithmetic, comparison (num.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sql_int.h"

static sql_ctx c;

static void setup(void) {
    memset(&c, 0, sizeof c);
    sql__arena_init(&c.arena, 1 << 20);
    c.version = SQL_V2016_03_23;
}
static void teardown(void) { sql__arena_deinit(&c.arena); }
TestSuite(num, .init = setup, .fini = teardown);

static sql_value parse(const char *s) {
    sql_value v;
    cr_assert_eq(sql__num_parse(&c, s, strlen(s), &v), 0, "parse %s", s);
    return v;
}

static const char *fmt(sql_value v) {
    static char buf[SQL_NUM_BUFSZ + 1];
    if (v.t == SQL_T_UNDEF)
        return "<undef>";
    size_t n = sql__num_format(&v, buf);
    buf[n] = '\0';
    return buf;
}

typedef struct {
    const char *a, *b;
    int op;
    const char *want;
} arith_case;

Test(num, parse_and_print_round_trip_by_version) {
    static const struct {
        const char *in, *v2, *v1;
        int v2type;
    } t[] = {
        {"0", "0", "0", SQL_T_INT},
        {"-17", "-17", "-17", SQL_T_INT},
        {"10.0", "10", "10.0", SQL_T_INT},
        {"2.00", "2", "2.00", SQL_T_INT},
        {"47.696", "47.696", "47.696", SQL_T_DEC},
        {"1e3", "1000", "1E+3", SQL_T_INT},
        {"1.5e-7", "1.5E-7", "1.5E-7", SQL_T_DEC},
        {"0.000001", "0.000001", "0.000001", SQL_T_DEC},
        {"0.0000001", "1E-7", "1E-7", SQL_T_DEC},
        {"-2.411E247", "-2.411E+247", "-2.411E+247", SQL_T_DEC},
        {"123456789012345678901234567890", "123456789012345678901234567890",
         "123456789012345678901234567890", SQL_T_INT},
        {"-0", "0", "0", SQL_T_INT},
        {"-0.0", "0", "0.0", SQL_T_INT},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        c.version = SQL_V2016_03_23;
        sql_value v = parse(t[i].in);
        cr_expect_str_eq(fmt(v), t[i].v2, "V2 %s", t[i].in);
        cr_expect_eq(v.t, t[i].v2type, "V2 type of %s", t[i].in);
        c.version = SQL_V2015_10_08;
        cr_expect_str_eq(fmt(parse(t[i].in)), t[i].v1, "V1 %s", t[i].in);
    }
}

Test(num, decimals_round_half_even_to_34_digits) {
    cr_expect_str_eq(fmt(parse("1.23456789012345678901234567890123456")),
                     "1.234567890123456789012345678901235");
    cr_expect_str_eq(fmt(parse("1.23456789012345678901234567890123450")),
                     "1.234567890123456789012345678901234");
    cr_expect_str_eq(fmt(parse("9.999999999999999999999999999999999999")), "10");
}

Test(num, malformed_numbers_are_rejected) {
    const char *bad[] = {"", "-", "1.", ".5", "1e", "1e+", "abc", "1x", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sql_value v;
        cr_expect_neq(sql__num_parse(&c, bad[i], strlen(bad[i]), &v), 0, "'%s'", bad[i]);
    }
}

Test(num, exponents_out_of_range_are_rejected_not_truncated) {
    /* found by fuzz_json: the exponent's digits past the 9th were dropped, so 1E99999999901
       read as 1E999999999 and printed as a number that read back as another */
    const char *out[] = {"1E99999999901", "99999000E99999999901", "1e-12345678901",
                         "1E2000000001"};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        sql_value v;
        cr_expect_neq(sql__num_parse(&c, out[i], strlen(out[i]), &v), 0, "'%s'", out[i]);
    }
    /* zero with the most negative exponent is read at once (found by fuzz_json: the
       whole-number rule divided its digits away 19 at a time, seconds per number) */
    cr_expect_str_eq(fmt(parse("0e-1000000000")), "0");
    cr_expect_str_eq(fmt(parse("-0.000e-999999990")), "0");
    c.version = SQL_V2015_10_08;
    cr_expect_str_eq(fmt(parse("0e-1000000000")), "0E-1000000000");
    c.version = SQL_V2016_03_23;
    /* the largest exponents kept print as text that reads back as the same number */
    const char *edge[] = {"99999000E999999999", "1E-999999999", "1E00000000000000000005"};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        char first[SQL_NUM_BUFSZ + 1];
        snprintf(first, sizeof first, "%s", fmt(parse(edge[i])));
        cr_expect_str_eq(fmt(parse(first)), first, "%s", edge[i]);
    }
}

Test(num, string_conversion_follows_aws_regex) {
    const char *ok[] = {"0", "-1.2", "5E-12", "1e2", "007"};
    const char *bad[] = {"+5", ".5", "5.", " 5", "1E+5", "5 ", "", "-", "1e"};
    sql_value v;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect_eq(sql__num_from_str(&c, ok[i], strlen(ok[i]), &v), 0, "'%s'", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_neq(sql__num_from_str(&c, bad[i], strlen(bad[i]), &v), 0, "'%s'", bad[i]);
    c.version = SQL_V2015_10_08;
    cr_assert_eq(sql__num_from_str(&c, "7", 1, &v), 0);
    cr_expect_eq(v.t, SQL_T_DEC, "a converted string is a Decimal");
}

Test(num, arithmetic_is_exact_decimal) {
    static const arith_case t[] = {
        {"0.1", "0.2", SQL_NUM_ADD, "0.3"},
        {"1.10", "2.205", SQL_NUM_ADD, "3.305"},
        {"9223372036854775807", "1", SQL_NUM_ADD, "9223372036854775808"},
        {"-9223372036854775807", "10", SQL_NUM_SUB, "-9223372036854775817"},
        {"9999999999999999999", "9999999999999999999", SQL_NUM_MUL,
         "99999999999999999980000000000000000001"},
        {"99999999999999999999", "99999999999999999999", SQL_NUM_MUL,
         "9.999999999999999999800000000000000E+39"},
        {"1.5", "3", SQL_NUM_DIV, "0.5"},
        {"7", "2.5", SQL_NUM_DIV, "2.8"},
        {"2", "3.5", SQL_NUM_DIV, "0.5714285714285714285714285714285714"},
        {"-7", "2", SQL_NUM_DIV, "-3"},
        {"7", "-2", SQL_NUM_MOD, "1"},
        {"-7", "2", SQL_NUM_MOD, "-1"},
        {"8.5", "3", SQL_NUM_MOD, "2.5"},
        {"1", "0", SQL_NUM_DIV, "<undef>"},
        {"1.5", "0", SQL_NUM_MOD, "<undef>"},
        {"1E+100", "1E-100", SQL_NUM_ADD, "1.000000000000000000000000000000000E+100"},
        {"0.000001", "0.000001", SQL_NUM_MUL, "1E-12"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sql_value a = parse(t[i].a), b = parse(t[i].b), r;
        cr_assert_eq(sql__num_arith(&c, t[i].op, &a, &b, &r), 0);
        cr_expect_str_eq(fmt(r), t[i].want, "%s op%d %s", t[i].a, t[i].op, t[i].b);
    }
}

Test(num, int_products_past_38_digits_become_decimal) {
    sql_value a = parse("99999999999999999999999999999999999999"), r;
    cr_assert_eq(sql__num_arith(&c, SQL_NUM_MUL, &a, &a, &r), 0);
    cr_expect_eq(r.t, SQL_T_DEC);
    cr_expect_str_eq(fmt(r), "1.000000000000000000000000000000000E+76");
}

Test(num, comparison_is_exact_across_forms) {
    static const struct {
        const char *a, *b;
        int want;
    } t[] = {
        {"1", "1.0", 0},          {"50.1", "50", 1},      {"-0.5", "0", -1},
        {"1E+100", "9E+99", 1},   {"1E-100", "0", 1},     {"12345678901234567890", "1.2E+19", 1},
        {"123456789012345678901234567890", "123456789012345678901234567891", -1},
        {"0.1", "0.10000000000000000001", -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sql_value a = parse(t[i].a), b = parse(t[i].b);
        cr_expect_eq(sql__num_cmp(&a, &b), t[i].want, "%s vs %s", t[i].a, t[i].b);
        cr_expect_eq(sql__num_cmp(&b, &a), -t[i].want, "%s vs %s", t[i].b, t[i].a);
    }
}

Test(num, doubles_use_the_shortest_round_trip_digits) {
    cr_expect_str_eq(fmt(sql__num_from_double(&c, 1.5707963267948966)), "1.5707963267948966");
    cr_expect_str_eq(fmt(sql__num_from_double(&c, 0.1 + 0.2)), "0.30000000000000004");
    cr_expect_str_eq(fmt(sql__num_from_double(&c, 32.0)), "32");
    cr_expect_eq(sql__num_from_double(&c, 1.0 / 0.0).t, SQL_T_UNDEF);
    c.version = SQL_V2015_10_08;
    cr_expect_str_eq(fmt(sql__num_from_double(&c, 32.0)), "32.0");
    cr_expect_str_eq(fmt(sql__num_from_double(&c, 0.0)), "0.0");
    cr_expect_eq(sql__num_to_double(&(sql_value){.t = SQL_T_DEC, .e = -1, .u.i = 23}), 2.3);
}

Test(num, rounding_modes) {
    static const struct {
        const char *in;
        int mode;
        const char *want;
    } t[] = {
        {"1.5", SQL_ROUND_HALF_UP, "2"},  {"-1.5", SQL_ROUND_HALF_UP, "-2"},
        {"1.49", SQL_ROUND_HALF_UP, "1"}, {"-1.2", SQL_ROUND_FLOOR, "-2"},
        {"-1.2", SQL_ROUND_CEIL, "-1"},   {"-2.7", SQL_ROUND_TRUNC, "-2"},
        {"0.5", SQL_ROUND_HALF_UP, "1"},  {"0.05", SQL_ROUND_HALF_UP, "0"},
        {"1E+3", SQL_ROUND_TRUNC, "1000"},
    };
    c.version = SQL_V2015_10_08; /* keep the inputs Decimal */
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sql_value v = parse(t[i].in);
        cr_expect_str_eq(fmt(sql__num_to_int(&c, &v, t[i].mode)), t[i].want, "%s mode %d",
                         t[i].in, t[i].mode);
    }
    sql_value v = parse("2.3123");
    cr_expect_str_eq(fmt(sql__num_trunc_places(&c, &v, 2)), "2.31");
    v = parse("2.00");
    cr_expect_str_eq(fmt(sql__num_trunc_places(&c, &v, 5)), "2");
}

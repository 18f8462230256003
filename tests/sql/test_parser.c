/* test_parser.c -- lexer tokens and spans, AST shapes and precedence, templates (lexer.c,
 * parser.c, diag.c). Diagnostics with carets are pinned by the golden files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sql_int.h"

static sql_ctx c;
static sql_diag d;

static void setup(void) {
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    sql__arena_init(&c.arena, 0);
    c.version = SQL_V2016_03_23;
}
static void teardown(void) { sql__arena_deinit(&c.arena); }
TestSuite(parser, .init = setup, .fini = teardown);

Test(parser, lexer_tokens_and_spans) {
    const char *s = "SELECT a.b, 'it''s' AS \"x\", 2.5e3 <> @v FROM '#'";
    sql_lexer lx;
    sql__lex_init(&lx, s, strlen(s), &d);
    static const struct {
        sql_tok_kind k;
        const char *text;
    } want[] = {{SQL_TK_IDENT, "SELECT"}, {SQL_TK_IDENT, "a"},      {SQL_TK_PUNCT, "."},
                {SQL_TK_IDENT, "b"},      {SQL_TK_PUNCT, ","},      {SQL_TK_STRING, "'it''s'"},
                {SQL_TK_IDENT, "AS"},     {SQL_TK_STRING, "\"x\""}, {SQL_TK_PUNCT, ","},
                {SQL_TK_NUMBER, "2.5e3"}, {SQL_TK_PUNCT, "<>"},     {SQL_TK_VAR, "@v"},
                {SQL_TK_IDENT, "FROM"},   {SQL_TK_STRING, "'#'"},   {SQL_TK_EOF, ""}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        sql_token t = sql__lex_next(&lx);
        cr_expect_eq(t.kind, want[i].k, "token %zu", i);
        cr_expect(t.len == strlen(want[i].text) && !memcmp(s + t.off, want[i].text, t.len),
                  "token %zu is '%.*s', want '%s'", i, (int)t.len, s + t.off, want[i].text);
    }
}

Test(parser, string_escapes_decode) {
    static const char *const t[][2] = {
        {"'it''s'", "it's"},       {"\"say \"\"hi\"\"\"", "say \"hi\""},
        {"'a\\nb\\t\\\\'", "a\nb\t\\"}, {"'\\u00e9\\ud83d\\ude00'", "é😀"},
        {"'\\''", "'"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sql_lexer lx;
        sql__lex_init(&lx, t[i][0], strlen(t[i][0]), &d);
        sql_token tok = sql__lex_next(&lx);
        cr_assert_eq(tok.kind, SQL_TK_STRING, "%s", t[i][0]);
        const char *s;
        size_t n;
        cr_assert_eq(sql__lex_string(&c.arena, t[i][0], &tok, &s, &n), SQL_OK);
        cr_expect(n == strlen(t[i][1]) && !memcmp(s, t[i][1], n), "%s -> '%.*s'", t[i][0],
                  (int)n, s);
    }
}

/* Renders an expression as a fully parenthesized string. */
static void show(const sql_node *e, char *b, size_t cap) {
    static const char *bins[] = {"+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=",
                                 "AND", "OR"};
    char x[256], y[256];
    switch (e->kind) {
    case SQL_N_FIELD: snprintf(b, cap, "%.*s", (int)e->name.n, e->name.s); break;
    case SQL_N_VAR: snprintf(b, cap, "@%.*s", (int)e->name.n, e->name.s); break;
    case SQL_N_LIT: {
        sql_buf w;
        sql__buf_init(&w);
        sql__json_write(&w, &e->v);
        snprintf(b, cap, "%.*s", (int)w.len, w.p);
        sql__buf_free(&w);
        break;
    }
    case SQL_N_MEMBER:
        show(e->kids[0], x, sizeof x);
        snprintf(b, cap, "%s.%.*s", x, (int)e->name.n, e->name.s);
        break;
    case SQL_N_INDEX:
        show(e->kids[0], x, sizeof x);
        show(e->kids[1], y, sizeof y);
        snprintf(b, cap, "%s[%s]", x, y);
        break;
    case SQL_N_UNARY:
        show(e->kids[0], x, sizeof x);
        snprintf(b, cap, "(%s %s)", e->op == SQL_U_NOT ? "NOT" : "-", x);
        break;
    case SQL_N_BINARY:
        show(e->kids[0], x, sizeof x);
        show(e->kids[1], y, sizeof y);
        snprintf(b, cap, "(%s %s %s)", x, bins[e->op], y);
        break;
    case SQL_N_CALL: snprintf(b, cap, "%.*s(%u args)", (int)e->name.n, e->name.s, e->nkids); break;
    case SQL_N_CASE: snprintf(b, cap, "CASE(%s,%u kids)", e->kids[0] ? "simple" : "searched", e->nkids); break;
    case SQL_N_SELECT: snprintf(b, cap, "SELECT(%u items)", e->sel->nitems); break;
    case SQL_N_ARRAY: snprintf(b, cap, "[%u]", e->nkids); break;
    case SQL_N_OBJECT: snprintf(b, cap, "{%u}", e->nkids); break;
    case SQL_N_CAST: snprintf(b, cap, "cast(%.*s)", (int)e->name.n, e->name.s); break;
    default: snprintf(b, cap, "?"); break;
    }
}

static const char *first_item(const char *sql) {
    static char out[512];
    sql_stmt *st;
    memset(&d, 0, sizeof d);
    int rc = sql__parse(&c, sql, strlen(sql), &st, &d);
    cr_assert_eq(rc, SQL_OK, "%s: %s", sql, d.msg);
    show(st->sel->items[0].expr, out, sizeof out);
    return out;
}

Test(parser, precedence_follows_standard_sql) {
    static const char *const t[][2] = {
        {"SELECT a OR b AND NOT c = d + e * -f FROM 't'",
         "(a OR (b AND (NOT (c = (d + (e * (- f)))))))"},
        {"SELECT 10 - 2 - 3 FROM 't'", "((10 - 2) - 3)"},
        {"SELECT a.b[0].c FROM 't'", "a.b[0].c"},
        {"SELECT (a + b) * c FROM 't'", "((a + b) * c)"},
        {"SELECT x <> y != z FROM 't'", "((x <> y) <> z)"},
        {"SELECT @v.k FROM 't'", "@v.k"},
        {"SELECT decode(x, 'base64').temperature FROM 't'", "decode(2 args).temperature"},
        {"SELECT a.value FROM 't'", "a.value"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_expect_str_eq(first_item(t[i][0]), t[i][1], "%s", t[i][0]);
}

Test(parser, constructs_build_their_nodes) {
    cr_expect_str_eq(first_item("SELECT CASE a WHEN 1 THEN 2 ELSE 3 END FROM 't'"),
                     "CASE(simple,4 kids)");
    cr_expect_str_eq(first_item("SELECT CASE WHEN a THEN 2 END FROM 't'"), "CASE(searched,3 kids)");
    cr_expect_str_eq(first_item("SELECT (SELECT v, w FROM e WHERE n = 1) FROM 't'"),
                     "SELECT(2 items)");
    cr_expect_str_eq(first_item("SELECT [1, 2, a] FROM 't'"), "[3]");
    cr_expect_str_eq(first_item("SELECT {'a': 1, b: 2} FROM 't'"), "{2}");
    cr_expect_str_eq(first_item("SELECT cast(a AS Boolean) FROM 't'"), "cast(Boolean)");
    cr_expect_str_eq(first_item("SELECT upper(*) FROM 't'"), "upper(1 args)");
}

Test(parser, statement_parts) {
    sql_stmt *st;
    const char *s = "SET @a = 1, @b = @a SELECT VALUE x FROM 'a/+' WHERE y";
    cr_assert_eq(sql__parse(&c, s, strlen(s), &st, &d), SQL_OK, "%s", d.msg);
    cr_expect_eq(st->nsets, 2);
    cr_expect(st->sel->value);
    cr_expect_eq(st->sel->nitems, 1);
    cr_expect(st->sel->from.n == 3 && !memcmp(st->sel->from.s, "a/+", 3));
    cr_expect_not_null(st->sel->where);
    s = "SELECT *, a AS 'my key', b AS c.d FROM topic/#";
    cr_assert_eq(sql__parse(&c, s, strlen(s), &st, &d), SQL_OK, "%s", d.msg);
    cr_expect_null(st->sel->items[0].expr);
    cr_expect(st->sel->items[1].alias.n == 6 && !memcmp(st->sel->items[1].alias.s, "my key", 6));
    cr_expect(st->sel->items[2].alias.n == 3 && !memcmp(st->sel->items[2].alias.s, "c.d", 3));
    cr_expect(st->sel->from.n == 7 && !memcmp(st->sel->from.s, "topic/#", 7));
    s = "SELECT a";
    cr_assert_eq(sql__parse(&c, s, strlen(s), &st, &d), SQL_OK, "FROM is optional");
}

Test(parser, version_gated_constructs) {
    const char *v2only[] = {"SELECT [1] FROM 't'", "SELECT {'a':1} FROM 't'",
                            "SELECT (SELECT a FROM b) FROM 't'",
                            "SELECT cast(1 AS Decimal) FROM 't'"};
    c.version = SQL_V2015_10_08;
    for (size_t i = 0; i < sizeof v2only / sizeof v2only[0]; i++) {
        sql_stmt *st;
        memset(&d, 0, sizeof d);
        cr_expect_eq(sql__parse(&c, v2only[i], strlen(v2only[i]), &st, &d), SQL_E_VERSION, "%s",
                     v2only[i]);
    }
}

Test(parser, errors_carry_line_and_column) {
    sql_stmt *st;
    const char *s = "SELECT a,\n  b\nFROM 't'\nWHERE (a = ";
    cr_assert_neq(sql__parse(&c, s, strlen(s), &st, &d), SQL_OK);
    cr_expect_eq(d.line, 4);
    cr_expect_eq(d.col, 12);
    cr_expect(strstr(d.msg, "expected an expression") != NULL, "%s", d.msg);
    char buf[256];
    sql_diag_format(&d, s, strlen(s), buf, sizeof buf);
    cr_expect_str_eq(buf, "error: line 4, column 12: unexpected end of statement, expected an "
                          "expression\nWHERE (a = \n           ^\n");
}

Test(parser, deep_nesting_is_a_limit_not_a_crash) {
    char s[4096];
    size_t n = (size_t)snprintf(s, sizeof s, "SELECT ");
    for (int i = 0; i < 1000; i++)
        s[n++] = '(';
    s[n++] = '1';
    for (int i = 0; i < 1000; i++)
        s[n++] = ')';
    n += (size_t)snprintf(s + n, sizeof s - n, " FROM 't'");
    sql_stmt *st;
    cr_expect_eq(sql__parse(&c, s, n, &st, &d), SQL_E_LIMIT);
}

Test(parser, templates_split_text_and_expressions) {
    const char *t = "$$aws/${topic(1)}/x-${ {'a': 1}.a }$y";
    sql_tpl_ast *ta;
    cr_assert_eq(sql__parse_template(&c, t, strlen(t), NULL, &ta, &d), SQL_OK, "%s", d.msg);
    cr_assert_eq(ta->nsegs, 5);
    cr_expect(ta->segs[0].expr == NULL && ta->segs[0].text.n == 5 &&
              !memcmp(ta->segs[0].text.s, "$aws/", 5));
    cr_expect_not_null(ta->segs[1].expr);
    cr_expect(ta->segs[2].text.n == 3 && !memcmp(ta->segs[2].text.s, "/x-", 3));
    cr_expect_not_null(ta->segs[3].expr);
    cr_expect(ta->segs[4].text.n == 2 && !memcmp(ta->segs[4].text.s, "$y", 2));
    memset(&d, 0, sizeof d);
    cr_expect_neq(sql__parse_template(&c, "a${}", 4, NULL, &ta, &d), SQL_OK);
    memset(&d, 0, sizeof d);
    cr_expect_neq(sql__parse_template(&c, "a${b", 4, NULL, &ta, &d), SQL_OK);
}

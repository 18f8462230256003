/*
 * test_file.c -- the file action: validation, the lines it writes, and how it classifies
 * errors.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "action.h"
#include "test_host.h"

static eng_host host;

static int open_file(const char *json, act_instance **out, eng_error *e) {
    host = act_test_host();
    cJSON *p = cJSON_Parse(json);
    cr_assert(p);
    act_config c = {.params = p, .rule_name = "r", .host = &host};
    const act_vtable *vt = act_lookup("file");
    cr_assert(vt);
    int rc = vt->open(&c, out, e);
    if (rc == 0)
        (*out)->vt = vt;
    cJSON_Delete(p);
    return rc;
}

static act_msg msg(const char *payload) {
    return (act_msg){.rule_name = "r", .payload = payload, .payload_len = strlen(payload)};
}

Test(file, rejects_relative_paths_templates_and_unknown_keys) {
    act_instance *a;
    eng_error e;
    cr_expect_neq(open_file("{\"path\": \"out.jsonl\"}", &a, &e), 0);
    cr_expect(strstr(e.message, "absolute"));
    cr_expect_neq(open_file("{\"path\": \"/tmp/${topic()}\"}", &a, &e), 0);
    cr_expect_neq(open_file("{\"path\": \"/tmp/x\", \"mode\": 1}", &a, &e), 0);
    cr_expect(strstr(e.message, "mode"));
    cr_expect_neq(open_file("{\"path\": \"/tmp/x\", \"fsync\": \"always\"}", &a, &e), 0);
}

Test(file, appends_one_line_per_message_in_order) {
    char path[] = "/tmp/sluice-file-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char json[200];
    snprintf(json, sizeof json, "{\"path\": \"%s\"}", path);
    act_instance *a;
    eng_error e;
    cr_assert_eq(open_file(json, &a, &e), 0, "%s", e.message);
    act_msg m1 = msg("{\"a\":1}"), m2 = msg("{\"b\":2}");
    const act_msg *b[] = {&m1, &m2};
    size_t done;
    char err[200];
    cr_expect_eq(a->vt->deliver(a, 0, b, 2, &done, err, sizeof err), ACT_OK);
    cr_expect_eq(done, 2);
    cr_expect_eq(a->vt->deliver(a, 0, b, 1, &done, err, sizeof err), ACT_OK);
    act_buf out = {0};
    cr_expect_eq(a->vt->format(a, b, 2, &out), 0);
    cr_expect_str_eq(out.p, "{\"a\":1}\n{\"b\":2}\n");
    act_buf_deinit(&out);
    a->vt->close(a);
    FILE *f = fopen(path, "r");
    char got[200] = "";
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
    unlink(path);
    cr_expect_str_eq(got, "{\"a\":1}\n{\"b\":2}\n{\"a\":1}\n");
}

Test(file, a_directory_is_a_permanent_failure_and_a_missing_one_transient) {
    act_instance *a;
    eng_error e;
    char err[200];
    size_t done;
    act_msg m = msg("x");
    const act_msg *b[] = {&m};
    cr_assert_eq(open_file("{\"path\": \"/tmp\"}", &a, &e), 0);
    cr_expect_eq(a->vt->deliver(a, 0, b, 1, &done, err, sizeof err), ACT_FAIL);
    cr_expect_eq(done, 0);
    a->vt->close(a);
    cr_assert_eq(open_file("{\"path\": \"/tmp/sluice-no-such-dir-here/x\"}", &a, &e), 0);
    cr_expect_eq(a->vt->deliver(a, 0, b, 1, &done, err, sizeof err), ACT_RETRY);
    cr_expect(strstr(err, "No such file"), "%s", err);
    a->vt->close(a);
}

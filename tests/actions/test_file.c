/*
 * test_file.c -- the file action: validation, where it may write (beneath the base directory,
 * never through a symlink, never into the data dir's stores or the certificate directory), the
 * JSON lines it writes whatever the output, and how it classifies errors.
 */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "action.h"
#include "file/file_int.h"
#include "test_host.h"

/* The layout of each test, beneath a fresh temporary directory T:
 *   T/base      actions.file.baseDir
 *   T/data      the data dir (T/data/out is where its default base would be)
 *   T/certs     actions.kafka.certDir
 *   T/outside   a directory no rule may write to */
static char tmp[64], base[128], data[128], certs[128], outside[128];
static eng_host host;

static int rm(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }

static void setup(void) {
    snprintf(tmp, sizeof tmp, "/tmp/sluice-file-XXXXXX");
    cr_assert(mkdtemp(tmp));
    snprintf(base, sizeof base, "%s/base", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(certs, sizeof certs, "%s/certs", tmp);
    snprintf(outside, sizeof outside, "%s/outside", tmp);
    mkdir(base, 0700);
    mkdir(data, 0700);
    mkdir(certs, 0700);
    mkdir(outside, 0700);
    host = act_test_host();
    host.file_base_dir = base;
    host.data_dir = data;
    host.cert_dir = certs;
}

static void teardown(void) { nftw(tmp, rm, 8, FTW_DEPTH | FTW_PHYS); }

TestSuite(file, .init = setup, .fini = teardown);

static int open_file(const char *json, act_instance **out, eng_error *e) {
    cJSON *p = cJSON_Parse(json);
    cr_assert(p);
    act_config c = {.params = p, .rule_name = "r", .host = &host};
    const act_vtable *vt = act_lookup("file");
    cr_assert(vt);
    memset(e, 0, sizeof *e);
    *out = NULL;
    int rc = vt->open(&c, out, e);
    if (rc == 0)
        (*out)->vt = vt;
    cJSON_Delete(p);
    return rc;
}

/* Opens {"path": path}; the instance, or NULL with the message in e. */
static act_instance *open_path(const char *path, eng_error *e) {
    char json[1200];
    snprintf(json, sizeof json, "{\"path\": \"%s\"}", path);
    act_instance *a;
    return open_file(json, &a, e) == 0 ? a : NULL;
}

static act_msg msg(const char *payload) {
    return (act_msg){.rule_name = "r", .payload = payload, .payload_len = strlen(payload)};
}

static act_result deliver1(act_instance *a, const char *payload, char *err, size_t cap) {
    act_msg m = msg(payload);
    const act_msg *b[] = {&m};
    size_t done = 99;
    act_result r = a->vt->deliver(a, 0, b, 1, &done, err, cap);
    cr_expect_eq(done, r == ACT_OK ? 1u : 0u);
    return r;
}

static char *slurp(const char *path) {
    static char got[4096];
    got[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
    return got;
}

Test(file, rejects_templates_unknown_keys_and_bad_values) {
    act_instance *a;
    eng_error e;
    cr_expect_neq(open_file("{\"path\": \"${topic()}\"}", &a, &e), 0);
    cr_expect(strstr(e.message, "cannot contain substitution templates"), "%s", e.message);
    cr_expect_neq(open_file("{\"path\": \"x\", \"mode\": 1}", &a, &e), 0);
    cr_expect(strstr(e.message, "unknown parameter \"mode\""), "%s", e.message);
    cr_expect_neq(open_file("{\"path\": \"x\", \"fsync\": \"always\"}", &a, &e), 0);
    cr_expect(strstr(e.message, "\"fsync\" must be one of batch, interval, none"), "%s",
              e.message);
}

/* The hole: the file action appended to any absolute path. */
Test(file, paths_outside_the_base_directory_are_refused) {
    char p[256];
    static const char *const bad[] = {"/etc/cron.d/sluice", "/tmp/x.jsonl", "../x.jsonl",
                                      "a/../../x.jsonl", "a/..", "..", ".", "a/", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eng_error e;
        act_instance *a = open_path(bad[i], &e);
        cr_expect_null(a, "accepted \"%s\"", bad[i]);
        cr_expect_eq(e.status, 400, "%s", bad[i]);
        if (a)
            a->vt->close(a);
    }
    eng_error e;
    snprintf(p, sizeof p, "%s/../outside/x.jsonl", base);
    cr_expect_null(open_path(p, &e), "%s", p);
    cr_expect(strstr(e.message, "may not contain \"..\""), "%s", e.message);
    snprintf(p, sizeof p, "%s/x.jsonl", outside);
    cr_expect_null(open_path(p, &e), "%s", p);
    cr_expect(strstr(e.message, "is not beneath the base directory"), "%s", e.message);
    cr_expect_null(open_path(base, &e));
    cr_expect(strstr(e.message, "names the base directory itself"), "%s", e.message);
}

Test(file, paths_beneath_the_base_directory_are_accepted_and_normalized) {
    char p[256];
    static const char *const rel[] = {"out.jsonl", "sub/out.jsonl", "./a//b.jsonl"};
    static const char *const want[] = {"out.jsonl", "sub/out.jsonl", "a/b.jsonl"};
    for (size_t i = 0; i < 3; i++) {
        eng_error e;
        act_instance *a = open_path(rel[i], &e);
        cr_assert_not_null(a, "%s: %s", rel[i], e.message);
        char full[256];
        snprintf(full, sizeof full, "%s/%s", base, want[i]);
        cr_expect_str_eq(a->resource, full);
        a->vt->close(a);
    }
    snprintf(p, sizeof p, "%s/x.jsonl", base);
    eng_error e;
    act_instance *a = open_path(p, &e);
    cr_assert_not_null(a, "absolute beneath the base: %s", e.message);
    cr_expect_str_eq(a->resource, p);
    a->vt->close(a);
}

Test(file, the_default_base_is_out_in_the_data_dir_and_is_created) {
    host.file_base_dir = "";
    eng_error e;
    act_instance *a = open_path("x.jsonl", &e);
    cr_assert_not_null(a, "%s", e.message);
    char want[256], err[256];
    snprintf(want, sizeof want, "%s/out/x.jsonl", data);
    cr_expect_str_eq(a->resource, want);
    cr_expect_eq(deliver1(a, "{\"a\":1}", err, sizeof err), ACT_OK, "%s", err);
    a->vt->close(a);
    cr_expect_str_eq(slurp(want), "{\"a\":1}\n");
}

/* A base directory that holds the data dir: only the data dir's out/ may be written. */
Test(file, the_data_dirs_stores_and_the_certificate_directory_are_never_written) {
    host.file_base_dir = tmp;
    static const char *const bad[] = {"data/rules/r.json", "data/deadletter/seg-1.jsonl",
                                      "data/journal/j", "data/shadows.db", "data/x",
                                      "certs/ca.pem"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eng_error e;
        act_instance *a = open_path(bad[i], &e);
        cr_expect_null(a, "accepted %s", bad[i]);
        cr_expect(strstr(e.message, "inside the"), "%s: %s", bad[i], e.message);
        if (a)
            a->vt->close(a);
    }
    eng_error e;
    act_instance *a = open_path("data/out/x.jsonl", &e);
    cr_assert_not_null(a, "%s", e.message);
    a->vt->close(a);
    /* the data dir reached through a symlink is the same place */
    char link[200];
    snprintf(link, sizeof link, "%s/data-link", tmp);
    cr_assert_eq(symlink(data, link), 0);
    host.data_dir = link;
    cr_expect_null(open_path("data/rules/r.json", &e));
}

/* A symlink inside the base directory pointing out, to a file or as an intermediate
 * directory: the open fails and nothing outside changes. */
Test(file, symlinks_beneath_the_base_are_never_followed) {
    char victim[200], dirlink[200], filelink[200], err[512];
    snprintf(victim, sizeof victim, "%s/victim", outside);
    FILE *f = fopen(victim, "w");
    fputs("untouched\n", f);
    fclose(f);
    snprintf(dirlink, sizeof dirlink, "%s/dir", base);
    snprintf(filelink, sizeof filelink, "%s/file", base);
    cr_assert_eq(symlink(outside, dirlink), 0);
    cr_assert_eq(symlink(victim, filelink), 0);
    static const char *const paths[] = {"file", "dir/victim", "dir/new.jsonl"};
    for (size_t i = 0; i < 3; i++) {
        eng_error e;
        act_instance *a = open_path(paths[i], &e);
        cr_assert_not_null(a, "%s: %s", paths[i], e.message);
        cr_expect_eq(deliver1(a, "{\"pwned\":true}", err, sizeof err), ACT_FAIL, "%s", paths[i]);
        cr_expect(strstr(err, "symbolic link"), "%s: %s", paths[i], err);
        a->vt->close(a);
    }
    cr_expect_str_eq(slurp(victim), "untouched\n");
    char created[200];
    snprintf(created, sizeof created, "%s/new.jsonl", outside);
    cr_expect_eq(access(created, F_OK), -1, "a file was created outside the base");
    /* both ways of opening refuse them */
    for (int how = ACT_FILE_OPEN_OPENAT2; how <= ACT_FILE_OPEN_WALK; how++) {
        for (size_t i = 0; i < 3; i++) {
            errno = 0;
            int fd = act_file__open_beneath(base, paths[i], how);
            cr_expect_eq(fd, -1, "how %d opened %s", how, paths[i]);
            cr_expect(errno == ELOOP || errno == ENOTDIR || errno == EXDEV, "how %d, %s: %s",
                      how, paths[i], strerror(errno));
        }
        int fd = act_file__open_beneath(base, "plain.jsonl", how);
        cr_expect_geq(fd, 0, "how %d: %s", how, strerror(errno));
        close(fd);
    }
    cr_expect_str_eq(slurp(victim), "untouched\n");
}

Test(file, fifos_and_hard_links_are_refused_without_blocking) {
    char fifo[200], linked[200], victim[200], err[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", base);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    snprintf(victim, sizeof victim, "%s/victim", outside);
    fclose(fopen(victim, "w"));
    snprintf(linked, sizeof linked, "%s/linked", base);
    cr_assert_eq(link(victim, linked), 0);
    eng_error e;
    act_instance *a = open_path("fifo", &e);
    cr_assert_not_null(a);
    cr_expect_eq(deliver1(a, "{}", err, sizeof err), ACT_FAIL);
    cr_expect(strstr(err, "not a regular file"), "%s", err);
    a->vt->close(a);
    a = open_path("linked", &e);
    cr_assert_not_null(a);
    cr_expect_eq(deliver1(a, "{}", err, sizeof err), ACT_FAIL);
    cr_expect(strstr(err, "other hard links"), "%s", err);
    a->vt->close(a);
    cr_expect_str_eq(slurp(victim), "");
}

Test(file, appends_one_line_per_message_in_order) {
    eng_error e;
    act_instance *a = open_path("out.jsonl", &e);
    cr_assert_not_null(a, "%s", e.message);
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
    char path[200];
    snprintf(path, sizeof path, "%s/out.jsonl", base);
    cr_expect_str_eq(slurp(path), "{\"a\":1}\n{\"b\":2}\n{\"a\":1}\n");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640);
}

/* The hole: a non-JSON output reached the file as raw bytes (a crontab line, a .so). Every
 * line is JSON now, whatever the rule outputs. */
Test(file, every_line_is_json_whatever_the_output) {
    static const char elf[] = "\x7f" "ELF\x02\x01\x01\x00\xff\xfe";
    static const struct {
        const char *payload;
        size_t len;
        const char *line;
    } t[] = {
        {"{\"a\": [1, 2]}", 13, "{\"a\": [1, 2]}\n"},
        {"{\"a\":\n 1}\r\n", 11, "{\"a\":  1}  \n"},
        {"42", 2, "42\n"},
        {"* * * * * root touch /tmp/pwned\n", 32, "\"* * * * * root touch /tmp/pwned\\n\"\n"},
        {"caf\xc3\xa9 \"q\"", 9, "\"caf\xc3\xa9 \\\"q\\\"\"\n"},
        {"{\"a\":1", 6, "\"{\\\"a\\\":1\"\n"},
        {elf, 10, "{\"base64\":\"f0VMRgIBAQD//g==\"}\n"},
        {"", 0, "\"\"\n"},
    };
    eng_error e;
    act_instance *a = open_path("lines.jsonl", &e);
    cr_assert_not_null(a, "%s", e.message);
    act_msg m[8];
    const act_msg *b[8];
    char want[1024] = "";
    for (size_t i = 0; i < 8; i++) {
        m[i] = (act_msg){.rule_name = "r", .payload = t[i].payload, .payload_len = t[i].len};
        b[i] = &m[i];
        act_buf one = {0};
        cr_assert_eq(a->vt->format(a, &b[i], 1, &one), 0);
        cr_expect_str_eq(one.p, t[i].line, "output %zu", i);
        act_buf_deinit(&one);
        strcat(want, t[i].line);
    }
    size_t done;
    char err[200];
    cr_assert_eq(a->vt->deliver(a, 0, b, 8, &done, err, sizeof err), ACT_OK, "%s", err);
    cr_expect_eq(done, 8);
    a->vt->close(a);
    char path[200];
    snprintf(path, sizeof path, "%s/lines.jsonl", base);
    char *got = slurp(path);
    cr_expect_str_eq(got, want);
    for (char *line = got; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert(nl);
        cr_expect(act_json_valid(line, (size_t)(nl - line)), "not JSON: %.*s", (int)(nl - line),
                  line);
        line = nl + 1;
    }
}

Test(file, a_directory_is_a_permanent_failure_and_a_missing_one_transient) {
    char sub[200], err[200];
    snprintf(sub, sizeof sub, "%s/adir", base);
    mkdir(sub, 0700);
    eng_error e;
    act_instance *a = open_path("adir", &e);
    cr_assert_not_null(a);
    cr_expect_eq(deliver1(a, "x", err, sizeof err), ACT_FAIL);
    a->vt->close(a);
    a = open_path("no-such-dir-here/x", &e);
    cr_assert_not_null(a);
    cr_expect_eq(deliver1(a, "x", err, sizeof err), ACT_RETRY);
    cr_expect(strstr(err, "No such file"), "%s", err);
    a->vt->close(a);
}

/* test_topic.c -- shadow request topics (engine/shadow/topic.c): which topics are requests, and
 * the answers' topics built from them. */
#include <criterion/criterion.h>
#include <string.h>

#include "shadow_int.h"

Test(shadow_topic, request_topics) {
    static const struct {
        const char *topic;
        int op;
        const char *thing, *shadow;
    } t[] = {
        {"$aws/things/lamp/shadow/update", ENG_SHADOW_UPDATE, "lamp", NULL},
        {"$aws/things/lamp/shadow/get", ENG_SHADOW_GET, "lamp", NULL},
        {"$aws/things/lamp/shadow/delete", ENG_SHADOW_DELETE, "lamp", NULL},
        {"$aws/things/my:Thing-_1/shadow/name/$cfg:1/update", ENG_SHADOW_UPDATE, "my:Thing-_1",
         "$cfg:1"},
        {"$aws/things/t/shadow/name/name/get", ENG_SHADOW_GET, "t", "name"},
        {"$aws/things/t/shadow/name/update/delete", ENG_SHADOW_DELETE, "t", "update"},
        /* names are checked when handled (a 400 on /rejected), not here */
        {"$aws/things/a b/shadow/get", ENG_SHADOW_GET, "a b", NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        eng_shadow_topic tp;
        cr_assert_eq(eng_shadow_topic_parse(t[i].topic, strlen(t[i].topic), &tp), 1, "%s",
                     t[i].topic);
        cr_expect_eq((int)tp.op, t[i].op, "%s", t[i].topic);
        cr_expect_eq(tp.thing_len, strlen(t[i].thing));
        cr_expect(!memcmp(tp.thing, t[i].thing, tp.thing_len), "%s", t[i].topic);
        if (t[i].shadow) {
            cr_assert_not_null(tp.shadow);
            cr_expect_eq(tp.shadow_len, strlen(t[i].shadow));
            cr_expect(!memcmp(tp.shadow, t[i].shadow, tp.shadow_len), "%s", t[i].topic);
        } else {
            cr_expect_null(tp.shadow);
            cr_expect_eq(tp.shadow_len, 0);
        }
    }
}

Test(shadow_topic, other_topics_are_not_requests) {
    static const char *const t[] = {
        "$aws/things/lamp/shadow/update/accepted",
        "$aws/things/lamp/shadow/update/rejected",
        "$aws/things/lamp/shadow/update/delta",
        "$aws/things/lamp/shadow/update/documents",
        "$aws/things/lamp/shadow/get/accepted",
        "$aws/things/lamp/shadow/name/cfg/delete/accepted",
        "$aws/things/lamp/shadow/name/update",
        "$aws/things/lamp/shadow/name//get",
        "$aws/things//shadow/get",
        "$aws/things/lamp/shadow/list",
        "$aws/things/lamp/shadow/",
        "$aws/things/lamp/shadow",
        "$aws/things/lamp/shadow/Update",
        "$AWS/things/lamp/shadow/get",
        "aws/things/lamp/shadow/get",
        "/$aws/things/lamp/shadow/get",
        "$aws/things/lamp/shadow/get/",
        "$aws/things/lamp/shadows/get",
        "$aws/thing/lamp/shadow/get",
        "$aws/things/lamp/shadow/named/cfg/get",
        "$aws/things/lamp/shadow/name/cfg/x/get",
        "$aws/things/+/shadow/get/extra/levels/here",
        "",
        "$aws",
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        eng_shadow_topic tp;
        cr_expect_eq(eng_shadow_topic_parse(t[i], strlen(t[i]), &tp), 0, "%s", t[i]);
    }
    /* a topic is its bytes: a NUL inside does not end it */
    eng_shadow_topic tp;
    cr_expect_eq(eng_shadow_topic_parse("$aws/things/a\0b/shadow/get", 26, &tp), 1);
    cr_expect_eq(tp.thing_len, 3);
}

Test(shadow_topic, filters_cover_every_request_topic) {
    size_t n = 0;
    while (eng_shadow_request_filters[n])
        n++;
    cr_expect_eq(n, 6);
    cr_expect_str_eq(eng_shadow_request_filters[0], "$aws/things/+/shadow/update");
    cr_expect_str_eq(eng_shadow_request_filters[5], "$aws/things/+/shadow/name/+/delete");
}

Test(shadow_topic, answer_topics) {
    eng_sbuf b = {0};
    eng__shadow_topic_build(&b, "lamp", 4, NULL, 0, ENG_SHADOW_UPDATE, "documents");
    cr_expect_str_eq(b.p, "$aws/things/lamp/shadow/update/documents");
    b.len = 0;
    eng__shadow_topic_build(&b, "lamp", 4, "cfg", 3, ENG_SHADOW_GET, "accepted");
    cr_expect_str_eq(b.p, "$aws/things/lamp/shadow/name/cfg/get/accepted");
    b.len = 0;
    eng__shadow_topic_build(&b, "lamp", 4, "cfg", 3, ENG_SHADOW_DELETE, NULL);
    cr_expect_str_eq(b.p, "$aws/things/lamp/shadow/name/cfg/delete");
    eng__sbuf_deinit(&b);
    /* the longest names fit AWS's 256-byte topic limit: 7 slashes, 234 bytes */
    char thing[129], shadow[65];
    memset(thing, 't', 128);
    thing[128] = '\0';
    memset(shadow, 's', 64);
    shadow[64] = '\0';
    eng__shadow_topic_build(&b, thing, 128, shadow, 64, ENG_SHADOW_UPDATE, "documents");
    cr_expect_eq(b.len, 234);
    eng__sbuf_deinit(&b);
}

Test(shadow_topic, name_patterns) {
    cr_expect(eng__shadow_thing_valid("a", 1));
    cr_expect(eng__shadow_thing_valid("A-z_0:9", 7));
    cr_expect(!eng__shadow_thing_valid("$a", 2));
    cr_expect(!eng__shadow_thing_valid("a.b", 3));
    cr_expect(!eng__shadow_thing_valid("", 0));
    cr_expect(eng__shadow_name_valid("$a", 2));
    cr_expect(!eng__shadow_name_valid("a+", 2));
    cr_expect(!eng__shadow_name_valid("\xc3\xa9", 2));
}

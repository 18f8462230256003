/* test_topic.c -- topic filter validation and matching (sql/topic.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "sql.h"

typedef struct {
    const char *filter, *topic;
    int match;
} match_case;

static const match_case matches[] = {
    {"topic/subtopic", "topic/subtopic", 1},
    {"topic/subtopic", "topic/subtopic-2", 0},
    {"topic/+", "topic/subtopic", 1},
    {"topic/+", "topic/subtopic-3/details", 0},
    {"topic/+", "topic-2/subtopic-x", 0},
    {"topic/#", "topic/subtopic", 1},
    {"topic/#", "topic/subtopic-3/details", 1},
    {"topic/#", "topic-2/subtopic-x", 0},
    {"topic/#", "topic", 1}, /* MQTT 3.1.1: the parent level matches too */
    {"sensor/#", "sensor/", 1},
    {"sensor/+/room1", "sensor/temperature/room1", 1},
    {"sensor/+/room1", "sensor/humidity/room2", 0},
    {"sensor/#", "Sensor/temperature", 0},
    {"sensor/+/#", "sensor/temperature/room1", 1},
    {"sensor/+/#", "sensor/temperature", 1},
    {"sensor/+/#", "sensor", 0},
    {"+", "a", 1},
    {"+", "a/b", 0},
    {"+", "", 1},
    {"+/+", "/x", 1},
    {"a/+", "a/", 1},
    {"a/+", "a", 0},
    {"#", "a/b/c", 1},
    {"#", "$SYS/x", 0},
    {"+/x", "$SYS/x", 0},
    {"$SYS/#", "$SYS/x", 1},
    {"$aws/things/+/shadow/update/delta", "$aws/things/MyThing/shadow/update/delta", 1},
    {"a/b", "a/b/", 0},
    {"a/b/", "a/b/", 1},
    {"a//b", "a//b", 1},
    {"a/+/b", "a//b", 1},
};

Test(topic, matches_table) {
    for (size_t i = 0; i < sizeof matches / sizeof matches[0]; i++) {
        const match_case *c = &matches[i];
        int got = sql_topic_matches(c->filter, strlen(c->filter), c->topic, strlen(c->topic));
        cr_expect_eq(got, c->match, "filter '%s' topic '%s': got %d want %d", c->filter,
                     c->topic, got, c->match);
    }
}

Test(topic, filter_check_accepts_valid_filters) {
    const char *ok[] = {"a", "a/b", "+", "#", "a/#", "a/+/b", "+/+/#", "$aws/things/+/shadow",
                        "a/b/c/d/e/f/g/h"};
    char msg[128];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect_eq(sql_topic_filter_check(ok[i], strlen(ok[i]), msg, sizeof msg), SQL_OK,
                     "%s: %s", ok[i], msg);
}

Test(topic, filter_check_rejects_invalid_filters) {
    const char *bad[] = {"", "a/#/b", "a/b#", "a+/b", "sensor/temp#", "sensor/+room/x", "##",
                         "a/b/c/d/e/f/g/h/i"};
    char msg[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = '\0';
        cr_expect_neq(sql_topic_filter_check(bad[i], strlen(bad[i]), msg, sizeof msg), SQL_OK,
                      "'%s' should be rejected", bad[i]);
        cr_expect(msg[0] != '\0', "'%s' rejected without a message", bad[i]);
    }
}

Test(topic, filter_check_rejects_overlong_filter) {
    char f[300];
    memset(f, 'a', sizeof f);
    char msg[128];
    cr_expect_neq(sql_topic_filter_check(f, 257, msg, sizeof msg), SQL_OK);
    cr_expect_eq(sql_topic_filter_check(f, 256, msg, sizeof msg), SQL_OK);
}

/* test-dialect.c — the table of version-dependent behaviour (sql/dialect.h):
 * version parsing, each feature at the version before and at the first
 * version with it, and the settings and data path picked per node or pair. */
#include <stdlib.h>
#include <string.h>

#include "chcopier/config/task.h"
#include "chcopier/sql/dialect.h"
#include "tap.h"

static unsigned ver(const char *s)
{
    struct chc_err e = CHC_ERR_INIT;
    unsigned v = 0;

    if (dialect_parse_version(s, &v, &e) < 0) {
        printf("# %s\n", e.msg);
        return 0;
    }
    return v;
}

TEST(parse_versions)
{
    struct chc_err e = CHC_ERR_INIT;
    unsigned v = 7;

    ASSERT_EQ(ver("18.16.1"), 18016001);
    ASSERT_EQ(ver("26.7.2.1"), 26007002);
    ASSERT_EQ(ver("24.3.18.7"), 24003018);
    ASSERT_EQ(ver("22.10"), 22010000);
    ASSERT_EQ(ver("23.8.1.2992-testing"), 23008001);
    ASSERT(ver("24.3.1") > ver("23.12.9"));
    ASSERT(dialect_parse_version("", &v, &e) == CHC_EPARSE && v == 7);
    ASSERT(strstr(e.msg, "cannot read the server version") != NULL);
    ASSERT(dialect_parse_version("x.1", &v, &e) == CHC_EPARSE);
    ASSERT(dialect_parse_version("18", &v, &e) == CHC_EPARSE);
    ASSERT(dialect_parse_version("18.1000", &v, &e) == CHC_EPARSE);
    ASSERT(dialect_parse_version(NULL, &v, &e) == CHC_EPARSE && v == 7);
}

/* Each feature: absent on the version before, present from its first. */
TEST(feature_boundaries)
{
    static const struct {
        enum dialect_feature f;
        const char *before, *first;
    } cases[] = {
        {DIALECT_FOREGROUND_INSERT, "23.10.5.20", "23.11.1.2711"},
        {DIALECT_ALTER_SYNC, "23.2.7.32", "23.3.1.2823"},
        {DIALECT_ANALYZER_SETTING, "22.10.7.13", "22.11.1.1360"},
        {DIALECT_FORWARDS_ANALYZER, "24.2.3.70", "24.3.18.7"},
        {DIALECT_STRICT_ATTACH, "23.9.6.20", "23.10.1.1976"},
        {DIALECT_DROP_LIMIT_SETTING, "23.11.5.29", "23.12.1.1368"},
        {DIALECT_CREATE_UUID, "20.9.7.11", "20.10.2.20"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ASSERT(!dialect_has(ver(cases[i].before), cases[i].f));
        ASSERT(dialect_has(ver(cases[i].first), cases[i].f));
        ASSERT(dialect_has(ver("26.7.2.1"), cases[i].f));
        /* 18.16 (and a version not known) has none of them: the tested path */
        ASSERT(!dialect_has(ver("18.16.1"), cases[i].f));
        ASSERT(!dialect_has(0, cases[i].f));
    }
}

TEST(setting_names)
{
    ASSERT_STREQ(dialect_setting_name(ver("18.16.1"), DIALECT_SET_FOREGROUND_INSERT),
                 "insert_distributed_sync");
    ASSERT_STREQ(dialect_setting_name(ver("26.7.2.1"), DIALECT_SET_FOREGROUND_INSERT),
                 "distributed_foreground_insert");
    ASSERT_STREQ(dialect_setting_name(ver("22.8.1"), DIALECT_SET_ALTER_SYNC),
                 "replication_alter_partitions_sync");
    ASSERT_STREQ(dialect_setting_name(ver("24.8.1"), DIALECT_SET_ALTER_SYNC), "alter_sync");
}

TEST(known_names)
{
    ASSERT_STREQ(dialect_known_name(ver("18.16.1"), "distributed_foreground_insert"),
                 "insert_distributed_sync");
    ASSERT_STREQ(dialect_known_name(0, "alter_sync"), "replication_alter_partitions_sync");
    ASSERT(dialect_known_name(ver("23.11.1"), "distributed_foreground_insert") == NULL);
    ASSERT(dialect_known_name(ver("18.16.1"), "insert_distributed_sync") == NULL);
    ASSERT(dialect_known_name(ver("18.16.1"), "max_threads") == NULL);
    ASSERT(dialect_known_name(ver("18.16.1"), NULL) == NULL);
}

TEST(route_settings)
{
    const struct cfg_settings *old = dialect_route_settings(ver("18.16.1"));
    const struct cfg_settings *cur = dialect_route_settings(ver("26.7.2.1"));

    ASSERT(old->n == 4 && !strcmp(old->items[0].name, "insert_distributed_sync") &&
           !strcmp(old->items[0].value, "1"));
    ASSERT(!strcmp(old->items[1].name, "prefer_localhost_replica") &&
           !strcmp(old->items[1].value, "0"));
    ASSERT(!strcmp(old->items[2].name, "load_balancing") &&
           !strcmp(old->items[2].value, "in_order"));
    ASSERT(!strcmp(old->items[3].name, "receive_timeout") && atoi(old->items[3].value) == 60);
    ASSERT(cur->n == 4 && !strcmp(cur->items[0].name, "distributed_foreground_insert") &&
           !strcmp(cur->items[0].value, "1"));
    ASSERT(!strcmp(cur->items[2].name, "load_balancing"));
    ASSERT(!strcmp(cur->items[3].name, "receive_timeout") && atoi(cur->items[3].value) == 60);
    ASSERT(dialect_route_settings(0) == old);
}

TEST(drop_settings)
{
    const struct cfg_settings *d = dialect_drop_settings(ver("26.7.2.1"));

    ASSERT_EQ(dialect_drop_settings(ver("18.16.1"))->n, 0);
    ASSERT_EQ(dialect_drop_settings(ver("23.11.9"))->n, 0);
    ASSERT(d->n == 2 && !strcmp(d->items[0].name, "max_table_size_to_drop") &&
           !strcmp(d->items[0].value, "0"));
    ASSERT(!strcmp(d->items[1].name, "max_partition_size_to_drop") &&
           !strcmp(d->items[1].value, "0"));
}

/* remote() from a destination that forwards allow_experimental_analyzer to
 * a source that does not know it is refused: the pair takes the pipe. */
TEST(remote_pairs)
{
    char why[200] = "";

    ASSERT(dialect_remote_ok(ver("18.16.1"), ver("18.16.1"), why, sizeof(why)));
    ASSERT(dialect_remote_ok(ver("24.2.1"), ver("18.16.1"), why, sizeof(why)));
    ASSERT(dialect_remote_ok(ver("26.7.2.1"), ver("22.11.1"), why, sizeof(why)));
    ASSERT(dialect_remote_ok(ver("18.16.1"), ver("26.7.2.1"), why, sizeof(why)));
    ASSERT_STREQ(why, "");
    ASSERT(!dialect_remote_ok(ver("24.3.18.7"), ver("22.10.7.13"), why, sizeof(why)));
    ASSERT_STREQ(why, "a destination of 24.3 or later sends allow_experimental_analyzer "
                      "through remote(), which a source before 22.11 refuses");
    ASSERT(!dialect_remote_ok(ver("26.7.2.1"), ver("18.16.1"), NULL, 0));
}

TAP_MAIN()

/* test-task.c — task XML and zookeeper.xml parsing: every element, every bad
 * input named by issue #3. Bad inputs are built by editing a good task, so
 * each test shows exactly what is wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/config/zkconf.h"
#include "config.h"
#include "tap.h"

#define DATA CHC_SOURCE_ROOT "/tests/unit/data/"

static const char *minimal =
    "<clickhouse><remote_servers>"
    "<src><shard><replica><host>h1</host><port>9000</port></replica></shard></src>"
    "<dst><shard><replica><host>h2</host><port>9000</port></replica></shard></dst>"
    "</remote_servers><max_workers>2</max_workers><tables><t>"
    "<cluster_pull>src</cluster_pull><database_pull>db</database_pull>"
    "<table_pull>a</table_pull><cluster_push>dst</cluster_push>"
    "<database_push>db</database_push><table_push>b</table_push>"
    "<engine>ENGINE = MergeTree PARTITION BY d ORDER BY k</engine>"
    "<sharding_key>rand()</sharding_key></t></tables></clickhouse>";

/* Replace every occurrence of `from` in the minimal task with `to`. */
static char *edited(const char *from, const char *to)
{
    const char *s = minimal, *p = strstr(s, from);
    struct chc_buf b = CHC_BUF_INIT;

    if (!p)
        abort();
    for (; p; s = p + strlen(from), p = strstr(s, from))
        if (chc_buf_add(&b, s, (size_t)(p - s)) < 0 || chc_buf_addstr(&b, to) < 0)
            abort();
    if (chc_buf_addstr(&b, s) < 0)
        abort();
    return chc_buf_take(&b, NULL);
}

static int parse_edited(const char *from, const char *to, struct chc_err *err)
{
    struct cfg_task *t = NULL;
    char *x = edited(from, to);
    int r = cfg_task_parse(x, strlen(x), "task.xml", &t, err);

    free(x);
    cfg_task_free(t);
    return r;
}

#define ASSERT_BAD(from, to, needle)                                                 \
    do {                                                                             \
        struct chc_err e_ = CHC_ERR_INIT;                                            \
        ASSERT_EQ(parse_edited(from, to, &e_), CHC_ECONFIG);                         \
        ASSERT_CONTAINS(e_.msg, "task.xml");                                         \
        ASSERT_CONTAINS(e_.msg, needle);                                             \
        ASSERT(strchr(e_.msg, '\n') == NULL);                                        \
    } while (0)

TEST(full_task_every_element)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    const struct cfg_table *tb;
    const struct cfg_cluster *c;

    ASSERT_OK(cfg_task_load_file(DATA "task-full.xml", &t, NULL, &e));
    ASSERT_EQ(t->n_clusters, 2);
    ASSERT_EQ(t->max_workers, 4);
    c = cfg_task_cluster(t, "source_cluster");
    ASSERT_NOT_NULL(c);
    ASSERT_EQ(c->n_shards, 2);
    ASSERT_EQ(c->shards[0].num, 1);
    ASSERT_EQ(c->shards[0].weight, 1);
    ASSERT_EQ(c->shards[1].weight, 2);
    ASSERT_EQ(cfg_cluster_total_weight(c), 3);
    ASSERT_STREQ(c->shards[0].replicas[0].host, "127.0.0.1");
    ASSERT_EQ(c->shards[0].replicas[0].http_port, 8123);
    ASSERT_EQ(c->shards[1].replicas[0].secure, 1);
    ASSERT_EQ(c->shards[1].replicas[0].port, 9440);
    ASSERT_EQ(c->shards[1].replicas[0].http_port, 8443);
    ASSERT_STREQ(c->shards[1].replicas[0].user, "reader");
    ASSERT_STREQ(c->shards[1].replicas[0].password, "s3cret");
    c = cfg_task_cluster(t, "destination_cluster");
    ASSERT_EQ(c->n_shards, 2);
    ASSERT_EQ(c->shards[0].internal_replication, 1);
    ASSERT_EQ(c->shards[0].n_replicas, 2);
    ASSERT_EQ(c->shards[0].replicas[1].http_port, 18124);
    ASSERT_EQ(c->shards[0].replicas[1].port, 19001);
    ASSERT_EQ(c->shards[1].n_replicas, 1);
    ASSERT_STREQ(c->shards[1].replicas[0].host, "d2");
    ASSERT_STREQ(cfg_settings_get(&t->settings, "connect_timeout"), "3");
    ASSERT_STREQ(cfg_settings_get(&t->settings_pull, "readonly"), "1");
    ASSERT_STREQ(cfg_settings_get(&t->settings_push, "readonly"), "0");
    ASSERT_NULL(cfg_settings_get(&t->settings_push, "nope"));

    ASSERT_EQ(t->n_tables, 2);
    tb = &t->tables[0];
    ASSERT_STREQ(tb->name, "table_hits");
    ASSERT_STREQ(tb->database_pull, "test");
    ASSERT_STREQ(tb->table_push, "hits2");
    ASSERT(tb->pull == cfg_task_cluster(t, "source_cluster"));
    ASSERT(tb->push == cfg_task_cluster(t, "destination_cluster"));
    ASSERT_EQ(tb->engine->replicated, 1);
    ASSERT_STREQ(tb->engine->partition_by, "toMonday(date)");
    ASSERT_EQ(tb->engine->n_key_columns, 2);
    ASSERT_STREQ(tb->sharding_key, "jumpConsistentHash(intHash64(UserID), 2)");
    ASSERT_STREQ(tb->where_condition, "CounterID != 0");
    ASSERT_EQ(tb->has_enabled_partitions, 1);
    ASSERT_EQ(tb->n_enabled_partitions, 2);
    ASSERT_STREQ(tb->enabled_partitions[0], "'2018-02-26'");
    ASSERT_STREQ(tb->enabled_partitions[1], "'2018-03-05'");
    ASSERT_EQ(tb->number_of_splits, 7);
    ASSERT_EQ(tb->allow_alias_materialized, 1);
    ASSERT_EQ(tb->allow_drop_target_partitions, 1);

    tb = &t->tables[1];
    ASSERT_STREQ(tb->name, "table_visits");
    ASSERT_NULL(tb->where_condition);
    ASSERT_EQ(tb->number_of_splits, CFG_SPLITS_DEFAULT);
    ASSERT_EQ(tb->n_enabled_partitions, 3);
    ASSERT_STREQ(tb->enabled_partitions[2], "201803");
    ASSERT_EQ(tb->allow_alias_materialized, 0);
    ASSERT_EQ(tb->allow_drop_target_partitions, 0);
    ASSERT_EQ(tb->engine->n_key_columns, 0);
    ASSERT(strcmp(t->tables[0].def_hash_hex, tb->def_hash_hex) != 0);
    cfg_task_free(t);
}

TEST(yandex_root_and_minimal_defaults)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    char *x = edited("clickhouse>", "yandex>");

    ASSERT_OK(cfg_task_parse(x, strlen(x), "task.xml", &t, &e));
    ASSERT_EQ(t->tables[0].number_of_splits, 3);
    ASSERT_EQ(t->tables[0].has_enabled_partitions, 0);
    cfg_task_free(t);
    free(x);
}

TEST(definition_hash_follows_where_condition)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *a = NULL, *b = NULL, *c = NULL;
    char *x = edited("<sharding_key>", "<where_condition>k > 1</where_condition><sharding_key>");
    char *y = edited("<sharding_key>", "<max_workers>9</max_workers><sharding_key>");

    ASSERT_OK(cfg_task_parse(minimal, strlen(minimal), "m", &a, &e));
    ASSERT_OK(cfg_task_parse(x, strlen(x), "x", &b, &e));
    ASSERT(a->tables[0].def_hash != b->tables[0].def_hash);
    /* Settings-like noise inside the table does not change the hash. */
    ASSERT_OK(cfg_task_parse(y, strlen(y), "y", &c, &e));
    ASSERT_EQ(a->tables[0].def_hash, c->tables[0].def_hash);
    cfg_task_free(a);
    cfg_task_free(b);
    cfg_task_free(c);
    free(x);
    free(y);
}

TEST(bad_malformed_xml_has_line)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    const char *x = "<clickhouse>\n<remote_servers>\n</oops>\n</clickhouse>";

    ASSERT_EQ(cfg_task_parse(x, strlen(x), "task.xml", &t, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "task.xml:3: malformed XML");
    ASSERT_EQ(cfg_task_parse("", 0, "task.xml", &t, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "empty document");
}

TEST(bad_encoding_message_is_one_line)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    const char *x = "<clickhouse>\x9b\x63</clickhouse>";

    ASSERT_EQ(cfg_task_parse(x, strlen(x), "task.xml", &t, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "task.xml:1: malformed XML");
    ASSERT(strchr(e.msg, '\n') == NULL);
}

TEST(bad_root)
{
    ASSERT_BAD("clickhouse>", "config>", "root element must be <clickhouse> or <yandex>");
}

TEST(bad_unknown_cluster)
{
    ASSERT_BAD("<cluster_push>dst<", "<cluster_push>nope<",
               "<tables/t/cluster_push>: unknown cluster 'nope'");
    ASSERT_BAD("<cluster_pull>src<", "<cluster_pull>x<", "unknown cluster 'x'");
}

TEST(bad_missing_required_elements)
{
    ASSERT_BAD("<table_pull>a</table_pull>", "", "<tables/t/table_pull> is required");
    ASSERT_BAD("<database_push>db</database_push>", "<database_push> </database_push>",
               "<tables/t/database_push> is required");
    ASSERT_BAD("<max_workers>2</max_workers>", "", "<max_workers> is required");
    ASSERT_BAD("<sharding_key>rand()</sharding_key>", "", "<tables/t/sharding_key> is required");
    ASSERT_BAD("<engine>ENGINE = MergeTree PARTITION BY d ORDER BY k</engine>", "",
               "<tables/t/engine> is required");
    ASSERT_BAD("tables>", "tablez>", "<tables> is required");
}

TEST(bad_remote_servers)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    char *x = edited("remote_servers>", "remote_serverz>");

    ASSERT_EQ(cfg_task_parse(x, strlen(x), "task.xml", &t, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "<remote_servers> is required");
    free(x);
    ASSERT_BAD("<port>9000</port></replica></shard></src>",
               "<port>9001</port></replica></shard></src>",
               "native port 9001 has no known HTTP port; add <http_port>");
    ASSERT_BAD("<port>9000</port></replica></shard></src>",
               "<port>99999</port></replica></shard></src>", "port> must be an integer");
    ASSERT_BAD("<shard><replica><host>h1</host><port>9000</port></replica></shard>",
               "<shard></shard>", "has no <replica>");
    ASSERT_BAD("<host>h1</host>", "", "<remote_servers/src/shard/replica/host> is required");
}

TEST(bad_number_of_splits)
{
    ASSERT_BAD("<sharding_key>", "<number_of_splits>0</number_of_splits><sharding_key>",
               "<tables/t/number_of_splits> must be an integer in [1, 1024], got '0'");
    ASSERT_BAD("<sharding_key>", "<number_of_splits>100000</number_of_splits><sharding_key>",
               "number_of_splits");
    ASSERT_BAD("<sharding_key>", "<number_of_splits>three</number_of_splits><sharding_key>",
               "got 'three'");
    ASSERT_BAD("<max_workers>2<", "<max_workers>0<", "<max_workers> must be an integer");
}

TEST(bad_engine)
{
    ASSERT_BAD("ENGINE = MergeTree PARTITION BY d ORDER BY k", "ENGINE = Log",
               "<tables/t/engine>: engine 'Log' is not supported");
    ASSERT_BAD("ENGINE = MergeTree PARTITION BY d ORDER BY k", "MergeTree(d, (k), 8192)",
               "old-syntax");
}

TEST(bad_duplicates)
{
    ASSERT_BAD("</t></tables>",
               "</t><t><cluster_pull>src</cluster_pull><database_pull>db</database_pull>"
               "<table_pull>a</table_pull><cluster_push>dst</cluster_push>"
               "<database_push>db</database_push><table_push>c</table_push>"
               "<engine>MergeTree ORDER BY k</engine><sharding_key>1</sharding_key></t>"
               "</tables>",
               "<tables/t> is defined twice");
    ASSERT_BAD("</t></tables>",
               "</t><u><cluster_pull>src</cluster_pull><database_pull>db</database_pull>"
               "<table_pull>a</table_pull><cluster_push>dst</cluster_push>"
               "<database_push>db</database_push><table_push>b</table_push>"
               "<engine>MergeTree ORDER BY k</engine><sharding_key>1</sharding_key></u>"
               "</tables>",
               "copy the same source into the same destination");
    ASSERT_BAD("<sharding_key>",
               "<enabled_partitions>1 2 1</enabled_partitions><sharding_key>",
               "partition 1 is listed twice");
    ASSERT_BAD("</src>", "</src><src><node><host>x</host></node></src>", "defined twice");
}

TEST(data_path_element)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    char *x = edited("<sharding_key>", "<data_path>pipe</data_path><sharding_key>");

    ASSERT_OK(cfg_task_parse(minimal, strlen(minimal), "m", &t, &e));
    ASSERT_EQ(t->tables[0].data_path, CFG_PATH_PULL);
    t = cfg_task_free(t);
    ASSERT_OK(cfg_task_parse(x, strlen(x), "x", &t, &e));
    ASSERT_EQ(t->tables[0].data_path, CFG_PATH_PIPE);
    cfg_task_free(t);
    free(x);
    ASSERT_BAD("<sharding_key>", "<data_path>carrier pigeon</data_path><sharding_key>",
               "<tables/t/data_path> must be pull or pipe");
}

TEST(bad_booleans_and_partitions)
{
    ASSERT_BAD("<sharding_key>",
               "<allow_to_drop_target_partitions>maybe</allow_to_drop_target_partitions>"
               "<sharding_key>",
               "<tables/t/allow_to_drop_target_partitions> must be true/false");
    ASSERT_BAD("<sharding_key>",
               "<enabled_partitions><p>1</p></enabled_partitions><sharding_key>",
               "children must be <partition> elements");
}

/* Partition literals and host names reach SQL: only what ClickHouse itself
 * prints passes. */
TEST(bad_partition_literals_and_hosts)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    char *x = edited("<sharding_key>",
                     "<enabled_partitions><partition>201801</partition><partition>"
                     "'2018-01-01'</partition><partition>(1, 'a\\'b')</partition>"
                     "<partition>-3</partition><partition>tuple()</partition>"
                     "<partition>1.5e-3</partition></enabled_partitions><sharding_key>");

    ASSERT_OK(cfg_task_parse(x, strlen(x), "x", &t, &e));
    ASSERT_EQ(t->tables[0].n_enabled_partitions, 6);
    cfg_task_free(t);
    free(x);
    ASSERT_BAD("<sharding_key>",
               "<enabled_partitions><partition>1) OR (1 = 1</partition></enabled_partitions>"
               "<sharding_key>",
               "'1) OR (1 = 1' is not a partition literal");
    ASSERT_BAD("<sharding_key>",
               "<enabled_partitions><partition>'a\tb'</partition></enabled_partitions>"
               "<sharding_key>",
               "is not a partition literal");
    ASSERT_BAD("<sharding_key>",
               "<enabled_partitions><partition>'open</partition></enabled_partitions>"
               "<sharding_key>",
               "is not a partition literal");
    ASSERT_BAD("<sharding_key>", "<enabled_partitions>201801 x</enabled_partitions><sharding_key>",
               "'x' is not a partition literal");
    ASSERT_BAD("<host>h1</host>", "<host>h1', 'x</host>", "<remote_servers/src/shard/replica/host>");
    ASSERT_BAD("<host>h1</host>", "<host>a b</host>", "is not a host name");
}

TEST(unreadable_file)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;

    ASSERT(cfg_task_load_file("/nonexistent/task.xml", &t, NULL, &e) < 0);
    ASSERT_CONTAINS(e.msg, "/nonexistent/task.xml: cannot read");
}

TEST(zookeeper_xml)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_zk *z = NULL;

    ASSERT_OK(cfg_zk_load_file(DATA "zookeeper.xml", &z, &e));
    ASSERT_STREQ(z->hosts, "127.0.0.1:2181,zk2:2182");
    ASSERT_EQ(z->session_timeout_ms, 15000);
    ASSERT_STREQ(z->root, "/chroot");
    ASSERT_STREQ(z->identity, "user:pass");
    ASSERT_STREQ(z->log_level, "trace");
    cfg_zk_free(z);
}

TEST(zookeeper_xml_bad)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_zk *z = NULL;
    const char *a = "<yandex><zookeeper></zookeeper></yandex>";
    const char *b = "<yandex></yandex>";
    const char *c = "<yandex><zookeeper><node><host>h</host><port>x</port></node>"
                    "</zookeeper></yandex>";
    const char *d = "<yandex><zookeeper><node><host>h</host></node><root>rel</root>"
                    "</zookeeper></yandex>";

    ASSERT_EQ(cfg_zk_parse(a, strlen(a), "zk.xml", &z, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "zk.xml: <zookeeper> has no <node>");
    ASSERT_EQ(cfg_zk_parse(b, strlen(b), "zk.xml", &z, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "no <zookeeper> element");
    ASSERT_EQ(cfg_zk_parse(c, strlen(c), "zk.xml", &z, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "<zookeeper/node/port> must be an integer");
    ASSERT_EQ(cfg_zk_parse(d, strlen(d), "zk.xml", &z, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "<zookeeper/root> must start with '/'");
}

TAP_MAIN()

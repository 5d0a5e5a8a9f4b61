/* test-sql.c — every statement chcopier sends, against golden strings: the
 * copy (pull and pipe), cleaning, table DDL and column lists, the move and
 * its checksums, discovery and the preflight's checks, over a matrix of
 * engines, key types, partition literals and settings. A change to a
 * statement shows here. */
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/copy.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/rewrite.h"
#include "chcopier/sql/route.h"
#include "tap.h"

#define TASK_FMT                                                                                \
    "<clickhouse><remote_servers>"                                                              \
    "<src><shard><replica><host>s1</host><port>9000</port><user>u</user>"                      \
    "<password>p'w</password></replica></shard></src>"                                          \
    "<dst><shard><weight>7</weight><replica><host>d1</host><port>9000</port></replica></shard>" \
    "<shard><weight>4</weight><replica><host>::1</host><port>9440</port><secure>1</secure>"     \
    "<http_port>8443</http_port></replica></shard></dst>"                                       \
    "</remote_servers><max_workers>2</max_workers><tables><t>"                                  \
    "<cluster_pull>src</cluster_pull><database_pull>db</database_pull>"                         \
    "<table_pull>hits</table_pull><cluster_push>dst</cluster_push>"                             \
    "<database_push>dbx</database_push><table_push>hits2</table_push>"                          \
    "<engine>%s</engine><sharding_key>%s</sharding_key>%s"                                      \
    "<number_of_splits>3</number_of_splits></t></tables></clickhouse>"

static struct cfg_task *load(const char *engine, const char *key, const char *extra)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;

    if (chc_buf_addf(&b, TASK_FMT, engine, key, extra) < 0)
        abort();
    if (cfg_task_parse(b.buf, b.len, "t.xml", &t, &e) < 0) {
        printf("# %s\n", e.msg);
        abort();
    }
    chc_buf_release(&b);
    return t;
}

#define RMT "ReplicatedMergeTree('/ch/{shard}/hits2', '{replica}') PARTITION BY toYYYYMM(d) " \
            "ORDER BY (u, id)"

static const struct cfg_replica *src_of(const struct cfg_task *t)
{
    return &t->tables[0].pull->shards[0].replicas[0];
}

TEST(copy_pull_routed_with_settings)
{
    struct cfg_task *t = load(RMT, "k", "<where_condition>x > 1</where_condition>");
    const char *lits[] = {"201801", "201802"};
    struct plan_key key = {"Int8", 0, "reinterpretAsString(u), id"};
    struct sql_piece p = {.tb = &t->tables[0], .lits = lits, .n_lits = 2, .splits = 3,
                          .k = 1, .split_args = key.split_args, .key = &key, .dest_shard = 1};
    char n1[] = "max_threads", v1[] = "1", n2[] = "readonly", v2[] = "1";
    struct cfg_setting set[] = {{n1, v1}, {n2, v2}};
    struct cfg_settings pull = {set, 2};
    const struct cfg_settings *sets[1] = {&pull};
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_copy_pull(&p, "`id`, `u`", src_of(t), sets, 1, &b, &e));
    ASSERT_STREQ(b.buf,
                 "INSERT INTO `dbx`.`hits2_piece_1` (`id`, `u`) SELECT `id`, `u` FROM "
                 "remote('s1:9000', 'db', 'hits', 'u', 'p\\'w') WHERE "
                 "((toYYYYMM(d)) IN (201801, 201802)) AND "
                 "(cityHash64(reinterpretAsString(u), id) % 3 = 1) AND "
                 "(toUInt32(k) % 11 BETWEEN 7 AND 10) AND (x > 1) SETTINGS max_threads = 1");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(copy_pipe_one_partition_unrouted)
{
    struct cfg_task *t = load(RMT, "k", "");
    const char *lits[] = {"201803"};
    struct plan_key key = {"UInt64", 0, ""};
    struct sql_piece p = {.tb = &t->tables[0], .lits = lits, .n_lits = 1, .splits = 1,
                          .k = 0, .split_args = "", .key = &key, .dest_shard = -1};
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf sel = CHC_BUF_INIT, ins = CHC_BUF_INIT;

    ASSERT_OK(sql_copy_select(&p, "`id`", "CAST(`id` AS UInt64) AS `id`", &sel, &e));
    ASSERT_STREQ(sel.buf, "SELECT CAST(`id` AS UInt64) AS `id` FROM (SELECT `id` FROM `db`.`hits` "
                          "WHERE ((toYYYYMM(d)) = 201803) AND (1)) FORMAT Native");
    ASSERT_OK(sql_copy_insert(&p, "`id`", &ins));
    ASSERT_STREQ(ins.buf, "INSERT INTO `dbx`.`hits2_piece_0` (`id`) FORMAT Native");
    chc_buf_reset(&ins);
    p.via_route = 1;
    ASSERT_OK(sql_copy_insert(&p, "`id`", &ins));
    ASSERT_STREQ(ins.buf, "INSERT INTO `dbx`.`hits2_piece_0_route` (`id`) FORMAT Native");
    chc_buf_release(&sel);
    chc_buf_release(&ins);
    cfg_task_free(t);
}

TEST(copy_pull_via_route)
{
    struct cfg_task *t = load(RMT, "k", "");
    const char *lits[] = {"201803"};
    struct plan_key key = {"UInt64", 0, ""};
    struct sql_piece p = {.tb = &t->tables[0], .lits = lits, .n_lits = 1, .splits = 1,
                          .k = 0, .split_args = "", .key = &key, .dest_shard = -1,
                          .via_route = 1};
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_copy_pull(&p, "`id`", src_of(t), NULL, 0, &b, &e));
    ASSERT_STREQ(b.buf, "INSERT INTO `dbx`.`hits2_piece_0_route` (`id`) SELECT `id` FROM "
                        "remote('s1:9000', 'db', 'hits', 'u', 'p\\'w') WHERE "
                        "((toYYYYMM(d)) = 201803) AND (1)");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(route_tables)
{
    struct cfg_task *t = load(RMT, "cityHash64(k)", "");
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_route_create(&t->tables[0], "dst", 2, &b));
    ASSERT_STREQ(b.buf, "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_2_route` AS "
                        "`dbx`.`hits2_piece_2` ENGINE = Distributed('dst', 'dbx', "
                        "'hits2_piece_2', cityHash64(k))");
    chc_buf_reset(&b);
    ASSERT_OK(sql_route_drop(&t->tables[0], 2, &b));
    ASSERT_STREQ(b.buf, "DROP TABLE IF EXISTS `dbx`.`hits2_piece_2_route`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_clusters(&b));
    ASSERT_STREQ(b.buf, "SELECT cluster, shard_num, shard_weight, replica_num, host_name, port "
                        "FROM system.clusters ORDER BY cluster, shard_num, replica_num FORMAT "
                        "TabSeparated");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(route_cluster_match)
{
    struct cfg_task *t = load(RMT, "k", "");
    const struct cfg_cluster *dst = t->tables[0].push;
    /* dst: shard 1 weight 7 d1:9000; shard 2 weight 4 ::1:9440. */
    struct route_row rows[] = {
        {"another", 1, 7, 1, "d1", 9000},  {"another", 2, 4, 1, "::1", 9440},
        {"dst", 1, 7, 1, "d1", 9000},      {"dst", 2, 4, 1, "::1", 9440},
        {"short", 1, 7, 1, "d1", 9000},
        {"weights", 1, 1, 1, "d1", 9000},  {"weights", 2, 1, 1, "::1", 9440},
    };
    const char *m;

    m = route_match_cluster(dst, rows, 7);
    ASSERT(m && !strcmp(m, "dst")); /* the task's own name first */
    m = route_match_cluster(dst, rows, 2);
    ASSERT(m && !strcmp(m, "another")); /* same layout, other name */
    ASSERT(route_match_cluster(dst, rows + 4, 3) == NULL); /* a shard short; other weights */
    rows[3].port = 9000;
    ASSERT(route_match_cluster(dst, rows + 2, 2) == NULL); /* another replica */
    rows[3].port = 9440;
    rows[3].replica_num = 2;
    ASSERT(route_match_cluster(dst, rows + 2, 2) == NULL); /* not that shard's first replica */
    ASSERT(route_match_cluster(dst, rows, 0) == NULL);
    cfg_task_free(t);
}

TEST(remote_forms)
{
    struct cfg_task *t = load(RMT, "k", "");
    const struct cfg_replica *v6 = &t->tables[0].push->shards[1].replicas[0];
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_remote(v6, "d'b", "t", &b));
    ASSERT_STREQ(b.buf, "remoteSecure('[::1]:9440', 'd\\'b', 't')");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(cleaning)
{
    struct cfg_task *t = load(RMT, "k", "");
    const char *lits[] = {"'2018-01-01'", "'2018-01-02'"};
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_query_id(&t->tables[0], "0123456789abcdef", 2, &b));
    ASSERT_EQ(strncmp(b.buf, "chc-", 4), 0);
    ASSERT_CONTAINS(b.buf, "-0123456789ab-2-");
    chc_buf_reset(&b);
    ASSERT_OK(sql_kill("chc-1-2-3-", &b));
    ASSERT_STREQ(b.buf, "KILL QUERY WHERE query_id LIKE 'chc-1-2-3-%' OR initial_query_id LIKE "
                        "'chc-1-2-3-%' SYNC");
    chc_buf_reset(&b);
    ASSERT_OK(sql_drop_piece_partition(&t->tables[0], 2, "'2018-01-01'", &b));
    ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2_piece_2` DROP PARTITION '2018-01-01'");
    chc_buf_reset(&b);
    ASSERT_OK(sql_count_piece(&t->tables[0], 0, lits, 2, &b));
    ASSERT_STREQ(b.buf, "SELECT count() FROM `dbx`.`hits2_piece_0` WHERE (toYYYYMM(d)) IN "
                        "('2018-01-01', '2018-01-02')");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(ddl)
{
    struct cfg_task *t = load(RMT, "k", "");
    struct sql_column cols[] = {
        {"id", "UInt64", "", ""},
        {"d", "Date", "DEFAULT", "today()"},
        {"m", "UInt64", "MATERIALIZED", "id * 2"},
    };
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_create_table(&t->tables[0], cols, 3, "hits2_piece_0", SQL_TABLE_STAGING, NULL, &b, &e));
    ASSERT_STREQ(b.buf, "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (`id` UInt64, `d` Date "
                        "DEFAULT today(), `m` UInt64 MATERIALIZED id * 2) ENGINE = MergeTree() "
                        "PARTITION BY toYYYYMM(d) ORDER BY (u, id)");
    chc_buf_reset(&b);
    ASSERT_OK(sql_create_table(&t->tables[0], cols, 1, "hits2", SQL_TABLE_DESTINATION, NULL, &b, &e));
    ASSERT_STREQ(b.buf, "CREATE TABLE IF NOT EXISTS `dbx`.`hits2` (`id` UInt64) ENGINE = "
                        "ReplicatedMergeTree('/ch/{shard}/hits2', '{replica}') PARTITION BY "
                        "toYYYYMM(d) ORDER BY (u, id)");
    chc_buf_reset(&b);
    ASSERT_OK(sql_describe("db", "t`x", &b));
    ASSERT_STREQ(b.buf, "DESCRIBE TABLE `db`.`t\\`x` FORMAT TabSeparated");
    chc_buf_reset(&b);
    ASSERT_OK(sql_drop_table("db", "t_assembly", &b));
    ASSERT_STREQ(b.buf, "DROP TABLE IF EXISTS `db`.`t_assembly`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_table_facts("d'b", "t", &b));
    ASSERT_STREQ(b.buf, "SELECT engine, partition_key, sorting_key FROM system.tables WHERE "
                        "database = 'd\\'b' AND name = 't' FORMAT TabSeparated");
    chc_buf_reset(&b);
    ASSERT_OK(sql_create_database("db", &b));
    ASSERT_STREQ(b.buf, "CREATE DATABASE IF NOT EXISTS `db`");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(column_lists)
{
    struct sql_column cols[] = {
        {"id", "UInt64", "", ""},
        {"u", "UUID", "", ""},
        {"lc", "LowCardinality(Nullable(String))", "", ""},
        {"a", "UInt8", "ALIAS", "1"},
        {"e", "String", "EPHEMERAL", "''"},
    };
    struct sql_columns c;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(sql_columns_build(cols, 5, &c, &e));
    ASSERT_STREQ(c.copy, "`id`, `u`, `lc`");
    ASSERT_STREQ(c.cast, "CAST(`id` AS UInt64) AS `id`, CAST(`u` AS UUID) AS `u`, "
                         "CAST(`lc` AS LowCardinality(Nullable(String))) AS `lc`");
    ASSERT_STREQ(c.hash_dst, "cityHash64(`id`, reinterpretAsString(`u`), "
                             "isNull(CAST(`lc` AS Nullable(String))), "
                             "assumeNotNull(CAST(`lc` AS Nullable(String))))");
    ASSERT_STREQ(c.hash_src, "cityHash64(CAST(`id` AS UInt64), reinterpretAsString(CAST(`u` AS "
                             "UUID)), isNull(CAST(`lc` AS Nullable(String))), "
                             "assumeNotNull(CAST(`lc` AS Nullable(String))))");
    sql_columns_release(&c);
    ASSERT_EQ(sql_columns_build(cols + 3, 2, &c, &e), CHC_ECONFIG);
}

/* Columns the destination computes or never stores are not copied, as
 * 26.7's DESCRIBE prints them (an EPHEMERAL column may have no default). */
TEST(column_lists_skip_computed)
{
    struct sql_column cols[] = {
        {"e0", "UInt8", "EPHEMERAL", ""},
        {"id", "UInt64", "", ""},
        {"m", "UInt64", "MATERIALIZED", "id + 1"},
        {"d", "String", "DEFAULT", "toString(e0)"},
        {"e1", "String", "EPHEMERAL", "'x'"},
        {"a", "UInt64", "ALIAS", "id * 2"},
    };
    struct sql_columns c;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(sql_columns_build(cols, 6, &c, &e));
    ASSERT_STREQ(c.copy, "`id`, `d`");
    ASSERT_STREQ(c.cast, "CAST(`id` AS UInt64) AS `id`, CAST(`d` AS String) AS `d`");
    ASSERT_STREQ(c.hash_dst, "cityHash64(`id`, `d`)");
    sql_columns_release(&c);
}

static void staging_is(const char *show, const char *want)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;

    if (sql_staging_from_show(show, "dbx", "hits2_piece_0", &b, &e) < 0)
        printf("# %s\n", e.msg);
    ASSERT_STREQ(b.buf, want);
    chc_buf_release(&b);
}

/* Staging tables are the destination's twins: SHOW CREATE with the name and
 * the engine's replication rewritten, the rest kept byte for byte. */
TEST(staging_from_show_create)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(sql_show_create("db", "t", &b));
    ASSERT_STREQ(b.buf, "SHOW CREATE TABLE `db`.`t` FORMAT TabSeparated");
    /* 18.16: one line, no backticks */
    staging_is("CREATE TABLE dbx.hits2 ( d Date,  x UInt32,  s String DEFAULT 'a\\'b') ENGINE = "
               "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/hits2', '{replica}', x) "
               "PARTITION BY toYYYYMM(d) ORDER BY x SETTINGS index_granularity = 8192",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` ( d Date,  x UInt32,  s String "
               "DEFAULT 'a\\'b') ENGINE = ReplacingMergeTree(x) PARTITION BY toYYYYMM(d) ORDER BY x "
               "SETTINGS index_granularity = 8192");
    /* 26.7: indices, projections, codecs, TTL, storage policy, comments kept;
     * an ENGINE inside a string or a name is not the engine */
    staging_is("CREATE TABLE dbx.hits2 UUID '0f6a1b2c-0000-4000-8000-000000000001'\n(\n"
               "    `d` Date,\n    `engine` UInt32 CODEC(ZSTD(1)) COMMENT 'ENGINE = x',\n"
               "    INDEX ix engine TYPE minmax GRANULARITY 1,\n"
               "    PROJECTION p\n    (\n        SELECT engine, count() GROUP BY engine\n    )\n)\n"
               "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')\n"
               "PARTITION BY toYYYYMM(d)\nORDER BY engine\nTTL d + toIntervalDay(1)\n"
               "SETTINGS storage_policy = 'default', index_granularity = 8192\n"
               "COMMENT 'ENGINE = Replicated'",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (\n"
               "    `d` Date,\n    `engine` UInt32 CODEC(ZSTD(1)) COMMENT 'ENGINE = x',\n"
               "    INDEX ix engine TYPE minmax GRANULARITY 1,\n"
               "    PROJECTION p\n    (\n        SELECT engine, count() GROUP BY engine\n    )\n)\n"
               "ENGINE = MergeTree()\n"
               "PARTITION BY toYYYYMM(d)\nORDER BY engine\nTTL d + toIntervalDay(1)\n"
               "SETTINGS storage_policy = 'default', index_granularity = 8192\n"
               "COMMENT 'ENGINE = Replicated'");
    /* arg-less Replicated, engine args that are not the replication ones,
     * a quoted table name with a dot */
    staging_is("CREATE TABLE `d.b`.`t``x` (`v` Int8) ENGINE = ReplicatedCollapsingMergeTree(v) "
               "ORDER BY tuple()",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (`v` Int8) ENGINE = "
               "CollapsingMergeTree(v) ORDER BY tuple()");
    staging_is("CREATE TABLE db.t (`v` Int8) ENGINE = ReplicatedMergeTree ORDER BY v",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (`v` Int8) ENGINE = "
               "MergeTree() ORDER BY v");
    staging_is("CREATE TABLE db.t (`v` Int8, `w` UInt8) ENGINE = ReplicatedVersionedCollapsingMergeTree("
               "'/p/{shard}', '{replica}', v, w) ORDER BY v",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (`v` Int8, `w` UInt8) ENGINE = "
               "VersionedCollapsingMergeTree(v, w) ORDER BY v");
    /* the old MergeTree syntax stays old (ATTACH wants the same format) */
    staging_is("CREATE TABLE db.t ( d Date,  k UInt64) ENGINE = ReplicatedMergeTree("
               "'/clickhouse/tables/{shard}/t', '{replica}', d, (k, d), 8192)",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` ( d Date,  k UInt64) ENGINE = "
               "MergeTree(d, (k, d), 8192)");
    /* UTF-8 inside quotes (a comment, a default) is text like any other */
    staging_is("CREATE TABLE db.t (`v` String DEFAULT '\xc3\xa9t\xc3\xa9') ENGINE = "
               "ReplicatedMergeTree('/p/{shard}', '{replica}') ORDER BY v COMMENT '\xd1\x82'",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (`v` String DEFAULT "
               "'\xc3\xa9t\xc3\xa9') ENGINE = MergeTree() ORDER BY v COMMENT '\xd1\x82'");
    /* non-replicated: only the name changes */
    staging_is("CREATE TABLE db.t (`v` Int8) ENGINE = SummingMergeTree((v)) ORDER BY v",
               "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_piece_0` (`v` Int8) ENGINE = "
               "SummingMergeTree((v)) ORDER BY v");
    chc_buf_reset(&b);
    ASSERT_EQ(sql_staging_from_show("CREATE VIEW db.v AS SELECT 1", "d", "t", &b, &e), CHC_EPARSE);
    ASSERT_EQ(sql_staging_from_show("CREATE TABLE db.t (v Int8) ENGINE = Log", "d", "t", &b, &e),
              CHC_ECONFIG);
    ASSERT(strstr(e.msg, "Log is not a *MergeTree") != NULL);
    ASSERT_EQ(sql_staging_from_show("CREATE TABLE db.t (v Int8", "d", "t", &b, &e), CHC_EPARSE);
    ASSERT_EQ(sql_staging_from_show("CREATE TABLE db.t (v Int8) ENGINE = ReplicatedMergeTree('/p', "
                                    "'r' ORDER BY v", "d", "t", &b, &e), CHC_EPARSE);
    ASSERT_EQ(b.len, 0);
    chc_buf_release(&b);
}

/* A Replicated engine with no arguments or {uuid} in its path gets one
 * UUID on every node (the same for every worker and run of the task), where
 * the node knows UUIDs; any other engine, and 18.16, get the statement as
 * before. */
TEST(destination_uuid)
{
    struct cfg_task *bare = load("ReplicatedMergeTree ORDER BY id", "k", "");
    struct cfg_task *mac = load("ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', "
                                "'{replica}') ORDER BY id", "k", "");
    struct cfg_task *plain = load(RMT, "k", "");
    struct cfg_task *mt = load("MergeTree ORDER BY id", "k", "");
    struct sql_column cols[] = {{"id", "UInt64", "", ""}};
    unsigned v26 = DIALECT_V(26, 7, 2), v18 = DIALECT_V(18, 16, 1);
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT, u = CHC_BUF_INIT;

    ASSERT(sql_needs_uuid(&bare->tables[0], v26) && sql_needs_uuid(&mac->tables[0], v26));
    ASSERT(!sql_needs_uuid(&plain->tables[0], v26) && !sql_needs_uuid(&mt->tables[0], v26));
    ASSERT(!sql_needs_uuid(&bare->tables[0], v18) && !sql_needs_uuid(&mac->tables[0], 0));
    ASSERT_OK(sql_table_uuid("/task/a", &bare->tables[0], &u));
    ASSERT_STREQ(u.buf, "6db60f3e-926f-4a7e-87c0-1ba9a7b101ac");
    chc_buf_reset(&b);
    ASSERT_OK(sql_table_uuid("/task/a", &mac->tables[0], &b)); /* same task and table */
    ASSERT_STREQ(b.buf, u.buf);
    chc_buf_reset(&b);
    ASSERT_OK(sql_table_uuid("/task/b", &bare->tables[0], &b));
    ASSERT(strcmp(b.buf, u.buf) != 0);
    chc_buf_reset(&b);
    ASSERT_OK(sql_create_table(&bare->tables[0], cols, 1, "hits2", SQL_TABLE_DESTINATION, u.buf,
                               &b, &e));
    ASSERT_STREQ(b.buf, "CREATE TABLE IF NOT EXISTS `dbx`.`hits2` UUID "
                        "'6db60f3e-926f-4a7e-87c0-1ba9a7b101ac' (`id` UInt64) ENGINE = "
                        "ReplicatedMergeTree() ORDER BY id");
    chc_buf_release(&b);
    chc_buf_release(&u);
    cfg_task_free(bare);
    cfg_task_free(mac);
    cfg_task_free(plain);
    cfg_task_free(mt);
}

TEST(move_steps)
{
    struct cfg_task *t = load(RMT, "k", "");
    struct cfg_task *u = load("MergeTree ORDER BY id", "k", "");
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(plan_partition_assembly(&t->tables[0], "201801", &b));
    ASSERT_STREQ(b.buf, "hits2_assembly_229cb25592efbc39"); /* FNV-1a of the literal */
    chc_buf_reset(&b);
    ASSERT_OK(plan_partition_assembly(&t->tables[0], "201802", &b));
    ASSERT_STREQ(b.buf, "hits2_assembly_229caf5592efb720");
    chc_buf_reset(&b);
    ASSERT_OK(sql_move_step(&t->tables[0], MOVE_CREATE_ASSEMBLY, "201801", 0, &b));
    ASSERT_STREQ(b.buf, "CREATE TABLE IF NOT EXISTS `dbx`.`hits2_assembly_229cb25592efbc39` AS `dbx`.`hits2_assembly`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_move_step(&t->tables[0], MOVE_DROP_ASSEMBLY, "201801", 0, &b));
    ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2_assembly_229cb25592efbc39` DROP PARTITION 201801");
    chc_buf_reset(&b);
    ASSERT_OK(sql_move_step(&t->tables[0], MOVE_ATTACH_DEST, "201801", 0, &b));
    ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2_assembly_229cb25592efbc39` ATTACH PARTITION 201801 FROM "
                        "`dbx`.`hits2`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_move_step(&t->tables[0], MOVE_ATTACH_PIECES, "201801", 2, &b));
    ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2_assembly_229cb25592efbc39` ATTACH PARTITION 201801 FROM "
                        "`dbx`.`hits2_piece_2`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_move_step(&u->tables[0], MOVE_REPLACE, "tuple()", 0, &b));
    ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2` REPLACE PARTITION ID 'all' FROM "
                        "`dbx`.`hits2_assembly_5b27c91007d8a1f6`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_move_step(&t->tables[0], MOVE_RELEASE_PIECES, "201801", 1, &b));
    ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2_piece_1` DROP PARTITION 201801");
    chc_buf_reset(&b);
    {
        const char *lits[] = {"201801", "201802"};
        ASSERT_OK(sql_release_pieces(&t->tables[0], 0, lits, 2, &b));
        ASSERT_STREQ(b.buf, "ALTER TABLE `dbx`.`hits2_piece_0` DROP PARTITION 201801, DROP "
                            "PARTITION 201802");
        chc_buf_reset(&b);
    }
    ASSERT_OK(sql_move_step(&u->tables[0], MOVE_RELEASE_ASSEMBLY, "tuple()", 0, &b));
    ASSERT_STREQ(b.buf, "DROP TABLE IF EXISTS `dbx`.`hits2_assembly_5b27c91007d8a1f6`");
    chc_buf_reset(&b);
    ASSERT_OK(sql_list_assemblies(&t->tables[0], &b));
    ASSERT_STREQ(b.buf, "SELECT name FROM system.tables WHERE database = 'dbx' AND length(name) = "
                        "31 AND substring(name, 1, 15) = 'hits2_assembly_' ORDER BY name "
                        "FORMAT TabSeparated");
    chc_buf_release(&b);
    cfg_task_free(t);
    cfg_task_free(u);
}

TEST(sums_and_discovery)
{
    struct cfg_task *t = load(RMT, "k", "<where_condition>x > 1</where_condition>");
    struct cfg_task *u = load("MergeTree ORDER BY id", "k", "");
    const char *one[] = {"201801"}, *two[] = {"201801", "201802"};
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_sums(&t->tables[0], one, 1, "db", "hits", "cityHash64(id)", 1, &b));
    ASSERT_STREQ(b.buf, "SELECT 1 AS _i, count(), ifNull(sum(cityHash64(id)), 0) FROM "
                        "`db`.`hits` WHERE ((toYYYYMM(d)) = 201801) AND (x > 1) GROUP BY _i "
                        "ORDER BY _i FORMAT TabSeparated");
    chc_buf_reset(&b);
    ASSERT_OK(sql_sums(&t->tables[0], two, 2, "dbx", "hits2", "h", 0, &b));
    ASSERT_STREQ(b.buf, "SELECT multiIf(_p = 201801, 1, _p = 201802, 2, 0) AS _i, sum(_c), "
                        "sum(_h) FROM (SELECT (toYYYYMM(d)) AS _p, count() AS _c, "
                        "ifNull(sum(h), 0) AS _h FROM `dbx`.`hits2` WHERE ((toYYYYMM(d)) IN "
                        "(201801, 201802)) GROUP BY _p) GROUP BY _i ORDER BY _i "
                        "FORMAT TabSeparated");
    chc_buf_reset(&b);
    ASSERT_OK(sql_sums(&t->tables[0], two, 2, "db", "hits", "h", 1, &b));
    ASSERT_STREQ(b.buf, "SELECT multiIf(_p = 201801, 1, _p = 201802, 2, 0) AS _i, sum(_c), "
                        "sum(_h) FROM (SELECT (toYYYYMM(d)) AS _p, count() AS _c, "
                        "ifNull(sum(h), 0) AS _h FROM `db`.`hits` WHERE ((toYYYYMM(d)) IN "
                        "(201801, 201802)) AND (x > 1) GROUP BY _p) GROUP BY _i "
                        "ORDER BY _i FORMAT TabSeparated");
    chc_buf_reset(&b);
    ASSERT_OK(sql_sums_assemblies(&t->tables[0], two, 2, "h", &b));
    ASSERT_STREQ(b.buf, "SELECT 1 AS _i, count(), ifNull(sum(h), 0) FROM "
                        "`dbx`.`hits2_assembly_229cb25592efbc39` WHERE (toYYYYMM(d)) = 201801 "
                        "UNION ALL SELECT 2, count(), ifNull(sum(h), 0) FROM "
                        "`dbx`.`hits2_assembly_229caf5592efb720` WHERE (toYYYYMM(d)) = 201802 "
                        "FORMAT TabSeparated");
    chc_buf_reset(&b);
    ASSERT_OK(sql_discover(&t->tables[0], "h", &b));
    ASSERT_STREQ(b.buf, "SELECT (toYYYYMM(d)) AS _p, count(), ifNull(sum(h), 0) FROM "
                        "`db`.`hits` WHERE (x > 1) GROUP BY _p ORDER BY _p FORMAT Values");
    chc_buf_reset(&b);
    ASSERT_OK(sql_discover(&u->tables[0], NULL, &b));
    ASSERT_STREQ(b.buf, "SELECT 1 AS _p, count(), 0 FROM `db`.`hits` GROUP BY _p ORDER BY _p "
                        "FORMAT Values");
    {
        const char *lits[] = {"201801", "201802"};
        chc_buf_reset(&b);
        ASSERT_OK(sql_discover_in(&t->tables[0], "h", "toYYYYMM(e)", lits, 2, 1234, &b));
        ASSERT_STREQ(b.buf, "SELECT (toYYYYMM(d)) AS _p, count(), ifNull(sum(h), 0) FROM "
                            "`db`.`hits` WHERE (toYYYYMM(e)) IN (201801, 201802) AND (x > 1) "
                            "GROUP BY _p ORDER BY _p SETTINGS max_rows_to_read = 1234, "
                            "read_overflow_mode = 'throw' FORMAT Values");
    }
    chc_buf_reset(&b);
    ASSERT_OK(sql_source_partitions(&t->tables[0], &b));
    ASSERT_STREQ(b.buf, "SELECT partition, sum(marks) FROM system.parts WHERE database = 'db' "
                        "AND table = 'hits' AND active GROUP BY partition ORDER BY partition "
                        "FORMAT TabSeparated");
    chc_buf_release(&b);
    cfg_task_free(t);
    cfg_task_free(u);
}

TEST(preflight_checks)
{
    struct cfg_task *t = load(RMT, "k", "<where_condition>nosuch = 1</where_condition>");
    struct plan_key key = {"String", 0, "id"};
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(sql_check_exprs(&t->tables[0], &b));
    ASSERT_STREQ(b.buf, "SELECT (k), u, id, (toYYYYMM(d)) FROM `db`.`hits` WHERE (nosuch = 1) "
                        "LIMIT 0 FORMAT TSVWithNamesAndTypes");
    chc_buf_reset(&b);
    ASSERT_OK(sql_check_element(&t->tables[0], SQL_EL_WHERE, 0, &b));
    ASSERT_STREQ(b.buf, "SELECT 1 FROM `db`.`hits` WHERE (nosuch = 1) LIMIT 0");
    chc_buf_reset(&b);
    ASSERT_OK(sql_check_element(&t->tables[0], SQL_EL_ORDER, 1, &b));
    ASSERT_STREQ(b.buf, "SELECT id FROM `db`.`hits` LIMIT 0");
    chc_buf_reset(&b);
    ASSERT_EQ(sql_check_generated(&t->tables[0], "id", &key, &b, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "is of type String");
    chc_buf_reset(&b);
    key.type = "Int64";
    ASSERT_OK(sql_check_generated(&t->tables[0], "id", &key, &b, &e));
    ASSERT_STREQ(b.buf, "SELECT cityHash64(id) % 2 = 0, toUInt64(k) % 11 BETWEEN 0 AND 6 FROM "
                        "`db`.`hits` LIMIT 0");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TAP_MAIN()

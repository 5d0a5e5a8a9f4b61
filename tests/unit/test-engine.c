/* test-engine.c — ENGINE clause parsing, rejection messages and rebuilding.
 *
 * The corpus comes from the ClickHouse documentation (MergeTree family,
 * data replication, TTL) and clickhouse-copier task examples; each valid
 * entry is also round-tripped through engine_build_clause().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/base/err.h"
#include "tap.h"

/* Parse text that must be accepted, rebuild it both ways and check that the
 * plain=0 text parses back to the same fields. */
static struct engine_info *parse_ok(const char *text)
{
    struct chc_err err = CHC_ERR_INIT;
    struct engine_info *e = NULL, *again = NULL;
    struct chc_buf b = CHC_BUF_INIT;
    int r;

    r = engine_parse(text, &e, &err);
    if (r < 0)
        TAP_FAIL("engine_parse(\"%s\") = %s: %s", text, chc_err_name(r), err.msg);
    ASSERT_NOT_NULL(e->order_by);
    ASSERT_NOT_NULL(e->args);
    ASSERT_OK(engine_build_clause(e, 0, &b, &err));
    r = engine_parse(b.buf, &again, &err);
    if (r < 0)
        TAP_FAIL("re-parse of \"%s\" = %s: %s", b.buf, chc_err_name(r), err.msg);
    if (!engine_equal(e, again))
        TAP_FAIL("round trip changed the engine: \"%s\" -> \"%s\"", text, b.buf);
    again = engine_free(again);
    chc_buf_reset(&b);
    ASSERT_OK(engine_build_clause(e, 1, &b, &err));
    r = engine_parse(b.buf, &again, &err);
    if (r < 0)
        TAP_FAIL("re-parse of plain \"%s\" = %s: %s", b.buf, chc_err_name(r), err.msg);
    ASSERT_EQ(again->replicated, 0);
    ASSERT_STREQ(again->name, e->base_name);
    ASSERT_STREQ(again->args, e->args);
    ASSERT_STREQ(again->order_by, e->order_by);
    ASSERT_EQ(again->n_key_columns, e->n_key_columns);
    engine_free(again);
    chc_buf_release(&b);
    return e;
}

#define EXPECT_ERR(text, want_, substr)                                         \
    do {                                                                       \
        struct chc_err err_ = CHC_ERR_INIT;                                    \
        struct engine_info *e_ = NULL;                                         \
        int r_ = engine_parse((text), &e_, &err_);                             \
        if (r_ != (want_))                                                      \
            TAP_FAIL("engine_parse(\"%s\") = %s (%s), expected %s", (text),    \
                     chc_err_name(r_), err_.msg, chc_err_name(want_));          \
        ASSERT_NULL(e_);                                                       \
        ASSERT_EQ(err_.code, (want_));                                          \
        ASSERT_CONTAINS(err_.msg, (substr));                                   \
        ASSERT_NULL(strchr(err_.msg, '\n'));                                   \
        ASSERT(err_.msg[strlen(err_.msg) - 1] != '.');                         \
    } while (0)

#define ASSERT_KEYS(e, ...)                                                    \
    do {                                                                       \
        const char *want_[] = {__VA_ARGS__};                                   \
        size_t n_ = sizeof(want_) / sizeof(want_[0]), i_;                      \
        ASSERT_EQ((e)->n_key_columns, n_);                                     \
        for (i_ = 0; i_ < n_; i_++)                                            \
            ASSERT_STREQ((e)->key_columns[i_], want_[i_]);                     \
    } while (0)

/* ---------------------------------------------------------------------------
 * Accepted engines
 * ------------------------------------------------------------------------- */

TEST(replicated_with_macros_full_clause)
{
    struct engine_info *e = parse_ok(
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/hits', "
        "'{replica}') PARTITION BY toYYYYMM(EventDate) ORDER BY (CounterID, EventDate, "
        "intHash32(UserID)) SAMPLE BY intHash32(UserID) SETTINGS index_granularity = 8192");

    ASSERT_STREQ(e->name, "ReplicatedMergeTree");
    ASSERT_STREQ(e->base_name, "MergeTree");
    ASSERT_EQ(e->replicated, 1);
    ASSERT_STREQ(e->zk_path, "/clickhouse/tables/{cluster}/{shard}/hits");
    ASSERT_STREQ(e->replica_name, "{replica}");
    ASSERT_STREQ(e->args, "");
    ASSERT_STREQ(e->partition_by, "toYYYYMM(EventDate)");
    ASSERT_STREQ(e->order_by, "(CounterID, EventDate, intHash32(UserID))");
    ASSERT_NULL(e->primary_key);
    ASSERT_STREQ(e->sample_by, "intHash32(UserID)");
    ASSERT_NULL(e->ttl);
    ASSERT_STREQ(e->settings, "index_granularity = 8192");
    ASSERT_KEYS(e, "CounterID", "EventDate", "intHash32(UserID)");
    engine_free(e);
}

/* An engine copied from 26.x's SHOW CREATE TABLE ends with the table's
 * COMMENT (tests/unit/data/compat-26.7/showcreate-mt.tsv): it must not end
 * up in SETTINGS. */
TEST(show_create_comment_is_its_own_clause)
{
    struct chc_err e = CHC_ERR_INIT;
    struct engine_info *ei = NULL;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(engine_parse("ENGINE = MergeTree\nPARTITION BY toYYYYMM(d)\nORDER BY (id, d)\n"
                           "SETTINGS index_granularity = 1024\nCOMMENT 'a table\\'s, comment'",
                           &ei, &e));
    ASSERT_STREQ(ei->settings, "index_granularity = 1024");
    ASSERT_STREQ(ei->comment, "'a table\\'s, comment'");
    ASSERT_OK(engine_build_clause(ei, 0, &b, &e));
    ASSERT_STREQ(b.buf, "ENGINE = MergeTree() PARTITION BY toYYYYMM(d) ORDER BY (id, d) "
                        "SETTINGS index_granularity = 1024 COMMENT 'a table\\'s, comment'");
    chc_buf_reset(&b);
    ASSERT_OK(engine_build_clause(ei, 1, &b, &e));
    ASSERT_STREQ(b.buf, "ENGINE = MergeTree() PARTITION BY toYYYYMM(d) ORDER BY (id, d) "
                        "SETTINGS index_granularity = 1024");
    engine_free(ei);
    /* A column named comment is still a column. */
    ASSERT_OK(engine_parse("MergeTree ORDER BY comment", &ei, &e));
    ASSERT_STREQ(ei->order_by, "comment");
    ASSERT_NULL(ei->comment);
    engine_free(ei);
    chc_buf_release(&b);
}

TEST(copier_task_example_multiline)
{
    /* The <engine> of the clickhouse-copier documentation's task example. */
    struct engine_info *e = parse_ok(
        "\n            ENGINE=ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/hits2', "
        "'{replica}')\n            PARTITION BY toMonday(date)\n            ORDER BY "
        "(CounterID, EventDate)\n            ");

    ASSERT_STREQ(e->zk_path, "/clickhouse/tables/{cluster}/{shard}/hits2");
    ASSERT_STREQ(e->partition_by, "toMonday(date)");
    ASSERT_STREQ(e->order_by, "(CounterID, EventDate)");
    ASSERT_KEYS(e, "CounterID", "EventDate");
    engine_free(e);
}

TEST(argless_replicated_uses_server_defaults)
{
    struct engine_info *e = parse_ok("ENGINE = ReplicatedMergeTree ORDER BY id");

    ASSERT_EQ(e->replicated, 1);
    ASSERT_STREQ(e->base_name, "MergeTree");
    ASSERT_NULL(e->zk_path);
    ASSERT_NULL(e->replica_name);
    ASSERT_STREQ(e->args, "");
    ASSERT_KEYS(e, "id");
    e = engine_free(e);
    e = parse_ok("ReplicatedMergeTree() ORDER BY id");
    ASSERT_NULL(e->zk_path);
    engine_free(e);
}

TEST(replicated_replacing_with_version)
{
    /* From the "Data Replication" documentation page. */
    struct engine_info *e = parse_ok(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{layer}-{shard}/table_name', "
        "'{replica}', ver)\nPARTITION BY toYYYYMM(EventDate)\nORDER BY (CounterID, EventDate, "
        "intHash32(UserID))\nSAMPLE BY intHash32(UserID)");

    ASSERT_STREQ(e->name, "ReplicatedReplacingMergeTree");
    ASSERT_STREQ(e->base_name, "ReplacingMergeTree");
    ASSERT_STREQ(e->zk_path, "/clickhouse/tables/{layer}-{shard}/table_name");
    ASSERT_STREQ(e->args, "ver");
    engine_free(e);
}

TEST(replicated_without_path_keeps_engine_args)
{
    /* ClickHouse: a first argument that is not a literal means "no path". */
    struct engine_info *e = parse_ok("ReplicatedCollapsingMergeTree(Sign) ORDER BY UserID");

    ASSERT_NULL(e->zk_path);
    ASSERT_STREQ(e->args, "Sign");
    engine_free(e);
    e = parse_ok("ReplicatedReplacingMergeTree(ver, is_deleted) ORDER BY (a)");
    ASSERT_STREQ(e->args, "ver, is_deleted");
    ASSERT_KEYS(e, "a");
    engine_free(e);
    e = parse_ok("ReplicatedGraphiteMergeTree('graphite_rollup') ORDER BY (Path, Time)");
    ASSERT_NULL(e->zk_path);
    ASSERT_STREQ(e->args, "'graphite_rollup'");
    engine_free(e);
}

TEST(merging_variants)
{
    struct engine_info *e;

    e = parse_ok("ENGINE = SummingMergeTree((shown, clicks)) ORDER BY (CounterID, key)");
    ASSERT_STREQ(e->args, "(shown, clicks)");
    ASSERT_EQ(e->replicated, 0);
    ASSERT_STREQ(e->base_name, "SummingMergeTree");
    engine_free(e);
    e = parse_ok("ENGINE = SummingMergeTree() PRIMARY KEY key");
    ASSERT_STREQ(e->args, "");
    ASSERT_STREQ(e->primary_key, "key");
    ASSERT_STREQ(e->order_by, "key");
    ASSERT_KEYS(e, "key");
    engine_free(e);
    e = parse_ok("ENGINE = CollapsingMergeTree(Sign) ORDER BY UserID");
    ASSERT_STREQ(e->args, "Sign");
    engine_free(e);
    e = parse_ok("ENGINE = VersionedCollapsingMergeTree(Sign, Version) ORDER BY UserID");
    ASSERT_STREQ(e->args, "Sign, Version");
    engine_free(e);
    e = parse_ok("ENGINE = AggregatingMergeTree() PARTITION BY toYYYYMM(StartDate) "
                 "ORDER BY (CounterID, StartDate)");
    ASSERT_STREQ(e->base_name, "AggregatingMergeTree");
    engine_free(e);
    e = parse_ok("ENGINE = ReplacingMergeTree ORDER BY key");
    ASSERT_STREQ(e->args, "");
    engine_free(e);
}

TEST(order_by_tuple_gives_no_key_columns)
{
    struct engine_info *e = parse_ok("ENGINE = MergeTree ORDER BY tuple()");

    ASSERT_STREQ(e->order_by, "tuple()");
    ASSERT_EQ(e->n_key_columns, 0);
    ASSERT_NULL(e->key_columns);
    engine_free(e);
    e = parse_ok("ENGINE = MergeTree ORDER BY ( )");
    ASSERT_EQ(e->n_key_columns, 0);
    engine_free(e);
    e = parse_ok("ENGINE = MergeTree ORDER BY tuple(a, toDate(b))");
    ASSERT_KEYS(e, "a", "toDate(b)");
    engine_free(e);
}

TEST(key_column_shapes)
{
    struct engine_info *e;

    e = parse_ok("MergeTree ORDER BY intHash32(UserID)");
    ASSERT_KEYS(e, "intHash32(UserID)");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY (a + b)");
    ASSERT_KEYS(e, "a + b");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY (a, b) PRIMARY KEY (a)");
    ASSERT_STREQ(e->order_by, "(a, b)");
    ASSERT_STREQ(e->primary_key, "(a)");
    ASSERT_KEYS(e, "a");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY (a DESC, [1, 2], {'k': 1})");
    ASSERT_KEYS(e, "a DESC", "[1, 2]", "{'k': 1}");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY ((a, b))");
    ASSERT_KEYS(e, "(a, b)");
    engine_free(e);
}

TEST(nested_parens_quotes_and_backticks)
{
    struct engine_info *e = parse_ok(
        "ENGINE = MergeTree PARTITION BY (toMonday(d), intDiv(x, 10)) "
        "ORDER BY (a, if(b = ')', 1, 2), `my col`, \"q,id\", 'it\\'s', 'x''y')");

    ASSERT_STREQ(e->partition_by, "(toMonday(d), intDiv(x, 10))");
    ASSERT_KEYS(e, "a", "if(b = ')', 1, 2)", "`my col`", "\"q,id\"", "'it\\'s'", "'x''y'");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY (`my col`, b)");
    ASSERT_KEYS(e, "`my col`", "b");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY (`we``ird`, `back\\`slash`)");
    ASSERT_KEYS(e, "`we``ird`", "`back\\`slash`");
    engine_free(e);
}

TEST(comments_are_skipped_but_kept_inside_expressions)
{
    struct engine_info *e = parse_ok(
        "-- destination engine\n"
        "ENGINE = MergeTree /* block /* nested */ still comment */\n"
        "ORDER BY (a, -- the first key\n b) # shell-style comment\n"
        "#!also a comment\n"
        "SETTINGS index_granularity = 8192 // trailing");

    ASSERT_STREQ(e->order_by, "(a, -- the first key\n b)");
    ASSERT_KEYS(e, "a", "b");
    ASSERT_STREQ(e->settings, "index_granularity = 8192");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY (a /* ) */, b) -- ORDER BY z");
    ASSERT_KEYS(e, "a", "b");
    engine_free(e);
}

TEST(lowercase_keywords_and_any_clause_order)
{
    struct engine_info *e = parse_ok(
        "engine=MergeTree() settings index_granularity=8192, storage_policy='hot' "
        "sample by intHash32(u) order  by\n(k, intHash32(u))\tpartition\nby toYYYYMM(d) "
        "primary key k ttl d + interval 1 month");

    ASSERT_STREQ(e->settings, "index_granularity=8192, storage_policy='hot'");
    ASSERT_STREQ(e->sample_by, "intHash32(u)");
    ASSERT_STREQ(e->order_by, "(k, intHash32(u))");
    ASSERT_STREQ(e->partition_by, "toYYYYMM(d)");
    ASSERT_STREQ(e->primary_key, "k");
    ASSERT_STREQ(e->ttl, "d + interval 1 month");
    ASSERT_KEYS(e, "k");
    engine_free(e);
}

TEST(ttl_with_rules_and_group_by)
{
    /* From the MergeTree documentation's TTL section. */
    struct engine_info *e = parse_ok(
        "ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY d "
        "TTL d + INTERVAL 1 MONTH DELETE, d + INTERVAL 1 WEEK TO VOLUME 'aaa', "
        "d + INTERVAL 2 WEEK TO DISK 'bbb'");

    ASSERT_STREQ(e->ttl, "d + INTERVAL 1 MONTH DELETE, d + INTERVAL 1 WEEK TO VOLUME 'aaa', "
                         "d + INTERVAL 2 WEEK TO DISK 'bbb'");
    engine_free(e);
    e = parse_ok("ENGINE = MergeTree ORDER BY (k1, k2) TTL d + INTERVAL 1 MONTH GROUP BY "
                 "k1, k2 SET x = max(x), y = min(y) SETTINGS merge_with_ttl_timeout = 3600");
    ASSERT_STREQ(e->ttl, "d + INTERVAL 1 MONTH GROUP BY k1, k2 SET x = max(x), y = min(y)");
    ASSERT_STREQ(e->settings, "merge_with_ttl_timeout = 3600");
    engine_free(e);
}

TEST(keyword_named_columns)
{
    struct engine_info *e;

    e = parse_ok("MergeTree ORDER BY ttl");
    ASSERT_STREQ(e->order_by, "ttl");
    ASSERT_NULL(e->ttl);
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY settings SETTINGS index_granularity = 1");
    ASSERT_STREQ(e->order_by, "settings");
    ASSERT_STREQ(e->settings, "index_granularity = 1");
    engine_free(e);
    e = parse_ok("MergeTree ORDER BY t.ttl + ttl TTL ttl + INTERVAL 1 DAY");
    ASSERT_STREQ(e->order_by, "t.ttl + ttl");
    ASSERT_STREQ(e->ttl, "ttl + INTERVAL 1 DAY");
    engine_free(e);
}

TEST(string_literal_escapes_in_replication_args)
{
    struct engine_info *e = parse_ok(
        "ReplicatedMergeTree('/p/it\\'s/\\x41\\\\', 'r''1\\n') ORDER BY a");

    ASSERT_STREQ(e->zk_path, "/p/it's/A\\");
    ASSERT_STREQ(e->replica_name, "r'1\n");
    engine_free(e);
}

/* ---------------------------------------------------------------------------
 * Rejected engines
 * ------------------------------------------------------------------------- */

TEST(empty_text)
{
    EXPECT_ERR("", CHC_EPARSE, "engine definition is empty");
    EXPECT_ERR(" \n\t -- only a comment\n /* and another */", CHC_EPARSE,
               "engine definition is empty");
    {
        struct chc_err err = CHC_ERR_INIT;
        struct engine_info *e = NULL;

        ASSERT_EQ(engine_parse(NULL, &e, &err), CHC_EPARSE);
        ASSERT_NULL(e);
        ASSERT_CONTAINS(err.msg, "engine definition is empty");
    }
}

TEST(not_a_merge_tree)
{
    EXPECT_ERR("ENGINE = Log", CHC_ECONFIG,
               "engine 'Log' is not supported: only *MergeTree engines can be a copy "
               "destination");
    EXPECT_ERR("ENGINE = Memory", CHC_ECONFIG, "engine 'Memory' is not supported");
    EXPECT_ERR("ENGINE = Distributed(logs, default, hits, rand())", CHC_ECONFIG,
               "engine 'Distributed' is not supported");
    EXPECT_ERR("ENGINE = Replicated ORDER BY a", CHC_ECONFIG,
               "engine 'Replicated' is not supported");
    EXPECT_ERR("ENGINE = mergetree ORDER BY a", CHC_ECONFIG, "case-sensitive");
    EXPECT_ERR("ENGINE = FancyMergeTree ORDER BY a", CHC_ECONFIG,
               "not a known *MergeTree variant");
}

TEST(old_syntax_is_rejected_with_the_rewrite)
{
    static const char *const msg =
        "old-syntax MergeTree(date, key, granularity) is not supported: rewrite the engine "
        "with PARTITION BY toYYYYMM(date) ORDER BY (key)";

    EXPECT_ERR("ENGINE = MergeTree(EventDate, (CounterID, EventDate), 8192)", CHC_ECONFIG,
               msg);
    EXPECT_ERR("MergeTree(EventDate, intHash32(UserID), (CounterID, EventDate, "
               "intHash32(UserID)), 8192)",
               CHC_ECONFIG, msg);
    EXPECT_ERR("ReplicatedMergeTree('/p', '{r}', EventDate, (k), 8192)", CHC_ECONFIG, msg);
    EXPECT_ERR("ReplicatedCollapsingMergeTree('/p', '{r}', EventDate, (k), 8192, Sign)",
               CHC_ECONFIG, msg);
    EXPECT_ERR("ReplacingMergeTree(EventDate, (k), 8192, ver) SETTINGS x = 1", CHC_ECONFIG,
               msg);
}

TEST(unbalanced_and_unterminated)
{
    EXPECT_ERR("MergeTree ORDER BY (a, b", CHC_EPARSE,
               "'(' at byte offset 19 is never closed");
    EXPECT_ERR("MergeTree ORDER BY a)", CHC_EPARSE, "unexpected ')' at byte offset 20");
    EXPECT_ERR("MergeTree ORDER BY (a]", CHC_EPARSE,
               "'(' at byte offset 19 is closed by ']' at byte offset 21");
    EXPECT_ERR("ReplicatedMergeTree('/p', '{r}) ORDER BY a", CHC_EPARSE,
               "unterminated string literal starting at byte offset 26");
    EXPECT_ERR("MergeTree ORDER BY (a, 'it\\')", CHC_EPARSE,
               "unterminated string literal starting at byte offset 23");
    EXPECT_ERR("MergeTree ORDER BY `a", CHC_EPARSE,
               "unterminated quoted identifier starting at byte offset 19");
    EXPECT_ERR("MergeTree ORDER BY a /* never /* closed */", CHC_EPARSE,
               "unterminated comment starting at byte offset 21");
}

TEST(missing_order_by)
{
    EXPECT_ERR("ENGINE = MergeTree PARTITION BY toYYYYMM(d)", CHC_ECONFIG,
               "engine 'MergeTree' has no ORDER BY clause: add ORDER BY");
    EXPECT_ERR("ReplicatedMergeTree('/p', '{r}')", CHC_ECONFIG, "has no ORDER BY clause");
    EXPECT_ERR("ENGINE = CollapsingMergeTree(Sign)", CHC_ECONFIG, "has no ORDER BY clause");
}

TEST(trailing_garbage_and_statement_separators)
{
    EXPECT_ERR("MergeTree() foo ORDER BY x", CHC_EPARSE,
               "unexpected 'foo' at byte offset 12: expected PARTITION BY, ORDER BY");
    EXPECT_ERR("MergeTree ORDER BY x;", CHC_EPARSE, "unexpected ';' at byte offset 20");
    EXPECT_ERR("MergeTree ORDER BY x; DROP TABLE t", CHC_EPARSE, "unexpected ';'");
    EXPECT_ERR("MergeTree [1] ORDER BY x", CHC_EPARSE, "unexpected '['");
    EXPECT_ERR("MergeTree ORDER BY caf\xc3\xa9", CHC_EPARSE,
               "unexpected byte 0xc3 at byte offset 22");
}

TEST(duplicate_and_empty_clauses)
{
    EXPECT_ERR("MergeTree ORDER BY a ORDER BY b", CHC_EPARSE,
               "duplicate ORDER BY at byte offset 21 (first at byte offset 10)");
    EXPECT_ERR("MergeTree ORDER BY a settings x = 1 SETTINGS y = 2", CHC_EPARSE,
               "duplicate SETTINGS");
    EXPECT_ERR("MergeTree ORDER BY", CHC_EPARSE, "ORDER BY at byte offset 10 has no expression");
    EXPECT_ERR("MergeTree ORDER BY PARTITION BY d", CHC_EPARSE, "has no expression");
    EXPECT_ERR("MergeTree ORDER BY a +", CHC_EPARSE,
               "ORDER BY expression ends with '+' at byte offset 21");
    EXPECT_ERR("MergeTree ORDER BY a SETTINGS x = 1,", CHC_EPARSE,
               "SETTINGS expression ends with ','");
}

TEST(lists_must_be_parenthesised)
{
    EXPECT_ERR("MergeTree ORDER BY a, b", CHC_EPARSE,
               "ORDER BY at byte offset 10 has a top-level comma at byte offset 20: wrap a "
               "list in parentheses");
    EXPECT_ERR("MergeTree ORDER BY (a,, b)", CHC_EPARSE, "empty ORDER BY element at byte offset 22: remove the extra comma");
    EXPECT_ERR("MergeTree ORDER BY (a) PRIMARY KEY (a, )", CHC_EPARSE, "empty PRIMARY KEY element");
}

TEST(engine_name_problems)
{
    EXPECT_ERR("ENGINE =", CHC_EPARSE, "missing engine name");
    EXPECT_ERR("ENGINE = ORDER BY a", CHC_EPARSE, "missing engine name");
    EXPECT_ERR("ENGINE = 'MergeTree' ORDER BY a", CHC_EPARSE,
               "expected an engine name at byte offset 9, got ''MergeTree''");
    EXPECT_ERR("ENGINE = = MergeTree ORDER BY a", CHC_EPARSE, "expected an engine name");
    EXPECT_ERR("ReplacingMergeTree(ver,) ORDER BY a", CHC_EPARSE,
               "empty engine argument at byte offset 23");
}

TEST(replication_arguments)
{
    EXPECT_ERR("ReplicatedMergeTree('/clickhouse/tables/{shard}/t') ORDER BY a", CHC_ECONFIG,
               "needs two string arguments ('zookeeper_path', 'replica_name') or none, got 1 "
               "argument");
    EXPECT_ERR("ReplicatedMergeTree('/p', r) ORDER BY a", CHC_ECONFIG,
               "needs two string arguments");
    EXPECT_ERR("ReplicatedMergeTree('', '{r}') ORDER BY a", CHC_ECONFIG,
               "has an empty zookeeper_path");
    EXPECT_ERR("ReplicatedMergeTree('/p\\0', '{r}') ORDER BY a", CHC_ECONFIG,
               "zookeeper_path at byte offset 20 contains a NUL byte");
}

TEST(engine_argument_counts)
{
    EXPECT_ERR("ReplicatedMergeTree(x) ORDER BY a", CHC_ECONFIG,
               "engine 'ReplicatedMergeTree' has 1 engine argument, expected "
               "ReplicatedMergeTree() after the optional 'zookeeper_path', 'replica_name' pair");
    EXPECT_ERR("CollapsingMergeTree() ORDER BY a", CHC_ECONFIG,
               "has 0 engine arguments, expected CollapsingMergeTree(sign)");
    EXPECT_ERR("ReplicatedVersionedCollapsingMergeTree('/p', '{r}', Sign) ORDER BY a",
               CHC_ECONFIG, "expected ReplicatedVersionedCollapsingMergeTree(sign, version)");
    EXPECT_ERR("MergeTree('/p', '{r}') ORDER BY a", CHC_ECONFIG,
               "engine 'MergeTree' has 2 engine arguments, expected MergeTree()");
}

/* ---------------------------------------------------------------------------
 * Building
 * ------------------------------------------------------------------------- */

TEST(build_reproduces_and_plain_drops_replication)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    struct engine_info *e = parse_ok(
        "engine = ReplicatedReplacingMergeTree('/p','{replica}', ver)\n"
        "order by (a, b) partition by d ttl d + interval 1 day settings x = 1");

    ASSERT_OK(engine_build_clause(e, 0, &b, &err));
    ASSERT_STREQ(b.buf,
                 "ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}', ver) "
                 "PARTITION BY d ORDER BY (a, b) TTL d + interval 1 day SETTINGS x = 1");
    chc_buf_reset(&b);
    ASSERT_OK(engine_build_clause(e, 1, &b, &err));
    ASSERT_STREQ(b.buf, "ENGINE = ReplacingMergeTree(ver) PARTITION BY d ORDER BY (a, b) "
                        "TTL d + interval 1 day SETTINGS x = 1");
    chc_buf_release(&b);
    engine_free(e);
}

TEST(build_golden_strings)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    struct engine_info *e;

    e = parse_ok("ReplicatedMergeTree('/clickhouse/tables/{shard}/hits', '{replica}') "
                 "PARTITION BY toYYYYMM(EventDate) ORDER BY (CounterID, EventDate) "
                 "PRIMARY KEY CounterID SAMPLE BY intHash32(UserID)");
    ASSERT_OK(engine_build_clause(e, 0, &b, &err));
    ASSERT_STREQ(b.buf, "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/hits', "
                        "'{replica}') PARTITION BY toYYYYMM(EventDate) ORDER BY (CounterID, "
                        "EventDate) PRIMARY KEY CounterID SAMPLE BY intHash32(UserID)");
    chc_buf_reset(&b);
    ASSERT_OK(engine_build_clause(e, 1, &b, &err));
    ASSERT_STREQ(b.buf, "ENGINE = MergeTree() PARTITION BY toYYYYMM(EventDate) ORDER BY "
                        "(CounterID, EventDate) PRIMARY KEY CounterID SAMPLE BY "
                        "intHash32(UserID)");
    chc_buf_reset(&b);
    e = engine_free(e);

    e = parse_ok("ReplicatedMergeTree ORDER BY tuple()");
    ASSERT_OK(engine_build_clause(e, 0, &b, &err));
    ASSERT_STREQ(b.buf, "ENGINE = ReplicatedMergeTree() ORDER BY tuple()");
    chc_buf_reset(&b);
    e = engine_free(e);

    /* Quotes and backslashes in the replication pair are re-escaped. */
    e = parse_ok("ReplicatedMergeTree('/p/it''s', 'a\\\\b') ORDER BY k");
    ASSERT_OK(engine_build_clause(e, 0, &b, &err));
    ASSERT_STREQ(b.buf, "ENGINE = ReplicatedMergeTree('/p/it\\'s', 'a\\\\b') ORDER BY k");
    chc_buf_release(&b);
    engine_free(e);
}

TEST(build_appends_and_leaves_buffer_alone_on_failure)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf b;
    struct engine_info *e = parse_ok("MergeTree ORDER BY (a, b)");

    chc_buf_init(&b, 30);
    ASSERT_OK(chc_buf_addstr(&b, "CREATE TABLE t (a UInt8) "));
    ASSERT_EQ(engine_build_clause(e, 0, &b, &err), CHC_ETOOBIG);
    ASSERT_STREQ(b.buf, "CREATE TABLE t (a UInt8) ");
    ASSERT_CONTAINS(err.msg, "cannot build the ENGINE clause");
    chc_buf_release(&b);
    chc_buf_init(&b, 0);
    ASSERT_OK(chc_buf_addstr(&b, "CREATE TABLE t (a UInt8, b UInt8) "));
    ASSERT_OK(engine_build_clause(e, 0, &b, &err));
    ASSERT_STREQ(b.buf, "CREATE TABLE t (a UInt8, b UInt8) ENGINE = MergeTree() ORDER BY (a, b)");
    chc_buf_release(&b);
    engine_free(e);
}

TEST(free_and_equal_are_null_safe)
{
    struct engine_info *a = parse_ok("MergeTree ORDER BY (a, b)");
    struct engine_info *b = parse_ok("MergeTree ORDER BY (a, c)");

    ASSERT_NULL(engine_free(NULL));
    ASSERT_EQ(engine_equal(NULL, NULL), 1);
    ASSERT_EQ(engine_equal(a, NULL), 0);
    ASSERT_EQ(engine_equal(a, a), 1);
    ASSERT_EQ(engine_equal(a, b), 0);
    ASSERT_NULL(engine_free(a));
    engine_free(b);
}

TAP_MAIN()

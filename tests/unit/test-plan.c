/* test-plan.c — the SQL text of every planning step against golden strings:
 * partition literals, piece and routing filters (weights, signed keys,
 * non-deterministic keys), ZooKeeper names, proximity order. */
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/sql/plan.h"
#include "chcopier/config/task.h"
#include "tap.h"

#define TASK_FMT \
 \
    "<clickhouse><remote_servers>" \
    "<src><shard><replica><host>db-eu-1.example</host><port>9000</port></replica></shard>" \
    "<shard><replica><host>db-us-7.example</host><port>9000</port></replica></shard>" \
    "<shard><replica><host>localhost</host><port>9000</port></replica></shard></src>" \
    "<dst><shard><weight>1</weight><replica><host>a</host><port>9000</port></replica></shard>" \
    "<shard><weight>2</weight><replica><host>b</host><port>9000</port></replica></shard>" \
    "<shard><weight>0</weight><replica><host>c</host><port>9000</port></replica></shard>" \
    "</dst></remote_servers><max_workers>2</max_workers><tables><t>" \
    "<cluster_pull>src</cluster_pull><database_pull>db</database_pull>" \
    "<table_pull>a</table_pull><cluster_push>dst</cluster_push>" \
    "<database_push>db</database_push><table_push>hits</table_push>" \
    "<engine>%s</engine><sharding_key>%s</sharding_key>" \
    "<number_of_splits>5</number_of_splits></t></tables></clickhouse>"

static struct cfg_task *load(const char *engine, const char *key)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;

    if (chc_buf_addf(&b, TASK_FMT, engine, key) < 0)
        abort();
    if (cfg_task_parse(b.buf, b.len, "t.xml", &t, &e) < 0) {
        printf("# %s\n", e.msg);
        abort();
    }
    chc_buf_release(&b);
    return t;
}

#define ENG "MergeTree PARTITION BY toYYYYMM(d) ORDER BY (CounterID, intHash32(UserID) DESC)"

TEST(parse_values)
{
    struct chc_err e = CHC_ERR_INIT;
    char **v = NULL;
    size_t n = 0;

    ASSERT_OK(plan_parse_values("(201801),('2018-01-01'),((1,'a)b')),('x\\'y')\n", &v, &n, &e));
    ASSERT_EQ(n, 4);
    ASSERT_STREQ(v[0], "201801");
    ASSERT_STREQ(v[1], "'2018-01-01'");
    ASSERT_STREQ(v[2], "(1,'a)b')");
    ASSERT_STREQ(v[3], "'x\\'y'");
    chc_strv_free(v, n);
    ASSERT_OK(plan_parse_values("", &v, &n, &e));
    ASSERT_EQ(n, 0);
    ASSERT_EQ(plan_parse_values("(1),(2", &v, &n, &e), CHC_EPARSE);
    ASSERT_EQ(plan_parse_values("garbage", &v, &n, &e), CHC_EPARSE);
}

TEST(partition_clause_and_filter)
{
    struct cfg_task *t = load(ENG, "UserID");
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(plan_partition_clause("201801", &b));
    ASSERT_STREQ(b.buf, "PARTITION 201801");
    chc_buf_reset(&b);
    ASSERT_OK(plan_partition_clause(PLAN_UNPARTITIONED, &b));
    ASSERT_STREQ(b.buf, "PARTITION ID 'all'");
    chc_buf_reset(&b);
    ASSERT_OK(plan_partition_filter(&t->tables[0], "201801", &b));
    ASSERT_STREQ(b.buf, "(toYYYYMM(d)) = 201801");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(partition_set_filter)
{
    struct cfg_task *t = load(ENG, "UserID");
    struct chc_buf b = CHC_BUF_INIT;
    const char *lits[] = {"201801", "201802", "201803"};

    ASSERT_OK(plan_partition_set_filter(&t->tables[0], lits, 1, &b));
    ASSERT_STREQ(b.buf, "(toYYYYMM(d)) = 201801");
    chc_buf_reset(&b);
    ASSERT_OK(plan_partition_set_filter(&t->tables[0], lits, 3, &b));
    ASSERT_STREQ(b.buf, "(toYYYYMM(d)) IN (201801, 201802, 201803)");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(small_partitions_are_grouped)
{
    /* 10 + 20 + 30 fit in 60; 50 starts a new group; 100 >= 60 stands
     * alone and takes no members; 5, 5 group; unknown sizes never group. */
    long long rows[] = {10, 20, 30, 50, 100, 5, 5, -1, 3};
    size_t lead[9], i;
    size_t want[] = {0, 0, 0, 3, 4, 5, 5, 7, 8};

    plan_group_parts(rows, 9, 60, 64, lead);
    for (i = 0; i < 9; i++)
        ASSERT_EQ(lead[i], want[i]);
    /* at most max_group members */
    {
        long long r4[] = {1, 1, 1, 1, 1};
        size_t l4[5], w4[] = {0, 0, 2, 2, 4};
        plan_group_parts(r4, 5, 60, 2, l4);
        for (i = 0; i < 5; i++)
            ASSERT_EQ(l4[i], w4[i]);
        /* min_piece_rows 0: every partition alone */
        plan_group_parts(r4, 5, 0, 64, l4);
        for (i = 0; i < 5; i++)
            ASSERT_EQ(l4[i], i);
    }
}

TEST(piece_filter_hashes_key_columns)
{
    struct cfg_task *t = load(ENG, "UserID");
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_EQ(plan_splits(&t->tables[0]), 5);
    ASSERT_OK(plan_key_expr(&t->tables[0], 1, &b));
    ASSERT_STREQ(b.buf, "intHash32(UserID)"); /* DESC dropped */
    chc_buf_reset(&b);
    ASSERT_OK(plan_piece_filter("CounterID, toString(u)", 5, 3, &b));
    ASSERT_STREQ(b.buf, "cityHash64(CounterID, toString(u)) % 5 = 3");
    chc_buf_reset(&b);
    ASSERT_OK(plan_piece_filter("CounterID", 1, 0, &b));
    ASSERT_STREQ(b.buf, "1");
    chc_buf_reset(&b);
    ASSERT_OK(plan_piece_filter("", 5, 0, &b));
    ASSERT_STREQ(b.buf, "1");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(small_partitions_get_fewer_pieces)
{
    struct cfg_task *t = load(ENG, "UserID");
    const struct cfg_table *tb = &t->tables[0];

    ASSERT_EQ(plan_part_splits(tb, -1, PLAN_PIECE_MIN_ROWS), 5);
    ASSERT_EQ(plan_part_splits(tb, 0, PLAN_PIECE_MIN_ROWS), 1);
    ASSERT_EQ(plan_part_splits(tb, 999999, PLAN_PIECE_MIN_ROWS), 1);
    ASSERT_EQ(plan_part_splits(tb, 2500000, PLAN_PIECE_MIN_ROWS), 2);
    ASSERT_EQ(plan_part_splits(tb, 100000000, PLAN_PIECE_MIN_ROWS), 5);
    ASSERT_EQ(plan_part_splits(tb, 10, 0), 5); /* 0: always as configured */
    ASSERT_EQ(plan_part_splits(tb, 30, 10), 3);
    cfg_task_free(t);
}

TEST(empty_key_means_one_piece)
{
    struct cfg_task *t = load("MergeTree ORDER BY tuple()", "UserID");
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_EQ(plan_splits(&t->tables[0]), 1);
    ASSERT_OK(plan_piece_filter(NULL, plan_splits(&t->tables[0]), 0, &b));
    ASSERT_STREQ(b.buf, "1");
    chc_buf_reset(&b);
    ASSERT_OK(plan_partition_filter(&t->tables[0], PLAN_UNPARTITIONED, &b));
    ASSERT_STREQ(b.buf, "1");
    chc_buf_release(&b);
    cfg_task_free(t);
}

static int route(const struct cfg_table *tb, const char *type, int constant, size_t shard,
                 struct chc_buf *b, struct chc_err *e)
{
    struct plan_key k = {type, constant, "CounterID, intHash32(UserID)"};

    chc_buf_reset(b);
    return plan_route_filter(tb, &k, shard, b, e);
}

TEST(route_filter_respects_weights)
{
    struct cfg_task *t = load(ENG, "UserID");
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    /* weights 1, 2, 0: slots [0] -> shard 1, [1, 2] -> shard 2, none -> 3 */
    ASSERT_OK(route(&t->tables[0], "UInt64", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "UInt64", 0, 1, &b, &e));
    ASSERT_STREQ(b.buf, "(UserID) % 3 BETWEEN 1 AND 2");
    ASSERT_OK(route(&t->tables[0], "UInt64", 0, 2, &b, &e));
    ASSERT_STREQ(b.buf, "0");
    chc_buf_release(&b);
    cfg_task_free(t);
}

/* StorageDistributed::createSelector: a non-constant IntN key is cast to
 * UInt32 (N <= 32) or UInt64, sign-extending negatives; a constant one to
 * the unsigned type of its own width; LowCardinality by its dictionary
 * type. */
TEST(route_filter_casts_keys_as_distributed)
{
    struct cfg_task *t = load(ENG, "UserID");
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(route(&t->tables[0], "Int8", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "toUInt32(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "Int16", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "toUInt32(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "Int32", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "toUInt32(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "Int64", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "toUInt64(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "Int8", 1, 0, &b, &e));
    ASSERT_STREQ(b.buf, "toUInt8(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "UInt8", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "(UserID) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "LowCardinality(Int16)", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "toUInt32(CAST(UserID AS Int16)) % 3 = 0");
    ASSERT_OK(route(&t->tables[0], "LowCardinality(UInt16)", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "CAST(UserID AS UInt16) % 3 = 0");
    ASSERT_EQ(route(&t->tables[0], "String", 0, 0, &b, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "<sharding_key> 'UserID' is of type String");
    ASSERT_EQ(route(&t->tables[0], "Nullable(Int8)", 0, 0, &b, &e), CHC_ECONFIG);
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(expr_uses_columns)
{
    static const char *const cols[] = {"id", "my col", "d"};

    ASSERT(plan_expr_uses_columns("intHash64(id)", cols, 3));
    ASSERT(plan_expr_uses_columns("`my col` + 1", cols, 3));
    ASSERT(!plan_expr_uses_columns("-1", cols, 3));
    ASSERT(!plan_expr_uses_columns("id(1) + 'id'", cols, 3));
    ASSERT(!plan_expr_uses_columns("idx", cols, 3));
}

TEST(nondeterministic_key_is_replaced)
{
    struct cfg_task *t = load(ENG, "rand()");
    struct cfg_task *u = load("MergeTree ORDER BY tuple()", "rand64() % 7");
    struct plan_key none = {"UInt32", 0, ""};
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT(plan_is_nondeterministic("rand()"));
    ASSERT(plan_is_nondeterministic("x + RAND64 ()"));
    ASSERT(!plan_is_nondeterministic("cityHash64(operand, 'rand()')"));
    ASSERT(!plan_is_nondeterministic("brand(x)"));
    ASSERT_OK(route(&t->tables[0], "UInt32", 0, 0, &b, &e));
    ASSERT_STREQ(b.buf, "sipHash64(CounterID, intHash32(UserID)) % 3 = 0");
    ASSERT_EQ(plan_route_filter(&u->tables[0], &none, 0, &b, &e), CHC_ECONFIG);
    ASSERT_CONTAINS(e.msg, "is not deterministic");
    chc_buf_release(&b);
    cfg_task_free(t);
    cfg_task_free(u);
}

TEST(settings_clause)
{
    char n1[] = "max_threads", v1[] = "4", n2[] = "readonly", v2[] = "1", n3[] = "load_balancing",
         v3[] = "in_order", n4[] = "max_threads", v4[] = "1", n5[] = "max_block_size",
         v5[] = "8192", n6[] = "prefer", v6[] = "it's", n7[] = "ratio", v7[] = "-0.5";
    struct cfg_setting a[] = {{n1, v1}, {n2, v2}, {n3, v3}};
    struct cfg_setting b[] = {{n4, v4}, {n5, v5}, {n6, v6}, {n7, v7}};
    struct cfg_settings sa = {a, 3}, sb = {b, 4}, none = {NULL, 0};
    const struct cfg_settings *both[2] = {&sa, &sb}, *empty[2] = {&none, &none};
    struct chc_buf out = CHC_BUF_INIT;

    ASSERT_OK(plan_settings_clause(both, 2, &out));
    ASSERT_STREQ(out.buf, " SETTINGS load_balancing = 'in_order', max_threads = 1, "
                          "max_block_size = 8192, prefer = 'it\\'s', ratio = -0.5");
    chc_buf_reset(&out);
    ASSERT_OK(plan_settings_clause(empty, 2, &out));
    ASSERT_STREQ(out.buf, "");
    chc_buf_release(&out);
}

TEST(staging_names)
{
    struct cfg_task *t = load(ENG, "UserID");
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(plan_piece_table(&t->tables[0], 4, &b));
    ASSERT_STREQ(b.buf, "hits_piece_4");
    chc_buf_reset(&b);
    ASSERT_OK(plan_assembly_table(&t->tables[0], &b));
    ASSERT_STREQ(b.buf, "hits_assembly");
    chc_buf_release(&b);
    cfg_task_free(t);
}

TEST(proximity_order)
{
    struct cfg_task *t = load(ENG, "UserID");
    const struct cfg_cluster *c = t->tables[0].pull;
    int local[3] = {0, 0, 1};
    int none[3] = {0, 0, 0};
    size_t order[3];

    ASSERT_EQ(plan_hostname_difference("db-us-1.example", "db-us-7.example"), 1);
    plan_shard_order(c, "db-us-1.example", local, order);
    ASSERT_EQ(order[0], 2); /* local first */
    ASSERT_EQ(order[1], 1); /* then the most alike name */
    ASSERT_EQ(order[2], 0);
    plan_shard_order(c, "db-eu-2.example", none, order);
    ASSERT_EQ(order[0], 0);
    cfg_task_free(t);
}

TAP_MAIN()

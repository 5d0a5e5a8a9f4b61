/* test-state.c — the ZooKeeper layout and node codecs (state/layout.h,
 * state/codec.h) against golden strings and round trips. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/layout.h"
#include "tap.h"

TEST(node_names_round_trip)
{
    struct chc_buf a = CHC_BUF_INIT, b = CHC_BUF_INIT;

    ASSERT_OK(st_node_name("(1,'a/b')", &a));
    ASSERT_STREQ(a.buf, "%281%2C%27a%2Fb%27%29");
    ASSERT(strchr(a.buf, '/') == NULL);
    ASSERT_OK(st_node_unname(a.buf, &b));
    ASSERT_STREQ(b.buf, "(1,'a/b')");
    chc_buf_reset(&b);
    ASSERT_EQ(st_node_unname("%2", &b), -EINVAL);
    chc_buf_release(&a);
    chc_buf_release(&b);
}

TEST(paths)
{
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(st_path_lock("/t", "201801", "move", &b));
    ASSERT_STREQ(b.buf, "/t/locks/201801#move");
    ASSERT_OK(st_path_part("/t", "x", 3, &b));
    ASSERT_STREQ(b.buf, "/t/parts/x/3");
    ASSERT_OK(st_path_part("/t", "x", -1, &b));
    ASSERT_STREQ(b.buf, "/t/parts/x");
    ASSERT_OK(st_path_task("/task", ST_DESCRIPTION, NULL, &b));
    ASSERT_STREQ(b.buf, "/task/description");
    ASSERT_OK(st_path_task("/task", ST_WORKERS, "w1", &b));
    ASSERT_STREQ(b.buf, "/task/workers/w1");
    ASSERT_OK(st_path_slot("/task", "w1", 7, &b));
    ASSERT_STREQ(b.buf, "/task/active/w1#7");
    ASSERT_OK(st_path_tnode("/t", ST_STAGING_RESET, NULL, &b));
    ASSERT_STREQ(b.buf, "/t/staging_reset");
    ASSERT_OK(st_path_tnode("/t", ST_PLIST, NULL, &b));
    ASSERT_STREQ(b.buf, "/t/plist");
    ASSERT_OK(st_path_chunk("/t", 12, &b));
    ASSERT_STREQ(b.buf, "/t/plist/12");
    ASSERT_OK(st_path_takeover("/t/locks/p#0", &b));
    ASSERT_STREQ(b.buf, "/t/locks/p#0.takeover");
    ASSERT_OK(st_path_child("/t/locks", "p#0", &b));
    ASSERT_STREQ(b.buf, "/t/locks/p#0");
    chc_buf_release(&b);
}

TEST(piece_state_round_trip)
{
    unsigned char done[3] = {1, 0, 1}, back[3] = {9, 9, 9};
    struct piece_state ps = {.done = done, .started = 1, .rows = 42, .ms = 7},
                       got = {.done = back, .version = 5, .exists = 1};
    struct chc_buf b = CHC_BUF_INIT;

    snprintf(ps.error, sizeof(ps.error), "%s", "boom");
    ASSERT_OK(st_piece_encode(&ps, 3, &b));
    ASSERT_STREQ(b.buf, "done 1,3\nstarted 2\nrows 42\nms 7\nerror boom\n");
    ASSERT_OK(st_piece_decode(b.buf, 3, &got));
    ASSERT_EQ(got.done[0], 1);
    ASSERT_EQ(got.done[1], 0);
    ASSERT_EQ(got.done[2], 1);
    ASSERT_EQ(got.started, 1);
    ASSERT_EQ(got.rows, 42);
    ASSERT_EQ(got.ms, 7);
    ASSERT_STREQ(got.error, "boom");
    ASSERT_EQ(got.version, 5); /* the node's, not the data's */
    ASSERT_OK(st_piece_decode("future line\ndone \n", 3, &got));
    ASSERT_EQ(got.done[0] + got.done[1] + got.done[2], 0);
    ASSERT_EQ(got.started, -1);
    ASSERT_EQ(st_piece_decode("done 1;2\n", 3, &got), -EINVAL);
    chc_buf_release(&b);
}

struct collected {
    char lits[4][32];
    unsigned splits[4];
    unsigned char shards[4][2];
    long long rows[4];
    size_t n;
};

static int collect(void *arg, const struct st_plist_entry *e)
{
    struct collected *c = arg;

    if (c->n == 4)
        return -1;
    snprintf(c->lits[c->n], sizeof(c->lits[c->n]), "%s", e->lit);
    c->splits[c->n] = e->splits;
    memcpy(c->shards[c->n], e->on_shard, 2);
    c->rows[c->n++] = e->rows;
    return 0;
}

TEST(partition_list_round_trip)
{
    unsigned char s1[2] = {1, 1}, s2[2] = {0, 1};
    struct st_plist_entry e[3] = {
        {.lit = "'2018-01-01'", .on_shard = s1, .splits = 3, .rows = 100, .hash = 7},
        {.lit = "'2018-01-02'", .on_shard = s2, .splits = 0, .rows = -1, .hash = 0},
        {.lit = "(1, 'a\\tb')", .on_shard = s1, .splits = 1, .rows = 5, .hash = 9},
    };
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    struct collected c = {.n = 0};
    uint64_t key = 1;

    ASSERT_OK(st_plist_encode(e, 3, 2, 0xabcULL, &b));
    ASSERT_STREQ(b.buf, "#sums 0000000000000abc\n"
                        "1,2\t3\t100\t7\t'2018-01-01'\n"
                        "2\t=\t-1\t0\t'2018-01-02'\n"
                        "1,2\t1\t5\t9\t(1, 'a\\tb')\n");
    ASSERT_OK(st_plist_decode(b.buf, 2, &key, collect, &c, &err));
    ASSERT_EQ(key, 0xabc);
    ASSERT_EQ(c.n, 3);
    ASSERT_STREQ(c.lits[1], "'2018-01-02'");
    ASSERT_EQ(c.splits[1], 0);
    ASSERT_EQ(c.shards[1][0], 0);
    ASSERT_EQ(c.shards[1][1], 1);
    ASSERT_EQ(c.rows[1], -1);
    ASSERT_STREQ(c.lits[2], "(1, 'a\\tb')");
    ASSERT_EQ(st_plist_decode("1\t2\t3\n", 2, &key, collect, &c, &err), CHC_ESTATE);
    ASSERT_CONTAINS(err.msg, "bad partition list");
    chc_buf_release(&b);
}

TEST(claims_and_registration)
{
    struct chc_buf b = CHC_BUF_INIT;
    char id[64], key[64];

    ASSERT_OK(st_claim_encode("h#20260101000000_7", "boot/pid:[4026531836]", &b));
    ASSERT_STREQ(b.buf, "h#20260101000000_7\nhostkey boot/pid:[4026531836]\n");
    st_claim_decode(b.buf, id, sizeof(id), key, sizeof(key));
    ASSERT_STREQ(id, "h#20260101000000_7");
    ASSERT_STREQ(key, "boot/pid:[4026531836]");
    st_claim_decode("h#1_2", id, sizeof(id), key, sizeof(key)); /* before hostkeys */
    ASSERT_STREQ(id, "h#1_2");
    ASSERT_STREQ(key, "");
    ASSERT_OK(st_registration_encode("h", 7, "k", "a\nb", &b));
    ASSERT_STREQ(b.buf, "host h\npid 7\nhostkey k\nnote a\nnote b\n");
    chc_buf_release(&b);
}

TAP_MAIN()

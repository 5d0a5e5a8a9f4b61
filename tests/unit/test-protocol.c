/* test-protocol.c — every transition of the exactly-once protocol's pure
 * decisions (protocol.h). */
#include <string.h>

#include "chcopier/state/protocol.h"
#include "tap.h"

TEST(piece_transitions)
{
    unsigned char none[3] = {0, 0, 0}, d2[3] = {0, 1, 0};

    /* never started: nothing in staging */
    ASSERT_EQ(protocol_piece(0, none, -1, 3, 0), PIECE_COPY);
    /* this shard done */
    ASSERT_EQ(protocol_piece(1, d2, -1, 3, 1), PIECE_SKIP);
    /* another shard done cleanly, nobody copying */
    ASSERT_EQ(protocol_piece(1, d2, -1, 3, 0), PIECE_COPY);
    /* a copier died (started, not done) */
    ASSERT_EQ(protocol_piece(1, d2, 2, 3, 0), PIECE_CLEAN_THEN_COPY);
    ASSERT_EQ(protocol_piece(1, none, 0, 3, 0), PIECE_CLEAN_THEN_COPY);
    /* reset after a mismatch: the node exists, no shard done */
    ASSERT_EQ(protocol_piece(1, none, -1, 3, 0), PIECE_CLEAN_THEN_COPY);
    /* done wins over started (a record of both cannot hurt the skip) */
    ASSERT_EQ(protocol_piece(1, d2, 1, 3, 1), PIECE_SKIP);
}

TEST(move_states)
{
    struct proto_sums e = {0, 0};

    ASSERT_EQ(protocol_move("", &e), MOVE_ASSEMBLE);
    ASSERT_EQ(protocol_move("assembling", &e), MOVE_REASSEMBLE);
    ASSERT_EQ(protocol_move("assembled 10 77", &e), MOVE_RECHECK);
    ASSERT_EQ(e.rows, 10);
    ASSERT_EQ(e.hash, 77);
    ASSERT_EQ(protocol_move("moved 11 78", &e), MOVE_VERIFY);
    ASSERT_EQ(e.rows, 11);
    ASSERT_EQ(protocol_move("done 12 18446744073709551615", &e), MOVE_DONE);
    ASSERT(e.hash == 18446744073709551615ULL);
    ASSERT_EQ(protocol_move("assembled 10", &e), MOVE_BAD_STATE);
    ASSERT_EQ(protocol_move("moved 1 2 3", &e), MOVE_BAD_STATE);
    ASSERT_EQ(protocol_move("replaced 1 2", &e), MOVE_BAD_STATE);
    ASSERT_EQ(protocol_move("assembling ", &e), MOVE_BAD_STATE);
}

TEST(assembled_checks)
{
    struct proto_sums before = {5, 100}, src = {10, 200}, ok = {15, 300}, more = {16, 301},
                      same_count = {15, 299};

    ASSERT_EQ(protocol_assembled(1, ok, before, src), ASSEMBLED_OK);
    ASSERT_EQ(protocol_assembled(1, more, before, src), ASSEMBLED_MISMATCH);
    /* equal count, other rows: the checksum catches it */
    ASSERT_EQ(protocol_assembled(1, same_count, before, src), ASSEMBLED_MISMATCH);
    ASSERT_EQ(protocol_assembled(0, ok, before, src), ASSEMBLED_STRAY);
}

TEST(recheck_before_replace)
{
    struct proto_sums exp = {15, 300}, empty = {0, 0}, before = {5, 100};

    ASSERT_EQ(protocol_recheck(1, exp, 1, before, exp), RECHECK_REPLACE);
    /* staging re-created: the assembly is empty; the REPLACE ran already */
    ASSERT_EQ(protocol_recheck(1, empty, 1, exp, exp), RECHECK_VERIFY_ONLY);
    /* staging re-created, the REPLACE never ran: never replace with nothing */
    ASSERT_EQ(protocol_recheck(1, empty, 1, before, exp), RECHECK_RECOPY);
    /* replicas of the assembly disagree */
    ASSERT_EQ(protocol_recheck(0, exp, 1, before, exp), RECHECK_RECOPY);
    ASSERT_EQ(protocol_recheck(0, exp, 0, exp, exp), RECHECK_RECOPY);
}

TEST(shards_record_round_trip)
{
    struct proto_shard sh[2] = {{{10, 100}, {4, 40}}, {{7, 70}, {0, 0}}}, got[2];
    struct chc_buf b = CHC_BUF_INIT;
    struct proto_sums e;

    ASSERT_EQ(chc_buf_addstr(&b, "assembled 17 170"), 0);
    ASSERT_EQ(protocol_shards_format(sh, 2, &b), 0);
    ASSERT_STREQ(b.buf, "assembled 17 170 2 10 100 4 40 7 70 0 0");
    ASSERT_EQ(protocol_move(b.buf, &e), MOVE_RECHECK);
    ASSERT_EQ(e.rows, 17);
    ASSERT_EQ(protocol_shards_parse(b.buf, got, 2), 2);
    ASSERT_EQ(got[0].assembly.rows, 10);
    ASSERT_EQ(got[0].prior.hash, 40);
    ASSERT_EQ(got[1].assembly.hash, 70);
    ASSERT_EQ(protocol_shards_parse(b.buf, got, 1), -1); /* more shards than the task has */
    ASSERT_EQ(protocol_shards_parse("assembled 17 170", got, 2), 0);
    ASSERT_EQ(protocol_shards_parse("assembled 17 170 2 10 100 4 40 7 70 0", got, 2), -1);
    ASSERT_EQ(protocol_shards_parse("assembled 17 170 1 1 2 3 4 x", got, 2), -1);
    ASSERT_EQ(protocol_move("assembled 17 170 2 10 100 4", &e), MOVE_BAD_STATE);
    ASSERT_EQ(protocol_move("moved 17 170 2 10 100 4 40 7 70 0 0", &e), MOVE_BAD_STATE);
    chc_buf_release(&b);
}

/* Two shards; each assembly = prior + new. The REPLACE of an earlier
 * attempt may have run on some shards only. */
TEST(recheck_shard_by_shard)
{
    struct proto_shard rec[2] = {{{10, 100}, {4, 40}}, {{7, 70}, {3, 30}}};
    struct proto_shard_now now[2];
    unsigned char rp[2];
#define NOW(s, a, d) now[s] = (struct proto_shard_now){a, d, 1, 1}
    struct proto_sums gone = {0, 0};

    /* nothing replaced, assemblies intact */
    NOW(0, rec[0].assembly, rec[0].prior);
    NOW(1, rec[1].assembly, rec[1].prior);
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_REPLACE);
    ASSERT(rp[0] && rp[1]);
    /* shard 0 replaced, then its assembly lost; shard 1 intact: only shard 1 */
    NOW(0, gone, rec[0].assembly);
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_REPLACE);
    ASSERT(!rp[0] && rp[1]);
    /* both replaced and lost */
    NOW(1, gone, rec[1].assembly);
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_VERIFY_ONLY);
    /* the chaos case: shard 1 replaced, shard 0's assembly lost before its
     * REPLACE. Copying again would add shard 1's new rows a second time. */
    NOW(0, gone, rec[0].prior);
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_HALF_MOVED);
    /* ...but when the destination's rows are not kept, copying again is safe */
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 0, rp), RECHECK_RECOPY);
    /* lost everywhere before any REPLACE: copy again */
    NOW(1, gone, rec[1].prior);
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_RECOPY);
    /* a shard with no new rows counts as untouched whatever it did */
    {
        struct proto_shard r2[2] = {{{4, 40}, {4, 40}}, {{7, 70}, {3, 30}}};
        NOW(0, gone, r2[0].assembly);
        NOW(1, gone, r2[1].prior);
        ASSERT_EQ(protocol_recheck_shards(r2, now, 2, 1, rp), RECHECK_RECOPY);
    }
    /* someone wrote into shard 0's destination meanwhile */
    NOW(0, gone, ((struct proto_sums){5, 41}));
    NOW(1, rec[1].assembly, rec[1].prior);
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_CHANGED);
    /* staging nodes of a shard disagree about the assembly, destination untouched */
    now[0] = (struct proto_shard_now){rec[0].assembly, rec[0].prior, 0, 1};
    ASSERT_EQ(protocol_recheck_shards(rec, now, 2, 1, rp), RECHECK_RECOPY);
#undef NOW
}

TEST(verified)
{
    struct proto_sums exp = {15, 300}, off = {15, 301};

    ASSERT_EQ(protocol_verified(1, exp, exp), 1);
    ASSERT_EQ(protocol_verified(1, off, exp), 0);
    ASSERT_EQ(protocol_verified(0, exp, exp), 0);
}

TEST(targets_total)
{
    struct proto_sums per[5] = {{3, 30}, {3, 30}, {4, 40}, {4, 40}, {4, 41}};
    size_t shard[5] = {0, 0, 1, 1, 1}, bad = 99;
    struct proto_sums total;

    ASSERT_EQ(protocol_targets_total(per, shard, 4, &total, &bad), 1);
    ASSERT_EQ(total.rows, 7);
    ASSERT_EQ(total.hash, 70);
    ASSERT_EQ(protocol_targets_total(per, shard, 5, &total, &bad), 0);
    ASSERT_EQ(bad, 4);
    ASSERT_EQ(protocol_targets_total(per, shard, 0, &total, &bad), 1);
    ASSERT_EQ(total.rows, 0);
}

TAP_MAIN()

/* protocol.c — the exactly-once protocol's decisions (protocol.h): pure
 * functions from recorded states and checksums to what to do next. No I/O;
 * the coordinator (piece.c, mover.c) acts on the answers. */
#include <stdio.h>
#include <string.h>

#include "chcopier/state/protocol.h"

#include "base/banned.h"

enum piece_action protocol_piece(int exists, const unsigned char *done, int started,
                                 size_t n_shards, size_t shard)
{
    size_t s;
    int any_done = 0;

    if (shard < n_shards && done[shard])
        return PIECE_SKIP;
    for (s = 0; s < n_shards; s++)
        any_done |= done[s];
    /* A piece nobody ever started holds nothing in staging (the staging
     * tables were emptied when this definition's state was created). One
     * that was started and not finished, or whose shards were all forgotten
     * (a reset), may hold strays. */
    if (exists && (started >= 0 || !any_done))
        return PIECE_CLEAN_THEN_COPY;
    return PIECE_COPY;
}

enum move_from protocol_move(const char *state, struct proto_sums *expected)
{
    static const struct {
        const char *word;
        enum move_from from;
    } with_sums[] = {
        {"assembled", MOVE_RECHECK},
        {"moved", MOVE_VERIFY},
        {"done", MOVE_DONE},
    };
    char word[16], extra;
    size_t i;

    if (!*state)
        return MOVE_ASSEMBLE;
    if (!strcmp(state, "assembling"))
        return MOVE_REASSEMBLE;
    if (sscanf(state, "%15s %llu %llu %c", word, &expected->rows, &expected->hash, &extra) != 3)
        return MOVE_BAD_STATE;
    for (i = 0; i < sizeof(with_sums) / sizeof(with_sums[0]); i++)
        if (!strcmp(word, with_sums[i].word))
            return with_sums[i].from;
    return MOVE_BAD_STATE;
}

static int same(struct proto_sums a, struct proto_sums b)
{
    return a.rows == b.rows && a.hash == b.hash;
}

enum assembled_verdict protocol_assembled(int replicas_agree, struct proto_sums assembly,
                                          struct proto_sums before, struct proto_sums source)
{
    struct proto_sums want = {before.rows + source.rows, before.hash + source.hash};

    if (!replicas_agree)
        return ASSEMBLED_STRAY;
    return same(assembly, want) ? ASSEMBLED_OK : ASSEMBLED_MISMATCH;
}

enum recheck_verdict protocol_recheck(int assembly_agree, struct proto_sums assembly,
                                      int destination_agree, struct proto_sums destination,
                                      struct proto_sums expected)
{
    if (assembly_agree && same(assembly, expected))
        return RECHECK_REPLACE;
    if (destination_agree && same(destination, expected))
        return RECHECK_VERIFY_ONLY;
    return RECHECK_RECOPY;
}

int protocol_verified(int replicas_agree, struct proto_sums destination,
                      struct proto_sums expected)
{
    return replicas_agree && same(destination, expected);
}

int protocol_targets_total(const struct proto_sums *per, const size_t *shard, size_t n,
                           struct proto_sums *total, size_t *bad)
{
    size_t t, first = 0;

    total->rows = total->hash = 0;
    for (t = 0; t < n; t++) {
        if (t == 0 || shard[t] != shard[t - 1]) {
            first = t;
            total->rows += per[t].rows;
            total->hash += per[t].hash;
        } else if (!same(per[t], per[first])) {
            *bad = t;
            return 0;
        }
    }
    return 1;
}

/* protocol.c — the exactly-once protocol's decisions (protocol.h): pure
 * functions from recorded states and checksums to what to do next. No I/O;
 * the coordinator (piece.c, mover.c) acts on the answers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
    int n = sscanf(state, "%15s %llu %llu %c", word, &expected->rows, &expected->hash, &extra);

    if (n == 4 && !strcmp(word, "assembled") && protocol_shards_parse(state, NULL, 0) == 0)
        n = 3; /* the per-shard sums follow; protocol_shards_parse reads them */
    if (n != 3)
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

int protocol_shards_format(const struct proto_shard *sh, size_t n, struct chc_buf *out)
{
    size_t s;
    int r = chc_buf_addf(out, " %zu", n);

    for (s = 0; r == 0 && s < n; s++)
        r = chc_buf_addf(out, " %llu %llu %llu %llu", sh[s].assembly.rows, sh[s].assembly.hash,
                         sh[s].prior.rows, sh[s].prior.hash);
    return r;
}

/* One unsigned decimal at *p (after spaces); 0, or -1 when there is none. */
static int read_ull(const char **p, unsigned long long *v)
{
    char *end;

    while (**p == ' ')
        (*p)++;
    if (**p < '0' || **p > '9')
        return -1;
    errno = 0;
    *v = strtoull(*p, &end, 10);
    if (errno)
        return -1;
    *p = end;
    return 0;
}

/* With out NULL and cap 0: 0 when the tail is well formed, whatever its
 * count (protocol_move's check). */
int protocol_shards_parse(const char *state, struct proto_shard *out, size_t cap)
{
    const char *p = state;
    unsigned long long skip, n, s, v[4];
    int i;

    if (strncmp(p, "assembled ", 10))
        return -1;
    p += 10;
    if (read_ull(&p, &skip) < 0 || read_ull(&p, &skip) < 0)
        return -1;
    if (!*p)
        return 0;
    if (read_ull(&p, &n) < 0 || n == 0 || (out && n > cap))
        return -1;
    for (s = 0; s < n; s++) {
        for (i = 0; i < 4; i++)
            if (read_ull(&p, &v[i]) < 0)
                return -1;
        if (out)
            out[s] = (struct proto_shard){{v[0], v[1]}, {v[2], v[3]}};
    }
    if (*p)
        return -1;
    return out ? (int)n : 0;
}

enum recheck_verdict protocol_recheck_shards(const struct proto_shard *rec,
                                             const struct proto_shard_now *now, size_t n,
                                             int keeps_destination, unsigned char *replace)
{
    size_t s;
    int todo = 0, lost = 0, holds_new = 0, changed = 0;

    for (s = 0; s < n; s++) {
        int dest_after = now[s].destination_ok && same(now[s].destination, rec[s].assembly);
        replace[s] = 0;
        if (dest_after && !same(rec[s].assembly, rec[s].prior))
            holds_new = 1;
        if (now[s].assembly_ok && same(now[s].assembly, rec[s].assembly)) {
            replace[s] = 1;
            todo = 1;
        } else if (dest_after) {
            continue; /* replaced; its assembly is gone and not needed */
        } else if (now[s].destination_ok && same(now[s].destination, rec[s].prior)) {
            lost = 1;
        } else {
            changed = 1;
        }
    }
    if (!keeps_destination)
        return lost || changed ? RECHECK_RECOPY : todo ? RECHECK_REPLACE : RECHECK_VERIFY_ONLY;
    if (changed)
        return RECHECK_CHANGED;
    if (lost)
        return holds_new ? RECHECK_HALF_MOVED : RECHECK_RECOPY;
    return todo ? RECHECK_REPLACE : RECHECK_VERIFY_ONLY;
}

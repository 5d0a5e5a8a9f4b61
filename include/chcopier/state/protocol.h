/* protocol.h — the exactly-once protocol's decisions, as pure functions of
 * what ZooKeeper and the checksums say (docs/design.md, "Claim, copy,
 * clean" and "Move"). The coordinator does the I/O around them; every
 * transition is unit-tested (tests/unit/test-protocol.c).
 *
 * A piece (partition group p, split k) under its claim:
 *   done on this source shard                  -> PIECE_SKIP
 *   started by someone and not finished, or
 *   its node exists with no shard done          -> PIECE_CLEAN_THEN_COPY
 *   otherwise (never started, or other shards done cleanly) -> PIECE_COPY
 *
 * A partition under its move lock, by its recorded state:
 *   ""                    -> MOVE_ASSEMBLE       assemble, check, record assembled
 *   "assembling"          -> MOVE_REASSEMBLE     drop the assembly's partition first
 *   "assembled R H [S]"   -> MOVE_RECHECK        the assembly must still hold R, H
 *   "moved R H"           -> MOVE_VERIFY
 *   "done R H"            -> MOVE_DONE
 *   anything else         -> MOVE_BAD_STATE
 */
#ifndef CHC_PROTOCOL_H
#define CHC_PROTOCOL_H

#include <stddef.h>

#include "chcopier/base/buf.h"

/* Rows and order-independent checksum of some rows. */
struct proto_sums {
    unsigned long long rows;
    unsigned long long hash;
};

enum piece_action {
    PIECE_SKIP,
    PIECE_COPY,
    PIECE_CLEAN_THEN_COPY,
};

/* done[0..n_shards): shards recorded done; started: the shard recorded as
 * copying (-1 none); exists: the piece's node exists. */
enum piece_action protocol_piece(int exists, const unsigned char *done, int started,
                                 size_t n_shards, size_t shard);

enum move_from {
    MOVE_ASSEMBLE,
    MOVE_REASSEMBLE,
    MOVE_RECHECK,
    MOVE_VERIFY,
    MOVE_DONE,
    MOVE_BAD_STATE,
};

/* What to do from a recorded partition state; *expected gets R, H when the
 * state carries them. */
enum move_from protocol_move(const char *state, struct proto_sums *expected);

/* After assembling: the assembly must hold what the destination held (append
 * mode) plus the source's rows, every staging node of a shard alike. */
enum assembled_verdict {
    ASSEMBLED_OK,        /* record "assembled", then REPLACE */
    ASSEMBLED_STRAY,     /* a staging node disagrees with its shard: copy again */
    ASSEMBLED_MISMATCH,  /* not destination + source: copy again */
};

enum assembled_verdict protocol_assembled(int replicas_agree, struct proto_sums assembly,
                                          struct proto_sums before, struct proto_sums source);

/* An assembly recorded by an earlier attempt, before its REPLACE. */
enum recheck_verdict {
    RECHECK_REPLACE,     /* the assembly still holds what was recorded */
    RECHECK_VERIFY_ONLY, /* the destination already holds it: the REPLACE ran */
    RECHECK_RECOPY,      /* the assembly was lost (staging re-created); destination untouched */
    RECHECK_HALF_MOVED,  /* lost on a shard not yet replaced, while another shard was:
                            copying again would double that shard's rows (append mode) */
    RECHECK_CHANGED,     /* a shard's destination is neither before nor after (append mode) */
};

/* Records of "assembled" states written before per-shard sums existed. */
enum recheck_verdict protocol_recheck(int assembly_agree, struct proto_sums assembly,
                                      int destination_agree, struct proto_sums destination,
                                      struct proto_sums expected);

/* Per destination shard, recorded with "assembled" after R and H as
 * " S a_rows a_hash p_rows p_hash" for each of the S shards: what its
 * assembly held, and what its destination partition held before the move
 * (0 0 when it is replaced, not appended to). A REPLACE runs shard by shard,
 * so an attempt that died in it leaves some shards replaced and some not;
 * these sums tell which. */
struct proto_shard {
    struct proto_sums assembly, prior;
};

/* Appends " S a_rows a_hash p_rows p_hash ..." to out. */
int protocol_shards_format(const struct proto_shard *sh, size_t n, struct chc_buf *out);

/* The per-shard sums of an "assembled" state: how many (0: an older record
 * without them), or -1 when malformed or more than cap. */
int protocol_shards_parse(const char *state, struct proto_shard *out, size_t cap);

/* What a shard holds now; *_ok: its staging nodes agree. */
struct proto_shard_now {
    struct proto_sums assembly, destination;
    int assembly_ok, destination_ok;
};

/* The recheck, shard by shard: replace[s] = 1 for each shard whose
 * assembly is intact (REPLACE from it; a repeat is harmless); a shard whose
 * assembly is gone but whose destination already holds it is left alone.
 * Copying again is safe only when no shard holds the new rows yet, or when
 * the destination's rows are not kept (keeps_destination 0). */
enum recheck_verdict protocol_recheck_shards(const struct proto_shard *rec,
                                             const struct proto_shard_now *now, size_t n,
                                             int keeps_destination, unsigned char *replace);

/* After the REPLACE: 1 when the destination holds what was recorded. */
int protocol_verified(int replicas_agree, struct proto_sums destination,
                      struct proto_sums expected);

/* Sums per staging node as one total: the nodes of one destination shard
 * (shard[i], consecutive) hold copies and must agree; shards add up.
 * Returns 1, or 0 with *bad = the first node that disagrees with its
 * shard's first. */
int protocol_targets_total(const struct proto_sums *per, const size_t *shard, size_t n,
                           struct proto_sums *total, size_t *bad);

#endif

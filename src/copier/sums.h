/* sums.h — checksum rounds: the count and checksum of a batch of
 * partitions on many nodes in one round of statements (sums.c).
 */
#ifndef CHC_COPIER_SUMS_H
#define CHC_COPIER_SUMS_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/state/protocol.h"
#include "nodes.h"

struct cfg_replica;
struct tstate;
struct worker;

/* Partitions moved together (one round of statements per step). */
#define MOVE_BATCH 32

/* Rows and checksum of some rows (protocol.h). */
#define sums proto_sums

/* One round of sums statements: one per node for a whole batch, each line
 * of its answer added to the accumulator of its partition on that node. */
struct sums_node {
    const struct cfg_replica *rep;
    struct chc_buf sql;
    enum side side;
    struct sums *acc[MOVE_BATCH]; /* partition i of the statement */
    size_t n_acc;
};

struct sums_round {
    struct sums_node *nodes;
    size_t n, cap;
};

/* Add the source's sums of parts[0..n) into acc[i] (every source shard
 * that has any of them, columns cast to the destination's types). */
int sums__source(struct sums_round *b, const struct tstate *ts, const size_t *parts,
                 struct sums *const *acc, size_t n, struct chc_err *err);
/* Add a destination-side table's sums of parts[0..n) on every staging
 * node: per[j][t] gets partition j on target t. table NULL: each
 * partition's own assembly. */
int sums__targets(struct sums_round *b, const struct tstate *ts, const size_t *parts,
                  struct sums *const *per, size_t n, const char *table, struct chc_err *err);
/* Send the round's statements at once and accumulate the answers; the
 * round is released. */
int sums__run(struct worker *w, struct sums_round *b, struct chc_err *err);
/* sums__run when r is 0 (the round was built), else only release it;
 * returns r or what the run returned. */
int sums__run_if(struct worker *w, struct sums_round *b, int r, struct chc_err *err);
void sums__release(struct sums_round *b);
/* Per-target sums of one partition as one total (protocol_targets_total):
 * -1 and *bad = a target that disagrees with its shard's first. */
int sums__total(const struct tstate *ts, const struct sums *per, struct sums *total, size_t *bad);

#endif

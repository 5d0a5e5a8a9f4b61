/* batch.h — a batch of partition moves (batch.c): what mover.c and
 * checks.c share. Private to src/copier.
 */
#ifndef CHC_COPIER_BATCH_H
#define CHC_COPIER_BATCH_H

#include <stdint.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/sql/move.h"
#include "chcopier/state/protocol.h"
#include "sums.h"

struct tstate;
struct worker;

/* One partition in a batch of moves. */
struct mv {
    size_t part;
    char *lock;
    struct chc_buf state;
    int version;      /* of parts/<p>, read under the lock */
    struct sums src, before_total;
    struct sums *before, *staged, *after; /* per staging node */
    unsigned char *skip;       /* per staging node: its shard is replaced already */
    struct proto_shard *rec;   /* per destination shard, from "assembled" */
    int n_rec;                 /* how many (0: an older record without them) */
    unsigned long long exp_rows, exp_hash;
    int active;    /* still going in this batch */
    int again;     /* an earlier attempt died while assembling */
    int assemble;  /* needs assembling in this attempt */
    int recheck;   /* assembled by an earlier attempt: check the assembly first */
    int replace;   /* needs the REPLACE (not yet recorded moved) */
};

struct batch {
    struct mv mv[MOVE_BATCH];
    size_t n;
    uint64_t t0;
};

/* Log a failed move of m, count it, and leave m out of the rest of the batch. */
void batch__fail(struct worker *w, struct tstate *ts, struct mv *m, const struct chc_err *e,
                 unsigned *move_failures);

/* m's staging does not hold what it should: reset its group's pieces,
 * record "assembling", and leave it out of the batch. */
void batch__recopy(struct worker *w, struct tstate *ts, struct mv *m, const char *why,
                   unsigned *move_failures);

/* One step for every partition of the batch it applies to, on every
 * staging node (a shard m->skip marks is left out of the REPLACE). */
int batch__step(struct worker *w, struct tstate *ts, struct batch *b, enum move_step step,
                struct chc_err *err);

#endif

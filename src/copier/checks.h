/* checks.h — the mover's checks (checks.c): a fresh assembly, an assembly
 * recorded by an earlier attempt (shard by shard), the destination after
 * the REPLACE. Private to src/copier.
 */
#ifndef CHC_COPIER_CHECKS_H
#define CHC_COPIER_CHECKS_H

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "batch.h"

struct tstate;
struct worker;

/* Appends what each shard's assembly and destination held to the
 * "assembled" record of m (protocol_shards_format). */
int checks__record_shards(const struct tstate *ts, const struct mv *m, struct chc_buf *line);

/* 1 when m's fresh assembly holds destination + source; else m is sent to
 * be copied again and 0. */
int checks__assembled(struct worker *w, struct tstate *ts, struct mv *m,
                      unsigned *move_failures);

/* Partitions assembled by an earlier attempt: check before the REPLACE. */
int checks__recheck(struct worker *w, struct tstate *ts, struct batch *b,
                    unsigned *move_failures, struct chc_err *err);

/* After the REPLACE: every destination partition must hold what was recorded. */
int checks__verify(struct worker *w, struct tstate *ts, struct batch *b,
                   unsigned *move_failures, struct chc_err *err);

#endif

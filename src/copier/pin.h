/* pin.h — the staging replica of each shard, pinned for the table (pin.c).
 *
 * A Replicated destination stages on one replica per shard. Every worker
 * must stage a shard on the same one: pieces copied to one replica and
 * assembled or replaced on another are lost to the checks (an assembly
 * "lost" while a REPLACE from the other already reached the destination
 * doubled rows in append mode). The first worker to prepare the table
 * records its choice in <t>/staging; every worker after it stages there,
 * and waits while that replica does not answer.
 */
#ifndef CHC_COPIER_PIN_H
#define CHC_COPIER_PIN_H

#include "chcopier/base/err.h"

struct tstate;
struct worker;

/* Pin (or read back) the table's staging replicas and set ts->targets to
 * them; a no-op for a non-replicated destination (every replica stages).
 * CHC_ECH_CONN while a pinned replica does not answer; CHC_ESTATE when the
 * record names a replica the task does not have. Before the routing choice,
 * which picks among the staging nodes. */
int pin__staging(struct worker *w, struct tstate *ts, struct chc_err *err);

#endif

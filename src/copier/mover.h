/* mover.h — the partition mover (mover.c): exactly-once rule 3. A
 * partition moves under locks/<p>#move: verify staging against the source,
 * assemble, record "assembled", REPLACE PARTITION (idempotent), record
 * "moved", verify the destination, drop staging, record "done". The
 * decisions themselves are state/protocol.c's.
 */
#ifndef CHC_COPIER_MOVER_H
#define CHC_COPIER_MOVER_H

#include "chcopier/base/err.h"

struct tstate;
struct worker;

/* Move every partition whose pieces are all copied; > 0 when some moved,
 * CHC_ECH_PERMANENT when a statement was refused for good. */
int mover__move_ready(struct worker *w, struct tstate *ts, unsigned *move_failures,
                      struct chc_err *err);

#endif

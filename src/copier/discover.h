/* discover.h — partition discovery (discover.c).
 *
 * Which partitions a table task copies, each with its rows and source
 * checksum per source shard (ts->parts), and how they group into copy
 * groups. Reads the source; writes nothing.
 */
#ifndef CHC_COPIER_DISCOVER_H
#define CHC_COPIER_DISCOVER_H

#include <stdint.h>

#include "chcopier/base/err.h"

struct tstate;
struct worker;

/* The hash of the checksum expressions (tstate.sums_key). */
uint64_t discover__sums_key_of(const struct tstate *ts);
/* Discover the partitions (and their source checksums) into ts. */
int discover__partitions(struct worker *w, struct tstate *ts, struct chc_err *err);

#endif

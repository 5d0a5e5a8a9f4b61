/* routing.h — how a table's rows reach their destination shards (routing.c).
 *
 * Distributed routing: a staging node near each source shard that knows a
 * cluster with exactly <cluster_push>'s layout (system.clusters) gets a
 * Distributed table over each piece table (sql/route.h); one INSERT into it
 * reads a piece once and the server sends every row to its shard's staging
 * table. Filter routing: each staging node reads the rows of its own shard
 * (one read of the piece per destination shard). --routing chooses; by
 * default Distributed where it can be used, filter elsewhere, and a table
 * whose routed copy does not match its source falls back to filter.
 */
#ifndef CHC_COPIER_ROUTING_H
#define CHC_COPIER_ROUTING_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_replica;
struct tstate;
struct worker;

/* Choose the table's routing (writes nothing): ts->route, and with
 * Distributed routing ts->route_rep and route_cluster; else ts->route_why.
 * CHC_EPREFLIGHT with --routing distributed when it cannot be used. */
int routing__choose(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Create the chosen routing tables (after the staging tables exist; filter
 * routing if they cannot be made) and record the routing in <t>/routing
 * for `status`. */
int routing__create(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Route by filter from now on (why: for the log and `status`). */
void routing__fallback(struct worker *w, struct tstate *ts, const char *why);
/* Drop the routing tables on reps[0..n). */
int routing__drop(struct worker *w, struct tstate *ts, const struct cfg_replica *const *reps,
                size_t n, struct chc_err *err);
/* "distributed: cluster 'c' on host:port for source shard 1, ..." or
 * "filter: <why>". */
int routing__describe(const struct tstate *ts, struct chc_buf *out);

#endif

/* drops.h — dropping staging data without deadlocking ClickHouse 18.16.
 *
 * A DROP PARTITION (or DROP TABLE) of a piece table waits for the table's
 * write lock, and 18.16's table locks are fair: once a drop waits, later
 * INSERTs queue behind it. A Distributed copy forwards rows to the other
 * staging node as an INSERT that holds that node's piece table while it
 * waits for them. With drops waiting on two staging nodes, the copies
 * started on each can end up waiting for each other behind them: a
 * deadlock that only the servers' 60 s receive timeout broke, failing a
 * copy (seen at 10 000 partitions, docs/design.md "The drop gate").
 *
 * So the drops of a table's staging data go through its drop gate, the
 * ephemeral node <t>/locks/drops: whoever holds it sends drops to one
 * staging node at a time and waits for them before the next, so at no time
 * do two staging nodes have a drop waiting, whichever worker sent it.
 */
#ifndef CHC_COPIER_DROPS_H
#define CHC_COPIER_DROPS_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct cfg_replica;
struct worker;

/* As nodes__drops (sqls[i] on reps[i], or sql on all), through the gate at
 * path gate: our background drops paused and finished first, then node by
 * node in the order of reps. gate NULL: no gate (nothing copies any more,
 * e.g. `chcopier clean`). */
int drops__run(struct worker *w, const char *gate, const struct cfg_replica *const *reps,
               size_t n, const char *const *sqls, const char *sql, struct chc_err *err);
/* Drops whose answer nobody waits for (the release of moved partitions'
 * staging data): sqls[i] on reps[i] through the gate, queued and sent
 * while the loop runs, at most 8 at a time and to one node at a time; a
 * failure is logged (the staging tables go at the table's end anyway).
 * -ENOMEM only. */
int drops__queue(struct worker *w, const char *gate, const struct cfg_replica *const *reps,
                 size_t n, const char *const *sqls, struct chc_err *err);
/* Run the loop until every queued drop has ended (cancel: abandon them
 * first), release the gate, free the queue. Before the staging tables are
 * dropped and before the client goes. */
void drops__wait(struct worker *w, int cancel);

#endif

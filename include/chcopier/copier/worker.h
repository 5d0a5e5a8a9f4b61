/* worker.h — one chcopier process working on a task, and the read-only and
 * maintenance commands that look at the same ZooKeeper state.
 *
 * ZooKeeper layout under <task-path> (docs/design.md has the full story):
 *   description                            P  task XML
 *   workers/<worker-id>                    E  one per running process
 *   active                                 P  slot guard (version = CAS)
 *   active/<worker-id>#<n>                 E  one per piece being copied (max_workers)
 *   tables/<table-id>/<def-hash>/          P  state bound to the table definition
 *     partitions                           P  discovered partitions, one per line
 *     parts/<partition>                    P  move state: "", assembled, moved, done
 *     parts/<partition>/<k>                P  piece state: done shards, started shard
 *     locks/<partition>#<k>                E  piece claim
 *     locks/<partition>#move               E  mover lock
 *     done                                 P  table finished, helpers dropped
 */
#ifndef CHC_WORKER_H
#define CHC_WORKER_H

#include "chcopier/base/err.h"

struct chc_options;
struct cfg_task;
struct cfg_zk;
struct zk_session;

/* Work until every table task is done. Takes ownership of zs. */
int worker_run(const struct chc_options *o, const struct cfg_zk *zkcfg, struct zk_session *zs,
               const char *log_dir, struct chc_err *err);
int worker_status(const struct chc_options *o, struct zk_session *zs, struct chc_err *err);
/* Print partitions, pieces, proximity order, DDL and SQL; writes nothing.
 * Uses `task` (from --task-file) if given, else the uploaded description. */
int worker_plan(const struct chc_options *o, struct zk_session *zs, const struct cfg_task *task,
                struct chc_err *err);
/* Drop staging tables and remove the task's ZooKeeper state (keeps the
 * description); refuses while workers run; needs o->yes. */
int worker_clean(const struct chc_options *o, struct zk_session *zs, struct chc_err *err);

#endif

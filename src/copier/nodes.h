/* nodes.h — ClickHouse statements on one node, or on many at once (bounded
 * in flight, each with the task's settings for its side), through the
 * worker's client and loop. Decides nothing: callers log and retry.
 */
#ifndef CHC_COPIER_NODES_H
#define CHC_COPIER_NODES_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_cluster;
struct cfg_replica;
struct cfg_task;
struct ch_query_params;
struct ch_rows;
struct worker;

/* Which cluster a node belongs to: its settings (<settings_pull> or
 * <settings_push>) go with each statement. SIDE_DROP: a push node, plus the
 * settings that lift the size limit of drops where its version accepts
 * them (dialect_drop_settings). */
enum side { SIDE_PULL, SIDE_PUSH, SIDE_DROP };

void nodes__params(struct ch_query_params *p, const struct cfg_replica *rep, const char *sql,
                   const struct cfg_task *t, enum side side);
/* One statement on one node, synchronously (the loop keeps running). */
int nodes__query(struct worker *w, const struct cfg_replica *rep, enum side side,
                 const char *sql, struct chc_buf *out, struct chc_err *err);
/* Many statements on many nodes at once (sqls[i] on reps[i], or sql on
 * all when sqls is NULL; sides NULL: all SIDE_PUSH), every one must
 * succeed; outs (optional) receive the bodies. */
int nodes__multi(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                 const char *const *sqls, const char *sql, struct chc_buf *outs,
                 const enum side *sides, struct chc_err *err);
/* One statement on n nodes at once; each node's outcome goes to errs[i]
 * (code 0 = answered; its body in outs[i] if outs). timeout_ms > 0 bounds
 * each query (and its connect, at most 5 s). < 0 only for ENOMEM. */
int nodes__each(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                const char *sql, enum side side, long timeout_ms, struct chc_buf *outs,
                struct chc_err *errs, struct chc_err *err);
/* One statement on n nodes at once (push side), every one must succeed. */
int nodes__fanout(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                  const char *sql, struct chc_err *err);
/* KILL QUERY ... SYNC on n nodes at once: as nodes__fanout, but a node
 * where the kill is still waiting after 30 s is logged and let go (what it
 * waits for cannot be killed; rows it may still write land in staging,
 * where the staging check catches them). */
int nodes__kill(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                const char *sql, struct chc_err *err);
/* The errors two drops of the same staging data racing each other give
 * (Code 60, 1000, 49): the data is gone either way. */
int nodes__drop_race(long code);
/* nodes__params, and for a drop (SIDE_DROP) the node's settings for it. */
void nodes__side_params(const struct worker *w, struct ch_query_params *p,
                        const struct cfg_replica *rep, const char *sql, enum side side);
/* Statements that drop staging data (sqls[i] on reps[i], or sql on all),
 * as nodes__multi with SIDE_DROP. A refusal for size (Code 359,
 * max_table_size_to_drop / max_partition_size_to_drop on a server that
 * takes no query setting for it) says so and what to do. */
int nodes__drops(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                 const char *const *sqls, const char *sql, struct chc_err *err);
/* Ask reps[0..n) their version() (bounded, at once) and remember the
 * answers (wk__version_set) so that statements follow them; a node that
 * does not answer keeps 0 (unknown). < 0 only for ENOMEM. */
int nodes__probe_versions(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                          struct chc_err *err);
/* Every replica of cluster c (free the array). */
int nodes__of_cluster(const struct cfg_cluster *c, const struct cfg_replica ***ret,
                      size_t *ret_n);
/* One statement on rep, its TabSeparated answer as rows; *ret NULL when
 * it printed nothing (ch_rows_count(NULL) is 0). */
int nodes__rows(struct worker *w, const struct cfg_replica *rep, enum side side,
                const char *sql, struct ch_rows **ret, struct chc_err *err);
/* DESCRIBE TABLE db.table on rep, as rows. */
int nodes__describe(struct worker *w, const struct cfg_replica *rep, enum side side,
                    const char *db, const char *table, struct ch_rows **ret,
                    struct chc_err *err);

#endif

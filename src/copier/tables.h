/* tables.h — a table task's layout and preparation (tables.c): its
 * ZooKeeper root, source replicas and staging nodes, the destination and
 * staging tables, the columns to copy, partition discovery and the
 * published partition list.
 */
#ifndef CHC_COPIER_TABLES_H
#define CHC_COPIER_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/sql/ddl.h"

struct cfg_cluster;
struct cfg_replica;
struct cfg_table;
struct ch_rows;
struct tstate;
struct worker;

/* SHOW CREATE TABLE of the destination on rep, as the server prints it
 * (staging tables are its twins: sql_staging_from_show). */
int tables__show_create(struct worker *w, const struct cfg_replica *rep,
                        const struct cfg_table *tb, char **ret, struct chc_err *err);
/* CREATE TABLE for `table` with DESCRIBE's rows as its columns (uuid:
 * sql_create_table's). */
int tables__create_sql(const struct cfg_table *tb, const struct ch_rows *cols, const char *table,
                       enum sql_table_kind kind, const char *uuid, struct chc_buf *out,
                       struct chc_err *err);
/* DESCRIBE's rows as columns (pointing into rows); free the array. */
int tables__columns_of(const struct ch_rows *rows, struct sql_column **ret);
/* The staging nodes' replicas, by target (free the array). */
int tables__target_reps(const struct tstate *ts, const struct cfg_replica ***ret);
/* ts->cols from the destination's columns. */
int tables__columns_load(struct tstate *ts, const struct ch_rows *dst_cols, struct chc_err *err);
/* Drop the piece and assembly tables on every live push node. */
int tables__drop_helpers(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Drop (dry: print "would drop ...") every partition assembly of tb on
 * reps[0..n) (sql_list_assemblies). */
int tables__drop_assemblies(struct worker *w, const struct cfg_table *tb,
                            const struct cfg_replica *const *reps, size_t n, int dry,
                            struct chc_err *err);
/* Staging tables still match the destination (after failures). */
int tables__staging_check(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Create the tables on staging nodes that came back since the start. */
void tables__create_on_returned(struct worker *w, struct tstate *ts);
/* Everything about a table task that needs no writes: its ZooKeeper root,
 * source replicas in proximity order, staging nodes, sharding key type. */
int tables__layout(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                   struct chc_err *err);
/* Preflight, tables, partition list: the table ready to copy. */
int tables__prepare(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                    struct chc_err *err);

#endif

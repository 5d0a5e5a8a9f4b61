/* rewrite.h — CREATE statements made from what the server prints:
 *
 *   1. staging tables (piece and assembly tables) as exact twins of the
 *      destination: `SHOW CREATE TABLE` of the destination with its name
 *      replaced and its engine made non-replicated, everything else kept
 *      (skip indices, projections, constraints, codecs, comments, TTL,
 *      SETTINGS such as storage_policy). From 23.10 ATTACH/REPLACE
 *      PARTITION FROM refuses tables whose indices or projections differ;
 *      clickhouse-copier rewrote the storage of SHOW CREATE the same way;
 *   2. the UUID a destination table needs when its Replicated engine has no
 *      arguments or a `{uuid}` in its path: every node must get the same one,
 *      or each would replicate through its own ZooKeeper path. It is derived
 *      from the task path and the destination table, so every worker and
 *      every run of the task picks the same.
 * Pure: text in, text out; golden-tested in test-sql.c.
 */
#ifndef CHC_SQL_REWRITE_H
#define CHC_SQL_REWRITE_H

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_table;

/* SHOW CREATE TABLE `db`.`table` FORMAT TabSeparated */
int sql_show_create(const char *db, const char *table, struct chc_buf *out);

/* From `show` (a SHOW CREATE TABLE of a *MergeTree table, unescaped):
 * "CREATE TABLE IF NOT EXISTS `db`.`table` <the rest>", with a
 * Replicated*MergeTree('<path>', '<replica>'[, args]) engine turned into
 * *MergeTree([args]) and a UUID clause dropped. CHC_EPARSE when show is not
 * such a statement, CHC_ECONFIG for an engine that is not a *MergeTree. */
int sql_staging_from_show(const char *show, const char *db, const char *table,
                          struct chc_buf *out, struct chc_err *err);

/* Does the destination's CREATE need a UUID clause on a node of version v
 * (sql/dialect.h)? 1 when the task's engine is Replicated with no
 * arguments or with `{uuid}` in its path, and the node knows UUID clauses. */
int sql_needs_uuid(const struct cfg_table *tb, unsigned v);
/* The destination's UUID, "xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx", from the
 * task path and tb's push cluster, database and table. */
int sql_table_uuid(const char *task_path, const struct cfg_table *tb, struct chc_buf *out);

#endif

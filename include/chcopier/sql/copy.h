/* copy.h — the statements that copy a piece into staging (docs/design.md,
 * "Data path: pull" and "pipe"), and those that clean it. Pure: task and
 * discovered facts in, SQL text out; golden-tested in test-sql.c.
 *
 * A piece is the rows of a copy group (one partition, or several small
 * ones) with cityHash64(<sorting key>) % splits = k, on one source shard,
 * for one destination shard when it is routed by filter:
 *
 *   pull (the staging node, or the routing node, runs it):
 *     INSERT INTO db.<t>_piece_<k>[_route] (<cols>) SELECT <cols>
 *     FROM remote('<src host:port>', 'db', 'table'[, 'user', 'pw'])
 *     WHERE (<partitions>) AND (<piece>) [AND (<route>)] [AND (<where>)]
 *     [SETTINGS <settings + settings_pull>]
 *   pipe: SELECT <cast cols> FROM db.table WHERE ... FORMAT Native on the
 *     source, INSERT INTO db.<t>_piece_<k>[_route] (<cols>) FORMAT Native on
 *     the staging (or routing) node.
 */
#ifndef CHC_SQL_COPY_H
#define CHC_SQL_COPY_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_table;
struct cfg_replica;
struct cfg_settings;
struct plan_key;

/* One piece, as the statements need it. */
struct sql_piece {
    const struct cfg_table *tb;
    const char *const *lits; /* the partitions of the copy group */
    size_t n_lits;
    unsigned splits, k;      /* piece k of splits */
    const char *split_args;  /* the sorting key in hashable form (sqlhash.h) */
    const struct plan_key *key; /* for the route filter */
    int dest_shard;          /* route to this destination shard; -1: none */
    int via_route;           /* insert into <t>_piece_<k>_route (route.h), not
                                <t>_piece_<k> */
};

/* "(<partitions>) AND (<piece>)[ AND (<route>)][ AND (<where>)]". */
int sql_piece_where(const struct sql_piece *p, struct chc_buf *out, struct chc_err *err);

/* remote('host:port', 'db', 'table'[, 'user', 'password']) (remoteSecure
 * for a secure replica; IPv6 hosts in brackets). */
int sql_remote(const struct cfg_replica *src, const char *db, const char *table,
               struct chc_buf *out);

/* The pull path's statement (see above); pull: the settings sets for the
 * SELECT (plan_settings_clause). */
int sql_copy_pull(const struct sql_piece *p, const char *columns, const struct cfg_replica *src,
                  const struct cfg_settings *const *pull, size_t n_pull, struct chc_buf *out,
                  struct chc_err *err);
/* The pipe path's two statements. The SELECT filters in a subquery, on the
 * source's own columns as the pull path does: the CASTs are aliased with the
 * columns' names, and a WHERE beside them would read those aliases, which
 * ClickHouse cannot match to the partition key (a copy group read every
 * partition of the shard, not only its own). */
int sql_copy_select(const struct sql_piece *p, const char *columns, const char *cast_columns,
                    struct chc_buf *out, struct chc_err *err);
int sql_copy_insert(const struct sql_piece *p, const char *columns, struct chc_buf *out);

/* "chc-<def hash>-<partition hash>-<k>-": every query of a piece starts so;
 * the caller appends "<shard>-<target>-<nonce>". */
int sql_query_id(const struct cfg_table *tb, const char *part_hash, unsigned k,
                 struct chc_buf *out);
/* KILL QUERY WHERE query_id LIKE '<prefix>%' OR initial_query_id LIKE
 * '<prefix>%' SYNC */
int sql_kill(const char *prefix, struct chc_buf *out);
/* ALTER TABLE db.<t>_piece_<k> DROP PARTITION <lit> */
int sql_drop_piece_partition(const struct cfg_table *tb, unsigned k, const char *lit,
                             struct chc_buf *out);
/* SELECT count() FROM db.<t>_piece_<k> WHERE <partitions> */
int sql_count_piece(const struct cfg_table *tb, unsigned k, const char *const *lits, size_t n,
                    struct chc_buf *out);

#endif

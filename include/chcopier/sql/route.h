/* route.h — routing rows to destination shards with ClickHouse's own
 * Distributed engine (docs/design.md, "Routing"). Pure: the statements
 * that create and feed the routing tables, and the check that a server's
 * cluster is exactly the task's cluster_push (never the name alone).
 *
 * A routing table <table_push>_piece_<k>_route is
 *   Distributed(<cluster>, <database_push>, <table_push>_piece_<k>, <sharding_key>)
 * on the node chosen to route a source shard's pieces; one INSERT into it
 * reads the piece once and the server sends each row to its shard's staging
 * table, as a Distributed table over the destination would.
 */
#ifndef CHC_SQL_ROUTE_H
#define CHC_SQL_ROUTE_H

#include <stddef.h>

#include "chcopier/base/buf.h"

struct cfg_cluster;
struct cfg_settings;
struct cfg_table;

/* SELECT cluster, shard_num, shard_weight, replica_num, host_name, port
 * FROM system.clusters ORDER BY cluster, shard_num, replica_num */
int sql_clusters(struct chc_buf *out);

/* One row of that answer. */
struct route_row {
    const char *cluster;
    long shard_num, weight, replica_num;
    const char *host;
    long port; /* native TCP */
};

/* The name of a cluster in rows[0..n) (sorted as sql_clusters sorts them)
 * with exactly c's layout: the same shards in order with the same weights,
 * each with the same replicas in order (host name and TCP port). c->name
 * is preferred when it matches. NULL: none does. */
const char *route_match_cluster(const struct cfg_cluster *c, const struct route_row *rows,
                                size_t n);

/* CREATE TABLE IF NOT EXISTS db.<t>_piece_<k>_route AS db.<t>_piece_<k>
 * ENGINE = Distributed('<cluster>', '<db>', '<t>_piece_<k>', <sharding_key>) */
int sql_route_create(const struct cfg_table *tb, const char *cluster, unsigned k,
                     struct chc_buf *out);
/* DROP TABLE IF EXISTS db.<t>_piece_<k>_route */
int sql_route_drop(const struct cfg_table *tb, unsigned k, struct chc_buf *out);

/* What a routed INSERT runs with: dialect_route_settings (sql/dialect.h). */

#endif

/* plan.h — pure planning: partitions, pieces, routing and the SQL text of
 * every step. No I/O; everything here is unit-tested against golden strings.
 *
 * Words (docs/design.md): a partition is a value of the DESTINATION's
 * PARTITION BY expression, written as a SQL literal exactly as ClickHouse
 * prints it in FORMAT Values ("201801", "'2018-01-01'", "(1,'a')"); the
 * literal "tuple()" stands for the single partition of a table without
 * PARTITION BY. A piece is (partition, source shard, k) with
 * cityHash64(<destination key columns, hashable form>) % splits = k.
 */
#ifndef CHC_PLAN_H
#define CHC_PLAN_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_table;
struct cfg_cluster;

#define PLAN_UNPARTITIONED "tuple()"

/* Split a FORMAT Values body "(a),(b),..." into the literals "a", "b". */
int plan_parse_values(const char *body, char ***ret, size_t *ret_n, struct chc_err *err);


/* "PARTITION <literal>" or "PARTITION ID 'all'" for the unpartitioned case. */
int plan_partition_clause(const char *literal, struct chc_buf *out);

/* The expression selecting the partition's rows on the source:
 * "(<partition_by>) = <literal>" or "1" when unpartitioned. */
int plan_partition_filter(const struct cfg_table *tb, const char *literal, struct chc_buf *out);

/* The rows of several partitions at once: "(<partition_by>) IN (a, b, ...)";
 * one literal gives plan_partition_filter's expression. */
int plan_partition_set_filter(const struct cfg_table *tb, const char *const *literals, size_t n,
                              struct chc_buf *out);
/* "(<expr>) IN (<literals>, ...)" (n >= 1). */
int plan_in_list(const char *expr, const char *const *literals, size_t n, struct chc_buf *out);

/* Copy groups: consecutive small partitions are copied together, one piece
 * reading them all, so that a source partitioned more coarsely than the
 * destination (monthly -> daily) is read once per group instead of once
 * per destination partition. Partition i joins the group of the partition
 * before it while each is smaller than min_piece_rows, the group's rows
 * (sum of max_shard_rows) stay <= min_piece_rows and it has fewer than
 * max_group members; lead[i] is the first partition of i's group (lead[i]
 * == i for a group's first). Unknown sizes (< 0) or min_piece_rows <= 0:
 * no groups. */
void plan_group_parts(const long long *max_shard_rows, size_t n, long long min_piece_rows,
                      size_t max_group, size_t *lead);

/* Number of pieces a partition is split into (1 when the key is empty). */
unsigned plan_splits(const struct cfg_table *tb);

/* Pieces of one partition: small partitions need fewer pieces. A piece
 * should hold at least min_piece_rows rows of its source shard (default
 * PLAN_PIECE_MIN_ROWS); never more than plan_splits(tb). max_shard_rows < 0
 * (unknown) or min_piece_rows <= 0 gives plan_splits(tb). */
#define PLAN_PIECE_MIN_ROWS 1000000LL
unsigned plan_part_splits(const struct cfg_table *tb, long long max_shard_rows,
                          long long min_piece_rows);

/* Sorting key element i without a trailing ASC/DESC ("intHash32(UserID)"
 * for "intHash32(UserID) DESC"): what pieces hash. */
int plan_key_expr(const struct cfg_table *tb, size_t i, struct chc_buf *out);

/* "cityHash64(<split_args>) % n = k", or "1" when n is 1 or there is no
 * key. split_args: the sorting key's expressions in their hashable form
 * (sqlhash_args with their types on the source). */
int plan_piece_filter(const char *split_args, unsigned n, unsigned k, struct chc_buf *out);

/* The sharding key as the source sees it. */
struct plan_key {
    const char *type;       /* toTypeName(<sharding_key>) on the source */
    int constant;           /* the key uses no column */
    const char *split_args; /* as for plan_piece_filter: hashed instead of a
                             * non-deterministic key */
};

/* Routing like Distributed(cluster_push, db, table, sharding_key): rows whose
 * key % total_weight falls into destination shard `shard_idx`'s slot range,
 * the key cast exactly as Distributed casts it (signed keys sign-extended to
 * UInt32/UInt64, see route_key in plan.c). A key that is not an integer is
 * refused (CHC_ECONFIG), as Distributed refuses it. A non-deterministic key
 * (rand(), ...) is replaced by sipHash64 of the sorting key so that every row
 * is routed exactly once. "1" when the destination has one shard. */
int plan_route_filter(const struct cfg_table *tb, const struct plan_key *key, size_t shard_idx,
                      struct chc_buf *out, struct chc_err *err);
/* 1 if the expression names one of the columns (bare or back-quoted,
 * outside string literals, not as a function name). */
int plan_expr_uses_columns(const char *expr, const char *const *cols, size_t n);
/* 1 if the expression calls a non-deterministic function. */
int plan_is_nondeterministic(const char *expr);

/* " SETTINGS a = 1, b = 'x'" for the settings of sets[0..n) (a later set
 * wins for a name; readonly is left out), "" when there are none: how
 * <settings> and <settings_pull> reach the SELECT inside the pull path's
 * INSERT ... SELECT, which the destination runs. */
struct cfg_settings;
int plan_settings_clause(const struct cfg_settings *const *sets, size_t n, struct chc_buf *out);

/* Staging table names. */
int plan_piece_table(const struct cfg_table *tb, unsigned k, struct chc_buf *out);
/* "<table_push>_piece_<k>_route": the Distributed table over piece k (route.h). */
int plan_route_table(const struct cfg_table *tb, unsigned k, struct chc_buf *out);
/* "<table_push>_assembly": the empty template, made with the pieces, that
 * every partition's assembly is created AS. */
int plan_assembly_table(const struct cfg_table *tb, struct chc_buf *out);
/* "<table_push>_assembly_<16 hex digits of the literal's hash>": partition
 * lit's own assembly, dropped once the partition is moved and verified, so
 * that a REPLACE arriving late names a table that is gone (an error), never
 * an emptied one (docs/design.md, "Release"). */
#define PLAN_ASSEMBLY_SUFFIX_LEN 17 /* "_" and 16 hex digits */
int plan_partition_assembly(const struct cfg_table *tb, const char *lit, struct chc_buf *out);

/* Is `host` this machine (named `me`): localhost, 127.x, ::1 or me? */
int plan_is_local_host(const char *host, const char *me);
/* Proximity: order of source shards for this host. `local[i]` says whether
 * shard i has a replica on this host; ties broken by hostname likeness
 * (number of differing leading characters, as clickhouse-copier) and then
 * shard number. Writes a permutation of 0..n-1 into order. */
void plan_shard_order(const struct cfg_cluster *c, const char *hostname, const int *local,
                      size_t *order);
/* Count of positions where a and b differ over their common prefix length. */
size_t plan_hostname_difference(const char *a, const char *b);

#endif

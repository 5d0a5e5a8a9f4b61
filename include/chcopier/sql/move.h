/* move.h — the statements of a partition's move and of the checksums that
 * guard it (docs/design.md, "Move"), and the discovery that counts and
 * checksums the source's partitions. Pure, golden-tested (test-sql.c).
 */
#ifndef CHC_SQL_MOVE_H
#define CHC_SQL_MOVE_H

#include <stddef.h>

#include "chcopier/base/buf.h"

struct cfg_table;

/* <assembly> is p's own table (plan_partition_assembly). */
enum move_step {
    MOVE_CREATE_ASSEMBLY, /* CREATE TABLE IF NOT EXISTS <assembly> AS <template> */
    MOVE_DROP_ASSEMBLY,   /* (again) ALTER <assembly> DROP PARTITION p */
    MOVE_ATTACH_DEST,     /* ALTER <assembly> ATTACH PARTITION p FROM <destination> */
    MOVE_ATTACH_PIECES,   /* ALTER <assembly> ATTACH PARTITION p FROM <piece k>, every k */
    MOVE_REPLACE,         /* ALTER <destination> REPLACE PARTITION p FROM <assembly> */
    /* Once p is moved and verified, its staging data goes (disk in use stays
     * bounded by the partitions in flight): */
    MOVE_RELEASE_PIECES,   /* ALTER <piece k> DROP PARTITION p, every k */
    MOVE_RELEASE_ASSEMBLY, /* DROP TABLE IF EXISTS <assembly> */
};

/* The statement of one move step for partition `lit` (piece k for
 * MOVE_ATTACH_PIECES and MOVE_RELEASE_PIECES): what the mover runs and `chcopier plan` shows. */
int sql_move_step(const struct cfg_table *tb, enum move_step step, const char *lit, unsigned k,
                  struct chc_buf *out);

/* The release of n (1..32) partitions from piece k in one statement:
 * "ALTER TABLE <piece k> DROP PARTITION a, DROP PARTITION b, ...". */
int sql_release_pieces(const struct cfg_table *tb, unsigned k, const char *const *lits, size_t n,
                       struct chc_buf *out);

/* Count and checksum of n (1..32) partitions in one statement:
 * "SELECT multiIf(_p = a, 1, _p = b, 2, ..., 0) AS _i, sum(_c), sum(_h)
 *  FROM (SELECT (<p>) AS _p, count() AS _c, ifNull(sum(<hash>), 0) AS _h
 *  FROM db.table WHERE (<p>) IN (a, b, ...) [AND (<where>)] GROUP BY _p)
 *  GROUP BY _i ORDER BY _i FORMAT TabSeparated" (one partition: "SELECT 1
 *  AS _i, count(), ... WHERE (<p>) = a ... GROUP BY _i ..."); partitions
 * without rows give no line. Sums of UInt64 wrap modulo 2^64 either way. */
#define SQL_SUMS_MAX 32
int sql_sums(const struct cfg_table *tb, const char *const *lits, size_t n, const char *db,
             const char *table, const char *hash, int with_where, struct chc_buf *out);
/* The same answer from each partition's own assembly, which holds only
 * that partition: "SELECT 1 AS _i, count(), ifNull(sum(<hash>), 0) FROM
 * <assembly of a> WHERE <p> = a UNION ALL SELECT 2, ... FORMAT TabSeparated"
 * (a line per partition, 0 0 for an empty one). */
int sql_sums_assemblies(const struct cfg_table *tb, const char *const *lits, size_t n,
                        const char *hash, struct chc_buf *out);

/* Partitions of the source with their rows and checksum, in one pass:
 * "SELECT (<partition_by>) AS _p, count(), ifNull(sum(<hash>), 0) FROM
 *  db.table [WHERE (<where>)] GROUP BY _p ORDER BY _p FORMAT Values"
 * (0 for the checksum when hash is NULL; 1 AS _p when unpartitioned). */
int sql_discover(const struct cfg_table *tb, const char *hash, struct chc_buf *out);
/* The same for the source partitions lits[0..n) only (values of the
 * source's partition key src_key, as system.parts names them): "... WHERE
 * (<src_key>) IN (a, b, ...) [AND (<where>)] GROUP BY _p ORDER BY _p
 * SETTINGS max_rows_to_read = <max_rows>, read_overflow_mode = 'throw'
 * FORMAT Values" (no SETTINGS when max_rows is 0). ClickHouse 18.16 spends
 * time superlinear in the parts one SELECT reads, and prunes the others
 * cheaply by the partition key; the limit (what those partitions' marks
 * estimate) makes a key it cannot prune by fail at once (Code 158) instead
 * of reading the whole table once per batch. */
int sql_discover_in(const struct cfg_table *tb, const char *hash, const char *src_key,
                    const char *const *lits, size_t n, unsigned long long max_rows,
                    struct chc_buf *out);
/* The source table's partitions and their marks from its part metadata:
 * "SELECT partition, sum(marks) FROM system.parts WHERE database = '<db>'
 *  AND table = '<table>' AND active GROUP BY partition ORDER BY partition
 *  FORMAT TabSeparated". */
int sql_source_partitions(const struct cfg_table *tb, struct chc_buf *out);

#endif

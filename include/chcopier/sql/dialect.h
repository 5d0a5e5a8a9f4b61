/* dialect.h — what differs between ClickHouse versions, in one place. Every
 * node chcopier talks to answers `SELECT version()` at start (the
 * preflight's probe); its answer, parsed into one comparable number, picks
 * the behaviour of the statements sent to that node, or to a pair of nodes
 * (a destination reading a source through remote()). Pure, golden-tested
 * (test-dialect.c). 18.16, the tested default, is also what an unknown
 * version gets.
 *
 * The table (dialect.c, one line each, with its evidence):
 *   DIALECT_FOREGROUND_INSERT  23.11  `insert_distributed_sync` is renamed
 *                                     `distributed_foreground_insert`
 *   DIALECT_ALTER_SYNC         23.3   `replication_alter_partitions_sync`
 *                                     is named `alter_sync`
 *   DIALECT_ANALYZER_SETTING   22.11  the server knows
 *                                     `allow_experimental_analyzer`
 *   DIALECT_FORWARDS_ANALYZER  24.3   remote() sends that setting to the
 *                                     source, always (an older source
 *                                     refuses the query: UNKNOWN_SETTING)
 *   DIALECT_STRICT_ATTACH      23.10  ATTACH/REPLACE PARTITION FROM needs
 *                                     identical indices and projections
 *   DIALECT_DROP_LIMIT_SETTING 23.12  `max_table_size_to_drop` and
 *                                     `max_partition_size_to_drop` are
 *                                     query settings too
 *   DIALECT_CREATE_UUID        20.10  CREATE TABLE ... UUID '<uuid>'
 *                                     (Atomic databases by default)
 * An old name stays an alias on every later version, so a setting is sent
 * under its new name only to a node that knows it.
 */
#ifndef CHC_SQL_DIALECT_H
#define CHC_SQL_DIALECT_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct cfg_settings;

/* A version as one comparable number: 18.16.1 -> 18016001. */
#define DIALECT_V(major, minor, patch) \
    ((unsigned)(major) * 1000000u + (unsigned)(minor) * 1000u + (unsigned)(patch))
/* What a node whose version is unknown is taken for. */
#define DIALECT_DEFAULT DIALECT_V(18, 16, 0)

/* "major.minor[.patch[.build]]" (what version() prints; trailing text such
 * as "-testing" is ignored) into *ret; CHC_EPARSE otherwise. */
int dialect_parse_version(const char *s, unsigned *ret, struct chc_err *err);

enum dialect_feature {
    DIALECT_FOREGROUND_INSERT,
    DIALECT_ALTER_SYNC,
    DIALECT_ANALYZER_SETTING,
    DIALECT_FORWARDS_ANALYZER,
    DIALECT_STRICT_ATTACH,
    DIALECT_DROP_LIMIT_SETTING,
    DIALECT_CREATE_UUID,
    _DIALECT_FEATURE_MAX,
};

/* Does a node of version v (0: unknown) have the feature? */
int dialect_has(unsigned v, enum dialect_feature f);
/* The first version with it. */
unsigned dialect_since(enum dialect_feature f);

/* The settings whose name depends on the version. */
enum dialect_setting {
    DIALECT_SET_FOREGROUND_INSERT, /* insert_distributed_sync */
    DIALECT_SET_ALTER_SYNC,        /* replication_alter_partitions_sync */
};
const char *dialect_setting_name(unsigned v, enum dialect_setting s);

/* A setting name that a node of version v does not know under that name
 * (a new name, before its rename): the name it knows, else NULL. Every
 * later version takes the old name as an alias. */
const char *dialect_known_name(unsigned v, const char *name);

/* What a routed INSERT (into a Distributed table on a node of version v)
 * runs with: synchronous (an error fails the piece instead of queueing rows
 * on disk), into the first live replica of a shard in the cluster's order,
 * the one chcopier stages on. */
const struct cfg_settings *dialect_route_settings(unsigned v);

/* Settings for a DROP TABLE or DROP PARTITION of staging data on a node of
 * version v: no size limit where a query may lift it (23.12+), else none
 * (an empty set; the server's max_table_size_to_drop applies). */
const struct cfg_settings *dialect_drop_settings(unsigned v);

/* Can a destination of version dst read a source of version src with
 * INSERT ... SELECT ... FROM remote()? 1 yes; 0 no, with the reason in
 * why (the pipe data path, which talks to each over HTTP, works). */
int dialect_remote_ok(unsigned dst, unsigned src, char *why, size_t why_len);

#endif

/* ddl.h — statements about tables: references, DESCRIBE, CREATE, DROP,
 * the facts preflight reads from system.tables; and the column lists a
 * copy selects and checksums. Pure, golden-tested (test-sql.c).
 */
#ifndef CHC_SQL_DDL_H
#define CHC_SQL_DDL_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_table;

/* A column as DESCRIBE prints it (kind: "", DEFAULT, MATERIALIZED, ALIAS,
 * EPHEMERAL; expr the default expression or ""). */
struct sql_column {
    const char *name;
    const char *type;
    const char *kind;
    const char *expr;
};

/* `db`.`table` */
int sql_table_ref(const char *db, const char *table, struct chc_buf *out);
/* DESCRIBE TABLE `db`.`table` FORMAT TabSeparated */
int sql_describe(const char *db, const char *table, struct chc_buf *out);
/* SELECT engine, partition_key, sorting_key FROM system.tables WHERE ... */
int sql_table_facts(const char *db, const char *table, struct chc_buf *out);
int sql_create_database(const char *db, struct chc_buf *out);
/* Which engine a CREATE TABLE gets: the task's, or for staging (piece and
 * assembly tables) its non-replicated twin. */
enum sql_table_kind { SQL_TABLE_DESTINATION, SQL_TABLE_STAGING };
/* CREATE TABLE IF NOT EXISTS `<database_push>`.`table` [UUID '<uuid>']
 * (<cols>) <engine>. With <allow_to_copy_alias_and_materialized_columns>
 * MATERIALIZED and ALIAS columns become ordinary ones. uuid (NULL: none):
 * what a Replicated engine with {uuid} needs (sql/rewrite.h,
 * sql_needs_uuid). Staging tables are made from the destination's SHOW
 * CREATE (sql_staging_from_show); SQL_TABLE_STAGING is what `plan` shows
 * before the destination exists. */
int sql_create_table(const struct cfg_table *tb, const struct sql_column *cols, size_t n,
                     const char *table, enum sql_table_kind kind, const char *uuid,
                     struct chc_buf *out, struct chc_err *err);
int sql_drop_table(const char *db, const char *table, struct chc_buf *out);
/* The names of the partitions' assemblies of tb on a node
 * (plan_partition_assembly), one per line. */
int sql_list_assemblies(const struct cfg_table *tb, struct chc_buf *out);

/* What a copy selects and checksums: the destination's stored columns
 * (not MATERIALIZED, ALIAS or EPHEMERAL), by name. */
struct sql_columns {
    char *copy;     /* "`a`, `b`" */
    char *cast;     /* "CAST(`a` AS T) AS `a`, ...": Native needs exact types */
    char *hash_src; /* cityHash64(<hashable form of CAST(`a` AS T)>, ...) on the source */
    char *hash_dst; /* cityHash64(<hashable form of `a`>, ...) on the destination */
};

/* CHC_ECONFIG when no column is stored; CHC_EPARSE for a type sqlhash
 * cannot read. */
int sql_columns_build(const struct sql_column *cols, size_t n, struct sql_columns *out,
                      struct chc_err *err);
void sql_columns_release(struct sql_columns *c);

#endif

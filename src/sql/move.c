/* move.c — the statements of a partition's move, its checksums and the
 * source's discovery (sql/move.h). Pure: no I/O, no logging. */
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"

#include "base/banned.h"

/* The table a step changes and the one it reads from ("" for none). */
static int step_tables(const struct cfg_table *tb, enum move_step step, const char *lit,
                       unsigned k, struct chc_buf *tbl, struct chc_buf *from)
{
    int r;

    switch (step) {
    case MOVE_REPLACE:
        r = chc_buf_addstr(tbl, tb->table_push);
        return r == 0 ? plan_partition_assembly(tb, lit, from) : r;
    case MOVE_RELEASE_PIECES:
        return plan_piece_table(tb, k, tbl);
    case MOVE_CREATE_ASSEMBLY:
        r = plan_partition_assembly(tb, lit, tbl);
        return r == 0 ? plan_assembly_table(tb, from) : r;
    case MOVE_ATTACH_DEST:
        r = plan_partition_assembly(tb, lit, tbl);
        return r == 0 ? chc_buf_addstr(from, tb->table_push) : r;
    case MOVE_ATTACH_PIECES:
        r = plan_partition_assembly(tb, lit, tbl);
        return r == 0 ? plan_piece_table(tb, k, from) : r;
    case MOVE_DROP_ASSEMBLY:
    case MOVE_RELEASE_ASSEMBLY:
        return plan_partition_assembly(tb, lit, tbl);
    }
    CHC_BUG("move step %d", (int)step);
    return -1;
}

int sql_release_pieces(const struct cfg_table *tb, unsigned k, const char *const *lits, size_t n,
                       struct chc_buf *out)
{
    struct chc_buf tbl = CHC_BUF_INIT;
    size_t i;
    int r = plan_piece_table(tb, k, &tbl);

    if (n < 1 || n > SQL_SUMS_MAX)
        CHC_BUG("release of %zu partitions", n);
    if (r == 0)
        r = chc_buf_addstr(out, "ALTER TABLE ");
    if (r == 0)
        r = sql_table_ref(tb->database_push, tbl.buf, out);
    for (i = 0; r == 0 && i < n; i++) {
        r = chc_buf_addstr(out, i ? ", DROP " : " DROP ");
        if (r == 0)
            r = plan_partition_clause(lits[i], out);
    }
    chc_buf_release(&tbl);
    return r;
}

int sql_move_step(const struct cfg_table *tb, enum move_step step, const char *lit, unsigned k,
                  struct chc_buf *out)
{
    static const char *const verb[] = {
        [MOVE_DROP_ASSEMBLY] = " DROP ", [MOVE_ATTACH_DEST] = " ATTACH ",
        [MOVE_ATTACH_PIECES] = " ATTACH ", [MOVE_REPLACE] = " REPLACE ",
        [MOVE_RELEASE_PIECES] = " DROP ",
    };
    struct chc_buf tbl = CHC_BUF_INIT, from = CHC_BUF_INIT;
    int r = step_tables(tb, step, lit, k, &tbl, &from);

    if (r == 0 && step == MOVE_RELEASE_ASSEMBLY) {
        r = sql_drop_table(tb->database_push, tbl.buf, out);
        goto out;
    }
    if (r == 0 && step == MOVE_RELEASE_PIECES) {
        r = sql_release_pieces(tb, k, &lit, 1, out);
        goto out;
    }
    if (r == 0)
        r = chc_buf_addstr(out, step == MOVE_CREATE_ASSEMBLY ? "CREATE TABLE IF NOT EXISTS "
                                                              : "ALTER TABLE ");
    if (r == 0)
        r = sql_table_ref(tb->database_push, tbl.buf, out);
    if (r == 0 && step == MOVE_CREATE_ASSEMBLY) {
        r = chc_buf_addstr(out, " AS ");
        if (r == 0)
            r = sql_table_ref(tb->database_push, from.buf, out);
        goto out;
    }
    if (r == 0)
        r = chc_buf_addstr(out, verb[step]);
    if (r == 0)
        r = plan_partition_clause(lit, out);
    if (r == 0 && from.len) {
        r = chc_buf_addstr(out, " FROM ");
        if (r == 0)
            r = sql_table_ref(tb->database_push, from.buf, out);
    }
out:
    chc_buf_release(&tbl);
    chc_buf_release(&from);
    return r;
}

int sql_sums_assemblies(const struct cfg_table *tb, const char *const *lits, size_t n,
                        const char *hash, struct chc_buf *out)
{
    struct chc_buf name = CHC_BUF_INIT;
    size_t i;
    int r = 0;

    if (n < 1 || n > SQL_SUMS_MAX)
        CHC_BUG("checksum query over %zu partitions", n);
    for (i = 0; r == 0 && i < n; i++) {
        chc_buf_reset(&name);
        r = plan_partition_assembly(tb, lits[i], &name);
        if (r == 0)
            r = chc_buf_addf(out, "%sSELECT %zu%s, count(), ifNull(sum(%s), 0) FROM ",
                             i ? " UNION ALL " : "", i + 1, i ? "" : " AS _i", hash);
        if (r == 0)
            r = sql_table_ref(tb->database_push, name.buf, out);
        if (r == 0) /* only p's rows, even if two literals' names collided */
            r = chc_buf_addstr(out, " WHERE ");
        if (r == 0)
            r = plan_partition_filter(tb, lits[i], out);
    }
    if (r == 0)
        r = chc_buf_addstr(out, " FORMAT TabSeparated");
    chc_buf_release(&name);
    return r;
}

/* "multiIf(_p = a, 1, _p = b, 2, ..., 0)": evaluated once per partition
 * found, not once per row (32 comparisons a row cost a third of the
 * statement's time on 18.16). */
static int sums_index(const char *const *lits, size_t n, struct chc_buf *out)
{
    size_t i;
    int r = chc_buf_addstr(out, "multiIf(");

    for (i = 0; r == 0 && i < n; i++)
        r = chc_buf_addf(out, "_p = %s, %zu, ", lits[i], i + 1);
    return r == 0 ? chc_buf_addstr(out, "0)") : r;
}

int sql_sums(const struct cfg_table *tb, const char *const *lits, size_t n, const char *db,
             const char *table, const char *hash, int with_where, struct chc_buf *out)
{
    int many = n > 1 && tb->engine->partition_by;
    int r;

    if (n < 1 || n > SQL_SUMS_MAX)
        CHC_BUG("checksum query over %zu partitions", n);
    if (many) {
        r = chc_buf_addstr(out, "SELECT ");
        if (r == 0)
            r = sums_index(lits, n, out);
        if (r == 0)
            r = chc_buf_addf(out, " AS _i, sum(_c), sum(_h) FROM (SELECT (%s) AS _p, count() AS _c, "
                             "ifNull(sum(%s), 0) AS _h FROM ", tb->engine->partition_by, hash);
    } else {
        r = chc_buf_addf(out, "SELECT 1 AS _i, count(), ifNull(sum(%s), 0) FROM ", hash);
    }
    if (r == 0)
        r = sql_table_ref(db, table, out);
    if (r == 0)
        r = chc_buf_addstr(out, " WHERE (");
    if (r == 0)
        r = plan_partition_set_filter(tb, lits, n, out);
    if (r == 0)
        r = chc_buf_addch(out, ')');
    if (r == 0 && with_where && tb->where_condition)
        r = chc_buf_addf(out, " AND (%s)", tb->where_condition);
    if (r == 0 && many)
        r = chc_buf_addstr(out, " GROUP BY _p)");
    if (r == 0)
        r = chc_buf_addstr(out, " GROUP BY _i ORDER BY _i FORMAT TabSeparated");
    return r;
}

int sql_discover(const struct cfg_table *tb, const char *hash, struct chc_buf *out)
{
    return sql_discover_in(tb, hash, NULL, NULL, 0, 0, out);
}

int sql_discover_in(const struct cfg_table *tb, const char *hash, const char *src_key,
                    const char *const *lits, size_t n, unsigned long long max_rows,
                    struct chc_buf *out)
{
    const char *pb = tb->engine->partition_by;
    int r = chc_buf_addf(out, "SELECT %s%s%s AS _p, count(), ", pb ? "(" : "", pb ? pb : "1",
                         pb ? ")" : "");

    if (r == 0)
        r = hash ? chc_buf_addf(out, "ifNull(sum(%s), 0)", hash) : chc_buf_addch(out, '0');
    if (r == 0)
        r = chc_buf_addstr(out, " FROM ");
    if (r == 0)
        r = sql_table_ref(tb->database_pull, tb->table_pull, out);
    if (r == 0 && src_key && n > 0) {
        r = chc_buf_addstr(out, " WHERE ");
        if (r == 0)
            r = plan_in_list(src_key, lits, n, out);
    }
    if (r == 0 && tb->where_condition)
        r = chc_buf_addf(out, " %s (%s)", src_key && n > 0 ? "AND" : "WHERE",
                         tb->where_condition);
    if (r == 0)
        r = chc_buf_addstr(out, " GROUP BY _p ORDER BY _p");
    if (r == 0 && max_rows > 0)
        r = chc_buf_addf(out, " SETTINGS max_rows_to_read = %llu, read_overflow_mode = 'throw'",
                         max_rows);
    return r == 0 ? chc_buf_addstr(out, " FORMAT Values") : r;
}

int sql_source_partitions(const struct cfg_table *tb, struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "SELECT partition, sum(marks) FROM system.parts WHERE database = ");

    if (r == 0)
        r = chc_buf_add_sqlstr(out, tb->database_pull);
    if (r == 0)
        r = chc_buf_addstr(out, " AND table = ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, tb->table_pull);
    return r == 0 ? chc_buf_addstr(out, " AND active GROUP BY partition ORDER BY partition "
                                         "FORMAT TabSeparated")
                  : r;
}

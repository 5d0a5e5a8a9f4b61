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

int sql_move_step(const struct cfg_table *tb, enum move_step step, const char *lit, unsigned k,
                  struct chc_buf *out)
{
    static const char *const verb[] = {
        [MOVE_DROP_ASSEMBLY] = " DROP ", [MOVE_ATTACH_DEST] = " ATTACH ",
        [MOVE_ATTACH_PIECES] = " ATTACH ", [MOVE_REPLACE] = " REPLACE ",
        [MOVE_RELEASE_PIECES] = " DROP ", [MOVE_RELEASE_ASSEMBLY] = " DROP ",
    };
    struct chc_buf tbl = CHC_BUF_INIT, from = CHC_BUF_INIT;
    int r;

    if (step == MOVE_REPLACE)
        r = chc_buf_addstr(&tbl, tb->table_push);
    else if (step == MOVE_RELEASE_PIECES)
        r = plan_piece_table(tb, k, &tbl);
    else
        r = plan_assembly_table(tb, &tbl);
    if (r == 0 && step == MOVE_ATTACH_DEST)
        r = chc_buf_addstr(&from, tb->table_push);
    else if (r == 0 && step == MOVE_ATTACH_PIECES)
        r = plan_piece_table(tb, k, &from);
    else if (r == 0 && step == MOVE_REPLACE)
        r = plan_assembly_table(tb, &from);
    if (r == 0)
        r = chc_buf_addstr(out, "ALTER TABLE ");
    if (r == 0)
        r = sql_table_ref(tb->database_push, tbl.buf, out);
    if (r == 0)
        r = chc_buf_addstr(out, verb[step]);
    if (r == 0)
        r = plan_partition_clause(lit, out);
    if (r == 0 && from.len) {
        r = chc_buf_addstr(out, " FROM ");
        if (r == 0)
            r = sql_table_ref(tb->database_push, from.buf, out);
    }
    chc_buf_release(&tbl);
    chc_buf_release(&from);
    return r;
}

int sql_sums(const struct cfg_table *tb, const char *const *lits, size_t n, const char *db,
             const char *table, const char *hash, int with_where, struct chc_buf *out)
{
    size_t i;
    int r;

    if (n < 1 || n > SQL_SUMS_MAX)
        CHC_BUG("checksum query over %zu partitions", n);
    r = chc_buf_addstr(out, n == 1 ? "SELECT 1" : "SELECT multiIf(");
    for (i = 0; r == 0 && n > 1 && i < n; i++) {
        r = plan_partition_filter(tb, lits[i], out);
        if (r == 0)
            r = chc_buf_addf(out, ", %zu, ", i + 1);
    }
    if (r == 0 && n > 1)
        r = chc_buf_addstr(out, "0)");
    if (r == 0)
        r = chc_buf_addf(out, " AS _i, count(), ifNull(sum(%s), 0) FROM ", hash);
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
    if (r == 0)
        r = chc_buf_addstr(out, " GROUP BY _i FORMAT TabSeparated");
    return r;
}

int sql_discover(const struct cfg_table *tb, const char *hash, struct chc_buf *out)
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
    if (r == 0 && tb->where_condition)
        r = chc_buf_addf(out, " WHERE (%s)", tb->where_condition);
    return r == 0 ? chc_buf_addstr(out, " GROUP BY _p ORDER BY _p FORMAT Values") : r;
}

/* check.c — the preflight's statements (sql/check.h). Pure: no I/O. */
#include <errno.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/plan.h"

#include "base/banned.h"

static const char *partition_by(const struct cfg_table *tb)
{
    return tb->engine->partition_by ? tb->engine->partition_by : "1";
}

int sql_check_exprs(const struct cfg_table *tb, struct chc_buf *out)
{
    size_t i;
    int r = chc_buf_addf(out, "SELECT (%s)", tb->sharding_key);

    for (i = 0; r == 0 && i < tb->engine->n_key_columns; i++) {
        r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = plan_key_expr(tb, i, out);
    }
    if (r == 0)
        r = chc_buf_addf(out, ", (%s) FROM ", partition_by(tb));
    if (r == 0)
        r = sql_table_ref(tb->database_pull, tb->table_pull, out);
    if (r == 0 && tb->where_condition)
        r = chc_buf_addf(out, " WHERE (%s)", tb->where_condition);
    return r == 0 ? chc_buf_addstr(out, " LIMIT 0 FORMAT TSVWithNamesAndTypes") : r;
}

int sql_check_element(const struct cfg_table *tb, enum sql_element e, size_t i,
                      struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "SELECT ");

    if (r == 0 && e == SQL_EL_WHERE)
        r = chc_buf_addstr(out, "1");
    else if (r == 0 && e == SQL_EL_KEY)
        r = chc_buf_addf(out, "(%s)", tb->sharding_key);
    else if (r == 0 && e == SQL_EL_PARTITION)
        r = chc_buf_addf(out, "(%s)", partition_by(tb));
    else if (r == 0)
        r = plan_key_expr(tb, i, out);
    if (r == 0)
        r = chc_buf_addstr(out, " FROM ");
    if (r == 0)
        r = sql_table_ref(tb->database_pull, tb->table_pull, out);
    if (r == 0 && e == SQL_EL_WHERE)
        r = chc_buf_addf(out, " WHERE (%s)", tb->where_condition ? tb->where_condition : "1");
    return r == 0 ? chc_buf_addstr(out, " LIMIT 0") : r;
}

int sql_check_generated(const struct cfg_table *tb, const char *split_args,
                        const struct plan_key *key, struct chc_buf *out, struct chc_err *err)
{
    int r = chc_buf_addstr(out, "SELECT ");

    if (r == 0)
        r = plan_piece_filter(split_args, 2, 0, out);
    if (r == 0)
        r = chc_buf_addstr(out, ", ");
    if (r < 0)
        return chc_err_set(err, r, "out of memory");
    r = plan_route_filter(tb, key, 0, out, err);
    if (r < 0)
        return r;
    if (chc_buf_addstr(out, " FROM ") < 0 ||
        sql_table_ref(tb->database_pull, tb->table_pull, out) < 0 ||
        chc_buf_addstr(out, " LIMIT 0") < 0)
        return chc_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

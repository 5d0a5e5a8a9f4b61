/* copy.c — the statements that copy a piece into staging and clean it
 * (sql/copy.h). Pure: no I/O, no logging. */
#include <errno.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/copy.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/plan.h"

#include "base/banned.h"

static int nomem(int r, struct chc_err *err)
{
    return r == -ENOMEM || r == CHC_ETOOBIG ? chc_err_set(err, r, "out of memory") : r;
}

int sql_piece_where(const struct sql_piece *p, struct chc_buf *out, struct chc_err *err)
{
    int r = chc_buf_addch(out, '(');

    if (r == 0)
        r = plan_partition_set_filter(p->tb, p->lits, p->n_lits, out);
    if (r == 0)
        r = chc_buf_addstr(out, ") AND (");
    if (r == 0)
        r = plan_piece_filter(p->split_args, p->splits, p->k, out);
    if (r == 0)
        r = chc_buf_addch(out, ')');
    if (r == 0 && p->dest_shard >= 0) {
        r = chc_buf_addstr(out, " AND (");
        if (r == 0)
            r = plan_route_filter(p->tb, p->key, (size_t)p->dest_shard, out, err);
        if (r < 0)
            return nomem(r, err);
        r = chc_buf_addch(out, ')');
    }
    if (r == 0 && p->tb->where_condition)
        r = chc_buf_addf(out, " AND (%s)", p->tb->where_condition);
    return nomem(r, err);
}

int sql_remote(const struct cfg_replica *src, const char *db, const char *table,
               struct chc_buf *out)
{
    struct chc_buf hp = CHC_BUF_INIT;
    int v6 = strchr(src->host, ':') && src->host[0] != '[';
    int r;

    r = chc_buf_addf(&hp, "%s%s%s:%d", v6 ? "[" : "", src->host, v6 ? "]" : "", src->port);
    if (r == 0)
        r = chc_buf_addf(out, "%s(", src->secure ? "remoteSecure" : "remote");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, hp.buf);
    if (r == 0)
        r = chc_buf_addstr(out, ", ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, db);
    if (r == 0)
        r = chc_buf_addstr(out, ", ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, table);
    if (r == 0 && src->user) {
        r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = chc_buf_add_sqlstr(out, src->user);
        if (r == 0)
            r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = chc_buf_add_sqlstr(out, src->password ? src->password : "");
    }
    if (r == 0)
        r = chc_buf_addch(out, ')');
    chc_buf_release(&hp);
    return r;
}

/* The table a piece's rows go into: its staging table, or the routing
 * table over it. */
static int sink_table(const struct sql_piece *p, struct chc_buf *name)
{
    return p->via_route ? plan_route_table(p->tb, p->k, name) : plan_piece_table(p->tb, p->k, name);
}

int sql_copy_pull(const struct sql_piece *p, const char *columns, const struct cfg_replica *src,
                  const struct cfg_settings *const *pull, size_t n_pull, struct chc_buf *out,
                  struct chc_err *err)
{
    struct chc_buf name = CHC_BUF_INIT;
    int r = sink_table(p, &name);

    if (r == 0)
        r = chc_buf_addstr(out, "INSERT INTO ");
    if (r == 0)
        r = sql_table_ref(p->tb->database_push, name.buf, out);
    if (r == 0)
        r = chc_buf_addf(out, " (%s) SELECT %s FROM ", columns, columns);
    if (r == 0)
        r = sql_remote(src, p->tb->database_pull, p->tb->table_pull, out);
    if (r == 0)
        r = chc_buf_addstr(out, " WHERE ");
    chc_buf_release(&name);
    if (r < 0)
        return nomem(r, err);
    r = sql_piece_where(p, out, err);
    if (r == 0 && plan_settings_clause(pull, n_pull, out) < 0)
        r = nomem(-ENOMEM, err);
    return r;
}

int sql_copy_select(const struct sql_piece *p, const char *columns, const char *cast_columns,
                    struct chc_buf *out, struct chc_err *err)
{
    int r = chc_buf_addf(out, "SELECT %s FROM (SELECT %s FROM ", cast_columns, columns);

    if (r == 0)
        r = sql_table_ref(p->tb->database_pull, p->tb->table_pull, out);
    if (r == 0)
        r = chc_buf_addstr(out, " WHERE ");
    if (r < 0)
        return nomem(r, err);
    r = sql_piece_where(p, out, err);
    if (r == 0 && chc_buf_addstr(out, ") FORMAT Native") < 0)
        r = nomem(-ENOMEM, err);
    return r;
}

int sql_copy_insert(const struct sql_piece *p, const char *columns, struct chc_buf *out)
{
    struct chc_buf name = CHC_BUF_INIT;
    int r = sink_table(p, &name);

    if (r == 0)
        r = chc_buf_addstr(out, "INSERT INTO ");
    if (r == 0)
        r = sql_table_ref(p->tb->database_push, name.buf, out);
    if (r == 0)
        r = chc_buf_addf(out, " (%s) FORMAT Native", columns);
    chc_buf_release(&name);
    return r;
}

int sql_query_id(const struct cfg_table *tb, const char *part_hash, unsigned k,
                 struct chc_buf *out)
{
    return chc_buf_addf(out, "chc-%.8s-%.12s-%u-", tb->def_hash_hex, part_hash, k);
}

int sql_kill(const char *prefix, struct chc_buf *out)
{
    /* chc-<hex>-...: no quote or backslash. initial_query_id: the inserts a
     * Distributed routing table sends on to the other shards. */
    return chc_buf_addf(out, "KILL QUERY WHERE query_id LIKE '%s%%' OR initial_query_id LIKE "
                             "'%s%%' SYNC", prefix, prefix);
}

int sql_drop_piece_partition(const struct cfg_table *tb, unsigned k, const char *lit,
                             struct chc_buf *out)
{
    return sql_release_pieces(tb, k, &lit, 1, out);
}

int sql_count_piece(const struct cfg_table *tb, unsigned k, const char *const *lits, size_t n,
                    struct chc_buf *out)
{
    struct chc_buf name = CHC_BUF_INIT;
    int r = plan_piece_table(tb, k, &name);

    if (r == 0)
        r = chc_buf_addstr(out, "SELECT count() FROM ");
    if (r == 0)
        r = sql_table_ref(tb->database_push, name.buf, out);
    if (r == 0)
        r = chc_buf_addstr(out, " WHERE ");
    if (r == 0)
        r = plan_partition_set_filter(tb, lits, n, out);
    chc_buf_release(&name);
    return r;
}

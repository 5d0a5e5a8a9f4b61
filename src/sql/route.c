/* route.c — the Distributed routing tables and the cluster check
 * (route.h). Pure.
 */
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"

#include "base/banned.h"

int sql_clusters(struct chc_buf *out)
{
    return chc_buf_addstr(out, "SELECT cluster, shard_num, shard_weight, replica_num, host_name, "
                               "port FROM system.clusters ORDER BY cluster, shard_num, "
                               "replica_num FORMAT TabSeparated");
}

/* Do rows[0..n) (one cluster's) describe exactly c? */
static int same_layout(const struct cfg_cluster *c, const struct route_row *rows, size_t n)
{
    size_t s, r, i = 0;

    for (s = 0; s < c->n_shards; s++) {
        const struct cfg_shard *sh = &c->shards[s];
        for (r = 0; r < sh->n_replicas; r++, i++) {
            const struct route_row *row = &rows[i];
            if (i >= n || row->shard_num != (long)(s + 1) || row->replica_num != (long)(r + 1) ||
                row->weight != sh->weight || row->port != sh->replicas[r].port ||
                strcmp(row->host, sh->replicas[r].host))
                return 0;
        }
    }
    return i == n;
}

const char *route_match_cluster(const struct cfg_cluster *c, const struct route_row *rows,
                                size_t n)
{
    const char *found = NULL;
    size_t i = 0, j;

    while (i < n) {
        for (j = i; j < n && !strcmp(rows[j].cluster, rows[i].cluster); j++)
            ;
        if (same_layout(c, rows + i, j - i)) {
            if (!strcmp(rows[i].cluster, c->name))
                return rows[i].cluster;
            if (!found)
                found = rows[i].cluster;
        }
        i = j;
    }
    return found;
}

int sql_route_create(const struct cfg_table *tb, const char *cluster, unsigned k,
                     struct chc_buf *out)
{
    struct chc_buf piece = CHC_BUF_INIT, route = CHC_BUF_INIT;
    int r = plan_piece_table(tb, k, &piece);

    if (r == 0)
        r = plan_route_table(tb, k, &route);
    if (r == 0)
        r = chc_buf_addstr(out, "CREATE TABLE IF NOT EXISTS ");
    if (r == 0)
        r = sql_table_ref(tb->database_push, route.buf, out);
    if (r == 0)
        r = chc_buf_addstr(out, " AS ");
    if (r == 0)
        r = sql_table_ref(tb->database_push, piece.buf, out);
    if (r == 0)
        r = chc_buf_addstr(out, " ENGINE = Distributed(");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, cluster);
    if (r == 0)
        r = chc_buf_addstr(out, ", ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, tb->database_push);
    if (r == 0)
        r = chc_buf_addstr(out, ", ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, piece.buf);
    if (r == 0)
        r = chc_buf_addf(out, ", %s)", tb->sharding_key);
    chc_buf_release(&piece);
    chc_buf_release(&route);
    return r;
}

int sql_route_drop(const struct cfg_table *tb, unsigned k, struct chc_buf *out)
{
    struct chc_buf route = CHC_BUF_INIT;
    int r = plan_route_table(tb, k, &route);

    if (r == 0)
        r = sql_drop_table(tb->database_push, route.buf, out);
    chc_buf_release(&route);
    return r;
}

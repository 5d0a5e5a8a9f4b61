/* cmd-plan.c — `chcopier plan`: for each table task, the partitions and
 * pieces a worker would copy, the proximity order of the source shards,
 * and every DDL and SQL statement it would run (secrets masked). Reads the
 * servers; writes nothing to ZooKeeper or ClickHouse.
 */
#include <stdio.h>
#include <stdlib.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/config/task.h"
#include "chcopier/copier/worker.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/rewrite.h"
#include "chcopier/sql/route.h"
#include "cmd.h"
#include "discover.h"
#include "nodes.h"
#include "piece.h"
#include "routing.h"
#include "tables.h"
#include "tstate.h"
#include "versions.h"
#include "wk.h"

#include "base/banned.h"

/* What plan shows of one table: its state as a worker would prepare it
 * (without writing), and the columns of source and destination. */
struct plan_view {
    struct tstate *ts;
    struct ch_rows *src_cols;
    struct ch_rows *dst_cols; /* NULL: the destination does not exist yet */
    char *dst_show;           /* its SHOW CREATE TABLE (staging are its twins) */
};

static void view_release(struct plan_view *v)
{
    ch_rows_free(v->src_cols);
    ch_rows_free(v->dst_cols);
    free(v->dst_show);
    tstate__free(v->ts);
}

static int view_load(struct worker *w, const struct cfg_table *tb, struct plan_view *v,
                     struct chc_err *err)
{
    int r = tables__layout(w, tb, &v->ts, err);

    if (r < 0)
        return r;
    r = nodes__describe(w, v->ts->src_rep[0], SIDE_PULL, tb->database_pull, tb->table_pull,
                        &v->src_cols, err);
    if (r < 0)
        return chc_err_prefix(err, "table '%s': cannot read the source table %s.%s", tb->name,
                              tb->database_pull, tb->table_pull);
    /* Copy the destination's columns if it exists, else the source's. */
    if (nodes__describe(w, v->ts->targets[0].rep, SIDE_PUSH, tb->database_push, tb->table_push,
                        &v->dst_cols, err) < 0)
        v->dst_cols = NULL;
    r = v->dst_cols ? tables__show_create(w, v->ts->targets[0].rep, tb, &v->dst_show, err) : 0;
    if (r == 0)
        r = tables__columns_load(v->ts, v->dst_cols ? v->dst_cols : v->src_cols, err);
    if (r == 0)
        r = routing__choose(w, v->ts, err);
    return r == 0 ? discover__partitions(w, v->ts, err) : r;
}

static void print_nodes(const char *what, const struct cfg_replica *const *reps, size_t n)
{
    size_t i;

    printf("  %s:", what);
    for (i = 0; i < n; i++)
        printf(" %s:%d", reps[i]->host, reps[i]->http_port);
    printf("\n");
}

/* The table, its shards in this worker's order, its nodes. */
static int print_layout(const struct tstate *ts, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    const struct cfg_replica **nodes = NULL, **treps = NULL;
    struct chc_buf vers = CHC_BUF_INIT;
    size_t n_nodes = 0, s;
    int r = 0;

    if (nodes__of_cluster(tb->push, &nodes, &n_nodes) < 0 || tables__target_reps(ts, &treps) < 0) {
        r = oom(err);
        goto out;
    }
    printf("table %s: %s.%s.%s -> %s.%s.%s (definition %s)\n", tb->name, tb->cluster_pull,
           tb->database_pull, tb->table_pull, tb->cluster_push, tb->database_push,
           tb->table_push, tb->def_hash_hex);
    printf("  source shards in this worker's order:");
    for (s = 0; s < tb->pull->n_shards; s++)
        printf(" %zu (%s:%d)", ts->order[s] + 1, ts->src_rep[ts->order[s]]->host,
               ts->src_rep[ts->order[s]]->port);
    printf("\n");
    print_nodes("destination nodes", nodes, n_nodes);
    print_nodes("staging nodes", treps, ts->n_targets);
    if (versions__line(ts, &vers) < 0)
        r = oom(err);
    else
        printf("  servers: %s\n  data path: %s\n", vers.buf, ts->pipe ? "pipe" : "pull");
out:
    free(nodes);
    free(treps);
    chc_buf_release(&vers);
    return r;
}

static void print_partition(const struct tstate *ts, size_t i)
{
    const struct part *p = &ts->parts[i];
    size_t s;

    if (p->lead != i)
        printf("    %s: %lld rows, copied with %s, on source shards", p->lit, p->rows,
               ts->parts[p->lead].lit);
    else if (p->n_group > 1)
        printf("    %s: %lld rows, %u piece(s) per shard for it and the next %zu, on source "
               "shards",
               p->lit, p->rows, p->splits, p->n_group - 1);
    else
        printf("    %s: %lld rows, %u piece(s) per shard, on source shards", p->lit, p->rows,
               p->splits);
    for (s = 0; s < ts->tb->pull->n_shards; s++)
        if (p->on_shard[s])
            printf(" %zu", s + 1);
    printf("\n");
}

static void print_partitions(const struct tstate *ts)
{
    size_t i, groups = 0, pieces = 0;

    for (i = 0; i < ts->n_parts; i++)
        if (ts->parts[i].lead == i) {
            pieces += group_pieces(ts, i);
            groups += ts->parts[i].n_group > 1;
        }
    printf("  partitions: %zu (%zu copy group(s) of small partitions), pieces: %zu (up to %u "
           "per partition and source shard)\n",
           ts->n_parts, groups, pieces, ts->splits);
    for (i = 0; i < ts->n_parts; i++)
        print_partition(ts, i);
}

/* The destination's CREATE and every staging table's. */
static int print_tables(const struct plan_view *v, struct chc_err *err)
{
    const struct cfg_table *tb = v->ts->tb;
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT, uuid = CHC_BUF_INIT;
    unsigned k;
    int r;

    printf("  destination table (%s):\n",
           v->dst_cols ? "exists" : "created on every destination node");
    r = sql_table_uuid(v->ts->w->o->task_path, tb, &uuid) < 0 ? oom(err) : 0;
    if (r == 0)
        r = tables__create_sql(tb, v->src_cols, tb->table_push, SQL_TABLE_DESTINATION,
                               sql_needs_uuid(tb, tstate__version(v->ts, v->ts->targets[0].rep))
                                   ? uuid.buf
                                   : NULL,
                               &sql, err);
    if (r == 0)
        cmd__print_sql("    ", sql.buf);
    if (r == 0)
        printf("  staging tables (on the staging nodes):\n");
    for (k = 0; r == 0 && k <= v->ts->splits; k++) {
        chc_buf_reset(&sql);
        chc_buf_reset(&name);
        r = k < v->ts->splits ? plan_piece_table(tb, k, &name) : plan_assembly_table(tb, &name);
        if (r < 0) {
            r = oom(err);
            break;
        }
        if (v->dst_show) /* staging tables are the destination's twins */
            r = sql_staging_from_show(v->dst_show, tb->database_push, name.buf, &sql, err);
        else /* as the destination will be created */
            r = tables__create_sql(tb, v->src_cols, name.buf, SQL_TABLE_STAGING, NULL, &sql, err);
        if (r == 0)
            cmd__print_sql("    ", sql.buf);
    }
    chc_buf_release(&sql);
    chc_buf_release(&name);
    chc_buf_release(&uuid);
    return r;
}

/* The routing, and the copy statements of the first copy group per piece
 * and sink. */
static int print_copy(const struct tstate *ts, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT;
    struct sink *to = calloc(ts->n_targets + 1, sizeof(*to));
    size_t s, t, n;
    unsigned k;
    int r = to && routing__describe(ts, &sql) == 0 ? 0 : oom(err);

    if (r == 0)
        printf("  routing: %s\n", sql.buf);
    for (k = 0; r == 0 && ts->route == ROUTE_DISTRIBUTED && k < ts->splits; k++)
        for (s = 0; r == 0 && s < ts->tb->pull->n_shards; s++) {
            chc_buf_reset(&sql);
            r = sql_route_create(ts->tb, ts->route_cluster[s], k, &sql) < 0 ? oom(err) : 0;
            if (r == 0)
                printf("    -- on %s:%d\n", ts->route_rep[s]->host, ts->route_rep[s]->http_port);
            if (r == 0)
                cmd__print_sql("    ", sql.buf);
        }
    if (r == 0 && ts->parts[0].n_group > 1)
        printf("  copy, for partitions %s .. %s (the others alike):\n", ts->parts[0].lit,
               ts->parts[ts->parts[0].n_group - 1].lit);
    else if (r == 0)
        printf("  copy, for partition %s (the others alike):\n", ts->parts[0].lit);
    for (s = 0; r == 0 && s < ts->tb->pull->n_shards; s++) {
        if (!group_on_shard(ts, 0, s))
            continue;
        n = piece__sinks(ts, s, to);
        for (k = 0; r == 0 && k < ts->parts[0].splits; k++)
            for (t = 0; r == 0 && t < n; t++) {
                chc_buf_reset(&sql);
                r = piece__copy_sql(ts, 0, k, s, &to[t], &sql, err);
                if (r < 0)
                    break;
                printf("    -- piece %u, source shard %zu, on %s:%d\n", k, s + 1, to[t].rep->host,
                       to[t].rep->http_port);
                cmd__print_sql("    ", sql.buf);
            }
    }
    free(to);
    chc_buf_release(&sql);
    return r;
}

/* The move of the first partition, and what verification compares. */
static int print_move(const struct tstate *ts, struct chc_err *err)
{
    static const enum move_step steps[] = {MOVE_CREATE_ASSEMBLY, MOVE_DROP_ASSEMBLY,
                                           MOVE_ATTACH_DEST,     MOVE_ATTACH_PIECES,
                                           MOVE_REPLACE,         MOVE_RELEASE_PIECES,
                                           MOVE_RELEASE_ASSEMBLY};
    struct chc_buf sql = CHC_BUF_INIT;
    size_t st;
    unsigned k;
    int r = 0;

    printf("  move, on every staging node:\n");
    for (st = 0; r == 0 && st < sizeof(steps) / sizeof(steps[0]); st++) {
        unsigned nk = steps[st] == MOVE_ATTACH_PIECES || steps[st] == MOVE_RELEASE_PIECES
                          ? ts->parts[0].splits
                          : 1;
        if (steps[st] == MOVE_ATTACH_DEST && ts->tb->allow_drop_target_partitions)
            continue; /* nothing of the destination is kept */
        if (steps[st] == MOVE_RELEASE_PIECES)
            printf("  once verified, its staging data goes:\n");
        for (k = 0; r == 0 && k < nk; k++) {
            chc_buf_reset(&sql);
            r = sql_move_step(ts->tb, steps[st], ts->parts[0].lit, k, &sql) < 0 ? oom(err) : 0;
            if (r == 0)
                cmd__print_sql("    ", sql.buf);
        }
    }
    if (r == 0)
        printf("  verify: SELECT count(), sum(%s) per partition on the source shards, "
               "sum(%s) on the destination\n",
               ts->cols.hash_src, ts->cols.hash_dst);
    chc_buf_release(&sql);
    return r;
}

static int plan_table(struct worker *w, const struct cfg_table *tb, struct chc_err *err)
{
    struct plan_view v = {0};
    int r = view_load(w, tb, &v, err);

    if (r == 0)
        r = print_layout(v.ts, err);
    if (r == 0)
        print_partitions(v.ts);
    if (r == 0)
        r = print_tables(&v, err);
    if (r == 0 && v.ts->n_parts > 0)
        r = print_copy(v.ts, err);
    if (r == 0 && v.ts->n_parts > 0)
        r = print_move(v.ts, err);
    view_release(&v);
    return r;
}

int worker_plan(const struct chc_options *o, struct zk_session *zs, const struct cfg_task *task,
                struct chc_err *err)
{
    struct worker w;
    size_t i;
    int r;

    r = wk__open(&w, o, zs, task, err);
    for (i = 0; r == 0 && i < w.task->n_tables; i++)
        r = plan_table(&w, &w.task->tables[i], err);
    if (r == 0)
        printf("plan only: nothing was written to ZooKeeper or ClickHouse\n");
    wk__close(&w);
    return r;
}

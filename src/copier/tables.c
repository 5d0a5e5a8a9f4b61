/* tables.c — a table task's layout and preparation: its ZooKeeper root,
 * source replicas in proximity order and staging nodes; the destination and
 * staging tables (created on every node, staging kept in step with the
 * destination's columns); the columns to copy and checksum; partition
 * discovery and the published partition list (table_init: first worker
 * empties staging, discovers, publishes; the others wait for the list).
 * Copies nothing and moves nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/config/engine.h"
#include "chcopier/obs/log.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/rewrite.h"
#include "chcopier/sql/route.h"
#include "chcopier/state/layout.h"
#include "chcopier/sql/sqlhash.h"
#include "chcopier/config/task.h"
#include "chcopier/zk/zk.h"
#include "discover.h"
#include "drops.h"
#include "nodes.h"
#include "pin.h"
#include "preflight.h"
#include "routing.h"
#include "tables.h"
#include "tstate.h"
#include "versions.h"
#include "wk.h"

#include "base/banned.h"

/* DESCRIBE's rows as columns (pointing into rows). */
int tables__columns_of(const struct ch_rows *rows, struct sql_column **ret)
{
    size_t i, n = ch_rows_count(rows);
    struct sql_column *c = calloc(n + 1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    for (i = 0; i < n; i++)
        c[i] = (struct sql_column){.name = ch_rows_str(rows, i, 0), .type = ch_rows_str(rows, i, 1),
                                   .kind = ch_rows_str(rows, i, 2), .expr = ch_rows_str(rows, i, 3)};
    *ret = c;
    return 0;
}

int tables__create_sql(const struct cfg_table *tb, const struct ch_rows *cols, const char *table,
                       enum sql_table_kind kind, const char *uuid, struct chc_buf *out,
                       struct chc_err *err)
{
    struct sql_column *c = NULL;
    int r = tables__columns_of(cols, &c) < 0 ? oom(err) : 0;

    if (r == 0)
        r = sql_create_table(tb, c, ch_rows_count(cols), table, kind, uuid, out, err);
    free(c);
    return r;
}

int tables__target_reps(const struct tstate *ts, const struct cfg_replica ***ret)
{
    const struct cfg_replica **v = calloc(ts->n_targets ? ts->n_targets : 1, sizeof(*v));
    size_t i;

    if (!v)
        return -ENOMEM;
    for (i = 0; i < ts->n_targets; i++)
        v[i] = ts->targets[i].rep;
    *ret = v;
    return 0;
}

/* Columns to copy and to checksum: the destination's stored columns. */
int tables__columns_load(struct tstate *ts, const struct ch_rows *dst_cols, struct chc_err *err)
{
    struct sql_column *c = NULL;
    int r = tables__columns_of(dst_cols, &c) < 0 ? oom(err) : 0;

    sql_columns_release(&ts->cols);
    if (r == 0)
        r = sql_columns_build(c, ch_rows_count(dst_cols), &ts->cols, err);
    if (r < 0 && r != -ENOMEM)
        chc_err_prefix(err, "table '%s': the destination's columns", ts->tb->name);
    free(c);
    return r;
}

/* "name type\n" per column: what must agree between a staging table and
 * the destination for ATTACH PARTITION FROM to work. */
static int columns_signature(const struct ch_rows *cols, struct chc_buf *out)
{
    size_t i;
    int r = 0;

    chc_buf_reset(out);
    for (i = 0; r == 0 && i < ch_rows_count(cols); i++)
        r = chc_buf_addf(out, "%s %s\n", ch_rows_str(cols, i, 0), ch_rows_str(cols, i, 1));
    return r;
}

int tables__show_create(struct worker *w, const struct cfg_replica *rep,
                        const struct cfg_table *tb, char **ret, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT;
    struct ch_rows *rows = NULL;
    int r = sql_show_create(tb->database_push, tb->table_push, &sql) < 0 ? oom(err) : 0;

    if (r == 0)
        r = nodes__rows(w, rep, SIDE_PUSH, sql.buf, &rows, err);
    if (r == 0 && ch_rows_count(rows) != 1)
        r = chc_err_set(err, CHC_EPARSE, "SHOW CREATE TABLE %s.%s printed %zu rows",
                        tb->database_push, tb->table_push, ch_rows_count(rows));
    if (r == 0) {
        *ret = chc_strdup(ch_rows_str(rows, 0, 0));
        r = *ret ? 0 : oom(err);
    }
    if (r < 0 && r != -ENOMEM)
        chc_err_prefix(err, "table '%s': the destination's definition", tb->name);
    ch_rows_free(rows);
    chc_buf_release(&sql);
    return r;
}

/* Staging twins follow the destination as it really is: an operator may fix
 * the destination (say, a column type that rejected rows) while we run. A
 * staging table whose columns differ is dropped and created again; its rows
 * are then gone, so *ret_dropped tells the caller to recopy. */
static int staging_sync(struct worker *w, struct tstate *ts, int *ret_dropped,
                        struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    const struct cfg_replica **treps = NULL;
    struct ch_rows *dst_cols = NULL, *st_cols = NULL;
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT, want = CHC_BUF_INIT, got = CHC_BUF_INIT;
    char *show = NULL; /* the destination's SHOW CREATE: staging is its twin */
    size_t t;
    unsigned k;
    int r;

    *ret_dropped = 0;
    r = nodes__describe(w, ts->targets[0].rep, SIDE_PUSH, tb->database_push, tb->table_push, &dst_cols,
                         err);
    if (r == 0)
        r = tables__columns_load(ts, dst_cols, err);
    if (r == 0)
        r = tables__show_create(w, ts->targets[0].rep, tb, &show, err);
    if (r < 0)
        goto out;
    if (columns_signature(dst_cols, &want) < 0 || tables__target_reps(ts, &treps) < 0)
        goto oom;
    for (k = 0; k <= ts->splits; k++) {
        chc_buf_reset(&name);
        r = k < ts->splits ? plan_piece_table(tb, k, &name) : plan_assembly_table(tb, &name);
        if (r < 0)
            goto oom;
        for (t = 0; t < ts->n_targets; t++) {
            st_cols = ch_rows_free(st_cols);
            if (nodes__describe(w, treps[t], SIDE_PUSH, tb->database_push, name.buf, &st_cols, err) < 0)
                continue; /* absent (or unreachable: CREATE below will say) */
            if (columns_signature(st_cols, &got) < 0)
                goto oom;
            if (!strcmp(got.buf, want.buf))
                continue;
            chc_log_warn("table '%s': staging table %s on %s:%d does not match the destination's "
                         "columns any more: recreating it",
                         tb->name, name.buf, treps[t]->host, treps[t]->http_port);
            /* Its routing table too (it has the old columns): routing__prepare
             * makes it again. */
            chc_buf_reset(&sql);
            if (k < ts->splits && sql_route_drop(tb, k, &sql) < 0)
                goto oom;
            r = k < ts->splits ? nodes__fanout(w, &treps[t], 1, sql.buf, err) : 0;
            chc_buf_reset(&sql);
            if (r == 0 && sql_drop_table(tb->database_push, name.buf, &sql) < 0)
                goto oom;
            if (r == 0)
                r = nodes__fanout(w, &treps[t], 1, sql.buf, err);
            /* The template's old columns are its partitions' too: a REPLACE
             * from them would be refused. Gone, they are found lost (and
             * copied again) or, by a late mover, missing (an error). */
            if (r == 0 && k == ts->splits)
                r = tables__drop_assemblies(w, tb, &treps[t], 1, 0, err);
            if (r < 0)
                goto out;
            *ret_dropped = 1;
        }
        chc_buf_reset(&sql);
        r = sql_staging_from_show(show, tb->database_push, name.buf, &sql, err);
        if (r < 0)
            goto out;
        r = nodes__fanout(w, treps, ts->n_targets, sql.buf, err);
        if (r < 0) {
            chc_err_prefix(err, "table '%s': cannot create staging table %s", tb->name, name.buf);
            goto out;
        }
    }
    goto out;
oom:
    r = oom(err);
out:
    ch_rows_free(dst_cols);
    ch_rows_free(st_cols);
    free(show);
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    chc_buf_release(&want);
    chc_buf_release(&got);
    return r;
}

/* The destination's CREATE for each node (by its version: a Replicated
 * engine with {uuid} gets the task's UUID where the node knows UUIDs). */
static int destination_sqls(struct worker *w, struct tstate *ts, const struct ch_rows *src_cols,
                            const struct cfg_replica *const *nodes, size_t n,
                            struct chc_buf *sqls, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf uuid = CHC_BUF_INIT;
    size_t i;
    int r = sql_table_uuid(w->o->task_path, tb, &uuid) < 0 ? oom(err) : 0;

    for (i = 0; r == 0 && i < n; i++) {
        int need = sql_needs_uuid(tb, tstate__version(ts, nodes[i]));
        r = tables__create_sql(tb, src_cols, tb->table_push, SQL_TABLE_DESTINATION,
                               need ? uuid.buf : NULL, &sqls[i], err);
    }
    chc_buf_release(&uuid);
    return r;
}

/* Create the database and the destination table on every node of the push
 * cluster; every node must succeed. */
static int create_destination(struct worker *w, struct tstate *ts,
                              const struct cfg_replica *const *nodes, size_t n_nodes,
                              struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct ch_rows *src_cols = NULL;
    struct chc_buf sql = CHC_BUF_INIT, *sqls = calloc(n_nodes + 1, sizeof(*sqls));
    const char **texts = calloc(n_nodes + 1, sizeof(*texts));
    size_t i;
    int r = sqls && texts ? 0 : oom(err);

    if (r == 0)
        r = nodes__describe(w, ts->src_rep[0], SIDE_PULL, tb->database_pull, tb->table_pull,
                            &src_cols, err);
    if (r < 0) {
        if (r != -ENOMEM)
            chc_err_prefix(err, "table '%s': cannot read the source table %s.%s", tb->name,
                           tb->database_pull, tb->table_pull);
        goto out;
    }
    r = sql_create_database(tb->database_push, &sql) < 0 ? oom(err) : 0;
    if (r == 0)
        r = nodes__fanout(w, nodes, n_nodes, sql.buf, err);
    if (r == 0)
        r = destination_sqls(w, ts, src_cols, nodes, n_nodes, sqls, err);
    if (r < 0)
        goto out;
    for (i = 0; i < n_nodes; i++)
        texts[i] = sqls[i].buf;
    r = nodes__multi(w, nodes, n_nodes, texts, NULL, NULL, NULL, err);
    if (r < 0)
        chc_err_prefix(err, "table '%s': cannot create the destination table", tb->name);
out:
    for (i = 0; sqls && i < n_nodes; i++)
        chc_buf_release(&sqls[i]);
    free(sqls);
    free(texts);
    ch_rows_free(src_cols);
    chc_buf_release(&sql);
    return r;
}

/* Create the database and the destination table on every live node of the
 * push cluster; every one must succeed. */
static int prepare_tables(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_replica **nodes = NULL;
    size_t n_nodes = 0;
    int r;

    if (preflight__push_nodes(ts, &nodes, &n_nodes) < 0)
        return oom(err);
    r = create_destination(w, ts, nodes, n_nodes, err);
    free(nodes);
    return r;
}

/* The table is done: a destination replica that was skipped because it did
 * not answer gets the table now if it answers, so that replication brings
 * it the data; else say what to do. Best effort. */
void tables__create_on_returned(struct worker *w, struct tstate *ts)
{
    struct chc_err e = CHC_ERR_INIT;
    size_t i;

    for (i = 0; i < ts->n_nodes; i++) {
        const struct cfg_replica *rep = ts->nodes[i].rep;
        size_t s, j;
        int push = 0;
        if (ts->nodes[i].alive)
            continue;
        for (s = 0; s < ts->tb->push->n_shards; s++)
            for (j = 0; j < ts->tb->push->shards[s].n_replicas; j++)
                push |= &ts->tb->push->shards[s].replicas[j] == rep;
        if (!push)
            continue;
        if (nodes__each(w, &rep, 1, SQL_PROBE, SIDE_PUSH, 10000, NULL, &e, &e) == 0 && e.code == 0 &&
            create_destination(w, ts, &rep, 1, &e) == 0) {
            chc_log_info("table '%s': replica %s:%d answers again: created %s.%s there",
                         ts->tb->name, rep->host, rep->http_port, ts->tb->database_push,
                         ts->tb->table_push);
            continue;
        }
        chc_log_warn("table '%s': replica %s:%d was skipped and is still away (%s): create "
                     "%s.%s there when it is back (`chcopier plan` prints the statement)%s",
                     ts->tb->name, rep->host, rep->http_port, e.msg, ts->tb->database_push,
                     ts->tb->table_push,
                     ts->tb->engine->replicated ? "; replication then brings it the data" : "");
    }
}

/* Drop (dry: name) the partitions' assemblies of tb left on each of
 * reps[0..n): a partition's own goes when it is done; these are those of a
 * worker that died, or of a stale one that came back. */
int tables__drop_assemblies(struct worker *w, const struct cfg_table *tb,
                            const struct cfg_replica *const *reps, size_t n, int dry,
                            struct chc_err *err)
{
    struct chc_buf list = CHC_BUF_INIT, sql = CHC_BUF_INIT;
    struct ch_rows *rows = NULL;
    size_t i, j;
    int r = sql_list_assemblies(tb, &list) < 0 ? oom(err) : 0;

    for (i = 0; r == 0 && i < n; i++) {
        r = nodes__rows(w, reps[i], SIDE_PUSH, list.buf, &rows, err);
        if (r < 0 && dry) { /* naming what would go: an unreachable node is told, not fatal */
            printf("cannot list the assemblies on %s:%d: %s\n", reps[i]->host,
                   reps[i]->http_port, err->msg);
            r = 0;
            continue;
        }
        for (j = 0; r == 0 && j < ch_rows_count(rows); j++) {
            chc_buf_reset(&sql);
            if (sql_drop_table(tb->database_push, ch_rows_str(rows, j, 0), &sql) < 0) {
                r = oom(err);
                break;
            }
            if (dry)
                printf("would drop %s on %s:%d\n", sql.buf + strlen("DROP TABLE IF EXISTS "),
                       reps[i]->host, reps[i]->http_port);
            else
                r = nodes__drops(w, &reps[i], 1, NULL, sql.buf, err);
        }
        rows = ch_rows_free(rows);
    }
    chc_buf_release(&list);
    chc_buf_release(&sql);
    return r;
}

/* Drop the staging tables on every live node of the push cluster, not only
 * on today's staging nodes: staging may have been on another replica while
 * the first was down. */
int tables__drop_helpers(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_replica **treps = NULL;
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT, gate = CHC_BUF_INIT;
    size_t n = 0;
    unsigned k;
    int r = 0;

    drops__wait(w, 0); /* the released partitions' drops end first */
    if (tstate__drop_gate(ts, &gate) < 0 || preflight__push_nodes(ts, &treps, &n) < 0) {
        chc_buf_release(&gate);
        return oom(err);
    }
    r = routing__drop(w, ts, treps, n, err);
    if (r == 0)
        r = tables__drop_assemblies(w, ts->tb, treps, n, 0, err);
    for (k = 0; r == 0 && k <= ts->splits; k++) {
        chc_buf_reset(&sql);
        chc_buf_reset(&name);
        r = k < ts->splits ? plan_piece_table(ts->tb, k, &name) : plan_assembly_table(ts->tb, &name);
        if (r == 0)
            r = sql_drop_table(ts->tb->database_push, name.buf, &sql);
        if (r < 0) {
            r = oom(err);
            break;
        }
        r = drops__run(w, gate.buf, treps, n, NULL, sql.buf, err);
    }
    if (r < 0 && r != -ENOMEM)
        chc_err_prefix(err, "table '%s': dropping the staging tables", ts->tb->name);
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    chc_buf_release(&gate);
    return r;
}

/* The first worker on a table definition owns its initialisation, under the
 * ephemeral lock <zroot>/init: empty the staging tables (they may hold
 * leftovers of an earlier definition or run), then discover the partitions
 * and publish them. Copying starts only once the partition list exists, so
 * nothing is ever copied into staging before it was emptied. The others
 * wait for the list; if the owner dies, the next one takes over (the marker
 * staging_reset says the tables were already emptied). */
static int table_init(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct st_claimer cl = wk__claimer(w);
    struct chc_buf lock = CHC_BUF_INIT, out = CHC_BUF_INIT;
    uint64_t waited = 0;
    char *held = NULL;
    int r, dropped;

    if (st_path_tnode(ts->zroot, ST_INIT, NULL, &lock) < 0)
        goto oom;
    for (;;) {
        r = tstate__parts_read(ts, NULL, err);
        if (r == 0)
            goto out;
        if (r != CHC_EZK_NONODE)
            goto out;
        r = st_claim(&cl, lock.buf, err);
        if (r == 0) {
            held = chc_buf_take(&lock, NULL);
            break;
        }
        if (r != CHC_EZK_NODEEXISTS)
            goto out;
        if (waited % 10000 == 0)
            chc_log_info("table '%s': waiting for another worker to discover partitions",
                         ts->tb->name);
        wk__sleep(w, 200);
        waited += 200;
    }
    /* We own the initialisation. */
    r = tstate__parts_read(ts, NULL, err);
    if (r == 0)
        goto release;
    chc_buf_reset(&out);
    if (st_path_tnode(ts->zroot, ST_STAGING_RESET, NULL, &out) < 0)
        goto oom;
    r = zk_exists(w->zs, out.buf, NULL, err);
    if (r == CHC_EZK_NONODE) {
        r = tables__drop_helpers(w, ts, err);
        if (r == 0)
            r = staging_sync(w, ts, &dropped, err);
        if (r == 0)
            r = zk_create(w->zs, out.buf, "", 0, ZK_PERSISTENT, NULL, err);
        if (r == CHC_EZK_NODEEXISTS)
            r = 0;
    }
    if (r < 0) /* not known to be emptied: nothing may be copied yet */
        goto release;
    if (!ts->cols.hash_src) /* discovery needs the columns for the source checksums */
        r = staging_sync(w, ts, &dropped, err);
    if (r == 0)
        r = discover__partitions(w, ts, err);
    if (r < 0)
        goto release;
    r = tstate__parts_publish(ts, err);
release:
    st_release(&cl, &held);
    goto out;
oom:
    r = oom(err);
out:
    chc_buf_release(&lock);
    chc_buf_release(&out);
    return r;
}

/* Sync the staging tables with the destination; if some had to be
 * recreated, every partition not yet assembled is copied again. */
int tables__staging_check(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct chc_buf state = CHC_BUF_INIT;
    size_t i;
    int dropped = 0, r;

    r = staging_sync(w, ts, &dropped, err);
    for (i = 0; r == 0 && dropped && i < ts->n_parts; i++) {
        r = tstate__part_get(ts, i, &state, NULL, err);
        if (r == 0 && state.len == 0) {
            r = tstate__reset_pieces(ts, i, err);
            memset(pdone_at(ts, ts->parts[i].lead, 0), 0,
                   (size_t)ts->splits * ts->tb->pull->n_shards);
        }
    }
    if (r == 0 && dropped)
        chc_log_info("table '%s': staging recreated, partitions not yet assembled will be "
                     "copied again", ts->tb->name);
    if (r == 0 && dropped && ts->route == ROUTE_DISTRIBUTED)
        r = routing__create(w, ts, err);
    chc_buf_release(&state);
    return r;
}

/* Everything about a table task that needs no writes: its ZooKeeper root,
 * source replicas in proximity order, staging nodes, sharding key type. */
int tables__layout(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                   struct chc_err *err)
{
    struct tstate *ts = calloc(1, sizeof(*ts));
    struct chc_buf b = CHC_BUF_INIT;
    int *local = NULL;
    size_t s, j;
    int r;

    if (!ts)
        return oom(err);
    ts->w = w;
    ts->tb = tb;
    ts->splits = plan_splits(tb);
    /* Data path: --data-path overrides the task's <data_path>; pull by default. */
    ts->pipe = w->o->data_path ? w->o->data_path == CHC_PATH_PIPE : tb->data_path == CFG_PATH_PIPE;
    if (st_path_table(w->o->task_path, tb, &b) < 0)
        goto oom;
    ts->zroot = chc_buf_take(&b, NULL);
    /* Shards ordered by proximity; source replicas and staging nodes are
     * chosen among the live ones by the preflight. */
    ts->src_rep = calloc(tb->pull->n_shards, sizeof(*ts->src_rep));
    ts->order = calloc(tb->pull->n_shards, sizeof(*ts->order));
    local = calloc(tb->pull->n_shards, sizeof(*local));
    if (!ts->src_rep || !ts->order || !local)
        goto oom;
    for (s = 0; s < tb->pull->n_shards; s++)
        for (j = 0; j < tb->pull->shards[s].n_replicas; j++)
            local[s] |= plan_is_local_host(tb->pull->shards[s].replicas[j].host, w->host);
    plan_shard_order(tb->pull, w->host, local, ts->order);
    r = preflight__run(w, ts, err);
    if (r < 0)
        goto fail;
    free(local);
    *ret = ts;
    return 0;
oom:
    r = oom(err);
fail:
    free(local);
    chc_buf_release(&b);
    tstate__free(ts);
    return r;
}

int tables__prepare(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                    struct chc_err *err)
{
    struct tstate *ts = NULL;
    struct chc_buf b = CHC_BUF_INIT;
    int r;

    r = tables__layout(w, tb, &ts, err);
    if (r < 0)
        return r;
    r = zk_create_parents(w->zs, ts->zroot, err);
    if (r < 0)
        goto fail;
    r = st_path_tnode(ts->zroot, ST_PARTS, NULL, &b);
    if (r == 0)
        r = zk_create_parents(w->zs, b.buf, err);
    if (r == 0)
        r = st_path_tnode(ts->zroot, ST_LOCKS, NULL, &b);
    if (r == 0)
        r = zk_create_parents(w->zs, b.buf, err);
    if (r < 0)
        goto fail;
    r = st_path_tnode(ts->zroot, ST_DONE, NULL, &b);
    if (r == 0 && zk_exists(w->zs, b.buf, NULL, err) == 0) {
        ts->finished = 1;
        goto done;
    }
    /* The staging replicas first: the routing chooses among them. */
    r = pin__staging(w, ts, err);
    if (r == 0) /* a pinned replica may be of another version */
        versions__choose_path(ts, &ts->pipe);
    if (r == 0)
        r = routing__choose(w, ts, err);
    if (r == 0)
        r = prepare_tables(w, ts, err);
    if (r < 0)
        goto fail;
    r = table_init(w, ts, err);
    if (r < 0)
        goto fail;
    ts->pdone = calloc(ts->n_parts * ts->splits * tb->pull->n_shards + 1, 1);
    ts->pbusy = calloc(ts->n_parts * ts->splits + 1, 1);
    ts->pnext = calloc(ts->n_parts * ts->splits + 1, sizeof(*ts->pnext));
    ts->pfails = calloc(ts->n_parts * ts->splits + 1, 1);
    ts->ptries = calloc(ts->n_parts * ts->splits + 1, sizeof(*ts->ptries));
    if (!ts->pdone || !ts->pbusy || !ts->pnext || !ts->pfails || !ts->ptries) {
        r = oom(err);
        goto fail;
    }
    r = tables__staging_check(w, ts, err);
    if (r == 0)
        r = routing__create(w, ts, err);
    if (r < 0)
        goto fail;
done:
    chc_buf_release(&b);
    *ret = ts;
    return 0;
fail:
    chc_buf_release(&b);
    tstate__free(ts);
    return r;
}

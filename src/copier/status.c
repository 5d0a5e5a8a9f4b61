/* status.c — the operator commands that look at a task without working on
 * it: status (ZooKeeper only: progress, speed, claims in flight, last
 * errors; text or JSON), plan (the partitions, pieces and every DDL and SQL
 * statement a worker would run; writes nothing) and clean (drop staging
 * tables, remove the task's state; refuses while workers run). What they
 * print passes the task's secrets mask (secrets.h) first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/sql/plan.h"
#include "chcopier/state/layout.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/task.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/copier/worker.h"
#include "chcopier/zk/zk.h"
#include "worker-internal.h"

#include "base/banned.h"

/* Print text with every password of the task masked (secrets.h: each
 * replica's, in every form, e.g. SQL-escaped inside remote()). Fails closed:
 * what cannot be masked is not printed. */
static void print_masked(const char *indent, const char *text, const char *end)
{
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);

    if (!copy) {
        printf("%s(not shown: out of memory)%s", indent, end);
        return;
    }
    memcpy(copy, text, size);
    chc_secrets_mask_str(copy, size, 0);
    printf("%s%s%s", indent, copy, end);
    free(copy);
}

static void print_sql(const char *indent, const char *sql)
{
    print_masked(indent, sql, ";\n");
}

static void print_nodes(const char *what, const struct cfg_replica *const *reps, size_t n)
{
    size_t i;

    printf("  %s:", what);
    for (i = 0; i < n; i++)
        printf(" %s:%d", reps[i]->host, reps[i]->http_port);
    printf("\n");
}

static int plan_table(struct worker *w, const struct cfg_table *tb, struct chc_err *err)
{
    struct tstate *ts = NULL;
    struct ch_rows *src_cols = NULL, *dst_cols = NULL;
    const struct cfg_replica **nodes = NULL, **treps = NULL;
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT;
    size_t n_nodes = 0, i, s, t, pieces = 0;
    unsigned k;
    int r;

    r = tables__layout(w, tb, &ts, err);
    if (r < 0)
        return r;
    r = tables__describe(w, ts->src_rep[0], 0, tb->database_pull, tb->table_pull, &src_cols, err);
    if (r < 0) {
        chc_err_prefix(err, "table '%s': cannot read the source table %s.%s", tb->name,
                       tb->database_pull, tb->table_pull);
        goto out;
    }
    /* Copy the destination's columns if it exists, else the source's. */
    if (tables__describe(w, ts->targets[0].rep, 1, tb->database_push, tb->table_push, &dst_cols,
                         err) < 0)
        dst_cols = NULL;
    r = tables__columns_load(ts, dst_cols ? dst_cols : src_cols, err);
    if (r == 0)
        r = tables__discover_query(w, ts, err);
    if (r < 0)
        goto out;
    if (tables__push_nodes(tb->push, &nodes, &n_nodes) < 0 || tables__target_reps(ts, &treps) < 0)
        goto oom;
    for (i = 0; i < ts->n_parts; i++)
        pieces += ts->parts[i].lead == i ? group_pieces(ts, i) : 0;
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
    for (i = 0, t = 0; i < ts->n_parts; i++)
        t += ts->parts[i].lead == i && ts->parts[i].n_group > 1;
    printf("  partitions: %zu (%zu copy group(s) of small partitions), pieces: %zu (up to %u "
           "per partition and source shard)\n",
           ts->n_parts, t, pieces, ts->splits);
    for (i = 0; i < ts->n_parts; i++) {
        if (ts->parts[i].lead != i)
            printf("    %s: %lld rows, copied with %s, on source shards", ts->parts[i].lit,
                   ts->parts[i].rows, ts->parts[ts->parts[i].lead].lit);
        else if (ts->parts[i].n_group > 1)
            printf("    %s: %lld rows, %u piece(s) per shard for it and the next %zu, on "
                   "source shards",
                   ts->parts[i].lit, ts->parts[i].rows, ts->parts[i].splits,
                   ts->parts[i].n_group - 1);
        else
            printf("    %s: %lld rows, %u piece(s) per shard, on source shards", ts->parts[i].lit,
                   ts->parts[i].rows, ts->parts[i].splits);
        for (s = 0; s < tb->pull->n_shards; s++)
            if (ts->parts[i].on_shard[s])
                printf(" %zu", s + 1);
        printf("\n");
    }
    printf("  destination table (%s):\n", dst_cols ? "exists" : "created on every destination node");
    r = tables__create_sql(tb, src_cols, tb->table_push, 0, &sql, err);
    if (r < 0)
        goto out;
    print_sql("    ", sql.buf);
    printf("  staging tables (on the staging nodes):\n");
    for (k = 0; k <= ts->splits; k++) {
        chc_buf_reset(&name);
        chc_buf_reset(&sql);
        if ((k < ts->splits ? plan_piece_table(tb, k, &name) : plan_assembly_table(tb, &name)) < 0)
            goto oom;
        r = tables__create_sql(tb, dst_cols ? dst_cols : src_cols, name.buf, 1, &sql, err);
        if (r < 0)
            goto out;
        print_sql("    ", sql.buf);
    }
    if (ts->n_parts == 0)
        goto out;
    if (ts->parts[0].n_group > 1)
        printf("  copy, for partitions %s .. %s (the others alike):\n", ts->parts[0].lit,
               ts->parts[ts->parts[0].n_group - 1].lit);
    else
        printf("  copy, for partition %s (the others alike):\n", ts->parts[0].lit);
    for (s = 0; s < tb->pull->n_shards; s++) {
        if (!group_on_shard(ts, 0, s))
            continue;
        for (k = 0; k < ts->parts[0].splits; k++)
            for (t = 0; t < ts->n_targets; t++) {
                chc_buf_reset(&sql);
                r = piece__copy_sql(ts, 0, k, s, &ts->targets[t], &sql, err);
                if (r < 0)
                    goto out;
                printf("    -- piece %u, source shard %zu, on %s:%d\n", k, s + 1,
                       ts->targets[t].rep->host, ts->targets[t].rep->http_port);
                print_sql("    ", sql.buf);
            }
    }
    printf("  move, on every staging node:\n");
    {
        static const enum move_step steps[] = {MOVE_DROP_ASSEMBLY, MOVE_ATTACH_DEST,
                                               MOVE_ATTACH_PIECES, MOVE_REPLACE};
        size_t st;
        for (st = 0; st < sizeof(steps) / sizeof(steps[0]); st++) {
            unsigned nk = steps[st] == MOVE_ATTACH_PIECES ? ts->parts[0].splits : 1;
            if (steps[st] == MOVE_ATTACH_DEST && tb->allow_drop_target_partitions)
                continue; /* nothing of the destination is kept */
            for (k = 0; k < nk; k++) {
                chc_buf_reset(&sql);
                if (sql_move_step(tb, steps[st], ts->parts[0].lit, k, &sql) < 0)
                    goto oom;
                print_sql("    ", sql.buf);
            }
        }
    }
    printf("  verify: SELECT count(), sum(%s) per partition on the source shards, "
           "sum(%s) on the destination\n",
           ts->cols.hash_src, ts->cols.hash_dst);
    goto out;
oom:
    r = oom(err);
out:
    ch_rows_free(src_cols);
    ch_rows_free(dst_cols);
    free(nodes);
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    tables__tstate_free(ts);
    return r;
}

int worker_plan(const struct chc_options *o, struct zk_session *zs, const struct cfg_task *task,
                struct chc_err *err)
{
    struct worker w;
    size_t i;
    int r;

    r = worker__open(&w, o, zs, task, err);
    for (i = 0; r == 0 && i < w.task->n_tables; i++)
        r = plan_table(&w, &w.task->tables[i], err);
    if (r == 0)
        printf("plan only: nothing was written to ZooKeeper or ClickHouse\n");
    worker__close(&w);
    return r;
}

int worker_clean(const struct chc_options *o, struct zk_session *zs, struct chc_err *err)
{
    struct worker w;
    struct chc_buf path = CHC_BUF_INIT, sql = CHC_BUF_INIT, name = CHC_BUF_INIT;
    const struct cfg_replica **nodes = NULL;
    char **workers = NULL;
    size_t n_workers = 0, n_nodes = 0, i;
    unsigned k;
    int r;

    r = worker__open(&w, o, zs, NULL, err);
    if (r < 0)
        goto out;
    {
        struct st_claimer cl = worker__claimer(&w);
        st_reap_dead_local(&cl, o->task_path);
    }
    r = wk__zpath(&path, "%s/workers", o->task_path);
    if (r == 0)
        r = zk_children(zs, path.buf, &workers, &n_workers, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    if (r < 0)
        goto out;
    if (n_workers > 0) {
        r = chc_err_set(err, CHC_EBUSY,
                        "clean: %zu worker(s) are running on %s (%s%s); stop them first",
                        n_workers, o->task_path, workers[0], n_workers > 1 ? ", ..." : "");
        goto out;
    }
    for (i = 0; i < w.task->n_tables; i++) {
        const struct cfg_table *tb = &w.task->tables[i];
        free(nodes);
        nodes = NULL;
        if (tables__push_nodes(tb->push, &nodes, &n_nodes) < 0) {
            r = oom(err);
            goto out;
        }
        for (k = 0; k <= plan_splits(tb); k++) {
            chc_buf_reset(&name);
            chc_buf_reset(&sql);
            if ((k < plan_splits(tb) ? plan_piece_table(tb, k, &name)
                                     : plan_assembly_table(tb, &name)) < 0 ||
                sql_drop_table(tb->database_push, name.buf, &sql) < 0) {
                r = oom(err);
                goto out;
            }
            printf("%s %s on %zu destination nodes\n", o->yes ? "dropping" : "would drop",
                   sql.buf + strlen("DROP TABLE IF EXISTS "), n_nodes);
            if (o->yes) {
                r = wk__fanout(&w, nodes, n_nodes, sql.buf, err);
                if (r < 0)
                    goto out;
            }
        }
    }
    printf("%s %s/tables, /active and /workers (the description stays)\n",
           o->yes ? "removing" : "would remove", o->task_path);
    if (!o->yes) {
        r = chc_err_set(err, CHC_EUSAGE, "clean: nothing removed; add --yes to really delete");
        goto out;
    }
    r = wk__zpath(&path, "%s/tables", o->task_path);
    if (r == 0)
        r = zk_delete_recursive(zs, path.buf, err);
    if (r == 0)
        r = wk__zpath(&path, "%s/active", o->task_path);
    if (r == 0)
        r = zk_delete_recursive(zs, path.buf, err);
    if (r == 0)
        r = wk__zpath(&path, "%s/workers", o->task_path);
    if (r == 0)
        r = zk_delete_recursive(zs, path.buf, err);
out:
    chc_strv_free(workers, n_workers);
    free(nodes);
    chc_buf_release(&path);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    worker__close(&w);
    return r;
}

struct table_status {
    const char *state; /* not_started, copying, done */
    size_t parts_total, parts_done, parts_moving;
    size_t pieces_total, pieces_done;
    unsigned long long rows_verified, rows_staged;
    long long rows_total;  /* from discovery, -1 unknown */
    size_t failing;        /* pieces whose last attempt failed */
    char last_error[400];
    double elapsed;        /* seconds since the partition list was published */
    double rows_per_s;     /* average since then */
    double eta;            /* seconds, -1 unknown */
    struct chc_buf flight_text, flight_json;
    size_t n_flight;
};

static int status_table(struct worker *w, const struct cfg_table *tb, struct table_status *st,
                        struct chc_err *err)
{
    struct tstate *ts = calloc(1, sizeof(*ts));
    struct chc_buf b = CHC_BUF_INIT, data = CHC_BUF_INIT;
    unsigned char *done = calloc(tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    char **locks = NULL;
    size_t n_locks = 0, i, sh, n_on;
    struct zk_stat pst, dst_;
    unsigned k;
    int r;

    st->state = "not_started";
    st->rows_total = -1;
    st->eta = -1.0;
    if (!ts || !done) {
        r = oom(err);
        goto out;
    }
    ts->w = w;
    ts->tb = tb;
    ts->splits = plan_splits(tb);
    if (st_path_table(w->o->task_path, tb, &b) < 0) {
        r = oom(err);
        goto out;
    }
    ts->zroot = chc_buf_take(&b, NULL);
    r = tstate__parts_read(ts, &pst, err);
    if (r == CHC_EZK_NONODE) {
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    st->state = "copying";
    st->parts_total = ts->n_parts;
    st->rows_total = 0;
    for (i = 0; i < ts->n_parts; i++)
        st->rows_total = ts->parts[i].rows < 0 || st->rows_total < 0
                             ? -1
                             : st->rows_total + ts->parts[i].rows;
    for (i = 0; i < ts->n_parts; i++) {
        unsigned long long rows = 0, hash = 0;
        r = tstate__part_get(ts, i, &data, NULL, err);
        if (r < 0)
            goto out;
        if (sscanf(data.buf, "done %llu %llu", &rows, &hash) == 2) {
            ts->parts[i].done = 1;
            st->parts_done++;
            st->rows_verified += rows;
        } else if (data.len) {
            st->parts_moving++;
        }
    }
    /* Pieces belong to copy groups (one partition, or several small ones). */
    for (i = 0; i < ts->n_parts; i++) {
        long long staged = 0, moved = 0;
        size_t m;
        if (ts->parts[i].lead != i)
            continue;
        n_on = group_pieces(ts, i);
        st->pieces_total += n_on;
        if (group_done(ts, i)) {
            st->pieces_done += n_on;
            continue;
        }
        for (k = 0; k < ts->parts[i].splits; k++) {
            r = tstate__piece_read(ts, i, k, &ps, err);
            if (r < 0)
                goto out;
            for (sh = 0; sh < tb->pull->n_shards; sh++)
                st->pieces_done += group_on_shard(ts, i, sh) && ps.done[sh];
            staged += ps.rows;
            if (ps.error[0]) {
                chc_secrets_mask_str(ps.error, sizeof(ps.error), 0);
                st->failing++;
                snprintf(st->last_error, sizeof(st->last_error), "partition %.100s piece %u: %.240s",
                         ts->parts[i].lit, k, ps.error);
            }
        }
        /* Members already moved are counted as verified, not staged. */
        for (m = i; m < i + ts->parts[i].n_group; m++)
            if (ts->parts[m].done && ts->parts[m].rows > 0)
                moved += ts->parts[m].rows;
        st->rows_staged += (unsigned long long)(staged > moved ? staged - moved : 0);
    }
    /* Speed: rows verified or staged since the partition list appeared. */
    {
        struct timespec now;
        double copied = (double)(st->rows_verified + st->rows_staged);
        clock_gettime(CLOCK_REALTIME, &now);
        st->elapsed = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)pst.ctime / 1000.0;
        if (st->elapsed < 0.001)
            st->elapsed = 0.001;
        st->rows_per_s = copied / st->elapsed;
        st->eta = st->rows_total >= 0 && st->rows_per_s > 0
                      ? ((double)st->rows_total - copied) / st->rows_per_s
                      : -1.0;
        if (st->eta < 0 && st->rows_total >= 0)
            st->eta = 0;
    }
    r = wk__zpath(&b, "%s/done", ts->zroot);
    if (r == 0 && zk_exists(w->zs, b.buf, &dst_, err) == 0) {
        /* Finished: the speed is over the copy, not until now. */
        st->state = "done";
        st->eta = 0;
        st->elapsed = (double)(dst_.ctime - pst.ctime) / 1000.0;
        if (st->elapsed < 0.001)
            st->elapsed = 0.001;
        st->rows_per_s = (double)(st->rows_verified + st->rows_staged) / st->elapsed;
    }
    /* Claims in flight: locks/<partition>#<k> hold the worker id. */
    r = wk__zpath(&b, "%s/locks", ts->zroot);
    if (r == 0)
        r = zk_children(w->zs, b.buf, &locks, &n_locks, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    for (i = 0; r == 0 && i < n_locks; i++) {
        struct chc_buf part = CHC_BUF_INIT, lp = CHC_BUF_INIT, holder = CHC_BUF_INIT;
        char *hash = strrchr(locks[i], '#');
        if (!hash)
            continue;
        if (st_node_unname(locks[i], &part) < 0 || wk__zpath(&lp, "%s/locks/%s", ts->zroot, locks[i]) < 0) {
            r = oom(err);
        } else if (zk_get(w->zs, lp.buf, &holder, NULL, err) == 0) {
            chc_buf_setlen(&part, (size_t)(strrchr(part.buf, '#') - part.buf));
            r = chc_buf_addf(&st->flight_text, "    partition %s %s%s held by %s\n", part.buf,
                             strcmp(hash + 1, "move") ? "piece " : "", hash + 1, holder.buf);
            if (r == 0)
                r = chc_buf_addf(&st->flight_json, "%s{\"partition\":\"", st->n_flight ? "," : "");
            if (r == 0)
                r = chc_buf_add_json(&st->flight_json, part.buf);
            if (r == 0)
                r = chc_buf_addf(&st->flight_json, "\",\"what\":\"%s%s\",\"worker\":\"",
                                 strcmp(hash + 1, "move") ? "piece " : "", hash + 1);
            if (r == 0)
                r = chc_buf_add_json(&st->flight_json, holder.buf);
            if (r == 0)
                r = chc_buf_addstr(&st->flight_json, "\"}");
            st->n_flight++;
        }
        chc_buf_release(&part);
        chc_buf_release(&lp);
        chc_buf_release(&holder);
    }
out:
    chc_strv_free(locks, n_locks);
    free(done);
    chc_buf_release(&b);
    chc_buf_release(&data);
    tables__tstate_free(ts);
    return r;
}

/* "  worker <id>\n    <note>\n..." and [{"worker":..,"note":..},...] from
 * each worker's workers/<id> node (worker__registration). */
static int worker_notes(struct zk_session *zs, const struct chc_options *o, char **workers,
                        size_t n, struct chc_buf *text, struct chc_buf *json, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    size_t i, m = 0, len = 0;
    int r = 0;

    for (i = 0; r == 0 && i < n; i++) {
        const char *p;
        r = chc_buf_addf(text, "  worker %s\n", workers[i]);
        if (r < 0 || wk__zpath(&path, "%s/workers/%s", o->task_path, workers[i]) < 0 ||
            zk_get(zs, path.buf, &data, NULL, NULL) < 0)
            continue; /* gone meanwhile */
        for (p = data.buf; r == 0 && *p; p += len + (p[len] == '\n')) {
            char *line;
            len = strcspn(p, "\n");
            if (strncmp(p, "note ", 5))
                continue;
            line = chc_strndup(p + 5, len - 5);
            r = line ? chc_buf_addf(text, "    %s\n", line) : -ENOMEM;
            if (r == 0)
                r = chc_buf_addf(json, "%s{\"worker\":\"", m++ ? "," : "");
            if (r == 0)
                r = chc_buf_add_json(json, workers[i]);
            if (r == 0)
                r = chc_buf_addstr(json, "\",\"note\":\"");
            if (r == 0)
                r = chc_buf_add_json(json, line);
            if (r == 0)
                r = chc_buf_addstr(json, "\"}");
            free(line);
        }
    }
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r < 0 ? chc_err_set(err, r, "out of memory") : 0;
}

int worker_status(const struct chc_options *o, struct zk_session *zs, struct chc_err *err)
{
    struct worker w;
    struct chc_buf out = CHC_BUF_INIT, path = CHC_BUF_INIT;
    struct chc_buf notes_text = CHC_BUF_INIT, notes_json = CHC_BUF_INIT;
    char **workers = NULL;
    size_t n_workers = 0, i;
    struct zk_stat active;
    int r;

    memset(&w, 0, sizeof(w));
    w.o = o;
    w.zs = zs;
    r = taskstore_fetch(zs, o->task_path, &w.task, NULL, err);
    if (r < 0)
        return r;
    memset(&active, 0, sizeof(active));
    r = wk__zpath(&path, "%s/workers", o->task_path);
    if (r == 0)
        r = zk_children(zs, path.buf, &workers, &n_workers, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    if (r == 0)
        r = wk__zpath(&path, "%s/active", o->task_path) < 0 ? -ENOMEM
                                                             : zk_exists(zs, path.buf, &active, err);
    if (r == CHC_EZK_NONODE)
        r = 0; /* no slot ever taken */
    if (r == -ENOMEM)
        r = chc_err_set(err, r, "out of memory");
    if (r < 0)
        goto out;
    if (r == 0)
        r = worker_notes(zs, o, workers, n_workers, &notes_text, &notes_json, err);
    if (r < 0)
        goto out;
    if (o->json) {
        r = chc_buf_addstr(&out, "{\"task_path\":\"");
        if (r == 0)
            r = chc_buf_add_json(&out, o->task_path);
        if (r == 0)
            r = chc_buf_addf(&out, "\",\"max_workers\":%u,\"pieces_in_flight\":%d,\"workers\":[",
                             w.task->max_workers, active.num_children);
        for (i = 0; r == 0 && i < n_workers; i++) {
            r = chc_buf_addf(&out, "%s\"", i ? "," : "");
            if (r == 0)
                r = chc_buf_add_json(&out, workers[i]);
            if (r == 0)
                r = chc_buf_addch(&out, '"');
        }
        if (r == 0)
            r = chc_buf_addf(&out, "],\"notes\":[%s],\"tables\":[", notes_json.buf);
    } else {
        r = chc_buf_addf(&out, "task %s: %zu worker(s) running, %d piece(s) being copied "
                               "(max_workers %u)\n",
                         o->task_path, n_workers, active.num_children, w.task->max_workers);
        if (r == 0)
            r = chc_buf_addstr(&out, notes_text.buf);
    }
    for (i = 0; r == 0 && i < w.task->n_tables; i++) {
        const struct cfg_table *tb = &w.task->tables[i];
        struct table_status st;
        memset(&st, 0, sizeof(st));
        chc_buf_init(&st.flight_text, 0);
        chc_buf_init(&st.flight_json, 0);
        r = status_table(&w, tb, &st, err);
        if (r == 0 && o->json) {
            r = chc_buf_addf(&out, "%s{\"name\":\"", i ? "," : "");
            if (r == 0)
                r = chc_buf_add_json(&out, tb->name);
            if (r == 0)
                r = chc_buf_addf(&out,
                                 "\",\"definition\":\"%s\",\"state\":\"%s\","
                                 "\"partitions_total\":%zu,\"partitions_done\":%zu,"
                                 "\"partitions_moving\":%zu,\"pieces_total\":%zu,"
                                 "\"pieces_done\":%zu,\"rows_verified\":%llu,"
                                 "\"rows_staged\":%llu,\"rows_total\":%lld,"
                                 "\"elapsed_s\":%.1f,\"rows_per_s\":%.0f,\"eta_s\":%.0f,"
                                 "\"failing_pieces\":%zu,\"in_flight\":[%s],\"last_error\":\"",
                                 tb->def_hash_hex, st.state, st.parts_total, st.parts_done,
                                 st.parts_moving, st.pieces_total, st.pieces_done,
                                 st.rows_verified, st.rows_staged, st.rows_total, st.elapsed,
                                 st.rows_per_s, st.eta, st.failing, st.flight_json.buf);
            if (r == 0)
                r = chc_buf_add_json(&out, st.last_error);
            if (r == 0)
                r = chc_buf_addstr(&out, "\"}");
        } else if (r == 0) {
            char eta[32] = "unknown";
            if (st.eta >= 0)
                snprintf(eta, sizeof(eta), "%.0f s", st.eta);
            r = chc_buf_addf(&out,
                             "table %s: %s.%s -> %s.%s.%s [%s] (definition %s)\n"
                             "  partitions: %zu total, %zu done and verified, %zu moving\n"
                             "  pieces:     %zu of %zu copied (%.0f%%)\n"
                             "  rows:       %llu in verified partitions, %llu staged, %lld in "
                             "the source\n"
                             "  speed:      %.0f rows/s over %.0f s, ETA %s\n%s%s%s%s%s",
                             tb->name, tb->database_pull, tb->table_pull, tb->cluster_push,
                             tb->database_push, tb->table_push, st.state, tb->def_hash_hex,
                             st.parts_total, st.parts_done, st.parts_moving, st.pieces_done,
                             st.pieces_total,
                             st.pieces_total ? 100.0 * (double)st.pieces_done /
                                                   (double)st.pieces_total
                                             : 0.0,
                             st.rows_verified, st.rows_staged, st.rows_total, st.rows_per_s,
                             st.elapsed, eta, st.n_flight ? "  in flight:\n" : "",
                             st.flight_text.buf, st.failing ? "  failing:    " : "",
                             st.failing ? st.last_error : "", st.failing ? "\n" : "");
        }
        chc_buf_release(&st.flight_text);
        chc_buf_release(&st.flight_json);
    }
    if (r == 0 && o->json)
        r = chc_buf_addstr(&out, "]}\n");
    if (r < 0)
        goto out;
    print_masked("", out.buf, "");
out:
    if (r == -ENOMEM || r == CHC_ETOOBIG)
        chc_err_set(err, r, "out of memory");
    chc_strv_free(workers, n_workers);
    chc_buf_release(&out);
    chc_buf_release(&path);
    chc_buf_release(&notes_text);
    chc_buf_release(&notes_json);
    cfg_task_free(w.task);
    return r;
}

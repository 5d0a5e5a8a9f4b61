/* cmd-clean.c — `chcopier clean`: drop every staging table of the task on
 * every destination node and remove the task's state from ZooKeeper
 * (tables/, active/, workers/; the description stays). Refuses while
 * workers run; without --yes it only says what it would do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/options.h"
#include "chcopier/config/task.h"
#include "chcopier/copier/worker.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/plan.h"
#include "chcopier/state/claims.h"
#include "chcopier/state/layout.h"
#include "chcopier/zk/zk.h"
#include "nodes.h"
#include "tables.h"
#include "wk.h"

#include "base/banned.h"

/* CHC_EBUSY while a worker is registered (dead local ones are reaped). */
static int no_workers(struct worker *w, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct st_claimer cl = wk__claimer(w);
    char **workers = NULL;
    size_t n = 0;
    int r;

    st_reap_dead_local(&cl, w->o->task_path);
    r = st_path_task(w->o->task_path, ST_WORKERS, NULL, &path) < 0 ? oom(err) : 0;
    if (r == 0)
        r = zk_children(w->zs, path.buf, &workers, &n, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    if (r == 0 && n > 0)
        r = chc_err_set(err, CHC_EBUSY,
                        "clean: %zu worker(s) are running on %s (%s%s); stop them first", n,
                        w->o->task_path, workers[0], n > 1 ? ", ..." : "");
    chc_strv_free(workers, n);
    chc_buf_release(&path);
    return r;
}

/* Drop (or with no --yes, name) the piece and assembly tables of tb. */
static int drop_staging(struct worker *w, const struct cfg_table *tb, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT;
    const struct cfg_replica **nodes = NULL;
    size_t n_nodes = 0;
    unsigned k, splits = plan_splits(tb);
    int r = nodes__of_cluster(tb->push, &nodes, &n_nodes) < 0 ? oom(err) : 0;

    if (r == 0 && w->o->yes) /* drops lift the size limit where the version lets them */
        r = nodes__probe_versions(w, nodes, n_nodes, err);
    for (k = 0; r == 0 && k <= splits; k++) {
        chc_buf_reset(&name);
        chc_buf_reset(&sql);
        if ((k < splits ? plan_piece_table(tb, k, &name) : plan_assembly_table(tb, &name)) < 0 ||
            sql_drop_table(tb->database_push, name.buf, &sql) < 0) {
            r = oom(err);
            break;
        }
        printf("%s %s on %zu destination nodes\n", w->o->yes ? "dropping" : "would drop",
               sql.buf + strlen("DROP TABLE IF EXISTS "), n_nodes);
        if (w->o->yes)
            r = nodes__drops(w, nodes, n_nodes, NULL, sql.buf, err);
    }
    if (r == 0)
        r = tables__drop_assemblies(w, tb, nodes, n_nodes, !w->o->yes, err);
    free(nodes);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    return r;
}

static int remove_state(struct worker *w, struct chc_err *err)
{
    static const enum st_task_node gone[] = {ST_TABLES, ST_ACTIVE, ST_WORKERS};
    struct chc_buf path = CHC_BUF_INIT;
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < sizeof(gone) / sizeof(gone[0]); i++) {
        r = st_path_task(w->o->task_path, gone[i], NULL, &path) < 0 ? oom(err) : 0;
        if (r == 0)
            r = zk_delete_recursive(w->zs, path.buf, err);
    }
    chc_buf_release(&path);
    return r;
}

int worker_clean(const struct chc_options *o, struct zk_session *zs, struct chc_err *err)
{
    struct worker w;
    size_t i;
    int r;

    r = wk__open(&w, o, zs, NULL, err);
    if (r == 0)
        r = no_workers(&w, err);
    for (i = 0; r == 0 && i < w.task->n_tables; i++)
        r = drop_staging(&w, &w.task->tables[i], err);
    if (r == 0)
        printf("%s %s/tables, /active and /workers (the description stays)\n",
               o->yes ? "removing" : "would remove", o->task_path);
    if (r == 0 && !o->yes)
        r = chc_err_set(err, CHC_EUSAGE, "clean: nothing removed; add --yes to really delete");
    if (r == 0)
        r = remove_state(&w, err);
    wk__close(&w);
    return r;
}

/* worker.c — one chcopier process: the coordinator. Registers in ZooKeeper,
 * then for each table task prepares it (tables.c), keeps up to
 * max_pieces_in_flight piece copies running (piece.c), moves partitions whose
 * pieces are all copied (mover.c), and waits by running the libuv loop one
 * turn at a time. Also owns recovery from an expired ZooKeeper session, the
 * progress line and the metrics gauges. The concurrency model and the
 * exactly-once rules are in worker-internal.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/config/task.h"
#include "chcopier/config/zkconf.h"
#include "chcopier/state/layout.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/copier/worker.h"
#include "chcopier/zk/zk.h"
#include "mover.h"
#include "drops.h"
#include "nodes.h"
#include "piece.h"
#include "preflight.h"
#include "tables.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

static int worker_register(struct worker *w, struct chc_err *err);

/* A statement was refused for good (chc_err_is_permanent): name the task
 * element at fault if a check of the task's expressions finds it, else
 * keep the server's message. The table stops; its staging state is dirty
 * at worst, which the next run cleans. */
static int refused(struct worker *w, struct tstate *ts, const char *what, struct chc_err *err)
{
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf done = CHC_BUF_INIT;
    int r = st_path_tnode(ts->zroot, ST_DONE, NULL, &done);

    /* Another worker finished the table meanwhile and dropped its staging
     * tables under our statement: nothing is left to refuse. */
    r = r == 0 ? zk_exists(w->zs, done.buf, NULL, &e) : r;
    chc_buf_release(&done);
    if (r == 0) {
        chc_log_info("table '%s': %s failed (%s), but the table is done", ts->tb->name, what,
                     err->msg);
        return 0;
    }
    /* A worker paused past its session (a frozen VM) whose statements fail
     * on what others did meanwhile: its session is the news, not the
     * statement; with a new one it finds the table's state as it is now. */
    if (r == CHC_EZK_EXPIRED || zk_session_expired(w->zs)) {
        chc_log_info("table '%s': %s failed (%s) after our ZooKeeper session expired",
                     ts->tb->name, what, err->msg);
        return chc_err_set(err, CHC_EZK_EXPIRED, "ZooKeeper session expired");
    }
    r = preflight__diagnose(w, ts, &e);

    if (r < 0 && !chc_err_is_transient(r))
        return chc_err_set(err, r, "%s", e.msg);
    return chc_err_prefix(err, "table '%s': %s was refused and would be again (fix the cause "
                          "and start the worker again)", ts->tb->name, what);
}

static int move_ready(struct worker *w, struct tstate *ts, unsigned *move_failures,
                      struct chc_err *err)
{
    int r = mover__move_ready(w, ts, move_failures, err);

    return r == CHC_ECH_PERMANENT ? refused(w, ts, "moving partitions", err) : r;
}

/* Finished jobs recorded: how many completed, or < 0 when one was refused
 * for good (the table stops). */
static int reap(struct worker *w, unsigned *failures, struct chc_err *err)
{
    struct tstate *ts = NULL;
    int r = piece__jobs_reap(w, failures, &ts, err);

    return r == CHC_ECH_PERMANENT ? refused(w, ts, "copying a piece", err) : r;
}

/* max_workers is re-read live from the description. */
static void reload_max_workers(struct worker *w)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    struct zk_stat st;
    int version;

    if (st_path_task(w->o->task_path, ST_DESCRIPTION, NULL, &path) < 0 ||
        zk_exists(w->zs, path.buf, &st, &err) < 0 || st.version == w->desc_version)
        goto out;
    if (taskstore_fetch(w->zs, w->o->task_path, &t, &version, &err) < 0) {
        chc_log_warn("the task description changed but cannot be read: %s, ignoring", err.msg);
        w->desc_version = st.version;
        goto out;
    }
    if (t->max_workers != w->task->max_workers)
        chc_log_info("max_workers changed from %u to %u", w->task->max_workers, t->max_workers);
    w->task->max_workers = t->max_workers;
    w->desc_version = version;
out:
    cfg_task_free(t);
    chc_buf_release(&path);
}

/* Start what we can from the cache. Returns jobs started (>= 0), or < 0. */
static int fill(struct worker *w, struct tstate *ts, int allow_remote, int *ret_remote_waiting,
                struct chc_err *err)
{
    size_t part, oi;
    unsigned k;
    int started = 0, r = 0;

    *ret_remote_waiting = 0;
    for (part = 0; part < ts->n_parts && w->n_jobs < w->cap; part++) {
        if (ts->parts[part].lead != part || group_done(ts, part))
            continue;
        for (k = 0; k < ts->parts[part].splits && w->n_jobs < w->cap; k++) {
            const unsigned char *d = pdone_at(ts, part, k);
            if (ts->pbusy[part * ts->splits + k] || ts->pnext[part * ts->splits + k] > now_ms())
                continue;
            for (oi = 0; oi < ts->tb->pull->n_shards; oi++) {
                size_t s = ts->order[oi], j;
                const struct cfg_shard *sh = &ts->tb->pull->shards[s];
                int local = 0;
                if (!group_on_shard(ts, part, s) || d[s])
                    continue;
                for (j = 0; j < sh->n_replicas; j++)
                    local |= plan_is_local_host(sh->replicas[j].host, w->host);
                if (!local && !allow_remote) {
                    *ret_remote_waiting = 1;
                    continue;
                }
                r = piece__try(w, ts, part, s, k, err);
                if (r == CHC_EBUSY) {
                    if (now_ms() - w->slot_wait_logged > 30000) {
                        chc_log_info("waiting for a worker slot: all max_workers=%u are in use",
                                     w->task->max_workers);
                        w->slot_wait_logged = now_ms();
                    }
                    reload_max_workers(w);
                    return started;
                }
                if (r < 0)
                    return r;
                if (r == 1)
                    started++;
                break; /* the claim covers (p, k): one source shard at a time */
            }
        }
    }
    return started;
}

/* Re-read every unfinished partition's state into the cache; 1 when all done. */
static int refresh(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    return tstate__refresh(ts, err);
}

/* A new ZooKeeper session after expiry: our claims are gone, so are our
 * transfers; register again and carry on. */
static int recover_session(struct worker *w, struct chc_err *err)
{
    unsigned tries = 0;
    int r;

    chc_log_warn("ZooKeeper session expired: stopping our transfers and reconnecting");
    piece__jobs_abort(w);
    for (;;) {
        w->zs = zk_session_free(w->zs);
        r = zk_session_new(w->zkcfg, w->zkcfg->session_timeout_ms, NULL, &w->zs, err);
        if (r == 0)
            r = worker_register(w, err);
        if (r == 0) {
            chc_log_info("ZooKeeper session re-established");
            return 0;
        }
        if (++tries >= w->o->max_table_tries * 10)
            return r;
        chc_log_warn("%s, retrying", err->msg);
        wk__sleep(w, w->o->retry_delay_ms);
    }
}

/* "pieces 120/362 (33%), 250000 rows/s, 12.0 MB/s, ETA 40 s" once a second. */
static void progress_show(struct worker *w, const struct tstate *ts)
{
    size_t i, s, total = 0, done = 0;
    uint64_t now = now_ms();
    double secs, rate, eta;
    unsigned k;

    if (!w->progress || now - w->progress_at < 1000)
        return;
    w->progress_at = now;
    for (i = 0; i < ts->n_parts; i++)
        for (k = 0; ts->parts[i].lead == i && k < ts->parts[i].splits; k++)
            for (s = 0; s < ts->tb->pull->n_shards; s++) {
                if (!group_on_shard(ts, i, s))
                    continue;
                total++;
                done += group_done(ts, i) || pdone_at(ts, i, k)[s];
            }
    secs = (double)(now - w->started_at) / 1000.0;
    rate = secs > 0 ? (double)done / secs : 0;
    eta = rate > 0 ? (double)(total - done) / rate : -1;
    chc_log_status("%s: pieces %zu/%zu (%.0f%%), %.0f rows/s, %.1f MB/s, ETA %s%.0f s",
                   ts->tb->name, done, total, total ? 100.0 * (double)done / (double)total : 0,
                   secs > 0 ? (double)w->rows_copied / secs : 0,
                   secs > 0 ? (double)w->bytes_copied / secs / 1e6 : 0, eta < 0 ? "~" : "",
                   eta < 0 ? 0 : eta);
}

/* Prepare a table (preflight, tables, partition list), retrying what may
 * pass: --max-table-tries times in all; a server that does not answer (a
 * shard without a live replica) is waited for up to 10 times as many tries,
 * the delay doubling from --retry-delay-ms up to 30 s, and shown in
 * `status` as this worker's note. */
static int prepare(struct worker *w, const struct cfg_table *tb, struct tstate **ts,
                   struct chc_err *err)
{
    unsigned tries = 0, waits = 0;
    uint64_t delay;
    int r;

    for (;;) {
        r = tables__prepare(w, tb, ts, err);
        if (r == 0)
            break;
        if (r == CHC_EZK_EXPIRED && recover_session(w, err) == 0)
            continue;
        if (!chc_err_is_transient(r))
            break;
        if (r == CHC_ECH_CONN ? ++waits >= 10 * w->o->max_table_tries
                              : ++tries >= w->o->max_table_tries)
            break;
        delay = (uint64_t)w->o->retry_delay_ms << (waits < 16 ? waits : 16);
        delay = r == CHC_ECH_CONN ? (delay < 30000 ? delay : 30000) : w->o->retry_delay_ms;
        chc_log_warn("table '%s': %s, retrying in %.1f s", tb->name, err->msg,
                     (double)delay / 1000.0);
        if (r == CHC_ECH_CONN)
            wk__note(w, "waiting: %s", err->msg);
        wk__sleep(w, (unsigned)delay);
    }
    return r;
}

/* One table task's run: what the loop keeps between turns. */
struct table_run {
    unsigned failures, move_failures, checked_failures;
    int remote_waiting, allow_remote;
};

/* table_loop and table_finish: prepare the table again (after a new
 * ZooKeeper session, or a finish that was waited out). */
#define RESTART 1

static void table_announce(const struct tstate *ts)
{
    size_t pieces = 0, groups = 0, i;

    for (i = 0; i < ts->n_parts; i++)
        if (ts->parts[i].lead == i) {
            pieces += group_pieces(ts, i);
            groups += ts->parts[i].n_group > 1;
        }
    chc_log_info("table '%s': %zu partitions (%zu copy groups of small partitions), %zu "
                 "pieces from %zu source shards to %zu staging nodes",
                 ts->tb->name, ts->n_parts, groups, pieces, ts->tb->pull->n_shards,
                 ts->n_targets);
}

/* After a failed step: give up (< 0) when it cannot pass, else count it
 * and wait a little when a server is away. */
static int table_failed(struct worker *w, const struct tstate *ts, struct table_run *tr, int r,
                        const struct chc_err *err)
{
    if (!chc_err_is_transient(r) && r != CHC_EZK_BADVERSION && r != CHC_EMISMATCH)
        return r;
    tr->failures++;
    chc_log_warn("table '%s': %s, retrying", ts->tb->name, err->msg);
    /* A server or ZooKeeper that is away: wait before trying again, rather
     * than burn the tries in a tight loop. */
    if (chc_err_is_transient(r))
        wk__sleep(w, w->o->retry_delay_ms);
    return 0;
}

/* Failed steps and pieces so far within --max-shard-partition-tries per
 * piece? Else CHC_ESTATE with the last error. */
static int table_tries_left(const struct worker *w, const struct tstate *ts,
                            const struct table_run *tr, struct chc_err *err)
{
    char last[CHC_ERR_MSG_MAX];

    if (tr->failures < w->o->max_shard_partition_tries * (ts->n_parts ? ts->n_parts : 1) *
                           ts->splits * ts->tb->pull->n_shards)
        return 0;
    snprintf(last, sizeof(last), "%s", err->msg); /* not err->msg into itself */
    return chc_err_set(err, CHC_ESTATE, "table '%s': too many failed tries; last error: %.900s",
                       ts->tb->name, last);
}

/* One turn with pieces in flight: run the loop once, record what
 * finished, start more and move what is complete. */
static int table_busy_turn(struct worker *w, struct tstate *ts, struct table_run *tr,
                           struct chc_err *err)
{
    int r, started;

    uv_run(&w->loop, UV_RUN_ONCE);
    r = reap(w, &tr->failures, err);
    if (r > 0) {
        /* Keep the slots busy while we move what just completed. */
        started = fill(w, ts, tr->allow_remote, &tr->remote_waiting, err);
        r = started < 0 ? started : move_ready(w, ts, &tr->move_failures, err);
    }
    return r > 0 ? 0 : r;
}

/* One idle turn: check staging after failures, see what others did, move
 * what is complete, or wait. 1 when every partition is done. */
static int table_idle_turn(struct worker *w, struct tstate *ts, struct table_run *tr,
                           int started, struct chc_err *err)
{
    int r;

    /* Idle after failures: the operator may have fixed the destination. */
    if (tr->failures > tr->checked_failures) {
        tr->checked_failures = tr->failures;
        r = tables__staging_check(w, ts, err);
        if (r < 0)
            return r;
    }
    r = refresh(w, ts, err);
    tstate__gauges(w, ts);
    if (r != 0)
        return r;
    r = move_ready(w, ts, &tr->move_failures, err);
    if (r < 0 || r > 0 || started > 0)
        return r < 0 ? r : 0;
    if (tr->remote_waiting && !tr->allow_remote) {
        /* Let workers local to other shards take theirs first. */
        wk__sleep(w, 500);
        tr->allow_remote = 1;
        return 0;
    }
    wk__sleep(w, tr->failures ? w->o->retry_delay_ms : 200);
    return 0;
}

/* Copy and move until every partition is done (0), the session was lost
 * and recovered (RESTART), or the table fails (< 0). */
static int table_loop(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct table_run tr = {0};
    int r = refresh(w, ts, err);

    for (;;) {
        int started;
        if (r == CHC_EZK_EXPIRED || zk_session_expired(w->zs)) {
            r = recover_session(w, err);
            return r < 0 ? r : RESTART;
        }
        if (r < 0 && (r = table_failed(w, ts, &tr, r, err)) < 0)
            return r;
        if ((r = table_tries_left(w, ts, &tr, err)) < 0)
            return r;
        progress_show(w, ts);
        started = fill(w, ts, tr.allow_remote, &tr.remote_waiting, err);
        if (started < 0) {
            r = started == CHC_ECH_PERMANENT ? refused(w, ts, "preparing a piece", err)
                                             : started;
            continue;
        }
        if (w->n_jobs > 0) {
            r = table_busy_turn(w, ts, &tr, err);
            continue;
        }
        r = table_idle_turn(w, ts, &tr, started, err);
        if (r == 1)
            return 0;
    }
}

/* Every partition done: drop the helpers, mark the table done. Both are
 * safe to repeat: a ZooKeeper or server outage right now (a restart, a
 * lost session) is waited out like any other, not a failed task
 * (RESTART, up to 10 x --max-table-tries). */
static int table_finish(struct worker *w, struct tstate *ts, unsigned *tries,
                        struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    tables__create_on_returned(w, ts);
    r = tables__drop_helpers(w, ts, err);
    if (r == 0)
        r = st_path_tnode(ts->zroot, ST_DONE, NULL, &path) < 0 ? oom(err) : 0;
    if (r == 0)
        r = zk_create(w->zs, path.buf, "", 0, ZK_PERSISTENT, NULL, err);
    if (r == CHC_EZK_NODEEXISTS)
        r = 0;
    chc_buf_release(&path);
    if (r == 0 ||
        !(r == CHC_EZK_EXPIRED || zk_session_expired(w->zs) || chc_err_is_transient(r)) ||
        ++*tries >= 10 * w->o->max_table_tries)
        return r;
    chc_log_warn("table '%s': finishing: %s, retrying", ts->tb->name, err->msg);
    if (r == CHC_EZK_EXPIRED || zk_session_expired(w->zs)) {
        r = recover_session(w, err);
        return r < 0 ? r : RESTART;
    }
    wk__sleep(w, w->o->retry_delay_ms);
    return RESTART; /* waited out: finish again */
}

/* A table found done: a worker that died after (re)creating staging
 * tables may have left some behind after the finisher dropped them. */
static void table_was_done(struct worker *w, struct tstate *ts)
{
    struct chc_err err = CHC_ERR_INIT;

    if (tables__drop_helpers(w, ts, &err) < 0)
        chc_log_warn("table '%s': cannot drop helper tables: %s, ignoring", ts->tb->name,
                     err.msg);
    chc_log_info("table '%s' is already done", ts->tb->name);
}

static int process_table(struct worker *w, const struct cfg_table *tb, struct chc_err *err)
{
    unsigned finish_tries = 0;
    uint64_t t0 = now_ms();
    int r;

    do {
        struct tstate *ts = NULL;
        r = prepare(w, tb, &ts, err);
        if (r == 0 && !ts)
            CHC_BUG("a table prepared without its state");
        if (r == 0 && ts->finished) {
            table_was_done(w, ts);
        } else if (r == 0) {
            table_announce(ts);
            r = table_loop(w, ts, err);
            if (r == 0)
                r = table_finish(w, ts, &finish_tries, err);
            if (r == 0)
                chc_log_info("table '%s' done in %.1f s: %zu partitions", tb->name,
                             (double)(now_ms() - t0) / 1000.0, ts->n_parts);
        }
        piece__jobs_abort(w);
        drops__wait(w, r < 0);
        tstate__free(ts);
    } while (r == RESTART);
    return r;
}

static int worker_register(struct worker *w, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    int r;

    r = st_path_task(w->o->task_path, ST_WORKERS, NULL, &path);
    if (r == 0)
        r = zk_create_parents(w->zs, path.buf, err);
    if (r == 0)
        r = st_path_task(w->o->task_path, ST_ACTIVE, NULL, &path);
    if (r == 0)
        r = zk_create_parents(w->zs, path.buf, err);
    if (r == 0)
        r = st_path_task(w->o->task_path, ST_WORKERS, w->id, &path);
    if (r == 0)
        r = wk__registration(w, &data);
    if (r < 0)
        goto out;
    {
        struct st_claimer cl = wk__claimer(w);
        st_reap_dead_local(&cl, w->o->task_path);
    }
    r = zk_create(w->zs, path.buf, data.buf, data.len, ZK_EPHEMERAL, NULL, err);
out:
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r;
}

int worker_run(const struct chc_options *o, const struct cfg_zk *zkcfg, struct zk_session *zs,
               const char *log_dir, struct chc_err *err)
{
    struct worker w;
    size_t i;
    int r;

    r = wk__open(&w, o, zs, NULL, err);
    w.zkcfg = zkcfg;
    chc_log_set_worker(w.id);
    if (r < 0)
        goto out;
    w.progress = o->progress && isatty(STDERR_FILENO) && !o->daemon;
    w.started_at = now_ms();
    chc_log_info("worker %s starting on task %s (logs in %s)", w.id, o->task_path,
                 log_dir ? log_dir : "-");
    r = worker_register(&w, err);
    if (r < 0)
        goto out;
    for (i = 0; i < w.task->n_tables; i++) {
        r = process_table(&w, &w.task->tables[i], err);
        if (r < 0)
            goto out;
    }
    if (w.progress)
        chc_log_status(NULL);
    chc_log_info("every table task is done");
out:
    drops__wait(&w, 1);
    wk__close(&w);
    zk_session_free(w.zs);
    return r;
}

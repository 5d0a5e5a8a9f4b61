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
#include "chcopier/obs/metrics-http.h"
#include "chcopier/config/task.h"
#include "chcopier/config/zkconf.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/copier/worker.h"
#include "chcopier/zk/zk.h"
#include "worker-internal.h"

#include "base/banned.h"

static int worker_register(struct worker *w, struct chc_err *err);

/* Gauges from the local cache (the task as this worker last read it). */
static void metrics_update(struct worker *w, const struct tstate *ts)
{
    size_t i, s, done = 0, dirty = 0, in_flight = 0, parts_done = 0;
    unsigned k;

    if (!w->metrics)
        return;
    for (i = 0; i < ts->n_parts; i++) {
        parts_done += ts->parts[i].done;
        if (ts->parts[i].lead != i)
            continue;
        for (k = 0; k < ts->parts[i].splits; k++) {
            const unsigned char *d = pdone_at(ts, i, k);
            size_t idx = i * ts->splits + k;
            in_flight += ts->pbusy[idx];
            dirty += ts->pfails[idx] && !ts->pbusy[idx];
            for (s = 0; s < ts->tb->pull->n_shards; s++)
                done += group_on_shard(ts, i, s) && (group_done(ts, i) || d[s]);
        }
    }
    wk__metric(w, ts, CHC_METRIC_PIECES, "state", "done", (double)done, 1);
    wk__metric(w, ts, CHC_METRIC_PIECES, "state", "in_flight", (double)in_flight, 1);
    wk__metric(w, ts, CHC_METRIC_PIECES, "state", "dirty", (double)dirty, 1);
    wk__metric(w, ts, CHC_METRIC_PARTITIONS, "state", "done", (double)parts_done, 1);
    wk__metric(w, ts, CHC_METRIC_PARTITIONS, "state", "total", (double)ts->n_parts, 1);
    wk__metric(w, NULL, CHC_METRIC_SLOTS_IN_USE, NULL, NULL, (double)w->n_jobs, 1);
    wk__metric(w, NULL, CHC_METRIC_MAX_WORKERS, NULL, NULL, (double)w->task->max_workers, 1);
    wk__metric(w, NULL, CHC_METRIC_ZK_SESSION, "state", "connected",
               zk_session_connected(w->zs) ? 1.0 : 0.0, 1);
    wk__metric(w, NULL, CHC_METRIC_ZK_SESSION, "state", "expired",
               zk_session_expired(w->zs) ? 1.0 : 0.0, 1);
}

/* A statement was refused for good (chc_err_is_permanent): name the task
 * element at fault if a check of the task's expressions finds it, else
 * keep the server's message. The table stops; its staging state is dirty
 * at worst, which the next run cleans. */
static int refused(struct worker *w, struct tstate *ts, const char *what, struct chc_err *err)
{
    struct chc_err e = CHC_ERR_INIT;
    int r = preflight__diagnose(w, ts, &e);

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

/* Finished jobs: record them; returns how many completed successfully, or
 * < 0 when one was refused for good. */
static int reap_jobs(struct worker *w, unsigned *failures, struct chc_err *ret_err)
{
    struct job **pp = &w->jobs;
    int ok = 0, fatal = 0;

    while (*pp) {
        struct job *j = *pp;
        struct chc_err err = CHC_ERR_INIT;
        if (j->pending > 0) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        w->n_jobs--;
        j->ts->pbusy[j->part * j->ts->splits + j->k] = 0;
        if (piece__job_finish(w, j, &err) < 0) {
            size_t idx = j->part * j->ts->splits + j->k;
            unsigned f = j->ts->pfails[idx] < 5 ? ++j->ts->pfails[idx] : 5;
            /* Back off: retry_delay, doubling per failure of this piece, up to 16x. */
            j->ts->pnext[idx] = now_ms() + (uint64_t)w->o->retry_delay_ms * (1u << (f - 1));
            (*failures)++;
            wk__metric(w, j->ts, CHC_METRIC_RETRIES, NULL, NULL, 1, 0);
            wk__metric(w, j->ts, CHC_METRIC_ERRORS, "kind", chc_err_name(err.code), 1, 0);
            if (!fatal && chc_err_is_permanent(err.code)) {
                *ret_err = err;
                fatal = refused(w, j->ts, "copying a piece", ret_err);
            } else if (!j->failed) {
                chc_log_warn("table '%s': %s, retrying", j->ts->tb->name, err.msg);
            }
        } else {
            size_t idx = j->part * j->ts->splits + j->k;
            j->ts->pfails[idx] = 0; /* copied: no longer dirty, no backoff */
            ok++;
        }
        metrics_update(w, j->ts);
        piece__job_free(j);
    }
    return fatal < 0 ? fatal : ok;
}

/* max_workers is re-read live from the description. */
static void reload_max_workers(struct worker *w)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    struct zk_stat st;
    int version;

    if (wk__zpath(&path, "%s/description", w->o->task_path) < 0 ||
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
                    local |= tables__is_local_host(sh->replicas[j].host, w->host);
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

static int process_table(struct worker *w, const struct cfg_table *tb, struct chc_err *err)
{
    struct tstate *ts = NULL;
    struct chc_buf path = CHC_BUF_INIT;
    unsigned failures = 0, move_failures = 0, checked_failures = 0, finish_tries = 0;
    uint64_t t0 = now_ms();
    int r, remote_waiting = 0, allow_remote = 0;

restart:
    r = prepare(w, tb, &ts, err);
    if (r < 0) {
        chc_buf_release(&path); /* set when finishing was retried */
        return r;
    }
    if (!ts)
        CHC_BUG("table_prepare succeeded without a table state");
    if (ts->finished) {
        /* A worker that died after (re)creating staging tables may have
         * left some behind after the finisher dropped them: drop again. */
        if (tables__drop_helpers(w, ts, err) < 0)
            chc_log_warn("table '%s': cannot drop helper tables: %s, ignoring", tb->name,
                         err->msg);
        chc_log_info("table '%s' is already done", tb->name);
        tables__tstate_free(ts);
        chc_buf_release(&path);
        return 0;
    }
    {
        size_t pieces = 0, groups = 0, i;
        for (i = 0; i < ts->n_parts; i++)
            if (ts->parts[i].lead == i) {
                pieces += group_pieces(ts, i);
                groups += ts->parts[i].n_group > 1;
            }
        chc_log_info("table '%s': %zu partitions (%zu copy groups of small partitions), %zu "
                     "pieces from %zu source shards to %zu staging nodes",
                     tb->name, ts->n_parts, groups, pieces, tb->pull->n_shards, ts->n_targets);
    }
    r = refresh(w, ts, err);
    for (;;) {
        int started;

        if (r == CHC_EZK_EXPIRED || zk_session_expired(w->zs)) {
            r = recover_session(w, err);
            if (r < 0)
                goto out;
            tables__tstate_free(ts);
            ts = NULL;
            goto restart;
        }
        if (r < 0 && !chc_err_is_transient(r) && r != CHC_EZK_BADVERSION &&
            r != CHC_EMISMATCH)
            goto out;
        if (r < 0) {
            failures++;
            chc_log_warn("table '%s': %s, retrying", tb->name, err->msg);
            /* A server or ZooKeeper that is away: wait before trying again,
             * rather than burn the tries in a tight loop. */
            if (chc_err_is_transient(r))
                wk__sleep(w, w->o->retry_delay_ms);
        }
        if (failures >= w->o->max_shard_partition_tries * (ts->n_parts ? ts->n_parts : 1) *
                            ts->splits * tb->pull->n_shards) {
            char last[CHC_ERR_MSG_MAX];
            snprintf(last, sizeof(last), "%s", err->msg); /* not err->msg into itself */
            r = chc_err_set(err, CHC_ESTATE, "table '%s': too many failed tries; last error: %.900s",
                            tb->name, last);
            goto out;
        }
        progress_show(w, ts);
        started = fill(w, ts, allow_remote, &remote_waiting, err);
        if (started < 0) {
            r = started == CHC_ECH_PERMANENT ? refused(w, ts, "preparing a piece", err) : started;
            continue;
        }
        if (w->n_jobs > 0) {
            uv_run(&w->loop, UV_RUN_ONCE);
            r = reap_jobs(w, &failures, err);
            if (r > 0) {
                /* Keep the slots busy while we move what just completed. */
                started = fill(w, ts, allow_remote, &remote_waiting, err);
                r = started < 0 ? started : move_ready(w, ts, &move_failures, err);
            }
            if (r > 0)
                r = 0;
            continue;
        }
        /* Idle after failures: the operator may have fixed the destination. */
        if (failures > checked_failures) {
            checked_failures = failures;
            r = tables__staging_check(w, ts, err);
            if (r < 0)
                continue;
        }
        /* Idle: see what others did, move what is complete, or wait. */
        r = refresh(w, ts, err);
        metrics_update(w, ts);
        if (r < 0)
            continue;
        if (r == 1)
            break;
        r = move_ready(w, ts, &move_failures, err);
        if (r < 0)
            continue;
        if (r > 0 || started > 0)
            continue;
        if (remote_waiting && !allow_remote) {
            /* Let workers local to other shards take theirs first. */
            wk__sleep(w, 500);
            allow_remote = 1;
            continue;
        }
        wk__sleep(w, failures ? w->o->retry_delay_ms : 200);
    }
    /* Every partition done: drop the helpers, mark the table done. Both are
     * safe to repeat: a ZooKeeper or server outage right now (a restart, a
     * lost session) is waited out like any other, not a failed task. */
    tables__create_on_returned(w, ts);
    r = tables__drop_helpers(w, ts, err);
    if (r == 0)
        r = wk__zpath(&path, "%s/done", ts->zroot);
    if (r == 0) {
        r = zk_create(w->zs, path.buf, "", 0, ZK_PERSISTENT, NULL, err);
        if (r == CHC_EZK_NODEEXISTS)
            r = 0;
    }
    if (r < 0 && (r == CHC_EZK_EXPIRED || zk_session_expired(w->zs) || chc_err_is_transient(r)) &&
        ++finish_tries < 10 * w->o->max_table_tries) {
        chc_log_warn("table '%s': finishing: %s, retrying", tb->name, err->msg);
        if (r == CHC_EZK_EXPIRED || zk_session_expired(w->zs)) {
            r = recover_session(w, err);
        } else {
            wk__sleep(w, w->o->retry_delay_ms);
            r = 0; /* waited out: finish again */
        }
        piece__jobs_abort(w);
        tables__tstate_free(ts);
        ts = NULL;
        if (r == 0)
            goto restart;
        chc_buf_release(&path);
        return r;
    }
    if (r == 0)
        chc_log_info("table '%s' done in %.1f s: %zu partitions", tb->name,
                     (double)(now_ms() - t0) / 1000.0, ts->n_parts);
out:
    piece__jobs_abort(w);
    chc_buf_release(&path);
    tables__tstate_free(ts);
    return r;
}

static void pause_cb(void *arg, unsigned ms)
{
    wk__sleep(arg, ms);
}

struct st_claimer worker__claimer(struct worker *w)
{
    struct st_claimer c = {.zs = w->zs, .id = w->id, .host = w->host, .hostkey = w->hostkey,
                           .data = w->claim.buf, .pause = pause_cb, .pause_arg = w};

    return c;
}

/* workers/<id>: "host H\npid P\n" and the worker's note ("note <line>"
 * per line), which `status` shows. */
int worker__registration(const struct worker *w, struct chc_buf *out)
{
    return st_registration_encode(w->host, (long)getpid(), w->hostkey, w->note.buf, out);
}

static int worker_register(struct worker *w, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    int r;

    r = wk__zpath(&path, "%s/workers", w->o->task_path);
    if (r == 0)
        r = zk_create_parents(w->zs, path.buf, err);
    if (r == 0)
        r = wk__zpath(&path, "%s/active", w->o->task_path);
    if (r == 0)
        r = zk_create_parents(w->zs, path.buf, err);
    if (r == 0)
        r = wk__zpath(&path, "%s/workers/%s", w->o->task_path, w->id);
    if (r == 0)
        r = worker__registration(w, &data);
    if (r < 0)
        goto out;
    {
        struct st_claimer cl = worker__claimer(w);
        st_reap_dead_local(&cl, w->o->task_path);
    }
    r = zk_create(w->zs, path.buf, data.buf, data.len, ZK_EPHEMERAL, NULL, err);
out:
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r;
}

/* "<boot id>/<pid namespace>": processes with the same key see the same
 * pids (state/claims.c's takeover of dead local workers relies on it). */
static void host_key(char *out, size_t cap)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    ssize_t n;

    if (f) {
        if (!fgets(boot, sizeof(boot), f))
            boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';
    }
    n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
    ns[n > 0 ? n : 0] = '\0';
    snprintf(out, cap, "%s/%s", boot[0] ? boot : "?", ns[0] ? ns : "?");
}

/* Loop, ClickHouse client, identity: shared by run, plan and clean. The
 * task is taken from `task` if given, else fetched from ZooKeeper. */
int worker__open(struct worker *w, const struct chc_options *o, struct zk_session *zs,
                 const struct cfg_task *task, struct chc_err *err)
{
    struct tm tm;
    time_t now = time(NULL);
    int r;

    memset(w, 0, sizeof(*w));
    chc_buf_init(&w->note, 4096);
    chc_buf_init(&w->claim, 4096);
    w->o = o;
    w->zs = zs;
    w->cap = o->max_pieces_in_flight ? o->max_pieces_in_flight : 4;
    srand((unsigned)(now ^ getpid())); /* query id nonces */
    w->fault_seed = o->fault_seed >= 0 ? (uint64_t)o->fault_seed
                                       : ((uint64_t)now * 1000003u ^ (uint64_t)getpid()) &
                                             ((1ULL << 62) - 1);
    if (o->copy_fault_probability > 0 || o->move_fault_probability > 0)
        chc_log_info("fault injection: copy %.3f, move %.3f, --fault-seed %llu",
                     o->copy_fault_probability, o->move_fault_probability,
                     (unsigned long long)w->fault_seed);
    gethostname(w->host, sizeof(w->host) - 1);
    localtime_r(&now, &tm);
    snprintf(w->id, sizeof(w->id), "%s#%04d%02d%02d%02d%02d%02d_%ld", w->host,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)getpid());
    host_key(w->hostkey, sizeof(w->hostkey));
    if (st_claim_encode(w->id, w->hostkey, &w->claim) < 0)
        return chc_err_set(err, -ENOMEM, "out of memory");
    r = uv_loop_init(&w->loop);
    if (r < 0)
        return chc_err_set(err, r, "cannot start the event loop: %s", uv_strerror(r));
    w->loop_ok = 1;
    uv_timer_init(&w->loop, &w->sleeper);
    r = ch_client_new(&w->loop, &w->ch, err);
    if (r < 0)
        return r;
    if (o->max_bytes_per_second > 0)
        ch_client_set_rate(w->ch, o->max_bytes_per_second);
    if (o->cmd == CHC_CMD_RUN) {
        r = chc_metrics_new(&w->metrics, err);
        if (r == 0 && o->metrics_port > 0)
            r = chc_metrics_listen(w->metrics, &w->loop, "127.0.0.1", o->metrics_port, err);
        if (r < 0)
            return r;
    }
    if (task) {
        w->task_borrowed = task;
        w->task = (struct cfg_task *)task;
        return 0;
    }
    return taskstore_fetch(zs, o->task_path, &w->task, &w->desc_version, err);
}

void worker__close(struct worker *w)
{
    chc_buf_release(&w->note);
    chc_buf_release(&w->claim);
    if (!w->loop_ok)
        return;
    w->metrics = chc_metrics_free(w->metrics);
    w->ch = ch_client_free(w->ch);
    uv_close((uv_handle_t *)&w->sleeper, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    if (!w->task_borrowed)
        cfg_task_free(w->task);
    w->task = NULL;
}

int worker_run(const struct chc_options *o, const struct cfg_zk *zkcfg, struct zk_session *zs,
               const char *log_dir, struct chc_err *err)
{
    struct worker w;
    size_t i;
    int r;

    r = worker__open(&w, o, zs, NULL, err);
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
    worker__close(&w);
    zk_session_free(w.zs);
    return r;
}

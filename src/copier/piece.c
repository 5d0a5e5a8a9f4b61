/* piece.c — the copy pipeline, one piece at a time (exactly-once rules 1 and 2
 * in worker-internal.h): the piece's SQL (pull: INSERT ... SELECT FROM
 * remote() on each staging node; pipe: SELECT on the source streamed into
 * INSERT on the staging node), cleaning a dirty piece, claiming it and
 * starting its copy as a job, recording a finished job, and aborting every
 * job on session loss. Job callbacks only record completion.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/sql/copy.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"
#include "chcopier/state/protocol.h"
#include "chcopier/config/task.h"
#include "chcopier/state/layout.h"
#include "drops.h"
#include "nodes.h"
#include "piece.h"
#include "routing.h"
#include "tables.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

/* The sql_piece of the group led by `part`, piece k, routed to destination
 * shard dshard (-1: none); lits[GROUP_MAX] is the caller's. */
void piece__spec(const struct tstate *ts, size_t part, unsigned k, int dshard,
                 const char **lits, struct sql_piece *p)
{
    size_t i, n = ts->parts[part].n_group;

    if (n < 1 || n > GROUP_MAX)
        CHC_BUG("partition group of %zu members", n);
    for (i = 0; i < n; i++)
        lits[i] = ts->parts[part + i].lit;
    *p = (struct sql_piece){.tb = ts->tb, .lits = lits, .n_lits = n,
                            .splits = ts->parts[part].splits, .k = k,
                            .split_args = ts->split_args, .key = &ts->key,
                            .dest_shard = dshard};
}

size_t piece__sinks(const struct tstate *ts, size_t shard, struct sink *out)
{
    size_t t;

    if (ts->route == ROUTE_DISTRIBUTED) {
        out[0] = (struct sink){.rep = ts->route_rep[shard], .dshard = -1, .via_route = 1};
        return 1;
    }
    for (t = 0; t < ts->n_targets; t++)
        out[t] = (struct sink){.rep = ts->targets[t].rep, .dshard = (int)ts->targets[t].shard};
    return ts->n_targets;
}

int piece__copy_sql(const struct tstate *ts, size_t part, unsigned k, size_t shard,
                    const struct sink *to, struct chc_buf *b, struct chc_err *err)
{
    const struct cfg_settings *pull[2] = {&ts->w->task->settings, &ts->w->task->settings_pull};
    const char *lits[GROUP_MAX];
    struct sql_piece p;

    piece__spec(ts, part, k, to->dshard, lits, &p);
    p.via_route = to->via_route;
    return sql_copy_pull(&p, ts->cols.copy, ts->src_rep[shard], pull, 2, b, err);
}

static int query_id(const struct tstate *ts, size_t part, unsigned k, struct chc_buf *b)
{
    return sql_query_id(ts->tb, ts->parts[part].hash, k, b);
}

/* Kill stray copies of (group, k) and drop the group's staging partitions
 * everywhere. */
/* DROP PARTITION of every partition of the group on every staging node, at
 * once (nodes__multi bounds how many run). ClickHouse has no IF EXISTS
 * here; a missing partition is fine. */
static int drop_group(struct worker *w, struct tstate *ts, size_t part, unsigned k,
                      struct chc_err *err)
{
    size_t ng = ts->parts[part].n_group, nq = ng * ts->n_targets, q = 0, i, t;
    struct chc_buf *stmt = calloc(ng, sizeof(*stmt));
    const struct cfg_replica **reps = calloc(nq + 1, sizeof(*reps));
    const char **sqls = calloc(nq + 1, sizeof(*sqls));
    struct chc_buf gate = CHC_BUF_INIT;
    int r = stmt && reps && sqls ? 0 : -ENOMEM;

    for (i = 0; stmt && i < ng; i++)
        chc_buf_init(&stmt[i], 0);
    for (i = 0; r == 0 && i < ng; i++) {
        r = sql_drop_piece_partition(ts->tb, k, ts->parts[part + i].lit, &stmt[i]);
        for (t = 0; r == 0 && t < ts->n_targets; t++) {
            reps[q] = ts->targets[t].rep;
            sqls[q++] = stmt[i].buf;
        }
    }
    if (r == 0)
        r = tstate__drop_gate(ts, &gate);
    r = r < 0 ? oom(err) : drops__run(w, gate.buf, reps, q, sqls, NULL, err);
    for (i = 0; stmt && i < ng; i++)
        chc_buf_release(&stmt[i]);
    free(stmt);
    free(reps);
    free(sqls);
    chc_buf_release(&gate);
    return r;
}

/* Kill stray copies of (group, k) and drop the group's staging partitions
 * everywhere. */
static int clean_piece(struct worker *w, struct tstate *ts, size_t part, unsigned k,
                       struct chc_err *err)
{
    const struct cfg_replica **treps = NULL;
    struct chc_buf sql = CHC_BUF_INIT, prefix = CHC_BUF_INIT;
    int r;

    if (w->o->safe_mode)
        return chc_err_set(err, CHC_ESTATE,
                           "piece %u of partition %s needs cleaning but --safe-mode forbids "
                           "DROP PARTITION",
                           k, ts->parts[part].lit);
    if (tables__target_reps(ts, &treps) < 0 || query_id(ts, part, k, &prefix) < 0 ||
        sql_kill(prefix.buf, &sql) < 0)
        r = oom(err);
    else
        r = nodes__kill(w, treps, ts->n_targets, sql.buf, err);
    if (r == 0) {
        wk__fault_point(w, "during_cleanup");
        r = drop_group(w, ts, part, k, err);
    }
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&prefix);
    return r;
}

static void job_cb(struct ch_query *q, void *data)
{
    struct job *j = data;

    if (ch_query_status(q) < 0 && !j->failed) {
        j->failed = 1;
        chc_err_set(&j->err, ch_query_status(q), "%s", ch_query_error(q)->msg);
    }
    j->pending--;
}

static void job_pipe_cb(struct ch_pipe *pp, void *data)
{
    struct job *j = data;

    j->bytes += ch_pipe_bytes(pp);
    if (ch_pipe_status(pp) < 0 && !j->failed) {
        j->failed = 1;
        chc_err_set(&j->err, ch_pipe_status(pp), "%s", ch_pipe_error(pp)->msg);
    }
    j->pending--;
}

/* Stop a job's transfers and wait until their callbacks ran. */
static void job_cancel(struct worker *w, struct job *j)
{
    size_t i;

    for (i = 0; i < j->n_q; i++) {
        if (j->q)
            ch_query_cancel(j->q[i]);
        if (j->pp)
            ch_pipe_cancel(j->pp[i]);
    }
    while (j->pending > 0)
        uv_run(&w->loop, UV_RUN_ONCE);
}

static void job_free(struct job *j)
{
    size_t i;

    if (!j)
        return;
    for (i = 0; i < j->n_q; i++) {
        if (j->q)
            ch_query_free(j->q[i]);
        if (j->pp)
            ch_pipe_free(j->pp[i]);
    }
    free(j->q);
    free(j->pp);
    {
        struct st_claimer cl = wk__claimer(j->w);
        st_release(&cl, &j->lock_path);
        st_release(&cl, &j->slot_path);
    }
    free(j);
}

/* Pipe path: "SELECT <columns> FROM <source> WHERE <piece and route>" on
 * the source replica, streamed through this process into
 * "INSERT INTO <piece table> (<columns>) FORMAT Native" on the staging node. */
static int pipe_sqls(const struct tstate *ts, size_t part, unsigned k, const struct sink *to,
                     struct chc_buf *sel, struct chc_buf *ins, struct chc_err *err)
{
    const char *lits[GROUP_MAX];
    struct sql_piece p;
    int r;

    piece__spec(ts, part, k, to->dshard, lits, &p);
    p.via_route = to->via_route;
    r = sql_copy_select(&p, ts->cols.copy, ts->cols.cast, sel, err);
    if (r == 0 && sql_copy_insert(&p, ts->cols.copy, ins) < 0)
        r = oom(err);
    return r;
}

/* A routed INSERT's settings (dialect_route_settings, by the node's
 * version) after the task's. */
static void sink_params(const struct tstate *ts, const struct sink *to, struct ch_query_params *p)
{
    size_t i;

    for (i = 0; to->via_route && i + 1 < CH_SETTINGS_MAX; i++)
        if (!p->settings[i]) {
            p->settings[i] = dialect_route_settings(tstate__version(ts, to->rep));
            break;
        }
}

static int job_start_pipe(struct worker *w, struct job *j, struct chc_err *err)
{
    struct tstate *ts = j->ts;
    struct chc_buf sel = CHC_BUF_INIT, ins = CHC_BUF_INIT, qid = CHC_BUF_INIT;
    struct chc_buf qid_w = CHC_BUF_INIT;
    struct ch_pipe_params pp;
    struct sink *to = calloc(ts->n_targets + 1, sizeof(*to));
    size_t t, n = to ? piece__sinks(ts, j->shard, to) : 0;
    int r = 0;

    j->pp = calloc(ts->n_targets + 1, sizeof(*j->pp));
    if (!j->pp || !to) {
        free(to);
        return oom(err);
    }
    j->t0 = now_ms();
    for (t = 0; t < n; t++) {
        chc_buf_reset(&sel);
        chc_buf_reset(&ins);
        chc_buf_reset(&qid);
        chc_buf_reset(&qid_w);
        r = pipe_sqls(ts, j->part, j->k, &to[t], &sel, &ins, err);
        /* The SELECT and the INSERT each get an id with the piece's prefix
         * (KILL QUERY ... LIKE finds both), -r and -w: the source may be a
         * staging node too, and a server refuses an id already running. */
        if (r == 0)
            r = query_id(ts, j->part, j->k, &qid) < 0 ||
                        chc_buf_addf(&qid, "%zu-%zu-%08x", j->shard + 1, t, (unsigned)rand()) < 0 ||
                        chc_buf_addf(&qid_w, "%s-w", qid.buf) < 0 ||
                        chc_buf_addstr(&qid, "-r") < 0
                    ? oom(err)
                    : 0;
        if (r < 0)
            break;
        memset(&pp, 0, sizeof(pp));
        nodes__params(&pp.src, ts->src_rep[j->shard], sel.buf, w->task, SIDE_PULL);
        nodes__params(&pp.dst, to[t].rep, ins.buf, w->task, SIDE_PUSH);
        sink_params(ts, &to[t], &pp.dst);
        pp.src.query_id = qid.buf;
        pp.dst.query_id = qid_w.buf;
        if (wk__fault_draw(w, w->o->copy_fault_probability, "copy %s %s %u %zu %zu %u",
                           ts->tb->def_hash_hex, ts->parts[j->part].lit, j->k, j->shard, t,
                           ts->ptries[j->part * ts->splits + j->k])) {
            j->failed = 1;
            chc_err_set(&j->err, CHC_EFAULT_INJECTED, "copy fault injected");
        }
        r = ch_pipe_start(w->ch, &pp, job_pipe_cb, j, &j->pp[t], err);
        if (r < 0)
            break;
        j->n_q++;
        j->pending++;
        if (j->failed) /* the fault hook: abort after it started */
            ch_pipe_cancel(j->pp[t]);
    }
    free(to);
    chc_buf_release(&sel);
    chc_buf_release(&ins);
    chc_buf_release(&qid);
    chc_buf_release(&qid_w);
    return r;
}

static int job_start(struct worker *w, struct job *j, struct chc_err *err)
{
    struct tstate *ts = j->ts;
    struct chc_buf sql = CHC_BUF_INIT, qid = CHC_BUF_INIT;
    struct ch_query_params p;
    struct sink *to;
    size_t t, n;
    int r = 0;

    ts->ptries[j->part * ts->splits + j->k]++;
    if (ts->pipe)
        return job_start_pipe(w, j, err);
    to = calloc(ts->n_targets + 1, sizeof(*to));
    j->q = calloc(ts->n_targets + 1, sizeof(*j->q));
    if (!j->q || !to) {
        free(to);
        return oom(err);
    }
    n = piece__sinks(ts, j->shard, to);
    j->t0 = now_ms();
    for (t = 0; t < n; t++) {
        chc_buf_reset(&sql);
        chc_buf_reset(&qid);
        r = piece__copy_sql(ts, j->part, j->k, j->shard, &to[t], &sql, err);
        if (r < 0)
            break;
        r = query_id(ts, j->part, j->k, &qid);
        if (r == 0)
            r = chc_buf_addf(&qid, "%zu-%zu-%08x", j->shard + 1, t, (unsigned)rand());
        if (r < 0) {
            r = oom(err);
            break;
        }
        if (wk__fault_draw(w, w->o->copy_fault_probability, "copy %s %s %u %zu %zu %u",
                           ts->tb->def_hash_hex, ts->parts[j->part].lit, j->k, j->shard, t,
                           ts->ptries[j->part * ts->splits + j->k])) {
            /* The original's test hook: a copy that fails after sending a few rows. */
            r = chc_buf_addstr(&sql, " LIMIT 1");
            if (r < 0)
                break;
            j->failed = 1;
            chc_err_set(&j->err, CHC_EFAULT_INJECTED, "copy fault injected");
        }
        nodes__params(&p, to[t].rep, sql.buf, w->task, SIDE_PUSH);
        sink_params(ts, &to[t], &p);
        p.query_id = qid.buf;
        p.timeout_ms = 0;
        /* remote() carries the source password: the log masks every form of
         * it (secrets.h), the query's messages too. */
        p.redact[0] = ts->src_rep[j->shard]->password;
        chc_log_trace("%s: %s", to[t].rep->host, sql.buf);
        r = ch_query_start(w->ch, &p, job_cb, j, &j->q[t], err);
        if (r < 0)
            break;
        j->n_q++;
        j->pending++;
    }
    free(to);
    chc_buf_release(&sql);
    chc_buf_release(&qid);
    return r;
}

/* Claim (part, shard, k) and start its copy. 1 started, 0 not claimable. */
int piece__try(struct worker *w, struct tstate *ts, size_t part, size_t shard, unsigned k,
               struct chc_err *err)
{
    const struct chc_log_fields lf = {ts->tb->name, ts->parts[part].lit, (int)k, (int)shard + 1,
                                      "claim", -1, -1, -1.0, NULL};
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    struct job *j = NULL;
    char kbuf[16];
    enum piece_action action;
    int r;

    if (!done)
        return oom(err);
    j = calloc(1, sizeof(*j));
    if (!j) {
        r = oom(err);
        goto out;
    }
    j->w = w;
    j->ts = ts;
    j->part = part;
    j->k = k;
    j->shard = shard;
    j->routed = ts->route == ROUTE_DISTRIBUTED;
    snprintf(kbuf, sizeof(kbuf), "%u", k);
    r = tstate__lock_take(ts, part, kbuf, &j->lock_path, err);
    if (r == CHC_EZK_NODEEXISTS) {
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    r = tstate__piece_read(ts, part, k, &ps, err);
    if (r < 0)
        goto out;
    memcpy(pdone_at(ts, part, k), ps.done, ts->tb->pull->n_shards);
    action = protocol_piece(ps.exists, ps.done, ps.started, ts->tb->pull->n_shards, shard);
    if (action == PIECE_SKIP) {
        r = 0; /* someone finished it meanwhile */
        goto out;
    }
    {
        struct st_claimer cl = wk__claimer(w);
        r = st_slot_take(&cl, w->o->task_path, w->task->max_workers, ++w->slot_seq,
                         &j->slot_path, err);
    }
    if (r < 0)
        goto out; /* CHC_EBUSY: every max_workers slot is taken */
    wk__fault_point(w, "after_claim");
    if (action == PIECE_CLEAN_THEN_COPY) {
        if (ps.started >= 0)
            chc_log_at(CHC_LOG_WARN, &lf, "piece is dirty (source shard %d started and did not "
                       "finish): cleaning it", ps.started + 1);
        r = clean_piece(w, ts, part, k, err);
        if (r < 0)
            goto out;
        memset(ps.done, 0, ts->tb->pull->n_shards);
        ps.started = -1;
        ps.rows = 0;
    }
    ps.started = (int)shard;
    r = tstate__piece_write(ts, part, k, &ps, err);
    if (r < 0)
        goto out;
    chc_log_at(CHC_LOG_INFO, &lf, "claimed, copying");
    r = job_start(w, j, err);
    if (r < 0) {
        /* Transfers that did start are cancelled; the piece stays dirty. */
        job_cancel(w, j);
        goto out;
    }
    wk__fault_point(w, "during_copy"); /* the copy's statements are on their way */
    j->next = w->jobs;
    w->jobs = j;
    w->n_jobs++;
    ts->pbusy[part * ts->splits + k] = 1;
    memcpy(pdone_at(ts, part, k), ps.done, ts->tb->pull->n_shards);
    j = NULL;
    r = 1;
out:
    job_free(j);
    free(done);
    return r;
}

/* Rows of the group led by `part` in <table>_piece_<k>, one staging node
 * per shard. */
static int staging_rows(struct worker *w, struct tstate *ts, size_t part, unsigned k,
                        long long *ret, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT, out = CHC_BUF_INIT;
    const char *lits[GROUP_MAX];
    struct sql_piece p;
    size_t t, last = (size_t)-1;
    long long total = 0, n;
    int r;

    piece__spec(ts, part, k, -1, lits, &p);
    r = sql_count_piece(ts->tb, k, p.lits, p.n_lits, &sql) < 0 ? oom(err) : 0;
    for (t = 0; r == 0 && t < ts->n_targets; t++) {
        if (ts->targets[t].shard == last)
            continue; /* one staging node per shard: rows for the progress */
        last = ts->targets[t].shard;
        r = nodes__query(w, ts->targets[t].rep, SIDE_PUSH, sql.buf, &out, err);
        if (r == 0 && chc_parse_ll(out.buf, 0, (1LL << 62), &n) < 0)
            r = chc_err_set(err, CHC_EPARSE, "unexpected count '%.40s'", out.buf);
        if (r == 0)
            total += n;
    }
    if (r == 0)
        *ret = total;
    chc_buf_release(&sql);
    chc_buf_release(&out);
    return r;
}

/* A finished job: record it (or leave the piece dirty). */
static int job_finish(struct worker *w, struct job *j, struct chc_err *err)
{
    struct tstate *ts = j->ts;
    struct chc_log_fields lf = {ts->tb->name, ts->parts[j->part].lit, (int)j->k,
                                (int)j->shard + 1, "piece_done", -1, -1, -1.0, NULL};
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    int r;

    if (!done)
        return oom(err);
    lf.duration = (double)(now_ms() - j->t0) / 1000.0;
    if (j->failed) {
        lf.event = "piece_failed";
        lf.error = j->err.msg;
        chc_log_at(CHC_LOG_WARN, &lf, "copy failed, the piece is dirty and will be %s: %s",
                   chc_err_is_permanent(j->err.code) ? "redone once the cause is fixed"
                                                     : "redone",
                   j->err.msg);
        /* For `status`: the piece's last error (best effort, version-checked). */
        if (tstate__piece_read(ts, j->part, j->k, &ps, NULL) == 0 && ps.exists) {
            snprintf(ps.error, sizeof(ps.error), "source shard %zu: %.200s", j->shard + 1,
                     j->err.msg);
            if (tstate__piece_write(ts, j->part, j->k, &ps, NULL) < 0)
                chc_log_debug("cannot record the piece's error, ignoring");
        }
        r = j->err.code ? j->err.code : CHC_ECH_EXCEPTION;
        chc_err_set(err, r, "%s", j->err.msg);
        goto out;
    }
    wk__fault_point(w, "after_insert");
    r = tstate__piece_read(ts, j->part, j->k, &ps, err);
    if (r < 0)
        goto out;
    if (ps.started != (int)j->shard) {
        r = chc_err_set(err, CHC_ESTATE, "piece %u of %s changed under our claim", j->k,
                        ts->parts[j->part].lit);
        goto out;
    }
    {
        long long rows = 0;
        r = staging_rows(w, ts, j->part, j->k, &rows, err);
        if (r < 0)
            goto out;
        lf.rows = rows - ps.rows;
        ps.rows = rows;
    }
    ps.done[j->shard] = 1;
    ps.started = -1;
    ps.ms = (long long)(now_ms() - j->t0);
    ps.error[0] = '\0';
    r = tstate__piece_write(ts, j->part, j->k, &ps, err);
    if (r == 0)
        memcpy(pdone_at(ts, j->part, j->k), ps.done, ts->tb->pull->n_shards);
    if (r == 0) {
        tstate__metric(w, ts, CHC_METRIC_ROWS_COPIED, NULL, NULL, (double)lf.rows, WK_ADD);
        w->rows_copied += (unsigned long long)(lf.rows > 0 ? lf.rows : 0);
        w->bytes_copied += j->bytes;
        if (ts->pipe)
            tstate__metric(w, ts, CHC_METRIC_BYTES_COPIED, NULL, NULL, (double)j->bytes, WK_ADD);
        lf.bytes = ts->pipe ? (long long)j->bytes : -1;
        chc_log_at(CHC_LOG_INFO, &lf, "piece copied: %lld rows in %.2f s", lf.rows, lf.duration);
    }
out:
    free(done);
    return r;
}

int piece__jobs_reap(struct worker *w, unsigned *failures, struct tstate **ret_ts,
                     struct chc_err *ret_err)
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
        if (job_finish(w, j, &err) < 0) {
            size_t idx = j->part * j->ts->splits + j->k;
            unsigned f = j->ts->pfails[idx] < 5 ? ++j->ts->pfails[idx] : 5;
            /* Back off: retry_delay, doubling per failure of this piece, up to 16x. */
            j->ts->pnext[idx] = now_ms() + (uint64_t)w->o->retry_delay_ms * (1u << (f - 1));
            (*failures)++;
            tstate__metric(w, j->ts, CHC_METRIC_RETRIES, NULL, NULL, 1, WK_ADD);
            tstate__metric(w, j->ts, CHC_METRIC_ERRORS, "kind", chc_err_name(err.code), 1, WK_ADD);
            if (j->routed && chc_err_is_permanent(err.code)) {
                /* Refused through the routing table: a staging replica is
                 * away and the Distributed table wrote to one we do not
                 * stage on (no piece table there), say. Filter routing
                 * reaches the staging nodes themselves: retry that way. */
                char why[300];
                snprintf(why, sizeof(why), "a routed copy was refused: %.240s", err.msg);
                routing__fallback(w, j->ts, why);
                chc_log_warn("table '%s': %s, retrying", j->ts->tb->name, err.msg);
            } else if (!fatal && chc_err_is_permanent(err.code)) {
                *ret_err = err;
                *ret_ts = j->ts;
                fatal = CHC_ECH_PERMANENT;
            } else if (!j->failed) {
                chc_log_warn("table '%s': %s, retrying", j->ts->tb->name, err.msg);
            }
        } else {
            size_t idx = j->part * j->ts->splits + j->k;
            j->ts->pfails[idx] = 0; /* copied: no longer dirty, no backoff */
            ok++;
        }
        tstate__gauges(w, j->ts);
        job_free(j);
    }
    return fatal < 0 ? fatal : ok;
}

/* Stop every transfer we hold: cancel the HTTP side and, because the server
 * keeps running a query whose client went away, KILL QUERY it too. */
void piece__jobs_abort(struct worker *w)
{
    struct chc_buf sql = CHC_BUF_INIT, prefix = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    size_t q;

    while (w->jobs) {
        struct job *j = w->jobs;
        job_cancel(w, j);
        for (q = 0; q < j->n_q; q++) {
            chc_buf_reset(&sql);
            chc_buf_reset(&prefix);
            if (query_id(j->ts, j->part, j->k, &prefix) < 0 ||
                chc_buf_addf(&prefix, "%zu-%zu-", j->shard + 1, q) < 0 ||
                sql_kill(prefix.buf, &sql) < 0)
                break;
            if (nodes__kill(w, &j->ts->targets[q].rep, 1, sql.buf, &err) < 0)
                chc_log_warn("cannot stop our copy on %s: %s, ignoring",
                             j->ts->targets[q].rep->host, err.msg);
        }
        j->ts->pbusy[j->part * j->ts->splits + j->k] = 0;
        w->jobs = j->next;
        w->n_jobs--;
        job_free(j);
    }
    chc_buf_release(&sql);
    chc_buf_release(&prefix);
}

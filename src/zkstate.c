/* zkstate.c — the task's state in ZooKeeper, as the worker reads and writes
 * it (layout in include/chcopier/worker.h; <t> = tables/<table-id>/<def-hash>):
 *   1. <t>/parts/<p>/<k>   piece state, written version-checked:
 *      "done 1,2\nstarted 3\nrows N\nms N\nerror TEXT\n" (shards 1-based);
 *   2. <t>/parts/<p>       partition move state;
 *   3. <t>/locks/<p>#<k>, <t>/locks/<p>#move, <t>/init   ephemeral claims,
 *      taken over at once from a dead worker on this host;
 *   4. active/<worker-id>#<n>   max_workers slots (CAS on active's version);
 *   5. workers/<worker-id>      dead local workers' registrations are reaped
 *      here (worker.c creates ours).
 * No ClickHouse here; the coordinator decides what to do with the answers.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chcopier/buf.h"
#include "chcopier/cli.h"
#include "chcopier/log.h"
#include "chcopier/task.h"
#include "chcopier/zk.h"
#include "worker-internal.h"

#include "banned.h"

static int piece_state_parse(const char *data, size_t n_shards, struct piece_state *ps)
{
    const char *p = data;

    memset(ps->done, 0, n_shards);
    ps->started = -1;
    ps->rows = 0;
    ps->ms = 0;
    ps->error[0] = '\0';
    /* "done 1,2\nstarted 3\nrows N\nms N\nerror TEXT\n" (shards 1-based) */
    while (*p) {
        if (!strncmp(p, "done ", 5)) {
            p += 5;
            while (*p && *p != '\n') {
                long v = strtol(p, (char **)&p, 10);
                if (v >= 1 && (size_t)v <= n_shards)
                    ps->done[v - 1] = 1;
                if (*p == ',')
                    p++;
                else if (*p && *p != '\n')
                    return -EINVAL;
            }
        } else if (!strncmp(p, "started ", 8)) {
            long v = strtol(p + 8, (char **)&p, 10);
            if (v >= 1 && (size_t)v <= n_shards)
                ps->started = (int)v - 1;
        } else if (!strncmp(p, "rows ", 5)) {
            ps->rows = strtoll(p + 5, (char **)&p, 10);
        } else if (!strncmp(p, "ms ", 3)) {
            ps->ms = strtoll(p + 3, (char **)&p, 10);
        } else if (!strncmp(p, "error ", 6)) {
            size_t n = strcspn(p + 6, "\n");
            snprintf(ps->error, sizeof(ps->error), "%.*s", (int)n, p + 6);
            p += 6 + n;
        } else {
            while (*p && *p != '\n')
                p++;
        }
        if (*p == '\n')
            p++;
    }
    return 0;
}

static int piece_state_format(const struct piece_state *ps, size_t n_shards, struct chc_buf *b)
{
    size_t i, m = 0;
    int r;

    chc_buf_reset(b);
    r = chc_buf_addstr(b, "done ");
    for (i = 0; r == 0 && i < n_shards; i++)
        if (ps->done[i])
            r = chc_buf_addf(b, "%s%zu", m++ ? "," : "", i + 1);
    if (r == 0)
        r = chc_buf_addch(b, '\n');
    if (r == 0 && ps->started >= 0)
        r = chc_buf_addf(b, "started %d\n", ps->started + 1);
    if (r == 0)
        r = chc_buf_addf(b, "rows %lld\n", ps->rows);
    if (r == 0 && ps->ms > 0)
        r = chc_buf_addf(b, "ms %lld\n", ps->ms);
    if (r == 0 && ps->error[0])
        r = chc_buf_addf(b, "error %s\n", ps->error);
    return r;
}

static int piece_path(const struct tstate *ts, size_t part, unsigned k, struct chc_buf *b)
{
    return wk__zpath(b, "%s/parts/%s/%u", ts->zroot, ts->parts[part].zname, k);
}

/* parts/<partition>: the partition's move state. */
static int part_path(const struct tstate *ts, size_t part, struct chc_buf *b)
{
    return wk__zpath(b, "%s/parts/%s", ts->zroot, ts->parts[part].zname);
}

int zkstate__piece_read(struct worker *w, struct tstate *ts, size_t part, unsigned k,
                        struct piece_state *ps, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = piece_path(ts, part, k, &path);
    if (r < 0)
        goto out;
    r = zk_get(w->zs, path.buf, &data, &st, err);
    if (r == CHC_EZK_NONODE) {
        memset(ps->done, 0, ts->tb->pull->n_shards);
        ps->started = -1;
        ps->rows = 0;
        ps->exists = 0;
        ps->version = -1;
        ps->ms = 0;
        ps->error[0] = '\0';
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    ps->exists = 1;
    ps->version = st.version;
    r = piece_state_parse(data.buf, ts->tb->pull->n_shards, ps);
    if (r < 0)
        r = chc_err_set(err, CHC_ESTATE, "bad piece state at %s", path.buf);
out:
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r;
}

int zkstate__piece_write(struct worker *w, struct tstate *ts, size_t part, unsigned k,
                         struct piece_state *ps, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = piece_path(ts, part, k, &path);
    if (r == 0)
        r = piece_state_format(ps, ts->tb->pull->n_shards, &data);
    if (r < 0) {
        r = oom(err);
        goto out;
    }
    if (!ps->exists) {
        r = zk_create(w->zs, path.buf, data.buf, data.len, ZK_PERSISTENT, NULL, err);
        if (r == CHC_EZK_NONODE) {
            /* First piece of the partition: create parts/<partition>. */
            chc_buf_setlen(&path, (size_t)(strrchr(path.buf, '/') - path.buf));
            r = zk_create(w->zs, path.buf, "", 0, ZK_PERSISTENT, NULL, err);
            if (r == 0 || r == CHC_EZK_NODEEXISTS)
                r = piece_path(ts, part, k, &path);
            if (r == 0)
                r = zk_create(w->zs, path.buf, data.buf, data.len, ZK_PERSISTENT, NULL, err);
        }
        if (r == 0) {
            ps->exists = 1;
            ps->version = 0;
        }
    } else {
        r = zk_set(w->zs, path.buf, data.buf, data.len, ps->version, &st, err);
        if (r == 0)
            ps->version = st.version;
    }
out:
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r;
}

/* Partition move state. */
int zkstate__part_state_read(struct worker *w, struct tstate *ts, size_t part, struct chc_buf *out,
                             struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    r = part_path(ts, part, &path);
    if (r == 0)
        r = zk_get(w->zs, path.buf, out, NULL, err);
    if (r == CHC_EZK_NONODE) {
        chc_buf_reset(out);
        r = 0;
    }
    chc_buf_release(&path);
    return r;
}

int zkstate__part_state_write(struct worker *w, struct tstate *ts, size_t part, const char *state,
                              struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    r = part_path(ts, part, &path);
    if (r == 0) {
        r = zk_set(w->zs, path.buf, state, strlen(state), ZK_ANY_VERSION, NULL, err);
        if (r == CHC_EZK_NONODE)
            r = zk_create(w->zs, path.buf, state, strlen(state), ZK_PERSISTENT, NULL, err);
    }
    chc_buf_release(&path);
    return r;
}

/* Several partitions' move states, one write each. Not one multi-op
 * transaction: libzookeeper_mt 3.8's zoo_amulti frees the caller's op paths
 * when it fails before sending (ASan caught a double free and a
 * use-after-free there in a chaos run, under session loss), and these
 * writes need no atomicity across partitions. */
int zkstate__part_states_write(struct worker *w, struct tstate *ts, const size_t *parts,
                               const char *const *states, size_t n, struct chc_err *err)
{
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < n; i++)
        r = zkstate__part_state_write(w, ts, parts[i], states[i], err);
    return r;
}

/* A worker id is "<host>#<YYYYMMDDhhmmss>_<pid>". A holder on this host
 * whose process is gone cannot act any more, but its ephemeral nodes live
 * until its session expires; taking them over at once saves a restarted
 * worker that wait (clickhouse-copier waits). A reused pid only makes us
 * wait, never take over a live worker's claim. */
static int holder_dead(const struct worker *w, const char *holder)
{
    const char *hash = strrchr(holder, '#'), *us;
    long pid;

    if (!hash || (size_t)(hash - holder) != strlen(w->host) ||
        strncmp(holder, w->host, (size_t)(hash - holder)))
        return 0;
    us = strrchr(hash, '_');
    if (!us)
        return 0;
    pid = strtol(us + 1, NULL, 10);
    if (pid <= 0 || pid == (long)getpid())
        return 0;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Create an ephemeral node holding our id; if a dead local worker holds it,
 * take it over. Takeovers of one node are serialised by "<path>.takeover"
 * (itself ephemeral): two workers that both see the dead holder must not
 * both delete-and-create, or the second would delete the first's fresh node
 * (same version) and both would hold it. Under that lock the node is read
 * again and replaced only if the same dead holder still has it. */
int zkstate__ephemeral_take(struct worker *w, const char *path, struct chc_err *err)
{
    struct chc_buf holder = CHC_BUF_INIT, again = CHC_BUF_INIT, tk = CHC_BUF_INIT;
    struct zk_stat st, st2;
    int r;

    r = zk_create(w->zs, path, w->id, strlen(w->id), ZK_EPHEMERAL, NULL, err);
    if (r != CHC_EZK_NODEEXISTS)
        return r;
    if (zk_get(w->zs, path, &holder, &st, err) < 0 || !holder_dead(w, holder.buf))
        goto out;
    if (chc_buf_addf(&tk, "%s.takeover", path) < 0 ||
        zk_create(w->zs, tk.buf, w->id, strlen(w->id), ZK_EPHEMERAL, NULL, NULL) < 0)
        goto out; /* someone else is taking it over */
    if (zk_get(w->zs, path, &again, &st2, err) == 0 && !strcmp(again.buf, holder.buf) &&
        st2.czxid == st.czxid && holder_dead(w, again.buf) &&
        zk_delete(w->zs, path, st2.version, err) == 0) {
        chc_log_warn("'%s' was held by %s, a worker on this host that is gone: taking it over",
                     path, holder.buf);
        r = zk_create(w->zs, path, w->id, strlen(w->id), ZK_EPHEMERAL, NULL, err);
    }
    if (zk_delete(w->zs, tk.buf, ZK_ANY_VERSION, NULL) < 0)
        chc_log_debug("cannot remove '%s'", tk.buf);
out:
    chc_buf_release(&holder);
    chc_buf_release(&again);
    chc_buf_release(&tk);
    return r;
}

int zkstate__lock_take(struct worker *w, struct tstate *ts, size_t part, const char *what,
                       char **ret_path, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    r = wk__zpath(&path, "%s/locks/%s#%s", ts->zroot, ts->parts[part].zname, what);
    if (r < 0) {
        chc_buf_release(&path);
        return oom(err);
    }
    r = zkstate__ephemeral_take(w, path.buf, err);
    if (r == 0)
        *ret_path = chc_buf_take(&path, NULL);
    chc_buf_release(&path);
    return r;
}

/* Remove the slots and registrations of dead workers on this host. */
void zkstate__reap_dead_local(struct worker *w)
{
    static const char *const dirs[] = {"active", "workers"};
    struct chc_buf path = CHC_BUF_INIT, p = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    size_t d, i, n = 0;
    char **kids = NULL;

    for (d = 0; d < 2; d++) {
        if (wk__zpath(&path, "%s/%s", w->o->task_path, dirs[d]) < 0 ||
            zk_children(w->zs, path.buf, &kids, &n, &err) < 0)
            continue;
        for (i = 0; i < n; i++) {
            char *cut = d == 0 ? strrchr(kids[i], '#') : NULL;
            if (cut)
                *cut = '\0';
            if (!holder_dead(w, kids[i]))
                continue;
            if (cut)
                *cut = '#';
            if (wk__zpath(&p, "%s/%s", path.buf, kids[i]) == 0 &&
                zk_delete(w->zs, p.buf, ZK_ANY_VERSION, &err) == 0)
                chc_log_info("removed '%s' of a worker on this host that is gone", p.buf);
        }
        chc_strv_free(kids, n);
        kids = NULL;
        n = 0;
    }
    chc_buf_release(&path);
    chc_buf_release(&p);
}

void zkstate__lock_release(struct worker *w, char **path)
{
    struct chc_err err = CHC_ERR_INIT;

    int r, tries = 0;

    if (!*path)
        return;
    /* A release lost to a connection loss would leave the node owned by
     * our still-live session, and every worker would wait on it: retry
     * until ZooKeeper answers (or the session is gone, which frees it). */
    while ((r = zk_delete(w->zs, *path, ZK_ANY_VERSION, &err)) == CHC_EZK_CONNLOSS &&
           !zk_session_expired(w->zs) && ++tries < 300)
        wk__sleep(w, 100);
    if (r < 0 && r != CHC_EZK_NONODE)
        chc_log_debug("cannot release '%s': %s", *path, err.msg);
    free(*path);
    *path = NULL;
}

/* max_workers: a slot is an ephemeral child of <task>/active, taken with a
 * version check on <task>/active so concurrent takers cannot overshoot. */
int zkstate__slot_take(struct worker *w, char **ret_path, struct chc_err *err)
{
    struct chc_buf active = CHC_BUF_INIT, child = CHC_BUF_INIT;
    struct zk_stat st;
    struct zk_txn *t = NULL;
    int r;

    r = wk__zpath(&active, "%s/active", w->o->task_path);
    if (r < 0)
        goto oom;
    r = zk_exists(w->zs, active.buf, &st, err);
    if (r < 0)
        goto out;
    if ((unsigned)st.num_children >= w->task->max_workers) {
        zkstate__reap_dead_local(w);
        r = zk_exists(w->zs, active.buf, &st, err);
        if (r < 0)
            goto out;
    }
    if ((unsigned)st.num_children >= w->task->max_workers) {
        r = CHC_EBUSY;
        goto out;
    }
    r = wk__zpath(&child, "%s/%s#%lu", active.buf, w->id, ++w->slot_seq);
    if (r < 0)
        goto oom;
    t = zk_txn_new();
    if (!t)
        goto oom;
    if (zk_txn_set(t, active.buf, "", 0, st.version) < 0 ||
        zk_txn_create(t, child.buf, "", 0, ZK_EPHEMERAL) < 0)
        goto oom;
    r = zk_txn_commit(w->zs, t, NULL, err);
    if (r == CHC_EZK_BADVERSION)
        r = CHC_EBUSY;
    if (r == 0)
        *ret_path = chc_buf_take(&child, NULL);
    goto out;
oom:
    r = oom(err);
out:
    zk_txn_free(t);
    chc_buf_release(&active);
    chc_buf_release(&child);
    return r;
}

/* Forget every copied piece of the partition's group: it is copied again
 * (members already moved ignore their new staging rows). */
int zkstate__reset_pieces(struct worker *w, struct tstate *ts, size_t part, struct chc_err *err)
{
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    unsigned k;
    int r = 0;

    if (!done)
        return oom(err);
    part = ts->parts[part].lead;
    for (k = 0; r == 0 && k < ts->parts[part].splits; k++) {
        r = zkstate__piece_read(w, ts, part, k, &ps, err);
        if (r == 0) {
            memset(ps.done, 0, ts->tb->pull->n_shards);
            ps.started = -1;
            ps.rows = 0;
            r = zkstate__piece_write(w, ts, part, k, &ps, err);
        }
    }
    free(done);
    return r;
}

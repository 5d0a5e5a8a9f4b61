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
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/options.h"
#include "chcopier/obs/log.h"
#include "chcopier/config/task.h"
#include "chcopier/zk/zk.h"
#include "copier/worker-internal.h"

#include "base/banned.h"

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

/* Partition move state ("" when none yet); *ret_version (optional) gets
 * the node's version, -1 when it does not exist. */
int zkstate__part_state_get(struct worker *w, struct tstate *ts, size_t part, struct chc_buf *out,
                            int *ret_version, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = part_path(ts, part, &path);
    if (r == 0)
        r = zk_get(w->zs, path.buf, out, &st, err);
    if (ret_version)
        *ret_version = r == 0 ? st.version : -1;
    if (r == CHC_EZK_NONODE) {
        chc_buf_reset(out);
        r = 0;
    }
    chc_buf_release(&path);
    return r;
}

int zkstate__part_state_read(struct worker *w, struct tstate *ts, size_t part, struct chc_buf *out,
                             struct chc_err *err)
{
    return zkstate__part_state_get(w, ts, part, out, NULL, err);
}

/* A conditional write: only over the version read under the move lock
 * (*version, -1 = the node did not exist), so a mover that lost its lock
 * while stalled cannot set a state back (CHC_EZK_BADVERSION or
 * CHC_EZK_NODEEXISTS). *version gets the new version. */
int zkstate__part_state_write(struct worker *w, struct tstate *ts, size_t part, const char *state,
                              int *version, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = part_path(ts, part, &path);
    if (r == 0 && *version < 0) {
        r = zk_create(w->zs, path.buf, state, strlen(state), ZK_PERSISTENT, NULL, err);
        if (r == 0)
            *version = 0;
    } else if (r == 0) {
        r = zk_set(w->zs, path.buf, state, strlen(state), *version, &st, err);
        if (r == 0)
            *version = st.version;
    }
    chc_buf_release(&path);
    return r;
}

/* Several partitions' move states, one conditional write each. Not one
 * multi-op transaction: libzookeeper_mt 3.8's zoo_amulti frees the caller's
 * op paths when it fails before sending (ASan caught a double free and a
 * use-after-free there in a chaos run, under session loss), and these
 * writes need no atomicity across partitions. */
int zkstate__part_states_write(struct worker *w, struct tstate *ts, const size_t *parts,
                               const char *const *states, int *const *versions, size_t n,
                               struct chc_err *err)
{
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < n; i++)
        r = zkstate__part_state_write(w, ts, parts[i], states[i], versions[i], err);
    return r;
}

/* Ownership of an ephemeral node is the session that created it
 * (ephemeralOwner), never the id written in it: 1 if path exists and our
 * session holds it (st, optional, gets its stat), 0 if not, < 0 on error. */
static int owned(struct worker *w, const char *path, struct zk_stat *st, struct chc_err *err)
{
    struct zk_stat s;
    int r = zk_exists(w->zs, path, st ? st : &s, err);

    if (r == CHC_EZK_NONODE)
        return 0;
    if (r < 0)
        return r;
    return (st ? st : &s)->ephemeral_owner == zk_session_id(w->zs);
}

/* A claim's data is "<worker id>\nhostkey <boot id>/<pid namespace>\n"
 * (worker__claim_data). A holder whose process is gone cannot act any more,
 * but its ephemeral nodes live until its session expires; taking them over
 * at once saves a restarted worker that wait (clickhouse-copier waits).
 * Gone means: same kernel boot and pid namespace as us (so that its pid
 * means the same thing here; a container on the same host name does not
 * qualify) and no process with its pid. A reused pid only makes us wait. */
static int holder_dead(const struct worker *w, const char *id, const char *data)
{
    const char *hash = strrchr(id, '#'), *us, *key = strstr(data, "hostkey ");
    size_t kl = strlen(w->hostkey);
    long pid;

    if (!hash || !key || strncmp(key + 8, w->hostkey, kl) || (key[8 + kl] != '\n' &&
                                                              key[8 + kl] != '\0'))
        return 0;
    if ((size_t)(hash - id) != strlen(w->host) || strncmp(id, w->host, (size_t)(hash - id)))
        return 0;
    us = strrchr(hash, '_');
    if (!us)
        return 0;
    pid = strtol(us + 1, NULL, 10);
    if (pid <= 0 || pid == (long)getpid())
        return 0;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* The first line of a claim's data: the holder's worker id. */
static void claim_holder(const struct chc_buf *data, char *id, size_t cap)
{
    snprintf(id, cap, "%.*s", (int)strcspn(data->buf, "\n"), data->buf);
}

/* Take over `path` from a dead local holder (see holder_dead). Takeovers of
 * one node are serialised by "<path>.takeover" (itself ephemeral): two
 * workers that both see the dead holder must not both delete-and-create, or
 * the second would delete the first's fresh node (same version) and both
 * would hold it. Under that lock the node is read again and replaced only if
 * the same dead holder still has it. CHC_EZK_NODEEXISTS if not taken. */
static int take_over(struct worker *w, const char *path, struct chc_err *err)
{
    struct chc_buf holder = CHC_BUF_INIT, again = CHC_BUF_INIT, tk = CHC_BUF_INIT;
    struct zk_stat st, st2;
    char id[512];
    int r = CHC_EZK_NODEEXISTS;

    if (zk_get(w->zs, path, &holder, &st, err) < 0)
        goto out;
    claim_holder(&holder, id, sizeof(id));
    if (!holder_dead(w, id, holder.buf))
        goto out;
    if (chc_buf_addf(&tk, "%s.takeover", path) < 0 ||
        zk_create(w->zs, tk.buf, w->claim.buf, w->claim.len, ZK_EPHEMERAL, NULL, NULL) < 0)
        goto out; /* someone else is taking it over */
    if (zk_get(w->zs, path, &again, &st2, err) == 0 && !strcmp(again.buf, holder.buf) &&
        st2.czxid == st.czxid && holder_dead(w, id, again.buf) &&
        zk_delete(w->zs, path, st2.version, err) == 0) {
        chc_log_warn("'%s' was held by %s, a worker on this host that is gone: taking it over",
                     path, id);
        r = zk_create(w->zs, path, w->claim.buf, w->claim.len, ZK_EPHEMERAL, NULL, err);
    }
    if (zk_delete(w->zs, tk.buf, ZK_ANY_VERSION, NULL) < 0)
        chc_log_debug("cannot remove '%s'", tk.buf);
out:
    chc_buf_release(&holder);
    chc_buf_release(&again);
    chc_buf_release(&tk);
    return r;
}

/* Create an ephemeral claim holding our id. A create whose reply was lost
 * (connection loss, then "node exists" on the retry) may have succeeded:
 * the node is ours when our session owns it. If a dead local worker holds
 * it, take it over. CHC_EZK_NODEEXISTS when someone else holds it. */
int zkstate__ephemeral_take(struct worker *w, const char *path, struct chc_err *err)
{
    int r, mine;

    r = zk_create(w->zs, path, w->claim.buf, w->claim.len, ZK_EPHEMERAL, NULL, err);
    if (r != CHC_EZK_NODEEXISTS && r != CHC_EZK_CONNLOSS)
        return r;
    mine = owned(w, path, NULL, NULL);
    if (mine == 1) {
        chc_log_debug("'%s' is already ours (a reply was lost)", path);
        return 0;
    }
    if (r == CHC_EZK_CONNLOSS)
        return r;
    return take_over(w, path, err);
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
    struct chc_buf path = CHC_BUF_INIT, p = CHC_BUF_INIT, data = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    struct zk_stat st;
    size_t d, i, n = 0;
    char **kids = NULL;

    for (d = 0; d < 2; d++) {
        if (wk__zpath(&path, "%s/%s", w->o->task_path, dirs[d]) < 0 ||
            zk_children(w->zs, path.buf, &kids, &n, &err) < 0)
            continue;
        for (i = 0; i < n; i++) {
            char id[512], *hash = d == 0 ? strrchr(kids[i], '#') : NULL;
            /* active/<id>#<n>: the id is before the last '#' */
            snprintf(id, sizeof(id), "%.*s",
                     (int)(hash ? (size_t)(hash - kids[i]) : strlen(kids[i])), kids[i]);
            if (wk__zpath(&p, "%s/%s", path.buf, kids[i]) < 0 ||
                zk_get(w->zs, p.buf, &data, &st, &err) < 0 || !holder_dead(w, id, data.buf))
                continue;
            if (zk_delete(w->zs, p.buf, st.version, &err) == 0)
                chc_log_info("removed '%s' of a worker on this host that is gone", p.buf);
        }
        chc_strv_free(kids, n);
        kids = NULL;
        n = 0;
    }
    chc_buf_release(&path);
    chc_buf_release(&p);
    chc_buf_release(&data);
}

/* Delete a claim we hold, and only if we hold it: a claim lost with the
 * session may belong to another worker by now. */
void zkstate__lock_release(struct worker *w, char **path)
{
    struct chc_err err = CHC_ERR_INIT;
    struct zk_stat st;
    int r, tries = 0;

    if (!*path)
        return;
    /* A release lost to a connection loss would leave the node owned by
     * our still-live session, and every worker would wait on it: retry
     * until ZooKeeper answers (or the session is gone, which frees it). */
    for (;;) {
        r = owned(w, *path, &st, &err);
        if (r == 1)
            r = zk_delete(w->zs, *path, st.version, &err);
        if (r != CHC_EZK_CONNLOSS || zk_session_expired(w->zs) || ++tries >= 300)
            break;
        wk__sleep(w, 100);
    }
    if (r < 0 && r != CHC_EZK_NONODE)
        chc_log_debug("cannot release '%s': %s", *path, err.msg);
    free(*path);
    *path = NULL;
}

/* max_workers: a slot is an ephemeral child of <task>/active, taken with a
 * version check on <task>/active so concurrent takers cannot overshoot. A
 * commit whose reply was lost may have taken the slot: it is ours when our
 * session owns the child. */
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
        zk_txn_create(t, child.buf, w->claim.buf, w->claim.len, ZK_EPHEMERAL) < 0)
        goto oom;
    r = zk_txn_commit(w->zs, t, NULL, err);
    if (r == CHC_EZK_CONNLOSS && owned(w, child.buf, NULL, NULL) == 1)
        r = 0;
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

/* Paths to read in one pipelined round (zk_get_many), with what they are. */
struct reads {
    char **paths;
    size_t *part;
    unsigned *k; /* UINT_MAX: the partition's state, else piece k */
    size_t n, cap;
};

static int reads_add(struct reads *rd, struct chc_buf *path, size_t part, unsigned k)
{
    if (rd->n == rd->cap) {
        size_t ncap = rd->cap ? rd->cap * 2 : 256;
        char **np = realloc(rd->paths, ncap * sizeof(*np));
        size_t *nq = np ? realloc(rd->part, ncap * sizeof(*nq)) : NULL;
        unsigned *nk = nq ? realloc(rd->k, ncap * sizeof(*nk)) : NULL;
        if (np)
            rd->paths = np;
        if (nq)
            rd->part = nq;
        if (!nk)
            return -ENOMEM;
        rd->k = nk;
        rd->cap = ncap;
    }
    rd->paths[rd->n] = chc_buf_take(path, NULL);
    rd->part[rd->n] = part;
    rd->k[rd->n++] = k;
    return 0;
}

static void reads_release(struct reads *rd)
{
    chc_strv_free(rd->paths, rd->n);
    free(rd->part);
    free(rd->k);
}

/* Every unfinished partition's state and, per group with a partition still
 * to move, its pieces that no job of ours holds, in one pipelined round. */
static int refresh_paths(struct tstate *ts, struct reads *rd)
{
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;
    unsigned k;
    int r = 0;

    for (i = 0; r == 0 && i < ts->n_parts; i++)
        if (!ts->parts[i].done) {
            r = part_path(ts, i, &b);
            if (r == 0)
                r = reads_add(rd, &b, i, UINT_MAX);
        }
    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        if (ts->parts[i].lead != i || group_done(ts, i))
            continue;
        for (k = 0; r == 0 && k < ts->parts[i].splits; k++) {
            if (ts->pbusy[i * ts->splits + k])
                continue;
            r = piece_path(ts, i, k, &b);
            if (r == 0)
                r = reads_add(rd, &b, i, k);
        }
    }
    chc_buf_release(&b);
    return r;
}

int zkstate__refresh(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct reads rd = {0};
    struct chc_buf *outs = NULL;
    struct piece_state ps = {.started = -1, .version = -1};
    int *codes = NULL, r, all = 1;
    size_t i;

    ps.done = calloc(ts->tb->pull->n_shards, 1);
    r = ps.done && refresh_paths(ts, &rd) == 0 ? 0 : oom(err);
    if (r == 0 && rd.n) {
        outs = calloc(rd.n, sizeof(*outs));
        codes = calloc(rd.n, sizeof(*codes));
        for (i = 0; outs && i < rd.n; i++)
            chc_buf_init(&outs[i], 0);
        r = outs && codes ? zk_get_many(w->zs, (const char *const *)rd.paths, rd.n, outs, codes,
                                        err)
                          : oom(err);
    }
    for (i = 0; r == 0 && i < rd.n; i++) {
        size_t part = rd.part[i];
        const char *data = codes[i] == 0 ? outs[i].buf : "";
        if (rd.k[i] == UINT_MAX) {
            ts->parts[part].done |= !strncmp(data, "done", 4);
            all &= ts->parts[part].done;
        } else if (piece_state_parse(data, ts->tb->pull->n_shards, &ps) < 0) {
            r = chc_err_set(err, CHC_ESTATE, "bad piece state at %s", rd.paths[i]);
        } else {
            memcpy(pdone_at(ts, part, rd.k[i]), ps.done, ts->tb->pull->n_shards);
        }
    }
    for (i = 0; outs && i < rd.n; i++)
        chc_buf_release(&outs[i]);
    free(outs);
    free(codes);
    free(ps.done);
    reads_release(&rd);
    return r < 0 ? r : all;
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

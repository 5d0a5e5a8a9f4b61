/* worker.c — one chcopier process: registers in ZooKeeper, prepares each table
 * task (destination and staging tables, partition discovery), claims pieces,
 * copies them through the pull data path, and moves finished partitions.
 *
 * Concurrency model: one thread, one libuv loop. Piece copies are async
 * ClickHouse queries whose callbacks only record completion; every decision
 * (ZooKeeper writes, cleaning, moves) is taken by the coordinator loop in
 * worker_run(), which waits by running the loop once at a time. Synchronous
 * helper queries run the same loop, so transfers keep flowing meanwhile.
 *
 * Exactly-once rules (docs/design.md):
 *   1. a piece (partition p, source shard s, split k) is copied only under the
 *      ephemeral claim locks/<p>#<k>, which also serialises cleaning of the
 *      shared staging partition p of <table>_piece_<k>;
 *   2. the piece node records "started s" before any row is sent and "done s"
 *      only after every destination query succeeded; a claim that finds a
 *      started-but-not-done shard, or no shard done yet, first kills stray
 *      queries and drops p from <table>_piece_<k> on every staging node, and
 *      forgets every shard done for (p, k);
 *   3. a partition moves under locks/<p>#move: verify staging against the
 *      source, assemble, record "assembled", REPLACE PARTITION (idempotent),
 *      record "moved", verify the destination, drop staging, record "done".
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "chcopier/buf.h"
#include "chcopier/ch.h"
#include "chcopier/cli.h"
#include "chcopier/engine.h"
#include "chcopier/log.h"
#include "chcopier/metrics.h"
#include "chcopier/plan.h"
#include "chcopier/task.h"
#include "chcopier/taskstore.h"
#include "chcopier/worker.h"
#include "chcopier/zk.h"

#include "banned.h"

#define RESPONSE_MAX (64u << 20)

struct worker;
struct tstate;

/* One node that holds staging data for a destination shard. */
struct target {
    size_t shard;
    const struct cfg_replica *rep;
};

struct part {
    char *lit;        /* SQL literal */
    char *zname;      /* ZooKeeper node name */
    char hash[17];    /* for query ids */
    unsigned char *on_shard; /* source shards that have it */
    unsigned splits;  /* pieces per source shard (small partitions: fewer) */
    long long rows;   /* source rows from discovery, -1 unknown */
    unsigned long long src_hash; /* source checksum from discovery (with rows >= 0) */
    long long max_shard_rows; /* discovery only: the largest shard's rows */
    int done;         /* moved and verified (cache) */
    /* Copy group (plan_group_parts): small partitions are copied together by
     * the pieces of their group's first partition, the lead; the members
     * are parts[lead .. lead + n_group - 1] and share the lead's splits. */
    size_t lead;
    size_t n_group;   /* members, on the lead; 0 on the others */
};

/* Most partitions one piece copies (bounds the IN list and the cleaning). */
#define GROUP_MAX 32

struct piece_state {
    unsigned char *done; /* per source shard */
    int started;         /* source shard index or -1 */
    long long rows;
    int version;
    int exists;
    long long ms;        /* duration of the last successful copy */
    char error[240];     /* last failure, "" if none */
};

struct column {
    char *name;
    char *type;
    char *kind; /* "", DEFAULT, MATERIALIZED, ALIAS */
    char *expr;
};

struct tstate {
    struct worker *w;
    const struct cfg_table *tb;
    char *zroot;
    char *key_type;
    struct column *cols;
    size_t n_cols;
    char *copy_cols;  /* "`a`, `b`" */
    char *copy_cast;  /* "CAST(`a` AS T) AS `a`, ...": Native needs the exact types */
    char *hash_src;   /* cityHash64(CAST(`a` AS T), ...) for the source */
    char *hash_dst;   /* cityHash64(`a`, ...) for staging/destination */
    const struct cfg_replica **src_rep;
    size_t *order;
    struct target *targets;
    size_t n_targets;
    struct part *parts;
    size_t n_parts;
    unsigned splits;
    int finished;
    int pipe; /* data path: 1 = through this worker, 0 = pull (remote()) */
    /* Source checksums from discovery are valid only for the checksum
     * expression they were computed with (it casts to the destination's
     * column types, which an operator may change): its hash, 0 = none. */
    uint64_t sums_key;
    /* Local cache of ZooKeeper piece state, refreshed when idle:
     * pdone[(part * splits + k) * S + s] and pbusy[part * splits + k]
     * (our own job holds the claim). */
    unsigned char *pdone;
    unsigned char *pbusy;
    uint64_t *pnext;     /* per (part, k): not before this time (ms), after failures */
    unsigned char *pfails;
};

struct job {
    struct worker *w;
    struct tstate *ts;
    size_t part;
    unsigned k;
    size_t shard;
    char *lock_path;
    char *slot_path;
    struct ch_query **q;  /* pull path: one INSERT ... SELECT per staging node */
    struct ch_pipe **pp;  /* pipe path: one SELECT -> INSERT pipe per staging node */
    size_t n_q, pending;
    unsigned long long bytes;
    int failed;
    struct chc_err err;
    uint64_t t0;
    struct job *next;
};

struct worker {
    const struct chc_options *o;
    const struct cfg_zk *zkcfg;
    struct zk_session *zs;
    uv_loop_t loop;
    uv_timer_t sleeper;
    struct ch_client *ch;
    struct cfg_task *task;
    char host[256];
    char id[512];
    struct job *jobs;
    size_t n_jobs;
    unsigned cap;
    unsigned long slot_seq;
    const struct cfg_task *task_borrowed; /* not ours to free */
    struct chc_metrics *metrics;
    int progress;               /* live progress line on a terminal */
    uint64_t progress_at, started_at;
    unsigned long long rows_copied, bytes_copied;
    int loop_ok;
    int desc_version;
    uint64_t slot_wait_logged;
};

static unsigned char *pdone_at(const struct tstate *ts, size_t part, unsigned k)
{
    return ts->pdone + ((size_t)part * ts->splits + k) * ts->tb->pull->n_shards;
}

/* Metrics: `table` label, plus one more (key, value) if key is not NULL. */
static void metric(struct worker *w, const struct tstate *ts, const char *name, const char *key,
                   const char *value, double v, int set)
{
    struct chc_buf l = CHC_BUF_INIT;

    if (!w->metrics)
        return;
    if ((ts && chc_metrics_label(&l, "table", ts->tb->name) < 0) ||
        (key && chc_metrics_label(&l, key, value) < 0)) {
        chc_buf_release(&l);
        return;
    }
    if (set)
        chc_metrics_set(w->metrics, name, l.len ? l.buf : NULL, v);
    else
        chc_metrics_add(w->metrics, name, l.len ? l.buf : NULL, v);
    chc_buf_release(&l);
}

/* Does any partition of the group led by `lead` have rows on source shard s? */
static int group_on_shard(const struct tstate *ts, size_t lead, size_t s)
{
    size_t i;

    for (i = lead; i < lead + ts->parts[lead].n_group; i++)
        if (ts->parts[i].on_shard[s])
            return 1;
    return 0;
}

/* Every partition of the group moved and verified (cache)? */
static int group_done(const struct tstate *ts, size_t lead)
{
    size_t i;

    for (i = lead; i < lead + ts->parts[lead].n_group; i++)
        if (!ts->parts[i].done)
            return 0;
    return 1;
}

/* Pieces of the group led by `lead`: splits x source shards with rows. */
static size_t group_pieces(const struct tstate *ts, size_t lead)
{
    size_t s, n = 0;

    for (s = 0; s < ts->tb->pull->n_shards; s++)
        n += group_on_shard(ts, lead, s) ? ts->parts[lead].splits : 0;
    return n;
}

/* Every piece of the partition's group copied from every shard that has
 * rows for it (cache). */
static int part_cached_ready(const struct tstate *ts, size_t part)
{
    size_t lead = ts->parts[part].lead, s;
    unsigned k;

    for (k = 0; k < ts->parts[lead].splits; k++) {
        const unsigned char *d = pdone_at(ts, lead, k);
        if (ts->pbusy[lead * ts->splits + k])
            return 0;
        for (s = 0; s < ts->tb->pull->n_shards; s++)
            if (group_on_shard(ts, lead, s) && !d[s])
                return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* small utilities                                                          */
/* ------------------------------------------------------------------------ */

static int worker_register(struct worker *w, struct chc_err *err);
static void columns_release(struct tstate *ts);
static int reset_pieces(struct worker *w, struct tstate *ts, size_t part, struct chc_err *err);

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleeper_cb(uv_timer_t *t)
{
    (void)t;
}

/* Sleep while keeping transfers flowing. */
static void worker_sleep(struct worker *w, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    uv_timer_start(&w->sleeper, sleeper_cb, ms, 0);
    while (now_ms() < end)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->sleeper);
}

static void fault_point(const struct worker *w, const char *name)
{
    if (w->o->fault_point && !strcmp(w->o->fault_point, name)) {
        chc_log_warn("fault point '%s' reached: exiting abruptly", name);
        _exit(99);
    }
}

static int oom(struct chc_err *err)
{
    return chc_err_set(err, -ENOMEM, "out of memory");
}

/* `db`.`table` */
static int add_table_ref(struct chc_buf *b, const char *db, const char *table)
{
    int r = chc_buf_add_ident(b, db);

    if (r == 0)
        r = chc_buf_addch(b, '.');
    if (r == 0)
        r = chc_buf_add_ident(b, table);
    return r;
}

static void params_init(struct ch_query_params *p, const struct cfg_replica *rep,
                        const char *sql, const struct cfg_task *t, int push)
{
    memset(p, 0, sizeof(*p));
    p->replica = rep;
    p->sql = sql;
    p->max_response = RESPONSE_MAX;
    p->settings[0] = &t->settings;
    p->settings[1] = push ? &t->settings_push : &t->settings_pull;
    p->settings[2] = NULL;
}

static int query(struct worker *w, const struct cfg_replica *rep, int push, const char *sql,
                 struct chc_buf *out, struct chc_err *err)
{
    struct ch_query_params p;
    int r;

    params_init(&p, rep, sql, w->task, push);
    chc_log_trace("%s:%d: %s", rep->host, rep->http_port, sql);
    if (out)
        chc_buf_reset(out); /* out receives this query's body only */
    r = ch_query_sync(w->ch, &p, out, err);
    return r;
}

/* ------------------------------------------------------------------------ */
/* fan-out: one statement on many nodes at once, every one must succeed     */
/* ------------------------------------------------------------------------ */

struct batch {
    size_t pending;
};

static void batch_cb(struct ch_query *q, void *data)
{
    struct batch *b = data;

    (void)q;
    b->pending--;
}

/* Run n statements at once (sqls[i] on reps[i]; one sql for all when
 * sqls is NULL), at most MULTI_INFLIGHT at a time (ClickHouse refuses more
 * than max_concurrent_queries, 100 by default, and other workers query it
 * too); wait for all; every one must succeed. outs (optional) receive the
 * bodies. */
#define MULTI_INFLIGHT 32

static int multi_query(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                       const char *const *sqls, const char *sql, struct chc_buf *outs,
                       const int *pushes, struct chc_err *err)
{
    struct ch_query **q = calloc(n ? n : 1, sizeof(*q));
    struct batch b = {0};
    struct ch_query_params p;
    size_t i, len, started = 0;
    int r = 0;

    if (!q)
        return oom(err);
    while (r == 0 && started < n) {
        while (r == 0 && started < n && b.pending < MULTI_INFLIGHT) {
            i = started;
            params_init(&p, reps[i], sqls ? sqls[i] : sql, w->task, pushes ? pushes[i] : 1);
            chc_log_trace("%s:%d: %s", reps[i]->host, reps[i]->http_port, p.sql);
            r = ch_query_start(w->ch, &p, batch_cb, &b, &q[i], err);
            if (r < 0)
                break;
            b.pending++;
            started++;
        }
        if (r == 0 && started < n)
            uv_run(&w->loop, UV_RUN_ONCE);
    }
    while (b.pending > 0)
        uv_run(&w->loop, UV_RUN_ONCE);
    for (i = 0; i < n && q[i]; i++) {
        if (r == 0 && ch_query_status(q[i]) < 0)
            r = chc_err_set(err, ch_query_status(q[i]), "%s (failed on 1 of %zu nodes)",
                            ch_query_error(q[i])->msg, n);
        if (r == 0 && outs) {
            const char *body = ch_query_body(q[i], &len);
            chc_buf_reset(&outs[i]);
            if (chc_buf_add(&outs[i], body, len) < 0)
                r = oom(err);
        }
        ch_query_free(q[i]);
    }
    free(q);
    return r;
}

static int fanout(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                  const char *sql, struct chc_err *err)
{
    return multi_query(w, reps, n, NULL, sql, NULL, NULL, err);
}

/* ------------------------------------------------------------------------ */
/* ZooKeeper helpers                                                        */
/* ------------------------------------------------------------------------ */

static int zpath(struct chc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int zpath(struct chc_buf *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return CHC_ETOOBIG;
    chc_buf_reset(b);
    return chc_buf_addstr(b, tmp);
}

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
    return zpath(b, "%s/parts/%s/%u", ts->zroot, ts->parts[part].zname, k);
}

static int piece_read(struct worker *w, struct tstate *ts, size_t part, unsigned k,
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

static int piece_write(struct worker *w, struct tstate *ts, size_t part, unsigned k,
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
static int part_state_read(struct worker *w, struct tstate *ts, size_t part, struct chc_buf *out,
                           struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    r = zpath(&path, "%s/parts/%s", ts->zroot, ts->parts[part].zname);
    if (r == 0)
        r = zk_get(w->zs, path.buf, out, NULL, err);
    if (r == CHC_EZK_NONODE) {
        chc_buf_reset(out);
        r = 0;
    }
    chc_buf_release(&path);
    return r;
}

static int part_state_write(struct worker *w, struct tstate *ts, size_t part, const char *state,
                            struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    r = zpath(&path, "%s/parts/%s", ts->zroot, ts->parts[part].zname);
    if (r == 0) {
        r = zk_set(w->zs, path.buf, state, strlen(state), ZK_ANY_VERSION, NULL, err);
        if (r == CHC_EZK_NONODE)
            r = zk_create(w->zs, path.buf, state, strlen(state), ZK_PERSISTENT, NULL, err);
    }
    chc_buf_release(&path);
    return r;
}

/* Several partitions' move states in one ZooKeeper transaction, a round
 * trip instead of n. Nodes that do not exist yet (a partition's first state)
 * are created, together if none exists, else one by one. */
static int part_states_write(struct worker *w, struct tstate *ts, const size_t *parts,
                             const char *const *states, size_t n, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct zk_txn *t = NULL;
    size_t i;
    int r = 0, create;

    if (n == 1)
        return part_state_write(w, ts, parts[0], states[0], err);
    for (create = 0; n > 1 && create < 2; create++) {
        t = zk_txn_new();
        if (!t)
            return oom(err);
        for (i = 0; r == 0 && i < n; i++) {
            chc_buf_reset(&path);
            r = zpath(&path, "%s/parts/%s", ts->zroot, ts->parts[parts[i]].zname);
            if (r == 0)
                r = create ? zk_txn_create(t, path.buf, states[i], strlen(states[i]),
                                           ZK_PERSISTENT)
                           : zk_txn_set(t, path.buf, states[i], strlen(states[i]),
                                        ZK_ANY_VERSION);
        }
        if (r < 0)
            r = oom(err);
        else
            r = zk_txn_commit(w->zs, t, NULL, err);
        t = zk_txn_free(t);
        if (r != (create ? CHC_EZK_NODEEXISTS : CHC_EZK_NONODE))
            goto out;
        r = 0;
    }
    for (i = 0; r == 0 && i < n; i++)
        r = part_state_write(w, ts, parts[i], states[i], err);
out:
    chc_buf_release(&path);
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
static int ephemeral_take(struct worker *w, const char *path, struct chc_err *err)
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

static int lock_take(struct worker *w, struct tstate *ts, size_t part, const char *what,
                     char **ret_path, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    r = zpath(&path, "%s/locks/%s#%s", ts->zroot, ts->parts[part].zname, what);
    if (r < 0) {
        chc_buf_release(&path);
        return oom(err);
    }
    r = ephemeral_take(w, path.buf, err);
    if (r == 0)
        *ret_path = chc_buf_take(&path, NULL);
    chc_buf_release(&path);
    return r;
}

/* Remove the slots and registrations of dead workers on this host. */
static void reap_dead_local(struct worker *w)
{
    static const char *const dirs[] = {"active", "workers"};
    struct chc_buf path = CHC_BUF_INIT, p = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    size_t d, i, n = 0;
    char **kids = NULL;

    for (d = 0; d < 2; d++) {
        if (zpath(&path, "%s/%s", w->o->task_path, dirs[d]) < 0 ||
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
            if (zpath(&p, "%s/%s", path.buf, kids[i]) == 0 &&
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

static void lock_release(struct worker *w, char **path)
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
        worker_sleep(w, 100);
    if (r < 0 && r != CHC_EZK_NONODE)
        chc_log_debug("cannot release '%s': %s", *path, err.msg);
    free(*path);
    *path = NULL;
}

/* max_workers: a slot is an ephemeral child of <task>/active, taken with a
 * version check on <task>/active so concurrent takers cannot overshoot. */
static int slot_take(struct worker *w, char **ret_path, struct chc_err *err)
{
    struct chc_buf active = CHC_BUF_INIT, child = CHC_BUF_INIT;
    struct zk_stat st;
    struct zk_txn *t = NULL;
    int r;

    r = zpath(&active, "%s/active", w->o->task_path);
    if (r < 0)
        goto oom;
    r = zk_exists(w->zs, active.buf, &st, err);
    if (r < 0)
        goto out;
    if ((unsigned)st.num_children >= w->task->max_workers) {
        reap_dead_local(w);
        r = zk_exists(w->zs, active.buf, &st, err);
        if (r < 0)
            goto out;
    }
    if ((unsigned)st.num_children >= w->task->max_workers) {
        r = CHC_EBUSY;
        goto out;
    }
    r = zpath(&child, "%s/%s#%lu", active.buf, w->id, ++w->slot_seq);
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

/* ------------------------------------------------------------------------ */
/* table preparation                                                        */
/* ------------------------------------------------------------------------ */

static void tstate_free(struct tstate *ts)
{
    size_t i;

    if (!ts)
        return;
    free(ts->zroot);
    free(ts->key_type);
    columns_release(ts);
    free(ts->src_rep);
    free(ts->order);
    free(ts->targets);
    for (i = 0; i < ts->n_parts; i++) {
        free(ts->parts[i].lit);
        free(ts->parts[i].zname);
        free(ts->parts[i].on_shard);
    }
    free(ts->parts);
    free(ts->pdone);
    free(ts->pbusy);
    free(ts->pnext);
    free(ts->pfails);
    free(ts);
}

static int table_id(const struct cfg_table *tb, struct chc_buf *out)
{
    int r;

    r = plan_zk_name(tb->cluster_push, out);
    if (r == 0)
        r = chc_buf_addch(out, '.');
    if (r == 0)
        r = plan_zk_name(tb->database_push, out);
    if (r == 0)
        r = chc_buf_addch(out, '.');
    if (r == 0)
        r = plan_zk_name(tb->table_push, out);
    return r;
}

/* Describe a table: name, type, default kind, default expression. */
static int describe(struct worker *w, const struct cfg_replica *rep, int push, const char *db,
                    const char *table, struct ch_rows **ret, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT, out = CHC_BUF_INIT;
    int r;

    r = chc_buf_addstr(&sql, "DESCRIBE TABLE ");
    if (r == 0)
        r = chc_buf_add_ident(&sql, db);
    if (r == 0)
        r = chc_buf_addch(&sql, '.');
    if (r == 0)
        r = chc_buf_add_ident(&sql, table);
    if (r == 0)
        r = chc_buf_addstr(&sql, " FORMAT TabSeparated");
    if (r < 0) {
        r = oom(err);
        goto out;
    }
    r = query(w, rep, push, sql.buf, &out, err);
    if (r == 0)
        r = ch_tsv_parse(out.buf, out.len, ret, err);
out:
    chc_buf_release(&sql);
    chc_buf_release(&out);
    return r;
}

static int add_col_def(struct chc_buf *b, const struct cfg_table *tb, const struct ch_rows *rows,
                       size_t i)
{
    const char *kind = ch_rows_ncols(rows) > 2 ? ch_rows_get(rows, i, 2) : "";
    const char *expr = ch_rows_ncols(rows) > 3 ? ch_rows_get(rows, i, 3) : "";
    int r;

    r = chc_buf_add_ident(b, ch_rows_get(rows, i, 0));
    if (r == 0)
        r = chc_buf_addf(b, " %s", ch_rows_get(rows, i, 1));
    if (r == 0 && *kind && *expr &&
        !(tb->allow_alias_materialized && (!strcmp(kind, "MATERIALIZED") || !strcmp(kind, "ALIAS"))))
        r = chc_buf_addf(b, " %s %s", kind, expr);
    return r;
}

static int create_sql(const struct cfg_table *tb, const struct ch_rows *cols, const char *table,
                      int plain, struct chc_buf *out, struct chc_err *err)
{
    size_t i;
    int r;

    r = chc_buf_addstr(out, "CREATE TABLE IF NOT EXISTS ");
    if (r == 0)
        r = chc_buf_add_ident(out, tb->database_push);
    if (r == 0)
        r = chc_buf_addch(out, '.');
    if (r == 0)
        r = chc_buf_add_ident(out, table);
    if (r == 0)
        r = chc_buf_addstr(out, " (");
    for (i = 0; r == 0 && i < ch_rows_count(cols); i++) {
        if (i)
            r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = add_col_def(out, tb, cols, i);
    }
    if (r == 0)
        r = chc_buf_addstr(out, ") ");
    if (r < 0)
        return oom(err);
    return engine_build_clause(tb->engine, plain, out, err);
}

static int push_nodes(const struct cfg_cluster *c, const struct cfg_replica ***ret, size_t *ret_n)
{
    const struct cfg_replica **v;
    size_t i, j, n = 0;

    for (i = 0; i < c->n_shards; i++)
        n += c->shards[i].n_replicas;
    v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    n = 0;
    for (i = 0; i < c->n_shards; i++)
        for (j = 0; j < c->shards[i].n_replicas; j++)
            v[n++] = &c->shards[i].replicas[j];
    *ret = v;
    *ret_n = n;
    return 0;
}

static int target_reps(const struct tstate *ts, const struct cfg_replica ***ret)
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

/* One column as checksum input: cast to the destination type on the source
 * side; NULLs hashed as (isNull, default) so they still count. */
static int add_hash_arg(struct chc_buf *b, const struct column *c, int cast)
{
    struct chc_buf x = CHC_BUF_INIT;
    int r;

    if (cast) {
        r = chc_buf_addstr(&x, "CAST(");
        if (r == 0)
            r = chc_buf_add_ident(&x, c->name);
        if (r == 0)
            r = chc_buf_addf(&x, " AS %s)", c->type);
    } else {
        r = chc_buf_add_ident(&x, c->name);
    }
    if (r == 0 && !strncmp(c->type, "Nullable(", 9))
        r = chc_buf_addf(b, "isNull(%s), assumeNotNull(%s)", x.buf, x.buf);
    else if (r == 0)
        r = chc_buf_addstr(b, x.buf);
    chc_buf_release(&x);
    return r;
}

static void columns_release(struct tstate *ts)
{
    size_t i;

    for (i = 0; i < ts->n_cols; i++) {
        free(ts->cols[i].name);
        free(ts->cols[i].type);
        free(ts->cols[i].kind);
        free(ts->cols[i].expr);
    }
    free(ts->cols);
    free(ts->copy_cols);
    free(ts->copy_cast);
    free(ts->hash_src);
    free(ts->hash_dst);
    ts->cols = NULL;
    ts->n_cols = 0;
    ts->copy_cols = ts->copy_cast = ts->hash_src = ts->hash_dst = NULL;
}

/* Columns to copy and to checksum: the destination's stored columns. */
static int columns_load(struct tstate *ts, const struct ch_rows *dst_cols, struct chc_err *err)
{
    struct chc_buf cc = CHC_BUF_INIT, hs = CHC_BUF_INIT, hd = CHC_BUF_INIT, ct = CHC_BUF_INIT;
    size_t i, m = 0;
    int r;

    columns_release(ts);
    ts->cols = calloc(ch_rows_count(dst_cols) + 1, sizeof(*ts->cols));
    if (!ts->cols)
        return oom(err);
    r = chc_buf_addstr(&hs, "cityHash64(");
    if (r == 0)
        r = chc_buf_addstr(&hd, "cityHash64(");
    for (i = 0; r == 0 && i < ch_rows_count(dst_cols); i++) {
        const char *kind = ch_rows_ncols(dst_cols) > 2 ? ch_rows_get(dst_cols, i, 2) : "";
        struct column *c = &ts->cols[ts->n_cols++];
        c->name = chc_strdup(ch_rows_get(dst_cols, i, 0));
        c->type = chc_strdup(ch_rows_get(dst_cols, i, 1));
        c->kind = chc_strdup(kind);
        c->expr = chc_strdup(ch_rows_ncols(dst_cols) > 3 ? ch_rows_get(dst_cols, i, 3) : "");
        if (!c->name || !c->type || !c->kind || !c->expr) {
            r = -ENOMEM;
            break;
        }
        if (!strcmp(kind, "MATERIALIZED") || !strcmp(kind, "ALIAS"))
            continue;
        if (m++) {
            r = chc_buf_addstr(&cc, ", ");
            if (r == 0)
                r = chc_buf_addstr(&hs, ", ");
            if (r == 0)
                r = chc_buf_addstr(&hd, ", ");
            if (r == 0)
                r = chc_buf_addstr(&ct, ", ");
        }
        if (r == 0)
            r = chc_buf_add_ident(&cc, c->name);
        if (r == 0)
            r = chc_buf_addstr(&ct, "CAST(");
        if (r == 0)
            r = chc_buf_add_ident(&ct, c->name);
        if (r == 0)
            r = chc_buf_addf(&ct, " AS %s) AS ", c->type);
        if (r == 0)
            r = chc_buf_add_ident(&ct, c->name);
        if (r == 0)
            r = add_hash_arg(&hs, c, 1);
        if (r == 0)
            r = add_hash_arg(&hd, c, 0);
    }
    if (r == 0)
        r = chc_buf_addch(&hs, ')');
    if (r == 0)
        r = chc_buf_addch(&hd, ')');
    if (r < 0 || m == 0) {
        chc_buf_release(&cc);
        chc_buf_release(&hs);
        chc_buf_release(&hd);
        chc_buf_release(&ct);
        return m == 0 && r == 0 ? chc_err_set(err, CHC_ECONFIG, "table '%s': no columns to copy",
                                              ts->tb->name)
                                : oom(err);
    }
    ts->copy_cols = chc_buf_take(&cc, NULL);
    ts->copy_cast = chc_buf_take(&ct, NULL);
    ts->hash_src = chc_buf_take(&hs, NULL);
    ts->hash_dst = chc_buf_take(&hd, NULL);
    return 0;
}

/* "name type\n" per column: what must agree between a staging table and
 * the destination for ATTACH PARTITION FROM to work. */
static int columns_signature(const struct ch_rows *cols, struct chc_buf *out)
{
    size_t i;
    int r = 0;

    chc_buf_reset(out);
    for (i = 0; r == 0 && i < ch_rows_count(cols); i++)
        r = chc_buf_addf(out, "%s %s\n", ch_rows_get(cols, i, 0), ch_rows_get(cols, i, 1));
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
    size_t t;
    unsigned k;
    int r;

    *ret_dropped = 0;
    r = describe(w, ts->targets[0].rep, 1, tb->database_push, tb->table_push, &dst_cols, err);
    if (r == 0)
        r = columns_load(ts, dst_cols, err);
    if (r < 0)
        goto out;
    if (columns_signature(dst_cols, &want) < 0 || target_reps(ts, &treps) < 0)
        goto oom;
    for (k = 0; k <= ts->splits; k++) {
        chc_buf_reset(&name);
        r = k < ts->splits ? plan_piece_table(tb, k, &name) : plan_assembly_table(tb, &name);
        if (r < 0)
            goto oom;
        for (t = 0; t < ts->n_targets; t++) {
            st_cols = ch_rows_free(st_cols);
            if (describe(w, treps[t], 1, tb->database_push, name.buf, &st_cols, err) < 0)
                continue; /* absent (or unreachable: CREATE below will say) */
            if (columns_signature(st_cols, &got) < 0)
                goto oom;
            if (!strcmp(got.buf, want.buf))
                continue;
            chc_log_warn("table '%s': staging table %s on %s:%d does not match the destination's "
                         "columns any more: recreating it",
                         tb->name, name.buf, treps[t]->host, treps[t]->http_port);
            chc_buf_reset(&sql);
            if (chc_buf_addstr(&sql, "DROP TABLE IF EXISTS ") < 0 ||
                add_table_ref(&sql, tb->database_push, name.buf) < 0)
                goto oom;
            r = fanout(w, &treps[t], 1, sql.buf, err);
            if (r < 0)
                goto out;
            *ret_dropped = 1;
        }
        chc_buf_reset(&sql);
        r = create_sql(tb, dst_cols, name.buf, 1, &sql, err);
        if (r < 0)
            goto out;
        r = fanout(w, treps, ts->n_targets, sql.buf, err);
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
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    chc_buf_release(&want);
    chc_buf_release(&got);
    return r;
}

/* Create the database and the destination table on every node of the push
 * cluster; every node must succeed. */
static int prepare_tables(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    const struct cfg_replica **nodes = NULL;
    struct ch_rows *src_cols = NULL;
    struct chc_buf sql = CHC_BUF_INIT;
    size_t n_nodes = 0;
    int r;

    r = describe(w, ts->src_rep[0], 0, tb->database_pull, tb->table_pull, &src_cols, err);
    if (r < 0) {
        chc_err_prefix(err, "table '%s': cannot read the source table %s.%s", tb->name,
                       tb->database_pull, tb->table_pull);
        goto out;
    }
    if (push_nodes(tb->push, &nodes, &n_nodes) < 0) {
        r = oom(err);
        goto out;
    }
    r = chc_buf_addstr(&sql, "CREATE DATABASE IF NOT EXISTS ");
    if (r == 0)
        r = chc_buf_add_ident(&sql, tb->database_push);
    if (r < 0) {
        r = oom(err);
        goto out;
    }
    r = fanout(w, nodes, n_nodes, sql.buf, err);
    if (r < 0)
        goto out;
    chc_buf_reset(&sql);
    r = create_sql(tb, src_cols, tb->table_push, 0, &sql, err);
    if (r < 0)
        goto out;
    r = fanout(w, nodes, n_nodes, sql.buf, err);
    if (r < 0)
        chc_err_prefix(err, "table '%s': cannot create the destination table", tb->name);
out:
    ch_rows_free(src_cols);
    free(nodes);
    chc_buf_release(&sql);
    return r;
}

static int add_part(struct tstate *ts, const char *lit, size_t *cap, struct chc_err *err)
{
    struct chc_buf zn = CHC_BUF_INIT;
    struct part *p;
    uint64_t h;
    size_t i;

    for (i = 0; i < ts->n_parts; i++)
        if (!strcmp(ts->parts[i].lit, lit))
            return (int)i;
    if (ts->n_parts == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct part *np = realloc(ts->parts, ncap * sizeof(*np));
        if (!np)
            return oom(err);
        ts->parts = np;
        *cap = ncap;
    }
    p = &ts->parts[ts->n_parts];
    memset(p, 0, sizeof(*p));
    p->lit = chc_strdup(lit);
    p->on_shard = calloc(ts->tb->pull->n_shards, 1);
    p->splits = ts->splits;
    p->rows = -1;
    p->lead = ts->n_parts;
    p->n_group = 1;
    if (plan_zk_name(lit, &zn) < 0 || !p->lit || !p->on_shard) {
        free(p->lit);
        free(p->on_shard);
        chc_buf_release(&zn);
        return oom(err);
    }
    p->zname = chc_buf_take(&zn, NULL);
    h = chc_hash64(CHC_HASH64_INIT, lit, strlen(lit));
    snprintf(p->hash, sizeof(p->hash), "%016" PRIx64, h);
    return (int)ts->n_parts++;
}

/* Partition list: "<shard>,<shard>\t<literal>\n" per partition. */
static uint64_t sums_key_of(const struct tstate *ts)
{
    return ts->hash_src ? chc_hash64(CHC_HASH64_INIT, ts->hash_src, strlen(ts->hash_src)) | 1 : 0;
}

/* Partition list node: "<shard>,<shard>\t<splits>\t<rows>\t<checksum>\t<literal>\n"
 * (rows -1: not counted, the move asks the source; splits "=": copied by the
 * pieces of the group of the partition before it). */
static int parts_load(struct tstate *ts, const char *data, struct chc_err *err)
{
    const char *p = data;
    size_t cap = 0;

    if (!strncmp(p, "#sums ", 6)) {
        ts->sums_key = strtoull(p + 6, NULL, 16);
        p = strchr(p, '\n');
        p = p ? p + 1 : "";
    }
    while (*p) {
        const char *f[5], *nl;
        struct chc_buf lit = CHC_BUF_INIT;
        long long v;
        int idx, i;

        f[0] = p;
        for (i = 1; i < 5; i++) {
            f[i] = strchr(f[i - 1], '\t');
            if (!f[i])
                return chc_err_set(err, CHC_ESTATE, "bad partition list in ZooKeeper");
            f[i]++;
        }
        nl = strchr(f[4], '\n');
        if (!nl)
            nl = f[4] + strlen(f[4]);
        if (chc_buf_add(&lit, f[4], (size_t)(nl - f[4])) < 0)
            return oom(err);
        idx = add_part(ts, lit.buf, &cap, err);
        chc_buf_release(&lit);
        if (idx < 0)
            return idx;
        if (f[1][0] == '=') {
            /* A member of the group of the partition before it. */
            size_t lead = idx > 0 && (size_t)idx == ts->n_parts - 1 ? ts->parts[idx - 1].lead
                                                                     : (size_t)idx;
            if (lead == (size_t)idx || ts->parts[lead].n_group >= GROUP_MAX)
                return chc_err_set(err, CHC_ESTATE, "bad partition group in ZooKeeper");
            ts->parts[idx].lead = lead;
            ts->parts[idx].n_group = 0;
            ts->parts[lead].n_group++;
            ts->parts[idx].splits = ts->parts[lead].splits;
        } else {
            v = strtoll(f[1], NULL, 10);
            ts->parts[idx].splits =
                v >= 1 && v <= (long long)ts->splits ? (unsigned)v : ts->splits;
        }
        ts->parts[idx].rows = strtoll(f[2], NULL, 10);
        ts->parts[idx].src_hash = strtoull(f[3], NULL, 10);
        while (p < f[1]) {
            long sh = strtol(p, (char **)&p, 10);
            if (sh >= 1 && (size_t)sh <= ts->tb->pull->n_shards)
                ts->parts[idx].on_shard[sh - 1] = 1;
            if (*p == ',')
                p++;
            else
                break;
        }
        p = *nl ? nl + 1 : nl;
    }
    return 0;
}
static int parts_format(const struct tstate *ts, struct chc_buf *b)
{
    size_t i, s;
    int r = 0;

    if (ts->sums_key)
        r = chc_buf_addf(b, "#sums %016" PRIx64 "\n", ts->sums_key);

    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        size_t m = 0;
        for (s = 0; r == 0 && s < ts->tb->pull->n_shards; s++)
            if (ts->parts[i].on_shard[s])
                r = chc_buf_addf(b, "%s%zu", m++ ? "," : "", s + 1);
        if (r == 0 && ts->parts[i].lead != i) /* "=": in the group of the one before */
            r = chc_buf_addf(b, "\t=\t%lld\t%llu\t%s\n", ts->parts[i].rows,
                             ts->parts[i].src_hash, ts->parts[i].lit);
        else if (r == 0)
            r = chc_buf_addf(b, "\t%u\t%lld\t%llu\t%s\n", ts->parts[i].splits,
                             ts->parts[i].rows, ts->parts[i].src_hash, ts->parts[i].lit);
    }
    return r;
}

/* Small partitions need fewer pieces, and are copied in groups (see
 * plan_group_parts): a group's pieces split the sum of its rows. */
static int group_parts(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    long long *rows = calloc(ts->n_parts + 1, sizeof(*rows));
    size_t *lead = calloc(ts->n_parts + 1, sizeof(*lead)), i;

    if (!rows || !lead) {
        free(rows);
        free(lead);
        return oom(err);
    }
    for (i = 0; i < ts->n_parts; i++)
        rows[i] = ts->parts[i].max_shard_rows;
    plan_group_parts(rows, ts->n_parts, w->o->min_piece_rows, GROUP_MAX, lead);
    for (i = 0; i < ts->n_parts; i++) {
        struct part *p = &ts->parts[i];
        p->lead = lead[i];
        p->n_group = p->lead == i;
        if (p->lead != i) {
            ts->parts[p->lead].n_group++;
            rows[p->lead] += rows[i];
        }
    }
    for (i = 0; i < ts->n_parts; i++)
        if (ts->parts[i].lead == i)
            ts->parts[i].splits = plan_part_splits(ts->tb, rows[i], w->o->min_piece_rows);
        else
            ts->parts[i].splits = ts->parts[ts->parts[i].lead].splits;
    free(rows);
    free(lead);
    return 0;
}

/* Partitions of the source, by querying every source shard (or from
 * enabled_partitions). Reads only. */
static int discover_query(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    size_t S = tb->pull->n_shards, cap = 0, s, i, n = 0;
    struct chc_buf *sql = calloc(S, sizeof(*sql)), *out = calloc(S, sizeof(*out));
    const char **sqls = calloc(S, sizeof(*sqls));
    char **vals = NULL;
    int r = 0;

    if (!sql || !out || !sqls)
        goto oom;
    for (s = 0; s < S; s++) {
        chc_buf_init(&sql[s], 0);
        chc_buf_init(&out[s], 0);
    }
    if (tb->has_enabled_partitions) {
        /* As given, in the given order, assumed on every shard. */
        for (i = 0; i < tb->n_enabled_partitions; i++) {
            int idx = add_part(ts, tb->enabled_partitions[i], &cap, err);
            if (idx < 0) {
                r = idx;
                goto out;
            }
            memset(ts->parts[idx].on_shard, 1, S);
        }
        goto out;
    }
    /* Partition values and their row counts, every source shard at once. */
    ts->sums_key = sums_key_of(ts);
retry:
    for (s = 0; s < S; s++) {
        chc_buf_reset(&sql[s]);
        /* The source checksum of every partition in the same pass: one read
         * of the table instead of one per partition at move time. */
        if (tb->engine->partition_by)
            r = chc_buf_addf(&sql[s], "SELECT (%s) AS _p, count(), %s%s%s FROM ",
                             tb->engine->partition_by, ts->sums_key ? "ifNull(sum(" : "0",
                             ts->sums_key ? ts->hash_src : "", ts->sums_key ? "), 0)" : "");
        else
            r = chc_buf_addf(&sql[s], "SELECT 1 AS _p, count(), %s%s%s FROM ",
                             ts->sums_key ? "ifNull(sum(" : "0", ts->sums_key ? ts->hash_src : "",
                             ts->sums_key ? "), 0)" : "");
        if (r == 0)
            r = add_table_ref(&sql[s], tb->database_pull, tb->table_pull);
        if (r == 0 && tb->where_condition)
            r = chc_buf_addf(&sql[s], " WHERE (%s)", tb->where_condition);
        if (r == 0)
            r = chc_buf_addstr(&sql[s], " GROUP BY _p ORDER BY _p FORMAT Values");
        if (r < 0)
            goto oom;
        sqls[s] = sql[s].buf;
    }
    {
        int *pull = calloc(S, sizeof(*pull)); /* source: settings_pull */
        r = pull ? multi_query(w, ts->src_rep, S, sqls, NULL, out, pull, err) : oom(err);
        free(pull);
    }
    if (r == CHC_ECH_EXCEPTION && ts->sums_key) {
        /* The checksum casts source values to the destination's types; if
         * they do not fit (the copy will say so too), count only. */
        chc_log_warn("table '%s': %s; discovering without checksums", tb->name, err->msg);
        ts->sums_key = 0;
        goto retry;
    }
    if (r < 0) {
        chc_err_prefix(err, "table '%s': partition discovery", tb->name);
        goto out;
    }
    for (s = 0; s < S; s++) {
        r = plan_parse_values(out[s].buf, &vals, &n, err);
        if (r < 0)
            goto out;
        for (i = 0; i < n; i++) {
            /* "<literal>,<count>,<checksum>": the last two fields are numbers. */
            char *c2 = strrchr(vals[i], ','), *comma;
            unsigned long long hash = 0;
            long long rows = 0;
            int idx;
            if (c2)
                *c2 = '\0';
            comma = c2 ? strrchr(vals[i], ',') : NULL;
            if (!comma || chc_parse_ll(comma + 1, 0, (1LL << 62), &rows) < 0 ||
                sscanf(c2 + 1, "%llu", &hash) != 1) {
                r = chc_err_set(err, CHC_EPARSE, "table '%s': unexpected discovery row '%s'",
                                tb->name, vals[i]);
                goto out;
            }
            *comma = '\0';
            idx = add_part(ts, tb->engine->partition_by ? vals[i] : PLAN_UNPARTITIONED, &cap, err);
            if (idx < 0) {
                r = idx;
                goto out;
            }
            if (ts->parts[idx].rows < 0)
                ts->parts[idx].rows = 0;
            ts->parts[idx].rows += rows;
            ts->parts[idx].src_hash += hash;
            ts->parts[idx].on_shard[s] = 1;
            if (rows > ts->parts[idx].max_shard_rows)
                ts->parts[idx].max_shard_rows = rows;
        }
        chc_strv_free(vals, n);
        vals = NULL;
        n = 0;
    }
    r = group_parts(w, ts, err);
    goto out;
oom:
    r = oom(err);
out:
    chc_strv_free(vals, n);
    for (s = 0; sql && out && s < S; s++) {
        chc_buf_release(&sql[s]);
        chc_buf_release(&out[s]);
    }
    free(sql);
    free(out);
    free(sqls);
    return r;
}


static int drop_helpers(struct worker *w, struct tstate *ts, struct chc_err *err);

/* The first worker on a table definition owns its initialisation, under the
 * ephemeral lock <zroot>/init: empty the staging tables (they may hold
 * leftovers of an earlier definition or run), then discover the partitions
 * and publish them. Copying starts only once the partition list exists, so
 * nothing is ever copied into staging before it was emptied. The others
 * wait for the list; if the owner dies, the next one takes over (the marker
 * staging_reset says the tables were already emptied). */
static int table_init(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, lock = CHC_BUF_INIT, out = CHC_BUF_INIT;
    uint64_t waited = 0;
    int r, dropped;

    r = zpath(&path, "%s/partitions", ts->zroot);
    if (r == 0)
        r = zpath(&lock, "%s/init", ts->zroot);
    if (r < 0)
        goto oom;
    for (;;) {
        r = zk_get(w->zs, path.buf, &out, NULL, err);
        if (r == 0) {
            r = parts_load(ts, out.buf, err);
            goto out;
        }
        if (r != CHC_EZK_NONODE)
            goto out;
        r = ephemeral_take(w, lock.buf, err);
        if (r == 0)
            break;
        if (r != CHC_EZK_NODEEXISTS)
            goto out;
        if (waited % 10000 == 0)
            chc_log_info("table '%s': waiting for another worker to discover partitions",
                         ts->tb->name);
        worker_sleep(w, 200);
        waited += 200;
    }
    /* We own the initialisation. */
    r = zk_get(w->zs, path.buf, &out, NULL, err);
    if (r == 0) {
        r = parts_load(ts, out.buf, err);
        goto release;
    }
    chc_buf_reset(&out);
    if (zpath(&out, "%s/staging_reset", ts->zroot) < 0)
        goto oom;
    if (zk_exists(w->zs, out.buf, NULL, err) == CHC_EZK_NONODE) {
        r = drop_helpers(w, ts, err);
        if (r == 0)
            r = staging_sync(w, ts, &dropped, err);
        if (r == 0)
            r = zk_create(w->zs, out.buf, "", 0, ZK_PERSISTENT, NULL, err);
        if (r < 0 && r != CHC_EZK_NODEEXISTS)
            goto release;
    }
    if (!ts->hash_src) /* discovery needs the columns for the source checksums */
        r = staging_sync(w, ts, &dropped, err);
    if (r == 0)
        r = discover_query(w, ts, err);
    if (r < 0)
        goto release;
    chc_buf_reset(&out);
    r = parts_format(ts, &out);
    if (r < 0) {
        r = oom(err);
        goto release;
    }
    r = zk_create(w->zs, path.buf, out.buf, out.len, ZK_PERSISTENT, NULL, err);
release:
    if (zk_delete(w->zs, lock.buf, ZK_ANY_VERSION, NULL) < 0)
        chc_log_debug("cannot release '%s'", lock.buf);
    goto out;
oom:
    r = oom(err);
out:
    chc_buf_release(&path);
    chc_buf_release(&lock);
    chc_buf_release(&out);
    return r;
}

static int is_local_host(const char *host, const char *me)
{
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
           !strcmp(host, me);
}

static int sharding_key_type(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf sql = CHC_BUF_INIT, out = CHC_BUF_INIT;
    size_t s;
    int r = 0;

    if (plan_is_nondeterministic(tb->sharding_key) || tb->push->n_shards == 1)
        return 0;
    for (s = 0; s < tb->pull->n_shards && !ts->key_type; s++) {
        chc_buf_reset(&sql);
        r = chc_buf_addf(&sql, "SELECT toTypeName(%s) FROM ", tb->sharding_key);
        if (r == 0)
            r = chc_buf_add_ident(&sql, tb->database_pull);
        if (r == 0)
            r = chc_buf_addch(&sql, '.');
        if (r == 0)
            r = chc_buf_add_ident(&sql, tb->table_pull);
        if (r == 0)
            r = chc_buf_addstr(&sql, " LIMIT 1 FORMAT TabSeparated");
        if (r < 0) {
            r = oom(err);
            break;
        }
        r = query(w, ts->src_rep[s], 0, sql.buf, &out, err);
        if (r < 0) {
            chc_err_prefix(err, "table '%s': sharding_key '%s'", tb->name, tb->sharding_key);
            break;
        }
        chc_buf_trim(&out);
        if (out.len)
            ts->key_type = chc_strdup(out.buf);
    }
    chc_buf_release(&sql);
    chc_buf_release(&out);
    return r;
}

/* Sync the staging tables with the destination; if some had to be
 * recreated, every partition not yet assembled is copied again. */
static int staging_check(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct chc_buf state = CHC_BUF_INIT;
    size_t i;
    int dropped = 0, r;

    r = staging_sync(w, ts, &dropped, err);
    for (i = 0; r == 0 && dropped && i < ts->n_parts; i++) {
        r = part_state_read(w, ts, i, &state, err);
        if (r == 0 && state.len == 0) {
            r = reset_pieces(w, ts, i, err);
            memset(pdone_at(ts, ts->parts[i].lead, 0), 0,
                   (size_t)ts->splits * ts->tb->pull->n_shards);
        }
    }
    if (r == 0 && dropped)
        chc_log_info("table '%s': staging recreated, partitions not yet assembled will be "
                     "copied again", ts->tb->name);
    chc_buf_release(&state);
    return r;
}

/* Everything about a table task that needs no writes: its ZooKeeper root,
 * source replicas in proximity order, staging nodes, sharding key type. */
static int table_layout(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                        struct chc_err *err)
{
    struct tstate *ts = calloc(1, sizeof(*ts));
    struct chc_buf b = CHC_BUF_INIT;
    int *local = NULL;
    size_t s, i, j;
    int r;

    if (!ts)
        return oom(err);
    ts->w = w;
    ts->tb = tb;
    ts->splits = plan_splits(tb);
    /* Data path: --data-path overrides the task's <data_path>; pull by default. */
    ts->pipe = w->o->data_path ? w->o->data_path == CHC_PATH_PIPE : tb->data_path == CFG_PATH_PIPE;
    r = zpath(&b, "%s/tables/", w->o->task_path);
    if (r == 0)
        r = table_id(tb, &b);
    if (r == 0)
        r = chc_buf_addf(&b, "/%s", tb->def_hash_hex);
    if (r < 0)
        goto oom;
    ts->zroot = chc_buf_take(&b, NULL);
    /* Source replicas: a local one if any, else the first; shards ordered by
     * proximity. */
    ts->src_rep = calloc(tb->pull->n_shards, sizeof(*ts->src_rep));
    ts->order = calloc(tb->pull->n_shards, sizeof(*ts->order));
    local = calloc(tb->pull->n_shards, sizeof(*local));
    if (!ts->src_rep || !ts->order || !local)
        goto oom;
    for (s = 0; s < tb->pull->n_shards; s++) {
        ts->src_rep[s] = &tb->pull->shards[s].replicas[0];
        for (j = 0; j < tb->pull->shards[s].n_replicas; j++)
            if (is_local_host(tb->pull->shards[s].replicas[j].host, w->host)) {
                local[s] = 1;
                ts->src_rep[s] = &tb->pull->shards[s].replicas[j];
            }
    }
    plan_shard_order(tb->pull, w->host, local, ts->order);
    /* Staging nodes: replicated destination -> first replica of each shard;
     * otherwise every replica holds its own copy. */
    for (i = 0; i < tb->push->n_shards; i++)
        ts->n_targets += tb->engine->replicated ? 1 : tb->push->shards[i].n_replicas;
    ts->targets = calloc(ts->n_targets, sizeof(*ts->targets));
    if (!ts->targets)
        goto oom;
    ts->n_targets = 0;
    for (i = 0; i < tb->push->n_shards; i++)
        for (j = 0; j < (tb->engine->replicated ? 1 : tb->push->shards[i].n_replicas); j++) {
            ts->targets[ts->n_targets].shard = i;
            ts->targets[ts->n_targets].rep = &tb->push->shards[i].replicas[j];
            ts->n_targets++;
        }
    r = sharding_key_type(w, ts, err);
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
    tstate_free(ts);
    return r;
}

static int table_prepare(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                         struct chc_err *err)
{
    struct tstate *ts = NULL;
    struct chc_buf b = CHC_BUF_INIT;
    int r;

    r = table_layout(w, tb, &ts, err);
    if (r < 0)
        return r;
    r = zk_create_parents(w->zs, ts->zroot, err);
    if (r < 0)
        goto fail;
    r = zpath(&b, "%s/parts", ts->zroot);
    if (r == 0)
        r = zk_create_parents(w->zs, b.buf, err);
    if (r == 0)
        r = zpath(&b, "%s/locks", ts->zroot);
    if (r == 0)
        r = zk_create_parents(w->zs, b.buf, err);
    if (r < 0)
        goto fail;
    r = zpath(&b, "%s/done", ts->zroot);
    if (r == 0 && zk_exists(w->zs, b.buf, NULL, err) == 0) {
        ts->finished = 1;
        goto done;
    }
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
    if (!ts->pdone || !ts->pbusy || !ts->pnext || !ts->pfails) {
        r = oom(err);
        goto fail;
    }
    r = staging_check(w, ts, err);
    if (r < 0)
        goto fail;
done:
    chc_buf_release(&b);
    *ret = ts;
    return 0;
fail:
    chc_buf_release(&b);
    tstate_free(ts);
    return r;
}

/* ------------------------------------------------------------------------ */
/* SQL for one piece                                                        */
/* ------------------------------------------------------------------------ */

static int add_remote(struct chc_buf *b, const struct cfg_table *tb, const struct cfg_replica *src)
{
    int r;

    r = chc_buf_addf(b, "%s('%s:%d', ", src->secure ? "remoteSecure" : "remote", src->host,
                     src->port);
    if (r == 0)
        r = chc_buf_add_sqlstr(b, tb->database_pull);
    if (r == 0)
        r = chc_buf_addstr(b, ", ");
    if (r == 0)
        r = chc_buf_add_sqlstr(b, tb->table_pull);
    if (r == 0 && src->user) {
        r = chc_buf_addstr(b, ", ");
        if (r == 0)
            r = chc_buf_add_sqlstr(b, src->user);
        if (r == 0)
            r = chc_buf_addstr(b, ", ");
        if (r == 0)
            r = chc_buf_add_sqlstr(b, src->password ? src->password : "");
    }
    if (r == 0)
        r = chc_buf_addch(b, ')');
    return r;
}

/* The rows of every partition of the group led by `lead`. */
static int group_filter(const struct tstate *ts, size_t lead, struct chc_buf *b)
{
    const char *lits[GROUP_MAX];
    size_t i, n = ts->parts[lead].n_group;

    if (n < 1 || n > GROUP_MAX)
        CHC_BUG("partition group of %zu members", n);
    for (i = 0; i < n; i++)
        lits[i] = ts->parts[lead + i].lit;
    return plan_partition_set_filter(ts->tb, lits, n, b);
}

/* WHERE clause body for (partition group, piece k) [and destination shard]. */
static int piece_where(const struct tstate *ts, size_t part, unsigned k, int dshard,
                       struct chc_buf *b, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    int r;

    r = chc_buf_addch(b, '(');
    if (r == 0)
        r = group_filter(ts, part, b);
    if (r == 0)
        r = chc_buf_addstr(b, ") AND (");
    if (r == 0)
        r = plan_piece_filter(tb, ts->parts[part].splits, k, b);
    if (r == 0)
        r = chc_buf_addch(b, ')');
    if (r == 0 && dshard >= 0) {
        r = chc_buf_addstr(b, " AND (");
        if (r == 0) {
            r = plan_route_filter(tb, ts->key_type, (size_t)dshard, b, err);
            if (r < 0)
                return r;
        }
        if (r == 0)
            r = chc_buf_addch(b, ')');
    }
    if (r == 0 && tb->where_condition)
        r = chc_buf_addf(b, " AND (%s)", tb->where_condition);
    return r < 0 ? oom(err) : 0;
}

static int copy_sql(const struct tstate *ts, size_t part, unsigned k, size_t shard,
                    const struct target *t, struct chc_buf *b, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf name = CHC_BUF_INIT;
    int r;

    r = plan_piece_table(tb, k, &name);
    if (r == 0)
        r = chc_buf_addstr(b, "INSERT INTO ");
    if (r == 0)
        r = add_table_ref(b, tb->database_push, name.buf);
    if (r == 0)
        r = chc_buf_addf(b, " (%s) SELECT %s FROM ", ts->copy_cols, ts->copy_cols);
    if (r == 0)
        r = add_remote(b, tb, ts->src_rep[shard]);
    if (r == 0)
        r = chc_buf_addstr(b, " WHERE ");
    chc_buf_release(&name);
    if (r < 0)
        return oom(err);
    return piece_where(ts, part, k, (int)t->shard, b, err);
}

static int query_id(const struct tstate *ts, size_t part, unsigned k, struct chc_buf *b)
{
    return chc_buf_addf(b, "chc-%.8s-%.12s-%u-", ts->tb->def_hash_hex, ts->parts[part].hash, k);
}

/* Kill stray copies of (group, k) and drop the group's staging partitions
 * everywhere. */
static int clean_piece(struct worker *w, struct tstate *ts, size_t part, unsigned k,
                       struct chc_err *err)
{
    const struct cfg_replica **treps = NULL;
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT;
    size_t i;
    int r;

    if (w->o->safe_mode)
        return chc_err_set(err, CHC_ESTATE,
                           "piece %u of partition %s needs cleaning but --safe-mode forbids "
                           "DROP PARTITION",
                           k, ts->parts[part].lit);
    if (target_reps(ts, &treps) < 0)
        return oom(err);
    r = chc_buf_addstr(&sql, "KILL QUERY WHERE query_id LIKE '");
    if (r == 0)
        r = query_id(ts, part, k, &sql);
    if (r == 0)
        r = chc_buf_addstr(&sql, "%' SYNC");
    if (r < 0)
        goto oom;
    r = fanout(w, treps, ts->n_targets, sql.buf, err);
    if (r < 0)
        goto out;
    fault_point(w, "during_cleanup");
    r = plan_piece_table(ts->tb, k, &name);
    if (r < 0)
        goto oom;
    /* DROP PARTITION of every partition of the group on every staging node
     * (multi_query bounds how many run at once). ClickHouse has no IF EXISTS
     * here; a missing partition is fine. */
    {
        size_t ng = ts->parts[part].n_group, nq = ng * ts->n_targets, q = 0, t;
        struct chc_buf *stmt = calloc(ng, sizeof(*stmt));
        const struct cfg_replica **reps = calloc(nq, sizeof(*reps));
        const char **sqls = calloc(nq, sizeof(*sqls));

        for (i = 0; stmt && i < ng; i++)
            chc_buf_init(&stmt[i], 0);
        r = stmt && reps && sqls ? 0 : -ENOMEM;
        for (i = 0; r == 0 && i < ng; i++) {
            r = chc_buf_addstr(&stmt[i], "ALTER TABLE ");
            if (r == 0)
                r = add_table_ref(&stmt[i], ts->tb->database_push, name.buf);
            if (r == 0)
                r = chc_buf_addstr(&stmt[i], " DROP ");
            if (r == 0)
                r = plan_partition_clause(ts->parts[part + i].lit, &stmt[i]);
            for (t = 0; r == 0 && t < ts->n_targets; t++) {
                reps[q] = ts->targets[t].rep;
                sqls[q++] = stmt[i].buf;
            }
        }
        if (r < 0)
            r = oom(err);
        else
            r = multi_query(w, reps, q, sqls, NULL, NULL, NULL, err);
        for (i = 0; stmt && i < ng; i++)
            chc_buf_release(&stmt[i]);
        free(stmt);
        free(reps);
        free(sqls);
    }
    goto out;
oom:
    r = oom(err);
out:
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    return r;
}

/* ------------------------------------------------------------------------ */
/* jobs                                                                     */
/* ------------------------------------------------------------------------ */

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
    lock_release(j->w, &j->lock_path);
    lock_release(j->w, &j->slot_path);
    free(j);
}

/* Pipe path: "SELECT <columns> FROM <source> WHERE <piece and route>" on
 * the source replica, streamed through this process into
 * "INSERT INTO <piece table> (<columns>) FORMAT Native" on the staging node. */
static int pipe_sqls(const struct tstate *ts, size_t part, unsigned k, const struct target *t,
                     struct chc_buf *sel, struct chc_buf *ins, struct chc_err *err)
{
    struct chc_buf name = CHC_BUF_INIT;
    int r;

    r = chc_buf_addf(sel, "SELECT %s FROM ", ts->copy_cast);
    if (r == 0)
        r = add_table_ref(sel, ts->tb->database_pull, ts->tb->table_pull);
    if (r == 0)
        r = chc_buf_addstr(sel, " WHERE ");
    if (r == 0)
        r = piece_where(ts, part, k, (int)t->shard, sel, err);
    if (r == 0)
        r = chc_buf_addstr(sel, " FORMAT Native");
    if (r == 0)
        r = plan_piece_table(ts->tb, k, &name);
    if (r == 0)
        r = chc_buf_addstr(ins, "INSERT INTO ");
    if (r == 0)
        r = add_table_ref(ins, ts->tb->database_push, name.buf);
    if (r == 0)
        r = chc_buf_addf(ins, " (%s) FORMAT Native", ts->copy_cols);
    chc_buf_release(&name);
    return r < 0 && r != CHC_ECONFIG ? oom(err) : r;
}

static int job_start_pipe(struct worker *w, struct job *j, struct chc_err *err)
{
    struct tstate *ts = j->ts;
    struct chc_buf sel = CHC_BUF_INIT, ins = CHC_BUF_INIT, qid = CHC_BUF_INIT;
    struct ch_pipe_params pp;
    size_t t;
    int r = 0;

    j->pp = calloc(ts->n_targets, sizeof(*j->pp));
    if (!j->pp)
        return oom(err);
    j->t0 = now_ms();
    for (t = 0; t < ts->n_targets; t++) {
        chc_buf_reset(&sel);
        chc_buf_reset(&ins);
        chc_buf_reset(&qid);
        r = pipe_sqls(ts, j->part, j->k, &ts->targets[t], &sel, &ins, err);
        if (r == 0)
            r = query_id(ts, j->part, j->k, &qid) < 0 ||
                        chc_buf_addf(&qid, "%zu-%zu-%08x", j->shard + 1, t, (unsigned)rand()) < 0
                    ? oom(err)
                    : 0;
        if (r < 0)
            break;
        memset(&pp, 0, sizeof(pp));
        params_init(&pp.src, ts->src_rep[j->shard], sel.buf, w->task, 0);
        params_init(&pp.dst, ts->targets[t].rep, ins.buf, w->task, 1);
        pp.src.query_id = qid.buf;
        pp.dst.query_id = qid.buf;
        if (w->o->copy_fault_probability > 0 &&
            (double)rand() / RAND_MAX < w->o->copy_fault_probability) {
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
    chc_buf_release(&sel);
    chc_buf_release(&ins);
    chc_buf_release(&qid);
    return r;
}

static int job_start(struct worker *w, struct job *j, struct chc_err *err)
{
    struct tstate *ts = j->ts;
    struct chc_buf sql = CHC_BUF_INIT, qid = CHC_BUF_INIT;
    struct ch_query_params p;
    size_t t;
    int r = 0;

    if (ts->pipe)
        return job_start_pipe(w, j, err);
    j->q = calloc(ts->n_targets, sizeof(*j->q));
    if (!j->q)
        return oom(err);
    j->t0 = now_ms();
    for (t = 0; t < ts->n_targets; t++) {
        chc_buf_reset(&sql);
        chc_buf_reset(&qid);
        r = copy_sql(ts, j->part, j->k, j->shard, &ts->targets[t], &sql, err);
        if (r < 0)
            break;
        r = query_id(ts, j->part, j->k, &qid);
        if (r == 0)
            r = chc_buf_addf(&qid, "%zu-%zu-%08x", j->shard + 1, t, (unsigned)rand());
        if (r < 0) {
            r = oom(err);
            break;
        }
        if (w->o->copy_fault_probability > 0 &&
            (double)rand() / RAND_MAX < w->o->copy_fault_probability) {
            /* The original's test hook: a copy that fails after sending a few rows. */
            r = chc_buf_addstr(&sql, " LIMIT 1");
            if (r < 0)
                break;
            j->failed = 1;
            chc_err_set(&j->err, CHC_EFAULT_INJECTED, "copy fault injected");
        }
        params_init(&p, ts->targets[t].rep, sql.buf, w->task, 1);
        p.query_id = qid.buf;
        p.timeout_ms = 0;
        /* remote() carries the source password: never let it reach a log. */
        p.redact[0] = ts->src_rep[j->shard]->password;
        if (chc_log__level >= CHC_LOG_TRACE && !ts->src_rep[j->shard]->password)
            chc_log_trace("%s: %s", ts->targets[t].rep->host, sql.buf);
        r = ch_query_start(w->ch, &p, job_cb, j, &j->q[t], err);
        if (r < 0)
            break;
        j->n_q++;
        j->pending++;
    }
    chc_buf_release(&sql);
    chc_buf_release(&qid);
    return r;
}

/* Claim (part, shard, k) and start its copy. 1 started, 0 not claimable. */
static int try_piece(struct worker *w, struct tstate *ts, size_t part, size_t shard, unsigned k,
                     struct chc_err *err)
{
    const struct chc_log_fields lf = {ts->tb->name, ts->parts[part].lit, (int)k, (int)shard + 1,
                                      "claim", -1, -1, -1.0, NULL};
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    struct job *j = NULL;
    char kbuf[16];
    size_t s;
    int r, any_done = 0;

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
    snprintf(kbuf, sizeof(kbuf), "%u", k);
    r = lock_take(w, ts, part, kbuf, &j->lock_path, err);
    if (r == CHC_EZK_NODEEXISTS) {
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    r = piece_read(w, ts, part, k, &ps, err);
    if (r < 0)
        goto out;
    memcpy(pdone_at(ts, part, k), ps.done, ts->tb->pull->n_shards);
    if (ps.done[shard]) {
        r = 0; /* someone finished it meanwhile */
        goto out;
    }
    r = slot_take(w, &j->slot_path, err);
    if (r < 0)
        goto out; /* CHC_EBUSY: every max_workers slot is taken */
    fault_point(w, "after_claim");
    for (s = 0; s < ts->tb->pull->n_shards; s++)
        any_done |= ps.done[s];
    /* A piece nobody ever started holds nothing in staging: the staging
     * tables were emptied when this definition's state was created
     * (table_init). Anything else with no shard done may hold strays. */
    if (ps.exists && (ps.started >= 0 || !any_done)) {
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
    r = piece_write(w, ts, part, k, &ps, err);
    if (r < 0)
        goto out;
    chc_log_at(CHC_LOG_INFO, &lf, "claimed, copying");
    r = job_start(w, j, err);
    if (r < 0) {
        /* Transfers that did start are cancelled; the piece stays dirty. */
        job_cancel(w, j);
        goto out;
    }
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
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT, out = CHC_BUF_INIT;
    size_t t, last = (size_t)-1;
    long long total = 0, n;
    int r = plan_piece_table(ts->tb, k, &name);

    for (t = 0; r == 0 && t < ts->n_targets; t++) {
        if (ts->targets[t].shard == last)
            continue;
        last = ts->targets[t].shard;
        chc_buf_reset(&sql);
        r = chc_buf_addstr(&sql, "SELECT count() FROM ");
        if (r == 0)
            r = add_table_ref(&sql, ts->tb->database_push, name.buf);
        if (r == 0)
            r = chc_buf_addstr(&sql, " WHERE ");
        if (r == 0)
            r = group_filter(ts, part, &sql);
        if (r < 0) {
            r = oom(err);
            break;
        }
        r = query(w, ts->targets[t].rep, 1, sql.buf, &out, err);
        if (r == 0 && chc_parse_ll(out.buf, 0, (1LL << 62), &n) < 0)
            r = chc_err_set(err, CHC_EPARSE, "unexpected count '%.40s'", out.buf);
        if (r == 0)
            total += n;
    }
    if (r == 0)
        *ret = total;
    chc_buf_release(&sql);
    chc_buf_release(&name);
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
        chc_log_at(CHC_LOG_WARN, &lf, "copy failed, the piece is dirty and will be redone: %s",
                   j->err.msg);
        /* For `status`: the piece's last error (best effort, version-checked). */
        if (piece_read(w, ts, j->part, j->k, &ps, NULL) == 0 && ps.exists) {
            snprintf(ps.error, sizeof(ps.error), "source shard %zu: %.200s", j->shard + 1,
                     j->err.msg);
            if (piece_write(w, ts, j->part, j->k, &ps, NULL) < 0)
                chc_log_debug("cannot record the piece's error, ignoring");
        }
        r = j->err.code ? j->err.code : CHC_ECH_EXCEPTION;
        chc_err_set(err, r, "%s", j->err.msg);
        goto out;
    }
    fault_point(w, "after_insert");
    r = piece_read(w, ts, j->part, j->k, &ps, err);
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
    r = piece_write(w, ts, j->part, j->k, &ps, err);
    if (r == 0)
        memcpy(pdone_at(ts, j->part, j->k), ps.done, ts->tb->pull->n_shards);
    if (r == 0) {
        metric(w, ts, CHC_METRIC_ROWS_COPIED, NULL, NULL, (double)lf.rows, 0);
        w->rows_copied += (unsigned long long)(lf.rows > 0 ? lf.rows : 0);
        w->bytes_copied += j->bytes;
        if (ts->pipe)
            metric(w, ts, CHC_METRIC_BYTES_COPIED, NULL, NULL, (double)j->bytes, 0);
        lf.bytes = ts->pipe ? (long long)j->bytes : -1;
        chc_log_at(CHC_LOG_INFO, &lf, "piece copied: %lld rows in %.2f s", lf.rows, lf.duration);
    }
out:
    free(done);
    return r;
}

/* ------------------------------------------------------------------------ */
/* partition move                                                           */
/* ------------------------------------------------------------------------ */

/* Partitions moved together (one round of statements per step). */
#define MOVE_BATCH 32

struct sums {
    unsigned long long rows;
    unsigned long long hash;
};

/* Count [and checksum] of n partitions in one statement:
 * "SELECT multiIf(<p> = a, 1, <p> = b, 2, ..., 0) AS _i, count()[, sum(hash)]
 *  FROM <db.table> WHERE <p> IN (a, b, ...)[ AND where] GROUP BY _i"
 * (partitions without rows give no line). */
static int sums_sql(const struct tstate *ts, const size_t *parts, size_t n, const char *db,
                    const char *table, const char *hash, int with_where, struct chc_buf *b)
{
    const char *lits[MOVE_BATCH];
    size_t i;
    int r;

    if (n < 1 || n > MOVE_BATCH)
        CHC_BUG("checksum query over %zu partitions", n);
    chc_buf_reset(b);
    r = chc_buf_addstr(b, n == 1 ? "SELECT 1" : "SELECT multiIf(");
    for (i = 0; r == 0 && n > 1 && i < n; i++) {
        r = plan_partition_filter(ts->tb, ts->parts[parts[i]].lit, b);
        if (r == 0)
            r = chc_buf_addf(b, ", %zu, ", i + 1);
    }
    if (r == 0 && n > 1)
        r = chc_buf_addstr(b, "0)");
    if (r == 0)
        r = chc_buf_addstr(b, " AS _i, count()");
    if (r == 0 && hash)
        r = chc_buf_addf(b, ", ifNull(sum(%s), 0)", hash);
    if (r == 0)
        r = chc_buf_addstr(b, " FROM ");
    if (r == 0)
        r = add_table_ref(b, db, table);
    if (r == 0)
        r = chc_buf_addstr(b, " WHERE (");
    for (i = 0; i < n; i++)
        lits[i] = ts->parts[parts[i]].lit;
    if (r == 0)
        r = plan_partition_set_filter(ts->tb, lits, n, b);
    if (r == 0)
        r = chc_buf_addch(b, ')');
    if (r == 0 && with_where && ts->tb->where_condition)
        r = chc_buf_addf(b, " AND (%s)", ts->tb->where_condition);
    if (r == 0)
        r = chc_buf_addstr(b, " GROUP BY _i FORMAT TabSeparated");
    return r;
}

/* Sums of a batch of partitions, queried on many nodes at once (one
 * statement per node for the whole batch) and added up per partition: the
 * source (every shard that has any of them, columns cast to the
 * destination's types) and destination-side tables (one staging node per
 * destination shard; the others hold copies). */
#define SUMS_MAX 256

struct sums_batch {
    size_t n;
    const struct cfg_replica *reps[SUMS_MAX];
    struct chc_buf sql[SUMS_MAX];
    const char *sqls[SUMS_MAX];
    int push[SUMS_MAX];
    int with_hash[SUMS_MAX];
    struct sums **acc[SUMS_MAX]; /* per node: partition i's accumulator */
    size_t n_acc[SUMS_MAX];
};

static void sums_batch_init(struct sums_batch *b)
{
    size_t i;

    b->n = 0;
    for (i = 0; i < SUMS_MAX; i++) {
        chc_buf_init(&b->sql[i], 0);
        b->acc[i] = NULL;
    }
}

static void sums_batch_release(struct sums_batch *b)
{
    size_t i;

    for (i = 0; i < SUMS_MAX; i++) {
        chc_buf_release(&b->sql[i]);
        free(b->acc[i]);
        b->acc[i] = NULL;
    }
    b->n = 0;
}

/* Partitions parts[0..n) into accumulators acc[0..n); table == NULL: the
 * source. */
static int sums_batch_add(struct sums_batch *b, const struct tstate *ts, const size_t *parts,
                          struct sums *const *acc, size_t n, const char *table, int with_hash,
                          struct chc_err *err)
{
    size_t nodes = table ? ts->n_targets : ts->tb->pull->n_shards, i, j, last = (size_t)-1;
    int r = 0;

    if (n == 0)
        return 0;
    for (i = 0; r == 0 && i < nodes; i++) {
        int any = 0;
        if (!table) {
            for (j = 0; j < n; j++)
                any |= ts->parts[parts[j]].on_shard[i];
            if (!any)
                continue;
        }
        if (table && ts->targets[i].shard == last)
            continue;
        if (b->n == SUMS_MAX)
            return chc_err_set(err, CHC_ETOOBIG, "too many nodes for one checksum round");
        if (table) {
            last = ts->targets[i].shard;
            b->reps[b->n] = ts->targets[i].rep;
            r = sums_sql(ts, parts, n, ts->tb->database_push, table,
                         with_hash ? ts->hash_dst : NULL, 0, &b->sql[b->n]);
        } else {
            b->reps[b->n] = ts->src_rep[i];
            r = sums_sql(ts, parts, n, ts->tb->database_pull, ts->tb->table_pull,
                         with_hash ? ts->hash_src : NULL, 1, &b->sql[b->n]);
        }
        b->sqls[b->n] = b->sql[b->n].buf;
        b->push[b->n] = table != NULL;
        b->with_hash[b->n] = with_hash;
        free(b->acc[b->n]);
        b->acc[b->n] = malloc(n * sizeof(*b->acc[b->n]));
        if (!b->acc[b->n])
            return oom(err);
        for (j = 0; j < n; j++)
            b->acc[b->n][j] = acc[j];
        b->n_acc[b->n] = n;
        b->n++;
    }
    return r < 0 ? oom(err) : 0;
}

static int sums_batch_run(struct worker *w, struct sums_batch *b, struct chc_err *err)
{
    struct chc_buf out[SUMS_MAX];
    size_t i;
    int r;

    for (i = 0; i < b->n; i++)
        chc_buf_init(&out[i], 0);
    r = multi_query(w, b->reps, b->n, b->sqls, NULL, out, b->push, err);
    for (i = 0; r == 0 && i < b->n; i++) {
        const char *line = out[i].buf;
        while (r == 0 && *line) {
            unsigned long long a = 0, h = 0;
            size_t idx = 0;
            int want = b->with_hash[i] ? 3 : 2;
            if (sscanf(line, b->with_hash[i] ? "%zu\t%llu\t%llu" : "%zu\t%llu", &idx, &a, &h) !=
                    want ||
                idx < 1 || idx > b->n_acc[i]) {
                r = chc_err_set(err, CHC_EPARSE, "unexpected answer to a checksum query: '%.60s'",
                                line);
                break;
            }
            b->acc[i][idx - 1]->rows += a;
            b->acc[i][idx - 1]->hash += h;
            line = strchr(line, '\n');
            line = line ? line + 1 : "";
        }
    }
    for (i = 0; i < b->n; i++)
        chc_buf_release(&out[i]);
    return r;
}

/* All pieces of the partition's group copied from every shard that has
 * rows for it? */
static int part_ready(struct worker *w, struct tstate *ts, size_t part, struct chc_err *err)
{
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    unsigned k;
    size_t s;
    int r = 1;

    if (!done)
        return oom(err);
    part = ts->parts[part].lead;
    for (k = 0; r == 1 && k < ts->parts[part].splits; k++) {
        int rr = piece_read(w, ts, part, k, &ps, err);
        if (rr < 0) {
            r = rr;
            break;
        }
        if (ps.started >= 0)
            r = 0;
        for (s = 0; r == 1 && s < ts->tb->pull->n_shards; s++)
            if (group_on_shard(ts, part, s) && !ps.done[s])
                r = 0;
    }
    free(done);
    return r;
}

/* Forget every copied piece of the partition's group: it is copied again
 * (members already moved ignore their new staging rows). */
static int reset_pieces(struct worker *w, struct tstate *ts, size_t part, struct chc_err *err)
{
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    unsigned k;
    int r = 0;

    if (!done)
        return oom(err);
    part = ts->parts[part].lead;
    for (k = 0; r == 0 && k < ts->parts[part].splits; k++) {
        r = piece_read(w, ts, part, k, &ps, err);
        if (r == 0) {
            memset(ps.done, 0, ts->tb->pull->n_shards);
            ps.started = -1;
            ps.rows = 0;
            r = piece_write(w, ts, part, k, &ps, err);
        }
    }
    free(done);
    return r;
}

/* One partition in a batch of moves. */
struct mv {
    size_t part;
    char *lock;
    struct chc_buf state;
    struct sums src, before, staged, after;
    unsigned long long exp_rows, exp_hash;
    int again;    /* an earlier attempt died while assembling */
    int active;   /* still going in this batch */
    int assemble; /* needs assembling in this attempt */
    int replace;  /* needs the REPLACE (not yet recorded moved) */
};


static void mv_fail(struct worker *w, struct tstate *ts, struct mv *m, const struct chc_err *e,
                    unsigned *move_failures)
{
    chc_log_warn("table '%s': move of partition %s failed: %s, retrying", ts->tb->name,
                 ts->parts[m->part].lit, e->msg);
    metric(w, ts, CHC_METRIC_ERRORS, "kind", chc_err_name(e->code), 1, 0);
    (*move_failures)++;
    m->active = 0;
}

/* Fencing before each round of ALTERs: ClickHouse cannot check a ZooKeeper
 * lock, so a mover that was stalled (SIGSTOP, a long pause) past its
 * session must find out before it touches a table. A synchronous check
 * right before the round fails with the expired session; any partition
 * whose move lock is no longer ours leaves the batch. */
static int mv_owned(struct worker *w, struct mv *mv, size_t n, struct chc_err *err)
{
    int64_t me = zk_session_id(w->zs);
    struct zk_stat st;
    size_t i;
    int r;

    for (i = 0; i < n; i++) {
        if (!mv[i].active || !mv[i].lock)
            continue;
        r = zk_exists(w->zs, mv[i].lock, &st, err);
        if (r == CHC_EZK_EXPIRED || r == CHC_EZK_CONNLOSS)
            return r;
        if (r < 0 || st.ephemeral_owner != me) {
            chc_log_warn("lost the move lock '%s': leaving the partition to its new owner",
                         mv[i].lock);
            mv[i].active = 0;
        }
    }
    return 0;
}

enum mv_step {
    MV_DROP_ASSEMBLY, /* (again) ALTER <assembly> DROP PARTITION p */
    MV_ATTACH_DEST,   /* ALTER <assembly> ATTACH PARTITION p FROM <destination> */
    MV_ATTACH_PIECES, /* ALTER <assembly> ATTACH PARTITION p FROM <piece k>, every k */
    MV_REPLACE,       /* ALTER <destination> REPLACE PARTITION p FROM <assembly> */
};

/* One step for every partition of the batch it applies to, on every staging
 * node, all statements at once. */
static int mv_step(struct worker *w, struct tstate *ts, struct mv *mv, size_t n,
                   enum mv_step step, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    size_t cap = n * ts->n_targets * (ts->splits + 1) + 1, q = 0, i, t;
    const struct cfg_replica **reps = calloc(cap, sizeof(*reps));
    struct chc_buf *sql = calloc(cap, sizeof(*sql));
    const char **sqls = calloc(cap, sizeof(*sqls));
    struct chc_buf tbl = CHC_BUF_INIT, from = CHC_BUF_INIT;
    unsigned k, nk;
    int r = 0;

    if (!reps || !sql || !sqls) {
        r = oom(err);
        goto out;
    }
    for (i = 0; r == 0 && i < n; i++) {
        const struct mv *m = &mv[i];
        int applies = m->active && (step == MV_DROP_ASSEMBLY   ? m->assemble && m->again
                                    : step == MV_ATTACH_DEST   ? m->assemble && m->before.rows > 0
                                    : step == MV_ATTACH_PIECES ? m->assemble
                                    : step == MV_REPLACE       ? m->replace
                                                               : 1);
        if (!applies)
            continue;
        nk = step == MV_ATTACH_PIECES ? ts->parts[m->part].splits : 1;
        for (k = 0; r == 0 && k < nk; k++) {
            chc_buf_reset(&tbl);
            chc_buf_reset(&from);
            switch (step) {
            case MV_DROP_ASSEMBLY:
                r = plan_assembly_table(tb, &tbl);
                break;
            case MV_ATTACH_DEST:
                r = plan_assembly_table(tb, &tbl);
                if (r == 0)
                    r = chc_buf_addstr(&from, tb->table_push);
                break;
            case MV_ATTACH_PIECES:
                r = plan_assembly_table(tb, &tbl);
                if (r == 0)
                    r = plan_piece_table(tb, k, &from);
                break;
            case MV_REPLACE:
                r = chc_buf_addstr(&tbl, tb->table_push);
                if (r == 0)
                    r = plan_assembly_table(tb, &from);
                break;
            }
            for (t = 0; r == 0 && t < ts->n_targets; t++) {
                chc_buf_init(&sql[q], 0);
                r = chc_buf_addstr(&sql[q], "ALTER TABLE ");
                if (r == 0)
                    r = add_table_ref(&sql[q], tb->database_push, tbl.buf);
                if (r == 0)
                    r = chc_buf_addstr(&sql[q],
                                       step == MV_DROP_ASSEMBLY ? " DROP "
                                       : step == MV_REPLACE ? " REPLACE "
                                                            : " ATTACH ");
                if (r == 0)
                    r = plan_partition_clause(ts->parts[m->part].lit, &sql[q]);
                if (r == 0 && from.len) {
                    r = chc_buf_addstr(&sql[q], " FROM ");
                    if (r == 0)
                        r = add_table_ref(&sql[q], tb->database_push, from.buf);
                }
                reps[q] = ts->targets[t].rep;
                sqls[q] = sql[q].buf;
                q++;
            }
        }
    }
    if (r < 0)
        r = oom(err);
    else if (q > 0)
        r = multi_query(w, reps, q, sqls, NULL, NULL, NULL, err);
out:
    for (i = 0; sql && i < q; i++)
        chc_buf_release(&sql[i]);
    free(reps);
    free(sql);
    free(sqls);
    chc_buf_release(&tbl);
    chc_buf_release(&from);
    return r;
}

/* "<what> <rows> <checksum>" for every active partition of the batch (only
 * those still to REPLACE when replace_only), one ZooKeeper transaction. */
static int mv_record(struct worker *w, struct tstate *ts, struct mv *mv, size_t n,
                     const char *what, int replace_only, struct chc_err *err)
{
    char lines[MOVE_BATCH][80];
    const char *states[MOVE_BATCH];
    size_t parts[MOVE_BATCH], i, np = 0;

    for (i = 0; i < n; i++) {
        if (!mv[i].active || (replace_only && !mv[i].replace))
            continue;
        snprintf(lines[np], sizeof(lines[np]), "%s %llu %llu", what, mv[i].exp_rows,
                 mv[i].exp_hash);
        states[np] = lines[np];
        parts[np++] = mv[i].part;
    }
    return part_states_write(w, ts, parts, states, np, err);
}

/* Move up to MOVE_BATCH complete partitions together (docs/design.md):
 *   1. under each partition's move lock: the source's sums (from discovery)
 *      and what the destination holds (append mode);
 *   2. assemble in <table>_assembly on every staging node: the destination's
 *      rows (append mode) and every piece, by ATTACH — a snapshot nobody else
 *      writes to; its count must be destination + source; record
 *      "assembled <rows> <checksum>";
 *   3. REPLACE PARTITION ... FROM the assembly, for all at once (idempotent,
 *      so a partial failure is simply repeated); record "moved";
 *   4. verify every destination partition's count and checksum;
 *   5. drop their piece partitions; record "done". The assembly keeps its
 *      partition (hard links to the same parts) until the table is done, so
 *      a stalled mover that wakes up late and repeats the REPLACE still
 *      replaces with the same rows, never with nothing.
 * Each step is one round of concurrent statements for the whole batch.
 * Returns the number of partitions moved, or < 0. */
static int move_batch(struct worker *w, struct tstate *ts, const size_t *parts, size_t n,
                      unsigned *move_failures, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct mv mv[MOVE_BATCH];
    struct sums_batch batch;
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf asm_name = CHC_BUF_INIT;
    uint64_t t0 = now_ms(), ts_[8] = {0};
    size_t i, active = 0, assembling = 0, bparts[MOVE_BATCH], src_parts[MOVE_BATCH];
    struct sums *bacc[MOVE_BATCH], *src_acc[MOVE_BATCH];
    const char *states[MOVE_BATCH];
    int r = 0, moved = 0;
#define MV_MARK(i) (ts_[i] = now_ms())

    memset(mv, 0, sizeof(mv));
    sums_batch_init(&batch);
    for (i = 0; i < n && i < MOVE_BATCH; i++) {
        struct mv *m = &mv[i];
        chc_buf_init(&m->state, 0);
        m->part = parts[i];
        r = lock_take(w, ts, m->part, "move", &m->lock, err);
        if (r == CHC_EZK_NODEEXISTS)
            continue; /* another worker moves it */
        if (r == 0)
            r = part_state_read(w, ts, m->part, &m->state, err);
        if (r < 0)
            goto out;
        if (!strncmp(m->state.buf, "done", 4)) {
            ts->parts[m->part].done = 1;
            continue;
        }
        r = part_ready(w, ts, m->part, err);
        if (r < 0)
            goto out;
        if (r == 0)
            continue;
        m->active = 1;
        m->again = !strcmp(m->state.buf, "assembling");
        m->assemble = strncmp(m->state.buf, "assembled", 9) && strncmp(m->state.buf, "moved", 5);
        active++;
        assembling += (size_t)m->assemble;
    }
    n = i;
    r = 0;
    if (!active)
        goto out;
    MV_MARK(0);
    if (plan_assembly_table(tb, &asm_name) < 0)
        goto oom;
    if (assembling) {
        /* 1. Sums, one round: the source's (unless discovery has them) and
         * what the destination holds (append mode). */
        size_t np = 0, ns = 0;
        for (i = 0; i < n; i++) {
            struct mv *m = &mv[i];
            if (!m->active || !m->assemble)
                continue;
            if (ts->parts[m->part].rows >= 0 && ts->sums_key && ts->sums_key == sums_key_of(ts)) {
                m->src.rows = (unsigned long long)ts->parts[m->part].rows;
                m->src.hash = ts->parts[m->part].src_hash;
            } else {
                src_parts[ns] = m->part;
                src_acc[ns++] = &m->src;
            }
            bparts[np] = m->part;
            bacc[np++] = &m->before;
        }
        r = sums_batch_add(&batch, ts, src_parts, src_acc, ns, NULL, 1, err);
        if (r == 0 && !tb->allow_drop_target_partitions)
            r = sums_batch_add(&batch, ts, bparts, bacc, np, tb->table_push, 1, err);
        if (r == 0 && batch.n)
            r = sums_batch_run(w, &batch, err);
        if (r < 0)
            goto out;
        MV_MARK(1);
        /* 2. Assemble, count, record. */
        np = 0;
        for (i = 0; i < n; i++)
            if (mv[i].active && mv[i].assemble && !mv[i].again) {
                bparts[np] = mv[i].part;
                states[np++] = "assembling";
            }
        r = part_states_write(w, ts, bparts, states, np, err);
        if (r < 0)
            goto out;
        r = mv_owned(w, mv, n, err);
        if (r == 0)
            r = mv_step(w, ts, mv, n, MV_DROP_ASSEMBLY, err);
        if (r == 0)
            r = mv_step(w, ts, mv, n, MV_ATTACH_DEST, err);
        if (r == 0)
            r = mv_step(w, ts, mv, n, MV_ATTACH_PIECES, err);
        MV_MARK(2);
        sums_batch_release(&batch);
        sums_batch_init(&batch);
        np = 0;
        for (i = 0; i < n; i++)
            if (mv[i].active && mv[i].assemble) {
                bparts[np] = mv[i].part;
                bacc[np++] = &mv[i].staged;
            }
        if (r == 0)
            r = sums_batch_add(&batch, ts, bparts, bacc, np, asm_name.buf, 0, err);
        if (r == 0 && batch.n)
            r = sums_batch_run(w, &batch, err);
        if (r < 0)
            goto out;
        np = 0;
        for (i = 0; i < n; i++) {
            struct mv *m = &mv[i];
            if (!m->active || !m->assemble)
                continue;
            if (m->staged.rows != m->before.rows + m->src.rows) {
                struct chc_log_fields lf = {tb->name, ts->parts[m->part].lit, -1, -1, "move",
                                            -1, -1, -1.0, "staging mismatch"};
                /* A stray insert of a dead worker shows here, before anything
                 * reaches the destination: copy the partition again. */
                chc_log_at(CHC_LOG_ERROR, &lf,
                           "assembly holds %llu rows, expected %llu (destination) + %llu "
                           "(source): recopying the partition",
                           m->staged.rows, m->before.rows, m->src.rows);
                if (reset_pieces(w, ts, m->part, &e) == 0 &&
                    part_state_write(w, ts, m->part, "assembling", &e) == 0)
                    chc_err_set(&e, CHC_EMISMATCH, "staging does not match the source");
                mv_fail(w, ts, m, &e, move_failures);
                continue;
            }
            if (w->o->move_fault_probability > 0 &&
                (double)rand() / RAND_MAX < w->o->move_fault_probability) {
                chc_err_set(&e, CHC_EFAULT_INJECTED, "move fault injected");
                mv_fail(w, ts, m, &e, move_failures);
                continue;
            }
            chc_buf_reset(&m->state);
            if (chc_buf_addf(&m->state, "assembled %llu %llu", m->before.rows + m->src.rows,
                             m->before.hash + m->src.hash) < 0)
                goto oom;
            bparts[np] = m->part;
            states[np++] = m->state.buf;
        }
        if (np)
            fault_point(w, "after_assemble");
        r = part_states_write(w, ts, bparts, states, np, err);
        if (r < 0)
            goto out;
        if (np)
            fault_point(w, "after_assembled_record");
    }
    for (i = 0; i < n; i++) {
        struct mv *m = &mv[i];
        if (!m->active)
            continue;
        if (sscanf(m->state.buf, "%*s %llu %llu", &m->exp_rows, &m->exp_hash) != 2) {
            chc_err_set(&e, CHC_ESTATE, "bad partition state '%s'", m->state.buf);
            mv_fail(w, ts, m, &e, move_failures);
            continue;
        }
        m->replace = !strncmp(m->state.buf, "assembled", 9);
    }
    /* 3. REPLACE, all at once; repeated as a whole if any failed. */
    MV_MARK(3);
    r = mv_owned(w, mv, n, err);
    if (r == 0)
        r = mv_step(w, ts, mv, n, MV_REPLACE, err);
    if (r < 0)
        goto out;
    fault_point(w, "after_replace");
    MV_MARK(4);
    r = mv_record(w, ts, mv, n, "moved", 1, err);
    if (r < 0)
        goto out;
    /* 4. Verify the destination: count and checksum against the source. */
    MV_MARK(5);
    sums_batch_release(&batch);
    sums_batch_init(&batch);
    {
        size_t np = 0;
        for (i = 0; i < n; i++)
            if (mv[i].active) {
                bparts[np] = mv[i].part;
                bacc[np++] = &mv[i].after;
            }
        r = sums_batch_add(&batch, ts, bparts, bacc, np, tb->table_push, 1, err);
    }
    if (r == 0 && batch.n)
        r = sums_batch_run(w, &batch, err);
    if (r < 0)
        goto out;
    for (i = 0; i < n; i++) {
        struct mv *m = &mv[i];
        if (!m->active)
            continue;
        if (m->after.rows != m->exp_rows || m->after.hash != m->exp_hash) {
            struct chc_log_fields lf = {tb->name, ts->parts[m->part].lit, -1, -1, "move", -1,
                                        -1, -1.0, "destination mismatch"};
            chc_log_at(CHC_LOG_ERROR, &lf,
                       "verification failed: destination has %llu rows (checksum %llu), "
                       "expected %llu (checksum %llu)",
                       m->after.rows, m->after.hash, m->exp_rows, m->exp_hash);
            chc_err_set(&e, CHC_EMISMATCH, "partition %s failed verification",
                        ts->parts[m->part].lit);
            mv_fail(w, ts, m, &e, move_failures);
        }
    }
    /* 5. Done. The staging partitions stay until the table is done: the
     * assembly holds hard links to the same parts anyway (see above), so
     * dropping them now would free no disk, only cost a round of ALTERs. */
    MV_MARK(6);
    r = mv_record(w, ts, mv, n, "done", 0, err);
    if (r < 0)
        goto out;
    for (i = 0; i < n; i++) {
        struct mv *m = &mv[i];
        struct chc_log_fields lf = {tb->name, ts->parts[m->part].lit, -1, -1, "partition_moved",
                                    -1, -1, -1.0, NULL};
        if (!m->active)
            continue;
        ts->parts[m->part].done = 1;
        moved++;
        lf.rows = (long long)m->exp_rows;
        lf.duration = (double)(now_ms() - t0) / 1000.0;
        chc_log_at(CHC_LOG_INFO, &lf,
                   "partition moved and verified: %llu rows in the destination", m->exp_rows);
    }
    MV_MARK(7);
    chc_log_debug("table '%s': moved %d partition(s) in %" PRIu64 " ms: claim %" PRIu64
                  ", sums %" PRIu64 ", assemble %" PRIu64 ", count+record %" PRIu64
                  ", replace %" PRIu64 ", record %" PRIu64 ", verify %" PRIu64
                  ", record %" PRIu64,
                  tb->name, moved, ts_[7] - t0, ts_[0] - t0, ts_[1] ? ts_[1] - ts_[0] : 0,
                  ts_[2] ? ts_[2] - ts_[1] : 0, ts_[2] ? ts_[3] - ts_[2] : 0, ts_[4] - ts_[3],
                  ts_[5] - ts_[4], ts_[6] - ts_[5], ts_[7] - ts_[6]);
    r = moved;
    goto out;
oom:
    r = oom(err);
out:
#undef MV_MARK
    for (i = 0; i < n; i++) {
        lock_release(w, &mv[i].lock);
        chc_buf_release(&mv[i].state);
    }
    sums_batch_release(&batch);
    chc_buf_release(&asm_name);
    return r;
}

static int drop_helpers(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_replica **treps = NULL;
    struct chc_buf sql = CHC_BUF_INIT, name = CHC_BUF_INIT;
    unsigned k;
    int r = 0;

    if (target_reps(ts, &treps) < 0)
        return oom(err);
    for (k = 0; r == 0 && k <= ts->splits; k++) {
        chc_buf_reset(&sql);
        chc_buf_reset(&name);
        r = k < ts->splits ? plan_piece_table(ts->tb, k, &name) : plan_assembly_table(ts->tb, &name);
        if (r == 0)
            r = chc_buf_addstr(&sql, "DROP TABLE IF EXISTS ");
        if (r == 0)
            r = add_table_ref(&sql, ts->tb->database_push, name.buf);
        if (r < 0) {
            r = oom(err);
            break;
        }
        r = fanout(w, treps, ts->n_targets, sql.buf, err);
    }
    free(treps);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    return r;
}

/* ------------------------------------------------------------------------ */
/* the coordinator                                                          */
/* ------------------------------------------------------------------------ */

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
    metric(w, ts, CHC_METRIC_PIECES, "state", "done", (double)done, 1);
    metric(w, ts, CHC_METRIC_PIECES, "state", "in_flight", (double)in_flight, 1);
    metric(w, ts, CHC_METRIC_PIECES, "state", "dirty", (double)dirty, 1);
    metric(w, ts, CHC_METRIC_PARTITIONS, "state", "done", (double)parts_done, 1);
    metric(w, ts, CHC_METRIC_PARTITIONS, "state", "total", (double)ts->n_parts, 1);
    metric(w, NULL, CHC_METRIC_SLOTS_IN_USE, NULL, NULL, (double)w->n_jobs, 1);
    metric(w, NULL, CHC_METRIC_MAX_WORKERS, NULL, NULL, (double)w->task->max_workers, 1);
    metric(w, NULL, CHC_METRIC_ZK_SESSION, "state", "connected",
           zk_session_connected(w->zs) ? 1.0 : 0.0, 1);
    metric(w, NULL, CHC_METRIC_ZK_SESSION, "state", "expired",
           zk_session_expired(w->zs) ? 1.0 : 0.0, 1);
}

/* Finished jobs: record them; returns how many completed successfully. */
static int reap_jobs(struct worker *w, unsigned *failures)
{
    struct job **pp = &w->jobs;
    int ok = 0;

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
            metric(w, j->ts, CHC_METRIC_RETRIES, NULL, NULL, 1, 0);
            metric(w, j->ts, CHC_METRIC_ERRORS, "kind", chc_err_name(err.code), 1, 0);
            if (!j->failed)
                chc_log_warn("table '%s': %s, retrying", j->ts->tb->name, err.msg);
        } else {
            ok++;
        }
        metrics_update(w, j->ts);
        job_free(j);
    }
    return ok;
}

/* Stop every transfer we hold: cancel the HTTP side and, because the server
 * keeps running a query whose client went away, KILL QUERY it too. */
static void jobs_abort(struct worker *w)
{
    struct chc_buf sql = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    size_t q;

    while (w->jobs) {
        struct job *j = w->jobs;
        job_cancel(w, j);
        for (q = 0; q < j->n_q; q++) {
            chc_buf_reset(&sql);
            if (chc_buf_addstr(&sql, "KILL QUERY WHERE query_id LIKE '") < 0 ||
                query_id(j->ts, j->part, j->k, &sql) < 0 ||
                chc_buf_addf(&sql, "%zu-%zu-%%' SYNC", j->shard + 1, q) < 0)
                break;
            if (query(w, j->ts->targets[q].rep, 1, sql.buf, NULL, &err) < 0)
                chc_log_warn("cannot stop our copy on %s: %s, ignoring",
                             j->ts->targets[q].rep->host, err.msg);
        }
        j->ts->pbusy[j->part * j->ts->splits + j->k] = 0;
        w->jobs = j->next;
        w->n_jobs--;
        job_free(j);
    }
    chc_buf_release(&sql);
}

/* max_workers is re-read live from the description. */
static void reload_max_workers(struct worker *w)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    struct zk_stat st;
    int version;

    if (zpath(&path, "%s/description", w->o->task_path) < 0 ||
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
                    local |= is_local_host(sh->replicas[j].host, w->host);
                if (!local && !allow_remote) {
                    *ret_remote_waiting = 1;
                    continue;
                }
                r = try_piece(w, ts, part, s, k, err);
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
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    struct chc_buf state = CHC_BUF_INIT;
    size_t i;
    unsigned k;
    int r = 0, all = 1;

    if (!done)
        return oom(err);
    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        if (ts->parts[i].done)
            continue;
        r = part_state_read(w, ts, i, &state, err);
        if (r < 0)
            break;
        if (!strncmp(state.buf, "done", 4))
            ts->parts[i].done = 1;
        else
            all = 0;
    }
    /* Pieces, once per group that still has a partition to move. */
    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        if (ts->parts[i].lead != i || group_done(ts, i))
            continue;
        for (k = 0; r == 0 && k < ts->parts[i].splits; k++) {
            if (ts->pbusy[i * ts->splits + k])
                continue;
            r = piece_read(w, ts, i, k, &ps, err);
            if (r == 0)
                memcpy(pdone_at(ts, i, k), ps.done, ts->tb->pull->n_shards);
        }
    }
    free(done);
    chc_buf_release(&state);
    return r < 0 ? r : all;
}

/* Move every partition the cache says is complete. */
static int move_ready(struct worker *w, struct tstate *ts, unsigned *move_failures,
                      struct chc_err *err)
{
    size_t parts[MOVE_BATCH], n = 0, i;
    int r, moved = 0;

    for (i = 0; i <= ts->n_parts; i++) {
        if (i < ts->n_parts && (ts->parts[i].done || !part_cached_ready(ts, i)))
            continue;
        if (i < ts->n_parts)
            parts[n++] = i;
        if (n == 0 || (n < MOVE_BATCH && i < ts->n_parts))
            continue;
        r = move_batch(w, ts, parts, n, move_failures, err);
        n = 0;
        if (r < 0) {
            if (r == CHC_EZK_EXPIRED)
                return r;
            (*move_failures)++;
            chc_log_warn("table '%s': moving partitions failed: %s, retrying", ts->tb->name,
                         err->msg);
        } else {
            moved += r;
        }
        if (*move_failures >= w->o->max_piece_tries_alter * (ts->n_parts ? ts->n_parts : 1)) {
            char last[CHC_ERR_MSG_MAX];
            snprintf(last, sizeof(last), "%s", err->msg); /* not err->msg into itself */
            return chc_err_set(err, CHC_ESTATE, "table '%s': too many failed moves; last: %.900s",
                               ts->tb->name, last);
        }
    }
    return moved;
}

/* A new ZooKeeper session after expiry: our claims are gone, so are our
 * transfers; register again and carry on. */
static int recover_session(struct worker *w, struct chc_err *err)
{
    unsigned tries = 0;
    int r;

    chc_log_warn("ZooKeeper session expired: stopping our transfers and reconnecting");
    jobs_abort(w);
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
        worker_sleep(w, w->o->retry_delay_ms);
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

static int process_table(struct worker *w, const struct cfg_table *tb, struct chc_err *err)
{
    struct tstate *ts = NULL;
    struct chc_buf path = CHC_BUF_INIT;
    unsigned failures = 0, move_failures = 0, tries = 0, checked_failures = 0;
    uint64_t t0 = now_ms();
    int r, remote_waiting = 0, allow_remote = 0;

restart:
    for (;;) {
        r = table_prepare(w, tb, &ts, err);
        if (r == 0)
            break;
        if (r == CHC_EZK_EXPIRED && recover_session(w, err) == 0)
            continue;
        if (++tries >= w->o->max_table_tries || !chc_err_is_transient(r))
            return r;
        chc_log_warn("table '%s': %s, retrying", tb->name, err->msg);
        worker_sleep(w, w->o->retry_delay_ms);
    }
    if (!ts)
        CHC_BUG("table_prepare succeeded without a table state");
    if (ts->finished) {
        /* A worker that died after (re)creating staging tables may have
         * left some behind after the finisher dropped them: drop again. */
        if (drop_helpers(w, ts, err) < 0)
            chc_log_warn("table '%s': cannot drop helper tables: %s, ignoring", tb->name,
                         err->msg);
        chc_log_info("table '%s' is already done", tb->name);
        tstate_free(ts);
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
            tstate_free(ts);
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
                worker_sleep(w, w->o->retry_delay_ms);
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
            r = started;
            continue;
        }
        if (w->n_jobs > 0) {
            uv_run(&w->loop, UV_RUN_ONCE);
            r = 0;
            if (reap_jobs(w, &failures) > 0) {
                /* Keep the slots busy while we move what just completed. */
                started = fill(w, ts, allow_remote, &remote_waiting, err);
                r = started < 0 ? started : move_ready(w, ts, &move_failures, err);
                if (r > 0)
                    r = 0;
            }
            continue;
        }
        /* Idle after failures: the operator may have fixed the destination. */
        if (failures > checked_failures) {
            checked_failures = failures;
            r = staging_check(w, ts, err);
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
            worker_sleep(w, 500);
            allow_remote = 1;
            continue;
        }
        worker_sleep(w, failures ? w->o->retry_delay_ms : 200);
    }
    /* Every partition done: drop the helpers once. */
    r = drop_helpers(w, ts, err);
    if (r < 0)
        goto out;
    r = zpath(&path, "%s/done", ts->zroot);
    if (r == 0) {
        r = zk_create(w->zs, path.buf, "", 0, ZK_PERSISTENT, NULL, err);
        if (r == CHC_EZK_NODEEXISTS)
            r = 0;
    }
    if (r == 0)
        chc_log_info("table '%s' done in %.1f s: %zu partitions", tb->name,
                     (double)(now_ms() - t0) / 1000.0, ts->n_parts);
out:
    jobs_abort(w);
    chc_buf_release(&path);
    tstate_free(ts);
    return r;
}

static int worker_register(struct worker *w, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    char data[512];
    int r;

    r = zpath(&path, "%s/workers", w->o->task_path);
    if (r == 0)
        r = zk_create_parents(w->zs, path.buf, err);
    if (r == 0)
        r = zpath(&path, "%s/active", w->o->task_path);
    if (r == 0)
        r = zk_create_parents(w->zs, path.buf, err);
    if (r == 0)
        r = zpath(&path, "%s/workers/%s", w->o->task_path, w->id);
    if (r < 0)
        goto out;
    reap_dead_local(w);
    snprintf(data, sizeof(data), "host %s\npid %ld\n", w->host, (long)getpid());
    r = zk_create(w->zs, path.buf, data, strlen(data), ZK_EPHEMERAL, NULL, err);
out:
    chc_buf_release(&path);
    return r;
}

/* Loop, ClickHouse client, identity: shared by run, plan and clean. The
 * task is taken from `task` if given, else fetched from ZooKeeper. */
static int worker_open(struct worker *w, const struct chc_options *o, struct zk_session *zs,
                       const struct cfg_task *task, struct chc_err *err)
{
    struct tm tm;
    time_t now = time(NULL);
    int r;

    memset(w, 0, sizeof(*w));
    w->o = o;
    w->zs = zs;
    w->cap = o->max_pieces_in_flight ? o->max_pieces_in_flight : 4;
    srand((unsigned)(now ^ getpid()));
    gethostname(w->host, sizeof(w->host) - 1);
    localtime_r(&now, &tm);
    snprintf(w->id, sizeof(w->id), "%s#%04d%02d%02d%02d%02d%02d_%ld", w->host,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)getpid());
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

static void worker_close(struct worker *w)
{
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

    r = worker_open(&w, o, zs, NULL, err);
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
    worker_close(&w);
    zk_session_free(w.zs);
    return r;
}

/* ------------------------------------------------------------------------ */
/* plan: read-only                                                          */
/* ------------------------------------------------------------------------ */

/* Print SQL with the source password (if any) masked. */
static void print_sql(const struct tstate *ts, const char *indent, const char *sql)
{
    const char *pw = ts->src_rep[0]->password;
    const char *p = sql, *hit;

    fputs(indent, stdout);
    while (pw && *pw && (hit = strstr(p, pw))) {
        fwrite(p, 1, (size_t)(hit - p), stdout);
        fputs("***", stdout);
        p = hit + strlen(pw);
    }
    printf("%s;\n", p);
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

    r = table_layout(w, tb, &ts, err);
    if (r < 0)
        return r;
    r = describe(w, ts->src_rep[0], 0, tb->database_pull, tb->table_pull, &src_cols, err);
    if (r < 0) {
        chc_err_prefix(err, "table '%s': cannot read the source table %s.%s", tb->name,
                       tb->database_pull, tb->table_pull);
        goto out;
    }
    /* Copy the destination's columns if it exists, else the source's. */
    if (describe(w, ts->targets[0].rep, 1, tb->database_push, tb->table_push, &dst_cols, err) < 0)
        dst_cols = NULL;
    r = columns_load(ts, dst_cols ? dst_cols : src_cols, err);
    if (r == 0)
        r = discover_query(w, ts, err);
    if (r < 0)
        goto out;
    if (push_nodes(tb->push, &nodes, &n_nodes) < 0 || target_reps(ts, &treps) < 0)
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
    r = create_sql(tb, src_cols, tb->table_push, 0, &sql, err);
    if (r < 0)
        goto out;
    print_sql(ts, "    ", sql.buf);
    printf("  staging tables (on the staging nodes):\n");
    for (k = 0; k <= ts->splits; k++) {
        chc_buf_reset(&name);
        chc_buf_reset(&sql);
        if ((k < ts->splits ? plan_piece_table(tb, k, &name) : plan_assembly_table(tb, &name)) < 0)
            goto oom;
        r = create_sql(tb, dst_cols ? dst_cols : src_cols, name.buf, 1, &sql, err);
        if (r < 0)
            goto out;
        print_sql(ts, "    ", sql.buf);
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
                r = copy_sql(ts, 0, k, s, &ts->targets[t], &sql, err);
                if (r < 0)
                    goto out;
                printf("    -- piece %u, source shard %zu, on %s:%d\n", k, s + 1,
                       ts->targets[t].rep->host, ts->targets[t].rep->http_port);
                print_sql(ts, "    ", sql.buf);
            }
    }
    printf("  move, on every staging node:\n");
    chc_buf_reset(&name);
    if (plan_assembly_table(tb, &name) < 0)
        goto oom;
    chc_buf_reset(&sql);
    if (chc_buf_addf(&sql, "ALTER TABLE %s.%s DROP ", tb->database_push, name.buf) < 0 ||
        plan_partition_clause(ts->parts[0].lit, &sql) < 0)
        goto oom;
    print_sql(ts, "    ", sql.buf);
    if (!tb->allow_drop_target_partitions) {
        chc_buf_reset(&sql);
        if (chc_buf_addf(&sql, "ALTER TABLE %s.%s ATTACH ", tb->database_push, name.buf) < 0 ||
            plan_partition_clause(ts->parts[0].lit, &sql) < 0 ||
            chc_buf_addf(&sql, " FROM %s.%s", tb->database_push, tb->table_push) < 0)
            goto oom;
        print_sql(ts, "    ", sql.buf);
    }
    for (k = 0; k < ts->parts[0].splits; k++) {
        chc_buf_reset(&sql);
        if (chc_buf_addf(&sql, "ALTER TABLE %s.%s ATTACH ", tb->database_push, name.buf) < 0 ||
            plan_partition_clause(ts->parts[0].lit, &sql) < 0 ||
            chc_buf_addf(&sql, " FROM %s.%s_piece_%u", tb->database_push, tb->table_push, k) < 0)
            goto oom;
        print_sql(ts, "    ", sql.buf);
    }
    chc_buf_reset(&sql);
    if (chc_buf_addf(&sql, "ALTER TABLE %s.%s REPLACE ", tb->database_push, tb->table_push) < 0 ||
        plan_partition_clause(ts->parts[0].lit, &sql) < 0 ||
        chc_buf_addf(&sql, " FROM %s.%s", tb->database_push, name.buf) < 0)
        goto oom;
    print_sql(ts, "    ", sql.buf);
    printf("  verify: SELECT count(), sum(%s) per partition on the source shards and the "
           "destination\n",
           ts->hash_dst);
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
    tstate_free(ts);
    return r;
}

int worker_plan(const struct chc_options *o, struct zk_session *zs, const struct cfg_task *task,
                struct chc_err *err)
{
    struct worker w;
    size_t i;
    int r;

    r = worker_open(&w, o, zs, task, err);
    for (i = 0; r == 0 && i < w.task->n_tables; i++)
        r = plan_table(&w, &w.task->tables[i], err);
    if (r == 0)
        printf("plan only: nothing was written to ZooKeeper or ClickHouse\n");
    worker_close(&w);
    return r;
}

/* ------------------------------------------------------------------------ */
/* clean                                                                    */
/* ------------------------------------------------------------------------ */

int worker_clean(const struct chc_options *o, struct zk_session *zs, struct chc_err *err)
{
    struct worker w;
    struct chc_buf path = CHC_BUF_INIT, sql = CHC_BUF_INIT, name = CHC_BUF_INIT;
    const struct cfg_replica **nodes = NULL;
    char **workers = NULL;
    size_t n_workers = 0, n_nodes = 0, i;
    unsigned k;
    int r;

    r = worker_open(&w, o, zs, NULL, err);
    if (r < 0)
        goto out;
    reap_dead_local(&w);
    r = zpath(&path, "%s/workers", o->task_path);
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
        if (push_nodes(tb->push, &nodes, &n_nodes) < 0) {
            r = oom(err);
            goto out;
        }
        for (k = 0; k <= plan_splits(tb); k++) {
            chc_buf_reset(&name);
            chc_buf_reset(&sql);
            if ((k < plan_splits(tb) ? plan_piece_table(tb, k, &name)
                                     : plan_assembly_table(tb, &name)) < 0 ||
                chc_buf_addstr(&sql, "DROP TABLE IF EXISTS ") < 0 ||
                add_table_ref(&sql, tb->database_push, name.buf) < 0) {
                r = oom(err);
                goto out;
            }
            printf("%s %s on %zu destination nodes\n", o->yes ? "dropping" : "would drop",
                   sql.buf + strlen("DROP TABLE IF EXISTS "), n_nodes);
            if (o->yes) {
                r = fanout(&w, nodes, n_nodes, sql.buf, err);
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
    r = zpath(&path, "%s/tables", o->task_path);
    if (r == 0)
        r = zk_delete_recursive(zs, path.buf, err);
    if (r == 0)
        r = zpath(&path, "%s/active", o->task_path);
    if (r == 0)
        r = zk_delete_recursive(zs, path.buf, err);
    if (r == 0)
        r = zpath(&path, "%s/workers", o->task_path);
    if (r == 0)
        r = zk_delete_recursive(zs, path.buf, err);
out:
    chc_strv_free(workers, n_workers);
    free(nodes);
    chc_buf_release(&path);
    chc_buf_release(&sql);
    chc_buf_release(&name);
    worker_close(&w);
    return r;
}

/* ------------------------------------------------------------------------ */
/* status: ZooKeeper only                                                   */
/* ------------------------------------------------------------------------ */

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
    ts->tb = tb;
    ts->splits = plan_splits(tb);
    r = zpath(&b, "%s/tables/", w->o->task_path);
    if (r == 0)
        r = table_id(tb, &b);
    if (r == 0)
        r = chc_buf_addf(&b, "/%s", tb->def_hash_hex);
    if (r < 0) {
        r = oom(err);
        goto out;
    }
    ts->zroot = chc_buf_take(&b, NULL);
    r = zpath(&b, "%s/partitions", ts->zroot);
    if (r == 0)
        r = zk_get(w->zs, b.buf, &data, &pst, err);
    if (r == CHC_EZK_NONODE) {
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    r = parts_load(ts, data.buf, err);
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
        r = part_state_read(w, ts, i, &data, err);
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
            r = piece_read(w, ts, i, k, &ps, err);
            if (r < 0)
                goto out;
            for (sh = 0; sh < tb->pull->n_shards; sh++)
                st->pieces_done += group_on_shard(ts, i, sh) && ps.done[sh];
            staged += ps.rows;
            if (ps.error[0]) {
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
    r = zpath(&b, "%s/done", ts->zroot);
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
    r = zpath(&b, "%s/locks", ts->zroot);
    if (r == 0)
        r = zk_children(w->zs, b.buf, &locks, &n_locks, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    for (i = 0; r == 0 && i < n_locks; i++) {
        struct chc_buf part = CHC_BUF_INIT, lp = CHC_BUF_INIT, holder = CHC_BUF_INIT;
        char *hash = strrchr(locks[i], '#');
        if (!hash)
            continue;
        if (plan_zk_unname(locks[i], &part) < 0 || zpath(&lp, "%s/locks/%s", ts->zroot, locks[i]) < 0) {
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
    tstate_free(ts);
    return r;
}

int worker_status(const struct chc_options *o, struct zk_session *zs, struct chc_err *err)
{
    struct worker w;
    struct chc_buf out = CHC_BUF_INIT, path = CHC_BUF_INIT;
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
    r = zpath(&path, "%s/workers", o->task_path);
    if (r == 0)
        r = zk_children(zs, path.buf, &workers, &n_workers, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    if (r == 0 && zpath(&path, "%s/active", o->task_path) == 0 &&
        zk_exists(zs, path.buf, &active, err) == CHC_EZK_NONODE)
        r = 0;
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
            r = chc_buf_addstr(&out, "],\"tables\":[");
    } else {
        r = chc_buf_addf(&out, "task %s: %zu worker(s) running, %d piece(s) being copied "
                               "(max_workers %u)\n",
                         o->task_path, n_workers, active.num_children, w.task->max_workers);
        for (i = 0; r == 0 && i < n_workers; i++)
            r = chc_buf_addf(&out, "  worker %s\n", workers[i]);
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
    fputs(out.buf, stdout);
out:
    if (r == -ENOMEM || r == CHC_ETOOBIG)
        chc_err_set(err, r, "out of memory");
    chc_strv_free(workers, n_workers);
    chc_buf_release(&out);
    chc_buf_release(&path);
    cfg_task_free(w.task);
    return r;
}

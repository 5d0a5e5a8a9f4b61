/* worker-internal.h — what the files of the worker share; not part of the
 * module's interface (include/chcopier/worker.h is), included only by them.
 *
 *   worker.c   the coordinator: register, per table claim/copy/move loop,
 *              session recovery, progress line, metrics
 *   tables.c   table layout and preparation: destination and staging tables,
 *              columns, partition discovery and the partition list
 *   tstate.c   a table's state as the coordinator holds it: partitions by
 *              index, the partition list, the cache of copied pieces, and
 *              the state/ calls for them (the ZooKeeper side is state/'s)
 *   piece.c    the copy pipeline: a piece's SQL, cleaning, copy jobs
 *   mover.c    the partition mover: checksums, assemble, REPLACE, verify
 *   status.c   the operator commands status, plan and clean
 *   wkutil.c   small shared utilities: ClickHouse statements on one or many
 *              nodes, ZooKeeper paths, sleeping, fault points, metrics
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
 * Rules 1 and 2 are kept by piece.c (with state/claims.c), rule 3 by
 * mover.c; the decisions themselves are state/protocol.c's.
 *
 * Names: a function shared between these files carries its file's prefix
 * and a double underscore (wk__, tstate__, tables__, piece__, mover__,
 * worker__); the tiny accessors below are static inline.
 */
#ifndef CHC_WORKER_INTERNAL_H
#define CHC_WORKER_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/base/strmap.h"
#include "chcopier/state/claims.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/store.h"
#include "chcopier/config/task.h"

struct ch_client;
struct ch_pipe;
struct ch_query;
struct ch_query_params;
struct ch_rows;
struct chc_metrics;
struct chc_options;
struct zk_session;

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
#define GROUP_MAX 64


/* A replica of the task's clusters, as the preflight probe found it. */
struct node {
    const struct cfg_replica *rep;
    int alive;
    char version[32]; /* SELECT version() */
    char why[200];    /* why it did not answer */
};


struct tstate {
    struct worker *w;
    const struct cfg_table *tb;
    char *zroot;
    char *key_type;   /* the sharding key's type on the source (preflight) */
    char *split_args; /* the sorting key in hashable form (sqlhash.h) */
    struct plan_key key; /* points into key_type and split_args */
    struct node *nodes;  /* every replica of both clusters, probed */
    size_t n_nodes;
    struct sql_columns cols; /* what is copied and checksummed (sql/ddl.h) */
    const struct cfg_replica **src_rep;
    size_t *order;
    struct target *targets;
    size_t n_targets;
    struct part *parts;
    size_t n_parts, parts_cap;
    struct chc_strmap part_index; /* literal -> index into parts */
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
    unsigned *ptries;    /* per (part, k): copies this worker started (fault draws) */
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
    char hostkey[128];    /* "<boot id>/<pid namespace>": whose pids we can see */
    struct chc_buf claim; /* data of our claims: id and hostkey (state/codec.h) */
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
    uint64_t fault_seed; /* --fault-seed, else drawn from time and pid */
    struct chc_buf note; /* see wk__note */
};

static inline unsigned char *pdone_at(const struct tstate *ts, size_t part, unsigned k)
{
    return ts->pdone + ((size_t)part * ts->splits + k) * ts->tb->pull->n_shards;
}

/* Does any partition of the group led by `lead` have rows on source shard s? */
static inline int group_on_shard(const struct tstate *ts, size_t lead, size_t s)
{
    size_t i;

    for (i = lead; i < lead + ts->parts[lead].n_group; i++)
        if (ts->parts[i].on_shard[s])
            return 1;
    return 0;
}

/* Every partition of the group moved and verified (cache)? */
static inline int group_done(const struct tstate *ts, size_t lead)
{
    size_t i;

    for (i = lead; i < lead + ts->parts[lead].n_group; i++)
        if (!ts->parts[i].done)
            return 0;
    return 1;
}

/* Pieces of the group led by `lead`: splits x source shards with rows. */
static inline size_t group_pieces(const struct tstate *ts, size_t lead)
{
    size_t s, n = 0;

    for (s = 0; s < ts->tb->pull->n_shards; s++)
        n += group_on_shard(ts, lead, s) ? ts->parts[lead].splits : 0;
    return n;
}

static inline uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline int oom(struct chc_err *err)
{
    return chc_err_set(err, -ENOMEM, "out of memory");
}

/* ---- wkutil.c ---- */

/* Metrics: `table` label, plus one more (key, value) if key is not NULL. */
void wk__metric(struct worker *w, const struct tstate *ts, const char *name, const char *key,
                const char *value, double v, int set);
/* Sleep while keeping transfers flowing. */
void wk__sleep(struct worker *w, unsigned ms);
/* --fault-point NAME: exit abruptly (status 99) when `name` is reached;
 * NAME:stop: SIGSTOP ourselves there (a frozen worker), carry on when
 * continued. */
void wk__fault_point(const struct worker *w, const char *name);
/* Set this worker's note (one or more lines; "" clears it): what `status`
 * shows under the worker, e.g. replicas skipped or shards waited for. Kept
 * in its workers/<id> node; best effort. */
void wk__note(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Testing (--copy/move-fault-probability): 1 with probability p. The draw is
 * a hash of --fault-seed and `what` (the piece or partition and its
 * attempt), so a seed decides which attempts fail, whatever the timing. */
int wk__fault_draw(const struct worker *w, double p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void wk__params_init(struct ch_query_params *p, const struct cfg_replica *rep, const char *sql,
                     const struct cfg_task *t, int push);
/* One statement on one node, synchronously (the loop keeps running). */
int wk__query(struct worker *w, const struct cfg_replica *rep, int push, const char *sql,
              struct chc_buf *out, struct chc_err *err);
/* Many statements on many nodes at once, every one must succeed. */
int wk__multi_query(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                    const char *const *sqls, const char *sql, struct chc_buf *outs,
                    const int *pushes, struct chc_err *err);
/* One statement on n nodes at once; each node's outcome goes to errs[i]
 * (code 0 = answered; its body in outs[i] if outs). timeout_ms > 0 bounds
 * each query (and its connect, at most 5 s). < 0 only for ENOMEM. */
int wk__query_each(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                   const char *sql, int push, long timeout_ms, struct chc_buf *outs,
                   struct chc_err *errs, struct chc_err *err);
/* One statement on n nodes at once, every one must succeed. */
int wk__fanout(struct worker *w, const struct cfg_replica *const *reps, size_t n,
               const char *sql, struct chc_err *err);
/* Format a ZooKeeper path into b (reset first). */
int wk__zpath(struct chc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- tstate.c ---- */

struct st_table tstate__st(const struct tstate *ts);
/* The index of partition `lit`, added if new. */
int tstate__add_part(struct tstate *ts, const char *lit, struct chc_err *err);
/* The published partition list into ts (CHC_EZK_NONODE while there is
 * none); st (optional) gets the stat of its node. */
int tstate__parts_read(struct tstate *ts, struct zk_stat *st, struct chc_err *err);
int tstate__parts_publish(struct tstate *ts, struct chc_err *err);
int tstate__piece_read(struct tstate *ts, size_t part, unsigned k, struct piece_state *ps,
                       struct chc_err *err);
int tstate__piece_write(struct tstate *ts, size_t part, unsigned k, struct piece_state *ps,
                        struct chc_err *err);
int tstate__part_get(struct tstate *ts, size_t part, struct chc_buf *out, int *version,
                     struct chc_err *err);
int tstate__part_write(struct tstate *ts, size_t part, const char *state, int *version,
                       struct chc_err *err);
/* Forget every copied piece of the partition's group: it is copied again. */
int tstate__reset_pieces(struct tstate *ts, size_t part, struct chc_err *err);
/* locks/<partition>#<what>; CHC_EZK_NODEEXISTS when someone else holds it. */
int tstate__lock_take(struct tstate *ts, size_t part, const char *what, char **ret_path,
                      struct chc_err *err);
/* Re-read every unfinished partition's state and the pieces of groups still
 * to move (those no job of ours holds) into the cache, in one pipelined
 * round; 1 when every partition is done. */
int tstate__refresh(struct tstate *ts, struct chc_err *err);

/* ---- preflight.c ---- */

/* Probe every node; choose source replicas and staging nodes (ts->src_rep,
 * ts->targets) among the live ones. */
int preflight__nodes(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Everything preflight.c's top comment lists; writes nothing. */
int preflight__run(struct worker *w, struct tstate *ts, struct chc_err *err);
/* After a refused statement: the element at fault, or 0. */
int preflight__diagnose(struct worker *w, struct tstate *ts, struct chc_err *err);
const struct node *preflight__node(const struct tstate *ts, const struct cfg_replica *rep);
int preflight__alive(const struct tstate *ts, const struct cfg_replica *rep);
/* Live nodes of the push cluster. */
int preflight__push_nodes(const struct tstate *ts, const struct cfg_replica ***ret,
                          size_t *ret_n);

/* ---- tables.c ---- */

void tables__tstate_free(struct tstate *ts);
int tables__describe(struct worker *w, const struct cfg_replica *rep, int push, const char *db,
                     const char *table, struct ch_rows **ret, struct chc_err *err);
int tables__create_sql(const struct cfg_table *tb, const struct ch_rows *cols, const char *table,
                       int plain, struct chc_buf *out, struct chc_err *err);
/* DESCRIBE's rows as columns (pointing into rows); free the array. */
int tables__columns_of(const struct ch_rows *rows, struct sql_column **ret);
int tables__push_nodes(const struct cfg_cluster *c, const struct cfg_replica ***ret,
                       size_t *ret_n);
int tables__target_reps(const struct tstate *ts, const struct cfg_replica ***ret);
int tables__columns_load(struct tstate *ts, const struct ch_rows *dst_cols, struct chc_err *err);
uint64_t tables__sums_key_of(const struct tstate *ts);
int tables__discover_query(struct worker *w, struct tstate *ts, struct chc_err *err);
int tables__drop_helpers(struct worker *w, struct tstate *ts, struct chc_err *err);
int tables__is_local_host(const char *host, const char *me);
int tables__staging_check(struct worker *w, struct tstate *ts, struct chc_err *err);
void tables__create_on_returned(struct worker *w, struct tstate *ts);
int tables__layout(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                   struct chc_err *err);
int tables__prepare(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                    struct chc_err *err);

/* ---- piece.c ---- */

/* The sql_piece of the group led by `part`, piece k, routed to destination
 * shard dshard (-1: none); lits[GROUP_MAX] is the caller's. */
struct sql_piece;
void piece__spec(const struct tstate *ts, size_t part, unsigned k, int dshard,
                 const char **lits, struct sql_piece *p);
int piece__copy_sql(const struct tstate *ts, size_t part, unsigned k, size_t shard,
                    const struct target *t, struct chc_buf *b, struct chc_err *err);
/* Claim (part, shard, k) and start its copy. 1 started, 0 not claimable. */
int piece__try(struct worker *w, struct tstate *ts, size_t part, size_t shard, unsigned k,
               struct chc_err *err);
int piece__job_finish(struct worker *w, struct job *j, struct chc_err *err);
void piece__job_free(struct job *j);
void piece__jobs_abort(struct worker *w);

/* ---- mover.c ---- */

int mover__move_ready(struct worker *w, struct tstate *ts, unsigned *move_failures,
                      struct chc_err *err);

/* ---- worker.c ---- */

int worker__open(struct worker *w, const struct chc_options *o, struct zk_session *zs,
                 const struct cfg_task *task, struct chc_err *err);
void worker__close(struct worker *w);
/* The data of this worker's workers/<id> node. */
int worker__registration(const struct worker *w, struct chc_buf *out);
/* Our claims' identity for state/claims.h (valid until the session changes). */
struct st_claimer worker__claimer(struct worker *w);

#endif

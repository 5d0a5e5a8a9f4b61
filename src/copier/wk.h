/* wk.h — the worker's context: what every file of the coordinator acts
 * through. One struct worker per process (or per status/plan/clean
 * command): its libuv loop, ClickHouse client, ZooKeeper session, identity,
 * metrics; and the small services on it: sleeping while transfers flow,
 * fault points, this worker's note, metrics labelled with a table.
 *
 * src/copier, bottom to top (each file uses only those below it):
 *   wk.c         this context
 *   nodes.c      statements on one or many ClickHouse nodes
 *   drops.c      drops of staging data through a table's drop gate, and
 *                the queue of releases nobody waits for
 *   tstate.c     a table's state as the coordinator holds it
 *   versions.c   what the nodes' versions decide (sql/dialect.h applied)
 *   preflight.c  the checks before anything is written
 *   pin.c        the staging replica of each shard, pinned for the table
 *   routing.c    Distributed or filter routing, the routing tables
 *   discover.c   partition discovery: rows and checksums per source shard
 *   tables.c     destination and staging tables, the partition list
 *   piece.c      piece copies: claims, cleaning, the job list (its owner)
 *   sums.c       count and checksum rounds over many nodes
 *   batch.c      a batch of moves: its rounds of statements, failed moves
 *   checks.c     the mover's checks: assembly, recorded assembly (per shard),
 *                destination after the REPLACE
 *   mover.c      partition moves: assemble, REPLACE, verify, release
 *   worker.c     the coordinator loop (worker_run)
 *   cmd.c, cmd-status.c, cmd-plan.c, cmd-clean.c   the operator commands
 * Nothing outside src/copier sees these structs; the layers below get
 * what they need as arguments (state/claims.h's st_claimer, say).
 *
 * Concurrency model: one thread, one libuv loop. Piece copies are async
 * ClickHouse queries whose callbacks only record completion; every decision
 * (ZooKeeper writes, cleaning, moves) is taken by the coordinator loop in
 * worker_run(), which waits by running the loop once at a time. Synchronous
 * helper queries run the same loop, so transfers keep flowing meanwhile.
 *
 * Names: a function shared between the files of src/copier carries its
 * file's prefix and a double underscore (wk__, nodes__, tstate__, ...).
 */
#ifndef CHC_COPIER_WK_H
#define CHC_COPIER_WK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/state/claims.h"

struct ch_client;
struct cfg_replica;
struct cfg_task;
struct cfg_zk;
struct chc_metrics;
struct chc_options;
struct job;
struct nodes_bg;
struct tstate;
struct zk_session;

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
    struct job *jobs;     /* piece copies in flight: piece.c's alone */
    struct nodes_bg *bg;  /* drops nobody waits for: drops.c's alone */
    size_t n_jobs;
    unsigned cap;         /* --max-pieces-in-flight */
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
    /* Each node's version as the last probe found it (sql/dialect.h): the
     * statements to a node follow it. */
    struct wk_version {
        const struct cfg_replica *rep;
        unsigned ver;
    } *versions;
    size_t n_versions;
};

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

/* Loop, ClickHouse client, identity: shared by run, plan and clean. The
 * task is taken from `task` if given, else fetched from ZooKeeper. */
int wk__open(struct worker *w, const struct chc_options *o, struct zk_session *zs,
             const struct cfg_task *task, struct chc_err *err);
void wk__close(struct worker *w);
/* The data of this worker's workers/<id> node. */
int wk__registration(const struct worker *w, struct chc_buf *out);
/* Our claims' identity for state/claims.h (valid until the session changes). */
struct st_claimer wk__claimer(struct worker *w);

enum wk_metric_op { WK_ADD, WK_SET };
/* Metrics: `table` label (table not NULL), plus one more (key, value) if
 * key is not NULL; a counter is added to, a gauge set. Within a table,
 * tstate__metric. */
void wk__metric(struct worker *w, const char *table, const char *name, const char *key,
                const char *value, double v, enum wk_metric_op op);
/* Remember rep's version (0: unknown); -ENOMEM. */
int wk__version_set(struct worker *w, const struct cfg_replica *rep, unsigned ver);
/* rep's version, 0 when not known. */
unsigned wk__version(const struct worker *w, const struct cfg_replica *rep);
/* Sleep while keeping transfers flowing. */
void wk__sleep(struct worker *w, unsigned ms);
/* --fault-point NAME: exit abruptly (status 99) when `name` is reached;
 * NAME:stop: SIGSTOP ourselves there (a frozen worker), carry on when
 * continued. */
void wk__fault_point(const struct worker *w, const char *name);
/* Does --fault-point name this point (with or without a suffix)? */
int wk__fault_armed(const struct worker *w, const char *name);
/* Testing (--copy/move-fault-probability): 1 with probability p. The draw is
 * a hash of --fault-seed and `what` (the piece or partition and its
 * attempt), so a seed decides which attempts fail, whatever the timing. */
int wk__fault_draw(const struct worker *w, double p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set this worker's note (one or more lines; "" clears it): what `status`
 * shows under the worker, e.g. replicas skipped or shards waited for. Kept
 * in its workers/<id> node; best effort. */
void wk__note(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

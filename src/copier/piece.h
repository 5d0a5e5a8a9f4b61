/* piece.h — the copy pipeline, one piece at a time (piece.c), and the
 * worker's job list, which piece.c alone changes. Exactly-once rules
 * (docs/design.md, "Exactly once"):
 *   1. a piece (partition p, source shard s, split k) is copied only under the
 *      ephemeral claim locks/<p>#<k>, which also serialises cleaning of the
 *      shared staging partition p of <table>_piece_<k>;
 *   2. the piece node records "started s" before any row is sent and "done s"
 *      only after every destination query succeeded; a claim that finds a
 *      started-but-not-done shard, or no shard done yet, first kills stray
 *      queries and drops p from <table>_piece_<k> on every staging node, and
 *      forgets every shard done for (p, k).
 * The decisions themselves are state/protocol.c's; claims are
 * state/claims.c's.
 */
#ifndef CHC_COPIER_PIECE_H
#define CHC_COPIER_PIECE_H

#include <stddef.h>
#include <stdint.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_replica;
struct ch_pipe;
struct ch_query;
struct sql_piece;
struct target;
struct tstate;
struct worker;

/* A piece copy in flight: one query or pipe per staging node. */
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
    int routed; /* through the routing table (Distributed routing) */
    struct chc_err err;
    uint64_t t0;
    struct job *next;
};

/* Where a piece's rows go: each staging node reads its own shard's rows
 * (filter routing: one sink per staging node), or the source shard's
 * routing node takes every row (Distributed routing: one sink). */
struct sink {
    const struct cfg_replica *rep;
    int dshard;    /* the filter's destination shard; -1: none */
    int via_route; /* into the routing table */
};

/* The sinks of source shard `shard`'s pieces into out[ts->n_targets];
 * their number. */
size_t piece__sinks(const struct tstate *ts, size_t shard, struct sink *out);
/* The sql_piece of the group led by `part`, piece k, routed to destination
 * shard dshard (-1: none); lits[GROUP_MAX] is the caller's. */
void piece__spec(const struct tstate *ts, size_t part, unsigned k, int dshard,
                 const char **lits, struct sql_piece *p);
/* The pull path's statement for sink `to`. */
int piece__copy_sql(const struct tstate *ts, size_t part, unsigned k, size_t shard,
                    const struct sink *to, struct chc_buf *b, struct chc_err *err);
/* Claim (part, shard, k) and start its copy. 1 started, 0 not claimable,
 * CHC_EBUSY when every max_workers slot is taken. */
int piece__try(struct worker *w, struct tstate *ts, size_t part, size_t shard, unsigned k,
               struct chc_err *err);
/* Record the jobs that finished: their pieces done, or failed (backoff,
 * dirty). Returns how many completed, or CHC_ECH_PERMANENT with *ret_ts
 * and err naming the first refused for good. */
int piece__jobs_reap(struct worker *w, unsigned *failures, struct tstate **ret_ts,
                     struct chc_err *err);
/* Stop every job (the session is gone, or the table stops). */
void piece__jobs_abort(struct worker *w);

#endif

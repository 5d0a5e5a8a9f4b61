/* tstate.h — a table's state as the coordinator holds it: its partitions
 * by index and their copy groups, the nodes the preflight probe found, the
 * staging targets, and the local cache of piece state (pdone/pbusy/...),
 * refreshed from ZooKeeper through state/store.h (tstate.c).
 */
#ifndef CHC_COPIER_TSTATE_H
#define CHC_COPIER_TSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/base/strmap.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/plan.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/store.h"
#include "wk.h"

struct worker;
struct zk_stat;

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
    long long disc_rows;      /* discovery only: rows so far on shard disc_shard - 1 */
    size_t disc_shard;
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
    unsigned ver;     /* parsed (sql/dialect.h); 0: unknown */
    char why[200];    /* why it did not answer */
};


/* How rows reach their destination shard (route.c). */
enum route_mode {
    ROUTE_FILTER,      /* one filtered read per destination shard */
    ROUTE_DISTRIBUTED, /* one read into a Distributed table on route_rep[s] */
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
    enum route_mode route;
    const struct cfg_replica **route_rep; /* per source shard: the routing node */
    char **route_cluster; /* per source shard: the cluster's name on route_rep[s] */
    char route_why[240];  /* filter routing: why */
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

struct st_table tstate__st(const struct tstate *ts);
/* The table's drop gate, <t>/locks/drops (drops.h). */
int tstate__drop_gate(const struct tstate *ts, struct chc_buf *out);
/* The index of partition `lit`, added if new. */
/* The preflight probe's answer for rep (NULL if rep was not probed). */
const struct node *tstate__node(const struct tstate *ts, const struct cfg_replica *rep);
int tstate__alive(const struct tstate *ts, const struct cfg_replica *rep);
/* Its version as sql/dialect.h compares them (0: unknown or not alive). */
unsigned tstate__version(const struct tstate *ts, const struct cfg_replica *rep);
/* wk__metric labelled with ts's table (ts NULL: no table). */
void tstate__metric(struct worker *w, const struct tstate *ts, const char *name, const char *key,
                    const char *value, double v, enum wk_metric_op op);
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
/* tstate__part_write of n partitions (indices parts[]), pipelined. */
int tstate__part_write_many(struct tstate *ts, const size_t *parts, const char *const *states,
                            size_t n, int *versions, struct chc_err *err);
/* Forget every copied piece of the partition's group: it is copied again. */
int tstate__reset_pieces(struct tstate *ts, size_t part, struct chc_err *err);
/* locks/<partition>#<what>; CHC_EZK_NODEEXISTS when someone else holds it. */
int tstate__lock_take(struct tstate *ts, size_t part, const char *what, char **ret_path,
                      struct chc_err *err);
/* Re-read every unfinished partition's state and the pieces of groups still
 * to move (those no job of ours holds) into the cache, in one pipelined
 * round; 1 when every partition is done. */
int tstate__refresh(struct tstate *ts, struct chc_err *err);
/* Gauges of the table from the cache: pieces done/in flight/dirty,
 * partitions done/total, slots in use, the ZooKeeper session. */
void tstate__gauges(struct worker *w, const struct tstate *ts);
/* Free ts and everything it holds (NULL is fine). */
void tstate__free(struct tstate *ts);

#endif

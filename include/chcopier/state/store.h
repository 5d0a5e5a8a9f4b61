/* store.h — reading and writing one table definition's state in
 * ZooKeeper (the nodes of state/layout.h, the data of state/codec.h).
 * Writes are conditional: a piece over the version it was read at, a
 * partition's move state over the version read under its move lock, so a
 * worker that lost its claim while stalled cannot change what its claim
 * protected (CHC_EZK_BADVERSION or CHC_EZK_NODEEXISTS).
 */
#ifndef CHC_STATE_STORE_H
#define CHC_STATE_STORE_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/state/codec.h"

struct zk_session;
struct zk_stat;

/* One table definition's state: its root <t> and its source shards. */
struct st_table {
    struct zk_session *zs;
    const char *zroot;
    size_t n_shards;
};

/* <t>/parts/<part>/<k> (part: a node name, st_node_name). */
int st_piece_read(const struct st_table *t, const char *part, unsigned k, struct piece_state *ps,
                  struct chc_err *err);
/* Created when it does not exist (ps->exists 0), else over ps->version;
 * ps->version gets the new one. */
int st_piece_write(const struct st_table *t, const char *part, unsigned k, struct piece_state *ps,
                   struct chc_err *err);
/* Forget every shard done of pieces 0..splits-1 of `lead`: copied again. */
int st_pieces_reset(const struct st_table *t, const char *lead, unsigned splits,
                    struct chc_err *err);

/* <t>/parts/<part>: the move state ("" when none); *version (optional) gets
 * its version, -1 when the node does not exist. */
int st_part_get(const struct st_table *t, const char *part, struct chc_buf *out, int *version,
                struct chc_err *err);
/* Only over *version (-1: create); *version gets the new one. */
int st_part_write(const struct st_table *t, const char *part, const char *state, int *version,
                  struct chc_err *err);
/* st_part_write of n partitions pipelined (about one round trip instead of
 * n): versions[i] as *version there. Returns the first failure. */
int st_part_write_many(const struct st_table *t, const char *const *parts,
                       const char *const *states, size_t n, int *versions, struct chc_err *err);

/* Read many <t>/parts/<part>[/<k>] nodes pipelined (about one round trip):
 * k ST_PART_STATE reads the partition's state. codes[i] 0 or
 * CHC_EZK_NONODE, outs[i] the data. */
#define ST_PART_STATE ((unsigned)-1)
struct st_node {
    const char *part;
    unsigned k;
};
int st_read_many(const struct st_table *t, const struct st_node *nodes, size_t n,
                 struct chc_buf *outs, int *codes, struct chc_err *err);

/* The partition list: one node <t>/partitions while its text fits in
 * `chunk` bytes, else "#chunks N" there and the text in <t>/plist/0..N-1,
 * written first (a node holds at most 1 MiB). read: CHC_EZK_NONODE while
 * there is none; st (optional) the stat of <t>/partitions. */
int st_plist_read(const struct st_table *t, struct chc_buf *text, struct zk_stat *st,
                  struct chc_err *err);
int st_plist_publish(const struct st_table *t, const char *text, size_t len, size_t chunk,
                     struct chc_err *err);

#endif

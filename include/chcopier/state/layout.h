/* layout.h — where the task's state lives in ZooKeeper: every path and
 * node name chcopier uses, built in one place (docs/design.md, "ZooKeeper
 * layout"). Pure: text in, text out.
 *
 *   <task>/description                 the task XML
 *   <task>/workers/<worker id>         E  registration (state/codec.h)
 *   <task>/active, active/<id>#<n>     max_workers slots
 *   <task>/tables/<id>/<def hash>      a table definition's root, <t>:
 *     <t>/partitions, <t>/plist/<i>      the partition list (chunks)
 *     <t>/parts/<p>, <t>/parts/<p>/<k>   partition move state, piece state
 *     <t>/locks/<p>#<k|move>, <t>/init   E  claims
 *     <t>/staging_reset, <t>/done, <t>/routing
 * <id> is "<cluster_push>.<database_push>.<table_push>" and <p> a
 * partition literal, each escaped by st_node_name (no '/', printable).
 */
#ifndef CHC_STATE_LAYOUT_H
#define CHC_STATE_LAYOUT_H

#include "chcopier/base/buf.h"

struct cfg_table;

/* A literal as one node name: [A-Za-z0-9._-] kept, every other byte %XX. */
int st_node_name(const char *literal, struct chc_buf *out);
/* Back; -EINVAL for a bad %XX. */
int st_node_unname(const char *name, struct chc_buf *out);

/* <task_path>/tables/<id>/<definition hash> (out reset first). */
int st_path_table(const char *task_path, const struct cfg_table *tb, struct chc_buf *out);
/* The task's own nodes. */
enum st_task_node {
    ST_DESCRIPTION, /* <task>/description */
    ST_WORKERS,     /* <task>/workers[/<child>] */
    ST_ACTIVE,      /* <task>/active[/<child>] */
    ST_TABLES,      /* <task>/tables */
};
/* A table root's nodes (under st_path_table's path). */
enum st_table_node {
    ST_PARTITIONS,    /* <t>/partitions: the partition list's head */
    ST_PLIST,         /* <t>/plist[/<chunk>] */
    ST_PARTS,         /* <t>/parts[/<p>[/<k>]] */
    ST_LOCKS,         /* <t>/locks[/<child>] */
    ST_INIT,          /* <t>/init */
    ST_STAGING_RESET, /* <t>/staging_reset */
    ST_DONE,          /* <t>/done */
    ST_ROUTING,       /* <t>/routing: how the last worker to start routes rows */
    ST_STAGING,       /* <t>/staging: the staging replica of each shard, pinned */
};
/* <task_path>/<node>[/<child>] (out reset first); child NULL: none. */
int st_path_task(const char *task_path, enum st_task_node node, const char *child,
                 struct chc_buf *out);
/* <table root>/<node>[/<child>] (out reset first); child NULL: none. */
int st_path_tnode(const char *zroot, enum st_table_node node, const char *child,
                  struct chc_buf *out);
/* <task>/active/<id>#<seq>: a max_workers slot. */
int st_path_slot(const char *task_path, const char *id, unsigned long seq, struct chc_buf *out);
/* <t>/locks/<p>#<what>: the claim of piece <what> (a split number) or of
 * the partition's move ("move"). */
int st_path_lock(const char *zroot, const char *part, const char *what, struct chc_buf *out);
/* <t>/parts/<p> (k < 0) or <t>/parts/<p>/<k>. */
int st_path_part(const char *zroot, const char *part, long k, struct chc_buf *out);
/* <t>/plist/<i>. */
int st_path_chunk(const char *zroot, size_t i, struct chc_buf *out);
/* <parent>/<child>. */
int st_path_child(const char *parent, const char *child, struct chc_buf *out);
/* <lock>.takeover: beside a claim, while a worker takes it over. */
int st_path_takeover(const char *lock, struct chc_buf *out);

#endif

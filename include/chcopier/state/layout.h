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
 *     <t>/staging_reset, <t>/done
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
/* printf into out (reset first): every other path of the layout above. */
int st_path(struct chc_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

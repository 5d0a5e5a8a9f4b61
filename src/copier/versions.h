/* versions.h — what the nodes' versions decide for a table task, once the
 * preflight has probed them (versions.c; the table of behaviours is
 * sql/dialect.h's).
 */
#ifndef CHC_COPIER_VERSIONS_H
#define CHC_COPIER_VERSIONS_H

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_task;
struct tstate;

/* "18.16.1 on h1:8123, h2:8123; 26.7.2.1 on h3:8123": every live node's
 * version, grouped (the log and this worker's note in `status`). */
int versions__line(const struct tstate *ts, struct chc_buf *out);
/* *pipe = 1 (logged) where a staging node cannot read a source replica
 * through remote() (dialect_remote_ok). */
void versions__choose_path(const struct tstate *ts, int *pipe);
/* CHC_EPREFLIGHT when the task's <settings>, <settings_pull> or
 * <settings_push> name a setting that a live node of that side knows only
 * under its old name (dialect_known_name). */
int versions__check_settings(const struct tstate *ts, const struct cfg_task *t,
                             struct chc_err *err);

#endif

/* preflight.h — what must hold before chcopier writes anything for a
 * table task, and the facts the copy needs from the servers (preflight.c's
 * top comment lists the checks).
 */
#ifndef CHC_COPIER_PREFLIGHT_H
#define CHC_COPIER_PREFLIGHT_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct cfg_replica;
struct node;
struct tstate;
struct worker;

/* Probe every node; choose source replicas and staging nodes (ts->src_rep,
 * ts->targets) among the live ones. */
int preflight__nodes(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Everything preflight.c's top comment lists; writes nothing. */
int preflight__run(struct worker *w, struct tstate *ts, struct chc_err *err);
/* After a refused statement: the element at fault, or 0. */
int preflight__diagnose(struct worker *w, struct tstate *ts, struct chc_err *err);
/* Live nodes of the push cluster. */
int preflight__push_nodes(const struct tstate *ts, const struct cfg_replica ***ret,
                          size_t *ret_n);

#endif

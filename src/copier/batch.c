/* batch.c — a batch of partition moves (batch.h): its rounds of
 * statements on every staging node, fenced by the move locks, and what a
 * failed move leaves (its count, its pieces reset for another copy).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/sql/move.h"
#include "chcopier/zk/zk.h"
#include "batch.h"
#include "nodes.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

void batch__fail(struct worker *w, struct tstate *ts, struct mv *m, const struct chc_err *e,
                    unsigned *move_failures)
{
    chc_log_warn("table '%s': move of partition %s failed: %s, retrying", ts->tb->name,
                 ts->parts[m->part].lit, e->msg);
    tstate__metric(w, ts, CHC_METRIC_ERRORS, "kind", chc_err_name(e->code), 1, WK_ADD);
    (*move_failures)++;
    m->active = 0;
}

/* Fencing before each round of ALTERs: ClickHouse cannot check a ZooKeeper
 * lock, so a mover that was stalled (SIGSTOP, a long pause) past its
 * session must find out before it touches a table. A synchronous check
 * right before the round fails with the expired session; any partition
 * whose move lock is no longer ours (owned by our session) leaves the
 * batch. */
static int mv_owned(struct worker *w, struct batch *b, struct chc_err *err)
{
    int64_t me = zk_session_id(w->zs);
    struct zk_stat st;
    size_t i;
    int r;

    for (i = 0; i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (!m->active || !m->lock)
            continue;
        r = zk_exists(w->zs, m->lock, &st, err);
        if (r == CHC_EZK_EXPIRED || r == CHC_EZK_CONNLOSS)
            return r;
        if (r < 0 || st.ephemeral_owner != me) {
            chc_log_warn("lost the move lock '%s': leaving the partition to its new owner",
                         m->lock);
            m->active = 0;
        }
    }
    return 0;
}

static int step_applies(const struct mv *m, enum move_step step)
{
    if (!m->active)
        return 0;
    switch (step) {
    case MOVE_CREATE_ASSEMBLY:
        return m->assemble || m->recheck;
    case MOVE_DROP_ASSEMBLY:
        return m->assemble && m->again;
    case MOVE_ATTACH_DEST:
        return m->assemble && m->before_total.rows > 0;
    case MOVE_ATTACH_PIECES:
        return m->assemble;
    case MOVE_REPLACE:
        return m->replace;
    case MOVE_RELEASE_PIECES:
    case MOVE_RELEASE_ASSEMBLY:
        return 0; /* release() builds its own round */
    }
    return 0;
}

/* One step for every partition of the batch it applies to, on every staging
 * node, all statements at once (nodes__multi bounds how many run, and
 * sends none once the session is gone). The locks are checked first. */
int batch__step(struct worker *w, struct tstate *ts, struct batch *b, enum move_step step,
                   struct chc_err *err)
{
    size_t cap = b->n * (ts->splits + 1) + 1, nq = cap * ts->n_targets, q = 0, ns = 0, i, t;
    const struct cfg_replica **reps = calloc(nq, sizeof(*reps));
    struct chc_buf *sql = calloc(cap, sizeof(*sql));
    const char **sqls = calloc(nq, sizeof(*sqls));
    unsigned k, nk;
    int r = reps && sql && sqls ? 0 : oom(err);

    for (i = 0; r == 0 && i < b->n && !step_applies(&b->mv[i], step); i++)
        ;
    if (r == 0 && i < b->n)
        r = mv_owned(w, b, err); /* only before a round that sends something */

    for (i = 0; r == 0 && i < b->n; i++) {
        const struct mv *m = &b->mv[i];
        if (!step_applies(m, step))
            continue;
        nk = step == MOVE_ATTACH_PIECES ? ts->parts[m->part].splits : 1;
        for (k = 0; r == 0 && k < nk; k++) {
            chc_buf_init(&sql[ns], 0);
            r = sql_move_step(ts->tb, step, ts->parts[m->part].lit, k, &sql[ns]) < 0 ? oom(err) : 0;
            for (t = 0; r == 0 && t < ts->n_targets; t++) {
                if (step == MOVE_REPLACE && m->skip[t])
                    continue;
                reps[q] = ts->targets[t].rep;
                sqls[q++] = sql[ns].buf;
            }
            ns++;
        }
    }
    if (r == 0 && q > 0 && step == MOVE_REPLACE)
        wk__fault_point(w, "before_replace"); /* the lock checked, not yet used */
    if (r == 0 && q > 0)
        r = nodes__multi(w, reps, q, sqls, NULL, NULL, NULL, err);
    for (i = 0; sql && i < ns; i++)
        chc_buf_release(&sql[i]);
    free(reps);
    free(sql);
    free(sqls);
    return r;
}

/* A partition whose staging does not hold what it should: copy its group
 * again, and assemble it from scratch when the pieces are back. */
void batch__recopy(struct worker *w, struct tstate *ts, struct mv *m, const char *why,
                      unsigned *move_failures)
{
    struct chc_err e = CHC_ERR_INIT;

    if (tstate__reset_pieces(ts, m->part, &e) == 0 &&
        tstate__part_write(ts, m->part, "assembling", &m->version, &e) == 0)
        chc_err_set(&e, CHC_EMISMATCH, "%s: copying the partition again", why);
    batch__fail(w, ts, m, &e, move_failures);
}

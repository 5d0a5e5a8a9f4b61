/* mover.c — the partition mover (exactly-once rule 3 in worker-internal.h):
 * once every piece of a partition is copied, move it, in batches of up to
 * MOVE_BATCH partitions: under its move lock check staging against the
 * source, assemble, REPLACE PARTITION into the destination, verify count and
 * checksum, record each step in the partition's state. Every step is
 * idempotent, so a move interrupted anywhere is simply repeated.
 *
 * Fencing: the state of a partition is written only over the version read
 * under its lock (st_part_write), the lock is checked to be
 * ours right before each round of ALTERs, and no statement of a round is
 * sent once the session is gone (nodes__multi). Every check reads every
 * staging node: the replicas of a non-replicated destination hold copies of
 * their own and must agree.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/options.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/state/protocol.h"
#include "chcopier/config/task.h"
#include "chcopier/state/layout.h"
#include "chcopier/zk/zk.h"
#include "discover.h"
#include "mover.h"
#include "batch.h"
#include "checks.h"
#include "drops.h"
#include "nodes.h"
#include "routing.h"
#include "sums.h"
#include "tables.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

/* All pieces of the partition's group copied from every shard that has
 * rows for it? */
static int part_ready(struct worker *w, struct tstate *ts, size_t part, struct chc_err *err)
{
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {.done = done, .started = -1, .version = -1};
    unsigned k;
    size_t s;
    int r = 1;

    if (!done)
        return oom(err);
    part = ts->parts[part].lead;
    for (k = 0; r == 1 && k < ts->parts[part].splits; k++) {
        int rr = tstate__piece_read(ts, part, k, &ps, err);
        if (rr < 0) {
            r = rr;
            break;
        }
        if (ps.started >= 0)
            r = 0;
        for (s = 0; r == 1 && s < ts->tb->pull->n_shards; s++)
            if (group_on_shard(ts, part, s) && !ps.done[s])
                r = 0;
    }
    free(done);
    return r;
}

/* Record `what` for every active partition with `only` set (NULL: every
 * active one): "<what> <rows> <checksum>", conditional on the version read
 * under the lock. */
static int mv_record(struct worker *w, struct tstate *ts, struct batch *b, const char *what,
                     int (*only)(const struct mv *), struct chc_err *err)
{
    struct chc_buf line[MOVE_BATCH];
    const char *states[MOVE_BATCH];
    size_t parts[MOVE_BATCH], i, np = 0;
    int versions[MOVE_BATCH], r = 0;

    (void)w;
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (!m->active || (only && !only(m)))
            continue;
        chc_buf_init(&line[np], 0);
        if (!strcmp(what, "assembling"))
            r = chc_buf_addstr(&line[np], "assembling");
        else
            r = chc_buf_addf(&line[np], "%s %llu %llu", what, m->exp_rows, m->exp_hash);
        if (r == 0 && !strcmp(what, "assembled"))
            r = checks__record_shards(ts, m, &line[np]);
        states[np] = line[np].buf;
        versions[np] = m->version;
        parts[np++] = i;
    }
    r = r < 0 ? oom(err) : 0;
    if (r == 0 && np > 0) {
        size_t pidx[MOVE_BATCH];
        for (i = 0; i < np; i++)
            pidx[i] = b->mv[parts[i]].part;
        r = tstate__part_write_many(ts, pidx, states, np, versions, err);
        for (i = 0; i < np; i++) /* each write that went through has its new version */
            b->mv[parts[i]].version = versions[i];
    }
    for (i = 0; i < np; i++)
        chc_buf_release(&line[i]);
    return r;
}

static int to_assemble_fresh(const struct mv *m)
{
    return m->assemble && !m->again;
}

static int to_replace(const struct mv *m)
{
    return m->replace;
}

static void batch_release(struct worker *w, struct batch *b)
{
    struct st_claimer cl = wk__claimer(w);
    size_t i;

    for (i = 0; i < b->n; i++) {
        st_release(&cl, &b->mv[i].lock);
        chc_buf_release(&b->mv[i].state);
        free(b->mv[i].before); /* one allocation for before, staged and after */
        free(b->mv[i].skip);
        free(b->mv[i].rec);
    }
    b->n = 0;
}

/* 1. Under each partition's move lock, its state and what it needs.
 * Returns how many partitions go on. */
static int batch_claim(struct worker *w, struct tstate *ts, const size_t *parts, size_t n,
                       struct batch *b, struct chc_err *err)
{
    struct proto_sums recorded;
    enum move_from from;
    size_t i, active = 0;
    int r = 0;

    for (i = 0; i < n && i < MOVE_BATCH; i++) {
        struct mv *m = &b->mv[i];
        memset(m, 0, sizeof(*m));
        chc_buf_init(&m->state, 0);
        m->part = parts[i];
        m->version = -1;
        b->n = i + 1;
        m->before = calloc(3 * (ts->n_targets ? ts->n_targets : 1), sizeof(*m->before));
        m->skip = calloc(ts->n_targets ? ts->n_targets : 1, 1);
        m->rec = calloc(ts->tb->push->n_shards ? ts->tb->push->n_shards : 1, sizeof(*m->rec));
        if (!m->before || !m->skip || !m->rec)
            return oom(err);
        m->staged = m->before + ts->n_targets;
        m->after = m->staged + ts->n_targets;
        r = tstate__lock_take(ts, m->part, "move", &m->lock, err);
        if (r == CHC_EZK_NODEEXISTS)
            continue; /* another worker moves it */
        if (r == 0)
            r = tstate__part_get(ts, m->part, &m->state, &m->version, err);
        if (r < 0)
            return r;
        from = protocol_move(m->state.buf, &recorded);
        if (from == MOVE_DONE) {
            ts->parts[m->part].done = 1;
            continue;
        }
        if (from == MOVE_BAD_STATE)
            return chc_err_set(err, CHC_ESTATE, "table '%s': partition %s has a bad state '%s'",
                               ts->tb->name, ts->parts[m->part].lit, m->state.buf);
        r = part_ready(w, ts, m->part, err);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        m->active = 1;
        m->again = from == MOVE_REASSEMBLE;
        m->assemble = from == MOVE_ASSEMBLE || from == MOVE_REASSEMBLE;
        m->recheck = from == MOVE_RECHECK;
        if (m->recheck)
            m->n_rec = protocol_shards_parse(m->state.buf, m->rec, ts->tb->push->n_shards);
        m->exp_rows = recorded.rows;
        m->exp_hash = recorded.hash;
        active++;
    }
    return (int)active;
}

/* 2. The source's sums (from discovery when it has them) and, in append
 * mode, what the destination holds now, for the partitions to assemble. */
static int batch_before(struct worker *w, struct tstate *ts, struct batch *b,
                        struct chc_err *err)
{
    size_t parts[MOVE_BATCH], sparts[MOVE_BATCH], i, np = 0, ns = 0, bad = 0;
    struct sums *per[MOVE_BATCH], *src[MOVE_BATCH];
    struct sums_round round = {0};
    int r;

    for (i = 0; i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (!m->active || !m->assemble)
            continue;
        if (ts->parts[m->part].rows >= 0 && ts->sums_key && ts->sums_key == discover__sums_key_of(ts)) {
            m->src.rows = (unsigned long long)ts->parts[m->part].rows;
            m->src.hash = ts->parts[m->part].src_hash;
        } else {
            sparts[ns] = m->part;
            src[ns++] = &m->src;
        }
        parts[np] = m->part;
        per[np++] = m->before;
    }
    r = sums__source(&round, ts, sparts, src, ns, err);
    if (r == 0 && !ts->tb->allow_drop_target_partitions)
        r = sums__targets(&round, ts, parts, per, np, ts->tb->table_push, err);
    r = sums__run_if(w, &round, r, err);
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (m->active && m->assemble && sums__total(ts, m->before, &m->before_total, &bad) < 0)
            r = chc_err_set(err, CHC_EMISMATCH,
                            "table '%s': partition %s differs between the replicas of destination "
                            "shard %zu (%s:%d) before the move; make them agree first",
                            ts->tb->name, ts->parts[m->part].lit, ts->targets[bad].shard + 1,
                            ts->targets[bad].rep->host, ts->targets[bad].rep->http_port);
    }
    return r;
}

/* 3. Assemble in <table>_assembly on every staging node (the destination's
 * rows in append mode, then every piece, by ATTACH: a snapshot nobody else
 * writes to), check it against destination + source, record
 * "assembled <rows> <checksum>". */
static int batch_assemble(struct worker *w, struct tstate *ts, struct batch *b,
                          unsigned *move_failures, struct chc_err *err)
{
    size_t parts[MOVE_BATCH], i, np = 0, assembled = 0;
    struct sums *per[MOVE_BATCH];
    struct sums_round round = {0};
    int r;

    r = mv_record(w, ts, b, "assembling", to_assemble_fresh, err);
    if (r == 0)
        r = batch__step(w, ts, b, MOVE_CREATE_ASSEMBLY, err);
    if (r == 0)
        r = batch__step(w, ts, b, MOVE_DROP_ASSEMBLY, err);
    if (r == 0)
        r = batch__step(w, ts, b, MOVE_ATTACH_DEST, err);
    if (r == 0)
        r = batch__step(w, ts, b, MOVE_ATTACH_PIECES, err);
    for (i = 0; r == 0 && i < b->n; i++)
        if (b->mv[i].active && b->mv[i].assemble) {
            parts[np] = b->mv[i].part;
            per[np++] = b->mv[i].staged;
        }
    if (r == 0)
        r = sums__targets(&round, ts, parts, per, np, NULL, err);
    r = sums__run_if(w, &round, r, err);
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        struct chc_err e = CHC_ERR_INIT;
        if (!m->active || !m->assemble || !checks__assembled(w, ts, m, move_failures))
            continue;
        if (wk__fault_draw(w, w->o->move_fault_probability, "move %s %s %u",
                           ts->tb->def_hash_hex, ts->parts[m->part].lit, *move_failures)) {
            chc_err_set(&e, CHC_EFAULT_INJECTED, "move fault injected");
            batch__fail(w, ts, m, &e, move_failures);
            continue;
        }
        m->replace = 1;
        assembled++;
    }
    if (r == 0 && assembled)
        wk__fault_point(w, "after_assemble");
    if (r == 0)
        r = mv_record(w, ts, b, "assembled", to_replace, err);
    if (r == 0 && assembled)
        wk__fault_point(w, "after_assembled_record");
    return r;
}

/* An assembly recorded by an earlier attempt is replaced from (after
 * checks__recheck); its expected sums came with its state. */
static void batch_recorded(struct batch *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        if (b->mv[i].active && b->mv[i].recheck)
            b->mv[i].replace = 1;
}

/* Move up to MOVE_BATCH complete partitions together (docs/design.md):
 *   1. under each partition's move lock, its state;
 *   2. the source's sums and what the destination holds (append mode);
 *   3. assemble, check, record "assembled <rows> <checksum>";
 *   4. an assembly of an earlier attempt is checked before it is used;
 *   5. REPLACE PARTITION ... FROM the assembly, for all at once
 *      (idempotent, so a partial failure is simply repeated); record "moved";
 *   6. verify every destination partition; record "done"; drop the
 *      pieces' partition and the partition's own assembly table. A stalled
 *      mover that wakes up late and repeats the REPLACE then names a table
 *      that is gone and fails; before that, it replaces with the same rows.
 *      Never from an emptied assembly: an assembly is never emptied, only
 *      dropped (and a new one would be empty of a partition nobody moves).
 * Each step is one round of concurrent statements for the whole batch.
 * Returns the number of partitions moved, or < 0. */
/* The batch's staging data, now moved and verified, is dropped from every
 * staging node (not with --safe-mode): each piece table's partitions in one
 * ALTER, each partition's assembly table, in the background
 * (drops__queue): the piece tables' through the drop gate, the assemblies'
 * (no copy writes to them) without. Best effort: what stays is dropped with
 * the staging tables at the end. sql[0, np) are the piece tables'. */
static int release_sqls(const struct tstate *ts, const struct batch *b, struct chc_buf *sql,
                        size_t *np, size_t *ns)
{
    const char *lits[MOVE_BATCH];
    size_t i, n;
    unsigned k;
    int r = 0;

    for (k = 0; r == 0 && k < ts->splits; k++) {
        for (i = 0, n = 0; i < b->n; i++)
            if (b->mv[i].active && ts->parts[b->mv[i].part].splits > k)
                lits[n++] = ts->parts[b->mv[i].part].lit;
        if (n)
            r = sql_release_pieces(ts->tb, k, lits, n, &sql[(*ns)++]);
    }
    *np = *ns;
    for (i = 0; r == 0 && i < b->n; i++)
        if (b->mv[i].active)
            r = sql_move_step(ts->tb, MOVE_RELEASE_ASSEMBLY, ts->parts[b->mv[i].part].lit, 0,
                              &sql[(*ns)++]);
    return r;
}

static void release(struct worker *w, struct tstate *ts, struct batch *b)
{
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf gate = CHC_BUF_INIT;
    size_t cap = ts->splits + MOVE_BATCH, np = 0, ns = 0, q, i, t;
    int pass;
    struct chc_buf *sql = calloc(cap, sizeof(*sql));
    const struct cfg_replica **reps = calloc(cap * ts->n_targets, sizeof(*reps));
    const char **sqls = calloc(cap * ts->n_targets, sizeof(*sqls));
    int r = sql && reps && sqls ? 0 : oom(&e);

    for (i = 0; sql && i < cap; i++)
        chc_buf_init(&sql[i], 0);
    if (w->o->safe_mode)
        goto out;
    if (r == 0 && release_sqls(ts, b, sql, &np, &ns) < 0)
        r = oom(&e);
    if (r == 0 && tstate__drop_gate(ts, &gate) < 0)
        r = oom(&e);
    /* Not waited for: the next batch goes on while a drop waits for the
     * piece table's lock (a copy into it still running). */
    for (pass = 0; r == 0 && pass < 2; pass++) {
        for (q = 0, i = pass ? np : 0; i < (pass ? ns : np); i++)
            for (t = 0; t < ts->n_targets; t++) {
                reps[q] = ts->targets[t].rep;
                sqls[q++] = sql[i].buf;
            }
        if (q > 0)
            r = drops__queue(w, pass ? NULL : gate.buf, reps, q, sqls, &e);
    }
    if (r < 0)
        chc_log_warn("table '%s': cannot drop the staging data of moved partitions (%s); it "
                     "goes with the staging tables at the end",
                     ts->tb->name, e.msg);
out:
    for (i = 0; sql && i < cap; i++)
        chc_buf_release(&sql[i]);
    free(sql);
    free(reps);
    free(sqls);
    chc_buf_release(&gate);
}

static int move_batch(struct worker *w, struct tstate *ts, const size_t *parts, size_t n,
                      unsigned *move_failures, struct chc_err *err)
{
    struct batch b;
    size_t i, assembling = 0;
    int r, moved = 0;

    memset(&b, 0, sizeof(b));
    b.t0 = now_ms();
    r = batch_claim(w, ts, parts, n, &b, err);
    if (r <= 0)
        goto out;
    for (i = 0; i < b.n; i++)
        assembling += b.mv[i].active && b.mv[i].assemble;
    if (assembling)
        r = batch_before(w, ts, &b, err);
    if (r >= 0 && assembling)
        r = batch_assemble(w, ts, &b, move_failures, err);
    if (r >= 0) {
        batch_recorded(&b);
        r = checks__recheck(w, ts, &b, move_failures, err);
    }
    if (r >= 0)
        r = batch__step(w, ts, &b, MOVE_REPLACE, err);
    if (r >= 0)
        wk__fault_point(w, "after_replace");
    if (r >= 0)
        r = mv_record(w, ts, &b, "moved", to_replace, err);
    if (r >= 0)
        wk__fault_point(w, "before_verify");
    if (r >= 0)
        r = checks__verify(w, ts, &b, move_failures, err);
    if (r >= 0)
        r = mv_record(w, ts, &b, "done", NULL, err);
    if (r >= 0)
        release(w, ts, &b);
    /* The point is after the drops, not after queueing them. */
    if (r >= 0 && wk__fault_armed(w, "after_release"))
        drops__wait(w, 0);
    if (r >= 0)
        wk__fault_point(w, "after_release");
    for (i = 0; r >= 0 && i < b.n; i++) {
        struct mv *m = &b.mv[i];
        struct chc_log_fields lf = {.table = ts->tb->name, .partition = ts->parts[m->part].lit,
                                    .piece = -1, .shard = -1, .event = "partition_moved",
                                    .rows = (long long)m->exp_rows, .bytes = -1,
                                    .duration = (double)(now_ms() - b.t0) / 1000.0};
        if (!m->active)
            continue;
        ts->parts[m->part].done = 1;
        moved++;
        chc_log_at(CHC_LOG_INFO, &lf,
                   "partition moved and verified: %llu rows in the destination", m->exp_rows);
    }
    if (r >= 0) {
        chc_log_debug("table '%s': moved %d partition(s) in %" PRIu64 " ms", ts->tb->name, moved,
                      now_ms() - b.t0);
        r = moved;
    }
out:
    batch_release(w, &b);
    return r;
}

/* Every piece of the partition's group copied from every shard that has
 * rows for it (cache). */
static int part_cached_ready(const struct tstate *ts, size_t part)
{
    size_t lead = ts->parts[part].lead, s;
    unsigned k;

    for (k = 0; k < ts->parts[lead].splits; k++) {
        const unsigned char *d = pdone_at(ts, lead, k);
        if (ts->pbusy[lead * ts->splits + k])
            return 0;
        for (s = 0; s < ts->tb->pull->n_shards; s++)
            if (group_on_shard(ts, lead, s) && !d[s])
                return 0;
    }
    return 1;
}

/* Move every partition the cache says is complete. */
int mover__move_ready(struct worker *w, struct tstate *ts, unsigned *move_failures,
                      struct chc_err *err)
{
    size_t parts[MOVE_BATCH], n = 0, i;
    int r, moved = 0;

    for (i = 0; i <= ts->n_parts; i++) {
        if (i < ts->n_parts && (ts->parts[i].done || !part_cached_ready(ts, i)))
            continue;
        if (i < ts->n_parts)
            parts[n++] = i;
        if (n == 0 || (n < MOVE_BATCH && i < ts->n_parts))
            continue;
        r = move_batch(w, ts, parts, n, move_failures, err);
        n = 0;
        if (r < 0) {
            if (r == CHC_EZK_EXPIRED || chc_err_is_permanent(r))
                return r;
            (*move_failures)++;
            chc_log_warn("table '%s': moving partitions failed: %s, retrying", ts->tb->name,
                         err->msg);
        } else {
            moved += r;
        }
        if (*move_failures >= w->o->max_piece_tries_alter * (ts->n_parts ? ts->n_parts : 1)) {
            char last[CHC_ERR_MSG_MAX];
            snprintf(last, sizeof(last), "%s", err->msg); /* not err->msg into itself */
            return chc_err_set(err, CHC_ESTATE, "table '%s': too many failed moves; last: %.900s",
                               ts->tb->name, last);
        }
    }
    return moved;
}

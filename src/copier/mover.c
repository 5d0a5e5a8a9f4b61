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

/* One partition in a batch of moves. */
struct mv {
    size_t part;
    char *lock;
    struct chc_buf state;
    int version;      /* of parts/<p>, read under the lock */
    struct sums src, before_total;
    struct sums *before, *staged, *after; /* per staging node */
    unsigned long long exp_rows, exp_hash;
    int active;    /* still going in this batch */
    int again;     /* an earlier attempt died while assembling */
    int assemble;  /* needs assembling in this attempt */
    int recheck;   /* assembled by an earlier attempt: check the assembly first */
    int replace;   /* needs the REPLACE (not yet recorded moved) */
};

struct batch {
    struct mv mv[MOVE_BATCH];
    size_t n;
    uint64_t t0;
};

static void mv_fail(struct worker *w, struct tstate *ts, struct mv *m, const struct chc_err *e,
                    unsigned *move_failures)
{
    chc_log_warn("table '%s': move of partition %s failed: %s, retrying", ts->tb->name,
                 ts->parts[m->part].lit, e->msg);
    wk__metric(w, ts, CHC_METRIC_ERRORS, "kind", chc_err_name(e->code), 1, WK_ADD);
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
static int mv_step(struct worker *w, struct tstate *ts, struct batch *b, enum move_step step,
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

/* Record `what` for every active partition with `only` set (NULL: every
 * active one): "<what> <rows> <checksum>", conditional on the version read
 * under the lock. */
static int mv_record(struct worker *w, struct tstate *ts, struct batch *b, const char *what,
                     int (*only)(const struct mv *), struct chc_err *err)
{
    char lines[MOVE_BATCH][80];
    const char *states[MOVE_BATCH];
    int *versions[MOVE_BATCH];
    size_t parts[MOVE_BATCH], i, np = 0;

    for (i = 0; i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (!m->active || (only && !only(m)))
            continue;
        if (!strcmp(what, "assembling"))
            snprintf(lines[np], sizeof(lines[np]), "assembling");
        else
            snprintf(lines[np], sizeof(lines[np]), "%s %llu %llu", what, m->exp_rows,
                     m->exp_hash);
        states[np] = lines[np];
        versions[np] = &m->version;
        parts[np++] = m->part;
    }
    for (i = 0; i < np; i++) {
        int r = tstate__part_write(ts, parts[i], states[i], versions[i], err);
        if (r < 0)
            return r;
    }
    return 0;
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
        if (!m->before)
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
    if (r == 0)
        r = sums__run(w, &round, err);
    sums__release(&round);
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

/* A partition whose staging does not hold what it should: copy its group
 * again, and assemble it from scratch when the pieces are back. */
static void mv_recopy(struct worker *w, struct tstate *ts, struct mv *m, const char *why,
                      unsigned *move_failures)
{
    struct chc_err e = CHC_ERR_INIT;

    if (tstate__reset_pieces(ts, m->part, &e) == 0 &&
        tstate__part_write(ts, m->part, "assembling", &m->version, &e) == 0)
        chc_err_set(&e, CHC_EMISMATCH, "%s: copying the partition again", why);
    mv_fail(w, ts, m, &e, move_failures);
}

static int assembled_check(struct worker *w, struct tstate *ts, struct mv *m,
                           unsigned *move_failures)
{
    const struct chc_log_fields lf = {.table = ts->tb->name, .partition = ts->parts[m->part].lit,
                                      .piece = -1, .shard = -1, .event = "move",
                                      .rows = -1, .bytes = -1, .duration = -1.0,
                                      .error = "staging mismatch"};
    struct sums got;
    size_t bad = 0;
    int agree = sums__total(ts, m->staged, &got, &bad) == 0;

    m->exp_rows = m->before_total.rows + m->src.rows;
    m->exp_hash = m->before_total.hash + m->src.hash;
    switch (protocol_assembled(agree, got, m->before_total, m->src)) {
    case ASSEMBLED_OK:
        return 1;
    case ASSEMBLED_STRAY:
        chc_log_at(CHC_LOG_ERROR, &lf, "the assembly on %s:%d differs from the other staging "
                   "node(s) of destination shard %zu (a stray insert?)",
                   ts->targets[bad].rep->host, ts->targets[bad].rep->http_port,
                   ts->targets[bad].shard + 1);
        mv_recopy(w, ts, m, "staging replicas disagree", move_failures);
        return 0;
    case ASSEMBLED_MISMATCH:
        /* A stray insert of a dead worker shows here, before anything
         * reaches the destination: copy the partition again. */
        chc_log_at(CHC_LOG_ERROR, &lf,
                   "assembly holds %llu rows (checksum %llu), expected %llu (destination) + "
                   "%llu (source) = %llu (checksum %llu): recopying the partition",
                   got.rows, got.hash, m->before_total.rows, m->src.rows, m->exp_rows,
                   m->exp_hash);
        /* Rows missing after a routed copy went to a replica we do not
         * stage on: the server's view of the cluster is not ours. */
        if (got.rows < m->exp_rows)
            routing__fallback(w, ts, "a routed copy left rows on a node that is not a staging "
                                   "node");
        mv_recopy(w, ts, m, "staging does not match the source", move_failures);
        return 0;
    }
    return 0;
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
        r = mv_step(w, ts, b, MOVE_CREATE_ASSEMBLY, err);
    if (r == 0)
        r = mv_step(w, ts, b, MOVE_DROP_ASSEMBLY, err);
    if (r == 0)
        r = mv_step(w, ts, b, MOVE_ATTACH_DEST, err);
    if (r == 0)
        r = mv_step(w, ts, b, MOVE_ATTACH_PIECES, err);
    for (i = 0; r == 0 && i < b->n; i++)
        if (b->mv[i].active && b->mv[i].assemble) {
            parts[np] = b->mv[i].part;
            per[np++] = b->mv[i].staged;
        }
    if (r == 0)
        r = sums__targets(&round, ts, parts, per, np, NULL, err);
    if (r == 0)
        r = sums__run(w, &round, err);
    sums__release(&round);
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        struct chc_err e = CHC_ERR_INIT;
        if (!m->active || !m->assemble || !assembled_check(w, ts, m, move_failures))
            continue;
        if (wk__fault_draw(w, w->o->move_fault_probability, "move %s %s %u",
                           ts->tb->def_hash_hex, ts->parts[m->part].lit, *move_failures)) {
            chc_err_set(&e, CHC_EFAULT_INJECTED, "move fault injected");
            mv_fail(w, ts, m, &e, move_failures);
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
 * batch_recheck); its expected sums came with its state. */
static void batch_recorded(struct batch *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        if (b->mv[i].active && b->mv[i].recheck)
            b->mv[i].replace = 1;
}

/* 4. Partitions assembled by an earlier attempt: the assembly must still
 * hold what was recorded. Staging tables re-created since (say, after an
 * operator changed the destination) hold nothing, and a REPLACE from them
 * would empty the partition. If the assembly differs, the destination may
 * already hold the partition (the REPLACE ran, "moved" was not recorded):
 * then only verify; else copy the partition again. */
static int batch_recheck(struct worker *w, struct tstate *ts, struct batch *b,
                         unsigned *move_failures, struct chc_err *err)
{
    size_t parts[MOVE_BATCH], i, np = 0, bad = 0;
    struct sums *per[MOVE_BATCH], got;
    struct sums_round round = {0};
    int r = 0;

    for (i = 0; i < b->n; i++)
        if (b->mv[i].active && b->mv[i].recheck) {
            parts[np] = b->mv[i].part;
            per[np++] = b->mv[i].staged;
        }
    if (np == 0)
        return 0;
    /* A lost assembly comes back empty: the verdict below is "recopy". */
    r = mv_step(w, ts, b, MOVE_CREATE_ASSEMBLY, err);
    if (r == 0)
        r = sums__targets(&round, ts, parts, per, np, NULL, err);
    for (i = 0, np = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (m->active && m->recheck) { /* the destination too, in the same round */
            parts[np] = m->part;
            per[np++] = m->after;
        }
    }
    if (r == 0)
        r = sums__targets(&round, ts, parts, per, np, ts->tb->table_push, err);
    if (r == 0)
        r = sums__run(w, &round, err);
    sums__release(&round);
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        struct sums exp = {m->exp_rows, m->exp_hash}, dest;
        int asm_agree, dest_agree;
        if (!m->active || !m->recheck)
            continue;
        asm_agree = sums__total(ts, m->staged, &got, &bad) == 0;
        dest_agree = sums__total(ts, m->after, &dest, &bad) == 0;
        switch (protocol_recheck(asm_agree, got, dest_agree, dest, exp)) {
        case RECHECK_REPLACE:
            continue; /* the assembly is intact: REPLACE from it */
        case RECHECK_VERIFY_ONLY:
            chc_log_info("table '%s': partition %s was already replaced: verifying it",
                         ts->tb->name, ts->parts[m->part].lit);
            m->replace = 0;
            continue;
        case RECHECK_RECOPY:
            break;
        }
        chc_log_warn("table '%s': the assembly of partition %s no longer holds the %llu rows "
                     "recorded (staging tables re-created?); the destination is untouched",
                     ts->tb->name, ts->parts[m->part].lit, m->exp_rows);
        mv_recopy(w, ts, m, "the assembly was lost", move_failures);
    }
    return r;
}

/* 6. Every staging node's destination partition must hold what was
 * recorded; the replicas of a shard must agree. */
static int batch_verify(struct worker *w, struct tstate *ts, struct batch *b,
                        unsigned *move_failures, struct chc_err *err)
{
    size_t parts[MOVE_BATCH], i, np = 0, bad = 0;
    struct sums *per[MOVE_BATCH], got;
    struct sums_round round = {0};
    int r;

    for (i = 0; i < b->n; i++)
        if (b->mv[i].active) {
            memset(b->mv[i].after, 0, ts->n_targets * sizeof(*b->mv[i].after));
            parts[np] = b->mv[i].part;
            per[np++] = b->mv[i].after;
        }
    r = sums__targets(&round, ts, parts, per, np, ts->tb->table_push, err);
    if (r == 0)
        r = sums__run(w, &round, err);
    sums__release(&round);
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        const struct chc_log_fields lf = {.table = ts->tb->name,
                                          .partition = ts->parts[m->part].lit, .piece = -1,
                                          .shard = -1, .event = "move", .rows = -1, .bytes = -1,
                                          .duration = -1.0, .error = "destination mismatch"};
        struct chc_err e = CHC_ERR_INIT;
        struct sums exp = {m->exp_rows, m->exp_hash};
        int agree;
        if (!m->active)
            continue;
        agree = sums__total(ts, m->after, &got, &bad) == 0;
        if (protocol_verified(agree, got, exp))
            continue;
        if (!agree) {
            chc_log_at(CHC_LOG_ERROR, &lf, "verification failed: %s:%d differs from the other "
                       "replica(s) of destination shard %zu",
                       ts->targets[bad].rep->host, ts->targets[bad].rep->http_port,
                       ts->targets[bad].shard + 1);
        } else {
            chc_log_at(CHC_LOG_ERROR, &lf,
                       "verification failed: destination has %llu rows (checksum %llu), "
                       "expected %llu (checksum %llu)",
                       got.rows, got.hash, m->exp_rows, m->exp_hash);
        }
        chc_err_set(&e, CHC_EMISMATCH, "partition %s failed verification",
                    ts->parts[m->part].lit);
        mv_fail(w, ts, m, &e, move_failures);
    }
    return r;
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
 * staging node in one round (not with --safe-mode): each piece table's
 * partitions in one ALTER, each partition's assembly table. Best effort:
 * what stays is dropped with the staging tables at the end. */
static int release_sqls(const struct tstate *ts, const struct batch *b, struct chc_buf *sql,
                        size_t *ns)
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
    for (i = 0; r == 0 && i < b->n; i++)
        if (b->mv[i].active)
            r = sql_move_step(ts->tb, MOVE_RELEASE_ASSEMBLY, ts->parts[b->mv[i].part].lit, 0,
                              &sql[(*ns)++]);
    return r;
}

static void release(struct worker *w, struct tstate *ts, struct batch *b)
{
    struct chc_err e = CHC_ERR_INIT;
    size_t cap = ts->splits + MOVE_BATCH, ns = 0, q = 0, i, t;
    struct chc_buf *sql = calloc(cap, sizeof(*sql));
    const struct cfg_replica **reps = calloc(cap * ts->n_targets, sizeof(*reps));
    const char **sqls = calloc(cap * ts->n_targets, sizeof(*sqls));
    int r = sql && reps && sqls ? 0 : oom(&e);

    for (i = 0; sql && i < cap; i++)
        chc_buf_init(&sql[i], 0);
    if (w->o->safe_mode)
        goto out;
    if (r == 0 && release_sqls(ts, b, sql, &ns) < 0)
        r = oom(&e);
    for (i = 0; r == 0 && i < ns; i++)
        for (t = 0; t < ts->n_targets; t++) {
            reps[q] = ts->targets[t].rep;
            sqls[q++] = sql[i].buf;
        }
    if (r == 0 && q > 0)
        r = nodes__multi(w, reps, q, sqls, NULL, NULL, NULL, &e);
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
        r = batch_recheck(w, ts, &b, move_failures, err);
    }
    if (r >= 0)
        r = mv_step(w, ts, &b, MOVE_REPLACE, err);
    if (r >= 0)
        wk__fault_point(w, "after_replace");
    if (r >= 0)
        r = mv_record(w, ts, &b, "moved", to_replace, err);
    if (r >= 0)
        wk__fault_point(w, "before_verify");
    if (r >= 0)
        r = batch_verify(w, ts, &b, move_failures, err);
    if (r >= 0)
        r = mv_record(w, ts, &b, "done", NULL, err);
    if (r >= 0)
        release(w, ts, &b);
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

/* mover.c — the partition mover (exactly-once rule 3 in worker-internal.h):
 * once every piece of a partition is copied, move it, in batches of up to
 * MOVE_BATCH partitions: under its move lock check staging against the
 * source, assemble, REPLACE PARTITION into the destination, verify count and
 * checksum, record each step in the partition's state. Every step is
 * idempotent, so a move interrupted anywhere is simply repeated.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/buf.h"
#include "chcopier/cli.h"
#include "chcopier/log.h"
#include "chcopier/metrics.h"
#include "chcopier/plan.h"
#include "chcopier/task.h"
#include "chcopier/zk.h"
#include "worker-internal.h"

#include "banned.h"

/* Partitions moved together (one round of statements per step). */
#define MOVE_BATCH 32

struct sums {
    unsigned long long rows;
    unsigned long long hash;
};

/* Count [and checksum] of n partitions in one statement:
 * "SELECT multiIf(<p> = a, 1, <p> = b, 2, ..., 0) AS _i, count()[, sum(hash)]
 *  FROM <db.table> WHERE <p> IN (a, b, ...)[ AND where] GROUP BY _i"
 * (partitions without rows give no line). */
static int sums_sql(const struct tstate *ts, const size_t *parts, size_t n, const char *db,
                    const char *table, const char *hash, int with_where, struct chc_buf *b)
{
    const char *lits[MOVE_BATCH];
    size_t i;
    int r;

    if (n < 1 || n > MOVE_BATCH)
        CHC_BUG("checksum query over %zu partitions", n);
    chc_buf_reset(b);
    r = chc_buf_addstr(b, n == 1 ? "SELECT 1" : "SELECT multiIf(");
    for (i = 0; r == 0 && n > 1 && i < n; i++) {
        r = plan_partition_filter(ts->tb, ts->parts[parts[i]].lit, b);
        if (r == 0)
            r = chc_buf_addf(b, ", %zu, ", i + 1);
    }
    if (r == 0 && n > 1)
        r = chc_buf_addstr(b, "0)");
    if (r == 0)
        r = chc_buf_addstr(b, " AS _i, count()");
    if (r == 0 && hash)
        r = chc_buf_addf(b, ", ifNull(sum(%s), 0)", hash);
    if (r == 0)
        r = chc_buf_addstr(b, " FROM ");
    if (r == 0)
        r = wk__add_table_ref(b, db, table);
    if (r == 0)
        r = chc_buf_addstr(b, " WHERE (");
    for (i = 0; i < n; i++)
        lits[i] = ts->parts[parts[i]].lit;
    if (r == 0)
        r = plan_partition_set_filter(ts->tb, lits, n, b);
    if (r == 0)
        r = chc_buf_addch(b, ')');
    if (r == 0 && with_where && ts->tb->where_condition)
        r = chc_buf_addf(b, " AND (%s)", ts->tb->where_condition);
    if (r == 0)
        r = chc_buf_addstr(b, " GROUP BY _i FORMAT TabSeparated");
    return r;
}

/* Sums of a batch of partitions, queried on many nodes at once (one
 * statement per node for the whole batch) and added up per partition: the
 * source (every shard that has any of them, columns cast to the
 * destination's types) and destination-side tables (one staging node per
 * destination shard; the others hold copies). */
#define SUMS_MAX 256

struct sums_batch {
    size_t n;
    const struct cfg_replica *reps[SUMS_MAX];
    struct chc_buf sql[SUMS_MAX];
    const char *sqls[SUMS_MAX];
    int push[SUMS_MAX];
    int with_hash[SUMS_MAX];
    struct sums **acc[SUMS_MAX]; /* per node: partition i's accumulator */
    size_t n_acc[SUMS_MAX];
};

static void sums_batch_init(struct sums_batch *b)
{
    size_t i;

    b->n = 0;
    for (i = 0; i < SUMS_MAX; i++) {
        chc_buf_init(&b->sql[i], 0);
        b->acc[i] = NULL;
    }
}

static void sums_batch_release(struct sums_batch *b)
{
    size_t i;

    for (i = 0; i < SUMS_MAX; i++) {
        chc_buf_release(&b->sql[i]);
        free(b->acc[i]);
        b->acc[i] = NULL;
    }
    b->n = 0;
}

/* Partitions parts[0..n) into accumulators acc[0..n); table == NULL: the
 * source. */
static int sums_batch_add(struct sums_batch *b, const struct tstate *ts, const size_t *parts,
                          struct sums *const *acc, size_t n, const char *table, int with_hash,
                          struct chc_err *err)
{
    size_t nodes = table ? ts->n_targets : ts->tb->pull->n_shards, i, j, last = (size_t)-1;
    int r = 0;

    if (n == 0)
        return 0;
    for (i = 0; r == 0 && i < nodes; i++) {
        int any = 0;
        if (!table) {
            for (j = 0; j < n; j++)
                any |= ts->parts[parts[j]].on_shard[i];
            if (!any)
                continue;
        }
        if (table && ts->targets[i].shard == last)
            continue;
        if (b->n == SUMS_MAX)
            return chc_err_set(err, CHC_ETOOBIG, "too many nodes for one checksum round");
        if (table) {
            last = ts->targets[i].shard;
            b->reps[b->n] = ts->targets[i].rep;
            r = sums_sql(ts, parts, n, ts->tb->database_push, table,
                         with_hash ? ts->hash_dst : NULL, 0, &b->sql[b->n]);
        } else {
            b->reps[b->n] = ts->src_rep[i];
            r = sums_sql(ts, parts, n, ts->tb->database_pull, ts->tb->table_pull,
                         with_hash ? ts->hash_src : NULL, 1, &b->sql[b->n]);
        }
        b->sqls[b->n] = b->sql[b->n].buf;
        b->push[b->n] = table != NULL;
        b->with_hash[b->n] = with_hash;
        free(b->acc[b->n]);
        b->acc[b->n] = malloc(n * sizeof(*b->acc[b->n]));
        if (!b->acc[b->n])
            return oom(err);
        for (j = 0; j < n; j++)
            b->acc[b->n][j] = acc[j];
        b->n_acc[b->n] = n;
        b->n++;
    }
    return r < 0 ? oom(err) : 0;
}

static int sums_batch_run(struct worker *w, struct sums_batch *b, struct chc_err *err)
{
    struct chc_buf out[SUMS_MAX];
    size_t i;
    int r;

    for (i = 0; i < b->n; i++)
        chc_buf_init(&out[i], 0);
    r = wk__multi_query(w, b->reps, b->n, b->sqls, NULL, out, b->push, err);
    for (i = 0; r == 0 && i < b->n; i++) {
        const char *line = out[i].buf;
        while (r == 0 && *line) {
            unsigned long long a = 0, h = 0;
            size_t idx = 0;
            int want = b->with_hash[i] ? 3 : 2;
            if (sscanf(line, b->with_hash[i] ? "%zu\t%llu\t%llu" : "%zu\t%llu", &idx, &a, &h) !=
                    want ||
                idx < 1 || idx > b->n_acc[i]) {
                r = chc_err_set(err, CHC_EPARSE, "unexpected answer to a checksum query: '%.60s'",
                                line);
                break;
            }
            b->acc[i][idx - 1]->rows += a;
            b->acc[i][idx - 1]->hash += h;
            line = strchr(line, '\n');
            line = line ? line + 1 : "";
        }
    }
    for (i = 0; i < b->n; i++)
        chc_buf_release(&out[i]);
    return r;
}

/* All pieces of the partition's group copied from every shard that has
 * rows for it? */
static int part_ready(struct worker *w, struct tstate *ts, size_t part, struct chc_err *err)
{
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1);
    struct piece_state ps = {done, -1, 0, -1, 0};
    unsigned k;
    size_t s;
    int r = 1;

    if (!done)
        return oom(err);
    part = ts->parts[part].lead;
    for (k = 0; r == 1 && k < ts->parts[part].splits; k++) {
        int rr = zkstate__piece_read(w, ts, part, k, &ps, err);
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
    struct sums src, before, staged, after;
    unsigned long long exp_rows, exp_hash;
    int again;    /* an earlier attempt died while assembling */
    int active;   /* still going in this batch */
    int assemble; /* needs assembling in this attempt */
    int replace;  /* needs the REPLACE (not yet recorded moved) */
};

static void mv_fail(struct worker *w, struct tstate *ts, struct mv *m, const struct chc_err *e,
                    unsigned *move_failures)
{
    chc_log_warn("table '%s': move of partition %s failed: %s, retrying", ts->tb->name,
                 ts->parts[m->part].lit, e->msg);
    wk__metric(w, ts, CHC_METRIC_ERRORS, "kind", chc_err_name(e->code), 1, 0);
    (*move_failures)++;
    m->active = 0;
}

/* Fencing before each round of ALTERs: ClickHouse cannot check a ZooKeeper
 * lock, so a mover that was stalled (SIGSTOP, a long pause) past its
 * session must find out before it touches a table. A synchronous check
 * right before the round fails with the expired session; any partition
 * whose move lock is no longer ours leaves the batch. */
static int mv_owned(struct worker *w, struct mv *mv, size_t n, struct chc_err *err)
{
    int64_t me = zk_session_id(w->zs);
    struct zk_stat st;
    size_t i;
    int r;

    for (i = 0; i < n; i++) {
        if (!mv[i].active || !mv[i].lock)
            continue;
        r = zk_exists(w->zs, mv[i].lock, &st, err);
        if (r == CHC_EZK_EXPIRED || r == CHC_EZK_CONNLOSS)
            return r;
        if (r < 0 || st.ephemeral_owner != me) {
            chc_log_warn("lost the move lock '%s': leaving the partition to its new owner",
                         mv[i].lock);
            mv[i].active = 0;
        }
    }
    return 0;
}

/* The text of one move statement for partition `part` (piece k for
 * MOVE_ATTACH_PIECES): what the mover runs and `chcopier plan` shows. */
int mover__stmt(const struct tstate *ts, enum move_step step, size_t part, unsigned k,
                struct chc_buf *out)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf tbl = CHC_BUF_INIT, from = CHC_BUF_INIT;
    int r;

    r = step == MOVE_REPLACE ? chc_buf_addstr(&tbl, tb->table_push) : plan_assembly_table(tb, &tbl);
    if (r == 0 && step == MOVE_ATTACH_DEST)
        r = chc_buf_addstr(&from, tb->table_push);
    else if (r == 0 && step == MOVE_ATTACH_PIECES)
        r = plan_piece_table(tb, k, &from);
    else if (r == 0 && step == MOVE_REPLACE)
        r = plan_assembly_table(tb, &from);
    if (r == 0)
        r = chc_buf_addstr(out, "ALTER TABLE ");
    if (r == 0)
        r = wk__add_table_ref(out, tb->database_push, tbl.buf);
    if (r == 0)
        r = chc_buf_addstr(out, step == MOVE_DROP_ASSEMBLY ? " DROP "
                                : step == MOVE_REPLACE     ? " REPLACE "
                                                           : " ATTACH ");
    if (r == 0)
        r = plan_partition_clause(ts->parts[part].lit, out);
    if (r == 0 && from.len) {
        r = chc_buf_addstr(out, " FROM ");
        if (r == 0)
            r = wk__add_table_ref(out, tb->database_push, from.buf);
    }
    chc_buf_release(&tbl);
    chc_buf_release(&from);
    return r;
}

/* One step for every partition of the batch it applies to, on every staging
 * node, all statements at once (wk__multi_query bounds how many run). */
static int mv_step(struct worker *w, struct tstate *ts, struct mv *mv, size_t n,
                   enum move_step step, struct chc_err *err)
{
    size_t cap = n * (ts->splits + 1) + 1, nq = cap * ts->n_targets, q = 0, ns = 0, i, t;
    const struct cfg_replica **reps = calloc(nq, sizeof(*reps));
    struct chc_buf *sql = calloc(cap, sizeof(*sql));
    const char **sqls = calloc(nq, sizeof(*sqls));
    unsigned k, nk;
    int r = 0;

    if (!reps || !sql || !sqls) {
        r = oom(err);
        goto out;
    }
    for (i = 0; r == 0 && i < n; i++) {
        const struct mv *m = &mv[i];
        int applies = m->active && (step == MOVE_DROP_ASSEMBLY   ? m->assemble && m->again
                                    : step == MOVE_ATTACH_DEST   ? m->assemble && m->before.rows > 0
                                    : step == MOVE_ATTACH_PIECES ? m->assemble
                                                                 : m->replace);
        if (!applies)
            continue;
        nk = step == MOVE_ATTACH_PIECES ? ts->parts[m->part].splits : 1;
        for (k = 0; r == 0 && k < nk; k++) {
            chc_buf_init(&sql[ns], 0);
            r = mover__stmt(ts, step, m->part, k, &sql[ns]);
            for (t = 0; r == 0 && t < ts->n_targets; t++) {
                reps[q] = ts->targets[t].rep;
                sqls[q++] = sql[ns].buf;
            }
            ns++;
        }
    }
    if (r < 0)
        r = oom(err);
    else if (q > 0)
        r = wk__multi_query(w, reps, q, sqls, NULL, NULL, NULL, err);
out:
    for (i = 0; sql && i < ns; i++)
        chc_buf_release(&sql[i]);
    free(reps);
    free(sql);
    free(sqls);
    return r;
}

/* "<what> <rows> <checksum>" for every active partition of the batch (only
 * those still to REPLACE when replace_only), one ZooKeeper transaction. */
static int mv_record(struct worker *w, struct tstate *ts, struct mv *mv, size_t n,
                     const char *what, int replace_only, struct chc_err *err)
{
    char lines[MOVE_BATCH][80];
    const char *states[MOVE_BATCH];
    size_t parts[MOVE_BATCH], i, np = 0;

    for (i = 0; i < n; i++) {
        if (!mv[i].active || (replace_only && !mv[i].replace))
            continue;
        snprintf(lines[np], sizeof(lines[np]), "%s %llu %llu", what, mv[i].exp_rows,
                 mv[i].exp_hash);
        states[np] = lines[np];
        parts[np++] = mv[i].part;
    }
    return zkstate__part_states_write(w, ts, parts, states, np, err);
}

/* Move up to MOVE_BATCH complete partitions together (docs/design.md):
 *   1. under each partition's move lock: the source's sums (from discovery)
 *      and what the destination holds (append mode);
 *   2. assemble in <table>_assembly on every staging node: the destination's
 *      rows (append mode) and every piece, by ATTACH — a snapshot nobody else
 *      writes to; its count must be destination + source; record
 *      "assembled <rows> <checksum>";
 *   3. REPLACE PARTITION ... FROM the assembly, for all at once (idempotent,
 *      so a partial failure is simply repeated); record "moved";
 *   4. verify every destination partition's count and checksum;
 *   5. drop their piece partitions; record "done". The assembly keeps its
 *      partition (hard links to the same parts) until the table is done, so
 *      a stalled mover that wakes up late and repeats the REPLACE still
 *      replaces with the same rows, never with nothing.
 * Each step is one round of concurrent statements for the whole batch.
 * Returns the number of partitions moved, or < 0. */
static int move_batch(struct worker *w, struct tstate *ts, const size_t *parts, size_t n,
                      unsigned *move_failures, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct mv mv[MOVE_BATCH];
    struct sums_batch batch;
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf asm_name = CHC_BUF_INIT;
    uint64_t t0 = now_ms(), ts_[8] = {0};
    size_t i, active = 0, assembling = 0, bparts[MOVE_BATCH], src_parts[MOVE_BATCH];
    struct sums *bacc[MOVE_BATCH], *src_acc[MOVE_BATCH];
    const char *states[MOVE_BATCH];
    int r = 0, moved = 0;
#define MV_MARK(i) (ts_[i] = now_ms())

    memset(mv, 0, sizeof(mv));
    sums_batch_init(&batch);
    for (i = 0; i < n && i < MOVE_BATCH; i++) {
        struct mv *m = &mv[i];
        chc_buf_init(&m->state, 0);
        m->part = parts[i];
        r = zkstate__lock_take(w, ts, m->part, "move", &m->lock, err);
        if (r == CHC_EZK_NODEEXISTS)
            continue; /* another worker moves it */
        if (r == 0)
            r = zkstate__part_state_read(w, ts, m->part, &m->state, err);
        if (r < 0)
            goto out;
        if (!strncmp(m->state.buf, "done", 4)) {
            ts->parts[m->part].done = 1;
            continue;
        }
        r = part_ready(w, ts, m->part, err);
        if (r < 0)
            goto out;
        if (r == 0)
            continue;
        m->active = 1;
        m->again = !strcmp(m->state.buf, "assembling");
        m->assemble = strncmp(m->state.buf, "assembled", 9) && strncmp(m->state.buf, "moved", 5);
        active++;
        assembling += (size_t)m->assemble;
    }
    n = i;
    r = 0;
    if (!active)
        goto out;
    MV_MARK(0);
    if (plan_assembly_table(tb, &asm_name) < 0)
        goto oom;
    if (assembling) {
        /* 1. Sums, one round: the source's (unless discovery has them) and
         * what the destination holds (append mode). */
        size_t np = 0, ns = 0;
        for (i = 0; i < n; i++) {
            struct mv *m = &mv[i];
            if (!m->active || !m->assemble)
                continue;
            if (ts->parts[m->part].rows >= 0 && ts->sums_key &&
                ts->sums_key == tables__sums_key_of(ts)) {
                m->src.rows = (unsigned long long)ts->parts[m->part].rows;
                m->src.hash = ts->parts[m->part].src_hash;
            } else {
                src_parts[ns] = m->part;
                src_acc[ns++] = &m->src;
            }
            bparts[np] = m->part;
            bacc[np++] = &m->before;
        }
        r = sums_batch_add(&batch, ts, src_parts, src_acc, ns, NULL, 1, err);
        if (r == 0 && !tb->allow_drop_target_partitions)
            r = sums_batch_add(&batch, ts, bparts, bacc, np, tb->table_push, 1, err);
        if (r == 0 && batch.n)
            r = sums_batch_run(w, &batch, err);
        if (r < 0)
            goto out;
        MV_MARK(1);
        /* 2. Assemble, count, record. */
        np = 0;
        for (i = 0; i < n; i++)
            if (mv[i].active && mv[i].assemble && !mv[i].again) {
                bparts[np] = mv[i].part;
                states[np++] = "assembling";
            }
        r = zkstate__part_states_write(w, ts, bparts, states, np, err);
        if (r < 0)
            goto out;
        r = mv_owned(w, mv, n, err);
        if (r == 0)
            r = mv_step(w, ts, mv, n, MOVE_DROP_ASSEMBLY, err);
        if (r == 0)
            r = mv_step(w, ts, mv, n, MOVE_ATTACH_DEST, err);
        if (r == 0)
            r = mv_step(w, ts, mv, n, MOVE_ATTACH_PIECES, err);
        MV_MARK(2);
        sums_batch_release(&batch);
        sums_batch_init(&batch);
        np = 0;
        for (i = 0; i < n; i++)
            if (mv[i].active && mv[i].assemble) {
                bparts[np] = mv[i].part;
                bacc[np++] = &mv[i].staged;
            }
        if (r == 0)
            r = sums_batch_add(&batch, ts, bparts, bacc, np, asm_name.buf, 0, err);
        if (r == 0 && batch.n)
            r = sums_batch_run(w, &batch, err);
        if (r < 0)
            goto out;
        np = 0;
        for (i = 0; i < n; i++) {
            struct mv *m = &mv[i];
            if (!m->active || !m->assemble)
                continue;
            if (m->staged.rows != m->before.rows + m->src.rows) {
                struct chc_log_fields lf = {tb->name, ts->parts[m->part].lit, -1, -1, "move",
                                            -1, -1, -1.0, "staging mismatch"};
                /* A stray insert of a dead worker shows here, before anything
                 * reaches the destination: copy the partition again. */
                chc_log_at(CHC_LOG_ERROR, &lf,
                           "assembly holds %llu rows, expected %llu (destination) + %llu "
                           "(source): recopying the partition",
                           m->staged.rows, m->before.rows, m->src.rows);
                if (zkstate__reset_pieces(w, ts, m->part, &e) == 0 &&
                    zkstate__part_state_write(w, ts, m->part, "assembling", &e) == 0)
                    chc_err_set(&e, CHC_EMISMATCH, "staging does not match the source");
                mv_fail(w, ts, m, &e, move_failures);
                continue;
            }
            if (wk__fault_draw(w, w->o->move_fault_probability, "move %s %s %u",
                               tb->def_hash_hex, ts->parts[m->part].lit, *move_failures)) {
                chc_err_set(&e, CHC_EFAULT_INJECTED, "move fault injected");
                mv_fail(w, ts, m, &e, move_failures);
                continue;
            }
            chc_buf_reset(&m->state);
            if (chc_buf_addf(&m->state, "assembled %llu %llu", m->before.rows + m->src.rows,
                             m->before.hash + m->src.hash) < 0)
                goto oom;
            bparts[np] = m->part;
            states[np++] = m->state.buf;
        }
        if (np)
            wk__fault_point(w, "after_assemble");
        r = zkstate__part_states_write(w, ts, bparts, states, np, err);
        if (r < 0)
            goto out;
        if (np)
            wk__fault_point(w, "after_assembled_record");
    }
    for (i = 0; i < n; i++) {
        struct mv *m = &mv[i];
        if (!m->active)
            continue;
        if (sscanf(m->state.buf, "%*s %llu %llu", &m->exp_rows, &m->exp_hash) != 2) {
            chc_err_set(&e, CHC_ESTATE, "bad partition state '%s'", m->state.buf);
            mv_fail(w, ts, m, &e, move_failures);
            continue;
        }
        m->replace = !strncmp(m->state.buf, "assembled", 9);
    }
    /* 3. REPLACE, all at once; repeated as a whole if any failed. */
    MV_MARK(3);
    r = mv_owned(w, mv, n, err);
    if (r == 0)
        r = mv_step(w, ts, mv, n, MOVE_REPLACE, err);
    if (r < 0)
        goto out;
    wk__fault_point(w, "after_replace");
    MV_MARK(4);
    r = mv_record(w, ts, mv, n, "moved", 1, err);
    if (r < 0)
        goto out;
    /* 4. Verify the destination: count and checksum against the source. */
    MV_MARK(5);
    sums_batch_release(&batch);
    sums_batch_init(&batch);
    {
        size_t np = 0;
        for (i = 0; i < n; i++)
            if (mv[i].active) {
                bparts[np] = mv[i].part;
                bacc[np++] = &mv[i].after;
            }
        r = sums_batch_add(&batch, ts, bparts, bacc, np, tb->table_push, 1, err);
    }
    if (r == 0 && batch.n)
        r = sums_batch_run(w, &batch, err);
    if (r < 0)
        goto out;
    for (i = 0; i < n; i++) {
        struct mv *m = &mv[i];
        if (!m->active)
            continue;
        if (m->after.rows != m->exp_rows || m->after.hash != m->exp_hash) {
            struct chc_log_fields lf = {tb->name, ts->parts[m->part].lit, -1, -1, "move", -1,
                                        -1, -1.0, "destination mismatch"};
            chc_log_at(CHC_LOG_ERROR, &lf,
                       "verification failed: destination has %llu rows (checksum %llu), "
                       "expected %llu (checksum %llu)",
                       m->after.rows, m->after.hash, m->exp_rows, m->exp_hash);
            chc_err_set(&e, CHC_EMISMATCH, "partition %s failed verification",
                        ts->parts[m->part].lit);
            mv_fail(w, ts, m, &e, move_failures);
        }
    }
    /* 5. Done. The staging partitions stay until the table is done: the
     * assembly holds hard links to the same parts anyway (see above), so
     * dropping them now would free no disk, only cost a round of ALTERs. */
    MV_MARK(6);
    r = mv_record(w, ts, mv, n, "done", 0, err);
    if (r < 0)
        goto out;
    for (i = 0; i < n; i++) {
        struct mv *m = &mv[i];
        struct chc_log_fields lf = {tb->name, ts->parts[m->part].lit, -1, -1, "partition_moved",
                                    -1, -1, -1.0, NULL};
        if (!m->active)
            continue;
        ts->parts[m->part].done = 1;
        moved++;
        lf.rows = (long long)m->exp_rows;
        lf.duration = (double)(now_ms() - t0) / 1000.0;
        chc_log_at(CHC_LOG_INFO, &lf,
                   "partition moved and verified: %llu rows in the destination", m->exp_rows);
    }
    MV_MARK(7);
    chc_log_debug("table '%s': moved %d partition(s) in %" PRIu64 " ms: claim %" PRIu64
                  ", sums %" PRIu64 ", assemble %" PRIu64 ", count+record %" PRIu64
                  ", replace %" PRIu64 ", record %" PRIu64 ", verify %" PRIu64
                  ", record %" PRIu64,
                  tb->name, moved, ts_[7] - t0, ts_[0] - t0, ts_[1] ? ts_[1] - ts_[0] : 0,
                  ts_[2] ? ts_[2] - ts_[1] : 0, ts_[2] ? ts_[3] - ts_[2] : 0, ts_[4] - ts_[3],
                  ts_[5] - ts_[4], ts_[6] - ts_[5], ts_[7] - ts_[6]);
    r = moved;
    goto out;
oom:
    r = oom(err);
out:
#undef MV_MARK
    for (i = 0; i < n; i++) {
        zkstate__lock_release(w, &mv[i].lock);
        chc_buf_release(&mv[i].state);
    }
    sums_batch_release(&batch);
    chc_buf_release(&asm_name);
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

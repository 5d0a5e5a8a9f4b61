/* checks.c — the mover's checks (docs/design.md, "Move"): a fresh
 * assembly against destination + source, an assembly recorded by an
 * earlier attempt (shard by shard: a REPLACE that died midway left some
 * shards replaced), and the destination after the REPLACE. The verdicts are
 * state/protocol.c's; this file gathers the sums and acts on them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "batch.h"
#include "checks.h"
#include "routing.h"
#include "sums.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

/* Per destination shard, its first staging node's sums (the others of the
 * shard agree or the caller learns it from sums__total); ok[s] 0 when not. */
static void per_shard(const struct tstate *ts, const struct sums *per, struct proto_sums *out,
                      int *ok)
{
    size_t t, s;

    for (t = 0; t < ts->n_targets; t++) {
        s = ts->targets[t].shard;
        if (t == 0 || ts->targets[t - 1].shard != s) {
            out[s] = per[t];
            ok[s] = 1;
        } else if (per[t].rows != out[s].rows || per[t].hash != out[s].hash) {
            ok[s] = 0;
        }
    }
}

/* " S a_rows a_hash p_rows p_hash ..." of an assembly just checked: what
 * each shard's assembly holds and what its destination held before. */
int checks__record_shards(const struct tstate *ts, const struct mv *m, struct chc_buf *line)
{
    size_t n = ts->tb->push->n_shards, s;
    struct proto_shard *sh = calloc(n ? n : 1, sizeof(*sh));
    struct proto_sums *a = calloc(2 * (n ? n : 1), sizeof(*a)), *p = a ? a + n : NULL;
    int *ok = calloc(n ? n : 1, sizeof(*ok));
    int r = sh && a && ok ? 0 : -ENOMEM;

    if (r == 0) {
        per_shard(ts, m->staged, a, ok);
        per_shard(ts, m->before, p, ok);
        for (s = 0; s < n; s++)
            sh[s] = (struct proto_shard){a[s], p[s]};
        r = protocol_shards_format(sh, n, line);
    }
    free(sh);
    free(a);
    free(ok);
    return r;
}

int checks__assembled(struct worker *w, struct tstate *ts, struct mv *m,
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
        batch__recopy(w, ts, m, "staging replicas disagree", move_failures);
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
        batch__recopy(w, ts, m, "staging does not match the source", move_failures);
        return 0;
    }
    return 0;
}

/* The verdict on one partition's recorded assembly: shard by shard when
 * the record has the shards' sums, else as a whole (older records). */
static enum recheck_verdict recheck_verdict(const struct tstate *ts, struct mv *m)
{
    size_t n = ts->tb->push->n_shards, s, t, bad = 0;
    struct proto_shard_now *now = calloc(n ? n : 1, sizeof(*now));
    struct proto_sums *a = calloc(2 * (n ? n : 1), sizeof(*a)), got, dest;
    int *ok = calloc(2 * (n ? n : 1), sizeof(*ok));
    unsigned char *replace = calloc(n ? n : 1, 1);
    enum recheck_verdict v;

    if (m->n_rec != (int)n || !now || !a || !ok || !replace) {
        struct sums exp = {m->exp_rows, m->exp_hash};
        int asm_agree = sums__total(ts, m->staged, &got, &bad) == 0;
        int dest_agree = sums__total(ts, m->after, &dest, &bad) == 0;
        v = protocol_recheck(asm_agree, got, dest_agree, dest, exp);
        goto out;
    }
    per_shard(ts, m->staged, a, ok);
    per_shard(ts, m->after, a + n, ok + n);
    for (s = 0; s < n; s++)
        now[s] = (struct proto_shard_now){a[s], a[n + s], ok[s], ok[n + s]};
    v = protocol_recheck_shards(m->rec, now, n, !ts->tb->allow_drop_target_partitions, replace);
    for (t = 0; t < ts->n_targets; t++)
        m->skip[t] = !replace[ts->targets[t].shard];
out:
    free(now);
    free(a);
    free(ok);
    free(replace);
    return v;
}

static void recheck_one(struct worker *w, struct tstate *ts, struct mv *m,
                        unsigned *move_failures)
{
    struct chc_err e = CHC_ERR_INIT;

    switch (recheck_verdict(ts, m)) {
    case RECHECK_REPLACE:
        return; /* from every intact assembly; the shards already replaced are left alone */
    case RECHECK_VERIFY_ONLY:
        chc_log_info("table '%s': partition %s was already replaced: verifying it",
                     ts->tb->name, ts->parts[m->part].lit);
        m->replace = 0;
        return;
    case RECHECK_RECOPY:
        chc_log_warn("table '%s': the assembly of partition %s no longer holds the %llu rows "
                     "recorded (staging tables re-created?) and no shard holds them yet",
                     ts->tb->name, ts->parts[m->part].lit, m->exp_rows);
        batch__recopy(w, ts, m, "the assembly was lost", move_failures);
        return;
    case RECHECK_HALF_MOVED:
        chc_err_set(&e, CHC_ESTATE, "partition %s is replaced on some destination shards while "
                    "the assembly of another, not yet replaced, is gone: copying it again would "
                    "double rows; restore the assembly tables or move it by hand",
                    ts->parts[m->part].lit);
        break;
    case RECHECK_CHANGED:
        chc_err_set(&e, CHC_ESTATE, "partition %s changed in the destination during its move "
                    "(neither what it held before nor what was assembled)",
                    ts->parts[m->part].lit);
        break;
    }
    chc_log_error("table '%s': %s", ts->tb->name, e.msg);
    batch__fail(w, ts, m, &e, move_failures);
}

/* 4. Partitions assembled by an earlier attempt: the assembly must still
 * hold what was recorded. Staging tables re-created since (say, after an
 * operator changed the destination) hold nothing, and a REPLACE from them
 * would empty the partition. If the assembly differs, the destination may
 * already hold the partition (the REPLACE ran, "moved" was not recorded):
 * then only verify; else copy the partition again. */
int checks__recheck(struct worker *w, struct tstate *ts, struct batch *b,
                         unsigned *move_failures, struct chc_err *err)
{
    size_t parts[MOVE_BATCH], i, np = 0;
    struct sums *per[MOVE_BATCH];
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
    r = batch__step(w, ts, b, MOVE_CREATE_ASSEMBLY, err);
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
    r = sums__run_if(w, &round, r, err);
    for (i = 0; r == 0 && i < b->n; i++) {
        struct mv *m = &b->mv[i];
        if (m->active && m->recheck)
            recheck_one(w, ts, m, move_failures);
    }
    return r;
}

/* 6. Every staging node's destination partition must hold what was
 * recorded; the replicas of a shard must agree. */
int checks__verify(struct worker *w, struct tstate *ts, struct batch *b,
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
    r = sums__run_if(w, &round, r, err);
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
        batch__fail(w, ts, m, &e, move_failures);
    }
    return r;
}

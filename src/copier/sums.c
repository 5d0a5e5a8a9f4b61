/* sums.c — checksum rounds (sums.h): one sums statement per node for a
 * whole batch of partitions (sql_sums), sent at once, each line of each
 * answer added to the accumulator of its partition on that node; and the
 * per-target totals compared across the replicas of a shard.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/move.h"
#include "chcopier/state/protocol.h"
#include "nodes.h"
#include "sums.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

/* The sums statement of parts[0..n) (sql_sums). */
static int sums_sql(const struct tstate *ts, const size_t *parts, size_t n, const char *db,
                    const char *table, const char *hash, int with_where, struct chc_buf *b)
{
    const char *lits[MOVE_BATCH];
    size_t i;

    for (i = 0; i < n && i < MOVE_BATCH; i++)
        lits[i] = ts->parts[parts[i]].lit;
    chc_buf_reset(b);
    return table ? sql_sums(ts->tb, lits, n, db, table, hash, with_where, b)
                 : sql_sums_assemblies(ts->tb, lits, n, hash, b);
}

void sums__release(struct sums_round *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        chc_buf_release(&b->nodes[i].sql);
    free(b->nodes);
    memset(b, 0, sizeof(*b));
}

static struct sums_node *round_add(struct sums_round *b)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        struct sums_node *nn = realloc(b->nodes, ncap * sizeof(*nn));
        if (!nn)
            return NULL;
        b->nodes = nn;
        b->cap = ncap;
    }
    memset(&b->nodes[b->n], 0, sizeof(b->nodes[b->n]));
    chc_buf_init(&b->nodes[b->n].sql, 0);
    return &b->nodes[b->n++];
}

/* The source's sums of parts[0..n) into acc[i] (every source shard that
 * has any of them, columns cast to the destination's types). */
int sums__source(struct sums_round *b, const struct tstate *ts, const size_t *parts,
                        struct sums *const *acc, size_t n, struct chc_err *err)
{
    size_t s, j;
    int any;

    for (s = 0; n && s < ts->tb->pull->n_shards; s++) {
        struct sums_node *nd;
        for (j = 0, any = 0; j < n; j++)
            any |= ts->parts[parts[j]].on_shard[s];
        if (!any)
            continue;
        nd = round_add(b);
        if (!nd || sums_sql(ts, parts, n, ts->tb->database_pull, ts->tb->table_pull,
                            ts->cols.hash_src, 1, &nd->sql) < 0)
            return oom(err);
        nd->rep = ts->src_rep[s];
        for (j = 0; j < n; j++)
            nd->acc[j] = acc[j];
        nd->n_acc = n;
    }
    return 0;
}

/* A destination-side table's sums of parts[0..n) on every staging node:
 * per[j][t] gets partition j on target t. */
int sums__targets(struct sums_round *b, const struct tstate *ts, const size_t *parts,
                         struct sums *const *per, size_t n, const char *table,
                         struct chc_err *err)
{
    size_t t, j;

    for (t = 0; n && t < ts->n_targets; t++) {
        struct sums_node *nd = round_add(b);
        if (!nd || sums_sql(ts, parts, n, ts->tb->database_push, table, ts->cols.hash_dst, 0,
                            &nd->sql) < 0)
            return oom(err);
        nd->rep = ts->targets[t].rep;
        nd->side = SIDE_PUSH;
        for (j = 0; j < n; j++)
            nd->acc[j] = &per[j][t];
        nd->n_acc = n;
    }
    return 0;
}

static int round_parse(struct sums_node *nd, const char *line, struct chc_err *err)
{
    while (*line) {
        unsigned long long a = 0, h = 0;
        size_t idx = 0;
        if (sscanf(line, "%zu\t%llu\t%llu", &idx, &a, &h) != 3 || idx < 1 || idx > nd->n_acc)
            return chc_err_set(err, CHC_EPARSE,
                               "unexpected answer to a checksum query: '%.60s'", line);
        nd->acc[idx - 1]->rows += a;
        nd->acc[idx - 1]->hash += h;
        line = strchr(line, '\n');
        line = line ? line + 1 : "";
    }
    return 0;
}

int sums__run(struct worker *w, struct sums_round *b, struct chc_err *err)
{
    const struct cfg_replica **reps = calloc(b->n ? b->n : 1, sizeof(*reps));
    const char **sqls = calloc(b->n ? b->n : 1, sizeof(*sqls));
    struct chc_buf *out = calloc(b->n ? b->n : 1, sizeof(*out));
    enum side *sides = calloc(b->n ? b->n : 1, sizeof(*sides));
    size_t i;
    int r = reps && sqls && out && sides ? 0 : oom(err);

    for (i = 0; r == 0 && i < b->n; i++) {
        reps[i] = b->nodes[i].rep;
        sqls[i] = b->nodes[i].sql.buf;
        sides[i] = b->nodes[i].side;
        chc_buf_init(&out[i], 0);
    }
    if (r == 0 && b->n)
        r = nodes__multi(w, reps, b->n, sqls, NULL, out, sides, err);
    for (i = 0; r == 0 && i < b->n; i++)
        r = round_parse(&b->nodes[i], out[i].buf, err);
    for (i = 0; out && i < b->n; i++)
        chc_buf_release(&out[i]);
    free(reps);
    free(sqls);
    free(out);
    free(sides);
    sums__release(b);
    return r;
}

int sums__run_if(struct worker *w, struct sums_round *b, int r, struct chc_err *err)
{
    if (r == 0)
        return sums__run(w, b, err); /* releases b */
    sums__release(b);
    return r;
}

/* Per-target sums of one partition as one total (protocol_targets_total):
 * -1 and *bad = a target that disagrees with its shard's first. */
int sums__total(const struct tstate *ts, const struct sums *per, struct sums *total,
                         size_t *bad)
{
    size_t *shard = calloc(ts->n_targets + 1, sizeof(*shard)), t;
    int ok;

    *bad = 0;
    for (t = 0; shard && t < ts->n_targets; t++)
        shard[t] = ts->targets[t].shard;
    ok = shard && protocol_targets_total(per, shard, ts->n_targets, total, bad);
    free(shard);
    return ok ? 0 : -1;
}


/* discover.c — a table's partitions, with their rows and checksums per
 * source shard, in one pass over the source (discover.h): one statement per
 * shard, or for a shard with thousands of partitions one per batch of its
 * source partitions (ClickHouse 18.16's time to read a table grows faster
 * than its number of parts: 96 of the 101 s a worker needed before its
 * first claim at 30 k partitions went to the one discovery statement).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/options.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "discover.h"
#include "nodes.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

/* Which checksum expression the discovered source sums were computed with. */
uint64_t discover__sums_key_of(const struct tstate *ts)
{
    const char *h = ts->cols.hash_src;

    return h ? chc_hash64(CHC_HASH64_INIT, h, strlen(h)) | 1 : 0;
}

/* Small partitions need fewer pieces, and are copied in groups (see
 * plan_group_parts): a group's pieces split the sum of its rows. */
static int group_parts(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    long long *rows = calloc(ts->n_parts + 1, sizeof(*rows));
    size_t *lead = calloc(ts->n_parts + 1, sizeof(*lead)), i;

    if (!rows || !lead) {
        free(rows);
        free(lead);
        return oom(err);
    }
    for (i = 0; i < ts->n_parts; i++)
        rows[i] = ts->parts[i].max_shard_rows;
    plan_group_parts(rows, ts->n_parts, w->o->min_piece_rows, GROUP_MAX, lead);
    for (i = 0; i < ts->n_parts; i++) {
        struct part *p = &ts->parts[i];
        p->lead = lead[i];
        p->n_group = p->lead == i;
        if (p->lead != i) {
            ts->parts[p->lead].n_group++;
            rows[p->lead] += rows[i];
        }
    }
    for (i = 0; i < ts->n_parts; i++)
        if (ts->parts[i].lead == i)
            ts->parts[i].splits = plan_part_splits(ts->tb, rows[i], w->o->min_piece_rows);
        else
            ts->parts[i].splits = ts->parts[ts->parts[i].lead].splits;
    free(rows);
    free(lead);
    return 0;
}

/* <enabled_partitions>: as given, in the given order, assumed on every
 * shard. */
static int discover_enabled(struct tstate *ts, struct chc_err *err)
{
    size_t i;

    for (i = 0; i < ts->tb->n_enabled_partitions; i++) {
        int idx = tstate__add_part(ts, ts->tb->enabled_partitions[i], err);
        if (idx < 0)
            return idx;
        memset(ts->parts[idx].on_shard, 1, ts->tb->pull->n_shards);
    }
    return 0;
}

/* Batches: source partitions per statement, and the rows per mark that
 * ClickHouse's estimate for max_rows_to_read assumes (index_granularity's
 * default; a coarser table just falls back to one statement). Shards with
 * no more than 2 x DISCOVER_BATCH partitions are read in one statement. */
#define DISCOVER_BATCH 1000
#define GRANULE 8192ULL

/* DISCOVER_BATCH, or CHC_DISCOVER_BATCH (testing: 1..DISCOVER_BATCH). */
static size_t discover_batch(void)
{
    const char *env = getenv("CHC_DISCOVER_BATCH");
    long long v;

    return env && chc_parse_ll(env, 1, DISCOVER_BATCH, &v) == 0 ? (size_t)v : DISCOVER_BATCH;
}

/* Shard s's source partitions with their marks (system.parts) and the
 * source's partition key (system.tables); *key NULL when it has none. */
static int source_parts(struct worker *w, struct tstate *ts, size_t s, struct ch_rows **parts,
                        char **key, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf sql = CHC_BUF_INIT;
    struct ch_rows *facts = NULL;
    int r = sql_source_partitions(tb, &sql) < 0 ? oom(err) : 0;

    if (r == 0)
        r = nodes__rows(w, ts->src_rep[s], SIDE_PULL, sql.buf, parts, err);
    chc_buf_reset(&sql);
    if (r == 0)
        r = sql_table_facts(tb->database_pull, tb->table_pull, &sql) < 0 ? oom(err) : 0;
    if (r == 0)
        r = nodes__rows(w, ts->src_rep[s], SIDE_PULL, sql.buf, &facts, err);
    if (r == 0 && ch_rows_ncols(facts) >= 2 && ch_rows_str(facts, 0, 1)[0])
        *key = chc_strdup(ch_rows_str(facts, 0, 1));
    ch_rows_free(facts);
    chc_buf_release(&sql);
    return r;
}

/* A shard discovered in batches: its source partitions, its partition
 * key, the next batch's first partition. */
struct shard_batches {
    struct ch_rows *parts;
    char *key;
    size_t next;
    int active;
};

/* The statement for shard b's next batch (advances b->next). */
static int batch_sql(const struct tstate *ts, struct shard_batches *b, struct chc_buf *sql)
{
    size_t n = ch_rows_count(b->parts), batch = discover_batch(), m, j;
    const char *lits[DISCOVER_BATCH];
    unsigned long long marks = 0;

    m = n - b->next < batch ? n - b->next : batch;
    for (j = 0; j < m; j++) {
        lits[j] = ch_rows_str(b->parts, b->next + j, 0);
        marks += strtoull(ch_rows_str(b->parts, b->next + j, 1), NULL, 10);
    }
    b->next += m;
    chc_buf_reset(sql);
    return sql_discover_in(ts->tb, ts->sums_key ? ts->cols.hash_src : NULL, b->key, lits, m,
                           (2 * marks + 1) * GRANULE, sql);
}

/* One round: the next batch of every active shard with batches left, at
 * once, each answer appended to its out[s]. 1 when every batch is read. */
static int batch_round(struct worker *w, struct tstate *ts, struct shard_batches *sb,
                       struct chc_buf *out, struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards, s, m = 0;
    const struct cfg_replica **reps = calloc(S, sizeof(*reps));
    struct chc_buf *sql = calloc(S, sizeof(*sql)), *ans = calloc(S, sizeof(*ans));
    const char **sqls = calloc(S, sizeof(*sqls));
    enum side *pull = calloc(S, sizeof(*pull)); /* source: settings_pull */
    size_t *idx = calloc(S, sizeof(*idx));
    int r = reps && sql && ans && sqls && pull && idx ? 0 : oom(err);

    for (s = 0; r == 0 && s < S; s++) {
        if (!sb[s].active || sb[s].next >= ch_rows_count(sb[s].parts))
            continue;
        chc_buf_init(&sql[m], 0);
        chc_buf_init(&ans[m], 0);
        r = batch_sql(ts, &sb[s], &sql[m]) < 0 ? oom(err) : 0;
        sqls[m] = sql[m].buf;
        reps[m] = ts->src_rep[s];
        idx[m++] = s;
    }
    if (r == 0 && m > 0)
        r = nodes__multi(w, reps, m, sqls, NULL, ans, pull, err);
    for (s = 0; r == 0 && s < m; s++)
        r = chc_buf_add(&out[idx[s]], ans[s].buf ? ans[s].buf : "", ans[s].len) < 0 ||
                    chc_buf_addch(&out[idx[s]], ',') < 0
                ? oom(err)
                : 0;
    for (s = 0; sql && ans && s < m; s++) {
        chc_buf_release(&sql[s]);
        chc_buf_release(&ans[s]);
    }
    free(reps);
    free(sql);
    free(ans);
    free(sqls);
    free(pull);
    free(idx);
    return r == 0 && m == 0 ? 1 : r;
}

/* Shards with many partitions, read in batches (the shards' batches at
 * once, round by round): done[s] = 1 for those. A refused batch (a key
 * ClickHouse cannot prune by exceeds its limit, a readonly profile refuses
 * the limit, a partition value system.parts does not name as a literal of
 * the key's type: a Date shows as its day number) sends every shard back
 * to the one statement. */
static int discover_batches(struct worker *w, struct tstate *ts, struct chc_buf *out, char *done,
                            struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards, s, any = 0;
    struct shard_batches *sb = calloc(S, sizeof(*sb));
    int r = sb ? 0 : oom(err);

    for (s = 0; r == 0 && s < S; s++) {
        r = source_parts(w, ts, s, &sb[s].parts, &sb[s].key, err);
        sb[s].active = r == 0 && sb[s].key && ch_rows_ncols(sb[s].parts) >= 2 &&
                       ch_rows_count(sb[s].parts) > 2 * discover_batch();
        any += (size_t)sb[s].active;
        if (sb[s].active)
            chc_log_info("table '%s': source shard %zu: %zu partitions, discovering them in "
                         "batches of %zu", ts->tb->name, s + 1, ch_rows_count(sb[s].parts),
                         discover_batch());
    }
    while (r == 0 && any)
        r = batch_round(w, ts, sb, out, err);
    /* Anything but an unreachable server or no memory: one statement (a
     * server exception here is no reason to think it would pass again). */
    if (r < 0 && r != -ENOMEM && r != CHC_ECH_CONN && r != CHC_EZK_EXPIRED) {
        chc_log_info("table '%s': discovery in batches refused (%.300s); discovering in one "
                     "statement", ts->tb->name, err->msg);
        for (s = 0; s < S; s++)
            if (sb[s].active)
                chc_buf_reset(&out[s]);
        any = 0;
        r = 0;
    }
    for (s = 0; sb && s < S; s++) {
        done[s] = any && sb[s].active && r >= 0;
        ch_rows_free(sb[s].parts);
        free(sb[s].key);
    }
    free(sb);
    return r < 0 ? r : 0;
}

/* The discovery statement on every source shard not done[] at once; out[s]
 * gets shard s's answer. */
static int discover_one(struct worker *w, struct tstate *ts, struct chc_buf *out,
                        const char *done, struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards, s, n = 0;
    const struct cfg_replica **reps = calloc(S, sizeof(*reps));
    struct chc_buf *tmp = calloc(S, sizeof(*tmp)), sql = CHC_BUF_INIT;
    enum side *pull = calloc(S, sizeof(*pull)); /* source: settings_pull */
    size_t *idx = calloc(S, sizeof(*idx));
    int r = reps && tmp && pull && idx ? 0 : oom(err);

    for (s = 0; r == 0 && s < S; s++)
        if (!done[s]) {
            chc_buf_init(&tmp[n], 0);
            idx[n] = s;
            reps[n++] = ts->src_rep[s];
        }
    while (r == 0 && n > 0) { /* left by break: a failed try is retried once, without sums */
        /* The source checksum of every partition in the same pass: one read
         * of the table instead of one per partition at move time. */
        chc_buf_reset(&sql);
        r = sql_discover(ts->tb, ts->sums_key ? ts->cols.hash_src : NULL, &sql) == 0
                ? nodes__multi(w, reps, n, NULL, sql.buf, tmp, pull, err)
                : oom(err);
        if (!((r == CHC_ECH_EXCEPTION || r == CHC_ECH_PERMANENT) && ts->sums_key))
            break;
        /* The checksum casts source values to the destination's types; if
         * they do not fit (the copy will say so too), count only. */
        chc_log_warn("table '%s': %s; discovering without checksums", ts->tb->name, err->msg);
        ts->sums_key = 0;
        chc_err_clear(err);
        r = 0;
    }
    for (s = 0; tmp && s < n; s++) {
        chc_buf_release(&out[idx[s]]);
        out[idx[s]] = tmp[s];
    }
    free(reps);
    free(tmp);
    free(pull);
    free(idx);
    chc_buf_release(&sql);
    return r;
}

/* Every source shard's partitions, rows and checksums into out[s]: in
 * batches where a shard has many partitions, else in one statement. */
static int discover_run(struct worker *w, struct tstate *ts, struct chc_buf *out,
                        struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards;
    char *done = calloc(S, 1);
    int r = done ? 0 : oom(err);

    if (r == 0 && ts->tb->engine->partition_by)
        r = discover_batches(w, ts, out, done, err);
    if (r == 0)
        r = discover_one(w, ts, out, done, err);
    if (r < 0 && r != -ENOMEM)
        chc_err_prefix(err, "table '%s': partition discovery", ts->tb->name);
    free(done);
    return r;
}

/* One discovery row of source shard s, "<literal>,<count>,<checksum>" (the
 * last two fields are numbers), added to its partition. */
static int discover_row(struct tstate *ts, size_t s, char *row, struct chc_err *err)
{
    char *c2 = strrchr(row, ','), *comma;
    unsigned long long hash = 0;
    long long rows = 0;
    struct part *p;
    int idx;

    if (c2)
        *c2 = '\0';
    comma = c2 ? strrchr(row, ',') : NULL;
    if (!comma || chc_parse_ll(comma + 1, 0, (1LL << 62), &rows) < 0 ||
        sscanf(c2 + 1, "%llu", &hash) != 1)
        return chc_err_set(err, CHC_EPARSE, "table '%s': unexpected discovery row '%s'",
                           ts->tb->name, row);
    *comma = '\0';
    idx = tstate__add_part(ts, ts->tb->engine->partition_by ? row : PLAN_UNPARTITIONED, err);
    if (idx < 0)
        return idx;
    p = &ts->parts[idx];
    if (p->rows < 0)
        p->rows = 0;
    p->rows += rows;
    p->src_hash += hash;
    p->on_shard[s] = 1;
    /* A destination partition can come in several batches of the same
     * shard (it spans source partitions): its rows on the shard add up. */
    if (p->disc_shard != s + 1) {
        p->disc_shard = s + 1;
        p->disc_rows = 0;
    }
    p->disc_rows += rows;
    if (p->disc_rows > p->max_shard_rows)
        p->max_shard_rows = p->disc_rows;
    return 0;
}

int discover__partitions(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards, s, i, n = 0;
    struct chc_buf *out;
    char **vals = NULL;
    int r;

    if (ts->tb->has_enabled_partitions)
        return discover_enabled(ts, err);
    out = calloc(S, sizeof(*out));
    if (!out)
        return oom(err);
    for (s = 0; s < S; s++)
        chc_buf_init(&out[s], 0);
    /* Partition values, row counts and checksums, every source shard at once. */
    ts->sums_key = discover__sums_key_of(ts);
    r = discover_run(w, ts, out, err);
    for (s = 0; r == 0 && s < S; s++) {
        r = plan_parse_values(out[s].buf, &vals, &n, err);
        for (i = 0; r == 0 && i < n; i++)
            r = discover_row(ts, s, vals[i], err);
        chc_strv_free(vals, n);
        vals = NULL;
        n = 0;
    }
    if (r == 0)
        r = group_parts(w, ts, err);
    for (s = 0; s < S; s++)
        chc_buf_release(&out[s]);
    free(out);
    return r;
}


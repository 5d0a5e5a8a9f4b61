/* tstate.c — a table task's state as the coordinator holds it: its
 * partitions (added once each, found by literal), the partition list in and
 * out of ZooKeeper, the cache of who copied what (refreshed in one
 * pipelined round), and the state/ calls for one partition or piece, named
 * by index. The ZooKeeper layout and codecs are state/'s; this file only
 * maps the coordinator's indexes onto them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/state/claims.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/layout.h"
#include "chcopier/state/store.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/zk/zk.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

const struct node *tstate__node(const struct tstate *ts, const struct cfg_replica *rep)
{
    size_t i;

    for (i = 0; i < ts->n_nodes; i++)
        if (ts->nodes[i].rep == rep)
            return &ts->nodes[i];
    return NULL;
}

int tstate__alive(const struct tstate *ts, const struct cfg_replica *rep)
{
    const struct node *n = tstate__node(ts, rep);

    return n && n->alive;
}

unsigned tstate__version(const struct tstate *ts, const struct cfg_replica *rep)
{
    const struct node *n = tstate__node(ts, rep);

    return n && n->alive ? n->ver : 0;
}

void tstate__metric(struct worker *w, const struct tstate *ts, const char *name, const char *key,
                    const char *value, double v, enum wk_metric_op op)
{
    wk__metric(w, ts ? ts->tb->name : NULL, name, key, value, v, op);
}

struct st_table tstate__st(const struct tstate *ts)
{
    struct st_table t = {.zs = ts->w->zs, .zroot = ts->zroot, .n_shards = ts->tb->pull->n_shards};

    return t;
}

int tstate__drop_gate(const struct tstate *ts, struct chc_buf *out)
{
    return st_path_tnode(ts->zroot, ST_LOCKS, "drops", out);
}

/* The index of partition `lit`, added if new. */
int tstate__add_part(struct tstate *ts, const char *lit, struct chc_err *err)
{
    struct chc_buf zn = CHC_BUF_INIT;
    struct part *p;
    size_t old;

    if (chc_strmap_get(&ts->part_index, lit, &old))
        return (int)old;
    if (ts->n_parts == ts->parts_cap) {
        size_t ncap = ts->parts_cap ? ts->parts_cap * 2 : 16;
        struct part *np = realloc(ts->parts, ncap * sizeof(*np));
        if (!np)
            return oom(err);
        ts->parts = np;
        ts->parts_cap = ncap;
    }
    p = &ts->parts[ts->n_parts];
    memset(p, 0, sizeof(*p));
    p->lit = chc_strdup(lit);
    p->on_shard = calloc(ts->tb->pull->n_shards, 1);
    p->splits = ts->splits;
    p->rows = -1;
    p->lead = ts->n_parts;
    p->n_group = 1;
    if (st_node_name(lit, &zn) < 0 || !p->lit || !p->on_shard ||
        chc_strmap_put(&ts->part_index, p->lit, ts->n_parts, NULL) < 0) {
        free(p->lit);
        free(p->on_shard);
        chc_buf_release(&zn);
        return oom(err);
    }
    p->zname = chc_buf_take(&zn, NULL);
    snprintf(p->hash, sizeof(p->hash), "%016" PRIx64,
             chc_hash64(CHC_HASH64_INIT, lit, strlen(lit)));
    return (int)ts->n_parts++;
}

struct load {
    struct tstate *ts;
    struct chc_err *err;
};

/* One line of the list into the partitions: "=" lines join the copy group
 * of the line before. */
static int load_one(void *arg, const struct st_plist_entry *e)
{
    struct tstate *ts = ((struct load *)arg)->ts;
    struct chc_err *err = ((struct load *)arg)->err;
    int idx = tstate__add_part(ts, e->lit, err);
    struct part *p;

    if (idx < 0)
        return idx;
    p = &ts->parts[idx];
    if (e->splits == 0) {
        size_t lead = idx > 0 && (size_t)idx == ts->n_parts - 1 ? ts->parts[idx - 1].lead
                                                                 : (size_t)idx;
        if (lead == (size_t)idx || ts->parts[lead].n_group >= GROUP_MAX)
            return chc_err_set(err, CHC_ESTATE, "bad partition group in ZooKeeper");
        p->lead = lead;
        p->n_group = 0;
        ts->parts[lead].n_group++;
        p->splits = ts->parts[lead].splits;
    } else {
        p->splits = e->splits <= ts->splits ? e->splits : ts->splits;
    }
    p->rows = e->rows;
    p->src_hash = e->hash;
    memcpy(p->on_shard, e->on_shard, ts->tb->pull->n_shards);
    return 0;
}

int tstate__parts_read(struct tstate *ts, struct zk_stat *st, struct chc_err *err)
{
    struct st_table t = tstate__st(ts);
    struct chc_buf text = CHC_BUF_INIT;
    struct load ld = {ts, err};
    uint64_t key = 0;
    int r = st_plist_read(&t, &text, st, err);

    if (r == 0)
        r = st_plist_decode(text.buf, ts->tb->pull->n_shards, &key, load_one, &ld, err);
    if (r == 0)
        ts->sums_key = key;
    chc_buf_release(&text);
    return r;
}

/* PLIST_CHUNK, or CHC_PLIST_CHUNK (testing: >= 100 bytes). */
#define PLIST_CHUNK (512 * 1024)

static size_t plist_chunk(void)
{
    const char *env = getenv("CHC_PLIST_CHUNK");
    long long v;

    return env && chc_parse_ll(env, 100, PLIST_CHUNK, &v) == 0 ? (size_t)v : PLIST_CHUNK;
}

int tstate__parts_publish(struct tstate *ts, struct chc_err *err)
{
    struct st_table t = tstate__st(ts);
    struct st_plist_entry *e = calloc(ts->n_parts + 1, sizeof(*e));
    struct chc_buf text = CHC_BUF_INIT;
    size_t i;
    int r = e ? 0 : oom(err);

    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        const struct part *p = &ts->parts[i];
        e[i] = (struct st_plist_entry){.lit = p->lit, .on_shard = p->on_shard,
                                       .splits = p->lead != i ? 0 : p->splits,
                                       .rows = p->rows, .hash = p->src_hash};
    }
    if (r == 0 &&
        st_plist_encode(e, ts->n_parts, ts->tb->pull->n_shards, ts->sums_key, &text) < 0)
        r = oom(err);
    if (r == 0)
        r = st_plist_publish(&t, text.buf, text.len, plist_chunk(), err);
    free(e);
    chc_buf_release(&text);
    return r;
}

int tstate__piece_read(struct tstate *ts, size_t part, unsigned k, struct piece_state *ps,
                       struct chc_err *err)
{
    struct st_table t = tstate__st(ts);

    return st_piece_read(&t, ts->parts[part].zname, k, ps, err);
}

int tstate__piece_write(struct tstate *ts, size_t part, unsigned k, struct piece_state *ps,
                        struct chc_err *err)
{
    struct st_table t = tstate__st(ts);

    return st_piece_write(&t, ts->parts[part].zname, k, ps, err);
}

int tstate__part_get(struct tstate *ts, size_t part, struct chc_buf *out, int *version,
                     struct chc_err *err)
{
    struct st_table t = tstate__st(ts);

    return st_part_get(&t, ts->parts[part].zname, out, version, err);
}

int tstate__part_write(struct tstate *ts, size_t part, const char *state, int *version,
                       struct chc_err *err)
{
    struct st_table t = tstate__st(ts);

    return st_part_write(&t, ts->parts[part].zname, state, version, err);
}

int tstate__part_write_many(struct tstate *ts, const size_t *parts, const char *const *states,
                            size_t n, int *versions, struct chc_err *err)
{
    struct st_table t = tstate__st(ts);
    const char **names = calloc(n ? n : 1, sizeof(*names));
    size_t i;
    int r;

    if (!names)
        return oom(err);
    for (i = 0; i < n; i++)
        names[i] = ts->parts[parts[i]].zname;
    r = st_part_write_many(&t, names, states, n, versions, err);
    free(names);
    return r;
}

int tstate__reset_pieces(struct tstate *ts, size_t part, struct chc_err *err)
{
    struct st_table t = tstate__st(ts);
    size_t lead = ts->parts[part].lead;

    return st_pieces_reset(&t, ts->parts[lead].zname, ts->parts[lead].splits, err);
}

int tstate__lock_take(struct tstate *ts, size_t part, const char *what, char **ret_path,
                      struct chc_err *err)
{
    struct st_claimer c = wk__claimer(ts->w);
    struct chc_buf path = CHC_BUF_INIT;
    int r;

    if (st_path_lock(ts->zroot, ts->parts[part].zname, what, &path) < 0) {
        chc_buf_release(&path);
        return oom(err);
    }
    r = st_claim(&c, path.buf, err);
    if (r == 0)
        *ret_path = chc_buf_take(&path, NULL);
    chc_buf_release(&path);
    return r;
}

/* Every unfinished partition's state and, per group with a partition still
 * to move, its pieces that no job of ours holds. */
static int refresh_nodes(const struct tstate *ts, struct st_node **ret, size_t **ret_part,
                         size_t *ret_n)
{
    size_t cap = ts->n_parts * (ts->splits + 1) + 1, n = 0, i;
    struct st_node *nodes = calloc(cap, sizeof(*nodes));
    size_t *part = calloc(cap, sizeof(*part));
    unsigned k;

    if (!nodes || !part) {
        free(nodes);
        free(part);
        return -ENOMEM;
    }
    for (i = 0; i < ts->n_parts; i++)
        if (!ts->parts[i].done) {
            nodes[n] = (struct st_node){ts->parts[i].zname, ST_PART_STATE};
            part[n++] = i;
        }
    for (i = 0; i < ts->n_parts; i++) {
        if (ts->parts[i].lead != i || group_done(ts, i))
            continue;
        for (k = 0; k < ts->parts[i].splits; k++)
            if (!ts->pbusy[i * ts->splits + k]) {
                nodes[n] = (struct st_node){ts->parts[i].zname, k};
                part[n++] = i;
            }
    }
    *ret = nodes;
    *ret_part = part;
    *ret_n = n;
    return 0;
}

int tstate__refresh(struct tstate *ts, struct chc_err *err)
{
    struct st_table t = tstate__st(ts);
    struct piece_state ps = {.started = -1, .version = -1};
    struct st_node *nodes = NULL;
    struct chc_buf *outs = NULL;
    size_t *part = NULL, n = 0, i, S = ts->tb->pull->n_shards;
    int *codes = NULL, r, all = 1;

    ps.done = calloc(S + 1, 1);
    r = ps.done && refresh_nodes(ts, &nodes, &part, &n) == 0 ? 0 : oom(err);
    outs = r == 0 ? calloc(n + 1, sizeof(*outs)) : NULL;
    codes = r == 0 ? calloc(n + 1, sizeof(*codes)) : NULL;
    if (r == 0 && (!outs || !codes))
        r = oom(err);
    for (i = 0; outs && i < n; i++)
        chc_buf_init(&outs[i], 0);
    if (r == 0 && n)
        r = st_read_many(&t, nodes, n, outs, codes, err);
    for (i = 0; r == 0 && i < n; i++) {
        const char *data = codes[i] == 0 ? outs[i].buf : "";
        if (nodes[i].k == ST_PART_STATE) {
            ts->parts[part[i]].done |= !strncmp(data, "done", 4);
            all &= ts->parts[part[i]].done;
        } else if (st_piece_decode(data, S, &ps) < 0) {
            r = chc_err_set(err, CHC_ESTATE, "bad state of piece %u of partition %s",
                            nodes[i].k, ts->parts[part[i]].lit);
        } else {
            memcpy(pdone_at(ts, part[i], nodes[i].k), ps.done, S);
        }
    }
    for (i = 0; outs && i < n; i++)
        chc_buf_release(&outs[i]);
    free(outs);
    free(codes);
    free(nodes);
    free(part);
    free(ps.done);
    return r < 0 ? r : all;
}

void tstate__gauges(struct worker *w, const struct tstate *ts)
{
    size_t i, s, done = 0, dirty = 0, in_flight = 0, parts_done = 0;
    unsigned k;

    if (!w->metrics)
        return;
    for (i = 0; i < ts->n_parts; i++) {
        parts_done += ts->parts[i].done;
        if (ts->parts[i].lead != i)
            continue;
        for (k = 0; k < ts->parts[i].splits; k++) {
            const unsigned char *d = pdone_at(ts, i, k);
            size_t idx = i * ts->splits + k;
            in_flight += ts->pbusy[idx];
            dirty += ts->pfails[idx] && !ts->pbusy[idx];
            for (s = 0; s < ts->tb->pull->n_shards; s++)
                done += group_on_shard(ts, i, s) && (group_done(ts, i) || d[s]);
        }
    }
    /* Counters exist from the table's first refresh, at 0 until this worker
     * copies: a scrape shows every series it will ever show. */
    tstate__metric(w, ts, CHC_METRIC_ROWS_COPIED, NULL, NULL, 0, WK_ADD);
    tstate__metric(w, ts, CHC_METRIC_BYTES_COPIED, NULL, NULL, 0, WK_ADD);
    tstate__metric(w, ts, CHC_METRIC_PIECES, "state", "done", (double)done, WK_SET);
    tstate__metric(w, ts, CHC_METRIC_PIECES, "state", "in_flight", (double)in_flight, WK_SET);
    tstate__metric(w, ts, CHC_METRIC_PIECES, "state", "dirty", (double)dirty, WK_SET);
    tstate__metric(w, ts, CHC_METRIC_PARTITIONS, "state", "done", (double)parts_done, WK_SET);
    tstate__metric(w, ts, CHC_METRIC_PARTITIONS, "state", "total", (double)ts->n_parts, WK_SET);
    tstate__metric(w, NULL, CHC_METRIC_SLOTS_IN_USE, NULL, NULL, (double)w->n_jobs, WK_SET);
    tstate__metric(w, NULL, CHC_METRIC_MAX_WORKERS, NULL, NULL, (double)w->task->max_workers, WK_SET);
    tstate__metric(w, NULL, CHC_METRIC_ZK_SESSION, "state", "connected",
               zk_session_connected(w->zs) ? 1.0 : 0.0, WK_SET);
    tstate__metric(w, NULL, CHC_METRIC_ZK_SESSION, "state", "expired",
               zk_session_expired(w->zs) ? 1.0 : 0.0, WK_SET);
}

void tstate__free(struct tstate *ts)
{
    size_t i;

    if (!ts)
        return;
    free(ts->zroot);
    free(ts->key_type);
    free(ts->split_args);
    free(ts->nodes);
    sql_columns_release(&ts->cols);
    free(ts->src_rep);
    free(ts->order);
    free(ts->targets);
    free(ts->route_rep);
    if (ts->route_cluster)
        chc_strv_free(ts->route_cluster, ts->tb->pull->n_shards);
    for (i = 0; i < ts->n_parts; i++) {
        free(ts->parts[i].lit);
        free(ts->parts[i].zname);
        free(ts->parts[i].on_shard);
    }
    free(ts->parts);
    chc_strmap_release(&ts->part_index);
    free(ts->pdone);
    free(ts->pbusy);
    free(ts->pnext);
    free(ts->pfails);
    free(ts->ptries);
    free(ts);
}

/* routing.c — a table's routing (routing.h): whether Distributed routing can
 * be used, which staging node routes each source shard's pieces (the
 * nearest that knows the cluster), its routing tables, the fallback to
 * filter routing, and what `status` and `plan` say about it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/options.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"
#include "chcopier/state/layout.h"
#include "chcopier/zk/zk.h"
#include "nodes.h"
#include "routing.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

#define CLUSTERS_TIMEOUT_MS 10000

/* Why Distributed routing cannot reach exactly the staging nodes ("" if
 * it can): every destination replica must answer, and each shard must be
 * written once (replicated: internal_replication or one replica) or on
 * every replica (not replicated: no internal_replication, or one replica),
 * as chcopier stages it. */
static void eligible(const struct tstate *ts, char *why, size_t cap)
{
    const struct cfg_cluster *c = ts->tb->push;
    int replicated = ts->tb->engine->replicated;
    size_t i, j;

    why[0] = '\0';
    for (i = 0; i < c->n_shards && !why[0]; i++) {
        const struct cfg_shard *sh = &c->shards[i];
        for (j = 0; j < sh->n_replicas && !why[0]; j++)
            if (!tstate__alive(ts, &sh->replicas[j]))
                snprintf(why, cap, "destination replica %s:%d does not answer",
                         sh->replicas[j].host, sh->replicas[j].http_port);
        if (!why[0] && sh->n_replicas > 1 && !sh->internal_replication != !replicated)
            snprintf(why, cap, "destination shard %zu has internal_replication %s for a %s "
                               "table",
                     i + 1, sh->internal_replication ? "true" : "false",
                     replicated ? "replicated" : "non-replicated");
    }
}

/* The name under which target t's server knows cluster_push exactly, from
 * its system.clusters answer (NULL: it does not). */
static char *known_as(const struct tstate *ts, const char *answer, size_t len)
{
    struct chc_err e = CHC_ERR_INIT;
    struct ch_rows *rows = NULL;
    struct route_row *rr = NULL;
    const char *name = NULL;
    char *ret = NULL;
    size_t i, n;

    if (ch_tsv_parse(answer, len, &rows, &e) < 0)
        return NULL;
    n = ch_rows_count(rows);
    rr = calloc(n + 1, sizeof(*rr));
    for (i = 0; rr && i < n && ch_rows_ncols(rows) >= 6; i++)
        rr[i] = (struct route_row){.cluster = ch_rows_str(rows, i, 0),
                                   .shard_num = atol(ch_rows_str(rows, i, 1)),
                                   .weight = atol(ch_rows_str(rows, i, 2)),
                                   .replica_num = atol(ch_rows_str(rows, i, 3)),
                                   .host = ch_rows_str(rows, i, 4),
                                   .port = atol(ch_rows_str(rows, i, 5))};
    if (rr && ch_rows_ncols(rows) >= 6)
        name = route_match_cluster(ts->tb->push, rr, n);
    if (name)
        ret = chc_strndup(name, strlen(name));
    free(rr);
    ch_rows_free(rows);
    return ret;
}

/* known[t]: the cluster's name on staging node t, asked of every one at
 * once; NULL where it does not know it (or did not answer). */
static int ask_clusters(struct worker *w, const struct tstate *ts, char **known,
                        struct chc_err *err)
{
    const struct cfg_replica **reps = calloc(ts->n_targets + 1, sizeof(*reps));
    struct chc_buf *outs = calloc(ts->n_targets + 1, sizeof(*outs));
    struct chc_err *errs = calloc(ts->n_targets + 1, sizeof(*errs));
    struct chc_buf sql = CHC_BUF_INIT;
    size_t t;
    int r = reps && outs && errs && sql_clusters(&sql) == 0 ? 0 : oom(err);

    for (t = 0; r == 0 && t < ts->n_targets; t++) {
        reps[t] = ts->targets[t].rep;
        chc_buf_init(&outs[t], 0);
    }
    if (r == 0)
        r = nodes__each(w, reps, ts->n_targets, sql.buf, SIDE_PUSH, CLUSTERS_TIMEOUT_MS, outs,
                        errs, err);
    for (t = 0; r == 0 && t < ts->n_targets; t++)
        known[t] = errs[t].code ? NULL : known_as(ts, outs[t].buf, outs[t].len);
    for (t = 0; outs && t < ts->n_targets; t++)
        chc_buf_release(&outs[t]);
    free(reps);
    free(outs);
    free(errs);
    chc_buf_release(&sql);
    return r;
}

/* For each source shard, the staging node nearest its replica among those
 * that know the cluster (ties spread over the shards). 0, or 1 when some
 * source shard has none. */
static int choose_nodes(struct tstate *ts, char **known)
{
    size_t s, t, S = ts->tb->pull->n_shards;

    for (s = 0; s < S; s++) {
        size_t best = (size_t)-1, n_best = 0, pick;
        for (t = 0; t < ts->n_targets; t++) {
            size_t d;
            if (!known[t])
                continue;
            d = plan_hostname_difference(ts->targets[t].rep->host, ts->src_rep[s]->host);
            n_best = d < best ? 1 : n_best + (d == best);
            best = d < best ? d : best;
        }
        if (!n_best)
            return 1;
        pick = s % n_best;
        for (t = 0; t < ts->n_targets; t++)
            if (known[t] && plan_hostname_difference(ts->targets[t].rep->host,
                                                     ts->src_rep[s]->host) == best &&
                pick-- == 0)
                break;
        ts->route_rep[s] = ts->targets[t].rep;
        ts->route_cluster[s] = chc_strndup(known[t], strlen(known[t]));
        if (!ts->route_cluster[s])
            return -1;
    }
    return 0;
}

/* The routing tables on every routing node (each piece table's). */
static int create_tables(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards, n = 0, s, i;
    const struct cfg_replica **reps = calloc(S * ts->splits + 1, sizeof(*reps));
    const char **sqls = calloc(S * ts->splits + 1, sizeof(*sqls));
    struct chc_buf *sql = calloc(S * ts->splits + 1, sizeof(*sql));
    unsigned k;
    int r = reps && sqls && sql ? 0 : oom(err);

    for (s = 0; r == 0 && s < S; s++) {
        for (i = 0; i < s && ts->route_rep[i] != ts->route_rep[s]; i++)
            ;
        for (k = 0; i == s && r == 0 && k < ts->splits; k++, n++) {
            chc_buf_init(&sql[n], 0);
            r = sql_route_create(ts->tb, ts->route_cluster[s], k, &sql[n]) < 0 ? oom(err) : 0;
            reps[n] = ts->route_rep[s];
            sqls[n] = sql[n].buf;
        }
    }
    if (r == 0)
        r = nodes__multi(w, reps, n, sqls, NULL, NULL, NULL, err);
    for (i = 0; sql && i < n; i++)
        chc_buf_release(&sql[i]);
    free(reps);
    free(sqls);
    free(sql);
    return r;
}

/* <t>/routing = routing__describe (best effort: `status` shows it). */
static void publish(struct worker *w, const struct tstate *ts)
{
    struct chc_buf path = CHC_BUF_INIT, text = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;
    int r = st_path_tnode(ts->zroot, ST_ROUTING, NULL, &path);

    if (r == 0)
        r = routing__describe(ts, &text);
    if (r == 0)
        r = zk_set(w->zs, path.buf, text.buf, text.len, ZK_ANY_VERSION, NULL, &e);
    if (r == CHC_EZK_NONODE)
        r = zk_create(w->zs, path.buf, text.buf, text.len, ZK_PERSISTENT, NULL, &e);
    if (r < 0 && r != CHC_EZK_NODEEXISTS)
        chc_log_debug("table '%s': cannot record the routing: %s", ts->tb->name, e.msg);
    chc_log_info("table '%s': routing %s", ts->tb->name, text.buf);
    chc_buf_release(&path);
    chc_buf_release(&text);
}

int routing__choose(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    size_t S = ts->tb->pull->n_shards;
    char **known = NULL;
    int r = 0;

    ts->route = ROUTE_FILTER;
    if (w->o->routing == CHC_ROUTING_FILTER) {
        snprintf(ts->route_why, sizeof(ts->route_why), "--routing filter");
        return 0;
    }
    known = calloc(ts->n_targets + 1, sizeof(*known));
    if (!ts->route_rep)
        ts->route_rep = calloc(S, sizeof(*ts->route_rep));
    if (!ts->route_cluster)
        ts->route_cluster = calloc(S, sizeof(*ts->route_cluster));
    if (!known || !ts->route_rep || !ts->route_cluster) {
        free(known);
        return oom(err);
    }
    eligible(ts, ts->route_why, sizeof(ts->route_why));
    wk__fault_point(w, "before_routing");
    /* ask_clusters fails as its statements do (a lost ZooKeeper session, a
     * server away): that error is kept; only choose_nodes's -1 is memory. */
    r = ts->route_why[0] ? 0 : ask_clusters(w, ts, known, err);
    if (r == 0 && !ts->route_why[0] && (r = choose_nodes(ts, known)) == 1)
        snprintf(ts->route_why, sizeof(ts->route_why), "no staging node knows a cluster with "
                 "exactly cluster '%s''s shards, weights and replicas", ts->tb->push->name);
    r = r == -1 ? oom(err) : r == 1 ? 0 : r;
    if (r == 0 && !ts->route_why[0])
        ts->route = ROUTE_DISTRIBUTED;
    chc_strv_free(known, ts->n_targets);
    if (r == 0 && ts->route != ROUTE_DISTRIBUTED && w->o->routing == CHC_ROUTING_DISTRIBUTED)
        r = chc_err_set(err, CHC_EPREFLIGHT, "table '%s': --routing distributed: %s",
                        ts->tb->name, ts->route_why);
    return r;
}

int routing__create(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct chc_err e = CHC_ERR_INIT;

    if (ts->route == ROUTE_DISTRIBUTED && create_tables(w, ts, &e) < 0) {
        if (chc_err_is_transient(e.code) || w->o->routing == CHC_ROUTING_DISTRIBUTED)
            return chc_err_set(err, e.code, "table '%s': cannot create the routing tables: %s",
                               ts->tb->name, e.msg);
        ts->route = ROUTE_FILTER;
        snprintf(ts->route_why, sizeof(ts->route_why),
                 "the routing tables cannot be created: %.180s", e.msg);
    }
    publish(w, ts);
    return 0;
}

void routing__fallback(struct worker *w, struct tstate *ts, const char *why)
{
    if (ts->route != ROUTE_DISTRIBUTED)
        return;
    ts->route = ROUTE_FILTER;
    snprintf(ts->route_why, sizeof(ts->route_why), "%s", why);
    chc_log_warn("table '%s': %s; routing by filter from now on", ts->tb->name, why);
    publish(w, ts);
}

int routing__drop(struct worker *w, struct tstate *ts, const struct cfg_replica *const *reps,
                size_t n, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT;
    unsigned k;
    int r = 0;

    for (k = 0; r == 0 && k < ts->splits; k++) {
        chc_buf_reset(&sql);
        r = sql_route_drop(ts->tb, k, &sql) < 0 ? oom(err) : nodes__fanout(w, reps, n, sql.buf, err);
    }
    chc_buf_release(&sql);
    return r;
}

int routing__describe(const struct tstate *ts, struct chc_buf *out)
{
    size_t s;
    int r;

    if (ts->route != ROUTE_DISTRIBUTED)
        return chc_buf_addf(out, "filter: %s", ts->route_why);
    r = chc_buf_addstr(out, "distributed:");
    for (s = 0; r == 0 && s < ts->tb->pull->n_shards; s++)
        r = chc_buf_addf(out, "%s cluster '%s' on %s:%d for source shard %zu", s ? "," : "",
                         ts->route_cluster[s], ts->route_rep[s]->host,
                         ts->route_rep[s]->http_port, s + 1);
    return r;
}

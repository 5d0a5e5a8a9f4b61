/* preflight.c — what must hold before chcopier writes anything for a table
 * task, and the facts the copy needs from the servers:
 *   1. every node of both clusters answers `SELECT version()` (probed at
 *      once, bounded): a source shard reads from a live replica (one on this
 *      host first), a destination shard stages on its first live replica;
 *      dead replicas are skipped and named. A shard with no live replica is
 *      a transient error (retried with backoff). A non-replicated
 *      destination with a dead replica is refused unless
 *      --allow-dead-replicas: that replica would silently miss its copy;
 *   2. the source table exists on every source shard with the same columns,
 *      and is not a Distributed table (each row would be read once per
 *      source shard);
 *   3. the task's expressions evaluate on the source (LIMIT 0):
 *      <where_condition>, <sharding_key> (an integer, as Distributed needs),
 *      the destination's PARTITION BY and ORDER BY; their types give the
 *      routing cast and the piece hash;
 *   4. an existing destination table is not Distributed and has the task's
 *      engine family, partition key and sorting key, and every column it
 *      stores exists on the source.
 * Each refusal is one line naming the table task and the element or
 * shard/replica; CHC_EPREFLIGHT, nothing written. Writes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/config/engine.h"
#include "chcopier/obs/log.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/sqlhash.h"
#include "chcopier/config/task.h"
#include "nodes.h"
#include "preflight.h"
#include "tstate.h"
#include "versions.h"
#include "wk.h"

#include "base/banned.h"

/* How long a node may take to answer the probe. */
#define PROBE_TIMEOUT_MS 10000L

/* ------------------------------------------------------------- nodes */

static int node_add(struct tstate *ts, const struct cfg_replica *rep)
{
    size_t i;

    for (i = 0; i < ts->n_nodes; i++)
        if (ts->nodes[i].rep == rep)
            return 0;
    ts->nodes[ts->n_nodes++].rep = rep;
    return 0;
}

/* SELECT version() on every replica of both clusters, at once. */
static int probe(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_cluster *cl[2] = {ts->tb->pull, ts->tb->push};
    const struct cfg_replica **reps = NULL;
    struct chc_buf *outs = NULL;
    struct chc_err *errs = NULL;
    size_t c, s, j, i, n = 0;
    int r;

    for (c = 0; c < 2; c++)
        for (s = 0; s < cl[c]->n_shards; s++)
            n += cl[c]->shards[s].n_replicas;
    ts->nodes = calloc(n, sizeof(*ts->nodes));
    if (!ts->nodes)
        return oom(err);
    for (c = 0; c < 2; c++)
        for (s = 0; s < cl[c]->n_shards; s++)
            for (j = 0; j < cl[c]->shards[s].n_replicas; j++)
                node_add(ts, &cl[c]->shards[s].replicas[j]);
    reps = calloc(ts->n_nodes, sizeof(*reps));
    outs = calloc(ts->n_nodes, sizeof(*outs));
    errs = calloc(ts->n_nodes, sizeof(*errs));
    if (!reps || !outs || !errs) {
        r = oom(err);
        goto out;
    }
    for (i = 0; i < ts->n_nodes; i++) {
        reps[i] = ts->nodes[i].rep;
        chc_buf_init(&outs[i], 4096);
    }
    r = nodes__each(w, reps, ts->n_nodes, SQL_PROBE, SIDE_PULL, PROBE_TIMEOUT_MS, outs,
                       errs, err);
    for (i = 0; r == 0 && i < ts->n_nodes; i++) {
        struct node *nd = &ts->nodes[i];
        chc_buf_trim(&outs[i]);
        nd->alive = errs[i].code == 0;
        if (nd->alive) {
            struct chc_err e = CHC_ERR_INIT;
            snprintf(nd->version, sizeof(nd->version), "%s", outs[i].buf);
            if (dialect_parse_version(nd->version, &nd->ver, &e) < 0)
                chc_log_warn("%s:%d: %s: taken for %u.%u", nd->rep->host, nd->rep->http_port,
                             e.msg, DIALECT_DEFAULT / 1000000u, DIALECT_DEFAULT / 1000u % 1000u);
            if (wk__version_set(w, nd->rep, nd->ver) < 0)
                r = oom(err);
        } else
            snprintf(nd->why, sizeof(nd->why), "%s", errs[i].msg);
    }
out:
    for (i = 0; outs && i < ts->n_nodes; i++)
        chc_buf_release(&outs[i]);
    free(reps);
    free(outs);
    free(errs);
    return r;
}

/* "h1:8123 (why); h2:8123 (why)" for a shard without a live replica. */
static int dead_list(const struct tstate *ts, const struct cfg_shard *sh, struct chc_buf *b)
{
    size_t j;
    int r = 0;

    for (j = 0; r == 0 && j < sh->n_replicas; j++) {
        const struct node *nd = tstate__node(ts, &sh->replicas[j]);
        r = chc_buf_addf(b, "%s%s:%d (%.120s)", j ? "; " : "", sh->replicas[j].host,
                         sh->replicas[j].http_port, nd ? nd->why : "");
    }
    return r;
}

/* CHC_ECH_CONN (waited for): shard `s` of c has no replica that answers. */
static int no_live_replica(const struct tstate *ts, const char *side,
                           const struct cfg_cluster *c, size_t s, struct chc_err *err)
{
    struct chc_buf b = CHC_BUF_INIT;
    int r = dead_list(ts, &c->shards[s], &b) < 0
                ? oom(err)
                : chc_err_set(err, CHC_ECH_CONN,
                              "table '%s': %s shard %zu of cluster '%s' has no replica that "
                              "answers: %s; waiting for one",
                              ts->tb->name, side, s + 1, c->name, b.buf);

    chc_buf_release(&b);
    return r;
}

/* Each source shard reads from a live replica, a local one first. */
static int choose_sources(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_cluster *c = ts->tb->pull;
    size_t s, j;
    int r = 0;

    for (s = 0; r == 0 && s < c->n_shards; s++) {
        const struct cfg_shard *sh = &c->shards[s];
        ts->src_rep[s] = NULL;
        for (j = 0; j < sh->n_replicas; j++) {
            const struct cfg_replica *rep = &sh->replicas[j];
            if (!tstate__alive(ts, rep))
                continue;
            if (!ts->src_rep[s] || (plan_is_local_host(rep->host, w->host) &&
                                    !plan_is_local_host(ts->src_rep[s]->host, w->host)))
                ts->src_rep[s] = rep;
        }
        if (ts->src_rep[s])
            continue;
        r = no_live_replica(ts, "source", c, s, err);
    }
    return r;
}

/* A replicated destination stages on the first live replica of each shard
 * (replication carries the result to the others); a non-replicated one on
 * every replica, each holding its own copy. */
static int choose_targets(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_cluster *c = ts->tb->push;
    int replicated = ts->tb->engine->replicated;
    size_t i, j, n = 0;
    int r = 0;

    for (i = 0; i < c->n_shards; i++)
        n += c->shards[i].n_replicas;
    ts->targets = calloc(n ? n : 1, sizeof(*ts->targets));
    if (!ts->targets)
        return oom(err);
    for (i = 0; r == 0 && i < c->n_shards; i++) {
        const struct cfg_shard *sh = &c->shards[i];
        size_t got = 0;
        for (j = 0; j < sh->n_replicas && !(replicated && got); j++) {
            const struct cfg_replica *rep = &sh->replicas[j];
            if (!tstate__alive(ts, rep)) {
                if (!replicated && !w->o->allow_dead_replicas)
                    r = chc_err_set(err, CHC_EPREFLIGHT,
                                    "table '%s': destination shard %zu replica %s:%d does not "
                                    "answer (%.160s), and the destination is not replicated, so "
                                    "that replica would miss its copy; start it, or pass "
                                    "--allow-dead-replicas to copy without it",
                                    ts->tb->name, i + 1, rep->host, rep->http_port,
                                    tstate__node(ts, rep)->why);
                continue;
            }
            ts->targets[ts->n_targets].shard = i;
            ts->targets[ts->n_targets].rep = rep;
            ts->n_targets++;
            got++;
        }
        if (r == 0 && got == 0)
            r = no_live_replica(ts, "destination", c, i, err);
    }
    return r;
}

/* Name every replica that is skipped, and every node's version: in the log
 * and in this worker's note (`status`). */
static void log_skipped(struct worker *w, const struct tstate *ts)
{
    struct chc_buf note = CHC_BUF_INIT, vers = CHC_BUF_INIT;
    size_t i;

    for (i = 0; i < ts->n_nodes; i++) {
        const struct node *nd = &ts->nodes[i];
        if (nd->alive)
            continue;
        chc_log_warn("table '%s': replica %s:%d does not answer (%s): skipping it%s",
                     ts->tb->name, nd->rep->host, nd->rep->http_port, nd->why,
                     ts->tb->engine->replicated
                         ? "; replication brings it the data once it is back and has the "
                           "table (chcopier creates it there if it answers when the table is "
                           "done)"
                         : "");
        if (chc_buf_addf(&note, "%stable '%s': skipping replica %s:%d, it does not answer",
                         note.len ? "\n" : "", ts->tb->name, nd->rep->host,
                         nd->rep->http_port) < 0)
            break;
    }
    if (versions__line(ts, &vers) == 0) {
        chc_log_info("table '%s': servers %s", ts->tb->name, vers.buf);
        if (chc_buf_addf(&note, "%stable '%s': servers %s", note.len ? "\n" : "", ts->tb->name,
                         vers.buf) < 0)
            chc_log_debug("out of memory for this worker's note");
    }
    wk__note(w, "%s", note.buf);
    chc_buf_release(&note);
    chc_buf_release(&vers);
}

int preflight__nodes(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    int r;

    free(ts->nodes);
    free(ts->targets);
    ts->nodes = NULL;
    ts->targets = NULL;
    ts->n_nodes = ts->n_targets = 0;
    r = probe(w, ts, err);
    if (r == 0)
        r = choose_sources(w, ts, err);
    if (r == 0)
        r = choose_targets(w, ts, err);
    if (r == 0) {
        log_skipped(w, ts);
        versions__choose_path(ts, &ts->pipe);
        r = versions__check_settings(ts, w->task, err);
    }
    return r;
}

/* Live nodes of the push cluster (DDL goes to them). */
int preflight__push_nodes(const struct tstate *ts, const struct cfg_replica ***ret, size_t *ret_n)
{
    size_t i, n = 0;

    if (nodes__of_cluster(ts->tb->push, ret, ret_n) < 0)
        return -ENOMEM;
    for (i = 0; i < *ret_n; i++)
        if (tstate__alive(ts, (*ret)[i]))
            (*ret)[n++] = (*ret)[i];
    *ret_n = n;
    return 0;
}

/* ------------------------------------------------------------ source */

/* The source table's columns on every source shard, compared with shard 1's
 * (name, type and kind); cols (optional) gets shard 1's DESCRIBE. */
static int source_columns(struct worker *w, struct tstate *ts, struct ch_rows **cols,
                          struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    size_t S = tb->pull->n_shards, s, i, c;
    struct chc_buf sql = CHC_BUF_INIT, *outs = calloc(S, sizeof(*outs));
    struct chc_err *errs = calloc(S, sizeof(*errs));
    struct ch_rows **rows = calloc(S, sizeof(*rows));
    int r;

    if (!outs || !errs || !rows) {
        r = oom(err);
        goto out;
    }
    r = sql_describe(tb->database_pull, tb->table_pull, &sql);
    if (r < 0) {
        r = oom(err);
        goto out;
    }
    r = nodes__each(w, ts->src_rep, S, sql.buf, SIDE_PULL, 0, outs, errs, err);
    for (s = 0; r == 0 && s < S; s++) {
        if (errs[s].code < 0) {
            r = chc_err_set(err, errs[s].code == CHC_ECH_CONN ? CHC_ECH_CONN : CHC_EPREFLIGHT,
                            "table '%s': cannot read the source table %s.%s on shard %zu: %s",
                            tb->name, tb->database_pull, tb->table_pull, s + 1, errs[s].msg);
            break;
        }
        r = ch_tsv_parse(outs[s].buf, outs[s].len, &rows[s], err);
    }
    for (s = 1; r == 0 && s < S; s++) {
        const struct ch_rows *a = rows[0], *b = rows[s];
        size_t n = ch_rows_count(a) > ch_rows_count(b) ? ch_rows_count(a) : ch_rows_count(b);
        for (i = 0; r == 0 && i < n; i++) {
            const char *an = i < ch_rows_count(a) ? ch_rows_str(a, i, 0) : NULL;
            const char *bn = i < ch_rows_count(b) ? ch_rows_str(b, i, 0) : NULL;
            int same = an && bn && !strcmp(an, bn);
            for (c = 1; same && c < 3 && c < ch_rows_ncols(a) && c < ch_rows_ncols(b); c++)
                same = !strcmp(ch_rows_str(a, i, c), ch_rows_str(b, i, c));
            if (!same)
                r = chc_err_set(err, CHC_EPREFLIGHT,
                                "table '%s': the source table %s.%s differs between shards: "
                                "column %zu is `%s` %s on shard 1 (%s:%d) but `%s` %s on shard "
                                "%zu (%s:%d); make them equal first",
                                tb->name, tb->database_pull, tb->table_pull, i + 1,
                                an ? an : "(none)", an ? ch_rows_str(a, i, 1) : "",
                                ts->src_rep[0]->host, ts->src_rep[0]->http_port,
                                bn ? bn : "(none)", bn ? ch_rows_str(b, i, 1) : "", s + 1,
                                ts->src_rep[s]->host, ts->src_rep[s]->http_port);
        }
    }
    if (r == 0 && cols) {
        *cols = rows[0];
        rows[0] = NULL;
    }
out:
    for (s = 0; s < S; s++) {
        if (outs)
            chc_buf_release(&outs[s]);
        if (rows)
            ch_rows_free(rows[s]);
    }
    free(outs);
    free(errs);
    free(rows);
    chc_buf_release(&sql);
    return r;
}

/* system.tables' engine, partition_key and sorting_key of db.table on rep;
 * *ret NULL when there is no such table. */
static int table_facts(struct worker *w, const struct cfg_replica *rep, enum side side,
                       const char *db, const char *table, struct ch_rows **ret, struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT;
    int r;

    *ret = NULL;
    r = sql_table_facts(db, table, &sql) < 0 ? oom(err) : nodes__rows(w, rep, side, sql.buf, ret, err);
    chc_buf_release(&sql);
    return r;
}

static int source_engine(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct ch_rows *f = NULL;
    int r;

    r = table_facts(w, ts->src_rep[0], SIDE_PULL, tb->database_pull, tb->table_pull, &f, err);
    if (r == 0 && f && !strcmp(ch_rows_str(f, 0, 0), "Distributed"))
        r = chc_err_set(err, CHC_EPREFLIGHT,
                        "table '%s': the source %s.%s is a Distributed table: reading it on "
                        "every source shard would copy each row once per shard; name its "
                        "local table in <table_pull>",
                        tb->name, tb->database_pull, tb->table_pull);
    ch_rows_free(f);
    return r;
}

/* After the combined check failed with `first`: name the element. */
static int name_element(struct worker *w, struct tstate *ts, const struct chc_err *first,
                        struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf sql = CHC_BUF_INIT, what = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;
    size_t i, n = tb->engine->n_key_columns;
    int r = 0, el;

    for (el = SQL_EL_WHERE; el <= SQL_EL_ORDER; el++) {
        for (i = 0; i < (el == SQL_EL_ORDER ? n : 1); i++) {
            if ((el == SQL_EL_WHERE && !tb->where_condition) ||
                (el == SQL_EL_PARTITION && !tb->engine->partition_by))
                continue;
            chc_buf_reset(&sql);
            chc_buf_reset(&what);
            if (sql_check_element(tb, (enum sql_element)el, i, &sql) < 0)
                goto oom;
            r = nodes__query(w, ts->src_rep[0], SIDE_PULL, sql.buf, NULL, &e);
            if (r == 0)
                continue;
            if (chc_err_is_transient(r)) {
                r = chc_err_set(err, r, "%s", e.msg);
                goto out;
            }
            r = el == SQL_EL_WHERE   ? chc_buf_addf(&what, "<where_condition> '%s'",
                                                    tb->where_condition)
                : el == SQL_EL_KEY   ? chc_buf_addf(&what, "<sharding_key> '%s'", tb->sharding_key)
                : el == SQL_EL_PARTITION ? chc_buf_addf(&what, "PARTITION BY '%s' of <engine>",
                                                        tb->engine->partition_by)
                                     : chc_buf_addf(&what, "ORDER BY element '%s' of <engine>",
                                                    tb->engine->key_columns[i]);
            if (r < 0)
                goto oom;
            r = chc_err_set(err, CHC_EPREFLIGHT,
                            "table '%s': %s does not evaluate on the source table %s.%s: %s",
                            tb->name, what.buf, tb->database_pull, tb->table_pull, e.msg);
            goto out;
        }
    }
    r = chc_err_set(err, first->code == CHC_ECH_CONN ? CHC_ECH_CONN : CHC_EPREFLIGHT,
                    "table '%s': checking the task's expressions on the source: %s", tb->name,
                    first->msg);
    goto out;
oom:
    r = oom(err);
out:
    chc_buf_release(&sql);
    chc_buf_release(&what);
    return r;
}

/* The sorting key in hashable form, from the key expressions' types. */
static int split_args(const struct cfg_table *tb, const struct ch_rows *hdr, struct chc_buf *out,
                      struct chc_err *err)
{
    struct chc_buf e = CHC_BUF_INIT;
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < tb->engine->n_key_columns; i++) {
        chc_buf_reset(&e);
        r = plan_key_expr(tb, i, &e) < 0 ? oom(err) : 0;
        if (r == 0 && i)
            r = chc_buf_addstr(out, ", ") < 0 ? oom(err) : 0;
        if (r == 0)
            r = sqlhash_args(e.buf, ch_rows_str(hdr, 1, 1 + i), out, err);
    }
    chc_buf_release(&e);
    return r;
}

static int key_facts(struct tstate *ts, const struct ch_rows *hdr, const struct ch_rows *cols,
                     struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf sa = CHC_BUF_INIT;
    const char **names = calloc(ch_rows_count(cols) + 1, sizeof(*names));
    size_t i;
    int r;

    if (!names)
        return oom(err);
    for (i = 0; i < ch_rows_count(cols); i++)
        names[i] = ch_rows_str(cols, i, 0);
    free(ts->key_type);
    free(ts->split_args);
    ts->split_args = NULL;
    ts->key_type = chc_strdup(ch_rows_str(hdr, 1, 0));
    r = ts->key_type ? split_args(tb, hdr, &sa, err) : oom(err);
    if (r == 0) {
        ts->split_args = chc_buf_take(&sa, NULL);
        ts->key.type = ts->key_type;
        ts->key.split_args = ts->split_args;
        ts->key.constant = !plan_expr_uses_columns(tb->sharding_key, names, ch_rows_count(cols));
    }
    chc_buf_release(&sa);
    free(names);
    return r;
}

/* Run what chcopier will generate from these facts once, with LIMIT 0:
 * the piece hash and the route of shard 1. */
static int check_generated(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct chc_buf sql = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;
    int r;

    r = sql_check_generated(tb, ts->split_args, &ts->key, &sql, &e);
    if (r < 0) {
        r = chc_err_set(err, r == CHC_ECONFIG ? CHC_EPREFLIGHT : r, "%s", e.msg);
        goto out;
    }
    r = nodes__query(w, ts->src_rep[0], SIDE_PULL, sql.buf, NULL, &e);
    if (r < 0)
        r = chc_err_set(err, chc_err_is_transient(r) ? r : CHC_EPREFLIGHT,
                        "table '%s': the source cannot evaluate chcopier's piece hash or route "
                        "(sharding key type %s): %s",
                        tb->name, ts->key_type, e.msg);
out:
    chc_buf_release(&sql);
    return r;
}

static int source_exprs(struct worker *w, struct tstate *ts, const struct ch_rows *cols,
                        struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT, out = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;
    struct ch_rows *hdr = NULL;
    int r;

    if (sql_check_exprs(ts->tb, &sql) < 0) {
        r = oom(err);
        goto out;
    }
    r = nodes__query(w, ts->src_rep[0], SIDE_PULL, sql.buf, &out, &e);
    if (r < 0) {
        r = chc_err_is_transient(r) ? chc_err_set(err, r, "%s", e.msg)
                                    : name_element(w, ts, &e, err);
        goto out;
    }
    r = ch_tsv_parse(out.buf, out.len, &hdr, err);
    if (r == 0 && (ch_rows_count(hdr) != 2 ||
                   ch_rows_ncols(hdr) != ts->tb->engine->n_key_columns + 2))
        r = chc_err_set(err, CHC_EPARSE, "table '%s': unexpected answer to the expression check",
                        ts->tb->name);
    if (r == 0)
        r = key_facts(ts, hdr, cols, err);
    if (r == 0)
        r = check_generated(w, ts, err);
out:
    ch_rows_free(hdr);
    chc_buf_release(&sql);
    chc_buf_release(&out);
    return r;
}

/* ------------------------------------------------------- destination */

/* An expression as text to compare: no whitespace or back-quotes, without
 * parentheses or tuple() around all of it ("(a, b)" and "a, b" agree). */
static int norm_expr(const char *s, struct chc_buf *out)
{
    size_t i, n, depth;
    int r = 0;

    chc_buf_reset(out);
    for (; r == 0 && s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '`')
            r = chc_buf_addch(out, *s);
    for (;;) {
        size_t skip = !strncmp(out->buf, "tuple(", 6) ? 6 : out->buf[0] == '(' ? 1 : 0;
        n = out->len;
        if (r < 0 || !skip || out->buf[n - 1] != ')')
            return r;
        for (i = skip, depth = 1; i < n - 1 && depth; i++)
            depth += out->buf[i] == '(' ? 1 : out->buf[i] == ')' ? -1 : 0;
        if (depth == 0) /* the first parenthesis closes before the end */
            return r;
        memmove(out->buf, out->buf + skip, n - 1 - skip);
        chc_buf_setlen(out, n - 1 - skip);
    }
}

static int same_expr(const char *a, const char *b, int *ret)
{
    struct chc_buf x = CHC_BUF_INIT, y = CHC_BUF_INIT;
    int r = norm_expr(a, &x);

    if (r == 0)
        r = norm_expr(b, &y);
    *ret = r == 0 && !strcmp(x.buf, y.buf);
    chc_buf_release(&x);
    chc_buf_release(&y);
    return r;
}

/* Every column the destination stores must come from the source. */
static int dest_columns(struct worker *w, struct tstate *ts, const struct ch_rows *src,
                        struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    struct ch_rows *dst = NULL;
    size_t i, j;
    int r;

    r = nodes__describe(w, ts->targets[0].rep, SIDE_PUSH, tb->database_push, tb->table_push, &dst, err);
    for (i = 0; r == 0 && i < ch_rows_count(dst); i++) {
        const char *name = ch_rows_str(dst, i, 0);
        const char *kind = ch_rows_str(dst, i, 2);
        int found = 0;
        if ((!strcmp(kind, "MATERIALIZED") || !strcmp(kind, "ALIAS") ||
                     !strcmp(kind, "EPHEMERAL")))
            continue;
        for (j = 0; !found && j < ch_rows_count(src); j++)
            found = !strcmp(name, ch_rows_str(src, j, 0));
        if (!found)
            r = chc_err_set(err, CHC_EPREFLIGHT,
                            "table '%s': the destination %s.%s stores column `%s`, which the "
                            "source %s.%s does not have; add it to the source or drop it from "
                            "the destination",
                            tb->name, tb->database_push, tb->table_push, name, tb->database_pull,
                            tb->table_pull);
    }
    ch_rows_free(dst);
    return r;
}

static int destination(struct worker *w, struct tstate *ts, const struct ch_rows *src,
                       struct chc_err *err)
{
    const struct cfg_table *tb = ts->tb;
    const struct engine_info *e = tb->engine;
    struct ch_rows *f = NULL;
    const char *engine, *base;
    int r, same_part = 0, same_order = 0;

    r = table_facts(w, ts->targets[0].rep, SIDE_PUSH, tb->database_push, tb->table_push, &f, err);
    if (r < 0 || !f)
        goto out;
    engine = ch_rows_str(f, 0, 0);
    base = !strncmp(engine, "Replicated", 10) ? engine + 10 : engine;
    if (!strcmp(engine, "Distributed")) {
        r = chc_err_set(err, CHC_EPREFLIGHT,
                        "table '%s': the destination %s.%s is a Distributed table; name the "
                        "local table it writes to in <table_push>",
                        tb->name, tb->database_push, tb->table_push);
        goto out;
    }
    if (strcmp(base, e->base_name) || (base != engine) != (e->replicated != 0)) {
        r = chc_err_set(err, CHC_EPREFLIGHT,
                        "table '%s': the destination %s.%s exists with engine %s but <engine> "
                        "says %s; make them agree",
                        tb->name, tb->database_push, tb->table_push, engine, e->name);
        goto out;
    }
    r = same_expr(e->partition_by ? e->partition_by : "", ch_rows_str(f, 0, 1), &same_part);
    if (r == 0)
        r = same_expr(e->order_by, ch_rows_str(f, 0, 2), &same_order);
    if (r < 0) {
        r = oom(err);
        goto out;
    }
    if (!same_part || !same_order) {
        r = chc_err_set(err, CHC_EPREFLIGHT,
                        "table '%s': the destination %s.%s exists with %s '%s' but <engine> "
                        "says '%s'; make them agree",
                        tb->name, tb->database_push, tb->table_push,
                        same_part ? "ORDER BY" : "PARTITION BY",
                        ch_rows_str(f, 0, same_part ? 2 : 1),
                        same_part ? e->order_by : e->partition_by ? e->partition_by : "");
        goto out;
    }
    r = dest_columns(w, ts, src, err);
out:
    ch_rows_free(f);
    return r;
}

/* ---------------------------------------------------------- the lot */

int preflight__run(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct ch_rows *cols = NULL;
    int r;

    r = preflight__nodes(w, ts, err);
    if (r == 0)
        r = source_columns(w, ts, &cols, err);
    if (r == 0)
        r = source_engine(w, ts, err);
    if (r == 0)
        r = source_exprs(w, ts, cols, err);
    if (r == 0)
        r = destination(w, ts, cols, err);
    ch_rows_free(cols);
    return r;
}

/* A statement was refused (CHC_ECH_PERMANENT): re-check the task's
 * expressions to name the element at fault. 0 when they all evaluate. */
int preflight__diagnose(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct ch_rows *cols = NULL;
    int r;

    r = source_columns(w, ts, &cols, err);
    if (r == 0)
        r = source_exprs(w, ts, cols, err);
    ch_rows_free(cols);
    return r;
}

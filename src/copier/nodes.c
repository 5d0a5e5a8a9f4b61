/* nodes.c — ClickHouse statements on one node, or on many at once
 * (nodes.h): bounded in flight, each with its side's settings, sent only
 * while the ZooKeeper session that our claims hang on is alive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/ch/response.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/zk/zk.h"
#include "nodes.h"
#include "wk.h"

#include "base/banned.h"

#define RESPONSE_MAX (64u << 20)

void nodes__params(struct ch_query_params *p, const struct cfg_replica *rep, const char *sql,
                   const struct cfg_task *t, enum side side)
{
    memset(p, 0, sizeof(*p));
    p->replica = rep;
    p->sql = sql;
    p->max_response = RESPONSE_MAX;
    p->settings[0] = &t->settings;
    p->settings[1] = side == SIDE_PULL ? &t->settings_pull : &t->settings_push;
    p->settings[2] = NULL;
}

void nodes__side_params(const struct worker *w, struct ch_query_params *p,
                        const struct cfg_replica *rep, const char *sql, enum side side)
{
    nodes__params(p, rep, sql, w->task, side);
    if (side == SIDE_DROP)
        p->settings[2] = dialect_drop_settings(wk__version(w, rep));
}

int nodes__query(struct worker *w, const struct cfg_replica *rep, enum side side,
                 const char *sql, struct chc_buf *out, struct chc_err *err)
{
    struct ch_query_params p;
    int r;

    nodes__side_params(w, &p, rep, sql, side);
    chc_log_trace("%s:%d: %s", rep->host, rep->http_port, sql);
    if (out)
        chc_buf_reset(out); /* out receives this query's body only */
    r = ch_query_sync(w->ch, &p, out, err);
    return r;
}

struct batch {
    size_t pending;
};

static void batch_cb(struct ch_query *q, void *data)
{
    struct batch *b = data;

    (void)q;
    b->pending--;
}

/* Run n statements at once (sqls[i] on reps[i]; one sql for all when
 * sqls is NULL), at most MULTI_INFLIGHT at a time (ClickHouse refuses more
 * than max_concurrent_queries, 100 by default, and other workers query it
 * too), and wait for all. q[i] receives each started query (NULL if it could
 * not start); the caller reads and frees them. */
#define MULTI_INFLIGHT 32

static int run_all(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                   const char *const *sqls, const char *sql, const enum side *sides, long timeout_ms,
                   struct ch_query **q, struct chc_err *err)
{
    struct batch b = {0};
    struct ch_query_params p;
    size_t i, started = 0;
    int r = 0;

    while (r == 0 && started < n) {
        while (r == 0 && started < n && b.pending < MULTI_INFLIGHT) {
            i = started;
            /* Statements of a round run under claims that end with the
             * session: once it is gone, send no more of them. */
            if (w->zs && zk_session_expired(w->zs)) {
                r = chc_err_set(err, CHC_EZK_EXPIRED, "ZooKeeper session lost: %zu of %zu "
                                "statements not sent", n - started, n);
                break;
            }
            nodes__side_params(w, &p, reps[i], sqls ? sqls[i] : sql, sides ? sides[i] : SIDE_PUSH);
            if (timeout_ms > 0) {
                p.timeout_ms = timeout_ms;
                p.connect_timeout_ms = timeout_ms < 5000 ? timeout_ms : 5000;
            }
            chc_log_trace("%s:%d: %s", reps[i]->host, reps[i]->http_port, p.sql);
            r = ch_query_start(w->ch, &p, batch_cb, &b, &q[i], err);
            if (r < 0)
                break;
            b.pending++;
            started++;
        }
        if (r == 0 && started < n)
            uv_run(&w->loop, UV_RUN_ONCE);
    }
    while (b.pending > 0)
        uv_run(&w->loop, UV_RUN_ONCE);
    return r;
}

/* Copy a finished query's body into out. */
static int take_body(struct ch_query *q, struct chc_buf *out, struct chc_err *err)
{
    size_t len;
    const char *body = ch_query_body(q, &len);

    chc_buf_reset(out);
    return chc_buf_add(out, body, len) < 0 ? oom(err) : 0;
}

/* Every one must succeed; outs (optional) receive the bodies. */
int nodes__multi(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                 const char *const *sqls, const char *sql, struct chc_buf *outs,
                 const enum side *sides, struct chc_err *err)
{
    struct ch_query **q = calloc(n ? n : 1, sizeof(*q));
    size_t i;
    int r;

    if (!q)
        return oom(err);
    r = run_all(w, reps, n, sqls, sql, sides, 0, q, err);
    for (i = 0; i < n && q[i]; i++) {
        if (r == 0 && ch_query_status(q[i]) < 0)
            r = chc_err_set(err, ch_query_status(q[i]), "%s (failed on 1 of %zu nodes)",
                            ch_query_error(q[i])->msg, n);
        if (r == 0 && outs)
            r = take_body(q[i], &outs[i], err);
        ch_query_free(q[i]);
    }
    free(q);
    return r;
}

int nodes__each(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                const char *sql, enum side side, long timeout_ms, struct chc_buf *outs,
                struct chc_err *errs, struct chc_err *err)
{
    struct ch_query **q = calloc(n ? n : 1, sizeof(*q));
    enum side *sides = calloc(n ? n : 1, sizeof(*sides));
    size_t i;
    int r;

    if (!q || !sides) {
        free(q);
        free(sides);
        return oom(err);
    }
    for (i = 0; i < n; i++)
        sides[i] = side;
    r = run_all(w, reps, n, NULL, sql, sides, timeout_ms, q, err);
    for (i = 0; i < n; i++) {
        chc_err_clear(&errs[i]);
        if (!q[i])
            chc_err_set(&errs[i], r < 0 ? r : CHC_ECANCELED, "not started");
        else if (ch_query_status(q[i]) < 0)
            chc_err_set(&errs[i], ch_query_status(q[i]), "%s", ch_query_error(q[i])->msg);
        else if (r == 0 && outs && take_body(q[i], &outs[i], err) < 0)
            r = -ENOMEM;
        ch_query_free(q[i]);
    }
    free(q);
    free(sides);
    return r;
}

int nodes__fanout(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                  const char *sql, struct chc_err *err)
{
    return nodes__multi(w, reps, n, NULL, sql, NULL, NULL, err);
}

/* How long a KILL QUERY ... SYNC may wait for what it kills. */
#define KILL_TIMEOUT_MS 30000

int nodes__kill(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                const char *sql, struct chc_err *err)
{
    struct chc_err *errs = calloc(n ? n : 1, sizeof(*errs));
    size_t i;
    int r = errs ? nodes__each(w, reps, n, sql, SIDE_PUSH, KILL_TIMEOUT_MS, NULL, errs, err)
                 : oom(err);

    for (i = 0; r == 0 && i < n; i++) {
        if (!errs[i].code)
            continue;
        /* A query stuck inside the server (seen after a ZooKeeper restart: a
         * replicated insert that never returns) cannot be killed, and a
         * KILL ... SYNC waits for it forever. Go on: rows it may still
         * write land in staging only, where the partition's staging check
         * finds them before anything reaches the destination. */
        if (errs[i].code == CHC_ECH_CONN && strstr(errs[i].msg, "timed out")) {
            chc_log_warn("%s:%d: a query of ours is still running %d s after KILL QUERY (%s); "
                         "going on: rows it may still write are caught by the staging check",
                         reps[i]->host, reps[i]->http_port, KILL_TIMEOUT_MS / 1000,
                         errs[i].msg);
            continue;
        }
        r = chc_err_set(err, errs[i].code, "%s", errs[i].msg);
    }
    free(errs);
    return r;
}

int nodes__drop_race(long code)
{
    return code == 60 || code == 1000 || code == 49;
}

int nodes__drops(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                 const char *const *sqls, const char *sql, struct chc_err *err)
{
    enum side *sides = calloc(n ? n : 1, sizeof(*sides));
    const char *code;
    unsigned tries;
    size_t i;
    int r;

    if (!sides)
        return oom(err);
    for (i = 0; i < n; i++)
        sides[i] = SIDE_DROP;
    r = nodes__multi(w, reps, n, sqls, sql, NULL, sides, err);
    code = r < 0 ? strstr(err->msg, "Code: ") : NULL;
    /* Workers drop staging data together (one finishing the table, another
     * releasing its last partitions), and ClickHouse 18.16 loses such races
     * with an error: DROP TABLE IF EXISTS answers "doesn't exist" (Code 60)
     * when the other's drop wins between its check and its lock, or "File
     * not found" (Code 1000) for a part a concurrent DROP PARTITION removed.
     * Drops are idempotent: again, and the table is gone. */
    for (tries = 0; code && tries < 3 && nodes__drop_race(ch_parse_exception_code(code)); tries++) {
        wk__sleep(w, 100u << tries);
        chc_err_clear(err);
        r = nodes__multi(w, reps, n, sqls, sql, NULL, sides, err);
        code = r < 0 ? strstr(err->msg, "Code: ") : NULL;
    }
    /* Still racing (the other drop waits for a lock): a transient failure,
     * which the caller's retries wait out, not a refusal. */
    if (code && nodes__drop_race(ch_parse_exception_code(code)) && r != CHC_ECH_EXCEPTION) {
        char msg[CHC_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        r = chc_err_set(err, CHC_ECH_EXCEPTION, "%s", msg);
    }
    if (code && ch_parse_exception_code(code) == 359)
        chc_err_prefix(err, "staging data is too big to drop under the server's "
                       "max_table_size_to_drop or max_partition_size_to_drop (a query may lift "
                       "them from ClickHouse 23.12 on): drop the table the server names by hand, "
                       "or raise the limit, and run chcopier again to finish");
    free(sides);
    return r;
}

int nodes__probe_versions(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                          struct chc_err *err)
{
    struct chc_buf *outs = calloc(n ? n : 1, sizeof(*outs));
    struct chc_err *errs = calloc(n ? n : 1, sizeof(*errs));
    size_t i;
    int r = outs && errs ? 0 : oom(err);

    for (i = 0; r == 0 && i < n; i++)
        chc_buf_init(&outs[i], 4096);
    if (r == 0)
        r = nodes__each(w, reps, n, SQL_PROBE, SIDE_PUSH, 10000, outs, errs, err);
    for (i = 0; r == 0 && i < n; i++) {
        struct chc_err e = CHC_ERR_INIT;
        unsigned v = 0;
        chc_buf_trim(&outs[i]);
        if (errs[i].code == 0 && dialect_parse_version(outs[i].buf, &v, &e) == 0 &&
            wk__version_set(w, reps[i], v) < 0)
            r = oom(err);
    }
    for (i = 0; outs && i < n; i++)
        chc_buf_release(&outs[i]);
    free(outs);
    free(errs);
    return r;
}

int nodes__rows(struct worker *w, const struct cfg_replica *rep, enum side side,
                const char *sql, struct ch_rows **ret, struct chc_err *err)
{
    struct chc_buf out = CHC_BUF_INIT;
    int r;

    *ret = NULL;
    r = nodes__query(w, rep, side, sql, &out, err);
    if (r == 0 && out.len)
        r = ch_tsv_parse(out.buf, out.len, ret, err);
    chc_buf_release(&out);
    return r;
}

/* Describe a table: name, type, default kind, default expression. Unlike
 * nodes__rows, never NULL: an empty answer is a table of no columns. */
int nodes__describe(struct worker *w, const struct cfg_replica *rep, enum side side,
                    const char *db, const char *table, struct ch_rows **ret,
                    struct chc_err *err)
{
    struct chc_buf sql = CHC_BUF_INIT;
    int r = sql_describe(db, table, &sql) < 0 ? oom(err) : 0;

    *ret = NULL;
    if (r == 0)
        r = nodes__rows(w, rep, side, sql.buf, ret, err);
    if (r == 0 && !*ret)
        r = ch_tsv_parse("", 0, ret, err);
    chc_buf_release(&sql);
    return r;
}

int nodes__of_cluster(const struct cfg_cluster *c, const struct cfg_replica ***ret, size_t *ret_n)
{
    const struct cfg_replica **v;
    size_t i, j, n = 0;

    for (i = 0; i < c->n_shards; i++)
        n += c->shards[i].n_replicas;
    v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    n = 0;
    for (i = 0; i < c->n_shards; i++)
        for (j = 0; j < c->shards[i].n_replicas; j++)
            v[n++] = &c->shards[i].replicas[j];
    *ret = v;
    *ret_n = n;
    return 0;
}

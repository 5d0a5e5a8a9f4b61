/* wkutil.c — small utilities shared by the worker's files: one ClickHouse
 * statement on one node, or many on many nodes at once (bounded in flight,
 * every one must succeed); ZooKeeper path formatting; a sleep that keeps the
 * loop running; test fault points; metrics labelled with the table. Owns no
 * state of its own and decides nothing: callers log and retry.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/config/task.h"
#include "chcopier/zk/zk.h"
#include "worker-internal.h"

#include "base/banned.h"

#define RESPONSE_MAX (64u << 20)

/* Metrics: `table` label, plus one more (key, value) if key is not NULL. */
void wk__metric(struct worker *w, const struct tstate *ts, const char *name, const char *key,
                const char *value, double v, int set)
{
    struct chc_buf l = CHC_BUF_INIT;

    if (!w->metrics)
        return;
    if ((ts && chc_metrics_label(&l, "table", ts->tb->name) < 0) ||
        (key && chc_metrics_label(&l, key, value) < 0)) {
        chc_buf_release(&l);
        return;
    }
    if (set)
        chc_metrics_set(w->metrics, name, l.len ? l.buf : NULL, v);
    else
        chc_metrics_add(w->metrics, name, l.len ? l.buf : NULL, v);
    chc_buf_release(&l);
}

static void sleeper_cb(uv_timer_t *t)
{
    (void)t;
}

/* Sleep while keeping transfers flowing. */
void wk__sleep(struct worker *w, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    uv_timer_start(&w->sleeper, sleeper_cb, ms, 0);
    while (now_ms() < end)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->sleeper);
}

void wk__fault_point(const struct worker *w, const char *name)
{
    const char *fp = w->o->fault_point;
    size_t n = strlen(name);

    if (!fp || strncmp(fp, name, n))
        return;
    if (!fp[n]) {
        chc_log_warn("fault point '%s' reached: exiting abruptly", name);
        _exit(99);
    }
    if (!strcmp(fp + n, ":stop")) {
        /* A zombie: frozen with its claims in hand until someone sends
         * SIGCONT (after its session expired, say), then it carries on. */
        chc_log_warn("fault point '%s' reached: stopping (SIGSTOP) until continued", name);
        raise(SIGSTOP);
        chc_log_warn("fault point '%s': continued", name);
    }
}

/* splitmix64's finaliser: a well-mixed 64-bit value from any input. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int wk__fault_draw(const struct worker *w, double p, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    uint64_t h;

    if (p <= 0)
        return 0;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    h = mix64(w->fault_seed ^ chc_hash64(CHC_HASH64_INIT, what, strlen(what)));
    return (double)(h >> 11) / (double)(1ULL << 53) < p;
}

void wk__note(struct worker *w, const char *fmt, ...)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT, note = CHC_BUF_INIT;
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = chc_buf_addvf(&note, fmt, ap);
    va_end(ap);
    if (r < 0 || !strcmp(note.buf, w->note.buf) || !w->zs || w->o->cmd != CHC_CMD_RUN)
        goto out;
    chc_buf_reset(&w->note);
    if (chc_buf_addstr(&w->note, note.buf) < 0 || worker__registration(w, &data) < 0 ||
        wk__zpath(&path, "%s/workers/%s", w->o->task_path, w->id) < 0)
        goto out;
    if (zk_set(w->zs, path.buf, data.buf, data.len, ZK_ANY_VERSION, NULL, NULL) < 0)
        chc_log_debug("cannot update this worker's note in ZooKeeper, ignoring");
out:
    chc_buf_release(&path);
    chc_buf_release(&data);
    chc_buf_release(&note);
}


void wk__params_init(struct ch_query_params *p, const struct cfg_replica *rep, const char *sql,
                     const struct cfg_task *t, int push)
{
    memset(p, 0, sizeof(*p));
    p->replica = rep;
    p->sql = sql;
    p->max_response = RESPONSE_MAX;
    p->settings[0] = &t->settings;
    p->settings[1] = push ? &t->settings_push : &t->settings_pull;
    p->settings[2] = NULL;
}

int wk__query(struct worker *w, const struct cfg_replica *rep, int push, const char *sql,
              struct chc_buf *out, struct chc_err *err)
{
    struct ch_query_params p;
    int r;

    wk__params_init(&p, rep, sql, w->task, push);
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
                   const char *const *sqls, const char *sql, const int *pushes, long timeout_ms,
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
            wk__params_init(&p, reps[i], sqls ? sqls[i] : sql, w->task, pushes ? pushes[i] : 1);
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
int wk__multi_query(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                    const char *const *sqls, const char *sql, struct chc_buf *outs,
                    const int *pushes, struct chc_err *err)
{
    struct ch_query **q = calloc(n ? n : 1, sizeof(*q));
    size_t i;
    int r;

    if (!q)
        return oom(err);
    r = run_all(w, reps, n, sqls, sql, pushes, 0, q, err);
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

int wk__query_each(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                   const char *sql, int push, long timeout_ms, struct chc_buf *outs,
                   struct chc_err *errs, struct chc_err *err)
{
    struct ch_query **q = calloc(n ? n : 1, sizeof(*q));
    int *pushes = calloc(n ? n : 1, sizeof(*pushes));
    size_t i;
    int r;

    if (!q || !pushes) {
        free(q);
        free(pushes);
        return oom(err);
    }
    for (i = 0; i < n; i++)
        pushes[i] = push;
    r = run_all(w, reps, n, NULL, sql, pushes, timeout_ms, q, err);
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
    free(pushes);
    return r;
}

int wk__fanout(struct worker *w, const struct cfg_replica *const *reps, size_t n, const char *sql,
               struct chc_err *err)
{
    return wk__multi_query(w, reps, n, NULL, sql, NULL, NULL, err);
}


int wk__zpath(struct chc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    chc_buf_reset(b);
    va_start(ap, fmt);
    r = chc_buf_addvf(b, fmt, ap);
    va_end(ap);
    return r;
}

/* drops.c — drops of staging data through a table's drop gate (drops.h):
 * the ones a caller waits for, and the background queue of releases that
 * nobody waits for (owned by the worker through w->bg).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/ch/ch.h"
#include "chcopier/obs/log.h"
#include "chcopier/state/claims.h"
#include "chcopier/zk/zk.h"
#include "drops.h"
#include "nodes.h"
#include "wk.h"

#include "base/banned.h"

#define BG_INFLIGHT 8
#define GATE_RETRY_MS 100u
#define GATE_YIELD_MS 20u  /* after a round, before taking the gate again */
#define GATE_GIVE_UP 300u  /* failed tries (not "held by another") */

struct bg_item {
    const struct cfg_replica *rep;
    char *sql;  /* NULL once sent */
    char *gate; /* NULL: none */
};

struct nodes_bg {
    struct worker *w;
    struct bg_item *queue;
    size_t head, n, cap;
    struct {
        struct ch_query *q;
        const struct cfg_replica *rep;
    } run[BG_INFLIGHT];
    size_t n_run;
    const struct cfg_replica *cur; /* the node this round's drops go to */
    char *held;                    /* the gate we hold, NULL if none */
    unsigned hold;                 /* > 0: a drops__run is on, start nothing */
    unsigned failures;             /* gate tries that failed in a row */
    uv_timer_t retry;
    int closed;
};

static void bg_pump(struct nodes_bg *bg);

static int same_gate(const char *a, const char *b)
{
    return a && b ? !strcmp(a, b) : a == b;
}

static void gate_release(struct worker *w, char **held)
{
    struct st_claimer c = wk__claimer(w);

    st_release(&c, held);
}

/* Take the gate, waiting while another worker holds it. */
static int gate_wait(struct worker *w, const char *gate, struct chc_err *err)
{
    uint64_t t0 = now_ms();
    int logged = 0, r;

    for (;;) {
        struct st_claimer c = wk__claimer(w);
        chc_err_clear(err);
        r = st_claim(&c, gate, err);
        if (r != CHC_EZK_NODEEXISTS && r != CHC_EZK_CONNLOSS)
            return r;
        if (!logged && now_ms() - t0 > 10000) {
            chc_log_info("waiting for '%s': another worker is dropping staging data", gate);
            logged = 1;
        }
        wk__sleep(w, GATE_RETRY_MS);
    }
}

static void retry_cb(uv_timer_t *t)
{
    bg_pump(t->data);
}

static void closed_cb(uv_handle_t *h)
{
    ((struct nodes_bg *)h->data)->closed = 1;
}

/* Forget sent items at the head; an empty queue starts over. */
static void bg_compact(struct nodes_bg *bg)
{
    while (bg->head < bg->n && !bg->queue[bg->head].sql)
        bg->head++;
    if (bg->head == bg->n)
        bg->head = bg->n = 0;
}

/* Forget every drop not sent yet. */
static void bg_clear(struct nodes_bg *bg)
{
    size_t i;

    for (i = bg->head; i < bg->n; i++) {
        free(bg->queue[i].sql);
        free(bg->queue[i].gate);
    }
    bg->head = bg->n = 0;
}

static void bg_abandon(struct nodes_bg *bg, const char *why)
{
    chc_log_warn("cannot drop the staging data of moved partitions (%s); it goes with the "
                 "staging tables at the end", why);
    bg_clear(bg);
}

/* Between rounds: let go of the gate (others wait for it), then take it
 * for the next node's drops; 1 when a round may start. */
static int bg_round(struct nodes_bg *bg)
{
    struct chc_err e = CHC_ERR_INIT;
    struct st_claimer c = wk__claimer(bg->w);
    const struct bg_item *first;
    int r;

    if (bg->held) {
        gate_release(bg->w, &bg->held);
        if (bg->head < bg->n)
            uv_timer_start(&bg->retry, retry_cb, GATE_YIELD_MS, 0);
        return 0;
    }
    if (bg->head == bg->n)
        return 0;
    first = &bg->queue[bg->head];
    if (first->gate) {
        char *gate = chc_strdup(first->gate);
        if (!gate) {
            bg_abandon(bg, "out of memory");
            return 0;
        }
        r = st_claim(&c, gate, &e);
        if (r == 0) {
            bg->failures = 0;
            wk__fault_point(bg->w, "with_drop_gate");
            if (!zk_session_expired(bg->w->zs)) /* else frozen since: not ours any more */
                bg->held = gate;
        } else if (r != CHC_EZK_NODEEXISTS && ++bg->failures >= GATE_GIVE_UP) {
            free(gate);
            bg_abandon(bg, e.msg);
            return 0;
        }
        if (!bg->held) {
            free(gate);
            uv_timer_start(&bg->retry, retry_cb, GATE_RETRY_MS, 0);
            return 0;
        }
    }
    bg->cur = first->rep;
    return 1;
}

static void bg_cb(struct ch_query *q, void *data)
{
    struct nodes_bg *bg = data;
    size_t i;

    for (i = 0; i < bg->n_run && bg->run[i].q != q; i++)
        ;
    if (i == bg->n_run)
        CHC_BUG("a dropped statement not in the running list");
    /* A race with another drop of the same data: gone anyway. */
    if (ch_query_status(q) < 0 && ch_query_status(q) != CHC_ECANCELED &&
        !nodes__drop_race(ch_query_exception_code(q)))
        chc_log_warn("%s:%d: cannot drop the staging data of a moved partition (%s); it goes "
                     "with the staging tables at the end",
                     bg->run[i].rep->host, bg->run[i].rep->http_port, ch_query_error(q)->msg);
    bg->run[i] = bg->run[--bg->n_run];
    ch_query_free(q);
    bg_pump(bg);
}

/* A round: the queued drops for one node under the gate, at most
 * BG_INFLIGHT at once; the next node's once they all ended. Drops queued
 * without a gate join any round. */
static void bg_pump(struct nodes_bg *bg)
{
    struct chc_err e = CHC_ERR_INIT;
    struct ch_query_params p;
    size_t i;

    if (bg->hold)
        return;
    bg_compact(bg);
    if (bg->n_run == 0 && !bg_round(bg))
        return;
    for (i = bg->head; i < bg->n && bg->n_run < BG_INFLIGHT; i++) {
        struct bg_item *it = &bg->queue[i];
        /* Drops that need no gate go whenever there is room. */
        if (!it->sql || (it->gate && (it->rep != bg->cur || !same_gate(it->gate, bg->held))))
            continue;
        nodes__side_params(bg->w, &p, it->rep, it->sql, SIDE_DROP);
        chc_log_trace("%s:%d: %s", it->rep->host, it->rep->http_port, it->sql);
        bg->run[bg->n_run].rep = it->rep;
        if (ch_query_start(bg->w->ch, &p, bg_cb, bg, &bg->run[bg->n_run].q, &e) == 0)
            bg->n_run++;
        else
            chc_log_warn("%s:%d: cannot send '%s': %s", it->rep->host, it->rep->http_port,
                         it->sql, e.msg);
        free(it->sql);
        free(it->gate);
        it->sql = it->gate = NULL;
    }
    bg_compact(bg);
    if (bg->n_run == 0 && bg->head < bg->n) /* nothing could start: next round */
        uv_timer_start(&bg->retry, retry_cb, 0, 0);
}

static struct nodes_bg *bg_get(struct worker *w)
{
    struct nodes_bg *bg = w->bg;

    if (bg)
        return bg;
    bg = calloc(1, sizeof(*bg));
    if (!bg)
        return NULL;
    bg->w = w;
    uv_timer_init(&w->loop, &bg->retry);
    bg->retry.data = bg;
    w->bg = bg;
    return bg;
}

int drops__queue(struct worker *w, const char *gate, const struct cfg_replica *const *reps,
                 size_t n, const char *const *sqls, struct chc_err *err)
{
    struct nodes_bg *bg = bg_get(w);
    size_t i;

    if (!bg)
        return oom(err);
    if (bg->n + n > bg->cap) {
        size_t cap = (bg->n + n) * 2;
        struct bg_item *q = realloc(bg->queue, cap * sizeof(*q));
        if (!q)
            return oom(err);
        bg->queue = q;
        bg->cap = cap;
    }
    for (i = 0; i < n; i++) {
        struct bg_item *it = &bg->queue[bg->n];
        it->rep = reps[i];
        it->sql = chc_strdup(sqls[i]);
        it->gate = gate ? chc_strdup(gate) : NULL;
        if (!it->sql || (gate && !it->gate)) {
            free(it->sql);
            free(it->gate);
            return oom(err);
        }
        bg->n++;
    }
    bg_pump(bg);
    return 0;
}

/* The drops for one node after another, in the order of reps. */
static int by_node(struct worker *w, const struct cfg_replica *const *reps, size_t n,
                   const char *const *sqls, const char *sql, struct chc_err *err)
{
    const struct cfg_replica **sub = calloc(n ? n : 1, sizeof(*sub));
    const char **subsql = calloc(n ? n : 1, sizeof(*subsql));
    unsigned char *done = calloc(n ? n : 1, 1);
    size_t i, j, m;
    int r = sub && subsql && done ? 0 : oom(err);

    for (i = 0; r == 0 && i < n; i++) {
        if (done[i])
            continue;
        for (j = i, m = 0; j < n; j++)
            if (reps[j] == reps[i]) {
                sub[m] = reps[j];
                subsql[m++] = sqls ? sqls[j] : sql;
                done[j] = 1;
            }
        r = nodes__drops(w, sub, m, subsql, NULL, err);
    }
    free(sub);
    free(subsql);
    free(done);
    return r;
}

int drops__run(struct worker *w, const char *gate, const struct cfg_replica *const *reps,
               size_t n, const char *const *sqls, const char *sql, struct chc_err *err)
{
    struct nodes_bg *bg = w->bg;
    char *held;
    int r;

    if (!gate)
        return nodes__drops(w, reps, n, sqls, sql, err);
    held = chc_strdup(gate);
    if (!held)
        return oom(err);
    if (bg) { /* our own queued drops wait, the running ones end first */
        bg->hold++;
        while (bg->n_run > 0)
            uv_run(&w->loop, UV_RUN_ONCE);
        if (bg->held)
            gate_release(w, &bg->held);
    }
    r = gate_wait(w, gate, err);
    if (r == 0)
        wk__fault_point(w, "with_drop_gate");
    if (r == 0 && zk_session_expired(w->zs))
        r = chc_err_set(err, CHC_EZK_EXPIRED, "ZooKeeper session lost while holding '%s'", gate);
    if (r == 0) {
        r = by_node(w, reps, n, sqls, sql, err);
        gate_release(w, &held);
    } else if (r != -ENOMEM) {
        chc_err_prefix(err, "taking '%s' to drop staging data", gate);
    }
    free(held);
    if (bg) {
        bg->hold--;
        bg_pump(bg);
    }
    return r;
}

void drops__wait(struct worker *w, int cancel)
{
    struct nodes_bg *bg = w->bg;
    size_t i;

    if (!bg)
        return;
    if (cancel) {
        bg_clear(bg);
        for (i = 0; i < bg->n_run; i++)
            ch_query_cancel(bg->run[i].q);
    }
    while (bg->n_run > 0 || bg->head < bg->n)
        uv_run(&w->loop, UV_RUN_ONCE);
    if (bg->held)
        gate_release(w, &bg->held);
    uv_timer_stop(&bg->retry);
    uv_close((uv_handle_t *)&bg->retry, closed_cb);
    while (!bg->closed)
        uv_run(&w->loop, UV_RUN_ONCE);
    free(bg->queue);
    free(bg);
    w->bg = NULL;
}

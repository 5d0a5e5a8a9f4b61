/* pin.c — the staging replica of each shard of a Replicated destination,
 * recorded once per table in <t>/staging ("host:port" per shard, one a
 * line) by the first worker to prepare it (pin.h).
 */
#include <stdio.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/state/layout.h"
#include "chcopier/zk/zk.h"
#include "pin.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

/* "host:port\n" of every shard's staging replica, as preflight chose them. */
static int pin_text(const struct tstate *ts, struct chc_buf *out)
{
    size_t t;
    int r = 0;

    for (t = 0; r == 0 && t < ts->n_targets; t++)
        r = chc_buf_addf(out, "%s:%d\n", ts->targets[t].rep->host, ts->targets[t].rep->port);
    return r;
}

/* Shard i's replica named by line `line` (len bytes) of the record. */
static const struct cfg_replica *named(const struct cfg_shard *sh, const char *line, size_t len)
{
    char name[512];
    size_t j;

    for (j = 0; j < sh->n_replicas; j++) {
        int n = snprintf(name, sizeof(name), "%s:%d", sh->replicas[j].host, sh->replicas[j].port);
        if (n > 0 && (size_t)n == len && !memcmp(name, line, len))
            return &sh->replicas[j];
    }
    return NULL;
}

/* ts->targets from the record; the errors of pin__staging. */
static int apply(struct tstate *ts, const struct chc_buf *rec, struct chc_err *err)
{
    const struct cfg_cluster *c = ts->tb->push;
    const char *p = rec->buf, *end = rec->buf + rec->len;
    size_t t;

    if (ts->n_targets != c->n_shards)
        return chc_err_set(err, CHC_ESTATE, "table '%s': %zu staging nodes for %zu shards",
                           ts->tb->name, ts->n_targets, c->n_shards);
    for (t = 0; t < ts->n_targets; t++) {
        const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        const struct cfg_replica *rep = nl ? named(&c->shards[t], p, (size_t)(nl - p)) : NULL;
        if (!rep)
            return chc_err_set(err, CHC_ESTATE, "table '%s': the pinned staging replicas "
                               "(ZooKeeper <table>/staging) do not name a replica of "
                               "destination shard %zu of cluster '%s'",
                               ts->tb->name, t + 1, c->name);
        if (!tstate__alive(ts, rep))
            return chc_err_set(err, CHC_ECH_CONN, "table '%s': destination shard %zu stages "
                               "on replica %s:%d (pinned for this table), which does not "
                               "answer; waiting for it",
                               ts->tb->name, t + 1, rep->host, rep->http_port);
        if (rep != ts->targets[t].rep)
            chc_log_info("table '%s': destination shard %zu stages on %s:%d (pinned for this "
                         "table)", ts->tb->name, t + 1, rep->host, rep->http_port);
        ts->targets[t].rep = rep;
        p = nl + 1;
    }
    return 0;
}

int pin__staging(struct worker *w, struct tstate *ts, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, mine = CHC_BUF_INIT, rec = CHC_BUF_INIT;
    int r;

    if (!ts->tb->engine->replicated)
        return 0;
    r = st_path_tnode(ts->zroot, ST_STAGING, NULL, &path) < 0 || pin_text(ts, &mine) < 0
            ? oom(err)
            : 0;
    if (r == 0)
        r = zk_get(w->zs, path.buf, &rec, NULL, err);
    if (r == CHC_EZK_NONODE) {
        r = zk_create(w->zs, path.buf, mine.buf, mine.len, ZK_PERSISTENT, NULL, err);
        if (r == 0)
            chc_log_info("table '%s': staging replicas pinned: %.*s", ts->tb->name,
                         (int)(mine.len ? mine.len - 1 : 0), mine.buf);
        if (r == CHC_EZK_NODEEXISTS) /* another worker pinned first */
            r = zk_get(w->zs, path.buf, &rec, NULL, err);
        else if (r == 0)
            r = chc_buf_add(&rec, mine.buf, mine.len) < 0 ? oom(err) : 0;
    }
    if (r == 0)
        r = apply(ts, &rec, err);
    chc_buf_release(&path);
    chc_buf_release(&mine);
    chc_buf_release(&rec);
    return r;
}

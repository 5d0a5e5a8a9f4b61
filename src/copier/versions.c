/* versions.c — what the nodes' versions decide for a table (versions.h):
 * the line that names them, the data path where remote() cannot work
 * between two versions, and task settings a node knows under another name.
 * The decisions themselves are sql/dialect.h's; this file applies them to
 * the nodes the preflight probed.
 */
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/sql/dialect.h"
#include "tstate.h"
#include "versions.h"

#include "base/banned.h"

/* rep's version as the log names it. */
static const char *version_name(const struct tstate *ts, const struct cfg_replica *rep)
{
    const struct node *n = tstate__node(ts, rep);

    return n ? n->version : "unknown";
}

/* "18.16.1 on h1:8123, h2:8123; 26.7.2.1 on h3:8123": every live node's
 * version, grouped. */
int versions__line(const struct tstate *ts, struct chc_buf *out)
{
    size_t i, j, n;
    int r = 0;

    for (i = 0; r == 0 && i < ts->n_nodes; i++) {
        const struct node *a = &ts->nodes[i];
        for (j = 0; j < i && !(ts->nodes[j].alive && !strcmp(ts->nodes[j].version, a->version)); j++)
            ;
        if (!a->alive || j < i)
            continue; /* dead, or its version already listed */
        r = chc_buf_addf(out, "%s%s on ", out->len ? "; " : "", a->version);
        for (j = i, n = 0; r == 0 && j < ts->n_nodes; j++)
            if (ts->nodes[j].alive && !strcmp(ts->nodes[j].version, a->version))
                r = chc_buf_addf(out, "%s%s:%d", n++ ? ", " : "", ts->nodes[j].rep->host,
                                 ts->nodes[j].rep->http_port);
    }
    return r;
}

/* The pull path runs INSERT ... SELECT FROM remote() on each staging node;
 * where a (staging node, source replica) pair cannot (sql/dialect.h), the
 * table takes the pipe path, which talks to each over HTTP. */
void versions__choose_path(const struct tstate *ts, int *pipe)
{
    char why[240];
    size_t t, s;

    for (t = 0; !*pipe && t < ts->n_targets; t++)
        for (s = 0; !*pipe && s < ts->tb->pull->n_shards; s++) {
            const struct cfg_replica *d = ts->targets[t].rep, *src = ts->src_rep[s];
            if (dialect_remote_ok(tstate__version(ts, d), tstate__version(ts, src), why,
                                  sizeof(why)))
                continue;
            chc_log_warn("table '%s': %s:%d (%s) cannot read %s:%d (%s) through remote(): %s; "
                         "copying through this worker (data path pipe)",
                         ts->tb->name, d->host, d->http_port, version_name(ts, d),
                         src->host, src->http_port, version_name(ts, src), why);
            *pipe = 1;
        }
}

/* Is rep a node of cluster c? */
static int in_cluster(const struct cfg_cluster *c, const struct cfg_replica *rep)
{
    size_t s, j;

    for (s = 0; s < c->n_shards; s++)
        for (j = 0; j < c->shards[s].n_replicas; j++)
            if (&c->shards[s].replicas[j] == rep)
                return 1;
    return 0;
}

/* A setting of set (the task's element `what`) with a name node does not
 * know: CHC_EPREFLIGHT. */
static int check_set(const struct tstate *ts, const struct node *nd, const struct cfg_settings *set,
                     const char *what, struct chc_err *err)
{
    size_t i;

    for (i = 0; i < set->n; i++) {
        const char *old = dialect_known_name(nd->ver, set->items[i].name);
        if (old)
            return chc_err_set(err, CHC_EPREFLIGHT,
                               "table '%s': <%s> %s is unknown to ClickHouse %s on %s:%d; write "
                               "%s, which later versions take as its alias",
                               ts->tb->name, what, set->items[i].name, nd->version, nd->rep->host,
                               nd->rep->http_port, old);
    }
    return 0;
}

int versions__check_settings(const struct tstate *ts, const struct cfg_task *t,
                             struct chc_err *err)
{
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < ts->n_nodes; i++) {
        const struct node *nd = &ts->nodes[i];
        if (!nd->alive)
            continue;
        r = check_set(ts, nd, &t->settings, "settings", err);
        if (r == 0 && in_cluster(ts->tb->push, nd->rep))
            r = check_set(ts, nd, &t->settings_push, "settings_push", err);
        if (r == 0 && in_cluster(ts->tb->pull, nd->rep))
            r = check_set(ts, nd, &t->settings_pull, "settings_pull", err);
    }
    return r;
}

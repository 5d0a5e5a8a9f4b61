/* claims.c — ephemeral claims and max_workers slots in ZooKeeper
 * (state/claims.h): taking, recognising, taking over from a dead local
 * worker, releasing. Owns no state; the coordinator holds the paths. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chcopier/base/buf.h"
#include "chcopier/obs/log.h"
#include "chcopier/state/claims.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/layout.h"
#include "chcopier/zk/txn.h"
#include "chcopier/zk/zk.h"

#include "base/banned.h"

/* 1 if path exists and our session owns it (st, optional, gets its stat),
 * 0 if not, < 0 on error. */
static int owned(const struct st_claimer *c, const char *path, struct zk_stat *st,
                 struct chc_err *err)
{
    struct zk_stat s;
    int r = zk_exists(c->zs, path, st ? st : &s, err);

    if (r == CHC_EZK_NONODE)
        return 0;
    if (r < 0)
        return r;
    return (st ? st : &s)->ephemeral_owner == zk_session_id(c->zs);
}

/* See claims.h, 2. */
static int holder_dead(const struct st_claimer *c, const char *id, const char *data)
{
    const char *hash = strrchr(id, '#'), *us;
    char hid[512], key[128];
    long pid;

    st_claim_decode(data, hid, sizeof(hid), key, sizeof(key));
    if (!hash || strcmp(key, c->hostkey))
        return 0;
    if ((size_t)(hash - id) != strlen(c->host) || strncmp(id, c->host, (size_t)(hash - id)))
        return 0;
    us = strrchr(hash, '_');
    if (!us)
        return 0;
    pid = strtol(us + 1, NULL, 10);
    if (pid <= 0 || pid == (long)getpid())
        return 0;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Take path over from its dead local holder; CHC_EZK_NODEEXISTS if not. */
static int take_over(const struct st_claimer *c, const char *path, struct chc_err *err)
{
    struct chc_buf holder = CHC_BUF_INIT, again = CHC_BUF_INIT, tk = CHC_BUF_INIT;
    struct zk_stat st, st2;
    char id[512], key[128];
    int r = CHC_EZK_NODEEXISTS;

    if (zk_get(c->zs, path, &holder, &st, err) < 0)
        goto out;
    st_claim_decode(holder.buf, id, sizeof(id), key, sizeof(key));
    if (!holder_dead(c, id, holder.buf))
        goto out;
    if (st_path_takeover(path, &tk) < 0 ||
        zk_create(c->zs, tk.buf, c->data, strlen(c->data), ZK_EPHEMERAL, NULL, NULL) < 0)
        goto out; /* someone else is taking it over */
    if (zk_get(c->zs, path, &again, &st2, err) == 0 && !strcmp(again.buf, holder.buf) &&
        st2.czxid == st.czxid && holder_dead(c, id, again.buf) &&
        zk_delete(c->zs, path, st2.version, err) == 0) {
        chc_log_warn("'%s' was held by %s, a worker on this host that is gone: taking it over",
                     path, id);
        r = zk_create(c->zs, path, c->data, strlen(c->data), ZK_EPHEMERAL, NULL, err);
    }
    if (zk_delete(c->zs, tk.buf, ZK_ANY_VERSION, NULL) < 0)
        chc_log_debug("cannot remove '%s'", tk.buf);
out:
    chc_buf_release(&holder);
    chc_buf_release(&again);
    chc_buf_release(&tk);
    return r;
}

int st_claim(const struct st_claimer *c, const char *path, struct chc_err *err)
{
    int r = zk_create(c->zs, path, c->data, strlen(c->data), ZK_EPHEMERAL, NULL, err);

    if (r != CHC_EZK_NODEEXISTS && r != CHC_EZK_CONNLOSS)
        return r;
    if (owned(c, path, NULL, NULL) == 1) {
        chc_log_debug("'%s' is already ours (a reply was lost)", path);
        return 0;
    }
    if (r == CHC_EZK_CONNLOSS)
        return r;
    return take_over(c, path, err);
}

void st_release(const struct st_claimer *c, char **path)
{
    struct chc_err err = CHC_ERR_INIT;
    struct zk_stat st;
    int r, tries = 0;

    if (!*path)
        return;
    /* A release lost to a connection loss would leave the node owned by
     * our still-live session, and every worker would wait on it: retry
     * until ZooKeeper answers (or the session is gone, which frees it). */
    for (;;) {
        r = owned(c, *path, &st, &err);
        if (r == 1)
            r = zk_delete(c->zs, *path, st.version, &err);
        if (r != CHC_EZK_CONNLOSS || zk_session_expired(c->zs) || ++tries >= 300)
            break;
        c->pause(c->pause_arg, 100);
    }
    if (r < 0 && r != CHC_EZK_NONODE)
        chc_log_debug("cannot release '%s': %s", *path, err.msg);
    free(*path);
    *path = NULL;
}

int st_slot_take(const struct st_claimer *c, const char *task_path, unsigned max_workers,
                 unsigned long seq, char **ret_path, struct chc_err *err)
{
    struct chc_buf active = CHC_BUF_INIT, child = CHC_BUF_INIT;
    struct zk_stat st;
    struct zk_txn *t = NULL;
    int r;

    if (st_path_task(task_path, ST_ACTIVE, NULL, &active) < 0)
        goto oom;
    r = zk_exists(c->zs, active.buf, &st, err);
    if (r == 0 && (unsigned)st.num_children >= max_workers) {
        st_reap_dead_local(c, task_path);
        r = zk_exists(c->zs, active.buf, &st, err);
    }
    if (r == 0 && (unsigned)st.num_children >= max_workers)
        r = CHC_EBUSY;
    if (r < 0)
        goto out;
    if (st_path_slot(task_path, c->id, seq, &child) < 0 || !(t = zk_txn_new()) ||
        zk_txn_set(t, active.buf, "", 0, st.version) < 0 ||
        zk_txn_create(t, child.buf, c->data, strlen(c->data), ZK_EPHEMERAL) < 0)
        goto oom;
    r = zk_txn_commit(c->zs, t, NULL, err);
    if (r == CHC_EZK_CONNLOSS && owned(c, child.buf, NULL, NULL) == 1)
        r = 0; /* the reply was lost, the slot is ours */
    if (r == CHC_EZK_BADVERSION)
        r = CHC_EBUSY;
    if (r == 0)
        *ret_path = chc_buf_take(&child, NULL);
    goto out;
oom:
    r = chc_err_set(err, -ENOMEM, "out of memory");
out:
    zk_txn_free(t);
    chc_buf_release(&active);
    chc_buf_release(&child);
    return r;
}

/* Reap one of <task>/active or <task>/workers. */
static void reap_dir(const struct st_claimer *c, const char *dir, int slots)
{
    struct chc_buf p = CHC_BUF_INIT, data = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    struct zk_stat st;
    char **kids = NULL;
    size_t i, n = 0;

    if (zk_children(c->zs, dir, &kids, &n, &err) < 0)
        return;
    for (i = 0; i < n; i++) {
        /* active/<id>#<n>: the id is before the last '#' */
        char id[512], *hash = slots ? strrchr(kids[i], '#') : NULL;
        snprintf(id, sizeof(id), "%.*s",
                 (int)(hash ? (size_t)(hash - kids[i]) : strlen(kids[i])), kids[i]);
        if (st_path_child(dir, kids[i], &p) < 0 ||
            zk_get(c->zs, p.buf, &data, &st, &err) < 0 || !holder_dead(c, id, data.buf))
            continue;
        if (zk_delete(c->zs, p.buf, st.version, &err) == 0)
            chc_log_info("removed '%s' of a worker on this host that is gone", p.buf);
    }
    chc_strv_free(kids, n);
    chc_buf_release(&p);
    chc_buf_release(&data);
}

void st_reap_dead_local(const struct st_claimer *c, const char *task_path)
{
    struct chc_buf dir = CHC_BUF_INIT;

    if (st_path_task(task_path, ST_ACTIVE, NULL, &dir) == 0)
        reap_dir(c, dir.buf, 1);
    if (st_path_task(task_path, ST_WORKERS, NULL, &dir) == 0)
        reap_dir(c, dir.buf, 0);
    chc_buf_release(&dir);
}

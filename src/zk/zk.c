/* zk.c — the ZooKeeper session and its single-node calls.
 *
 * With call.c (a call waited for with a deadline) and txn.c (multi-op
 * transactions), the only files that include zookeeper.h. Owns the zhandle
 * and the session-loss policy:
 *   1. the library thread's watcher records the state (atomics) and wakes the
 *      loop through uv_async_send() if the caller gave a uv_async_t;
 *   2. CONNECTING after a disconnect is transient: calls fail with
 *      CHC_EZK_CONNLOSS and callers retry;
 *   3. EXPIRED is final for this handle: every ephemeral node (worker
 *      registration, piece claims, mover locks) is gone; callers must stop the
 *      transfers they hold and open a new session;
 *   4. a call that gets no answer within the call deadline (zk.h) abandons
 *      the session: libzookeeper's own synchronous calls can wait forever for
 *      a completion that never comes (ZOOKEEPER-2802), so every call is
 *      issued on the asynchronous API and waited for with a deadline
 *      (call.h). The late call fails with CHC_EZK_CONNLOSS, the session then
 *      counts as expired (3.) and every later call on it fails with
 *      CHC_EZK_EXPIRED.
 * zk_session_free() drops the library's references of the completions a
 * closed handle never delivers. ZooKeeper's own log lines are routed into
 * chc_log at debug level. Paths it creates are chosen by callers (see
 * docs/zookeeper.md).
 *
 * Access control: with an <identity> (user:password) the session adds that
 * digest auth and waits for it to be accepted before zk_session_new()
 * returns; every node created afterwards (zk_create, zk_create_parents,
 * the creates of a multi) gets ZOO_CREATOR_ALL_ACL: only that identity can
 * read, write, delete or list it. zk_create_ancestors() is the one
 * exception (see zk.h). Without an identity nodes are world-open
 * (ZOO_OPEN_ACL_UNSAFE). A call refused for lack of rights fails with
 * CHC_EZK_NOAUTH, naming the path and the missing <identity>.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>
#include <zookeeper/zookeeper.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "chcopier/config/zkconf.h"
#include "chcopier/obs/log.h"
#include "chcopier/zk/zk.h"
#include "zk/call.h"
#include "zk/zk-internal.h"

#include "base/banned.h"

/* max(2 x session timeout, 10 s): the library itself drops a connection
 * that is silent for 2/3 of the negotiated timeout and fails its calls, so
 * a call still unanswered at twice the timeout lost its completion. */
static int call_timeout(int session_timeout_ms)
{
    const char *env = getenv("CHC_ZK_CALL_TIMEOUT_MS");
    long long v;
    char *end;

    if (env && *env) {
        errno = 0;
        v = strtoll(env, &end, 10);
        if (errno == 0 && *end == '\0' && v >= 100 && v <= 3600000)
            return (int)v;
        chc_log_debug("zookeeper: ignoring CHC_ZK_CALL_TIMEOUT_MS='%s': not 100..3600000", env);
    }
    v = 2LL * session_timeout_ms;
    return v > 10000 ? (int)v : 10000;
}

static void zk_log_cb(const char *message)
{
    chc_log_debug("zookeeper: %s", message);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zk_session *zs = ctx;

    (void)zh;
    (void)path;
    if (!zs || type != ZOO_SESSION_EVENT)
        return;
    pthread_mutex_lock(&zs->lock);
    atomic_store(&zs->state, state);
    if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE)
        atomic_store(&zs->expired, 1);
    pthread_cond_broadcast(&zs->cond);
    pthread_mutex_unlock(&zs->lock);
    if (zs->wake)
        uv_async_send(zs->wake);
}

static int add_auth(struct zk_session *zs, const char *identity, struct chc_err *err);

int zk_session_new(const struct cfg_zk *cfg, int timeout_ms, void *wake,
                   struct zk_session **ret, struct chc_err *err)
{
    struct chc_buf hosts = CHC_BUF_INIT;
    struct zk_session *zs;
    struct timespec deadline;
    pthread_condattr_t ca;
    int r;

    zs = calloc(1, sizeof(*zs));
    if (!zs)
        return chc_err_set(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&zs->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&zs->cond, &ca);
    pthread_condattr_destroy(&ca);
    zs->wake = wake;
    zs->acl = &ZOO_OPEN_ACL_UNSAFE;
    zs->call_timeout_ms = call_timeout(cfg->session_timeout_ms);
    r = chc_buf_addf(&hosts, "%s%s", cfg->hosts, cfg->root ? cfg->root : "");
    if (r < 0)
        goto oom;
    zs->hosts = chc_strdup(cfg->hosts);
    if (!zs->hosts)
        goto oom;
    zoo_set_debug_level(chc_log__level >= CHC_LOG_TRACE ? ZOO_LOG_LEVEL_DEBUG
                                                        : ZOO_LOG_LEVEL_WARN);
    zs->zh = zookeeper_init2(hosts.buf, watcher, cfg->session_timeout_ms, NULL, zs, 0,
                             zk_log_cb);
    if (!zs->zh) {
        r = chc_err_set(err, CHC_EZK, "cannot start a ZooKeeper client for '%s': %s",
                        cfg->hosts, strerror(errno));
        goto fail;
    }
    zk__deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&zs->lock);
    while (atomic_load(&zs->state) != ZOO_CONNECTED_STATE && !atomic_load(&zs->expired)) {
        if (pthread_cond_timedwait(&zs->cond, &zs->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&zs->lock);
    if (atomic_load(&zs->state) != ZOO_CONNECTED_STATE) {
        r = chc_err_set(err, CHC_EZK_CONNLOSS,
                        "cannot connect to ZooKeeper at %s within %d ms; check that it runs "
                        "and the hosts in --config",
                        cfg->hosts, timeout_ms);
        goto fail;
    }
    if (cfg->identity) {
        r = add_auth(zs, cfg->identity, err);
        if (r < 0)
            goto fail;
    }
    chc_buf_release(&hosts);
    *ret = zs;
    return 0;
oom:
    r = chc_err_set(err, -ENOMEM, "out of memory");
fail:
    chc_buf_release(&hosts);
    zk_session_free(zs);
    return r;
}

struct zk_session *zk_session_free(struct zk_session *zs)
{
    if (!zs)
        return NULL;
    /* Joins the library's threads: no completion runs after it returns. */
    if (zs->zh)
        zookeeper_close(zs->zh);
    /* Completions the closed handle never delivered: drop their references
     * (the waiters' went when they gave up). */
    zk__calls_drop_pending(zs);
    pthread_mutex_destroy(&zs->lock);
    pthread_cond_destroy(&zs->cond);
    free(zs->hosts);
    free(zs);
    return NULL;
}

int zk_session_expired(const struct zk_session *zs)
{
    return atomic_load(&((struct zk_session *)zs)->expired);
}

int zk_session_connected(const struct zk_session *zs)
{
    struct zk_session *s = (struct zk_session *)zs;

    return !atomic_load(&s->abandoned) && atomic_load(&s->state) == ZOO_CONNECTED_STATE;
}

int64_t zk_session_id(const struct zk_session *zs)
{
    const clientid_t *id = zoo_client_id(zs->zh);

    return id ? id->client_id : 0;
}

const char *zk_session_hosts(const struct zk_session *zs)
{
    return zs->hosts;
}

int zk__mode(enum zk_mode m)
{
    switch (m) {
    case ZK_PERSISTENT: return ZOO_PERSISTENT;
    case ZK_EPHEMERAL: return ZOO_EPHEMERAL;
    case ZK_PERSISTENT_SEQUENTIAL: return ZOO_PERSISTENT_SEQUENTIAL;
    case ZK_EPHEMERAL_SEQUENTIAL: return ZOO_EPHEMERAL_SEQUENTIAL;
    }
    CHC_BUG("bad zk mode %d", (int)m);
}

static void copy_stat(struct zk_stat *out, const struct Stat *st)
{
    if (!out)
        return;
    out->czxid = st->czxid;
    out->mzxid = st->mzxid;
    out->pzxid = st->pzxid;
    out->ctime = st->ctime;
    out->mtime = st->mtime;
    out->version = st->version;
    out->cversion = st->cversion;
    out->num_children = st->numChildren;
    out->ephemeral_owner = st->ephemeralOwner;
}

/* ------------------------------------------------------------------------ */
/* calls on nodes                                                           */
/* ------------------------------------------------------------------------ */

static void data_done(int rc, const char *value, int value_len, const struct Stat *stat,
                      const void *data)
{
    struct zk_call *c = (struct zk_call *)data;
    size_t n;

    if (rc == ZOK && stat)
        c->stat = *stat;
    if (rc == ZOK && value && value_len > ZK_NODE_MAX) {
        c->too_big = 1;
    } else if (rc == ZOK && value && value_len > 0) {
        n = (size_t)value_len;
        c->data = malloc(n);
        if (c->data) {
            memcpy(c->data, value, n);
            c->len = n;
        } else {
            c->oom = 1;
        }
    }
    zk__call_done(c, rc);
}

/* zk__call_finish() for a read answered through data_done(): a node larger
 * than ZK_NODE_MAX fails, it is never truncated. */
static int get_finish(struct zk_session *zs, struct zk_call *c, int submit_rc, const char *path,
                      struct chc_err *err)
{
    int r = zk__call_finish(zs, c, submit_rc, "get", path, err);

    if (r == 0 && c->too_big)
        r = chc_err_set(err, CHC_ETOOBIG, "zookeeper get '%s': the node is larger than %d bytes",
                        path, ZK_NODE_MAX);
    return r;
}

/* Testing: CHC_ZK_LOSE_REPLY="<substring>:<n>" reports every n-th
 * successful create of a path containing <substring> as a connection loss,
 * as when the reply is lost on the way back (the node was created). */
static int lose_reply(const char *path)
{
    static atomic_uint seen;
    const char *env = getenv("CHC_ZK_LOSE_REPLY"), *colon = env ? strrchr(env, ':') : NULL;
    unsigned long every;
    char sub[256], *end;

    if (!colon || colon == env || (size_t)(colon - env) >= sizeof(sub))
        return 0;
    memcpy(sub, env, (size_t)(colon - env));
    sub[colon - env] = '\0';
    every = strtoul(colon + 1, &end, 10);
    if (*end || every == 0 || !strstr(path, sub))
        return 0;
    return (atomic_fetch_add(&seen, 1) + 1) % every == 0;
}

/* Add the digest identity and wait until ZooKeeper accepted it: the library
 * sends it ahead of later requests, but only its answer says whether it was
 * taken (a refusal also ends the session). From then on nodes are created
 * for this identity only. */
static int add_auth(struct zk_session *zs, const char *identity, struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    r = zk__call_new(zs, "auth", "digest", &c, err);
    if (r < 0)
        return r;
    rc = zoo_add_auth(zs->zh, "digest", identity, (int)strlen(identity), zk__void_done, c);
    r = zk__call_wait(zs, c, rc, "auth", "digest", err);
    if (r == 0 && c->rc != ZOK)
        r = chc_err_set(err, c->rc == ZAUTHFAILED ? CHC_EZK_NOAUTH : zk__map_rc(c->rc),
                        "ZooKeeper refused the <identity> of zookeeper.xml (digest auth): %s",
                        zerror(c->rc));
    zk__call_put(c);
    if (r == 0) {
        zs->acl = &ZOO_CREATOR_ALL_ACL;
        zs->has_identity = 1;
    }
    return r;
}

static int create(struct zk_session *zs, const char *path, const void *data, size_t len,
                  enum zk_mode mode, struct ACL_vector *acl, char **ret_path,
                  struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    if (len > ZK_NODE_MAX)
        return chc_err_set(err, CHC_ETOOBIG, "zookeeper create '%s': %zu bytes is too large",
                           path, len);
    r = zk__call_new(zs, "create", path, &c, err);
    if (r < 0)
        return r;
    rc = zoo_acreate(zs->zh, path, data, data ? (int)len : -1, acl, zk__mode(mode),
                     zk__string_done, c);
    r = zk__call_finish(zs, c, rc, "create", path, err);
    if (r == 0 && lose_reply(path))
        r = chc_err_set(err, CHC_EZK_CONNLOSS, "zookeeper create '%s': connection loss "
                        "(reply dropped by CHC_ZK_LOSE_REPLY)", path);
    if (r == 0 && ret_path) {
        *ret_path = c->data ? c->data : chc_strdup(path);
        c->data = NULL;
        if (!*ret_path)
            r = chc_err_set(err, -ENOMEM, "out of memory");
    }
    zk__call_put(c);
    return r;
}

int zk_create(struct zk_session *zs, const char *path, const void *data, size_t len,
              enum zk_mode mode, char **ret_path, struct chc_err *err)
{
    return create(zs, path, data, len, mode, zs->acl, ret_path, err);
}

/* Create the missing nodes on the way to path: its ancestors with acl, path
 * itself (unless ancestors_only) with the session's. */
static int create_path(struct zk_session *zs, const char *path, int ancestors_only,
                       struct ACL_vector *acl, struct chc_err *err)
{
    char tmp[1024];
    size_t i, n = strlen(path);
    int r;

    if (n >= sizeof(tmp) || path[0] != '/')
        return chc_err_set(err, -EINVAL, "bad zookeeper path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        if (i == n && ancestors_only)
            break;
        tmp[i] = '\0';
        r = zk_exists(zs, tmp, NULL, err);
        if (r == CHC_EZK_NONODE)
            r = create(zs, tmp, NULL, 0, ZK_PERSISTENT, i == n ? zs->acl : acl, NULL, err);
        if (r < 0 && r != CHC_EZK_NODEEXISTS)
            return r;
        tmp[i] = path[i];
    }
    return 0;
}

int zk_create_parents(struct zk_session *zs, const char *path, struct chc_err *err)
{
    return create_path(zs, path, 0, zs->acl, err);
}

int zk_create_ancestors(struct zk_session *zs, const char *path, struct chc_err *err)
{
    return create_path(zs, path, 1, &ZOO_OPEN_ACL_UNSAFE, err);
}

int zk_get(struct zk_session *zs, const char *path, struct chc_buf *out, struct zk_stat *stat,
           struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    r = zk__call_new(zs, "get", path, &c, err);
    if (r < 0)
        return r;
    rc = zoo_aget(zs->zh, path, 0, data_done, c);
    r = get_finish(zs, c, rc, path, err);
    if (r == 0) {
        chc_buf_reset(out);
        r = chc_buf_add(out, c->data ? c->data : "", c->len);
        if (r < 0)
            r = chc_err_set(err, r, "zookeeper get '%s': node too large", path);
        else
            copy_stat(stat, &c->stat);
    }
    zk__call_put(c);
    return r;
}

/* At most this many reads of zk_get_many in flight. */
#define GET_MANY_INFLIGHT 512

int zk_get_many(struct zk_session *zs, const char *const *paths, size_t n, struct chc_buf *outs,
                int *codes, struct chc_err *err)
{
    struct zk_call **c = calloc(GET_MANY_INFLIGHT, sizeof(*c));
    int *rc = calloc(GET_MANY_INFLIGHT, sizeof(*rc));
    size_t done = 0, i, m;
    int r = c && rc ? 0 : chc_err_set(err, -ENOMEM, "out of memory");

    while (r == 0 && done < n) {
        m = n - done < GET_MANY_INFLIGHT ? n - done : GET_MANY_INFLIGHT;
        for (i = 0; i < m; i++) { /* every request out first ... */
            c[i] = NULL;
            codes[done + i] = zk__call_new(zs, "get", paths[done + i], &c[i], err);
            if (codes[done + i] == 0)
                rc[i] = zoo_aget(zs->zh, paths[done + i], 0, data_done, c[i]);
        }
        for (i = 0; i < m; i++) { /* ... then the answers, in order */
            struct chc_err e = CHC_ERR_INIT;
            int *code = &codes[done + i];
            if (*code == 0)
                *code = get_finish(zs, c[i], rc[i], paths[done + i], &e);
            if (*code == 0) {
                chc_buf_reset(&outs[done + i]);
                if (chc_buf_add(&outs[done + i], c[i]->data ? c[i]->data : "", c[i]->len) < 0)
                    *code = -ENOMEM;
            }
            if (r == 0 && *code < 0 && *code != CHC_EZK_NONODE)
                r = chc_err_set(err, *code, "%s", e.code ? e.msg : "out of memory");
            zk__call_put(c[i]);
        }
        done += m;
    }
    free(c);
    free(rc);
    return r;
}

/* One write of zk_write_many sent: a create where versions[i] < 0, else a
 * set over that version. */
static int write_send(struct zk_session *zs, const char *path, const char *data, int version,
                      struct zk_call **c, int *rc, struct chc_err *err)
{
    size_t len = strlen(data);
    int r;

    if (len > ZK_NODE_MAX)
        return chc_err_set(err, CHC_ETOOBIG, "zookeeper write '%s': too large", path);
    r = zk__call_new(zs, version < 0 ? "create" : "set", path, c, err);
    if (r < 0)
        return r;
    if (version < 0)
        *rc = zoo_acreate(zs->zh, path, data, (int)len, zs->acl, zk__mode(ZK_PERSISTENT),
                          zk__string_done, *c);
    else
        *rc = zoo_aset(zs->zh, path, data, (int)len, version, zk__stat_done, *c);
    return 0;
}

int zk_write_many(struct zk_session *zs, const char *const *paths, const char *const *datas,
                  size_t n, int *versions, int *codes, struct chc_err *err)
{
    struct zk_call **c = calloc(GET_MANY_INFLIGHT, sizeof(*c));
    int *rc = calloc(GET_MANY_INFLIGHT, sizeof(*rc));
    size_t done = 0, i, m;
    int r = c && rc ? 0 : chc_err_set(err, -ENOMEM, "out of memory");

    while (r == 0 && done < n) {
        m = n - done < GET_MANY_INFLIGHT ? n - done : GET_MANY_INFLIGHT;
        for (i = 0; i < m; i++) { /* every request out first ... */
            struct chc_err e = CHC_ERR_INIT;
            c[i] = NULL;
            codes[done + i] = write_send(zs, paths[done + i], datas[done + i],
                                         versions[done + i], &c[i], &rc[i], &e);
            if (r == 0 && codes[done + i] < 0)
                r = chc_err_set(err, codes[done + i], "%s", e.msg);
        }
        for (i = 0; i < m; i++) { /* ... then the answers, in order */
            struct chc_err e = CHC_ERR_INIT;
            int *code = &codes[done + i], *v = &versions[done + i];
            if (*code == 0)
                *code = zk__call_finish(zs, c[i], rc[i], *v < 0 ? "create" : "set",
                                        paths[done + i], &e);
            if (*code == 0)
                *v = *v < 0 ? 0 : c[i]->stat.version;
            if (r == 0 && *code < 0)
                r = chc_err_set(err, *code, "%s", e.code ? e.msg : "out of memory");
            zk__call_put(c[i]);
        }
        done += m;
    }
    free(c);
    free(rc);
    return r;
}

int zk_set(struct zk_session *zs, const char *path, const void *data, size_t len, int version,
           struct zk_stat *stat, struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    if (len > ZK_NODE_MAX)
        return chc_err_set(err, CHC_ETOOBIG, "zookeeper set '%s': too large", path);
    r = zk__call_new(zs, "set", path, &c, err);
    if (r < 0)
        return r;
    rc = zoo_aset(zs->zh, path, data, (int)len, version, zk__stat_done, c);
    r = zk__call_finish(zs, c, rc, "set", path, err);
    if (r == 0)
        copy_stat(stat, &c->stat);
    zk__call_put(c);
    return r;
}

int zk_delete(struct zk_session *zs, const char *path, int version, struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    r = zk__call_new(zs, "delete", path, &c, err);
    if (r < 0)
        return r;
    rc = zoo_adelete(zs->zh, path, version, zk__void_done, c);
    r = zk__call_finish(zs, c, rc, "delete", path, err);
    zk__call_put(c);
    return r;
}

int zk_exists(struct zk_session *zs, const char *path, struct zk_stat *stat,
              struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    r = zk__call_new(zs, "exists", path, &c, err);
    if (r < 0)
        return r;
    rc = zoo_aexists(zs->zh, path, 0, zk__stat_done, c);
    r = zk__call_wait(zs, c, rc, "exists", path, err);
    if (r == 0 && c->rc == ZNONODE)
        r = CHC_EZK_NONODE;
    else if (r == 0 && c->rc != ZOK)
        r = zk__fail_rc(zs, c->rc, "exists", path, err);
    if (r == 0)
        copy_stat(stat, &c->stat);
    zk__call_put(c);
    return r;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


int zk_children(struct zk_session *zs, const char *path, char ***ret, size_t *ret_n,
                struct chc_err *err)
{
    struct zk_call *c = NULL;
    int rc, r;

    r = zk__call_new(zs, "get children of", path, &c, err);
    if (r < 0)
        return r;
    rc = zoo_aget_children(zs->zh, path, 0, zk__strings_done, c);
    r = zk__call_finish(zs, c, rc, "get children of", path, err);
    if (r == 0) {
        if (c->n_strv > 1)
            qsort(c->strv, c->n_strv, sizeof(*c->strv), cmp_str);
        *ret = c->strv;
        *ret_n = c->n_strv;
        c->strv = NULL;
        c->n_strv = 0;
    }
    zk__call_put(c);
    return r;
}

int zk_delete_recursive(struct zk_session *zs, const char *path, struct chc_err *err)
{
    struct chc_buf p = CHC_BUF_INIT;
    char **kids = NULL;
    size_t n = 0, i;
    int r;

    r = zk_children(zs, path, &kids, &n, err);
    if (r == CHC_EZK_NONODE)
        return 0;
    if (r < 0)
        return r;
    for (i = 0; i < n; i++) {
        chc_buf_reset(&p);
        r = chc_buf_addf(&p, "%s/%s", strcmp(path, "/") ? path : "", kids[i]);
        if (r < 0) {
            chc_err_set(err, r, "out of memory");
            goto out;
        }
        r = zk_delete_recursive(zs, p.buf, err);
        if (r < 0)
            goto out;
    }
    r = zk_delete(zs, path, ZK_ANY_VERSION, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
out:
    chc_buf_release(&p);
    chc_strv_free(kids, n);
    return r;
}

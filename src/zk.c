/* zk.c — the only file that includes zookeeper.h.
 *
 * Owns the zhandle, the translation of ZOO_* codes into CHC_EZK_* (once,
 * here), and the session-loss policy:
 *   1. the library thread's watcher records the state (atomics) and wakes the
 *      loop through uv_async_send() if the caller gave a uv_async_t;
 *   2. CONNECTING after a disconnect is transient: calls fail with
 *      CHC_EZK_CONNLOSS and callers retry;
 *   3. EXPIRED is final for this handle: every ephemeral node (worker
 *      registration, piece claims, mover locks) is gone; callers must stop the
 *      transfers they hold and open a new session.
 * ZooKeeper's own log lines are routed into chc_log at debug level.
 * Paths it creates are chosen by callers (see docs/zookeeper.md).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>
#include <zookeeper/zookeeper.h>

#include "chcopier/log.h"
#include "chcopier/task.h"
#include "chcopier/zk.h"

#include "banned.h"

struct zk_session {
    zhandle_t *zh;
    char *hosts;
    atomic_int state; /* last ZOO_*_STATE seen */
    atomic_int expired;
    uv_async_t *wake;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static int map_rc(int rc)
{
    switch (rc) {
    case ZOK: return 0;
    case ZNONODE: return CHC_EZK_NONODE;
    case ZNODEEXISTS: return CHC_EZK_NODEEXISTS;
    case ZBADVERSION: return CHC_EZK_BADVERSION;
    case ZNOTEMPTY: return CHC_EZK_NOTEMPTY;
    case ZSESSIONEXPIRED:
    case ZSESSIONMOVED:
    case ZINVALIDSTATE: return CHC_EZK_EXPIRED;
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZCLOSING: return CHC_EZK_CONNLOSS;
    default: return CHC_EZK;
    }
}

static int fail_rc(struct zk_session *zs, int rc, const char *op, const char *path,
                   struct chc_err *err)
{
    int code = map_rc(rc);

    if (code == CHC_EZK_CONNLOSS && atomic_load(&zs->expired))
        code = CHC_EZK_EXPIRED;
    return chc_err_set(err, code, "zookeeper %s '%s': %s", op, path, zerror(rc));
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

int zk_session_new(const struct cfg_zk *cfg, int timeout_ms, void *wake,
                   struct zk_session **ret, struct chc_err *err)
{
    struct chc_buf hosts = CHC_BUF_INIT;
    struct zk_session *zs;
    struct timespec deadline;
    int r, rc;

    zs = calloc(1, sizeof(*zs));
    if (!zs)
        return chc_err_set(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&zs->lock, NULL);
    pthread_cond_init(&zs->cond, NULL);
    zs->wake = wake;
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
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
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
        rc = zoo_add_auth(zs->zh, "digest", cfg->identity, (int)strlen(cfg->identity), NULL,
                          NULL);
        if (rc != ZOK) {
            r = chc_err_set(err, map_rc(rc), "ZooKeeper digest auth failed: %s", zerror(rc));
            goto fail;
        }
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
    if (zs->zh)
        zookeeper_close(zs->zh);
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
    return atomic_load(&((struct zk_session *)zs)->state) == ZOO_CONNECTED_STATE;
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

static int zmode(enum zk_mode m)
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

int zk_create(struct zk_session *zs, const char *path, const void *data, size_t len,
              enum zk_mode mode, char **ret_path, struct chc_err *err)
{
    char created[1024];
    int rc;

    if (len > ZK_NODE_MAX)
        return chc_err_set(err, CHC_ETOOBIG, "zookeeper create '%s': %zu bytes is too large",
                           path, len);
    rc = zoo_create(zs->zh, path, data, data ? (int)len : -1, &ZOO_OPEN_ACL_UNSAFE, zmode(mode),
                    created, sizeof(created));
    if (rc != ZOK)
        return fail_rc(zs, rc, "create", path, err);
    if (ret_path) {
        *ret_path = chc_strdup(created);
        if (!*ret_path)
            return chc_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

int zk_create_parents(struct zk_session *zs, const char *path, struct chc_err *err)
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
        tmp[i] = '\0';
        r = zk_exists(zs, tmp, NULL, err);
        if (r == CHC_EZK_NONODE)
            r = zk_create(zs, tmp, NULL, 0, ZK_PERSISTENT, NULL, err);
        if (r < 0 && r != CHC_EZK_NODEEXISTS)
            return r;
        tmp[i] = path[i];
    }
    return 0;
}

int zk_get(struct zk_session *zs, const char *path, struct chc_buf *out, struct zk_stat *stat,
           struct chc_err *err)
{
    struct Stat st;
    char *buf;
    int len = ZK_NODE_MAX, rc, r;

    buf = malloc(ZK_NODE_MAX);
    if (!buf)
        return chc_err_set(err, -ENOMEM, "out of memory");
    rc = zoo_get(zs->zh, path, 0, buf, &len, &st);
    if (rc != ZOK) {
        free(buf);
        return fail_rc(zs, rc, "get", path, err);
    }
    chc_buf_reset(out);
    r = chc_buf_add(out, buf, len > 0 ? (size_t)len : 0);
    free(buf);
    if (r < 0)
        return chc_err_set(err, r, "zookeeper get '%s': node too large", path);
    copy_stat(stat, &st);
    return 0;
}

int zk_set(struct zk_session *zs, const char *path, const void *data, size_t len, int version,
           struct zk_stat *stat, struct chc_err *err)
{
    struct Stat st;
    int rc;

    if (len > ZK_NODE_MAX)
        return chc_err_set(err, CHC_ETOOBIG, "zookeeper set '%s': too large", path);
    rc = zoo_set2(zs->zh, path, data, (int)len, version, &st);
    if (rc != ZOK)
        return fail_rc(zs, rc, "set", path, err);
    copy_stat(stat, &st);
    return 0;
}

int zk_delete(struct zk_session *zs, const char *path, int version, struct chc_err *err)
{
    int rc = zoo_delete(zs->zh, path, version);

    if (rc != ZOK)
        return fail_rc(zs, rc, "delete", path, err);
    return 0;
}

int zk_exists(struct zk_session *zs, const char *path, struct zk_stat *stat,
              struct chc_err *err)
{
    struct Stat st;
    int rc = zoo_exists(zs->zh, path, 0, &st);

    if (rc == ZNONODE)
        return CHC_EZK_NONODE;
    if (rc != ZOK)
        return fail_rc(zs, rc, "exists", path, err);
    copy_stat(stat, &st);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


int zk_children(struct zk_session *zs, const char *path, char ***ret, size_t *ret_n,
                struct chc_err *err)
{
    struct String_vector sv = {0, NULL};
    char **v = NULL;
    int rc, i;

    rc = zoo_get_children(zs->zh, path, 0, &sv);
    if (rc != ZOK)
        return fail_rc(zs, rc, "get children of", path, err);
    if (sv.count > 0) {
        v = calloc((size_t)sv.count, sizeof(*v));
        if (!v) {
            deallocate_String_vector(&sv);
            return chc_err_set(err, -ENOMEM, "out of memory");
        }
        for (i = 0; i < sv.count; i++) {
            v[i] = chc_strdup(sv.data[i]);
            if (!v[i]) {
                chc_strv_free(v, (size_t)i);
                deallocate_String_vector(&sv);
                return chc_err_set(err, -ENOMEM, "out of memory");
            }
        }
        qsort(v, (size_t)sv.count, sizeof(*v), cmp_str);
    }
    *ret = v;
    *ret_n = (size_t)sv.count;
    deallocate_String_vector(&sv);
    return 0;
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

/* ------------------------------------------------------------------------ */
/* transactions                                                             */
/* ------------------------------------------------------------------------ */

enum txn_kind { TXN_CREATE, TXN_SET, TXN_DELETE, TXN_CHECK };

struct txn_op {
    enum txn_kind kind;
    char *path;
    char *data;
    size_t len;
    int has_data;
    int version;
    enum zk_mode mode;
};

struct zk_txn {
    struct txn_op *ops;
    size_t n, cap;
};

struct zk_txn *zk_txn_new(void)
{
    return calloc(1, sizeof(struct zk_txn));
}

struct zk_txn *zk_txn_free(struct zk_txn *t)
{
    size_t i;

    if (!t)
        return NULL;
    for (i = 0; i < t->n; i++) {
        free(t->ops[i].path);
        free(t->ops[i].data);
    }
    free(t->ops);
    free(t);
    return NULL;
}

static int txn_add(struct zk_txn *t, enum txn_kind kind, const char *path, const void *data,
                   size_t len, int version, enum zk_mode mode)
{
    struct txn_op *op;

    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        struct txn_op *n = realloc(t->ops, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        t->ops = n;
        t->cap = ncap;
    }
    op = &t->ops[t->n];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->version = version;
    op->mode = mode;
    op->path = chc_strdup(path);
    if (!op->path)
        return -ENOMEM;
    if (data) {
        op->data = malloc(len ? len : 1);
        if (!op->data) {
            free(op->path);
            return -ENOMEM;
        }
        memcpy(op->data, data, len);
        op->len = len;
        op->has_data = 1;
    }
    t->n++;
    return 0;
}

int zk_txn_create(struct zk_txn *t, const char *path, const void *data, size_t len,
                  enum zk_mode mode)
{
    return txn_add(t, TXN_CREATE, path, data, len, 0, mode);
}

int zk_txn_set(struct zk_txn *t, const char *path, const void *data, size_t len, int version)
{
    return txn_add(t, TXN_SET, path, data ? data : "", len, version, ZK_PERSISTENT);
}

int zk_txn_delete(struct zk_txn *t, const char *path, int version)
{
    return txn_add(t, TXN_DELETE, path, NULL, 0, version, ZK_PERSISTENT);
}

int zk_txn_check(struct zk_txn *t, const char *path, int version)
{
    return txn_add(t, TXN_CHECK, path, NULL, 0, version, ZK_PERSISTENT);
}

int zk_txn_commit(struct zk_session *zs, struct zk_txn *t, size_t *ret_failed,
                  struct chc_err *err)
{
    zoo_op_t *ops = NULL;
    zoo_op_result_t *res = NULL;
    char (*bufs)[1024] = NULL;
    struct Stat *stats = NULL;
    size_t i;
    int rc, r = 0;

    if (t->n == 0)
        return 0;
    ops = calloc(t->n, sizeof(*ops));
    res = calloc(t->n, sizeof(*res));
    bufs = calloc(t->n, sizeof(*bufs));
    stats = calloc(t->n, sizeof(*stats));
    if (!ops || !res || !bufs || !stats) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < t->n; i++) {
        const struct txn_op *o = &t->ops[i];
        switch (o->kind) {
        case TXN_CREATE:
            zoo_create_op_init(&ops[i], o->path, o->has_data ? o->data : NULL,
                               o->has_data ? (int)o->len : -1, &ZOO_OPEN_ACL_UNSAFE,
                               zmode(o->mode), bufs[i], sizeof(bufs[i]));
            break;
        case TXN_SET:
            zoo_set_op_init(&ops[i], o->path, o->data, (int)o->len, o->version, &stats[i]);
            break;
        case TXN_DELETE:
            zoo_delete_op_init(&ops[i], o->path, o->version);
            break;
        case TXN_CHECK:
            zoo_check_op_init(&ops[i], o->path, o->version);
            break;
        }
    }
    rc = zoo_multi(zs->zh, (int)t->n, ops, res);
    if (rc != ZOK) {
        size_t bad = t->n;
        for (i = 0; i < t->n; i++)
            if (res[i].err != ZOK && res[i].err != ZRUNTIMEINCONSISTENCY) {
                bad = i;
                break;
            }
        if (ret_failed)
            *ret_failed = bad;
        if (bad < t->n)
            r = fail_rc(zs, res[bad].err, "multi op on", t->ops[bad].path, err);
        else
            r = fail_rc(zs, rc, "multi", t->ops[0].path, err);
    }
out:
    free(ops);
    free(res);
    free(bufs);
    free(stats);
    return r;
}

/* txn.c — ZooKeeper multi-op transactions (txn.h): all or nothing.
 *
 * Owns a transaction's ops (copies of their paths and data) until commit,
 * and the commit itself: one zoo_amulti() through call.h, waited for with the
 * call deadline, its creates with the session's ACL. A refused multi names
 * its first failing op. The session and its calls are zk.c's and call.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zookeeper/zookeeper.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/zk/txn.h"
#include "chcopier/zk/zk.h"
#include "zk/call.h"
#include "zk/zk-internal.h"

#include "base/banned.h"

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
    /* zoo_amulti failed before sending: libzookeeper_mt 3.8 may have freed
     * some op paths already (it frees a stale request path when an op after
     * the first fails to marshal), so they are not ours to free: leak them. */
    int paths_lost;
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
        if (!t->paths_lost)
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
    struct zk_call *c = NULL;
    size_t i, bad;
    int rc, r;

    if (t->n == 0)
        return 0;
    r = zk__call_new(zs, "multi", t->ops[0].path, &c, err);
    if (r < 0)
        return r;
    c->ops = calloc(t->n, sizeof(*c->ops));
    c->res = calloc(t->n, sizeof(*c->res));
    c->bufs = calloc(t->n, sizeof(*c->bufs));
    c->stats = calloc(t->n, sizeof(*c->stats));
    if (!c->ops || !c->res || !c->bufs || !c->stats) {
        zk__call_abort(c); /* never submitted */
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < t->n; i++) {
        const struct txn_op *o = &t->ops[i];
        switch (o->kind) {
        case TXN_CREATE:
            zoo_create_op_init(&c->ops[i], o->path, o->has_data ? o->data : NULL,
                               o->has_data ? (int)o->len : -1, zs->acl,
                               zk__mode(o->mode), c->bufs[i], sizeof(c->bufs[i]));
            break;
        case TXN_SET:
            zoo_set_op_init(&c->ops[i], o->path, o->data, (int)o->len, o->version,
                            &c->stats[i]);
            break;
        case TXN_DELETE:
            zoo_delete_op_init(&c->ops[i], o->path, o->version);
            break;
        case TXN_CHECK:
            zoo_check_op_init(&c->ops[i], o->path, o->version);
            break;
        }
    }
    rc = zoo_amulti(zs->zh, (int)t->n, c->ops, c->res, zk__void_done, c);
    if (rc != ZOK)
        t->paths_lost = 1; /* and t->ops[0].path may be gone: name no path */
    r = zk__call_wait(zs, c, rc, "multi", rc != ZOK ? "(multi)" : t->ops[0].path, err);
    if (r < 0 && r != -ENOMEM && ret_failed)
        *ret_failed = t->n;
    if (r < 0 || c->rc == ZOK)
        goto out;
    bad = t->n;
    for (i = 0; i < t->n; i++)
        if (c->res[i].err != ZOK && c->res[i].err != ZRUNTIMEINCONSISTENCY) {
            bad = i;
            break;
        }
    if (ret_failed)
        *ret_failed = bad;
    if (bad < t->n)
        r = zk__fail_rc(zs, c->res[bad].err, "multi op on", t->ops[bad].path, err);
    else
        r = zk__fail_rc(zs, c->rc, "multi", t->ops[0].path, err);
out:
    zk__call_put(c);
    return r;
}

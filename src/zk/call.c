/* call.c — ZooKeeper calls on the asynchronous API, waited for with a
 * deadline (call.h).
 *
 * Owns the translation of ZOO_* result codes into CHC_EZK_* (once, here), a
 * call's two references and its place on zs->pending, the completions that
 * copy a reply into the call, and the policy for a reply that never comes:
 * the call fails with CHC_EZK_CONNLOSS, the session is abandoned (counts as
 * expired, the loop is woken) and every later call fails at once. It creates
 * no node and knows no path: zk.c and txn.c say what to call.
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
#include "chcopier/base/err.h"
#include "chcopier/obs/log.h"
#include "zk/call.h"

#include "base/banned.h"

int zk__map_rc(int rc)
{
    switch (rc) {
    case ZOK: return 0;
    case ZNONODE: return CHC_EZK_NONODE;
    case ZNODEEXISTS: return CHC_EZK_NODEEXISTS;
    case ZBADVERSION: return CHC_EZK_BADVERSION;
    case ZNOTEMPTY: return CHC_EZK_NOTEMPTY;
    case ZNOAUTH: return CHC_EZK_NOAUTH;
    case ZSESSIONEXPIRED:
    case ZSESSIONMOVED:
    case ZINVALIDSTATE: return CHC_EZK_EXPIRED;
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZCLOSING: return CHC_EZK_CONNLOSS;
    default: return CHC_EZK;
    }
}

int zk__fail_rc(struct zk_session *zs, int rc, const char *op, const char *path,
                struct chc_err *err)
{
    int code = zk__map_rc(rc);

    if (code == CHC_EZK_CONNLOSS && atomic_load(&zs->expired))
        code = CHC_EZK_EXPIRED;
    if (code == CHC_EZK_NOAUTH)
        return chc_err_set(err, code,
                           "zookeeper %s '%s': not authorized: the node is protected by a "
                           "digest ACL; %s",
                           op, path,
                           zs->has_identity
                               ? "the <identity> in zookeeper.xml is not the one that created it"
                               : "add the <identity>user:password</identity> it was created "
                                 "with to zookeeper.xml");
    return chc_err_set(err, code, "zookeeper %s '%s': %s", op, path, zerror(rc));
}

/* CLOCK_MONOTONIC, as zs->cond waits. */
void zk__deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void call_free(struct zk_call *c)
{
    if (c->strv)
        chc_strv_free(c->strv, c->n_strv);
    free(c->data);
    free(c->ops);
    free(c->res);
    free(c->bufs);
    free(c->stats);
    free(c);
}

/* Under zs->lock. */
static void call_unref_locked(struct zk_call *c)
{
    if (--c->refs == 0)
        call_free(c);
}

/* Under zs->lock: the library will not touch c again. */
static void call_lib_release_locked(struct zk_call *c)
{
    struct zk_session *zs = c->zs;

    if (c->prev)
        c->prev->next = c->next;
    else
        zs->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    call_unref_locked(c);
}

int zk__call_new(struct zk_session *zs, const char *op, const char *path,
                 struct zk_call **ret, struct chc_err *err)
{
    struct zk_call *c;

    if (atomic_load(&zs->abandoned))
        return chc_err_set(err, CHC_EZK_EXPIRED,
                           "zookeeper %s '%s': session abandoned after a call got no answer "
                           "within %d ms",
                           op, path, zs->call_timeout_ms);
    c = calloc(1, sizeof(*c));
    if (!c)
        return chc_err_set(err, -ENOMEM, "out of memory");
    c->zs = zs;
    c->refs = 2;
    pthread_mutex_lock(&zs->lock);
    c->next = zs->pending;
    if (zs->pending)
        zs->pending->prev = c;
    zs->pending = c;
    pthread_mutex_unlock(&zs->lock);
    *ret = c;
    return 0;
}

void zk__call_put(struct zk_call *c)
{
    struct zk_session *zs;

    if (!c)
        return;
    zs = c->zs;
    pthread_mutex_lock(&zs->lock);
    call_unref_locked(c);
    pthread_mutex_unlock(&zs->lock);
}

void zk__call_abort(struct zk_call *c)
{
    struct zk_session *zs = c->zs;

    pthread_mutex_lock(&zs->lock);
    call_lib_release_locked(c);
    pthread_mutex_unlock(&zs->lock);
}

void zk__calls_drop_pending(struct zk_session *zs)
{
    pthread_mutex_lock(&zs->lock);
    while (zs->pending)
        call_lib_release_locked(zs->pending);
    pthread_mutex_unlock(&zs->lock);
}

void zk__call_done(struct zk_call *c, int rc)
{
    struct zk_session *zs = c->zs;

    pthread_mutex_lock(&zs->lock);
    c->rc = rc;
    c->done = 1;
    call_lib_release_locked(c);
    pthread_cond_broadcast(&zs->cond);
    pthread_mutex_unlock(&zs->lock);
}

void zk__void_done(int rc, const void *data)
{
    zk__call_done((struct zk_call *)data, rc);
}

void zk__stat_done(int rc, const struct Stat *stat, const void *data)
{
    struct zk_call *c = (struct zk_call *)data;

    if (rc == ZOK && stat)
        c->stat = *stat;
    zk__call_done(c, rc);
}

void zk__string_done(int rc, const char *value, const void *data)
{
    struct zk_call *c = (struct zk_call *)data;

    if (rc == ZOK && value) {
        c->data = chc_strdup(value);
        c->oom = !c->data;
    }
    zk__call_done(c, rc);
}

void zk__strings_done(int rc, const struct String_vector *sv, const void *data)
{
    struct zk_call *c = (struct zk_call *)data;
    int i;

    if (rc == ZOK && sv && sv->count > 0) {
        c->strv = calloc((size_t)sv->count, sizeof(*c->strv));
        if (c->strv) {
            c->n_strv = (size_t)sv->count;
            for (i = 0; i < sv->count && !c->oom; i++) {
                c->strv[i] = chc_strdup(sv->data[i]);
                c->oom = !c->strv[i];
            }
        } else {
            c->oom = 1;
        }
    }
    zk__call_done(c, rc);
}

/* The session is lost to us: later calls fail at once, and callers see it
 * as expired and reconnect. */
static void abandon(struct zk_session *zs, const char *op, const char *path)
{
    const clientid_t *id;

    pthread_mutex_lock(&zs->lock);
    atomic_store(&zs->abandoned, 1);
    atomic_store(&zs->expired, 1);
    pthread_cond_broadcast(&zs->cond);
    pthread_mutex_unlock(&zs->lock);
    id = zoo_client_id(zs->zh);
    chc_log_debug("zookeeper: %s '%s' got no answer within %d ms: abandoning session 0x%llx",
                  op, path, zs->call_timeout_ms,
                  (unsigned long long)(id ? id->client_id : 0));
    if (zs->wake)
        uv_async_send(zs->wake);
}

int zk__call_wait(struct zk_session *zs, struct zk_call *c, int submit_rc, const char *op,
                  const char *path, struct chc_err *err)
{
    struct timespec deadline;
    int late = 0;

    if (submit_rc != ZOK) {
        /* Refused before the library registered the completion; other
         * refusals may come after it did (the multi's marshalling), so
         * those keep the library's reference until zk_session_free(). */
        if (submit_rc == ZBADARGUMENTS || submit_rc == ZINVALIDSTATE)
            zk__call_abort(c);
        return zk__fail_rc(zs, submit_rc, op, path, err);
    }
    zk__deadline_after(&deadline, zs->call_timeout_ms);
    pthread_mutex_lock(&zs->lock);
    while (!c->done && !atomic_load(&zs->abandoned)) {
        if (pthread_cond_timedwait(&zs->cond, &zs->lock, &deadline) != 0) {
            late = !c->done;
            break;
        }
    }
    if (!c->done && !late) { /* an earlier call of a pipelined batch gave up on it */
        pthread_mutex_unlock(&zs->lock);
        return chc_err_set(err, CHC_EZK_EXPIRED, "zookeeper %s '%s': session abandoned", op,
                           path);
    }
    pthread_mutex_unlock(&zs->lock);
    if (late) {
        abandon(zs, op, path);
        return chc_err_set(err, CHC_EZK_CONNLOSS,
                           "zookeeper %s '%s': no answer within %d ms; abandoning the session",
                           op, path, zs->call_timeout_ms);
    }
    if (c->rc == ZOK && c->oom)
        return chc_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int zk__call_finish(struct zk_session *zs, struct zk_call *c, int submit_rc, const char *op,
                    const char *path, struct chc_err *err)
{
    int r = zk__call_wait(zs, c, submit_rc, op, path, err);

    if (r == 0 && c->rc != ZOK)
        r = zk__fail_rc(zs, c->rc, op, path, err);
    return r;
}

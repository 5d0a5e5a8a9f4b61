/* call.h — a ZooKeeper call waited for with a deadline, and the session state
 * it waits on; private to src/zk (zk.c, txn.c).
 *
 * Every call is issued on libzookeeper's asynchronous API and waited for on
 * zs->cond until the call deadline (zk.h), because the library's own
 * synchronous calls can wait forever for a completion that never comes
 * (ZOOKEEPER-2802). A call's rendezvous (struct zk_call) is heap-allocated
 * with two references, the waiter's and the library's, so a completion that
 * arrives after its waiter gave up writes only into memory it still owns.
 *
 * Sequence for one call:
 *   1. zk__call_new(zs, op, path, &c, err): both references taken, c on
 *      zs->pending; fails at once (CHC_EZK_EXPIRED) on an abandoned session;
 *   2. rc = zoo_a...(zs->zh, ..., zk__<kind>_done, c): the completion copies
 *      its outputs into c, then drops the library's reference;
 *   3. zk__call_finish(zs, c, rc, op, path, err) (or zk__call_wait() to look
 *      at c->rc oneself): 0 once the answer is ZOK;
 *   4. read the outputs from c, then zk__call_put(c).
 * A call that gets no answer by the deadline abandons the session: it fails
 * with CHC_EZK_CONNLOSS and every later one with CHC_EZK_EXPIRED.
 */
#ifndef CHC_ZK_CALL_H
#define CHC_ZK_CALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <uv.h>
#include <zookeeper/zookeeper.h>

#include "chcopier/base/err.h"

struct zk_session {
    zhandle_t *zh;
    char *hosts;
    atomic_int state; /* last ZOO_*_STATE seen */
    atomic_int expired;
    atomic_int abandoned; /* expired by us: a call got no answer in time */
    int call_timeout_ms;
    uv_async_t *wake;
    struct ACL_vector *acl; /* of every node created: creator-only with an identity */
    int has_identity;
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* CLOCK_MONOTONIC: state changes and call completions */
    struct zk_call *pending; /* calls the library still owes a completion (under lock) */
};

/* One call's rendezvous with its completion. refs, done and the pending
 * links are under zs->lock; the outputs are written by the completion before
 * it sets done, and read by the waiter only after it saw done. */
struct zk_call {
    struct zk_session *zs;
    struct zk_call *prev, *next;
    int refs;
    int done;
    int rc;
    int oom;
    int too_big; /* a node larger than ZK_NODE_MAX: an error, never truncated */
    struct Stat stat;
    char *data; /* zoo_aget's value, zoo_acreate's path */
    size_t len;
    char **strv; /* zoo_aget_children's names */
    size_t n_strv;
    /* zoo_amulti writes the results, created paths and stats here when the
     * reply arrives, so they live as long as the call. */
    zoo_op_t *ops;
    zoo_op_result_t *res;
    char (*bufs)[1024];
    struct Stat *stats;
};

/* ZOO_* result code -> CHC_EZK_* (0 for ZOK). */
int zk__map_rc(int rc);
/* Fill err for a failed call (op on path) and return its code; a lost
 * connection on an expired session counts as expired, a refusal for lack of
 * rights names the missing <identity>. */
int zk__fail_rc(struct zk_session *zs, int rc, const char *op, const char *path,
                struct chc_err *err);
/* *ts = now + ms on CLOCK_MONOTONIC, as zs->cond waits. */
void zk__deadline_after(struct timespec *ts, int ms);

/* Step 1. */
int zk__call_new(struct zk_session *zs, const char *op, const char *path,
                 struct zk_call **ret, struct chc_err *err);
/* Step 4: the waiter is done with c (NULL-safe). */
void zk__call_put(struct zk_call *c);
/* Drop the library's reference of a call it never took (not submitted). */
void zk__call_abort(struct zk_call *c);
/* zk_session_free(), after zookeeper_close(): drop the library's references
 * of the completions the closed handle never delivered. */
void zk__calls_drop_pending(struct zk_session *zs);

/* Every completion ends here, on the library's completion thread, after it
 * copied its outputs into c. c may be freed on return. */
void zk__call_done(struct zk_call *c, int rc);
/* Completions for the zoo_a* calls (data: the struct zk_call). */
void zk__void_done(int rc, const void *data);
void zk__stat_done(int rc, const struct Stat *stat, const void *data);
void zk__string_done(int rc, const char *value, const void *data);
void zk__strings_done(int rc, const struct String_vector *sv, const void *data);

/* Step 3. submit_rc: what the zoo_a* call returned for c. Waits for c's
 * completion until the deadline: 0 with the answer in c->rc, or a CHC error
 * (refused, no answer in time, out of memory). The caller still owns its
 * reference. */
int zk__call_wait(struct zk_session *zs, struct zk_call *c, int submit_rc, const char *op,
                  const char *path, struct chc_err *err);
/* zk__call_wait(), then the answer's own result code: 0 only for ZOK. */
int zk__call_finish(struct zk_session *zs, struct zk_call *c, int submit_rc, const char *op,
                    const char *path, struct chc_err *err);

#endif

/* zk.h — the ZooKeeper session: the only interface to libzookeeper_mt.
 *
 * Calls are synchronous (a loopback/LAN round trip, ~1 ms); the worker runs
 * them on its loop thread between ClickHouse transfers, which run
 * asynchronously. Session events arrive on the library's thread and only set
 * atomic state (and optionally wake a uv_async_t); the loop reads them.
 *
 * No call blocks forever. Each waits for its answer at most the call
 * deadline: max(2 x session_timeout_ms, 10 s), or CHC_ZK_CALL_TIMEOUT_MS
 * from the environment (100..3600000; for tests). The library fails a call
 * by itself once the connection is silent for 2/3 of the session timeout, so
 * reaching the deadline means its answer was lost (ZOOKEEPER-2802). Then:
 *   1. that call fails with CHC_EZK_CONNLOSS ("zookeeper <op> '<path>': no
 *      answer within N ms; abandoning the session"): its outcome is unknown;
 *   2. the session is abandoned: zk_session_expired() returns 1 and every
 *      later call on it fails at once with CHC_EZK_EXPIRED;
 *   3. the caller treats it as an expiry: drop every claim, zk_session_free()
 *      it (closing the handle ends the old session's ephemerals as soon as
 *      ZooKeeper answers, else at its session timeout) and open a new one.
 *
 * Access. ZooKeeper ACLs are per node and not inherited. With an
 * <identity>user:password</identity> in zookeeper.xml, zk_session_new()
 * adds it (digest) and returns only once ZooKeeper accepted it; every node
 * the session then creates (zk_create, zk_create_parents, zk_txn_create of
 * txn.h) gets ZOO_CREATOR_ALL_ACL: only clients with that identity can read,
 * list, change or delete it, so the task description's passwords and the
 * state that steers the copy are closed to everyone else. Without an identity
 * nodes are open to anyone who reaches ZooKeeper (the caller warns).
 *
 * Errors: CHC_EZK_NONODE, CHC_EZK_NODEEXISTS, CHC_EZK_BADVERSION,
 * CHC_EZK_NOTEMPTY, CHC_EZK_CONNLOSS (retryable), CHC_EZK_EXPIRED (the
 * session is gone: every ephemeral node, hence every claim, is lost),
 * CHC_EZK_NOAUTH (the node's ACL refuses this session: the message names the
 * path and the <identity> to add), CHC_EZK.
 */
#ifndef CHC_ZK_H
#define CHC_ZK_H

#include <stddef.h>
#include <stdint.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_zk;
struct zk_session;

struct zk_stat {
    int64_t czxid, mzxid, pzxid;
    int64_t ctime, mtime;
    int32_t version, cversion;
    int32_t num_children;
    int64_t ephemeral_owner;
};

enum zk_mode {
    ZK_PERSISTENT,
    ZK_EPHEMERAL,
    ZK_PERSISTENT_SEQUENTIAL,
    ZK_EPHEMERAL_SEQUENTIAL,
};

#define ZK_ANY_VERSION (-1)
#define ZK_NODE_MAX (1024 * 1024)

/* Connect and wait up to timeout_ms for the session; clear error listing the
 * hosts on failure. `wake` (a uv_async_t *, may be NULL) is signalled on every
 * session state change. */
int zk_session_new(const struct cfg_zk *cfg, int timeout_ms, void *wake,
                   struct zk_session **ret, struct chc_err *err);
struct zk_session *zk_session_free(struct zk_session *zs);
/* 1 once the session has expired, or was abandoned after a call got no
 * answer by the deadline (reconnect by creating a new session). */
int zk_session_expired(const struct zk_session *zs);
/* 1 while connected. */
int zk_session_connected(const struct zk_session *zs);
int64_t zk_session_id(const struct zk_session *zs);
const char *zk_session_hosts(const struct zk_session *zs);

int zk_create(struct zk_session *zs, const char *path, const void *data, size_t len,
              enum zk_mode mode, char **ret_path, struct chc_err *err);
/* Create path and missing ancestors as persistent empty nodes. */
int zk_create_parents(struct zk_session *zs, const char *path, struct chc_err *err);
/* Create the missing ancestors of path (not path itself) as persistent empty
 * nodes open to everyone, whatever the identity: they are path components
 * that other programs may share (a task under /clickhouse/copier must not
 * lock ClickHouse's servers out of a /clickhouse it happened to create
 * first). They hold nothing; what is below path keeps its own ACL. */
int zk_create_ancestors(struct zk_session *zs, const char *path, struct chc_err *err);
int zk_get(struct zk_session *zs, const char *path, struct chc_buf *out, struct zk_stat *stat,
           struct chc_err *err);
/* Read n nodes pipelined (all requests sent before the answers are waited
 * for: about one round trip instead of n). codes[i] gets each read's
 * outcome (0, CHC_EZK_NONODE, ...), outs[i] its data. Returns the first
 * failure other than CHC_EZK_NONODE (the others may then be unread). */
int zk_get_many(struct zk_session *zs, const char *const *paths, size_t n, struct chc_buf *outs,
                int *codes, struct chc_err *err);
/* Write n nodes pipelined, as zk_get_many reads them: node i is created
 * (persistent) when versions[i] < 0, else set to datas[i] over version
 * versions[i]; each write that succeeds leaves the node's new version in
 * versions[i] (0 for a create), codes[i] its outcome. Returns the first
 * failure (the writes after it were still sent and answered). */
int zk_write_many(struct zk_session *zs, const char *const *paths, const char *const *datas,
                  size_t n, int *versions, int *codes, struct chc_err *err);
int zk_set(struct zk_session *zs, const char *path, const void *data, size_t len, int version,
           struct zk_stat *stat, struct chc_err *err);
int zk_delete(struct zk_session *zs, const char *path, int version, struct chc_err *err);
int zk_delete_recursive(struct zk_session *zs, const char *path, struct chc_err *err);
/* 0 if it exists (stat filled), CHC_EZK_NONODE if not. */
int zk_exists(struct zk_session *zs, const char *path, struct zk_stat *stat,
              struct chc_err *err);
/* Sorted child names; free with chc_strv_free. */
int zk_children(struct zk_session *zs, const char *path, char ***ret, size_t *ret_n,
                struct chc_err *err);

#endif

/* txn.h — ZooKeeper multi-op transactions: all or nothing.
 *
 * Ops are collected in a struct zk_txn (their paths and data copied) and
 * sent as one multi on a session of zk.h; the creates get the session's ACL
 * (zk.h, Access). Errors are zk.h's.
 *
 * Call sequence:
 *   1. t = zk_txn_new() (NULL on ENOMEM);
 *   2. zk_txn_create/set/delete/check(t, ...) for each op, in order (0 or
 *      -ENOMEM);
 *   3. zk_txn_commit(zs, t, &failed, err): 0 if every op was applied;
 *   4. t = zk_txn_free(t), whether the commit succeeded or not.
 */
#ifndef CHC_ZK_TXN_H
#define CHC_ZK_TXN_H

#include <stddef.h>

#include "chcopier/base/err.h"
#include "chcopier/zk/zk.h"

struct zk_txn;

struct zk_txn *zk_txn_new(void);
struct zk_txn *zk_txn_free(struct zk_txn *t);
int zk_txn_create(struct zk_txn *t, const char *path, const void *data, size_t len,
                  enum zk_mode mode);
int zk_txn_set(struct zk_txn *t, const char *path, const void *data, size_t len, int version);
int zk_txn_delete(struct zk_txn *t, const char *path, int version);
int zk_txn_check(struct zk_txn *t, const char *path, int version);
/* On failure err names the first failing op's path; ret_failed gets its index. */
int zk_txn_commit(struct zk_session *zs, struct zk_txn *t, size_t *ret_failed,
                  struct chc_err *err);

#endif

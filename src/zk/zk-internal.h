/* zk-internal.h — what txn.c takes from zk.c; private to src/zk. */
#ifndef CHC_ZK_INTERNAL_H
#define CHC_ZK_INTERNAL_H

#include "chcopier/zk/zk.h"

/* enum zk_mode -> ZOO_PERSISTENT...; CHC_BUG for anything else. */
int zk__mode(enum zk_mode m);

#endif

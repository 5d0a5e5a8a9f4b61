/* taskstore.h — the task description in ZooKeeper: upload and fetch.
 *
 * <task-path>/description holds the task XML, byte for byte as uploaded.
 */
#ifndef CHC_TASKSTORE_H
#define CHC_TASKSTORE_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct cfg_task;
struct zk_session;

enum taskstore_upload_result {
    TASKSTORE_CREATED,   /* there was none */
    TASKSTORE_SAME,      /* identical description already there */
    TASKSTORE_REPLACED,  /* different one overwritten (force) */
    TASKSTORE_KEPT,      /* different one kept (no force) */
};

/* Create <task_path>/description (and ancestors) from text. Without force an
 * existing different description is kept (*ret tells). */
int taskstore_upload(struct zk_session *zs, const char *task_path, const char *text,
                     size_t len, int force, enum taskstore_upload_result *ret,
                     struct chc_err *err);

/* Fetch and parse the description; CHC_ECONFIG if missing or invalid, with
 * "no task description at ...; upload it with --task-file". */
int taskstore_fetch(struct zk_session *zs, const char *task_path, struct cfg_task **ret,
                    int *ret_version, struct chc_err *err);

#endif

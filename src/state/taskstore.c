/* taskstore.c — uploads and fetches <task-path>/description. Knows nothing
 * of the XML beyond handing it to task.c; never logs. Every fetched task's
 * passwords join the process-wide secrets (secrets.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/task.h"
#include "chcopier/state/layout.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/zk/zk.h"

#include "base/banned.h"

int taskstore_upload(struct zk_session *zs, const char *task_path, const char *text,
                     size_t len, int force, enum taskstore_upload_result *ret,
                     struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_buf cur = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = st_path_task(task_path, ST_DESCRIPTION, NULL, &path);
    if (r < 0)
        goto oom;
    /* The task path and what is below it are ours (closed with an
     * identity); the nodes above it may be shared. */
    r = zk_create_ancestors(zs, task_path, err);
    if (r == 0)
        r = zk_create_parents(zs, task_path, err);
    if (r < 0)
        goto out;
    r = zk_create(zs, path.buf, text, len, ZK_PERSISTENT, NULL, err);
    if (r == 0) {
        *ret = TASKSTORE_CREATED;
        goto out;
    }
    if (r != CHC_EZK_NODEEXISTS)
        goto out;
    r = zk_get(zs, path.buf, &cur, &st, err);
    if (r < 0)
        goto out;
    if (cur.len == len && !memcmp(cur.buf, text, len)) {
        *ret = TASKSTORE_SAME;
        goto out;
    }
    if (!force) {
        *ret = TASKSTORE_KEPT;
        goto out;
    }
    r = zk_set(zs, path.buf, text, len, st.version, NULL, err);
    if (r == 0)
        *ret = TASKSTORE_REPLACED;
    goto out;
oom:
    r = chc_err_set(err, r, "out of memory");
out:
    chc_buf_release(&path);
    chc_buf_release(&cur);
    return r;
}

int taskstore_fetch(struct zk_session *zs, const char *task_path, struct cfg_task **ret,
                    int *ret_version, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_buf text = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = st_path_task(task_path, ST_DESCRIPTION, NULL, &path);
    if (r < 0) {
        r = chc_err_set(err, r, "out of memory");
        goto out;
    }
    r = zk_get(zs, path.buf, &text, &st, err);
    if (r == CHC_EZK_NONODE) {
        r = chc_err_set(err, CHC_ECONFIG, "no task description at %s; upload it with --task-file",
                        path.buf);
        goto out;
    }
    if (r < 0)
        goto out;
    r = cfg_task_parse(text.buf, text.len, path.buf, ret, err);
    /* From now on no log line or message shows a password of the task. */
    if (r == 0 && cfg_task_hide_passwords(*ret) < 0) {
        *ret = cfg_task_free(*ret);
        r = chc_err_set(err, -ENOMEM, "out of memory");
    }
    if (r == 0 && ret_version)
        *ret_version = st.version;
out:
    chc_buf_release(&path);
    chc_buf_release(&text);
    return r;
}

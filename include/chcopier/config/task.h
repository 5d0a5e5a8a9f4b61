/* task.h — a clickhouse-copier task description's XML -> struct cfg_task.
 *
 * The task XML (root <clickhouse> or <yandex>) is parsed and validated in one
 * call into the structs of taskdesc.h; nothing here touches the network.
 * Every error names the file (or ZooKeeper node) and the element, and says
 * what to do.
 *
 * HTTP ports: chcopier talks to ClickHouse over HTTP. A <replica> may give
 * <http_port>; without it the native port maps as 9000 -> 8123 and
 * 9440 (secure) -> 8443; any other native port needs <http_port>.
 */
#ifndef CHC_TASK_H
#define CHC_TASK_H

#include <stddef.h>

#include "chcopier/base/err.h"
#include "chcopier/config/taskdesc.h"

/* Parse and validate a task description; `source` names it in errors. */
int cfg_task_parse(const char *xml, size_t len, const char *source, struct cfg_task **ret,
                   struct chc_err *err);
/* Read path (at most 16 MiB) and parse it; *ret_text (if not NULL) gets the
 * text as read (caller frees). */
int cfg_task_load_file(const char *path, struct cfg_task **ret, char **ret_text,
                       struct chc_err *err);

#endif

/* zkconf.h — zookeeper.xml (ClickHouse's <zookeeper> section) as a struct.
 *
 * The file given with --config: the ZooKeeper nodes, session timeout, chroot
 * and digest identity the copier's session uses (zk/zk.h), and the
 * <logger> level and path. Root <clickhouse>/<yandex> with a <zookeeper>
 * (or <keeper>) child, or <zookeeper> itself. Errors name the file and the
 * element, and say what to do.
 */
#ifndef CHC_ZKCONF_H
#define CHC_ZKCONF_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct cfg_zk {
    char *hosts; /* "h1:p1,h2:p2" for zookeeper_init */
    int session_timeout_ms;
    char *root;     /* chroot, NULL if none */
    char *identity; /* "user:password" for digest auth, NULL if none */
    char *log_level;
    char *log_path;
};

int cfg_zk_parse(const char *xml, size_t len, const char *source, struct cfg_zk **ret,
                 struct chc_err *err);
int cfg_zk_load_file(const char *path, struct cfg_zk **ret, struct chc_err *err);
struct cfg_zk *cfg_zk_free(struct cfg_zk *z);

#endif

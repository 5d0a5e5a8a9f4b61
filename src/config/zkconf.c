/* zkconf.c — zookeeper.xml -> struct cfg_zk (zkconf.h).
 *
 * Owns the reading of ClickHouse's <zookeeper> (or <keeper>) section as the
 * copier needs it: the node list as one "host:port,..." string, the session
 * timeout, the chroot, the digest identity (wiped when freed) and <logger>.
 * The document is freed before returning; it never logs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/file.h"
#include "chcopier/config/zkconf.h"
#include "config/xmlcfg.h"

#include "base/banned.h"

struct cfg_zk *cfg_zk_free(struct cfg_zk *z)
{
    if (!z)
        return NULL;
    free(z->hosts);
    free(z->root);
    if (z->identity) {
        explicit_bzero(z->identity, strlen(z->identity));
        free(z->identity);
    }
    free(z->log_level);
    free(z->log_path);
    free(z);
    return NULL;
}

int cfg_zk_parse(const char *xml, size_t len, const char *source, struct cfg_zk **ret,
                 struct chc_err *err)
{
    struct cfg_ctx c = {.source = source, .err = err};
    struct chc_buf hosts = CHC_BUF_INIT;
    struct cfg_zk *z = NULL;
    const xmlNode *root, *zk, *n, *lg;
    xmlDoc *doc = NULL;
    long long v;
    int r;

    r = cfg__parse_doc(&c, xml, len, &doc);
    if (r < 0)
        return r;
    z = calloc(1, sizeof(*z));
    if (!z) {
        r = cfg__ctx_oom(&c);
        goto fail;
    }
    root = xmlDocGetRootElement(doc);
    zk = cfg__name_is(root, "zookeeper") ? root : cfg__child(root, "zookeeper");
    if (!zk)
        zk = cfg__child(root, "keeper");
    if (!zk) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "%s: no <zookeeper> element: give <zookeeper><node><host>..</host>"
                        "<port>..</port></node></zookeeper>",
                        source);
        goto fail;
    }
    for (n = zk->children; n; n = n->next) {
        char *host = NULL;
        if (!cfg__name_starts(n, "node"))
            continue;
        r = cfg__get_required(&c, n, "zookeeper/node", "host", &host);
        if (r < 0)
            goto fail;
        r = cfg__get_ll(&c, n, "zookeeper/node", "port", 1, 65535, 2181, &v);
        if (r == 0)
            r = chc_buf_addf(&hosts, "%s%s:%lld", hosts.len ? "," : "", host, v);
        free(host);
        if (r < 0)
            goto fail;
    }
    if (hosts.len == 0) {
        r = chc_err_set(err, CHC_ECONFIG, "%s: <zookeeper> has no <node> with a <host>", source);
        goto fail;
    }
    z->hosts = chc_buf_take(&hosts, NULL);
    r = cfg__get_ll(&c, zk, "zookeeper", "session_timeout_ms", 1000, 3600000, 30000, &v);
    if (r < 0)
        goto fail;
    z->session_timeout_ms = (int)v;
    r = cfg__get_str(&c, zk, "root", &z->root);
    if (r == 0)
        r = cfg__get_str(&c, zk, "identity", &z->identity);
    if (r < 0)
        goto fail;
    if (z->root && (!*z->root || !strcmp(z->root, "/"))) {
        free(z->root);
        z->root = NULL;
    } else if (z->root && z->root[0] != '/') {
        r = chc_err_set(err, CHC_ECONFIG, "%s: <zookeeper/root> must start with '/', got '%s'",
                        source, z->root);
        goto fail;
    }
    if (z->identity && (!*z->identity || !strchr(z->identity, ':'))) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "%s: <zookeeper/identity> must be 'user:password'", source);
        goto fail;
    }
    lg = cfg__child(root, "logger");
    if (lg) {
        r = cfg__get_str(&c, lg, "level", &z->log_level);
        if (r == 0)
            r = cfg__get_str(&c, lg, "log", &z->log_path);
        if (r < 0)
            goto fail;
    }
    xmlFreeDoc(doc);
    *ret = z;
    return 0;
fail:
    chc_buf_release(&hosts);
    xmlFreeDoc(doc);
    cfg_zk_free(z);
    return r;
}

int cfg_zk_load_file(const char *path, struct cfg_zk **ret, struct chc_err *err)
{
    char *text = NULL;
    size_t len;
    int r;

    r = chc_read_file(path, CFG_XML_MAX, &text, &len, err);
    if (r < 0)
        return r;
    r = cfg_zk_parse(text, len, path, ret, err);
    free(text);
    return r;
}

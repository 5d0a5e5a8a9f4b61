/* task.c — a task description's XML -> struct cfg_task (task.h).
 *
 * Owns the document's top level and its <remote_servers> and <settings*>
 * sections; <tables> is tablexml.c's. Every value is copied out of the
 * xmlDoc into the structs of taskdesc.h and the document is freed before
 * returning. Everything that can be checked without a network (required
 * elements, cluster names, numbers, the engine clause, duplicates) is, so a
 * bad task fails before any side effect. It never logs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/file.h"
#include "chcopier/config/task.h"
#include "config/tablexml.h"
#include "config/xmlcfg.h"

#include "base/banned.h"

/* ------------------------------------------------------------------------ */
/* remote_servers                                                           */
/* ------------------------------------------------------------------------ */

/* Host names go into URLs and into remote('host:port', ...). */
static int is_host_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(".-_:[]", *s))
            return 0;
    return 1;
}

static int parse_replica(struct cfg_ctx *c, const xmlNode *n, const char *path,
                         struct cfg_replica *rep)
{
    long long v;
    int r;

    memset(rep, 0, sizeof(*rep));
    r = cfg__get_required(c, n, path, "host", &rep->host);
    if (r < 0)
        return r;
    if (!is_host_name(rep->host))
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <%s/host> '%s' is not a host name or address (letters, digits, "
                           "'.', '-', '_', ':' and [ ] for IPv6 only)",
                           c->source, path, rep->host);
    r = cfg__get_ll(c, n, path, "port", 1, 65535, 9000, &v);
    if (r < 0)
        return r;
    rep->port = (int)v;
    r = cfg__get_bool(c, n, path, "secure", 0, &rep->secure);
    if (r < 0)
        return r;
    r = cfg__get_ll(c, n, path, "priority", 0, 1000000, 1, &v);
    if (r < 0)
        return r;
    rep->priority = (int)v;
    if (cfg__child(n, "http_port")) {
        r = cfg__get_ll(c, n, path, "http_port", 1, 65535, 0, &v);
        if (r < 0)
            return r;
        rep->http_port = (int)v;
    } else if (rep->port == 9000) {
        rep->http_port = 8123;
    } else if (rep->port == 9440) {
        rep->http_port = 8443;
    } else {
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <%s>: native port %d has no known HTTP port; add "
                           "<http_port> to the replica (9000 maps to 8123, 9440 to 8443)",
                           c->source, path, rep->port);
    }
    r = cfg__get_str(c, n, "user", &rep->user);
    if (r < 0)
        return r;
    r = cfg__get_str(c, n, "password", &rep->password);
    if (r < 0)
        return r;
    return 0;
}

/* How a cluster gives a shard: <shard> with <replica> children, or a bare
 * <node> that is a shard with one replica. */
enum shard_form {
    SHARD_OF_REPLICAS,
    SHARD_NODE,
};

static int parse_shard(struct cfg_ctx *c, const xmlNode *n, const char *path,
                       enum shard_form form, struct cfg_shard *sh)
{
    struct chc_buf p = CHC_BUF_INIT;
    const xmlNode *rn;
    long long v;
    size_t cap = 0;
    int r;

    r = cfg__get_ll(c, n, path, "weight", 0, 1000000, 1, &v);
    if (r < 0)
        return r;
    sh->weight = (int)v;
    r = cfg__get_bool(c, n, path, "internal_replication", 0, &sh->internal_replication);
    if (r < 0)
        return r;
    if (form == SHARD_NODE) {
        /* <node> directly under a cluster: a shard with one replica. */
        sh->replicas = calloc(1, sizeof(*sh->replicas));
        if (!sh->replicas)
            return cfg__ctx_oom(c);
        sh->n_replicas = 1;
        return parse_replica(c, n, path, &sh->replicas[0]);
    }
    for (rn = n->children; rn; rn = rn->next) {
        if (!cfg__name_starts(rn, "replica"))
            continue;
        if (sh->n_replicas == cap) {
            size_t ncap = cap ? cap * 2 : 2;
            struct cfg_replica *nr = realloc(sh->replicas, ncap * sizeof(*nr));
            if (!nr)
                return cfg__ctx_oom(c);
            sh->replicas = nr;
            cap = ncap;
        }
        chc_buf_reset(&p);
        r = chc_buf_addf(&p, "%s/%s", path, (const char *)rn->name);
        if (r < 0) {
            chc_buf_release(&p);
            return cfg__ctx_oom(c);
        }
        memset(&sh->replicas[sh->n_replicas], 0, sizeof(sh->replicas[0]));
        sh->n_replicas++;
        r = parse_replica(c, rn, p.buf, &sh->replicas[sh->n_replicas - 1]);
        if (r < 0) {
            chc_buf_release(&p);
            return r;
        }
    }
    chc_buf_release(&p);
    if (sh->n_replicas == 0)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <%s> has no <replica>", c->source, path);
    return 0;
}

static int parse_cluster(struct cfg_ctx *c, const xmlNode *n, struct cfg_cluster *cl)
{
    struct chc_buf p = CHC_BUF_INIT;
    const xmlNode *sn;
    size_t cap = 0;
    int r = 0;

    cl->name = chc_strdup((const char *)n->name);
    if (!cl->name)
        return cfg__ctx_oom(c);
    for (sn = n->children; sn; sn = sn->next) {
        enum shard_form form = cfg__name_starts(sn, "node") ? SHARD_NODE : SHARD_OF_REPLICAS;
        if (form == SHARD_OF_REPLICAS && !cfg__name_starts(sn, "shard"))
            continue;
        if (cl->n_shards == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct cfg_shard *ns = realloc(cl->shards, ncap * sizeof(*ns));
            if (!ns) {
                r = cfg__ctx_oom(c);
                goto out;
            }
            cl->shards = ns;
            cap = ncap;
        }
        memset(&cl->shards[cl->n_shards], 0, sizeof(cl->shards[0]));
        cl->shards[cl->n_shards].num = (int)cl->n_shards + 1;
        cl->n_shards++;
        chc_buf_reset(&p);
        r = chc_buf_addf(&p, "remote_servers/%s/%s", cl->name, (const char *)sn->name);
        if (r < 0) {
            r = cfg__ctx_oom(c);
            goto out;
        }
        r = parse_shard(c, sn, p.buf, form, &cl->shards[cl->n_shards - 1]);
        if (r < 0)
            goto out;
    }
    if (cl->n_shards == 0)
        r = chc_err_set(c->err, CHC_ECONFIG,
                        "%s: <remote_servers/%s> has no <shard> or <node>", c->source, cl->name);
out:
    chc_buf_release(&p);
    return r;
}

static int parse_remote_servers(struct cfg_ctx *c, const xmlNode *rs, struct cfg_task *t)
{
    const xmlNode *n;
    size_t cap = 0, i;
    int r;

    for (n = rs->children; n; n = n->next) {
        if (!cfg__is_elem(n))
            continue;
        for (i = 0; i < t->n_clusters; i++)
            if (!strcmp(t->clusters[i].name, (const char *)n->name))
                return chc_err_set(c->err, CHC_ECONFIG,
                                   "%s: <remote_servers/%s> is defined twice", c->source,
                                   (const char *)n->name);
        if (t->n_clusters == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct cfg_cluster *nc = realloc(t->clusters, ncap * sizeof(*nc));
            if (!nc)
                return cfg__ctx_oom(c);
            t->clusters = nc;
            cap = ncap;
        }
        memset(&t->clusters[t->n_clusters], 0, sizeof(t->clusters[0]));
        t->n_clusters++;
        r = parse_cluster(c, n, &t->clusters[t->n_clusters - 1]);
        if (r < 0)
            return r;
    }
    if (t->n_clusters == 0)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <remote_servers> defines no cluster",
                           c->source);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* settings                                                                 */
/* ------------------------------------------------------------------------ */

/* Setting names go into SQL (a SETTINGS clause) and URLs. */
static int is_setting_name(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static int parse_settings(struct cfg_ctx *c, const xmlNode *root, const char *name,
                          struct cfg_settings *s)
{
    const xmlNode *sn = cfg__child(root, name), *n;
    size_t cap = 0;

    if (!sn)
        return 0;
    for (n = sn->children; n; n = n->next) {
        struct cfg_setting *it;
        if (!cfg__is_elem(n))
            continue;
        if (cfg__has_element_children(n))
            return chc_err_set(c->err, CHC_ECONFIG,
                               "%s: <%s/%s> must be a plain value, not nested elements",
                               c->source, name, (const char *)n->name);
        if (!is_setting_name((const char *)n->name))
            return chc_err_set(c->err, CHC_ECONFIG,
                               "%s: <%s/%s> is not a ClickHouse setting name (letters, digits "
                               "and _ only)",
                               c->source, name, (const char *)n->name);
        if (s->n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct cfg_setting *ni = realloc(s->items, ncap * sizeof(*ni));
            if (!ni)
                return cfg__ctx_oom(c);
            s->items = ni;
            cap = ncap;
        }
        it = &s->items[s->n];
        it->name = chc_strdup((const char *)n->name);
        it->value = cfg__text_of(n);
        s->n++;
        if (!it->name || !it->value)
            return cfg__ctx_oom(c);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* task                                                                     */
/* ------------------------------------------------------------------------ */

static int check_root(struct cfg_ctx *c, const xmlNode *root)
{
    if (!root || (!cfg__name_is(root, "clickhouse") && !cfg__name_is(root, "yandex")))
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: root element must be <clickhouse> or <yandex>, got <%s>",
                           c->source, root ? (const char *)root->name : "");
    return 0;
}

int cfg_task_parse(const char *xml, size_t len, const char *source, struct cfg_task **ret,
                   struct chc_err *err)
{
    struct cfg_ctx c = {.source = source, .err = err};
    struct cfg_task *t = NULL;
    const xmlNode *root, *rs;
    xmlDoc *doc = NULL;
    long long v;
    size_t i;
    int r;

    r = cfg__parse_doc(&c, xml, len, &doc);
    if (r < 0)
        return r;
    t = calloc(1, sizeof(*t));
    if (!t) {
        r = cfg__ctx_oom(&c);
        goto fail;
    }
    root = xmlDocGetRootElement(doc);
    r = check_root(&c, root);
    if (r < 0)
        goto fail;
    rs = cfg__child(root, "remote_servers");
    if (!rs) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "%s: <remote_servers> is required: list the source and destination "
                        "clusters",
                        source);
        goto fail;
    }
    r = parse_remote_servers(&c, rs, t);
    if (r < 0)
        goto fail;
    if (!cfg__child(root, "max_workers")) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "%s: <max_workers> is required: how many pieces may be copied at once "
                        "across all workers",
                        source);
        goto fail;
    }
    r = cfg__get_ll(&c, root, "", "max_workers", 1, 100000, 1, &v);
    if (r < 0) {
        chc_err_set(err, CHC_ECONFIG, "%s: <max_workers> must be an integer in [1, 100000]",
                    source);
        goto fail;
    }
    t->max_workers = (unsigned)v;
    r = parse_settings(&c, root, "settings", &t->settings);
    if (r == 0)
        r = parse_settings(&c, root, "settings_pull", &t->settings_pull);
    if (r == 0)
        r = parse_settings(&c, root, "settings_push", &t->settings_push);
    if (r < 0)
        goto fail;
    r = cfg__tables_parse(&c, root, t);
    if (r < 0)
        goto fail;
    for (i = 0; i < t->n_tables; i++) {
        const struct cfg_table *tb = &t->tables[i];
        if (cfg_cluster_total_weight(tb->push) == 0) {
            r = chc_err_set(err, CHC_ECONFIG,
                            "%s: <remote_servers/%s>: total shard weight is 0; give at least "
                            "one shard a positive <weight>",
                            source, tb->cluster_push);
            goto fail;
        }
    }
    xmlFreeDoc(doc);
    *ret = t;
    return 0;
fail:
    xmlFreeDoc(doc);
    cfg_task_free(t);
    return r;
}

int cfg_task_load_file(const char *path, struct cfg_task **ret, char **ret_text,
                       struct chc_err *err)
{
    struct cfg_task *t = NULL;
    char *text = NULL;
    size_t len;
    int r;

    r = chc_read_file(path, CFG_XML_MAX, &text, &len, err);
    if (r < 0)
        return r;
    r = cfg_task_parse(text, len, path, &t, err);
    if (r < 0) {
        free(text);
        return r;
    }
    *ret = t;
    if (ret_text)
        *ret_text = text;
    else
        free(text);
    return 0;
}

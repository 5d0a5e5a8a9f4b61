/* task.c — task description XML and zookeeper.xml -> plain structs.
 *
 * The only file that includes libxml2. It copies every value out of the
 * xmlDoc into struct cfg_* and frees the document before returning. It
 * validates everything that can be checked without a network (required
 * elements, cluster names, numbers, the engine clause, duplicates) so that a
 * bad task fails before any side effect. It never logs.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/base/strmap.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/task.h"

#include "base/banned.h"

#define TASK_FILE_MAX (16u << 20)

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static int is_elem(const xmlNode *n)
{
    return n && n->type == XML_ELEMENT_NODE;
}

static int name_is(const xmlNode *n, const char *name)
{
    return is_elem(n) && !strcmp((const char *)n->name, name);
}

/* ClickHouse's config reads repeated keys as "shard", "shard[1]"... and
 * matches them by prefix; so do we. */
static int name_starts(const xmlNode *n, const char *prefix)
{
    return is_elem(n) && !strncmp((const char *)n->name, prefix, strlen(prefix));
}

static xmlNode *child(const xmlNode *parent, const char *name)
{
    xmlNode *c;

    for (c = parent ? parent->children : NULL; c; c = c->next)
        if (name_is(c, name))
            return c;
    return NULL;
}

static int has_element_children(const xmlNode *n)
{
    const xmlNode *c;

    for (c = n->children; c; c = c->next)
        if (is_elem(c))
            return 1;
    return 0;
}

/* Trimmed text content of a node; NULL on ENOMEM. */
static char *text_of(const xmlNode *n)
{
    xmlChar *x = xmlNodeGetContent(n);
    const char *s, *e;
    char *r;

    if (!x)
        return chc_strdup("");
    s = (const char *)x;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    r = chc_strndup(s, (size_t)(e - s));
    xmlFree(x);
    return r;
}

struct ctx {
    const char *source;
    struct chc_err *err;
};

static int oom(struct ctx *c)
{
    return chc_err_set(c->err, -ENOMEM, "%s: out of memory", c->source);
}

/* Optional string element: *ret = NULL if absent. */
static int get_str(struct ctx *c, const xmlNode *parent, const char *name, char **ret)
{
    const xmlNode *n = child(parent, name);

    *ret = NULL;
    if (!n)
        return 0;
    *ret = text_of(n);
    return *ret ? 0 : oom(c);
}

static int get_required(struct ctx *c, const xmlNode *parent, const char *path,
                        const char *name, char **ret)
{
    int r;

    r = get_str(c, parent, name, ret);
    if (r < 0)
        return r;
    if (!*ret || !**ret) {
        free(*ret);
        *ret = NULL;
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/%s> is required and missing or empty",
                           c->source, path, name);
    }
    return 0;
}

static int get_ll(struct ctx *c, const xmlNode *parent, const char *path, const char *name,
                  long long min, long long max, long long def, long long *ret)
{
    char *s = NULL;
    int r;

    r = get_str(c, parent, name, &s);
    if (r < 0)
        return r;
    if (!s) {
        *ret = def;
        return 0;
    }
    r = chc_parse_ll(s, min, max, ret);
    if (r < 0)
        chc_err_set(c->err, CHC_ECONFIG,
                    "%s: <%s/%s> must be an integer in [%lld, %lld], got '%s'", c->source, path,
                    name, min, max, s);
    free(s);
    return r < 0 ? CHC_ECONFIG : 0;
}

static int get_bool(struct ctx *c, const xmlNode *parent, const char *path, const char *name,
                    int def, int *ret)
{
    char *s = NULL;
    int r;

    r = get_str(c, parent, name, &s);
    if (r < 0)
        return r;
    if (!s || !*s) {
        *ret = def;
        free(s);
        return 0;
    }
    r = chc_parse_bool(s, ret);
    if (r < 0)
        chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/%s> must be true/false or 1/0, got '%s'",
                    c->source, path, name, s);
    free(s);
    return r < 0 ? CHC_ECONFIG : 0;
}

/* Parse XML with libxml2 quietly; errors carry the line number. */
static int parse_doc(struct ctx *c, const char *xml, size_t len, xmlDoc **ret)
{
    const xmlError *e;
    xmlDoc *doc;

    if (len > TASK_FILE_MAX)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: document too large", c->source);
    if (len == 0 || strspn(xml, " \t\r\n") == len)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: empty document", c->source);
    xmlResetLastError();
    doc = xmlReadMemory(xml, (int)len, c->source, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                            XML_PARSE_NOBLANKS);
    if (!doc) {
        char msg[512] = "malformed XML";
        e = xmlGetLastError();
        if (e && e->message) {
            size_t n;
            snprintf(msg, sizeof(msg), "%s", e->message);
            n = strlen(msg);
            while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        }
        return chc_err_set(c->err, CHC_ECONFIG, "%s:%d: malformed XML: %s", c->source,
                           e ? e->line : 0, msg);
    }
    *ret = doc;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* remote_servers                                                           */
/* ------------------------------------------------------------------------ */

static void replica_release(struct cfg_replica *r)
{
    free(r->host);
    free(r->user);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
}

static void cluster_release(struct cfg_cluster *cl)
{
    size_t i, j;

    for (i = 0; i < cl->n_shards; i++) {
        for (j = 0; j < cl->shards[i].n_replicas; j++)
            replica_release(&cl->shards[i].replicas[j]);
        free(cl->shards[i].replicas);
    }
    free(cl->shards);
    free(cl->name);
}

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

static int parse_replica(struct ctx *c, const xmlNode *n, const char *path,
                         struct cfg_replica *rep)
{
    long long v;
    int r;

    memset(rep, 0, sizeof(*rep));
    r = get_required(c, n, path, "host", &rep->host);
    if (r < 0)
        return r;
    if (!is_host_name(rep->host))
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <%s/host> '%s' is not a host name or address (letters, digits, "
                           "'.', '-', '_', ':' and [ ] for IPv6 only)",
                           c->source, path, rep->host);
    r = get_ll(c, n, path, "port", 1, 65535, 9000, &v);
    if (r < 0)
        return r;
    rep->port = (int)v;
    r = get_bool(c, n, path, "secure", 0, &rep->secure);
    if (r < 0)
        return r;
    r = get_ll(c, n, path, "priority", 0, 1000000, 1, &v);
    if (r < 0)
        return r;
    rep->priority = (int)v;
    if (child(n, "http_port")) {
        r = get_ll(c, n, path, "http_port", 1, 65535, 0, &v);
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
    r = get_str(c, n, "user", &rep->user);
    if (r < 0)
        return r;
    r = get_str(c, n, "password", &rep->password);
    if (r < 0)
        return r;
    return 0;
}

static int parse_shard(struct ctx *c, const xmlNode *n, const char *path, int is_node,
                       struct cfg_shard *sh)
{
    struct chc_buf p = CHC_BUF_INIT;
    const xmlNode *rn;
    long long v;
    size_t cap = 0;
    int r;

    r = get_ll(c, n, path, "weight", 0, 1000000, 1, &v);
    if (r < 0)
        return r;
    sh->weight = (int)v;
    r = get_bool(c, n, path, "internal_replication", 0, &sh->internal_replication);
    if (r < 0)
        return r;
    if (is_node) {
        /* <node> directly under a cluster: a shard with one replica. */
        sh->replicas = calloc(1, sizeof(*sh->replicas));
        if (!sh->replicas)
            return oom(c);
        sh->n_replicas = 1;
        return parse_replica(c, n, path, &sh->replicas[0]);
    }
    for (rn = n->children; rn; rn = rn->next) {
        if (!name_starts(rn, "replica"))
            continue;
        if (sh->n_replicas == cap) {
            size_t ncap = cap ? cap * 2 : 2;
            struct cfg_replica *nr = realloc(sh->replicas, ncap * sizeof(*nr));
            if (!nr)
                return oom(c);
            sh->replicas = nr;
            cap = ncap;
        }
        chc_buf_reset(&p);
        r = chc_buf_addf(&p, "%s/%s", path, (const char *)rn->name);
        if (r < 0) {
            chc_buf_release(&p);
            return oom(c);
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

static int parse_cluster(struct ctx *c, const xmlNode *n, struct cfg_cluster *cl)
{
    struct chc_buf p = CHC_BUF_INIT;
    const xmlNode *sn;
    size_t cap = 0;
    int r = 0;

    cl->name = chc_strdup((const char *)n->name);
    if (!cl->name)
        return oom(c);
    for (sn = n->children; sn; sn = sn->next) {
        int is_node = name_starts(sn, "node");
        if (!is_node && !name_starts(sn, "shard"))
            continue;
        if (cl->n_shards == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct cfg_shard *ns = realloc(cl->shards, ncap * sizeof(*ns));
            if (!ns) {
                r = oom(c);
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
            r = oom(c);
            goto out;
        }
        r = parse_shard(c, sn, p.buf, is_node, &cl->shards[cl->n_shards - 1]);
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

static int parse_remote_servers(struct ctx *c, const xmlNode *rs, struct cfg_task *t)
{
    const xmlNode *n;
    size_t cap = 0, i;
    int r;

    for (n = rs->children; n; n = n->next) {
        if (!is_elem(n))
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
                return oom(c);
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

static void settings_release(struct cfg_settings *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        free(s->items[i].name);
        free(s->items[i].value);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

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

static int parse_settings(struct ctx *c, const xmlNode *root, const char *name,
                          struct cfg_settings *s)
{
    const xmlNode *sn = child(root, name), *n;
    size_t cap = 0;

    if (!sn)
        return 0;
    for (n = sn->children; n; n = n->next) {
        struct cfg_setting *it;
        if (!is_elem(n))
            continue;
        if (has_element_children(n))
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
                return oom(c);
            s->items = ni;
            cap = ncap;
        }
        it = &s->items[s->n];
        it->name = chc_strdup((const char *)n->name);
        it->value = text_of(n);
        s->n++;
        if (!it->name || !it->value)
            return oom(c);
    }
    return 0;
}

const char *cfg_settings_get(const struct cfg_settings *s, const char *name)
{
    size_t i;

    for (i = s->n; i > 0; i--)
        if (!strcmp(s->items[i - 1].name, name))
            return s->items[i - 1].value;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* tables                                                                   */
/* ------------------------------------------------------------------------ */

static void table_release(struct cfg_table *tb)
{
    size_t i;

    free(tb->name);
    free(tb->cluster_pull);
    free(tb->database_pull);
    free(tb->table_pull);
    free(tb->cluster_push);
    free(tb->database_push);
    free(tb->table_push);
    free(tb->engine_text);
    engine_free(tb->engine);
    free(tb->sharding_key);
    free(tb->where_condition);
    for (i = 0; i < tb->n_enabled_partitions; i++)
        free(tb->enabled_partitions[i]);
    free(tb->enabled_partitions);
}

/* A partition literal as ClickHouse prints it (it goes into SQL as is, and
 * a line of the partition list in ZooKeeper): a number, a quoted string
 * (backslash escapes), or a tuple of those; no control characters. Returns
 * the length of the literal at s (0: not one). */
static size_t literal_len(const char *s, int depth)
{
    const char *p = s;

    if (depth > 16)
        return 0;
    if (*p == '\'') {
        for (p++; *p && *p != '\''; p++)
            if ((unsigned char)*p < ' ' || (*p == '\\' && !*++p))
                return 0;
        return *p ? (size_t)(p + 1 - s) : 0;
    }
    if (*p == '(' || !strncmp(p, "tuple(", 6)) {
        p += *p == '(' ? 1 : 6;
        while (*p == ' ')
            p++;
        while (*p && *p != ')') {
            size_t n = literal_len(p, depth + 1);
            if (!n)
                return 0;
            for (p += n; *p == ' '; p++)
                ;
            if (*p == ',')
                for (p++; *p == ' '; p++)
                    ;
            else if (*p != ')')
                return 0;
        }
        return *p ? (size_t)(p + 1 - s) : 0;
    }
    if (*p == '-' || *p == '+')
        p++;
    while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' ||
           ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')))
        p++;
    return p > s && isdigit((unsigned char)p[-1]) ? (size_t)(p - s) : 0;
}

static int push_partition(struct ctx *c, struct cfg_table *tb, const char *s, size_t n,
                          size_t *cap)
{
    char *lit = chc_strndup(s, n);
    size_t len = lit ? literal_len(lit, 0) : 0;

    if (!lit)
        return oom(c);
    if (len != n) {
        int r = chc_err_set(c->err, CHC_ECONFIG,
                            "%s: <tables/%s/enabled_partitions>: '%s' is not a partition "
                            "literal as ClickHouse prints it (201801, '2018-01-01', "
                            "(1, 'a'))",
                            c->source, tb->name, lit);
        free(lit);
        return r;
    }
    free(lit);
    if (tb->n_enabled_partitions == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char **np = realloc(tb->enabled_partitions, ncap * sizeof(*np));
        if (!np)
            return oom(c);
        tb->enabled_partitions = np;
        *cap = ncap;
    }
    tb->enabled_partitions[tb->n_enabled_partitions] = chc_strndup(s, n);
    if (!tb->enabled_partitions[tb->n_enabled_partitions])
        return oom(c);
    tb->n_enabled_partitions++;
    return 0;
}

/* Both forms: <partition>..</partition> children, or one whitespace-separated
 * string. Quoted values may contain spaces in the children form only. */
static int parse_enabled_partitions(struct ctx *c, const xmlNode *tn, struct cfg_table *tb)
{
    const xmlNode *ep = child(tn, "enabled_partitions"), *n;
    struct chc_strmap seen = CHC_STRMAP_INIT;
    size_t cap = 0, i, j;
    char *text;
    int r = 0;

    if (!ep)
        return 0;
    tb->has_enabled_partitions = 1;
    if (has_element_children(ep)) {
        for (n = ep->children; n; n = n->next) {
            if (!is_elem(n))
                continue;
            if (!name_starts(n, "partition"))
                return chc_err_set(c->err, CHC_ECONFIG,
                                   "%s: <tables/%s/enabled_partitions/%s>: children must be "
                                   "<partition> elements",
                                   c->source, tb->name, (const char *)n->name);
            text = text_of(n);
            if (!text)
                return oom(c);
            if (!*text)
                r = chc_err_set(c->err, CHC_ECONFIG,
                                "%s: <tables/%s/enabled_partitions>: empty <partition>",
                                c->source, tb->name);
            else
                r = push_partition(c, tb, text, strlen(text), &cap);
            free(text);
            if (r < 0)
                return r;
        }
    } else {
        text = text_of(ep);
        if (!text)
            return oom(c);
        for (i = 0; text[i] && r == 0;) {
            while (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')
                i++;
            if (!text[i])
                break;
            j = i;
            while (text[j] && text[j] != ' ' && text[j] != '\t' && text[j] != '\n' &&
                   text[j] != '\r')
                j++;
            r = push_partition(c, tb, text + i, j - i, &cap);
            i = j;
        }
        free(text);
        if (r < 0)
            return r;
    }
    for (i = 0, r = 0; r == 0 && i < tb->n_enabled_partitions; i++) {
        r = chc_strmap_put(&seen, tb->enabled_partitions[i], i, NULL);
        if (r == 1)
            r = chc_err_set(c->err, CHC_ECONFIG,
                            "%s: <tables/%s/enabled_partitions>: partition %s is listed twice",
                            c->source, tb->name, tb->enabled_partitions[i]);
        else if (r < 0)
            r = oom(c);
    }
    chc_strmap_release(&seen);
    return r;
}

static int hash_str(uint64_t *h, const char *s)
{
    static const char zero = 0;

    if (s)
        *h = chc_hash64(*h, s, strlen(s));
    *h = chc_hash64(*h, &zero, 1);
    return 0;
}

static void table_hash(struct cfg_table *tb)
{
    uint64_t h = CHC_HASH64_INIT;
    char num[32];
    size_t i;

    hash_str(&h, tb->cluster_pull);
    hash_str(&h, tb->database_pull);
    hash_str(&h, tb->table_pull);
    hash_str(&h, tb->cluster_push);
    hash_str(&h, tb->database_push);
    hash_str(&h, tb->table_push);
    hash_str(&h, tb->engine_text);
    hash_str(&h, tb->sharding_key);
    hash_str(&h, tb->where_condition);
    snprintf(num, sizeof(num), "%u/%d/%d/%d", tb->number_of_splits,
             tb->allow_alias_materialized, tb->allow_drop_target_partitions,
             tb->has_enabled_partitions);
    hash_str(&h, num);
    for (i = 0; i < tb->n_enabled_partitions; i++)
        hash_str(&h, tb->enabled_partitions[i]);
    tb->def_hash = h;
    snprintf(tb->def_hash_hex, sizeof(tb->def_hash_hex), "%016llx", (unsigned long long)h);
}

static int resolve_cluster(struct ctx *c, const struct cfg_task *t, const char *path,
                           const char *elem, const char *name, const struct cfg_cluster **ret)
{
    *ret = cfg_task_cluster(t, name);
    if (!*ret)
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <%s/%s>: unknown cluster '%s'; define it in <remote_servers>",
                           c->source, path, elem, name);
    return 0;
}

/* A required element whose error says what to put there. */
static int get_required_hint(struct ctx *c, const xmlNode *parent, const char *path,
                             const char *name, const char *hint, char **ret)
{
    int r = get_str(c, parent, name, ret);

    if (r < 0)
        return r;
    if (!*ret || !**ret) {
        free(*ret);
        *ret = NULL;
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/%s> is required: %s", c->source, path,
                           name, hint);
    }
    return 0;
}

static int parse_table(struct ctx *c, const struct cfg_task *t, const xmlNode *tn,
                       struct cfg_table *tb)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_err eerr = CHC_ERR_INIT;
    long long v;
    int r;

    tb->name = chc_strdup((const char *)tn->name);
    if (!tb->name)
        return oom(c);
    r = chc_buf_addf(&path, "tables/%s", tb->name);
    if (r < 0)
        return oom(c);
#define REQ(field)                                                                   \
    do {                                                                             \
        r = get_required(c, tn, path.buf, #field, &tb->field);                       \
        if (r < 0)                                                                   \
            goto out;                                                                \
    } while (0)
    REQ(cluster_pull);
    REQ(database_pull);
    REQ(table_pull);
    REQ(cluster_push);
    REQ(database_push);
    REQ(table_push);
#undef REQ
    r = resolve_cluster(c, t, path.buf, "cluster_pull", tb->cluster_pull, &tb->pull);
    if (r == 0)
        r = resolve_cluster(c, t, path.buf, "cluster_push", tb->cluster_push, &tb->push);
    if (r == 0)
        r = get_required_hint(c, tn, path.buf, "engine",
                              "give the destination engine, e.g. ENGINE = MergeTree() "
                              "PARTITION BY ... ORDER BY ...",
                              &tb->engine_text);
    if (r < 0)
        goto out;
    r = engine_parse(tb->engine_text, &tb->engine, &eerr);
    if (r < 0) {
        r = chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/engine>: %s", c->source, path.buf,
                        eerr.msg);
        goto out;
    }
    r = get_required_hint(c, tn, path.buf, "sharding_key",
                          "an expression such as rand() or cityHash64(id) that picks the "
                          "destination shard",
                          &tb->sharding_key);
    if (r < 0)
        goto out;
    r = get_str(c, tn, "where_condition", &tb->where_condition);
    if (r < 0)
        goto out;
    if (tb->where_condition && !*tb->where_condition) {
        free(tb->where_condition);
        tb->where_condition = NULL;
    }
    r = get_ll(c, tn, path.buf, "number_of_splits", 1, CFG_SPLITS_MAX, CFG_SPLITS_DEFAULT, &v);
    if (r < 0)
        goto out;
    tb->number_of_splits = (unsigned)v;
    r = get_bool(c, tn, path.buf, "allow_to_copy_alias_and_materialized_columns", 0,
                 &tb->allow_alias_materialized);
    if (r < 0)
        goto out;
    r = get_bool(c, tn, path.buf, "allow_to_drop_target_partitions", 0,
                 &tb->allow_drop_target_partitions);
    if (r < 0)
        goto out;
    r = parse_enabled_partitions(c, tn, tb);
    if (r < 0)
        goto out;
    {
        char *dp = NULL;
        r = get_str(c, tn, "data_path", &dp);
        if (r == 0 && dp && *dp && strcmp(dp, "pull") && strcmp(dp, "pipe"))
            r = chc_err_set(c->err, CHC_ECONFIG,
                            "%s: <%s/data_path> must be pull or pipe, got '%s'", c->source,
                            path.buf, dp);
        if (r == 0 && dp && !strcmp(dp, "pipe"))
            tb->data_path = CFG_PATH_PIPE;
        free(dp);
        if (r < 0)
            goto out;
    }
    table_hash(tb);
out:
    chc_buf_release(&path);
    return r;
}

static int parse_tables(struct ctx *c, const xmlNode *root, struct cfg_task *t)
{
    const xmlNode *ts = child(root, "tables"), *n;
    size_t cap = 0, i;
    int r;

    if (!ts)
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <tables> is required: list at least one table task", c->source);
    for (n = ts->children; n; n = n->next) {
        if (!is_elem(n))
            continue;
        for (i = 0; i < t->n_tables; i++)
            if (!strcmp(t->tables[i].name, (const char *)n->name))
                return chc_err_set(c->err, CHC_ECONFIG,
                                   "%s: <tables/%s> is defined twice; give each table task "
                                   "a unique element name",
                                   c->source, (const char *)n->name);
        if (t->n_tables == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct cfg_table *nt = realloc(t->tables, ncap * sizeof(*nt));
            if (!nt)
                return oom(c);
            t->tables = nt;
            cap = ncap;
        }
        memset(&t->tables[t->n_tables], 0, sizeof(t->tables[0]));
        t->n_tables++;
        r = parse_table(c, t, n, &t->tables[t->n_tables - 1]);
        if (r < 0)
            return r;
    }
    if (t->n_tables == 0)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <tables> has no table task", c->source);
    for (i = 0; i < t->n_tables; i++) {
        size_t j;
        for (j = 0; j < i; j++) {
            const struct cfg_table *a = &t->tables[i], *b = &t->tables[j];
            if (!strcmp(a->cluster_push, b->cluster_push) &&
                !strcmp(a->database_push, b->database_push) &&
                !strcmp(a->table_push, b->table_push) &&
                !strcmp(a->cluster_pull, b->cluster_pull) &&
                !strcmp(a->database_pull, b->database_pull) &&
                !strcmp(a->table_pull, b->table_pull))
                return chc_err_set(c->err, CHC_ECONFIG,
                                   "%s: <tables/%s> and <tables/%s> copy the same source into "
                                   "the same destination; keep one",
                                   c->source, b->name, a->name);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* task                                                                     */
/* ------------------------------------------------------------------------ */

const struct cfg_cluster *cfg_task_cluster(const struct cfg_task *t, const char *name)
{
    size_t i;

    for (i = 0; i < t->n_clusters; i++)
        if (!strcmp(t->clusters[i].name, name))
            return &t->clusters[i];
    return NULL;
}

unsigned cfg_cluster_total_weight(const struct cfg_cluster *c)
{
    unsigned w = 0;
    size_t i;

    for (i = 0; i < c->n_shards; i++)
        w += (unsigned)c->shards[i].weight;
    return w;
}

struct cfg_task *cfg_task_free(struct cfg_task *t)
{
    size_t i;

    if (!t)
        return NULL;
    for (i = 0; i < t->n_clusters; i++)
        cluster_release(&t->clusters[i]);
    free(t->clusters);
    for (i = 0; i < t->n_tables; i++)
        table_release(&t->tables[i]);
    free(t->tables);
    settings_release(&t->settings);
    settings_release(&t->settings_pull);
    settings_release(&t->settings_push);
    free(t);
    return NULL;
}

static int check_root(struct ctx *c, const xmlNode *root)
{
    if (!root || (!name_is(root, "clickhouse") && !name_is(root, "yandex")))
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: root element must be <clickhouse> or <yandex>, got <%s>",
                           c->source, root ? (const char *)root->name : "");
    return 0;
}

int cfg_task_parse(const char *xml, size_t len, const char *source, struct cfg_task **ret,
                   struct chc_err *err)
{
    struct ctx c = {source, err};
    struct cfg_task *t = NULL;
    const xmlNode *root, *rs;
    xmlDoc *doc = NULL;
    long long v;
    size_t i;
    int r;

    r = parse_doc(&c, xml, len, &doc);
    if (r < 0)
        return r;
    t = calloc(1, sizeof(*t));
    if (!t) {
        r = oom(&c);
        goto fail;
    }
    root = xmlDocGetRootElement(doc);
    r = check_root(&c, root);
    if (r < 0)
        goto fail;
    rs = child(root, "remote_servers");
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
    if (!child(root, "max_workers")) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "%s: <max_workers> is required: how many pieces may be copied at once "
                        "across all workers",
                        source);
        goto fail;
    }
    r = get_ll(&c, root, "", "max_workers", 1, 100000, 1, &v);
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
    r = parse_tables(&c, root, t);
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

    r = chc_read_file(path, TASK_FILE_MAX, &text, &len, err);
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

/* ------------------------------------------------------------------------ */
/* zookeeper.xml                                                            */
/* ------------------------------------------------------------------------ */

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
    struct ctx c = {source, err};
    struct chc_buf hosts = CHC_BUF_INIT;
    struct cfg_zk *z = NULL;
    const xmlNode *root, *zk, *n, *lg;
    xmlDoc *doc = NULL;
    long long v;
    int r;

    r = parse_doc(&c, xml, len, &doc);
    if (r < 0)
        return r;
    z = calloc(1, sizeof(*z));
    if (!z) {
        r = oom(&c);
        goto fail;
    }
    root = xmlDocGetRootElement(doc);
    zk = name_is(root, "zookeeper") ? root : child(root, "zookeeper");
    if (!zk)
        zk = child(root, "keeper");
    if (!zk) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "%s: no <zookeeper> element: give <zookeeper><node><host>..</host>"
                        "<port>..</port></node></zookeeper>",
                        source);
        goto fail;
    }
    for (n = zk->children; n; n = n->next) {
        char *host = NULL;
        if (!name_starts(n, "node"))
            continue;
        r = get_required(&c, n, "zookeeper/node", "host", &host);
        if (r < 0)
            goto fail;
        r = get_ll(&c, n, "zookeeper/node", "port", 1, 65535, 2181, &v);
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
    r = get_ll(&c, zk, "zookeeper", "session_timeout_ms", 1000, 3600000, 30000, &v);
    if (r < 0)
        goto fail;
    z->session_timeout_ms = (int)v;
    r = get_str(&c, zk, "root", &z->root);
    if (r == 0)
        r = get_str(&c, zk, "identity", &z->identity);
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
    lg = child(root, "logger");
    if (lg) {
        r = get_str(&c, lg, "level", &z->log_level);
        if (r == 0)
            r = get_str(&c, lg, "log", &z->log_path);
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

    r = chc_read_file(path, TASK_FILE_MAX, &text, &len, err);
    if (r < 0)
        return r;
    r = cfg_zk_parse(text, len, path, ret, err);
    free(text);
    return r;
}

int cfg_task_hide_passwords(const struct cfg_task *t)
{
    size_t c, s, i;
    int r;

    for (c = 0; c < t->n_clusters; c++)
        for (s = 0; s < t->clusters[c].n_shards; s++)
            for (i = 0; i < t->clusters[c].shards[s].n_replicas; i++) {
                r = chc_secrets_add_global(t->clusters[c].shards[s].replicas[i].password);
                if (r < 0)
                    return r;
            }
    return 0;
}

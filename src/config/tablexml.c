/* tablexml.c — the <tables> of a task description -> struct cfg_table
 * (tablexml.h).
 *
 * Owns the table tasks' validation: required elements, clusters that exist
 * in <remote_servers>, the ENGINE clause (engine.c), number_of_splits,
 * enabled_partitions as ClickHouse prints partition literals, duplicates,
 * and each table's definition hash (what decides which rows go where). It
 * never logs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/base/strmap.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/taskdesc.h"
#include "config/tablexml.h"
#include "config/xmlcfg.h"

#include "base/banned.h"

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

static int push_partition(struct cfg_ctx *c, struct cfg_table *tb, const char *s, size_t n,
                          size_t *cap)
{
    char *lit = chc_strndup(s, n);
    size_t len = lit ? literal_len(lit, 0) : 0;

    if (!lit)
        return cfg__ctx_oom(c);
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
            return cfg__ctx_oom(c);
        tb->enabled_partitions = np;
        *cap = ncap;
    }
    tb->enabled_partitions[tb->n_enabled_partitions] = chc_strndup(s, n);
    if (!tb->enabled_partitions[tb->n_enabled_partitions])
        return cfg__ctx_oom(c);
    tb->n_enabled_partitions++;
    return 0;
}

/* Both forms: <partition>..</partition> children, or one whitespace-separated
 * string. Quoted values may contain spaces in the children form only. */
static int parse_enabled_partitions(struct cfg_ctx *c, const xmlNode *tn, struct cfg_table *tb)
{
    const xmlNode *ep = cfg__child(tn, "enabled_partitions"), *n;
    struct chc_strmap seen = CHC_STRMAP_INIT;
    size_t cap = 0, i, j;
    char *text;
    int r = 0;

    if (!ep)
        return 0;
    tb->has_enabled_partitions = 1;
    if (cfg__has_element_children(ep)) {
        for (n = ep->children; n; n = n->next) {
            if (!cfg__is_elem(n))
                continue;
            if (!cfg__name_starts(n, "partition"))
                return chc_err_set(c->err, CHC_ECONFIG,
                                   "%s: <tables/%s/enabled_partitions/%s>: children must be "
                                   "<partition> elements",
                                   c->source, tb->name, (const char *)n->name);
            text = cfg__text_of(n);
            if (!text)
                return cfg__ctx_oom(c);
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
        text = cfg__text_of(ep);
        if (!text)
            return cfg__ctx_oom(c);
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
            r = cfg__ctx_oom(c);
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

static int resolve_cluster(struct cfg_ctx *c, const struct cfg_task *t, const char *path,
                           const char *elem, const char *name, const struct cfg_cluster **ret)
{
    *ret = cfg_task_cluster(t, name);
    if (!*ret)
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <%s/%s>: unknown cluster '%s'; define it in <remote_servers>",
                           c->source, path, elem, name);
    return 0;
}

static int parse_table(struct cfg_ctx *c, const struct cfg_task *t, const xmlNode *tn,
                       struct cfg_table *tb)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct chc_err eerr = CHC_ERR_INIT;
    long long v;
    int r;

    tb->name = chc_strdup((const char *)tn->name);
    if (!tb->name)
        return cfg__ctx_oom(c);
    r = chc_buf_addf(&path, "tables/%s", tb->name);
    if (r < 0)
        return cfg__ctx_oom(c);
#define REQ(field)                                                                   \
    do {                                                                             \
        r = cfg__get_required(c, tn, path.buf, #field, &tb->field);                       \
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
        r = cfg__get_required_hint(c, tn, path.buf, "engine",
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
    r = cfg__get_required_hint(c, tn, path.buf, "sharding_key",
                               "an expression such as rand() or cityHash64(id) that picks the "
                               "destination shard",
                               &tb->sharding_key);
    if (r < 0)
        goto out;
    r = cfg__get_str(c, tn, "where_condition", &tb->where_condition);
    if (r < 0)
        goto out;
    if (tb->where_condition && !*tb->where_condition) {
        free(tb->where_condition);
        tb->where_condition = NULL;
    }
    r = cfg__get_ll(c, tn, path.buf, "number_of_splits", 1, CFG_SPLITS_MAX, CFG_SPLITS_DEFAULT, &v);
    if (r < 0)
        goto out;
    tb->number_of_splits = (unsigned)v;
    r = cfg__get_bool(c, tn, path.buf, "allow_to_copy_alias_and_materialized_columns", 0,
                      &tb->allow_alias_materialized);
    if (r < 0)
        goto out;
    r = cfg__get_bool(c, tn, path.buf, "allow_to_drop_target_partitions", 0,
                      &tb->allow_drop_target_partitions);
    if (r < 0)
        goto out;
    r = parse_enabled_partitions(c, tn, tb);
    if (r < 0)
        goto out;
    {
        char *dp = NULL;
        r = cfg__get_str(c, tn, "data_path", &dp);
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

int cfg__tables_parse(struct cfg_ctx *c, const xmlNode *root, struct cfg_task *t)
{
    const xmlNode *ts = cfg__child(root, "tables"), *n;
    size_t cap = 0, i;
    int r;

    if (!ts)
        return chc_err_set(c->err, CHC_ECONFIG,
                           "%s: <tables> is required: list at least one table task", c->source);
    for (n = ts->children; n; n = n->next) {
        if (!cfg__is_elem(n))
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
                return cfg__ctx_oom(c);
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

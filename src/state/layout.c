/* layout.c — the names of the task's ZooKeeper nodes (state/layout.h);
 * pure, no ZooKeeper calls. */
#include <ctype.h>
#include <errno.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/state/layout.h"

#include "base/banned.h"

int st_node_name(const char *literal, struct chc_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    int r = 0;

    for (; r == 0 && *literal; literal++) {
        unsigned char c = (unsigned char)*literal;
        if (isalnum(c) || c == '-' || c == '_' || c == '.') {
            r = chc_buf_addch(out, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            r = chc_buf_add(out, e, 3);
        }
    }
    return r;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int st_node_unname(const char *name, struct chc_buf *out)
{
    int r = 0;

    for (; r == 0 && *name; name++) {
        if (*name == '%') {
            int hi = hexval(name[1]), lo = hi >= 0 ? hexval(name[2]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            r = chc_buf_addch(out, (char)(hi * 16 + lo));
            name += 2;
        } else {
            r = chc_buf_addch(out, *name);
        }
    }
    return r;
}

int st_path_table(const char *task_path, const struct cfg_table *tb, struct chc_buf *out)
{
    int r;

    chc_buf_reset(out);
    r = chc_buf_addf(out, "%s/tables/", task_path);
    if (r == 0)
        r = st_node_name(tb->cluster_push, out);
    if (r == 0)
        r = chc_buf_addch(out, '.');
    if (r == 0)
        r = st_node_name(tb->database_push, out);
    if (r == 0)
        r = chc_buf_addch(out, '.');
    if (r == 0)
        r = st_node_name(tb->table_push, out);
    if (r == 0)
        r = chc_buf_addf(out, "/%s", tb->def_hash_hex);
    return r;
}

static const char *const task_nodes[] = {
    [ST_DESCRIPTION] = "description",
    [ST_WORKERS] = "workers",
    [ST_ACTIVE] = "active",
    [ST_TABLES] = "tables",
};

static const char *const table_nodes[] = {
    [ST_PARTITIONS] = "partitions",
    [ST_PLIST] = "plist",
    [ST_PARTS] = "parts",
    [ST_LOCKS] = "locks",
    [ST_INIT] = "init",
    [ST_STAGING_RESET] = "staging_reset",
    [ST_DONE] = "done",
    [ST_ROUTING] = "routing",
    [ST_STAGING] = "staging",
};

static int path3(const char *root, const char *node, const char *child, struct chc_buf *out)
{
    chc_buf_reset(out);
    return child ? chc_buf_addf(out, "%s/%s/%s", root, node, child)
                 : chc_buf_addf(out, "%s/%s", root, node);
}

int st_path_task(const char *task_path, enum st_task_node node, const char *child,
                 struct chc_buf *out)
{
    return path3(task_path, task_nodes[node], child, out);
}

int st_path_tnode(const char *zroot, enum st_table_node node, const char *child,
                  struct chc_buf *out)
{
    return path3(zroot, table_nodes[node], child, out);
}

int st_path_slot(const char *task_path, const char *id, unsigned long seq, struct chc_buf *out)
{
    chc_buf_reset(out);
    return chc_buf_addf(out, "%s/active/%s#%lu", task_path, id, seq);
}

int st_path_lock(const char *zroot, const char *part, const char *what, struct chc_buf *out)
{
    chc_buf_reset(out);
    return chc_buf_addf(out, "%s/locks/%s#%s", zroot, part, what);
}

int st_path_part(const char *zroot, const char *part, long k, struct chc_buf *out)
{
    chc_buf_reset(out);
    return k < 0 ? chc_buf_addf(out, "%s/parts/%s", zroot, part)
                 : chc_buf_addf(out, "%s/parts/%s/%ld", zroot, part, k);
}

int st_path_chunk(const char *zroot, size_t i, struct chc_buf *out)
{
    chc_buf_reset(out);
    return chc_buf_addf(out, "%s/plist/%zu", zroot, i);
}

int st_path_child(const char *parent, const char *child, struct chc_buf *out)
{
    chc_buf_reset(out);
    return chc_buf_addf(out, "%s/%s", parent, child);
}

int st_path_takeover(const char *lock, struct chc_buf *out)
{
    chc_buf_reset(out);
    return chc_buf_addf(out, "%s.takeover", lock);
}

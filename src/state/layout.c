/* layout.c — the names of the task's ZooKeeper nodes (state/layout.h);
 * pure, no ZooKeeper calls. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>

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

int st_path(struct chc_buf *out, const char *fmt, ...)
{
    va_list ap;
    int r;

    chc_buf_reset(out);
    va_start(ap, fmt);
    r = chc_buf_addvf(out, fmt, ap);
    va_end(ap);
    return r;
}

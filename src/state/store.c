/* store.c — one table definition's state in ZooKeeper, read and written
 * (state/store.h): pieces, partition move states, the partition list.
 * Decides nothing; the coordinator acts on what it reads (state/protocol.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/state/layout.h"
#include "chcopier/state/store.h"
#include "chcopier/zk/zk.h"

#include "base/banned.h"

static int node_path(const struct st_table *t, const char *part, unsigned k, struct chc_buf *b)
{
    return st_path_part(t->zroot, part, k == ST_PART_STATE ? -1 : (long)k, b);
}

int st_piece_read(const struct st_table *t, const char *part, unsigned k, struct piece_state *ps,
                  struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = node_path(t, part, k, &path) < 0 ? chc_err_set(err, -ENOMEM, "out of memory") : 0;
    if (r == 0)
        r = zk_get(t->zs, path.buf, &data, &st, err);
    if (r == CHC_EZK_NONODE) {
        st_piece_absent(ps, t->n_shards);
        r = 0;
    } else if (r == 0) {
        ps->exists = 1;
        ps->version = st.version;
        if (st_piece_decode(data.buf, t->n_shards, ps) < 0)
            r = chc_err_set(err, CHC_ESTATE, "bad piece state at %s", path.buf);
    }
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r;
}

int st_piece_write(const struct st_table *t, const char *part, unsigned k, struct piece_state *ps,
                   struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = node_path(t, part, k, &path);
    if (r == 0)
        r = st_piece_encode(ps, t->n_shards, &data);
    if (r < 0) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
    } else if (!ps->exists) {
        r = zk_create(t->zs, path.buf, data.buf, data.len, ZK_PERSISTENT, NULL, err);
        if (r == CHC_EZK_NONODE) { /* first piece of the partition: parts/<p> first */
            r = node_path(t, part, ST_PART_STATE, &path);
            if (r == 0)
                r = zk_create(t->zs, path.buf, "", 0, ZK_PERSISTENT, NULL, err);
            if (r == 0 || r == CHC_EZK_NODEEXISTS)
                r = node_path(t, part, k, &path);
            if (r == 0)
                r = zk_create(t->zs, path.buf, data.buf, data.len, ZK_PERSISTENT, NULL, err);
        }
        if (r == 0) {
            ps->exists = 1;
            ps->version = 0;
        }
    } else {
        r = zk_set(t->zs, path.buf, data.buf, data.len, ps->version, &st, err);
        if (r == 0)
            ps->version = st.version;
    }
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r;
}

int st_pieces_reset(const struct st_table *t, const char *lead, unsigned splits,
                    struct chc_err *err)
{
    struct piece_state ps = {.started = -1, .version = -1};
    unsigned k;
    int r = 0;

    ps.done = calloc(t->n_shards + 1, 1);
    if (!ps.done)
        return chc_err_set(err, -ENOMEM, "out of memory");
    for (k = 0; r == 0 && k < splits; k++) {
        r = st_piece_read(t, lead, k, &ps, err);
        if (r == 0) {
            memset(ps.done, 0, t->n_shards);
            ps.started = -1;
            ps.rows = 0;
            r = st_piece_write(t, lead, k, &ps, err);
        }
    }
    free(ps.done);
    return r;
}

int st_part_get(const struct st_table *t, const char *part, struct chc_buf *out, int *version,
                struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = node_path(t, part, ST_PART_STATE, &path) < 0 ? chc_err_set(err, -ENOMEM, "out of memory")
                                                      : 0;
    if (r == 0)
        r = zk_get(t->zs, path.buf, out, &st, err);
    if (version)
        *version = r == 0 ? st.version : -1;
    if (r == CHC_EZK_NONODE) {
        chc_buf_reset(out);
        r = 0;
    }
    chc_buf_release(&path);
    return r;
}

int st_part_write(const struct st_table *t, const char *part, const char *state, int *version,
                  struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct zk_stat st;
    int r;

    r = node_path(t, part, ST_PART_STATE, &path) < 0 ? chc_err_set(err, -ENOMEM, "out of memory")
                                                      : 0;
    if (r == 0 && *version < 0) {
        r = zk_create(t->zs, path.buf, state, strlen(state), ZK_PERSISTENT, NULL, err);
        if (r == 0)
            *version = 0;
    } else if (r == 0) {
        r = zk_set(t->zs, path.buf, state, strlen(state), *version, &st, err);
        if (r == 0)
            *version = st.version;
    }
    chc_buf_release(&path);
    return r;
}

int st_part_write_many(const struct st_table *t, const char *const *parts,
                       const char *const *states, size_t n, int *versions, struct chc_err *err)
{
    struct chc_buf *path = calloc(n ? n : 1, sizeof(*path));
    const char **paths = calloc(n ? n : 1, sizeof(*paths));
    int *codes = calloc(n ? n : 1, sizeof(*codes));
    size_t i;
    int r = path && paths && codes ? 0 : chc_err_set(err, -ENOMEM, "out of memory");

    for (i = 0; path && i < n; i++)
        chc_buf_init(&path[i], 0);
    for (i = 0; r == 0 && i < n; i++) {
        if (node_path(t, parts[i], ST_PART_STATE, &path[i]) < 0)
            r = chc_err_set(err, -ENOMEM, "out of memory");
        paths[i] = path[i].buf;
    }
    if (r == 0)
        r = zk_write_many(t->zs, paths, states, n, versions, codes, err);
    for (i = 0; path && i < n; i++)
        chc_buf_release(&path[i]);
    free(path);
    free(paths);
    free(codes);
    return r;
}

int st_read_many(const struct st_table *t, const struct st_node *nodes, size_t n,
                 struct chc_buf *outs, int *codes, struct chc_err *err)
{
    struct chc_buf b = CHC_BUF_INIT;
    char **paths = calloc(n + 1, sizeof(*paths));
    size_t i;
    int r = paths ? 0 : chc_err_set(err, -ENOMEM, "out of memory");

    for (i = 0; r == 0 && i < n; i++) {
        if (node_path(t, nodes[i].part, nodes[i].k, &b) < 0)
            r = chc_err_set(err, -ENOMEM, "out of memory");
        else
            paths[i] = chc_buf_take(&b, NULL);
    }
    if (r == 0 && n)
        r = zk_get_many(t->zs, (const char *const *)paths, n, outs, codes, err);
    chc_strv_free(paths, n);
    chc_buf_release(&b);
    return r;
}

int st_plist_read(const struct st_table *t, struct chc_buf *text, struct zk_stat *st,
                  struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, *outs = NULL;
    char **names = NULL;
    int *codes = NULL, r;
    unsigned long n = 0, i;

    r = st_path_tnode(t->zroot, ST_PARTITIONS, NULL, &path) < 0 ? chc_err_set(err, -ENOMEM, "out of memory")
                                                       : 0;
    if (r == 0)
        r = zk_get(t->zs, path.buf, text, st, err);
    if (r < 0 || sscanf(text->buf, "#chunks %lu", &n) != 1)
        goto out;
    names = calloc(n + 1, sizeof(*names));
    outs = calloc(n + 1, sizeof(*outs));
    codes = calloc(n + 1, sizeof(*codes));
    r = names && outs && codes ? 0 : chc_err_set(err, -ENOMEM, "out of memory");
    for (i = 0; r == 0 && i < n; i++) {
        chc_buf_init(&outs[i], 0);
        if (st_path_chunk(t->zroot, i, &path) < 0)
            r = chc_err_set(err, -ENOMEM, "out of memory");
        else
            names[i] = chc_buf_take(&path, NULL);
    }
    if (r == 0)
        r = zk_get_many(t->zs, (const char *const *)names, n, outs, codes, err);
    chc_buf_reset(text);
    for (i = 0; r == 0 && i < n; i++)
        r = codes[i] < 0 ? chc_err_set(err, CHC_ESTATE, "partition list chunk %s is missing",
                                       names[i])
            : chc_buf_add(text, outs[i].buf, outs[i].len) < 0
                ? chc_err_set(err, -ENOMEM, "out of memory")
                : 0;
out:
    for (i = 0; outs && i < n; i++)
        chc_buf_release(&outs[i]);
    chc_strv_free(names, n);
    free(outs);
    free(codes);
    chc_buf_release(&path);
    return r;
}

/* Whole lines of text from off, at most chunk bytes. */
static size_t chunk_len(const char *text, size_t len, size_t off, size_t chunk)
{
    size_t n = len - off > chunk ? chunk : len - off;

    while (off + n < len && n > 0 && text[off + n - 1] != '\n')
        n--;
    return n;
}

int st_plist_publish(const struct st_table *t, const char *text, size_t len, size_t chunk,
                     struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, head = CHC_BUF_INIT;
    size_t off = 0, n = 0, cl;
    int r = 0;

    while (r == 0 && len > chunk && off < len) {
        cl = chunk_len(text, len, off, chunk);
        if (cl == 0)
            r = chc_err_set(err, CHC_ETOOBIG, "a line of the partition list is longer than %zu "
                            "bytes", chunk);
        if (r == 0 && st_path_chunk(t->zroot, n, &path) < 0)
            r = chc_err_set(err, -ENOMEM, "out of memory");
        if (r == 0 && n == 0)
            r = zk_create_parents(t->zs, path.buf, err);
        if (r == 0) /* a dead owner may have left chunks: overwrite them */
            r = zk_set(t->zs, path.buf, text + off, cl, ZK_ANY_VERSION, NULL, err);
        if (r == CHC_EZK_NONODE)
            r = zk_create(t->zs, path.buf, text + off, cl, ZK_PERSISTENT, NULL, err);
        off += cl;
        n++;
    }
    if (r == 0 && n && chc_buf_addf(&head, "#chunks %zu\n", n) < 0)
        r = chc_err_set(err, -ENOMEM, "out of memory");
    if (r == 0 && st_path_tnode(t->zroot, ST_PARTITIONS, NULL, &path) < 0)
        r = chc_err_set(err, -ENOMEM, "out of memory");
    if (r == 0) /* last: its existence says the list is complete */
        r = n ? zk_create(t->zs, path.buf, head.buf, head.len, ZK_PERSISTENT, NULL, err)
              : zk_create(t->zs, path.buf, text, len, ZK_PERSISTENT, NULL, err);
    chc_buf_release(&path);
    chc_buf_release(&head);
    return r;
}

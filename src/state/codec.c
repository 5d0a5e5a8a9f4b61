/* codec.c — the data of the task's ZooKeeper nodes (state/codec.h): pure
 * encoders and decoders, no ZooKeeper calls. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/state/codec.h"

#include "base/banned.h"

void st_piece_absent(struct piece_state *ps, size_t n_shards)
{
    memset(ps->done, 0, n_shards);
    ps->started = -1;
    ps->rows = 0;
    ps->exists = 0;
    ps->version = -1;
    ps->ms = 0;
    ps->error[0] = '\0';
}

static int done_line(const char **pp, size_t n_shards, struct piece_state *ps)
{
    const char *p = *pp + 5;

    while (*p && *p != '\n') {
        long v = strtol(p, (char **)&p, 10);
        if (v >= 1 && (size_t)v <= n_shards)
            ps->done[v - 1] = 1;
        if (*p == ',')
            p++;
        else if (*p && *p != '\n')
            return -EINVAL;
    }
    *pp = p;
    return 0;
}

int st_piece_decode(const char *data, size_t n_shards, struct piece_state *ps)
{
    const char *p = data;
    int version = ps->version, exists = ps->exists;

    st_piece_absent(ps, n_shards);
    ps->version = version;
    ps->exists = exists;
    while (*p) {
        if (!strncmp(p, "done ", 5)) {
            if (done_line(&p, n_shards, ps) < 0)
                return -EINVAL;
        } else if (!strncmp(p, "started ", 8)) {
            long v = strtol(p + 8, (char **)&p, 10);
            if (v >= 1 && (size_t)v <= n_shards)
                ps->started = (int)v - 1;
        } else if (!strncmp(p, "rows ", 5)) {
            ps->rows = strtoll(p + 5, (char **)&p, 10);
        } else if (!strncmp(p, "ms ", 3)) {
            ps->ms = strtoll(p + 3, (char **)&p, 10);
        } else if (!strncmp(p, "error ", 6)) {
            size_t n = strcspn(p + 6, "\n");
            snprintf(ps->error, sizeof(ps->error), "%.*s", (int)n, p + 6);
            p += 6 + n;
        } else {
            p += strcspn(p, "\n");
        }
        if (*p == '\n')
            p++;
    }
    return 0;
}

int st_piece_encode(const struct piece_state *ps, size_t n_shards, struct chc_buf *out)
{
    size_t i, m = 0;
    int r;

    chc_buf_reset(out);
    r = chc_buf_addstr(out, "done ");
    for (i = 0; r == 0 && i < n_shards; i++)
        if (ps->done[i])
            r = chc_buf_addf(out, "%s%zu", m++ ? "," : "", i + 1);
    if (r == 0)
        r = chc_buf_addch(out, '\n');
    if (r == 0 && ps->started >= 0)
        r = chc_buf_addf(out, "started %d\n", ps->started + 1);
    if (r == 0)
        r = chc_buf_addf(out, "rows %lld\n", ps->rows);
    if (r == 0 && ps->ms > 0)
        r = chc_buf_addf(out, "ms %lld\n", ps->ms);
    if (r == 0 && ps->error[0])
        r = chc_buf_addf(out, "error %s\n", ps->error);
    return r;
}

int st_plist_encode(const struct st_plist_entry *e, size_t n, size_t n_shards, uint64_t sums_key,
                    struct chc_buf *out)
{
    size_t i, s;
    int r = 0;

    if (sums_key)
        r = chc_buf_addf(out, "#sums %016" PRIx64 "\n", sums_key);
    for (i = 0; r == 0 && i < n; i++) {
        size_t m = 0;
        for (s = 0; r == 0 && s < n_shards; s++)
            if (e[i].on_shard[s])
                r = chc_buf_addf(out, "%s%zu", m++ ? "," : "", s + 1);
        if (r == 0 && e[i].splits == 0)
            r = chc_buf_addf(out, "\t=\t%lld\t%llu\t%s\n", e[i].rows, e[i].hash, e[i].lit);
        else if (r == 0)
            r = chc_buf_addf(out, "\t%u\t%lld\t%llu\t%s\n", e[i].splits, e[i].rows, e[i].hash,
                             e[i].lit);
    }
    return r;
}

/* One line "<shards>\t<splits>\t<rows>\t<checksum>\t<literal>" into e. */
static int plist_line(const char *p, const char *nl, size_t n_shards, struct st_plist_entry *e,
                      struct chc_buf *lit)
{
    const char *f[5];
    int i;

    f[0] = p;
    for (i = 1; i < 5; i++) {
        f[i] = memchr(f[i - 1], '\t', (size_t)(nl - f[i - 1]));
        if (!f[i])
            return CHC_ESTATE;
        f[i]++;
    }
    chc_buf_reset(lit);
    if (chc_buf_add(lit, f[4], (size_t)(nl - f[4])) < 0)
        return -ENOMEM;
    memset(e->on_shard, 0, n_shards);
    while (p < f[1]) {
        long sh = strtol(p, (char **)&p, 10);
        if (sh >= 1 && (size_t)sh <= n_shards)
            e->on_shard[sh - 1] = 1;
        if (*p != ',')
            break;
        p++;
    }
    e->lit = lit->buf;
    e->splits = f[1][0] == '=' ? 0 : (unsigned)strtoul(f[1], NULL, 10);
    if (f[1][0] != '=' && e->splits == 0)
        e->splits = 1;
    e->rows = strtoll(f[2], NULL, 10);
    e->hash = strtoull(f[3], NULL, 10);
    return 0;
}

int st_plist_decode(const char *text, size_t n_shards, uint64_t *sums_key,
                    int (*each)(void *arg, const struct st_plist_entry *e), void *arg,
                    struct chc_err *err)
{
    struct chc_buf lit = CHC_BUF_INIT;
    struct st_plist_entry e;
    const char *p = text;
    int r = 0;

    e.on_shard = calloc(n_shards + 1, 1);
    if (!e.on_shard)
        return chc_err_set(err, -ENOMEM, "out of memory");
    *sums_key = 0;
    if (!strncmp(p, "#sums ", 6)) {
        *sums_key = strtoull(p + 6, NULL, 16);
        p += strcspn(p, "\n");
        p += *p == '\n';
    }
    while (r == 0 && *p) {
        const char *nl = p + strcspn(p, "\n");
        r = plist_line(p, nl, n_shards, &e, &lit);
        if (r == CHC_ESTATE)
            r = chc_err_set(err, CHC_ESTATE, "bad partition list in ZooKeeper: '%.80s'", p);
        else if (r < 0)
            r = chc_err_set(err, r, "out of memory");
        else
            r = each(arg, &e);
        p = *nl ? nl + 1 : nl;
    }
    free(e.on_shard);
    chc_buf_release(&lit);
    return r;
}

int st_claim_encode(const char *id, const char *hostkey, struct chc_buf *out)
{
    chc_buf_reset(out);
    return chc_buf_addf(out, "%s\nhostkey %s\n", id, hostkey);
}

void st_claim_decode(const char *data, char *id, size_t id_cap, char *key, size_t key_cap)
{
    const char *k = strstr(data, "hostkey ");

    snprintf(id, id_cap, "%.*s", (int)strcspn(data, "\n"), data);
    if (k && (k == data || k[-1] == '\n'))
        snprintf(key, key_cap, "%.*s", (int)strcspn(k + 8, "\n"), k + 8);
    else
        snprintf(key, key_cap, "%s", "");
}

int st_registration_encode(const char *host, long pid, const char *hostkey, const char *note,
                           struct chc_buf *out)
{
    const char *p = note;
    int r;

    chc_buf_reset(out);
    r = chc_buf_addf(out, "host %s\npid %ld\nhostkey %s\n", host, pid, hostkey);
    while (r == 0 && *p) {
        size_t n = strcspn(p, "\n");
        r = chc_buf_addf(out, "note %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
    return r;
}

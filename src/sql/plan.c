/* plan.c — pure planning helpers: partition literals, piece and routing
 * filters, staging names, proximity order. Knows the task structs and SQL
 * text; does no I/O and never logs.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/hash.h"
#include "chcopier/config/engine.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/sqlhash.h"
#include "chcopier/config/task.h"

#include "base/banned.h"


int plan_parse_values(const char *body, char ***ret, size_t *ret_n, struct chc_err *err)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    const char *p = body, *start;
    int depth;
    char q;

    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p != '(')
            goto bad;
        start = ++p;
        depth = 1;
        while (*p && depth > 0) {
            if (*p == '\'' || *p == '"' || *p == '`') {
                q = *p++;
                while (*p && *p != q) {
                    if (*p == '\\' && p[1])
                        p++;
                    p++;
                }
                if (!*p)
                    goto bad;
            } else if (*p == '(' || *p == '[') {
                depth++;
            } else if (*p == ')' || *p == ']') {
                depth--;
            }
            p++;
        }
        if (depth != 0)
            goto bad;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nv = realloc(v, ncap * sizeof(*nv));
            if (!nv)
                goto oom;
            v = nv;
            cap = ncap;
        }
        v[n] = chc_strndup(start, (size_t)(p - 1 - start));
        if (!v[n])
            goto oom;
        n++;
    }
    *ret = v;
    *ret_n = n;
    return 0;
bad:
    chc_strv_free(v, n);
    return chc_err_set(err, CHC_EPARSE, "cannot parse partition values near byte %zu",
                       (size_t)(p - body));
oom:
    chc_strv_free(v, n);
    return chc_err_set(err, -ENOMEM, "out of memory");
}

int plan_partition_clause(const char *literal, struct chc_buf *out)
{
    if (!strcmp(literal, PLAN_UNPARTITIONED))
        return chc_buf_addstr(out, "PARTITION ID 'all'");
    return chc_buf_addf(out, "PARTITION %s", literal);
}

int plan_partition_filter(const struct cfg_table *tb, const char *literal, struct chc_buf *out)
{
    if (!tb->engine->partition_by || !strcmp(literal, PLAN_UNPARTITIONED))
        return chc_buf_addstr(out, "1");
    return chc_buf_addf(out, "(%s) = %s", tb->engine->partition_by, literal);
}

int plan_partition_set_filter(const struct cfg_table *tb, const char *const *literals, size_t n,
                              struct chc_buf *out)
{
    if (n == 1 || !tb->engine->partition_by)
        return plan_partition_filter(tb, n ? literals[0] : PLAN_UNPARTITIONED, out);
    return plan_in_list(tb->engine->partition_by, literals, n, out);
}

int plan_in_list(const char *expr, const char *const *literals, size_t n, struct chc_buf *out)
{
    size_t i;
    int r = chc_buf_addf(out, "(%s) IN (", expr);

    for (i = 0; r == 0 && i < n; i++)
        r = chc_buf_addf(out, "%s%s", i ? ", " : "", literals[i]);
    return r == 0 ? chc_buf_addch(out, ')') : r;
}

void plan_group_parts(const long long *max_shard_rows, size_t n, long long min_piece_rows,
                      size_t max_group, size_t *lead)
{
    long long sum = 0;
    size_t i, g = 0, members = 0;

    for (i = 0; i < n; i++) {
        long long rows = max_shard_rows[i];
        int small = min_piece_rows > 0 && rows >= 0 && rows < min_piece_rows;
        if (i > 0 && small && members > 0 && members < max_group &&
            sum + rows <= min_piece_rows) {
            lead[i] = g;
            sum += rows;
            members++;
            continue;
        }
        lead[i] = i;
        g = i;
        sum = rows;
        members = small ? 1 : 0; /* a big partition never takes members */
    }
}

unsigned plan_splits(const struct cfg_table *tb)
{
    return tb->engine->n_key_columns ? tb->number_of_splits : 1;
}

/* Sorting key element i without a trailing ASC/DESC: "intHash32(UserID)"
 * for "intHash32(UserID) DESC". */
int plan_key_expr(const struct cfg_table *tb, size_t i, struct chc_buf *out)
{
    const char *c = tb->engine->key_columns[i];
    size_t n = strlen(c);

    if (n > 5 && !strcasecmp(c + n - 5, " DESC"))
        n -= 5;
    else if (n > 4 && !strcasecmp(c + n - 4, " ASC"))
        n -= 4;
    return chc_buf_add(out, c, n);
}

unsigned plan_part_splits(const struct cfg_table *tb, long long max_shard_rows,
                          long long min_piece_rows)
{
    unsigned n = plan_splits(tb);
    long long want;

    if (max_shard_rows < 0 || min_piece_rows <= 0)
        return n; /* unknown size, or asked for: as configured */
    want = max_shard_rows / min_piece_rows;
    if (want < 1)
        want = 1;
    return want < (long long)n ? (unsigned)want : n;
}

int plan_piece_filter(const char *split_args, unsigned n, unsigned k, struct chc_buf *out)
{
    if (n <= 1 || !split_args || !*split_args)
        return chc_buf_addstr(out, "1");
    return chc_buf_addf(out, "cityHash64(%s) %% %u = %u", split_args, n, k);
}

int plan_is_nondeterministic(const char *expr)
{
    static const char *const fns[] = {"rand", "rand64", "randConstant", "now", "today",
                                      "yesterday", "generateUUIDv4", "rowNumberInBlock",
                                      "rowNumberInAllBlocks", "blockNumber", "runningDifference"};
    const char *p = expr;

    while (*p) {
        if (*p == '\'' || *p == '"' || *p == '`') {
            char q = *p++;
            while (*p && *p != q) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (*p)
                p++;
            continue;
        }
        if (isalpha((unsigned char)*p) || *p == '_') {
            const char *s = p;
            size_t i, n;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            n = (size_t)(p - s);
            while (*p == ' ')
                p++;
            if (*p != '(')
                continue;
            for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
                if (strlen(fns[i]) == n && !strncasecmp(s, fns[i], n))
                    return 1;
            continue;
        }
        p++;
    }
    return 0;
}

int plan_expr_uses_columns(const char *expr, const char *const *cols, size_t n)
{
    const char *p = expr;
    size_t i, len;

    while (*p) {
        const char *s = p;
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q)
                p += (*p == '\\' && p[1]) ? 2 : 1;
            p += *p ? 1 : 0;
            continue;
        }
        if (*p == '`') {
            s = ++p;
            while (*p && *p != '`')
                p++;
            len = (size_t)(p - s);
            p += *p ? 1 : 0;
        } else if (isalpha((unsigned char)*p) || *p == '_') {
            while (isalnum((unsigned char)*p) || *p == '_' || *p == '.')
                p++;
            len = (size_t)(p - s);
            while (*p == ' ')
                p++;
            if (*p == '(')
                continue; /* a function */
        } else {
            p++;
            continue;
        }
        for (i = 0; i < n; i++)
            if (strlen(cols[i]) == len && !strncmp(s, cols[i], len))
                return 1;
    }
    return 0;
}

/* The value Distributed takes modulo the total weight, as SQL: for a
 * non-constant column, StorageDistributed::createSelector casts IntN/UIntN
 * to UInt32 (N <= 32) or UInt64 with C++ semantics, so a negative Int8 is
 * sign-extended (-1 -> 4294967295); a constant column is cast to the
 * unsigned type of its own width. LowCardinality keys route by their
 * dictionary type. */
static int route_key(const struct cfg_table *tb, const struct plan_key *key, struct chc_buf *out,
                     struct chc_err *err)
{
    unsigned bits = 0;
    int sign = 0, lc;

    if (plan_is_nondeterministic(tb->sharding_key)) {
        if (!key->split_args || !*key->split_args)
            return chc_err_set(err, CHC_ECONFIG,
                               "table '%s': sharding_key '%s' is not deterministic and the "
                               "destination has no ORDER BY key to hash instead; use a "
                               "deterministic sharding_key",
                               tb->name, tb->sharding_key);
        return chc_buf_addf(out, "sipHash64(%s)", key->split_args);
    }
    if (!key->type || !sqlhash_int_key(key->type, &bits, &sign))
        return chc_err_set(err, CHC_ECONFIG,
                           "table '%s': <sharding_key> '%s' is of type %s on the source; a "
                           "Distributed table (and so chcopier) needs an integer key: wrap it, "
                           "e.g. cityHash64(...)",
                           tb->name, tb->sharding_key, key->type ? key->type : "unknown");
    lc = !strncmp(key->type, "LowCardinality(", 15);
    if (!sign && !lc)
        return chc_buf_addf(out, "(%s)", tb->sharding_key);
    if (!sign)
        return chc_buf_addf(out, "CAST(%s AS UInt%u)", tb->sharding_key, bits);
    if (lc)
        return chc_buf_addf(out, "toUInt%u(CAST(%s AS Int%u))",
                            key->constant ? bits : bits <= 32 ? 32 : 64, tb->sharding_key, bits);
    return chc_buf_addf(out, "toUInt%u(%s)", key->constant ? bits : bits <= 32 ? 32 : 64,
                        tb->sharding_key);
}

int plan_route_filter(const struct cfg_table *tb, const struct plan_key *key, size_t shard_idx,
                      struct chc_buf *out, struct chc_err *err)
{
    const struct cfg_cluster *c = tb->push;
    unsigned total = cfg_cluster_total_weight(c), lo = 0, hi;
    struct chc_buf k = CHC_BUF_INIT;
    size_t i;
    int r;

    if (shard_idx >= c->n_shards)
        return chc_err_set(err, -EINVAL, "no destination shard %zu", shard_idx + 1);
    for (i = 0; i < shard_idx; i++)
        lo += (unsigned)c->shards[i].weight;
    hi = lo + (unsigned)c->shards[shard_idx].weight;
    if (c->n_shards == 1 || (lo == 0 && hi == total))
        return chc_buf_addstr(out, "1");
    if (hi == lo)
        return chc_buf_addstr(out, "0");
    r = route_key(tb, key, &k, err);
    if (r == 0 && hi - lo == 1)
        r = chc_buf_addf(out, "%s %% %u = %u", k.buf, total, lo);
    else if (r == 0)
        r = chc_buf_addf(out, "%s %% %u BETWEEN %u AND %u", k.buf, total, lo, hi - 1);
    chc_buf_release(&k);
    if (r == -ENOMEM || r == CHC_ETOOBIG)
        return chc_err_set(err, r, "out of memory");
    return r;
}

/* A setting's value in a SETTINGS clause: numbers as they are (18.16
 * refuses '1' for a number setting), anything else as a string literal. */
static int add_setting_value(struct chc_buf *out, const char *v)
{
    const char *p = v + (*v == '-');
    int digits = 0, dot = 0;

    for (; *p; p++) {
        if (isdigit((unsigned char)*p))
            digits++;
        else if (*p == '.' && !dot)
            dot = 1;
        else
            return chc_buf_add_sqlstr(out, v);
    }
    return digits ? chc_buf_addstr(out, v) : chc_buf_add_sqlstr(out, v);
}

int plan_settings_clause(const struct cfg_settings *const *sets, size_t n, struct chc_buf *out)
{
    size_t s, i, k, m = 0;
    int r = 0;

    for (s = 0; r == 0 && s < n; s++) {
        for (i = 0; r == 0 && sets[s] && i < sets[s]->n; i++) {
            const struct cfg_setting *it = &sets[s]->items[i];
            int later = 0;
            if (!strcmp(it->name, "readonly"))
                continue; /* applies to a whole query, not to its SELECT */
            for (k = s; !later && k < n; k++) { /* a later one wins */
                size_t j;
                for (j = k == s ? i + 1 : 0; !later && sets[k] && j < sets[k]->n; j++)
                    later = !strcmp(sets[k]->items[j].name, it->name);
            }
            if (later)
                continue;
            r = chc_buf_addf(out, "%s%s = ", m++ ? ", " : " SETTINGS ", it->name);
            if (r == 0)
                r = add_setting_value(out, it->value);
        }
    }
    return r;
}

int plan_piece_table(const struct cfg_table *tb, unsigned k, struct chc_buf *out)
{
    return chc_buf_addf(out, "%s_piece_%u", tb->table_push, k);
}

int plan_route_table(const struct cfg_table *tb, unsigned k, struct chc_buf *out)
{
    return chc_buf_addf(out, "%s_piece_%u_route", tb->table_push, k);
}

int plan_assembly_table(const struct cfg_table *tb, struct chc_buf *out)
{
    return chc_buf_addf(out, "%s_assembly", tb->table_push);
}

int plan_partition_assembly(const struct cfg_table *tb, const char *lit, struct chc_buf *out)
{
    return chc_buf_addf(out, "%s_assembly_%016" PRIx64, tb->table_push,
                        chc_hash64(CHC_HASH64_INIT, lit, strlen(lit)));
}

int plan_is_local_host(const char *host, const char *me)
{
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
           !strcmp(host, me);
}

size_t plan_hostname_difference(const char *a, const char *b)
{
    size_t n = 0, i, la = strlen(a), lb = strlen(b), m = la < lb ? la : lb;

    for (i = 0; i < m; i++)
        n += a[i] != b[i];
    return n;
}

void plan_shard_order(const struct cfg_cluster *c, const char *hostname, const int *local,
                      size_t *order)
{
    size_t i, j, n = c->n_shards;
    size_t *diff = calloc(n ? n : 1, sizeof(*diff));

    for (i = 0; i < n; i++) {
        size_t best = (size_t)-1;
        for (j = 0; diff && j < c->shards[i].n_replicas; j++) {
            size_t d = plan_hostname_difference(hostname, c->shards[i].replicas[j].host);
            if (d < best)
                best = d;
        }
        if (diff)
            diff[i] = best;
        order[i] = i;
    }
    /* Insertion sort: (remote, difference, shard number). */
    for (i = 1; i < n; i++) {
        size_t x = order[i];
        for (j = i; j > 0; j--) {
            size_t y = order[j - 1];
            int before = (!local[x] && local[y]) ? 0
                         : (local[x] && !local[y]) ? 1
                         : diff ? diff[x] < diff[y] : 0;
            if (!before)
                break;
            order[j] = y;
        }
        order[j] = x;
    }
    free(diff);
}

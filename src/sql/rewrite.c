/* rewrite.c — CREATE statements made from what the server prints
 * (sql/rewrite.h): the staging twin of SHOW CREATE TABLE, the destination's
 * UUID. Pure: no I/O, no logging. The scanner knows ClickHouse quoting
 * ('...', "...", `...`, backslash escapes, doubled quotes) and bracket
 * nesting, and nothing of expressions: everything but the table name and
 * the engine's name and replication arguments is kept byte for byte.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/sql/rewrite.h"

#include "base/banned.h"

int sql_show_create(const char *db, const char *table, struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "SHOW CREATE TABLE ");

    if (r == 0)
        r = sql_table_ref(db, table, out);
    return r == 0 ? chc_buf_addstr(out, " FORMAT TabSeparated") : r;
}

static int is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Past the quoted token at p ('...', "..." or `...`); NULL if unterminated. */
static const char *skip_quoted(const char *p)
{
    char q = *p++;

    for (; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
        } else if (*p == q) {
            if (p[1] != q)
                return p + 1;
            p++;
        }
    }
    return NULL;
}

/* Past an identifier (quoted or bare); NULL if none is at p. */
static const char *skip_ident(const char *p)
{
    if (*p == '`' || *p == '"')
        return skip_quoted(p);
    if (!is_word(*p) || isdigit((unsigned char)*p))
        return NULL;
    while (is_word(*p))
        p++;
    return p;
}

/* Is the keyword kw (any case) at p, as a whole word? */
static int word_at(const char *p, const char *kw)
{
    size_t n = strlen(kw);

    return !strncasecmp(p, kw, n) && !is_word(p[n]);
}

/* The top-level ENGINE keyword of s (outside quotes and brackets). */
static const char *find_engine(const char *s)
{
    const char *p = s;
    int depth = 0;

    while (p && *p) {
        if (*p == '\'' || *p == '"' || *p == '`') {
            p = skip_quoted(p);
        } else if (*p == '(' || *p == '[') {
            depth++;
            p++;
        } else if (*p == ')' || *p == ']') {
            depth--;
            p++;
        } else if (depth == 0 && (p == s || !is_word(p[-1])) && word_at(p, "ENGINE")) {
            return p;
        } else {
            p++;
        }
    }
    return NULL;
}

#define MAX_ARGS 32

/* The arguments of the call whose '(' is at p: spans [a[i], b[i]) trimmed,
 * *ret_end past its ')'. -1 if unbalanced or too many. */
static int split_args(const char *p, const char **a, const char **b, size_t *n,
                      const char **ret_end)
{
    const char *start = ++p;
    int depth = 0;

    *n = 0;
    while (p && *p) {
        if (*p == '\'' || *p == '"' || *p == '`') {
            p = skip_quoted(p);
            continue;
        }
        if (*p == '(' || *p == '[')
            depth++;
        if (depth == 0 && (*p == ',' || *p == ')')) {
            const char *x = skip_ws(start), *y = p;
            while (y > x && isspace((unsigned char)y[-1]))
                y--;
            if (*n == MAX_ARGS || (x == y && (*p == ',' || *n > 0)))
                return -1;
            if (x < y) {
                a[*n] = x;
                b[(*n)++] = y;
            }
            if (*p == ')') {
                *ret_end = p + 1;
                return 0;
            }
            start = p + 1;
        }
        if (*p == ')' || *p == ']')
            depth--;
        p++;
    }
    return -1;
}

static int is_string_literal(const char *a, const char *b)
{
    return *a == '\'' && skip_quoted(a) == b;
}

/* "<base>(<args but the two replication ones>)<after>" for the engine
 * named [ns, ne) (a Replicated one). */
static int plain_engine(const char *ns, const char *ne, struct chc_buf *out,
                        const char **ret_after, struct chc_err *err)
{
    const char *a[MAX_ARGS], *b[MAX_ARGS], *after = ne;
    size_t n = 0, i, drop;
    int r;

    if (*ne == '(' && split_args(ne, a, b, &n, &after) < 0)
        return chc_err_set(err, CHC_EPARSE, "cannot read the arguments of %.*s", (int)(ne - ns),
                           ns);
    drop = n >= 2 && is_string_literal(a[0], b[0]) && is_string_literal(a[1], b[1]) ? 2 : 0;
    r = chc_buf_addf(out, "%.*s(", (int)(ne - ns - strlen("Replicated")), ns + strlen("Replicated"));
    for (i = drop; r == 0 && i < n; i++)
        r = chc_buf_addf(out, "%s%.*s", i > drop ? ", " : "", (int)(b[i] - a[i]), a[i]);
    if (r == 0)
        r = chc_buf_addch(out, ')');
    *ret_after = after;
    return r < 0 ? chc_err_set(err, r, "out of memory") : 0;
}

int sql_staging_from_show(const char *show, const char *db, const char *table,
                          struct chc_buf *out, struct chc_err *err)
{
    const char *p = skip_ws(show), *rest, *eng, *ns, *ne, *after;
    size_t len0 = out->len, nlen;
    int r;

    if (!word_at(p, "CREATE") || !word_at(skip_ws(p + 6), "TABLE"))
        return chc_err_set(err, CHC_EPARSE, "SHOW CREATE TABLE did not print a CREATE TABLE: "
                           "'%.60s'", show);
    p = skip_ident(skip_ws(skip_ws(p + 6) + 5));
    if (p && *p == '.')
        p = skip_ident(p + 1);
    if (p && word_at(skip_ws(p), "UUID")) {
        p = skip_ws(skip_ws(p) + 4);
        p = *p == '\'' ? skip_quoted(p) : NULL;
    }
    rest = p ? skip_ws(p) : NULL;
    eng = rest ? find_engine(rest) : NULL;
    if (!eng)
        return chc_err_set(err, CHC_EPARSE, "cannot find the ENGINE of '%.60s'", show);
    ns = skip_ws(eng + 6);
    if (*ns == '=')
        ns = skip_ws(ns + 1);
    for (ne = ns; is_word(*ne); ne++)
        ;
    nlen = (size_t)(ne - ns);
    if (nlen < 9 || strncmp(ne - 9, "MergeTree", 9))
        return chc_err_set(err, CHC_ECONFIG, "the engine %.*s is not a *MergeTree: it cannot have "
                           "staging tables", (int)(nlen ? nlen : 1), nlen ? ns : "?");
    r = chc_buf_addstr(out, "CREATE TABLE IF NOT EXISTS ");
    if (r == 0)
        r = sql_table_ref(db, table, out);
    if (r == 0)
        r = chc_buf_addf(out, " %.*s", (int)(ns - rest), rest);
    if (r < 0) {
        r = chc_err_set(err, r, "out of memory");
        goto fail;
    }
    after = ns;
    if (!strncmp(ns, "Replicated", strlen("Replicated")))
        r = plain_engine(ns, ne, out, &after, err);
    if (r == 0 && chc_buf_addstr(out, after) < 0)
        r = chc_err_set(err, -ENOMEM, "out of memory");
    if (r == 0)
        return 0;
fail:
    chc_buf_setlen(out, len0);
    return r;
}

int sql_needs_uuid(const struct cfg_table *tb, unsigned v)
{
    const struct engine_info *e = tb->engine;

    return e->replicated && (!e->zk_path || strstr(e->zk_path, "{uuid}")) &&
           dialect_has(v, DIALECT_CREATE_UUID);
}

int sql_table_uuid(const char *task_path, const struct cfg_table *tb, struct chc_buf *out)
{
    const char *parts[] = {task_path, tb->cluster_push, tb->database_push, tb->table_push};
    uint64_t h1 = CHC_HASH64_INIT, h2 = CHC_HASH64_INIT ^ 0x9e3779b97f4a7c15ULL;
    size_t i;

    for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        h1 = chc_hash64(h1, parts[i], strlen(parts[i]) + 1);
        h2 = chc_hash64(h2, parts[i], strlen(parts[i]) + 1);
    }
    h2 = chc_hash64(h2, &h1, sizeof(h1));
    /* RFC 4122 layout: version 4, variant 10xx. */
    return chc_buf_addf(out, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(h1 >> 32),
                        (unsigned)(h1 >> 16) & 0xffffu, (unsigned)h1 & 0xfffu,
                        (unsigned)(0x8000u | ((h2 >> 48) & 0x3fffu)),
                        (unsigned long long)(h2 & 0xffffffffffffULL));
}

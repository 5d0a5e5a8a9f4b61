/* rewrite.c — CREATE statements made from what the server prints
 * (sql/rewrite.h): the staging twin of SHOW CREATE TABLE, the destination's
 * UUID. Pure: no I/O, no logging. The tokens are config/lex.h's (ClickHouse
 * quoting, comments and bracket nesting); nothing of expressions is
 * understood: everything but the table name and the engine's name and
 * replication arguments is kept byte for byte.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/lex.h"
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

/* Token i is an identifier, bare or quoted. */
static int is_ident(const struct cfg_lexer *p, size_t i)
{
    return i < p->n && (p->toks[i].type == CFG_TOK_WORD || p->toks[i].type == CFG_TOK_QIDENT);
}

/* The first token after "CREATE TABLE [db.]name [UUID '...']"; -1 if the
 * text does not start so. */
static int after_name(const struct cfg_lexer *p, size_t *ret)
{
    size_t i = 3;

    if (!cfg_tok_is_word(p, 0, "CREATE") || !cfg_tok_is_word(p, 1, "TABLE") || !is_ident(p, 2))
        return -1;
    if (cfg_tok_is_char(p, i, '.')) {
        if (!is_ident(p, i + 1))
            return -1;
        i += 2;
    }
    if (cfg_tok_is_word(p, i, "UUID")) {
        if (i + 1 >= p->n || p->toks[i + 1].type != CFG_TOK_STRING)
            return -1;
        i += 2;
    }
    *ret = i;
    return i < p->n ? 0 : -1;
}

/* The engine's name token: after the top-level ENGINE [=] from token i;
 * 0 if there is none. */
static size_t engine_name(const struct cfg_lexer *p, size_t i)
{
    for (; i < p->n; i++)
        if (p->toks[i].depth == 0 && cfg_tok_is_word(p, i, "ENGINE"))
            break;
    if (++i < p->n && cfg_tok_is_char(p, i, '='))
        i++;
    return i < p->n && p->toks[i].type == CFG_TOK_WORD ? i : 0;
}

/* "<base>(<args but the two replication ones>)" for the Replicated engine
 * named by token e; *ret_after: the first byte after its arguments. */
static int plain_engine(struct cfg_lexer *p, size_t e, struct chc_buf *out, size_t *ret_after)
{
    const struct cfg_tok *t = &p->toks[e];
    const size_t skip = strlen("Replicated");
    struct cfg_span *a = NULL;
    size_t n = 0, i, drop;
    int r = 0;

    *ret_after = t->end;
    if (e + 1 < p->n && p->toks[e + 1].type == CFG_TOK_OPEN && cfg_tok_is_char(p, e + 1, '(')) {
        r = cfg_lex_split(p, e + 2, p->toks[e + 1].match, t->depth + 1, "engine argument", &a,
                          &n);
        *ret_after = p->toks[p->toks[e + 1].match].end;
    }
    drop = n >= 2 && cfg_span_is_string(p, &a[0]) && cfg_span_is_string(p, &a[1]) ? 2 : 0;
    if (r == 0 && chc_buf_addf(out, "%.*s(", (int)(t->end - t->start - skip),
                               p->text + t->start + skip) < 0)
        r = -ENOMEM;
    for (i = drop; r == 0 && i < n; i++)
        if (chc_buf_addf(out, "%s%.*s", i > drop ? ", " : "",
                         (int)(p->toks[a[i].last].end - p->toks[a[i].first].start),
                         p->text + p->toks[a[i].first].start) < 0)
            r = -ENOMEM;
    if (r == 0 && chc_buf_addch(out, ')') < 0)
        r = -ENOMEM;
    free(a);
    return r == -ENOMEM ? chc_err_set(p->err, r, "out of memory") : r;
}

int sql_staging_from_show(const char *show, const char *db, const char *table,
                          struct chc_buf *out, struct chc_err *err)
{
    struct cfg_lexer p = {.text = show, .len = strlen(show), .err = err};
    size_t len0 = out->len, rest, e, after, nlen;
    const char *name;
    int r = cfg_lex(&p);

    if (r < 0) {
        chc_err_prefix(err, "cannot read what SHOW CREATE TABLE printed");
        goto out;
    }
    if (after_name(&p, &rest) < 0) {
        r = chc_err_set(err, CHC_EPARSE, "SHOW CREATE TABLE did not print a CREATE TABLE: "
                        "'%.60s'", show);
        goto out;
    }
    e = engine_name(&p, rest);
    if (!e) {
        r = chc_err_set(err, CHC_EPARSE, "cannot find the ENGINE of '%.60s'", show);
        goto out;
    }
    name = show + p.toks[e].start;
    nlen = p.toks[e].end - p.toks[e].start;
    if (nlen < 9 || strncmp(name + nlen - 9, "MergeTree", 9)) {
        r = chc_err_set(err, CHC_ECONFIG, "the engine %.*s is not a *MergeTree: it cannot have "
                        "staging tables", (int)nlen, name);
        goto out;
    }
    r = chc_buf_addstr(out, "CREATE TABLE IF NOT EXISTS ") < 0 ||
                sql_table_ref(db, table, out) < 0 ||
                chc_buf_addf(out, " %.*s", (int)(p.toks[e].start - p.toks[rest].start),
                             show + p.toks[rest].start) < 0
            ? chc_err_set(err, -ENOMEM, "out of memory")
            : 0;
    after = p.toks[e].start;
    if (r == 0 && !strncmp(name, "Replicated", strlen("Replicated")))
        r = plain_engine(&p, e, out, &after);
    if (r == 0 && chc_buf_addstr(out, show + after) < 0)
        r = chc_err_set(err, -ENOMEM, "out of memory");
out:
    if (r < 0)
        chc_buf_setlen(out, len0);
    free(p.toks);
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

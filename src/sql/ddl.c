/* ddl.c — table statements and the copy's column lists (sql/ddl.h). Pure:
 * no I/O, no logging. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/sqlhash.h"

#include "base/banned.h"

int sql_table_ref(const char *db, const char *table, struct chc_buf *out)
{
    int r = chc_buf_add_ident(out, db);

    if (r == 0)
        r = chc_buf_addch(out, '.');
    return r == 0 ? chc_buf_add_ident(out, table) : r;
}

int sql_describe(const char *db, const char *table, struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "DESCRIBE TABLE ");

    if (r == 0)
        r = sql_table_ref(db, table, out);
    return r == 0 ? chc_buf_addstr(out, " FORMAT TabSeparated") : r;
}

int sql_table_facts(const char *db, const char *table, struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "SELECT engine, partition_key, sorting_key FROM system.tables "
                                "WHERE database = ");

    if (r == 0)
        r = chc_buf_add_sqlstr(out, db);
    if (r == 0)
        r = chc_buf_addstr(out, " AND name = ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, table);
    return r == 0 ? chc_buf_addstr(out, " FORMAT TabSeparated") : r;
}

int sql_list_assemblies(const struct cfg_table *tb, struct chc_buf *out)
{
    struct chc_buf prefix = CHC_BUF_INIT;
    int r = chc_buf_addf(&prefix, "%s_assembly_", tb->table_push);

    /* substring, not startsWith or match: the same on 18.16 and 26.x. */
    if (r == 0)
        r = chc_buf_addstr(out, "SELECT name FROM system.tables WHERE database = ");
    if (r == 0)
        r = chc_buf_add_sqlstr(out, tb->database_push);
    if (r == 0)
        r = chc_buf_addf(out, " AND length(name) = %zu AND substring(name, 1, %zu) = ",
                         prefix.len + PLAN_ASSEMBLY_SUFFIX_LEN - 1, prefix.len);
    if (r == 0)
        r = chc_buf_add_sqlstr(out, prefix.buf);
    if (r == 0)
        r = chc_buf_addstr(out, " ORDER BY name FORMAT TabSeparated");
    chc_buf_release(&prefix);
    return r;
}

int sql_create_database(const char *db, struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "CREATE DATABASE IF NOT EXISTS ");

    return r == 0 ? chc_buf_add_ident(out, db) : r;
}

static int col_def(const struct cfg_table *tb, const struct sql_column *c, struct chc_buf *out)
{
    int r = chc_buf_add_ident(out, c->name);

    if (r == 0)
        r = chc_buf_addf(out, " %s", c->type);
    if (r == 0 && *c->kind && *c->expr &&
        !(tb->allow_alias_materialized &&
          (!strcmp(c->kind, "MATERIALIZED") || !strcmp(c->kind, "ALIAS"))))
        r = chc_buf_addf(out, " %s %s", c->kind, c->expr);
    return r;
}

int sql_create_table(const struct cfg_table *tb, const struct sql_column *cols, size_t n,
                     const char *table, enum sql_table_kind kind, const char *uuid,
                     struct chc_buf *out, struct chc_err *err)
{
    size_t i;
    int r = chc_buf_addstr(out, "CREATE TABLE IF NOT EXISTS ");

    if (r == 0)
        r = sql_table_ref(tb->database_push, table, out);
    if (r == 0 && uuid) {
        r = chc_buf_addstr(out, " UUID ");
        if (r == 0)
            r = chc_buf_add_sqlstr(out, uuid);
    }
    if (r == 0)
        r = chc_buf_addstr(out, " (");
    for (i = 0; r == 0 && i < n; i++) {
        if (i)
            r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = col_def(tb, &cols[i], out);
    }
    if (r == 0)
        r = chc_buf_addstr(out, ") ");
    if (r < 0)
        return chc_err_set(err, r, "out of memory");
    return engine_build_clause(tb->engine, kind == SQL_TABLE_STAGING, out, err);
}

int sql_drop_table(const char *db, const char *table, struct chc_buf *out)
{
    int r = chc_buf_addstr(out, "DROP TABLE IF EXISTS ");

    return r == 0 ? sql_table_ref(db, table, out) : r;
}

/* One column as checksum input (sqlhash.h): the source casts to the
 * destination's type (without LowCardinality, which 18.16 cannot hash) so
 * that both sides hash the same values. */
static int hash_arg(const struct sql_column *c, int cast, struct chc_buf *out,
                    struct chc_err *err)
{
    struct chc_buf x = CHC_BUF_INIT, t = CHC_BUF_INIT;
    int r = 0;

    if (cast) {
        r = sqlhash_strip_lc(c->type, &t, err);
        if (r == 0 && (chc_buf_addstr(&x, "CAST(") < 0 || chc_buf_add_ident(&x, c->name) < 0 ||
                       chc_buf_addf(&x, " AS %s)", t.buf) < 0))
            r = chc_err_set(err, -ENOMEM, "out of memory");
    } else if (chc_buf_add_ident(&x, c->name) < 0) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
    }
    if (r == 0)
        r = sqlhash_args(x.buf, cast ? t.buf : c->type, out, err);
    chc_buf_release(&x);
    chc_buf_release(&t);
    return r;
}

static int stored(const struct sql_column *c)
{
    return strcmp(c->kind, "MATERIALIZED") && strcmp(c->kind, "ALIAS") &&
           strcmp(c->kind, "EPHEMERAL");
}

/* One stored column appended to the four lists. */
static int add_column(const struct sql_column *c, int first, struct chc_buf *b,
                      struct chc_err *err)
{
    const char *sep = first ? "" : ", ";
    int r = chc_buf_addstr(&b[0], sep);

    if (r == 0)
        r = chc_buf_add_ident(&b[0], c->name);
    if (r == 0)
        r = chc_buf_addf(&b[1], "%sCAST(", sep);
    if (r == 0)
        r = chc_buf_add_ident(&b[1], c->name);
    if (r == 0)
        r = chc_buf_addf(&b[1], " AS %s) AS ", c->type);
    if (r == 0)
        r = chc_buf_add_ident(&b[1], c->name);
    if (r == 0)
        r = chc_buf_addstr(&b[2], sep);
    if (r == 0)
        r = chc_buf_addstr(&b[3], sep);
    if (r < 0)
        return chc_err_set(err, r, "out of memory");
    r = hash_arg(c, 1, &b[2], err);
    return r == 0 ? hash_arg(c, 0, &b[3], err) : r;
}

int sql_columns_build(const struct sql_column *cols, size_t n, struct sql_columns *out,
                      struct chc_err *err)
{
    struct chc_buf b[4] = {CHC_BUF_INIT, CHC_BUF_INIT, CHC_BUF_INIT, CHC_BUF_INIT};
    size_t i, m = 0, j;
    int r = chc_buf_addstr(&b[2], "cityHash64(") < 0 || chc_buf_addstr(&b[3], "cityHash64(") < 0
                ? chc_err_set(err, -ENOMEM, "out of memory")
                : 0;

    for (i = 0; r == 0 && i < n; i++)
        if (stored(&cols[i]))
            r = add_column(&cols[i], m++ == 0, b, err);
    if (r == 0 && m == 0)
        r = chc_err_set(err, CHC_ECONFIG, "no columns to copy");
    if (r == 0 && (chc_buf_addch(&b[2], ')') < 0 || chc_buf_addch(&b[3], ')') < 0))
        r = chc_err_set(err, -ENOMEM, "out of memory");
    if (r < 0) {
        for (j = 0; j < 4; j++)
            chc_buf_release(&b[j]);
        return r;
    }
    out->copy = chc_buf_take(&b[0], NULL);
    out->cast = chc_buf_take(&b[1], NULL);
    out->hash_src = chc_buf_take(&b[2], NULL);
    out->hash_dst = chc_buf_take(&b[3], NULL);
    return 0;
}

void sql_columns_release(struct sql_columns *c)
{
    free(c->copy);
    free(c->cast);
    free(c->hash_src);
    free(c->hash_dst);
    memset(c, 0, sizeof(*c));
}

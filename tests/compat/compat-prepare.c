/* compat-prepare.c — compat-gen's first two phases: the fixtures (typed
 * here: they stand for the user's tables) with what the engine prints about
 * them captured, then chcopier's preflight, discovery and table creation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"
#include "chcopier/sql/rewrite.h"
#include "chcopier/ch/rows.h"
#include "compat-gen.h"
#include "compat-matrix.h"

/* CREATE TABLE db.<prefix>_<name> (<cols>) ENGINE = ... [COMMENT '...'] */
static void fixture_table(const struct compat_entry *e, const char *prefix)
{
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT;

    gen_oom(chc_buf_addf(&b, "CREATE TABLE %s.%s_%s (%s) ENGINE = %s", COMPAT_DB, prefix, e->name,
                         e->cols, e->dst_engine ? e->dst_engine : e->engine));
    if (e->comment) {
        gen_oom(chc_buf_addstr(&b, " COMMENT "));
        gen_oom(chc_buf_add_sqlstr(&b, e->comment));
    }
    gen_oom(chc_buf_addf(&name, "%s: fixture: CREATE TABLE %s_%s", e->name, prefix, e->name));
    gen_emit(name.buf, &(struct gen_rec){.note = e->note}, b.buf);
    chc_buf_release(&b);
    chc_buf_release(&name);
}

/* What 26.x prints about a table, kept as golden files for the parsers'
 * unit test (tests/unit/data/compat-26.7/). */
static void capture_reads(const struct compat_entry *e, const char *table, const char *tag)
{
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, file = CHC_BUF_INIT;

    gen_oom(chc_buf_addf(&b, "SHOW CREATE TABLE %s.%s FORMAT TabSeparated", COMPAT_DB, table));
    gen_oom(chc_buf_addf(&name, "%s: read: SHOW CREATE TABLE %s", e->name, table));
    gen_oom(chc_buf_addf(&file, "showcreate-%s%s.tsv", tag, e->name));
    gen_emit(name.buf, &(struct gen_rec){.capture = file.buf}, b.buf);
    chc_buf_reset(&b);
    chc_buf_reset(&name);
    chc_buf_reset(&file);
    gen_oom(chc_buf_addf(&b,
                         "SELECT name, type, default_kind, default_expression, compression_codec, "
                         "comment FROM system.columns WHERE database = '%s' AND table = '%s' "
                         "ORDER BY position FORMAT TabSeparated",
                         COMPAT_DB, table));
    gen_oom(chc_buf_addf(&name, "%s: read: system.columns of %s", e->name, table));
    gen_oom(chc_buf_addf(&file, "columns-%s%s.tsv", tag, e->name));
    gen_emit(name.buf, &(struct gen_rec){.capture = file.buf}, b.buf);
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&file);
}

static void fixtures_entry(const struct compat_entry *e)
{
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, t = CHC_BUF_INIT;
    struct chc_buf file = CHC_BUF_INIT;

    fixture_table(e, "src");
    fixture_table(e, "dst");
    gen_oom(chc_buf_addf(&b, "INSERT INTO %s.src_%s %s", COMPAT_DB, e->name, e->insert));
    gen_oom(chc_buf_addf(&name, "%s: fixture: INSERT INTO src_%s", e->name, e->name));
    gen_emit_buf(name.buf, NULL, &b, 0);
    chc_buf_reset(&name);
    gen_oom(chc_buf_addf(&name, "%s: DESCRIBE dst (sql_describe)", e->name));
    gen_oom(chc_buf_addf(&t, "dst_%s", e->name));
    gen_oom(chc_buf_addf(&file, "describe-%s.tsv", e->name));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b,
                 sql_describe(COMPAT_DB, t.buf, &b));
    chc_buf_reset(&name);
    chc_buf_reset(&file);
    gen_oom(chc_buf_addf(&name, "%s: DESCRIBE src (sql_describe)", e->name));
    gen_oom(chc_buf_addf(&file, "describe-src-%s.tsv", e->name));
    chc_buf_reset(&t);
    gen_oom(chc_buf_addf(&t, "src_%s", e->name));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b,
                 sql_describe(COMPAT_DB, t.buf, &b));
    chc_buf_reset(&name);
    chc_buf_reset(&file);
    chc_buf_reset(&t);
    gen_oom(chc_buf_addf(&t, "dst_%s", e->name));
    gen_oom(chc_buf_addf(&name, "%s: system.tables facts of dst (sql_table_facts)", e->name));
    gen_oom(chc_buf_addf(&file, "facts-%s.tsv", e->name));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b,
                 sql_table_facts(COMPAT_DB, t.buf, &b));
    capture_reads(e, t.buf, "");
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&t);
    chc_buf_release(&file);
}

void gen_fixtures(void)
{
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    gen_emit("probe (SQL_PROBE)", NULL, SQL_PROBE);
    gen_emit_buf("CREATE DATABASE (sql_create_database)", NULL, &b,
                 sql_create_database(COMPAT_DB, &b));
    gen_emit_buf("CREATE DATABASE again: IF NOT EXISTS (sql_create_database)", NULL, &b,
                 sql_create_database(COMPAT_DB, &b));
    gen_emit_buf("system.clusters (sql_clusters)",
                 &(struct gen_rec){.note = "the task's clusters, given to the engine as "
                                           "remote_servers; route_match_cluster reads the answer "
                                           "in test-compat",
                                   .capture = "clusters.tsv"},
                 &b, sql_clusters(&b));
    for (i = 0; i < compat_matrix_n; i++)
        fixtures_entry(&compat_matrix[i]);
    chc_buf_release(&b);
}

/* The preflight's statements: the task's expressions, together and one by
 * one; the first answer's header gives the key types for the next phase. */
static void preflight(const struct compat_entry *e, const struct cfg_table *tb)
{
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, file = CHC_BUF_INIT;
    size_t i;

    gen_oom(chc_buf_addf(&name, "%s: preflight expressions (sql_check_exprs)", e->name));
    gen_oom(chc_buf_addf(&file, "hdr-%s.tsv", e->name));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b, sql_check_exprs(tb, &b));
    if (tb->where_condition) {
        chc_buf_reset(&name);
        gen_oom(chc_buf_addf(&name, "%s: preflight WHERE (sql_check_element)", e->name));
        gen_emit_buf(name.buf, NULL, &b, sql_check_element(tb, SQL_EL_WHERE, 0, &b));
    }
    chc_buf_reset(&name);
    gen_oom(chc_buf_addf(&name, "%s: preflight sharding key (sql_check_element)", e->name));
    gen_emit_buf(name.buf, NULL, &b, sql_check_element(tb, SQL_EL_KEY, 0, &b));
    chc_buf_reset(&name);
    gen_oom(chc_buf_addf(&name, "%s: preflight PARTITION BY (sql_check_element)", e->name));
    gen_emit_buf(name.buf, NULL, &b, sql_check_element(tb, SQL_EL_PARTITION, 0, &b));
    for (i = 0; i < tb->engine->n_key_columns; i++) {
        chc_buf_reset(&name);
        gen_oom(chc_buf_addf(&name, "%s: preflight ORDER BY element %zu (sql_check_element)",
                             e->name, i));
        gen_emit_buf(name.buf, NULL, &b, sql_check_element(tb, SQL_EL_ORDER, i, &b));
    }
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&file);
}

/* The destination as chcopier would create it (from the source's
 * DESCRIBE; with the UUID a {uuid} or arg-less Replicated engine needs),
 * and the staging tables: the destination's SHOW CREATE twins, and the
 * DESCRIBE-made twin `plan` shows before the destination exists. */
static void create_destination(const struct compat_entry *e, const struct cfg_table *tb)
{
    struct gen_cols src = gen_describe("describe-src-", e);
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, t = CHC_BUF_INIT, u = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    int uuid = sql_needs_uuid(tb, gen_version);

    gen_oom(chc_buf_addf(&t, "dst_%s_made", e->name));
    if (uuid) {
        gen_oom(sql_table_uuid("/chcopier/compat", tb, &u));
        gen_oom(chc_buf_addf(&name, "%s: CREATE TABLE destination without a UUID "
                                    "(sql_create_table)", e->name));
        if (sql_create_table(tb, src.v, src.n, t.buf, SQL_TABLE_DESTINATION, NULL, &b, &err) < 0)
            gen_fail(e->name, err.msg);
        gen_emit_buf(name.buf, &(struct gen_rec){.expect_error = "Macro 'uuid'"}, &b, 0);
        chc_buf_reset(&name);
    }
    gen_oom(chc_buf_addf(&name, "%s: CREATE TABLE destination%s (sql_create_table)", e->name,
                         uuid ? " with its UUID (sql_needs_uuid, sql_table_uuid)" : ""));
    if (sql_create_table(tb, src.v, src.n, t.buf, SQL_TABLE_DESTINATION, uuid ? u.buf : NULL,
                         &b, &err) < 0)
        gen_fail(e->name, err.msg);
    gen_emit_buf(name.buf,
                 &(struct gen_rec){.note = e->dst_engine ? "in-process: no {shard} macro, no "
                                                           "ZooKeeper: refused after the UUID "
                                                           "and the parsing"
                                                         : NULL,
                                   .expect_error = e->dst_engine ? "NO_ELEMENTS_IN_CONFIG" : NULL},
                 &b, 0);
    gen_cols_free(&src);
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&t);
    chc_buf_release(&u);
}

static void create_tables(const struct compat_entry *e, const struct cfg_table *tb)
{
    struct gen_cols dst = gen_describe("describe-", e), shw = gen_describe("showcreate-", e);
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, t = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    unsigned k;

    create_destination(e, tb);
    for (k = 0; k <= plan_splits(tb); k++) {
        chc_buf_reset(&t);
        chc_buf_reset(&name);
        gen_oom(k < plan_splits(tb) ? plan_piece_table(tb, k, &t) : plan_assembly_table(tb, &t));
        gen_oom(chc_buf_addf(&name, "%s: CREATE TABLE staging %s, the destination's twin "
                                    "(sql_staging_from_show)", e->name, t.buf));
        if (sql_staging_from_show(ch_rows_str(shw.rows, 0, 0), tb->database_push, t.buf, &b,
                                  &err) < 0)
            gen_fail(e->name, err.msg);
        gen_emit_buf(name.buf, NULL, &b, 0);
    }
    chc_buf_reset(&t);
    chc_buf_reset(&name);
    gen_oom(chc_buf_addf(&t, "dst_%s_plan_twin", e->name));
    gen_oom(chc_buf_addf(&name, "%s: CREATE TABLE staging as `plan` shows it (sql_create_table)",
                         e->name));
    if (sql_create_table(tb, dst.v, dst.n, t.buf, SQL_TABLE_STAGING, NULL, &b, &err) < 0)
        gen_fail(e->name, err.msg);
    gen_emit_buf(name.buf, NULL, &b, 0);
    chc_buf_reset(&t);
    gen_oom(plan_piece_table(tb, 0, &t));
    capture_reads(e, t.buf, "piece-");
    gen_cols_free(&dst);
    gen_cols_free(&shw);
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&t);
}

static void prepare_entry(const struct compat_entry *e)
{
    struct cfg_task *task = gen_task(e);
    const struct cfg_table *tb = &task->tables[0];
    struct gen_cols dst = gen_describe("describe-", e);
    struct sql_columns cols = {0};
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, file = CHC_BUF_INIT;

    if (sql_columns_build(dst.v, dst.n, &cols, &err) < 0)
        gen_fail(e->name, err.msg);
    preflight(e, tb);
    gen_oom(chc_buf_addf(&name, "%s: discovery: partitions, rows, checksums (sql_discover)",
                         e->name));
    gen_oom(chc_buf_addf(&file, "discover-%s.values", e->name));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b,
                 sql_discover(tb, cols.hash_src, &b));
    chc_buf_reset(&name);
    gen_oom(chc_buf_addf(&name, "%s: discovery without checksums (sql_discover)", e->name));
    gen_emit_buf(name.buf, NULL, &b, sql_discover(tb, NULL, &b));
    create_tables(e, tb);
    chc_buf_reset(&name);
    chc_buf_reset(&file);
    gen_oom(chc_buf_addf(&name, "%s: read: system.parts of src", e->name));
    gen_oom(chc_buf_addf(&file, "parts-%s.tsv", e->name));
    gen_oom(chc_buf_addf(&b,
                         "SELECT partition, partition_id, name, rows, active, part_type "
                         "FROM system.parts WHERE database = '%s' AND table = 'src_%s' "
                         "ORDER BY name FORMAT TabSeparated",
                         COMPAT_DB, e->name));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b, 0);
    sql_columns_release(&cols);
    gen_cols_free(&dst);
    cfg_task_free(task);
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&file);
}

void gen_prepare(void)
{
    size_t i;

    for (i = 0; i < compat_matrix_n; i++)
        prepare_entry(&compat_matrix[i]);
}

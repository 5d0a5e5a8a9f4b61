/* compat-move.c — compat-gen's last phase: every partition discovered on
 * 26.7 is copied piece by piece (the pull path for destination shard 1,
 * the pipe path for shard 2, so each row arrives once), assembled, moved
 * with REPLACE PARTITION, verified against discovery's rows and checksum,
 * and released; then the helpers go. Runs with max_table_size_to_drop = 1
 * byte: every DROP TABLE of a staging table that still holds data is
 * refused, as it would be for a staging table over 50 GB on a server with
 * the default.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/rows.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/copy.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/sql/sqlhash.h"
#include "compat-gen.h"
#include "compat-matrix.h"

#define MAX_PARTS 32

/* What chcopier sends with every statement that drops staging data
 * (dialect_drop_settings: HTTP parameters, here a SETTINGS clause). */
static void drop_settings(struct chc_buf *b)
{
    const struct cfg_settings *sets[] = {dialect_drop_settings(gen_version)};

    gen_oom(plan_settings_clause(sets, 1, b));
}

#define DROP_NOTE "with dialect_drop_settings, which chcopier sends as HTTP parameters"

/* One entry's facts, from the captured answers of the earlier phases. */
struct ctx {
    const struct compat_entry *e;
    struct cfg_task *task;
    const struct cfg_table *tb;
    struct sql_columns cols;
    struct plan_key key;
    char *split_args;
    struct ch_rows *hdr;
    char *lits[MAX_PARTS], *expect[MAX_PARTS]; /* "1\t<rows>\t<checksum>" */
    size_t n_lits;
    struct chc_buf name;
};

static const char *nm(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *nm(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    int r;

    chc_buf_reset(&c->name);
    gen_oom(chc_buf_addf(&c->name, "%s: ", c->e->name));
    va_start(ap, fmt);
    r = chc_buf_addvf(&c->name, fmt, ap);
    va_end(ap);
    gen_oom(r);
    return c->name.buf;
}

/* The sorting key in hashable form and the sharding key's facts, as the
 * preflight derives them (src/copier/preflight.c) from the header of
 * sql_check_exprs's answer. */
static void key_facts(struct ctx *c)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf sa = CHC_BUF_INIT, x = CHC_BUF_INIT;
    char *text = gen_read("hdr-", c->e, ".tsv");
    const char *names[64];
    size_t i, n;

    if (ch_tsv_parse(text, strlen(text), &c->hdr, &err) < 0 || ch_rows_count(c->hdr) < 2)
        gen_fail(c->e->name, "hdr: not TSVWithNamesAndTypes");
    free(text);
    for (i = 0; i < c->tb->engine->n_key_columns; i++) {
        chc_buf_reset(&x);
        gen_oom(plan_key_expr(c->tb, i, &x));
        if (i)
            gen_oom(chc_buf_addstr(&sa, ", "));
        if (sqlhash_args(x.buf, ch_rows_str(c->hdr, 1, 1 + i), &sa, &err) < 0)
            gen_fail(c->e->name, err.msg);
    }
    c->split_args = chc_buf_take(&sa, NULL);
    struct gen_cols src = gen_describe("describe-src-", c->e);
    for (n = 0; n < src.n && n < 64; n++)
        names[n] = src.v[n].name;
    c->key = (struct plan_key){.type = ch_rows_str(c->hdr, 1, 0),
                               .constant = !plan_expr_uses_columns(c->tb->sharding_key, names, n),
                               .split_args = c->split_args};
    gen_cols_free(&src);
    chc_buf_release(&x);
}

/* Discovery's rows "(<lit>, <rows>, <sum>)" as src/copier/tables.c reads them. */
static void discovered(struct ctx *c)
{
    struct chc_err err = CHC_ERR_INIT;
    char *text = gen_read("discover-", c->e, ".values"), **vals = NULL, *c2, *c1;
    size_t n = 0, i;
    struct chc_buf x = CHC_BUF_INIT;

    if (plan_parse_values(text, &vals, &n, &err) < 0)
        gen_fail(c->e->name, err.msg);
    if (n == 0 || n > MAX_PARTS)
        gen_fail(c->e->name, "discovery found no partitions, or too many");
    for (i = 0; i < n; i++) {
        c2 = strrchr(vals[i], ',');
        *c2 = '\0';
        c1 = strrchr(vals[i], ',');
        *c1 = '\0';
        chc_buf_reset(&x);
        gen_oom(chc_buf_addf(&x, "1\\t%s\\t%s", c1 + 1, c2 + 1));
        c->expect[i] = chc_buf_take(&x, NULL);
        c->lits[i] = strdup(c->tb->engine->partition_by ? vals[i] : PLAN_UNPARTITIONED);
        free(vals[i]);
    }
    free(vals);
    free(text);
    c->n_lits = n;
}

/* Piece k of partition i into <t>_piece_<k>: the rows of destination shard
 * 1 by the pull path, those of shard 2 by the pipe path. */
static void copy_piece(struct ctx *c, size_t i, unsigned k, unsigned splits)
{
    const struct cfg_replica *src = &c->tb->pull->shards[0].replicas[0];
    const struct cfg_settings *pull[] = {&c->task->settings, &c->task->settings_pull};
    struct sql_piece p = {.tb = c->tb, .lits = (const char *const *)&c->lits[i], .n_lits = 1,
                          .splits = splits, .k = k, .split_args = c->split_args,
                          .key = &c->key, .dest_shard = 0};
    struct chc_buf b = CHC_BUF_INIT, rem = CHC_BUF_INIT, loc = CHC_BUF_INIT, fixed = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    char *at;

    if (sql_copy_pull(&p, c->cols.copy, src, pull, 2, &b, &err) < 0)
        gen_fail(c->e->name, err.msg);
    gen_oom(sql_remote(src, c->tb->database_pull, c->tb->table_pull, &rem));
    gen_oom(sql_table_ref(c->tb->database_pull, c->tb->table_pull, &loc));
    at = strstr(b.buf, rem.buf);
    if (!at)
        gen_fail(c->e->name, "the pull statement has no remote()");
    gen_oom(chc_buf_add(&fixed, b.buf, (size_t)(at - b.buf)));
    gen_oom(chc_buf_addstr(&fixed, loc.buf));
    gen_oom(chc_buf_addstr(&fixed, at + rem.len));
    gen_emit(nm(c, "copy pull %s piece %u, shard 1 (sql_copy_pull)", c->lits[i], k),
             &(struct gen_rec){.note = "in-process: remote(...) replaced by the local source "
                                       "table"},
             fixed.buf);
    chc_buf_reset(&b);
    p.dest_shard = 1;
    if (sql_copy_select(&p, c->cols.copy, c->cols.cast, &b, &err) < 0)
        gen_fail(c->e->name, err.msg);
    gen_emit(nm(c, "copy pipe SELECT %s piece %u, shard 2 (sql_copy_select)", c->lits[i], k),
             &(struct gen_rec){.format = "Native", .save = "pipe"}, b.buf);
    chc_buf_reset(&b);
    gen_emit_buf(nm(c, "copy pipe INSERT %s piece %u (sql_copy_insert)", c->lits[i], k),
                 &(struct gen_rec){.data = "pipe", .empty_data_error = "NO_DATA_TO_INSERT"}, &b, sql_copy_insert(&p, c->cols.copy, &b));
    gen_emit_buf(nm(c, "count piece %s %u (sql_count_piece)", c->lits[i], k), NULL, &b,
                 sql_count_piece(c->tb, k, (const char *const *)&c->lits[i], 1, &b));
    chc_buf_release(&b);
    chc_buf_release(&rem);
    chc_buf_release(&loc);
    chc_buf_release(&fixed);
}

/* "move <lit>: <what>[ <k>] (sql_move_step)"; a release drops staging
 * data, so it goes with the drop settings. */
static void step(struct ctx *c, enum move_step s, const char *what, size_t i, unsigned k)
{
    struct chc_buf b = CHC_BUF_INIT;
    int piece = s == MOVE_ATTACH_PIECES || s == MOVE_RELEASE_PIECES;
    int release = s == MOVE_RELEASE_PIECES || s == MOVE_RELEASE_ASSEMBLY;
    const char *verb = release ? "release" : "move";

    gen_oom(sql_move_step(c->tb, s, c->lits[i], k, &b));
    if (release)
        drop_settings(&b);
    gen_emit_buf(piece ? nm(c, "%s %s: %s %u (sql_move_step)", verb, c->lits[i], what, k)
                       : nm(c, "%s %s: %s (sql_move_step)", verb, c->lits[i], what),
                 &(struct gen_rec){.note = release ? DROP_NOTE : NULL}, &b, 0);
    chc_buf_release(&b);
}

/* The checksum of partition i in db.table equals discovery's. */
static void sums(struct ctx *c, size_t i, int source)
{
    struct chc_buf b = CHC_BUF_INIT;
    const struct cfg_table *tb = c->tb;

    gen_oom(sql_sums(tb, (const char *const *)&c->lits[i], 1,
                     source ? tb->database_pull : tb->database_push,
                     source ? tb->table_pull : tb->table_push,
                     source ? c->cols.hash_src : c->cols.hash_dst, source, &b));
    gen_emit(nm(c, "sums %s on the %s = discovery's (sql_sums)", c->lits[i],
                source ? "source" : "destination"),
             &(struct gen_rec){.expect = c->expect[i]}, b.buf);
    chc_buf_release(&b);
}

/* Caught on 26.7 (docs/compatibility.md): after REPLACE the assembly still
 * holds its partition (REPLACE copies parts), so its DROP TABLE without the
 * drop settings is refused once the partition is over the limit. */
static void release_refused(struct ctx *c, size_t i)
{
    struct chc_buf b = CHC_BUF_INIT;

    if (dialect_drop_settings(gen_version)->n == 0)
        return;
    gen_emit_buf(nm(c, "release %s: DROP TABLE of its assembly without the drop settings is "
                       "refused (Code 359)", c->lits[i]),
                 &(struct gen_rec){.expect_error = "TABLE_SIZE_EXCEEDS_MAX_DROP_SIZE_LIMIT"}, &b,
                 sql_move_step(c->tb, MOVE_RELEASE_ASSEMBLY, c->lits[i], 0, &b));
    chc_buf_release(&b);
}

static void move_partition(struct ctx *c, size_t i)
{
    unsigned splits = plan_splits(c->tb), k;
    struct chc_buf b = CHC_BUF_INIT;

    for (k = 0; k < splits; k++)
        copy_piece(c, i, k, splits);
    step(c, MOVE_CREATE_ASSEMBLY, "CREATE assembly AS template", i, 0);
    step(c, MOVE_DROP_ASSEMBLY, "DROP PARTITION of the assembly", i, 0);
    step(c, MOVE_ATTACH_DEST, "ATTACH PARTITION FROM destination", i, 0);
    for (k = 0; k < splits; k++)
        step(c, MOVE_ATTACH_PIECES, "ATTACH PARTITION FROM piece", i, k);
    gen_emit_buf(nm(c, "sums %s of its assembly = discovery's (sql_sums_assemblies)", c->lits[i]),
                 &(struct gen_rec){.expect = c->expect[i]}, &b,
                 sql_sums_assemblies(c->tb, (const char *const *)&c->lits[i], 1,
                                     c->cols.hash_dst, &b));
    step(c, MOVE_REPLACE, "REPLACE PARTITION FROM assembly", i, 0);
    sums(c, i, 0);
    sums(c, i, 1);
    for (k = 0; k < splits; k++)
        step(c, MOVE_RELEASE_PIECES, "DROP PARTITION of piece", i, k);
    release_refused(c, i);
    step(c, MOVE_RELEASE_ASSEMBLY, "DROP TABLE of its assembly", i, 0);
    chc_buf_release(&b);
}

/* Every partition at once: a line per partition, in order, each equal to
 * discovery's ("1\t<rows>\t<sum>" with its own index). */
static char *all_expected(const struct ctx *c)
{
    struct chc_buf x = CHC_BUF_INIT;
    size_t i;

    for (i = 0; i < c->n_lits; i++)
        gen_oom(chc_buf_addf(&x, "%s%zu%s", i ? "\\n" : "", i + 1, c->expect[i] + 1));
    return chc_buf_take(&x, NULL);
}

/* Every partition at once: source and destination agree with discovery. */
static void totals(struct ctx *c)
{
    struct chc_buf b = CHC_BUF_INIT;
    const struct cfg_table *tb = c->tb;
    const char *const *lits = (const char *const *)c->lits;
    char *all = all_expected(c);

    gen_emit_buf(nm(c, "sums of all %zu partitions on the source = discovery's (sql_sums)",
                    c->n_lits),
                 &(struct gen_rec){.save = "all", .expect = all}, &b,
                 sql_sums(tb, lits, c->n_lits, tb->database_pull, tb->table_pull,
                          c->cols.hash_src, 1, &b));
    gen_emit_buf(nm(c, "sums of all %zu partitions on the destination = the source's (sql_sums)",
                    c->n_lits),
                 &(struct gen_rec){.same = "all", .expect = all}, &b,
                 sql_sums(tb, lits, c->n_lits, tb->database_push, tb->table_push,
                          c->cols.hash_dst, 0, &b));
    gen_emit_buf(nm(c, "sums of all partitions' assemblies after release (sql_sums_assemblies)"),
                 &(struct gen_rec){.expect_error = "UNKNOWN_TABLE",
                                   .note = "released assemblies are gone: a late REPLACE or "
                                           "sum names a table that does not exist"},
                 &b, sql_sums_assemblies(tb, lits, c->n_lits, c->cols.hash_dst, &b));
    chc_buf_release(&b);
    free(all);
}

/* Cleaning and the end of a table task: what `chcopier clean` and the last
 * worker run. */
static void cleanup(struct ctx *c)
{
    struct chc_buf b = CHC_BUF_INIT, t = CHC_BUF_INIT, q = CHC_BUF_INIT;
    const struct cfg_table *tb = c->tb;
    unsigned k, splits = plan_splits(tb);

    gen_oom(sql_release_pieces(tb, 0, (const char *const *)c->lits, c->n_lits, &b));
    drop_settings(&b);
    gen_emit_buf(nm(c, "release every partition of piece 0 in one ALTER (sql_release_pieces)"),
                 &(struct gen_rec){.note = DROP_NOTE}, &b, 0);
    gen_oom(sql_drop_piece_partition(tb, 0, c->lits[0], &b));
    drop_settings(&b);
    gen_emit_buf(nm(c, "drop a piece's partition (sql_drop_piece_partition)"),
                 &(struct gen_rec){.note = DROP_NOTE}, &b, 0);
    gen_emit_buf(nm(c, "no assembly left (sql_list_assemblies)"), &(struct gen_rec){.expect = ""},
                 &b, sql_list_assemblies(tb, &b));
    gen_oom(sql_query_id(tb, "0123456789abcdef", 0, &q));
    gen_emit_buf(nm(c, "KILL QUERY of a piece's queries (sql_query_id, sql_kill)"), NULL, &b,
                 sql_kill(q.buf, &b));
    gen_emit_buf(nm(c, "CREATE routing table (sql_route_create)"),
                 &(struct gen_rec){.note = "in-process: cluster 'dst' is in the engine's "
                                           "remote_servers, but nothing listens on its nodes: "
                                           "the routed INSERT itself is not run"},
                 &b, sql_route_create(tb, "dst", 0, &b));
    gen_emit_buf(nm(c, "the routing table is Distributed over piece 0"),
                 &(struct gen_rec){.expect = "Distributed"}, &b,
                 chc_buf_addf(&b, "SELECT engine FROM system.tables WHERE database = '%s' "
                                  "AND name = '%s_piece_0_route'",
                              tb->database_push, tb->table_push));
    gen_emit_buf(nm(c, "DROP routing table (sql_route_drop)"), NULL, &b, sql_route_drop(tb, 0, &b));
    for (k = 0; k <= splits; k++) {
        chc_buf_reset(&t);
        gen_oom(k < splits ? plan_piece_table(tb, k, &t) : plan_assembly_table(tb, &t));
        gen_oom(sql_drop_table(tb->database_push, t.buf, &b));
        drop_settings(&b);
        gen_emit_buf(nm(c, "DROP TABLE %s (sql_drop_table)", t.buf),
                     &(struct gen_rec){.note = DROP_NOTE}, &b, 0);
    }
    chc_buf_release(&b);
    chc_buf_release(&t);
    chc_buf_release(&q);
}

static void move_entry(const struct compat_entry *e)
{
    struct chc_err err = CHC_ERR_INIT;
    struct ctx c = {.e = e, .name = CHC_BUF_INIT};
    struct gen_cols dst = gen_describe("describe-", e);
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    c.task = gen_task(e);
    c.tb = &c.task->tables[0];
    if (sql_columns_build(dst.v, dst.n, &c.cols, &err) < 0)
        gen_fail(e->name, err.msg);
    key_facts(&c);
    discovered(&c);
    if (sql_check_generated(c.tb, c.split_args, &c.key, &b, &err) < 0)
        gen_fail(e->name, err.msg);
    gen_emit_buf(nm(&c, "preflight: piece hash and route (sql_check_generated)"), NULL, &b, 0);
    for (i = 0; i < c.n_lits; i++)
        move_partition(&c, i);
    totals(&c);
    cleanup(&c);
    for (i = 0; i < c.n_lits; i++) {
        free(c.lits[i]);
        free(c.expect[i]);
    }
    free(c.split_args);
    ch_rows_free(c.hdr);
    sql_columns_release(&c.cols);
    gen_cols_free(&dst);
    cfg_task_free(c.task);
    chc_buf_release(&c.name);
    chc_buf_release(&b);
}

void gen_move(void)
{
    const struct cfg_settings *sets[] = {dialect_route_settings(gen_version)};
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    gen_emit("max_table_size_to_drop = 1 byte: a staging table with data cannot be dropped",
             &(struct gen_rec){.note = "as on a server whose staging tables are over the 50 GB "
                                       "default"},
             "SET max_table_size_to_drop = 1");
    gen_oom(chc_buf_addstr(&b, "SELECT 1"));
    gen_emit_buf("the routing INSERT's settings are known (dialect_route_settings)",
                 &(struct gen_rec){.expect = "1"}, &b, plan_settings_clause(sets, 1, &b));
    for (i = 0; i < compat_matrix_n; i++)
        move_entry(&compat_matrix[i]);
    chc_buf_release(&b);
}

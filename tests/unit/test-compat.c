/* test-compat.c — what ClickHouse 26.7 prints, read by chcopier's parsers.
 * The files in data/compat-26.7/ were captured by scripts/compat
 * (CHC_COMPAT_UPDATE_GOLDEN=1) from the engine in libchdb, for the tables of
 * tests/compat/compat-matrix.c: SHOW CREATE TABLE (its ENGINE clause, with
 * defaults such as `SETTINGS index_granularity = 8192` appended and
 * expressions rewritten), DESCRIBE (seven columns, pretty multi-line type
 * names), system.columns (EPHEMERAL, codecs), system.parts (partition values),
 * system.clusters and discovery's FORMAT Values answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/file.h"
#include "chcopier/ch/rows.h"
#include "chcopier/config/engine.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/config/taskdesc.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"
#include "chcopier/sql/sqlhash.h"
#include "config.h"
#include "tap.h"

#define DATA CHC_SOURCE_ROOT "/tests/unit/data/compat-26.7/"

/* Every table of the matrix: name, engine name as 26.7 prints it,
 * PARTITION BY (NULL: none), ORDER BY. */
static const struct {
    const char *name, *engine, *partition_by, *order_by;
} tables[] = {
    {"mt", "MergeTree", "toYYYYMM(d)", "(id, d)"},
    {"repl", "ReplacingMergeTree", "cat", "id"},
    {"summ", "SummingMergeTree", "(region, tag)", "(id)"},
    {"aggr", "AggregatingMergeTree", "toMonday(day)", "id"},
    {"coll", "CollapsingMergeTree", "intDiv(k, 10)", "(k, id)"},
    {"vcoll", "VersionedCollapsingMergeTree", "toDate(dt)", "id"},
    {"idx", "MergeTree", "toYYYYMMDD(ts)", "(lvl, id)"},
    {"unpart", "MergeTree", NULL, "tuple()"},
    {"rrep", "ReplacingMergeTree", "toYYYYMM(d)", "(id)"},
    {"rnone", "MergeTree", "intDiv(id, 5)", "id"},
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

static struct ch_rows *load(const char *prefix, const char *name, const char *suffix)
{
    struct chc_err e = CHC_ERR_INIT;
    struct ch_rows *rows = NULL;
    char path[512], *text = NULL;
    size_t len;

    snprintf(path, sizeof(path), DATA "%s%s%s", prefix, name, suffix);
    if (chc_read_file(path, 1 << 24, &text, &len, &e) < 0 ||
        ch_tsv_parse(text, len, &rows, &e) < 0) {
        printf("# %s: %s\n", path, e.msg);
        abort();
    }
    free(text);
    return rows;
}

/* The ENGINE clause of a SHOW CREATE TABLE answer, to the end (the table's
 * COMMENT included): what a user pastes into the task's <engine>. */
static char *engine_clause(const struct ch_rows *show)
{
    const char *create = ch_rows_str(show, 0, 0), *at = strstr(create, "\nENGINE = ");

    return at ? strdup(at + 1) : NULL;
}

TEST(show_create_engine_clauses_parse)
{
    struct chc_err e = CHC_ERR_INIT;
    struct engine_info *ei = NULL, *again = NULL;
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    for (i = 0; i < N_TABLES; i++) {
        struct ch_rows *show = load("showcreate-", tables[i].name, ".tsv");
        char *clause = engine_clause(show);

        ASSERT_NOT_NULL(clause);
        if (engine_parse(clause, &ei, &e) < 0)
            TAP_FAIL("%s: %s: %s", tables[i].name, clause, e.msg);
        ASSERT_STREQ(ei->name, tables[i].engine);
        if (tables[i].partition_by)
            ASSERT_STREQ(ei->partition_by, tables[i].partition_by);
        else
            ASSERT_NULL(ei->partition_by);
        ASSERT_STREQ(ei->order_by, tables[i].order_by);
        /* 26.7 appends the defaults it filled in. */
        ASSERT_CONTAINS(ei->settings, "index_granularity = ");
        /* Rebuilt, it parses back to the same engine; its staging twin
         * parses too. */
        chc_buf_reset(&b);
        ASSERT_OK(engine_build_clause(ei, 0, &b, &e));
        ASSERT_OK(engine_parse(b.buf, &again, &e));
        ASSERT(engine_equal(ei, again));
        again = engine_free(again);
        chc_buf_reset(&b);
        ASSERT_OK(engine_build_clause(ei, 1, &b, &e));
        ASSERT_OK(engine_parse(b.buf, &again, &e));
        ASSERT_NULL(again->comment);
        again = engine_free(again);
        ei = engine_free(ei);
        free(clause);
        ch_rows_free(show);
    }
    chc_buf_release(&b);
}

TEST(show_create_prints_defaults_and_rewrites)
{
    struct ch_rows *show = load("showcreate-", "mt", ".tsv");
    struct chc_err e = CHC_ERR_INIT;
    struct engine_info *ei = NULL;
    char *clause = engine_clause(show);

    ASSERT_OK(engine_parse(clause, &ei, &e));
    /* TTL d + INTERVAL 100 YEAR comes back rewritten. */
    ASSERT_STREQ(ei->ttl, "d + toIntervalYear(100)");
    ASSERT_STREQ(ei->settings, "index_granularity = 1024");
    /* Caught here: the COMMENT used to be read as part of SETTINGS. */
    ASSERT_STREQ(ei->comment, "'a table\\'s comment'");
    engine_free(ei);
    free(clause);
    ch_rows_free(show);
    show = load("showcreate-", "aggr", ".tsv");
    clause = engine_clause(show);
    ASSERT_OK(engine_parse(clause, &ei, &e));
    ASSERT_STREQ(ei->settings, "index_granularity = 8192");
    engine_free(ei);
    free(clause);
    ch_rows_free(show);
}

/* What chcopier copies and checksums, from DESCRIBE as 26.7 prints it. */
TEST(describe_columns_build)
{
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    size_t i, j;

    for (i = 0; i < N_TABLES; i++) {
        struct ch_rows *d = load("describe-", tables[i].name, ".tsv");
        size_t n = ch_rows_count(d);
        struct sql_column *c = calloc(n, sizeof(*c));
        struct sql_columns cols = {0};

        ASSERT_NOT_NULL(c);
        ASSERT_EQ(ch_rows_ncols(d), 7); /* name type kind expr comment codec ttl */
        for (j = 0; j < n; j++) {
            c[j] = (struct sql_column){ch_rows_str(d, j, 0), ch_rows_str(d, j, 1),
                                       ch_rows_str(d, j, 2), ch_rows_str(d, j, 3)};
            chc_buf_reset(&b);
            if (sqlhash_args("x", c[j].type, &b, &e) < 0)
                TAP_FAIL("%s.%s %s: %s", tables[i].name, c[j].name, c[j].type, e.msg);
        }
        if (sql_columns_build(c, n, &cols, &e) < 0)
            TAP_FAIL("%s: %s", tables[i].name, e.msg);
        if (!strcmp(tables[i].name, "mt"))
            ASSERT_STREQ(cols.copy, "`d`, `id`, `s`, `v`, `f`");
        sql_columns_release(&cols);
        free(c);
        ch_rows_free(d);
    }
    chc_buf_release(&b);
}

TEST(describe_pretty_type_names)
{
    struct ch_rows *d = load("describe-", "unpart", ".tsv");
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    const char *deep = NULL;
    size_t j;

    for (j = 0; j < ch_rows_count(d); j++)
        if (!strcmp(ch_rows_str(d, j, 0), "deep"))
            deep = ch_rows_str(d, j, 1);
    ASSERT_NOT_NULL(deep);
    ASSERT_CONTAINS(deep, "Tuple(\n    a Tuple(\n");
    ASSERT_OK(sqlhash_args("`deep`", deep, &b, &e));
    ASSERT_CONTAINS(b.buf, "arrayMap");
    chc_buf_reset(&b);
    ASSERT_OK(sqlhash_strip_lc(deep, &b, &e));
    ASSERT(strstr(b.buf, "LowCardinality") == NULL);
    chc_buf_release(&b);
    ch_rows_free(d);
}

/* system.columns: the kinds and codecs DESCRIBE's readers must expect. */
TEST(system_columns_kinds)
{
    struct ch_rows *c = load("columns-", "mt", ".tsv");
    int ephemeral = 0, codec = 0;
    size_t j;

    ASSERT_EQ(ch_rows_ncols(c), 6);
    for (j = 0; j < ch_rows_count(c); j++) {
        if (!strcmp(ch_rows_str(c, j, 0), "e"))
            ephemeral = !strcmp(ch_rows_str(c, j, 2), "EPHEMERAL");
        if (!strcmp(ch_rows_str(c, j, 0), "id"))
            codec = !strcmp(ch_rows_str(c, j, 4), "CODEC(Delta(8), ZSTD(1))");
    }
    ASSERT(ephemeral);
    ASSERT(codec);
    ch_rows_free(c);
}

/* Discovery's literals (FORMAT Values, read as src/copier/tables.c reads
 * them) name the partitions system.parts lists. system.parts prints a
 * tuple or a number as the literal, but a single String or Date key without
 * its quotes (it\'s, 2024-05-01): never a literal to send. */
TEST(parts_partitions_are_discovery_literals)
{
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf q = CHC_BUF_INIT;
    size_t i, j, k;

    for (i = 0; i < N_TABLES; i++) {
        struct ch_rows *parts = load("parts-", tables[i].name, ".tsv");
        char path[512], *text = NULL, **vals = NULL;
        size_t len, n = 0;

        snprintf(path, sizeof(path), DATA "discover-%s.values", tables[i].name);
        ASSERT_OK(chc_read_file(path, 1 << 20, &text, &len, &e));
        ASSERT_OK(plan_parse_values(text, &vals, &n, &e));
        for (k = 0; k < n; k++) {
            *strrchr(vals[k], ',') = '\0';
            *strrchr(vals[k], ',') = '\0';
            if (!tables[i].partition_by)
                ASSERT_STREQ(vals[k], "1");
        }
        for (j = 0; j < ch_rows_count(parts); j++) {
            const char *p = ch_rows_str(parts, j, 0);
            int found = !tables[i].partition_by && !strcmp(p, PLAN_UNPARTITIONED);

            chc_buf_reset(&q);
            ASSERT_OK(chc_buf_add_sqlstr(&q, p));
            for (k = 0; k < n && !found; k++)
                found = !strcmp(p, vals[k]) || !strcmp(q.buf, vals[k]);
            if (!found)
                TAP_FAIL("%s: part partition %s is not a discovered literal", tables[i].name, p);
        }
        for (k = 0; k < n; k++)
            free(vals[k]);
        free(vals);
        free(text);
        ch_rows_free(parts);
    }
    chc_buf_release(&q);
}

/* system.tables facts (preflight) agree with SHOW CREATE. */
TEST(table_facts)
{
    size_t i;

    for (i = 0; i < N_TABLES; i++) {
        struct ch_rows *f = load("facts-", tables[i].name, ".tsv");

        ASSERT_EQ(ch_rows_count(f), 1);
        ASSERT_STREQ(ch_rows_str(f, 0, 0), tables[i].engine);
        ch_rows_free(f);
    }
}

/* The shapes 26.x prints for Replicated tables, which the in-process engine
 * cannot create (no ZooKeeper): `{uuid}` paths and arg-less engines, each
 * with the defaults appended. */
TEST(replicated_engine_clauses_as_printed)
{
    static const char *const clauses[] = {
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')\n"
        "PARTITION BY toYYYYMM(d)\nORDER BY (id, d)\nSETTINGS index_granularity = 8192",
        "ENGINE = ReplicatedReplacingMergeTree\nORDER BY id\nSETTINGS index_granularity = 8192",
        "ENGINE = ReplicatedCollapsingMergeTree('/clickhouse/tables/{database}/{table}', "
        "'{replica}', sign)\nPARTITION BY tuple()\nORDER BY id\n"
        "SETTINGS index_granularity = 8192, storage_policy = 'default'",
    };
    struct chc_err e = CHC_ERR_INIT;
    struct engine_info *ei = NULL;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(engine_parse(clauses[0], &ei, &e));
    ASSERT_STREQ(ei->zk_path, "/clickhouse/tables/{uuid}/{shard}");
    ASSERT_STREQ(ei->replica_name, "{replica}");
    ei = engine_free(ei);
    ASSERT_OK(engine_parse(clauses[1], &ei, &e));
    ASSERT(ei->replicated);
    ASSERT_NULL(ei->zk_path);
    ASSERT_OK(engine_build_clause(ei, 1, &b, &e));
    ASSERT_STREQ(b.buf, "ENGINE = ReplacingMergeTree() ORDER BY id "
                        "SETTINGS index_granularity = 8192");
    ei = engine_free(ei);
    ASSERT_OK(engine_parse(clauses[2], &ei, &e));
    ASSERT_STREQ(ei->args, "sign");
    ASSERT_STREQ(ei->partition_by, "tuple()");
    engine_free(ei);
    chc_buf_release(&b);
}

/* system.clusters as sql_clusters asks for it, read as src/copier/routing.c
 * reads it: the task's push cluster is found by its layout. */
TEST(clusters_match_the_task)
{
    struct ch_rows *rows = load("clusters", "", ".tsv");
    struct route_row rr[8];
    char h1[] = "127.0.0.1", h2[] = "127.0.0.2", name[] = "dst", other[] = "elsewhere";
    struct cfg_replica r1 = {.host = h1, .port = 9000}, r2 = {.host = h2, .port = 9000};
    struct cfg_shard sh[2] = {{.num = 1, .weight = 1, .replicas = &r1, .n_replicas = 1},
                              {.num = 2, .weight = 2, .replicas = &r2, .n_replicas = 1}};
    struct cfg_cluster c = {.name = name, .shards = sh, .n_shards = 2};
    size_t i, n = ch_rows_count(rows);

    ASSERT_EQ(ch_rows_ncols(rows), 6);
    ASSERT(n <= 8);
    for (i = 0; i < n; i++)
        rr[i] = (struct route_row){ch_rows_str(rows, i, 0), atol(ch_rows_str(rows, i, 1)),
                                   atol(ch_rows_str(rows, i, 2)), atol(ch_rows_str(rows, i, 3)),
                                   ch_rows_str(rows, i, 4), atol(ch_rows_str(rows, i, 5))};
    ASSERT_STREQ(route_match_cluster(&c, rr, n), "dst");
    c.name = other; /* found by layout, whatever the task calls it */
    ASSERT_STREQ(route_match_cluster(&c, rr, n), "dst");
    sh[1].weight = 3;
    ASSERT_NULL(route_match_cluster(&c, rr, n));
    ch_rows_free(rows);
}

TAP_MAIN()

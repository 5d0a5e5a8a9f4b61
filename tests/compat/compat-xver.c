/* compat-xver.c — compat-gen's phase "xver": the same rows, inserted from
 * the same TabSeparated text, hashed by chcopier's checksum expressions
 * (sql_columns_build + sql_sums, discovery's sql_discover) column by column
 * and row by row. scripts/compat runs it on 26.7 and keeps the answers
 * (tests/unit/data/compat-26.7/xver-*); tests/integration/test_compat_xver.py
 * runs the same file on 18.16 and compares: a copy from one version to the
 * other is verified by comparing exactly these sums. Only types 18.16 knows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "compat-gen.h"
#include "compat-matrix.h"

static const struct {
    const char *name, *type;
} xcols[] = {
    {"p", "UInt8"},
    {"id", "UInt32"},
    {"i8", "Int8"},
    {"i64", "Int64"},
    {"u64", "UInt64"},
    {"f32", "Float32"},
    {"f64", "Float64"},
    {"s", "String"},
    {"fs", "FixedString(3)"},
    {"d", "Date"},
    {"dt", "DateTime('UTC')"},
    {"e8", "Enum8('a' = 1, 'b' = -2)"},
    {"uid", "UUID"},
    {"d32", "Decimal(9, 2)"},
    {"d64", "Decimal(18, 4)"},
    {"d128", "Decimal(38, 10)"},
    {"ni", "Nullable(Int32)"},
    {"ns", "Nullable(String)"},
    {"au", "Array(UInt8)"},
    {"as", "Array(String)"},
    {"an", "Array(Nullable(Int8))"},
    {"tup", "Tuple(Int32, String)"},
};
#define N_XCOLS (sizeof(xcols) / sizeof(xcols[0]))

/* The rows, as TabSeparated text: edge values of every type. */
static const char *const xrows[] = {
    "1\t1\t-128\t-9223372036854775808\t18446744073709551615\t0.1\t0.1\ta\\tb\\\\c\tabc\t"
    "2018-01-01\t2018-01-01 00:00:00\ta\t00000000-0000-0000-0000-000000000001\t-1.50\t"
    "12345678901234.5678\t-1234567890123456789012345678.1234567890\t\\N\t\\N\t[]\t"
    "['x','y']\t[NULL,1]\t(1,'q')",
    "1\t2\t127\t1\t0\t-15000000000\t3.141592653589793\t\txy\t1970-01-02\t"
    "2038-01-19 03:14:07\tb\tffffffff-ffff-ffff-ffff-ffffffffffff\t0.01\t-0.0001\t0\t-7\t"
    "it's\t[255,0]\t['','\\'']\t[]\t(-2147483648,'')",
    "2\t3\t0\t42\t1\t1e-30\t1e300\tüñí\tz\t2105-12-31\t1970-01-01 00:00:01\ta\t"
    "01234567-89ab-cdef-0123-456789abcdef\t9999999.99\t0\t0.0000000001\t2147483647\t"
    "\\\\N\t[1]\t['\\\\']\t[NULL]\t(0,'\\t')",
    "2\t4\t5\t-5\t123\tinf\t-0\tx\ty\t2000-02-29\t2000-02-29 23:59:59\tb\t"
    "00000000-0000-0000-0000-000000000000\t-0.5\t1.5\t-0.5\t0\t\t[2,3]\t[]\t[-128,NULL,127]\t"
    "(7,'x')",
};

static const struct compat_entry xentry = {
    .name = "xver",
    .engine = "MergeTree PARTITION BY p ORDER BY id",
    .key = "id",
    .splits = 1,
};

static void fixtures(const struct cfg_table *tb)
{
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    gen_emit_buf("xver: CREATE DATABASE (sql_create_database)", NULL, &b,
                 sql_create_database(COMPAT_DB, &b));
    gen_emit_buf("xver: DROP TABLE src_xver (sql_drop_table)", NULL, &b,
                 sql_drop_table(COMPAT_DB, tb->table_pull, &b));
    gen_oom(chc_buf_addf(&b, "CREATE TABLE %s.%s (", COMPAT_DB, tb->table_pull));
    for (i = 0; i < N_XCOLS; i++)
        gen_oom(chc_buf_addf(&b, "%s`%s` %s", i ? ", " : "", xcols[i].name, xcols[i].type));
    gen_oom(chc_buf_addf(&b, ") ENGINE = %s", xentry.engine));
    gen_emit_buf("xver: fixture: CREATE TABLE src_xver", NULL, &b, 0);
    gen_oom(chc_buf_addf(&b, "INSERT INTO %s.%s FORMAT TabSeparated", COMPAT_DB, tb->table_pull));
    for (i = 0; i < sizeof(xrows) / sizeof(xrows[0]); i++)
        gen_oom(chc_buf_addf(&b, "\n%s", xrows[i]));
    gen_emit_buf("xver: fixture: INSERT the rows as TabSeparated text", NULL, &b, 0);
    chc_buf_release(&b);
}

/* sums of partitions 1 and 2 with `hash`, captured as xver-<what>.tsv. */
static void sums(const struct cfg_table *tb, const char *what, const char *hash)
{
    static const char *const lits[] = {"1", "2"};
    struct chc_buf b = CHC_BUF_INIT, name = CHC_BUF_INIT, file = CHC_BUF_INIT;

    gen_oom(chc_buf_addf(&name, "xver: checksum of %s (sql_sums)", what));
    gen_oom(chc_buf_addf(&file, "xver-%s.tsv", what));
    gen_emit_buf(name.buf, &(struct gen_rec){.capture = file.buf}, &b,
                 sql_sums(tb, lits, 2, COMPAT_DB, tb->table_pull, hash, 0, &b));
    chc_buf_release(&b);
    chc_buf_release(&name);
    chc_buf_release(&file);
}

void gen_xver(void)
{
    struct cfg_task *task = gen_task(&xentry);
    const struct cfg_table *tb = &task->tables[0];
    struct sql_column c[N_XCOLS];
    struct sql_columns cols = {0};
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    fixtures(tb);
    for (i = 0; i < N_XCOLS; i++)
        c[i] = (struct sql_column){xcols[i].name, xcols[i].type, "", ""};
    for (i = 0; i < N_XCOLS; i++) {
        if (sql_columns_build(&c[i], 1, &cols, &err) < 0)
            gen_fail(xcols[i].name, err.msg);
        sums(tb, xcols[i].name, cols.hash_dst);
        sql_columns_release(&cols);
    }
    if (sql_columns_build(c, N_XCOLS, &cols, &err) < 0)
        gen_fail("xver", err.msg);
    sums(tb, "row", cols.hash_dst);
    sums(tb, "row-src", cols.hash_src);
    gen_emit_buf("xver: discovery (sql_discover)",
                 &(struct gen_rec){.capture = "xver-discover.values"}, &b,
                 sql_discover(tb, cols.hash_src, &b));
    sql_columns_release(&cols);
    chc_buf_release(&b);
    cfg_task_free(task);
}

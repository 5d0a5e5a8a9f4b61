/* test-sqlhash.c — the hashable form of every type family against golden
 * strings (the integration tests run them on a real server). */
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/sql/sqlhash.h"
#include "tap.h"

static char got[4096];

static const char *args(const char *expr, const char *type)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;

    if (sqlhash_args(expr, type, &b, &e) < 0) {
        snprintf(got, sizeof(got), "ERROR %s", e.msg);
    } else {
        snprintf(got, sizeof(got), "%s", b.buf);
    }
    chc_buf_release(&b);
    return got;
}

TEST(native_as_is)
{
    ASSERT_STREQ(args("`a`", "UInt64"), "`a`");
    ASSERT_STREQ(args("x", "DateTime('Asia/Tokyo')"), "x");
    ASSERT_STREQ(args("x", "Enum8('a' = 1, 'b,)' = 2)"), "x");
    ASSERT_STREQ(args("x", "FixedString(16)"), "x");
    ASSERT_STREQ(args("x", "Array(Array(String))"), "x");
    ASSERT_STREQ(args("x", "  Float64\n"), "x");
}

TEST(as_text)
{
    ASSERT_STREQ(args("u", "UUID"), "reinterpretAsString(u)");
    ASSERT_STREQ(args("s", "AggregateFunction(quantiles(0.5, 0.9), UInt64)"), "toString(s)");
    ASSERT_STREQ(args("ip", "IPv6"), "toString(ip)");
    ASSERT_STREQ(args("d", "Decimal(9, 2)"), "reinterpretAsString(d)");
    ASSERT_STREQ(args("d", "Decimal128(10)"), "reinterpretAsString(d)");
}

TEST(wrappers)
{
    ASSERT_STREQ(args("n", "Nullable(String)"), "isNull(n), assumeNotNull(n)");
    ASSERT_STREQ(args("n", "Nullable(UUID)"), "isNull(n), reinterpretAsString(assumeNotNull(n))");
    ASSERT_STREQ(args("l", "LowCardinality(String)"), "CAST(l AS String)");
    ASSERT_STREQ(args("l", "LowCardinality(Nullable(String))"),
                 "isNull(CAST(l AS Nullable(String))), "
                 "assumeNotNull(CAST(l AS Nullable(String)))");
    ASSERT_STREQ(args("s", "SimpleAggregateFunction(sum, UInt64)"), "s");
}

TEST(containers)
{
    ASSERT_STREQ(args("a", "Array(UUID)"),
                 "arrayMap(_h1 -> cityHash64(reinterpretAsString(_h1)), a)");
    ASSERT_STREQ(args("a", "Array(Nullable(UInt8))"),
                 "arrayMap(_h1 -> cityHash64(isNull(_h1), assumeNotNull(_h1)), a)");
    ASSERT_STREQ(args("a", "Array(Array(Nullable(UInt8)))"),
                 "arrayMap(_h1 -> cityHash64(arrayMap(_h2 -> cityHash64(isNull(_h2), "
                 "assumeNotNull(_h2)), _h1)), a)");
    ASSERT_STREQ(args("t", "Tuple(UInt8, UUID)"),
                 "tupleElement(t, 1), reinterpretAsString(tupleElement(t, 2))");
    ASSERT_STREQ(args("t", "Tuple(\n    a UInt8,\n    `b c` Nullable(String))"),
                 "tupleElement(t, 1), isNull(tupleElement(t, 2)), "
                 "assumeNotNull(tupleElement(t, 2))");
    ASSERT_STREQ(args("n", "Nested(a UInt8, b UUID)"),
                 "arrayMap(_h1 -> cityHash64(tupleElement(_h1, 1), "
                 "reinterpretAsString(tupleElement(_h1, 2))), n)");
    ASSERT_STREQ(args("m", "Map(String, Decimal(9, 2))"),
                 "arrayMap((_h1k, _h1v) -> cityHash64(_h1k, reinterpretAsString(_h1v)), "
                 "mapKeys(m), mapValues(m))");
}

TEST(u64)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(sqlhash_u64("x", "UUID", &b, &e));
    ASSERT_STREQ(b.buf, "cityHash64(reinterpretAsString(x))");
    chc_buf_release(&b);
}

TEST(malformed)
{
    ASSERT_STREQ(args("x", "Array(UInt8"), "ERROR cannot read the type 'Array(UInt8'");
    ASSERT_STREQ(args("x", ""), "ERROR cannot read the type ''");
    ASSERT_STREQ(args("x", "Tuple(UInt8,)"), "ERROR cannot read the type 'Tuple(UInt8,)'");
    ASSERT_STREQ(args("x", "Enum8('a = 1)"), "ERROR cannot read the type 'Enum8('a = 1)'");
    ASSERT_STREQ(args("x", "UInt8) + (1"), "ERROR cannot read the type 'UInt8) + (1'");
}

TEST(deep_nesting_refused)
{
    struct chc_buf t = CHC_BUF_INIT;
    int i;

    for (i = 0; i < 40; i++)
        ASSERT_OK(chc_buf_addstr(&t, "Array("));
    ASSERT_OK(chc_buf_addstr(&t, "UUID"));
    for (i = 0; i < 40; i++)
        ASSERT_OK(chc_buf_addch(&t, ')'));
    ASSERT_CONTAINS(args("x", t.buf), "ERROR cannot read the type");
    chc_buf_release(&t);
}

TEST(strip_lc)
{
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(sqlhash_strip_lc("Array(LowCardinality(Nullable(String)))", &b, &e));
    ASSERT_STREQ(b.buf, "Array(Nullable(String))");
    chc_buf_reset(&b);
    ASSERT_OK(sqlhash_strip_lc("Tuple(a LowCardinality(String), b DateTime('UTC'))", &b, &e));
    ASSERT_STREQ(b.buf, "Tuple(a String, b DateTime('UTC'))");
    chc_buf_reset(&b);
    ASSERT_OK(sqlhash_strip_lc("Decimal(9, 2)", &b, &e));
    ASSERT_STREQ(b.buf, "Decimal(9, 2)");
    chc_buf_release(&b);
}

TEST(int_keys)
{
    unsigned bits = 0;
    int sign = -1;
    char fam[32];

    ASSERT_EQ(sqlhash_int_key("Int8", &bits, &sign), 1);
    ASSERT_EQ(bits, 8);
    ASSERT_EQ(sign, 1);
    ASSERT_EQ(sqlhash_int_key("LowCardinality(UInt32)", &bits, &sign), 1);
    ASSERT_EQ(bits, 32);
    ASSERT_EQ(sign, 0);
    ASSERT_EQ(sqlhash_int_key("Nullable(Int8)", &bits, &sign), 0);
    ASSERT_EQ(sqlhash_int_key("String", &bits, &sign), 0);
    ASSERT_EQ(sqlhash_int_key("Int128", &bits, &sign), 0);
    ASSERT_OK(sqlhash_family("DateTime('UTC')", fam, sizeof(fam)));
    ASSERT_STREQ(fam, "DateTime");
    ASSERT_EQ(sqlhash_family("(", fam, sizeof(fam)), CHC_EPARSE);
}

TAP_MAIN()

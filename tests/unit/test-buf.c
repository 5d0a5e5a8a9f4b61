/* test-buf.c — chc_buf invariants, escaping and number parsing. */
#include <errno.h>
#include <stdlib.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "tap.h"

TEST(empty_is_not_null)
{
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_NOT_NULL(b.buf);
    ASSERT_STREQ(b.buf, "");
    chc_buf_release(&b);
}

TEST(append_and_format)
{
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(chc_buf_addstr(&b, "abc"));
    ASSERT_OK(chc_buf_addf(&b, "-%d-%s", 42, "x"));
    ASSERT_STREQ(b.buf, "abc-42-x");
    ASSERT_EQ(b.len, 8);
    chc_buf_release(&b);
}

TEST(cap_is_enforced_and_buffer_unchanged)
{
    struct chc_buf b;

    chc_buf_init(&b, 4);
    ASSERT_OK(chc_buf_addstr(&b, "abcd"));
    ASSERT_EQ(chc_buf_addstr(&b, "e"), CHC_ETOOBIG);
    ASSERT_STREQ(b.buf, "abcd");
    chc_buf_release(&b);
}

TEST(sql_quoting)
{
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(chc_buf_add_sqlstr(&b, "it's a \\ test"));
    ASSERT_STREQ(b.buf, "'it\\'s a \\\\ test'");
    chc_buf_reset(&b);
    ASSERT_OK(chc_buf_add_ident(&b, "we`ird"));
    ASSERT_STREQ(b.buf, "`we\\`ird`");
    chc_buf_release(&b);
}

TEST(url_and_json_escaping)
{
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(chc_buf_add_urlenc(&b, "a b&c=d/é"));
    ASSERT_STREQ(b.buf, "a%20b%26c%3Dd%2F%C3%A9");
    chc_buf_reset(&b);
    ASSERT_OK(chc_buf_add_json(&b, "q\"\n\\\x01"));
    ASSERT_STREQ(b.buf, "q\\\"\\n\\\\\\u0001");
    chc_buf_release(&b);
}

TEST(take_transfers_ownership)
{
    struct chc_buf b = CHC_BUF_INIT;
    size_t n;
    char *p;

    ASSERT_OK(chc_buf_addstr(&b, "xyz"));
    p = chc_buf_take(&b, &n);
    ASSERT_STREQ(p, "xyz");
    ASSERT_EQ(n, 3);
    ASSERT_EQ(b.len, 0);
    ASSERT_STREQ(b.buf, "");
    free(p);
}

TEST(trim)
{
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(chc_buf_addstr(&b, " \n a b \t"));
    chc_buf_trim(&b);
    ASSERT_STREQ(b.buf, "a b");
    chc_buf_release(&b);
}

TEST(parse_integers)
{
    long long v = 0;

    ASSERT_OK(chc_parse_ll(" 42 ", 0, 100, &v));
    ASSERT_EQ(v, 42);
    ASSERT_EQ(chc_parse_ll("101", 0, 100, &v), -ERANGE);
    ASSERT_EQ(chc_parse_ll("4x", 0, 100, &v), -EINVAL);
    ASSERT_EQ(chc_parse_ll("", 0, 100, &v), -EINVAL);
    ASSERT_EQ(chc_parse_ll("99999999999999999999999", 0, 100, &v), -ERANGE);
}

TEST(parse_bools)
{
    int v = -1;

    ASSERT_OK(chc_parse_bool("true", &v));
    ASSERT_EQ(v, 1);
    ASSERT_OK(chc_parse_bool(" 0\n", &v));
    ASSERT_EQ(v, 0);
    ASSERT_OK(chc_parse_bool("No", &v));
    ASSERT_EQ(v, 0);
    ASSERT_EQ(chc_parse_bool("nope", &v), -EINVAL);
    ASSERT_EQ(chc_parse_bool("2", &v), -EINVAL);
}

TEST(error_names)
{
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_STREQ(chc_err_name(CHC_ECONFIG), "ECONFIG");
    ASSERT_STREQ(chc_strerror(CHC_EZK_EXPIRED), "zookeeper session expired");
    ASSERT_EQ(chc_err_set(&e, CHC_EPARSE, "bad '%s'", "x"), CHC_EPARSE);
    chc_err_prefix(&e, "file %s", "a.xml");
    ASSERT_STREQ(e.msg, "file a.xml: bad 'x'");
    ASSERT(CHC_ESTATE < -4000);
    /* One line by contract, whatever the arguments hold. */
    chc_err_set(&e, CHC_ECONFIG, "got '%s'", "a\nb\r\tc");
    ASSERT_STREQ(e.msg, "got 'a b  c'");
}

TAP_MAIN()

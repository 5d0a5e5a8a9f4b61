/* test-ch.c — the pure parts of the ClickHouse HTTP client: URL building
 * (golden strings), exception parsing and TabSeparated parsing. The network
 * side is covered by tests/integration/test-ch.sh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/buf.h"
#include "chcopier/ch.h"
#include "chcopier/err.h"
#include "chcopier/task.h"
#include "tap.h"

static struct cfg_replica replica(char *host, int port, int secure)
{
    struct cfg_replica r = {0};

    r.host = host;
    r.port = 9000;
    r.http_port = port;
    r.user = (char *)"chc";
    r.password = (char *)"s3cr3t-pw";
    r.secure = secure;
    return r;
}

/* Build the URL for p; returns a static copy for ASSERT_STREQ. */
static const char *url_of(const struct ch_query_params *p)
{
    static char copy[2048];
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;

    if (ch_build_url(p, &b, &err) < 0) {
        snprintf(copy, sizeof(copy), "ERROR %s: %s", chc_err_name(err.code), err.msg);
    } else {
        snprintf(copy, sizeof(copy), "%s", b.buf);
    }
    chc_buf_release(&b);
    return copy;
}

TEST(url_plain_http)
{
    struct cfg_replica r = replica((char *)"ch1.example", 8123, 0);
    struct ch_query_params p = {0};

    p.replica = &r;
    p.sql = "SELECT 1";
    ASSERT_STREQ(url_of(&p), "http://ch1.example:8123/?wait_end_of_query=1");
    p.stream = 1;
    ASSERT_STREQ(url_of(&p), "http://ch1.example:8123/");
}

TEST(url_https_query_id_database)
{
    struct cfg_replica r = replica((char *)"10.0.0.7", 8443, 1);
    struct ch_query_params p = {0};

    p.replica = &r;
    p.sql = "SELECT 1";
    p.query_id = "chc-piece 1/2";
    p.database = "my db";
    ASSERT_STREQ(url_of(&p), "https://10.0.0.7:8443/?query_id=chc-piece%201%2F2"
                             "&database=my%20db&wait_end_of_query=1");
}

TEST(url_ipv6_host_in_brackets)
{
    struct cfg_replica r = replica((char *)"::1", 8123, 0);
    struct ch_query_params p = {0};

    p.replica = &r;
    p.sql = "SELECT 1";
    p.stream = 1;
    ASSERT_STREQ(url_of(&p), "http://[::1]:8123/");
}

TEST(url_settings_later_set_overrides)
{
    struct cfg_setting a_items[] = {
        {(char *)"max_threads", (char *)"1"},
        {(char *)"readonly", (char *)"1"},
        {(char *)"max_execution_time", (char *)"60"},
    };
    struct cfg_setting b_items[] = {
        {(char *)"max_threads", (char *)"4"},
        {(char *)"insert_distributed_sync", (char *)"1"},
    };
    struct cfg_setting c_items[] = {
        {(char *)"readonly", (char *)"0"},
        {(char *)"odd name", (char *)"a&b=c"},
    };
    struct cfg_settings a = {a_items, 3}, b = {b_items, 2}, c = {c_items, 2};
    struct cfg_replica r = replica((char *)"h", 8123, 0);
    struct ch_query_params p = {0};

    p.replica = &r;
    p.sql = "SELECT 1";
    p.settings[0] = &a;
    p.settings[1] = &b;
    p.settings[2] = &c;
    /* Each name once, with the value of the last set that has it. */
    ASSERT_STREQ(url_of(&p), "http://h:8123/?max_execution_time=60&max_threads=4"
                             "&insert_distributed_sync=1&readonly=0&odd%20name=a%26b%3Dc"
                             "&wait_end_of_query=1");
    /* The list stops at the first NULL. */
    p.settings[1] = NULL;
    ASSERT_STREQ(url_of(&p), "http://h:8123/?max_threads=1&readonly=1&max_execution_time=60"
                             "&wait_end_of_query=1");
}

TEST(url_explicit_wait_end_of_query_wins)
{
    struct cfg_setting items[] = {{(char *)"wait_end_of_query", (char *)"0"}};
    struct cfg_settings s = {items, 1};
    struct cfg_replica r = replica((char *)"h", 8123, 0);
    struct ch_query_params p = {0};

    p.replica = &r;
    p.sql = "SELECT 1";
    p.settings[0] = &s;
    ASSERT_STREQ(url_of(&p), "http://h:8123/?wait_end_of_query=0");
}

TEST(url_never_contains_credentials)
{
    struct cfg_setting items[] = {{(char *)"max_threads", (char *)"2"}};
    struct cfg_settings s = {items, 1};
    struct cfg_replica r = replica((char *)"h", 8123, 1);
    struct ch_query_params p = {0};
    const char *u;

    p.replica = &r;
    p.sql = "SELECT 1";
    p.query_id = "q";
    p.database = "d";
    p.settings[0] = &s;
    u = url_of(&p);
    ASSERT(strncmp(u, "https://", 8) == 0);
    ASSERT(!strstr(u, "s3cr3t"));
    ASSERT(!strstr(u, "chc"));
    ASSERT(!strstr(u, "user"));
    ASSERT(!strstr(u, "password"));
    ASSERT(!strchr(u, '@'));
}

TEST(url_rejects_reserved_names_and_bad_replicas)
{
    static const char *const names[] = {"user", "password", "query", "query_id", "database",
                                        "quota_key", "compress", "decompress"};
    struct cfg_setting items[1];
    struct cfg_settings s = {items, 1};
    struct cfg_replica r = replica((char *)"h", 8123, 0);
    struct ch_query_params p = {0};
    struct chc_buf b = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    size_t i;

    p.replica = &r;
    p.sql = "SELECT 1";
    p.settings[0] = &s;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        items[0].name = (char *)names[i];
        items[0].value = (char *)"s3cr3t-pw";
        ASSERT_EQ(ch_build_url(&p, &b, &err), -EINVAL);
        ASSERT_CONTAINS(err.msg, names[i]);
        ASSERT(!strstr(err.msg, "s3cr3t")); /* the value is never echoed */
        ASSERT_EQ(b.len, 0);                /* nothing appended on failure */
    }
    p.settings[0] = NULL;
    r.http_port = 0;
    ASSERT_EQ(ch_build_url(&p, &b, &err), -EINVAL);
    r.http_port = 8123;
    r.host = (char *)"evil/host";
    ASSERT_EQ(ch_build_url(&p, &b, &err), -EINVAL);
    r.host = (char *)"user@host";
    ASSERT_EQ(ch_build_url(&p, &b, &err), -EINVAL);
    r.host = (char *)"";
    ASSERT_EQ(ch_build_url(&p, &b, &err), -EINVAL);
    p.replica = NULL;
    ASSERT_EQ(ch_build_url(&p, &b, &err), -EINVAL);
    chc_buf_release(&b);
}

TEST(url_appends_to_existing_buffer)
{
    struct cfg_replica r = replica((char *)"h", 1, 0);
    struct ch_query_params p = {0};
    struct chc_buf b = CHC_BUF_INIT;

    p.replica = &r;
    p.sql = "SELECT 1";
    p.stream = 1;
    ASSERT_OK(chc_buf_addstr(&b, "url="));
    ASSERT_OK(ch_build_url(&p, &b, NULL));
    ASSERT_STREQ(b.buf, "url=http://h:1/");
    chc_buf_release(&b);
}

TEST(exception_code_parsing)
{
    /* ClickHouse 18.16 */
    ASSERT_EQ(ch_parse_exception_code("Code: 62, e.displayText() = DB::Exception: Syntax error: "
                                      "failed at position 1: SELEC 1., e.what() = DB::Exception\n"),
              62);
    /* ClickHouse >= 19 */
    ASSERT_EQ(ch_parse_exception_code("Code: 516. DB::Exception: chc: Authentication failed"), 516);
    /* After other lines (late exception in a streamed body). */
    ASSERT_EQ(ch_parse_exception_code("1\n2\nCode: 395, e.displayText() = DB::Exception: x\n"),
              395);
    ASSERT_EQ(ch_parse_exception_code(""), 0);
    ASSERT_EQ(ch_parse_exception_code(NULL), 0);
    ASSERT_EQ(ch_parse_exception_code("Code: x"), 0);
    ASSERT_EQ(ch_parse_exception_code("Code: 12"), 0);
    ASSERT_EQ(ch_parse_exception_code("Code: 12 and more"), 0);
    ASSERT_EQ(ch_parse_exception_code("xCode: 12, inside a line"), 0);
    ASSERT_EQ(ch_parse_exception_code("Code: 99999999999999999999."), 0);
}

TEST(trailing_exception_detection)
{
    const char *body = "0\n1\n2\nCode: 395, e.displayText() = DB::Exception: Value passed to "
                       "'throwIf' function is non zero, e.what() = DB::Exception\n";
    const char *e;

    e = ch_find_trailing_exception(body, strlen(body));
    ASSERT_NOT_NULL(e);
    ASSERT(strncmp(e, "Code: 395,", 10) == 0);
    e = ch_find_trailing_exception("Code: 62. DB::Exception: x", 26);
    ASSERT_NOT_NULL(e);
    /* Not an exception: plain data, or "Code:" without DB::Exception. */
    ASSERT_NULL(ch_find_trailing_exception("0\n1\n2\n", 6));
    ASSERT_NULL(ch_find_trailing_exception("Code: 1, but no exception\n", 26));
    ASSERT_NULL(ch_find_trailing_exception("a Code: 1, DB::Exception\n", 25));
    ASSERT_NULL(ch_find_trailing_exception("", 0));
}

TEST(trailing_exception_only_near_the_end)
{
    const char *head = "Code: 1, e.displayText() = DB::Exception: looks like one\n";
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;

    ASSERT_OK(chc_buf_addstr(&b, head));
    for (i = 0; i < 20000; i++)
        ASSERT_OK(chc_buf_addstr(&b, "12345\n"));
    /* 120 kB of data after it: an old line, not a trailing exception. */
    ASSERT_NULL(ch_find_trailing_exception(b.buf, b.len));
    chc_buf_release(&b);
}

TEST(tsv_escapes_and_nulls)
{
    const char body[] = "1\thello\\tworld\tline\\nbreak\n"
                        "2\t\\N\tback\\\\slash \\'q\\' \\\"d\\\"\n"
                        "3\t\\x41\\x7a\tnul\\0in\\bside\n"
                        "4\tN\\N\t\n";
    struct ch_rows *r = NULL;
    struct chc_err err = CHC_ERR_INIT;

    ASSERT_OK(ch_tsv_parse(body, sizeof(body) - 1, &r, &err));
    ASSERT_EQ(ch_rows_count(r), 4);
    ASSERT_EQ(ch_rows_ncols(r), 3);
    ASSERT_STREQ(ch_rows_get(r, 0, 0), "1");
    ASSERT_STREQ(ch_rows_get(r, 0, 1), "hello\tworld");
    ASSERT_STREQ(ch_rows_get(r, 0, 2), "line\nbreak");
    ASSERT_NULL(ch_rows_get(r, 1, 1)); /* \N */
    ASSERT_EQ(ch_rows_len(r, 1, 1), 0);
    ASSERT_STREQ(ch_rows_get(r, 1, 2), "back\\slash 'q' \"d\"");
    ASSERT_STREQ(ch_rows_get(r, 2, 1), "Az");
    ASSERT_EQ(ch_rows_len(r, 2, 2), 11);
    ASSERT(memcmp(ch_rows_get(r, 2, 2), "nul\0in\bside", 12) == 0);
    ASSERT_STREQ(ch_rows_get(r, 3, 1), "NN"); /* \N inside a field is just N */
    ASSERT_STREQ(ch_rows_get(r, 3, 2), "");
    ASSERT_NULL(ch_rows_get(r, 4, 0));
    ASSERT_NULL(ch_rows_get(r, 0, 3));
    r = ch_rows_free(r);
    ASSERT_NULL(r);
}

TEST(tsv_shapes)
{
    struct ch_rows *r = NULL;
    struct chc_err err = CHC_ERR_INIT;

    ASSERT_OK(ch_tsv_parse("", 0, &r, &err));
    ASSERT_EQ(ch_rows_count(r), 0);
    ASSERT_EQ(ch_rows_ncols(r), 0);
    ASSERT_NULL(ch_rows_get(r, 0, 0));
    r = ch_rows_free(r);

    ASSERT_OK(ch_tsv_parse("\n", 1, &r, &err)); /* one row, one empty string */
    ASSERT_EQ(ch_rows_count(r), 1);
    ASSERT_EQ(ch_rows_ncols(r), 1);
    ASSERT_STREQ(ch_rows_get(r, 0, 0), "");
    r = ch_rows_free(r);

    ASSERT_OK(ch_tsv_parse("a\tb\nc\td", 7, &r, &err)); /* no final newline */
    ASSERT_EQ(ch_rows_count(r), 2);
    ASSERT_STREQ(ch_rows_get(r, 1, 1), "d");
    r = ch_rows_free(r);

    ASSERT_OK(ch_tsv_parse("\t\n\t\n", 4, &r, &err));
    ASSERT_EQ(ch_rows_count(r), 2);
    ASSERT_EQ(ch_rows_ncols(r), 2);
    ASSERT_STREQ(ch_rows_get(r, 1, 1), "");
    r = ch_rows_free(r);

    ASSERT_OK(ch_tsv_parse("\\N", 2, &r, &err));
    ASSERT_EQ(ch_rows_count(r), 1);
    ASSERT_NULL(ch_rows_get(r, 0, 0));
    ch_rows_free(r);
    ASSERT_NULL(ch_rows_free(NULL));
}

TEST(tsv_errors)
{
    struct ch_rows *r = NULL;
    struct chc_err err = CHC_ERR_INIT;

    ASSERT_EQ(ch_tsv_parse("a\tb\nc\n", 6, &r, &err), CHC_EPARSE);
    ASSERT_CONTAINS(err.msg, "row 2 has 1 fields, expected 2");
    ASSERT_NULL(r);
    ASSERT_EQ(ch_tsv_parse("abc\\", 4, &r, &err), CHC_EPARSE);
    ASSERT_EQ(ch_tsv_parse("\\xZ1", 4, &r, &err), CHC_EPARSE);
    ASSERT_EQ(ch_tsv_parse("\\x4", 3, &r, &err), CHC_EPARSE);
    ASSERT_NULL(r);
}

TEST(tsv_respects_len_not_nul)
{
    struct ch_rows *r = NULL;

    ASSERT_OK(ch_tsv_parse("ab\ncd\nIGNORED", 6, &r, NULL));
    ASSERT_EQ(ch_rows_count(r), 2);
    ASSERT_STREQ(ch_rows_get(r, 1, 0), "cd");
    ch_rows_free(r);
}

TAP_MAIN()

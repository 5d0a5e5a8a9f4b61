/* test-ch.c — the pure parts of the ClickHouse HTTP client: URL building
 * (golden strings), exception parsing, TabSeparated parsing, and the pipe's
 * pieces from src/ch/ring.h, cstream.h and response.h: the ring buffer, the
 * compressed-stream follower (LZ4) and the search for an exception at the end
 * of binary data, plus ch_pipe_start()'s argument checks (a client, no
 * traffic). The network side is covered by tests/integration/test_ch.py
 * and test_pipe.py.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/base/err.h"
#include "chcopier/config/task.h"
#include "ch/cstream.h"
#include "ch/response.h"
#include "ch/ring.h"
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

TEST(exception_classes)
{
    ASSERT_EQ(ch_exception_is_permanent(62), 1);  /* SYNTAX_ERROR */
    ASSERT_EQ(ch_exception_is_permanent(47), 1);  /* UNKNOWN_IDENTIFIER */
    ASSERT_EQ(ch_exception_is_permanent(43), 1);  /* ILLEGAL_TYPE_OF_ARGUMENT */
    ASSERT_EQ(ch_exception_is_permanent(53), 1);  /* TYPE_MISMATCH */
    ASSERT_EQ(ch_exception_is_permanent(60), 1);  /* UNKNOWN_TABLE */
    ASSERT_EQ(ch_exception_is_permanent(497), 1); /* ACCESS_DENIED */
    ASSERT_EQ(ch_exception_is_permanent(243), 1); /* NOT_ENOUGH_SPACE */
    ASSERT_EQ(ch_exception_is_permanent(252), 0); /* TOO_MANY_PARTS */
    ASSERT_EQ(ch_exception_is_permanent(241), 0); /* MEMORY_LIMIT_EXCEEDED */
    ASSERT_EQ(ch_exception_is_permanent(209), 0); /* SOCKET_TIMEOUT */
    ASSERT_EQ(ch_exception_is_permanent(210), 0); /* NETWORK_ERROR */
    ASSERT_EQ(ch_exception_is_permanent(242), 0); /* TABLE_IS_READ_ONLY */
    ASSERT_EQ(ch_exception_is_permanent(999), 0); /* KEEPER_EXCEPTION */
    ASSERT_EQ(ch_exception_is_permanent(0), 0);
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
    /* Never NULL for callers that need a string. */
    ASSERT_STREQ(ch_rows_str(r, 1, 1), "");
    ASSERT_STREQ(ch_rows_str(r, 0, 1), "hello\tworld");
    ASSERT_STREQ(ch_rows_str(r, 4, 0), "");
    ASSERT_STREQ(ch_rows_str(r, 0, 3), "");
    ASSERT_EQ(ch_rows_is_null(r, 1, 1), 1);
    ASSERT_EQ(ch_rows_is_null(r, 3, 2), 0); /* empty is not NULL */
    ASSERT_EQ(ch_rows_is_null(r, 4, 0), 0); /* out of range is not NULL */
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

/* ---------------------------------------------------------- ring buffer */

TEST(ring_push_pop_wraps_around)
{
    struct ch_ring r;
    char out[16];

    ASSERT_OK(ch__ring_init(&r, 8));
    ASSERT_EQ(ch__ring_space(&r), 8);
    ASSERT_EQ(ch__ring_push(&r, "abcde", 5), 5);
    ASSERT_EQ(ch__ring_pop(&r, out, 3), 3);
    ASSERT(!memcmp(out, "abc", 3));
    /* head at 3, 2 stored: 6 more wrap past the end of the storage. */
    ASSERT_EQ(ch__ring_push(&r, "fghijk", 6), 6);
    ASSERT_EQ(r.len, 8);
    ASSERT_EQ(ch__ring_space(&r), 0);
    ASSERT_EQ(ch__ring_pop(&r, out, sizeof(out)), 8);
    ASSERT(!memcmp(out, "defghijk", 8));
    ASSERT_EQ(r.len, 0);
    ch__ring_release(&r);
    ASSERT_NULL(r.buf);
    ch__ring_release(NULL);
}

TEST(ring_full_and_empty)
{
    struct ch_ring r;
    char out[8];
    int i;

    ASSERT_EQ(ch__ring_init(&r, 0), -EINVAL);
    ASSERT_OK(ch__ring_init(&r, 4));
    ASSERT_EQ(ch__ring_pop(&r, out, 4), 0);       /* empty */
    ASSERT_EQ(ch__ring_push(&r, "123456", 6), 4); /* only what fits */
    ASSERT_EQ(ch__ring_push(&r, "7", 1), 0);      /* full */
    ASSERT_EQ(ch__ring_pop(&r, out, 1), 1);
    ASSERT_EQ(out[0], '1');
    ASSERT_EQ(ch__ring_push(&r, "x", 1), 1);
    ASSERT_EQ(ch__ring_pop(&r, out, 8), 4);
    ASSERT(!memcmp(out, "234x", 4));
    /* Many laps keep the order. */
    for (i = 0; i < 1000; i++) {
        char in[3] = {(char)i, (char)(i + 1), (char)(i + 2)};

        ASSERT_EQ(ch__ring_push(&r, in, 3), 3);
        ASSERT_EQ(ch__ring_pop(&r, out, 2), 2);
        ASSERT_EQ(out[0], (char)i);
        ASSERT_EQ(out[1], (char)(i + 1));
        ASSERT_EQ(ch__ring_pop(&r, out, 1), 1);
        ASSERT_EQ(out[0], (char)(i + 2));
    }
    ch__ring_release(&r);
}

/* ------------------------------------------------- compressed stream */

/* Append one block (checksum zeros: not checked here) to out. */
static size_t block(unsigned char *out, unsigned char method, const void *payload, size_t plen,
                    uint32_t usize)
{
    uint32_t csize = (uint32_t)plen + 9;
    int i;

    memset(out, 0, 16);
    out[16] = method;
    for (i = 0; i < 4; i++) {
        out[17 + i] = (unsigned char)(csize >> (8 * i));
        out[21 + i] = (unsigned char)(usize >> (8 * i));
    }
    memcpy(out + 25, payload, plen);
    return 25 + plen;
}

static struct ch_cstream cs; /* 64 KiB: not on the stack */

/* Feed data whole, or in pieces of step bytes; the tail as a string. */
static const char *decode(const unsigned char *data, size_t n, size_t step, int *ret)
{
    static char tail[CH_CSTREAM_WINDOW + 1];
    size_t i, k, len;

    ch__cstream_init(&cs, 0);
    *ret = 0;
    for (i = 0; i < n && *ret == 0; i += k) {
        k = step && step < n - i ? step : n - i;
        *ret = ch__cstream_feed(&cs, data + i, k);
    }
    len = ch__cstream_tail(&cs, tail, CH_CSTREAM_WINDOW);
    tail[len] = '\0';
    return tail;
}

/* "abc" + match(offset 3, length 9) + "XYZ" = "abcabcabcabcXYZ" */
static const unsigned char lz4_abc[] = {0x35, 'a', 'b', 'c', 0x03, 0x00, 0x30, 'X', 'Y', 'Z'};

TEST(cstream_none_and_lz4_blocks_in_any_pieces)
{
    unsigned char data[256];
    size_t n = 0, step;
    int r;

    n += block(data + n, CH_CSTREAM_METHOD_NONE, "hello ", 6, 6);
    n += block(data + n, CH_CSTREAM_METHOD_LZ4, lz4_abc, sizeof(lz4_abc), 15);
    n += block(data + n, CH_CSTREAM_METHOD_NONE, "", 0, 0); /* an empty block */
    for (step = 0; step <= 7; step++) {
        ASSERT_STREQ(decode(data, n, step, &r), "hello abcabcabcabcXYZ");
        ASSERT_OK(r);
        ASSERT(ch__cstream_at_boundary(&cs));
        ASSERT_EQ(cs.blocks, 3);
        ASSERT_EQ(cs.total_out, 21);
        ASSERT_EQ(cs.total_in, n);
    }
    /* Cut anywhere inside a block: not at a boundary. */
    decode(data, n - 3, 0, &r);
    ASSERT_OK(r);
    ASSERT(!ch__cstream_at_boundary(&cs));
    decode(data, 40, 0, &r); /* inside the second header */
    ASSERT(!ch__cstream_at_boundary(&cs));
    decode(data, 0, 0, &r); /* nothing is a boundary */
    ASSERT(ch__cstream_at_boundary(&cs));
}

TEST(cstream_long_lengths_and_overlapping_match)
{
    /* 20 literals (15 + 5), then offset 1 (repeat the last byte) for 300
     * bytes (4 + 15 + 255 + 26), then "end". */
    static const unsigned char payload[] = {0xFF, 5,   'A',  'B',  'C', 'D', 'E',  'F', 'G', 'H',
                                            'I',  'J', 'K',  'L',  'M', 'N', 'O',  'P', 'Q', 'R',
                                            'S',  'T', 0x01, 0x00, 255, 26,  0x30, 'e', 'n', 'd'};
    unsigned char data[128];
    char want[400];
    size_t n;
    int r;

    memcpy(want, "ABCDEFGHIJKLMNOPQRST", 20);
    memset(want + 20, 'T', 300);
    memcpy(want + 320, "end", 4);
    n = block(data, CH_CSTREAM_METHOD_LZ4, payload, sizeof(payload), 323);
    ASSERT_STREQ(decode(data, n, 0, &r), want);
    ASSERT_OK(r);
    ASSERT(ch__cstream_at_boundary(&cs));
    ASSERT_STREQ(decode(data, n, 1, &r), want);
    ASSERT_OK(r);
}

TEST(cstream_decodes_a_clickhouse_block)
{
    /* ClickHouse 18.16's answer to a failing query with compress=1. */
    static const unsigned char data[] = {
        0x66, 0x45, 0x08, 0x57, 0x44, 0x72, 0xb4, 0x46, 0xd6, 0x4d, 0x9e, 0x30, 0xbb, 0x97, 0xf9,
        0x40, 0x82, 0x72, 0x00, 0x00, 0x00, 0x75, 0x00, 0x00, 0x00, 0xf0, 0x3b, 0x43, 0x6f, 0x64,
        0x65, 0x3a, 0x20, 0x33, 0x39, 0x35, 0x2c, 0x20, 0x65, 0x2e, 0x64, 0x69, 0x73, 0x70, 0x6c,
        0x61, 0x79, 0x54, 0x65, 0x78, 0x74, 0x28, 0x29, 0x20, 0x3d, 0x20, 0x44, 0x42, 0x3a, 0x3a,
        0x45, 0x78, 0x63, 0x65, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x3a, 0x20, 0x56, 0x61, 0x6c, 0x75,
        0x65, 0x20, 0x70, 0x61, 0x73, 0x73, 0x65, 0x64, 0x20, 0x74, 0x6f, 0x20, 0x27, 0x74, 0x68,
        0x72, 0x6f, 0x77, 0x49, 0x66, 0x27, 0x20, 0x66, 0x75, 0x6e, 0x63, 0x24, 0x00, 0xc0, 0x20,
        0x69, 0x73, 0x20, 0x6e, 0x6f, 0x6e, 0x20, 0x7a, 0x65, 0x72, 0x6f, 0x51, 0x00, 0x3b, 0x77,
        0x68, 0x61, 0x4a, 0x00, 0x50, 0x74, 0x69, 0x6f, 0x6e, 0x0a};
    static const char text[] = "Code: 395, e.displayText() = DB::Exception: Value passed to "
                               "'throwIf' function is non zero, e.what() = DB::Exception\n";
    size_t step;
    int r;

    for (step = 0; step < 4; step++) {
        ASSERT_STREQ(decode(data, sizeof(data), step, &r), text);
        ASSERT_OK(r);
        ASSERT(ch__cstream_at_boundary(&cs));
    }
}

TEST(cstream_rejects_what_is_not_a_stream)
{
    static const unsigned char off0[] = {0x10, 'a', 0x00, 0x00, 0x00};
    static const unsigned char far[] = {0x10, 'a', 0x02, 0x00, 0x00};
    static const unsigned char run[] = {0x1F, 'a', 0x01, 0x00, 0x00};
    static const unsigned char litrun[] = {0xF0, 200, 'a'};
    unsigned char data[128];
    size_t n;
    int r;

    n = block(data, 0x90, "x", 1, 1); /* ZSTD */
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "unsupported compression method 0x90");
    ASSERT(cs.fail_in_header);
    ASSERT_EQ(cs.fail_pos, 25);
    ASSERT(!ch__cstream_at_boundary(&cs));
    ASSERT_EQ(ch__cstream_feed(&cs, "more", 4), CHC_EPARSE); /* stays failed */

    n = block(data, CH_CSTREAM_METHOD_NONE, "abc", 3, 4);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "uncompressed block of 3 bytes claims 4");

    n = block(data, CH_CSTREAM_METHOD_LZ4, off0, sizeof(off0), 10);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "match offset 0");
    ASSERT(!cs.fail_in_header);

    n = block(data, CH_CSTREAM_METHOD_LZ4, far, sizeof(far), 10);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "match offset 2 outside the 1 bytes decoded");

    n = block(data, CH_CSTREAM_METHOD_LZ4, run, sizeof(run), 5);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "match runs past the block");

    n = block(data, CH_CSTREAM_METHOD_LZ4, litrun, sizeof(litrun), 1);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "literals run past the block");

    /* Fewer bytes than declared, and a sequence cut by the block's end. */
    n = block(data, CH_CSTREAM_METHOD_LZ4, lz4_abc, sizeof(lz4_abc), 16);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "decompresses to 15 bytes, not 16");
    n = block(data, CH_CSTREAM_METHOD_LZ4, lz4_abc, 5, 3);
    decode(data, n, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT_CONTAINS(cs.why, "ends inside a sequence");

    /* Plain text where a header should be (the fail_pos is where it ends). */
    decode((const unsigned char *)"Code: 395, e.displayText() = DB::Exception: x\n", 46, 0, &r);
    ASSERT_EQ(r, CHC_EPARSE);
    ASSERT(cs.fail_in_header);
    ASSERT_EQ(cs.fail_pos, 25);
}

TEST(cstream_window_keeps_the_last_64k)
{
    static unsigned char data[3 * (70000 + 25)];
    static char tail[CH_CSTREAM_WINDOW];
    size_t n = 0, i, k;
    int r;

    for (i = 0; i < 3; i++) {
        static unsigned char payload[70000];

        for (k = 0; k < sizeof(payload); k++)
            payload[k] = (unsigned char)((i * sizeof(payload) + k) % 251);
        n += block(data + n, CH_CSTREAM_METHOD_NONE, payload, sizeof(payload), sizeof(payload));
    }
    decode(data, n, 4096, &r);
    ASSERT_OK(r);
    ASSERT_EQ(cs.total_out, 210000);
    ASSERT_EQ(ch__cstream_tail(&cs, tail, 10), 10);
    for (k = 0; k < 10; k++)
        ASSERT_EQ((unsigned char)tail[k], (210000 - 10 + k) % 251);
    ASSERT_EQ(ch__cstream_tail(&cs, tail, sizeof(tail)), CH_CSTREAM_WINDOW);
    for (k = 0; k < CH_CSTREAM_WINDOW; k++)
        if ((unsigned char)tail[k] != (210000 - CH_CSTREAM_WINDOW + k) % 251)
            TAP_FAIL("tail[%zu] is %u", k, (unsigned char)tail[k]);
}

TEST(cstream_raw_mode_keeps_the_end)
{
    char tail[16];
    int i;

    ch__cstream_init(&cs, 1);
    for (i = 0; i < 20000; i++)
        ASSERT_OK(ch__cstream_feed(&cs, "0123456789", 10));
    ASSERT_OK(ch__cstream_feed(&cs, "\x01\x90 not a header", 15));
    ASSERT(ch__cstream_at_boundary(&cs));
    ASSERT_EQ(cs.total_out, 200015);
    ASSERT_EQ(ch__cstream_tail(&cs, tail, 8), 8);
    ASSERT(!memcmp(tail, "a header", 8));
}

/* ------------------------------------------ exception at the end of data */

TEST(stream_exception_after_binary_data)
{
    static const char v18[] = "\x02\x00\x00\x01\x00\x00\x00"
                              "Code: 395, e.displayText() = "
                              "DB::Exception: Value passed to 'throwIf' function is non zero, "
                              "e.what() = DB::Exception\n";
    static const char v22[] = "\x07\x00\xff\xfe\x00"
                              "Code: 395. DB::Exception: Value passed to "
                              "'throwIf' function is non-zero: while executing 'FUNCTION "
                              "throwIf(x)'. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version "
                              "22.8.5.29 (official build))\n";
    /* A message that quotes another one: the whole text from its start. */
    static const char nested[] = "\x00\x00"
                                 "Code: 279, e.displayText() = DB::Exception: All "
                                 "connection tries failed. Log: \n\nCode: 209, "
                                 "e.displayText() = DB::NetException: Timeout\n";
    const char *e;

    e = ch__find_stream_exception(v18, sizeof(v18) - 1);
    ASSERT_NOT_NULL(e);
    ASSERT(!strncmp(e, "Code: 395, e.displayText()", 26));
    e = ch__find_stream_exception(v22, sizeof(v22) - 1);
    ASSERT_NOT_NULL(e);
    ASSERT(!strncmp(e, "Code: 395. DB::Exception", 24));
    e = ch__find_stream_exception(nested, sizeof(nested) - 1);
    ASSERT_NOT_NULL(e);
    ASSERT(!strncmp(e, "Code: 279,", 10));
    /* Only at the very end, and only with a newline after it. */
    ASSERT_NULL(ch__find_stream_exception(v18, sizeof(v18) - 2));
    ASSERT_NULL(ch__find_stream_exception("\x01\x02\x03\n", 4));
    ASSERT_NULL(ch__find_stream_exception("Code: 1, no exception here\n", 27));
    ASSERT_NULL(ch__find_stream_exception("Code: x, DB::Exception\n", 23));
    ASSERT_NULL(ch__find_stream_exception("", 0));
    ASSERT_NULL(ch__find_stream_exception(NULL, 5));
    /* A NUL inside the message: still found, from the last candidate. */
    e = ch__find_stream_exception("\x01"
                                  "Code: 1, DB::Exception: a\x00"
                                  "b\n",
                                  29);
    ASSERT_NOT_NULL(e);
    ASSERT(!strncmp(e, "Code: 1, DB::Exception", 22));
}

/* ----------------------------------------------- pipe argument checks */

static void never_called(struct ch_pipe *p, void *data)
{
    (void)p;
    *(int *)data += 1;
}

/* ------------------------------------------------- HTTP responses */

TEST(header_lines)
{
    static const char exc[] = "X-ClickHouse-Exception-Code: 395\r\n";
    static const char lower[] = "x-clickhouse-exception-code:60\r\n";
    static const char bare[] = "X-ClickHouse-Exception-Code: \r\n";
    int code = -1;

    ASSERT_EQ(ch__header_line("HTTP/1.1 100 Continue\r\n", 23, &code), CH_HEADER_STATUS);
    ASSERT_EQ(code, -1);
    ASSERT_EQ(ch__header_line(exc, sizeof(exc) - 1, &code), CH_HEADER_EXCEPTION_CODE);
    ASSERT_EQ(code, 395);
    ASSERT_EQ(ch__header_line(lower, sizeof(lower) - 1, &code), CH_HEADER_EXCEPTION_CODE);
    ASSERT_EQ(code, 60);
    ASSERT_EQ(ch__header_line(bare, sizeof(bare) - 1, &code), CH_HEADER_EXCEPTION_CODE);
    ASSERT_EQ(code, 0);
    /* The name alone (n not past it), a prefix, another header. */
    ASSERT_EQ(ch__header_line(exc, 28, &code), CH_HEADER_OTHER);
    ASSERT_EQ(ch__header_line("HTTP", 4, &code), CH_HEADER_OTHER);
    ASSERT_EQ(ch__header_line("Content-Type: x\r\n", 17, &code), CH_HEADER_OTHER);
}

/* ch__salvaged_answer() of a whole string literal. */
#define salvaged(lit) ch__salvaged_answer(lit, sizeof(lit) - 1, &http, &text, &len)

TEST(salvaged_answers)
{
    static const char ans[] = "HTTP/1.1 500 Internal Server Error\r\nConnection: Close\r\n\r\n"
                              "Code: 27, e.displayText() = DB::Exception: Cannot parse\r\nmore";
    static const char noeol[] = "HTTP/1.0 404 Not Found\r\n\r\nCode: 60, no such table";
    const char *text = NULL;
    size_t len = 0;
    long http = 0;

    ASSERT_EQ(ch__salvaged_answer(ans, sizeof(ans) - 1, &http, &text, &len), 1);
    ASSERT_EQ(http, 500);
    ASSERT_EQ(len, strlen("Code: 27, e.displayText() = DB::Exception: Cannot parse"));
    ASSERT(!memcmp(text, "Code: 27, e.displayText()", 25));
    ASSERT_EQ(ch__salvaged_answer(noeol, sizeof(noeol) - 1, &http, &text, &len), 1);
    ASSERT_EQ(http, 404);
    ASSERT_EQ(len, strlen("Code: 60, no such table"));
    /* Not an error, no exception text, no 3-digit status, not HTTP, cut
     * short: 0. */
    http = 7;
    ASSERT_EQ(salvaged("HTTP/1.1 200 OK\r\n\r\nCode: 1, x"), 0);
    ASSERT_EQ(salvaged("HTTP/1.1 500 E\r\n\r\nno code"), 0);
    ASSERT_EQ(salvaged("HTTP/1.1 5x0 E\r\n\r\nCode: 1, x"), 0);
    ASSERT_EQ(salvaged("Code: 1, e.displayText() = x"), 0);
    ASSERT_EQ(salvaged("HTTP/1.1 5"), 0);
    ASSERT_EQ(http, 7); /* untouched */
}

TEST(pipe_start_checks_its_arguments)
{
    struct cfg_replica r = replica((char *)"127.0.0.1", 1, 0);
    struct chc_err err = CHC_ERR_INIT;
    struct ch_pipe_params pp;
    struct ch_pipe *p = NULL;
    struct ch_client *c = NULL;
    uv_loop_t loop;
    char *longsql;
    int calls = 0;

    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(ch_client_new(&loop, &c, &err));
    memset(&pp, 0, sizeof(pp));
    pp.src.replica = &r;
    pp.src.sql = "SELECT 1 FORMAT Native";
    pp.dst.replica = &r;
    pp.dst.sql = "INSERT INTO t FORMAT Native";

    ASSERT_EQ(ch_pipe_start(NULL, &pp, never_called, &calls, &p, &err), -EINVAL);
    ASSERT_EQ(ch_pipe_start(c, NULL, never_called, &calls, &p, &err), -EINVAL);
    ASSERT_EQ(ch_pipe_start(c, &pp, NULL, &calls, &p, &err), -EINVAL);
    pp.buffer_bytes = 1000;
    ASSERT_EQ(ch_pipe_start(c, &pp, never_called, &calls, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "pipe buffer of 1000 bytes");
    pp.buffer_bytes = CH_PIPE_BUFFER_MAX + 1;
    ASSERT_EQ(ch_pipe_start(c, &pp, never_called, &calls, &p, &err), -EINVAL);
    pp.buffer_bytes = 0;
    pp.max_bytes_per_second = -1;
    ASSERT_EQ(ch_pipe_start(c, &pp, never_called, &calls, &p, &err), -EINVAL);
    pp.max_bytes_per_second = 0;
    pp.compression = (enum ch_pipe_compression)7;
    ASSERT_EQ(ch_pipe_start(c, &pp, never_called, &calls, &p, &err), -EINVAL);
    pp.compression = CH_PIPE_COMPRESS_AUTO;
    /* The INSERT travels in the URL, which has a limit. */
    longsql = malloc(20000);
    ASSERT_NOT_NULL(longsql);
    memset(longsql, 'x', 19999);
    longsql[19999] = '\0';
    memcpy(longsql, "INSERT INTO t FORMAT Native /*", 30);
    pp.dst.sql = longsql;
    ASSERT_EQ(ch_pipe_start(c, &pp, never_called, &calls, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "destination URL with the INSERT is");
    free(longsql);
    pp.dst.sql = "INSERT INTO t FORMAT Native";
    /* The query checks apply to both sides. */
    pp.dst.replica = NULL;
    ASSERT_EQ(ch_pipe_start(c, &pp, never_called, &calls, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "no replica");
    ASSERT_NULL(p);
    ch_client_set_rate(NULL, 5);
    ch_client_set_rate(c, 5);
    ch_pipe_cancel(NULL);
    ASSERT_NULL(ch_pipe_free(NULL));

    ASSERT_NULL(ch_client_free(c));
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    ASSERT_EQ(calls, 0);
}

TAP_MAIN()

/* pipe-smoke.c — drives ch pipes (ch_pipe_start) between two real ClickHouse
 * servers (run by tests/integration/test_pipe.py on a cluster of
 * tests/harness). TAP output.
 *
 * Env: CH_PIPE_HOST (127.0.0.1), CH_PIPE_SRC_PORT and CH_PIPE_DST_PORT (HTTP
 * ports of two servers, required), CH_PIPE_USER / CH_PIPE_PASSWORD (a user
 * with a password on both, e.g. chc), CH_PIPE_DEBUG=1 (ch's debug log on
 * stderr). Creates database chc_pipe on both and
 * drops it at the end of each test. Every test uses its own loop and ends
 * with the client freed, the loop run until no handle is left and
 * uv_loop_close() == 0; ASan checks leaks.
 *
 * What it interrupts: source queries that throw (throwIf) mid-stream,
 * INSERTs into missing or mismatched tables, pipes cancelled or cut by
 * ch_client_free() mid-stream. What it checks afterwards: row counts and
 * sum(cityHash64(...)) on both sides, that no query of ours is left running,
 * elapsed times (rate limits, prompt aborts) and this process's peak RSS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/base/err.h"
#include "chcopier/obs/log.h"
#include "chcopier/config/task.h"
#include "../unit/tap.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

enum node { SRC, DST };

static struct cfg_replica rep[2];
static char prefix[2][300]; /* "source 127.0.0.1:P: ", "destination ...: " */

static void setup_env(void)
{
    const char *host = getenv("CH_PIPE_HOST"), *sp = getenv("CH_PIPE_SRC_PORT"),
               *dp = getenv("CH_PIPE_DST_PORT");
    int i;

    if (rep[SRC].host)
        return;
    if (getenv("CH_PIPE_DEBUG")) {
        chc_log_set_level(CHC_LOG_DEBUG);
        chc_log_set_stderr(1);
    }
    if (!sp || !dp) {
        fprintf(stderr, "pipe-smoke: CH_PIPE_SRC_PORT and CH_PIPE_DST_PORT must be set\n");
        exit(2);
    }
    for (i = 0; i < 2; i++) {
        rep[i].host = (char *)(host ? host : "127.0.0.1");
        rep[i].http_port = (int)strtol(i == SRC ? sp : dp, NULL, 10);
        rep[i].user = getenv("CH_PIPE_USER");
        rep[i].password = getenv("CH_PIPE_PASSWORD");
        snprintf(prefix[i], sizeof(prefix[i]), "%s %s:%d: ", i == SRC ? "source" : "destination",
                 rep[i].host, rep[i].http_port);
    }
}

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static void open_client(uv_loop_t *loop, struct ch_client **c)
{
    struct chc_err err = CHC_ERR_INIT;

    setup_env();
    ASSERT_OK(uv_loop_init(loop));
    if (ch_client_new(loop, c, &err) < 0)
        TAP_FAIL("ch_client_new: %s", err.msg);
}

static void close_client(uv_loop_t *loop, struct ch_client *c)
{
    ASSERT_NULL(ch_client_free(c));
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

/* Run sql on a node (synchronously); the result, if out, is appended. */
static void sql(struct ch_client *c, enum node n, const char *text, struct chc_buf *out)
{
    struct ch_query_params p;
    struct chc_err err = CHC_ERR_INIT;

    memset(&p, 0, sizeof(p));
    p.replica = &rep[n];
    p.sql = text;
    p.timeout_ms = 120000;
    if (ch_query_sync(c, &p, out, &err) < 0)
        TAP_FAIL("%s: %s: %s", n == SRC ? "source" : "destination", text, err.msg);
}

/* The one-line answer of sql, without its newline, in a static buffer. */
static const char *scalar(struct ch_client *c, enum node n, const char *text)
{
    static char copy[2][512];
    static int k;
    struct chc_buf out = CHC_BUF_INIT;
    char *s = copy[k ^= 1];

    sql(c, n, text, &out);
    snprintf(s, sizeof(copy[0]), "%s", out.buf);
    s[strcspn(s, "\n")] = '\0';
    chc_buf_release(&out);
    return s;
}

static void fresh_db(struct ch_client *c)
{
    sql(c, SRC, "DROP DATABASE IF EXISTS chc_pipe", NULL);
    sql(c, DST, "DROP DATABASE IF EXISTS chc_pipe", NULL);
    sql(c, SRC, "CREATE DATABASE chc_pipe", NULL);
    sql(c, DST, "CREATE DATABASE chc_pipe", NULL);
}

static void drop_db(struct ch_client *c)
{
    sql(c, SRC, "DROP DATABASE IF EXISTS chc_pipe", NULL);
    sql(c, DST, "DROP DATABASE IF EXISTS chc_pipe", NULL);
}

/* The destination's table for (a UInt64, s String) results. */
static void make_ab(struct ch_client *c, const char *name)
{
    char text[256];

    snprintf(text, sizeof(text),
             "CREATE TABLE chc_pipe.%s (a UInt64, s String) ENGINE = MergeTree ORDER BY a", name);
    sql(c, DST, text, NULL);
}

/* Outcome of one pipe, copied out in its callback (which frees it). */
struct res {
    int done;
    int status, exc, compressed;
    unsigned long long bytes;
    char msg[CHC_ERR_MSG_MAX];
    double t0, t_done;
    int *in_api; /* set while inside ch_pipe_cancel/ch_client_free */
    int cb_inside_api;
};

static void on_pipe(struct ch_pipe *p, void *data)
{
    struct res *r = data;

    r->done++;
    r->status = ch_pipe_status(p);
    r->exc = ch_pipe_exception_code(p);
    r->bytes = ch_pipe_bytes(p);
    r->compressed = ch_pipe_compressed(p);
    snprintf(r->msg, sizeof(r->msg), "%s", ch_pipe_error(p)->msg);
    r->t_done = now_s();
    if (r->in_api && *r->in_api)
        r->cb_inside_api = 1;
    ch_pipe_free(p);
}

static void pipe_params(struct ch_pipe_params *pp, const char *src_sql, const char *dst_sql)
{
    memset(pp, 0, sizeof(*pp));
    pp->src.replica = &rep[SRC];
    pp->src.sql = src_sql;
    pp->src.timeout_ms = 300000;
    pp->dst.replica = &rep[DST];
    pp->dst.sql = dst_sql;
    pp->dst.timeout_ms = 300000;
}

static struct ch_pipe *start(struct ch_client *c, const struct ch_pipe_params *pp, struct res *r)
{
    struct chc_err err = CHC_ERR_INIT;
    struct ch_pipe *p = NULL;

    r->t0 = now_s();
    if (ch_pipe_start(c, pp, on_pipe, r, &p, &err) < 0)
        TAP_FAIL("ch_pipe_start: %s", err.msg);
    return p;
}

static void wait_all(uv_loop_t *loop, struct res *r, int n)
{
    int i, all;

    do {
        all = 1;
        for (i = 0; i < n; i++)
            if (!r[i].done)
                all = 0;
        if (!all)
            uv_run(loop, UV_RUN_ONCE);
    } while (!all);
}

static void run_pipe(uv_loop_t *loop, struct ch_client *c, const struct ch_pipe_params *pp,
                     struct res *r)
{
    memset(r, 0, sizeof(*r));
    start(c, pp, r);
    wait_all(loop, r, 1);
    ASSERT_EQ(r->done, 1);
}

static int starts_with(const char *s, const char *pfx)
{
    return strncmp(s, pfx, strlen(pfx)) == 0;
}

/* A count that must stay 0 for a while (the server may still be busy with
 * the INSERT that failed). */
static void assert_stays_empty(struct ch_client *c, const char *table)
{
    char text[256];
    int i;

    snprintf(text, sizeof(text), "SELECT count() FROM %s", table);
    for (i = 0; i < 5; i++) {
        ASSERT_STREQ(scalar(c, DST, text), "0");
        uv_sleep(200);
    }
}

/* No query of the given id (or no INSERT into chc_pipe) still runs there. */
static void assert_gone(struct ch_client *c, enum node n, const char *where)
{
    char text[512];
    const char *left = "?";
    int i;

    snprintf(
        text, sizeof(text),
        "SELECT count() FROM system.processes WHERE (%s) AND query NOT LIKE '%%system.processes%%'",
        where);
    for (i = 0; i < 50; i++) {
        left = scalar(c, n, text);
        if (!strcmp(left, "0"))
            return;
        uv_sleep(100);
    }
    TAP_FAIL("%s still runs %s queries with %s after 5 s", n == SRC ? "source" : "destination",
             left, where);
}

static const char *mode_name(enum ch_pipe_compression m)
{
    switch (m) {
    case CH_PIPE_COMPRESS_AUTO:
        return "auto";
    case CH_PIPE_COMPRESS_UNCHECKED:
        return "unchecked";
    case CH_PIPE_COMPRESS_NEVER:
        return "plain";
    }
    return "?";
}

/* Reset VmHWM to the current RSS (Linux >= 4.0); 0 or -1. */
static int reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    int r;

    if (!f)
        return -1;
    r = fputs("5", f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        r = -1;
    return r;
}

static long vm_kib(const char *field)
{
    char line[256];
    size_t fl = strlen(field);
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* ------------------------------------------------------------------ tests */

TEST(pipe_2m_rows_of_mixed_columns_intact)
{
    static const char cols[] = "id UInt64, s String, n Nullable(String), a Array(UInt32), "
                               "d Date, f Float64, fs FixedString(4), e Nullable(UInt8)";
    static const char names[] = "id, s, n, a, d, f, fs, e";
    static const enum ch_pipe_compression modes[] = {CH_PIPE_COMPRESS_AUTO,
                                                     CH_PIPE_COMPRESS_UNCHECKED};
    char text[1024], ins[512], sel[512], src_sum[128], dst_sum[128];
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;
    double dt;
    size_t m;

    open_client(&loop, &c);
    fresh_db(c);
    snprintf(text, sizeof(text), "CREATE TABLE chc_pipe.t (%s) ENGINE = MergeTree ORDER BY id",
             cols);
    sql(c, SRC, text, NULL);
    sql(c, DST, text, NULL);
    sql(c, SRC,
        "INSERT INTO chc_pipe.t SELECT number, concat('row ', toString(number), '\\t\\n\\'x'), "
        "if(number % 3 = 0, NULL, toString(number * 7)), "
        "arrayMap(x -> toUInt32(x * number), range(toUInt32(number % 5))), "
        "toDate('2020-01-01') + number % 365, number / 3, "
        "toFixedString(substring(toString(number), 1, 4), 4), "
        "if(number % 5 = 0, NULL, toUInt8(number % 251)) "
        "FROM numbers(2000000)",
        NULL);
    snprintf(sel, sizeof(sel), "SELECT %s FROM chc_pipe.t FORMAT Native", names);
    snprintf(ins, sizeof(ins), "INSERT INTO chc_pipe.t (%s) FORMAT Native", names);
    snprintf(text, sizeof(text), "SELECT count(), sum(cityHash64(%s)) FROM chc_pipe.t", names);
    snprintf(src_sum, sizeof(src_sum), "%s", scalar(c, SRC, text));
    ASSERT(starts_with(src_sum, "2000000\t"));
    /* The last two rounds pause both sides all the time: the smallest buffer
     * and a rate limit. */
    for (m = 0; m < 2 * sizeof(modes) / sizeof(modes[0]); m++) {
        int tight = m >= sizeof(modes) / sizeof(modes[0]);

        sql(c, DST, "TRUNCATE TABLE chc_pipe.t", NULL);
        pipe_params(&pp, sel, ins);
        pp.compression = modes[m % (sizeof(modes) / sizeof(modes[0]))];
        if (tight) {
            pp.buffer_bytes = CH_PIPE_BUFFER_MIN;
            pp.max_bytes_per_second = 50000000;
        }
        run_pipe(&loop, c, &pp, &r);
        dt = r.t_done - r.t0;
        if (r.status)
            TAP_FAIL("pipe (%s): %s", mode_name(pp.compression), r.msg);
        snprintf(dst_sum, sizeof(dst_sum), "%s", scalar(c, DST, text));
        printf("# %s%s: 2000000 rows moved %s, %llu bytes in %.2f s (%.1f MB/s); count and "
               "sum(cityHash64(*)): source %s, destination %s\n",
               mode_name(pp.compression), tight ? ", 64 KiB buffer, 50 MB/s" : "",
               r.compressed ? "compressed" : "plain", r.bytes, dt, (double)r.bytes / dt / 1e6,
               src_sum, dst_sum);
        ASSERT_STREQ(dst_sum, src_sum);
        if (pp.compression == CH_PIPE_COMPRESS_UNCHECKED)
            ASSERT_EQ(r.compressed, 1);
    }
    drop_db(c);
    close_client(&loop, c);
}

TEST(small_results_arrive_whatever_the_server)
{
    struct ch_pipe_params pp;
    struct ch_client *c;
    const char *got;
    struct res r;
    uv_loop_t loop;
    int i;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    pipe_params(&pp, "SELECT number AS a, toString(number) AS s FROM numbers(1000) FORMAT Native",
                "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    /* The first pipe probes the source, the second uses what it found. */
    for (i = 0; i < 2; i++) {
        run_pipe(&loop, c, &pp, &r);
        if (r.status)
            TAP_FAIL("pipe: %s", r.msg);
        printf("# 1000 rows (%llu bytes) moved %s\n", r.bytes,
               r.compressed ? "compressed" : "plain");
        ASSERT_STREQ(scalar(c, DST, "SELECT count(), sum(a), sum(toUInt64(s)) FROM chc_pipe.t"),
                     "1000\t499500\t499500");
        sql(c, DST, "TRUNCATE TABLE chc_pipe.t", NULL);
    }
    /* For the record: what forcing compression gives on this server. */
    pp.compression = CH_PIPE_COMPRESS_UNCHECKED;
    run_pipe(&loop, c, &pp, &r);
    got = scalar(c, DST, "SELECT count() FROM chc_pipe.t");
    printf("# forced compression: status %d, %llu bytes, %s of 1000 rows arrived%s\n", r.status,
           r.bytes, got, strcmp(got, "1000") ? " (the server loses small compressed results)" : "");
    drop_db(c);
    close_client(&loop, c);
}

TEST(rss_stays_bounded_over_20m_rows)
{
    static const enum ch_pipe_compression modes[] = {CH_PIPE_COMPRESS_NEVER,
                                                     CH_PIPE_COMPRESS_UNCHECKED};
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;
    long before, after;
    size_t m;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "big");
    for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        sql(c, DST, "TRUNCATE TABLE chc_pipe.big", NULL);
        (void)reset_hwm(); /* else VmHWM is the process's peak so far */
        before = vm_kib("VmHWM");
        pipe_params(&pp,
                    "SELECT number AS a, toString(number) AS s FROM numbers(20000000) "
                    "FORMAT Native",
                    "INSERT INTO chc_pipe.big (a, s) FORMAT Native");
        pp.compression = modes[m];
        run_pipe(&loop, c, &pp, &r);
        after = vm_kib("VmHWM");
        if (r.status)
            TAP_FAIL("pipe: %s", r.msg);
        printf("# %s: 20000000 rows, %llu bytes in %.2f s; VmHWM %ld KiB before, %ld KiB "
               "after, VmRSS %ld KiB%s\n",
               mode_name(modes[m]), r.bytes, r.t_done - r.t0, before, after, vm_kib("VmRSS"),
               UNDER_ASAN ? " (ASan build: not checked)" : "");
        ASSERT_STREQ(scalar(c, DST, "SELECT count(), sum(a) FROM chc_pipe.big"),
                     "20000000\t199999990000000");
        if (!UNDER_ASAN)
            ASSERT(after < 16 * 1024);
    }
    drop_db(c);
    close_client(&loop, c);
}

TEST(eight_pipes_on_one_loop)
{
    enum { N = 8, ROWS = 250000 };
    struct ch_pipe_params pp;
    char sel[N][256];
    struct res r[N];
    struct ch_client *c;
    uv_loop_t loop;
    double t0, single;
    int i;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "multi");
    /* One alone first, for comparison. */
    snprintf(sel[0], sizeof(sel[0]),
             "SELECT number AS a, toString(number) AS s FROM numbers(%d) FORMAT Native", ROWS);
    pipe_params(&pp, sel[0], "INSERT INTO chc_pipe.multi (a, s) FORMAT Native");
    run_pipe(&loop, c, &pp, &r[0]);
    ASSERT_EQ(r[0].status, 0);
    single = r[0].t_done - r[0].t0;
    sql(c, DST, "TRUNCATE TABLE chc_pipe.multi", NULL);

    memset(r, 0, sizeof(r));
    t0 = now_s();
    for (i = 0; i < N; i++) {
        snprintf(sel[i], sizeof(sel[i]),
                 "SELECT number AS a, toString(number) AS s FROM numbers(%d, %d) FORMAT Native",
                 i * ROWS, ROWS);
        pipe_params(&pp, sel[i], "INSERT INTO chc_pipe.multi (a, s) FORMAT Native");
        start(c, &pp, &r[i]);
    }
    wait_all(&loop, r, N);
    printf("# %d pipes of %d rows at once: %.2f s (one alone: %.2f s)\n", N, ROWS, now_s() - t0,
           single);
    for (i = 0; i < N; i++) {
        if (r[i].status)
            TAP_FAIL("pipe %d: %s", i, r[i].msg);
        /* Overlap: every pipe finished after every other one started. */
        ASSERT(r[i].t_done > r[N - 1].t0);
    }
    ASSERT_STREQ(scalar(c, DST, "SELECT count(), sum(a), uniqExact(a) FROM chc_pipe.multi"),
                 "2000000\t1999999000000\t2000000");
    drop_db(c);
    close_client(&loop, c);
}

TEST(source_exception_mid_stream_fails_both)
{
    static const enum ch_pipe_compression modes[] = {CH_PIPE_COMPRESS_UNCHECKED,
                                                     CH_PIPE_COMPRESS_NEVER};
    struct cfg_setting atomic_items[] = {
        {(char *)"min_insert_block_size_rows", (char *)"1000000000"},
        {(char *)"min_insert_block_size_bytes", (char *)"100000000000"},
    };
    struct cfg_settings atomic = {atomic_items, 2};
    struct ch_pipe_params pp;
    struct ch_client *c;
    const char *left;
    struct res r;
    uv_loop_t loop;
    size_t m;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        pipe_params(&pp,
                    "SELECT number AS a, toString(number + throwIf(number = 1000000)) AS s "
                    "FROM numbers(2000000) FORMAT Native",
                    "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
        pp.compression = modes[m];
        run_pipe(&loop, c, &pp, &r);
        printf("# %s, after %llu bytes: %s\n", mode_name(modes[m]), r.bytes, r.msg);
        ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
        ASSERT_EQ(r.exc, 395);
        ASSERT(starts_with(r.msg, prefix[SRC]));
        ASSERT_CONTAINS(r.msg, "Code: 395");
        ASSERT_CONTAINS(r.msg, "throwIf");
        ASSERT(r.bytes > 1000000); /* the destination had been receiving */
        assert_stays_empty(c, "chc_pipe.t");
        assert_gone(c, DST, "query LIKE 'INSERT INTO chc_pipe.t%'");
    }

    /* Past min_insert_block_size_rows, with the settings that make the
     * INSERT all-or-nothing: still nothing. */
    pp.src.sql = "SELECT number AS a, toString(number + throwIf(number = 3000000)) AS s "
                 "FROM numbers(4000000) FORMAT Native";
    pp.compression = CH_PIPE_COMPRESS_AUTO;
    pp.dst.settings[0] = &atomic;
    run_pipe(&loop, c, &pp, &r);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT(starts_with(r.msg, prefix[SRC]));
    assert_stays_empty(c, "chc_pipe.t");

    /* The same with default settings: ClickHouse has committed the squashed
     * blocks of 1048576 rows it completed (documented in pipe.h). */
    pp.dst.settings[0] = NULL;
    run_pipe(&loop, c, &pp, &r);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    assert_gone(c, DST, "query LIKE 'INSERT INTO chc_pipe.t%'");
    left = scalar(c, DST, "SELECT count() FROM chc_pipe.t");
    printf("# default settings, exception at row 3000000 after %llu bytes: %s rows left in "
           "the destination\n",
           r.bytes, left);
    ASSERT_EQ(strtoll(left, NULL, 10) % 1048576, 0);
    ASSERT(strtoll(left, NULL, 10) <= 2 * 1048576);
    drop_db(c);
    close_client(&loop, c);
}

/* Data is not an exception: a last String value that ends like one (with
 * or without its newline; the last one or every one) arrives intact, plain
 * and compressed (a result over 1 MiB, so that this server's compress=1
 * answers it). */
TEST(data_that_ends_like_an_exception_arrives)
{
    static const char *const fakes[] = {
        "x Code: 395, e.displayText() = DB::Exception: fake\\n",
        "x Code: 395, e.displayText() = DB::Exception: fake",
        "Code: 60. DB::Exception: Table x doesn\\'t exist. (UNKNOWN_TABLE)\\n",
    };
    static const struct {
        enum ch_pipe_compression mode;
        unsigned rows;
    } runs[] = {{CH_PIPE_COMPRESS_NEVER, 10}, {CH_PIPE_COMPRESS_NEVER, 200000},
                {CH_PIPE_COMPRESS_UNCHECKED, 200000}};
    struct ch_pipe_params pp;
    struct ch_client *c;
    char src[512], want[512], text[512];
    struct res r;
    uv_loop_t loop;
    size_t f, m;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    for (f = 0; f < sizeof(fakes) / sizeof(fakes[0]); f++)
        for (m = 0; m < sizeof(runs) / sizeof(runs[0]); m++) {
            sql(c, DST, "TRUNCATE TABLE chc_pipe.t", NULL);
            /* Odd runs: every value ends so, not only the last. */
            snprintf(src, sizeof(src),
                     "SELECT number AS a, if(number = %u - 1 OR %d, '%s', toString(number)) AS s "
                     "FROM numbers(%u) FORMAT Native",
                     runs[m].rows, (int)(m % 2), fakes[f], runs[m].rows);
            pipe_params(&pp, src, "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
            pp.compression = runs[m].mode;
            run_pipe(&loop, c, &pp, &r);
            printf("# %s, %u rows, '%s': %s\n", mode_name(runs[m].mode), runs[m].rows,
                   fakes[f], r.status ? r.msg : "ok");
            ASSERT_EQ(r.status, 0);
            snprintf(want, sizeof(want), "%u", runs[m].rows);
            ASSERT_STREQ(scalar(c, DST, "SELECT count() FROM chc_pipe.t"), want);
            snprintf(text, sizeof(text), "SELECT countIf(s = '%s') FROM chc_pipe.t", fakes[f]);
            snprintf(want, sizeof(want), "%u", m % 2 ? runs[m].rows : 1);
            ASSERT_STREQ(scalar(c, DST, text), want);
            snprintf(text, sizeof(text),
                     "SELECT s = '%s' FROM chc_pipe.t WHERE a = %u - 1", fakes[f],
                     runs[m].rows);
            ASSERT_STREQ(scalar(c, DST, text), "1");
        }
    drop_db(c);
    close_client(&loop, c);
}

TEST(source_errors_before_streaming)
{
    struct cfg_replica bad;
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    /* An HTTP 500 whose body is compressed like the data. */
    pipe_params(&pp, "SELEC 1 FORMAT Native", "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    run_pipe(&loop, c, &pp, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_EQ(r.exc, 62);
    ASSERT(starts_with(r.msg, prefix[SRC]));
    ASSERT_CONTAINS(r.msg, "Syntax error");
    ASSERT_EQ(r.bytes, 0);

    /* Refused before the query runs: plain text. */
    bad = rep[SRC];
    bad.password = (char *)"pipe-Wr0ng-pw";
    pipe_params(&pp, "SELECT 1 AS a FORMAT Native", "INSERT INTO chc_pipe.t (a) FORMAT Native");
    pp.src.replica = &bad;
    run_pipe(&loop, c, &pp, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_AUTH);
    ASSERT(starts_with(r.msg, prefix[SRC]));
    ASSERT(!strstr(r.msg, "Wr0ng"));

    /* Not compressed at all (no such column): still a clean exception. */
    pipe_params(&pp, "SELECT nosuchcolumn FROM system.one FORMAT Native",
                "INSERT INTO chc_pipe.t (a) FORMAT Native");
    run_pipe(&loop, c, &pp, &r);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_EQ(r.exc, 47);
    assert_stays_empty(c, "chc_pipe.t");
    drop_db(c);
    close_client(&loop, c);
}

TEST(destination_error_aborts_source)
{
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    fresh_db(c);
    /* 200 M rows would take minutes: the source must be cut short. */
    pipe_params(&pp,
                "SELECT number AS a, toString(number) AS s FROM numbers(200000000) FORMAT Native",
                "INSERT INTO chc_pipe.missing (a, s) FORMAT Native");
    pp.src.query_id = "chc-pipe-dst-missing";
    run_pipe(&loop, c, &pp, &r);
    printf("# after %.2f s, %llu bytes: %s\n", r.t_done - r.t0, r.bytes, r.msg);
    ASSERT(starts_with(r.msg, prefix[DST]));
    /* ClickHouse answers the missing table before it reads the body, then
     * closes: the answer arrives unless the reset overtakes it while we are
     * still sending (TCP discards what we had not read). Either way the
     * destination's failure, quickly. */
    if (r.status == CHC_ECH_CONN) {
        ASSERT(strstr(r.msg, "reset") || strstr(r.msg, "Send failure"));
    } else {
        ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
        ASSERT_EQ(r.exc, 60);
        ASSERT_CONTAINS(r.msg, "doesn't exist");
    }
    ASSERT(r.t_done - r.t0 < 60.0); /* 200 M rows would take minutes */
    assert_gone(c, SRC, "query_id = 'chc-pipe-dst-missing'");

    /* A column of another type: the INSERT fails on the first block. */
    sql(c, DST, "CREATE TABLE chc_pipe.t (a UInt64, s UInt64) ENGINE = MergeTree ORDER BY a", NULL);
    pp.dst.sql = "INSERT INTO chc_pipe.t (a, s) FORMAT Native";
    pp.src.query_id = "chc-pipe-dst-type";
    run_pipe(&loop, c, &pp, &r);
    printf("# after %.2f s, %llu bytes: %s\n", r.t_done - r.t0, r.bytes, r.msg);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT(starts_with(r.msg, prefix[DST]));
    ASSERT(r.t_done - r.t0 < 60.0); /* 200 M rows would take minutes */
    assert_gone(c, SRC, "query_id = 'chc-pipe-dst-type'");
    assert_stays_empty(c, "chc_pipe.t");
    drop_db(c);
    close_client(&loop, c);
}

struct cancel_ctx {
    struct ch_pipe *p;
    struct ch_client *c; /* set: free the client instead */
    int in_api;
    double t_cancel;
};

static void on_cancel_timer(uv_timer_t *t)
{
    struct cancel_ctx *cc = t->data;

    cc->t_cancel = now_s();
    cc->in_api = 1;
    if (cc->c)
        cc->c = ch_client_free(cc->c);
    else
        ch_pipe_cancel(cc->p);
    cc->in_api = 0;
    uv_close((uv_handle_t *)t, NULL);
}

TEST(cancel_mid_stream_leaves_nothing)
{
    struct cancel_ctx cc = {0};
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r = {0};
    uv_timer_t timer;
    uv_loop_t loop;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    pipe_params(&pp,
                "SELECT number AS a, toString(number) AS s FROM numbers(20000000) FORMAT Native",
                "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    pp.src.query_id = "chc-pipe-cancel";
    pp.max_bytes_per_second = 3000000; /* stays below 1048576 rows */
    r.in_api = &cc.in_api;
    cc.p = start(c, &pp, &r);
    ASSERT_OK(uv_timer_init(&loop, &timer));
    timer.data = &cc;
    ASSERT_OK(uv_timer_start(&timer, on_cancel_timer, 1000, 0));
    wait_all(&loop, &r, 1);
    printf("# cancelled after %.2f s and %llu bytes, callback %.1f ms later: %s\n",
           cc.t_cancel - r.t0, r.bytes, (r.t_done - cc.t_cancel) * 1e3, r.msg);
    ASSERT_EQ(r.status, CHC_ECANCELED);
    ASSERT_EQ(r.cb_inside_api, 0);
    ASSERT(r.t_done - cc.t_cancel < 2.0);
    ASSERT(r.bytes > 1000000);
    ASSERT_CONTAINS(r.msg, "pipe cancelled");
    uv_run(&loop, UV_RUN_NOWAIT); /* the timer's close */
    assert_stays_empty(c, "chc_pipe.t");
    assert_gone(c, DST, "query LIKE 'INSERT INTO chc_pipe.t%'");
    assert_gone(c, SRC, "query_id = 'chc-pipe-cancel'");
    /* A pipe that ended: cancel is a no-op and the pipe stays readable. */
    drop_db(c);
    close_client(&loop, c);
}

TEST(client_free_cancels_pipes)
{
    struct cancel_ctx cc = {0};
    struct ch_pipe_params pp;
    struct ch_client *c, *c2;
    struct res r[2];
    uv_timer_t timer;
    uv_loop_t loop;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    memset(r, 0, sizeof(r));
    pipe_params(&pp,
                "SELECT number AS a, toString(number) AS s FROM numbers(20000000) FORMAT Native",
                "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    pp.max_bytes_per_second = 3000000;
    r[0].in_api = r[1].in_api = &cc.in_api;
    start(c, &pp, &r[0]);
    pp.src.sql = "SELECT sleep(3) AS a FORMAT Native"; /* its INSERT has not started */
    start(c, &pp, &r[1]);
    cc.c = c;
    ASSERT_OK(uv_timer_init(&loop, &timer));
    timer.data = &cc;
    ASSERT_OK(uv_timer_start(&timer, on_cancel_timer, 700, 0));
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_NULL(cc.c);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    printf("# %s / %s\n", r[0].msg, r[1].msg);
    ASSERT_EQ(r[0].done, 1);
    ASSERT_EQ(r[1].done, 1);
    ASSERT_EQ(r[0].status, CHC_ECANCELED);
    ASSERT_EQ(r[1].status, CHC_ECANCELED);
    ASSERT_EQ(r[0].cb_inside_api, 0);
    ASSERT_EQ(r[1].cb_inside_api, 0);
    ASSERT(r[0].bytes > 0);
    ASSERT_EQ(r[1].bytes, 0);

    open_client(&loop, &c2);
    assert_stays_empty(c2, "chc_pipe.t");
    drop_db(c2);
    close_client(&loop, c2);
}

TEST(rate_limits_per_pipe_and_shared)
{
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r[2];
    uv_loop_t loop;
    double dt, want;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    /* ~10 MB of plain Native at 2 MB/s. */
    pipe_params(&pp, "SELECT number AS a, toString(number) AS s FROM numbers(680000) FORMAT Native",
                "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    pp.compression = CH_PIPE_COMPRESS_NEVER;
    pp.max_bytes_per_second = 2000000;
    run_pipe(&loop, c, &pp, &r[0]);
    ASSERT_EQ(r[0].status, 0);
    dt = r[0].t_done - r[0].t0;
    want = (double)r[0].bytes / 2e6;
    printf("# per pipe: %llu bytes at 2 MB/s: %.2f s (expected %.2f s, %.1f%%)\n", r[0].bytes, dt,
           want, (dt / want - 1) * 100);
    ASSERT(r[0].bytes > 9000000);
    ASSERT(dt > want * 0.8 && dt < want * 1.2);

    /* Two unlimited pipes of ~5 MB under one client-wide 2 MB/s. */
    sql(c, DST, "TRUNCATE TABLE chc_pipe.t", NULL);
    ch_client_set_rate(c, 2000000);
    memset(r, 0, sizeof(r));
    pipe_params(&pp, "SELECT number AS a, toString(number) AS s FROM numbers(340000) FORMAT Native",
                "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    pp.compression = CH_PIPE_COMPRESS_NEVER;
    start(c, &pp, &r[0]);
    pp.src.sql = "SELECT number + 340000 AS a, toString(a) AS s FROM numbers(340000) FORMAT Native";
    start(c, &pp, &r[1]);
    wait_all(&loop, r, 2);
    ASSERT_EQ(r[0].status, 0);
    ASSERT_EQ(r[1].status, 0);
    dt = (r[0].t_done > r[1].t_done ? r[0].t_done : r[1].t_done) - r[0].t0;
    want = (double)(r[0].bytes + r[1].bytes) / 2e6;
    printf("# shared: %llu + %llu bytes at 2 MB/s: %.2f s (expected %.2f s, %.1f%%)\n", r[0].bytes,
           r[1].bytes, dt, want, (dt / want - 1) * 100);
    ASSERT(dt > want * 0.8 && dt < want * 1.2);
    ch_client_set_rate(c, 0);
    ASSERT_STREQ(scalar(c, DST, "SELECT count(), uniqExact(a) FROM chc_pipe.t"), "680000\t680000");
    drop_db(c);
    close_client(&loop, c);
}

TEST(empty_result_still_runs_the_insert)
{
    struct ch_pipe_params pp;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    pipe_params(&pp,
                "SELECT number AS a, toString(number) AS s FROM numbers(10) WHERE a > 100 "
                "FORMAT Native",
                "INSERT INTO chc_pipe.t (a, s) FORMAT Native");
    run_pipe(&loop, c, &pp, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.bytes, 0);
    ASSERT_STREQ(scalar(c, DST, "SELECT count() FROM chc_pipe.t"), "0");
    /* ... which is how a missing destination table still shows. */
    pp.dst.sql = "INSERT INTO chc_pipe.missing (a, s) FORMAT Native";
    run_pipe(&loop, c, &pp, &r);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT(starts_with(r.msg, prefix[DST]));
    drop_db(c);
    close_client(&loop, c);
}

/* ---- many pipes of mixed outcomes, random cancels, on one loop ---- */

struct stress_p {
    struct ch_pipe *p; /* NULL once its callback ran */
    int kind, calls, status;
    unsigned long long bytes;
};

struct stress_timer {
    uv_timer_t t;
    struct stress_p *s;
};

static void on_stress_pipe(struct ch_pipe *p, void *data)
{
    struct stress_p *s = data;

    s->calls++;
    s->status = ch_pipe_status(p);
    s->bytes = ch_pipe_bytes(p);
    s->p = NULL;
    ch_pipe_free(p);
}

static void on_stress_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_stress_cancel(uv_timer_t *t)
{
    struct stress_timer *st = (struct stress_timer *)t;

    ch_pipe_cancel(st->s->p); /* NULL-safe; a no-op once finished */
    uv_close((uv_handle_t *)t, on_stress_timer_closed);
}

TEST(stress_mixed_pipes_and_cancels)
{
    enum { WAVES = 3, WAVE = 10 };
    static const char *const src[] = {
        "SELECT number AS a, toString(number) AS s FROM numbers(1000) FORMAT Native",
        "SELECT number AS a, toString(number) AS s FROM numbers(300000) FORMAT Native",
        "SELECT number AS a, toString(number + throwIf(number = 200000)) AS s "
        "FROM numbers(300000) FORMAT Native",
        "SELECT number AS a, toString(number) AS s FROM numbers(300000) FORMAT Native",
        "SELECT number AS a, toString(number) AS s FROM numbers(300000) FORMAT Native",
    };
    static const char *const dst[] = {
        "INSERT INTO chc_pipe.t (a, s) FORMAT Native",
        "INSERT INTO chc_pipe.t (a, s) FORMAT Native",
        "INSERT INTO chc_pipe.t (a, s) FORMAT Native",
        "INSERT INTO chc_pipe.missing (a, s) FORMAT Native",
        "INSERT INTO chc_pipe.t (a, s) FORMAT Native",
    };
    struct stress_p s[WAVES * WAVE];
    struct ch_pipe_params pp;
    struct chc_err err = CHC_ERR_INIT;
    struct ch_client *c;
    uv_loop_t loop;
    int w, i, all, n_cancel = 0, n_ok = 0;
    unsigned seed;
    double t0;

    open_client(&loop, &c);
    fresh_db(c);
    make_ab(c, "t");
    memset(s, 0, sizeof(s));
    /* The same draws on every run (CHC_STRESS_SEED to try others); only
     * timing differs. */
    seed = getenv("CHC_STRESS_SEED") ? (unsigned)strtoul(getenv("CHC_STRESS_SEED"), NULL, 10)
                                     : 20261203u;
    printf("# stress seed %u\n", seed);
    srand(seed);
    t0 = now_s();
    for (w = 0; w < WAVES; w++) {
        if (w == 1)
            ch_client_set_rate(c, 20000000);
        if (w == 2)
            ch_client_set_rate(c, 0);
        for (i = w * WAVE; i < (w + 1) * WAVE; i++) {
            s[i].kind = rand() % 5;
            pipe_params(&pp, src[s[i].kind], dst[s[i].kind]);
            pp.buffer_bytes = rand() % 2 ? CH_PIPE_BUFFER_MIN : 0;
            pp.compression = (enum ch_pipe_compression)(rand() % 3);
            if (s[i].kind == 4)
                pp.max_bytes_per_second = 3000000;
            if (ch_pipe_start(c, &pp, on_stress_pipe, &s[i], &s[i].p, &err) < 0)
                TAP_FAIL("start: %s", err.msg);
            if (s[i].kind == 4 || rand() % 3 == 0) {
                struct stress_timer *st = calloc(1, sizeof(*st));

                ASSERT_NOT_NULL(st);
                st->s = &s[i];
                ASSERT_OK(uv_timer_init(&loop, &st->t));
                ASSERT_OK(uv_timer_start(&st->t, on_stress_cancel, (uint64_t)(rand() % 400), 0));
            }
        }
        do {
            uv_run(&loop, UV_RUN_ONCE);
            all = 1;
            for (i = w * WAVE; i < (w + 1) * WAVE; i++)
                if (!s[i].calls)
                    all = 0;
        } while (!all);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* the remaining cancel timers */
    for (i = 0; i < WAVES * WAVE; i++) {
        if (s[i].calls != 1)
            TAP_FAIL("pipe %d: %d callbacks", i, s[i].calls);
        if (s[i].status == CHC_ECANCELED) {
            n_cancel++;
            continue;
        }
        switch (s[i].kind) {
        case 0:
        case 1:
        case 4:
            if (s[i].status)
                TAP_FAIL("pipe %d (kind %d): status %d", i, s[i].kind, s[i].status);
            break;
        case 2:
        case 3:
            ASSERT_EQ(s[i].status, CHC_ECH_PERMANENT);
            break;
        }
        n_ok += s[i].status == 0;
    }
    printf("# %d pipes in %.2f s: %d ok, %d cancelled, the rest failed as expected\n", WAVES * WAVE,
           now_s() - t0, n_ok, n_cancel);
    ASSERT(n_cancel > 0);
    drop_db(c);
    close_client(&loop, c);
}

TAP_MAIN()

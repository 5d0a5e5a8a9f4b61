/* ch-smoke.c — drives the ch module against a real ClickHouse server (run by
 * tests/integration/test_ch.py on a cluster of tests/harness). TAP output.
 *
 * Env: CH_SMOKE_HOST (127.0.0.1), CH_SMOKE_PORT (HTTP port, required),
 * CH_SMOKE_USER / CH_SMOKE_PASSWORD (a user with a password, e.g. chc).
 * Every test uses its own loop and ends with the client freed, the loop run
 * until no handle is left and uv_loop_close() == 0; ASan checks leaks.
 * It creates database chc_smoke on the server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/base/err.h"
#include "chcopier/config/task.h"
#include "../unit/tap.h"

static struct cfg_replica env_replica;
static char hostport_prefix[300];

static void setup_env(void)
{
    const char *port = getenv("CH_SMOKE_PORT");

    if (env_replica.host)
        return;
    if (!port) {
        fprintf(stderr, "ch-smoke: CH_SMOKE_PORT is not set\n");
        exit(2);
    }
    env_replica.host = getenv("CH_SMOKE_HOST") ? getenv("CH_SMOKE_HOST") : (char *)"127.0.0.1";
    env_replica.http_port = (int)strtol(port, NULL, 10);
    env_replica.user = getenv("CH_SMOKE_USER");
    env_replica.password = getenv("CH_SMOKE_PASSWORD");
    snprintf(hostport_prefix, sizeof(hostport_prefix), "%s:%d: ", env_replica.host,
             env_replica.http_port);
}

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

/* Outcome of one query, copied out in the callback (which frees q). */
struct res {
    int done;
    int status;
    int exc;
    char msg[CHC_ERR_MSG_MAX];
    char *body;
    size_t len;
    double t_done;
    int *in_api; /* set while inside ch_query_cancel/ch_client_free */
    int cb_inside_api;
};

static void res_release(struct res *r)
{
    free(r->body);
    r->body = NULL;
}

static void on_done(struct ch_query *q, void *data)
{
    struct res *r = data;
    const char *b;

    r->done++;
    r->status = ch_query_status(q);
    r->exc = ch_query_exception_code(q);
    snprintf(r->msg, sizeof(r->msg), "%s", ch_query_error(q)->msg);
    b = ch_query_body(q, &r->len);
    r->body = malloc(r->len + 1);
    if (r->body) {
        memcpy(r->body, b, r->len);
        r->body[r->len] = '\0';
    }
    r->t_done = now_s();
    if (r->in_api && *r->in_api)
        r->cb_inside_api = 1;
    ch_query_free(q);
}

static void params_init(struct ch_query_params *p, const char *sql)
{
    memset(p, 0, sizeof(*p));
    p->replica = &env_replica;
    p->sql = sql;
    p->timeout_ms = 60000;
}

static void open_client(uv_loop_t *loop, struct ch_client **c)
{
    struct chc_err err = CHC_ERR_INIT;

    setup_env();
    ASSERT_OK(uv_loop_init(loop));
    if (ch_client_new(loop, c, &err) < 0)
        TAP_FAIL("ch_client_new: %s", err.msg);
}

/* ch_client_free, run the loop dry, and check nothing is left. */
static void close_client(uv_loop_t *loop, struct ch_client *c)
{
    ASSERT_NULL(ch_client_free(c));
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

static void start(struct ch_client *c, const struct ch_query_params *p, struct res *r,
                  struct ch_query **ret)
{
    struct chc_err err = CHC_ERR_INIT;
    struct ch_query *q = NULL;

    if (ch_query_start(c, p, on_done, r, &q, &err) < 0)
        TAP_FAIL("ch_query_start: %s", err.msg);
    if (ret)
        *ret = q;
}

static void wait_done(uv_loop_t *loop, struct res *r, int n)
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

static void run_one(uv_loop_t *loop, struct ch_client *c, const struct ch_query_params *p,
                    struct res *r)
{
    memset(r, 0, sizeof(*r));
    start(c, p, r, NULL);
    wait_done(loop, r, 1);
    ASSERT_EQ(r->done, 1);
}

static void sync_ok(struct ch_client *c, const char *database, const char *sql, struct chc_buf *out)
{
    struct ch_query_params p;
    struct chc_err err = CHC_ERR_INIT;

    params_init(&p, sql);
    p.database = database;
    if (ch_query_sync(c, &p, out, &err) < 0)
        TAP_FAIL("%s: %s", sql, err.msg);
}

static int one_line(const char *s)
{
    return !strchr(s, '\n') && !strchr(s, '\r');
}

/* ------------------------------------------------------------------ tests */

TEST(concurrent_sleeps_overlap)
{
    enum { N = 20 };
    struct res r[N];
    char ids[N][64];
    struct ch_query_params p;
    struct ch_client *c;
    uv_loop_t loop;
    double t0, elapsed;
    int i;

    open_client(&loop, &c);
    memset(r, 0, sizeof(r));
    params_init(&p, "SELECT sleep(0.5)");
    t0 = now_s();
    for (i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "chc-smoke-%d-sleep-%d", (int)getpid(), i);
        p.query_id = ids[i];
        start(c, &p, &r[i], NULL);
    }
    wait_done(&loop, r, N);
    elapsed = now_s() - t0;
    printf("# %d x SELECT sleep(0.5) on one loop: %.3f s (sequential would be %.1f s)\n", N,
           elapsed, N * 0.5);
    for (i = 0; i < N; i++) {
        if (r[i].status)
            TAP_FAIL("query %d: %s", i, r[i].msg);
        ASSERT_STREQ(r[i].body, "0\n");
        res_release(&r[i]);
    }
    ASSERT(elapsed >= 0.45);
    ASSERT(elapsed < 5.0 /* serially: 10 s; generous for a loaded machine */);
    close_client(&loop, c);
}

TEST(syntax_error_is_exception_62)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    params_init(&p, "SELEC 1");
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_EQ(r.exc, 62);
    ASSERT(strncmp(r.msg, hostport_prefix, strlen(hostport_prefix)) == 0);
    ASSERT_CONTAINS(r.msg, "Syntax error");
    ASSERT_CONTAINS(r.msg, "SELEC 1");
    ASSERT(one_line(r.msg));
    ASSERT_CONTAINS(r.body, "Code: 62"); /* the body keeps the server text */
    res_release(&r);
    close_client(&loop, c);
}

TEST(wrong_password_is_auth_and_not_echoed)
{
    static const char bad_pw[] = "Wr0ng-Pa55word-xyz";
    struct cfg_replica rep;
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    rep = env_replica;
    rep.user = (char *)(env_replica.user ? env_replica.user : "chc");
    rep.password = (char *)bad_pw;
    params_init(&p, "SELECT 1");
    p.replica = &rep;
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_AUTH);
    ASSERT_EQ(r.exc, 193);
    ASSERT(!strstr(r.msg, bad_pw));
    ASSERT(!strstr(r.msg, "Pa55"));
    res_release(&r);

    rep.user = (char *)"chc_no_such_user";
    run_one(&loop, c, &p, &r);
    ASSERT_EQ(r.status, CHC_ECH_AUTH);
    ASSERT_EQ(r.exc, 192);
    ASSERT(!strstr(r.msg, bad_pw));
    res_release(&r);
    close_client(&loop, c);
}

TEST(credentials_in_headers_log_in_as_user)
{
    struct chc_buf out = CHC_BUF_INIT;
    struct ch_query_params p;
    struct chc_err err = CHC_ERR_INIT;
    struct ch_client *c;
    char id[64], sql[256];
    uv_loop_t loop;

    open_client(&loop, &c);
    if (!env_replica.user)
        TAP_FAIL("CH_SMOKE_USER not set");
    snprintf(id, sizeof(id), "chc-smoke-%d-whoami", (int)getpid());
    snprintf(sql, sizeof(sql), "SELECT user FROM system.processes WHERE query_id = '%s'", id);
    params_init(&p, sql);
    p.query_id = id;
    ASSERT_OK(ch_query_sync(c, &p, &out, &err));
    snprintf(sql, sizeof(sql), "%s\n", env_replica.user);
    ASSERT_STREQ(out.buf, sql);
    chc_buf_release(&out);
    close_client(&loop, c);
}

TEST(query_id_is_honoured)
{
    struct chc_buf out = CHC_BUF_INIT;
    struct ch_query_params p;
    struct ch_client *c;
    char id[64], sql[256];
    struct res r = {0};
    uv_loop_t loop;
    double t0;

    open_client(&loop, &c);
    snprintf(id, sizeof(id), "chc-smoke-%d-qid", (int)getpid());
    params_init(&p, "SELECT sleep(1)");
    p.query_id = id;
    start(c, &p, &r, NULL);
    snprintf(sql, sizeof(sql),
             "SELECT query_id, query FROM system.processes WHERE query_id = '%s'", id);
    t0 = now_s();
    do { /* the sync query also drives the sleeping one */
        chc_buf_reset(&out);
        sync_ok(c, NULL, sql, &out);
    } while (!out.len && now_s() - t0 < 0.8);
    printf("# system.processes: %s", out.buf);
    ASSERT_CONTAINS(out.buf, id);
    ASSERT_CONTAINS(out.buf, "sleep(1)");
    wait_done(&loop, &r, 1);
    ASSERT_EQ(r.status, 0);
    res_release(&r);
    chc_buf_release(&out);
    close_client(&loop, c);
}

static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd, port;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    close(fd); /* bound, never listened: connections are refused */
    return port;
}

TEST(closed_port_and_bad_host_are_conn_errors)
{
    struct cfg_replica rep;
    struct ch_query_params p;
    struct ch_client *c;
    char prefix[64];
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    rep = env_replica;
    rep.host = (char *)"127.0.0.1";
    rep.http_port = closed_port();
    ASSERT(rep.http_port > 0);
    params_init(&p, "SELECT 1");
    p.replica = &rep;
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_CONN);
    ASSERT(chc_err_is_transient(r.status));
    snprintf(prefix, sizeof(prefix), "127.0.0.1:%d: ", rep.http_port);
    ASSERT(strncmp(r.msg, prefix, strlen(prefix)) == 0);
    res_release(&r);

    /* TLS to a plain HTTP port: the handshake fails. */
    rep.http_port = env_replica.http_port;
    rep.secure = 1;
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_CONN);
    res_release(&r);
    rep.secure = 0;

    rep.host = (char *)"chc-no-such-host.invalid";
    rep.http_port = 8123;
    p.connect_timeout_ms = 3000;
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_CONN);
    res_release(&r);
    close_client(&loop, c);
}

TEST(timeout_is_conn_error)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;
    double t0;

    open_client(&loop, &c);
    params_init(&p, "SELECT sleep(2)");
    p.timeout_ms = 300;
    t0 = now_s();
    run_one(&loop, c, &p, &r);
    printf("# after %.3f s: %s\n", now_s() - t0, r.msg);
    ASSERT_EQ(r.status, CHC_ECH_CONN);
    ASSERT(now_s() - t0 < 10.0);
    res_release(&r);
    close_client(&loop, c);
}

struct cancel_ctx {
    struct ch_query *q;
    int in_api;
    double t_cancel;
};

static void on_cancel_timer(uv_timer_t *t)
{
    struct cancel_ctx *cc = t->data;

    cc->t_cancel = now_s();
    cc->in_api = 1;
    ch_query_cancel(cc->q);
    cc->in_api = 0;
    uv_close((uv_handle_t *)t, NULL);
}

TEST(cancel_long_query_is_prompt_and_async)
{
    struct cancel_ctx cc = {0};
    struct ch_query_params p;
    struct ch_client *c;
    struct res r = {0};
    uv_timer_t timer;
    uv_loop_t loop;
    double t0;

    open_client(&loop, &c);
    params_init(&p, "SELECT sleep(3)");
    r.in_api = &cc.in_api;
    t0 = now_s();
    start(c, &p, &r, &cc.q);
    ASSERT_OK(uv_timer_init(&loop, &timer));
    timer.data = &cc;
    ASSERT_OK(uv_timer_start(&timer, on_cancel_timer, 200, 0));
    wait_done(&loop, &r, 1);
    printf("# cancelled after %.3f s, callback %.1f ms after ch_query_cancel: %s\n",
           cc.t_cancel - t0, (r.t_done - cc.t_cancel) * 1e3, r.msg);
    ASSERT_EQ(r.status, CHC_ECANCELED);
    ASSERT_EQ(r.cb_inside_api, 0); /* delivered from the loop, not inside cancel */
    ASSERT(r.t_done - cc.t_cancel < 2.0);
    ASSERT(r.t_done - t0 < 2.9 /* before sleep(3) could end */);
    res_release(&r);
    uv_run(&loop, UV_RUN_NOWAIT); /* the timer's close */
    close_client(&loop, c);
}

struct keep_ctx {
    struct ch_query *q;
    int done;
};

static void on_done_keep(struct ch_query *q, void *data)
{
    struct keep_ctx *k = data;

    k->q = q; /* freed later, after the loop is gone */
    k->done = 1;
    ch_query_cancel(q); /* no-op: it already finished */
}

TEST(query_outlives_client_and_cancel_is_noop_when_done)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct ch_query *q = NULL;
    struct chc_err err = CHC_ERR_INIT;
    struct keep_ctx k = {0};
    uv_loop_t loop;

    open_client(&loop, &c);
    params_init(&p, "SELECT 42");
    ASSERT_OK(ch_query_start(c, &p, on_done_keep, &k, &q, &err));
    while (!k.done)
        uv_run(&loop, UV_RUN_ONCE);
    ch_query_cancel(q);
    ASSERT_EQ(ch_query_status(q), 0);
    ASSERT_STREQ(ch_query_body(q, NULL), "42\n");
    close_client(&loop, c);
    /* The query is still readable after its client and loop are gone. */
    ASSERT_STREQ(ch_query_body(q, NULL), "42\n");
    ASSERT_NULL(ch_query_free(q));
}

TEST(insert_post_body_and_tsv_round_trip)
{
    struct chc_buf out = CHC_BUF_INIT, ins = CHC_BUF_INIT;
    struct ch_rows *rows = NULL;
    struct chc_err err = CHC_ERR_INIT;
    struct ch_client *c;
    uv_loop_t loop;
    int i;

    open_client(&loop, &c);
    sync_ok(c, NULL, "CREATE DATABASE IF NOT EXISTS chc_smoke", NULL);
    sync_ok(c, "chc_smoke", "DROP TABLE IF EXISTS t", NULL);
    sync_ok(c, "chc_smoke", "CREATE TABLE t (x UInt64, s String, n Nullable(String)) ENGINE = Memory",
            NULL);
    sync_ok(c, "chc_smoke",
            "INSERT INTO t FORMAT TabSeparated\n"
            "1\thello\\tworld\t\\N\n"
            "2\tline\\nbreak\tback\\\\slash\n"
            "3\tquote ' and \\\\N\tx\n",
            NULL);
    sync_ok(c, "chc_smoke", "SELECT x, s, n FROM t ORDER BY x FORMAT TabSeparated", &out);
    ASSERT_OK(ch_tsv_parse(out.buf, out.len, &rows, &err));
    ASSERT_EQ(ch_rows_count(rows), 3);
    ASSERT_EQ(ch_rows_ncols(rows), 3);
    ASSERT_STREQ(ch_rows_get(rows, 0, 1), "hello\tworld");
    ASSERT_NULL(ch_rows_get(rows, 0, 2));
    ASSERT_STREQ(ch_rows_get(rows, 1, 1), "line\nbreak");
    ASSERT_STREQ(ch_rows_get(rows, 1, 2), "back\\slash");
    ASSERT_STREQ(ch_rows_get(rows, 2, 1), "quote ' and \\N");
    rows = ch_rows_free(rows);

    /* A body over 1 MiB (no Expect: 100-continue round trip). */
    ASSERT_OK(chc_buf_addstr(&ins, "INSERT INTO t (x, s) FORMAT TabSeparated\n"));
    for (i = 0; i < 100000; i++)
        ASSERT_OK(chc_buf_addf(&ins, "%d\tvalue-%d\n", 1000 + i, i));
    printf("# INSERT body: %zu bytes\n", ins.len);
    sync_ok(c, "chc_smoke", ins.buf, NULL);
    chc_buf_reset(&out);
    sync_ok(c, "chc_smoke", "SELECT count(), sum(x) FROM t WHERE x >= 1000", &out);
    ASSERT_STREQ(out.buf, "100000\t5099950000\n");
    sync_ok(c, NULL, "DROP DATABASE chc_smoke", NULL);
    chc_buf_release(&ins);
    chc_buf_release(&out);
    close_client(&loop, c);
}

TEST(big_select_arrives_intact)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;
    size_t lines = 0;
    char *s, *end;
    double t0, dt;

    open_client(&loop, &c);
    params_init(&p, "SELECT number FROM numbers(2000000)");
    p.max_response = (size_t)64 << 20;
    t0 = now_s();
    run_one(&loop, c, &p, &r);
    dt = now_s() - t0;
    if (r.status)
        TAP_FAIL("%s", r.msg);
    printf("# 2000000 rows, %zu bytes in %.3f s (%.0f MB/s)\n", r.len, dt, r.len / dt / 1e6);
    ASSERT_EQ(r.len, 14888890);
    for (s = r.body; *s; s = end + 1) {
        end = strchr(s, '\n');
        ASSERT_NOT_NULL(end);
        if (strtoull(s, NULL, 10) != lines)
            TAP_FAIL("line %zu is '%.20s'", lines, s);
        lines++;
    }
    ASSERT_EQ(lines, 2000000);
    res_release(&r);
    close_client(&loop, c);
}

TEST(response_cap_gives_etoobig)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    params_init(&p, "SELECT number FROM numbers(2000000)");
    p.max_response = (size_t)1 << 20;
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ETOOBIG);
    ASSERT_CONTAINS(r.msg, "larger than 1048576 bytes");
    res_release(&r);
    /* The default cap is 16 MiB: 3e6 numbers are 20.9 MB. */
    params_init(&p, "SELECT number FROM numbers(3000000)");
    run_one(&loop, c, &p, &r);
    ASSERT_EQ(r.status, CHC_ETOOBIG);
    ASSERT_CONTAINS(r.msg, "larger than 16777216 bytes");
    res_release(&r);
    close_client(&loop, c);
}

TEST(late_exception_detected_streamed_or_not)
{
    struct cfg_setting items[] = {
        {(char *)"max_block_size", (char *)"1000"},
        {(char *)"buffer_size", (char *)"1000"},
    };
    struct cfg_settings s = {items, 2};
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    params_init(&p, "SELECT throwIf(number = 3000000) FROM system.numbers LIMIT 4000000");
    p.settings[0] = &s;
    p.max_response = (size_t)64 << 20;
    p.stream = 1; /* HTTP 200, rows, then the exception text */
    run_one(&loop, c, &p, &r);
    printf("# streamed: %zu bytes received: %s\n", r.len, r.msg);
    ASSERT(r.len > 1000000);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_EQ(r.exc, 395);
    ASSERT_CONTAINS(r.msg, "throwIf");
    ASSERT(one_line(r.msg));
    res_release(&r);

    p.stream = 0; /* wait_end_of_query=1: HTTP 500, only the exception */
    run_one(&loop, c, &p, &r);
    printf("# buffered: %zu bytes received: %s\n", r.len, r.msg);
    ASSERT(r.len < 1000);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_EQ(r.exc, 395);
    res_release(&r);
    close_client(&loop, c);
}

TEST(settings_override_and_database)
{
    struct cfg_setting a_items[] = {{(char *)"max_threads", (char *)"1"}};
    struct cfg_setting b_items[] = {{(char *)"max_threads", (char *)"3"}};
    struct cfg_settings a = {a_items, 1}, b = {b_items, 1};
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    params_init(&p, "SELECT value FROM system.settings WHERE name = 'max_threads'");
    p.settings[0] = &a;
    run_one(&loop, c, &p, &r);
    ASSERT_STREQ(r.body, "1\n");
    res_release(&r);
    p.settings[1] = &b;
    run_one(&loop, c, &p, &r);
    ASSERT_STREQ(r.body, "3\n");
    res_release(&r);

    params_init(&p, "SELECT currentDatabase()");
    p.database = "system";
    run_one(&loop, c, &p, &r);
    ASSERT_STREQ(r.body, "system\n");
    res_release(&r);
    p.database = "chc_smoke_no_such_db";
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_EQ(r.exc, 81);
    res_release(&r);
    close_client(&loop, c);
}

TEST(secrets_are_masked_in_messages)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    char sql[256];
    uv_loop_t loop;

    open_client(&loop, &c);
    if (!env_replica.password)
        TAP_FAIL("CH_SMOKE_PASSWORD not set");
    /* The server echoes the query in a syntax error. */
    snprintf(sql, sizeof(sql),
             "SELECT * FRM remote('h', db, t, 'u', 'hunter2-remote-pw') WHERE '%s'",
             env_replica.password);
    params_init(&p, sql);
    p.redact[0] = "hunter2-remote-pw";
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_CONTAINS(r.msg, "***");
    ASSERT(!strstr(r.msg, "hunter2"));
    ASSERT(!strstr(r.msg, env_replica.password));
    ASSERT_CONTAINS(r.body, "hunter2"); /* the raw body is the caller's */
    res_release(&r);
    close_client(&loop, c);
}

/* remote() carries a password SQL-escaped: 'zq\'x\\v7' for zq'x\v7. The
 * server echoes that form, which must be masked as well as the raw one. */
TEST(escaped_secrets_are_masked_in_messages)
{
    static const char pw[] = "zq'x\\v7"; /* z q ' x \ v 7 */
    struct ch_query_params p;
    struct ch_client *c;
    struct res r;
    uv_loop_t loop;

    open_client(&loop, &c);
    params_init(&p, "SELECT * FRM remote('h', db, t, 'u', 'zq\\'x\\\\v7')");
    p.redact[0] = pw;
    run_one(&loop, c, &p, &r);
    printf("# %s\n", r.msg);
    ASSERT_EQ(r.status, CHC_ECH_PERMANENT);
    ASSERT_CONTAINS(r.body, "zq\\'x\\\\v7"); /* the server did echo it */
    ASSERT_CONTAINS(r.msg, "'u', '***')");
    ASSERT(!strstr(r.msg, "zq"));
    res_release(&r);
    close_client(&loop, c);
}

struct chain_ctx {
    struct ch_client *c;
    struct ch_query_params p;
    int n, status;
    char body[64];
};

static void on_chain(struct ch_query *q, void *data)
{
    struct chain_ctx *x = data;
    struct chc_err err = CHC_ERR_INIT;
    struct chc_buf out = CHC_BUF_INIT;
    struct ch_query *next;

    x->status = ch_query_status(q);
    snprintf(x->body, sizeof(x->body), "%s", ch_query_body(q, NULL));
    ch_query_free(q);
    /* Synchronous queries are refused inside a callback. */
    if (ch_query_sync(x->c, &x->p, &out, &err) != CHC_ESTATE)
        x->status = -1;
    chc_buf_release(&out);
    if (x->status == 0 && ++x->n < 5 && ch_query_start(x->c, &x->p, on_chain, x, &next, &err) < 0)
        x->status = err.code;
}

TEST(callbacks_can_start_queries)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chain_ctx x;
    struct ch_query *q;
    uv_loop_t loop;

    memset(&x, 0, sizeof(x));
    open_client(&loop, &x.c);
    params_init(&x.p, "SELECT 7");
    ASSERT_OK(ch_query_start(x.c, &x.p, on_chain, &x, &q, &err));
    while (x.status == 0 && x.n < 5)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT_EQ(x.status, 0);
    ASSERT_EQ(x.n, 5);
    ASSERT_STREQ(x.body, "7\n");
    close_client(&loop, x.c);
}

/* ---- many queries of mixed outcomes, random cancels, on one loop ---- */

struct stress_q {
    struct ch_query *q; /* NULL once its callback ran */
    int kind, calls, status;
    size_t len;
};

struct stress_timer {
    uv_timer_t t;
    struct stress_q *s;
};

static void on_stress_done(struct ch_query *q, void *data)
{
    struct stress_q *s = data;

    s->calls++;
    s->status = ch_query_status(q);
    ch_query_body(q, &s->len);
    s->q = NULL;
    ch_query_free(q);
}

static void on_stress_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_stress_cancel(uv_timer_t *t)
{
    struct stress_timer *st = (struct stress_timer *)t;

    ch_query_cancel(st->s->q); /* NULL-safe; a no-op once finished */
    uv_close((uv_handle_t *)t, on_stress_timer_closed);
}

TEST(stress_mixed_outcomes_and_cancels)
{
    enum { WAVES = 8, WAVE = 15 };
    static const char *const sql[] = {
        "SELECT 1", "SELECT sleep(0.2)", "SELEC 1", "SELECT number FROM numbers(100000)",
        "SELECT sleep(0.1)",
    };
    struct stress_q s[WAVES * WAVE];
    struct ch_query_params p;
    struct chc_err err = CHC_ERR_INIT;
    struct ch_client *c;
    uv_loop_t loop;
    int w, i, all, n_cancel = 0, n_ok = 0;
    unsigned seed;
    double t0;

    open_client(&loop, &c);
    memset(s, 0, sizeof(s));
    /* The same draws on every run (CHC_STRESS_SEED to try others); only
     * timing differs. */
    seed = getenv("CHC_STRESS_SEED") ? (unsigned)strtoul(getenv("CHC_STRESS_SEED"), NULL, 10)
                                     : 20261203u;
    printf("# stress seed %u\n", seed);
    srand(seed);
    t0 = now_s();
    for (w = 0; w < WAVES; w++) {
        for (i = w * WAVE; i < (w + 1) * WAVE; i++) {
            s[i].kind = rand() % 5;
            params_init(&p, sql[s[i].kind]);
            if (s[i].kind == 4)
                p.timeout_ms = 50;
            if (ch_query_start(c, &p, on_stress_done, &s[i], &s[i].q, &err) < 0)
                TAP_FAIL("start: %s", err.msg);
            if (s[i].kind == 1 || rand() % 4 == 0) {
                struct stress_timer *st = calloc(1, sizeof(*st));

                ASSERT_NOT_NULL(st);
                st->s = &s[i];
                ASSERT_OK(uv_timer_init(&loop, &st->t));
                ASSERT_OK(uv_timer_start(&st->t, on_stress_cancel, (uint64_t)(rand() % 300), 0));
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
            TAP_FAIL("query %d: %d callbacks", i, s[i].calls);
        if (s[i].status == CHC_ECANCELED) {
            n_cancel++;
            continue;
        }
        switch (s[i].kind) {
        case 0:
        case 1:
            ASSERT_EQ(s[i].status, 0);
            break;
        case 2:
            ASSERT_EQ(s[i].status, CHC_ECH_PERMANENT);
            break;
        case 3:
            ASSERT_EQ(s[i].status, 0);
            ASSERT_EQ(s[i].len, 588890);
            break;
        case 4:
            ASSERT_EQ(s[i].status, CHC_ECH_CONN);
            break;
        }
        n_ok += s[i].status == 0;
    }
    printf("# %d queries in %.2f s: %d ok, %d cancelled, the rest failed as expected\n",
           WAVES * WAVE, now_s() - t0, n_ok, n_cancel);
    ASSERT(n_cancel > 0);
    close_client(&loop, c);
}

struct free_in_cb {
    struct ch_client *c;
    struct res *others;
    int n_others;
};

static void on_done_free_client(struct ch_query *q, void *data)
{
    struct free_in_cb *f = data;

    ch_query_free(q);
    f->c = ch_client_free(f->c);
}

TEST(client_free_cancels_outstanding)
{
    struct ch_query_params p;
    struct ch_client *c;
    struct res r[3];
    struct free_in_cb f = {0};
    struct ch_query *q;
    struct chc_err err = CHC_ERR_INIT;
    uv_loop_t loop;
    double t0;
    int i;

    /* ch_client_free from the outside. */
    open_client(&loop, &c);
    memset(r, 0, sizeof(r));
    params_init(&p, "SELECT sleep(2)");
    for (i = 0; i < 3; i++)
        start(c, &p, &r[i], NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* requests are on the wire */
    t0 = now_s();
    ASSERT_NULL(ch_client_free(c));
    for (i = 0; i < 3; i++)
        ASSERT_EQ(r[i].done, 0); /* not inside ch_client_free */
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT(now_s() - t0 < 5.0);
    for (i = 0; i < 3; i++) {
        ASSERT_EQ(r[i].done, 1);
        ASSERT_EQ(r[i].status, CHC_ECANCELED);
        res_release(&r[i]);
    }
    ASSERT_EQ(uv_loop_close(&loop), 0);

    /* ch_client_free from inside a callback, with another query running. */
    open_client(&loop, &c);
    memset(r, 0, sizeof(r));
    f.c = c;
    start(c, &p, &r[0], NULL);
    params_init(&p, "SELECT 1");
    ASSERT_OK(ch_query_start(c, &p, on_done_free_client, &f, &q, &err));
    t0 = now_s();
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_NULL(f.c);
    ASSERT_EQ(r[0].done, 1);
    ASSERT_EQ(r[0].status, CHC_ECANCELED);
    ASSERT(now_s() - t0 < 5.0);
    res_release(&r[0]);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

TAP_MAIN()

/* test-metrics.c — the metrics registry (render golden text, label escaping,
 * counter/gauge rules, limits) and the HTTP endpoint on a real loop: clients
 * are blocking sockets in threads while the test thread runs the loop. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/obs/metrics-http.h"
#include "tap.h"

#define DROPPED_TAIL                                                                       \
    "# HELP chcopier_metrics_dropped_total Metric updates dropped: invalid name, labels or " \
    "type use; series limit; out of memory.\n"                                             \
    "# TYPE chcopier_metrics_dropped_total counter\n"

static struct chc_metrics *new_metrics(void)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_metrics *m = NULL;

    if (chc_metrics_new(&m, &err) < 0)
        TAP_FAIL("chc_metrics_new: %s", err.msg);
    return m;
}

static double dropped(const struct chc_metrics *m, const char *reason)
{
    char l[64];

    snprintf(l, sizeof(l), "reason=\"%s\"", reason);
    return chc_metrics_get(m, CHC_METRIC_DROPPED, l);
}

TEST(render_fresh_registry)
{
    struct chc_metrics *m = new_metrics();
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT_STREQ(b.buf, "# HELP chcopier_up 1 while the chcopier process runs.\n"
                        "# TYPE chcopier_up gauge\n"
                        "chcopier_up 1\n" DROPPED_TAIL
                        "chcopier_metrics_dropped_total{reason=\"invalid\"} 0\n"
                        "chcopier_metrics_dropped_total{reason=\"limit\"} 0\n"
                        "chcopier_metrics_dropped_total{reason=\"nomem\"} 0\n");
    chc_buf_release(&b);
    chc_metrics_free(m);
}

TEST(render_golden)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_metrics *m = new_metrics();
    struct chc_buf b = CHC_BUF_INIT;

    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"hits\"", 1000);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"visits\"", 5);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"hits\"", 500);
    chc_metrics_set(m, CHC_METRIC_PIECES, "table=\"hits\",state=\"done\"", 3);
    chc_metrics_set(m, CHC_METRIC_PIECES, "table=\"hits\",state=\"in_flight\"", 2);
    chc_metrics_add(m, CHC_METRIC_PIECES, "table=\"hits\",state=\"in_flight\"", -1);
    chc_metrics_add(m, CHC_METRIC_ERRORS, "table=\"hits\",kind=\"ECH_CONN\"", 1);
    chc_metrics_set(m, CHC_METRIC_MAX_WORKERS, NULL, 4);
    chc_metrics_set(m, CHC_METRIC_ZK_SESSION, "state=\"connected\"", 1);
    chc_metrics_set(m, CHC_METRIC_ZK_SESSION, "state=\"expired\"", 0);
    ASSERT_OK(chc_metrics_describe(m, "test_latency_seconds", CHC_METRIC_GAUGE, "",
                                   "Latency\nwith \\ backslash", &err));
    chc_metrics_set(m, "test_latency_seconds", "", 0.25);
    chc_metrics_add(m, "custom_thing", "a=\"1\"", 2);
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT_STREQ(
        b.buf,
        "# HELP chcopier_up 1 while the chcopier process runs.\n"
        "# TYPE chcopier_up gauge\n"
        "chcopier_up 1\n"
        "# HELP chcopier_rows_copied_total Rows this worker copied to the destination.\n"
        "# TYPE chcopier_rows_copied_total counter\n"
        "chcopier_rows_copied_total{table=\"hits\"} 1500\n"
        "chcopier_rows_copied_total{table=\"visits\"} 5\n"
        "# HELP chcopier_pieces Pieces by state: done and dirty task-wide as last seen, "
        "in_flight by this worker.\n"
        "# TYPE chcopier_pieces gauge\n"
        "chcopier_pieces{table=\"hits\",state=\"done\"} 3\n"
        "chcopier_pieces{table=\"hits\",state=\"in_flight\"} 1\n"
        "# HELP chcopier_errors_total Errors this worker met, by error code name "
        "(chc_err_name).\n"
        "# TYPE chcopier_errors_total counter\n"
        "chcopier_errors_total{table=\"hits\",kind=\"ECH_CONN\"} 1\n"
        "# HELP chcopier_max_workers The task's max_workers, as last read from ZooKeeper.\n"
        "# TYPE chcopier_max_workers gauge\n"
        "chcopier_max_workers 4\n"
        "# HELP chcopier_zookeeper_session 1 for the current ZooKeeper session state "
        "(connected or expired), 0 for the other.\n"
        "# TYPE chcopier_zookeeper_session gauge\n"
        "chcopier_zookeeper_session{state=\"connected\"} 1\n"
        "chcopier_zookeeper_session{state=\"expired\"} 0\n"
        "# HELP test_latency_seconds Latency\\nwith \\\\ backslash\n"
        "# TYPE test_latency_seconds gauge\n"
        "test_latency_seconds 0.25\n"
        "# TYPE custom_thing untyped\n"
        "custom_thing{a=\"1\"} 2\n" DROPPED_TAIL
        "chcopier_metrics_dropped_total{reason=\"invalid\"} 0\n"
        "chcopier_metrics_dropped_total{reason=\"limit\"} 0\n"
        "chcopier_metrics_dropped_total{reason=\"nomem\"} 0\n");
    chc_buf_release(&b);
    chc_metrics_free(m);
}

TEST(render_appends_and_respects_cap)
{
    struct chc_metrics *m = new_metrics();
    struct chc_buf b;

    chc_buf_init(&b, 64);
    ASSERT_OK(chc_buf_addstr(&b, "prefix\n"));
    ASSERT_EQ(chc_metrics_render(m, &b), CHC_ETOOBIG);
    ASSERT_STREQ(b.buf, "prefix\n");
    chc_buf_release(&b);
    chc_buf_init(&b, 0);
    ASSERT_OK(chc_buf_addstr(&b, "prefix\n"));
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT(!strncmp(b.buf, "prefix\n# HELP chcopier_up ", 26));
    chc_buf_release(&b);
    chc_metrics_free(m);
}

TEST(value_formatting)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {-3, "-3"},
        {0.1, "0.1"},
        {1.0 / 3, "0.33333333333333331"},
        {123456789012345.0, "123456789012345"},
        {1e20, "1e+20"},
        {2.5e-7, "2.5e-07"},
    };
    struct chc_metrics *m = new_metrics();
    struct chc_buf b = CHC_BUF_INIT;
    char want[128];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        chc_metrics_set(m, "v", "", cases[i].v);
        chc_buf_reset(&b);
        ASSERT_OK(chc_metrics_render(m, &b));
        snprintf(want, sizeof(want), "\nv %s\n", cases[i].want);
        ASSERT_CONTAINS(b.buf, want);
    }
    chc_metrics_set(m, "v", "", NAN);
    chc_buf_reset(&b);
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT_CONTAINS(b.buf, "\nv NaN\n");
    chc_metrics_set(m, "v", "", -INFINITY);
    chc_buf_reset(&b);
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT_CONTAINS(b.buf, "\nv -Inf\n");
    chc_metrics_set(m, "v", "", INFINITY);
    chc_buf_reset(&b);
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT_CONTAINS(b.buf, "\nv +Inf\n");
    chc_buf_release(&b);
    chc_metrics_free(m);
}

TEST(label_escaping)
{
    struct chc_metrics *m = new_metrics();
    struct chc_buf l = CHC_BUF_INIT;
    struct chc_buf b = CHC_BUF_INIT;

    ASSERT_OK(chc_metrics_label(&l, "table", "db.we\"ird\\na\nme"));
    ASSERT_STREQ(l.buf, "table=\"db.we\\\"ird\\\\na\\nme\"");
    ASSERT_OK(chc_metrics_label(&l, "state", ""));
    ASSERT_STREQ(l.buf, "table=\"db.we\\\"ird\\\\na\\nme\",state=\"\"");
    ASSERT_EQ(chc_metrics_label(&l, "bad-key", "x"), -EINVAL);
    ASSERT_EQ(chc_metrics_label(&l, "__reserved", "x"), -EINVAL);
    ASSERT_EQ(chc_metrics_label(&l, "", "x"), -EINVAL);
    ASSERT_STREQ(l.buf, "table=\"db.we\\\"ird\\\\na\\nme\",state=\"\"");

    chc_buf_reset(&l);
    ASSERT_OK(chc_metrics_label(&l, "table", "a\"b"));
    chc_metrics_add(m, CHC_METRIC_RETRIES, l.buf, 2);
    ASSERT_EQ(chc_metrics_get(m, CHC_METRIC_RETRIES, "table=\"a\\\"b\""), 2);
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT_CONTAINS(b.buf, "\nchcopier_retries_total{table=\"a\\\"b\"} 2\n");
    ASSERT_EQ(dropped(m, "invalid"), 0);

    /* Malformed label strings never reach the output. */
    chc_metrics_add(m, "x", "a=\"unterminated", 1);
    chc_metrics_add(m, "x", "a=\"raw\nnewline\"", 1);
    chc_metrics_add(m, "x", "a=\"bad \\t escape\"", 1);
    chc_metrics_add(m, "x", "a=unquoted", 1);
    chc_metrics_add(m, "x", "a=\"1\",", 1);
    chc_metrics_add(m, "x", "a=\"1\",a=\"2\"", 1);
    chc_metrics_add(m, "x", "a=\"1\"} 5\nevil{b=\"2\"", 1);
    chc_metrics_add(m, "x", "__name__=\"y\"", 1);
    chc_metrics_add(m, "bad name", "", 1);
    chc_metrics_add(m, "", "", 1);
    chc_metrics_add(m, NULL, "", 1);
    ASSERT_EQ(dropped(m, "invalid"), 11);
    chc_buf_reset(&b);
    ASSERT_OK(chc_metrics_render(m, &b));
    ASSERT(strstr(b.buf, "\nx") == NULL);
    ASSERT(strstr(b.buf, "evil") == NULL);
    ASSERT_CONTAINS(b.buf, "chcopier_metrics_dropped_total{reason=\"invalid\"} 11\n");
    chc_buf_release(&l);
    chc_buf_release(&b);
    chc_metrics_free(m);
}

TEST(counters_and_gauges)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_metrics *m = new_metrics();

    /* Counters only go up. */
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"", 10);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"", 0.5);
    ASSERT(chc_metrics_get(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"") == 10.5);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"", -1);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"", NAN);
    chc_metrics_set(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"", 0);
    ASSERT(chc_metrics_get(m, CHC_METRIC_ROWS_COPIED, "table=\"t\"") == 10.5);
    ASSERT_EQ(dropped(m, "invalid"), 3);

    /* Gauges go both ways. */
    chc_metrics_add(m, CHC_METRIC_SLOTS_IN_USE, NULL, 2);
    chc_metrics_add(m, CHC_METRIC_SLOTS_IN_USE, "", -1);
    ASSERT_EQ(chc_metrics_get(m, CHC_METRIC_SLOTS_IN_USE, NULL), 1);
    chc_metrics_set(m, CHC_METRIC_SLOTS_IN_USE, NULL, 7);
    ASSERT_EQ(chc_metrics_get(m, CHC_METRIC_SLOTS_IN_USE, ""), 7);

    /* Built-in families insist on their label names, in order. */
    chc_metrics_set(m, CHC_METRIC_PIECES, "table=\"t\"", 1);
    chc_metrics_set(m, CHC_METRIC_PIECES, "state=\"done\",table=\"t\"", 1);
    chc_metrics_set(m, CHC_METRIC_PIECES, "table=\"t\",state=\"done\",x=\"1\"", 1);
    chc_metrics_set(m, CHC_METRIC_MAX_WORKERS, "table=\"t\"", 1);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "", 1);
    ASSERT_EQ(dropped(m, "invalid"), 8);
    ASSERT(isnan(chc_metrics_get(m, CHC_METRIC_PIECES, "table=\"t\"")));
    ASSERT(isnan(chc_metrics_get(m, "nope", NULL)));
    ASSERT(isnan(chc_metrics_get(m, CHC_METRIC_DROPPED, "reason=\"other\"")));

    /* The reserved family cannot be written or described. */
    chc_metrics_add(m, CHC_METRIC_DROPPED, "reason=\"limit\"", 1);
    ASSERT_EQ(dropped(m, "limit"), 0);
    ASSERT_EQ(chc_metrics_describe(m, CHC_METRIC_DROPPED, CHC_METRIC_COUNTER, NULL, NULL, &err),
              -EINVAL);

    /* describe: type conflicts, bad label lists, late describe of an untyped family. */
    ASSERT_EQ(chc_metrics_describe(m, CHC_METRIC_PIECES, CHC_METRIC_COUNTER, NULL, NULL, &err),
              -EINVAL);
    ASSERT_CONTAINS(err.msg, "already a gauge");
    ASSERT_EQ(chc_metrics_describe(m, "y", CHC_METRIC_GAUGE, "a,a", NULL, &err), -EINVAL);
    ASSERT_EQ(chc_metrics_describe(m, "y", CHC_METRIC_GAUGE, "a,", NULL, &err), -EINVAL);
    ASSERT_EQ(chc_metrics_describe(m, "y", (enum chc_metric_type)7, NULL, NULL, &err), -EINVAL);
    chc_metrics_add(m, "late", "k=\"v\"", 1);
    ASSERT_EQ(chc_metrics_describe(m, "late", CHC_METRIC_COUNTER, "other", NULL, &err), -EINVAL);
    ASSERT_OK(chc_metrics_describe(m, "late", CHC_METRIC_COUNTER, "k", "Described late.", &err));
    chc_metrics_set(m, "late", "k=\"v\"", 0);
    ASSERT_EQ(chc_metrics_get(m, "late", "k=\"v\""), 1);
    ASSERT_STREQ(chc_metric_type_to_string(CHC_METRIC_COUNTER), "counter");

    /* NULL registry: updates are no-ops. */
    chc_metrics_add(NULL, "a", "", 1);
    chc_metrics_set(NULL, "a", "", 1);
    ASSERT_NULL(chc_metrics_free(NULL));
    ASSERT_EQ(chc_metrics_port(m), -ENOTCONN);
    chc_metrics_free(m);
}

TEST(series_limit)
{
    struct chc_metrics *m = new_metrics();
    char l[64], name[64];
    int i;

    /* chcopier_up is series number 1; spread over families to keep it quick. */
    for (i = 0; i < CHC_METRICS_MAX_SERIES + 5; i++) {
        snprintf(name, sizeof(name), "f%d", i % 100);
        snprintf(l, sizeof(l), "t=\"%d\"", i);
        chc_metrics_add(m, name, l, 1);
    }
    ASSERT_EQ(dropped(m, "limit"), 6);
    /* Existing series still update; new families are refused too. */
    chc_metrics_add(m, "f0", "t=\"0\"", 1);
    ASSERT_EQ(chc_metrics_get(m, "f0", "t=\"0\""), 2);
    ASSERT(isnan(chc_metrics_get(m, "f99", "t=\"9999\"")));
    chc_metrics_set(m, "brand_new", NULL, 1);
    ASSERT_EQ(dropped(m, "limit"), 7);
    chc_metrics_free(m);
}

/* Every built-in family is in the catalog and documented in docs/metrics.md. */
TEST(builtins_are_documented)
{
    static const char *const names[] = {
        CHC_METRIC_UP,      CHC_METRIC_ROWS_COPIED,   CHC_METRIC_BYTES_COPIED,
        CHC_METRIC_PIECES,  CHC_METRIC_PARTITIONS,    CHC_METRIC_RETRIES,
        CHC_METRIC_ERRORS,  CHC_METRIC_SLOTS_IN_USE,  CHC_METRIC_MAX_WORKERS,
        CHC_METRIC_ZK_SESSION,
    };
    struct chc_err err = CHC_ERR_INIT;
    struct chc_metrics *m = new_metrics();
    char doc[65536], want[128];
    size_t i, n;
    FILE *f;

    f = fopen(CHC_SOURCE_ROOT "/docs/metrics.md", "r");
    ASSERT_NOT_NULL(f);
    n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(want, sizeof(want), "`%s`", names[i]);
        ASSERT_CONTAINS(doc, want);
        /* Described already: re-describing as untyped conflicts. */
        ASSERT_EQ(chc_metrics_describe(m, names[i], CHC_METRIC_UNTYPED, NULL, NULL, &err),
                  -EINVAL);
    }
    snprintf(want, sizeof(want), "`%s`", CHC_METRIC_DROPPED);
    ASSERT_CONTAINS(doc, want);
    chc_metrics_free(m);
}

/* ------------------------------------------------------------------------ */
/* HTTP round trips                                                         */
/* ------------------------------------------------------------------------ */

struct client {
    int port;
    const char *parts[4]; /* sent one by one, delay_ms apart */
    int delay_ms;
    size_t junk;          /* then this many bytes of header junk */
    char resp[128 * 1024];
    size_t len;
    int connect_errno;
    int read_errno;
    double ms; /* connect → EOF */
};

static uv_async_t done_async;
static atomic_int clients_done;
static int clients_total;
static int guard_fired;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct sockaddr_in sa;
    double t0;
    ssize_t n;
    int fd, i;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t0 = now_ms();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        c->connect_errno = errno;
        goto out;
    }
    for (i = 0; i < 4 && c->parts[i]; i++) {
        if (i > 0)
            usleep((useconds_t)c->delay_ms * 1000);
        (void)send(fd, c->parts[i], strlen(c->parts[i]), MSG_NOSIGNAL);
    }
    if (c->junk) {
        char *j = malloc(c->junk);

        memset(j, 'a', c->junk);
        (void)send(fd, j, c->junk, MSG_NOSIGNAL);
        free(j);
    }
    for (;;) {
        n = recv(fd, c->resp + c->len, sizeof(c->resp) - 1 - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            c->read_errno = errno;
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    c->resp[c->len] = '\0';
    c->ms = now_ms() - t0;
out:
    close(fd);
    atomic_fetch_add(&clients_done, 1);
    uv_async_send(&done_async);
    return NULL;
}

static void on_done_async(uv_async_t *a)
{
    if (atomic_load(&clients_done) >= clients_total)
        uv_stop(a->loop);
}

static void on_guard(uv_timer_t *t)
{
    guard_fired = 1;
    uv_stop(t->loop);
}

/* Start the clients in threads, run the loop until all are done (or 20 s),
 * and join them. */
static void run_clients(uv_loop_t *loop, struct client *cs, int n)
{
    pthread_t th[64];
    uv_timer_t guard;
    int i;

    atomic_store(&clients_done, 0);
    clients_total = n;
    guard_fired = 0;
    ASSERT_OK(uv_async_init(loop, &done_async, on_done_async));
    ASSERT_OK(uv_timer_init(loop, &guard));
    ASSERT_OK(uv_timer_start(&guard, on_guard, 20000, 0));
    for (i = 0; i < n; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, client_main, &cs[i]), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    for (i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    uv_close((uv_handle_t *)&done_async, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    ASSERT(!guard_fired);
}

/* Split c->resp into status line, header block and body; checks framing. */
static const char *body_of(struct client *c)
{
    const char *end = strstr(c->resp, "\r\n\r\n");
    const char *cl;
    long len;

    if (!end)
        return NULL;
    cl = strstr(c->resp, "\r\nContent-Length: ");
    if (!cl || cl > end)
        return NULL;
    len = strtol(cl + 18, NULL, 10);
    if ((size_t)len != c->len - (size_t)(end + 4 - c->resp))
        return NULL;
    return end + 4;
}

static struct chc_metrics *serve(uv_loop_t *loop, unsigned timeout_ms)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_metrics *m = new_metrics();

    chc_metrics_set_client_timeout(m, timeout_ms);
    if (chc_metrics_listen(m, loop, "127.0.0.1", 0, &err) < 0)
        TAP_FAIL("chc_metrics_listen: %s", err.msg);
    if (chc_metrics_port(m) <= 0)
        TAP_FAIL("no port");
    return m;
}

static void finish_loop(uv_loop_t *loop, struct chc_metrics *m)
{
    chc_metrics_free(m);
    uv_run(loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

enum { C_GET, C_ROOT, C_HEAD, C_PARTIAL, C_404, C_405, C_400, C_IDLE, C_BIG, C_EOF, C_N };

TEST(http_round_trips)
{
    static struct client cs[C_N];
    struct chc_buf want = CHC_BUF_INIT;
    struct chc_metrics *m;
    uv_loop_t loop;
    const char *body;
    int i, port;

    ASSERT_OK(uv_loop_init(&loop));
    m = serve(&loop, 1500);
    chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"hits\"", 42);
    ASSERT_OK(chc_metrics_render(m, &want));
    port = chc_metrics_port(m);

    memset(cs, 0, sizeof(cs));
    cs[C_GET].parts[0] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    cs[C_ROOT].parts[0] = "GET /?name=x HTTP/1.0\n\n";
    cs[C_HEAD].parts[0] = "HEAD /metrics HTTP/1.1\r\n\r\n";
    cs[C_PARTIAL].parts[0] = "GE";
    cs[C_PARTIAL].parts[1] = "T /metr";
    cs[C_PARTIAL].parts[2] = "ics HTTP/1.1\r\nHost: x\r\n\r";
    cs[C_PARTIAL].parts[3] = "\n";
    cs[C_PARTIAL].delay_ms = 40;
    cs[C_404].parts[0] = "GET /metricsx HTTP/1.1\r\n\r\n";
    cs[C_405].parts[0] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    cs[C_400].parts[0] = "hello\r\n\r\n";
    cs[C_BIG].parts[0] = "GET /metrics HTTP/1.1\r\nX-Junk: ";
    cs[C_BIG].junk = 3 * CHC_METRICS_MAX_REQUEST;
    cs[C_EOF].parts[0] = "GET /metr"; /* half a request, then nothing */
    for (i = 0; i < C_N; i++)
        cs[i].port = port;
    run_clients(&loop, cs, C_N);

    for (i = 0; i < C_N; i++) {
        ASSERT_EQ(cs[i].connect_errno, 0);
    }
    /* All at once: the quick ones were answered long before the idle ones
     * were closed at their 1500 ms deadline. */
    for (i = C_GET; i <= C_400; i++) {
        if (cs[i].ms >= 1300)
            TAP_FAIL("client %d took %.0f ms", i, cs[i].ms);
    }
    body = body_of(&cs[C_GET]);
    ASSERT_NOT_NULL(body);
    ASSERT(!strncmp(cs[C_GET].resp, "HTTP/1.1 200 OK\r\n", 17));
    ASSERT_CONTAINS(cs[C_GET].resp, "\r\nContent-Type: text/plain; version=0.0.4");
    ASSERT_CONTAINS(cs[C_GET].resp, "\r\nConnection: close\r\n");
    ASSERT_STREQ(body, want.buf);
    ASSERT_CONTAINS(body, "chcopier_rows_copied_total{table=\"hits\"} 42\n");

    body = body_of(&cs[C_ROOT]);
    ASSERT_NOT_NULL(body);
    ASSERT(!strncmp(cs[C_ROOT].resp, "HTTP/1.1 200 OK\r\n", 17));
    ASSERT_STREQ(body, want.buf);

    ASSERT(!strncmp(cs[C_HEAD].resp, "HTTP/1.1 200 OK\r\n", 17));
    ASSERT_CONTAINS(cs[C_HEAD].resp, "\r\nContent-Length: ");
    ASSERT(!strcmp(strstr(cs[C_HEAD].resp, "\r\n\r\n"), "\r\n\r\n"));

    body = body_of(&cs[C_PARTIAL]);
    ASSERT_NOT_NULL(body);
    ASSERT_STREQ(body, want.buf);
    ASSERT(cs[C_PARTIAL].ms >= 100); /* it really arrived in pieces */

    ASSERT(!strncmp(cs[C_404].resp, "HTTP/1.1 404 Not Found\r\n", 24));
    ASSERT_STREQ(body_of(&cs[C_404]), "not found\n");
    ASSERT(!strncmp(cs[C_405].resp, "HTTP/1.1 405 Method Not Allowed\r\n", 33));
    ASSERT_CONTAINS(cs[C_405].resp, "\r\nAllow: GET, HEAD\r\n");
    ASSERT(!strncmp(cs[C_400].resp, "HTTP/1.1 400 Bad Request\r\n", 26));
    ASSERT_NOT_NULL(body_of(&cs[C_400]));

    /* Idle and half-sent requests: closed without an answer at the deadline. */
    ASSERT_EQ(cs[C_IDLE].len, 0);
    ASSERT(cs[C_IDLE].ms >= 1400 && cs[C_IDLE].ms < 8000);
    ASSERT_EQ(cs[C_EOF].len, 0);
    ASSERT(cs[C_EOF].ms >= 1400);
    /* Too big: closed without an answer, before the deadline. */
    ASSERT_EQ(cs[C_BIG].len, 0);
    if (cs[C_BIG].ms >= 1300)
        TAP_FAIL("oversized request closed after %.0f ms", cs[C_BIG].ms);

    chc_buf_release(&want);
    finish_loop(&loop, m);
}

/* More than CHC_METRICS_MAX_CLIENTS at once: the extra ones are closed at
 * once, the others are still served; memory stays bounded. */
TEST(http_client_limit)
{
    enum { N = CHC_METRICS_MAX_CLIENTS + 3 };
    static struct client cs[N];
    struct chc_metrics *m;
    uv_loop_t loop;
    int i, closed_early = 0, answered = 0;

    ASSERT_OK(uv_loop_init(&loop));
    m = serve(&loop, 3000);
    memset(cs, 0, sizeof(cs));
    for (i = 0; i < N; i++) {
        cs[i].port = chc_metrics_port(m);
        cs[i].parts[0] = "GET /metrics HTTP/1.1\r\n";
        cs[i].parts[1] = "\r\n";
        cs[i].delay_ms = 300; /* all are connected before any is answered */
    }
    run_clients(&loop, cs, N);
    for (i = 0; i < N; i++) {
        ASSERT_EQ(cs[i].connect_errno, 0);
        if (cs[i].len == 0)
            closed_early++;
        else if (!strncmp(cs[i].resp, "HTTP/1.1 200 OK\r\n", 17))
            answered++;
    }
    ASSERT_EQ(answered, CHC_METRICS_MAX_CLIENTS);
    ASSERT_EQ(closed_early, 3);
    finish_loop(&loop, m);
}

TEST(busy_port_names_the_port)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_metrics *m, *m2 = new_metrics();
    uv_loop_t loop;
    char want[64];
    int port;

    ASSERT_OK(uv_loop_init(&loop));
    m = serve(&loop, 1000);
    port = chc_metrics_port(m);
    ASSERT_EQ(chc_metrics_listen(m2, &loop, "127.0.0.1", port, &err), -EADDRINUSE);
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: ", port);
    ASSERT_CONTAINS(err.msg, want);
    ASSERT_CONTAINS(err.msg, "address already in use");
    ASSERT_EQ(chc_metrics_port(m2), -ENOTCONN);
    ASSERT_EQ(chc_metrics_listen(m, &loop, "127.0.0.1", 0, &err), -EALREADY);
    ASSERT_EQ(chc_metrics_listen(m2, &loop, "not-an-ip", 0, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "'not-an-ip'");
    ASSERT_EQ(chc_metrics_listen(m2, &loop, NULL, 70000, &err), -EINVAL);
    chc_metrics_free(m2);
    finish_loop(&loop, m);
}

/* Freeing with a client connected mid-request: handles close, nothing leaks,
 * and the client sees the connection closed. */
TEST(free_with_open_connection)
{
    static struct client c;
    struct chc_metrics *m;
    uv_loop_t loop;
    pthread_t th;
    int i;

    ASSERT_OK(uv_loop_init(&loop));
    m = serve(&loop, 10000);
    memset(&c, 0, sizeof(c));
    c.port = chc_metrics_port(m);
    c.parts[0] = "GET /metrics HTTP/1.1\r\n";
    atomic_store(&clients_done, 0);
    clients_total = 1;
    ASSERT_OK(uv_async_init(&loop, &done_async, on_done_async));
    ASSERT_OK(pthread_create(&th, NULL, client_main, &c));
    /* Let the server accept and read the partial request. */
    usleep(100 * 1000);
    for (i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    m = chc_metrics_free(m);
    ASSERT_NULL(m);
    uv_run(&loop, UV_RUN_DEFAULT); /* until the client thread reports */
    pthread_join(th, NULL);
    ASSERT_EQ(c.len, 0);
    ASSERT(c.ms < 5000);
    uv_close((uv_handle_t *)&done_async, NULL);
    finish_loop(&loop, NULL);
}

/* Without a server the loop is untouched; the listener never keeps a loop
 * alive on its own (its handles are unreferenced). */
TEST(server_does_not_keep_loop_alive)
{
    struct chc_metrics *m;
    uv_loop_t loop;

    ASSERT_OK(uv_loop_init(&loop));
    m = serve(&loop, 1000);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    finish_loop(&loop, m);
}

TAP_MAIN()

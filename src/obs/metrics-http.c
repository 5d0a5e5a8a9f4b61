/* metrics-http.c — the registry's Prometheus endpoint (metrics-http.h).
 *
 * Owns a minimal HTTP/1.x responder on libuv: one listener, at most
 * CHC_METRICS_MAX_CLIENTS connections, one request per connection, a
 * deadline per connection. It reads the registry only through
 * chc_metrics_render(). Must not: log above debug, block, or keep the loop
 * alive (every handle is unreferenced). Handle memory (listener,
 * connections) is freed only in close callbacks, and those callbacks never
 * touch the registry, which chc_metrics_free() releases at once after
 * calling server_close() through the slot it was given.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/obs/metrics-http.h"
#include "obs/metrics-internal.h"

#include "base/banned.h"

struct conn;

/* The listener: the registry's endpoint (metrics-internal.h). */
struct chc_metrics_server {
    uv_tcp_t tcp;
    struct chc_metrics *m; /* NULL once closing */
    struct conn *conns;    /* open (not closing) connections */
    unsigned nconns;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct chc_metrics_server *srv; /* NULL once closing */
    struct conn *prev, *next;
    int open_handles;
    struct chc_buf resp;
    size_t len;
    char req[CHC_METRICS_MAX_REQUEST];
};

static void on_handle_freed(uv_handle_t *h)
{
    free(h->data);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->open_handles > 0)
        return;
    chc_buf_release(&c->resp);
    free(c);
}

static void conn_close(struct conn *c)
{
    struct chc_metrics_server *srv = c->srv;

    if (!srv)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    c->srv = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
    chc_log_debug("metrics: closing a connection at its deadline");
    conn_close(t->data);
}

static void on_written(uv_write_t *wr, int status)
{
    conn_close(wr->data); /* no-op if already closing (status UV_ECANCELED) */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    /* A zero-length buffer makes libuv report UV_ENOBUFS: request too big. */
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - 1 - c->len));
}

static const char *find_header_end(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] != '\n')
            continue;
        if (i + 1 < n && s[i + 1] == '\n')
            return s + i + 2;
        if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n')
            return s + i + 3;
    }
    return NULL;
}

static int respond(struct conn *c, const char *status, const char *ctype, const char *extra,
                   const char *body, size_t body_len, int head_only)
{
    int r;

    chc_buf_reset(&c->resp);
    r = chc_buf_addf(&c->resp,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, ctype, body_len, extra);
    if (r == 0 && !head_only)
        r = chc_buf_add(&c->resp, body, body_len);
    return r;
}

/* A short text/plain answer (errors). */
static int respond_text(struct conn *c, const char *status, const char *extra, const char *msg,
                        int head_only)
{
    return respond(c, status, "text/plain; charset=utf-8", extra, msg, strlen(msg), head_only);
}

/* Build the answer to the request line at c->req into c->resp. */
static int handle_request(struct conn *c)
{
    struct chc_buf body = CHC_BUF_INIT;
    char *line = c->req, *sp1, *sp2, *eol, *q;
    int head = 0, r;

    if (strlen(c->req) != c->len) /* a NUL byte in the request */
        return respond_text(c, "400 Bad Request", "", "bad request\n", 0);
    eol = strchr(line, '\n');
    if (eol > line && eol[-1] == '\r')
        eol--;
    *eol = '\0';
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        sp1[1] != '/')
        return respond_text(c, "400 Bad Request", "", "bad request\n", 0);
    *sp1 = *sp2 = '\0';
    if (!strcmp(line, "HEAD"))
        head = 1;
    else if (strcmp(line, "GET") != 0)
        return respond_text(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
                            "method not allowed\n", 0);
    q = strchr(sp1 + 1, '?');
    if (q)
        *q = '\0';
    if (strcmp(sp1 + 1, "/metrics") != 0 && strcmp(sp1 + 1, "/") != 0)
        return respond_text(c, "404 Not Found", "", "not found\n", head);
    r = chc_metrics_render(c->srv->m, &body);
    if (r < 0) {
        chc_buf_release(&body);
        return respond_text(c, "500 Internal Server Error", "", "out of memory\n", head);
    }
    r = respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", "", body.buf, body.len,
                head);
    chc_buf_release(&body);
    return r;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    uv_buf_t out;
    int r;

    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF before a whole request, a reset, or UV_ENOBUFS (too big). */
        chc_log_debug("metrics: closing a connection: %s", uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    c->req[c->len] = '\0';
    if (!find_header_end(c->req, c->len)) {
        if (c->len >= sizeof(c->req) - 1) {
            chc_log_debug("metrics: closing a connection: request over %zu bytes",
                          sizeof(c->req) - 1);
            conn_close(c);
        }
        return;
    }
    uv_read_stop(s);
    r = handle_request(c);
    if (r < 0) {
        conn_close(c);
        return;
    }
    out = uv_buf_init(c->resp.buf, (unsigned)c->resp.len);
    c->wr.data = c;
    r = uv_write(&c->wr, s, &out, 1, on_written);
    if (r < 0)
        conn_close(c);
}

static void reject(uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof(*t));

    if (!t)
        return; /* libuv pauses the listener until the next uv_accept() */
    t->data = t;
    if (uv_tcp_init(server->loop, t) < 0) {
        free(t);
        return;
    }
    (void)uv_accept(server, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_handle_freed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct chc_metrics_server *srv = server->data;
    struct conn *c;
    int r;

    if (status < 0) {
        chc_log_debug("metrics: accept failed: %s", uv_strerror(status));
        return;
    }
    if (!srv->m || srv->nconns >= CHC_METRICS_MAX_CLIENTS) {
        chc_log_debug("metrics: too many connections, refusing one");
        reject(server);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        reject(server);
        return;
    }
    chc_buf_init(&c->resp, 0);
    r = uv_tcp_init(server->loop, &c->tcp);
    if (r < 0) {
        free(c);
        reject(server);
        return;
    }
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    uv_unref((uv_handle_t *)&c->tcp);
    uv_unref((uv_handle_t *)&c->timer);
    c->srv = srv;
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    srv->nconns++;
    r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r == 0)
        r = uv_timer_start(&c->timer, on_conn_timeout, chc__metrics_client_timeout(srv->m),
                           0);
    if (r == 0)
        r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        chc_log_debug("metrics: cannot serve a connection: %s", uv_strerror(r));
        conn_close(c);
    }
}

/* Called by chc_metrics_free(): close every connection and the listener.
 * Their memory goes in the close callbacks, which never touch the registry. */
static void server_close(struct chc_metrics_server *srv)
{
    while (srv->conns)
        conn_close(srv->conns);
    srv->m = NULL;
    uv_close((uv_handle_t *)&srv->tcp, on_handle_freed);
}

static void format_hostport(char *out, size_t n, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(out, n, "[%s]:%d", host, port);
    else
        snprintf(out, n, "%s:%d", host, port);
}

int chc_metrics_listen(struct chc_metrics *m, uv_loop_t *loop, const char *host, int port,
                       struct chc_err *err)
{
    struct sockaddr_storage ss;
    struct chc_metrics_server *srv = NULL;
    char where[300];
    int r;

    if (!host)
        host = "127.0.0.1";
    format_hostport(where, sizeof(where), host, port);
    if (chc__metrics_server(m))
        return chc_err_set(err, -EALREADY, "metrics: already serving");
    if (port < 0 || port > 65535)
        return chc_err_set(err, -EINVAL, "metrics: invalid port %d", port);
    if (strchr(host, ':'))
        r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (r < 0)
        return chc_err_set(err, -EINVAL, "metrics: invalid listen address '%s'", host);
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return chc_err_set(err, -ENOMEM, "out of memory");
    r = uv_tcp_init(loop, &srv->tcp);
    if (r < 0) {
        free(srv);
        return chc_err_set(err, r, "metrics: cannot create a socket: %s", uv_strerror(r));
    }
    srv->tcp.data = srv;
    uv_unref((uv_handle_t *)&srv->tcp);
    /* libuv may report a bind error (EADDRINUSE) only at uv_listen(). */
    r = uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->tcp, 64, on_connection);
    if (r < 0) {
        chc_err_set(err, r, "metrics: cannot listen on %s: %s", where, uv_strerror(r));
        goto fail;
    }
    srv->m = m;
    chc__metrics_attach(m, srv, server_close);
    return 0;

fail:
    uv_close((uv_handle_t *)&srv->tcp, on_handle_freed);
    return r;
}

int chc_metrics_port(const struct chc_metrics *m)
{
    struct chc_metrics_server *srv = m ? chc__metrics_server(m) : NULL;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (!srv)
        return -ENOTCONN;
    if (uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&ss, &len) < 0)
        return -ENOTCONN;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

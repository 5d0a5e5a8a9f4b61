/* client.c — ClickHouse queries over HTTP, on curl_multi driven by libuv.
 *
 * Owns one CURLM per client, driven as in curl's docs/examples/multi-uv.c:
 * one uv_poll_t per socket curl asks to watch (its memory freed only in its
 * close callback) and one uv_timer_t (curl's 0 ms timeout becomes 1 ms so
 * curl_multi_socket_action never runs inside a curl callback). Query
 * callbacks run only from libuv callbacks, after curl has returned: finished
 * transfers from the poll/timer callbacks, cancellations from the `defer`
 * idle handle. So callbacks may re-enter this API. Each request itself (its
 * headers, options and outcome) is query.c's; the pipe code above is
 * reached only through the hooks it installed. Logs at debug level at most.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/client.h"
#include "chcopier/ch/query.h"
#include "chcopier/ch/url.h"
#include "chcopier/obs/log.h"
#include "ch/client.h"
#include "ch/query.h"

#include "base/banned.h"

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    int events;        /* as last given to uv_poll_start() */
    int read_on_error; /* a pipe's INSERT connection: see on_poll() */
    struct ch_client *c;
    struct sock_ctx *prev, *next; /* c->socks, unlinked when closing */
};

/* ------------------------------------------------------------- sockets */

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_close(struct ch_client *c, struct sock_ctx *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void collect_done(struct ch_client *c);
static void run_done(struct ch_client *c);

/* Let the pipe code resume and start its transfers (see client.h). */
static void run_after_io(struct ch_client *c)
{
    if (c->hooks && c->hooks->after_io)
        c->hooks->after_io(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *s = h->data;
    struct ch_client *c = s->c;
    int flags = 0, running;

    if (status < 0 && s->read_on_error) {
        /* ClickHouse answers a failed INSERT and closes the connection while
         * our chunks are still unread on its side, which resets it: the answer
         * waits in our receive buffer behind the error. Let curl read it (it
         * only gives up on a bare CURL_CSELECT_ERR), with the poll that libuv
         * stopped on the error restarted in case curl wants more. */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT | CURL_CSELECT_ERR;
        (void)uv_poll_start(&s->poll, s->events, on_poll);
    } else if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* May close s (CURL_POLL_REMOVE); its memory lives until on_sock_closed. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    run_after_io(c);
    collect_done(c);
    run_done(c);
}

static void on_timer(uv_timer_t *h)
{
    struct ch_client *c = h->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    run_after_io(c);
    collect_done(c);
    run_done(c);
}

/* Pipe INSERTs, the queries that set read_on_error, have connections of
 * their own (CURLOPT_FRESH_CONNECT and CURLOPT_FORBID_REUSE), so a socket
 * belongs to one for its whole life. */
static int reads_on_error(CURL *easy)
{
    struct ch_query *q;
    char *priv = NULL;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    q = (struct ch_query *)priv;
    return q && q->read_on_error;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct ch_client *c = userp;
    struct sock_ctx *s = socketp;
    int events = 0;

    switch (action) {
    case CURL_POLL_IN:
    case CURL_POLL_OUT:
    case CURL_POLL_INOUT:
        if (!s) {
            s = calloc(1, sizeof(*s));
            if (!s)
                return -1;
            if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
                free(s);
                return -1;
            }
            s->fd = fd;
            s->c = c;
            s->poll.data = s;
            s->read_on_error = reads_on_error(easy);
            s->next = c->socks;
            if (c->socks)
                c->socks->prev = s;
            c->socks = s;
            curl_multi_assign(c->multi, fd, s);
        }
        if (action != CURL_POLL_IN)
            events |= UV_WRITABLE;
        if (action != CURL_POLL_OUT)
            events |= UV_READABLE;
        if (uv_poll_start(&s->poll, events, on_poll) < 0)
            return -1;
        s->events = events;
        break;
    case CURL_POLL_REMOVE:
        if (s) {
            sock_close(c, s);
            curl_multi_assign(c->multi, fd, NULL);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct ch_client *c = userp;

    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    /* 0 means "as soon as possible, but not from inside this callback". */
    if (uv_timer_start(&c->timer, on_timer, timeout_ms ? (uint64_t)timeout_ms : 1, 0) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------ done queue */

static void running_unlink(struct ch_query *q)
{
    struct ch_client *c = q->client;

    if (q->prev)
        q->prev->next = q->next;
    else
        c->running = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static void done_push(struct ch_client *c, struct ch_query *q)
{
    q->state = QUERY_PENDING;
    q->next = NULL;
    *c->done_tail = q;
    c->done_tail = &q->next;
}

static void collect_done(struct ch_client *c)
{
    struct ch_query *q;
    CURLMsg *msg;
    CURLcode rc;
    char *priv;
    int pending;

    while ((msg = curl_multi_info_read(c->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result;
        priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        q = (struct ch_query *)priv;
        curl_multi_remove_handle(c->multi, q->easy); /* msg is invalid now */
        running_unlink(q);
        q->finish(q, rc);
        chc_log_debug("ch: %s: query finished: %s", q->hostport, q->status ? q->err.msg : "ok");
        done_push(c, q);
    }
}

static void on_client_handle_closed(uv_handle_t *h)
{
    struct ch_client *c = h->data;

    if (--c->open_handles > 0)
        return;
    if (c->hooks && c->hooks->release)
        c->hooks->release(c);
    free(c);
    curl_global_cleanup();
}

static void maybe_finish_close(struct ch_client *c)
{
    if (c->closing && !c->dispatching && !c->done_head && !uv_is_closing((uv_handle_t *)&c->defer))
        uv_close((uv_handle_t *)&c->defer, on_client_handle_closed);
}

/* Run the callbacks of finished queries, in order. Not re-entrant: a query
 * finished by a callback (cancel) is picked up by the same loop. */
static void run_done(struct ch_client *c)
{
    struct ch_query *q;

    if (c->dispatching)
        return;
    c->dispatching = 1;
    while ((q = c->done_head) != NULL) {
        c->done_head = q->next;
        if (!c->done_head)
            c->done_tail = &c->done_head;
        q->next = NULL;
        q->state = QUERY_DONE;
        q->cb(q, q->data); /* may free q */
    }
    c->dispatching = 0;
    uv_idle_stop(&c->defer);
    maybe_finish_close(c);
}

static void on_defer(uv_idle_t *h)
{
    run_done(h->data);
}

void ch__client_abort(struct ch_query *q, const char *why)
{
    struct ch_client *c = q->client;

    curl_multi_remove_handle(c->multi, q->easy);
    running_unlink(q);
    ch__query_fail(q, CHC_ECANCELED, why, NULL, 0);
    chc_log_debug("ch: %s: %s", q->hostport, why);
    done_push(c, q);
    uv_idle_start(&c->defer, on_defer);
}

/* ---------------------------------------------------------------- client */

int ch_client_new(uv_loop_t *loop, struct ch_client **ret, struct chc_err *err)
{
    struct ch_client *c = NULL;
    int global = 0;
    int r;

    if (!loop || !ret)
        return chc_err_set(err, -EINVAL, "ch_client_new: no loop");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        r = chc_err_set(err, -ENOMEM, "cannot initialise libcurl");
        goto fail;
    }
    global = 1;
    c = calloc(1, sizeof(*c));
    if (!c) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    c->loop = loop;
    c->done_tail = &c->done_head;
    c->multi = curl_multi_init();
    if (!c->multi) {
        r = chc_err_set(err, -ENOMEM, "cannot create a curl multi handle");
        goto fail;
    }
    if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
        r = chc_err_set(err, CHC_ECH_HTTP, "cannot configure the curl multi handle");
        goto fail;
    }
    /* Neither init can fail on unix; nothing after them can fail either, so
     * the fail path never has a handle to close. */
    r = uv_timer_init(loop, &c->timer);
    if (r < 0) {
        r = chc_err_set(err, r, "cannot create a timer: %s", uv_strerror(r));
        goto fail;
    }
    c->timer.data = c;
    c->open_handles++;
    (void)uv_idle_init(loop, &c->defer);
    c->defer.data = c;
    c->open_handles++;
    (void)uv_timer_init(loop, &c->throttle);
    c->throttle.data = c;
    c->open_handles++;
    *ret = c;
    return 0;
fail:
    if (c) {
        if (c->multi)
            curl_multi_cleanup(c->multi);
        free(c);
    }
    if (global)
        curl_global_cleanup();
    return r;
}

struct ch_client *ch_client_free(struct ch_client *c)
{
    if (!c || c->closing)
        return NULL;
    c->closing = 1;
    if (c->hooks && c->hooks->closing)
        c->hooks->closing(c);
    while (c->running)
        ch__client_abort(c->running, "query cancelled: client closing");
    curl_multi_cleanup(c->multi); /* closes idle connections (CURL_POLL_REMOVE) */
    c->multi = NULL;
    while (c->socks)
        sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
    uv_timer_stop(&c->throttle);
    uv_close((uv_handle_t *)&c->throttle, on_client_handle_closed);
    maybe_finish_close(c); /* else on_defer runs the callbacks first */
    return NULL;
}

/* ---------------------------------------------------------------- queries */

int ch__client_add(struct ch_client *c, struct ch_query *q, struct chc_err *err)
{
    CURLMcode mc;

    mc = curl_multi_add_handle(c->multi, q->easy);
    if (mc != CURLM_OK)
        return chc_err_set(err, mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : CHC_ECH_HTTP,
                           "%s: cannot start the request: %s", q->hostport,
                           curl_multi_strerror(mc));
    q->state = QUERY_RUNNING;
    q->prev = NULL;
    q->next = c->running;
    if (c->running)
        c->running->prev = q;
    c->running = q;
    return 0;
}

int ch_query_start(struct ch_client *c, const struct ch_query_params *p, ch_done_cb cb, void *data,
                   struct ch_query **ret, struct chc_err *err)
{
    struct chc_buf url = CHC_BUF_INIT;
    struct ch_query *q = NULL;
    int r;

    if (!c || !p || !cb || !ret || !p->sql) {
        r = chc_err_set(err, -EINVAL, "ch_query_start: missing client, params, sql or callback");
        goto fail;
    }
    if (c->closing) {
        r = chc_err_set(err, CHC_ECANCELED, "ClickHouse client is closing");
        goto fail;
    }
    r = ch_build_url(p, &url, err);
    if (r < 0)
        goto fail;
    r = ch__query_create(c, p, url.buf, p->sql, cb, data, &q, err);
    if (r < 0)
        goto fail;
    r = ch__client_add(c, q, err);
    if (r < 0)
        goto fail;
    chc_log_debug("ch: %s: query started%s%s", q->hostport, p->query_id ? " " : "",
                  p->query_id ? p->query_id : "");
    chc_buf_release(&url);
    *ret = q;
    return 0;
fail:
    chc_buf_release(&url);
    ch__query_destroy(q);
    return r;
}

void ch_query_cancel(struct ch_query *q)
{
    if (!q || q->state != QUERY_RUNNING)
        return;
    ch__client_abort(q, "query cancelled");
}

struct sync_state {
    int done;
};

static void on_sync_done(struct ch_query *q, void *data)
{
    struct sync_state *st = data;

    st->done = 1;
}

int ch_query_sync(struct ch_client *c, const struct ch_query_params *p, struct chc_buf *out,
                  struct chc_err *err)
{
    struct sync_state st = {0};
    struct ch_query *q = NULL;
    int r;

    if (c && c->dispatching)
        return chc_err_set(err, CHC_ESTATE, "ch_query_sync() called from a query callback");
    r = ch_query_start(c, p, on_sync_done, &st, &q, err);
    if (r < 0)
        return r;
    while (!st.done) {
        if (uv_run(c->loop, UV_RUN_ONCE) == 0 && !st.done)
            CHC_BUG("loop has no active handles while a query runs");
    }
    r = ch_query_status(q);
    if (r < 0) {
        chc_err_set(err, r, "%s", q->err.msg);
        goto out;
    }
    if (out) {
        r = chc_buf_add(out, q->body.buf, q->body.len);
        if (r < 0)
            chc_err_set(err, r, "%s: cannot keep the response: %s", q->hostport, chc_strerror(r));
    }
out:
    ch_query_free(q);
    return r;
}

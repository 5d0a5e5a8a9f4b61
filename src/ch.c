/* ch.c — the only file that includes curl.h: ClickHouse queries over HTTP.
 *
 * Owns one CURLM per client, driven by libuv as in curl's
 * docs/examples/multi-uv.c: one uv_poll_t per socket curl asks to watch (its
 * memory freed only in its close callback) and one uv_timer_t (curl's 0 ms
 * timeout becomes 1 ms so curl_multi_socket_action never runs inside a curl
 * callback). Query callbacks run only from libuv callbacks, after curl has
 * returned: finished transfers from the poll/timer callbacks, cancellations
 * from the `defer` idle handle. So callbacks may re-enter this API.
 * Translates CURLcode + HTTP status + ClickHouse exception code into CHC_E*
 * once, here, and keeps credentials out of URLs and messages. Logs at debug
 * level at most.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <uv.h>

#include "chcopier/buf.h"
#include "chcopier/ch.h"
#include "chcopier/err.h"
#include "chcopier/log.h"
#include "chcopier/task.h"
#include "config.h"

#include "banned.h"

/* How far from the end of a body a trailing exception may start. */
#define TRAILING_EXCEPTION_WINDOW ((size_t)64 << 10)
#define SECRETS_MAX (1 + CH_REDACT_MAX)

enum query_state {
    QUERY_RUNNING, /* easy handle in the multi, on c->running */
    QUERY_PENDING, /* finished, on c->done_head, cb not run yet */
    QUERY_DONE,    /* cb ran (or is running) */
    _QUERY_STATE_MAX,
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct ch_client *c;
    struct sock_ctx *prev, *next; /* c->socks, unlinked when closing */
};

struct ch_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_idle_t defer;      /* delivers cancellations from the loop */
    int open_handles;     /* timer + defer, until their close callbacks */
    int closing;          /* ch_client_free() was called */
    int dispatching;      /* inside run_done() */
    struct ch_query *running;
    struct ch_query *done_head, **done_tail;
    struct sock_ctx *socks;
};

struct ch_query {
    struct ch_client *client; /* only used while RUNNING or PENDING */
    enum query_state state;
    CURL *easy;
    struct curl_slist *headers;
    ch_done_cb cb;
    void *data;
    struct ch_query *prev, *next; /* c->running, then c->done_head (next) */
    struct chc_buf body;
    int too_big, oom;
    int global; /* holds a curl_global_init() reference */
    int status;
    int exc_code, hdr_exc_code;
    struct chc_err err;
    char *hostport;
    char *secrets[SECRETS_MAX];
    char errbuf[CURL_ERROR_SIZE];
};

/* ------------------------------------------------------------------ text */

static const char *mem_find(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle), i;

    if (m == 0 || n < m)
        return NULL;
    for (i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, m))
            return hay + i;
    return NULL;
}

/* "Code: N." or "Code: N," at s (n bytes available): N, else 0. */
static int code_at(const char *s, size_t n)
{
    size_t i = 6, digits = 0;
    int code = 0;

    if (n < 8 || memcmp(s, "Code: ", 6) != 0)
        return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 9) {
        code = code * 10 + (s[i] - '0');
        i++;
        digits++;
    }
    if (!digits || i >= n || (s[i] != '.' && s[i] != ','))
        return 0;
    return code;
}

int ch_parse_exception_code(const char *body)
{
    const char *s = body;
    int code;

    if (!body)
        return 0;
    for (;;) {
        code = code_at(s, strnlen(s, 32));
        if (code > 0)
            return code;
        s = strchr(s, '\n');
        if (!s)
            return 0;
        s++;
    }
}

const char *ch_find_trailing_exception(const char *body, size_t len)
{
    size_t lo = len > TRAILING_EXCEPTION_WINDOW ? len - TRAILING_EXCEPTION_WINDOW : 0;
    size_t i;

    if (!body)
        return NULL;
    for (i = len; i-- > lo;) {
        const char *line = body + i, *eol;

        if (i > 0 && body[i - 1] != '\n')
            continue;
        if (code_at(line, len - i) <= 0)
            continue;
        eol = memchr(line, '\n', len - i);
        if (mem_find(line, eol ? (size_t)(eol - line) : len - i, "DB::Exception"))
            return line;
    }
    return NULL;
}

/* ------------------------------------------------------------------- URL */

static const char *const reserved_params[] = {
    "query", "query_id", "database", "user", "password", "quota_key", "compress", "decompress",
};

static int add_param(struct chc_buf *out, char *sep, const char *name, const char *value)
{
    int r;

    r = chc_buf_addch(out, *sep);
    if (r == 0)
        r = chc_buf_add_urlenc(out, name);
    if (r == 0)
        r = chc_buf_addch(out, '=');
    if (r == 0)
        r = chc_buf_add_urlenc(out, value ? value : "");
    *sep = '&';
    return r;
}

/* Is settings item (set si, index ii) overridden by a later one? */
static int overridden(const struct ch_query_params *p, size_t si, size_t ii)
{
    const char *name = p->settings[si]->items[ii].name;
    size_t s, i;

    for (s = si; s < CH_SETTINGS_MAX && p->settings[s]; s++)
        for (i = s == si ? ii + 1 : 0; i < p->settings[s]->n; i++)
            if (p->settings[s]->items[i].name && !strcmp(p->settings[s]->items[i].name, name))
                return 1;
    return 0;
}

static int check_host(const char *host)
{
    const char *s;

    if (!host || !*host)
        return -EINVAL;
    for (s = host; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr("/?#@\\", *s))
            return -EINVAL;
    return 0;
}

static int add_hostport(struct chc_buf *out, const struct cfg_replica *rep)
{
    int v6 = strchr(rep->host, ':') && rep->host[0] != '[';

    return chc_buf_addf(out, "%s%s%s:%d", v6 ? "[" : "", rep->host, v6 ? "]" : "",
                        rep->http_port);
}

int ch_build_url(const struct ch_query_params *p, struct chc_buf *out, struct chc_err *err)
{
    const struct cfg_replica *rep = p ? p->replica : NULL;
    size_t start = out->len, s, i, k;
    int explicit_wait = 0;
    char sep = '?';
    int r;

    if (!rep) {
        r = chc_err_set(err, -EINVAL, "no replica given for the query");
        goto fail;
    }
    if (check_host(rep->host) < 0) {
        r = chc_err_set(err, -EINVAL, "invalid ClickHouse host '%s'", rep->host ? rep->host : "");
        goto fail;
    }
    if (rep->http_port <= 0 || rep->http_port > 65535) {
        r = chc_err_set(err, -EINVAL, "%s: invalid HTTP port %d", rep->host, rep->http_port);
        goto fail;
    }
    r = chc_buf_addstr(out, rep->secure ? "https://" : "http://");
    if (r == 0)
        r = add_hostport(out, rep);
    if (r == 0)
        r = chc_buf_addch(out, '/');
    if (r == 0 && p->query_id && *p->query_id)
        r = add_param(out, &sep, "query_id", p->query_id);
    if (r == 0 && p->database && *p->database)
        r = add_param(out, &sep, "database", p->database);
    for (s = 0; r == 0 && s < CH_SETTINGS_MAX && p->settings[s]; s++) {
        for (i = 0; r == 0 && i < p->settings[s]->n; i++) {
            const struct cfg_setting *it = &p->settings[s]->items[i];

            if (!it->name || !*it->name) {
                r = chc_err_set(err, -EINVAL, "%s: setting without a name", rep->host);
                goto fail;
            }
            for (k = 0; k < sizeof(reserved_params) / sizeof(reserved_params[0]); k++) {
                if (!strcmp(it->name, reserved_params[k])) {
                    r = chc_err_set(err, -EINVAL,
                                    "setting '%s' cannot be passed as a URL parameter", it->name);
                    goto fail;
                }
            }
            if (!strcmp(it->name, "wait_end_of_query"))
                explicit_wait = 1;
            if (!overridden(p, s, i))
                r = add_param(out, &sep, it->name, it->value);
        }
    }
    if (r == 0 && !p->stream && !explicit_wait)
        r = add_param(out, &sep, "wait_end_of_query", "1");
    if (r < 0) {
        r = chc_err_set(err, r, "%s: cannot build the query URL: %s", rep->host, chc_strerror(r));
        goto fail;
    }
    return 0;
fail:
    if (out->alloc)
        chc_buf_setlen(out, start);
    return r;
}

/* --------------------------------------------------------------- errors */

static int is_auth_code(int code)
{
    return code == 192 || code == 193 || code == 194 || code == 516;
}

static int classify_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return CHC_ECH_CONN;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return CHC_ECH_HTTP;
    }
}

/* Append n bytes of s to out[*o] as one line: control characters become
 * spaces and every secret is masked. Never writes past out[size - 1]. */
static void emit(const struct ch_query *q, char *out, size_t size, size_t *o, const char *s,
                 size_t n)
{
    size_t i, k;

    for (i = 0; i < n && *o + 1 < size; i++) {
        int masked = 0;

        for (k = 0; k < SECRETS_MAX && q->secrets[k]; k++) {
            size_t sl = strlen(q->secrets[k]);

            if (sl && sl <= n - i && !memcmp(s + i, q->secrets[k], sl)) {
                const char *star = "***";

                while (*star && *o + 1 < size)
                    out[(*o)++] = *star++;
                i += sl - 1;
                masked = 1;
                break;
            }
        }
        if (masked)
            continue;
        out[(*o)++] = ((unsigned char)s[i] < ' ' || s[i] == 0x7f) ? ' ' : s[i];
    }
}

/* Fail q with "<host>:<port>: <what><text>" (what and text may be NULL). */
static void fail_query(struct ch_query *q, int code, const char *what, const char *text,
                       size_t len)
{
    char out[CHC_ERR_MSG_MAX];
    size_t o = 0;

    emit(q, out, sizeof(out), &o, q->hostport, strlen(q->hostport));
    emit(q, out, sizeof(out), &o, ": ", 2);
    if (what)
        emit(q, out, sizeof(out), &o, what, strlen(what));
    if (text)
        emit(q, out, sizeof(out), &o, text, len);
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    q->status = code;
    chc_err_set(&q->err, code, "%s", out);
}

static void finish_exception(struct ch_query *q, long http, const char *text, size_t len)
{
    int code;

    q->exc_code = q->hdr_exc_code ? q->hdr_exc_code : ch_parse_exception_code(text);
    if (http == 401 || http == 403 || is_auth_code(q->exc_code))
        code = CHC_ECH_AUTH;
    else
        code = CHC_ECH_EXCEPTION;
    fail_query(q, code, NULL, text, len);
}

/* An HTTP error whose body carries a ClickHouse exception: fail q with it and
 * return 1; else 0. */
static int finish_error_body(struct ch_query *q, long http)
{
    const char *body = q->body.buf, *start;

    if (!q->hdr_exc_code && !ch_parse_exception_code(body))
        return 0;
    start = strstr(body, "Code: ");
    if (!start)
        start = body;
    finish_exception(q, http, start, q->body.len - (size_t)(start - body));
    return 1;
}

/* Translate the outcome of a finished transfer into q->status/err. */
static void finish_query(struct ch_query *q, CURLcode rc)
{
    const char *body = q->body.buf, *exc, *text;
    size_t len = q->body.len;
    char what[64];
    long http = 0;

    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &http);
    if (q->too_big) {
        snprintf(what, sizeof(what), "response larger than %zu bytes", q->body.max);
        fail_query(q, CHC_ETOOBIG, what, NULL, 0);
        return;
    }
    if (q->oom) {
        fail_query(q, -ENOMEM, "out of memory receiving the response", NULL, 0);
        return;
    }
    /* HTTP 200, then an exception at the end (streamed, or wait_end_of_query
     * overridden): the body is incomplete. */
    exc = http >= 200 && http < 300 ? ch_find_trailing_exception(body, len) : NULL;
    if (exc) {
        finish_exception(q, http, exc, len - (size_t)(exc - body));
        return;
    }
    if (rc != CURLE_OK) {
        /* The exception may have arrived before the connection broke. */
        if (http >= 400 && finish_error_body(q, http))
            return;
        text = q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc);
        fail_query(q, classify_curl(rc), NULL, text, strlen(text));
        return;
    }
    if (http >= 200 && http < 300) {
        q->status = 0;
        return;
    }
    if (finish_error_body(q, http))
        return;
    snprintf(what, sizeof(what), "HTTP %ld%s", http, len ? ": " : "");
    fail_query(q, (http == 401 || http == 403) ? CHC_ECH_AUTH : CHC_ECH_HTTP, what, body,
               len > 512 ? 512 : len);
}

/* ---------------------------------------------------------- curl callbacks */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct ch_query *q = userp;
    size_t n = size * nmemb;
    int r;

    r = chc_buf_add(&q->body, ptr, n);
    if (r == CHC_ETOOBIG)
        q->too_big = 1;
    else if (r < 0)
        q->oom = 1;
    return r < 0 ? CURL_WRITEFUNC_ERROR : n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userp)
{
    static const char name[] = "X-ClickHouse-Exception-Code:";
    struct ch_query *q = userp;
    size_t n = size * nmemb, i;
    int code = 0;

    if (n >= 5 && !memcmp(ptr, "HTTP/", 5)) {
        q->hdr_exc_code = 0; /* a new response (after 100 Continue) */
        return n;
    }
    if (n <= sizeof(name) - 1 || strncasecmp(ptr, name, sizeof(name) - 1) != 0)
        return n;
    for (i = sizeof(name) - 1; i < n && ptr[i] == ' '; i++)
        ;
    for (; i < n && ptr[i] >= '0' && ptr[i] <= '9' && code < 100000000; i++)
        code = code * 10 + (ptr[i] - '0');
    q->hdr_exc_code = code;
    return n;
}

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

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *s = h->data;
    struct ch_client *c = s->c;
    int flags = 0, running;

    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* May close s (CURL_POLL_REMOVE); its memory lives until on_sock_closed. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    collect_done(c);
    run_done(c);
}

static void on_timer(uv_timer_t *h)
{
    struct ch_client *c = h->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(c);
    run_done(c);
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
        finish_query(q, rc);
        chc_log_debug("ch: %s: query finished: %s", q->hostport,
                      q->status ? q->err.msg : "ok");
        done_push(c, q);
    }
}

static void on_client_handle_closed(uv_handle_t *h)
{
    struct ch_client *c = h->data;

    if (--c->open_handles > 0)
        return;
    free(c);
    curl_global_cleanup();
}

static void maybe_finish_close(struct ch_client *c)
{
    if (c->closing && !c->dispatching && !c->done_head &&
        !uv_is_closing((uv_handle_t *)&c->defer))
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

/* Take a running query off the wire and queue its callback for the loop. */
static void abort_query(struct ch_query *q, const char *why)
{
    struct ch_client *c = q->client;

    curl_multi_remove_handle(c->multi, q->easy);
    running_unlink(q);
    fail_query(q, CHC_ECANCELED, why, NULL, 0);
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
    while (c->running)
        abort_query(c->running, "query cancelled: client closing");
    curl_multi_cleanup(c->multi); /* closes idle connections (CURL_POLL_REMOVE) */
    c->multi = NULL;
    while (c->socks)
        sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
    maybe_finish_close(c); /* else on_defer runs the callbacks first */
    return NULL;
}

/* ---------------------------------------------------------------- queries */

static struct ch_query *query_destroy(struct ch_query *q)
{
    size_t i;

    if (!q)
        return NULL;
    if (q->easy)
        curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->headers);
    if (q->global)
        curl_global_cleanup(); /* the client may be gone already */
    chc_buf_release(&q->body);
    free(q->hostport);
    for (i = 0; i < SECRETS_MAX; i++) {
        if (q->secrets[i]) {
            memset(q->secrets[i], 0, strlen(q->secrets[i]));
            free(q->secrets[i]);
        }
    }
    free(q);
    return NULL;
}

struct ch_query *ch_query_free(struct ch_query *q)
{
    if (!q)
        return NULL;
    if (q->state != QUERY_DONE)
        CHC_BUG("ch_query_free() before the query's callback ran");
    return query_destroy(q);
}

static int has_newline(const char *s)
{
    return strchr(s, '\r') || strchr(s, '\n');
}

/* Append "Name: value" to q->headers; the temporary copy is wiped. */
static int add_header(struct ch_query *q, const char *name, const char *value)
{
    struct chc_buf h = CHC_BUF_INIT;
    struct curl_slist *l;
    int r;

    r = chc_buf_addf(&h, "%s: %s", name, value);
    if (r < 0)
        goto out;
    l = curl_slist_append(q->headers, h.buf);
    if (!l) {
        r = -ENOMEM;
        goto out;
    }
    q->headers = l;
out:
    if (h.alloc)
        memset(h.buf, 0, h.len);
    chc_buf_release(&h);
    return r;
}

static int query_setup(struct ch_query *q, const struct ch_query_params *p, const char *url,
                       struct chc_err *err)
{
    const struct cfg_replica *rep = p->replica;
    struct chc_buf hp = CHC_BUF_INIT;
    CURLcode cc = CURLE_OK;
    size_t i, n = 0;
    int r;

    r = add_hostport(&hp, rep);
    if (r < 0)
        goto oom;
    q->hostport = chc_buf_take(&hp, NULL);
    if (!q->hostport)
        goto oom;
    if (rep->password && *rep->password) {
        q->secrets[n] = chc_strdup(rep->password);
        if (!q->secrets[n++])
            goto oom;
    }
    for (i = 0; i < CH_REDACT_MAX && p->redact[i]; i++) {
        if (!*p->redact[i])
            continue;
        q->secrets[n] = chc_strdup(p->redact[i]);
        if (!q->secrets[n++])
            goto oom;
    }
    if ((rep->user && has_newline(rep->user)) || (rep->password && has_newline(rep->password)))
        return chc_err_set(err, -EINVAL, "%s: user or password contains a line break",
                           q->hostport);
    if (rep->user && *rep->user) {
        r = add_header(q, "X-ClickHouse-User", rep->user);
        if (r < 0)
            goto oom;
    }
    if (rep->password && *rep->password) {
        r = add_header(q, "X-ClickHouse-Key", rep->password);
        if (r < 0)
            goto oom;
    }
    r = add_header(q, "Content-Type", "text/plain; charset=UTF-8");
    if (r == 0)
        r = add_header(q, "Expect", ""); /* no 100-continue round trip */
    if (r < 0)
        goto oom;

    q->easy = curl_easy_init();
    if (!q->easy)
        goto oom;
#define SETOPT(opt, val)                                                       \
    do {                                                                       \
        if (cc == CURLE_OK)                                                    \
            cc = curl_easy_setopt(q->easy, opt, val);                          \
    } while (0)
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_PROXY, ""); /* never an environment proxy */
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PRIVATE, (char *)q);
    SETOPT(CURLOPT_ERRORBUFFER, q->errbuf);
    SETOPT(CURLOPT_HTTPHEADER, q->headers);
    SETOPT(CURLOPT_USERAGENT, "chcopier/" CHC_VERSION);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(p->sql));
    SETOPT(CURLOPT_COPYPOSTFIELDS, p->sql);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, q);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, q);
    SETOPT(CURLOPT_TIMEOUT_MS, p->timeout_ms > 0 ? p->timeout_ms : 0L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
           p->connect_timeout_ms > 0 ? p->connect_timeout_ms : CH_CONNECT_TIMEOUT_DEFAULT);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L); /* wait_end_of_query may be silent for long */
    SETOPT(CURLOPT_TCP_KEEPIDLE, 30L);
    SETOPT(CURLOPT_TCP_KEEPINTVL, 10L);
#undef SETOPT
    if (cc != CURLE_OK)
        return chc_err_set(err, cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : CHC_ECH_HTTP,
                           "%s: cannot set up the request: %s", q->hostport,
                           curl_easy_strerror(cc));
    return 0;
oom:
    chc_buf_release(&hp);
    return chc_err_set(err, -ENOMEM, "out of memory");
}

int ch_query_start(struct ch_client *c, const struct ch_query_params *p, ch_done_cb cb,
                   void *data, struct ch_query **ret, struct chc_err *err)
{
    struct chc_buf url = CHC_BUF_INIT;
    struct ch_query *q = NULL;
    CURLMcode mc;
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
    q = calloc(1, sizeof(*q));
    if (!q) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        r = chc_err_set(err, -ENOMEM, "cannot initialise libcurl");
        goto fail;
    }
    q->global = 1;
    q->client = c;
    q->cb = cb;
    q->data = data;
    q->state = QUERY_DONE; /* until it is in the multi */
    chc_buf_init(&q->body, p->max_response ? p->max_response : CH_MAX_RESPONSE_DEFAULT);
    r = query_setup(q, p, url.buf, err);
    if (r < 0)
        goto fail;
    mc = curl_multi_add_handle(c->multi, q->easy);
    if (mc != CURLM_OK) {
        r = chc_err_set(err, mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : CHC_ECH_HTTP,
                        "%s: cannot start the request: %s", q->hostport, curl_multi_strerror(mc));
        goto fail;
    }
    q->state = QUERY_RUNNING;
    q->next = c->running;
    if (c->running)
        c->running->prev = q;
    c->running = q;
    chc_log_debug("ch: %s: query started%s%s", q->hostport, p->query_id ? " " : "",
                  p->query_id ? p->query_id : "");
    chc_buf_release(&url);
    *ret = q;
    return 0;
fail:
    chc_buf_release(&url);
    query_destroy(q);
    return r;
}

void ch_query_cancel(struct ch_query *q)
{
    if (!q || q->state != QUERY_RUNNING)
        return;
    abort_query(q, "query cancelled");
}

int ch_query_status(const struct ch_query *q)
{
    return q->status;
}

const struct chc_err *ch_query_error(const struct ch_query *q)
{
    return &q->err;
}

int ch_query_exception_code(const struct ch_query *q)
{
    return q->exc_code;
}

const char *ch_query_body(const struct ch_query *q, size_t *len)
{
    if (len)
        *len = q->body.len;
    return q->body.buf;
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

/* ------------------------------------------------------------------- TSV */

struct ch_field {
    size_t off, len;
    int null;
};

struct ch_rows {
    size_t nrows, ncols;
    struct ch_field *f; /* nrows * ncols, row-major */
    char *data;         /* unescaped fields, each NUL-terminated */
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* One pass over the body. Without r it counts (fields, output bytes); with r
 * it fills r->f and r->data, which were sized by the counting pass. */
static int tsv_scan(const char *s, size_t len, struct ch_rows *r, size_t *ret_nrows,
                    size_t *ret_ncols, size_t *ret_nfields, size_t *ret_bytes,
                    struct chc_err *err)
{
    size_t i = 0, o = 0, nf = 0, nrows = 0, ncols = 0, col;

    while (i < len) {
        col = 0;
        for (;;) {
            size_t fstart = o;
            int null = 0;

            if (i + 1 < len && s[i] == '\\' && s[i + 1] == 'N' &&
                (i + 2 == len || s[i + 2] == '\t' || s[i + 2] == '\n')) {
                null = 1;
                i += 2;
            }
            while (i < len && s[i] != '\t' && s[i] != '\n') {
                char ch = s[i++];

                if (ch == '\\') {
                    if (i >= len)
                        return chc_err_set(err, CHC_EPARSE,
                                           "TSV row %zu: backslash at the end of the data",
                                           nrows + 1);
                    ch = s[i++];
                    switch (ch) {
                    case 'a': ch = '\a'; break;
                    case 'b': ch = '\b'; break;
                    case 'f': ch = '\f'; break;
                    case 'n': ch = '\n'; break;
                    case 'r': ch = '\r'; break;
                    case 't': ch = '\t'; break;
                    case 'v': ch = '\v'; break;
                    case '0': ch = '\0'; break;
                    case 'x': {
                        int hi = i < len ? hexval(s[i]) : -1;
                        int lo = i + 1 < len ? hexval(s[i + 1]) : -1;

                        if (hi < 0 || lo < 0)
                            return chc_err_set(err, CHC_EPARSE,
                                               "TSV row %zu: bad \\x escape", nrows + 1);
                        ch = (char)(hi * 16 + lo);
                        i += 2;
                        break;
                    }
                    default:
                        break; /* \\ \' \" \/ and any other byte: itself */
                    }
                }
                if (r)
                    r->data[o] = ch;
                o++;
            }
            if (r) {
                r->f[nf].off = fstart;
                r->f[nf].len = o - fstart;
                r->f[nf].null = null;
                r->data[o] = '\0';
            }
            o++;
            nf++;
            col++;
            if (i < len && s[i] == '\t') {
                i++;
                continue;
            }
            break;
        }
        if (i < len)
            i++; /* '\n' */
        if (nrows == 0)
            ncols = col;
        else if (col != ncols)
            return chc_err_set(err, CHC_EPARSE, "TSV row %zu has %zu fields, expected %zu",
                               nrows + 1, col, ncols);
        nrows++;
    }
    *ret_nrows = nrows;
    *ret_ncols = ncols;
    *ret_nfields = nf;
    *ret_bytes = o;
    return 0;
}

int ch_tsv_parse(const char *body, size_t len, struct ch_rows **ret, struct chc_err *err)
{
    size_t nrows = 0, ncols = 0, nf = 0, bytes = 0, n2, c2, f2, b2;
    struct ch_rows *r = NULL;
    int rc;

    if (!body && len)
        return chc_err_set(err, -EINVAL, "ch_tsv_parse: no data");
    rc = tsv_scan(body, len, NULL, &nrows, &ncols, &nf, &bytes, err);
    if (rc < 0)
        goto fail;
    r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    r->f = calloc(nf ? nf : 1, sizeof(*r->f));
    r->data = malloc(bytes ? bytes : 1);
    if (!r->f || !r->data)
        goto oom;
    r->nrows = nrows;
    r->ncols = ncols;
    rc = tsv_scan(body, len, r, &n2, &c2, &f2, &b2, err);
    if (rc < 0)
        goto fail;
    *ret = r;
    return 0;
oom:
    rc = chc_err_set(err, -ENOMEM, "out of memory parsing %zu bytes of TSV", len);
fail:
    ch_rows_free(r);
    return rc;
}

size_t ch_rows_count(const struct ch_rows *r)
{
    return r ? r->nrows : 0;
}

size_t ch_rows_ncols(const struct ch_rows *r)
{
    return r ? r->ncols : 0;
}

static const struct ch_field *field(const struct ch_rows *r, size_t row, size_t col)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return NULL;
    return &r->f[row * r->ncols + col];
}

const char *ch_rows_get(const struct ch_rows *r, size_t row, size_t col)
{
    const struct ch_field *f = field(r, row, col);

    return f && !f->null ? r->data + f->off : NULL;
}

size_t ch_rows_len(const struct ch_rows *r, size_t row, size_t col)
{
    const struct ch_field *f = field(r, row, col);

    return f ? f->len : 0;
}

struct ch_rows *ch_rows_free(struct ch_rows *r)
{
    if (!r)
        return NULL;
    free(r->f);
    free(r->data);
    free(r);
    return NULL;
}

/* pipe.c — pipes: one source SELECT streamed into one destination INSERT
 * through this process, never held whole.
 *
 * A pipe is two queries of query.c run by the client (a streamed SELECT, a
 * chunked INSERT) joined by a bounded ring buffer (ring.c); the SELECT's
 * bytes pass through a compressed-stream follower (cstream.c) so that an
 * exception at its end can be found. curl callbacks only set pause/kick
 * flags and every curl_easy_pause()/ch__client_add() runs from run_kicks(),
 * which the client calls after curl_multi_socket_action() has returned
 * (its after_io hook). A second timer (`throttle`) resumes uploads held back
 * by the rate limits (bucket.c). Compression is probed once per source
 * server and client. The client knows pipes only through the hooks set
 * here. Logs at debug level at most.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/ch.h"
#include "chcopier/obs/log.h"
#include "ch/bucket.h"
#include "ch/client.h"
#include "ch/cstream.h"
#include "ch/query.h"
#include "ch/response.h"
#include "ch/ring.h"
#include "ch/url.h"

#include "base/banned.h"

/* What the compression probe found out about a source server. */
struct compress_note {
    struct compress_note *next;
    int broken;
    char hostport[]; /* of the source server */
};

enum pipe_side {
    PIPE_SRC,
    PIPE_DST,
    _PIPE_SIDE_MAX,
};

enum pipe_state {
    PIPE_PROBING, /* on c->pipes, the compression probe runs */
    PIPE_RUNNING, /* on c->pipes, the SELECT (and later the INSERT) run */
    PIPE_DONE,    /* cb ran (or is running) */
    _PIPE_STATE_MAX,
};

struct ch_pipe {
    struct ch_client *client; /* NULL once cb ran */
    enum pipe_state state;
    struct ch_query *side[_PIPE_SIDE_MAX];
    int side_done[_PIPE_SIDE_MAX]; /* its internal callback ran (or never will) */
    int paused[_PIPE_SIDE_MAX];    /* its curl callback answered ..._PAUSE */
    int kick[_PIPE_SIDE_MAX];      /* run_kicks() should resume it */
    int dst_added;                 /* the INSERT is in the multi */
    int start_dst;                 /* run_kicks() should add it (first byte arrived) */
    int throttled;                 /* the upload waits for c->throttle */
    int src_ok;                    /* the SELECT ended cleanly: the upload may end */
    int garbled;                   /* the source stream did not decode */
    int suspect;                   /* it ended like an exception: the INSERT's parse decides */
    int compressed;                /* compress=1 / decompress=1 (else plain Native) */
    struct ch_query *probe;        /* while PIPE_PROBING */
    char *plain_url[_PIPE_SIDE_MAX];
    ch_pipe_cb cb;
    void *data;
    struct ch_ring ring;
    struct ch_cstream *dec;
    struct ch_bucket rate;
    unsigned long long bytes;
    int status, exc_code;
    struct chc_err err;
    struct ch_pipe *prev, *next; /* c->pipes */
};

/* ------------------------------------------------------------------ pipes */

/* Non-2xx source bodies and undecodable tails kept for the message. */
#define PIPE_ERROR_BODY_MAX ((size_t)64 << 10)
/* ClickHouse 18.16 (Poco) answers 400 to request lines over 16 KiB; the
 * INSERT travels in the URL. */
#define PIPE_URL_MAX ((size_t)16000)

static const char *const side_name[_PIPE_SIDE_MAX] = {"source", "destination"};

/* Which half of p q is; the compression probe counts as the source. */
static enum pipe_side side_of(const struct ch_pipe *p, const struct ch_query *q)
{
    return q == p->side[PIPE_DST] ? PIPE_DST : PIPE_SRC;
}

static void run_kicks(struct ch_client *c);
static void pipe_destroy(struct ch_pipe *p);

/* ---- rate limits ---- */

static void on_throttle(uv_timer_t *h)
{
    struct ch_client *c = h->data;
    struct ch_pipe *p;

    for (p = c->pipes; p; p = p->next) {
        if (p->throttled) {
            p->throttled = 0;
            p->kick[PIPE_DST] = 1;
            c->kick_pending = 1;
        }
    }
    run_kicks(c);
}

static void throttle_arm(struct ch_client *c, uint64_t wait_ns)
{
    uint64_t ms = (wait_ns + 999999) / 1000000, due;

    if (ms == 0)
        ms = 1;
    due = uv_now(c->loop) + ms;
    if (uv_is_active((uv_handle_t *)&c->throttle) && c->throttle_due <= due)
        return;
    c->throttle_due = due;
    (void)uv_timer_start(&c->throttle, on_throttle, ms, 0);
}

void ch_client_set_rate(struct ch_client *c, long long bytes_per_second)
{
    struct ch_pipe *p;

    if (!c || c->closing)
        return;
    ch__bucket_init(&c->rate, bytes_per_second > 0 ? bytes_per_second : 0);
    /* Throttled uploads re-evaluate against the new rate. */
    for (p = c->pipes; p; p = p->next) {
        if (p->throttled) {
            p->throttled = 0;
            p->kick[PIPE_DST] = 1;
            c->kick_pending = 1;
        }
    }
    run_kicks(c);
}

/* ---- errors ---- */

/* The pipe's error is the first one: a later one is a consequence. */
static void pipe_fail_from(struct ch_pipe *p, const struct ch_query *q)
{
    if (p->status)
        return;
    p->status = q->status;
    p->exc_code = q->exc_code;
    chc_err_set(&p->err, q->status, "%s %s", side_name[side_of(p, q)], q->err.msg);
}

static void pipe_cancelled(struct ch_pipe *p, const char *why)
{
    if (p->status)
        return;
    p->status = CHC_ECANCELED;
    chc_err_set(&p->err, CHC_ECANCELED, "%s -> %s: %s", p->side[PIPE_SRC]->hostport,
                p->side[PIPE_DST]->hostport, why);
}

static void keep_bytes(struct chc_buf *b, const void *data, size_t n)
{
    size_t room = b->max > b->len ? b->max - b->len : 0;

    if (n > room)
        n = room;
    if (n && chc_buf_add(b, data, n) < 0)
        return; /* out of memory: only the message suffers */
}

/* The exception text that ends the decoded source stream, if any. *ret
 * points into *ret_buf (malloc'ed, the caller frees it). 1 found, 0 not,
 * -ENOMEM. */
static int stream_exception(struct ch_pipe *p, char **ret_buf, const char **ret, size_t *ret_len)
{
    const char *exc;
    char *tail;
    size_t n;

    *ret_buf = NULL;
    if (!ch__cstream_at_boundary(p->dec) || p->dec->total_out == 0)
        return 0;
    tail = malloc(CH_CSTREAM_WINDOW);
    if (!tail)
        return -ENOMEM;
    n = ch__cstream_tail(p->dec, tail, CH_CSTREAM_WINDOW);
    exc = ch__find_stream_exception(tail, n);
    if (!exc) {
        free(tail);
        return 0;
    }
    *ret_buf = tail;
    *ret = exc;
    *ret_len = n - (size_t)(exc - tail);
    return 1;
}

/* A non-2xx source body is compressed like the data (an exception thrown
 * before the first block), or plain text (refused before the query ran, e.g.
 * authentication): replace it by its decompressed text when it decodes. */
static void decode_error_body(struct ch_pipe *p, struct ch_query *q)
{
    struct ch_cstream *d = p->dec; /* unused: nothing of this response reached it */
    char *text;
    size_t n;

    if (!q->body.len)
        return;
    ch__cstream_init(d, 0);
    if (ch__cstream_feed(d, q->body.buf, q->body.len) < 0 || !ch__cstream_at_boundary(d))
        return;
    text = malloc(CH_CSTREAM_WINDOW);
    if (!text)
        return;
    n = ch__cstream_tail(d, text, CH_CSTREAM_WINDOW);
    chc_buf_reset(&q->body);
    keep_bytes(&q->body, text, n);
    free(text);
}

/* Translate the end of the SELECT (from collect_done). Success means: 2xx,
 * the transfer completed, the stream ends at a block boundary and not with
 * an exception; only then may the upload send its last chunk. */
static void finish_pipe_src(struct ch_query *q, CURLcode rc)
{
    struct ch_pipe *p = q->pipe;
    const char *exc, *start;
    char *buf;
    size_t len;
    long http = 0;
    int r;

    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &http);
    if (http < 200 || http >= 300) {
        decode_error_body(p, q);
        ch__query_finish(q, rc);
        return;
    }
    if (p->garbled) {
        start = ch__mem_find(q->body.buf, q->body.len, "Code: ");
        if (start &&
            ch__exception_code_at(start, q->body.len - (size_t)(start - q->body.buf)) > 0) {
            ch__query_fail_exception(q, http, start, q->body.len - (size_t)(start - q->body.buf));
            return;
        }
        ch__query_fail(q, CHC_ECH_HTTP, "cannot decode the compressed result: ", p->dec->why,
                       strlen(p->dec->why));
        return;
    }
    /* An end that looks like an exception may be data (a String value
     * ending so). Only the INSERT can tell: hand it everything; an exception
     * text never parses as Native data (its "Cod" reads as 67 columns of
     * 111 rows and a 100-byte name), so a real one fails the INSERT and
     * blame_source_exception() reports it, while data commits. */
    r = stream_exception(p, &buf, &exc, &len);
    if (r < 0) {
        ch__query_fail(q, -ENOMEM, "out of memory checking the end of the result", NULL, 0);
        return;
    }
    free(buf);
    if (r > 0 && rc == CURLE_OK) {
        p->suspect = 1;
        chc_log_debug("ch: pipe %s -> %s: the result ends like an exception; the INSERT decides",
                      q->hostport, p->side[PIPE_DST]->hostport);
    }
    if (rc == CURLE_OK && !ch__cstream_at_boundary(p->dec)) {
        ch__query_fail(q, CHC_ECH_HTTP, "the compressed result ends inside a block", NULL, 0);
        return;
    }
    ch__query_finish(q, rc); /* the body is empty: 0 or the curl error */
    if (q->status == 0)
        p->src_ok = 1;
}

/* The INSERT failed while the SELECT had streamed an exception (while it
 * still ran, or at its end: p->suspect): the destination choked on that
 * text, the source is the one to blame. */
static void blame_source_exception(struct ch_pipe *p)
{
    struct ch_query *src = p->side[PIPE_SRC];
    const char *exc;
    char *buf;
    size_t len;

    if (p->status || p->garbled || (p->src_ok && !p->suspect))
        return;
    if (stream_exception(p, &buf, &exc, &len) <= 0)
        return;
    ch__query_fail_exception(src, 200, exc, len);
    pipe_fail_from(p, src);
    free(buf);
}

/* ---- the two transfers ---- */

static size_t on_pipe_src_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct ch_query *q = userp;
    struct ch_pipe *p = q->pipe;
    size_t n = size * nmemb;
    long http = 0;

    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &http);
    if (http < 200 || http >= 300 || p->garbled) {
        /* An error text, or what follows a point where the stream stopped
         * decoding: keep enough for the message, then stop the transfer
         * rather than read a result that cannot be used. */
        if (q->body.len >= q->body.max)
            return CURL_WRITEFUNC_ERROR;
        keep_bytes(&q->body, ptr, n);
        return n;
    }
    if (p->dst_added && p->side[PIPE_DST]->state != QUERY_RUNNING)
        return n; /* the INSERT is over; this transfer is about to be aborted */
    if (n > p->ring.cap)
        return CURL_WRITEFUNC_ERROR; /* curl hands out at most 16 KiB */
    if (ch__ring_space(&p->ring) < n) {
        p->paused[PIPE_SRC] = 1; /* curl delivers the same bytes again */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (ch__cstream_feed(p->dec, ptr, n) < 0) {
        /* Keep what did not decode: maybe an exception in plain text. */
        p->garbled = 1;
        if (p->dec->fail_in_header) {
            keep_bytes(&q->body, p->dec->hdr, CH_CSTREAM_HEADER);
            keep_bytes(&q->body, ptr + p->dec->fail_pos, n - p->dec->fail_pos);
        }
        return n;
    }
    ch__ring_push(&p->ring, ptr, n);
    if (!p->dst_added && !p->start_dst) {
        p->start_dst = 1;
        p->client->kick_pending = 1;
    }
    if (p->paused[PIPE_DST]) {
        p->kick[PIPE_DST] = 1;
        p->client->kick_pending = 1;
    }
    return n;
}

static size_t on_pipe_dst_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct ch_query *q = userp;
    struct ch_pipe *p = q->pipe;
    struct ch_client *c = p->client;
    size_t n = size * nitems;
    uint64_t wait_ns = 0, now;

    if (p->ring.len == 0) {
        if (p->src_ok)
            return 0; /* the last chunk: the INSERT may commit */
        p->paused[PIPE_DST] = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (n > p->ring.len)
        n = p->ring.len;
    if (p->rate.rate > 0 || c->rate.rate > 0) {
        now = uv_hrtime();
        n = ch__bucket_allow(&p->rate, now, n, &wait_ns);
        n = ch__bucket_allow(&c->rate, now, n, &wait_ns);
        if (n == 0) {
            p->paused[PIPE_DST] = 1;
            p->throttled = 1;
            throttle_arm(c, wait_ns);
            return CURL_READFUNC_PAUSE;
        }
        ch__bucket_take(&p->rate, n);
        ch__bucket_take(&c->rate, n);
    }
    ch__ring_pop(&p->ring, buf, n);
    p->bytes += n;
    if (p->paused[PIPE_SRC]) {
        p->kick[PIPE_SRC] = 1;
        c->kick_pending = 1;
    }
    return n;
}

/* Closing an INSERT connection: keep what the server sent that curl did not
 * read. ClickHouse answers a failed INSERT and closes the connection with
 * our chunks unread, which resets it; when that reset beats curl's next
 * read, curl's send fails and the answer is still in the socket. */
static int on_dst_closesocket(void *clientp, curl_socket_t fd)
{
    struct ch_query *q = clientp;
    char buf[4096];
    ssize_t n;
    int i;

    for (i = 0; i < 16; i++) {
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            break;
        keep_bytes(&q->salvage, buf, (size_t)n);
    }
    return close(fd);
}

/* The INSERT's outcome; a transfer that broke may have an answer salvaged. */
static void finish_pipe_dst(struct ch_query *q, CURLcode rc)
{
    const char *text;
    size_t len;
    long http = 0;

    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &http);
    if (rc == CURLE_OK || http != 0 ||
        !ch__salvaged_answer(q->salvage.buf, q->salvage.len, &http, &text, &len)) {
        ch__query_finish(q, rc);
        return;
    }
    chc_log_debug("ch: %s: INSERT answer read after '%s'", q->hostport, curl_easy_strerror(rc));
    ch__query_fail_exception(q, http, text, len);
}

/* Every close of an INSERT connection is a reset. ClickHouse 18.16 takes a
 * clean end of the connection at a chunk boundary for the end of the body
 * and commits what it got; a reset makes its read fail, so the INSERT does. */
static int on_dst_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    struct linger lg = {1, 0};

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKOPT_OK;
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
        return CURL_SOCKOPT_ERROR;
    return CURL_SOCKOPT_OK;
}

static void pipe_abort_running(struct ch_pipe *p, const char *why)
{
    int s;

    for (s = 0; s < _PIPE_SIDE_MAX; s++)
        if (p->side[s]->state == QUERY_RUNNING)
            ch__client_abort(p->side[s], why);
    if (!p->dst_added) {
        p->start_dst = 0;
        p->side_done[PIPE_DST] = 1; /* the INSERT never starts */
    }
}

/* Do what the flags ask. Never from inside a curl callback: from run_kicks()
 * after curl_multi_socket_action() returned, or from a query callback. */
static void pipe_kick(struct ch_pipe *p)
{
    struct chc_err err = CHC_ERR_INIT;
    struct ch_query *q;
    CURLcode rc;
    int s;

    if (p->start_dst) {
        p->start_dst = 0;
        q = p->side[PIPE_DST];
        if (ch__client_add(p->client, q, &err) < 0) {
            if (!p->status) {
                p->status = err.code;
                chc_err_set(&p->err, err.code, "destination %s", err.msg);
            }
            pipe_abort_running(p, "query cancelled: destination failed");
            return;
        }
        p->dst_added = 1;
        chc_log_debug("ch: pipe %s -> %s: first bytes, INSERT started", p->side[PIPE_SRC]->hostport,
                      q->hostport);
    }
    for (s = 0; s < _PIPE_SIDE_MAX; s++) {
        q = p->side[s];
        if (!p->kick[s])
            continue;
        p->kick[s] = 0;
        if (!p->paused[s] || q->state != QUERY_RUNNING)
            continue;
        p->paused[s] = 0;
        /* Resuming the SELECT calls on_pipe_src_write() from here with the
         * bytes it refused; that may set kick[PIPE_DST], handled next. */
        rc = curl_easy_pause(q->easy, CURLPAUSE_CONT);
        if (rc != CURLE_OK && q->state == QUERY_RUNNING) {
            if (!p->status) {
                p->status = CHC_ECH_HTTP;
                chc_err_set(&p->err, CHC_ECH_HTTP, "%s %s: cannot resume the transfer: %s",
                            side_name[s], q->hostport, curl_easy_strerror(rc));
            }
            pipe_abort_running(p, "query cancelled: pipe failed");
            return;
        }
    }
}

static void run_kicks(struct ch_client *c)
{
    struct ch_pipe *p;

    while (c->kick_pending && !c->closing) {
        c->kick_pending = 0;
        for (p = c->pipes; p; p = p->next)
            pipe_kick(p);
    }
}

static void pipe_finish(struct ch_pipe *p)
{
    struct ch_client *c = p->client;

    if (p->prev)
        p->prev->next = p->next;
    else
        c->pipes = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->client = NULL;
    p->state = PIPE_DONE;
    chc_log_debug("ch: pipe %s -> %s: %llu bytes, %s", p->side[PIPE_SRC]->hostport,
                  p->side[PIPE_DST]->hostport, p->bytes, p->status ? p->err.msg : "ok");
    p->cb(p, p->data); /* may free p */
}

/* The callback of both internal queries, run from run_done(). */
static void on_pipe_side_done(struct ch_query *q, void *data)
{
    struct ch_pipe *p = data;
    enum pipe_side s = side_of(p, q), o = s == PIPE_SRC ? PIPE_DST : PIPE_SRC;

    p->side_done[s] = 1;
    p->paused[s] = p->kick[s] = 0;
    if (q->status < 0) {
        if (s == PIPE_DST && q->status != CHC_ECANCELED)
            blame_source_exception(p);
        pipe_fail_from(p, q);
        pipe_abort_running(p, s == PIPE_SRC ? "query cancelled: source failed"
                                            : "query cancelled: destination failed");
    } else if (s == PIPE_SRC) {
        if (p->status < 0 || p->client->closing) {
            pipe_abort_running(p, "query cancelled: pipe cancelled");
        } else {
            /* Let the upload reach its end (and start it for an empty result). */
            if (!p->dst_added)
                p->start_dst = 1;
            p->kick[PIPE_DST] = 1;
            pipe_kick(p);
        }
    }
    if (p->side_done[o])
        pipe_finish(p);
}

/* ---- compression: probed once per source server and client ---- */

/* The Debian build of ClickHouse 18.16 (system Poco) answers compress=1 with
 * an empty HTTP 200 body whenever the whole result fits in its first 1 MiB
 * buffer: a small result would silently arrive as no rows. A one-row probe
 * tells whether a server has that bug; pipes from it then move plain Native
 * (no compress/decompress). */
static const char PROBE_SQL[] = "SELECT 1 AS chcopier_probe FORMAT Native";

static const struct compress_note *note_find(const struct ch_client *c, const char *hostport)
{
    const struct compress_note *n;

    for (n = c->notes; n; n = n->next)
        if (!strcmp(n->hostport, hostport))
            return n;
    return NULL;
}

static void note_add(struct ch_client *c, const char *hostport, int broken)
{
    size_t len = strlen(hostport) + 1;
    struct compress_note *n = malloc(sizeof(*n) + len);

    if (!n)
        return; /* the next pipe probes again */
    n->broken = broken;
    memcpy(n->hostport, hostport, len);
    n->next = c->notes;
    c->notes = n;
}

/* Switch both sides to plain Native (the queries were set up compressed). */
static int pipe_use_mode(struct ch_pipe *p, int compressed)
{
    CURLcode cc = CURLE_OK;
    int s;

    p->compressed = compressed;
    ch__cstream_init(p->dec, !compressed);
    for (s = 0; s < _PIPE_SIDE_MAX && !compressed && cc == CURLE_OK; s++)
        cc = curl_easy_setopt(p->side[s]->easy, CURLOPT_URL, p->plain_url[s]);
    return cc == CURLE_OK ? 0 : -ENOMEM;
}

/* Hand the SELECT to curl; the INSERT follows its first byte. */
static int pipe_go(struct ch_pipe *p, struct chc_err *err)
{
    int r;

    r = ch__client_add(p->client, p->side[PIPE_SRC], err);
    if (r < 0)
        return r;
    p->state = PIPE_RUNNING;
    chc_log_debug("ch: pipe %s -> %s: started (%s)", p->side[PIPE_SRC]->hostport,
                  p->side[PIPE_DST]->hostport, p->compressed ? "compressed" : "plain");
    return 0;
}

static void on_pipe_probe_done(struct ch_query *q, void *data)
{
    struct ch_pipe *p = data;
    struct chc_err err = CHC_ERR_INIT;
    int broken, r;

    p->probe = NULL;
    if (q->status < 0) {
        pipe_fail_from(p, q); /* q->side is PIPE_SRC: "source host:port: ..." */
    } else if (!p->status && !p->client->closing) {
        /* Healthy: a compressed stream of whole blocks with data in it. */
        ch__cstream_init(p->dec, 0);
        broken = ch__cstream_feed(p->dec, q->body.buf, q->body.len) < 0 ||
                 !ch__cstream_at_boundary(p->dec) || p->dec->total_out == 0;
        chc_log_debug("ch: %s: compress=1 %s", q->hostport,
                      broken ? "loses small results, pipes from it move plain Native" : "works");
        note_add(p->client, q->hostport, broken);
        r = pipe_use_mode(p, !broken);
        if (r == 0)
            r = pipe_go(p, &err);
        else
            chc_err_set(&err, r, "%s: cannot set up the request", q->hostport);
        if (r < 0 && !p->status) {
            p->status = r;
            chc_err_set(&p->err, r, "source %s", err.msg);
        }
    }
    ch_query_free(q);
    if (p->state == PIPE_PROBING) { /* nothing else started */
        p->side_done[PIPE_SRC] = p->side_done[PIPE_DST] = 1;
        pipe_finish(p);
    }
}

/* Set up one side; url is the compressed variant, plain the other. */
static int pipe_side_url(const struct ch_query_params *qp, enum pipe_side side, struct chc_buf *url,
                         char **ret_plain, struct chc_err *err)
{
    struct chc_buf plain = CHC_BUF_INIT;
    int r;

    r = ch_build_url(qp, url, err);
    if (r < 0)
        return r;
    r = chc_buf_addstr(&plain, url->buf);
    if (side == PIPE_SRC) {
        if (r == 0)
            r = chc_buf_addstr(url, strchr(url->buf, '?') ? "&compress=1" : "?compress=1");
    } else {
        /* The body is all data: the INSERT goes in the URL. */
        if (r == 0)
            r = chc_buf_addstr(url, strchr(url->buf, '?') ? "&decompress=1&query="
                                                          : "?decompress=1&query=");
        if (r == 0)
            r = chc_buf_add_urlenc(url, qp->sql);
        if (r == 0)
            r = chc_buf_addstr(&plain, strchr(plain.buf, '?') ? "&query=" : "?query=");
        if (r == 0)
            r = chc_buf_add_urlenc(&plain, qp->sql);
    }
    if (r < 0) {
        chc_buf_release(&plain);
        return chc_err_set(err, -ENOMEM, "out of memory");
    }
    if (url->len > PIPE_URL_MAX) {
        chc_buf_release(&plain);
        return chc_err_set(err, -EINVAL, "%s URL with the INSERT is %zu bytes, more than %zu",
                           side_name[side], url->len, PIPE_URL_MAX);
    }
    *ret_plain = chc_buf_take(&plain, NULL);
    return *ret_plain ? 0 : chc_err_set(err, -ENOMEM, "out of memory");
}

/* ---- the client's hooks ---- */

/* ch_client_free(): every pipe fails as cancelled, before the client aborts
 * its transfers with its other queries. */
static void on_client_closing(struct ch_client *c)
{
    struct ch_pipe *p;

    for (p = c->pipes; p; p = p->next)
        pipe_cancelled(p, "pipe cancelled: client closing");
}

static void on_client_release(struct ch_client *c)
{
    while (c->notes) {
        struct compress_note *n = c->notes;

        c->notes = n->next;
        free(n);
    }
}

static const struct ch__client_hooks pipe_hooks = {
    .after_io = run_kicks,
    .closing = on_client_closing,
    .release = on_client_release,
};

int ch_pipe_start(struct ch_client *c, const struct ch_pipe_params *pp, ch_pipe_cb cb, void *data,
                  struct ch_pipe **ret, struct chc_err *err)
{
    struct chc_buf url[_PIPE_SIDE_MAX] = {CHC_BUF_INIT, CHC_BUF_INIT}, probe_url = CHC_BUF_INIT;
    const struct compress_note *note = NULL;
    struct ch_query_params sp, dp, pr;
    struct ch_pipe *p = NULL;
    struct ch_query *q;
    CURLcode cc = CURLE_OK;
    size_t cap;
    int r;

    if (!c || !pp || !cb || !ret || !pp->src.sql || !pp->dst.sql) {
        r = chc_err_set(err, -EINVAL, "ch_pipe_start: missing client, params, sql or callback");
        goto fail;
    }
    if (c->closing) {
        r = chc_err_set(err, CHC_ECANCELED, "ClickHouse client is closing");
        goto fail;
    }
    c->hooks = &pipe_hooks;
    cap = pp->buffer_bytes ? pp->buffer_bytes : CH_PIPE_BUFFER_DEFAULT;
    if (cap < CH_PIPE_BUFFER_MIN || cap > CH_PIPE_BUFFER_MAX) {
        r = chc_err_set(err, -EINVAL, "pipe buffer of %zu bytes: must be %zu to %zu", cap,
                        CH_PIPE_BUFFER_MIN, CH_PIPE_BUFFER_MAX);
        goto fail;
    }
    if (pp->max_bytes_per_second < 0) {
        r = chc_err_set(err, -EINVAL, "pipe rate %lld: must be >= 0", pp->max_bytes_per_second);
        goto fail;
    }
    if (pp->compression != CH_PIPE_COMPRESS_AUTO && pp->compression != CH_PIPE_COMPRESS_UNCHECKED &&
        pp->compression != CH_PIPE_COMPRESS_NEVER) {
        r = chc_err_set(err, -EINVAL, "pipe compression %d: unknown", (int)pp->compression);
        goto fail;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto oom;
    /* Both sides stream: the SELECT's exceptions are found in the stream. */
    sp = pp->src;
    sp.stream = 1;
    dp = pp->dst;
    dp.stream = 1;
    r = pipe_side_url(&sp, PIPE_SRC, &url[PIPE_SRC], &p->plain_url[PIPE_SRC], err);
    if (r == 0)
        r = pipe_side_url(&dp, PIPE_DST, &url[PIPE_DST], &p->plain_url[PIPE_DST], err);
    if (r < 0)
        goto fail;
    p->dec = malloc(sizeof(*p->dec));
    if (!p->dec || ch__ring_init(&p->ring, cap) < 0)
        goto oom;
    ch__cstream_init(p->dec, 0);
    ch__bucket_init(&p->rate, pp->max_bytes_per_second);
    p->cb = cb;
    p->data = data;
    r = ch__query_create(c, &sp, url[PIPE_SRC].buf, sp.sql, on_pipe_side_done, p,
                         &p->side[PIPE_SRC], err);
    if (r < 0)
        goto fail;
    r = ch__query_create(c, &dp, url[PIPE_DST].buf, NULL, on_pipe_side_done, p, &p->side[PIPE_DST],
                         err);
    if (r < 0)
        goto fail;

    q = p->side[PIPE_SRC];
    q->pipe = p;
    q->finish = finish_pipe_src;
    chc_buf_init(&q->body, PIPE_ERROR_BODY_MAX);
    cc = curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_pipe_src_write);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    q = p->side[PIPE_DST];
    q->pipe = p;
    q->finish = finish_pipe_dst;
    q->read_on_error = 1;
    chc_buf_init(&q->salvage, PIPE_ERROR_BODY_MAX);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_READFUNCTION, on_pipe_dst_read);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_READDATA, q);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_SOCKOPTFUNCTION, on_dst_sockopt);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_CLOSESOCKETFUNCTION, on_dst_closesocket);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_CLOSESOCKETDATA, q);
    if (cc == CURLE_OK) /* a connection of its own, closed (reset) at its end */
        cc = curl_easy_setopt(q->easy, CURLOPT_FRESH_CONNECT, 1L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_FORBID_REUSE, 1L);
    if (cc != CURLE_OK) {
        r = chc_err_set(err, cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : CHC_ECH_HTTP,
                        "cannot set up the pipe: %s", curl_easy_strerror(cc));
        goto fail;
    }

    p->client = c;
    if (pp->compression == CH_PIPE_COMPRESS_AUTO)
        note = note_find(c, p->side[PIPE_SRC]->hostport);
    if (pp->compression == CH_PIPE_COMPRESS_AUTO && !note) {
        /* The probe: no query_id (the caller's is for the SELECT), no
         * settings; the same server, credentials and timeouts. */
        memset(&pr, 0, sizeof(pr));
        pr.replica = sp.replica;
        pr.stream = 1;
        pr.timeout_ms = sp.timeout_ms;
        pr.connect_timeout_ms = sp.connect_timeout_ms;
        memcpy(pr.redact, sp.redact, sizeof(pr.redact));
        r = ch_build_url(&pr, &probe_url, err);
        if (r == 0)
            r = chc_buf_addstr(&probe_url,
                               strchr(probe_url.buf, '?') ? "&compress=1" : "?compress=1");
        if (r == 0)
            r = ch__query_create(c, &pr, probe_url.buf, PROBE_SQL, on_pipe_probe_done, p, &p->probe,
                                 err);
        if (r == 0)
            r = ch__client_add(c, p->probe, err);
        if (r < 0)
            goto fail;
        p->state = PIPE_PROBING;
    } else {
        r = pipe_use_mode(p, note ? !note->broken : pp->compression == CH_PIPE_COMPRESS_UNCHECKED);
        if (r < 0) {
            r = chc_err_set(err, r, "out of memory");
            goto fail;
        }
        r = pipe_go(p, err);
        if (r < 0)
            goto fail;
    }
    p->next = c->pipes;
    if (c->pipes)
        c->pipes->prev = p;
    c->pipes = p;
    chc_buf_release(&url[PIPE_SRC]);
    chc_buf_release(&url[PIPE_DST]);
    chc_buf_release(&probe_url);
    *ret = p;
    return 0;
oom:
    r = chc_err_set(err, -ENOMEM, "out of memory");
fail:
    chc_buf_release(&url[PIPE_SRC]);
    chc_buf_release(&url[PIPE_DST]);
    chc_buf_release(&probe_url);
    if (p) {
        ch__query_destroy(p->probe); /* not in the multi: query_add failed */
        pipe_destroy(p);
    }
    return r;
}

void ch_pipe_cancel(struct ch_pipe *p)
{
    int active;

    if (!p || p->state == PIPE_DONE)
        return;
    /* Something still to stop: the probe, a transfer, or an INSERT not
     * started yet. */
    active = p->state == PIPE_PROBING || p->side[PIPE_SRC]->state == QUERY_RUNNING ||
             p->side[PIPE_DST]->state == QUERY_RUNNING ||
             (!p->dst_added && !p->side_done[PIPE_DST]);
    if (!active)
        return;
    pipe_cancelled(p, "pipe cancelled");
    if (p->probe)
        ch_query_cancel(p->probe);
    else
        pipe_abort_running(p, "query cancelled: pipe cancelled");
}

static void pipe_destroy(struct ch_pipe *p)
{
    int s;

    for (s = 0; s < _PIPE_SIDE_MAX; s++) {
        ch__query_destroy(p->side[s]);
        free(p->plain_url[s]);
    }
    ch__ring_release(&p->ring);
    free(p->dec);
    free(p);
}

struct ch_pipe *ch_pipe_free(struct ch_pipe *p)
{
    if (!p)
        return NULL;
    if (p->state != PIPE_DONE)
        CHC_BUG("ch_pipe_free() before the pipe's callback ran");
    pipe_destroy(p);
    return NULL;
}

int ch_pipe_compressed(const struct ch_pipe *p)
{
    return p->compressed;
}

int ch_pipe_status(const struct ch_pipe *p)
{
    return p->status;
}

const struct chc_err *ch_pipe_error(const struct ch_pipe *p)
{
    return &p->err;
}

int ch_pipe_exception_code(const struct ch_pipe *p)
{
    return p->exc_code;
}

unsigned long long ch_pipe_bytes(const struct ch_pipe *p)
{
    return p->bytes;
}

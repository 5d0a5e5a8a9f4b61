/* transfer.c — the two transfers of a pipe and what passes between them.
 *
 * The SELECT's write callback feeds the ring buffer (ring.c) and the stream
 * follower (cstream.c) and pauses when the ring is full; the INSERT's read
 * callback drains the ring under the pipe's and the client's rate limits
 * (bucket.c, the `throttle` timer) and sends the last chunk only once the
 * SELECT ended cleanly. The INSERT's socket is reset when closed and what
 * the server had answered is salvaged from it. curl callbacks only set
 * pause/kick flags; every curl_easy_pause()/ch__client_add() runs from
 * ch__pipe_kick(), after curl has returned. Also how each side's end becomes
 * the pipe's outcome, and which side is to blame. Knows nothing of the
 * compression probe or of the pipe's callback (pipe.c).
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
#include "chcopier/ch/pipe.h"
#include "chcopier/ch/query.h"
#include "chcopier/obs/log.h"
#include "ch/bucket.h"
#include "ch/client.h"
#include "ch/cstream.h"
#include "ch/query.h"
#include "ch/response.h"
#include "ch/ring.h"
#include "ch/transfer.h"

#include "base/banned.h"

/* Non-2xx source bodies and undecodable tails kept for the message. */
#define PIPE_ERROR_BODY_MAX ((size_t)64 << 10)

/* ---- rate limits ---- */

void ch__pipe_unthrottle(struct ch_client *c)
{
    struct ch_pipe *p;

    for (p = c->pipes; p; p = p->next) {
        if (p->throttled) {
            p->throttled = 0;
            p->kick[PIPE_DST] = 1;
            c->kick_pending = 1;
        }
    }
    ch__pipe_run_kicks(c);
}

static void on_throttle(uv_timer_t *h)
{
    ch__pipe_unthrottle(h->data);
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

/* ---- errors ---- */

/* The pipe's error is the first one: a later one is a consequence. */
void ch__pipe_fail_from(struct ch_pipe *p, const struct ch_query *q)
{
    if (p->status)
        return;
    p->status = q->status;
    p->exc_code = q->exc_code;
    chc_err_set(&p->err, q->status, "%s %s", pipe_side_name(pipe_side_of(p, q)), q->err.msg);
}

void ch__pipe_cancelled(struct ch_pipe *p, const char *why)
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
     * ch__pipe_blame_source() reports it, while data commits. */
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
void ch__pipe_blame_source(struct ch_pipe *p)
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
    ch__pipe_fail_from(p, src);
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

int ch__transfer_setup(struct ch_pipe *p, struct chc_err *err)
{
    struct ch_query *q;
    CURLcode cc = CURLE_OK;

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
    if (cc != CURLE_OK)
        return chc_err_set(err, cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : CHC_ECH_HTTP,
                           "cannot set up the pipe: %s", curl_easy_strerror(cc));
    return 0;
}

/* ---- kicks ---- */

void ch__pipe_abort_running(struct ch_pipe *p, const char *why)
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

/* Do what the flags ask. Never from inside a curl callback: from ch__pipe_run_kicks()
 * after curl_multi_socket_action() returned, or from a query callback. */
void ch__pipe_kick(struct ch_pipe *p)
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
            ch__pipe_abort_running(p, "query cancelled: destination failed");
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
                            pipe_side_name(s), q->hostport, curl_easy_strerror(rc));
            }
            ch__pipe_abort_running(p, "query cancelled: pipe failed");
            return;
        }
    }
}

void ch__pipe_run_kicks(struct ch_client *c)
{
    struct ch_pipe *p;

    while (c->kick_pending && !c->closing) {
        c->kick_pending = 0;
        for (p = c->pipes; p; p = p->next)
            ch__pipe_kick(p);
    }
}

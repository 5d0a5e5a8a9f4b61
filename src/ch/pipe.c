/* pipe.c — pipes: one source SELECT streamed into one destination INSERT
 * through this process, never held whole (chcopier/ch/pipe.h documents the
 * call sequence and the outcome).
 *
 * Owns a pipe's life: the checks and set-up in ch_pipe_start() (two queries
 * of query.c whose transfers transfer.c drives), the compression probe, run
 * once per source server and client, that picks compressed or plain Native,
 * the end of each side and the pipe's callback once both ended, cancel and
 * free. Installs the client's hooks (client.h), the only way the client
 * reaches pipes. Logs at debug level at most.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/client.h"
#include "chcopier/ch/pipe.h"
#include "chcopier/ch/query.h"
#include "chcopier/ch/url.h"
#include "chcopier/obs/log.h"
#include "ch/bucket.h"
#include "ch/client.h"
#include "ch/cstream.h"
#include "ch/query.h"
#include "ch/ring.h"
#include "ch/transfer.h"

#include "base/banned.h"

/* ClickHouse 18.16 (Poco) answers 400 to request lines over 16 KiB; the
 * INSERT travels in the URL. */
#define PIPE_URL_MAX ((size_t)16000)

/* What the compression probe found out about a source server. */
struct compress_note {
    struct compress_note *next;
    int broken;
    char hostport[]; /* of the source server */
};

/* ---- the end of a pipe ---- */

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
    enum pipe_side s = pipe_side_of(p, q), o = s == PIPE_SRC ? PIPE_DST : PIPE_SRC;

    p->side_done[s] = 1;
    p->paused[s] = p->kick[s] = 0;
    if (q->status < 0) {
        if (s == PIPE_DST && q->status != CHC_ECANCELED)
            ch__pipe_blame_source(p);
        ch__pipe_fail_from(p, q);
        ch__pipe_abort_running(p, s == PIPE_SRC ? "query cancelled: source failed"
                                                : "query cancelled: destination failed");
    } else if (s == PIPE_SRC) {
        if (p->status < 0 || p->client->closing) {
            ch__pipe_abort_running(p, "query cancelled: pipe cancelled");
        } else {
            /* Let the upload reach its end (and start it for an empty result). */
            if (!p->dst_added)
                p->start_dst = 1;
            p->kick[PIPE_DST] = 1;
            ch__pipe_kick(p);
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
        ch__pipe_fail_from(p, q); /* the probe is the source: "source host:port: ..." */
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

/* ---- the client's hooks ---- */

/* ch_client_free(): every pipe fails as cancelled, before the client aborts
 * its transfers with its other queries. */
static void on_client_closing(struct ch_client *c)
{
    struct ch_pipe *p;

    for (p = c->pipes; p; p = p->next)
        ch__pipe_cancelled(p, "pipe cancelled: client closing");
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
    .after_io = ch__pipe_run_kicks,
    .closing = on_client_closing,
    .release = on_client_release,
};

/* ---- starting ---- */

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
                           pipe_side_name(side), url->len, PIPE_URL_MAX);
    }
    *ret_plain = chc_buf_take(&plain, NULL);
    return *ret_plain ? 0 : chc_err_set(err, -ENOMEM, "out of memory");
}

/* What ch_pipe_start() can refuse before building anything; *ret_cap gets
 * the ring buffer's size. */
static int pipe_check(const struct ch_client *c, const struct ch_pipe_params *pp, ch_pipe_cb cb,
                      struct ch_pipe **ret, size_t *ret_cap, struct chc_err *err)
{
    size_t cap;

    if (!c || !pp || !cb || !ret || !pp->src.sql || !pp->dst.sql)
        return chc_err_set(err, -EINVAL, "ch_pipe_start: missing client, params, sql or callback");
    if (c->closing)
        return chc_err_set(err, CHC_ECANCELED, "ClickHouse client is closing");
    cap = pp->buffer_bytes ? pp->buffer_bytes : CH_PIPE_BUFFER_DEFAULT;
    if (cap < CH_PIPE_BUFFER_MIN || cap > CH_PIPE_BUFFER_MAX)
        return chc_err_set(err, -EINVAL, "pipe buffer of %zu bytes: must be %zu to %zu", cap,
                           CH_PIPE_BUFFER_MIN, CH_PIPE_BUFFER_MAX);
    if (pp->max_bytes_per_second < 0)
        return chc_err_set(err, -EINVAL, "pipe rate %lld: must be >= 0", pp->max_bytes_per_second);
    if (pp->compression != CH_PIPE_COMPRESS_AUTO && pp->compression != CH_PIPE_COMPRESS_UNCHECKED &&
        pp->compression != CH_PIPE_COMPRESS_NEVER)
        return chc_err_set(err, -EINVAL, "pipe compression %d: unknown", (int)pp->compression);
    *ret_cap = cap;
    return 0;
}

/* A pipe of c with its two transfers set up, not started: the queries get
 * the compressed URLs, the plain ones wait in p->plain_url. */
static int pipe_new(struct ch_client *c, const struct ch_pipe_params *pp, size_t cap, ch_pipe_cb cb,
                    void *data, struct ch_pipe **ret, struct chc_err *err)
{
    struct chc_buf url[_PIPE_SIDE_MAX] = {CHC_BUF_INIT, CHC_BUF_INIT};
    struct ch_query_params sp, dp;
    struct ch_pipe *p;
    int r;

    p = calloc(1, sizeof(*p));
    if (!p)
        return chc_err_set(err, -ENOMEM, "out of memory");
    /* Both sides stream: the SELECT's exceptions are found in the stream. */
    sp = pp->src;
    sp.stream = 1;
    dp = pp->dst;
    dp.stream = 1;
    r = pipe_side_url(&sp, PIPE_SRC, &url[PIPE_SRC], &p->plain_url[PIPE_SRC], err);
    if (r == 0)
        r = pipe_side_url(&dp, PIPE_DST, &url[PIPE_DST], &p->plain_url[PIPE_DST], err);
    if (r < 0)
        goto out;
    p->dec = malloc(sizeof(*p->dec));
    if (!p->dec || ch__ring_init(&p->ring, cap) < 0) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    ch__cstream_init(p->dec, 0);
    ch__bucket_init(&p->rate, pp->max_bytes_per_second);
    p->cb = cb;
    p->data = data;
    r = ch__query_create(c, &sp, url[PIPE_SRC].buf, sp.sql, on_pipe_side_done, p,
                         &p->side[PIPE_SRC], err);
    if (r == 0)
        r = ch__query_create(c, &dp, url[PIPE_DST].buf, NULL, on_pipe_side_done, p,
                             &p->side[PIPE_DST], err);
    if (r == 0)
        r = ch__transfer_setup(p, err);
    if (r < 0)
        goto out;
    p->client = c;
    *ret = p;
    p = NULL;
out:
    chc_buf_release(&url[PIPE_SRC]);
    chc_buf_release(&url[PIPE_DST]);
    if (p)
        pipe_destroy(p);
    return r;
}

/* Send p's source server the compression probe: no query_id (the caller's
 * is for the SELECT), no settings; the same server, credentials and
 * timeouts as src. */
static int probe_start(struct ch_pipe *p, const struct ch_query_params *src, struct chc_err *err)
{
    struct ch_query_params pr = {
        .replica = src->replica,
        .stream = 1,
        .timeout_ms = src->timeout_ms,
        .connect_timeout_ms = src->connect_timeout_ms,
    };
    struct chc_buf url = CHC_BUF_INIT;
    int r;

    memcpy(pr.redact, src->redact, sizeof(pr.redact));
    r = ch_build_url(&pr, &url, err);
    if (r == 0)
        r = chc_buf_addstr(&url, strchr(url.buf, '?') ? "&compress=1" : "?compress=1");
    if (r == 0)
        r = ch__query_create(p->client, &pr, url.buf, PROBE_SQL, on_pipe_probe_done, p, &p->probe,
                             err);
    if (r == 0)
        r = ch__client_add(p->client, p->probe, err);
    if (r == 0)
        p->state = PIPE_PROBING;
    chc_buf_release(&url);
    return r;
}

int ch_pipe_start(struct ch_client *c, const struct ch_pipe_params *pp, ch_pipe_cb cb, void *data,
                  struct ch_pipe **ret, struct chc_err *err)
{
    const struct compress_note *note = NULL;
    struct ch_pipe *p = NULL;
    size_t cap = 0;
    int r;

    r = pipe_check(c, pp, cb, ret, &cap, err);
    if (r < 0)
        return r;
    c->hooks = &pipe_hooks;
    r = pipe_new(c, pp, cap, cb, data, &p, err);
    if (r < 0)
        return r;
    if (pp->compression == CH_PIPE_COMPRESS_AUTO)
        note = note_find(c, p->side[PIPE_SRC]->hostport);
    if (pp->compression == CH_PIPE_COMPRESS_AUTO && !note) {
        r = probe_start(p, &pp->src, err);
        if (r < 0)
            goto fail;
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
    *ret = p;
    return 0;
fail:
    ch__query_destroy(p->probe); /* not in the multi: ch__client_add failed */
    pipe_destroy(p);
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
    ch__pipe_cancelled(p, "pipe cancelled");
    if (p->probe)
        ch_query_cancel(p->probe);
    else
        ch__pipe_abort_running(p, "query cancelled: pipe cancelled");
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

void ch_client_set_rate(struct ch_client *c, long long bytes_per_second)
{
    if (!c || c->closing)
        return;
    ch__bucket_init(&c->rate, bytes_per_second > 0 ? bytes_per_second : 0);
    /* Throttled uploads re-evaluate against the new rate. */
    ch__pipe_unthrottle(c);
}

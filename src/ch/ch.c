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
 * Pipes are two internal queries (a streamed SELECT, a chunked INSERT) joined
 * by a bounded ring buffer; curl callbacks only set pause/kick flags on them
 * and every curl_easy_pause()/curl_multi_add_handle() runs from run_kicks(),
 * after curl_multi_socket_action() has returned. A second timer (`throttle`)
 * resumes uploads held back by the rate limits.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/ch/ch.h"
#include "chcopier/base/err.h"
#include "chcopier/obs/log.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/task.h"
#include "ch-internal.h"
#include "config.h"

#include "base/banned.h"

/* How far from the end of a body a trailing exception may start. */
#define TRAILING_EXCEPTION_WINDOW ((size_t)64 << 10)

enum query_state {
    QUERY_RUNNING, /* easy handle in the multi, on c->running */
    QUERY_PENDING, /* finished, on c->done_head, cb not run yet */
    QUERY_DONE,    /* cb ran (or is running) */
    _QUERY_STATE_MAX,
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    int events;        /* as last given to uv_poll_start() */
    int read_on_error; /* a pipe's INSERT connection: see on_poll() */
    struct ch_client *c;
    struct sock_ctx *prev, *next; /* c->socks, unlinked when closing */
};

/* What the compression probe found out about a source server. */
struct compress_note {
    struct compress_note *next;
    int broken;
    char hostport[]; /* of the source server */
};

/* A token bucket: rate bytes per second, bursts of at most rate / 10. */
struct bucket {
    long long rate; /* <= 0: unlimited */
    double tokens;
    uint64_t last_ns; /* uv_hrtime() of the last refill, 0 = never */
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
    struct ch_pipe *pipes;       /* pipes whose callback has not run */
    int kick_pending;            /* some pipe has a kick[] or start_dst flag set */
    uv_timer_t throttle;         /* resumes throttled uploads */
    uint64_t throttle_due;       /* uv_now() when throttle fires */
    struct bucket rate;          /* ch_client_set_rate(), shared by its pipes */
    struct compress_note *notes; /* source servers probed for compress=1 */
};

enum pipe_side {
    PIPE_SRC,
    PIPE_DST,
    _PIPE_SIDE_MAX,
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
    struct chc_secrets *secrets; /* the replica's password and p->redact */
    char errbuf[CURL_ERROR_SIZE];
    struct ch_pipe *pipe; /* set for the two halves of a pipe */
    enum pipe_side side;
    struct chc_buf salvage; /* a pipe INSERT: unread bytes at close */
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
    struct bucket rate;
    unsigned long long bytes;
    int status, exc_code;
    struct chc_err err;
    struct ch_pipe *prev, *next; /* c->pipes */
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

/* ------------------------------------------------ ring buffer (pure) */

int ch__ring_init(struct ch_ring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (cap == 0)
        return -EINVAL;
    r->buf = malloc(cap);
    if (!r->buf)
        return -ENOMEM;
    r->cap = cap;
    return 0;
}

void ch__ring_release(struct ch_ring *r)
{
    if (!r)
        return;
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

size_t ch__ring_space(const struct ch_ring *r)
{
    return r->cap - r->len;
}

size_t ch__ring_push(struct ch_ring *r, const void *data, size_t n)
{
    const unsigned char *src = data;
    size_t tail, first;

    if (n > r->cap - r->len)
        n = r->cap - r->len;
    if (n == 0)
        return 0;
    tail = (r->head + r->len) % r->cap;
    first = r->cap - tail < n ? r->cap - tail : n;
    memcpy(r->buf + tail, src, first);
    memcpy(r->buf, src + first, n - first);
    r->len += n;
    return n;
}

size_t ch__ring_pop(struct ch_ring *r, void *out, size_t n)
{
    unsigned char *dst = out;
    size_t first;

    if (n > r->len)
        n = r->len;
    if (n == 0)
        return 0;
    first = r->cap - r->head < n ? r->cap - r->head : n;
    memcpy(dst, r->buf + r->head, first);
    memcpy(dst + first, r->buf, n - first);
    r->head = (r->head + n) % r->cap;
    r->len -= n;
    if (r->len == 0)
        r->head = 0; /* keeps copies contiguous while the consumer keeps up */
    return n;
}

/* ------------------------------------ ClickHouse compressed stream (pure) */

/* ClickHouse refuses blocks above 1 GiB (DBMS_MAX_COMPRESSED_SIZE). */
#define CSTREAM_BLOCK_MAX ((uint32_t)1 << 30)
#define CSTREAM_MASK (CH_CSTREAM_WINDOW - 1)

void ch__cstream_init(struct ch_cstream *s, int raw)
{
    memset(s, 0, offsetof(struct ch_cstream, window));
    s->lz4 = CH_LZ4_TOKEN;
    s->raw = raw;
}

static int cstream_fail(struct ch_cstream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int cstream_fail(struct ch_cstream *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    s->failed = 1;
    return CHC_EPARSE;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Append n output bytes to the window. */
static void window_put(struct ch_cstream *s, const unsigned char *b, size_t n)
{
    size_t at, first;

    s->total_out += n;
    if (n > CH_CSTREAM_WINDOW) { /* only the end stays in the window */
        b += n - CH_CSTREAM_WINDOW;
        n = CH_CSTREAM_WINDOW;
    }
    at = (size_t)((s->total_out - n) & CSTREAM_MASK);
    first = CH_CSTREAM_WINDOW - at < n ? CH_CSTREAM_WINDOW - at : n;
    memcpy(s->window + at, b, first);
    memcpy(s->window, b + first, n - first);
}

static int cstream_out(struct ch_cstream *s, const unsigned char *b, size_t n)
{
    if (n > s->out_left)
        return cstream_fail(s, "block %llu decompresses to more than its %u bytes",
                            (unsigned long long)s->blocks, s->block_out + s->out_left);
    s->out_left -= (uint32_t)n;
    s->block_out += (uint32_t)n;
    window_put(s, b, n);
    return 0;
}

/* Copy match_len + 4 bytes from offset back (they may overlap the output). */
static int cstream_match(struct ch_cstream *s)
{
    uint32_t n = s->match_len + 4, i;
    uint64_t pos = s->total_out;

    if (n > s->out_left)
        return cstream_fail(s, "block %llu decompresses to more than its %u bytes",
                            (unsigned long long)s->blocks, s->block_out + s->out_left);
    for (i = 0; i < n; i++, pos++)
        s->window[pos & CSTREAM_MASK] = s->window[(pos - s->offset) & CSTREAM_MASK];
    s->out_left -= n;
    s->block_out += n;
    s->total_out += n;
    s->lz4 = CH_LZ4_TOKEN;
    return 0;
}

static int cstream_header(struct ch_cstream *s)
{
    uint32_t csize = le32(s->hdr + 17), usize = le32(s->hdr + 21);

    s->method = s->hdr[16];
    if (s->method != CH_CSTREAM_METHOD_NONE && s->method != CH_CSTREAM_METHOD_LZ4)
        return cstream_fail(s, "block %llu: unsupported compression method 0x%02x",
                            (unsigned long long)s->blocks, s->method);
    if (csize < 9 || csize - 9 > CSTREAM_BLOCK_MAX || usize > CSTREAM_BLOCK_MAX)
        return cstream_fail(s, "block %llu: impossible sizes %u/%u", (unsigned long long)s->blocks,
                            csize, usize);
    if (s->method == CH_CSTREAM_METHOD_NONE && csize - 9 != usize)
        return cstream_fail(s, "block %llu: uncompressed block of %u bytes claims %u",
                            (unsigned long long)s->blocks, csize - 9, usize);
    s->in_left = csize - 9;
    s->out_left = usize;
    s->block_out = 0;
    s->lz4 = CH_LZ4_TOKEN;
    s->lit_left = s->match_len = s->offset = 0;
    return 0;
}

static int cstream_block_end(struct ch_cstream *s)
{
    if (s->method == CH_CSTREAM_METHOD_LZ4 && s->lz4 != CH_LZ4_TOKEN &&
        !(s->lz4 == CH_LZ4_LITERALS && s->lit_left == 0))
        return cstream_fail(s, "block %llu: LZ4 data ends inside a sequence",
                            (unsigned long long)s->blocks);
    if (s->out_left)
        return cstream_fail(s, "block %llu decompresses to %u bytes, not %u",
                            (unsigned long long)s->blocks, s->block_out,
                            s->block_out + s->out_left);
    s->hdr_len = 0;
    s->blocks++;
    return 0;
}

/* Run LZ4 sequences over [*pp, end) without passing the block's end. */
static int cstream_lz4(struct ch_cstream *s, const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    size_t k;
    int r = 0;

    while (r == 0 && s->in_left > 0 && (p < end || (s->lz4 == CH_LZ4_LITERALS && !s->lit_left))) {
        switch (s->lz4) {
        case CH_LZ4_TOKEN:
            s->lit_left = *p >> 4;
            s->match_len = *p & 15;
            p++;
            s->in_left--;
            s->lz4 = s->lit_left == 15 ? CH_LZ4_LITLEN : CH_LZ4_LITERALS;
            break;
        case CH_LZ4_LITLEN:
            s->lit_left += *p;
            s->in_left--;
            if (*p++ != 255)
                s->lz4 = CH_LZ4_LITERALS;
            if (s->lit_left > s->out_left)
                r = cstream_fail(s, "block %llu: literals run past the block",
                                 (unsigned long long)s->blocks);
            break;
        case CH_LZ4_LITERALS:
            k = (size_t)(end - p);
            if (k > s->lit_left)
                k = s->lit_left;
            if (k > s->in_left)
                k = s->in_left;
            if (k) {
                r = cstream_out(s, p, k);
                p += k;
                s->in_left -= (uint32_t)k;
                s->lit_left -= (uint32_t)k;
            }
            if (r == 0 && s->lit_left == 0 && s->in_left > 0)
                s->lz4 = CH_LZ4_OFFSET_LO;
            break;
        case CH_LZ4_OFFSET_LO:
            s->offset = *p++;
            s->in_left--;
            s->lz4 = CH_LZ4_OFFSET_HI;
            break;
        case CH_LZ4_OFFSET_HI:
            s->offset |= (uint32_t)*p++ << 8;
            s->in_left--;
            if (s->offset == 0 || s->offset > s->block_out)
                r = cstream_fail(s, "block %llu: match offset %u outside the %u bytes decoded",
                                 (unsigned long long)s->blocks, s->offset, s->block_out);
            else if (s->match_len == 15)
                s->lz4 = CH_LZ4_MATCHLEN;
            else
                r = cstream_match(s);
            break;
        case CH_LZ4_MATCHLEN:
            s->match_len += *p;
            s->in_left--;
            if (s->match_len > s->out_left)
                r = cstream_fail(s, "block %llu: match runs past the block",
                                 (unsigned long long)s->blocks);
            else if (*p++ != 255)
                r = cstream_match(s);
            break;
        case _CH_LZ4_STATE_MAX:
            CHC_BUG("invalid LZ4 state");
        }
    }
    *pp = p;
    return r;
}

int ch__cstream_feed(struct ch_cstream *s, const void *data, size_t n)
{
    const unsigned char *p = data, *end = p + n;
    size_t k;
    int r = 0;

    if (s->failed)
        return CHC_EPARSE;
    s->total_in += n;
    if (s->raw) {
        window_put(s, p, n);
        return 0;
    }
    while (r == 0 && p < end) {
        if (s->hdr_len < CH_CSTREAM_HEADER) {
            k = CH_CSTREAM_HEADER - s->hdr_len;
            if (k > (size_t)(end - p))
                k = (size_t)(end - p);
            memcpy(s->hdr + s->hdr_len, p, k);
            s->hdr_len += k;
            p += k;
            if (s->hdr_len < CH_CSTREAM_HEADER)
                break;
            s->fail_pos = (size_t)(p - (const unsigned char *)data);
            r = cstream_header(s);
            if (r < 0) {
                s->fail_in_header = 1;
                break;
            }
        } else if (s->method == CH_CSTREAM_METHOD_NONE) {
            k = (size_t)(end - p) < s->in_left ? (size_t)(end - p) : s->in_left;
            r = cstream_out(s, p, k);
            p += k;
            s->in_left -= (uint32_t)k;
        } else {
            r = cstream_lz4(s, &p, end);
        }
        if (r == 0 && s->in_left == 0 && s->hdr_len == CH_CSTREAM_HEADER)
            r = cstream_block_end(s);
    }
    return r;
}

int ch__cstream_at_boundary(const struct ch_cstream *s)
{
    return !s->failed && s->hdr_len == 0;
}

size_t ch__cstream_tail(const struct ch_cstream *s, char *out, size_t max)
{
    size_t n = max, at, first;

    if (n > s->total_out)
        n = (size_t)s->total_out;
    if (n > CH_CSTREAM_WINDOW)
        n = CH_CSTREAM_WINDOW;
    at = (size_t)((s->total_out - n) & CSTREAM_MASK);
    first = CH_CSTREAM_WINDOW - at < n ? CH_CSTREAM_WINDOW - at : n;
    memcpy(out, s->window + at, first);
    memcpy(out + first, s->window, n - first);
    return n;
}

const char *ch__find_stream_exception(const char *s, size_t len)
{
    const char *last = NULL, *first_clean = NULL;
    size_t i, first_nul = len; /* the first NUL at or after i */
    int has_exc_after = 0;     /* "DB::Exception" starts at or after i */

    if (!s || len == 0 || s[len - 1] != '\n')
        return NULL;
    for (i = len; i-- > 0;) {
        if (s[i] == '\0')
            first_nul = i;
        if (s[i] == 'D' && len - i >= 13 && !memcmp(s + i, "DB::Exception", 13))
            has_exc_after = 1;
        if (s[i] != 'C' || !has_exc_after || code_at(s + i, len - i) <= 0)
            continue;
        if (!last)
            last = s + i;
        if (first_nul == len)
            first_clean = s + i;
    }
    return first_clean ? first_clean : last;
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

/* ClickHouse exception codes that the same statement meets again on every
 * try (ErrorCodes.cpp): bad SQL, unknown names, types that do not fit,
 * values that do not parse, missing rights or disk. Everything else
 * (network, timeouts, TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, ZooKeeper,
 * read-only replicas, ...) may pass and is retried. */
static const int permanent_codes[] = {
    1,   /* UNSUPPORTED_METHOD */
    2,   /* UNSUPPORTED_PARAMETER */
    6,   /* CANNOT_PARSE_TEXT */
    8,   /* THERE_IS_NO_COLUMN */
    10,  /* NOT_FOUND_COLUMN_IN_BLOCK */
    16,  /* NO_SUCH_COLUMN_IN_TABLE */
    20,  /* NUMBER_OF_COLUMNS_DOESNT_MATCH */
    27,  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
    35,  /* TOO_MANY_ARGUMENTS_FOR_FUNCTION */
    36,  /* BAD_ARGUMENTS */
    38,  /* CANNOT_PARSE_DATE */
    41,  /* CANNOT_PARSE_DATETIME */
    42,  /* NUMBER_OF_ARGUMENTS_DOESNT_MATCH */
    43,  /* ILLEGAL_TYPE_OF_ARGUMENT */
    44,  /* ILLEGAL_COLUMN */
    46,  /* UNKNOWN_FUNCTION */
    47,  /* UNKNOWN_IDENTIFIER */
    48,  /* NOT_IMPLEMENTED */
    50,  /* UNKNOWN_TYPE */
    53,  /* TYPE_MISMATCH */
    57,  /* TABLE_ALREADY_EXISTS */
    60,  /* UNKNOWN_TABLE */
    62,  /* SYNTAX_ERROR */
    63,  /* UNKNOWN_AGGREGATE_FUNCTION */
    69,  /* ARGUMENT_OUT_OF_BOUND */
    70,  /* CANNOT_CONVERT_TYPE */
    72,  /* CANNOT_PARSE_NUMBER */
    80,  /* INCORRECT_QUERY */
    81,  /* UNKNOWN_DATABASE */
    115, /* UNKNOWN_SETTING */
    117, /* INCORRECT_DATA */
    122, /* INCOMPATIBLE_COLUMNS */
    130, /* CANNOT_READ_ARRAY_FROM_TEXT */
    164, /* READONLY */
    179, /* MULTIPLE_EXPRESSIONS_FOR_ALIAS */
    184, /* ILLEGAL_AGGREGATION */
    190, /* SIZES_OF_ARRAYS_DOESNT_MATCH */
    192, /* UNKNOWN_USER */
    193, /* WRONG_PASSWORD */
    194, /* REQUIRED_PASSWORD */
    215, /* NOT_AN_AGGREGATE */
    243, /* NOT_ENOUGH_SPACE */
    248, /* INVALID_PARTITION_VALUE */
    321, /* VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE */
    352, /* AMBIGUOUS_COLUMN_NAME */
    359, /* TABLE_SIZE_EXCEEDS_MAX_DROP_SIZE_LIMIT */
    368, /* BAD_CAST (18.16: a Native column of another type) */
    386, /* NO_COMMON_TYPE */
    395, /* FUNCTION_THROW_IF_VALUE_IS_NON_ZERO */
    497, /* ACCESS_DENIED */
    516, /* AUTHENTICATION_FAILED */
};

int ch_exception_is_permanent(int code)
{
    size_t i;

    for (i = 0; i < sizeof(permanent_codes) / sizeof(permanent_codes[0]); i++)
        if (permanent_codes[i] == code)
            return 1;
    return 0;
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

/* Append n bytes of s to raw[*o] (size bytes); *cut once something did
 * not fit. */
static void gather(char *raw, size_t size, size_t *o, int *cut, const char *s, size_t n)
{
    size_t room = size - *o;

    if (n > room) {
        n = room;
        *cut = 1;
    }
    memcpy(raw + *o, s, n);
    *o += n;
}

/* Fail q with "<host>:<port>: <what><text>" (what and text may be NULL): one
 * line (control characters become spaces) in which every form of the
 * replica's password and of p->redact is masked (secrets.h), on the text
 * before it is cut to the message's size. */
static void fail_query(struct ch_query *q, int code, const char *what, const char *text,
                       size_t len)
{
    char raw[4 * CHC_ERR_MSG_MAX], out[CHC_ERR_MSG_MAX];
    size_t n = 0, o, i;
    int cut = 0;

    gather(raw, sizeof(raw), &n, &cut, q->hostport, strlen(q->hostport));
    gather(raw, sizeof(raw), &n, &cut, ": ", 2);
    if (what)
        gather(raw, sizeof(raw), &n, &cut, what, strlen(what));
    if (text)
        gather(raw, sizeof(raw), &n, &cut, text, len);
    o = chc_secrets_mask(q->secrets, raw, n, cut, out, sizeof(out));
    for (i = 0; i < o; i++)
        if ((unsigned char)out[i] < ' ' || out[i] == 0x7f)
            out[i] = ' ';
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
    else if (ch_exception_is_permanent(q->exc_code))
        code = CHC_ECH_PERMANENT;
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

int ch__header_line(const char *line, size_t n, int *ret_code)
{
    static const char name[] = "X-ClickHouse-Exception-Code:";
    size_t i;
    int code = 0;

    if (n >= 5 && !memcmp(line, "HTTP/", 5))
        return CH_HEADER_STATUS;
    if (n <= sizeof(name) - 1 || strncasecmp(line, name, sizeof(name) - 1) != 0)
        return CH_HEADER_OTHER;
    for (i = sizeof(name) - 1; i < n && line[i] == ' '; i++)
        ;
    for (; i < n && line[i] >= '0' && line[i] <= '9' && code < 100000000; i++)
        code = code * 10 + (line[i] - '0');
    *ret_code = code;
    return CH_HEADER_EXCEPTION_CODE;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct ch_query *q = userp;
    size_t n = size * nmemb;
    int code = 0;

    switch (ch__header_line(ptr, n, &code)) {
    case CH_HEADER_STATUS:
        q->hdr_exc_code = 0; /* a new response (after 100 Continue) */
        break;
    case CH_HEADER_EXCEPTION_CODE:
        q->hdr_exc_code = code;
        break;
    default:
        break;
    }
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
static void run_kicks(struct ch_client *c);
static void finish_pipe_src(struct ch_query *q, CURLcode rc);
static void finish_pipe_dst(struct ch_query *q, CURLcode rc);
static void pipe_cancelled(struct ch_pipe *p, const char *why);
static void pipe_destroy(struct ch_pipe *p);

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
    run_kicks(c);
    collect_done(c);
    run_done(c);
}

static void on_timer(uv_timer_t *h)
{
    struct ch_client *c = h->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    run_kicks(c);
    collect_done(c);
    run_done(c);
}

/* Pipe INSERTs have connections of their own (CURLOPT_FRESH_CONNECT and
 * CURLOPT_FORBID_REUSE), so a socket belongs to one for its whole life. */
static int is_pipe_dst(CURL *easy)
{
    struct ch_query *q;
    char *priv = NULL;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    q = (struct ch_query *)priv;
    return q && q->pipe && q->side == PIPE_DST;
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
            s->read_on_error = is_pipe_dst(easy);
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
        if (q->pipe && q->side == PIPE_SRC)
            finish_pipe_src(q, rc);
        else if (q->pipe)
            finish_pipe_dst(q, rc);
        else
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
    while (c->notes) {
        struct compress_note *n = c->notes;

        c->notes = n->next;
        free(n);
    }
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
    struct ch_pipe *p;

    if (!c || c->closing)
        return NULL;
    c->closing = 1;
    for (p = c->pipes; p; p = p->next)
        pipe_cancelled(p, "pipe cancelled: client closing");
    while (c->running)
        abort_query(c->running, "query cancelled: client closing");
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

static struct ch_query *query_destroy(struct ch_query *q)
{
    if (!q)
        return NULL;
    if (q->easy)
        curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->headers);
    if (q->global)
        curl_global_cleanup(); /* the client may be gone already */
    chc_buf_release(&q->body);
    chc_buf_release(&q->salvage);
    free(q->hostport);
    chc_secrets_free(q->secrets);
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

/* post: the request body; NULL for a chunked body from a read callback that
 * the caller installs. */
static int query_setup(struct ch_query *q, const struct ch_query_params *p, const char *url,
                       const char *post, struct chc_err *err)
{
    const struct cfg_replica *rep = p->replica;
    struct chc_buf hp = CHC_BUF_INIT;
    CURLcode cc = CURLE_OK;
    size_t i;
    int r;

    r = add_hostport(&hp, rep);
    if (r < 0)
        goto oom;
    q->hostport = chc_buf_take(&hp, NULL);
    if (!q->hostport)
        goto oom;
    q->secrets = chc_secrets_new();
    if (!q->secrets || chc_secrets_add(q->secrets, rep->password) < 0)
        goto oom;
    for (i = 0; i < CH_REDACT_MAX && p->redact[i]; i++)
        if (chc_secrets_add(q->secrets, p->redact[i]) < 0)
            goto oom;
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
    /* A chunked body: with "Connection: close" ClickHouse answers an error
     * at once instead of first reading the rest of the body. */
    if (r == 0 && !post)
        r = add_header(q, "Transfer-Encoding", "chunked");
    if (r == 0 && !post)
        r = add_header(q, "Connection", "close");
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
    if (post) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post));
        SETOPT(CURLOPT_COPYPOSTFIELDS, post);
    } else {
        SETOPT(CURLOPT_POST, 1L);
    }
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

/* A query set up but not started (state QUERY_DONE until query_add). */
static int query_create(struct ch_client *c, const struct ch_query_params *p, const char *url,
                        const char *post, ch_done_cb cb, void *data, struct ch_query **ret,
                        struct chc_err *err)
{
    struct ch_query *q;
    int r;

    q = calloc(1, sizeof(*q));
    if (!q)
        return chc_err_set(err, -ENOMEM, "out of memory");
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
    r = query_setup(q, p, url, post, err);
    if (r < 0)
        goto fail;
    *ret = q;
    return 0;
fail:
    query_destroy(q);
    return r;
}

/* Hand q to the multi: from here on its callback will run. */
static int query_add(struct ch_client *c, struct ch_query *q, struct chc_err *err)
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

int ch_query_start(struct ch_client *c, const struct ch_query_params *p, ch_done_cb cb,
                   void *data, struct ch_query **ret, struct chc_err *err)
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
    r = query_create(c, p, url.buf, p->sql, cb, data, &q, err);
    if (r < 0)
        goto fail;
    r = query_add(c, q, err);
    if (r < 0)
        goto fail;
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

/* ------------------------------------------------------------------ pipes */

/* Non-2xx source bodies and undecodable tails kept for the message. */
#define PIPE_ERROR_BODY_MAX ((size_t)64 << 10)
/* ClickHouse 18.16 (Poco) answers 400 to request lines over 16 KiB; the
 * INSERT travels in the URL. */
#define PIPE_URL_MAX ((size_t)16000)

static const char *const side_name[_PIPE_SIDE_MAX] = {"source", "destination"};

/* ---- rate limits ---- */

static size_t bucket_quantum(long long rate)
{
    long long q = rate / 50;

    if (q < 1)
        q = 1;
    if (q > 16384)
        q = 16384;
    return (size_t)q;
}

static void bucket_refill(struct bucket *b, uint64_t now)
{
    double cap = (double)b->rate / 10;

    if (b->last_ns == 0) {
        b->last_ns = now;
        return;
    }
    b->tokens += (double)(now - b->last_ns) * (double)b->rate / 1e9;
    b->last_ns = now;
    if (cap < (double)bucket_quantum(b->rate))
        cap = (double)bucket_quantum(b->rate);
    if (b->tokens > cap)
        b->tokens = cap;
}

/* How much of want the bucket lets through now. 0 (and *wait_ns raised to
 * when it will) unless it holds a quantum, so that uploads move in chunks of
 * ~20 ms of the rate instead of a byte per wakeup. */
static size_t bucket_allow(struct bucket *b, uint64_t now, size_t want, uint64_t *wait_ns)
{
    size_t need;
    uint64_t w;

    if (b->rate <= 0 || want == 0)
        return want;
    bucket_refill(b, now);
    need = bucket_quantum(b->rate);
    if (need > want)
        need = want;
    if (b->tokens < (double)need) {
        w = (uint64_t)(((double)need - b->tokens) * 1e9 / (double)b->rate) + 1;
        if (w > *wait_ns)
            *wait_ns = w;
        return 0;
    }
    return (double)want <= b->tokens ? want : (size_t)b->tokens;
}

static void bucket_take(struct bucket *b, size_t n)
{
    if (b->rate > 0)
        b->tokens -= (double)n;
}

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
    c->rate.rate = bytes_per_second > 0 ? bytes_per_second : 0;
    c->rate.tokens = 0;
    c->rate.last_ns = 0;
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
    chc_err_set(&p->err, q->status, "%s %s", side_name[q->side], q->err.msg);
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
        finish_query(q, rc);
        return;
    }
    if (p->garbled) {
        start = mem_find(q->body.buf, q->body.len, "Code: ");
        if (start && code_at(start, q->body.len - (size_t)(start - q->body.buf)) > 0) {
            finish_exception(q, http, start, q->body.len - (size_t)(start - q->body.buf));
            return;
        }
        fail_query(q, CHC_ECH_HTTP, "cannot decode the compressed result: ", p->dec->why,
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
        fail_query(q, -ENOMEM, "out of memory checking the end of the result", NULL, 0);
        return;
    }
    free(buf);
    if (r > 0 && rc == CURLE_OK) {
        p->suspect = 1;
        chc_log_debug("ch: pipe %s -> %s: the result ends like an exception; the INSERT decides",
                      q->hostport, p->side[PIPE_DST]->hostport);
    }
    if (rc == CURLE_OK && !ch__cstream_at_boundary(p->dec)) {
        fail_query(q, CHC_ECH_HTTP, "the compressed result ends inside a block", NULL, 0);
        return;
    }
    finish_query(q, rc); /* the body is empty: 0 or the curl error */
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
    finish_exception(src, 200, exc, len);
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
        n = bucket_allow(&p->rate, now, n, &wait_ns);
        n = bucket_allow(&c->rate, now, n, &wait_ns);
        if (n == 0) {
            p->paused[PIPE_DST] = 1;
            p->throttled = 1;
            throttle_arm(c, wait_ns);
            return CURL_READFUNC_PAUSE;
        }
        bucket_take(&p->rate, n);
        bucket_take(&c->rate, n);
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

int ch__salvaged_answer(const char *s, size_t len, long *ret_http, const char **ret_text,
                        size_t *ret_len)
{
    const char *body, *text, *eol;
    long http = 0;
    size_t i;

    if (len < 13 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
        return 0;
    for (i = 9; i < 12 && s[i] >= '0' && s[i] <= '9'; i++)
        http = http * 10 + (s[i] - '0');
    body = mem_find(s, len, "\r\n\r\n");
    text = body ? mem_find(body, len - (size_t)(body - s), "Code: ") : NULL;
    if (i != 12 || http < 400 || !text)
        return 0;
    eol = mem_find(text, len - (size_t)(text - s), "\r\n");
    *ret_http = http;
    *ret_text = text;
    *ret_len = eol ? (size_t)(eol - text) : len - (size_t)(text - s);
    return 1;
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
        finish_query(q, rc);
        return;
    }
    chc_log_debug("ch: %s: INSERT answer read after '%s'", q->hostport, curl_easy_strerror(rc));
    finish_exception(q, http, text, len);
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
            abort_query(p->side[s], why);
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
        if (query_add(p->client, q, &err) < 0) {
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
    enum pipe_side s = q->side, o = s == PIPE_SRC ? PIPE_DST : PIPE_SRC;

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

    r = query_add(p->client, p->side[PIPE_SRC], err);
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
    p->rate.rate = pp->max_bytes_per_second;
    p->cb = cb;
    p->data = data;
    r = query_create(c, &sp, url[PIPE_SRC].buf, sp.sql, on_pipe_side_done, p, &p->side[PIPE_SRC],
                     err);
    if (r < 0)
        goto fail;
    r = query_create(c, &dp, url[PIPE_DST].buf, NULL, on_pipe_side_done, p, &p->side[PIPE_DST],
                     err);
    if (r < 0)
        goto fail;

    q = p->side[PIPE_SRC];
    q->pipe = p;
    q->side = PIPE_SRC;
    chc_buf_init(&q->body, PIPE_ERROR_BODY_MAX);
    cc = curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_pipe_src_write);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    q = p->side[PIPE_DST];
    q->pipe = p;
    q->side = PIPE_DST;
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
            r = query_create(c, &pr, probe_url.buf, PROBE_SQL, on_pipe_probe_done, p, &p->probe,
                             err);
        if (r == 0)
            r = query_add(c, p->probe, err);
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
        query_destroy(p->probe); /* not in the multi: query_add failed */
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
        query_destroy(p->side[s]);
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

const char *ch_rows_str(const struct ch_rows *r, size_t row, size_t col)
{
    const char *v = ch_rows_get(r, row, col);

    return v ? v : "";
}

int ch_rows_is_null(const struct ch_rows *r, size_t row, size_t col)
{
    return field(r, row, col) && !ch_rows_get(r, row, col);
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

/* query.c — one ClickHouse query as a curl easy handle: its request (URL
 * given, POST body or a chunked upload, credentials only in the
 * X-ClickHouse-User/-Key headers, timeouts, keep-alive), the response body
 * kept up to its cap, and the translation of its end (CURLcode + HTTP status
 * + ClickHouse exception code) into CHC_E* codes, once, here. Every message
 * masks the replica's password and the caller's redact strings. Knows no
 * multi handle and no loop: client.c runs the queries set up here.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "chcopier/base/secrets.h"
#include "chcopier/ch/query.h"
#include "chcopier/ch/response.h"
#include "chcopier/config/task.h"
#include "ch/query.h"
#include "ch/response.h"
#include "ch/url.h"
#include "config.h"

#include "base/banned.h"

/* ------------------------------------------------------------- outcome */

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

/* One line (control characters become spaces) in which every form of the
 * replica's password and of p->redact is masked (secrets.h), on the text
 * before it is cut to the message's size. */
void ch__query_fail(struct ch_query *q, int code, const char *what, const char *text, size_t len)
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

void ch__query_fail_exception(struct ch_query *q, long http, const char *text, size_t len)
{
    int code;

    q->exc_code = q->hdr_exc_code ? q->hdr_exc_code : ch_parse_exception_code(text);
    if (http == 401 || http == 403 || ch__is_auth_code(q->exc_code))
        code = CHC_ECH_AUTH;
    else if (ch_exception_is_permanent(q->exc_code))
        code = CHC_ECH_PERMANENT;
    else
        code = CHC_ECH_EXCEPTION;
    ch__query_fail(q, code, NULL, text, len);
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
    ch__query_fail_exception(q, http, start, q->body.len - (size_t)(start - body));
    return 1;
}

/* Translate the outcome of a finished transfer into q->status/err. */
void ch__query_finish(struct ch_query *q, CURLcode rc)
{
    const char *body = q->body.buf, *exc, *text;
    size_t len = q->body.len;
    char what[64];
    long http = 0;

    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &http);
    if (q->too_big) {
        snprintf(what, sizeof(what), "response larger than %zu bytes", q->body.max);
        ch__query_fail(q, CHC_ETOOBIG, what, NULL, 0);
        return;
    }
    if (q->oom) {
        ch__query_fail(q, -ENOMEM, "out of memory receiving the response", NULL, 0);
        return;
    }
    /* HTTP 200, then an exception at the end (streamed, or wait_end_of_query
     * overridden): the body is incomplete. */
    exc = http >= 200 && http < 300 ? ch_find_trailing_exception(body, len) : NULL;
    if (exc) {
        ch__query_fail_exception(q, http, exc, len - (size_t)(exc - body));
        return;
    }
    if (rc != CURLE_OK) {
        /* The exception may have arrived before the connection broke. */
        if (http >= 400 && finish_error_body(q, http))
            return;
        text = q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc);
        ch__query_fail(q, classify_curl(rc), NULL, text, strlen(text));
        return;
    }
    if (http >= 200 && http < 300) {
        q->status = 0;
        return;
    }
    if (finish_error_body(q, http))
        return;
    snprintf(what, sizeof(what), "HTTP %ld%s", http, len ? ": " : "");
    ch__query_fail(q, (http == 401 || http == 403) ? CHC_ECH_AUTH : CHC_ECH_HTTP, what, body,
                   len > 512 ? 512 : len);
}

/* ------------------------------------------------------- curl callbacks */

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

/* -------------------------------------------------------------- set up */

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

/* q->hostport, q->secrets and the request headers: the credentials travel
 * only here. post: as for query_setup(). */
static int query_headers(struct ch_query *q, const struct ch_query_params *p, const char *post,
                         struct chc_err *err)
{
    const struct cfg_replica *rep = p->replica;
    struct chc_buf hp = CHC_BUF_INIT;
    size_t i;
    int r;

    r = ch__add_hostport(&hp, rep);
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
        return chc_err_set(err, -EINVAL, "%s: user or password contains a line break", q->hostport);
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
    return 0;
oom:
    chc_buf_release(&hp);
    return chc_err_set(err, -ENOMEM, "out of memory");
}

/* The easy handle, with the headers query_headers() made. */
static int query_easy(struct ch_query *q, const struct ch_query_params *p, const char *url,
                      const char *post, struct chc_err *err)
{
    CURLcode cc = CURLE_OK;

    q->easy = curl_easy_init();
    if (!q->easy)
        return chc_err_set(err, -ENOMEM, "out of memory");
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
}

/* post: the request body; NULL for a chunked body from a read callback that
 * the caller installs. */
static int query_setup(struct ch_query *q, const struct ch_query_params *p, const char *url,
                       const char *post, struct chc_err *err)
{
    int r;

    r = query_headers(q, p, post, err);
    if (r < 0)
        return r;
    return query_easy(q, p, url, post, err);
}

int ch__query_create(struct ch_client *c, const struct ch_query_params *p, const char *url,
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
    q->finish = ch__query_finish;
    chc_buf_init(&q->body, p->max_response ? p->max_response : CH_MAX_RESPONSE_DEFAULT);
    r = query_setup(q, p, url, post, err);
    if (r < 0)
        goto fail;
    *ret = q;
    return 0;
fail:
    ch__query_destroy(q);
    return r;
}

/* ------------------------------------------------------------ lifetime */

struct ch_query *ch__query_destroy(struct ch_query *q)
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
    return ch__query_destroy(q);
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

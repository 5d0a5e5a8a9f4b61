/* query.h — internals of query.c: struct ch_query, one HTTP request to
 * ClickHouse as a curl easy handle, and how its end becomes a CHC_E* code.
 * The public part (the params, reading a finished query) is
 * chcopier/ch/query.h. client.c runs queries in its curl multi; the pipe code
 * builds its two transfers on them.
 */
#ifndef CHC_SRC_CH_QUERY_H
#define CHC_SRC_CH_QUERY_H

#include <stddef.h>

#include <curl/curl.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/query.h"

struct ch_client;
struct ch_pipe;
struct chc_secrets;

enum query_state {
    QUERY_RUNNING, /* easy handle in the multi, on c->running */
    QUERY_PENDING, /* finished, on c->done_head, cb not run yet */
    QUERY_DONE,    /* cb ran (or is running) */
    _QUERY_STATE_MAX,
};

/* Translates a finished transfer (curl's rc) into q->status/err. */
typedef void (*ch__query_finish_fn)(struct ch_query *q, CURLcode rc);

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
    /* Run by the client when the transfer ends: ch__query_finish, unless
     * the pipe code put its own for a pipe's SELECT or INSERT. */
    ch__query_finish_fn finish;
    /* Set by the pipe code for the two halves of a pipe; the client only
     * reads read_on_error. */
    struct ch_pipe *pipe;
    int read_on_error;      /* a pipe's INSERT: its answer may wait behind a reset */
    struct chc_buf salvage; /* a pipe INSERT: unread bytes at close */
};

/* A query set up but not started: state QUERY_DONE until the client adds it
 * (ch__client_add). post is the request body; NULL for a chunked body from
 * a read callback that the caller installs. Everything p points to is
 * copied. */
int ch__query_create(struct ch_client *c, const struct ch_query_params *p, const char *url,
                     const char *post, ch_done_cb cb, void *data, struct ch_query **ret,
                     struct chc_err *err);
/* Free q whatever its state (not in any multi). NULL-safe; returns NULL. */
struct ch_query *ch__query_destroy(struct ch_query *q);
/* Fail q with "<host>:<port>: <what><text>" (what and text may be NULL),
 * masked and on one line. */
void ch__query_fail(struct ch_query *q, int code, const char *what, const char *text, size_t len);
/* Fail q with the ClickHouse exception text[0..len) answered with HTTP
 * status http: CHC_ECH_AUTH, CHC_ECH_PERMANENT or CHC_ECH_EXCEPTION. */
void ch__query_fail_exception(struct ch_query *q, long http, const char *text, size_t len);
/* The usual translation of a finished transfer into q->status/err. */
void ch__query_finish(struct ch_query *q, CURLcode rc);

#endif

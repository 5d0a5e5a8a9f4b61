/* ch.h — the ClickHouse HTTP client: queries over curl_multi on a libuv loop.
 *
 * The only module that speaks HTTP. Everything runs on the thread of one
 * uv_loop_t; no function here may be called from another thread.
 *
 * Call sequence:
 *   1. ch_client_new(loop, &c, err): one client per loop. It keeps idle
 *      keep-alive connections and reuses them across queries.
 *   2. ch_query_start(c, &p, cb, data, &q, err): returns at once; the request
 *      makes progress while the loop runs. Everything `p` points to is copied,
 *      so it may be freed when ch_query_start returns. On failure (bad params,
 *      ENOMEM, client closing) no query exists and cb never runs.
 *   3. cb(q, data) runs exactly once per started query, always from a libuv
 *      callback of the loop: never synchronously inside ch_query_start(),
 *      ch_query_cancel() or ch_client_free(). Inside cb (or any time later)
 *      read ch_query_status/_error/_exception_code/_body. cb must not free q
 *      itself through anything but ch_query_free(q); calling ch_query_free(q)
 *      inside cb is fine and is the usual pattern. cb may start new queries,
 *      cancel others and even call ch_client_free().
 *   4. ch_query_free(q) after cb ran. Freeing a query whose cb has not run is a
 *      programmer error (CHC_BUG); cancel it and free it in its cb instead.
 *   5. Shutdown: ch_client_free(c) cancels every outstanding query and starts
 *      closing the libuv handles; then run the loop until it has nothing left:
 *          c = ch_client_free(c);
 *          uv_run(loop, UV_RUN_DEFAULT);   (cancelled cbs run here)
 *          uv_loop_close(loop);            (== 0)
 *      The client's memory is released in the last close callback.
 *
 * Errors (ch_query_status(), translated here once):
 *   CHC_ECH_CONN       cannot resolve/connect, TLS handshake, connection
 *                      reset, timeout (timeout_ms/connect_timeout_ms).
 *                      Retryable; after the request was sent the server may
 *                      still have run (part of) the query.
 *   CHC_ECH_AUTH       HTTP 401/403 or exception 192/193/194/516.
 *   CHC_ECH_EXCEPTION  the server reported an exception; its number is
 *                      ch_query_exception_code(). Also raised for an HTTP 200
 *                      body that ends in "Code: N, ... DB::Exception" (an
 *                      exception thrown after streaming had begun).
 *   CHC_ECH_HTTP       any other HTTP failure (no exception text, bad TLS
 *                      certificate, protocol errors).
 *   CHC_ETOOBIG        the response exceeded max_response.
 *   CHC_ECANCELED      ch_query_cancel() or ch_client_free().
 *   -ENOMEM
 * The message is one line "<host>:<port>: <server or curl text>"; newlines
 * of the server text are replaced by spaces, and the replica's password and
 * every string in p->redact are masked as "***". Credentials travel only in
 * the X-ClickHouse-User/X-ClickHouse-Key request headers, never in the URL.
 *
 * Cancellation only abandons the transfer (the connection is closed). With
 * wait_end_of_query=1 the server notices that only when it answers, so a
 * cancelled long query keeps running server-side; use KILL QUERY WHERE
 * query_id = ... if that matters.
 */
#ifndef CHC_CH_H
#define CHC_CH_H

#include <stddef.h>

#include <uv.h>

#include "chcopier/buf.h"
#include "chcopier/err.h"
#include "chcopier/task.h"

struct ch_client;
struct ch_query;

/* Called exactly once per started query; see step 3 above. */
typedef void (*ch_done_cb)(struct ch_query *q, void *data);

#define CH_MAX_RESPONSE_DEFAULT ((size_t)16 << 20)
#define CH_CONNECT_TIMEOUT_DEFAULT 10000L
#define CH_SETTINGS_MAX 4
#define CH_REDACT_MAX 4

struct ch_query_params {
    /* host, http_port, secure (https), user/password (sent as
     * X-ClickHouse-User / X-ClickHouse-Key headers, never in the URL). */
    const struct cfg_replica *replica;
    const char *sql;      /* POST body, sent as is (may carry INSERT data) */
    const char *query_id; /* optional: URL parameter query_id */
    const char *database; /* optional: URL parameter database */
    /* Settings sets applied in order as URL parameters; a later set overrides
     * a name of an earlier one. Up to CH_SETTINGS_MAX, stops at the first
     * NULL. Names that are not settings (query, query_id, database, user,
     * password, quota_key, compress, decompress) are rejected with -EINVAL. */
    const struct cfg_settings *settings[CH_SETTINGS_MAX];
    size_t max_response;     /* cap on the body kept in memory; 0 = 16 MiB */
    long timeout_ms;         /* whole request; 0 = none */
    long connect_timeout_ms; /* 0 = 10000 */
    /* 0 (default): add wait_end_of_query=1 so the server buffers the whole
     * result and reports a late exception with an HTTP error status.
     * 1: let the server stream (less server memory/disk; a late exception
     * then arrives as text at the end of an HTTP 200 body, which is still
     * detected). A wait_end_of_query in settings wins over both. */
    int stream;
    /* Optional strings to mask in error messages besides the replica's
     * password (e.g. a password inside a remote() call in sql). Up to
     * CH_REDACT_MAX, stops at the first NULL. */
    const char *redact[CH_REDACT_MAX];
};

int ch_client_new(uv_loop_t *loop, struct ch_client **ret, struct chc_err *err);
/* NULL-safe; returns NULL. See step 5: cancels outstanding queries (their cbs
 * run later from the loop with CHC_ECANCELED) and closes the handles; the loop
 * must then be run until it has no more handles. */
struct ch_client *ch_client_free(struct ch_client *c);

int ch_query_start(struct ch_client *c, const struct ch_query_params *p, ch_done_cb cb,
                   void *data, struct ch_query **ret, struct chc_err *err);
/* Abort the transfer now; cb runs later, from the loop, with CHC_ECANCELED
 * (never inside this call). No-op if the query already finished (its cb then
 * reports the real outcome, even if it has not run yet). NULL-safe. */
void ch_query_cancel(struct ch_query *q);
/* NULL-safe; only after cb ran (see step 4). Returns NULL. */
struct ch_query *ch_query_free(struct ch_query *q);

/* 0 ok, else a negative code (see above). Valid once cb runs. */
int ch_query_status(const struct ch_query *q);
/* The message for a failed query ({0, ""} on success). */
const struct chc_err *ch_query_error(const struct ch_query *q);
/* The ClickHouse exception number (X-ClickHouse-Exception-Code header, else
 * parsed from the body), 0 if none. Set for CHC_ECH_EXCEPTION and, when the
 * server sent one, for CHC_ECH_AUTH. */
int ch_query_exception_code(const struct ch_query *q);
/* The response body received (the exception text for a failed query),
 * NUL-terminated, never NULL; len may be NULL. Owned by q. */
const char *ch_query_body(const struct ch_query *q, size_t *len);

/* For code with nothing else to do: start the query and uv_run(UV_RUN_ONCE)
 * the loop until it completes (other queries progress meanwhile). Must not be
 * called from inside any libuv callback (returns CHC_ESTATE if it detects a
 * ch callback). On success the body is appended to out if out != NULL
 * (out's own cap applies: CHC_ETOOBIG). */
int ch_query_sync(struct ch_client *c, const struct ch_query_params *p, struct chc_buf *out,
                  struct chc_err *err);

/* ---- pure helpers (no I/O; unit-tested) ---- */

/* The request URL: http[s]://host:port/?query_id=..&database=..&<settings>
 * [&wait_end_of_query=1], every name and value percent-encoded, IPv6 hosts in
 * brackets. Never contains user or password. Appends to out. */
int ch_build_url(const struct ch_query_params *p, struct chc_buf *out, struct chc_err *err);
/* N of the first "Code: N." or "Code: N," that starts the text or a line of
 * it (ClickHouse >= 19 uses '.', 18.x ','); 0 if none. NULL-safe. */
int ch_parse_exception_code(const char *body);
/* Start of a ClickHouse exception that ends a response body: the last line
 * that starts with "Code: N[.,]" and contains "DB::Exception"; NULL if the
 * body does not end with one. */
const char *ch_find_trailing_exception(const char *body, size_t len);

/* ---- TabSeparated results ----
 * ch_tsv_parse() splits a `FORMAT TabSeparated` body into rows (on '\n') and
 * fields (on '\t') and undoes ClickHouse's escaping: \b \f \n \r \t \0 \a \v
 * \\ \' \" \xHH, and backslash + any other byte is that byte; a field that is
 * exactly \N is NULL. Every row must have the same number of fields
 * (CHC_EPARSE otherwise, or for a trailing lone backslash or bad \x). An empty
 * body is zero rows; a final row without '\n' is accepted.
 */
struct ch_rows;

int ch_tsv_parse(const char *body, size_t len, struct ch_rows **ret, struct chc_err *err);
size_t ch_rows_count(const struct ch_rows *r);
size_t ch_rows_ncols(const struct ch_rows *r);
/* The unescaped field, NUL-terminated; NULL for \N or an index out of range.
 * Valid until ch_rows_free(). A field may contain NUL bytes: see _len. */
const char *ch_rows_get(const struct ch_rows *r, size_t row, size_t col);
size_t ch_rows_len(const struct ch_rows *r, size_t row, size_t col);
struct ch_rows *ch_rows_free(struct ch_rows *r);

#endif

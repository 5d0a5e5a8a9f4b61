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
 *   CHC_ECH_PERMANENT  the server reported an exception that the same
 *                      statement meets on every try (ch_exception_is_permanent:
 *                      syntax, unknown names, types, parse errors, access,
 *                      disk space); its number is ch_query_exception_code().
 *   CHC_ECH_EXCEPTION  any other exception (worth retrying: too many parts,
 *                      memory, ZooKeeper, timeouts, ...). Both are also raised
 *                      for an HTTP 200 body that ends in "Code: N, ...
 *                      DB::Exception" (an exception thrown after streaming
 *                      had begun).
 *   CHC_ECH_HTTP       any other HTTP failure (no exception text, bad TLS
 *                      certificate, protocol errors).
 *   CHC_ETOOBIG        the response exceeded max_response.
 *   CHC_ECANCELED      ch_query_cancel() or ch_client_free().
 *   -ENOMEM
 * The message is one line "<host>:<port>: <server or curl text>"; newlines
 * of the server text are replaced by spaces, and the replica's password and
 * every string in p->redact are masked as "***" in every form they take
 * (as is, SQL-escaped as in remote(), percent-encoded, ...: secrets.h), as
 * are the process-wide secrets. Credentials travel only in the
 * X-ClickHouse-User/X-ClickHouse-Key request headers, never in the URL.
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

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/config/task.h"

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

/* ---- pipes: one source SELECT streamed into one destination INSERT ----
 *
 * For networks where the destination cannot reach the source: the result
 * travels through this process and is never held whole. Memory per pipe is
 * the ring buffer (buffer_bytes), a 64 KiB window on the end of the stream
 * and curl's buffers: about 1.2 MiB with the defaults, whatever the size of
 * the table (measured: a whole process moving 20 M rows peaks at 11.5 MiB).
 *
 * Call sequence:
 *   1. ch_pipe_start(c, &pp, cb, data, &p, err) returns at once; everything
 *      pp points to is copied. On failure no pipe exists and cb never runs.
 *      Then, while the loop runs:
 *      a. the first pipe from a source server (per client) sends it a
 *         one-row probe to choose compressed or plain (see Compression);
 *      b. the SELECT (pp.src.sql, "SELECT a, b FROM ... FORMAT Native")
 *         streams into the ring buffer; when it is full the SELECT pauses;
 *      c. with its first byte (or at its end, for an empty result) the INSERT
 *         (pp.dst.sql, "INSERT INTO db.t (a, b) FORMAT Native") starts, on a
 *         connection of its own, with a chunked body drained from the buffer;
 *      d. only when the SELECT has ended cleanly (HTTP 2xx, complete
 *         compressed blocks, no exception at the end) and the buffer is empty
 *         does the INSERT get its last chunk; it commits and answers.
 *   2. cb(p, data) runs exactly once, from the loop (never inside
 *      ch_pipe_start/_cancel or ch_client_free), after both transfers have
 *      ended. Read ch_pipe_status/_error/_exception_code/_bytes there or
 *      later; ch_pipe_free(p) inside cb is the usual pattern.
 *   3. ch_pipe_free(p) after cb ran (CHC_BUG before); the pipe stays readable
 *      after its client is freed. ch_client_free() cancels running pipes like
 *      queries (CHC_ECANCELED, "pipe cancelled: client closing").
 *
 * Outcome: 0 only when 1d happened and the INSERT answered 2xx. Otherwise
 * the first failure of either side, and the other side is aborted at once:
 *   - the message starts with "source <host>:<port>: " or
 *     "destination <host>:<port>: " and carries the server's text (newlines
 *     flattened, that side's password and redact strings masked as ***); a
 *     cancellation reads "<src host:port> -> <dst host:port>: pipe cancelled";
 *   - codes as for queries: CHC_ECH_EXCEPTION (ch_pipe_exception_code()),
 *     CHC_ECH_AUTH, CHC_ECH_CONN, CHC_ECH_HTTP (also: the result did not
 *     decode, or ended inside a compressed block), CHC_ECANCELED, -ENOMEM.
 *   An exception thrown while the SELECT streams arrives as text after the
 *   last complete block of an HTTP 200 body (inside the last compressed
 *   block when compressed). Data can end the same way (a String value
 *   "... Code: 395, ... DB::Exception: ...\n" last), so the end of the
 *   stream alone decides nothing: the INSERT gets all of it. Exception text
 *   never parses as Native data, so a real one fails the INSERT, and then
 *   (as when the INSERT chokes on it while the SELECT still runs) the pipe
 *   looks at the end of the stream (it follows the LZ4 blocks as they pass)
 *   and reports the source's exception; data that merely looks like one
 *   commits. Running queries on the same server need distinct query ids:
 *   give src and dst different ones.
 *
 * What the destination keeps after a failure. The INSERT connection is
 * always closed with a TCP reset: ClickHouse 18.16 takes a clean close at a
 * chunk boundary for the end of the body and commits what it got, a reset
 * makes the INSERT fail. But ClickHouse writes a part each time it has
 * squashed min_insert_block_size_rows (1048576) rows or
 * min_insert_block_size_bytes (256 MiB), and such parts stay: a pipe that
 * fails later than that leaves those rows behind (whole multiples of the
 * squash size). Insert into something the caller can drop on failure (a
 * staging table or partition), or for all-or-nothing pass both settings in
 * dst.settings above the transfer's size (the destination server then holds
 * the whole insert in memory until it ends).
 *
 * Compression. Compressed, the source compresses (compress=1) and the
 * destination decompresses (decompress=1): fewer bytes on both networks, more
 * CPU on both servers. The Debian build of ClickHouse 18.16 answers
 * compress=1 with an empty HTTP 200 body whenever the whole result fits in
 * its first 1 MiB buffer: a small result would arrive as no rows, silently.
 * CH_PIPE_COMPRESS_AUTO (the default) sends each source server, once per
 * client, a one-row probe with compress=1 and moves plain Native from a
 * server that answers it empty; UNCHECKED skips the probe (only for servers
 * known to be fixed); NEVER always moves plain Native. ch_pipe_compressed()
 * says which one a pipe used.
 *
 * Also:
 *   - Native carries column names and ClickHouse matches them by name with
 *     the INSERT's columns; a column whose name matches none gets its
 *     default value, silently. Alias the SELECT's columns to the
 *     destination's names ("SELECT number AS a, ...").
 *   - src.stream and dst.stream are ignored: both sides stream (a
 *     wait_end_of_query in settings is still passed on). The INSERT text
 *     travels in the URL (ClickHouse reads the statement from the query
 *     parameter when the body is data): the URL must stay under 16000 bytes.
 *   - src.max_response is ignored (the data is not kept); dst.max_response
 *     caps the INSERT's answer. timeout_ms covers each side's whole transfer,
 *     paused or throttled time included (the destination's clock starts with
 *     its first byte): leave it 0 or generous. Otherwise a stalled side waits
 *     for the servers' http_send_timeout/http_receive_timeout (1800 s).
 *   - Aborting the SELECT closes its connection; the source server stops
 *     the query at its next write. The INSERT is sent with "Connection:
 *     close" so that ClickHouse answers an error at once instead of first
 *     reading the rest of the body.
 */
struct ch_pipe;

/* Called exactly once per started pipe; see step 2 above. */
typedef void (*ch_pipe_cb)(struct ch_pipe *p, void *data);

#define CH_PIPE_BUFFER_DEFAULT ((size_t)1 << 20)
#define CH_PIPE_BUFFER_MIN ((size_t)64 << 10)
#define CH_PIPE_BUFFER_MAX ((size_t)1 << 20)

/* See Compression above. */
enum ch_pipe_compression {
    CH_PIPE_COMPRESS_AUTO,      /* compressed unless the probe finds the bug */
    CH_PIPE_COMPRESS_UNCHECKED, /* compressed, no probe: servers known to be fixed */
    CH_PIPE_COMPRESS_NEVER,     /* plain Native */
};

struct ch_pipe_params {
    struct ch_query_params src; /* the SELECT, e.g. "SELECT a, b FROM t ... FORMAT Native" */
    struct ch_query_params dst; /* "INSERT INTO t (a, b) FORMAT Native" */
    /* The ring buffer between the two: 0 = 1 MiB; CH_PIPE_BUFFER_MIN..MAX. */
    size_t buffer_bytes;
    /* Cap on the bytes this pipe moves (as sent to the destination,
     * compressed or not); 0 = unlimited. Applies together with
     * ch_client_set_rate(). */
    long long max_bytes_per_second;
    enum ch_pipe_compression compression; /* 0 = AUTO, see above */
};

int ch_pipe_start(struct ch_client *c, const struct ch_pipe_params *pp, ch_pipe_cb cb, void *data,
                  struct ch_pipe **ret, struct chc_err *err);
/* Abort both transfers; cb runs later, from the loop, with CHC_ECANCELED.
 * No-op once both transfers ended (cb then reports the real outcome, even if
 * it has not run yet). NULL-safe. */
void ch_pipe_cancel(struct ch_pipe *p);
/* NULL-safe; only after cb ran. Returns NULL. */
struct ch_pipe *ch_pipe_free(struct ch_pipe *p);
/* 0 ok, else the first error of either side (see above). Valid once cb runs. */
int ch_pipe_status(const struct ch_pipe *p);
/* The message for a failed pipe ({0, ""} on success). */
const struct chc_err *ch_pipe_error(const struct ch_pipe *p);
/* The ClickHouse exception number of the failing side, 0 if none. */
int ch_pipe_exception_code(const struct ch_pipe *p);
/* Bytes handed to the INSERT so far (as sent: compressed or not). */
unsigned long long ch_pipe_bytes(const struct ch_pipe *p);
/* 1 if the data moved compressed (compress=1/decompress=1), 0 if plain
 * Native. Decided before the SELECT starts. */
int ch_pipe_compressed(const struct ch_pipe *p);
/* A token bucket shared by all pipes of c (each also keeps its own
 * max_bytes_per_second); <= 0 removes it. Takes effect at once, also for
 * running pipes. */
void ch_client_set_rate(struct ch_client *c, long long bytes_per_second);

/* ---- pure helpers (no I/O; unit-tested) ---- */

/* 1 if a ClickHouse exception code is deterministic (see CHC_ECH_PERMANENT). */
int ch_exception_is_permanent(int code);

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
 * Valid until ch_rows_free(). A field may contain NUL bytes: see _len.
 * Callers that need a string must not pass it on unchecked: a server may
 * answer \N where a value was expected (e.g. a DESCRIBE field); use
 * ch_rows_str() there. */
const char *ch_rows_get(const struct ch_rows *r, size_t row, size_t col);
/* As ch_rows_get(), but never NULL: "" for \N or an index out of range. */
const char *ch_rows_str(const struct ch_rows *r, size_t row, size_t col);
/* 1 if the field exists and is \N, else 0. */
int ch_rows_is_null(const struct ch_rows *r, size_t row, size_t col);
size_t ch_rows_len(const struct ch_rows *r, size_t row, size_t col);
struct ch_rows *ch_rows_free(struct ch_rows *r);

#endif

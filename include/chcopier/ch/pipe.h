/* pipe.h — pipes: one source SELECT streamed into one destination INSERT
 * (src/ch/pipe.c).
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
#ifndef CHC_CH_PIPE_H
#define CHC_CH_PIPE_H

#include <stddef.h>

#include "chcopier/base/err.h"
#include "chcopier/ch/client.h"
#include "chcopier/ch/query.h"

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

#endif

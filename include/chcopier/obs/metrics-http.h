/* metrics-http.h — the registry (metrics.h) served at GET /metrics.
 *
 * An optional tiny HTTP server on the caller's uv_loop_t. Everything runs on
 * the loop's thread.
 *
 * Call sequence:
 *   1. chc_metrics_new(&m, err) (metrics.h).
 *   2. chc_metrics_listen(m, loop, "127.0.0.1", port, err) to serve
 *      http://127.0.0.1:port/metrics from the loop; port 0 picks a free port,
 *      read it back with chc_metrics_port(m). A busy port fails with
 *      -EADDRINUSE and a message naming host:port. Deciding that "no port"
 *      means "no server" is the caller's business. The server's handles are
 *      unreferenced: it never keeps uv_run() going by itself and answers
 *      while the loop runs for the caller's own work.
 *   3. chc_metrics_free(m) closes the server with the registry; run the loop
 *      afterwards so the close callbacks can finish (metrics.h, step 4).
 *
 * Limits (bounded memory): at most CHC_METRICS_MAX_CLIENTS connections at
 * once (more are accepted and closed at once), requests up to
 * CHC_METRICS_MAX_REQUEST bytes of headers (bigger ones are closed without an
 * answer), and each connection is closed CHC_METRICS_CLIENT_TIMEOUT_MS
 * (metrics.h; chc_metrics_set_client_timeout()) after it was accepted
 * whatever its state. Answers: GET or HEAD of /metrics or / (any query string
 * ignored) → 200 text/plain; version=0.0.4; other paths → 404; other methods
 * → 405; malformed request line → 400. Every answer has Content-Length and
 * Connection: close, and the connection is closed after it.
 */
#ifndef CHC_METRICS_HTTP_H
#define CHC_METRICS_HTTP_H

#include <uv.h>

#include "chcopier/base/err.h"
#include "chcopier/obs/metrics.h"

#define CHC_METRICS_MAX_CLIENTS 32
#define CHC_METRICS_MAX_REQUEST 8192

/* Serve the registry on host:port (IPv4 or IPv6 literal, NULL = 127.0.0.1;
 * port 0 = any free port) from loop. Once per registry: a second call fails
 * with -EALREADY. On failure (e.g. -EADDRINUSE) the half-made listener is
 * already closing: running the loop, as at shutdown, releases it. */
int chc_metrics_listen(struct chc_metrics *m, uv_loop_t *loop, const char *host, int port,
                       struct chc_err *err);
/* The bound port, or -ENOTCONN without a server. */
int chc_metrics_port(const struct chc_metrics *m);

#endif

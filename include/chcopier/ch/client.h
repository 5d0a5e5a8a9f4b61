/* client.h — the ClickHouse HTTP client: queries over curl_multi on a libuv
 * loop (src/ch/client.c). What a query sends and how it ended: query.h.
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
 * Cancellation only abandons the transfer (the connection is closed). With
 * wait_end_of_query=1 the server notices that only when it answers, so a
 * cancelled long query keeps running server-side; use KILL QUERY WHERE
 * query_id = ... if that matters.
 */
#ifndef CHC_CH_CLIENT_H
#define CHC_CH_CLIENT_H

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/query.h"

struct ch_client;

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

/* For code with nothing else to do: start the query and uv_run(UV_RUN_ONCE)
 * the loop until it completes (other queries progress meanwhile). Must not be
 * called from inside any libuv callback (returns CHC_ESTATE if it detects a
 * ch callback). On success the body is appended to out if out != NULL
 * (out's own cap applies: CHC_ETOOBIG). */
int ch_query_sync(struct ch_client *c, const struct ch_query_params *p, struct chc_buf *out,
                  struct chc_err *err);

#endif

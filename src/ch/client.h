/* client.h — internals of client.c: struct ch_client, curl_multi driven by a
 * libuv loop, and the two calls the pipe code needs to run its transfers.
 * The public part (ch_client_new/_free, ch_query_start/_cancel/_sync) is in
 * chcopier/ch/client.h.
 *
 * The pipe code sits above the client: it calls in here, and the client
 * calls it back only through the hooks it installed (struct
 * ch__client_hooks) and each query's finish function, never by name.
 */
#ifndef CHC_SRC_CH_CLIENT_H
#define CHC_SRC_CH_CLIENT_H

#include <stdint.h>

#include <curl/curl.h>
#include <uv.h>

#include "chcopier/base/err.h"
#include "chcopier/ch/client.h"
#include "ch/bucket.h"

struct compress_note;
struct sock_ctx;

/* What a layer above (the pipe code) hangs on a client. Each may be NULL. */
struct ch__client_hooks {
    /* After every curl_multi_socket_action(), before finished transfers are
     * collected: the one place where paused transfers may be resumed and
     * new ones added (never inside a curl callback). */
    void (*after_io)(struct ch_client *c);
    /* First thing in ch_client_free(), before the running queries are
     * cancelled. */
    void (*closing)(struct ch_client *c);
    /* In the last close callback, just before c's memory is freed. */
    void (*release)(struct ch_client *c);
};

struct ch_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_idle_t defer;  /* delivers cancellations from the loop */
    int open_handles; /* timer + defer + throttle, until their close callbacks */
    int closing;      /* ch_client_free() was called */
    int dispatching;  /* inside run_done() */
    struct ch_query *running;
    struct ch_query *done_head, **done_tail;
    struct sock_ctx *socks;
    const struct ch__client_hooks *hooks; /* installed by the pipe code */
    /* The pipe code's; the client only opens and closes the throttle timer. */
    struct ch_pipe *pipes;       /* pipes whose callback has not run */
    int kick_pending;            /* some pipe has a kick[] or start_dst flag set */
    uv_timer_t throttle;         /* resumes throttled uploads */
    uint64_t throttle_due;       /* uv_now() when throttle fires */
    struct ch_bucket rate;       /* ch_client_set_rate(), shared by its pipes */
    struct compress_note *notes; /* source servers probed for compress=1 */
};

/* Hand q (from ch__query_create) to the multi: from here on its callback
 * will run. */
int ch__client_add(struct ch_client *c, struct ch_query *q, struct chc_err *err);
/* Take a running query off the wire and queue its callback for the loop,
 * failed with CHC_ECANCELED and why. */
void ch__client_abort(struct ch_query *q, const char *why);

#endif

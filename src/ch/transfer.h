/* transfer.h — internals of transfer.c: struct ch_pipe, and the calls with
 * which pipe.c starts, drives and ends a pipe's two transfers. The public
 * part of pipes is chcopier/ch/pipe.h.
 */
#ifndef CHC_SRC_CH_TRANSFER_H
#define CHC_SRC_CH_TRANSFER_H

#include "chcopier/base/err.h"
#include "chcopier/ch/pipe.h"
#include "ch/bucket.h"
#include "ch/cstream.h"
#include "ch/ring.h"

enum pipe_side {
    PIPE_SRC,
    PIPE_DST,
    _PIPE_SIDE_MAX,
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
    struct ch_bucket rate;
    unsigned long long bytes;
    int status, exc_code;
    struct chc_err err;
    struct ch_pipe *prev, *next; /* c->pipes */
};

/* "source" or "destination", as messages name a side. */
static inline const char *pipe_side_name(enum pipe_side s)
{
    return s == PIPE_SRC ? "source" : "destination";
}

/* Which half of p q is; the compression probe counts as the source. */
static inline enum pipe_side pipe_side_of(const struct ch_pipe *p, const struct ch_query *q)
{
    return q == p->side[PIPE_DST] ? PIPE_DST : PIPE_SRC;
}

/* Turn p's two created queries (p->side[], not started) into its transfers:
 * their curl callbacks, buffers and finish functions; the INSERT gets a
 * connection of its own, reset when closed. */
int ch__transfer_setup(struct ch_pipe *p, struct chc_err *err);

/* The pipe's error is the first one: a later one is a consequence. */
void ch__pipe_fail_from(struct ch_pipe *p, const struct ch_query *q);
/* Fail p as cancelled (unless it failed already). */
void ch__pipe_cancelled(struct ch_pipe *p, const char *why);
/* The INSERT failed: if the SELECT's stream ended with an exception, the
 * destination choked on that text and the source is to blame. */
void ch__pipe_blame_source(struct ch_pipe *p);
/* Abort whichever side still runs; an INSERT not started never will. */
void ch__pipe_abort_running(struct ch_pipe *p, const char *why);

/* Do what p's flags ask: start the INSERT, resume paused transfers. Never
 * from inside a curl callback. */
void ch__pipe_kick(struct ch_pipe *p);
/* ch__pipe_kick() every pipe of c while some has a flag set (the client's
 * after_io hook). */
void ch__pipe_run_kicks(struct ch_client *c);
/* Let every throttled upload of c try again (the rate may have changed). */
void ch__pipe_unthrottle(struct ch_client *c);

#endif

/* claims.h — ephemeral claims in ZooKeeper: the locks that make a piece, a
 * partition's move or a table's initialisation one worker's, and the
 * max_workers slots.
 *
 *   1. A claim is ours when our session owns the node (ephemeralOwner),
 *      never because it holds our id: a create whose reply was lost
 *      (connection loss, then "node exists") is recognised as ours.
 *   2. A claim held by a dead worker on this host is taken over at once
 *      (its session would hold it until it expires): dead means the same
 *      kernel boot and pid namespace as ours (the hostkey in the claim's
 *      data) and no process with its pid. Takeovers of one node are
 *      serialised by "<path>.takeover".
 *   3. Releasing deletes only a node our session owns, at its version.
 *   4. A slot is active/<id>#<n>, taken with a multi-op that checks the
 *      version of active, so concurrent takers cannot overshoot.
 */
#ifndef CHC_STATE_CLAIMS_H
#define CHC_STATE_CLAIMS_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct zk_session;

/* Who claims: our session, id ("<host>#<time>_<pid>"), host name and
 * hostkey, the claim's data (st_claim_encode), and how to pass time while
 * retrying (the caller's loop must keep running). */
struct st_claimer {
    struct zk_session *zs;
    const char *id;
    const char *host;
    const char *hostkey;
    const char *data;
    void (*pause)(void *arg, unsigned ms);
    void *pause_arg;
};

/* 0 taken (or already ours), CHC_EZK_NODEEXISTS held by a live other. */
int st_claim(const struct st_claimer *c, const char *path, struct chc_err *err);
/* Release *path (ours only) and free it; NULL-safe. Retries a connection
 * loss (up to 30 s) while the session lives. */
void st_release(const struct st_claimer *c, char **path);
/* A max_workers slot under <task>/active: CHC_EBUSY when all are taken. */
int st_slot_take(const struct st_claimer *c, const char *task_path, unsigned max_workers,
                 unsigned long seq, char **ret_path, struct chc_err *err);
/* Delete the slots and registrations of dead workers on this host. */
void st_reap_dead_local(const struct st_claimer *c, const char *task_path);

#endif

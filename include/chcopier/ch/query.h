/* query.h — one ClickHouse query: what to send (struct ch_query_params) and,
 * once its callback ran, its outcome (src/ch/query.c). Queries are started,
 * cancelled and waited for through the client (client.h, whose call
 * sequence the steps below refer to).
 *
 * Errors (ch_query_status(), translated once, in src/ch/query.c):
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
 */
#ifndef CHC_CH_QUERY_H
#define CHC_CH_QUERY_H

#include <stddef.h>

#include "chcopier/base/err.h"
#include "chcopier/config/task.h"

struct ch_query;

/* Called exactly once per started query; see step 3 in client.h. */
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

/* NULL-safe; only after cb ran (see step 4 in client.h). Returns NULL. */
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

#endif

/* errcode.h — the project's error codes, their names and their classes.
 *
 * Every fallible function returns 0 on success or a negative code: -errno for
 * system causes, CHC_E* (below -4000, generated from CHC_ERRNO_MAP) for
 * project causes. This header is the code alone; the message that travels
 * with it is struct chc_err (err.h). Depends on nothing, so buf.c can return
 * CHC_ETOOBIG without depending on the message machinery.
 */
#ifndef CHC_ERRCODE_H
#define CHC_ERRCODE_H

#define CHC_ERRNO_MAP(XX)                                                      \
    XX(EUSAGE, "invalid usage")                                                \
    XX(ECONFIG, "invalid configuration")                                       \
    XX(EPARSE, "parse error")                                                  \
    XX(ETOOBIG, "value too large")                                             \
    XX(EZK, "zookeeper error")                                                 \
    XX(EZK_CONNLOSS, "zookeeper connection lost")                              \
    XX(EZK_EXPIRED, "zookeeper session expired")                               \
    XX(EZK_NONODE, "zookeeper node does not exist")                            \
    XX(EZK_NODEEXISTS, "zookeeper node already exists")                        \
    XX(EZK_BADVERSION, "zookeeper version conflict")                           \
    XX(EZK_NOTEMPTY, "zookeeper node has children")                            \
    XX(ECH_CONN, "cannot reach clickhouse")                                    \
    XX(ECH_HTTP, "clickhouse http error")                                      \
    XX(ECH_EXCEPTION, "clickhouse exception")                                  \
    XX(ECH_AUTH, "clickhouse authentication failed")                           \
    XX(ECH_PERMANENT, "clickhouse refused the statement for good")             \
    XX(EPREFLIGHT, "the table task cannot run as given")                       \
    XX(ECANCELED, "operation canceled")                                        \
    XX(EMISMATCH, "verification mismatch")                                     \
    XX(EBUSY, "resource busy")                                                 \
    XX(EFAULT_INJECTED, "fault injected")                                      \
    XX(ESTATE, "inconsistent state")                                           \
    XX(EZK_NOAUTH, "zookeeper node not readable or writable without its identity")

enum chc_errno {
    CHC__EFIRST = -4096,
#define CHC__ERR_ENUM(name, s) CHC_##name,
    CHC_ERRNO_MAP(CHC__ERR_ENUM)
#undef CHC__ERR_ENUM
    CHC__ELAST
};

/* Name of a code ("ECONFIG", "ENOENT", ...); never NULL. */
const char *chc_err_name(int code);
/* Description of a code; never NULL. */
const char *chc_strerror(int code);

/* True for causes worth retrying: lost connections, timeouts, busy servers,
 * server exceptions not known to be deterministic. */
int chc_err_is_transient(int code);
/* True for causes that retrying cannot fix: bad input, a statement the
 * server refused deterministically, a refused preflight, failed auth. */
int chc_err_is_permanent(int code);

#endif

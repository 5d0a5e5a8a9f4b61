/* err.h — error codes and the message that travels with them.
 *
 * Every fallible function returns 0 on success or a negative code: -errno for
 * system causes, CHC_E* (below -4000) for project causes. A `struct chc_err *`
 * passed as the last argument receives a one-line human message. Foreign codes
 * (ZooKeeper, curl, HTTP, ClickHouse exceptions) are translated once, at the
 * module boundary that sees them.
 */
#ifndef CHC_ERR_H
#define CHC_ERR_H

#include <stdarg.h>

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

#define CHC_ERR_MSG_MAX 1024

struct chc_err {
    int code;
    char msg[CHC_ERR_MSG_MAX];
};

#define CHC_ERR_INIT {0, {0}}

/* Name of a code ("ECONFIG", "ENOENT", ...); never NULL. */
const char *chc_err_name(int code);
/* Description of a code; never NULL. */
const char *chc_strerror(int code);

/* Fill *err (if not NULL) and return code; code must be negative. */
int chc_err_set(struct chc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int chc_err_setv(struct chc_err *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Prepend "prefix: " to the message already in err; returns err->code. */
int chc_err_prefix(struct chc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void chc_err_clear(struct chc_err *err);

/* True for causes worth retrying: lost connections, timeouts, busy servers,
 * server exceptions not known to be deterministic. */
int chc_err_is_transient(int code);
/* True for causes that retrying cannot fix: bad input, a statement the
 * server refused deterministically, a refused preflight, failed auth. */
int chc_err_is_permanent(int code);

/* Abort with file:line for impossible states (programmer errors only). */
#define CHC_BUG(...) chc__bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void chc__bug(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

/* err.h — the message that travels with an error code.
 *
 * Every fallible function returns 0 on success or a negative code (errcode.h:
 * -errno or CHC_E*). A `struct chc_err *` passed as the last argument
 * receives a one-line human message, masked with the process-wide secrets
 * (secrets.h). Foreign codes (ZooKeeper, curl, HTTP, ClickHouse exceptions)
 * are translated once, at the module boundary that sees them. The codes come
 * with this header: every caller of chc_err_set() names one.
 */
#ifndef CHC_ERR_H
#define CHC_ERR_H

#include <stdarg.h>

#include "chcopier/base/errcode.h"

#define CHC_ERR_MSG_MAX 1024

struct chc_err {
    int code;
    char msg[CHC_ERR_MSG_MAX];
};

#define CHC_ERR_INIT {0, {0}}

/* Fill *err (if not NULL) and return code; code must be negative. */
int chc_err_set(struct chc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int chc_err_setv(struct chc_err *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Prepend "prefix: " to the message already in err; returns err->code. */
int chc_err_prefix(struct chc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void chc_err_clear(struct chc_err *err);

#endif

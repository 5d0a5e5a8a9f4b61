/* err.c — error code names, descriptions and the message buffer helpers.
 * Owns the mapping from CHC_E* to text; it knows nothing about ZooKeeper or
 * curl (their codes are translated in zk.c and src/ch/query.c). Every
 * message is masked with the process-wide secrets (secrets.h) before it is
 * stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/err.h"
#include "chcopier/base/secrets.h"

#include "base/banned.h"

const char *chc_err_name(int code)
{
    switch (code) {
#define XX(name, s) \
    case CHC_##name: return #name;
        CHC_ERRNO_MAP(XX)
#undef XX
    case 0: return "OK";
    case -ENOMEM: return "ENOMEM";
    case -ENOENT: return "ENOENT";
    case -EINVAL: return "EINVAL";
    case -EIO: return "EIO";
    case -ETIMEDOUT: return "ETIMEDOUT";
    case -EACCES: return "EACCES";
    default: return "EUNKNOWN";
    }
}

const char *chc_strerror(int code)
{
    switch (code) {
#define XX(name, s) \
    case CHC_##name: return s;
        CHC_ERRNO_MAP(XX)
#undef XX
    case 0: return "success";
    default:
        if (code < 0 && code > -4096)
            return strerror(-code);
        return "unknown error";
    }
}

/* Every message passes here: secrets masked (on the whole text, before it
 * is cut to size), then made one line. */
static void finish_msg(struct chc_err *err, char *text, size_t size, int truncated)
{
    char *p;
    size_t n;

    chc_secrets_mask_str(text, size, truncated);
    n = strnlen(text, size);
    if (n >= sizeof(err->msg))
        n = sizeof(err->msg) - 1; /* cut to size, deliberately */
    memcpy(err->msg, text, n);
    err->msg[n] = '\0';
    /* Messages are one line by contract, even when they quote user input. */
    for (p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

int chc_err_setv(struct chc_err *err, int code, const char *fmt, va_list ap)
{
    char text[4 * CHC_ERR_MSG_MAX];
    int n;

    if (!err)
        return code;
    err->code = code;
    n = vsnprintf(text, sizeof(text), fmt, ap);
    finish_msg(err, text, sizeof(text), n >= (int)sizeof(text));
    return code;
}

int chc_err_set(struct chc_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    chc_err_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int chc_err_prefix(struct chc_err *err, const char *fmt, ...)
{
    char prefix[CHC_ERR_MSG_MAX];
    char old[CHC_ERR_MSG_MAX];
    char text[2 * CHC_ERR_MSG_MAX + 2];
    va_list ap;
    int n;

    if (!err)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    n = snprintf(text, sizeof(text), "%s: %s", prefix, old);
    finish_msg(err, text, sizeof(text), n >= (int)sizeof(text));
    return err->code;
}

void chc_err_clear(struct chc_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

int chc_err_is_transient(int code)
{
    switch (code) {
    case CHC_EZK_CONNLOSS:
    case CHC_ECH_CONN:
    case CHC_ECH_EXCEPTION:
    case CHC_EBUSY:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EAGAIN:
        return 1;
    default:
        return 0;
    }
}

int chc_err_is_permanent(int code)
{
    switch (code) {
    case CHC_EUSAGE:
    case CHC_ECONFIG:
    case CHC_ECH_PERMANENT:
    case CHC_EPREFLIGHT:
    case CHC_ECH_AUTH:
    case CHC_EZK_NOAUTH:
        return 1;
    default:
        return 0;
    }
}

_Noreturn void chc__bug(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "BUG: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

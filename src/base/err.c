/* err.c — struct chc_err: filling, prefixing and clearing the message.
 *
 * Every message is masked with the process-wide secrets (secrets.h) before it
 * is stored, and made one line. The codes and their text are errcode.c's;
 * CHC_BUG() is bug.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "chcopier/base/err.h"
#include "chcopier/base/secrets.h"

#include "base/banned.h"

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

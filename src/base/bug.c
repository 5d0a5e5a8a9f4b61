/* bug.c — chc__bug(), the function behind CHC_BUG() (bug.h).
 *
 * Owns nothing but the one line it writes to stderr before abort(). It uses
 * only libc: no chc_buf, no secrets, no log module, so it can be called from
 * any of them (buf.c does) without a cycle.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "chcopier/base/bug.h"

#include "base/banned.h"

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

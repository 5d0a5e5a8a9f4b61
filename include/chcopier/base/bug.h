/* bug.h — CHC_BUG(): stop at an impossible state, saying where.
 *
 * For programmer errors only (a state machine reaching a state it cannot be
 * in, an API used against its contract), never for bad input or a failing
 * server: those are errors (err.h) returned to the caller. Depends on
 * nothing, so every other module, buf.c included, may use it.
 */
#ifndef CHC_BUG_H
#define CHC_BUG_H

/* Print "BUG: file:line: message" to stderr and abort(). */
#define CHC_BUG(...) chc__bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void chc__bug(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

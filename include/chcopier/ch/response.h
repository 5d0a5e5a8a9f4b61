/* response.h — ClickHouse exception codes and texts in what a server
 * answers (src/ch/response.c). Pure: no I/O; unit-tested and fuzzed.
 */
#ifndef CHC_CH_RESPONSE_H
#define CHC_CH_RESPONSE_H

#include <stddef.h>

/* 1 if a ClickHouse exception code is deterministic (CHC_ECH_PERMANENT,
 * query.h). */
int ch_exception_is_permanent(int code);
/* N of the first "Code: N." or "Code: N," that starts the text or a line of
 * it (ClickHouse >= 19 uses '.', 18.x ','); 0 if none. NULL-safe. */
int ch_parse_exception_code(const char *body);
/* Start of a ClickHouse exception that ends a response body: the last line
 * that starts with "Code: N[.,]" and contains "DB::Exception"; NULL if the
 * body does not end with one. */
const char *ch_find_trailing_exception(const char *body, size_t len);

#endif

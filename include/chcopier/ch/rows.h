/* rows.h — TabSeparated results (src/ch/tsv.c). Pure: no I/O; unit-tested
 * and fuzzed.
 *
 * ch_tsv_parse() splits a `FORMAT TabSeparated` body into rows (on '\n') and
 * fields (on '\t') and undoes ClickHouse's escaping: \b \f \n \r \t \0 \a \v
 * \\ \' \" \xHH, and backslash + any other byte is that byte; a field that is
 * exactly \N is NULL. Every row must have the same number of fields
 * (CHC_EPARSE otherwise, or for a trailing lone backslash or bad \x). An empty
 * body is zero rows; a final row without '\n' is accepted.
 */
#ifndef CHC_CH_ROWS_H
#define CHC_CH_ROWS_H

#include <stddef.h>

#include "chcopier/base/err.h"

struct ch_rows;

int ch_tsv_parse(const char *body, size_t len, struct ch_rows **ret, struct chc_err *err);
size_t ch_rows_count(const struct ch_rows *r);
size_t ch_rows_ncols(const struct ch_rows *r);
/* The unescaped field, NUL-terminated; NULL for \N or an index out of range.
 * Valid until ch_rows_free(). A field may contain NUL bytes: see _len.
 * Callers that need a string must not pass it on unchecked: a server may
 * answer \N where a value was expected (e.g. a DESCRIBE field); use
 * ch_rows_str() there. */
const char *ch_rows_get(const struct ch_rows *r, size_t row, size_t col);
/* As ch_rows_get(), but never NULL: "" for \N or an index out of range. */
const char *ch_rows_str(const struct ch_rows *r, size_t row, size_t col);
/* 1 if the field exists and is \N, else 0. */
int ch_rows_is_null(const struct ch_rows *r, size_t row, size_t col);
size_t ch_rows_len(const struct ch_rows *r, size_t row, size_t col);
struct ch_rows *ch_rows_free(struct ch_rows *r);

#endif

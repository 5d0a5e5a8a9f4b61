/* file.h — read a whole file (capped at max bytes): *ret (NUL-terminated,
 * caller frees) and *ret_len. CHC_ECONFIG names the path when it cannot be
 * read; CHC_ETOOBIG past max. */
#ifndef CHC_FILE_H
#define CHC_FILE_H

#include <stddef.h>

#include "chcopier/base/err.h"

int chc_read_file(const char *path, size_t max, char **ret, size_t *ret_len,
                  struct chc_err *err);

#endif

/* response.h — internals of response.c, the pure reading of what ClickHouse
 * answers over HTTP; the public part is chcopier/ch/response.h (exception
 * codes and texts). Nothing here does I/O. Used by the query and pipe code,
 * and by tests/unit/test-ch.c and tests/fuzz/fuzz-http.c.
 */
#ifndef CHC_SRC_CH_RESPONSE_H
#define CHC_SRC_CH_RESPONSE_H

#include <stddef.h>

/* The first occurrence of needle in hay[0..n) (binary-safe), or NULL. */
const char *ch__mem_find(const char *hay, size_t n, const char *needle);
/* "Code: N." or "Code: N," at s (n bytes available): N, else 0. */
int ch__exception_code_at(const char *s, size_t n);
/* 1 for the exception codes of a refused login (192, 193, 194, 516). */
int ch__is_auth_code(int code);

/* Where the exception text that ends a binary result starts, or NULL: the
 * data ends with '\n' and has a "Code: N[.,]" whose rest contains
 * "DB::Exception". ClickHouse writes it right after the last complete block,
 * so it is usually preceded by binary data, not a newline. Of several
 * candidates the earliest one with no NUL byte up to the end wins (the whole
 * message), else the last one. */
const char *ch__find_stream_exception(const char *s, size_t len);

enum ch__header_kind {
    CH_HEADER_OTHER,
    CH_HEADER_STATUS,         /* "HTTP/...": a new response begins (after 100) */
    CH_HEADER_EXCEPTION_CODE, /* "X-ClickHouse-Exception-Code: N" */
};

/* Classify one response header line as curl hands it (n bytes, not
 * NUL-terminated, CRLF included). For CH_HEADER_EXCEPTION_CODE *ret_code
 * gets N (its first 9 digits; 0 without digits). */
int ch__header_line(const char *line, size_t n, int *ret_code);

/* What a failed INSERT's server had answered, read from the socket after
 * curl gave up (len raw bytes: "HTTP/1.x NNN ...\r\n<headers>\r\n\r\n<body>").
 * 1 if it is an HTTP status >= 400 whose body holds "Code: ": *ret_http,
 * and *ret_text and *ret_len the text from "Code: " to the next CRLF or the
 * end (inside s). 0 otherwise (outputs untouched). */
int ch__salvaged_answer(const char *s, size_t len, long *ret_http, const char **ret_text,
                        size_t *ret_len);

#endif

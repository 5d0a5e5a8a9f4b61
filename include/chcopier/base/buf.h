/* buf.h — a growable, capped byte buffer (git's strbuf, curl's dynbuf).
 *
 * Invariants: b->buf is never NULL and always NUL-terminated (it points at a
 * shared empty string until the first append); b->len < b->alloc when
 * allocated; b->max (0 = unlimited) caps len, an append past it fails with
 * CHC_ETOOBIG and leaves the buffer unchanged. chc_buf_take() is the only way
 * to take ownership of the bytes.
 */
#ifndef CHC_BUF_H
#define CHC_BUF_H

#include <stdarg.h>
#include <stddef.h>

extern char chc_buf_slopbuf[];

struct chc_buf {
    char *buf;
    size_t len;
    size_t alloc;
    size_t max;
};

#define CHC_BUF_INIT {chc_buf_slopbuf, 0, 0, 0}

#define CHC_WUR __attribute__((warn_unused_result))

void chc_buf_init(struct chc_buf *b, size_t max);
void chc_buf_release(struct chc_buf *b);
void chc_buf_reset(struct chc_buf *b);
/* Detach the bytes (caller frees); the buffer is re-initialised. */
char *chc_buf_take(struct chc_buf *b, size_t *ret_len);

int chc_buf_grow(struct chc_buf *b, size_t extra) CHC_WUR;
int chc_buf_add(struct chc_buf *b, const void *data, size_t n) CHC_WUR;
int chc_buf_addstr(struct chc_buf *b, const char *s) CHC_WUR;
int chc_buf_addch(struct chc_buf *b, char c) CHC_WUR;
int chc_buf_addf(struct chc_buf *b, const char *fmt, ...) CHC_WUR
    __attribute__((format(printf, 2, 3)));
int chc_buf_addvf(struct chc_buf *b, const char *fmt, va_list ap) CHC_WUR
    __attribute__((format(printf, 2, 0)));
/* Append s as a single-quoted SQL string literal (backslash-escaped). */
int chc_buf_add_sqlstr(struct chc_buf *b, const char *s) CHC_WUR;
/* Append s as a back-quoted SQL identifier. */
int chc_buf_add_ident(struct chc_buf *b, const char *s) CHC_WUR;
/* Append s percent-encoded for a URL query component. */
int chc_buf_add_urlenc(struct chc_buf *b, const char *s) CHC_WUR;
/* Append s escaped for a JSON string body (no surrounding quotes). */
int chc_buf_add_json(struct chc_buf *b, const char *s) CHC_WUR;
void chc_buf_setlen(struct chc_buf *b, size_t len);
void chc_buf_trim(struct chc_buf *b);

/* Free an array of n strings (NULL-safe). */
void chc_strv_free(char **v, size_t n);
/* Duplicate a string; NULL on ENOMEM. xstrdup-like helpers. */
char *chc_strdup(const char *s);
char *chc_strndup(const char *s, size_t n);
/* Parse a whole decimal integer in [min, max]; 0 or -EINVAL/-ERANGE. */
int chc_parse_ll(const char *s, long long min, long long max, long long *ret);
int chc_parse_double(const char *s, double *ret);
/* "1", "true", "yes", "on" / "0", "false", "no", "off" (case-insensitive). */
int chc_parse_bool(const char *s, int *ret);

#endif

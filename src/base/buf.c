/* buf.c — struct chc_buf, the one growable string type, plus the few string
 * parsers everyone needs (integers, booleans). No I/O here.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/base/errcode.h"

#include "base/banned.h"

char chc_buf_slopbuf[1];

void chc_buf_init(struct chc_buf *b, size_t max)
{
    b->buf = chc_buf_slopbuf;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void chc_buf_release(struct chc_buf *b)
{
    if (b->alloc)
        free(b->buf);
    chc_buf_init(b, b->max);
}

void chc_buf_reset(struct chc_buf *b)
{
    chc_buf_setlen(b, 0);
}

void chc_buf_setlen(struct chc_buf *b, size_t len)
{
    if (!b->alloc)
        return;
    if (len > b->len)
        CHC_BUG("chc_buf_setlen beyond length");
    b->len = len;
    b->buf[len] = '\0';
}

char *chc_buf_take(struct chc_buf *b, size_t *ret_len)
{
    char *p;

    if (ret_len)
        *ret_len = b->len;
    if (!b->alloc) {
        p = calloc(1, 1);
    } else {
        p = b->buf;
    }
    chc_buf_init(b, b->max);
    return p;
}

int chc_buf_grow(struct chc_buf *b, size_t extra)
{
    size_t want, n;
    char *p;

    if (extra > SIZE_MAX / 2 - b->len)
        return CHC_ETOOBIG;
    want = b->len + extra + 1;
    if (b->max && b->len + extra > b->max)
        return CHC_ETOOBIG;
    if (want <= b->alloc)
        return 0;
    n = b->alloc ? b->alloc : 64;
    while (n < want)
        n *= 2;
    p = b->alloc ? realloc(b->buf, n) : malloc(n);
    if (!p)
        return -ENOMEM;
    if (!b->alloc)
        p[0] = '\0';
    b->buf = p;
    b->alloc = n;
    return 0;
}

int chc_buf_add(struct chc_buf *b, const void *data, size_t n)
{
    int r;

    r = chc_buf_grow(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}

int chc_buf_addstr(struct chc_buf *b, const char *s)
{
    return chc_buf_add(b, s, strlen(s));
}

int chc_buf_addch(struct chc_buf *b, char c)
{
    return chc_buf_add(b, &c, 1);
}

int chc_buf_addvf(struct chc_buf *b, const char *fmt, va_list ap)
{
    va_list aq;
    int n, r;

    va_copy(aq, ap);
    n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return -EINVAL;
    r = chc_buf_grow(b, (size_t)n);
    if (r < 0)
        return r;
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int chc_buf_addf(struct chc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = chc_buf_addvf(b, fmt, ap);
    va_end(ap);
    return r;
}

static int add_escaped(struct chc_buf *b, const char *s, char quote)
{
    size_t old = b->len;
    int r;

    r = chc_buf_addch(b, quote);
    for (; r == 0 && *s; s++) {
        if (*s == quote || *s == '\\')
            r = chc_buf_addch(b, '\\');
        if (r == 0)
            r = chc_buf_addch(b, *s);
    }
    if (r == 0)
        r = chc_buf_addch(b, quote);
    if (r < 0 && b->alloc)
        chc_buf_setlen(b, old);
    return r;
}

int chc_buf_add_sqlstr(struct chc_buf *b, const char *s)
{
    return add_escaped(b, s, '\'');
}

int chc_buf_add_ident(struct chc_buf *b, const char *s)
{
    return add_escaped(b, s, '`');
}

int chc_buf_add_urlenc(struct chc_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int r = 0;

    for (; r == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            r = chc_buf_addch(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            r = chc_buf_add(b, e, 3);
        }
    }
    return r;
}

int chc_buf_add_json(struct chc_buf *b, const char *s)
{
    int r = 0;

    for (; r == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': r = chc_buf_addstr(b, "\\\""); break;
        case '\\': r = chc_buf_addstr(b, "\\\\"); break;
        case '\n': r = chc_buf_addstr(b, "\\n"); break;
        case '\r': r = chc_buf_addstr(b, "\\r"); break;
        case '\t': r = chc_buf_addstr(b, "\\t"); break;
        default:
            if (c < 0x20)
                r = chc_buf_addf(b, "\\u%04x", c);
            else
                r = chc_buf_addch(b, (char)c);
        }
    }
    return r;
}

void chc_buf_trim(struct chc_buf *b)
{
    size_t start = 0, end = b->len;

    if (!b->alloc)
        return;
    while (start < end && isspace((unsigned char)b->buf[start]))
        start++;
    while (end > start && isspace((unsigned char)b->buf[end - 1]))
        end--;
    memmove(b->buf, b->buf + start, end - start);
    b->len = end - start;
    b->buf[b->len] = '\0';
}

void chc_strv_free(char **v, size_t n)
{
    size_t i;

    if (!v)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char *chc_strdup(const char *s)
{
    return s ? chc_strndup(s, strlen(s)) : NULL;
}

char *chc_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int chc_parse_ll(const char *s, long long min, long long max, long long *ret)
{
    char *end;
    long long v;

    if (!s)
        return -EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    while (isspace((unsigned char)*end))
        end++;
    if (end == s || *end)
        return -EINVAL;
    if (v < min || v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

int chc_parse_double(const char *s, double *ret)
{
    char *end;
    double v;

    if (!s)
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno == ERANGE)
        return -ERANGE;
    while (isspace((unsigned char)*end))
        end++;
    if (end == s || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}

int chc_parse_bool(const char *s, int *ret)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    size_t i;

    if (!s)
        return -EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    for (i = 0; i < 4; i++) {
        size_t n = strlen(yes[i]);
        if (!strncasecmp(s, yes[i], n) && !s[n + strspn(s + n, " \t\r\n")]) {
            *ret = 1;
            return 0;
        }
        n = strlen(no[i]);
        if (!strncasecmp(s, no[i], n) && !s[n + strspn(s + n, " \t\r\n")]) {
            *ret = 0;
            return 0;
        }
    }
    return -EINVAL;
}

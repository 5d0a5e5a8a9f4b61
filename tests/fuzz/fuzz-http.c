/* fuzz-http.c — libFuzzer target for the parsers of ClickHouse's HTTP
 * answers in src/ch/response.c: exception texts (ch_parse_exception_code,
 * ch_find_trailing_exception, ch__find_stream_exception), response header
 * lines (ch__header_line) and an INSERT's answer salvaged from its socket
 * (ch__salvaged_answer). Every input goes through all of them, as the
 * bytes a server could send.
 *
 * Invariants (any violation abort()s so libFuzzer keeps the input):
 *   1. a code found is positive and the text holds "Code: <it>" starting
 *      the text or a line;
 *   2. a trailing exception lies inside the body, starts a line with
 *      "Code: N." or "Code: N," and that line holds "DB::Exception"; one
 *      is found in a body whose last line is such a line;
 *   3. a stream exception lies inside the data, which ends with '\n', and
 *      starts with "Code: N[.,]" followed somewhere by "DB::Exception";
 *   4. a header line is classified as what it starts with;
 *   5. a salvaged answer is an HTTP/1.x status >= 400 whose text lies
 *      inside the input after its headers, starts with "Code: " and holds
 *      no CRLF.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chcopier/ch/ch.h"
#include "ch/response.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *mem_has(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle), i;

    for (i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return hay + i;
    return NULL;
}

/* "Code: N." or "Code: N," at s (n bytes), N of 1 to 9 digits and not 0:
 * 1 (what ClickHouse writes; "Code: 0," or ten digits are data). */
static int code_line(const char *s, size_t n)
{
    size_t i = 6;
    long v = 0;

    if (n < 8 || memcmp(s, "Code: ", 6))
        return 0;
    while (i < n && i < 15 && s[i] >= '0' && s[i] <= '9')
        v = v * 10 + (s[i++] - '0');
    return i > 6 && i < n && (s[i] == '.' || s[i] == ',') && v > 0;
}

/* The N of "Code: N[.,]" at s (NUL-terminated), -1 if none. */
static long long code_value(const char *s)
{
    long long v = 0;
    size_t i;

    if (!code_line(s, strnlen(s, 32)))
        return -1;
    for (i = 6; s[i] >= '0' && s[i] <= '9'; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static void check_code(const char *text)
{
    const char *p;
    int code = ch_parse_exception_code(text);

    if (code < 0)
        abort();
    if (code == 0)
        return;
    for (p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (code_value(p) == code)
            return;
    abort(); /* 1. */
}

static void check_trailing(const char *body, size_t n)
{
    const char *exc = ch_find_trailing_exception(body, n), *eol, *last;
    size_t i;

    if (exc) { /* 2. */
        i = (size_t)(exc - body);
        if (i >= n || (i > 0 && body[i - 1] != '\n') || !code_line(exc, n - i))
            abort();
        eol = memchr(exc, '\n', n - i);
        if (!mem_has(exc, eol ? (size_t)(eol - exc) : n - i, "DB::Exception"))
            abort();
        return;
    }
    /* A short body whose last line is an exception line must be found. */
    if (n == 0 || n > 4096)
        return;
    for (last = body + n; last > body && last[-1] == '\n'; last--)
        ;
    for (i = (size_t)(last - body); i > 0 && body[i - 1] != '\n'; i--)
        ;
    if (last > body + i && code_line(body + i, (size_t)(last - body) - i) &&
        mem_has(body + i, (size_t)(last - body) - i, "DB::Exception") &&
        !memchr(body + i, '\n', (size_t)(last - body) - i) && (size_t)(last - body) == n)
        abort();
}

static void check_stream(const char *s, size_t n)
{
    const char *exc = ch__find_stream_exception(s, n);
    size_t i;

    if (!exc)
        return;
    i = (size_t)(exc - s); /* 3. */
    if (i >= n || s[n - 1] != '\n' || !code_line(exc, n - i) ||
        !mem_has(exc, n - i, "DB::Exception"))
        abort();
}

static void check_header(const char *s, size_t n)
{
    int code = -1, kind = ch__header_line(s, n, &code);

    switch (kind) { /* 4. */
    case CH_HEADER_STATUS:
        if (n < 5 || memcmp(s, "HTTP/", 5) || code != -1)
            abort();
        break;
    case CH_HEADER_EXCEPTION_CODE:
        if (n <= 28 || strncasecmp(s, "X-ClickHouse-Exception-Code:", 28) || code < 0 ||
            code >= 1000000000)
            abort();
        break;
    case CH_HEADER_OTHER:
        if ((n >= 5 && !memcmp(s, "HTTP/", 5)) || code != -1)
            abort();
        break;
    default:
        abort();
    }
}

static void check_salvaged(const char *s, size_t n)
{
    const char *text = NULL, *head;
    size_t len = 0;
    long http = 0;

    if (!ch__salvaged_answer(s, n, &http, &text, &len))
        return;
    head = mem_has(s, n, "\r\n\r\n"); /* 5. */
    if (http < 400 || http > 999 || n < 13 || memcmp(s, "HTTP/1.", 7) || !head ||
        text < head || text + len > s + n || len < 6 || memcmp(text, "Code: ", 6) ||
        mem_has(text, len, "\r\n"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    check_code(text);
    check_trailing(text, size);
    check_stream(text, size);
    check_header(text, size);
    check_salvaged(text, size);
    free(text);
    return 0;
}

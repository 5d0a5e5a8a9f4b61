/* response.c — reading ClickHouse's HTTP answers, with no I/O: exception
 * codes and texts (in a body, at the end of a streamed result, at the end
 * of a binary stream), which exception codes are permanent or a refused
 * login, response header lines, and an INSERT's answer salvaged from its
 * socket. Input is untrusted server bytes (fuzzed by fuzz-http): every scan
 * is bounded by the length given, nothing assumes NUL termination unless
 * documented.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "chcopier/ch/response.h"
#include "ch/response.h"

#include "base/banned.h"

/* How far from the end of a body a trailing exception may start. */
#define TRAILING_EXCEPTION_WINDOW ((size_t)64 << 10)

const char *ch__mem_find(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle), i;

    if (m == 0 || n < m)
        return NULL;
    for (i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, m))
            return hay + i;
    return NULL;
}

int ch__exception_code_at(const char *s, size_t n)
{
    size_t i = 6, digits = 0;
    int code = 0;

    if (n < 8 || memcmp(s, "Code: ", 6) != 0)
        return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 9) {
        code = code * 10 + (s[i] - '0');
        i++;
        digits++;
    }
    if (!digits || i >= n || (s[i] != '.' && s[i] != ','))
        return 0;
    return code;
}

int ch_parse_exception_code(const char *body)
{
    const char *s = body;
    int code;

    if (!body)
        return 0;
    for (;;) {
        code = ch__exception_code_at(s, strnlen(s, 32));
        if (code > 0)
            return code;
        s = strchr(s, '\n');
        if (!s)
            return 0;
        s++;
    }
}

const char *ch_find_trailing_exception(const char *body, size_t len)
{
    size_t lo = len > TRAILING_EXCEPTION_WINDOW ? len - TRAILING_EXCEPTION_WINDOW : 0;
    size_t i;

    if (!body)
        return NULL;
    for (i = len; i-- > lo;) {
        const char *line = body + i, *eol;

        if (i > 0 && body[i - 1] != '\n')
            continue;
        if (ch__exception_code_at(line, len - i) <= 0)
            continue;
        eol = memchr(line, '\n', len - i);
        if (ch__mem_find(line, eol ? (size_t)(eol - line) : len - i, "DB::Exception"))
            return line;
    }
    return NULL;
}

const char *ch__find_stream_exception(const char *s, size_t len)
{
    const char *last = NULL, *first_clean = NULL;
    size_t i, first_nul = len; /* the first NUL at or after i */
    int has_exc_after = 0;     /* "DB::Exception" starts at or after i */

    if (!s || len == 0 || s[len - 1] != '\n')
        return NULL;
    for (i = len; i-- > 0;) {
        if (s[i] == '\0')
            first_nul = i;
        if (s[i] == 'D' && len - i >= 13 && !memcmp(s + i, "DB::Exception", 13))
            has_exc_after = 1;
        if (s[i] != 'C' || !has_exc_after || ch__exception_code_at(s + i, len - i) <= 0)
            continue;
        if (!last)
            last = s + i;
        if (first_nul == len)
            first_clean = s + i;
    }
    return first_clean ? first_clean : last;
}

int ch__is_auth_code(int code)
{
    return code == 192 || code == 193 || code == 194 || code == 516;
}

/* ClickHouse exception codes that the same statement meets again on every
 * try (ErrorCodes.cpp): bad SQL, unknown names, types that do not fit,
 * values that do not parse, missing rights or disk. Everything else
 * (network, timeouts, TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, ZooKeeper,
 * read-only replicas, ...) may pass and is retried. */
static const int permanent_codes[] = {
    1,   /* UNSUPPORTED_METHOD */
    2,   /* UNSUPPORTED_PARAMETER */
    6,   /* CANNOT_PARSE_TEXT */
    8,   /* THERE_IS_NO_COLUMN */
    10,  /* NOT_FOUND_COLUMN_IN_BLOCK */
    16,  /* NO_SUCH_COLUMN_IN_TABLE */
    20,  /* NUMBER_OF_COLUMNS_DOESNT_MATCH */
    27,  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
    35,  /* TOO_MANY_ARGUMENTS_FOR_FUNCTION */
    36,  /* BAD_ARGUMENTS */
    38,  /* CANNOT_PARSE_DATE */
    41,  /* CANNOT_PARSE_DATETIME */
    42,  /* NUMBER_OF_ARGUMENTS_DOESNT_MATCH */
    43,  /* ILLEGAL_TYPE_OF_ARGUMENT */
    44,  /* ILLEGAL_COLUMN */
    46,  /* UNKNOWN_FUNCTION */
    47,  /* UNKNOWN_IDENTIFIER */
    48,  /* NOT_IMPLEMENTED */
    50,  /* UNKNOWN_TYPE */
    53,  /* TYPE_MISMATCH */
    57,  /* TABLE_ALREADY_EXISTS */
    60,  /* UNKNOWN_TABLE */
    62,  /* SYNTAX_ERROR */
    63,  /* UNKNOWN_AGGREGATE_FUNCTION */
    69,  /* ARGUMENT_OUT_OF_BOUND */
    70,  /* CANNOT_CONVERT_TYPE */
    72,  /* CANNOT_PARSE_NUMBER */
    80,  /* INCORRECT_QUERY */
    81,  /* UNKNOWN_DATABASE */
    115, /* UNKNOWN_SETTING */
    117, /* INCORRECT_DATA */
    122, /* INCOMPATIBLE_COLUMNS */
    130, /* CANNOT_READ_ARRAY_FROM_TEXT */
    164, /* READONLY */
    179, /* MULTIPLE_EXPRESSIONS_FOR_ALIAS */
    184, /* ILLEGAL_AGGREGATION */
    190, /* SIZES_OF_ARRAYS_DOESNT_MATCH */
    192, /* UNKNOWN_USER */
    193, /* WRONG_PASSWORD */
    194, /* REQUIRED_PASSWORD */
    215, /* NOT_AN_AGGREGATE */
    243, /* NOT_ENOUGH_SPACE */
    248, /* INVALID_PARTITION_VALUE */
    321, /* VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE */
    352, /* AMBIGUOUS_COLUMN_NAME */
    359, /* TABLE_SIZE_EXCEEDS_MAX_DROP_SIZE_LIMIT */
    368, /* BAD_CAST (18.16: a Native column of another type) */
    386, /* NO_COMMON_TYPE */
    395, /* FUNCTION_THROW_IF_VALUE_IS_NON_ZERO */
    497, /* ACCESS_DENIED */
    516, /* AUTHENTICATION_FAILED */
};

int ch_exception_is_permanent(int code)
{
    size_t i;

    for (i = 0; i < sizeof(permanent_codes) / sizeof(permanent_codes[0]); i++)
        if (permanent_codes[i] == code)
            return 1;
    return 0;
}

int ch__header_line(const char *line, size_t n, int *ret_code)
{
    static const char name[] = "X-ClickHouse-Exception-Code:";
    size_t i;
    int code = 0;

    if (n >= 5 && !memcmp(line, "HTTP/", 5))
        return CH_HEADER_STATUS;
    if (n <= sizeof(name) - 1 || strncasecmp(line, name, sizeof(name) - 1) != 0)
        return CH_HEADER_OTHER;
    for (i = sizeof(name) - 1; i < n && line[i] == ' '; i++)
        ;
    for (; i < n && line[i] >= '0' && line[i] <= '9' && code < 100000000; i++)
        code = code * 10 + (line[i] - '0');
    *ret_code = code;
    return CH_HEADER_EXCEPTION_CODE;
}

int ch__salvaged_answer(const char *s, size_t len, long *ret_http, const char **ret_text,
                        size_t *ret_len)
{
    const char *body, *text, *eol;
    long http = 0;
    size_t i;

    if (len < 13 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
        return 0;
    for (i = 9; i < 12 && s[i] >= '0' && s[i] <= '9'; i++)
        http = http * 10 + (s[i] - '0');
    body = ch__mem_find(s, len, "\r\n\r\n");
    text = body ? ch__mem_find(body, len - (size_t)(body - s), "Code: ") : NULL;
    if (i != 12 || http < 400 || !text)
        return 0;
    eol = ch__mem_find(text, len - (size_t)(text - s), "\r\n");
    *ret_http = http;
    *ret_text = text;
    *ret_len = eol ? (size_t)(eol - text) : len - (size_t)(text - s);
    return 1;
}

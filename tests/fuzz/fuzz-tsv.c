/* fuzz-tsv.c — libFuzzer target for the TabSeparated parser (ch_tsv_parse
 * and the ch_rows accessors in src/ch/tsv.c).
 *
 * Invariants (any violation abort()s so libFuzzer keeps the input):
 *   1. a rejection is CHC_EPARSE (or -ENOMEM) with a one-line message;
 *   2. an accepted body has rows x columns fields; ch_rows_get() is NULL
 *      exactly for the \N fields (ch_rows_is_null), ch_rows_str() never,
 *      every field is NUL-terminated at its length, and out-of-range
 *      indexes give NULL, "" and length 0;
 *   3. the fields escaped again (\\ \t \n \0, NULL as \N) and joined with
 *      tabs and newlines parse back to the same rows, NULLs included.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/ch/ch.h"
#include "chcopier/base/err.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int escape_field(struct chc_buf *b, const char *v, size_t n)
{
    size_t i;
    int r = 0;

    if (!v)
        return chc_buf_addstr(b, "\\N");
    for (i = 0; r == 0 && i < n; i++) {
        switch (v[i]) {
        case '\\': r = chc_buf_addstr(b, "\\\\"); break;
        case '\t': r = chc_buf_addstr(b, "\\t"); break;
        case '\n': r = chc_buf_addstr(b, "\\n"); break;
        case '\0': r = chc_buf_addstr(b, "\\0"); break;
        default: r = chc_buf_addch(b, v[i]); break;
        }
    }
    return r;
}

static void check_rows(const struct ch_rows *t, size_t size)
{
    size_t i, j, n = ch_rows_count(t), m = ch_rows_ncols(t);

    if (n && !m)
        abort();
    for (i = 0; i < n; i++)
        for (j = 0; j < m; j++) {
            const char *v = ch_rows_get(t, i, j);
            size_t len = ch_rows_len(t, i, j);

            if (!ch_rows_str(t, i, j) || (v == NULL) != ch_rows_is_null(t, i, j))
                abort();
            if ((!v && len) || (v && v[len] != '\0') || len > size)
                abort();
        }
    if (ch_rows_get(t, n, 0) || ch_rows_get(t, 0, m) || ch_rows_len(t, n, 0) ||
        strcmp(ch_rows_str(t, 0, m), "") || ch_rows_is_null(t, n, 0))
        abort();
}

static void round_trip(const struct ch_rows *t)
{
    struct chc_err e = CHC_ERR_INIT;
    struct chc_buf b = CHC_BUF_INIT;
    struct ch_rows *u = NULL;
    size_t i, j, n = ch_rows_count(t), m = ch_rows_ncols(t);

    for (i = 0; i < n; i++)
        for (j = 0; j < m; j++)
            if (escape_field(&b, ch_rows_get(t, i, j), ch_rows_len(t, i, j)) < 0 ||
                chc_buf_addch(&b, j + 1 < m ? '\t' : '\n') < 0)
                goto out; /* out of memory: no verdict */
    if (ch_tsv_parse(b.buf, b.len, &u, &e) < 0)
        abort();
    if (ch_rows_count(u) != n || (n && ch_rows_ncols(u) != m))
        abort();
    for (i = 0; i < n; i++)
        for (j = 0; j < m; j++) {
            const char *a = ch_rows_get(t, i, j), *c = ch_rows_get(u, i, j);
            size_t la = ch_rows_len(t, i, j);

            if ((a == NULL) != (c == NULL) || la != ch_rows_len(u, i, j) ||
                (a && memcmp(a, c, la)))
                abort();
        }
out:
    ch_rows_free(u);
    chc_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chc_err e = CHC_ERR_INIT;
    struct ch_rows *t = NULL;
    int r;

    r = ch_tsv_parse((const char *)data, size, &t, &e);
    if (r < 0) {
        if ((r != CHC_EPARSE && r != -ENOMEM) || !e.msg[0] || strchr(e.msg, '\n'))
            abort();
        return 0;
    }
    check_rows(t, size);
    round_trip(t);
    ch_rows_free(t);
    return 0;
}

/* tsv.c — struct ch_rows: a `FORMAT TabSeparated` body split into rows and
 * fields with ClickHouse's escaping undone (chcopier/ch/rows.h documents the
 * rules). Two passes over the body, one to size and one to fill, so a result
 * costs two allocations. Pure: no I/O; the body is untrusted server bytes
 * (fuzzed by fuzz-tsv).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "chcopier/base/err.h"
#include "chcopier/ch/rows.h"

#include "base/banned.h"

struct ch_field {
    size_t off, len;
    int null;
};

struct ch_rows {
    size_t nrows, ncols;
    struct ch_field *f; /* nrows * ncols, row-major */
    char *data;         /* unescaped fields, each NUL-terminated */
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* One pass over the body. Without r it counts (fields, output bytes); with r
 * it fills r->f and r->data, which were sized by the counting pass. */
static int tsv_scan(const char *s, size_t len, struct ch_rows *r, size_t *ret_nrows,
                    size_t *ret_ncols, size_t *ret_nfields, size_t *ret_bytes,
                    struct chc_err *err)
{
    size_t i = 0, o = 0, nf = 0, nrows = 0, ncols = 0, col;

    while (i < len) {
        col = 0;
        for (;;) {
            size_t fstart = o;
            int null = 0;

            if (i + 1 < len && s[i] == '\\' && s[i + 1] == 'N' &&
                (i + 2 == len || s[i + 2] == '\t' || s[i + 2] == '\n')) {
                null = 1;
                i += 2;
            }
            while (i < len && s[i] != '\t' && s[i] != '\n') {
                char ch = s[i++];

                if (ch == '\\') {
                    if (i >= len)
                        return chc_err_set(err, CHC_EPARSE,
                                           "TSV row %zu: backslash at the end of the data",
                                           nrows + 1);
                    ch = s[i++];
                    switch (ch) {
                    case 'a': ch = '\a'; break;
                    case 'b': ch = '\b'; break;
                    case 'f': ch = '\f'; break;
                    case 'n': ch = '\n'; break;
                    case 'r': ch = '\r'; break;
                    case 't': ch = '\t'; break;
                    case 'v': ch = '\v'; break;
                    case '0': ch = '\0'; break;
                    case 'x': {
                        int hi = i < len ? hexval(s[i]) : -1;
                        int lo = i + 1 < len ? hexval(s[i + 1]) : -1;

                        if (hi < 0 || lo < 0)
                            return chc_err_set(err, CHC_EPARSE,
                                               "TSV row %zu: bad \\x escape", nrows + 1);
                        ch = (char)(hi * 16 + lo);
                        i += 2;
                        break;
                    }
                    default:
                        break; /* \\ \' \" \/ and any other byte: itself */
                    }
                }
                if (r)
                    r->data[o] = ch;
                o++;
            }
            if (r) {
                r->f[nf].off = fstart;
                r->f[nf].len = o - fstart;
                r->f[nf].null = null;
                r->data[o] = '\0';
            }
            o++;
            nf++;
            col++;
            if (i < len && s[i] == '\t') {
                i++;
                continue;
            }
            break;
        }
        if (i < len)
            i++; /* '\n' */
        if (nrows == 0)
            ncols = col;
        else if (col != ncols)
            return chc_err_set(err, CHC_EPARSE, "TSV row %zu has %zu fields, expected %zu",
                               nrows + 1, col, ncols);
        nrows++;
    }
    *ret_nrows = nrows;
    *ret_ncols = ncols;
    *ret_nfields = nf;
    *ret_bytes = o;
    return 0;
}

int ch_tsv_parse(const char *body, size_t len, struct ch_rows **ret, struct chc_err *err)
{
    size_t nrows = 0, ncols = 0, nf = 0, bytes = 0, n2, c2, f2, b2;
    struct ch_rows *r = NULL;
    int rc;

    if (!body && len)
        return chc_err_set(err, -EINVAL, "ch_tsv_parse: no data");
    rc = tsv_scan(body, len, NULL, &nrows, &ncols, &nf, &bytes, err);
    if (rc < 0)
        goto fail;
    r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    r->f = calloc(nf ? nf : 1, sizeof(*r->f));
    r->data = malloc(bytes ? bytes : 1);
    if (!r->f || !r->data)
        goto oom;
    r->nrows = nrows;
    r->ncols = ncols;
    rc = tsv_scan(body, len, r, &n2, &c2, &f2, &b2, err);
    if (rc < 0)
        goto fail;
    *ret = r;
    return 0;
oom:
    rc = chc_err_set(err, -ENOMEM, "out of memory parsing %zu bytes of TSV", len);
fail:
    ch_rows_free(r);
    return rc;
}

size_t ch_rows_count(const struct ch_rows *r)
{
    return r ? r->nrows : 0;
}

size_t ch_rows_ncols(const struct ch_rows *r)
{
    return r ? r->ncols : 0;
}

static const struct ch_field *field(const struct ch_rows *r, size_t row, size_t col)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return NULL;
    return &r->f[row * r->ncols + col];
}

const char *ch_rows_get(const struct ch_rows *r, size_t row, size_t col)
{
    const struct ch_field *f = field(r, row, col);

    return f && !f->null ? r->data + f->off : NULL;
}

size_t ch_rows_len(const struct ch_rows *r, size_t row, size_t col)
{
    const struct ch_field *f = field(r, row, col);

    return f ? f->len : 0;
}

const char *ch_rows_str(const struct ch_rows *r, size_t row, size_t col)
{
    const char *v = ch_rows_get(r, row, col);

    return v ? v : "";
}

int ch_rows_is_null(const struct ch_rows *r, size_t row, size_t col)
{
    return field(r, row, col) && !ch_rows_get(r, row, col);
}

struct ch_rows *ch_rows_free(struct ch_rows *r)
{
    if (!r)
        return NULL;
    free(r->f);
    free(r->data);
    free(r);
    return NULL;
}

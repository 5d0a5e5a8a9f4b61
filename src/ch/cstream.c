/* cstream.c — struct ch_cstream: ClickHouse's block framing and LZ4
 * decompression, fed in pieces of any size as a pipe receives them. Keeps
 * only a 64 KiB window of output (LZ4's reach), so any stream is followed in
 * constant memory. Pure: no I/O, no allocation; a stream that does not
 * decode fails once, with a reason, and stays failed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "ch/cstream.h"

#include "base/banned.h"

/* ClickHouse refuses blocks above 1 GiB (DBMS_MAX_COMPRESSED_SIZE). */
#define CSTREAM_BLOCK_MAX ((uint32_t)1 << 30)
#define CSTREAM_MASK (CH_CSTREAM_WINDOW - 1)

void ch__cstream_init(struct ch_cstream *s, int raw)
{
    memset(s, 0, offsetof(struct ch_cstream, window));
    s->lz4 = CH_LZ4_TOKEN;
    s->raw = raw;
}

static int cstream_fail(struct ch_cstream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int cstream_fail(struct ch_cstream *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    s->failed = 1;
    return CHC_EPARSE;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Append n output bytes to the window. */
static void window_put(struct ch_cstream *s, const unsigned char *b, size_t n)
{
    size_t at, first;

    s->total_out += n;
    if (n > CH_CSTREAM_WINDOW) { /* only the end stays in the window */
        b += n - CH_CSTREAM_WINDOW;
        n = CH_CSTREAM_WINDOW;
    }
    at = (size_t)((s->total_out - n) & CSTREAM_MASK);
    first = CH_CSTREAM_WINDOW - at < n ? CH_CSTREAM_WINDOW - at : n;
    memcpy(s->window + at, b, first);
    memcpy(s->window, b + first, n - first);
}

static int cstream_out(struct ch_cstream *s, const unsigned char *b, size_t n)
{
    if (n > s->out_left)
        return cstream_fail(s, "block %llu decompresses to more than its %u bytes",
                            (unsigned long long)s->blocks, s->block_out + s->out_left);
    s->out_left -= (uint32_t)n;
    s->block_out += (uint32_t)n;
    window_put(s, b, n);
    return 0;
}

/* Copy match_len + 4 bytes from offset back (they may overlap the output). */
static int cstream_match(struct ch_cstream *s)
{
    uint32_t n = s->match_len + 4, i;
    uint64_t pos = s->total_out;

    if (n > s->out_left)
        return cstream_fail(s, "block %llu decompresses to more than its %u bytes",
                            (unsigned long long)s->blocks, s->block_out + s->out_left);
    for (i = 0; i < n; i++, pos++)
        s->window[pos & CSTREAM_MASK] = s->window[(pos - s->offset) & CSTREAM_MASK];
    s->out_left -= n;
    s->block_out += n;
    s->total_out += n;
    s->lz4 = CH_LZ4_TOKEN;
    return 0;
}

static int cstream_header(struct ch_cstream *s)
{
    uint32_t csize = le32(s->hdr + 17), usize = le32(s->hdr + 21);

    s->method = s->hdr[16];
    if (s->method != CH_CSTREAM_METHOD_NONE && s->method != CH_CSTREAM_METHOD_LZ4)
        return cstream_fail(s, "block %llu: unsupported compression method 0x%02x",
                            (unsigned long long)s->blocks, s->method);
    if (csize < 9 || csize - 9 > CSTREAM_BLOCK_MAX || usize > CSTREAM_BLOCK_MAX)
        return cstream_fail(s, "block %llu: impossible sizes %u/%u", (unsigned long long)s->blocks,
                            csize, usize);
    if (s->method == CH_CSTREAM_METHOD_NONE && csize - 9 != usize)
        return cstream_fail(s, "block %llu: uncompressed block of %u bytes claims %u",
                            (unsigned long long)s->blocks, csize - 9, usize);
    s->in_left = csize - 9;
    s->out_left = usize;
    s->block_out = 0;
    s->lz4 = CH_LZ4_TOKEN;
    s->lit_left = s->match_len = s->offset = 0;
    return 0;
}

static int cstream_block_end(struct ch_cstream *s)
{
    if (s->method == CH_CSTREAM_METHOD_LZ4 && s->lz4 != CH_LZ4_TOKEN &&
        !(s->lz4 == CH_LZ4_LITERALS && s->lit_left == 0))
        return cstream_fail(s, "block %llu: LZ4 data ends inside a sequence",
                            (unsigned long long)s->blocks);
    if (s->out_left)
        return cstream_fail(s, "block %llu decompresses to %u bytes, not %u",
                            (unsigned long long)s->blocks, s->block_out,
                            s->block_out + s->out_left);
    s->hdr_len = 0;
    s->blocks++;
    return 0;
}

/* Run LZ4 sequences over [*pp, end) without passing the block's end. */
static int cstream_lz4(struct ch_cstream *s, const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    size_t k;
    int r = 0;

    while (r == 0 && s->in_left > 0 && (p < end || (s->lz4 == CH_LZ4_LITERALS && !s->lit_left))) {
        switch (s->lz4) {
        case CH_LZ4_TOKEN:
            s->lit_left = *p >> 4;
            s->match_len = *p & 15;
            p++;
            s->in_left--;
            s->lz4 = s->lit_left == 15 ? CH_LZ4_LITLEN : CH_LZ4_LITERALS;
            break;
        case CH_LZ4_LITLEN:
            s->lit_left += *p;
            s->in_left--;
            if (*p++ != 255)
                s->lz4 = CH_LZ4_LITERALS;
            if (s->lit_left > s->out_left)
                r = cstream_fail(s, "block %llu: literals run past the block",
                                 (unsigned long long)s->blocks);
            break;
        case CH_LZ4_LITERALS:
            k = (size_t)(end - p);
            if (k > s->lit_left)
                k = s->lit_left;
            if (k > s->in_left)
                k = s->in_left;
            if (k) {
                r = cstream_out(s, p, k);
                p += k;
                s->in_left -= (uint32_t)k;
                s->lit_left -= (uint32_t)k;
            }
            if (r == 0 && s->lit_left == 0 && s->in_left > 0)
                s->lz4 = CH_LZ4_OFFSET_LO;
            break;
        case CH_LZ4_OFFSET_LO:
            s->offset = *p++;
            s->in_left--;
            s->lz4 = CH_LZ4_OFFSET_HI;
            break;
        case CH_LZ4_OFFSET_HI:
            s->offset |= (uint32_t)*p++ << 8;
            s->in_left--;
            if (s->offset == 0 || s->offset > s->block_out)
                r = cstream_fail(s, "block %llu: match offset %u outside the %u bytes decoded",
                                 (unsigned long long)s->blocks, s->offset, s->block_out);
            else if (s->match_len == 15)
                s->lz4 = CH_LZ4_MATCHLEN;
            else
                r = cstream_match(s);
            break;
        case CH_LZ4_MATCHLEN:
            s->match_len += *p;
            s->in_left--;
            if (s->match_len > s->out_left)
                r = cstream_fail(s, "block %llu: match runs past the block",
                                 (unsigned long long)s->blocks);
            else if (*p++ != 255)
                r = cstream_match(s);
            break;
        case _CH_LZ4_STATE_MAX:
            CHC_BUG("invalid LZ4 state");
        }
    }
    *pp = p;
    return r;
}

int ch__cstream_feed(struct ch_cstream *s, const void *data, size_t n)
{
    const unsigned char *p = data, *end = p + n;
    size_t k;
    int r = 0;

    if (s->failed)
        return CHC_EPARSE;
    s->total_in += n;
    if (s->raw) {
        window_put(s, p, n);
        return 0;
    }
    while (r == 0 && p < end) {
        if (s->hdr_len < CH_CSTREAM_HEADER) {
            k = CH_CSTREAM_HEADER - s->hdr_len;
            if (k > (size_t)(end - p))
                k = (size_t)(end - p);
            memcpy(s->hdr + s->hdr_len, p, k);
            s->hdr_len += k;
            p += k;
            if (s->hdr_len < CH_CSTREAM_HEADER)
                break;
            s->fail_pos = (size_t)(p - (const unsigned char *)data);
            r = cstream_header(s);
            if (r < 0) {
                s->fail_in_header = 1;
                break;
            }
        } else if (s->method == CH_CSTREAM_METHOD_NONE) {
            k = (size_t)(end - p) < s->in_left ? (size_t)(end - p) : s->in_left;
            r = cstream_out(s, p, k);
            p += k;
            s->in_left -= (uint32_t)k;
        } else {
            r = cstream_lz4(s, &p, end);
        }
        if (r == 0 && s->in_left == 0 && s->hdr_len == CH_CSTREAM_HEADER)
            r = cstream_block_end(s);
    }
    return r;
}

int ch__cstream_at_boundary(const struct ch_cstream *s)
{
    return !s->failed && s->hdr_len == 0;
}

size_t ch__cstream_tail(const struct ch_cstream *s, char *out, size_t max)
{
    size_t n = max, at, first;

    if (n > s->total_out)
        n = (size_t)s->total_out;
    if (n > CH_CSTREAM_WINDOW)
        n = CH_CSTREAM_WINDOW;
    at = (size_t)((s->total_out - n) & CSTREAM_MASK);
    first = CH_CSTREAM_WINDOW - at < n ? CH_CSTREAM_WINDOW - at : n;
    memcpy(out, s->window + at, first);
    memcpy(out + first, s->window, n - first);
    return n;
}

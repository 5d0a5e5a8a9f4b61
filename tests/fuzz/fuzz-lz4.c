/* fuzz-lz4.c — libFuzzer target for the compressed-stream follower
 * (ch__cstream_feed in src/ch/cstream.c: ClickHouse's block framing and
 * LZ4, fed as a pipe receives it, in pieces of any size).
 *
 * The first input byte picks the piece sizes and, with its high bit, whether
 * the rest is the stream as is or the LZ4 payload of one block framed here
 * with the size the reference decodes it to (so that most inputs reach the
 * sequences). The stream is fed three ways: whole, in pieces, and in raw
 * mode. Invariants (any violation abort()s so libFuzzer keeps the input):
 *   1. whole and in pieces agree: failed or not, bytes in and out, blocks,
 *      at a boundary or not, and the 64 KiB tail;
 *   2. a stream that is a sequence of whole blocks decodes exactly as an
 *      independent whole-block decoder here says (ref_block: ClickHouse's
 *      header rules, LZ4 sequences, matches only into the block's own
 *      output, exact decompressed size), or fails where it fails;
 *   3. a failure leaves a reason and a stuck stream (later feeds fail);
 *   4. raw mode keeps the input's last 64 KiB.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/err.h"
#include "ch/cstream.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REF_MAX ((size_t)1 << 20) /* blocks decompressing to more: no reference */

static struct ch_cstream whole, pieces; /* 64 KiB each: not on the stack */
static char tail_a[CH_CSTREAM_WINDOW], tail_b[CH_CSTREAM_WINDOW];

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Decode one LZ4 block of n bytes into out (at most cap bytes): the
 * decompressed length, or -1. Independent of cstream.c: whole buffers, no state
 * machine. */
static long ref_lz4(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t ip = 0, op = 0, lit, ml, off, i;
    uint8_t b;

    while (ip < n) {
        lit = in[ip] >> 4;
        ml = in[ip] & 15;
        ip++;
        if (lit == 15)
            do {
                if (ip >= n)
                    return -1;
                b = in[ip++];
                lit += b;
            } while (b == 255);
        if (lit > n - ip || lit > cap - op)
            return -1;
        memcpy(out + op, in + ip, lit);
        ip += lit;
        op += lit;
        if (ip == n)
            break; /* the last sequence: literals only */
        if (n - ip < 2)
            return -1;
        off = (size_t)in[ip] | (size_t)in[ip + 1] << 8;
        ip += 2;
        if (off == 0 || off > op)
            return -1;
        if (ml == 15)
            do {
                if (ip >= n)
                    return -1;
                b = in[ip++];
                ml += b;
            } while (b == 255);
        ml += 4;
        if (ml > cap - op)
            return -1;
        for (i = 0; i < ml; i++, op++)
            out[op] = out[op - off];
    }
    return (long)op;
}

/* The reference over a whole stream: 1 it decodes (output in *out, *out_len),
 * 0 it fails, -1 no verdict (ends inside a block, or a block too large). */
static int ref_stream(const uint8_t *s, size_t n, uint8_t **out, size_t *out_len)
{
    size_t pos = 0, len = 0;
    uint8_t *buf = NULL, *nb;
    uint32_t csize, usize;
    int v = 1;

    while (pos < n && v == 1) {
        if (n - pos < CH_CSTREAM_HEADER) {
            v = -1;
            break;
        }
        csize = le32(s + pos + 17);
        usize = le32(s + pos + 21);
        if ((s[pos + 16] != CH_CSTREAM_METHOD_NONE && s[pos + 16] != CH_CSTREAM_METHOD_LZ4) ||
            csize < 9 || csize - 9 > (1u << 30) || usize > (1u << 30) ||
            (s[pos + 16] == CH_CSTREAM_METHOD_NONE && csize - 9 != usize)) {
            v = 0;
            break;
        }
        if (n - pos - CH_CSTREAM_HEADER < csize - 9 || usize > REF_MAX || len + usize > REF_MAX) {
            v = -1;
            break;
        }
        nb = realloc(buf, len + usize + 1);
        if (!nb) {
            v = -1;
            break;
        }
        buf = nb;
        if (s[pos + 16] == CH_CSTREAM_METHOD_NONE)
            memcpy(buf + len, s + pos + CH_CSTREAM_HEADER, usize);
        else if (ref_lz4(s + pos + CH_CSTREAM_HEADER, csize - 9, buf + len, usize) != (long)usize)
            v = 0;
        len += usize;
        pos += CH_CSTREAM_HEADER + csize - 9;
    }
    *out = buf;
    *out_len = len;
    return v;
}

static void feed(struct ch_cstream *s, int raw, const uint8_t *d, size_t n, size_t step)
{
    size_t i, k;
    int r = 0;

    ch__cstream_init(s, raw);
    for (i = 0; i < n && r == 0; i += k) {
        k = step && step < n - i ? step : n - i;
        r = ch__cstream_feed(s, d + i, k);
        if (r != 0 && r != CHC_EPARSE)
            abort();
    }
    if (r == 0 && s->failed)
        abort();
    if (r != 0 && (!s->failed || !s->why[0] || ch__cstream_feed(s, "x", 1) != CHC_EPARSE))
        abort(); /* 3. */
}

/* The input as the payload of one LZ4 block whose header claims what the
 * reference decodes it to (or 1 more byte when it does not decode): most
 * inputs then exercise the sequences, not the framing. NULL on ENOMEM. */
static uint8_t *framed(const uint8_t *payload, size_t n, size_t *ret_n)
{
    static uint8_t out[REF_MAX];
    long len = ref_lz4(payload, n, out, sizeof(out));
    uint32_t csize = (uint32_t)n + 9, usize = len < 0 ? (uint32_t)n + 1 : (uint32_t)len;
    uint8_t *s;
    int i;

    s = malloc(CH_CSTREAM_HEADER + n + 1);
    if (!s)
        return NULL;
    memset(s, 0, 16);
    s[16] = CH_CSTREAM_METHOD_LZ4;
    for (i = 0; i < 4; i++) {
        s[17 + i] = (uint8_t)(csize >> (8 * i));
        s[21 + i] = (uint8_t)(usize >> (8 * i));
    }
    memcpy(s + CH_CSTREAM_HEADER, payload, n);
    *ret_n = CH_CSTREAM_HEADER + n;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step, na, nb, ref_len;
    uint8_t *ref = NULL, *own = NULL;
    int v;

    if (size < 1 || size > REF_MAX)
        return 0;
    step = (size_t)data[0] % 17; /* 0: whole */
    if (data[0] & 0x80) {          /* the rest is one block's LZ4 payload */
        own = framed(data + 1, size - 1, &size);
        if (!own)
            return 0;
        data = own;
    } else {
        data++;
        size--;
    }
    feed(&whole, 0, data, size, 0);
    feed(&pieces, 0, data, size, step ? step : 1);
    /* 1. */
    if (whole.failed != pieces.failed)
        abort();
    if (!whole.failed &&
        (whole.total_out != pieces.total_out || whole.blocks != pieces.blocks ||
         whole.total_in != pieces.total_in ||
         ch__cstream_at_boundary(&whole) != ch__cstream_at_boundary(&pieces)))
        abort();
    na = ch__cstream_tail(&whole, tail_a, sizeof(tail_a));
    nb = ch__cstream_tail(&pieces, tail_b, sizeof(tail_b));
    if (!whole.failed && (na != nb || memcmp(tail_a, tail_b, na)))
        abort();
    /* 2. */
    v = ref_stream(data, size, &ref, &ref_len);
    if (v == 0 && !whole.failed)
        abort();
    if (v == 1) {
        if (whole.failed || !ch__cstream_at_boundary(&whole) || whole.total_out != ref_len)
            abort();
        if (na != (ref_len < CH_CSTREAM_WINDOW ? ref_len : CH_CSTREAM_WINDOW) ||
            (na && memcmp(tail_a, ref + ref_len - na, na)))
            abort();
    }
    free(ref);
    /* 4. */
    feed(&whole, 1, data, size, step);
    na = ch__cstream_tail(&whole, tail_a, sizeof(tail_a));
    if (whole.total_out != size || na != (size < CH_CSTREAM_WINDOW ? size : CH_CSTREAM_WINDOW) ||
        (na && memcmp(tail_a, data + size - na, na)))
        abort();
    free(own);
    return 0;
}

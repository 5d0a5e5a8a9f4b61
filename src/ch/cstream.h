/* cstream.h — ClickHouse's native compressed stream, followed as it passes
 * (cstream.c). Pure: no I/O. Internal to src/ch; tests/unit/test-ch.c and
 * tests/fuzz/fuzz-lz4.c test it.
 *
 * struct ch_cstream follows what `compress=1` returns, checks its framing and
 * decompresses it into a 64 KiB window so that the end of the stream can be
 * inspected for an exception text (in raw mode the window simply keeps the
 * end of an uncompressed stream).
 *
 * The stream is a sequence of blocks: 16-byte checksum (not verified here:
 * the destination server does that), method byte, u32 LE size of method +
 * sizes + payload, u32 LE decompressed size, payload. Methods: 0x02 none,
 * 0x82 LZ4 (one independent LZ4 block). Anything else fails with CHC_EPARSE.
 */
#ifndef CHC_SRC_CH_CSTREAM_H
#define CHC_SRC_CH_CSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define CH_CSTREAM_HEADER 25
#define CH_CSTREAM_WINDOW ((size_t)64 << 10) /* LZ4's largest match offset + 1 */
#define CH_CSTREAM_METHOD_NONE 0x02
#define CH_CSTREAM_METHOD_LZ4 0x82

enum ch__lz4_state {
    CH_LZ4_TOKEN,
    CH_LZ4_LITLEN,
    CH_LZ4_LITERALS,
    CH_LZ4_OFFSET_LO,
    CH_LZ4_OFFSET_HI,
    CH_LZ4_MATCHLEN,
    _CH_LZ4_STATE_MAX,
};

struct ch_cstream {
    int raw; /* not compressed: the bytes are the output */
    unsigned char hdr[CH_CSTREAM_HEADER];
    size_t hdr_len; /* < CH_CSTREAM_HEADER: reading a header */
    unsigned char method;
    uint32_t in_left;   /* payload bytes of this block not read yet */
    uint32_t out_left;  /* decompressed bytes this block still owes */
    uint32_t block_out; /* decompressed bytes of this block so far */
    enum ch__lz4_state lz4;
    uint32_t lit_left, match_len, offset;
    uint64_t total_in, total_out, blocks;
    int failed;
    /* An invalid header failed it, which ended at fail_pos in the data of
     * that call to ch__cstream_feed(). */
    int fail_in_header;
    size_t fail_pos;
    /* Why it failed. */
    char why[160];
    unsigned char window[CH_CSTREAM_WINDOW]; /* last output, at total_out % size */
};

/* raw: the stream is not compressed (the window just keeps its end). */
void ch__cstream_init(struct ch_cstream *s, int raw);
/* Consume n bytes. 0, or CHC_EPARSE (s->why says why; every later call
 * fails too). */
int ch__cstream_feed(struct ch_cstream *s, const void *data, size_t n);
/* True when the bytes fed so far end exactly after a whole block. */
int ch__cstream_at_boundary(const struct ch_cstream *s);
/* Copy the last min(max, total_out, window) decompressed bytes to out. */
size_t ch__cstream_tail(const struct ch_cstream *s, char *out, size_t max);

#endif

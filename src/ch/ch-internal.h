/* ch-internal.h — pure helpers of ch.c, exposed for tests/unit/test-ch.c and
 * the fuzzers (tests/fuzz/).
 *
 * Nothing here does I/O. struct ch_ring is the bounded byte FIFO between a
 * pipe's download and its upload; struct ch_cstream follows ClickHouse's
 * native compressed stream (what `compress=1` returns) as it passes through,
 * checks its framing and decompresses it into a 64 KiB window so that the end
 * of the stream can be inspected for an exception text (in raw mode the
 * window simply keeps the end of an uncompressed stream). Not part of the
 * module's interface: only ch.c, its unit test and the fuzzers include it.
 */
#ifndef CHC_CH_INTERNAL_H
#define CHC_CH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* ---- ring buffer ---- */

struct ch_ring {
    unsigned char *buf;
    size_t cap;  /* bytes allocated */
    size_t head; /* index of the oldest byte */
    size_t len;  /* bytes stored */
};

/* Allocate cap (> 0) bytes; 0 or -ENOMEM. */
int ch__ring_init(struct ch_ring *r, size_t cap);
/* Free the storage; the ring is empty with cap 0 afterwards. NULL-safe. */
void ch__ring_release(struct ch_ring *r);
size_t ch__ring_space(const struct ch_ring *r);
/* Copy min(n, space) bytes in; returns how many were copied. */
size_t ch__ring_push(struct ch_ring *r, const void *data, size_t n);
/* Move min(n, len) of the oldest bytes to out; returns how many. */
size_t ch__ring_pop(struct ch_ring *r, void *out, size_t n);

/* ---- ClickHouse compressed stream ----
 * A sequence of blocks: 16-byte checksum (not verified here: the destination
 * server does that), method byte, u32 LE size of method + sizes + payload,
 * u32 LE decompressed size, payload. Methods: 0x02 none, 0x82 LZ4 (one
 * independent LZ4 block). Anything else fails with CHC_EPARSE.
 */
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

/* Where the exception text that ends a binary result starts, or NULL: the
 * data ends with '\n' and has a "Code: N[.,]" whose rest contains
 * "DB::Exception". ClickHouse writes it right after the last complete block,
 * so it is usually preceded by binary data, not a newline. Of several
 * candidates the earliest one with no NUL byte up to the end wins (the whole
 * message), else the last one. */
const char *ch__find_stream_exception(const char *s, size_t len);

/* ---- HTTP responses ---- */

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

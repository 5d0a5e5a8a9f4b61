/* ring.h — the bounded byte FIFO between a pipe's download and its upload
 * (ring.c). Pure: no I/O. Internal to src/ch; tests/unit/test-ch.c tests it.
 */
#ifndef CHC_SRC_CH_RING_H
#define CHC_SRC_CH_RING_H

#include <stddef.h>

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

#endif

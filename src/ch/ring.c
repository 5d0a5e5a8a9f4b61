/* ring.c — struct ch_ring, a fixed-size byte FIFO: what a pipe's SELECT has
 * received and its INSERT has not sent yet. Owns only its buffer; knows
 * nothing of curl or pipes, does no I/O and never grows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ch/ring.h"

#include "base/banned.h"

int ch__ring_init(struct ch_ring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (cap == 0)
        return -EINVAL;
    r->buf = malloc(cap);
    if (!r->buf)
        return -ENOMEM;
    r->cap = cap;
    return 0;
}

void ch__ring_release(struct ch_ring *r)
{
    if (!r)
        return;
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

size_t ch__ring_space(const struct ch_ring *r)
{
    return r->cap - r->len;
}

size_t ch__ring_push(struct ch_ring *r, const void *data, size_t n)
{
    const unsigned char *src = data;
    size_t tail, first;

    if (n > r->cap - r->len)
        n = r->cap - r->len;
    if (n == 0)
        return 0;
    tail = (r->head + r->len) % r->cap;
    first = r->cap - tail < n ? r->cap - tail : n;
    memcpy(r->buf + tail, src, first);
    memcpy(r->buf, src + first, n - first);
    r->len += n;
    return n;
}

size_t ch__ring_pop(struct ch_ring *r, void *out, size_t n)
{
    unsigned char *dst = out;
    size_t first;

    if (n > r->len)
        n = r->len;
    if (n == 0)
        return 0;
    first = r->cap - r->head < n ? r->cap - r->head : n;
    memcpy(dst, r->buf + r->head, first);
    memcpy(dst + first, r->buf, n - first);
    r->head = (r->head + n) % r->cap;
    r->len -= n;
    if (r->len == 0)
        r->head = 0; /* keeps copies contiguous while the consumer keeps up */
    return n;
}

/* bucket.c — struct ch_bucket, the token bucket behind a pipe's
 * max_bytes_per_second and ch_client_set_rate(). Refills from the time the
 * caller passes and lets bytes through in quanta of ~20 ms of the rate.
 * Pure: no clock, no timers (the pipe code arms those).
 */
#include <stddef.h>
#include <stdint.h>

#include "ch/bucket.h"

#include "base/banned.h"

void ch__bucket_init(struct ch_bucket *b, long long rate)
{
    b->rate = rate;
    b->tokens = 0;
    b->last_ns = 0;
}

static size_t bucket_quantum(long long rate)
{
    long long q = rate / 50;

    if (q < 1)
        q = 1;
    if (q > 16384)
        q = 16384;
    return (size_t)q;
}

static void bucket_refill(struct ch_bucket *b, uint64_t now)
{
    double cap = (double)b->rate / 10;

    if (b->last_ns == 0) {
        b->last_ns = now;
        return;
    }
    b->tokens += (double)(now - b->last_ns) * (double)b->rate / 1e9;
    b->last_ns = now;
    if (cap < (double)bucket_quantum(b->rate))
        cap = (double)bucket_quantum(b->rate);
    if (b->tokens > cap)
        b->tokens = cap;
}

size_t ch__bucket_allow(struct ch_bucket *b, uint64_t now, size_t want, uint64_t *wait_ns)
{
    size_t need;
    uint64_t w;

    if (b->rate <= 0 || want == 0)
        return want;
    bucket_refill(b, now);
    need = bucket_quantum(b->rate);
    if (need > want)
        need = want;
    if (b->tokens < (double)need) {
        w = (uint64_t)(((double)need - b->tokens) * 1e9 / (double)b->rate) + 1;
        if (w > *wait_ns)
            *wait_ns = w;
        return 0;
    }
    return (double)want <= b->tokens ? want : (size_t)b->tokens;
}

void ch__bucket_take(struct ch_bucket *b, size_t n)
{
    if (b->rate > 0)
        b->tokens -= (double)n;
}

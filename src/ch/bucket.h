/* bucket.h — a token bucket (bucket.c): the rate limits of pipe uploads, one
 * per pipe and one per client. Pure: the caller passes the time.
 */
#ifndef CHC_SRC_CH_BUCKET_H
#define CHC_SRC_CH_BUCKET_H

#include <stddef.h>
#include <stdint.h>

/* rate bytes per second, bursts of at most rate / 10. */
struct ch_bucket {
    long long rate; /* <= 0: unlimited */
    double tokens;
    uint64_t last_ns; /* uv_hrtime() of the last refill, 0 = never */
};

/* Empty, at rate (<= 0: unlimited); the first refill starts its clock. */
void ch__bucket_init(struct ch_bucket *b, long long rate);
/* How much of want the bucket lets through at now (ns). 0 (and *wait_ns
 * raised to when it will) unless it holds a quantum, so that uploads move in
 * chunks of ~20 ms of the rate instead of a byte per wakeup. */
size_t ch__bucket_allow(struct ch_bucket *b, uint64_t now, size_t want, uint64_t *wait_ns);
/* Spend n bytes (after ch__bucket_allow() let them through). */
void ch__bucket_take(struct ch_bucket *b, size_t n);

#endif

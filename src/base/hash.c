/* hash.c — FNV-1a, 64 bits: definition hashes, partition hashes, string
 * maps. Not for anything an attacker chooses the input of to collide. */
#include <stddef.h>
#include <stdint.h>

#include "chcopier/base/hash.h"

#include "base/banned.h"

uint64_t chc_hash64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

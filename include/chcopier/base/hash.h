/* hash.h — the project's one non-cryptographic string hash (64-bit
 * FNV-1a): task definition hashes, partition hashes in query ids, strmap. */
#ifndef CHC_HASH_H
#define CHC_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Continue hash h over n bytes; start from CHC_HASH64_INIT. */
uint64_t chc_hash64(uint64_t h, const void *data, size_t n);
#define CHC_HASH64_INIT 0xcbf29ce484222325ULL

#endif

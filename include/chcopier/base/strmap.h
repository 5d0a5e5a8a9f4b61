/* strmap.h — a map from strings to indexes (open addressing, FNV-1a), for
 * de-duplicating and finding partition literals among 100 k and more in
 * constant time. Keys are not copied: they must outlive the map.
 *
 *   struct chc_strmap m = CHC_STRMAP_INIT;
 *   chc_strmap_put(&m, key, idx, &old)  -> 0 (added) | 1 (there: *old) | -ENOMEM
 *   chc_strmap_get(&m, key, &idx)       -> 1 found | 0
 *   chc_strmap_release(&m);
 */
#ifndef CHC_STRMAP_H
#define CHC_STRMAP_H

#include <stddef.h>

struct chc_strmap_slot;

struct chc_strmap {
    struct chc_strmap_slot *slots;
    size_t cap; /* power of two, 0 when empty */
    size_t n;
};

#define CHC_STRMAP_INIT {NULL, 0, 0}

int chc_strmap_put(struct chc_strmap *m, const char *key, size_t idx, size_t *ret_old);
int chc_strmap_get(const struct chc_strmap *m, const char *key, size_t *ret_idx);
void chc_strmap_release(struct chc_strmap *m);

#endif

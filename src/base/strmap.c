/* strmap.c — strings to indexes, open addressing with linear probing; the
 * table doubles at 1/2 load. Owns only its slot array, never the keys. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/strmap.h"
#include "chcopier/base/hash.h"

#include "base/banned.h"

struct chc_strmap_slot {
    const char *key; /* NULL = free */
    uint64_t hash;
    size_t idx;
};

static uint64_t key_hash(const char *key)
{
    return chc_hash64(CHC_HASH64_INIT, key, strlen(key));
}

static struct chc_strmap_slot *find(const struct chc_strmap *m, const char *key, uint64_t h)
{
    size_t i = (size_t)h & (m->cap - 1);

    while (m->slots[i].key && (m->slots[i].hash != h || strcmp(m->slots[i].key, key)))
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static int grow(struct chc_strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64, i;
    struct chc_strmap old = *m;

    m->slots = calloc(ncap, sizeof(*m->slots));
    if (!m->slots) {
        *m = old;
        return -ENOMEM;
    }
    m->cap = ncap;
    for (i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *find(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
    free(old.slots);
    return 0;
}

int chc_strmap_put(struct chc_strmap *m, const char *key, size_t idx, size_t *ret_old)
{
    uint64_t h = key_hash(key);
    struct chc_strmap_slot *s;

    if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
        return -ENOMEM;
    s = find(m, key, h);
    if (s->key) {
        if (ret_old)
            *ret_old = s->idx;
        return 1;
    }
    s->key = key;
    s->hash = h;
    s->idx = idx;
    m->n++;
    return 0;
}

int chc_strmap_get(const struct chc_strmap *m, const char *key, size_t *ret_idx)
{
    const struct chc_strmap_slot *s;

    if (!m->cap)
        return 0;
    s = find(m, key, key_hash(key));
    if (!s->key)
        return 0;
    if (ret_idx)
        *ret_idx = s->idx;
    return 1;
}

void chc_strmap_release(struct chc_strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

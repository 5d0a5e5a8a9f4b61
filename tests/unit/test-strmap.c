/* test-strmap.c — the string map: put/get, duplicates, growth past many
 * rehashes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/strmap.h"
#include "tap.h"

TEST(put_get_duplicates)
{
    struct chc_strmap m = CHC_STRMAP_INIT;
    size_t idx = 99;

    ASSERT_EQ(chc_strmap_get(&m, "a", &idx), 0);
    ASSERT_EQ(chc_strmap_put(&m, "201801", 0, NULL), 0);
    ASSERT_EQ(chc_strmap_put(&m, "'2018-01-01'", 1, NULL), 0);
    ASSERT_EQ(chc_strmap_put(&m, "201801", 7, &idx), 1);
    ASSERT_EQ(idx, 0);
    ASSERT_EQ(chc_strmap_get(&m, "'2018-01-01'", &idx), 1);
    ASSERT_EQ(idx, 1);
    ASSERT_EQ(chc_strmap_get(&m, "2018", &idx), 0);
    chc_strmap_release(&m);
}

TEST(hundred_thousand_keys)
{
    struct chc_strmap m = CHC_STRMAP_INIT;
    enum { N = 100000 };
    char (*keys)[16] = malloc(N * sizeof(*keys));
    size_t i, idx;

    ASSERT_NOT_NULL(keys);
    for (i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%zu", i * 7919);
        ASSERT_EQ(chc_strmap_put(&m, keys[i], i, NULL), 0);
    }
    for (i = 0; i < N; i++) {
        ASSERT_EQ(chc_strmap_get(&m, keys[i], &idx), 1);
        ASSERT_EQ(idx, i);
    }
    ASSERT_EQ(m.n, N);
    chc_strmap_release(&m);
    free(keys);
}

TAP_MAIN()

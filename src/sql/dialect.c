/* dialect.c — the table of version-dependent behaviour (sql/dialect.h) and
 * the settings it picks. Pure: no I/O, no logging. Each line of the table
 * names its evidence (ClickHouse pull requests, issues, changelogs); the
 * compat suite (scripts/compat) runs the newest side on 26.7.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/bug.h"
#include "chcopier/base/err.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/dialect.h"

#include "base/banned.h"

static const struct {
    enum dialect_feature f;
    unsigned since;
} table[] = {
    /* PR #55978 "Rename directory monitor concept into background INSERT"
     * (23.11): the old name stays an alias. */
    {DIALECT_FOREGROUND_INSERT, DIALECT_V(23, 11, 0)},
    /* alter_sync with ALIAS(replication_alter_partitions_sync) in
     * Settings.h; documented under that name from 23.3 LTS on (the first
     * release that has it is not pinned down here: later is safe, the old
     * name stays an alias). */
    {DIALECT_ALTER_SYNC, DIALECT_V(23, 3, 0)},
    /* PR #42649 "Analyzer change setting into allow_experimental_analyzer"
     * (merged 2022-10-25, after 22.10 was cut): 22.10 refuses it (#81692). */
    {DIALECT_ANALYZER_SETTING, DIALECT_V(22, 11, 0)},
    /* PR #65777 (24.7), backported to 24.3 (#68870), 24.5, 24.6: the
     * initiator sends the setting with every distributed query, whatever its
     * value (issues #67859, #81692: SETTINGS ... = 0 does not help). */
    {DIALECT_FORWARDS_ANALYZER, DIALECT_V(24, 3, 0)},
    /* PR #55062 (23.10; backported to 23.3, 23.7, 23.8). */
    {DIALECT_STRICT_ATTACH, DIALECT_V(23, 10, 0)},
    /* PR #57452 "Allow max_size_to_drop settings in query time" (23.12). */
    {DIALECT_DROP_LIMIT_SETTING, DIALECT_V(23, 12, 0)},
    /* Atomic is the default database engine from 20.10: tables have UUIDs. */
    {DIALECT_CREATE_UUID, DIALECT_V(20, 10, 0)},
};

unsigned dialect_since(enum dialect_feature f)
{
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].f == f)
            return table[i].since;
    CHC_BUG("dialect feature %d", (int)f);
    return 0;
}

int dialect_has(unsigned v, enum dialect_feature f)
{
    return (v ? v : DIALECT_DEFAULT) >= dialect_since(f);
}

/* One decimal component of at most 3 (minor, patch) or 4 (major) digits. */
static const char *component(const char *p, unsigned max, unsigned *ret)
{
    unsigned n = 0, d = 0;

    while (isdigit((unsigned char)*p) && d < 5) {
        n = n * 10 + (unsigned)(*p++ - '0');
        d++;
    }
    if (d == 0 || n > max)
        return NULL;
    *ret = n;
    return p;
}

int dialect_parse_version(const char *s, unsigned *ret, struct chc_err *err)
{
    unsigned major = 0, minor = 0, patch = 0;
    const char *p = s ? component(s, 4000, &major) : NULL;

    if (p && *p == '.')
        p = component(p + 1, 999, &minor);
    else
        p = NULL;
    if (p && *p == '.') {
        const char *q = component(p + 1, 999, &patch);
        p = q ? q : p + 1;
    }
    if (!p || major == 0)
        return chc_err_set(err, CHC_EPARSE, "cannot read the server version '%.40s'",
                           s ? s : "");
    *ret = DIALECT_V(major, minor, patch);
    return 0;
}

/* The renamed settings, by enum dialect_setting: the name from `since` on,
 * and the old one, which every later version keeps as an alias. */
static const struct {
    const char *cur, *old;
    enum dialect_feature since;
} renames[] = {
    [DIALECT_SET_FOREGROUND_INSERT] = {"distributed_foreground_insert", "insert_distributed_sync",
                                       DIALECT_FOREGROUND_INSERT},
    [DIALECT_SET_ALTER_SYNC] = {"alter_sync", "replication_alter_partitions_sync",
                                DIALECT_ALTER_SYNC},
};

const char *dialect_setting_name(unsigned v, enum dialect_setting s)
{
    if ((size_t)s >= sizeof(renames) / sizeof(renames[0]))
        CHC_BUG("dialect setting %d", (int)s);
    return dialect_has(v, renames[s].since) ? renames[s].cur : renames[s].old;
}

const char *dialect_known_name(unsigned v, const char *name)
{
    size_t i;

    for (i = 0; name && i < sizeof(renames) / sizeof(renames[0]); i++)
        if (!strcmp(name, renames[i].cur) && !dialect_has(v, renames[i].since))
            return renames[i].old;
    return NULL;
}

/* A routed INSERT's settings. receive_timeout reaches the Distributed
 * table's inserts on the other shards too (the initiator sends its settings
 * with them): a part left waiting for blocks or for a table lock ends in
 * ROUTE_RECEIVE_TIMEOUT seconds instead of the server's 300. ClickHouse
 * 18.16's table locks are FIFO, so two routed copies holding a shard's
 * staging table while a staging DROP PARTITION queues on each of their other
 * shards wait for each other until one of them times out (seen in a test:
 * 312 s). A copy that times out is dirty and is copied again. */
#define ROUTE_RECEIVE_TIMEOUT "60"

/* What every routed copy sends besides its foreground-insert setting. */
#define ROUTE_COMMON                                                                   \
    {.name = (char *)"prefer_localhost_replica", .value = (char *)"0"},                \
        {.name = (char *)"load_balancing", .value = (char *)"in_order"},               \
        {.name = (char *)"receive_timeout", .value = (char *)ROUTE_RECEIVE_TIMEOUT}

const struct cfg_settings *dialect_route_settings(unsigned v)
{
    static struct cfg_setting old[] = {
        {.name = (char *)"insert_distributed_sync", .value = (char *)"1"}, ROUTE_COMMON};
    static struct cfg_setting cur[] = {
        {.name = (char *)"distributed_foreground_insert", .value = (char *)"1"}, ROUTE_COMMON};
    static const struct cfg_settings set_old = {.items = old, .n = sizeof(old) / sizeof(old[0])};
    static const struct cfg_settings set_cur = {.items = cur, .n = sizeof(cur) / sizeof(cur[0])};

    return dialect_has(v, DIALECT_FOREGROUND_INSERT) ? &set_cur : &set_old;
}

const struct cfg_settings *dialect_drop_settings(unsigned v)
{
    static struct cfg_setting items[] = {
        {.name = (char *)"max_table_size_to_drop", .value = (char *)"0"},
        {.name = (char *)"max_partition_size_to_drop", .value = (char *)"0"},
    };
    static const struct cfg_settings set = {.items = items, .n = 2};
    static const struct cfg_settings none = {.items = NULL, .n = 0};

    return dialect_has(v, DIALECT_DROP_LIMIT_SETTING) ? &set : &none;
}

int dialect_remote_ok(unsigned dst, unsigned src, char *why, size_t why_len)
{
    if (dialect_has(dst, DIALECT_FORWARDS_ANALYZER) && !dialect_has(src, DIALECT_ANALYZER_SETTING)) {
        if (why && why_len)
            snprintf(why, why_len,
                     "a destination of %u.%u or later sends allow_experimental_analyzer "
                     "through remote(), which a source before %u.%u refuses",
                     dialect_since(DIALECT_FORWARDS_ANALYZER) / 1000000u,
                     dialect_since(DIALECT_FORWARDS_ANALYZER) / 1000u % 1000u,
                     dialect_since(DIALECT_ANALYZER_SETTING) / 1000000u,
                     dialect_since(DIALECT_ANALYZER_SETTING) / 1000u % 1000u);
        return 0;
    }
    return 1;
}

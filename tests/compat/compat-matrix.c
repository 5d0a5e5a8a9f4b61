/* compat-matrix.c — modern destination definitions for scripts/compat:
 * every *MergeTree family in the new syntax, with SETTINGS, TTL, skip
 * indices, projections, codecs, comments, constraints, DEFAULT /
 * MATERIALIZED / ALIAS / EPHEMERAL columns, Nullable / LowCardinality / Map /
 * Tuple / Nested / IP / UUID / Decimal / Int128 types, and partition keys
 * that print as numbers, negative numbers, strings with quotes and
 * backslashes, tuples and dates. Rows are generated from numbers(), so every
 * run inserts the same data.
 */
#include "compat-matrix.h"

const struct compat_entry compat_matrix[] = {
    {
        .name = "mt",
        .cols = "d Date, id UInt64 CODEC(Delta, ZSTD(1)), s String DEFAULT 'x' COMMENT 'the name', "
                "m UInt64 MATERIALIZED id * 2, al String ALIAS concat(s, '!'), e UInt8 EPHEMERAL, "
                "v Int32 DEFAULT e + 1, f Float64 CODEC(Gorilla), "
                "CONSTRAINT c_id CHECK id < 1000000",
        .engine = "MergeTree PARTITION BY toYYYYMM(d) ORDER BY (id, d) "
                  "TTL d + INTERVAL 100 YEAR SETTINGS index_granularity = 1024",
        .comment = "a table's comment",
        .key = "id",
        .where = "id != 7",
        .splits = 2,
        .insert = "(d, id, s, e, f) SELECT toDate('2024-01-01') + number % 60, number, "
                  "concat('n', toString(number)), number % 7, number / 3 FROM numbers(200)",
    },
    {
        .name = "repl",
        .cols = "cat String, id UInt32, ver UInt16, n Nullable(Int64), "
                "lc LowCardinality(String), mp Map(String, UInt16), arr Array(Nullable(String))",
        .engine = "ReplacingMergeTree(ver) PARTITION BY cat ORDER BY id "
                  "SETTINGS index_granularity = 8192, min_bytes_for_wide_part = 0",
        .key = "intHash32(id)",
        .splits = 3,
        .insert = "SELECT ['it''s', 'back\\\\slash', 'plain', ''][number % 4 + 1], number, 1, "
                  "if(number % 3 = 0, NULL, -number), concat('lc', toString(number % 5)), "
                  "map('k', number % 9), [NULL, toString(number)] FROM numbers(100)",
    },
    {
        .name = "summ",
        .cols = "region Int8, tag String, id UInt64, hits UInt64, amount Decimal(18, 4)",
        .engine = "SummingMergeTree((hits)) PARTITION BY (region, tag) ORDER BY (id) "
                  "SETTINGS index_granularity = 256",
        .key = "region",
        .splits = 2,
        .insert = "SELECT toInt8(number % 3) - 1, ['a''b', 'c'][number % 2 + 1], number, 1, "
                  "toDecimal64(number, 4) / 7 FROM numbers(120)",
    },
    {
        .name = "aggr",
        .cols = "day Date, id UInt64, total AggregateFunction(sum, UInt64), "
                "mx SimpleAggregateFunction(max, UInt32)",
        .engine = "AggregatingMergeTree PARTITION BY toMonday(day) ORDER BY id",
        .key = "cityHash64(id)",
        .splits = 2,
        .insert = "SELECT toDate('2024-03-01') + intDiv(number, 10), number, "
                  "arrayReduce('sumState', [number]), toUInt32(number) FROM numbers(30)",
    },
    {
        .name = "coll",
        .cols = "k Int32, id UInt64, sign Int8, val String CODEC(LZ4HC(9))",
        .engine = "CollapsingMergeTree(sign) PARTITION BY intDiv(k, 10) ORDER BY (k, id)",
        .key = "k",
        .splits = 2,
        .insert = "SELECT toInt32(number) - 25, number, 1, toString(number) FROM numbers(50)",
    },
    {
        .name = "vcoll",
        .cols = "dt DateTime('UTC'), id UInt64, sign Int8, ver UInt32, u String, "
                "INDEX idx_u u TYPE bloom_filter GRANULARITY 1, "
                "PROJECTION by_u (SELECT u, count() GROUP BY u)",
        .engine = "VersionedCollapsingMergeTree(sign, ver) PARTITION BY toDate(dt) ORDER BY id "
                  "SETTINGS deduplicate_merge_projection_mode = 'rebuild'",
        .key = "id",
        .splits = 2,
        .insert = "SELECT toDateTime('2024-05-01 00:00:00', 'UTC') + number * 3600 * 7, number, 1, 1, "
                  "toString(number % 4) FROM numbers(20)",
    },
    {
        .name = "idx",
        .cols = "ts DateTime64(3, 'UTC'), id UInt64, msg String, "
                "lvl Enum8('info' = 1, 'warn' = 2), "
                "INDEX i_msg msg TYPE tokenbf_v1(256, 2, 0) GRANULARITY 4, "
                "INDEX i_id id TYPE minmax GRANULARITY 1, "
                "PROJECTION p_lvl (SELECT lvl, count() GROUP BY lvl), "
                "CONSTRAINT c1 CHECK id >= 0",
        .engine = "MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (lvl, id) "
                  "SETTINGS index_granularity = 4096",
        .comment = "with 'quotes' and \\ backslash",
        .key = "rand()",
        .splits = 2,
        .insert = "SELECT toDateTime64('2024-06-01 10:00:00', 3, 'UTC') + number * 30000, number, "
                  "concat('msg ', toString(number)), number % 2 + 1 FROM numbers(40)",
    },
    {
        .name = "unpart",
        .cols = "id UInt64, name FixedString(4), ip4 IPv4, ip6 IPv6, uid UUID, d32 Date32, "
                "big Int128, tup Tuple(a Int32, b String), nst Nested(x UInt8, y String), "
                "e16 Enum16('a' = 1, 'b' = 1000), dec Decimal128(10), dt64 DateTime64(6, 'UTC'), "
                "deep Tuple(a Tuple(b Array(Map(String, Tuple(x Int32, y String))), "
                "c Nullable(String)), d LowCardinality(String))",
        .engine = "MergeTree ORDER BY tuple() SETTINGS index_granularity = 8192",
        .key = "1",
        .splits = 3,
        .insert = "(id, name, ip4, ip6, uid, d32, big, tup, `nst.x`, `nst.y`, e16, dec, dt64, deep) "
                  "SELECT number, 'abcd', toIPv4(number), toIPv6('::ffff:1.2.3.4'), "
                  "toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(number), 12, '0'))), "
                  "toDate32('1950-01-01') + number, toInt128(number) * -1000000000000, "
                  "(toInt32(number), toString(number)), [1, 2], ['p', 'q'], "
                  "if(number % 2 = 0, 'a', 'b'), toDecimal128(number, 10) / 3, "
                  "toDateTime64('2024-01-01 00:00:00.123456', 6, 'UTC'), "
                  "(([map('k', (toInt32(number), 'y'))], toNullable('c')), 'd') FROM numbers(25)",
    },
    {
        .name = "rrep",
        .cols = "d Date, id UInt64, ver UInt64, payload String",
        .engine = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/chc_compat/rrep', "
                  "'{replica}', ver) PARTITION BY toYYYYMM(d) ORDER BY (id) "
                  "SETTINGS index_granularity = 8192",
        .dst_engine = "ReplacingMergeTree(ver) PARTITION BY toYYYYMM(d) ORDER BY (id) "
                      "SETTINGS index_granularity = 8192",
        .key = "id",
        .splits = 2,
        .insert = "SELECT toDate('2023-12-20') + number, number, 1, repeat('x', number) "
                  "FROM numbers(30)",
        .note = "rrep: the task's engine is Replicated; in-process (no ZooKeeper) its tables "
                "are the non-replicated twin, which is what staging gets",
    },
    {
        .name = "rnone",
        .cols = "id UInt64, v String",
        .engine = "ReplicatedMergeTree PARTITION BY intDiv(id, 5) ORDER BY id",
        .dst_engine = "MergeTree PARTITION BY intDiv(id, 5) ORDER BY id",
        .key = "id",
        .splits = 2,
        .insert = "SELECT number, toString(number) FROM numbers(10)",
        .note = "rnone: the task's engine is an arg-less Replicated one; in-process its tables "
                "are the non-replicated twin",
    },
};

const size_t compat_matrix_n = sizeof(compat_matrix) / sizeof(compat_matrix[0]);

"""The lab's `hits` table: the one schema the demo, the benchmark and the
package test copy (a monthly-partitioned MergeTree with Nullable, Array and
Float columns), and the rows each source shard gets.

Rows differ between shards (UserID is offset by shard * 1e9), so a copy that
doubles or drops a shard's rows shows in the checksums.
"""


def hits_create(db, engine='MergeTree'):
    """CREATE TABLE <db>.hits on a source shard."""
    return f"""CREATE TABLE {db}.hits (EventDate Date, EventTime DateTime, CounterID UInt32,
        UserID UInt64, URL String, Duration Float64, Referer Nullable(String),
        Tags Array(String)) ENGINE = {engine} PARTITION BY toYYYYMM(EventDate)
        ORDER BY (CounterID, EventDate)"""


def hits_insert(db, shard, rows):
    """INSERT of `rows` rows spread over 181 days of 2018 into source shard
    number `shard` (0-based)."""
    return f"""INSERT INTO {db}.hits SELECT
        toDate('2018-01-01') + (number % 181) AS EventDate,
        toDateTime(EventDate) + (number % 86400) AS EventTime,
        toUInt32(number % 1000) AS CounterID,
        intHash64(number + {shard} * 1000000000) AS UserID,
        concat('https://example.com/', toString(number % 5000)) AS URL,
        (number % 997) / 10.0 AS Duration,
        if(number % 3 = 0, NULL, concat('ref', toString(number % 17))) AS Referer,
        arrayMap(x -> toString(x), range(number % 4)) AS Tags
        FROM numbers({rows})"""

"""test_discovery.py — partition discovery in batches (issue #13: no
quadratic step at 100 k partitions; scripts/bench-discovery measures it).

ClickHouse 18.16's time to read a table grows faster than its number of
parts, so a source shard with many partitions is discovered one batch of
its source partitions at a time (CHC_DISCOVER_BATCH lowers the batch from
1000 so that a few dozen partitions take that path here):

  - a source partitioned by week number into a monthly destination: a
    destination partition spans source partitions and batches; the copy is
    exact;
  - a daily source (PARTITION BY d): system.parts names a Date partition by
    its day number, which the key's IN refuses (Code 53): discovery falls
    back to one statement, and the copy is exact;
  - a source partition key ClickHouse cannot prune by (id % 40): the first
    batch exceeds its max_rows_to_read guard, discovery falls back to one
    statement, and the copy is exact.
"""

import pytest

from harness import taskxml
from harness.taskxml import rmt, table
from harness.verify import verify

ROWS = 12000  # per source shard


@pytest.fixture(scope='module')
def source(cluster):
    for i, n in enumerate(cluster.src_nodes, 1):
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, 'CREATE TABLE db.daily (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY d ORDER BY id')
        cluster.query(n, f"INSERT INTO db.daily SELECT number * 2 + {i - 1}, toDate('2018-01-01') + "
                         f"number % 75, toString(number) FROM numbers({ROWS})")
        cluster.query(n, 'CREATE TABLE db.weekly (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY toRelativeWeekNum(d) ORDER BY id')
        cluster.query(n, 'INSERT INTO db.weekly SELECT * FROM db.daily')
        cluster.query(n, 'CREATE TABLE db.hashed (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY id % 40 ORDER BY id')
        cluster.query(n, 'INSERT INTO db.hashed SELECT * FROM db.daily')


def copy(cluster, chcopier, src, name):
    engine = rmt(name, 'PARTITION BY toYYYYMM(d) ORDER BY id')
    xml = taskxml.task_xml(cluster, [table('t', src, name, engine, 'id', number_of_splits=2)])
    path = f'/chc/{name}'
    chcopier.upload(path, taskxml.write(chcopier.path(f'{name}.xml'), xml))
    return chcopier.work(path, base_dir=f'logs-{name}', env={'CHC_DISCOVER_BATCH': '4'})


def test_weekly_source_into_monthly_destination_in_batches(cluster, chcopier, source):
    r = copy(cluster, chcopier, 'weekly', 'monthly')
    assert r.rc == 0, r
    logs = chcopier.logs('logs-monthly')
    assert logs.count('discovering them in batches of 4') == 2, logs[-3000:]
    assert 'refused' not in logs
    v = verify(cluster, 'db.weekly', 'db.monthly', 'toYYYYMM(d)')
    assert v, v.report()


def test_date_partitions_fall_back_to_one_statement(cluster, chcopier, source):
    r = copy(cluster, chcopier, 'daily', 'fromdaily')
    assert r.rc == 0, r
    logs = chcopier.logs('logs-fromdaily')
    assert 'discovery in batches refused' in logs, logs[-3000:]
    v = verify(cluster, 'db.daily', 'db.fromdaily', 'toYYYYMM(d)')
    assert v, v.report()


def test_key_without_pruning_falls_back_to_one_statement(cluster, chcopier, source):
    r = copy(cluster, chcopier, 'hashed', 'fromhashed')
    assert r.rc == 0, r
    logs = chcopier.logs('logs-fromhashed')
    assert 'discovery in batches refused' in logs and 'Code: 158' in logs, logs[-3000:]
    v = verify(cluster, 'db.hashed', 'db.fromhashed', 'toYYYYMM(d)')
    assert v, v.report()

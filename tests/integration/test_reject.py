"""Rejected rows (seed 002's case), once per data path: the destination's
column type cannot take the source's values. The piece fails, the worker
logs a clear line naming the table and the server's error (which names the
column), does not retry what would fail again (issue #12: errors that end),
exits 1 and marks nothing done; status shows the failing pieces. After the
operator fixes the destination table, a new worker finishes with exact
results.

The tests run in order: the refused run (fixture `refused`), then the fix.
"""

import re
import time

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.taskxml import rmt, table
from harness.verify import verify

DATA_PATHS = ['pull', 'pipe']


@pytest.fixture(scope='module')
def refused(cluster, chcopier):
    for i in (1, 2):
        cluster.query(f's{i}', 'CREATE DATABASE db')
        cluster.query(f's{i}', 'CREATE TABLE db.events (id UInt64, d Date, code String) ENGINE = MergeTree '
                               'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(f's{i}', f"INSERT INTO db.events SELECT number * 2 + {i - 1}, toDate('2018-03-01') + "
                               "number % 40, if(number % 10 = 0, concat('E', toString(number)), toString(number)) "
                               'FROM numbers(5000)')
    # The operator pre-created the destination with a numeric column.
    for n in cluster.dst_nodes:
        cluster.query(n, 'CREATE DATABASE db')
        cluster.query(n, "CREATE TABLE db.events (id UInt64, d Date, code UInt32) ENGINE = ReplicatedMergeTree("
                         "'/clickhouse/tables/{cluster}/{shard}/events', '{replica}') PARTITION BY toYYYYMM(d) "
                         'ORDER BY id')
    xml = taskxml.task_xml(cluster, [table('events', 'events', 'events',
                                           rmt('events', 'PARTITION BY toYYYYMM(d) ORDER BY id'), 'id',
                                           number_of_splits=2)])
    chcopier.upload('/chc/rej', taskxml.write(chcopier.path('task.xml'), xml))
    start = time.monotonic()
    r = chcopier.work('/chc/rej', '--retry-delay-ms', 300, '--max-shard-partition-tries', 1000, timeout=120)
    took = time.monotonic() - start
    last = (r.err.strip().splitlines() or [''])[-1]
    print(f'# exit {r.rc} after {took:.1f} s: {last}')
    return dict(result=r, took=took, last=last)


def failures(chcopier):
    return [line for line in chcopier.logs().splitlines() if 'copy failed' in line]


def test_rejected_piece_logs_one_clear_line(chcopier, refused):
    lines = failures(chcopier)
    assert lines, 'no "copy failed" line'
    print(f'# {lines[0]}')
    assert '[events ' in lines[0] and 'Cannot parse' in lines[0], lines[0]


def test_refusal_not_retried_worker_exits_1_within_60_s(refused):
    assert refused['result'].rc == 1 and refused['took'] <= 60, refused


def test_last_line_names_the_table_and_says_retrying_cannot_help(refused):
    assert re.search(r"table .events.: copying a piece was refused and would be again.*Cannot parse",
                     refused['last']), refused['last']


def test_nothing_of_the_rejected_partition_done(cluster, chcopier, refused):
    # Only March has rows with letters.
    assert cluster.q('d1r1', 'SELECT count() FROM db.events WHERE toYYYYMM(d) = 201803') == '0'
    assert not re.search(r'events 201803 piece .*piece copied', chcopier.logs())


def test_status_shows_failing_pieces(chcopier, refused):
    t = chcopier.status('/chc/rej')['tables'][0]
    assert t['failing_pieces'] > 0 and 'Cannot parse' in t['last_error'], t
    print(f"# status: {t['failing_pieces']} failing pieces, last error: {t['last_error'][:100]}")


def test_after_the_fix_a_new_worker_finishes_exact(cluster, chcopier, refused):
    for n in ('d1r1', 'd2r1'):
        cluster.query(n, 'ALTER TABLE db.events MODIFY COLUMN code String')
    for n in ('d1r2', 'd2r2'):
        wait_for(lambda: cluster.q(n, "SELECT type FROM system.columns WHERE database = 'db' AND table = 'events' "
                                      "AND name = 'code'") == 'String', 10)
    r = chcopier.work('/chc/rej', '--retry-delay-ms', 300, timeout=300)
    assert r.rc == 0, f'after the fix a new worker finishes: {r}'
    v = verify(cluster, 'db.events', 'db.events', 'toYYYYMM(d)')
    assert v, v.report()

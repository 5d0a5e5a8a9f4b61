"""Rejected rows (issue #6, seed 002's case), once per data path: the
destination's column type cannot take the source's values. The piece fails,
the worker logs a clear line naming the table and the server's error (which
names the column), retries with backoff and marks nothing done; status shows
the failing pieces. After the operator fixes the destination table, the same
worker finishes with exact results.

The tests run in order, on one worker started by the `worker` fixture.
"""

import re

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.taskxml import rmt, table
from harness.verify import verify

DATA_PATHS = ['pull', 'pipe']


@pytest.fixture(scope='module')
def worker(cluster, chcopier):
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
    w = chcopier.worker('/chc/rej', '--retry-delay-ms', 300, '--max-shard-partition-tries', 1000)
    wait_for(lambda: chcopier.logs().count('copy failed') >= 4, 20)
    return w


def failures(chcopier):
    return [line for line in chcopier.logs().splitlines() if 'copy failed' in line]


def test_rejected_piece_logs_one_clear_line(chcopier, worker):
    lines = failures(chcopier)
    assert lines, 'no "copy failed" line'
    line = lines[0]
    print(f'# {line}')
    assert '[events ' in line and 'Cannot parse' in line and 'will be redone' in line, line


def test_nothing_of_the_rejected_partition_done(cluster, chcopier, worker):
    # Only March has rows with letters; April's pieces copy and move fine.
    assert cluster.q('d1r1', 'SELECT count() FROM db.events WHERE toYYYYMM(d) = 201803') == '0'
    assert not re.search(r'events 201803 piece .*piece copied', chcopier.logs())


def test_retries_back_off(chcopier, worker):
    times = []
    for line in failures(chcopier):
        h, m, s = line.split()[1].split(':')
        times.append(int(h) * 3600 + int(m) * 60 + float(s))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps and max(gaps) > 0.3, f'largest gap between failures {max(gaps, default=None)} s > retry delay'


def test_worker_keeps_retrying(worker):
    assert worker.alive()


def test_status_shows_failing_pieces(chcopier, worker):
    t = chcopier.status('/chc/rej')['tables'][0]
    assert t['failing_pieces'] > 0 and 'Cannot parse' in t['last_error'], t
    print(f"# status: {t['failing_pieces']} failing pieces, last error: {t['last_error'][:100]}")


def test_after_the_fix_the_same_worker_finishes_exact(cluster, worker):
    for n in ('d1r1', 'd2r1'):
        cluster.query(n, 'ALTER TABLE db.events MODIFY COLUMN code String')
    for n in ('d1r2', 'd2r2'):
        wait_for(lambda: cluster.q(n, "SELECT type FROM system.columns WHERE database = 'db' AND table = 'events' "
                                      "AND name = 'code'") == 'String', 10)
    rc = worker.wait(60)
    assert rc == 0, f'the worker finishes after the fix (exit {rc})'
    v = verify(cluster, 'db.events', 'db.events', 'toYYYYMM(d)')
    assert v, v.report()

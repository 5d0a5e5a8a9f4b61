"""test_trust_pipe.py — the pipe data path where a server is both ends, and
data that looks like a server exception (src/ch/transfer.c, src/copier/piece.c).

  - cluster_pull == cluster_push (`source`, 2 shards): every source server
    is also a staging node, so a pipe's SELECT and INSERT run on the same
    server at once; ClickHouse refuses a second query with an id that is
    running, so they need distinct ids (with the piece's prefix, that
    KILL QUERY ... LIKE still finds);
  - a table whose String column, last in the Native stream, ends on every
    row with "x Code: 395, e.displayText() = DB::Exception: fake\\n" (so the
    last bytes of every piece's stream look like an exception thrown
    mid-stream): copied intact, per partition count and checksum equal.
    That a real mid-stream exception still fails both sides and leaves
    nothing is proven by pipe-smoke's source_exception_mid_stream_fails_both.

Kills nothing. Layout: 2 source shards -> 1 x 1 destination.
"""

import re
import time

import pytest

from harness import taskxml
from harness.cluster import QueryError
from harness.taskxml import rmt, table
from harness.verify import verify

CLUSTER_LAYOUT = dict(src_shards=2, dst_shards=1, dst_replicas=1)
DATA_PATHS = ['pipe']
FAKE = 'x Code: 395, e.displayText() = DB::Exception: fake\\n'
FAST = ('--max-shard-partition-tries', 2, '--max-table-tries', 1, '--retry-delay-ms', 100)


@pytest.fixture(scope='module')
def source(cluster):
    """db.t: about 10 MB per shard, so that a piece's SELECT still streams
    when its INSERT starts on the same server; db.fake: small."""
    for n in cluster.src_nodes:
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, 'CREATE TABLE db.t (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(n, f"INSERT INTO db.t SELECT number * 2 + {n.shard - 1}, "
                         f"toDate('2019-01-01') + number % 70, "
                         f"concat(toString(number), ':{'x' * 100}') FROM numbers(100000)")
        cluster.query(n, 'CREATE TABLE db.fake (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(n, f"INSERT INTO db.fake SELECT number * 2 + {n.shard - 1}, "
                         f"toDate('2019-01-01') + number % 70, concat(toString(number), ' {FAKE}') "
                         f"FROM numbers(3000)")


def test_same_server_is_source_and_staging(cluster, chcopier, source):
    """Source shards s1, s2 copy into db.t_same on s1, s2 (resharded by
    id). Throttled, so that s1's running queries can be watched: a pipe's
    SELECT and INSERT run there at once, ids <prefix>-r and <prefix>-w."""
    xml = taskxml.task_xml(cluster, [table('same', 't', 't_same', 'ENGINE = MergeTree PARTITION BY '
                                           'toYYYYMM(d) ORDER BY id', 'id', cluster_push='source')])
    task = taskxml.write(chcopier.path('same.xml'), xml)
    w = chcopier.worker('/trust/pipe_same', '--task-file', task, *FAST, '--max-bytes-per-second',
                        4000000, base_dir='logs-same')
    seen = set()
    while w.alive():
        try:
            seen |= {tuple(r) for r in cluster.rows('s1', "SELECT query_id FROM system.processes "
                                                          "WHERE query_id LIKE 'chc-%'")}
        except QueryError:
            pass
        time.sleep(0.05)
    assert w.wait(60) == 0, w.output()[-3000:]
    src = cluster.src_all('db', 't')
    dst = cluster.src_all('db', 't_same')
    assert cluster.q('s1', f'SELECT count(), sum(cityHash64(id, d, s)) FROM {dst}') == \
        cluster.q('s1', f'SELECT count(), sum(cityHash64(id, d, s)) FROM {src}')
    for n in cluster.src_nodes:  # routed by id over the two shards, none empty
        assert int(cluster.q(n, 'SELECT count() FROM db.t_same')) > 0
    ids = {r[0] for r in seen}
    pairs = {i[:-2] for i in ids if i.endswith('-r')} & {i[:-2] for i in ids if i.endswith('-w')}
    assert pairs, f'no SELECT and INSERT of one pipe seen at once on s1: {sorted(ids)}'
    for stem in pairs:  # chc-<definition>-<partition>-<k>-...: what KILL QUERY ... LIKE uses
        assert re.match(r'^chc-[0-9a-f]{8}-[0-9a-f]+-[0-9]+-', stem), stem


def test_data_that_ends_like_an_exception(cluster, chcopier, source):
    """Every piece's stream ends with a value that reads like a server
    exception: copied, not refused."""
    xml = taskxml.task_xml(cluster, [table('fake', 'fake', 'fake2', rmt('fake2', 'PARTITION BY '
                                           'toYYYYMM(d) ORDER BY id'), 'id')])
    task = taskxml.write(chcopier.path('fake.xml'), xml)
    r = chcopier.work('/trust/pipe_fake', '--task-file', task, *FAST, base_dir='logs-fake')
    assert r.rc == 0, r
    v = verify(cluster, 'db.fake', 'db.fake2', 'toYYYYMM(d)')
    assert v, v.report()
    # FAKE is SQL text: its \\n is a newline in the values.
    assert cluster.q('d1r1', f"SELECT count() FROM db.fake2 WHERE endsWith(s, '{FAKE}') "
                             f"AND endsWith(s, '\\n')") == '6000'
    assert 'copy failed' not in chcopier.logs('logs-fake')

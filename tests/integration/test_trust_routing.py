"""test_trust_routing.py — what chaos found about Distributed routing and
the staging replicas, each on a real cluster (2 source shards, 2 x 2
ReplicatedMergeTree destination whose servers know `destination` exactly):

  - a routed copy while the staging replica of a shard is away (its server
    restarted): the Distributed table writes to the other replica, which
    has no piece table, and ClickHouse refuses for good; the table falls
    back to filter routing and waits for its staging replica (the worker
    used to stop: "copying a piece was refused");
  - the staging replica of each shard is pinned for the table before the
    routing is chosen: a worker started while it is down waits for it
    instead of staging on the other replica (pieces on one replica and
    the assembly on another lose or double rows);
  - a ZooKeeper session lost while the routing is chosen is a lost session
    (recovered), not "out of memory" (the worker used to exit 1);
  - a worker started on a finished table while a destination server is
    down exits 0.
"""

import re
import time

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.cluster import QueryError
from harness.taskxml import rmt, table
from harness.verify import verify

SRC_ROWS = 20000


@pytest.fixture(scope='module')
def source(cluster):
    for i, n in enumerate(cluster.src_nodes, 1):
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, 'CREATE TABLE db.src (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(n, f"INSERT INTO db.src SELECT number * 2 + {i - 1}, toDate('2018-01-01') + "
                         f"number % 90, toString(number) FROM numbers({SRC_ROWS})")
        # rows on the second source shard only: every piece is routed by
        # d2r1, whose Distributed table writes shard 1's rows to d1r*
        cluster.query(n, 'CREATE TABLE db.src2 AS db.src')
        if i == 2:
            cluster.query(n, 'INSERT INTO db.src2 SELECT * FROM db.src')
    for n in cluster.dst_nodes:
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')


def task(cluster, chcopier, name, src='src'):
    engine = rmt(name, 'PARTITION BY toYYYYMM(d) ORDER BY id')
    xml = taskxml.task_xml(cluster, [table('t', src, name, engine, 'id', number_of_splits=2)])
    chcopier.upload(f'/chc/{name}', taskxml.write(chcopier.path(f'{name}.xml'), xml))
    return f'/chc/{name}'


def stopped(w):
    """The worker stopped itself (a :stop fault point)."""
    try:
        with open(f'/proc/{w.pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'T'
    except (OSError, IndexError):
        return False


def zk_xml_with_session(cluster, dest, ms):
    with open(cluster.zookeeper_xml) as f:
        text = re.sub(r'<session_timeout_ms>\d+</session_timeout_ms>',
                      f'<session_timeout_ms>{ms}</session_timeout_ms>', f.read())
    with open(dest, 'w') as f:
        f.write(text)
    return dest


def piece_rows(cluster, node, name):
    """Rows in NAME's piece tables on NODE (0 when there are none)."""
    tables = cluster.q(node, "SELECT name FROM system.tables WHERE database = 'db' AND "
                             f"match(name, '^{name}_piece_[0-9]+$') FORMAT TSVRaw").split()
    return sum(int(cluster.q(node, f'SELECT count() FROM db.{t}')) for t in tables)


def test_routed_copy_while_the_staging_replica_is_away(cluster, chcopier, source):
    """Rows on source shard 2 only, so every piece is routed by d2r1.
    Routing chosen Distributed with every server up; the worker stops at
    its first claim; d1r1 (shard 1's staging replica) goes down; the worker
    goes on, and d1r1 comes back 6 s later. Before the fix the routed
    INSERT that reached d1r2 was refused ("Table ..._piece_0 doesn't
    exist") and the worker exited 1."""
    path = task(cluster, chcopier, 'away', src='src2')
    w = chcopier.worker(path, '--fault-point', 'after_claim:stop', '--retry-delay-ms', 200,
                        '--min-piece-rows', 0, base_dir='logs-away')
    try:
        assert wait_for(lambda: stopped(w) or not w.alive(), 60), w.output()[-2000:]
        assert w.alive(), w.output()[-2000:]
        cluster.stop_node('d1r1')
        w.cont()
        time.sleep(6)
    finally:
        cluster.start_node('d1r1')
    rc = w.wait(300)
    logs = chcopier.logs('logs-away')
    assert 'routing distributed:' in logs, 'the routing was not Distributed to begin with'
    assert rc == 0, w.output()[-3000:]
    assert 'routing by filter from now on' in logs
    v = verify(cluster, 'db.src2', 'db.away', 'toYYYYMM(d)', replica_wait=120)
    assert v, v.report()


def test_staging_replica_pinned_before_routing(cluster, chcopier, source):
    """Worker 1 pins the staging replicas (every server up) and dies at its
    first claim. With d1r1 down, worker 2 must not stage on d1r2: it waits
    (the log says so) and nothing reaches d1r2's piece tables; once d1r1 is
    back, worker 2 finishes and the copy is exact. Before the fix worker 2
    chose d1r2 and copied there."""
    path = task(cluster, chcopier, 'pinned')
    r = chcopier.work(path, '--fault-point', 'after_claim', base_dir='logs-pinned')
    assert r.rc == 99, r
    cluster.stop_node('d1r1')
    try:
        w = chcopier.worker(path, '--retry-delay-ms', 200, '--min-piece-rows', 0, base_dir='logs-pinned')
        time.sleep(8)
        on_d1r2 = piece_rows(cluster, 'd1r2', 'pinned')
        waiting = 'pinned for this table), which does not answer' in chcopier.logs('logs-pinned')
    finally:
        cluster.start_node('d1r1')
    assert on_d1r2 == 0, f'{on_d1r2} rows staged on d1r2, which is not the pinned staging replica'
    assert waiting, chcopier.logs('logs-pinned')[-3000:]
    assert w.wait(300) == 0, w.output()[-3000:]
    v = verify(cluster, 'db.src', 'db.pinned', 'toYYYYMM(d)', replica_wait=120)
    assert v, v.report()


def test_session_lost_while_choosing_the_routing(cluster, chcopier, source):
    """Session timeout 3 s; the worker stops itself before asking the
    servers for their clusters, is thawed 6 s later and goes on once its
    client knows the session expired. Before the fix the lost session came
    back as "out of memory" and the worker exited 1."""
    zk = zk_xml_with_session(cluster, chcopier.path('zk3s.xml'), 3000)
    path = task(cluster, chcopier, 'lostrt')
    w = chcopier.worker(path, '--fault-point', 'before_routing:stop-expired', '--retry-delay-ms', 200,
                        zk_xml=zk, base_dir='logs-lostrt')
    assert wait_for(lambda: stopped(w) or not w.alive(), 60), w.output()[-2000:]
    assert w.alive(), w.output()[-2000:]
    time.sleep(6)
    w.cont()
    rc = w.wait(300)
    out = w.output() + chcopier.logs('logs-lostrt')
    assert 'out of memory' not in out, out[-3000:]
    assert rc == 0, out[-3000:]
    assert 'ZooKeeper session expired' in out
    v = verify(cluster, 'db.src', 'db.lostrt', 'toYYYYMM(d)', replica_wait=120)
    assert v, v.report()


def test_worker_on_a_finished_table_exits_0(cluster, chcopier, source):
    """A finished table, then a destination server down: a worker started
    on the task finds the table done and exits 0 (it must not wait for the
    server, nor be refused)."""
    path = task(cluster, chcopier, 'fin')
    assert chcopier.work(path, base_dir='logs-fin').rc == 0
    cluster.stop_node('d2r1')
    try:
        r = chcopier.work(path, '--retry-delay-ms', 200, base_dir='logs-fin2', timeout=120)
    finally:
        cluster.start_node('d2r1')
    assert r.rc == 0, r
    assert 'is already done' in chcopier.logs('logs-fin2')


def test_routed_insert_remote_part_obeys_receive_timeout(cluster):
    """chcopier's routed copies send receive_timeout (dialect_route_settings,
    unit-tested): the Distributed table forwards it to its inserts on the
    other shards, so a remote part left waiting (for blocks, or for a
    staging table lock behind a queued DROP PARTITION: ClickHouse 18.16's
    locks are FIFO, and two routed copies can hold each other's shards for
    the server's 300 s) ends within it. Here the blocks come 2 s apart: with
    the server's default the insert completes, with receive_timeout=1 the
    remote part gives up after 1 s."""
    for n in cluster.dst_nodes:
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS rt')
        cluster.query(n, 'CREATE TABLE rt.t (id UInt64) ENGINE = MergeTree ORDER BY id')
    cluster.query('d1r1', 'CREATE TABLE rt.dist AS rt.t ENGINE = Distributed(destination, rt, t, id)')
    slow = 'INSERT INTO rt.dist SELECT number FROM system.numbers WHERE sleepEachRow(2) = 0 LIMIT 3'
    base = dict(insert_distributed_sync=1, prefer_localhost_replica=0, load_balancing='in_order',
                max_block_size=1, min_insert_block_size_rows=0, min_insert_block_size_bytes=0)
    cluster.query('d1r1', slow, settings=base)
    t0 = time.monotonic()
    with pytest.raises(QueryError, match='Timeout exceeded while receiving data from client'):
        cluster.query('d1r1', slow, settings=dict(base, receive_timeout=1))
    print(f'# the routed insert failed after {time.monotonic() - t0:.1f} s (its next block after '
          'the remote part gave up)')

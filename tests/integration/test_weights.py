"""Destination shard weights and cluster definitions only the task knows: a
2-shard destination weighted 7 and 4 (in the servers' remote_servers too, so
that a real Distributed table routes with the same weights), and a task XML
that also defines a cluster whose only replica is 255.255.255.255, which no
table task uses. chcopier must route every row to the shard whose weight
slot holds sharding_key % 11, exactly as Distributed does, and never touch
the unreachable cluster.
"""

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.taskxml import rmt, table
from harness.verify import verify

CLUSTER_LAYOUT = dict(dst_shards=2, dst_replicas=1, dst_weights=(7, 4))
ROWS = 30000


@pytest.fixture(scope='module')
def copied(cluster, chcopier):
    for i in (1, 2):
        cluster.query(f's{i}', 'CREATE DATABASE db')
        cluster.query(f's{i}', 'CREATE TABLE db.src (id UInt64, d Date, k Int32, s String) ENGINE = MergeTree '
                               'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(f's{i}', f"INSERT INTO db.src SELECT number * 2 + {i - 1}, toDate('2020-01-01') + number % 90, "
                               f'toInt32(number % 1000) - 500, toString(number) FROM numbers({ROWS})')
    xml = taskxml.task_xml(cluster, [table('t', 'src', 'dst', rmt('dst', 'PARTITION BY toYYYYMM(d) ORDER BY id'),
                                           'id', number_of_splits=2)],
                           extra_clusters={'unreachable': [[('255.255.255.255', 9000, 8123)]]})
    task = taskxml.write(chcopier.path('task.xml'), xml)
    return chcopier.work('/chc/w', '--task-file', task, timeout=300)


def test_servers_know_the_weights(cluster):
    rs = open(cluster.remote_servers_xml).read()
    assert '<weight>7</weight>' in rs and '<weight>4</weight>' in rs
    got = cluster.q('d1r1', "SELECT groupArray(shard_weight) FROM (SELECT shard_num, shard_weight FROM system.clusters "
                            "WHERE cluster = 'destination' ORDER BY shard_num)")
    assert got == '[7,4]'


def test_task_defines_the_extra_cluster(chcopier, copied):
    assert '<host>255.255.255.255</host>' in open(chcopier.path('task.xml')).read()


def test_copy_finishes(copied):
    assert copied.rc == 0, copied


def test_exact_and_routed_by_weight(cluster, copied):
    v = verify(cluster, 'db.src', 'db.dst', 'toYYYYMM(d)', placement='id')
    assert v, v.report()


def test_routing_equals_a_real_distributed_table(cluster, copied):
    for n in cluster.dst_nodes:
        cluster.query(n, 'CREATE TABLE db.ref AS db.dst ENGINE = MergeTree ORDER BY id')
    cluster.query('d1r1', 'CREATE TABLE db.ref_dist AS db.ref ENGINE = Distributed(destination, db, ref, id)')
    cluster.query('d1r1', f'INSERT INTO db.ref_dist SELECT * FROM {cluster.src_all("db", "src")}')
    # 18.16 sends Distributed inserts asynchronously: wait until all arrived.
    all_ref = cluster.remote(cluster.dst_nodes, 'db', 'ref')
    wait_for(lambda: cluster.q('s1', f'SELECT count() FROM {all_ref}') == str(2 * ROWS), 20)
    counts = []
    for n in cluster.dst_nodes:
        ref = int(cluster.q(n, 'SELECT count() FROM db.ref'))
        got = int(cluster.q(n, 'SELECT count() FROM db.dst'))
        counts.append(got)
        assert ref == got > 0, f'{n.name}: distributed {ref}, chcopier {got}'
    # 7:4 of the rows, give or take the hash's spread
    assert 1.4 < counts[0] / counts[1] < 2.1, counts

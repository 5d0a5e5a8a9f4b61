"""The operator commands on a real cluster (issue #7): `plan` prints
partitions, pieces, DDL and SQL and writes nothing (ZooKeeper and every
node's system.tables unchanged); `clean` refuses without --yes and while a
worker runs, and with --yes removes the task's state and every staging
table, keeping the description and the destination's data.

The tests run in order: plan, then the copy, then clean.
"""

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.taskxml import rmt, table
from harness.verify import staging_tables


@pytest.fixture(scope='module')
def task(cluster, chcopier):
    for i in (1, 2):
        cluster.query(f's{i}', 'CREATE DATABASE db')
        cluster.query(f's{i}', 'CREATE TABLE db.t (id UInt64, d Date, s String) ENGINE = MergeTree '
                               'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(f's{i}', f"INSERT INTO db.t SELECT number * 2 + {i - 1}, toDate('2019-01-01') + number % 70, "
                               'toString(number) FROM numbers(20000)')
    xml = taskxml.task_xml(cluster, [table('t', 't', 't2', rmt('t2', 'PARTITION BY toYYYYMM(d) ORDER BY id'), 'id',
                                           number_of_splits=2)])
    return taskxml.write(chcopier.path('task.xml'), xml)


def snapshot(cluster):
    """The ZooKeeper tree under /chc and every node's tables."""
    try:
        zk = cluster.query('s1', "SELECT path, name FROM system.zookeeper WHERE path IN ('/', '/chc', '/chc/ops') "
                                 'ORDER BY path, name')
    except Exception as e:  # /chc may not exist: the error text is the snapshot
        zk = f'error: {type(e).__name__}'
    tables = [f"{n.name}: " + cluster.q(n, "SELECT groupArray(concat(database, '.', name)) FROM system.tables "
                                          "WHERE database NOT IN ('system')") for n in cluster.nodes]
    return zk + '\n'.join(tables)


@pytest.fixture(scope='module')
def plan(cluster, chcopier, task):
    before = snapshot(cluster)
    r = chcopier.run('plan', *chcopier.common('/chc/ops'), '--task-file', task)
    print('\n'.join(r.out.splitlines()[:30]))
    return dict(result=r, before=before, after=snapshot(cluster))


def test_plan_lists_partitions_ddl_and_sql(plan):
    # 20000 rows a shard: small partitions, copied together as one group,
    # one piece per source shard (number_of_splits 2).
    r = plan['result']
    assert r.rc == 0, r
    for want in ['partitions: 3 (1 copy group(s) of small partitions), pieces: 2',
                 '201901: 17732 rows, 1 piece(s) per shard for it and the next 2, on source shards 1 2',
                 '201903: 6270 rows, copied with 201901, on source shards 1 2',
                 'WHERE ((toYYYYMM(d)) IN (201901, 201902, 201903))',
                 'CREATE TABLE IF NOT EXISTS', 'INSERT INTO', 'REPLACE PARTITION',
                 '  servers: 18.16.', '  data path: pull']:
        assert want in r.out, f'{want!r} not in the plan:\n{r.out}'


def test_plan_wrote_nothing(plan):
    assert plan['after'] == plan['before']


def staging(cluster):
    return staging_tables(cluster, 'db', 't2')


def test_clean_refuses_while_a_worker_runs(cluster, chcopier, task, plan):
    chcopier.upload('/chc/ops', task)
    # a worker that is alive but stopped: clean must refuse
    w = chcopier.worker('/chc/ops', '--max-pieces-in-flight', 1)
    wait_for(lambda: cluster.zk_exists('/chc/ops/workers') and cluster.zk_children('/chc/ops/workers'), 5, 0.1)
    w.stop()
    try:
        r = chcopier.run('clean', '--yes', *chcopier.common('/chc/ops'))
    finally:
        w.cont()
    assert r.rc == 1 and 'worker(s) are running' in r.err, r
    assert w.wait() == 0, 'the worker finishes the task'


def test_clean_without_yes_removes_nothing(cluster, chcopier):
    # Leave staging behind on purpose, as a crashed run would.
    cluster.query('d1r1', 'CREATE TABLE db.t2_piece_0 AS db.t2 ENGINE = MergeTree PARTITION BY toYYYYMM(d) '
                          'ORDER BY id')
    r = chcopier.run('clean', *chcopier.common('/chc/ops'))
    assert r.rc == 2 and 'would drop' in r.out + r.err, r
    assert cluster.zk_exists('/chc/ops/tables') and staging(cluster), 'clean without --yes removed something'


def test_clean_yes_removes_state_and_staging(cluster, chcopier):
    r = chcopier.run('clean', '--yes', *chcopier.common('/chc/ops'))
    assert r.rc == 0, r
    assert not cluster.zk_exists('/chc/ops/tables') and not cluster.zk_exists('/chc/ops/active')
    assert cluster.zk_exists('/chc/ops/description'), 'clean keeps the description'
    assert staging(cluster) == {}


def test_destination_untouched_by_clean(cluster):
    assert cluster.q('s1', f'SELECT count() FROM {cluster.dst_all("db", "t2")}') == '40000'

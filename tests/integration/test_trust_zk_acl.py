"""test_trust_zk_acl.py — ZooKeeper access control (src/zk/zk.c): with
<identity>user:password</identity> in zookeeper.xml every node chcopier
creates is closed to clients without that identity.

  - a copy run with an identity: ClickHouse's system.zookeeper (a ZooKeeper
    client without it) can read neither <task-path>/description (which holds
    every replica's password) nor list the task's state, while `status`,
    `plan` and `clean` with the same zookeeper.xml work;
  - without the identity (or with another one) `status` and an upload that
    would overwrite the description fail with one line naming the path and
    the missing <identity>;
  - the nodes above the task path that an upload creates stay open: a task
    under a fresh /trust_shared must not lock ClickHouse out of it (its
    ReplicatedMergeTree tables create their own nodes there);
  - without an identity, upload and run warn in one line that the
    description and its passwords are open to anyone who reaches ZooKeeper.

Kills nothing. Layout: 1 source shard -> 1 x 1 destination.
"""

import pytest

from harness import taskxml
from harness.chcopier import read
from harness.cluster import QueryError
from harness.taskxml import rmt, table
from harness.verify import verify

CLUSTER_LAYOUT = dict(src_shards=1, dst_shards=1, dst_replicas=1)
TP = '/trust/acl'
IDENTITY = 'trust:zk-Secret-1'
WARNING = 'has no <identity>user:password</identity>'


def zk_xml_with(cluster, chcopier, name, identity):
    """cluster's zookeeper.xml with an <identity> (None: as it is)."""
    text = read(cluster.zookeeper_xml)
    if identity:
        text = text.replace('<session_timeout_ms>',
                            f'<identity>{identity}</identity>\n        <session_timeout_ms>', 1)
        assert identity in text
    return taskxml.write(chcopier.path(name), text)


@pytest.fixture(scope='module')
def ident(cluster, chcopier):
    return zk_xml_with(cluster, chcopier, 'zk-ident.xml', IDENTITY)


@pytest.fixture(scope='module')
def source(cluster):
    cluster.query('s1', 'CREATE DATABASE IF NOT EXISTS db')
    cluster.query('s1', 'CREATE TABLE db.t (id UInt64, d Date, s String) ENGINE = MergeTree '
                        'PARTITION BY toYYYYMM(d) ORDER BY id')
    cluster.query('s1', "INSERT INTO db.t SELECT number, toDate('2019-01-01') + number % 80, "
                        "toString(number) FROM numbers(3000)")


@pytest.fixture(scope='module')
def task(cluster, chcopier, source):
    xml = taskxml.task_xml(cluster, [table('t', 't', 't2', rmt('t2', 'PARTITION BY toYYYYMM(d) ORDER BY id'),
                                           'id')], source_auth=('chc', 'chcpass'))
    return taskxml.write(chcopier.path('task.xml'), xml)


@pytest.fixture(scope='module')
def copied(cluster, chcopier, ident, task):
    up = chcopier.upload(TP, task, zk_xml=ident)
    r = chcopier.work(TP, zk_xml=ident, base_dir='logs-ident')
    assert r.rc == 0, r
    return up, r


def test_copy_with_identity(cluster, copied):
    v = verify(cluster, 'db.t', 'db.t2', 'toYYYYMM(d)')
    assert v, v.report()


def test_description_closed_to_clients_without_identity(cluster, copied):
    """system.zookeeper is a ZooKeeper client without the identity."""
    with pytest.raises(QueryError) as e:
        cluster.zk_get(f'{TP}/description')
    assert 'auth' in e.value.text.lower(), e.value.text
    for node in (TP, f'{TP}/tables', f'{TP}/workers'):
        with pytest.raises(QueryError) as e:
            cluster.zk_children(node)
        assert 'auth' in e.value.text.lower(), (node, e.value.text)


def test_status_plan_clean_with_identity(cluster, chcopier, ident, copied):
    s = chcopier.status(TP, zk_xml=ident)
    assert [t['state'] for t in s['tables']] == ['done'], s
    r = chcopier.run('plan', *chcopier.common(TP, ident))
    assert r.rc == 0 and 'plan only' in r.out, r
    r = chcopier.run('clean', '--yes', *chcopier.common(TP, ident))
    assert r.rc == 0, r
    s = chcopier.status(TP, zk_xml=ident)
    assert [t['state'] for t in s['tables']] == ['not_started'], s


def test_without_identity_one_line_naming_path_and_identity(cluster, chcopier, task, copied):
    none = zk_xml_with(cluster, chcopier, 'zk-none.xml', None)
    r = chcopier.run('status', *chcopier.common(TP, none))
    assert r.rc == 1, r
    assert f"'{TP}/description'" in r.err and 'not authorized' in r.err, r
    assert 'add the <identity>user:password</identity>' in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r.err
    # Writing is refused as well: an upload that would replace it.
    other = taskxml.write(chcopier.path('task-other.xml'), read(task).replace('<max_workers>4<',
                                                                               '<max_workers>5<'))
    r = chcopier.upload(TP, other, '--task-upload-force', zk_xml=none, check=False)
    assert r.rc == 1 and 'not authorized' in r.err, r


def test_wrong_identity_is_named(cluster, chcopier, copied):
    wrong = zk_xml_with(cluster, chcopier, 'zk-wrong.xml', 'trust:not-the-one')
    r = chcopier.run('status', *chcopier.common(TP, wrong))
    assert r.rc == 1 and 'not authorized' in r.err, r
    assert 'is not the one that created it' in r.err, r


def test_shared_ancestors_stay_open(cluster, chcopier, ident, task):
    """An upload to a fresh /trust_shared/acl2 creates /trust_shared open:
    ClickHouse (no identity) can still create its nodes there, while the
    task's own nodes are closed."""
    chcopier.upload('/trust_shared/acl2', task, zk_xml=ident)
    with pytest.raises(QueryError):
        cluster.zk_get('/trust_shared/acl2/description')
    cluster.query('d1r1', "CREATE TABLE db.rmt_shared (x UInt8) ENGINE = "
                          "ReplicatedMergeTree('/trust_shared/rmt', 'r1') ORDER BY x")
    cluster.query('d1r1', 'INSERT INTO db.rmt_shared VALUES (1)')
    assert cluster.q('d1r1', 'SELECT count() FROM db.rmt_shared') == '1'


def test_warning_without_identity(cluster, chcopier, task, source):
    none = zk_xml_with(cluster, chcopier, 'zk-none.xml', None)
    r = chcopier.upload('/trust/open', task, zk_xml=none)
    lines = [line for line in r.err.splitlines() if WARNING in line]
    assert len(lines) == 1, r
    assert 'zk-none.xml' in lines[0] and '/trust/open/description' in lines[0], lines
    assert 'readable and writable by anyone who reaches ZooKeeper' in lines[0], lines
    r = chcopier.work('/trust/open', zk_xml=none, base_dir='logs-open')
    assert r.rc == 0, r
    assert WARNING in chcopier.logs('logs-open', 'log.err.log')
    # The description is indeed open: system.zookeeper reads it.
    assert '<max_workers>' in cluster.zk_get('/trust/open/description')


def test_no_warning_with_identity(chcopier, copied):
    up, run = copied
    assert WARNING not in up.err, up
    assert WARNING not in chcopier.logs('logs-ident') + run.err

"""test_trust_secrets.py — replica passwords never shown (src/base/secrets.c),
once per data path.

The two source replicas are reached as users whose passwords need escaping:
trust1 with the characters s 3 c r ' e \\ t 9 (a backslash and a t; in
remote() it reads 's3cr\\'e\\\\t9'), trust2 with s3cr"2%x y (percent-encoded
s3cr%222%25x%20y). Both users exist on the source servers only through an
extra users file (<node>/users.d/trust.xml, which ClickHouse 18.16 merges
into users.xml and reloads without a restart).

A worker runs at trace level, every log line also on the console, with
every copy failing (--copy-fault-probability 1) until the table gives up;
`status --json` then shows the failing pieces; a second worker completes
the copy; `plan` and `status --json` run too. Every text they leave is
searched for "s3cr", the beginning of both passwords in every form: every
file under --base-dir, the console, the plan and status output, and every
ZooKeeper node under the task path except description (the task as
uploaded). The trace log must show the masked remote() (the statements are
logged, the passwords are not).

Kills nothing. Layout: 2 source shards -> 1 x 1 destination.
"""

import json
import os

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.cluster import HOST, QueryError
from harness.taskxml import rmt, table
from harness.verify import verify

CLUSTER_LAYOUT = dict(src_shards=2, dst_shards=1, dst_replicas=1)
DATA_PATHS = ['pull', 'pipe']
TP = '/trust/secrets'
USERS = {'trust1': "s3cr'e\\t9", 'trust2': 's3cr"2%x y'}
NEEDLE = 's3cr'
USERS_XML = """<?xml version="1.0"?>
<yandex><users>{}</users></yandex>
"""
USER_XML = ('<{u}><password>{p}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>'
            '<profile>default</profile><quota>default</quota></{u}>')


def test_password_is_the_listed_characters():
    """s 3 c r ' e \\ t 9: a backslash and a t, not a tab."""
    assert list(USERS['trust1']) == ['s', '3', 'c', 'r', "'", 'e', '\\', 't', '9']


@pytest.fixture(scope='module')
def users(cluster):
    """trust1/trust2 on every source server (users.d, reloaded live)."""
    body = ''.join(USER_XML.format(u=u, p=p.replace('&', '&amp;').replace('<', '&lt;'))
                   for u, p in USERS.items())
    for n in cluster.src_nodes:
        os.makedirs(os.path.join(n.dir, 'users.d'), exist_ok=True)
        with open(os.path.join(n.dir, 'users.d', 'trust.xml'), 'w') as f:
            f.write(USERS_XML.format(body))

    def all_know():
        try:
            return all(cluster.q(n, 'SELECT 1', user=u, password=p) == '1'
                       for n in cluster.src_nodes for u, p in USERS.items())
        except QueryError:
            return False
    assert wait_for(all_know, 30), 'the source servers did not load users.d/trust.xml'


@pytest.fixture(scope='module')
def task(cluster, chcopier, users):
    for n in cluster.src_nodes:
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, 'CREATE TABLE db.t (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(n, f"INSERT INTO db.t SELECT number * 2 + {n.shard - 1}, "
                         f"toDate('2019-01-01') + number % 60, toString(number) FROM numbers(4000)")
    s1, s2 = cluster.src_nodes
    shards = [[(HOST, s1.tcp, s1.http, 'trust1', USERS['trust1'])],
              [(HOST, s2.tcp, s2.http, 'trust2', USERS['trust2'])]]
    xml = taskxml.task_xml(cluster, [table('t', 't', 't2', rmt('t2', 'PARTITION BY toYYYYMM(d) ORDER BY id'),
                                           'id', cluster_pull='src_auth', number_of_splits=2)],
                           extra_clusters={'src_auth': shards})
    assert "<password>s3cr'e\\t9</password>" in xml
    return taskxml.write(chcopier.path('task.xml'), xml)


@pytest.fixture(scope='module')
def plan(chcopier, task):
    return chcopier.run('plan', *chcopier.common(TP), '--task-file', task, '--min-piece-rows', 0)


TRACE = ('--log-level', 'trace', '--log-stdout', '--min-piece-rows', 0)


def zk_dump(cluster):
    """{path: value} of every node under the task path but the description."""
    out = {}

    def walk(path):
        for name in cluster.zk_children(path):
            child = f'{path}/{name}'
            if child != f'{TP}/description':
                out[child] = cluster.zk_get(child)
            walk(child)
    walk(TP)
    return out


@pytest.fixture(scope='module')
def failing(cluster, chcopier, task, plan):
    """Every copy fails (an injected fault) until the table gives up; then
    status --json shows the failing pieces and their last error. Returns the
    worker, the status and ZooKeeper's nodes at that point."""
    r = chcopier.work(TP, '--task-file', task, *TRACE, '--copy-fault-probability', 1,
                      '--max-shard-partition-tries', 1, '--retry-delay-ms', 100)
    return r, chcopier.run('status', '--json', *chcopier.common(TP)), zk_dump(cluster)


@pytest.fixture(scope='module')
def run(chcopier, task, failing):
    return chcopier.work(TP, *TRACE)


@pytest.fixture(scope='module')
def status(chcopier, run):
    return chcopier.run('status', '--json', *chcopier.common(TP))


def test_copy(cluster, run):
    assert run.rc == 0, run
    v = verify(cluster, 'db.t', 'db.t2', 'toYYYYMM(d)')
    assert v, v.report()


def test_pieces_failed_and_status_showed_it(failing):
    r, st, nodes = failing
    assert r.rc == 1, r
    assert st.rc == 0, st
    tables = json.loads(st.out)['tables']
    assert tables[0]['failing_pieces'] > 0 and tables[0]['last_error'], tables
    assert any('\nerror ' in v for v in nodes.values()), 'error nodes were written'


def test_trace_log_shows_masked_statements(chcopier, run, data_path):
    log = chcopier.logs()
    assert ' T ' in log, 'trace lines are logged'
    if data_path != 'pipe':  # the pipe's statements carry no credentials
        assert "'trust1', '***')" in log and "'trust2', '***')" in log, \
            'the trace log shows the copy statements with their passwords masked'


def test_no_password_in_any_file_under_base_dir(chcopier, run):
    base = chcopier.path('logs')
    seen = 0
    for root, _, files in os.walk(base):
        for f in files:
            with open(os.path.join(root, f), 'rb') as fh:
                data = fh.read()
            seen += 1
            assert NEEDLE.encode() not in data, f'{os.path.join(root, f)} holds a password'
    assert seen >= 2


def test_no_password_on_the_console(failing, run):
    assert run.err.count('\n') > 20, 'the console shows the log lines (--log-stdout)'
    for r in (failing[0], run):
        assert NEEDLE not in r.out + r.err


def test_no_password_in_plan(plan):
    assert plan.rc == 0, plan
    assert 'remote(' in plan.out or 'FORMAT Native' in plan.out or 'SELECT' in plan.out
    assert NEEDLE not in plan.out + plan.err, 'plan shows a password'


def test_plan_masks_every_shard(plan):
    """plan shows the pull path's statements (no --data-path given)."""
    assert "'trust1', '***')" in plan.out and "'trust2', '***')" in plan.out, plan.out


def test_no_password_in_status(failing, status):
    for r in (failing[1], status):
        assert r.rc == 0, r
        assert NEEDLE not in r.out + r.err


def test_no_password_in_zookeeper_but_the_description(cluster, failing, run):
    for nodes in (failing[2], zk_dump(cluster)):
        assert len(nodes) > 5, nodes
        for path, value in nodes.items():
            assert NEEDLE not in value, f'{path} holds a password: {value[:300]}'
    assert NEEDLE in cluster.zk_get(f'{TP}/description'), 'the description is the task as uploaded'

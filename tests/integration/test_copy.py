"""Copies on a real cluster (issue #4), once per data path: 2 source shards
-> 2 x 2 ReplicatedMergeTree. Every copy is checked with harness.verify (per
partition count and sum(cityHash64(*)) of destination vs source, no
duplicated id, second replicas agree, no staging left); per-shard routing
against a real Distributed table; month->week repartitioning,
where_condition, enabled_partitions, splits 1, 3 and 7, a non-partitioned
table, a non-replicated destination, five table tasks in one description,
two workers at once (metrics scraped and status read while they run), JSON
logs, source credentials that never reach the logs, a second run (no double
copy), append into a partition that already has rows with max_workers=1 and
two workers, and copy groups of daily partitions with injected faults.

Env: CHC_TEST_ROWS (rows per source shard, 60000).
"""

import json
import os
import re
import time
import urllib.request

import pytest

from harness import taskxml
from harness.chcopier import log_dirs, read, wait_for
from harness.taskxml import rmt, table
from harness.verify import staging_tables, verify

DATA_PATHS = ['pull', 'pipe']
FAULT_SEED = 6
ROWS = int(os.environ.get('CHC_TEST_ROWS') or 60000)


@pytest.fixture(scope='module')
def source(cluster):
    """Mixed types, distinct rows per shard, unique id, signed sharding key."""
    for i in (1, 2):
        n = f's{i}'
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, """CREATE TABLE db.mixed (id UInt64, d Date, dt DateTime, sk Int16, u32 UInt32,
            f Float64, s String, n Nullable(String), a Array(UInt32))
            ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY (u32, id)""")
        cluster.query(n, f"""INSERT INTO db.mixed SELECT number * 2 + {i - 1} AS id,
            toDate('2018-01-01') + intDiv(number * 97, {ROWS}) AS d, toDateTime(d) + number % 86400,
            toInt16(number % 2000) - 1000, toUInt32(number % 777), number / 7,
            concat('row ', toString(id), ' \\t\\'q'), if(number % 5 = 0, NULL, toString(number % 13)),
            range(number % 5) FROM numbers({ROWS})""")
        cluster.query(n, 'CREATE TABLE db.flat (id UInt64, v String) ENGINE = MergeTree ORDER BY id')
        cluster.query(n, f'INSERT INTO db.flat SELECT number * 2 + {i - 1}, toString(number) FROM numbers(5000)')


@pytest.fixture(scope='module')
def t1(cluster, chcopier, source):
    """Five table tasks, two workers started together; metrics scraped and
    status read while they run, status --json after."""
    tables = [
        table('monthly', 'mixed', 'm_month', rmt('m_month', 'PARTITION BY toYYYYMM(d) ORDER BY (u32, id)'), 'sk',
              number_of_splits=3),
        table('weekly', 'mixed', 'm_week', rmt('m_week', 'PARTITION BY toMonday(d) ORDER BY (id)'),
              'cityHash64(id)', number_of_splits=7),
        table('filtered', 'mixed', 'm_where', rmt('m_where', 'PARTITION BY toYYYYMM(d) ORDER BY id'), 'rand()',
              number_of_splits=1, where_condition='u32 % 3 = 1', enabled_partitions=[201803, 201801]),
        table('flat', 'flat', 'flat', rmt('flat', 'ORDER BY id'), 'id'),
        table('plain', 'mixed', 'm_plain', 'ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id', 'id'),
    ]
    task = taskxml.write(chcopier.path('task1.xml'), taskxml.task_xml(cluster, tables))
    chcopier.upload('/chc/t1', task)
    # --min-piece-rows 0: every partition gets number_of_splits pieces,
    # however small, so that 3 and 7 splits are exercised.
    w1 = chcopier.worker('/chc/t1', '--max-pieces-in-flight', 3, '--log-format', 'json', '--min-piece-rows', 0)
    mport = cluster.base + 99
    w2 = chcopier.worker('/chc/t1', '--metrics-port', mport, '--min-piece-rows', 0)
    metrics = ''
    for _ in range(50):
        time.sleep(0.2)
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{mport}/metrics', timeout=2) as r:
                metrics = r.read().decode()
        except OSError:
            pass
        if re.search(r'^chcopier_pieces\{table="monthly",state="done"\}', metrics, re.M):
            break
    during = chcopier.run('status', '--config', cluster.zookeeper_xml, '--task-path', '/chc/t1')
    rc1, rc2 = w1.wait(), w2.wait()
    after = chcopier.status('/chc/t1', check=False)
    print(during.out[:2000])
    return dict(rc=(rc1, rc2), metrics=metrics, during=during, after=after)


def test_metrics_scraped_during_the_copy(t1):
    m = t1['metrics']
    assert re.search(r'^chcopier_up 1', m, re.M), m[:2000]
    assert re.search(r'^chcopier_pieces\{table="monthly",state="done"\}', m, re.M), m[:2000]
    assert re.search(r'^# TYPE chcopier_rows_copied_total counter', m, re.M), m[:2000]


def test_status_while_workers_run(t1):
    d = t1['during']
    assert d.rc == 0 and re.search(r'^table weekly', d.out, re.M), d
    # each worker's note names the servers' versions (sql/dialect.h picks by them)
    assert re.search(r"table '\w+': servers 18\.16\.\d+(\.\d+)? on \S+:\d+", d.out), d.out[:2000]


def test_status_json_after_the_run(t1):
    s = t1['after']
    assert s is not None, 'status --json failed'
    assert s['task_path'] == '/chc/t1' and s['workers'] == [], s
    assert [t['name'] for t in s['tables']] == ['monthly', 'weekly', 'filtered', 'flat', 'plain']
    for t in s['tables']:
        assert t['state'] == 'done', t
        assert t['partitions_done'] == t['partitions_total'] > 0, t
        assert t['pieces_done'] == t['pieces_total'] > 0, t
        assert t['in_flight'] == [], t
    assert s['tables'][0]['rows_verified'] == 2 * ROWS, s['tables'][0]


def test_two_workers_both_exit_0(t1):
    assert t1['rc'] == (0, 0)


@pytest.mark.parametrize('dst,pkey,where', [
    ('m_month', 'toYYYYMM(d)', None),
    ('m_week', 'toMonday(d)', None),
    ('m_where', 'toYYYYMM(d)', 'u32 % 3 = 1 AND toYYYYMM(d) IN (201801, 201803)'),
    ('m_plain', 'toYYYYMM(d)', None),
], ids=['monthly-signed-key', 'month-to-week-7-splits', 'where-enabled-partitions-rand-key',
        'non-replicated-destination'])
def test_copy_exact(cluster, t1, dst, pkey, where):
    v = verify(cluster, 'db.mixed', f'db.{dst}', pkey, where=where)
    assert v, v.report()


def test_non_partitioned_table(cluster, t1):
    v = verify(cluster, 'db.flat', 'db.flat', '1')
    assert v, v.report()


def test_non_replicated_destination_every_replica_has_its_copy(cluster, t1):
    """Each replica of a MergeTree destination holds its own full copy of its
    shard (verify compared the replicas; here: none of them is empty)."""
    for s in (1, 2):
        counts = [cluster.q(n, 'SELECT count() FROM db.m_plain') for n in cluster.dst_replica_nodes(s)]
        assert counts[0] == counts[1] and int(counts[0]) > 0, f'shard {s}: {counts}'


def test_json_logs(chcopier, t1):
    """--log-format json: one JSON object per line with table/partition/piece/rows."""
    seen = 0
    for line in chcopier.logs('logs').splitlines():
        if not line.startswith('{'):
            continue
        e = json.loads(line)
        assert {'time', 'level', 'pid', 'worker', 'message'} <= e.keys(), e
        if e.get('event') == 'piece_done':
            assert e['table'] and e['partition'] and e['piece'] >= 0 and e['rows'] >= 0, e
            assert e['duration'] >= 0, e
            seen += 1
    assert seen > 0, 'no piece_done events'


@pytest.fixture(scope='module')
def auth(cluster, chcopier, source):
    """Source replicas reached as user chc with a password (remote() carries
    it), at trace level."""
    xml = taskxml.task_xml(cluster, [table('auth', 'flat', 'f_auth', rmt('f_auth', 'ORDER BY id'), 'id')],
                           source_auth=('chc', 'chcpass'))
    task = taskxml.write(chcopier.path('task3.xml.auth'), xml)
    return chcopier.work('/chc/t3', '--task-file', task, '--log-level', 'trace', base_dir='logs-auth')


def test_source_reached_with_user_and_password(cluster, auth):
    assert auth.rc == 0, auth
    v = verify(cluster, 'db.flat', 'db.f_auth', '1')
    assert v, v.report()


def test_password_never_in_logs(chcopier, auth):
    assert 'chcpass' not in chcopier.logs('logs-auth') + chcopier.logs('logs-auth', 'log.err.log')
    assert 'chcpass' not in auth.err + auth.out


def test_no_staging_tables_left(cluster, t1, auth):
    assert staging_tables(cluster, 'db') == {}


def test_every_piece_copied_exactly_once(chcopier, t1):
    # monthly 4 partitions x 3 splits x 2 shards + weekly 14 x 7 x 2 +
    # filtered 2 x 1 x 2 + flat 1 x 3 x 2 + plain 4 x 3 x 2.
    n = sum(1 for line in chcopier.logs('logs').splitlines() if 'piece copied' in line)
    assert n == 254


def test_routing_equals_a_real_distributed_table(cluster, t1):
    """Per-shard counts equal a real Distributed(sharding_key) insert (signed Int16 key)."""
    for n in cluster.dst_nodes:
        cluster.query(n, 'CREATE TABLE db.ref AS db.m_month ENGINE = MergeTree ORDER BY id')
    cluster.query('d1r1', 'CREATE TABLE db.ref_dist AS db.ref ENGINE = Distributed(destination, db, ref, sk)')
    cluster.query('d1r1', f'INSERT INTO db.ref_dist SELECT * FROM {cluster.src_all("db", "mixed")}')
    # 18.16 sends Distributed inserts asynchronously: wait until all arrived.
    total = cluster.q('s1', f'SELECT count() FROM {cluster.src_all("db", "mixed")}')
    all_ref = cluster.remote(cluster.dst_nodes, 'db', 'ref')
    wait_for(lambda: cluster.q('s1', f'SELECT count() FROM {all_ref}') == total, 20)
    for s in (1, 2):
        ref = sum(int(cluster.q(n, 'SELECT count() FROM db.ref')) for n in cluster.dst_replica_nodes(s))
        got = int(cluster.q(f'd{s}r1', 'SELECT count() FROM db.m_month'))
        print(f'# shard {s}: distributed {ref}, chcopier {got}')
        assert ref == got > 0, f'shard {s}: distributed {ref}, chcopier {got}'


def test_second_run_copies_nothing(cluster, chcopier, t1):
    before = cluster.q('s1', f'SELECT count() FROM {cluster.dst_all("db", "m_month")}')
    r = chcopier.work('/chc/t1', base_dir='logs2')
    assert r.rc == 0, r
    assert cluster.q('s1', f'SELECT count() FROM {cluster.dst_all("db", "m_month")}') == before
    assert 'piece copied' not in chcopier.logs('logs2')


def test_append_with_max_workers_1_and_two_workers(cluster, chcopier, source):
    """Append into a destination partition that already has rows."""
    for n in cluster.dst_nodes:
        cluster.query(n, "CREATE TABLE db.app (id UInt64, d Date, dt DateTime, sk Int16, u32 UInt32, f Float64, "
                         "s String, n Nullable(String), a Array(UInt32)) ENGINE = ReplicatedMergeTree("
                         "'/clickhouse/tables/{cluster}/{shard}/app', '{replica}') PARTITION BY toYYYYMM(d) "
                         "ORDER BY (u32, id)")
    cluster.query('d1r1', "INSERT INTO db.app SELECT 9000000 + number, toDate('2018-01-15'), now(), 0, 1, 0, "
                          "'old', NULL, [] FROM numbers(100)")
    xml = taskxml.task_xml(cluster, [table('app', 'mixed', 'app', rmt('app', 'PARTITION BY toYYYYMM(d) ORDER BY '
                                                                              '(u32, id)'), 'sk',
                                           number_of_splits=2)], max_workers=1)
    chcopier.upload('/chc/t2', taskxml.write(chcopier.path('task2.xml'), xml))
    w1 = chcopier.worker('/chc/t2', base_dir='logs3')
    w2 = chcopier.worker('/chc/t2', base_dir='logs3')
    assert (w1.wait(), w2.wait()) == (0, 0), 'max_workers=1 with two workers: both finish'
    src = int(cluster.q('s1', f'SELECT count() FROM {cluster.src_all("db", "mixed")}'))
    dst = int(cluster.q('s1', f'SELECT count() FROM {cluster.dst_all("db", "app")}'))
    print(f'# source {src}, destination {dst} (100 rows were there before)')
    assert dst == src + 100
    assert cluster.q('s1', f"SELECT count() FROM {cluster.dst_all('db', 'app')} WHERE s = 'old'") == '100'
    # and per partition: exactly the source's rows plus the old ones
    old = f"SELECT * FROM {cluster.remote(['d1r1'], 'db', 'app')} WHERE s = 'old'"
    v = verify(cluster, 'db.mixed', 'db.app', 'toYYYYMM(d)', extra=old)
    assert v, v.report()


@pytest.fixture(scope='module')
def groups(cluster, chcopier, source):
    """Month-partitioned source into daily partitions (~100 days of a few
    hundred rows each); with --min-piece-rows 6000 consecutive days are
    copied together, one read of the source per group. Two workers, both
    with random copy faults (a dirty group is cleaned partition by
    partition) and move faults."""
    xml = taskxml.task_xml(cluster, [table('daily', 'mixed', 'm_day', rmt('m_day', 'PARTITION BY d ORDER BY (u32, id)'),
                                           'sk', number_of_splits=3)])
    chcopier.upload('/chc/groups', taskxml.write(chcopier.path('task-groups.xml'), xml))
    # Both workers inject faults, from one --fault-seed (the same attempts
    # of the same pieces fail whoever runs them and whatever the timing), so
    # at least one lands on every run: with one faulty worker, the other
    # could take most of the work, with 4 pieces in flight every max_workers
    # slot. 2 pieces in flight each share the task's 4 slots between them.
    faulty = ['--copy-fault-probability', 0.2, '--move-fault-probability', 0.2, '--max-shard-partition-tries', 50,
              '--max-shard-partition-piece-tries-for-alter', 50, '--fault-seed', FAULT_SEED]
    w1 = chcopier.worker('/chc/groups', '--min-piece-rows', 6000, '--max-pieces-in-flight', 2, *faulty,
                         base_dir='logs4')
    w2 = chcopier.worker('/chc/groups', '--min-piece-rows', 6000, '--max-pieces-in-flight', 2, *faulty,
                         base_dir='logs4')
    rc = (w1.wait(), w2.wait())
    logs = chcopier.logs('logs4')
    m = re.search(r'partitions \(([0-9]*) copy groups', logs)
    days = int(cluster.q('s1', f'SELECT uniqExact(d) FROM {cluster.src_all("db", "mixed")}'))
    faults = sum(1 for line in logs.splitlines() if 'fault injected' in line)
    n = int(m.group(1)) if m and m.group(1) else 0
    print(f'# {days} daily partitions in {n} copy groups, {faults} faults injected; pieces, moves per worker: '
          + ', '.join(f"{read(d + '/log.log').count('piece copied')}, {read(d + '/log.log').count('moved and verified')}"
                      for d in log_dirs(chcopier.path('logs4'))))
    return dict(rc=rc, groups=n, days=days, faults=faults)


def test_copy_groups_two_workers_with_faults_exit_0(groups):
    assert groups['rc'] == (0, 0) and groups['faults'] > 0, groups


def test_copy_groups_several_each_of_several_days(groups):
    assert 3 <= groups['groups'] < groups['days'] // 3, groups


def test_copy_groups_exact(cluster, groups):
    v = verify(cluster, 'db.mixed', 'db.m_day', 'd')
    assert v, v.report()

"""test_trust.py — issue "Trust" on a real cluster (2 source shards, 2 x 2
destination): each test reproduces one audit finding that broke
exactly-once before its fix.

  - a lock create whose reply is lost is recognised as ours (it used to wait
    on itself forever);
  - staging tables re-created under a partition recorded 'assembled' (an
    operator changed the destination) no longer empty it by a REPLACE from
    the fresh, empty assembly;
  - a stray insert on the second replica of a non-replicated destination is
    caught (only the first replica of each shard used to be checked);
  - a live worker in another pid namespace with the same host name is not
    taken for dead (pid liveness was checked in the wrong namespace);
  - the partition list split into chunks reads back whole;
  - a worker frozen (SIGSTOP) past its session at 30 % and 70 % of a copy,
    while a second worker finishes, then thawed: the destination is exact
    and the thawed worker exits;
  - a worker frozen while it holds a table's drop gate delays the others'
    drops until its session expires, nothing more;
  - `status` names the holder of a claim by its worker id alone;
  - a staging node that refuses to drop staging data for its size (18.16,
    Code 359): the run says so and fails, the next one finishes.
"""

import re
import shutil
import subprocess
import time

import pytest

from harness import taskxml
from harness.chcopier import wait_for
from harness.cluster import QueryError
from harness.taskxml import rmt, table
from harness.verify import staging_tables, verify

SRC_ROWS = 40000


@pytest.fixture(scope='module')
def source(cluster):
    for i, n in enumerate(cluster.src_nodes, 1):
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, 'CREATE TABLE db.src (id UInt64, d Date, v UInt32, s String) '
                         'ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(n, f"INSERT INTO db.src SELECT number * 2 + {i - 1}, "
                         f"toDate('2018-01-01') + number % 120, number % 1000, toString(number) "
                         f"FROM numbers({SRC_ROWS})")


def task(cluster, chcopier, name, engine, *, splits=2, **extra):
    xml = taskxml.task_xml(cluster, [table('t', 'src', name, engine, 'id',
                                           number_of_splits=splits, **extra)], max_workers=4)
    chcopier.upload(f'/chc/{name}', taskxml.write(chcopier.path(f'{name}.xml'), xml))
    return f'/chc/{name}'


def replicated(name):
    return rmt(name, 'PARTITION BY toYYYYMM(d) ORDER BY id')


def test_lost_lock_create_reply_is_ours(cluster, chcopier, source):
    """Every second lock create and the init lock's create 'lose' their
    reply (CHC_ZK_LOSE_REPLY): the node exists, the worker saw a connection
    loss. Before the fix the retry found the node held by its own id and
    waited forever; now it finishes well within the bound."""
    path = task(cluster, chcopier, 'lost', replicated('lost'))
    t0 = time.monotonic()
    r = chcopier.work(path, '--retry-delay-ms', 100, '--min-piece-rows', 0, '--log-level', 'debug',
                      timeout=240, env={'CHC_ZK_LOSE_REPLY': '/locks/:2'})
    took = time.monotonic() - t0
    print(f'# exit {r.rc} after {took:.1f} s')
    assert r.rc == 0, r
    v = verify(cluster, 'db.src', 'db.lost', 'toYYYYMM(d)')
    assert v, v.report()
    lost = chcopier.logs().count('is already ours (a reply was lost)')
    print(f'# {lost} lock creates lost their reply')
    assert lost >= 5


def test_recreated_staging_never_empties_an_assembled_partition(cluster, chcopier, source):
    """A worker dies right after recording 'assembled'; the operator widens a
    destination column, so the next worker re-creates the staging tables
    (empty). Before the fix it REPLACEd the partition from the empty
    assembly; now it sees the assembly lost, leaves the destination alone and
    copies the partition again."""
    path = task(cluster, chcopier, 'recr', replicated('recr'))
    r = chcopier.work(path, '--fault-point', 'after_assembled_record', base_dir='logs-recr')
    assert r.rc == 99, r
    for n in cluster.dst_replica_set(1):
        cluster.query(n, 'ALTER TABLE db.recr MODIFY COLUMN v UInt64')
    for n in cluster.dst_nodes:
        assert wait_for(lambda: cluster.q(n, "SELECT type FROM system.columns WHERE database = 'db' "
                                             "AND table = 'recr' AND name = 'v'") == 'UInt64', 60)
    r = chcopier.work(path, '--retry-delay-ms', 100, base_dir='logs-recr', timeout=300)
    assert r.rc == 0, r
    v = verify(cluster, 'db.src', 'db.recr', 'toYYYYMM(d)',
               checksum='cityHash64(id, d, toUInt64(v), s)')
    assert v, v.report()
    assert 'the assembly of partition' in chcopier.logs('logs-recr')


def test_stray_row_on_second_replica_is_caught(cluster, chcopier, source):
    """A plain MergeTree destination: every replica holds its own copy. A
    worker dies after assembling; a late insert puts a row into the second
    replica's piece table. Before the fix only the first replica of each
    shard was counted, and replica 2 kept the extra row."""
    path = task(cluster, chcopier, 'stray', 'ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id',
                splits=1)
    r = chcopier.work(path, '--fault-point', 'after_assemble', base_dir='logs-stray')
    assert r.rc == 99, r
    parts = cluster.q('d1r2', "SELECT DISTINCT partition FROM system.parts WHERE database = 'db' "
                              "AND table = 'stray_piece_0' AND active ORDER BY partition").split()
    assert parts, 'the piece table holds copied partitions'
    p = parts[0]
    cluster.query('d1r2', f"INSERT INTO db.stray_piece_0 VALUES (999999999, "
                          f"toDate('{p[:4]}-{p[4:6]}-01'), 1, 'stray')")
    r = chcopier.work(path, '--retry-delay-ms', 100, base_dir='logs-stray', timeout=300)
    assert r.rc == 0, r
    for rep in (1, 2):
        got = cluster.rows('s1', f"SELECT toYYYYMM(d) AS p, count(), sum(cityHash64(*)) FROM "
                                 f"{cluster.dst_all('db', 'stray', replica=rep)} GROUP BY p ORDER BY p")
        want = cluster.rows('s1', f"SELECT toYYYYMM(d) AS p, count(), sum(cityHash64(*)) FROM "
                                  f"{cluster.src_all('db', 'src')} GROUP BY p ORDER BY p")
        assert got == want, f'replica set {rep} differs from the source'


def test_same_host_name_in_another_pid_namespace_is_not_dead(cluster, chcopier, source, module_dir):
    """Worker A runs in its own pid namespace (pid 99999 there, none such
    outside) and holds claims while it copies slowly through the pipe;
    worker B on the same host name must not take them over as a dead
    worker's. Before the fix B saw no process 99999 and took them."""
    if not shutil.which('unshare'):
        pytest.fail('unshare (util-linux) is needed: scripts/setup')
    path = task(cluster, chcopier, 'ns', replicated('ns'), splits=3)
    args = chcopier.worker_args(path, chcopier.path('logs-ns-a'), ['--data-path', 'pipe',
                                '--max-bytes-per-second', '150000', '--min-piece-rows', '0'])
    out = open(chcopier.path('ns-a.out'), 'wb')
    a = subprocess.Popen(['unshare', '--pid', '--fork', '--mount-proc', 'sh', '-c',
                          'echo 99998 > /proc/sys/kernel/ns_last_pid && "$0" "$@"',
                          chcopier.binary, *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        holder = wait_for(lambda: re.search(r'_99999\b', _lock_holders(cluster, path)), 60)
        assert holder, 'worker A holds a claim as pid 99999'
        r = chcopier.work(path, '--min-piece-rows', '0', base_dir='logs-ns-b', timeout=400)
        assert r.rc == 0, r
        assert a.wait(400) == 0
    finally:
        if a.poll() is None:
            a.kill()
        out.close()
    assert 'taking it over' not in chcopier.logs('logs-ns-b'), chcopier.logs('logs-ns-b')[-2000:]
    v = verify(cluster, 'db.src', 'db.ns', 'toYYYYMM(d)')
    assert v, v.report()


def _zroot(cluster, task_path):
    """<task>/tables/<table id>/<definition hash> of the task's only table
    (None while there is none)."""
    try:
        for tid in cluster.zk_children(f'{task_path}/tables'):
            for h in cluster.zk_children(f'{task_path}/tables/{tid}'):
                return f'{task_path}/tables/{tid}/{h}'
    except QueryError:
        pass
    return None


def _lock_holders(cluster, task_path):
    """The data of every claim under the task's locks/, joined."""
    root = _zroot(cluster, task_path)
    try:
        return ' '.join(cluster.q('s1', f"SELECT value FROM system.zookeeper WHERE path = "
                                        f"'{root}/locks' FORMAT TSVRaw").split('\n')) if root else ''
    except QueryError:
        return ''


def test_partition_list_in_chunks(cluster, chcopier, source):
    """A list longer than a chunk (CHC_PLIST_CHUNK, tiny here) is written
    as chunks and read back whole: by the workers and by status."""
    path = task(cluster, chcopier, 'chunks', rmt('chunks', 'PARTITION BY d ORDER BY id'))
    r = chcopier.work(path, '--min-piece-rows', '0', timeout=600, env={'CHC_PLIST_CHUNK': '300'})
    assert r.rc == 0, r
    v = verify(cluster, 'db.src', 'db.chunks', 'd')
    assert v, v.report()
    s = chcopier.status(path)
    assert s['tables'][0]['partitions_total'] == 120 == s['tables'][0]['partitions_done']
    root = _zroot(cluster, path)
    assert cluster.zk_get(f'{root}/partitions').startswith('#chunks ')
    assert len(cluster.zk_children(f'{root}/plist')) > 5


def zk_xml_with_session(cluster, dest, ms):
    with open(cluster.zookeeper_xml) as f:
        text = f.read()
    text = re.sub(r'<session_timeout_ms>\d+</session_timeout_ms>',
                  f'<session_timeout_ms>{ms}</session_timeout_ms>', text)
    with open(dest, 'w') as f:
        f.write(text)
    return dest


@pytest.mark.parametrize('at', [0.3, 0.7])
def test_frozen_worker_while_another_finishes(cluster, chcopier, source, at):
    """Session timeout 3 s. First an undisturbed copy gives the copy time
    T; then worker 1 is frozen (SIGSTOP) at AT x T for 10 s while worker 2
    finishes the task, and thawed: the destination is exact on both replica
    sets and the thawed worker exits within 120 s."""
    zk = zk_xml_with_session(cluster, chcopier.path('zk3s.xml'), 3000)
    name = f'frz{int(at * 100)}'
    ref = task(cluster, chcopier, f'{name}ref', replicated(f'{name}ref'))
    t0 = time.monotonic()
    r = chcopier.work(ref, '--min-piece-rows', '0', zk_xml=zk, base_dir=f'logs-{name}')
    undisturbed = time.monotonic() - t0
    assert r.rc == 0, r
    path = task(cluster, chcopier, name, replicated(name))
    w1 = chcopier.worker(path, '--min-piece-rows', '0', '--retry-delay-ms', '200', zk_xml=zk,
                         base_dir=f'logs-{name}')
    time.sleep(at * undisturbed)
    w1.stop()
    frozen = time.monotonic()
    w2 = chcopier.worker(path, '--min-piece-rows', '0', '--retry-delay-ms', '200', zk_xml=zk,
                         base_dir=f'logs-{name}')
    time.sleep(max(0.0, 10 - (time.monotonic() - frozen)))
    w1.cont()
    thawed = time.monotonic()
    assert w2.wait(300) == 0, w2.output()[-2000:]
    rc1 = w1.wait(120)
    print(f'# undisturbed {undisturbed:.2f} s; frozen at {at:.0%} for 10 s; thawed worker exit '
          f'{rc1} after {time.monotonic() - thawed:.1f} s')
    assert rc1 is not None, 'the thawed worker exits within 120 s'
    v = verify(cluster, 'db.src', f'db.{name}', 'toYYYYMM(d)')
    assert v, v.report()


def stopped(pid, timeout=120):
    """Wait until process PID is stopped (state T): it reached its :stop point."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(f'/proc/{pid}/stat') as f:
            if f.read().rsplit(')', 1)[1].split()[0] in ('T', 't'):
                return True
        time.sleep(0.05)
    return False


def frozen_while_another_finishes(cluster, chcopier, name, point, while_frozen=None):
    """Session timeout 3 s. Worker 1 stops itself at fault point POINT
    (WHILE_FROZEN(path, w1) then runs); worker 2 finishes the task; thawed,
    worker 1 must exit 0, and the destination must be exact."""
    zk = zk_xml_with_session(cluster, chcopier.path('zk3s.xml'), 3000)
    path = task(cluster, chcopier, name, replicated(name))
    w1 = chcopier.worker(path, '--min-piece-rows', '0', '--retry-delay-ms', '200',
                         '--fault-point', point, zk_xml=zk, base_dir=f'logs-{name}')
    assert stopped(w1.pid), f'worker 1 reaches {point} and stops itself'
    if while_frozen:
        while_frozen(path, w1)
    w2 = chcopier.worker(path, '--min-piece-rows', '0', '--retry-delay-ms', '200', zk_xml=zk,
                         base_dir=f'logs-{name}')
    assert w2.wait(300) == 0, w2.output()[-2000:]
    w1.cont()
    rc1 = w1.wait(120)
    assert rc1 == 0, w1.output()[-2000:]
    v = verify(cluster, 'db.src', f'db.{name}', 'toYYYYMM(d)')
    assert v, v.report()
    return path


def test_worker_frozen_before_its_replace_exits_0_once_thawed(cluster, chcopier, source):
    """Worker 1 freezes itself right before a REPLACE round (its move locks
    checked, the statements not yet sent) past its 3 s session; worker 2
    takes the partitions over, finishes the task and drops the staging
    tables. Thawed, worker 1's statements name tables that are gone: that is
    news of its lost session, not a refusal, so it exits 0 (it exited 1 in
    the chaos run, 'Table ..._piece_0 doesn't exist'), and nothing it sent
    changed the destination."""
    frozen_while_another_finishes(cluster, chcopier, 'frzrepl', 'before_replace:stop')


def test_frozen_holder_of_the_drop_gate(cluster, chcopier, source):
    """Worker 1 stops itself right after taking the table's drop gate
    (with_drop_gate:stop-expired), its first release not sent; worker 2's
    drops wait for the gate until worker 1's 3 s session expires, then it
    finishes the task. Thawed, worker 1 sends nothing under the gate it
    lost and exits 0; the destination is exact: a frozen holder delays the
    drops, never stops them or the copy."""
    def holds_the_gate(path, w1):
        wid = re.search(r'worker (\S+) starting', chcopier.logs('logs-gate')).group(1)
        assert cluster.zk_get(f'{_zroot(cluster, path)}/locks/drops').startswith(wid + '\n')

    path = frozen_while_another_finishes(cluster, chcopier, 'gate', 'with_drop_gate:stop-expired',
                                         holds_the_gate)
    assert not cluster.zk_exists(f'{_zroot(cluster, path)}/locks/drops')


def test_status_names_the_holders_of_claims_in_flight(cluster, chcopier, source):
    """A worker stops itself holding its move locks (before_replace:stop);
    `status` names it by its id alone, in the text (one line for the
    worker's batch of moves) and in the JSON, and a claim's other lines
    (its host key) stay out (they were printed raw). Then the worker is
    killed and another finishes the task."""
    name = 'heldby'
    path = task(cluster, chcopier, name, replicated(name))
    w1 = chcopier.worker(path, '--min-piece-rows', '0', '--fault-point', 'before_replace:stop',
                         base_dir=f'logs-{name}')
    try:
        assert stopped(w1.pid), 'the worker reaches before_replace and stops itself'
        wid = re.search(r'worker (\S+) starting', chcopier.logs(f'logs-{name}')).group(1)
        text = chcopier.run('status', *chcopier.common(path))
        print(text.out)
        assert text.rc == 0, text
        assert re.search(rf'^    moving \d+ partitions? held by {re.escape(wid)}: \d{{6}}', text.out, re.M), text.out
        assert 'hostkey' not in text.out, text.out
        js = chcopier.status(path)
        flight = js['tables'][0]['in_flight']
        assert all(f['worker'] == wid for f in flight), flight
        assert any(f['what'] == 'move' for f in flight), flight
    finally:
        w1.kill()
        w1.wait()
    r = chcopier.work(path, '--retry-delay-ms', 100, timeout=240, base_dir=f'logs-{name}')
    assert r.rc == 0, r
    v = verify(cluster, 'db.src', f'db.{name}', 'toYYYYMM(d)')
    assert v, v.report()


def test_staging_too_big_to_drop_on_18_16(cluster, chcopier, source):
    """A staging node whose max_table_size_to_drop and
    max_partition_size_to_drop are 1 byte (18.16 takes them from its config
    only, 50 GB by default, so a big partition meets this): every partition
    still moves and verifies, the worker then exits non-zero naming the limit
    and what to do, and the staging tables stay; once the limit is raised, a
    second run drops them and ends with the destination exact."""
    node = cluster.dst_replica_nodes(1)[0]
    name = 'toobig'
    path = task(cluster, chcopier, name, replicated(name))
    cluster.set_server_setting(node.name, 'max_table_size_to_drop', 1)
    cluster.set_server_setting(node.name, 'max_partition_size_to_drop', 1)
    try:
        r = chcopier.work(path, '--retry-delay-ms', 100, '--max-table-tries', 1, timeout=240,
                          base_dir=f'logs-{name}')
        print(f'# first run: exit {r.rc}; {r.err.strip()[:400]}')
        assert r.rc not in (0, None), r
        assert 'max_table_size_to_drop' in r.err and 'run chcopier again' in r.err, r.err[-2000:]
        assert staging_tables(cluster, 'db', name).get(node.name), 'the staging tables stay for the next run'
        v = verify(cluster, 'db.src', f'db.{name}', 'toYYYYMM(d)', staging=False)
        assert v, v.report()
    finally:
        cluster.set_server_setting(node.name, 'max_table_size_to_drop', 0)
        cluster.set_server_setting(node.name, 'max_partition_size_to_drop', 0)
    r = chcopier.work(path, '--retry-delay-ms', 100, timeout=240, base_dir=f'logs-{name}')
    assert r.rc == 0, r
    v = verify(cluster, 'db.src', f'db.{name}', 'toYYYYMM(d)')
    assert v, v.report()

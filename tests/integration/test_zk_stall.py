"""A ZooKeeper that stops answering cannot hang a worker. ZooKeeper is
SIGSTOPped for 3 s (its TCP connections stay open, nothing is answered)
while a worker polls it; the session is 6 s, so libzookeeper itself would
only give up on the silent connection after 4 s, and the call deadline is
cut to 1 s (CHC_ZK_CALL_TIMEOUT_MS): what ends the stalled call is
chcopier's deadline. To keep the worker polling, a partition's move lock is
held by a fake worker on another host (a persistent node made with zkCli),
which is deleted once ZooKeeper is back.

Checks: the worker gives up on the call (op and path logged) while ZooKeeper
is still stopped, abandons the session and opens a new one after SIGCONT;
once the lock is gone it finishes (exit 0, no sanitizer report); the
destination holds the source rows exactly once; no staging is left.

The tests run in order, on one worker started by test_other_partitions_moved.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from harness import taskxml
from harness.chcopier import read, wait_for, zk_stall_env
from harness.cluster import QueryError
from harness.verify import verify

ZKCLI = os.environ.get('CHC_ZKCLI') or '/usr/share/zookeeper/bin/zkCli.sh'
state = {}


@pytest.fixture(scope='module')
def zk6(cluster, chcopier):
    if not os.access(ZKCLI, os.X_OK):
        pytest.skip(f'{ZKCLI} not installed')
    text = re.sub(r'<session_timeout_ms>[0-9]+<', '<session_timeout_ms>6000<', read(cluster.zookeeper_xml))
    return taskxml.write(chcopier.path('zk6.xml'), text)


def zkcli(cluster, chcopier, *args):
    with open(chcopier.path('zkcli.log'), 'a') as f:
        subprocess.run([ZKCLI, '-server', cluster.zk_hostport, *args], stdout=f, stderr=f, timeout=60)


@pytest.fixture(scope='module')
def first(cluster, chcopier, zk6):
    """A first worker discovers the partitions and dies at its first claim,
    so the table's ZooKeeper root exists before the lock is faked."""
    for i in (1, 2):
        cluster.query(f's{i}', 'CREATE DATABASE db')
        cluster.query(f's{i}', 'CREATE TABLE db.src (id UInt64, d Date, v String) ENGINE = MergeTree '
                               'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(f's{i}', f"INSERT INTO db.src SELECT number * 2 + {i - 1}, toDate('2018-01-01') + number % 80, "
                               'toString(number) FROM numbers(5000)')
    for n in ('d1r1', 'd2r1'):
        cluster.query(n, 'CREATE DATABASE db')
        cluster.query(n, 'CREATE TABLE db.dst (id UInt64, d Date, v String) ENGINE = MergeTree '
                         'PARTITION BY toYYYYMM(d) ORDER BY id')
    xml = taskxml.task_xml(cluster, [taskxml.table('t', 'src', 'dst', 'ENGINE = MergeTree PARTITION BY toYYYYMM(d) '
                                                   'ORDER BY id', 'id', number_of_splits=2)])
    chcopier.upload('/chc/s', taskxml.write(chcopier.path('task.xml'), xml), zk_xml=zk6)
    return chcopier.work('/chc/s', '--fault-point', 'after_claim', base_dir='logs1', zk_xml=zk6)


def test_first_worker_died_at_after_claim(first):
    assert first.rc == 99, first


@pytest.fixture(scope='module')
def lock(cluster, chcopier, first):
    tid = cluster.zk_children('/chc/s/tables')[0]
    zroot = f'/chc/s/tables/{tid}/' + cluster.zk_children(f'/chc/s/tables/{tid}')[0]
    # A "#sums" line, then one line per partition, its literal last;
    # toYYYYMM literals are their own ZooKeeper names.
    parts = [line.split('\t')[-1] for line in cluster.zk_get(f'{zroot}/partitions').splitlines()
             if not line.startswith('#')]
    assert len(parts) >= 2 and re.match(r'^2018[0-9][0-9]$', parts[0]), f'unexpected partition list: {parts}'
    zkcli(cluster, chcopier, 'create', f'{zroot}/locks/{parts[0]}#move', 'elsewhere#fake_1')
    return dict(zroot=zroot, parts=parts, p=parts[0])


def test_fake_move_lock_created(cluster, lock):
    assert cluster.zk_exists(f"{lock['zroot']}/locks/{lock['p']}#move")


def logged(chcopier, pattern):
    return re.search(pattern, chcopier.logs('logs2')) is not None


def test_other_partitions_moved_while_the_worker_polls_the_lock(cluster, chcopier, zk6, lock):
    w = chcopier.worker('/chc/s', '--log-level', 'debug', '--retry-delay-ms', 200, base_dir='logs2', zk_xml=zk6,
                        name='worker2', env={'CHC_ZK_CALL_TIMEOUT_MS': '1000', **zk_stall_env()})
    state['worker'] = w

    def others_done():
        try:
            return all(cluster.zk_get(f"{lock['zroot']}/parts/{q}").startswith('done')
                       for q in lock['parts'] if q != lock['p'])
        except QueryError:
            return False
    assert wait_for(others_done, 30, 0.1), f"the other partitions are moved; the worker polls for {lock['p']}'s lock"
    time.sleep(0.5)


def test_stalled_call_gives_up_while_zookeeper_is_stopped(cluster, chcopier):
    pid = cluster.zk_pid()
    os.kill(pid, signal.SIGSTOP)
    t = time.monotonic()
    try:
        gave_up = wait_for(lambda: logged(chcopier, 'got no answer within 1000 ms'), 2.5, 0.1)
        waited = time.monotonic() - t
        time.sleep(max(0.0, 3 - waited))
    finally:
        os.kill(pid, signal.SIGCONT)
    print(f'# ZooKeeper stopped ~3 s; the worker gave up after {waited:.1f} s')
    assert gave_up, 'the stalled call gives up after ~1 s, while ZooKeeper is still stopped'


def test_unanswered_call_named_with_its_path(chcopier):
    assert logged(chcopier, r"zookeeper: [a-z ]+ '/chc/s/[^']*' got no answer within")


def test_worker_reconnects_after_sigcont(chcopier):
    assert wait_for(lambda: logged(chcopier, 'ZooKeeper session re-established'), 20, 0.1)


def test_worker_finishes_once_the_fake_lock_is_gone(cluster, chcopier, lock):
    zkcli(cluster, chcopier, 'delete', f"{lock['zroot']}/locks/{lock['p']}#move")
    w = state['worker']
    rc = w.wait(60)
    assert rc == 0, (f'the worker finishes once the fake lock is gone (exit {rc}; None: still running after 60 s)\n'
                     + w.output()[-3000:])
    assert 'Sanitizer' not in w.output(), w.output()[-3000:]


def test_destination_exact(cluster):
    v = verify(cluster, 'db.src', 'db.dst', 'toYYYYMM(d)')
    assert v, v.report()

"""The local cluster tooling end to end, through its command lines
(scripts/cluster, scripts/chq): two clusters brought up at the same time on
disjoint ports, their generated files, users and macros, replication inside
`destination`, the reference clickhouse-copier driven by the generated
files, status, and a `down` that leaves no process, no listening port and no
port reservation behind (the other cluster untouched).

The tests run in order: later ones use the tables earlier ones made.
"""

import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from harness import ROOT
from harness.chcopier import wait_for
from harness.cluster import Cluster, alive, listening_ports, read_env
from harness.verify import verify

CLUSTER = os.path.join(ROOT, 'scripts', 'cluster')
CHQ = os.path.join(ROOT, 'scripts', 'chq')
ZKCLI = '/usr/share/zookeeper/bin/zkCli.sh'


def run(*argv, env=None, timeout=300):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=e, timeout=timeout)


def chq(d, node, sql, **env):
    r = run(CHQ, d, node, sql, env=env)
    return r.returncode, r.stdout.rstrip('\n'), r.stderr


def q(d, node, sql, **env):
    rc, out, err = chq(d, node, sql, **env)
    assert rc == 0, f'chq {node} {sql!r}: {err}'
    return out


def env_of(d):
    return read_env(os.path.join(d, 'cluster.env'))


def ports_of(d):
    e = env_of(d)
    return sorted(int(v) for k, v in e.items()
                  if k == 'ZK_PORT' or (k.startswith('CH_') and k.endswith(('_HTTP', '_TCP', '_INTERSERVER'))))


def pids_of(d):
    out = []
    for f in [os.path.join(d, 'zk.pid')] + [os.path.join(d, x, 'pid') for x in sorted(os.listdir(d))]:
        if os.path.isfile(f) and os.path.getsize(f):
            out.append(int(open(f).read().strip()))
    return out


def procs_of(d):
    """Processes whose command line mentions D/ (ClickHouse configs,
    ZooKeeper's zoo.cfg and -Dchc.cluster.dir)."""
    out = []
    for p in os.listdir('/proc'):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cmd = open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if f'{d}/' in cmd and alive(int(p)):
            out.append(f'{p} {cmd}')
    return out


def all_answer(d):
    bad = []
    for node in env_of(d)['CH_NODES'].split():
        rc, out, err = chq(d, node, 'SELECT 1')
        if out != '1':
            bad.append(f'{node}: {out} {err}')
    return bad


def zk_imok(d):
    import socket
    with socket.create_connection(('127.0.0.1', int(env_of(d)['ZK_PORT'])), timeout=2) as s:
        s.sendall(b'ruok')
        return s.recv(16) == b'imok'


@pytest.fixture(scope='module')
def clusters(module_dir):
    """Clusters A and B, brought up concurrently by scripts/cluster."""
    if not shutil.which('clickhouse-server') and not os.access('/usr/sbin/clickhouse-server', os.X_OK):
        pytest.skip('clickhouse-server not installed (scripts/setup)')
    if not shutil.which('java') or not os.access('/usr/share/java/zookeeper.jar', os.R_OK):
        pytest.skip('java or zookeeper not installed (scripts/setup)')
    a, b = module_dir.sub('a'), module_dir.sub('b')
    t0 = time.monotonic()
    pa = subprocess.Popen([CLUSTER, 'up', a], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pb = subprocess.Popen([CLUSTER, 'up', b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    oa, ob = pa.communicate(timeout=300)[0], pb.communicate(timeout=300)[0]
    info = dict(a=a, b=b, rca=pa.returncode, rcb=pb.returncode, out_a=oa, out_b=ob,
                up_time=time.monotonic() - t0)
    yield info
    run(CLUSTER, 'down', a)
    run(CLUSTER, 'down', b)


def test_up_concurrently(clusters):
    assert clusters['rca'] == 0, f'cluster A up (concurrently with B):\n{clusters["out_a"]}'
    assert clusters['rcb'] == 0, f'cluster B up (concurrently with A):\n{clusters["out_b"]}'
    print(f'# both up in {clusters["up_time"]:.1f}s')


def test_default_layout(clusters):
    assert env_of(clusters['a'])['CH_NODES'] == 's1 s2 d1r1 d1r2 d2r1 d2r2'


def test_disjoint_ports(clusters):
    pa, pb = ports_of(clusters['a']), ports_of(clusters['b'])
    assert len(pa) == 19
    assert not set(pa) & set(pb), f'shared ports: {sorted(set(pa) & set(pb))}'


def test_generated_files_describe_the_cluster(clusters):
    a = clusters['a']
    for d in (a, clusters['b']):
        for f in ('cluster.env', 'zookeeper.xml', 'remote_servers.xml'):
            assert os.path.getsize(os.path.join(d, f)) > 0, f'{f} missing in {d}'
    zk = open(os.path.join(a, 'zookeeper.xml')).read()
    rs = open(os.path.join(a, 'remote_servers.xml')).read()
    assert f'<port>{env_of(a)["ZK_PORT"]}</port>' in zk
    assert '<destination>' in rs and '<source>' in rs
    blocks = {name: body for name, body in
              re.findall(r'<(source|destination|destination_flat)>(.*?)</\1>', rs, re.S)}
    assert {k: v.count('<replica>') for k, v in blocks.items()} == \
        {'source': 2, 'destination': 4, 'destination_flat': 4}
    assert blocks['destination_flat'].count('<shard>') == 4


def test_generated_xml_well_formed(clusters):
    a = clusters['a']
    files = [os.path.join(a, 'zookeeper.xml'), os.path.join(a, 'remote_servers.xml')]
    for node in env_of(a)['CH_NODES'].split():
        files += [os.path.join(a, node, 'config.xml'), os.path.join(a, node, 'users.xml')]
    for f in files:
        ET.parse(f)


@pytest.mark.parametrize('which', ['a', 'b'])
def test_every_node_answers(clusters, which):
    assert all_answer(clusters[which]) == []


@pytest.mark.parametrize('which', ['a', 'b'])
def test_zookeeper_imok(clusters, which):
    assert zk_imok(clusters[which])


def test_macros(clusters):
    got = q(clusters['a'], 'd2r1', "SELECT arrayStringConcat(groupArray(concat(macro, '=', substitution)), ' ') "
                                   'FROM (SELECT * FROM system.macros ORDER BY macro)')
    assert got == 'cluster=destination replica=d2r1 shard=2'


def test_user_chc_logs_in(clusters):
    got = q(clusters['a'], 's1', "SELECT user FROM system.processes WHERE query LIKE '%chc-login-probe%'",
            CHQ_USER='chc', CHQ_PASSWORD='chcpass')
    assert got == 'chc'


def test_wrong_password_rejected(clusters):
    rc, out, err = chq(clusters['a'], 's1', 'SELECT 1', CHQ_USER='chc', CHQ_PASSWORD='wrong')
    assert rc != 0, out


def test_chq_error_path(clusters):
    rc, out, err = chq(clusters['a'], 's1', 'SELECT no_such_column')
    assert rc != 0, 'chq exits non-zero on a query error'
    assert 'no_such_column' in err, "chq prints the server's error"


DDL = ("CREATE TABLE default.t ON CLUSTER destination (d Date, x UInt64) ENGINE = "
       "ReplicatedMergeTree('/clickhouse/tables/{shard}/t', '{replica}') PARTITION BY d ORDER BY x")


def count_is(d, node, table, n):
    rc, out, _ = chq(d, node, f'SELECT count() FROM {table}')
    return out == str(n)


def test_on_cluster_ddl(clusters):
    a, b = clusters['a'], clusters['b']
    q(a, 'd1r1', DDL)
    # the same table path in B does not clash with A (own ZooKeeper)
    q(b, 'd1r1', DDL)
    missing = [n for n in ('d1r1', 'd1r2', 'd2r1', 'd2r2')
               if not wait_for(lambda: chq(a, n, 'EXISTS TABLE default.t')[1] == '1', 20)]
    assert missing == [], 'table exists on every destination node'


def test_replication_inside_destination(clusters):
    a, b = clusters['a'], clusters['b']
    q(a, 'd1r1', "INSERT INTO default.t SELECT toDate('2020-01-01') + number % 3, number "
                 'FROM system.numbers LIMIT 1000')
    assert wait_for(lambda: count_is(a, 'd1r2', 'default.t', 1000), 30), 'rows replicate to d1r2'
    assert q(a, 'd1r2', 'SELECT sum(x), uniqExact(d) FROM default.t') == '499500\t3'
    assert count_is(a, 'd2r1', 'default.t', 0), 'shard 2 (d2r1) got nothing'
    assert count_is(b, 'd1r2', 'default.t', 0), 'cluster B is untouched'
    q(a, 'd2r2', 'INSERT INTO default.t VALUES (today(), 7)')
    assert wait_for(lambda: count_is(a, 'd2r1', 'default.t', 1), 30), 'replicated insert on d2r2 visible on d2r1'
    e = env_of(a)
    got = q(a, 'd1r1', f"SELECT count() FROM remote('127.0.0.1:{e['CH_D1R1_TCP']},127.0.0.1:{e['CH_D2R1_TCP']}', "
                       'default.t)')
    assert got == '1001', 'Distributed query over destination sees both shards'


def test_reference_clickhouse_copier_round_trip(clusters, module_dir):
    """The generated zookeeper.xml + remote_servers.xml drive clickhouse-copier."""
    if not shutil.which('clickhouse-copier') or not os.access(ZKCLI, os.X_OK):
        pytest.skip('clickhouse-copier or zkCli.sh missing')
    a = clusters['a']
    e = env_of(a)
    for s in (1, 2):
        q(a, f's{s}', 'CREATE TABLE default.src (d Date, x UInt64) ENGINE = MergeTree PARTITION BY d ORDER BY x')
        q(a, f's{s}', f"INSERT INTO default.src SELECT toDate('2020-01-01') + number % 2, number + {(s - 1) * 500} "
                      'FROM system.numbers LIMIT 500')
    task = os.path.join(module_dir.path, 'task.xml')
    with open(task, 'w') as f:
        f.write('<?xml version="1.0"?>\n<yandex>\n' + open(os.path.join(a, 'remote_servers.xml')).read() + """\
<max_workers>2</max_workers>
<settings_pull><readonly>1</readonly></settings_pull>
<settings_push><readonly>0</readonly></settings_push>
<settings><connect_timeout>3</connect_timeout><insert_distributed_sync>1</insert_distributed_sync></settings>
<tables>
  <table_src>
    <cluster_pull>source</cluster_pull><database_pull>default</database_pull><table_pull>src</table_pull>
    <cluster_push>destination</cluster_push><database_push>default</database_push><table_push>dst</table_push>
    <engine>ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/dst', '{replica}') PARTITION BY d ORDER BY x</engine>
    <sharding_key>intHash64(x)</sharding_key>
  </table_src>
</tables>
</yandex>
""")
    ET.parse(task)
    zk = e['ZK_HOSTPORT']
    run(ZKCLI, '-server', zk, 'create', '/copier', '')
    run(ZKCLI, '-server', zk, 'create', '/copier/t1', '')
    run(ZKCLI, '-server', zk, 'create', '/copier/t1/description', open(task).read())
    assert q(a, 's1', "SELECT count() FROM system.zookeeper WHERE path = '/copier/t1' AND name = 'description'") == '1', \
        'task description not in ZooKeeper'
    r = subprocess.run(['clickhouse-copier', '--config-file', os.path.join(a, 'zookeeper.xml'), '--task-path',
                        '/copier/t1', '--base-dir', os.path.join(module_dir.path, 'copier')],
                       cwd=module_dir.path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # clickhouse-copier inserts through any replica of a shard: bring the
    # replicas to agreement (harness.verify) before counting through r1.
    v = verify(Cluster.load(a), 'default.src', 'default.dst', 'd', unique='x')
    assert v, v.report()
    total = q(a, 'd1r1', f"SELECT count(), sum(x) FROM remote('127.0.0.1:{e['CH_D1R1_TCP']},"
                         f"127.0.0.1:{e['CH_D2R1_TCP']}', default.dst)")
    assert total == '1000\t499500'
    for node in ('d1r2', 'd2r2'):
        assert chq(a, node, 'SELECT count() > 0 FROM default.dst')[1] == '1', f'{node} did not get replicated rows'


@pytest.mark.parametrize('which', ['a', 'b'])
def test_status_exits_0(clusters, which):
    r = run(CLUSTER, 'status', clusters[which])
    assert r.returncode == 0, r.stdout + r.stderr


def test_down_a_leaves_nothing_and_b_runs(clusters):
    a, b = clusters['a'], clusters['b']
    pids = pids_of(a)
    ports = ports_of(a)
    base = env_of(a)['CHC_BASE_PORT']
    assert len(pids) == 7, f'A recorded 7 pids: {pids}'
    t0 = time.monotonic()
    r = run(CLUSTER, 'down', a)
    assert r.returncode == 0, r.stderr
    print(f'# down A took {time.monotonic() - t0:.1f}s')
    assert [p for p in pids if alive(p)] == [], 'every recorded pid of A is gone'
    assert procs_of(a) == [], "no process mentions A's directory"
    assert sorted(set(ports) & listening_ports()) == [], 'all ports of A are free'
    lock_root = os.environ.get('CHC_PORT_LOCK_DIR') or '/tmp/chc-ports'
    assert not os.path.exists(os.path.join(lock_root, f'{base}.lock')), 'port reservation of A released'
    assert run(CLUSTER, 'status', a).returncode != 0, 'status A exits non-zero after down'
    assert run(CLUSTER, 'down', a).returncode == 0, 'down A again is a no-op'
    assert all_answer(b) == [], 'B still answers after A went down'


def test_down_b_leaves_nothing(clusters):
    b = clusters['b']
    pids, ports = pids_of(b), ports_of(b)
    r = run(CLUSTER, 'down', b)
    assert r.returncode == 0, r.stderr
    assert [p for p in pids if alive(p)] == []
    assert procs_of(b) == []
    assert sorted(set(ports) & listening_ports()) == []

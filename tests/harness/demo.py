"""harness.demo — owns the README's demo (CLI: scripts/demo, which sets the
machine up first): builds chcopier, starts a local cluster (2 source shards,
2 x 2 destination, one ZooKeeper) on the ports conf/ expects (base 23000),
fills demo.hits with a few million rows over several monthly partitions,
uploads conf/task.xml and runs two workers (one "per source shard"), then
verifies the copy (harness.verify: every destination partition's count and
checksum against the source, replicas, no staging left) and prints a summary.

Env: CHC_DEMO_DIR (default /tmp/chcopier-demo), CHC_DEMO_ROWS (per source
shard, default 1500000), CHC_DEMO_KEEP=1 leaves the cluster running.
"""

import os
import shutil
import subprocess
import sys
import time

from . import ROOT, workload
from .chcopier import log_text
from .cluster import Cluster, ClusterError
from .verify import verify


def say(msg):
    print(f'\n== {msg}', flush=True)


def main():
    d = os.environ.get('CHC_DEMO_DIR') or '/tmp/chcopier-demo'
    rows = int(os.environ.get('CHC_DEMO_ROWS') or 1500000)
    build = os.path.join(ROOT, 'build-demo')
    os.chdir(ROOT)
    if not os.path.isfile(os.path.join(build, 'build.ninja')):
        subprocess.run(['meson', 'setup', build, '--buildtype=release', '-Dintegration=false'], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(['ninja', '-C', build, 'chcopier'], check=True, stdout=subprocess.DEVNULL)
    binary = os.path.join(build, 'chcopier')

    say('cluster')
    if os.path.isdir(d):
        try:
            Cluster.load(d).down()
        except (ClusterError, KeyError, ValueError):
            pass
        shutil.rmtree(d)
    os.environ['CHC_BASE_PORT'] = '23000'
    cl = Cluster(d)
    try:
        took = cl.up()
    except ClusterError as e:
        print(f'demo: cluster up failed: {e}', file=sys.stderr)
        return 1
    print(f'cluster: up: {len(cl.nodes)} ClickHouse servers + ZooKeeper (base port {cl.base}) in {took:.1f}s; '
          f'env: {d}/cluster.env')
    try:
        return demo(cl, d, rows, binary)
    finally:
        if os.environ.get('CHC_DEMO_KEEP') != '1':
            cl.down()


def demo(cl, d, rows, binary):
    say(f'source data: demo.hits on s1 and s2, {rows} rows each')
    for i in (1, 2):
        cl.query(f's{i}', 'CREATE DATABASE IF NOT EXISTS demo')
        cl.query(f's{i}', workload.hits_create('demo'))
        cl.query(f's{i}', workload.hits_insert('demo', i, rows), timeout=600)

    say('copy: two chcopier workers')
    logs = os.path.join(d, 'logs')
    os.makedirs(logs, exist_ok=True)
    common = ['--config', 'conf/zookeeper.xml', '--task-path', '/chcopier/demo']
    subprocess.run([binary, 'upload', *common, '--task-file', 'conf/task.xml', '--task-upload-force'], check=True)
    start = time.monotonic()
    ws = [subprocess.Popen([binary, *common, '--base-dir', logs, '--log-level', 'info']) for _ in range(2)]
    rcs = [w.wait() for w in ws]
    secs = time.monotonic() - start
    if any(rcs):
        print(f'demo: a worker failed (exit {max(rcs)}); logs under {logs}', file=sys.stderr)
        sys.stderr.write(''.join(log_text(logs, 'log.err.log').splitlines(True)[-20:]))
        return 1

    say('verify')
    v = verify(cl, 'demo.hits', 'demo.hits', 'toYYYYMM(EventDate)', unique='UserID')
    print(f"{'partition':<8} {'source':>12} {'destination':>12}")
    for p, (c, s) in v.source.items():
        dc, ds = v.destination.get(p, (0, None))
        print(f"{p:<8} {c:12d} {dc:12d} {'ok' if (c, s) == (dc, ds) else 'MISMATCH'}")
    if not v:
        print(f'demo: {v.report()}', file=sys.stderr)
        return 1
    replica = sum(int(cl.q(n, 'SELECT count() FROM demo.hits')) for n in cl.dst_replica_set(2))
    say('summary')
    print(f'copied {v.rows} rows in {len(v.source)} partitions in {secs:.1f}s with 2 workers;')
    print(f'every partition\'s count and checksum match; second replicas hold {replica} rows.')
    print(f'logs: {logs}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

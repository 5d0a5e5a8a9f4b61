"""harness.benchdisc — owns the discovery benchmark (CLI:
scripts/bench-discovery): how the time chcopier needs before its first copy
grows with the number of partitions. Issue #13 asks for no quadratic step
at 100 k partitions, measured here rather than in a timed test.

On a fresh local cluster (2 source shards, 2 x 1 destination), for each size
N of BENCHD_SIZES a source table bd.src_<N> gets N partitions (PARTITION BY
p, ROWS_PER rows per partition on each shard) and a task copies it into
bd.dst_<N> (ReplicatedMergeTree, number_of_splits 1). Timed:

  plan      `chcopier plan` (preflight, discovery of every partition with
            its count and checksum, the statements printed), wall seconds
  discover  a worker from start to its first claim (--fault-point
            after_claim: exit 99 there): preflight, staging tables,
            discovery, the partition list published to ZooKeeper, the
            first refresh of the copy state and one claim

  copy      (BENCHD_COPY=1) two workers started together on the same task
            (it resumes from the discover step's state) until they exit:
            every partition copied, moved and verified; the destination's
            row count is then checked against the source's

and printed per partition (microseconds) with the ratio to the smallest
size's per-partition cost: about 1 when the step is linear, growing with N
when it is not. The worker's log (debug) is kept under BENCHD_DIR for the
phases.

Env: BENCHD_SIZES ("1000 10000 100000"), BENCHD_ROWS_PER (1), BENCHD_DIR
(default: a new /tmp/chc-benchd.XXXXXX), CHCOPIER (default
build-release/chcopier), BENCHD_BINARIES ("NAME=PATH ...": several
chcopier builds timed one after the other on the same source tables, e.g.
before and after a change; default "chcopier=$CHCOPIER"), BENCHD_TIMEOUT (s per timed command, 1800),
BENCHD_KEEP=1 (keep the cluster's data), BENCHD_COPY=1 (also time the
whole copy).
Exit 0 when every timed command ran as expected, 1 otherwise, 2 bad usage.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import ROOT, taskxml
from .cluster import Cluster, ClusterError

PROG = 'bench-discovery'


def _sizes():
    v = (os.environ.get('BENCHD_SIZES') or '1000 10000 100000').split()
    if not v or not all(x.isdigit() and int(x) > 0 for x in v):
        raise ValueError(f"BENCHD_SIZES must be positive integers (got {os.environ.get('BENCHD_SIZES')!r})")
    return [int(x) for x in v]


def make_source(cl, n, rows_per):
    """bd.src_<n> on every source shard: n partitions, rows_per rows each."""
    for i, node in enumerate(cl.src_nodes):
        cl.query(node, 'CREATE DATABASE IF NOT EXISTS bd')
        cl.query(node, f'DROP TABLE IF EXISTS bd.src_{n}')
        cl.query(node, f'CREATE TABLE bd.src_{n} (id UInt64, p UInt32, s String) ENGINE = MergeTree '
                       'PARTITION BY p ORDER BY id')
        cl.query(node, f'INSERT INTO bd.src_{n} SELECT number * {len(cl.src_nodes)} + {i}, number % {n}, '
                       f'toString(number) FROM numbers({n * rows_per})', timeout=3600)
    for node in cl.dst_nodes:
        cl.query(node, 'CREATE DATABASE IF NOT EXISTS bd')


def task_file(cl, d, n):
    engine = taskxml.rmt(f'bd_dst_{n}', 'PARTITION BY p ORDER BY id')
    xml = taskxml.task_xml(cl, [taskxml.table('t', f'src_{n}', f'dst_{n}', engine, 'id', src_db='bd',
                                              dst_db='bd', number_of_splits=1)])
    return taskxml.write(os.path.join(d, f'task-{n}.xml'), xml)


def timed(argv, out, timeout):
    """(exit code, wall seconds) of ARGV, its output into OUT."""
    t0 = time.monotonic()
    with open(out, 'w') as f:
        try:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = None
    return rc, time.monotonic() - t0


def measure(cl, binary, d, n, timeout, name):
    """{'plan': s, 'discover': s, 'problems': [...]} for size n."""
    zk = cl.zookeeper_xml
    path = f'/benchd/{os.path.basename(d)}/{name}/{n}'
    d = os.path.join(d, name)
    os.makedirs(d, exist_ok=True)
    res = {'problems': []}
    common = ['--config', zk, '--task-path', path]
    r = subprocess.run([binary, 'upload', *common, '--task-file', task_file(cl, d, n)],
                       capture_output=True, text=True)
    if r.returncode:
        res['problems'].append(f'upload: {r.stdout}{r.stderr}')
        return res
    rc, res['plan'] = timed([binary, 'plan', *common], os.path.join(d, f'plan-{n}.out'), timeout)
    if rc != 0:
        res['problems'].append(f'plan exit {rc} (see {d}/plan-{n}.out)')
    rc, res['discover'] = timed([binary, *common, '--base-dir', os.path.join(d, f'logs-{n}'), '--log-level',
                                 'debug', '--fault-point', 'after_claim'], os.path.join(d, f'work-{n}.out'),
                                timeout)
    if rc != 99:
        res['problems'].append(f'worker exit {rc}, not 99 at after_claim (see {d}/work-{n}.out)')
    if os.environ.get('BENCHD_COPY') == '1':
        copy(cl, binary, common, d, n, timeout, res)
    return res


def copy(cl, binary, common, d, n, timeout, res):
    """res['copy']: two workers from their start to the last exit."""
    t0 = time.monotonic()
    outs = [open(os.path.join(d, f'copy{k}-{n}.out'), 'w') for k in (1, 2)]
    ps = [subprocess.Popen([binary, *common, '--base-dir', os.path.join(d, f'logs-{n}')],
                           stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) for f in outs]
    for f in outs:  # the children have their own copies
        f.close()
    rcs = []
    for p in ps:
        try:
            rcs.append(p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0))))
        except subprocess.TimeoutExpired:
            p.kill()
            rcs.append(p.wait())
    res['copy'] = time.monotonic() - t0
    if rcs != [0, 0]:
        res['problems'].append(f'copy: worker exits {rcs} (see {d}/copy*-{n}.out)')
        return
    src = sum(int(cl.query(x, f'SELECT count() FROM bd.src_{n}')) for x in cl.src_nodes)
    dst = sum(int(cl.query(x, f'SELECT count() FROM bd.dst_{n}')) for x in cl.dst_nodes)
    if src != dst:
        res['problems'].append(f'copy: the destination holds {dst} rows, the source {src}')


def report(rows):
    copied = os.environ.get('BENCHD_COPY') == '1'
    print(f"{'binary':>10} {'partitions':>10} {'plan s':>9} {'us/part':>9} {'ratio':>6} {'discover s':>11} {'us/part':>9} "
          f"{'ratio':>6}" + (f" {'copy s':>9} {'us/part':>9} {'ratio':>6}" if copied else ''))
    bases = {}
    for name, n, res in rows:
        keys = ('plan', 'discover', 'copy') if copied else ('plan', 'discover')
        if not all(k in res for k in keys):
            print(f'{name:>10} {n:>10} (failed)')
            continue
        per = [res[k] / n * 1e6 for k in keys]
        base = bases.setdefault(name, per)
        print(f'{name:>10} {n:>10}' + ''.join(f' {res[k]:>{11 if k == "discover" else 9}.2f} {u:>9.1f} {u / b:>6.2f}'
                                              for k, u, b in zip(keys, per, base)), flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        sizes = _sizes()
        rows_per = int(os.environ.get('BENCHD_ROWS_PER') or 1)
        timeout = int(os.environ.get('BENCHD_TIMEOUT') or 1800)
    except ValueError as e:
        print(f'{PROG}: {e}', file=sys.stderr)
        return 2
    binary = os.environ.get('CHCOPIER') or os.path.join(ROOT, 'build-release', 'chcopier')
    spec = (os.environ.get('BENCHD_BINARIES') or f'chcopier={binary}').split()
    binaries = [tuple(x.split('=', 1)) for x in spec]
    if argv or not all(len(b) == 2 and os.access(b[1], os.X_OK) for b in binaries):
        print(f'usage: {PROG} (env: BENCHD_SIZES, BENCHD_BINARIES or CHCOPIER={binary}: executable)',
              file=sys.stderr)
        return 2
    d = os.environ.get('BENCHD_DIR') or tempfile.mkdtemp(prefix='chc-benchd.', dir='/tmp')
    os.makedirs(d, exist_ok=True)
    cl = Cluster(os.path.join(d, 'cluster'), dst_replicas=1)
    rows, failed = [], False
    try:
        cl.up()
        for n in sizes:
            t0 = time.monotonic()
            make_source(cl, n, rows_per)
            print(f'# {n} partitions x {rows_per} row(s) on {len(cl.src_nodes)} source shards made in '
                  f'{time.monotonic() - t0:.1f} s', flush=True)
            for name, b in binaries:
                res = measure(cl, b, d, n, timeout, name)
                for p in res['problems']:
                    print(f'# {name} {n}: PROBLEM: {p}', flush=True)
                    failed = True
                rows.append((name, n, res))
                print(f"# {name} {n}: plan {res.get('plan', 0):.2f} s, discover {res.get('discover', 0):.2f} s"
                      + (f", copy {res['copy']:.2f} s" if 'copy' in res else ''), flush=True)
        print()
        report(sorted(rows, key=lambda x: ([b[0] for b in binaries].index(x[0]), x[1])))
    except (ClusterError, OSError) as e:
        print(f'{PROG}: {e}', file=sys.stderr)
        failed = True
    finally:
        cl.down()
        if os.environ.get('BENCHD_KEEP') != '1':
            shutil.rmtree(os.path.join(d, 'cluster'), ignore_errors=True)
        print(f'{PROG}: files in {d}')
    return 1 if failed else 0

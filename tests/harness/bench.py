"""harness.bench — owns the copier benchmark (CLI: scripts/bench; docs/bench.md
describes it). One run on a fresh local cluster: generates the same rows on
the 2 source shards, then copies them with clickhouse-copier 18.16 and with
chcopier, one copier after the other, from the same task XML, verifies every
run (harness.verify: per-partition count and checksum against the source,
replicas, no duplicated UserID, no staging left, and shard placement by the
sharding key) and prints a table: wall time, rows/s, chcopier/clickhouse-
copier ratio, worker peak RSS and CPU seconds, ClickHouse+ZooKeeper server
CPU seconds, rows the sources read, and the ZooKeeper nodes each copier left
and created under its task path. Exits non-zero if a copier fails or any
verification fails. The cluster is torn down on exit; logs and results stay
under BENCH_DIR.

Workloads (BENCH_ROWS rows of 8 columns, half per source shard, distinct rows
per shard; source bench.hits is MergeTree PARTITION BY month):
  a  6 monthly partitions -> ReplicatedMergeTree PARTITION BY toYYYYMM(date)
     on 2 shards x 2 replicas, resharded by intHash64(UserID)
  b  the same rows -> 181 daily partitions (PARTITION BY EventDate)
  c  workload a, every worker kill -9ed mid-copy (at half of the same
     copier's workload-a wall time in this run, else BENCH_KILL_AT s) and
     started again at once; reports the cost over the undisturbed run
  d  the monthly partitions -> ReplicatedMergeTree on 4 destination shards
     of 1 replica (cluster destination_flat: each of the 4 destination
     servers a shard), resharded by intHash64(UserID)

Env: BENCH_ROWS (total rows, 4000000), BENCH_WORKERS (workers per copier run,
started together on the same task: 1 or 2; default 1), BENCH_SPLITS
(number_of_splits, 3), BENCH_MAX_WORKERS (max_workers, 4), BENCH_WORKLOADS
("a b c d"), BENCH_KILL_AT (1.0), BENCH_COPIERS ("clickhouse-copier chcopier
chcopier-pipe"; chcopier-pipe is chcopier with --data-path pipe and runs
workload a only, its target), BENCH_TIMEOUT (s per copier run, 900),
BENCH_DIR (default: a new /tmp/chc-bench.XXXXXX), BENCH_KEEP=1 (keep the
ClickHouse/ZooKeeper data after a successful run), BENCH_REV (the chcopier to
build: a git revision, exported with git archive into build-bench-rev/<sha>/
so concurrent edits of the working tree do not leak in; default HEAD;
"worktree" builds the working tree in build-bench), CHCOPIER (use this
binary, build nothing), BENCH_BUILD_DIR (build-bench),
BENCH_CLICKHOUSE_COPIER (/usr/bin/clickhouse-copier), BENCH_ZKCLI
(/usr/share/zookeeper/bin/zkCli.sh), BENCH_GNU_TIME (/usr/bin/time; empty:
peak RSS sampled from /proc/<pid>/status every 0.1 s, CPU from the rusage
wait4() returns), CHQ_LONG (s, timeout of the long queries, 900),
BENCH_PERF=1 (perf record -a -g each run into its perf.data), BENCH_SETTLE (s between a run's end and the next run's start, 90; see
settle_fs()).
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import ROOT, taskxml, workload
from .chcopier import read
from .cluster import HOST, Cluster, ClusterError, QueryError, read_pid
from .verify import sums, verify

PROG = 'bench'
DB = 'bench'
CLK_TCK = os.sysconf('SC_CLK_TCK')


class Fail(Exception):
    """The benchmark cannot go on: exit 1 with the message."""


def env_int(name, default, zero=False):
    """A positive integer from the environment (zero=True: or 0)."""
    v = os.environ.get(name) or str(default)
    if not re.fullmatch(r'0|[1-9][0-9]*' if zero else r'[1-9][0-9]*', v):
        raise Fail(f"{name} must be a {'non-negative' if zero else 'positive'} integer (got '{v}')")
    return int(v)


class Bench:
    def __init__(self):
        self.t0 = time.monotonic()
        self.rows = env_int('BENCH_ROWS', 4000000)
        self.workers = env_int('BENCH_WORKERS', 1)
        self.splits = env_int('BENCH_SPLITS', 3)
        self.max_workers = env_int('BENCH_MAX_WORKERS', 4)
        self.timeout = env_int('BENCH_TIMEOUT', 900)
        self.workloads = (os.environ.get('BENCH_WORKLOADS') or 'a b c d').split()
        self.kill_at_default = os.environ.get('BENCH_KILL_AT') or '1.0'
        self.copiers = (os.environ.get('BENCH_COPIERS') or 'clickhouse-copier chcopier chcopier-pipe').split()
        build = os.environ.get('BENCH_BUILD_DIR') or 'build-bench'
        self.build = build if build.startswith('/') else os.path.join(ROOT, build)
        self.rev = os.environ.get('BENCH_REV') or 'HEAD'
        self.cc_bin = os.environ.get('BENCH_CLICKHOUSE_COPIER') or '/usr/bin/clickhouse-copier'
        self.zkcli_bin = os.environ.get('BENCH_ZKCLI') or '/usr/share/zookeeper/bin/zkCli.sh'
        self.gnu_time = os.environ.get('BENCH_GNU_TIME', '/usr/bin/time')
        self.long = int(os.environ.get('CHQ_LONG') or 900)
        self.settle = env_int('BENCH_SETTLE', 90, zero=True)
        self.churned = time.monotonic()  # the last run's end (see settle_fs)
        if self.workers > 2:
            raise Fail('BENCH_WORKERS must be 1 or 2')
        if self.rows < 2 * 181:
            raise Fail('BENCH_ROWS must be at least 362 (181 days on each source shard)')
        for w in self.workloads:
            if w not in ('a', 'b', 'c', 'd'):
                raise Fail(f"unknown workload '{w}' (a, b, c, d)")
        if not re.fullmatch(r'[0-9]+(\.[0-9]+)?', self.kill_at_default):
            raise Fail(f"BENCH_KILL_AT must be a number of seconds (got '{self.kill_at_default}')")
        for c in self.copiers:
            if c not in ('clickhouse-copier', 'chcopier', 'chcopier-pipe'):
                raise Fail(f"unknown copier '{c}'")
        for t in ('clickhouse-server', 'java', 'timeout'):
            if not shutil.which(t) and not os.access(f'/usr/sbin/{t}', os.X_OK):
                raise Fail(f'{t} not found (run scripts/setup as root)')
        if not os.access(self.cc_bin, os.X_OK):
            raise Fail(f'clickhouse-copier not found at {self.cc_bin} (package clickhouse-tools)')
        if not os.access(self.zkcli_bin, os.X_OK):
            raise Fail(f'zkCli.sh not found at {self.zkcli_bin} (package zookeeper)')
        if self.gnu_time and subprocess.run([self.gnu_time, '-v', '-o', '/dev/null', 'true'],
                                            capture_output=True).returncode != 0:
            self.gnu_time = ''
        self.procs = []                 # running worker Popens (timeout processes)
        self.failed = False
        self.results = []               # one dict per run

    # ------------------------------------------------------------ output

    def say(self, msg):
        print(f'\n== [{time.monotonic() - self.t0:5.1f}s] {msg}', flush=True)

    @staticmethod
    def note(msg):
        print(f'   {msg}', flush=True)

    # ------------------------------------------------------------ build

    def meson_build(self, src, build):
        """Release build of chcopier; -Dwerror=false because a benchmark must
        not depend on warning hygiene (gcc 12 at -O3 has reported
        -Wmaybe-uninitialized where the -O2 CI build did not, e.g. at a0d49e3)."""
        os.makedirs(build, exist_ok=True)
        if not os.path.isfile(os.path.join(build, 'build.ninja')):
            log = os.path.join(build, 'bench-meson.log')
            with open(log, 'w') as f:
                if subprocess.run(['meson', 'setup', build, src, '--buildtype=release', '-Dintegration=false',
                                   '-Dwerror=false'], stdout=f, stderr=f).returncode:
                    sys.stderr.write(''.join(open(log).readlines()[-20:]))
                    raise Fail(f'meson setup failed ({log})')
        log = os.path.join(build, 'bench-ninja.log')
        with open(log, 'w') as f:
            if subprocess.run(['ninja', '-C', build, 'chcopier'], stdout=f, stderr=f).returncode:
                sys.stderr.write(''.join(open(log).readlines()[-30:]))
                raise Fail(f'build failed ({log})')

    def binary(self):
        self.say('chcopier binary')
        given = os.environ.get('CHCOPIER')
        if given:
            b, what = os.path.realpath(given), 'given binary'
        elif self.rev == 'worktree':
            self.meson_build(ROOT, self.build)
            desc = subprocess.run(['git', '-C', ROOT, 'describe', '--always', '--dirty'], capture_output=True,
                                  text=True).stdout.strip() or '?'
            b, what = os.path.join(self.build, 'chcopier'), f'working tree ({desc})'
        else:
            # a committed revision, exported with git archive: immune to
            # concurrent edits of the working tree
            r = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--verify', f'{self.rev}^{{commit}}'],
                               capture_output=True, text=True)
            if r.returncode:
                raise Fail(f'BENCH_REV={self.rev}: not a commit')
            sha = r.stdout.strip()
            rdir = f'{self.build}-rev/{sha[:12]}'
            if not os.path.isfile(f'{rdir}/extracted'):
                shutil.rmtree(rdir, ignore_errors=True)
                os.makedirs(f'{rdir}/src')
                subprocess.run(f'git -C {shlex.quote(ROOT)} archive --format=tar {sha} | tar -x -C '
                               f'{shlex.quote(rdir)}/src', shell=True, check=True)
                open(f'{rdir}/extracted', 'w').close()
            self.meson_build(f'{rdir}/src', f'{rdir}/build')
            subject = subprocess.run(['git', '-C', ROOT, 'log', '-1', '--format=%s', sha], capture_output=True,
                                     text=True).stdout.strip()[:50]
            b, what = f'{rdir}/build/chcopier', f'commit {sha[:12]} ({subject})'
        if not os.access(b, os.X_OK):
            raise Fail(f'no chcopier binary at {b}')
        version = subprocess.run([b, '--version'], capture_output=True, text=True).stdout.splitlines()
        self.note(f"{b}: {what}, {version[0] if version else '?'}")
        ccv = subprocess.run(['dpkg-query', '-W', '-f=${Version}', 'clickhouse-tools'], capture_output=True,
                             text=True).stdout or '?'
        self.note(f'clickhouse-copier: {self.cc_bin} (ClickHouse {ccv})')
        self.bin = b

    # ------------------------------------------------------------ cluster helpers

    def q(self, node, sql, timeout=60):
        return self.cl.q(node, sql, timeout=timeout)

    def zkcli(self, *args):
        return subprocess.run([self.zkcli_bin, '-server', self.cl.zk_hostport, *args], capture_output=True,
                              text=True).stdout

    def source(self):
        cl = self.cl
        src = cl.src_nodes
        self.say(f'source data: {DB}.hits, {self.rows} rows over {len(src)} source shards')
        t = time.monotonic()
        errors = []

        def fill(i, n):
            # the first shards take the remainder
            rows = self.rows // len(src) + (1 if i <= self.rows % len(src) else 0)
            try:
                self.q(n, f'CREATE DATABASE IF NOT EXISTS {DB}')
                self.q(n, workload.hits_create(DB))
                # UserID differs between shards (offset i * 1e9), so rows are distinct
                self.q(n, workload.hits_insert(DB, i, rows), timeout=self.long)
                # one part per partition: both copiers read the same layout
                self.q(n, f'OPTIMIZE TABLE {DB}.hits FINAL', timeout=self.long)
            except QueryError as e:
                errors.append(str(e))
        threads = [threading.Thread(target=fill, args=(i, n)) for i, n in enumerate(src, 1)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise Fail(f'filling the source failed: {errors[0]}')
        total = 0
        for n in src:
            c = int(self.q(n, f'SELECT count() FROM {DB}.hits'))
            total += c
            parts = self.q(n, f"SELECT count() FROM system.parts WHERE database = '{DB}' AND table = 'hits' AND active")
            size = self.q(n, f"SELECT formatReadableSize(sum(bytes)) FROM system.parts WHERE database = '{DB}' "
                             "AND table = 'hits' AND active")
            self.note(f'{n.name}: {c} rows, {parts} parts, {size}')
        if total != self.rows:
            raise Fail(f'source holds {total} rows, expected {self.rows}')
        self.note(f'generated in {time.monotonic() - t:.1f} s')

    @staticmethod
    def wl_table(wl):
        return {'b': 'hits_daily', 'd': 'hits_4shards'}.get(wl, 'hits_monthly')

    @staticmethod
    def wl_pkey(wl):
        return 'EventDate' if wl == 'b' else 'toYYYYMM(EventDate)'

    @staticmethod
    def wl_label(wl):
        return {'a': 'a: monthly', 'b': 'b: daily', 'c': 'c: kill -9', 'd': 'd: 4 shards'}[wl]

    def write_task(self, wl, path, db):
        """The cluster's remote_servers plus chcopier's <http_port> per replica
        (clickhouse-copier ignores it). No XML comments: clickhouse-copier
        18.16 breaks on a comment containing "--". number_of_splits is
        ignored by clickhouse-copier 18.16. The destination is db (one per
        run, see retire())."""
        t = self.wl_table(wl)
        tail = f'PARTITION BY {self.wl_pkey(wl)} ORDER BY (CounterID, EventDate, intHash32(UserID))'
        engine = (f"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{cluster}}/{{shard}}/{db}_{t}', '{{replica}}') "
                  + tail)
        push, extra = 'destination', None
        if wl == 'd':
            # One replica per shard, each its own ZooKeeper path. Not plain
            # MergeTree: clickhouse-copier 18.16 dies of SIGSEGV at start on a
            # non-replicated destination engine.
            engine = (f"ENGINE = ReplicatedMergeTree('/clickhouse/tables/flat/{{replica}}/{db}_{t}', "
                      f"'{{replica}}') {tail}")
            push = 'destination_flat'
            extra = {push: [{'replicas': [(HOST, n.tcp, n.http)], 'internal_replication': False}
                           for n in self.cl.dst_nodes]}
        xml = taskxml.task_xml(self.cl, [taskxml.table('table_hits', 'hits', t, engine, 'intHash64(UserID)',
                                                       src_db=DB, dst_db=db, number_of_splits=self.splits,
                                                       cluster_push=push)],
                               max_workers=self.max_workers, root='yandex', extra_clusters=extra)
        taskxml.write(path, xml)

    def wait_idle(self):
        """No merges, mutations or replication work left on any node."""
        deadline = time.monotonic() + 120
        while True:
            busy = sum(int(self.q(n, 'SELECT (SELECT count() FROM system.merges) + '
                                     '(SELECT count() FROM system.replication_queue)')) for n in self.cl.nodes)
            if busy == 0:
                return
            if time.monotonic() >= deadline:
                self.note(f'warning: cluster still busy ({busy} tasks)')
                return
            time.sleep(0.5)

    def settle_fs(self):
        """Wait until BENCH_SETTLE s have passed since the previous run
        ended (or the source was generated). ext4 without a journal (this
        VM's root) skips the inodes freed in the last 60 s (85 s while
        their inode table block is dirty) when it allocates one, looking
        each of them up (the kernel's recently_deleted()): a run that
        starts right after another run freed files (its own temporary
        files, a teardown) creates its parts' files slower, whichever copier
        it is. perf saw 15-30 % of the servers' CPU there in such runs."""
        left = self.churned + self.settle - time.monotonic()
        if left > 0:
            self.note(f'settling {left:.0f} s (BENCH_SETTLE): freed inodes cost ext4 for a minute')
            time.sleep(left)

    def retire(self, db):
        """Detach every table of the earlier runs' destination databases on
        every destination node, and create db there (clickhouse-copier 18.16
        does not create the destination database: it retries DROP PARTITION
        forever without it). Each run copies into a database of its own and
        nothing is dropped until the cluster goes: dropping the last run's
        tables would free their files right before the next run, which then
        pays for them (settle_fs()); a copier's own drops during its run
        still count."""
        for n in self.cl.dst_nodes:
            got = self.q(n, f"SELECT database, name FROM system.tables WHERE database LIKE '{DB}_%' "
                            'FORMAT TSVRaw')
            for line in got.splitlines():
                d, t = line.split('\t')
                self.q(n, f'DETACH TABLE `{d}`.`{t}`')
            self.q(n, f'CREATE DATABASE IF NOT EXISTS `{db}`')

    def upload(self, tp, path):
        """Write the description with zkCli (clickhouse-copier 18.16 has no
        --task-file; chcopier gets it the same way) and read it back."""
        text = read(path)
        self.zkcli('create', tp, '')
        self.zkcli('create', f'{tp}/description', text)
        if self.cl.zk_get(f'{tp}/description') != text.rstrip('\n'):
            raise Fail(f'could not write {tp}/description to ZooKeeper')

    def query_log(self, since, until):
        """From every server's system.query_log (the lab's servers log
        queries) over [since, until] (epoch s): rows the source servers read,
        and CPU seconds of the queries by role: 'verify' (a count and a
        checksum per partition: chcopier's discovery and its sums, on the
        source and on the staging nodes), 'read' (the source's other queries:
        the copy's reads), 'write' (the destination's INSERTs: routed copies
        and the inserts they forward) and 'ddl' (the destination's other
        statements: staging tables, ATTACH/REPLACE/DROP, counts). A query's
        CPU is what its own threads used: work the server does in the
        background (replication fetches, merges, sends of Distributed
        inserts, part removal) is in no query."""
        read = 0
        roles = dict(read=0, write=0, verify=0, ddl=0)
        where = (f'type = 2 AND event_time BETWEEN toDateTime({int(since)}) AND toDateTime({int(until) + 1}) '
                 "AND query NOT LIKE '%system.%'")
        cpu = ("arraySum(arrayFilter((v, k) -> k IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'), "
               'ProfileEvents.Values, ProfileEvents.Names))')
        role = ("multiIf(query LIKE '%ifNull(sum(%', 'verify', {src}, 'read', "
                "query LIKE 'INSERT%', 'write', 'ddl')")
        for n in self.cl.nodes:
            self.q(n, 'SYSTEM FLUSH LOGS')
            src = '1' if n.cluster == 'source' else '0'
            if n.cluster == 'source':
                read += int(self.q(n, f'SELECT sum(read_rows) FROM system.query_log WHERE {where}'))
            got = self.q(n, f'SELECT {role.format(src=src)} AS r, sum({cpu}) FROM system.query_log '
                            f'WHERE {where} GROUP BY r FORMAT TSV')
            for line in got.splitlines():
                k, v = line.split('\t')
                roles[k] += int(v) / 1e6
        return read, roles

    @staticmethod
    def roles(roles, cpu0, cpu1, worker):
        """CPU seconds of a run by role: the queries' (query_log), 'bg' =
        the ClickHouse servers' CPU (/proc) in no query, 'zk' = ZooKeeper's,
        'worker' = the copier processes'."""
        d = {k: (cpu1.get(k, 0) - cpu0.get(k, 0)) / CLK_TCK for k in cpu1}
        zk = d.pop('zk', 0.0)
        out = dict(roles)
        out['bg'] = max(0.0, sum(d.values()) - sum(roles.values()))
        out.update(zk=zk, worker=worker or 0.0)
        return out

    @staticmethod
    def routing(logs):
        """chcopier's routing as its log says ('distributed', 'filter', both
        when it fell back), '-' for clickhouse-copier."""
        got = sorted(set(re.findall(r"routing (distributed|filter):", logs)))
        return '+'.join(got) or '-'

    @staticmethod
    def machine_cpu():
        """Busy CPU ticks of the whole machine so far (/proc/stat)."""
        f = open('/proc/stat').readline().split()
        u, n, s, irq, sirq, steal = (int(f[i]) for i in (1, 2, 3, 6, 7, 8))
        return u + n + s + irq + sirq + steal

    # ------------------------------------------------------------ workers

    def launch(self, rd, k, cmd):
        """Start worker K under timeout(1) [and GNU time]; its Popen."""
        argv = ['timeout', '-k', '10', str(self.timeout)]
        if self.gnu_time:
            argv += [self.gnu_time, '-v', '-o', f'{rd}/w{k}.time']
        with open(f'{rd}/w{k}.out', 'wb') as out:
            p = subprocess.Popen(argv + cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        p.usage = None
        p.hwm = None
        if not self.gnu_time:
            # The peak RSS wait4() reports for timeout(1) would include what
            # this process had when it forked it (Linux keeps the highest
            # RSS across exec): sample the copier's own VmHWM instead.
            threading.Thread(target=self.sample_hwm, args=(p,), daemon=True).start()
        self.procs.append(p)
        return p

    def sample_hwm(self, p):
        """Keep the last VmHWM (kB) of the copier under P in p.hwm."""
        child = None
        while p.returncode is None:
            child = child or next(iter(self.children(p.pid)), None)
            if child:
                try:
                    m = re.search(r'^VmHWM:\s+([0-9]+)', open(f'/proc/{child}/status').read(), re.M)
                    if m:
                        p.hwm = int(m.group(1))
                except OSError:
                    pass
            time.sleep(0.1)

    @staticmethod
    def wait(p):
        """Exit code; the rusage of the worker tree goes to p.usage."""
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        p.usage = ru
        return p.returncode

    @staticmethod
    def children(pid):
        out = []
        for d in os.listdir('/proc'):
            if d.isdigit():
                try:
                    if int(open(f'/proc/{d}/stat').read().rsplit(')', 1)[1].split()[1]) == pid:
                        out.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return sorted(out)

    def copier_pid(self, pid):
        """The copier process under timeout [and GNU time]."""
        while True:
            c = self.children(pid)
            if not c:
                return pid
            pid = c[0]

    def usage(self, rd, k, p):
        """(peak RSS kB, CPU s) of worker K, None where unknown."""
        f = f'{rd}/w{k}.time'
        if os.path.exists(f):
            text = read(f)
            rss = re.search(r'Maximum resident set size \(kbytes\): ([0-9]+)', text)
            u = re.search(r'User time \(seconds\): ([0-9.]+)', text)
            s = re.search(r'System time \(seconds\): ([0-9.]+)', text)
            return (int(rss.group(1)) if rss else None,
                    float(u.group(1)) + float(s.group(1)) if u and s else None)
        if p.usage:
            return p.hwm, p.usage.ru_utime + p.usage.ru_stime
        return None, None

    def perf_start(self, rd):
        """BENCH_PERF=1: record the whole machine (perf record -a -g) for the
        run into <run dir>/perf.data, to see where the servers' CPU goes;
        <run dir>/pids names the process of each server."""
        if os.environ.get('BENCH_PERF') != '1':
            return None
        cl = self.cl
        with open(f'{rd}/pids', 'w') as f:
            for name, pf in [(n.name, n.pid_file) for n in cl.nodes] + [('zk', cl.zk_pid_file)]:
                f.write(f'{read_pid(pf)} {name}\n')
        p = subprocess.Popen(['perf', 'record', '-a', '-g', '-q', '-o', f'{rd}/perf.data'],
                             stdout=subprocess.DEVNULL, stderr=open(f'{rd}/perf.err', 'w'))
        time.sleep(0.5)
        return p

    @staticmethod
    def perf_stop(p):
        if p is not None:
            p.send_signal(signal.SIGINT)
            p.wait()

    def kill_at(self, copier):
        """Half of the same copier's undisturbed run (workload a) in this
        bench run, else BENCH_KILL_AT."""
        for r in self.results:
            if r['wl'] == 'a' and r['copier'] == copier and r['status'] == 'ok':
                return round(r['wall'] / 2, 2)
        return float(self.kill_at_default)

    # ------------------------------------------------------------ one run

    def verify(self, wl, rd, db):
        """Every destination replica against the source (harness.verify),
        and every row on the shard its sharding key routes it to."""
        table = self.wl_table(wl)
        ok = True
        for n in self.cl.dst_nodes if wl != 'd' else []:
            try:
                self.cl.query(n, f'SYSTEM SYNC REPLICA {db}.{table}', timeout=300)
            except QueryError as e:
                self.note(f'FAIL: {n.name}: SYSTEM SYNC REPLICA failed: {str(e)[:300]}')
                ok = False
        v = verify(self.cl, f'{DB}.hits', f'{db}.{table}', self.wl_pkey(wl), unique='UserID',
                   placement='intHash64(UserID)', replica_wait=60, flat=wl == 'd')
        with open(f'{rd}/dst-r1.tsv', 'w') as f:
            f.write(''.join(f'{p}\t{c}\t{s}\n' for p, (c, s) in v.destination.items()))
        for p in v.problems:
            self.note('FAIL: ' + p.replace('\n', '\n     '))
        if ok and v.ok:
            self.note(f'verified: {v.rows} rows in {len(v.source)} partitions match the source on every replica; '
                      'shard placement ok')
        return ok and v.ok

    def count_left(self, tp):
        """Nodes under TASK_PATH now, without the path and its description."""
        out = self.zkcli('ls', '-R', tp)
        n = sum(1 for line in out.splitlines() if line == tp or line.startswith(tp + '/'))
        return str(n - 2) if n >= 2 else 'n/a'

    def run(self, wl, copier):
        cl = self.cl
        tag = {'chcopier': 'ch', 'chcopier-pipe': 'cp'}.get(copier, 'cc')
        tp = f'/bench/{wl}-{tag}'
        rd = f'{self.dir}/runs/{wl}-{tag}'
        os.makedirs(f'{rd}/logs', exist_ok=True)
        self.say(f'workload {wl}: {copier}, {self.workers} worker(s), task {tp}')
        t = time.monotonic()
        db = f'{DB}_{wl}_{tag}'
        self.retire(db)
        self.wait_idle()
        self.settle_fs()
        self.write_task(wl, f'{rd}/task.xml', db)
        self.upload(tp, f'{rd}/task.xml')
        if copier == 'clickhouse-copier':
            cmd = [self.cc_bin, '--config', cl.zookeeper_xml, '--task-path', tp, '--base-dir', f'{rd}/logs']
        else:
            cmd = [self.bin, '--config', cl.zookeeper_xml, '--task-path', tp, '--base-dir', f'{rd}/logs']
            if copier == 'chcopier-pipe':
                cmd += ['--data-path', 'pipe']
        taskxml.write(f'{rd}/command', ' '.join(shlex.quote(c) for c in cmd) + '\n')
        load = ' '.join(open('/proc/loadavg').read().split()[:3])
        self.note(f'prepared in {time.monotonic() - t:.1f} s (detach the last run, wait idle, upload); load average {load}')
        self.procs = []
        epoch0 = time.time()
        cpu0 = cl.server_cpu()
        m0 = self.machine_cpu()
        perf = self.perf_start(rd)
        start = time.monotonic()
        procs = [self.launch(rd, k, cmd) for k in range(1, self.workers + 1)]
        killed = set()
        if wl == 'c':
            # Workload c: kill -9 every worker mid-copy, start it again at once.
            at = self.kill_at(copier)
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            for k, p in enumerate(list(procs), 1):
                kp = self.copier_pid(p.pid)
                if p.poll() is None and kp != p.pid:
                    try:
                        os.kill(kp, signal.SIGKILL)
                    except ProcessLookupError:
                        self.note(f'worker {k} had already exited at {at} s: nothing to kill (BENCH_KILL_AT)')
                        continue
                    self.wait(p)
                    killed.add(k)
                    self.note(f'killed worker {k} (pid {kp}) with -9 at {time.monotonic() - start:.2f} s '
                              f'(planned {at} s); restarting it')
                    procs.append(self.launch(rd, self.workers + k, cmd))
                else:
                    self.note(f'worker {k} had already exited at {at} s: nothing to kill (BENCH_KILL_AT)')
        rcs = []
        for k, p in enumerate(procs, 1):
            rcs.append('killed' if k in killed else self.wait(p) if p.returncode is None else p.returncode)
        end = time.monotonic()
        self.perf_stop(perf)
        self.churned = end
        cpu1 = cl.server_cpu()
        m1 = self.machine_cpu()
        srcread, roles = self.query_log(epoch0, time.time())
        vcpu = roles['verify']
        self.procs = []
        wall = end - start
        self.note(f"wall {wall:.2f} s, exit code(s): {' '.join(map(str, rcs))}")
        self.note('server CPU s: ' + ' '.join(f'{k} {(cpu1.get(k, 0) - cpu0.get(k, 0)) / CLK_TCK:.2f}' for k in cpu1))
        status = 'ok'
        maxrss, sumcpu = 0, 0.0
        for k, (p, rc) in enumerate(zip(procs, rcs), 1):
            if rc != 'killed' and rc != 0:
                status = 'FAIL'
                self.note(f'FAIL: worker {k} timed out after {self.timeout}s' if rc == 124
                          else f'FAIL: worker {k} exited with {rc}')
                for line in read(f'{rd}/w{k}.out').splitlines()[-5:]:
                    self.note(f'  {line}')
            rss, cpu = self.usage(rd, k, p)
            maxrss = None if rss is None or maxrss is None else max(maxrss, rss)
            sumcpu = None if cpu is None or sumcpu is None else sumcpu + cpu
        # error-level lines in the copiers' own logs (informational)
        logs = ''.join(read(f) for f in sorted(_glob(f'{rd}/logs/*/log.log')))
        pat = r'^[0-9-]* [0-9:.]* [0-9]* E ' if copier.startswith('chcopier') else r'<Error>'
        errs = len(re.findall(pat, logs, re.M))
        if errs:
            self.note(f'note: {errs} error-level lines in {rd}/logs/*/log.log')
        if status == 'ok':
            t = time.monotonic()
            if not self.verify(wl, rd, db):
                status = 'FAIL'
            self.note(f'verified in {time.monotonic() - t:.1f} s')
        if status != 'ok':
            self.failed = True
        scpu = sum(cpu1.get(k, 0) - cpu0.get(k, 0) for k in cpu1) / CLK_TCK
        vshare = f'{100 * vcpu / scpu:.0f}%' if copier.startswith('chcopier') and scpu > 0 else '-'
        # CPU the rest of the machine used meanwhile, in cores: a noisy
        # neighbour makes every number above slower
        other = max(0.0, ((m1 - m0) / CLK_TCK - scpu - (sumcpu or 0)) / wall)
        self.results.append(dict(wl=wl, copier=copier, wall=wall, rps=int(self.rows / wall),
                                 rss='n/a' if maxrss is None else f'{maxrss / 1024:.1f}',
                                 cpu='n/a' if sumcpu is None else f'{sumcpu:.2f}', scpu=f'{scpu:.2f}',
                                 left=self.count_left(tp), tp=tp, status=status, other=f'{other:.2f}',
                                 sread=f'{srcread / self.rows:.2f}', vshare=vshare,
                                 route=self.routing(logs) if copier.startswith('chcopier') else '-',
                                 roles=self.roles(roles, cpu0, cpu1, sumcpu)))
        with open(f'{self.dir}/results.tsv', 'a') as f:
            r = self.results[-1]
            f.write('\t'.join(str(r[k]) for k in ('wl', 'copier')) + f'\t{self.workers}\t{wall:.3f}\t' +
                    '\t'.join(str(r[k]) for k in ('rps', 'rss', 'cpu', 'scpu', 'left', 'tp', 'status', 'other',
                                                  'sread', 'vshare', 'route')) + '\n')

    # ------------------------------------------------------------ ZooKeeper transaction log

    def dump_txn_log(self):
        cp = '/usr/share/java/zookeeper.jar'
        for j in ('zookeeper-jute', 'commons-cli', 'slf4j-simple'):
            if os.access(f'/usr/share/java/{j}.jar', os.R_OK):
                cp += f':/usr/share/java/{j}.jar'
        with open(f'{self.dir}/zk-txn.txt', 'wb') as out:
            for f in sorted(_glob(f'{self.dir}/zk/data/version-2/log.*')):
                subprocess.run(['java', '-XX:TieredStopAtLevel=1', '-cp', cp,
                                'org.apache.zookeeper.server.persistence.TxnLogToolkit', f],
                               stdout=out, stderr=subprocess.DEVNULL)

    def zk_creates(self, tp):
        """Create operations (plain or inside a multi) on TP or below, from the
        transaction log (so ephemeral and since-deleted nodes count too),
        minus the two the benchmark made."""
        try:
            data = open(f'{self.dir}/zk-txn.txt', 'rb').read()
        except OSError:
            return 'n/a'
        if not data:
            return 'n/a'
        pat = rb'create[A-Za-z0-9]*(?::[\x00-\xff]{4}| )' + re.escape(tp.encode()) + rb'(?=[/,\x00 ]|$)'
        return str(len(re.findall(pat, data, re.M)) - 2)

    # ------------------------------------------------------------ report

    def report(self):
        self.say(f'results: {self.rows} rows, number_of_splits {self.splits}, max_workers {self.max_workers}, '
                 f'{self.workers} worker(s) per run')
        out = [f"{'workload':<12} {'copier':<17} {'wall s':>7} {'rows/s':>9} {'ratio':>6} {'RSS MiB':>7} "
               f"{'CPU s':>6} {'srv CPU':>7} {'verify':>6} {'src read':>8} {'routing':>11} {'zk left':>7} "
               f"{'zk crt':>7} {'other':>6}  verify"]

        def base(wl):
            return next((r['rps'] for r in self.results if r['wl'] == wl and r['copier'] == 'clickhouse-copier'
                         and r['status'] == 'ok'), None)
        for r in self.results:
            b = base(r['wl'])
            ratio = f"{r['rps'] / b:.2f}x" if b and r['status'] == 'ok' else '-'
            out.append(f"{self.wl_label(r['wl']):<12} {r['copier']:<17} {r['wall']:7.2f} {r['rps']:>9} {ratio:>6} "
                       f"{r['rss']:>7} {r['cpu']:>6} {r['scpu']:>7} {r['vshare']:>6} {r['sread'] + 'x':>8} "
                       f"{r['route']:>11} {r['left']:>7} {self.zk_creates(r['tp']):>7} {r['other']:>6}  "
                       f"{r['status']}")
        out.append('')
        out.append(f"{'CPU s by role':<30} {'read':>6} {'write':>6} {'verify':>6} {'ddl':>6} {'bg':>6} "
                   f"{'zk':>6} {'worker':>6} {'total':>6}")
        keys = ('read', 'write', 'verify', 'ddl', 'bg', 'zk', 'worker')
        for r in self.results:
            ro = r['roles']
            out.append(f"{self.wl_label(r['wl']):<12} {r['copier']:<17} " +
                       ' '.join(f'{ro[k]:6.2f}' for k in keys) + f' {sum(ro[k] for k in keys):6.2f}')
        how = 'GNU time' if self.gnu_time else 'VmHWM sampled from /proc'
        out.append(f"""
ratio = chcopier rows/s / clickhouse-copier rows/s on the same workload.
RSS = worker peak resident set ({how}, max over workers);
CPU s = worker user+sys (sum over workers); srv CPU = CPU seconds of all
ClickHouse servers + ZooKeeper during the run; verify = the share of srv CPU
spent in verification queries (count and checksum per partition, from
system.query_log); src read = rows the source servers read during the run
(system.query_log), as a multiple of the rows copied; routing = how chcopier
routed rows to destination shards (its log); zk left = nodes
under the task path afterwards; zk crt = create operations under it in
ZooKeeper's transaction log (both exclude the task path and its description);
other = cores busy with processes outside this benchmark during the run
(anything above ~0.1 on this 2-core box skews the timings).
CPU s by role: the CPU seconds the servers' queries used (system.query_log)
reading the source (read: the copy's SELECTs), inserting into the
destination (write: copies and the inserts a Distributed table forwards),
verifying (verify: counts and checksums, both sides) and the destination's
other statements (ddl: staging tables, ATTACH/REPLACE/DROP); bg = the
servers' CPU in no query (replication fetches, merges, Distributed sends,
part removal); zk = ZooKeeper; worker = the copier processes.""")
        for wl in self.workloads:
            cc = base(wl)
            for c in ('chcopier', 'chcopier-pipe'):
                ch = next((r['rps'] for r in self.results if r['wl'] == wl and r['copier'] == c
                           and r['status'] == 'ok'), None)
                if cc and ch:
                    out.append(f'\n>>> RATIO {self.wl_label(wl)}: {c} {ch} rows/s vs clickhouse-copier {cc} rows/s '
                               f'= {ch / cc:.2f}x')
        # Workload c: what the kill cost each copier over its undisturbed run
        # (a), and, for chcopier, how long the restarted worker took to claim
        # its first piece (it cleans the dirty ones the killed worker left).
        for c in self.copiers:
            wa = next((r['wall'] for r in self.results if r['wl'] == 'a' and r['copier'] == c and r['status'] == 'ok'), None)
            wc = next((r['wall'] for r in self.results if r['wl'] == 'c' and r['copier'] == c and r['status'] == 'ok'), None)
            if wa is None or wc is None:
                continue
            claim = ''
            if c == 'chcopier':
                dirs = sorted(_glob(f'{self.dir}/runs/c-ch/logs/chcopier_*'))
                if dirs:
                    claim = first_claim(read(f'{dirs[-1]}/log.log'))
            out.append(f'\n>>> RESTART c: {c}: {wc:.2f} s with every worker killed once vs {wa:.2f} s undisturbed '
                       f'({wc - wa:+.2f} s)' + (f'; the restarted worker claimed its first piece {claim} s after it '
                                                'started' if claim else ''))
        out.append(f'\nbench: total script wall time {time.monotonic() - self.t0:.1f} s')
        text = '\n'.join(out)
        print(text, flush=True)
        taskxml.write(f'{self.dir}/results.txt', text + '\n')

    # ------------------------------------------------------------ main

    def main(self):
        self.binary()
        d = os.environ.get('BENCH_DIR') or tempfile.mkdtemp(prefix='chc-bench.', dir='/tmp')
        os.makedirs(d, exist_ok=True)
        self.dir = os.path.realpath(d)
        if os.path.exists(f'{self.dir}/cluster.env'):
            # a previous bench directory: start from scratch
            try:
                Cluster.load(self.dir).down()
            except (ClusterError, KeyError, ValueError):
                pass
            for x in os.listdir(self.dir):
                p = os.path.join(self.dir, x)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        elif os.listdir(self.dir):
            raise Fail(f'BENCH_DIR {self.dir} is not empty and not a previous bench directory')
        os.makedirs(f'{self.dir}/runs')
        self.cl = Cluster(self.dir)
        ok = False
        try:
            self.say('cluster')
            try:
                took = self.cl.up()
            except ClusterError as e:
                raise Fail(f'cluster up failed: {e}') from None
            self.note(f'up: {len(self.cl.nodes)} ClickHouse servers + ZooKeeper (base port {self.cl.base}) in {took:.1f}s')
            self.source()
            self.churned = time.monotonic()
            open(f'{self.dir}/results.tsv', 'w').close()
            self.zkcli('create', '/bench', '')
            for wl in self.workloads:
                src = sums(self.cl, self.cl.src_all(DB, 'hits'), self.wl_pkey(wl), 'cityHash64(*)')
                taskxml.write(f'{self.dir}/src-{wl}.tsv', ''.join(f'{p}\t{c}\t{s}\n' for p, (c, s) in src.items()))
                for c in self.copiers:
                    if c == 'chcopier-pipe' and wl != 'a':
                        continue
                    self.run(wl, c)
            self.dump_txn_log()
            self.report()
            ok = not self.failed
        finally:
            for p in self.procs:
                # timeout(1) forwards TERM to the copier and sends KILL 10 s
                # later (clickhouse-copier ignores TERM while retrying)
                if p.returncode is None:
                    p.terminate()
            for p in self.procs:
                if p.returncode is None:
                    p.wait()
            self.cl.down()
            if ok and os.environ.get('BENCH_KEEP') != '1':
                for n in self.cl.nodes:
                    shutil.rmtree(f'{n.dir}/data', ignore_errors=True)
                shutil.rmtree(f'{self.dir}/zk/data', ignore_errors=True)
            print(f'{PROG}: logs and results in {self.dir}', flush=True)
        if self.failed:
            print(f'{PROG}: at least one run FAILED (see above and {self.dir}/runs)', file=sys.stderr)
            return 1
        return 0


def first_claim(log):
    """Seconds from the log's first line to its first claim or dirty piece."""
    s0 = None
    for line in log.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[1].count(':') != 2:
            continue
        h, m, s = parts[1].split(':')
        try:
            t = int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            continue
        if s0 is None:
            s0 = t
        if re.search(r' claimed, copying| piece is dirty ', line):
            return f'{t - s0:.2f}'
    return ''


def _glob(pattern):
    import glob
    return glob.glob(pattern)


def main():
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        return Bench().main()
    except Fail as e:
        print(f'{PROG}: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())

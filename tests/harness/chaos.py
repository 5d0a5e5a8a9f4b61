"""harness.chaos — owns the chaos run: chcopier's exactly-once promise checked
under random failures on a real local cluster (CLI: scripts/chaos [DIR]).

A round copies chaos.src (CHAOS_PARTITIONS daily partitions, CHAOS_ROWS rows
over s1+s2, unique id; s2 lacks the last two days) into a new
ReplicatedMergeTree table on the 2 x 2 destination (number_of_splits 3,
max_workers 4) that already holds rows in half of the partitions, in one
of six ways drawn from a shuffled deck (each 6 rounds cover all): append
mode (the destination's rows stay) or replace mode
(allow_to_drop_target_partitions), on the pull path with Distributed
routing (--routing auto; the servers know `destination` exactly, and a
round where no worker routed by Distributed is a problem) or filter
routing (--routing filter), or on the pipe path (<data_path>pipe). It runs
with CHAOS_WORKERS workers (--retry-delay-ms 200,
--min-piece-rows drawn from CHAOS_MIN_PIECE_ROWS, a zookeeper.xml with
session_timeout_ms CHAOS_SESSION_MS), and until the task is done injects
faults at random intervals (CHAOS_GAP_MS), drawn from a shuffled deck per
cycle: every named fault point once, kill x2, session x2, freeze x2, node
x1, zk x1
(only the kinds in CHAOS_KINDS; a card that cannot be played at the moment
goes back into the deck):

  kill     kill -9 a random running worker, start a new one
  point    start a worker with --fault-point P (least-fired point first);
           counted when it really _exit(99)s there
  session  SIGSTOP a worker (half of the time one holding a partition's
           move lock) for session timeout + 1..3 s, then SIGCONT: its
           session has expired; it must notice and go on with a new one
  freeze   start a worker with --fault-point P:stop (P: during_copy,
           after_assemble, before_replace, before_verify, least frozen
           first): once it has stopped itself there, counted and kept
           stopped for session timeout + 1..3 s, then SIGCONT: a zombie
           with its claims in hand that wakes up after another took over
  node     restart a destination ClickHouse server (TERM or KILL), down
           0.5..3 s (scripts/cluster stop-node / start-node)
  zk       stop ZooKeeper for session timeout + 1..3 s, start it again

Workers that exit while the task is not done are replaced (CHAOS_WORKERS
stay running). When the fault budget (CHAOS_FAULTS) is not spent by the end
of a round, another round (new table, new task) starts. Once the budget left
is no more than the named points that never fired, only those are armed (and
they still are after the budget is spent, until each fired), so with
CHAOS_FAULTS >= 6 and `point` enabled every named point fires.

After each round, once every worker has exited: harness.verify (replicas of
each shard agree after SYSTEM SYNC REPLICA, per partition count and checksum
of the destination equal the source's (plus the rows it held first, in append
mode), no id twice, no staging table left;
a round whose replicas still differ after 120 s is verified again, in full,
at the end of the run: ClickHouse 18.16's replication can stall for minutes
after a restart), and status --json says done. Also checked: worker exit codes (0,
99 only when armed, 137 when killed; 1 is listed with its error), sanitizer
reports, workers that noticed session expiry, workers that do not exit after
the task is done (stacks saved). Timeline: <run>/events.log; worker logs:
<run>/logs (--base-dir) and <run>/workers/w<N>[-<point>].out; summary:
<run>/summary.env.

The seed (CHAOS_SEED, random when unset and printed) draws the whole fault
schedule: the same seed draws the same choices; timing still varies.

Exit 0 when every check passed; 1 on any mismatch, problem, a task not done
by CHAOS_DEADLINE or stuck (CHAOS_STALL); 2 on bad usage or environment; 130
when interrupted (INT/TERM: the summary is still printed).

Env: CHAOS_ROWS (300000), CHAOS_PARTITIONS (30), CHAOS_WORKERS (3),
CHAOS_MIN_PIECE_ROWS (values to draw from: "0 <2.5 partitions of a shard>"),
CHAOS_FAULTS (20), CHAOS_DEADLINE (s for the whole run; 600 + 15 per fault),
CHAOS_SEED, CHAOS_SESSION_MS (4000), CHAOS_GAP_MS ("300 2500"), CHAOS_KINDS
("kill point session freeze node zk"), CHAOS_MAX_ROUNDS (1000), CHAOS_LOG_LEVEL
(debug), CHAOS_EXIT_WAIT (s a worker may take to exit once done, 90),
CHAOS_STALL (s without a partition or piece finishing before the round counts
as stuck and the run ends, 240), CHAOS_REPLICA_WAIT (s, 600), CHAOS_KEEP (1:
keep the temp cluster dir), CHAOS_KEEP_TABLES (1: keep the destination
tables of verified rounds; failed ones are kept), CHAOS_SUMMARY (also copy
the key=value summary there), CHCOPIER (binary, default build/chcopier;
copied into the run directory so that rebuilds during the run do not
matter).
"""

import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

from . import ROOT, taskxml
from .chcopier import LSAN_SUPP, read
from .cluster import Cluster, ClusterError, QueryError, alive, read_pid
from .verify import verify

PROG = 'chaos'
CLUSTER = os.path.join(ROOT, 'scripts', 'cluster')
POINTS = ['after_claim', 'during_cleanup', 'after_insert', 'after_assemble', 'after_assembled_record',
          'after_replace']
# where a `freeze` worker stops itself (--fault-point P:stop): during the
# copy, the assembly, the REPLACE and the verification
FREEZE_POINTS = ['during_copy', 'after_assemble', 'before_replace', 'before_verify']
KINDS_ALL = ['kill', 'point', 'session', 'freeze', 'node', 'zk']
# what a round copies with: (mode, data path + routing); drawn from a
# shuffled deck, so that every 6 rounds cover each combination once
MODES = ['append', 'replace']
PATHS = ['pull-distributed', 'pull-filter', 'pipe']
COMBOS = [(m, p) for m in MODES for p in PATHS]
PRESEED_BASE = 10 ** 12     # ids of the rows a round puts into the destination first


class Usage(Exception):
    """Bad usage or environment: exit 2."""


def _int_env(name, default):
    v = os.environ.get(name)
    v = str(default) if v is None or v == '' else v
    if not v.isdigit():
        raise Usage(f'{name} must be a non-negative integer (got {v!r})')
    return int(v)


class Config:
    def __init__(self):
        self.rows = _int_env('CHAOS_ROWS', 300000)
        self.nparts = _int_env('CHAOS_PARTITIONS', 30)
        mpr = os.environ.get('CHAOS_MIN_PIECE_ROWS') or f'0 {self.rows * 5 // 4 // max(self.nparts, 1)}'
        self.min_piece_rows = mpr.split()
        self.nworkers = _int_env('CHAOS_WORKERS', 3)
        self.faults = _int_env('CHAOS_FAULTS', 20)
        self.deadline_s = _int_env('CHAOS_DEADLINE', 0) or 600 + 15 * self.faults
        self.session_ms = _int_env('CHAOS_SESSION_MS', 4000)
        gap = (os.environ.get('CHAOS_GAP_MS') or '300 2500').split()
        if len(gap) != 2 or not all(g.isdigit() for g in gap):
            raise Usage(f"CHAOS_GAP_MS must be 'MIN MAX' in milliseconds (got {os.environ.get('CHAOS_GAP_MS')!r})")
        self.gap_min, self.gap_max = int(gap[0]), int(gap[1])
        self.kinds = (os.environ.get('CHAOS_KINDS') or ' '.join(KINDS_ALL)).split()
        self.max_rounds = _int_env('CHAOS_MAX_ROUNDS', 1000)
        self.log_level = os.environ.get('CHAOS_LOG_LEVEL') or 'debug'
        self.exit_wait = _int_env('CHAOS_EXIT_WAIT', 90)
        self.stall_s = _int_env('CHAOS_STALL', 240)
        self.replica_wait = _int_env('CHAOS_REPLICA_WAIT', 600)
        self.seed = _int_env('CHAOS_SEED', random.SystemRandom().randrange(1 << 30))
        if not (self.rows >= 2 and self.nparts >= 3 and self.nworkers >= 1 and self.gap_max >= self.gap_min
                and self.session_ms >= 1000):
            raise Usage('need CHAOS_ROWS >= 2, CHAOS_PARTITIONS >= 3, CHAOS_WORKERS >= 1, '
                        'CHAOS_SESSION_MS >= 1000, gap min <= max')
        for k in self.kinds:
            if k not in KINDS_ALL:
                raise Usage(f"unknown fault kind '{k}' in CHAOS_KINDS")
        self.keep = os.environ.get('CHAOS_KEEP') == '1'
        self.keep_tables = os.environ.get('CHAOS_KEEP_TABLES') == '1'
        self.summary = os.environ.get('CHAOS_SUMMARY') or ''
        self.binary = os.environ.get('CHCOPIER') or os.path.join(ROOT, 'build', 'chcopier')
        if not os.access(self.binary, os.X_OK):
            raise Usage(f'chcopier binary not found at {self.binary} (ninja -C build, or set CHCOPIER)')


class W:
    """One worker process."""

    def __init__(self, seq, popen, point, base, ts):
        self.seq, self.popen, self.point, self.base, self.ts = seq, popen, point, base, ts
        self.pid = popen.pid
        self.out = base + '.out'
        self.stop_until = None
        self.stop_at = None
        self.was_stopped = False
        self.killed = False
        self.freeze = None              # armed with --fault-point <freeze>:stop
        self.froze = False              # ... and stopped itself there

    @property
    def name(self):
        return f'w{self.seq}'

    def rc(self):
        rc = self.popen.poll()
        return rc if rc is None or rc >= 0 else 128 - rc


class Chaos:
    def __init__(self, cfg, cluster, run):
        self.cfg = cfg
        self.cl = cluster
        self.run = run
        self.rng = random.Random(cfg.seed)
        self.t_start = time.monotonic()
        self.deadline = self.t_start + cfg.deadline_s
        self.problems, self.notes = [], []
        self.failed = False
        self.lagging = []               # (round, table, node) re-checked at the end
        self.replicas_late = 0
        self.running = []
        self.w_count = 0
        self.exits = Counter()
        self.fired = {p: 0 for p in POINTS}
        self.armed = {p: 0 for p in POINTS}
        self.kind_n = {k: 0 for k in KINDS_ALL}
        self.froze_at = {p: 0 for p in FREEZE_POINTS}
        self.combo_deck = []
        self.combo = COMBOS[0]
        self.combo_n = Counter()        # rounds per (mode, path)
        self.round_extra = None         # rows the destination held before the round
        self.round_workers = []
        self.routing_n = Counter()      # workers per routing they logged, fallbacks
        self.expiries = 0               # 'ZooKeeper session expired' in worker logs
        self.injected = 0
        self.session_noticed = self.session_checked = 0
        self.zk_leaks = 0
        self.exit1_msgs = []
        self.infra = None               # (thread, kind, result dict)
        self.deck = []
        self.attempts_point = 0
        self.interrupted = False
        self.task_done = False
        self.task_path = ''
        self.last_start = 0
        self.events = open(os.path.join(run, 'events.log'), 'a')

    # ------------------------------------------------------------ basics

    def now(self):
        return time.monotonic()

    def log(self, msg):
        t = int((self.now() - self.t_start) * 10)
        line = f'[{t // 10:4d}.{t % 10}s] {msg}'
        print(line, flush=True)
        self.events.write(line + '\n')
        self.events.flush()

    def problem(self, msg):
        self.problems.append(msg)
        self.failed = True
        self.log(f'PROBLEM: {msg}')

    def note(self, msg):
        self.notes.append(msg)
        self.log(f'NOTE: {msg}')

    def rnd(self, lo, hi):
        return self.rng.randint(lo, hi)

    def q(self, node, sql, timeout=60):
        return self.cl.q(node, sql, timeout=timeout)

    def kind_on(self, k):
        return k in self.cfg.kinds

    # ------------------------------------------------------------ source data

    def setup_source(self):
        cfg, cl = self.cfg, self.cl
        for n in cl.src_nodes + cl.dst_nodes:
            self.q(n, 'CREATE DATABASE IF NOT EXISTS chaos')
        want = f'{cfg.rows}\t{cfg.nparts}\t{cfg.nparts - 2}'
        try:
            have = self.q('s1', f"SELECT count(), uniqExact(d), (SELECT uniqExact(d) FROM "
                                f"{cl.remote(['s2'], 'chaos', 'src')}) FROM {cl.src_all('chaos', 'src')} FORMAT TSV")
        except QueryError:
            have = ''
        if have == want:
            self.log(f'source chaos.src: reusing {cfg.rows} rows in {cfg.nparts} partitions')
            return
        for i in (1, 2):
            rows = (cfg.rows + 2 - i) // 2
            parts = cfg.nparts if i == 1 else cfg.nparts - 2
            self.q(f's{i}', 'DROP TABLE IF EXISTS chaos.src')
            self.q(f's{i}', 'CREATE TABLE chaos.src (id UInt64, d Date, k UInt32, s String, n Nullable(Int32), '
                            'a Array(UInt16)) ENGINE = MergeTree PARTITION BY d ORDER BY (k, id)')
            self.q(f's{i}', f"INSERT INTO chaos.src SELECT number * 2 + {i - 1} AS id, toDate('2019-03-01') + "
                            f"number % {parts}, toUInt32(cityHash64(id) % 1000), concat('row ', toString(id)), "
                            'if(id % 7 = 0, NULL, toInt32(id % 1000) - 500), range(toUInt64(id % 4)) '
                            f'FROM numbers({rows})', timeout=300)
        self.log(f'source chaos.src: {cfg.rows} rows in {cfg.nparts} daily partitions (s2 has {cfg.nparts - 2})')

    def engine(self, t):
        return taskxml.rmt(f'chaos_{t}', 'PARTITION BY d ORDER BY (k, id)')

    def write_task(self, path, t):
        mode, dpath = self.combo
        extra = {'number_of_splits': 3}
        if mode == 'replace':
            extra['allow_to_drop_target_partitions'] = 'true'
        if dpath == 'pipe':
            extra['data_path'] = 'pipe'
        xml = taskxml.task_xml(self.cl, [taskxml.table('chaos', 'src', t, self.engine(t), 'id', src_db='chaos',
                                                       dst_db='chaos', **extra)])
        taskxml.write(path, xml)

    def draw_combo(self):
        """The round's (mode, path) from a shuffled deck of every combination."""
        if not self.combo_deck:
            deck = list(COMBOS)
            for i in range(len(deck) - 1, 0, -1):
                j = self.rnd(0, i)
                deck[i], deck[j] = deck[j], deck[i]
            self.combo_deck = deck
        self.combo = self.combo_deck.pop(0)
        self.combo_n[self.combo] += 1

    def preseed(self, t):
        """Create the destination table and put rows into half of the
        partitions first (ids from PRESEED_BASE): append mode must keep them,
        replace mode must replace them. Returns their SELECT."""
        cfg, cl = self.cfg, self.cl
        sel = (f'SELECT toUInt64({PRESEED_BASE} + number) AS id, toDate(\'2019-03-01\') + number % '
               f'{max(cfg.nparts // 2, 1)} AS d, toUInt32(number % 1000) AS k, concat(\'pre \', toString(number)) '
               'AS s, if(number % 3 = 0, NULL, toInt32(number % 1000)) AS n, '
               f'arrayMap(x -> toUInt16(x), range(number % 3)) AS a FROM numbers({max(cfg.rows // 50, 20)})')
        for n in cl.dst_nodes:
            self.q(n, f'CREATE TABLE chaos.{t} (id UInt64, d Date, k UInt32, s String, n Nullable(Int32), '
                      f'a Array(UInt16)) {self.engine(t)}')
        for sh in range(1, cl.dst_shards + 1):
            self.q(cl.dst_replica_nodes(sh)[0], f'INSERT INTO chaos.{t} SELECT * FROM ({sel}) '
                                                f'WHERE id % {cl.dst_shards} = {sh - 1}')
        return sel

    # ------------------------------------------------------------ workers

    def start_worker(self, point=None, freeze=None):
        self.w_count += 1
        tag = point or (f'{freeze}-stop' if freeze else None)
        base = os.path.join(self.run, 'workers', f'w{self.w_count}' + (f'-{tag}' if tag else ''))
        args = [self.bin, '--config', self.zkx, '--task-path', self.task_path, '--base-dir',
                os.path.join(self.run, 'logs'), '--retry-delay-ms', '200', '--min-piece-rows',
                self.cfg.min_piece_rows[self.rng.randrange(len(self.cfg.min_piece_rows))],
                '--log-level', self.cfg.log_level,
                '--routing', 'filter' if self.combo[1] == 'pull-filter' else 'auto'] + \
            (['--fault-point', point] if point else []) + (['--fault-point', f'{freeze}:stop'] if freeze else [])
        ts = time.strftime('%Y%m%d%H%M%S', time.localtime(time.time() - 2))
        with open(base + '.out', 'wb') as out:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        w = W(self.w_count, p, point, base, ts)
        w.freeze = freeze
        self.running.append(w)
        self.round_workers.append(w)
        if point:
            self.armed[point] += 1
        self.last_start = self.now()
        self.log(f'worker {w.name} (pid {w.pid}) started' + (f' with --fault-point {point}' if point else '')
                 + (f' with --fault-point {freeze}:stop' if freeze else ''))
        return w

    def logdir(self, w):
        """The worker's log directory chcopier_<time>_<pid> (None if not
        there yet). PIDs get reused: the newest named no earlier than its start."""
        best = None
        for d in sorted(glob.glob(os.path.join(self.run, 'logs', f'chcopier_*_{w.pid}'))):
            ts = os.path.basename(d)[len('chcopier_'):].split('_')[0]
            if re.fullmatch(r'[0-9]{14}', ts) and ts >= w.ts:
                best = d
        return best

    def last_error(self, w):
        # main() prints the error that ended the run on stderr as "chcopier: ..."
        out = read(w.out).splitlines()
        lines = [x for x in out if x.startswith('chcopier: ')]
        if lines:
            return lines[-1]
        d = self.logdir(w)
        if d:
            err = read(os.path.join(d, 'log.err.log')).splitlines()
            e = [x for x in err if re.match(r'^[0-9-]+ [0-9:.]+ [0-9]+ E ', x)]
            if e or err:
                return (e or err)[-1]
        return out[-1] if out else ''

    def on_exit(self, w, rc):
        d = self.logdir(w)
        out = read(w.out)
        m = re.search(r'.*(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:).*', out)
        if m:
            self.problem(f'worker {w.name} (pid {w.pid}) exit {rc}: sanitizer report in {w.out}: {m.group(0)}')
        if 'Suppressions used' in out:
            self.zk_leaks += 1
        if w.point:
            self.armed[w.point] -= 1
        if d:
            self.expiries += read(os.path.join(d, 'log.log')).count('ZooKeeper session expired')
        if w.killed:
            self.exits['killed'] += 1
            if rc == 137:
                self.log(f'worker {w.name} (pid {w.pid}) killed (exit {rc})')
            elif rc in (0, 99):
                self.log(f'worker {w.name} (pid {w.pid}) exited {rc} before the kill landed')
            else:
                self.problem(f'worker {w.name} (pid {w.pid}) was killed but exited {rc}')
            return
        if rc == 0:
            self.exits['ok'] += 1
            self.task_done = True
            self.log(f'worker {w.name} (pid {w.pid}) exit 0'
                     + (f' (fault point {w.point} not reached)' if w.point else '')
                     + (f' (freeze point {w.freeze} not reached)' if w.freeze and not w.froze else ''))
        elif rc == 99:
            if w.point and d and f"fault point '{w.point}' reached" in read(os.path.join(d, 'log.err.log')):
                self.exits['point'] += 1
                self.fired[w.point] += 1
                self.kind_n['point'] += 1
                self.injected += 1
                self.log(f"FAULT point: worker {w.name} (pid {w.pid}) died at '{w.point}' (fault {self.injected})")
            else:
                self.exits['other'] += 1
                self.problem(f'worker {w.name} (pid {w.pid}) exit 99 without its fault point ({w.point or "none"}) '
                             f'in {d}/log.err.log')
        elif rc == 1:
            self.exits['fail'] += 1
            msg = self.last_error(w)
            self.exit1_msgs.append(f'{w.name}: {msg}')
            self.log(f'worker {w.name} (pid {w.pid}) exit 1 (runtime failure): {msg}')
        else:
            self.exits['other'] += 1
            tail = ' '.join(out.splitlines()[-3:])
            self.problem(f'worker {w.name} (pid {w.pid}) exit {rc} (crash?): {tail}')
        # a worker that was SIGSTOPped past its session timeout and then ran
        # on to exit by itself must have noticed the expiry
        if w.was_stopped and rc in (0, 1):
            self.session_checked += 1
            if d and 'ZooKeeper session expired' in read(os.path.join(d, 'log.log')):
                self.session_noticed += 1
            elif rc == 0:
                self.problem(f'worker {w.name} (pid {w.pid}) was stopped past its session timeout, finished '
                             f"(exit 0) and never logged 'ZooKeeper session expired' ({d})")
            else:
                self.note(f'worker {w.name} (pid {w.pid}) was stopped past its session timeout and exited 1 '
                          f"without resuming ('{self.last_error(w)[:200]}')")

    def reap(self):
        keep = []
        for w in self.running:
            rc = w.rc()
            if rc is None:
                keep.append(w)
                continue
            w.stop_until = None
            self.on_exit(w, rc)
        self.running = keep

    def resume(self, w):
        try:
            os.kill(w.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        ms = int((self.now() - w.stop_at) * 1000)
        w.stop_until = None
        if ms >= self.cfg.session_ms + 1000:
            w.was_stopped = True
            self.log(f'worker {w.name} (pid {w.pid}) SIGCONT after {ms} ms')
        else:
            self.log(f'worker {w.name} (pid {w.pid}) SIGCONT after {ms} ms (early: the run is ending)')

    def resume_due(self):
        for w in self.running:
            if w.freeze and not w.froze and self.self_stopped(w):
                # it stopped itself at its freeze point: keep it stopped
                # past its session timeout, as `session` does
                w.froze = True
                d = self.rnd(self.cfg.session_ms + 1000, self.cfg.session_ms + 3000)
                w.stop_at = self.now()
                w.stop_until = w.stop_at + d / 1000
                self.injected += 1
                self.kind_n['freeze'] += 1
                self.froze_at[w.freeze] += 1
                self.log(f"FAULT freeze: worker {w.name} (pid {w.pid}) stopped itself at '{w.freeze}', thawed in "
                         f'{d} ms (fault {self.injected})')
            elif w.freeze and w.froze and w.stop_until is None and self.self_stopped(w):
                self.problem(f'worker {w.name} (pid {w.pid}) stopped itself at {w.freeze} a second time')
                os.kill(w.pid, signal.SIGCONT)
            if w.stop_until is not None and self.now() >= w.stop_until:
                self.resume(w)

    @staticmethod
    def self_stopped(w):
        try:
            with open(f'/proc/{w.pid}/stat') as f:
                return f.read().rsplit(')', 1)[1].split()[0] == 'T'
        except (OSError, IndexError):
            return False

    def resume_all(self):
        for w in self.running:
            if w.stop_until is not None:
                self.resume(w)

    def stopped(self):
        return [w for w in self.running if w.stop_until is not None]

    def pick_worker(self, session=False):
        """A running worker not stopped and not armed (with SESSION: one that
        already has its ZooKeeper session)."""
        cands = []
        for w in self.running:
            if w.stop_until is not None or w.point or w.freeze:
                continue
            if session:
                d = self.logdir(w)
                # worker_run logs this once its session is open
                if not d or 'starting on task' not in read(os.path.join(d, 'log.log')):
                    continue
            if w.rc() is None:
                cands.append(w)
        if not cands:
            return None
        return cands[self.rnd(0, len(cands) - 1)]

    def n_normal(self):
        return sum(1 for w in self.running if not w.point and not w.freeze)

    # ------------------------------------------------------------ infrastructure faults

    def _helper(self, kind, steps):
        """Run scripts/cluster STEPS [(argv, env, sleep_after)] in a thread,
        output to <run>/infra.log."""
        result = {}

        def body():
            rc = 0
            with open(os.path.join(self.run, 'infra.log'), 'a') as f:
                for argv, env, pause in steps:
                    f.write(f"== {time.strftime('%H:%M:%S')} {' '.join(argv[1:2] + argv[3:])}\n")
                    f.flush()
                    rc = subprocess.run(argv, stdout=f, stderr=f, env=dict(os.environ, **env)).returncode
                    if rc:
                        break
                    time.sleep(pause)
                f.write(f"== {time.strftime('%H:%M:%S')} {kind} helper done (exit {rc})\n")
            result['rc'] = rc
        t = threading.Thread(target=body, daemon=True)
        t.start()
        self.infra = (t, kind, result)

    def infra_kind(self):
        return self.infra[1] if self.infra else ''

    def infra_busy(self):
        if self.infra:
            t, kind, result = self.infra
            if t.is_alive():
                return True
            t.join()
            if result.get('rc'):
                self.problem(f'infrastructure: {kind} helper failed (exit {result.get("rc")}), '
                             f'see {self.run}/infra.log')
                self.restore_infra()
            else:
                self.log(f'{kind} back up')
            self.infra = None
        return False

    def restore_infra(self):
        """Bring back whatever is down (after a failed helper)."""
        with open(os.path.join(self.run, 'infra.log'), 'a') as f:
            pid = read_pid(self.cl.zk_pid_file)
            if not pid or not alive(pid):
                if subprocess.run([CLUSTER, 'start-zk', self.cl.dir], stdout=f, stderr=f).returncode:
                    return False
            for n in self.cl.dst_nodes:
                pid = read_pid(n.pid_file)
                if not pid or not alive(pid):
                    if subprocess.run([CLUSTER, 'start-node', self.cl.dir, n.name], stdout=f, stderr=f).returncode:
                        return False
        return True

    def infra_wait(self):
        while self.infra_busy():
            self.reap()
            self.resume_due()
            time.sleep(0.2)

    def fault_node(self):
        nodes = self.cl.dst_nodes
        node = nodes[self.rnd(0, len(nodes) - 1)].name
        sig = 'KILL' if self.rnd(0, 1) else 'TERM'
        down = self.rnd(500, 3000)
        self.injected += 1
        self.kind_n['node'] += 1
        self.log(f'FAULT node: restart {node} (SIG{sig}, down {down} ms) (fault {self.injected})')
        self._helper(f'node {node}', [([CLUSTER, 'stop-node', self.cl.dir, node], {'CHC_STOP_SIGNAL': sig},
                                       down / 1000), ([CLUSTER, 'start-node', self.cl.dir, node], {}, 0)])

    def fault_zk(self):
        down = self.rnd(self.cfg.session_ms + 1000, self.cfg.session_ms + 3000)
        self.injected += 1
        self.kind_n['zk'] += 1
        self.log(f'FAULT zk: stop ZooKeeper for {down} ms (fault {self.injected})')
        self._helper('zk', [([CLUSTER, 'stop-zk', self.cl.dir], {}, down / 1000),
                            ([CLUSTER, 'start-zk', self.cl.dir], {}, 0)])

    # ------------------------------------------------------------ worker faults

    def fault_kill(self):
        w = self.pick_worker()
        if not w:
            return False
        w.killed = True
        try:
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.injected += 1
        self.kind_n['kill'] += 1
        self.log(f'FAULT kill: kill -9 worker {w.name} (pid {w.pid}) (fault {self.injected})')
        self.start_worker()
        return True

    def status_json(self, timeout):
        try:
            r = subprocess.run([self.bin, 'status', '--json', '--config', self.zkx, '--task-path', self.task_path],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, 'timed out'
        if r.returncode != 0:
            return None, r.stdout + r.stderr
        try:
            return json.loads(r.stdout), ''
        except ValueError as e:
            return None, f'bad JSON: {e}'

    def movers(self):
        """PIDs of workers holding a partition's move lock (status --json)."""
        s, _ = self.status_json(10)
        if not s:
            return []
        return [int(f['worker'].rsplit('_', 1)[-1]) for t in s['tables'] for f in t['in_flight']
                if f['what'] == 'move' and f['worker'].rsplit('_', 1)[-1].isdigit()]

    def fault_session(self):
        # a ZooKeeper restart would restore the session with a fresh timeout
        if self.infra_kind() == 'zk':
            return False
        w = self.pick_worker(session=True)
        if not w:
            return False
        what = 'worker'
        # half of the time, pause a worker in the middle of a partition move
        if self.rnd(0, 1):
            for pid in self.movers():
                m = next((x for x in self.running if x.pid == pid), None)
                if m and m.stop_until is None and not m.point and not m.freeze:
                    w, what = m, 'mover'
                    break
        d = self.rnd(self.cfg.session_ms + 1000, self.cfg.session_ms + 3000)
        try:
            os.kill(w.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        w.stop_at = self.now()
        w.stop_until = w.stop_at + d / 1000
        self.injected += 1
        self.kind_n['session'] += 1
        self.log(f'FAULT session: SIGSTOP {what} {w.name} (pid {w.pid}) for {d} ms (fault {self.injected})')
        return True

    def fault_freeze(self):
        """Start a worker that stops itself at a freeze point (the least
        frozen at); counted when it has stopped (resume_due)."""
        if any(w.freeze and not w.froze for w in self.running):
            return False
        p = min(FREEZE_POINTS, key=lambda x: self.froze_at[x])
        self.start_worker(freeze=p)
        return True

    def next_point(self, unfired_only=False):
        """The least-fired point with no armed worker running."""
        best = None
        for p in POINTS:
            if self.armed[p] > 0 or (unfired_only and self.fired[p] > 0):
                continue
            if best is None or self.fired[p] < self.fired[best]:
                best = p
        return best

    def fault_point(self, unfired_only=False):
        if sum(self.armed.values()) >= 2:
            return False
        p = self.next_point(unfired_only)
        if not p:
            return False
        self.attempts_point += 1
        self.start_worker(p)
        return True

    def unfired(self):
        """(points that have not fired yet, those of them with no armed worker)."""
        n = [p for p in POINTS if self.fired[p] == 0]
        return len(n), sum(1 for p in n if self.armed[p] == 0)

    def deal(self):
        """A new shuffled cycle of the enabled kinds."""
        cards = []
        if self.kind_on('point'):
            cards += ['point'] * len(POINTS)
        if self.kind_on('kill'):
            cards += ['kill', 'kill']
        if self.kind_on('session'):
            cards += ['session', 'session']
        if self.kind_on('freeze'):
            cards += ['freeze', 'freeze']
        if self.kind_on('node'):
            cards.append('node')
        if self.kind_on('zk'):
            cards.append('zk')
        for i in range(len(cards) - 1, 0, -1):
            j = self.rnd(0, i)
            cards[i], cards[j] = cards[j], cards[i]
        self.deck = cards

    def inject(self):
        """One fault (or nothing if no kind fits right now)."""
        unfired, idle = self.unfired()
        if self.kind_on('point') and self.cfg.faults >= len(POINTS) and unfired > 0 and \
                self.cfg.faults - self.injected <= unfired:
            # the rest of the budget is reserved for points that never fired
            if idle > 0:
                self.fault_point(unfired_only=True)
            return
        for _ in range(4):
            if not self.deck:
                self.deal()
            if not self.deck:
                return
            card = self.deck.pop(0)
            if card == 'kill' and self.fault_kill():
                return
            if card == 'point' and self.fault_point():
                return
            if card == 'session' and self.fault_session():
                return
            if card == 'freeze' and self.fault_freeze():
                return
            if card == 'node' and not self.infra_busy():
                self.fault_node()
                return
            if card == 'zk' and not self.infra_busy() and not self.stopped():
                self.fault_zk()
                return
            # not possible right now: keep the card for later in this cycle
            self.deck.append(card)

    # ------------------------------------------------------------ status and checks

    def status_poll(self):
        """(every table done, progress text or '' when status failed)."""
        s, _ = self.status_json(20)
        if not s:
            return False, ''
        t = s['tables']
        done = bool(t) and all(x['state'] == 'done' for x in t)
        return done, ','.join(f"{x['partitions_done']}/{x['partitions_total']} partitions "
                              f"{x['pieces_done']}/{x['pieces_total']} pieces" for x in t)

    def stall_report(self):
        """What the running workers complain about (last distinct errors)."""
        c = Counter()
        for w in self.running:
            d = self.logdir(w)
            if not d:
                continue
            lines = [x for x in read(os.path.join(d, 'log.err.log')).splitlines()
                     if re.match(r'^[0-9-]+ [0-9:.]+ [0-9]+ [EW] ', x)][-3:]
            c.update(re.sub(r'^[0-9-]+ [0-9:.]+ [0-9]+ ', '', x) for x in lines)
        return [f'{n:7d} {x}' for x, n in c.most_common(5)]

    def status_full_ok(self):
        s, err = self.status_json(30)
        if not s:
            return f'status failed: {err}'
        bad = []
        if s['workers']:
            bad.append(f"workers still registered: {s['workers']}")
        for t in s['tables']:
            if t['state'] != 'done' or t['partitions_done'] != t['partitions_total'] or \
                    t['pieces_done'] != t['pieces_total'] or t['in_flight']:
                bad.append(f"table {t['name']}: {t}")
        return '; '.join(bad)

    def verify_round(self, t):
        """(checks passed, replicas late: the comparison with the source is
        done again at the end of the run)."""
        try:
            v = verify(self.cl, 'chaos.src', f'chaos.{t}', 'd', extra=self.round_extra, replica_wait=120,
                       defer_lagging=True)
        except QueryError as e:
            # a destination server just restarted may refuse a query for a
            # while: not a verdict on the copy; verified again at the end
            self.log(f'round {self.round} ({t}): cannot verify now ({str(e)[:200]}): verified again at the end '
                     'of the run')
            self.lagging.append((self.round, t, len(self.round_summary), self.round_extra))
            return True, True
        for p in v.problems:
            self.problem(f'round {self.round} ({t}): {p}')
        for note in v.notes:
            self.log(f'round {self.round} ({t}): {note}')
        if v.deferred:
            # ClickHouse 18.16's replication can stall for minutes after a
            # restart: verify this round again at the end of the run.
            late = ' '.join(sorted({n for n, _ in v.lagging}))
            self.log(f'round {self.round} ({t}): replicas {late} not caught up after 120 s: verified again at the '
                     'end of the run')
            self.lagging.append((self.round, t, len(self.round_summary), self.round_extra))
        elif not v.problems:
            self.log(f"round {self.round}: {len(v.source)} partitions: count and checksum equal the source's")
        ok = not v.problems
        # workers that died abruptly stay registered until their session expires
        end = self.now() + self.cfg.session_ms / 1000 + 6
        while True:
            x = self.status_full_ok()
            if not x:
                break
            if self.now() >= end:
                self.problem(f'round {self.round} ({t}): chcopier status: {x}')
                ok = False
                break
            time.sleep(0.5)
        return ok, v.deferred

    def wait_workers_exit(self, seconds):
        """Every worker exits once the task is done. A worker still SIGSTOPped
        stays so until its time is up: its session must really expire, and it
        must notice that and find the task done."""
        end = self.now() + seconds
        while self.running:
            self.resume_due()
            self.reap()
            if not self.running or self.interrupted:
                break
            if self.now() >= end:
                for w in self.running:
                    hang = os.path.join(self.run, 'workers', f'hang-{w.pid}.txt')
                    self.problem(f'worker {w.name} (pid {w.pid}) still running {seconds} s after the task was done '
                                 f'(hang); stacks in {hang}')
                    if shutil.which('gdb'):
                        with open(hang, 'w') as f:
                            subprocess.run(['gdb', '-p', str(w.pid), '-batch', '-ex', 'thread apply all bt'],
                                           stdout=f, stderr=f, stdin=subprocess.DEVNULL, timeout=120)
                    w.killed = True
                    os.kill(w.pid, signal.SIGKILL)
                time.sleep(0.5)
                self.reap()
                break
            time.sleep(0.2)

    # ------------------------------------------------------------ rounds

    def prepare(self):
        run, cfg = self.run, self.cfg
        for d in ('logs', 'workers', 'bin'):
            os.makedirs(os.path.join(run, d), exist_ok=True)
        self.bin = os.path.join(run, 'bin', 'chcopier')
        shutil.copy2(cfg.binary, self.bin)
        self.zkx = os.path.join(run, 'zookeeper.xml')
        text = re.sub(r'<session_timeout_ms>[0-9]+</session_timeout_ms>',
                      f'<session_timeout_ms>{cfg.session_ms}</session_timeout_ms>', read(self.cl.zookeeper_xml))
        if f'<session_timeout_ms>{cfg.session_ms}<' not in text:
            raise Usage(f'cannot set session_timeout_ms in {self.zkx}')
        taskxml.write(self.zkx, text)
        # Sanitizer builds: a report must be told apart from exit 1 (runtime failure).
        os.environ.setdefault('ASAN_OPTIONS', 'exitcode=86:detect_leaks=1')
        os.environ.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1')
        # libzookeeper 3.8.0's own leaks on a session closed with requests
        # unanswered (harness/lsan.supp): counted as a note, not as chcopier's.
        os.environ['ASAN_OPTIONS'] += ':fast_unwind_on_malloc=0'
        lsan = os.environ.get('LSAN_OPTIONS')
        os.environ['LSAN_OPTIONS'] = (f'{lsan}:' if lsan else '') + f'suppressions={LSAN_SUPP}:print_suppressions=1'

    def main_loop(self, run_id):
        cfg = self.cfg
        self.round = 0
        self.round_summary = []
        timed_out = stalled = False
        while True:
            self.round += 1
            table = f't{run_id}_r{self.round}'
            self.task_path = f'/chaos/{run_id}/r{self.round}'
            task = os.path.join(self.run, f'task-r{self.round}.xml')
            self.draw_combo()
            self.write_task(task, table)
            self.round_extra = self.preseed(table) if self.combo[0] == 'append' else None
            if self.combo[0] == 'replace':
                self.preseed(table)
            self.round_workers = []
            r = subprocess.run([self.bin, 'upload', '--config', self.zkx, '--task-path', self.task_path,
                                '--task-file', task], capture_output=True, text=True)
            if r.returncode != 0:
                raise Usage(f'upload of round {self.round} failed: {r.stdout}{r.stderr}')
            r_t0, r_f0 = self.now(), self.injected
            self.task_done = False
            self.log(f'round {self.round}: task {self.task_path} -> chaos.{table} '
                     f'({self.combo[0]}, {self.combo[1]})')
            for _ in range(cfg.nworkers):
                self.start_worker()
            next_fault = self.now() + self.rnd(cfg.gap_min, cfg.gap_max) / 1000
            last_status = last_progress = self.now()
            progress = ''
            while True:
                if self.interrupted:
                    self.problem(f'interrupted during round {self.round}')
                    break
                self.reap()
                self.resume_due()
                self.infra_busy()
                now = self.now()
                if not self.task_done and now - last_status >= 2:
                    last_status = now
                    done, st = self.status_poll()
                    now = self.now()
                    if done:
                        self.task_done = True
                        self.log(f'round {self.round}: status says done')
                    elif st and st != progress:
                        progress, last_progress = st, now
                    elif now - last_progress >= cfg.stall_s:
                        self.problem(f'round {self.round}: no progress for {cfg.stall_s} s '
                                     f'({progress or "status unavailable"}); workers report:')
                        for line in self.stall_report():
                            print(line, flush=True)
                            self.events.write(line + '\n')
                        stalled = True
                        break
                if self.task_done:
                    break
                if now >= self.deadline:
                    timed_out = True
                    self.problem(f'round {self.round}: task not done by the deadline ({cfg.deadline_s} s)')
                    break
                # keep CHAOS_WORKERS workers without a fault point running
                if self.n_normal() < cfg.nworkers and now - self.last_start >= 0.5:
                    self.start_worker()
                if now >= next_fault:
                    if self.attempts_point < 4 * cfg.faults + 12:
                        if self.injected < cfg.faults:
                            self.inject()
                        elif self.kind_on('point') and cfg.faults >= len(POINTS):
                            # budget spent: only points that never fired are still armed
                            if self.unfired()[1] > 0:
                                self.fault_point(unfired_only=True)
                    next_fault = self.now() + self.rnd(cfg.gap_min, cfg.gap_max) / 1000
                time.sleep(0.1)
            self.infra_wait()
            if timed_out or stalled or self.interrupted:
                why = 'interrupted' if self.interrupted else f'no progress for {cfg.stall_s} s' if stalled \
                    else 'deadline reached'
                self.round_summary.append(f'round {self.round}: chaos.{table} NOT DONE ({why})')
                break
            self.wait_workers_exit(cfg.exit_wait)
            if self.interrupted:
                self.problem(f"interrupted while round {self.round}'s workers were finishing")
                self.round_summary.append(f'round {self.round}: chaos.{table} not checked (interrupted)')
                break
            secs = int(self.now() - r_t0)
            how = f'{self.combo[0]}, {self.combo[1]}{self.round_routing()}'
            ok, lag = self.verify_round(table)
            head = f'round {self.round}: chaos.{table} ({how}) done in {secs} s with {self.injected - r_f0} faults'
            if ok and lag:
                self.round_summary.append(f'{head}: replicas late, checked at the end')
            elif ok:
                self.round_summary.append(f'{head}: verified')
                if not cfg.keep_tables:
                    self.drop(table)
            else:
                self.round_summary.append(f'{head}: CHECKS FAILED')
            self.log(self.round_summary[-1])
            if self.interrupted:
                self.problem(f'interrupted after round {self.round}')
                break
            unfired, _ = self.unfired()
            if self.injected >= cfg.faults and (unfired == 0 or cfg.faults < len(POINTS) or not self.kind_on('point')):
                break
            if self.attempts_point >= 4 * cfg.faults + 12:
                self.problem(f'fault points armed {self.attempts_point} times and still not all fired')
                break
            if self.round >= cfg.max_rounds:
                break
            if self.now() >= self.deadline:
                self.problem(f'deadline reached with {self.injected} of {cfg.faults} faults injected')
                break

    def round_routing(self):
        """How the round's workers routed (from their logs), as a suffix for
        the round's line; a round drawn pull-distributed where no worker
        routed by Distributed is a problem (the draw would be a lie)."""
        dist = filt = fell = 0
        for w in self.round_workers:
            d = self.logdir(w)
            text = read(os.path.join(d, 'log.log')) if d else ''
            dist += 'routing distributed:' in text
            filt += 'routing filter:' in text
            fell += 'routing by filter from now on' in text
        self.routing_n.update({'distributed': dist, 'filter': filt, 'fallback': fell})
        if self.combo[1] == 'pull-distributed' and not dist:
            self.problem(f'round {self.round}: drawn pull-distributed, but no worker routed by Distributed')
        if self.combo[1] == 'pull-filter' and dist:
            self.problem(f'round {self.round}: drawn pull-filter, but {dist} worker(s) routed by Distributed')
        return f'; workers routing distributed {dist}, filter {filt}, fell back {fell}'

    def drop(self, table):
        for n in self.cl.dst_nodes:
            try:
                self.q(n, f'DROP TABLE IF EXISTS chaos.{table}')
            except QueryError:
                pass

    def finish_workers(self):
        self.resume_all()
        self.reap()
        for w in self.running:
            w.killed = True
            try:
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)
        for w in self.running:
            w.popen.wait()
        self.reap()

    def recheck_lagging(self):
        """Rounds whose replicas had not caught up when they were checked:
        verify them again, in full, now (waiting up to CHAOS_REPLICA_WAIT s
        for the replicas). A pass means ClickHouse replication was late;
        anything else is a problem and the table is kept."""
        for rnd_, t, idx, extra in self.lagging:
            t0 = self.now()
            line = self.round_summary[idx]
            try:
                v = verify(self.cl, 'chaos.src', f'chaos.{t}', 'd', extra=extra, replica_wait=self.cfg.replica_wait)
            except QueryError as e:
                self.problem(f'round {rnd_} ({t}), at the end of the run: cannot verify: {e}')
                self.round_summary[idx] = line.replace('replicas late, checked at the end', 'CHECKS FAILED')
                continue
            if v:
                self.note(f'round {rnd_} ({t}): replicas were late (ClickHouse replication); verified at the end of '
                          f'the run ({int(self.now() - t0)} s more)')
                self.replicas_late += 1
                self.round_summary[idx] = line.replace('replicas late, checked at the end', 'replicas late: verified')
                if not self.cfg.keep_tables:
                    self.drop(t)
            else:
                for p in v.problems:
                    self.problem(f'round {rnd_} ({t}), at the end of the run: {p}')
                self.round_summary[idx] = line.replace('replicas late, checked at the end',
                                                       'replicas late: CHECKS FAILED')

    def summary(self, run_id):
        cfg = self.cfg
        total = int(self.now() - self.t_start)
        pts = ', '.join(f'{p} {self.fired[p]}' for p in POINTS)
        print(flush=True)
        print(f'==== chaos summary (run {run_id}, seed {cfg.seed}, {total} s, {self.round} round(s), '
              f'{cfg.rows} rows x {cfg.nparts} partitions, {cfg.nworkers} workers)')
        print(f'faults injected: {self.injected} of {cfg.faults}')
        print(f"  kill -9 worker:        {self.kind_n['kill']}")
        print(f"  fault point (fired):   {self.kind_n['point']} ({pts}); armed {self.attempts_point} times")
        print(f"  session expiry:        {self.kind_n['session']} (noticed by {self.session_noticed} of "
              f'{self.session_checked} stopped workers that exited by themselves)')
        fz = ', '.join(f'{p} {self.froze_at[p]}' for p in FREEZE_POINTS)
        print(f"  freeze at a point:     {self.kind_n['freeze']} ({fz})")
        print(f"  destination restart:   {self.kind_n['node']}")
        print(f"  ZooKeeper restart:     {self.kind_n['zk']}")
        print(f"freezes (session + freeze): {self.kind_n['session'] + self.kind_n['freeze']}; ZooKeeper session "
              f'expiries logged by workers: {self.expiries}')
        print('rounds per (mode, path): ' + ', '.join(f'{m} {p} {self.combo_n[(m, p)]}' for m, p in COMBOS))
        print(f"workers routing distributed: {self.routing_n['distributed']}, filter: {self.routing_n['filter']}, "
              f"fell back to filter: {self.routing_n['fallback']}")
        e = self.exits
        print(f"workers: {self.w_count} started; exit 0: {e['ok']}, killed: {e['killed']}, died at fault point: "
              f"{e['point']}, exit 1: {e['fail']}, other: {e['other']}")
        if self.exit1_msgs:
            print('exit 1 (runtime failure) reasons:')
            c = Counter()
            for m in self.exit1_msgs:
                m = re.sub(r'^w[0-9]+: ', '', m)
                m = re.sub(r'^[0-9TZ:. -]+', '', m)
                m = re.sub(r'[^ ]*chaos\.t[0-9a-f]+_r[0-9]+[^ ]*', '<path>', m)
                m = re.sub(r'after [0-9]+ ms', 'after N ms', m)
                c[m[:220]] += 1
            for m, n in c.most_common(15):
                print(f'  {n:7d} {m}')
        if self.zk_leaks:
            self.notes.append(f'{self.zk_leaks} worker(s) exited with the suppressed libzookeeper leak '
                              '(harness/lsan.supp: a session closed with requests unanswered)')
        print('\n'.join(self.round_summary))
        rounds_ok = sum(1 for x in self.round_summary if x.endswith(': verified'))
        lines = [f'run={run_id}', f'seed={cfg.seed}', f'seconds={total}', f'rounds={len(self.round_summary)}',
                 f'rounds_verified={rounds_ok}', f'faults={self.injected}']
        lines += [f'kind_{k}={self.kind_n[k]}' for k in KINDS_ALL]
        lines += [f'fired_{p}={self.fired[p]}' for p in POINTS]
        lines += [f'froze_{p}={self.froze_at[p]}' for p in FREEZE_POINTS]
        lines += [f'combo_{m}_{p.replace("-", "_")}={self.combo_n[(m, p)]}' for m, p in COMBOS]
        lines += [f'expiries={self.expiries}', f"routed_distributed={self.routing_n['distributed']}",
                  f"routed_filter={self.routing_n['filter']}", f"routing_fallbacks={self.routing_n['fallback']}"]
        lines += [f'session_noticed={self.session_noticed}', f'session_checked={self.session_checked}',
                  f'workers={self.w_count}', f"exit1={e['fail']}", f'problems={len(self.problems)}',
                  f'notes={len(self.notes)}', f'replicas_late={self.replicas_late}', f'zk_leaks={self.zk_leaks}',
                  f'failed={int(self.failed)}']
        taskxml.write(os.path.join(self.run, 'summary.env'), '\n'.join(lines) + '\n')
        if cfg.summary:
            shutil.copy(os.path.join(self.run, 'summary.env'), cfg.summary)
        if self.notes:
            print('notes (not failures):')
            for n in self.notes:
                print(f'  - {n}')
        if self.failed:
            print('problems:')
            for p in self.problems:
                print(f'  - {p}')
            print(f'result: FAILED (run files in {self.run})', flush=True)
            return 130 if self.interrupted else 1
        print('result: OK', flush=True)
        return 0


def run_chaos(cluster, cfg, own=False):
    """One chaos run on CLUSTER (up); the exit code. Names the run's files
    at the end unless the cluster is OWN (its directory is named then)."""
    # not from the seed: two runs with the same seed must not share tables
    run_id = os.urandom(4).hex()
    run = os.path.join(cluster.dir, f'chaos-{run_id}')
    os.makedirs(run, exist_ok=True)
    c = Chaos(cfg, cluster, run)

    def on_signal(signum, frame):
        c.interrupted = True
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        c.prepare()
        c.log(f'run {run_id}, seed {cfg.seed}: cluster {cluster.dir}, chcopier {cfg.binary} (copied to {c.bin})')
        c.log(f'settings: rows {cfg.rows}, partitions {cfg.nparts}, workers {cfg.nworkers}, faults {cfg.faults}, '
              f'deadline {cfg.deadline_s}s, session {cfg.session_ms}ms, gap {cfg.gap_min}..{cfg.gap_max}ms, '
              f"kinds: {' '.join(cfg.kinds)}")
        c.setup_source()
        c.main_loop(run_id)
        c.finish_workers()
        c.recheck_lagging()
        return c.summary(run_id)
    finally:
        for w in c.running:
            try:
                os.kill(w.pid, signal.SIGCONT)
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if c.infra:
            c.infra[0].join()
            c.restore_infra()
        for s, h in old.items():
            signal.signal(s, h)
        if not own:
            print(f'{PROG}: run files in {run}', flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1:
        print(f'usage: {PROG} [CLUSTER_DIR]', file=sys.stderr)
        return 2
    own = None
    try:
        cfg = Config()
        if argv:
            d = argv[0]
            if not os.path.isdir(d):
                raise Usage(f'no such directory: {d}')
            try:
                cluster = Cluster.load(os.path.realpath(d))
            except ClusterError as e:
                raise Usage(f'{e} (scripts/cluster up {d})') from None
            if not cluster.status()[0]:
                raise Usage(f'cluster in {d} is not fully up (scripts/cluster status {d})')
        else:
            own = tempfile.mkdtemp(prefix='chc-chaos.', dir='/tmp')
            cluster = Cluster(own)
            try:
                cluster.up()
            except ClusterError as e:
                raise Usage(f'cluster up failed: {e}') from None
    except Usage as e:
        print(f'{PROG}: {e}', file=sys.stderr)
        return 2
    rc = 1
    try:
        rc = run_chaos(cluster, cfg, own=bool(own))
    except Usage as e:
        print(f'{PROG}: {e}', file=sys.stderr)
        rc = 2
    finally:
        if own:
            cluster.down()
            if rc == 0 and not cfg.keep:
                shutil.rmtree(own, ignore_errors=True)
            else:
                print(f'{PROG}: cluster directory kept: {own}')
    return rc


if __name__ == '__main__':
    sys.exit(main())

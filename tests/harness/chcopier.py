"""harness.chcopier — owns running chcopier against a cluster: one-shot
commands (upload, status, plan, clean, a foreground worker) and background
workers, each with its stdout/stderr in a file under a work directory and
its logs under a --base-dir there. Also reading those logs back.

    cc = Chcopier(binary, cluster, workdir, data_path='pipe')
    cc.upload('/chc/t1', task_file)
    w = cc.worker('/chc/t1', '--min-piece-rows', '0')     # background
    assert w.wait(600) == 0
    s = cc.status('/chc/t1')                                # status --json

data_path: None (the default path, no flag) or 'pull'/'pipe', passed as
--data-path to every worker (not to upload/status/plan/clean).
"""

import glob
import itertools
import json
import os
import signal
import subprocess
import time

DEFAULT_TIMEOUT = 600



LSAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lsan.supp')


def zk_stall_env():
    """Sanitizer options for a worker whose ZooKeeper stalls: libzookeeper's own
    leaks on such a session are suppressed (lsan.supp), found by full stacks."""
    asan = os.environ.get('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=1')
    lsan = os.environ.get('LSAN_OPTIONS')
    return {'ASAN_OPTIONS': f'{asan}:fast_unwind_on_malloc=0',
            'LSAN_OPTIONS': (f'{lsan}:' if lsan else '') + f'suppressions={LSAN_SUPP}:print_suppressions=0'}

class Result:
    """A finished command: rc, out (stdout text), err (stderr text)."""

    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def __repr__(self):
        return f'Result(rc={self.rc}, err={self.err.strip()[:300]!r})'


class Worker:
    """A chcopier process running in the background."""

    def __init__(self, popen, args, out_path, base_dir):
        self.popen = popen
        self.args = args
        self.out_path = out_path          # stdout + stderr
        self.base_dir = base_dir
        self.pid = popen.pid

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout=DEFAULT_TIMEOUT):
        """The exit code; a worker still running after TIMEOUT s is killed
        (-9) and reported as None."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.popen.wait()
            return None

    def signal(self, sig):
        try:
            self.popen.send_signal(sig)
        except ProcessLookupError:
            pass

    def kill(self):
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)

    def stop(self):
        self.signal(signal.SIGSTOP)

    def cont(self):
        self.signal(signal.SIGCONT)

    def output(self):
        return read(self.out_path)

    def __repr__(self):
        return f'Worker(pid {self.pid}, {self.out_path})'


class Chcopier:
    def __init__(self, binary, cluster, workdir, *, zk_xml=None, data_path=None, env=None):
        self.binary = binary
        self.cluster = cluster
        self.workdir = workdir
        self.zk_xml = zk_xml or cluster.zookeeper_xml
        self.data_path = data_path if data_path not in (None, '', 'pull') else None
        self.env = dict(env or {})
        self._seq = itertools.count(1)
        self.workers = []
        os.makedirs(workdir, exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def _env(self, env):
        e = dict(os.environ)
        e.update(self.env)
        e.update(env or {})
        return e

    def run(self, *args, timeout=DEFAULT_TIMEOUT, env=None, cwd=None, stdin=None):
        """Run `chcopier ARGS` to completion; Result (rc None on timeout)."""
        argv = [self.binary, *map(str, args)]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               env=self._env(env), cwd=cwd, stdin=stdin or subprocess.DEVNULL)
            return Result(argv, p.returncode, p.stdout, p.stderr)
        except subprocess.TimeoutExpired as e:
            return Result(argv, None, _text(e.stdout), _text(e.stderr))

    def common(self, task_path, zk_xml=None):
        return ['--config', zk_xml or self.zk_xml, '--task-path', task_path]

    def upload(self, task_path, task_file, *extra, check=True, zk_xml=None):
        r = self.run('upload', *self.common(task_path, zk_xml), '--task-file', task_file, *extra)
        if check:
            assert r.rc == 0, f'upload of {task_file} to {task_path} failed: {r}'
        return r

    def status(self, task_path, *, check=True, zk_xml=None, timeout=60):
        """status --json, parsed (None when it failed and CHECK is false)."""
        r = self.run('status', '--json', *self.common(task_path, zk_xml), timeout=timeout)
        if r.rc != 0:
            assert not check, f'status of {task_path} failed: {r}'
            return None
        return json.loads(r.out)

    def worker_args(self, task_path, base_dir, extra, zk_xml=None):
        args = [*self.common(task_path, zk_xml), '--base-dir', base_dir]
        if self.data_path:
            args += ['--data-path', self.data_path]
        return args + [str(a) for a in extra]

    def work(self, task_path, *extra, base_dir='logs', timeout=DEFAULT_TIMEOUT, env=None, zk_xml=None):
        """A worker in the foreground: Result (rc None if it ran past
        TIMEOUT and was killed)."""
        return self.run(*self.worker_args(task_path, self.path(base_dir), extra, zk_xml),
                        timeout=timeout, env=env)

    def worker(self, task_path, *extra, base_dir='logs', env=None, zk_xml=None, name=None):
        """Start a worker in the background; its output goes to
        <workdir>/<name>.out (default w<N>.out)."""
        out = self.path(f'{name or "w%d" % next(self._seq)}.out')
        argv = [self.binary, *self.worker_args(task_path, self.path(base_dir), extra, zk_xml)]
        with open(out, 'wb') as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 env=self._env(env))
        w = Worker(p, argv, out, self.path(base_dir))
        self.workers.append(w)
        return w

    def kill_all(self):
        for w in self.workers:
            if w.alive():
                w.kill()
                w.popen.wait()

    def logs(self, base_dir='logs', name='log.log'):
        """Every worker's NAME under BASE_DIR, concatenated (in directory order)."""
        return log_text(self.path(base_dir), name)


def log_dirs(base_dir):
    return sorted(glob.glob(os.path.join(base_dir, 'chcopier_*')))


def log_text(base_dir, name='log.log'):
    return ''.join(read(os.path.join(d, name)) for d in log_dirs(base_dir))


def read(path):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def _text(b):
    if b is None:
        return ''
    return b.decode(errors='replace') if isinstance(b, bytes) else b


def wait_for(cond, timeout, interval=0.2):
    """Poll COND every INTERVAL s until it is true (its value) or TIMEOUT s
    passed (False)."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def built_driver(build_root, name):
    """The path of a C test driver built under <build>/tests (ch-smoke,
    pipe-smoke); fails the test when it was not built."""
    import pytest
    path = os.path.join(build_root, 'tests', name)
    if not os.access(path, os.X_OK):
        pytest.fail(f'{path} not built (ninja -C {build_root} tests/{name})')
    return path

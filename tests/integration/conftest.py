"""tests/integration/conftest.py — owns the fixtures of the integration
suite: real local clusters (harness.cluster: ZooKeeper + ClickHouse servers
started here and stopped by PID; no mocks), the chcopier binary, per-module
work directories, the data-path parametrization, and the rule that a skipped
test counts as failed unless it is listed in EXPECTED_SKIPS.

One test module = one cluster (module scope). A module asks for its layout
with CLUSTER_LAYOUT = dict(src_shards=2, dst_shards=2, dst_replicas=2,
dst_weights=(7, 4)) or, for one test, with indirect parametrization of
`cluster`; it runs every test once per data path with DATA_PATHS = ['pull',
'pipe'] (a fresh cluster each), and needs more clusters via cluster_factory.

Work directories are /tmp/chc-it-<module>[-<path>].XXXXXX (cluster/ and
work/ inside), removed after a module whose tests all passed, kept (and
named in the output) otherwise or with CHC_KEEP_TMP=1.

Env: CHCOPIER (the binary; default $CHC_BUILD_ROOT/chcopier),
CHC_BUILD_ROOT (default build-test, else build), CHC_KEEP_TMP.
Option: --chc-summary FILE writes "passed=N failed=N" for scripts/test
(harness.accounting).
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from harness import ROOT  # noqa: E402
from harness.chcopier import Chcopier  # noqa: E402
from harness.cluster import Cluster  # noqa: E402

# Tests that may be skipped without failing the run: node id (relative to
# tests/integration, e.g. 'test_zk_stall.py::test_destination_exact') ->
# reason. Anything else that skips is counted as a failure by scripts/test
# (and makes pytest exit non-zero): a skip must never hide a missing check.
EXPECTED_SKIPS = {}


def _build_root():
    b = os.environ.get('CHC_BUILD_ROOT')
    if b:
        return b
    for d in ('build-test', 'build'):
        if os.path.isdir(os.path.join(ROOT, d)):
            return os.path.join(ROOT, d)
    return os.path.join(ROOT, 'build')


BUILD = _build_root()
CHCOPIER = os.environ.get('CHCOPIER') or os.path.join(BUILD, 'chcopier')


def pytest_generate_tests(metafunc):
    paths = getattr(metafunc.module, 'DATA_PATHS', None)
    if paths and 'data_path' in metafunc.fixturenames:
        metafunc.parametrize('data_path', paths, scope='module')


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Run a module's tests in the order they are written, all of one data
    path before the next (pytest's own reordering for parametrized fixtures
    interleaves them, which would bring the module's cluster up again)."""
    modules = {}
    for it in items:
        modules.setdefault(it.module.__name__, len(modules))

    def key(ipos):
        i, it = ipos
        paths = getattr(it.module, 'DATA_PATHS', None) or [None]
        dp = it.callspec.params.get('data_path') if hasattr(it, 'callspec') else None
        line = it.function.__code__.co_firstlineno if hasattr(it, 'function') else 0
        return modules[it.module.__name__], paths.index(dp) if dp in paths else 0, line, i
    items[:] = [it for _, it in sorted(enumerate(items), key=key)]


@pytest.fixture(scope='module')
def data_path():
    """The data path every copy of the module uses (None: chcopier's default)."""
    return None


def _need(*tools):
    for t in tools:
        if not shutil.which(t) and not os.access(f'/usr/sbin/{t}', os.X_OK):
            pytest.skip(f'{t} not installed (scripts/setup)')


@pytest.fixture(scope='session')
def chcopier_bin():
    if not os.access(CHCOPIER, os.X_OK):
        pytest.fail(f'chcopier binary missing at {CHCOPIER} (ninja -C {BUILD})')
    return CHCOPIER


@pytest.fixture(scope='session')
def build_root():
    return BUILD


class _Workdir:
    """One module's (and data path's) directory under /tmp."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f'chc-it-{name}.', dir='/tmp')
        self.failed = False

    def sub(self, *parts):
        p = os.path.join(self.path, *parts)
        os.makedirs(p, exist_ok=True)
        return p


_workdirs = {}


@pytest.fixture(scope='module')
def module_dir(request, data_path):
    name = request.module.__name__.split('.')[-1].replace('test_', '', 1)
    if data_path:
        name += f'-{data_path}'
    key = (request.module.__name__, data_path)
    if key in _workdirs:
        pytest.fail(f'{name}: module fixtures set up twice (test order)')
    wd = _Workdir(name)
    _workdirs[key] = wd
    yield wd
    if wd.failed or os.environ.get('CHC_KEEP_TMP'):
        print(f'\n# logs kept in {wd.path}')
    else:
        shutil.rmtree(wd.path, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        dp = item.callspec.params.get('data_path') if hasattr(item, 'callspec') else None
        wd = _workdirs.get((item.module.__name__, dp))
        if wd:
            wd.failed = True


@pytest.fixture(scope='module')
def cluster_factory(module_dir):
    """make(name='cluster', **layout) -> a Cluster that is up (torn down at
    the end of the module)."""
    made = []

    def make(name='cluster', **layout):
        _need('clickhouse-server', 'java')
        c = Cluster(os.path.join(module_dir.path, name), **layout)
        made.append(c)
        try:
            c.up()
        except Exception:
            module_dir.failed = True
            raise
        return c

    yield make
    for c in made:
        c.down()


@pytest.fixture(scope='module')
def cluster(request, cluster_factory, data_path):
    """The module's cluster: layout from indirect parametrization, else the
    module's CLUSTER_LAYOUT, else 2 source shards and 2 x 2 destination."""
    layout = getattr(request, 'param', None) or getattr(request.module, 'CLUSTER_LAYOUT', {})
    return cluster_factory(**layout)


@pytest.fixture(scope='module')
def chcopier(chcopier_bin, cluster, module_dir, data_path):
    cc = Chcopier(chcopier_bin, cluster, module_dir.sub('work'), data_path=data_path)
    yield cc
    cc.kill_all()


# ---------------------------------------------------------------- accounting

# One outcome per test, unexpected skips counted as failed, --chc-summary.
from harness.accounting import (  # noqa: E402,F401
    pytest_addoption, pytest_configure, pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary)

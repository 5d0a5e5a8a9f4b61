"""ch pipes end to end (a source SELECT streamed through this process into a
destination INSERT, src/ch/pipe.c): the C driver <build>/tests/pipe-smoke (TAP;
the sanitizer build) from s1 to d1r1 as user chc, then a few of its tests
from s2 to d2r1. The driver proves: 2 M rows of mixed columns arrive with
equal count() and sum(cityHash64(...)), compressed and plain; small results
arrive although this ClickHouse loses small compress=1 results; 8 pipes at
once on one loop; a source exception mid-stream fails the pipe as the
source's CHC_ECH_EXCEPTION and leaves 0 rows; a destination error aborts the
source within seconds; cancel and ch_client_free mid-stream leave 0 rows;
rate limits hold within 20 %; 30 pipes of mixed outcomes each call back
exactly once; (ASan) no leaks. Then an optimised driver (no sanitizer
inflating RSS) checks that peak RSS stays under 16 MiB while 20 M rows go
through. It interrupts queries but kills no server; afterwards no query of
the driver may still run on s1 or d1r1.

Env: CHC_PIPE_RELEASE_SMOKE (an optimised pipe-smoke to use instead of
building one in the module's directory).
"""

import os
import subprocess

import pytest

from harness import ROOT
from harness.chcopier import built_driver, wait_for


@pytest.fixture(scope='module')
def smoke(build_root):
    return built_driver(build_root, 'pipe-smoke')


@pytest.fixture(scope='module')
def release_smoke(module_dir):
    given = os.environ.get('CHC_PIPE_RELEASE_SMOKE')
    if given:
        return given
    rel = os.path.join(module_dir.path, 'release')
    log = os.path.join(module_dir.path, 'release.log')
    with open(log, 'w') as f:
        ok = subprocess.run(['meson', 'setup', rel, ROOT, '--buildtype=release', '-Db_sanitize=none',
                             '-Dintegration=false', '-Dwerror=false'], stdout=f, stderr=f).returncode == 0 \
            and subprocess.run(['ninja', '-C', rel, 'tests/pipe-smoke'], stdout=f, stderr=f).returncode == 0
    if not ok:
        pytest.fail('cannot build the optimised driver:\n' + ''.join(open(log).readlines()[-20:]))
    return os.path.join(rel, 'tests', 'pipe-smoke')


def run_smoke(binary, cluster, src, dst, *tests):
    env = dict(os.environ, CH_PIPE_HOST='127.0.0.1', CH_PIPE_SRC_PORT=str(cluster.node(src).http),
               CH_PIPE_DST_PORT=str(cluster.node(dst).http), CH_PIPE_USER='chc', CH_PIPE_PASSWORD='chcpass')
    r = subprocess.run([binary, *tests], env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    print(out)
    failed = [line for line in r.stdout.splitlines() if line.startswith('not ok')]
    assert r.returncode == 0 and not failed, \
        f'{os.path.basename(binary)} {src} -> {dst} exit {r.returncode}:\n' + '\n'.join(failed or out.splitlines()[-30:])


def test_pipe_smoke_s1_to_d1r1(smoke, cluster):
    run_smoke(smoke, cluster, 's1', 'd1r1')


def test_pipe_smoke_other_servers(smoke, cluster):
    """Other servers, a few tests: nothing is tied to one pair of nodes."""
    run_smoke(smoke, cluster, 's2', 'd2r1', 'small_results_arrive_whatever_the_server',
              'source_exception_mid_stream_fails_both', 'destination_error_aborts_source')


def test_peak_rss_bounded_without_sanitizers(release_smoke, cluster):
    run_smoke(release_smoke, cluster, 's1', 'd1r1', 'rss_stays_bounded_over_20m_rows')


@pytest.mark.parametrize('node', ['s1', 'd1r1'])
def test_no_query_left_running(cluster, node):
    """Aborted transfers end server-side when the servers next touch the
    closed connections; after that none of ours may be left."""
    sql = ("SELECT count() FROM system.processes WHERE (query LIKE '%chc_pipe%' OR query LIKE "
           "'%chcopier_probe%' OR query LIKE '%FROM numbers(%') AND query NOT LIKE '%system.processes%'")
    left = []
    assert wait_for(lambda: left.append(cluster.q(node, sql)) or left[-1] == '0', 10), \
        f'{left[-1]} queries of pipe-smoke still running on {node} after 10 s'

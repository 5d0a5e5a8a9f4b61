"""The ClickHouse HTTP client (src/ch/client.c, query.c) end to end: the C driver
<build>/tests/ch-smoke (TAP) runs against node s1 as user chc, then a few of
its tests against d1r1. The driver proves real concurrency (20 sleeps on one
loop take ~one sleep), exception/auth/connection/timeout classification,
prompt asynchronous cancel, query_id, settings, database, INSERT bodies, a
2M-row SELECT intact, CHC_ETOOBIG, late exceptions in streamed bodies,
masking of secrets, and (under ASan) no leaks with uv_loop_close() == 0
after every test. It interrupts queries (cancel, timeout, client free) but
kills no server; afterwards no query of ours may still run on s1.
"""

import os
import subprocess

import pytest

from harness.chcopier import built_driver, wait_for


@pytest.fixture(scope='module')
def smoke(build_root):
    return built_driver(build_root, 'ch-smoke')


def run_smoke(smoke, cluster, node, *tests):
    env = dict(os.environ, CH_SMOKE_HOST='127.0.0.1', CH_SMOKE_PORT=str(cluster.node(node).http),
               CH_SMOKE_USER='chc', CH_SMOKE_PASSWORD='chcpass')
    r = subprocess.run([smoke, *tests], env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    print(out)
    failed = [line for line in r.stdout.splitlines() if line.startswith('not ok')]
    assert r.returncode == 0 and not failed, f'ch-smoke against {node} exit {r.returncode}:\n' + \
        '\n'.join(failed or out.splitlines()[-30:])


def test_ch_smoke_s1(smoke, cluster):
    run_smoke(smoke, cluster, 's1')


def test_ch_smoke_second_server(smoke, cluster):
    """A second server, a few tests: nothing is tied to one node's state."""
    run_smoke(smoke, cluster, 'd1r1', 'concurrent_sleeps_overlap', 'insert_post_body_and_tsv_round_trip',
              'client_free_cancels_outstanding')


def test_no_query_left_running(cluster):
    """Cancelled/timed-out sleeps may still run server-side for up to 3 s
    (cancel only abandons the transfer); after that none may be left."""
    sql = ("SELECT count() FROM system.processes WHERE query_id LIKE 'chc-smoke-%' OR "
           "query LIKE '%sleep(%' AND query NOT LIKE '%system.processes%'")
    left = []
    assert wait_for(lambda: left.append(cluster.q('s1', sql)) or left[-1] == '0', 10), \
        f'{left[-1]} queries of ch-smoke still running on s1 after 10 s'

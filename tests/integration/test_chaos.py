"""scripts/chaos bounded for CI, with a fixed seed: several chcopier workers
copy a 30-partition table into a 2 x 2 ReplicatedMergeTree destination while
workers are killed (-9 and at every named fault point), paused past their
ZooKeeper session (by SIGSTOP, or stopped at a freeze point), and
destination servers restarted; rounds draw append or replace mode, the pull
path with Distributed or filter routing, or the pipe path; every round must end
with the destination equal to the source partition by partition, no
duplicated id, replicas in agreement and no staging table left.

ZooKeeper restarts ("zk") are left out of the CI run for now: with them a
round can stall on repeated connection loss after the restart (issue #6
notes); scripts/chaos runs them by default.

Env: CHC_CHAOS_FAULTS (24), CHC_CHAOS_ROWS (200000), CHC_CHAOS_DEADLINE (s,
600), CHC_CHAOS_KINDS ("kill point session node"), CHC_CHAOS_SEED (fixed:
SEED below; a test must not fail by chance, so CI replays one schedule).
"""

import os
import subprocess

import pytest

from harness import ROOT

SEED = 20261122
FAULTS = int(os.environ.get('CHC_CHAOS_FAULTS') or 24)
KINDS = (os.environ.get('CHC_CHAOS_KINDS') or 'kill point session freeze node').split()
# kinds that fire for certain once dealt (a freeze worker may find the task
# done before it reaches its point)
SURE = [k for k in KINDS if k != 'freeze']
COMBOS = ['append_pull_distributed', 'append_pull_filter', 'append_pipe', 'replace_pull_distributed',
          'replace_pull_filter', 'replace_pipe']
POINTS = ['after_claim', 'during_cleanup', 'after_insert', 'after_assemble', 'after_assembled_record',
          'after_replace']


@pytest.fixture(scope='module')
def chaos(cluster, chcopier_bin, module_dir):
    summary = os.path.join(module_dir.path, 'chaos-summary.env')
    out = os.path.join(module_dir.path, 'chaos.out')
    env = dict(os.environ, CHCOPIER=chcopier_bin, CHAOS_KINDS=' '.join(KINDS), CHAOS_FAULTS=str(FAULTS),
               CHAOS_ROWS=os.environ.get('CHC_CHAOS_ROWS') or '200000',
               CHAOS_DEADLINE=os.environ.get('CHC_CHAOS_DEADLINE') or '600', CHAOS_WORKERS='3',
               CHAOS_SUMMARY=summary, CHAOS_SEED=os.environ.get('CHC_CHAOS_SEED') or str(SEED))
    with open(out, 'w') as f:
        rc = subprocess.run([os.path.join(ROOT, 'scripts', 'chaos'), cluster.dir], stdout=f, stderr=subprocess.STDOUT,
                            env=env, timeout=1800).returncode
    text = open(out).read()
    # the run's timeline is long; show the summary (and problems)
    i = text.find('==== chaos summary')
    print(text[i:] if i >= 0 else text[-3000:])
    return dict(rc=rc, s=read_kv(summary), out=out,
                problems=[x for x in text.splitlines() if 'PROBLEM' in x or 'NOTE' in x][:20])


def read_kv(path):
    try:
        return dict(line.split('=', 1) for line in open(path).read().splitlines() if '=' in line)
    except OSError:
        return {}


def val(chaos, key):
    v = chaos['s'].get(key, '')
    return int(v) if v.isdigit() else None


def test_chaos_exits_0(chaos):
    assert chaos['rc'] == 0, f"full output: {chaos['out']}\n" + '\n'.join(chaos['problems'])


def test_summary_written(chaos):
    assert chaos['s'], 'no summary written'


def test_at_least_20_faults(chaos):
    assert (val(chaos, 'faults') or 0) >= 20, chaos['s']


@pytest.mark.parametrize('kind', SURE)
def test_fault_kind_injected(chaos, kind):
    assert (val(chaos, f'kind_{kind}') or 0) >= 1, chaos['s']


@pytest.mark.parametrize('point', POINTS)
def test_worker_died_at_fault_point(chaos, point):
    assert (val(chaos, f'fired_{point}') or 0) >= 1, chaos['s']


def test_every_round_verified(chaos):
    """Count and checksum per partition, no duplicate id, replicas agree, no staging."""
    assert (val(chaos, 'rounds') or 0) >= 1 and val(chaos, 'rounds') == val(chaos, 'rounds_verified'), chaos['s']


def test_rounds_counted_per_combination(chaos):
    """Every round copied in one of the six (mode, path) ways, from the deck."""
    assert sum(val(chaos, f'combo_{c}') or 0 for c in COMBOS) == val(chaos, 'rounds'), chaos['s']


def test_first_round_draws_routed(chaos):
    """Rounds drawn pull-distributed really route by Distributed (the run
    reports a problem otherwise); the seed's first six rounds hold one."""
    if (val(chaos, 'rounds') or 0) >= 6:
        assert (val(chaos, 'routed_distributed') or 0) >= 1, chaos['s']


def test_paused_workers_noticed_session_expiry(chaos):
    assert val(chaos, 'session_checked') is not None and \
        val(chaos, 'session_noticed') == val(chaos, 'session_checked'), chaos['s']


def test_no_problem_reported(chaos):
    """No crash, sanitizer report, hang, unexpected exit or deadline."""
    assert val(chaos, 'problems') == 0, '\n'.join(chaos['problems'])

"""scripts/collect-logs on fake local base-dirs (no cluster needed): text and
json worker logs, two sources with the same base name, a non-worker file that
must stay out. Checks the archive's layout and bytes, SUMMARY.txt's counts
and last error lines, and that bad usage exits 2 with one line and writes
nothing. Remote (HOST:/dir) sources are not tested.
"""

import filecmp
import os
import re
import shutil
import subprocess
import tarfile

import pytest

from harness import ROOT

COLLECT = os.path.join(ROOT, 'scripts', 'collect-logs')
W1 = 'chcopier_20261122002437_21230'
W2 = 'chcopier_20261122003001_21300'
W3 = 'chcopier_20261122010000_555'

W1_LOG = """\
2026-11-22 00:24:37.571 21230 I worker vm#1 starting on task /chc/t (logs in ./x)
2026-11-22 00:24:37.600 21230 D [hits] probing partitions
2026-11-22 00:24:38.001 21230 E [hits 201901 piece 1 shard 1] first error, must not be in the last 3
2026-11-22 00:24:38.100 21230 W [hits 201901 piece 1 shard 1] slow query, retrying
2026-11-22 00:24:39.200 21230 E [hits 201901 piece 2 shard 1] second error
2026-11-22 00:24:39.300 21230 I message that mentions E and W and "level":"error"
2026-11-22 00:24:40.300 21230 W zookeeper: connection loss, retrying
2026-11-22 00:24:41.000 21230 E third error
2026-11-22 00:24:42.000 21230 E [hits 201902 piece 0 shard 2] fourth error
2026-11-22 00:24:43.000 21230 T trace line
"""

W3_LOG = """\
{"time":"2026-11-22 01:00:00.001","level":"info","pid":555,"worker":"w3","message":"starting"}
{"time":"2026-11-22 01:00:01.001","level":"warning","pid":555,"table":"hits","message":"slow"}
{"time":"2026-11-22 01:00:02.001","level":"error","pid":555,"table":"hits","piece":1,"message":"json error one"}
{"time":"2026-11-22 01:00:03.001","level":"info","pid":555,"message":"quoted \\"level\\":\\"error\\" is not an error"}
{"time":"2026-11-22 01:00:04.001","level":"warning","pid":555,"message":"w2"}
{"time":"2026-11-22 01:00:05.001","level":"debug","pid":555,"message":"d"}
{"time":"2026-11-22 01:00:06.001","level":"warning","pid":555,"message":"w3"}
{"time":"2026-11-22 01:00:07.001","level":"error","pid":555,"error":"ECH_CONN","message":"json error two"}
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def collect(*args):
    r = subprocess.run([COLLECT, *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def one_line(err):
    return err != '' and err.rstrip('\n').count('\n') == 0


@pytest.fixture(scope='module')
def d(module_dir):
    """a/logs: text format (worker 1: 4 errors, 2 warnings; worker 2 clean;
    a non-worker directory and a stray file); b/logs: json format, only
    log.log (2 errors, 3 warnings); c: no worker directory."""
    for tool in ('tar', 'gzip'):
        if not shutil.which(tool):
            pytest.skip(f'{tool} not installed')
    root = module_dir.path
    write(f'{root}/a/logs/{W1}/log.log', W1_LOG)
    write(f'{root}/a/logs/{W1}/log.err.log',
          ''.join(line for line in W1_LOG.splitlines(True) if re.match(r'^\S+ \S+ [0-9]+ [EW] ', line)))
    write(f'{root}/a/logs/{W2}/log.log', '2026-11-22 00:30:01.000 21300 I nothing to do\n')
    write(f'{root}/a/logs/{W2}/log.err.log', '')
    write(f'{root}/a/logs/not-a-worker/log.log', 'not a worker\n')
    write(f'{root}/a/logs/README', 'stray\n')
    write(f'{root}/b/logs/{W3}/log.log', W3_LOG)
    os.makedirs(f'{root}/c', exist_ok=True)
    os.makedirs(f'{root}/out', exist_ok=True)
    return root


@pytest.fixture(scope='module')
def archive(d):
    a = f'{d}/out/all.tar.gz'
    rc, out, err = collect('-o', a, f'{d}/a/logs', f'{d}/b/logs/')
    x = f'{d}/x'
    if rc == 0:
        with tarfile.open(a) as t:
            t.extractall(x)
    return dict(path=a, rc=rc, out=out, err=err, x=x, summary=f'{x}/SUMMARY.txt')


def summary_lines(archive):
    return open(archive['summary']).read().splitlines()


def test_collect_exits_0(archive):
    assert archive['rc'] == 0, archive['err']
    assert os.path.getsize(archive['path']) > 0, 'archive written'


def test_totals_on_stdout(archive):
    assert '3 worker directories, 6 error lines, 5 warning lines' in archive['out']


def test_archive_layout(archive):
    """SUMMARY.txt and <label>/<dirname>/ of every worker, nothing else."""
    with tarfile.open(archive['path']) as t:
        names = sorted(n.rstrip('/') for n in t.getnames())
    assert names == sorted(['SUMMARY.txt', 'logs', 'logs-2', f'logs-2/{W3}', f'logs-2/{W3}/log.log',
                            f'logs/{W1}', f'logs/{W1}/log.err.log', f'logs/{W1}/log.log', f'logs/{W2}',
                            f'logs/{W2}/log.err.log', f'logs/{W2}/log.log'])


def test_archived_files_are_regular_with_original_bytes(archive, d):
    x = archive['x']
    assert not os.path.islink(f'{x}/logs/{W1}')
    assert filecmp.cmp(f'{x}/logs/{W1}/log.log', f'{d}/a/logs/{W1}/log.log', shallow=False)
    assert filecmp.cmp(f'{x}/logs-2/{W3}/log.log', f'{d}/b/logs/{W3}/log.log', shallow=False)


def test_summary_names_sources(archive, d):
    lines = summary_lines(archive)
    assert f'  logs = {d}/a/logs' in lines and f'  logs-2 = {d}/b/logs' in lines


@pytest.mark.parametrize('line', [
    'worker directories: 3, error lines: 6, warning lines: 5',
    f'logs/{W1} errors=4 warnings=2 file=log.err.log',
    f'logs/{W2} errors=0 warnings=0 file=log.err.log',
    f'logs-2/{W3} errors=2 warnings=3 file=log.log',
], ids=['totals', 'text-worker', 'clean-worker', 'json-worker'])
def test_summary_counts(archive, line):
    assert line in summary_lines(archive)


def block_after(lines, head):
    """The indented lines after the line starting with HEAD."""
    out, on = [], False
    for line in lines:
        if line.startswith(head):
            on = True
            continue
        if on and line.startswith('  '):
            out.append(line)
        elif on:
            break
    return out


def test_text_worker_last_3_errors_in_order(archive):
    assert block_after(summary_lines(archive), f'logs/{W1} ') == [
        '  last errors:',
        '    2026-11-22 00:24:39.200 21230 E [hits 201901 piece 2 shard 1] second error',
        '    2026-11-22 00:24:41.000 21230 E third error',
        '    2026-11-22 00:24:42.000 21230 E [hits 201902 piece 0 shard 2] fourth error',
    ]


def test_older_errors_and_non_errors_not_listed(archive):
    s = open(archive['summary']).read()
    assert not re.search(r'first error|slow query|mentions E', s)


def test_json_worker_errors_listed(archive):
    s = open(archive['summary']).read()
    assert '"message":"json error one"' in s and 'json error two' in s and 'is not an error' not in s


def test_clean_worker_has_no_error_block(archive):
    lines = summary_lines(archive)
    i = next(i for i, line in enumerate(lines) if line.startswith(f'logs/{W2} '))
    assert i + 1 >= len(lines) or 'last errors' not in lines[i + 1]


def test_empty_source_warned_archive_still_written(d):
    rc, out, err = collect('-o', f'{d}/out/two.tar.gz', f'{d}/c', f'{d}/a/logs')
    assert rc == 0 and 'no worker log directory' in err and f'{d}/c' in err, err
    assert os.path.getsize(f'{d}/out/two.tar.gz') > 0


BAD = [
    ('no arguments', 'no archive given', []),
    ('no sources', 'no SOURCE given', ['-o', '{d}/out/bad.tar.gz']),
    ('missing local dir', "source directory '{d}/nope' does not exist",
     ['-o', '{d}/out/bad.tar.gz', '{d}/a/logs', '{d}/nope']),
    ('source is a file', 'is not a directory', ['-o', '{d}/out/bad.tar.gz', '{d}/a/logs/README']),
    ('unknown option', "unknown option '--frobnicate'", ['--frobnicate', '-o', '{d}/out/bad.tar.gz', '{d}/a/logs']),
    ('-o without a value', '-o needs an archive path', ['-o']),
    ('archive directory missing', 'cannot write the archive into', ['-o', '{d}/missing/bad.tar.gz', '{d}/a/logs']),
]


@pytest.mark.parametrize('desc,want,args', BAD, ids=[b[0] for b in BAD])
def test_bad_usage(d, desc, want, args):
    """Exit 2, one line, no archive (nor a temporary one)."""
    bad = f'{d}/out/bad.tar.gz'
    if os.path.exists(bad):
        os.unlink(bad)
    rc, out, err = collect(*[a.format(d=d) for a in args])
    assert rc == 2 and one_line(err) and want.format(d=d) in err, f'rc={rc}, stderr: {err}'
    assert not os.path.exists(bad)
    assert not [f for f in os.listdir(f'{d}/out') if f.startswith('.bad')]


def test_no_worker_directory_anywhere(d):
    bad = f'{d}/out/bad.tar.gz'
    rc, out, err = collect('-o', bad, f'{d}/c')
    assert rc == 1 and one_line(err), err
    assert 'no worker log directory (chcopier_<YYYYMMDDhhmmss>_<pid>/) found in any source' in err
    assert not os.path.exists(bad)


def test_help(d):
    rc, out, err = collect('--help')
    assert rc == 0 and out.startswith('usage:')

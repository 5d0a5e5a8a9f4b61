"""The command line against a real ZooKeeper (issue #3): --help, --version,
upload and forced upload of the task description, --daemon with relative
paths, and every bad input exits with one clear line and changes nothing in
ZooKeeper (checked through system.zookeeper).
"""

import glob
import os
import re
import time

import pytest

from harness import taskxml
from harness.chcopier import read, wait_for


@pytest.fixture(scope='module')
def task(cluster, chcopier):
    xml = taskxml.task_xml(cluster, [taskxml.table('hits', 't', 't', 'ENGINE = MergeTree PARTITION BY d ORDER BY k',
                                                   'k')])
    return taskxml.write(chcopier.path('task.xml'), xml)


def one_line(err):
    return err != '' and err.rstrip('\n').count('\n') == 0


def test_help(chcopier):
    r = chcopier.run('--help')
    assert r.rc == 0 and '--task-path' in r.out


def test_version(chcopier):
    r = chcopier.run('--version')
    assert re.search(r'^chcopier [0-9]', r.out, re.M), r.out


def test_unknown_flag(chcopier, cluster):
    r = chcopier.run('--config', cluster.zookeeper_xml, '--task-path', '/chc/t1', '--frobnicate')
    assert r.rc == 2 and 'unknown flag' in r.err and '--frobnicate' in r.err, r
    assert one_line(r.err), r.err


BAD = [
    ('malformed', '</tables>', '</tablez>', 'malformed XML'),
    ('unknown_cluster', '<cluster_push>destination<', '<cluster_push>nowhere<', "unknown cluster 'nowhere'"),
    ('missing_element', '<table_pull>t</table_pull>', '', '<tables/hits/table_pull> is required'),
    ('splits_zero', '<sharding_key>', '<number_of_splits>0</number_of_splits><sharding_key>',
     'number_of_splits> must be an integer'),
    ('engine_log', 'ENGINE = MergeTree PARTITION BY d ORDER BY k', 'ENGINE = Log', 'is not supported'),
    ('no_sharding_key', '<sharding_key>k</sharding_key>', '', 'sharding_key> is required'),
    ('duplicate_table', '</hits>', '</hits><hits/>', 'defined twice'),
]


@pytest.mark.parametrize('name,old,new,want', BAD, ids=[b[0] for b in BAD])
def test_bad_input(chcopier, cluster, task, name, old, new, want):
    """Exit 2, one line naming the file and element, nothing in ZooKeeper."""
    text = read(task)
    assert old in text
    f = taskxml.write(chcopier.path(f'bad-{name}.xml'), text.replace(old, new, 1))
    r = chcopier.run('upload', '--config', cluster.zookeeper_xml, '--task-path', f'/chc/bad_{name}',
                     '--task-file', f)
    assert r.rc == 2 and want in r.err and f in r.err, r
    assert one_line(r.err), r.err
    assert not cluster.zk_exists(f'/chc/bad_{name}') and not cluster.zk_exists('/chc')


def test_unreadable_task_file(chcopier, cluster):
    r = chcopier.upload('/chc/t1', chcopier.path('nonexistent.xml'), check=False)
    assert r.rc == 2 and 'nonexistent.xml: cannot read' in r.err, r


def test_unreachable_zookeeper(chcopier, cluster, task):
    text = read(cluster.zookeeper_xml).replace(f'<port>{cluster.zk_port}<', '<port>1<')
    bad = taskxml.write(chcopier.path('zk-bad.xml'), text)
    start = time.monotonic()
    r = chcopier.upload('/chc/t1', task, check=False, zk_xml=bad)
    took = time.monotonic() - start
    assert r.rc == 1 and '127.0.0.1:1' in r.err and one_line(r.err), r
    assert not cluster.zk_exists('/chc'), 'unreachable ZooKeeper: nothing created'
    assert took <= 16, f'unreachable ZooKeeper: gives up within 15 s (took {took:.1f} s)'


def test_missing_description(chcopier):
    r = chcopier.work('/chc/none', timeout=60)
    assert r.rc == 2, r
    assert 'no task description at /chc/none/description; upload it with --task-file' in r.err
    assert one_line(r.err), r.err


def test_upload_and_force(chcopier, cluster, task):
    """Upload, identical re-upload, different without force (kept), with force."""
    def same(f):
        return cluster.zk_get('/chc/t1/description') == read(f).rstrip('\n')

    r = chcopier.upload('/chc/t1', task)
    assert r.rc == 0 and same(task), 'upload creates <task-path>/description with ancestors'
    task2 = taskxml.write(chcopier.path('task2.xml'), read(task).replace('<max_workers>4<', '<max_workers>7<'))
    r = chcopier.upload('/chc/t1', task2)
    assert r.rc == 0 and 'keeping it' in r.err and same(task), \
        'different description without force is kept, with a warning'
    r = chcopier.upload('/chc/t1', task2, '--task-upload-force')
    assert r.rc == 0 and same(task2), '--task-upload-force (bare) overwrites'
    r = chcopier.upload('/chc/t1', task, '--task-upload-force=false')
    assert r.rc == 0 and same(task2), '--task-upload-force=false keeps'
    r = chcopier.upload('/chc/t1', task, '--task-upload-force', 'true')
    assert r.rc == 0 and same(task), '--task-upload-force true (original style) overwrites'


def test_daemon_with_relative_paths(chcopier, cluster):
    """--daemon with relative --base-dir and --pid-file (clickhouse-copier #11526)."""
    rel = chcopier.path('rel')
    os.makedirs(rel, exist_ok=True)
    r = chcopier.run('--daemon', '--config', cluster.zookeeper_xml, '--task-path', '/chc/none',
                     '--base-dir', 'logs', '--pid-file', 'chc.pid', cwd=rel, timeout=60)
    assert r.rc == 0, f'--daemon: the parent exits 0 once the daemon is started: {r}'

    def logged():
        return any('no task description' in read(f) for f in glob.glob(f'{rel}/logs/chcopier_*/log.err.log'))
    assert wait_for(logged, 5, 0.1), 'the daemon logs under the relative --base-dir'
    assert os.path.getsize(os.path.join(rel, 'chc.pid')) > 0, 'the daemon wrote the relative --pid-file'

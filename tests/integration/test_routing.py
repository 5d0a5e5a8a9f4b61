"""Routing by Distributed, into 4 destination shards (1 replica each, the
servers' remote_servers knowing the cluster): each piece is read from the
source once, whatever the number of destination shards. Measured from the
source servers' system.query_log, which counts every row a query read:
discovery reads each source row once (count and checksum per partition),
the copy once more; filter routing reads it once per destination shard.
(The partitions here are small enough for one piece each: every piece of a
partition split by hash scans the whole partition.)

Also: the per-partition release of staging data (a worker stopped right
after its first batch of moves has left no staging rows of the partitions
it moved), and what happens when no server knows the task's cluster: auto
falls back to filter routing and says why; --routing distributed refuses.
Both data paths.
"""

import pytest

from harness import taskxml
from harness.cluster import HOST, QueryError
from harness.taskxml import rmt, table
from harness.verify import verify

DATA_PATHS = ['pull', 'pipe']
CLUSTER_LAYOUT = dict(dst_shards=4, dst_replicas=1)
ROWS = 40000  # per source shard
ENGINE = rmt('TABLE', 'PARTITION BY toYYYYMM(d) ORDER BY id')


@pytest.fixture(scope='module')
def source(cluster):
    for n in cluster.src_nodes:
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, 'CREATE TABLE db.src (id UInt64, d Date, s String) ENGINE = MergeTree '
                         'PARTITION BY toYYYYMM(d) ORDER BY id')
        cluster.query(n, f"INSERT INTO db.src SELECT number * 2 + {n.shard - 1}, "
                         f"toDate('2019-01-01') + number % 100, toString(number) "
                         f"FROM numbers({ROWS})")
    return 2 * ROWS


def source_rows_read(cluster, marker, src='src'):
    """Rows the source servers read for chcopier's SELECTs of db.SRC since
    the query whose text holds `marker` (system.query_log)."""
    total = 0
    for n in cluster.src_nodes:
        cluster.query(n, 'SYSTEM FLUSH LOGS')
        since = cluster.q(n, "SELECT max(event_time) FROM system.query_log "
                             f"WHERE query LIKE '%{marker}%' AND query NOT LIKE '%query_log%'")
        total += int(cluster.q(n, "SELECT sum(read_rows) FROM system.query_log WHERE type = 2 "
                                  f"AND event_time >= '{since}' AND query LIKE 'SELECT%' "
                                  f"AND query LIKE '%{src}%' AND query NOT LIKE '%system.%'"))
    return total


def mark(cluster, marker):
    for n in cluster.src_nodes:
        cluster.query(n, f"SELECT '{marker}'")


def copy(cluster, chcopier, name, *args, splits=2, src='src'):
    xml = taskxml.task_xml(cluster, [table('t', src, name, ENGINE.replace('TABLE', name), 'id',
                                           number_of_splits=splits)])
    mark(cluster, f'start {name}')
    return chcopier.work(f'/chc/{name}', '--task-file', taskxml.write(chcopier.path(f'{name}.xml'), xml),
                         *args, timeout=600)


@pytest.fixture(scope='module')
def routed(cluster, chcopier, source):
    r = copy(cluster, chcopier, 'routed')
    return dict(run=r, read=source_rows_read(cluster, 'start routed'),
                status=chcopier.status('/chc/routed', check=False) or {})


@pytest.fixture(scope='module')
def filtered(cluster, chcopier, source, routed):
    r = copy(cluster, chcopier, 'filtered', '--routing', 'filter')
    return dict(run=r, read=source_rows_read(cluster, 'start filtered'),
                status=chcopier.status('/chc/filtered', check=False) or {})


def test_routed_copy_exact(cluster, routed):
    assert routed['run'].rc == 0, routed['run']
    v = verify(cluster, 'db.src', 'db.routed', 'toYYYYMM(d)', placement='id')
    assert v, v.report()


def test_routed_by_distributed(routed):
    t = routed['status']['tables'][0]
    assert t['routing'].startswith("distributed: cluster 'destination'"), t['routing']


def test_routed_reads_the_source_at_most_2_2_times(routed, source):
    ratio = routed['read'] / source
    print(f'source rows read per row copied, Distributed routing: {ratio:.3f}')
    assert 1.9 <= ratio <= 2.2, ratio


def test_filter_routing_exact_and_reads_once_per_shard(cluster, filtered, source):
    assert filtered['run'].rc == 0, filtered['run']
    v = verify(cluster, 'db.src', 'db.filtered', 'toYYYYMM(d)', placement='id')
    assert v, v.report()
    t = filtered['status']['tables'][0]
    assert t['routing'] == 'filter: --routing filter', t['routing']
    ratio = filtered['read'] / source
    print(f'source rows read per row copied, filter routing: {ratio:.3f}')
    assert ratio >= 4.9, ratio  # discovery + one read per destination shard


def test_both_routings_place_rows_alike(cluster, routed, filtered):
    for n in cluster.dst_nodes:
        a = cluster.q(n, 'SELECT count(), sum(cityHash64(id, d, s)) FROM db.routed')
        b = cluster.q(n, 'SELECT count(), sum(cityHash64(id, d, s)) FROM db.filtered')
        assert a == b, (n.name, a, b)


def test_copy_groups_read_only_their_own_partitions(cluster, chcopier, source):
    """--min-piece-rows below a partition's size: every partition is its own
    copy group, read by its own SELECT. Each must read its partition, not
    the whole shard: the pipe path's SELECT aliased its CASTs with the
    columns' names and filtered beside them, so the partition key could not
    prune and each of the 4 groups scanned all of the shard (5x, not 2x)."""
    for n in cluster.src_nodes:  # a table of its own: the rows read are only this copy's
        cluster.query(n, 'CREATE TABLE IF NOT EXISTS db.src_grouped AS db.src')
        cluster.query(n, 'INSERT INTO db.src_grouped SELECT * FROM db.src')
    r = copy(cluster, chcopier, 'grouped', '--min-piece-rows', 15000, splits=1, src='src_grouped')
    assert r.rc == 0, r
    ratio = source_rows_read(cluster, 'start grouped', 'src_grouped') / source
    print(f'source rows read per row copied, one partition per copy group: {ratio:.3f}')
    assert 1.9 <= ratio <= 2.2, ratio
    v = verify(cluster, 'db.src_grouped', 'db.grouped', 'toYYYYMM(d)', placement='id')
    assert v, v.report()

def assembly_of(name, lit):
    """The partition's own assembly table: <name>_assembly_<FNV-1a of the literal>."""
    h = 0xcbf29ce484222325
    for c in lit.encode():
        h = ((h ^ c) * 0x100000001b3) & ((1 << 64) - 1)
    return f'{name}_assembly_{h:016x}'


def staging_rows(cluster, name, parts):
    """Rows of PARTS in the pieces and the template assembly, and the
    partitions' own assembly tables that still exist."""
    where = f"toYYYYMM(d) IN ({', '.join(parts)})"
    rows, left = 0, []
    for n in cluster.dst_nodes:
        for t in (f'{name}_piece_0', f'{name}_piece_1', f'{name}_assembly'):
            rows += int(cluster.q(n, f'SELECT count() FROM db.{t} WHERE {where}'))
        for p in parts:
            if cluster.q(n, f"EXISTS TABLE db.{assembly_of(name, p)}") == '1':
                left.append((n.name, p))
    return rows, left


def test_staging_released_per_partition(cluster, chcopier, source):
    stopped = copy(cluster, chcopier, 'release', '--fault-point', 'after_release',
                   '--max-pieces-in-flight', 1)
    assert stopped.rc == 99, stopped
    moved = cluster.q('d1r1', 'SELECT groupUniqArray(toYYYYMM(d)) FROM '
                      f"{cluster.dst_all('db', 'release')}").strip('[]').split(',')
    assert moved and moved != [''], 'nothing moved before the fault point'
    assert staging_rows(cluster, 'release', moved) == (0, [])
    # What a mover that stalled before its REPLACE and woke up now would send:
    # its assembly is gone, so the statement fails and the partition stays.
    p = moved[0]
    before = cluster.q('d1r1', f'SELECT count() FROM db.release WHERE toYYYYMM(d) = {p}')
    with pytest.raises(QueryError, match='(?i)table .* ?doesn.t exist'):
        cluster.query('d1r1', f'ALTER TABLE db.release REPLACE PARTITION {p} FROM db.{assembly_of("release", p)}')
    assert cluster.q('d1r1', f'SELECT count() FROM db.release WHERE toYYYYMM(d) = {p}') == before != '0'
    done = copy(cluster, chcopier, 'release')
    assert done.rc == 0, done
    v = verify(cluster, 'db.src', 'db.release', 'toYYYYMM(d)', placement='id')
    assert v, v.report()


def unknown_cluster_task(cluster, chcopier, name):
    """A push cluster of the same nodes as 'destination' but other weights:
    no server knows it."""
    shards = [{'weight': 2 if i == 0 else 1, 'replicas': [(HOST, n.tcp, n.http)]}
              for i, n in enumerate(cluster.dst_nodes)]
    xml = taskxml.task_xml(cluster, [table('t', 'src', name, ENGINE.replace('TABLE', name), 'id',
                                           cluster_push='reweighted')],
                           extra_clusters={'reweighted': shards})
    return taskxml.write(chcopier.path(f'{name}.xml'), xml)


def test_unknown_cluster_routes_by_filter(cluster, chcopier, source):
    task = unknown_cluster_task(cluster, chcopier, 'unknown')
    r = chcopier.work('/chc/unknown', '--task-file', task, timeout=600)
    assert r.rc == 0, r
    t = chcopier.status('/chc/unknown')['tables'][0]
    assert t['routing'].startswith("filter: no staging node knows a cluster with exactly "
                                   "cluster 'reweighted'"), t['routing']


def test_routing_distributed_refuses_unknown_cluster(cluster, chcopier, source):
    task = unknown_cluster_task(cluster, chcopier, 'refused')
    r = chcopier.work('/chc/refused', '--task-file', task, '--routing', 'distributed', timeout=300)
    assert r.rc == 1, r
    lines = [line for line in r.err.splitlines() if '--routing distributed' in line]
    assert lines and "table 't'" in lines[0] and 'reweighted' in lines[0], r.err[-2000:]
    for n in cluster.dst_nodes:  # refused before anything was written
        assert cluster.q(n, "SELECT count() FROM system.tables WHERE database = 'db' "
                            "AND name LIKE 'refused%'") == '0', n.name

"""test_any_table.py — issue "Any table, any cluster" on a real cluster:
2 source shards -> 2 destination shards weighted 7 and 4, 2 replicas each.

  - every type family of the server's system.data_type_families that a
    MergeTree table can hold is in the type matrix (the test fails when a
    server brings a family the matrix does not cover);
  - the matrix (UUID and Decimal in ORDER BY, LowCardinality needing a
    <settings_push> setting) resharded by a signed Int8 column, into a
    destination whose cluster definition in the task holds an unreachable
    replica, copied by two workers: every partition's count and checksum
    equal the source's, each destination shard holds exactly what a real
    Distributed(destination, ...) insert puts there, replicas agree;
  - routing equals a real Distributed insert for Int8/16/32/64, UInt8,
    an expression and a negative constant key;
  - refusals before anything is written, each one line naming the element:
    a non-replicated destination with a dead replica (until
    --allow-dead-replicas), a <where_condition> naming no column, a String
    sharding key, source shards that differ, a Distributed source;
  - a destination shard without a live replica is waited for and shown as
    waiting in `status`.
"""

import re
import time

from harness import taskxml
from harness.chcopier import wait_for
from harness.cluster import HOST
from harness.verify import verify

CLUSTER_LAYOUT = dict(src_shards=2, dst_shards=2, dst_replicas=2, dst_weights=(7, 4))

ROWS = 20000
DEAD = ('255.255.255.255', 9000, 8123)
LC = {'allow_experimental_low_cardinality_type': 1}

# Every family on the server maps to a column here; the families a MergeTree
# table cannot hold are listed with the reason.
MATRIX = [
    ('id', 'UInt64', 'number * 2 + {shard}'),
    ('u', 'UUID', "toUUID(concat('61f0c404-5cb3-11e7-907b-', "
                  "substring(hex(toUInt64(72057594037927936) + number * 2 + {shard}), 5, 12)))"),
    ('dec', 'Decimal(9, 2)', 'toDecimal32(number % 1000 / 8 - 50, 2)'),
    ('d32', 'Decimal32(3)', 'toDecimal32(number / 3, 3)'),
    ('d64', 'Decimal64(4)', 'toDecimal64(number / 7 - 100, 4)'),
    ('d128', 'Decimal128(10)', 'toDecimal128(number * 1.5, 10)'),
    ('k', 'Int8', 'toInt8(number % 256 - 128)'),
    ('i16', 'Int16', 'toInt16(number % 65536 - 32768)'),
    ('i32', 'Int32', 'toInt32(number) - 1000000'),
    ('i64', 'Int64', 'toInt64(number) * -3'),
    ('u8', 'UInt8', 'toUInt8(number % 256)'),
    ('u16', 'UInt16', 'toUInt16(number % 65536)'),
    ('u32', 'UInt32', 'toUInt32(number * 7)'),
    ('f32', 'Float32', 'toFloat32(number / 7)'),
    ('f64', 'Float64', "if(number % 50 = 0, nan, if(number % 51 = 0, -inf, number / 3))"),
    ('s', 'String', "concat('row\\t', toString(number), '\\'\\\\')"),
    ('fs', 'FixedString(4)', 'toFixedString(substring(toString(number), 1, 4), 4)'),
    ('d', 'Date', "toDate('2018-01-01') + number % 90"),
    ('dt', "DateTime('Asia/Tokyo')", "toDateTime('2018-01-01 00:00:00', 'Asia/Tokyo') + number * 37"),
    ('e8', "Enum8('a' = 1, 'b' = 2)", "if(number % 2 = 0, 'a', 'b')"),
    ('e16', "Enum16('x' = 1000, 'y' = -1000)", "if(number % 3 = 0, 'x', 'y')"),
    ('n', 'Nullable(String)', 'if(number % 3 = 0, NULL, toString(number))'),
    ('a', 'Array(Nullable(UInt16))', '[toNullable(toUInt16(number % 7)), NULL]'),
    ('au', 'Array(UUID)', "[toUUID('00000000-0000-0000-0000-000000000001')]"),
    ('t', 'Tuple(UInt8, String, Decimal(9, 2))',
     'tuple(toUInt8(number % 200), toString(number), toDecimal32(number / 4, 2))'),
    ('lc', 'LowCardinality(String)', 'toString(number % 10)'),
    ('lcn', 'LowCardinality(Nullable(String))', 'if(number % 4 = 0, NULL, toString(number % 5))'),
    ('agg', 'AggregateFunction(uniq, UInt64)', 'uniqState(number)'),
    ('aggs', 'AggregateFunction(sum, UInt64)', 'sumState(number)'),
    ('nest', 'Nested(x UInt8, y String)', None),   # nest.x, nest.y below
]
NESTED_VALUES = ['[toUInt8(number % 3), 1]', "['p', toString(number)]"]
NOT_IN_MERGETREE = {
    'Nothing': 'only as Nullable(Nothing) of NULL literals, not storable',
    'IntervalDay': 'only the type of INTERVAL expressions', 'IntervalHour': 'idem',
    'IntervalMinute': 'idem', 'IntervalMonth': 'idem', 'IntervalSecond': 'idem',
    'IntervalWeek': 'idem', 'IntervalYear': 'idem', 'IntervalQuarter': 'idem',
}
ORDER_BY = '(u, dec, id)'


def col_defs():
    return ', '.join(f'`{n}` {t}' for n, t, _ in MATRIX)


def matrix_select(shard, rows=ROWS):
    exprs = []
    for n, _, e in MATRIX:
        exprs += NESTED_VALUES if e is None else [e.format(shard=shard)]
    return f'SELECT {", ".join(exprs)} FROM numbers({rows}) GROUP BY number'


def checksum():
    """The test's own row checksum (not chcopier's): every column as text,
    LowCardinality cast first (18.16 cannot toString one)."""
    args = []
    for n, t, _ in MATRIX:
        cols = [f'`{n}.x`', f'`{n}.y`'] if t.startswith('Nested') else [f'`{n}`']
        for c in cols:
            inner = t
            if t.startswith('LowCardinality('):
                inner = t[len('LowCardinality('):-1]
                c = f'CAST({c} AS {inner})'
            if inner.startswith('Nullable('):
                args.append(f'isNull({c})')
                c = f'assumeNotNull({c})'
            args.append(f'toString({c})')
    return f'cityHash64({", ".join(args)})'


def create_source(cluster, table, order_by=ORDER_BY):
    for i, n in enumerate(cluster.src_nodes, 1):
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, f'CREATE TABLE db.{table} ({col_defs()}) ENGINE = MergeTree '
                         f'PARTITION BY toYYYYMM(d) ORDER BY {order_by}', settings=LC)
        cluster.query(n, f'INSERT INTO db.{table} {matrix_select(i)}', settings=LC)


def dead_replica_cluster(cluster, shard_with_dead=1):
    """The destination as the servers know it (weights 7 and 4), plus an
    unreachable replica first in one shard."""
    shards = []
    for s in range(1, cluster.dst_shards + 1):
        reps = [(HOST, n.tcp, n.http) for n in cluster.dst_replica_nodes(s)]
        if s == shard_with_dead:
            reps = [DEAD] + reps
        shards.append({'weight': cluster.dst_weights[s - 1], 'internal_replication': True,
                       'replicas': reps})
    return {'dst_dead': shards}


def per_shard(cluster, table, hash_expr, replica=None):
    """[(count, sum)] per destination shard: the first replica, or the sum
    over every replica (REPLICA='all', for a Distributed insert's target)."""
    out = []
    for s in range(1, cluster.dst_shards + 1):
        nodes = cluster.dst_replica_nodes(s) if replica == 'all' else cluster.dst_replica_nodes(s)[:1]
        c = h = 0
        for n in nodes:
            cnt, sm = cluster.rows(n, f'SELECT count(), sum({hash_expr}) FROM db.{table}')[0]
            c, h = c + int(cnt), (h + int(sm)) % (1 << 64)
        out.append((c, h))
    return out


def distributed_reference(cluster, src_table, ref, key, hash_expr, defs=None):
    """What Distributed(destination, db, ref, KEY) puts on each shard, with
    insert_distributed_sync = 1 (a query parameter: a SETTINGS clause would
    reach the SELECT only)."""
    defs = defs or col_defs()
    for n in cluster.dst_nodes:
        cluster.query(n, 'CREATE DATABASE IF NOT EXISTS db')
        cluster.query(n, f'CREATE TABLE IF NOT EXISTS db.{ref} ({defs}) ENGINE = MergeTree ORDER BY tuple()',
                      settings=LC)
    s1 = cluster.src_nodes[0]
    cluster.query(s1, f'CREATE TABLE db.{ref}_dist AS db.{src_table} '
                      f'ENGINE = Distributed(destination, db, {ref}, {key})', settings=LC)
    cluster.query(s1, f'INSERT INTO db.{ref}_dist SELECT * FROM {cluster.src_all("db", src_table)}',
                  settings=dict(LC, insert_distributed_sync=1))
    return per_shard(cluster, ref, hash_expr, replica='all')


# ---------------------------------------------------------------- tests


def test_type_matrix_covers_every_family(cluster):
    fams = [r[0] for r in cluster.rows('s1', "SELECT name FROM system.data_type_families "
                                             "WHERE alias_to = '' ORDER BY name")]
    covered = {re.match(r'\w+', t).group(0) for _, t, _ in MATRIX}
    for _, t, _ in MATRIX:
        covered |= set(re.findall(r'\b([A-Z]\w+)\(', t)) | set(re.findall(r'\b([A-Z][A-Za-z0-9]+)\b', t))
    missing = [f for f in fams if f not in covered and f not in NOT_IN_MERGETREE]
    print(f'# {len(fams)} families on the server; matrix covers {len(set(fams) & covered)}')
    assert not missing, f'type families not in the matrix: {missing}'
    assert len(MATRIX) >= 15


def test_matrix_resharded_by_signed_int8_two_workers_dead_replica(cluster, chcopier):
    create_source(cluster, 'types')
    h = checksum()
    ref = distributed_reference(cluster, 'types', 'ref_types', 'k', h)
    engine = taskxml.rmt('types', f'PARTITION BY toYYYYMM(d) ORDER BY {ORDER_BY}')
    task = taskxml.write(chcopier.path('types.xml'), taskxml.task_xml(
        cluster, [taskxml.table('types', 'types', 'types', engine, 'k', cluster_push='dst_dead',
                                number_of_splits=3)],
        settings={'settings_push': LC}, extra_clusters=dead_replica_cluster(cluster)))
    chcopier.upload('/chc/types', task)
    w1 = chcopier.worker('/chc/types', '--min-piece-rows', '0')
    w2 = chcopier.worker('/chc/types', '--min-piece-rows', '0')
    assert (w1.wait(300), w2.wait(300)) == (0, 0), (w1.output()[-2000:], w2.output()[-2000:])
    v = verify(cluster, 'db.types', 'db.types', 'toYYYYMM(d)', checksum=h)
    assert v, v.report()
    assert v.rows == 2 * ROWS
    got = per_shard(cluster, 'types', h)
    print(f'# per shard (count, checksum): chcopier {got}, Distributed {ref}')
    assert got == ref and got[0][0] > got[1][0] > 0
    logs = chcopier.logs()
    assert re.search(r"replica 255\.255\.255\.255:8123 does not answer .*: skipping it", logs), logs[:3000]


def test_routing_equals_distributed_for_every_key_type(cluster, chcopier):
    keys = {'k8': 'k', 'k16': 'i16', 'k32': 'i32', 'k64': 'i64', 'ku8': 'u8',
            'kexpr': '-intHash32(id) % 100', 'kconst': '-1'}
    h = checksum()
    tables = []
    refs = {}
    for name, key in keys.items():
        refs[name] = distributed_reference(cluster, 'types', f'ref_{name}', key, h)
        engine = f'ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY {ORDER_BY}'
        tables.append(taskxml.table(name, 'types', f'r_{name}', engine, key, number_of_splits=2))
    # A plain MergeTree destination: every replica gets the shard's rows.
    task = taskxml.write(chcopier.path('keys.xml'), taskxml.task_xml(
        cluster, tables, settings={'settings_push': LC}))
    chcopier.upload('/chc/keys', task)
    r = chcopier.work('/chc/keys', '--min-piece-rows', '0', timeout=600)
    assert r.rc == 0, r
    for name in keys:
        got = per_shard(cluster, f'r_{name}', h)
        print(f'# key {keys[name]}: chcopier {got}, Distributed {refs[name]}')
        assert got == refs[name], name
        assert per_shard(cluster, f'r_{name}', h) == [
            tuple(map(int, cluster.rows(n, f'SELECT count(), sum({h}) FROM db.r_{name}')[0]))
            for n in cluster.dst_replica_set(2)], f'{name}: second replicas differ'


def test_non_replicated_destination_with_dead_replica_is_refused(cluster, chcopier):
    engine = 'ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id'
    task = taskxml.write(chcopier.path('plain.xml'), taskxml.task_xml(
        cluster, [taskxml.table('plain', 'types', 'plain_dead', engine, 'id', cluster_push='dst_dead')],
        settings={'settings_push': LC}, extra_clusters=dead_replica_cluster(cluster)))
    chcopier.upload('/chc/plain', task)
    t0 = time.monotonic()
    r = chcopier.work('/chc/plain', timeout=120)
    line = r.err.strip().splitlines()[-1]
    print(f'# exit {r.rc} after {time.monotonic() - t0:.1f} s: {line}')
    assert r.rc == 1
    assert '255.255.255.255:8123 does not answer' in line and '--allow-dead-replicas' in line
    for n in cluster.dst_nodes:
        assert cluster.q(n, "SELECT count() FROM system.tables WHERE name LIKE 'plain_dead%'") == '0'
    assert not cluster.zk_exists('/chc/plain/tables')
    r = chcopier.work('/chc/plain', '--allow-dead-replicas', timeout=300)
    assert r.rc == 0, r
    for n in cluster.dst_nodes:  # each live replica has its own full copy of its shard
        assert int(cluster.q(n, 'SELECT count() FROM db.plain_dead')) > 0


def refused(chcopier, cluster, name, table_xml, *, within=60, settings_push=None):
    task = taskxml.write(chcopier.path(f'{name}.xml'),
                         taskxml.task_xml(cluster, [table_xml],
                                          settings={'settings_push': settings_push or LC}))
    chcopier.upload(f'/chc/{name}', task)
    t0 = time.monotonic()
    r = chcopier.work(f'/chc/{name}', timeout=within + 30)
    took = time.monotonic() - t0
    line = (r.err.strip().splitlines() or [''])[-1]
    print(f'# {name}: exit {r.rc} after {took:.1f} s: {line}')
    assert r.rc == 1 and took <= within, r
    assert not cluster.zk_exists(f'/chc/{name}/tables'), 'state written before the refusal'
    return line


def test_where_condition_naming_no_column_fails_fast(cluster, chcopier):
    engine = taskxml.rmt('bad_where', 'PARTITION BY toYYYYMM(d) ORDER BY id')
    line = refused(chcopier, cluster, 'badwhere', taskxml.table(
        'badwhere', 'types', 'bad_where', engine, 'id', where_condition='nosuch = 1'))
    assert "<where_condition> 'nosuch = 1'" in line and 'Unknown identifier: nosuch' in line
    for n in cluster.dst_nodes:
        assert cluster.q(n, "SELECT count() FROM system.tables WHERE name = 'bad_where'") == '0'


def test_setting_under_a_name_the_server_does_not_know_is_refused(cluster, chcopier):
    # distributed_foreground_insert is 23.11's name of insert_distributed_sync:
    # 18.16 would refuse every statement; the preflight says so at once.
    engine = taskxml.rmt('new_name', 'PARTITION BY toYYYYMM(d) ORDER BY id')
    line = refused(chcopier, cluster, 'newname', taskxml.table(
        'newname', 'types', 'new_name', engine, 'id'),
        settings_push={**LC, 'distributed_foreground_insert': 1})
    assert '<settings_push> distributed_foreground_insert is unknown to ClickHouse 18.16' in line \
        and 'write insert_distributed_sync' in line, line


def test_string_sharding_key_is_refused(cluster, chcopier):
    engine = taskxml.rmt('bad_key', 'PARTITION BY toYYYYMM(d) ORDER BY id')
    line = refused(chcopier, cluster, 'badkey',
                   taskxml.table('badkey', 'types', 'bad_key', engine, 's'))
    assert "<sharding_key> 's' is of type String" in line


def test_source_shards_that_differ_are_refused(cluster, chcopier):
    for i, n in enumerate(cluster.src_nodes):
        cluster.query(n, f'CREATE TABLE db.uneven (id UInt64, v {"UInt32" if i else "UInt64"}) '
                         f'ENGINE = MergeTree ORDER BY id')
    engine = taskxml.rmt('uneven', 'ORDER BY id')
    line = refused(chcopier, cluster, 'uneven',
                   taskxml.table('uneven', 'uneven', 'uneven', engine, 'id'))
    assert 'differs between shards' in line and '`v` UInt64 on shard 1' in line \
        and '`v` UInt32 on shard 2' in line


def test_distributed_source_is_refused(cluster, chcopier):
    for n in cluster.src_nodes:
        cluster.query(n, 'CREATE TABLE db.types_all AS db.types '
                         'ENGINE = Distributed(source, db, types, rand())', settings=LC)
    engine = taskxml.rmt('from_dist', 'PARTITION BY toYYYYMM(d) ORDER BY id')
    line = refused(chcopier, cluster, 'fromdist',
                   taskxml.table('fromdist', 'types_all', 'from_dist', engine, 'id'))
    assert 'is a Distributed table' in line and '<table_pull>' in line


def test_shard_without_live_replica_is_waited_for(cluster, chcopier):
    shards = [{'weight': 1, 'internal_replication': True,
               'replicas': [(HOST, n.tcp, n.http) for n in cluster.dst_replica_nodes(1)]},
              {'weight': 1, 'internal_replication': True, 'replicas': [DEAD]}]
    engine = taskxml.rmt('waiting', 'PARTITION BY toYYYYMM(d) ORDER BY id')
    task = taskxml.write(chcopier.path('wait.xml'), taskxml.task_xml(
        cluster, [taskxml.table('wait', 'types', 'waiting', engine, 'id', cluster_push='dst_half')],
        settings={'settings_push': LC}, extra_clusters={'dst_half': shards}))
    chcopier.upload('/chc/wait', task)
    w = chcopier.worker('/chc/wait', '--retry-delay-ms', '200')

    def waiting():
        s = chcopier.status('/chc/wait', check=False)
        return s and [n for n in s['notes'] if n['note'].startswith('waiting:')]
    notes = wait_for(waiting, 30)
    w.kill()
    print(f'# status notes: {notes}')
    assert notes and 'destination shard 2' in notes[0]['note'] \
        and 'has no replica that answers' in notes[0]['note']
    assert re.search(r'retrying in \d', chcopier.logs())

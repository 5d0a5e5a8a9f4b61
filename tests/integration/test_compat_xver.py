"""Checksums across ClickHouse versions: the rows of tests/compat/compat-xver.c
(every type 18.16 knows, with edge values: NaN-free floats, inf, -0, 1e300,
UUIDs, Decimal128, Nullable, Arrays of Nullable, Tuples, escapes, UTF-8),
inserted from the same TabSeparated text and hashed by chcopier's own
checksum statements (sql_sums per column and per row, sql_discover), must
give on 18.16 exactly what they gave on 26.7 (scripts/compat captured those
answers into tests/unit/data/compat-26.7/xver-*). A copy from one version to
the other is verified by comparing these sums, so a difference here is a
false mismatch there.
"""

import os
import subprocess

from harness import ROOT
from harness.chcopier import built_driver

CLUSTER_LAYOUT = dict(src_shards=1, dst_shards=1, dst_replicas=1)
GOLDEN = os.path.join(ROOT, 'tests', 'unit', 'data', 'compat-26.7')


def records(text):
    """compat-run's check file format: @key value lines, @sql ... @end."""
    out, cur, sql = [], {}, None
    for line in text.split('\n'):
        if sql is not None:
            if line == '@end':
                cur['sql'] = '\n'.join(sql)
                out.append(cur)
                cur, sql = {}, None
            else:
                sql.append(line)
        elif line == '@sql':
            sql = []
        elif line.startswith('@'):
            key, _, value = line.partition(' ')
            cur[key] = value
    return out


def test_checksums_equal_on_18_16_and_26_7(build_root, cluster, tmp_path):
    gen = built_driver(build_root, 'compat-gen')
    chk = subprocess.run([gen, 'xver', str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    recs = records(chk)
    compared, differ = 0, []
    for r in recs:
        got = cluster.query('s1', r['sql'])
        if '@capture' not in r:
            continue
        with open(os.path.join(GOLDEN, r['@capture']), encoding='utf-8') as f:
            want = f.read()
        compared += 1
        # GROUP BY answers come in any order.
        if sorted(got.splitlines()) != sorted(want.splitlines()):
            differ.append(f"{r['@check']}: 18.16 {got.splitlines()} != 26.7 {want.splitlines()}")
    assert compared == 25, f'{compared} answers compared, expected 22 columns + 2 rows + discovery'
    assert not differ, '\n'.join(differ)

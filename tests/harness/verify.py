"""harness.verify — owns the one verification of a copy, used by the
integration tests, the chaos run, the benchmark and the demo:

  1. every replica of each destination shard holds the same rows per
     partition (after SYSTEM SYNC REPLICA on each, for Replicated tables,
     retried for up to replica_wait s: a replica restarted moments ago, or
     one that was down while a partition moved through another, may not
     have pulled the log yet); with defer_lagging a shard whose replicas
     still differ is returned in Verdict.lagging and the comparison with
     the source is left to a later verify() (Verdict.deferred);
  2. per partition, count() and sum(<checksum>) of the destination (the
     first replica of every destination shard) equal the source's (every
     source shard, optionally filtered, plus rows expected to be there
     already), and the source is not empty. The default checksum hashes
     every column of the destination table with NULLs as (isNull(c),
     assumeNotNull(c)): cityHash64(*) is NULL for a row with any NULL
     column, and sum() skips it, so such rows were only counted;
  3. no id appears twice in the destination;
  4. no staging table of the destination table (<table>_*, which covers
     <table>_piece_<k> and <table>_assembly) is left on any destination node;
  5. optionally, every row sits on the shard its sharding key routes it to
     (placement='<unsigned key expression>', with the cluster's weights).

verify() returns a Verdict: truthy when every check passed, .problems says
what did not, .deferred that the source comparison waits for lagging
replicas, .source/.destination hold the per-partition sums.
"""

import time

from .cluster import QueryError

M64 = 1 << 64


class Verdict:
    def __init__(self):
        self.problems = []
        self.lagging = []           # (node, db.table) replicas that still differ
        self.deferred = False       # the comparison with the source was left out
        self.source = {}            # partition -> (count, sum)
        self.destination = {}
        self.notes = []

    @property
    def ok(self):
        """Every check passed (a deferred comparison is not a pass)."""
        return not self.problems and not self.deferred

    def __bool__(self):
        return self.ok

    @property
    def rows(self):
        return sum(c for c, _ in self.destination.values())

    def report(self):
        return '\n'.join(self.problems) or 'ok'

    def __repr__(self):
        return f'Verdict({self.report()})'


def _name(t):
    return t if isinstance(t, tuple) else tuple(t.split('.', 1))


def row_hash(cluster, db, table, node=None):
    """cityHash64 over every column of DB.TABLE (as NODE, default the first
    destination node, has it), NULL-safe: a Nullable column c is hashed as
    isNull(c), assumeNotNull(c)."""
    node = node or cluster.dst_nodes[0]
    cols = cluster.rows(node, f"SELECT name, type FROM system.columns WHERE database = '{db}' "
                              f"AND table = '{table}'")
    if not cols:
        raise QueryError(cluster.node(node).name, f'{db}.{table}: no such table')
    args = []
    for name, type_ in cols:
        c = f'`{name}`'
        args += [f'isNull({c})', f'assumeNotNull({c})'] if type_.startswith('Nullable(') else [c]
    return f'cityHash64({", ".join(args)})'


def _int(s):
    return None if s == '\\N' else int(s)


def sums(cluster, sql_from, partition_by, checksum, where=None, node='s1', timeout=300):
    """{partition: (count, sum)} of the rows of SQL_FROM (a table function,
    a table or a subquery) grouped by PARTITION_BY, in partition order."""
    q = (f'SELECT {partition_by} AS _p, count(), sum({checksum}) FROM {sql_from}'
         + (f' WHERE {where}' if where else '') + ' GROUP BY _p ORDER BY _p')
    return {p: (int(c), _int(s)) for p, c, s in cluster.rows(node, q, timeout=timeout)}


def merge(a, b):
    out = dict(a)
    for p, (c, s) in b.items():
        c0, s0 = out.get(p, (0, 0))
        out[p] = (c0 + c, ((s0 or 0) + (s or 0)) % M64)
    return dict(sorted(out.items()))


def diff(a, b, limit=20):
    """Lines '< p count sum' (only or different in A) / '> ...' (in B)."""
    out = []
    for p in sorted(set(a) | set(b)):
        if a.get(p) != b.get(p):
            if p in a:
                out.append(f'< {p}\t{a[p][0]}\t{a[p][1]}')
            if p in b:
                out.append(f'> {p}\t{b[p][0]}\t{b[p][1]}')
    return out[:limit] + ([f'... {len(out) - limit} more'] if len(out) > limit else [])


def engine(cluster, node, db, table):
    """The table's engine on NODE ('' when it does not exist)."""
    return cluster.q(node, f"SELECT engine FROM system.tables WHERE database = '{db}' AND name = '{table}'")


def staging_tables(cluster, db, prefix=None):
    """{node: [names]} of staging tables left on destination nodes: names
    starting with PREFIX_, or (no PREFIX) any *_piece_<k> / *_assembly /
    *_assembly_<partition hash>."""
    cond = (f"startsWith(name, '{prefix}_')" if prefix else
            "(match(name, '_piece_[0-9]+$') OR endsWith(name, '_assembly') "
            "OR match(name, '_assembly_[0-9a-f]{16}$'))")
    out = {}
    for n in cluster.dst_nodes:
        names = cluster.q(n, f"SELECT name FROM system.tables WHERE database = '{db}' AND {cond} "
                             f"ORDER BY name FORMAT TSVRaw").split()
        if names:
            out[n.name] = names
    return out


def verify(cluster, src, dst, partition_by, *, checksum=None, where=None, extra=None,
           unique='id', replicas=True, replica_wait=60, defer_lagging=False, staging=True,
           placement=None, timeout=300, flat=False):
    """Check the copy of SRC ('db.table' on every source shard) into DST
    ('db.table' on the destination); see the module comment. WHERE filters
    the source; EXTRA is a SELECT of rows the destination should hold in
    addition (with the columns PARTITION_BY and CHECKSUM use). FLAT: DST was
    copied into `destination_flat`, every destination server a shard."""
    v = Verdict()
    sdb, st = _name(src)
    ddb, dt = _name(dst)
    what = f'{ddb}.{dt}'
    try:
        checksum = checksum or row_hash(cluster, ddb, dt)
        v.source = sums(cluster, cluster.src_all(sdb, st), partition_by, checksum, where, timeout=timeout)
        if extra:
            v.source = merge(v.source, sums(cluster, f'({extra})', partition_by, checksum, timeout=timeout))
    except QueryError as e:
        v.problems.append(f'{what}: cannot read: {e}')
        return v

    if replicas and cluster.dst_replicas > 1 and not flat:
        _check_replicas(cluster, v, ddb, dt, partition_by, checksum, replica_wait, defer_lagging)

    try:
        every = cluster.remote(cluster.dst_nodes, ddb, dt) if flat else cluster.dst_all(ddb, dt)
        v.destination = sums(cluster, every, partition_by, checksum, timeout=timeout)
    except QueryError as e:
        v.problems.append(f'{what}: cannot read: {e}')
        return v
    if not v.source:
        v.problems.append(f'{what}: the source {sdb}.{st} has no rows to compare')
    elif v.lagging:
        v.deferred = True
        v.notes.append(f'{what}: compared with the source once its replicas agree')
    elif v.source != v.destination:
        v.problems.append(f'{what}: partitions differ from the source (partition, count, checksum; '
                          f'< source, > destination):\n  ' + '\n  '.join(diff(v.source, v.destination)))

    if unique:
        n, example = cluster.rows('s1', f'SELECT count(), any({unique}) FROM (SELECT {unique} FROM '
                                        f'{every} GROUP BY {unique} HAVING count() > 1)',
                                  timeout=timeout)[0]
        if n != '0':
            v.problems.append(f'{what}: {n} {unique} values appear more than once (e.g. {example})')

    if staging:
        for node, names in staging_tables(cluster, ddb, dt).items():
            v.problems.append(f'{what}: staging tables left on {node}: {", ".join(names)}')

    if placement:
        shards = [[n] for n in cluster.dst_nodes] if flat else \
            [cluster.dst_replica_nodes(s) for s in range(1, cluster.dst_shards + 1)]
        weights = [1] * len(shards) if flat else cluster.dst_weights
        total = sum(weights)
        lo = 0
        for s in range(1, len(shards) + 1):
            hi = lo + weights[s - 1]
            for n in shards[s - 1]:
                bad = cluster.q(n, f'SELECT count() FROM {ddb}.{dt} WHERE NOT (({placement}) % {total} '
                                   f'BETWEEN {lo} AND {hi - 1})', timeout=timeout)
                if bad != '0':
                    v.problems.append(f'{what}: {n.name} holds {bad} rows that belong to another shard')
            lo = hi
    return v


def _check_replicas(cluster, v, db, table, partition_by, checksum, wait, defer):
    """Every replica of each shard equal to the shard's first, per partition;
    Replicated tables get SYSTEM SYNC REPLICA on every replica and up to
    WAIT s to converge."""
    for s in range(1, cluster.dst_shards + 1):
        nodes = cluster.dst_replica_nodes(s)
        replicated = engine(cluster, nodes[0], db, table).startswith('Replicated')
        end = time.monotonic() + wait
        tries = 0
        while True:
            tries += 1
            got, err = {}, ''
            for n in nodes:
                try:
                    if replicated:
                        cluster.query(n, f'SYSTEM SYNC REPLICA {db}.{table}', timeout=max(wait, 10))
                    got[n.name] = sums(cluster, f'{db}.{table}', partition_by, checksum, node=n)
                except QueryError as e:
                    got[n.name], err = None, str(e)
            ref = got[nodes[0].name]
            differ = [n for n in nodes[1:] if got[n.name] != ref]
            if ref is not None and not differ or not replicated or time.monotonic() >= end:
                break
            time.sleep(2)
        if ref is not None and not differ:
            if tries > 1:
                v.notes.append(f'shard {s}: replicas agree after {tries} tries')
            continue
        if defer and replicated:
            v.lagging += [(n.name, f'{db}.{table}') for n in nodes if got[n.name] != ref or ref is None]
            v.notes.append(f'shard {s}: replicas still differ after {tries} tries over {wait} s ({err[:160]})')
            continue
        for n in differ or nodes[:1]:
            lines = diff(ref or {}, got[n.name] or {})
            v.problems.append(f'{db}.{table}: replica {n.name} differs from {nodes[0].name} after {tries} tries '
                              f'({err[:160]}):\n  ' + '\n  '.join(lines))

"""harness.taskxml — owns the task XML builder: a cluster's remote_servers
(with chcopier's <http_port> per replica, shard weights, credentials for the
source replicas, extra cluster definitions the servers do not know) and the
<tables> of a task, in clickhouse-copier's format.

    xml = task_xml(cluster, [table('hits', src='t', dst='t2', engine=rmt('t2', 'ORDER BY id'),
                                    sharding_key='id', number_of_splits=2)])

No XML comments are written: clickhouse-copier 18.16 breaks on a comment
containing "--" (the benchmark feeds it the same file).
"""

from xml.sax.saxutils import escape

from .cluster import HOST


def rmt(name, tail, path_prefix='/clickhouse/tables/{cluster}/{shard}/'):
    """ENGINE = ReplicatedMergeTree(<path_prefix><name>, '{replica}') <tail>."""
    return f"ENGINE = ReplicatedMergeTree('{path_prefix}{name}', '{{replica}}') {tail}"


def table(name, src, dst, engine, sharding_key, *, src_db='db', dst_db='db',
          cluster_pull='source', cluster_push='destination', enabled_partitions=None, **extra):
    """One <tables>/<NAME> entry. EXTRA elements (number_of_splits=3,
    where_condition='...', data_path='pipe', ...) are written in order after
    <sharding_key>; ENABLED_PARTITIONS is a list of partition literals."""
    parts = [f'<cluster_pull>{cluster_pull}</cluster_pull>', f'<database_pull>{src_db}</database_pull>',
             f'<table_pull>{src}</table_pull>', f'<cluster_push>{cluster_push}</cluster_push>',
             f'<database_push>{dst_db}</database_push>', f'<table_push>{dst}</table_push>',
             f'<engine>{escape(engine)}</engine>', f'<sharding_key>{escape(sharding_key)}</sharding_key>']
    for k, v in extra.items():
        parts.append(f'<{k}>{escape(str(v))}</{k}>')
    if enabled_partitions is not None:
        parts.append('<enabled_partitions>' + ''.join(
            f'<partition>{escape(str(p))}</partition>' for p in enabled_partitions) + '</enabled_partitions>')
    return f'<{name}>' + ''.join(parts) + f'</{name}>'


def _replica(host, port, http_port=None, user=None, password=None):
    s = f'<replica><host>{host}</host><port>{port}</port>'
    if http_port is not None:
        s += f'<http_port>{http_port}</http_port>'
    if user is not None:
        s += f'<user>{escape(user)}</user><password>{escape(password or "")}</password>'
    return s + '</replica>'


def remote_servers(cluster, *, http_port=True, source_auth=None, extra_clusters=None):
    """<remote_servers> of CLUSTER's `source` and `destination` (as the
    servers know them, weights included), plus EXTRA_CLUSTERS.

    http_port: add chcopier's <http_port> to every replica.
    source_auth: (user, password) written into every source replica.
    extra_clusters: {name: [shard, ...]} with a shard a list of replicas, a
    replica (host, tcp_port[, http_port]); or a shard a dict {'weight': W,
    'replicas': [...], 'internal_replication': bool}. These clusters exist
    only in the task XML (e.g. a replica at 255.255.255.255)."""
    user, password = source_auth or (None, None)
    out = ['<remote_servers>', '<source>']
    for n in cluster.src_nodes:
        out.append('<shard><internal_replication>false</internal_replication>'
                   + _replica(HOST, n.tcp, n.http if http_port else None, user, password) + '</shard>')
    out += ['</source>', '<destination>']
    for s in range(1, cluster.dst_shards + 1):
        w = cluster.dst_weights[s - 1]
        out.append('<shard>' + (f'<weight>{w}</weight>' if w != 1 else '')
                   + '<internal_replication>true</internal_replication>'
                   + ''.join(_replica(HOST, n.tcp, n.http if http_port else None)
                             for n in cluster.dst_replica_nodes(s)) + '</shard>')
    out.append('</destination>')
    for name, shards in (extra_clusters or {}).items():
        out.append(f'<{name}>')
        for shard in shards:
            if isinstance(shard, dict):
                reps, w = shard['replicas'], shard.get('weight')
                ir = shard.get('internal_replication')
            else:
                reps, w, ir = shard, None, None
            out.append('<shard>' + (f'<weight>{w}</weight>' if w is not None else '')
                       + (f'<internal_replication>{str(ir).lower()}</internal_replication>'
                          if ir is not None else '')
                       + ''.join(_replica(*r) for r in reps) + '</shard>')
        out.append(f'</{name}>')
    out.append('</remote_servers>')
    return '\n'.join(out)


def task_xml(cluster, tables, *, max_workers=4, root='clickhouse', settings=None, **rs):
    """A whole task description: remote_servers (see remote_servers() for the
    keyword arguments), <max_workers>, optional <settings*> blocks
    (SETTINGS: {'settings_pull': {'readonly': 1}, ...}) and <tables>
    (TABLES: entries from table(), or one string of them)."""
    body = [remote_servers(cluster, **rs), f'<max_workers>{max_workers}</max_workers>']
    for block, values in (settings or {}).items():
        body.append(f'<{block}>' + ''.join(f'<{k}>{escape(str(v))}</{k}>' for k, v in values.items())
                    + f'</{block}>')
    if not isinstance(tables, str):
        tables = '\n'.join(tables)
    body.append(f'<tables>\n{tables}\n</tables>')
    return f'<{root}>\n' + '\n'.join(body) + f'\n</{root}>\n'


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return path

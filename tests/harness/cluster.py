"""harness.cluster — owns the local test cluster: one ZooKeeper and several
ClickHouse 18.16 servers on 127.0.0.1, all state under one directory, every
process started here and stopped by the PID recorded in its pid file (never
by name). Also the queries to its nodes (HTTP) and to its ZooKeeper (read
through system.zookeeper, four-letter words).

Layout: source shards s1..sN (cluster `source`, one replica each,
internal_replication=false), destination shards x replicas d<S>r<R> (cluster
`destination`, internal_replication=true, optional shard weights).

Ports, from a base B (a multiple of 100, reserved with a lock directory
B.lock under CHC_PORT_LOCK_DIR, /tmp/chc-ports, so that concurrent clusters
— also those of scripts/cluster on other branches — never share one):
ZooKeeper B; node i (0-based, sources first) http B+10+i, tcp B+40+i,
interserver http B+70+i.

Files written by up(): DIR/cluster.env (shell-sourceable; scripts/chq and
other people's tests read it), DIR/zookeeper.xml (for chcopier and
clickhouse-copier), DIR/remote_servers.xml; DIR/zk.pid, DIR/<node>/pid.

CLI (scripts/cluster): up|down|status DIR, stop-node|start-node DIR NODE,
stop-zk|start-zk DIR. Env: CHC_SRC_SHARDS (2), CHC_DST_SHARDS (2),
CHC_DST_REPLICAS (2), CHC_DST_WEIGHTS ("W1 W2 ...", one per destination
shard, default 1 each), CHC_BASE_PORT, CHC_CLUSTER_TIMEOUT (s, 60),
CHC_CH_LOG_LEVEL (information), CHC_PORT_LOCK_DIR, CHC_STOP_TIMEOUT (s, 15),
CHC_STOP_SIGNAL (TERM|KILL, stop-node/stop-zk), CHC_CLICKHOUSE_SERVER,
CHC_JAVA, CHC_ZOOKEEPER_JAR.
"""

import base64
import errno
import fcntl
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HOST = '127.0.0.1'
MAX_NODES = 30
POLL = 0.2
PROG = 'cluster'
AUTH_USER = 'chc'
AUTH_PASSWORD = 'chcpass'
ZK_LOG_JAR = '/usr/share/java/slf4j-simple.jar'


class ClusterError(Exception):
    """A cluster operation failed; the message says what and where."""


class QueryError(Exception):
    """A query failed: HTTP error (the server's text) or no connection."""

    def __init__(self, node, message, code=None):
        super().__init__(f'{node}: {message}')
        self.node = node
        self.code = code
        self.text = message


# ---------------------------------------------------------------- processes

def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f'/proc/{int(pid)}/stat') as f:
            stat = f.read()
    except (OSError, ValueError):
        return False
    state = stat.rsplit(')', 1)[-1].split()[0] if ')' in stat else ''
    return state not in ('', 'Z', 'X')


def owned(pid, needle):
    """PID is alive and its command line mentions NEEDLE (guards against a
    recycled PID)."""
    if not alive(pid):
        return False
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return False
    return needle in cmd


def read_pid(path):
    try:
        with open(path) as f:
            s = f.read().strip()
    except OSError:
        return None
    return int(s) if s.isdigit() else None


def listening_ports():
    """TCP ports in LISTEN state on this machine (from /proc/net/tcp*)."""
    ports = set()
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == '0A':
                        ports.add(int(parts[1].rsplit(':', 1)[1], 16))
        except OSError:
            pass
    return ports


def proc_cpu_ticks(pid):
    """utime + stime of PID in clock ticks, None if it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------- layout

class Node:
    """One ClickHouse server of the cluster."""

    def __init__(self, name, index, cluster, shard, replica, base, root):
        self.name = name
        self.index = index
        self.cluster = cluster          # 'source' or 'destination'
        self.shard = shard              # 1-based
        self.replica = replica          # 1-based (always 1 for sources)
        self.http = base + 10 + index
        self.tcp = base + 40 + index
        self.interserver = base + 70 + index
        self.dir = os.path.join(root, name)
        self.log = os.path.join(self.dir, 'log', 'clickhouse-server.log')
        self.pid_file = os.path.join(self.dir, 'pid')
        self.config = os.path.join(self.dir, 'config.xml')

    @property
    def hostport(self):
        return f'{HOST}:{self.tcp}'

    def __repr__(self):
        return f'Node({self.name}, http {self.http})'


def _positive(name, value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ClusterError(f'{name} must be a positive integer (got {value!r})')
    return n


class Cluster:
    """A local cluster in DIR. Build it with a layout and call up(), or load
    one that is already up with Cluster.load(DIR)."""

    def __init__(self, dir, src_shards=2, dst_shards=2, dst_replicas=2, dst_weights=None,
                 log=None):
        self.dir = os.path.realpath(dir)
        self.src_shards = _positive('source shards', src_shards)
        self.dst_shards = _positive('destination shards', dst_shards)
        self.dst_replicas = _positive('destination replicas', dst_replicas)
        weights = list(dst_weights) if dst_weights else [1] * self.dst_shards
        if len(weights) != self.dst_shards:
            raise ClusterError(f'{len(weights)} destination weights for {self.dst_shards} shards')
        self.dst_weights = [_positive('destination shard weight', w) for w in weights]
        if self.src_shards + self.dst_shards * self.dst_replicas > MAX_NODES:
            raise ClusterError(f'at most {MAX_NODES} ClickHouse servers per cluster')
        self.base = None
        self.log = log or (lambda msg: print(f'{PROG}: {msg}', file=sys.stderr))
        self.ch_server = os.environ.get('CHC_CLICKHOUSE_SERVER') or shutil.which('clickhouse-server') \
            or '/usr/sbin/clickhouse-server'
        self.java = os.environ.get('CHC_JAVA') or shutil.which('java') or '/usr/bin/java'
        self.zk_jar = os.environ.get('CHC_ZOOKEEPER_JAR') or '/usr/share/java/zookeeper.jar'
        self.lock_root = os.environ.get('CHC_PORT_LOCK_DIR') or '/tmp/chc-ports'
        self._children = {}             # pid -> Popen of processes we started (reaped on stop)
        self._spawned = []

    # ------------------------------------------------------------ names

    @property
    def node_names(self):
        return [f's{s}' for s in range(1, self.src_shards + 1)] + \
            [f'd{s}r{r}' for s in range(1, self.dst_shards + 1) for r in range(1, self.dst_replicas + 1)]

    def _require_base(self):
        if self.base is None:
            raise ClusterError(f'{self.dir}: cluster not up')

    @property
    def nodes(self):
        self._require_base()
        out = []
        i = 0
        for s in range(1, self.src_shards + 1):
            out.append(Node(f's{s}', i, 'source', s, 1, self.base, self.dir))
            i += 1
        for s in range(1, self.dst_shards + 1):
            for r in range(1, self.dst_replicas + 1):
                out.append(Node(f'd{s}r{r}', i, 'destination', s, r, self.base, self.dir))
                i += 1
        return out

    @property
    def src_nodes(self):
        return [n for n in self.nodes if n.cluster == 'source']

    @property
    def dst_nodes(self):
        return [n for n in self.nodes if n.cluster == 'destination']

    def node(self, name):
        if isinstance(name, Node):
            return name
        for n in self.nodes:
            if n.name == name:
                return n
        raise ClusterError(f"unknown node '{name}' (nodes: {' '.join(self.node_names)})")

    def dst_replica_set(self, replica=1):
        """The REPLICA-th replica of every destination shard."""
        return [self.node(f'd{s}r{replica}') for s in range(1, self.dst_shards + 1)]

    @property
    def zk_port(self):
        self._require_base()
        return self.base

    @property
    def zk_hostport(self):
        return f'{HOST}:{self.zk_port}'

    @property
    def zk_pid_file(self):
        return os.path.join(self.dir, 'zk.pid')

    @property
    def zk_cfg(self):
        return os.path.join(self.dir, 'zk', 'zoo.cfg')

    @property
    def zookeeper_xml(self):
        return os.path.join(self.dir, 'zookeeper.xml')

    @property
    def remote_servers_xml(self):
        return os.path.join(self.dir, 'remote_servers.xml')

    def all_ports(self, base=None):
        base = self.base if base is None else base
        n = self.src_shards + self.dst_shards * self.dst_replicas
        return [base] + [base + off + i for i in range(n) for off in (10, 40, 70)]

    # ------------------------------------------------------------ queries

    def query(self, node, sql, *, user=None, password=None, database=None, timeout=60,
              settings=None):
        """Run SQL on NODE over HTTP; the response body (str). Raises
        QueryError with the server's text on an HTTP error."""
        n = self.node(node)
        params = dict(settings or {})
        if database:
            params['database'] = database
        url = f'http://{HOST}:{n.http}/'
        if params:
            url += '?' + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=sql.encode(), method='POST')
        if user is not None:
            token = base64.b64encode(f'{user}:{password or ""}'.encode()).decode()
            req.add_header('Authorization', f'Basic {token}')
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as e:
            raise QueryError(n.name, f'HTTP {e.code}: {e.read().decode(errors="replace").strip()}',
                             e.code) from None
        except (urllib.error.URLError, OSError) as e:
            raise QueryError(n.name, f'request to {url} failed: {getattr(e, "reason", e)}') from None

    def q(self, node, sql, **kw):
        """query() with the trailing newline stripped."""
        return self.query(node, sql, **kw).rstrip('\n')

    def rows(self, node, sql, **kw):
        """A TSV query's rows as lists of strings (no FORMAT clause needed)."""
        out = self.query(node, sql.rstrip().rstrip(';') + ' FORMAT TSV', **kw)
        return [line.split('\t') for line in out.splitlines()]

    def remote(self, nodes, db, table):
        """remote('h:p,...', db, table) over NODES (names or Nodes)."""
        hosts = ','.join(self.node(n).hostport for n in nodes)
        return f"remote('{hosts}', {db}, {table})"

    def src_all(self, db, table):
        return self.remote(self.src_nodes, db, table)

    def dst_all(self, db, table, replica=1):
        return self.remote(self.dst_replica_set(replica), db, table)

    def select1(self, node, timeout=2):
        try:
            return self.query(node, 'SELECT 1', timeout=timeout).strip() == '1'
        except QueryError:
            return False

    # ZooKeeper, read through ClickHouse's system.zookeeper (on s1).

    @staticmethod
    def _split(path):
        parent, _, name = path.rstrip('/').rpartition('/')
        return parent or '/', name

    def zk_get(self, path):
        parent, name = self._split(path)
        return self.query('s1', f"SELECT value FROM system.zookeeper WHERE path = '{parent}' "
                                f"AND name = '{name}' FORMAT TSVRaw").rstrip('\n')

    def zk_exists(self, path):
        parent, name = self._split(path)
        try:
            return self.q('s1', f"SELECT count() FROM system.zookeeper WHERE path = '{parent}' "
                                f"AND name = '{name}'") == '1'
        except QueryError:
            return False

    def zk_children(self, path):
        out = self.query('s1', f"SELECT name FROM system.zookeeper WHERE path = '{path}' "
                               f"ORDER BY name FORMAT TSVRaw")
        return out.splitlines()

    def zk_4lw(self, word, timeout=2):
        """ZooKeeper's answer to a four-letter word ('' when none)."""
        try:
            with socket.create_connection((HOST, self.zk_port), timeout=timeout) as s:
                s.sendall(word.encode())
                chunks = []
                s.settimeout(timeout)
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    chunks.append(b)
                return b''.join(chunks).decode(errors='replace')
        except OSError:
            return ''

    def zk_serving(self):
        """ZooKeeper accepts sessions. `ruok` alone is not enough: imok comes as
        soon as its socket is open, while it still refuses handshakes until its
        database is loaded; `srvr` reports a Mode only once it really serves."""
        return self.zk_4lw('ruok') == 'imok' and 'Mode: ' in self.zk_4lw('srvr')

    # ------------------------------------------------------------ port reservation

    def _lock_stale(self, lock):
        pid = read_pid(os.path.join(lock, 'pid'))
        if pid and alive(pid):
            return False            # an `up` is still running for it
        try:
            with open(os.path.join(lock, 'owner')) as f:
                owner = f.read().strip()
        except OSError:
            owner = ''
        if owner and os.path.isdir(owner):
            files = [os.path.join(owner, 'zk.pid')]
            files += [os.path.join(owner, d, 'pid') for d in _listdir(owner)]
            for f in files:
                p = read_pid(f)
                if p and alive(p):
                    return False
        # a lock younger than a few seconds may be mid-creation
        try:
            return time.time() - os.stat(lock).st_mtime > 6
        except OSError:
            return True

    def _reserve_base(self):
        os.makedirs(self.lock_root, exist_ok=True)
        try:
            os.chmod(self.lock_root, 0o1777)
        except OSError:
            pass
        gfd = os.open(os.path.join(self.lock_root, '.global'), os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    fcntl.flock(gfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ClusterError(f'could not lock {self.lock_root}/.global') from None
                    time.sleep(0.05)
            forced = os.environ.get('CHC_BASE_PORT')
            if forced:
                if not forced.isdigit() or not 1024 <= int(forced) <= 65435:
                    raise ClusterError('CHC_BASE_PORT must be a port in 1024..65435')
                candidates = [int(forced)]
            else:
                try:
                    with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
                        lo, hi = (int(x) for x in f.read().split())
                except (OSError, ValueError):
                    lo, hi = 32768, 60999
                # skip the kernel's ephemeral range: client sockets live there
                candidates = [b for b in range(20000, 60000, 100) if b + 99 < lo or b > hi]
                random.SystemRandom().shuffle(candidates)
            busy = listening_ports()
            for b in candidates:
                lock = os.path.join(self.lock_root, f'{b}.lock')
                if os.path.isdir(lock):
                    if not self._lock_stale(lock):
                        continue
                    shutil.rmtree(lock, ignore_errors=True)
                if any(p in busy for p in self.all_ports(b)):
                    continue
                try:
                    os.mkdir(lock)
                except OSError:
                    continue
                _write(os.path.join(lock, 'owner'), self.dir + '\n')
                _write(os.path.join(lock, 'pid'), f'{os.getpid()}\n')
                self.base = b
                return
            if forced:
                raise ClusterError(f'CHC_BASE_PORT={forced}: port block busy or reserved '
                                   f'(see {self.lock_root})')
            raise ClusterError('no free port block found')
        finally:
            os.close(gfd)

    def _release_base(self, base):
        lock = os.path.join(self.lock_root, f'{base}.lock')
        try:
            with open(os.path.join(lock, 'owner')) as f:
                if f.read().strip() == self.dir:
                    shutil.rmtree(lock, ignore_errors=True)
        except OSError:
            pass

    # ------------------------------------------------------------ config files

    def remote_servers(self):
        """<remote_servers> for both clusters (and `destination_flat`, every
        destination server a shard), as written to remote_servers.xml."""
        lines = ['<remote_servers>', '    <source>']
        for n in self.src_nodes:
            lines += ['        <shard>',
                      '            <internal_replication>false</internal_replication>',
                      f'            <replica><host>{HOST}</host><port>{n.tcp}</port></replica>',
                      '        </shard>']
        lines += ['    </source>', '    <destination>']
        for s in range(1, self.dst_shards + 1):
            lines.append('        <shard>')
            if self.dst_weights[s - 1] != 1:
                lines.append(f'            <weight>{self.dst_weights[s - 1]}</weight>')
            lines.append('            <internal_replication>true</internal_replication>')
            for n in self.dst_replica_nodes(s):
                lines.append(f'            <replica><host>{HOST}</host><port>{n.tcp}</port></replica>')
            lines.append('        </shard>')
        lines.append('    </destination>')
        # Every destination server as a shard of its own: the benchmark's
        # workload with 4 destination shards (on the 2 x 2 servers).
        lines.append('    <destination_flat>')
        for n in self.dst_nodes:
            lines += ['        <shard>',
                      f'            <replica><host>{HOST}</host><port>{n.tcp}</port></replica>',
                      '        </shard>']
        lines += ['    </destination_flat>', '</remote_servers>']
        return '\n'.join(lines) + '\n'

    def dst_replica_nodes(self, shard):
        return [n for n in self.dst_nodes if n.shard == shard]

    def _zookeeper_inner(self):
        return (f'<zookeeper>\n    <node index="1">\n        <host>{HOST}</host>\n'
                f'        <port>{self.zk_port}</port>\n    </node>\n'
                f'    <session_timeout_ms>30000</session_timeout_ms>\n</zookeeper>\n')

    def _write_zk_config(self):
        zk = os.path.join(self.dir, 'zk')
        os.makedirs(os.path.join(zk, 'data'), exist_ok=True)
        _write(self.zk_cfg, f"""# generated by scripts/cluster
tickTime=500
initLimit=10
syncLimit=5
dataDir={zk}/data
clientPort={self.zk_port}
clientPortAddress={HOST}
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=300000
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr,srvr,conf,cons,envi,wchs,wchc,dump,isro
autopurge.purgeInterval=0
standaloneEnabled=true
""")

    def _write_node_config(self, n):
        nd = n.dir
        for sub in ('data', 'tmp', 'user_files', 'format_schemas', 'log'):
            os.makedirs(os.path.join(nd, sub), exist_ok=True)
        level = os.environ.get('CHC_CH_LOG_LEVEL') or 'information'
        replica = n.name
        _write(n.config, f"""<?xml version="1.0"?>
<!-- generated by scripts/cluster for node {n.name} -->
<yandex>
    <logger>
        <level>{level}</level>
        <log>{nd}/log/clickhouse-server.log</log>
        <errorlog>{nd}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
        <console>0</console>
    </logger>

    <listen_host>{HOST}</listen_host>
    <http_port>{n.http}</http_port>
    <tcp_port>{n.tcp}</tcp_port>
    <interserver_http_port>{n.interserver}</interserver_http_port>
    <interserver_http_host>{HOST}</interserver_http_host>

    <path>{nd}/data/</path>
    <tmp_path>{nd}/tmp/</tmp_path>
    <user_files_path>{nd}/user_files/</user_files_path>
    <format_schema_path>{nd}/format_schemas/</format_schema_path>
    <users_config>{nd}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <umask>022</umask>
    <mlock_executable>false</mlock_executable>

    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>32</max_concurrent_queries>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>8388608</uncompressed_cache_size>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>

    <macros>
        <cluster>{n.cluster}</cluster>
        <shard>{n.shard}</shard>
        <replica>{replica}</replica>
    </macros>

{_indent(self._zookeeper_inner())}
{_indent(self.remote_servers())}
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
""")
        _write(os.path.join(nd, 'users.xml'), f"""<?xml version="1.0"?>
<!-- generated by scripts/cluster for node {n.name} -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>in_order</load_balancing>
            <background_pool_size>4</background_pool_size>
            <background_schedule_pool_size>8</background_schedule_pool_size>
            <max_threads>2</max_threads>
            <!-- system.query_log: the routing test and the benchmark count
                 the rows the source servers read from it -->
            <log_queries>1</log_queries>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <{AUTH_USER}>
            <password>{AUTH_PASSWORD}</password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </{AUTH_USER}>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
""")

    def _write_cluster_files(self):
        # clickhouse-copier 18.16 exits 78 "Not found: logger" without the
        # <logger> section; it writes its logs under --base-dir
        _write(self.zookeeper_xml, '<?xml version="1.0"?>\n'
               '<!-- generated by scripts/cluster: ZooKeeper config for clickhouse-copier -->\n'
               '<yandex>\n    <logger>\n        <level>information</level>\n'
               '        <size>100M</size>\n        <count>3</count>\n    </logger>\n'
               + _indent(self._zookeeper_inner()) + '\n</yandex>\n')
        _write(self.remote_servers_xml, self.remote_servers())
        env = [
            '# generated by scripts/cluster up; source it',
            f"export CHC_CLUSTER_DIR='{self.dir}'",
            f'export CHC_BASE_PORT={self.base}',
            f'export CH_HOST={HOST}',
            f'export ZK_PORT={self.zk_port}',
            f'export ZK_HOSTPORT={self.zk_hostport}',
            f"export ZK_PID_FILE='{self.zk_pid_file}'",
            f"export CH_NODES='{' '.join(self.node_names)}'",
            f"export CH_SRC_NODES='{' '.join(n.name for n in self.src_nodes)}'",
            f"export CH_DST_NODES='{' '.join(n.name for n in self.dst_nodes)}'",
            f'export CH_SRC_SHARDS={self.src_shards}',
            f'export CH_DST_SHARDS={self.dst_shards}',
            f'export CH_DST_REPLICAS={self.dst_replicas}',
            f"export CH_DST_WEIGHTS='{' '.join(str(w) for w in self.dst_weights)}'",
            'export CH_SRC_CLUSTER=source',
            'export CH_DST_CLUSTER=destination',
            f'export CH_AUTH_USER={AUTH_USER}',
            f'export CH_AUTH_PASSWORD={AUTH_PASSWORD}',
            f"export CH_ZOOKEEPER_XML='{self.zookeeper_xml}'",
            f"export CH_REMOTE_SERVERS_XML='{self.remote_servers_xml}'",
        ]
        for n in self.nodes:
            u = n.name.upper()
            env += [f'export CH_{u}_HTTP={n.http}', f'export CH_{u}_TCP={n.tcp}',
                    f'export CH_{u}_INTERSERVER={n.interserver}', f'export CH_{u}_CLUSTER={n.cluster}',
                    f'export CH_{u}_SHARD={n.shard}', f"export CH_{u}_DIR='{n.dir}'",
                    f"export CH_{u}_LOG='{n.log}'"]
        tmp = os.path.join(self.dir, 'cluster.env.tmp')
        _write(tmp, '\n'.join(env) + '\n')
        os.replace(tmp, os.path.join(self.dir, 'cluster.env'))

    @classmethod
    def load(cls, dir, log=None):
        """The cluster brought up in DIR (from DIR/cluster.env)."""
        path = os.path.join(dir, 'cluster.env')
        env = read_env(path)
        if not env:
            raise ClusterError(f'{path} not found: cluster was never brought up here')
        weights = env.get('CH_DST_WEIGHTS', '').split() or None
        c = cls(env.get('CHC_CLUSTER_DIR') or dir, int(env['CH_SRC_SHARDS']), int(env['CH_DST_SHARDS']),
                int(env['CH_DST_REPLICAS']), weights and [int(w) for w in weights], log=log)
        c.base = int(env['CHC_BASE_PORT'])
        return c

    # ------------------------------------------------------------ start / stop

    def _spawn(self, pid_file, log_file, cmd):
        """Start CMD detached (own session, no stdin, output to LOG_FILE) and
        record its PID in PID_FILE."""
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        with open(log_file, 'wb') as out:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
        self._children[p.pid] = p
        tmp = pid_file + '.tmp'
        _write(tmp, f'{p.pid}\n')
        os.replace(tmp, pid_file)
        self._spawned.append(pid_file)
        return p.pid

    def _start_zk(self):
        cp = self.zk_jar + (f':{ZK_LOG_JAR}' if os.access(ZK_LOG_JAR, os.R_OK) else '')
        zk = os.path.join(self.dir, 'zk')
        self._spawn(self.zk_pid_file, os.path.join(zk, 'zookeeper.log'), [
            self.java, '-Xms32m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1',
            f'-Dzookeeper.log.dir={zk}',
            '-Dorg.slf4j.simpleLogger.defaultLogLevel=info',
            '-Dorg.slf4j.simpleLogger.showDateTime=true',
            '-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS',
            '-Dzookeeper.admin.enableServer=false',
            '-Dzookeeper.jmx.log4j.disable=true',
            f'-Dchc.cluster.dir={self.dir}',
            '-cp', cp, 'org.apache.zookeeper.server.ZooKeeperServerMain', self.zk_cfg])

    def _start_node(self, n):
        self._spawn(n.pid_file, os.path.join(n.dir, 'log', 'stdout.log'),
                    [self.ch_server, f'--config-file={n.config}'])

    def log_tail(self, name, lines=20):
        """The last lines of a component's logs ('zk' or a node name)."""
        if name == 'zk':
            files = [os.path.join(self.dir, 'zk', 'zookeeper.log')]
        else:
            n = self.node(name)
            files = [n.log, os.path.join(n.dir, 'log', 'stdout.log')]
        out = []
        for f in files:
            try:
                with open(f, errors='replace') as fh:
                    tail = fh.readlines()[-lines:]
            except OSError:
                continue
            if tail:
                out.append(f'---- last {lines} lines of {f}\n' + ''.join(tail))
        return ''.join(out)

    def _term_wait(self, targets, sig=signal.SIGTERM):
        """Signal the processes recorded in TARGETS [(pid_file, needle)] (if
        still ours), wait up to CHC_STOP_TIMEOUT (15 s), then KILL; remove the
        pid files."""
        pids = []
        for pid_file, needle in targets:
            pid = read_pid(pid_file)
            if pid and owned(pid, needle):
                pids.append(pid)
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + float(os.environ.get('CHC_STOP_TIMEOUT') or 15)
        killed = False
        while True:
            self._reap()
            left = [p for p in pids if alive(p)]
            if not left:
                break
            if time.monotonic() >= deadline:
                if killed:
                    self.log(f"pid(s) survived SIGKILL: {' '.join(map(str, left))}")
                    break
                self.log(f"killing unresponsive pid(s): {' '.join(map(str, left))}")
                for p in left:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                killed = True
                deadline = time.monotonic() + 5
            time.sleep(0.1)
        for pid_file, _ in targets:
            try:
                os.unlink(pid_file)
            except FileNotFoundError:
                pass

    def _reap(self):
        for pid, p in list(self._children.items()):
            if p.poll() is not None:
                del self._children[pid]

    def _stop_all(self):
        # ClickHouse servers first (they talk to ZooKeeper while shutting down)
        targets = []
        for d in _listdir(self.dir):
            pf = os.path.join(self.dir, d, 'pid')
            if os.path.exists(pf):
                targets.append((pf, os.path.join(self.dir, d, 'config.xml')))
        if targets:
            self._term_wait(targets)
        if os.path.exists(self.zk_pid_file):
            self._term_wait([(self.zk_pid_file, self.zk_cfg)])

    def _wait(self, what, ready, pid_file, deadline, component):
        pid = None
        while not ready():
            pid = pid or read_pid(pid_file)
            if pid and not alive(pid):
                raise ClusterError(f'{what} exited during startup\n' + self.log_tail(component))
            if time.monotonic() >= deadline:
                raise ClusterError(f'{what} did not answer within {int(deadline - self._t_wait)}s\n'
                                   + self.log_tail(component))
            time.sleep(POLL)

    def up(self, timeout=None):
        """Start ZooKeeper, then every ClickHouse server; wait until each
        serves (SELECT 1, system.zookeeper) and write the cluster files."""
        for tool, path in (('clickhouse-server', self.ch_server), ('java', self.java)):
            if not os.access(path, os.X_OK):
                raise ClusterError(f'{tool} not found (install: scripts/setup)')
        if not os.access(self.zk_jar, os.R_OK):
            raise ClusterError(f'{self.zk_jar} not found (install: scripts/setup)')
        os.makedirs(self.dir, exist_ok=True)
        for f in [self.zk_pid_file] + [os.path.join(self.dir, d, 'pid') for d in _listdir(self.dir)]:
            pid = read_pid(f)
            if pid and alive(pid):
                raise ClusterError(f'a cluster is already running in {self.dir} (pid {pid} from {f}); '
                                   f'run: scripts/cluster down {self.dir}')
        t0 = time.monotonic()
        self._reserve_base()
        _write(os.path.join(self.dir, '.base'), f'{self.base}\n')
        try:
            self._up(timeout or float(os.environ.get('CHC_CLUSTER_TIMEOUT') or 60))
        except BaseException:
            # a just-started process may still be writing its pid file: ours
            # are written before _spawn returns
            self._stop_all()
            self._release_base(self.base)
            _unlink(os.path.join(self.dir, '.base'))
            raise
        # the reservation now belongs to the cluster, not to this process
        _write(os.path.join(self.lock_root, f'{self.base}.lock', 'pid'), '0\n')
        return time.monotonic() - t0

    def _up(self, timeout):
        self._write_zk_config()
        for n in self.nodes:
            self._write_node_config(n)
        self._write_cluster_files()
        self._t_wait = time.monotonic()
        deadline = self._t_wait + timeout

        # ZooKeeper first, really serving: ClickHouse 18.16's DDLWorker
        # connects once at startup; if that fails the thread gives up and the
        # server later crashes (NULL deref in zkutil::ZooKeeper::createImpl)
        # on ON CLUSTER.
        self._start_zk()
        self._wait(f'ZooKeeper (port {self.zk_port})', self.zk_serving, self.zk_pid_file, deadline, 'zk')

        # Then every ClickHouse server in parallel.
        for n in self.nodes:
            self._start_node(n)
        pending = {n.name: n for n in self.nodes}
        while pending:
            for name, n in list(pending.items()):
                pid = read_pid(n.pid_file)
                if pid and not alive(pid):
                    raise ClusterError(f'ClickHouse server {name} (http port {n.http}) exited during '
                                       f'startup\n' + self.log_tail(name))
                if self.select1(n):
                    del pending[name]
            if not pending:
                break
            if time.monotonic() >= deadline:
                n = next(iter(pending.values()))
                raise ClusterError(f'ClickHouse server {n.name} (http port {n.http}) did not answer '
                                   f'SELECT 1 within {timeout:.0f}s\n' + self.log_tail(n.name))
            time.sleep(POLL)

        # Every server must see ZooKeeper (ReplicatedMergeTree, ON CLUSTER).
        for n in self.nodes:
            while True:
                try:
                    out = self.q(n, "SELECT count() FROM system.zookeeper WHERE path = '/'", timeout=5)
                except QueryError as e:
                    out = str(e)
                if out.isdigit():
                    break
                if time.monotonic() >= deadline:
                    raise ClusterError(f'ClickHouse server {n.name} (http port {n.http}) cannot reach '
                                       f'ZooKeeper at {self.zk_hostport}: {out}\n' + self.log_tail(n.name))
                time.sleep(POLL)

        # Guard against the DDLWorker failure described above (should not
        # happen once ZooKeeper serves before the servers start): restart such
        # a server once, since it would crash on its first ON CLUSTER query.
        for n in self.nodes:
            errlog = os.path.join(n.dir, 'log', 'clickhouse-server.err.log')
            if not _file_has(errlog, 'DDLWorker'):
                continue
            self.log(f'{n.name}: DDLWorker failed to reach ZooKeeper at startup, restarting it')
            os.replace(errlog, errlog + '.ddlworker')
            self._term_wait([(n.pid_file, n.config)])
            self._start_node(n)
            self._wait(f'ClickHouse server {n.name} (http port {n.http})', lambda: self.select1(n),
                       n.pid_file, deadline, n.name)
            if _file_has(errlog, 'DDLWorker'):
                raise ClusterError(f'ClickHouse server {n.name} (http port {n.http}): DDLWorker cannot '
                                   f'reach ZooKeeper\n' + self.log_tail(n.name))

    def down(self):
        """Stop what up() started (idempotent) and release the port block."""
        if not os.path.isdir(self.dir):
            return
        self._stop_all()
        base = self.base
        if base is None:
            env = read_env(os.path.join(self.dir, 'cluster.env'))
            base = env.get('CHC_BASE_PORT') or _read(os.path.join(self.dir, '.base')).strip()
        if base:
            self._release_base(int(base))
        _unlink(os.path.join(self.dir, '.base'))

    def status(self):
        """(every process up and answering, one line per component)."""
        lines = []
        ok = True
        pid = read_pid(self.zk_pid_file)
        state = 'alive' if pid and alive(pid) else 'dead'
        answer = self.zk_4lw('ruok')
        m = re.search(r'^Mode: (.*)$', self.zk_4lw('srvr'), re.M)
        mode = m.group(1) if m else ''
        ok &= state == 'alive' and answer == 'imok' and bool(mode)
        lines.append(f"{'zk':<8} pid {pid or '-':<8} {state:<6} port {self.zk_port:<6} "
                     f"ruok: {answer or 'no answer'}, mode: {mode or 'not serving'}")
        for n in self.nodes:
            pid = read_pid(n.pid_file)
            state = 'alive' if pid and alive(pid) else 'dead'
            answer = 'ok' if self.select1(n) else 'no answer'
            ok &= state == 'alive' and answer == 'ok'
            lines.append(f"{n.name:<8} pid {pid or '-':<8} {state:<6} http {n.http:<6} SELECT 1: {answer}")
        return ok, lines

    def pids(self):
        """Every recorded PID (ZooKeeper first)."""
        out = []
        for f in [self.zk_pid_file] + [n.pid_file for n in self.nodes]:
            p = read_pid(f)
            if p:
                out.append(p)
        return out

    # ------------------------------------------------------------ one component

    def stop_node(self, name, sig=signal.SIGTERM):
        """Stop one ClickHouse server by PID (SIG, KILL after CHC_STOP_TIMEOUT)."""
        n = self.node(name)
        if os.path.exists(n.pid_file):
            self._term_wait([(n.pid_file, n.config)], sig)

    def start_node(self, name, timeout=None):
        """Start one ClickHouse server again, wait until it answers SELECT 1."""
        n = self.node(name)
        pid = read_pid(n.pid_file)
        if pid and alive(pid):
            raise ClusterError(f'{n.name} is already running (pid {pid})')
        if not os.access(n.config, os.R_OK):
            raise ClusterError(f'{n.config} not found')
        timeout = timeout or float(os.environ.get('CHC_CLUSTER_TIMEOUT') or 60)
        self._t_wait = time.monotonic()
        _keep_log(os.path.join(n.dir, 'log', 'stdout.log'))
        self._start_node(n)
        self._wait(f'ClickHouse server {n.name} (http port {n.http})', lambda: self.select1(n),
                   n.pid_file, self._t_wait + timeout, n.name)

    def set_server_setting(self, name, setting, value):
        """Give one ClickHouse server's config SETTING (a top-level element
        its config already has, e.g. max_table_size_to_drop) VALUE and
        restart it: for what 18.16 only reads from its config."""
        n = self.node(name)
        text = open(n.config).read()
        new, k = re.subn(rf'<{setting}>[^<]*</{setting}>', f'<{setting}>{value}</{setting}>', text)
        if k != 1:
            raise ClusterError(f'{n.config}: no single <{setting}> to change')
        self.stop_node(name)
        _write(n.config, new)
        self.start_node(name)

    def stop_zk(self, sig=signal.SIGTERM):
        if os.path.exists(self.zk_pid_file):
            self._term_wait([(self.zk_pid_file, self.zk_cfg)], sig)

    def start_zk(self, timeout=None):
        pid = read_pid(self.zk_pid_file)
        if pid and alive(pid):
            raise ClusterError(f'ZooKeeper is already running (pid {pid})')
        if not os.access(self.zk_cfg, os.R_OK):
            raise ClusterError(f'{self.zk_cfg} not found')
        timeout = timeout or float(os.environ.get('CHC_CLUSTER_TIMEOUT') or 60)
        self._t_wait = time.monotonic()
        _keep_log(os.path.join(self.dir, 'zk', 'zookeeper.log'))
        self._start_zk()
        self._wait(f'ZooKeeper (port {self.zk_port})', self.zk_serving, self.zk_pid_file,
                   self._t_wait + timeout, 'zk')

    def zk_pid(self):
        return read_pid(self.zk_pid_file)

    def server_cpu(self):
        """{component: CPU ticks so far} of every ClickHouse server and ZooKeeper."""
        out = {}
        for name, f in [(n.name, n.pid_file) for n in self.nodes] + [('zk', self.zk_pid_file)]:
            pid = read_pid(f)
            t = proc_cpu_ticks(pid) if pid else None
            if t is not None:
                out[name] = t
        return out


# ---------------------------------------------------------------- small helpers

def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ''


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _listdir(d):
    try:
        return sorted(os.listdir(d))
    except OSError:
        return []


def _indent(text, by='    '):
    return ''.join(by + line if line.strip() else line for line in text.splitlines(True)).rstrip('\n')


def _file_has(path, needle):
    return needle in _read(path)


def _keep_log(path):
    """Keep the previous run's log as PATH.<n> (spawning truncates it)."""
    try:
        if os.path.getsize(path) == 0:
            return
    except OSError:
        return
    n = 1
    while os.path.exists(f'{path}.{n}'):
        n += 1
    os.replace(path, f'{path}.{n}')


def read_env(path):
    """KEY=VALUE pairs of a cluster.env ({} if missing)."""
    env = {}
    for line in _read(path).splitlines():
        line = line.strip()
        if line.startswith('export '):
            key, _, value = line[7:].partition('=')
            parts = shlex.split(value) if value else ['']
            env[key] = parts[0] if parts else ''
    return env


# ---------------------------------------------------------------- CLI

USAGE = 'usage: cluster up|down|status DIR | stop-node|start-node DIR NODE | stop-zk|start-zk DIR'


def _stop_signal():
    s = os.environ.get('CHC_STOP_SIGNAL') or 'TERM'
    if s not in ('TERM', 'KILL'):
        raise ClusterError('CHC_STOP_SIGNAL must be TERM or KILL')
    return signal.SIGTERM if s == 'TERM' else signal.SIGKILL


def _running(dir):
    if not os.path.isdir(dir):
        raise ClusterError(f'no such directory: {dir}')
    return Cluster.load(os.path.realpath(dir))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[1] or (argv[0] in ('stop-node', 'start-node')) != (len(argv) == 3) \
            or len(argv) > 3 or (len(argv) == 3 and not argv[2]):
        print(USAGE, file=sys.stderr)
        return 2
    cmd, dir = argv[0], argv[1]

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        if cmd == 'up':
            weights = os.environ.get('CHC_DST_WEIGHTS', '').split() or None
            c = Cluster(os.path.realpath(_mkdir(dir)), os.environ.get('CHC_SRC_SHARDS', 2),
                        os.environ.get('CHC_DST_SHARDS', 2), os.environ.get('CHC_DST_REPLICAS', 2),
                        weights)
            try:
                took = c.up()
            except KeyboardInterrupt:
                print(f'{PROG}: up failed: interrupted', file=sys.stderr)
                return 1
            except ClusterError as e:
                print(f'{PROG}: up failed: {e}', file=sys.stderr)
                return 1
            print(f'{PROG}: up: {len(c.nodes)} ClickHouse servers + ZooKeeper (base port {c.base}) '
                  f'in {took:.1f}s; env: {c.dir}/cluster.env')
        elif cmd == 'down':
            if os.path.isdir(dir):
                d = os.path.realpath(dir)
                try:
                    c = Cluster.load(d)
                except (ClusterError, KeyError, ValueError):
                    c = Cluster(d)
                c.down()
        elif cmd == 'status':
            ok, lines = _running(dir).status()
            print('\n'.join(lines))
            return 0 if ok else 1
        elif cmd == 'stop-node':
            c = _running(dir)
            c.node(argv[2])
            c.stop_node(argv[2], _stop_signal())
        elif cmd == 'start-node':
            _running(dir).start_node(argv[2])
        elif cmd == 'stop-zk':
            _running(dir).stop_zk(_stop_signal())
        elif cmd == 'start-zk':
            _running(dir).start_zk()
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except ClusterError as e:
        print(f'{PROG}: {e}', file=sys.stderr)
        return 1
    return 0


def _mkdir(d):
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise ClusterError(f'cannot create {d}: {e.strerror}') from None
    return d


if __name__ == '__main__':
    sys.exit(main())

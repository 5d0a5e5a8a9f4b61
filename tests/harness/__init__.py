"""harness: the Python test harness of chcopier (integration tests, chaos run,
benchmark, demo) against real local clusters.

Modules, each owning one thing:
  cluster   the local cluster: ZooKeeper + ClickHouse 18.16 servers on
            127.0.0.1, ports, generated configs, start/stop by PID, queries
            (CLI: scripts/cluster)
  taskxml   the task XML builder (remote_servers of a cluster, table tasks)
  chcopier  running chcopier: upload, workers, status, their logs
  verify    the one verification of a copy: destination vs source per
            partition, replicas, duplicate ids, staging tables left
  chaos     the chaos run (CLI: scripts/chaos)
  bench     the benchmark against clickhouse-copier (CLI: scripts/bench)
  demo      the README's demo (CLI: scripts/demo)

Only the standard library is used (python3 3.11 from Debian); pytest is
needed by tests/integration only.
"""

import os

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

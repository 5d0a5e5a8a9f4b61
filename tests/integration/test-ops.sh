#!/usr/bin/env bash
# test-ops.sh — issue #7's operator commands on a real cluster: `plan`
# prints partitions, pieces, DDL and SQL and writes nothing (ZooKeeper and
# every node's system.tables unchanged); `clean` refuses without --yes and
# while a worker runs, and with --yes removes the task's state and every
# staging table.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_up
Z=$(zk_xml)

for i in 1 2; do
    q "s$i" "CREATE DATABASE db"
    q "s$i" "CREATE TABLE db.t (id UInt64, d Date, s String) ENGINE = MergeTree
        PARTITION BY toYYYYMM(d) ORDER BY id"
    q "s$i" "INSERT INTO db.t SELECT number * 2 + $i - 1, toDate('2019-01-01') + number % 70,
        toString(number) FROM numbers(20000)"
done
write_task "$DIR/task.xml" "<t><cluster_pull>source</cluster_pull><database_pull>db</database_pull>
  <table_pull>t</table_pull><cluster_push>destination</cluster_push>
  <database_push>db</database_push><table_push>t2</table_push>
  <engine>ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/t2', '{replica}')
    PARTITION BY toYYYYMM(d) ORDER BY id</engine>
  <sharding_key>id</sharding_key><number_of_splits>2</number_of_splits></t>"

snapshot() { # ZooKeeper tree under /chc and every node's tables
    local n
    q s1 "SELECT path, name FROM system.zookeeper WHERE path IN ('/', '/chc', '/chc/ops') ORDER BY path, name" 2>/dev/null || true
    for n in $CH_NODES; do
        echo "$n: $(q "$n" "SELECT groupArray(concat(database, '.', name)) FROM system.tables WHERE database NOT IN ('system')")"
    done
}
before=$(snapshot)
rc=0
"$CHCOPIER" plan --config "$Z" --task-path /chc/ops --task-file "$DIR/task.xml" >"$DIR/plan.txt" || rc=$?
sed 's/^/#   /' "$DIR/plan.txt" | head -30
# 20000 rows a shard: small partitions, copied together as one group, one
# piece per source shard (number_of_splits 2).
check "plan exits 0 and lists the 3 partitions, DDL and copy SQL" \
    eval '[[ $rc == 0 ]] && grep -q "partitions: 3 (1 copy group(s) of small partitions), pieces: 2" "$DIR/plan.txt" &&
          grep -q "201901: 17732 rows, 1 piece(s) per shard for it and the next 2, on source shards 1 2" "$DIR/plan.txt" &&
          grep -q "201903: 6270 rows, copied with 201901, on source shards 1 2" "$DIR/plan.txt" &&
          grep -q "WHERE ((toYYYYMM(d)) IN (201901, 201902, 201903))" "$DIR/plan.txt" &&
          grep -q "CREATE TABLE IF NOT EXISTS" "$DIR/plan.txt" && grep -q "INSERT INTO" "$DIR/plan.txt" &&
          grep -q "REPLACE PARTITION" "$DIR/plan.txt"'
check "plan wrote nothing to ZooKeeper or ClickHouse" eval '[[ "$(snapshot)" == "$before" ]]'

"$CHCOPIER" upload --config "$Z" --task-path /chc/ops --task-file "$DIR/task.xml" 2>/dev/null
# A worker that is alive but stopped: clean must refuse.
"$CHCOPIER" --config "$Z" --task-path /chc/ops --base-dir "$DIR/logs" --max-pieces-in-flight 1 &
worker=$!
for _ in $(seq 50); do zk_exists /chc/ops/workers && [[ -n $(zk_children /chc/ops/workers) ]] && break; sleep 0.1; done
kill -STOP "$worker"
rc=0
"$CHCOPIER" clean --yes --config "$Z" --task-path /chc/ops 2>"$DIR/clean.err" || rc=$?
check "clean refuses while a worker runs (exit $rc): $(cat "$DIR/clean.err")" \
    eval '[[ $rc == 1 ]] && grep -q "worker(s) are running" "$DIR/clean.err"'
kill -CONT "$worker"
wait "$worker"
staging() { local n; for n in $CH_DST_NODES; do q "$n" "SELECT name FROM system.tables WHERE database = 'db' AND name LIKE 't2\\_%'"; done; }
# Leave staging behind on purpose, as a crashed run would.
q d1r1 "CREATE TABLE db.t2_piece_0 AS db.t2 ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id"
rc=0
"$CHCOPIER" clean --config "$Z" --task-path /chc/ops >"$DIR/clean.out" 2>&1 || rc=$?
check "clean without --yes: exit 2, says what it would remove, removes nothing" \
    eval '[[ $rc == 2 ]] && grep -q "would drop" "$DIR/clean.out" && zk_exists /chc/ops/tables && [[ -n $(staging) ]]'
rc=0
"$CHCOPIER" clean --yes --config "$Z" --task-path /chc/ops >"$DIR/clean.out" 2>&1 || rc=$?
check "clean --yes removes the task's state and every staging table, keeps the description" \
    eval '[[ $rc == 0 ]] && ! zk_exists /chc/ops/tables && ! zk_exists /chc/ops/active && zk_exists /chc/ops/description && [[ -z $(staging) ]]'
check "the destination data is untouched by clean" \
    eval '[[ $(q s1 "SELECT count() FROM remote('"'"'127.0.0.1:$CH_D1R1_TCP,127.0.0.1:$CH_D2R1_TCP'"'"', db, t2)") == 40000 ]]'
finish

#!/usr/bin/env bash
# test-reject.sh — rejected rows (seed 002's case): the destination's column
# type cannot take the source's values. The piece fails, the worker logs a
# clear line naming the table and the server's error (which names the
# column), does not retry what would fail again (issue #12: errors that
# end), exits 1 and marks nothing done. After the operator fixes the
# destination table, a new worker finishes with exact results.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_up
Z=$(zk_xml)

for i in 1 2; do
    q "s$i" "CREATE DATABASE db"
    q "s$i" "CREATE TABLE db.events (id UInt64, d Date, code String) ENGINE = MergeTree
        PARTITION BY toYYYYMM(d) ORDER BY id"
    q "s$i" "INSERT INTO db.events SELECT number * 2 + $i - 1, toDate('2018-03-01') + number % 40,
        if(number % 10 = 0, concat('E', toString(number)), toString(number)) FROM numbers(5000)"
done
# The operator pre-created the destination with a numeric column.
for n in $CH_DST_NODES; do
    q "$n" "CREATE DATABASE db"
    q "$n" "CREATE TABLE db.events (id UInt64, d Date, code UInt32)
        ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/events', '{replica}')
        PARTITION BY toYYYYMM(d) ORDER BY id"
done
write_task "$DIR/task.xml" "<events><cluster_pull>source</cluster_pull><database_pull>db</database_pull>
  <table_pull>events</table_pull><cluster_push>destination</cluster_push>
  <database_push>db</database_push><table_push>events</table_push>
  <engine>ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/events', '{replica}')
    PARTITION BY toYYYYMM(d) ORDER BY id</engine>
  <sharding_key>id</sharding_key><number_of_splits>2</number_of_splits></events>"
"$CHCOPIER" upload --config "$Z" --task-path /chc/rej --task-file "$DIR/task.xml" 2>/dev/null

start=$(date +%s)
rc=0
timeout 120 "$CHCOPIER" --config "$Z" --task-path /chc/rej --base-dir "$DIR/logs" "${PATH_ARGS[@]}" \
    --retry-delay-ms 300 --max-shard-partition-tries 1000 2>"$DIR/worker.err" || rc=$?
took=$(($(date +%s) - start))
log() { cat "$DIR"/logs/*/log.log 2>/dev/null; }
line=$(log | grep -m1 'copy failed' || true)
echo "# $line"
echo "# exit $rc after $took s: $(tail -1 "$DIR/worker.err")"
check "a rejected piece logs one line naming the table and the server's error" \
    eval '[[ $line == *"[events "* && $line == *"Cannot parse"* ]]'
check "the refusal is not retried: the worker exits 1 within 60 s (exit $rc, $took s)" \
    eval '[[ $rc == 1 && $took -le 60 ]]'
check "its last line names the table and says retrying cannot help" \
    eval 'tail -1 "$DIR/worker.err" | grep -q "table .events.: copying a piece was refused and would be again.*Cannot parse"'
# Only March has rows with letters.
check "nothing of the rejected partition is marked done or moved" \
    eval '[[ $(q d1r1 "SELECT count() FROM db.events WHERE toYYYYMM(d) = 201803") == 0 ]] && ! log | grep -q "events 201803 piece .*piece copied"'
"$CHCOPIER" status --json --config "$Z" --task-path /chc/rej >"$DIR/status.json"
status_failing() {
    python3 - "$DIR/status.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["tables"][0]
assert t["failing_pieces"] > 0 and "Cannot parse" in t["last_error"], t
print("# status: %d failing pieces, last error: %s" % (t["failing_pieces"], t["last_error"][:100]))
PY
}
check "status shows the failing pieces and their last error" status_failing

# The operator fixes the destination and starts the worker again.
for n in d1r1 d2r1; do
    q "$n" "ALTER TABLE db.events MODIFY COLUMN code String"
done
for n in d1r2 d2r2; do
    for _ in $(seq 50); do
        [[ $(q "$n" "SELECT type FROM system.columns WHERE database = 'db' AND table = 'events' AND name = 'code'") == String ]] && break
        sleep 0.2
    done
done
rc=0
timeout 300 "$CHCOPIER" --config "$Z" --task-path /chc/rej --base-dir "$DIR/logs" "${PATH_ARGS[@]}" \
    --retry-delay-ms 300 || rc=$?
exact() {
    local a b
    a=$(q s1 "SELECT toYYYYMM(d) p, count(), sum(cityHash64(id, d, code)) FROM remote('127.0.0.1:$CH_S1_TCP,127.0.0.1:$CH_S2_TCP', db, events) GROUP BY p ORDER BY p FORMAT TSV")
    b=$(q s1 "SELECT toYYYYMM(d) p, count(), sum(cityHash64(id, d, code)) FROM remote('127.0.0.1:$CH_D1R1_TCP,127.0.0.1:$CH_D2R1_TCP', db, events) GROUP BY p ORDER BY p FORMAT TSV")
    [[ "$a" == "$b" ]] || { echo "# source $a"; echo "# destination $b"; return 1; }
}
check "after the fix a new worker finishes (exit $rc) with exact results" \
    eval '[[ $rc == 0 ]] && exact'
finish

#!/usr/bin/env bash
# test-faults.sh — issue #6's named fault points on a real cluster: a worker
# _exit()s abruptly at each point (no session close, its ephemeral claims stay
# until its session would expire); a fresh worker then finishes the task.
# After each: every destination partition holds the source rows exactly once
# plus the 50 rows it had before (append mode), no id is duplicated, no
# staging table is left. Then random copy and move faults with retries.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_up
Z=$(zk_xml)

for i in 1 2; do
    q "s$i" "CREATE DATABASE db"
    q "s$i" "CREATE TABLE db.src (id UInt64, d Date, v String, n Nullable(UInt32))
        ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id"
    q "s$i" "INSERT INTO db.src SELECT number * 2 + $i - 1, toDate('2018-01-01') + number % 59,
        toString(number), if(number % 4 = 0, NULL, number) FROM numbers(20000)"
done
src_all="remote('127.0.0.1:$CH_S1_TCP,127.0.0.1:$CH_S2_TCP', db, src)"
dst_all() { echo "remote('127.0.0.1:$CH_D1R1_TCP,127.0.0.1:$CH_D2R1_TCP', db, $1)"; }

setup_dest() { # table: replicated destination with 50 rows already in 201801
    local n
    for n in $CH_DST_NODES; do
        q "$n" "CREATE DATABASE IF NOT EXISTS db"
        q "$n" "CREATE TABLE db.$1 (id UInt64, d Date, v String, n Nullable(UInt32))
            ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/$1', '{replica}')
            PARTITION BY toYYYYMM(d) ORDER BY id"
    done
    q d1r1 "INSERT INTO db.$1 SELECT 1000000 + number, toDate('2018-01-10'), 'before', NULL FROM numbers(50)"
}
task() { # file table
    write_task "$1" "<t><cluster_pull>source</cluster_pull><database_pull>db</database_pull>
      <table_pull>src</table_pull><cluster_push>destination</cluster_push>
      <database_push>db</database_push><table_push>$2</table_push>
      <engine>ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/$2', '{replica}')
        PARTITION BY toYYYYMM(d) ORDER BY id</engine>
      <sharding_key>id</sharding_key><number_of_splits>2</number_of_splits></t>" 2
}
exact() { # table -> exactly source + the 50 rows from before, per partition
    local a b
    a=$(q s1 "SELECT toYYYYMM(d) p, count() + if(p = 201801, 50, 0),
              sum(cityHash64(id, v)) + if(p = 201801, (SELECT sum(cityHash64(1000000 + number, 'before')) FROM numbers(50)), 0)
              FROM $src_all GROUP BY p ORDER BY p FORMAT TSV")
    b=$(q s1 "SELECT toYYYYMM(d) p, count(), sum(cityHash64(id, v)) FROM $(dst_all "$1")
              GROUP BY p ORDER BY p FORMAT TSV")
    [[ "$a" == "$b" ]] || { echo "# expected: $a"; echo "# got:      $b"; return 1; }
    [[ $(q s1 "SELECT count() FROM (SELECT id FROM $(dst_all "$1") GROUP BY id HAVING count() > 1)") == 0 ]] ||
        { echo "# duplicated ids"; return 1; }
    [[ -z $(q d1r1 "SELECT name FROM system.tables WHERE database = 'db' AND name LIKE '$1\\_%'") ]] ||
        { echo "# staging left"; return 1; }
}

n=0
for point in after_claim during_cleanup after_insert after_assemble after_assembled_record after_replace; do
    n=$((n + 1))
    t=f$n
    setup_dest "$t"
    task "$DIR/$t.xml" "$t"
    "$CHCOPIER" upload --config "$Z" --task-path "/chc/$t" --task-file "$DIR/$t.xml" 2>/dev/null
    if [[ $point == during_cleanup ]]; then
        # Cleaning happens only for a dirty piece: make one first.
        "$CHCOPIER" --config "$Z" --task-path "/chc/$t" --base-dir "$DIR/logs-$t" "${PATH_ARGS[@]}" \
            --fault-point after_insert || true
    fi
    rc=0
    "$CHCOPIER" --config "$Z" --task-path "/chc/$t" --base-dir "$DIR/logs-$t" "${PATH_ARGS[@]}" --fault-point "$point" || rc=$?
    start=$(date +%s.%N)
    rc2=0
    "$CHCOPIER" --config "$Z" --task-path "/chc/$t" --base-dir "$DIR/logs-$t" "${PATH_ARGS[@]}" || rc2=$?
    echo "# $point: killed with exit $rc, restarted worker finished (exit $rc2) in $(echo "$(date +%s.%N) - $start" | bc) s"
    check "killed at '$point' (exit 99), a new worker finishes: exact, no duplicates, no staging" \
        eval '[[ $rc == 99 && $rc2 == 0 ]] && exact "$t"'
done

# Random faults of the original's kind: pieces abort after one row, moves
# abort after assembly; the worker retries until done. --min-piece-rows 0:
# every partition its own pieces, so that there are many chances to fail.
t=frand
setup_dest "$t"
task "$DIR/$t.xml" "$t"
"$CHCOPIER" upload --config "$Z" --task-path "/chc/$t" --task-file "$DIR/$t.xml" 2>/dev/null
rc=0
"$CHCOPIER" --config "$Z" --task-path "/chc/$t" --base-dir "$DIR/logs-$t" "${PATH_ARGS[@]}" --retry-delay-ms 100 \
    --max-shard-partition-tries 50 --copy-fault-probability 0.3 --move-fault-probability 0.3 \
    --min-piece-rows 0 || rc=$?
faults=$( (cat "$DIR"/logs-$t/*/log.log | grep -c 'fault injected') || true)
echo "# random faults injected: $faults"
check "copy and move faults (p=0.3): finishes exact after $faults injected faults" \
    eval '[[ $rc == 0 && $faults -gt 0 ]] && exact "$t"'
finish

#!/usr/bin/env bash
# test-zk-stall.sh — a ZooKeeper that stops answering cannot hang a worker.
# ZooKeeper is SIGSTOPped for 3 s (its TCP connections stay open, nothing is
# answered) while a worker polls it; the session is 6 s, so libzookeeper
# itself would only give up on the silent connection after 4 s, and the call
# deadline is cut to 1 s (CHC_ZK_CALL_TIMEOUT_MS): what ends the stalled call
# is chcopier's deadline. To keep the worker polling, a partition's move lock
# is held by a fake worker on another host (a persistent node made with
# zkCli), which is deleted once ZooKeeper is back.
# Checks: the worker gives up on the call (op and path logged) while
# ZooKeeper is still stopped, abandons the session and opens a new one after
# SIGCONT; once the lock is gone it finishes (exit 0, no sanitizer report);
# the destination holds the source rows exactly once; no staging is left.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ZKCLI=${CHC_ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
[[ -x $ZKCLI ]] || { echo "1..0 # SKIP $ZKCLI not installed"; exit 77; }
cluster_up
T0=$(date +%s)

sed -E 's#<session_timeout_ms>[0-9]+<#<session_timeout_ms>6000<#' "$(zk_xml)" >"$DIR/zk6.xml"
Z=$DIR/zk6.xml
# libzookeeper 3.8.0 leaks a multi's per-op completion entries when a
# connection loss cuts the multi (see scripts/chaos): not chcopier's leak.
printf 'leak:zoo_amulti\n' >"$DIR/lsan.supp"
export LSAN_OPTIONS=suppressions=$DIR/lsan.supp

zkcli() { "$ZKCLI" -server "127.0.0.1:$ZK_PORT" "$@" >>"$DIR/zkcli.log" 2>&1; }
zk_pid() { cat "$DIR/zk.pid"; }
# wait_for TENTHS CMD...: poll CMD every 0.1 s, up to TENTHS tenths of a second
wait_for() {
    local n=$1
    shift
    until "$@"; do
        ((n-- > 0)) || return 1
        sleep 0.1
    done
}

for i in 1 2; do
    q "s$i" "CREATE DATABASE db"
    q "s$i" "CREATE TABLE db.src (id UInt64, d Date, v String)
        ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id"
    q "s$i" "INSERT INTO db.src SELECT number * 2 + $i - 1, toDate('2018-01-01') + number % 80,
        toString(number) FROM numbers(5000)"
done
for n in d1r1 d2r1; do
    q "$n" "CREATE DATABASE db"
    q "$n" "CREATE TABLE db.dst (id UInt64, d Date, v String)
        ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id"
done
write_task "$DIR/task.xml" "<t><cluster_pull>source</cluster_pull><database_pull>db</database_pull>
  <table_pull>src</table_pull><cluster_push>destination</cluster_push>
  <database_push>db</database_push><table_push>dst</table_push>
  <engine>ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id</engine>
  <sharding_key>id</sharding_key><number_of_splits>2</number_of_splits></t>"
"$CHCOPIER" upload --config "$Z" --task-path /chc/s --task-file "$DIR/task.xml" 2>/dev/null

# A first worker discovers the partitions and dies at its first claim, so
# the table's ZooKeeper root exists before the lock is faked.
rc=0
"$CHCOPIER" --config "$Z" --task-path /chc/s --base-dir "$DIR/logs1" "${PATH_ARGS[@]}" \
    --fault-point after_claim 2>/dev/null || rc=$?
check "first worker died at after_claim (exit $rc)" test "$rc" = 99
id=$(zk_children /chc/s/tables)
zroot=/chc/s/tables/$id/$(zk_children "/chc/s/tables/$id")
# A "#sums" line, then one line per partition, its literal last; toYYYYMM
# literals are their own ZooKeeper names.
parts=$(zk_get "$zroot/partitions" | grep -v '^#' | awk -F'\t' '{ print $NF }')
p=$(head -1 <<<"$parts")
n_parts=$(wc -l <<<"$parts")
if ! [[ $p =~ ^2018[0-9][0-9]$ ]] || ((n_parts < 2)); then
    echo "# unexpected partition list: $parts"
    exit 1
fi
zkcli create "$zroot/locks/$p#move" "elsewhere#fake_1"
check "fake move lock of partition $p created (of $n_parts)" zk_exists "$zroot/locks/$p#move"

others_done() {
    local q n=0
    for q in $parts; do
        [[ $q == "$p" ]] && continue
        [[ $(zk_get "$zroot/parts/$q") == done* ]] && n=$((n + 1))
    done
    ((n == n_parts - 1))
}
logged() { grep -qE "$1" "$DIR"/logs2/*/log.log 2>/dev/null; }

CHC_ZK_CALL_TIMEOUT_MS=1000 "$CHCOPIER" --config "$Z" --task-path /chc/s --base-dir "$DIR/logs2" \
    --log-level debug --retry-delay-ms 200 "${PATH_ARGS[@]}" 2>"$DIR/worker2.err" &
W=$!
check "the other partitions are moved; the worker polls for $p's lock" wait_for 300 others_done
sleep 0.5

kill -STOP "$(zk_pid)"
stopped=$SECONDS
t=$(date +%s.%N)
gave_up=0
wait_for 25 logged 'got no answer within 1000 ms' && gave_up=1
waited=$(echo "$(date +%s.%N) - $t" | bc)
sleep "$(echo "x = 3 - $waited; if (x < 0) x = 0; x" | bc)"
kill -CONT "$(zk_pid)"
echo "# ZooKeeper stopped $((SECONDS - stopped))-ish s; the worker gave up after $waited s"
grep -h 'no answer within' "$DIR"/logs2/*/log.log | head -2 | sed 's/^/# /' || true
check "the stalled call gives up after ~1 s, while ZooKeeper is still stopped" test "$gave_up" = 1
check "the unanswered call is named with its path" logged "zookeeper: [a-z ]+ '/chc/s/[^']*' got no answer within"
check "the worker reconnects after SIGCONT" wait_for 200 logged 'ZooKeeper session re-established'

zkcli delete "$zroot/locks/$p#move"
rc=0
end=$((SECONDS + 60))
while kill -0 "$W" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
if kill -0 "$W" 2>/dev/null; then
    kill -9 "$W"
    not_ok "the worker finishes once the fake lock is gone (still running after 60 s)"
else
    wait "$W" || rc=$?
    check "the worker finishes once the fake lock is gone (exit $rc)" test "$rc" = 0
fi
grep -q 'Sanitizer' "$DIR/worker2.err" && { sed 's/^/# /' "$DIR/worker2.err" | head -30; not_ok "sanitizer report"; }

src_all="remote('127.0.0.1:$CH_S1_TCP,127.0.0.1:$CH_S2_TCP', db, src)"
dst_all="remote('127.0.0.1:$CH_D1R1_TCP,127.0.0.1:$CH_D2R1_TCP', db, dst)"
exact() {
    local a b
    a=$(q s1 "SELECT toYYYYMM(d) p, count(), sum(cityHash64(id, v)) FROM $src_all GROUP BY p ORDER BY p FORMAT TSV")
    b=$(q s1 "SELECT toYYYYMM(d) p, count(), sum(cityHash64(id, v)) FROM $dst_all GROUP BY p ORDER BY p FORMAT TSV")
    [[ -n "$a" && "$a" == "$b" ]] || { echo "# source: $a"; echo "# destination: $b"; return 1; }
    [[ $(q s1 "SELECT count() FROM (SELECT id FROM $dst_all GROUP BY id HAVING count() > 1)") == 0 ]]
}
no_staging() {
    local n
    for n in $CH_DST_NODES; do
        [[ -z $(q "$n" "SELECT name FROM system.tables WHERE database = 'db' AND name LIKE 'dst\\_%'") ]] || return 1
    done
}
check "destination equals the source per partition, no duplicates" exact
check "no staging table left" no_staging
echo "# took $(($(date +%s) - T0)) s after the cluster was up"
finish

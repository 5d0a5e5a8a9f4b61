#!/usr/bin/env bash
# test-copy.sh — issue #4 on a real cluster: 2 source shards -> 2 x 2
# ReplicatedMergeTree. Checks, per partition, count and sum(cityHash64(*))
# of destination vs source; per-shard routing vs a real Distributed table;
# month->week repartitioning, where_condition, enabled_partitions, splits 1
# and 7, a non-partitioned table, two table tasks in one description, two
# workers at once, a second run (no double copy), append into a partition
# that already has rows, max_workers=1 with two workers.
# Env: CHC_DATA_PATH=pull|pipe selects the data path under test.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_up
Z=$(zk_xml)
ROWS=${CHC_TEST_ROWS:-60000}

src_all() { echo "remote('127.0.0.1:$CH_S1_TCP,127.0.0.1:$CH_S2_TCP', db, $1)"; }
dst_all() { echo "remote('127.0.0.1:$CH_D1R1_TCP,127.0.0.1:$CH_D2R1_TCP', db, $1)"; }

# Source: mixed types, distinct rows per shard, unique id, signed sharding key.
for i in 1 2; do
    q "s$i" "CREATE DATABASE IF NOT EXISTS db"
    q "s$i" "CREATE TABLE db.mixed (id UInt64, d Date, dt DateTime, sk Int16, u32 UInt32,
        f Float64, s String, n Nullable(String), a Array(UInt32))
        ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY (u32, id)"
    q "s$i" "INSERT INTO db.mixed SELECT number * 2 + $i - 1 AS id,
        toDate('2018-01-01') + intDiv(number * 97, $ROWS) AS d, toDateTime(d) + number % 86400,
        toInt16(number % 2000) - 1000, toUInt32(number % 777), number / 7,
        concat('row ', toString(id), ' \\t\\'q'), if(number % 5 = 0, NULL, toString(number % 13)),
        range(number % 5) FROM numbers($ROWS)"
    q "s$i" "CREATE TABLE db.flat (id UInt64, v String) ENGINE = MergeTree ORDER BY id"
    q "s$i" "INSERT INTO db.flat SELECT number * 2 + $i - 1, toString(number) FROM numbers(5000)"
done

# compare SRC_TABLE DST_TABLE PARTITION_EXPR [WHERE] -> 0 when every partition matches
compare() {
    local st=$1 dt=$2 pe=$3 where=${4:-1} a b
    a=$(q s1 "SELECT $pe AS p, count(), sum(cityHash64(*)) FROM $(src_all "$st") WHERE $where
              GROUP BY p ORDER BY p FORMAT TSV")
    b=$(q s1 "SELECT $pe AS p, count(), sum(cityHash64(*)) FROM $(dst_all "$dt")
              GROUP BY p ORDER BY p FORMAT TSV")
    if [[ "$a" != "$b" || -z "$a" ]]; then
        echo "# source:"; sed 's/^/#   /' <<<"$a" | head -20
        echo "# destination:"; sed 's/^/#   /' <<<"$b" | head -20
        return 1
    fi
}
# replicas_agree TABLE: each destination shard's second replica has the same rows
replicas_agree() {
    local t=$1 s
    for s in 1 2; do
        local r1 r2 n1=CH_D${s}R1_HTTP
        r1=$(q "d${s}r1" "SELECT count(), sum(cityHash64(*)) FROM db.$t")
        q "d${s}r2" "SYSTEM SYNC REPLICA db.$t" >/dev/null
        r2=$(q "d${s}r2" "SELECT count(), sum(cityHash64(*)) FROM db.$t")
        [[ "$r1" == "$r2" ]] || { echo "# shard $s: $r1 vs $r2 (${!n1})"; return 1; }
    done
}
no_dups() { [[ $(q s1 "SELECT count() FROM (SELECT id, count() c FROM $(dst_all "$1") GROUP BY id HAVING c > 1)") == 0 ]]; }
no_staging() {
    local n
    for n in $CH_DST_NODES; do
        [[ -z $(q "$n" "SELECT name FROM system.tables WHERE database = 'db' AND (name LIKE '%_piece_%' OR name LIKE '%_assembly')") ]] || return 1
    done
}

table() { # name src dst engine sharding_key [extra]
    echo "<$1><cluster_pull>source</cluster_pull><database_pull>db</database_pull>
      <table_pull>$2</table_pull><cluster_push>destination</cluster_push>
      <database_push>db</database_push><table_push>$3</table_push>
      <engine>$4</engine><sharding_key>$5</sharding_key>${6:-}</$1>"
}
rmt() { echo "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/$1', '{replica}') $2"; }

T1=$DIR/task1.xml
write_task "$T1" "
$(table monthly mixed m_month "$(rmt m_month 'PARTITION BY toYYYYMM(d) ORDER BY (u32, id)')" sk \
    '<number_of_splits>3</number_of_splits>')
$(table weekly mixed m_week "$(rmt m_week 'PARTITION BY toMonday(d) ORDER BY (id)')" 'cityHash64(id)' \
    '<number_of_splits>7</number_of_splits>')
$(table filtered mixed m_where "$(rmt m_where 'PARTITION BY toYYYYMM(d) ORDER BY id')" 'rand()' \
    "<number_of_splits>1</number_of_splits><where_condition>u32 % 3 = 1</where_condition>
     <enabled_partitions><partition>201803</partition><partition>201801</partition></enabled_partitions>")
$(table flat flat flat "$(rmt flat 'ORDER BY id')" id)
$(table plain mixed m_plain 'ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id' id)"

"$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$T1"
start=$(date +%s.%N)
# --min-piece-rows 0: every partition gets number_of_splits pieces, however
# small, so that 3 and 7 splits are exercised.
"$CHCOPIER" --config "$Z" --task-path /chc/t1 --base-dir "$DIR/logs" \
    "${PATH_ARGS[@]}" --max-pieces-in-flight 3 --log-format json --min-piece-rows 0 &
w1=$!
MPORT=$((CHC_BASE_PORT + 99))
"$CHCOPIER" --config "$Z" --task-path /chc/t1 --base-dir "$DIR/logs" "${PATH_ARGS[@]}" \
    --metrics-port "$MPORT" --min-piece-rows 0 &
w2=$!
for _ in $(seq 50); do
    sleep 0.2
    curl -sf "http://127.0.0.1:$MPORT/metrics" >"$DIR/metrics.txt" || true
    grep -q '^chcopier_pieces{table="monthly",state="done"}' "$DIR/metrics.txt" && break
done
during_rc=0
"$CHCOPIER" status --config "$Z" --task-path /chc/t1 >"$DIR/status-during.txt" || during_rc=$?
rc1=0; rc2=0
wait $w1 || rc1=$?
wait $w2 || rc2=$?
echo "# two workers took $(echo "$(date +%s.%N) - $start" | bc) s"
sed 's/^/#   /' "$DIR/status-during.txt" | head -12
sed 's/^/#   /' "$DIR/metrics.txt" | grep -v '^#   #' | head -8
check "metrics scraped with curl during the copy (Prometheus text)" \
    eval 'grep -q "^chcopier_up 1" "$DIR/metrics.txt" && grep -q "^chcopier_pieces{table=\"monthly\",state=\"done\"}" "$DIR/metrics.txt" && grep -q "^# TYPE chcopier_rows_copied_total counter" "$DIR/metrics.txt"'
check "status while workers run: exit 0, lists the tables" \
    eval '[[ $during_rc == 0 ]] && grep -q "^table weekly" "$DIR/status-during.txt"'
"$CHCOPIER" status --json --config "$Z" --task-path /chc/t1 >"$DIR/status.json"
status_done() {
    python3 - "$DIR/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["task_path"] == "/chc/t1" and s["workers"] == [], s
names = [t["name"] for t in s["tables"]]
assert names == ["monthly", "weekly", "filtered", "flat", "plain"], names
for t in s["tables"]:
    assert t["state"] == "done", t
    assert t["partitions_done"] == t["partitions_total"] > 0, t
    assert t["pieces_done"] == t["pieces_total"] > 0, t
    assert t["in_flight"] == [], t
assert s["tables"][0]["rows_verified"] == 120000, s["tables"][0]
PY
}
check "status --json after the run: every table done, rows verified" status_done
check "two workers started together both exit 0" test "$rc1$rc2" = 00
check "mixed types, monthly: every partition's count and checksum equal" compare mixed m_month 'toYYYYMM(d)'
check "monthly: no duplicated id" no_dups m_month
check "monthly: second replicas agree" replicas_agree m_month
check "month -> week repartitioning, 7 splits" compare mixed m_week 'toMonday(d)'
check "where_condition + enabled_partitions (1 split, rand() key)" \
    compare mixed m_where 'toYYYYMM(d)' "u32 % 3 = 1 AND toYYYYMM(d) IN (201801, 201803)"
check "non-partitioned table" compare flat flat 1
check "non-replicated destination: every row once per shard" compare mixed m_plain 'toYYYYMM(d)'
copies_agree() {
    local s a b
    for s in 1 2; do
        a=$(q "d${s}r1" "SELECT count(), sum(cityHash64(*)) FROM db.m_plain")
        b=$(q "d${s}r2" "SELECT count(), sum(cityHash64(*)) FROM db.m_plain")
        [[ "$a" == "$b" && ${a%%$'\t'*} -gt 0 ]] || { echo "# shard $s: $a vs $b"; return 1; }
    done
}
check "non-replicated destination: each replica holds its own full copy" copies_agree
json_logs() {
    python3 - "$DIR"/logs/*/log.log <<'PY'
import json, sys
seen = 0
for path in sys.argv[1:]:
    for line in open(path):
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        assert {"time", "level", "pid", "worker", "message"} <= e.keys(), e
        if e.get("event") == "piece_done":
            assert e["table"] and e["partition"] and e["piece"] >= 0 and e["rows"] >= 0, e
            assert e["duration"] >= 0, e
            seen += 1
assert seen > 0, "no piece_done events"
print("# json piece_done events:", seen)
PY
}
check "--log-format json: one JSON object per line with table/partition/piece/rows" json_logs

# Credentials: source replicas reached as user chc with a password (remote()
# carries it); it must work and never reach our logs, even at trace level.
T3=$DIR/task3.xml
write_task "$T3" "$(table auth flat f_auth "$(rmt f_auth 'ORDER BY id')" id)"
awk -v u="$CH_AUTH_USER" -v p="$CH_AUTH_PASSWORD" '
    /<source>/ { src = 1 } /<\/source>/ { src = 0 }
    { if (src) sub(/<\/replica>/, "<user>" u "</user><password>" p "</password></replica>"); print }' \
    "$T3" >"$T3.auth"
"$CHCOPIER" --config "$Z" --task-path /chc/t3 --task-file "$T3.auth" --base-dir "$DIR/logs-auth" \
    "${PATH_ARGS[@]}" --log-level trace 2>"$DIR/auth.stderr" || true
check "source reached with user and password" compare flat f_auth 1
no_secrets() { ! grep -rq "$CH_AUTH_PASSWORD" "$DIR"/logs-auth/ "$DIR/auth.stderr"; }
check "the source password never appears in logs (trace level)" no_secrets
check "no staging tables left once finished" no_staging
done_pieces=$(cat "$DIR"/logs/*/log.log | grep -c 'piece copied' || true)
# monthly 4 partitions x 3 splits x 2 shards + weekly 14 x 7 x 2 + filtered
# 2 x 1 x 2 + flat 1 x 3 x 2 + plain 4 x 3 x 2.
check "two workers: every piece copied exactly once ($done_pieces)" test "$done_pieces" = 254

# Routing: the same rows through a real Distributed table with the same key.
for n in $CH_DST_NODES; do
    q "$n" "CREATE TABLE db.ref AS db.m_month ENGINE = MergeTree ORDER BY id"
done
q d1r1 "CREATE TABLE db.ref_dist AS db.ref ENGINE = Distributed(destination, db, ref, sk)"
q d1r1 "INSERT INTO db.ref_dist SELECT * FROM $(src_all mixed)" >/dev/null
# 18.16 sends Distributed inserts asynchronously: wait until all arrived.
for _ in $(seq 100); do
    [[ $(q s1 "SELECT count() FROM remote('127.0.0.1:$CH_D1R1_TCP,127.0.0.1:$CH_D1R2_TCP,127.0.0.1:$CH_D2R1_TCP,127.0.0.1:$CH_D2R2_TCP', db, ref)") == \
        "$(q s1 "SELECT count() FROM $(src_all mixed)")" ]] && break
    sleep 0.2
done
route_ok() {
    local s ref got
    for s in 1 2; do
        ref=$( (q "d${s}r1" "SELECT count() FROM db.ref"; q "d${s}r2" "SELECT count() FROM db.ref") | paste -sd+ | bc)
        got=$(q "d${s}r1" "SELECT count() FROM db.m_month")
        echo "# shard $s: distributed $ref, chcopier $got"
        [[ $ref == "$got" && $got -gt 0 ]] || return 1
    done
}
check "per-shard counts equal a real Distributed(sharding_key) insert (signed Int16 key)" route_ok

# Second run of a finished task: nothing copied again.
before=$(q s1 "SELECT count() FROM $(dst_all m_month)")
"$CHCOPIER" --config "$Z" --task-path /chc/t1 --base-dir "$DIR/logs2" "${PATH_ARGS[@]}"
check "second run of a finished task exits 0 and copies nothing" \
    eval '[[ $(q s1 "SELECT count() FROM $(dst_all m_month)") == "$before" ]] && ! grep -q "piece copied" "$DIR"/logs2/*/log.log'

# Append into a destination partition that already has rows; max_workers=1
# with two workers.
for n in d1r1 d2r1; do
    q "$n" "CREATE TABLE db.app AS db.m_month ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/app', '{replica}') PARTITION BY toYYYYMM(d) ORDER BY (u32, id)" 
done
for n in d1r2 d2r2; do
    q "$n" "CREATE TABLE db.app AS db.m_month ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/app', '{replica}') PARTITION BY toYYYYMM(d) ORDER BY (u32, id)"
done
q d1r1 "INSERT INTO db.app SELECT 9000000 + number, toDate('2018-01-15'), now(), 0, 1, 0, 'old', NULL, [] FROM numbers(100)"
T2=$DIR/task2.xml
write_task "$T2" "$(table app mixed app "$(rmt app 'PARTITION BY toYYYYMM(d) ORDER BY (u32, id)')" sk \
    '<number_of_splits>2</number_of_splits>')" 1
"$CHCOPIER" upload --config "$Z" --task-path /chc/t2 --task-file "$T2"
"$CHCOPIER" --config "$Z" --task-path /chc/t2 --base-dir "$DIR/logs3" "${PATH_ARGS[@]}" &
w1=$!
"$CHCOPIER" --config "$Z" --task-path /chc/t2 --base-dir "$DIR/logs3" "${PATH_ARGS[@]}" &
w2=$!
rc1=0; rc2=0
wait $w1 || rc1=$?
wait $w2 || rc2=$?
check "max_workers=1 with two workers: both finish" test "$rc1$rc2" = 00
appended() {
    local src dst
    src=$(q s1 "SELECT count() FROM $(src_all mixed)")
    dst=$(q s1 "SELECT count() FROM $(dst_all app)")
    echo "# source $src, destination $dst (100 rows were there before)"
    [[ $dst == $((src + 100)) ]] &&
        [[ $(q s1 "SELECT count() FROM $(dst_all app) WHERE s = 'old'") == 100 ]]
}
check "append mode keeps the destination's rows and adds the source's" appended

# Copy groups: month-partitioned source into daily partitions (~100 days of
# a few hundred rows each); with --min-piece-rows 6000 consecutive days are
# copied together, one read of the source per group. Two workers, random
# copy faults (a dirty group is cleaned partition by partition) and move
# faults.
TG=$DIR/task-groups.xml
write_task "$TG" "$(table daily mixed m_day "$(rmt m_day 'PARTITION BY d ORDER BY (u32, id)')" sk \
    '<number_of_splits>3</number_of_splits>')"
"$CHCOPIER" upload --config "$Z" --task-path /chc/groups --task-file "$TG"
rc1=0; rc2=0
"$CHCOPIER" --config "$Z" --task-path /chc/groups --base-dir "$DIR/logs4" "${PATH_ARGS[@]}" \
    --min-piece-rows 6000 --copy-fault-probability 0.2 --move-fault-probability 0.2 \
    --max-shard-partition-tries 50 --max-shard-partition-piece-tries-for-alter 50 &
w1=$!
"$CHCOPIER" --config "$Z" --task-path /chc/groups --base-dir "$DIR/logs4" "${PATH_ARGS[@]}" \
    --min-piece-rows 6000 &
w2=$!
wait $w1 || rc1=$?
wait $w2 || rc2=$?
groups=$(grep -ho 'partitions ([0-9]* copy groups' "$DIR"/logs4/*/log.log | head -1 | grep -o '([0-9]*' | tr -d '(')
days=$(q s1 "SELECT uniqExact(d) FROM $(src_all mixed)")
faults=$( (cat "$DIR"/logs4/*/log.log | grep -c 'fault injected') || true)
echo "# $days daily partitions in ${groups:-?} copy groups, $faults faults injected"
check "daily partitions in copy groups, two workers with faults: both exit 0" \
    eval '[[ $rc1$rc2 == 00 && $faults -gt 0 ]]'
check "copy groups: several, each of several days" eval '[[ ${groups:-0} -ge 3 && $groups -lt $((days / 3)) ]]'
check "copy groups: every daily partition's count and checksum equal" compare mixed m_day d
check "copy groups: no duplicated id, second replicas agree" eval 'no_dups m_day && replicas_agree m_day'
check "copy groups: no staging tables left" no_staging
finish

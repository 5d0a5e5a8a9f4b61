#!/usr/bin/env bash
# tests/integration/test-cluster.sh: owns the end-to-end test of the local
# test cluster tooling (scripts/cluster, scripts/chq): two clusters up at the
# same time on disjoint ports, replication inside `destination`, status, and a
# clean `down` that leaves no process and no listening port behind.
#
# Exit 0 pass, 1 fail, 77 skip (clickhouse-server, zkServer.sh or java
# missing). Env: CHC_SOURCE_ROOT (default: repo root from this script's path),
# CHC_KEEP_TMP=1 keeps the temp dir.
# shellcheck disable=SC2317 # helpers are called through check/wait_for/trap
set -euo pipefail

ROOT=${CHC_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CLUSTER=$ROOT/scripts/cluster
CHQ=$ROOT/scripts/chq

for tool in clickhouse-server java; do
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
        echo "1..0 # SKIP $tool not installed (scripts/setup)"
        exit 77
    fi
done
if [[ ! -x /usr/share/zookeeper/bin/zkServer.sh ]] && ! command -v zkServer.sh >/dev/null 2>&1; then
    echo "1..0 # SKIP zookeeper not installed (scripts/setup)"
    exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chc-test-cluster.XXXXXX")
A=$TMP/a
B=$TMP/b
n=0 passed=0 failed=0

cleanup() {
    local rc=$?
    "$CLUSTER" down "$A" >/dev/null 2>&1 || true
    "$CLUSTER" down "$B" >/dev/null 2>&1 || true
    if [[ -n "${CHC_KEEP_TMP:-}" || $failed -gt 0 || $rc -ne 0 ]]; then
        echo "# cluster dirs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() {
    n=$((n + 1)) passed=$((passed + 1))
    echo "ok $n - $1"
}
not_ok() {
    n=$((n + 1)) failed=$((failed + 1))
    echo "not ok $n - $1"
    if [[ -n "${2:-}" ]]; then
        local line
        while IFS= read -r line; do echo "#   $line"; done <<<"$2"
    fi
}
# check DESC CMD...: run CMD, ok if it exits 0 (output shown on failure)
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}
finish() {
    echo "1..$n"
    echo "$passed passed, $failed failed"
    ((failed == 0)) || exit 1
    exit 0
}
bail() {
    not_ok "$1" "${2:-}"
    echo "Bail out! $1"
    finish
}

# wait_for DEADLINE_S CMD...: retry CMD every 0.2 s
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

env_get() { # env_get DIR VAR
    (
        # shellcheck disable=SC1091
        source "$1/cluster.env"
        printf '%s' "${!2}"
    )
}

cluster_ports() { # every port the cluster in DIR listens on
    grep -E '^export (ZK_PORT|CH_[A-Z0-9]+_(HTTP|TCP|INTERSERVER))=' "$1/cluster.env" | sed 's/.*=//' | sort -n
}

cluster_pids() {
    local f
    for f in "$1/zk.pid" "$1"/*/pid; do
        [[ -s "$f" ]] && echo "$(<"$f")"
    done
    return 0
}

listening() { ss -Hltn | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u; }

# processes whose command line mentions DIR (ClickHouse config path, ZooKeeper
# zoo.cfg and -Dchc.cluster.dir)
procs_of() {
    local p cmd
    for p in /proc/[0-9]*; do
        [[ "${p#/proc/}" == "$$" ]] && continue
        cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        if [[ "$cmd" == *"$1/"* && "$cmd" != *test-cluster.sh* ]]; then
            echo "${p#/proc/} $cmd"
        fi
    done
}

all_answer() { # all_answer DIR: SELECT 1 on every node via chq
    local node out bad=0
    for node in $(env_get "$1" CH_NODES); do
        out=$("$CHQ" "$1" "$node" 'SELECT 1' 2>&1) || true
        if [[ "$out" != 1 ]]; then
            echo "$node: $out"
            bad=1
        fi
    done
    return "$bad"
}

zk_imok() {
    local port
    port=$(env_get "$1" ZK_PORT)
    # shellcheck disable=SC2016
    [[ "$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf ruok >&3 && cat <&3' "$port")" == imok ]]
}

count_is() { # count_is DIR NODE TABLE N
    [[ "$("$CHQ" "$1" "$2" "SELECT count() FROM $3")" == "$4" ]]
}

echo "# source root: $ROOT"
echo "# temp dir: $TMP"

# ---- two clusters brought up at the same time
t0=$EPOCHREALTIME
"$CLUSTER" up "$A" >"$TMP/up-a.log" 2>&1 &
pa=$!
"$CLUSTER" up "$B" >"$TMP/up-b.log" 2>&1 &
pb=$!
rca=0 rcb=0
wait "$pa" || rca=$?
wait "$pb" || rcb=$?
up_time=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
((rca == 0)) || bail "cluster A up (concurrently with B)" "$(cat "$TMP/up-a.log")"
ok "cluster A up (concurrently with B)"
((rcb == 0)) || bail "cluster B up (concurrently with A)" "$(cat "$TMP/up-b.log")"
ok "cluster B up (concurrently with A) in ${up_time}s for both"

nodes=$(env_get "$A" CH_NODES)
if [[ "$nodes" == "s1 s2 d1r1 d1r2 d2r1 d2r2" ]]; then
    ok "default layout: $nodes"
else
    not_ok "default layout" "CH_NODES=$nodes"
fi

dup=$(sort <(cluster_ports "$A") <(cluster_ports "$B") | uniq -d)
if [[ -z "$dup" && "$(cluster_ports "$A" | wc -l)" -eq 19 ]]; then
    ok "clusters A and B use disjoint ports (A base $(env_get "$A" CHC_BASE_PORT), B base $(env_get "$B" CHC_BASE_PORT))"
else
    not_ok "clusters A and B use disjoint ports" "shared: $dup"
fi

for f in cluster.env zookeeper.xml remote_servers.xml; do
    [[ -s "$A/$f" && -s "$B/$f" ]] || not_ok "$f written" "missing in $A or $B"
done
if grep -q "<port>$(env_get "$A" ZK_PORT)</port>" "$A/zookeeper.xml" &&
    grep -q '<destination>' "$A/remote_servers.xml" && grep -q '<source>' "$A/remote_servers.xml" &&
    [[ "$(grep -c '<replica>' "$A/remote_servers.xml")" -eq 6 ]]; then
    ok "zookeeper.xml and remote_servers.xml describe the cluster"
else
    not_ok "zookeeper.xml and remote_servers.xml describe the cluster" "$(cat "$A/zookeeper.xml" "$A/remote_servers.xml")"
fi
if command -v xmllint >/dev/null 2>&1; then
    check "every generated XML file is well-formed" \
        xmllint --noout "$A/zookeeper.xml" "$A/remote_servers.xml" "$A"/*/config.xml "$A"/*/users.xml
fi

check "every node of A answers SELECT 1" all_answer "$A"
check "every node of B answers SELECT 1" all_answer "$B"
check "ZooKeeper of A answers imok" zk_imok "$A"
check "ZooKeeper of B answers imok" zk_imok "$B"

# ---- macros, users, chq error path
check "d2r1 macros are cluster=destination shard=2 replica=d2r1" \
    test "$("$CHQ" "$A" d2r1 "SELECT arrayStringConcat(groupArray(concat(macro, '=', substitution)), ' ') FROM (SELECT * FROM system.macros ORDER BY macro)")" = \
    "cluster=destination replica=d2r1 shard=2"
check "user chc/chcpass can log in" \
    test "$(CHQ_USER=chc CHQ_PASSWORD=chcpass "$CHQ" "$A" s1 "SELECT user FROM system.processes WHERE query LIKE '%chc-login-probe%'")" = chc
if out=$(CHQ_USER=chc CHQ_PASSWORD=wrong "$CHQ" "$A" s1 'SELECT 1' 2>&1); then
    not_ok "a wrong password is rejected" "$out"
else
    ok "a wrong password is rejected"
fi
if out=$("$CHQ" "$A" s1 'SELECT no_such_column' 2>&1); then
    not_ok "chq exits non-zero on a query error" "$out"
elif [[ "$out" == *no_such_column* ]]; then
    ok "chq exits non-zero on a query error and prints the server's error"
else
    not_ok "chq prints the server's error" "$out"
fi

# ---- replication inside `destination`
ddl="CREATE TABLE default.t ON CLUSTER destination (d Date, x UInt64)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/t', '{replica}') PARTITION BY d ORDER BY x"
check "CREATE TABLE ... ON CLUSTER destination (ReplicatedMergeTree) on A" "$CHQ" "$A" d1r1 "$ddl"
check "same table path in B does not clash with A (own ZooKeeper)" "$CHQ" "$B" d1r1 "$ddl"
missing=""
for node in d1r1 d1r2 d2r1 d2r2; do
    wait_for 20 test "$("$CHQ" "$A" "$node" "EXISTS TABLE default.t" 2>/dev/null)" = 1 || missing+=" $node"
done
if [[ -z "$missing" ]]; then ok "table exists on every destination node"; else not_ok "table exists on every destination node" "missing on:$missing"; fi

check "insert 1000 rows on d1r1" "$CHQ" "$A" d1r1 \
    "INSERT INTO default.t SELECT toDate('2020-01-01') + number % 3, number FROM system.numbers LIMIT 1000"
check "rows replicate to d1r2" wait_for 30 count_is "$A" d1r2 default.t 1000
check "d1r2 has the same data as d1r1" \
    test "$("$CHQ" "$A" d1r2 'SELECT sum(x), uniqExact(d) FROM default.t')" = "$(printf '499500\t3')"
check "shard 2 (d2r1) got nothing" count_is "$A" d2r1 default.t 0
check "cluster B is untouched" count_is "$B" d1r2 default.t 0
check "insert on d2r2" "$CHQ" "$A" d2r2 "INSERT INTO default.t VALUES (today(), 7)"
check "replicated insert on d2r2 visible on d2r1" wait_for 30 count_is "$A" d2r1 default.t 1
check "Distributed query over destination sees both shards" \
    test "$("$CHQ" "$A" d1r1 "SELECT count() FROM remote('127.0.0.1:$(env_get "$A" CH_D1R1_TCP),127.0.0.1:$(env_get "$A" CH_D2R1_TCP)', default.t)")" = 1001

# ---- the generated files drive the reference clickhouse-copier
if ! command -v clickhouse-copier >/dev/null 2>&1 || [[ ! -x /usr/share/zookeeper/bin/zkCli.sh ]]; then
    ok "reference clickhouse-copier round trip # SKIP clickhouse-copier or zkCli.sh missing"
else
    # runs inside `if` (check), where set -e is off: every step checks itself
    copier_round_trip() {
        local zkcli=/usr/share/zookeeper/bin/zkCli.sh zk s node task=$TMP/task.xml
        zk=$(env_get "$A" ZK_HOSTPORT)
        for s in 1 2; do
            "$CHQ" "$A" "s$s" "CREATE TABLE default.src (d Date, x UInt64) ENGINE = MergeTree PARTITION BY d ORDER BY x" || return 1
            "$CHQ" "$A" "s$s" "INSERT INTO default.src SELECT toDate('2020-01-01') + number % 2, number + $(((s - 1) * 500)) FROM system.numbers LIMIT 500" || return 1
        done
        {
            echo '<?xml version="1.0"?>'
            echo '<yandex>'
            cat "$A/remote_servers.xml"
            cat <<'EOF'
<max_workers>2</max_workers>
<settings_pull><readonly>1</readonly></settings_pull>
<settings_push><readonly>0</readonly></settings_push>
<settings><connect_timeout>3</connect_timeout><insert_distributed_sync>1</insert_distributed_sync></settings>
<tables>
  <table_src>
    <cluster_pull>source</cluster_pull><database_pull>default</database_pull><table_pull>src</table_pull>
    <cluster_push>destination</cluster_push><database_push>default</database_push><table_push>dst</table_push>
    <engine>ENGINE = ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/dst', '{replica}') PARTITION BY d ORDER BY x</engine>
    <sharding_key>intHash64(x)</sharding_key>
  </table_src>
</tables>
</yandex>
EOF
        } >"$task" || return 1
        if command -v xmllint >/dev/null 2>&1; then xmllint --noout "$task" || return 1; fi
        "$zkcli" -server "$zk" create /copier "" >/dev/null 2>&1
        "$zkcli" -server "$zk" create /copier/t1 "" >/dev/null 2>&1
        "$zkcli" -server "$zk" create /copier/t1/description "$(cat "$task")" >/dev/null 2>&1
        [[ "$("$CHQ" "$A" s1 "SELECT count() FROM system.zookeeper WHERE path = '/copier/t1' AND name = 'description'")" == 1 ]] ||
            { echo "task description not in ZooKeeper"; return 1; }
        (cd "$TMP" && timeout 120 clickhouse-copier --config-file "$A/zookeeper.xml" --task-path /copier/t1 \
            --base-dir "$TMP/copier" >"$TMP/copier.out" 2>&1) || { cat "$TMP/copier.out"; return 1; }
        local total
        total=$("$CHQ" "$A" d1r1 "SELECT count(), sum(x) FROM remote('127.0.0.1:$(env_get "$A" CH_D1R1_TCP),127.0.0.1:$(env_get "$A" CH_D2R1_TCP)', default.dst)")
        [[ "$total" == "$(printf '1000\t499500')" ]] || { echo "destination has: $total"; return 1; }
        for node in d1r2 d2r2; do
            wait_for 30 test "$("$CHQ" "$A" "$node" 'SELECT count() > 0 FROM default.dst' 2>/dev/null)" = 1 ||
                { echo "$node did not get replicated rows"; return 1; }
        done
    }
    check "reference clickhouse-copier copies source -> destination with zookeeper.xml + remote_servers.xml" copier_round_trip
fi

# ---- status
check "status A exits 0" "$CLUSTER" status "$A"
check "status B exits 0" "$CLUSTER" status "$B"

# ---- down A: only A goes away
mapfile -t pids_a < <(cluster_pids "$A")
mapfile -t ports_a < <(cluster_ports "$A")
base_a=$(env_get "$A" CHC_BASE_PORT)
if [[ ${#pids_a[@]} -eq 7 ]]; then ok "A recorded 7 pids"; else not_ok "A recorded 7 pids" "${pids_a[*]}"; fi
t0=$EPOCHREALTIME
check "down A" "$CLUSTER" down "$A"
down_time=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "# down A took ${down_time}s"
alive_pids=""
for p in "${pids_a[@]}"; do
    if [[ -e /proc/$p ]] && [[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]]; then alive_pids+=" $p"; fi
done
if [[ -z "$alive_pids" ]]; then ok "every recorded pid of A is gone"; else not_ok "every recorded pid of A is gone" "alive:$alive_pids"; fi
left=$(procs_of "$A")
if [[ -z "$left" ]]; then ok "no process mentions A's directory"; else not_ok "no process mentions A's directory" "$left"; fi
busy=$(comm -12 <(printf '%s\n' "${ports_a[@]}" | sort -u) <(listening))
if [[ -z "$busy" ]]; then ok "all ${#ports_a[@]} ports of A are free"; else not_ok "all ports of A are free" "still listening: $busy"; fi
if [[ ! -e "${CHC_PORT_LOCK_DIR:-/tmp/chc-ports}/$base_a.lock" ]]; then
    ok "port reservation of A released"
else
    not_ok "port reservation of A released" "$(ls -la "${CHC_PORT_LOCK_DIR:-/tmp/chc-ports}/$base_a.lock")"
fi
if "$CLUSTER" status "$A" >/dev/null 2>&1; then not_ok "status A exits non-zero after down"; else ok "status A exits non-zero after down"; fi
check "down A again is a no-op" "$CLUSTER" down "$A"
check "B still answers after A went down" all_answer "$B"

# ---- down B
mapfile -t pids_b < <(cluster_pids "$B")
mapfile -t ports_b < <(cluster_ports "$B")
check "down B" "$CLUSTER" down "$B"
alive_pids=""
for p in "${pids_b[@]}"; do
    if [[ -e /proc/$p ]] && [[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]]; then alive_pids+=" $p"; fi
done
left=$(procs_of "$B")
busy=$(comm -12 <(printf '%s\n' "${ports_b[@]}" | sort -u) <(listening))
if [[ -z "$alive_pids$left$busy" ]]; then
    ok "nothing of B remains (pids, processes, ports)"
else
    not_ok "nothing of B remains" "pids:$alive_pids procs:$left ports:$busy"
fi

finish

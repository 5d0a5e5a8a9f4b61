#!/usr/bin/env bash
# test-cli.sh — issue #3 against a real ZooKeeper: upload and forced upload of
# the task description, and every bad input exits with one clear line and
# changes nothing in ZooKeeper (checked through system.zookeeper).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_up

T=$DIR/task.xml
write_task "$T" "<hits><cluster_pull>source</cluster_pull><database_pull>db</database_pull>
  <table_pull>t</table_pull><cluster_push>destination</cluster_push>
  <database_push>db</database_push><table_push>t</table_push>
  <engine>ENGINE = MergeTree PARTITION BY d ORDER BY k</engine>
  <sharding_key>k</sharding_key></hits>"
Z=$(zk_xml)

# run CMD... -> sets RC, OUT (stdout), ERR (stderr)
run() {
    set +e
    OUT=$("$@" 2>"$DIR/stderr")
    RC=$?
    set -e
    ERR=$(cat "$DIR/stderr")
}
has() { [[ $ERR == *"$1"* ]]; }
same() { [[ "$(zk_get "$1")" == "$(cat "$2")" ]]; }
one_line() { [[ $(printf '%s' "$ERR" | wc -l) -eq 0 && -n $ERR ]]; }

run "$CHCOPIER" --help
check "--help exits 0 and lists --task-path" eval '[[ $RC == 0 && $OUT == *--task-path* ]]' 
run "$CHCOPIER" --version
check "--version prints the version" grep -q '^chcopier [0-9]' <<<"$OUT"
run "$CHCOPIER" --config "$Z" --task-path /chc/t1 --frobnicate
check "unknown flag: exit 2, one line naming it" \
    eval '[[ $RC == 2 ]] && has "unknown flag" && has "--frobnicate"'
check "unknown flag: one line" one_line

# Bad inputs: exit 2, one line naming the file/element, nothing in ZooKeeper.
bad() { # name, file content edit (sed expr), expected substring
    local name=$1 expr=$2 want=$3 f=$DIR/bad-$RANDOM.xml
    sed "$expr" "$T" >"$f"
    run "$CHCOPIER" upload --config "$Z" --task-path "/chc/bad_$name" --task-file "$f"
    if [[ $RC == 2 && $ERR == *"$want"* && $ERR == *"$f"* ]] && one_line &&
        ! zk_exists "/chc/bad_$name" && ! zk_exists /chc; then
        ok "bad input '$name' -> exit 2: $ERR"
    else
        not_ok "bad input '$name': rc=$RC err=$ERR"
    fi
}
bad malformed 's|</tables>|</tablez>|' "malformed XML"
bad unknown_cluster 's|<cluster_push>destination<|<cluster_push>nowhere<|' "unknown cluster 'nowhere'"
bad missing_element 's|<table_pull>t</table_pull>||' "<tables/hits/table_pull> is required"
bad splits_zero 's|<sharding_key>|<number_of_splits>0</number_of_splits><sharding_key>|' \
    "number_of_splits> must be an integer"
bad engine_log 's|ENGINE = MergeTree PARTITION BY d ORDER BY k|ENGINE = Log|' "is not supported"
bad no_sharding_key 's|<sharding_key>k</sharding_key>||' "sharding_key> is required"
bad duplicate_table 's|</hits>|</hits><hits/>|' "defined twice"

run "$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$DIR/nonexistent.xml"
check "unreadable task file: exit 2 naming it" \
    eval '[[ $RC == 2 ]] && has "nonexistent.xml: cannot read"' 

sed "s/<port>$ZK_PORT</<port>1</" "$Z" >"$DIR/zk-bad.xml"
start=$(date +%s)
run "$CHCOPIER" upload --config "$DIR/zk-bad.xml" --task-path /chc/t1 --task-file "$T"
check "unreachable ZooKeeper: exit 1 listing the hosts tried" \
    eval '[[ $RC == 1 ]] && has "127.0.0.1:1" && one_line'
check "unreachable ZooKeeper: nothing created" eval '! zk_exists /chc' 
check "unreachable ZooKeeper: gives up within 15 s" test $(($(date +%s) - start)) -le 15

run "$CHCOPIER" --config "$Z" --task-path /chc/none --base-dir "$DIR/logs"
check "missing description: one clear line, exit 2" \
    eval '[[ $RC == 2 ]] && has "no task description at /chc/none/description; upload it with --task-file" && one_line' 

# Upload, identical re-upload, different without force (kept), with force.
run "$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$T"
check "upload creates <task-path>/description with ancestors" \
    eval '[[ $RC == 0 ]] && same /chc/t1/description "$T"' 
sed 's|<max_workers>4<|<max_workers>7<|' "$T" >"$DIR/task2.xml"
run "$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$DIR/task2.xml"
check "different description without force is kept, with a warning" \
    eval '[[ $RC == 0 ]] && has "keeping it" && same /chc/t1/description "$T"' 
run "$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$DIR/task2.xml" --task-upload-force
check "--task-upload-force (bare) overwrites" \
    eval '[[ $RC == 0 ]] && same /chc/t1/description "$DIR/task2.xml"' 
run "$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$T" --task-upload-force=false
check "--task-upload-force=false keeps" \
    eval '[[ $RC == 0 ]] && same /chc/t1/description "$DIR/task2.xml"' 
run "$CHCOPIER" upload --config "$Z" --task-path /chc/t1 --task-file "$T" --task-upload-force true
check "--task-upload-force true (original style) overwrites" \
    eval '[[ $RC == 0 ]] && same /chc/t1/description "$T"' 

# --daemon with relative paths (clickhouse-copier #11526).
mkdir -p "$DIR/rel"
(cd "$DIR/rel" && "$CHCOPIER" --daemon --config "$Z" --task-path /chc/none \
    --base-dir logs --pid-file chc.pid) || true
for _ in $(seq 50); do
    compgen -G "$DIR/rel/logs/chcopier_*/log.err.log" >/dev/null &&
        grep -q 'no task description' "$DIR"/rel/logs/chcopier_*/log.err.log 2>/dev/null && break
    sleep 0.1
done
check "--daemon with relative --base-dir and --pid-file works" \
    eval '[[ -s $DIR/rel/chc.pid ]] && grep -q "no task description" "$DIR"/rel/logs/chcopier_*/log.err.log' 

finish

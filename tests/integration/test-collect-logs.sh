#!/usr/bin/env bash
# test-collect-logs.sh — scripts/collect-logs on fake local base-dirs (no
# cluster needed): text and json worker logs, two sources with the same base
# name, a non-worker file that must stay out. Checks the archive's layout and
# bytes, SUMMARY.txt's counts and last error lines, and that bad usage exits 2
# with one line and writes nothing. Remote (HOST:/dir) sources are not tested.
# check/eval take single-quoted conditions on purpose.
# shellcheck disable=SC2016,SC2034
set -euo pipefail

ROOT=${CHC_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
COLLECT=$ROOT/scripts/collect-logs
for bin in tar gzip; do
    command -v "$bin" >/dev/null || { echo "1..0 # SKIP $bin not installed"; exit 77; }
done

TESTS_RUN=0
TESTS_FAILED=0
ok() { TESTS_RUN=$((TESTS_RUN + 1)); echo "ok $TESTS_RUN - $*"; }
not_ok() { TESTS_RUN=$((TESTS_RUN + 1)); TESTS_FAILED=$((TESTS_FAILED + 1)); echo "not ok $TESTS_RUN - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

DIR=$(mktemp -d /tmp/chc-collect.XXXXXX)
cleanup() {
    if ((TESTS_FAILED > 0)); then echo "# files kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# --- fake base-dirs -------------------------------------------------------
# a/logs: text format. Worker 1: 4 errors, 2 warnings; worker 2: clean.
W1=chcopier_20261122002437_21230
W2=chcopier_20261122003001_21300
mkdir -p "$DIR/a/logs/$W1" "$DIR/a/logs/$W2" "$DIR/a/logs/not-a-worker"
cat >"$DIR/a/logs/$W1/log.log" <<'EOF'
2026-11-22 00:24:37.571 21230 I worker vm#1 starting on task /chc/t (logs in ./x)
2026-11-22 00:24:37.600 21230 D [hits] probing partitions
2026-11-22 00:24:38.001 21230 E [hits 201901 piece 1 shard 1] first error, must not be in the last 3
2026-11-22 00:24:38.100 21230 W [hits 201901 piece 1 shard 1] slow query, retrying
2026-11-22 00:24:39.200 21230 E [hits 201901 piece 2 shard 1] second error
2026-11-22 00:24:39.300 21230 I message that mentions E and W and "level":"error"
2026-11-22 00:24:40.300 21230 W zookeeper: connection loss, retrying
2026-11-22 00:24:41.000 21230 E third error
2026-11-22 00:24:42.000 21230 E [hits 201902 piece 0 shard 2] fourth error
2026-11-22 00:24:43.000 21230 T trace line
EOF
grep -E '^[^ ]+ [^ ]+ [0-9]+ [EW] ' "$DIR/a/logs/$W1/log.log" >"$DIR/a/logs/$W1/log.err.log"
printf '2026-11-22 00:30:01.000 21300 I nothing to do\n' >"$DIR/a/logs/$W2/log.log"
: >"$DIR/a/logs/$W2/log.err.log"
echo "not a worker" >"$DIR/a/logs/not-a-worker/log.log"
echo "stray" >"$DIR/a/logs/README"

# b/logs: json format, only log.log (counted there). 2 errors, 3 warnings.
W3=chcopier_20261122010000_555
mkdir -p "$DIR/b/logs/$W3"
cat >"$DIR/b/logs/$W3/log.log" <<'EOF'
{"time":"2026-11-22 01:00:00.001","level":"info","pid":555,"worker":"w3","message":"starting"}
{"time":"2026-11-22 01:00:01.001","level":"warning","pid":555,"table":"hits","message":"slow"}
{"time":"2026-11-22 01:00:02.001","level":"error","pid":555,"table":"hits","piece":1,"message":"json error one"}
{"time":"2026-11-22 01:00:03.001","level":"info","pid":555,"message":"quoted \"level\":\"error\" is not an error"}
{"time":"2026-11-22 01:00:04.001","level":"warning","pid":555,"message":"w2"}
{"time":"2026-11-22 01:00:05.001","level":"debug","pid":555,"message":"d"}
{"time":"2026-11-22 01:00:06.001","level":"warning","pid":555,"message":"w3"}
{"time":"2026-11-22 01:00:07.001","level":"error","pid":555,"error":"ECH_CONN","message":"json error two"}
EOF

# c: a base-dir without worker directories.
mkdir -p "$DIR/c"

# run CMD... -> RC, OUT, ERR
run() {
    set +e
    OUT=$("$@" 2>"$DIR/stderr")
    RC=$?
    set -e
    ERR=$(cat "$DIR/stderr")
}
one_line() { [[ -n $ERR && $(printf '%s\n' "$ERR" | wc -l) -eq 1 ]]; }
has() { [[ $ERR == *"$1"* ]]; }

# --- a good run -----------------------------------------------------------
A=$DIR/out/all.tar.gz
mkdir -p "$DIR/out"
run "$COLLECT" -o "$A" "$DIR/a/logs" "$DIR/b/logs/"
check "collect exits 0" test "$RC" -eq 0
check "archive written" test -s "$A"
check "one line on stdout with the totals" \
    eval '[[ $OUT == *"3 worker directories, 6 error lines, 5 warning lines"* ]]'

tar -tzf "$A" | sed 's|/$||' | sort >"$DIR/list"
cat >"$DIR/want-list" <<EOF
SUMMARY.txt
logs
logs-2
logs-2/$W3
logs-2/$W3/log.log
logs/$W1
logs/$W1/log.err.log
logs/$W1/log.log
logs/$W2
logs/$W2/log.err.log
logs/$W2/log.log
EOF
check "archive holds SUMMARY.txt and <label>/<dirname>/ of every worker, nothing else" \
    diff -u "$DIR/want-list" "$DIR/list"

mkdir -p "$DIR/x"
tar -xzf "$A" -C "$DIR/x"
check "archived files are regular files with the original bytes" \
    eval '[[ ! -L $DIR/x/logs/$W1 ]] && cmp "$DIR/x/logs/$W1/log.log" "$DIR/a/logs/$W1/log.log" &&
          cmp "$DIR/x/logs-2/$W3/log.log" "$DIR/b/logs/$W3/log.log"'

S=$DIR/x/SUMMARY.txt
check "summary names the sources with their labels" \
    eval 'grep -qFx "  logs = $DIR/a/logs" "$S" && grep -qFx "  logs-2 = $DIR/b/logs" "$S"'
check "summary totals" \
    grep -qFx "worker directories: 3, error lines: 6, warning lines: 5" "$S"
check "text worker: 4 errors, 2 warnings from log.err.log" \
    grep -qFx "logs/$W1 errors=4 warnings=2 file=log.err.log" "$S"
check "clean worker: 0 and 0" \
    grep -qFx "logs/$W2 errors=0 warnings=0 file=log.err.log" "$S"
check "json worker: 2 errors, 3 warnings from log.log" \
    grep -qFx "logs-2/$W3 errors=2 warnings=3 file=log.log" "$S"

# The block after W1's line: its last 3 error lines, oldest first.
awk -v h="logs/$W1 " 'index($0, h) == 1 { on = 1; next } on && /^  / { print; next } { on = 0 }' \
    "$S" >"$DIR/w1-block"
cat >"$DIR/w1-want" <<'EOF'
  last errors:
    2026-11-22 00:24:39.200 21230 E [hits 201901 piece 2 shard 1] second error
    2026-11-22 00:24:41.000 21230 E third error
    2026-11-22 00:24:42.000 21230 E [hits 201902 piece 0 shard 2] fourth error
EOF
check "text worker: the last 3 error lines, in order" diff -u "$DIR/w1-want" "$DIR/w1-block"
check "older errors and non-errors are not listed" \
    eval '! grep -q "first error\|slow query\|mentions E" "$S"'
check "json worker: its error lines are listed" \
    eval 'grep -qF "\"message\":\"json error one\"" "$S" && grep -qF "json error two" "$S" &&
          ! grep -qF "is not an error" "$S"'
check "clean worker: no error block" \
    eval '! awk -v h="logs/$W2 " "index(\$0, h) == 1 { getline; print }" "$S" | grep -q "last errors"'

# A source with no worker directory next to good ones: warning, still written.
run "$COLLECT" -o "$DIR/out/two.tar.gz" "$DIR/c" "$DIR/a/logs"
check "empty source: warned about, archive still written" \
    eval '[[ $RC == 0 ]] && has "no worker log directory" && has "$DIR/c" && test -s "$DIR/out/two.tar.gz"'

# --- bad usage: exit 2, one line, no archive ------------------------------
bad() { # description, expected text, args...
    local d=$1 want=$2
    shift 2
    rm -f "$DIR/out/bad.tar.gz"
    run "$COLLECT" "$@"
    if [[ $RC == 2 ]] && one_line && has "$want" && [[ ! -e $DIR/out/bad.tar.gz ]] &&
        [[ -z $(find "$DIR/out" -name '.bad*') ]]; then
        ok "$d"
    else
        not_ok "$d (rc=$RC, stderr: $ERR)"
    fi
}
bad "no arguments" "no archive given"
bad "no sources" "no SOURCE given" -o "$DIR/out/bad.tar.gz"
bad "missing local dir, named" "source directory '$DIR/nope' does not exist" \
    -o "$DIR/out/bad.tar.gz" "$DIR/a/logs" "$DIR/nope"
bad "source is a file" "is not a directory" -o "$DIR/out/bad.tar.gz" "$DIR/a/logs/README"
bad "unknown option" "unknown option '--frobnicate'" --frobnicate -o "$DIR/out/bad.tar.gz" "$DIR/a/logs"
bad "-o without a value" "-o needs an archive path" -o
bad "archive directory missing" "cannot write the archive into" \
    -o "$DIR/missing/bad.tar.gz" "$DIR/a/logs"

run "$COLLECT" -o "$DIR/out/bad.tar.gz" "$DIR/c"
check "no worker directory anywhere: exit 1, one line, no archive" \
    eval '[[ $RC == 1 ]] && one_line && has "no worker log directory (chcopier_<YYYYMMDDhhmmss>_<pid>/) found in any source" &&
          [[ ! -e $DIR/out/bad.tar.gz ]]'

run "$COLLECT" --help
check "--help: usage on stdout, exit 0" eval '[[ $RC == 0 && $OUT == usage:* ]]'

echo "1..$TESTS_RUN"
echo "$((TESTS_RUN - TESTS_FAILED)) passed, $TESTS_FAILED failed"
((TESTS_FAILED == 0))

#!/usr/bin/env bash
# test-chaos.sh — scripts/chaos bounded for CI: several chcopier workers copy
# a 30-partition table into a 2 x 2 ReplicatedMergeTree destination while
# workers are killed (-9 and at every named fault point), paused past their
# ZooKeeper session, destination servers and ZooKeeper restarted; every round
# must end with the destination equal to the source partition by partition,
# no duplicated id, replicas in agreement and no staging table left.
# Env: CHC_CHAOS_FAULTS (24), CHC_CHAOS_ROWS (200000), CHC_CHAOS_DEADLINE
# (s, 600), CHC_CHAOS_SEED (random; printed, rerun with it to replay the
# fault schedule).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_up

FAULTS=${CHC_CHAOS_FAULTS:-24}
# ZooKeeper restarts ("zk") are left out of the CI run for now: with them a
# round can stall on repeated connection loss after the restart (issue #6
# notes); scripts/chaos runs them by default.
KINDS=${CHC_CHAOS_KINDS:-kill point session node}
SUMMARY=$DIR/chaos-summary.env
rc=0
[[ -n "${CHC_CHAOS_SEED:-}" ]] && export CHAOS_SEED=$CHC_CHAOS_SEED
CHCOPIER=$CHCOPIER CHAOS_KINDS=$KINDS CHAOS_FAULTS=$FAULTS CHAOS_ROWS=${CHC_CHAOS_ROWS:-200000} \
    CHAOS_DEADLINE=${CHC_CHAOS_DEADLINE:-600} CHAOS_WORKERS=3 CHAOS_SUMMARY=$SUMMARY \
    "$ROOT/scripts/chaos" "$DIR" >"$DIR/chaos.out" 2>&1 || rc=$?
# the run's timeline is long; show the summary (and problems) as comments
sed -n '/^==== chaos summary/,$p' "$DIR/chaos.out" | sed 's/^/# /'

val() { sed -n "s/^$1=//p" "$SUMMARY" 2>/dev/null; }
ge() { [[ -n "$(val "$1")" ]] && (($(val "$1") >= $2)); }
rounds_ok() { [[ -n "$(val rounds)" ]] && (($(val rounds) >= 1)) && [[ "$(val rounds)" == "$(val rounds_verified)" ]]; }
sessions_ok() { [[ -n "$(val session_checked)" && "$(val session_noticed)" == "$(val session_checked)" ]]; }
no_problems() { [[ "$(val problems)" == 0 ]]; }

check "scripts/chaos exits 0 (result OK)" test "$rc" = 0
check "a summary was written" test -s "$SUMMARY"
check "at least 20 faults injected ($(val faults))" ge faults 20
for k in $KINDS; do
    check "fault kind '$k' injected ($(val "kind_$k"))" ge "kind_$k" 1
done
for p in after_claim during_cleanup after_insert after_assemble after_assembled_record after_replace; do
    check "a worker died at fault point '$p' ($(val "fired_$p"))" ge "fired_$p" 1
done
check "every round verified: count and checksum per partition, no duplicate id, replicas agree, no staging ($(val rounds_verified) of $(val rounds))" \
    rounds_ok
check "workers paused past their session noticed the expiry ($(val session_noticed) of $(val session_checked) that ran on)" \
    sessions_ok
check "no problem reported (crash, sanitizer, hang, unexpected exit, deadline)" \
    no_problems
if ((TESTS_FAILED > 0)); then
    echo "# full chaos output: $DIR/chaos.out"
    grep -E 'PROBLEM|NOTE' "$DIR/chaos.out" | head -20 | sed 's/^/# /'
fi
finish

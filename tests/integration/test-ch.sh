#!/usr/bin/env bash
# tests/integration/test-ch.sh: owns the end-to-end test of the ClickHouse
# HTTP client (src/ch.c) against a real local cluster (scripts/cluster).
#
# Starts a cluster, runs the C driver $CHC_BUILD_ROOT/tests/ch-smoke (TAP)
# against node s1 as user chc, then against d1r1, then checks the servers are
# left with no query of ours running. The driver proves: real concurrency (20
# sleeps on one loop take ~one sleep), exception/auth/connection/timeout
# classification, prompt asynchronous cancel, query_id, settings, database,
# INSERT bodies, a 2M-row SELECT intact, CHC_ETOOBIG, late exceptions in
# streamed bodies, masking of secrets, and (under ASan) no leaks with
# uv_loop_close() == 0 after every test. It interrupts queries (cancel,
# timeout, client free) but kills no server.
#
# Exit 0 pass, 1 fail, 77 skip (clickhouse-server or java missing).
# Env: CHC_SOURCE_ROOT, CHC_BUILD_ROOT (set by meson), CHC_KEEP_TMP=1.
# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
set -euo pipefail

ROOT=${CHC_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${CHC_BUILD_ROOT:-$ROOT/build}
SMOKE=$BUILD/tests/ch-smoke
CLUSTER=$ROOT/scripts/cluster

for tool in clickhouse-server java; do
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
        echo "1..0 # SKIP $tool not installed (scripts/setup)"
        exit 77
    fi
done
if [[ ! -x $SMOKE ]]; then
    echo "Bail out! $SMOKE not built (ninja -C $BUILD tests/ch-smoke)"
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chc-test-ch.XXXXXX")
DIR=$TMP/cluster
failed=0

cleanup() {
    local rc=$?
    "$CLUSTER" down "$DIR" >/dev/null 2>&1 || true
    if [[ -n "${CHC_KEEP_TMP:-}" || $failed -ne 0 || $rc -ne 0 ]]; then
        echo "# kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! "$CLUSTER" up "$DIR" >"$TMP/up.log" 2>&1; then
    sed 's/^/# /' "$TMP/up.log"
    echo "Bail out! scripts/cluster up failed"
    exit 1
fi
# shellcheck disable=SC1091
source "$DIR/cluster.env"

smoke() { # smoke NODE [TEST...]
    local var
    var="CH_$(tr '[:lower:]' '[:upper:]' <<<"$1")_HTTP"
    shift
    echo "# ch-smoke against port ${!var}"
    CH_SMOKE_HOST=$CH_HOST CH_SMOKE_PORT=${!var} CH_SMOKE_USER=chc CH_SMOKE_PASSWORD=chcpass \
        timeout 300 "$SMOKE" "$@"
}

smoke s1 || failed=1
# A second server, a few tests: nothing is tied to one node's state.
smoke d1r1 concurrent_sleeps_overlap insert_post_body_and_tsv_round_trip \
    client_free_cancels_outstanding || failed=1

# Cancelled/timed-out sleeps may still run server-side for up to 3 s (the
# module documents that cancel only abandons the transfer); after that none of
# our queries may be left.
left=
for _ in $(seq 1 50); do
    left=$("$ROOT/scripts/chq" "$DIR" s1 \
        "SELECT count() FROM system.processes WHERE query_id LIKE 'chc-smoke-%' OR query LIKE '%sleep(%' AND query NOT LIKE '%system.processes%'")
    [[ $left == 0 ]] && break
    sleep 0.2
done
if [[ $left == 0 ]]; then
    echo "# ok: no query of ch-smoke still running on s1"
else
    echo "# not ok: $left queries of ch-smoke still running on s1 after 10 s"
    failed=1
fi

exit "$failed"

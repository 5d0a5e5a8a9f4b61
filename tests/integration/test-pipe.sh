#!/usr/bin/env bash
# tests/integration/test-pipe.sh: owns the end-to-end test of ch pipes (a
# source SELECT streamed through this process into a destination INSERT,
# src/ch.c) against a real local cluster (scripts/cluster).
#
# Starts a cluster and runs the C driver $CHC_BUILD_ROOT/tests/pipe-smoke
# (TAP; the sanitizer build) from s1 to d1r1 as user chc, then a few of its
# tests from s2 to d2r1. The driver proves: 2 M rows of mixed columns
# (String, Nullable, Array, Date, Float64, FixedString) arrive with equal
# count() and sum(cityHash64(...)), compressed and plain; small results
# arrive although this ClickHouse loses small compress=1 results (probe);
# 8 pipes at once on one loop; a source exception mid-stream (throwIf) fails
# the pipe as the source's CHC_ECH_EXCEPTION with the server text and leaves
# 0 rows (and, documented, what default insert settings leave past 1 M rows);
# a missing table or a mismatched column type fails it as the destination's
# and aborts the source within seconds; cancel and ch_client_free mid-stream
# leave 0 rows; 2 MB/s per pipe and shared by two pipes hold within 20 %;
# 30 pipes of mixed outcomes, buffers, rates and compression with random
# cancels each call back exactly once; and (ASan) no leaks with
# uv_loop_close() == 0 after every test.
# Then it builds the driver optimised (no sanitizer inflating RSS) and checks
# that peak RSS (VmHWM) stays under 16 MiB for the whole process while 20 M
# rows go through, compressed and plain.
# It interrupts queries (throwIf, cancel, client free, resets) but kills no
# server; afterwards no query of the driver may still run on s1 or d1r1.
#
# Exit 0 pass, 1 fail, 77 skip (clickhouse-server or java missing).
# Env: CHC_SOURCE_ROOT, CHC_BUILD_ROOT (set by meson), CHC_KEEP_TMP=1,
# CHC_PIPE_RELEASE_SMOKE (an optimised pipe-smoke to use instead of building).
# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
set -euo pipefail

ROOT=${CHC_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${CHC_BUILD_ROOT:-$ROOT/build}
SMOKE=$BUILD/tests/pipe-smoke
CLUSTER=$ROOT/scripts/cluster

for tool in clickhouse-server java; do
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
        echo "1..0 # SKIP $tool not installed (scripts/setup)"
        exit 77
    fi
done
if [[ ! -x $SMOKE ]]; then
    echo "Bail out! $SMOKE not built (ninja -C $BUILD tests/pipe-smoke)"
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chc-test-pipe.XXXXXX")
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

port_of() { # port_of NODE
    local var
    var="CH_$(tr '[:lower:]' '[:upper:]' <<<"$1")_HTTP"
    echo "${!var}"
}

smoke() { # smoke BINARY SRC DST [TEST...]
    local bin=$1 src=$2 dst=$3
    shift 3
    echo "# $(basename "$bin") from $src (port $(port_of "$src")) to $dst (port $(port_of "$dst"))"
    CH_PIPE_HOST=$CH_HOST CH_PIPE_SRC_PORT=$(port_of "$src") CH_PIPE_DST_PORT=$(port_of "$dst") \
        CH_PIPE_USER=chc CH_PIPE_PASSWORD=chcpass timeout 600 "$bin" "$@"
}

smoke "$SMOKE" s1 d1r1 || failed=1
# Other servers, a few tests: nothing is tied to one pair of nodes.
smoke "$SMOKE" s2 d2r1 small_results_arrive_whatever_the_server \
    source_exception_mid_stream_fails_both destination_error_aborts_source || failed=1

# Peak RSS, measured without the sanitizers.
release=${CHC_PIPE_RELEASE_SMOKE:-}
if [[ -z $release ]]; then
    echo "# building an optimised pipe-smoke in $TMP/release"
    if meson setup "$TMP/release" "$ROOT" --buildtype=release -Db_sanitize=none \
        -Dintegration=false -Dwerror=false >"$TMP/release.log" 2>&1 &&
        ninja -C "$TMP/release" tests/pipe-smoke >>"$TMP/release.log" 2>&1; then
        release=$TMP/release/tests/pipe-smoke
    else
        sed 's/^/# /' "$TMP/release.log" | tail -20
        echo "not ok - cannot build the optimised driver"
        failed=1
    fi
fi
if [[ -n $release ]]; then
    smoke "$release" s1 d1r1 rss_stays_bounded_over_20m_rows || failed=1
fi

# Aborted transfers end server-side when the servers next touch the closed
# connections; after that none of ours may be left.
for node in s1 d1r1; do
    left=
    for _ in $(seq 1 50); do
        left=$("$ROOT/scripts/chq" "$DIR" "$node" \
            "SELECT count() FROM system.processes WHERE (query LIKE '%chc_pipe%' OR query LIKE '%chcopier_probe%' OR query LIKE '%FROM numbers(%') AND query NOT LIKE '%system.processes%'")
        [[ $left == 0 ]] && break
        sleep 0.2
    done
    if [[ $left == 0 ]]; then
        echo "# ok: no query of pipe-smoke still running on $node"
    else
        echo "# not ok: $left queries of pipe-smoke still running on $node after 10 s"
        failed=1
    fi
done

exit "$failed"

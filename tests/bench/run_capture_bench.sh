#!/usr/bin/env bash
# Runs the capture-overhead benchmark against a throwaway PostgreSQL 15 cluster.
#   tests/bench/run_capture_bench.sh [mpf_bench_capture options...]
# e.g. run_capture_bench.sh --clients 8 --seconds 20
#
# Environment:
#   MPF_BUILD_DIR        build directory holding the binary (default: <repo>/build)
#   MPF_BENCH_BIN        the binary itself (default: $MPF_BUILD_DIR/tests/bench/mpf_bench_capture)
#   MPF_BENCH_PG_PORT    port of the throwaway cluster (default: 55500)
#   MPF_BENCH_TIMEOUT_S  time limit for the benchmark itself (default: 900)
#
# The cluster is stopped and its directory removed on any exit, failure and Ctrl-C included.
# The exit status is the benchmark's (124 when it ran out of time).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${MPF_BUILD_DIR:-$repo/build}
bin=${MPF_BENCH_BIN:-$build/tests/bench/mpf_bench_capture}
port=${MPF_BENCH_PG_PORT:-55500}
limit_s=${MPF_BENCH_TIMEOUT_S:-900}
cluster="$repo/tests/support/pg_cluster.sh"

if [[ ! -x "$bin" ]]; then
  echo "run_capture_bench: benchmark binary \"$bin\" not found" >&2
  echo "hint: cmake -S $repo -B $build && make -C $build mpf_bench_capture" >&2
  exit 2
fi

dir=$(mktemp -d /tmp/mpf-bench-XXXXXX)
cleanup() {
  "$cluster" stop "$dir" || echo "run_capture_bench: could not stop the cluster in \"$dir\"" >&2
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap runs once.
trap 'exit 130' INT
trap 'exit 143' TERM

conninfo=$("$cluster" start "$dir" "$port")
echo "cluster: $conninfo"
# --foreground keeps the benchmark in reach of Ctrl-C; --kill-after backs up a TERM it ignores.
timeout --foreground --kill-after=30 "$limit_s" "$bin" --conninfo "$conninfo" "$@"

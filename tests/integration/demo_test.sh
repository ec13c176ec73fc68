#!/usr/bin/env bash
# The README's first command, run by the test suite: deploy/demo.sh must finish (every step it
# prints is checked by the demo itself), leave both databases equal by `mpfailover verify`, and
# leave the pair in the state it announces (node b active, node a standby). Then the pair is
# torn down with `deploy/demo.sh stop`, also when something failed.
# Own namespaces (MPF_PAIR_NS mpfdm) and state dir, so it runs beside the other pair tests.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export MPF_PAIR_NS=${MPF_PAIR_NS:-mpfdm}
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/mpf-pair-demo-test}
: "${MPF_BUILD_DIR:?MPF_BUILD_DIR must name the build tree (ctest sets it)}"
export MPF_BUILD_DIR

failures=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what" >&2
    failures=$((failures + 1))
  fi
}
teardown() {
  timeout 120 "$repo/deploy/demo.sh" stop >/dev/null 2>&1 || true
  for ns in "$MPF_PAIR_NS-a" "$MPF_PAIR_NS-b" "$MPF_PAIR_NS-w" "$MPF_PAIR_NS-sw"; do
    ip netns delete "$ns" 2>/dev/null || true
  done
}
trap teardown EXIT
teardown  # a pair left over from an interrupted run

log=$MPF_PAIR_DIR.log
started=$(date +%s)
if ! timeout 600 "$repo/deploy/demo.sh" >"$log" 2>&1; then
  echo "FAILED: deploy/demo.sh did not finish; its output:" >&2
  cat "$log" >&2
  exit 1
fi
echo "deploy/demo.sh finished in $(($(date +%s) - started)) s"

cli() { "$repo/deploy/pair.sh" cli "$@"; }
check "the demo printed all eight steps" grep -q '== 8/8 mpfailover verify' "$log"
check "the demo printed how to explore and stop the pair" grep -q 'deploy/demo.sh stop' "$log"

verify_json=$(cli b verify --json) || true
check "mpfailover verify on node b: equal" \
  jq -e '.equal == true and ([.tables[].differences | length] | add) == 0' <<<"$verify_json"
check "mpfailover verify covers the five MeetingPlace tables" \
  jq -e '[.tables[].table] | length >= 5' <<<"$verify_json"
check "node b holds rows from both sides of the failover" \
  test "$("$repo/deploy/pair.sh" psql b -X -Atc \
    "SELECT count(*) FROM users WHERE login IN ('jdoe', 'during-cut-3', 'after-failover')")" = 3
check "node a received node b's write after stepping down" \
  test "$("$repo/deploy/pair.sh" psql a -X -Atc \
    "SELECT count(*) FROM users WHERE login = 'after-failover'")" = 1
check "node b is active" jq -e '.role == "active"' <<<"$(cli b status --json)"
check "node a is standby" jq -e '.role == "standby"' <<<"$(cli a status --json)"
check "nothing queued on node b" jq -e '.transactions == 0' <<<"$(cli b queue --json)"

if ((failures > 0)); then
  echo "$failures check(s) failed; the demo's output:" >&2
  cat "$log" >&2
  exit 1
fi
echo "all checks passed"

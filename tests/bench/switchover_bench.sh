#!/usr/bin/env bash
# Planned switchover under load (issue #5: under 1 second at 200 tx/s, no committed transaction
# lost), on the namespace pair (deploy/pair.sh, its own namespaces MPF_PAIR_NS=mpfs).
#
#   tests/bench/switchover_bench.sh [--runs N] [--rate R]
#
# Each run: pgbench writes new user rows on the active node at R tx/s (default 200) as the
# application's login (node.app_role, which the switchover makes read-only), for a few seconds;
# then `mpfailover switchover` runs on the active, and its own timer (from the request to the
# peer being active) is the figure. The switchover ends pgbench's sessions (writes close), so
# pgbench stops with errors: expected. No loss: once the old active has stopped taking writes,
# every row it committed (by login) must be on the new active. Runs alternate direction
# (a -> b, b -> a, ...).
#
# Environment: MPF_BUILD_DIR (default <repo>/build), MPF_PAIR_NS (mpfs), MPF_PAIR_DIR
# (/tmp/mpfs-pair), MPF_APP_USER (the pair's application login, default meetingplace).
# Exit: 0 when it ran (RESULT lines say whether the target was met), 1 on failure, 2 usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
pair="$repo/deploy/pair.sh"
runs=5
rate=200
while (($#)); do
  case $1 in
    --runs) runs=${2:?}; shift 2 ;;
    --rate) rate=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "switchover_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
export MPF_PAIR_NS=${MPF_PAIR_NS:-mpfs}
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/mpfs-pair}
export MPF_BUILD_DIR=${MPF_BUILD_DIR:-$repo/build}
export MPF_PAIR_HEARTBEAT=${MPF_PAIR_HEARTBEAT:-500ms}
app_user=${MPF_APP_USER:-meetingplace}
dir=$MPF_PAIR_DIR
pg_bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/mpfs-bench.XXXXXX)

say() { echo "switchover_bench: $*"; }
fail() { echo "switchover_bench: $*" >&2; exit 1; }
cleanup() {
  local rc=$?
  "$pair" down >/dev/null 2>&1 || true
  rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sql() { "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 "host=$dir/$1/pg port=5432 user=postgres dbname=meetingplace" -c "$2"; }
role_of() { "$pair" cli "$1" status --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])' || true; }
wait_roles() {  # wait_roles ACTIVE STANDBY
  for _ in $(seq 1 100); do
    [[ $(role_of "$1") == active && $(role_of "$2") == standby ]] && return 0
    sleep 0.2
  done
  fail "roles did not settle: $1 $(role_of "$1"), $2 $(role_of "$2")"
}

say "pair $MPF_PAIR_NS in $dir, build $MPF_BUILD_DIR"
"$pair" up >"$work/up.log" 2>&1 || { tail -20 "$work/up.log" >&2; fail "pair.sh up failed"; }
if [[ $(role_of a) != active ]]; then
  "$pair" cli a failover >/dev/null || fail "could not make a active"
fi
wait_roles a b

cat >"$work/insert.sql" <<'SQL'
\set n random(1, 1000000000)
INSERT INTO users (login) VALUES ('sw_' || :client_id || '_' || :n || '_' || txid_current());
SQL

times=()
lost_total=0
active=a
standby=b
for run in $(seq 1 "$runs"); do
  "$pair" exec "$active" timeout 60 "$pg_bin/pgbench" -n -h "$dir/$active/pg" -p 5432 \
    -U "$app_user" -c 4 -j 2 --rate "$rate" -T 30 -f "$work/insert.sql" meetingplace \
    >"$work/pgbench.$run.log" 2>&1 &
  load=$!
  sleep 4
  before=$(sql "$active" "SELECT count(*) FROM users WHERE login LIKE 'sw_%'")
  out=$("$pair" cli "$active" switchover --json) || { echo "$out" >&2; fail "switchover $run failed"; }
  secs=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' <<<"$out")
  kill "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  wait_roles "$standby" "$active"
  # The old active takes no writes now: everything it committed must be on the new active.
  old=$(sql "$active" "SELECT count(*) FROM users WHERE login LIKE 'sw_%'")
  sql "$active" "SELECT login FROM users WHERE login LIKE 'sw_%' ORDER BY 1" >"$work/old.txt"
  sql "$standby" "SELECT login FROM users WHERE login LIKE 'sw_%' ORDER BY 1" >"$work/new.txt"
  missing=$(LC_ALL=C comm -23 "$work/old.txt" "$work/new.txt" | grep -c . || true)
  lost_total=$((lost_total + missing))
  say "run $run: $active -> $standby in $(printf '%.3f' "$secs") s under ${rate} tx/s; rows committed on $active: $old (at the request: $before); missing on $standby: $missing; load $(cut -d' ' -f1-3 /proc/loadavg)"
  times+=("$secs")
  tmp=$active; active=$standby; standby=$tmp
done

sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(sed -n "$(((runs + 1) / 2))p" <<<"$sorted")
max=$(tail -1 <<<"$sorted")
say "RESULT switchover at ${rate} tx/s: median $(printf '%.3f' "$median") s, max $(printf '%.3f' "$max") s over $runs runs (target < 1 s: $(python3 -c "print('met' if $max < 1 else 'MISSED')")); committed rows lost: $lost_total (target 0: $([[ $lost_total == 0 ]] && echo met || echo MISSED))"

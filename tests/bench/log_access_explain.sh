#!/usr/bin/env bash
# EXPLAIN (ANALYZE, BUFFERS) of the reader's statements on a change_log backlog, without and with
# the txid index of catalog 0006 (issue #16): the read of a small window at the head (what the
# shipper runs for every new commit while a backlog is still in the log), the trim of the first
# half of the backlog, and the operator's backlog read (`mpfailover queue`, the metrics sampler).
# A throwaway cluster (tests/support/pg_cluster.sh), the catalog's SQL, N synthetic transactions
# of 2 log rows each (real transaction ids: one COMMIT each), ticks around them.
#
#   tests/bench/log_access_explain.sh [--tx N]   (default 200000)
#
# Runs under flock -o /tmp/mpf-bench.lock (it times things). Exit 0 ran, 1 failed, 2 usage.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
pg_bin=${MPF_PG_BINDIR:-/usr/lib/postgresql/15/bin}
ntx=200000
while (($#)); do
  case $1 in
    --tx) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "log_access_explain: --tx expects a positive integer" >&2; exit 2; }; ntx=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "log_access_explain: unknown option \"$1\"" >&2; exit 2 ;;
  esac
done
if [[ -z ${MPF_BENCH_LOCKED:-} ]]; then
  export MPF_BENCH_LOCKED=1
  exec flock -o /tmp/mpf-bench.lock "$0" --tx "$ntx"
fi
dir=$(mktemp -d /tmp/mpf-explain-XXXXXX)
chmod 755 "$dir"
port=$((20000 + RANDOM % 10000))
cleanup() { "$repo/tests/support/pg_cluster.sh" stop "$dir/pg" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
"$repo/tests/support/pg_cluster.sh" start "$dir/pg" "$port" >/dev/null
q() { "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 "host=$dir/pg port=$port user=postgres dbname=postgres" "$@"; }

q -c "CREATE SCHEMA mpfailover" >/dev/null 2>&1 || true
q -f "$repo/schema/migrations/0001_catalog.sql" >/dev/null
q >/dev/null <<SQL
SET synchronous_commit = off;
DO \$\$
BEGIN
  FOR i IN 1..$ntx LOOP
    INSERT INTO mpfailover.change_log (table_id, op, hlc, origin, key, image)
    SELECT 1, 'U', 0, 'a', ARRAY[md5(i::text)], ARRAY[md5(i::text), 'First' || i, 'Last' || i,
      'user' || i || '@example.com', '+1555' || lpad(i::text, 7, '0'), 'UTC', 'en', 'end_user',
      't', now()::text]
    FROM generate_series(1, 2);
    IF i = $ntx - 10 THEN
      INSERT INTO mpfailover.tick (tick_id, snapshot) VALUES (2, pg_current_snapshot());
    END IF;
    COMMIT;
  END LOOP;
END \$\$;
INSERT INTO mpfailover.tick (tick_id, snapshot) VALUES (3, pg_current_snapshot());
SQL
# tick 1: half the backlog acknowledged (for the trim): the snapshot after transaction ntx/2.
q -c "INSERT INTO mpfailover.tick (tick_id, snapshot)
  SELECT 1, ((xmin + $((ntx / 2)))::text || ':' || (xmin + $((ntx / 2)))::text || ':')::pg_snapshot
  FROM (SELECT min(txid)::text::bigint AS xmin FROM mpfailover.change_log) x" >/dev/null
q -c "VACUUM ANALYZE mpfailover.change_log" >/dev/null
echo "log: $(q -c "SELECT count(*) || ' rows, ' || count(DISTINCT txid) || ' transactions, ' ||
  pg_size_pretty(pg_total_relation_size('mpfailover.change_log')) FROM mpfailover.change_log")"

# The statements, as pg_log_reader.cpp writes them.
win() { echo "WITH win AS (SELECT (SELECT snapshot FROM mpfailover.tick WHERE tick_id = $1) AS prev, (SELECT snapshot FROM mpfailover.tick WHERE tick_id = $2) AS cur)"; }
read_window="$(win 2 3) SELECT * FROM (SELECT max(l.seq) OVER w AS pos, count(*) OVER w AS n, l.txid::text, l.seq, l.table_id, l.op::text, l.hlc, l.origin, l.key, l.image FROM mpfailover.change_log l, win WHERE l.txid >= pg_snapshot_xmin(win.prev) AND l.txid < pg_snapshot_xmax(win.cur) AND NOT pg_visible_in_snapshot(l.txid, win.prev) AND pg_visible_in_snapshot(l.txid, win.cur) WINDOW w AS (PARTITION BY l.txid)) x WHERE x.pos > 0 ORDER BY x.pos, x.seq"
trim="DELETE FROM mpfailover.change_log l USING mpfailover.tick k WHERE k.tick_id = 1 AND l.txid < pg_snapshot_xmax(k.snapshot) AND pg_visible_in_snapshot(l.txid, k.snapshot)"
explain() {  # LABEL SQL: the plan's top lines and its totals
  local out
  out=$(q -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2" -c "ROLLBACK")
  printf '%s: %s; %s\n' "$1" "$(grep -m1 -oE '(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)( using [a-z_]+)? on change_log' <<<"$out")" \
    "$(grep -E 'Execution Time' <<<"$out" | sed 's/^ *//'), $(grep -m1 -E 'Buffers:' <<<"$out" | sed 's/^ *//')"
}
for phase in without with; do
  if [[ $phase == with ]]; then
    q -f "$repo/schema/migrations/0006_release2.sql" >/dev/null
    q -c "ANALYZE mpfailover.change_log" >/dev/null
  fi
  echo "-- $phase the txid index"
  explain "  read of the last window (10 transactions) at the head" "$read_window"
  explain "  trim of the first half ($((ntx / 2)) transactions)" "$trim"
done

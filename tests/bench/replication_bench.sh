#!/usr/bin/env bash
# The replication benchmark: lag, drain rate, thin-link drain and bytes, daemon memory, measured
# on a real pair (deploy/pair.sh: two network-namespace hosts, each with PostgreSQL 15 and
# mpfailoverd, CurveZMQ on port 2008) under the MeetingPlace-like mix (tests/bench/replication_mix:
# 30% schedule a meeting with 1-4 participants, 30% reschedule one, adding or removing a
# participant half the time, 10% cancel one, 25% user-profile edits, 5% group changes; 1-5 rows a
# transaction), driven by pgbench on node a. Node b only applies.
#
#   tests/bench/replication_bench.sh [options]
#     --runs N           runs of each of phases lag, drain and thin (default 3; medians reported)
#     --phases LIST      comma-separated subset of lag,drain,thin,memory (default all four)
#     --lag-rate R       lag phase: pgbench --rate (default 200 tx/s)
#     --lag-seconds S    lag phase: pgbench -T (default 60)
#     --drain-tx N       drain phase: backlog in transactions (default 100000)
#     --thin-tx N        thin phase: backlog (default 3000)
#     --thin-rate RATE   thin phase: tbf rate (default 128kbit)
#     --thin-small-tx N  thin phase: the backlog of the runs that follow when the --thin-tx backlog
#                        makes no progress (default 300: one batch that crosses the link in a
#                        few seconds)
#     --memory-tx N      memory phase: backlog (default 1000000)
#     --clients N        pgbench clients for the backlogs and the lag phase (default 4)
#     --analyze-log      before each drain, print the join the planner picks for the window query
#                        of readers before commit 7b3f1b6 and ANALYZE a's change_log (see "the
#                        reader's plan" below); needed to measure drains of such builds
#     --profile          instrumentation outside the product: pg_stat_statements on both nodes
#                        (after each run, the statements that took the most time on each node),
#                        and a trigger on a's mpfailover.tick recording when each tick was taken,
#                        so that each lag splits into a-commit -> tick (detection) and tick ->
#                        b-commit (read, ship, apply)
#
# 1. lag: pgbench --rate R -T S on a (synchronous_commit on, as the application would run), then
#    per row lag = commit time of the row's version on b minus commit time of its version on a
#    (pg_xact_commit_timestamp(xmin); both clusters run on this machine's clock with
#    track_commit_timestamp = on). Sample: every meetings row whose last change on a committed
#    during the run (new meetings and rescheduled/cancelled ones), joined by primary key.
# 2. drain: with daemon b stopped, N transactions as fast as pgbench goes (prepared statements,
#    synchronous_commit off for the generator only: the backlog is the same, it just builds
#    faster), then one marker transaction, CHECKPOINT on both nodes, and start daemon b. The
#    drain ends when the marker row is committed on b: apply is in commit order, so everything
#    before it is applied (the same moment b's applied_position for origin a reaches a's last
#    position). Reported: from `pair.sh start-daemon b` to the marker's commit on b; and, split,
#    the start-up (until the first apply transaction commits on b: daemon start, CURVE handshake,
#    the reader's window query over the whole backlog, first batch) and the apply span. The
#    transaction count is the backlog counted in a's change_log (distinct txid) before the start.
#    CPU seconds of each daemon and each node's PostgreSQL processes during the drain are printed
#    too (from /proc), to show where the time goes.
# 3. thin: the same with `pair.sh thin RATE` in place before daemon b starts; bytes per
#    transaction are the veth counters of node a (tx_bytes + rx_bytes: every frame on the link,
#    TCP/IP and ZMTP/CURVE included, both directions, heartbeats and acks included) over the
#    transactions drained. Also printed: the frame bytes the shipper counted (sent_bytes).
#    A thin drain that has not finished after MPF_BENCH_THIN_WAIT_S (default 120 s) is reported as
#    no progress, with the sessions the shipper started meanwhile (LinkUp lines): at 128 kbit/s a
#    batch of 2000 changes (~90 kB) takes longer to cross than ZeroMQ's heartbeat allows (1 s
#    interval + 3 s timeout, counted in whole messages), so every session ends before its first
#    batch arrives. The link is then healed, the backlog drained, and the thin runs are repeated
#    with --thin-small-tx, a backlog whose single batch crosses in time, for bytes per
#    transaction and the rate of what can cross.
#    The reader's plan: readers before commit 7b3f1b6 joined the window's transactions back to the
#    unindexed log. After the pair has replicated for a few minutes, autovacuum records change_log
#    as empty (reltuples = 0: the log is trimmed every second), and the planner then picks a
#    Nested Loop that rescans the whole log once per transaction: a 100k backlog never drains.
#    With --analyze-log the benchmark EXPLAINs that query before each drain, prints its join, and
#    runs ANALYZE mpfailover.change_log (as an operator could) so such a build can be measured.
# 4. memory: a backlog of --memory-tx transactions; daemon a is restarted after it is written (so
#    its VmHWM covers the drain only; b is started fresh for it), both daemons' VmRSS sampled
#    every second, VmHWM of both read when the marker lands. One run.
#
# Environment:
#   MPF_BUILD_DIR         build tree used by pair.sh (default <repo>/build)
#   MPF_PAIR_NS           namespace prefix (default mpfb: a pair of its own, beside a test's)
#   MPF_PAIR_DIR          pair state dir (default /tmp/mpfb-pair)
#   MPF_PAIR_LOG_LEVEL    daemons' log level (default info)
#   MPF_BENCH_TIMEOUT_S   time limit for the whole benchmark (default 1800)
#   MPF_BENCH_KEEP=1      leave the pair up at the end (pair.sh down removes it)
#   MPF_BENCH_DRAIN_WAIT_S  how long a drain may take before the run fails (default 600; memory
#                         phase 1500)
#   MPF_BENCH_THIN_WAIT_S how long a thin drain may take before it counts as no progress (120)
#
# Every run line ends with the machine's load average and the number of mpfailoverd processes not
# of this pair: the benchmark shares the machine with whatever else runs there, and says so.
#
# The pair is torn down on every exit, failure and Ctrl-C included. Exit status: 0 when the
# benchmark ran (the RESULT lines say whether each target was met), 1 when it failed, 2 on a
# usage error, 124 when it ran out of time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
pair="$repo/deploy/pair.sh"
mix="$here/replication_mix"
pg_bin=${MPF_PG_BINDIR:-/usr/lib/postgresql/15/bin}
export MPF_PAIR_NS=${MPF_PAIR_NS:-mpfb}
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/mpfb-pair}
export MPF_BUILD_DIR=${MPF_BUILD_DIR:-$repo/build}
limit_s=${MPF_BENCH_TIMEOUT_S:-1800}
dir=$MPF_PAIR_DIR

# The whole run under timeout(1): on expiry it signals its process group, so a pgbench or a wait
# in progress ends too and the EXIT trap below tears the pair down.
if [[ -z ${MPF_BENCH_UNDER_TIMEOUT:-} ]]; then
  export MPF_BENCH_UNDER_TIMEOUT=1
  exec timeout --kill-after=60 "$limit_s" "$0" "$@"
fi

runs=3
phases=lag,drain,thin,memory
lag_rate=200
lag_seconds=60
drain_tx=100000
thin_tx=3000
thin_rate=128kbit
thin_small_tx=300
memory_tx=1000000
clients=4
profile=0
analyze=0

# Seed (the same rows as mpf_bench_capture's) and the mix's weights.
nusers=2000
ngroups=50
nmembers=20
nmeetings=3000

# Targets.
target_lag_p99_ms=5
target_drain_tps=15000
target_thin_tps=100
target_thin_bytes=150
target_memory_mib=64

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
usage_error() {
  printf 'replication_bench: %s\nhint: replication_bench.sh --help\n' "$*" >&2
  exit 2
}
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "$1 expects a positive integer, got \"$2\""; }

while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --runs) need_int "$1" "${2:-}"; runs=$2; shift 2 ;;
    --phases) phases=${2:?}; shift 2 ;;
    --lag-rate) need_int "$1" "${2:-}"; lag_rate=$2; shift 2 ;;
    --lag-seconds) need_int "$1" "${2:-}"; lag_seconds=$2; shift 2 ;;
    --drain-tx) need_int "$1" "${2:-}"; drain_tx=$2; shift 2 ;;
    --thin-tx) need_int "$1" "${2:-}"; thin_tx=$2; shift 2 ;;
    --thin-rate) thin_rate=${2:?}; shift 2 ;;
    --thin-small-tx) need_int "$1" "${2:-}"; thin_small_tx=$2; shift 2 ;;
    --memory-tx) need_int "$1" "${2:-}"; memory_tx=$2; shift 2 ;;
    --clients) need_int "$1" "${2:-}"; clients=$2; shift 2 ;;
    --profile) profile=1; shift ;;
    --analyze-log) analyze=1; shift ;;
    *) usage_error "unknown option \"$1\"" ;;
  esac
done
for p in ${phases//,/ }; do
  [[ $p == lag || $p == drain || $p == thin || $p == memory ]] ||
    usage_error "unknown phase \"$p\" in --phases (expected lag, drain, thin, memory)"
done
has_phase() { [[ ,$phases, == *,$1,* ]]; }

[[ $(id -u) -eq 0 ]] || { echo "replication_bench: must run as root (pair.sh)" >&2; exit 2; }
for f in "$pg_bin/pgbench" "$pg_bin/psql"; do
  [[ -x $f ]] || { echo "replication_bench: no \"$f\"" >&2; exit 2; }
done
command -v bc >/dev/null || { echo "replication_bench: command \"bc\" not found" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# set-up and teardown

say() { printf '%s\n' "$*"; }
fail() {
  printf 'replication_bench: %s\n' "$1" >&2
  [[ -z ${2:-} ]] || printf 'hint: %s\n' "$2" >&2
  exit 1
}

work=$(mktemp -d /tmp/mpfb-work-XXXXXX)
sampler_pid=""
cleanup() {
  local rc=$?
  set +e
  [[ -z $sampler_pid ]] || kill "$sampler_pid" 2>/dev/null
  if ((rc != 0)) && [[ -d $dir ]]; then
    local keep=/tmp/mpfb-failed-$(date +%Y%m%d-%H%M%S)
    mkdir -p "$keep"
    for node in a b; do
      cp "$dir/$node/mpfailoverd.log" "$keep/mpfailoverd-$node.log" 2>/dev/null
      cp "$dir/$node/pg/server.log" "$keep/postgresql-$node.log" 2>/dev/null
    done
    cp "$work"/*.log "$keep/" 2>/dev/null
    echo "replication_bench: logs kept in $keep" >&2
  fi
  if [[ ${MPF_BENCH_KEEP:-} == 1 ]]; then
    say "MPF_BENCH_KEEP=1: the pair stays up (MPF_PAIR_NS=$MPF_PAIR_NS MPF_PAIR_DIR=$dir $pair down)"
  else
    # pair.sh down also ends whatever still runs in the namespaces (a pgbench cut short).
    "$pair" down >/dev/null 2>&1 || echo "replication_bench: pair.sh down failed" >&2
  fi
  rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "replication_bench: stopped by SIGTERM (time limit ${limit_s}s?)" >&2; exit 143' TERM

conn() { echo "host=$dir/$1/pg port=5432 user=postgres dbname=meetingplace"; }
# sql NODE SQL...: one psql session, unaligned tuples only, stops at the first error.
sql() {
  local node=$1
  shift
  "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$(conn "$node")" "$@"
}
daemon_pid() { cat "$dir/$1/mpfailoverd.pid"; }
now() { date +%s.%N; }
calc() { echo "scale=6; $*" | bc -l; }
fmt() { printf "%.${2:-1}f" "$1"; }

# pgbench on node a: pgbench_mix LOGFILE [pgbench options...]; sets pgbench_processed and
# pgbench_tps. Not to be called in a subshell (fail must end the benchmark).
pgbench_processed=0
pgbench_tps=0
pgbench_mix() {
  local log=$1
  shift
  "$pair" exec a timeout --kill-after=10 1200 "$pg_bin/pgbench" -n -h "$dir/a/pg" -p 5432 \
    -U postgres -D nusers=$nusers -D ngroups=$ngroups -D nmeetings=$nmeetings \
    -f "$mix/schedule_meeting.sql@30" -f "$mix/update_meeting.sql@30" \
    -f "$mix/cancel_meeting.sql@10" -f "$mix/edit_user.sql@25" -f "$mix/change_group.sql@5" \
    "$@" meetingplace >"$log" 2>&1 || { tail -20 "$log" >&2; fail "pgbench failed (log above)"; }
  if grep -q 'aborted' "$log"; then
    grep -m3 'error' "$log" >&2
    fail "a pgbench client aborted"
  fi
  pgbench_processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
  pgbench_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log" | head -1)
  [[ -n $pgbench_processed && -n $pgbench_tps ]] || fail "no figures in pgbench's output \"$log\""
}

# Writes a new marker value on a (a transaction of its own, committed after everything before
# it) and sets `marker` to it. Not to be called in a subshell.
marker_seq=0
marker=""
write_marker() {
  marker_seq=$((marker_seq + 1))
  marker="marker-$marker_seq-$$"
  sql a -c "UPDATE groups SET description = '$marker' WHERE group_id = md5('bench-marker')::uuid" \
    >/dev/null
}

# wait_marker VALUE SECONDS [soft]: polls b (one session, every 20 ms, a fresh snapshot per look)
# until the marker row holds VALUE; prints its commit time on b (epoch seconds). After SECONDS
# the benchmark fails, or with "soft" wait_marker prints nothing and returns 1.
wait_marker() {
  local value=$1 seconds=$2 soft=${3:-} out began
  began=$(now)
  out=$(sql b -c "SET statement_timeout = '$((seconds + 10))s'" -c "
    DO \$\$
    BEGIN
      FOR i IN 1..$((seconds * 50)) LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM groups WHERE group_id = md5('bench-marker')::uuid
                          AND description = '$value');
        PERFORM pg_sleep(0.02);
      END LOOP;
    END \$\$" -c "
    SELECT coalesce(extract(epoch FROM pg_xact_commit_timestamp(xmin))::text,
                    'no-commit-time xmin=' || xmin || ' now=' || extract(epoch FROM clock_timestamp()))
    FROM groups WHERE group_id = md5('bench-marker')::uuid AND description = '$value'") ||
    fail "could not poll node b for the marker"
  if [[ -z $out && -n $soft ]]; then
    return 1
  fi
  if [[ -z $out ]]; then
    local q="SELECT description FROM groups WHERE group_id = md5('bench-marker')::uuid"
    echo "replication_bench: after $(calc "$(now) - $began") s: marker on a \"$(sql a -c "$q")\"," \
      "on b \"$(sql b -c "$q")\"; b applied $(sql b -c "SELECT tick || '/' || seq FROM mpfailover.applied_position")" >&2
    fail "marker \"$value\" did not reach node b within ${seconds}s" \
      "see $dir/a/mpfailoverd.log and $dir/b/mpfailoverd.log"
  fi
  if [[ $out == no-commit-time* ]]; then
    # Should not happen (track_commit_timestamp = on); the time of the look stands in.
    echo "replication_bench: warning: marker on b has no commit timestamp ($out)" >&2
    out=${out##*now=}
  fi
  echo "$out"
}

# Waits (up to 10 s) until a's change_log is empty: everything acknowledged and trimmed, so a
# backlog counted afterwards holds only new transactions.
wait_log_empty() {
  local i n
  for ((i = 0; i < 100; i++)); do
    n=$(sql a -c "SELECT count(*) FROM mpfailover.change_log")
    ((n == 0)) && return 0
    sleep 0.1
  done
  fail "node a's change_log still holds $n rows 10 s after the last marker arrived"
}

backlog_tx() { sql a -c "SELECT count(DISTINCT txid) FROM mpfailover.change_log"; }
backlog_rows() { sql a -c "SELECT count(*) FROM mpfailover.change_log"; }
backlog_mib() {
  sql a -c "SELECT round(pg_total_relation_size('mpfailover.change_log') / 1048576.0, 1)"
}

# CPU ticks (utime + stime, USER_HZ) of every process in a node's namespace: "pid comm ticks".
cpu_snapshot() {
  local node=$1 pid stat comm rest
  for pid in $(ip netns pids "$MPF_PAIR_NS-$node" 2>/dev/null); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    comm=${stat#*(}
    comm=${comm%%)*}
    rest=${stat##*) }
    # rest starts at field 3 (state): utime (14) and stime (15) are its 12th and 13th words.
    set -- $rest
    echo "$pid $comm $((${12} + ${13}))"
  done
}
# cpu_delta BEFORE AFTER DAEMON_PID: "daemon_s postgres_s" over the interval.
cpu_delta() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" -v dpid="$3" '
    FNR == NR { before[$1] = $3; next }
    { d = $3 - (($1 in before) ? before[$1] : 0); if ($1 == dpid) dm += d; else if ($2 == "postgres") pg += d }
    END { printf "%.1f %.1f\n", dm / hz, pg / hz }' "$1" "$2"
}

# The join the planner picks for the reader's window query over the current backlog, as the reader
# would run it next (a tick taken now, rolled back): "Hash Join", "Nested Loop", ...
reader_plan() {
  sql a <<'SQL' | grep -o -m1 -E 'Hash Join|Nested Loop|Merge Join' || echo "no join"
BEGIN;
INSERT INTO mpfailover.tick (tick_id, snapshot)
  SELECT max(tick_id) + 1, pg_current_snapshot() FROM mpfailover.tick;
SELECT max(tick_id) - 1 AS prev, max(tick_id) AS cur FROM mpfailover.tick \gset
EXPLAIN WITH win AS (
  SELECT (SELECT snapshot FROM mpfailover.tick WHERE tick_id = :prev) AS prev,
         (SELECT snapshot FROM mpfailover.tick WHERE tick_id = :cur) AS cur
), txs AS (
  SELECT l.txid, max(l.seq) AS pos, count(*) AS n
  FROM mpfailover.change_log l, win
  WHERE l.txid >= pg_snapshot_xmin(win.prev) AND l.txid < pg_snapshot_xmax(win.cur)
    AND NOT pg_visible_in_snapshot(l.txid, win.prev)
    AND pg_visible_in_snapshot(l.txid, win.cur)
  GROUP BY l.txid HAVING max(l.seq) > 0)
SELECT t.pos, t.n, l.txid::text, l.seq, l.table_id, l.op::text, l.hlc, l.origin, l.key, l.image
FROM txs t JOIN mpfailover.change_log l ON l.txid = t.txid
ORDER BY t.pos, l.seq;
ROLLBACK;
SQL
}
log_stats() {
  sql a -c "SELECT 'reltuples=' || reltuples || ' relpages=' || relpages FROM pg_class
            WHERE oid = 'mpfailover.change_log'::regclass"
}

veth_bytes() {
  local veth=veth-$MPF_PAIR_NS-a
  echo $(($("$pair" exec a cat /sys/class/net/$veth/statistics/tx_bytes) + \
    $("$pair" exec a cat /sys/class/net/$veth/statistics/rx_bytes)))
}
# The shipper's own counters from a's last LinkStatus line: "sent_tx sent_bytes".
shipper_counters() {
  grep 'LinkStatus' "$dir/a/mpfailoverd.log" | tail -1 |
    sed -n 's/.* sent_tx=\([0-9]*\) sent_bytes=\([0-9]*\) .*/\1 \2/p'
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# machine noise: "load=1.23 other_daemons=2"
noise() {
  local others=0 pid
  for pid in $(pgrep -x mpfailoverd || true); do
    [[ $pid == "$(daemon_pid a 2>/dev/null)" || $pid == "$(daemon_pid b 2>/dev/null)" ]] ||
      others=$((others + 1))
  done
  echo "load=$(cut -d' ' -f1 /proc/loadavg) other_daemons=$others"
}

enable_profiling() {
  local node
  sql a >/dev/null <<'SQL'
CREATE TABLE public.bench_tick_log (tick_id bigint, snapshot pg_snapshot, at timestamptz);
CREATE FUNCTION public.bench_tick_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.bench_tick_log VALUES (NEW.tick_id, NEW.snapshot, clock_timestamp());
  RETURN NULL;
END $$;
CREATE TRIGGER bench_tick_log AFTER INSERT ON mpfailover.tick
  FOR EACH ROW EXECUTE FUNCTION public.bench_tick_log();
SQL
  for node in a b; do
    echo "shared_preload_libraries = 'pg_stat_statements'" >>"$dir/$node/pg/data/postgresql.conf"
    echo "pg_stat_statements.track_utility = on" >>"$dir/$node/pg/data/postgresql.conf"
    "$pair" stop-daemon "$node" >/dev/null
    "$pair" stop-pg "$node" >/dev/null
    "$pair" start-pg "$node" >/dev/null
    sql "$node" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  done
  for node in a b; do "$pair" start-daemon "$node" >/dev/null; done
}
reset_profile() {
  ((profile)) || return 0
  sql a -c "SELECT pg_stat_statements_reset()" >/dev/null
  sql b -c "SELECT pg_stat_statements_reset()" >/dev/null
}
print_profile() {
  ((profile)) || return 0
  local node
  for node in a b; do
    say "  profile node $node (pg_stat_statements, top 12 by total time):"
    sql "$node" -F $'\t' -c "
      SELECT round(total_exec_time::numeric / 1000, 2) || ' s', calls,
             round((total_exec_time / calls)::numeric, 3) || ' ms/call', rows,
             regexp_replace(left(query, 110), '\s+', ' ', 'g')
      FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'meetingplace')
        AND query !~ '^DO |pg_stat_statements|bench-marker|to_timestamp|CHECKPOINT|^COPY|^SELECT extract\(\$1 FROM clock_timestamp\(\)\)$|pg_total_relation_size|FROM mpfailover\.change_log$|^ANALYZE|^BEGIN|^ROLLBACK|^EXPLAIN|reltuples|applied_position$|^SELECT description' 
      ORDER BY total_exec_time DESC LIMIT 12" 2>/dev/null |
      sed 's/^/    /' || true
  done
}

# ---------------------------------------------------------------------------------------------
# the pair

start_time=$(now)
say "replication benchmark: build $MPF_BUILD_DIR, pair $MPF_PAIR_NS in $dir"
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
  "$(uname -r)"
"$pair" up >"$work/up.log" 2>&1 || { tail -20 "$work/up.log" >&2; fail "pair.sh up failed"; }
((profile)) && enable_profiling
say "server: $(sql a -c "SELECT 'PostgreSQL ' || current_setting('server_version') ||
  ', fsync=' || current_setting('fsync') || ', synchronous_commit=' ||
  current_setting('synchronous_commit') || ', shared_buffers=' || current_setting('shared_buffers') ||
  ', track_commit_timestamp=' || current_setting('track_commit_timestamp')")"
say "security: $(grep -m1 '^mode' "$dir/a.conf" | sed 's/ //g')"
sql a -v nusers=$nusers -v ngroups=$ngroups -v nmembers=$nmembers -v nmeetings=$nmeetings -v nparts=4 \
  -f "$mix/seed.sql" >/dev/null
wait_marker seed 60 >/dev/null
say "seed: $nusers users, $ngroups groups x $nmembers members, $nmeetings meetings (on a," \
  "replicated to b)"
wait_log_empty

declare -a lag_p50=() lag_p99=() lag_max=() drain_tps=() thin_tps=() thin_bpt=()
mem_a_mib="" mem_b_mib="" mem_tx=""

# ---------------------------------------------------------------------------------------------
# 1. lag

lag_run() {
  local run=$1 start processed tps value
  sql a -c "CHECKPOINT" >/dev/null
  sql b -c "CHECKPOINT" >/dev/null
  reset_profile
  start=$(sql a -c "SELECT extract(epoch FROM clock_timestamp())")
  pgbench_mix "$work/lag$run.log" -M prepared -c "$clients" -j 2 --rate="$lag_rate" \
    -T "$lag_seconds"
  processed=$pgbench_processed
  tps=$pgbench_tps
  write_marker
  wait_marker "$marker" 60 >/dev/null
  sql a -c "\\copy (SELECT meeting_id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint FROM meetings WHERE pg_xact_commit_timestamp(xmin) >= to_timestamp($start)) TO '$work/lag$run.tsv'"
  if ((profile)); then
    # The first tick whose snapshot sees the row's transaction: when the reader noticed it.
    sql a -c "\\copy (SELECT m.meeting_id, (extract(epoch FROM pg_xact_commit_timestamp(m.xmin)) * 1e6)::bigint, (extract(epoch FROM t.at) * 1e6)::bigint FROM meetings m CROSS JOIN LATERAL (SELECT at FROM bench_tick_log k WHERE k.tick_id > 0 AND pg_visible_in_snapshot(m.xmin::text::xid8, k.snapshot) ORDER BY tick_id LIMIT 1) t WHERE pg_xact_commit_timestamp(m.xmin) >= to_timestamp($start)) TO '$work/lagparts$run.tsv'"
  fi
  local out
  out=$(sql b -F ' ' -c "CREATE TEMP TABLE src (meeting_id uuid PRIMARY KEY, a_us bigint)" \
    -c "\\copy src FROM '$work/lag$run.tsv'" -c "
    SELECT count(*), count(m.lag_us),
      round(percentile_disc(0.5) WITHIN GROUP (ORDER BY lag_us) / 1000.0, 3),
      round(percentile_disc(0.99) WITHIN GROUP (ORDER BY lag_us) / 1000.0, 3),
      round(max(lag_us) / 1000.0, 3), round(min(lag_us) / 1000.0, 3)
    FROM src s LEFT JOIN LATERAL (
      SELECT meeting_id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint
             - s.a_us AS lag_us
      FROM meetings WHERE meeting_id = s.meeting_id) m ON true")
  local rows matched p50 p99 mx mn
  read -r rows matched p50 p99 mx mn <<<"$out"
  ((rows > 0)) || fail "lag run $run: no meetings row changed on a during the run"
  ((rows == matched)) ||
    fail "lag run $run: $((rows - matched)) of $rows meetings rows missing on b (or without a commit time)"
  say "LagRun run=$run tx=$processed tps=$(fmt "$tps") rows=$rows p50_ms=$p50 p99_ms=$p99" \
    "max_ms=$mx min_ms=$mn $(noise)"
  if ((profile)); then
    sql b -F ' ' -c "CREATE TEMP TABLE parts (meeting_id uuid, a_us bigint, tick_us bigint)" \
      -c "\\copy parts FROM '$work/lagparts$run.tsv'" -c "
      SELECT 'a-commit->tick p50/p99 ms', round(percentile_disc(0.5) WITHIN GROUP (ORDER BY d) / 1e3, 2),
        round(percentile_disc(0.99) WITHIN GROUP (ORDER BY d) / 1e3, 2),
        '| tick->b-commit p50/p99 ms', round(percentile_disc(0.5) WITHIN GROUP (ORDER BY s) / 1e3, 2),
        round(percentile_disc(0.99) WITHIN GROUP (ORDER BY s) / 1e3, 2), '| rows', count(*)
      FROM (SELECT p.tick_us - p.a_us AS d,
              (extract(epoch FROM pg_xact_commit_timestamp(m.xmin)) * 1e6)::bigint - p.tick_us AS s
            FROM parts p JOIN meetings m USING (meeting_id)) x" | sed 's/^/  lag split: /'
  fi
  print_profile
  lag_p50+=("$p50")
  lag_p99+=("$p99")
  lag_max+=("$mx")
  wait_log_empty
}

# ---------------------------------------------------------------------------------------------
# 2-4. drains

# drain_run KIND RUN TX: builds a backlog of TX transactions with daemon b stopped and drains it.
# KIND: drain, thin or memory. Sets drain_result="tx seconds startup_s apply_s bytes frame_bytes".
drain_run() {
  local kind=$1 run=$2 tx=$3 per_client processed tps value
  "$pair" stop-daemon b >/dev/null
  per_client=$(((tx + clients - 1) / clients))
  local gen_start gen_end
  gen_start=$(now)
  PGOPTIONS='-c synchronous_commit=off' pgbench_mix "$work/$kind$run.log" -M prepared \
    -c "$clients" -j 2 -t "$per_client"
  processed=$pgbench_processed
  tps=$pgbench_tps
  gen_end=$(now)
  write_marker
  value=$marker
  local backlog rows mib
  backlog=$(backlog_tx)
  rows=$(backlog_rows)
  mib=$(backlog_mib)
  say "  $kind run $run: backlog written in $(fmt "$(calc "$gen_end - $gen_start")") s" \
    "($processed tx by pgbench at $(fmt "$tps") tx/s): $backlog transactions, $rows changes," \
    "change_log $mib MiB"
  if ((analyze)); then
    local plan stats
    plan=$(reader_plan)
    stats=$(log_stats)
    sql a -c "ANALYZE mpfailover.change_log" >/dev/null
    say "  $kind run $run: old reader's plan: $plan with change_log $stats; after ANALYZE:" \
      "$(reader_plan) with $(log_stats)"
  fi
  sql a -c "CHECKPOINT" >/dev/null
  sql b -c "CHECKPOINT" >/dev/null
  if [[ $kind == memory ]]; then
    "$pair" restart-daemon a >/dev/null
    # The new daemon's first LinkStatus line (counters from zero) before counting from it.
    for ((i = 0; i < 50; i++)); do
      [[ $(shipper_counters) == "0 0" ]] && break
      sleep 0.1
    done
  fi
  [[ $kind == thin ]] && "$pair" thin "$thin_rate" >/dev/null
  local bytes_before counters_before cpu_a0 cpu_b0 t0 done_at first
  bytes_before=$(veth_bytes)
  counters_before=$(shipper_counters)
  reset_profile
  cpu_snapshot a >"$work/cpu_a0"
  cpu_snapshot b >"$work/cpu_b0"  # b's daemon is not running yet: all its CPU time counts
  t0=$(now)
  "$pair" start-daemon b >/dev/null
  if [[ $kind == memory ]]; then
    (for ((i = 0; i < 3600; i++)); do
      echo "$(now) $(awk '/VmRSS/ {print $2}' "/proc/$(daemon_pid a)/status" 2>/dev/null)" \
        "$(awk '/VmRSS/ {print $2}' "/proc/$(daemon_pid b)/status" 2>/dev/null)"
      sleep 1
    done) >"$work/rss.tsv" 2>/dev/null &
    sampler_pid=$!
  fi
  local bytes_after counters_after
  local wait_s=${MPF_BENCH_DRAIN_WAIT_S:-600}
  [[ $kind == memory ]] && wait_s=${MPF_BENCH_DRAIN_WAIT_S:-1500}
  if [[ $kind == thin ]]; then
    local ups_before ups
    ups_before=$(grep -c 'LinkUp' "$dir/a/mpfailoverd.log" || true)
    if ! done_at=$(wait_marker "$value" "${MPF_BENCH_THIN_WAIT_S:-120}" soft); then
      bytes_after=$(veth_bytes)
      ups=$(($(grep -c 'LinkUp' "$dir/a/mpfailoverd.log" || true) - ups_before))
      counters_after=$(shipper_counters)
      say "  $kind run $run: NO PROGRESS after ${MPF_BENCH_THIN_WAIT_S:-120} s: b applied" \
        "$(sql b -c "SELECT tick || '/' || seq FROM mpfailover.applied_position WHERE origin = 'a'")," \
        "$ups sessions started, $((bytes_after - bytes_before)) bytes crossed the link;" \
        "last sessions: $(grep -E 'LinkUp|LinkDown' "$dir/a/mpfailoverd.log" | tail -2 |
          cut -c12-23,33-60 | tr '\n' ' ')"
      "$pair" unthin >/dev/null
      wait_marker "$value" 120 >/dev/null
      drain_result="none"
      wait_log_empty
      return 0
    fi
  else
    done_at=$(wait_marker "$value" "$wait_s")
  fi
  bytes_after=$(veth_bytes)
  cpu_snapshot a >"$work/cpu_a1"
  cpu_snapshot b >"$work/cpu_b1"
  if [[ $kind == memory ]]; then
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    mem_a_mib=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$(daemon_pid a)/status")
    mem_b_mib=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$(daemon_pid b)/status")
    mem_tx=$backlog
  fi
  [[ $kind == thin ]] && "$pair" unthin >/dev/null
  # The first apply transaction on b: the earliest commit among rows b wrote since t0.
  first=$(sql b -c "SELECT extract(epoch FROM min(ts)) FROM (
      SELECT min(pg_xact_commit_timestamp(xmin)) ts FROM meetings
        WHERE pg_xact_commit_timestamp(xmin) >= to_timestamp($t0)
      UNION ALL SELECT min(pg_xact_commit_timestamp(xmin)) FROM users
        WHERE pg_xact_commit_timestamp(xmin) >= to_timestamp($t0)) x")
  [[ -n $first ]] || first=$done_at
  local total startup apply cpu_a cpu_b
  total=$(calc "$done_at - $t0")
  startup=$(calc "$first - $t0")
  apply=$(calc "$done_at - $first")
  cpu_a=$(cpu_delta "$work/cpu_a0" "$work/cpu_a1" "$(daemon_pid a)")
  cpu_b=$(cpu_delta "$work/cpu_b0" "$work/cpu_b1" "$(daemon_pid b)")
  # Wait for a LinkStatus line that includes the drain (logged when the counters moved, at most
  # every 10 s).
  for ((i = 0; i < 120; i++)); do
    counters_after=$(shipper_counters)
    [[ $counters_after != "$counters_before" ]] && break
    sleep 0.1
  done
  local sent_tx=0 sent_bytes=0
  if [[ -n $counters_before && -n $counters_after ]]; then
    set -- $counters_before $counters_after
    sent_tx=$(($3 - $1))
    sent_bytes=$(($4 - $2))
  fi
  local link=$((bytes_after - bytes_before))
  say "  $kind run $run: drained in $(fmt "$total" 3) s = $(fmt "$(calc "$backlog / $total")")" \
    "tx/s (start-up to first apply commit $(fmt "$startup" 3) s, apply $(fmt "$apply" 3) s =" \
    "$(if (($(echo "$apply > 0.01" | bc))); then fmt "$(calc "$backlog / $apply")"; else echo n/a; fi)" \
    "tx/s); shipper sent $sent_tx tx in" \
    "$sent_bytes frame bytes; link $link bytes; $(noise)"
  set -- $cpu_a $cpu_b
  say "  $kind run $run: CPU s during the drain: daemon a $1, postgres a $2, daemon b $3," \
    "postgres b $4 (wall $(fmt "$total" 1) s, $(nproc) cores)"
  print_profile
  drain_result="$backlog $total $startup $apply $link $sent_bytes"
  wait_log_empty
}

if has_phase lag; then
  say ""
  say "== 1. lag: pgbench --rate=$lag_rate -T $lag_seconds, $clients clients, synchronous_commit on"
  for ((r = 1; r <= runs; r++)); do lag_run "$r"; done
fi

if has_phase drain; then
  say ""
  say "== 2. drain: backlog of $drain_tx transactions, daemon b stopped while it is written"
  for ((r = 1; r <= runs; r++)); do
    drain_run drain "$r" "$drain_tx"
    set -- $drain_result
    t=$(calc "$1 / $2")
    say "DrainRun run=$r tx=$1 seconds=$(fmt "$2" 3) tps=$(fmt "$t") startup_s=$(fmt "$3" 3)" \
      "apply_s=$(fmt "$4" 3)"
    drain_tps+=("$t")
  done
fi

thin_stuck_tx=""
if has_phase thin; then
  say ""
  say "== 3. thin: backlog of $thin_tx transactions drained over tbf $thin_rate"
  size=$thin_tx
  for ((r = 1; r <= runs; r++)); do
    drain_run thin "$r" "$size"
    if [[ $drain_result == none ]]; then
      if [[ -n $thin_stuck_tx ]]; then
        say "  the $size-transaction backlog made no progress either; no more thin runs"
        break
      fi
      thin_stuck_tx=$size
      say "ThinRun run=$r tx=$size result=no-progress"
      size=$thin_small_tx
      say "  thin: a backlog of $thin_tx transactions does not cross; the runs go on with" \
        "$size (--thin-small-tx)"
      r=0
      continue
    fi
    set -- $drain_result
    t=$(calc "$1 / $2")
    b=$(calc "$5 / $1")
    say "ThinRun run=$r tx=$1 seconds=$(fmt "$2" 3) tps=$(fmt "$t") link_bytes=$5" \
      "bytes_per_tx=$(fmt "$b") frame_bytes_per_tx=$(fmt "$(calc "$6 / $1")")"
    thin_tps+=("$t")
    thin_bpt+=("$b")
  done
fi

if has_phase memory; then
  say ""
  say "== 4. memory: backlog of $memory_tx transactions (one run)"
  drain_run memory 1 "$memory_tx"
  set -- $drain_result
  say "MemoryRun tx=$1 seconds=$(fmt "$2" 3) tps=$(fmt "$(calc "$1 / $2")")" \
    "vmhwm_a_mib=$mem_a_mib vmhwm_b_mib=$mem_b_mib"
  if [[ -s $work/rss.tsv ]]; then
    say "  VmRSS (MiB) every ~10 s during the drain: t a b"
    awk 'NR == 1 {t0 = $1} (NR - 1) % 10 == 0 {printf "    %.0f %.1f %.1f\n", $1 - t0, $2 / 1024, $3 / 1024}' \
      "$work/rss.tsv"
  fi
fi

# ---------------------------------------------------------------------------------------------
# results

say ""
say "benchmark time: $(fmt "$(calc "$(now) - $start_time")" 0) s"
verdict() { (($(echo "$1" | bc -l))) && echo met || echo missed; }
if ((${#lag_p99[@]})); then
  p50=$(median "${lag_p50[@]}")
  p99=$(median "${lag_p99[@]}")
  mx=$(median "${lag_max[@]}")
  say "RESULT lag_p50_ms=$(fmt "$p50" 2) target=none verdict=met"
  say "RESULT lag_p99_ms=$(fmt "$p99" 2) target=<$target_lag_p99_ms" \
    "verdict=$(verdict "$p99 < $target_lag_p99_ms")"
  say "RESULT lag_max_ms=$(fmt "$mx" 2) target=none verdict=met"
fi
if ((${#drain_tps[@]})); then
  t=$(median "${drain_tps[@]}")
  say "RESULT drain_tps=$(fmt "$t" 0) target=>=$target_drain_tps" \
    "verdict=$(verdict "$t >= $target_drain_tps")"
fi
if ((${#thin_tps[@]})); then
  t=$(median "${thin_tps[@]}")
  b=$(median "${thin_bpt[@]}")
  if [[ -n $thin_stuck_tx ]]; then
    say "RESULT thin_drain_tps=0 target=>=$target_thin_tps verdict=missed" \
      "(backlog $thin_tx: no progress; a $thin_small_tx-transaction backlog drains at $(fmt "$t" 1) tx/s)"
  else
    say "RESULT thin_drain_tps=$(fmt "$t" 1) target=>=$target_thin_tps" \
      "verdict=$(verdict "$t >= $target_thin_tps")"
  fi
  say "RESULT thin_bytes_per_tx=$(fmt "$b" 1) target=<$target_thin_bytes" \
    "verdict=$(verdict "$b < $target_thin_bytes")$([[ -z $thin_stuck_tx ]] ||
      echo " (measured on the $thin_small_tx-transaction backlog)")"
fi
if [[ -n $mem_a_mib ]]; then
  m=$mem_a_mib
  (($(echo "$mem_b_mib > $m" | bc -l))) && m=$mem_b_mib
  say "RESULT daemon_vmhwm_mib=$m target=<$target_memory_mib verdict=$(verdict "$m < $target_memory_mib")" \
    "(a $mem_a_mib, b $mem_b_mib, backlog $mem_tx tx)"
fi

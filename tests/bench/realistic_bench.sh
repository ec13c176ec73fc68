#!/usr/bin/env bash
# mpfailover beside PostgreSQL 15's own logical replication (publication/subscription) on a
# MeetingPlace of realistic size (issue #16), on the same two namespace hosts (deploy/pair.sh,
# namespaces of its own: MPF_PAIR_NS=mpfr), in the same run, interleaved (A B A B), medians of
# --runs. Prints ONE table: both systems, the ratio, the target and whether it was hit.
#
#   tests/bench/realistic_bench.sh [--quick] [--runs N] [--full] [--phases LIST] [...]
#     --quick            the small seed (2,000 users, 3,000 meetings) and short phases: a smoke
#     --runs N           runs of each measured phase and system (default 3; medians)
#     --full             adds the 100,000- and 1,000,000-transaction drains to the curve (long:
#                        the backlog alone takes many minutes to write) and measures the operator
#                        reads on the 1,000,000 one
#     --phases LIST      subset of copy,capture,lag,drain,thin,switchover,after,reads
#                        (default all)
#     --lag-seconds S    lag phases: pgbench -T at 200 tx/s (default 30)
#     --capture-seconds S  capture cost: pgbench -T at full speed (default 20)
#     --drain-list LIST  drain curve backlogs (default 10000,50000; --full adds 100000,1000000);
#                        the drains after a switchover repeat the first
#     --thin-tx N        thin drain backlog (default 600)
#
# The dataset (deterministic: keys are md5('user' || i)::uuid etc., tests/bench/replication_mix/
# seed.sql): 100,000 users, 2,000 groups x 50 members, 200,000 meetings with 1-5 participants
# (600,000): 1.5 million rows. The workload is the MeetingPlace mix of replication_bench.sh.
#
# The two systems live in two databases of the same two clusters (so the same hosts, disks,
# link and PostgreSQL settings): `meetingplace` replicated by mpfailoverd (a active, b standby)
# and `mpbuiltin` (the same schema, no capture triggers) replicated by a publication on a FOR ALL
# TABLES and a subscription on b over TCP 198.18.0.11:5432 (both clusters get wal_level = logical
# and listen on their pair address). While one system is measured the other is idle: the
# mpfailover daemons are stopped during the built-in's runs and the subscription is disabled
# during mpfailover's.
#
# Figures (per system, the same method for both):
#   copy      initial copy of the seeded database to an empty b: `mpfailover resync` (wall time of
#             the CLI) vs CREATE SUBSCRIPTION ... copy_data = true until every table is 'r'eady
#   capture   source throughput, pgbench full speed 4 clients: with replication running / without
#             (mpfailover: capture triggers disabled; built-in: subscription disabled), cost = 1 -
#             ratio
#   lag       pgbench --rate 200 for --lag-seconds; per new or changed meetings row: commit time
#             on b - commit time on a (track_commit_timestamp; one clock): p50, p99, max
#   drain     b's side stopped (mpfailoverd b / ALTER SUBSCRIPTION DISABLE), N transactions of the
#             mix written on a, a marker, then b started: N / (marker's commit on b - start)
#   thin      the same drain of --thin-tx transactions over tc tbf 128 kbit/s on both veths;
#             bytes per transaction from a's veth counters (both directions, everything on the
#             wire); % of the 16,000 B/s physical limit = tx/s x bytes/tx / 16,000
#   switchover  mpfailover only (the built-in has none; pg_auto_failover's measured ~1.4 s is
#             quoted): `mpfailover switchover` under 200 tx/s of the application login, the CLI's
#             own timer; lost = rows committed on the old active missing on the new one
#   after     lag and drain again for mpfailover with b active (the target a's rows were written
#             by a itself: the last-writer-wins path), then after switching back
#   reads     on the biggest backlog of the drain curve: wall time of `mpfailover queue --json`
#             (the metrics sampler runs the same read) and of the queue.warn_bytes check (the
#             same SQL the daemon runs)
#
# Everything timed runs under flock -o /tmp/mpf-bench.lock (the whole script re-executes itself
# under it); pair up/down under flock /tmp/mpf-netns.lock. The machine is shared: every run line
# prints the load average. Exit: 0 ran (the table says what was hit), 1 failed, 2 usage.
# Environment: MPF_BUILD_DIR (default <repo>/build), MPF_PAIR_NS (mpfr), MPF_PAIR_DIR
# (/tmp/mpfr-pair), MPF_BENCH_TIMEOUT_S (default 7200), MPF_BENCH_KEEP=1 (leave the pair up).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
pair="$repo/deploy/pair.sh"
mix="$here/replication_mix"
pg_bin=${MPF_PG_BINDIR:-/usr/lib/postgresql/15/bin}
export MPF_PAIR_NS=${MPF_PAIR_NS:-mpfr}
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/mpfr-pair}
export MPF_BUILD_DIR=${MPF_BUILD_DIR:-$repo/build}
export MPF_PAIR_HEARTBEAT=${MPF_PAIR_HEARTBEAT:-500ms}
limit_s=${MPF_BENCH_TIMEOUT_S:-7200}
dir=$MPF_PAIR_DIR

if [[ -z ${MPF_BENCH_LOCKED:-} ]]; then
  export MPF_BENCH_LOCKED=1
  exec flock -o /tmp/mpf-bench.lock timeout --kill-after=60 "$limit_s" "$0" "$@"
fi

runs=3
quick=0
full=0
phases=copy,capture,lag,drain,thin,switchover,after,reads
lag_seconds=30
capture_seconds=20
drain_list=""
thin_tx=600
clients=4
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
usage_error() {
  printf 'realistic_bench: %s\nhint: realistic_bench.sh --help\n' "$*" >&2
  exit 2
}
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "$1 expects a positive integer, got \"$2\""; }
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1; shift ;;
    --full) full=1; shift ;;
    --runs) need_int "$1" "${2:-}"; runs=$2; shift 2 ;;
    --phases) phases=${2:?}; shift 2 ;;
    --lag-seconds) need_int "$1" "${2:-}"; lag_seconds=$2; shift 2 ;;
    --capture-seconds) need_int "$1" "${2:-}"; capture_seconds=$2; shift 2 ;;
    --drain-list) drain_list=${2:?}; shift 2 ;;
    --thin-tx) need_int "$1" "${2:-}"; thin_tx=$2; shift 2 ;;
    *) usage_error "unknown option \"$1\"" ;;
  esac
done
for p in ${phases//,/ }; do
  [[ ,copy,capture,lag,drain,thin,switchover,after,reads, == *,$p,* ]] ||
    usage_error "unknown phase \"$p\" in --phases (expected copy, capture, lag, drain, thin, switchover, after, reads)"
done
has_phase() { [[ ,$phases, == *,$1,* ]]; }
[[ -z $drain_list ]] || for n in ${drain_list//,/ }; do need_int --drain-list "$n"; done

if ((quick)); then
  nusers=2000 ngroups=50 nmembers=20 nmeetings=3000 nparts=4
  [[ -n $drain_list ]] || drain_list=2000,5000
  lag_seconds=$((lag_seconds > 10 ? 10 : lag_seconds))
  capture_seconds=$((capture_seconds > 8 ? 8 : capture_seconds))
  thin_tx=$((thin_tx > 200 ? 200 : thin_tx))
else
  nusers=100000 ngroups=2000 nmembers=50 nmeetings=200000 nparts=5
  [[ -n $drain_list ]] || drain_list=10000,50000
  ((full)) && drain_list=$drain_list,100000,1000000
fi

[[ $(id -u) -eq 0 ]] || { echo "realistic_bench: must run as root (pair.sh)" >&2; exit 2; }
for f in "$pg_bin/pgbench" "$pg_bin/psql"; do
  [[ -x $f ]] || { echo "realistic_bench: no \"$f\"" >&2; exit 2; }
done
command -v bc >/dev/null || { echo "realistic_bench: command \"bc\" not found" >&2; exit 2; }
[[ -x $MPF_BUILD_DIR/server/mpfailoverd ]] ||
  { echo "realistic_bench: no $MPF_BUILD_DIR/server/mpfailoverd (build it first)" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# helpers

say() { printf '%s\n' "$*"; }
fail() {
  printf 'realistic_bench: %s\n' "$1" >&2
  [[ -z ${2:-} ]] || printf 'hint: %s\n' "$2" >&2
  exit 1
}
work=$(mktemp -d /tmp/mpfr-work-XXXXXX)
cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && [[ -d $dir ]]; then
    local keep
    keep=/tmp/mpfr-failed-$(date +%Y%m%d-%H%M%S)
    mkdir -p "$keep"
    for node in a b; do
      cp "$dir/$node/mpfailoverd.log" "$keep/mpfailoverd-$node.log" 2>/dev/null
      cp "$dir/$node/pg/server.log" "$keep/postgresql-$node.log" 2>/dev/null
    done
    cp "$work"/*.log "$keep/" 2>/dev/null
    echo "realistic_bench: logs kept in $keep" >&2
  fi
  if [[ ${MPF_BENCH_KEEP:-} == 1 ]]; then
    say "MPF_BENCH_KEEP=1: the pair stays up (MPF_PAIR_NS=$MPF_PAIR_NS MPF_PAIR_DIR=$dir $pair down)"
  else
    flock /tmp/mpf-netns.lock "$pair" down >/dev/null 2>&1 || echo "realistic_bench: pair.sh down failed" >&2
  fi
  rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "realistic_bench: stopped by SIGTERM (time limit ${limit_s}s?)" >&2; exit 143' TERM

# sqld NODE DB SQL-ARGS...: one psql session, unaligned tuples only, stops at the first error.
sqld() {
  local node=$1 db=$2
  shift 2
  PGOPTIONS="-c client_min_messages=warning" "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    "host=$dir/$node/pg port=5432 user=postgres dbname=$db" "$@"
}
now() { date +%s.%N; }
calc() { echo "scale=6; $*" | bc -l; }
fmt() { printf "%.${2:-1}f" "$1"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
  if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
  else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
db_of() { [[ $1 == mpf ]] && echo meetingplace || echo mpbuiltin; }
other() { [[ $1 == a ]] && echo b || echo a; }

# Which system is live: mpf (daemons up, subscription disabled) or builtin (daemons stopped,
# subscription enabled). Idempotent.
live=""
go_live() {
  [[ $live == "$1" ]] && return 0
  if [[ $1 == mpf ]]; then
    sub_set DISABLE
    "$pair" start-daemon a >/dev/null 2>&1 || true
    "$pair" start-daemon b >/dev/null 2>&1 || true
    wait_roles "$mpf_active" "$(other "$mpf_active")"
  else
    "$pair" stop-daemon a >/dev/null 2>&1 || true
    "$pair" stop-daemon b >/dev/null 2>&1 || true
    sub_set ENABLE
  fi
  live=$1
}
# sub_set ENABLE|DISABLE: the built-in's subscription on b, when it exists (not before the copy).
# DISABLE waits until the apply worker has exited: it only notices between transactions, and a
# worker the launcher was still starting kept applying a whole backlog meant to queue.
sub_set() {
  local i
  [[ -n $(sqld b mpbuiltin -c "SELECT 1 FROM pg_subscription WHERE subname = 'mpb'") ]] || return 0
  sqld b mpbuiltin -c "ALTER SUBSCRIPTION mpb $1" >/dev/null
  [[ $1 == DISABLE ]] || return 0
  for ((i = 0; i < 300; i++)); do
    [[ $(sqld b mpbuiltin -c "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'mpb' AND pid IS NOT NULL") == 0 ]] && return 0
    sleep 0.1
  done
  fail "the built-in's apply worker did not stop within 30 s of ALTER SUBSCRIPTION DISABLE"
}
role_of() {
  "$pair" cli "$1" status --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])' 2>/dev/null || true
}
wait_roles() {
  local i
  for ((i = 0; i < 150; i++)); do
    [[ $(role_of "$1") == active && $(role_of "$2") == standby ]] && return 0
    sleep 0.2
  done
  fail "roles did not settle: $1 $(role_of "$1"), $2 $(role_of "$2")"
}
mpf_active=a

# pgbench_mix SYS NODE LOG [options]: the mix on NODE's database of SYS; sets pgb_tps/pgb_n.
pgb_tps=0
pgb_n=0
pgbench_mix() {
  local sys=$1 node=$2 log=$3
  shift 3
  "$pair" exec "$node" timeout --kill-after=10 3600 "$pg_bin/pgbench" -n -h "$dir/$node/pg" \
    -p 5432 -U postgres -D nusers=$nusers -D ngroups=$ngroups -D nmeetings=$nmeetings \
    -f "$mix/schedule_meeting.sql@30" -f "$mix/update_meeting.sql@30" \
    -f "$mix/cancel_meeting.sql@10" -f "$mix/edit_user.sql@25" -f "$mix/change_group.sql@5" \
    "$@" "$(db_of "$sys")" >"$log" 2>&1 || { tail -20 "$log" >&2; fail "pgbench failed (log above)"; }
  if grep -q 'aborted' "$log"; then
    grep -m3 'error' "$log" >&2
    fail "a pgbench client aborted"
  fi
  pgb_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
  pgb_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log" | head -1)
  [[ -n $pgb_n && -n $pgb_tps ]] || fail "no figures in pgbench's output \"$log\""
}

# A marker row (the seed's bench-marker group): written on SRC, waited for on DST.
marker_seq=0
marker=""
write_marker() {  # SYS SRC
  marker_seq=$((marker_seq + 1))
  marker="marker-$marker_seq-$$"
  sqld "$2" "$(db_of "$1")" \
    -c "UPDATE groups SET description = '$marker' WHERE group_id = md5('bench-marker')::uuid" >/dev/null
}
# wait_marker SYS DST SECONDS [presence]: prints the marker's commit time on DST (epoch
# seconds); with "presence" only waits (the built-in's time needs wal_mark).
wait_marker() {
  local sys=$1 node=$2 seconds=$3 out
  out=$(sqld "$node" "$(db_of "$sys")" -c "SET statement_timeout = '$((seconds + 10))s'" -c "
    DO \$\$
    BEGIN
      FOR i IN 1..$((seconds * 50)) LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM groups WHERE group_id = md5('bench-marker')::uuid
                          AND description = '$marker');
        PERFORM pg_sleep(0.02);
      END LOOP;
    END \$\$" -c "
    SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) || ' ' || xmin
    FROM groups WHERE group_id = md5('bench-marker')::uuid AND description = '$marker'") ||
    fail "could not poll node $node for the marker"
  [[ -n $out ]] || fail "$sys: marker \"$marker\" did not reach node $node within ${seconds}s" \
    "see $dir/a/mpfailoverd.log, $dir/b/mpfailoverd.log, $dir/*/pg/server.log"
  if [[ $sys == mpf || ${4:-} == presence ]]; then
    echo "${out%% *}"
    return
  fi
  # The built-in's apply worker commits with the origin's commit timestamp (that is what
  # pg_xact_commit_timestamp shows on the subscriber), so its own commit time comes from the
  # commit record in its WAL.
  local t
  t=$(wal_commits "$node" "$wal_mark" | awk -v x="${out##* }" '$1 == x {print $2 " " $3}' | tail -1)
  [[ -n $t ]] || fail "no commit record for the marker's transaction ${out##* } in $node's WAL"
  date -u -d "$t UTC" +%s.%N
}
# wal_commits NODE LSN: "xid date time" (UTC) per commit record in NODE's WAL since LSN (local
# commit times, as written by the committing backend).
wal_lsn() { sqld "$1" postgres -c "SELECT pg_current_wal_lsn()"; }
wal_mark=""
wal_commits() {
  local node=$1 from=$2
  # The apply worker commits asynchronously (synchronous_commit = off is a subscription's
  # default): a synchronous commit of a transaction with an xid flushes the WAL before it.
  sqld "$node" postgres -c "SELECT pg_current_xact_id()" >/dev/null
  TZ=UTC "$pg_bin/pg_waldump" -p "$dir/$node/pg/data/pg_wal" -s "$from" -r Transaction 2>/dev/null |
    sed -n 's/.* tx: *\([0-9]*\),.*desc: COMMIT \([0-9-]* [0-9:.]*\) UTC.*/\1 \2/p' || true
}
# Waits until SYS's target has everything the source committed so far.
sync_up() {  # SYS SRC DST
  write_marker "$1" "$2"
  wait_marker "$1" "$3" 900 presence >/dev/null
}

# Result storage: res[KEY] holds space-separated samples.
declare -A res=()
add() { res[$1]="${res[$1]:-} $2"; }
med() { [[ -n ${res[$1]:-} ]] && median ${res[$1]} || echo nan; }

# ---------------------------------------------------------------------------------------------
# set-up: the pair, TCP + wal_level = logical, the built-in's databases

say "realistic benchmark: build $MPF_BUILD_DIR, pair $MPF_PAIR_NS in $dir, $(date -u +%FT%TZ)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
  "load $(load) at start (shared with other work: figures are noisy, the ratios of interleaved runs are the point)"
flock /tmp/mpf-netns.lock "$pair" up >"$work/up.log" 2>&1 ||
  { tail -20 "$work/up.log" >&2; fail "pair.sh up failed"; }

for node in a b; do
  "$pair" stop-daemon "$node" >/dev/null
done
for node in a b; do
  addr=$([[ $node == a ]] && echo 198.18.0.11 || echo 198.18.0.12)
  cat >>"$dir/$node/pg/data/postgresql.conf" <<CONF
# realistic_bench.sh: the built-in logical replication beside mpfailover
wal_level = logical
listen_addresses = '$addr'
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '1GB'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track_utility = on
CONF
  echo "host all all 198.18.0.0/24 trust" >>"$dir/$node/pg/data/pg_hba.conf"
  echo "host replication all 198.18.0.0/24 trust" >>"$dir/$node/pg/data/pg_hba.conf"
  "$pair" stop-pg "$node" >/dev/null
  "$pair" start-pg "$node" >/dev/null
  sqld "$node" postgres -c "CREATE DATABASE mpbuiltin" >/dev/null
  sqld "$node" meetingplace -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  sqld "$node" mpbuiltin -f "$repo/schema/app/0001_meetingplace.sql" >/dev/null
done
say "server: $(sqld a meetingplace -c "SELECT 'PostgreSQL ' || current_setting('server_version') ||
  ', wal_level=' || current_setting('wal_level') || ', synchronous_commit=' ||
  current_setting('synchronous_commit') || ', shared_buffers=' || current_setting('shared_buffers')")"

# Seed both sources (deterministic). mpfailover's seed is written with capture off
# (mpfailover.applying = on) so that b receives it by the initial copy, as the built-in does.
seed() {  # NODE DB [capture-off]
  local opts=()
  [[ ${3:-} == capture-off ]] && opts=(-c "SET mpfailover.applying = on")
  sqld "$1" "$2" "${opts[@]}" -v nusers=$nusers -v ngroups=$ngroups -v nmembers=$nmembers \
    -v nmeetings=$nmeetings -v nparts=$nparts -f "$mix/seed.sql" >/dev/null
  sqld "$1" "$2" -c "VACUUM ANALYZE" >/dev/null
}
t0=$(now)
seed a meetingplace capture-off
seed a mpbuiltin
rows=$(sqld a mpbuiltin -c "SELECT (SELECT count(*) FROM users) || ' users, ' ||
  (SELECT count(*) FROM groups) || ' groups, ' || (SELECT count(*) FROM group_members) ||
  ' memberships, ' || (SELECT count(*) FROM meetings) || ' meetings, ' ||
  (SELECT count(*) FROM meeting_participants) || ' participants'")
say "seed: $rows (each source, $(fmt "$(calc "$(now) - $t0")") s for both); database size" \
  "$(sqld a meetingplace -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
sqld a mpbuiltin -c "CREATE PUBLICATION mpb FOR ALL TABLES" >/dev/null

# ---------------------------------------------------------------------------------------------
# copy: the initial copy of the seed to an empty b (the first run of each also sets b up)

builtin_copy() {
  local t0 t1 i n
  sqld b mpbuiltin -c "DROP SUBSCRIPTION IF EXISTS mpb" >/dev/null
  sqld b mpbuiltin -c "TRUNCATE users, groups, group_members, meetings, meeting_participants" >/dev/null
  sqld b mpbuiltin -c "CHECKPOINT" >/dev/null
  t0=$(now)
  sqld b mpbuiltin -c "CREATE SUBSCRIPTION mpb CONNECTION 'host=198.18.0.11 port=5432 user=postgres dbname=mpbuiltin' PUBLICATION mpb WITH (copy_data = true)" >/dev/null
  for ((i = 0; i < 36000; i++)); do
    n=$(sqld b mpbuiltin -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")
    [[ $n == 0 ]] && break
    sleep 0.05
  done
  [[ $n == 0 ]] || fail "built-in initial copy did not finish"
  t1=$(now)
  calc "$t1 - $t0"
}
mpf_copy() {
  local t0 t1 out
  sqld b meetingplace -c "CHECKPOINT" >/dev/null
  t0=$(now)
  out=$("$pair" cli b resync --force --json 2>&1) || { echo "$out" >&2; fail "mpfailover resync failed"; }
  t1=$(now)
  echo "$out" >"$work/resync.json"
  calc "$t1 - $t0"
}
# The built-in subscription always exists from here on (later phases enable/disable it).
copy_runs=1
has_phase copy && copy_runs=$runs
for ((r = 1; r <= copy_runs; r++)); do
  go_live mpf
  v=$(mpf_copy); add copy.mpf "$v"
  say "copy run $r: mpfailover resync $(fmt "$v" 2) s   (load $(load))"
  go_live builtin
  v=$(builtin_copy); add copy.builtin "$v"
  say "copy run $r: built-in copy_data $(fmt "$v" 2) s   (load $(load))"
done
go_live mpf
sync_up mpf a b
sqld b meetingplace -c "VACUUM ANALYZE" >/dev/null
sqld b mpbuiltin -c "VACUUM ANALYZE" >/dev/null

# ---------------------------------------------------------------------------------------------
# capture: source throughput with / without replication

capture_toggle() {  # SYS on|off
  local t
  if [[ $1 == mpf ]]; then
    for t in users groups group_members meetings meeting_participants; do
      sqld a meetingplace -c "ALTER TABLE $t $([[ $2 == on ]] && echo ENABLE || echo DISABLE) TRIGGER mpfailover_capture" >/dev/null
    done
  else
    sub_set "$([[ $2 == on ]] && echo ENABLE || echo DISABLE)"
  fi
}
capture_run() {  # SYS RUN
  local sys=$1 run=$2 with without
  go_live "$sys"
  sqld a "$(db_of "$sys")" -c "CHECKPOINT" >/dev/null
  pgbench_mix "$sys" a "$work/cap-$sys-on-$run.log" -M prepared -c $clients -j 2 -T "$capture_seconds"
  with=$pgb_tps
  capture_toggle "$sys" off
  sqld a "$(db_of "$sys")" -c "CHECKPOINT" >/dev/null
  pgbench_mix "$sys" a "$work/cap-$sys-off-$run.log" -M prepared -c $clients -j 2 -T "$capture_seconds"
  without=$pgb_tps
  capture_toggle "$sys" on
  add "cap.$sys" "$(calc "(1 - $with / $without) * 100")"
  say "capture run $run $sys: $(fmt "$with") tx/s with, $(fmt "$without") without: cost $(fmt "$(calc "(1 - $with / $without) * 100")") %   (load $(load))"
  sync_up "$sys" a b
}
if has_phase capture; then
  for ((r = 1; r <= runs; r++)); do capture_run mpf "$r"; capture_run builtin "$r"; done
fi

# ---------------------------------------------------------------------------------------------
# lag at 200 tx/s

lag_run() {  # SYS SRC DST LABEL RUN
  local sys=$1 src=$2 dst=$3 label=$4 run=$5 db start out n p50 p99 max
  db=$(db_of "$sys")
  go_live "$sys"
  start=$(sqld "$src" "$db" -c "SELECT extract(epoch FROM clock_timestamp())")
  wal_mark=$(wal_lsn "$dst")
  pgbench_mix "$sys" "$src" "$work/lag-$label-$run.log" -M prepared -c $clients -j 2 --rate=200 -T "$lag_seconds"
  sync_up "$sys" "$src" "$dst"
  sqld "$src" "$db" -c "\\copy (SELECT meeting_id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint FROM meetings WHERE pg_xact_commit_timestamp(xmin) >= to_timestamp($start)) TO '$work/lag.tsv'"
  # The target's own commit time of each row's version: its commit timestamp for mpfailover
  # (the applier commits with its own clock), the commit record in its WAL for the built-in (whose
  # commit timestamps are the origin's).
  local commit_us="(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint"
  : >"$work/commits.tsv"
  if [[ $sys == builtin ]]; then
    wal_commits "$dst" "$wal_mark" | awk '{print $1 "\t" $2 " " $3}' >"$work/commits.tsv"
    commit_us="(SELECT (extract(epoch FROM c.at AT TIME ZONE 'UTC') * 1e6)::bigint FROM wal_commit c WHERE c.xid = meetings.xmin::text::bigint ORDER BY c.at DESC LIMIT 1)"
  fi
  out=$(sqld "$dst" "$db" -F ' ' -c "CREATE TEMP TABLE src (meeting_id uuid PRIMARY KEY, a_us bigint)" \
    -c "\\copy src FROM '$work/lag.tsv'" \
    -c "CREATE TEMP TABLE wal_commit (xid bigint, at timestamp)" \
    -c "\\copy wal_commit FROM '$work/commits.tsv'" -c "CREATE INDEX ON wal_commit (xid)" -c "ANALYZE wal_commit" -c "
    SELECT count(m.lag_us),
      round(percentile_disc(0.5) WITHIN GROUP (ORDER BY lag_us) / 1000.0, 3),
      round(percentile_disc(0.99) WITHIN GROUP (ORDER BY lag_us) / 1000.0, 3),
      round(max(lag_us) / 1000.0, 3)
    FROM src s JOIN LATERAL (
      SELECT $commit_us - s.a_us AS lag_us
      FROM meetings WHERE meeting_id = s.meeting_id) m ON m.lag_us IS NOT NULL")
  read -r n p50 p99 max <<<"$out"
  ((n > 0)) || fail "$label: no sampled rows for lag"
  add "lag50.$label" "$p50"; add "lag99.$label" "$p99"; add "lagmax.$label" "$max"
  say "lag run $run $label ($src -> $dst): p50 $p50 ms, p99 $p99 ms, max $max ms over $n rows at $(fmt "$pgb_tps") tx/s   (load $(load))"
}

# ---------------------------------------------------------------------------------------------
# drain of N queued transactions (and the operator reads on that backlog)

target_stop() {  # SYS DST
  if [[ $1 == mpf ]]; then "$pair" stop-daemon "$2" >/dev/null
  else sub_set DISABLE; fi
}
target_start() {  # SYS DST
  if [[ $1 == mpf ]]; then "$pair" start-daemon "$2" >/dev/null
  else sqld b mpbuiltin -c "ALTER SUBSCRIPTION mpb ENABLE" >/dev/null; fi
}
# Backlogs: the mix at full speed, synchronous_commit off for the generator only (the backlog is
# the same, it just builds faster).
make_backlog() {  # SYS SRC N LOG
  local per=$(( ($3 + clients - 1) / clients ))
  PGOPTIONS="-c synchronous_commit=off" pgbench_mix "$1" "$2" "$4" -M prepared -c $clients -j 2 -t "$per"
}
reads_on_backlog() {  # SRC N: operator reads on the mpfailover backlog of SRC
  local src=$1 n=$2 t0 t1 q w
  t0=$(now); "$pair" cli "$src" queue --json >"$work/queue.json" 2>&1 || true; t1=$(now)
  q=$(calc "$t1 - $t0")
  # The metrics sampler (server/src/metrics_sampler.cpp) runs the same read as `queue`
  # (BacklogReader, server/src/backlog.cpp), so one figure stands for both. The warn check
  # (server/src/queue_watch.cpp): a size lookup, then the count when above queue.warn_bytes.
  t0=$(now)
  sqld "$src" meetingplace -c "SELECT pg_total_relation_size('mpfailover.change_log')" \
    -c "SELECT count(*), coalesce(sum(pg_column_size(l.*)), 0) FROM mpfailover.change_log l" >/dev/null
  t1=$(now); w=$(calc "$t1 - $t0")
  add "reads.queue.$n" "$q"; add "reads.warn.$n" "$w"
  say "reads on a $n-transaction backlog: queue (= the metrics sampler's read) $(fmt "$q" 3) s, warn_bytes check (above the limit) $(fmt "$w" 3) s"
}
# The largest private (anonymous) memory of a PostgreSQL process in NODE's namespace, MiB: the
# applier's backend (mpfailover) or the apply worker (built-in) right after a drain. Shared
# buffers are not counted (RssAnon).
backend_anon_mib() {
  local pid kb max=0
  for pid in $(ip netns pids "$MPF_PAIR_NS-$1" 2>/dev/null); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]] || continue
    kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ((${kb:-0} > max)) && max=$kb
  done
  echo $((max / 1024))
}
drain_run() {  # SYS SRC DST N LABEL RUN
  local sys=$1 src=$2 dst=$3 n=$4 label=$5 run=$6 db t0 t1 rate
  db=$(db_of "$sys")
  go_live "$sys"
  target_stop "$sys" "$dst"
  make_backlog "$sys" "$src" "$n" "$work/drain-$label-$n-$run.log"
  write_marker "$sys" "$src"
  if [[ $label == mpf && $n == "${drain_max:-0}" && $run == 1 ]] && has_phase reads; then
    reads_on_backlog "$src" "$n"
  fi
  sqld "$src" "$db" -c "CHECKPOINT" >/dev/null
  sqld "$dst" "$db" -c "CHECKPOINT" >/dev/null
  local profiling=0
  if [[ $sys == mpf && $run == 1 ]]; then
    profiling=1
    sqld "$src" meetingplace -c "SELECT pg_stat_statements_reset()" >/dev/null
    sqld "$dst" meetingplace -c "SELECT pg_stat_statements_reset()" >/dev/null
  fi
  wal_mark=$(wal_lsn "$dst")
  t0=$(now)
  target_start "$sys" "$dst"
  t1=$(wait_marker "$sys" "$dst" 3600)
  rate=$(calc "$pgb_n / ($t1 - $t0)")
  add "drain.$label.$n" "$rate"
  local mem
  mem=$(backend_anon_mib "$dst")
  add "mem.$label.$n" "$mem"
  say "drain run $run $label ($src -> $dst) $pgb_n tx: $(fmt "$(calc "$t1 - $t0")" 2) s, $(fmt "$rate" 0) tx/s; largest backend on $dst ${mem} MiB private   (load $(load))"
  ((profiling)) && print_profile "$src" "$dst" "$label $n"
  if [[ $sys == mpf ]]; then wait_roles "$mpf_active" "$(other "$mpf_active")"; fi
}
# The statements that took the most time on each node during a drain (pg_stat_statements).
print_profile() {  # SRC DST WHAT
  local node
  for node in "$1" "$2"; do
    say "  profile $3, node $node ($([[ $node == "$1" ]] && echo source || echo target)), top 6 by total time:"
    sqld "$node" meetingplace -F $'\t' -c "
      SELECT round(total_exec_time::numeric / 1000, 2) || ' s', calls,
             round((total_exec_time / greatest(calls, 1))::numeric, 3) || ' ms/call',
             regexp_replace(left(query, 100), '\s+', ' ', 'g')
      FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'meetingplace')
        AND query !~ '^DO |pg_stat_statements|CHECKPOINT|pg_current_wal_lsn|pg_current_xact_id'
      ORDER BY total_exec_time DESC LIMIT 6" 2>/dev/null | sed 's/^/    /' || true
  done
}

drain_max=0
for n in ${drain_list//,/ }; do ((n > drain_max)) && drain_max=$n; done
# The drains after a switchover (and back) repeat the curve's first backlog, compared with it.
drain_after=${drain_list%%,*}

if has_phase lag; then
  for ((r = 1; r <= runs; r++)); do lag_run mpf a b mpf "$r"; lag_run builtin a b builtin "$r"; done
fi
if has_phase drain; then
  for n in ${drain_list//,/ }; do
    nr=$runs
    ((n >= 1000000)) && nr=1
    for ((r = 1; r <= nr; r++)); do drain_run mpf a b "$n" mpf "$r"; drain_run builtin a b "$n" builtin "$r"; done
  done
fi

# ---------------------------------------------------------------------------------------------
# thin: 128 kbit/s

# a's veth counters: "sent received" (every frame, TCP/IP included).
veth_bytes() {
  local veth=veth-$MPF_PAIR_NS-a
  echo "$("$pair" exec a cat /sys/class/net/$veth/statistics/tx_bytes)" \
    "$("$pair" exec a cat /sys/class/net/$veth/statistics/rx_bytes)"
}
thin_run() {  # SYS RUN
  local sys=$1 run=$2 t0 t1 b0 b1 rate bpt s0 s1 r0 r1 use
  go_live "$sys"
  target_stop "$sys" b
  make_backlog "$sys" a "$thin_tx" "$work/thin-$sys-$run.log"
  write_marker "$sys" a
  "$pair" thin 128kbit >/dev/null
  wal_mark=$(wal_lsn b)
  b0=$(veth_bytes)
  t0=$(now)
  target_start "$sys" b
  t1=$(wait_marker "$sys" b 1800)
  b1=$(veth_bytes)
  "$pair" unthin >/dev/null
  rate=$(calc "$pgb_n / ($t1 - $t0)")
  # Bytes per transaction: both directions (acknowledgements and heartbeats included); the
  # share of the link: what a sent (the direction the 16,000 B/s limit binds) per second.
  read -r s0 r0 <<<"$b0"
  read -r s1 r1 <<<"$b1"
  bpt=$(calc "($s1 - $s0 + $r1 - $r0) / $pgb_n")
  use=$(calc "($s1 - $s0) / ($t1 - $t0) / 160")
  add "thin.$sys" "$rate"; add "thinb.$sys" "$bpt"; add "thinuse.$sys" "$use"
  say "thin run $run $sys: $pgb_n tx in $(fmt "$(calc "$t1 - $t0")" 1) s: $(fmt "$rate") tx/s, $(fmt "$bpt" 0) B/tx on the wire (both ways), a -> b at $(fmt "$use" 0) % of 16,000 B/s   (load $(load))"
  if [[ $sys == mpf ]]; then wait_roles "$mpf_active" "$(other "$mpf_active")"; fi
}
if has_phase thin; then
  for ((r = 1; r <= runs; r++)); do thin_run mpf "$r"; thin_run builtin "$r"; done
fi

# ---------------------------------------------------------------------------------------------
# switchover under 200 tx/s (mpfailover), then lag and drain after it and after switching back

cat >"$work/insert.sql" <<'SQL'
\set n random(1, 1000000000)
INSERT INTO users (login) VALUES ('sw_' || :client_id || '_' || :n || '_' || txid_current());
SQL
switchover_run() {  # FROM TO
  local from=$1 to=$2 load_pid out secs missing
  go_live mpf
  "$pair" exec "$from" timeout 60 "$pg_bin/pgbench" -n -h "$dir/$from/pg" -p 5432 \
    -U meetingplace -c 4 -j 2 --rate 200 -T 30 -f "$work/insert.sql" meetingplace \
    >"$work/sw-pgbench.log" 2>&1 &
  load_pid=$!
  sleep 4
  out=$("$pair" cli "$from" switchover --json) || { echo "$out" >&2; fail "switchover $from -> $to failed"; }
  secs=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' <<<"$out")
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  mpf_active=$to
  wait_roles "$to" "$from"
  sqld "$from" meetingplace -c "SELECT login FROM users WHERE login LIKE 'sw_%' ORDER BY 1" >"$work/old.txt"
  sqld "$to" meetingplace -c "SELECT login FROM users WHERE login LIKE 'sw_%' ORDER BY 1" >"$work/new.txt"
  missing=$(LC_ALL=C comm -23 "$work/old.txt" "$work/new.txt" | grep -c . || true)
  add sw "$secs"; add swlost "$missing"
  say "switchover $from -> $to under 200 tx/s: $(fmt "$secs" 3) s, committed rows missing on $to: $missing   (load $(load))"
}
if has_phase switchover || has_phase after; then
  switchover_run a b
  if has_phase after; then
    # b active, a the target: a's rows were written by a itself (the last-writer-wins path).
    for ((r = 1; r <= runs; r++)); do
      lag_run mpf b a mpf-swapped "$r"
      drain_run mpf b a "$drain_after" mpf-swapped "$r"
    done
  fi
  switchover_run b a
  if has_phase after; then
    for ((r = 1; r <= runs; r++)); do
      lag_run mpf a b mpf-back "$r"
      drain_run mpf a b "$drain_after" mpf-back "$r"
    done
  fi
fi

# ---------------------------------------------------------------------------------------------
# the table

ratio() {  # A B: A / B, or n/a
  [[ $1 == nan || $2 == nan ]] && { echo n/a; return; }
  printf '%.2fx' "$(calc "$1 / $2")"
}
hit() { [[ $1 == n/a ]] && echo "n/a" || { (($(echo "$2" | bc -l))) && echo HIT || echo MISSED; }; }
row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }
v() { local m; m=$(med "$1"); [[ $m == nan ]] && echo "—" || fmt "$m" "${2:-1}"; }

say ""
say "RESULT realistic_bench $( ((quick)) && echo '--quick ')seed $nusers users / $nmeetings meetings, runs $runs, $(date -u +%FT%TZ), load $(load), $(nproc) cores shared with other work"
say ""
row "figure (median of $runs)" "mpfailover" "built-in pub/sub" "ratio" "target"
row "---" "---" "---" "---" "---"
if has_phase capture; then
  m=$(med cap.mpf); b=$(med cap.builtin)
  row "capture cost (source tx/s lost)" "$(v cap.mpf 1) %" "$(v cap.builtin 1) %" "—" \
    "≤ 3 %: $([[ $m == nan ]] && echo n/a || hit x "$m <= 3")"
fi
if has_phase lag; then
  for p in 50 99 max; do
    m=$(med lag$p.mpf); b=$(med lag$p.builtin); r=$(ratio "$m" "$b")
    t="—"
    [[ $p == 99 ]] && t="≤ 0.5x: $(hit "$r" "$m <= 0.5 * $b")"
    row "lag p$p at 200 tx/s (ms)" "$(v lag$p.mpf 2)" "$(v lag$p.builtin 2)" "$r" "$t"
  done
fi
if has_phase drain; then
  for n in ${drain_list//,/ }; do
    m=$(med drain.mpf.$n); b=$(med drain.builtin.$n); r=$(ratio "$m" "$b")
    row "drain of $n queued (tx/s)" "$(v drain.mpf.$n 0)" "$(v drain.builtin.$n 0)" "$r" \
      "≥ 2x: $(hit "$r" "$m >= 2 * $b")"
  done
fi
if has_phase drain; then
  n=${drain_list##*,}
  row "largest target backend after the $n drain (MiB private)" "$(v mem.mpf.$n 0)" "$(v mem.builtin.$n 0)" "—" "—"
fi
if has_phase thin; then
  m=$(med thin.mpf); b=$(med thin.builtin); r=$(ratio "$m" "$b")
  mb=$(med thinb.mpf); bb=$(med thinb.builtin)
  row "128 kbit/s drain (tx/s)" "$(v thin.mpf 1)" "$(v thin.builtin 1)" "$r" "≥ 10x: $(hit "$r" "$m >= 10 * $b")"
  row "128 kbit/s: bytes/tx on the wire (both ways); a -> b use of 16,000 B/s" \
    "$(v thinb.mpf 0) B; $(v thinuse.mpf 0) %" \
    "$(v thinb.builtin 0) B; $(v thinuse.builtin 0) %" "$(ratio "$mb" "$bb")" "—"
fi
if has_phase copy; then
  m=$(med copy.mpf); b=$(med copy.builtin); r=$(ratio "$m" "$b")
  row "initial copy of the seed (s)" "$(v copy.mpf 2) (resync)" "$(v copy.builtin 2) (copy_data)" "$r" \
    "≤ 1x: $(hit "$r" "$m <= $b")"
fi
if has_phase switchover || has_phase after; then
  m=$(med sw); lost=0
  for x in ${res[swlost]}; do lost=$((lost + x)); done
  row "switchover under 200 tx/s (s); lost" "$(v sw 3); $lost lost" "none (pg_auto_failover ~1.4 s)" "—" \
    "< 0.1 s, 0 lost: $( (($(echo "$m < 0.1" | bc -l))) && ((lost == 0)) && echo HIT || echo MISSED)"
fi
if has_phase after; then
  for st in swapped back; do
    what=$([[ $st == swapped ]] && echo "after switchover (b -> a)" || echo "after switchover and back")
    for k in lag99 drain; do
      if [[ $k == lag99 ]]; then before=$(med lag99.mpf); now_=$(med lag99.mpf-$st); unit="lag p99 (ms)"
      else before=$(med drain.mpf.$drain_after); now_=$(med drain.mpf-$st.$drain_after); unit="drain $drain_after (tx/s)"; fi
      key=$([[ $k == lag99 ]] && echo lag99.mpf-$st || echo drain.mpf-$st.$drain_after)
      r=$(ratio "$now_" "$before")
      t="—"
      if [[ $st == back && $r != n/a ]]; then
        t="within 10 % of before: $(hit "$r" "$now_ <= 1.1 * $before && $now_ >= 0.9 * $before")"
      fi
      row "$unit $what" "$(v "$key" 1)" "—" "$r of before" "$t"
    done
  done
fi
if has_phase reads && has_phase drain; then
  for k in queue warn; do
    m=$(med reads.$k.$drain_max)
    row "operator read on $drain_max queued: $k (s)" "$(v reads.$k.$drain_max 3)" "—" "—" \
      "< 1 s: $([[ $m == nan ]] && echo n/a || hit x "$m < 1")"
  done
fi
say ""
say "elapsed $(fmt "$(calc "$(now) - $t0")" 0) s since the seed; load $(load)"

#!/usr/bin/env bash
# A complete mpfailover pair on this machine, for integration tests, benchmarks and the demo:
# two network-namespace hosts joined by one veth link, each with its own PostgreSQL 15 cluster
# and mpfailoverd, configured through real config files. Run as root.
#
#   node a: namespace mpf-a, veth-mpf-a, 198.18.0.11/24      node b: mpf-b, veth-mpf-b, 198.18.0.12/24
#
# Nothing routes outside the pair: each namespace has only lo and its veth end, the /24's
# connected route and no default route, no NAT, no bridge. IPv6 is off on the veth ends so the
# only addresses on the link are the two in 198.18.0.0/24.
#
# Sub-commands (pair.sh help lists them):
#   up | down | status                    stand up (tears down a stale pair first), remove, show
#   start-daemon|stop-daemon|kill-daemon|restart-daemon a|b
#   start-pg|stop-pg|restart-pg a|b       stop-pg is an immediate stop, like a crash
#   cut | cut-oneway a|b | uncut          drop every packet / what a|b sends (nft); uncut undoes
#   block-2008 | unblock-2008             drop only TCP port 2008, both directions
#   thin [RATE] | unthin                  tbf on both veth ends (default 128kbit)
#   link-down [a|b] | link-up [a|b]       ip link set down/up on the veth end(s)
#   heal                                  remove every fault: nft rules, qdiscs, links down
#   ping [a b]                            one ping across the link (exit 1 if it fails)
#   psql a|b [ARGS]                       psql on that node's database, e.g. psql a -Atc 'select 1'
#   exec a|b CMD...                       run CMD inside the node's namespace
#   cli a|b ARGS...                       mpfailover --config DIR/X.conf ARGS... in the namespace
#   conninfo a|b | log a|b [N]            the node's libpq conninfo / last N lines of its daemon log
#
# Environment:
#   MPF_PAIR_NS           namespace prefix (default mpf: mpf-a, mpf-b), for a second pair at once
#   MPF_PAIR_DIR          state dir (default /tmp/mpf-pair): X.conf, X/pg (cluster, socket),
#                         X/mpfailoverd.{pid,log}, X/mpfailover.sock
#   MPF_BUILD_DIR         build tree (default <repo>/build): server/mpfailoverd, server/mpfailover
#   MPF_PG_MODULE_DIR     where mpfailover_capture.so is (default $MPF_BUILD_DIR/replicator/pgmodule)
#   MPF_PG_BINDIR         PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   MPF_PAIR_HEARTBEAT    heartbeat.interval in both configs (default 1s)
#   MPF_PAIR_LOG_LEVEL    log.level in both configs (default info)
#   MPF_PAIR_EXTRA_CONF   text appended verbatim to both config files (start it with a [section])
#   MPF_PAIR_EXTRA_CONF_A, MPF_PAIR_EXTRA_CONF_B   appended after that, to one node's file only
#   MPF_PAIR_SECURITY     curve (default): CURVE keys per node made with mpfailover keygen;
#                         plain: unencrypted link; none: no [security] section (bring your own)
#   MPF_PAIR_KEEP_ON_FAILURE=1   a failed `up` leaves what it made, for a post-mortem
#
# One pair per machine (the namespace names are fixed). Commands that change the pair take an
# flock on this script, so concurrent callers queue (up to 120 s) instead of racing. Every wait
# is bounded.
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$self")/.." && pwd)
dir=${MPF_PAIR_DIR:-/tmp/mpf-pair}
build=${MPF_BUILD_DIR:-$repo/build}
daemon_bin=$build/server/mpfailoverd
cli_bin=$build/server/mpfailover
module_dir=${MPF_PG_MODULE_DIR:-$build/replicator/pgmodule}
pg_bin=${MPF_PG_BINDIR:-/usr/lib/postgresql/15/bin}
pg_cluster=$repo/tests/support/pg_cluster.sh
heartbeat=${MPF_PAIR_HEARTBEAT:-1s}
log_level=${MPF_PAIR_LOG_LEVEL:-info}
pg_port=5432
marker=.mpf-pair
nodes=(a b)

# ---------------------------------------------------------------------------------------------
# small helpers

say() { printf 'pair: %s\n' "$*"; }
warn() { printf 'pair.sh: warning: %s\n' "$*" >&2; }
die() {
  printf 'pair.sh: %s\n' "$1" >&2
  [[ -z ${2:-} ]] || printf 'hint: %s\n' "$2" >&2
  exit 1
}
usage_error() {
  printf 'pair.sh: %s\nhint: pair.sh help\n' "$*" >&2
  exit 2
}

# MPF_PAIR_NS names the namespaces (<ns>-a, <ns>-b) and veths, so that two pairs (a test and a
# benchmark, say) can exist at once with their own MPF_PAIR_DIR. At most 6 characters.
ns_prefix=${MPF_PAIR_NS:-mpf}
ns_of() { echo "$ns_prefix-$1"; }
veth_of() { echo "veth-$ns_prefix-$1"; }
addr_of() { [[ $1 == a ]] && echo 198.18.0.11 || echo 198.18.0.12; }
peer_of() { [[ $1 == a ]] && echo b || echo a; }
node_dir() { echo "$dir/$1"; }
conf_of() { echo "$dir/$1.conf"; }
pg_dir() { echo "$dir/$1/pg"; }
pid_file() { echo "$dir/$1/mpfailoverd.pid"; }
log_file() { echo "$dir/$1/mpfailoverd.log"; }
conninfo_of() { echo "host=$(pg_dir "$1") port=$pg_port user=postgres dbname=meetingplace"; }

need_node() {
  [[ ${1:-} == a || ${1:-} == b ]] || usage_error "expected node \"a\" or \"b\", got \"${1:-}\""
}
ns_exists() { [[ -e /run/netns/$(ns_of "$1") ]]; }
need_ns() {
  ns_exists "$1" || die "namespace \"$(ns_of "$1")\" does not exist" "run: deploy/pair.sh up"
}
in_ns() {
  local node=$1
  shift
  ip netns exec "$(ns_of "$node")" "$@"
}
as_pg() { runuser -u postgres -- "$@"; }

# True while PID exists and is not a zombie (a killed daemon whose parent already exited is
# reaped by init, but until then it must not count as running).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# Bounded poll: wait_for SECONDS DESCRIPTION CMD... (polls every 0.1 s).
wait_for() {
  local seconds=$1 what=$2 i
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  warn "$what: not reached after ${seconds}s"
  return 1
}

# ---------------------------------------------------------------------------------------------
# mpfailoverd

# The daemon's pid, if the pid file names a live mpfailoverd running this node's config (a
# recycled pid must never be killed).
daemon_pid() {
  local f pid cmd
  f=$(pid_file "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *mpfailoverd* && $cmd == *"--config $(conf_of "$1") "* ]] || return 1
  echo "$pid"
}

started_count() { grep -c DaemonStarted "$(log_file "$1")" 2>/dev/null || true; }

start_daemon() {
  local node=$1 pid before log pidf
  need_ns "$node"
  [[ -f $(conf_of "$node") ]] || die "no config file \"$(conf_of "$node")\"" "run: deploy/pair.sh up"
  if pid=$(daemon_pid "$node"); then
    say "mpfailoverd $node already running (pid $pid)"
    return 0
  fi
  log=$(log_file "$node")
  pidf=$(pid_file "$node")
  before=$(started_count "$node")
  rm -f "$pidf"
  say "starting mpfailoverd $node in $(ns_of "$node") (log $log)"
  # setsid: its own session, so a terminal's ^C or hangup does not reach it. The shell writes
  # its own pid and execs the daemon, so the pid file is exact whatever setsid does.
  # Not through in_ns: a backgrounded shell function would leave a bash waiting on the daemon.
  ip netns exec "$(ns_of "$node")" setsid sh -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && shift && exec "$@"' \
    sh "$pidf" "$daemon_bin" --config "$(conf_of "$node")" </dev/null >>"$log" 2>&1 9<&- &
  wait_for 5 "pid file \"$pidf\"" test -s "$pidf" || die "mpfailoverd $node did not start"
  pid=$(<"$pidf")
  local i
  for ((i = 0; i < 150; i++)); do
    (($(started_count "$node") > before)) && break
    if ! alive "$pid"; then
      tail -5 "$log" | sed 's/^/  /' >&2
      rm -f "$pidf"
      die "mpfailoverd $node exited during start" "see $log"
    fi
    sleep 0.1
  done
  ((i < 150)) || die "mpfailoverd $node logged no DaemonStarted within 15s" "see $log"
  say "mpfailoverd $node running (pid $pid)"
}

# stop_daemon NODE SIGNAL: TERM waits up to 10 s then falls back to KILL; KILL waits up to 5 s.
stop_daemon() {
  local node=$1 sig=$2 pid
  if ! pid=$(daemon_pid "$node"); then
    say "mpfailoverd $node is not running"
    rm -f "$(pid_file "$node")"
    return 0
  fi
  say "sending SIG$sig to mpfailoverd $node (pid $pid)"
  local done_word=stopped
  [[ $sig == KILL ]] && done_word=killed
  kill -s "$sig" "$pid" 2>/dev/null || true
  if [[ $sig == TERM ]] && ! wait_for 10 "mpfailoverd $node exit" eval "! alive $pid"; then
    warn "mpfailoverd $node (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait_for 5 "mpfailoverd $node exit" eval "! alive $pid" ||
    die "mpfailoverd $node (pid $pid) is still alive"
  rm -f "$(pid_file "$node")"
  say "mpfailoverd $node $done_word"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

postmaster_pid() {
  local f pid
  f=$(pg_dir "$1")/data/postmaster.pid
  [[ -f $f ]] || return 1
  pid=$(head -1 "$f" 2>/dev/null)
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  echo "$pid"
}
pg_ready() { "$pg_bin/pg_isready" -q -h "$(pg_dir "$1")" -p "$pg_port" 2>/dev/null; }

start_pg() {
  local node=$1 pid
  need_ns "$node"
  [[ -f $(pg_dir "$node")/data/PG_VERSION ]] || [[ ${2:-} == init ]] ||
    die "node $node has no cluster in \"$(pg_dir "$node")\"" "run: deploy/pair.sh up"
  if pid=$(postmaster_pid "$node"); then
    say "postgresql $node already running (pid $pid)"
  else
    say "starting postgresql $node in $(ns_of "$node") ($(pg_dir "$node"))"
    # pg_cluster.sh runs initdb (first time) and pg_ctl as user postgres; run through
    # `ip netns exec`, the postmaster and every backend live in the node's namespace.
    in_ns "$node" env MPF_PG_MODULE_DIR="$module_dir" MPF_PG_BINDIR="$pg_bin" \
      "$pg_cluster" start "$(pg_dir "$node")" "$pg_port" </dev/null >/dev/null 9<&- ||
      die "could not start postgresql $node" "see $(pg_dir "$node")/server.log"
  fi
  wait_for 30 "postgresql $node accepting connections" pg_ready "$node" ||
    die "postgresql $node is not accepting connections" "see $(pg_dir "$node")/server.log"
  say "postgresql $node ready (pid $(postmaster_pid "$node"))"
}

# stop_pg NODE MODE: immediate (a crash, for faults) or fast (teardown).
stop_pg() {
  local node=$1 mode=$2 pid data
  data=$(pg_dir "$node")/data
  if ! pid=$(postmaster_pid "$node"); then
    say "postgresql $node is not running"
    return 0
  fi
  say "stopping postgresql $node (-m $mode, pid $pid)"
  as_pg "$pg_bin/pg_ctl" -D "$data" -m "$mode" -w -t 15 stop >/dev/null 2>&1 ||
    { [[ $mode == immediate ]] || as_pg "$pg_bin/pg_ctl" -D "$data" -m immediate -w -t 10 stop \
      >/dev/null 2>&1; } || true
  if alive "$pid"; then
    warn "postgresql $node (pid $pid) did not stop; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait_for 10 "postgresql $node exit" eval "! alive $pid" ||
    die "postgresql $node (pid $pid) is still alive"
  say "postgresql $node stopped"
}

# ---------------------------------------------------------------------------------------------
# network and faults

nft_in() {
  local node=$1
  shift
  in_ns "$node" nft "$@"
}

# Fault rules live in table inet mpf_fault of the receiving namespace, on the input hook, so a
# dropped packet is lost "on the wire": the sender sees silence, not a local EPERM.
ensure_fault_chain() {
  nft_in "$1" add table inet mpf_fault
  nft_in "$1" add chain inet mpf_fault input '{ type filter hook input priority -10; policy accept; }'
}

# add_fault NODE TAG RULE...: add RULE (tagged with comment TAG) unless a rule with TAG exists.
add_fault() {
  local node=$1 tag=$2 rules
  shift 2
  need_ns "$node"
  ensure_fault_chain "$node"
  rules=$(nft_in "$node" list chain inet mpf_fault input)
  [[ $rules == *"comment \"$tag\""* ]] && return 0
  nft_in "$node" add rule inet mpf_fault input "$@" counter drop comment "\"$tag\""
}

# remove_faults NODE TAG...: delete rules carrying any of the TAGs.
remove_faults() {
  local node=$1 tag handle line rules
  shift
  ns_exists "$node" || return 0
  rules=$(nft_in "$node" -a list chain inet mpf_fault input 2>/dev/null) || return 0
  for tag in "$@"; do
    while IFS= read -r line; do
      [[ $line == *"comment \"$tag\""* ]] || continue
      handle=${line##*# handle }
      nft_in "$node" delete rule inet mpf_fault input handle "$handle"
    done <<<"$rules"
  done
}

fault_rules() {
  local rules
  rules=$(nft_in "$1" list chain inet mpf_fault input 2>/dev/null) || return 0
  grep -E 'comment' <<<"$rules" | sed -E 's/^[[:space:]]+//' || true
}

cmd_cut() {
  local node
  for node in "${nodes[@]}"; do add_fault "$node" cut iifname "$(veth_of "$node")"; done
  say "cut: every packet between a and b is dropped (both directions, ICMP too)"
}
cmd_cut_oneway() {
  local from=$1 to
  to=$(peer_of "$from")
  add_fault "$to" "cut-oneway-$from" iifname "$(veth_of "$to")"
  say "cut-oneway $from: what $from sends is dropped on arrival at $to; $to -> $from still flows"
}
cmd_uncut() {
  local node
  for node in "${nodes[@]}"; do remove_faults "$node" cut cut-oneway-a cut-oneway-b; done
  say "uncut: cut rules removed"
}
cmd_block_2008() {
  local node veth
  for node in "${nodes[@]}"; do
    veth=$(veth_of "$node")
    add_fault "$node" block-2008-dport iifname "$veth" tcp dport 2008
    add_fault "$node" block-2008-sport iifname "$veth" tcp sport 2008
  done
  say "block-2008: TCP port 2008 dropped both directions; everything else (ICMP too) passes"
}
cmd_unblock_2008() {
  local node
  for node in "${nodes[@]}"; do remove_faults "$node" block-2008-dport block-2008-sport; done
  say "unblock-2008: port 2008 rules removed"
}

has_tbf() {
  local q
  q=$(in_ns "$1" tc qdisc show dev "$(veth_of "$1")" root 2>/dev/null) || return 1
  [[ $q == *tbf* ]]
}
cmd_thin() {
  local rate=${1:-128kbit} node
  for node in "${nodes[@]}"; do
    need_ns "$node"
    in_ns "$node" tc qdisc replace dev "$(veth_of "$node")" root tbf rate "$rate" burst 4kb \
      latency 400ms
  done
  say "thin: tbf rate $rate on both veth ends (both directions)"
}
cmd_unthin() {
  local node
  for node in "${nodes[@]}"; do
    ns_exists "$node" || continue
    if has_tbf "$node"; then in_ns "$node" tc qdisc del dev "$(veth_of "$node")" root; fi
  done
  say "unthin: qdiscs removed"
}

cmd_link() {
  local state=$1 which=${2:-} node
  local targets=("${nodes[@]}")
  if [[ -n $which ]]; then
    need_node "$which"
    targets=("$which")
  fi
  for node in "${targets[@]}"; do
    need_ns "$node"
    in_ns "$node" ip link set "$(veth_of "$node")" "$state"
  done
  say "link-$state: ${targets[*]}"
}

cmd_heal() {
  local node
  for node in "${nodes[@]}"; do
    ns_exists "$node" || continue
    if nft_in "$node" list table inet mpf_fault >/dev/null 2>&1; then
      nft_in "$node" delete table inet mpf_fault
    fi
    if has_tbf "$node"; then in_ns "$node" tc qdisc del dev "$(veth_of "$node")" root; fi
    in_ns "$node" ip link set "$(veth_of "$node")" up
  done
  say "heal: fault rules, qdiscs and link-down removed"
}

ping_once() { in_ns "$1" ping -c1 -W1 -q "$(addr_of "$2")" >/dev/null 2>&1; }

cmd_ping() {
  local from=${1:-} to=${2:-} rc=0 pair
  local pairs=("a b" "b a")
  if [[ -n $from ]]; then
    need_node "$from"
    to=${to:-$(peer_of "$from")}
    need_node "$to"
    pairs=("$from $to")
  fi
  for pair in "${pairs[@]}"; do
    set -- $pair
    need_ns "$1"
    if ping_once "$1" "$2"; then
      echo "$1 -> $2 ($(addr_of "$2")): reachable"
    else
      echo "$1 -> $2 ($(addr_of "$2")): unreachable"
      rc=1
    fi
  done
  return $rc
}

# ---------------------------------------------------------------------------------------------
# up / down / status

write_config() {
  local node=$1 peer extra_var
  peer=$(peer_of "$node")
  extra_var=MPF_PAIR_EXTRA_CONF_${node^^}
  {
    cat <<CONF
# Written by deploy/pair.sh up; removed by deploy/pair.sh down.
[node]
name = $node
database = $(conninfo_of "$node")

[peer]
name = $peer
address = $(addr_of "$peer")

[replication]
listen = $(addr_of "$node")
port = 2008

[heartbeat]
interval = $heartbeat

[control]
socket = $(node_dir "$node")/mpfailover.sock

[log]
level = $log_level
CONF
    local security_var=security_$node
    [[ -z ${!security_var} ]] || printf '\n%s\n' "${!security_var}"
    [[ -z ${MPF_PAIR_EXTRA_CONF:-} ]] || printf '\n%s\n' "$MPF_PAIR_EXTRA_CONF"
    [[ -z ${!extra_var:-} ]] || printf '\n%s\n' "${!extra_var}"
  } >"$(conf_of "$node")"
}

# The [security] section of each node, decided by choose_security.
security_a=""
security_b=""

# MPF_PAIR_SECURITY: "curve" (default) makes a CURVE key pair per node with `mpfailover keygen`
# and writes each node's [security] section naming its own keys and the peer's public key;
# "plain" writes "mode = plain" (unencrypted link); "none" writes no [security] section (for a
# [security] section of your own in MPF_PAIR_EXTRA_CONF*).
choose_security() {
  local mode=${MPF_PAIR_SECURITY:-curve} node
  case "$mode" in
    none) return 0 ;;
    plain)
      security_a=$'[security]\nmode = plain'
      security_b=$security_a
      say "security: plain (unencrypted link)"
      ;;
    curve)
      for node in "${nodes[@]}"; do
        "$cli_bin" keygen --secret-key-file "$(node_dir "$node")/$node.key" \
          --public-key-file "$(node_dir "$node")/$node.pub" >/dev/null </dev/null ||
          die "mpfailover keygen failed for node $node"
      done
      security_a=$(printf '[security]\nmode = curve\nsecret_key_file = %s\npublic_key_file = %s\npeer_public_key_file = %s' \
        "$(node_dir a)/a.key" "$(node_dir a)/a.pub" "$(node_dir b)/b.pub")
      security_b=$(printf '[security]\nmode = curve\nsecret_key_file = %s\npublic_key_file = %s\npeer_public_key_file = %s' \
        "$(node_dir b)/b.key" "$(node_dir b)/b.pub" "$(node_dir a)/a.pub")
      say "security: curve (keys made with mpfailover keygen in each node's directory)"
      ;;
    *) usage_error "MPF_PAIR_SECURITY must be curve, plain or none, got \"$mode\"" ;;
  esac
}

preflight() {
  [[ $dir == /* && $dir != / ]] || die "MPF_PAIR_DIR \"$dir\" must be an absolute path other than /"
  # Unix socket paths are limited to 107 bytes.
  ((${#dir} <= 60)) || die "MPF_PAIR_DIR \"$dir\" is too long for unix socket paths (max 60 chars)"
  local f
  for f in "$daemon_bin" "$cli_bin"; do
    [[ -x $f ]] || die "no executable \"$f\"" "build first: cmake -S $repo -B $build && make -C $build"
  done
  [[ -f $module_dir/mpfailover_capture.so ]] ||
    die "no capture module \"$module_dir/mpfailover_capture.so\"" "build target mpfailover_capture"
  [[ -x $pg_bin/pg_ctl ]] || die "no PostgreSQL 15 in \"$pg_bin\"" "run: deploy/install-deps.sh"
  for f in ip nft tc ping psql runuser setsid flock; do
    command -v "$f" >/dev/null || die "command \"$f\" not found" "run: deploy/install-deps.sh"
  done
  id postgres >/dev/null 2>&1 || die "no user \"postgres\"" "run: deploy/install-deps.sh"
}

make_network() {
  local node ns veth
  say "creating namespaces $(ns_of a), $(ns_of b) and the link $(veth_of a) <-> $(veth_of b)"
  for node in "${nodes[@]}"; do ip netns add "$(ns_of "$node")"; done
  # Created straight inside the namespaces: the veth never appears among the host's links.
  ip link add "$(veth_of a)" netns "$(ns_of a)" type veth peer name "$(veth_of b)" netns "$(ns_of b)"
  for node in "${nodes[@]}"; do
    ns=$(ns_of "$node")
    veth=$(veth_of "$node")
    in_ns "$node" sh -c "f=/proc/sys/net/ipv6/conf/$veth/disable_ipv6; [ ! -e \$f ] || echo 1 >\$f"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(addr_of "$node")/24" dev "$veth"
    ip -n "$ns" link set "$veth" up
    say "  $ns: lo up, $veth $(addr_of "$node")/24, no default route"
  done
  wait_for 10 "ping a -> b" ping_once a b || die "the link a <-> b does not pass traffic"
  wait_for 10 "ping b -> a" ping_once b a || die "the link b <-> a does not pass traffic"
  say "link up: a <-> b answer pings"
}

up_done=0
on_up_exit() {
  local rc=$?
  set +e
  ((up_done)) && return 0
  ((rc != 0)) || rc=1
  if [[ ${MPF_PAIR_KEEP_ON_FAILURE:-} == 1 ]]; then
    echo "pair.sh: up failed; MPF_PAIR_KEEP_ON_FAILURE=1 leaves everything in place (pair.sh down removes it)" >&2
  else
    echo "pair.sh: up failed; removing what it made" >&2
    teardown >&2
  fi
  exit "$rc"
}

cmd_up() {
  local node
  preflight
  if [[ -e $dir && ! -f $dir/$marker && -n $(ls -A "$dir" 2>/dev/null) ]]; then
    die "state dir \"$dir\" exists and was not made by pair.sh" \
      "set MPF_PAIR_DIR to another path, or remove that directory"
  fi
  if ns_exists a || ns_exists b || [[ -e $dir ]] || ip link show dev "$(veth_of a)" >/dev/null 2>&1 ||
    ip link show dev "$(veth_of b)" >/dev/null 2>&1; then
    say "tearing down a stale pair first"
    teardown
  fi
  trap on_up_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  say "state dir $dir"
  mkdir -p "$dir"
  touch "$dir/$marker"
  chmod 755 "$dir"
  for node in "${nodes[@]}"; do
    mkdir -p "$(node_dir "$node")"
    chmod 755 "$(node_dir "$node")"
  done

  make_network

  for node in "${nodes[@]}"; do
    start_pg "$node" init
    say "creating database meetingplace on $node"
    in_ns "$node" "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 \
      "host=$(pg_dir "$node") port=$pg_port user=postgres dbname=postgres" \
      -c "CREATE DATABASE meetingplace" </dev/null
  done

  choose_security
  for node in "${nodes[@]}"; do
    write_config "$node"
    say "config $(conf_of "$node") (heartbeat $heartbeat)"
    say "mpfailover --config $(conf_of "$node") init-db --app-schema"
    in_ns "$node" "$cli_bin" --config "$(conf_of "$node")" init-db --app-schema </dev/null |
      sed 's/^/  /'
  done

  for node in "${nodes[@]}"; do start_daemon "$node"; done

  up_done=1
  trap - EXIT INT TERM
  say "pair is up: a=198.18.0.11 ($(ns_of a))  b=198.18.0.12 ($(ns_of b)); state in $dir"
  say "try: deploy/pair.sh status | psql a | cut | heal | down"
}

# Removes everything a pair may have left, in whatever state: safe half-built and safe twice.
teardown() {
  local node pid ns pids i left=0
  for node in "${nodes[@]}"; do
    # Subshells: a die() inside must not end the teardown.
    if daemon_pid "$node" >/dev/null; then (stop_daemon "$node" TERM) || true; fi
  done
  for node in "${nodes[@]}"; do
    if postmaster_pid "$node" >/dev/null; then (stop_pg "$node" fast) || true; fi
  done
  # Anything still inside a namespace was started there by the pair or through `pair.sh exec`.
  for node in "${nodes[@]}"; do
    ns_exists "$node" || continue
    ns=$(ns_of "$node")
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [[ -z ${pids// /} ]] && continue
    say "ending processes left in $ns: $pids"
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
      [[ -z ${pids// /} ]] && break
      sleep 0.1
    done
    if [[ -n ${pids// /} ]]; then
      kill -KILL $pids 2>/dev/null || true
      wait_for 5 "processes in $ns to end" eval "[[ -z \$(ip netns pids $ns 2>/dev/null) ]]" ||
        left=1
    fi
  done
  for node in "${nodes[@]}"; do
    if ns_exists "$node"; then
      say "deleting namespace $(ns_of "$node")"
      ip netns del "$(ns_of "$node")" || left=1
    fi
    # Only a half-built pair could leave a veth end among the host's links.
    if ip link show dev "$(veth_of "$node")" >/dev/null 2>&1; then
      say "deleting link $(veth_of "$node")"
      ip link del "$(veth_of "$node")" 2>/dev/null || true
    fi
  done
  if [[ -e $dir ]]; then
    if [[ -f $dir/$marker ]]; then
      say "removing state dir $dir"
      rm -rf -- "$dir"
    elif rmdir -- "$dir" 2>/dev/null; then
      :
    else
      warn "state dir \"$dir\" was not made by pair.sh (no $marker); left in place"
      left=1
    fi
  fi
  return $left
}

cmd_down() {
  if teardown; then
    say "pair is down"
  else
    die "pair is down, but something could not be removed (see warnings above)"
  fi
}

cmd_status() {
  local node ns pid line rc=0 q
  say "state dir $dir$([[ -f $dir/$marker ]] || echo ' (absent)')"
  for node in "${nodes[@]}"; do
    ns=$(ns_of "$node")
    if ! ns_exists "$node"; then
      echo "node $node: namespace $ns absent"
      rc=1
      continue
    fi
    line=$(ip -n "$ns" -br addr show dev "$(veth_of "$node")" 2>/dev/null || echo "$(veth_of "$node") absent")
    echo "node $node: namespace $ns  $(echo $line)"
    if pid=$(daemon_pid "$node"); then
      echo "  mpfailoverd  running, pid $pid in $(ip netns identify "$pid" 2>/dev/null || echo '?')," \
        "started $(started_count "$node")x, log $(log_file "$node")"
    else
      echo "  mpfailoverd  not running"
      rc=1
    fi
    if pid=$(postmaster_pid "$node"); then
      echo "  postgresql   running, pid $pid in $(ip netns identify "$pid" 2>/dev/null || echo '?')," \
        "$(pg_ready "$node" && echo accepting connections || echo 'not ready'), socket $(pg_dir "$node")"
    else
      echo "  postgresql   not running"
      rc=1
    fi
    q=$(in_ns "$node" tc qdisc show dev "$(veth_of "$node")" root 2>/dev/null || true)
    [[ $q == *tbf* ]] && echo "  qdisc        $q"
    while IFS= read -r line; do
      [[ -n $line ]] && echo "  nft          $line"
    done <<<"$(fault_rules "$node")"
  done
  return $rc
}

usage() {
  sed -n '2,/^set -euo/p' "$self" | sed '$d' | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------------------------
# main

cmd=${1:-help}
[[ $# -gt 0 ]] && shift

case "$cmd" in
  help | -h | --help)
    usage
    exit 0
    ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, nft, tc)"

# Commands that change the pair queue on an flock of this script (fd 9). Whatever they start
# that outlives them (postmaster, daemon) is started with fd 9 closed, so it never holds the lock.
case "$cmd" in
  up | down | start-daemon | stop-daemon | kill-daemon | restart-daemon | start-pg | stop-pg | \
    restart-pg | cut | cut-oneway | uncut | block-2008 | unblock-2008 | thin | unthin | link-down | \
    link-up | heal)
    exec 9<"$self"
    flock -w 120 9 || die "another pair.sh command held the lock for 120s"
    ;;
esac

case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  start-daemon)
    need_node "${1:-}"
    start_daemon "$1"
    ;;
  stop-daemon)
    need_node "${1:-}"
    stop_daemon "$1" TERM
    ;;
  kill-daemon)
    need_node "${1:-}"
    stop_daemon "$1" KILL
    ;;
  restart-daemon)
    need_node "${1:-}"
    stop_daemon "$1" TERM
    start_daemon "$1"
    ;;
  start-pg)
    need_node "${1:-}"
    start_pg "$1"
    ;;
  stop-pg)
    need_node "${1:-}"
    stop_pg "$1" immediate
    ;;
  restart-pg)
    need_node "${1:-}"
    stop_pg "$1" immediate
    start_pg "$1"
    ;;
  cut) cmd_cut ;;
  cut-oneway)
    need_node "${1:-}"
    cmd_cut_oneway "$1"
    ;;
  uncut) cmd_uncut ;;
  block-2008) cmd_block_2008 ;;
  unblock-2008) cmd_unblock_2008 ;;
  thin) cmd_thin "${1:-}" ;;
  unthin) cmd_unthin ;;
  link-down) cmd_link down "${1:-}" ;;
  link-up) cmd_link up "${1:-}" ;;
  heal) cmd_heal ;;
  ping) cmd_ping "$@" ;;
  psql)
    need_node "${1:-}"
    node=$1
    shift
    need_ns "$node"
    # Through PG* variables rather than a conninfo argument, so the caller's own -d/-U/-c win.
    exec env PGHOST="$(pg_dir "$node")" PGPORT="$pg_port" PGUSER=postgres PGDATABASE=meetingplace \
      ip netns exec "$(ns_of "$node")" psql "$@"
    ;;
  exec)
    need_node "${1:-}"
    node=$1
    shift
    need_ns "$node"
    [[ $# -gt 0 ]] || usage_error "exec: expected a command after the node"
    exec ip netns exec "$(ns_of "$node")" "$@"
    ;;
  cli)
    need_node "${1:-}"
    node=$1
    shift
    need_ns "$node"
    exec ip netns exec "$(ns_of "$node")" "$cli_bin" --config "$(conf_of "$node")" "$@"
    ;;
  conninfo)
    need_node "${1:-}"
    conninfo_of "$1"
    ;;
  log)
    need_node "${1:-}"
    tail -n "${2:-20}" "$(log_file "$1")"
    ;;
  *) usage_error "unknown command \"$cmd\"" ;;
esac

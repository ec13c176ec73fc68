#!/usr/bin/env bash
# A complete mpfailover pair on this machine, for integration tests, benchmarks and the demo:
# two network-namespace hosts and a witness host on a small switch, each node with its own
# PostgreSQL 15 cluster and mpfailoverd, configured through real config files. Run as root.
#
#   node a: namespace mpf-a, veth-mpf-a, 198.18.0.11/24    node b: mpf-b, veth-mpf-b, 198.18.0.12/24
#   witness: mpf-w, veth-mpf-w, 198.18.0.1/24 (a host both nodes ping: heartbeat.witness)
#   switch:  mpf-sw, bridge br0 with ports port-a, port-b, port-w (the other veth ends)
#   shared address 198.18.0.10/24 (shared.address), on the active node's veth, moved by the
#   hooks in deploy/hooks (on_promote: ip addr add + gratuitous ARP; on_demote: ip addr del)
#
# Nothing routes outside the pair: each namespace has only lo and its veth end, the /24's
# connected route and no default route, no NAT. IPv6 is off on the veth ends so the only
# addresses on the link are in 198.18.0.0/24. Each veth end has a fixed MAC (02:00:c6:12:00:XX,
# XX the address's last byte in hex), which the fault rules match on.
#
# Each node's config: node.initial_role (a active, b standby: a fresh pair has an active node),
# node.app_role = meetingplace (a login `up` creates in each cluster, with rights on the
# application tables; read-only on the standby), [shared] and [hooks] as above.
#
# Sub-commands (pair.sh help lists them):
#   up | down | status                    stand up (tears down a stale pair first), remove, show
#   start-daemon|stop-daemon|kill-daemon|restart-daemon a|b
#   start-pg|stop-pg|restart-pg a|b       stop-pg is an immediate stop, like a crash
#   cut | cut-oneway a|b | uncut          a and b cannot reach each other at all (nft drops every
#                                         frame from the other node; both still reach the
#                                         witness) / only what a|b sends to the other is dropped;
#                                         uncut undoes every cut (the witness's too)
#   cut-witness [a|b] | uncut-witness     a|b (default both) and the witness cannot reach each
#                                         other; a <-> b unaffected
#   block-2008 | unblock-2008             drop only TCP port 2008, both directions
#   thin [RATE] | unthin                  tbf on both nodes' veth ends (default 128kbit)
#   link-down [a|b] | link-up [a|b]       ip link set down/up on the node's veth end(s): that
#                                         node is cut off from everyone, the witness included
#   heal                                  remove every fault: nft rules, qdiscs, links down
#   ping [a|b|w [a|b|w]]                  one ping (default a -> b and b -> a; exit 1 if one fails)
#   psql a|b [ARGS]                       psql on that node's database (as postgres), e.g.
#                                         psql a -Atc "select 1"; -U meetingplace for the app
#   exec a|b|w CMD...                     run CMD inside the node's (or the witness's) namespace
#   cli a|b ARGS...                       mpfailover --config DIR/X.conf ARGS... in the namespace
#   conninfo a|b | log a|b [N]            the node's libpq conninfo / last N lines of its daemon log
#
# Environment:
#   MPF_PAIR_NS           namespace prefix (default mpf: mpf-a, mpf-b, mpf-w, mpf-sw), for a
#                         second pair at once (at most 6 characters)
#   MPF_PAIR_DIR          state dir (default /tmp/mpf-pair): X.conf, X/pg (cluster, socket),
#                         X/mpfailoverd.{pid,log}, X/mpfailover.sock
#   MPF_BUILD_DIR         build tree (default <repo>/build): server/mpfailoverd, server/mpfailover
#   MPF_PG_MODULE_DIR     where mpfailover_capture.so is (default $MPF_BUILD_DIR/replicator/pgmodule)
#   MPF_PG_BINDIR         PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   MPF_PAIR_HEARTBEAT    heartbeat.interval in both configs (default 1s)
#   MPF_PAIR_WITNESS      heartbeat.witness in both configs: empty (default: no witness, so the
#                         witness host exists but nobody pings it), "on" (198.18.0.1), or the
#                         address list to write
#   MPF_PAIR_INITIAL_ROLE_A, MPF_PAIR_INITIAL_ROLE_B   node.initial_role (default active, standby)
#   MPF_PAIR_APP_ROLE     node.app_role, the application login up creates (default meetingplace;
#                         "none": no login, no app_role, writes unfenced)
#   MPF_PAIR_SHARED_ADDRESS  shared.address (default 198.18.0.10/24; "none": no [shared]
#                         section, so no hooks run); shared.hostname meetingplace.pair.test
#   MPF_PAIR_HOOKS        directory with on_promote and on_demote for [hooks] (default
#                         <repo>/deploy/hooks; "none": no [hooks] section, the daemon's defaults)
#   MPF_PAIR_LOG_LEVEL    log.level in both configs (default info)
#   MPF_PAIR_EXTRA_CONF   text appended verbatim to both config files (start it with a [section];
#                         a section may repeat, a key may not: keys written above cannot be set)
#   MPF_PAIR_EXTRA_CONF_A, MPF_PAIR_EXTRA_CONF_B   appended after that, to one node's file only
#   MPF_PAIR_SECURITY     curve (default): CURVE keys per node made with mpfailover keygen;
#                         plain: unencrypted link; none: no [security] section (bring your own)
#   MPF_PAIR_KEEP_ON_FAILURE=1   a failed `up` leaves what it made, for a post-mortem
#
# One pair per MPF_PAIR_NS (the namespace names are fixed by it). Commands that change the pair
# take an flock on this script, so concurrent callers queue (up to 120 s) instead of racing.
# Every wait is bounded.
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
hosts=(a b w)          # every namespace with an address: the nodes and the witness
witness_addr=198.18.0.1
app_role=${MPF_PAIR_APP_ROLE:-meetingplace}
[[ $app_role != none ]] || app_role=""
shared_address=${MPF_PAIR_SHARED_ADDRESS:-198.18.0.10/24}
[[ $shared_address != none ]] || shared_address=""
shared_hostname=meetingplace.pair.test
hooks_dir=${MPF_PAIR_HOOKS:-$repo/deploy/hooks}
[[ $hooks_dir != none ]] || hooks_dir=""
case "${MPF_PAIR_WITNESS:-}" in
  "" | off | none) witness="" ;;
  on | 1) witness=$witness_addr ;;
  *) witness=$MPF_PAIR_WITNESS ;;
esac

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

# MPF_PAIR_NS names the namespaces (<ns>-a, <ns>-b, the witness <ns>-w, the switch <ns>-sw) and
# veths, so that two pairs (a test and a benchmark, say) can exist at once with their own
# MPF_PAIR_DIR. At most 6 characters (interface names are at most 15).
ns_prefix=${MPF_PAIR_NS:-mpf}
[[ $ns_prefix =~ ^[a-z0-9]{1,6}$ ]] || usage_error "MPF_PAIR_NS \"$ns_prefix\" must be 1-6 of a-z 0-9"
ns_of() { echo "$ns_prefix-$1"; }   # a, b, w, sw
veth_of() { echo "veth-$ns_prefix-$1"; }
port_of() { echo "port-$1"; }        # the switch's end of host $1's veth, in <ns>-sw
addr_of() {
  case $1 in
    a) echo 198.18.0.11 ;;
    b) echo 198.18.0.12 ;;
    w) echo "$witness_addr" ;;
  esac
}
# Fixed MACs, so fault rules can name the sender: 02:00:c6:12:00:<last address byte in hex>.
mac_of() { printf '02:00:c6:12:00:%02x\n' "${1##*.}"; }
mac_of_host() { mac_of "$(addr_of "$1")"; }
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
need_host() {
  [[ ${1:-} == a || ${1:-} == b || ${1:-} == w ]] ||
    usage_error "expected \"a\", \"b\" or \"w\" (the witness), got \"${1:-}\""
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
  local host=$1
  shift
  in_ns "$host" nft "$@"
}

# Fault rules live in table inet mpf_fault of the receiving namespace, on the input hook, so a
# dropped packet is lost "on the wire": the sender sees silence, not a local EPERM. They match
# the sender's MAC (every host has a fixed one), so "from b" means from b whatever address b
# sends from (the shared address included).
ensure_fault_chain() {
  nft_in "$1" add table inet mpf_fault
  nft_in "$1" add chain inet mpf_fault input '{ type filter hook input priority -10; policy accept; }'
}

# add_fault HOST TAG RULE...: add RULE (tagged with comment TAG) unless a rule with TAG exists.
add_fault() {
  local host=$1 tag=$2 rules
  shift 2
  need_ns "$host"
  ensure_fault_chain "$host"
  rules=$(nft_in "$host" list chain inet mpf_fault input)
  [[ $rules == *"comment \"$tag\""* ]] && return 0
  nft_in "$host" add rule inet mpf_fault input "$@" counter drop comment "\"$tag\""
}

# drop_from HOST FROM TAG: HOST drops every frame FROM sends it.
drop_from() {
  add_fault "$1" "$3" iifname "$(veth_of "$1")" ether saddr "$(mac_of_host "$2")"
}

# remove_faults HOST TAG...: delete rules carrying any of the TAGs.
remove_faults() {
  local host=$1 tag handle line rules
  shift
  ns_exists "$host" || return 0
  rules=$(nft_in "$host" -a list chain inet mpf_fault input 2>/dev/null) || return 0
  for tag in "$@"; do
    while IFS= read -r line; do
      [[ $line == *"comment \"$tag\""* ]] || continue
      handle=${line##*# handle }
      nft_in "$host" delete rule inet mpf_fault input handle "$handle"
    done <<<"$rules"
  done
}

fault_rules() {
  local rules
  rules=$(nft_in "$1" list chain inet mpf_fault input 2>/dev/null) || return 0
  grep -E 'comment' <<<"$rules" | sed -E 's/^[[:space:]]+//' || true
}

cmd_cut() {
  drop_from a b cut
  drop_from b a cut
  say "cut: every packet between a and b is dropped (both directions, ICMP too); both still reach the witness"
}
cmd_cut_oneway() {
  local from=$1 to
  to=$(peer_of "$from")
  drop_from "$to" "$from" "cut-oneway-$from"
  say "cut-oneway $from: what $from sends is dropped on arrival at $to; $to -> $from still flows"
}
cmd_cut_witness() {
  local which=${1:-} node
  local targets=("${nodes[@]}")
  if [[ -n $which ]]; then
    need_node "$which"
    targets=("$which")
  fi
  for node in "${targets[@]}"; do
    drop_from "$node" w "cut-witness-$node"
    drop_from w "$node" "cut-witness-$node"
  done
  say "cut-witness: ${targets[*]} and the witness ($witness_addr) cannot reach each other"
}
cmd_uncut_witness() {
  local host
  for host in "${hosts[@]}"; do remove_faults "$host" cut-witness-a cut-witness-b; done
  say "uncut-witness: witness cut rules removed"
}
cmd_uncut() {
  local host
  for host in "${hosts[@]}"; do
    remove_faults "$host" cut cut-oneway-a cut-oneway-b cut-witness-a cut-witness-b
  done
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
  say "thin: tbf rate $rate on both nodes' veth ends (both directions)"
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
  local host
  for host in "${hosts[@]}"; do
    ns_exists "$host" || continue
    if nft_in "$host" list table inet mpf_fault >/dev/null 2>&1; then
      nft_in "$host" delete table inet mpf_fault
    fi
    if has_tbf "$host"; then in_ns "$host" tc qdisc del dev "$(veth_of "$host")" root; fi
    in_ns "$host" ip link set "$(veth_of "$host")" up
  done
  say "heal: fault rules, qdiscs and link-down removed"
}

ping_once() { in_ns "$1" ping -c1 -W1 -q "$(addr_of "$2")" >/dev/null 2>&1; }

cmd_ping() {
  local from=${1:-} to=${2:-} rc=0 pair
  local pairs=("a b" "b a")
  if [[ -n $from ]]; then
    need_host "$from"
    if [[ -z $to ]]; then
      [[ $from != w ]] || usage_error "ping w: name the node to ping (a or b)"
      to=$(peer_of "$from")
    fi
    need_host "$to"
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

initial_role_of() {
  local var=MPF_PAIR_INITIAL_ROLE_${1^^} default=standby
  [[ $1 == a ]] && default=active
  echo "${!var:-$default}"
}

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
initial_role = $(initial_role_of "$node")
CONF
    [[ -z $app_role ]] || echo "app_role = $app_role"
    cat <<CONF

[peer]
name = $peer
address = $(addr_of "$peer")

[replication]
listen = $(addr_of "$node")
port = 2008

[heartbeat]
interval = $heartbeat
CONF
    [[ -z $witness ]] || echo "witness = $witness"
    [[ -z $shared_address ]] || cat <<CONF

[shared]
address = $shared_address
interface = $(veth_of "$node")
hostname = $shared_hostname
CONF
    [[ -z $hooks_dir ]] || cat <<CONF

[hooks]
on_promote = $hooks_dir/on_promote
on_demote = $hooks_dir/on_demote
CONF
    cat <<CONF

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

# One veth per host (a, b, the witness w), its other end a port of the bridge br0 in <ns>-sw.
make_network() {
  local host ns veth sw
  sw=$(ns_of sw)
  say "creating namespaces $(ns_of a), $(ns_of b), $(ns_of w) and the switch $sw (bridge br0)"
  for host in "${hosts[@]}" sw; do ip netns add "$(ns_of "$host")"; done
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  # No IPv6 on the switch either: it must not send anything of its own on the wire.
  in_ns sw sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
  ip -n "$sw" link set br0 up
  for host in "${hosts[@]}"; do
    ns=$(ns_of "$host")
    veth=$(veth_of "$host")
    # Created straight inside the namespaces: the veth never appears among the host's links.
    ip link add "$veth" netns "$ns" address "$(mac_of_host "$host")" type veth \
      peer name "$(port_of "$host")" netns "$sw"
    ip -n "$sw" link set "$(port_of "$host")" master br0
    ip -n "$sw" link set "$(port_of "$host")" up
    in_ns "$host" sh -c "f=/proc/sys/net/ipv6/conf/$veth/disable_ipv6; [ ! -e \$f ] || echo 1 >\$f"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(addr_of "$host")/24" dev "$veth"
    ip -n "$ns" link set "$veth" up
    say "  $ns: lo up, $veth $(addr_of "$host")/24 ($(mac_of_host "$host")), no default route"
  done
  wait_for 10 "ping a -> b" ping_once a b || die "the link a <-> b does not pass traffic"
  wait_for 10 "ping b -> a" ping_once b a || die "the link b <-> a does not pass traffic"
  wait_for 10 "ping a -> witness" ping_once a w || die "the witness does not answer a"
  wait_for 10 "ping b -> witness" ping_once b w || die "the witness does not answer b"
  say "switch up: a <-> b answer pings, and both reach the witness $witness_addr"
}

# The application's login (node.app_role): not a superuser, with the rights the application
# needs on its tables. A delete by it records a tombstone through the capture trigger, which
# needs INSERT/UPDATE on mpfailover.tombstone.
make_app_role() {
  local node=$1
  [[ -n $app_role ]] || return 0
  say "creating login $app_role on $node (node.app_role)"
  in_ns "$node" "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 "$(conninfo_of "$node")" </dev/null <<SQL
CREATE ROLE "$app_role" LOGIN NOSUPERUSER;
GRANT CONNECT ON DATABASE meetingplace TO "$app_role";
GRANT USAGE ON SCHEMA public TO "$app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "$app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "$app_role";
GRANT USAGE ON SCHEMA mpfailover TO "$app_role";
GRANT SELECT, INSERT, UPDATE ON mpfailover.tombstone TO "$app_role";
SQL
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
  if ns_exists a || ns_exists b || ns_exists w || ns_exists sw || [[ -e $dir ]] ||
    ip link show dev "$(veth_of a)" >/dev/null 2>&1 ||
    ip link show dev "$(veth_of b)" >/dev/null 2>&1 ||
    ip link show dev "$(veth_of w)" >/dev/null 2>&1; then
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
    make_app_role "$node"
  done

  for node in "${nodes[@]}"; do start_daemon "$node"; done

  up_done=1
  trap - EXIT INT TERM
  say "pair is up: a=198.18.0.11 ($(ns_of a))  b=198.18.0.12 ($(ns_of b))  witness=$witness_addr ($(ns_of w)); state in $dir"
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
  for node in "${hosts[@]}" sw; do
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
  for node in "${hosts[@]}" sw; do
    if ns_exists "$node"; then
      say "deleting namespace $(ns_of "$node")"
      ip netns del "$(ns_of "$node")" || left=1
    fi
    [[ $node != sw ]] || continue
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
  if ns_exists w; then
    line=$(ip -n "$(ns_of w)" -br addr show dev "$(veth_of w)" 2>/dev/null || echo "$(veth_of w) absent")
    echo "witness: namespace $(ns_of w)  $(echo $line)$([[ -n $witness ]] && echo " (heartbeat.witness = $witness)")"
    while IFS= read -r line; do
      [[ -n $line ]] && echo "  nft          $line"
    done <<<"$(fault_rules w)"
  else
    echo "witness: namespace $(ns_of w) absent"
    rc=1
  fi
  if ns_exists sw; then
    echo "switch: namespace $(ns_of sw), bridge br0 ports:" \
      "$(ip -n "$(ns_of sw)" -br link show master br0 2>/dev/null | awk '{printf "%s(%s) ", $1, $2}')"
  else
    echo "switch: namespace $(ns_of sw) absent"
    rc=1
  fi
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
    restart-pg | cut | cut-oneway | uncut | cut-witness | uncut-witness | block-2008 | unblock-2008 | \
    thin | unthin | link-down | link-up | heal)
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
  cut-witness) cmd_cut_witness "${1:-}" ;;
  uncut-witness) cmd_uncut_witness ;;
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
    need_host "${1:-}"
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

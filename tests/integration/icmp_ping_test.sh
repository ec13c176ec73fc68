#!/usr/bin/env bash
# IcmpPinger against a real kernel: two network namespaces of its own, mpfi-a (198.18.0.31)
# and mpfi-b (198.18.0.32), joined by a veth pair. No other address is configured: IPv6 is off
# in both (not even link-local addresses); lo is up with its own 127.0.0.1, as in
# deploy/pair.sh. Pings from mpfi-a with tests/integration/icmp_ping_tool and checks: replies
# over the raw and the datagram socket, open() failing with a usable hint when neither is
# permitted, the fallback to datagram without CAP_NET_RAW, another process's replies from the
# same peer not taken for ours, timeouts within their bound when nft drops echo requests, the
# link is down or no host has the address, and a rejecting peer as an error.
# Needs root, nft, setpriv, ping. Takes ~10 s.
# Prints "N passed, M failed"; exit 0 only when nothing failed. The EXIT trap always deletes
# both namespaces (and with them the veth pair and the nft table).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=${MPF_ICMP_PING_TOOL:-$here/../../build/tests/mpf_icmp_ping_tool}
NS_A=mpfi-a
NS_B=mpfi-b
ADDR_A=198.18.0.31
ADDR_B=198.18.0.32
ADDR_NONE=198.18.0.33 # on the link's /24, no host
work=$(mktemp -d /tmp/mpf-icmp-test.XXXXXX)
log=$work/test.log
passed=0
failed=0
bg_pids=()

remove_namespaces() {
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
  true
}
cleanup() {
  local pid
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
  remove_namespaces
  if ((failed > 0)); then
    echo "--- log ($log) ---"
    cat "$log"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
  passed=$((passed + 1))
  echo "ok   - $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL - $1${2:+: $2}"
}
# until_ok SECONDS CMD...: poll CMD every 0.1 s, at most SECONDS.
until_ok() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" >>"$log" 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# ping_from PREFIX... -- TOOL ARGS: runs the tool in mpfi-a (PREFIX e.g. setpriv ...);
# sets rc, out (stdout) and err (stderr).
rc=0
out=
err=
ping_a() {
  echo "+ [$NS_A] ${*}" >>"$log"
  ip netns exec "$NS_A" "$@" >"$work/out" 2>"$work/err"
  rc=$?
  out=$(cat "$work/out")
  err=$(cat "$work/err")
  echo "  rc=$rc out=$out err=$err" >>"$log"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $out" | head -1; }

# expect NAME RC [SOCKET] [MAX_ELAPSED_MS]: checks the last ping_a.
expect() {
  local name=$1 want_rc=$2 want_socket=${3:-} max_ms=${4:-}
  if [[ $rc != "$want_rc" ]]; then
    fail "$name" "exit $rc, expected $want_rc; out: $out; err: $err"
  elif [[ -n $want_socket && $(field socket) != "$want_socket" ]]; then
    fail "$name" "socket $(field socket), expected $want_socket; out: $out"
  elif [[ -n $max_ms && $(field elapsed_ms) -gt $max_ms ]]; then
    fail "$name" "took $(field elapsed_ms) ms, bound $max_ms ms; out: $out"
  else
    pass "$name"
  fi
}

if [[ $(id -u) != 0 ]]; then
  echo "icmp_ping_test.sh: needs root (network namespaces, nft)" >&2
  exit 2
fi
if [[ ! -x $tool ]]; then
  echo "icmp_ping_test.sh: test tool \"$tool\" not found; build it or set MPF_ICMP_PING_TOOL" >&2
  exit 2
fi

# --- setup: two namespaces, one veth pair, two addresses -------------------------------------
remove_namespaces # left over from a run killed with -9
setup() {
  ip netns add "$NS_A" && ip netns add "$NS_B" || return 1
  local ns
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1 || return 1
    # lo carries the kernel's ICMP errors to its own sockets (host unreachable after ARP fails).
    ip -n "$ns" link set lo up || return 1
  done
  ip link add mpfi-va netns "$NS_A" type veth peer name mpfi-vb netns "$NS_B" || return 1
  ip -n "$NS_A" addr add "$ADDR_A/24" dev mpfi-va || return 1
  ip -n "$NS_B" addr add "$ADDR_B/24" dev mpfi-vb || return 1
  ip -n "$NS_A" link set mpfi-va up && ip -n "$NS_B" link set mpfi-vb up
}
if ! setup >>"$log" 2>&1; then
  fail "setup: namespaces $NS_A and $NS_B with a veth pair"
  exit 1
fi
link_up() { ip netns exec "$NS_A" ping -c1 -W1 -q "$ADDR_B"; }
if until_ok 10 link_up; then pass "setup: $NS_A reaches $ADDR_B"; else
  fail "setup: $NS_A reaches $ADDR_B" "system ping got no reply within 10 s"
  exit 1
fi

# --- replies ---------------------------------------------------------------------------------
ping_a "$tool" --socket raw --timeout-ms 1000 "$ADDR_B"
expect "raw socket: the peer answers" 0 raw 1000
[[ $(field rtt_us) -gt 0 ]] && pass "raw socket: a reply has an rtt" || fail "raw socket: a reply has an rtt" "$out"

ping_a "$tool" --timeout-ms 1000 "$ADDR_B"
expect "as root, auto picks the raw socket" 0 raw

ping_a "$tool" --socket raw --timeout-ms 1000 --repeat 5 "$ADDR_B"
expect "one pinger answers 5 pings in a row (sequence numbers move on)" 0 raw
[[ $(grep -c 'outcome=reply' <<<"$out") == 5 ]] && pass "... each of the 5 got a reply" ||
  fail "... each of the 5 got a reply" "$out"

ping_a "$tool" --socket raw --timeout-ms 1000 --overlap "$ADDR_B"
expect "a second ping while one is in flight is refused, the first still answered" 0 raw
grep -q 'overlap outcome=error.*in flight' <<<"$out" && pass "... the refusal says why" ||
  fail "... the refusal says why" "$out"

ping_a "$tool" --socket datagram --timeout-ms 1000 "$ADDR_B"
expect "datagram socket outside ping_group_range: open fails" 3
grep -q 'ping_group_range' <<<"$err" && pass "... its hint names net.ipv4.ping_group_range" ||
  fail "... its hint names net.ipv4.ping_group_range" "$err"

ip netns exec "$NS_A" sysctl -qw net.ipv4.ping_group_range="0 0" >>"$log" 2>&1
ping_a "$tool" --socket datagram --timeout-ms 1000 "$ADDR_B"
expect "datagram socket (group 0 in ping_group_range): the peer answers" 0 datagram 1000
ping_a "$tool" --socket datagram --timeout-ms 1000 --repeat 3 "$ADDR_B"
expect "datagram socket: 3 pings in a row" 0 datagram
[[ $(grep -c 'outcome=reply' <<<"$out") == 3 ]] && pass "... each of the 3 got a reply" ||
  fail "... each of the 3 got a reply" "$out"

NO_RAW=(setpriv --inh-caps=-net_raw --bounding-set=-net_raw)
ping_a "${NO_RAW[@]}" "$tool" --timeout-ms 1000 "$ADDR_B"
expect "without CAP_NET_RAW, auto falls back to the datagram socket" 0 datagram

ip netns exec "$NS_A" sysctl -qw net.ipv4.ping_group_range="1 0" >>"$log" 2>&1
ping_a "${NO_RAW[@]}" "$tool" --timeout-ms 1000 "$ADDR_B"
expect "without CAP_NET_RAW nor ping_group_range: open fails" 3
if grep -q 'CAP_NET_RAW' <<<"$err" && grep -q 'ping_group_range' <<<"$err"; then
  pass "... and says to grant CAP_NET_RAW or widen ping_group_range"
else
  fail "... and says to grant CAP_NET_RAW or widen ping_group_range" "$err"
fi
ip netns exec "$NS_A" sysctl -qw net.ipv4.ping_group_range="0 0" >>"$log" 2>&1

ping_a "$tool" "198.18.0.300"
expect "a malformed address is refused by open" 3
grep -q 'invalid ping address "198.18.0.300"' <<<"$err" && pass "... naming it" ||
  fail "... naming it" "$err"

# --- the peer drops echo requests ------------------------------------------------------------
nft_b() { ip netns exec "$NS_B" nft "$@" >>"$log" 2>&1; }
if nft_b add table inet mpfi_test &&
  nft_b add chain inet mpfi_test input '{ type filter hook input priority 0; }' &&
  nft_b add rule inet mpfi_test input icmp type echo-request drop; then
  ping_a "$tool" --socket raw --timeout-ms 500 "$ADDR_B"
  expect "raw: nft drops echo requests at the peer: timeout within 500 ms (+200)" 1 raw 700
  (($(field elapsed_ms) >= 450)) && pass "... not before the timeout" ||
    fail "... not before the timeout" "$out"
  ping_a "$tool" --socket datagram --timeout-ms 500 "$ADDR_B"
  expect "datagram: nft drops echo requests at the peer: timeout" 1 datagram 700
  ping_a "$tool" --socket raw --timeout-ms 900 --count 3 "$ADDR_B"
  expect "3 requests 300 ms apart, all dropped: one timeout within 900 ms (+200)" 1 raw 1100
  grep -q '(3 requests sent)' <<<"$out" && pass "... after sending all 3" ||
    fail "... after sending all 3" "$out"
  nft_b delete table inet mpfi_test
else
  fail "nft: a drop rule in $NS_B" "see $log"
fi

# The peer rejects echo requests: admin-prohibited is a hard ICMP error and ends the ping at
# once; host-unreachable is a soft one and is left to the timeout (NOTES in icmp_pinger.cpp).
for socket in raw datagram; do
  if nft_b add table inet mpfi_test &&
    nft_b add chain inet mpfi_test input '{ type filter hook input priority 0; }' &&
    nft_b add rule inet mpfi_test input icmp type echo-request reject with icmp type admin-prohibited; then
    ping_a "$tool" --socket $socket --timeout-ms 2000 "$ADDR_B"
    expect "$socket: the peer rejects with admin-prohibited: error at once" 2 $socket 500
    grep -q 'ICMP error' <<<"$out" && pass "... saying an ICMP error came back" ||
      fail "... saying an ICMP error came back" "$out"
    nft_b flush chain inet mpfi_test input
    nft_b add rule inet mpfi_test input icmp type echo-request reject with icmp type host-unreachable
    ping_a "$tool" --socket $socket --timeout-ms 500 "$ADDR_B"
    expect "$socket: the peer rejects with host-unreachable: timeout within 500 ms (+200)" 1 $socket 700
    nft_b delete table inet mpfi_test
  else
    fail "nft: a reject rule in $NS_B" "see $log"
  fi
done

# Only our requests (44 bytes: IPv4 20 + ICMP 8 + payload 16) are dropped; the system ping's
# (84 bytes) are answered, and their replies from the very peer reach our raw socket too, with
# sequence numbers 1, 2, ... like ours. The tool sends 15 requests 100 ms apart, the system ping
# starts after it and sends every 200 ms, so from its second reply on each carries a sequence
# number the tool has already sent: only the identifier tells them apart.
if nft_b add table inet mpfi_test &&
  nft_b add chain inet mpfi_test input '{ type filter hook input priority 0; }' &&
  nft_b add rule inet mpfi_test input ip length 44 icmp type echo-request drop; then
  echo "+ [$NS_A] $tool --socket raw --timeout-ms 1500 --count 15 $ADDR_B &" >>"$log"
  ip netns exec "$NS_A" "$tool" --socket raw --timeout-ms 1500 --count 15 "$ADDR_B" \
    >"$work/out" 2>"$work/err" &
  tool_pid=$!
  bg_pids+=($tool_pid)
  ip netns exec "$NS_A" ping -n -c 8 -i 0.2 "$ADDR_B" >"$work/sysping" 2>&1 &
  bg_pids+=($!)
  wait "$tool_pid"
  rc=$?
  out=$(cat "$work/out")
  err=$(cat "$work/err")
  echo "  rc=$rc out=$out err=$err" >>"$log"
  wait "${bg_pids[-1]}"
  cat "$work/sysping" >>"$log"
  expect "raw: the system ping's replies from the peer are not taken for ours" 1 raw 1700
  replies=$(grep -c 'bytes from' "$work/sysping")
  ((replies >= 5)) && pass "... while the system ping got its replies ($replies)" ||
    fail "... while the system ping got its replies" "$(cat "$work/sysping")"
  nft_b delete table inet mpfi_test
else
  fail "nft: a length-44 drop rule in $NS_B" "see $log"
fi

ping_a "$tool" --socket raw --timeout-ms 1000 "$ADDR_B"
expect "the rules gone, the peer answers again" 0 raw

# --- link down, no host ----------------------------------------------------------------------
ip -n "$NS_B" link set mpfi-vb down >>"$log" 2>&1
ping_a "$tool" --socket raw --timeout-ms 500 "$ADDR_B"
if [[ $rc == 1 || $rc == 2 ]] && (($(field elapsed_ms) <= 700)); then
  pass "raw: the peer's link down: timeout or error within 500 ms (+200)"
else
  fail "raw: the peer's link down: timeout or error within 500 ms (+200)" "exit $rc; $out $err"
fi
ping_a "$tool" --socket datagram --timeout-ms 500 "$ADDR_B"
if [[ $rc == 1 || $rc == 2 ]] && (($(field elapsed_ms) <= 700)); then
  pass "datagram: the peer's link down: timeout or error within 500 ms (+200)"
else
  fail "datagram: the peer's link down: timeout or error within 500 ms (+200)" "exit $rc; $out $err"
fi
ip -n "$NS_A" link set mpfi-va down >>"$log" 2>&1
ping_a "$tool" --socket raw --timeout-ms 500 "$ADDR_B"
expect "our own link down (no route): error at once" 2 raw 200
grep -q 'unreachable' <<<"$out" && pass "... saying the network is unreachable" ||
  fail "... saying the network is unreachable" "$out"
ip -n "$NS_A" link set mpfi-va up >>"$log" 2>&1
ip -n "$NS_B" link set mpfi-vb up >>"$log" 2>&1
if until_ok 10 link_up; then pass "links up again: $NS_A reaches $ADDR_B"; else
  fail "links up again: $NS_A reaches $ADDR_B" "no reply within 10 s"
fi

ping_a "$tool" --socket raw --timeout-ms 1000 "$ADDR_NONE"
expect "raw: no host at $ADDR_NONE: timeout within 1000 ms (+200)" 1 raw 1200
ping_a "$tool" --socket datagram --timeout-ms 1000 "$ADDR_NONE"
expect "datagram: no host at $ADDR_NONE: timeout within 1000 ms (+200)" 1 datagram 1200
echo "$passed passed, $failed failed"
((failed == 0))

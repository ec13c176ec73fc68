#!/usr/bin/env bash
# Smoke test of deploy/pair.sh: stands up the pair, checks what it promises (namespaces and
# addresses, the witness on the switch, both daemons and clusters inside their namespaces, every
# fault sub-command, daemon and PostgreSQL restarts), tears it down and checks nothing is left. Also: `down` on a
# half-built pair, `down` twice, and an `up` that fails midway cleaning up after itself.
# Needs root and a build tree (MPF_BUILD_DIR, default <repo>/build). Takes ~30 s. MPF_PAIR_NS
# (default mpf) and MPF_PAIR_DIR (default /tmp/<ns>-pair) choose the pair.
# Prints "N passed, M failed"; exit 0 only when nothing failed. Always runs pair.sh down.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
P=$(pwd)/deploy/pair.sh
export MPF_PAIR_NS=${MPF_PAIR_NS:-mpf}
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/$MPF_PAIR_NS-pair}
ns=$MPF_PAIR_NS
dir=$MPF_PAIR_DIR
work=$(mktemp -d "/tmp/$ns-pair-smoke.XXXXXX")
chmod 755 "$work"
log=$work/pair.log
passed=0
failed=0
listeners=()

pass() {
  passed=$((passed + 1))
  echo "ok   - $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL - $1${2:+: $2}"
}
# check NAME CMD...: passes when CMD exits 0.
check() {
  local name=$1
  shift
  if "$@" >>"$log" 2>&1; then pass "$name"; else fail "$name" "command failed: $*"; fi
}
# check_not NAME CMD...: passes when CMD exits non-zero.
check_not() {
  local name=$1
  shift
  if "$@" >>"$log" 2>&1; then fail "$name" "command succeeded: $*"; else pass "$name"; fi
}
# until_ok SECONDS CMD...: poll CMD every 0.2 s, at most SECONDS.
until_ok() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 5; i++)); do
    "$@" >>"$log" 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
check_within() {
  local name=$1 seconds=$2
  shift 2
  if until_ok "$seconds" "$@"; then pass "$name"; else fail "$name" "not true within ${seconds}s: $*"; fi
}
expect_eq() {
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1" "expected \"$3\", got \"$2\""; fi
}

pair() {
  echo "+ pair.sh $*" >>"$log"
  "$P" "$@" >>"$log" 2>&1
}
ping_ok() { ip netns exec "$ns-$1" ping -c1 -W1 -q "$2" >/dev/null 2>&1; }
ping_fails() { ! ping_ok "$@"; }
tcp_ok() { ip netns exec "$ns-$1" socat -u /dev/null "TCP:$2,connect-timeout=2" 2>/dev/null; }
tcp_fails() { ! tcp_ok "$@"; }
listening() { [[ -n $(ip netns exec "$ns-$1" ss -Hltn "sport = :$2" 2>/dev/null) ]]; }
daemon_pid() { cat "$dir/$1/mpfailoverd.pid" 2>/dev/null; }
postmaster_pid() { head -1 "$dir/$1/pg/data/postmaster.pid" 2>/dev/null; }
alive() { [[ -n $1 && -e /proc/$1 ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
netns_of() { ip netns identify "$1" 2>/dev/null; }
started_count() { grep -c DaemonStarted "$dir/$1/mpfailoverd.log" 2>/dev/null || true; }
file_has() { grep -q -- "$2" "$1" 2>/dev/null; }
file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Background listener inside a namespace; its pid (pair.sh exec ends in socat) is remembered.
listen() {
  local node=$1 spec=$2 out=$3
  "$P" exec "$node" socat -u "$spec" "OPEN:$out,creat,append" </dev/null >>"$log" 2>&1 &
  listeners+=($!)
  last_listener=$!
}
# Ends the test's own listeners on port 2008, so a daemon restarted later can bind it.
free_2008() {
  local pid
  for pid in "${listeners_2008[@]}"; do kill "$pid" 2>/dev/null || true; done
  for n in a b; do until_ok 5 no_socat_on_2008 $n || fail "socat still listens on $n:2008"; done
}
no_socat_on_2008() { [[ $(ip netns exec "$ns-$1" ss -Hltnp 'sport = :2008') != *socat* ]]; }
listeners_2008=()

cleanup() {
  local pid
  for pid in "${listeners[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$P" down >>"$log" 2>&1 || echo "pair.sh down failed during cleanup (see $log)"
  if ((failed > 0)); then
    echo "--- last 40 lines of $log (kept, with the rest of $work)"
    tail -40 "$log"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)

# --- up -----------------------------------------------------------------------------------
if MPF_PAIR_EXTRA_CONF='# smoke-extra-conf' pair up; then pass "pair.sh up"; else
  fail "pair.sh up" "see $log"
  echo "$passed passed, $failed failed"
  exit 1
fi
check "pair.sh status reports everything running" "$P" status

for n in a b; do
  addr=$([[ $n == a ]] && echo 198.18.0.11 || echo 198.18.0.12)
  check_within "daemon $n logged DaemonStarted" 10 file_has "$dir/$n/mpfailoverd.log" DaemonStarted
  expect_eq "daemon $n runs in namespace $ns-$n" "$(netns_of "$(daemon_pid $n)")" "$ns-$n"
  expect_eq "postgresql $n runs in namespace $ns-$n" "$(netns_of "$(postmaster_pid $n)")" "$ns-$n"
  expect_eq "psql $n answers" "$("$P" psql $n -Atc 'select 1' 2>>"$log")" 1
  expect_eq "psql $n: database meetingplace has the catalog" \
    "$("$P" psql $n -Atc "select current_database() || ':' || (select count(*) from pg_namespace where nspname = 'mpfailover')" 2>>"$log")" \
    "meetingplace:1"
  check "config $n listens on its own address" grep -qx "listen = $addr" "$dir/$n.conf"
  check "config $n has the extra config text" grep -qx '# smoke-extra-conf' "$dir/$n.conf"
  expect_eq "namespace $ns-$n has no default route" "$(ip -n $ns-$n route show default)" ""
  # The shared address 198.18.0.10 comes and goes with the role (hooks): not counted here.
  expect_eq "namespace $ns-$n has only 127.0.0.1 and $addr (and the shared address)" \
    "$(ip -n $ns-$n -4 -o addr show | awk '{print $4}' | grep -vx 198.18.0.10/24 | sort | tr '\n' ' ')" \
    "127.0.0.1/8 $addr/24 "
  expect_eq "namespace $ns-$n: no IPv6 on the veth" \
    "$(ip -n $ns-$n -6 -o addr show dev veth-$ns-$n)" ""
done
check_not "no veth-$ns-a among the host's links" ip link show dev veth-$ns-a
check_not "no veth-$ns-b among the host's links" ip link show dev veth-$ns-b
expect_eq "witness $ns-w has only 127.0.0.1 and 198.18.0.1" \
  "$(ip -n $ns-w -4 -o addr show | awk '{print $4}' | sort | tr '\n' ' ')" "127.0.0.1/8 198.18.0.1/24 "
expect_eq "switch $ns-sw: bridge br0 joins port-a, port-b, port-w" \
  "$(ip -n $ns-sw -br link show master br0 | awk '{print $1}' | sed 's/@.*//' | sort | tr '\n' ' ')" \
  "port-a port-b port-w "
check "config a: initial_role active" grep -qx "initial_role = active" "$dir/a.conf"
check "config b: initial_role standby" grep -qx "initial_role = standby" "$dir/b.conf"
check "config b: app_role meetingplace" grep -qx "app_role = meetingplace" "$dir/b.conf"
check "config b: shared address on its own veth" grep -qx "interface = veth-$ns-b" "$dir/b.conf"
check "config a: no witness unless MPF_PAIR_WITNESS" bash -c "! grep -q '^witness' '$dir/a.conf'"
app_insert() { "$P" psql "$1" -U meetingplace -Atc "insert into users (login) values ('smoke-$1')"; }
check "login meetingplace writes on a (active)" app_insert a
app_insert_refused() { ! app_insert "$1"; }
check_within "login meetingplace is read-only on b (standby)" 10 app_insert_refused b

# --- ping, cut, heal ----------------------------------------------------------------------
check "ping a -> b" ping_ok a 198.18.0.12
check "ping b -> a" ping_ok b 198.18.0.11
check "pair.sh ping" "$P" ping
check "ping a -> witness" ping_ok a 198.18.0.1
check "ping b -> witness" ping_ok b 198.18.0.1
pair cut
check "cut: ping a -> b fails" ping_fails a 198.18.0.12
check "cut: ping b -> a fails" ping_fails b 198.18.0.11
check "cut: a still reaches the witness" ping_ok a 198.18.0.1
check "cut: b still reaches the witness" ping_ok b 198.18.0.1
check_not "cut: pair.sh ping exits non-zero" "$P" ping
pair heal
check_within "heal: ping a -> b works again" 5 ping_ok a 198.18.0.12
check_within "heal: ping b -> a works again" 5 ping_ok b 198.18.0.11
pair cut-witness b
check "cut-witness b: b cannot reach the witness" ping_fails b 198.18.0.1
check "cut-witness b: a still reaches the witness" ping_ok a 198.18.0.1
check "cut-witness b: a <-> b unaffected" ping_ok b 198.18.0.11
pair uncut
check_within "uncut: b reaches the witness again" 5 ping_ok b 198.18.0.1

# --- block-2008 ---------------------------------------------------------------------------
# Where a daemon listens on 2008 itself (replication), the test connects to it; elsewhere a
# socat listener stands in, and is ended after this section.
for n in a b; do
  addr=$([[ $n == a ]] && echo 198.18.0.11 || echo 198.18.0.12)
  for port in 2008 2009; do
    if ! listening $n $port; then
      listen $n "TCP-LISTEN:$port,bind=$addr,reuseaddr,fork" "$work/recv-$n-$port"
      [[ $port != 2008 ]] || listeners_2008+=("$last_listener")
    fi
  done
done
for n in a b; do
  for port in 2008 2009; do until_ok 5 listening $n $port || fail "listener $n:$port started"; done
done
check "before block-2008: a connects to b:2008" tcp_ok a 198.18.0.12:2008
pair block-2008
check "block-2008: ping a -> b still works" ping_ok a 198.18.0.12
check "block-2008: a cannot connect to b:2008" tcp_fails a 198.18.0.12:2008
check "block-2008: b cannot connect to a:2008" tcp_fails b 198.18.0.11:2008
check "block-2008: a still connects to b:2009" tcp_ok a 198.18.0.12:2009
pair heal
check_within "heal: a connects to b:2008 again" 5 tcp_ok a 198.18.0.12:2008
free_2008

# --- cut-oneway ---------------------------------------------------------------------------
listen a "UDP-RECV:5999,bind=198.18.0.11" "$work/udp-a"
listen b "UDP-RECV:5999,bind=198.18.0.12" "$work/udp-b"
send_udp() { echo "$3" | ip netns exec "$ns-$1" socat -u - "UDP-SENDTO:$2:5999" 2>/dev/null; }
b_to_a() { send_udp b 198.18.0.11 from-b && file_has "$work/udp-a" from-b; }
a_to_b() { send_udp a 198.18.0.12 "from-a-$1" && file_has "$work/udp-b" "from-a-$1"; }
pair cut-oneway a
check "cut-oneway a: ping a -> b fails" ping_fails a 198.18.0.12
check_within "cut-oneway a: b -> a still delivers" 5 b_to_a
send_udp a 198.18.0.12 from-a-cut
sleep 1 # a negative: give a datagram that should not arrive the time it would have taken
check_not "cut-oneway a: a -> b delivers nothing" file_has "$work/udp-b" from-a-cut
pair heal
check_within "heal: a -> b delivers again" 5 a_to_b healed

# --- link-down / link-up ------------------------------------------------------------------
pair link-down
check "link-down: ping a -> b fails" ping_fails a 198.18.0.12
pair link-up
check_within "link-up: ping a -> b works again" 10 ping_ok a 198.18.0.12
pair link-down a
check "link-down a: a cannot reach the witness" ping_fails a 198.18.0.1
check "link-down a: b still reaches the witness" ping_ok b 198.18.0.1
pair heal
check_within "heal: a reaches the witness again" 10 ping_ok a 198.18.0.1

# --- thin ---------------------------------------------------------------------------------
# 32 KiB over 128 kbit/s takes >= 2 s; unthinned, well under a second. Timed at the receiver.
transfer_s() {
  local f=$work/recv-b-2009 before t0 i
  before=$(file_size "$f")
  t0=$(date +%s%N)
  head -c 32768 /dev/zero | ip netns exec $ns-a socat -u - TCP:198.18.0.12:2009 2>>"$log"
  for ((i = 0; i < 200; i++)); do
    (($(file_size "$f") >= before + 32768)) && break
    sleep 0.1
  done
  echo $((($(date +%s%N) - t0) / 1000000))
}
pair thin
for n in a b; do
  check "thin: tbf 128Kbit on veth-$ns-$n" \
    grep -q 'tbf .*rate 128Kbit' <<<"$(ip netns exec $ns-$n tc qdisc show dev veth-$ns-$n root)"
done
ms=$(transfer_s)
if ((ms >= 1500 && ms < 20000)); then pass "thin: 32 KiB took ${ms} ms (>= 1500)"; else
  fail "thin: 32 KiB should take >= 1500 ms at 128kbit" "took ${ms} ms"
fi
check "thin: ping a -> b still works" ping_ok a 198.18.0.12
pair heal
check_not "heal: no tbf left on veth-$ns-a" \
  grep -q tbf <<<"$(ip netns exec $ns-a tc qdisc show dev veth-$ns-a root)"
ms=$(transfer_s)
if ((ms < 1000)); then pass "unthinned: 32 KiB took ${ms} ms (< 1000)"; else
  fail "unthinned: 32 KiB should take < 1000 ms" "took ${ms} ms"
fi
no_fault_rules() { [[ $("$P" status) != *nft* ]]; }
check "heal: pair.sh status shows no fault rule" no_fault_rules

# --- daemons ------------------------------------------------------------------------------
old=$(daemon_pid a)
pair kill-daemon a
check_not "kill-daemon a: old pid $old is gone" alive "$old"
check_not "kill-daemon a: status exits non-zero" "$P" status
pair restart-daemon a
check_within "restart-daemon a: second DaemonStarted" 10 \
  bash -c "(( \$(grep -c DaemonStarted '$dir/a/mpfailoverd.log') == 2 ))"
check "restart-daemon a: new daemon alive" alive "$(daemon_pid a)"
expect_eq "restart-daemon a: runs in $ns-a" "$(netns_of "$(daemon_pid a)")" $ns-a
old=$(daemon_pid b)
pair stop-daemon b
check_not "stop-daemon b: old pid $old is gone" alive "$old"
check "stop-daemon b: logged DaemonStopping (SIGTERM)" file_has "$dir/b/mpfailoverd.log" DaemonStopping
pair start-daemon b
check "start-daemon b: running" alive "$(daemon_pid b)"
expect_eq "start-daemon b: started twice in all" "$(started_count b)" 2

# --- PostgreSQL ---------------------------------------------------------------------------
old=$(postmaster_pid a)
pair stop-pg a
check_not "stop-pg a: postmaster $old is gone" alive "$old"
check_not "stop-pg a: psql a fails" "$P" psql a -Atc 'select 1'
check "stop-pg a: daemon a survives" alive "$(daemon_pid a)"
pair start-pg a
check_within "start-pg a: psql a answers" 30 "$P" psql a -Atc 'select 1'
expect_eq "start-pg a: postmaster runs in $ns-a" "$(netns_of "$(postmaster_pid a)")" $ns-a
check "pair.sh cli a init-db (idempotent)" "$P" cli a init-db
expect_eq "pair.sh exec b: inside $ns-b" "$("$P" exec b ip netns identify 2>>"$log")" $ns-b

# --- down ---------------------------------------------------------------------------------
pairs_pm_a=$(postmaster_pid a)
pairs_pm_b=$(postmaster_pid b)
check "pair.sh down" "$P" down
nothing_left() {
  local what=""
  [[ $(ip netns list) != *"$ns-"* ]] || what+=" namespaces"
  [[ $(ip -o link show) != *"veth-$ns-"* ]] || what+=" veth"
  ! pgrep -f -- "-D $dir/" >/dev/null || what+=" postgres"
  ! pgrep -f -- "--config $dir/" >/dev/null || what+=" mpfailoverd"
  [[ ! -e $dir ]] || what+=" state-dir"
  local pid
  for pid in "${listeners[@]}" $pairs_pm_a $pairs_pm_b; do
    if alive "$pid"; then what+=" pid-$pid"; fi
  done
  [[ -z $what ]] || { echo "left behind:$what" >&2; return 1; }
}
check_within "down: nothing left (namespaces, veth, postgres, daemons, state dir)" 5 nothing_left
check "down twice is fine" "$P" down

ip netns add $ns-a
ip netns add $ns-sw
check "down removes a half-built pair (namespace only)" "$P" down
check "half-built down: nothing left" nothing_left

if MPF_PAIR_EXTRA_CONF=$'[bogus]\nkey = 1' pair up; then
  fail "up with a bad config key fails" "it succeeded"
else
  pass "up with a bad config key fails"
fi
check "failed up cleaned up after itself" nothing_left

echo "elapsed $(($(date +%s) - started)) s"
echo "$passed passed, $failed failed"
((failed == 0))

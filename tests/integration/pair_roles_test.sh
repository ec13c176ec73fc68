#!/usr/bin/env bash
# Roles, fencing and failover on the namespace pair (deploy/pair.sh: nodes a and b and a witness
# host on one switch; each node with PostgreSQL 15 and mpfailoverd). Issue #5's pair tests. Every
# check reads `mpfailover status --json` (jq), the databases, or the interfaces; every wait polls
# under a deadline; a "stays" check polls for its whole window and fails on the first deviation.
#   1  fresh pair: a active (node.initial_role), b standby; the application login (meetingplace)
#      writes on a and is read-only on b; the shared address is on a only, holder a on both
#   2  manual failover on b refused while a is up and active (exit 1, says why)
#   3  block-2008 (ICMP passes): peer_state service_down on both; b (automatic failover on, witness
#      reachable) stays standby
#   4  cut (a and b cannot reach each other, both reach the witness): unreachable; b promotes by
#      itself (epoch grows, writes open, shared address on b); heal: a steps down, one active
#   5  cut with the witness cut from a: a (now standby) does not promote; manual failover on a
#      works with the peer unreachable; heal: b steps down
#   6  kill -9 of either daemon and restart: role and epoch kept
#   7  switchover under light write load: roles and the shared address move, no acknowledged
#      insert lost, both databases equal
#   8  split brain on purpose: cut, failover --force on the standby, conflicting writes (same
#      keys) on both, heal: exactly one active, same epoch, data equal, conflicts recorded on both
#   9  standalone on the standby: writes open, replication paused, the queue grows; join: converges
#  10  a failing on_promote hook: logged, last_hook.ok false and last_error in status, role stands
#
# Needs root, jq and a build tree (MPF_BUILD_DIR, default <repo>/build). Runs its own pair
# (MPF_PAIR_NS, default mpfro; MPF_PAIR_DIR, default /tmp/<ns>-pair), always torn down (trap).
# Prints "ok - ..." / "not ok - ..." per check, and finally "N passed, M failed"; exit non-zero
# when anything failed. Takes ~100 s.
#
# Environment:
#   MPF_ROLES_TEST_KEEP=1    keep the work dir (test.log, daemon logs) even when all passed
#   MPF_ROLES_TEST_BREAK     prove the test can fail; each must end "not ok":
#     unfenced      the login exists but is not node.app_role: the standby takes its writes
#     no-shared     no shared address: the holder checks fail (1, 4, 7)
#     manual-only   failover.automatic = false: b does not promote in 4
#     keep-witness  5 leaves a's witness reachable: a promotes by itself
#     ping-blocked  3 cuts everything instead of port 2008: unreachable, and b promotes
#     lose-rows     b's database silently drops one replicated user insert in three (7, 8, 9)
#     no-heal       8 does not heal the partition: two actives remain
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.." || exit 2
repo=$(pwd)
P=$repo/deploy/pair.sh
export MPF_PAIR_NS=${MPF_PAIR_NS:-mpfro}
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/$MPF_PAIR_NS-pair}
ns=$MPF_PAIR_NS
dir=$MPF_PAIR_DIR
cli_bin=${MPF_BUILD_DIR:-$repo/build}/server/mpfailover
sabotage=${MPF_ROLES_TEST_BREAK:-}
work=$(mktemp -d "/tmp/$ns-roles-test.XXXXXX")
chmod 755 "$work"
log=$work/test.log
passed=0
failed=0
writer_pid=""
readonly kShared=198.18.0.10
readonly kApp=meetingplace
tables=(users groups group_members meetings meeting_participants)

command -v jq >/dev/null || {
  echo "pair_roles_test: jq not found (run deploy/install-deps.sh)" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------
# reporting and waiting

pass() {
  passed=$((passed + 1))
  echo "ok - $1"
  echo "ok - $1" >>"$log"
}
fail() {
  failed=$((failed + 1))
  echo "not ok - $1${2:+: $2}"
  echo "not ok - $1${2:+: $2}" >>"$log"
}
note() { echo "[$(date +%T.%3N)] $*" >>"$log"; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
started=$(now_ms)

# poll SECONDS CMD...: true once CMD succeeds (every 100 ms), false after SECONDS.
poll() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  while :; do
    "$@" >>"$log" 2>&1 && return 0
    (($(now_ms) >= deadline)) && return 1
    sleep 0.1
  done
}
# check_within NAME SECONDS CMD...
check_within() {
  local name=$1 seconds=$2
  shift 2
  if poll "$seconds" "$@"; then pass "$name"; else fail "$name" "not true within ${seconds}s: $*"; fi
}
# check_stays NAME SECONDS CMD...: CMD must hold at every poll (100 ms) for SECONDS.
check_stays() {
  local name=$1 seconds=$2 deadline
  shift 2
  deadline=$(($(now_ms) + seconds * 1000))
  while (($(now_ms) < deadline)); do
    if ! "$@" >>"$log" 2>&1; then
      fail "$name" "stopped holding: $*"
      return
    fi
    sleep 0.1
  done
  pass "$name"
}
check() {
  local name=$1
  shift
  if "$@" >>"$log" 2>&1; then pass "$name"; else fail "$name" "command failed: $*"; fi
}
expect_eq() {
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1" "expected \"$3\", got \"$2\""; fi
}

scenario() {
  echo "# $1 (t=$((($(now_ms) - started) / 1000)) s)"
  note "=== $1"
}
pair() {
  note "pair.sh $*"
  "$P" "$@" >>"$log" 2>&1
}

# ---------------------------------------------------------------------------------------------
# the pair's state

# cli NODE ARGS...: mpfailover in the node's namespace (as `pair.sh cli`, without its start-up
# cost: status is polled often).
cli() {
  local node=$1
  shift
  ip netns exec "$ns-$node" "$cli_bin" --config "$dir/$node.conf" "$@"
}
# st NODE: the node's `mpfailover status --json`, or nothing when the daemon does not answer.
# (exit 3 is an answer: the pair is unhealthy, which these faults make it on purpose)
st() { cli "$1" status --json 2>>"$log" || [[ $? -eq 3 ]]; }
# field NODE JQ: one value of the node's status ("" when the daemon does not answer).
field() { st "$1" | jq -r "$2" 2>/dev/null; }
is() { [[ $(field "$1" "$2") == "$3" ]]; }
role_is() { is "$1" .role "$2"; }
# roles_are A B: a's and b's roles, both settled.
roles_are() { role_is a "$1" && role_is b "$2"; }
epoch() { field "$1" .epoch; }
peer_state_is() { is "$1" .peer_state "$2"; }
holder_is() { is a .shared_address_holder "$1" && is b .shared_address_holder "$1"; }
addr_on() { [[ -n $(ip -n "$ns-$1" -4 -o addr show dev "veth-$ns-$1" to "$kShared/32" 2>/dev/null) ]]; }
addr_only_on() {
  local other=a
  [[ $1 == a ]] && other=b
  addr_on "$1" && ! addr_on "$other"
}
same_epoch() {
  local ea eb
  ea=$(epoch a)
  eb=$(epoch b)
  [[ -n $ea && $ea == "$eb" ]]
}

# psql_as USER NODE ARGS...: psql on the node's database (as `pair.sh psql`, quicker).
psql_as() {
  local user=$1 node=$2
  shift 2
  ip netns exec "$ns-$node" psql "host=$dir/$node/pg port=5432 dbname=meetingplace user=$user" \
    -X -q -At -v ON_ERROR_STOP=1 "$@" </dev/null
}
sql() { psql_as postgres "$@"; }
# app_sql NODE SQL: as the application's login.
app_sql() { psql_as "$kApp" "$1" -c "$2"; }
app_insert() { app_sql "$1" "INSERT INTO users (login) VALUES ('$2')"; }
app_refused() {
  local out
  out=$(app_sql "$1" "INSERT INTO users (login) VALUES ('$2')" 2>&1) && return 1
  [[ $out == *read-only* ]]
}

# One line per table: count and md5 of the rows' text in key order.
digest() {
  local t q=""
  for t in "${tables[@]}"; do
    q+="SELECT '$t', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM $t x;"
  done
  sql "$1" -c "$q"
}
converged() {
  local da db
  da=$(digest a) && db=$(digest b) || return 1
  [[ $da == "$db" ]]
}
backlog() { sql "$1" -c "SELECT count(*) FROM mpfailover.change_log"; }
drained() { [[ $(backlog a) == 0 && $(backlog b) == 0 ]]; }
has_login() { [[ $(sql "$1" -c "SELECT count(*) FROM users WHERE login = '$2'") == 1 ]]; }
conflicts() { sql "$1" -c "SELECT count(*) FROM mpfailover.conflict"; }

# ---------------------------------------------------------------------------------------------
# set-up and teardown

cleanup() {
  local rc=$?
  set +e
  if [[ -n $writer_pid ]]; then
    touch "$work/writer.stop"
    kill "$writer_pid" 2>/dev/null
    wait "$writer_pid" 2>/dev/null
  fi
  for n in a b; do cp "$dir/$n/mpfailoverd.log" "$work/mpfailoverd-$n.log" 2>/dev/null; done
  "$P" down >>"$log" 2>&1 || echo "pair.sh down failed during cleanup (see $log)"
  if ((failed > 0 || rc != 0)) || [[ ${MPF_ROLES_TEST_KEEP:-} == 1 ]]; then
    echo "# work dir kept: $work (test.log, daemon logs)"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Hooks: wrappers around deploy/hooks that fail when $work/fail-<hook>-<node> exists, so a hook
# failure can be injected (10) without restarting a daemon.
mkdir -p "$work/hooks"
for h in on_promote on_demote; do
  cat >"$work/hooks/$h" <<HOOK
#!/usr/bin/env bash
if [[ -e $work/fail-$h-\${MPF_NODE:-} ]]; then
  echo "mpfailover $h: injected failure (pair_roles_test)" >&2
  exit 3
fi
exec $repo/deploy/hooks/$h
HOOK
  chmod 755 "$work/hooks/$h"
done

automatic=true
[[ $sabotage != manual-only ]] || automatic=false
export MPF_PAIR_HEARTBEAT=300ms
export MPF_PAIR_WITNESS=on
export MPF_PAIR_HOOKS=$work/hooks
export MPF_PAIR_EXTRA_CONF="[heartbeat]
timeout = 300ms
ping_timeout = 300ms

[failover]
automatic = $automatic
missed_heartbeats = 3
switchover_timeout = 10s

[hooks]
timeout = 10s"
[[ $sabotage != unfenced ]] || export MPF_PAIR_APP_ROLE=none
[[ $sabotage != no-shared ]] || export MPF_PAIR_SHARED_ADDRESS=none


note "pair $ns in $dir; work $work; break: ${sabotage:-none}"
if pair up; then pass "pair.sh up ($ns: a, b, witness; heartbeat 300ms, automatic failover)"; else
  fail "pair.sh up" "see $log"
  echo "$passed passed, $failed failed"
  exit 1
fi

if [[ $sabotage == unfenced ]]; then
  # The same login as pair.sh makes, but not named in node.app_role: nobody fences it.
  for n in a b; do
    sql $n -c "CREATE ROLE $kApp LOGIN; GRANT USAGE ON SCHEMA mpfailover TO $kApp;
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $kApp;
      GRANT SELECT, INSERT, UPDATE ON mpfailover.tombstone TO $kApp" >>"$log" 2>&1
  done
fi
if [[ $sabotage == lose-rows ]]; then
  # Replicated user inserts on b vanish one in three (the applier's session only: ALWAYS).
  sql b -c "CREATE FUNCTION lose_rows() RETURNS trigger LANGUAGE plpgsql AS \$\$
    BEGIN IF current_setting('mpfailover.applying', true) = 'on' AND random() < 0.34
      THEN RETURN NULL; END IF; RETURN NEW; END \$\$;
    CREATE TRIGGER lose_rows BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION lose_rows();
    ALTER TABLE users ENABLE ALWAYS TRIGGER lose_rows;" >>"$log" 2>&1
fi

# ---------------------------------------------------------------------------------------------
scenario "1 fresh pair"
check_within "1: a active, b standby" 20 roles_are active standby
expect_eq "1: a's epoch is 1 (initial_role active, persisted)" "$(sql a -c 'SELECT role, epoch, initialized FROM mpfailover.node')" "active|1|t"
check_within "1: b adopts epoch 1" 10 is b .epoch 1
check_within "1: both see the peer up" 10 eval "peer_state_is a up && peer_state_is b up"
check "1: the application login writes on a" app_insert a fresh-a
check_within "1: the application login is read-only on b" 10 app_refused b fresh-b
expect_eq "1: writes open on a, closed on b" "$(field a .writes) $(field b .writes)" "open closed"
check_within "1: the shared address is on a only" 10 addr_only_on a
check_within "1: shared_address_holder = a on both" 10 holder_is a
check_within "1: a's on_promote hook ran" 10 is a .last_hook.ok true
check "1: mpfailover check: the two configs match" cli a check
check_within "1: mpfailover verify: both databases equal" 20 cli b verify

# ---------------------------------------------------------------------------------------------
scenario "2 manual failover refused while the peer is up and active"
out=$(cli b failover 2>&1)
rc=$?
note "failover on b: rc=$rc: $out"
expect_eq "2: failover on b exits 1" "$rc" 1
check "2: and says the peer is up and active" grep -q "up and active" <<<"$out"
check "2: b is still standby" role_is b standby

# ---------------------------------------------------------------------------------------------
scenario "3 only port 2008 blocked"
if [[ $sabotage == ping-blocked ]]; then pair cut; else pair block-2008; fi
check_within "3: a sees b service_down" 10 peer_state_is a service_down
check_within "3: b sees a service_down" 10 peer_state_is b service_down
check_stays "3: no promotion (b standby, a active) for 3 s" 3 roles_are active standby
pair heal
check_within "3: heal: both see the peer up" 10 eval "peer_state_is a up && peer_state_is b up"
check "3: still a active, b standby" roles_are active standby

# ---------------------------------------------------------------------------------------------
scenario "4 cut, witness reachable: automatic failover"
e_before=$(epoch a)
pair cut
check_within "4: b sees a unreachable" 10 peer_state_is b unreachable
check_within "4: b promotes by itself" 10 role_is b active
check "4: b's witness is reachable" is b .witness_state reachable
e_b=$(epoch b)
if ((e_b > e_before)); then pass "4: b's epoch grew ($e_before -> $e_b)"; else fail "4: b's epoch grew" "$e_before -> $e_b"; fi
check_within "4: the application login writes on b" 10 app_insert b auto-b
check_within "4: the shared address is on b" 10 addr_on b
pair heal
check_within "4: heal: a steps down (a standby, b active)" 15 roles_are standby active
check_within "4: both at epoch $e_b" 10 same_epoch
check_within "4: the shared address is on b only" 10 addr_only_on b
check_within "4: shared_address_holder = b on both" 10 holder_is b
check_within "4: a is read-only for the application" 10 app_refused a after-auto-a
check_within "4: data converges" 30 converged

# ---------------------------------------------------------------------------------------------
scenario "5 cut without a witness: no automatic failover; manual failover works"
[[ $sabotage == keep-witness ]] || pair cut-witness a
pair cut
check_within "5: a sees b unreachable" 10 peer_state_is a unreachable
check_within "5: a's witness unreachable" 10 is a .witness_state unreachable
check_stays "5: a does not promote by itself for 3 s" 3 role_is a standby
e_before=$(epoch b)
out=$(cli a failover 2>&1)
rc=$?
note "failover on a: rc=$rc: $out"
expect_eq "5: manual failover on a (peer unreachable) exits 0" "$rc" 0
check_within "5: a active" 5 role_is a active
e_a=$(epoch a)
if ((e_a > e_before)); then pass "5: a's epoch grew ($e_before -> $e_a)"; else fail "5: a's epoch grew" "$e_before -> $e_a"; fi
pair heal
check_within "5: heal: b steps down (a active, b standby)" 15 roles_are active standby
check_within "5: both at epoch $e_a" 10 same_epoch
check_within "5: the shared address is on a only" 10 addr_only_on a
check_within "5: shared_address_holder = a on both" 10 holder_is a

# ---------------------------------------------------------------------------------------------
scenario "6 kill -9 and restart keeps role and epoch"
e=$(epoch a)
pair kill-daemon b
pair start-daemon b
check_within "6: b restarted standby at epoch $e" 15 eval "role_is b standby && is b .epoch $e"
pair kill-daemon a
pair start-daemon a
check_within "6: a restarted active at epoch $e" 15 eval "role_is a active && is a .epoch $e"
check_within "6: the application login writes on a again" 10 app_insert a after-restart-a
check_within "6: both see the peer up" 15 eval "peer_state_is a up && peer_state_is b up"

# ---------------------------------------------------------------------------------------------
scenario "7 switchover under light write load"
# The writer inserts one user per transaction as the application, on whichever node takes it,
# and records a login only after its COMMIT succeeded.
writer() {
  local i=0 node=a other
  while [[ ! -e $work/writer.stop ]] && ((i < 3000)); do
    i=$((i + 1))
    if app_insert "$node" "sw-$i" 2>/dev/null; then
      echo "sw-$i $node" >>"$work/acked"
    else
      other=b
      [[ $node == b ]] && other=a
      node=$other
    fi
    sleep 0.02
  done
}
: >"$work/acked"
rm -f "$work/writer.stop"
writer &
writer_pid=$!
on_b() { grep -c ' b$' "$work/acked"; }
check_within "7: the writer commits on a" 20 eval '(( $(wc -l <"$work/acked") >= 20 ))'
e=$(epoch a)
t0=$(now_ms)
out=$(cli a switchover 2>&1)
rc=$?
note "switchover on a: rc=$rc ($(($(now_ms) - t0)) ms): $out"
expect_eq "7: switchover exits 0" "$rc" 0
check_within "7: b active, a standby" 10 roles_are standby active
check_within "7: both at a higher epoch than $e" 10 eval "same_epoch && (( \$(epoch b) > $e ))"
check_within "7: the writer commits on b" 20 eval '(( $(on_b) >= 10 ))'
touch "$work/writer.stop"
wait "$writer_pid"
writer_pid=""
check_within "7: the shared address is on b only" 10 addr_only_on b
check_within "7: shared_address_holder = b on both" 10 holder_is b
check_within "7: both databases equal" 30 converged
lost_a=0
lost_b=0
while read -r login _; do
  has_login a "$login" || lost_a=$((lost_a + 1))
  has_login b "$login" || lost_b=$((lost_b + 1))
done <"$work/acked"
expect_eq "7: all $(wc -l <"$work/acked") acknowledged inserts on a and b (lost on a, on b)" "$lost_a $lost_b" "0 0"

# ---------------------------------------------------------------------------------------------
scenario "8 split brain on purpose"
# Rows both sides will change: replicated to both first.
for k in 1 2 3 4 5; do app_insert b "sb-$k" >>"$log" 2>&1; done
check_within "8: seed rows on both" 20 converged
c_a=$(conflicts a)
c_b=$(conflicts b)
pair cut-witness # no automatic failover: this split brain is the operator's
pair cut
check_within "8: a sees b unreachable" 10 peer_state_is a unreachable
out=$(cli a failover --force --yes 2>&1)
rc=$?
note "failover --force on a: rc=$rc: $out"
expect_eq "8: failover --force on the standby a exits 0" "$rc" 0
check_within "8: two actives while partitioned" 5 roles_are active active
# b, active and hearing neither the peer nor the witness, fences itself (#18): writes closed.
check_within "8: b, cut off, fences itself" 10 eval '[[ $(field b .fenced) == true ]]'
check "8: b refuses the application's writes while fenced" eval \
  "! app_sql b \"UPDATE users SET email = 'x' WHERE login = 'sb-1'\" >/dev/null 2>&1"
# Two writers on purpose (the operator's call, docs/fencing.md): maintenance keeps b from fencing
# again, failover --force reopens its writes.
check "8: maintenance on b" eval "cli b maintenance on >/dev/null"
check "8: failover --force on the fenced active b reopens writes" eval \
  "cli b failover --force --yes >/dev/null"
check_within "8: b unfenced" 10 eval '[[ $(field b .fenced) == false ]]'
# Conflicting writes: the same keys changed on both, and the same new key inserted on both.
uuid=11111111-2222-3333-4444-555555555555
check "8: writes on b" app_sql b "UPDATE users SET email = 'b@b' WHERE login LIKE 'sb-%';
  DELETE FROM users WHERE login = 'sb-5';
  INSERT INTO users (user_id, login, first_name) VALUES ('$uuid', 'sb-new-b', 'from b')"
check "8: writes on a" app_sql a "UPDATE users SET email = 'a@a' WHERE login LIKE 'sb-%';
  INSERT INTO users (user_id, login, first_name) VALUES ('$uuid', 'sb-new-a', 'from a')"
[[ $sabotage == no-heal ]] || pair heal
check_within "8: heal: exactly one active" 15 eval "roles_are active standby || roles_are standby active"
check_within "8: both report the same epoch" 10 same_epoch
check_within "8: data converges" 30 converged
check_within "8: conflicts recorded on a" 10 eval "(( \$(conflicts a) > c_a ))"
check_within "8: conflicts recorded on b" 10 eval "(( \$(conflicts b) > c_b ))"
check "8: mpfailover conflicts --json lists them on a" eval \
  "(( \$(cli a conflicts --json | jq '.count') == \$(conflicts a) ))"
note "conflicts: a $(conflicts a) b $(conflicts b); $(sql a -c 'SELECT login, email FROM users WHERE login LIKE $$sb-%$$ ORDER BY 1' | tr '\n' ' ')"
winner=a
role_is a active || winner=b
check_within "8: the shared address is on the active ($winner) only" 10 addr_only_on $winner
check "8: maintenance off on b" eval "cli b maintenance off >/dev/null"

# ---------------------------------------------------------------------------------------------
scenario "9 standalone and join"
sb=b
[[ $winner == b ]] && sb=a
act=$winner
out=$(cli $sb standalone 2>&1)
rc=$?
note "standalone on $sb: rc=$rc: $out"
expect_eq "9: standalone on the standby $sb exits 0" "$rc" 0
check_within "9: $sb standalone" 5 role_is $sb standalone
check "9: $sb: replication paused" is $sb .replicating false
check_within "9: the application login writes on $sb" 10 app_insert $sb alone-1
for k in 2 3 4 5; do app_insert $sb "alone-$k" >>"$log" 2>&1; done
for k in 1 2 3; do app_insert $act "pair-$k" >>"$log" 2>&1; done
sleep 1 # a negative: give replication the time it would have needed
check "9: the queue on $sb grows (>= 5 changes)" eval "(( \$(backlog $sb) >= 5 ))"
check "9: mpfailover queue --json on $sb says 5 transactions, 5 rows" eval \
  "[[ \$(cli $sb queue --json | jq -c '[.transactions, .rows, .by_table[\"public.users\"]]') == '[5,5,5]' ]]"
check "9: $act has none of $sb's rows" eval "! has_login $act alone-1"
out=$(cli $sb join 2>&1)
rc=$?
note "join on $sb: rc=$rc: $out"
expect_eq "9: join exits 0" "$rc" 0
check_within "9: $sb back to standby" 5 role_is $sb standby
check_within "9: $sb read-only again" 10 app_refused $sb alone-6
check_within "9: data converges" 30 converged
check_within "9: both queues drain" 30 drained
check_within "9: mpfailover queue --json on $sb says 0 after the drain" 30 eval \
  "[[ \$(cli $sb queue --json | jq '.transactions') == 0 ]]"
check_within "9: mpfailover verify on $act: equal" 20 cli $act verify

# ---------------------------------------------------------------------------------------------
scenario "10 a failing on_promote hook"
touch "$work/fail-on_promote-$sb"
out=$(cli $sb switchover 2>&1)
rc=$?
note "switchover on $sb: rc=$rc: $out"
expect_eq "10: switchover to $sb exits 0" "$rc" 0
check_within "10: $sb active despite the hook" 10 roles_are "$([[ $sb == a ]] && echo active || echo standby)" "$([[ $sb == b ]] && echo active || echo standby)"
check_within "10: status: last_hook on_promote not ok" 15 eval "is $sb .last_hook.hook on_promote && is $sb .last_hook.ok false"
check "10: status: last_error names the hook" eval "[[ \$(field $sb .last_error) == *on_promote* ]]"
check "10: the daemon logged HookFailed" grep -q "HookFailed hook=on_promote" "$dir/$sb/mpfailoverd.log"
check_stays "10: $sb stays active for 2 s" 2 role_is $sb active

echo "elapsed $((($(now_ms) - started) / 1000)) s"
echo "$passed passed, $failed failed"
((failed == 0))

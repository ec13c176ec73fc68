#!/usr/bin/env bash
# The README's first command: set everything up and show mpfailover working on this machine.
#   deploy/demo.sh        install dependencies, build, stand up the pair, show it working,
#                         leave it running
#   deploy/demo.sh stop   stop and remove everything the demo started
#
# The pair is two network-namespace hosts (deploy/pair.sh): node a 198.18.0.11 and node b
# 198.18.0.12, each with its own PostgreSQL 15 and mpfailoverd, replicating over port 2008
# with CurveZMQ, heartbeats every second, and the shared address 198.18.0.10 on the active.
# Every step is checked: the demo stops with an error if something does not happen.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/mpf-pair}
# The build tree (default build/). An existing tree keeps its own configuration: the test suite
# runs this script against the tree it was built in (tests/integration/demo_test.sh).
export MPF_BUILD_DIR=${MPF_BUILD_DIR:-$root/build}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
on() { deploy/pair.sh psql "$1" -X -q -v ON_ERROR_STOP=1 "${@:2}"; }
scalar() { deploy/pair.sh psql "$1" -X -Atc "$2"; }
# Every table's row count and content digest, one line per table.
digest() {
  scalar "$1" "SELECT string_agg(t || '=' || n || ':' || left(d, 8), ' ' ORDER BY t) FROM (
      SELECT 'users' t, count(*) n, md5(coalesce(string_agg(x::text, '' ORDER BY x::text), '')) d FROM users x
      UNION ALL SELECT 'groups', count(*), md5(coalesce(string_agg(x::text, '' ORDER BY x::text), '')) FROM groups x
      UNION ALL SELECT 'group_members', count(*), md5(coalesce(string_agg(x::text, '' ORDER BY x::text), '')) FROM group_members x
      UNION ALL SELECT 'meetings', count(*), md5(coalesce(string_agg(x::text, '' ORDER BY x::text), '')) FROM meetings x
      UNION ALL SELECT 'meeting_participants', count(*), md5(coalesce(string_agg(x::text, '' ORDER BY x::text), '')) FROM meeting_participants x) s"
}
cli() { deploy/pair.sh cli "$@"; }
# `status` exits 3 while the pair is unhealthy (docs/cli-exit-codes.md): the demo shows it anyway.
status_of() { cli "$1" status || [[ $? -eq 3 ]]; }
json_field() {  # json_field NODE COMMAND FIELD: one field of `mpfailover COMMAND --json`
  cli "$1" $2 --json | python3 -c "import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print('' if v is None else v)" "$3"
}
queued() { json_field a queue transactions; }
backlog_empty() { [[ $(queued) == 0 ]]; }
role_is() { [[ $(json_field "$1" status role) == "$2" ]]; }
roles_are() { role_is a "$1" && role_is b "$2"; }
b_sees_a() { [[ $(json_field b status peer_state) == "$1" ]]; }
holder_is() { [[ $(json_field "$1" status shared_address_holder) == "$2" ]]; }
app() { deploy/pair.sh psql "$1" -U meetingplace -X -q -v ON_ERROR_STOP=1 "${@:2}"; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: timed out after ${limit}s waiting for: $what" >&2
  return 1
}
same_content() { [[ $(digest a) == "$(digest b)" ]]; }

if [[ ${1:-} == stop ]]; then
  deploy/pair.sh down
  exit 0
fi

step "1/8 installing dependencies (apt-get, Debian 12)"
deploy/install-deps.sh

step "2/8 building"
if [[ ! -f $MPF_BUILD_DIR/CMakeCache.txt ]]; then
  cmake -S . -B "$MPF_BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$MPF_BUILD_DIR" -j "$(nproc)" --target mpfailover mpfailoverd mpfailover_capture

step "3/8 standing up the pair: two hosts and a witness on a switch, two PostgreSQL servers, two daemons"
deploy/pair.sh up
wait_for 15 "node a to be active and node b standby" roles_are active standby
status_of a
echo
status_of b

step "4/8 MeetingPlace changes on the active node a appear on the standby node b"
app a <<'SQL'
INSERT INTO users (login, first_name, last_name, email, time_zone)
VALUES ('jdoe', 'Jane', 'Doe', 'jdoe@example.com', 'Europe/Paris'),
       ('rsmith', 'Rob', 'Smith', 'rsmith@example.com', 'America/New_York');
BEGIN;
INSERT INTO groups (name, description) VALUES ('sales', 'Sales team');
INSERT INTO group_members (group_id, user_id)
  SELECT g.group_id, u.user_id FROM groups g, users u WHERE g.name = 'sales';
COMMIT;
WITH m AS (
  INSERT INTO meetings (meeting_number, subject, owner_id, starts_at, duration_minutes)
  SELECT '4242', 'Quarterly review', user_id, now() + interval '1 day', 90
  FROM users WHERE login = 'jdoe' RETURNING meeting_id)
INSERT INTO meeting_participants (meeting_id, user_id, display_name, participant_role)
SELECT m.meeting_id, u.user_id, u.first_name || ' ' || u.last_name,
       CASE u.login WHEN 'jdoe' THEN 'host' ELSE 'attendee' END
FROM m, users u;
SQL
wait_for 10 "node b to hold node a's content" same_content
echo "node b, meeting 4242 and its participants:"
on b -c "SELECT m.subject, m.status, p.display_name, p.participant_role
         FROM meetings m JOIN meeting_participants p USING (meeting_id) ORDER BY 3"
echo "the application's login is read-only on the standby:"
if app b -c "INSERT INTO users (login) VALUES ('nope')" 2>&1 | sed 's/^/  /'; then
  echo "demo: node b accepted an application write while standby" >&2
  exit 1
fi

step "5/8 the link is cut; changes on node a queue up on node a (mpfailover queue)"
deploy/pair.sh cut
for i in 1 2 3; do
  app a -c "INSERT INTO users (login, first_name) VALUES ('during-cut-$i', 'Queued');
            UPDATE meetings SET subject = 'Quarterly review (moved $i)', starts_at = starts_at + interval '1 hour'
            WHERE meeting_number = '4242'"
  echo "  after change $i: $(queued) transactions waiting on node a"
done
cli a queue
[[ $(queued) -ge 3 ]] || { echo "demo: the backlog did not grow" >&2; exit 1; }

step "6/8 the link heals; the backlog drains to zero"
deploy/pair.sh heal
healed=$(date +%s.%N)
wait_for 15 "the backlog on node a to drain" backlog_empty
wait_for 10 "node b to hold node a's content" same_content
printf '  drained in %.2f s; %s transactions waiting on node a\n' "$(echo "$(date +%s.%N) - $healed" | bc)" "$(queued)"

step "7/8 node a is lost (its link goes down); manual failover on node b"
deploy/pair.sh link-down a
wait_for 20 "node b to see node a unreachable" b_sees_a unreachable
cli b failover
wait_for 10 "node b to hold the shared address" holder_is b b
echo "  shared address 198.18.0.10 is now on node b: $(deploy/pair.sh exec b ip -brief addr show | grep -o '198.18.0.10/24')"
app b -c "INSERT INTO users (login, first_name) VALUES ('after-failover', 'Written on b')"
echo "  node b takes writes: $(scalar b "SELECT login FROM users WHERE login = 'after-failover'")"
echo "  node a comes back: it sees node b active at a higher epoch and steps down"
deploy/pair.sh link-up a
wait_for 20 "node a to step down to standby" roles_are standby active
wait_for 15 "node a to receive node b's changes" same_content
status_of a

step "8/8 mpfailover verify: both databases hold the same content"
cli b verify
echo "  a: $(digest a)"
echo "  b: $(digest b)"

cat <<TXT

The pair is running: node b is active (198.18.0.12, shared address 198.18.0.10), node a standby
(198.18.0.11). Explore it:
  deploy/pair.sh cli b status           # roles, peer state, heartbeats, lag (--json for scripts)
  deploy/pair.sh cli a queue            # the backlog on a node
  deploy/pair.sh cli a switchover       # planned move of the active role back to a, no loss
  deploy/pair.sh cli b verify           # compare both databases
  deploy/pair.sh psql a                 # node a's database (try: TABLE mpfailover.node)
  deploy/pair.sh log b                  # node b's daemon log
  deploy/pair.sh cut | heal | status    # faults; deploy/pair.sh help lists them all
Stop and remove it:
  deploy/demo.sh stop
TXT

#!/usr/bin/env bash
# The README's first command: set everything up and show mpfailover working on this machine.
#   deploy/demo.sh        install dependencies, build, stand up the pair, show it working,
#                         leave it running
#   deploy/demo.sh stop   stop and remove everything the demo started
#
# The pair is two network-namespace hosts (deploy/pair.sh): node a 198.18.0.11 and node b
# 198.18.0.12, each with its own PostgreSQL 15 and mpfailoverd, replicating over port 2008
# with CurveZMQ. Failover, `queue` and `verify` arrive with later issues; the demo shows the
# equivalent facts with SQL until then.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export MPF_PAIR_DIR=${MPF_PAIR_DIR:-/tmp/mpf-pair}

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
backlog() { scalar a "SELECT count(DISTINCT txid) || ' transactions, ' || count(*) || ' rows' FROM mpfailover.change_log"; }
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
backlog_empty() { [[ $(scalar a "SELECT count(*) FROM mpfailover.change_log") == 0 ]]; }

if [[ ${1:-} == stop ]]; then
  deploy/pair.sh down
  exit 0
fi

step "1/7 installing dependencies (apt-get, Debian 12)"
deploy/install-deps.sh

step "2/7 building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target mpfailover mpfailoverd mpfailover_capture

step "3/7 standing up the pair: two hosts, two PostgreSQL servers, two daemons"
deploy/pair.sh up

step "4/7 MeetingPlace changes on node a appear on node b"
on a <<'SQL'
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

step "5/7 the link is cut; changes on node a queue up on node a"
deploy/pair.sh cut
for i in 1 2 3; do
  on a -c "INSERT INTO users (login, first_name) VALUES ('during-cut-$i', 'Queued');
           UPDATE meetings SET subject = 'Quarterly review (moved $i)', starts_at = starts_at + interval '1 hour'
           WHERE meeting_number = '4242'"
  echo "  backlog on node a: $(backlog)"
done
echo "  node b still has $(scalar b "SELECT count(*) FROM users") users; node a has $(scalar a "SELECT count(*) FROM users")"

step "6/7 the link heals; the backlog drains to zero"
deploy/pair.sh heal
healed=$(date +%s.%N)
wait_for 15 "the backlog on node a to drain" backlog_empty
wait_for 10 "node b to hold node a's content" same_content
printf '  drained in %.2f s; backlog on node a: %s\n' "$(echo "$(date +%s.%N) - $healed" | bc)" "$(backlog)"

step "7/7 both databases hold the same content (per-table row counts and digests)"
echo "  a: $(digest a)"
echo "  b: $(digest b)"
same_content && echo "  equal"

cat <<TXT

The pair is running (node a 198.18.0.11, node b 198.18.0.12). Explore it:
  deploy/pair.sh psql a                 # node a's database (try: TABLE mpfailover.change_log)
  deploy/pair.sh psql b                 # node b's database
  deploy/pair.sh log a                  # node a's daemon log
  deploy/pair.sh cut | heal | status    # faults; deploy/pair.sh help lists them all
Not yet in this build: mpfailover status/queue/verify, failover and the shared address
(issues #5-#7); see README.md "Status".
Stop and remove it:
  deploy/demo.sh stop
TXT

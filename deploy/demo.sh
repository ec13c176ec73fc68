#!/usr/bin/env bash
# The README's first command: set everything up and show mpfailover working on this machine.
#   deploy/demo.sh        install dependencies, build, start the demo, leave it running
#   deploy/demo.sh stop   stop everything the demo started and remove its files
#
# Current stage (see README "Status"): the foundation. The demo initialises the databases of
# two nodes, runs the daemon of node a, makes MeetingPlace changes on node a and shows them
# captured, transaction by transaction, in the durable change log that replication ships.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=/tmp/mpfailover-demo
port=55440
conninfo_for() { echo "host=$state/pg port=$port user=postgres dbname=$1"; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_demo() {
  if [[ -f $state/mpfailoverd-a.pid ]]; then
    kill "$(cat "$state/mpfailoverd-a.pid")" 2>/dev/null || true
  fi
  tests/support/pg_cluster.sh stop "$state/pg" 2>/dev/null || true
  rm -rf "$state"
}

if [[ ${1:-} == stop ]]; then
  stop_demo
  echo "demo stopped and removed"
  exit 0
fi

step "1/6 installing dependencies (apt-get, Debian 12)"
deploy/install-deps.sh

step "2/6 building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target mpfailover mpfailoverd mpfailover_capture
cli=$root/build/server/mpfailover
daemon=$root/build/server/mpfailoverd

step "3/6 starting PostgreSQL 15 with one database per node (a, b)"
stop_demo
mkdir -p "$state"
chmod 755 "$state"
tests/support/pg_cluster.sh start "$state/pg" "$port" >/dev/null
for node in a b; do
  psql -q "$(conninfo_for postgres)" -c "CREATE DATABASE node_$node"
  peer=$([[ $node == a ]] && echo b || echo a)
  cat >"$state/$node.conf" <<CONF
[node]
name = $node
database = $(conninfo_for "node_$node")
[peer]
name = $peer
address = 198.18.0.1$([[ $peer == a ]] && echo 1 || echo 2)
[heartbeat]
interval = 2s
[control]
socket = $state/$node.sock
CONF
  echo "node $node: config $state/$node.conf"
done

step "4/6 mpfailover init-db on both nodes (catalog, MeetingPlace schema, capture)"
for node in a b; do
  echo "\$ mpfailover --config $state/$node.conf init-db --app-schema"
  "$cli" --config "$state/$node.conf" init-db --app-schema | sed 's/^/  /'
done

step "5/6 starting mpfailoverd for node a (log: $state/mpfailoverd-a.log)"
"$daemon" --config "$state/a.conf" >"$state/mpfailoverd-a.log" 2>&1 &
echo $! >"$state/mpfailoverd-a.pid"
sleep 1
head -3 "$state/mpfailoverd-a.log" | sed 's/^/  /'

step "6/6 MeetingPlace changes on node a, captured in commit order"
psql -q "$(conninfo_for node_a)" <<'SQL'
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
UPDATE meetings SET status = 'cancelled' WHERE meeting_number = '4242';
SQL
psql "$(conninfo_for node_a)" -c "
SELECT l.txid AS source_tx, count(*) AS changes,
       string_agg(t.relation || ':' || l.op::text, ', ' ORDER BY l.seq) AS what
FROM mpfailover.change_log l JOIN mpfailover.replicated_table t USING (table_id)
GROUP BY l.txid ORDER BY max(l.seq)"
sleep 2.5
echo "daemon's latest report:"
grep Backlog "$state/mpfailoverd-a.log" | tail -1 | sed 's/^/  /'

cat <<TXT

The demo is running. Explore it:
  psql "$(conninfo_for node_a)"      # node a's database (try: TABLE mpfailover.change_log)
  psql "$(conninfo_for node_b)"      # node b's database
  tail -f $state/mpfailoverd-a.log
Stop and remove it:
  deploy/demo.sh stop
TXT

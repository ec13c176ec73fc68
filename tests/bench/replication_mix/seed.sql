-- Seed for the replication benchmark (tests/bench/replication_bench.sh): the same rows as
-- mpf_bench_capture's seed (capture_overhead.cpp), with keys md5('user' || i)::uuid etc., so the
-- pgbench scripts can name existing rows by number. Run on node a only; replication carries it
-- to node b. Variables: nusers, ngroups, nmembers, nmeetings, nparts (participants per meeting: 1
-- to nparts; psql -v).
BEGIN;
INSERT INTO users (user_id, login, first_name, last_name, email, phone, time_zone, privileges)
SELECT md5('user' || i)::uuid, 'user' || i, 'First' || i, 'Last' || i,
  'user' || i || '@example.com', '+1555' || lpad(i::text, 7, '0'),
  (ARRAY['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4],
  CASE WHEN i % 100 = 0 THEN 'attendant' ELSE 'end_user' END
FROM generate_series(0, :nusers - 1) i;
INSERT INTO groups (group_id, name, description)
SELECT md5('group' || g)::uuid, 'group' || g, 'Group number ' || g
FROM generate_series(0, :ngroups - 1) g;
INSERT INTO group_members (group_id, user_id, member_role)
SELECT md5('group' || g)::uuid, md5('user' || ((g * 37 + j * 100) % :nusers))::uuid,
  CASE WHEN j = 0 THEN 'owner' ELSE 'member' END
FROM generate_series(0, :ngroups - 1) g, generate_series(0, :nmembers - 1) j;
INSERT INTO meetings (meeting_id, meeting_number, subject, owner_id, starts_at, duration_minutes,
  recurrence, status, ports)
SELECT md5('meeting' || m)::uuid, lpad(m::text, 8, '0'), 'Meeting ' || m,
  md5('user' || (m * 7 % :nusers))::uuid, s.starts_at, 30 + 15 * (m % 4),
  CASE WHEN m % 10 = 0 THEN 'FREQ=WEEKLY;COUNT=10' END,
  CASE WHEN s.starts_at + interval '1 hour' < now() THEN 'completed'
       WHEN s.starts_at < now() THEN 'in_progress' ELSE 'scheduled' END,
  10 + m % 20
FROM generate_series(0, :nmeetings - 1) m,
  LATERAL (SELECT date_trunc('hour', now()) + (m - :nmeetings / 2) * interval '40 minutes'
           AS starts_at) s;
INSERT INTO meeting_participants (meeting_id, participant_id, user_id, display_name, email,
  participant_role)
SELECT md5('meeting' || m)::uuid, md5('participant' || m || '.' || p)::uuid,
  CASE WHEN p % 3 = 2 THEN NULL ELSE md5('user' || ((m * 13 + p * 101) % :nusers))::uuid END,
  'Participant ' || m || '.' || p, 'p' || m || '.' || p || '@example.com',
  CASE WHEN p = 1 THEN 'host' ELSE 'attendee' END
FROM generate_series(0, :nmeetings - 1) m, generate_series(1, 1 + m % :nparts) p;
-- Marks the end of the seed: replication_bench.sh waits for this row on node b.
INSERT INTO groups (group_id, name, description)
VALUES (md5('bench-marker')::uuid, 'bench-marker', 'seed');
COMMIT;

-- 30%: schedule a meeting with 1 to 4 participants (2-5 rows, one statement).
-- Variables from replication_bench.sh (pgbench -D): nusers.
\set np random(1, 4)
\set owner random(0, :nusers - 1)
\set num random(0, 99999999)
\set subj random(0, 9999)
\set mins random(0, 86399)
\set dur random(0, 3)
\set ports random(0, 19)
WITH m AS (
  INSERT INTO meetings (meeting_id, meeting_number, subject, owner_id, starts_at,
    duration_minutes, ports)
  VALUES (gen_random_uuid(), lpad(:num::text, 8, '0'),
    'Project review ' || lpad(:subj::text, 4, '0'), md5('user' || :owner)::uuid,
    date_trunc('minute', now()) + make_interval(mins => :mins), 30 + 15 * :dur, 5 + :ports)
  RETURNING meeting_id)
INSERT INTO meeting_participants (meeting_id, participant_id, user_id, display_name, email,
  participant_role)
SELECT m.meeting_id, gen_random_uuid(), CASE WHEN p.guest THEN NULL ELSE md5('user' || p.u)::uuid END,
  'Participant ' || p.n, CASE WHEN p.guest THEN NULL ELSE 'p' || p.n || '@example.com' END,
  CASE WHEN p.i = 1 THEN 'host' ELSE 'attendee' END
FROM m, (SELECT i, random() < 0.25 AS guest, floor(random() * :nusers)::int AS u,
           lpad(floor(random() * 100000)::int::text, 5, '0') AS n
         FROM generate_series(1, :np) i) p;

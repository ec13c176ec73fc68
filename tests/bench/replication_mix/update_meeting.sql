-- 30%: reschedule a meeting; a quarter of the time also add a participant, a quarter of the
-- time remove one (1-2 rows). Variables: nusers, nmeetings.
\set m random(0, :nmeetings - 1)
\set subj random(0, 9999)
\set shift random(-60, 60)
\set act random(0, 3)
\set u random(0, :nusers - 1)
BEGIN;
UPDATE meetings SET subject = 'Rescheduled review ' || lpad(:subj::text, 4, '0'),
  starts_at = starts_at + make_interval(mins => :shift), updated_at = now()
WHERE meeting_id = md5('meeting' || :m)::uuid;
\if :act = 0
INSERT INTO meeting_participants (meeting_id, participant_id, user_id, display_name, email,
  participant_role)
VALUES (md5('meeting' || :m)::uuid, gen_random_uuid(), md5('user' || :u)::uuid,
  'Participant ' || :subj, 'p' || :subj || '@example.com', 'attendee');
\elif :act = 1
DELETE FROM meeting_participants
WHERE meeting_id = md5('meeting' || :m)::uuid AND participant_id = (
  SELECT participant_id FROM meeting_participants WHERE meeting_id = md5('meeting' || :m)::uuid
  ORDER BY participant_id LIMIT 1);
\endif
COMMIT;

-- 10%: cancel a meeting (1 row). Variables: nmeetings.
\set m random(0, :nmeetings - 1)
UPDATE meetings SET status = 'cancelled', updated_at = now()
WHERE meeting_id = md5('meeting' || :m)::uuid;

-- 5%: a group change (1 row): add a member, remove one, or edit the description.
-- Variables: nusers, ngroups.
\set g random(0, :ngroups - 1)
\set u random(0, :nusers - 1)
\set act random(0, 2)
\set n random(0, 999999)
\if :act = 0
INSERT INTO group_members (group_id, user_id) VALUES (md5('group' || :g)::uuid, md5('user' || :u)::uuid)
ON CONFLICT DO NOTHING;
\elif :act = 1
DELETE FROM group_members WHERE (group_id, user_id) IN (
  SELECT group_id, user_id FROM group_members WHERE group_id = md5('group' || :g)::uuid
  ORDER BY user_id >= md5('user' || :u)::uuid DESC, user_id LIMIT 1);
\else
UPDATE groups SET description = 'Team ' || lpad(:n::text, 6, '0'), updated_at = now()
WHERE group_id = md5('group' || :g)::uuid;
\endif

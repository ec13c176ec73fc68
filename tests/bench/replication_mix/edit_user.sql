-- 25%: edit a user profile (1 row). Variables: nusers.
\set u random(0, :nusers - 1)
\set n random(0, 99999)
\set ph random(0, 9999999)
\set z random(1, 4)
UPDATE users SET first_name = 'First' || lpad(:n::text, 5, '0'),
  last_name = 'Last' || lpad(:n::text, 5, '0'), email = 'user' || lpad(:n::text, 5, '0') || '@example.com',
  phone = '+1555' || lpad(:ph::text, 7, '0'),
  time_zone = (ARRAY['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[:z],
  updated_at = now()
WHERE user_id = md5('user' || :u)::uuid;

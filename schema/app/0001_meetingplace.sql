-- MeetingPlace application data that must survive failover: user profiles, groups and
-- membership, meetings (past, present and future) and their participants.
-- Keys are UUIDs so rows created on both nodes never collide (no per-node sequences).
-- Foreign keys are DEFERRABLE so the applier may order a grouped apply freely inside one
-- transaction (docs/design.md §9).

CREATE TABLE users (
  user_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  login text NOT NULL UNIQUE,
  first_name text NOT NULL DEFAULT '',
  last_name text NOT NULL DEFAULT '',
  email text,
  phone text,
  pin_hash text,
  time_zone text NOT NULL DEFAULT 'UTC',
  language text NOT NULL DEFAULT 'en',
  privileges text NOT NULL DEFAULT 'end_user'
    CHECK (privileges IN ('end_user', 'attendant', 'contact_center', 'system_administrator',
                          'technician')),
  is_active boolean NOT NULL DEFAULT true,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE groups (
  group_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE group_members (
  group_id uuid NOT NULL REFERENCES groups ON DELETE CASCADE DEFERRABLE,
  user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE DEFERRABLE,
  member_role text NOT NULL DEFAULT 'member' CHECK (member_role IN ('member', 'owner')),
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE meetings (
  meeting_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  meeting_number text NOT NULL,
  subject text NOT NULL DEFAULT '',
  owner_id uuid NOT NULL REFERENCES users DEFERRABLE,
  starts_at timestamptz NOT NULL,
  duration_minutes integer NOT NULL DEFAULT 60 CHECK (duration_minutes > 0),
  recurrence text,              -- iCalendar RRULE, NULL for a one-off meeting
  status text NOT NULL DEFAULT 'scheduled'
    CHECK (status IN ('scheduled', 'in_progress', 'completed', 'cancelled')),
  ports integer NOT NULL DEFAULT 10 CHECK (ports > 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meetings_owner ON meetings (owner_id);
CREATE INDEX meetings_starts_at ON meetings (starts_at);

CREATE TABLE meeting_participants (
  meeting_id uuid NOT NULL REFERENCES meetings ON DELETE CASCADE DEFERRABLE,
  participant_id uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id uuid REFERENCES users ON DELETE SET NULL DEFERRABLE,  -- NULL for a guest
  display_name text NOT NULL,
  email text,
  participant_role text NOT NULL DEFAULT 'attendee'
    CHECK (participant_role IN ('attendee', 'presenter', 'host')),
  PRIMARY KEY (meeting_id, participant_id)
);
CREATE INDEX meeting_participants_user ON meeting_participants (user_id);

-- mpfailover catalog, version 7. Idempotent (IF NOT EXISTS), like every migration should be.
--
-- The pair's history on this node (`mpfailover history`): every role change, failover,
-- switchover, fencing change, skip, resync and repair, with who asked, why, the epoch and the
-- replication positions at that moment. Written by the daemon where the event happens (the CLI
-- for skip and verify --repair); never replicated: each node keeps its own account.
CREATE TABLE IF NOT EXISTS mpfailover.history (
  event_id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  node text NOT NULL,
  event text NOT NULL CHECK (event IN ('role_change', 'failover', 'switchover', 'standalone',
                                       'join', 'fencing', 'skip', 'resync', 'repair')),
  role_from text,
  role_to text,
  epoch bigint,
  who text NOT NULL,
  why text NOT NULL DEFAULT '',
  applied_from_peer text,  -- TICK/SEQ: how far this node had applied the peer's changes
  acked_by_peer text,      -- TICK/SEQ: how far the peer had acknowledged this node's changes
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS history_at ON mpfailover.history (at);

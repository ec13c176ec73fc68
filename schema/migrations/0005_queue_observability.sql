-- mpfailover catalog, version 5: what `mpfailover queue` reads straight from the database,
-- without the daemon. Idempotent (IF NOT EXISTS), like every migration should be.
--
-- Drain rate: the shipper adds the transactions each acknowledgement covers to a running total
-- in peer_ack and, at most once a second, copies the total into ack_history, which keeps 15
-- minutes (at most ~900 rows a peer, pruned by the same statement). The drain rate is the
-- total's growth over the last minute; it survives daemon restarts.
ALTER TABLE mpfailover.peer_ack
  ADD COLUMN IF NOT EXISTS acked_transactions bigint NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS mpfailover.ack_history (
  peer text NOT NULL,
  sampled_at timestamptz NOT NULL,
  tick bigint NOT NULL,
  seq bigint NOT NULL,
  acked_transactions bigint NOT NULL,   -- peer_ack.acked_transactions at sampled_at
  PRIMARY KEY (peer, sampled_at)
);

-- Source side: the last ApplyError the peer answered, i.e. the transaction its apply stopped on
-- (the first one not applied) and why. Kept after the peer recovers; it is current only while
-- the position is beyond peer_ack's. first_reported_at is when apply first stopped there.
CREATE TABLE IF NOT EXISTS mpfailover.peer_apply_error (
  peer text PRIMARY KEY,
  tick bigint NOT NULL,
  seq bigint NOT NULL,
  message text NOT NULL,
  first_reported_at timestamptz NOT NULL DEFAULT now(),
  reported_at timestamptz NOT NULL DEFAULT now()
);

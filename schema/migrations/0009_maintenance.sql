-- mpfailover catalog, version 10: maintenance mode (issue #18, docs/fencing.md).
--
-- `mpfailover maintenance on` pauses automatic failover, self-fencing and the no-active settle
-- rule on this node for planned work, without a restart; the flag is persisted with the role so
-- a restart during the work keeps it. Idempotent (IF NOT EXISTS), like every migration.
ALTER TABLE mpfailover.node
  ADD COLUMN IF NOT EXISTS maintenance boolean NOT NULL DEFAULT false;

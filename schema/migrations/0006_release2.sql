-- mpfailover catalog, version 6: the second release's catalog changes, as one version.
--
-- Two nodes pair while their catalogs are at most one version apart (replicator/versions.hpp),
-- so a release adds exactly one catalog version: its changes land here together, in four
-- sections. Every statement is idempotent (IF NOT EXISTS), like every migration should be. None
-- of it changes what crosses the wire: a node at version 5 and one at version 6 replicate.

-- ==== history.sql ====
-- (history)
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

-- ==== table_semantics.sql ====
-- Issue #12: exact table semantics on apply.
--
-- Target side: the transaction this node's apply of a peer's changes stopped on, exactly (the
-- one that failed, not the first of its apply group), and why. `mpfailover skip` accepts only
-- this position while it is beyond the applied position (mpfailover.applied_position), and
-- names it when asked to skip another. Written by the applier after the failed group is rolled
-- back; stale once the applied position has passed it.
CREATE TABLE IF NOT EXISTS mpfailover.apply_failure (
  origin text PRIMARY KEY,
  tick bigint NOT NULL,
  seq bigint NOT NULL,
  message text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now()
);

-- Apply runs with session_replication_role = replica, as PostgreSQL's own apply worker does, so
-- ordinary triggers and foreign-key actions do not fire twice (what they did on the source
-- arrives as its own changes). Foreign-key checks are internal triggers too and would not fire
-- either: the applier checks the rows it wrote against their parents itself and raises this
-- error, worded as PostgreSQL words its own, when one has no parent here.
CREATE OR REPLACE FUNCTION mpfailover.foreign_key_violation(constraint_name text, child text,
                                                            parent text, key_text text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'foreign_key_violation',
    MESSAGE = format('insert or update on table "%s" violates foreign key constraint "%s"',
                     child, constraint_name),
    DETAIL = format('Key (%s) is not present in table "%s".', key_text, parent);
END
$$;

-- The same for a row deleted here that a row of this node's still references (a row the source
-- never had: the source's own cascades arrive as their own changes).
CREATE OR REPLACE FUNCTION mpfailover.referenced_row_deleted(constraint_name text, parent text,
                                                             child text, key_text text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'foreign_key_violation',
    MESSAGE = format('update or delete on table "%s" violates foreign key constraint "%s" '
                     'on table "%s"', parent, constraint_name, child),
    DETAIL = format('Key (%s) is still referenced from table "%s".', key_text, child);
END
$$;

-- ==== change_log_txid_index.sql ====
-- An index on change_log.txid.
--
-- Every statement that reads the log selects a txid range first: a window is the transactions
-- visible in tick t's snapshot and not in tick t-1's, so all of them have
-- pg_snapshot_xmin(prev) <= txid < pg_snapshot_xmax(cur); the trim deletes txid <
-- pg_snapshot_xmax of the acknowledged tick. Without an index each of these scanned the whole
-- backlog, so a window read at the head and every trim cost more the longer the peer had been
-- away (measured with tests/bench/realistic_bench.sh, see docs/benchmarks.md). The capture
-- trigger (replicator/pgmodule) maintains this index itself with index_insert, since it
-- heap-inserts without the executor; it refuses any index it cannot maintain (expression,
-- partial, unique).
CREATE INDEX IF NOT EXISTS change_log_txid ON mpfailover.change_log (txid);

-- ==== maintenance.sql ====
-- Maintenance mode (issue #18, docs/fencing.md).
--
-- `mpfailover maintenance on` pauses automatic failover, self-fencing and the no-active settle
-- rule on this node for planned work, without a restart; the flag is persisted with the role so
-- a restart during the work keeps it. Idempotent (IF NOT EXISTS), like every migration.
ALTER TABLE mpfailover.node
  ADD COLUMN IF NOT EXISTS maintenance boolean NOT NULL DEFAULT false;


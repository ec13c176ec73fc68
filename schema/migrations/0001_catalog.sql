-- mpfailover catalog, version 1. Everything the replicator owns lives in schema "mpfailover",
-- never among the application's tables.

-- This node, as init-db recorded it. The daemon refuses to start when node.name in its config
-- differs: a config pointed at the wrong database must not ship that database's changes.
CREATE TABLE mpfailover.node (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  name text NOT NULL,
  role text NOT NULL DEFAULT 'standby',
  epoch bigint NOT NULL DEFAULT 0,
  role_changed_at timestamptz NOT NULL DEFAULT now()
);

-- The tables whose changes are captured. table_id is local to this node; the wire maps tables
-- by name. columns/key_columns record the definition the capture trigger was generated for.
CREATE TABLE mpfailover.replicated_table (
  table_id integer PRIMARY KEY,
  relation text NOT NULL UNIQUE,
  key_columns text[] NOT NULL,
  columns text[] NOT NULL,
  column_types text[] NOT NULL,
  active boolean NOT NULL DEFAULT true,
  installed_at timestamptz NOT NULL DEFAULT now()
);

-- Change numbers. CACHE 1 (the default) is required: nextval order must be real-time order
-- across sessions, which the reader's per-window ordering relies on (docs/design.md §1).
CREATE SEQUENCE mpfailover.change_seq CACHE 1;

-- The capture log: one row per changed row, written by the capture trigger
-- (replicator/pgmodule) in the same transaction as the change. Column order is fixed: the
-- trigger forms tuples in this order. txid is the top-level transaction; rows of a rolled-back
-- transaction vanish with it.
CREATE TABLE mpfailover.change_log (
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  seq bigint NOT NULL DEFAULT nextval('mpfailover.change_seq'),
  table_id integer NOT NULL,
  op "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
  hlc bigint NOT NULL,        -- conflict timestamp: origin's clock, microseconds since Unix epoch
  origin text NOT NULL,       -- the node where the change was made
  key text[] NOT NULL,        -- primary key values, in key_columns order, text form
  image text[]                -- the whole new row (I, U) in columns order; NULL for D
) WITH (fillfactor = 100, autovacuum_vacuum_scale_factor = 0.05);
-- No indexes, constraints or triggers on change_log, on purpose: the capture trigger
-- heap-inserts into it without the executor (it checks there are no indexes). The reader scans
-- it per window; it stays small because acknowledged windows are trimmed.

-- Snapshot windows (docs/design.md §1, as PgQ ticks). Window t holds the transactions visible in
-- tick t's snapshot and not in tick t-1's. Tick 0 is the origin.
CREATE TABLE mpfailover.tick (
  tick_id bigint PRIMARY KEY,
  snapshot pg_snapshot NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO mpfailover.tick (tick_id, snapshot) VALUES (0, pg_current_snapshot());

-- Target side: the last origin position applied here, written in the same transaction as the
-- applied rows (docs/design.md §2).
CREATE TABLE mpfailover.applied_position (
  origin text PRIMARY KEY,
  tick bigint NOT NULL,
  seq bigint NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- Source side: the last position the peer acknowledged (after its commit). Log rows up to it
-- may be trimmed.
CREATE TABLE mpfailover.peer_ack (
  peer text PRIMARY KEY,
  tick bigint NOT NULL,
  seq bigint NOT NULL,
  acked_at timestamptz NOT NULL DEFAULT now()
);

-- Changes overridden by reconciliation, skipped by an operator, or repaired by verify.
CREATE TABLE mpfailover.conflict (
  conflict_id bigserial PRIMARY KEY,
  detected_at timestamptz NOT NULL DEFAULT now(),
  relation text NOT NULL,
  key text[] NOT NULL,
  kind text NOT NULL,          -- 'lww', 'skip', 'repair'
  winner_origin text,
  winner_hlc bigint,
  loser_origin text,
  loser_hlc bigint,
  loser_op "char",
  loser_image text[],
  reason text NOT NULL
);
CREATE INDEX conflict_detected_at ON mpfailover.conflict (detected_at);

CREATE FUNCTION mpfailover.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('mpfailover.applying', true) = 'on' THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'TRUNCATE of replicated table "%.%" is not replicated', TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING HINT = 'Use DELETE, which is captured and replicated to the peer.';
END
$$;

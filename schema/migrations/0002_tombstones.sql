-- mpfailover catalog, version 2: tombstones (docs/design.md §4).
--
-- A deleted row leaves its version here, so that a change from the peer that is older than the
-- delete (a late update, or one made concurrently during a partition) does not bring the row
-- back. Local deletes are recorded by the capture trigger in the deleting transaction (txid set:
-- their conflict timestamp is that transaction's commit time, the same number the peer receives);
-- deletes applied from the peer carry the peer's timestamp in hlc (txid NULL).
CREATE TABLE mpfailover.tombstone (
  relation text NOT NULL,
  key text[] NOT NULL,
  origin text NOT NULL,
  txid xid8,
  hlc bigint NOT NULL,
  deleted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (relation, key)
);
CREATE INDEX tombstone_deleted_at ON mpfailover.tombstone (deleted_at);

-- A tombstone's conflict timestamp, microseconds since the Unix epoch.
CREATE FUNCTION mpfailover.tombstone_hlc(t mpfailover.tombstone) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce((extract(epoch FROM pg_xact_commit_timestamp(
                     (t.txid::text::numeric % 4294967296)::text::xid)) * 1000000)::bigint,
                  t.hlc)
$$;

-- The overridden local row of a conflict, as JSON (the overridden remote change keeps its image
-- in loser_image).
ALTER TABLE mpfailover.conflict ADD COLUMN loser_row jsonb;
CREATE INDEX conflict_relation ON mpfailover.conflict (relation, detected_at);

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

-- mpfailover catalog, version 4: persisted role (heartbeat/role_machine.cpp).
--
-- mpfailover.node.role and .epoch existed since version 1 but nothing ruled by them. From here
-- the daemon reads them at start: a node whose row is not yet initialized takes node.initial_role
-- once; afterwards the persisted role and epoch rule (a promotion is stored here, with its new
-- epoch, before the application's writes open). standalone_from is the role `mpfailover join`
-- returns to.
ALTER TABLE mpfailover.node
  ADD COLUMN IF NOT EXISTS initialized boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS standalone_from text NOT NULL DEFAULT 'standby'
    CHECK (standalone_from IN ('active', 'standby'));
ALTER TABLE mpfailover.node DROP CONSTRAINT IF EXISTS node_role_check;
ALTER TABLE mpfailover.node ADD CONSTRAINT node_role_check
  CHECK (role IN ('active', 'standby', 'standalone'));

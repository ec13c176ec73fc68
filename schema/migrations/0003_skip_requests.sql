-- mpfailover catalog, version 3: operator skips.
--
-- When apply stops on a transaction this node cannot apply, `mpfailover skip POSITION --reason`
-- records the operator's decision here. The applier then leaves that one transaction out, records
-- each of its changes in mpfailover.conflict (kind 'skip', with the reason), and marks the
-- request done, all in the transaction that applies what follows. Nothing is skipped otherwise.
CREATE TABLE mpfailover.skip_request (
  origin text NOT NULL,
  tick bigint NOT NULL,
  seq bigint NOT NULL,
  reason text NOT NULL CHECK (reason <> ''),
  requested_at timestamptz NOT NULL DEFAULT now(),
  requested_by text NOT NULL DEFAULT current_user,
  done_at timestamptz,
  PRIMARY KEY (origin, tick, seq)
);

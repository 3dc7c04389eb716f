-- Four eyes (DESIGN section 6). Every Admin reload is a row here: posted at
-- once ('posted') when it keeps both the Admin's and the balance's rolling
-- 24-hour sum of reloads (pending and posted) within the currency's
-- threshold, else 'pending' until a different Admin approves it ('approved',
-- then posted) or an Admin rejects it ('rejected'). Releasing a blind
-- refund and resolving an exception as recovered wait here the same way
-- (kind 'exception'). `antaca ledger verify` checks that no approval was
-- decided by the Admin who asked.
CREATE TABLE approvals (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('reload', 'exception')),
    status        text        NOT NULL CHECK (status IN ('posted', 'pending', 'approved', 'rejected')),
    account_id    bigint      REFERENCES accounts (id),     -- reload: the balance
    balance_class text        CHECK (balance_class IN ('user', 'partner')),
    exception_id  bigint      REFERENCES exceptions (id),   -- exception: the one resolved
    resolution    text        CHECK (resolution IN ('recovered', 'released')),
    currency      char(3)     NOT NULL REFERENCES currencies (code),
    amount        bigint      NOT NULL CHECK (amount > 0),
    reason        text        NOT NULL DEFAULT '',
    reference     text        NOT NULL,
    requested_by  text        NOT NULL,                     -- admin:<id>
    requested_at  timestamptz NOT NULL DEFAULT now(),
    decided_by    text,
    decided_at    timestamptz,
    posting_id    bigint      REFERENCES postings (id),
    CHECK ((kind = 'reload') = (account_id IS NOT NULL AND balance_class IS NOT NULL)),
    CHECK ((kind = 'exception') = (exception_id IS NOT NULL AND resolution IS NOT NULL)),
    CHECK ((status IN ('pending', 'posted')) = (decided_by IS NULL)),
    CHECK (decided_by IS NULL OR status = 'rejected' OR decided_by <> requested_by)
);
CREATE INDEX approvals_pending ON approvals (requested_at) WHERE status = 'pending';
CREATE INDEX approvals_window_admin ON approvals (requested_by, requested_at) WHERE kind = 'reload';
CREATE INDEX approvals_window_account ON approvals (account_id, requested_at) WHERE kind = 'reload';
-- A bank reference funds once: unique among the reloads not rejected.
CREATE UNIQUE INDEX approvals_reload_reference ON approvals (reference) WHERE kind = 'reload' AND status <> 'rejected';
-- One pending resolution per exception.
CREATE UNIQUE INDEX approvals_exception_pending ON approvals (exception_id) WHERE status = 'pending';

-- The four-eyes threshold per currency and balance class, in minor units.
-- A currency without a row takes the default: 10,000.00 for user balances,
-- 100,000.00 for partner credit/deposit balances, scaled by its exponent.
CREATE TABLE four_eyes_thresholds (
    currency      char(3) NOT NULL REFERENCES currencies (code),
    balance_class text    NOT NULL CHECK (balance_class IN ('user', 'partner')),
    threshold     bigint  NOT NULL CHECK (threshold >= 0),
    PRIMARY KEY (currency, balance_class)
);

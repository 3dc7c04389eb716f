-- Money safety on the switch's side (issue 15, DESIGN sections 5 and 6).
--
-- Program settings, each with its documented default (docs/ledger.md,
-- "Exceptions"):
--   blind_refund_limit   what one refund matched to no purchase may credit
--                        at once (minor units); the rest waits for an Admin
--                        as an exceptions row of kind blind_refund. 0.
--   standin_limit        how far below its available balance a stand-in
--                        advice (x120) may take a balance (minor units);
--                        beyond it the excess goes to exceptions
--                        receivable (standin_overdraft). 0.
--   verify_max_tries     the wrong CVC2 or expiry in a row that locks the
--                        card with code 7 by the system. 5.
--   pending_reversal_s   how long a reversal that overtook its original
--                        waits for it (seconds). 86400 (24 h).
ALTER TABLE programs
    ADD COLUMN blind_refund_limit bigint  NOT NULL DEFAULT 0 CHECK (blind_refund_limit BETWEEN 0 AND 999999999999),
    ADD COLUMN standin_limit      bigint  NOT NULL DEFAULT 0 CHECK (standin_limit BETWEEN 0 AND 999999999999),
    ADD COLUMN verify_max_tries   integer NOT NULL DEFAULT 5 CHECK (verify_max_tries BETWEEN 1 AND 100),
    ADD COLUMN pending_reversal_s integer NOT NULL DEFAULT 86400 CHECK (pending_reversal_s BETWEEN 1 AND 2678400);

-- Per-program overrides of the clearing tolerance and the hold expiry of an
-- MCC range (inclusive, 4 digits). Without a row, the defaults of
-- cardhost.DefaultMCCRules apply (the schemes' published tolerances; 7 days,
-- 31 for lodging and vehicle rental).
CREATE TABLE program_mcc_rules (
    program_id    bigint  NOT NULL REFERENCES programs (id),
    mcc_low       char(4) NOT NULL CHECK (mcc_low ~ '^[0-9]{4}$'),
    mcc_high      char(4) NOT NULL CHECK (mcc_high ~ '^[0-9]{4}$' AND mcc_high >= mcc_low),
    tolerance_bp  integer CHECK (tolerance_bp BETWEEN 0 AND 10000),  -- basis points of the hold; NULL: default
    hold_days     integer CHECK (hold_days BETWEEN 1 AND 60),         -- NULL: default
    PRIMARY KEY (program_id, mcc_low)
);

-- Wrong CVC2 or expiry in a row, per card (like pin_tries).
ALTER TABLE cards ADD COLUMN verify_tries integer NOT NULL DEFAULT 0;

-- What of a hold was posted to exceptions receivable when it was placed (a
-- stand-in advice beyond the available balance and the stand-in limit):
-- its clearing captures the rest only, so the excess is counted once.
ALTER TABLE holds ADD COLUMN excepted bigint NOT NULL DEFAULT 0 CHECK (excepted >= 0);

-- A reversal whose original is not (yet) journaled is acknowledged and kept
-- here, keyed as the original's data elements would find it (match_key,
-- cardhost.pendingKeys), until the transaction that journals the original
-- applies it (status applied) or its window passes.
CREATE TABLE pending_reversals (
    id           bigserial   PRIMARY KEY,
    match_key    text        NOT NULL,
    journal_id   bigint,                          -- the reversal's own journal row
    reversal_ref text        NOT NULL UNIQUE,     -- the reversal's request key: a repeat is the same
    replacement  bigint,                          -- DE95 / CMF remaining amount; NULL: full
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    applied_at   timestamptz,
    applied_to   bigint                           -- the original's journal row
);
CREATE INDEX pending_reversals_key ON pending_reversals (match_key) WHERE status = 'pending';

-- A capture may resolve a hold that had expired (its clearing came late):
-- the capture posting names it like any other.

-- Refunds matched to their purchase (DE90/DE56) credit at most what its
-- capture took less what was refunded (holds.refunded, reversals) and
-- credited (holds.credited, refunds) before; each such credit posting names
-- the hold in refunds_hold. An exception's ref makes its opening idempotent
-- (a refund cleared by two messages waits once).
ALTER TABLE holds ADD COLUMN credited bigint NOT NULL DEFAULT 0 CHECK (credited >= 0);
ALTER TABLE exceptions ADD COLUMN ref text;
CREATE UNIQUE INDEX exceptions_ref ON exceptions (ref) WHERE ref IS NOT NULL;

-- Losses made visible (DESIGN section 6). An over-capture, the capture of an
-- expired hold beyond the available balance, a stand-in advice beyond the
-- available balance and the program's stand-in limit: each is acknowledged,
-- the scheme settlement account carries the full amount, and the excess is
-- posted to the currency's exceptions receivable account (kind 'exceptions')
-- instead of a user or partner balance. Each such excess is one row of
-- exceptions, open until an Admin resolves it (recovered, charged back,
-- written off; losses land in the currency's 'losses' account).
-- A blind refund beyond the program's blind-refund limit posts nothing yet:
-- it waits here (receivable 0) until an Admin releases or rejects it.
-- `antaca ledger verify` checks: the exceptions account's balance equals
-- minus the sum of receivable over open exceptions, per currency.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN
    ('user', 'partner_credit', 'partner_deposit', 'partner', 'settlement', 'funding', 'credit_usage', 'exceptions', 'losses'));
DROP INDEX accounts_internal;
CREATE UNIQUE INDEX accounts_internal ON accounts (kind, currency)
    WHERE kind IN ('settlement', 'funding', 'credit_usage', 'exceptions', 'losses');

CREATE TABLE exceptions (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('over_capture', 'expired_hold_capture', 'standin_overdraft', 'blind_refund')),
    status       text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'recovered', 'charged_back', 'written_off', 'released', 'rejected')),
    currency     char(3)     NOT NULL REFERENCES currencies (code),
    amount       bigint      NOT NULL CHECK (amount > 0),            -- the excess (blind refund: what waits)
    receivable   bigint      NOT NULL DEFAULT 0 CHECK (receivable >= 0), -- what was posted to exceptions receivable
    card_id      bigint,
    account_id   bigint,                                             -- the user balance concerned
    program_id   bigint,
    hold_id      bigint,
    posting_id   bigint,                                             -- the posting that opened it (journal link)
    journal_id   bigint,                                             -- the auth_journal row of the message
    detail       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolved_by  text,                                               -- admin who asked
    approved_by  text,                                               -- second admin (four eyes) where required
    resolution_posting_id bigint,
    CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE INDEX exceptions_open ON exceptions (created_at) WHERE status = 'open';
CREATE INDEX exceptions_card ON exceptions (card_id) WHERE card_id IS NOT NULL;

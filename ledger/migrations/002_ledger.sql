-- The double-entry ledger. Every amount is bigint minor units of the row's
-- currency. Balances are derived state kept in accounts rows for the hot
-- path and checked against entries and holds by `antaca ledger verify`.

CREATE TABLE partners (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    notify_email text       NOT NULL DEFAULT '',   -- low-balance notifications go here
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Accounts: the reference document's "balances".
--   user            a user's balance (owner_user_id set); many per user.
--   partner_credit  partner credit balance, one per program and currency.
--   partner_deposit partner deposit balance, one per program and currency.
--   partner         partner (company, FX) balance, one per partner and currency.
--   settlement      internal: scheme settlement, one per currency.
--   funding         internal: money coming in (reloads), one per currency.
--   credit_usage    internal: partner credit/deposit consumed by clearing, one per currency.
CREATE TABLE accounts (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('user', 'partner_credit', 'partner_deposit', 'partner', 'settlement', 'funding', 'credit_usage')),
    currency      char(3)     NOT NULL REFERENCES currencies (code),
    partner_id    bigint      REFERENCES partners (id),
    program_id    bigint,                -- partner_credit / partner_deposit (FK added with programs)
    user_id       bigint,                -- user accounts (FK added with users)
    state         text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'blocked', 'closed')),
    balance       bigint      NOT NULL DEFAULT 0,   -- sum of entries
    held          bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),   -- sum of open holds
    low_threshold bigint,                -- notify once when available crosses below it
    below_threshold boolean   NOT NULL DEFAULT false,
    negative_flag boolean     NOT NULL DEFAULT false, -- an advice pushed it below zero
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CHECK (kind NOT IN ('partner_credit', 'partner_deposit') OR program_id IS NOT NULL),
    CHECK (kind NOT IN ('partner_credit', 'partner_deposit', 'partner') OR partner_id IS NOT NULL)
);
CREATE UNIQUE INDEX accounts_internal ON accounts (kind, currency) WHERE kind IN ('settlement', 'funding', 'credit_usage');
CREATE UNIQUE INDEX accounts_program ON accounts (program_id, currency) WHERE kind IN ('partner_credit', 'partner_deposit');
CREATE UNIQUE INDEX accounts_partner ON accounts (partner_id, currency) WHERE kind = 'partner';
CREATE INDEX accounts_user ON accounts (user_id) WHERE user_id IS NOT NULL;

-- A posting is one balanced movement of money; its entries sum to zero per
-- currency. ref is unique per kind so a retried reload posts once.
CREATE TABLE postings (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL,   -- reload, capture, fx_adjustment, advice, ...
    ref        text,                   -- idempotency reference of the caller
    memo       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, ref)
);

CREATE TABLE entries (
    id         bigserial PRIMARY KEY,
    posting_id bigint    NOT NULL REFERENCES postings (id),
    account_id bigint    NOT NULL REFERENCES accounts (id),
    currency   char(3)   NOT NULL REFERENCES currencies (code),
    amount     bigint    NOT NULL CHECK (amount <> 0)    -- positive credits the account
);
CREATE INDEX entries_posting ON entries (posting_id);
CREATE INDEX entries_account ON entries (account_id, id);

-- Holds: authorised amounts not yet cleared. One row per authorisation;
-- it reserves amount on the user account (when we hold user balances) and on
-- the program's partner credit/deposit account. available = balance - held.
-- A hold resolves once: open -> captured | released | expired.
CREATE TABLE holds (
    id                 bigserial   PRIMARY KEY,
    user_account_id    bigint      REFERENCES accounts (id),
    partner_account_id bigint      REFERENCES accounts (id),
    currency           char(3)     NOT NULL REFERENCES currencies (code),
    original_amount    bigint      NOT NULL CHECK (original_amount >= 0),
    amount             bigint      NOT NULL CHECK (amount >= 0),      -- still held while open
    status             text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'captured', 'released', 'expired')),
    ref                text,       -- the authorisation that placed it
    captured_amount    bigint,
    capture_posting_id bigint      REFERENCES postings (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    resolved_at        timestamptz,
    CHECK (user_account_id IS NOT NULL OR partner_account_id IS NOT NULL),
    CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE INDEX holds_open_expiry ON holds (expires_at) WHERE status = 'open';
CREATE UNIQUE INDEX holds_ref ON holds (ref) WHERE ref IS NOT NULL;

-- Outbox: notifications written in the same transaction as the change that
-- caused them, delivered by a worker (SMTP) and marked sent.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL,     -- low_balance
    recipient   text        NOT NULL,
    subject     text        NOT NULL,
    body        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    next_at     timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_pending ON outbox (next_at) WHERE sent_at IS NULL;

-- Card host: programs, users (the partners' customers), cards and their
-- history. Owned by package cardhost; kept with the ledger's migrations so
-- one forward-only sequence describes the database.

CREATE TABLE programs (
    id                 bigserial   PRIMARY KEY,
    partner_id         bigint      NOT NULL REFERENCES partners (id),
    name               text        NOT NULL,
    bin_low            text        NOT NULL CHECK (bin_low ~ '^[0-9]{6,11}$'),
    bin_high           text        NOT NULL CHECK (bin_high ~ '^[0-9]{6,11}$' AND length(bin_high) = length(bin_low) AND bin_high >= bin_low),
    currency           char(3)     NOT NULL REFERENCES currencies (code),
    card_types         text[]      NOT NULL,
    digital_first      boolean     NOT NULL DEFAULT false,
    funding            text        NOT NULL CHECK (funding IN ('partner_credit', 'partner_deposit')),
    remote_url         text        NOT NULL DEFAULT '',
    remote_timeout_ms  integer     NOT NULL DEFAULT 1500 CHECK (remote_timeout_ms > 0),
    stand_in_approve   boolean     NOT NULL DEFAULT false,
    partner_account_id bigint      REFERENCES accounts (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, name)
);

ALTER TABLE accounts ADD FOREIGN KEY (program_id) REFERENCES programs (id);

CREATE TABLE users (
    id           bigserial   PRIMARY KEY,
    partner_id   bigint      NOT NULL REFERENCES partners (id),
    program_id   bigint      NOT NULL REFERENCES programs (id),
    external_ref text        NOT NULL,      -- the partner's own id for the user
    name         text        NOT NULL DEFAULT '',
    email        text        NOT NULL DEFAULT '',
    kyc_status   text        NOT NULL DEFAULT 'pending' CHECK (kyc_status IN ('pending', 'verified', 'rejected')),
    kyc_by       text        NOT NULL DEFAULT '' CHECK (kyc_by IN ('', 'antaca', 'partner', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, external_ref)
);

ALTER TABLE accounts ADD FOREIGN KEY (user_id) REFERENCES users (id);

CREATE TABLE cards (
    id             bigserial   PRIMARY KEY,
    program_id     bigint      NOT NULL REFERENCES programs (id),
    user_id        bigint      NOT NULL REFERENCES users (id),
    account_id     bigint      NOT NULL REFERENCES accounts (id),   -- for life
    type           text        NOT NULL CHECK (type IN ('virtual', 'physical', 'digital_first')),
    state          text        NOT NULL CHECK (state IN ('active', 'ordered', 'inactive', 'removed')),
    lock_code      smallint    NOT NULL DEFAULT 0 CHECK (lock_code BETWEEN 0 AND 8),
    expiry         char(4)     NOT NULL,                            -- YYMM
    pan_enc        bytea       NOT NULL,                            -- AES-256-GCM
    pan_lookup     bytea       NOT NULL UNIQUE,                     -- HMAC-SHA-256 of the PAN
    pan_first6     char(6)     NOT NULL,
    pan_last4      char(4)     NOT NULL,
    cvc_generation integer     NOT NULL DEFAULT 0,
    pvv            text        NOT NULL DEFAULT '',
    pin_tries      integer     NOT NULL DEFAULT 0,
    printed_at     timestamptz,                                     -- digital-first: when the plastic copy was ordered
    version        bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cards_account ON cards (account_id);
CREATE INDEX cards_user ON cards (user_id);

-- Every change of a card: who, when, why.
CREATE TABLE card_events (
    id          bigserial   PRIMARY KEY,
    card_id     bigint      NOT NULL REFERENCES cards (id),
    at          timestamptz NOT NULL DEFAULT now(),
    actor_kind  text        NOT NULL CHECK (actor_kind IN ('user', 'partner', 'admin', 'scheme', 'acquirer', 'system')),
    actor_id    text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    lock_code   smallint,
    detail      text        NOT NULL DEFAULT ''
);
CREATE INDEX card_events_card ON card_events (card_id, id);

-- Async card creation jobs (POST …/cards/virtual/async).
CREATE TABLE card_jobs (
    id         bigserial   PRIMARY KEY,
    account_id bigint      NOT NULL REFERENCES accounts (id),
    status     text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    card_id    bigint      REFERENCES cards (id),
    error      text        NOT NULL DEFAULT '',
    actor_kind text        NOT NULL,
    actor_id   text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz
);

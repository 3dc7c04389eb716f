-- The authorisation journal: every ISO 8583 request the switch decided and
-- the answer it gave, for disputes and duplicate detection. The PAN is kept
-- encrypted (AES-GCM, same key as cards) and masked.
--
-- card_id, hold_id and original_id carry no foreign keys: the journal is an
-- append-only record written on the authorisation hot path, where each key
-- check cost a look-up per row (measured: half of Postgres' time under
-- load). `antaca ledger verify` checks instead that every journal hold
-- exists and every hold has its journal row.

CREATE TABLE auth_journal (
    id                bigserial   PRIMARY KEY,
    created_at        timestamptz NOT NULL DEFAULT now(),
    profile           text        NOT NULL,
    mti               char(4)     NOT NULL,
    class             smallint    NOT NULL,
    acquirer_id       text        NOT NULL DEFAULT '',
    stan              text        NOT NULL DEFAULT '',
    transmission_time text        NOT NULL DEFAULT '',
    local_time        text        NOT NULL DEFAULT '',             -- DE12: the CMF's DE56/DE90 name the original by it
    rrn               text        NOT NULL DEFAULT '',
    card_id           bigint,
    pan_enc           bytea,
    pan_masked        text        NOT NULL DEFAULT '',
    processing_code   text        NOT NULL DEFAULT '',
    amount            bigint      NOT NULL DEFAULT 0,
    currency          text        NOT NULL DEFAULT '',
    billing_amount    bigint      NOT NULL DEFAULT 0,
    billing_currency  text        NOT NULL DEFAULT '',
    merchant          text        NOT NULL DEFAULT '',
    reason            text        NOT NULL,
    approval_code     text        NOT NULL DEFAULT '',
    hold_id           bigint,
    available         bigint,
    available_currency text       NOT NULL DEFAULT '',
    original_id       bigint,     -- completion/reversal: the authorisation it refers to
    detail            text        NOT NULL DEFAULT ''
);
-- Duplicate detection: same acquirer, STAN, transmission date-time, RRN and
-- message type is the same request; the database catches it, not memory.
CREATE UNIQUE INDEX auth_journal_dedup ON auth_journal (acquirer_id, stan, transmission_time, rrn, mti);
-- Finding an original by RRN + STAN + acquirer when DE90 is absent.
CREATE INDEX auth_journal_original ON auth_journal (acquirer_id, rrn, stan);
-- Finding an original by the CMF's original data (iso2003): STAN and local
-- date-time rather than transmission date-time.
CREATE INDEX auth_journal_original_local ON auth_journal (acquirer_id, stan, local_time);
CREATE INDEX auth_journal_card ON auth_journal (card_id, id);
CREATE INDEX auth_journal_hold ON auth_journal (hold_id) WHERE hold_id IS NOT NULL;

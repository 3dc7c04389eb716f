-- Partner events and their webhook delivery (issue 19).
--
-- An event is written in the same transaction as the change it reports:
-- card changes, exceptions and a partner balance crossing its low threshold
-- by the triggers below; authorisations, clearings, refunds and reversals
-- are the auth_journal rows themselves, turned into events after their
-- commit by a worker that follows the journal with a cursor
-- (webhook_cursors), so the authorisation hot path writes nothing more.
-- Each event is delivered to each of its partner's endpoints subscribed to
-- its type: one webhook_deliveries row per (endpoint, event), retried with
-- backoff, each try a webhook_attempts row.

CREATE TABLE webhook_endpoints (
    id              bigserial   PRIMARY KEY,
    partner_id      bigint      NOT NULL REFERENCES partners (id),
    url             text        NOT NULL,
    event_types     text[]      NOT NULL,            -- '{*}': every type
    secret          text        NOT NULL,            -- signs deliveries (shown once)
    previous_secret text,                            -- during a rotation: still signs (second v1=)
    previous_until  timestamptz,
    status          text        NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'failing', 'disabled')),
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_partner ON webhook_endpoints (partner_id);

CREATE SEQUENCE webhook_event_seq;

CREATE TABLE webhook_events (
    id         text        PRIMARY KEY,   -- evt_<n>; journal events evt_auth_<journal id>, evt_clr_, evt_ref_, evt_rev_
    partner_id bigint      NOT NULL REFERENCES partners (id),
    type       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    data       jsonb       NOT NULL
);
CREATE INDEX webhook_events_partner ON webhook_events (partner_id, created_at);

CREATE TABLE webhook_deliveries (
    id           bigserial   PRIMARY KEY,
    endpoint_id  bigint      NOT NULL REFERENCES webhook_endpoints (id),
    event_id     text        NOT NULL REFERENCES webhook_events (id),
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id          bigserial   PRIMARY KEY,
    delivery_id bigint      NOT NULL REFERENCES webhook_deliveries (id),
    at          timestamptz NOT NULL DEFAULT now(),
    status      integer,               -- HTTP status; NULL when none came
    error       text,
    ms          integer     NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- The journal position up to which every row has been turned into events.
CREATE TABLE webhook_cursors (
    name     text   PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO webhook_cursors (name, position) SELECT 'auth_journal', coalesce(max(id), 0) FROM auth_journal;

-- webhook_emit records one event and queues it for every endpoint of its
-- partner that takes its type. A repeated id changes nothing.
CREATE FUNCTION webhook_emit(p_partner bigint, p_type text, p_id text, p_data jsonb, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (id, partner_id, type, created_at, data)
        VALUES (coalesce(p_id, 'evt_' || nextval('webhook_event_seq')), p_partner, p_type, coalesce(p_at, now()), p_data)
        ON CONFLICT (id) DO NOTHING
        RETURNING id INTO p_id;
    IF p_id IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, event_id)
        SELECT e.id, p_id FROM webhook_endpoints e
        WHERE e.partner_id = p_partner AND e.status <> 'disabled' AND (p_type = ANY (e.event_types) OR '*' = ANY (e.event_types))
        ON CONFLICT DO NOTHING;
END
$$;

-- Card changes: created, locked (with who), unlocked, activated, removed.
CREATE FUNCTION webhook_card_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
    c      record;
BEGIN
    v_type := CASE
        WHEN NEW.action LIKE 'issue\_%' THEN 'card.created'
        WHEN NEW.action IN ('lock', 'lock_outside') THEN 'card.locked'
        WHEN NEW.action = 'unlock' THEN 'card.unlocked'
        WHEN NEW.action = 'activate' THEN 'card.activated'
        WHEN NEW.action = 'remove' THEN 'card.removed'
    END;
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT k.id, k.user_id, k.account_id, k.program_id, k.type, k.state, k.lock_code, k.pan_first6 || '…' || k.pan_last4 AS masked,
           p.partner_id
      INTO c FROM cards k JOIN programs p ON p.id = k.program_id WHERE k.id = NEW.card_id;
    PERFORM webhook_emit(c.partner_id, v_type, NULL, jsonb_strip_nulls(jsonb_build_object(
        'cardId', c.id, 'customerId', c.user_id, 'balanceId', c.account_id, 'programId', c.program_id,
        'maskedPan', c.masked, 'cardType', c.type, 'state', c.state,
        'lockCode', CASE WHEN v_type = 'card.locked' THEN NEW.lock_code END,
        'by', CASE WHEN v_type IN ('card.locked', 'card.unlocked', 'card.removed') THEN jsonb_build_object(
            'kind', CASE NEW.actor_kind WHEN 'user' THEN 'cardholder' ELSE NEW.actor_kind END,
            'id', NULLIF(NEW.actor_id, ''),
            'reason', CASE
                WHEN NEW.actor_kind = 'system' AND NEW.lock_code = 6 THEN 'pin_tries'
                WHEN NEW.actor_kind = 'system' AND NEW.lock_code = 7 THEN 'cvc2_tries'
                WHEN NEW.action = 'lock_outside' THEN 'outside' END,
            'detail', NULLIF(NEW.detail, '')) END)), NEW.at);
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_card_event AFTER INSERT ON card_events
    FOR EACH ROW EXECUTE FUNCTION webhook_card_event();

-- An exception opened (migration 011): its program's partner hears of it.
CREATE FUNCTION webhook_exception_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_partner bigint;
BEGIN
    SELECT p.partner_id INTO v_partner FROM programs p
     WHERE p.id = coalesce(NEW.program_id, (SELECT k.program_id FROM cards k WHERE k.id = NEW.card_id));
    IF v_partner IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM webhook_emit(v_partner, 'exception.opened', NULL, jsonb_strip_nulls(jsonb_build_object(
        'exceptionId', NEW.id, 'kind', NEW.kind, 'amount', NEW.amount, 'currency', NEW.currency,
        'cardId', NEW.card_id, 'balanceId', NEW.account_id, 'programId', NEW.program_id, 'holdId', NEW.hold_id)), NEW.created_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_exception_event AFTER INSERT ON exceptions
    FOR EACH ROW EXECUTE FUNCTION webhook_exception_event();

-- A partner credit/deposit balance crossing its low threshold downwards
-- (below_threshold turned on by accounts_low_threshold, migration 002):
-- one balance.low, edge-triggered like the e-mail.
CREATE FUNCTION webhook_balance_low() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_emit(NEW.partner_id, 'balance.low', NULL, jsonb_build_object(
        'balanceId', NEW.id, 'programId', NEW.program_id, 'kind', NEW.kind, 'currency', NEW.currency,
        'available', NEW.balance - NEW.held, 'balance', NEW.balance, 'held', NEW.held, 'threshold', NEW.low_threshold), now());
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_balance_low AFTER UPDATE ON accounts
    FOR EACH ROW
    WHEN (NEW.below_threshold AND NOT OLD.below_threshold AND NEW.kind IN ('partner_credit', 'partner_deposit'))
    EXECUTE FUNCTION webhook_balance_low();

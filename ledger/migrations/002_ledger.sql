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
    kind       text        NOT NULL,   -- reload, capture, ...
    ref        text,                   -- idempotency reference of the caller
    hold_id    bigint,                 -- capture: the hold it resolved (FK below)
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

-- At most one capture posting per hold, enforced by the schema as well as by
-- the UPDATE … WHERE status = 'open' that resolves it.
ALTER TABLE postings ADD FOREIGN KEY (hold_id) REFERENCES holds (id);
CREATE UNIQUE INDEX postings_hold ON postings (hold_id) WHERE hold_id IS NOT NULL;

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

-- Low-balance threshold: whenever balance, held or low_threshold change,
-- below_threshold follows available < low_threshold, and the change that
-- turns it on (the downward crossing) writes one outbox row to the partner's
-- notify_email in the same transaction. While the account stays below, no
-- further notification; going back to >= threshold re-arms it.
CREATE FUNCTION accounts_low_threshold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_email text;
    v_exp   int;
    v_avail bigint := NEW.balance - NEW.held;
BEGIN
    IF NEW.low_threshold IS NULL OR v_avail >= NEW.low_threshold THEN
        NEW.below_threshold := false;
        RETURN NEW;
    END IF;
    IF OLD.below_threshold THEN
        NEW.below_threshold := true;
        RETURN NEW;
    END IF;
    NEW.below_threshold := true;
    SELECT p.notify_email INTO v_email FROM partners p WHERE p.id = NEW.partner_id;
    IF coalesce(v_email, '') <> '' THEN
        SELECT c.exponent INTO v_exp FROM currencies c WHERE c.code = NEW.currency;
        INSERT INTO outbox (kind, recipient, subject, body) VALUES (
            'low_balance', v_email,
            format('Antaca: low balance on %s account %s (%s)', NEW.kind, NEW.id, NEW.currency),
            format(E'The available amount of %s account %s is %s %s, below its threshold of %s %s.\r\n'
                   'Balance %s, held by open authorisations %s.\r\n',
                   NEW.kind, NEW.id,
                   round(v_avail::numeric / power(10::numeric, v_exp), v_exp), NEW.currency,
                   round(NEW.low_threshold::numeric / power(10::numeric, v_exp), v_exp), NEW.currency,
                   round(NEW.balance::numeric / power(10::numeric, v_exp), v_exp),
                   round(NEW.held::numeric / power(10::numeric, v_exp), v_exp)));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_low_threshold
    BEFORE UPDATE OF balance, held, low_threshold ON accounts
    FOR EACH ROW
    WHEN (NEW.low_threshold IS NOT NULL OR OLD.low_threshold IS NOT NULL)
    EXECUTE FUNCTION accounts_low_threshold();

-- ledger_place_holds places many holds in one transaction: the batched
-- authorisation statement of DESIGN.md section 6. Spec i is
-- (p_user[i], p_partner[i], p_currency[i], p_amount[i], p_ref[i], p_force[i]);
-- an account id of 0 or NULL means none. It locks every account of the batch
-- in ascending id order first (so concurrent batches never deadlock on
-- accounts), then decides the specs in the given order, each independently,
-- keeping balances in memory, and writes each touched account once at the
-- end. One row per spec: o_outcome is ok, duplicate (o_hold_* is the hold
-- placed earlier under the same ref), insufficient_funds,
-- insufficient_partner_funds, not_found, not_active, currency_mismatch or
-- invalid_amount; o_account_id/o_available are the account that decided and
-- its available amount after the decision (the user account when present).
-- p_force[i] (an advice) skips the state and funds checks; an account it
-- takes below zero gets negative_flag.
CREATE FUNCTION ledger_place_holds(
    p_user     bigint[],
    p_partner  bigint[],
    p_currency text[],
    p_amount   bigint[],
    p_ref      text[],
    p_force    boolean[],
    p_expires  timestamptz
) RETURNS TABLE (
    o_idx              int,
    o_outcome          text,
    o_account_id       bigint,
    o_available        bigint,
    o_hold_id          bigint,
    o_user_account_id  bigint,
    o_partner_account_id bigint,
    o_currency         text,
    o_original_amount  bigint,
    o_amount           bigint,
    o_status           text,
    o_ref              text,
    o_created_at       timestamptz,
    o_expires_at       timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    n       int := coalesce(array_length(p_amount, 1), 0);
    ids     bigint[];
    a_id    bigint[] := '{}';
    a_bal   bigint[] := '{}';
    a_held  bigint[] := '{}';
    a_held0 bigint[] := '{}';
    a_neg   boolean[] := '{}';
    a_cur   text[] := '{}';
    a_state text[] := '{}';
    r       record;
    h       holds%ROWTYPE;
    i       int;
    u       int;
    p       int;
    amt     bigint;
    force   boolean;
BEGIN
    SELECT array_agg(DISTINCT x ORDER BY x) INTO ids
      FROM unnest(p_user || p_partner) AS x WHERE x > 0;
    FOR r IN SELECT a.id, a.balance, a.held, a.currency, a.state
               FROM accounts a WHERE a.id = ANY (ids) ORDER BY a.id FOR UPDATE LOOP
        a_id    := a_id || r.id;
        a_bal   := a_bal || r.balance;
        a_held  := a_held || r.held;
        a_held0 := a_held0 || r.held;
        a_neg   := a_neg || false;
        a_cur   := a_cur || r.currency::text;
        a_state := a_state || r.state;
    END LOOP;

    FOR i IN 1 .. n LOOP
        o_idx := i;
        o_outcome := NULL; o_account_id := NULL; o_available := NULL;
        o_hold_id := NULL; o_user_account_id := NULL; o_partner_account_id := NULL;
        o_currency := NULL; o_original_amount := NULL; o_amount := NULL;
        o_status := NULL; o_ref := NULL; o_created_at := NULL; o_expires_at := NULL;
        amt := p_amount[i];
        force := coalesce(p_force[i], false);
        u := NULL;
        p := NULL;
        IF coalesce(p_user[i], 0) > 0 THEN
            u := array_position(a_id, p_user[i]);
        END IF;
        IF coalesce(p_partner[i], 0) > 0 THEN
            p := array_position(a_id, p_partner[i]);
        END IF;

        h := NULL;
        IF p_ref[i] IS NOT NULL THEN
            SELECT * INTO h FROM holds WHERE holds.ref = p_ref[i];
        END IF;
        IF h.id IS NOT NULL THEN
            o_outcome := 'duplicate';
        ELSIF coalesce(p_user[i], 0) <= 0 AND coalesce(p_partner[i], 0) <= 0 THEN
            o_outcome := 'not_found';
        ELSIF coalesce(p_user[i], 0) > 0 AND u IS NULL THEN
            o_outcome := 'not_found'; o_account_id := p_user[i];
        ELSIF coalesce(p_partner[i], 0) > 0 AND p IS NULL THEN
            o_outcome := 'not_found'; o_account_id := p_partner[i];
        ELSIF amt IS NULL OR amt <= 0 THEN
            o_outcome := 'invalid_amount';
        ELSIF u IS NOT NULL AND a_cur[u] IS DISTINCT FROM p_currency[i] THEN
            o_outcome := 'currency_mismatch'; o_account_id := a_id[u];
        ELSIF p IS NOT NULL AND a_cur[p] IS DISTINCT FROM p_currency[i] THEN
            o_outcome := 'currency_mismatch'; o_account_id := a_id[p];
        ELSIF NOT force AND u IS NOT NULL AND a_state[u] <> 'active' THEN
            o_outcome := 'not_active'; o_account_id := a_id[u];
        ELSIF NOT force AND p IS NOT NULL AND a_state[p] <> 'active' THEN
            o_outcome := 'not_active'; o_account_id := a_id[p];
        ELSIF NOT force AND u IS NOT NULL AND a_bal[u] - a_held[u] < amt THEN
            o_outcome := 'insufficient_funds'; o_account_id := a_id[u];
            o_available := a_bal[u] - a_held[u];
        ELSIF NOT force AND p IS NOT NULL AND a_bal[p] - a_held[p] < amt THEN
            o_outcome := 'insufficient_partner_funds'; o_account_id := a_id[p];
            o_available := a_bal[p] - a_held[p];
        ELSE
            INSERT INTO holds (user_account_id, partner_account_id, currency, original_amount, amount, ref, expires_at)
            VALUES (a_id[u], a_id[p], p_currency[i], amt, amt, p_ref[i], p_expires)
            ON CONFLICT (ref) WHERE ref IS NOT NULL DO NOTHING
            RETURNING * INTO h;
            IF h.id IS NULL THEN
                -- Another transaction placed this ref between our look-up
                -- and the insert; it has committed now.
                SELECT * INTO h FROM holds WHERE holds.ref = p_ref[i];
                o_outcome := 'duplicate';
            ELSE
                o_outcome := 'ok';
                IF u IS NOT NULL THEN
                    a_held[u] := a_held[u] + amt;
                    IF a_bal[u] - a_held[u] < 0 THEN a_neg[u] := true; END IF;
                END IF;
                IF p IS NOT NULL THEN
                    a_held[p] := a_held[p] + amt;
                    IF a_bal[p] - a_held[p] < 0 THEN a_neg[p] := true; END IF;
                END IF;
            END IF;
        END IF;

        IF o_outcome IN ('ok', 'duplicate') THEN
            o_hold_id := h.id; o_user_account_id := h.user_account_id;
            o_partner_account_id := h.partner_account_id; o_currency := h.currency;
            o_original_amount := h.original_amount; o_amount := h.amount; o_status := h.status;
            o_ref := h.ref; o_created_at := h.created_at; o_expires_at := h.expires_at;
            IF u IS NOT NULL THEN
                o_account_id := a_id[u]; o_available := a_bal[u] - a_held[u];
            ELSIF p IS NOT NULL THEN
                o_account_id := a_id[p]; o_available := a_bal[p] - a_held[p];
            END IF;
        ELSIF o_available IS NULL AND u IS NOT NULL THEN
            o_available := a_bal[u] - a_held[u];
        END IF;
        RETURN NEXT;
    END LOOP;

    UPDATE accounts a
       SET held = v.held, negative_flag = a.negative_flag OR v.neg
      FROM unnest(a_id, a_held, a_held0, a_neg) AS v (id, held, held0, neg)
     WHERE a.id = v.id AND (v.held <> v.held0 OR (v.neg AND NOT a.negative_flag));
END
$$;

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
    currency           char(3)     NOT NULL,   -- equals its accounts' currency (checked on placing, and by verify)
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
-- accounts), looks up the batch's refs once, decides the specs in the given
-- order in memory, each independently, then inserts the new holds in one
-- statement and writes each touched account once. One row per spec:
-- o_outcome is ok, duplicate (o_hold_* is the hold placed earlier under the
-- same ref, in an earlier batch or earlier in this one), insufficient_funds,
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
    -- the batch's accounts, locked, by position
    a_id    bigint[] := '{}';
    a_bal   bigint[] := '{}';
    a_held  bigint[] := '{}';
    a_held0 bigint[] := '{}';
    a_neg   boolean[] := '{}';
    a_cur   text[] := '{}';
    a_state text[] := '{}';
    -- holds that already exist under the batch's refs
    d_ref   text[];
    d_rows  holds[];
    -- holds to insert, by position j
    i_id    bigint[] := '{}';
    i_u     bigint[] := '{}';
    i_p     bigint[] := '{}';
    i_upos  int[] := '{}';
    i_ppos  int[] := '{}';
    i_cur   text[] := '{}';
    i_amt   bigint[] := '{}';
    i_ref   text[] := '{}';
    i_lost  holds[] := '{}';     -- set when another transaction won the ref
    -- per spec: outcome, deciding account, available, and which hold
    s_out   text[] := '{}';
    s_acc   bigint[] := '{}';
    s_av    bigint[] := '{}';
    s_new   int[] := '{}';       -- position in i_* (new or in-batch duplicate)
    s_old   int[] := '{}';       -- position in d_rows (earlier duplicate)
    got     bigint[];
    r       record;
    h       holds;
    i       int;
    j       int;
    k       int;
    u       int;
    p       int;
    amt     bigint;
    force   boolean;
    outcome text;
    acc     bigint;
    av      bigint;
BEGIN
    SELECT array_agg(DISTINCT x ORDER BY x) INTO ids
      FROM unnest(p_user || p_partner) AS x WHERE x > 0;
    -- The statements that look rows up by arrays run through EXECUTE, so
    -- they are planned for the tables as they are now: a generic plan
    -- cached while holds or accounts were small would scan them whole.
    FOR r IN EXECUTE 'SELECT a.id, a.balance, a.held, a.currency, a.state
               FROM accounts a WHERE a.id = ANY ($1) ORDER BY a.id FOR UPDATE' USING ids LOOP
        a_id    := a_id || r.id;
        a_bal   := a_bal || r.balance;
        a_held  := a_held || r.held;
        a_held0 := a_held0 || r.held;
        a_neg   := a_neg || false;
        a_cur   := a_cur || r.currency::text;
        a_state := a_state || r.state;
    END LOOP;
    EXECUTE 'SELECT array_agg(x.ref), array_agg(x) FROM holds x WHERE x.ref = ANY ($1)'
       INTO d_ref, d_rows USING p_ref;

    FOR i IN 1 .. n LOOP
        amt := p_amount[i];
        force := coalesce(p_force[i], false);
        u := NULL; p := NULL; j := NULL; k := NULL; acc := NULL; av := NULL;
        IF coalesce(p_user[i], 0) > 0 THEN
            u := array_position(a_id, p_user[i]);
        END IF;
        IF coalesce(p_partner[i], 0) > 0 THEN
            p := array_position(a_id, p_partner[i]);
        END IF;
        IF p_ref[i] IS NOT NULL THEN
            k := array_position(d_ref, p_ref[i]);
            IF k IS NULL THEN
                j := array_position(i_ref, p_ref[i]);
            END IF;
        END IF;

        IF k IS NOT NULL OR j IS NOT NULL THEN
            outcome := 'duplicate';
        ELSIF coalesce(p_user[i], 0) <= 0 AND coalesce(p_partner[i], 0) <= 0 THEN
            outcome := 'not_found';
        ELSIF coalesce(p_user[i], 0) > 0 AND u IS NULL THEN
            outcome := 'not_found'; acc := p_user[i];
        ELSIF coalesce(p_partner[i], 0) > 0 AND p IS NULL THEN
            outcome := 'not_found'; acc := p_partner[i];
        ELSIF amt IS NULL OR amt <= 0 THEN
            outcome := 'invalid_amount';
        ELSIF u IS NOT NULL AND a_cur[u] IS DISTINCT FROM p_currency[i] THEN
            outcome := 'currency_mismatch'; acc := a_id[u];
        ELSIF p IS NOT NULL AND a_cur[p] IS DISTINCT FROM p_currency[i] THEN
            outcome := 'currency_mismatch'; acc := a_id[p];
        ELSIF NOT force AND u IS NOT NULL AND a_state[u] <> 'active' THEN
            outcome := 'not_active'; acc := a_id[u];
        ELSIF NOT force AND p IS NOT NULL AND a_state[p] <> 'active' THEN
            outcome := 'not_active'; acc := a_id[p];
        ELSIF NOT force AND u IS NOT NULL AND a_bal[u] - a_held[u] < amt THEN
            outcome := 'insufficient_funds'; acc := a_id[u]; av := a_bal[u] - a_held[u];
        ELSIF NOT force AND p IS NOT NULL AND a_bal[p] - a_held[p] < amt THEN
            outcome := 'insufficient_partner_funds'; acc := a_id[p]; av := a_bal[p] - a_held[p];
        ELSE
            outcome := 'ok';
            i_id   := i_id || nextval('holds_id_seq');
            i_u    := i_u || a_id[u];
            i_p    := i_p || a_id[p];
            i_upos := i_upos || u;
            i_ppos := i_ppos || p;
            i_cur  := i_cur || p_currency[i];
            i_amt  := i_amt || amt;
            i_ref  := i_ref || p_ref[i];
            i_lost := i_lost || NULL::holds;
            j := array_length(i_id, 1);
            IF u IS NOT NULL THEN
                a_held[u] := a_held[u] + amt;
                IF a_bal[u] - a_held[u] < 0 THEN a_neg[u] := true; END IF;
            END IF;
            IF p IS NOT NULL THEN
                a_held[p] := a_held[p] + amt;
                IF a_bal[p] - a_held[p] < 0 THEN a_neg[p] := true; END IF;
            END IF;
        END IF;
        IF outcome IN ('ok', 'duplicate') THEN
            IF u IS NOT NULL THEN
                acc := a_id[u]; av := a_bal[u] - a_held[u];
            ELSIF p IS NOT NULL THEN
                acc := a_id[p]; av := a_bal[p] - a_held[p];
            END IF;
        ELSIF av IS NULL AND u IS NOT NULL THEN
            av := a_bal[u] - a_held[u];
        END IF;
        s_out := s_out || outcome;
        s_acc := s_acc || acc;
        s_av  := s_av || av;
        s_new := s_new || j;
        s_old := s_old || k;
    END LOOP;

    IF array_length(i_id, 1) > 0 THEN
        -- A plain INSERT first: ON CONFLICT costs a speculative insertion
        -- per row (an index probe and an extra WAL record), about a tenth
        -- of this function's CPU, for a conflict that almost never
        -- happens. When it does, the subtransaction rolls back and the
        -- statement is repeated with ON CONFLICT; ids are not reused.
        BEGIN
            INSERT INTO holds (id, user_account_id, partner_account_id, currency, original_amount, amount, ref, expires_at)
            SELECT v.id, v.u, v.p, v.cur, v.amt, v.amt, v.ref, p_expires
              FROM unnest(i_id, i_u, i_p, i_cur, i_amt, i_ref) AS v (id, u, p, cur, amt, ref);
            got := i_id;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO holds (id, user_account_id, partner_account_id, currency, original_amount, amount, ref, expires_at)
                SELECT v.id, v.u, v.p, v.cur, v.amt, v.amt, v.ref, p_expires
                  FROM unnest(i_id, i_u, i_p, i_cur, i_amt, i_ref) AS v (id, u, p, cur, amt, ref)
                ON CONFLICT (ref) WHERE ref IS NOT NULL DO NOTHING
                RETURNING id)
            SELECT array_agg(ins.id) INTO got FROM ins;
        END;
        IF coalesce(array_length(got, 1), 0) < array_length(i_id, 1) THEN
            -- Another transaction placed some of these refs after our
            -- look-up (on other accounts, or we would have waited for it);
            -- those are duplicates and hold nothing here.
            FOR j IN 1 .. array_length(i_id, 1) LOOP
                CONTINUE WHEN i_id[j] = ANY (got);
                SELECT * INTO h FROM holds x WHERE x.ref = i_ref[j];
                i_lost[j] := h;
                IF i_upos[j] IS NOT NULL THEN a_held[i_upos[j]] := a_held[i_upos[j]] - i_amt[j]; END IF;
                IF i_ppos[j] IS NOT NULL THEN a_held[i_ppos[j]] := a_held[i_ppos[j]] - i_amt[j]; END IF;
            END LOOP;
        END IF;
    END IF;

    EXECUTE 'UPDATE accounts a
       SET held = v.held, negative_flag = a.negative_flag OR v.neg
      FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::boolean[]) AS v (id, held, held0, neg)
     WHERE a.id = v.id AND (v.held <> v.held0 OR (v.neg AND NOT a.negative_flag))'
     USING a_id, a_held, a_held0, a_neg;

    FOR i IN 1 .. n LOOP
        o_idx := i; o_outcome := s_out[i]; o_account_id := s_acc[i]; o_available := s_av[i];
        o_hold_id := NULL; o_user_account_id := NULL; o_partner_account_id := NULL;
        o_currency := NULL; o_original_amount := NULL; o_amount := NULL;
        o_status := NULL; o_ref := NULL; o_created_at := NULL; o_expires_at := NULL;
        h := NULL;
        IF s_old[i] IS NOT NULL THEN
            h := d_rows[s_old[i]];
        ELSIF s_new[i] IS NOT NULL AND (i_lost[s_new[i]]).id IS NOT NULL THEN
            h := i_lost[s_new[i]];
            o_outcome := 'duplicate';
        ELSIF s_new[i] IS NOT NULL THEN
            j := s_new[i];
            o_hold_id := i_id[j]; o_user_account_id := i_u[j]; o_partner_account_id := i_p[j];
            o_currency := i_cur[j]; o_original_amount := i_amt[j]; o_amount := i_amt[j];
            o_status := 'open'; o_ref := i_ref[j]; o_created_at := now(); o_expires_at := p_expires;
        END IF;
        IF h.id IS NOT NULL THEN
            o_hold_id := h.id; o_user_account_id := h.user_account_id;
            o_partner_account_id := h.partner_account_id; o_currency := h.currency;
            o_original_amount := h.original_amount; o_amount := h.amount; o_status := h.status;
            o_ref := h.ref; o_created_at := h.created_at; o_expires_at := h.expires_at;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

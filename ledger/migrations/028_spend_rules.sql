-- Spend rules (issue 17): a partner's or an admin's controls on a card, a
-- user balance or a program: merchant categories and countries allowed or
-- blocked, channels (card present, card not present, ATM, contactless)
-- blocked, and velocity limits (an amount and/or a count per transaction,
-- calendar UTC day, ISO week, month or lifetime). The card host reads a program's active rules with
-- the program (its cache) and applies them in Go (cardhost/pipeline.go,
-- "spend rules"): no cost on the hot path where there are none.
CREATE TABLE spend_rules (
    id          bigserial   PRIMARY KEY,
    program_id  bigint      NOT NULL REFERENCES programs (id),   -- the program the target belongs to
    scope       text        NOT NULL CHECK (scope IN ('program', 'balance', 'card')),
    target_id   bigint      NOT NULL,                            -- programs.id, accounts.id or cards.id
    kind        text        NOT NULL CHECK (kind IN ('mcc', 'country', 'channel', 'velocity')),
    mode        text        NOT NULL CHECK (mode IN ('allow', 'block', 'limit')),
    vals        text[]      NOT NULL CHECK (cardinality(vals) <= 500),
    period      text        CHECK (period IN ('transaction', 'day', 'week', 'month', 'lifetime')),
    max_amount  bigint      CHECK (max_amount >= 0),   -- minor units of the program's currency
    max_count   int         CHECK (max_count >= 0),
    active      boolean     NOT NULL DEFAULT true,
    version     int         NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    CHECK (kind <> 'channel' OR mode = 'block'),
    CHECK ((kind = 'velocity') = (mode = 'limit')),
    CHECK (kind = 'velocity' OR cardinality(vals) >= 1),
    CHECK ((kind = 'velocity') = (period IS NOT NULL)),
    CHECK (kind <> 'velocity' OR max_amount IS NOT NULL OR max_count IS NOT NULL)
);
CREATE INDEX spend_rules_program ON spend_rules (program_id) WHERE active;
CREATE INDEX spend_rules_target ON spend_rules (scope, target_id);

-- Every version of every rule, as it was set, by whom and when: the rule's
-- history (GET …/spend-rules/{id}/history). Written in the transaction
-- that sets the version.
CREATE TABLE spend_rule_versions (
    rule_id    bigint      NOT NULL REFERENCES spend_rules (id),
    version    int         NOT NULL,
    mode       text        NOT NULL,
    vals       text[]      NOT NULL,
    max_amount bigint,
    max_count  int,
    active     boolean     NOT NULL,
    actor      text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

-- Velocity counters: one row per (rule, calendar UTC period start), the
-- amount and count charged by the approvals in the period. An
-- authorisation batch locks the rows it needs (FOR UPDATE, ordered by
-- rule and period) after the user accounts and before the partner rows
-- (DESIGN section 6), checks them in Go and adds its approvals in its own
-- transaction: two switch instances serialise on the row, so a limit is
-- never exceeded.
CREATE TABLE spend_counters (
    rule_id      bigint      NOT NULL REFERENCES spend_rules (id),
    period_start timestamptz NOT NULL,
    amount       bigint      NOT NULL DEFAULT 0,
    count        int         NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, period_start)
);

-- What each approval charged, by hold: a hold released by a reversal or
-- expired gives its charge back (released set by the trigger below; the
-- batch reads a counter as charged less released). The trigger writes
-- only this hold's own rows, so a reversal takes no counter lock and the
-- global lock order holds.
CREATE TABLE spend_counter_holds (
    hold_id      bigint      NOT NULL,
    rule_id      bigint      NOT NULL,
    period_start timestamptz NOT NULL,
    amount       bigint      NOT NULL,
    released     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (hold_id, rule_id)
);
CREATE INDEX spend_counter_holds_released ON spend_counter_holds (rule_id, period_start) WHERE released;

CREATE FUNCTION spend_counter_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE spend_counter_holds SET released = true WHERE hold_id = NEW.id AND NOT released;
    RETURN NULL;
END $$;

CREATE TRIGGER holds_spend_counter_release AFTER UPDATE OF status ON holds
    FOR EACH ROW WHEN (OLD.status = 'open' AND NEW.status IN ('released', 'expired'))
    EXECUTE FUNCTION spend_counter_release();

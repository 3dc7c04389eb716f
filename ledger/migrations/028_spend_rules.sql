-- Spend rules (issue 17): a partner's or an admin's controls on a card, a
-- user balance or a program: merchant categories and countries allowed or
-- blocked, and channels (card present, card not present, ATM,
-- contactless) blocked. The card host reads a program's active rules with
-- the program (its cache) and applies them in Go (cardhost/pipeline.go,
-- "spend rules"): no cost on the hot path where there are none.
CREATE TABLE spend_rules (
    id          bigserial   PRIMARY KEY,
    program_id  bigint      NOT NULL REFERENCES programs (id),   -- the program the target belongs to
    scope       text        NOT NULL CHECK (scope IN ('program', 'balance', 'card')),
    target_id   bigint      NOT NULL,                            -- programs.id, accounts.id or cards.id
    kind        text        NOT NULL CHECK (kind IN ('mcc', 'country', 'channel')),
    mode        text        NOT NULL CHECK (mode IN ('allow', 'block')),
    vals        text[]      NOT NULL CHECK (cardinality(vals) BETWEEN 1 AND 500),
    active      boolean     NOT NULL DEFAULT true,
    version     int         NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL,
    CHECK (kind <> 'channel' OR mode = 'block')
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
    active     boolean     NOT NULL,
    actor      text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

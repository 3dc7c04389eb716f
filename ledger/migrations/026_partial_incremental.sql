-- Issue 17: partial approval, incremental authorisations, multiple
-- completions (docs/ledger.md "Partial, incremental, multiple completions").
--
-- approved_amount: a partial approval's amount in DE4's currency (NULL when
-- the whole amount was approved), so that a duplicate request gets the same
-- DE4/DE6 again.
ALTER TABLE auth_journal ADD COLUMN approved_amount bigint;

-- A hold completed in parts: each completion that is not the last carves a
-- part (a hold of its own, parent_id naming the authorisation's hold) out of
-- what the hold still holds and captures it; parts_taken is what the parts
-- took out of it, tolerance_used what they charged beyond that, so that the
-- MCC tolerance applies once to the whole (original amount).
ALTER TABLE holds ADD COLUMN parent_id bigint;
ALTER TABLE holds ADD COLUMN parts_taken bigint NOT NULL DEFAULT 0 CHECK (parts_taken >= 0);
ALTER TABLE holds ADD COLUMN tolerance_used bigint NOT NULL DEFAULT 0 CHECK (tolerance_used >= 0);
CREATE INDEX holds_parent ON holds (parent_id) WHERE parent_id IS NOT NULL;

-- Incremental authorisations: each raises its hold by amount (original and
-- held); a reversal of the incremental gives back at most that amount, once.
CREATE TABLE hold_increments (
    ref        text        PRIMARY KEY,     -- the incremental request's journal ref
    hold_id    bigint      NOT NULL,
    amount     bigint      NOT NULL CHECK (amount > 0),
    released   bigint      NOT NULL DEFAULT 0 CHECK (released >= 0 AND released <= amount),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hold_increments_hold ON hold_increments (hold_id);

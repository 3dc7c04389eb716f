-- Velocity counters hold what they count (issue 17): a release (a full or
-- partial reversal, an expiry) is folded into its counter row, updated in
-- place, instead of being summed from an ever-growing set of released
-- rows at every authorisation (migration 028's spend_counter_holds.released).
--
-- A release cannot update the counter row itself: it runs after the
-- partner rows are locked (ledger release, ExpireHolds, the batches'
-- releaseHolds), and DESIGN section 6 locks counters before partner rows.
-- The trigger therefore appends the release to spend_counter_releases
-- (insert only, no lock on the counter); the next authorisation that
-- locks the counter (ledger.LockSpendCounters) deletes the counter's
-- queued releases and subtracts them from the row. The queue of a
-- counter holds the releases since its last authorisation, never its
-- history. A release not yet committed is not seen and waits for the
-- next fold: the counter then shows more than was spent, never less.

-- given: what of the hold's charge was given back so far; counted: the
-- charge counted one approval (an incremental's charge to a rule added
-- after its hold counts none).
ALTER TABLE spend_counter_holds
    ADD COLUMN given   bigint  NOT NULL DEFAULT 0 CHECK (given >= 0),
    ADD COLUMN counted boolean NOT NULL DEFAULT true;

CREATE TABLE spend_counter_releases (
    id           bigserial   PRIMARY KEY,
    rule_id      bigint      NOT NULL,
    period_start timestamptz NOT NULL,
    amount       bigint      NOT NULL CHECK (amount >= 0),
    count        int         NOT NULL CHECK (count >= 0)
);
CREATE INDEX spend_counter_releases_counter ON spend_counter_releases (rule_id, period_start);

-- What migration 028 kept apart is folded now.
UPDATE spend_counters c SET amount = c.amount - s.amount, count = c.count - s.n
    FROM (SELECT rule_id, period_start, sum(amount) AS amount, count(*) AS n FROM spend_counter_holds
        WHERE released GROUP BY rule_id, period_start) s
    WHERE c.rule_id = s.rule_id AND c.period_start = s.period_start;
UPDATE spend_counter_holds SET given = amount WHERE released;
DROP INDEX spend_counter_holds_released;

-- A hold that gives money back gives its charges back down to what it
-- still spends: what it holds (0 once released or expired) plus what its
-- parts captured. A completion in parts moves money from the hold to its
-- parts and gives nothing back; an increment's charge is given back by
-- its reversal (it lowers the hold). The approval's count is given back
-- when the hold resolves without capturing anything.
CREATE OR REPLACE FUNCTION spend_counter_release() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    spent bigint := CASE WHEN NEW.status = 'open' THEN NEW.amount ELSE 0 END + NEW.parts_taken;
    gone  boolean := NEW.status <> 'open';
    c     record;
    give  bigint;
    n     int;
BEGIN
    FOR c IN SELECT rule_id, period_start, amount - given AS outstanding, counted FROM spend_counter_holds
            WHERE hold_id = NEW.id AND NOT released LOOP
        give := c.outstanding - least(c.outstanding, spent);
        n := CASE WHEN gone AND c.counted AND NEW.parts_taken = 0 THEN 1 ELSE 0 END;
        UPDATE spend_counter_holds SET given = given + give, released = gone WHERE hold_id = NEW.id AND rule_id = c.rule_id;
        IF give > 0 OR n > 0 THEN
            INSERT INTO spend_counter_releases (rule_id, period_start, amount, count) VALUES (c.rule_id, c.period_start, give, n);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

DROP TRIGGER holds_spend_counter_release ON holds;
CREATE TRIGGER holds_spend_counter_release AFTER UPDATE OF status, amount ON holds
    FOR EACH ROW WHEN (OLD.status = 'open' AND (NEW.status IN ('released', 'expired') OR (NEW.status = 'open' AND NEW.amount < OLD.amount)))
    EXECUTE FUNCTION spend_counter_release();

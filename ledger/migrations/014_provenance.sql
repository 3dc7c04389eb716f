-- Where money comes from (DESIGN section 6). Every posting records its
-- source kind, the actor who caused it and the reference that vouches for
-- it; `antaca ledger verify` fails on a posting that raises the sum of user
-- and partner balances without an allowed source, actor and reference.
--   partner_reload     a partner's reload over /secure (actor partner:<id>,
--                      reference: the partner's, unique per partner)
--   admin_reload       an Admin's reload with reason and bank reference,
--                      four eyes above the threshold (approvals, 015)
--   exception_release  a blind refund released from the exceptions queue
--                      by two Admins
--   bootstrap          the operator's seed outside the API (ledger.Reload:
--                      the demo, the load test, tests)
--   capture, refund, credit, reversal, ...   the switch's postings: their
--                      source is their kind (uncredit: reversal), their
--                      actor 'switch', their reference the posting's ref,
--                      filled in by the trigger below when the writer names
--                      none, so the switch's SQL needs no change.
-- A posting of kind 'reload' gets no default: whoever posts it must say
-- where the money came from.
ALTER TABLE postings ADD COLUMN source text;
ALTER TABLE postings ADD COLUMN actor text;
ALTER TABLE postings ADD COLUMN source_ref text;

CREATE FUNCTION postings_default_source() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind <> 'reload' THEN
        NEW.source := CASE NEW.kind WHEN 'uncredit' THEN 'reversal' ELSE NEW.kind END;
        NEW.actor := coalesce(NEW.actor, 'switch');
        NEW.source_ref := coalesce(NEW.source_ref, NEW.ref);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER postings_default_source
    BEFORE INSERT ON postings
    FOR EACH ROW
    WHEN (NEW.source IS NULL)
    EXECUTE FUNCTION postings_default_source();

-- Postings written before this migration: the switch's get their default;
-- reloads were the operator's (no API source was recorded then).
UPDATE postings SET source = CASE kind WHEN 'uncredit' THEN 'reversal' WHEN 'reload' THEN 'bootstrap' ELSE kind END,
    actor = CASE kind WHEN 'reload' THEN 'migration-014' ELSE 'switch' END,
    source_ref = coalesce(ref, 'posting-' || id);

-- Bounds per program (DESIGN section 6), in minor units of the program's
-- currency; NULL takes the default, scaled by the currency's exponent
-- (ledger.ProgramBounds): one reload of a user balance 100,000.00; a user
-- balance 1,000,000.00; one reload of the partner credit/deposit balance
-- 10,000,000.00; that balance 1,000,000,000.00; never above ledger.MaxAmount
-- (per operation) and ledger.MaxBalance (per balance).
ALTER TABLE programs ADD COLUMN max_reload bigint CHECK (max_reload BETWEEN 1 AND 999999999999);
ALTER TABLE programs ADD COLUMN max_user_balance bigint CHECK (max_user_balance BETWEEN 1 AND 999999999999);
ALTER TABLE programs ADD COLUMN max_partner_reload bigint CHECK (max_partner_reload BETWEEN 1 AND 999999999999);
ALTER TABLE programs ADD COLUMN max_partner_balance bigint CHECK (max_partner_balance BETWEEN 1 AND 999999999999);

-- The authorisation hot path, made cheaper (issue 6, measured with
-- `make bench`; figures in README "Throughput").
--
-- Holds are decided in Go on the account rows the batch locks (ledger
-- package, placeholds.go) and written with one insert and one update; the
-- plpgsql function that did this spent about a third of its time in array
-- handling of its own.
DROP FUNCTION ledger_place_holds(bigint[], bigint[], text[], bigint[], text[], boolean[], timestamptz);

-- A batch inserts its new holds without looking their refs up first: the
-- unique index holds_ref catches a repeated one. A declined spec inserts
-- nothing, so its ref is checked by this function, which fails the same
-- way (unique_violation on holds_ref) when a hold has it already.
CREATE FUNCTION ledger_refs_free(p_refs text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM holds WHERE ref = ANY (p_refs)) THEN
        RAISE EXCEPTION 'a hold exists under one of these refs'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'holds_ref', TABLE = 'holds';
    END IF;
END
$$;

-- A hold's accounts are locked FOR UPDATE by the transaction that inserts
-- it, so the key checks (a FOR KEY SHARE look-up per account per hold)
-- only repeated what the insert already knew; accounts are never deleted
-- (they close), which the trigger below makes a rule. `antaca ledger
-- verify` checks that every hold's accounts exist (hold_account_missing).
ALTER TABLE holds DROP CONSTRAINT holds_user_account_id_fkey;
ALTER TABLE holds DROP CONSTRAINT holds_partner_account_id_fkey;

CREATE FUNCTION accounts_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account % is never deleted: close it', OLD.id USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_no_delete();

-- Every look-up of an original names the acquirer and the STAN, the first
-- two columns of auth_journal_dedup, so that index serves them; the two
-- indexes that repeated that prefix cost an index insertion per journal
-- row each. The hold index served only `ledger verify`, which can scan.
DROP INDEX auth_journal_original;
DROP INDEX auth_journal_original_local;
DROP INDEX auth_journal_hold;

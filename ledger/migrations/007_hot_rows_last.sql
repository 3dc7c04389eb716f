-- A batch of holds reads the accounts other than users' (the partner
-- credit/deposit account of a program above all) without locking them and
-- updates them last, just before its commit (ledger.HoldBatch): the update
-- changes a row only while its state is as read and its available covers
-- the approvals decided on it, and this function fails the statement when
-- a row did not (another batch, a reload or a block came between). The
-- batch then rolls back to its savepoint, locks those rows and decides
-- again.
CREATE FUNCTION ledger_accounts_allow(p_updated int, p_expected int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_updated <> p_expected THEN
        RAISE EXCEPTION '% of % accounts no longer allow the holds decided on them', p_expected - p_updated, p_expected
            USING ERRCODE = 'serialization_failure', CONSTRAINT = 'ledger_accounts_allow', TABLE = 'accounts';
    END IF;
END
$$;

-- A stand-in advice reversed by its acquirer resolves its standin_overdraft
-- exception as 'reversed' (the scheme settles nothing of it): the
-- receivable goes back to settlement, posted by the reversal itself.
ALTER TABLE exceptions DROP CONSTRAINT exceptions_status_check;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_status_check
    CHECK (status IN ('open', 'recovered', 'charged_back', 'written_off', 'released', 'rejected', 'reversed'));
-- The reversal finds its hold's open stand-in exception by hold.
CREATE INDEX exceptions_standin_hold ON exceptions (hold_id) WHERE kind = 'standin_overdraft' AND status = 'open';

-- A captured hold can be refunded (ledger.RefundCaptureTx: the reversal of
-- a financial x200 or of a completion gives the money back). holds.refunded
-- is what its refunds gave back in the hold's currency (never above the
-- capture); each refund is a posting of kind 'refund' naming the hold in
-- refunds_hold (hold_id stays the capture's alone). `antaca ledger verify`
-- checks that the two agree.
ALTER TABLE holds ADD COLUMN refunded bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0);
ALTER TABLE postings ADD COLUMN refunds_hold bigint;
CREATE INDEX postings_refunds_hold ON postings (refunds_hold) WHERE refunds_hold IS NOT NULL;
-- A refund's credit (kind 'credit') can be taken back when its message is
-- reversed (ledger.UncreditTx): the 'uncredit' posting names the credit in
-- reverses; what the uncredits of a credit take back never exceeds it.
ALTER TABLE postings ADD COLUMN reverses bigint;
CREATE INDEX postings_reverses ON postings (reverses) WHERE reverses IS NOT NULL;

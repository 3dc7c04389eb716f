-- Reads of the administration panel (issue 20). The live view and the
-- per-minute chart read the journal by time; answer times come from
-- received_at (when the switch read the request, AuthRequest.Received) and
-- decided_at (when the row was written, just before the commit). Rows
-- written before this migration have neither and show no latency. The
-- default is set after the column is added so that existing rows are not
-- rewritten; the time index is BRIN, nearly free on the hot insert path.
ALTER TABLE auth_journal ADD COLUMN received_at timestamptz;
ALTER TABLE auth_journal ADD COLUMN decided_at timestamptz;
ALTER TABLE auth_journal ALTER COLUMN decided_at SET DEFAULT clock_timestamp();
CREATE INDEX auth_journal_created ON auth_journal USING brin (created_at);
-- Customer search by card: BIN (first six) and last four.
CREATE INDEX cards_pan_last4 ON cards (pan_last4, pan_first6);

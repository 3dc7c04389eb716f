-- Pruning the records of delivered webhook events (issue 19 follow-up):
-- the worker deletes webhook_journal_sends rows and succeeded deliveries
-- (with their attempts) older than its retention, oldest first, a bounded
-- batch a statement; these indexes find them without reading the rest.
CREATE INDEX webhook_journal_sends_at ON webhook_journal_sends (at);
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE status = 'succeeded';

-- Webhook delivery straight from the journal (issue 19): the events of
-- authorisations, clearings, refunds and reversals are the auth_journal
-- rows. The worker that follows the journal (one at a time: it holds the
-- cursor's lease) reads the rows past its cursor, POSTs their events and
-- records per batch only the cursor's advance and, per endpoint, one
-- webhook_journal_sends row naming the journal ids it covered. An event
-- row, a delivery row and an attempt row are written only for a delivery
-- that failed (then retried like any other) or was held back because its
-- endpoint was failing.
--
-- seen is the highest journal id read; gaps the ids below it not read yet
-- (a transaction that took its id and has not committed, or rolled back);
-- position stays the id up to which everything is done (min(gaps) - 1, or
-- seen). Journal rows made into events before this migration were made by
-- the worker of migration 021 and stay in webhook_events.
ALTER TABLE webhook_cursors
    ADD COLUMN seen         bigint,
    ADD COLUMN gaps         bigint[]    NOT NULL DEFAULT '{}',
    ADD COLUMN owner        text        NOT NULL DEFAULT '',
    ADD COLUMN leased_until timestamptz NOT NULL DEFAULT '-infinity';
UPDATE webhook_cursors SET seen = position;
ALTER TABLE webhook_cursors ALTER COLUMN seen SET NOT NULL;

-- One row per endpoint and batch: the journal events of the endpoint's
-- partner, of its types, with ids from first_id to last_id, were delivered
-- at `at` (a 2xx on the first try), except those with a webhook_deliveries
-- row (which tell their own story).
CREATE TABLE webhook_journal_sends (
    id          bigserial   PRIMARY KEY,
    endpoint_id bigint      NOT NULL REFERENCES webhook_endpoints (id),
    first_id    bigint      NOT NULL,
    last_id     bigint      NOT NULL,
    events      integer     NOT NULL,
    ms          integer     NOT NULL,   -- the slowest of them
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_journal_sends_endpoint ON webhook_journal_sends (endpoint_id, id);
CREATE INDEX webhook_journal_sends_range ON webhook_journal_sends (last_id);

-- The journal's archive (issue 18): auth_journal stays the hot table the
-- switch writes and probes (its unique auth_journal_dedup key and its
-- primary key unchanged), kept bounded by `antaca journal-archive`, which
-- moves rows older than a retention (default 45 days, longer than every
-- window that reads them: docs/operations.md "Journal archival") into
-- auth_journal_archive, in batches of a few thousand rows, each one short
-- transaction (DELETE … RETURNING into INSERT). Rows still needed stay hot
-- whatever their age: a row whose hold is open, and every row the webhook
-- follower has not passed (webhook_cursors.position).
--
-- The archive is partitioned by day of created_at (native range
-- partitioning); the job creates each day's partition when it first moves a
-- row of that day, and detaches (and drops, or leaves for export) the days
-- past a second retention. Its primary key includes the partition key, as
-- every unique key of a partitioned table must; nothing detects duplicates
-- in it (a repeat arrives within minutes, the hot table covers 45 days).
-- Its indexes serve the look-ups that fall back to it, off the hot path: an
-- original by acquirer and STAN (a late refund or completion), a row by id
-- (webhook replay, a row naming its original), a hold's row (verify).
--
-- Same columns, in the same order, as auth_journal: a migration that adds a
-- column to auth_journal adds it here too (the job refuses to run
-- otherwise, rather than drop the column's values).
CREATE TABLE auth_journal_archive (LIKE auth_journal) PARTITION BY RANGE (created_at);
ALTER TABLE auth_journal_archive ADD PRIMARY KEY (id, created_at);
CREATE INDEX auth_journal_archive_key ON auth_journal_archive (acquirer_id, stan);
CREATE INDEX auth_journal_archive_hold ON auth_journal_archive (hold_id) WHERE hold_id IS NOT NULL;

-- What the job has detached from the archive: every journal row created
-- before dropped_before is gone from the database (exported or dropped), so
-- `ledger verify` does not ask for the journal row of a hold that old.
CREATE TABLE journal_archive_horizon (
    one           boolean     PRIMARY KEY DEFAULT true CHECK (one),
    dropped_before timestamptz NOT NULL
);

-- The job deletes a day's rows from auth_journal each day: vacuum it after
-- 2 % of its rows are dead rather than the default 20 %, so that their
-- space is reused by the next days' inserts and the table stops growing at
-- about its retention's worth of rows.
ALTER TABLE auth_journal SET (autovacuum_vacuum_scale_factor = 0.02);

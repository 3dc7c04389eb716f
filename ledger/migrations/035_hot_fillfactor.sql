-- Issue 18 (the card base's size): every approval updates its user's
-- balance row (held, balance). With a million cards those rows are spread
-- over some 20,000 pages of accounts, each touched a few times between two
-- checkpoints; when the page is full the update is not HOT, so it inserts
-- into every index of accounts as well, each insertion another page
-- dirtied and, after a checkpoint, another full-page image in the WAL.
-- Leaving a quarter of each page free keeps the updates HOT: the new
-- version goes on the same page. Applies to pages written from now on
-- (VACUUM FULL or pg_repack rewrites an existing table).
ALTER TABLE accounts SET (fillfactor = 75);

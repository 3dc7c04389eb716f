-- Group commit of money messages (issue 18): a batch of completions posts
-- all their captures in one statement, four entries each, and every entry's
-- three foreign keys cost a key check (a FOR KEY SHARE look-up of its
-- account, its currency and its posting): in the realistic mix about
-- 280,000 checks in 10 s, a fifth of the capture statement. They only
-- repeated what the writer knows: the ledger writes entries only on
-- accounts it holds locked, in the posting it inserted in the same
-- transaction, in the account's currency; accounts are never deleted
-- (006_hotpath.sql) and postings neither. As for holds (006), `antaca
-- ledger verify` checks what the keys did: entry_account_missing,
-- entry_posting_missing, and entry_currency (the account's currency,
-- itself a key of currencies).
ALTER TABLE entries DROP CONSTRAINT entries_account_id_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_posting_id_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_currency_fkey;

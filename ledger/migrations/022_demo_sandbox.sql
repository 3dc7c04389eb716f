-- The demo's program is a sandbox (issue 19): simulated card messages are
-- allowed on it. Demo data created before migration 020 gets the flag here;
-- `antaca demo` sets it on new demo data.
UPDATE programs SET sandbox = true
 WHERE name = 'Demo Program' AND partner_id IN (SELECT id FROM partners WHERE name = 'Demo Partner');

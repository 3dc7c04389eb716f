-- The partner remote decision is signed (issue 19): each program that asks
-- a partner's back-end has a secret; our POST carries
-- Antaca-Signature: t=<unix>,v1=<HMAC-SHA256("<t>.<body>")> with it, and the
-- partner's answer must carry the same over its own body and echo the
-- request's id. The secret is kept as is (it signs, so it cannot be a hash);
-- the API shows it once, at creation or rotation.
ALTER TABLE programs ADD COLUMN remote_secret text NOT NULL DEFAULT '';

-- Programs flagged as sandboxes accept simulated messages (issue 19 item 4);
-- the demo's program is one. Postings of a simulation carry simulation =
-- true, and `antaca ledger verify` fails on any outside a sandbox.
ALTER TABLE programs ADD COLUMN sandbox boolean NOT NULL DEFAULT false;

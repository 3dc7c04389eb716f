-- The REST API's own state: admin users, sessions, idempotency keys and the
-- certificates our internal CA issued. Owned by package api.

-- Admin users of the /admin channel. password_hash is
-- "pbkdf2-sha256$<iterations>$<salt b64>$<key b64>", never the password.
CREATE TABLE admin_users (
    id            bigserial   PRIMARY KEY,
    name          text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('Admin', 'Manager', 'Employee')),
    created_by    bigint      REFERENCES admin_users (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Sessions of the /customers/me channel (subject 'user', minted by a
-- partner for one of its customers) and of the /admin channel (subject
-- 'admin'). Only the SHA-256 of the token is stored, so a database dump
-- gives no usable token. customer_id has no foreign key: users live in the
-- card host's tables.
CREATE TABLE sessions (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    subject     text        NOT NULL CHECK (subject IN ('user', 'admin')),
    customer_id bigint,
    partner_id  bigint      REFERENCES partners (id),
    admin_id    bigint      REFERENCES admin_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CHECK (subject <> 'user' OR (customer_id IS NOT NULL AND partner_id IS NOT NULL AND admin_id IS NULL)),
    CHECK (subject <> 'admin' OR (admin_id IS NOT NULL AND customer_id IS NULL))
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Idempotency keys of POST requests, scoped per channel and subject
-- ("secure:partner:12", "user:40", "admin:3"). request_hash covers method,
-- path, the client's Public-Key header and the (decrypted) body. status is
-- NULL while the first request is in flight; then the answer as sent on the
-- wire (encrypted when the route encrypts) is kept for replay.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer,
    content_type text,
    body         bytea,
    location     text,                   -- Location header of the answer (202 async)
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Client certificates issued by the internal CA. A /secure request is
-- accepted only with a certificate listed here, not revoked and not expired.
-- kind 'partner' names a partner; 'scheme' and 'acquirer' name an external
-- entity that may lock cards from outside.
CREATE TABLE partner_certificates (
    serial      text        PRIMARY KEY,              -- lower-case hex
    kind        text        NOT NULL CHECK (kind IN ('partner', 'scheme', 'acquirer')),
    partner_id  bigint      REFERENCES partners (id),
    entity      text,
    subject     text        NOT NULL,
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    revoked     boolean     NOT NULL DEFAULT false,
    revoked_at  timestamptz,
    issued_by   bigint      REFERENCES admin_users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'partner') = (partner_id IS NOT NULL)),
    CHECK ((kind = 'partner') = (entity IS NULL)),
    CHECK (revoked = (revoked_at IS NOT NULL))
);
CREATE INDEX partner_certificates_partner ON partner_certificates (partner_id) WHERE partner_id IS NOT NULL;

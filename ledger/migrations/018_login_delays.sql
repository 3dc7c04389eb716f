-- Progressive login delays (issue 21) replace the hard lockout of
-- login_attempts (008). api: loginDelays. A row per key, "src:<address>"
-- for a source address and "name:<name>" for an admin name: failures
-- counted before the password is checked (so parallel guesses cannot skip
-- the delay), the time of the last one, and next_at, before which the key
-- gets no password check (429 Retry-After). Rows whose last failure is
-- older than the window start over; a success deletes its rows.
CREATE TABLE login_delays (
    key          text        PRIMARY KEY,
    failures     int         NOT NULL,
    last_failure timestamptz NOT NULL,
    next_at      timestamptz NOT NULL
);

-- Source addresses an admin has logged in from: they are exempt from the
-- per-name delay (still subject to their own per-source delay), so that a
-- stranger's wrong passwords cannot keep the admin out.
CREATE TABLE admin_known_sources (
    admin_id   bigint      NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    source     text        NOT NULL,
    last_login timestamptz NOT NULL,
    PRIMARY KEY (admin_id, source)
);

DROP TABLE login_attempts;

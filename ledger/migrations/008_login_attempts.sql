-- Admin password checks per name and window (api: adminLogin). A name gets
-- at most Config.LoginAttempts password checks per Config.LoginWindow: an
-- attempt is counted before its password is checked, so guesses sent in
-- parallel cannot exceed the limit, and a successful login deletes the
-- row. Names that no admin has are counted the same way, so the answer
-- never tells whether a name exists. PruneExpired deletes ended windows.
CREATE TABLE login_attempts (
    name         text        PRIMARY KEY,
    attempts     int         NOT NULL,
    window_start timestamptz NOT NULL
);

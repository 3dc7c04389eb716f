package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AccessStore holds the API's access state: sessions, admin logins and
// their known sources, login delays, partner certificates and idempotency
// keys (migrations 005, 018, 023). The api package's handlers call it and
// run no SQL themselves. An AccessStore is a small value over the pool,
// safe for concurrent use.
type AccessStore struct{ pool *pgxpool.Pool }

// NewAccessStore returns the access store on pool.
func NewAccessStore(pool *pgxpool.Pool) AccessStore { return AccessStore{pool: pool} }

// Ping checks that the database answers.
func (a AccessStore) Ping(ctx context.Context) error { return a.pool.Ping(ctx) }

// Session is one row of sessions, with the admin's name and role when the
// session is an admin's.
type Session struct {
	TokenHash  []byte
	Subject    string // "user" or "admin"
	CustomerID int64
	PartnerID  int64
	AdminID    int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AdminName  string
	AdminRole  string
}

// Session returns the session whose token hashes to tokenHash, or
// ErrNotFound.
func (a AccessStore) Session(ctx context.Context, tokenHash []byte) (Session, error) {
	s := Session{TokenHash: tokenHash}
	err := a.pool.QueryRow(ctx, selectSession, tokenHash).Scan(&s.Subject, &s.CustomerID, &s.PartnerID, &s.AdminID, &s.ExpiresAt, &s.AdminName, &s.AdminRole)
	if err != nil {
		return Session{}, dbErr("session", err)
	}
	return s, nil
}

// The access store's reads by key (their plans are checked in
// plans_test.go).
const (
	selectSession = `SELECT s.subject, coalesce(s.customer_id, 0), coalesce(s.partner_id, 0), coalesce(s.admin_id, 0),
			s.expires_at, coalesce(a.name, ''), coalesce(a.role, '')
		FROM sessions s LEFT JOIN admin_users a ON a.id = s.admin_id
		WHERE s.token_hash = $1`
	selectAdminLogin = `SELECT a.id, a.password_hash, a.role,
			EXISTS (SELECT 1 FROM admin_known_sources k WHERE k.admin_id = a.id AND k.source = $2)
		FROM admin_users a WHERE a.name = $1`
	selectCertificate = `SELECT kind, coalesce(partner_id, 0), coalesce(entity, ''), not_after, revoked
		FROM partner_certificates WHERE serial = $1`
	selectIdempotencyKey = `SELECT request_hash, status, coalesce(content_type, ''), body, coalesce(location, ''), created_at
		FROM idempotency_keys WHERE scope = $1 AND key = $2`
)

// CreateSession stores s (zero ids are stored as NULL).
func (a AccessStore) CreateSession(ctx context.Context, s Session) error {
	const q = `INSERT INTO sessions (token_hash, subject, customer_id, partner_id, admin_id, created_at, expires_at)
		VALUES ($1, $2, nullif($3, 0::bigint), nullif($4, 0::bigint), nullif($5, 0::bigint), $6, $7)`
	if _, err := a.pool.Exec(ctx, q, s.TokenHash, s.Subject, s.CustomerID, s.PartnerID, s.AdminID, s.CreatedAt, s.ExpiresAt); err != nil {
		return dbErr("create session", err)
	}
	return nil
}

// DeleteSession deletes the session of tokenHash; an unknown one is no
// error.
func (a AccessStore) DeleteSession(ctx context.Context, tokenHash []byte) error {
	if _, err := a.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash); err != nil {
		return dbErr("delete session", err)
	}
	return nil
}

// ExtendAdminSession moves the session's expiry to until unless it is later
// already, and returns the expiry and the partner the admin views (0: none).
func (a AccessStore) ExtendAdminSession(ctx context.Context, tokenHash []byte, until time.Time, adminID int64) (expires time.Time, partnerID int64, err error) {
	const touch = `UPDATE sessions SET expires_at = greatest(expires_at, $2) WHERE token_hash = $1
		RETURNING expires_at, (SELECT coalesce(partner_id, 0) FROM admin_users WHERE id = $3)`
	if err := a.pool.QueryRow(ctx, touch, tokenHash, until, adminID).Scan(&expires, &partnerID); err != nil {
		return time.Time{}, 0, dbErr("extend session", err)
	}
	return expires, partnerID, nil
}

// CreateAdmin inserts an admin login with its password hash and returns its
// id. A partner viewer (role Partner) names its partner; createdBy 0 is
// the bootstrap. A taken name is ErrDuplicateRef.
func (a AccessStore) CreateAdmin(ctx context.Context, name, passwordHash, role string, partnerID, createdBy int64) (int64, error) {
	const q = `INSERT INTO admin_users (name, password_hash, role, partner_id, created_by)
		VALUES ($1, $2, $3, nullif($4, 0::bigint), nullif($5, 0::bigint)) RETURNING id`
	var id int64
	if err := a.pool.QueryRow(ctx, q, name, passwordHash, role, partnerID, createdBy).Scan(&id); err != nil {
		return 0, dbErr("create admin", err)
	}
	return id, nil
}

// AdminLogin is what a login needs of an admin: id, password hash, role and
// whether the source has logged in as this admin before.
type AdminLogin struct {
	ID           int64
	PasswordHash string
	Role         string
	KnownSource  bool
}

// AdminLogin returns the admin named name as a login from source sees it,
// or ErrNotFound.
func (a AccessStore) AdminLogin(ctx context.Context, name, source string) (AdminLogin, error) {
	var l AdminLogin
	if err := a.pool.QueryRow(ctx, selectAdminLogin, name, source).Scan(&l.ID, &l.PasswordHash, &l.Role, &l.KnownSource); err != nil {
		return AdminLogin{}, dbErr("admin login", err)
	}
	return l, nil
}

// CountLoginFailure counts a failure for key in one transaction holding the
// key's row: when the key must still wait (its next attempt is after now)
// it returns that wait and counts nothing; otherwise the count restarts
// when the last failure is older than window, goes up by one, and the next
// attempt is allowed after delay(failures).
func (a AccessStore) CountLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration, delay func(failures int) time.Duration) (wait time.Duration, next time.Time, err error) {
	err = pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO login_delays (key, failures, last_failure, next_at) VALUES ($1, 0, 'epoch', 'epoch') ON CONFLICT (key) DO NOTHING`, key); err != nil {
			return err
		}
		var (
			failures int
			last     time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT failures, last_failure, next_at FROM login_delays WHERE key = $1 FOR UPDATE`, key).Scan(&failures, &last, &next); err != nil {
			return err
		}
		if next.After(now) {
			wait = next.Sub(now)
			return nil
		}
		if !last.After(now.Add(-window)) {
			failures = 0
		}
		failures++
		next = now.Add(delay(failures))
		_, err := tx.Exec(ctx, `UPDATE login_delays SET failures = $2, last_failure = $3, next_at = $4 WHERE key = $1`, key, failures, now, next)
		return err
	})
	if err != nil {
		return 0, time.Time{}, dbErr("login delay", err)
	}
	return wait, next, nil
}

// LoginSucceeded clears the login delays of keys and records source as
// known for the admin, at now.
func (a AccessStore) LoginSucceeded(ctx context.Context, keys []string, adminID int64, source string, now time.Time) error {
	const clear = `WITH d AS (DELETE FROM login_delays WHERE key = ANY($1))
		INSERT INTO admin_known_sources (admin_id, source, last_login) VALUES ($2, $3, $4)
		ON CONFLICT (admin_id, source) DO UPDATE SET last_login = excluded.last_login`
	if _, err := a.pool.Exec(ctx, clear, keys, adminID, source, now); err != nil {
		return dbErr("clear login delay", err)
	}
	return nil
}

// PruneAccess deletes the sessions expired at now, the idempotency keys
// created before keysBefore and the login delays whose last failure is at
// or before delaysBefore and whose wait has ended. It returns how many
// sessions and keys went.
func (a AccessStore) PruneAccess(ctx context.Context, now, keysBefore, delaysBefore time.Time) (sessions, keys int64, err error) {
	t1, err := a.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, 0, fmt.Errorf("prune sessions: %w", dbErr("delete", err))
	}
	t2, err := a.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, keysBefore)
	if err != nil {
		return t1.RowsAffected(), 0, fmt.Errorf("prune idempotency keys: %w", dbErr("delete", err))
	}
	if _, err := a.pool.Exec(ctx, `DELETE FROM login_delays WHERE last_failure <= $1 AND next_at <= $2`, delaysBefore, now); err != nil {
		return t1.RowsAffected(), t2.RowsAffected(), fmt.Errorf("prune login delays: %w", dbErr("delete", err))
	}
	return t1.RowsAffected(), t2.RowsAffected(), nil
}

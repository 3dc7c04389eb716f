package ledger

import (
	"context"
	"fmt"
	"time"
)

// IssuedCertificate is one row of partner_certificates: a client certificate
// the internal CA issued for a partner, scheme or acquirer.
type IssuedCertificate struct {
	Serial    string // lower-case hex
	Kind      string
	PartnerID int64  // 0 for schemes and acquirers
	Entity    string // "" for partners
	Subject   string
	NotBefore time.Time
	NotAfter  time.Time
	IssuedBy  int64 // admin id; 0: none
	Revoked   bool
}

// Certificate returns the record of the certificate with serial, or
// ErrNotFound (Subject, NotBefore and IssuedBy are not read).
func (a AccessStore) Certificate(ctx context.Context, serial string) (IssuedCertificate, error) {
	c := IssuedCertificate{Serial: serial}
	if err := a.pool.QueryRow(ctx, selectCertificate, serial).Scan(&c.Kind, &c.PartnerID, &c.Entity, &c.NotAfter, &c.Revoked); err != nil {
		return IssuedCertificate{}, dbErr("certificate", err)
	}
	return c, nil
}

// RecordCertificate stores an issued certificate.
func (a AccessStore) RecordCertificate(ctx context.Context, c IssuedCertificate) error {
	const q = `INSERT INTO partner_certificates (serial, kind, partner_id, entity, subject, not_before, not_after, issued_by)
		VALUES ($1, $2, nullif($3, 0::bigint), nullif($4, ''), $5, $6, $7, nullif($8, 0::bigint))`
	if _, err := a.pool.Exec(ctx, q, c.Serial, c.Kind, c.PartnerID, c.Entity, c.Subject, c.NotBefore, c.NotAfter, c.IssuedBy); err != nil {
		return dbErr("record certificate", err)
	}
	return nil
}

// RevokeCertificate marks the certificate revoked (at now, or when it was
// first revoked) and returns that time; an unknown serial is ErrNotFound.
func (a AccessStore) RevokeCertificate(ctx context.Context, serial string, now time.Time) (time.Time, error) {
	const q = `UPDATE partner_certificates SET revoked = true, revoked_at = coalesce(revoked_at, $2)
		WHERE serial = $1 RETURNING revoked_at`
	var at time.Time
	if err := a.pool.QueryRow(ctx, q, serial, now).Scan(&at); err != nil {
		return time.Time{}, dbErr("revoke certificate", err)
	}
	return at, nil
}

// PartnerName returns the name of partner id, or ErrNotFound.
func (a AccessStore) PartnerName(ctx context.Context, id int64) (string, error) {
	var name string
	if err := a.pool.QueryRow(ctx, `SELECT name FROM partners WHERE id = $1`, id).Scan(&name); err != nil {
		return "", dbErr(fmt.Sprintf("partner %d", id), err)
	}
	return name, nil
}

// IdempotencyKey is one row of idempotency_keys: a request's hash and,
// once it finished, its answer (Status nil while it runs).
type IdempotencyKey struct {
	RequestHash []byte
	Status      *int32
	ContentType string
	Body        []byte
	Location    string
	CreatedAt   time.Time
}

// ClaimIdempotencyKey records key in scope for a request with this hash,
// created at now; claimed is false when the key is taken already.
func (a AccessStore) ClaimIdempotencyKey(ctx context.Context, scope, key string, requestHash []byte, now time.Time) (claimed bool, err error) {
	const claim = `INSERT INTO idempotency_keys (scope, key, request_hash, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) DO NOTHING`
	tag, err := a.pool.Exec(ctx, claim, scope, key, requestHash, now)
	if err != nil {
		return false, dbErr("idempotency claim", err)
	}
	return tag.RowsAffected() == 1, nil
}

// IdempotencyKey returns the row of key in scope, or ErrNotFound.
func (a AccessStore) IdempotencyKey(ctx context.Context, scope, key string) (IdempotencyKey, error) {
	var k IdempotencyKey
	if err := a.pool.QueryRow(ctx, selectIdempotencyKey, scope, key).Scan(&k.RequestHash, &k.Status, &k.ContentType, &k.Body, &k.Location, &k.CreatedAt); err != nil {
		return IdempotencyKey{}, dbErr("idempotency load", err)
	}
	return k, nil
}

// TakeOverIdempotencyKey claims an abandoned key (no answer, created at
// created) for a new attempt at now; false when another request got there
// first or the answer arrived meanwhile.
func (a AccessStore) TakeOverIdempotencyKey(ctx context.Context, scope, key string, now, created time.Time) (bool, error) {
	const takeOver = `UPDATE idempotency_keys SET created_at = $3
		WHERE scope = $1 AND key = $2 AND status IS NULL AND created_at = $4`
	tag, err := a.pool.Exec(ctx, takeOver, scope, key, now, created)
	if err != nil {
		return false, dbErr("idempotency take over", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseIdempotencyKey deletes key in scope, so the client may retry.
func (a AccessStore) ReleaseIdempotencyKey(ctx context.Context, scope, key string) error {
	if _, err := a.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2`, scope, key); err != nil {
		return dbErr("idempotency release", err)
	}
	return nil
}

// StoreIdempotentAnswer keeps the answer of the request holding key in
// scope, for its retries.
func (a AccessStore) StoreIdempotentAnswer(ctx context.Context, scope, key string, status int, contentType string, body []byte, location string) error {
	const store = `UPDATE idempotency_keys SET status = $3, content_type = nullif($4, ''), body = $5, location = nullif($6, '')
		WHERE scope = $1 AND key = $2`
	if _, err := a.pool.Exec(ctx, store, scope, key, status, contentType, body, location); err != nil {
		return dbErr("idempotency store", err)
	}
	return nil
}

package api

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/antaca/antaca/internal/decimal"
	"github.com/antaca/antaca/ledger"
)

// Principal is who is calling: a certificate holder on /secure, a user on
// /customers/me, an admin on /admin.
type Principal struct {
	Channel Channel
	// Secure channel.
	Kind       string // partner, scheme or acquirer
	PartnerID  int64  // kind partner; also the minting partner of a user session
	Entity     string // kind scheme or acquirer: the entity's name
	CertSerial string
	// Customer channel.
	CustomerID int64
	// Admin channel.
	AdminID   int64
	AdminName string
	Role      Role

	ExpiresAt time.Time // sessions
	tokenHash []byte
}

// scope names the subject for idempotency keys and the access log.
func (p *Principal) scope() string {
	switch {
	case p == nil:
		return ""
	case p.Channel == ChannelSecure && p.Kind == KindPartner:
		return "secure:partner:" + strconv.FormatInt(p.PartnerID, 10)
	case p.Channel == ChannelSecure:
		return "secure:" + p.Kind + ":" + p.Entity
	case p.Channel == ChannelCustomer:
		return "user:" + strconv.FormatInt(p.CustomerID, 10)
	case p.Channel == ChannelAdmin:
		return "admin:" + strconv.FormatInt(p.AdminID, 10)
	}
	return string(p.Channel)
}

func unauthenticated(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: msg}
}

func (s *Server) authenticate(ctx context.Context, r *http.Request, rt Route, now time.Time) (*Principal, *Error) {
	switch rt.Channel {
	case ChannelSecure:
		p, e := s.authCertificate(ctx, r, now)
		if e != nil {
			return nil, e
		}
		if !slices.Contains(rt.Kinds, p.Kind) {
			return p, errorf(http.StatusForbidden, CodeForbidden, "a %s certificate may not call this operation", p.Kind)
		}
		return p, nil
	case ChannelCustomer, ChannelAdmin:
		p, e := s.authSession(ctx, r, rt.Channel, now)
		if e != nil {
			return nil, e
		}
		if rt.Channel == ChannelAdmin && !slices.Contains(rt.Roles, p.Role) {
			return p, errorf(http.StatusForbidden, CodeForbidden, "role %s may not call this operation", p.Role)
		}
		return p, nil
	}
	return &Principal{Channel: ChannelPublic}, nil
}

// certIdentity is what a client certificate says about its holder, read
// from its one URI SAN "antaca:<kind>:<id>": antaca:partner:12,
// antaca:scheme:MASTERCARD, antaca:acquirer:ACQ1.
type certIdentity struct {
	kind      string
	partnerID int64
	entity    string
}

func (c certIdentity) uri() string {
	if c.kind == KindPartner {
		return "antaca:partner:" + strconv.FormatInt(c.partnerID, 10)
	}
	return "antaca:" + c.kind + ":" + c.entity
}

func identityOf(cert *x509.Certificate) (certIdentity, error) {
	var ids []certIdentity
	for _, u := range cert.URIs {
		if u.Scheme != "antaca" {
			continue
		}
		kind, rest, ok := strings.Cut(u.Opaque, ":")
		if !ok {
			return certIdentity{}, errors.New("certificate identity: malformed antaca URI")
		}
		switch kind {
		case KindPartner:
			id, ok := decimal.ID(rest)
			if !ok {
				return certIdentity{}, errors.New("certificate identity: bad partner id")
			}
			ids = append(ids, certIdentity{kind: kind, partnerID: id})
		case KindScheme, KindAcquirer:
			if !validEntity(rest) {
				return certIdentity{}, errors.New("certificate identity: bad entity name")
			}
			ids = append(ids, certIdentity{kind: kind, entity: rest})
		default:
			return certIdentity{}, errors.New("certificate identity: unknown kind")
		}
	}
	if len(ids) != 1 {
		return certIdentity{}, errors.New("certificate identity: want exactly one antaca URI SAN")
	}
	return ids[0], nil
}

// validEntity reports whether name may name a scheme or acquirer:
// 1-64 of A-Z a-z 0-9 . _ -.
func validEntity(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// authCertificate maps the verified client certificate to a principal. The
// TLS layer has checked the chain to our CA; here the certificate must also
// be one we issued and recorded, not revoked and not expired.
func (s *Server) authCertificate(ctx context.Context, r *http.Request, now time.Time) (*Principal, *Error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, unauthenticated("a client certificate issued by the Antaca CA is required")
	}
	chain := r.TLS.VerifiedChains[0]
	if !chain[len(chain)-1].Equal(s.cfg.CA) {
		return nil, unauthenticated("client certificate is not from the Antaca CA")
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, unauthenticated("client certificate expired or not yet valid")
	}
	id, err := identityOf(leaf)
	if err != nil {
		return nil, unauthenticated("client certificate carries no Antaca identity")
	}
	serial := leaf.SerialNumber.Text(16)
	c, err := s.access().Certificate(ctx, serial)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, unauthenticated("client certificate is not registered")
	}
	if err != nil {
		return nil, s.internal("certificate lookup", err)
	}
	rec := certIdentity{kind: c.Kind, partnerID: c.PartnerID, entity: c.Entity}
	switch {
	case c.Revoked:
		return nil, unauthenticated("client certificate revoked")
	case !now.Before(c.NotAfter):
		return nil, unauthenticated("client certificate expired")
	case rec != id:
		return nil, unauthenticated("client certificate does not match its record")
	}
	return &Principal{Channel: ChannelSecure, Kind: id.kind, PartnerID: id.partnerID, Entity: id.entity, CertSerial: serial}, nil
}

// Session tokens are 32 random bytes, base64url; the database holds only
// their SHA-256.
func newToken() (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	return tok, h[:]
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > 128 {
		return "", false
	}
	return tok, true
}

// authSession checks the bearer token of the customer or admin channel.
func (s *Server) authSession(ctx context.Context, r *http.Request, ch Channel, now time.Time) (*Principal, *Error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, unauthenticated("Authorization: Bearer <session token> is required")
	}
	h := hashToken(tok)
	sess, err := s.access().Session(ctx, h)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, unauthenticated("session token unknown")
	}
	if err != nil {
		return nil, s.internal("session lookup", err)
	}
	p := &Principal{Channel: ch, tokenHash: h, CustomerID: sess.CustomerID, PartnerID: sess.PartnerID, AdminID: sess.AdminID,
		ExpiresAt: sess.ExpiresAt, AdminName: sess.AdminName}
	role := sess.AdminRole
	want := "user"
	if ch == ChannelAdmin {
		want = "admin"
	}
	if sess.Subject != want {
		return nil, unauthenticated("session token unknown")
	}
	if !now.Before(p.ExpiresAt) {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeSessionExpired, Message: "session expired; authenticate again"}
	}
	p.Role = Role(role)
	return p, nil
}

// createSession stores a new session and returns its token and expiry.
func (s *Server) createSession(ctx context.Context, subject string, customerID, partnerID, adminID int64, now time.Time) (string, time.Time, error) {
	tok, h := newToken()
	exp := now.Add(s.cfg.SessionTTL)
	sess := ledger.Session{TokenHash: h, Subject: subject, CustomerID: customerID, PartnerID: partnerID, AdminID: adminID, CreatedAt: now, ExpiresAt: exp}
	if err := s.access().CreateSession(ctx, sess); err != nil {
		return "", time.Time{}, fmt.Errorf("create %s session: %w", subject, err)
	}
	return tok, exp, nil
}

func (s *Server) deleteSession(ctx context.Context, p *Principal) error {
	return s.access().DeleteSession(ctx, p.tokenHash)
}

// access is the store of sessions, admin logins, certificates and
// idempotency keys: the handlers' only way to the database.
func (s *Server) access() ledger.AccessStore { return ledger.NewAccessStore(s.pool) }

// Password hashes: PBKDF2-SHA-256 (crypto/pbkdf2; scrypt and argon2 are not
// in the standard library), 16-byte salt, 32-byte key, stored as
// "pbkdf2-sha256$<iterations>$<salt>$<key>" with unpadded standard base64.
const passwordScheme = "pbkdf2-sha256"

func hashPassword(password string, iterations int) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", passwordScheme, iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword reports whether password matches stored, in constant time
// for the key comparison.
func checkPassword(stored, password string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != passwordScheme {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

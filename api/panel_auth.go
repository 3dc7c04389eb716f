package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/antaca/antaca/api/panel"
	"github.com/antaca/antaca/ledger"
)

// RolePartner is a partner viewer of the panel (migration 023): it signs in
// like an admin user, but no /admin route lists it, so the JSON API refuses
// it everywhere; the panel shows it one partner, read only.
const RolePartner Role = "Partner"

// panelAuth gives the panel the API's admin accounts: the same login (and
// its limits), the same sessions table, with the panel's idle expiry.
type panelAuth struct{ s *Server }

// registerPanel mounts the administration panel at /panel/.
func (s *Server) registerPanel() error {
	if s.host == nil {
		return nil
	}
	p, err := panel.New(panel.Config{Auth: panelAuth{s}, Host: s.host, Reader: ledger.NewPanelReader(s.pool),
		Logger: s.log, Now: s.cfg.Now, Explain: explainForPanel})
	if err != nil {
		return err
	}
	h := p.Handler()
	s.mux.Handle("/panel/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		s.log.Info("panel request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "ms", time.Since(start).Milliseconds())
	}))
	return nil
}

// Login runs the JSON API's own admin login (adminLogin), so the panel gets
// exactly its checks and login limits.
func (a panelAuth) Login(ctx context.Context, name, password string) (panel.Session, error) {
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/admin/login", nil)
	q := &request{Request: r, body: body, header: http.Header{}, now: a.s.cfg.Now()}
	_, out, err := a.s.adminLogin(q)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			switch e.Status {
			case http.StatusTooManyRequests:
				wait, _ := strconv.Atoi(q.header.Get("Retry-After"))
				return panel.Session{}, &panel.LimitError{RetryAfter: max(wait, 1)}
			case http.StatusUnauthorized, http.StatusBadRequest:
				return panel.Session{}, panel.ErrBadLogin
			}
		}
		return panel.Session{}, err
	}
	ans, ok := out.(sessionAnswer)
	if !ok {
		return panel.Session{}, fmt.Errorf("panel login: unexpected answer %T", out)
	}
	s, err := a.Session(ctx, ans.Token, false)
	if err != nil {
		return panel.Session{}, fmt.Errorf("panel login: %w", err)
	}
	a.s.log.Info("panel sign-in", "admin", s.AdminID, "role", s.Role)
	return s, nil
}

// Session checks a panel session like an admin bearer token and, when
// extend, moves its expiry to SessionTTL from now: panel sessions end after
// SessionTTL idle.
func (a panelAuth) Session(ctx context.Context, token string, extend bool) (panel.Session, error) {
	if len(token) == 0 || len(token) > 128 {
		return panel.Session{}, panel.ErrNoSession
	}
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/panel/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	now := a.s.cfg.Now()
	p, e := a.s.authSession(ctx, r, ChannelAdmin, now)
	if e != nil {
		if e.Status == http.StatusUnauthorized {
			return panel.Session{}, panel.ErrNoSession
		}
		return panel.Session{}, e
	}
	until := p.ExpiresAt
	if extend {
		until = now.Add(a.s.cfg.SessionTTL)
	}
	expires, partnerID, err := a.s.access().ExtendAdminSession(ctx, p.tokenHash, until, p.AdminID)
	if err != nil {
		return panel.Session{}, fmt.Errorf("panel session: %w", err)
	}
	return panel.Session{Token: token, AdminID: p.AdminID, Name: p.AdminName, Role: panel.Role(p.Role), PartnerID: partnerID, ExpiresAt: expires}, nil
}

func (a panelAuth) Logout(ctx context.Context, token string) error {
	return a.s.deleteSession(ctx, &Principal{tokenHash: hashToken(token)})
}

// CreateViewer creates a partner viewer: an admin_users row with role
// Partner and its partner (migration 023).
func (a panelAuth) CreateViewer(ctx context.Context, name, password string, partnerID, by int64) error {
	if e := checkAdminInput(name, password, RoleEmployee); e != nil {
		return panelInput(e)
	}
	hash, err := hashPassword(password, a.s.cfg.PasswordIterations)
	if err != nil {
		return err
	}
	_, err = a.s.access().CreateAdmin(ctx, name, hash, string(RolePartner), partnerID, by)
	if errors.Is(err, ledger.ErrDuplicateRef) {
		return panelInput(errorf(http.StatusConflict, CodeConflict, "a login with this name exists"))
	}
	if err != nil {
		return fmt.Errorf("create partner viewer: %w", err)
	}
	a.s.log.Info("partner viewer created", "partner_id", partnerID, "by", by)
	return nil
}

// SignCSR signs a CSR as POST /admin/partners/{id}/certificates or
// /admin/entities/{entity}/certificates do.
func (a panelAuth) SignCSR(ctx context.Context, in panel.CSR, by int64) (string, string, error) {
	req := CertificateRequest{Kind: in.Kind, PartnerID: in.PartnerID, Entity: in.Entity, IssuedBy: by}
	switch {
	case in.Kind == KindPartner && in.PartnerID > 0 && in.Entity == "":
	case (in.Kind == KindScheme || in.Kind == KindAcquirer) && in.PartnerID == 0 && validEntity(in.Entity):
	default:
		return "", "", panelInput(validation("a partner, or a scheme or acquirer named by 1-64 of A-Z a-z 0-9 . _ -"))
	}
	csr, err := parseCSR(in.PEM)
	if err != nil {
		return "", "", panelInput(validation("%v", err))
	}
	req.PublicKey = csr.PublicKey
	ic, err := a.s.IssueCertificate(ctx, req)
	if errors.Is(err, errUnknownPartner) {
		return "", "", panelInput(notFound())
	}
	if err != nil {
		return "", "", err
	}
	a.s.log.Info("client certificate issued", "serial", ic.Serial, "kind", ic.Kind, "partner_id", ic.PartnerID, "entity", ic.Entity, "by", by)
	return ic.Serial, ic.Certificate, nil
}

func (a panelAuth) Revoke(ctx context.Context, serial string) error {
	if _, err := a.s.RevokeCertificate(ctx, serial); err != nil {
		return err
	}
	a.s.log.Info("client certificate revoked", "serial", serial)
	return nil
}

// panelInput turns an API error into one the panel shows.
func panelInput(e *Error) error { return &panel.InputError{Status: e.Status, Message: e.Message} }

// explainForPanel is the JSON API's error translation, for the panel's
// pages: the same refusals, the same messages.
func explainForPanel(err error) (int, string, bool) {
	e, known := asError(err)
	if !known {
		return 0, "", false
	}
	return e.Status, "Refused: " + e.Message + ".", true
}

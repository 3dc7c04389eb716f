package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/specs"
)

// registerRoutes registers every operation. Card routes plug in here as
// the card host grows: add the route, its CardHost method and its entry in
// specs/openapi.json (TestOpenAPIMatchesRoutes checks both ways).
func (s *Server) registerRoutes() {
	// Public.
	s.route(Route{Method: "GET", Pattern: "/public-key", Channel: ChannelPublic}, s.getPublicKey)
	s.route(Route{Method: "GET", Pattern: "/healthz", Channel: ChannelPublic}, s.getHealth)
	s.route(Route{Method: "GET", Pattern: "/openapi.json", Channel: ChannelPublic}, getOpenAPI)

	// Admin.
	s.route(Route{Method: "POST", Pattern: "/admin/login", Channel: ChannelPublic, Encryption: EncryptionOptional, SourceLimited: true}, s.adminLogin)
	s.route(Route{Method: "GET", Pattern: "/admin/session", Channel: ChannelAdmin, Roles: AllRoles}, s.adminSession)
	s.route(Route{Method: "DELETE", Pattern: "/admin/session", Channel: ChannelAdmin, Roles: AllRoles}, s.logout)
	s.route(Route{Method: "POST", Pattern: "/admin/admins", Channel: ChannelAdmin, Roles: []Role{RoleAdmin}, Encryption: EncryptionOptional}, s.createAdmin)
	s.route(Route{Method: "POST", Pattern: "/admin/partners/{partnerId}/certificates", Channel: ChannelAdmin, Roles: []Role{RoleAdmin}, Encryption: EncryptionOptional}, s.signPartnerCSR)
	s.route(Route{Method: "POST", Pattern: "/admin/entities/{entity}/certificates", Channel: ChannelAdmin, Roles: []Role{RoleAdmin}, Encryption: EncryptionOptional}, s.signEntityCSR)
	s.route(Route{Method: "POST", Pattern: "/admin/certificates/{serial}/revoke", Channel: ChannelAdmin, Roles: []Role{RoleAdmin}, Encryption: EncryptionOptional}, s.revokeCertificate)

	// Secure (server to server).
	s.route(Route{Method: "POST", Pattern: "/secure/customers/{customerId}/sessions", Channel: ChannelSecure, Encryption: EncryptionOptional}, s.mintUserSession)

	// Customer (mobile application).
	s.route(Route{Method: "GET", Pattern: "/customers/me/session", Channel: ChannelCustomer, Encryption: EncryptionOptional}, s.userSession)
	s.route(Route{Method: "DELETE", Pattern: "/customers/me/session", Channel: ChannelCustomer}, s.logout)

	// Customers, balances, cards, partners, programs (cards.go, partners.go).
	s.registerCardRoutes()
	s.registerMoneyRoutes()
	// Webhook endpoints, deliveries and events (webhooks.go).
	s.registerWebhookRoutes()
	s.registerSpendRuleRoutes() // spendrules.go
	// Simulated card messages on sandbox programs (simulate.go).
	s.registerSimulationRoutes()
}

func (s *Server) getPublicKey(q *request) (int, any, error) {
	return http.StatusOK, json.RawMessage(s.publicKey), nil
}

func (s *Server) getHealth(q *request) (int, any, error) {
	ctx, cancel := context.WithTimeout(q.Context(), 2*time.Second)
	defer cancel()
	if err := s.access().Ping(ctx); err != nil {
		s.log.Warn("health: database unreachable", "err", err)
		return 0, nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "database unreachable")
	}
	return http.StatusOK, map[string]string{"status": "ok"}, nil
}

func getOpenAPI(q *request) (int, any, error) {
	return http.StatusOK, json.RawMessage(specs.OpenAPI()), nil
}

// sessionAnswer is the body of a new session.
type sessionAnswer struct {
	Token      string    `json:"token"`
	ExpiresAt  time.Time `json:"expiresAt"`
	CustomerID int64     `json:"customerId,omitempty"`
	Role       Role      `json:"role,omitempty"`
}

func (s *Server) adminSession(q *request) (int, any, error) {
	p := q.principal
	return http.StatusOK, map[string]any{"adminId": p.AdminID, "name": p.AdminName, "role": p.Role, "expiresAt": p.ExpiresAt}, nil
}

func (s *Server) logout(q *request) (int, any, error) {
	if err := s.deleteSession(q.Context(), q.principal); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// ErrAdminExists is returned (wrapped) by CreateAdmin for a name already
// taken.
var ErrAdminExists = errors.New("admin name already taken")

// CreateAdmin creates an admin user with a PBKDF2 password hash. createdBy
// is the creating admin's id, 0 for the system (bootstrap, demo).
func (s *Server) CreateAdmin(ctx context.Context, name, password string, role Role, createdBy int64) (int64, error) {
	if err := checkAdminInput(name, password, role); err != nil {
		return 0, err
	}
	var (
		hash string
		err  error
	)
	// The hash takes its turn with the logins' (hashGate).
	if e := s.hashes.run(ctx, func() { hash, err = hashPassword(password, s.cfg.PasswordIterations) }); e != nil {
		return 0, e
	}
	if err != nil {
		return 0, err
	}
	id, err := s.access().CreateAdmin(ctx, name, hash, string(role), 0, createdBy)
	if errors.Is(err, ledger.ErrDuplicateRef) {
		return 0, fmt.Errorf("create admin %q: %w", name, ErrAdminExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create admin %q: %w", name, err)
	}
	return id, nil
}

func checkAdminInput(name, password string, role Role) *Error {
	switch {
	case name == "" || len(name) > maxAdminName || !utf8.ValidString(name) || strings.TrimSpace(name) != name:
		return errorf(http.StatusBadRequest, CodeValidation, "name must be 1-64 characters without surrounding spaces")
	case utf8.RuneCountInString(password) < 12 || len(password) > 256:
		return errorf(http.StatusBadRequest, CodeValidation, "password must be 12 to 256 characters")
	case !role.valid():
		return errorf(http.StatusBadRequest, CodeValidation, "role must be Admin, Manager or Employee")
	}
	return nil
}

func (s *Server) createAdmin(q *request) (int, any, error) {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Role     Role   `json:"role"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	id, err := s.CreateAdmin(q.Context(), in.Name, in.Password, in.Role, q.principal.AdminID)
	if errors.Is(err, ErrAdminExists) {
		return 0, nil, errorf(http.StatusConflict, CodeConflict, "an admin with this name exists")
	}
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("admin created", "id", id, "role", in.Role, "by", q.principal.AdminID)
	return http.StatusCreated, map[string]any{"id": id, "name": in.Name, "role": in.Role}, nil
}

type csrInput struct {
	CSR  string `json:"csr"`
	Kind string `json:"kind"`
}

func (s *Server) signPartnerCSR(q *request) (int, any, error) {
	partnerID, err := pathID(q.Request, "partnerId")
	if err != nil {
		return 0, nil, err
	}
	var in csrInput
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Kind != "" && in.Kind != KindPartner {
		return 0, nil, errorf(http.StatusBadRequest, CodeValidation, "kind must be partner here; schemes and acquirers use /admin/entities/{entity}/certificates")
	}
	return s.signCSR(q, in.CSR, CertificateRequest{Kind: KindPartner, PartnerID: partnerID})
}

func (s *Server) signEntityCSR(q *request) (int, any, error) {
	entity := q.PathValue("entity")
	if !validEntity(entity) {
		return 0, nil, errorf(http.StatusBadRequest, CodeValidation, "entity must be 1-64 of A-Z a-z 0-9 . _ -")
	}
	var in csrInput
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Kind != KindScheme && in.Kind != KindAcquirer {
		return 0, nil, errorf(http.StatusBadRequest, CodeValidation, "kind must be scheme or acquirer")
	}
	return s.signCSR(q, in.CSR, CertificateRequest{Kind: in.Kind, Entity: entity})
}

func (s *Server) signCSR(q *request, csrPEM string, req CertificateRequest) (int, any, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return 0, nil, errorf(http.StatusBadRequest, CodeValidation, "%v", err)
	}
	req.PublicKey = csr.PublicKey
	req.IssuedBy = q.principal.AdminID
	ic, err := s.IssueCertificate(q.Context(), req)
	if errors.Is(err, errUnknownPartner) {
		return 0, nil, notFound()
	}
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("client certificate issued", "serial", ic.Serial, "kind", ic.Kind, "partner_id", ic.PartnerID, "entity", ic.Entity, "by", q.principal.AdminID)
	return http.StatusCreated, ic, nil
}

func (s *Server) revokeCertificate(q *request) (int, any, error) {
	serial := strings.ToLower(q.PathValue("serial"))
	if len(serial) == 0 || len(serial) > 40 || strings.Trim(serial, "0123456789abcdef") != "" {
		return 0, nil, notFound()
	}
	at, err := s.RevokeCertificate(q.Context(), serial)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("client certificate revoked", "serial", serial, "by", q.principal.AdminID)
	return http.StatusOK, map[string]any{"serial": serial, "revoked": true, "revokedAt": at}, nil
}

// mintUserSession is device pairing server to server: a partner mints a
// session for one of its own customers. Another partner's customer is 404.
func (s *Server) mintUserSession(q *request) (int, any, error) {
	customerID, err := pathID(q.Request, "customerId")
	if err != nil {
		return 0, nil, err
	}
	if len(q.body) > 0 {
		var in struct{}
		if err := q.decode(&in); err != nil {
			return 0, nil, err
		}
	}
	if s.host == nil {
		return 0, nil, errors.New("mint session: no card host configured")
	}
	partnerID, err := s.host.CustomerPartner(q.Context(), customerID)
	if err != nil {
		return 0, nil, fmt.Errorf("mint session customer %d: %w", customerID, err)
	}
	if partnerID != q.principal.PartnerID {
		return 0, nil, notFound()
	}
	tok, exp, err := s.createSession(q.Context(), "user", customerID, partnerID, 0, q.now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, sessionAnswer{Token: tok, ExpiresAt: exp, CustomerID: customerID}, nil
}

func (s *Server) userSession(q *request) (int, any, error) {
	p := q.principal
	return http.StatusOK, map[string]any{"customerId": p.CustomerID, "expiresAt": p.ExpiresAt}, nil
}

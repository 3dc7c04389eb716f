// Package api is Antaca's REST API: the three channels of DESIGN.md section 8
// (/secure with partner client certificates, /customers/me with user
// sessions, /admin with admin sessions and roles), JWE as the reference
// document specifies it, JSON errors, idempotency keys and the OpenAPI
// document. Card operations are delegated to a CardHost.
package api

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/decimal"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
)

// CardHost is what the handlers need from the card host: exactly the
// methods they call. The api package owns the interface; *cardhost.Host
// satisfies it (checked in a test).
//
// Errors meaning "no such customer/card/balance" must be ErrNotFound (or
// wrap it, or have a NotFound() bool method): the API answers 404 for them
// exactly as for another partner's resources.
type CardHost interface {
	// CustomerPartner returns the partner a customer (user) belongs to.
	CustomerPartner(ctx context.Context, customerID int64) (partnerID int64, err error)

	// Customers and KYC.
	RegisterUser(ctx context.Context, programID int64, externalRef, name, email string) (cardhost.User, error)
	User(ctx context.Context, id int64) (cardhost.User, error)
	SetUserContact(ctx context.Context, userID int64, name, email string) (cardhost.User, error)
	SetKYC(ctx context.Context, userID int64, status cardhost.KYCStatus, by string) (cardhost.User, error)

	// User balances.
	CreateBalance(ctx context.Context, userID int64, currency string) (ledger.Account, error)
	Balances(ctx context.Context, userID int64) ([]cardhost.Balance, error)
	UserBalance(ctx context.Context, userID, accountID int64) (cardhost.Balance, error)
	PartnerReload(ctx context.Context, partnerID, accountID, amount int64, reference string) (ledger.Posting, error)
	AdminReload(ctx context.Context, accountID, amount int64, admin, reason, reference string) (ledger.Approval, error)
	Transactions(ctx context.Context, accountID int64, limit int) ([]ledger.Entry, error)
	CurrencyExponent(ctx context.Context, code string) (int, error)

	// Cards.
	Card(ctx context.Context, id int64) (cardhost.Card, error)
	CreateVirtualCard(ctx context.Context, userID, accountID int64, actor cardhost.Actor) (cardhost.Card, cardhost.CardData, error)
	CreateVirtualCardAsync(ctx context.Context, userID, accountID int64, actor cardhost.Actor) (cardhost.CardJob, error)
	CardJob(ctx context.Context, userID, jobID int64) (cardhost.CardJob, error)
	OrderPhysicalCard(ctx context.Context, userID, accountID int64, actor cardhost.Actor) (cardhost.Card, error)
	Lock(ctx context.Context, cardID int64, code cardhost.LockCode, actor cardhost.Actor, why string) (cardhost.Card, error)
	LockOutside(ctx context.Context, pan string, code cardhost.LockCode, actor cardhost.Actor, why string) (cardhost.Card, error)
	Unlock(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	Remove(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	LinkCard(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	Activate(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	PrintVirtual(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	ResetCVV(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, cardhost.CardData, error)
	SetPIN(ctx context.Context, cardID int64, pin string, actor cardhost.Actor) (cardhost.Card, error)
	FullData(ctx context.Context, cardID int64) (cardhost.Card, cardhost.CardData, error)
	History(ctx context.Context, cardID int64) ([]cardhost.CardEvent, error)

	// Partners, programs, partner balances, summary.
	CreatePartner(ctx context.Context, name, notifyEmail string) (ledger.Partner, error)
	Partner(ctx context.Context, id int64) (ledger.Partner, error)
	Partners(ctx context.Context) ([]ledger.Partner, error)
	CreateProgram(ctx context.Context, spec cardhost.ProgramSpec) (cardhost.Program, error)
	Program(ctx context.Context, id int64) (cardhost.Program, error)
	Programs(ctx context.Context, partnerID int64) ([]cardhost.Program, error)
	Account(ctx context.Context, id int64) (ledger.Account, error)
	PartnerBalances(ctx context.Context, partnerID int64) ([]ledger.Account, error)
	OpenPartnerBalance(ctx context.Context, partnerID int64, kind, currency string, programID int64, threshold *int64) (ledger.Account, error)
	SetThreshold(ctx context.Context, accountID int64, threshold *int64) error
	Summary(ctx context.Context) ([]ledger.CurrencySummary, error)

	// Four-eyes approvals and the exceptions queue (reloads.go).
	Approvals(ctx context.Context, status string) ([]ledger.Approval, error)
	Approval(ctx context.Context, id int64) (ledger.Approval, error)
	Decide(ctx context.Context, id int64, admin string, approve bool) (ledger.Approval, error)
	Exceptions(ctx context.Context, state string) ([]ledger.Exception, error)
	ResolveException(ctx context.Context, id int64, resolution, admin, reference string) (ledger.Exception, ledger.Approval, error)
}

// Config configures a Server. Zero fields take the defaults given.
type Config struct {
	// Addr is the TLS listen address. Default ":8443".
	Addr string
	// PlainAddr, when set, also serves plain HTTP for local tools; /secure
	// answers 401 there since no client certificate can be presented.
	PlainAddr string
	// TLSCert is the server's certificate and key. Required for TLS.
	TLSCert tls.Certificate
	// CA is the internal CA: it signs partner CSRs and is the only root
	// trusted for client certificates. Required.
	CA *x509.Certificate
	// CAKey is the CA's private key. Required.
	CAKey crypto.Signer
	// JWEKey is the server's RSA key for JWE; its kid is the RFC 7638
	// thumbprint. Required.
	JWEKey *rsa.PrivateKey
	// SessionTTL is how long a user or admin session lasts. Default 10 min.
	SessionTTL time.Duration
	// MaxBodyBytes limits request bodies. Default 64 KiB.
	MaxBodyBytes int64
	// CertValidity is how long issued client certificates last. Default
	// one year.
	CertValidity time.Duration
	// PasswordIterations is the PBKDF2-SHA-256 iteration count for new
	// admin passwords. Default 600,000 (OWASP 2023); only tests lower it.
	PasswordIterations int
	// LoginSourceBurst and LoginSourceEvery limit admin logins per source
	// address in memory, before the body is read: a bucket of
	// LoginSourceBurst attempts (default 10), one back every
	// LoginSourceEvery (default 6 s); a successful login gives its attempt
	// back. Past it: 429 TOO_MANY_ATTEMPTS with Retry-After.
	LoginSourceBurst int
	LoginSourceEvery time.Duration
	// Progressive delays, per source address and per admin name (the name's
	// only for sources the admin has never logged in from): the first
	// LoginFreeFailures-1 failures within LoginWindow pass at once, then
	// each failure makes the next check wait LoginDelay, doubling, at most
	// LoginDelayMaxSource (per source) or LoginDelayMaxName (per name).
	// Defaults 3, 15 min, 1 s, 15 min, 1 min. A failure restarts the count
	// when the last was longer than LoginWindow ago; a success clears the
	// source's.
	LoginFreeFailures   int
	LoginWindow         time.Duration
	LoginDelay          time.Duration
	LoginDelayMaxSource time.Duration
	LoginDelayMaxName   time.Duration
	// HashConcurrency bounds the PBKDF2 computations running at once
	// (default GOMAXPROCS/4, at least 1); a login that waits HashWait
	// (default 2 s) for a slot answers 503 BUSY with Retry-After.
	HashConcurrency int
	HashWait        time.Duration
	// LoginConcurrency bounds the logins past the per-source bucket at
	// once (their database work and hashing; default 4), so that a flood
	// cannot take the pool's connections from authorisations; a login
	// that waits HashWait for a place answers 503 BUSY.
	LoginConcurrency int
	// IdempotencyTTL is how long idempotency keys are kept (PruneExpired).
	// Default 24 h.
	IdempotencyTTL time.Duration
	// Logger receives the access log. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the API metrics. Default: none (not registered).
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Webhooks stores endpoints and deliveries; default: the card host's
	// ledger.
	Webhooks WebhookStore
	// SpendRules keeps spend rules (api/spendrules.go); default: the card
	// host, when it does.
	SpendRules SpendRuleStore
	// Simulator sends the simulation endpoints' messages through the
	// switch; nil: they answer 503.
	Simulator Simulator
	// Partner is the outbound client: it checks partners' URLs (remote
	// decision, webhook endpoints) as it will call them. Default: the
	// production client (https only).
	Partner *partner.Client
}

func (c *Config) defaults() error {
	if c.Addr == "" {
		c.Addr = ":8443"
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 10 * time.Minute
	}
	if c.Partner == nil {
		c.Partner = partner.NewClient(partner.Config{})
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.CertValidity <= 0 {
		c.CertValidity = 365 * 24 * time.Hour
	}
	if c.PasswordIterations <= 0 {
		c.PasswordIterations = 600_000
	}
	if c.LoginSourceBurst <= 0 {
		c.LoginSourceBurst = 10
	}
	if c.LoginSourceEvery <= 0 {
		c.LoginSourceEvery = 6 * time.Second
	}
	if c.LoginFreeFailures <= 0 {
		c.LoginFreeFailures = 3
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.LoginDelay <= 0 {
		c.LoginDelay = time.Second
	}
	if c.LoginDelayMaxSource <= 0 {
		c.LoginDelayMaxSource = 15 * time.Minute
	}
	if c.LoginDelayMaxName <= 0 {
		c.LoginDelayMaxName = time.Minute
	}
	if c.HashConcurrency <= 0 {
		c.HashConcurrency = max(runtime.GOMAXPROCS(0)/4, 1)
	}
	if c.LoginConcurrency <= 0 {
		c.LoginConcurrency = 4
	}
	if c.HashWait <= 0 {
		c.HashWait = 2 * time.Second
	}
	if c.IdempotencyTTL <= 0 {
		c.IdempotencyTTL = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.CA == nil || c.CAKey == nil:
		return errors.New("api config: CA and CAKey are required")
	case c.JWEKey == nil:
		return errors.New("api config: JWEKey is required")
	case c.JWEKey.N.BitLen() < 2048:
		return errors.New("api config: JWEKey must be at least 2048 bits")
	}
	return nil
}

// Channel is one of the API's authentication channels.
type Channel string

const (
	ChannelPublic   Channel = "public"   // no authentication
	ChannelSecure   Channel = "secure"   // /secure: client certificate of our CA
	ChannelCustomer Channel = "customer" // /customers/me: user session
	ChannelAdmin    Channel = "admin"    // /admin: admin session and role
)

// Role is an admin user's role.
type Role string

const (
	RoleAdmin    Role = "Admin"
	RoleManager  Role = "Manager"
	RoleEmployee Role = "Employee"
)

// AllRoles lists every admin role, for routes any admin may call.
var AllRoles = []Role{RoleAdmin, RoleManager, RoleEmployee}

func (r Role) valid() bool { return slices.Contains(AllRoles, r) }

// Certificate kinds: who a /secure client certificate was issued to.
const (
	KindPartner  = "partner"
	KindScheme   = "scheme"
	KindAcquirer = "acquirer"
)

// Route describes one registered operation; Routes returns them so tests
// and docs can check the OpenAPI document against the server.
type Route struct {
	Method     string
	Pattern    string // net/http pattern path, e.g. /secure/customers/{customerId}/sessions
	Channel    Channel
	Roles      []Role   // admin channel: roles allowed
	Kinds      []string // secure channel: certificate kinds allowed
	Encryption Encryption
	// SourceLimited counts the request against the per-source login
	// limiter before anything else (body, JWE, database).
	SourceLimited bool
}

// Server is the REST API. Its methods are safe for concurrent use.
type Server struct {
	cfg       Config
	pool      *pgxpool.Pool
	host      CardHost
	log       *slog.Logger
	kid       string
	publicKey []byte // GET /public-key body
	mux       *http.ServeMux
	handler   http.Handler
	metrics   *metrics
	exps      sync.Map // currency code -> exponent
	logins    *sourceLimiter
	hashes    *hashGate
	// loginSlots has a place per login past the per-source bucket.
	loginSlots chan struct{}

	mu      sync.Mutex
	routes  []Route
	servers []*http.Server
	closed  bool // Shutdown was called: Serve returns at once
}

// New builds a Server on pool. host may be nil until card routes exist.
func New(cfg Config, pool *pgxpool.Pool, host CardHost) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("api: nil pool")
	}
	kid, err := keyID(&cfg.JWEKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("api: jwe key id: %w", err)
	}
	doc, err := newPublicKeyDocument(cfg.JWEKey, kid)
	if err != nil {
		return nil, fmt.Errorf("api: public key document: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	if cfg.Webhooks == nil {
		if h, ok := host.(interface{ Ledger() *ledger.Ledger }); ok {
			cfg.Webhooks = partner.Catalog{Ledger: h.Ledger()}
		}
	}
	s := &Server{cfg: cfg, pool: pool, host: host, log: cfg.Logger, kid: kid, publicKey: doc, mux: http.NewServeMux(), metrics: m,
		logins:     newSourceLimiter(cfg.LoginSourceBurst, cfg.LoginSourceEvery),
		hashes:     newHashGate(cfg.HashConcurrency, cfg.HashWait, m),
		loginSlots: make(chan struct{}, cfg.LoginConcurrency)}
	s.registerRoutes()
	if err := s.registerPanel(); err != nil { // the administration panel, /panel/ (api/panel)
		return nil, fmt.Errorf("api: panel: %w", err)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// KeyID returns the kid of the server's JWE key.
func (s *Server) KeyID() string { return s.kid }

// Handler returns the HTTP handler of every route, with JSON 404 and 405.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns the registered operations in registration order.
func (s *Server) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.routes)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// Not found or wrong method: learn which from the mux, answer JSON.
		rec := &probeWriter{header: http.Header{}}
		h, _ := s.mux.Handler(r)
		h.ServeHTTP(rec, r)
		if rec.code == http.StatusMethodNotAllowed {
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s not allowed here", r.Method))
			return
		}
		writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no such route"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// probeWriter records what the mux's own 404/405 handler would answer.
type probeWriter struct {
	header http.Header
	code   int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int)        { p.code = code }

// TLSConfig is the server side TLS configuration: the server certificate,
// client certificates verified when given, against the internal CA only.
func (s *Server) TLSConfig() *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(s.cfg.CA)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.cfg.TLSCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    roots,
		Time:         s.cfg.Now,
	}
}

// newHTTPServer returns nil after Shutdown.
func (s *Server) newHTTPServer() *http.Server {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.servers = append(s.servers, hs)
	return hs
}

// Serve serves TLS on ln until Shutdown; it returns http.ErrServerClosed
// after a Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if len(s.cfg.TLSCert.Certificate) == 0 {
		return errors.New("api: no TLS certificate configured")
	}
	hs := s.newHTTPServer()
	if hs == nil {
		ln.Close()
		return http.ErrServerClosed
	}
	hs.TLSConfig = s.TLSConfig()
	return hs.Serve(tls.NewListener(ln, hs.TLSConfig))
}

// ServePlain serves plain HTTP on ln (local tools; /secure refuses).
func (s *Server) ServePlain(ln net.Listener) error {
	hs := s.newHTTPServer()
	if hs == nil {
		ln.Close()
		return http.ErrServerClosed
	}
	return hs.Serve(ln)
}

// ListenAndServeTLS listens on Addr (TLS) and, when set, PlainAddr, and
// serves until Shutdown or a listener fails.
func (s *Server) ListenAndServeTLS() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api listen %s: %w", s.cfg.Addr, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.Serve(ln) }()
	n := 1
	if s.cfg.PlainAddr != "" {
		pln, err := net.Listen("tcp", s.cfg.PlainAddr)
		if err != nil {
			ln.Close()
			<-errc
			return fmt.Errorf("api listen %s: %w", s.cfg.PlainAddr, err)
		}
		n++
		go func() { errc <- s.ServePlain(pln) }()
	}
	s.log.Info("api listening", "addr", s.cfg.Addr, "plain_addr", s.cfg.PlainAddr, "jwe_kid", s.kid)
	err = <-errc
	if !errors.Is(err, http.ErrServerClosed) {
		s.Shutdown(context.Background())
	}
	for range n - 1 {
		<-errc
	}
	return err
}

// Shutdown stops accepting connections and waits for requests in flight,
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	servers := slices.Clone(s.servers)
	s.mu.Unlock()
	defer s.hashes.close()
	var errs []error
	for _, hs := range servers {
		errs = append(errs, hs.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// pathID reads a path value as an id (decimal.ID: canonical decimal);
// anything else is 404, since no resource has that id.
func pathID(r *http.Request, name string) (int64, error) {
	id, ok := decimal.ID(r.PathValue(name))
	if !ok {
		return 0, notFound()
	}
	return id, nil
}

package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

func TestMain(m *testing.M) { ledgertest.Main(m) }

// RSA keys are slow to generate: one server key and one client key for the
// whole test binary.
var (
	keysOnce  sync.Once
	serverKey *rsa.PrivateKey
	clientKey *rsa.PrivateKey
)

func testKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if serverKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if clientKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return serverKey, clientKey
}

// fakeHost is a card host of fixed customers: customer id -> partner id,
// for the tests of the channels themselves. Any other method panics (the
// embedded interface is nil); card tests use a real *cardhost.Host
// (newCardEnv).
type fakeHost struct {
	CardHost
	customers map[int64]int64
}

func (h *fakeHost) CustomerPartner(ctx context.Context, customerID int64) (int64, error) {
	p, ok := h.customers[customerID]
	if !ok {
		return 0, ErrNotFound
	}
	return p, nil
}

// env is a Server over real TLS on 127.0.0.1 with its own database.
type env struct {
	t    *testing.T
	s    *Server
	pool *pgxpool.Pool
	url  string
	ca   *x509.Certificate
	host *fakeHost
	ch   *cardhost.Host // newCardEnv only
	keys *hsm.Keys      // newCardEnv only
	logs *syncBuffer    // newCardEnv only
	now  atomic.Pointer[time.Time]
	cfg  Config
}

func newEnv(t *testing.T, mod ...func(*Config)) *env { return newEnvHost(t, false, mod...) }

// newCardEnv is an env whose server runs on a real *cardhost.Host over the
// test database, with the ledger, and logs at Info level into e.logs as
// well, so tests can check that no card data reaches a log line.
func newCardEnv(t *testing.T) *env { return newEnvHost(t, true) }

var (
	hostKeysOnce sync.Once
	hostKeys     *hsm.Keys
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnvHost(t *testing.T, real bool, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, pool: ledgertest.Pool(t), host: &fakeHost{customers: map[int64]int64{}}}
	start := time.Now()
	e.now.Store(&start)
	sk, _ := testKeys(t)
	ca, caKey, err := NewCA("Antaca test CA", start)
	if err != nil {
		t.Fatal(err)
	}
	e.ca = ca
	srvCert, err := IssueServerCertificate(ca, caKey, []string{"127.0.0.1", "localhost"}, start, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{
		TLSCert:            srvCert,
		CA:                 ca,
		CAKey:              caKey,
		JWEKey:             sk,
		PasswordIterations: 1000, // tests only; the default is 600,000
		Logger:             slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:                func() time.Time { return *e.now.Load() },
	}
	for _, f := range mod {
		f(&e.cfg)
	}
	var host CardHost = e.host
	if real {
		hostKeysOnce.Do(func() {
			var err error
			if hostKeys, err = hsm.GenerateKeys(); err != nil {
				panic(err)
			}
		})
		e.keys = hostKeys
		e.logs = &syncBuffer{}
		log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), e.logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
		e.cfg.Logger = log
		e.ch = cardhost.NewHost(e.pool, ledger.New(e.pool, ledger.Config{Logger: log}), hostKeys, cardhost.Config{Logger: log})
		host = e.ch
		e.cfg.Simulator = startSwitch(t, e.ch)
	}
	e.s, err = New(e.cfg, e.pool, host)
	if err != nil {
		t.Fatal(err)
	}
	e.s.registerTestRoutes()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "https://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return e
}

// advance moves the server's clock.
func (e *env) advance(d time.Duration) {
	n := e.now.Load().Add(d)
	e.now.Store(&n)
}

// registerTestRoutes adds echo routes that require JWE, standing in for
// card routes until they exist. They are not in the OpenAPI document.
func (s *Server) registerTestRoutes() {
	echo := func(q *request) (int, any, error) {
		var v map[string]any
		if len(q.body) > 0 {
			if err := q.decode(&v); err != nil {
				return 0, nil, err
			}
		}
		return http.StatusOK, map[string]any{"echo": v, "scope": q.principal.scope()}, nil
	}
	s.route(Route{Method: "POST", Pattern: "/secure/test/echo", Channel: ChannelSecure, Encryption: EncryptionRequired}, echo)
	s.route(Route{Method: "GET", Pattern: "/secure/test/echo", Channel: ChannelSecure, Encryption: EncryptionRequired}, echo)
	s.route(Route{Method: "POST", Pattern: "/secure/test/outside", Channel: ChannelSecure, Kinds: []string{KindScheme, KindAcquirer}, Encryption: EncryptionRequired}, echo)
	s.route(Route{Method: "POST", Pattern: "/secure/test/nocontent", Channel: ChannelSecure, Encryption: EncryptionRequired},
		func(q *request) (int, any, error) { return http.StatusNoContent, nil, nil })
}

var testOnlyRoutes = map[string]bool{
	"POST /secure/test/echo": true, "GET /secure/test/echo": true,
	"POST /secure/test/outside": true, "POST /secure/test/nocontent": true,
}

// client returns an HTTPS client trusting the test CA, presenting cert
// when given. Keep-alives are off so each request makes a new handshake.
func (e *env) client(cert *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(e.ca)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) errCode() string {
	var e Error
	json.Unmarshal(r.body, &e)
	return e.Code
}

// do sends a request; body is marshalled to JSON unless it is []byte.
func (e *env) do(c *http.Client, method, path string, body any, hdr map[string]string) resp {
	e.t.Helper()
	r, err := e.try(c, method, path, body, hdr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) try(c *http.Client, method, path string, body any, hdr map[string]string) (resp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return resp{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return resp{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}, err
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// partner inserts a partner row and returns its id.
func (e *env) partner(name string) int64 {
	e.t.Helper()
	var id int64
	if err := e.pool.QueryRow(context.Background(), `INSERT INTO partners (name) VALUES ($1) RETURNING id`, name).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// partnerClient issues a recorded certificate for partnerID and returns a
// client presenting it.
func (e *env) partnerClient(partnerID int64) *http.Client {
	e.t.Helper()
	certPEM, keyPEM, err := e.s.IssueDevClientCertificate(context.Background(), partnerID)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.client(&cert)
}

// admin creates an admin with role and returns a session token.
func (e *env) admin(name string, role Role) string {
	e.t.Helper()
	if _, err := e.s.CreateAdmin(context.Background(), name, name+"-password-123", role, 0); err != nil {
		e.t.Fatal(err)
	}
	r := e.do(e.client(nil), "POST", "/admin/login", map[string]string{"name": name, "password": name + "-password-123"}, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("login %s: got %d %s, want 200", name, r.status, r.body)
	}
	var s struct{ Token string }
	json.Unmarshal(r.body, &s)
	return s.Token
}

// newCSR makes a CSR PEM and its key.
func newCSR(t testing.TB, cn string) (string, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func tlsCert(t testing.TB, certPEM string, key crypto.Signer) tls.Certificate {
	t.Helper()
	keyPEM, err := PrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair([]byte(certPEM), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/antaca/antaca/specs"
)

// The partner's path to /secure: an admin signs its CSR, the certificate
// opens /secure for that partner only, a session minted there works on
// /customers/me, and revocation closes /secure.
func TestCSRSignedCertificateOpensSecure(t *testing.T) {
	e := newEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	p1, p2 := e.partner("Fintech One"), e.partner("Fintech Two")
	e.host.customers[100] = p1
	e.host.customers[200] = p2

	csr, key := newCSR(t, "ignored by the CA")
	r := e.do(e.client(nil), "POST", "/admin/partners/"+itoa(p1)+"/certificates", map[string]string{"csr": csr}, bearerHdr(adminTok))
	if r.status != http.StatusCreated {
		t.Fatalf("sign csr: got %d %s, want 201", r.status, r.body)
	}
	var ic IssuedCertificate
	if err := json.Unmarshal(r.body, &ic); err != nil {
		t.Fatal(err)
	}
	if ic.Kind != KindPartner || ic.PartnerID != p1 {
		t.Fatalf("issued kind %q partner %d, want partner %d", ic.Kind, ic.PartnerID, p1)
	}
	block, _ := pem.Decode([]byte(ic.Certificate))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.URIs[0].String(); got != "antaca:partner:"+itoa(p1) {
		t.Fatalf("URI SAN %q, want antaca:partner:%d", got, p1)
	}
	cert := tlsCert(t, ic.Certificate, key)
	pc := e.client(&cert)

	r = e.do(pc, "POST", "/secure/customers/100/sessions", nil, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("mint session: got %d %s, want 201", r.status, r.body)
	}
	var sess sessionAnswer
	json.Unmarshal(r.body, &sess)
	if sess.Token == "" || !sess.ExpiresAt.Equal(e.now.Load().Add(10*time.Minute)) {
		t.Fatalf("session %+v: want a token expiring in 10 minutes", sess)
	}
	r = e.do(e.client(nil), "GET", "/customers/me/session", nil, bearerHdr(sess.Token))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"customerId":100`) {
		t.Fatalf("user session: got %d %s, want 200 for customer 100", r.status, r.body)
	}
	// The token is stored hashed only.
	var n int
	e.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions WHERE token_hash = $1`, []byte(sess.Token)).Scan(&n)
	if n != 0 {
		t.Fatal("session token stored in clear")
	}

	// Another partner's customer and an unknown customer look the same.
	for _, path := range []string{"/secure/customers/200/sessions", "/secure/customers/999/sessions", "/secure/customers/abc/sessions"} {
		r = e.do(pc, "POST", path, nil, nil)
		if r.status != http.StatusNotFound || r.errCode() != CodeNotFound {
			t.Errorf("%s: got %d %s, want 404 NOT_FOUND", path, r.status, r.body)
		}
	}
	// An admin token is no user session, and the reverse.
	if r = e.do(e.client(nil), "GET", "/customers/me/session", nil, bearerHdr(adminTok)); r.status != http.StatusUnauthorized {
		t.Errorf("admin token on /customers/me: got %d, want 401", r.status)
	}
	if r = e.do(e.client(nil), "GET", "/admin/session", nil, bearerHdr(sess.Token)); r.status != http.StatusUnauthorized {
		t.Errorf("user token on /admin: got %d, want 401", r.status)
	}
	// A partner certificate is no scheme certificate.
	if r = e.do(pc, "POST", "/secure/test/outside", nil, nil); r.status != http.StatusForbidden {
		t.Errorf("partner cert on lock-outside route: got %d %s, want 403", r.status, r.body)
	}

	// Revocation closes /secure from the next request.
	r = e.do(e.client(nil), "POST", "/admin/certificates/"+ic.Serial+"/revoke", nil, bearerHdr(adminTok))
	if r.status != http.StatusOK {
		t.Fatalf("revoke: got %d %s, want 200", r.status, r.body)
	}
	r = e.do(pc, "POST", "/secure/customers/100/sessions", nil, nil)
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "revoked") {
		t.Fatalf("revoked cert: got %d %s, want 401 revoked", r.status, r.body)
	}
}

func TestEntityCertificateForLockOutside(t *testing.T) {
	e := newEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	csr, key := newCSR(t, "visa")
	r := e.do(e.client(nil), "POST", "/admin/entities/VISA/certificates", map[string]string{"csr": csr, "kind": "scheme"}, bearerHdr(adminTok))
	if r.status != http.StatusCreated {
		t.Fatalf("sign entity csr: got %d %s, want 201", r.status, r.body)
	}
	var ic IssuedCertificate
	json.Unmarshal(r.body, &ic)
	cert := tlsCert(t, ic.Certificate, key)
	c := e.client(&cert)
	_, ck := testKeys(t)
	r = e.do(c, "POST", "/secure/test/outside", nil, map[string]string{headerPublicKey: pubHeader(t, &ck.PublicKey)})
	if r.status != http.StatusOK {
		t.Fatalf("scheme cert on lock-outside route: got %d %s, want 200", r.status, r.body)
	}
	if got := decryptAnswer(t, r.body, ck); !strings.Contains(string(got), `"scope":"secure:scheme:VISA"`) {
		t.Fatalf("answer %s: want scope secure:scheme:VISA", got)
	}
	// A scheme certificate may not act as a partner.
	if r = e.do(c, "POST", "/secure/customers/1/sessions", nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("scheme cert on partner route: got %d %s, want 403", r.status, r.body)
	}
	// Bad entity names and kinds.
	for _, tc := range []struct{ path, kind string }{{"/admin/entities/VISA/certificates", "partner"}, {"/admin/entities/bad%20name/certificates", "scheme"}} {
		r = e.do(e.client(nil), "POST", tc.path, map[string]string{"csr": csr, "kind": tc.kind}, bearerHdr(adminTok))
		if r.status != http.StatusBadRequest || r.errCode() != CodeValidation {
			t.Errorf("%s kind %s: got %d %s, want 400 VALIDATION_ERROR", tc.path, tc.kind, r.status, r.body)
		}
	}
}

func TestCSRValidation(t *testing.T) {
	e := newEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	p := e.partner("P")
	csr, _ := newCSR(t, "x")
	// Flip a byte of the signature: the CSR no longer verifies.
	block, _ := pem.Decode([]byte(csr))
	block.Bytes[len(block.Bytes)-2] ^= 0xff
	bad := string(pem.EncodeToMemory(block))
	for name, tc := range map[string]struct {
		path, csr string
		status    int
		code      string
	}{
		"bad signature":   {"/admin/partners/" + itoa(p) + "/certificates", bad, 400, CodeValidation},
		"not pem":         {"/admin/partners/" + itoa(p) + "/certificates", "hello", 400, CodeValidation},
		"unknown partner": {"/admin/partners/99999/certificates", csr, 404, CodeNotFound},
	} {
		r := e.do(e.client(nil), "POST", tc.path, map[string]string{"csr": tc.csr}, bearerHdr(adminTok))
		if r.status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: got %d %s, want %d %s", name, r.status, r.body, tc.status, tc.code)
		}
	}
}

func TestClientCertificatesRefused(t *testing.T) {
	e := newEnv(t)
	p := e.partner("P")

	// No certificate: JSON 401 on /secure, public routes still work.
	r := e.do(e.client(nil), "POST", "/secure/customers/1/sessions", nil, nil)
	if r.status != http.StatusUnauthorized || r.errCode() != CodeUnauthenticated {
		t.Fatalf("no cert: got %d %s, want 401 UNAUTHENTICATED", r.status, r.body)
	}

	// A certificate from an unknown CA, with a valid-looking identity.
	otherCA, otherKey, err := NewCA("Evil CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other := &Server{cfg: Config{CA: otherCA, CAKey: otherKey, CertValidity: time.Hour, Now: time.Now}, pool: e.pool}
	certPEM, keyPEM, err := other.IssueDevClientCertificate(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.try(e.client(&cert), "POST", "/secure/customers/1/sessions", nil, nil)
	if err == nil && r2.status != http.StatusUnauthorized {
		t.Fatalf("unknown CA: got %d %s, want a refused handshake or 401", r2.status, r2.body)
	}

	// Signed by our CA but never recorded (not issued through the API).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ghost := &Server{cfg: Config{CA: e.ca, CAKey: e.cfg.CAKey, CertValidity: time.Hour, Now: time.Now}, pool: e.pool}
	ic, err := ghost.IssueCertificate(context.Background(), CertificateRequest{Kind: KindPartner, PartnerID: p, PublicKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	e.pool.Exec(context.Background(), `DELETE FROM partner_certificates WHERE serial = $1`, ic.Serial)
	gc := tlsCert(t, ic.Certificate, key)
	r = e.do(e.client(&gc), "POST", "/secure/customers/1/sessions", nil, nil)
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "not registered") {
		t.Fatalf("unrecorded cert: got %d %s, want 401 not registered", r.status, r.body)
	}

	// Expired: the server's clock passes the certificate's NotAfter.
	pc := e.partnerClient(p)
	e.host.customers[1] = p
	if r = e.do(pc, "POST", "/secure/customers/1/sessions", nil, nil); r.status != http.StatusCreated {
		t.Fatalf("fresh cert: got %d %s, want 201", r.status, r.body)
	}
	e.advance(366 * 24 * time.Hour)
	r2, err = e.try(pc, "POST", "/secure/customers/1/sessions", nil, nil)
	if err == nil && r2.status != http.StatusUnauthorized {
		t.Fatalf("expired cert: got %d %s, want a refused handshake or 401", r2.status, r2.body)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionTTL = 5 * time.Minute })
	p := e.partner("P")
	e.host.customers[7] = p
	pc := e.partnerClient(p)
	adminTok := e.admin("root", RoleAdmin)
	r := e.do(pc, "POST", "/secure/customers/7/sessions", nil, nil)
	var sess sessionAnswer
	json.Unmarshal(r.body, &sess)

	e.advance(4*time.Minute + 59*time.Second)
	if r = e.do(e.client(nil), "GET", "/customers/me/session", nil, bearerHdr(sess.Token)); r.status != http.StatusOK {
		t.Fatalf("before expiry: got %d %s, want 200", r.status, r.body)
	}
	e.advance(time.Second)
	for _, c := range []struct{ path, tok string }{{"/customers/me/session", sess.Token}, {"/admin/session", adminTok}} {
		r = e.do(e.client(nil), "GET", c.path, nil, bearerHdr(c.tok))
		if r.status != http.StatusUnauthorized || r.errCode() != CodeSessionExpired {
			t.Errorf("%s after expiry: got %d %s, want 401 SESSION_EXPIRED", c.path, r.status, r.body)
		}
	}
	for _, h := range []map[string]string{nil, bearerHdr("nope"), {"Authorization": "Basic eDp5"}} {
		r = e.do(e.client(nil), "GET", "/customers/me/session", nil, h)
		if r.status != http.StatusUnauthorized || r.errCode() != CodeUnauthenticated || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("header %v: got %d %s, want 401 UNAUTHENTICATED with WWW-Authenticate", h, r.status, r.body)
		}
	}
	if n, _, err := e.s.PruneExpired(context.Background()); err != nil || n != 2 {
		t.Errorf("prune: %d sessions, %v; want 2", n, err)
	}
}

func TestAdminLogin(t *testing.T) {
	e := newEnv(t)
	tok := e.admin("alice", RoleManager)
	r := e.do(e.client(nil), "GET", "/admin/session", nil, bearerHdr(tok))
	if r.status != 200 || !strings.Contains(string(r.body), `"role":"Manager"`) {
		t.Fatalf("session: got %d %s", r.status, r.body)
	}
	for _, in := range []map[string]string{{"name": "alice", "password": "wrong-password-1"}, {"name": "bob", "password": "alice-password-123"}} {
		r = e.do(e.client(nil), "POST", "/admin/login", in, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("login %v: got %d, want 401", in["name"], r.status)
		}
	}
	if r = e.do(e.client(nil), "DELETE", "/admin/session", nil, bearerHdr(tok)); r.status != http.StatusNoContent {
		t.Fatalf("logout: got %d", r.status)
	}
	if r = e.do(e.client(nil), "GET", "/admin/session", nil, bearerHdr(tok)); r.status != http.StatusUnauthorized {
		t.Fatalf("after logout: got %d, want 401", r.status)
	}
}

// TestRunPrune: the loop the API process runs deletes expired sessions.
func TestRunPrune(t *testing.T) {
	e := newEnv(t)
	e.admin("alice", RoleAdmin)
	e.advance(11 * time.Minute) // past the 10-minute session
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.s.RunPrune(ctx, 5*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left 10 s after they expired", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The role table of DESIGN.md section 8 for the admin routes that exist.
// Partner administration (certificates, admins) is Admin only, like
// partner balances.
func TestAdminRoleMatrix(t *testing.T) {
	e := newEnv(t)
	toks := map[Role]string{RoleAdmin: e.admin("a", RoleAdmin), RoleManager: e.admin("m", RoleManager), RoleEmployee: e.admin("e", RoleEmployee)}
	p := e.partner("P")
	csr, _ := newCSR(t, "x")
	cases := []struct {
		method, path string
		body         any
		allowed      []Role
	}{
		{"GET", "/admin/session", nil, AllRoles},
		{"POST", "/admin/admins", map[string]string{"name": "new", "password": "a-long-password", "role": "Employee"}, []Role{RoleAdmin}},
		{"POST", "/admin/partners/" + itoa(p) + "/certificates", map[string]string{"csr": csr}, []Role{RoleAdmin}},
		{"POST", "/admin/entities/ACQ1/certificates", map[string]string{"csr": csr, "kind": "acquirer"}, []Role{RoleAdmin}},
		{"POST", "/admin/certificates/abc/revoke", nil, []Role{RoleAdmin}},
		{"DELETE", "/admin/session", nil, AllRoles},
	}
	for _, c := range cases {
		for _, role := range AllRoles {
			r := e.do(e.client(nil), c.method, c.path, c.body, bearerHdr(toks[role]))
			allowed := slices.Contains(c.allowed, role)
			if allowed && (r.status == 401 || r.status == 403) {
				t.Errorf("%s %s as %s: got %d %s, want allowed", c.method, c.path, role, r.status, r.body)
			}
			if !allowed && (r.status != http.StatusForbidden || r.errCode() != CodeForbidden) {
				t.Errorf("%s %s as %s: got %d %s, want 403 FORBIDDEN", c.method, c.path, role, r.status, r.body)
			}
			if c.path == "/admin/admins" && allowed && r.status != http.StatusCreated {
				t.Errorf("create admin as %s: got %d %s, want 201", role, r.status, r.body)
			}
		}
	}
	// The Admin-created admin can log in with its role.
	r := e.do(e.client(nil), "POST", "/admin/login", map[string]string{"name": "new", "password": "a-long-password"}, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"role":"Employee"`) {
		t.Fatalf("login of created admin: got %d %s", r.status, r.body)
	}
	// Validation of new admins (the matrix logged every token out).
	toks[RoleAdmin] = e.admin("a2", RoleAdmin)
	for _, in := range []map[string]string{
		{"name": "x", "password": "short", "role": "Admin"},
		{"name": "y", "password": "a-long-password", "role": "Root"},
		{"name": "", "password": "a-long-password", "role": "Admin"},
	} {
		if r := e.do(e.client(nil), "POST", "/admin/admins", in, bearerHdr(toks[RoleAdmin])); r.status != 400 || r.errCode() != CodeValidation {
			t.Errorf("create admin %v: got %d %s, want 400 VALIDATION_ERROR", in, r.status, r.body)
		}
	}
	if r := e.do(e.client(nil), "POST", "/admin/admins", map[string]string{"name": "new", "password": "a-long-password", "role": "Admin"}, bearerHdr(toks[RoleAdmin])); r.status != http.StatusConflict {
		t.Errorf("duplicate admin: got %d %s, want 409", r.status, r.body)
	}
}

// pubHeader is the Public-Key header of key: base64 of its DER SPKI.
func pubHeader(t testing.TB, key *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// serverJWK fetches GET /public-key as a client would.
func serverJWK(t *testing.T, e *env) (jose.JSONWebKey, publicKeyDocument) {
	t.Helper()
	r := e.do(e.client(nil), "GET", "/public-key", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("public key: got %d %s", r.status, r.body)
	}
	var doc publicKeyDocument
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(doc.JWK); err != nil {
		t.Fatal(err)
	}
	return jwk, doc
}

func encryptTo(t testing.TB, key any, alg jose.KeyAlgorithm, enc jose.ContentEncryption, plain []byte, opts *jose.EncrypterOptions) string {
	t.Helper()
	en, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := en.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func envelope(compact string) []byte {
	b, _ := json.Marshal(map[string]string{"payload": compact})
	return b
}

func decryptAnswer(t testing.TB, body []byte, key *rsa.PrivateKey) []byte {
	t.Helper()
	var env struct{ Payload string }
	if err := json.Unmarshal(body, &env); err != nil || env.Payload == "" {
		t.Fatalf("answer %s is not a JWE envelope", body)
	}
	obj, err := jose.ParseEncryptedCompact(env.Payload, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		t.Fatalf("answer JWE: %v", err)
	}
	plain, err := obj.Decrypt(key)
	if err != nil {
		t.Fatalf("decrypt answer: %v", err)
	}
	return plain
}

func TestJWERoundTrip(t *testing.T) {
	e := newEnv(t)
	p := e.partner("P")
	pc := e.partnerClient(p)
	_, ck := testKeys(t)
	jwk, doc := serverJWK(t, e)
	tp, _ := jwk.Thumbprint(crypto.SHA256)
	if doc.KeyID != base64.RawURLEncoding.EncodeToString(tp) || jwk.KeyID != doc.KeyID {
		t.Fatalf("kid %q (jwk %q), want the RFC 7638 thumbprint", doc.KeyID, jwk.KeyID)
	}
	if !strings.HasPrefix(doc.PEM, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("pem %q", doc.PEM)
	}
	pemHeader := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustDER(t, &ck.PublicKey)}))
	for _, tc := range []struct {
		alg    jose.KeyAlgorithm
		header string
	}{{jose.RSA_OAEP_256, pubHeader(t, &ck.PublicKey)}, {jose.RSA_OAEP, pemHeader}} {
		t.Run(string(tc.alg), func(t *testing.T) {
			req := encryptTo(t, jwk.Key, tc.alg, jose.A256GCM, []byte(`{"card_no":1337}`), (&jose.EncrypterOptions{}).WithHeader("kid", doc.KeyID))
			r := e.do(pc, "POST", "/secure/test/echo", envelope(req), map[string]string{headerPublicKey: tc.header, headerEncrypted: "true"})
			if r.status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", r.status, r.body)
			}
			plain := decryptAnswer(t, r.body, ck)
			if !strings.Contains(string(plain), `"echo":{"card_no":1337}`) {
				t.Fatalf("decrypted answer %s", plain)
			}
		})
	}
	// GET: no body, the Public-Key header still gets an encrypted answer.
	r := e.do(pc, "GET", "/secure/test/echo", nil, map[string]string{headerPublicKey: pubHeader(t, &ck.PublicKey), headerEncrypted: "true"})
	if r.status != http.StatusOK {
		t.Fatalf("GET: got %d %s", r.status, r.body)
	}
	decryptAnswer(t, r.body, ck)
	// 204 is never encrypted; neither are errors.
	r = e.do(pc, "POST", "/secure/test/nocontent", nil, map[string]string{headerPublicKey: pubHeader(t, &ck.PublicKey)})
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("204: got %d %q", r.status, r.body)
	}
	req := encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{"card_no":`), nil)
	r = e.do(pc, "POST", "/secure/test/echo", envelope(req), map[string]string{headerPublicKey: pubHeader(t, &ck.PublicKey), headerEncrypted: "true"})
	if r.status != http.StatusBadRequest || r.errCode() != CodeInvalidJSON {
		t.Fatalf("bad inner JSON: got %d %s, want plain 400 INVALID_JSON", r.status, r.body)
	}
	// An optional route answers encrypted when asked.
	e.host.customers[5] = p
	r = e.do(pc, "POST", "/secure/customers/5/sessions", nil, map[string]string{headerPublicKey: pubHeader(t, &ck.PublicKey), headerEncrypted: "true"})
	if r.status != http.StatusCreated || !strings.Contains(string(decryptAnswer(t, r.body, ck)), `"token"`) {
		t.Fatalf("optional route encrypted: got %d %s", r.status, r.body)
	}
}

func mustDER(t testing.TB, k *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestJWEErrors(t *testing.T) {
	e := newEnv(t)
	pc := e.partnerClient(e.partner("P"))
	_, ck := testKeys(t)
	jwk, _ := serverJWK(t, e)
	pub := pubHeader(t, &ck.PublicKey)
	good := encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{"a":1}`), nil)

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	sym := make([]byte, 32)
	hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	parts := strings.Split(good, ".")
	tampered := strings.Join([]string{parts[0], parts[1], parts[2], flip(parts[3]), parts[4]}, ".")
	big := hdr(`{"alg":"RSA-OAEP-256","enc":"A256GCM","x":"`+strings.Repeat("a", 2000)+`"}`) + "." + strings.Join(parts[1:], ".")
	withHeader := func(h string) string { return hdr(h) + "." + strings.Join(parts[1:], ".") }

	cases := []struct {
		name   string
		method string
		body   []byte
		hdr    map[string]string
		code   string
	}{
		{"plain body", "POST", []byte(`{"a":1}`), map[string]string{headerPublicKey: pub, headerEncrypted: "false"}, CodeEncryptionRequired},
		{"plain body no headers", "POST", []byte(`{"a":1}`), nil, CodeEncryptionRequired},
		{"GET without Public-Key", "GET", nil, nil, CodeEncryptionRequired},
		{"Public-Key not base64", "POST", envelope(good), map[string]string{headerPublicKey: "***", headerEncrypted: "true"}, CodeInvalidPublicKey},
		{"Public-Key not a key", "POST", envelope(good), map[string]string{headerPublicKey: base64.StdEncoding.EncodeToString([]byte("hello")), headerEncrypted: "true"}, CodeInvalidPublicKey},
		{"Public-Key EC", "GET", nil, map[string]string{headerPublicKey: base64.StdEncoding.EncodeToString(ecDER)}, CodeInvalidPublicKey},
		{"Public-Key RSA 1024", "GET", nil, map[string]string{headerPublicKey: pubHeader(t, &small.PublicKey)}, CodeInvalidPublicKey},
		{"encrypted without Public-Key", "POST", envelope(good), map[string]string{headerEncrypted: "true"}, CodeInvalidPublicKey},
		{"envelope not JSON", "POST", []byte(`payload`), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"envelope without payload", "POST", []byte(`{"data":"x"}`), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"payload not compact", "POST", envelope("a.b.c"), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"alg none", "POST", envelope(withHeader(`{"alg":"none","enc":"A256GCM"}`)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"alg dir", "POST", envelope(encryptTo(t, sym, jose.DIRECT, jose.A256GCM, []byte(`{}`), nil)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"alg A256KW", "POST", envelope(encryptTo(t, sym, jose.A256KW, jose.A256GCM, []byte(`{}`), nil)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"alg RSA1_5", "POST", envelope(encryptTo(t, jwk.Key, jose.RSA1_5, jose.A256GCM, []byte(`{}`), nil)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"enc A128GCM", "POST", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A128GCM, []byte(`{}`), nil)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"enc A256CBC-HS512", "POST", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256CBC_HS512, []byte(`{}`), nil)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"zip", "POST", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{}`), &jose.EncrypterOptions{Compression: jose.DEFLATE})), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"oversized header", "POST", envelope(big), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeInvalidPayload},
		{"other key", "POST", envelope(encryptTo(t, &otherKey.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{}`), nil)), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeCantDecryptPayload},
		{"tampered", "POST", envelope(tampered), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeCantDecryptPayload},
		{"wrong kid", "POST", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{}`), (&jose.EncrypterOptions{}).WithHeader("kid", "nope"))), map[string]string{headerPublicKey: pub, headerEncrypted: "true"}, CodeCantDecryptPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(pc, c.method, "/secure/test/echo", c.body, c.hdr)
			if r.status != http.StatusBadRequest || r.errCode() != c.code {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.body, c.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q, want plain application/json", ct)
			}
		})
	}
}

// flip changes one base64url character.
func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	a1, a2 := e.admin("a1", RoleAdmin), e.admin("a2", RoleAdmin)
	c := e.client(nil)
	body := map[string]string{"name": "n1", "password": "a-long-password", "role": "Employee"}
	h := map[string]string{"Authorization": "Bearer " + a1, headerIdempotency: "key-1"}
	first := e.do(c, "POST", "/admin/admins", body, h)
	if first.status != http.StatusCreated {
		t.Fatalf("first: got %d %s", first.status, first.body)
	}
	again := e.do(c, "POST", "/admin/admins", body, h)
	if again.status != http.StatusCreated || string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: got %d %s, want the first answer replayed", again.status, again.body)
	}
	other := e.do(c, "POST", "/admin/admins", map[string]string{"name": "n2", "password": "a-long-password", "role": "Employee"}, h)
	if other.status != http.StatusUnprocessableEntity || other.errCode() != CodeIdempotencyKeyReused {
		t.Fatalf("other body: got %d %s, want 422 IDEMPOTENCY_KEY_REUSED", other.status, other.body)
	}
	// Keys are scoped per subject: another admin's key-1 is its own, and
	// its request runs (409: n1 exists).
	r := e.do(c, "POST", "/admin/admins", body, map[string]string{"Authorization": "Bearer " + a2, headerIdempotency: "key-1"})
	if r.status != http.StatusConflict {
		t.Fatalf("other subject: got %d %s, want 409 from running the request", r.status, r.body)
	}
	if r = e.do(c, "POST", "/admin/admins", body, map[string]string{"Authorization": "Bearer " + a1, headerIdempotency: strings.Repeat("k", 300)}); r.status != 400 {
		t.Fatalf("long key: got %d, want 400", r.status)
	}

	// Over JWE: the same plaintext encrypted again is the same request and
	// gets the same (encrypted) answer.
	pc := e.partnerClient(e.partner("P"))
	_, ck := testKeys(t)
	jwk, _ := serverJWK(t, e)
	jh := map[string]string{headerPublicKey: pubHeader(t, &ck.PublicKey), headerEncrypted: "true", headerIdempotency: "jwe-1"}
	r1 := e.do(pc, "POST", "/secure/test/echo", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{"x":1}`), nil)), jh)
	r2 := e.do(pc, "POST", "/secure/test/echo", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP, jose.A256GCM, []byte(`{"x":1}`), nil)), jh)
	if r1.status != 200 || r2.status != 200 || string(r1.body) != string(r2.body) {
		t.Fatalf("jwe replay: got %d/%d, want 200 and identical bodies", r1.status, r2.body)
	}
	r3 := e.do(pc, "POST", "/secure/test/echo", envelope(encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, []byte(`{"x":2}`), nil)), jh)
	if r3.status != http.StatusUnprocessableEntity {
		t.Fatalf("jwe other body: got %d %s, want 422", r3.status, r3.body)
	}
	// The stored answer is the encrypted one: no plaintext at rest.
	var stored []byte
	e.pool.QueryRow(context.Background(), `SELECT body FROM idempotency_keys WHERE key = 'jwe-1'`).Scan(&stored)
	if strings.Contains(string(stored), `"x"`) {
		t.Fatalf("stored answer %s holds plaintext", stored)
	}
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	tok := e.admin("root", RoleAdmin)
	c := e.client(nil)
	auth := bearerHdr(tok)
	cases := []struct {
		name, method, path string
		body               []byte
		hdr                map[string]string
		status             int
		code               string
	}{
		{"oversize", "POST", "/admin/admins", []byte(`{"name":"` + strings.Repeat("x", 2000) + `"}`), auth, 413, CodeBodyTooLarge},
		{"bad json", "POST", "/admin/admins", []byte(`{"name":`), auth, 400, CodeInvalidJSON},
		{"trailing data", "POST", "/admin/admins", []byte(`{"name":"a"} {}`), auth, 400, CodeInvalidJSON},
		{"empty body", "POST", "/admin/admins", nil, auth, 400, CodeInvalidJSON},
		{"unknown field", "POST", "/admin/admins", []byte(`{"nam":"a"}`), auth, 400, CodeValidation},
		{"wrong type", "POST", "/admin/admins", []byte(`{"name":1}`), auth, 400, CodeValidation},
		{"unknown route", "GET", "/nope", nil, nil, 404, CodeNotFound},
		{"unknown admin route", "GET", "/admin/nope", nil, auth, 404, CodeNotFound},
		{"wrong method", "PUT", "/admin/admins", nil, auth, 405, CodeMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(c, tc.method, tc.path, tc.body, tc.hdr)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if tc.status == 405 && !strings.Contains(r.header.Get("Allow"), "POST") {
				t.Fatalf("Allow %q, want POST", r.header.Get("Allow"))
			}
		})
	}
	// Wrong content type.
	req, _ := http.NewRequest("POST", e.url+"/admin/admins", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: got %d, want 415", res.StatusCode)
	}
	// Health and the document are served.
	if r := e.do(c, "GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatalf("healthz: got %d", r.status)
	}
	if r := e.do(c, "GET", "/openapi.json", nil, nil); r.status != 200 || !json.Valid(r.body) {
		t.Fatalf("openapi.json: got %d", r.status)
	}
}

// The OpenAPI document and the registered routes describe the same
// operations, with the same encryption and roles.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(specs.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	type opInfo struct {
		Encryption string   `json:"x-antaca-encryption"`
		Roles      []string `json:"x-antaca-roles"`
		Kinds      []string `json:"x-antaca-certificate-kinds"`
		Security   []map[string][]string
	}
	inDoc := map[string]opInfo{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var o opInfo
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatal(err)
			}
			inDoc[strings.ToUpper(method)+" "+path] = o
		}
	}
	seen := map[string]bool{}
	for _, rt := range e.s.Routes() {
		k := rt.Method + " " + rt.Pattern
		if testOnlyRoutes[k] {
			continue
		}
		seen[k] = true
		o, ok := inDoc[k]
		if !ok {
			t.Errorf("route %s is not in specs/openapi.json", k)
			continue
		}
		if o.Encryption != rt.Encryption.String() {
			t.Errorf("%s: document encryption %q, route %q", k, o.Encryption, rt.Encryption)
		}
		var roles []string
		for _, r := range rt.Roles {
			roles = append(roles, string(r))
		}
		sort.Strings(roles)
		sort.Strings(o.Roles)
		if !slices.Equal(roles, o.Roles) {
			t.Errorf("%s: document roles %v, route %v", k, o.Roles, roles)
		}
		if rt.Channel == ChannelSecure && !slices.Equal(rt.Kinds, o.Kinds) {
			t.Errorf("%s: document certificate kinds %v, route %v", k, o.Kinds, rt.Kinds)
		}
		wantSec := map[Channel]string{ChannelSecure: "clientCertificate", ChannelCustomer: "userSession", ChannelAdmin: "adminSession"}[rt.Channel]
		gotSec := ""
		if len(o.Security) == 1 {
			for name := range o.Security[0] {
				gotSec = name
			}
		}
		if gotSec != wantSec {
			t.Errorf("%s: document security %q, want %q", k, gotSec, wantSec)
		}
	}
	for k := range inDoc {
		if !seen[k] {
			t.Errorf("specs/openapi.json has %s, which the server does not register", k)
		}
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("correct horse battery", 600_000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "pbkdf2-sha256$600000$") {
		t.Fatalf("hash %q, want pbkdf2-sha256 with 600000 iterations", h)
	}
	if !checkPassword(h, "correct horse battery") || checkPassword(h, "correct horse batterz") {
		t.Fatal("checkPassword does not tell right from wrong")
	}
	for _, bad := range []string{"", "pbkdf2-sha256$x$y$z", "md5$1$a$b", "pbkdf2-sha256$99999999$AA$AA"} {
		if checkPassword(bad, "x") {
			t.Errorf("checkPassword(%q) accepted", bad)
		}
	}
	var c Config
	c.CA, c.CAKey, c.JWEKey = &x509.Certificate{}, nil, nil
	if err := c.defaults(); err == nil || c.PasswordIterations != 600_000 || c.SessionTTL != 10*time.Minute || c.MaxBodyBytes != 64<<10 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}

// The plain listener (local tools) serves the public routes; /secure
// refuses since no certificate can be shown.
func TestPlainListener(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.s.ServePlain(ln)
	base := "http://" + ln.Addr().String()
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: got %d", res.StatusCode)
	}
	res, err = http.Post(base+"/secure/customers/1/sessions", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/secure over plain HTTP: got %d, want 401", res.StatusCode)
	}
}

// The files antaca demo writes work: the partner certificate opens /secure
// over TLS, verifying the server against ca.pem.
func TestIssueDevCertificates(t *testing.T) {
	e := newEnv(t)
	p := e.partner("Demo")
	e.host.customers[3] = p
	dir := t.TempDir()
	f, err := IssueDevCertificates(context.Background(), e.pool, e.ca, e.cfg.CAKey, p, dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f.PartnerCert, f.PartnerKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	if r := e.do(c, "POST", "/secure/customers/3/sessions", nil, nil); r.status != http.StatusCreated {
		t.Fatalf("demo partner cert: got %d %s, want 201", r.status, r.body)
	}
}

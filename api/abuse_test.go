package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
)

// stateOf is what an abusive request must not change: every account's
// balance, held amount and state, every card's state, lock, CVC generation
// and PVV, and the number of postings, card events, cards, users,
// admins and sessions.
func (e *env) stateOf() string {
	e.t.Helper()
	const q = `SELECT concat_ws(' | ',
		(SELECT count(*) FROM postings),
		(SELECT string_agg(id || ':' || balance || ':' || held || ':' || state, ',' ORDER BY id) FROM accounts),
		(SELECT string_agg(id || ':' || state || ':' || lock_code || ':' || cvc_generation || ':' || pvv, ',' ORDER BY id) FROM cards),
		(SELECT count(*) FROM card_events), (SELECT count(*) FROM users), (SELECT count(*) FROM admin_users),
		(SELECT string_agg(id || ':' || kyc_status, ',' ORDER BY id) FROM users))`
	var s string
	if err := e.pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TestAPIAbuse sends bad and hostile requests to the real card endpoints
// (over TLS, on a real card host and ledger): each gets its documented
// status and error code and changes nothing (balances, holds, cards,
// PINs, history, users, admins), and the ledger verifies clean.
func TestAPIAbuse(t *testing.T) {
	e := newCardEnv(t)
	e.cfg.MaxBodyBytes = 64 << 10
	adminTok := e.admin("root", RoleAdmin)
	employee := e.admin("emp", RoleEmployee)
	manager := e.admin("mgr", RoleManager)
	_, progA, pa := e.onboard(adminTok, "Alpha", "433333", false)
	_, progB, pb := e.onboard(adminTok, "Beta", "444444", false)
	custA, balA := e.customerWithBalance(pa, progA, "abuse-a")
	custB, _ := e.customerWithBalance(pb, progB, "abuse-b")
	var partnerBal struct{ Balances []balanceView }
	e.expect(e.do(pa, "GET", "/secure/partner-balances", nil, nil), 200, &partnerBal)
	card := e.virtualCard(pa, custA, balA)
	tokA, tokB := e.userToken(pa, custA), e.userToken(pb, custB)
	secA := "/secure/customers/" + itoa(custA)
	reload := secA + "/balances/" + itoa(balA) + "/reload"
	meCard := "/customers/me/cards/" + itoa(card.ID)

	// One legitimate reload with an idempotency key: its replays below
	// must not move money again.
	e.expect(e.do(pa, "POST", reload, map[string]string{"amount": "100.00", "reference": "r-1"}, map[string]string{headerIdempotency: "reload-1"}), 200, nil)

	// A client certificate of another CA for partner A's identity.
	otherCA, otherKey, err := NewCA("Evil CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	evil := &Server{cfg: Config{CA: otherCA, CAKey: otherKey, CertValidity: time.Hour, Now: time.Now}, pool: e.pool}
	certPEM, keyPEM, err := evil.IssueDevClientCertificate(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	evilCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	// JWE bodies for creating a card (which would succeed if they were
	// right), each wrong in one way.
	_, ck := testKeys(t)
	jwk, _ := serverJWK(t, e)
	pub := pubHeader(t, &ck.PublicKey)
	jh := func(h map[string]string) map[string]string {
		out := map[string]string{headerPublicKey: pub, headerEncrypted: "true"}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	pinBody := []byte(`{"pin":"4321"}`)
	cardBody := []byte(fmt.Sprintf(`{"balanceId":%d}`, balA))
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sym := make([]byte, 32)
	good := encryptTo(t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, cardBody, nil)
	parts := strings.Split(good, ".")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	withHeader := func(h string) string { return b64(h) + "." + strings.Join(parts[1:], ".") }
	huge := withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM","x":"` + strings.Repeat("A", 40<<10) + `"}`)
	forged := tokA[:len(tokA)-2] + map[bool]string{true: "AA", false: "BB"}[strings.HasSuffix(tokA, "AA")]

	type abuse struct {
		name   string
		send   func() (resp, error)
		status int
		code   string // "" with status 0: a refused TLS handshake is also right
	}
	do := func(c *http.Client, method, path string, body any, hdr map[string]string) func() (resp, error) {
		return func() (resp, error) { return e.try(c, method, path, body, hdr) }
	}
	anon := e.client(nil)
	cases := []abuse{
		{"bad JSON on reload", do(pa, "POST", reload, []byte(`{"amount":`), nil), 400, CodeInvalidJSON},
		{"oversize body on reload (70 KiB)", do(pa, "POST", reload, []byte(`{"amount":"1.00","x":"`+strings.Repeat("x", 70<<10)+`"}`), nil), 413, CodeBodyTooLarge},
		{"negative reload", do(pa, "POST", reload, map[string]string{"amount": "-5.00"}, nil), 400, CodeValidation},
		{"reload with too many decimals", do(pa, "POST", reload, map[string]string{"amount": "1.001"}, nil), 400, CodeValidation},
		{"reload amount as a JSON number", do(pa, "POST", reload, []byte(`{"amount":1e308}`), nil), 400, CodeValidation},
		{"no client certificate", do(anon, "POST", reload, map[string]string{"amount": "1.00"}, nil), 401, CodeUnauthenticated},
		{"certificate of another CA", do(e.client(&evilCert), "POST", reload, map[string]string{"amount": "1.00"}, nil), 401, ""},
		{"forged session token", do(anon, "POST", meCard+"/lock", map[string]any{"reasonCode": 1}, bearerHdr(forged)), 401, CodeUnauthenticated},
		{"made-up session token", do(anon, "POST", meCard+"/lock", map[string]any{"reasonCode": 1}, bearerHdr("c2Vzc2lvbg")), 401, CodeUnauthenticated},
		{"customer token on the admin channel", do(anon, "GET", "/admin/summary", nil, bearerHdr(tokA)), 401, CodeUnauthenticated},
		{"admin token on the customer channel", do(anon, "POST", meCard+"/lock", map[string]any{"reasonCode": 1}, bearerHdr(adminTok)), 401, CodeUnauthenticated},
		{"employee reloads a partner balance", do(anon, "POST", "/admin/partner-balances/"+itoa(partnerBal.Balances[0].ID)+"/reload", map[string]string{"amount": "1000.00"}, bearerHdr(employee)), 403, CodeForbidden},
		{"employee creates an admin", do(anon, "POST", "/admin/admins", map[string]string{"name": "evil", "password": "a-long-password", "role": "Admin"}, bearerHdr(employee)), 403, CodeForbidden},
		{"manager creates an admin", do(anon, "POST", "/admin/admins", map[string]string{"name": "evil", "password": "a-long-password", "role": "Admin"}, bearerHdr(manager)), 403, CodeForbidden},
		{"employee sets KYC", do(anon, "PUT", "/admin/customers/"+itoa(custA)+"/kyc", map[string]string{"status": "rejected"}, bearerHdr(employee)), 403, CodeForbidden},
		{"partner B reloads A's balance", do(pb, "POST", "/secure/customers/"+itoa(custB)+"/balances/"+itoa(balA)+"/reload", map[string]string{"amount": "1.00"}, nil), 404, CodeNotFound},
		{"partner B locks A's card", do(pb, "POST", "/secure/customers/"+itoa(custB)+"/cards/"+itoa(card.ID)+"/lock", map[string]any{"reasonCode": 2}, nil), 404, CodeNotFound},
		{"user B removes A's card", do(anon, "DELETE", meCard, nil, bearerHdr(tokB)), 404, CodeNotFound},
		{"replayed idempotency key, other amount", do(pa, "POST", reload, map[string]string{"amount": "999.00", "reference": "r-1"}, map[string]string{headerIdempotency: "reload-1"}), 422, CodeIdempotencyKeyReused},
		{"replayed idempotency key, same body", do(pa, "POST", reload, map[string]string{"amount": "100.00", "reference": "r-1"}, map[string]string{headerIdempotency: "reload-1"}), 200, ""},
		{"lock with reason code 9", do(pa, "POST", secA+"/cards/"+itoa(card.ID)+"/lock", map[string]any{"reasonCode": 9}, nil), 400, CodeValidation},
		{"set PIN in plain JSON", do(anon, "POST", meCard+"/pin", pinBody, bearerHdr(tokA)), 400, CodeEncryptionRequired},
		{"create card, JWE to another key", do(pa, "POST", secA+"/cards/virtual", envelope(encryptTo(t, &otherRSA.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, cardBody, nil)), jh(nil)), 400, CodeCantDecryptPayload},
		{"create card, JWE alg none", do(pa, "POST", secA+"/cards/virtual", envelope(withHeader(`{"alg":"none","enc":"A256GCM"}`)), jh(nil)), 400, CodeInvalidPayload},
		{"create card, JWE alg dir", do(pa, "POST", secA+"/cards/virtual", envelope(encryptTo(t, sym, jose.DIRECT, jose.A256GCM, cardBody, nil)), jh(nil)), 400, CodeInvalidPayload},
		{"create card, JWE alg A256KW", do(pa, "POST", secA+"/cards/virtual", envelope(encryptTo(t, sym, jose.A256KW, jose.A256GCM, cardBody, nil)), jh(nil)), 400, CodeInvalidPayload},
		{"create card, JWE header of 40 KiB", do(pa, "POST", secA+"/cards/virtual", envelope(huge), jh(nil)), 400, CodeInvalidPayload},
		{"create card, bad Public-Key", do(pa, "POST", secA+"/cards/virtual", envelope(good), jh(map[string]string{headerPublicKey: "not-a-key"})), 400, CodeInvalidPublicKey},
		{"create card in plain JSON", do(pa, "POST", secA+"/cards/virtual", map[string]any{"balanceId": balA}, nil), 400, CodeEncryptionRequired},
	}
	before := e.stateOf()
	var lines []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.send()
			switch {
			case err != nil && c.code == "" && c.status == 401:
				lines = append(lines, c.name+" → TLS handshake refused")
			case err != nil:
				t.Fatalf("%v", err)
			case r.status != c.status || (c.code != "" && r.errCode() != c.code):
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, c.status, c.code)
			default:
				lines = append(lines, strings.TrimSpace(fmt.Sprintf("%s → %d %s", c.name, r.status, r.errCode())))
			}
			if after := e.stateOf(); after != before {
				t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// A session past its lifetime (10 minutes by default).
	e.advance(11 * time.Minute)
	r := e.do(anon, "POST", meCard+"/lock", map[string]any{"reasonCode": 1}, bearerHdr(tokA))
	e.expectCode(r, 401, CodeSessionExpired)
	lines = append(lines, "expired session token → 401 SESSION_EXPIRED")
	if after := e.stateOf(); after != before {
		t.Fatalf("state changed by an expired session:\nbefore %s\nafter  %s", before, after)
	}

	vs, err := ledger.New(e.pool, ledger.Config{}).Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("ledger verify: %s", v)
	}
	faulttest.Record(t, faulttest.Row{Area: "api", Fault: fmt.Sprintf("%d abusive requests to real card and balance endpoints", len(lines)),
		Behaviour: strings.Join(lines, "; ") + "; balances, holds, cards, PINs, card history, users and admins unchanged after each",
		Verify:    "clean"})
}

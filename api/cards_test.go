package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/antaca/antaca/cardhost"
)

// The card host satisfies the interface the API owns.
var _ CardHost = (*cardhost.Host)(nil)

// expect checks a response's status and decodes its plain JSON body into v.
func (e *env) expect(r resp, status int, v any) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			e.t.Fatalf("answer %s: %v", r.body, err)
		}
	}
}

// expectCode checks an error answer's status and code.
func (e *env) expectCode(r resp, status int, code string) {
	e.t.Helper()
	if r.status != status || r.errCode() != code {
		e.t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}

// jwe sends body (nil: none) encrypted to the server's key, as a client
// would: key from GET /public-key, Public-Key and Encrypted-Request headers.
func (e *env) jwe(c *http.Client, method, path string, body any, hdr map[string]string) resp {
	e.t.Helper()
	_, ck := testKeys(e.t)
	h := map[string]string{headerPublicKey: pubHeader(e.t, &ck.PublicKey), headerEncrypted: "true"}
	for k, v := range hdr {
		h[k] = v
	}
	if body == nil {
		return e.do(c, method, path, nil, h)
	}
	jwk, doc := serverJWK(e.t, e)
	plain, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	compact := encryptTo(e.t, jwk.Key, jose.RSA_OAEP_256, jose.A256GCM, plain, (&jose.EncrypterOptions{}).WithHeader("kid", doc.KeyID))
	return e.do(c, method, path, envelope(compact), h)
}

// decrypted checks the status of an encrypted answer and decodes it.
func (e *env) decrypted(r resp, status int, v any) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
	_, ck := testKeys(e.t)
	plain := decryptAnswer(e.t, r.body, ck)
	if err := json.Unmarshal(plain, v); err != nil {
		e.t.Fatalf("decrypted answer %s: %v", plain, err)
	}
}

type idOnly struct {
	ID int64 `json:"id"`
}

type cardData struct {
	cardView
	PAN    string `json:"pan"`
	Expiry string `json:"expiry"`
	CVC2   string `json:"cvc2"`
}

// onboard creates, through the admin API, a partner with a program and
// signs the partner's CSR; it returns the partner, the program and a client
// presenting the signed certificate.
func (e *env) onboard(adminTok, name, bin string, digitalFirst bool) (partnerID, programID int64, pc *http.Client) {
	e.t.Helper()
	var p, prog idOnly
	e.expect(e.do(e.client(nil), "POST", "/admin/partners", map[string]any{"name": name, "notifyEmail": "ops@" + strings.ToLower(strings.ReplaceAll(name, " ", "")) + ".example"}, bearerHdr(adminTok)), 201, &p)
	types := []string{"virtual", "physical"}
	if digitalFirst {
		types = append(types, "digital_first")
	}
	e.expect(e.do(e.client(nil), "POST", "/admin/programs", map[string]any{
		"partnerId": p.ID, "name": name + " EUR", "binLow": bin, "binHigh": bin, "currency": "EUR",
		"cardTypes": types, "digitalFirst": digitalFirst, "funding": "partner_credit", "lowThreshold": "100.00",
	}, bearerHdr(adminTok)), 201, &prog)
	csr, key := newCSR(e.t, name)
	var ic IssuedCertificate
	e.expect(e.do(e.client(nil), "POST", "/admin/partners/"+itoa(p.ID)+"/certificates", map[string]string{"csr": csr}, bearerHdr(adminTok)), 201, &ic)
	cert := tlsCert(e.t, ic.Certificate, key)
	return p.ID, prog.ID, e.client(&cert)
}

// customerWithBalance creates a KYC-verified customer of a program with an
// EUR balance, through the partner's /secure channel.
func (e *env) customerWithBalance(pc *http.Client, programID int64, ref string) (customerID, balanceID int64) {
	e.t.Helper()
	var c, b idOnly
	e.expect(e.do(pc, "POST", "/secure/customers", map[string]any{"programId": programID, "externalRef": ref, "name": "Ada " + ref, "email": ref + "@example.com"}, nil), 201, &c)
	e.expect(e.do(pc, "PUT", "/secure/customers/"+itoa(c.ID)+"/kyc", map[string]string{"status": "verified"}, nil), 200, nil)
	e.expect(e.do(pc, "POST", "/secure/customers/"+itoa(c.ID)+"/balances", map[string]string{"currency": "EUR"}, nil), 201, &b)
	return c.ID, b.ID
}

func (e *env) virtualCard(pc *http.Client, customerID, balanceID int64) cardData {
	e.t.Helper()
	var cd cardData
	e.decrypted(e.jwe(pc, "POST", "/secure/customers/"+itoa(customerID)+"/cards/virtual", map[string]any{"balanceId": balanceID}, nil), 201, &cd)
	return cd
}

// userToken mints a user session for a customer through the partner.
func (e *env) userToken(pc *http.Client, customerID int64) string {
	e.t.Helper()
	var s struct{ Token string }
	e.expect(e.do(pc, "POST", "/secure/customers/"+itoa(customerID)+"/sessions", nil, nil), 201, &s)
	return s.Token
}

// TestPartnerJourney: CSR signed → customer → KYC → balance → reload →
// virtual card → full data over JWE → lock code 2 → unlock refused.
func TestPartnerJourney(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, programID, pc := e.onboard(adminTok, "Fintech One", "555544", false)

	var cust customerView
	e.expect(e.do(pc, "POST", "/secure/customers", map[string]any{"programId": programID, "externalRef": "u-1", "name": "Ada", "email": "ada@example.com"}, nil), 201, &cust)
	if cust.KYCStatus != "pending" {
		t.Fatalf("new customer kyc %q, want pending", cust.KYCStatus)
	}
	base := "/secure/customers/" + itoa(cust.ID)
	e.expectCode(e.do(pc, "POST", "/secure/customers", map[string]any{"programId": programID, "externalRef": "u-1"}, nil), 409, CodeConflict)
	e.expectCode(e.do(pc, "POST", base+"/balances", map[string]string{"currency": "EUR"}, nil), 409, CodeKYCNotVerified)

	// Our KYC: name, e-mail and a document number.
	e.expectCode(e.do(pc, "POST", base+"/register", map[string]string{"name": "Ada Lovelace", "email": "ada@example.com", "documentNumber": "x"}, nil), 400, CodeValidation)
	e.expect(e.do(pc, "POST", base+"/register", map[string]string{"name": "Ada Lovelace", "email": "ada@example.com", "documentNumber": "AB-123456"}, nil), 200, &cust)
	if cust.KYCStatus != "verified" || cust.KYCBy != "antaca" || cust.Name != "Ada Lovelace" {
		t.Fatalf("after KYC: %+v, want verified by antaca", cust)
	}

	var bal balanceView
	e.expect(e.do(pc, "POST", base+"/balances", map[string]string{"currency": "eur"}, nil), 201, &bal)
	if bal.Balance != "0.00" || bal.Currency != "EUR" {
		t.Fatalf("new balance %+v, want 0.00 EUR", bal)
	}
	balPath := base + "/balances/" + itoa(bal.ID)

	// Reload: decimal strings in major units, idempotent on reference.
	var rl struct {
		PostingID int64       `json:"postingId"`
		Balance   balanceView `json:"balance"`
	}
	e.expect(e.do(pc, "POST", balPath+"/reload", map[string]any{"amount": "12.34", "reference": "wire-1"}, nil), 200, &rl)
	first := rl.PostingID
	e.expect(e.do(pc, "POST", balPath+"/reload", map[string]any{"amount": "12.34", "reference": "wire-1"}, nil), 200, &rl)
	if rl.PostingID != first || rl.Balance.Balance != "12.34" {
		t.Fatalf("repeated reference: posting %d balance %s, want %d and 12.34", rl.PostingID, rl.Balance.Balance, first)
	}
	e.expect(e.do(pc, "POST", balPath+"/reload", []byte(`{"amount": 1.5, "reference": "wire-2"}`), nil), 200, &rl)
	if rl.Balance.Balance != "13.84" || rl.Balance.Available != "13.84" {
		t.Fatalf("after number reload: %+v, want 13.84", rl.Balance)
	}
	for _, bad := range []string{`{"amount":"1.234","reference":"w"}`, `{"amount":"-1","reference":"w"}`, `{"amount":"0","reference":"w"}`,
		`{"amount":"1e3","reference":"w"}`, `{"amount":"99999999999999999999","reference":"w"}`, `{"amount":"1.00"}`} {
		e.expectCode(e.do(pc, "POST", balPath+"/reload", []byte(bad), nil), 400, CodeValidation)
	}
	e.expectCode(e.do(pc, "POST", balPath+"/reload", map[string]any{"amount": "5.00", "reference": "wire-1"}, nil), 409, CodeDuplicateRef)

	// Virtual card: plain refused, encrypted answered with its data.
	e.expectCode(e.do(pc, "POST", base+"/cards/virtual", map[string]any{"balanceId": bal.ID}, nil), 400, CodeEncryptionRequired)
	cd := e.virtualCard(pc, cust.ID, bal.ID)
	if !strings.HasPrefix(cd.PAN, "555544") || len(cd.PAN) != 16 || !cardhost.LuhnValid(cd.PAN) || cd.Type != "virtual" || cd.State != "active" {
		t.Fatalf("new card %+v: want an active virtual 16-digit Luhn PAN in 555544", cd.cardView)
	}
	yymm := cd.Expiry[2:4] + cd.Expiry[5:7]
	if cd.CVC2 != e.keys.CVC2(cd.PAN, yymm, 0) || cd.MaskedPAN != cd.PAN[:6]+"…"+cd.PAN[12:] {
		t.Fatal("card data: CVC2 or masked PAN do not match the card")
	}

	// Full data, decrypted as a client would.
	cardPath := base + "/cards/" + itoa(cd.ID)
	e.expectCode(e.do(pc, "GET", cardPath, nil, nil), 400, CodeEncryptionRequired)
	var full cardData
	e.decrypted(e.jwe(pc, "GET", cardPath, nil, nil), 200, &full)
	if full.PAN != cd.PAN || full.CVC2 != cd.CVC2 || full.Expiry != cd.Expiry {
		t.Fatal("full data differs from the data given at creation")
	}

	// Lock code 2 (stolen): irreversible.
	var locked cardView
	e.expect(e.do(pc, "POST", cardPath+"/lock", map[string]any{"reasonCode": 2, "reason": "reported stolen by phone"}, nil), 200, &locked)
	if !locked.Locked || locked.LockCode != 2 {
		t.Fatalf("after lock: %+v, want lock code 2", locked)
	}
	e.expectCode(e.do(pc, "POST", cardPath+"/unlock", nil, nil), 409, CodeIrreversibleLock)
	e.expectCode(e.do(pc, "POST", cardPath+"/lock", map[string]any{"reasonCode": 9}, nil), 400, CodeValidation)

	// History records the partner as actor, with the reason.
	var hist struct{ Events []eventView }
	e.expect(e.do(pc, "GET", cardPath+"/history", nil, nil), 200, &hist)
	if len(hist.Events) != 2 || hist.Events[1].Action != "lock" || hist.Events[1].ActorKind != "partner" || hist.Events[1].LockCode != 2 || hist.Events[1].Reason != "reported stolen by phone" {
		t.Fatalf("history %+v", hist.Events)
	}
	var txs struct{ Transactions []transactionView }
	e.expect(e.do(pc, "GET", balPath+"/transactions?limit=10", nil, nil), 200, &txs)
	if len(txs.Transactions) != 2 || txs.Transactions[0].Amount != "1.50" || txs.Transactions[1].Amount != "12.34" {
		t.Fatalf("transactions %+v, want 1.50 then 12.34", txs.Transactions)
	}

	// The customer's app sees the balance with its card, masked.
	tok := e.userToken(pc, cust.ID)
	var bals struct{ Balances []balanceView }
	e.expect(e.do(e.client(nil), "GET", "/customers/me/balances", nil, bearerHdr(tok)), 200, &bals)
	if len(bals.Balances) != 1 || len(bals.Balances[0].Cards) != 1 || bals.Balances[0].Cards[0].MaskedPAN != cd.MaskedPAN || strings.Contains(string(mustJSON(bals)), cd.PAN) {
		t.Fatalf("customer balances %+v", bals)
	}

	// Admins see the masked card only, and the summary.
	var adm map[string]any
	e.expect(e.do(e.client(nil), "GET", "/admin/cards/"+itoa(cd.ID), nil, bearerHdr(adminTok)), 200, &adm)
	if _, ok := adm["pan"]; ok || adm["maskedPan"] != cd.MaskedPAN {
		t.Fatalf("admin card view %v: want masked only", adm)
	}
	var sum struct{ Currencies []summaryView }
	e.expect(e.do(e.client(nil), "GET", "/admin/summary", nil, bearerHdr(adminTok)), 200, &sum)
	if len(sum.Currencies) != 1 || sum.Currencies[0].Users != "13.84" || sum.Currencies[0].Wallet != "13.84" {
		t.Fatalf("summary %+v, want users = wallet = 13.84", sum.Currencies)
	}

	if logs := e.logs.String(); strings.Contains(logs, cd.PAN) || !strings.Contains(logs, cd.MaskedPAN) {
		t.Fatal("a log line carries the PAN, or none carries the masked PAN")
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestPartnerIsolation: a partner can neither see nor touch another
// partner's customers, balances and cards: 404, as for missing ones.
func TestPartnerIsolation(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, progA, pa := e.onboard(adminTok, "Alpha", "411111", false)
	_, progB, pb := e.onboard(adminTok, "Beta", "422222", false)
	custA, balA := e.customerWithBalance(pa, progA, "a1")
	custB, balB := e.customerWithBalance(pb, progB, "b1")
	cardA := e.virtualCard(pa, custA, balA)
	var jobA struct{ ID int64 }
	e.expect(e.do(pa, "POST", "/secure/customers/"+itoa(custA)+"/cards/virtual/async", map[string]any{"balanceId": balA}, nil), 202, &jobA)

	a := "/secure/customers/" + itoa(custA)
	b := "/secure/customers/" + itoa(custB)
	cardOfA := "/cards/" + itoa(cardA.ID)
	cases := []struct {
		method, path string
		body         any
		jwe          bool
	}{
		{"GET", a, nil, false},
		{"POST", a + "/register", map[string]string{"name": "X", "email": "x@example.com", "documentNumber": "AB12345"}, false},
		{"PUT", a + "/kyc", map[string]string{"status": "rejected"}, false},
		{"POST", a + "/sessions", nil, false},
		{"GET", a + "/balances", nil, false},
		{"POST", a + "/balances", map[string]string{"currency": "EUR"}, false},
		{"GET", a + "/balances/" + itoa(balA), nil, false},
		{"POST", a + "/balances/" + itoa(balA) + "/reload", map[string]string{"amount": "1.00"}, false},
		{"GET", a + "/balances/" + itoa(balA) + "/transactions", nil, false},
		{"GET", a + "/balances/" + itoa(balA) + "/cards", nil, false},
		{"POST", a + "/cards/virtual", map[string]any{"balanceId": balA}, true},
		{"POST", a + "/cards/virtual/async", map[string]any{"balanceId": balA}, false},
		{"GET", a + "/card-jobs/" + itoa(jobA.ID), nil, false},
		{"POST", a + "/cards/physical", map[string]any{"balanceId": balA}, true},
		{"GET", a + cardOfA, nil, true},
		{"GET", a + cardOfA + "/history", nil, false},
		{"POST", a + cardOfA + "/lock", map[string]any{"reasonCode": 3}, false},
		{"POST", a + cardOfA + "/unlock", nil, false},
		{"POST", a + cardOfA + "/activate", nil, false},
		{"POST", a + cardOfA + "/link", nil, false},
		{"POST", a + cardOfA + "/print", nil, true},
		// Its own customer with the other partner's card or balance.
		{"GET", b + cardOfA, nil, true},
		{"POST", b + cardOfA + "/lock", map[string]any{"reasonCode": 3}, false},
		{"GET", b + "/balances/" + itoa(balA), nil, false},
		{"POST", b + "/cards/virtual", map[string]any{"balanceId": balA}, true},
		{"POST", b + "/balances/" + itoa(balA) + "/reload", map[string]string{"amount": "1.00"}, false},
		{"POST", "/secure/customers", map[string]any{"programId": progA, "externalRef": "steal"}, false},
	}
	for _, c := range cases {
		var r resp
		if c.jwe {
			r = e.jwe(pb, c.method, c.path, c.body, nil)
		} else {
			r = e.do(pb, c.method, c.path, c.body, nil)
		}
		if r.status != http.StatusNotFound || r.errCode() != CodeNotFound {
			t.Errorf("partner B %s %s: got %d %s, want 404 NOT_FOUND", c.method, c.path, r.status, r.body)
		}
	}
	// Partner balances of the other partner.
	var own struct{ Balances []balanceView }
	e.expect(e.do(pa, "GET", "/secure/partner-balances", nil, nil), 200, &own)
	if len(own.Balances) != 1 || own.Balances[0].Kind != "partner_credit" {
		t.Fatalf("partner A balances %+v, want its program's credit balance", own.Balances)
	}
	e.expectCode(e.do(pb, "GET", "/secure/partner-balances/"+itoa(own.Balances[0].ID), nil, nil), 404, CodeNotFound)
	// A user balance is not a partner balance.
	e.expectCode(e.do(pa, "GET", "/secure/partner-balances/"+itoa(balA), nil, nil), 404, CodeNotFound)

	// B's user, in its app, with A's card and balance.
	tok := e.userToken(pb, custB)
	for _, p := range []string{"/customers/me" + cardOfA + "/history", "/customers/me/balances/" + itoa(balA)} {
		e.expectCode(e.do(e.client(nil), "GET", p, nil, bearerHdr(tok)), 404, CodeNotFound)
	}
	e.expectCode(e.do(e.client(nil), "POST", "/customers/me"+cardOfA+"/lock", map[string]any{"reasonCode": 1}, bearerHdr(tok)), 404, CodeNotFound)
	e.expectCode(e.do(e.client(nil), "DELETE", "/customers/me"+cardOfA, nil, bearerHdr(tok)), 404, CodeNotFound)
	e.expectCode(e.jwe(e.client(nil), "GET", "/customers/me"+cardOfA, nil, bearerHdr(tok)), 404, CodeNotFound)
	_ = balB

	// Nothing of A changed.
	c, err := e.ch.Card(t.Context(), cardA.ID)
	if err != nil || c.LockCode != 0 || c.State != cardhost.StateActive {
		t.Fatalf("card of A after B's attempts: %+v %v", c, err)
	}
	if u, _ := e.ch.User(t.Context(), custA); u.KYC != cardhost.KYCVerified {
		t.Fatalf("customer of A: kyc %s", u.KYC)
	}
}

// TestLockOutside: a scheme locks a card named by PAN in a JWE body; a
// partner certificate may not.
func TestLockOutside(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, prog, pc := e.onboard(adminTok, "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "a1")
	cd := e.virtualCard(pc, cust, bal)

	csr, key := newCSR(t, "Mastercard")
	var ic IssuedCertificate
	e.expect(e.do(e.client(nil), "POST", "/admin/entities/MASTERCARD/certificates", map[string]string{"csr": csr, "kind": "scheme"}, bearerHdr(adminTok)), 201, &ic)
	cert := tlsCert(t, ic.Certificate, key)
	scheme := e.client(&cert)

	body := map[string]any{"pan": cd.PAN, "reasonCode": 6, "reason": "three wrong PINs"}
	e.expectCode(e.do(scheme, "POST", "/secure/cards/lock-outside", body, nil), 400, CodeEncryptionRequired)
	e.expectCode(e.jwe(pc, "POST", "/secure/cards/lock-outside", body, nil), 403, CodeForbidden)
	e.expectCode(e.jwe(scheme, "POST", "/secure/cards/lock-outside", map[string]any{"pan": "4111110000000000", "reasonCode": 6}, nil), 404, CodeNotFound)
	e.expectCode(e.jwe(scheme, "POST", "/secure/cards/lock-outside", map[string]any{"pan": cd.PAN, "reasonCode": 0}, nil), 400, CodeValidation)
	// A scheme certificate opens no partner operation.
	e.expectCode(e.do(scheme, "GET", "/secure/customers/"+itoa(cust), nil, nil), 403, CodeForbidden)

	var out struct {
		CardID    int64  `json:"cardId"`
		MaskedPAN string `json:"maskedPan"`
		LockCode  int    `json:"lockCode"`
	}
	e.decrypted(e.jwe(scheme, "POST", "/secure/cards/lock-outside", body, nil), 200, &out)
	if out.CardID != cd.ID || out.LockCode != 6 || out.MaskedPAN != cd.MaskedPAN {
		t.Fatalf("lock outside answer %+v", out)
	}
	var hist struct{ Events []eventView }
	e.expect(e.do(pc, "GET", "/secure/customers/"+itoa(cust)+"/cards/"+itoa(cd.ID)+"/history", nil, nil), 200, &hist)
	last := hist.Events[len(hist.Events)-1]
	if last.Action != "lock_outside" || last.ActorKind != "scheme" || last.ActorID != "MASTERCARD" || last.LockCode != 6 {
		t.Fatalf("history %+v", last)
	}
	// Code 6 is reversible: the partner unlocks.
	e.expect(e.do(pc, "POST", "/secure/customers/"+itoa(cust)+"/cards/"+itoa(cd.ID)+"/unlock", nil, nil), 200, nil)
	e.expectCode(e.do(pc, "POST", "/secure/customers/"+itoa(cust)+"/cards/"+itoa(cd.ID)+"/unlock", nil, nil), 409, CodeNotLocked)
	if strings.Contains(e.logs.String(), cd.PAN) {
		t.Fatal("a log line carries the PAN")
	}
}

// TestAsyncVirtualCard: 202 with Location, polled to done.
func TestAsyncVirtualCard(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, prog, pc := e.onboard(adminTok, "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "a1")
	tok := e.userToken(pc, cust)

	for _, ch := range []struct {
		name, path string
		c          *http.Client
		hdr        map[string]string
	}{
		{"secure", "/secure/customers/" + itoa(cust) + "/cards/virtual/async", pc, nil},
		{"customer", "/customers/me/cards/virtual/async", e.client(nil), bearerHdr(tok)},
	} {
		t.Run(ch.name, func(t *testing.T) {
			r := e.do(ch.c, "POST", ch.path, map[string]any{"balanceId": bal}, ch.hdr)
			var j jobView
			e.expect(r, 202, &j)
			loc := r.header.Get("Location")
			if !strings.HasSuffix(loc, "/card-jobs/"+itoa(j.ID)) || j.Status != "pending" {
				t.Fatalf("202 job %+v location %q", j, loc)
			}
			deadline := time.Now().Add(10 * time.Second)
			for j.Status == "pending" && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				e.expect(e.do(ch.c, "GET", loc, nil, ch.hdr), 200, &j)
			}
			if j.Status != "done" || j.CardID == 0 {
				t.Fatalf("job %+v, want done with a card", j)
			}
			c, err := e.ch.Card(t.Context(), j.CardID)
			if err != nil || c.UserID != cust || c.AccountID != bal || c.Type != cardhost.Virtual {
				t.Fatalf("job's card %+v %v", c, err)
			}
		})
	}
}

// TestPhysicalCardAndPIN: order (JWE) → link → activate; set PIN over JWE;
// print virtual refused outside Digital First, done inside.
func TestPhysicalCardAndPIN(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	empTok := e.admin("emp", RoleEmployee)
	_, prog, pc := e.onboard(adminTok, "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "a1")
	tok := e.userToken(pc, cust)
	me := e.client(nil)
	base := "/secure/customers/" + itoa(cust)

	e.expectCode(e.do(pc, "POST", base+"/cards/physical", map[string]any{"balanceId": bal}, nil), 400, CodeEncryptionRequired)
	var phys cardView
	e.decrypted(e.jwe(pc, "POST", base+"/cards/physical", map[string]any{"balanceId": bal}, nil), 201, &phys)
	if phys.Type != "physical" || phys.State != "ordered" {
		t.Fatalf("ordered card %+v", phys)
	}
	cardPath := "/cards/" + itoa(phys.ID)
	e.expectCode(e.do(me, "POST", "/customers/me"+cardPath+"/activate", nil, bearerHdr(tok)), 409, CodeCardState)
	var c cardView
	e.expect(e.do(pc, "POST", base+cardPath+"/link", nil, nil), 200, &c)
	if c.State != "inactive" {
		t.Fatalf("linked card state %q, want inactive", c.State)
	}
	e.expectCode(e.do(e.client(nil), "POST", "/admin"+cardPath+"/link", nil, bearerHdr(empTok)), 409, CodeCardState)
	e.expect(e.do(me, "POST", "/customers/me"+cardPath+"/activate", nil, bearerHdr(tok)), 200, &c)
	if c.State != "active" || c.PINSet {
		t.Fatalf("activated card %+v", c)
	}

	// Set PIN: customer only, JWE required.
	pinPath := "/customers/me" + cardPath + "/pin"
	e.expectCode(e.do(me, "POST", pinPath, map[string]string{"pin": "4321"}, bearerHdr(tok)), 400, CodeEncryptionRequired)
	e.expectCode(e.jwe(me, "POST", pinPath, map[string]string{"pin": "12"}, bearerHdr(tok)), 400, CodeValidation)
	r := e.jwe(me, "POST", pinPath, map[string]string{"pin": "4321"}, bearerHdr(tok))
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("set pin: got %d %s, want 204", r.status, r.body)
	}
	got, err := e.ch.Card(t.Context(), phys.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, data, err := e.ch.FullData(t.Context(), phys.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := e.keys.PVV(data.PAN, "4321"); got.PVV == "" || got.PVV != want {
		t.Fatal("stored PVV is not the PVV of the PIN set")
	}
	if strings.Contains(e.logs.String(), "4321") {
		t.Fatal("a log line carries the PIN")
	}

	// Virtual cards: no PIN, no print outside Digital First.
	virt := e.virtualCard(pc, cust, bal)
	vPath := "/cards/" + itoa(virt.ID)
	e.expectCode(e.jwe(me, "POST", "/customers/me"+vPath+"/pin", map[string]string{"pin": "1234"}, bearerHdr(tok)), 409, CodeCardType)
	e.expectCode(e.jwe(pc, "POST", base+vPath+"/print", nil, nil), 409, CodeNotDigitalFirst)
	e.expectCode(e.do(pc, "POST", base+vPath+"/print", nil, nil), 400, CodeEncryptionRequired)

	// In a Digital First program the print works.
	_, progDF, pdf := e.onboard(adminTok, "Digital", "433333", true)
	custDF, balDF := e.customerWithBalance(pdf, progDF, "d1")
	vdf := e.virtualCard(pdf, custDF, balDF)
	var printed cardView
	e.decrypted(e.jwe(pdf, "POST", "/secure/customers/"+itoa(custDF)+"/cards/"+itoa(vdf.ID)+"/print", nil, nil), 200, &printed)
	if printed.Type != "digital_first" || printed.State != "active" || printed.MaskedPAN != vdf.MaskedPAN {
		t.Fatalf("printed card %+v", printed)
	}

	// Reset CVV: the cardholder gets the new CVC2; the admin the masked card.
	var reset cardData
	e.decrypted(e.jwe(me, "POST", "/customers/me"+vPath+"/cvv", nil, bearerHdr(tok)), 200, &reset)
	if reset.PAN != virt.PAN || reset.CVC2 != e.keys.CVC2(virt.PAN, reset.Expiry[2:4]+reset.Expiry[5:7], 1) {
		t.Fatal("reset CVV: not the generation-1 CVC2 of the card")
	}
	var adm map[string]any
	e.decrypted(e.jwe(e.client(nil), "POST", "/admin"+vPath+"/cvv", nil, bearerHdr(empTok)), 200, &adm)
	if _, ok := adm["cvc2"]; ok {
		t.Fatalf("admin reset CVV answer %v carries the CVC2", adm)
	}
	// Remove: the card then answers as unknown.
	r = e.do(me, "DELETE", "/customers/me"+vPath, nil, bearerHdr(tok))
	if r.status != http.StatusNoContent {
		t.Fatalf("remove: got %d %s", r.status, r.body)
	}
	e.expectCode(e.jwe(me, "GET", "/customers/me"+vPath, nil, bearerHdr(tok)), 404, CodeNotFound)
	e.expectCode(e.do(e.client(nil), "DELETE", "/admin"+vPath, nil, bearerHdr(adminTok)), 404, CodeNotFound)
}

// TestPartnerBalancesAdmin: partner balances created, reloaded and given a
// threshold by an Admin, read by the partner.
func TestPartnerBalancesAdmin(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	partner, prog, pc := e.onboard(adminTok, "Alpha", "411111", false)
	var fx balanceView
	e.expect(e.do(e.client(nil), "POST", "/admin/partners/"+itoa(partner)+"/balances", map[string]any{"kind": "partner", "currency": "EUR"}, bearerHdr(adminTok)), 201, &fx)
	e.expectCode(e.do(e.client(nil), "POST", "/admin/partners/"+itoa(partner)+"/balances", map[string]any{"kind": "partner", "currency": "EUR"}, bearerHdr(adminTok)), 409, CodeBalanceExists)
	e.expectCode(e.do(e.client(nil), "POST", "/admin/partners/"+itoa(partner)+"/balances", map[string]any{"kind": "partner", "currency": "XXQ"}, bearerHdr(adminTok)), 400, CodeValidation)
	var list struct{ Balances []balanceView }
	e.expect(e.do(pc, "GET", "/secure/partner-balances", nil, nil), 200, &list)
	if len(list.Balances) != 2 {
		t.Fatalf("partner balances %+v, want credit and FX", list.Balances)
	}
	credit := list.Balances[0]
	if credit.Kind != "partner_credit" || credit.ProgramID != prog || credit.LowThreshold == nil || *credit.LowThreshold != "100.00" {
		t.Fatalf("credit balance %+v", credit)
	}
	var rl struct{ Balance balanceView }
	e.expect(e.do(e.client(nil), "POST", "/admin/partner-balances/"+itoa(credit.ID)+"/reload", map[string]any{"amount": "1000.50", "reference": "bank-1", "reason": "partner transfer"}, bearerHdr(adminTok)), 200, &rl)
	if rl.Balance.Balance != "1000.50" {
		t.Fatalf("reloaded credit %+v", rl.Balance)
	}
	var th balanceView
	e.expect(e.do(e.client(nil), "PUT", "/admin/partner-balances/"+itoa(credit.ID)+"/threshold", map[string]any{"lowThreshold": "250"}, bearerHdr(adminTok)), 200, &th)
	if th.LowThreshold == nil || *th.LowThreshold != "250.00" {
		t.Fatalf("threshold %+v", th)
	}
	th = balanceView{}
	e.expect(e.do(e.client(nil), "PUT", "/admin/partner-balances/"+itoa(credit.ID)+"/threshold", []byte(`{"lowThreshold": null}`), bearerHdr(adminTok)), 200, &th)
	if th.LowThreshold != nil {
		t.Fatalf("threshold after null %+v", th)
	}
	var got balanceView
	e.expect(e.do(pc, "GET", "/secure/partner-balances/"+itoa(credit.ID), nil, nil), 200, &got)
	if got.Balance != "1000.50" {
		t.Fatalf("partner reads %+v", got)
	}
	var sum struct{ Currencies []summaryView }
	e.expect(e.do(e.client(nil), "GET", "/admin/summary", nil, bearerHdr(adminTok)), 200, &sum)
	if sum.Currencies[0].Users != "0.00" || sum.Currencies[0].Wallet != "1000.50" || sum.Currencies[0].PartnerCredit != "1000.50" {
		t.Fatalf("summary %+v", sum.Currencies)
	}
	var progs struct{ Programs []programView }
	e.expect(e.do(pc, "GET", "/secure/programs", nil, nil), 200, &progs)
	if len(progs.Programs) != 1 || progs.Programs[0].ID != prog || progs.Programs[0].PartnerBalanceID != credit.ID {
		t.Fatalf("programs %+v", progs.Programs)
	}
}

// adminRoles is DESIGN.md's role table for every admin route.
var adminRoles = map[string][]Role{
	"GET /admin/session":                                                  AllRoles,
	"DELETE /admin/session":                                               AllRoles,
	"POST /admin/admins":                                                  {RoleAdmin},
	"POST /admin/partners/{partnerId}/certificates":                       {RoleAdmin},
	"POST /admin/entities/{entity}/certificates":                          {RoleAdmin},
	"POST /admin/certificates/{serial}/revoke":                            {RoleAdmin},
	"GET /admin/customers/{customerId}":                                   AllRoles,
	"PUT /admin/customers/{customerId}/kyc":                               {RoleAdmin, RoleManager},
	"POST /admin/customers/{customerId}/balances":                         AllRoles,
	"GET /admin/customers/{customerId}/balances":                          AllRoles,
	"GET /admin/customers/{customerId}/balances/{balanceId}":              AllRoles,
	"POST /admin/customers/{customerId}/balances/{balanceId}/reload":      {RoleAdmin},
	"GET /admin/customers/{customerId}/balances/{balanceId}/transactions": AllRoles,
	"GET /admin/customers/{customerId}/balances/{balanceId}/cards":        AllRoles,
	"POST /admin/customers/{customerId}/cards/virtual":                    {RoleAdmin, RoleManager},
	"POST /admin/customers/{customerId}/cards/physical":                   AllRoles,
	"GET /admin/cards/{cardId}":                                           AllRoles,
	"GET /admin/cards/{cardId}/history":                                   AllRoles,
	"POST /admin/cards/{cardId}/lock":                                     AllRoles,
	"POST /admin/cards/{cardId}/unlock":                                   AllRoles,
	"DELETE /admin/cards/{cardId}":                                        AllRoles,
	"POST /admin/cards/{cardId}/cvv":                                      AllRoles,
	"POST /admin/cards/{cardId}/print":                                    AllRoles,
	"POST /admin/cards/{cardId}/activate":                                 AllRoles,
	"POST /admin/cards/{cardId}/link":                                     AllRoles,
	"POST /admin/partners":                                                {RoleAdmin},
	"GET /admin/partners":                                                 {RoleAdmin},
	"GET /admin/partners/{partnerId}/balances":                            AllRoles,
	"POST /admin/partners/{partnerId}/balances":                           {RoleAdmin},
	"GET /admin/partner-balances/{balanceId}":                             AllRoles,
	"POST /admin/partner-balances/{balanceId}/reload":                     {RoleAdmin},
	"PUT /admin/partner-balances/{balanceId}/threshold":                   {RoleAdmin},
	"POST /admin/programs":                                                {RoleAdmin},
	"GET /admin/programs":                                                 {RoleAdmin},
	"GET /admin/summary":                                                  AllRoles,
	"GET /admin/approvals":                                                AllRoles,
	"GET /admin/approvals/{approvalId}":                                   AllRoles,
	"POST /admin/approvals/{approvalId}/approve":                          {RoleAdmin},
	"POST /admin/approvals/{approvalId}/reject":                           {RoleAdmin},
	"GET /admin/exceptions":                                               AllRoles,
	"POST /admin/exceptions/{exceptionId}/resolve":                        {RoleAdmin},
	"GET /admin/webhooks/endpoints":                                       AllRoles,
	"GET /admin/webhooks/deliveries":                                      AllRoles,
	"GET /admin/webhooks/deliveries/{deliveryId}":                         AllRoles,
	"POST /admin/webhooks/deliveries/{deliveryId}/replay":                 {RoleAdmin},
	"POST /admin/webhooks/endpoints/{endpointId}/replay":                  {RoleAdmin},
	"POST /admin/spend-rules":                                             {RoleAdmin, RoleManager},
	"GET /admin/spend-rules":                                              AllRoles,
	"PUT /admin/spend-rules/{ruleId}":                                     {RoleAdmin, RoleManager},
	"GET /admin/spend-rules/{ruleId}/history":                             AllRoles,
	"POST /admin/cards/{cardId}/simulate/{kind}":                          {RoleAdmin},
}

// TestAdminCardRoleMatrix checks every admin route against the role table
// and calls each as every role: allowed roles get past authorisation,
// others get 403 FORBIDDEN.
func TestAdminCardRoleMatrix(t *testing.T) {
	e := newCardEnv(t)
	toks := map[Role]string{RoleAdmin: e.admin("a", RoleAdmin), RoleManager: e.admin("m", RoleManager), RoleEmployee: e.admin("e", RoleEmployee)}
	partner, prog, pc := e.onboard(adminTokOf(toks), "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "a1")
	cd := e.virtualCard(pc, cust, bal)
	repl := strings.NewReplacer("{partnerId}", itoa(partner), "{customerId}", itoa(cust), "{balanceId}", itoa(bal),
		"{cardId}", itoa(cd.ID), "{entity}", "ACQ1", "{serial}", "abc", "{approvalId}", "1", "{exceptionId}", "1")
	seen := 0
	for _, rt := range e.s.Routes() {
		if rt.Channel != ChannelAdmin {
			continue
		}
		k := rt.Method + " " + rt.Pattern
		want, ok := adminRoles[k]
		if !ok {
			t.Errorf("admin route %s is not in the role table", k)
			continue
		}
		seen++
		if !slices.Equal(rt.Roles, want) {
			t.Errorf("%s: roles %v, want %v", k, rt.Roles, want)
		}
		if k == "DELETE /admin/session" {
			continue // logs out; TestAdminRoleMatrix covers it
		}
		for _, role := range AllRoles {
			var body any
			if rt.Method == "POST" || rt.Method == "PUT" {
				body = map[string]any{}
			}
			r := e.do(e.client(nil), rt.Method, repl.Replace(rt.Pattern), body, bearerHdr(toks[role]))
			if slices.Contains(want, role) {
				if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
					t.Errorf("%s as %s: got %d %s, want allowed", k, role, r.status, r.body)
				}
			} else if r.status != http.StatusForbidden || r.errCode() != CodeForbidden {
				t.Errorf("%s as %s: got %d %s, want 403 FORBIDDEN", k, role, r.status, r.body)
			}
		}
	}
	if seen != len(adminRoles) {
		t.Errorf("%d admin routes registered, role table has %d", seen, len(adminRoles))
	}
	// Admin KYC view and set, by a Manager.
	var c customerView
	e.expect(e.do(e.client(nil), "PUT", "/admin/customers/"+itoa(cust)+"/kyc", map[string]string{"status": "rejected"}, bearerHdr(toks[RoleManager])), 200, &c)
	if c.KYCStatus != "rejected" || c.KYCBy != "admin" {
		t.Fatalf("admin KYC %+v", c)
	}
	e.expectCode(e.do(e.client(nil), "POST", "/admin/customers/"+itoa(cust)+"/balances", map[string]string{"currency": "EUR"}, bearerHdr(toks[RoleEmployee])), 409, CodeKYCNotVerified)
}

func adminTokOf(toks map[Role]string) string { return toks[RoleAdmin] }

// TestCustomerChannelKYC: the user runs our KYC from the app, then opens
// a balance (reloaded by the partner: the app cannot) and gets a virtual
// card over JWE.
func TestCustomerChannelKYC(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, prog, pc := e.onboard(adminTok, "Alpha", "411111", false)
	var c idOnly
	e.expect(e.do(pc, "POST", "/secure/customers", map[string]any{"programId": prog, "externalRef": "app-1"}, nil), 201, &c)
	tok := e.userToken(pc, c.ID)
	me, hdr := e.client(nil), bearerHdr(tok)
	e.expectCode(e.do(me, "POST", "/customers/me/balances", map[string]string{"currency": "EUR"}, hdr), 409, CodeKYCNotVerified)
	e.expectCode(e.do(me, "POST", "/customers/me/register", map[string]string{"name": "Bo", "email": "not-an-address", "documentNumber": "ID-99887"}, hdr), 400, CodeValidation)
	var cust customerView
	e.expect(e.do(me, "POST", "/customers/me/register", map[string]string{"name": "Bo", "email": "bo@example.com", "documentNumber": "ID-99887"}, hdr), 200, &cust)
	if cust.ID != c.ID || cust.KYCStatus != "verified" || cust.Email != "bo@example.com" {
		t.Fatalf("after KYC %+v", cust)
	}
	var b balanceView
	e.expect(e.do(me, "POST", "/customers/me/balances", map[string]string{"currency": "EUR"}, hdr), 201, &b)
	// The cardholder cannot reload (DESIGN section 6); the partner does.
	e.expectCode(e.do(me, "POST", "/customers/me/balances/"+itoa(b.ID)+"/reload", map[string]string{"amount": "20", "reference": "r"}, hdr), 403, CodeReloadNotAllowed)
	e.expect(e.do(pc, "POST", "/secure/customers/"+itoa(c.ID)+"/balances/"+itoa(b.ID)+"/reload", map[string]string{"amount": "20", "reference": "app-1-top-up"}, nil), 200, nil)
	var cd cardData
	e.decrypted(e.jwe(me, "POST", "/customers/me/cards/virtual", map[string]any{"balanceId": b.ID}, hdr), 201, &cd)
	var got balanceView
	e.expect(e.do(me, "GET", "/customers/me/balances/"+itoa(b.ID), nil, hdr), 200, &got)
	if got.Balance != "20.00" || len(got.Cards) != 1 || got.Cards[0].ID != cd.ID {
		t.Fatalf("balance %+v", got)
	}
	var hist struct{ Events []eventView }
	e.expect(e.do(me, "GET", "/customers/me/cards/"+itoa(cd.ID)+"/history", nil, hdr), 200, &hist)
	if hist.Events[0].ActorKind != "user" || hist.Events[0].ActorID != itoa(c.ID) {
		t.Fatalf("history %+v, want the user as actor", hist.Events)
	}
}

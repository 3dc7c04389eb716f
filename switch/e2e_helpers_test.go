package authswitch

import (
	"crypto/x509"

	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/partner"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
)

// TestMain stops the throwaway PostgreSQL cluster of the end-to-end tests
// when the binary ends.
func TestMain(m *testing.M) { ledgertest.Main(m) }

var (
	keysOnce sync.Once
	e2eKeys  *hsm.Keys
	keysErr  error
)

// testKeys generates one development key set per test binary: the RSA key
// of the set makes generation slow enough to do once.
func testKeys(t testing.TB) *hsm.Keys {
	t.Helper()
	keysOnce.Do(func() { e2eKeys, keysErr = hsm.GenerateKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return e2eKeys
}

var admin = cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "e2e"}

// e2e is one profile's switch over the real card host and ledger on a
// fresh database, with an iso8583-connection client.
type e2e struct {
	t       *testing.T
	ctx     context.Context
	profile string
	pool    *pgxpool.Pool
	led     *ledger.Ledger
	host    *cardhost.Host
	keys    *hsm.Keys
	partner ledger.Partner
	prog    cardhost.Program // partner credit, EUR, virtual and physical cards
	addr    string
	c       *connection.Connection
	stan    atomic.Int64
	bins    atomic.Int64
}

// newE2E starts the switch of profile over a real Host on a fresh
// database. tweak adjusts the switch's Config. ledger.Verify must be clean
// when the test ends, after the switch shut down.
func newE2E(t *testing.T, profile string, tweak func(*Config)) *e2e {
	t.Helper()
	e := &e2e{t: t, ctx: t.Context(), profile: profile, keys: testKeys(t)}
	e.pool = ledgertest.Pool(t)
	log := slog.New(slog.DiscardHandler)
	e.led = ledger.New(e.pool, ledger.Config{Logger: log})
	e.host = cardhost.NewHost(e.pool, e.led, e.keys, cardhost.Config{Logger: log, Remote: testDecider(t)})
	t.Cleanup(func() { e.verify() })
	var err error
	e.partner, err = e.led.CreatePartner(e.ctx, "Partner "+profile, "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.prog = e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 1_000_000)
	e.addr = e.serve(e.host, tweak)
	e.c = e.dial()
	return e
}

// serve starts a switch of the profile deciding with a.
func (e *e2e) serve(a Authorizer, tweak func(*Config)) string {
	_, addr := startServer(e.t, e.profile, a, func(c *Config) {
		c.ZoneKey = e.profile
		c.Logger = slog.New(slog.DiscardHandler)
		if tweak != nil {
			tweak(c)
		}
	})
	return addr
}

func (e *e2e) dial() *connection.Connection { return dial(e.t, e.addr, e.profile) }

// verify fails the test when the ledger's invariants do not hold.
func (e *e2e) verify() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vs, err := e.led.Verify(ctx)
	if err != nil {
		e.t.Errorf("ledger verify: %v", err)
		return
	}
	for _, v := range vs {
		e.t.Errorf("ledger verify: %s", v)
	}
}

// program creates a program of the test's partner in EUR with its own BIN
// and reloads its partner credit/deposit balance with funds.
func (e *e2e) program(s cardhost.ProgramSpec, funds int64) cardhost.Program {
	e.t.Helper()
	n := e.bins.Add(1)
	s.PartnerID = e.partner.ID
	s.Name = fmt.Sprintf("program %d", n)
	s.BINLow = fmt.Sprintf("4%05d", n)
	s.BINHigh = s.BINLow
	if s.Currency == "" {
		s.Currency = "EUR"
	}
	if len(s.CardTypes) == 0 {
		s.CardTypes = []cardhost.CardType{cardhost.Virtual, cardhost.Physical}
	}
	if s.RemoteURL != "" && s.RemoteSecret == "" {
		s.RemoteSecret = remoteSecret
	}
	p, err := e.host.CreateProgram(e.ctx, s)
	if err != nil {
		e.t.Fatal(err)
	}
	if funds > 0 {
		if _, err := e.led.Reload(e.ctx, p.PartnerAccountID, funds, fmt.Sprintf("fund-program-%d", p.ID)); err != nil {
			e.t.Fatal(err)
		}
	}
	return p
}

// user registers a verified user of prog with a EUR balance holding funds
// and returns the user and balance ids.
func (e *e2e) user(prog cardhost.Program, funds int64) (userID, accountID int64) {
	e.t.Helper()
	ref := fmt.Sprintf("user-%d", e.bins.Add(1))
	u, err := e.host.RegisterUser(e.ctx, prog.ID, ref, "Test User", ref+"@example.com")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.host.SetKYC(e.ctx, u.ID, cardhost.KYCVerified, "admin"); err != nil {
		e.t.Fatal(err)
	}
	acc, err := e.host.CreateBalance(e.ctx, u.ID, prog.Currency)
	if err != nil {
		e.t.Fatal(err)
	}
	if funds > 0 {
		if _, err := e.led.Reload(e.ctx, acc.ID, funds, "fund-"+ref); err != nil {
			e.t.Fatal(err)
		}
	}
	return u.ID, acc.ID
}

// testCard is a card with its secrets, for building requests.
type testCard struct {
	cardhost.Card
	cardhost.CardData
}

// virtualCard issues an active virtual card on a new user of prog whose
// balance holds funds.
func (e *e2e) virtualCard(prog cardhost.Program, funds int64) testCard {
	e.t.Helper()
	u, acc := e.user(prog, funds)
	return e.virtualCardOn(e.host, u, acc)
}

func (e *e2e) virtualCardOn(h *cardhost.Host, userID, accountID int64) testCard {
	e.t.Helper()
	c, d, err := h.CreateVirtualCard(e.ctx, userID, accountID, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	return testCard{c, d}
}

// physicalCard orders a physical card on a new user of prog; active
// links and activates it and sets pin.
func (e *e2e) physicalCard(prog cardhost.Program, funds int64, active bool, pin string) testCard {
	e.t.Helper()
	u, acc := e.user(prog, funds)
	c, err := e.host.OrderPhysicalCard(e.ctx, u, acc, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	if active {
		for _, step := range []func(context.Context, int64, cardhost.Actor) (cardhost.Card, error){e.host.LinkCard, e.host.Activate} {
			if _, err := step(e.ctx, c.ID, admin); err != nil {
				e.t.Fatal(err)
			}
		}
		if pin != "" {
			if _, err := e.host.SetPIN(e.ctx, c.ID, pin, admin); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	c, d, err := e.host.FullData(e.ctx, c.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return testCard{c, d}
}

// msg builds a request of the profile for card with a fresh STAN, the
// card's expiry in DE14 and EUR as the currency; extra overrides fields.
func (e *e2e) msg(fn string, card testCard, amount int64, extra map[int]string) *iso8583.Message {
	e.t.Helper()
	f := map[int]string{14: card.CardData.Expiry}
	for k, v := range extra {
		f[k] = v
	}
	return request(e.t, e.profile, fn, int(e.stan.Add(1)), card.PAN, amount, f)
}

// send sends m on the test's connection and returns the answer.
func (e *e2e) send(m *iso8583.Message) *iso8583.Message {
	e.t.Helper()
	return sendOn(e.t, e.c, m)
}

func sendOn(t testing.TB, c *connection.Connection, m *iso8583.Message) *iso8583.Message {
	t.Helper()
	resp, err := c.Send(m)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp
}

// auth sends an authorisation (x100) of amount EUR for card.
func (e *e2e) auth(card testCard, amount int64, extra map[int]string) (*iso8583.Message, *iso8583.Message) {
	e.t.Helper()
	req := e.msg("100", card, amount, extra)
	return req, e.send(req)
}

// expect checks DE39 of an answer against reason's action code.
func (e *e2e) expect(resp *iso8583.Message, reason cardhost.Reason) {
	e.t.Helper()
	if got, want := get(e.t, resp, 39), actionCode(e.t, e.profile, reason); got != want {
		e.t.Errorf("DE39: got %s, want %s (%s)", got, want, reason)
	}
}

// available reads the available balance from DE54 of an answer.
func (e *e2e) de54(resp *iso8583.Message) (ccy string, available int64, ok bool) {
	e.t.Helper()
	v, err := resp.GetString(54)
	if err != nil || v == "" {
		return "", 0, false
	}
	if e.profile == ProfileISO2003 {
		// The CMF's entry has the minor unit after the currency.
		if len(v) != 21 || v[7] != '2' {
			e.t.Fatalf("DE54: got %q, want 21 characters, minor unit 2", v)
		}
		v = v[:7] + v[8:]
	}
	if len(v) != 20 {
		e.t.Fatalf("DE54: got %d characters, want 20", len(v))
	}
	var n int64
	if _, err := fmt.Sscanf(v[8:], "%d", &n); err != nil {
		e.t.Fatalf("DE54 amount: %v", err)
	}
	if v[7] == 'D' {
		n = -n
	}
	return v[4:7], n, true
}

// account returns a ledger account.
func (e *e2e) account(id int64) ledger.Account {
	e.t.Helper()
	a, err := e.led.Account(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// expectBalance checks an account's balance and held amount.
func (e *e2e) expectBalance(id, balance, held int64) {
	e.t.Helper()
	a := e.account(id)
	if a.Balance != balance || a.Held != held {
		e.t.Errorf("account %d: got balance %d held %d, want %d and %d", id, a.Balance, a.Held, balance, held)
	}
}

// count runs a count query.
func (e *e2e) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// original is the original data element naming req (DE90 for iso87, the
// CMF's DE56 for iso2003) and the field it goes in.
func (e *e2e) original(req *iso8583.Message) map[int]string {
	e.t.Helper()
	mti, stan := get(e.t, req, 0), get(e.t, req, 11)
	if e.profile == ProfileISO2003 {
		return map[int]string{56: mti + stan + get(e.t, req, 12) + get(e.t, req, 32)}
	}
	return map[int]string{90: mti + stan + get(e.t, req, 7) + fmt.Sprintf("%011s", get(e.t, req, 32)) + "00000000000"}
}

// follow builds a completion or reversal (fn) referring to orig for card.
func (e *e2e) follow(fn string, orig *iso8583.Message, card testCard, amount int64, extra map[int]string) *iso8583.Message {
	e.t.Helper()
	f := e.original(orig)
	for k, v := range extra {
		f[k] = v
	}
	return e.msg(fn, card, amount, f)
}

// replacement is DE95 with the actual amount.
func replacement(amount int64) string {
	return fmt.Sprintf("%012d", amount) + "000000000000000000000000000000"
}

// partnerRemote is a partner's decision endpoint: it answers approve after
// delay (or until the request is cancelled).
func partnerRemote(t testing.TB, approve bool, delay time.Duration) string {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, err := partner.ReadDecision(r, remoteSecret)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			case <-stop:
				return
			}
		}
		partner.WriteDecision(w, remoteSecret, id, approve)
	}))
	t.Cleanup(func() {
		close(stop)
		srv.Close()
	})
	return srv.URL
}

// remoteSecret signs the test programs' remote decisions.
const remoteSecret = "rdsec_test"

// testDecider is the production remote decider allowed to reach the tests'
// HTTPS partners on 127.0.0.1 (httptest's certificate is the same for
// every server).
func testDecider(t testing.TB) cardhost.RemoteDecider {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return partner.NewDecider(partner.NewClient(partner.Config{RootCAs: pool, AllowLoopback: true}))
}

// rawConn opens a plain socket to the switch.
func (e *e2e) rawConn() net.Conn {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return nc
}

// forProfiles runs f for each profile on its own switch and database.
func forProfiles(t *testing.T, tweak func(*Config), f func(t *testing.T, e *e2e)) {
	for _, p := range bothProfiles {
		t.Run(p, func(t *testing.T) { f(t, newE2E(t, p, tweak)) })
	}
}

package partner_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/partner"
)

var (
	keysOnce sync.Once
	keys     *hsm.Keys
	keysErr  error
)

// world is a card host on a fresh database with one partner and program
// (partner credit, EUR, low threshold 500.00 on the partner balance).
type world struct {
	t      *testing.T
	ctx    context.Context
	led    *ledger.Ledger
	host   *cardhost.Host
	prog   cardhost.Program
	pool   *x509.CertPool
	client *partner.Client
	stan   atomic.Int64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	keysOnce.Do(func() { keys, keysErr = hsm.GenerateKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	pool := ledgertest.Pool(t)
	w := &world{t: t, ctx: t.Context(), led: ledger.New(pool, ledger.Config{})}
	w.host = cardhost.NewHost(pool, w.led, keys, cardhost.Config{})
	t.Cleanup(w.host.Close)
	p, err := w.led.CreatePartner(w.ctx, "Partner", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	low := int64(500_00)
	w.prog, err = w.host.CreateProgram(w.ctx, cardhost.ProgramSpec{PartnerID: p.ID, Name: "P", BINLow: "539999", BINHigh: "539999",
		Currency: "EUR", Funding: cardhost.FundingPartnerCredit, LowThreshold: &low})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.led.Reload(w.ctx, w.prog.PartnerAccountID, 1_000_00, "fund"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	w.pool = x509.NewCertPool()
	w.pool.AddCert(srv.Certificate())
	w.client = partner.NewClient(partner.Config{RootCAs: w.pool, AllowLoopback: true, Timeout: 2 * time.Second})
	return w
}

// receiver is a partner's HTTPS webhook receiver that checks every
// signature with its secret and records what it got.
type receiver struct {
	srv    *httptest.Server
	secret atomic.Value // string
	down   atomic.Bool
	delay  atomic.Int64 // ns each answer waits; a call cancelled meanwhile is not recorded
	mu     sync.Mutex
	got    map[string]int // event id -> deliveries with a valid signature
	types  map[string]string
	bad    int // deliveries whose signature did not verify
	calls  int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}, types: map[string]string{}}
	r.secret.Store("")
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if d := time.Duration(r.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-req.Context().Done():
				return
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if r.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if err := partner.Verify(req.Header.Get(partner.SignatureHeader), body, r.secret.Load().(string), time.Now(), 5*time.Minute); err != nil {
			r.bad++
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		var ev struct {
			ID, Type string
		}
		json.Unmarshal(body, &ev)
		if ev.ID != req.Header.Get(partner.EventIDHeader) {
			r.bad++
		}
		r.got[ev.ID]++
		r.types[ev.ID] = ev.Type
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) typeCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for id, n := range r.got {
		m[r.types[id]] += n
	}
	return m
}

// endpoint registers url for every event type and returns its secret.
func (w *world) endpoint(url string, types ...string) ledger.WebhookEndpoint {
	w.t.Helper()
	if len(types) == 0 {
		types = []string{"*"}
	}
	e, err := w.led.CreateWebhookEndpoint(w.ctx, w.prog.PartnerID, url, types, fmt.Sprintf("whsec_test_%d", time.Now().UnixNano()))
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

func (w *world) card(funds int64) (cardhost.Card, cardhost.CardData) {
	w.t.Helper()
	return w.cardIn(w.prog, funds)
}

// cardIn makes a verified customer of prog with a funded balance and a
// virtual card.
func (w *world) cardIn(prog cardhost.Program, funds int64) (cardhost.Card, cardhost.CardData) {
	w.t.Helper()
	u, err := w.host.RegisterUser(w.ctx, prog.ID, fmt.Sprintf("u%d", w.stan.Add(1)), "Ann", "ann@example.com")
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.host.SetKYC(w.ctx, u.ID, cardhost.KYCVerified, "partner"); err != nil {
		w.t.Fatal(err)
	}
	acc, err := w.host.CreateBalance(w.ctx, u.ID, "EUR")
	if err != nil {
		w.t.Fatal(err)
	}
	if funds > 0 {
		if _, err := w.led.Reload(w.ctx, acc.ID, funds, fmt.Sprintf("r%d", acc.ID)); err != nil {
			w.t.Fatal(err)
		}
	}
	c, d, err := w.host.CreateVirtualCard(w.ctx, u.ID, acc.ID, cardhost.Actor{Kind: cardhost.ActorPartner, ID: "1"})
	if err != nil {
		w.t.Fatal(err)
	}
	return c, d
}

// auth decides one message of class for the card's PAN.
func (w *world) auth(class cardhost.MessageClass, mti, proc, pan string, amount int64, stan string) cardhost.Decision {
	w.t.Helper()
	d, err := w.host.Authorize(w.ctx, &cardhost.AuthRequest{Class: class, Profile: "iso2003", MTI: mti, PAN: pan,
		ProcessingCode: proc, Amount: amount, Currency: "978", STAN: stan, TransmissionTime: "1206120000", RRN: "RRN" + stan,
		AcquirerID: "123456", MerchantName: "Shop", MCC: "5411"})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// drain runs webhook rounds until want deliveries succeeded or the time is up.
func drain(t *testing.T, wh *partner.Webhooks, r *receiver, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := wh.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		n := len(r.got)
		r.mu.Unlock()
		if n >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhooksEveryEventOnce makes every event type happen and checks that
// a receiver gets each event exactly once, with a valid signature and its
// id in Antaca-Event-Id, even with a second worker running at once.
func TestWebhooksEveryEventOnce(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL)
	r.secret.Store(e.Secret)
	cfg := partner.WebhookConfig{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, GapWait: time.Second}
	wh := partner.NewWebhooks(w.led, w.client, cfg)
	other := partner.NewWebhooks(w.led, w.client, cfg)

	ctx := w.ctx
	actor := cardhost.Actor{Kind: cardhost.ActorPartner, ID: "1"}
	c, data := w.card(1_000_00)
	// card.locked by the partner, card.unlocked.
	if _, err := w.host.Lock(ctx, c.ID, cardhost.LockCode(3), actor, "checking"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.host.Unlock(ctx, c.ID, actor); err != nil {
		t.Fatal(err)
	}
	// authorization.approved, then clearing.captured by its completion.
	if d := w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 100_00, "000001"); d.Reason != cardhost.Approved {
		t.Fatalf("authorisation: %s", d.Reason)
	}
	if d := w.auth(cardhost.ClassCompletion, "1220", "00", data.PAN, 100_00, "000001"); d.Reason != cardhost.Approved {
		t.Fatalf("completion: %s", d.Reason)
	}
	// authorization.approved, then authorization.reversed.
	w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 10_00, "000002")
	if d := w.auth(cardhost.ClassReversal, "1420", "00", data.PAN, 10_00, "000002"); d.Reason != cardhost.Approved {
		t.Fatalf("reversal: %s", d.Reason)
	}
	// authorization.declined (insufficient funds).
	if d := w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 5_000_00, "000003"); d.Reason == cardhost.Approved {
		t.Fatal("an authorisation above the balance was approved")
	}
	// refund.credited: an x220 refund matched to no purchase, credited
	// within the program's blind-refund limit (default 0: it would wait
	// for an Admin as an exception and credit nothing).
	if err := w.host.SetProgramLimits(ctx, w.prog.ID, cardhost.ProgramLimits{BlindRefundLimit: 10_00}); err != nil {
		t.Fatal(err)
	}
	if d := w.auth(cardhost.ClassCompletion, "1220", "20", data.PAN, 5_00, "000004"); d.Reason != cardhost.Approved {
		t.Fatalf("refund: %s", d.Reason)
	}
	// balance.low: the partner balance (1,000.00) crosses 500.00 downwards.
	c2, data2 := w.card(1_000_00)
	w.auth(cardhost.ClassAuthorization, "1100", "00", data2.PAN, 600_00, "000005")
	// card.activated: a physical card ordered, linked, activated.
	pc, err := w.host.OrderPhysicalCard(ctx, c2.UserID, c2.AccountID, actor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.host.LinkCard(ctx, pc.ID, actor); err != nil {
		t.Fatal(err)
	}
	if _, err := w.host.Activate(ctx, pc.ID, actor); err != nil {
		t.Fatal(err)
	}
	// card.removed.
	if _, err := w.host.Remove(ctx, c2.ID, cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "7"}); err != nil {
		t.Fatal(err)
	}
	// exception.opened: the switch's side inserts exceptions (migration 011).
	if _, err := w.host.Pool().Exec(ctx, `INSERT INTO exceptions (kind, currency, amount, card_id, program_id) VALUES ('over_capture', 'EUR', 150, $1, $2)`,
		c.ID, w.prog.ID); err != nil {
		t.Fatal(err)
	}

	want := map[string]int{
		"card.created": 2, "card.locked": 1, "card.unlocked": 1, "card.activated": 1, "card.removed": 1,
		"authorization.approved": 3, "authorization.declined": 1, "authorization.reversed": 1, "clearing.captured": 1,
		"refund.credited": 1, "balance.low": 1, "exception.opened": 1,
	}
	// the physical card's creation is a card.created too
	want["card.created"]++
	total := 0
	for _, n := range want {
		total += n
	}
	var wg sync.WaitGroup
	wg.Go(func() { drain(t, other, r, total, 10*time.Second) })
	drain(t, wh, r, total, 10*time.Second)
	wg.Wait()
	for i := 0; i < 3; i++ { // later rounds send nothing again
		wh.Round(ctx)
		other.Round(ctx)
	}
	got := r.typeCounts()
	for _, typ := range partner.EventTypes {
		if got[typ] != want[typ] {
			t.Errorf("%s: got %d deliveries, want %d", typ, got[typ], want[typ])
		}
	}
	r.mu.Lock()
	for id, n := range r.got {
		if n != 1 {
			t.Errorf("event %s delivered %d times, want once", id, n)
		}
	}
	if r.bad != 0 {
		t.Errorf("%d deliveries with a bad signature or event id header", r.bad)
	}
	r.mu.Unlock()

	// The lock names who locked; events carry the masked PAN only.
	evs, err := w.led.WebhookEvents(ctx, w.prog.PartnerID, "card.locked", 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("card.locked events: %v %v", evs, err)
	}
	var lock struct {
		By        struct{ Kind string }
		MaskedPan string
		LockCode  int
	}
	json.Unmarshal(evs[0].Data, &lock)
	if lock.By.Kind != "partner" || lock.LockCode != 3 || lock.MaskedPan != cardhost.MaskPAN(data.PAN) {
		t.Errorf("card.locked data %s: want by partner, code 3, masked PAN", evs[0].Data)
	}
	all, _ := w.led.WebhookEvents(ctx, w.prog.PartnerID, "", 100)
	for _, ev := range all {
		for _, pan := range []string{data.PAN, data2.PAN} {
			if json.Valid(ev.Data) && contains(string(ev.Data), pan) {
				t.Errorf("event %s carries a full PAN", ev.ID)
			}
		}
	}
	ds, err := partner.Catalog{Ledger: w.led}.WebhookDeliveries(ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, Status: "succeeded", Limit: 1000})
	if err != nil || len(ds) != total {
		t.Errorf("succeeded deliveries listed: %d (%v), want %d", len(ds), err, total)
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// roundsWhileDown runs a few rounds against a receiver answering 503 and
// checks it was tried and accepted nothing.
func roundsWhileDown(t *testing.T, wh *partner.Webhooks, r *receiver) {
	t.Helper()
	for range 5 {
		wh.Round(t.Context())
		time.Sleep(30 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == 0 || len(r.got) != 0 {
		t.Fatalf("while down: %d calls, %d accepted; want tries and none accepted", r.calls, len(r.got))
	}
}

// TestWebhooksReceiverDown: while the receiver answers 503 every delivery
// is retried with backoff; once it is back it gets every event, once; a
// replay sends one again with the same id.
func TestWebhooksReceiverDown(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "card.created", "card.locked")
	r.secret.Store(e.Secret)
	r.down.Store(true)
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	for range 5 {
		w.card(0)
	}
	roundsWhileDown(t, wh, r)
	pending, _ := w.led.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, Status: "pending"})
	if len(pending) != 5 || pending[0].Attempts == 0 || pending[0].LastStatus == nil || *pending[0].LastStatus != 503 {
		t.Fatalf("pending deliveries while down: %+v", pending)
	}
	r.down.Store(false)
	drain(t, wh, r, 5, 5*time.Second)
	if got := r.typeCounts()["card.created"]; got != 5 {
		t.Fatalf("after the receiver came back: %d card.created, want 5", got)
	}
	d, err := w.led.WebhookDelivery(w.ctx, w.prog.PartnerID, pending[0].ID)
	if err != nil || d.Status != "succeeded" || len(d.Tries) < 2 || d.Tries[len(d.Tries)-1].Status == nil || *d.Tries[len(d.Tries)-1].Status != 204 {
		t.Fatalf("delivery after recovery: %+v %v; want succeeded with the failed tries listed", d, err)
	}
	if _, err := w.led.ReplayWebhookDelivery(w.ctx, w.prog.PartnerID, d.ID); err != nil {
		t.Fatal(err)
	}
	wh.Round(w.ctx)
	r.mu.Lock()
	n := r.got[d.EventID]
	r.mu.Unlock()
	if n != 2 {
		t.Fatalf("replayed event %s received %d times, want 2 (same id: the receiver deduplicates)", d.EventID, n)
	}
}

// TestWebhooksGiveUpMarksFailing: a delivery still failing after RetryFor
// fails and its endpoint is marked failing; a later success clears it.
func TestWebhooksGiveUpMarksFailing(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "card.created")
	r.secret.Store(e.Secret)
	r.down.Store(true)
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		RetryFor: 150 * time.Millisecond})
	w.card(0)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		wh.Round(w.ctx)
		es, _ := w.led.WebhookEndpoints(w.ctx, w.prog.PartnerID)
		if es[0].Status == "failing" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	es, _ := w.led.WebhookEndpoints(w.ctx, w.prog.PartnerID)
	failed, _ := w.led.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, Status: "failed"})
	if es[0].Status != "failing" || len(failed) != 1 {
		t.Fatalf("endpoint %s, %d failed deliveries; want failing and 1", es[0].Status, len(failed))
	}
	r.down.Store(false)
	w.led.ReplayWebhookDelivery(w.ctx, w.prog.PartnerID, failed[0].ID)
	wh.Round(w.ctx)
	es, _ = w.led.WebhookEndpoints(w.ctx, w.prog.PartnerID)
	if es[0].Status != "enabled" {
		t.Fatalf("endpoint after a success: %s, want enabled", es[0].Status)
	}
}

// TestWebhooksNoRedirectWrongSecret: a receiver that redirects is never
// followed (the delivery fails with the 3xx); a receiver holding another
// secret detects every delivery as not ours; during a rotation both the
// new and the old secret verify.
func TestWebhooksNoRedirectWrongSecret(t *testing.T) {
	w := newWorld(t)
	target := newReceiver(t)
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		http.Redirect(rw, req, target.srv.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	e := w.endpoint(redirect.URL, "card.created")
	target.secret.Store(e.Secret)
	wrong := newReceiver(t)
	wrong.secret.Store("whsec_not_this_one")
	w.endpoint(wrong.srv.URL, "card.created")
	rotated := newReceiver(t)
	re := w.endpoint(rotated.srv.URL, "card.created")
	old := re.Secret
	re, err := w.led.RotateWebhookSecret(w.ctx, w.prog.PartnerID, re.ID, "whsec_rotated", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rotated.secret.Store(old) // a receiver not yet switched to the new secret

	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{Backoff: time.Hour})
	w.card(0)
	wh.Round(w.ctx)
	if target.calls != 0 {
		t.Errorf("the redirect's target got %d calls, want 0", target.calls)
	}
	ds, _ := w.led.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{EndpointID: e.ID})
	if len(ds) != 1 || ds[0].Status != "pending" || ds[0].LastStatus == nil || *ds[0].LastStatus != http.StatusTemporaryRedirect {
		t.Errorf("delivery to the redirecting endpoint: %+v; want pending with last status 307", ds)
	}
	if wrong.bad != 1 || len(wrong.got) != 0 {
		t.Errorf("receiver with another secret: %d bad, %d accepted; want 1 and 0", wrong.bad, len(wrong.got))
	}
	if len(rotated.got) != 1 || rotated.bad != 0 {
		t.Errorf("during rotation the old secret: %d accepted, %d bad; want 1 and 0", len(rotated.got), rotated.bad)
	}
}

// TestWebhooksReceiverRefusesConnections: the receiver's server is stopped
// (connections refused) while events happen, then started again on the
// same address: it gets every event once.
func TestWebhooksReceiverRefusesConnections(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	addr := r.srv.Listener.Addr().String()
	url := r.srv.URL
	e := w.endpoint(url, "card.created")
	r.secret.Store(e.Secret)
	r.srv.Close() // down: nothing listens on addr
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	for range 3 {
		w.card(0)
	}
	for range 3 {
		wh.Round(w.ctx)
		time.Sleep(30 * time.Millisecond)
	}
	pending, _ := w.led.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, Status: "pending"})
	if len(pending) != 3 || pending[0].Attempts == 0 || pending[0].LastStatus != nil || pending[0].LastError == "" {
		t.Fatalf("deliveries while refused: %+v; want 3 pending with a connection error", pending)
	}
	// Back on the same address, with the same certificate.
	back := httptest.NewUnstartedServer(r.srv.Config.Handler)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s not free again: %v", addr, err)
	}
	back.Listener = ln
	back.StartTLS()
	defer back.Close()
	r.srv = back
	drain(t, wh, r, 3, 5*time.Second)
	if got := r.typeCounts()["card.created"]; got != 3 {
		t.Fatalf("after the receiver came back: %d card.created, want 3", got)
	}
	for id, n := range r.got {
		if n != 1 {
			t.Errorf("event %s delivered %d times, want once", id, n)
		}
	}
}

// TestWebhooksJournalCommitOutOfOrder: a journal row whose transaction
// commits after a later row's is still made into its event: the cursor
// waits at the hole.
func TestWebhooksJournalCommitOutOfOrder(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "authorization.approved", "authorization.declined")
	r.secret.Store(e.Secret)
	c, _ := w.card(0)
	const ins = `INSERT INTO auth_journal (profile, mti, class, acquirer_id, stan, card_id, reason) VALUES ('iso2003', '2100', 1, '1', $1, $2, 'insufficient_funds') RETURNING id`
	pool := w.host.Pool()
	tx, err := pool.Begin(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(w.ctx)
	var early, late int64
	if err := tx.QueryRow(w.ctx, ins, "1", c.ID).Scan(&early); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(w.ctx, ins, "2", c.ID).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if early >= late {
		t.Fatalf("ids %d, %d: want the uncommitted one first", early, late)
	}
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{GapWait: time.Minute})
	drain(t, wh, r, 1, 3*time.Second)
	if err := tx.Commit(w.ctx); err != nil {
		t.Fatal(err)
	}
	drain(t, wh, r, 2, 3*time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range []int64{early, late} {
		if r.got[fmt.Sprintf("evt_auth_%d", id)] != 1 {
			t.Errorf("journal row %d: delivered %d times, want once (got %v)", id, r.got[fmt.Sprintf("evt_auth_%d", id)], r.got)
		}
	}
	if pos, _ := w.led.JournalCursor(w.ctx); pos < late {
		t.Errorf("cursor %d after both committed, want at least %d", pos, late)
	}
}

// count is a count(*) query's answer.
func (w *world) count(q string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.host.Pool().QueryRow(w.ctx, q, args...).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// TestWebhooksJournalWritesPerBatch: the events of authorisations are sent
// straight from the journal: each once with a valid signature, and a batch
// delivered on the first try writes the cursor and one row for the
// endpoint, no event, delivery or attempt row per event. They are still
// listed (succeeded, one attempt), and one can be replayed by its id.
func TestWebhooksJournalWritesPerBatch(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "authorization.approved", "authorization.declined", "authorization.reversed", "clearing.captured")
	r.secret.Store(e.Secret)
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{})
	wh.Round(w.ctx) // takes the cursor's lease
	_, data := w.card(1_000_00)
	const n = 20
	for i := range n {
		w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 1_00, fmt.Sprintf("%06d", i+1))
	}
	w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 5_000_00, "000100") // declined
	w.auth(cardhost.ClassCompletion, "1220", "00", data.PAN, 1_00, "000001")        // captured
	w.auth(cardhost.ClassReversal, "1420", "00", data.PAN, 1_00, "000002")          // reversed
	want := n + 3
	sends0 := w.count(`SELECT count(*) FROM webhook_journal_sends`)
	if _, err := wh.Round(w.ctx); err != nil {
		t.Fatal(err)
	}
	r.gotEachOnce(t, want) // in one round
	if got := r.typeCounts(); got["authorization.approved"] != n || got["authorization.declined"] != 1 || got["clearing.captured"] != 1 || got["authorization.reversed"] != 1 {
		t.Errorf("delivered types %v", got)
	}
	if k := w.count(`SELECT count(*) FROM webhook_events WHERE type LIKE 'authorization.%' OR type = 'clearing.captured'`); k != 0 {
		t.Errorf("%d journal event rows written, want 0 (the journal row is the event)", k)
	}
	if k := w.count(`SELECT count(*) FROM webhook_deliveries`) + w.count(`SELECT count(*) FROM webhook_attempts`); k != 0 {
		t.Errorf("%d delivery and attempt rows written for first-try successes, want 0", k)
	}
	if k := w.count(`SELECT count(*) FROM webhook_journal_sends`) - sends0; k != 1 {
		t.Errorf("%d batch rows for one batch to one endpoint, want 1", k)
	}
	cat := partner.Catalog{Ledger: w.led}
	ds, err := cat.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, Status: "succeeded", Limit: 1000})
	if err != nil || len(ds) != want {
		t.Fatalf("succeeded deliveries listed: %d (%v), want %d", len(ds), err, want)
	}
	if d := ds[0]; d.Attempts != 1 || d.DeliveredAt == nil || d.EndpointID != e.ID || d.ID != 0 {
		t.Errorf("listed journal delivery %+v: want one attempt, delivered, no delivery id", d)
	}
	evID := ds[len(ds)-1].EventID
	one, err := cat.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, EventID: evID})
	if err != nil || len(one) != 1 || one[0].EventID != evID {
		t.Fatalf("deliveries of %s: %+v %v", evID, one, err)
	}
	if other, _ := cat.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID + 1000}); len(other) != 0 {
		t.Errorf("another partner sees %d deliveries", len(other))
	}
	evs, err := cat.WebhookEvents(w.ctx, w.prog.PartnerID, "authorization.approved", 100)
	if err != nil || len(evs) != n {
		t.Errorf("authorization.approved events listed: %d (%v), want %d", len(evs), err, n)
	}
	// Replayed by id: a delivery row now, sent again with the same id.
	d, err := cat.ReplayWebhookEvent(w.ctx, w.prog.PartnerID, e.ID, evID)
	if err != nil || d.ID == 0 || d.Status != "pending" {
		t.Fatalf("replay %s: %+v %v", evID, d, err)
	}
	if _, err := cat.ReplayWebhookEvent(w.ctx, w.prog.PartnerID+1000, e.ID, evID); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("another partner's replay: %v, want not found", err)
	}
	wh.Round(w.ctx)
	r.mu.Lock()
	if r.got[evID] != 2 {
		t.Errorf("replayed %s received %d times, want 2", evID, r.got[evID])
	}
	r.mu.Unlock()
}

// TestWebhooksJournalReceiverDown: while the receiver answers 503 the
// journal's events become pending deliveries, tried with backoff and
// listed with their attempts; once it is back it gets every one of them,
// once, and later events go straight from the journal again.
func TestWebhooksJournalReceiverDown(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "authorization.approved")
	r.secret.Store(e.Secret)
	r.down.Store(true)
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	wh.Round(w.ctx)
	_, data := w.card(1_000_00)
	for i := range 5 {
		w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 1_00, fmt.Sprintf("%06d", i+1))
	}
	roundsWhileDown(t, wh, r)
	pending, _ := w.led.WebhookDeliveries(w.ctx, ledger.DeliveryFilter{PartnerID: w.prog.PartnerID, Status: "pending"})
	if len(pending) != 5 {
		t.Fatalf("pending deliveries while down: %d, want 5", len(pending))
	}
	tried := 0
	for _, p := range pending {
		if p.Attempts > 0 {
			tried++
			if p.LastStatus == nil || *p.LastStatus != 503 {
				t.Errorf("pending %s: last status %v, want 503", p.EventID, p.LastStatus)
			}
		}
	}
	if tried == 0 {
		t.Error("no pending delivery shows its failed attempts")
	}
	r.down.Store(false)
	drain(t, wh, r, 5, 5*time.Second)
	for i := range 3 {
		w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 1_00, fmt.Sprintf("%06d", 100+i))
	}
	drain(t, wh, r, 8, 5*time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != 8 {
		t.Fatalf("after the receiver came back: %d events, want 8", len(r.got))
	}
	for id, k := range r.got {
		if k != 1 {
			t.Errorf("event %s delivered %d times, want once", id, k)
		}
	}
	if k := w.count(`SELECT count(*) FROM webhook_deliveries`); k != 5 {
		t.Errorf("%d delivery rows, want 5 (the events after recovery go straight from the journal)", k)
	}
}

// TestWebhooksJournalRollbackSettles: a journal id whose transaction rolled
// back is passed as soon as the database shows that transaction ended, not
// after GapWait, while one still open holds the cursor.
func TestWebhooksJournalRollbackSettles(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "authorization.declined")
	r.secret.Store(e.Secret)
	c, _ := w.card(0)
	const ins = `INSERT INTO auth_journal (profile, mti, class, acquirer_id, stan, card_id, reason) VALUES ('iso2003', '2100', 1, '1', $1, $2, 'insufficient_funds') RETURNING id`
	pool := w.host.Pool()
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{GapWait: time.Hour})
	wh.Round(w.ctx)
	open, err := pool.Begin(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(w.ctx)
	rolled, err := pool.Begin(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var held, gone, late int64
	if err := open.QueryRow(w.ctx, ins, "1", c.ID).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if err := rolled.QueryRow(w.ctx, ins, "2", c.ID).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(w.ctx, ins, "3", c.ID).Scan(&late); err != nil {
		t.Fatal(err)
	}
	rolled.Rollback(w.ctx)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		wh.Round(w.ctx)
		time.Sleep(60 * time.Millisecond)
	}
	if pos, _ := w.led.JournalCursor(w.ctx); pos != held-1 {
		t.Fatalf("cursor %d with journal id %d still open, want %d", pos, held, held-1)
	}
	if err := open.Commit(w.ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		wh.Round(w.ctx)
		if pos, _ := w.led.JournalCursor(w.ctx); pos >= late {
			break
		}
		time.Sleep(60 * time.Millisecond)
	}
	if pos, _ := w.led.JournalCursor(w.ctx); pos < late {
		t.Fatalf("cursor %d: the rolled-back id %d was not passed within 3 s (GapWait 1 h), want at least %d", pos, gone, late)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range []int64{held, late} {
		if r.got[fmt.Sprintf("evt_auth_%d", id)] != 1 {
			t.Errorf("journal row %d delivered %d times, want once", id, r.got[fmt.Sprintf("evt_auth_%d", id)])
		}
	}
}

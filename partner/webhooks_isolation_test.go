package partner_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/partner"
)

// otherProgram makes a second partner with its own partner-credit program
// on bin.
func (w *world) otherProgram(bin string) cardhost.Program {
	w.t.Helper()
	p, err := w.led.CreatePartner(w.ctx, "Partner "+bin, "ops@example.com")
	if err != nil {
		w.t.Fatal(err)
	}
	prog, err := w.host.CreateProgram(w.ctx, cardhost.ProgramSpec{PartnerID: p.ID, Name: "P" + bin, BINLow: bin, BINHigh: bin,
		Currency: "EUR", Funding: cardhost.FundingPartnerCredit})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.led.Reload(w.ctx, prog.PartnerAccountID, 1_000_00, "fund "+bin); err != nil {
		w.t.Fatal(err)
	}
	return prog
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestWebhooksSlowPartnerIsolated: partner A's receiver is slow while A's
// cards keep authorising: it answers only after the delivery timeout (then
// recovers), or answers 2xx after 1.5 s, within the timeout. Partner B's
// events, from the same journal cursor, still arrive within a bound each,
// and A gets every one of its events (order not promised, docs/api.md),
// retried from the store with the full timeout.
func TestWebhooksSlowPartnerIsolated(t *testing.T) {
	const timeout = 3 * time.Second // the delivery timeout
	for _, c := range []struct {
		name  string
		delay time.Duration
	}{
		{"times out", timeout + 2*time.Second},
		{"slow 2xx", 1500 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) { slowPartner(t, timeout, c.delay) })
	}
}

func slowPartner(t *testing.T, timeout, delay time.Duration) {
	w := newWorld(t)
	progB := w.otherProgram("539998")
	ra, rb := newReceiver(t), newReceiver(t)
	ea := w.endpoint(ra.srv.URL, "authorization.approved")
	ra.secret.Store(ea.Secret)
	eb, err := w.led.CreateWebhookEndpoint(w.ctx, progB.PartnerID, rb.srv.URL, []string{"authorization.approved"}, "whsec_test_b")
	if err != nil {
		t.Fatal(err)
	}
	rb.secret.Store(eb.Secret)
	ra.delay.Store(int64(delay))
	client := partner.NewClient(partner.Config{RootCAs: w.pool, AllowLoopback: true, Timeout: timeout})
	wh := partner.NewWebhooks(w.led, client, partner.WebhookConfig{Every: 10 * time.Millisecond,
		JournalTimeout: 300 * time.Millisecond, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	defer start(w.ctx, wh)()

	_, da := w.card(1_000_00)
	_, db := w.cardIn(progB, 1_000_00)
	stopA := make(chan struct{})
	var madeA int
	var wg sync.WaitGroup
	wg.Go(func() { // A's cards keep authorising while its receiver is slow
		for {
			select {
			case <-stopA:
				return
			case <-time.After(50 * time.Millisecond):
			}
			madeA++
			w.auth(cardhost.ClassAuthorization, "1100", "00", da.PAN, 1_00, fmt.Sprintf("A%05d", madeA))
		}
	})

	const nB = 12
	const bound = 1500 * time.Millisecond
	var worst time.Duration
	for i := range nB {
		start := time.Now()
		w.auth(cardhost.ClassAuthorization, "1100", "00", db.PAN, 1_00, fmt.Sprintf("B%05d", i))
		for rb.count() < i+1 && time.Since(start) < 2*timeout {
			time.Sleep(5 * time.Millisecond)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	close(stopA)
	wg.Wait()
	t.Logf("partner B's slowest event: %v", worst)
	if worst > bound {
		t.Errorf("partner B's slowest event took %v with partner A's receiver slower than the timeout, want at most %v", worst, bound)
	}
	rb.gotEachOnce(t, nB)
	if k := w.count(`SELECT count(*) FROM webhook_attempts WHERE error LIKE 'no answer within%'`); k == 0 {
		t.Error("no attempt records A's receiver not answering in time")
	}

	if delay > timeout {
		ra.delay.Store(0) // A's receiver is quick again
	}
	for deadline := time.Now().Add(30 * time.Second); ra.count() < madeA && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if len(ra.got) != madeA || ra.bad != 0 {
		t.Fatalf("partner A got %d distinct events (%d bad) after recovering, want all %d", len(ra.got), ra.bad, madeA)
	}
	for id := range ra.got {
		if ra.types[id] != "authorization.approved" {
			t.Errorf("A got %s of type %s", id, ra.types[id])
		}
	}
}

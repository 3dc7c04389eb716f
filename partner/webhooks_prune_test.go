package partner_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/partner"
)

// exec runs one statement on the test database.
func (w *world) exec(q string, args ...any) {
	w.t.Helper()
	if _, err := w.host.Pool().Exec(w.ctx, q, args...); err != nil {
		w.t.Fatal(err)
	}
}

func rounds(wh *partner.Webhooks, n int) {
	for range n {
		wh.Round(context.Background())
		time.Sleep(30 * time.Millisecond)
	}
}

// TestWebhooksPrune: the records of events delivered before the retention
// (batch sends, succeeded deliveries and their attempts) are deleted, in
// batches of PruneBatch, by Prune and by Run's periodic task; newer ones
// and deliveries still pending stay.
func TestWebhooksPrune(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	e := w.endpoint(r.srv.URL, "authorization.approved")
	r.secret.Store(e.Secret)
	cfg := partner.WebhookConfig{Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PruneBatch: 2, Retention: 24 * time.Hour}
	wh := partner.NewWebhooks(w.led, w.client, cfg)
	wh.Round(w.ctx)
	_, data := w.card(1_000_00)
	auth := func(stan int) {
		w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 1_00, fmt.Sprintf("%06d", stan))
	}
	// Five rounds of one event each straight from the journal: five sends.
	for i := range 5 {
		auth(i + 1)
		drain(t, wh, r, i+1, 5*time.Second)
	}
	// Three events through the store: down, then delivered by retries.
	r.down.Store(true)
	for i := range 3 {
		auth(100 + i)
	}
	rounds(wh, 5)
	r.down.Store(false)
	drain(t, wh, r, 8, 5*time.Second)
	// One more still pending (the receiver down again).
	r.down.Store(true)
	auth(200)
	rounds(wh, 5)
	sends := w.count(`SELECT count(*) FROM webhook_journal_sends`)
	if sends < 5 || w.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) != 3 ||
		w.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`) != 1 {
		t.Fatalf("setup: %d sends, deliveries %d", sends, w.count(`SELECT count(*) FROM webhook_deliveries`))
	}
	// Age all but the newest send and two of the succeeded deliveries (and
	// the pending one, which must stay whatever its age).
	w.exec(`UPDATE webhook_journal_sends SET at = now() - interval '2 days' WHERE id < (SELECT max(id) FROM webhook_journal_sends)`)
	w.exec(`UPDATE webhook_deliveries SET delivered_at = now() - interval '2 days', created_at = now() - interval '2 days'
		WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'succeeded' ORDER BY id LIMIT 2)`)
	w.exec(`UPDATE webhook_deliveries SET created_at = now() - interval '2 days' WHERE status = 'pending'`)
	keptAttempts := w.count(`SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		WHERE d.status = 'pending' OR d.delivered_at > now() - interval '1 day'`)
	events := w.count(`SELECT count(*) FROM webhook_events`)

	n, err := wh.Prune(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(sends - 1 + 2); n != want {
		t.Errorf("pruned %d rows, want %d (%d old sends, 2 old deliveries)", n, want, sends-1)
	}
	if k := w.count(`SELECT count(*) FROM webhook_journal_sends`); k != 1 {
		t.Errorf("%d sends left, want the newest one", k)
	}
	if k := w.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`); k != 1 {
		t.Errorf("%d succeeded deliveries left, want 1", k)
	}
	if k := w.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`); k != 1 {
		t.Errorf("%d pending deliveries left, want 1 (never pruned)", k)
	}
	if k := w.count(`SELECT count(*) FROM webhook_attempts`); k != keptAttempts {
		t.Errorf("%d attempts left, want %d (those of the deliveries kept)", k, keptAttempts)
	}
	if k := w.count(`SELECT count(*) FROM webhook_events`); k != events {
		t.Errorf("%d events left, want %d (events are kept)", k, events)
	}

	// Run prunes periodically.
	w.exec(`UPDATE webhook_journal_sends SET at = now() - interval '2 days'`)
	cfg.PruneEvery = 20 * time.Millisecond
	defer start(w.ctx, partner.NewWebhooks(w.led, w.client, cfg))()
	deadline := time.Now().Add(10 * time.Second)
	for w.count(`SELECT count(*) FROM webhook_journal_sends WHERE at < now() - interval '1 day'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not prune an aged send within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

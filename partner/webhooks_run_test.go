package partner_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/partner"
)

// TestWebhooksRunDeliversEverythingUnderLoad runs the worker (Run, paced)
// while authorisations are made from several goroutines: every event
// arrives exactly once with a valid signature, over a few kept-alive
// connections.
func TestWebhooksRunDeliversEverythingUnderLoad(t *testing.T) {
	w := newWorld(t)
	r := newReceiver(t)
	var conns atomic.Int64
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	e := w.endpoint(r.srv.URL, "authorization.approved", "authorization.declined")
	r.secret.Store(e.Secret)
	const parallel = 4
	wh := partner.NewWebhooks(w.led, w.client, partner.WebhookConfig{Every: 10 * time.Millisecond, Parallel: parallel, JournalBatch: 50})
	defer start(w.ctx, wh)()

	const workers, each = 4, 40
	var wg sync.WaitGroup
	for g := range workers {
		_, data := w.card(1_000_00)
		wg.Go(func() {
			for i := range each {
				w.auth(cardhost.ClassAuthorization, "1100", "00", data.PAN, 1_00, fmt.Sprintf("%02d%04d", g, i))
			}
		})
	}
	wg.Wait()
	want := workers * each
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.got)
		r.mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.gotEachOnce(t, want)
	if got := r.typeCounts(); got["authorization.approved"] != want {
		t.Errorf("delivered types %v, want %d approvals", got, want)
	}
	if k := conns.Load(); k > parallel+2 {
		t.Errorf("%d connections for %d deliveries, want at most %d: kept alive and reused", k, want, parallel+2)
	}
}

// start runs wh.Run in the background; the returned func stops it and
// waits for it to return.
func start(ctx context.Context, wh *partner.Webhooks) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wh.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// gotEachOnce checks that the receiver got want distinct events, each once,
// all with a valid signature.
func (r *receiver) gotEachOnce(t *testing.T, want int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != want || r.bad != 0 {
		t.Fatalf("received %d distinct events (%d bad), want %d", len(r.got), r.bad, want)
	}
	for id, k := range r.got {
		if k != 1 {
			t.Errorf("event %s delivered %d times, want once", id, k)
		}
	}
}

package ledger_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
)

// TestFaultSMTPHangs: an SMTP server that accepts and never speaks (a
// hung mail relay) costs one delivery attempt its timeout, no more; the
// notification stays in the outbox with the error and goes out once a
// working server is there and the backoff has passed. (A server that is
// down altogether: TestOutboxDeliveredBySMTP.)
func TestFaultSMTPHangs(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("alerts@partner.example")
	credit := e.credit(p, "EUR", 1_000, ptr(500))
	u := e.user(p, "EUR", 10_000)
	if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 600}); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	hung := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hung <- c // accepted, never answered
		}
	}()
	const timeout = 500 * time.Millisecond
	m, retry := partner.Mailer{Addr: addr, From: "antaca@example.test", Timeout: timeout}, ledger.OutboxRetry{Backoff: time.Minute}
	start := time.Now()
	sent, err := e.l.DeliverOutbox(e.ctx, m, retry)
	took := time.Since(start)
	if err == nil || sent != 0 {
		t.Fatalf("hung server: sent %d, err %v; want 0 and an error", sent, err)
	}
	if took > timeout+time.Second {
		t.Errorf("hung server: delivery took %v, want about the timeout %v", took, timeout)
	}
	msgs, err := e.l.Outbox(e.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SentAt != nil || msgs[0].Attempts != 1 || msgs[0].LastError == "" {
		t.Fatalf("after a hung delivery: %+v", msgs)
	}
	ln.Close()
	close(hung)
	for c := range hung {
		c.Close()
	}

	srv := startSMTP(t, addr)
	e.clock.Add(2 * time.Minute)
	if sent, err := e.l.DeliverOutbox(e.ctx, m, retry); err != nil || sent != 1 {
		t.Fatalf("server up: sent %d, %v; want 1, nil", sent, err)
	}
	if got := len(srv.messages()); got != 1 {
		t.Fatalf("server received %d messages, want 1", got)
	}
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("ledger verify: %s", v)
	}
	faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "SMTP relay hung (accepts, never answers), then a working server",
		Behaviour: fmt.Sprintf("the delivery attempt gave up after %v (timeout %v); the low-balance notification stayed in the outbox with attempts 1 and its error; delivered exactly once when the server was up and the backoff had passed (server down altogether: TestOutboxDeliveredBySMTP)", took.Round(10*time.Millisecond), timeout),
		Verify:    "clean"})
}

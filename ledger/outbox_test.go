package ledger_test

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
)

// smtpServer is just enough SMTP for the outbox: it records each message's
// recipient and data.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []smtpMessage
	wg   sync.WaitGroup
}

type smtpMessage struct{ from, to, data string }

func startSMTP(t *testing.T, addr string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(s.stop)
	return s
}

func (s *smtpServer) stop() { s.ln.Close(); s.wg.Wait() }

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	reply := func(line string) { c.Write([]byte(line + "\r\n")) }
	reply("220 test ESMTP")
	var m smtpMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			reply("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m.from = strings.TrimSpace(line[len("MAIL FROM:"):])
			reply("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = strings.Trim(strings.TrimSpace(line[len("RCPT TO:"):]), "<>")
			reply("250 ok")
		case cmd == "DATA":
			reply("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			m.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			m = smtpMessage{}
			reply("250 queued")
		case cmd == "QUIT":
			reply("221 bye")
			return
		default:
			reply("250 ok")
		}
	}
}

// TestOutboxDeliveredBySMTP: a threshold crossing writes one outbox row;
// while the SMTP server is down it stays there with its attempts, error and
// next try recorded; once the server is up and the backoff has passed it
// goes out exactly once.
func TestOutboxDeliveredBySMTP(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("alerts@partner.example")
	credit := e.credit(p, "EUR", 1_000, ptr(500))
	u := e.user(p, "EUR", 10_000)
	if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 600}); err != nil {
		t.Fatal(err)
	}

	// Reserve a port, then close it: the server is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, retry := partner.Mailer{Addr: addr, From: "antaca@example.test", Timeout: 2 * time.Second}, ledger.OutboxRetry{Backoff: time.Minute}

	sent, err := e.l.DeliverOutbox(e.ctx, m, retry)
	if err == nil || sent != 0 {
		t.Fatalf("server down: sent %d, err %v; want 0 and an error", sent, err)
	}
	msgs, err := e.l.Outbox(e.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SentAt != nil || msgs[0].Attempts != 1 || msgs[0].LastError == "" || !msgs[0].NextAt.After(e.clock.Now()) {
		t.Fatalf("after a failed delivery: %+v", msgs)
	}
	// Before the backoff has passed nothing is tried, even with the server up.
	srv := startSMTP(t, addr)
	if sent, err := e.l.DeliverOutbox(e.ctx, m, retry); err != nil || sent != 0 {
		t.Fatalf("within backoff: sent %d, %v; want 0, nil", sent, err)
	}
	e.clock.Add(2 * time.Minute)
	if sent, err := e.l.DeliverOutbox(e.ctx, m, retry); err != nil || sent != 1 {
		t.Fatalf("server up: sent %d, %v; want 1, nil", sent, err)
	}
	if sent, err := e.l.DeliverOutbox(e.ctx, m, retry); err != nil || sent != 0 {
		t.Fatalf("nothing left: sent %d, %v; want 0, nil", sent, err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	if got[0].to != "alerts@partner.example" || !strings.Contains(got[0].data, "Subject: Antaca: low balance") ||
		!strings.Contains(got[0].data, "4.00 EUR") {
		t.Fatalf("message %+v", got[0])
	}
	msgs, _ = e.l.Outbox(e.ctx, 10)
	if msgs[0].SentAt == nil || msgs[0].LastError != "" {
		t.Fatalf("after delivery: %+v", msgs[0])
	}
}

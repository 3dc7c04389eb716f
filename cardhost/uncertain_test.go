package cardhost_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// cutProxy forwards PostgreSQL connections (real sockets both ways) and,
// when armed, loses a connection at a chosen point of a COMMIT, as a
// primary that dies or a network cut would.
type cutProxy struct {
	ln     net.Listener
	target string // unix socket of the server
	mode   atomic.Int32
	chunks atomic.Int32 // client writes since armed
	cut    chan struct{}
}

// arm sets the mode for the next authorisation.
func (p *cutProxy) arm(mode int32) {
	p.chunks.Store(0)
	p.mode.Store(mode)
}

// writePipeline reports whether a client write is a batch's second
// pipeline since arming: the holds, the journal and COMMIT (the first
// is BEGIN and the look-ups; each pipeline is one write).
func (p *cutProxy) writePipeline() bool { return p.chunks.Add(1) == 2 }

const (
	cutNone = iota
	// cutAfterCommit drops the server's answer carrying CommandComplete
	// COMMIT and closes the connection: the server committed, the client
	// never learns it.
	cutAfterCommit
	// cutBeforeCommit drops the client's pipeline that holds the batch's
	// writes and COMMIT and closes the connection: the server never
	// commits it.
	cutBeforeCommit
)

func newCutProxy(t *testing.T, socket string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: socket, cut: make(chan struct{}, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	s, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	kill := func() { c.Close(); s.Close() }
	go func() { // client → server
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				// The batch's write pipeline is the one with the holds'
				// insert (it also carries COMMIT).
				if p.mode.Load() == cutBeforeCommit && p.writePipeline() && p.mode.CompareAndSwap(cutBeforeCommit, cutNone) {
					kill()
					p.cut <- struct{}{}
					return
				}
				if _, err := s.Write(buf[:n]); err != nil {
					kill()
					return
				}
			}
			if err != nil {
				kill()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for { // server → client
		n, err := s.Read(buf)
		if n > 0 {
			if p.mode.Load() == cutAfterCommit && bytes.Contains(buf[:n], []byte("COMMIT\x00")) && p.mode.CompareAndSwap(cutAfterCommit, cutNone) {
				kill()
				p.cut <- struct{}{}
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				kill()
				return
			}
		}
		if err != nil {
			kill()
			return
		}
	}
}

// TestUncertainCommitReconciled loses the connection during an
// authorisation batch's COMMIT, once after the server committed and once
// before: both requests are answered issuer unavailable, a repeat of
// either is answered issuer unavailable, and once the ledger answers
// again the journal records the 9112 that was sent, the hold that did
// commit is released (the balance is whole again), and the ledger
// verifies clean.
func TestUncertainCommitReconciled(t *testing.T) {
	ctx := context.Background()
	url := ledgertest.URL(t)
	direct, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	keys, err := keysOnce()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	led := ledger.New(direct, ledger.Config{Logger: log})
	setup := cardhost.NewHost(direct, led, keys, cardhost.Config{Logger: log})
	defer setup.Close()
	partner, err := led.CreatePartner(ctx, "Partner uncertain", "ops@partner.example")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := setup.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: partner.ID, Name: "Uncertain", BINLow: "539999", BINHigh: "539999",
		Currency: "EUR", Funding: cardhost.FundingPartnerCredit, CardTypes: []cardhost.CardType{cardhost.Virtual}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{host: setup, keys: keys, prog: prog}
	u, acc := e.verifiedBalance(t, "uncertain")
	if _, err := led.Reload(ctx, acc.ID, 500_00, "fund-u"); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Reload(ctx, prog.PartnerAccountID, 10_000_00, "fund-p"); err != nil {
		t.Fatal(err)
	}
	_, data, err := setup.CreateVirtualCard(ctx, u.ID, acc.ID, cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "1"})
	if err != nil {
		t.Fatal(err)
	}

	// A host whose connections go through the proxy.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, filepath.Join(cfg.ConnConfig.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.ConnConfig.Port))))
	cfg.ConnConfig.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", proxy.ln.Addr().String())
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	host := cardhost.NewHost(pool, ledger.New(pool, ledger.Config{Logger: log}), keys, cardhost.Config{Logger: log})
	defer host.Close()

	request := func(stan string) *cardhost.AuthRequest {
		return &cardhost.AuthRequest{Class: cardhost.ClassAuthorization, Profile: "iso2003", MTI: "2100", PAN: data.PAN, Expiry: data.Expiry,
			ProcessingCode: cardhost.ProcPurchase, Amount: 10_00, Currency: "978", CVC2: data.CVC2,
			STAN: stan, TransmissionTime: "1206120000", RRN: "RRN000" + stan, AcquirerID: "123456"}
	}
	if d, err := host.Authorize(ctx, request("000001")); err != nil || d.Reason != cardhost.Approved {
		t.Fatalf("warm-up: %+v %v, want approved", d, err)
	}
	type journalRow struct {
		reason string
		hold   *int64
		status string
	}
	row := func(stan string) journalRow {
		t.Helper()
		var r journalRow
		err := direct.QueryRow(ctx, `SELECT j.reason, j.hold_id, coalesce(h.status, '') FROM auth_journal j
			LEFT JOIN holds h ON h.id = j.hold_id WHERE j.stan = $1`, stan).Scan(&r.reason, &r.hold, &r.status)
		if err != nil {
			t.Fatalf("journal row of %s: %v", stan, err)
		}
		return r
	}
	for _, c := range []struct {
		name, stan string
		mode       int32
		committed  bool
	}{
		{"connection lost after the server committed", "000002", cutAfterCommit, true},
		{"connection lost before the server committed", "000003", cutBeforeCommit, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy.arm(c.mode)
			_, err := host.Authorize(ctx, request(c.stan))
			if err == nil {
				t.Fatal("authorisation with its COMMIT cut: no error, want one (answered issuer unavailable)")
			}
			select {
			case <-proxy.cut:
			case <-time.After(5 * time.Second):
				t.Fatal("the proxy never cut")
			}
			// A repeat before or after the reconciliation: 9112 again.
			d, err := host.Authorize(ctx, request(c.stan))
			if err == nil && d.Reason != cardhost.IssuerUnavailable {
				t.Fatalf("repeat: %+v, want issuer unavailable", d)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				var n int
				direct.QueryRow(ctx, `SELECT count(*) FROM auth_journal WHERE stan = $1 AND reason = 'issuer_unavailable'`, c.stan).Scan(&n)
				if n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not reconciled after 10 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			r := row(c.stan)
			if c.committed && (r.hold == nil || r.status != "released") {
				t.Fatalf("committed approval: hold %v status %q, want its hold released", r.hold, r.status)
			}
			if !c.committed && r.hold != nil {
				t.Fatalf("uncommitted request: journal names hold %d", *r.hold)
			}
			d, err = host.Authorize(ctx, request(c.stan))
			if err != nil || d.Reason != cardhost.IssuerUnavailable {
				t.Fatalf("repeat after reconciliation: %+v %v, want issuer unavailable", d, err)
			}
		})
	}
	a, err := led.Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance != 500_00 || a.Held != 10_00 {
		t.Fatalf("user balance %d held %d, want 50000 and 1000 (the warm-up's hold only)", a.Balance, a.Held)
	}
	vs, err := led.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("ledger verify: %s", v)
	}
}

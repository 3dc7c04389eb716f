package cardhost_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// pausingQuerier stops a program read once its spend rules were read
// (their statement's snapshot taken), until resumed.
type pausingQuerier struct {
	ledger.Querier
	read, resume chan struct{}
}

func (p *pausingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := p.Querier.Query(ctx, sql, args...)
	if strings.Contains(sql, "FROM spend_rules") {
		close(p.read)
		<-p.resume
	}
	return rows, err
}

var gambling = &cardhost.AuthRequest{MCC: "7995", ProcessingCode: cardhost.ProcPurchase, Class: cardhost.ClassAuthorization}

// A rule set on a host holds for the next authorisation on that host,
// even when an authorisation read the program (without the rule) just
// before the change and finishes reading it just after.
func TestSpendRuleChangeSeenByTheNextAuthorisation(t *testing.T) {
	e := newEnv(t, cardhost.ProgramSpec{})
	ctx := context.Background()
	h := e.host
	q := &pausingQuerier{Querier: h.Pool(), read: make(chan struct{}), resume: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := h.CachedProgramOn(ctx, q, e.prog.ID)
		done <- err
	}()
	<-q.read
	if _, err := h.SetSpendRule(ctx, 0, cardhost.SpendRule{Scope: cardhost.ScopeProgram, TargetID: e.prog.ID, Kind: cardhost.RuleMCC,
		Mode: cardhost.ModeBlock, Values: []string{"7995"}, Active: true}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	close(q.resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p, err := h.CachedProgramOn(ctx, h.Pool(), e.prog.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.SpendRuleRefusal(&cardhost.Card{ID: 1, AccountID: 1}, gambling, 100); r != cardhost.MCCNotPermitted {
		t.Errorf("the next authorisation after the rule was set: %q, want %q", r, cardhost.MCCNotPermitted)
	}
}

// A rule set through one host reaches another host's cache by
// notification, long before the cache's lifetime ends; switched off, the
// same.
func TestSpendRuleChangeReachesOtherHosts(t *testing.T) {
	defer cardhost.SetProgramTTL(time.Hour)()
	e := newEnv(t, cardhost.ProgramSpec{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other := cardhost.NewHost(e.host.Pool(), e.host.Ledger(), e.keys, cardhost.Config{Logger: slog.New(slog.DiscardHandler)})
	defer other.Close()
	listening := make(chan struct{})
	go func() {
		close(listening)
		other.RunSpendRuleListener(ctx)
	}()
	<-listening
	refusal := func() cardhost.Reason {
		p, err := other.CachedProgramOn(ctx, other.Pool(), e.prog.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p.SpendRuleRefusal(&cardhost.Card{ID: 1, AccountID: 1}, gambling, 100)
	}
	within := func(want cardhost.Reason) {
		t.Helper()
		for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
			if refusal() == want {
				return
			}
		}
		t.Fatalf("the other host still answers %q after 3 s, want %q", refusal(), want)
	}
	// Wait until the listener is up: it drops the cache when it starts.
	time.Sleep(200 * time.Millisecond)
	if r := refusal(); r != "" {
		t.Fatalf("before any rule: %q", r)
	}
	rule, err := e.host.SetSpendRule(ctx, 0, cardhost.SpendRule{Scope: cardhost.ScopeProgram, TargetID: e.prog.ID, Kind: cardhost.RuleMCC,
		Mode: cardhost.ModeBlock, Values: []string{"7995"}, Active: true}, "admin:test")
	if err != nil {
		t.Fatal(err)
	}
	within(cardhost.MCCNotPermitted)
	rule.Active = false
	if _, err := e.host.SetSpendRule(ctx, 0, rule, "admin:test"); err != nil {
		t.Fatal(err)
	}
	within("")
}

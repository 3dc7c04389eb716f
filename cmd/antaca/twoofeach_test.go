package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/specs"
)

// TestTwoOfEach runs two switches and two APIs (each its own card host and
// pool) on one ledger. One card is authorised through both switches at
// once (0.01 a request, 4 connections each, 4 in flight per connection)
// until its balance of 20.00 is spent, while its lock is set and lifted
// through both APIs in turn: no request fails or waits on a deadlock, the
// balance is never exceeded (approvals × 0.01 = held = 20.00, available
// 0), no request sent after a lock call returned and answered before the
// next unlock was sent is approved, and the ledger verifies clean.
func TestTwoOfEach(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two switches and two APIs on PostgreSQL; skipped with -short")
	}
	url := ledgertest.URL(t)
	keys, err := hsm.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	stacks := []*stack{newStack(t, url, keys, nil), newStack(t, url, keys, nil)}
	ctx := t.Context()
	a := stacks[0]
	partner, err := a.led.CreatePartner(ctx, "Partner two", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := a.host.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: partner.ID, Name: "two", BINLow: "499998", BINHigh: "499998",
		Currency: "EUR", Funding: cardhost.FundingPartnerCredit, CardTypes: []cardhost.CardType{cardhost.Virtual}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.led.Reload(ctx, prog.PartnerAccountID, 1_000_000_00, "fund-two"); err != nil {
		t.Fatal(err)
	}
	u, err := a.host.RegisterUser(ctx, prog.ID, "two-user", "Two Test", "two@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.host.SetKYC(ctx, u.ID, cardhost.KYCVerified, "admin"); err != nil {
		t.Fatal(err)
	}
	acc, err := a.host.CreateBalance(ctx, u.ID, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	const funds = 20_00
	if _, err := a.led.Reload(ctx, acc.ID, funds, "fund-two-user"); err != nil {
		t.Fatal(err)
	}
	card, data, err := a.host.CreateVirtualCard(ctx, u.ID, acc.ID, cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "two"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := a.api.IssueDevClientCertificate(ctx, partner.ID)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	partnerClient := httpClient(keys, "127.0.0.1", &cert)
	cardPath := fmt.Sprintf("/secure/customers/%d/cards/%d", u.ID, card.ID)
	call := func(st *stack, op string, body any) {
		t.Helper()
		b, _ := json.Marshal(body)
		r, err := partnerClient.Post(st.apiURL+cardPath+"/"+op, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s through %s: %d", op, st.apiURL, r.StatusCode)
		}
	}

	spec, err := specs.ISOSpec("iso2003")
	if err != nil {
		t.Fatal(err)
	}
	approved, _ := specs.ActionCode("iso2003", string(cardhost.Approved))
	locked, _ := specs.ActionCode("iso2003", string(cardhost.PendingQuery))
	noFunds, _ := specs.ActionCode("iso2003", string(cardhost.InsufficientFunds))
	type shot struct {
		sent, got time.Time
		code      string
		err       error
		via       int
	}
	var (
		mu     sync.Mutex
		shots  []*shot
		stan   atomic.Int64
		wg     sync.WaitGroup
		spent  [2]atomic.Int32 // insufficient-funds answers in a row, per switch
		locks  [][2]time.Time  // [lock returned, unlock sent]
		lockMu sync.Mutex
	)
	stop := make(chan struct{})
	for sw := range stacks {
		for range 4 {
			c := isoClient(t, stacks[sw].iso)
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						n := int(stan.Add(1))
						m := authRequest(t, spec, n, data.PAN, data.Expiry)
						m.Field(4, "9782000000000001") // CMF: currency 978, minor unit 2, 0.01
						s := &shot{sent: time.Now(), via: sw}
						resp, err := c.Send(m)
						s.got, s.err = time.Now(), err
						if err == nil {
							s.code, _ = resp.GetString(39)
						}
						mu.Lock()
						shots = append(shots, s)
						mu.Unlock()
						if s.code == noFunds {
							spent[sw].Add(1)
						} else if s.code == approved {
							spent[sw].Store(0)
						}
					}
				})
			}
		}
	}
	// Lock and unlock through the APIs in turn while the load runs, until
	// the balance is spent (at most 60 s).
	rounds := 0
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end) && (spent[0].Load() < 20 || spent[1].Load() < 20); rounds++ {
		call(stacks[rounds%2], "lock", map[string]int{"reasonCode": int(cardhost.LockPendingQuery)})
		returned := time.Now()
		time.Sleep(30 * time.Millisecond)
		unlockSent := time.Now()
		call(stacks[(rounds+1)%2], "unlock", map[string]any{})
		lockMu.Lock()
		locks = append(locks, [2]time.Time{returned, unlockSent})
		lockMu.Unlock()
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	var nApproved, nLocked, nNoFunds, errs int
	other := map[string]int{}
	perSwitch := [2]int{}
	for _, s := range shots {
		switch {
		case s.err != nil:
			errs++
		case s.code == approved:
			nApproved++
			perSwitch[s.via]++
			for _, l := range locks {
				if s.sent.After(l[0]) && s.got.Before(l[1]) {
					t.Errorf("approved through switch %d, sent %s after a lock returned and answered before the unlock was sent", s.via, s.sent.Sub(l[0]))
				}
			}
		case s.code == locked:
			nLocked++
		case s.code == noFunds:
			nNoFunds++
		default:
			other[s.code]++
		}
	}
	acct, err := a.led.Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests: %d approved (%d and %d per switch), %d declined locked, %d insufficient funds, other %v, %d errors; %d lock rounds; balance %d held %d",
		len(shots), nApproved, perSwitch[0], perSwitch[1], nLocked, nNoFunds, other, errs, rounds, acct.Balance, acct.Held)
	switch {
	case errs != 0 || len(other) != 0:
		t.Fatalf("%d errors, answers %v: want every request answered approved, locked or insufficient funds (no deadlock, no timeout)", errs, other)
	case nApproved != funds || acct.Held != funds || acct.Balance != funds:
		t.Fatalf("approved %d × 0.01, held %d, balance %d: want exactly %d (the balance, never more)", nApproved, acct.Held, acct.Balance, funds)
	case perSwitch[0] == 0 || perSwitch[1] == 0 || nLocked == 0 || rounds < 2:
		t.Fatalf("not both switches approved (%v), or no lock took effect (%d declines, %d rounds)", perSwitch, nLocked, rounds)
	}
	vs, err := a.led.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("ledger verify: %s", v)
	}
	faulttest.Record(t, faulttest.Row{Area: "process", Fault: "two switches and two APIs (each its own card host and pool) on one ledger: one card authorised through both switches at once (32 in flight) while its lock is set and lifted through both APIs in turn",
		Behaviour: fmt.Sprintf("%d requests: %d approved (%d and %d per switch) = the balance exactly, %d declined while locked, %d insufficient funds, no error or deadlock; %d lock rounds, no approval of a request sent after a lock returned",
			len(shots), nApproved, perSwitch[0], perSwitch[1], nLocked, nNoFunds, rounds),
		Verify: "clean"})
}

package ledger_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/ledger"
)

// TestConcurrentHoldsNeverOverdraw races 64 goroutines placing holds at
// once, first on one user balance (the partner credit has room), then on
// one shared partner credit balance (each goroutine its own user), and
// counts the successes: exactly floor(limit/amount), never below zero.
func TestConcurrentHoldsNeverOverdraw(t *testing.T) {
	const goroutines, perG, amount = 64, 4, 700
	cases := []struct {
		name               string
		userFunds, partner int64
		sharedUser         bool
	}{
		{"one user balance", 100_000, 10_000_000, true},
		{"one partner credit balance", 10_000, 77_777, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 16)
			p := e.partner("")
			credit := e.credit(p, "EUR", c.partner, nil)
			users := make([]ledger.Account, goroutines)
			shared := e.user(p, "EUR", c.userFunds)
			for i := range users {
				users[i] = shared
				if !c.sharedUser {
					users[i] = e.user(p, "EUR", c.userFunds)
				}
			}
			var ok, short atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, goroutines*perG)
			for g := range goroutines {
				wg.Go(func() {
					<-start
					for range perG {
						_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: users[g].ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: amount})
						switch {
						case err == nil:
							ok.Add(1)
						case errors.Is(err, ledger.ErrInsufficientFunds), errors.Is(err, ledger.ErrInsufficientPartnerFunds):
							short.Add(1)
						default:
							errs <- err
						}
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			limit := c.partner
			if c.sharedUser {
				limit = c.userFunds
			}
			if want := limit / amount; ok.Load() != want {
				t.Fatalf("%d holds succeeded, want floor(%d/%d) = %d", ok.Load(), limit, amount, want)
			}
			if ok.Load()+short.Load() != goroutines*perG {
				t.Fatalf("%d + %d results, want %d", ok.Load(), short.Load(), goroutines*perG)
			}
			for _, id := range []int64{shared.ID, credit.ID} {
				if a := e.account(id); a.Available() < 0 || a.NegativeFlag {
					t.Fatalf("account %d available %d flagged %v", id, a.Available(), a.NegativeFlag)
				}
			}
			e.clean()
		})
	}
}

// TestConcurrentPlaceHoldsBatches races batches from 8 goroutines (as
// several switch instances would) on one shared partner credit balance and
// overlapping user balances in different orders: no deadlock, exactly
// floor(limit/amount) holds, Verify clean.
func TestConcurrentPlaceHoldsBatches(t *testing.T) {
	const workers, batches, batchSize, amount = 8, 8, 32, 300
	e := newEnv(t, 8)
	p := e.partner("")
	const limit = 30_000 + 299
	credit := e.credit(p, "EUR", limit, nil)
	users := make([]ledger.Account, 16)
	for i := range users {
		users[i] = e.user(p, "EUR", 1_000_000)
	}
	var ok, short atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			<-start
			for b := range batches {
				specs := make([]ledger.HoldSpec, batchSize)
				for i := range specs {
					// Each worker walks the users in its own order.
					u := users[(i*(w+1)+b)%len(users)]
					specs[i] = ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: amount,
						Ref: fmt.Sprintf("w%d-b%d-%d", w, b, i)}
				}
				res, err := e.l.PlaceHolds(e.ctx, specs)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range res {
					switch {
					case r.Err == nil:
						ok.Add(1)
					case errors.Is(r.Err, ledger.ErrInsufficientPartnerFunds):
						short.Add(1)
						if r.AccountID != credit.ID || r.Available >= amount || r.Available < 0 {
							errs <- fmt.Errorf("decline: account %d available %d", r.AccountID, r.Available)
							return
						}
					default:
						errs <- r.Err
						return
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if want := int64(limit / amount); ok.Load() != want {
		t.Fatalf("%d holds succeeded, want %d", ok.Load(), want)
	}
	if a := e.account(credit.ID); a.Available() != limit%amount {
		t.Fatalf("partner available %d, want %d", a.Available(), limit%amount)
	}
	e.clean()
}

func TestPlaceHoldsBatchSemantics(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	a := e.user(p, "EUR", 1_000)
	b := e.user(p, "EUR", 1_000)
	specs := []ledger.HoldSpec{
		{UserAccountID: a.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 600, Ref: "r1"},
		{UserAccountID: a.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 600, Ref: "r2"}, // a is short now
		{UserAccountID: b.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 600, Ref: "r3"},
		{UserAccountID: a.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 600, Ref: "r1"}, // duplicate in batch
		{UserAccountID: a.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 400, Ref: "r4"}, // fits exactly
		{UserAccountID: b.ID, PartnerAccountID: credit.ID, Currency: "USD", Amount: 1, Ref: "r5"},
		{UserAccountID: 999999, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1, Ref: "r6"},
	}
	res, err := e.l.PlaceHolds(e.ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int, want error, avail int64) {
		t.Helper()
		r := res[i]
		if want == nil && r.Err != nil || want != nil && !errors.Is(r.Err, want) {
			t.Fatalf("spec %d: got %v, want %v", i, r.Err, want)
		}
		if r.Available != avail {
			t.Fatalf("spec %d: available %d, want %d", i, r.Available, avail)
		}
	}
	check(0, nil, 400)
	check(1, ledger.ErrInsufficientFunds, 400)
	check(2, nil, 400)
	check(3, nil, 400)
	if !res[3].Duplicate || res[3].Hold.ID != res[0].Hold.ID {
		t.Fatalf("in-batch duplicate: %+v, want hold %d", res[3], res[0].Hold.ID)
	}
	check(4, nil, 0)
	check(5, ledger.ErrCurrencyMismatch, 400)
	check(6, ledger.ErrNotFound, 0)
	e.want(a.ID, 1_000, 1_000)
	e.want(b.ID, 1_000, 600)
	e.want(credit.ID, 10_000, 1_600)
	// A retried batch returns the same holds and places nothing new.
	again, err := e.l.PlaceHolds(e.ctx, specs[:1])
	if err != nil || !again[0].Duplicate || again[0].Hold.ID != res[0].Hold.ID {
		t.Fatalf("retried batch: %+v, %v", again, err)
	}
	e.want(credit.ID, 10_000, 1_600)
	e.clean()
}

// TestHoldBatchesAndCapturesNeverDeadlock: batches lock their users'
// accounts first and update the partner account last, so every other
// transaction must lock user accounts before the others too. Batches of
// holds and captures and releases of those holds run at once on the same
// user and partner accounts (the partner account's id is the smaller);
// none may fail (a deadlock is an error), and the ledger stays consistent.
func TestHoldBatchesAndCapturesNeverDeadlock(t *testing.T) {
	const placers, resolvers, rounds = 4, 4, 40
	e := newEnv(t, 16)
	p := e.partner("")
	credit := e.credit(p, "EUR", 100_000_000, nil)
	users := make([]ledger.Account, 6)
	for i := range users {
		users[i] = e.user(p, "EUR", 10_000_000)
	}
	holds := make(chan int64, placers*rounds*len(users))
	var wg sync.WaitGroup
	errs := make(chan error, placers+resolvers)
	for g := range placers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				specs := make([]ledger.HoldSpec, len(users))
				for i, u := range users {
					specs[i] = ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 10,
						Ref: fmt.Sprintf("deadlock-%d-%d-%d", g, r, i)}
				}
				res, err := e.l.PlaceHolds(e.ctx, specs)
				if err != nil {
					errs <- fmt.Errorf("place holds: %w", err)
					return
				}
				for _, h := range res {
					if h.Err == nil {
						holds <- h.Hold.ID
					}
				}
			}
		}()
	}
	var done atomic.Bool
	var resolved atomic.Int64
	for g := range resolvers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var id int64
				select {
				case id = <-holds:
				default:
					if done.Load() {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				var err error
				if (id+int64(g))%2 == 0 {
					_, err = e.l.Capture(e.ctx, id, 7, false, "")
				} else {
					_, err = e.l.Release(e.ctx, id, 0)
				}
				if err != nil {
					errs <- fmt.Errorf("resolve hold %d: %w", id, err)
					return
				}
				resolved.Add(1)
			}
		}()
	}
	go func() {
		// Stop the resolvers once every batch is placed and resolved.
		for resolved.Load() < placers*rounds*int64(len(users)) && len(errs) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		done.Store(true)
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := resolved.Load(); !t.Failed() && n != placers*rounds*int64(len(users)) {
		t.Errorf("resolved %d holds, want %d", n, placers*rounds*len(users))
	}
	e.clean()
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
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

// TestFaultLoginFlood measures a steady ISO load (2 connections, one
// request at a time each) alone and under a flood of wrong admin logins
// from 32 source addresses with the production PBKDF2 cost (600,000
// iterations). The flood is mostly refused before any hashing (per-source
// bucket and delays), hashing never runs more than HashConcurrency at
// once, every authorisation is still approved, and the p99 with the flood
// stays within a loose bound of the p99 without (a regression guard, not a
// speed goal: the figures go to docs/faults.md).
func TestFaultLoginFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a switch and an API on PostgreSQL; skipped with -short")
	}
	dbURL := ledgertest.URL(t)
	keys, err := hsm.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	st := newStack(t, dbURL, keys, nil) // production defaults: 600,000 iterations, GOMAXPROCS/4 hashes at once
	pans, expiries := killTestData(t, st.pool, keys, 2)
	if _, err := st.api.CreateAdmin(t.Context(), "root", "the-right-password-1", "Admin", 0); err != nil {
		t.Fatal(err)
	}
	spec, err := specs.ISOSpec("iso2003")
	if err != nil {
		t.Fatal(err)
	}
	approved, _ := specs.ActionCode("iso2003", string(cardhost.Approved))
	measure := func(flood func(stop <-chan struct{})) *isoLoad {
		l := &isoLoad{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range pans {
			c := isoClient(t, st.iso)
			wg.Go(func() { l.run(t, c, spec, pans[i], expiries[i], stop) })
		}
		if flood != nil {
			wg.Go(func() { flood(stop) })
		}
		time.Sleep(4 * time.Second)
		close(stop)
		wg.Wait()
		// A batch past its 1 s budget on a machine shared with other
		// work answers 9112: tolerated, rarely.
		if l.errs > 0 || len(l.lat) == 0 || float64(l.codes[approved]) < 0.99*float64(len(l.lat)) {
			t.Errorf("ISO load: %d answers %v, %d errors; want all answered, at least 99%% approved", len(l.lat), l.codes, l.errs)
		}
		return l
	}
	base := measure(nil)

	// 100 logins a second, five times the rate that took ISO answers to
	// 0.9-2 s before the limits (issue 21), from 32 addresses.
	const sources, rate = 32, 100
	var mu sync.Mutex
	statuses := map[int]int{}
	var loginLat []time.Duration
	// A new name each time: per-name limits alone would hash every one.
	var n atomic.Int64
	flood := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		for i := range sources {
			c := httpClient(keys, fmt.Sprintf("127.0.1.%d", i+1), nil)
			wg.Go(func() {
				// Open loop: an attacker does not wait for answers.
				tick := time.NewTicker(sources * time.Second / rate)
				defer tick.Stop()
				var inner sync.WaitGroup
				defer inner.Wait()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					inner.Go(func() {
						t0 := time.Now()
						r, err := c.Post(st.apiURL+"/admin/login", "application/json",
							strings.NewReader(fmt.Sprintf(`{"name":"admin-%d","password":"a-wrong-password"}`, n.Add(1))))
						if err != nil {
							return
						}
						io.Copy(io.Discard, r.Body)
						r.Body.Close()
						mu.Lock()
						loginLat = append(loginLat, time.Since(t0))
						statuses[r.StatusCode]++
						mu.Unlock()
					})
				}
			})
		}
		wg.Wait()
	}
	flooded := measure(flood)

	total := 0
	for _, n := range statuses {
		total += n
	}
	hashed := statuses[http.StatusUnauthorized]
	bound := max(runtime.GOMAXPROCS(0)/4, 1)
	peak := st.api.PasswordHashPeak()
	logins := &isoLoad{lat: loginLat}
	t.Logf("flood: %d logins %v (p50/p99 %s/%s); ISO p50/p99 %s/%s alone, %s/%s under the flood (%d and %d requests)",
		total, statuses, ms(logins.p(0.5)), ms(logins.p(0.99)), ms(base.p(0.5)), ms(base.p(0.99)), ms(flooded.p(0.5)), ms(flooded.p(0.99)), len(base.lat), len(flooded.lat))
	switch {
	case total < rate:
		t.Fatalf("flood too small to mean anything: %d logins", total)
	case statuses[http.StatusOK] != 0:
		t.Fatalf("a wrong password logged in: %v", statuses)
	case float64(total-hashed) < 0.9*float64(total):
		t.Fatalf("only %d of %d flood logins refused before hashing (429 or 503), want at least 90%%: %v", total-hashed, total, statuses)
	case hashed > 3*sources:
		t.Fatalf("%d wrong passwords hashed, want at most 3 per source (%d)", hashed, 3*sources)
	case peak > bound:
		t.Fatalf("%d password hashes ran at once, bound %d", peak, bound)
	case flooded.p(0.99) > 10*base.p(0.99)+time.Second:
		// Loose: the machine is shared with other tests. Before the
		// limits a fifth of this rate took answers to 0.9-2 s.
		t.Fatalf("ISO p99 %s under the flood against %s alone: more than 10× + 1 s", ms(flooded.p(0.99)), ms(base.p(0.99)))
	}
	faulttest.Record(t, faulttest.Row{Area: "api", Fault: fmt.Sprintf("flood of wrong admin logins (a new name each) at %d/s from %d source addresses (PBKDF2 600,000 iterations) during a steady ISO load", rate, sources),
		Behaviour: fmt.Sprintf("%d logins in 4 s: %d refused before hashing (429: per-source bucket, then progressive delays), %d hashed (401), %d busy (503); at most %d hash at once (bound %d); ISO p50/p99 %s/%s alone, %s/%s under the flood, login answers p50/p99 %s/%s",
			total, statuses[http.StatusTooManyRequests], hashed, statuses[http.StatusServiceUnavailable], peak, bound, ms(base.p(0.5)), ms(base.p(0.99)), ms(flooded.p(0.5)), ms(flooded.p(0.99)), ms(logins.p(0.5)), ms(logins.p(0.99))),
		Verify: "n/a"})
}

package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// Velocity counters hold what they count: releases (full, partial,
// expiries) are queued by the holds' trigger and folded into the one
// counter row by the next lock, so a lock reads the releases since the
// last one, never the counter's history; a partial release gives back
// the part released, its approval's count only when the hold is gone.
func TestSpendCountersFold(t *testing.T) {
	e := newEnv(t, 0)
	for _, q := range []string{`ALTER TABLE spend_rules DROP CONSTRAINT spend_rules_program_id_fkey`,
		`INSERT INTO spend_rules (id, program_id, scope, target_id, kind, mode, vals, period, max_count, updated_by)
			VALUES (7, 1, 'program', 1, 'velocity', 'limit', '{}', 'day', 1000, 'test')`} {
		if _, err := e.pool.Exec(e.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p := e.partner("")
	credit := e.credit(p, "EUR", 1_000_000, nil)
	u := e.user(p, "EUR", 1_000_000)
	key := ledger.SpendCounterKey{RuleID: 7, PeriodStart: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	lock := func() (u ledger.SpendUsage, queued int) {
		t.Helper()
		err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			m, err := ledger.LockSpendCounters(e.ctx, tx, []ledger.SpendCounterKey{key})
			u = m[key]
			if err != nil {
				return err
			}
			return tx.QueryRow(e.ctx, `SELECT count(*) FROM spend_counter_releases`).Scan(&queued)
		})
		if err != nil {
			t.Fatal(err)
		}
		return u, queued
	}
	var holds []int64
	for i := range 50 {
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 100,
			Ref: fmt.Sprintf("h%d", i), TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, h.ID)
		if err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := ledger.LockSpendCounters(e.ctx, tx, []ledger.SpendCounterKey{key}); err != nil {
				return err
			}
			var q pgx.Batch
			ledger.QueueSpendCharges(&q, []ledger.SpendCharge{{SpendCounterKey: key, HoldID: h.ID, Amount: 100}})
			return tx.SendBatch(e.ctx, &q).Close()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := lock(); got != (ledger.SpendUsage{Amount: 5_000, Count: 50}) {
		t.Fatalf("after 50 charges: %+v", got)
	}
	// 30 reversed, 10 reversed down to 40, 5 released in two steps.
	for i, id := range holds[:45] {
		var err error
		switch {
		case i < 30:
			_, err = e.l.Release(e.ctx, id, 0)
		case i < 40:
			_, err = e.l.Release(e.ctx, id, 40)
		default:
			if _, err = e.l.Release(e.ctx, id, 70); err == nil {
				_, err = e.l.Release(e.ctx, id, 0)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := ledger.SpendUsage{Amount: 5_000 - 30*100 - 10*60 - 5*100, Count: 50 - 30 - 5}
	if got, queued := lock(); got != want || queued != 0 {
		t.Fatalf("after the releases: %+v with %d releases left queued, want %+v and none", got, queued, want)
	}
	var amount, count int64
	var rows int
	if err := e.pool.QueryRow(e.ctx, `SELECT amount, count, (SELECT count(*) FROM spend_counters) FROM spend_counters WHERE rule_id = 7`).Scan(&amount, &count, &rows); err != nil {
		t.Fatal(err)
	}
	if amount != want.Amount || count != want.Count || rows != 1 {
		t.Errorf("counter row %d, %d (%d rows), want %+v in one row", amount, count, rows, want)
	}
	// A second lock finds nothing to fold and the same usage.
	if got, queued := lock(); got != want || queued != 0 {
		t.Errorf("again: %+v, %d queued", got, queued)
	}
	// The holds expire: the partial ones give back their 40 and their count.
	e.clock.Add(2 * time.Hour)
	if _, err := e.l.ExpireHolds(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := lock(); got != (ledger.SpendUsage{}) {
		t.Errorf("after expiry: %+v, want nothing", got)
	}
}

// The hold-expiry sweep folds the releases queued for counters of ended
// periods, which no authorisation locks again (a seven-day hold of a daily
// rule expiring next week): in its own transactions, locking counters
// only, skipping one another transaction holds (folded by the next run).
// A lifetime counter's releases wait for its next authorisation.
func TestExpireHoldsFoldsEndedSpendReleases(t *testing.T) {
	e := newEnv(t, 0)
	if _, err := e.pool.Exec(e.ctx, `ALTER TABLE spend_rules DROP CONSTRAINT spend_rules_program_id_fkey`); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	keys := map[string]ledger.SpendCounterKey{
		"day":      {RuleID: 7, PeriodStart: day},
		"week":     {RuleID: 8, PeriodStart: day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))},
		"lifetime": {RuleID: 9, PeriodStart: time.Unix(0, 0).UTC()},
	}
	var all []ledger.SpendCounterKey
	for period, k := range keys {
		if _, err := e.pool.Exec(e.ctx, `INSERT INTO spend_rules (id, program_id, scope, target_id, kind, mode, vals, period, max_count, updated_by)
			VALUES ($1, 1, 'program', 1, 'velocity', 'limit', '{}', $2, 1000, 'test')`, k.RuleID, period); err != nil {
			t.Fatal(err)
		}
		all = append(all, k)
	}
	p := e.partner("")
	credit := e.credit(p, "EUR", 1_000_000, nil)
	u := e.user(p, "EUR", 1_000_000)
	var holds []int64
	for i := range 3 {
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 100,
			Ref: fmt.Sprintf("h%d", i), TTL: 7 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, h.ID)
		if err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := ledger.LockSpendCounters(e.ctx, tx, slices.Clone(all)); err != nil {
				return err
			}
			var q pgx.Batch
			var cs []ledger.SpendCharge
			for _, k := range all {
				cs = append(cs, ledger.SpendCharge{SpendCounterKey: k, HoldID: h.ID, Amount: 100})
			}
			ledger.QueueSpendCharges(&q, cs)
			return tx.SendBatch(e.ctx, &q).Close()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.l.Release(e.ctx, holds[0], 0); err != nil { // reversed the same day
		t.Fatal(err)
	}
	counter := func(k ledger.SpendCounterKey) (u ledger.SpendUsage, queued int) {
		t.Helper()
		if err := e.pool.QueryRow(e.ctx, `SELECT amount, count, (SELECT count(*) FROM spend_counter_releases WHERE rule_id = $1 AND period_start = $2)
			FROM spend_counters WHERE rule_id = $1 AND period_start = $2`, k.RuleID, k.PeriodStart).Scan(&u.Amount, &u.Count, &queued); err != nil {
			t.Fatal(err)
		}
		return u, queued
	}
	expire := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second) // a sweep waiting on a lock fails here
		defer cancel()
		if _, err := e.l.ExpireHolds(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Next week: the other two expire. Another transaction holds the
	// weekly counter meanwhile (an incremental of a hold charged then).
	e.clock.Add(8 * 24 * time.Hour)
	other, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(e.ctx)
	if _, err := other.Exec(e.ctx, `SELECT 1 FROM spend_counters WHERE rule_id = 8 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	expire()
	charged := ledger.SpendUsage{Amount: 300, Count: 3}
	for _, tc := range []struct {
		period string
		usage  ledger.SpendUsage
		queued int
	}{
		{"day", ledger.SpendUsage{}, 0},
		{"week", charged, 3}, // locked by another: left for the next run
		{"lifetime", charged, 3},
	} {
		if u, queued := counter(keys[tc.period]); u != tc.usage || queued != tc.queued {
			t.Errorf("%s counter after the sweep: %+v with %d releases queued, want %+v with %d", tc.period, u, queued, tc.usage, tc.queued)
		}
	}
	if err := other.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	expire()
	if u, queued := counter(keys["week"]); u != (ledger.SpendUsage{}) || queued != 0 {
		t.Errorf("week counter after the next sweep: %+v with %d releases queued, want nothing", u, queued)
	}
	// The lifetime counter's authorisation folds its own, as before.
	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		m, err := ledger.LockSpendCounters(e.ctx, tx, []ledger.SpendCounterKey{keys["lifetime"]})
		if got := m[keys["lifetime"]]; err == nil && got != (ledger.SpendUsage{}) {
			t.Errorf("lifetime counter locked: %+v, want nothing", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLockSpendCounters locks one velocity counter whose history
// holds released charges (a lifetime rule on a busy card): the lock's
// cost must not grow with them.
func BenchmarkLockSpendCounters(b *testing.B) {
	for _, released := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("released=%d", released), func(b *testing.B) {
			e := newEnv(b, 0)
			key := ledger.SpendCounterKey{RuleID: 7, PeriodStart: time.Unix(0, 0).UTC()}
			for _, q := range []string{`ALTER TABLE spend_rules DROP CONSTRAINT spend_rules_program_id_fkey`,
				`INSERT INTO spend_rules (id, program_id, scope, target_id, kind, mode, vals, period, max_count, updated_by)
					VALUES (7, 1, 'program', 1, 'velocity', 'limit', '{}', 'lifetime', 1000000, 'test')`,
				`INSERT INTO spend_counters (rule_id, period_start, amount, count) VALUES (7, 'epoch', 0, 0)`,
				`INSERT INTO spend_counter_holds (hold_id, rule_id, period_start, amount, released)
					SELECT h, 7, 'epoch', 100, true FROM generate_series(1, $1::int) h`,
				`ANALYZE`} {
				args := []any{}
				if strings.Contains(q, "$1") {
					args = append(args, released)
				}
				if _, err := e.pool.Exec(e.ctx, q, args...); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
					_, err := ledger.LockSpendCounters(e.ctx, tx, []ledger.SpendCounterKey{key})
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package authswitch

import (
	"fmt"
	"testing"

	"github.com/antaca/antaca/cardhost"
)

// counter returns what rule's counters hold now (all periods), as the
// next authorisation sees them: the row less the releases queued for it.
func (e *e2e) counter(rule int64) (amount, count int64) {
	e.t.Helper()
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(amount), 0) - coalesce((SELECT sum(amount) FROM spend_counter_releases WHERE rule_id = $1), 0),
			coalesce(sum(count), 0) - coalesce((SELECT sum(count) FROM spend_counter_releases WHERE rule_id = $1), 0)
		FROM spend_counters WHERE rule_id = $1`, rule).Scan(&amount, &count); err != nil {
		e.t.Fatal(err)
	}
	return amount, count
}

func (e *e2e) expectCounter(rule, amount, count int64) {
	e.t.Helper()
	if a, n := e.counter(rule); a != amount || n != count {
		e.t.Errorf("rule %d counter: %d, %d approvals; want %d, %d", rule, a, n, amount, count)
	}
}

// An incremental authorisation is checked against and charged to its
// hold's velocity counters (amount only: the same purchase), declined
// with the velocity code when it would exceed them; its reversal gives
// it back. A partial reversal gives back the reversed part (the count
// stays), a full one the rest and the count. Releases are folded into
// the counter row by the next authorisation.
func TestE2EVelocityIncrementsAndPartialReversals(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		lodging := map[int]string{18: "7011"}
		card := e.virtualCard(e.prog, 1_000_00)
		day := e.velocity(cardhost.ScopeCard, card.Card.ID, cardhost.PeriodDay, ptr(int64(100_00)), ptr(3))
		orig, resp := e.auth(card, 60_00, lodging)
		e.expect(resp, cardhost.Approved)
		inc := e.follow("100", orig, card, 30_00, e.control("incremental", nil))
		e.expect(e.send(inc), cardhost.Approved)
		e.expectCounter(day.ID, 90_00, 1)
		// 90.00 + 20.00 passes 100.00 a day: declined, the hold unchanged.
		resp = e.send(e.follow("100", orig, card, 20_00, e.control("incremental", nil)))
		e.expect(resp, cardhost.ExceedsAmountLimit)
		if got, want := get(t, resp, 39), map[string]string{ProfileISO2003: "1021", ProfileISO87: "61"}[e.profile]; got != want {
			t.Errorf("DE39 %s, want %s", got, want)
		}
		e.expectBalance(card.AccountID, 1_000_00, 90_00)
		e.expectCounter(day.ID, 90_00, 1)
		// The incremental's reversal gives its 30.00 back: room for 40.00.
		e.expect(e.send(e.follow("400", inc, card, 30_00, nil)), cardhost.Approved)
		e.expectCounter(day.ID, 60_00, 1)
		e.expect(e.send(e.follow("100", orig, card, 40_00, e.control("incremental", nil))), cardhost.Approved)
		e.expectBalance(card.AccountID, 1_000_00, 100_00)
		e.expectCounter(day.ID, 100_00, 1)
		if n := e.count(`SELECT count(*) FROM spend_counter_releases WHERE rule_id = $1`, day.ID); n != 0 {
			t.Errorf("%d releases left unfolded after an authorisation locked the counter", n)
		}

		// A per-transaction limit holds for the hold with its increments.
		per := e.virtualCard(e.prog, 1_000_00)
		e.velocity(cardhost.ScopeCard, per.Card.ID, cardhost.PeriodTransaction, ptr(int64(50_00)), nil)
		orig, resp = e.auth(per, 40_00, lodging)
		e.expect(resp, cardhost.Approved)
		e.expect(e.send(e.follow("100", orig, per, 10_01, e.control("incremental", nil))), cardhost.ExceedsAmountLimit)
		e.expect(e.send(e.follow("100", orig, per, 10_00, e.control("incremental", nil))), cardhost.Approved)
		e.expectBalance(per.AccountID, 1_000_00, 50_00)

		// Partial reversal of 80.00 down to 30.00: 50.00 back, the count stays.
		pr := e.virtualCard(e.prog, 1_000_00)
		amt := e.velocity(cardhost.ScopeCard, pr.Card.ID, cardhost.PeriodDay, ptr(int64(100_00)), nil)
		cnt := e.velocity(cardhost.ScopeCard, pr.Card.ID, cardhost.PeriodDay, nil, ptr(2))
		orig, resp = e.auth(pr, 80_00, nil)
		e.expect(resp, cardhost.Approved)
		e.expect(e.send(e.follow("400", orig, pr, 80_00, map[int]string{95: replacement(30_00)})), cardhost.Approved)
		e.expectBalance(pr.AccountID, 1_000_00, 30_00)
		e.expectCounter(amt.ID, 30_00, 1)
		e.expectCounter(cnt.ID, 30_00, 1)
		_, resp = e.auth(pr, 70_00, nil)
		e.expect(resp, cardhost.Approved)
		e.expectCounter(amt.ID, 100_00, 2)
		_, resp = e.auth(pr, 1, nil)
		e.expect(resp, cardhost.ExceedsAmountLimit)
		// The rest of the first reversed: its 30.00 and its approval back.
		e.expect(e.send(e.follow("400", orig, pr, 80_00, nil)), cardhost.Approved)
		e.expectCounter(amt.ID, 70_00, 1)
		e.expectCounter(cnt.ID, 70_00, 1)
		_, resp = e.auth(pr, 30_00, nil)
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(pr, 1, nil)
		e.expect(resp, cardhost.ExceedsAmountLimit)
		e.expectCounter(cnt.ID, 100_00, 2)
	})
}

// A country rule written FRA, FR or 250 refuses a merchant whose DE43
// says FR, FRA or 250, through both profiles; other countries pass.
func TestE2ESpendRuleCountryForms(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		de43 := func(country string) map[int]string {
			return map[int]string{43: fmt.Sprintf("%-25s%-12s%3s", "ACME STORE", "PARIS", country)}
		}
		for _, rule := range []string{"FRA", "FR", "250"} {
			card := e.virtualCard(e.prog, 100_00)
			e.setRule(cardhost.SpendRule{Scope: cardhost.ScopeCard, TargetID: card.Card.ID, Kind: cardhost.RuleCountry,
				Mode: cardhost.ModeBlock, Values: []string{rule}})
			for _, sent := range []string{"FR", "FRA", "250"} {
				_, resp := e.auth(card, 1_00, de43(sent))
				e.expect(resp, cardhost.CountryNotPermitted)
			}
			for _, sent := range []string{"DE", "DEU", "276"} {
				_, resp := e.auth(card, 1_00, de43(sent))
				e.expect(resp, cardhost.Approved)
			}
		}
	})
}

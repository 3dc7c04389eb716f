package authswitch

import (
	"fmt"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
)

// Attacks on the money of issue 15, each against the real switch, card
// host and ledger on a real PostgreSQL; ledger verify (exceptions
// receivable included) must stay clean after each (newE2E's cleanup).

// exceptions returns the exceptions of a card.
func (e *e2e) exceptions(cardID int64) []ledger.Exception {
	e.t.Helper()
	xs, err := e.led.Exceptions(e.ctx, cardID)
	if err != nil {
		e.t.Fatal(err)
	}
	return xs
}

// expectException checks that a card has exactly one exception, of kind
// with amount and receivable.
func (e *e2e) expectException(cardID int64, kind string, amount, receivable int64) {
	e.t.Helper()
	xs := e.exceptions(cardID)
	if len(xs) != 1 || xs[0].Kind != kind || xs[0].Amount != amount || xs[0].Receivable != receivable {
		e.t.Errorf("exceptions of card %d: got %+v, want one %s of %d (receivable %d)", cardID, xs, kind, amount, receivable)
	}
}

// exceptionsBalance is the balance of the EUR exceptions receivable account.
func (e *e2e) exceptionsBalance() int64 {
	e.t.Helper()
	var b int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'exceptions' AND currency = 'EUR'`).Scan(&b); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// TestAttackAdviceBeyondFunds: an advice (x120) of 999,999,999.99 on a card
// holding 100.00 is acknowledged; the card's balance holds its 100.00 and
// no more, the rest is on exceptions receivable (standin_overdraft), the
// settlement account carries it.
func TestAttackAdviceBeyondFunds(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		credit := e.account(e.prog.PartnerAccountID)
		adv := e.msg("120", card, 99_999_999_999, nil)
		resp := e.send(adv)
		e.expect(resp, cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 10_000)
		if a := e.account(card.AccountID); a.Available() != 0 {
			t.Errorf("available: got %d, want 0", a.Available())
		}
		e.expectBalance(e.prog.PartnerAccountID, credit.Balance, credit.Held+10_000)
		e.expectException(card.ID, ledger.ExceptionStandInOverdraft, 99_999_989_999, 99_999_989_999)
		if got := e.exceptionsBalance(); got != -99_999_989_999 {
			t.Errorf("exceptions receivable: got %d, want -99999989999", got)
		}
		// The repeat answers the same and opens nothing more.
		e.expect(e.send(adv), cardhost.Approved)
		// Its clearing for the full amount charges the hold only: the
		// excess was counted once, at the advice.
		e.expect(e.send(e.follow("220", adv, card, 99_999_999_999, nil)), cardhost.Approved)
		e.expectBalance(card.AccountID, 0, 0)
		e.expectException(card.ID, ledger.ExceptionStandInOverdraft, 99_999_989_999, 99_999_989_999)

		// A program's stand-in limit lets an advice go that far below.
		limited := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 1_000_000)
		if err := e.host.SetProgramLimits(e.ctx, limited.ID, cardhost.ProgramLimits{StandInLimit: 5_000}); err != nil {
			t.Fatal(err)
		}
		uid, acc := e.user(limited, 10_000)
		c2 := e.virtualCardOn(e.host, uid, acc)
		e.expect(e.send(e.msg("120", c2, 20_000, nil)), cardhost.Approved)
		e.expectBalance(c2.AccountID, 10_000, 15_000)
		e.expectException(c2.ID, ledger.ExceptionStandInOverdraft, 5_000, 5_000)
		e.verify()
		faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "advice (x120) of 999,999,999.99 on a card holding 100.00",
			Behaviour: "acknowledged; 100.00 held on the card (available 0), 999,999,899.99 on exceptions receivable (standin_overdraft) with the settlement account carrying it; its clearing charges the 100.00 only; a stand-in limit of 50.00 lets an advice go 50.00 below",
			Verify: "clean"})
	})
}

// TestAttackOverCapture: a completion of 50,000.00 on an authorisation of
// 1.00 charges the hold (0 % tolerance outside restaurants and taxis); the
// excess is an over_capture exception. A restaurant's 20 % tip is charged.
func TestAttackOverCapture(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		credit := e.account(e.prog.PartnerAccountID)
		orig, resp := e.auth(card, 100, nil)
		e.expect(resp, cardhost.Approved)
		resp = e.send(e.follow("220", orig, card, 5_000_000, nil))
		e.expect(resp, cardhost.Approved)
		e.expectBalance(card.AccountID, 9_900, 0)
		e.expectBalance(e.prog.PartnerAccountID, credit.Balance-100, credit.Held)
		e.expectException(card.ID, ledger.ExceptionOverCapture, 4_999_900, 4_999_900)
		if _, avail, ok := e.de54(resp); !ok || avail != 9_900 {
			t.Errorf("DE54: got %d (present %v), want 9900", avail, ok)
		}

		mcc := map[int]string{18: "5812"}
		if e.profile == ProfileISO2003 {
			mcc = map[int]string{18: "5812", 26: "5812"}
		}
		tip := e.virtualCard(e.prog, 10_000)
		orig, resp = e.auth(tip, 1_000, mcc)
		e.expect(resp, cardhost.Approved)
		e.expect(e.send(e.follow("220", orig, tip, 1_250, mcc)), cardhost.Approved)
		e.expectBalance(tip.AccountID, 8_800, 0) // 10.00 + 20 % charged
		e.expectException(tip.ID, ledger.ExceptionOverCapture, 50, 50)
		e.verify()
		faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "completion (x220) of 50,000.00 on an authorisation of 1.00",
			Behaviour: "acknowledged; the card and the partner credit are charged 1.00 (the hold, 0 % tolerance at MCC 5411), 49,999.00 goes to exceptions receivable (over_capture); at a restaurant (5812) 20 % above the hold is charged, the rest is an exception",
			Verify: "clean"})
	})
}

// TestExpiredHoldCapture: a completion of a hold that expired is charged up
// to the available balance, the rest is an exception; a lodging hold lasts
// 31 days.
func TestExpiredHoldCapture(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		orig, resp := e.auth(card, 8_000, nil)
		e.expect(resp, cardhost.Approved)
		lodging := map[int]string{18: "7011", 26: "7011"}
		if e.profile != ProfileISO2003 {
			delete(lodging, 26)
		}
		hotel := e.virtualCard(e.prog, 10_000)
		_, resp = e.auth(hotel, 3_000, lodging)
		e.expect(resp, cardhost.Approved)
		var days []float64
		rows, err := e.pool.Query(e.ctx, `SELECT extract(epoch FROM expires_at - created_at) / 86400 FROM holds
			WHERE user_account_id = ANY ($1) ORDER BY user_account_id`, []int64{card.AccountID, hotel.AccountID})
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var d float64
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			days = append(days, d)
		}
		if len(days) != 2 || days[0] < 6.9 || days[0] > 7.1 || days[1] < 30.9 || days[1] > 31.1 {
			t.Errorf("hold lifetimes in days: got %v, want [7 31]", days)
		}
		// The first hold expires; the card spends meanwhile.
		if _, err := e.pool.Exec(e.ctx, `UPDATE holds SET expires_at = now() - interval '1 second' WHERE user_account_id = $1`, card.AccountID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.led.ExpireHolds(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, resp = e.auth(card, 7_000, nil)
		e.expect(resp, cardhost.Approved)
		resp = e.send(e.follow("220", orig, card, 8_000, nil))
		e.expect(resp, cardhost.Approved)
		e.expectBalance(card.AccountID, 7_000, 7_000) // 30.00 were available
		e.expectException(card.ID, ledger.ExceptionExpiredHoldCapture, 5_000, 5_000)
		e.verify()
		faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "completion (x220) of 80.00 on a hold expired meanwhile, 30.00 available",
			Behaviour: "acknowledged; 30.00 charged (the available balance), 50.00 to exceptions receivable (expired_hold_capture); holds at MCC 7011 last 31 days, others 7",
			Verify: "clean"})
	})
}

var _ = fmt.Sprintf
var _ = time.Second

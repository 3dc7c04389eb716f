package authswitch

import (
	"errors"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

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
	xs, err := e.led.CardExceptions(e.ctx, cardID)
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

// cardWithLimits issues a virtual card holding funds on a new program
// with these money-safety settings.
func (e *e2e) cardWithLimits(l cardhost.ProgramLimits, funds int64) testCard {
	e.t.Helper()
	prog := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 1_000_000)
	if err := e.host.SetProgramLimits(e.ctx, prog.ID, l); err != nil {
		e.t.Fatal(err)
	}
	uid, acc := e.user(prog, funds)
	return e.virtualCardOn(e.host, uid, acc)
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
		c2 := e.cardWithLimits(cardhost.ProgramLimits{StandInLimit: 5_000}, 10_000)
		e.expect(e.send(e.msg("120", c2, 20_000, nil)), cardhost.Approved)
		e.expectBalance(c2.AccountID, 10_000, 15_000)
		e.expectException(c2.ID, ledger.ExceptionStandInOverdraft, 5_000, 5_000)
		e.verify()
		faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "advice (x120) of 999,999,999.99 on a card holding 100.00",
			Behaviour: "acknowledged; 100.00 held on the card (available 0), 999,999,899.99 on exceptions receivable (standin_overdraft) with the settlement account carrying it; its clearing charges the 100.00 only; a stand-in limit of 50.00 lets an advice go 50.00 below",
			Verify:    "clean"})
	})
}

// TestAttackAdviceReversed: a stand-in advice beyond the card's funds,
// then reversed by its acquirer. In full, the hold is released and the
// excess, which the scheme will never settle, goes back from exceptions
// receivable to settlement (the exception resolved "reversed" by the
// system); in part, only what the acquirer still claims above the hold
// stays receivable.
func TestAttackAdviceReversed(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		before := e.exceptionsBalance()
		card := e.virtualCard(e.prog, 500)
		adv := e.msg("120", card, 1_000, nil)
		e.expect(e.send(adv), cardhost.Approved)
		e.expectException(card.ID, ledger.ExceptionStandInOverdraft, 500, 500)
		e.expect(e.send(e.follow("420", adv, card, 1_000, nil)), cardhost.Approved)
		e.expectBalance(card.AccountID, 500, 0)
		xs := e.exceptions(card.ID)
		if len(xs) != 1 || xs[0].Status != ledger.ResolveReversed || xs[0].ResolvedBy != "system" || xs[0].ResolutionPostingID == 0 {
			t.Errorf("exception after the full reversal: got %+v, want one reversed by the system", xs)
		}
		if got := e.exceptionsBalance(); got != before {
			t.Errorf("exceptions receivable after the full reversal: got %d, want %d", got, before)
		}

		// In part: the acquirer says 700 of the 1,000 were spent; the hold
		// keeps its 500, 200 stay the scheme's.
		c2 := e.virtualCard(e.prog, 500)
		adv2 := e.msg("120", c2, 1_000, nil)
		e.expect(e.send(adv2), cardhost.Approved)
		e.expect(e.send(e.follow("420", adv2, c2, 1_000, map[int]string{95: replacement(700)})), cardhost.Approved)
		e.expectBalance(c2.AccountID, 500, 500)
		e.expectException(c2.ID, ledger.ExceptionStandInOverdraft, 200, 200)
		if got := e.exceptionsBalance(); got != before-200 {
			t.Errorf("exceptions receivable after the partial reversal: got %d, want %d", got, before-200)
		}
		// Its clearing charges the hold; the 200 stay receivable.
		e.expect(e.send(e.follow("220", adv2, c2, 700, nil)), cardhost.Approved)
		e.expectBalance(c2.AccountID, 0, 0)
		e.expectException(c2.ID, ledger.ExceptionStandInOverdraft, 200, 200)
		e.verify()
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
			Verify:    "clean"})
	})
}

// TestAttackExpiredHoldCapture: a completion of a hold that expired is charged up
// to the available balance, the rest is an exception; a lodging hold lasts
// 31 days.
func TestAttackExpiredHoldCapture(t *testing.T) {
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
			Verify:    "clean"})
	})
}

// TestAttackBlindRefund: a refund (x200, processing code 20) naming no
// purchase credits nothing at once (blind-refund limit 0): it waits for an
// Admin; matched to its purchase it credits at most what the purchase
// captured less earlier refunds.
func TestAttackBlindRefund(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		refund := map[int]string{3: "200000"}
		card := e.virtualCard(e.prog, 0)
		credit := e.account(e.prog.PartnerAccountID)
		fin := e.msg("200", card, 100_000_000, refund)
		resp := e.send(fin)
		e.expect(resp, cardhost.Approved)
		e.expectBalance(card.AccountID, 0, 0)
		e.expectBalance(e.prog.PartnerAccountID, credit.Balance, credit.Held)
		e.expectException(card.ID, ledger.ExceptionBlindRefund, 100_000_000, 0)
		if _, avail, ok := e.de54(resp); !ok || avail != 0 {
			t.Errorf("DE54: got %d (present %v), want 0", avail, ok)
		}
		// Spending it is refused; a repeat and its clearing wait once.
		_, resp = e.auth(card, 50_000, nil)
		e.expect(resp, cardhost.InsufficientFunds)
		e.expect(e.send(fin), cardhost.Approved)
		e.expect(e.send(e.follow("220", fin, card, 100_000_000, refund)), cardhost.Approved)
		e.expectException(card.ID, ledger.ExceptionBlindRefund, 100_000_000, 0)

		// Matched to its purchase (DE90/DE56): at most what it captured
		// less what was refunded before.
		buyer := e.virtualCard(e.prog, 10_000)
		purchase := e.msg("200", buyer, 3_000, nil)
		e.expect(e.send(purchase), cardhost.Approved)
		e.expectBalance(buyer.AccountID, 7_000, 0)
		e.expect(e.send(e.follow("200", purchase, buyer, 2_000, refund)), cardhost.Approved)
		e.expectBalance(buyer.AccountID, 9_000, 0)
		e.expect(e.send(e.follow("200", purchase, buyer, 2_000, refund)), cardhost.Approved)
		e.expectBalance(buyer.AccountID, 10_000, 0) // 1,000 of the second: the rest of the capture
		e.expectException(buyer.ID, ledger.ExceptionBlindRefund, 1_000, 0)
		// A reversal of the purchase gives back nothing more.
		e.expect(e.send(e.follow("400", purchase, buyer, 3_000, nil)), cardhost.Approved)
		e.expectBalance(buyer.AccountID, 10_000, 0)

		// A program's blind-refund limit credits that much at once.
		c2 := e.cardWithLimits(cardhost.ProgramLimits{BlindRefundLimit: 2_500}, 0)
		e.expect(e.send(e.msg("220", c2, 4_000, refund)), cardhost.Approved)
		e.expectBalance(c2.AccountID, 2_500, 0)
		e.expectException(c2.ID, ledger.ExceptionBlindRefund, 1_500, 0)
		e.verify()
		faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "refund (x200, code 20) of 1,000,000.00 naming no purchase, to a card holding 0",
			Behaviour: "approved (a refund is not refused) but nothing credited: blind-refund limit 0, the 1,000,000.00 waits for an Admin (blind_refund); the card cannot spend it, the partner credit is unchanged; refunds matched by DE90/DE56 credit at most the capture less earlier refunds",
			Verify:    "clean"})
	})
}

// TestAttackCVC2BruteForce: wrong CVC2s are counted; the 5th in a row
// answers 1002/59 and locks the card with code 7 by the system, after which
// the right CVC2 is declined too; the cardholder cannot unlock it, an
// admin can; a right CVC2 on an approval resets the count.
func TestAttackCVC2BruteForce(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		wrong := map[int]string{48: "9203" + otherCVC2(card.CVC2)}
		right := map[int]string{48: "9203" + card.CVC2}
		for i := 1; i <= 4; i++ {
			_, resp := e.auth(card, 100, wrong)
			e.expect(resp, cardhost.CVC2Failed)
		}
		_, resp := e.auth(card, 100, right) // resets
		e.expect(resp, cardhost.Approved)
		for i := 1; i <= 4; i++ {
			_, resp := e.auth(card, 100, wrong)
			e.expect(resp, cardhost.CVC2Failed)
		}
		_, resp = e.auth(card, 100, map[int]string{14: "2001"}) // a wrong expiry counts too
		e.expect(resp, cardhost.SuspectedFraud)
		c, err := e.host.Card(e.ctx, card.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.LockCode != cardhost.LockSuspectedFraud {
			t.Fatalf("lock code: got %d, want 7", c.LockCode)
		}
		_, resp = e.auth(card, 100, right)
		e.expect(resp, cardhost.SuspectedFraud)
		if _, err := e.host.Unlock(e.ctx, card.ID, cardhost.Actor{Kind: cardhost.ActorUser, ID: "holder"}); !errors.Is(err, cardhost.ErrSystemLock) {
			t.Errorf("unlock by the cardholder: got %v, want ErrSystemLock", err)
		}
		if _, err := e.host.Unlock(e.ctx, card.ID, admin); err != nil {
			t.Fatal(err)
		}
		_, resp = e.auth(card, 100, wrong) // the unlock started the count again
		e.expect(resp, cardhost.CVC2Failed)
		_, resp = e.auth(card, 100, right)
		e.expect(resp, cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 200)
		faulttest.Record(t, faulttest.Row{Area: "switch", Fault: "wrong CVC2 in a row, then the right one (999 tried before the fix)",
			Behaviour: "wrong CVC2 or expiry counted per card; the 5th in a row answers 1002/59 and locks the card with code 7 by the system; the right CVC2 is then declined; the cardholder's unlock is refused (SYSTEM_LOCK), an admin's works; a right CVC2 on an approval resets the count",
			Verify:    "clean"})
	})
}

// TestAttackReversalOvertakesOriginal races reversals against their
// originals on two sockets: each reversal is sent 0-3 ms after its
// original, often before the original's batch commits. Every purchase
// must end released (x100) or given back (x200), whichever way the race
// went; a repeat of a reversal changes nothing more.
func TestAttackReversalOvertakesOriginal(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		const n = 20
		other := e.dial()
		cards := make([]testCard, n)
		for i := range cards {
			cards[i] = e.virtualCard(e.prog, 10_000)
		}
		type pair struct{ orig, rev *iso8583.Message }
		pairs := make([]pair, n)
		for i, c := range cards {
			fn := "100"
			if i%2 == 1 {
				fn = "200"
			}
			orig := e.msg(fn, c, 1_000, nil)
			pairs[i] = pair{orig, e.follow("400", orig, c, 1_000, nil)}
		}
		pending := 0
		for i, p := range pairs {
			done := make(chan *iso8583.Message, 1)
			go func() {
				resp, err := e.c.Send(p.orig)
				if err != nil {
					t.Errorf("original %d: %v", i, err)
				}
				done <- resp
			}()
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			e.expect(sendOn(t, other, p.rev), cardhost.Approved)
			if resp := <-done; resp != nil {
				e.expect(resp, cardhost.Approved)
			}
			e.expect(sendOn(t, other, p.rev), cardhost.Approved) // a repeat
		}
		for i, c := range cards {
			e.expectBalance(c.AccountID, 10_000, 0)
			if t.Failed() {
				t.Fatalf("card %d of %d charged after its reversal", i+1, n)
			}
		}
		pending = e.count(`SELECT count(*) FROM pending_reversals WHERE status = 'applied'`)
		t.Logf("%d of %d reversals overtook their original and waited for it", pending, n)
		e.verify()
		faulttest.Record(t, faulttest.Row{Area: "switch", Fault: "reversal sent 0-3 ms after its original on another socket (20 pairs, x100 and x200), and repeated",
			Behaviour: "every purchase released or given back; a reversal that finds no original waits as a pending reversal (24 h) and is applied in the transaction that journals the original; its repeat answers the same and applies nothing twice",
			Verify:    "clean"})
	})
}

// TestAttackDE54Overflow: a balance beyond 12 digits (out of the ledger's
// bounds, so only a fault or an older database could hold one) is sent in
// DE54 clamped to the widest n12 amount, either sign; the field keeps its
// width.
func TestAttackDE54Overflow(t *testing.T) {
	const huge = 123_456_789_012_345_678 // 18 digits
	for _, p := range bothProfiles {
		t.Run(p, func(t *testing.T) {
			a := &testAuthorizer{decisions: map[string]cardhost.Decision{
				panApproved: {Reason: cardhost.Approved, ApprovalCode: "A1B2C3", Available: huge, Currency: "978", HasAvailable: true, HoldID: 1},
				panNoFunds:  {Reason: cardhost.InsufficientFunds, Available: -huge, Currency: "978", HasAvailable: true},
			}}
			_, addr := startServer(t, p, a, nil)
			c := dial(t, addr, p)
			// iso2003 entries are the CMF's 21 characters (the currency's
			// minor unit after the currency), iso87's 20.
			unit := ""
			if p == ProfileISO2003 {
				unit = "2"
			}
			for i, tc := range []struct {
				pan, want string
			}{{panApproved, "0002978" + unit + "C999999999999"}, {panNoFunds, "0002978" + unit + "D999999999999"}} {
				resp := sendOn(t, c, request(t, p, "100", 100+i, tc.pan, 1_000, nil))
				if got := get(t, resp, 54); got != tc.want {
					t.Errorf("DE54: got %q, want %q", got, tc.want)
				}
			}
			faulttest.Record(t, faulttest.Row{Area: "switch", Fault: "available balance of 18 digits (either sign) in an answer's DE54",
				Behaviour: "DE54 clamped to 999,999,999,999 (C or D), 21 characters in iso2003 (CMF), 20 in iso87; the ledger's bound (12 digits) makes such a balance impossible otherwise"})
		})
	}
}

// TestPendingReversal: a reversal that arrives before its original (an
// authorisation, a partial one, a completion, a refund) waits for it and is
// applied when it commits; past the program's window it no longer applies.
func TestPendingReversal(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		orig := e.msg("100", card, 1_000, nil)
		e.expect(e.send(e.follow("400", orig, card, 1_000, nil)), cardhost.Approved)
		e.expect(e.send(orig), cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 0)

		// Partial: the hold stays at the replacement amount.
		orig = e.msg("100", card, 1_000, nil)
		e.expect(e.send(e.follow("400", orig, card, 1_000, map[int]string{95: replacement(300)})), cardhost.Approved)
		e.expect(e.send(orig), cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 300)

		// A completion overtaken by its reversal: captured, then given back.
		auth, resp := e.auth(card, 2_000, nil)
		e.expect(resp, cardhost.Approved)
		done := e.follow("220", auth, card, 2_000, nil)
		e.expect(e.send(e.follow("400", done, card, 2_000, nil)), cardhost.Approved)
		e.expect(e.send(done), cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 300)

		// A refund overtaken by its reversal: credited, then taken back.
		refunded := e.cardWithLimits(cardhost.ProgramLimits{BlindRefundLimit: 10_000}, 1_000)
		refund := e.msg("200", refunded, 700, map[int]string{3: "200000"})
		e.expect(e.send(e.follow("400", refund, refunded, 700, nil)), cardhost.Approved)
		e.expect(e.send(refund), cardhost.Approved)
		e.expectBalance(refunded.AccountID, 1_000, 0)

		// Past the window, the original stands.
		late := e.cardWithLimits(cardhost.ProgramLimits{PendingReversalWindow: time.Second}, 10_000)
		orig = e.msg("100", late, 1_000, nil)
		e.expect(e.send(e.follow("400", orig, late, 1_000, nil)), cardhost.Approved)
		time.Sleep(1100 * time.Millisecond)
		e.expect(e.send(orig), cardhost.Approved)
		e.expectBalance(late.AccountID, 10_000, 1_000)
		e.verify()
	})
}

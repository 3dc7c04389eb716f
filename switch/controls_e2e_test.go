package authswitch

import (
	"fmt"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
)

// control is the wire form of a control of DESIGN section 4 in the e2e's
// profile: "partial" (partial approval supported), "incremental" and
// "notlast" (a completion that is not the last); extra fields are added.
func (e *e2e) control(kind string, extra map[int]string) map[int]string {
	e.t.Helper()
	cmf := map[string]string{"partial": cardhost.FuncPartialSupported, "incremental": cardhost.FuncIncremental, "notlast": cardhost.FuncCompletionNotLast}
	tag := map[string]string{"partial": "93011", "incremental": "94011", "notlast": "95011"}
	f := map[int]string{}
	for k, v := range extra {
		f[k] = v
	}
	if e.profile == ProfileISO2003 {
		f[24] = cmf[kind]
	} else {
		f[48] = tag[kind]
	}
	return f
}

// amountOf reads an amount field of an answer (DE4, DE6): the CMF's with
// its currency inside, iso87's as n12.
func (e *e2e) amountOf(resp *iso8583.Message, n int) int64 {
	e.t.Helper()
	return e.amountIn(resp, n, "978")
}

// amountIn is amountOf for an amount in ccy (checked in the CMF).
func (e *e2e) amountIn(resp *iso8583.Message, n int, ccy string) int64 {
	e.t.Helper()
	v := get(e.t, resp, n)
	if e.profile == ProfileISO2003 {
		a, err := specs.ParseAmount2003(v)
		if err != nil || a.Currency != ccy || a.MinorUnit != 2 {
			e.t.Fatalf("DE%d %q: %v (want %s, minor unit 2)", n, v, err, ccy)
		}
		return a.Amount
	}
	var x int64
	if _, err := fmt.Sscanf(v, "%d", &x); err != nil || len(v) != 12 {
		e.t.Fatalf("DE%d %q: %v", n, v, err)
	}
	return x
}

func TestE2EPartialApproval(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 5_000)
		acc := card.AccountID

		// Without the terminal's flag: declined for funds, nothing held.
		_, resp := e.auth(card, 8_000, nil)
		e.expect(resp, cardhost.InsufficientFunds)
		e.expectBalance(acc, 5_000, 0)

		// With it: the 5,000 the balance holds, DE4 and DE54 say so.
		req, resp := e.auth(card, 8_000, e.control("partial", nil))
		e.expect(resp, cardhost.PartialApproved)
		if got := e.amountOf(resp, 4); got != 5_000 {
			t.Errorf("DE4 of the partial approval: %d, want 5000", got)
		}
		if _, avail, ok := e.de54(resp); !ok || avail != 0 {
			t.Errorf("DE54: %d %v, want 0", avail, ok)
		}
		if get(t, resp, 38) == "" {
			t.Error("partial approval without DE38")
		}
		e.expectBalance(acc, 5_000, 5_000)

		// A repeat gets the same answer, amounts included, and no second hold.
		resp = e.send(req)
		e.expect(resp, cardhost.PartialApproved)
		if got := e.amountOf(resp, 4); got != 5_000 {
			t.Errorf("DE4 of the repeat: %d, want 5000", got)
		}
		e.expectBalance(acc, 5_000, 5_000)

		// Nothing left: declined for funds even with the flag.
		_, resp = e.auth(card, 100, e.control("partial", nil))
		e.expect(resp, cardhost.InsufficientFunds)

		// Completion of the partial approval captures what was held.
		e.expect(e.send(e.follow("220", req, card, 5_000, nil)), cardhost.Approved)
		e.expectBalance(acc, 0, 0)

		// The partner credit limit decides too: 3,000 left on it.
		prog := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 3_000)
		rich := e.virtualCard(prog, 10_000)
		_, resp = e.auth(rich, 4_000, e.control("partial", nil))
		e.expect(resp, cardhost.PartialApproved)
		if got := e.amountOf(resp, 4); got != 3_000 {
			t.Errorf("DE4 limited by the partner credit: %d, want 3000", got)
		}
		e.expectBalance(rich.AccountID, 10_000, 3_000)
		e.expectBalance(prog.PartnerAccountID, 3_000, 3_000)

		// A financial request (x200) with the flag captures the lesser amount.
		fin := e.virtualCard(e.prog, 2_500)
		resp = e.send(e.msg("200", fin, 4_000, e.control("partial", nil)))
		e.expect(resp, cardhost.PartialApproved)
		if got := e.amountOf(resp, 4); got != 2_500 {
			t.Errorf("DE4 of the partial x200: %d, want 2500", got)
		}
		e.expectBalance(fin.AccountID, 0, 0)

		// In another currency: 11.00 USD billed 10.00 EUR on 5.00 EUR:
		// DE6 5.00 EUR, DE4 5.50 USD, in the same proportion.
		fx := e.virtualCard(e.prog, 500)
		_, resp = e.auth(fx, 1_100, e.control("partial", map[int]string{49: "840", 6: "000000001000", 51: "978"}))
		e.expect(resp, cardhost.PartialApproved)
		if de4, de6 := e.amountIn(resp, 4, "840"), e.amountIn(resp, 6, "978"); de4 != 550 || de6 != 500 {
			t.Errorf("DE4 %d DE6 %d of the partial in USD, want 550 and 500", de4, de6)
		}
		e.expectBalance(fx.AccountID, 500, 500)
	})
}

// holdsOf returns how many holds a user account has had and what its
// open ones hold.
func (e *e2e) holdsOf(acc int64) (n int, open int64) {
	e.t.Helper()
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*), coalesce(sum(amount) FILTER (WHERE status = 'open'), 0)
		FROM holds WHERE user_account_id = $1`, acc).Scan(&n, &open); err != nil {
		e.t.Fatal(err)
	}
	return n, open
}

func TestE2EIncrementalAuthorisation(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		acc := card.AccountID
		lodging := map[int]string{18: "7011"} // 31 days of hold
		orig, resp := e.auth(card, 1_000, lodging)
		e.expect(resp, cardhost.Approved)
		var expires0 time.Time
		if err := e.pool.QueryRow(e.ctx, `SELECT expires_at FROM holds WHERE user_account_id = $1`, acc).Scan(&expires0); err != nil {
			t.Fatal(err)
		}

		// An incremental of 500 (a grocery MCC: 7 days) raises the hold,
		// never shortens its expiry.
		inc := e.follow("100", orig, card, 500, e.control("incremental", nil))
		resp = e.send(inc)
		e.expect(resp, cardhost.Approved)
		if _, avail, ok := e.de54(resp); !ok || avail != 8_500 {
			t.Errorf("DE54 of the incremental: %d %v, want 8500", avail, ok)
		}
		if n, open := e.holdsOf(acc); n != 1 || open != 1_500 {
			t.Errorf("after the incremental: %d holds holding %d, want one of 1500", n, open)
		}
		var expires time.Time
		if err := e.pool.QueryRow(e.ctx, `SELECT expires_at FROM holds WHERE user_account_id = $1`, acc).Scan(&expires); err != nil {
			t.Fatal(err)
		}
		if expires.Before(expires0) {
			t.Errorf("expiry shortened from %s to %s", expires0, expires)
		}
		// A repeat changes nothing.
		e.expect(e.send(inc), cardhost.Approved)
		e.expectBalance(acc, 10_000, 1_500)

		// Beyond the funds: declined, the hold stays as it was.
		resp = e.send(e.follow("100", orig, card, 9_000, e.control("incremental", nil)))
		e.expect(resp, cardhost.InsufficientFunds)
		if _, avail, ok := e.de54(resp); !ok || avail != 8_500 {
			t.Errorf("DE54 of the declined incremental: %d %v, want 8500", avail, ok)
		}
		e.expectBalance(acc, 10_000, 1_500)

		// Its reversal releases its increment only, once.
		e.expect(e.send(e.follow("400", inc, card, 500, nil)), cardhost.Approved)
		e.expectBalance(acc, 10_000, 1_000)
		e.expect(e.send(e.follow("400", inc, card, 500, nil)), cardhost.Approved)
		e.expectBalance(acc, 10_000, 1_000)

		// Naming no authorisation of the card: not permitted, nothing held.
		other := e.virtualCard(e.prog, 10_000)
		e.expect(e.send(e.follow("100", orig, other, 500, e.control("incremental", nil))), cardhost.NotPermitted)
		e.expectBalance(other.AccountID, 10_000, 0)

		// A completion of the original captures up to the whole hold.
		inc2 := e.follow("100", orig, card, 2_000, e.control("incremental", nil))
		e.expect(e.send(inc2), cardhost.Approved)
		e.expectBalance(acc, 10_000, 3_000)
		e.expect(e.send(e.follow("220", orig, card, 3_000, lodging)), cardhost.Approved)
		e.expectBalance(acc, 7_000, 0)
		if n := e.count(`SELECT count(*) FROM exceptions`); n != 0 {
			t.Errorf("%d exceptions, want none", n)
		}

		// A reversal that overtakes its incremental releases the
		// increment when the incremental commits.
		card2 := e.virtualCard(e.prog, 10_000)
		orig2, _ := e.auth(card2, 1_000, nil)
		inc3 := e.follow("100", orig2, card2, 700, e.control("incremental", nil))
		e.expect(e.send(e.follow("400", inc3, card2, 700, nil)), cardhost.Approved)
		e.expect(e.send(inc3), cardhost.Approved)
		e.expectBalance(card2.AccountID, 10_000, 1_000)
	})
}

func TestE2EMultipleCompletions(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		// A restaurant: 20 % tolerance, on the whole hold.
		mcc := map[int]string{18: "5812"}
		card := e.virtualCard(e.prog, 10_000)
		acc := card.AccountID
		credit := e.account(e.prog.PartnerAccountID)
		orig, resp := e.auth(card, 1_000, mcc)
		e.expect(resp, cardhost.Approved)

		// A completion that is not the last takes its part, the rest stays held.
		part := e.follow("220", orig, card, 400, e.control("notlast", mcc))
		resp = e.send(part)
		e.expect(resp, cardhost.Approved)
		e.expectBalance(acc, 9_600, 600)
		if _, avail, ok := e.de54(resp); !ok || avail != 9_000 {
			t.Errorf("DE54 after the part: %d %v, want 9000", avail, ok)
		}
		// Its repeat changes nothing.
		e.expect(e.send(part), cardhost.Approved)
		e.expectBalance(acc, 9_600, 600)

		// Its reversal gives that part back; the rest stays held.
		e.expect(e.send(e.follow("400", part, card, 400, nil)), cardhost.Approved)
		e.expectBalance(acc, 10_000, 600)

		// Another part, then the last: 300 + 500 of 1,000 with 20 %.
		e.expect(e.send(e.follow("220", orig, card, 300, e.control("notlast", mcc))), cardhost.Approved)
		e.expectBalance(acc, 9_700, 300)
		e.expect(e.send(e.follow("220", orig, card, 500, mcc)), cardhost.Approved)
		e.expectBalance(acc, 9_200, 0)
		e.expectBalance(e.prog.PartnerAccountID, credit.Balance-800, credit.Held)
		if n := e.count(`SELECT count(*) FROM exceptions`); n != 0 {
			t.Errorf("%d exceptions, want none", n)
		}
		// After the last, the hold is resolved: a late part captures nothing.
		e.expect(e.send(e.follow("220", orig, card, 100, e.control("notlast", mcc))), cardhost.Approved)
		e.expectBalance(acc, 9_200, 0)

		// The tolerance is of the whole: 1,100 then 200 of a 1,000 hold
		// charge 1,200 (20 %), and the last 100 goes to exceptions.
		card2 := e.virtualCard(e.prog, 10_000)
		orig2, _ := e.auth(card2, 1_000, mcc)
		e.expect(e.send(e.follow("220", orig2, card2, 1_100, e.control("notlast", mcc))), cardhost.Approved)
		e.expectBalance(card2.AccountID, 8_900, 0)
		e.expect(e.send(e.follow("220", orig2, card2, 200, mcc)), cardhost.Approved)
		e.expectBalance(card2.AccountID, 8_800, 0)
		var kind string
		var amount int64
		if err := e.pool.QueryRow(e.ctx, `SELECT kind, amount FROM exceptions WHERE account_id = $1`, card2.AccountID).Scan(&kind, &amount); err != nil {
			t.Fatalf("over-capture exception: %v", err)
		}
		if kind != "over_capture" || amount != 100 {
			t.Errorf("exception %s of %d, want over_capture of 100", kind, amount)
		}

		// A reversal that overtakes its part's completion is applied when
		// the part commits: that part given back, the rest still held.
		card3 := e.virtualCard(e.prog, 10_000)
		orig3, _ := e.auth(card3, 1_000, mcc)
		part3 := e.follow("220", orig3, card3, 400, e.control("notlast", mcc))
		e.expect(e.send(e.follow("400", part3, card3, 400, nil)), cardhost.Approved)
		e.expect(e.send(part3), cardhost.Approved)
		e.expectBalance(card3.AccountID, 10_000, 600)
	})
}

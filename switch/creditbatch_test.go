package authswitch

import (
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// Refunds and incremental authorisations in the write batches (issues 17,
// 18): decided and written by the batch of their PAN's shard, in arrival
// order, with every money rule of a message alone.

// refundOf is a financial refund (x200, processing code 20) of amount
// naming purchase.
func (e *e2e) refundOf(purchase *iso8583.Message, card testCard, amount int64) *iso8583.Message {
	return e.follow("200", purchase, card, amount, map[int]string{3: "200000"})
}

// oneBatch checks that what was sent since batches reported n0 and r0 went
// to the database in one batch (one transaction, one commit) of want
// requests.
func oneBatch(t *testing.T, batches func() (uint64, float64), n0 uint64, r0 float64, want int, what string) {
	t.Helper()
	if n, r := batches(); n-n0 != 1 || r-r0 != float64(want) {
		t.Errorf("%s took %d batches of %v requests, want 1 batch (one transaction, one commit) of %d", what, n-n0, r-r0, want)
	}
}

// approvedPair sends a then b (b then a when swap) on conns within one
// batch window, checks both approved and written by one batch, and returns
// the messages in the order sent and their answers.
func (e *e2e) approvedPair(conns []*connection.Connection, batches func() (uint64, float64), a, b *iso8583.Message, swap bool, what string) (ms, resps []*iso8583.Message) {
	e.t.Helper()
	ms = []*iso8583.Message{a, b}
	if swap {
		ms = []*iso8583.Message{b, a}
	}
	n0, q0 := batches()
	resps = sendTogether(e.t, conns, 20*time.Millisecond, ms...)
	for _, resp := range resps {
		e.expect(resp, cardhost.Approved)
	}
	oneBatch(e.t, batches, n0, q0, 2, what)
	return ms, resps
}

// repeatSame sends ms again on c and checks each is answered as the first
// time (resps), DE39 and DE54.
func (e *e2e) repeatSame(c *connection.Connection, ms, resps []*iso8583.Message) {
	e.t.Helper()
	for i, m := range ms {
		again := sendOn(e.t, c, m)
		if got, want := get(e.t, again, 39), get(e.t, resps[i], 39); got != want {
			e.t.Errorf("repeat %d: DE39 %s, first %s", i, got, want)
		}
		_, a1, ok1 := e.de54(again)
		_, a0, ok0 := e.de54(resps[i])
		if a1 != a0 || ok1 != ok0 {
			e.t.Errorf("repeat %d: DE54 %d %v, first %d %v", i, a1, ok1, a0, ok0)
		}
	}
}

// TestGroupCommitRefundAndCompletionInOneBatch: a purchase's completion
// and refunds of it arriving in one batch are written by that batch in
// arrival order: refunds after the completion credit at most what it
// captured less earlier refunds (the rest waits for an Admin as a
// blind_refund exception); a refund before the completion finds nothing
// captured and credits nothing. Repeats answer the same and move nothing.
func TestGroupCommitRefundAndCompletionInOneBatch(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile)}
		for _, tc := range []struct {
			name           string
			refundFirst    bool
			balance        int64 // after the completion of 800 and refunds of 500 and 500
			waiting, count int64 // blind_refund exceptions: amount waiting, how many
		}{
			{"refunds after the completion", false, 10_000, 200, 1},
			{"a refund before the completion", true, 9_700, 500, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.t = t
				card := e.virtualCard(e.prog, 10_000)
				purchase, resp := e.auth(card, 1_000, nil)
				e.expect(resp, cardhost.Approved)
				comp := e.follow("220", purchase, card, 800, nil)
				r1, r2 := e.refundOf(purchase, card, 500), e.refundOf(purchase, card, 500)
				ms := []*iso8583.Message{comp, r1, r2}
				if tc.refundFirst {
					ms = []*iso8583.Message{r1, comp, r2}
				}
				n0, q0 := batches()
				resps := sendTogether(t, conns, 20*time.Millisecond, ms...)
				for _, resp := range resps {
					e.expect(resp, cardhost.Approved)
				}
				oneBatch(t, batches, n0, q0, 3, "a completion and two refunds of its purchase")
				e.expectBalance(card.AccountID, tc.balance, 0)
				var waiting, n int64
				for _, x := range e.exceptions(card.ID) {
					if x.Kind == ledger.ExceptionBlindRefund {
						waiting += x.Amount
						n++
					}
				}
				if waiting != tc.waiting || n != tc.count {
					t.Errorf("blind_refund exceptions: %d holding %d, want %d holding %d", n, waiting, tc.count, tc.waiting)
				}
				e.repeatSame(conns[0], ms, resps)
				e.expectBalance(card.AccountID, tc.balance, 0)
			})
		}
		e.verify()
	})
}

// TestGroupCommitRefundRacesReversal: a refund of a financial purchase and
// the purchase's reversal, sent together into one batch in either order:
// the money comes back once (the first to arrive gives it back, the other
// finds nothing left), both are acknowledged, and the ledger verifies.
func TestGroupCommitRefundRacesReversal(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile)}
		for i := range 4 {
			card := e.virtualCard(e.prog, 10_000)
			purchase := e.msg("200", card, 1_000, nil)
			e.expect(e.send(purchase), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_000, 0)
			refund, rev := e.refundOf(purchase, card, 1_000), e.follow("400", purchase, card, 1_000, nil)
			ms, resps := e.approvedPair(conns, batches, refund, rev, i%2 == 1, "a refund and the reversal of its purchase")
			e.expectBalance(card.AccountID, 10_000, 0)
			if i%2 == 1 {
				// The reversal came first: the refund credits nothing,
				// the whole of it waits for an Admin.
				if xs := e.exceptions(card.ID); len(xs) != 1 || xs[0].Kind != ledger.ExceptionBlindRefund || xs[0].Amount != 1_000 {
					t.Errorf("pair %d: exceptions %+v, want one blind_refund of 1000", i, xs)
				}
			} else if xs := e.exceptions(card.ID); len(xs) != 0 {
				t.Errorf("pair %d: exceptions %+v, want none (the refund credited it all)", i, xs)
			}
			e.repeatSame(conns[1], ms, resps)
			e.expectBalance(card.AccountID, 10_000, 0)
		}
		e.verify()
	})
}

// TestGroupCommitRefundsOneCommit: N refunds of N purchases (and one x220
// refund clearing) arriving together are written by one batch: one
// transaction, one commit, each credited as alone.
func TestGroupCommitRefundsOneCommit(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		const n = 10
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile), dial(t, addr, e.profile)}
		cards := make([]testCard, n)
		var ms []*iso8583.Message
		for i := range cards {
			cards[i] = e.virtualCard(e.prog, 10_000)
			purchase := e.msg("200", cards[i], 1_000, nil)
			e.expect(e.send(purchase), cardhost.Approved)
			if i%2 == 0 {
				ms = append(ms, e.refundOf(purchase, cards[i], 400))
			} else {
				ms = append(ms, e.follow("220", purchase, cards[i], 400, map[int]string{3: "200000"}))
			}
		}
		partner := e.account(e.prog.PartnerAccountID)
		n0, q0 := batches()
		resps := sendTogether(t, conns, time.Millisecond, ms...)
		for _, resp := range resps {
			e.expect(resp, cardhost.Approved)
			if _, avail, ok := e.de54(resp); !ok || avail != 9_400 {
				t.Errorf("DE54 of a refund: %d %v, want 9400", avail, ok)
			}
		}
		oneBatch(t, batches, n0, q0, n, "refunds of captured purchases")
		for _, c := range cards {
			e.expectBalance(c.AccountID, 9_400, 0)
		}
		e.expectBalance(e.prog.PartnerAccountID, partner.Balance+n*400, 0)
		if got := e.count(`SELECT count(*) FROM postings WHERE kind = 'credit'`); got != n {
			t.Errorf("%d credit postings, want %d", got, n)
		}
		e.repeatSame(conns[0], ms, resps)
		e.expectBalance(e.prog.PartnerAccountID, partner.Balance+n*400, 0)
		e.verify()
	})
}

// TestGroupCommitIncrementalInOneBatch: an authorisation and its
// incremental in one batch: after it, the incremental raises the hold the
// batch placed; before it, it finds no authorisation to raise (arrival
// order) and is declined. An incremental and its reversal in one batch,
// in either order, leave the hold as it was. An incremental whose card
// checks fail is declined there and its wrong expiry counted. Repeats
// answer the same and move nothing.
func TestGroupCommitIncrementalInOneBatch(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile)}
		inc := func(orig *iso8583.Message, card testCard, amount int64, extra map[int]string) *iso8583.Message {
			return e.follow("100", orig, card, amount, e.control("incremental", extra))
		}
		t.Run("with its authorisation", func(t *testing.T) {
			e.t = t
			for _, first := range []bool{false, true} {
				card := e.virtualCard(e.prog, 10_000)
				auth := e.msg("100", card, 1_000, nil)
				i := inc(auth, card, 500, nil)
				ms, want, held := []*iso8583.Message{auth, i}, cardhost.Approved, int64(1_500)
				if first {
					ms, want, held = []*iso8583.Message{i, auth}, cardhost.NotPermitted, 1_000
				}
				n0, q0 := batches()
				resps := sendTogether(t, conns, 20*time.Millisecond, ms...)
				for k, resp := range resps {
					if ms[k] == i {
						e.expect(resp, want)
					} else {
						e.expect(resp, cardhost.Approved)
					}
				}
				oneBatch(t, batches, n0, q0, 2, "an authorisation and its incremental")
				e.expectBalance(card.AccountID, 10_000, held)
				if n, open := e.holdsOf(card.AccountID); n != 1 || open != held {
					t.Errorf("incremental first %v: %d holds holding %d, want one of %d", first, n, open, held)
				}
				e.repeatSame(conns[0], ms, resps)
				e.expectBalance(card.AccountID, 10_000, held)
			}
		})
		t.Run("with its reversal", func(t *testing.T) {
			e.t = t
			for _, first := range []bool{false, true} {
				card := e.virtualCard(e.prog, 10_000)
				auth, resp := e.auth(card, 1_000, nil)
				e.expect(resp, cardhost.Approved)
				i := inc(auth, card, 700, nil)
				ms, resps := e.approvedPair(conns, batches, i, e.follow("400", i, card, 700, nil), first, "an incremental and its reversal")
				e.expectBalance(card.AccountID, 10_000, 1_000)
				e.repeatSame(conns[1], ms, resps)
				e.expectBalance(card.AccountID, 10_000, 1_000)
			}
		})
		t.Run("declined by the card checks", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			auth, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			wrong := "3412"
			if card.CardData.Expiry == wrong {
				wrong = "3411"
			}
			bad, good := inc(auth, card, 300, map[int]string{14: wrong}), inc(auth, card, 200, nil)
			ms := []*iso8583.Message{bad, good}
			n0, q0 := batches()
			resps := sendTogether(t, conns, 20*time.Millisecond, ms...)
			e.expect(resps[0], cardhost.ExpiredCard)
			e.expect(resps[1], cardhost.Approved)
			oneBatch(t, batches, n0, q0, 2, "two incrementals")
			e.expectBalance(card.AccountID, 10_000, 1_200)
			// The approved incremental's right expiry reset the count the
			// wrong one raised: both were applied, in order.
			if got := e.count(`SELECT count(*) FROM auth_journal WHERE card_id = $1 AND reason = $2`, card.ID, string(cardhost.ExpiredCard)); got != 1 {
				t.Errorf("%d journal rows of the expired-card decline, want 1", got)
			}
			e.repeatSame(conns[0], ms, resps)
			e.expectBalance(card.AccountID, 10_000, 1_200)
		})
		e.verify()
	})
}

// TestGroupCommitRefusedRefundFailsAlone: a refund the ledger refuses in
// its batch's tail (its card's balance no longer in the currency of its
// program: ledger.ErrCurrencyMismatch) fails alone, as in a transaction of
// its own: it is answered issuer unavailable and credits nothing, while
// the approvals and the completion of the same batch are approved and
// committed by that batch, one transaction, one commit.
func TestGroupCommitRefusedRefundFailsAlone(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile)}
		refused, held, a1, a2 := e.virtualCard(e.prog, 10_000), e.virtualCard(e.prog, 10_000), e.virtualCard(e.prog, 10_000), e.virtualCard(e.prog, 10_000)
		purchase := e.msg("200", refused, 1_000, nil)
		e.expect(e.send(purchase), cardhost.Approved)
		auth, resp := e.auth(held, 1_000, nil)
		e.expect(resp, cardhost.Approved)
		// The refunded card's balance in another currency than its
		// program's: the credit's legs do not match it.
		acc := e.account(refused.AccountID)
		other := "USD"
		if acc.Currency == other {
			other = "EUR"
		}
		setCurrency := func(ccy string) {
			if _, err := e.pool.Exec(e.ctx, `UPDATE accounts SET currency = $2 WHERE id = $1`, refused.AccountID, ccy); err != nil {
				t.Fatal(err)
			}
		}
		setCurrency(other)
		partner := e.account(e.prog.PartnerAccountID)
		refund := e.refundOf(purchase, refused, 1_000)
		ms := []*iso8583.Message{e.msg("100", a1, 2_000, nil), refund, e.follow("220", auth, held, 800, nil), e.msg("200", a2, 3_000, nil)}
		n0, q0 := batches()
		resps := sendTogether(t, conns, 20*time.Millisecond, ms...)
		oneBatch(t, batches, n0, q0, len(ms), "two approvals, a completion and a refused refund")
		for i, resp := range resps {
			if ms[i] == refund {
				e.expect(resp, cardhost.IssuerUnavailable)
				continue
			}
			e.expect(resp, cardhost.Approved)
		}
		setCurrency(acc.Currency)
		e.expectBalance(refused.AccountID, 9_000, 0) // nothing credited
		e.expectBalance(a1.AccountID, 10_000, 2_000)
		e.expectBalance(held.AccountID, 9_200, 0)
		e.expectBalance(a2.AccountID, 7_000, 0)
		if got := e.count(`SELECT count(*) FROM postings WHERE kind = 'credit'`); got != 0 {
			t.Errorf("%d credit postings, want none", got)
		}
		if got, want := e.account(e.prog.PartnerAccountID).Balance, partner.Balance-3_800; got != want {
			t.Errorf("partner balance %d, want %d (the completion and the financial request charged, nothing credited)", got, want)
		}
		// The refused refund was not journaled: sent again once the
		// balance is right, it is credited.
		e.expect(sendOn(t, conns[0], refund), cardhost.Approved)
		e.expectBalance(refused.AccountID, 10_000, 0)
		e.verify()
	})
}

package authswitch

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
)

// The end-to-end tests run the real switch over real TCP against the real
// card host and ledger on PostgreSQL, with moov-io's iso8583-connection as
// the acquirer, in both profiles. ledger.Verify runs after each.

// TestE2EActionCodes produces every row of the action-code table that a
// request can produce.
func TestE2EActionCodes(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		ctx := e.ctx
		// A second host whose clock is five years back issues a card that
		// has expired by now.
		past := cardhost.NewHost(e.pool, e.led, e.keys, cardhost.Config{Now: func() time.Time { return time.Now().AddDate(-5, 0, 0) }})
		deposit := func(url string, timeout time.Duration, standIn bool, funds int64) cardhost.Program {
			return e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit, RemoteURL: url, RemoteTimeout: timeout, StandInApprove: standIn}, funds)
		}
		poorPartner := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 300)
		declining := deposit(partnerRemote(t, false, 0), time.Second, true, 100_000)
		slowApprove := deposit(partnerRemote(t, true, 5*time.Second), 200*time.Millisecond, true, 100_000)
		slowDecline := deposit(partnerRemote(t, true, 5*time.Second), 200*time.Millisecond, false, 100_000)
		approving := deposit(partnerRemote(t, true, 0), time.Second, false, 100_000)

		type row struct {
			name   string
			reason cardhost.Reason
			card   func() testCard
			amount int64
			extra  func(c testCard) map[int]string
			// funds: DE54 must report this available amount.
			funds *int64
		}
		i64 := func(v int64) *int64 { return &v }
		locked := func(code cardhost.LockCode) func() testCard {
			return func() testCard {
				c := e.virtualCard(e.prog, 10_000)
				if _, err := e.host.Lock(ctx, c.ID, code, admin, "e2e"); err != nil {
					t.Fatal(err)
				}
				return c
			}
		}
		rows := []row{
			{name: "approved", reason: cardhost.Approved, card: func() testCard { return e.virtualCard(e.prog, 10_000) }, funds: i64(9_000)},
			{name: "approved with CVC2", reason: cardhost.Approved, card: func() testCard { return e.virtualCard(e.prog, 10_000) },
				extra: func(c testCard) map[int]string { return map[int]string{48: "9203" + c.CVC2} }, funds: i64(9_000)},
			{name: "approved with PIN, cash", reason: cardhost.Approved, card: func() testCard { return e.physicalCard(e.prog, 10_000, true, "1234") },
				extra: func(c testCard) map[int]string { return map[int]string{3: "010000", 52: e.pinBlock("1234", c)} }, funds: i64(9_000)},
			{name: "invalid card", reason: cardhost.InvalidCard, card: func() testCard {
				c := e.virtualCard(e.prog, 10_000)
				c.PAN = c.PAN[:6] + "000000000" + c.PAN[15:] // not issued
				return c
			}},
			{name: "lock 1", reason: cardhost.CardLost, card: locked(cardhost.LockLost)},
			{name: "lock 2", reason: cardhost.CardStolen, card: locked(cardhost.LockStolen)},
			{name: "lock 3", reason: cardhost.PendingQuery, card: locked(cardhost.LockPendingQuery)},
			{name: "lock 4", reason: cardhost.CardConsolidation, card: locked(cardhost.LockCardConsolidation)},
			{name: "lock 5", reason: cardhost.CardInactive, card: locked(cardhost.LockCardInactive)},
			{name: "lock 6", reason: cardhost.PINTriesExceeded, card: locked(cardhost.LockPINTriesExceeded)},
			{name: "lock 7", reason: cardhost.SuspectedFraud, card: locked(cardhost.LockSuspectedFraud)},
			{name: "lock 8", reason: cardhost.CardReplaced, card: locked(cardhost.LockCardReplaced)},
			{name: "removed", reason: cardhost.CardRemoved, card: func() testCard {
				c := e.virtualCard(e.prog, 10_000)
				if _, err := e.host.Remove(ctx, c.ID, admin); err != nil {
					t.Fatal(err)
				}
				return c
			}},
			{name: "physical not active", reason: cardhost.CardNotActive, card: func() testCard { return e.physicalCard(e.prog, 10_000, false, "") }},
			{name: "expired", reason: cardhost.ExpiredCard, card: func() testCard {
				u, acc := e.user(e.prog, 10_000)
				return e.virtualCardOn(past, u, acc)
			}},
			{name: "expiry not the card's", reason: cardhost.ExpiredCard, card: func() testCard { return e.virtualCard(e.prog, 10_000) },
				extra: func(c testCard) map[int]string { return map[int]string{14: "3912"} }},
			{name: "wrong CVC2", reason: cardhost.CVC2Failed, card: func() testCard { return e.virtualCard(e.prog, 10_000) },
				extra: func(c testCard) map[int]string { return map[int]string{48: "9203" + otherCVC2(c.CVC2)} }},
			{name: "wrong PIN", reason: cardhost.IncorrectPIN, card: func() testCard { return e.physicalCard(e.prog, 10_000, true, "1234") },
				extra: func(c testCard) map[int]string { return map[int]string{52: e.pinBlock("4321", c)} }},
			{name: "cash on virtual", reason: cardhost.NotPermitted, card: func() testCard { return e.virtualCard(e.prog, 10_000) },
				extra: func(c testCard) map[int]string { return map[int]string{3: "010000"} }},
			{name: "currency without billing amount", reason: cardhost.NotPermitted, card: func() testCard { return e.virtualCard(e.prog, 10_000) },
				extra: func(c testCard) map[int]string { return map[int]string{49: "840"} }},
			{name: "insufficient funds", reason: cardhost.InsufficientFunds, card: func() testCard { return e.virtualCard(e.prog, 500) }, funds: i64(500)},
			{name: "insufficient partner funds", reason: cardhost.InsufficientPartnerFunds, card: func() testCard { return e.virtualCard(poorPartner, 10_000) }},
			{name: "partner declines", reason: cardhost.DoNotHonour, card: func() testCard { return e.virtualCard(declining, 0) }},
			{name: "partner approves", reason: cardhost.Approved, card: func() testCard { return e.virtualCard(approving, 0) }, funds: i64(99_000)},
			{name: "partner slow, stand-in approve", reason: cardhost.Approved, card: func() testCard { return e.virtualCard(slowApprove, 0) }, funds: i64(99_000)},
			{name: "partner slow, stand-in decline", reason: cardhost.IssuerUnavailable, card: func() testCard { return e.virtualCard(slowDecline, 0) }},
		}
		for _, r := range rows {
			t.Run(r.name, func(t *testing.T) {
				e.t = t
				defer func() { e.t = nil }()
				c := r.card()
				amount := r.amount
				if amount == 0 {
					amount = 1_000
				}
				var extra map[int]string
				if r.extra != nil {
					extra = r.extra(c)
				}
				req, resp := e.auth(c, amount, extra)
				e.expect(resp, r.reason)
				stan := get(t, req, 11)
				if r.reason == cardhost.Approved {
					if ac, _ := resp.GetString(38); len(ac) != 6 {
						t.Errorf("DE38: got %q, want six characters", ac)
					}
				} else if n := e.count(`SELECT count(*) FROM holds WHERE ref LIKE '%/' || $1 || '/%'`, stan); n != 0 {
					t.Errorf("holds of a decline: got %d, want 0", n)
				}
				ccy, avail, ok := e.de54(resp)
				switch {
				case r.funds != nil && (!ok || avail != *r.funds || ccy != "978"):
					t.Errorf("DE54: got %s %d (present %v), want 978 %d", ccy, avail, ok, *r.funds)
				case r.funds == nil && ok && r.reason != cardhost.InsufficientPartnerFunds:
					t.Errorf("DE54: got %s %d, want none", ccy, avail)
				}
				// The journal keeps the reason where the wire code is shared.
				var reason string
				if err := e.pool.QueryRow(ctx, `SELECT reason FROM auth_journal WHERE stan = $1`, stan).Scan(&reason); err != nil {
					t.Fatalf("journal: %v", err)
				}
				if reason != string(r.reason) {
					t.Errorf("journal reason: got %s, want %s", reason, r.reason)
				}
			})
		}
		e.t = t
	})
}

// TestE2EIssuerUnavailable answers 91/9112 when the ledger cannot be
// reached, and commits nothing when the decision outlives the switch's
// budget (a slow partner with a stand-in approve).
func TestE2EIssuerUnavailable(t *testing.T) {
	forProfiles(t, func(c *Config) { c.DecideTimeout = 300 * time.Millisecond }, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)

		// A host on a closed pool: the database is unreachable.
		dead, err := pgxpool.New(e.ctx, e.pool.Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		dead.Close()
		off := cardhost.NewHost(dead, ledger.New(dead, ledger.Config{}), e.keys, cardhost.Config{Logger: slog.New(slog.DiscardHandler)})
		c := dial(t, e.serve(off, nil), e.profile)
		resp := sendOn(t, c, e.msg("100", card, 1_000, nil))
		e.expect(resp, cardhost.IssuerUnavailable)

		// The partner answers after the switch's budget; its stand-in
		// would approve, but the answer has gone out as 91: no hold.
		slow := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit, RemoteURL: partnerRemote(t, true, 5*time.Second),
			RemoteTimeout: 2 * time.Second, StandInApprove: true}, 100_000)
		sc := e.virtualCard(slow, 0)
		_, resp = e.auth(sc, 1_000, nil)
		e.expect(resp, cardhost.IssuerUnavailable)
		time.Sleep(200 * time.Millisecond) // let the host's call wind down
		if n := e.count(`SELECT count(*) FROM holds`); n != 0 {
			t.Errorf("holds after a timed-out decision: got %d, want 0", n)
		}
		e.expectBalance(slow.PartnerAccountID, 100_000, 0)
	})
}

// otherCVC2 returns a CVC2 that is not cvc.
func otherCVC2(cvc string) string {
	var n int
	fmt.Sscanf(cvc, "%d", &n)
	return fmt.Sprintf("%03d", (n+1)%1000)
}

// pinBlock is DE52 for pin and card under the profile's zone key, as the
// string the message's field takes.
func (e *e2e) pinBlock(pin string, c testCard) string {
	e.t.Helper()
	b, err := e.keys.ZonePINBlock(e.profile, pin, c.PAN)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// TestE2EDuplicate sends an approved authorisation twice: one hold, and
// the second answer is the first (DE39, DE38, DE54).
func TestE2EDuplicate(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		req, first := e.auth(card, 1_000, nil)
		e.expect(first, cardhost.Approved)
		second := e.send(req)
		for _, f := range []int{39, 38, 54} {
			if a, b := get(t, first, f), get(t, second, f); a != b {
				t.Errorf("DE%d: duplicate got %q, first %q", f, b, a)
			}
		}
		if n := e.count(`SELECT count(*) FROM holds WHERE user_account_id = $1`, card.AccountID); n != 1 {
			t.Errorf("holds: got %d, want 1", n)
		}
		e.expectBalance(card.AccountID, 10_000, 1_000)

		// A repeat (x101) of the same request is the same request.
		req.MTI(mtiOf(e.profile, "101"))
		third := e.send(req)
		for _, f := range []int{39, 38, 54} {
			if a, b := get(t, first, f), get(t, third, f); a != b {
				t.Errorf("DE%d: repeat got %q, first %q", f, b, a)
			}
		}
		e.expectBalance(card.AccountID, 10_000, 1_000)

		// A duplicate of a decline replays the decline and its DE54.
		poor := e.virtualCard(e.prog, 100)
		req, first = e.auth(poor, 1_000, nil)
		e.expect(first, cardhost.InsufficientFunds)
		second = e.send(req)
		for _, f := range []int{39, 54} {
			if a, b := get(t, first, f), get(t, second, f); a != b {
				t.Errorf("decline DE%d: duplicate got %q, first %q", f, b, a)
			}
		}
	})
}

// TestE2EReversal reverses fully and partially, twice, and an unknown
// original.
func TestE2EReversal(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		t.Run("full", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 1_000)
			e.expectBalance(e.prog.PartnerAccountID, 1_000_000, 1_000)
			rev := e.follow("400", orig, card, 1_000, nil)
			resp = e.send(rev)
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.expectBalance(e.prog.PartnerAccountID, 1_000_000, 0)
			if _, avail, ok := e.de54(resp); !ok || avail != 10_000 {
				t.Errorf("reversal DE54: got %d (present %v), want 10000", avail, ok)
			}

			// A duplicate of the reversal answers the same.
			again := e.send(rev)
			for _, f := range []int{39, 38} {
				if a, b := get(t, resp, f), get(t, again, f); a != b {
					t.Errorf("DE%d: duplicate reversal got %q, first %q", f, b, a)
				}
			}

			// A second reversal (reversal advice, new STAN) changes nothing.
			resp = e.send(e.follow("420", orig, card, 1_000, nil))
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.expectBalance(e.prog.PartnerAccountID, 1_000_000, 0)
		})
		t.Run("partial", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			resp = e.send(e.follow("400", orig, card, 1_000, map[int]string{95: replacement(400)}))
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 400)
			e.expectBalance(e.prog.PartnerAccountID, 1_000_000, 400)
			// The same partial reversal again changes nothing.
			resp = e.send(e.follow("400", orig, card, 1_000, map[int]string{95: replacement(400)}))
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 400)
			// The rest is reversed.
			resp = e.send(e.follow("400", orig, card, 1_000, nil))
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.expectBalance(e.prog.PartnerAccountID, 1_000_000, 0)
		})
		t.Run("partial in another currency", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			// 11.00 USD authorised as 10.00 EUR; 4.40 USD spent is 4.00 EUR.
			fx := map[int]string{49: "840", 6: "000000001000", 51: "978"}
			orig, resp := e.auth(card, 1_100, fx)
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 1_000)
			resp = e.send(e.follow("400", orig, card, 1_100, map[int]string{49: "840", 95: replacement(440)}))
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 400)
			e.expectBalance(e.prog.PartnerAccountID, 1_000_000, 400)
		})
		t.Run("partial above the hold", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			// The acquirer says more was spent than is held: nothing to
			// give back, and the answer is an approval, not a retry.
			rev := e.follow("400", orig, card, 1_000, map[int]string{95: replacement(1_500)})
			resp = e.send(rev)
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 1_000)
			var detail string
			if err := e.pool.QueryRow(e.ctx, `SELECT detail FROM auth_journal WHERE stan = $1 AND class = $2`,
				get(t, rev, 11), int(cardhost.ClassReversal)).Scan(&detail); err != nil {
				t.Fatalf("journal: %v", err)
			}
			if detail != "replacement amount not below the hold: nothing released" {
				t.Errorf("journal detail: got %q", detail)
			}
		})
		t.Run("financial", func(t *testing.T) {
			e.t = t
			// A financial message captures at once: its reversal gives the
			// money back (the cash was not dispensed), once.
			card := e.virtualCard(e.prog, 10_000)
			credit := e.account(e.prog.PartnerAccountID)
			fin := e.msg("200", card, 1_000, nil)
			e.expect(e.send(fin), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_000, 0)
			rev := e.follow("400", fin, card, 1_000, map[int]string{95: replacement(300)})
			e.expect(e.send(rev), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_700, 0)
			e.expectBalance(e.prog.PartnerAccountID, credit.Balance-300, credit.Held)
			e.expect(e.send(rev), cardhost.Approved) // a duplicate: the same answer, no second refund
			e.expectBalance(card.AccountID, 9_700, 0)
			e.expect(e.send(e.follow("420", fin, card, 1_000, nil)), cardhost.Approved) // the rest
			e.expectBalance(card.AccountID, 10_000, 0)
			e.expectBalance(e.prog.PartnerAccountID, credit.Balance, credit.Held)
			e.expect(e.send(e.follow("420", fin, card, 1_000, nil)), cardhost.Approved) // nothing left
			e.expectBalance(card.AccountID, 10_000, 0)
			e.verify()
		})
		t.Run("completion", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			done := e.follow("220", orig, card, 800, nil)
			e.expect(e.send(done), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_200, 0)
			// Reversing the completion gives its capture back; reversing
			// the authorisation after it changes nothing.
			e.expect(e.send(e.follow("400", done, card, 800, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.expect(e.send(e.follow("400", orig, card, 1_000, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.verify()
		})
		t.Run("second completion", func(t *testing.T) {
			e.t = t
			// A second completion of one authorisation captures nothing;
			// reversing it gives nothing back (the first one's capture
			// stands).
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			e.expect(e.send(e.follow("220", orig, card, 800, nil)), cardhost.Approved)
			second := e.follow("220", orig, card, 700, nil)
			e.expect(e.send(second), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_200, 0)
			e.expect(e.send(e.follow("400", second, card, 700, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_200, 0)
			e.verify()
		})
		t.Run("partial of a completion in another currency", func(t *testing.T) {
			e.t = t
			// 11.00 USD authorised as 10.00 EUR, cleared as 5.00 USD =
			// 4.50 EUR (the user pays the 10.00 held); 2.00 USD of it
			// stands: 1.80 EUR kept, 2.70 of the 4.50 captured refunded,
			// and the user gets 2.70/4.50 of the 10.00 paid back.
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_100, map[int]string{49: "840", 6: "000000001000", 51: "978"})
			e.expect(resp, cardhost.Approved)
			done := e.follow("220", orig, card, 500, map[int]string{49: "840", 6: "000000000450", 51: "978"})
			e.expect(e.send(done), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_000, 0)
			e.expect(e.send(e.follow("400", done, card, 500, map[int]string{49: "840", 95: replacement(200)})), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_600, 0)
			e.verify()
		})
		t.Run("unknown original", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			never := e.msg("100", card, 1_000, nil) // never sent
			rev := e.follow("400", never, card, 1_000, nil)
			resp := e.send(rev)
			e.expect(resp, cardhost.Approved)
			var detail string
			if err := e.pool.QueryRow(e.ctx, `SELECT detail FROM auth_journal WHERE stan = $1 AND class = $2`,
				get(t, rev, 11), int(cardhost.ClassReversal)).Scan(&detail); err != nil {
				t.Fatalf("journal: %v", err)
			}
			if want := "original not found: pending reversal"; detail != want {
				t.Errorf("journal detail: got %q, want %q", detail, want)
			}
			e.expectBalance(card.AccountID, 10_000, 0)
		})
		e.t = t
	})
}

// TestE2ECompletion captures below and above the authorised amount, and
// in another currency with the difference on the partner balance.
func TestE2ECompletion(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		for _, tc := range []struct {
			name  string
			final int64
		}{{"below", 800}, {"above", 1_200}} {
			t.Run(tc.name, func(t *testing.T) {
				e.t = t
				card := e.virtualCard(e.prog, 10_000)
				credit := e.account(e.prog.PartnerAccountID)
				// A restaurant: up to 20 % above the hold is charged (a
				// tip); TestAttackOverCapture covers the rest.
				mcc := map[int]string{18: "5812", 26: "5812"}
				if e.profile != ProfileISO2003 {
					delete(mcc, 26)
				}
				orig, resp := e.auth(card, 1_000, mcc)
				e.expect(resp, cardhost.Approved)
				resp = e.send(e.follow("220", orig, card, tc.final, mcc))
				e.expect(resp, cardhost.Approved)
				e.expectBalance(card.AccountID, 10_000-tc.final, 0)
				e.expectBalance(e.prog.PartnerAccountID, credit.Balance-tc.final, credit.Held)
				if _, avail, ok := e.de54(resp); !ok || avail != 10_000-tc.final {
					t.Errorf("DE54: got %d (present %v), want %d", avail, ok, 10_000-tc.final)
				}
			})
		}
		t.Run("financial", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			_, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			resp = e.send(e.msg("200", card, 700, nil))
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 9_300, 1_000)
			if _, avail, ok := e.de54(resp); !ok || avail != 8_300 {
				t.Errorf("DE54: got %d (present %v), want 8300", avail, ok)
			}
		})
		t.Run("fx", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			// 11.00 USD authorised as 10.00 EUR, cleared as 11.50 USD = 10.50 EUR.
			orig, resp := e.auth(card, 1_100, map[int]string{49: "840", 6: "000000001000", 51: "978"})
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 1_000)
			resp = e.send(e.follow("220", orig, card, 1_150, map[int]string{49: "840", 6: "000000001050", 51: "978"}))
			e.expect(resp, cardhost.Approved)
			// The user pays what was authorised in EUR; the scheme is owed
			// 10.50; the partner balance takes the 0.50 difference.
			e.expectBalance(card.AccountID, 9_000, 0)
			accs, err := e.led.PartnerAccounts(e.ctx, e.partner.ID)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, a := range accs {
				if a.Kind == ledger.KindPartner && a.Currency == "EUR" {
					found = true
					if a.Balance != -50 {
						t.Errorf("partner balance: got %d, want -50", a.Balance)
					}
				}
			}
			if !found {
				t.Error("no partner (FX) balance in EUR")
			}
		})
		e.t = t
	})
}

// TestE2EFinancialOnAQuietProgram: the first message of a program whose
// partner account holds nothing is a financial x200 (cash at an ATM): it
// is captured at once like any other.
func TestE2EFinancialOnAQuietProgram(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		quiet := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 50_000)
		uid, acc := e.user(quiet, 10_000)
		card := e.virtualCardOn(e.host, uid, acc)
		e.expect(e.send(e.msg("200", card, 1_000, nil)), cardhost.Approved)
		e.expectBalance(card.AccountID, 9_000, 0)
		e.expectBalance(quiet.PartnerAccountID, 49_000, 0)
		e.verify()
	})
}

// TestE2ERefund credits refunds (processing code 20): a financial refund
// at once, a refund authorisation when it clears (x220), a clearing that
// no authorisation announced, each once; the partner credit line gets the
// amount back.
func TestE2ERefund(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		refund := map[int]string{3: "200000"}
		// These refunds name no purchase: the program lets such a refund
		// credit at once (TestAttackBlindRefund covers the default, 0).
		blind := cardhost.ProgramLimits{BlindRefundLimit: 1_000_000}
		if err := e.host.SetProgramLimits(e.ctx, e.prog.ID, blind); err != nil {
			t.Fatal(err)
		}
		t.Run("financial", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			credit := e.account(e.prog.PartnerAccountID)
			fin := e.msg("200", card, 1_500, refund)
			resp := e.send(fin)
			e.expect(resp, cardhost.Approved)
			if _, avail, ok := e.de54(resp); !ok || avail != 11_500 {
				t.Errorf("DE54: got %d (present %v), want 11500", avail, ok)
			}
			e.expectBalance(card.AccountID, 11_500, 0)
			e.expectBalance(e.prog.PartnerAccountID, credit.Balance+1_500, credit.Held)
			e.expect(e.send(fin), cardhost.Approved) // a duplicate credits nothing more
			e.expectBalance(card.AccountID, 11_500, 0)
			e.verify()
		})
		t.Run("authorised then cleared", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 700, refund)
			e.expect(resp, cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			clearing := e.follow("220", orig, card, 700, refund)
			e.expect(e.send(clearing), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_700, 0)
			e.expect(e.send(clearing), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_700, 0)
			e.verify()
		})
		t.Run("cleared without authorisation", func(t *testing.T) {
			e.t = t
			card := e.virtualCard(e.prog, 10_000)
			e.expect(e.send(e.msg("220", card, 250, refund)), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_250, 0)
			e.verify()
		})
		t.Run("to a closed balance", func(t *testing.T) {
			e.t = t
			// A closed balance keeps nothing: the refund is refused
			// (1019/57), not credited where nobody can use it.
			card := e.virtualCard(e.prog, 0)
			if err := e.led.SetState(e.ctx, card.AccountID, ledger.StateClosed); err != nil {
				t.Fatal(err)
			}
			e.expect(e.send(e.msg("200", card, 300, refund)), cardhost.NotPermitted)
			e.expect(e.send(e.msg("220", card, 300, refund)), cardhost.NotPermitted)
			e.expectBalance(card.AccountID, 0, 0)
			e.verify()
		})
		t.Run("partner deposit", func(t *testing.T) {
			e.t = t
			// The partner keeps its users' balances: the refund goes to its
			// deposit, from settlement.
			deposit := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit}, 40_000)
			if err := e.host.SetProgramLimits(e.ctx, deposit.ID, blind); err != nil {
				t.Fatal(err)
			}
			uid, acc := e.user(deposit, 0)
			card := e.virtualCardOn(e.host, uid, acc)
			fin := e.msg("200", card, 900, refund)
			e.expect(e.send(fin), cardhost.Approved)
			e.expectBalance(deposit.PartnerAccountID, 40_900, 0)
			e.expectBalance(card.AccountID, 0, 0)
			e.expect(e.send(e.follow("400", fin, card, 900, nil)), cardhost.Approved)
			e.expectBalance(deposit.PartnerAccountID, 40_000, 0)
			e.verify()
		})
		t.Run("cleared twice", func(t *testing.T) {
			e.t = t
			// One refund, several messages: credited once.
			card := e.virtualCard(e.prog, 10_000)
			fin := e.msg("200", card, 800, refund)
			e.expect(e.send(fin), cardhost.Approved)
			e.expect(e.send(e.follow("220", fin, card, 800, refund)), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_800, 0)
			auth, resp := e.auth(card, 700, refund)
			e.expect(resp, cardhost.Approved)
			e.expect(e.send(e.follow("220", auth, card, 700, refund)), cardhost.Approved)
			e.expect(e.send(e.follow("220", auth, card, 700, refund)), cardhost.Approved)
			e.expectBalance(card.AccountID, 11_500, 0)
			e.verify()
		})
		t.Run("matched to its purchase, cleared, reversed", func(t *testing.T) {
			e.t = t
			// A refund naming its purchase is credited under its own key:
			// its clearing credits nothing more, its reversal takes the
			// credit back.
			card := e.virtualCard(e.prog, 10_000)
			purchase, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			e.expect(e.send(e.follow("220", purchase, card, 1_000, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_000, 0)
			ret := e.follow("200", purchase, card, 400, refund)
			e.expect(e.send(ret), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_400, 0)
			e.expect(e.send(e.follow("220", ret, card, 400, refund)), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_400, 0)
			e.expect(e.send(e.follow("400", ret, card, 400, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 9_000, 0)
			e.verify()
		})
		t.Run("reversed", func(t *testing.T) {
			e.t = t
			// A refund reversed is taken back: partly (DE95), then the
			// rest, once; a reversed clearing likewise.
			card := e.virtualCard(e.prog, 10_000)
			credit := e.account(e.prog.PartnerAccountID)
			fin := e.msg("200", card, 1_000, refund)
			e.expect(e.send(fin), cardhost.Approved)
			rev := e.follow("400", fin, card, 1_000, map[int]string{95: replacement(400)})
			e.expect(e.send(rev), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_400, 0)
			e.expect(e.send(rev), cardhost.Approved) // a duplicate
			e.expect(e.send(e.follow("420", fin, card, 1_000, nil)), cardhost.Approved)
			e.expect(e.send(e.follow("420", fin, card, 1_000, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.expectBalance(e.prog.PartnerAccountID, credit.Balance, credit.Held)
			auth, resp := e.auth(card, 700, refund)
			e.expect(resp, cardhost.Approved)
			clearing := e.follow("220", auth, card, 700, refund)
			e.expect(e.send(clearing), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_700, 0)
			e.expect(e.send(e.follow("400", clearing, card, 700, nil)), cardhost.Approved)
			e.expectBalance(card.AccountID, 10_000, 0)
			e.verify()
		})
		e.t = t
	})
}

// TestE2EAdvice holds an advice without a funds check up to the available
// balance (the stand-in limit is 0); the rest is an exception, never the
// user's (TestAttackAdviceBeyondFunds).
func TestE2EAdvice(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 500)
		resp := e.send(e.msg("120", card, 1_000, nil))
		e.expect(resp, cardhost.Approved)
		a := e.account(card.AccountID)
		if a.Balance != 500 || a.Held != 500 || a.Available() != 0 || a.NegativeFlag {
			t.Errorf("user balance: got balance %d held %d flagged %v, want 500, 500, false", a.Balance, a.Held, a.NegativeFlag)
		}
		e.expectException(card.ID, ledger.ExceptionStandInOverdraft, 500, 500)
		if _, avail, ok := e.de54(resp); !ok || avail != 0 {
			t.Errorf("DE54: got %d (present %v), want 0", avail, ok)
		}
		// The scheme stood in for a card locked since: held all the same.
		locked := e.virtualCard(e.prog, 5_000)
		if _, err := e.host.Lock(e.ctx, locked.ID, cardhost.LockPendingQuery, admin, "e2e"); err != nil {
			t.Fatal(err)
		}
		resp = e.send(e.msg("120", locked, 1_000, nil))
		e.expect(resp, cardhost.Approved)
		e.expectBalance(locked.AccountID, 5_000, 1_000)
	})
}

// TestE2EPINTries: the third wrong PIN in a row answers 1006/75 and locks
// the card from outside with code 6.
func TestE2EPINTries(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.physicalCard(e.prog, 10_000, true, "2468")
		wrong := map[int]string{52: e.pinBlock("1357", card)}
		for i, want := range []cardhost.Reason{cardhost.IncorrectPIN, cardhost.IncorrectPIN, cardhost.PINTriesExceeded} {
			_, resp := e.auth(card, 1_000, wrong)
			if got, w := get(t, resp, 39), actionCode(t, e.profile, want); got != w {
				t.Errorf("wrong PIN %d: got %s, want %s", i+1, got, w)
			}
		}
		c, err := e.host.Card(e.ctx, card.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.LockCode != cardhost.LockPINTriesExceeded {
			t.Errorf("lock code: got %d, want 6", c.LockCode)
		}
		hist, err := e.host.History(e.ctx, card.ID)
		if err != nil {
			t.Fatal(err)
		}
		var locked bool
		for _, ev := range hist {
			if ev.LockCode == cardhost.LockPINTriesExceeded && ev.Actor.Kind == cardhost.ActorSystem {
				locked = true
			}
		}
		if !locked {
			t.Errorf("history has no lock code 6 by the system: %+v", hist)
		}
		// The right PIN no longer helps.
		_, resp := e.auth(card, 1_000, map[int]string{52: e.pinBlock("2468", card)})
		e.expect(resp, cardhost.PINTriesExceeded)
		e.expectBalance(card.AccountID, 10_000, 0)
	})
}

// TestE2ELock: a lock made through the host applies to the next
// authorisation, and so does the unlock.
func TestE2ELock(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		_, resp := e.auth(card, 1_000, nil)
		e.expect(resp, cardhost.Approved)
		if _, err := e.host.Lock(e.ctx, card.ID, cardhost.LockSuspectedFraud, admin, "e2e"); err != nil {
			t.Fatal(err)
		}
		_, resp = e.auth(card, 1_000, nil)
		e.expect(resp, cardhost.SuspectedFraud)
		if _, err := e.host.Unlock(e.ctx, card.ID, admin); err != nil {
			t.Fatal(err)
		}
		_, resp = e.auth(card, 1_000, nil)
		e.expect(resp, cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 2_000)
	})
}

// TestE2EBrokenInput: garbage, a truncated frame, a 65535 length header
// with no body and an unknown MTI; the switch keeps serving others.
func TestE2EBrokenInput(t *testing.T) {
	forProfiles(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond }, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)

		garbage := e.rawConn()
		garbage.Write(rawFrame([]byte("\x00\xffnot an ISO 8583 message at all\x01\x02")))
		expectClosed(t, garbage)

		truncated := e.rawConn()
		valid, err := e.msg("100", card, 1_000, nil).Pack()
		if err != nil {
			t.Fatal(err)
		}
		truncated.Write(rawFrame(valid)[:len(valid)/2])
		expectClosed(t, truncated)

		huge := e.rawConn()
		huge.Write([]byte{0xff, 0xff})
		expectClosed(t, huge)

		unknown := e.rawConn()
		m := e.msg("100", card, 1_000, nil)
		m.MTI(mtiOf(e.profile, "600"))
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		unknown.Write(rawFrame(b))
		resp, err := readAnswer(t, unknown, e.profile)
		if err != nil {
			t.Fatalf("unknown MTI: %v", err)
		}
		e.expect(resp, cardhost.FormatError)

		// Nothing reached the ledger, and the client still gets answers.
		if n := e.count(`SELECT count(*) FROM holds`); n != 0 {
			t.Errorf("holds: got %d, want 0", n)
		}
		_, resp = e.auth(card, 1_000, nil)
		e.expect(resp, cardhost.Approved)
	})
}

// TestE2EConcurrent: 50 connections each send authorisations at once; all
// are approved, each is held once, and the sums match.
func TestE2EConcurrent(t *testing.T) {
	const conns, perConn, cards, amount = 50, 4, 10, 100
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		cs := make([]testCard, cards)
		for i := range cs {
			cs[i] = e.virtualCard(e.prog, 100_000)
		}
		msgs := make([][]*iso8583.Message, conns)
		for i := range msgs {
			for j := 0; j < perConn; j++ {
				msgs[i] = append(msgs[i], e.msg("100", cs[(i*perConn+j)%cards], amount, nil))
			}
		}
		clients := make([]*connection.Connection, conns)
		for i := range clients {
			clients[i] = e.dial()
		}
		want := actionCode(t, e.profile, cardhost.Approved)
		var wg sync.WaitGroup
		errs := make(chan error, conns*perConn)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, m := range msgs[i] {
					resp, err := clients[i].Send(m)
					if err != nil {
						errs <- err
						continue
					}
					if code, _ := resp.GetString(39); code != want {
						errs <- fmt.Errorf("DE39: got %s, want %s", code, want)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := e.count(`SELECT count(*) FROM holds`); n != conns*perConn {
			t.Errorf("holds: got %d, want %d", n, conns*perConn)
		}
		per := int64(conns * perConn / cards * amount)
		for _, c := range cs {
			e.expectBalance(c.AccountID, 100_000, per)
		}
		e.expectBalance(e.prog.PartnerAccountID, 1_000_000, conns*perConn*amount)
	})
}

// TestE2EDuplicatesInFlight sends every request several times at once on
// different connections, so that copies meet in one batch and in batches
// that commit one after the other: each request holds once, every copy
// gets the same answer, and the ledger stays consistent.
func TestE2EDuplicatesInFlight(t *testing.T) {
	const copies, conns = 4, 8
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		rich := []testCard{e.virtualCard(e.prog, 100_000), e.virtualCard(e.prog, 100_000), e.virtualCard(e.prog, 100_000)}
		poor := e.virtualCard(e.prog, 500)
		type req struct {
			stan   int
			card   testCard
			amount int64
		}
		var reqs []req
		for i := range 12 {
			reqs = append(reqs, req{int(e.stan.Add(1)), rich[i%len(rich)], 100})
		}
		for range 4 {
			reqs = append(reqs, req{int(e.stan.Add(1)), poor, 400}) // the first fits, the others decline
		}
		clients := make([]*connection.Connection, conns)
		for i := range clients {
			clients[i] = e.dial()
		}
		answers := make([][]*iso8583.Message, len(reqs))
		for i := range answers {
			answers[i] = make([]*iso8583.Message, copies)
		}
		var wg sync.WaitGroup
		for i, r := range reqs {
			for c := range copies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m := request(t, e.profile, "100", r.stan, r.card.PAN, r.amount, map[int]string{14: r.card.CardData.Expiry})
					resp, err := clients[(i*copies+c)%conns].Send(m)
					if err != nil {
						t.Errorf("request %d copy %d: %v", i, c, err)
						return
					}
					answers[i][c] = resp
				}()
			}
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		approved := actionCode(t, e.profile, cardhost.Approved)
		var holds int
		var held = map[int64]int64{}
		for i, as := range answers {
			for _, f := range []int{39, 38, 54} {
				for c := 1; c < copies; c++ {
					if a, b := get(t, as[0], f), get(t, as[c], f); a != b {
						t.Errorf("request %d DE%d: copy %d got %q, copy 0 %q", i, f, c, b, a)
					}
				}
			}
			if get(t, as[0], 39) == approved {
				holds++
				held[reqs[i].card.AccountID] += reqs[i].amount
			}
		}
		if held[poor.AccountID] != 400 {
			t.Errorf("poor card: %d held, want exactly one of its requests (400)", held[poor.AccountID])
		}
		if n := e.count(`SELECT count(*) FROM holds`); n != holds {
			t.Errorf("holds: got %d, want %d (one per approved request)", n, holds)
		}
		if n := e.count(`SELECT count(*) FROM auth_journal`); n != len(reqs) {
			t.Errorf("journal rows: got %d, want %d (one per request)", n, len(reqs))
		}
		for _, c := range append(rich, poor) {
			e.expectBalance(c.AccountID, e.account(c.AccountID).Balance, held[c.AccountID])
		}
		e.verify()
	})
}

// TestE2EBalanceInquiry: a balance inquiry is approved with DE54 from the
// account that funds the card (the user's balance, or the partner deposit)
// net of what the card's earlier authorisations hold, and holds nothing.
func TestE2EBalanceInquiry(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		inquire := func(card testCard) *iso8583.Message {
			t.Helper()
			return e.send(e.msg("100", card, 0, map[int]string{3: "300000"}))
		}
		card := e.virtualCard(e.prog, 10_000)
		_, first := e.auth(card, 2_500, nil)
		e.expect(first, cardhost.Approved)
		resp := inquire(card)
		e.expect(resp, cardhost.Approved)
		if _, avail, ok := e.de54(resp); !ok || avail != 7_500 {
			t.Errorf("user balance DE54: got %d (present %v), want 7500", avail, ok)
		}
		e.expectBalance(card.AccountID, 10_000, 2_500)

		deposit := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit}, 40_000)
		uid, acc := e.user(deposit, 0)
		dcard := e.virtualCardOn(e.host, uid, acc)
		resp = inquire(dcard)
		e.expect(resp, cardhost.Approved)
		if _, avail, ok := e.de54(resp); !ok || avail != 40_000 {
			t.Errorf("partner deposit DE54: got %d (present %v), want 40000", avail, ok)
		}
		if n := e.count(`SELECT count(*) FROM holds WHERE partner_account_id = $1`, deposit.PartnerAccountID); n != 0 {
			t.Errorf("holds on the deposit: %d, want 0", n)
		}
		e.verify()
	})
}

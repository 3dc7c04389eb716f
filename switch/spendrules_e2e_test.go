package authswitch

import (
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/antaca/antaca/cardhost"
)

// setRule sets a spend rule as an admin would (partner 0: any target).
func (e *e2e) setRule(r cardhost.SpendRule) cardhost.SpendRule {
	e.t.Helper()
	r.Active = true
	out, err := e.host.SetSpendRule(e.ctx, 0, r, "admin:e2e")
	if err != nil {
		e.t.Fatalf("set spend rule: %v", err)
	}
	return out
}

// withPOS sets DE22 of m to the profile's form of a contactless read
// (contactless true) or a chip read at an attended terminal.
func (e *e2e) withPOS(m *iso8583.Message, contactless bool) *iso8583.Message {
	e.t.Helper()
	v := "051"
	if contactless {
		v = "071"
	}
	if e.profile == ProfileISO2003 {
		rm := byte(1 << 5) // ICC
		if contactless {
			rm = 1 << 1
		}
		v = string([]byte{rm, 0, 0, 0, 0x08, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0})
	}
	if err := m.Field(22, v); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// Each spend rule kind declines through both profiles with the reason's
// code (specs/actioncodes.json), holding nothing, and only on what it
// applies to; a rule switched off stops declining.
func TestE2ESpendRules(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		ruled := e.virtualCard(e.prog, 100_00)
		other := e.virtualCard(e.prog, 100_00)

		// MCC blocked on the card: its gambling purchase is refused,
		// the other card's and its grocery purchase pass.
		mcc := e.setRule(cardhost.SpendRule{Scope: cardhost.ScopeCard, TargetID: ruled.Card.ID, Kind: cardhost.RuleMCC,
			Mode: cardhost.ModeBlock, Values: []string{"7995"}})
		_, resp := e.auth(ruled, 10_00, map[int]string{18: "7995"})
		e.expect(resp, cardhost.MCCNotPermitted)
		e.expectBalance(ruled.AccountID, 100_00, 0)
		_, resp = e.auth(other, 10_00, map[int]string{18: "7995"})
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(ruled, 10_00, map[int]string{18: "5411"})
		e.expect(resp, cardhost.Approved)

		// Switched off: a new version, and the purchase passes.
		off, err := e.host.SetSpendRule(e.ctx, 0, cardhost.SpendRule{ID: mcc.ID, Mode: cardhost.ModeBlock, Values: []string{"7995"}}, "admin:e2e")
		if err != nil || off.Active || off.Version != 2 {
			t.Fatalf("switch off: %+v %v", off, err)
		}
		_, resp = e.auth(ruled, 10_00, map[int]string{18: "7995"})
		e.expect(resp, cardhost.Approved)

		// Merchant country allowed on the balance: the test merchant is
		// in FR (DE43), so an allow list of DE refuses it.
		e.setRule(cardhost.SpendRule{Scope: cardhost.ScopeBalance, TargetID: ruled.AccountID, Kind: cardhost.RuleCountry,
			Mode: cardhost.ModeAllow, Values: []string{"DE"}})
		_, resp = e.auth(ruled, 10_00, nil)
		e.expect(resp, cardhost.CountryNotPermitted)
		_, resp = e.auth(other, 10_00, nil)
		e.expect(resp, cardhost.Approved)

		// Channels blocked on the program: contactless and ATM.
		e.setRule(cardhost.SpendRule{Scope: cardhost.ScopeProgram, TargetID: e.prog.ID, Kind: cardhost.RuleChannel,
			Mode: cardhost.ModeBlock, Values: []string{cardhost.ChannelContactless, cardhost.ChannelATM}})
		resp = e.send(e.withPOS(e.msg("100", other, 10_00, nil), true))
		e.expect(resp, cardhost.ChannelNotPermitted)
		resp = e.send(e.withPOS(e.msg("100", other, 10_00, nil), false))
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(other, 10_00, map[int]string{18: "6011"})
		e.expect(resp, cardhost.ChannelNotPermitted)
		e.expectBalance(other.AccountID, 100_00, 30_00)

		// The wire code is not permitted to cardholder.
		want := map[string]string{ProfileISO2003: "1019", ProfileISO87: "57"}[e.profile]
		if got := get(t, resp, 39); got != want {
			t.Errorf("DE39 %s, want %s", got, want)
		}
		var n int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM auth_journal WHERE reason = 'channel_not_permitted'`).Scan(&n); err != nil || n != 2 {
			t.Errorf("journal rows channel_not_permitted: %d %v, want 2", n, err)
		}
	})
}

// velocity sets a velocity rule as an admin would.
func (e *e2e) velocity(scope string, target int64, period string, maxAmount *int64, maxCount *int) cardhost.SpendRule {
	e.t.Helper()
	return e.setRule(cardhost.SpendRule{Scope: scope, TargetID: target, Kind: cardhost.RuleVelocity, Period: period,
		MaxAmount: maxAmount, MaxCount: maxCount})
}

func ptr[T any](v T) *T { return &v }

// Velocity limits decline through both profiles with the amount and
// count codes; a reversal and an expiry give their approval back.
func TestE2EVelocity(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		wire := func(resp *iso8583.Message, iso2003, iso87 string) {
			t.Helper()
			if got, want := get(t, resp, 39), map[string]string{ProfileISO2003: iso2003, ProfileISO87: iso87}[e.profile]; got != want {
				t.Errorf("DE39 %s, want %s", got, want)
			}
		}

		// Two approvals a day on the card.
		card := e.virtualCard(e.prog, 1_000_00)
		e.velocity(cardhost.ScopeCard, card.Card.ID, cardhost.PeriodDay, nil, ptr(2))
		first, resp := e.auth(card, 10_00, nil)
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(card, 10_00, nil)
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(card, 10_00, nil)
		e.expect(resp, cardhost.ExceedsCountLimit)
		wire(resp, "1023", "65")
		e.expectBalance(card.AccountID, 1_000_00, 20_00)
		// The first reversed: room for one more.
		e.expect(e.send(e.follow("400", first, card, 10_00, nil)), cardhost.Approved)
		_, resp = e.auth(card, 10_00, nil)
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(card, 10_00, nil)
		e.expect(resp, cardhost.ExceedsCountLimit)

		// 50.00 a week on the balance.
		other := e.virtualCard(e.prog, 1_000_00)
		e.velocity(cardhost.ScopeBalance, other.AccountID, cardhost.PeriodWeek, ptr(int64(50_00)), nil)
		_, resp = e.auth(other, 30_00, nil)
		e.expect(resp, cardhost.Approved)
		_, resp = e.auth(other, 30_00, nil)
		e.expect(resp, cardhost.ExceedsAmountLimit)
		wire(resp, "1021", "61")
		_, resp = e.auth(other, 20_00, nil)
		e.expect(resp, cardhost.Approved)
		// Its holds expire: the week's amount is free again.
		if _, err := e.pool.Exec(e.ctx, `UPDATE holds SET expires_at = now() - interval '1 second'
			WHERE status = 'open' AND user_account_id = $1`, other.AccountID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.led.ExpireHolds(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, resp = e.auth(other, 50_00, nil)
		e.expect(resp, cardhost.Approved)

		// 25.00 per transaction on a third card.
		third := e.virtualCard(e.prog, 1_000_00)
		e.velocity(cardhost.ScopeCard, third.Card.ID, cardhost.PeriodTransaction, ptr(int64(25_00)), nil)
		_, resp = e.auth(third, 25_01, nil)
		e.expect(resp, cardhost.ExceedsAmountLimit)
		_, resp = e.auth(third, 25_00, nil)
		e.expect(resp, cardhost.Approved)

		var charged, released int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FILTER (WHERE NOT released), count(*) FILTER (WHERE released) FROM spend_counter_holds`).Scan(&charged, &released); err != nil {
			t.Fatal(err)
		}
		if charged != 3 || released != 3 { // card: 3 approvals, 1 reversed; other: 3, 2 expired, 1 open
			t.Errorf("counter holds: %d charged, %d released; want 3 and 3", charged, released)
		}
	})
}

// Two switch instances, each with its own card host, on one database:
// parallel authorisations of one card never pass a count limit, nor a
// balance's amount limit.
func TestE2EVelocityTwoInstances(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		second := cardhost.NewHost(e.pool, e.led, e.keys, cardhost.Config{Logger: slog.New(slog.DiscardHandler), Remote: testDecider(t)})
		conns := []*connection.Connection{e.c, dial(t, e.serve(second, nil), e.profile)}

		card := e.virtualCard(e.prog, 1_000_00)
		e.velocity(cardhost.ScopeCard, card.Card.ID, cardhost.PeriodDay, nil, ptr(5))
		other := e.virtualCard(e.prog, 1_000_00)
		e.velocity(cardhost.ScopeBalance, other.AccountID, cardhost.PeriodMonth, ptr(int64(70_00)), nil)

		const n = 24
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[string]int{}
		for i := range n {
			for _, c := range []testCard{card, other} {
				m := e.msg("100", c, 10_00, nil)
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := conns[i%2].Send(m)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got[strconv.FormatInt(c.Card.ID, 10)+" "+get(t, resp, 39)]++
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		ok := actionCode(t, e.profile, cardhost.Approved)
		if a := got[strconv.FormatInt(card.Card.ID, 10)+" "+ok]; a != 5 {
			t.Errorf("count limit 5: %d approved (%v)", a, got)
		}
		if a := got[strconv.FormatInt(other.Card.ID, 10)+" "+ok]; a != 7 {
			t.Errorf("amount limit 70.00 of 10.00 each: %d approved (%v)", a, got)
		}
		e.expectBalance(card.AccountID, 1_000_00, 50_00)
		e.expectBalance(other.AccountID, 1_000_00, 70_00)
	})
}

package authswitch

import (
	"testing"

	"github.com/moov-io/iso8583"

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

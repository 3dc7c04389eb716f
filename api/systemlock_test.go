package api

import (
	"context"
	"testing"
)

// TestSystemLockNotForCardholder: a card the system locked with code 7
// (the last wrong CVC2 or expiry in a row) is not unlocked by the
// cardholder's session (403 SYSTEM_LOCK, nothing changes); the partner
// unlocks it.
func TestSystemLockNotForCardholder(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, prog, pc := e.onboard(adminTok, "Alpha", "455555", false)
	cust, bal := e.customerWithBalance(pc, prog, "locked-1")
	card := e.virtualCard(pc, cust, bal)
	tok := e.userToken(pc, cust)
	// The switch's lock, as recordCardChange writes it.
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE cards SET lock_code = 7, verify_tries = 5, version = version + 1 WHERE id = $1`, card.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO card_events (card_id, actor_kind, actor_id, action, lock_code, detail)
		VALUES ($1, 'system', 'switch', 'lock', 7, 'wrong CVC2 or expiry tries exceeded')`, card.ID); err != nil {
		t.Fatal(err)
	}
	before := e.stateOf()
	e.expectCode(e.do(e.client(nil), "POST", "/customers/me/cards/"+itoa(card.ID)+"/unlock", nil, bearerHdr(tok)), 403, CodeSystemLock)
	if after := e.stateOf(); after != before {
		t.Fatalf("the refused unlock changed state:\n%s\n%s", before, after)
	}
	e.expect(e.do(pc, "POST", "/secure/customers/"+itoa(cust)+"/cards/"+itoa(card.ID)+"/unlock", nil, nil), 200, nil)
}

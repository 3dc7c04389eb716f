package api

import (
	"context"
	"testing"
)

// TestCardLimitsAnswer429: past the card host's limits a partner's card
// requests get 429 with the limit's code (CARD_JOB_LIMIT for a user with
// DefaultJobsPerUser jobs pending, CARD_LIMIT once the user has its cards
// of the day) and no card or job is made.
func TestCardLimitsAnswer429(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, prog, pc := e.onboard(adminTok, "Limits", "433333", false)
	cust, bal := e.customerWithBalance(pc, prog, "limits-a")
	ctx := context.Background()
	for range 5 {
		if _, err := e.pool.Exec(ctx, `INSERT INTO card_jobs (account_id, actor_kind, actor_id) VALUES ($1, 'partner', 'p')`, bal); err != nil {
			t.Fatal(err)
		}
	}
	async := "/secure/customers/" + itoa(cust) + "/cards/virtual/async"
	r := e.jwe(pc, "POST", async, map[string]any{"balanceId": bal}, nil)
	if r.status != 429 || r.errCode() != CodeCardJobLimit {
		t.Fatalf("async card with 5 jobs pending: got %d %s, want 429 %s", r.status, r.body, CodeCardJobLimit)
	}
	// The 5 pending jobs count as cards of the day: 15 more cards, then 429.
	for range 15 {
		e.virtualCard(pc, cust, bal)
	}
	r = e.jwe(pc, "POST", "/secure/customers/"+itoa(cust)+"/cards/virtual", map[string]any{"balanceId": bal}, nil)
	if r.status != 429 || r.errCode() != CodeCardLimit {
		t.Fatalf("21st card of the day: got %d %s, want 429 %s", r.status, r.body, CodeCardLimit)
	}
	var cards, jobs int
	if err := e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM cards), (SELECT count(*) FROM card_jobs)`).Scan(&cards, &jobs); err != nil || cards != 15 || jobs != 5 {
		t.Fatalf("cards %d jobs %d (%v), want 15 and 5", cards, jobs, err)
	}
}

package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/sandbox"
	authswitch "github.com/antaca/antaca/switch"
)

// startSwitch runs the real switch (iso2003) over host on 127.0.0.1 and
// returns a simulator sending to it over TCP.
func startSwitch(t *testing.T, host *cardhost.Host) Simulator {
	t.Helper()
	return startSwitchOf(t, host, authswitch.ProfileISO2003)
}

// startSwitchOf is startSwitch for a profile.
func startSwitchOf(t *testing.T, host *cardhost.Host, profile string) *sandbox.Simulator {
	t.Helper()
	srv, err := authswitch.New(authswitch.Config{Profile: profile, ZoneKey: profile,
		Logger: slog.New(slog.DiscardHandler)}, host)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, authswitch.ErrServerClosed) {
			t.Errorf("switch: %v", err)
		}
	})
	sim, err := sandbox.New(host, sandbox.Config{Addr: ln.Addr().String(), Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

type simAnswer struct {
	ID             string              `json:"id"`
	MTI            string              `json:"mti"`
	ActionCode     string              `json:"actionCode"`
	Reason         string              `json:"reason"`
	Approved       bool                `json:"approved"`
	Waiting        string              `json:"waiting"`
	ExceptionID    int64               `json:"exceptionId"`
	Balance        balanceView         `json:"balance"`
	Authorizations []authorizationView `json:"authorizations"`
}

// TestSimulationThroughSwitch: on a sandbox program a partner simulates an
// authorisation of a locked card (declined with the lock's code, in the
// journal), then after unlocking one approved (a pending hold), its
// clearing (captured) and a refund; the balance history lists the
// authorisations with their holds. A non-sandbox program refuses
// simulations; over /admin only an Admin simulates; ledger verify is
// clean, and fails once a simulated posting sits outside a sandbox.
func TestSimulationThroughSwitch(t *testing.T) {
	e := newCardEnv(t)
	ctx := context.Background()
	adminTok := e.admin("root", RoleAdmin)
	mgrTok := e.admin("mgr", RoleManager)
	_, progID, pc := e.onboard(adminTok, "Sandboxed", "539005", false)
	if _, err := e.pool.Exec(ctx, `UPDATE programs SET sandbox = true WHERE id = $1`, progID); err != nil {
		t.Fatal(err)
	}
	prog, err := e.ch.Program(ctx, progID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ch.Ledger().Reload(ctx, prog.PartnerAccountID, 1_000_00, "fund"); err != nil {
		t.Fatal(err)
	}
	cust, bal := e.customerWithBalance(pc, progID, "s1")
	e.expect(e.do(pc, "POST", "/secure/customers/"+itoa(cust)+"/balances/"+itoa(bal)+"/reload",
		map[string]any{"amount": "100.00", "reference": "r1"}, nil), 200, nil)
	card := e.virtualCard(pc, cust, bal)
	base := "/secure/customers/" + itoa(cust) + "/cards/" + itoa(card.ID)

	e.expect(e.do(pc, "POST", base+"/lock", map[string]any{"reasonCode": 3}, nil), 200, nil)
	var a simAnswer
	e.expect(e.do(pc, "POST", base+"/simulate/authorization", map[string]any{"amount": "12.34", "merchant": "COFFEE BAR"}, nil), 200, &a)
	if a.ActionCode != "1000" || a.Reason != string(cardhost.PendingQuery) || a.Approved {
		t.Fatalf("locked card's simulation: %+v; want 1000 with the lock's reason", a)
	}
	var n int
	e.pool.QueryRow(ctx, `SELECT count(*) FROM auth_journal WHERE card_id = $1 AND reason = $2`, card.ID, a.Reason).Scan(&n)
	if n != 1 {
		t.Fatalf("journal rows of the declined simulation: %d, want 1", n)
	}
	e.expect(e.do(pc, "POST", base+"/unlock", nil, nil), 200, nil)
	e.expect(e.do(pc, "POST", base+"/simulate/authorization", map[string]any{"amount": "12.34"}, nil), 200, &a)
	if a.ActionCode != "0000" || !a.Approved || a.Balance.Available != "87.66" {
		t.Fatalf("approved simulation: %+v; want 0000 and 87.66 available", a)
	}
	if len(a.Authorizations) != 2 || a.Authorizations[0].Hold == nil || a.Authorizations[0].Hold.Status != "open" || !a.Authorizations[0].Simulation {
		t.Fatalf("authorisations after approval: %+v; want the pending hold first", a.Authorizations)
	}
	authID := a.ID
	e.expect(e.do(pc, "POST", base+"/simulate/clearing", map[string]any{"amount": "10.00", "original": authID}, nil), 200, &a)
	if a.ActionCode != "0000" || a.Balance.Balance != "90.00" || a.Balance.Available != "90.00" {
		t.Fatalf("clearing: %+v; want 0000 and 90.00", a)
	}
	// A refund naming its purchase is credited; a blind one credits nothing
	// under the default blind-refund limit (0) and waits for an Admin; a
	// named one is credited up to what the purchase captured less earlier
	// refunds.
	e.expect(e.do(pc, "POST", base+"/simulate/refund", map[string]any{"amount": "1.00", "original": authID}, nil), 200, &a)
	if a.ActionCode != "0000" || a.Balance.Balance != "91.00" || a.Waiting != "" {
		t.Fatalf("refund naming its purchase: %+v; want 0000, 91.00 and nothing waiting", a)
	}
	e.expect(e.do(pc, "POST", base+"/simulate/refund", map[string]any{"amount": "1.00"}, nil), 200, &a)
	if a.ActionCode != "0000" || a.Balance.Balance != "91.00" || a.Waiting != "1.00" || a.ExceptionID == 0 {
		t.Fatalf("blind refund: %+v; want 0000, 91.00 and 1.00 waiting in an exception", a)
	}
	e.expect(e.do(pc, "POST", base+"/simulate/refund", map[string]any{"amount": "20.00", "original": authID}, nil), 200, &a)
	if a.ActionCode != "0000" || a.Balance.Balance != "100.00" || a.Waiting != "11.00" {
		t.Fatalf("refund above the capture: %+v; want 9.00 credited (100.00) and 11.00 waiting", a)
	}
	e.expectCode(e.do(pc, "POST", base+"/simulate/refund", map[string]any{"amount": "1.00", "original": "000000000001"}, nil), 400, CodeValidation)
	// An authorisation reversed gives its hold back; an advice is recorded
	// without a funds check.
	e.expect(e.do(pc, "POST", base+"/simulate/authorization", map[string]any{"amount": "5.00"}, nil), 200, &a)
	if a.Balance.Available != "95.00" {
		t.Fatalf("second authorisation: available %s, want 95.00", a.Balance.Available)
	}
	e.expect(e.do(pc, "POST", base+"/simulate/reversal", map[string]any{"amount": "5.00", "original": a.ID}, nil), 200, &a)
	if a.ActionCode != "0000" || a.Balance.Available != "100.00" || a.Authorizations[0].Hold == nil || a.Authorizations[0].Hold.Status != "released" {
		t.Fatalf("reversal: %+v; want 0000, 100.00 available and the hold released", a)
	}
	// The iso87 profile: DE90 names the original of a clearing and of a
	// refund, which is credited up to the capture.
	sim87 := startSwitchOf(t, e.ch, authswitch.ProfileISO87)
	r87 := func(kind string, amount int64, original string) sandbox.Result {
		t.Helper()
		res, err := sim87.Simulate(ctx, sandbox.Request{Kind: kind, CardID: card.ID, Amount: amount, Original: original})
		if err != nil || res.ActionCode != "00" {
			t.Fatalf("iso87 %s: %+v %v; want 00", kind, res, err)
		}
		return res
	}
	auth87 := r87(sandbox.Authorization, 200, "")
	before := auth87.Balance.Balance
	if c := r87(sandbox.Clearing, 150, auth87.ID); c.Balance.Balance != before-150 || c.Authorizations[0].Captured == nil || *c.Authorizations[0].Captured != 150 {
		t.Fatalf("iso87 clearing: %+v; want 1.50 captured from the authorisation's hold", c)
	}
	if rf := r87(sandbox.Refund, 500, auth87.ID); rf.Balance.Balance != before || rf.Waiting != 350 {
		t.Fatalf("iso87 refund naming its purchase: balance %d waiting %d; want %d and 350", rf.Balance.Balance, rf.Waiting, before)
	}

	e.expect(e.do(pc, "POST", base+"/simulate/advice", map[string]any{"amount": "200.00"}, nil), 200, &a)
	if a.ActionCode != "0000" || a.MTI != "2120" {
		t.Fatalf("advice: %+v; want 0000 on a 2120", a)
	}
	var hist struct {
		Transactions   []map[string]any    `json:"transactions"`
		Authorizations []authorizationView `json:"authorizations"`
	}
	e.expect(e.do(pc, "GET", "/secure/customers/"+itoa(cust)+"/balances/"+itoa(bal)+"/transactions", nil, nil), 200, &hist)
	var captured *authorizationView
	for i, x := range hist.Authorizations {
		if x.Hold != nil && x.Hold.Status == "captured" {
			captured = &hist.Authorizations[i]
		}
	}
	if captured == nil || captured.Hold.Captured != "10.00" || captured.Merchant == "" || captured.ActionCode != "0000" || len(hist.Transactions) == 0 {
		t.Fatalf("history %+v: want the captured authorisation with merchant and action code next to the postings", hist)
	}

	e.expectCode(e.do(pc, "POST", base+"/simulate/clearing", map[string]any{"amount": "1.00"}, nil), 400, CodeValidation)
	if r := e.do(pc, "POST", base+"/simulate/teleport", map[string]any{"amount": "1.00"}, nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown kind: got %d, want 404", r.status)
	}
	adminPath := "/admin/cards/" + itoa(card.ID) + "/simulate/authorization"
	if r := e.do(e.client(nil), "POST", adminPath, map[string]any{"amount": "1.00"}, bearerHdr(mgrTok)); r.status != http.StatusForbidden {
		t.Fatalf("manager simulation: got %d, want 403", r.status)
	}
	e.expect(e.do(e.client(nil), "POST", adminPath, map[string]any{"amount": "1.00"}, bearerHdr(adminTok)), 200, &a)

	// Not a sandbox: refused before anything reaches the switch.
	_, prog2, pc2 := e.onboard(adminTok, "Live", "539006", false)
	cust2, bal2 := e.customerWithBalance(pc2, prog2, "l1")
	card2 := e.virtualCard(pc2, cust2, bal2)
	e.expectCode(e.do(pc2, "POST", "/secure/customers/"+itoa(cust2)+"/cards/"+itoa(card2.ID)+"/simulate/authorization",
		map[string]any{"amount": "1.00"}, nil), 409, CodeNotSandbox)

	led := e.ch.Ledger()
	vs, err := led.Verify(ctx)
	if err != nil || len(vs) != 0 {
		t.Fatalf("verify on sandbox simulations: %v %v, want clean", vs, err)
	}
	// The program stops being a sandbox: its simulated money is flagged.
	e.pool.Exec(ctx, `UPDATE programs SET sandbox = false WHERE id = $1`, progID)
	vs, err = led.VerifySimulations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{}
	for _, v := range vs {
		checks[v.Check] = true
	}
	for _, c := range []string{"simulation_journal_outside_sandbox", "simulation_hold_outside_sandbox", "simulation_posting_outside_sandbox"} {
		if !checks[c] {
			t.Errorf("verify outside a sandbox: no %s in %v", c, vs)
		}
	}
}

package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
)

// verifyClean fails the test when `antaca ledger verify` finds anything.
func (e *env) verifyClean() {
	e.t.Helper()
	vs, err := e.ch.Ledger().Verify(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range vs {
		e.t.Errorf("verify: %s", v)
	}
}

type approvalAnswer struct {
	PostingID int64        `json:"postingId"`
	Approval  approvalView `json:"approval"`
	Balance   balanceView  `json:"balance"`
}

// outcome is "what → status CODE" for the fault table.
func outcome(what string, r resp) string {
	if c := r.errCode(); c != "" {
		return fmt.Sprintf("%s → %d %s", what, r.status, c)
	}
	return fmt.Sprintf("%s → %d", what, r.status)
}

// TestAPIAbuseReloadByCardholderAndStaff: the attacks of issue 15 on the API.
// A cardholder reloading their own balance with 99,999,999.99 or
// 999,999,999,999,999.99, an Employee or a Manager reloading any balance:
// each is refused with a JSON 4xx and nothing moves.
func TestAPIAbuseReloadByCardholderAndStaff(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, prog, pc := e.onboard(adminTok, "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "c1")
	me, hdr := e.client(nil), bearerHdr(e.userToken(pc, cust))
	var lines []string
	for _, amount := range []string{"99999999.99", "999999999999999.99", "1.00"} {
		r := e.do(me, "POST", "/customers/me/balances/"+itoa(bal)+"/reload", map[string]string{"amount": amount, "reference": "mine"}, hdr)
		e.expectCode(r, 403, CodeReloadNotAllowed)
		lines = append(lines, outcome("cardholder reloads own balance "+amount, r))
	}
	var partnerBal struct{ Balances []balanceView }
	e.expect(e.do(pc, "GET", "/secure/partner-balances", nil, nil), 200, &partnerBal)
	body := map[string]string{"amount": "100.00", "reference": "BANK-1", "reason": "transfer"}
	for _, role := range []Role{RoleEmployee, RoleManager} {
		tok := e.admin("staff-"+string(role), role)
		r := e.do(e.client(nil), "POST", "/admin/customers/"+itoa(cust)+"/balances/"+itoa(bal)+"/reload", body, bearerHdr(tok))
		e.expectCode(r, 403, CodeForbidden)
		lines = append(lines, outcome(string(role)+" reloads a user balance", r))
		r = e.do(e.client(nil), "POST", "/admin/partner-balances/"+itoa(partnerBal.Balances[0].ID)+"/reload", body, bearerHdr(tok))
		e.expectCode(r, 403, CodeForbidden)
		lines = append(lines, outcome(string(role)+" reloads a partner credit balance", r))
	}
	var b balanceView
	e.expect(e.do(pc, "GET", "/secure/customers/"+itoa(cust)+"/balances/"+itoa(bal), nil, nil), 200, &b)
	if b.Balance != "0.00" {
		t.Fatalf("balance after refused reloads: %s, want 0.00", b.Balance)
	}
	e.verifyClean()
	faulttest.Record(t, faulttest.Row{Area: "api", Fault: "money from nowhere: a cardholder reloads their own balance, an Employee or a Manager reloads any balance",
		Behaviour: strings.Join(lines, "; ") + "; the balance stays 0.00", Verify: "clean"})
}

// TestPartnerReloadNeedsItsReference: the partner's reference is required
// and unique per partner; the same reference and body give the same
// answer, another body 409; another partner may use the same text.
func TestPartnerReloadNeedsItsReference(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, progA, pa := e.onboard(adminTok, "Alpha", "411111", false)
	_, progB, pb := e.onboard(adminTok, "Beta", "422222", false)
	custA, balA := e.customerWithBalance(pa, progA, "a1")
	custB, balB := e.customerWithBalance(pb, progB, "b1")
	pathA := "/secure/customers/" + itoa(custA) + "/balances/" + itoa(balA) + "/reload"
	pathB := "/secure/customers/" + itoa(custB) + "/balances/" + itoa(balB) + "/reload"
	e.expectCode(e.do(pa, "POST", pathA, map[string]string{"amount": "10.00"}, nil), 400, CodeValidation)
	var first, again, other approvalAnswer
	e.expect(e.do(pa, "POST", pathA, map[string]string{"amount": "10.00", "reference": "TX-1"}, nil), 200, &first)
	e.expect(e.do(pa, "POST", pathA, map[string]string{"amount": "10.00", "reference": "TX-1"}, nil), 200, &again)
	if again.PostingID != first.PostingID || again.Balance.Balance != "10.00" {
		t.Fatalf("repeat: %+v, want posting %d and 10.00", again, first.PostingID)
	}
	e.expectCode(e.do(pa, "POST", pathA, map[string]string{"amount": "11.00", "reference": "TX-1"}, nil), 409, CodeDuplicateRef)
	e.expect(e.do(pb, "POST", pathB, map[string]string{"amount": "10.00", "reference": "TX-1"}, nil), 200, &other)
	if other.PostingID == first.PostingID {
		t.Fatal("partner B's reference collided with partner A's")
	}
	// Bounds: 99,999,999.99 and 999,999,999,999,999.99 are above the
	// per-reload bound; the amount is checked, never overflowed.
	for _, amount := range []string{"99999999.99", "999999999999999.99", "9223372036854775807"} {
		e.expectCode(e.do(pa, "POST", pathA, map[string]string{"amount": amount, "reference": "big-" + amount}, nil), 422, CodeAmountTooLarge)
	}
	e.verifyClean()
}

// TestAdminReloadFourEyes: above the threshold an Admin reload waits,
// visible to every admin role, until another Admin approves it; the one
// who asked cannot; splitting a reload does not escape the threshold.
func TestAdminReloadFourEyes(t *testing.T) {
	e := newCardEnv(t)
	a1, a2, a3 := e.admin("alice", RoleAdmin), e.admin("bob", RoleAdmin), e.admin("carol", RoleAdmin)
	emp := e.admin("erin", RoleEmployee)
	_, prog, pc := e.onboard(a1, "Alpha", "411111", false)
	cust, bal1 := e.customerWithBalance(pc, prog, "c1")
	_, bal2 := e.customerWithBalance(pc, prog, "c2")
	_, bal3 := e.customerWithBalance(pc, prog, "c3")
	reload := func(tok string, cust, bal int64, amount, ref string) resp {
		return e.do(e.client(nil), "POST", "/admin/customers/"+itoa(cust)+"/balances/"+itoa(bal)+"/reload",
			map[string]string{"amount": amount, "reference": ref, "reason": "bank transfer received"}, bearerHdr(tok))
	}
	custOf := func(bal int64) int64 {
		var c int64
		e.pool.QueryRow(context.Background(), `SELECT user_id FROM accounts WHERE id = $1`, bal).Scan(&c)
		return c
	}
	var ans approvalAnswer
	e.expect(reload(a1, cust, bal1, "6000.00", "BANK-1"), 200, &ans)
	if ans.Approval.Status != ledger.ApprovalPosted || ans.Balance.Balance != "6000.00" {
		t.Fatalf("below the threshold: %+v", ans)
	}
	e.expectCode(e.do(e.client(nil), "POST", "/admin/customers/"+itoa(cust)+"/balances/"+itoa(bal1)+"/reload",
		map[string]string{"amount": "1.00", "reference": "BANK-1b"}, bearerHdr(a1)), 400, CodeValidation) // no reason
	r := reload(a1, cust, bal1, "5000.00", "BANK-2")
	e.expect(r, 202, &ans)
	pending := ans.Approval
	if pending.Status != ledger.ApprovalPending || r.header.Get("Location") != "/admin/approvals/"+itoa(pending.ID) {
		t.Fatalf("above the threshold: %+v %v", pending, r.header)
	}
	// Visible to an Employee in the exceptions queue.
	var q struct {
		PendingApprovals []approvalView `json:"pendingApprovals"`
	}
	e.expect(e.do(e.client(nil), "GET", "/admin/exceptions", nil, bearerHdr(emp)), 200, &q)
	if len(q.PendingApprovals) != 1 || q.PendingApprovals[0].ID != pending.ID || q.PendingApprovals[0].Amount != "5000.00" {
		t.Fatalf("pending approvals seen by an Employee: %+v", q.PendingApprovals)
	}
	approve := "/admin/approvals/" + itoa(pending.ID) + "/approve"
	e.expectCode(e.do(e.client(nil), "POST", approve, nil, bearerHdr(emp)), 403, CodeForbidden)
	e.expectCode(e.do(e.client(nil), "POST", approve, nil, bearerHdr(a1)), 403, CodeSameApprover)
	e.wantBalanceOf(emp, cust, bal1, "6000.00")
	e.expect(e.do(e.client(nil), "POST", approve, nil, bearerHdr(a2)), 200, &ans)
	if ans.Approval.Status != ledger.ApprovalApproved || ans.Approval.PostingID == 0 {
		t.Fatalf("approved: %+v", ans.Approval)
	}
	e.wantBalanceOf(emp, cust, bal1, "11000.00")
	e.expectCode(e.do(e.client(nil), "POST", approve, nil, bearerHdr(a3)), 409, CodeAlreadyDecided)

	// Splitting: carol's 5,000 + 5,000 on two balances reach the
	// threshold; one cent more on a third waits.
	e.expect(reload(a3, custOf(bal2), bal2, "5000.00", "BANK-3"), 200, nil)
	e.expect(reload(a3, custOf(bal3), bal3, "5000.00", "BANK-4"), 200, nil)
	e.expect(reload(a3, custOf(bal3), bal3, "0.01", "BANK-5"), 202, &ans)
	// The balance's sum: bob's first cent on balance 1 (11,000 today) waits.
	e.expect(reload(a2, cust, bal1, "0.01", "BANK-6"), 202, &ans)
	e.expect(e.do(e.client(nil), "POST", "/admin/approvals/"+itoa(ans.Approval.ID)+"/reject", nil, bearerHdr(a2)), 200, &ans)
	if ans.Approval.Status != ledger.ApprovalRejected {
		t.Fatalf("rejected: %+v", ans.Approval)
	}
	var list struct{ Approvals []approvalView }
	e.expect(e.do(e.client(nil), "GET", "/admin/approvals?status=all", nil, bearerHdr(emp)), 200, &list)
	if len(list.Approvals) != 6 {
		t.Fatalf("approvals: %d, want 6", len(list.Approvals))
	}
	e.verifyClean()
}

// wantBalanceOf checks a user balance as the admin of tok sees it.
func (e *env) wantBalanceOf(tok string, cust, bal int64, want string) {
	e.t.Helper()
	var b balanceView
	e.expect(e.do(e.client(nil), "GET", "/admin/customers/"+itoa(cust)+"/balances/"+itoa(bal), nil, bearerHdr(tok)), 200, &b)
	if b.Balance != want {
		e.t.Fatalf("balance %d: %s, want %s", bal, b.Balance, want)
	}
}

// TestAPIAbuseReloadFundingBound: the attack that drove the EUR funding account
// to the bigint minimum. Admin reloads of 999,999,999,999,999.99 are
// refused before posting; with the funding account at its bound (set up
// by a balanced posting, as years of reloads would leave it) the next
// reload is LIMIT_EXCEEDED, a balance at its bound too, and
// /admin/summary still answers.
func TestAPIAbuseReloadFundingBound(t *testing.T) {
	e := newCardEnv(t)
	a1, a2 := e.admin("alice", RoleAdmin), e.admin("bob", RoleAdmin)
	_, prog, pc := e.onboard(a1, "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "c1")
	var partnerBal struct{ Balances []balanceView }
	e.expect(e.do(pc, "GET", "/secure/partner-balances", nil, nil), 200, &partnerBal)
	credit := "/admin/partner-balances/" + itoa(partnerBal.Balances[0].ID) + "/reload"
	userPath := "/admin/customers/" + itoa(cust) + "/balances/" + itoa(bal) + "/reload"
	body := func(amount, ref string) map[string]string {
		return map[string]string{"amount": amount, "reference": ref, "reason": "attack"}
	}
	var lines []string
	for i, amount := range []string{"999999999999999.99", "99999999.99", "10000000.01"} {
		r := e.do(e.client(nil), "POST", credit, body(amount, "P-"+itoa(int64(i))), bearerHdr(a1))
		e.expectCode(r, 422, CodeAmountTooLarge)
		lines = append(lines, outcome("Admin reloads the partner credit with "+amount, r))
	}
	r := e.do(e.client(nil), "POST", userPath, body("999999999999999.99", "U-1"), bearerHdr(a1))
	e.expectCode(r, 422, CodeAmountTooLarge)
	lines = append(lines, outcome("Admin reloads a user balance with 999999999999999.99", r))

	// A user balance reaches its bound (1,000,000.00) through approved
	// reloads; one cent more is LIMIT_EXCEEDED, even when asked.
	for i := range 10 {
		var ans approvalAnswer
		r := e.do(e.client(nil), "POST", userPath, body("100000.00", "FILL-"+itoa(int64(i))), bearerHdr(a1))
		e.expect(r, 202, &ans)
		e.expect(e.do(e.client(nil), "POST", "/admin/approvals/"+itoa(ans.Approval.ID)+"/approve", nil, bearerHdr(a2)), 200, nil)
	}
	r = e.do(e.client(nil), "POST", userPath, body("0.01", "U-2"), bearerHdr(a1))
	e.expectCode(r, 422, CodeLimitExceeded)
	lines = append(lines, outcome("ten approved reloads of 100,000.00 then 0.01 more on one user balance", r))

	ctx := context.Background()
	funding, err := e.ch.Ledger().InternalAccount(ctx, ledger.KindFunding, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	settle, err := e.ch.Ledger().InternalAccount(ctx, ledger.KindSettlement, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	shift := ledger.MaxInternalBalance + funding.Balance - 500
	for _, q := range []string{
		`WITH p AS (INSERT INTO postings (kind, ref) VALUES ('capture', 'years-of-reloads') RETURNING id)
		 INSERT INTO entries (posting_id, account_id, currency, amount) SELECT id, $1::bigint, 'EUR', -$3::bigint FROM p UNION ALL SELECT id, $2::bigint, 'EUR', $3::bigint FROM p`,
		`UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN -$3::bigint ELSE $3::bigint END WHERE id IN ($1, $2)`,
	} {
		if _, err := e.pool.Exec(ctx, q, funding.ID, settle.ID, shift); err != nil {
			t.Fatal(err)
		}
	}
	r = e.do(e.client(nil), "POST", credit, body("5.01", "P-9"), bearerHdr(a1))
	e.expectCode(r, 422, CodeLimitExceeded)
	lines = append(lines, outcome("EUR funding account 5.00 above its bound, reload 5.01", r))
	r = e.do(e.client(nil), "POST", credit, body("5.00", "P-10"), bearerHdr(a1))
	e.expect(r, 200, nil)
	lines = append(lines, outcome("reload 5.00 (to the bound)", r))
	r = e.do(e.client(nil), "GET", "/admin/summary", nil, bearerHdr(a1))
	e.expect(r, 200, nil)
	lines = append(lines, outcome("/admin/summary", r))
	e.verifyClean()
	faulttest.Record(t, faulttest.Row{Area: "api", Fault: "huge reloads, and reloads driving the EUR funding account towards the bigint minimum",
		Behaviour: strings.Join(lines, "; ") + fmt.Sprintf("; funding bound -%d minor units, so no sum of balances overflows", ledger.MaxInternalBalance),
		Verify:    "clean"})
}

// TestExceptionsQueue: every admin role reads the queue (amounts, card
// masked, journal ids); only an Admin resolves; written off at once,
// recovered and a blind refund's release with a second Admin; the
// exceptions account stays at minus the open receivables and verify
// stays clean.
func TestExceptionsQueue(t *testing.T) {
	e := newCardEnv(t)
	a1, a2 := e.admin("alice", RoleAdmin), e.admin("bob", RoleAdmin)
	emp := e.admin("erin", RoleEmployee)
	_, prog, pc := e.onboard(a1, "Alpha", "411111", false)
	cust, bal := e.customerWithBalance(pc, prog, "c1")
	cd := e.virtualCard(pc, cust, bal)
	ctx := context.Background()
	settle, err := e.ch.Ledger().InternalAccount(ctx, ledger.KindSettlement, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	// The switch's part (h15sw): an over-capture's excess of 300.00 on
	// the exceptions receivable, and a blind refund of 70.00 waiting.
	var excAcc, overID, blindID, postingID int64
	for _, q := range []struct {
		sql  string
		args []any
		into *int64
	}{
		{`INSERT INTO accounts (kind, currency) VALUES ('exceptions', 'EUR') RETURNING id`, nil, &excAcc},
		{`INSERT INTO postings (kind, ref) VALUES ('capture', 'over-1') RETURNING id`, nil, &postingID},
		{`INSERT INTO entries (posting_id, account_id, currency, amount) VALUES ($1, $2, 'EUR', -30000), ($1, $3, 'EUR', 30000) RETURNING 0`, []any{&postingID, &excAcc, settle.ID}, nil},
		{`UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN -30000 ELSE 30000 END WHERE id IN ($1, $2) RETURNING 0`, []any{&excAcc, settle.ID}, nil},
		{`INSERT INTO exceptions (kind, currency, amount, receivable, card_id, account_id, program_id, posting_id, journal_id)
			VALUES ('over_capture', 'EUR', 30000, 30000, $1, $2, $3, $4, 77) RETURNING id`, []any{cd.ID, bal, prog, &postingID}, &overID},
		{`INSERT INTO exceptions (kind, currency, amount, card_id, account_id, program_id) VALUES ('blind_refund', 'EUR', 7000, $1, $2, $3) RETURNING id`, []any{cd.ID, bal, prog}, &blindID},
	} {
		args := make([]any, len(q.args))
		for i, a := range q.args {
			if p, ok := a.(*int64); ok {
				a = *p
			}
			args[i] = a
		}
		var dst int64
		if err := e.pool.QueryRow(ctx, q.sql, args...).Scan(&dst); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		if q.into != nil {
			*q.into = dst
		}
	}
	e.verifyClean()
	var list struct {
		Exceptions []exceptionView `json:"exceptions"`
	}
	e.expect(e.do(e.client(nil), "GET", "/admin/exceptions", nil, bearerHdr(emp)), 200, &list)
	if len(list.Exceptions) != 2 {
		t.Fatalf("exceptions: %+v, want 2", list.Exceptions)
	}
	over := list.Exceptions[1]
	if over.ID != overID || over.Amount != "300.00" || over.Receivable != "300.00" || over.Card != cd.PAN[:6]+"…"+cd.PAN[len(cd.PAN)-4:] ||
		over.PostingID != postingID || over.JournalID != 77 || over.BalanceID != bal {
		t.Fatalf("over-capture as listed: %+v", over)
	}
	resolve := func(tok string, id int64, resolution, ref string) resp {
		return e.do(e.client(nil), "POST", "/admin/exceptions/"+itoa(id)+"/resolve", map[string]string{"resolution": resolution, "reference": ref}, bearerHdr(tok))
	}
	e.expectCode(resolve(emp, overID, "written_off", ""), 403, CodeForbidden)
	e.expectCode(resolve(a1, blindID, "written_off", ""), 400, CodeValidation)
	var res struct {
		Exception exceptionView `json:"exception"`
		Approval  approvalView  `json:"approval"`
	}
	e.expect(resolve(a1, overID, "recovered", "BANK-REC-1"), 202, &res)
	e.expectCode(resolve(a1, overID, "recovered", "BANK-REC-2"), 409, CodeDuplicateRef)
	e.expectCode(e.do(e.client(nil), "POST", "/admin/approvals/"+itoa(res.Approval.ID)+"/approve", nil, bearerHdr(a1)), 403, CodeSameApprover)
	e.expect(e.do(e.client(nil), "POST", "/admin/approvals/"+itoa(res.Approval.ID)+"/approve", nil, bearerHdr(a2)), 200, nil)
	e.expect(resolve(a2, blindID, "released", ""), 202, &res)
	e.wantBalanceOf(emp, cust, bal, "0.00")
	e.expect(e.do(e.client(nil), "POST", "/admin/approvals/"+itoa(res.Approval.ID)+"/approve", nil, bearerHdr(a1)), 200, nil)
	e.wantBalanceOf(emp, cust, bal, "70.00")
	e.expect(e.do(e.client(nil), "GET", "/admin/exceptions?status=closed", nil, bearerHdr(emp)), 200, &list)
	if len(list.Exceptions) != 2 || list.Exceptions[0].Status != "released" || list.Exceptions[1].Status != "recovered" ||
		list.Exceptions[1].ApprovedBy == list.Exceptions[1].ResolvedBy || list.Exceptions[1].ResolutionPostingID == 0 {
		t.Fatalf("closed exceptions: %+v", list.Exceptions)
	}
	var excBal int64
	e.pool.QueryRow(ctx, `SELECT balance FROM accounts WHERE id = $1`, excAcc).Scan(&excBal)
	if excBal != 0 {
		t.Fatalf("exceptions account %d after every exception closed, want 0", excBal)
	}
	e.verifyClean()
}

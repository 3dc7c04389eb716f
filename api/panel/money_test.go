package panel_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/ledger"
)

// confirmAll makes the page's confirm dialogs answer yes.
var confirmAll = eval("window.confirm=function(){return true}")

// balanceOf is a ledger balance in minor units.
func (e *env) balanceOf(id int64) int64 {
	e.t.Helper()
	a, err := e.host.Account(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Balance
}

// TestPanelFourEyesReload: an Admin's reload above the four-eyes threshold
// made in the panel waits and moves no money; the Admin who asked is not
// offered Approve and a forged approve is refused SAME_APPROVER; an
// Employee sees the request read only and a forged approve is 403; a
// second Admin approves it in the panel, the balance changes and the
// approval shows as approved and posted.
func TestPanelFourEyesReload(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srv.CreateAdmin(e.ctx, "admin2", password, api.RoleAdmin, 0); err != nil {
		t.Fatal(err)
	}
	before := e.balanceOf(e.balance)
	actx := tab(t)
	e.signIn(actx, "admin")
	e.open(actx, fmt.Sprintf("/panel/customers/%d", e.user.ID))
	// 10,500.00 EUR: above the default 10,000 of a user balance.
	if err := chromedp.Do(actx, clearDone(),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#amount%d", e.balance)), "10500.00"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#ref%d", e.balance)), "BANK-77"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#refreason%d", e.balance)), "wire from the partner"),
		chromedp.Submit(chromedp.CSS(fmt.Sprintf("#refreason%d", e.balance))),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	if got := text(t, actx, "p.done"); !strings.Contains(got, "waiting for a second Admin") {
		t.Errorf("after the reload: %q, want it waiting for a second Admin", got)
	}
	if got := e.balanceOf(e.balance); got != before {
		t.Fatalf("a pending reload moved money: balance %d, was %d", got, before)
	}
	pending, err := e.host.Approvals(e.ctx, ledger.ApprovalPending)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending approvals: %+v, %v; want the reload", pending, err)
	}
	ap := pending[0]
	row := fmt.Sprintf(`#approvals tr[data-approval="%d"]`, ap.ID)

	// Admin A: the request with its requester, amount, reason and
	// reference; Reject but no Approve; a forged approve is refused.
	e.open(actx, "/panel/approvals")
	if !exists(t, actx, row) {
		t.Fatalf("approvals page: no row of approval %d", ap.ID)
	}
	got := text(t, actx, row)
	for _, want := range []string{"admin (admin:", "10500.00 EUR", "wire from the partner", "BANK-77", "pending", "another Admin approves"} {
		if !strings.Contains(got, want) {
			t.Errorf("approval row %q lacks %q", got, want)
		}
	}
	if exists(t, actx, row+" button.approve") || !exists(t, actx, row+" button.reject") {
		t.Errorf("the requesting Admin: want Reject and no Approve")
	}
	if st := submitForm(t, actx, fmt.Sprintf("/panel/approvals/%d/approve", ap.ID), nil, true); st != http.StatusForbidden {
		t.Errorf("the requesting Admin's approve: got %d, want 403", st)
	}
	if got := text(t, actx, "p.error"); !strings.Contains(got, "SAME_APPROVER") || !strings.Contains(got, "Nothing was posted") {
		t.Errorf("the requesting Admin's approve: page %q, want SAME_APPROVER", got)
	}

	// An Employee: the queue without actions; a forged approve is 403.
	ectx := tab(t)
	e.signIn(ectx, "employee")
	e.open(ectx, "/panel/approvals")
	if got := text(t, ectx, row); !strings.Contains(got, "10500.00 EUR") {
		t.Errorf("employee's approvals: row %q", got)
	}
	if n := count(t, ectx, "#approvals form"); n != 0 {
		t.Errorf("employee's approvals: %d forms, want none", n)
	}
	if st := submitForm(t, ectx, fmt.Sprintf("/panel/approvals/%d/approve", ap.ID), nil, true); st != http.StatusForbidden {
		t.Errorf("employee approve: got %d, want 403", st)
	}
	if a, _ := e.host.Approvals(e.ctx, ledger.ApprovalPending); len(a) != 1 || e.balanceOf(e.balance) != before {
		t.Fatalf("refused approvals changed something: pending %d, balance %d (was %d)", len(a), e.balanceOf(e.balance), before)
	}

	// Admin B approves in the panel: the money moves once.
	bctx := tab(t)
	e.signIn(bctx, "admin2")
	e.open(bctx, "/panel/approvals")
	if err := chromedp.Do(bctx, clearDone(), confirmAll,
		chromedp.Click(chromedp.CSS(row+" button.approve")), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if got, want := e.balanceOf(e.balance), before+1_050_000; got != want {
		t.Errorf("after approval: balance %d, want %d", got, want)
	}
	done, err := e.host.Approvals(e.ctx, ledger.ApprovalApproved)
	if err != nil || len(done) != 1 || done[0].PostingID == 0 {
		t.Fatalf("approved: %+v, %v", done, err)
	}
	got = text(t, bctx, row)
	for _, want := range []string{"approved", fmt.Sprintf("posted (posting %d)", done[0].PostingID), "by admin2 (admin:"} {
		if !strings.Contains(got, want) {
			t.Errorf("approved row %q lacks %q", got, want)
		}
	}
	if exists(t, bctx, row+" form") {
		t.Errorf("a decided approval still offers actions")
	}
}

// overCapture authorises 10.00 on the env's card through the switch and
// clears it at final, opening an over_capture exception linked to the card
// and the journal row; it returns the exception.
func (e *env) overCapture(final int64, ref string) ledger.Exception {
	e.t.Helper()
	if code := e.authorise(1000); code != "00" {
		e.t.Fatalf("authorisation: DE39 %s", code)
	}
	var holdID, journalID int64
	if err := e.pool.QueryRow(e.ctx, `SELECT (SELECT max(id) FROM holds), (SELECT max(id) FROM auth_journal)`).Scan(&holdID, &journalID); err != nil {
		e.t.Fatal(err)
	}
	var c ledger.Cleared
	err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		c, err = e.led.ClearTx(e.ctx, tx, ledger.Clearing{HoldID: holdID, Final: final, Ref: ref, CardID: e.card.ID, ProgramID: e.prog.ID, JournalID: journalID})
		return err
	})
	if err != nil || c.Exception.ID == 0 {
		e.t.Fatalf("over-capture: %+v, %v", c, err)
	}
	return c.Exception
}

// TestPanelResolveException: the exceptions page lists the queue of the
// API (kind, status, amounts, masked card, links to the card and the
// journal row); a Manager sees it without actions and a forged resolve is
// 403; an Admin's recovery needs a bank reference and then waits for a
// second Admin, who approves it on the approvals page; an Admin writes one
// off in the panel, it leaves the open list; ledger verify stays clean.
func TestPanelResolveException(t *testing.T) {
	e := newEnv(t)
	x := e.overCapture(5000, "clr-1")
	y := e.overCapture(2500, "clr-2")
	row := func(id int64) string { return fmt.Sprintf(`#exceptions tr[data-exception="%d"]`, id) }

	mctx := tab(t)
	e.signIn(mctx, "manager")
	e.open(mctx, "/panel/exceptions")
	if !exists(t, mctx, row(x.ID)) {
		t.Fatalf("exceptions page: no row of exception %d", x.ID)
	}
	got := text(t, mctx, row(x.ID))
	masked := e.card.PANFirst6 + "…" + e.card.PANLast4
	for _, want := range []string{"over_capture", "open", "40.00 EUR", masked} {
		if !strings.Contains(got, want) {
			t.Errorf("exception row %q lacks %q", got, want)
		}
	}
	if !exists(t, mctx, row(x.ID)+fmt.Sprintf(` a[href="/panel/cards/%d"]`, e.card.ID)) ||
		!exists(t, mctx, row(x.ID)+fmt.Sprintf(` a[href="/panel/live?journal=%d"]`, x.JournalID)) {
		t.Errorf("exception row: no link to the card or to journal row %d", x.JournalID)
	}
	if n := count(t, mctx, "#exceptions form"); n != 0 {
		t.Errorf("manager's exceptions: %d forms, want none", n)
	}
	if st := submitForm(t, mctx, fmt.Sprintf("/panel/exceptions/%d/resolve", x.ID), map[string]string{"resolution": "written_off"}, true); st != http.StatusForbidden {
		t.Errorf("manager resolve: got %d, want 403", st)
	}
	if got, _ := e.led.Exception(e.ctx, x.ID); got.Status != "open" {
		t.Fatalf("a refused resolve changed the exception: %s", got.Status)
	}
	// The journal link shows that authorisation.
	e.open(mctx, fmt.Sprintf("/panel/live?journal=%d", x.JournalID))
	if n, got := count(t, mctx, "#liverows tr"), text(t, mctx, "#liverows"); n != 1 || !strings.Contains(got, "10.00 EUR") {
		t.Errorf("journal row %d: %d rows %q, want the one authorisation", x.JournalID, n, got)
	}

	actx := tab(t)
	e.signIn(actx, "admin")
	e.open(actx, "/panel/exceptions")
	// Recovered without the bank's reference: refused; with it: waits.
	if err := chromedp.Do(actx, confirmAll, chromedp.SetValue(chromedp.CSS(fmt.Sprintf("#res%d", y.ID)), "recovered"),
		chromedp.Click(chromedp.CSS(row(y.ID)+" button")), chromedp.WaitVisible(chromedp.CSS("p.error"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, actx, "p.error"); !strings.Contains(got, "bank's reference") {
		t.Errorf("recovery without reference: %q", got)
	}
	e.open(actx, "/panel/exceptions")
	if err := chromedp.Do(actx, clearDone(), confirmAll, chromedp.SetValue(chromedp.CSS(fmt.Sprintf("#res%d", y.ID)), "recovered"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#ref%d", y.ID)), "BANK-RCV-9"),
		chromedp.Click(chromedp.CSS(row(y.ID)+" button")), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, actx, "p.done"); !strings.Contains(got, "waiting for a second Admin") {
		t.Errorf("after asking a recovery: %q", got)
	}
	e.open(actx, "/panel/exceptions")
	if got := text(t, actx, row(y.ID)); !strings.Contains(got, "Waiting for a second Admin") || exists(t, actx, row(y.ID)+" form") {
		t.Errorf("pending recovery row %q: want the wait shown and no form", got)
	}

	// Written off at once: it leaves the open list.
	if err := chromedp.Do(actx, clearDone(), confirmAll, chromedp.SetValue(chromedp.CSS(fmt.Sprintf("#res%d", x.ID)), "written_off"),
		chromedp.Click(chromedp.CSS(row(x.ID)+" button")), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if exists(t, actx, row(x.ID)) || !exists(t, actx, row(y.ID)) {
		t.Errorf("open list after the write-off: want only exception %d", y.ID)
	}
	if got, err := e.led.Exception(e.ctx, x.ID); err != nil || got.Status != ledger.ResolveWrittenOff || got.ResolvedBy == "" {
		t.Errorf("exception after the write-off: %+v, %v", got, err)
	}
	e.open(actx, "/panel/exceptions?status=closed")
	if got := text(t, actx, row(x.ID)); !strings.Contains(got, "written_off") {
		t.Errorf("closed list: %q", got)
	}

	// A second Admin approves the recovery on the approvals page.
	if _, err := e.srv.CreateAdmin(e.ctx, "admin2", password, api.RoleAdmin, 0); err != nil {
		t.Fatal(err)
	}
	ycur, err := e.led.Exception(e.ctx, y.ID)
	if err != nil || ycur.PendingApprovalID == 0 {
		t.Fatalf("recovery: %+v, %v; want a pending approval", ycur, err)
	}
	bctx := tab(t)
	e.signIn(bctx, "admin2")
	e.open(bctx, "/panel/approvals")
	arow := fmt.Sprintf(`#approvals tr[data-approval="%d"]`, ycur.PendingApprovalID)
	if !exists(t, bctx, arow) {
		t.Fatalf("approvals page: no row of approval %d", ycur.PendingApprovalID)
	}
	if got := text(t, bctx, arow); !strings.Contains(got, fmt.Sprintf("exception #%d as recovered", y.ID)) || !strings.Contains(got, "BANK-RCV-9") || !strings.Contains(got, "15.00 EUR") {
		t.Errorf("recovery approval row: %q", got)
	}
	if err := chromedp.Do(bctx, clearDone(), confirmAll,
		chromedp.Click(chromedp.CSS(arow+" button.approve")), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if got, err := e.led.Exception(e.ctx, y.ID); err != nil || got.Status != ledger.ResolveRecovered || !strings.HasPrefix(got.ApprovedBy, "admin:") || got.ApprovedBy == got.ResolvedBy {
		t.Errorf("exception after the approved recovery: %+v, %v", got, err)
	}
	vs, err := e.led.Verify(context.WithoutCancel(e.ctx))
	if err != nil || len(vs) != 0 {
		t.Errorf("ledger verify: %v, %v", vs, err)
	}
}

package ledger_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/antaca/antaca/ledger"
)

// violations runs Verify and counts violations by check, with the posting
// ids each named.
func (e *env) violations() (map[string]int, map[int64]bool) {
	e.t.Helper()
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	got, postings := map[string]int{}, map[int64]bool{}
	for _, v := range vs {
		e.t.Logf("violation: %s", v)
		got[v.Check]++
		postings[v.PostingID] = true
	}
	return got, postings
}

// TestVerifyFailsOnUnsourcedPosting: money moved into a user balance by
// hand (a balanced posting with no source, or with a source nobody may use)
// makes verify fail with the posting's id; reloads through the ledger keep
// it clean.
func TestVerifyFailsOnUnsourcedPosting(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	e.credit(p, "EUR", 1_000_00, nil)
	u := e.user(p, "EUR", 100_00)
	if _, err := e.l.ReloadFrom(e.ctx, u.ID, 5_00, "partner:1:wire-7", ledger.Source{Kind: ledger.SourcePartnerReload, Actor: "partner:1", Reference: "wire-7"}); err != nil {
		t.Fatal(err)
	}
	e.clean()
	funding := e.internal(ledger.KindFunding, "EUR")

	for _, kind := range []string{"reload", "manual"} {
		var id int64
		err := e.pool.QueryRow(e.ctx, `INSERT INTO postings (kind, ref) VALUES ($1, $2) RETURNING id`, kind, "by-hand-"+kind).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(e.ctx, `INSERT INTO entries (posting_id, account_id, currency, amount) VALUES ($1, $2, 'EUR', 1000000), ($1, $3, 'EUR', -1000000)`, id, u.ID, funding.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(e.ctx, `UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN 1000000 ELSE -1000000 END WHERE id IN ($1, $2)`, u.ID, funding.ID); err != nil {
			t.Fatal(err)
		}
		got, postings := e.violations()
		if got["posting_unsourced"] == 0 || !postings[id] {
			t.Errorf("kind %s: verify found %v, want posting_unsourced naming posting %d", kind, got, id)
		}
		if len(got) != 1 {
			t.Errorf("kind %s: verify found %v, want posting_unsourced alone", kind, got)
		}
	}
}

// TestReloadBounds: an amount above its bound is ErrAmountTooLarge, a
// balance that would pass its bound ErrLimitExceeded, before anything is
// posted; the funding account never passes -MaxInternalBalance, so no sum
// overflows.
func TestReloadBounds(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	u := e.user(p, "EUR", 0)
	for _, tc := range []struct {
		amount int64
		want   error
	}{
		{99_999_999_99, ledger.ErrAmountTooLarge},          // 99,999,999.99 > 100,000.00 per reload
		{99_999_999_999_999_999, ledger.ErrAmountTooLarge}, // 999,999,999,999,999.99 > MaxAmount
		{ledger.MaxAmount + 1, ledger.ErrAmountTooLarge},   // just above the system bound
		{100_000_00, nil}, // the default bound itself
	} {
		ref := fmt.Sprintf("partner:1:%d", tc.amount)
		_, err := e.l.ReloadFrom(e.ctx, u.ID, tc.amount, ref, ledger.Source{Kind: ledger.SourcePartnerReload, Actor: "partner:1", Reference: ref})
		if !errors.Is(err, tc.want) || tc.want != nil && !errors.Is(err, ledger.ErrInvalidAmount) {
			t.Errorf("reload %d: got %v, want %v", tc.amount, err, tc.want)
		}
	}
	// Up to 1,000,000.00 on a user balance (the operator's seed is not
	// held to the per-reload bound, only to MaxAmount), then
	// LIMIT_EXCEEDED.
	if _, err := e.l.Reload(e.ctx, u.ID, ledger.MaxAmount+1, ""); !errors.Is(err, ledger.ErrAmountTooLarge) {
		t.Fatalf("seed above MaxAmount: got %v, want ErrAmountTooLarge", err)
	}
	if _, err := e.l.Reload(e.ctx, u.ID, 900_000_00, "fill"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Reload(e.ctx, u.ID, 1, ""); !errors.Is(err, ledger.ErrLimitExceeded) {
		t.Fatalf("reload above the balance bound: got %v, want ErrLimitExceeded", err)
	}
	e.want(u.ID, 1_000_000_00, 0)

	// The funding account near its bound (a balanced posting from
	// settlement, as years of reloads would leave it): the next reload is
	// refused, the summary still answers, verify stays clean.
	funding := e.internal(ledger.KindFunding, "EUR")
	settle := e.internal(ledger.KindSettlement, "EUR")
	shift := ledger.MaxInternalBalance - 50_000_00 + funding.Balance
	var id int64
	if err := e.pool.QueryRow(e.ctx, `INSERT INTO postings (kind, ref) VALUES ('capture', 'years') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO entries (posting_id, account_id, currency, amount) VALUES ($1, $2, 'EUR', -$4::bigint), ($1, $3, 'EUR', $4::bigint)`, id, funding.ID, settle.ID, shift); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN -$3::bigint ELSE $3::bigint END WHERE id IN ($1, $2)`, funding.ID, settle.ID, shift); err != nil {
		t.Fatal(err)
	}
	e.clean()
	u2 := e.user(p, "EUR", 0)
	if _, err := e.l.Reload(e.ctx, u2.ID, 50_000_01, ""); !errors.Is(err, ledger.ErrLimitExceeded) || errors.Is(err, ledger.ErrDatabase) {
		t.Fatalf("reload past the funding bound: got %v, want ErrLimitExceeded", err)
	}
	if _, err := e.l.Summary(e.ctx); err != nil {
		t.Fatalf("summary with funding at its bound: %v", err)
	}
	e.clean()
}

// TestAdminReloadFourEyes: below the threshold an Admin reload posts; above
// it (the Admin's or the balance's rolling sum, pending included) it waits;
// the Admin who asked cannot approve it; another can, once; splitting does
// not escape the threshold.
func TestAdminReloadFourEyes(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	u := e.user(p, "EUR", 0)
	u2 := e.user(p, "EUR", 0)

	a, err := e.l.AdminReload(e.ctx, u.ID, 6_000_00, "admin:1", "bank transfer", "BANK-1")
	if err != nil || a.Status != ledger.ApprovalPosted || a.PostingID == 0 {
		t.Fatalf("first reload: %+v %v, want posted", a, err)
	}
	// 6,000 + 4,000 = 10,000.00: at the threshold, still one pair of eyes.
	if a, err = e.l.AdminReload(e.ctx, u2.ID, 4_000_00, "admin:1", "bank transfer", "BANK-2"); err != nil || a.Status != ledger.ApprovalPosted {
		t.Fatalf("second reload: %+v %v, want posted", a, err)
	}
	// The Admin's sum would pass 10,000.00 (another balance): waits.
	split, err := e.l.AdminReload(e.ctx, u2.ID, 1, "admin:1", "bank transfer", "BANK-3")
	if err != nil || split.Status != ledger.ApprovalPending || split.PostingID != 0 {
		t.Fatalf("split reload: %+v %v, want pending", split, err)
	}
	// Another Admin on the first balance: the balance's sum (6,000) plus
	// 4,000.01 passes it too.
	big, err := e.l.AdminReload(e.ctx, u.ID, 4_000_01, "admin:2", "bank transfer", "BANK-4")
	if err != nil || big.Status != ledger.ApprovalPending {
		t.Fatalf("balance-sum reload: %+v %v, want pending", big, err)
	}
	e.want(u.ID, 6_000_00, 0)
	// Same reference, same request: the same answer; other amount: 409.
	if again, err := e.l.AdminReload(e.ctx, u.ID, 4_000_01, "admin:2", "bank transfer", "BANK-4"); err != nil || again.ID != big.ID {
		t.Fatalf("repeat: %+v %v, want approval %d", again, err, big.ID)
	}
	if _, err := e.l.AdminReload(e.ctx, u.ID, 5, "admin:2", "bank transfer", "BANK-4"); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Fatalf("reference reused for another amount: %v", err)
	}
	if _, err := e.l.Decide(e.ctx, big.ID, "admin:2", true); !errors.Is(err, ledger.ErrSameApprover) {
		t.Fatalf("self-approval: %v, want ErrSameApprover", err)
	}
	ok, err := e.l.Decide(e.ctx, big.ID, "admin:1", true)
	if err != nil || ok.Status != ledger.ApprovalApproved || ok.PostingID == 0 || ok.DecidedBy != "admin:1" {
		t.Fatalf("approval: %+v %v", ok, err)
	}
	if _, err := e.l.Decide(e.ctx, big.ID, "admin:3", true); !errors.Is(err, ledger.ErrDecided) {
		t.Fatalf("second approval: %v, want ErrDecided", err)
	}
	if r, err := e.l.Decide(e.ctx, split.ID, "admin:1", false); err != nil || r.Status != ledger.ApprovalRejected {
		t.Fatalf("withdraw: %+v %v", r, err)
	}
	e.want(u.ID, 10_000_01, 0)
	e.want(u2.ID, 4_000_00, 0)
	e.clean()

	// An approval forged by SQL with the same Admin on both sides fails
	// verify.
	if _, err := e.pool.Exec(e.ctx, `ALTER TABLE approvals DROP CONSTRAINT approvals_check3`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE approvals SET decided_by = requested_by WHERE id = $1`, big.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.violations(); got["approval_same_admin"] != 1 {
		t.Fatalf("verify found %v, want approval_same_admin", got)
	}
}

// TestExceptionResolutions: every resolution keeps the exceptions account
// at minus the receivable of the open exceptions; recovered and released
// need a second Admin.
func TestExceptionResolutions(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	u := e.user(p, "EUR", 0)
	open := func(kind string, amount, receivable int64) int64 {
		t.Helper()
		var id int64
		err := e.pool.QueryRow(e.ctx, `INSERT INTO exceptions (kind, currency, amount, receivable, account_id) VALUES ($1, 'EUR', $2, $3, $4) RETURNING id`,
			kind, amount, receivable, u.ID).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		if receivable > 0 {
			exceptionsReceivable(t, e, receivable)
		}
		return id
	}
	wantExceptions := func(balance int64) {
		t.Helper()
		var got, open int64
		e.pool.QueryRow(e.ctx, `SELECT coalesce((SELECT balance FROM accounts WHERE kind = 'exceptions' AND currency = 'EUR'), 0),
			coalesce((SELECT sum(receivable) FROM exceptions WHERE status = 'open' AND currency = 'EUR'), 0)`).Scan(&got, &open)
		if got != balance || got != -open {
			t.Fatalf("exceptions account %d, open receivable %d, want %d", got, open, balance)
		}
	}
	over := open("over_capture", 300_00, 300_00)
	stand := open("standin_overdraft", 200_00, 200_00)
	lost := open("expired_hold_capture", 50_00, 50_00)
	blind := open("blind_refund", 70_00, 0)
	wantExceptions(-550_00)

	if _, _, err := e.l.ResolveException(e.ctx, blind, ledger.ResolveWrittenOff, "admin:1", ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("write off a blind refund: %v, want ErrInvalid", err)
	}
	if x, _, err := e.l.ResolveException(e.ctx, lost, ledger.ResolveWrittenOff, "admin:1", ""); err != nil || x.Status != "written_off" {
		t.Fatalf("write off: %+v %v", x, err)
	}
	wantExceptions(-500_00)
	if x, _, err := e.l.ResolveException(e.ctx, stand, ledger.ResolveChargedBack, "admin:1", "CB-1"); err != nil || x.Status != "charged_back" {
		t.Fatalf("charge back: %+v %v", x, err)
	}
	wantExceptions(-300_00)
	x, ap, err := e.l.ResolveException(e.ctx, over, ledger.ResolveRecovered, "admin:1", "BANK-9")
	if err != nil || x.Status != "open" || ap.Status != ledger.ApprovalPending || x.PendingApprovalID != ap.ID {
		t.Fatalf("recover: %+v %+v %v, want pending", x, ap, err)
	}
	if _, err := e.l.Decide(e.ctx, ap.ID, "admin:1", true); !errors.Is(err, ledger.ErrSameApprover) {
		t.Fatalf("self-approved recovery: %v", err)
	}
	if _, err := e.l.Decide(e.ctx, ap.ID, "admin:2", true); err != nil {
		t.Fatal(err)
	}
	wantExceptions(0)
	_, rel, err := e.l.ResolveException(e.ctx, blind, ledger.ResolveReleased, "admin:2", "")
	if err != nil || rel.Status != ledger.ApprovalPending {
		t.Fatalf("release: %+v %v", rel, err)
	}
	e.want(u.ID, 0, 0)
	if _, err := e.l.Decide(e.ctx, rel.ID, "admin:1", true); err != nil {
		t.Fatal(err)
	}
	e.want(u.ID, 70_00, 0)
	xs, err := e.l.Exceptions(e.ctx, "open", 0)
	if err != nil || len(xs) != 0 {
		t.Fatalf("open exceptions: %+v %v, want none", xs, err)
	}
	done, err := e.l.Exception(e.ctx, blind)
	if err != nil || done.Status != "released" || done.ResolvedBy != "admin:2" || done.ApprovedBy != "admin:1" || done.ResolutionPostingID == 0 {
		t.Fatalf("released exception: %+v %v", done, err)
	}
	e.clean()
}

// exceptionsReceivable posts amount from settlement to the exceptions
// receivable, as the switch does for an excess it acknowledged.
func exceptionsReceivable(t *testing.T, e *env, amount int64) {
	t.Helper()
	for _, q := range []string{
		`INSERT INTO accounts (kind, currency) VALUES ('exceptions', 'EUR') ON CONFLICT DO NOTHING`,
		`INSERT INTO accounts (kind, currency) VALUES ('settlement', 'EUR') ON CONFLICT DO NOTHING`,
	} {
		if _, err := e.pool.Exec(e.ctx, q); err != nil && !strings.Contains(err.Error(), "duplicate") {
			t.Fatal(err)
		}
	}
	const post = `WITH p AS (INSERT INTO postings (kind, ref) VALUES ('capture', 'excess-' || $1::bigint::text || '-' || clock_timestamp()) RETURNING id),
		x AS (SELECT id, kind FROM accounts WHERE kind IN ('exceptions', 'settlement') AND currency = 'EUR'),
		en AS (INSERT INTO entries (posting_id, account_id, currency, amount)
			SELECT p.id, x.id, 'EUR', CASE x.kind WHEN 'exceptions' THEN -$1::bigint ELSE $1::bigint END FROM p, x RETURNING account_id, amount)
		UPDATE accounts a SET balance = a.balance + en.amount FROM en WHERE a.id = en.account_id`
	if _, err := e.pool.Exec(e.ctx, post, amount); err != nil {
		t.Fatal(err)
	}
}

// TestAdminReloadSplitConcurrently: one Admin's reloads sent at once on
// ten balances, 2,000.00 each, cannot slip under the threshold together:
// exactly five post (10,000.00), five wait.
func TestAdminReloadSplitConcurrently(t *testing.T) {
	e := newEnv(t, 12)
	p := e.partner("")
	accs := make([]ledger.Account, 10)
	for i := range accs {
		accs[i] = e.user(p, "EUR", 0)
	}
	status := make(chan string, len(accs))
	for i, a := range accs {
		go func() {
			ap, err := e.l.AdminReload(e.ctx, a.ID, 2_000_00, "admin:9", "split", fmt.Sprintf("SPLIT-%d", i))
			if err != nil {
				t.Error(err)
			}
			status <- ap.Status
		}()
	}
	got := map[string]int{}
	for range accs {
		got[<-status]++
	}
	if got[ledger.ApprovalPosted] != 5 || got[ledger.ApprovalPending] != 5 {
		t.Fatalf("concurrent split reloads: %v, want 5 posted and 5 pending", got)
	}
	e.clean()
}

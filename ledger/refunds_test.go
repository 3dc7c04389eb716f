package ledger_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// TestRefundCapture: a refund gives back what a capture took above keep,
// in proportion on every leg (the FX difference included), never more than
// the capture in total, only for a captured hold; verify stays clean and
// catches a refund that does not match its postings.
func TestRefundCapture(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	refund := func(holdID, keep int64, ref string) (int64, error) {
		t.Helper()
		var n int64
		err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			var err error
			n, err = e.l.RefundCaptureTx(e.ctx, tx, holdID, "", keep, ref)
			return err
		})
		return n, err
	}
	hold := func(amount int64) ledger.Hold {
		t.Helper()
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: amount})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	// Same currency: 1,000 captured, 400 then the rest given back.
	h := hold(1_000)
	if _, err := refund(h.ID, 0, "r0"); !errors.Is(err, ledger.ErrHoldNotCaptured) {
		t.Fatalf("refund of an open hold: %v, want ErrHoldNotCaptured", err)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 1_000, false, ""); err != nil {
		t.Fatal(err)
	}
	e.want(u.ID, 4_000, 0)
	e.want(credit.ID, 9_000, 0)
	if n, err := refund(h.ID, 600, "r1"); err != nil || n != 400 {
		t.Fatalf("partial refund: %d %v, want 400", n, err)
	}
	e.want(u.ID, 4_400, 0)
	e.want(credit.ID, 9_400, 0)
	e.clean()
	if n, err := refund(h.ID, 0, "r2"); err != nil || n != 600 {
		t.Fatalf("refund of the rest: %d %v, want 600", n, err)
	}
	if n, err := refund(h.ID, 0, "r3"); err != nil || n != 0 {
		t.Fatalf("refund past the capture: %d %v, want 0", n, err)
	}
	e.want(u.ID, 5_000, 0)
	e.want(credit.ID, 10_000, 0)
	e.clean()

	// Another currency: the user paid the 1,000 held, the scheme is owed
	// 1,050, the partner (FX) balance took -50. Two thirds back (700 of
	// 1,050), then the rest: every account ends where it started.
	fxHold := hold(1_000)
	if _, err := e.l.Capture(e.ctx, fxHold.ID, 1_050, true, ""); err != nil {
		t.Fatal(err)
	}
	accs, err := e.l.PartnerAccounts(e.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var fx ledger.Account
	for _, a := range accs {
		if a.Kind == ledger.KindPartner && a.Currency == "EUR" {
			fx = a
		}
	}
	if fx.ID == 0 {
		t.Fatal("no partner (FX) balance in EUR")
	}
	e.want(u.ID, 4_000, 0)
	e.want(fx.ID, -50, 0)
	if n, err := refund(fxHold.ID, 350, "r4"); err != nil || n != 700 {
		t.Fatalf("partial FX refund: %d %v, want 700", n, err)
	}
	e.want(u.ID, 4_667, 0) // 1,000 × 700/1,050 = 666.7, rounded to 667
	e.want(fx.ID, -17, 0)  // 50 × 700/1,050 = 33.3, rounded to 33
	e.clean()
	if n, err := refund(fxHold.ID, 0, "r5"); err != nil || n != 350 {
		t.Fatalf("FX refund of the rest: %d %v, want 350", n, err)
	}
	e.want(u.ID, 5_000, 0)
	e.want(fx.ID, 0, 0)
	e.want(credit.ID, 10_000, 0)
	e.clean()

	// A refund ref is unique.
	h3 := hold(100)
	if _, err := e.l.Capture(e.ctx, h3.ID, 100, false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := refund(h3.ID, 50, "r1"); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Fatalf("refund with a used ref: %v, want ErrDuplicateRef", err)
	}

	if _, err := e.pool.Exec(e.ctx, `UPDATE holds SET refunded = refunded + 1 WHERE id = $1`, h.ID); err != nil {
		t.Fatal(err)
	}
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Check != "hold_refunds" || vs[0].HoldID != h.ID {
		t.Fatalf("verify after tampering with refunded: %v, want one hold_refunds", vs)
	}
}

// TestCreditAndUncredit: a credit pays the user from settlement and gives
// the partner credit back from credit usage; uncredits take it back, never
// more than it; verify catches an uncredit above its credit.
func TestCreditAndUncredit(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	tx := func(f func(tx pgx.Tx) error) error { return pgx.BeginFunc(e.ctx, e.pool, f) }
	if err := tx(func(tx pgx.Tx) error {
		_, err := e.l.CreditTx(e.ctx, tx, u.ID, credit.ID, "EUR", 700, "c1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.want(u.ID, 5_700, 0)
	e.want(credit.ID, 10_700, 0)
	e.clean()
	if err := tx(func(tx pgx.Tx) error {
		_, err := e.l.CreditTx(e.ctx, tx, u.ID, credit.ID, "EUR", 1, "c1")
		return err
	}); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Fatalf("credit with a used ref: %v, want ErrDuplicateRef", err)
	}
	uncredit := func(keep int64, ref string) (int64, error) {
		var n int64
		err := tx(func(tx pgx.Tx) error {
			var err error
			n, err = e.l.UncreditTx(e.ctx, tx, "c1", keep, ref)
			return err
		})
		return n, err
	}
	if n, err := uncredit(500, "u1"); err != nil || n != 200 {
		t.Fatalf("uncredit above 500: %d %v, want 200", n, err)
	}
	if n, err := uncredit(0, "u2"); err != nil || n != 500 {
		t.Fatalf("uncredit of the rest: %d %v, want 500", n, err)
	}
	if n, err := uncredit(0, "u3"); err != nil || n != 0 {
		t.Fatalf("uncredit past the credit: %d %v, want 0", n, err)
	}
	e.want(u.ID, 5_000, 0)
	e.want(credit.ID, 10_000, 0)
	e.clean()
	if err := tx(func(tx pgx.Tx) error { _, err := e.l.UncreditTx(e.ctx, tx, "nope", 0, "u4"); return err }); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("uncredit of no credit: %v, want ErrNotFound", err)
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE entries SET amount = amount * 2 WHERE posting_id = (SELECT id FROM postings WHERE kind = 'uncredit' AND ref = 'u2')`); err != nil {
		t.Fatal(err)
	}
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vs {
		found = found || v.Check == "credit_uncredits"
	}
	if !found {
		t.Fatalf("verify after doubling an uncredit: %v, want credit_uncredits among them", vs)
	}
}

// TestRefundsAtOnce: eight reversals of one capture at once (repeats,
// reversal advices) give it back once in total, and each credit is taken
// back once: no money is made.
func TestRefundsAtOnce(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 1_000, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.l.CreditTx(e.ctx, tx, u.ID, credit.ID, "EUR", 300, "c")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.want(u.ID, 4_300, 0)
	var wg sync.WaitGroup
	var refunded, uncredited atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
				n, err := e.l.RefundCaptureTx(e.ctx, tx, h.ID, "", 0, fmt.Sprintf("r%d", i))
				if err != nil {
					return err
				}
				m, err := e.l.UncreditTx(e.ctx, tx, "c", 0, fmt.Sprintf("u%d", i))
				refunded.Add(n)
				uncredited.Add(m)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if refunded.Load() != 1_000 || uncredited.Load() != 300 {
		t.Fatalf("refunded %d, uncredited %d; want 1000 and 300", refunded.Load(), uncredited.Load())
	}
	e.want(u.ID, 5_000, 0)
	e.want(credit.ID, 10_000, 0)
	e.clean()
}

package ledger_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// TestTxVariantsJoinTheCallersTransaction: a financial message places and
// captures in the caller's transaction; a rollback leaves nothing, an error
// of a Tx call leaves the transaction usable.
func TestTxVariantsJoinTheCallersTransaction(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	spec := ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000, Ref: "fin-1"}

	errRollback := errors.New("rollback")
	err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		h, err := e.l.PlaceHoldTx(e.ctx, tx, spec)
		if err != nil {
			return err
		}
		if _, err := e.l.CaptureTx(e.ctx, tx, h.ID, 1_000, false, "cap-1"); err != nil {
			return err
		}
		a, err := e.l.AccountTx(e.ctx, tx, u.ID)
		if err != nil || a.Balance != 4_000 || a.Held != 0 {
			t.Fatalf("inside tx: %+v, %v", a, err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	e.want(u.ID, 5_000, 0)
	e.want(credit.ID, 10_000, 0)
	if _, err := e.l.HoldByRef(e.ctx, "fin-1"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("hold after rollback: %v, want ErrNotFound", err)
	}

	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		h, err := e.l.PlaceHoldTx(e.ctx, tx, spec)
		if err != nil {
			return err
		}
		if _, err := e.l.CaptureTx(e.ctx, tx, h.ID, 1_000, false, "cap-1"); err != nil {
			return err
		}
		if _, err := e.l.CaptureTx(e.ctx, tx, h.ID, 1_000, false, "cap-2"); !errors.Is(err, ledger.ErrHoldResolved) {
			t.Fatalf("second capture: %v, want ErrHoldResolved", err)
		}
		if _, err := e.l.ReleaseTx(e.ctx, tx, h.ID, 0); !errors.Is(err, ledger.ErrHoldResolved) {
			t.Fatalf("release after capture: %v, want ErrHoldResolved", err)
		}
		// A declined hold is a result: the transaction goes on.
		_, err = e.l.PlaceHoldTx(e.ctx, tx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1e9})
		if !errors.Is(err, ledger.ErrInsufficientFunds) {
			t.Fatalf("big hold: %v, want ErrInsufficientFunds", err)
		}
		h2, err := e.l.PlaceHoldTx(e.ctx, tx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 10})
		if err != nil {
			return err
		}
		_, err = e.l.ReleaseTx(e.ctx, tx, h2.ID, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.want(u.ID, 4_000, 0)
	e.want(credit.ID, 9_000, 0)
	e.clean()
}

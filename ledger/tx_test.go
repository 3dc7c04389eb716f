package ledger_test

import (
	"errors"
	"testing"
	"time"

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

// TestPlaceHoldsRefRace: a batch whose ref another transaction inserts
// between the batch's look-up and its insert (on other accounts, so the
// account locks do not order them) returns that hold as a duplicate and
// holds nothing itself.
func TestPlaceHoldsRefRace(t *testing.T) {
	e := newEnv(t, 4)
	p := e.partner("")
	a := e.user(p, "EUR", 1_000)
	b := e.user(p, "EUR", 1_000)
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.l.PlaceHoldTx(e.ctx, tx, ledger.HoldSpec{UserAccountID: a.ID, Currency: "EUR", Amount: 100, Ref: "race"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []ledger.HoldResult)
	go func() {
		res, err := e.l.PlaceHolds(e.ctx, []ledger.HoldSpec{
			{UserAccountID: b.ID, Currency: "EUR", Amount: 300, Ref: "race"},
			{UserAccountID: b.ID, Currency: "EUR", Amount: 50, Ref: "other"},
		})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	// Let the batch reach its insert and wait on the unique index.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited on the uncommitted ref")
		}
		var waiting bool
		if err := e.pool.QueryRow(e.ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO holds%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
	}
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if len(res) != 2 || !res[0].Duplicate || res[0].Hold.ID != first.ID || res[0].Err != nil || res[1].Err != nil || res[1].Duplicate {
		t.Fatalf("results %+v, want a duplicate of hold %d and a new hold", res, first.ID)
	}
	e.want(a.ID, 1_000, 100)
	e.want(b.ID, 1_000, 50)
	e.clean()
}

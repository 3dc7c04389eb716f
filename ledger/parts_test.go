package ledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// TestPartsAndIncrements: a hold completed in parts keeps the rest open,
// the tolerance applies once to the whole, a part of an expired hold is a
// late clearing; an increment needs the funds of both accounts, never
// shortens the expiry, and its release gives back only what it added;
// a partial spec takes what the accounts allow. Verify stays clean.
func TestPartsAndIncrements(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 5_000, nil)
	u := e.user(p, "EUR", 10_000)
	tx := func(f func(tx pgx.Tx) error) error { return pgx.BeginFunc(e.ctx, e.pool, f) }
	clear := func(c ledger.Clearing) (out ledger.Cleared, err error) {
		err = tx(func(tx pgx.Tx) error { out, err = e.l.ClearTx(e.ctx, tx, c); return err })
		return out, err
	}
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000, Ref: "h", TTL: 31 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if h, err = e.l.Hold(e.ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	// Increments: the partner credit has 4,000 left, the user 9,000.
	var inc ledger.Hold
	if err := tx(func(tx pgx.Tx) error {
		inc, _, err = e.l.IncrementHoldTx(e.ctx, tx, h.ID, 4_500, "i1", 0)
		return err
	}); !errors.Is(err, ledger.ErrInsufficientPartnerFunds) {
		t.Fatalf("increment beyond the partner credit: %v, want ErrInsufficientPartnerFunds", err)
	}
	if err := tx(func(tx pgx.Tx) error {
		inc, _, err = e.l.IncrementHoldTx(e.ctx, tx, h.ID, 2_000, "i1", time.Hour)
		return err
	}); err != nil || inc.Amount != 3_000 || inc.OriginalAmount != 3_000 {
		t.Fatalf("increment: %+v %v, want 3000 held", inc, err)
	}
	if got, err := e.l.Hold(e.ctx, h.ID); err != nil || !got.ExpiresAt.Equal(h.ExpiresAt) {
		t.Errorf("expiry after an increment of a shorter TTL: %v (%v), want %v", got.ExpiresAt, err, h.ExpiresAt)
	}
	e.want(u.ID, 10_000, 3_000)
	e.want(credit.ID, 5_000, 3_000)
	for range 2 { // once only
		if err := tx(func(tx pgx.Tx) error { _, _, err := e.l.ReleaseIncrementTx(e.ctx, tx, "i1", 500); return err }); err != nil {
			t.Fatal(err)
		}
	}
	e.want(u.ID, 10_000, 1_500)

	// Parts of 1,500 with 20 %: 1,000 then 700 (300 of tolerance) then
	// the last of 100: the whole may charge 1,500 + 300.
	c, err := clear(ledger.Clearing{HoldID: h.ID, Final: 1_000, Ref: "p1", ToleranceBP: 2000, NotLast: true})
	if err != nil || c.Charged != 1_000 || c.HoldID == h.ID {
		t.Fatalf("first part: %+v %v", c, err)
	}
	e.want(u.ID, 9_000, 500)
	if c, err = clear(ledger.Clearing{HoldID: h.ID, Final: 700, Ref: "p2", ToleranceBP: 2000, NotLast: true}); err != nil || c.Charged != 700 {
		t.Fatalf("second part: %+v %v", c, err)
	}
	e.want(u.ID, 8_300, 0)
	if c, err = clear(ledger.Clearing{HoldID: h.ID, Final: 200, Ref: "p3", ToleranceBP: 2000}); err != nil || c.Charged != 100 || c.Excess != 100 || c.HoldID != h.ID {
		t.Fatalf("last: %+v %v, want 100 charged, 100 over_capture", c, err)
	}
	e.want(u.ID, 8_200, 0)
	e.clean()

	// A part of an expired hold charges what is available.
	h2, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 500})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(8 * 24 * time.Hour)
	if _, err := e.l.ExpireHolds(e.ctx); err != nil {
		t.Fatal(err)
	}
	if c, err = clear(ledger.Clearing{HoldID: h2.ID, Final: 300, Ref: "p4", NotLast: true}); err != nil || c.Charged != 300 || c.HoldID == h2.ID {
		t.Fatalf("part of an expired hold: %+v %v", c, err)
	}
	if c, err = clear(ledger.Clearing{HoldID: h2.ID, Final: 200, Ref: "p5"}); err != nil || c.Charged != 200 {
		t.Fatalf("last of an expired hold: %+v %v", c, err)
	}
	e.want(u.ID, 7_700, 0)

	// A partial spec: the partner credit has 5,000 - 2,300 = 2,700 left.
	res, err := e.l.PlaceHolds(e.ctx, []ledger.HoldSpec{{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 4_000, Partial: true}})
	if err != nil || res[0].Err != nil || res[0].Hold.Amount != 2_700 {
		t.Fatalf("partial spec: %+v %v, want a hold of 2700", res, err)
	}
	e.clean()
}

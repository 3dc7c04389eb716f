package ledger_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/ledger"
)

// TestClearWithinLimits: a clearing above its hold plus the tolerance
// charges that much and puts the rest on exceptions receivable; a clearing
// of an expired hold charges up to the available balance; a hold resolved
// before is refused; verify stays clean, and catches a receivable that no
// open exception explains.
func TestClearWithinLimits(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 100_000, nil)
	u := e.user(p, "EUR", 10_000)
	hold := func(amount int64) ledger.Hold {
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: amount})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	clear := func(c ledger.Clearing) (ledger.Cleared, error) {
		var out ledger.Cleared
		err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			var err error
			out, err = e.l.ClearTx(e.ctx, tx, c)
			return err
		})
		return out, err
	}
	h := hold(1_000)
	c, err := clear(ledger.Clearing{HoldID: h.ID, Final: 5_000, Ref: "c1", ToleranceBP: 2000})
	if err != nil || c.Charged != 1_200 || c.Excess != 3_800 || c.Exception.Kind != ledger.ExceptionOverCapture {
		t.Fatalf("over-capture: got %+v, %v; want 1200 charged, 3800 over_capture", c, err)
	}
	e.want(u.ID, 8_800, 0)
	e.want(credit.ID, 98_800, 0)
	if a := e.internal(ledger.KindExceptions, "EUR"); a.Balance != -3_800 {
		t.Errorf("exceptions receivable: got %d, want -3800", a.Balance)
	}
	e.clean()
	if _, err := clear(ledger.Clearing{HoldID: h.ID, Final: 100, Ref: "c2"}); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("second clearing: %v, want ErrHoldResolved", err)
	}

	// An expired hold: up to what is available now.
	h2 := hold(3_000)
	e.clock.Add(8 * 24 * 3600e9)
	if _, err := e.l.ExpireHolds(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 8_000}); err != nil {
		t.Fatal(err)
	}
	c, err = clear(ledger.Clearing{HoldID: h2.ID, Final: 3_000, Ref: "c3"})
	if err != nil || c.Charged != 800 || c.Excess != 2_200 || c.Exception.Kind != ledger.ExceptionExpiredHoldCapture {
		t.Fatalf("expired hold: got %+v, %v; want 800 charged, 2200 expired_hold_capture", c, err)
	}
	e.want(u.ID, 8_000, 8_000)
	e.clean()

	if _, err := e.pool.Exec(e.ctx, `UPDATE exceptions SET status = 'written_off', resolved_at = now() WHERE hold_id = $1`, h.ID); err != nil {
		t.Fatal(err)
	}
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Check != "exceptions_receivable" {
		t.Fatalf("verify after closing an exception without its posting: %v, want one exceptions_receivable", vs)
	}
}

// TestCreditRefundTx: a refund matched to a purchase credits at most what
// it captured less earlier refunds; a blind one up to the limit; the rest
// waits (blind_refund, nothing receivable); a repeat changes nothing; the
// reversal of the purchase afterwards gives back only what is left.
func TestCreditRefundTx(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 100_000, nil)
	u := e.user(p, "EUR", 10_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 3_000, Ref: "buy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 3_000, false, "capture:buy"); err != nil {
		t.Fatal(err)
	}
	refund := func(r ledger.Refund) (ledger.Refunded, error) {
		r.UserAccountID, r.PartnerAccountID, r.Currency = u.ID, credit.ID, "EUR"
		var out ledger.Refunded
		err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
			var err error
			out, err = e.l.CreditRefundTx(e.ctx, tx, r)
			return err
		})
		return out, err
	}
	if r, err := refund(ledger.Refund{Amount: 2_000, Ref: "r1", PurchaseHoldID: h.ID}); err != nil || r.Credited != 2_000 || r.Waiting != 0 {
		t.Fatalf("matched refund: %+v %v, want 2000 credited", r, err)
	}
	if r, err := refund(ledger.Refund{Amount: 2_000, Ref: "r2", PurchaseHoldID: h.ID}); err != nil || r.Credited != 1_000 || r.Waiting != 1_000 {
		t.Fatalf("second matched refund: %+v %v, want 1000 credited, 1000 waiting", r, err)
	}
	if _, err := refund(ledger.Refund{Amount: 2_000, Ref: "r2", PurchaseHoldID: h.ID}); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Fatalf("repeat: %v, want ErrDuplicateRef", err)
	}
	if r, err := refund(ledger.Refund{Amount: 500, Ref: "r3", BlindLimit: 200}); err != nil || r.Credited != 200 || r.Waiting != 300 {
		t.Fatalf("blind refund: %+v %v, want 200 credited, 300 waiting", r, err)
	}
	if _, err := refund(ledger.Refund{Amount: 500, Ref: "r4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := refund(ledger.Refund{Amount: 500, Ref: "r4"}); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Fatalf("repeat of a refund that only waits: %v, want ErrDuplicateRef", err)
	}
	e.want(u.ID, 7_000+3_200, 0)
	e.want(credit.ID, 97_000+3_200, 0)
	var n int64
	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		n, err = e.l.RefundCaptureTx(e.ctx, tx, h.ID, "", 0, "rev")
		return err
	})
	if err != nil || n != 0 {
		t.Fatalf("reversal after full refunds: %d %v, want 0", n, err)
	}
	e.clean()
}

// TestExceptionsCounter: antaca_exceptions_total counts by kind what
// callers report opened, on the registry the ledger was given.
func TestExceptionsCounter(t *testing.T) {
	e := newEnv(t, 0)
	reg := prometheus.NewRegistry()
	l := ledger.New(e.pool, ledger.Config{Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	l.ExceptionsOpened(ledger.ExceptionOverCapture, ledger.ExceptionOverCapture, ledger.ExceptionBlindRefund)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "antaca_exceptions_total" || len(mfs[0].GetMetric()) != 4 {
		t.Fatalf("gathered %v, %v: want antaca_exceptions_total with one series per kind", mfs, err)
	}
	for _, m := range mfs[0].GetMetric() {
		want := map[string]float64{ledger.ExceptionOverCapture: 2, ledger.ExceptionBlindRefund: 1}[m.GetLabel()[0].GetValue()]
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("%s: got %v, want %v", m.GetLabel()[0].GetValue(), got, want)
		}
	}
}

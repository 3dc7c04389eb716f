package ledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/antaca/antaca/ledger"
)

func TestReloadIsIdempotentOnRef(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	u := e.user(p, "EUR", 0)
	first, err := e.l.Reload(e.ctx, u.ID, 1500, "bank-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.l.Reload(e.ctx, u.ID, 1500, "bank-1")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID {
		t.Fatalf("second reload posting %d, want the first %d", again.ID, first.ID)
	}
	e.want(u.ID, 1500, 0)
	e.want(e.internal(ledger.KindFunding, "EUR").ID, -1500, 0)
	if _, err := e.l.Reload(e.ctx, u.ID, 99, "bank-1"); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Fatalf("same ref, other amount: got %v, want ErrDuplicateRef", err)
	}
	if _, err := e.l.Reload(e.ctx, u.ID, 0, "bank-2"); !errors.Is(err, ledger.ErrInvalidAmount) {
		t.Fatalf("zero reload: got %v, want ErrInvalidAmount", err)
	}
	if _, err := e.l.Reload(e.ctx, 999999, 10, ""); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("reload of unknown account: got %v, want ErrNotFound", err)
	}
	e.want(u.ID, 1500, 0)
	e.clean()
}

func TestPlaceHoldRules(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	rich := e.user(p, "EUR", 50_000)
	poor := e.user(p, "EUR", 300)
	usd := e.user(p, "USD", 1_000)
	blocked := e.user(p, "EUR", 1_000)
	if err := e.l.SetState(e.ctx, blocked.ID, ledger.StateBlocked); err != nil {
		t.Fatal(err)
	}

	t.Run("insufficient user funds", func(t *testing.T) {
		_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: poor.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 301})
		var fe *ledger.FundsError
		if !errors.As(err, &fe) || !errors.Is(err, ledger.ErrInsufficientFunds) || errors.Is(err, ledger.ErrInsufficientPartnerFunds) {
			t.Fatalf("got %v, want a user *FundsError", err)
		}
		if fe.AccountID != poor.ID || fe.Available != 300 {
			t.Fatalf("got account %d available %d, want %d and 300", fe.AccountID, fe.Available, poor.ID)
		}
	})
	t.Run("insufficient partner funds", func(t *testing.T) {
		_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: rich.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 10_001})
		var fe *ledger.FundsError
		if !errors.As(err, &fe) || !errors.Is(err, ledger.ErrInsufficientPartnerFunds) || errors.Is(err, ledger.ErrInsufficientFunds) {
			t.Fatalf("got %v, want a partner *FundsError", err)
		}
		if fe.AccountID != credit.ID || fe.Available != 10_000 {
			t.Fatalf("got account %d available %d, want %d and 10000", fe.AccountID, fe.Available, credit.ID)
		}
	})
	t.Run("user checked first", func(t *testing.T) {
		_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: poor.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 20_000})
		if !errors.Is(err, ledger.ErrInsufficientFunds) {
			t.Fatalf("both short: got %v, want ErrInsufficientFunds", err)
		}
	})
	t.Run("blocked account", func(t *testing.T) {
		_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: blocked.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1})
		if !errors.Is(err, ledger.ErrAccountNotActive) {
			t.Fatalf("got %v, want ErrAccountNotActive", err)
		}
	})
	t.Run("currency mismatch", func(t *testing.T) {
		_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: usd.ID, PartnerAccountID: credit.ID, Currency: "USD", Amount: 1})
		if !errors.Is(err, ledger.ErrCurrencyMismatch) {
			t.Fatalf("USD hold on EUR partner account: got %v, want ErrCurrencyMismatch", err)
		}
		_, err = e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: rich.ID, Currency: "USD", Amount: 1})
		if !errors.Is(err, ledger.ErrCurrencyMismatch) {
			t.Fatalf("USD hold on EUR user account: got %v, want ErrCurrencyMismatch", err)
		}
	})
	t.Run("unknown account and bad amount", func(t *testing.T) {
		_, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: 987654, Currency: "EUR", Amount: 1})
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		_, err = e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: rich.ID, Currency: "EUR", Amount: 0})
		if !errors.Is(err, ledger.ErrInvalidAmount) {
			t.Fatalf("got %v, want ErrInvalidAmount", err)
		}
	})
	e.want(poor.ID, 300, 0)
	e.want(credit.ID, 10_000, 0)

	t.Run("placed, then duplicate ref", func(t *testing.T) {
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: rich.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 700, Ref: "auth-1"})
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != ledger.HoldOpen || h.Amount != 700 || h.ExpiresAt.Sub(e.clock.Now()).Round(time.Millisecond) != 7*24*time.Hour {
			t.Fatalf("hold %+v: want open 700 expiring in 7 days", h)
		}
		h2, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: rich.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 700, Ref: "auth-1"})
		if err != nil || h2.ID != h.ID {
			t.Fatalf("duplicate ref: got hold %d, %v; want hold %d", h2.ID, err, h.ID)
		}
		e.want(rich.ID, 50_000, 700)
		e.want(credit.ID, 10_000, 700)
	})
	t.Run("advice goes negative and is flagged", func(t *testing.T) {
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: poor.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 500, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		a := e.account(poor.ID)
		if a.Available() != -200 || !a.NegativeFlag {
			t.Fatalf("after advice: available %d flag %v, want -200 and flagged", a.Available(), a.NegativeFlag)
		}
		if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: blocked.ID, Currency: "EUR", Amount: 5, Force: true}); err != nil {
			t.Fatalf("advice on a blocked account: %v", err)
		}
		if _, err := e.l.Release(e.ctx, h.ID, 0); err != nil {
			t.Fatal(err)
		}
	})
	e.clean()
}

func TestCaptureSameCurrency(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000, Ref: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	post, err := e.l.Capture(e.ctx, h.ID, 800, false, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(post.Entries) != 4 || post.HoldID != h.ID {
		t.Fatalf("capture posting %+v: want 4 entries for hold %d", post, h.ID)
	}
	e.want(u.ID, 4_200, 0)
	e.want(credit.ID, 9_200, 0)
	e.want(e.internal(ledger.KindSettlement, "EUR").ID, 800, 0)
	e.want(e.internal(ledger.KindCreditUsage, "EUR").ID, 800, 0)
	got, _ := e.l.Hold(e.ctx, h.ID)
	if got.Status != ledger.HoldCaptured || got.CapturedAmount == nil || *got.CapturedAmount != 800 || got.CapturePostingID != post.ID {
		t.Fatalf("hold after capture %+v", got)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 800, false, "c2"); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("second capture: got %v, want ErrHoldResolved", err)
	}
	if _, err := e.l.Release(e.ctx, h.ID, 0); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("release after capture: got %v, want ErrHoldResolved", err)
	}
	e.want(u.ID, 4_200, 0)

	hist, err := e.l.Postings(e.ctx, u.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Kind != "capture" || hist[0].Amount != -800 || hist[1].Kind != "reload" || hist[1].Amount != 5_000 {
		t.Fatalf("history newest first: %+v", hist)
	}
	e.clean()
}

func TestCaptureFX(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	settle := e.internal(ledger.KindSettlement, "EUR")
	// Cleared lower than authorised: the user pays the authorised 1000,
	// the scheme gets 950, the partner's FX balance keeps 50.
	h1, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Capture(e.ctx, h1.ID, 950, true, ""); err != nil {
		t.Fatal(err)
	}
	// Cleared higher: the user still pays 1000, the FX balance pays 30.
	h2, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Capture(e.ctx, h2.ID, 1_030, true, ""); err != nil {
		t.Fatal(err)
	}
	e.want(u.ID, 3_000, 0)
	e.want(settle.ID, 1_980, 0)
	e.want(credit.ID, 10_000-1_980, 0)
	e.want(e.internal(ledger.KindCreditUsage, "EUR").ID, 1_980, 0)
	accs, err := e.l.PartnerAccounts(e.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var fx *ledger.Account
	for i := range accs {
		if accs[i].Kind == ledger.KindPartner {
			fx = &accs[i]
		}
	}
	if fx == nil || fx.Balance != 20 || fx.Currency != "EUR" {
		t.Fatalf("partner FX account %+v, want balance 20 EUR", fx)
	}
	sum, err := e.l.Summary(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 1 || sum[0].Users != 3_000 || sum[0].Partner != 20 || sum[0].Wallet != 3_000+8_020+20 {
		t.Fatalf("summary %+v", sum)
	}
	e.clean()
}

func TestCaptureAboveHoldGoesNegativeAndIsFlagged(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 1_000, nil)
	u := e.user(p, "EUR", 1_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 1_200, false, ""); err != nil {
		t.Fatalf("capture above the hold: %v", err)
	}
	for _, id := range []int64{u.ID, credit.ID} {
		a := e.account(id)
		if a.Balance != -200 || !a.NegativeFlag {
			t.Fatalf("account %d: balance %d flag %v, want -200 and flagged", id, a.Balance, a.NegativeFlag)
		}
	}
	e.clean()
}

func TestCaptureWithoutUserAccount(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	dep, err := e.l.OpenAccount(e.ctx, ledger.AccountSpec{Kind: ledger.KindPartnerDeposit, Currency: "GBP", PartnerID: p.ID, ProgramID: 42})
	if err != nil {
		t.Fatal(err)
	}
	e.reload(dep, 2_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{PartnerAccountID: dep.ID, Currency: "GBP", Amount: 500})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 450, false, ""); err != nil {
		t.Fatal(err)
	}
	e.want(dep.ID, 1_550, 0)
	e.want(e.internal(ledger.KindSettlement, "GBP").ID, 450, 0)
	if _, err := e.l.OpenAccount(e.ctx, ledger.AccountSpec{Kind: ledger.KindPartnerCredit, Currency: "GBP", PartnerID: p.ID, ProgramID: 42}); !errors.Is(err, ledger.ErrAccountExists) {
		t.Fatalf("second funding account of a program: got %v, want ErrAccountExists", err)
	}
	if _, err := e.l.OpenAccount(e.ctx, ledger.AccountSpec{Kind: ledger.KindUser, Currency: "XXX", UserID: 1}); !errors.Is(err, ledger.ErrUnknownCurrency) {
		t.Fatalf("unknown currency: got %v, want ErrUnknownCurrency", err)
	}
	e.clean()
}

func TestReleaseResolvesOnce(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	part, err := e.l.Release(e.ctx, h.ID, 600) // partial reversal to DE95 = 600
	if err != nil {
		t.Fatal(err)
	}
	if part.Status != ledger.HoldOpen || part.Amount != 600 {
		t.Fatalf("after partial release: %+v", part)
	}
	e.want(u.ID, 5_000, 600)
	e.want(credit.ID, 10_000, 600)
	if _, err := e.l.Release(e.ctx, h.ID, 700); !errors.Is(err, ledger.ErrInvalidAmount) {
		t.Fatalf("release to more than held: got %v, want ErrInvalidAmount", err)
	}
	full, err := e.l.Release(e.ctx, h.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if full.Status != ledger.HoldReleased || full.ResolvedAt == nil {
		t.Fatalf("after full release: %+v", full)
	}
	if _, err := e.l.Release(e.ctx, h.ID, 0); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("second release: got %v, want ErrHoldResolved", err)
	}
	if _, err := e.l.Capture(e.ctx, h.ID, 100, false, ""); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("capture after release: got %v, want ErrHoldResolved", err)
	}
	if _, err := e.l.Release(e.ctx, 123456, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("release of unknown hold: got %v, want ErrNotFound", err)
	}
	e.want(u.ID, 5_000, 0)
	e.want(credit.ID, 10_000, 0)
	e.clean()
}

func TestExpireHolds(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	old, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(6 * 24 * time.Hour)
	young, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 300})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.l.ExpireHolds(e.ctx); err != nil || n != 0 {
		t.Fatalf("after 6 days: expired %d, %v; want 0", n, err)
	}
	e.clock.Add(24*time.Hour + time.Second)
	if n, err := e.l.ExpireHolds(e.ctx); err != nil || n != 1 {
		t.Fatalf("after 7 days: expired %d, %v; want 1", n, err)
	}
	h, _ := e.l.Hold(e.ctx, old.ID)
	if h.Status != ledger.HoldExpired {
		t.Fatalf("old hold status %s, want expired", h.Status)
	}
	e.want(u.ID, 5_000, 300)
	e.want(credit.ID, 10_000, 300)
	if _, err := e.l.Capture(e.ctx, old.ID, 1_000, false, ""); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("capture of an expired hold: got %v, want ErrHoldResolved", err)
	}
	if _, err := e.l.Capture(e.ctx, young.ID, 300, false, ""); err != nil {
		t.Fatal(err)
	}
	e.clean()
}

func TestAccountStates(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	u := e.user(p, "EUR", 100)
	if err := e.l.SetState(e.ctx, u.ID, ledger.StateClosed); !errors.Is(err, ledger.ErrAccountNotEmpty) {
		t.Fatalf("closing an account with money: got %v, want ErrAccountNotEmpty", err)
	}
	empty := e.user(p, "EUR", 0)
	if err := e.l.SetState(e.ctx, empty.ID, ledger.StateClosed); err != nil {
		t.Fatal(err)
	}
	if err := e.l.SetState(e.ctx, empty.ID, ledger.StateActive); !errors.Is(err, ledger.ErrAccountNotActive) {
		t.Fatalf("reopening: got %v, want ErrAccountNotActive", err)
	}
	if _, err := e.l.Reload(e.ctx, empty.ID, 10, ""); !errors.Is(err, ledger.ErrAccountNotActive) {
		t.Fatalf("reload of a closed account: got %v, want ErrAccountNotActive", err)
	}
	if err := e.l.SetState(e.ctx, 424242, ledger.StateBlocked); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown account: got %v, want ErrNotFound", err)
	}
	accs, err := e.l.UserAccounts(e.ctx, u.UserID)
	if err != nil || len(accs) != 1 || accs[0].ID != u.ID {
		t.Fatalf("user accounts: %+v, %v", accs, err)
	}
}

func TestLowThresholdNotifiesOncePerCrossing(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("ops@partner.example")
	credit := e.credit(p, "EUR", 1_000, ptr(500)) // reload takes it above 500
	u := e.user(p, "EUR", 100_000)
	outbox := func() int {
		t.Helper()
		var n int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM outbox WHERE kind = 'low_balance' AND recipient = 'ops@partner.example'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	hold := func(amount int64) ledger.Hold {
		t.Helper()
		h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: amount})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if n := outbox(); n != 0 {
		t.Fatalf("after opening and reload: %d notifications, want 0", n)
	}
	h1 := hold(400) // available 600
	if n := outbox(); n != 0 {
		t.Fatalf("above threshold: %d notifications, want 0", n)
	}
	h2 := hold(200) // available 400: crossed
	if n := outbox(); n != 1 {
		t.Fatalf("after crossing: %d notifications, want 1", n)
	}
	hold(100) // still below
	if _, err := e.l.Capture(e.ctx, h1.ID, 400, false, ""); err != nil {
		t.Fatal(err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("while below: %d notifications, want still 1", n)
	}
	if a := e.account(credit.ID); !a.BelowThreshold {
		t.Fatal("below_threshold not set")
	}
	if _, err := e.l.Release(e.ctx, h2.ID, 0); err != nil {
		t.Fatal(err)
	}
	e.reload(credit, 1_000) // available 1500: re-armed
	if a := e.account(credit.ID); a.BelowThreshold {
		t.Fatal("below_threshold still set above the threshold")
	}
	hold(1_100) // available 400: second crossing
	if n := outbox(); n != 2 {
		t.Fatalf("after second crossing: %d notifications, want 2", n)
	}
	msgs, err := e.l.Outbox(e.ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "The available amount of partner_credit account"; len(msgs) != 1 || msgs[0].Subject == "" || !contains(msgs[0].Body, want) || !contains(msgs[0].Body, "4.00 EUR") {
		t.Fatalf("notification %+v", msgs)
	}
	// Raising the threshold above the available amount is a crossing too.
	other := e.credit(p, "EUR", 1_000, nil)
	if err := e.l.SetThreshold(e.ctx, other.ID, ptr(2_000)); err != nil {
		t.Fatal(err)
	}
	if n := outbox(); n != 3 {
		t.Fatalf("after raising a threshold: %d notifications, want 3", n)
	}
	e.clean()
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestVerifyDetectsCorruption(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	credit := e.credit(p, "EUR", 10_000, nil)
	u := e.user(p, "EUR", 5_000)
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID, Currency: "EUR", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	post, err := e.l.Capture(e.ctx, h2.ID, 100, false, "")
	if err != nil {
		t.Fatal(err)
	}
	e.clean()

	tamper := []string{
		`UPDATE accounts SET balance = balance + 1 WHERE id = ` + itoa(u.ID),                         // balance_mismatch
		`UPDATE accounts SET held = held - 1 WHERE id = ` + itoa(credit.ID),                          // held_mismatch
		`UPDATE entries SET amount = amount + 7 WHERE id = ` + itoa(post.Entries[1].ID),              // unbalanced + balance (settlement)
		`UPDATE holds SET status = 'released', resolved_at = now() WHERE id = ` + itoa(h2.ID+0*h.ID), // captured hold now "released" with a capture posting
		`UPDATE holds SET partner_account_id = 1000000000 WHERE id = ` + itoa(h.ID),                  // hold_account_missing (holds have no foreign keys)
		`UPDATE entries SET account_id = 1000000001 WHERE id = ` + itoa(post.Entries[0].ID),          // entry_account_missing (nor entries, 027)
		`UPDATE entries SET posting_id = 1000000002 WHERE id = ` + itoa(post.Entries[2].ID),          // entry_posting_missing
	}
	for _, q := range tamper {
		if _, err := e.pool.Exec(e.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, v := range vs {
		t.Logf("violation: %s", v)
		got[v.Check]++
	}
	for _, check := range []string{"balance_mismatch", "held_mismatch", "posting_unbalanced", "hold_resolved_twice", "hold_account_missing",
		"entry_account_missing", "entry_posting_missing"} {
		if got[check] == 0 {
			t.Errorf("no %s violation reported; got %v", check, got)
		}
	}
	if got["balance_mismatch"] < 2 {
		t.Errorf("balance_mismatch reported %d times, want both tampered accounts", got["balance_mismatch"])
	}
}

// TestAccountsAreNeverDeleted: holds carry no foreign keys to accounts, so
// the schema forbids deleting an account, even an empty one.
func TestAccountsAreNeverDeleted(t *testing.T) {
	e := newEnv(t, 0)
	p := e.partner("")
	u := e.user(p, "EUR", 0)
	_, err := e.pool.Exec(e.ctx, `DELETE FROM accounts WHERE id = $1`, u.ID)
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "23001" {
		t.Fatalf("delete of account %d: %v, want restrict_violation", u.ID, err)
	}
	e.want(u.ID, 0, 0)
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

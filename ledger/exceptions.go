package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// KindExceptions is the internal exceptions receivable account, one per
// currency: what the scheme settled that no user or partner balance may be
// charged with (DESIGN section 6). Its balance is minus the receivable of
// the open exceptions.
const KindExceptions = "exceptions"

// Exception kinds (the exceptions table, migration 011).
const (
	ExceptionOverCapture        = "over_capture"         // a clearing above its hold plus the tolerance
	ExceptionExpiredHoldCapture = "expired_hold_capture" // a clearing of an expired hold beyond the available balance
	ExceptionStandInOverdraft   = "standin_overdraft"    // an advice beyond the available balance and the stand-in limit
	ExceptionBlindRefund        = "blind_refund"         // a refund's amount not credited, waiting for an Admin
)

// ExceptionKinds are the kinds of exceptions, for metrics and listings.
var ExceptionKinds = []string{ExceptionOverCapture, ExceptionExpiredHoldCapture, ExceptionStandInOverdraft, ExceptionBlindRefund}

// exceptionMetrics counts exceptions opened, by kind.
type exceptionMetrics struct {
	opened *prometheus.CounterVec
}

func newExceptionMetrics(reg prometheus.Registerer) *exceptionMetrics {
	m := &exceptionMetrics{opened: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "antaca_exceptions_total", Help: "Exceptions opened (losses and refunds waiting for an Admin), by kind.",
	}, []string{"kind"})}
	for _, k := range ExceptionKinds {
		m.opened.WithLabelValues(k)
	}
	if reg != nil {
		if err := reg.Register(m.opened); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				m.opened = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m
}

// ExceptionsOpened counts exceptions of these kinds as opened. Callers
// call it once the transaction that opened them has committed, so that the
// counter never counts a rolled-back one. It is safe for concurrent use.
func (l *Ledger) ExceptionsOpened(kinds ...string) {
	for _, k := range kinds {
		l.exc.opened.WithLabelValues(k).Inc()
	}
}

// OpenExceptionTx opens an exception inside the caller's transaction and
// returns its id; ref, when not empty, is unique among exceptions
// (ErrDuplicateRef). When e.Receivable is above zero and e.PostingID is 0,
// it also posts it: the currency's settlement account (the scheme, which
// settles the full amount) against its exceptions receivable account, a
// posting of kind "exception" (ref, when not empty, unique among them).
// When the excess is a leg of another posting (a capture), e.PostingID
// names it and nothing is posted here.
func (l *Ledger) OpenExceptionTx(ctx context.Context, tx pgx.Tx, e Exception, ref string) (int64, error) {
	switch {
	case e.Amount <= 0 || e.Amount > MaxAmount || e.Receivable < 0 || e.Receivable > e.Amount:
		return 0, fmt.Errorf("exception %s of %d (receivable %d): %w", e.Kind, e.Amount, e.Receivable, ErrInvalidAmount)
	case e.Kind == ExceptionBlindRefund && e.Receivable != 0:
		return 0, fmt.Errorf("blind refund with receivable: %w", ErrInvalid)
	}
	var id int64
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		if e.Receivable > 0 && e.PostingID == 0 {
			legs, err := l.exceptionLegs(ctx, e.Currency, e.Receivable)
			if err != nil {
				return err
			}
			p, err := postLegs(ctx, tx, "exception", ref, e.Currency, legs, nil)
			if err != nil {
				return err
			}
			e.PostingID = p.ID
		}
		if e.Kind == ExceptionStandInOverdraft && e.HoldID != 0 {
			// Its clearing captures the rest only (holds.excepted).
			if _, err := tx.Exec(ctx, `UPDATE holds SET excepted = excepted + $2 WHERE id = $1`, e.HoldID, e.Receivable); err != nil {
				return err
			}
		}
		const ins = `INSERT INTO exceptions (kind, currency, amount, receivable, card_id, account_id, program_id, hold_id, posting_id, journal_id, detail, ref)
			VALUES ($1, $2, $3, $4, NULLIF($5, 0), NULLIF($6, 0), NULLIF($7, 0), NULLIF($8, 0), NULLIF($9, 0), NULLIF($10, 0), $11, NULLIF($12, ''))
			ON CONFLICT (ref) WHERE ref IS NOT NULL DO NOTHING RETURNING id`
		err := tx.QueryRow(ctx, ins, e.Kind, e.Currency, e.Amount, e.Receivable, e.CardID, e.AccountID, e.ProgramID,
			e.HoldID, e.PostingID, e.JournalID, e.Detail, ref).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("exception %s: %w", ref, ErrDuplicateRef)
		}
		return err
	})
	if err != nil {
		return 0, dbErr("open exception "+e.Kind, err)
	}
	return id, nil
}

// exceptionLegs are the legs that put amount on the currency's exceptions
// receivable account, paid to settlement.
func (l *Ledger) exceptionLegs(ctx context.Context, currency string, amount int64) ([]leg, error) {
	// Internal accounts are created outside the caller's transaction (see
	// capture), so the id cache never holds a rolled-back row.
	settle, err := l.internalID(ctx, l.pool, KindSettlement, currency)
	if err != nil {
		return nil, err
	}
	exc, err := l.internalID(ctx, l.pool, KindExceptions, currency)
	if err != nil {
		return nil, err
	}
	return []leg{{account: exc, amount: -amount}, {account: settle, amount: amount}}, nil
}

// CardExceptions returns the exceptions of a card, newest first (tests,
// and the card's history).
func (l *Ledger) CardExceptions(ctx context.Context, cardID int64) ([]Exception, error) {
	rows, err := l.pool.Query(ctx, selectException+` WHERE x.card_id = $1 ORDER BY x.id DESC`, cardID)
	if err != nil {
		return nil, dbErr("exceptions", err)
	}
	out, err := pgx.CollectRows(rows, scanException)
	return out, dbErr("exceptions", err)
}

// verifyExceptions is the exceptions model's invariant: per currency, the
// exceptions receivable account's balance is minus the receivable of the
// open exceptions (a resolution moves both together).
const verifyExceptions = `SELECT coalesce(a.id, 0), 0::bigint, 0::bigint,
	format('exceptions receivable in %s is %s, open exceptions hold %s', coalesce(a.currency, x.currency), coalesce(a.balance, 0), coalesce(x.total, 0))
	FROM (SELECT id, currency, balance FROM accounts WHERE kind = 'exceptions') a
	FULL JOIN (SELECT currency, sum(receivable) AS total FROM exceptions WHERE status = 'open' GROUP BY currency) x
	ON x.currency = a.currency
	WHERE coalesce(a.balance, 0) <> -coalesce(x.total, 0)`

// verifyRefundCredits: what refunds matched to a purchase credited
// (holds.credited) is what their credit postings naming the hold gave, less
// what uncredits took back, and with the reversals' refunds never more
// than the capture.
const verifyRefundCredits = `SELECT 0::bigint, 0::bigint, h.id,
	format('credited %s, matched credits give %s, refunded %s, captured %s', h.credited, coalesce(c.total, 0), h.refunded, coalesce(h.captured_amount, 0))
	FROM holds h LEFT JOIN (
		SELECT p.refunds_hold AS hold_id, -sum(e.amount) AS total
		FROM postings p JOIN postings x ON x.id = p.id OR (x.kind = 'uncredit' AND x.reverses = p.id)
		JOIN entries e ON e.posting_id = x.id JOIN accounts a ON a.id = e.account_id AND a.kind = 'settlement'
		WHERE p.kind = 'credit' AND p.refunds_hold IS NOT NULL GROUP BY p.refunds_hold) c ON c.hold_id = h.id
	WHERE h.credited <> coalesce(c.total, 0) OR (h.credited > 0 AND h.credited + h.refunded > coalesce(h.captured_amount, 0))`

// exceptionChecks are Verify's checks of the exceptions model and of the
// refunds matched to purchases, kept here beside the code they check.
var exceptionChecks = []struct{ name, sql string }{
	{"exceptions_receivable", verifyExceptions},
	{"refund_credits", verifyRefundCredits},
}

// FXMarginBP is how far (basis points of the hold) a clearing in another
// currency than the balance's may exceed its hold, on top of the MCC's
// tolerance, as an exchange-rate difference (the partner balance takes it,
// DESIGN section 6); beyond it the excess is an over-capture.
const FXMarginBP = 1000

// Clearing is the clearing of a hold (a completion) with the limits of
// DESIGN section 6.
type Clearing struct {
	HoldID int64
	Final  int64 // the clearing's amount, in the hold's currency
	FX     bool  // see Capture
	Ref    string
	// ToleranceBP is how far above the amount still held the balances
	// may be charged, in basis points of it (the program's tolerance for
	// the merchant's MCC).
	ToleranceBP int64
	// CardID, ProgramID and JournalID name the exception, if one opens.
	CardID, ProgramID, JournalID int64
	// NotLast marks a completion that is not the last (multiple
	// completions): it captures a part carved out of the hold (see
	// carvePart) and leaves the rest open.
	NotLast bool
}

// Cleared is what ClearTx did.
type Cleared struct {
	HoldID    int64   // the hold captured: the clearing's, or the part carved out of it
	Posting   Posting // the capture (ID 0 when nothing was charged)
	Charged   int64   // what the user and partner balances paid
	Excess    int64   // what went to exceptions receivable instead
	Exception Exception
}

// ClearTx captures a hold for a clearing inside the caller's transaction,
// within DESIGN section 6's limits: an open hold is charged at most what it
// still holds plus the tolerance; an expired one (its clearing came late)
// at most the available balance of its accounts, as they are now; what a
// stand-in advice already put on exceptions (holds.excepted) is not
// charged again. The excess is acknowledged, not refused: the scheme
// settlement account takes the full amount and an exception of kind
// over_capture or expired_hold_capture carries the excess on the exceptions
// receivable account. A hold captured or released before is
// ErrHoldResolved.
func (l *Ledger) ClearTx(ctx context.Context, tx pgx.Tx, c Clearing) (Cleared, error) {
	var out Cleared
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		var (
			status, currency string
			amount, excepted int64
			user, partner    int64
			taken, used      int64
		)
		if err := lockHoldUser(ctx, tx, c.HoldID); err != nil {
			return err
		}
		const q = `SELECT status, currency, amount, excepted, coalesce(user_account_id, 0), coalesce(partner_account_id, 0),
			parts_taken, tolerance_used FROM holds WHERE id = $1 FOR UPDATE`
		if err := tx.QueryRow(ctx, q, c.HoldID).Scan(&status, &currency, &amount, &excepted, &user, &partner, &taken, &used); err != nil {
			return err
		}
		final := max(c.Final-excepted, 0)
		kind, fx, charge := ExceptionOverCapture, c.FX, final
		holdID, take := c.HoldID, int64(0)
		switch status {
		case HoldOpen:
			bp := min(max(c.ToleranceBP, 0), 10000)
			if fx {
				bp += FXMarginBP
			}
			// The tolerance is of the whole hold (what it holds and what
			// its parts took), less what its parts charged beyond theirs.
			allowance := max((amount+taken)*bp/10000-used, 0)
			take = amount
			if c.NotLast {
				take = min(final, amount)
			}
			charge = min(final, take+allowance)
		case HoldExpired:
			kind, fx = ExceptionExpiredHoldCapture, false
			var ids []int64
			for _, id := range []int64{user, partner} {
				if id > 0 {
					ids = append(ids, id)
				}
			}
			locked, err := lockAccounts(ctx, tx, ids...)
			if err != nil {
				return err
			}
			for _, a := range locked {
				charge = min(charge, max(a.Available(), 0))
			}
		default:
			return fmt.Errorf("status %s: %w", status, ErrHoldResolved)
		}
		if c.NotLast {
			var err error
			if holdID, err = carvePart(ctx, tx, c.HoldID, take, max(charge-take, 0), min(excepted, c.Final), status == HoldOpen); err != nil {
				return err
			}
		}
		p, err := l.capture(ctx, tx, holdID, charge, fx, c.Ref, true)
		if err != nil {
			return err
		}
		out.HoldID, out.Posting, out.Charged, out.Excess = holdID, p, charge, final-charge
		if out.Excess <= 0 {
			return nil
		}
		out.Exception = Exception{Kind: kind, Currency: currency, Amount: out.Excess, Receivable: out.Excess, CardID: c.CardID,
			AccountID: user, ProgramID: c.ProgramID, HoldID: holdID, JournalID: c.JournalID,
			Detail: fmt.Sprintf("clearing %d, charged %d", final, charge)}
		ref := ""
		if c.Ref != "" {
			ref = "exception:" + c.Ref
		}
		out.Exception.ID, err = l.OpenExceptionTx(ctx, tx, out.Exception, ref)
		return err
	})
	if err != nil {
		return Cleared{}, dbErr(fmt.Sprintf("clear hold %d", c.HoldID), err)
	}
	return out, nil
}

// Refund is a refund to credit (DESIGN section 6, "where money comes
// from").
type Refund struct {
	UserAccountID, PartnerAccountID int64 // as CreditTx
	Currency                        string
	Amount                          int64
	Ref                             string // the credit's ref; the exception of what waits is "refund:" + Ref
	// PurchaseHoldID is the hold of the purchase the refund was matched
	// to; 0: a blind refund.
	PurchaseHoldID int64
	// BlindLimit is what a blind refund may credit (the program's).
	BlindLimit int64
	// CardID, ProgramID and JournalID name the exception, if one opens.
	CardID, ProgramID, JournalID int64
}

// Refunded is what CreditRefundTx did.
type Refunded struct {
	Credited  int64
	Waiting   int64 // not credited: an exception of kind blind_refund
	Exception Exception
}

// CreditRefundTx credits a cleared refund inside the caller's transaction:
// matched to a purchase, at most what its capture took less what was
// refunded (reversals) and credited (refunds) before; blind, at most the
// program's blind-refund limit. The rest is not credited: it waits in the
// exceptions queue (kind blind_refund, nothing receivable) for an Admin.
// The partner credit/deposit account grows by what was credited only. A
// refund handled before (its credit's or its exception's ref exists) is
// ErrDuplicateRef and changes nothing.
func (l *Ledger) CreditRefundTx(ctx context.Context, tx pgx.Tx, r Refund) (Refunded, error) {
	if r.Amount <= 0 || r.Amount > MaxAmount {
		return Refunded{}, fmt.Errorf("refund %d: %w", r.Amount, ErrInvalidAmount)
	}
	var out Refunded
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM postings WHERE kind = 'credit' AND ref = $1)
			OR EXISTS (SELECT 1 FROM exceptions WHERE ref = $2)`, r.Ref, "refund:"+r.Ref).Scan(&done); err != nil {
			return err
		}
		if done {
			return fmt.Errorf("refund %s: %w", r.Ref, ErrDuplicateRef)
		}
		room := max(r.BlindLimit, 0)
		if r.PurchaseHoldID != 0 {
			// The purchase's hold locked: refunds of one purchase queue here.
			var captured *int64
			var refunded, credited int64
			var status string
			if err := lockHoldUser(ctx, tx, r.PurchaseHoldID); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT status, captured_amount, refunded, credited FROM holds WHERE id = $1 FOR UPDATE`,
				r.PurchaseHoldID).Scan(&status, &captured, &refunded, &credited); err != nil {
				return err
			}
			room = 0
			if status == HoldCaptured && captured != nil {
				room = max(*captured-refunded-credited, 0)
			}
		}
		out.Credited = min(r.Amount, room)
		out.Waiting = r.Amount - out.Credited
		if out.Credited > 0 {
			p, err := l.CreditTx(ctx, tx, r.UserAccountID, r.PartnerAccountID, r.Currency, out.Credited, r.Ref)
			if err != nil {
				return err
			}
			if r.PurchaseHoldID != 0 {
				if _, err := tx.Exec(ctx, `UPDATE postings SET refunds_hold = $2 WHERE id = $1`, p.ID, r.PurchaseHoldID); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `UPDATE holds SET credited = credited + $2 WHERE id = $1`, r.PurchaseHoldID, out.Credited); err != nil {
					return err
				}
			}
		}
		if out.Waiting == 0 {
			return nil
		}
		detail := fmt.Sprintf("refund of %d matched to no purchase, %d credited (blind-refund limit %d)", r.Amount, out.Credited, r.BlindLimit)
		if r.PurchaseHoldID != 0 {
			detail = fmt.Sprintf("refund of %d above what hold %d captured less earlier refunds; %d credited", r.Amount, r.PurchaseHoldID, out.Credited)
		}
		out.Exception = Exception{Kind: ExceptionBlindRefund, Currency: r.Currency, Amount: out.Waiting, CardID: r.CardID,
			AccountID: r.UserAccountID, ProgramID: r.ProgramID, HoldID: r.PurchaseHoldID, JournalID: r.JournalID, Detail: detail}
		if out.Exception.AccountID == 0 {
			out.Exception.AccountID = r.PartnerAccountID
		}
		var err error
		out.Exception.ID, err = l.OpenExceptionTx(ctx, tx, out.Exception, "refund:"+r.Ref)
		return err
	})
	if err != nil {
		return Refunded{}, dbErr("refund "+r.Ref, err)
	}
	return out, nil
}

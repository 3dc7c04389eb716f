package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5"
)

// ErrHoldNotCaptured is returned by RefundCaptureTx for a hold that is not
// captured (open, released or expired): there is nothing to give back.
var ErrHoldNotCaptured = errors.New("hold not captured")

// RefundCaptureTx gives back, inside the caller's transaction, what the
// capture of a hold took above keep (in the hold's currency): a posting of
// kind "refund" that negates the capture posting in the proportion
// refund / captured amount, so a full refund negates it exactly (the FX
// difference included) and a partial one gives the user and the partner
// credit/deposit back the same share; a rounding remainder goes to the
// partner (FX) balance, else to settlement, and the refunds of a whole
// capture, however split, negate it exactly. What a hold's refunds give back
// never exceeds its capture: a second reversal refunds only what is left.
// captureRef, when not empty, must be the ref of the hold's capture (the
// message being reversed made it), else the hold is ErrHoldNotCaptured. It
// returns the amount refunded, 0 when nothing is left above keep. ref, when
// not empty, is unique among refunds.
func (l *Ledger) RefundCaptureTx(ctx context.Context, tx pgx.Tx, holdID int64, captureRef string, keep int64, ref string) (int64, error) {
	var refunded int64
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		var err error
		refunded, err = l.refundCapture(ctx, tx, holdID, captureRef, keep, ref)
		return err
	})
	if err != nil {
		return 0, dbErr(fmt.Sprintf("refund hold %d", holdID), err)
	}
	return refunded, nil
}

func (l *Ledger) refundCapture(ctx context.Context, tx pgx.Tx, holdID int64, captureRef string, keep int64, ref string) (int64, error) {
	var (
		status, currency   string
		captured, postedID *int64
		refunded, credited int64
		postedRef          *string
	)
	const hold = `SELECT h.status, h.currency, h.captured_amount, h.refunded, h.credited, h.capture_posting_id, p.ref
		FROM holds h LEFT JOIN postings p ON p.id = h.capture_posting_id WHERE h.id = $1 FOR UPDATE OF h`
	if err := lockHoldUser(ctx, tx, holdID); err != nil {
		return 0, err
	}
	if err := tx.QueryRow(ctx, hold, holdID).Scan(&status, &currency, &captured, &refunded, &credited, &postedID, &postedRef); err != nil {
		return 0, err
	}
	if status != HoldCaptured || captured == nil || postedID == nil || *captured <= 0 {
		return 0, fmt.Errorf("status %s: %w", status, ErrHoldNotCaptured)
	}
	if captureRef != "" && (postedRef == nil || *postedRef != captureRef) {
		return 0, fmt.Errorf("captured by another message: %w", ErrHoldNotCaptured)
	}
	// What refunds matched to this purchase credited is given back already.
	amount := *captured - max(keep, 0) - refunded - credited
	if amount <= 0 {
		return 0, nil
	}
	legs, err := postingLegs(ctx, tx, *postedID)
	if err != nil {
		return 0, err
	}
	// Each leg gives back its share of what has been refunded after this
	// refund less its share before it (cumulative, so that the refunds of
	// a whole capture negate each leg exactly); the remainder of the
	// rounding goes on the partner (FX) balance, else on settlement, and
	// those remainders too add up to nothing over a whole capture.
	// Shares are rounded to the nearest unit, halves away from zero, so a
	// cardholder's share is never shorted by truncation.
	share := func(leg, of int64) int64 {
		v := new(big.Int).Mul(big.NewInt(leg), big.NewInt(of))
		v.Mul(v, big.NewInt(2))
		half := big.NewInt(*captured)
		if v.Sign() < 0 {
			half.Neg(half)
		}
		v.Add(v, half)
		return v.Quo(v, big.NewInt(2**captured)).Int64()
	}
	var sum int64
	rest := -1
	for i := range legs {
		legs[i].amount = -(share(legs[i].amount, refunded+amount) - share(legs[i].amount, refunded))
		sum += legs[i].amount
		if legs[i].kind == KindPartner || rest < 0 && legs[i].kind == KindSettlement {
			rest = i
		}
	}
	if sum != 0 {
		if rest < 0 {
			return 0, fmt.Errorf("refund of hold %d: capture posting %d has no settlement leg", holdID, *postedID)
		}
		legs[rest].amount -= sum
	}
	p, err := postLegs(ctx, tx, "refund", ref, currency, legs, nil)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE postings SET refunds_hold = $2 WHERE id = $1`, p.ID, holdID); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE holds SET refunded = refunded + $2 WHERE id = $1`, holdID, amount); err != nil {
		return 0, err
	}
	return amount, nil
}

// CreditTx posts a refund's credit (kind "credit") inside the caller's
// transaction: the scheme (settlement) pays amount to the user account, and
// the partner credit/deposit account gets the same amount back from credit
// usage, the reverse of what a purchase's capture does. Without a user
// account (the partner keeps user balances) settlement pays the partner
// account. ref, when not empty, is unique among credits (ErrDuplicateRef).
// A closed account is ErrAccountNotActive: it could never use the money.
func (l *Ledger) CreditTx(ctx context.Context, tx pgx.Tx, userAccountID, partnerAccountID int64, currency string, amount int64, ref string) (Posting, error) {
	if amount <= 0 {
		return Posting{}, fmt.Errorf("credit %d: %w", amount, ErrInvalidAmount)
	}
	settle, err := l.internalID(ctx, l.pool, KindSettlement, currency)
	if err != nil {
		return Posting{}, dbErr("credit", err)
	}
	usage, err := l.internalID(ctx, l.pool, KindCreditUsage, currency)
	if err != nil {
		return Posting{}, dbErr("credit", err)
	}
	var legs []leg
	switch {
	case userAccountID > 0:
		legs = []leg{{account: userAccountID, amount: amount}, {account: settle, amount: -amount}}
		if partnerAccountID > 0 {
			legs = append(legs, leg{account: partnerAccountID, amount: amount}, leg{account: usage, amount: -amount})
		}
	case partnerAccountID > 0:
		legs = []leg{{account: partnerAccountID, amount: amount}, {account: settle, amount: -amount}}
	default:
		return Posting{}, fmt.Errorf("credit: no account: %w", ErrInvalid)
	}
	var p Posting
	err = pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		var err error
		p, err = postLegs(ctx, tx, "credit", ref, currency, legs, func(a Account) error {
			switch {
			case a.Currency != currency:
				return fmt.Errorf("account %d: %w", a.ID, ErrCurrencyMismatch)
			case a.State == StateClosed:
				// A closed account keeps nothing: the money would be stuck.
				return fmt.Errorf("account %d is closed: %w", a.ID, ErrAccountNotActive)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return Posting{}, dbErr("credit", err)
	}
	return p, nil
}

// UncreditTx takes back, inside the caller's transaction, what the credit
// posted under creditRef gave above keep (the reversal of a refund): a
// posting of kind "uncredit" negating the credit's legs for that amount and
// naming it in reverses. What the uncredits of one credit take back never
// exceeds it: a second reversal takes back only what is left. It returns
// the amount taken back, 0 when nothing is left above keep, and
// ErrNotFound when no credit has that ref. ref, when not empty, is unique
// among uncredits.
func (l *Ledger) UncreditTx(ctx context.Context, tx pgx.Tx, creditRef string, keep int64, ref string) (int64, error) {
	var back int64
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		var creditID int64
		// The credit row locked: uncredits of one credit queue here.
		if err := tx.QueryRow(ctx, `SELECT id FROM postings WHERE kind = 'credit' AND ref = $1 FOR UPDATE`, creditRef).Scan(&creditID); err != nil {
			return err
		}
		legs, err := postingLegs(ctx, tx, creditID)
		if err != nil {
			return err
		}
		var credited int64
		for _, g := range legs {
			if g.kind == KindSettlement {
				credited = -g.amount
			}
		}
		var before int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(e.amount), 0) FROM postings p JOIN entries e ON e.posting_id = p.id
			JOIN accounts a ON a.id = e.account_id AND a.kind = 'settlement' WHERE p.kind = 'uncredit' AND p.reverses = $1`, creditID).Scan(&before); err != nil {
			return err
		}
		if credited <= 0 {
			return fmt.Errorf("credit posting %d has no settlement leg: %w", creditID, ErrInvalid)
		}
		if back = credited - max(keep, 0) - before; back <= 0 {
			back = 0
			return nil
		}
		// Every leg of a credit is ±credited: each takes back ∓back.
		for i := range legs {
			legs[i].amount = -legs[i].amount / credited * back
		}
		p, err := postLegs(ctx, tx, "uncredit", ref, legs[0].currency, legs, nil)
		if err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `UPDATE postings SET reverses = $2 WHERE id = $1`, p.ID, creditID); err != nil {
			return err
		}
		// A refund matched to its purchase: the purchase may be refunded
		// by that much again (holds.credited, CreditRefundTx).
		_, err = tx.Exec(ctx, `UPDATE holds SET credited = credited - $2 WHERE id = (SELECT refunds_hold FROM postings WHERE id = $1)`, creditID, back)
		return err
	})
	if err != nil {
		return 0, dbErr("uncredit "+creditRef, err)
	}
	return back, nil
}

// leg is one entry of a posting: read (with its currency and its account's
// kind) or to be written.
type leg struct {
	account, amount int64
	currency, kind  string
}

// postingLegs reads the entries of a posting, in order.
func postingLegs(ctx context.Context, tx pgx.Tx, postingID int64) ([]leg, error) {
	rows, err := tx.Query(ctx, `SELECT e.account_id, e.amount, e.currency, a.kind FROM entries e JOIN accounts a ON a.id = e.account_id
		WHERE e.posting_id = $1 ORDER BY e.id`, postingID)
	if err != nil {
		return nil, err
	}
	var legs []leg
	var g leg
	_, err = pgx.ForEachRow(rows, []any{&g.account, &g.amount, &g.currency, &g.kind}, func() error {
		legs = append(legs, g)
		return nil
	})
	return legs, err
}

// postLegs writes a posting of kind on legs (zero amounts left out): it
// locks their accounts (in the global order), lets check refuse one, inserts
// the posting and moves the balances.
func postLegs(ctx context.Context, tx pgx.Tx, kind, ref, currency string, legs []leg, check func(Account) error) (Posting, error) {
	accounts := make([]int64, 0, len(legs))
	amounts := make([]int64, 0, len(legs))
	deltas := map[int64][2]int64{}
	for _, g := range legs {
		if g.amount != 0 {
			accounts, amounts = append(accounts, g.account), append(amounts, g.amount)
			d := deltas[g.account]
			d[0] += g.amount
			deltas[g.account] = d
		}
	}
	locked, err := lockAccounts(ctx, tx, accounts...)
	if err != nil {
		return Posting{}, err
	}
	for _, id := range accounts {
		a, ok := locked[id]
		if !ok {
			return Posting{}, fmt.Errorf("account %d: %w", id, ErrNotFound)
		}
		if check != nil {
			if err := check(a); err != nil {
				return Posting{}, err
			}
		}
	}
	p, err := insertPosting(ctx, tx, kind, ref, 0, currency, accounts, amounts)
	if err != nil {
		return Posting{}, err
	}
	return p, moveHeld(ctx, tx, deltas)
}

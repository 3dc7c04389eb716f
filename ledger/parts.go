package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Incremental authorisations and holds completed in parts (issue 17;
// docs/ledger.md "Partial, incremental, multiple completions").

// IncrementHoldTx raises an open hold by amount inside the caller's
// transaction (an incremental authorisation, ref its journal ref): its
// accounts must be active and their available cover amount (a
// *FundsError otherwise, the user account checked first, and nothing
// changes); the hold's original amount grows too, and its expiry moves to
// now + ttl when that is later (never earlier). It returns the hold as it
// is then and the available amount of the account that decides DE54 (the
// user account when there is one). A hold no longer open is
// ErrHoldResolved; a ref used before is ErrDuplicateRef.
func (l *Ledger) IncrementHoldTx(ctx context.Context, tx pgx.Tx, holdID, amount int64, ref string, ttl time.Duration) (Hold, int64, error) {
	var (
		h     Hold
		avail int64
	)
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		if amount <= 0 || amount > MaxAmount {
			return ErrInvalidAmount
		}
		var err error
		if h, err = lockOpenHold(ctx, tx, holdID); err != nil {
			return err
		}
		ids := holdAccounts(h)
		locked, err := lockAccounts(ctx, tx, ids...)
		if err != nil {
			return err
		}
		for i, id := range ids {
			a, ok := locked[id]
			if !ok {
				return fmt.Errorf("account %d: %w", id, ErrNotFound)
			}
			if i == 0 {
				avail = a.Available()
			}
			if a.State != StateActive {
				return fmt.Errorf("account %d: %w", id, ErrAccountNotActive)
			}
			if a.Available() < amount {
				return &FundsError{AccountID: id, Available: a.Available(), Partner: id == h.PartnerAccountID && id != h.UserAccountID}
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hold_increments (ref, hold_id, amount) VALUES ($1, $2, $3)`, ref, holdID, amount); err != nil {
			return err
		}
		held := map[int64][2]int64{}
		for _, id := range ids {
			held[id] = [2]int64{0, amount}
		}
		if err := moveHeld(ctx, tx, held); err != nil {
			return err
		}
		expires := l.now().Add(ttl)
		if ttl <= 0 {
			expires = l.now().Add(l.cfg.HoldTTL)
		}
		const upd = `UPDATE holds SET amount = amount + $2, original_amount = original_amount + $2,
			expires_at = greatest(expires_at, $3) WHERE id = $1`
		if _, err := tx.Exec(ctx, upd, holdID, amount, expires); err != nil {
			return err
		}
		h.Amount, h.OriginalAmount, avail = h.Amount+amount, h.OriginalAmount+amount, avail-amount
		return nil
	})
	var funds *FundsError
	if errors.As(err, &funds) {
		return Hold{}, funds.Available, funds
	}
	if err != nil {
		return Hold{}, 0, dbErr(fmt.Sprintf("increment hold %d", holdID), err)
	}
	return h, avail, nil
}

// holdAccounts are a hold's accounts, the user account first.
func holdAccounts(h Hold) []int64 {
	var ids []int64
	for _, id := range []int64{h.UserAccountID, h.PartnerAccountID} {
		if id > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// ReleaseIncrementTx answers the reversal of an incremental authorisation
// (ref its journal ref) inside the caller's transaction: its hold gives
// back what the increment added above keep, at most what the hold still
// holds, once (a second reversal releases nothing). found is false when
// ref raised no hold.
func (l *Ledger) ReleaseIncrementTx(ctx context.Context, tx pgx.Tx, ref string, keep int64) (released int64, found bool, err error) {
	err = pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		var holdID, amount, done int64
		err := tx.QueryRow(ctx, `SELECT hold_id, amount, released FROM hold_increments WHERE ref = $1 FOR UPDATE`, ref).Scan(&holdID, &amount, &done)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		h, err := lockOpenHold(ctx, tx, holdID)
		if errors.Is(err, ErrHoldResolved) {
			return nil // captured, released or expired: nothing held any more
		}
		if err != nil {
			return err
		}
		give := min(max(amount-done-max(keep, 0), 0), h.Amount)
		if give == 0 {
			return nil
		}
		if _, err := l.release(ctx, tx, holdID, h.Amount-give); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE hold_increments SET released = released + $2 WHERE ref = $1`, ref, give); err != nil {
			return err
		}
		released = give
		return nil
	})
	if err != nil {
		return 0, false, dbErr("release increment", err)
	}
	return released, found, nil
}

// carvePart takes a part out of hold id (locked by the caller) for a
// completion that is not the last: a hold of its own (parent_id id) of
// take, which the caller captures; an expired hold gives an expired part
// of nothing. The parent keeps the rest open, and counts what its parts
// took and charged beyond it (tolerance), so that the MCC tolerance
// applies once to the whole.
func carvePart(ctx context.Context, tx pgx.Tx, id, take, extra, excepted int64, open bool) (int64, error) {
	const ins = `INSERT INTO holds (user_account_id, partner_account_id, currency, original_amount, amount, status, resolved_at, expires_at, created_at, parent_id)
		SELECT user_account_id, partner_account_id, currency, $2, $2, CASE WHEN $3 THEN 'open' ELSE 'expired' END,
			CASE WHEN $3 THEN NULL ELSE now() END, expires_at, now(), id FROM holds WHERE id = $1 RETURNING id`
	var part int64
	if err := tx.QueryRow(ctx, ins, id, take, open).Scan(&part); err != nil {
		return 0, err
	}
	const upd = `UPDATE holds SET amount = amount - $2, parts_taken = parts_taken + $2, tolerance_used = tolerance_used + $3,
		excepted = excepted - $4 WHERE id = $1`
	_, err := tx.Exec(ctx, upd, id, take, extra, excepted)
	return part, err
}

// partChecks are Verify's checks of holds completed in parts.
var partChecks = []struct{ name, sql string }{
	{"hold_parts", `SELECT 0::bigint, 0::bigint, h.id, format('parts_taken %s, its parts hold %s', h.parts_taken, coalesce(s.total, 0))
		FROM holds h LEFT JOIN (SELECT parent_id, sum(original_amount) AS total FROM holds WHERE parent_id IS NOT NULL GROUP BY parent_id) s
		ON s.parent_id = h.id WHERE h.parts_taken <> coalesce(s.total, 0)`},
	{"hold_increments", `SELECT 0::bigint, 0::bigint, i.hold_id, format('increment %s of a hold that does not exist or is a part', i.ref)
		FROM hold_increments i LEFT JOIN holds h ON h.id = i.hold_id WHERE h.id IS NULL OR h.parent_id IS NOT NULL`},
}

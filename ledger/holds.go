package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/internal/periodic"
)

// Hold is an authorised amount reserved on a user account and/or a partner
// credit/deposit account until it is captured, released or expires.
type Hold struct {
	ID               int64
	UserAccountID    int64 // 0 when the program keeps no user balance with us
	PartnerAccountID int64 // 0 when none
	Currency         string
	OriginalAmount   int64 // as authorised
	Amount           int64 // still held while open (after partial releases)
	Status           string
	Ref              string
	CapturedAmount   *int64
	CapturePostingID int64
	CreatedAt        time.Time
	ExpiresAt        time.Time
	ResolvedAt       *time.Time
}

// HoldSpec asks for a hold. Force marks an advice: the scheme already
// approved it, so it is held without state and funds checks and may take an
// account below zero (which is flagged).
type HoldSpec struct {
	UserAccountID    int64 // 0 = none
	PartnerAccountID int64 // 0 = none
	Currency         string
	Amount           int64
	Ref              string // unique per authorisation; a repeated Ref returns the first hold
	Force            bool
	// Capped limits a forced hold (an advice, DESIGN section 6) to the
	// available amount of its accounts (never below zero) plus StandIn;
	// the rest is HoldResult.Excess, for the caller to post to exceptions
	// receivable. The hold may then be of 0.
	Capped  bool
	StandIn int64
	// Partial: the terminal accepts a partial approval: when the
	// accounts allow less than Amount but more than zero, the hold is of
	// what they allow (HoldResult.Hold.Amount tells).
	Partial bool
	// TTL is how long the hold lasts (the merchant's category decides);
	// 0: the ledger's HoldTTL.
	TTL time.Duration
}

// HoldResult is the outcome of one HoldSpec in PlaceHolds. Err is nil when
// the hold was placed (or already existed under Ref: Duplicate). AccountID
// and Available are the account that decided and its available amount
// after the decision (the user account when there is one), for DE54.
type HoldResult struct {
	Hold      Hold
	Duplicate bool
	Err       error
	AccountID int64
	Available int64
	Excess    int64 // a capped spec: what was asked beyond the hold placed
}

const selectHold = `SELECT id, coalesce(user_account_id, 0), coalesce(partner_account_id, 0), currency,
	original_amount, amount, status, coalesce(ref, ''), captured_amount, coalesce(capture_posting_id, 0),
	created_at, expires_at, resolved_at FROM holds`

func scanHold(row pgx.CollectableRow) (Hold, error) {
	var h Hold
	err := row.Scan(&h.ID, &h.UserAccountID, &h.PartnerAccountID, &h.Currency, &h.OriginalAmount, &h.Amount,
		&h.Status, &h.Ref, &h.CapturedAmount, &h.CapturePostingID, &h.CreatedAt, &h.ExpiresAt, &h.ResolvedAt)
	return h, err
}

// Hold returns the hold with id.
func (l *Ledger) Hold(ctx context.Context, id int64) (Hold, error) {
	return l.oneHold(ctx, fmt.Sprintf("hold %d", id), selectHold+` WHERE id = $1`, id)
}

// HoldByRef returns the hold placed under ref.
func (l *Ledger) HoldByRef(ctx context.Context, ref string) (Hold, error) {
	return l.oneHold(ctx, "hold by ref", selectHold+` WHERE ref = $1`, ref)
}

func (l *Ledger) oneHold(ctx context.Context, op, q string, args ...any) (Hold, error) {
	rows, err := l.pool.Query(ctx, q, args...)
	if err != nil {
		return Hold{}, dbErr(op, err)
	}
	h, err := pgx.CollectExactlyOneRow(rows, scanHold)
	if err != nil {
		return Hold{}, dbErr(op, err)
	}
	return h, nil
}

// PlaceHold places one hold. A shortfall is a *FundsError (ErrInsufficientFunds
// for the user account, checked first, ErrInsufficientPartnerFunds for the
// partner account); a repeated Ref returns the existing hold.
func (l *Ledger) PlaceHold(ctx context.Context, spec HoldSpec) (Hold, error) {
	res, err := l.PlaceHolds(ctx, []HoldSpec{spec})
	if err != nil {
		return Hold{}, err
	}
	return res[0].Hold, res[0].Err
}

// PlaceHolds places many holds in one transaction and two round trips:
// every account of the batch is locked in ascending id order first, so
// concurrent batches never deadlock on accounts, then the specs are decided
// in order, each independently: a decline of one does not affect the
// others, and later specs see the holds of earlier ones; then one insert
// of the new holds and one update of their accounts. It
// returns one result per spec, in order; the error is for the batch as a
// whole (the database failed) and then no hold was placed.
func (l *Ledger) PlaceHolds(ctx context.Context, specs []HoldSpec) ([]HoldResult, error) {
	var out []HoldResult
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			out, err = l.placeHolds(ctx, tx, specs)
			return err
		})
		if err == nil || !isDeadlock(err) {
			break
		}
		// Two batches inserting the same refs in opposite orders on
		// disjoint accounts; Postgres aborted one. Retry it whole.
		l.log.Warn("place holds: retrying after deadlock", "attempt", attempt+1)
	}
	if err != nil {
		return nil, dbErr("place holds", err)
	}
	return out, nil
}

// PlaceHoldsTx is PlaceHolds inside the caller's transaction, so that the
// holds commit together with the caller's own rows (the authorisation
// journal). Declines are results, not errors: tx stays usable. The locks
// on the accounts are held until tx ends.
func (l *Ledger) PlaceHoldsTx(ctx context.Context, tx pgx.Tx, specs []HoldSpec) ([]HoldResult, error) {
	out, err := l.placeHolds(ctx, tx, specs)
	if err != nil {
		return nil, dbErr("place holds", err)
	}
	return out, nil
}

// PlaceHoldTx is PlaceHold inside the caller's transaction (see
// PlaceHoldsTx).
func (l *Ledger) PlaceHoldTx(ctx context.Context, tx pgx.Tx, spec HoldSpec) (Hold, error) {
	res, err := l.PlaceHoldsTx(ctx, tx, []HoldSpec{spec})
	if err != nil {
		return Hold{}, err
	}
	return res[0].Hold, res[0].Err
}

func (l *Ledger) placeHolds(ctx context.Context, tx pgx.Tx, specs []HoldSpec) ([]HoldResult, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	b := l.NewHoldBatch()
	var q pgx.Batch
	b.QueueLock(&q, SpecAccounts(specs), len(specs))
	if err := tx.SendBatch(ctx, &q).Close(); err != nil {
		return nil, err
	}
	for {
		out := b.Decide(specs)
		var w pgx.Batch
		b.QueueWrite(&w)
		b.QueueFinish(&w)
		err := tx.SendBatch(ctx, &w).Close()
		if err == nil {
			return out, nil
		}
		if retry, err := b.Retry(ctx, tx, err); !retry {
			return nil, err
		}
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// lockOpenHold locks the hold row and checks that it is still open.
func lockOpenHold(ctx context.Context, tx pgx.Tx, id int64) (Hold, error) {
	if err := lockHoldUser(ctx, tx, id); err != nil {
		return Hold{}, err
	}
	rows, err := tx.Query(ctx, selectHold+` WHERE id = $1 FOR UPDATE`, id)
	if err != nil {
		return Hold{}, err
	}
	h, err := pgx.CollectExactlyOneRow(rows, scanHold)
	if err != nil {
		return Hold{}, err
	}
	if h.Status != HoldOpen {
		return h, fmt.Errorf("status %s: %w", h.Status, ErrHoldResolved)
	}
	return h, nil
}

// moveHeld applies balance and held deltas to accounts already locked, and
// sets negative_flag on a user or partner credit/deposit account whose
// available goes below zero.
func moveHeld(ctx context.Context, tx pgx.Tx, deltas map[int64][2]int64) error {
	ids := make([]int64, 0, len(deltas))
	dBal := make([]int64, 0, len(deltas))
	dHeld := make([]int64, 0, len(deltas))
	for id, d := range deltas {
		if d[0] == 0 && d[1] == 0 {
			continue
		}
		ids, dBal, dHeld = append(ids, id), append(dBal, d[0]), append(dHeld, d[1])
	}
	if len(ids) == 0 {
		return nil
	}
	const q = `UPDATE accounts a SET balance = a.balance + v.dbal, held = a.held + v.dheld,
		negative_flag = a.negative_flag OR (a.kind IN ('user', 'partner_credit', 'partner_deposit')
			AND a.balance + v.dbal - (a.held + v.dheld) < 0)
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v (id, dbal, dheld)
		WHERE a.id = v.id`
	_, err := tx.Exec(ctx, q, pgx.QueryExecModeExec, ids, dBal, dHeld)
	return err
}

// Capture resolves an open hold for its final amount (a completion) and
// posts one balanced posting; the held amount is released from both
// accounts. Without fx the user pays final; with fx (transaction currency
// differed from billing currency) the user pays the amount still held and
// the difference (held − final, possibly negative) goes to the partner's
// partner (FX) account of that currency. The partner credit/deposit account
// pays final to credit usage; without a user account it pays final to
// settlement. final may exceed the hold: the accounts may then go below
// zero, which is flagged, never refused. A hold resolves once: a second
// capture or a capture after a release is ErrHoldResolved. ref, when not
// empty, is unique among captures.
func (l *Ledger) Capture(ctx context.Context, holdID int64, final int64, fx bool, ref string) (Posting, error) {
	var p Posting
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var err error
		p, err = l.capture(ctx, tx, holdID, final, fx, ref, false)
		return err
	})
	if err != nil {
		return Posting{}, dbErr(fmt.Sprintf("capture hold %d", holdID), err)
	}
	return p, nil
}

// CaptureTx is Capture inside the caller's transaction (it may capture a
// hold placed earlier in the same transaction, as a financial x200 does).
// It runs under a savepoint: on an error nothing of it remains and tx stays
// usable.
func (l *Ledger) CaptureTx(ctx context.Context, tx pgx.Tx, holdID int64, final int64, fx bool, ref string) (Posting, error) {
	var p Posting
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		var err error
		p, err = l.capture(ctx, sp, holdID, final, fx, ref, false)
		return err
	})
	if err != nil {
		return Posting{}, dbErr(fmt.Sprintf("capture hold %d", holdID), err)
	}
	return p, nil
}

// capture is Capture; with expired, a hold that expired is captured too
// (a late clearing): it holds nothing any more, so nothing is released.
func (l *Ledger) capture(ctx context.Context, tx pgx.Tx, holdID int64, final int64, fx bool, ref string, expired bool) (Posting, error) {
	if final < 0 {
		return Posting{}, fmt.Errorf("final %d: %w", final, ErrInvalidAmount)
	}
	var currency string
	if err := tx.QueryRow(ctx, `SELECT currency FROM holds WHERE id = $1`, holdID).Scan(&currency); err != nil {
		return Posting{}, err
	}
	// The internal accounts are created (once) outside the transaction,
	// so that the id cache never holds a row a rollback removed.
	settle, err := l.internalID(ctx, l.pool, KindSettlement, currency)
	if err != nil {
		return Posting{}, err
	}
	usage, err := l.internalID(ctx, l.pool, KindCreditUsage, currency)
	if err != nil {
		return Posting{}, err
	}
	var p Posting
	err = func() error {
		h, err := lockOpenHold(ctx, tx, holdID)
		wasOpen := err == nil
		if expired && h.Status == HoldExpired {
			h.Amount, err = 0, nil // released when it expired
		}
		if err != nil {
			return err
		}
		held := map[int64][2]int64{}
		addHeld := func(id, d int64) {
			if id > 0 {
				v := held[id]
				v[1] += d
				held[id] = v
			}
		}
		addHeld(h.UserAccountID, -h.Amount)
		addHeld(h.PartnerAccountID, -h.Amount)
		userPays := final
		if fx && h.UserAccountID > 0 {
			userPays = h.Amount
		}
		legs := captureLegs(h.UserAccountID, h.PartnerAccountID, final, userPays, settle, usage)
		if diff := userPays - final; diff != 0 {
			partnerID, err := l.partnerOf(ctx, tx, h)
			if err != nil {
				return err
			}
			fxID, err := l.partnerFXID(ctx, tx, partnerID, h.Currency)
			if err != nil {
				return err
			}
			legs = append(legs, leg{account: fxID, amount: diff})
		}
		ids := make([]int64, 0, len(legs)+2)
		for _, g := range legs {
			ids = append(ids, g.account)
		}
		for id := range held {
			ids = append(ids, id)
		}
		if _, err := lockAccounts(ctx, tx, ids...); err != nil {
			return err
		}
		// Merge legs on the same account and drop zero amounts, so that
		// a capture of 0 posts nothing.
		sum := map[int64]int64{}
		var order []int64
		for _, g := range legs {
			if _, ok := sum[g.account]; !ok {
				order = append(order, g.account)
			}
			sum[g.account] += g.amount
		}
		var acc []int64
		var amt []int64
		for _, id := range order {
			if sum[id] != 0 {
				acc, amt = append(acc, id), append(amt, sum[id])
				v := held[id]
				v[0] += sum[id]
				held[id] = v
			}
		}
		var postingID int64
		status := HoldCaptured
		if len(acc) > 0 {
			p, err = insertPosting(ctx, tx, "capture", ref, holdID, h.Currency, acc, amt)
			if err != nil {
				return err
			}
			postingID = p.ID
		} else {
			status = HoldReleased // nothing to post: a completion of zero
		}
		if err := moveHeld(ctx, tx, held); err != nil {
			return err
		}
		const upd = `UPDATE holds SET status = $2, captured_amount = $3, capture_posting_id = $4, resolved_at = now()
			WHERE id = $1 AND status = CASE WHEN $5 THEN 'open' ELSE 'expired' END`
		tag, err := tx.Exec(ctx, upd, holdID, status, final, nullID(postingID), wasOpen)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return ErrHoldResolved
		}
		return nil
	}()
	return p, err
}

// captureLegs are the legs of a capture of final on a hold of user and
// partner (0: none), the user paying userPays (final; the hold's amount in
// FX, the difference being the caller's leg to the partner's FX account):
// the user pays the scheme (settlement), and the partner credit/deposit
// account pays credit usage; without a user account, the partner account
// pays the scheme. capture() and the batches' captures (PlanMoney) post
// these.
func captureLegs(user, partner, final, userPays, settle, usage int64) []leg {
	if user <= 0 {
		return []leg{{account: partner, amount: -final}, {account: settle, amount: final}}
	}
	legs := []leg{{account: user, amount: -userPays}, {account: settle, amount: final}}
	if partner > 0 {
		legs = append(legs, leg{account: partner, amount: -final}, leg{account: usage, amount: final})
	}
	return legs
}

// partnerOf finds the partner a hold's FX difference belongs to: the
// partner of its partner credit/deposit account, else of its user account.
func (l *Ledger) partnerOf(ctx context.Context, tx pgx.Tx, h Hold) (int64, error) {
	var id int64
	const q = `SELECT coalesce((SELECT partner_id FROM accounts WHERE id = $1),
		(SELECT partner_id FROM accounts WHERE id = $2), 0)`
	if err := tx.QueryRow(ctx, q, h.PartnerAccountID, h.UserAccountID).Scan(&id); err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, fmt.Errorf("fx difference: hold %d has no partner: %w", h.ID, ErrInvalid)
	}
	return id, nil
}

// Release reduces an open hold to remaining (a reversal, full or partial):
// remaining 0 releases it fully and resolves it (status released). The
// difference goes back to the available amount of both accounts. A
// resolved hold is ErrHoldResolved and nothing changes; remaining above the
// amount still held is ErrInvalidAmount.
func (l *Ledger) Release(ctx context.Context, holdID int64, remaining int64) (Hold, error) {
	var h Hold
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var err error
		h, err = l.release(ctx, tx, holdID, remaining)
		return err
	})
	if err != nil {
		return Hold{}, dbErr(fmt.Sprintf("release hold %d", holdID), err)
	}
	return h, nil
}

// ReleaseTx is Release inside the caller's transaction, under a savepoint:
// on an error nothing of it remains and tx stays usable.
func (l *Ledger) ReleaseTx(ctx context.Context, tx pgx.Tx, holdID int64, remaining int64) (Hold, error) {
	var h Hold
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		var err error
		h, err = l.release(ctx, sp, holdID, remaining)
		return err
	})
	if err != nil {
		return Hold{}, dbErr(fmt.Sprintf("release hold %d", holdID), err)
	}
	return h, nil
}

func (l *Ledger) release(ctx context.Context, tx pgx.Tx, holdID int64, remaining int64) (Hold, error) {
	h, err := lockOpenHold(ctx, tx, holdID)
	if err != nil {
		return Hold{}, err
	}
	if remaining < 0 || remaining > h.Amount {
		return Hold{}, fmt.Errorf("remaining %d of %d: %w", remaining, h.Amount, ErrInvalidAmount)
	}
	delta := h.Amount - remaining
	held := map[int64][2]int64{}
	ids := []int64{}
	for _, id := range []int64{h.UserAccountID, h.PartnerAccountID} {
		if id > 0 {
			held[id] = [2]int64{0, -delta}
			ids = append(ids, id)
		}
	}
	if _, err := lockAccounts(ctx, tx, ids...); err != nil {
		return Hold{}, err
	}
	if err := moveHeld(ctx, tx, held); err != nil {
		return Hold{}, err
	}
	const upd = `UPDATE holds SET amount = $2::bigint,
		status = CASE WHEN $2::bigint = 0 THEN 'released' ELSE 'open' END,
		resolved_at = CASE WHEN $2::bigint = 0 THEN now() END
		WHERE id = $1 AND status = 'open'`
	if _, err := tx.Exec(ctx, upd, holdID, remaining); err != nil {
		return Hold{}, err
	}
	rows, err := tx.Query(ctx, selectHold+` WHERE id = $1`, holdID)
	if err != nil {
		return Hold{}, err
	}
	return pgx.CollectExactlyOneRow(rows, scanHold)
}

// ExpireHolds releases every open hold whose expiry (creation + HoldTTL) is
// past, in batches, and returns how many expired; then it folds the
// velocity releases of ended periods (foldEndedSpendReleases). Holds and
// counters locked by another transaction at that moment are left for the
// next run.
func (l *Ledger) ExpireHolds(ctx context.Context) (int, error) {
	const batch = 500
	total := 0
	for {
		n := 0
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			// The user balances of the holds first, then the holds, then
			// the partner rows (lockAccounts below): the order of the
			// batches, which lock a completion's balance before its hold.
			const users = `SELECT id FROM accounts WHERE id = ANY (ARRAY(SELECT user_account_id FROM holds
				WHERE status = 'open' AND expires_at <= $1 AND user_account_id IS NOT NULL ORDER BY id LIMIT $2)) ORDER BY id FOR NO KEY UPDATE`
			rows, err := tx.Query(ctx, users, l.now(), batch)
			if err != nil {
				return err
			}
			locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			// Only holds whose user balance is locked now (or without one).
			const sel = `SELECT id, coalesce(user_account_id, 0), coalesce(partner_account_id, 0), amount
				FROM holds WHERE status = 'open' AND expires_at <= $1 AND (user_account_id IS NULL OR user_account_id = ANY ($3))
				ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`
			rows, err = tx.Query(ctx, sel, l.now(), batch, locked)
			if err != nil {
				return err
			}
			held := map[int64][2]int64{}
			var holdIDs, accIDs []int64
			var id, u, p, amount int64
			_, err = pgx.ForEachRow(rows, []any{&id, &u, &p, &amount}, func() error {
				holdIDs = append(holdIDs, id)
				for _, a := range []int64{u, p} {
					if a > 0 {
						if _, ok := held[a]; !ok {
							accIDs = append(accIDs, a)
						}
						v := held[a]
						v[1] -= amount
						held[a] = v
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			n = len(holdIDs)
			if n == 0 {
				return nil
			}
			if _, err := lockAccounts(ctx, tx, accIDs...); err != nil {
				return err
			}
			if err := moveHeld(ctx, tx, held); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE holds SET status = 'expired', resolved_at = now() WHERE id = ANY ($1)`, holdIDs)
			return err
		})
		if err != nil {
			return total, dbErr("expire holds", err)
		}
		total += n
		if n < batch {
			break
		}
	}
	if total > 0 {
		l.log.Info("holds expired", "count", total)
	}
	// What expiries and reversals gave back to counters of ended
	// periods, folded after the expiries' transactions: never while
	// they hold partner rows.
	if _, err := l.foldEndedSpendReleases(ctx, batch); err != nil {
		return total, err
	}
	return total, nil
}

// RunExpiry calls ExpireHolds every interval until ctx ends, logging
// failures.
func (l *Ledger) RunExpiry(ctx context.Context, every time.Duration) {
	periodic.Run(ctx, every, func(ctx context.Context) {
		if _, err := l.ExpireHolds(ctx); err != nil && !errors.Is(err, context.Canceled) {
			l.log.Error("expire holds", "err", err)
		}
	})
}

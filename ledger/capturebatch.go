package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Completions and reversals in a HoldBatch (issue 18): the common cases,
// a completion within its open hold and a release of an open hold, are
// written set-based by the batch, a few statements for any number of
// them; their user accounts' changes go with the batch's update of its
// user accounts (QueueWrite), and those of the partner and internal
// accounts (settlement, credit usage) with its final update of the rows
// read without a lock (QueueFinish), in ascending id order, just before
// the commit. The rest (a capture above the hold, FX, parts, an expired
// hold, a refund of a capture) runs per message after that final update,
// on rows the batch then holds already (Touch).

// MoneyOp is one completion or release of an open hold the caller locked
// (FOR UPDATE) in the batch's transaction, with the hold as it is there.
type MoneyOp struct {
	HoldID           int64
	UserAccountID    int64 // 0: none
	PartnerAccountID int64 // 0: none
	Currency         string
	Held             int64 // what the hold holds now
	// Capture: a completion of Final (0 < Final, same currency, the last
	// completion of the hold, above Held only within the MCC's tolerance,
	// which the caller checks), posted under Ref; otherwise a release
	// down to Final (0 <= Final < Held).
	Capture bool
	Final   int64
	Ref     string
}

// moneyPlan is what PlanMoney decided: the statements QueueMoney sends.
type moneyPlan struct {
	capHold, capAmt         []int64
	capRef, capCcy          []string
	entHold, entAcc, entAmt []int64
	entCcy                  []string
	relHold, relRemaining   []int64
	captures, releases      int
}

// MoneyAccounts returns the accounts beyond a hold's own that a clearing,
// release or refund of a hold in currency may post to (settlement,
// credit usage, exceptions receivable and, with partnerID, the partner's
// FX account), each created once outside any transaction, for Touch.
func (l *Ledger) MoneyAccounts(ctx context.Context, currency string, partnerID int64) ([]int64, error) {
	var ids []int64
	for _, kind := range []string{KindSettlement, KindCreditUsage, KindExceptions} {
		id, err := l.internalID(ctx, l.pool, kind, currency)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if partnerID > 0 {
		// Created outside any transaction, so it can be cached.
		key := fmt.Sprintf("fx/%d/%s", partnerID, currency)
		l.mu.Lock()
		id, ok := l.internal[key]
		l.mu.Unlock()
		if !ok {
			var err error
			if id, err = l.partnerFXID(ctx, l.pool, partnerID, currency); err != nil {
				return nil, dbErr("partner fx account", err)
			}
			l.mu.Lock()
			l.internal[key] = id
			l.mu.Unlock()
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// hotRow returns the batch's row of account id, adding it (read without a
// lock, state unknown) when the batch does not have it.
func (b *HoldBatch) hotRow(id int64) *lockedAccount {
	if a := b.acc[id]; a != nil {
		return a
	}
	a := &lockedAccount{id: id, hot: true}
	b.acc[id] = a
	b.order = append(b.order, a)
	slices.SortFunc(b.order, func(x, y *lockedAccount) int { return cmp.Compare(x.id, y.id) })
	return a
}

// Touch makes the batch's final update (QueueFinish) lock the accounts
// ids that are not user accounts, with or without a change: what the
// caller posts after it (per message, in the transaction's tail) then
// finds them locked, in the global order. Call it after the lock
// statement ran; it lasts for the batch.
func (b *HoldBatch) Touch(ids ...int64) {
	for _, id := range ids {
		if id <= 0 {
			continue
		}
		if a := b.hotRow(id); a.hot {
			a.touch = true
		}
	}
}

// Locked reports whether the batch locked account id as a user account
// (its lock statement did).
func (b *HoldBatch) Locked(id int64) bool {
	a := b.acc[id]
	return a != nil && !a.hot
}

// AvailableAfter returns the available amount of an account of the batch
// with the holds Decide placed and the completions and releases PlanMoney
// planned (an account read without a lock: as it was read).
func (b *HoldBatch) AvailableAfter(id int64) (int64, bool) {
	a := b.acc[id]
	if a == nil {
		return 0, false
	}
	return a.balance + a.dBal - a.held - a.dHeld, true
}

// PlanMoney plans ops, after Decide (which forgets an earlier plan): the
// capture postings and hold updates QueueMoney sends, and each account's
// change, which QueueWrite (user accounts, locked by the batch) and
// QueueFinish (the others) apply. Each op's hold must be locked by the
// caller's transaction and open, each hold named once; a user account of
// an op must be one the batch locked.
func (b *HoldBatch) PlanMoney(ctx context.Context, ops []MoneyOp) error {
	var p moneyPlan
	for _, op := range ops {
		if op.UserAccountID > 0 && !b.Locked(op.UserAccountID) {
			return fmt.Errorf("hold %d: user account %d not locked by the batch: %w", op.HoldID, op.UserAccountID, ErrInvalid)
		}
		if op.UserAccountID <= 0 && op.PartnerAccountID <= 0 {
			return fmt.Errorf("hold %d without accounts: %w", op.HoldID, ErrInvalid)
		}
		move := func(id, dBal, dHeld int64) {
			if id > 0 {
				a := b.hotRow(id)
				a.dBal += dBal
				a.dHeld += dHeld
			}
		}
		if !op.Capture {
			if op.Final < 0 || op.Final >= op.Held {
				return fmt.Errorf("release hold %d to %d of %d: %w", op.HoldID, op.Final, op.Held, ErrInvalidAmount)
			}
			move(op.UserAccountID, 0, op.Final-op.Held)
			move(op.PartnerAccountID, 0, op.Final-op.Held)
			p.relHold, p.relRemaining = append(p.relHold, op.HoldID), append(p.relRemaining, op.Final)
			p.releases++
			continue
		}
		if op.Final <= 0 || op.Final > MaxAmount {
			return fmt.Errorf("capture hold %d for %d of %d: %w", op.HoldID, op.Final, op.Held, ErrInvalidAmount)
		}
		settle, err := b.l.internalID(ctx, b.l.pool, KindSettlement, op.Currency)
		if err != nil {
			return err
		}
		usage, err := b.l.internalID(ctx, b.l.pool, KindCreditUsage, op.Currency)
		if err != nil {
			return err
		}
		legs := captureLegs(op.UserAccountID, op.PartnerAccountID, op.Final, op.Final, settle, usage) // without FX
		move(op.UserAccountID, 0, -op.Held)
		move(op.PartnerAccountID, 0, -op.Held)
		for _, g := range legs {
			move(g.account, g.amount, 0)
			p.entHold, p.entAcc, p.entAmt, p.entCcy = append(p.entHold, op.HoldID), append(p.entAcc, g.account), append(p.entAmt, g.amount), append(p.entCcy, op.Currency)
		}
		p.capHold, p.capAmt, p.capRef, p.capCcy = append(p.capHold, op.HoldID), append(p.capAmt, op.Final), append(p.capRef, op.Ref), append(p.capCcy, op.Currency)
		p.captures++
	}
	b.money = p
	return nil
}

const (
	// captureHolds posts one capture per hold ($1 holds, $2 refs, $3
	// amounts) with its entries ($4 hold, $5 account, $6 amount, $7
	// currency per entry) and resolves the holds, in one statement; the
	// trigger of migration 014 fills each posting's provenance as for a
	// capture posted alone. postings_hold and postings (kind, ref) keep
	// every hold captured once and every ref once.
	captureHolds = `WITH p AS (INSERT INTO postings (kind, ref, hold_id)
			SELECT 'capture', NULLIF(v.ref, ''), v.hold FROM unnest($1::bigint[], $2::text[]) AS v (hold, ref) RETURNING id, hold_id),
		e AS (INSERT INTO entries (posting_id, account_id, currency, amount)
			SELECT (SELECT p.id FROM p WHERE p.hold_id = x.hold), x.acc, x.cur, x.amt
			FROM unnest($4::bigint[], $5::bigint[], $6::bigint[], $7::text[]) AS x (hold, acc, amt, cur))
		UPDATE holds h SET status = 'captured', captured_amount = ($3::bigint[])[array_position($1::bigint[], h.id)],
			capture_posting_id = (SELECT p.id FROM p WHERE p.hold_id = h.id), resolved_at = now()
		WHERE h.id = ANY ($1) AND h.resolved_at IS NULL RETURNING h.id`
	// releaseHolds reduces open holds ($1) to what remains ($2),
	// resolving those released fully. As in updateHeld, the holds are
	// named by id = ANY ($1), never by a join (a generic plan could read
	// the whole index and filter it by the join); "open" is resolved_at
	// IS NULL (every path that resolves a hold sets it), since a
	// condition on status let the plan read the partial index of open
	// holds whole.
	releaseHolds = `UPDATE holds h SET amount = ($2::bigint[])[array_position($1::bigint[], h.id)],
			status = CASE WHEN ($2::bigint[])[array_position($1::bigint[], h.id)] = 0 THEN 'released' ELSE 'open' END,
			resolved_at = CASE WHEN ($2::bigint[])[array_position($1::bigint[], h.id)] = 0 THEN now() END
		WHERE h.id = ANY ($1) AND h.resolved_at IS NULL RETURNING h.id`
)

// queueMoney queues on q, in QueueWrite (under its savepoint, so that
// Retry and Undo take them back), the captures and releases PlanMoney
// planned; each statement fails unless every hold was open.
func (b *HoldBatch) queueMoney(q *pgx.Batch) {
	p := b.money
	check := func(what string, want int) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("%s: %d of %d holds open: %w", what, n, want, ErrDatabase)
			}
			return nil
		}
	}
	if p.captures > 0 {
		q.Queue(captureHolds, p.capHold, p.capRef, p.capAmt, p.entHold, p.entAcc, p.entAmt, p.entCcy).Query(check("capture holds", p.captures))
	}
	if p.releases > 0 {
		q.Queue(releaseHolds, p.relHold, p.relRemaining).Query(check("release holds", p.releases))
	}
}

// lockHoldUser locks the user account of hold id, when it has one, before
// the caller locks the hold: user balances, then holds, then the partner
// and internal rows is the order of the batches (which lock a completion's
// balance with their lock statement, then its hold), so a transaction of
// one message (a refund, an increment, the per-message path) keeps it too.
func lockHoldUser(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = (SELECT user_account_id FROM holds WHERE id = $1) FOR NO KEY UPDATE`, id)
	return err
}

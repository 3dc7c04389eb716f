package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The pending reversals' statements (DESIGN section 6): a reversal that
// overtook its original waits under the key its data elements name, and
// the transaction that journals the original finds it, locked, and marks
// it applied. The card host decides the keys and what applying means.

// PendingReversal is a reversal waiting for its original.
type PendingReversal struct {
	ID          int64
	Key         string // the original's key, as the reversal names it
	Ref         string // the reversal's request key
	Replacement *int64 // what remains, in the original's currency; nil: all
}

// pendingProbe finds, locked, the pending reversals waiting under keys.
// No ORDER BY: under a generic plan it would read the whole table in id
// order (TestHotPathPlansProbe); only the batch of their original ever
// looks for these rows, so their lock order does not matter.
const pendingProbe = `SELECT id, match_key, reversal_ref, replacement FROM pending_reversals
	WHERE match_key = ANY ($1) AND status = 'pending' AND expires_at > now() FOR UPDATE`

// QueuePendingProbe queues on q the probe, locking, for the reversals
// waiting under keys; found is called with each.
func QueuePendingProbe(q *pgx.Batch, keys []string, found func(p PendingReversal)) {
	q.Queue(pendingProbe, keys).Query(func(rows pgx.Rows) error {
		var p PendingReversal
		_, err := pgx.ForEachRow(rows, []any{&p.ID, &p.Key, &p.Ref, &p.Replacement}, func() error {
			found(p)
			return nil
		})
		if err != nil {
			return fmt.Errorf("pending reversals: %w", err)
		}
		return nil
	})
}

// PendingFor returns, locked in tx, the reversals waiting under keys.
func PendingFor(ctx context.Context, tx pgx.Tx, keys []string) ([]PendingReversal, error) {
	rows, err := tx.Query(ctx, pendingProbe, keys)
	if err != nil {
		return nil, fmt.Errorf("pending reversals: %w", err)
	}
	var out []PendingReversal
	var p PendingReversal
	_, err = pgx.ForEachRow(rows, []any{&p.ID, &p.Key, &p.Ref, &p.Replacement}, func() error {
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending reversals: %w", err)
	}
	return out, nil
}

// MarkPendingApplied closes a pending reversal (holdID: the hold it
// released, if any).
func MarkPendingApplied(ctx context.Context, tx pgx.Tx, id, holdID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE pending_reversals SET status = 'applied', applied_at = now(), applied_to = NULLIF($2, 0) WHERE id = $1`,
		id, holdID); err != nil {
		return fmt.Errorf("pending reversal %d: %w", id, err)
	}
	return nil
}

// InsertPendingReversal keeps a reversal (ref) waiting under key for
// seconds; a reversal kept already stays as it is.
func InsertPendingReversal(ctx context.Context, tx pgx.Tx, key, ref string, replacement *int64, seconds int64) error {
	const ins = `INSERT INTO pending_reversals (match_key, reversal_ref, replacement, expires_at)
		VALUES ($1, $2, $3, now() + $4 * interval '1 second') ON CONFLICT (reversal_ref) DO NOTHING`
	_, err := tx.Exec(ctx, ins, key, ref, replacement, seconds)
	return err
}

// PendingReversalID returns the id of the reversal ref while it waits.
func PendingReversalID(ctx context.Context, tx pgx.Tx, ref string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM pending_reversals WHERE reversal_ref = $1 AND status = 'pending'`, ref).Scan(&id)
	return id, err
}

// LockUserAccount locks a user account's balance row in tx, as the
// batches do before they look for the rows that meet on it.
func LockUserAccount(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, id)
	return err
}

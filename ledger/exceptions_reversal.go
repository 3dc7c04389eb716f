package ledger

import (
	"context"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// ReverseStandInTx shrinks the open standin_overdraft exception of a hold
// whose advice its acquirer reversed, inside the reversal's transaction
// (after the hold's release): owed is what the acquirer now says was
// spent, in the hold's currency (0: all of it reversed). What the hold
// still keeps is the cardholder's; only owed above it is still the
// scheme's to settle, so the rest of the receivable goes back to the
// settlement account that carried it (the opening posting, undone). An
// exception left with nothing is resolved "reversed" by the system, ref
// naming the reversal. It returns what went back (0: the hold has no open
// stand-in exception, or all of it is still owed, or an Admin is resolving
// it at this moment: the caller holds the internal rows, which an Admin's
// resolution locks after the exception, so it is skipped, not waited for,
// and stays the Admin's).
func (l *Ledger) ReverseStandInTx(ctx context.Context, tx pgx.Tx, holdID, owed int64, ref string) (int64, error) {
	var (
		id, amount, receivable, kept int64
		currency                     string
	)
	const sel = `SELECT e.id, e.amount, e.receivable, e.currency, CASE WHEN h.status = 'open' THEN h.amount ELSE 0 END
		FROM exceptions e JOIN holds h ON h.id = e.hold_id
		WHERE e.hold_id = $1 AND e.kind = 'standin_overdraft' AND e.status = 'open' FOR UPDATE OF e SKIP LOCKED`
	err := tx.QueryRow(ctx, sel, holdID).Scan(&id, &amount, &receivable, &currency, &kept)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, dbErr("reverse stand-in of hold "+strconv.FormatInt(holdID, 10), err)
	}
	still := min(max(owed-kept, 0), receivable)
	back := receivable - still
	if back <= 0 {
		return 0, nil
	}
	x := lockedException{kind: ExceptionStandInOverdraft, currency: currency, amount: amount, receivable: back}
	p, err := l.clearReceivable(ctx, tx, x, KindSettlement, "exception:"+strconv.FormatInt(id, 10)+":"+ref)
	if err != nil {
		return 0, err
	}
	if err := setSource(ctx, tx, p, Source{Kind: "exception_" + ResolveReversed, Actor: "system", Reference: ref}); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE holds SET excepted = greatest(excepted - $2, 0) WHERE id = $1`, holdID, back); err != nil {
		return 0, err
	}
	// Resolved, it keeps its amounts (as any resolution does); in part,
	// what stays receivable is its amount from now on.
	if still == 0 {
		_, err = tx.Exec(ctx, `UPDATE exceptions SET status = 'reversed', resolved_at = now(), resolved_by = 'system',
			resolution_posting_id = $2 WHERE id = $1`, id, p)
	} else {
		_, err = tx.Exec(ctx, `UPDATE exceptions SET amount = amount - $2, receivable = $3 WHERE id = $1`, id, back, still)
	}
	if err != nil {
		return 0, err
	}
	return back, nil
}

package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Exception resolutions (migration 011's statuses).
const (
	ResolveRecovered   = "recovered"    // money in from funding, with a reference; four eyes
	ResolveChargedBack = "charged_back" // the scheme takes it back: against settlement
	ResolveWrittenOff  = "written_off"  // a loss: the receivable moves to the losses account
	ResolveReleased    = "released"     // blind refund: credit the user; four eyes
	ResolveRejected    = "rejected"     // blind refund: nothing is credited
	ResolveReversed    = "reversed"     // stand-in advice reversed by its acquirer: back to settlement; the system, by the reversal
)

// Exception is one row of the exceptions queue (DESIGN section 6, migration
// 011) with its card masked and its links to the journal.
type Exception struct {
	ID                  int64
	Kind                string // over_capture, expired_hold_capture, standin_overdraft, blind_refund
	Status              string // open, recovered, charged_back, written_off, released, rejected, reversed
	Currency            string
	Amount              int64 // the excess (blind refund: what waits)
	Receivable          int64 // what was posted to exceptions receivable
	CardID              int64
	MaskedPAN           string // first6…last4, empty without a card
	AccountID           int64
	ProgramID           int64
	HoldID              int64
	PostingID           int64 // the posting that opened it
	JournalID           int64 // the auth_journal row of the message
	Detail              string
	CreatedAt           time.Time
	ResolvedAt          time.Time
	ResolvedBy          string
	ApprovedBy          string
	ResolutionPostingID int64
	PendingApprovalID   int64 // a resolution waiting for a second Admin
}

const selectException = `SELECT x.id, x.kind, x.status, x.currency, x.amount, x.receivable, coalesce(x.card_id, 0),
	coalesce(c.pan_first6 || '…' || c.pan_last4, ''), coalesce(x.account_id, 0), coalesce(x.program_id, 0),
	coalesce(x.hold_id, 0), coalesce(x.posting_id, 0), coalesce(x.journal_id, 0), x.detail, x.created_at,
	coalesce(x.resolved_at, 'epoch'), coalesce(x.resolved_by, ''), coalesce(x.approved_by, ''),
	coalesce(x.resolution_posting_id, 0),
	coalesce((SELECT a.id FROM approvals a WHERE a.exception_id = x.id AND a.status = 'pending'), 0)
	FROM exceptions x LEFT JOIN cards c ON c.id = x.card_id`

func scanException(row pgx.CollectableRow) (Exception, error) {
	var e Exception
	err := row.Scan(&e.ID, &e.Kind, &e.Status, &e.Currency, &e.Amount, &e.Receivable, &e.CardID, &e.MaskedPAN,
		&e.AccountID, &e.ProgramID, &e.HoldID, &e.PostingID, &e.JournalID, &e.Detail, &e.CreatedAt,
		&e.ResolvedAt, &e.ResolvedBy, &e.ApprovedBy, &e.ResolutionPostingID, &e.PendingApprovalID)
	if e.ResolvedAt.Equal(time.Unix(0, 0)) {
		e.ResolvedAt = time.Time{}
	}
	return e, err
}

// Exceptions lists the exceptions queue, newest first, at most limit
// (default 100): state "open", "closed" (resolved) or "" for all.
func (l *Ledger) Exceptions(ctx context.Context, state string, limit int) ([]Exception, error) {
	if limit <= 0 {
		limit = 100
	}
	where := ``
	switch state {
	case "open":
		where = ` WHERE x.status = 'open'`
	case "closed":
		where = ` WHERE x.status <> 'open'`
	case "":
	default:
		return nil, fmt.Errorf("exceptions: state %q: %w", state, ErrInvalid)
	}
	rows, err := l.pool.Query(ctx, selectException+where+` ORDER BY x.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, dbErr("exceptions", err)
	}
	out, err := pgx.CollectRows(rows, scanException)
	return out, dbErr("exceptions", err)
}

// Exception returns the exception with id.
func (l *Ledger) Exception(ctx context.Context, id int64) (Exception, error) {
	rows, err := l.pool.Query(ctx, selectException+` WHERE x.id = $1`, id)
	if err != nil {
		return Exception{}, dbErr(fmt.Sprintf("exception %d", id), err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanException)
	return e, dbErr(fmt.Sprintf("exception %d", id), err)
}

// allowedResolution reports whether an exception of kind may be resolved
// as resolution: a blind refund is released or rejected; a receivable is
// recovered, charged back or written off.
func allowedResolution(kind, resolution string) bool {
	if kind == "blind_refund" {
		return resolution == ResolveReleased || resolution == ResolveRejected
	}
	return resolution == ResolveRecovered || resolution == ResolveChargedBack || resolution == ResolveWrittenOff
}

// ResolveException resolves an open exception as admin. Charged back,
// written off and rejected take effect at once; recovered and released need
// four eyes: they return a pending Approval (kind exception) that another
// Admin decides with Decide. reference (the bank's or the scheme's) is
// required for recovered and charged back. Every resolution posts balanced
// entries that keep the exceptions account at minus the receivable of the
// open exceptions.
func (l *Ledger) ResolveException(ctx context.Context, id int64, resolution, admin, reference string) (Exception, Approval, error) {
	op := fmt.Sprintf("resolve exception %d", id)
	if admin == "" {
		return Exception{}, Approval{}, fmt.Errorf("%s: no admin: %w", op, ErrInvalid)
	}
	if reference == "" && (resolution == ResolveRecovered || resolution == ResolveChargedBack) {
		return Exception{}, Approval{}, fmt.Errorf("%s: %s needs a reference: %w", op, resolution, ErrInvalid)
	}
	var ap Approval
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		x, err := lockException(ctx, tx, id, resolution)
		if err != nil {
			return err
		}
		if resolution != ResolveRecovered && resolution != ResolveReleased {
			_, err := l.resolveTx(ctx, tx, id, resolution, admin, "", reference)
			return err
		}
		amount := x.receivable
		if resolution == ResolveReleased {
			amount = x.amount
		}
		if reference == "" {
			reference = "exception-" + strconv.FormatInt(id, 10)
		}
		const ins = `INSERT INTO approvals (kind, status, exception_id, resolution, currency, amount, reference, requested_by)
			VALUES ('exception', 'pending', $1, $2, $3, $4, $5, $6) RETURNING id`
		var apID int64
		if err := tx.QueryRow(ctx, ins, id, resolution, x.currency, amount, reference, admin).Scan(&apID); err != nil {
			return err
		}
		ap, err = getApproval(ctx, tx, `WHERE id = $1`, apID)
		return err
	})
	if err != nil {
		return Exception{}, Approval{}, dbErr(op, err)
	}
	x, err := l.Exception(ctx, id)
	return x, ap, err
}

type lockedException struct {
	kind, currency                           string
	amount, receivable, accountID, programID int64
}

// lockException locks an open exception that resolution fits.
func lockException(ctx context.Context, tx pgx.Tx, id int64, resolution string) (lockedException, error) {
	var x lockedException
	var status string
	const sel = `SELECT kind, status, currency, amount, receivable, coalesce(account_id, 0), coalesce(program_id, 0)
		FROM exceptions WHERE id = $1 FOR UPDATE`
	if err := tx.QueryRow(ctx, sel, id).Scan(&x.kind, &status, &x.currency, &x.amount, &x.receivable, &x.accountID, &x.programID); err != nil {
		return x, err
	}
	if status != "open" {
		return x, fmt.Errorf("status %s: %w", status, ErrDecided)
	}
	if !allowedResolution(x.kind, resolution) {
		return x, fmt.Errorf("%s cannot be resolved as %q: %w", x.kind, resolution, ErrInvalid)
	}
	return x, nil
}

// resolveTx closes an open exception inside tx and posts its resolution;
// approvedBy is the second Admin where four eyes apply. It returns the
// resolution posting's id (0 when nothing is posted).
func (l *Ledger) resolveTx(ctx context.Context, tx pgx.Tx, id int64, resolution, resolvedBy, approvedBy, reference string) (int64, error) {
	x, err := lockException(ctx, tx, id, resolution)
	if err != nil {
		return 0, err
	}
	ref := "exception:" + strconv.FormatInt(id, 10)
	var postingID int64
	switch resolution {
	case ResolveReleased:
		p, err := l.releaseBlindRefund(ctx, tx, x, ref)
		if err != nil {
			return 0, err
		}
		postingID = p
		if err := setSource(ctx, tx, p, Source{Kind: SourceExceptionRelease, Actor: resolvedBy, Reference: reference}); err != nil {
			return 0, err
		}
	case ResolveRejected:
	default:
		if x.receivable > 0 {
			other := map[string]string{ResolveRecovered: KindFunding, ResolveChargedBack: KindSettlement, ResolveWrittenOff: KindLosses}[resolution]
			p, err := l.clearReceivable(ctx, tx, x, other, ref)
			if err != nil {
				return 0, err
			}
			postingID = p
			src := Source{Kind: "exception_" + resolution, Actor: resolvedBy, Reference: reference}
			if resolution == ResolveRecovered {
				src.Kind = SourceExceptionRecovery
			}
			if src.Reference == "" {
				src.Reference = ref
			}
			if err := setSource(ctx, tx, p, src); err != nil {
				return 0, err
			}
		}
	}
	const upd = `UPDATE exceptions SET status = $2, resolved_at = now(), resolved_by = $3, approved_by = nullif($4, ''),
		resolution_posting_id = nullif($5, 0) WHERE id = $1`
	_, err = tx.Exec(ctx, upd, id, resolution, resolvedBy, approvedBy, postingID)
	return postingID, err
}

// clearReceivable moves an exception's receivable off the exceptions
// account onto other (funding, settlement or losses), in one posting.
func (l *Ledger) clearReceivable(ctx context.Context, tx pgx.Tx, x lockedException, other, ref string) (int64, error) {
	exc, err := l.internalID(ctx, tx, KindExceptions, x.currency)
	if err != nil {
		return 0, err
	}
	to, err := l.internalID(ctx, tx, other, x.currency)
	if err != nil {
		return 0, err
	}
	accs, err := lockAccounts(ctx, tx, exc, to)
	if err != nil {
		return 0, err
	}
	if accs[to].Balance < x.receivable-MaxInternalBalance {
		return 0, fmt.Errorf("%s account %s would pass -%d: %w", other, x.currency, MaxInternalBalance, ErrLimitExceeded)
	}
	p, err := insertPosting(ctx, tx, "exception_resolution", ref, 0, x.currency, []int64{exc, to}, []int64{x.receivable, -x.receivable})
	if err != nil {
		return 0, err
	}
	return p.ID, moveHeld(ctx, tx, map[int64][2]int64{exc: {x.receivable, 0}, to: {-x.receivable, 0}})
}

// releaseBlindRefund credits a blind refund's waiting amount to its user
// balance (and the program's partner credit/deposit balance), as a
// refund's credit does, within the balance's bound.
func (l *Ledger) releaseBlindRefund(ctx context.Context, tx pgx.Tx, x lockedException, ref string) (int64, error) {
	if x.accountID == 0 {
		return 0, fmt.Errorf("blind refund without a user balance: %w", ErrInvalid)
	}
	var partner int64
	// The program's partner credit/deposit balance grows with the credit,
	// as for any refund: the exception's program, else the user's.
	const sel = `SELECT coalesce((SELECT p.partner_account_id FROM programs p WHERE p.id = coalesce(nullif($2, 0),
		(SELECT u.program_id FROM accounts a JOIN users u ON u.id = a.user_id WHERE a.id = $1))), 0)`
	if err := tx.QueryRow(ctx, sel, x.accountID, x.programID).Scan(&partner); err != nil {
		return 0, err
	}
	accs, err := lockAccounts(ctx, tx, x.accountID)
	if err != nil {
		return 0, err
	}
	b, err := accountBounds(ctx, tx, x.accountID)
	if err != nil {
		return 0, err
	}
	if accs[x.accountID].Balance > b.MaxBalance-x.amount {
		return 0, fmt.Errorf("balance %d + %d above its bound %d: %w", accs[x.accountID].Balance, x.amount, b.MaxBalance, ErrLimitExceeded)
	}
	p, err := l.CreditTx(ctx, tx, x.accountID, partner, x.currency, x.amount, ref)
	return p.ID, err
}

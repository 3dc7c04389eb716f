package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Approval statuses (migration 015).
const (
	ApprovalPosted   = "posted"   // below the threshold: posted at once, no second Admin
	ApprovalPending  = "pending"  // waits for a second Admin
	ApprovalApproved = "approved" // a second Admin approved it; posted
	ApprovalRejected = "rejected" // an Admin rejected it; nothing posted
)

// Four-eyes thresholds by default, in major units of the currency (DESIGN
// section 6); four_eyes_thresholds holds a currency's own.
const (
	DefaultFourEyesUser    = 10_000
	DefaultFourEyesPartner = 100_000
)

// FourEyesWindow is the rolling window of the four-eyes sums.
const FourEyesWindow = 24 * time.Hour

var (
	// ErrSameApprover: the Admin who asked cannot approve (four eyes).
	ErrSameApprover = fmt.Errorf("the second Admin must be another Admin: %w", ErrInvalid)
	// ErrDecided: the approval or exception was decided already.
	ErrDecided = fmt.Errorf("already decided: %w", ErrInvalid)
)

// Approval is one Admin reload or one exception resolution that needs four
// eyes; Admin reloads below the threshold are rows too (status posted), so
// that the rolling sums count them.
type Approval struct {
	ID           int64
	Kind         string // reload, exception
	Status       string // ApprovalPosted, ApprovalPending, ...
	AccountID    int64  // reload: the balance
	BalanceClass string // reload: user or partner
	ExceptionID  int64  // exception: the one resolved
	Resolution   string // exception: recovered or released
	Currency     string
	Amount       int64
	Reason       string
	Reference    string
	RequestedBy  string // admin:<id>
	RequestedAt  time.Time
	DecidedBy    string
	DecidedAt    time.Time
	PostingID    int64
}

const selectApproval = `SELECT id, kind, status, coalesce(account_id, 0), coalesce(balance_class, ''), coalesce(exception_id, 0),
	coalesce(resolution, ''), currency, amount, reason, reference, requested_by, requested_at,
	coalesce(decided_by, ''), coalesce(decided_at, 'epoch'), coalesce(posting_id, 0) FROM approvals`

func scanApproval(row pgx.CollectableRow) (Approval, error) {
	var a Approval
	err := row.Scan(&a.ID, &a.Kind, &a.Status, &a.AccountID, &a.BalanceClass, &a.ExceptionID, &a.Resolution, &a.Currency,
		&a.Amount, &a.Reason, &a.Reference, &a.RequestedBy, &a.RequestedAt, &a.DecidedBy, &a.DecidedAt, &a.PostingID)
	if a.DecidedAt.Equal(time.Unix(0, 0)) {
		a.DecidedAt = time.Time{}
	}
	return a, err
}

func getApproval(ctx context.Context, q Querier, where string, args ...any) (Approval, error) {
	rows, err := q.Query(ctx, selectApproval+" "+where, args...)
	if err != nil {
		return Approval{}, err
	}
	return pgx.CollectExactlyOneRow(rows, scanApproval)
}

// Approvals returns the approvals with status (all when empty), newest
// first, at most limit (default 100).
func (l *Ledger) Approvals(ctx context.Context, status string, limit int) ([]Approval, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.pool.Query(ctx, selectApproval+` WHERE $1 = '' OR status = $1 ORDER BY id DESC LIMIT $2`, status, limit)
	if err != nil {
		return nil, dbErr("approvals", err)
	}
	out, err := pgx.CollectRows(rows, scanApproval)
	return out, dbErr("approvals", err)
}

// Approval returns the approval with id.
func (l *Ledger) Approval(ctx context.Context, id int64) (Approval, error) {
	a, err := getApproval(ctx, l.pool, `WHERE id = $1`, id)
	return a, dbErr(fmt.Sprintf("approval %d", id), err)
}

// balanceClass is the four-eyes class of an account kind.
func balanceClass(kind string) (string, error) {
	switch kind {
	case KindUser:
		return "user", nil
	case KindPartnerCredit, KindPartnerDeposit, KindPartner:
		return "partner", nil
	}
	return "", fmt.Errorf("kind %s takes no reload: %w", kind, ErrInvalid)
}

// FourEyesThreshold returns the four-eyes threshold of a currency and
// balance class (user or partner) in minor units.
func (l *Ledger) FourEyesThreshold(ctx context.Context, currency, class string) (int64, error) {
	t, err := fourEyesThreshold(ctx, l.pool, currency, class)
	return t, dbErr("four-eyes threshold", err)
}

func fourEyesThreshold(ctx context.Context, q Querier, currency, class string) (int64, error) {
	const sel = `SELECT c.exponent, t.threshold FROM currencies c
		LEFT JOIN four_eyes_thresholds t ON t.currency = c.code AND t.balance_class = $2 WHERE c.code = $1`
	var exp int
	var set *int64
	if err := q.QueryRow(ctx, sel, currency, class).Scan(&exp, &set); err != nil {
		return 0, err
	}
	if set != nil {
		return *set, nil
	}
	major := int64(DefaultFourEyesUser)
	if class == "partner" {
		major = DefaultFourEyesPartner
	}
	return scaled(major, exp, MaxAmount), nil
}

// AdminReload is an Admin's reload of a user or partner balance with
// reason and bank reference. When it keeps both the Admin's and the
// balance's rolling 24-hour sum of Admin reloads (pending and posted, in
// the balance's currency and class) within the four-eyes threshold, it
// posts at once (status posted); otherwise it waits (status pending) for a
// different Admin's Decide. The sums include pending requests, so splitting
// a reload does not escape the threshold; two requests of one Admin, or on
// one balance, are serialised. The reference funds once: the same reference
// with the same balance, amount and reason returns the first request; with
// anything else it is ErrDuplicateRef. Bounds are checked when asked and
// again when posted.
func (l *Ledger) AdminReload(ctx context.Context, accountID, amount int64, admin, reason, reference string) (Approval, error) {
	op := fmt.Sprintf("admin reload of account %d", accountID)
	if admin == "" || reason == "" || reference == "" {
		return Approval{}, fmt.Errorf("%s: admin, reason and reference are required: %w", op, ErrInvalid)
	}
	if amount <= 0 {
		return Approval{}, fmt.Errorf("%s: amount %d: %w", op, amount, ErrInvalidAmount)
	}
	if amount > MaxAmount {
		return Approval{}, fmt.Errorf("%s: amount %d above %d: %w", op, amount, MaxAmount, ErrAmountTooLarge)
	}
	acc, err := l.Account(ctx, accountID)
	if err != nil {
		return Approval{}, err
	}
	class, err := balanceClass(acc.Kind)
	if err != nil {
		return Approval{}, fmt.Errorf("%s: %w", op, err)
	}
	funding, err := l.internalID(ctx, l.pool, KindFunding, acc.Currency)
	if err != nil {
		return Approval{}, err
	}
	var a Approval
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		// The Admin's requests are serialised by an advisory lock, the
		// balance's by its row: the sums below see every earlier request.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('approvals:' || $1, 0))`, admin); err != nil {
			return err
		}
		accs, err := lockAccounts(ctx, tx, accountID, funding)
		if err != nil {
			return err
		}
		prev, err := getApproval(ctx, tx, `WHERE kind = 'reload' AND reference = $1 AND status <> 'rejected'`, reference)
		switch {
		case err == nil:
			if prev.AccountID != accountID || prev.Amount != amount || prev.Reason != reason {
				return fmt.Errorf("reference %q: %w", reference, ErrDuplicateRef)
			}
			a = prev
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if accs[accountID].State == StateClosed {
			return fmt.Errorf("closed: %w", ErrAccountNotActive)
		}
		if err := checkBounds(ctx, tx, accs[accountID], amount, true); err != nil {
			return err
		}
		threshold, err := fourEyesThreshold(ctx, tx, acc.Currency, class)
		if err != nil {
			return err
		}
		var byAdmin, byAccount int64
		const sums = `SELECT coalesce(sum(amount) FILTER (WHERE requested_by = $1), 0)::bigint,
				coalesce(sum(amount) FILTER (WHERE account_id = $2), 0)::bigint
			FROM approvals WHERE kind = 'reload' AND status <> 'rejected' AND currency = $3 AND balance_class = $4
				AND requested_at > now() - $5::bigint * interval '1 second' AND (requested_by = $1 OR account_id = $2)`
		if err := tx.QueryRow(ctx, sums, admin, accountID, acc.Currency, class, int64(FourEyesWindow/time.Second)).Scan(&byAdmin, &byAccount); err != nil {
			return err
		}
		status := ApprovalPosted
		if byAdmin > threshold-amount || byAccount > threshold-amount {
			status = ApprovalPending
		}
		const ins = `INSERT INTO approvals (kind, status, account_id, balance_class, currency, amount, reason, reference, requested_by)
			VALUES ('reload', $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`
		var id int64
		if err := tx.QueryRow(ctx, ins, status, accountID, class, acc.Currency, amount, reason, reference, admin).Scan(&id); err != nil {
			return err
		}
		if status == ApprovalPosted {
			if err := l.postApprovedReload(ctx, tx, id, accountID, amount, admin, reference); err != nil {
				return err
			}
		}
		a, err = getApproval(ctx, tx, `WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return Approval{}, dbErr(op, err)
	}
	return a, nil
}

func (l *Ledger) postApprovedReload(ctx context.Context, tx pgx.Tx, id, accountID, amount int64, admin, reference string) error {
	p, err := l.reloadTx(ctx, tx, accountID, amount, "approval:"+strconv.FormatInt(id, 10),
		Source{Kind: SourceAdminReload, Actor: admin, Reference: reference})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE approvals SET posting_id = $2 WHERE id = $1`, id, p.ID)
	return err
}

// Decide approves or rejects a pending approval as admin. Approving needs
// another Admin than the one who asked (ErrSameApprover) and posts the
// reload or resolves the exception in the same transaction; rejecting
// (by any Admin, the one who asked included) posts nothing. A decided
// approval is ErrDecided. When posting fails (a bound reached meanwhile)
// the approval stays pending.
func (l *Ledger) Decide(ctx context.Context, id int64, admin string, approve bool) (Approval, error) {
	op := fmt.Sprintf("decide approval %d", id)
	if admin == "" {
		return Approval{}, fmt.Errorf("%s: no admin: %w", op, ErrInvalid)
	}
	var a Approval
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var err error
		if a, err = getApproval(ctx, tx, `WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		if a.Status != ApprovalPending {
			return fmt.Errorf("status %s: %w", a.Status, ErrDecided)
		}
		if !approve {
			_, err := tx.Exec(ctx, `UPDATE approvals SET status = 'rejected', decided_by = $2, decided_at = now() WHERE id = $1`, id, admin)
			return err
		}
		if a.RequestedBy == admin {
			return ErrSameApprover
		}
		switch a.Kind {
		case "reload":
			if err := l.postApprovedReload(ctx, tx, id, a.AccountID, a.Amount, a.RequestedBy, a.Reference); err != nil {
				return err
			}
		case "exception":
			p, err := l.resolveTx(ctx, tx, a.ExceptionID, a.Resolution, a.RequestedBy, admin, a.Reference)
			if err != nil {
				return err
			}
			if p != 0 {
				if _, err := tx.Exec(ctx, `UPDATE approvals SET posting_id = $2 WHERE id = $1`, id, p); err != nil {
					return err
				}
			}
		}
		_, err = tx.Exec(ctx, `UPDATE approvals SET status = 'approved', decided_by = $2, decided_at = now() WHERE id = $1`, id, admin)
		return err
	})
	if err != nil {
		return Approval{}, dbErr(op, err)
	}
	return l.Approval(ctx, id)
}

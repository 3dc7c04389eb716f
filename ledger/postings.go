package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Posting is one balanced movement of money: its entries sum to zero per
// currency.
type Posting struct {
	ID        int64
	Kind      string // reload, capture
	Ref       string
	HoldID    int64 // capture: the hold it resolved
	Memo      string
	CreatedAt time.Time
	Entries   []Entry
}

// Entry is one line of a posting on one account; a positive amount credits
// the account. Listed by Postings, it carries its posting's kind, ref and
// time.
type Entry struct {
	ID        int64
	PostingID int64
	AccountID int64
	Currency  string
	Amount    int64
	Kind      string
	Ref       string
	Memo      string
	CreatedAt time.Time
}

// insertPosting writes a posting and its entries in one currency. The
// accounts must be locked already; their balances are the caller's job.
func insertPosting(ctx context.Context, tx pgx.Tx, kind, ref string, holdID int64, currency string, accounts, amounts []int64) (Posting, error) {
	p := Posting{Kind: kind, Ref: ref, HoldID: holdID}
	var refArg *string
	if ref != "" {
		refArg = &ref
	}
	const ins = `INSERT INTO postings (kind, ref, hold_id) VALUES ($1, $2, $3) RETURNING id, created_at`
	if err := tx.QueryRow(ctx, ins, kind, refArg, nullID(holdID)).Scan(&p.ID, &p.CreatedAt); err != nil {
		return Posting{}, err
	}
	const entries = `INSERT INTO entries (posting_id, account_id, currency, amount)
		SELECT $1, a, $2, m FROM unnest($3::bigint[], $4::bigint[]) AS v (a, m)
		RETURNING id, account_id, amount`
	rows, err := tx.Query(ctx, entries, p.ID, currency, accounts, amounts)
	if err != nil {
		return Posting{}, err
	}
	var e Entry
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.AccountID, &e.Amount}, func() error {
		p.Entries = append(p.Entries, Entry{ID: e.ID, PostingID: p.ID, AccountID: e.AccountID, Currency: currency,
			Amount: e.Amount, Kind: kind, Ref: ref, CreatedAt: p.CreatedAt})
		return nil
	})
	return p, err
}

// Posting returns the posting with id and its entries.
func (l *Ledger) Posting(ctx context.Context, id int64) (Posting, error) {
	p, err := getPosting(ctx, l.pool, `WHERE id = $1`, id)
	return p, dbErr(fmt.Sprintf("posting %d", id), err)
}

func getPosting(ctx context.Context, q Querier, where string, args ...any) (Posting, error) {
	var p Posting
	var hold *int64
	err := q.QueryRow(ctx, `SELECT id, kind, coalesce(ref, ''), hold_id, memo, created_at FROM postings `+where, args...).
		Scan(&p.ID, &p.Kind, &p.Ref, &hold, &p.Memo, &p.CreatedAt)
	if err != nil {
		return Posting{}, err
	}
	p.HoldID = deref(hold)
	rows, err := q.Query(ctx, `SELECT id, account_id, currency, amount FROM entries WHERE posting_id = $1 ORDER BY id`, p.ID)
	if err != nil {
		return Posting{}, err
	}
	var e Entry
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.AccountID, &e.Currency, &e.Amount}, func() error {
		p.Entries = append(p.Entries, Entry{ID: e.ID, PostingID: p.ID, AccountID: e.AccountID, Currency: e.Currency,
			Amount: e.Amount, Kind: p.Kind, Ref: p.Ref, Memo: p.Memo, CreatedAt: p.CreatedAt})
		return nil
	})
	return p, err
}

// Reload credits amount (> 0) to a user, partner credit, partner deposit or
// partner account from the funding account of its currency. It is
// idempotent on ref: the same ref for the same account and amount returns
// the first posting and moves nothing; the same ref for anything else is
// ErrDuplicateRef. A closed account takes no reload.
func (l *Ledger) Reload(ctx context.Context, accountID int64, amount int64, ref string) (Posting, error) {
	op := fmt.Sprintf("reload account %d", accountID)
	if amount <= 0 {
		return Posting{}, fmt.Errorf("%s: amount %d: %w", op, amount, ErrInvalidAmount)
	}
	acc, err := l.Account(ctx, accountID)
	if err != nil {
		return Posting{}, fmt.Errorf("reload: %w", err)
	}
	switch acc.Kind {
	case KindUser, KindPartnerCredit, KindPartnerDeposit, KindPartner:
	default:
		return Posting{}, fmt.Errorf("%s: kind %s: %w", op, acc.Kind, ErrInvalid)
	}
	funding, err := l.internalID(ctx, l.pool, KindFunding, acc.Currency)
	if err != nil {
		return Posting{}, err
	}
	var p Posting
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		accs, err := lockAccounts(ctx, tx, accountID, funding)
		if err != nil {
			return err
		}
		if accs[accountID].State == StateClosed {
			return fmt.Errorf("closed: %w", ErrAccountNotActive)
		}
		if ref != "" {
			prev, err := getPosting(ctx, tx, `WHERE kind = 'reload' AND ref = $1`, ref)
			if err == nil {
				if len(prev.Entries) != 2 || !hasEntry(prev, accountID, amount) {
					return fmt.Errorf("ref %q: %w", ref, ErrDuplicateRef)
				}
				p = prev
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		p, err = insertPosting(ctx, tx, "reload", ref, 0, acc.Currency, []int64{funding, accountID}, []int64{-amount, amount})
		if err != nil {
			return err
		}
		return moveHeld(ctx, tx, map[int64][2]int64{funding: {-amount, 0}, accountID: {amount, 0}})
	})
	if err != nil {
		return Posting{}, dbErr(op, err)
	}
	return p, nil
}

func hasEntry(p Posting, accountID, amount int64) bool {
	for _, e := range p.Entries {
		if e.AccountID == accountID && e.Amount == amount {
			return true
		}
	}
	return false
}

// Postings returns the entries of an account with their postings' kind,
// ref and time, newest first, at most limit (default 100).
func (l *Ledger) Postings(ctx context.Context, accountID int64, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = 100
	}
	const q = `SELECT e.id, e.posting_id, e.account_id, e.currency, e.amount, p.kind, coalesce(p.ref, ''), p.memo, p.created_at
		FROM entries e JOIN postings p ON p.id = e.posting_id
		WHERE e.account_id = $1 ORDER BY e.id DESC LIMIT $2`
	rows, err := l.pool.Query(ctx, q, accountID, limit)
	if err != nil {
		return nil, dbErr(fmt.Sprintf("postings of account %d", accountID), err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := row.Scan(&e.ID, &e.PostingID, &e.AccountID, &e.Currency, &e.Amount, &e.Kind, &e.Ref, &e.Memo, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, dbErr(fmt.Sprintf("postings of account %d", accountID), err)
	}
	return out, nil
}

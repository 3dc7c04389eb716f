package ledger

import (
	"context"
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

package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The look-ups of the messages a completion, reversal or refund refers to,
// and the rates they are taken back at. The card host decides which key a
// message names and what to do with what is found.

// OriginalRow is the journal row a completion or reversal refers to.
type OriginalRow struct {
	ID, HoldID, CardID int64
	Class              int
	Ref                string // its request key (acquirer/STAN/transmission time/RRN/MTI)
	OrigRef            string // the request key of the message it names in turn, if any
	OrigProc           string // that message's processing code's positions 1-2
	Proc               string // its processing code's positions 1-2
	Amount             int64  // its DE4
	Currency           string // its DE49
	originalID         int64  // the journal row it names, if any
}

// originalColumns are OriginalRow's, from journal row j (of auth_journal
// or its archive) and the row o it names, joined from auth_journal alone
// (originalQuery), so that the journal's look-up plans no partition of
// the archive; FindOriginal reads the key of an archived row j names
// after.
const originalColumns = `j.id, coalesce(j.hold_id, 0), coalesce(j.card_id, 0), j.class,
	j.acquirer_id || '/' || j.stan || '/' || j.transmission_time || '/' || j.rrn || '/' || j.mti,
	coalesce(o.acquirer_id || '/' || o.stan || '/' || o.transmission_time || '/' || o.rrn || '/' || o.mti, ''),
	coalesce(left(o.processing_code, 2), ''),
	left(j.processing_code, 2), coalesce(j.amount, 0), coalesce(j.currency, ''), coalesce(j.original_id, 0)`

// journalTables are where a journal row is looked for, in order: the hot
// table, then its archive (migration 036), read only when the first has
// none.
var journalTables = [...]string{"auth_journal", "auth_journal_archive"}

// FindOriginal reads through q the journal row a message names: kind L by
// acquirer, STAN, local time t (DE12) and MTI; T by acquirer, STAN,
// transmission time t and MTI; R by acquirer, RRN and STAN among
// authorisations (as QueueMoneyProbe). When the journal has none, the
// archive is read (a late refund or completion of an archived original).
// found is false when there is none.
func FindOriginal(ctx context.Context, q Querier, kind, acq, stan, t, mti, rrn string) (o OriginalRow, found bool, err error) {
	return findOriginal(ctx, q, journalTables[:], kind, acq, stan, t, mti, rrn)
}

// FindHotOriginal is FindOriginal in the hot journal only: for a batch's
// tail, which holds the partner and internal rows and must not scan the
// archive's partitions meanwhile (the caller leaves such a message to its
// own transaction, which reads the archive).
func FindHotOriginal(ctx context.Context, q Querier, kind, acq, stan, t, mti, rrn string) (o OriginalRow, found bool, err error) {
	return findOriginal(ctx, q, journalTables[:1], kind, acq, stan, t, mti, rrn)
}

func findOriginal(ctx context.Context, q Querier, tables []string, kind, acq, stan, t, mti, rrn string) (o OriginalRow, found bool, err error) {
	args := []any{acq, stan, t, mti}
	if kind != "L" && kind != "T" {
		args = []any{acq, rrn, stan}
	}
	for _, table := range tables {
		err = q.QueryRow(ctx, originalQuery(table, kind), args...).
			Scan(&o.ID, &o.HoldID, &o.CardID, &o.Class, &o.Ref, &o.OrigRef, &o.OrigProc, &o.Proc, &o.Amount, &o.Currency, &o.originalID)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err == nil && o.OrigRef == "" && o.originalID != 0 {
		// The row it names is archived.
		err = q.QueryRow(ctx, `SELECT o.acquirer_id || '/' || o.stan || '/' || o.transmission_time || '/' || o.rrn || '/' || o.mti,
			left(o.processing_code, 2) FROM auth_journal_archive o WHERE o.id = $1`, o.originalID).Scan(&o.OrigRef, &o.OrigProc)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return OriginalRow{}, false, nil
	}
	if err != nil {
		return OriginalRow{}, false, fmt.Errorf("find original: %w", err)
	}
	return o, true, nil
}

// originalQuery is findOriginal's look-up of a key of kind in table:
// L ($1 acquirer, $2 STAN, $3 local time, $4 MTI), T (the same with the
// transmission time), R ($1 acquirer, $2 RRN, $3 STAN).
func originalQuery(table, kind string) string {
	where := `j.acquirer_id = $1 AND j.rrn = $2 AND j.stan = $3 AND j.class IN (1, 2, 3)`
	switch kind {
	case "L":
		where = `j.acquirer_id = $1 AND j.stan = $2 AND j.local_time = $3 AND j.mti = $4`
	case "T":
		where = `j.acquirer_id = $1 AND j.stan = $2 AND j.transmission_time = $3 AND j.mti = $4`
	}
	return `SELECT ` + originalColumns + ` FROM ` + table + ` j LEFT JOIN auth_journal o ON o.id = j.original_id WHERE ` + where +
		` ORDER BY j.id LIMIT 1`
}

// HoldRate is what a partial reversal is converted at: the original's
// DE4 and currency, what its hold held (or its capture took) for it, what
// the hold holds now (-1: no longer open) and the hold's currency.
type HoldRate struct {
	OrigAmount   int64
	OrigCurrency string
	HoldOriginal int64
	Held         int64
	HoldCurrency string // numeric ISO 4217
}

// HoldRateOf reads in tx the rate of hold holdID placed for journal row
// origID.
func HoldRateOf(ctx context.Context, tx pgx.Tx, origID, holdID int64) (HoldRate, error) {
	// The rate is the original's own: what its hold held for its DE4, or
	// what its capture took (a completion, an x200) for its DE4.
	// An archived original (its hold no longer open) is read from the
	// archive.
	const q = `SELECT coalesce(j.amount, 0), coalesce(j.currency, ''),
			CASE WHEN h.status = 'captured' THEN coalesce(h.captured_amount, h.original_amount) ELSE h.original_amount END,
			CASE WHEN h.status = 'open' THEN h.amount ELSE -1 END, c.numeric
		FROM holds h JOIN currencies c ON c.code = h.currency, `
	var r HoldRate
	var err error
	for _, table := range journalTables {
		err = tx.QueryRow(ctx, q+table+` j WHERE h.id = $1 AND j.id = $2`, holdID, origID).
			Scan(&r.OrigAmount, &r.OrigCurrency, &r.HoldOriginal, &r.Held, &r.HoldCurrency)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	return r, err
}

// CreditedAmount is what the refund credit ref put on the card's account,
// in its currency.
func CreditedAmount(ctx context.Context, tx pgx.Tx, ref string) (int64, error) {
	var credited int64
	err := tx.QueryRow(ctx, `SELECT -e.amount FROM postings p JOIN entries e ON e.posting_id = p.id
		JOIN accounts a ON a.id = e.account_id AND a.kind = 'settlement' WHERE p.kind = 'credit' AND p.ref = $1`, ref).Scan(&credited)
	return credited, err
}

// LockJournalRow reads, locked in tx, the journal row of a request key:
// its id, reason and hold (nil: none); found is false when there is none.
func LockJournalRow(ctx context.Context, tx pgx.Tx, k JournalKey) (id int64, reason string, holdID *int64, found bool, err error) {
	err = tx.QueryRow(ctx, `SELECT id, reason, hold_id FROM auth_journal
			WHERE acquirer_id = $1 AND stan = $2 AND transmission_time = $3 AND rrn = $4 AND mti = $5 FOR UPDATE`,
		k.Acq, k.STAN, k.TT, k.RRN, k.MTI).Scan(&id, &reason, &holdID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil, false, nil
	}
	return id, reason, holdID, err == nil, err
}

// RewriteJournalAnswer records in tx a declined answer (reason, no
// approval code) with detail on journal row id.
func RewriteJournalAnswer(ctx context.Context, tx pgx.Tx, id int64, reason, detail string) error {
	_, err := tx.Exec(ctx, `UPDATE auth_journal SET reason = $2, approval_code = '', detail = $3 WHERE id = $1`, id, reason, detail)
	return err
}

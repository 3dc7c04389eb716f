package ledger

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// SimulationAcquirer is the acquirer id (DE32) of simulated messages: the
// simulation endpoints send it, and VerifySimulations fails on any of its
// postings, holds or journal rows outside a sandbox program.
const SimulationAcquirer = "99999999901"

// Authorization is a card request of a balance's cards as the journal
// recorded it, with what became of its hold: pending (open), captured,
// released (reversed) or expired.
type Authorization struct {
	JournalID      int64
	At             time.Time
	Profile        string
	MTI            string
	ProcessingCode string
	CardID         int64
	MaskedPAN      string
	Merchant       string // DE43: name, city and country
	Amount         int64
	Currency       string // alphabetic when known
	Reason         string
	ApprovalCode   string
	Detail         string
	HoldID         int64
	HoldStatus     string // open, captured, released, expired; "" without a hold
	HoldAmount     int64  // still held while open
	HoldCurrency   string
	Captured       *int64
	Refunded       int64
	ResolvedAt     *time.Time
	ExpiresAt      *time.Time
	Simulation     bool
}

// Authorizations returns the authorisations and advices (x100, x200, x120)
// of the cards of a balance, or of one card when cardID is set, newest
// first, at most limit.
func (l *Ledger) Authorizations(ctx context.Context, accountID, cardID int64, limit int) ([]Authorization, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	const q = `SELECT j.id, j.created_at, j.profile, j.mti, j.processing_code, coalesce(j.card_id, 0), j.pan_masked, j.merchant,
			j.amount, coalesce(c.code, j.currency), j.reason, j.approval_code, j.detail, coalesce(h.id, 0), coalesce(h.status, ''),
			coalesce(h.amount, 0), coalesce(h.currency, ''), h.captured_amount, coalesce(h.refunded, 0), h.resolved_at, h.expires_at,
			j.acquirer_id = $4
		FROM auth_journal j LEFT JOIN holds h ON h.id = j.hold_id LEFT JOIN currencies c ON c.numeric = j.currency
		WHERE j.card_id IN (SELECT id FROM cards WHERE ($1 = 0 OR account_id = $1) AND ($2 = 0 OR id = $2)) AND j.class IN (1, 2, 3)
		ORDER BY j.id DESC LIMIT $3`
	rows, err := l.pool.Query(ctx, q, accountID, cardID, limit, SimulationAcquirer)
	if err != nil {
		return nil, dbErr("authorizations", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Authorization, error) {
		var a Authorization
		err := row.Scan(&a.JournalID, &a.At, &a.Profile, &a.MTI, &a.ProcessingCode, &a.CardID, &a.MaskedPAN, &a.Merchant,
			&a.Amount, &a.Currency, &a.Reason, &a.ApprovalCode, &a.Detail, &a.HoldID, &a.HoldStatus,
			&a.HoldAmount, &a.HoldCurrency, &a.Captured, &a.Refunded, &a.ResolvedAt, &a.ExpiresAt, &a.Simulation)
		return a, err
	})
	return out, dbErr("authorizations", err)
}

// SimulatedMessage is a simulated message (acquirer SimulationAcquirer) as
// the journal recorded it, with the blind-refund exception it opened.
type SimulatedMessage struct {
	JournalID        int64
	CardID           int64
	MTI              string
	STAN             string
	TransmissionTime string // DE7
	LocalTime        string // DE12 (the CMF's DE56 names an original by it)
	Amount           int64
	Reason, Detail   string
	Waiting          int64 // a refund's amount not credited: waits for an Admin
	ExceptionID      int64 // the blind_refund exception of what waits
}

// SimulatedMessageOf returns the latest journal row of the simulated
// message of STAN stan (and MTI mti, when not empty); ErrNotFound if none.
// A refund's waiting amount is its exception's (ref "refund:credit:" and
// the card host's journal ref: acquirer/STAN/DE7/RRN/MTI).
func (l *Ledger) SimulatedMessageOf(ctx context.Context, stan, mti string) (SimulatedMessage, error) {
	const q = `SELECT j.id, coalesce(j.card_id, 0), j.mti, j.stan, j.transmission_time, j.local_time, j.amount, j.reason, j.detail,
			coalesce(x.amount, 0), coalesce(x.id, 0)
		FROM auth_journal j LEFT JOIN exceptions x ON x.kind = 'blind_refund'
			AND x.ref = 'refund:credit:' || j.acquirer_id || '/' || j.stan || '/' || j.transmission_time || '/' || j.rrn || '/' || j.mti
		WHERE j.acquirer_id = $1 AND j.stan = $2 AND ($3 = '' OR j.mti = $3) ORDER BY j.id DESC LIMIT 1`
	var m SimulatedMessage
	err := l.pool.QueryRow(ctx, q, SimulationAcquirer, stan, mti).Scan(&m.JournalID, &m.CardID, &m.MTI, &m.STAN, &m.TransmissionTime,
		&m.LocalTime, &m.Amount, &m.Reason, &m.Detail, &m.Waiting, &m.ExceptionID)
	return m, dbErr("simulated message "+stan, err)
}

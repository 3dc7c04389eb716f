package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PanelReader holds the read queries of the administration panel (issue 20):
// the journal by minute and its last answers, the customer search, paged
// entries, certificates and logins. The exceptions queue and approvals are
// the API's (Ledger.Exceptions, Ledger.Approvals through the card host).
// It only reads; every change the panel makes goes through the card host.
// It is safe for concurrent use.
type PanelReader struct {
	pool *pgxpool.Pool
}

// NewPanelReader returns the panel's queries on pool.
func NewPanelReader(pool *pgxpool.Pool) *PanelReader { return &PanelReader{pool: pool} }

// MinuteStat is one minute of the authorisation journal.
type MinuteStat struct {
	Minute   time.Time
	Total    int
	Approved int
	// P99 is the 99th percentile of the answer time (read to decision
	// written) of the minute's requests that carry one; HasP99 says whether
	// any did.
	P99    time.Duration
	HasP99 bool
}

// AuthsPerMinute returns the journal's requests per minute since since,
// oldest first; minutes without requests are absent.
func (r *PanelReader) AuthsPerMinute(ctx context.Context, since time.Time) ([]MinuteStat, error) {
	const q = `SELECT date_trunc('minute', created_at), count(*)::int,
			(count(*) FILTER (WHERE reason IN ('approved', 'partial_approved')))::int,
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM decided_at - received_at))
		FROM auth_journal WHERE created_at >= $1
		GROUP BY 1 ORDER BY 1`
	rows, err := r.pool.Query(ctx, q, since)
	if err != nil {
		return nil, dbErr("journal per minute", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (MinuteStat, error) {
		var (
			m   MinuteStat
			p99 *float64
		)
		err := row.Scan(&m.Minute, &m.Total, &m.Approved, &p99)
		if p99 != nil {
			m.P99, m.HasP99 = time.Duration(*p99*float64(time.Second)), true
		}
		return m, err
	})
	if err != nil {
		return nil, dbErr("journal per minute", err)
	}
	return out, nil
}

// Answer is one journal row as the live view shows it: never the PAN, only
// its masked form.
type Answer struct {
	ID         int64
	At         time.Time
	Profile    string
	MTI        string
	AcquirerID string
	CardID     int64
	MaskedPAN  string
	Amount     int64
	Currency   string // alphabetic when known, else the numeric code as on the wire
	Exponent   int
	Reason     string
	Latency    time.Duration
	HasLatency bool
}

// AnswerFilter narrows RecentAnswers. Zero fields do not filter.
type AnswerFilter struct {
	ID     int64 // one journal row
	CardID int64
	// Reasons, when not nil, keeps the rows whose reason is listed for the
	// row's profile (an action code means different reasons per profile).
	Reasons map[string][]string
	// PartnerID keeps the rows of that partner's cards.
	PartnerID int64
	Limit     int // default 50, at most 500
}

// RecentAnswers returns the newest journal rows first.
func (r *PanelReader) RecentAnswers(ctx context.Context, f AnswerFilter) ([]Answer, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	where := []string{"true"}
	args := []any{f.Limit}
	if f.ID > 0 {
		args = append(args, f.ID)
		where = append(where, fmt.Sprintf("j.id = $%d", len(args)))
	}
	if f.CardID > 0 {
		args = append(args, f.CardID)
		where = append(where, fmt.Sprintf("j.card_id = $%d", len(args)))
	}
	if f.PartnerID > 0 {
		args = append(args, f.PartnerID)
		where = append(where, fmt.Sprintf("j.card_id IN (SELECT c.id FROM cards c JOIN programs p ON p.id = c.program_id WHERE p.partner_id = $%d)", len(args)))
	}
	if f.Reasons != nil {
		var or []string
		for profile, reasons := range f.Reasons {
			args = append(args, profile, reasons)
			or = append(or, fmt.Sprintf("(j.profile = $%d AND j.reason = ANY($%d))", len(args)-1, len(args)))
		}
		if len(or) == 0 {
			or = []string{"false"}
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	q := `SELECT j.id, j.created_at, j.profile, j.mti, j.acquirer_id, coalesce(j.card_id, 0), j.pan_masked, j.amount,
			coalesce(c.code, j.currency), coalesce(c.exponent, 0), j.reason,
			extract(epoch FROM j.decided_at - j.received_at)
		FROM auth_journal j LEFT JOIN currencies c ON c.numeric = j.currency
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY j.id DESC LIMIT $1`
	rows, err := r.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, dbErr("recent answers", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Answer, error) {
		var (
			a   Answer
			lat *float64
		)
		err := row.Scan(&a.ID, &a.At, &a.Profile, &a.MTI, &a.AcquirerID, &a.CardID, &a.MaskedPAN, &a.Amount,
			&a.Currency, &a.Exponent, &a.Reason, &lat)
		if lat != nil {
			a.Latency, a.HasLatency = time.Duration(*lat*float64(time.Second)), true
		}
		return a, err
	})
	if err != nil {
		return nil, dbErr("recent answers", err)
	}
	return out, nil
}

// AdminNames returns the names of the admin users by id: the panel shows
// who asked for and who decided an approval ("admin:<id>").
func (r *PanelReader) AdminNames(ctx context.Context) (map[int64]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT id, name FROM admin_users`)
	if err != nil {
		return nil, dbErr("admin names", err)
	}
	out := map[int64]string{}
	var (
		id   int64
		name string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		out[id] = name
		return nil
	})
	if err != nil {
		return nil, dbErr("admin names", err)
	}
	return out, nil
}

// CustomerQuery is a customer search. Set one of ID, Text (in name or
// e-mail, case-insensitive) or First6 and Last4 (a card's BIN and last
// four digits). PartnerID, when set, keeps that partner's customers.
type CustomerQuery struct {
	ID        int64
	Text      string
	First6    string
	Last4     string
	PartnerID int64
	Limit     int // default 50
}

// CustomerHit is one customer found.
type CustomerHit struct {
	ID          int64
	PartnerID   int64
	ProgramID   int64
	ExternalRef string
	Name        string
	Email       string
	KYC         string
	CreatedAt   time.Time
}

// SearchCustomers finds customers, newest first.
func (r *PanelReader) SearchCustomers(ctx context.Context, cq CustomerQuery) ([]CustomerHit, error) {
	if cq.Limit <= 0 || cq.Limit > 200 {
		cq.Limit = 50
	}
	like := ""
	if cq.Text != "" {
		like = "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(cq.Text) + "%"
	}
	const q = `SELECT u.id, u.partner_id, u.program_id, u.external_ref, u.name, u.email, u.kyc_status, u.created_at
		FROM users u
		WHERE ($1 = 0 OR u.id = $1)
		  AND ($2 = '' OR u.name ILIKE $2 OR u.email ILIKE $2 OR u.external_ref ILIKE $2)
		  AND ($3 = '' OR EXISTS (SELECT 1 FROM cards c WHERE c.user_id = u.id AND c.pan_last4 = $4 AND c.pan_first6 = $3))
		  AND ($5 = 0 OR u.partner_id = $5)
		ORDER BY u.id DESC LIMIT $6`
	rows, err := r.pool.Query(ctx, q, cq.ID, like, cq.First6, cq.Last4, cq.PartnerID, cq.Limit)
	if err != nil {
		return nil, dbErr("search customers", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CustomerHit, error) {
		var h CustomerHit
		err := row.Scan(&h.ID, &h.PartnerID, &h.ProgramID, &h.ExternalRef, &h.Name, &h.Email, &h.KYC, &h.CreatedAt)
		return h, err
	})
	if err != nil {
		return nil, dbErr("search customers", err)
	}
	return out, nil
}

// EntriesBefore returns a balance's entries older than the entry beforeID
// (0: from the newest), newest first, at most limit: the pages of a
// balance's transactions.
func (r *PanelReader) EntriesBefore(ctx context.Context, accountID, beforeID int64, limit int) ([]Entry, error) {
	if limit <= 0 || limit > 500 {
		limit = 25
	}
	const q = `SELECT e.id, e.posting_id, e.account_id, e.currency, e.amount, p.kind, coalesce(p.ref, ''), p.memo, p.created_at
		FROM entries e JOIN postings p ON p.id = e.posting_id
		WHERE e.account_id = $1 AND ($2 = 0 OR e.id < $2) ORDER BY e.id DESC LIMIT $3`
	rows, err := r.pool.Query(ctx, q, accountID, beforeID, limit)
	if err != nil {
		return nil, dbErr(fmt.Sprintf("entries of account %d", accountID), err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := row.Scan(&e.ID, &e.PostingID, &e.AccountID, &e.Currency, &e.Amount, &e.Kind, &e.Ref, &e.Memo, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, dbErr(fmt.Sprintf("entries of account %d", accountID), err)
	}
	return out, nil
}

// Certificate is a client certificate the internal CA issued.
type Certificate struct {
	Serial    string
	Kind      string
	Subject   string
	NotAfter  time.Time
	Revoked   bool
	CreatedAt time.Time
}

// PartnerCertificates returns a partner's client certificates, newest first.
func (r *PanelReader) PartnerCertificates(ctx context.Context, partnerID int64) ([]Certificate, error) {
	const q = `SELECT serial, kind, subject, not_after, revoked, created_at FROM partner_certificates
		WHERE partner_id = $1 ORDER BY created_at DESC, serial`
	return r.certificates(ctx, q, partnerID)
}

// EntityCertificates returns the schemes' and acquirers' client
// certificates, newest first.
func (r *PanelReader) EntityCertificates(ctx context.Context) ([]Certificate, error) {
	const q = `SELECT serial, kind, coalesce(entity, '') || ' · ' || subject, not_after, revoked, created_at
		FROM partner_certificates WHERE partner_id IS NULL ORDER BY created_at DESC, serial`
	return r.certificates(ctx, q)
}

func (r *PanelReader) certificates(ctx context.Context, q string, args ...any) ([]Certificate, error) {
	rows, err := r.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, dbErr("certificates", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Certificate])
	if err != nil {
		return nil, dbErr("certificates", err)
	}
	return out, nil
}

// Viewer is a partner viewer login of the panel.
type Viewer struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// PartnerViewers returns the panel logins of a partner's viewers.
func (r *PanelReader) PartnerViewers(ctx context.Context, partnerID int64) ([]Viewer, error) {
	const q = `SELECT id, name, created_at FROM admin_users WHERE partner_id = $1 ORDER BY id`
	rows, err := r.pool.Query(ctx, q, partnerID)
	if err != nil {
		return nil, dbErr("partner viewers", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Viewer])
	if err != nil {
		return nil, dbErr("partner viewers", err)
	}
	return out, nil
}

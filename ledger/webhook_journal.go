package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/antaca/antaca/internal/decimal"
	"github.com/jackc/pgx/v5"
)

// Webhook delivery straight from the journal (migration 029): the worker
// holding the cursor's lease reads journal rows past it, sends their events
// and records per batch the cursor's advance and one webhook_journal_sends
// row per endpoint; only failures become event, delivery and attempt rows.

// The events made from journal row n have the ids <prefix>n, one prefix a
// kind (partner.JournalEvents makes them, docs/api.md lists them).
const (
	EventAuthPrefix     = "evt_auth_" // authorization.approved or .declined
	EventClearingPrefix = "evt_clr_"  // clearing.captured
	EventRefundPrefix   = "evt_ref_"  // refund.credited
	EventReversalPrefix = "evt_rev_"  // authorization.reversed
)

// journalEventPrefixes are the prefixes of journal events' ids.
var journalEventPrefixes = []string{EventAuthPrefix, EventClearingPrefix, EventRefundPrefix, EventReversalPrefix}

// JournalEventID is the journal id an event id names (evt_auth_17: 17), 0
// for any other id (an event of the outbox).
func JournalEventID(id string) int64 {
	for _, p := range journalEventPrefixes {
		if rest, ok := strings.CutPrefix(id, p); ok {
			n, _ := decimal.ID(rest)
			return n
		}
	}
	return 0
}

// journalEventIDsOf is SQL for the ids of the events of journal row r:
// 'evt_auth_' || r.id, 'evt_clr_' || r.id, ...
var journalEventIDsOf = func() string {
	s := make([]string, len(journalEventPrefixes))
	for i, p := range journalEventPrefixes {
		s[i] = "'" + p + "' || r.id"
	}
	return strings.Join(s, ", ")
}()

// Event is one event to record.
type Event struct {
	ID        string // empty: evt_<n>
	PartnerID int64
	Type      string
	At        time.Time
	Data      json.RawMessage
}

// JournalCursor is the journal position up to which every row's events
// are done.
func (l *Ledger) JournalCursor(ctx context.Context) (int64, error) {
	var n int64
	err := l.pool.QueryRow(ctx, `SELECT position FROM webhook_cursors WHERE name = 'auth_journal'`).Scan(&n)
	return n, dbErr("journal cursor", err)
}

// JournalState is the cursor as its lease holder sees it: Seen is the
// highest journal id read, Gaps the ids below it not read yet.
type JournalState struct {
	Seen int64
	Gaps []int64
}

// LeaseJournal takes or renews the cursor's lease for owner until lease
// from now; ok is false while another owner holds it. The state is the
// one last recorded.
func (l *Ledger) LeaseJournal(ctx context.Context, owner string, lease time.Duration) (st JournalState, ok bool, err error) {
	err = l.pool.QueryRow(ctx, `UPDATE webhook_cursors SET owner = $1, leased_until = now() + make_interval(secs => $2)
		WHERE name = 'auth_journal' AND (owner = $1 OR leased_until < now()) RETURNING seen, gaps`, owner, lease.Seconds()).Scan(&st.Seen, &st.Gaps)
	if err == pgx.ErrNoRows {
		return st, false, nil
	}
	return st, err == nil, dbErr("lease journal", err)
}

// JournalEndpoint is an endpoint taking events made from the journal.
type JournalEndpoint struct {
	ID, PartnerID int64
	URL           string
	EventTypes    []string
	Secrets       []string // the current one, then the previous during a rotation
}

// JournalSnapshot is what the journal's follower reads before the rows:
// the endpoints taking any of types and the oldest transaction still
// running (Xmin) and the next to start (Xmax), cluster-wide.
type JournalSnapshot struct {
	Endpoints  []JournalEndpoint
	Xmin, Xmax uint64
}

// JournalFollow returns the endpoints taking any of types (not disabled)
// with the current snapshot's bounds, taken before any row is read.
func (l *Ledger) JournalFollow(ctx context.Context, types []string) (JournalSnapshot, error) {
	var s JournalSnapshot
	err := l.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint FROM pg_current_snapshot() s`).
		Scan(&s.Xmin, &s.Xmax)
	if err != nil {
		return s, dbErr("journal snapshot", err)
	}
	rows, err := l.pool.Query(ctx, `SELECT id, partner_id, url, event_types,
			array_remove(ARRAY[secret, CASE WHEN previous_until > now() THEN previous_secret END], NULL)
		FROM webhook_endpoints WHERE status <> 'disabled' AND (event_types && $1 OR '*' = ANY (event_types)) ORDER BY id`, types)
	if err != nil {
		return s, dbErr("journal endpoints", err)
	}
	s.Endpoints, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (JournalEndpoint, error) {
		var e JournalEndpoint
		err := row.Scan(&e.ID, &e.PartnerID, &e.URL, &e.EventTypes, &e.Secrets)
		return e, err
	})
	return s, dbErr("journal endpoints", err)
}

// JournalEnd is the highest journal id committed so far.
func (l *Ledger) JournalEnd(ctx context.Context) (int64, error) {
	var n int64
	err := l.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM auth_journal`).Scan(&n)
	return n, dbErr("journal end", err)
}

// JournalEventRow is an auth_journal row with what an event about it needs.
// PartnerID is 0 for a row of no known card.
type JournalEventRow struct {
	ID                        int64
	CreatedAt                 time.Time
	Class                     int
	MTI, ProcessingCode       string
	Reason, Detail            string
	Amount, BillingAmount     int64
	Currency, BillingCurrency string // alphabetic when known
	Merchant, MaskedPAN       string
	ApprovalCode              string
	HoldID, OriginalID        int64
	Available                 *int64
	AvailableCurrency         string
	CardID, UserID, AccountID int64
	ProgramID, PartnerID      int64
}

// journalEventColumns are a JournalEventRow's, from the journal row r.
const journalEventColumns = `r.id, r.created_at, r.class, r.mti, r.processing_code, r.reason, r.detail, r.amount,
	coalesce(c1.code, r.currency), r.billing_amount, coalesce(c2.code, r.billing_currency), r.merchant, r.pan_masked,
	r.approval_code, coalesce(r.hold_id, 0), coalesce(r.original_id, 0), r.available, coalesce(c3.code, r.available_currency),
	coalesce(k.id, 0), coalesce(k.user_id, 0), coalesce(k.account_id, 0), coalesce(k.program_id, 0), coalesce(p.partner_id, 0)`

// journalEventJoins find r's card, program and currencies.
const journalEventJoins = `LEFT JOIN cards k ON k.id = r.card_id LEFT JOIN programs p ON p.id = k.program_id
	LEFT JOIN currencies c1 ON c1.numeric = r.currency LEFT JOIN currencies c2 ON c2.numeric = r.billing_currency
	LEFT JOIN currencies c3 ON c3.numeric = r.available_currency`

func scanJournalEventRow(row pgx.Row, extra ...any) (JournalEventRow, error) {
	var j JournalEventRow
	err := row.Scan(append([]any{&j.ID, &j.CreatedAt, &j.Class, &j.MTI, &j.ProcessingCode, &j.Reason, &j.Detail, &j.Amount,
		&j.Currency, &j.BillingAmount, &j.BillingCurrency, &j.Merchant, &j.MaskedPAN,
		&j.ApprovalCode, &j.HoldID, &j.OriginalID, &j.Available, &j.AvailableCurrency,
		&j.CardID, &j.UserID, &j.AccountID, &j.ProgramID, &j.PartnerID}, extra...)...)
	return j, err
}

// journalRawColumns are a JournalEventRow's own columns, from the journal
// row r alone: currencies numeric, no card owner (JournalRows).
const journalRawColumns = `r.id, r.created_at, r.class, r.mti, r.processing_code, r.reason, r.detail, r.amount,
	r.currency, r.billing_amount, r.billing_currency, r.merchant, r.pan_masked,
	r.approval_code, coalesce(r.hold_id, 0), coalesce(r.original_id, 0), r.available, r.available_currency,
	coalesce(r.card_id, 0), 0, 0, 0, 0`

// JournalRows returns the journal rows with ids above after (at most
// limit) and those of ids (gaps seen earlier that may have been filled
// since), in id order, with their own columns only: currencies numeric and
// no card owner (UserID to PartnerID are 0; see CardOwners). This read runs
// all the time under load: a range of the primary key and nothing else.
func (l *Ledger) JournalRows(ctx context.Context, after int64, ids []int64, limit int) ([]JournalEventRow, error) {
	rows, err := l.pool.Query(ctx, `(SELECT `+journalRawColumns+` FROM auth_journal r WHERE r.id > $1 ORDER BY r.id LIMIT $3)
		UNION ALL
		SELECT `+journalRawColumns+` FROM auth_journal r WHERE r.id = ANY ($2) AND r.id <= $1
		ORDER BY 1`, after, nonNil(ids), limit)
	if err != nil {
		return nil, dbErr("journal rows", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (JournalEventRow, error) { return scanJournalEventRow(row) })
	return out, dbErr("journal rows", err)
}

// CardOwner is who a card belongs to; none of it changes in a card's life.
type CardOwner struct {
	UserID, AccountID, ProgramID, PartnerID int64
}

// CardOwners returns the owners of the cards ids (unknown ones left out).
func (l *Ledger) CardOwners(ctx context.Context, ids []int64) (map[int64]CardOwner, error) {
	rows, err := l.pool.Query(ctx, `SELECT k.id, k.user_id, k.account_id, k.program_id, p.partner_id
		FROM cards k JOIN programs p ON p.id = k.program_id WHERE k.id = ANY ($1)`, nonNil(ids))
	if err != nil {
		return nil, dbErr("card owners", err)
	}
	out := map[int64]CardOwner{}
	var id int64
	var o CardOwner
	_, err = pgx.ForEachRow(rows, []any{&id, &o.UserID, &o.AccountID, &o.ProgramID, &o.PartnerID}, func() error {
		out[id] = o
		return nil
	})
	return out, dbErr("card owners", err)
}

// CurrencyCodes maps ISO 4217 numeric codes to alphabetic ones.
func (l *Ledger) CurrencyCodes(ctx context.Context) (map[string]string, error) {
	rows, err := l.pool.Query(ctx, `SELECT numeric, code FROM currencies`)
	if err != nil {
		return nil, dbErr("currency codes", err)
	}
	out := map[string]string{}
	var num, code string
	_, err = pgx.ForEachRow(rows, []any{&num, &code}, func() error {
		out[num] = code
		return nil
	})
	return out, dbErr("currency codes", err)
}

// PartnerJournalRows returns the newest journal rows of a partner's cards,
// at most limit.
func (l *Ledger) PartnerJournalRows(ctx context.Context, partnerID int64, limit int) ([]JournalEventRow, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+journalEventColumns+` FROM auth_journal r `+journalEventJoins+`
		WHERE p.partner_id = $1 ORDER BY r.id DESC LIMIT $2`, partnerID, limit)
	if err != nil {
		return nil, dbErr("partner journal rows", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (JournalEventRow, error) { return scanJournalEventRow(row) })
	return out, dbErr("partner journal rows", err)
}

// JournalSend is what one batch delivered to one endpoint: its events of
// journal ids First to Last, Events of them, the slowest taking MS.
type JournalSend struct {
	EndpointID, First, Last int64
	Events, MS              int
}

// JournalFailure is an event from the journal not delivered on its first
// try (Tried) or not tried because its endpoint is failing: it becomes a
// pending delivery, retried from NextAt.
type JournalFailure struct {
	Event      Event
	EndpointID int64
	Tried      bool
	Status     int // 0: no answer
	Error      string
	Took       time.Duration
	NextAt     time.Time
}

// JournalAdvance is what one batch of the journal's follower records.
type JournalAdvance struct {
	State    JournalState
	Position int64 // everything up to it done
	Sends    []JournalSend
	Failures []JournalFailure
}

// AdvanceJournal records a batch in one transaction, renewing owner's lease
// for lease: the cursor, the sends and the failures' rows. ok is false,
// and nothing is recorded, when owner does not hold the lease any more.
func (l *Ledger) AdvanceJournal(ctx context.Context, owner string, lease time.Duration, a JournalAdvance) (ok bool, err error) {
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webhook_cursors SET seen = $2, gaps = $3, position = greatest(position, $4),
			leased_until = now() + make_interval(secs => $5)
			WHERE name = 'auth_journal' AND owner = $1`, owner, a.State.Seen, nonNil(a.State.Gaps), a.Position, lease.Seconds())
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		ok = true
		b := &pgx.Batch{}
		if n := len(a.Sends); n > 0 {
			eps, first, last := make([]int64, n), make([]int64, n), make([]int64, n)
			events, ms := make([]int32, n), make([]int32, n)
			for i, s := range a.Sends {
				eps[i], first[i], last[i], events[i], ms[i] = s.EndpointID, s.First, s.Last, int32(s.Events), int32(s.MS)
			}
			b.Queue(`INSERT INTO webhook_journal_sends (endpoint_id, first_id, last_id, events, ms)
				SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::int[])`, eps, first, last, events, ms)
		}
		for _, f := range a.Failures {
			queueFailure(b, f)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		ok = false
	}
	return ok, dbErr("advance journal", err)
}

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

// queueFailure records f's event, its pending delivery and, when it was
// tried, the attempt.
// insertJournalEvent stores a journal event once (its id is the journal
// row's): a failed first try, or a replay.
const insertJournalEvent = `INSERT INTO webhook_events (id, partner_id, type, created_at, data) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (id) DO NOTHING`

func queueFailure(b *pgx.Batch, f JournalFailure) {
	e := f.Event
	attempts := 0
	if f.Tried {
		attempts = 1
	}
	b.Queue(insertJournalEvent,
		e.ID, e.PartnerID, e.Type, e.At, []byte(e.Data))
	b.Queue(`WITH d AS (
			INSERT INTO webhook_deliveries (endpoint_id, event_id, attempts, next_at, last_status, last_error)
			VALUES ($1, $2, $3, $4, NULLIF($5, 0), NULLIF($6, ''))
			ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', attempts = webhook_deliveries.attempts + EXCLUDED.attempts,
				next_at = EXCLUDED.next_at, last_status = coalesce(EXCLUDED.last_status, webhook_deliveries.last_status),
				last_error = coalesce(EXCLUDED.last_error, webhook_deliveries.last_error)
			RETURNING id)
		INSERT INTO webhook_attempts (delivery_id, status, error, ms) SELECT id, NULLIF($5, 0), NULLIF($6, ''), $7 FROM d WHERE $3 > 0`,
		f.EndpointID, e.ID, attempts, f.NextAt, f.Status, f.Error, int32(f.Took.Milliseconds()))
}

// JournalSent is a journal row whose events were delivered to an endpoint
// by a batch (a webhook_journal_sends row covering it), with the endpoint's
// event types and the ids of the row's events that have a delivery row of
// their own (not delivered by the batch, or delivered again).
type JournalSent struct {
	Row         JournalEventRow
	EndpointID  int64
	EventTypes  []string
	At          time.Time
	MS          int
	OwnDelivery []string
}

// JournalSent lists journal rows delivered by batches, newest batch first,
// of the filter's partner and endpoint (0: all), of journal id journalID
// when it is not 0, at most f.Limit.
func (l *Ledger) JournalSent(ctx context.Context, f DeliveryFilter, journalID int64) ([]JournalSent, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := l.pool.Query(ctx, `SELECT `+journalEventColumns+`, s.endpoint_id, e.event_types, s.at, s.ms,
			ARRAY(SELECT d.event_id FROM webhook_deliveries d WHERE d.endpoint_id = s.endpoint_id
				AND d.event_id IN (`+journalEventIDsOf+`))
		FROM webhook_journal_sends s JOIN webhook_endpoints e ON e.id = s.endpoint_id
		CROSS JOIN LATERAL (SELECT j.* FROM auth_journal j JOIN cards jk ON jk.id = j.card_id JOIN programs jp ON jp.id = jk.program_id
			WHERE j.id BETWEEN s.first_id AND s.last_id AND jp.partner_id = e.partner_id AND ($3 = 0 OR j.id = $3)
			ORDER BY j.id DESC LIMIT $4) r
		`+journalEventJoins+`
		WHERE ($1 = 0 OR e.partner_id = $1) AND ($2 = 0 OR s.endpoint_id = $2) AND ($3 = 0 OR $3 BETWEEN s.first_id AND s.last_id)
		ORDER BY s.id DESC, r.id DESC LIMIT $4`, f.PartnerID, f.EndpointID, journalID, f.Limit)
	if err != nil {
		return nil, dbErr("journal sent", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (JournalSent, error) {
		var s JournalSent
		var err error
		s.Row, err = scanJournalEventRow(row, &s.EndpointID, &s.EventTypes, &s.At, &s.MS, &s.OwnDelivery)
		return s, err
	})
	return out, dbErr("journal sent", err)
}

// JournalRow returns one journal row (PartnerID 0 when its card is not
// known), from the archive when the journal has it no more.
func (l *Ledger) JournalRow(ctx context.Context, id int64) (JournalEventRow, error) {
	var j JournalEventRow
	var err error
	for _, table := range journalTables {
		j, err = scanJournalEventRow(l.pool.QueryRow(ctx, `SELECT `+journalEventColumns+` FROM `+table+` r `+journalEventJoins+` WHERE r.id = $1`, id))
		if err != pgx.ErrNoRows {
			break
		}
	}
	if err == pgx.ErrNoRows {
		return j, fmt.Errorf("journal row %d: %w", id, ErrNotFound)
	}
	return j, dbErr("journal row", err)
}

// ReplayWebhookEventTo sends event e again to one of its partner's endpoints
// as soon as the worker runs: the event is recorded if it was not (an
// event from the journal) and its delivery to the endpoint made pending.
// partnerID 0 allows any partner's endpoint.
func (l *Ledger) ReplayWebhookEventTo(ctx context.Context, partnerID, endpointID int64, e Event) (WebhookDelivery, error) {
	var id int64
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var owner int64
		err := tx.QueryRow(ctx, `SELECT partner_id FROM webhook_endpoints WHERE id = $1 AND ($2 = 0 OR partner_id = $2) AND status <> 'disabled'`,
			endpointID, partnerID).Scan(&owner)
		if err == pgx.ErrNoRows || (err == nil && owner != e.PartnerID) {
			return fmt.Errorf("endpoint %d: %w", endpointID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertJournalEvent, e.ID, e.PartnerID, e.Type, e.At, []byte(e.Data)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_id) VALUES ($1, $2)
			ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', next_at = now() RETURNING id`, endpointID, e.ID).Scan(&id)
	})
	if err != nil {
		return WebhookDelivery{}, dbErr("replay webhook event", err)
	}
	return l.WebhookDelivery(ctx, partnerID, id)
}

// WebhookEvent returns one recorded event of a partner (any partner's when
// partnerID is 0).
func (l *Ledger) WebhookEvent(ctx context.Context, partnerID int64, id string) (Event, error) {
	var e Event
	err := l.pool.QueryRow(ctx, `SELECT id, partner_id, type, created_at, data FROM webhook_events WHERE id = $1 AND ($2 = 0 OR partner_id = $2)`,
		id, partnerID).Scan(&e.ID, &e.PartnerID, &e.Type, &e.At, &e.Data)
	if err == pgx.ErrNoRows {
		return e, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	return e, dbErr("webhook event", err)
}

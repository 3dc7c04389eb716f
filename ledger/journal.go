package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The authorisation journal's statements for the card host's hot path:
// the probe of earlier answers, the inserts (one row, or many in one
// statement) and the duplicate they detect. The card host decides what to
// write; the rows are plain values here.

// JournalRow is one row of auth_journal as the card host writes it. Zero
// ids (card, hold, original) and a zero approved amount are stored as NULL.
type JournalRow struct {
	Key                       JournalKey
	Profile                   string
	Class                     int32
	CardID                    int64
	PANEnc                    []byte
	PANMasked, ProcessingCode string
	Amount                    int64
	Currency                  string
	BillingAmount             int64
	BillingCurrency, Merchant string
	Reason, ApprovalCode      string
	HoldID                    int64
	Available                 *int64
	AvailableCurrency         string
	OriginalID                int64
	Detail, LocalTime         string
	ReceivedAt                *time.Time
	ApprovedAmount            int64
}

// StoredAnswer is the answer a journal row records for its request.
type StoredAnswer struct {
	Reason, ApprovalCode string
	HoldID               int64  // 0: none
	Available            *int64 // nil: not recorded
	AvailableCurrency    string
	ApprovedAmount       int64 // 0: none
}

// JournalKey is a request's key in the journal (auth_journal_dedup): the
// same request sent again has the same key, and is answered as stored.
// MTI is the folded one (a repeat's MTI is its original's).
type JournalKey struct {
	Acq, STAN, TT, RRN, MTI string
}

// JournalKeys are request keys, column by column, for QueueJournalProbe.
type JournalKeys struct {
	Acq, STAN, TT, RRN, MTI []string
}

// NewJournalKeys returns JournalKeys with room for n keys.
func NewJournalKeys(n int) JournalKeys {
	return JournalKeys{make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)}
}

// Add appends one request key.
func (k *JournalKeys) Add(j JournalKey) {
	k.Acq, k.STAN, k.TT, k.RRN, k.MTI = append(k.Acq, j.Acq), append(k.STAN, j.STAN), append(k.TT, j.TT), append(k.RRN, j.RRN), append(k.MTI, j.MTI)
}

// journalProbe reads the earlier answers of requests (their journal rows,
// by request key): one row per answered request. The LATERAL … OFFSET 0
// subquery keeps it a probe of auth_journal_dedup per request under any
// plan (see GenericPlans): as a plain join, planned while the journal was
// analysed empty, it read the whole journal index for every batch after
// (20 ms a batch once the journal had grown).
const journalProbe = `SELECT x.i, j.reason, j.approval_code, j.hold_id, j.available, j.available_currency, j.approved_amount
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(acq, stan, tt, rrn, mti, i)
	CROSS JOIN LATERAL (SELECT reason, approval_code, hold_id, available, available_currency, approved_amount FROM auth_journal
		WHERE acquirer_id = x.acq AND stan = x.stan AND transmission_time = x.tt AND rrn = x.rrn AND mti = x.mti::bpchar OFFSET 0) j`

// QueueJournalProbe queues on q the probe for earlier answers of the
// requests keyed by k; found is called with the index in k of each
// request answered before and its stored answer.
func QueueJournalProbe(q *pgx.Batch, k JournalKeys, found func(i int, a StoredAnswer)) {
	n := len(k.Acq)
	q.Queue(journalProbe, k.Acq, k.STAN, k.TT, k.RRN, k.MTI).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				i                int
				a                StoredAnswer
				holdID, approved *int64
			)
			if err := rows.Scan(&i, &a.Reason, &a.ApprovalCode, &holdID, &a.Available, &a.AvailableCurrency, &approved); err != nil {
				return fmt.Errorf("journal probe: %w", err)
			}
			if i < 1 || i > n {
				return fmt.Errorf("journal probe: row %d of %d", i, n)
			}
			if holdID != nil {
				a.HoldID = *holdID
			}
			if approved != nil {
				a.ApprovedAmount = *approved
			}
			found(i-1, a)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("journal probe: %w", err)
		}
		return nil
	})
}

// insertJournals writes journal rows in one statement, for a batch (many
// rows) and for one message (insertJournalOnce, one row) alike: the one
// insert of the journal. A batch has looked its keys up already, so its
// rows are inserted plainly, without ON CONFLICT (speculative insertion
// cost about half again as much per row: measured 14 against 22 µs). When
// the insert fails on auth_journal_dedup (a request decided before the
// batch, or the same request in another batch meanwhile: see
// JournalDuplicate), the card host takes the batch back to its savepoint,
// drops the requests journaled meanwhile as duplicates, and decides and
// writes the rest again.
const insertJournals = `INSERT INTO auth_journal (profile, mti, class, acquirer_id, stan, transmission_time, rrn,
	card_id, pan_enc, pan_masked, processing_code, amount, currency, billing_amount, billing_currency, merchant,
	reason, approval_code, hold_id, available, available_currency, original_id, detail, local_time, received_at, approved_amount)
	SELECT profile, mti, class, acq, stan, tt, rrn, NULLIF(card, 0), pan, masked, proc, amount, ccy, bamount, bccy, merchant,
		reason, approval, NULLIF(hold, 0), avail, availccy, NULLIF(orig, 0), detail, lt, recv, NULLIF(appr, 0)
	FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bytea[],
		$10::text[], $11::text[], $12::bigint[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[], $18::text[],
		$19::bigint[], $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::text[], $25::timestamptz[], $26::bigint[])
		AS x(profile, mti, class, acq, stan, tt, rrn, card, pan, masked, proc, amount, ccy, bamount, bccy, merchant,
			reason, approval, hold, avail, availccy, orig, detail, lt, recv, appr)`

// insertJournalOnce is insertJournals for a message written alone (in a
// transaction or savepoint of its own), which learns of a duplicate from
// the missing id instead of an aborted transaction.
const insertJournalOnce = insertJournals + `
	ON CONFLICT (acquirer_id, stan, transmission_time, rrn, mti) DO NOTHING
	RETURNING id`

// JournalRows gathers rows for QueueInsertJournals, column by column.
type JournalRows struct {
	profile, mti, acq, stan, tt, rrn, masked, proc, ccy, bccy, merchant []string
	reason, approval, availCcy, detail, lt                              []string
	class                                                               []int32
	card, amount, bamount, hold, orig, appr                             []int64
	pan                                                                 [][]byte
	avail                                                               []*int64
	recv                                                                []*time.Time
}

// NewJournalRows returns JournalRows with room for n rows.
func NewJournalRows(n int) *JournalRows {
	s := func() []string { return make([]string, 0, n) }
	i := func() []int64 { return make([]int64, 0, n) }
	return &JournalRows{
		profile: s(), mti: s(), acq: s(), stan: s(), tt: s(), rrn: s(), masked: s(), proc: s(), ccy: s(), bccy: s(), merchant: s(),
		reason: s(), approval: s(), availCcy: s(), detail: s(), lt: s(),
		class: make([]int32, 0, n),
		card:  i(), amount: i(), bamount: i(), hold: i(), orig: i(), appr: i(),
		pan: make([][]byte, 0, n), avail: make([]*int64, 0, n), recv: make([]*time.Time, 0, n),
	}
}

// Add appends one row.
func (b *JournalRows) Add(r JournalRow) {
	k := r.Key
	b.profile, b.mti, b.class, b.acq, b.stan, b.tt, b.rrn = append(b.profile, r.Profile), append(b.mti, k.MTI), append(b.class, r.Class), append(b.acq, k.Acq), append(b.stan, k.STAN), append(b.tt, k.TT), append(b.rrn, k.RRN)
	b.card, b.pan, b.masked, b.proc, b.amount, b.ccy, b.bamount, b.bccy, b.merchant = append(b.card, r.CardID), append(b.pan, r.PANEnc), append(b.masked, r.PANMasked), append(b.proc, r.ProcessingCode), append(b.amount, r.Amount), append(b.ccy, r.Currency), append(b.bamount, r.BillingAmount), append(b.bccy, r.BillingCurrency), append(b.merchant, r.Merchant)
	b.reason, b.approval, b.hold, b.avail, b.availCcy, b.orig, b.detail, b.lt = append(b.reason, r.Reason), append(b.approval, r.ApprovalCode), append(b.hold, r.HoldID), append(b.avail, r.Available), append(b.availCcy, r.AvailableCurrency), append(b.orig, r.OriginalID), append(b.detail, r.Detail), append(b.lt, r.LocalTime)
	b.recv, b.appr = append(b.recv, r.ReceivedAt), append(b.appr, r.ApprovedAmount)
}

// args are b's columns, insertJournals' arguments.
func (b *JournalRows) args() []any {
	return []any{b.profile, b.mti, b.class, b.acq, b.stan, b.tt, b.rrn, b.card, b.pan, b.masked, b.proc, b.amount, b.ccy,
		b.bamount, b.bccy, b.merchant, b.reason, b.approval, b.hold, b.avail, b.availCcy, b.orig, b.detail, b.lt, b.recv, b.appr}
}

// QueueInsertJournals queues on q the insert of b's rows in one statement.
// A key that exists already fails it (see JournalDuplicate).
func QueueInsertJournals(q *pgx.Batch, b *JournalRows) {
	q.Queue(insertJournals, b.args()...)
}

// JournalDuplicate reports whether err is the unique violation of a
// journal key (see insertJournals).
func JournalDuplicate(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505" && pg.ConstraintName == "auth_journal_dedup"
}

// InsertJournal inserts r in tx and returns its id; inserted is false when
// the request's key exists (the request was seen before).
func InsertJournal(ctx context.Context, tx pgx.Tx, r JournalRow) (id int64, inserted bool, err error) {
	b := NewJournalRows(1)
	b.Add(r)
	err = tx.QueryRow(ctx, insertJournalOnce, b.args()...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

const selectStoredAnswer = `SELECT reason, approval_code, coalesce(hold_id, 0), available, available_currency, coalesce(approved_amount, 0) FROM auth_journal
		WHERE acquirer_id = $1 AND stan = $2 AND transmission_time = $3 AND rrn = $4 AND mti = $5`

// StoredAnswerOf returns the answer recorded for a request's journal key,
// when there is one.
func StoredAnswerOf(ctx context.Context, q Querier, k JournalKey) (StoredAnswer, bool, error) {
	return storedAnswerIn(ctx, q, selectStoredAnswer, k)
}

// storedAnswerIn reads the answer for key k with query (selectStoredAnswer
// or selectArchivedAnswer).
func storedAnswerIn(ctx context.Context, q Querier, query string, k JournalKey) (StoredAnswer, bool, error) {
	var a StoredAnswer
	err := q.QueryRow(ctx, query, k.Acq, k.STAN, k.TT, k.RRN, k.MTI).Scan(&a.Reason, &a.ApprovalCode, &a.HoldID, &a.Available, &a.AvailableCurrency, &a.ApprovedAmount)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredAnswer{}, false, nil
	}
	if err != nil {
		return StoredAnswer{}, false, fmt.Errorf("journal lookup: %w", err)
	}
	return a, true, nil
}

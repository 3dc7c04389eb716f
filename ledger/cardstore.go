package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CardStore holds the card host's SQL outside the authorisation hot path:
// cards and their history, card jobs and quotas, users, programs and their
// rules (cardhost declares what it needs as cardhost.Store). Its rows are
// plain values; the card host turns them into its own types and keeps every
// rule. A CardStore is a small value over the pool, safe for concurrent use.
type CardStore struct{ pool *pgxpool.Pool }

// NewCardStore returns the card store on pool.
func NewCardStore(pool *pgxpool.Pool) CardStore { return CardStore{pool: pool} }

// ConstraintError is a statement of the card store refused by a constraint
// of the schema (foreign key, check, malformed value): input the card host
// reports as invalid. It matches ErrInvalid.
type ConstraintError struct {
	Op         string
	Constraint string
}

func (e *ConstraintError) Error() string {
	return e.Op + ": " + ErrInvalid.Error() + ": " + e.Constraint
}

// Unwrap makes a ConstraintError match ErrInvalid.
func (e *ConstraintError) Unwrap() error { return ErrInvalid }

// ErrCardJobTaken is IssueCard's answer when the card job it runs was
// finished by another runner: the card is rolled back.
var ErrCardJobTaken = errors.New("card job already finished")

// storeErr translates a card store error at the package boundary, with the
// card host's meanings: no rows is ErrNotFound, a unique violation
// ErrDuplicateRef, a foreign key, check or syntax refusal a
// ConstraintError; context errors stay visible.
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return fmt.Errorf("%s: %w", op, ErrDuplicateRef)
		case "23503", "23514", "22P02":
			return &ConstraintError{Op: op, Constraint: pg.ConstraintName}
		}
		return fmt.Errorf("%s: %w %s", op, ErrDatabase, pg.Code)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// CardRow is one row of cards, without its encrypted PAN.
type CardRow struct {
	ID, ProgramID, UserID, AccountID int64
	Type, State                      string
	LockCode                         int16
	Expiry                           string // YYMM
	PANFirst6, PANLast4              string
	CVCGeneration                    int
	PVV                              string
	PINTries                         int
	Version                          int64
	CreatedAt                        time.Time
	VerifyTries                      int
}

const cardColumns = `id, program_id, user_id, account_id, type, state, lock_code, expiry, pan_first6, pan_last4,
	cvc_generation, pvv, pin_tries, version, created_at, verify_tries`

// The card store's reads by key (their plans are checked in plans_test.go).
const (
	selectCard         = `SELECT ` + cardColumns + ` FROM cards WHERE id = $1`
	selectCardByLookup = `SELECT ` + cardColumns + ` FROM cards WHERE pan_lookup = $1`
	selectCardsOfAcct  = `SELECT ` + cardColumns + ` FROM cards WHERE account_id = $1 AND state NOT IN ('removed', 'ordered') ORDER BY id`
	selectCardEvents   = `SELECT id, at, actor_kind, actor_id, action, coalesce(lock_code, 0), detail FROM card_events WHERE card_id = $1 ORDER BY id`
	selectSystemLocked = `SELECT actor_kind FROM card_events WHERE card_id = $1 AND lock_code IS NOT NULL
		AND action IN ('lock', 'lock_outside') ORDER BY id DESC LIMIT 1`
)

func scanCardRow(row pgx.Row) (CardRow, error) {
	var c CardRow
	err := row.Scan(&c.ID, &c.ProgramID, &c.UserID, &c.AccountID, &c.Type, &c.State, &c.LockCode, &c.Expiry, &c.PANFirst6, &c.PANLast4,
		&c.CVCGeneration, &c.PVV, &c.PINTries, &c.Version, &c.CreatedAt, &c.VerifyTries)
	return c, err
}

// Card returns the card with id, removed or not.
func (s CardStore) Card(ctx context.Context, id int64) (CardRow, error) {
	c, err := scanCardRow(s.pool.QueryRow(ctx, selectCard, id))
	return c, storeErr("card", err)
}

// CardByLookup returns the card whose PAN lookup hash is lookup.
func (s CardStore) CardByLookup(ctx context.Context, lookup []byte) (CardRow, error) {
	c, err := scanCardRow(s.pool.QueryRow(ctx, selectCardByLookup, lookup))
	return c, storeErr("card by pan", err)
}

// CardsOfAccount returns the cards of a balance that are neither removed
// nor ordered, in id order.
func (s CardStore) CardsOfAccount(ctx context.Context, accountID int64) ([]CardRow, error) {
	rows, err := s.pool.Query(ctx, selectCardsOfAcct, accountID)
	if err != nil {
		return nil, storeErr("cards", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CardRow, error) { return scanCardRow(r) })
	return out, storeErr("cards", err)
}

// CardPAN returns the encrypted PAN of the card.
func (s CardStore) CardPAN(ctx context.Context, id int64) ([]byte, error) {
	var enc []byte
	err := s.pool.QueryRow(ctx, `SELECT pan_enc FROM cards WHERE id = $1`, id).Scan(&enc)
	return enc, storeErr("card pan", err)
}

// CardEvent is one entry of a card's history (card_events).
type CardEvent struct {
	ID        int64
	CardID    int64
	At        time.Time
	ActorKind string
	ActorID   string
	Action    string
	LockCode  int16 // 0: none
	Detail    string
}

// CardEvents returns a card's history, oldest first.
func (s CardStore) CardEvents(ctx context.Context, cardID int64) ([]CardEvent, error) {
	rows, err := s.pool.Query(ctx, selectCardEvents, cardID)
	if err != nil {
		return nil, storeErr("history", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CardEvent, error) {
		e := CardEvent{CardID: cardID}
		err := r.Scan(&e.ID, &e.At, &e.ActorKind, &e.ActorID, &e.Action, &e.LockCode, &e.Detail)
		return e, err
	})
	return out, storeErr("history", err)
}

// InsertCardEvent appends e to its card's history through q (the
// transaction that changed the card).
func InsertCardEvent(ctx context.Context, q Querier, e CardEvent) error {
	var lc *int16
	if e.LockCode != 0 {
		lc = &e.LockCode
	}
	_, err := q.Exec(ctx, `INSERT INTO card_events (card_id, actor_kind, actor_id, action, lock_code, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.CardID, e.ActorKind, e.ActorID, e.Action, lc, e.Detail)
	return err
}

// CardTries is a verified PIN, CVC2 or expiry applied to a card's counts
// (RecordCardTries).
type CardTries struct {
	PIN         bool // a PIN was verified
	RightPIN    bool // ... and it was right
	MaxPINTries int  // wrong PINs in a row that lock with code 6
	Verify      int  // +1 wrong CVC2 or expiry, -1 right (reset), 0 not checked
	MaxVerify   int  // wrong CVC2/expiry in a row that lock with code 7
}

// RecordCardTries applies t to the card's counts through q, relative to
// the row (concurrent requests of one card each count), locking the card
// with code 6 or 7 when a limit is reached unless an irreversible lock
// stands. It returns the lock code before and after.
func RecordCardTries(ctx context.Context, q Querier, cardID int64, t CardTries) (before, after int16, err error) {
	const update = `WITH old AS (SELECT id, lock_code FROM cards WHERE id = $1 FOR UPDATE)
		UPDATE cards c SET pin_tries = CASE WHEN NOT $2 THEN c.pin_tries WHEN $3 THEN 0 ELSE c.pin_tries + 1 END,
			verify_tries = CASE WHEN $5 = 0 THEN c.verify_tries WHEN $5 < 0 THEN 0 ELSE c.verify_tries + 1 END,
			lock_code = CASE WHEN c.lock_code IN (1, 2, 5, 8) THEN c.lock_code
				WHEN $2 AND NOT $3 AND c.pin_tries + 1 >= $4 THEN 6
				WHEN $5 > 0 AND c.verify_tries + 1 >= $6 THEN 7
				ELSE c.lock_code END,
			version = c.version + 1, updated_at = now()
		FROM old WHERE c.id = old.id
		RETURNING old.lock_code, c.lock_code`
	err = q.QueryRow(ctx, update, cardID, t.PIN, t.RightPIN, t.MaxPINTries, t.Verify, t.MaxVerify).Scan(&before, &after)
	return before, after, err
}

// CardChangeTx is the transaction of ChangeCard, for the reads a rule
// needs once the card row is locked.
type CardChangeTx struct{ tx pgx.Tx }

// SystemLocked reports whether the card's last lock was made by the
// system.
func (t CardChangeTx) SystemLocked(ctx context.Context, cardID int64) (bool, error) {
	var kind string
	err := t.tx.QueryRow(ctx, selectSystemLocked, cardID).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return kind == "system", storeErr("card events", err)
}

// DigitalFirst reports whether the program issues digital-first cards.
func (t CardChangeTx) DigitalFirst(ctx context.Context, programID int64) (bool, error) {
	var ok bool
	err := t.tx.QueryRow(ctx, `SELECT digital_first FROM programs WHERE id = $1`, programID).Scan(&ok)
	return ok, storeErr("program", err)
}

// CardChange is what ChangeCard writes: the card's new type, state, lock,
// CVC generation, PVV and counts, whether it was printed now, and the
// history entry.
type CardChange struct {
	Card    CardRow
	Printed bool
	Event   CardEvent
}

// ChangeCard locks the card row, lets apply decide the change (apply's
// error is returned as it is and rolls back) and writes it with a new
// version and its history entry, in one transaction. It returns the card
// as written.
func (s CardStore) ChangeCard(ctx context.Context, cardID int64, apply func(cur CardRow, tx CardChangeTx) (CardChange, error)) (CardRow, error) {
	var out CardRow
	var applyErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := scanCardRow(tx.QueryRow(ctx, `SELECT `+cardColumns+` FROM cards WHERE id = $1 FOR UPDATE`, cardID))
		if err != nil {
			return storeErr("card", err)
		}
		ch, err := apply(cur, CardChangeTx{tx})
		if err != nil {
			applyErr = err
			return err
		}
		n := ch.Card
		const update = `UPDATE cards SET type = $2, state = $3, lock_code = $4, cvc_generation = $5, pvv = $6, pin_tries = $7,
			printed_at = CASE WHEN $8 THEN now() ELSE printed_at END, verify_tries = $9, version = version + 1, updated_at = now()
			WHERE id = $1 RETURNING version`
		if err := tx.QueryRow(ctx, update, cardID, n.Type, n.State, n.LockCode, n.CVCGeneration,
			n.PVV, n.PINTries, ch.Printed, n.VerifyTries).Scan(&n.Version); err != nil {
			return storeErr("update card", err)
		}
		ch.Event.CardID = cardID
		if err := InsertCardEvent(ctx, tx, ch.Event); err != nil {
			return storeErr("card event", err)
		}
		out = n
		return nil
	})
	if applyErr != nil {
		return CardRow{}, applyErr
	}
	return out, storeErr("change card", err)
}

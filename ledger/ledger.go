// Package ledger is Antaca's double-entry ledger on PostgreSQL: accounts
// (the reference document's balances), holds for authorisations, postings
// whose entries sum to zero per currency, reloads, balance summaries,
// low-balance notifications through an outbox, and the invariants that
// `antaca ledger verify` checks. docs/ledger.md describes the model and its
// rules.
//
// Amounts are int64 minor units of the account's currency, never floats.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Account kinds.
const (
	KindUser           = "user"            // a user's balance; many per user
	KindPartnerCredit  = "partner_credit"  // partner credit balance, one per program and currency
	KindPartnerDeposit = "partner_deposit" // partner deposit balance, one per program and currency
	KindPartner        = "partner"         // partner (company, FX) balance, one per partner and currency
	KindSettlement     = "settlement"      // internal: scheme settlement, one per currency
	KindFunding        = "funding"         // internal: money coming in (reloads), one per currency
	KindLosses         = "losses"          // internal: exceptions written off, one per currency
	KindCreditUsage    = "credit_usage"    // internal: partner credit/deposit consumed by clearing
)

// Account states. A blocked or closed account takes no new holds (except
// advices); a closed account takes no reloads either and never reopens.
const (
	StateActive  = "active"
	StateBlocked = "blocked"
	StateClosed  = "closed"
)

// Hold statuses. A hold leaves open exactly once.
const (
	HoldOpen     = "open"
	HoldCaptured = "captured"
	HoldReleased = "released"
	HoldExpired  = "expired"
)

// Errors at the package boundary. Database errors never leave the package
// as pgx types: they become ErrNotFound, one of these, or ErrDatabase.
var (
	ErrNotFound                 = errors.New("not found")
	ErrInsufficientFunds        = errors.New("insufficient funds")
	ErrInsufficientPartnerFunds = errors.New("insufficient funds at partner")
	ErrHoldResolved             = errors.New("hold already resolved")
	ErrAccountNotActive         = errors.New("account not active")
	ErrCurrencyMismatch         = errors.New("currency mismatch")
	ErrInvalidAmount            = errors.New("invalid amount")
	ErrInvalid                  = errors.New("invalid argument")
	ErrUnknownCurrency          = errors.New("unknown currency")
	ErrAccountExists            = errors.New("account exists")
	ErrAccountNotEmpty          = errors.New("account not empty")
	ErrDuplicateRef             = errors.New("reference already used for a different movement")
	// ErrDatabase marks a failure of the database itself (unreachable,
	// timed out, unexpected error); callers answer "issuer unavailable".
	ErrDatabase = errors.New("ledger database error")
)

// FundsError is a decline for funds: the account that decided and its
// available amount (for DE54). It matches ErrInsufficientFunds when the user
// account was short and ErrInsufficientPartnerFunds when the partner
// credit/deposit account was.
type FundsError struct {
	AccountID int64
	Available int64
	Partner   bool
}

func (e *FundsError) Error() string {
	return fmt.Sprintf("account %d available %d: %v", e.AccountID, e.Available, e.Unwrap())
}

// Unwrap returns the sentinel the error stands for.
func (e *FundsError) Unwrap() error {
	if e.Partner {
		return ErrInsufficientPartnerFunds
	}
	return ErrInsufficientFunds
}

// Config configures a Ledger. The zero value is usable.
type Config struct {
	// HoldTTL is how long a hold stays open before ExpireHolds releases
	// it. Default 7 days.
	HoldTTL time.Duration
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for hold expiry and outbox retries. Default
	// time.Now. Tests move it forward.
	Now func() time.Time
	// Registerer receives antaca_exceptions_total; nil: none.
	Registerer prometheus.Registerer
}

// Ledger is the ledger on one PostgreSQL database. It is safe for concurrent
// use; consistency under concurrency comes from row locks taken in ascending
// account id order inside each transaction.
type Ledger struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	mu       sync.Mutex
	internal map[string]int64 // kind/currency -> account id; these never change
	exc      *exceptionMetrics
}

// New returns a Ledger on pool with cfg's defaults filled in. The schema
// must have been migrated (Migrate).
func New(pool *pgxpool.Pool, cfg Config) *Ledger {
	if cfg.HoldTTL <= 0 {
		cfg.HoldTTL = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ledger{pool: pool, cfg: cfg, log: cfg.Logger, internal: make(map[string]int64), exc: newExceptionMetrics(cfg.Registerer)}
}

func (l *Ledger) now() time.Time { return l.cfg.Now() }

// Querier is what a pool, a connection and a transaction offer.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// dbErr translates a database error at the package boundary: no rows become
// ErrNotFound, known constraint violations their sentinels, context errors
// stay visible, and anything else is ErrDatabase with the message.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	for _, s := range []error{ErrNotFound, ErrInsufficientFunds, ErrInsufficientPartnerFunds, ErrHoldResolved, ErrHoldNotCaptured,
		ErrAccountNotActive, ErrCurrencyMismatch, ErrInvalidAmount, ErrInvalid, ErrUnknownCurrency,
		ErrAccountExists, ErrAccountNotEmpty, ErrDuplicateRef, ErrDatabase} {
		if errors.Is(err, s) {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		ctxErr := context.Canceled
		if errors.Is(err, context.DeadlineExceeded) {
			ctxErr = context.DeadlineExceeded
		}
		return fmt.Errorf("%s: %w: %w", op, ErrDatabase, ctxErr)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23503": // foreign_key_violation
			if pg.ConstraintName == "accounts_currency_fkey" || pg.ConstraintName == "holds_currency_fkey" {
				return fmt.Errorf("%s: %w", op, ErrUnknownCurrency)
			}
			return fmt.Errorf("%s: %w (%s)", op, ErrNotFound, pg.ConstraintName)
		case "23505": // unique_violation
			if pg.TableName == "accounts" {
				return fmt.Errorf("%s: %w", op, ErrAccountExists)
			}
			return fmt.Errorf("%s: %w", op, ErrDuplicateRef)
		case "23514": // check_violation
			return fmt.Errorf("%s: %w (%s)", op, ErrInvalid, pg.ConstraintName)
		}
		return fmt.Errorf("%s: %w: %s (SQLSTATE %s)", op, ErrDatabase, pg.Message, pg.Code)
	}
	return fmt.Errorf("%s: %w: %s", op, ErrDatabase, err.Error())
}

// isDeadlock reports whether err is a deadlock or serialization failure
// that a retry of the whole transaction resolves.
func isDeadlock(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40P01" || pg.Code == "40001")
}

// lockAccounts locks the given accounts, user accounts first, each kind in
// ascending id order: the one global order every transaction of the ledger
// uses (a batch of holds locks its users' accounts first and updates the
// partner's last, see HoldBatch), and returns them by id.
func lockAccounts(ctx context.Context, tx pgx.Tx, ids ...int64) (map[int64]Account, error) {
	// QueryExecModeExec plans each call afresh: a plan cached while
	// accounts was small would scan it whole for ever.
	rows, err := tx.Query(ctx, selectAccount+` WHERE id = ANY ($1) ORDER BY kind <> 'user', id FOR NO KEY UPDATE`, pgx.QueryExecModeExec, ids)
	if err != nil {
		return nil, err
	}
	accs, err := pgx.CollectRows(rows, scanAccount)
	if err != nil {
		return nil, err
	}
	m := make(map[int64]Account, len(accs))
	for _, a := range accs {
		m[a.ID] = a
	}
	return m, nil
}

var pgxTxRepeatableReadRO = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

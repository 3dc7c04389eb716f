package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Partner is a company that issues cards to its users through Antaca.
type Partner struct {
	ID          int64
	Name        string
	NotifyEmail string // low-balance notifications go here
	CreatedAt   time.Time
}

// Account is a balance. Balance is the sum of its entries; Held the sum of
// its open holds.
type Account struct {
	ID             int64
	Kind           string // KindUser, KindPartnerCredit, ...
	Currency       string // ISO 4217 alphabetic code
	PartnerID      int64  // 0 when none
	ProgramID      int64  // 0 when none
	UserID         int64  // 0 when none
	State          string // StateActive, StateBlocked, StateClosed
	Balance        int64
	Held           int64
	LowThreshold   *int64 // notify once when Available crosses below it
	BelowThreshold bool
	NegativeFlag   bool // an advice or a completion above the hold took it below zero
	CreatedAt      time.Time
}

// Available is what can still be authorised: Balance − Held.
func (a Account) Available() int64 { return a.Balance - a.Held }

// AccountSpec describes an account to open. User accounts need UserID;
// partner credit/deposit accounts need ProgramID and PartnerID; partner
// (FX) accounts need PartnerID.
type AccountSpec struct {
	Kind         string
	Currency     string
	PartnerID    int64
	ProgramID    int64
	UserID       int64
	LowThreshold *int64
}

const selectAccount = `SELECT id, kind, currency, coalesce(partner_id, 0), coalesce(program_id, 0),
	coalesce(user_id, 0), state, balance, held, low_threshold, below_threshold, negative_flag, created_at
	FROM accounts`

func scanAccount(row pgx.CollectableRow) (Account, error) {
	var a Account
	err := row.Scan(&a.ID, &a.Kind, &a.Currency, &a.PartnerID, &a.ProgramID, &a.UserID, &a.State,
		&a.Balance, &a.Held, &a.LowThreshold, &a.BelowThreshold, &a.NegativeFlag, &a.CreatedAt)
	return a, err
}

func nullID(id int64) *int64 {
	if id <= 0 {
		return nil
	}
	return &id
}

// CreatePartner creates a partner.
func (l *Ledger) CreatePartner(ctx context.Context, name, notifyEmail string) (Partner, error) {
	if strings.TrimSpace(name) == "" {
		return Partner{}, fmt.Errorf("create partner: empty name: %w", ErrInvalid)
	}
	if strings.ContainsAny(notifyEmail, "\r\n") {
		return Partner{}, fmt.Errorf("create partner: notify e-mail has a line break: %w", ErrInvalid)
	}
	p := Partner{Name: name, NotifyEmail: notifyEmail}
	const q = `INSERT INTO partners (name, notify_email) VALUES ($1, $2) RETURNING id, created_at`
	if err := l.pool.QueryRow(ctx, q, name, notifyEmail).Scan(&p.ID, &p.CreatedAt); err != nil {
		return Partner{}, dbErr("create partner", err)
	}
	return p, nil
}

// Partner returns the partner with id.
func (l *Ledger) Partner(ctx context.Context, id int64) (Partner, error) {
	p := Partner{ID: id}
	const q = `SELECT name, notify_email, created_at FROM partners WHERE id = $1`
	if err := l.pool.QueryRow(ctx, q, id).Scan(&p.Name, &p.NotifyEmail, &p.CreatedAt); err != nil {
		return Partner{}, dbErr(fmt.Sprintf("partner %d", id), err)
	}
	return p, nil
}

// OpenAccount opens a user, partner credit, partner deposit or partner (FX)
// account. Internal accounts come from InternalAccount. A second partner
// credit/deposit account for the same program and currency, or a second
// partner account for the same partner and currency, is ErrAccountExists.
func (l *Ledger) OpenAccount(ctx context.Context, spec AccountSpec) (Account, error) {
	cur := strings.ToUpper(spec.Currency)
	switch spec.Kind {
	case KindUser:
		if spec.UserID <= 0 {
			return Account{}, fmt.Errorf("open account: user account without user: %w", ErrInvalid)
		}
	case KindPartnerCredit, KindPartnerDeposit:
		if spec.ProgramID <= 0 || spec.PartnerID <= 0 {
			return Account{}, fmt.Errorf("open account: %s account without program and partner: %w", spec.Kind, ErrInvalid)
		}
	case KindPartner:
		if spec.PartnerID <= 0 {
			return Account{}, fmt.Errorf("open account: partner account without partner: %w", ErrInvalid)
		}
	default:
		return Account{}, fmt.Errorf("open account: kind %q: %w", spec.Kind, ErrInvalid)
	}
	// below_threshold starts true when a new, empty account is already
	// below its threshold: only a later downward crossing notifies.
	const q = `INSERT INTO accounts (kind, currency, partner_id, program_id, user_id, low_threshold, below_threshold)
		VALUES ($1, $2, $3, $4, $5, $6::bigint, coalesce($6::bigint > 0, false))
		RETURNING id`
	var id int64
	err := l.pool.QueryRow(ctx, q, spec.Kind, cur, nullID(spec.PartnerID), nullID(spec.ProgramID),
		nullID(spec.UserID), spec.LowThreshold).Scan(&id)
	if err != nil {
		return Account{}, dbErr("open account", err)
	}
	return l.Account(ctx, id)
}

// InternalAccount returns the internal account of kind (KindSettlement,
// KindFunding or KindCreditUsage) and currency, creating it on first use.
func (l *Ledger) InternalAccount(ctx context.Context, kind, currency string) (Account, error) {
	id, err := l.internalID(ctx, l.pool, kind, currency)
	if err != nil {
		return Account{}, err
	}
	return l.Account(ctx, id)
}

func (l *Ledger) internalID(ctx context.Context, q Querier, kind, currency string) (int64, error) {
	switch kind {
	case KindSettlement, KindFunding, KindCreditUsage, KindExceptions, KindLosses:
	default:
		return 0, fmt.Errorf("internal account: kind %q: %w", kind, ErrInvalid)
	}
	currency = strings.ToUpper(currency)
	key := kind + "/" + currency
	l.mu.Lock()
	id, ok := l.internal[key]
	l.mu.Unlock()
	if ok {
		return id, nil
	}
	const ins = `INSERT INTO accounts (kind, currency) VALUES ($1, $2)
		ON CONFLICT (kind, currency) WHERE kind IN ('settlement', 'funding', 'credit_usage', 'exceptions', 'losses') DO NOTHING`
	if _, err := q.Exec(ctx, ins, kind, currency); err != nil {
		return 0, dbErr(fmt.Sprintf("internal account %s %s", kind, currency), err)
	}
	const sel = `SELECT id FROM accounts WHERE kind = $1 AND currency = $2`
	if err := q.QueryRow(ctx, sel, kind, currency).Scan(&id); err != nil {
		return 0, dbErr(fmt.Sprintf("internal account %s %s", kind, currency), err)
	}
	l.mu.Lock()
	l.internal[key] = id
	l.mu.Unlock()
	return id, nil
}

// partnerFXID returns the partner (FX) account of partnerID in currency,
// creating it on first use.
func (l *Ledger) partnerFXID(ctx context.Context, q Querier, partnerID int64, currency string) (int64, error) {
	const ins = `INSERT INTO accounts (kind, currency, partner_id) VALUES ('partner', $1, $2)
		ON CONFLICT (partner_id, currency) WHERE kind = 'partner' DO NOTHING`
	if _, err := q.Exec(ctx, ins, currency, partnerID); err != nil {
		return 0, err
	}
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM accounts WHERE kind = 'partner' AND partner_id = $1 AND currency = $2`,
		partnerID, currency).Scan(&id)
	return id, err
}

// Account returns the account with id.
func (l *Ledger) Account(ctx context.Context, id int64) (Account, error) {
	return l.account(ctx, l.pool, id)
}

// AccountTx returns the account with id as the caller's transaction sees
// it (with the holds it placed).
func (l *Ledger) AccountTx(ctx context.Context, tx pgx.Tx, id int64) (Account, error) {
	return l.account(ctx, tx, id)
}

func (l *Ledger) account(ctx context.Context, q Querier, id int64) (Account, error) {
	rows, err := q.Query(ctx, selectAccount+` WHERE id = $1`, id)
	if err != nil {
		return Account{}, dbErr(fmt.Sprintf("account %d", id), err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAccount)
	if err != nil {
		return Account{}, dbErr(fmt.Sprintf("account %d", id), err)
	}
	return a, nil
}

// UserAccounts returns the accounts of a user in id order.
func (l *Ledger) UserAccounts(ctx context.Context, userID int64) ([]Account, error) {
	return l.accounts(ctx, fmt.Sprintf("user %d accounts", userID), selectAccount+` WHERE user_id = $1 ORDER BY id`, userID)
}

// PartnerAccounts returns the partner credit, deposit and partner (FX)
// accounts of a partner in id order.
func (l *Ledger) PartnerAccounts(ctx context.Context, partnerID int64) ([]Account, error) {
	return l.accounts(ctx, fmt.Sprintf("partner %d accounts", partnerID),
		selectAccount+` WHERE partner_id = $1 AND kind <> 'user' ORDER BY id`, partnerID)
}

func (l *Ledger) accounts(ctx context.Context, op, q string, args ...any) ([]Account, error) {
	rows, err := l.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	accs, err := pgx.CollectRows(rows, scanAccount)
	if err != nil {
		return nil, dbErr(op, err)
	}
	return accs, nil
}

// SetState changes an account's state. A closed account never reopens, and
// only an account with zero balance and no open holds closes.
func (l *Ledger) SetState(ctx context.Context, id int64, state string) error {
	switch state {
	case StateActive, StateBlocked, StateClosed:
	default:
		return fmt.Errorf("set state of account %d: state %q: %w", id, state, ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		accs, err := lockAccounts(ctx, tx, id)
		if err != nil {
			return err
		}
		a, ok := accs[id]
		if !ok {
			return ErrNotFound
		}
		if a.State == StateClosed && state != StateClosed {
			return fmt.Errorf("closed: %w", ErrAccountNotActive)
		}
		if state == StateClosed && (a.Balance != 0 || a.Held != 0) {
			return fmt.Errorf("balance %d held %d: %w", a.Balance, a.Held, ErrAccountNotEmpty)
		}
		_, err = tx.Exec(ctx, `UPDATE accounts SET state = $2 WHERE id = $1`, id, state)
		return err
	})
	return dbErr(fmt.Sprintf("set state of account %d", id), err)
}

// SetThreshold sets (or with nil removes) an account's low-balance
// threshold. Setting it above the current available amount is a crossing
// and notifies once.
func (l *Ledger) SetThreshold(ctx context.Context, id int64, threshold *int64) error {
	tag, err := l.pool.Exec(ctx, `UPDATE accounts SET low_threshold = $2 WHERE id = $1`, id, threshold)
	if err != nil {
		return dbErr(fmt.Sprintf("set threshold of account %d", id), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set threshold of account %d: %w", id, ErrNotFound)
	}
	return nil
}

// CurrencySummary is the balance summary of one currency: Users is the sum
// of all user balances, Wallet is Users plus all partner credit, partner
// deposit and partner (FX) balances.
type CurrencySummary struct {
	Currency       string
	Exponent       int
	Users          int64
	PartnerCredit  int64
	PartnerDeposit int64
	Partner        int64
	Wallet         int64
	Held           int64 // open holds on user accounts
}

// Summary returns the balance summary of every currency that has accounts.
func (l *Ledger) Summary(ctx context.Context) ([]CurrencySummary, error) {
	const q = `SELECT a.currency, c.exponent,
		coalesce(sum(a.balance) FILTER (WHERE a.kind = 'user'), 0)::bigint,
		coalesce(sum(a.balance) FILTER (WHERE a.kind = 'partner_credit'), 0)::bigint,
		coalesce(sum(a.balance) FILTER (WHERE a.kind = 'partner_deposit'), 0)::bigint,
		coalesce(sum(a.balance) FILTER (WHERE a.kind = 'partner'), 0)::bigint,
		coalesce(sum(a.held) FILTER (WHERE a.kind = 'user'), 0)::bigint
		FROM accounts a JOIN currencies c ON c.code = a.currency
		WHERE a.kind IN ('user', 'partner_credit', 'partner_deposit', 'partner')
		GROUP BY a.currency, c.exponent ORDER BY a.currency`
	rows, err := l.pool.Query(ctx, q)
	if err != nil {
		return nil, dbErr("summary", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CurrencySummary, error) {
		var s CurrencySummary
		err := row.Scan(&s.Currency, &s.Exponent, &s.Users, &s.PartnerCredit, &s.PartnerDeposit, &s.Partner, &s.Held)
		s.Wallet = s.Users + s.PartnerCredit + s.PartnerDeposit + s.Partner
		return s, err
	})
	if err != nil {
		return nil, dbErr("summary", err)
	}
	return out, nil
}

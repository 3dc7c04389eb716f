package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Source kinds of the money that enters user and partner balances (DESIGN
// section 6, migration 014). Every posting that raises the sum of user and
// partner balances carries one of these (or a switch kind: capture, refund,
// credit, reversal), an actor and a reference; `antaca ledger verify`
// fails on any other.
const (
	// SourcePartnerReload is a partner's reload over /secure: the partner
	// vouches for money it received; actor partner:<id>, its reference.
	SourcePartnerReload = "partner_reload"
	// SourceAdminReload is an Admin's reload with reason and bank
	// reference, approved by a second Admin above the four-eyes threshold;
	// its approvals row names both.
	SourceAdminReload = "admin_reload"
	// SourceExceptionRelease is a blind refund released from the
	// exceptions queue by two Admins.
	SourceExceptionRelease = "exception_release"
	// SourceExceptionRecovery is money recovered for an exception (it
	// lands on the exceptions account, not on a user or partner balance).
	SourceExceptionRecovery = "exception_recovery"
	// SourceBootstrap is the operator's seed outside the API: Reload,
	// used by the demo, the load test and tests. No API path posts it.
	SourceBootstrap = "bootstrap"
)

// Source says where the money of a posting came from: its kind, who caused
// it (partner:<id>, admin:<id>, system) and the reference that vouches
// for it.
type Source struct {
	Kind      string
	Actor     string
	Reference string
}

// MaxInternalBalance bounds the internal accounts (funding, settlement,
// credit usage, exceptions, losses) in both directions: a reload that would
// take the funding account below -MaxInternalBalance is refused
// (ErrLimitExceeded), so no sum of balances of one currency can overflow
// an int64, and /admin/summary always answers.
const MaxInternalBalance int64 = 900_000_000_000_000_000

// Refusals of the bounds (DESIGN section 6). Both match ErrInvalidAmount.
var (
	// ErrAmountTooLarge: one operation's amount is above its bound
	// (MaxAmount, or the program's per-reload bound).
	ErrAmountTooLarge = fmt.Errorf("amount too large: %w", ErrInvalidAmount)
	// ErrLimitExceeded: the operation would take a balance beyond its
	// bound (MaxBalance, the program's balance bound, MaxInternalBalance).
	ErrLimitExceeded = fmt.Errorf("limit exceeded: %w", ErrInvalidAmount)
)

// Default program bounds in major units of the program's currency; a
// program's own setting (programs.max_*) replaces them. Scaled by the
// currency's exponent and never above MaxAmount (per operation) or
// MaxBalance (per balance).
const (
	DefaultMaxReload         = 100_000       // one reload of a user balance
	DefaultMaxUserBalance    = 1_000_000     // a user balance
	DefaultMaxPartnerReload  = 10_000_000    // one reload of a partner balance
	DefaultMaxPartnerBalance = 1_000_000_000 // a partner credit/deposit or partner (FX) balance
)

// Bounds are the limits of one account: the largest reload and the largest
// balance, in its currency's minor units.
type Bounds struct {
	MaxReload  int64
	MaxBalance int64
}

// scaled is major units times 10^exp, at most limit.
func scaled(major int64, exp int, limit int64) int64 {
	v := major
	for range exp {
		if v > limit/10 {
			return limit
		}
		v *= 10
	}
	return min(v, limit)
}

// AccountBounds returns the bounds of a user or partner account: its
// program's settings, else the defaults.
func (l *Ledger) AccountBounds(ctx context.Context, accountID int64) (Bounds, error) {
	b, err := accountBounds(ctx, l.pool, accountID)
	return b, dbErr(fmt.Sprintf("bounds of account %d", accountID), err)
}

func accountBounds(ctx context.Context, q Querier, accountID int64) (Bounds, error) {
	const sel = `SELECT a.kind, c.exponent, p.max_reload, p.max_user_balance, p.max_partner_reload, p.max_partner_balance
		FROM accounts a JOIN currencies c ON c.code = a.currency
		LEFT JOIN users u ON u.id = a.user_id
		LEFT JOIN programs p ON p.id = coalesce(a.program_id, u.program_id)
		WHERE a.id = $1`
	var (
		kind              string
		exp               int
		mr, mub, mpr, mpb *int64
	)
	if err := q.QueryRow(ctx, sel, accountID).Scan(&kind, &exp, &mr, &mub, &mpr, &mpb); err != nil {
		return Bounds{}, err
	}
	pick := func(set *int64, major int64, limit int64) int64 {
		if set != nil {
			return min(*set, limit)
		}
		return scaled(major, exp, limit)
	}
	if kind == KindUser {
		return Bounds{pick(mr, DefaultMaxReload, MaxAmount), pick(mub, DefaultMaxUserBalance, MaxBalance)}, nil
	}
	return Bounds{pick(mpr, DefaultMaxPartnerReload, MaxAmount), pick(mpb, DefaultMaxPartnerBalance, MaxBalance)}, nil
}

// Reload credits amount (> 0) to a user, partner credit, partner deposit or
// partner account from the funding account of its currency, as the
// operator's seed (source bootstrap, actor system): the demo, the load test
// and tests use it; the API never does (partners and Admins reload through
// ReloadFrom and AdminReload). It is idempotent on ref: the same ref for
// the same account and amount returns the first posting and moves nothing;
// the same ref for anything else is ErrDuplicateRef. A closed account takes
// no reload; the bounds apply as to every reload, except the program's
// per-reload bound (a channel's limit: the seed is one trusted operation,
// still at most MaxAmount).
func (l *Ledger) Reload(ctx context.Context, accountID int64, amount int64, ref string) (Posting, error) {
	srcRef := ref
	if srcRef == "" {
		var b [12]byte
		rand.Read(b[:])
		srcRef = "bootstrap-" + hex.EncodeToString(b[:])
	}
	return l.ReloadFrom(ctx, accountID, amount, ref, Source{Kind: SourceBootstrap, Actor: "system", Reference: srcRef})
}

// ReloadFrom is Reload with the money's source: a partner's reload
// (SourcePartnerReload, whose ref should name the partner so that its
// references are unique per partner) or the operator's seed. Amount above
// the account's per-reload bound is ErrAmountTooLarge; a balance that would
// pass its bound, or a funding account that would pass
// -MaxInternalBalance, is ErrLimitExceeded.
func (l *Ledger) ReloadFrom(ctx context.Context, accountID, amount int64, ref string, src Source) (Posting, error) {
	var p Posting
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var err error
		p, err = l.reloadTx(ctx, tx, accountID, amount, ref, src)
		return err
	})
	if err != nil {
		return Posting{}, dbErr(fmt.Sprintf("reload account %d", accountID), err)
	}
	return p, nil
}

// reloadTx posts a reload inside tx: locks the account and its funding
// account, replays an earlier posting of the same ref, checks the bounds,
// then posts with the source recorded.
func (l *Ledger) reloadTx(ctx context.Context, tx pgx.Tx, accountID, amount int64, ref string, src Source) (Posting, error) {
	if amount <= 0 {
		return Posting{}, fmt.Errorf("amount %d: %w", amount, ErrInvalidAmount)
	}
	if amount > MaxAmount {
		return Posting{}, fmt.Errorf("amount %d above the largest of any operation, %d: %w", amount, MaxAmount, ErrAmountTooLarge)
	}
	if src.Kind == "" || src.Actor == "" || src.Reference == "" {
		return Posting{}, fmt.Errorf("reload without source kind, actor and reference: %w", ErrInvalid)
	}
	acc, err := l.account(ctx, tx, accountID)
	if err != nil {
		return Posting{}, err
	}
	switch acc.Kind {
	case KindUser, KindPartnerCredit, KindPartnerDeposit, KindPartner:
	default:
		return Posting{}, fmt.Errorf("kind %s: %w", acc.Kind, ErrInvalid)
	}
	funding, err := l.internalID(ctx, l.pool, KindFunding, acc.Currency)
	if err != nil {
		return Posting{}, err
	}
	accs, err := lockAccounts(ctx, tx, accountID, funding)
	if err != nil {
		return Posting{}, err
	}
	if accs[accountID].State == StateClosed {
		return Posting{}, fmt.Errorf("closed: %w", ErrAccountNotActive)
	}
	if ref != "" {
		prev, err := getPosting(ctx, tx, `WHERE kind = 'reload' AND ref = $1`, ref)
		if err == nil {
			if len(prev.Entries) != 2 || !hasEntry(prev, accountID, amount) {
				return Posting{}, fmt.Errorf("ref %q: %w", ref, ErrDuplicateRef)
			}
			return prev, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Posting{}, err
		}
	}
	if err := checkBounds(ctx, tx, accs[accountID], amount, src.Kind != SourceBootstrap); err != nil {
		return Posting{}, err
	}
	if accs[funding].Balance < amount-MaxInternalBalance {
		return Posting{}, fmt.Errorf("funding account %s would pass -%d: %w", acc.Currency, MaxInternalBalance, ErrLimitExceeded)
	}
	p, err := insertPosting(ctx, tx, "reload", ref, 0, acc.Currency, []int64{funding, accountID}, []int64{-amount, amount})
	if err != nil {
		return Posting{}, err
	}
	if err := setSource(ctx, tx, p.ID, src); err != nil {
		return Posting{}, err
	}
	return p, moveHeld(ctx, tx, map[int64][2]int64{funding: {-amount, 0}, accountID: {amount, 0}})
}

// checkBounds refuses amount on acc (locked) when it is above the
// account's per-reload bound (when perReload: the operator's bootstrap
// seed is one trusted operation, bounded by MaxAmount alone) or would take
// its balance above its bound.
func checkBounds(ctx context.Context, tx pgx.Tx, acc Account, amount int64, perReload bool) error {
	b, err := accountBounds(ctx, tx, acc.ID)
	if err != nil {
		return err
	}
	if perReload && amount > b.MaxReload {
		return fmt.Errorf("amount %d above the bound of one reload of this balance, %d: %w", amount, b.MaxReload, ErrAmountTooLarge)
	}
	if acc.Balance > b.MaxBalance-amount {
		return fmt.Errorf("balance %d + %d above the bound of this balance, %d: %w", acc.Balance, amount, b.MaxBalance, ErrLimitExceeded)
	}
	return nil
}

// setSource records where the money of posting id came from.
func setSource(ctx context.Context, tx pgx.Tx, id int64, src Source) error {
	_, err := tx.Exec(ctx, `UPDATE postings SET source = $2, actor = $3, source_ref = $4 WHERE id = $1`, id, src.Kind, src.Actor, src.Reference)
	return err
}

// provenanceChecks are the invariants of DESIGN section 6 "Where money
// comes from", run by Verify after the others.
var provenanceChecks = []struct{ name, sql string }{
	// A posting that raises the sum of user and partner balances in a
	// currency needs an allowed source, an actor and a reference; an
	// Admin's reload needs its approvals row, a partner's names a partner.
	{"posting_unsourced", `SELECT 0::bigint, p.id, 0::bigint,
		format('raises user and partner balances by %s %s with source %s, actor %s, reference %s',
			r.total, r.currency, coalesce(p.source, 'none'), coalesce(p.actor, 'none'), coalesce(p.source_ref, 'none'))
		FROM (SELECT e.posting_id, e.currency, sum(e.amount) AS total
			FROM entries e JOIN accounts a ON a.id = e.account_id
			WHERE a.kind IN ('user', 'partner_credit', 'partner_deposit', 'partner')
			GROUP BY e.posting_id, e.currency HAVING sum(e.amount) > 0) r
		JOIN postings p ON p.id = r.posting_id
		WHERE p.source IS NULL OR coalesce(p.actor, '') = '' OR coalesce(p.source_ref, '') = ''
			OR p.source NOT IN ('partner_reload', 'admin_reload', 'exception_release', 'bootstrap',
				'capture', 'refund', 'credit', 'reversal')
			OR (p.source = 'partner_reload' AND p.actor !~ '^partner:[0-9]+$')
			OR (p.source = 'admin_reload' AND NOT EXISTS (SELECT 1 FROM approvals x
				WHERE x.posting_id = p.id AND x.kind = 'reload' AND x.status IN ('posted', 'approved') AND x.requested_by = p.actor))
			OR (p.source = 'exception_release' AND NOT EXISTS (SELECT 1 FROM exceptions x
				WHERE x.resolution_posting_id = p.id AND x.status = 'released' AND x.approved_by IS NOT NULL))`},
	// Four eyes: the second Admin is another Admin.
	{"approval_same_admin", `SELECT coalesce(account_id, 0), coalesce(posting_id, 0), 0::bigint,
		format('approval %s (%s) requested and approved by %s', id, kind, requested_by)
		FROM approvals WHERE status = 'approved' AND decided_by = requested_by`},
	{"exception_same_admin", `SELECT coalesce(account_id, 0), coalesce(resolution_posting_id, 0), coalesce(hold_id, 0),
		format('exception %s %s by %s, approved by %s', id, status, coalesce(resolved_by, 'nobody'), coalesce(approved_by, 'nobody'))
		FROM exceptions WHERE status IN ('recovered', 'released')
			AND (approved_by IS NULL OR resolved_by IS NULL OR approved_by = resolved_by)`},
	// No balance outside its bound: user and partner balances within
	// ±MaxBalance and below their program's bound; internal accounts within
	// ±MaxInternalBalance.
	{"balance_bound", fmt.Sprintf(`SELECT a.id, 0::bigint, 0::bigint, format('%%s balance %%s outside its bound %%s', a.kind, a.balance, b.bound)
		FROM accounts a JOIN currencies c ON c.code = a.currency
		LEFT JOIN users u ON u.id = a.user_id
		LEFT JOIN programs p ON p.id = coalesce(a.program_id, u.program_id)
		CROSS JOIN LATERAL (SELECT CASE
			WHEN a.kind = 'user' THEN least(coalesce(p.max_user_balance, %[1]d::numeric * 10 ^ c.exponent), %[3]d)
			WHEN a.kind IN ('partner_credit', 'partner_deposit', 'partner') THEN least(coalesce(p.max_partner_balance, %[2]d::numeric * 10 ^ c.exponent), %[3]d)
			ELSE %[4]d END::bigint AS bound) b
		WHERE a.balance > b.bound OR a.balance < -(CASE WHEN a.kind IN ('user', 'partner_credit', 'partner_deposit', 'partner') THEN %[3]d ELSE %[4]d END)`,
		DefaultMaxUserBalance, DefaultMaxPartnerBalance, MaxBalance, MaxInternalBalance)},
}

func init() {
	// Appended here rather than in verify.go's list so that each area
	// keeps its checks next to the code they guard.
	verifyChecks = append(verifyChecks, provenanceChecks...)
}

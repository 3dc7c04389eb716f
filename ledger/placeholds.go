package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// HoldBatch places many holds inside a transaction that its caller sends
// as pipelines, so that the holds cost two round trips shared with the
// caller's own statements: QueueLock (with the transaction's BEGIN) locks
// the batch's user accounts, reads its other accounts and reserves hold
// ids; Decide decides every spec in Go on those rows; QueueWrite and, last
// before COMMIT, QueueFinish (with the caller's rows in between) insert the
// new holds and update their accounts under a savepoint. When that
// pipeline fails, Retry tells whether to decide again: a ref was taken
// meanwhile, or an account read without a lock no longer allows what was
// decided (it is then locked). PlaceHolds and PlaceHoldsTx drive one for
// callers that need no pipeline.
//
// The accounts other than users' (a program's partner credit/deposit
// account above all: every approval of the program changes it) are not
// locked when read: their update comes last, just before the commit, and
// changes them only while they still allow every approval decided on them
// (same state, enough available). So such a row is locked only from that
// update to the commit, and several batches of one program overlap.
type HoldBatch struct {
	specs   []HoldSpec
	now     time.Time // the transaction's time: the holds' created_at
	start   time.Time // the ledger's clock when the batch began: expiries count from it
	expires time.Time
	ids     []int64 // reserved hold ids, at least one per spec
	acc     map[int64]*lockedAccount
	order   []*lockedAccount // ascending id
	out     []HoldResult
	newHold []int           // indexes of the specs that insert a hold, in order
	known   map[string]Hold // holds placed earlier under the batch's refs, once looked up
	retries int
	l       *Ledger
	money   moneyPlan // completions and releases of the batch's fast path (capturebatch.go)
}

// lockedAccount is an account row of the batch, locked (a user account)
// or read as it was (hot); held is held0 plus the holds the batch decided
// so far.
type lockedAccount struct {
	id, balance, held0, held int64
	currency, state          string
	neg                      bool // the batch takes it below zero (an advice)
	// hot: read without a lock (not a user account); need is how much of
	// held-held0 its checked approvals (not advices) rely on: the final
	// update requires balance - held >= need on the row as it is then.
	hot  bool
	need int64
	// dBal and dHeld are the batch's completions and releases on the
	// row (see PlanMoney), besides the holds Decide placed; touch: the
	// final update locks the row even without a change (a message of
	// the batch's tail posts to it).
	dBal, dHeld int64
	touch       bool
}

func (a *lockedAccount) available() int64 { return a.balance - a.held }

// GenericPlans, queued first in a batch's transaction, makes its
// statements run on cached generic plans, each planned once per
// connection (planned per call, the partner update and the id reservation
// spent about 0.35 ms of each batch planning, and a custom-planned look-up
// 0.4 ms more), and keeps those plans to index probes whatever the tables
// held when they were made: no sequential scans, no hash or merge joins
// (SET LOCAL: until the transaction ends). Every statement of a batch
// names its rows by key as a restriction (id = ANY (…)) or probes them per
// row, so a probe by key is the only index path its plan can take;
// TestGenericPlansProbe holds the ledger's statements to it.
const GenericPlans = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
	set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`

// NewHoldBatch returns an empty batch; nothing is sent yet.
func (l *Ledger) NewHoldBatch() *HoldBatch {
	start := l.now()
	return &HoldBatch{start: start, expires: start.Add(l.cfg.HoldTTL), l: l}
}

// SpecAccounts returns the accounts specs name, ascending, each once.
func SpecAccounts(specs []HoldSpec) []int64 {
	ids := make([]int64, 0, 2*len(specs))
	for _, s := range specs {
		if s.UserAccountID > 0 {
			ids = append(ids, s.UserAccountID)
		}
		if s.PartnerAccountID > 0 {
			ids = append(ids, s.PartnerAccountID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// QueueLock queues on q the statements that lock the user accounts among
// ids and read the others, and reserve n hold ids, n at least the number
// of specs Decide will get (see queueLockWith). Their results are read
// when q's results are closed; the locks last until the transaction ends.
func (b *HoldBatch) QueueLock(q *pgx.Batch, ids []int64, n int) {
	b.queueLockWith(q, n, accountsLock, ids)
}

// accountsLock is QueueLock's statement: the accounts by id ($1).
var accountsLock = lockRows{Users: `SELECT unnest($1::bigint[])`}

// reserveHoldIDs reserves $1 hold ids, with the transaction's time.
const reserveHoldIDs = `SELECT now(), array_agg(nextval('holds_id_seq')) FROM generate_series(1, $1)`

// lockRows is what queueLockWith's statement reads: the accounts, and
// the caller's own rows, found once and used both for its answer and to
// name the accounts.
type lockRows struct {
	// With are common table expressions the other parts may use, each
	// followed by a comma ("cards AS MATERIALIZED (…),").
	With string
	// Users selects one column of account ids: the user accounts among
	// them are locked. Others (empty: Users) selects the ids whose other
	// accounts are read; naming each account on its side only spares an
	// index probe per account.
	Users, Others string
	// Select selects the caller's rows (empty: none); Dest are the scan
	// destinations of its columns, which must accept NULL (the account
	// rows leave them so), and Row is called after each of its rows is
	// scanned into Dest.
	Select string
	Dest   []any
	Row    func() error
}

// Statement is the SQL of the lock statement: rows of id, balance, held,
// currency, state and hot (read without a lock), then the columns of
// Select, NULL on the other side.
func (lr lockRows) Statement() string {
	var pad, mine string
	if lr.Select != "" {
		// The caller's rows come first, with NULL account columns, so that
		// the NULL columns of the account rows take their types.
		pad = strings.Repeat(", NULL", len(lr.Dest))
		mine = `SELECT NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::boolean, * FROM (` + lr.Select + `) mine
		UNION ALL `
	}
	others := "uids"
	if lr.Others != "" {
		others = "oids"
		lr.With += ` oids AS MATERIALIZED (` + lr.Others + `),`
	}
	return `WITH ` + lr.With + ` uids AS MATERIALIZED (` + lr.Users + `),
		users AS (SELECT id, balance, held, currency, state FROM accounts
			WHERE id = ANY (ARRAY(SELECT * FROM uids)) AND kind = 'user' ORDER BY id FOR NO KEY UPDATE)
		` + mine + `SELECT id, balance, held, currency, state, false` + pad + ` FROM users
		UNION ALL SELECT id, balance, held, currency, state, true` + pad + ` FROM accounts WHERE id = ANY (ARRAY(SELECT * FROM ` + others + `)) AND kind <> 'user'`
}

// queueLockWith is QueueLock for the accounts that lr's queries select
// (with args): a caller that knows its accounts only by other keys locks
// them in the same round trip, and gets its own rows (see lockRows)
// before the accounts. User accounts are locked in ascending id order,
// before any other account (the order lockAccounts keeps too, so no two
// transactions wait for each other); the others are read as they are.
func (b *HoldBatch) queueLockWith(q *pgx.Batch, n int, lr lockRows, args ...any) {
	b.acc, b.order = map[int64]*lockedAccount{}, nil
	q.Queue(lr.Statement(),
		args...).Query(func(rows pgx.Rows) error {
		// pgtype values, not pointers: a row's NULLs cost no allocation.
		var (
			id, balance, held pgtype.Int8
			currency, state   pgtype.Text
			hot               pgtype.Bool
		)
		dest := append([]any{&id, &balance, &held, &currency, &state, &hot}, lr.Dest...)
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if !id.Valid {
				if err := lr.Row(); err != nil {
					return err
				}
				continue
			}
			a := &lockedAccount{id: id.Int64, balance: balance.Int64, held0: held.Int64, currency: currency.String, state: state.String, hot: hot.Bool}
			b.acc[a.id] = a
			b.order = append(b.order, a)
		}
		return rows.Err()
	})
	q.Queue(reserveHoldIDs, n).QueryRow(func(row pgx.Row) error {
		var ids []int64
		if err := row.Scan(&b.now, &ids); err != nil {
			return err
		}
		if len(ids) != n {
			return fmt.Errorf("%d hold ids for %d: %w", len(ids), n, ErrDatabase)
		}
		b.ids = ids
		return nil
	})
}

// Available returns the available amount (balance - held) of a locked
// account, counting the holds Decide placed; ok is false for an account
// the batch did not lock.
func (b *HoldBatch) Available(id int64) (available int64, ok bool) {
	a := b.acc[id]
	if a == nil {
		return 0, false
	}
	return a.available(), true
}

// State returns the state (StateActive, StateBlocked, StateClosed) of an
// account the batch read; ok is false for an account it did not.
func (b *HoldBatch) State(id int64) (state string, ok bool) {
	a := b.acc[id]
	if a == nil {
		return "", false
	}
	return a.state, true
}

// Decide decides every spec in order, after QueueLock's statements ran,
// each independently: a decline of one does not affect the others, and
// later specs see the holds of earlier ones. A ref placed before (known
// after a Retry) or earlier in the batch gives that hold as a duplicate.
// It returns one result per spec, in order; they stand once QueueWrite's
// statements have run without error.
func (b *HoldBatch) Decide(specs []HoldSpec) []HoldResult {
	if len(specs) > len(b.ids) {
		panic(fmt.Sprintf("ledger: HoldBatch.Decide of %d specs with %d hold ids reserved", len(specs), len(b.ids)))
	}
	b.specs = specs
	existing := b.known
	for _, a := range b.order {
		a.held, a.neg, a.need, a.dBal, a.dHeld = a.held0, false, 0, 0, 0
	}
	b.money = moneyPlan{}
	b.out = make([]HoldResult, len(b.specs))
	b.newHold = b.newHold[:0]
	placed := make(map[string]int, len(b.specs)) // ref -> spec that placed it
	for i, s := range b.specs {
		r := &b.out[i]
		var u, p *lockedAccount
		if s.UserAccountID > 0 {
			u = b.acc[s.UserAccountID]
		}
		if s.PartnerAccountID > 0 {
			p = b.acc[s.PartnerAccountID]
		}
		// A spec that accepts a partial approval asks for what its
		// accounts allow when that is less than asked but more than zero.
		amount := s.Amount
		if s.Partial && !s.Force {
			room := amount
			for _, a := range []*lockedAccount{u, p} {
				if a != nil {
					room = min(room, a.available())
				}
			}
			if room > 0 {
				amount = room
			}
		}
		dup, isDup := Hold{}, false
		if s.Ref != "" {
			if h, ok := existing[s.Ref]; ok {
				dup, isDup = h, true
			} else if k, ok := placed[s.Ref]; ok {
				dup, isDup = b.out[k].Hold, true
			}
		}
		switch {
		case isDup:
			r.Hold, r.Duplicate = dup, true
		case s.UserAccountID <= 0 && s.PartnerAccountID <= 0:
			r.Err = fmt.Errorf("place hold: account 0: %w", ErrNotFound)
		case s.UserAccountID > 0 && u == nil:
			r.AccountID, r.Err = s.UserAccountID, fmt.Errorf("place hold: account %d: %w", s.UserAccountID, ErrNotFound)
		case s.PartnerAccountID > 0 && p == nil:
			r.AccountID, r.Err = s.PartnerAccountID, fmt.Errorf("place hold: account %d: %w", s.PartnerAccountID, ErrNotFound)
		case s.Amount <= 0 || s.Amount > MaxAmount:
			r.Err = fmt.Errorf("place hold: %w", ErrInvalidAmount)
		case u != nil && u.currency != s.Currency:
			r.AccountID, r.Err = u.id, fmt.Errorf("place hold: account %d: %w", u.id, ErrCurrencyMismatch)
		case p != nil && p.currency != s.Currency:
			r.AccountID, r.Err = p.id, fmt.Errorf("place hold: account %d: %w", p.id, ErrCurrencyMismatch)
		case !s.Force && u != nil && u.state != StateActive:
			r.AccountID, r.Err = u.id, fmt.Errorf("place hold: account %d: %w", u.id, ErrAccountNotActive)
		case !s.Force && p != nil && p.state != StateActive:
			r.AccountID, r.Err = p.id, fmt.Errorf("place hold: account %d: %w", p.id, ErrAccountNotActive)
		case !s.Force && u != nil && u.available() < amount:
			r.AccountID, r.Available = u.id, u.available()
			r.Err = &FundsError{AccountID: u.id, Available: u.available()}
		case !s.Force && p != nil && p.available() < amount:
			r.AccountID, r.Available = p.id, p.available()
			r.Err = &FundsError{AccountID: p.id, Available: p.available(), Partner: true}
		default:
			if s.Force && s.Capped {
				room := int64(MaxAmount)
				for _, a := range []*lockedAccount{u, p} {
					if a != nil {
						room = min(room, max(a.available(), 0))
					}
				}
				amount = min(amount, room+max(s.StandIn, 0))
				r.Excess = s.Amount - amount
			}
			expires := b.expires
			if s.TTL > 0 {
				expires = b.start.Add(s.TTL)
			}
			r.Hold = Hold{ID: b.ids[i], Currency: s.Currency, OriginalAmount: amount, Amount: amount,
				Status: HoldOpen, Ref: s.Ref, CreatedAt: b.now, ExpiresAt: expires}
			for _, a := range []*lockedAccount{u, p} {
				if a != nil {
					a.held += amount
					a.neg = a.neg || a.available() < 0
					if !s.Force {
						a.need = a.held - a.held0
					}
				}
			}
			if u != nil {
				r.Hold.UserAccountID = u.id
			}
			if p != nil {
				r.Hold.PartnerAccountID = p.id
			}
			if s.Ref != "" {
				placed[s.Ref] = i
			}
			b.newHold = append(b.newHold, i)
		}
		// DE54: the account that decided and its available amount, the
		// user account when there is one.
		if r.Err == nil {
			if u != nil {
				r.AccountID, r.Available = u.id, u.available()
			} else if p != nil {
				r.AccountID, r.Available = p.id, p.available()
			}
		} else if _, funds := r.Err.(*FundsError); !funds && u != nil {
			r.Available = u.available()
		}
	}
	return b.out
}

const (
	refsFree    = `SELECT ledger_refs_free($1)`
	insertHolds = `INSERT INTO holds (id, user_account_id, partner_account_id, currency, original_amount, amount, ref, expires_at, created_at)
		SELECT v.id, NULLIF(v.u, 0), NULLIF(v.p, 0), v.cur, v.amt, v.amt, NULLIF(v.ref, ''), v.exp, $8
		  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[]) AS v (id, u, p, cur, amt, ref, exp)`
	// The accounts are named by id = ANY ($1), each's values found by its
	// position in the arrays: a join with unnest($1) could be planned (a
	// generic plan made on small tables) as a whole index read filtered
	// by the join, and would stay so. The index scan of id = ANY takes
	// the rows in ascending id, the order of the locks.
	updateHeld = `UPDATE accounts a SET held = a.held + ($2::bigint[])[array_position($1::bigint[], a.id)],
			balance = a.balance + ($4::bigint[])[array_position($1::bigint[], a.id)],
			negative_flag = a.negative_flag OR ($3::boolean[])[array_position($1::bigint[], a.id)]
		WHERE a.id = ANY ($1)`
	// updateHeldIfAllowed is updateHeld for accounts read without a lock
	// ($3: need, $4: state as read): a row changes only while its state is
	// as read and balance - held covers need; ledger_accounts_allow fails
	// the statement unless every row did. negative_flag follows the row
	// as it is (an advice).
	updateHeldIfAllowed = `WITH u AS (UPDATE accounts a SET held = a.held + ($2::bigint[])[array_position($1::bigint[], a.id)],
			balance = a.balance + ($5::bigint[])[array_position($1::bigint[], a.id)],
			negative_flag = a.negative_flag OR a.kind IN ('user', 'partner_credit', 'partner_deposit')
				AND a.balance + ($5::bigint[])[array_position($1::bigint[], a.id)] - a.held - ($2::bigint[])[array_position($1::bigint[], a.id)] < 0
		WHERE a.id = ANY ($1) AND ($4::text[])[array_position($1::bigint[], a.id)] IN ('', a.state)
			AND (($3::bigint[])[array_position($1::bigint[], a.id)] <= 0
				OR a.balance - a.held >= ($3::bigint[])[array_position($1::bigint[], a.id)]) RETURNING a.id)
		SELECT ledger_accounts_allow((SELECT count(*) FROM u)::int, cardinality($1::bigint[]))`
)

// QueueWrite queues on q a savepoint (always, so that Retry and Undo can
// return to it), then the insert of the batch's new holds, the update of
// the accounts they change, and the check that no declined spec's ref was
// placed before (a repeated request is a duplicate, not a new decline).
// Both fail with the unique violation of holds_ref; see Retry.
func (b *HoldBatch) QueueWrite(q *pgx.Batch) {
	n := len(b.newHold)
	ids, users, partners, amounts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	currencies, refs, expires := make([]string, n), make([]string, n), make([]time.Time, n)
	placed := make(map[string]bool, n)
	for k, i := range b.newHold {
		h := b.out[i].Hold
		ids[k], users[k], partners[k], currencies[k], amounts[k], refs[k] = h.ID, h.UserAccountID, h.PartnerAccountID, h.Currency, h.Amount, h.Ref
		expires[k] = h.ExpiresAt
		placed[h.Ref] = true
	}
	var declined []string
	for i, r := range b.out {
		if ref := b.specs[i].Ref; r.Err != nil && ref != "" && !placed[ref] {
			declined = append(declined, ref)
		}
	}
	var accIDs, deltas, bals []int64
	var negs []bool
	for _, a := range b.order {
		if !a.hot && (a.held != a.held0 || a.neg || a.dBal != 0 || a.dHeld != 0) {
			neg := a.neg || a.dBal-a.dHeld < 0 && a.balance+a.dBal-a.held-a.dHeld < 0 // a capture within tolerance
			accIDs, deltas, negs = append(accIDs, a.id), append(deltas, a.held-a.held0+a.dHeld), append(negs, neg)
			bals = append(bals, a.dBal)
		}
	}
	q.Queue(`SAVEPOINT ledger_place_holds`)
	if n > 0 {
		q.Queue(insertHolds, ids, users, partners, currencies, amounts, refs, expires, b.now)
	}
	if len(accIDs) > 0 {
		q.Queue(updateHeld, accIDs, deltas, negs, bals)
	}
	// The captures' entries check their accounts' keys (FOR KEY SHARE),
	// which no lock of the ledger's waits for (accounts are locked FOR NO
	// KEY UPDATE and never deleted): the partner and internal rows they
	// name are changed by QueueFinish's update only.
	b.queueMoney(q)
	if len(declined) > 0 {
		q.Queue(refsFree, declined)
	}
}

// Undo rolls the transaction back to QueueWrite's savepoint after the
// pipeline that carried QueueWrite failed with an error of the caller's
// own (its rows between QueueWrite and QueueFinish are taken back too):
// the batch is then written again.
func (b *HoldBatch) Undo(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT ledger_place_holds`)
	return err
}

// QueueFinish queues on q, after QueueWrite and the caller's own rows and
// right before COMMIT, the update of the accounts read without a lock:
// each changes only while its state is as read and its available covers
// the approvals decided on it (ledger_accounts_allow fails the statement
// otherwise; see Retry). Then the savepoint is released.
func (b *HoldBatch) QueueFinish(q *pgx.Batch) {
	var hot []*lockedAccount
	for _, a := range b.order {
		if a.hot && (a.held != a.held0 || a.touch || a.dBal != 0 || a.dHeld != 0) {
			hot = append(hot, a)
		}
	}
	if len(hot) > 0 {
		// Ascending, the order every transaction locks accounts in.
		slices.SortFunc(hot, func(x, y *lockedAccount) int { return cmp.Compare(x.id, y.id) })
		ids, deltas, needs, states, bals := make([]int64, len(hot)), make([]int64, len(hot)), make([]int64, len(hot)), make([]string, len(hot)), make([]int64, len(hot))
		for i, a := range hot {
			ids[i], deltas[i], needs[i], states[i], bals[i] = a.id, a.held-a.held0+a.dHeld, a.need, a.state, a.dBal
		}
		q.Queue(updateHeldIfAllowed, ids, deltas, needs, states, bals)
	}
	q.Queue(`RELEASE SAVEPOINT ledger_place_holds`)
}

// Retry is called with the error of the pipeline that carried QueueWrite.
// When a ref of the batch was placed meanwhile (the unique violation of
// holds_ref), it rolls back to the savepoint, looks up the holds under the
// batch's refs and returns true: decide again (Decide) and send QueueWrite
// again. Otherwise it returns false, and err is the batch's failure.
func (b *HoldBatch) Retry(ctx context.Context, tx pgx.Tx, err error) (bool, error) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false, err
	}
	// An account read without a lock no longer allows what was decided
	// on it (another batch, a reload, a block came between): lock those
	// accounts now (users are locked already: the global order holds) and
	// decide again on what is there.
	disallowed := pg.Code == "40001" && pg.ConstraintName == "ledger_accounts_allow"
	if !disallowed && (pg.Code != "23505" || pg.ConstraintName != "holds_ref") {
		return false, err
	}
	if b.retries++; b.retries > 3 {
		return false, fmt.Errorf("holds kept being overtaken by other transactions: %w", ErrDatabase)
	}
	if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT ledger_place_holds`); err != nil {
		return false, err
	}
	if disallowed {
		return true, b.lockHot(ctx, tx)
	}
	known, err := holdsByRef(ctx, tx, b.specs)
	if err != nil {
		return false, err
	}
	b.known = known
	return true, nil
}

// lockHot locks the accounts the batch read without a lock and takes them
// as they are now.
func (b *HoldBatch) lockHot(ctx context.Context, tx pgx.Tx) error {
	var ids []int64
	for _, a := range b.order {
		if a.hot {
			ids = append(ids, a.id)
		}
	}
	rows, err := tx.Query(ctx, `SELECT id, balance, held, state FROM accounts WHERE id = ANY ($1) ORDER BY id FOR NO KEY UPDATE`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, balance, held int64
		var state string
		if err := rows.Scan(&id, &balance, &held, &state); err != nil {
			return err
		}
		a := b.acc[id]
		a.balance, a.held0, a.state = balance, held, state
	}
	return rows.Err()
}

// holdsByRef returns the holds placed under the specs' refs.
func holdsByRef(ctx context.Context, tx Querier, specs []HoldSpec) (map[string]Hold, error) {
	refs := make([]string, 0, len(specs))
	for _, s := range specs {
		if s.Ref != "" {
			refs = append(refs, s.Ref)
		}
	}
	rows, err := tx.Query(ctx, selectHold+` WHERE ref = ANY ($1)`, refs)
	if err != nil {
		return nil, err
	}
	hs, err := pgx.CollectRows(rows, scanHold)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Hold, len(hs))
	for _, h := range hs {
		out[h.Ref] = h
	}
	return out, nil
}

package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// SpendRule is a row of spend_rules (migration 028): a control on a card, a
// user balance or a program. The card host validates and applies it
// (cardhost/spendrules.go); the ledger keeps it and its versions.
type SpendRule struct {
	ID        int64    `json:"id"`
	ProgramID int64    `json:"programId"`
	Scope     string   `json:"scope"`    // program, balance, card
	TargetID  int64    `json:"targetId"` // the program's, the balance's or the card's id
	Kind      string   `json:"kind"`     // mcc, country, channel, velocity
	Mode      string   `json:"mode"`     // allow, block; limit (velocity)
	Values    []string `json:"values"`
	// Velocity: at most MaxAmount (minor units of the program's currency)
	// and/or MaxCount approvals per Period (transaction, day, week, month,
	// lifetime; calendar UTC).
	Period    string    `json:"period,omitempty"`
	MaxAmount *int64    `json:"maxAmountMinor,omitempty"`
	MaxCount  *int      `json:"maxCount,omitempty"`
	Active    bool      `json:"active"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"` // for a version in a history: when it was set
	UpdatedBy string    `json:"updatedBy"` // who set this version
}

const spendRuleColumns = `id, program_id, scope, target_id, kind, mode, vals, coalesce(period, ''), max_amount, max_count,
	active, version, created_at, updated_at, updated_by`

func scanSpendRule(row pgx.CollectableRow) (SpendRule, error) {
	var r SpendRule
	err := row.Scan(&r.ID, &r.ProgramID, &r.Scope, &r.TargetID, &r.Kind, &r.Mode, &r.Values, &r.Period, &r.MaxAmount, &r.MaxCount, &r.Active, &r.Version,
		&r.CreatedAt, &r.UpdatedAt, &r.UpdatedBy)
	return r, err
}

// SpendRuleTarget returns the program and partner of a rule's target: a
// program, a user balance (its user's program) or a card. ErrNotFound when
// there is none.
func (l *Ledger) SpendRuleTarget(ctx context.Context, scope string, targetID int64) (programID, partnerID int64, err error) {
	const q = `SELECT p.id, p.partner_id FROM programs p WHERE p.id = CASE $1
			WHEN 'program' THEN $2
			WHEN 'card' THEN (SELECT program_id FROM cards WHERE id = $2)
			WHEN 'balance' THEN (SELECT u.program_id FROM accounts a JOIN users u ON u.id = a.user_id WHERE a.id = $2 AND a.kind = 'user')
		END`
	err = l.pool.QueryRow(ctx, q, scope, targetID).Scan(&programID, &partnerID)
	return programID, partnerID, dbErr("spend rule target", err)
}

// CreateSpendRule stores r (version 1) and its first history entry.
func (l *Ledger) CreateSpendRule(ctx context.Context, r SpendRule, actor string) (SpendRule, error) {
	var out SpendRule
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO spend_rules (program_id, scope, target_id, kind, mode, vals, period, max_amount, max_count, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10) RETURNING `+spendRuleColumns,
			r.ProgramID, r.Scope, r.TargetID, r.Kind, r.Mode, r.Values, r.Period, r.MaxAmount, r.MaxCount, actor)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, scanSpendRule); err != nil {
			return err
		}
		return insertSpendRuleVersion(ctx, tx, out)
	})
	return out, dbErr("create spend rule", err)
}

// UpdateSpendRule sets a new version of rule r.ID (its mode, values,
// limits and whether it is active) when it belongs to partnerID (any
// partner when 0).
func (l *Ledger) UpdateSpendRule(ctx context.Context, partnerID int64, r SpendRule, actor string) (SpendRule, error) {
	var out SpendRule
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE spend_rules r SET mode = $3, vals = $4, active = $5, updated_by = $6,
				max_amount = $7, max_count = $8, version = version + 1, updated_at = now()
			WHERE id = $1 AND ($2 = 0 OR EXISTS (SELECT 1 FROM programs p WHERE p.id = r.program_id AND p.partner_id = $2))
			RETURNING `+spendRuleColumns, r.ID, partnerID, r.Mode, r.Values, r.Active, actor, r.MaxAmount, r.MaxCount)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, scanSpendRule); err != nil {
			return err
		}
		return insertSpendRuleVersion(ctx, tx, out)
	})
	return out, dbErr(fmt.Sprintf("spend rule %d", r.ID), err)
}

// SpendRulesChannel is the PostgreSQL notification channel on which every
// new version of a rule names its program's id, at commit: card hosts
// listening drop the program from their caches (cardhost.RunSpendRuleListener).
const SpendRulesChannel = "antaca_spend_rules"

func insertSpendRuleVersion(ctx context.Context, tx pgx.Tx, r SpendRule) error {
	var q pgx.Batch
	q.Queue(`INSERT INTO spend_rule_versions (rule_id, version, mode, vals, max_amount, max_count, active, actor, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, r.ID, r.Version, r.Mode, r.Values, r.MaxAmount, r.MaxCount, r.Active, r.UpdatedBy, r.UpdatedAt)
	q.Queue(`SELECT pg_notify($1, $2)`, SpendRulesChannel, strconv.FormatInt(r.ProgramID, 10))
	return tx.SendBatch(ctx, &q).Close()
}

// SpendRuleFilter narrows SpendRules: zero fields match everything.
type SpendRuleFilter struct {
	PartnerID int64
	Scope     string
	TargetID  int64
}

// SpendRules lists rules (active and not), newest first.
func (l *Ledger) SpendRules(ctx context.Context, f SpendRuleFilter) ([]SpendRule, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+spendRuleColumns+` FROM spend_rules r
		WHERE ($1 = 0 OR EXISTS (SELECT 1 FROM programs p WHERE p.id = r.program_id AND p.partner_id = $1))
			AND ($2 = '' OR scope = $2) AND ($3 = 0 OR target_id = $3)
		ORDER BY id DESC LIMIT 1000`, f.PartnerID, f.Scope, f.TargetID)
	if err != nil {
		return nil, dbErr("spend rules", err)
	}
	out, err := pgx.CollectRows(rows, scanSpendRule)
	return out, dbErr("spend rules", err)
}

// SpendRuleHistory returns every version of rule id, oldest first, when it
// belongs to partnerID (any partner when 0).
func (l *Ledger) SpendRuleHistory(ctx context.Context, partnerID, id int64) ([]SpendRule, error) {
	rows, err := l.pool.Query(ctx, `SELECT r.id, r.program_id, r.scope, r.target_id, r.kind, v.mode, v.vals, coalesce(r.period, ''),
			v.max_amount, v.max_count, v.active, v.version,
			r.created_at, v.at, v.actor
		FROM spend_rules r JOIN spend_rule_versions v ON v.rule_id = r.id
		WHERE r.id = $1 AND ($2 = 0 OR EXISTS (SELECT 1 FROM programs p WHERE p.id = r.program_id AND p.partner_id = $2))
		ORDER BY v.version`, id, partnerID)
	if err != nil {
		return nil, dbErr("spend rule history", err)
	}
	out, err := pgx.CollectRows(rows, scanSpendRule)
	if err == nil && len(out) == 0 {
		err = pgx.ErrNoRows
	}
	return out, dbErr(fmt.Sprintf("spend rule %d history", id), err)
}

// ProgramSpendRules returns a program's active rules, read through q (an
// authorisation batch's transaction when the program cache reloads).
func ProgramSpendRules(ctx context.Context, q Querier, programID int64) ([]SpendRule, error) {
	rows, err := q.Query(ctx, selectProgramSpendRules, programID)
	if err != nil {
		return nil, dbErr("program spend rules", err)
	}
	out, err := pgx.CollectRows(rows, scanSpendRule)
	return out, dbErr("program spend rules", err)
}

// SpendCounterKey names a velocity counter: a rule and the start of its
// calendar UTC period.
type SpendCounterKey struct {
	RuleID      int64
	PeriodStart time.Time
}

// SpendUsage is what a velocity counter has charged: approvals in the
// period less those released (reversed or expired).
type SpendUsage struct {
	Amount int64
	Count  int64
}

// LockSpendCounters creates the counters of keys that do not exist yet,
// locks them all in (rule, period) order in tx, folds the releases queued
// for them since their last authorisation into the rows (migration 037),
// and returns their usage. The cost is one row per counter and the
// releases since the counter's last lock, never its history. An
// authorisation batch calls it after its user accounts are locked and
// before its partner rows are written (DESIGN section 6).
func LockSpendCounters(ctx context.Context, tx pgx.Tx, keys []SpendCounterKey) (map[SpendCounterKey]SpendUsage, error) {
	slices.SortFunc(keys, func(a, b SpendCounterKey) int {
		if c := cmp.Compare(a.RuleID, b.RuleID); c != 0 {
			return c
		}
		return a.PeriodStart.Compare(b.PeriodStart)
	})
	keys = slices.Compact(keys)
	rules, starts := make([]int64, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		rules[i], starts[i] = k.RuleID, k.PeriodStart
	}
	var q pgx.Batch
	q.Queue(insertSpendCounters, rules, starts)
	out := make(map[SpendCounterKey]SpendUsage, len(keys))
	scan := func(rows pgx.Rows) error {
		for rows.Next() {
			var k SpendCounterKey
			var u SpendUsage
			if err := rows.Scan(&k.RuleID, &k.PeriodStart, &u.Amount, &u.Count); err != nil {
				return err
			}
			out[SpendCounterKey{k.RuleID, k.PeriodStart.UTC()}] = u
		}
		return rows.Err()
	}
	q.Queue(lockSpendCounters, rules, starts).Query(scan)
	// The rows are ours now: their queued releases are folded in, in
	// place (a release committed after this statement waits for the next).
	q.Queue(foldSpendReleases, rules, starts).Query(scan)
	if err := tx.SendBatch(ctx, &q).Close(); err != nil {
		return nil, dbErr("lock spend counters", err)
	}
	return out, nil
}

// The statements of the velocity counters an authorisation batch sends
// (LockSpendCounters, QueueSpendCharges) and of the spend rules it reads
// with a program, warmed on each connection (HotStatements).
const (
	selectProgramSpendRules = `SELECT ` + spendRuleColumns + ` FROM spend_rules WHERE program_id = $1 AND active ORDER BY id`
	insertSpendCounters     = `INSERT INTO spend_counters (rule_id, period_start)
	SELECT * FROM unnest($1::bigint[], $2::timestamptz[]) ORDER BY 1, 2 ON CONFLICT DO NOTHING`
	lockSpendCounters = `SELECT rule_id, period_start, amount, count FROM spend_counters
	WHERE (rule_id, period_start) IN (SELECT * FROM unnest($1::bigint[], $2::timestamptz[]))
	ORDER BY rule_id, period_start FOR UPDATE`
	chargeSpendCounters = `UPDATE spend_counters c SET amount = c.amount + x.amount, count = c.count + x.n
	FROM (SELECT r, s, sum(a) AS amount, count(*) AS n FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[]) AS u(r, s, a)
		GROUP BY r, s) x
	WHERE c.rule_id = x.r AND c.period_start = x.s`
	insertSpendCounterHolds = `INSERT INTO spend_counter_holds (hold_id, rule_id, period_start, amount)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bigint[])`
)

// foldSpendReleases deletes the queued releases of the counters
// ($1, $2: rule ids and period starts), which its caller has locked, and
// subtracts them from the counter rows, returning the rows it changed.
const foldSpendReleases = `WITH d AS (DELETE FROM spend_counter_releases
		WHERE (rule_id, period_start) IN (SELECT * FROM unnest($1::bigint[], $2::timestamptz[]))
		RETURNING rule_id, period_start, amount, count),
	s AS (SELECT rule_id, period_start, sum(amount) AS amount, sum(count) AS n FROM d GROUP BY rule_id, period_start)
	UPDATE spend_counters c SET amount = c.amount - s.amount, count = c.count - s.n
	FROM s WHERE c.rule_id = s.rule_id AND c.period_start = s.period_start
	RETURNING c.rule_id, c.period_start, c.amount, c.count`

// lockEndedSpendCounters locks, skipping those another transaction
// holds, up to $2 counters of periods ended by $1 (a calendar UTC day,
// ISO week or month; a lifetime never ends) that have releases queued.
const lockEndedSpendCounters = `SELECT c.rule_id, c.period_start FROM spend_counters c JOIN spend_rules r ON r.id = c.rule_id
	WHERE (c.rule_id, c.period_start) IN (SELECT rule_id, period_start FROM spend_counter_releases)
		AND r.period IN ('day', 'week', 'month')
		AND (c.period_start AT TIME ZONE 'UTC' + CASE r.period WHEN 'day' THEN interval '1 day'
			WHEN 'week' THEN interval '7 days' ELSE interval '1 month' END) AT TIME ZONE 'UTC' <= $1
	ORDER BY c.rule_id, c.period_start LIMIT $2 FOR UPDATE OF c SKIP LOCKED`

// foldEndedSpendReleases folds the releases queued for the counters of
// ended periods, which no authorisation locks again to fold them (a
// seven-day hold of a daily rule expiring next week), in transactions of
// at most batch counters, and returns how many counters it folded. Only
// an incremental authorisation of a hold charged in that period still
// reads such a counter (cardhost's incrementHold); folded or not, it reads
// the same usage. Each transaction locks counters only, skipping those
// another holds (the next run folds them): no account, hold or partner
// row, so DESIGN section 6's order (counters before partner rows) holds.
func (l *Ledger) foldEndedSpendReleases(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		n := 0
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, lockEndedSpendCounters, l.now(), batch)
			if err != nil {
				return err
			}
			var rules []int64
			var starts []time.Time
			var rule int64
			var start time.Time
			if _, err := pgx.ForEachRow(rows, []any{&rule, &start}, func() error {
				rules, starts = append(rules, rule), append(starts, start)
				return nil
			}); err != nil {
				return err
			}
			if n = len(rules); n == 0 {
				return nil
			}
			_, err = tx.Exec(ctx, foldSpendReleases, rules, starts)
			return err
		})
		if err != nil {
			return total, dbErr("fold ended spend releases", err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// SpendHold is an open hold as an incremental authorisation's velocity
// rules see it: its original amount (with earlier increments) and the
// period each rule it was charged to was charged in.
type SpendHold struct {
	OriginalAmount int64
	Periods        map[int64]time.Time // by rule id
}

// LockSpendHold locks an open hold (its user account first, then the
// hold: the order of IncrementHoldTx, which the caller calls next) and
// returns what its velocity charges need. ErrHoldResolved when it is no
// longer open.
func LockSpendHold(ctx context.Context, tx pgx.Tx, holdID int64) (SpendHold, error) {
	h, err := lockOpenHold(ctx, tx, holdID)
	if err != nil {
		return SpendHold{}, dbErr(fmt.Sprintf("hold %d", holdID), err)
	}
	out := SpendHold{OriginalAmount: h.OriginalAmount, Periods: map[int64]time.Time{}}
	rows, err := tx.Query(ctx, `SELECT rule_id, period_start FROM spend_counter_holds WHERE hold_id = $1`, holdID)
	if err != nil {
		return SpendHold{}, dbErr("spend hold", err)
	}
	var rule int64
	var start time.Time
	_, err = pgx.ForEachRow(rows, []any{&rule, &start}, func() error {
		out.Periods[rule] = start.UTC()
		return nil
	})
	return out, dbErr("spend hold", err)
}

// ChargeSpendIncrement adds an incremental authorisation's amount to the
// counters of keys (locked by LockSpendCounters) and to what hold holdID
// charged them, so that its reversal or the hold's gives it back. The
// count does not change: the increment is the same purchase (a charge
// to a rule the hold was not charged to counts no approval).
func ChargeSpendIncrement(ctx context.Context, tx pgx.Tx, holdID int64, keys []SpendCounterKey, amount int64) error {
	rules, starts := make([]int64, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		rules[i], starts[i] = k.RuleID, k.PeriodStart
	}
	var q pgx.Batch
	q.Queue(`UPDATE spend_counters c SET amount = c.amount + $3
		WHERE (c.rule_id, c.period_start) IN (SELECT * FROM unnest($1::bigint[], $2::timestamptz[]))`, rules, starts, amount)
	q.Queue(`INSERT INTO spend_counter_holds (hold_id, rule_id, period_start, amount, counted)
		SELECT $1, r, s, $4, false FROM unnest($2::bigint[], $3::timestamptz[]) AS u(r, s)
		ON CONFLICT (hold_id, rule_id) DO UPDATE SET amount = spend_counter_holds.amount + EXCLUDED.amount`, holdID, rules, starts, amount)
	return dbErr("charge spend increment", tx.SendBatch(ctx, &q).Close())
}

// SpendCharge is what one approval adds to a velocity counter.
type SpendCharge struct {
	SpendCounterKey
	HoldID int64
	Amount int64
}

// QueueSpendCharges queues on q the charges of a batch's approvals: the
// counters (locked by LockSpendCounters) grow, and each hold remembers
// what it charged, to give it back when released.
func QueueSpendCharges(q *pgx.Batch, cs []SpendCharge) {
	n := len(cs)
	holds, rules, amounts := make([]int64, n), make([]int64, n), make([]int64, n)
	starts := make([]time.Time, n)
	for i, c := range cs {
		holds[i], rules[i], starts[i], amounts[i] = c.HoldID, c.RuleID, c.PeriodStart, c.Amount
	}
	q.Queue(chargeSpendCounters, rules, starts, amounts)
	q.Queue(insertSpendCounterHolds, holds, rules, starts, amounts)
}

// ListenSpendRules listens on SpendRulesChannel on a connection of its own
// (not one of pool's) until ctx ends or the connection fails: connected
// is called once listening, changed with the program id of each
// notification (0 when its payload is not one).
func ListenSpendRules(ctx context.Context, pool *Pool, connected func(), changed func(programID int64)) error {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{SpendRulesChannel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil || id <= 0 {
			id = 0
		}
		changed(id)
	}
}

package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SpendRule is a row of spend_rules (migration 028): a control on a card, a
// user balance or a program. The card host validates and applies it
// (cardhost/spendrules.go); the ledger keeps it and its versions.
type SpendRule struct {
	ID        int64     `json:"id"`
	ProgramID int64     `json:"programId"`
	Scope     string    `json:"scope"`    // program, balance, card
	TargetID  int64     `json:"targetId"` // the program's, the balance's or the card's id
	Kind      string    `json:"kind"`     // mcc, country, channel
	Mode      string    `json:"mode"`     // allow, block
	Values    []string  `json:"values"`
	Active    bool      `json:"active"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"` // for a version in a history: when it was set
	UpdatedBy string    `json:"updatedBy"` // who set this version
}

const spendRuleColumns = `id, program_id, scope, target_id, kind, mode, vals, active, version, created_at, updated_at, updated_by`

func scanSpendRule(row pgx.CollectableRow) (SpendRule, error) {
	var r SpendRule
	err := row.Scan(&r.ID, &r.ProgramID, &r.Scope, &r.TargetID, &r.Kind, &r.Mode, &r.Values, &r.Active, &r.Version,
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
		rows, err := tx.Query(ctx, `INSERT INTO spend_rules (program_id, scope, target_id, kind, mode, vals, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+spendRuleColumns,
			r.ProgramID, r.Scope, r.TargetID, r.Kind, r.Mode, r.Values, actor)
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

// UpdateSpendRule sets a new version of rule id (its mode, values and
// whether it is active) when it belongs to partnerID (any partner when 0).
func (l *Ledger) UpdateSpendRule(ctx context.Context, partnerID, id int64, mode string, vals []string, active bool, actor string) (SpendRule, error) {
	var out SpendRule
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE spend_rules r SET mode = $3, vals = $4, active = $5, updated_by = $6,
				version = version + 1, updated_at = now()
			WHERE id = $1 AND ($2 = 0 OR EXISTS (SELECT 1 FROM programs p WHERE p.id = r.program_id AND p.partner_id = $2))
			RETURNING `+spendRuleColumns, id, partnerID, mode, vals, active, actor)
		if err != nil {
			return err
		}
		if out, err = pgx.CollectExactlyOneRow(rows, scanSpendRule); err != nil {
			return err
		}
		return insertSpendRuleVersion(ctx, tx, out)
	})
	return out, dbErr(fmt.Sprintf("spend rule %d", id), err)
}

func insertSpendRuleVersion(ctx context.Context, tx pgx.Tx, r SpendRule) error {
	_, err := tx.Exec(ctx, `INSERT INTO spend_rule_versions (rule_id, version, mode, vals, active, actor, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, r.Version, r.Mode, r.Values, r.Active, r.UpdatedBy, r.UpdatedAt)
	return err
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
	rows, err := l.pool.Query(ctx, `SELECT r.id, r.program_id, r.scope, r.target_id, r.kind, v.mode, v.vals, v.active, v.version,
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
	rows, err := q.Query(ctx, `SELECT `+spendRuleColumns+` FROM spend_rules WHERE program_id = $1 AND active ORDER BY id`, programID)
	if err != nil {
		return nil, dbErr("program spend rules", err)
	}
	out, err := pgx.CollectRows(rows, scanSpendRule)
	return out, dbErr("program spend rules", err)
}

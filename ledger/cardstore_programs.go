package ledger

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// UserRow is one row of users: a partner's cardholder.
type UserRow struct {
	ID, PartnerID, ProgramID int64
	ExternalRef, Name, Email string
	KYCStatus, KYCBy         string
	CreatedAt                time.Time
}

// InsertUser creates a user of the program (KYC pending) and returns its
// id; an unknown program is ErrNotFound.
func (s CardStore) InsertUser(ctx context.Context, programID int64, externalRef, name, email string) (int64, error) {
	const q = `INSERT INTO users (partner_id, program_id, external_ref, name, email)
		SELECT partner_id, id, $2, $3, $4 FROM programs WHERE id = $1
		RETURNING id`
	var id int64
	err := s.pool.QueryRow(ctx, q, programID, externalRef, name, email).Scan(&id)
	return id, storeErr("register user", err)
}

// User returns the user with id.
func (s CardStore) User(ctx context.Context, id int64) (UserRow, error) {
	var u UserRow
	err := s.pool.QueryRow(ctx, selectUser, id).Scan(&u.ID, &u.PartnerID, &u.ProgramID, &u.ExternalRef, &u.Name, &u.Email, &u.KYCStatus, &u.KYCBy, &u.CreatedAt)
	return u, storeErr("user", err)
}

// SetUserKYC records a KYC status and who decided it; found is false for
// an unknown user.
func (s CardStore) SetUserKYC(ctx context.Context, id int64, status, by string) (found bool, err error) {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET kyc_status = $2, kyc_by = $3 WHERE id = $1`, id, status, by)
	return tag.RowsAffected() > 0, storeErr("set kyc", err)
}

// SetUserContact replaces a user's name and e-mail, keeping a stored value
// where the new one is empty; found is false for an unknown user.
func (s CardStore) SetUserContact(ctx context.Context, id int64, name, email string) (found bool, err error) {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET name = coalesce(nullif($2, ''), name), email = coalesce(nullif($3, ''), email) WHERE id = $1`,
		id, name, email)
	return tag.RowsAffected() > 0, storeErr("set user contact", err)
}

// ProgramRow is one row of programs with its currency's numeric code and
// its MCC rule overrides (JSON array of {low, high, tolerance_bp,
// hold_days}, nil when none).
type ProgramRow struct {
	ID, PartnerID             int64
	Name, BINLow, BINHigh     string
	Currency, CurrencyNumeric string
	CardTypes                 []string
	DigitalFirst              bool
	Funding, RemoteURL        string
	RemoteTimeoutMS           int64
	StandInApprove            bool
	PartnerAccountID          int64
	CreatedAt                 time.Time
	BlindRefundLimit          int64
	StandInLimit              int64
	VerifyMaxTries            int
	PendingReversalS          int64
	MCCRules                  []byte
}

const programColumns = `p.id, p.partner_id, p.name, p.bin_low, p.bin_high, p.currency, c.numeric, p.card_types,
	p.digital_first, p.funding, p.remote_url, p.remote_timeout_ms, p.stand_in_approve,
	coalesce(p.partner_account_id, 0), p.created_at, p.blind_refund_limit, p.standin_limit, p.verify_max_tries, p.pending_reversal_s,
	(SELECT json_agg(json_build_object('low', r.mcc_low, 'high', r.mcc_high, 'tolerance_bp', r.tolerance_bp, 'hold_days', r.hold_days))
		FROM program_mcc_rules r WHERE r.program_id = p.id)`

const (
	selectProgram = `SELECT ` + programColumns + ` FROM programs p JOIN currencies c ON c.code = p.currency WHERE p.id = $1`
	selectUser    = `SELECT id, partner_id, program_id, external_ref, name, email, kyc_status, kyc_by, created_at FROM users WHERE id = $1`
)

func scanProgramRow(row pgx.Row) (ProgramRow, error) {
	var p ProgramRow
	err := row.Scan(&p.ID, &p.PartnerID, &p.Name, &p.BINLow, &p.BINHigh, &p.Currency, &p.CurrencyNumeric, &p.CardTypes,
		&p.DigitalFirst, &p.Funding, &p.RemoteURL, &p.RemoteTimeoutMS, &p.StandInApprove, &p.PartnerAccountID, &p.CreatedAt,
		&p.BlindRefundLimit, &p.StandInLimit, &p.VerifyMaxTries, &p.PendingReversalS, &p.MCCRules)
	return p, err
}

// ProgramOn reads the program with id through q: an authorisation batch
// passes its own transaction, never waiting for a second connection of
// the pool while it holds one and its locks.
func ProgramOn(ctx context.Context, q Querier, id int64) (ProgramRow, error) {
	p, err := scanProgramRow(q.QueryRow(ctx, selectProgram, id))
	return p, storeErr("program", err)
}

// Program returns the program with id.
func (s CardStore) Program(ctx context.Context, id int64) (ProgramRow, error) {
	return ProgramOn(ctx, s.pool, id)
}

// Programs returns the programs of a partner, or every program when
// partnerID is 0, in id order.
func (s CardStore) Programs(ctx context.Context, partnerID int64) ([]ProgramRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+programColumns+` FROM programs p JOIN currencies c ON c.code = p.currency
		WHERE $1 = 0 OR p.partner_id = $1 ORDER BY p.id`, partnerID)
	if err != nil {
		return nil, storeErr("programs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProgramRow, error) { return scanProgramRow(r) })
	return out, storeErr("programs", err)
}

// InsertProgram inserts a program (its partner account, secret and
// sandbox flag come with SetProgramAccount) and returns its id.
func (s CardStore) InsertProgram(ctx context.Context, p ProgramRow) (int64, error) {
	const insert = `INSERT INTO programs (partner_id, name, bin_low, bin_high, currency, card_types, digital_first,
		funding, remote_url, remote_timeout_ms, stand_in_approve)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`
	var id int64
	err := s.pool.QueryRow(ctx, insert, p.PartnerID, p.Name, p.BINLow, p.BINHigh, p.Currency, p.CardTypes, p.DigitalFirst,
		p.Funding, p.RemoteURL, p.RemoteTimeoutMS, p.StandInApprove).Scan(&id)
	return id, storeErr("create program", err)
}

// DeleteProgram deletes a program that has nothing yet (its partner
// balance could not be opened). Best effort: the error is not reported.
func (s CardStore) DeleteProgram(ctx context.Context, id int64) {
	s.pool.Exec(ctx, `DELETE FROM programs WHERE id = $1`, id)
}

// SetProgramAccount records a new program's partner credit/deposit
// account, remote-decision secret and sandbox flag.
func (s CardStore) SetProgramAccount(ctx context.Context, id, accountID int64, remoteSecret string, sandbox bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE programs SET partner_account_id = $2, remote_secret = $3, sandbox = $4 WHERE id = $1`,
		id, accountID, remoteSecret, sandbox)
	return storeErr("create program", err)
}

// SetProgramLimits changes a program's money-safety settings; zero
// verifyMaxTries and pendingReversalS keep their values.
func (s CardStore) SetProgramLimits(ctx context.Context, id, blindRefundLimit, standInLimit int64, verifyMaxTries int, pendingReversalS int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE programs SET blind_refund_limit = $2, standin_limit = $3,
		verify_max_tries = CASE WHEN $4 > 0 THEN $4 ELSE verify_max_tries END,
		pending_reversal_s = CASE WHEN $5 > 0 THEN $5 ELSE pending_reversal_s END WHERE id = $1`,
		id, blindRefundLimit, standInLimit, verifyMaxTries, pendingReversalS)
	return storeErr("program limits", err)
}

// SetMCCRule sets a program's override of an MCC range's tolerance (basis
// points) and hold days; nil keeps the default.
func (s CardStore) SetMCCRule(ctx context.Context, programID int64, low, high string, toleranceBP *int64, holdDays *int) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO program_mcc_rules (program_id, mcc_low, mcc_high, tolerance_bp, hold_days) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (program_id, mcc_low) DO UPDATE SET mcc_high = $3, tolerance_bp = $4, hold_days = $5`, programID, low, high, toleranceBP, holdDays)
	return storeErr("mcc rule", err)
}

// ProgramSandbox reports whether the program accepts simulated messages.
func (s CardStore) ProgramSandbox(ctx context.Context, id int64) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT sandbox FROM programs WHERE id = $1`, id).Scan(&ok)
	return ok, storeErr("program sandbox", err)
}

// RemoteSecret returns the program's remote-decision signing secret.
func (s CardStore) RemoteSecret(ctx context.Context, id int64) (string, error) {
	var secret string
	err := s.pool.QueryRow(ctx, `SELECT remote_secret FROM programs WHERE id = $1`, id).Scan(&secret)
	return secret, storeErr("program secret", err)
}

// SetRemoteSecret replaces the program's remote-decision secret; found is
// false for an unknown program.
func (s CardStore) SetRemoteSecret(ctx context.Context, id int64, secret string) (found bool, err error) {
	tag, err := s.pool.Exec(ctx, `UPDATE programs SET remote_secret = $2 WHERE id = $1`, id, secret)
	return tag.RowsAffected() > 0, storeErr("rotate remote secret", err)
}

// CurrencyExponent returns the minor-unit digits of an ISO 4217 alphabetic
// code, or ErrNotFound.
func (s CardStore) CurrencyExponent(ctx context.Context, code string) (int, error) {
	var exp int
	err := s.pool.QueryRow(ctx, `SELECT exponent FROM currencies WHERE code = $1`, strings.ToUpper(code)).Scan(&exp)
	return exp, storeErr("currency", err)
}

// Partners returns every partner in id order.
func (s CardStore) Partners(ctx context.Context) ([]Partner, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, notify_email, created_at FROM partners ORDER BY id`)
	if err != nil {
		return nil, storeErr("partners", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Partner, error) {
		var p Partner
		err := r.Scan(&p.ID, &p.Name, &p.NotifyEmail, &p.CreatedAt)
		return p, err
	})
	if len(out) == 0 {
		out = nil // as before the store: no partners is a nil slice
	}
	return out, storeErr("partners", err)
}

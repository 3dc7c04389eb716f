package cardhost

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// ProgramSpec describes a new program.
type ProgramSpec struct {
	PartnerID       int64
	Name            string
	BINLow, BINHigh string
	Currency        string // ISO 4217 alphabetic
	CardTypes       []CardType
	DigitalFirst    bool
	Funding         FundingModel
	RemoteURL       string
	RemoteTimeout   time.Duration // default 1.5 s
	StandInApprove  bool
	// LowThreshold, when set, is the partner credit/deposit balance level
	// below which the partner is notified once.
	LowThreshold *int64
	// RemoteSecret signs the remote decision; empty: a fresh one when
	// RemoteURL is set (returned once in Program.RemoteSecret).
	RemoteSecret string
	// Sandbox allows simulated messages on the program's cards.
	Sandbox bool
}

var binRe = regexp.MustCompile(`^[0-9]{6,11}$`)

// CreateProgram creates a program and its partner credit or deposit balance.
func (h *Host) CreateProgram(ctx context.Context, s ProgramSpec) (Program, error) {
	if s.Name == "" || !binRe.MatchString(s.BINLow) || !binRe.MatchString(s.BINHigh) ||
		len(s.BINLow) != len(s.BINHigh) || s.BINHigh < s.BINLow {
		return Program{}, fmt.Errorf("create program: %w: name and a BIN range of equal-length 6-11 digit prefixes are required", ErrInvalidInput)
	}
	if s.Funding != FundingPartnerCredit && s.Funding != FundingPartnerDeposit {
		return Program{}, fmt.Errorf("create program: %w: funding must be partner_credit or partner_deposit", ErrInvalidInput)
	}
	if len(s.CardTypes) == 0 {
		s.CardTypes = []CardType{Virtual, Physical}
	}
	for _, t := range s.CardTypes {
		if t != Virtual && t != Physical && t != DigitalFirst {
			return Program{}, fmt.Errorf("create program: %w: card type %q", ErrInvalidInput, t)
		}
	}
	if s.RemoteTimeout <= 0 {
		s.RemoteTimeout = 1500 * time.Millisecond
	}
	types := make([]string, len(s.CardTypes))
	for i, t := range s.CardTypes {
		types[i] = string(t)
	}
	const insert = `INSERT INTO programs (partner_id, name, bin_low, bin_high, currency, card_types, digital_first,
		funding, remote_url, remote_timeout_ms, stand_in_approve)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`
	var id int64
	err := h.pool.QueryRow(ctx, insert, s.PartnerID, s.Name, s.BINLow, s.BINHigh, s.Currency, types, s.DigitalFirst,
		string(s.Funding), s.RemoteURL, s.RemoteTimeout.Milliseconds(), s.StandInApprove).Scan(&id)
	if err != nil {
		return Program{}, dbErr("create program", err)
	}
	acc, err := h.ledger.OpenAccount(ctx, ledger.AccountSpec{
		Kind: string(s.Funding), Currency: s.Currency, PartnerID: s.PartnerID, ProgramID: id, LowThreshold: s.LowThreshold,
	})
	if err != nil {
		h.pool.Exec(ctx, `DELETE FROM programs WHERE id = $1`, id)
		return Program{}, fmt.Errorf("create program: partner balance: %w", err)
	}
	if s.RemoteURL != "" && s.RemoteSecret == "" {
		if s.RemoteSecret, err = NewRemoteSecret(); err != nil {
			return Program{}, err
		}
	}
	if _, err := h.pool.Exec(ctx, `UPDATE programs SET partner_account_id = $2, remote_secret = $3, sandbox = $4 WHERE id = $1`,
		id, acc.ID, s.RemoteSecret, s.Sandbox); err != nil {
		return Program{}, dbErr("create program", err)
	}
	p, err := h.Program(ctx, id)
	p.RemoteSecret = s.RemoteSecret
	return p, err
}

const programColumns = `p.id, p.partner_id, p.name, p.bin_low, p.bin_high, p.currency, c.numeric, p.card_types,
	p.digital_first, p.funding, p.remote_url, p.remote_timeout_ms, p.stand_in_approve,
	coalesce(p.partner_account_id, 0), p.created_at, p.blind_refund_limit, p.standin_limit, p.verify_max_tries, p.pending_reversal_s,
	(SELECT json_agg(json_build_object('low', r.mcc_low, 'high', r.mcc_high, 'tolerance_bp', r.tolerance_bp, 'hold_days', r.hold_days))
		FROM program_mcc_rules r WHERE r.program_id = p.id)`

func scanProgram(row pgx.Row) (Program, error) {
	var p Program
	var types []string
	var funding string
	var timeoutMS, windowS int64
	var rules []byte
	err := row.Scan(&p.ID, &p.PartnerID, &p.Name, &p.BINLow, &p.BINHigh, &p.Currency, &p.CurrencyNumeric, &types,
		&p.DigitalFirst, &funding, &p.RemoteURL, &timeoutMS, &p.StandInApprove, &p.PartnerAccountID, &p.CreatedAt,
		&p.BlindRefundLimit, &p.StandInLimit, &p.VerifyMaxTries, &windowS, &rules)
	if err != nil {
		return Program{}, err
	}
	p.PendingReversalWindow = time.Duration(windowS) * time.Second
	p.MCCRules = parseMCCRules(rules)
	for _, t := range types {
		p.CardTypes = append(p.CardTypes, CardType(t))
	}
	p.Funding = FundingModel(funding)
	p.RemoteTimeout = time.Duration(timeoutMS) * time.Millisecond
	return p, nil
}

// Program returns the program with the given id.
func (h *Host) Program(ctx context.Context, id int64) (Program, error) {
	return h.programOn(ctx, h.pool, id)
}

func (h *Host) programOn(ctx context.Context, q ledger.Querier, id int64) (Program, error) {
	row := q.QueryRow(ctx, `SELECT `+programColumns+` FROM programs p JOIN currencies c ON c.code = p.currency WHERE p.id = $1`, id)
	p, err := scanProgram(row)
	return p, dbErr(fmt.Sprintf("program %d", id), err)
}

// Programs returns the programs of a partner, or every program when
// partnerID is 0.
func (h *Host) Programs(ctx context.Context, partnerID int64) ([]Program, error) {
	rows, err := h.pool.Query(ctx, `SELECT `+programColumns+` FROM programs p JOIN currencies c ON c.code = p.currency
		WHERE $1 = 0 OR p.partner_id = $1 ORDER BY p.id`, partnerID)
	if err != nil {
		return nil, dbErr("programs", err)
	}
	defer rows.Close()
	var out []Program
	for rows.Next() {
		p, err := scanProgram(rows)
		if err != nil {
			return nil, dbErr("programs", err)
		}
		out = append(out, p)
	}
	return out, dbErr("programs", rows.Err())
}

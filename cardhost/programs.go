package cardhost

import (
	"context"
	"fmt"
	"regexp"
	"time"

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
	id, err := h.store.InsertProgram(ctx, ledger.ProgramRow{PartnerID: s.PartnerID, Name: s.Name, BINLow: s.BINLow, BINHigh: s.BINHigh,
		Currency: s.Currency, CardTypes: types, DigitalFirst: s.DigitalFirst, Funding: string(s.Funding), RemoteURL: s.RemoteURL,
		RemoteTimeoutMS: s.RemoteTimeout.Milliseconds(), StandInApprove: s.StandInApprove})
	if err != nil {
		return Program{}, storeErr("create program", err)
	}
	acc, err := h.ledger.OpenAccount(ctx, ledger.AccountSpec{
		Kind: string(s.Funding), Currency: s.Currency, PartnerID: s.PartnerID, ProgramID: id, LowThreshold: s.LowThreshold,
	})
	if err != nil {
		h.store.DeleteProgram(ctx, id)
		return Program{}, fmt.Errorf("create program: partner balance: %w", err)
	}
	if s.RemoteURL != "" && s.RemoteSecret == "" {
		if s.RemoteSecret, err = NewRemoteSecret(); err != nil {
			return Program{}, err
		}
	}
	if err := h.store.SetProgramAccount(ctx, id, acc.ID, s.RemoteSecret, s.Sandbox); err != nil {
		return Program{}, storeErr("create program", err)
	}
	p, err := h.Program(ctx, id)
	p.RemoteSecret = s.RemoteSecret
	return p, err
}

// Program returns the program with the given id.
func (h *Host) Program(ctx context.Context, id int64) (Program, error) {
	r, err := h.store.Program(ctx, id)
	if err != nil {
		return Program{}, storeErr(fmt.Sprintf("program %d", id), err)
	}
	return programOf(r), nil
}

// programOn reads a program through q, the transaction of an
// authorisation batch (ledger.ProgramOn).
func (h *Host) programOn(ctx context.Context, q ledger.Querier, id int64) (Program, error) {
	r, err := ledger.ProgramOn(ctx, q, id)
	if err != nil {
		return Program{}, storeErr(fmt.Sprintf("program %d", id), err)
	}
	return programOf(r), nil
}

// Programs returns the programs of a partner, or every program when
// partnerID is 0.
func (h *Host) Programs(ctx context.Context, partnerID int64) ([]Program, error) {
	rows, err := h.store.Programs(ctx, partnerID)
	if err != nil {
		return nil, storeErr("programs", err)
	}
	var out []Program
	for _, r := range rows {
		out = append(out, programOf(r))
	}
	return out, nil
}

package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/antaca/antaca/internal/decimal"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/sandbox"
	"github.com/antaca/antaca/specs"
)

// Simulator sends simulated card messages through the switch (package
// sandbox).
type Simulator interface {
	Simulate(ctx context.Context, r sandbox.Request) (sandbox.Result, error)
}

// CodeNotSandbox answers a simulation on a card of a program that is not a
// sandbox.
const CodeNotSandbox = "NOT_SANDBOX"

func (s *Server) registerSimulationRoutes() {
	s.route(Route{Method: "POST", Pattern: securePrefix + "/cards/{cardId}/simulate/{kind}", Channel: ChannelSecure, Encryption: EncryptionOptional}, s.simulate)
	s.route(Route{Method: "POST", Pattern: "/admin/cards/{cardId}/simulate/{kind}", Channel: ChannelAdmin, Roles: []Role{RoleAdmin},
		Encryption: EncryptionOptional}, s.simulate)
}

// authorizationView is an authorisation of a card with its hold's fate.
type authorizationView struct {
	JournalID      int64     `json:"journalId"`
	At             time.Time `json:"at"`
	MTI            string    `json:"mti"`
	ProcessingCode string    `json:"processingCode"`
	CardID         int64     `json:"cardId"`
	MaskedPAN      string    `json:"maskedPan"`
	Merchant       string    `json:"merchant"`
	Amount         string    `json:"amount"`
	Currency       string    `json:"currency"`
	ActionCode     string    `json:"actionCode"`
	Reason         string    `json:"reason"`
	ApprovalCode   string    `json:"approvalCode,omitempty"`
	Hold           *holdView `json:"hold,omitempty"`
	Simulation     bool      `json:"simulation,omitempty"`
}

type holdView struct {
	ID         int64      `json:"id"`
	Status     string     `json:"status"` // open (pending), captured, released (reversed), expired
	Held       string     `json:"held"`
	Captured   string     `json:"captured,omitempty"`
	Refunded   string     `json:"refunded,omitempty"`
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
}

func (s *Server) authorizationsOf(ctx context.Context, as []ledger.Authorization) ([]authorizationView, error) {
	out := make([]authorizationView, 0, len(as))
	for _, a := range as {
		exp, err := s.exponent(ctx, a.Currency)
		if err != nil {
			exp = 2 // a currency the table does not know: shown as recorded
		}
		code, _ := specs.ActionCode(a.Profile, a.Reason)
		v := authorizationView{JournalID: a.JournalID, At: a.At, MTI: a.MTI, ProcessingCode: a.ProcessingCode, CardID: a.CardID,
			MaskedPAN: a.MaskedPAN, Merchant: a.Merchant, Amount: formatAmount(a.Amount, exp), Currency: a.Currency,
			ActionCode: code, Reason: a.Reason, ApprovalCode: a.ApprovalCode, Simulation: a.Simulation}
		if a.HoldID != 0 {
			hexp, err := s.exponent(ctx, a.HoldCurrency)
			if err != nil {
				return nil, err
			}
			h := &holdView{ID: a.HoldID, Status: a.HoldStatus, Held: formatAmount(a.HoldAmount, hexp), ResolvedAt: a.ResolvedAt, ExpiresAt: a.ExpiresAt}
			if a.Captured != nil {
				h.Captured = formatAmount(*a.Captured, hexp)
			}
			if a.Refunded != 0 {
				h.Refunded = formatAmount(a.Refunded, hexp)
			}
			v.Hold = h
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) simulate(q *request) (int, any, error) {
	if s.cfg.Simulator == nil {
		return 0, nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "simulation is not configured (no switch address)")
	}
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Amount   amountText `json:"amount"`
		Original string     `json:"original"`
		Merchant string     `json:"merchant"`
		MCC      string     `json:"mcc"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if len(in.Merchant) > 25 || len(in.MCC) > 4 || (in.MCC != "" && !decimal.AllDigits(in.MCC)) {
		return 0, nil, validation("merchant is at most 25 characters, mcc 4 digits")
	}
	b, err := s.host.Account(q.Context(), c.AccountID)
	if err != nil {
		return 0, nil, err
	}
	exp, err := s.exponent(q.Context(), b.Currency)
	if err != nil {
		return 0, nil, err
	}
	amount, err := parseAmount(in.Amount, exp)
	if err != nil {
		return 0, nil, err
	}
	if amount <= 0 || amount > ledger.MaxAmount {
		return 0, nil, validation("amount must be above zero and within the bounds")
	}
	res, err := s.cfg.Simulator.Simulate(q.Context(), sandbox.Request{Kind: q.PathValue("kind"), CardID: c.ID, Amount: amount,
		Original: in.Original, Merchant: in.Merchant, MCC: in.MCC})
	switch {
	case errors.Is(err, sandbox.ErrNotSandbox):
		return 0, nil, errorf(http.StatusConflict, CodeNotSandbox, "the card's program is not a sandbox: simulations are refused")
	case errors.Is(err, sandbox.ErrKind):
		return 0, nil, notFound()
	case errors.Is(err, sandbox.ErrOriginal):
		return 0, nil, validation("%v", err)
	case errors.Is(err, sandbox.ErrSwitch):
		s.log.Warn("simulation: switch unreachable", "err", err)
		return 0, nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "switch unreachable, retry later")
	case err != nil:
		return 0, nil, err
	}
	bal, err := s.balanceOf(q.Context(), res.Balance, nil)
	if err != nil {
		return 0, nil, err
	}
	auths, err := s.authorizationsOf(q.Context(), res.Authorizations)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("simulated", "kind", q.PathValue("kind"), "card_id", c.ID, "code", res.ActionCode, "by", q.principal.scope())
	out := map[string]any{"id": res.ID, "mti": res.MTI, "actionCode": res.ActionCode, "approvalCode": res.ApprovalCode,
		"reason": res.Reason, "approved": res.Reason == "approved", "balance": bal, "authorizations": auths}
	if res.Waiting > 0 {
		// A refund credited short: the rest waits for an Admin (exceptions).
		out["waiting"], out["exceptionId"] = formatAmount(res.Waiting, exp), res.ExceptionID
	}
	return http.StatusOK, out, nil
}

// balanceAuthorizations lists a balance's authorisations with their holds,
// when the card host offers its ledger (a test's fake host does not).
func (s *Server) balanceAuthorizations(ctx context.Context, accountID int64, limit int) ([]authorizationView, error) {
	h, ok := s.host.(interface{ Ledger() *ledger.Ledger })
	if !ok {
		return []authorizationView{}, nil
	}
	as, err := h.Ledger().Authorizations(ctx, accountID, 0, limit)
	if err != nil {
		return nil, err
	}
	return s.authorizationsOf(ctx, as)
}

package cardhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// decideInBatch applies DESIGN.md section 5 to an authorisation whose card
// the batch looked up (nil: unknown PAN), leaving it a journal row, a hold
// spec, an inquiry, a stored answer, or a remote partner to ask.
func (h *Host) decideInBatch(ctx context.Context, tx ledger.Tx, hb *ledger.HoldBatch, w *writeReq) {
	r, card := w.j.req, w.auth.card
	if w.auth.stored != nil {
		w.decision = *w.auth.stored
		return
	}
	if card == nil {
		w.decision, w.j.reason = Decision{Reason: InvalidCard}, InvalidCard
		return
	}
	w.j.cardID = card.ID
	prog, err := h.cachedProgramOn(ctx, tx, card.ProgramID)
	if err != nil {
		w.err = err
		return
	}
	// The checks of pipeline.go: the card's, then the batch's.
	d := newDecision(DecideInput{Card: card, Program: &prog, Req: r, Now: h.cfg.Now(), PAN: r.PAN}, h.keys)
	runChecks(cardChecks, &d)
	// A PIN, CVC2 or expiry verified (right or wrong) changes the card's
	// wrong-PIN or wrong-verification count, and the last wrong one locks
	// it: that change commits with the request's journal row, so it counts
	// once and only when the answer does (an advice's stand-in included).
	w.pin = cardChangeOf(card, &prog, d.out)
	runChecks(batchChecks, &d)
	out := d.out
	if out.Reason != Approved {
		w.decision, w.j.reason = Decision{Reason: out.Reason}, out.Reason
		if out.Err != nil {
			w.j.detail = out.Err.Error()
		}
		return
	}
	w.prog = &prog
	switch d.next {
	case nextInquiry:
		w.inquiry = h.fundsAccount(card, &prog)
	case nextRemote:
		// The partner decides: asked outside this transaction, the request
		// comes back decided in a later batch.
		w.auth.remote = &remoteReq{card: *card, prog: prog, out: out, pc: w.pin}
	default:
		w.spec = h.holdSpec(card, &prog, r, out.HoldAmount)
		w.capture = r.Class == ClassFinancial
		w.vel = d.vel
	}
}

// holdSpec is the hold of an approved authorisation: on the program's
// partner credit/deposit account, and on the card's balance where we hold
// the user's balance.
func (h *Host) holdSpec(card *Card, prog *Program, r *AuthRequest, amount int64) *ledger.HoldSpec {
	spec := &ledger.HoldSpec{
		PartnerAccountID: prog.PartnerAccountID,
		Currency:         prog.Currency,
		Amount:           amount,
		Ref:              journalRef(r),
		Force:            r.Class == ClassAdvice,
		Capped:           r.Class == ClassAdvice,
		StandIn:          prog.StandInLimit,
		TTL:              holdTTL(prog, r.MCC),
		Partial:          r.PartialAccepted(),
	}
	if prog.Funding == FundingPartnerCredit {
		spec.UserAccountID = card.AccountID
	}
	return spec
}

// applyInquiry approves a balance inquiry or a request that holds nothing
// (a refund authorisation: its credit comes with its clearing) with the
// available balance of the batch's locked account, after the batch's holds.
func (h *Host) applyInquiry(w *writeReq, hb *ledger.HoldBatch) {
	w.decision = Decision{Reason: Approved, ApprovalCode: approvalCode(w.j.req)}
	w.j.reason, w.j.approval = Approved, w.decision.ApprovalCode
	if avail, ok := hb.Available(w.inquiry); ok {
		w.decision.Available, w.decision.Currency, w.decision.HasAvailable = avail, w.prog.CurrencyNumeric, true
		w.j.available, w.j.availCcy = &avail, w.prog.CurrencyNumeric
	}
}

// applyHoldResult turns a ledger result into the request's decision and
// journal row (again from scratch when the batch is decided again).
func (h *Host) applyHoldResult(w *writeReq, res ledger.HoldResult) {
	ccy := w.prog.CurrencyNumeric
	avail := res.Available
	w.j.approval, w.j.holdID, w.j.detail, w.j.available, w.j.availCcy, w.j.approvedAmount = "", 0, "", nil, "", 0
	w.newHold = res.Err == nil && !res.Duplicate
	w.held = res.Hold.Amount
	w.excess = 0
	if w.newHold && res.Excess > 0 {
		w.excess = res.Excess
		w.j.detail = fmt.Sprintf("held %d, %d to exceptions (standin_overdraft)", res.Hold.Amount, res.Excess)
	}
	switch {
	case res.Err == nil:
		w.decision = Decision{Reason: Approved, ApprovalCode: approvalCode(w.j.req), Available: avail, Currency: ccy, HasAvailable: true, HoldID: res.Hold.ID}
		if w.newHold && res.Hold.Amount < w.spec.Amount && w.spec.Partial {
			// Funds allowed less than asked and the terminal takes it.
			w.decision.Reason, w.decision.ApprovedAmount = PartialApproved, partialAmount(w.j.req, res.Hold.Amount, w.spec.Amount)
			w.j.approvedAmount = w.decision.ApprovedAmount
			w.j.detail = fmt.Sprintf("partial approval: held %d of %d", res.Hold.Amount, w.spec.Amount)
		}
		w.j.reason, w.j.approval, w.j.holdID = w.decision.Reason, w.decision.ApprovalCode, res.Hold.ID
	case errors.Is(res.Err, ledger.ErrInsufficientFunds), errors.Is(res.Err, ledger.ErrInsufficientPartnerFunds):
		reason := InsufficientFunds
		if errors.Is(res.Err, ledger.ErrInsufficientPartnerFunds) {
			reason = InsufficientPartnerFunds
		}
		w.decision = Decision{Reason: reason, Available: avail, Currency: ccy, HasAvailable: true}
		w.j.reason = reason
	default:
		// The balance is blocked or closed, or the accounts do not fit:
		// not permitted to the cardholder; the reason is journaled.
		w.decision = Decision{Reason: NotPermitted}
		w.j.reason, w.j.detail = NotPermitted, res.Err.Error()
		return
	}
	w.j.available, w.j.availCcy = &avail, ccy
}

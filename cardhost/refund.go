package cardhost

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/antaca/antaca/ledger"
)

// refund answers a financial refund (x200, processing code 20) its batch
// could not take (moneybatch.go): the card checks of an authorisation,
// then the credit of a cleared refund (clearRefund).
func (h *Host) refund(ctx context.Context, r *AuthRequest, enc []byte) (Decision, error) {
	if _, _, _, d, done, err := h.checkedCard(ctx, r); done || err != nil {
		return d, err
	}
	orig, found, err := h.original(ctx, r)
	if err != nil {
		return Decision{}, err
	}
	return h.clearRefund(ctx, r, orig, found, enc)
}

// checkedCard runs the card checks of an authorisation for a request
// decided outside the batches (a refund, an incremental; money looked its
// earlier answer up): its card by PAN, the card's program, Decide. done is true
// when the request is answered (d, err: the stored answer, or the decline
// journaled with its PIN or verification count change).
func (h *Host) checkedCard(ctx context.Context, r *AuthRequest) (card Card, prog Program, out Outcome, d Decision, done bool, err error) {
	card, err = h.CardByPAN(ctx, r.PAN)
	if errors.Is(err, ErrNotFound) {
		d, err = h.decline(ctx, journal{req: r}, InvalidCard, "", nil)
		return card, prog, out, d, true, err
	}
	if err != nil {
		return card, prog, out, d, true, err
	}
	if prog, err = h.cachedProgram(ctx, card.ProgramID); err != nil {
		return card, prog, out, d, true, err
	}
	out = Decide(DecideInput{Card: &card, Program: &prog, Req: r, Now: h.cfg.Now(), PAN: r.PAN}, h.keys)
	if out.Reason != Approved {
		j := journal{req: r, cardID: card.ID}
		if out.Err != nil {
			j.detail = out.Err.Error()
		}
		d, err = h.decline(ctx, j, out.Reason, j.detail, cardChangeOf(&card, &prog, out))
		return card, prog, out, d, true, err
	}
	return card, prog, out, d, false, nil
}

// clearRefund credits a cleared refund (an x220 or x200 of processing code
// 20) its batch could not take to the card's balance: the card of the
// message it names, or the card of its PAN (refunds often clear without
// one), in a transaction of its own (refundOn).
func (h *Host) clearRefund(ctx context.Context, r *AuthRequest, orig originalRow, found bool, enc []byte) (Decision, error) {
	var (
		card Card
		err  error
	)
	if found && orig.cardID != 0 {
		card, err = h.Card(ctx, orig.cardID)
	} else {
		card, err = h.CardByPAN(ctx, r.PAN)
	}
	if errors.Is(err, ErrNotFound) {
		return h.decline(ctx, journal{req: r}, InvalidCard, "refund to an unknown card", nil)
	}
	if err != nil {
		return Decision{}, err
	}
	prog, err := h.cachedProgram(ctx, card.ProgramID)
	if err != nil {
		return Decision{}, err
	}
	var opened string
	d, err := h.answerTx(ctx, r, "refund", func(tx ledger.Tx) (Decision, error) {
		d, o, err := h.refundOn(ctx, tx, r, orig, found, &card, &prog, enc, nil)
		opened = o
		return d, err
	})
	if err == nil && opened != "" && !d.Duplicate {
		h.ledger.ExceptionsOpened(opened)
	}
	return d, err
}

// refundOn credits, in tx, a cleared refund to card's balance and journals
// it: the body of clearRefund's transaction and of a refund in its batch's
// tail (moneySlow). Matched to a purchase (orig, found: the message it
// names, by DE90/DE56 or RRN + STAN + acquirer, captured), it credits at
// most what the purchase captured less earlier refunds; blind, at most the
// program's blind-refund limit; the rest waits for an Admin
// (ledger.CreditRefundTx). A removed card, a currency the program does not
// hold and a closed balance are declined (stateOf, when not nil, knows the
// states of the accounts its caller holds). The credit and the journal row
// commit together, so a repeat credits once (errDuplicate). It returns the
// decision and the kind of the exception it opened, if any.
func (h *Host) refundOn(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow, found bool, card *Card, prog *Program, enc []byte,
	stateOf func(id int64) (string, bool)) (Decision, string, error) {
	j := journal{req: r, cardID: card.ID, panEnc: enc}
	if card.State == StateRemoved {
		j.cardID = 0
		d, err := declineOn(ctx, tx, j, InvalidCard, "refund to an unknown card", nil)
		return d, "", err
	}
	out := billing(Outcome{}, r, prog)
	if out.Reason != Approved || out.HoldAmount <= 0 && out.CreditAmount <= 0 {
		d, err := declineOn(ctx, tx, j, NotPermitted, "refund in a currency the program does not hold, or of nothing", nil)
		return d, "", err
	}
	spec := h.holdSpec(card, prog, r, max(out.HoldAmount, out.CreditAmount))
	for _, id := range []int64{spec.UserAccountID, spec.PartnerAccountID} {
		if id == 0 {
			continue
		}
		state, ok := "", false
		if stateOf != nil {
			state, ok = stateOf(id)
		}
		if !ok || state == "" { // "": a row its caller did not read
			acc, err := h.ledger.AccountTx(ctx, tx, id) // read, not locked: the credit locks it, in order
			if err != nil {
				return Decision{}, "", err
			}
			state = acc.State
		}
		if state == ledger.StateClosed {
			// The money would be stuck on a balance nobody can use.
			d, err := declineOn(ctx, tx, j, NotPermitted, "refund to a closed balance", nil)
			return d, "", err
		}
	}
	creditRef := "credit:" + spec.Ref
	var purchase int64
	switch {
	case found && orig.proc == ProcRefund:
		// It clears a refund message (its authorisation, an x200):
		// credited once however many messages clear it.
		creditRef = orig.creditRef()
	case found && orig.holdID != 0 && orig.cardID == card.ID:
		purchase = orig.holdID
	}
	opened := ""
	res, err := h.ledger.CreditRefundTx(ctx, tx, ledger.Refund{UserAccountID: spec.UserAccountID, PartnerAccountID: spec.PartnerAccountID,
		Currency: spec.Currency, Amount: spec.Amount, Ref: creditRef, PurchaseHoldID: purchase, BlindLimit: prog.BlindRefundLimit,
		CardID: card.ID, ProgramID: prog.ID, JournalID: orig.id})
	detail := "refund credited " + strconv.FormatInt(res.Credited, 10)
	switch {
	case errors.Is(err, ledger.ErrDuplicateRef) && (!found || orig.proc != ProcRefund):
		return Decision{}, "", errDuplicate // a repeat: answered as the first was
	case errors.Is(err, ledger.ErrDuplicateRef):
		// Another message cleared this refund already (an x200, an
		// earlier x220): approved, and nothing more is credited.
		detail = "refund credited before"
	case err != nil:
		return Decision{}, "", err
	case res.Waiting > 0 && res.Credited == 0:
		// Nothing credited: the journal must not read as a credit
		// (partner events follow it: no refund.credited).
		detail = fmt.Sprintf("refund waits for an Admin: %d (blind_refund %d)", res.Waiting, res.Exception.ID)
		opened = ledger.ExceptionBlindRefund
	case res.Waiting > 0:
		detail += fmt.Sprintf(", %d waits for an Admin (blind_refund %d)", res.Waiting, res.Exception.ID)
		opened = ledger.ExceptionBlindRefund
	}
	if err == nil && res.Credited > 0 {
		// A reversal of this refund that overtook it: the credit
		// locked the card's balance, so it is seen here (pending.go).
		ps, err := pendingFor(ctx, tx, r)
		if err != nil {
			return Decision{}, "", err
		}
		if err := h.applyPendingCredit(ctx, tx, ps, creditRef); err != nil {
			return Decision{}, "", err
		}
	}
	j.originalID, j.detail = orig.id, detail
	d, err := h.journalApproval(ctx, tx, card, prog, j)
	return d, opened, err
}

// declineOn journals a decline in tx (j: the request's row so far), with
// its PIN or verification count change, and returns its decision.
func declineOn(ctx context.Context, tx ledger.Tx, j journal, reason Reason, detail string, pc *pinChange) (Decision, error) {
	j.reason, j.detail = reason, detail
	if pc != nil {
		if err := recordCardChange(ctx, tx, j.cardID, *pc, false); err != nil {
			return Decision{}, err
		}
	}
	_, err := writeJournal(ctx, tx, j)
	return Decision{Reason: reason}, err
}

// keepInCredit converts a partial reversal's DE95 of a refund in another
// currency into the credit's, at the rate the refund was credited at (its
// credit for its DE4), rounded down; on any doubt, all of it is kept.
func keepInCredit(ctx context.Context, tx ledger.Tx, orig originalRow, keep int64) int64 {
	credited, err := ledger.CreditedAmount(ctx, tx, orig.creditRef())
	if err != nil {
		return math.MaxInt64
	}
	v := new(big.Int).Mul(big.NewInt(credited), big.NewInt(keep))
	v.Quo(v, big.NewInt(orig.amount))
	if !v.IsInt64() {
		return math.MaxInt64
	}
	return v.Int64()
}

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

// refund answers a financial refund (x200, processing code 20): the card
// checks of an authorisation, then the credit of a cleared refund
// (clearRefund). It runs outside the authorisation batches: refunds are
// rare, and their credit depends on the purchase they are matched to.
func (h *Host) refund(ctx context.Context, r *AuthRequest) (Decision, error) {
	if _, _, _, d, done, err := h.checkedCard(ctx, r); done || err != nil {
		return d, err
	}
	orig, found, err := h.original(ctx, r)
	if err != nil {
		return Decision{}, err
	}
	return h.clearRefund(ctx, r, orig, found)
}

// checkedCard runs the card checks of an authorisation for a request
// decided outside the batches (a refund, an incremental): an earlier
// answer to it, its card by PAN, the card's program, Decide. done is true
// when the request is answered (d, err: the stored answer, or the decline
// journaled with its PIN or verification count change).
func (h *Host) checkedCard(ctx context.Context, r *AuthRequest) (card Card, prog Program, out Outcome, d Decision, done bool, err error) {
	if d, ok, err := h.stored(ctx, r); err != nil || ok {
		return card, prog, out, d, true, err
	}
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
// 20) to the card's balance: the card of the message it names, or the card
// of its PAN (refunds often clear without one). Matched to a purchase (the
// message it names, by DE90/DE56 or RRN + STAN + acquirer, captured), it
// credits at most what the purchase captured less earlier refunds; blind, at
// most the program's blind-refund limit; the rest waits for an Admin
// (ledger.CreditRefundTx). The credit and the journal row commit together,
// so a repeat credits once.
func (h *Host) clearRefund(ctx context.Context, r *AuthRequest, orig originalRow, found bool) (Decision, error) {
	var (
		card Card
		err  error
	)
	if found && orig.cardID != 0 {
		card, err = h.Card(ctx, orig.cardID)
	} else {
		card, err = h.CardByPAN(ctx, r.PAN)
	}
	if errors.Is(err, ErrNotFound) || err == nil && card.State == StateRemoved {
		return h.decline(ctx, journal{req: r}, InvalidCard, "refund to an unknown card", nil)
	}
	if err != nil {
		return Decision{}, err
	}
	prog, err := h.cachedProgram(ctx, card.ProgramID)
	if err != nil {
		return Decision{}, err
	}
	out := billing(Outcome{}, r, &prog)
	if out.Reason != Approved || out.HoldAmount <= 0 && out.CreditAmount <= 0 {
		return h.decline(ctx, journal{req: r, cardID: card.ID}, NotPermitted, "refund in a currency the program does not hold, or of nothing", nil)
	}
	spec := h.holdSpec(&card, &prog, r, max(out.HoldAmount, out.CreditAmount))
	for _, id := range []int64{spec.UserAccountID, spec.PartnerAccountID} {
		if id == 0 {
			continue
		}
		acc, err := h.ledger.Account(ctx, id)
		if err != nil {
			return Decision{}, err
		}
		if acc.State == ledger.StateClosed {
			// The money would be stuck on a balance nobody can use.
			return h.decline(ctx, journal{req: r, cardID: card.ID}, NotPermitted, "refund to a closed balance", nil)
		}
	}
	enc, err := h.encryptedPAN(r.PAN)
	if err != nil {
		return Decision{}, err
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
	var opened string
	d, err := h.answerTx(ctx, r, "refund", func(tx ledger.Tx) (Decision, error) {
		opened = ""
		res, err := h.ledger.CreditRefundTx(ctx, tx, ledger.Refund{UserAccountID: spec.UserAccountID, PartnerAccountID: spec.PartnerAccountID,
			Currency: spec.Currency, Amount: spec.Amount, Ref: creditRef, PurchaseHoldID: purchase, BlindLimit: prog.BlindRefundLimit,
			CardID: card.ID, ProgramID: prog.ID, JournalID: orig.id})
		detail := "refund credited " + strconv.FormatInt(res.Credited, 10)
		switch {
		case errors.Is(err, ledger.ErrDuplicateRef) && (!found || orig.proc != ProcRefund):
			return Decision{}, errDuplicate // a repeat: answered as the first was
		case errors.Is(err, ledger.ErrDuplicateRef):
			// Another message cleared this refund already (an x200, an
			// earlier x220): approved, and nothing more is credited.
			detail = "refund credited before"
		case err != nil:
			return Decision{}, err
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
				return Decision{}, err
			}
			if err := h.applyPendingCredit(ctx, tx, ps, creditRef); err != nil {
				return Decision{}, err
			}
		}
		return h.journalApproval(ctx, tx, &card, &prog, journal{req: r, cardID: card.ID, panEnc: enc, originalID: orig.id, detail: detail})
	})
	if err == nil && opened != "" && !d.Duplicate {
		h.ledger.ExceptionsOpened(opened)
	}
	return d, err
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

package cardhost

import (
	"context"
	"errors"
	"strconv"

	"github.com/antaca/antaca/ledger"
)

// reverse releases the original's hold fully or down to DE95. A reversal of
// an unknown original is acknowledged and recorded; a second reversal
// changes nothing. enc is the request's PAN encrypted.
func (h *Host) reverse(ctx context.Context, r *AuthRequest, enc []byte) (Decision, error) {
	orig, found, err := h.original(ctx, r)
	if err != nil {
		return Decision{}, err
	}
	if !found {
		d, pending, err := h.reversePending(ctx, r, enc)
		if err != nil || pending {
			return d, err
		}
		// The original committed meanwhile.
		if orig, found, err = h.original(ctx, r); err != nil {
			return Decision{}, err
		}
	}
	var (
		card *Card
		prog *Program
	)
	if orig.cardID != 0 {
		c, err := h.Card(ctx, orig.cardID)
		if err != nil {
			return Decision{}, err
		}
		p, err := h.cachedProgram(ctx, c.ProgramID)
		if err != nil {
			return Decision{}, err
		}
		card, prog = &c, &p
	}
	return h.answerTx(ctx, r, "reverse", func(tx ledger.Tx) (Decision, error) {
		return h.reverseOn(ctx, tx, r, orig, found, card, prog, enc)
	})
}

// reverseOn answers, in tx, a reversal whose original is orig (found:
// journaled; card and prog, when known, the original's): the hold
// released, a capture refunded or a credit taken back, and the journal
// row. It is the body of reverse's transaction, and of a reversal its
// batch could not write set-based (moneybatch.go).
func (h *Host) reverseOn(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow, found bool, card *Card, prog *Program, enc []byte) (Decision, error) {
	origID, holdID, cardID := orig.id, orig.holdID, orig.cardID
	detail := "original not found"
	if found {
		detail = "no hold"
	}
	var err error
	incremental := false
	if holdID != 0 && orig.class == ClassAuthorization && orig.origRef != "" {
		// The original is an incremental authorisation: its own
		// increment only.
		if detail, incremental, err = h.reverseIncrement(ctx, tx, r, orig); err != nil {
			return Decision{}, err
		}
	}
	switch {
	case incremental:
	case holdID != 0:
		detail, err = h.undoHold(ctx, tx, r, orig)
	case found && orig.proc == ProcRefund && (orig.class == ClassFinancial || orig.class == ClassCompletion) && prog != nil:
		detail, err = h.takeBackCredit(ctx, tx, r, orig, prog)
	}
	if err != nil {
		return Decision{}, err
	}
	// The approval code is journaled so that a duplicate answers with
	// the same DE38; DE54 when the card is known.
	j := journal{req: r, cardID: cardID, panEnc: enc, holdID: holdID, originalID: origID, detail: detail}
	if card != nil {
		return h.journalApproval(ctx, tx, card, prog, j)
	}
	d := Decision{Reason: Approved, ApprovalCode: approvalCode(r), HoldID: holdID}
	j.reason, j.approval = Approved, d.ApprovalCode
	_, err = writeJournal(ctx, tx, j)
	return d, err
}

// undoHold answers a reversal for the original's hold: released down to
// DE95 (entirely without it), or, when the original captured the hold
// itself (an x200, a completion), its capture refunded above DE95. It
// returns the journal detail.
func (h *Host) undoHold(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow) (string, error) {
	var remaining int64
	if r.ReplacementAmount != nil {
		var held int64
		var err error
		if remaining, held, err = replacementInHold(ctx, tx, orig.id, orig.holdID, *r.ReplacementAmount); err != nil {
			return "", err
		}
		if held >= 0 && remaining >= held {
			// The open hold is at or below what the acquirer says was spent.
			return h.reverseStandIn(ctx, tx, r, orig, remaining, "replacement amount not below the hold: nothing released")
		}
	}
	_, err := h.ledger.ReleaseTx(ctx, tx, orig.holdID, remaining)
	switch {
	case err == nil:
		return h.reverseStandIn(ctx, tx, r, orig, remaining, "released to "+strconv.FormatInt(remaining, 10))
	case !errors.Is(err, ledger.ErrHoldResolved):
		return "", err
	case orig.class != ClassFinancial && orig.class != ClassCompletion:
		return "hold already resolved", nil
	}
	n, err := h.ledger.RefundCaptureTx(ctx, tx, orig.holdID, "capture:"+orig.ref, remaining, "refund:"+journalRef(r))
	switch {
	case errors.Is(err, ledger.ErrHoldNotCaptured):
		return "hold already resolved", nil
	case err != nil:
		return "", err
	case n > 0:
		return "refunded " + strconv.FormatInt(n, 10), nil
	}
	return "nothing left to refund", nil
}

// reverseStandIn gives back to settlement the part of a reversed stand-in
// advice's excess the acquirer no longer claims (owed: what it says was
// spent, in the hold's currency), after the hold's release; detail is the
// journal detail so far.
func (h *Host) reverseStandIn(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow, owed int64, detail string) (string, error) {
	if orig.class != ClassAdvice {
		return detail, nil
	}
	back, err := h.ledger.ReverseStandInTx(ctx, tx, orig.holdID, owed, journalRef(r))
	if err != nil || back == 0 {
		return detail, err
	}
	return detail + ", " + strconv.FormatInt(back, 10) + " of the stand-in excess back to settlement", nil
}

// takeBackCredit answers a reversal of a credited refund (an x200 or an
// x220 of processing code 20): its credit taken back above DE95. It
// returns the journal detail.
func (h *Host) takeBackCredit(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow, prog *Program) (string, error) {
	var keep int64
	if r.ReplacementAmount != nil {
		keep = *r.ReplacementAmount
		if orig.currency != "" && orig.currency != prog.CurrencyNumeric && orig.amount > 0 {
			keep = keepInCredit(ctx, tx, orig, keep)
		}
	}
	n, err := h.ledger.UncreditTx(ctx, tx, orig.creditRef(), keep, "uncredit:"+journalRef(r))
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return "no credit", nil
	case err != nil:
		return "", err
	case n > 0:
		return "credit taken back " + strconv.FormatInt(n, 10), nil
	}
	return "nothing left to take back", nil
}

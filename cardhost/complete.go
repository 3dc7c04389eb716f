package cardhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/antaca/antaca/ledger"
)

// complete captures the original's hold for the completion's final amount
// (DE95 when present, else the billing amount, else DE4); enc is the
// request's PAN encrypted.
func (h *Host) complete(ctx context.Context, r *AuthRequest, enc []byte) (Decision, error) {
	orig, found, err := h.original(ctx, r)
	if err != nil {
		return Decision{}, err
	}
	if r.ProcessingCode == ProcRefund {
		return h.clearRefund(ctx, r, orig, found, enc)
	}
	if !found || orig.holdID == 0 {
		return h.decline(ctx, journal{req: r}, InvalidCard, "completion without an authorisation", nil)
	}
	card, err := h.Card(ctx, orig.cardID)
	if err != nil {
		return Decision{}, err
	}
	prog, err := h.cachedProgram(ctx, card.ProgramID)
	if err != nil {
		return Decision{}, err
	}
	var opened string
	d, err := h.answerTx(ctx, r, "complete", func(tx ledger.Tx) (Decision, error) {
		d, o, err := h.completeOn(ctx, tx, r, orig, &card, &prog, enc)
		opened = o
		return d, err
	})
	if err == nil && opened != "" && !d.Duplicate {
		h.ledger.ExceptionsOpened(opened)
	}
	return d, err
}

// completeOn captures, in tx, the hold of a completion's original (orig,
// found, with a hold) for the completion's final amount and journals it:
// the body of complete's transaction, and of a completion its batch could
// not write set-based (moneybatch.go). It returns the decision and the
// kind of the exception it opened, if any.
func (h *Host) completeOn(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow, card *Card, prog *Program, enc []byte) (Decision, string, error) {
	final, fx := completionAmount(r, prog)
	opened := ""
	detail := "captured " + strconv.FormatInt(final, 10)
	notLast := r.FunctionCode == FuncCompletionNotLast
	c, err := h.ledger.ClearTx(ctx, tx, ledger.Clearing{HoldID: orig.holdID, Final: final, FX: fx, Ref: "capture:" + journalRef(r),
		ToleranceBP: mccRule(prog, r.MCC).ToleranceBP, CardID: card.ID, ProgramID: prog.ID, JournalID: orig.id, NotLast: notLast})
	captured := orig.holdID // the journal names the hold its capture took: a part's own when not the last
	if err == nil {
		captured = c.HoldID
		if notLast {
			detail = fmt.Sprintf("part of hold %d: %s", orig.holdID, detail)
		}
	}
	switch {
	case errors.Is(err, ledger.ErrHoldResolved):
		detail = "hold already resolved"
	case err != nil:
		return Decision{}, "", err
	case c.Excess > 0:
		// Acknowledged (a clearing cannot be refused): the excess is
		// the scheme's settlement against exceptions receivable.
		detail = fmt.Sprintf("captured %d, %d to exceptions (%s %d)", c.Charged, c.Excess, c.Exception.Kind, c.Exception.ID)
		opened = c.Exception.Kind
	}
	if err == nil {
		// A reversal of this completion that overtook it: the capture
		// locked the card's balance, so it is seen here (pending.go).
		ps, err := pendingFor(ctx, tx, r)
		if err != nil {
			return Decision{}, "", err
		}
		if err := h.applyPending(ctx, tx, ps, captured, "capture:"+journalRef(r)); err != nil {
			return Decision{}, "", err
		}
	}
	d, err := h.journalApproval(ctx, tx, card, prog, journal{req: r, cardID: card.ID, panEnc: enc,
		holdID: captured, originalID: orig.id, detail: detail})
	return d, opened, err
}
